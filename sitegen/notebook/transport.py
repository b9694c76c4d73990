"""The connection to the notebook: outputs go out through IPython's display machinery (swapped out by
tests), and when a cell finishes, the figures it updated send what is left and settle."""
from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from sitegen.notebook.handle import _Handle


class Transport:
    """Sends outputs to the notebook through IPython's display machinery."""

    def show(self, bundle: dict, display_id: str) -> None:
        from IPython.display import display

        display(bundle, raw=True, display_id=display_id)

    def replace(self, bundle: dict, display_id: str) -> None:
        from IPython.display import update_display

        update_display(bundle, raw=True, display_id=display_id)


TRANSPORT: Transport = Transport()
_HANDLES: "weakref.WeakSet[_Handle]" = weakref.WeakSet()
_HOOKED: list = []


def _shell():
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with any notebook
        return None
    return get_ipython()


def _hook_cell_end() -> None:
    """Once per kernel: when a cell finishes, figures it updated send what is left and settle."""
    shell = _shell()
    if shell is None or _HOOKED:
        return
    shell.events.register("post_run_cell", _after_cell)
    _HOOKED.append(shell)


def _after_cell(result=None) -> None:
    for handle in list(_HANDLES):
        try:
            handle._end_of_cell()
        except Exception as exc:  # pragma: no cover - never break the user's next cell
            handle._status_problem(f"could not finish the live update ({type(exc).__name__}: {exc})")
