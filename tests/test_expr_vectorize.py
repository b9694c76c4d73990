"""vectorize: parts joined through a neutral operand (vexpr's weighted additive kernel in one
distance call), concatenations in scrambled order regrouped, stacks of list indexes as one index.
Values checked against numpy and scipy."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist as scipy_cdist

from sitegen import expr as E

GROUPS, JOINT = [[0], [1], [2]], [0, 1, 2]


def _ops(tree, op=None):
    found = [n.op for n in E.iter_nodes(tree) if isinstance(n, E.Op)]
    return found if op is None else [o for o in found if o == op]


def weighted_additive(x1, x2, scale, beta_w, dirichlet_w, lengthscale):
    """vexpr's weighted additive kernel: a weighted sum of one-feature distances, beside one joint
    distance over the same features."""
    def sub(idx):
        return E.cdist(x1[..., idx] / lengthscale[idx], x2[..., idx] / lengthscale[idx])
    additive = E.sum_(dirichlet_w * E.stack([sub(g) for g in GROUPS], axis=-1), axis=-1)
    return scale * E.sum_(beta_w * E.stack([additive, sub(JOINT)], axis=-1), axis=-1)


def weighted_additive_numpy(x1, x2, scale, beta, dirichlet, ls):
    d = [scipy_cdist(x1[:, g] / ls[g], x2[:, g] / ls[g]) for g in GROUPS + [JOINT]]
    return scale * (beta[0] * sum(w * di for w, di in zip(dirichlet, d[:3])) + beta[1] * d[3])


def values(seed=3):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(6, 5)), rng.normal(size=(4, 5)), np.array(1.2), rng.dirichlet([1, 1]),
            rng.dirichlet([1, 1, 1]), rng.uniform(0.5, 2, 5))


def test_the_neutral_operand_table_decides_whether_the_weighted_parts_join(monkeypatch):
    args = values()
    expected = weighted_additive_numpy(*args)
    joined = E.vectorized(weighted_additive)
    np.testing.assert_allclose(joined(*args), expected, rtol=1e-12)
    assert _ops(joined.vectorized, "cdist") == [] and len(_ops(joined.vectorized, "cdist_multi")) == 1
    # without x == 1 * x in the table, the weights stay between the sum and the distances: 2 calls
    monkeypatch.delitem(E.NEUTRAL_OPERANDS, "mul")
    apart = E.vectorized(weighted_additive)
    np.testing.assert_allclose(apart(*args), expected, rtol=1e-12)
    assert len(_ops(apart.vectorized, "cdist")) + len(_ops(apart.vectorized, "cdist_multi")) == 2


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_the_joined_weighted_kernel_has_the_gradients_of_the_tree_as_written(backend):
    lib = pytest.importorskip(backend)
    f = E.vectorized(weighted_additive, params=["scale", "beta_w", "dirichlet_w", "lengthscale"])
    X1, X2, *params = values(5)
    X1[2] = X2[1]  # a zero distance: its gradient is 0, not NaN
    if backend == "torch":
        def grad(fn):
            ts = [lib.tensor(p, requires_grad=True) for p in params]
            fn(lib.tensor(X1), lib.tensor(X2), *ts).sum().backward()
            return np.concatenate([t.grad.reshape(-1).numpy() for t in ts])
    else:
        lib.config.update("jax_enable_x64", True)

        def grad(fn):
            g = lib.grad(lambda *ps: fn(lib.numpy.asarray(X1), lib.numpy.asarray(X2), *ps).sum(),
                         argnums=(0, 1, 2, 3))(*(lib.numpy.asarray(p) for p in params))
            return np.concatenate([np.asarray(x).reshape(-1) for x in g])
    vectorized, written = grad(f), grad(f.as_written)
    assert np.all(np.isfinite(vectorized))
    np.testing.assert_allclose(vectorized, written, rtol=1e-9, atol=1e-12)
    assert len(_ops(f.vectorized, "cdist_multi")) == 1


def test_a_neutral_operand_is_not_added_where_nothing_joins_under_it():
    x = E.var("x", (5, 6))
    w = E.param("w", (2,))
    tree = E.concatenate([w * E.exp(x[..., [0, 1]]), E.tanh(x[..., [2]])], axis=-1)
    vec = E.vectorize(tree)
    assert sorted(_ops(vec)) == sorted(_ops(tree))  # no 1 * tanh(...), no joined [w, 1]
    X, wv = np.random.default_rng(0).normal(size=(5, 6)), np.array([0.3, 2.0])
    np.testing.assert_array_equal(E.evaluate(vec, {"w": wv}, {"x": X}),
                                  np.concatenate([wv * np.exp(X[:, [0, 1]]), np.tanh(X[:, [2]])], -1))


def _parts(x):
    return [lambda: E.exp(x[..., [0, 1]]), lambda: E.tanh(x[..., [2]]),
            lambda: E.exp(x[..., [3]]), lambda: E.tanh(x[..., [4, 5]])]


def _parts_numpy(X):
    return [np.exp(X[..., [0, 1]]), np.tanh(X[..., [2]]), np.exp(X[..., [3]]), np.tanh(X[..., [4, 5]])]


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [1, 0, 3, 2], [0, 3, 2, 1], [2, 1, 0, 3]])
def test_scrambled_concatenations_are_regrouped_by_kind_and_put_back_in_order(order):
    x = E.var("x", (5, 8))
    tree = E.concatenate([_parts(x)[i]() for i in order], axis=-1)
    vec = E.vectorize(tree)
    assert len(_ops(vec, "exp")) == len(_ops(vec, "tanh")) == 1  # one call of each kind
    X = np.random.default_rng(1).normal(size=(3, 5, 8))  # a batch of 3 as well
    expected = np.concatenate([_parts_numpy(X)[i] for i in order], axis=-1)
    np.testing.assert_array_equal(E.evaluate(vec, inputs={"x": X}), expected)
    # added up, the order does not matter: no index to restore it
    total = E.vectorize(E.sum_(tree, axis=-1))
    assert not any(isinstance(n, E.Index) and n.node.shape == (5, 6) for n in E.iter_nodes(total))
    np.testing.assert_allclose(E.evaluate(total, inputs={"x": X}), expected.sum(-1), rtol=1e-14)


def test_scrambled_distance_groups_join_into_one_call():
    @E.vectorized
    def f(x1, x2):
        return E.concatenate(
            [E.stack([E.cdist(x1[..., [0, 1]], x2[..., [0, 1]]), E.cdist(x1[..., [4]], x2[..., [4]])], axis=-1),
             E.stack([E.cdist(x1[..., [1, 2]], x2[..., [1, 2]], p=1)], axis=-1),
             E.stack([E.cdist(x1[..., [2, 3]], x2[..., [2, 3]])], axis=-1)], axis=-1)

    X1, X2 = np.random.default_rng(2).normal(size=(2, 6, 5))
    got = f(X1, X2)
    expected = np.stack([scipy_cdist(X1[:, [0, 1]], X2[:, [0, 1]]), scipy_cdist(X1[:, [4]], X2[:, [4]]),
                         scipy_cdist(X1[:, [1, 2]], X2[:, [1, 2]], "cityblock"),
                         scipy_cdist(X1[:, [2, 3]], X2[:, [2, 3]])], axis=-1)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # the Euclidean ones (not neighbours) in one call, the L1 one alone, the columns put back in order
    multi = [n for n in E.iter_nodes(f.vectorized) if isinstance(n, E.Op) and n.op == "cdist_multi"]
    assert len(multi) == 1 and multi[0].attrs["lengths"] == (2, 1, 2)
    assert len(_ops(f.vectorized, "cdist")) == 1


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_a_stack_of_list_indexes_is_one_index(axis):
    x = E.var("x", (5, 6))
    lists = [[0, 1], [2, 3], [5, 4]]
    tree = E.stack([x[..., lst] for lst in lists], axis=axis)
    vec = E.vectorize(tree)
    indexes = [n for n in E.iter_nodes(vec) if isinstance(n, E.Index)]
    assert len(indexes) == 1 and indexes[0].index[-1] == (0, 1, 2, 3, 5, 4)
    assert not _ops(vec, "stack")
    X = np.random.default_rng(3).normal(size=(5, 6))
    np.testing.assert_array_equal(E.evaluate(vec, inputs={"x": X}), np.stack([X[..., lst] for lst in lists], axis))
    XB = np.random.default_rng(4).normal(size=(2, 5, 6))  # a batch: the stack axis counted after it
    want = np.stack([XB[..., lst] for lst in lists], axis if axis < 0 else axis + 1)
    np.testing.assert_array_equal(E.evaluate(vec, inputs={"x": XB}), want)


def test_a_stack_of_row_selections_is_one_index_on_the_rows():
    x = E.var("x", (5, 6))
    tree = E.stack([x[[0, 1]], x[[3, 2]], x[[4, 4]]], axis=1)
    vec = E.vectorize(tree)
    assert sum(isinstance(n, E.Index) for n in E.iter_nodes(vec)) == 1
    X = np.random.default_rng(5).normal(size=(5, 6))
    np.testing.assert_array_equal(E.evaluate(vec, inputs={"x": X}),
                                  np.stack([X[[0, 1]], X[[3, 2]], X[[4, 4]]], axis=1))
    # shown again as written, it computes the same
    np.testing.assert_array_equal(E.evaluate(E.unvectorize(vec), inputs={"x": X}),
                                  np.stack([X[[0, 1]], X[[3, 2]], X[[4, 4]]], axis=1))


# ---- any concatenation of weighted and plain parts computes what it did before vectorizing --------

from hypothesis import given, settings, strategies as st  # noqa: E402

ELEMENTWISE = st.tuples(st.sampled_from(["exp", "tanh", "weighted exp", "plain"]),
                       st.lists(st.integers(0, 5), min_size=1, max_size=3))
DISTANCE = st.tuples(st.sampled_from(["euclidean", "l1", "weighted euclidean"]),
                     st.lists(st.integers(0, 5), min_size=1, max_size=3))
X1, X2 = np.random.default_rng(7).normal(size=(4, 6)), np.random.default_rng(8).normal(size=(3, 6))


def _check_same(tree, total, w):
    if total:
        tree = E.sum_(tree, axis=-1)
    vec = E.vectorize(tree)
    values = dict(params={"w": w}, inputs={"x1": X1, "x2": X2})
    np.testing.assert_allclose(E.evaluate(vec, **values), E.evaluate(tree, **values), rtol=1e-12, atol=1e-12)
    for op in ("exp", "tanh", "cdist"):  # never more calls than written
        assert len(_ops(vec, op)) <= len(_ops(tree, op))
    return vec


@settings(max_examples=40, deadline=None)
@given(parts=st.lists(ELEMENTWISE, min_size=1, max_size=6), total=st.booleans())
def test_vectorized_concatenations_of_elementwise_parts_compute_the_same(parts, total):
    x1, w = E.var("x1", (4, 6)), E.param("w", ())
    kinds = {"exp": E.exp, "tanh": E.tanh, "plain": lambda a: a, "weighted exp": lambda a: w * E.exp(a)}
    tree = E.concatenate([kinds[kind](x1[..., cols]) for kind, cols in parts], axis=-1)
    _check_same(tree, total, np.array(0.7))


@settings(max_examples=30, deadline=None)
@given(parts=st.lists(DISTANCE, min_size=1, max_size=5), total=st.booleans())
def test_vectorized_concatenations_of_distances_compute_the_same(parts, total):
    x1, x2, w = E.var("x1", (4, 6)), E.var("x2", (3, 6)), E.param("w", (1,))

    def make(kind, cols):
        d = E.stack([E.cdist(x1[..., cols], x2[..., cols], p=1 if kind == "l1" else 2)], axis=-1)
        return w * d if kind.startswith("weighted") else d

    vec = _check_same(E.concatenate([make(*p) for p in parts], axis=-1), total, np.array([1.7]))
    kinds = {"l1" if k == "l1" else "euclidean" for k, _ in parts}
    assert len(_ops(vec, "cdist")) + len(_ops(vec, "cdist_multi")) <= len(kinds)  # one call per kind
