"""MLflow's local file store: an ``mlruns/`` folder, or one experiment folder inside it.

Read with MLflow's own client (``mlflow.tracking.MlflowClient`` over a ``file:`` tracking URI),
which ``mlflow-skinny`` provides without the server and UI. ``experiment`` is the MLflow
experiment's name and ``run`` the run's name (its id when unnamed), unless patterns are given;
``wall_time`` is the metric's timestamp in seconds.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

from sitegen.logs.common import LogError, Rows

EXTRA = "mlflow"


def is_store(root: Path) -> bool:
    """An ``mlruns/`` folder (experiment folders with ``meta.yaml``) or one experiment folder."""
    if not root.is_dir():
        return False
    if (root / "meta.yaml").is_file() and any(
            (child / "meta.yaml").is_file() for child in root.iterdir() if child.is_dir()):
        return True   # one experiment: its runs hold meta.yaml too
    return any((child / "meta.yaml").is_file() and not child.name.startswith(".")
               for child in root.iterdir() if child.is_dir())


def version() -> str:
    import mlflow

    return f"mlflow {mlflow.__version__}"


def read(root: Path, shown: str, experiment: str | None = None, run: str | None = None):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise LogError(shown, "reading an MLflow mlruns/ folder needs the 'mlflow-skinny' package, which is not "
                              f"installed; install it with: pip install 'sitegen[{EXTRA}]'") from None

    root = root.resolve()
    store = root.parent if (root / "meta.yaml").is_file() else root
    rows = Rows()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the file store's deprecation notice is not the author's problem
        # MLflow 3 keeps the file store for reading old folders but asks for an opt-in
        allow = os.environ.get("MLFLOW_ALLOW_FILE_STORE")
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        try:
            client = MlflowClient(tracking_uri=store.as_uri())
            experiments = client.search_experiments()
            if (root / "meta.yaml").is_file():
                experiments = [e for e in experiments if e.experiment_id == root.name]
            for exp in experiments:
                for r in _runs(client, exp.experiment_id):
                    exp_label = experiment if experiment is not None else exp.name
                    run_label = run if run is not None else (r.info.run_name or r.info.run_id)
                    for key in sorted(r.data.metrics):
                        history = client.get_metric_history(r.info.run_id, key)
                        history.sort(key=lambda m: (m.step, m.timestamp))
                        rows.add(exp_label, run_label, key, [m.step for m in history], [m.value for m in history],
                                 wall_time=[m.timestamp / 1000.0 for m in history])
        except LogError:
            raise
        except Exception as exc:  # noqa: BLE001 - the store's own errors are many and all mean "damaged"
            raise LogError(shown, f"cannot read this MLflow store ({type(exc).__name__}: {exc})") from None
        finally:
            if allow is None:
                os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
            else:
                os.environ["MLFLOW_ALLOW_FILE_STORE"] = allow
    return rows.frame(shown, "MLflow store")


def _runs(client, experiment_id: str):
    token = None
    while True:
        page = client.search_runs([experiment_id], page_token=token, order_by=["attributes.start_time ASC"])
        yield from page
        token = page.token
        if not token:
            return
