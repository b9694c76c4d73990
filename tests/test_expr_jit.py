"""sitegen.expr under jax.jit: a wide tree evaluated for a batch of models agrees with the eager run
and with numpy.

The case is the one that was wrong: 9 one-column Euclidean distances and one L1 distance, each
through its own kernel, multiplied, for 2 models of 59 points. XLA on the CPU (AVX2, FMA
contraction) computed the squared distance of a point to itself twice, once 0 and once 1e-33, and
a safe sqrt that tests ``x > 0`` twice chose sqrt(1) = 1 for it. :func:`xla_reproducer` is the same
computation in pure JAX, without sitegen.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import sitegen.expr as E

jax = pytest.importorskip("jax")
jnp = jax.numpy

MODELS, POINTS, NUMERIC = 2, 59, 9
CHOICE = [NUMERIC, NUMERIC + 1, NUMERIC + 2]  # one-hot-like columns compared with an L1 distance


@pytest.fixture(autouse=True)
def x64():
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


def kernel(x1, x2, ls):
    factors = [E.matern52(E.cdist(x1[..., [j]] / ls[j], x2[..., [j]] / ls[j])) for j in range(NUMERIC)]
    factors.append(E.exp(-E.cdist(x1[..., CHOICE] / ls[NUMERIC], x2[..., CHOICE] / ls[NUMERIC], p=1)))
    return E.prod(factors, axis=0)


def numpy_kernel(X, ls):
    """The same kernel for a batch of models, straight from numpy: (M, N, D), (M, F) -> (M, N, N)."""
    diff = np.abs(X[:, :, None, :] - X[:, None, :, :])
    r = diff[..., :NUMERIC] / ls[:, None, None, :NUMERIC]
    matern = (1 + math.sqrt(5) * r + 5 / 3 * r * r) * np.exp(-math.sqrt(5) * r)
    l1 = diff[..., CHOICE].sum(-1) / ls[:, None, None, NUMERIC]
    return matern.prod(-1) * np.exp(-l1)


def data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(MODELS, POINTS, NUMERIC + 3)), rng.uniform(1, 4, size=(MODELS, NUMERIC + 1))


def test_jit_agrees_with_eager_and_numpy_on_a_wide_batched_product():
    X, ls = data()
    f = E.vectorized(kernel, params=["ls"], batch_dims=1)
    Xj = jnp.asarray(X)
    expected = numpy_kernel(X, ls)
    eager = np.asarray(f.as_written(Xj, Xj, jnp.asarray(ls)))
    np.testing.assert_allclose(eager, expected, rtol=1e-12, atol=1e-14)
    for run in (f.as_written, f):
        jitted = np.asarray(jax.jit(lambda l: run(Xj, Xj, l))(jnp.asarray(ls)))
        np.testing.assert_allclose(jitted, expected, rtol=1e-12, atol=1e-14)
        assert np.all(np.diagonal(jitted, axis1=-2, axis2=-1) == pytest.approx(1.0, abs=1e-12))


def test_jit_gradient_is_finite_and_matches_central_differences():
    X, ls = data(1)
    f = E.vectorized(kernel, params=["ls"], batch_dims=1)
    Xj = jnp.asarray(X)

    def loss(l):
        return jnp.sum(f.as_written(Xj, Xj, l) ** 2)

    jitted = np.asarray(jax.jit(jax.grad(loss))(jnp.asarray(ls)))
    assert np.all(np.isfinite(jitted))  # the zero distances on the diagonal have zero gradients
    # against central differences of the numpy kernel
    h = 1e-6
    for m, j in ((0, 0), (1, NUMERIC)):
        up, down = ls.copy(), ls.copy()
        up[m, j] += h
        down[m, j] -= h
        fd = ((numpy_kernel(X, up) ** 2).sum() - (numpy_kernel(X, down) ** 2).sum()) / (2 * h)
        assert jitted[m, j] == pytest.approx(fd, rel=1e-6)


def test_safe_sqrt_of_jax_is_exact_and_has_a_zero_gradient_at_zero():
    sqrt = E.backends.get_backend("jax").safe_sqrt
    x = jnp.asarray([0.0, 4.0, 2.0])
    np.testing.assert_array_equal(np.asarray(sqrt(x)), np.sqrt([0.0, 4.0, 2.0]))
    grad = np.asarray(jax.grad(lambda v: jnp.sum(sqrt(v)))(x))
    np.testing.assert_allclose(grad, [0.0, 0.25, 0.5 / math.sqrt(2)])
    second = jax.grad(jax.grad(lambda v: sqrt(v)))(4.0)
    assert float(second) == pytest.approx(-0.25 * 4.0 ** -1.5)


def xla_reproducer(safe_sqrt):
    """Pure JAX, no sitegen: the same kernel matrix eagerly and under jax.jit; returns the largest
    difference. With ``where(x > 0, sqrt(where(x > 0, x, 1)), 0)`` as the safe sqrt it was 0.48 on
    jax/jaxlib 0.10.2 on an AVX2 CPU (the diagonal); with ``--xla_cpu_max_isa=AVX`` (no FMA) or
    ``--xla_backend_optimization_level=0`` it was 7e-16."""
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.uniform(size=(MODELS, POINTS, 24)))
    ls = jnp.asarray(rng.uniform(1, 4, size=(MODELS, 24)))

    def distance(a, p):
        d = a[..., :, None, :] - a[..., None, :, :]
        return jnp.sum(jnp.abs(d), -1) if p == 1 else safe_sqrt(jnp.sum(d * d, -1))

    def fn(ls):
        r = [distance(X[..., j:j + 1] / ls[:, j, None, None], 2) for j in range(NUMERIC)]
        items = [(1 + np.sqrt(5) * x + 5 / 3 * x ** 2) * jnp.exp(-np.sqrt(5) * x) for x in r]
        items.append(jnp.exp(-distance(X[..., 20:23] / ls[:, 20, None, None], 1)))
        return jnp.prod(jnp.stack(items), axis=0)

    return float(np.abs(np.asarray(fn(ls)) - np.asarray(jax.jit(fn)(ls))).max())


def where_sqrt(x):
    """The safe sqrt numpy and torch use (and JAX used): two tests of x > 0."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def test_our_jax_safe_sqrt_is_right_under_jit_in_the_pure_jax_reproducer():
    assert xla_reproducer(E.backends.get_backend("jax").safe_sqrt) < 1e-12
