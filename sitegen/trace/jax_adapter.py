"""What the tracer does with JAX arrays: pytree names, flattening, one fetch per flush.

jax is never imported at module level; these functions run only once JAX arrays are traced.
JAX arrays are immutable, so the tracer keeps references until a flush and fetches them all with
one ``jax.device_get``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sitegen.trace.names import _apply_transform


def pytree_name(path) -> str:
    """A dotted name for a JAX key path: ``kernel.lengthscale``, ``layers.0.w``."""
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return ".".join(parts)



def flatten(arrays, extra_values):
    """One flat JAX array holding the arrays and extras (no device: JAX places it)."""
    import jax.numpy as jnp

    # JAX arrays are immutable: keeping references is enough, no copy needed.
    parts = [jnp.ravel(jnp.asarray(a)) for a in arrays + list(extra_values)]
    flat = parts[0] if len(parts) == 1 else jnp.concatenate(
        [p.astype(jnp.result_type(*parts)) for p in parts])
    return flat, None


def join(parts, batch):
    """Several (B, ...) JAX arrays as one (B, P) array."""
    import jax.numpy as jnp

    return jnp.concatenate([jnp.reshape(p, (batch, -1)) for p in parts], 1)


def to_host(arrays: list) -> list[np.ndarray]:
    """JAX arrays as float64 numpy arrays, fetched together."""
    import jax

    return [np.asarray(arr, dtype=np.float64) for arr in jax.device_get(arrays)]


def pytree_values(params, transforms) -> dict[str, Any]:
    """Every leaf of a pytree under its dotted name (renamed and transformed by ``transforms``)."""
    import jax

    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    values = {}
    for path, leaf in leaves:
        name, fn = _apply_transform(pytree_name(path), transforms)
        values[name] = fn(leaf) if fn is not None else leaf
    return values
