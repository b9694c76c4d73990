"""Expression trees print as templates whose placeholders are the traced parameters, and compute
the same numbers as the models they describe."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sitegen import expr as E
from sitegen.trace import Tracer

FEATURES = ["log_lr", "log_wd", "depth"]
CATEGORIES = ["optimizer", "schedule"]


def flat(tree, **options) -> str:
    return E.to_template(tree, definitions=False, **options).strip()


# ---------------------------------------------------------------- printing

@pytest.mark.parametrize("tree, python, math_style", [
    (lambda a, b, c: a - (b - c), "a - (b - c)", "a − (b − c)"),
    (lambda a, b, c: (a - b) - c, "a - b - c", "a − b − c"),
    (lambda a, b, c: a * b + c, "a * b + c", "a · b + c"),
    (lambda a, b, c: a * (b + c), "a * (b + c)", "a · (b + c)"),
    (lambda a, b, c: a / (b * c), "a / (b * c)", "a / (b · c)"),
    (lambda a, b, c: (a / b) * c, "a / b * c", "a / b · c"),
    (lambda a, b, c: a + (b + c), "a + b + c", "a + b + c"),
    (lambda a, b, c: -(a + b), "-(a + b)", "−(a + b)"),
    (lambda a, b, c: (-a) ** 2, "(-a)**2", "(−a)²"),
    (lambda a, b, c: -(a ** 2), "-a**2", "−a²"),
    (lambda a, b, c: a ** (b ** c), "a**b**c", "a^b^c"),
    (lambda a, b, c: (a ** b) ** c, "(a**b)**c", "(a^b)^c"),
    (lambda a, b, c: E.exp(a * b) / c, "exp(a * b) / c", "exp(a · b) / c"),
    (lambda a, b, c: E.sqrt(a + b), "sqrt(a + b)", "√(a + b)"),
])
def test_precedence_printing_uses_only_the_parentheses_needed(tree, python, math_style):
    a, b, c = E.var("a"), E.var("b"), E.var("c")
    t = tree(a, b, c)
    assert flat(t) == python
    assert flat(t, style="math") == math_style
    # and the printed python means the same thing as the tree
    values = {"a": 1.7, "b": 0.6, "c": 2.3}
    assert eval(python, {"exp": math.exp, "sqrt": math.sqrt}, values) == pytest.approx(
        float(E.evaluate(t, inputs=values)))


def test_parameters_print_as_placeholders_with_settings_and_quotes():
    w = E.param("w", options={"log": True, "label": "ℓ₁"})
    assert flat(w * E.var("x")) == "⟦w | log | label=ℓ₁⟧ * x"
    odd = E.param('odd|name"')
    assert flat(odd) == '⟦"odd|name\\""⟧'
    assert E.template_placeholders(flat(odd + w)) == ['odd|name"', "w"]
    vec = E.param("b", (2,))
    assert flat(vec) == "[⟦b[0]⟧, ⟦b[1]⟧]"


def test_unvectorize_gives_each_lengthscale_its_own_placeholder_beside_its_feature():
    x = E.var("x", (3,), FEATURES, element_format="{label}")
    x2 = E.var("x2", (3,), FEATURES, display="x′", element_format="{label}′")
    ls = E.param("lengthscale", (3,), FEATURES)
    vectorized = E.sum_((x - x2) / ls)
    assert E.placeholders(vectorized) == [f"lengthscale[{f}]" for f in FEATURES]  # as a vector literal
    text = flat(E.unvectorize(vectorized))
    assert text == ("(log_lr - log_lr′) / ⟦lengthscale[log_lr]⟧ + (log_wd - log_wd′) / ⟦lengthscale[log_wd]⟧"
                    " + (depth - depth′) / ⟦lengthscale[depth]⟧")
    assert len(E.template_placeholders(text)) == 3


def test_unvectorize_matmul_writes_one_definition_per_unit():
    x = E.var("x", (2,), ["x1", "x2"], element_format="{label}")
    W = E.param("W", (3, 2))
    program = E.Program([E.Assign("h", E.tanh(W @ x)), E.Assign("y", E.sum_(E.Ref("h", (3,))))])
    text = E.to_template(E.unvectorize(program))
    assert text.splitlines() == [
        "h0 = tanh(⟦W[0,0]⟧ * x1 + ⟦W[0,1]⟧ * x2)",
        "h1 = tanh(⟦W[1,0]⟧ * x1 + ⟦W[1,1]⟧ * x2)",
        "h2 = tanh(⟦W[2,0]⟧ * x1 + ⟦W[2,1]⟧ * x2)",
        "y = h0 + h1 + h2",
    ]


def test_long_lines_break_at_plus_with_indentation_and_stay_within_width():
    x = E.var("x", (12,), [f"feature_{i}" for i in range(12)], element_format="{label}")
    w = E.param("weight", (12,), [f"feature_{i}" for i in range(12)])
    text = E.to_template(E.unvectorize(E.sqrt(E.dot(w, x))), name="r", width=60)
    lines = text.splitlines()
    assert lines[0] == "r = sqrt("
    assert lines[1].startswith("    ⟦weight[feature_0]⟧ * feature_0")
    assert all(line.startswith("    + ⟦weight[") for line in lines[2:-1])
    assert lines[-1] == ")"
    assert len(E.template_placeholders(text)) == 12


def test_let_names_a_subexpression_and_matern52_prints_its_definition():
    x = E.var("x", (2,), ["a", "b"], element_format="{label}")
    x2 = E.var("x2", (2,), ["a", "b"], display="x′", element_format="{label}′")
    ls = E.param("lengthscale", (2,), ["a", "b"])
    r = E.sqrt(E.sum_(((x - x2) / ls) ** 2))
    program = E.let(E.matern52(r), {"r": r}, "k")
    text = E.to_template(E.unvectorize(program))
    assert text.splitlines()[0] == "def matern52(r):"
    assert "r = sqrt(((a - a′) / ⟦lengthscale[a]⟧)**2 + ((b - b′) / ⟦lengthscale[b]⟧)**2)" in text
    assert text.rstrip().endswith("k = matern52(r)")


def test_partial_evaluation_plugs_in_values_and_folds_constants():
    noise = E.param("raw_noise", transform="softplus")
    tree = E.var("y") + noise * E.const(2.0) + E.const(1.0) * E.var("z")
    folded = E.partial(tree, params={"raw_noise": 0.0})
    assert flat(folded) == f"y + {2 * math.log(2):.6g} + z"
    assert E.placeholders(folded) == []
    assert flat(E.partial(E.exp(E.const(0.0)) * E.var("z"))) == "z"


def test_write_template_is_atomic_and_accepts_text(tmp_path):
    path = E.write_template(E.param("w") * E.var("x"), tmp_path / "m.expr")
    assert path.read_text(encoding="utf-8") == "⟦w⟧ * x\n"
    E.write_template("# by hand\ny = ⟦w⟧", tmp_path / "m.expr")
    assert (tmp_path / "m.expr").read_text(encoding="utf-8") == "# by hand\ny = ⟦w⟧\n"
    assert [p.name for p in tmp_path.iterdir()] == ["m.expr"]


# ---------------------------------------------------------------- the MLP (torch)

torch = pytest.importorskip("torch")


def test_mlp_template_names_exactly_what_the_tracer_records_and_computes_the_model():
    from experiments import silent_bug as sb

    torch.manual_seed(0)
    model = sb.make_model(activation=True)
    tracer = Tracer()
    tracer.record_module(0, model, labels=sb.LABELS)
    traced = set(tracer.frame()["param"])
    program = E.unvectorize(sb.expression())
    assert set(E.placeholders(program)) == traced
    assert len(traced) == 4 * 2 + 4 + 2 * 4 + 2

    x, xor, y = sb.make_data(16, 0, "cpu")
    params = dict(model.named_parameters())
    with torch.no_grad():
        loss_rows = E.evaluate(program, params, {"x": x, "label": xor, "y": y}, backend="torch")
    classification, regression, total = sb.losses(model, x, xor, y)
    assert float(loss_rows.mean()) == pytest.approx(total.item(), rel=1e-5)
    # the vector form before unvectorizing computes the same
    assert torch.allclose(E.evaluate(sb.expression(), params, {"x": x, "label": xor, "y": y}, backend="torch"),
                          loss_rows, atol=1e-6)


def test_two_layer_linear_model_evaluates_like_the_training_code():
    from experiments import ill_conditioned as ic

    X, y = ic.make_data(20, 1e3, 0, "cpu")
    theta = torch.randn(ic.HIDDEN * ic.FEATURES + ic.HIDDEN, dtype=torch.float64)
    W1, W2 = ic.unpack(theta)
    program = E.unvectorize(ic.expression())
    per_point = E.evaluate(program, {"W1": W1, "W2": W2}, {"x": X, "y": y}, backend="torch")
    assert float(per_point.mean()) == pytest.approx(float(ic.loss_of(theta, X, y)), rel=1e-12)
    tracer = Tracer()
    tracer.record(0, {"W1": W1, "W2": W2})
    assert set(E.placeholders(program)) == set(tracer.frame()["param"])


# ---------------------------------------------------------------- the GP kernel (JAX)

def gp_kernel():
    """Matérn-5/2 ARD over numeric features times an exponential kernel over categoricals."""
    x = E.var("x", (3,), FEATURES, element_format="{label}")
    x2 = E.var("x2", (3,), FEATURES, display="x′", element_format="{label}′")
    z = E.var("z", (2,), CATEGORIES, element_format="{label}")
    z2 = E.var("z2", (2,), CATEGORIES, display="z′", element_format="{label}′")
    ls = E.param("kernel.raw_lengthscale", (3,), FEATURES, transform="softplus", options={"log": True})
    cat_ls = E.param("kernel.raw_cat_lengthscale", (2,), CATEGORIES, transform="softplus")
    outputscale = E.param("kernel.raw_outputscale", transform="softplus")
    r = E.sqrt(E.sum_(((x - x2) / ls) ** 2))
    mismatch = E.sum_(E.ne(z, z2) / cat_ls)
    return E.let(outputscale * E.matern52(r) * E.exp(-mismatch), {"r": r, "d_cat": mismatch}, "k")


def gp_params(jnp):
    return {"kernel": {"raw_lengthscale": jnp.array([0.3, -0.5, 1.2]),
                       "raw_cat_lengthscale": jnp.array([0.1, 2.0]),
                       "raw_outputscale": jnp.array(0.7)},
            "likelihood": {"raw_noise": jnp.array(-2.0)}, "mean": {"constant": jnp.array(0.25)}}


def test_gp_kernel_evaluates_like_a_hand_written_jax_kernel():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    p = gp_params(jnp)["kernel"]
    rng = np.random.default_rng(0)
    X, X2 = rng.normal(size=(5, 1, 3)), rng.normal(size=(1, 4, 3))
    Z, Z2 = rng.integers(0, 3, size=(5, 1, 2)), rng.integers(0, 3, size=(1, 4, 2))

    def by_hand(x, x2, z, z2):
        ls = jax.nn.softplus(p["raw_lengthscale"])
        r = jnp.sqrt(jnp.sum(((x - x2) / ls) ** 2, axis=-1))
        matern = (1 + jnp.sqrt(5.0) * r + 5.0 / 3.0 * r ** 2) * jnp.exp(-jnp.sqrt(5.0) * r)
        cat = jnp.exp(-jnp.sum((z != z2) / jax.nn.softplus(p["raw_cat_lengthscale"]), axis=-1))
        return jax.nn.softplus(p["raw_outputscale"]) * matern * cat

    expected = by_hand(X, X2, Z, Z2)
    flat_params = {f"kernel.{k}": v for k, v in p.items()}
    inputs = {"x": jnp.array(X), "x2": jnp.array(X2), "z": jnp.array(Z), "z2": jnp.array(Z2)}
    got = E.evaluate(gp_kernel(), flat_params, inputs, backend="jax")
    assert got.shape == (5, 4)
    np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5)
    # unvectorized and constrained, it still computes the same from the constrained values
    shown = E.unvectorize(E.constrain(gp_kernel()))
    constrained = {"kernel.lengthscale": jax.nn.softplus(p["raw_lengthscale"]),
                   "kernel.cat_lengthscale": jax.nn.softplus(p["raw_cat_lengthscale"]),
                   "kernel.outputscale": jax.nn.softplus(p["raw_outputscale"])}
    np.testing.assert_allclose(np.asarray(E.evaluate(shown, constrained, inputs, backend="jax")),
                               np.asarray(expected), rtol=1e-5)
    np.testing.assert_allclose(E.evaluate(gp_kernel(), {k: np.asarray(v) for k, v in flat_params.items()},
                                          {k: np.asarray(v) for k, v in inputs.items()}),
                               np.asarray(expected), rtol=1e-5)


def test_gp_template_placeholders_are_the_names_the_tracer_records_from_the_pytree():
    jax = pytest.importorskip("jax")
    kernel = gp_kernel()
    tracer = Tracer()
    params = gp_params(jax.numpy)
    transforms = E.tracer_transforms(kernel, backend="jax")
    assert transforms["kernel.raw_lengthscale"][0] == "kernel.lengthscale"
    tracer.record_pytree(0, {"kernel": params["kernel"]}, transforms=transforms,
                         labels={"kernel.lengthscale": FEATURES, "kernel.cat_lengthscale": CATEGORIES})
    frame = tracer.frame()
    text = E.to_template(E.unvectorize(E.constrain(kernel)))
    assert set(E.template_placeholders(text)) == set(frame["param"])
    assert "⟦kernel.lengthscale[log_lr] | log⟧" in text
    assert "(optimizer != optimizer′) / ⟦kernel.cat_lengthscale[optimizer]⟧" in text
    traced = frame.set_index("param")["value"]
    assert traced["kernel.outputscale"] == pytest.approx(math.log1p(math.exp(0.7)), rel=1e-6)


def test_gp_template_matches_a_torch_module_traced_with_the_same_transforms():
    kernel = gp_kernel()

    class Kernel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.raw_lengthscale = torch.nn.Parameter(torch.zeros(3))
            self.raw_cat_lengthscale = torch.nn.Parameter(torch.zeros(2))
            self.raw_outputscale = torch.nn.Parameter(torch.tensor(0.0))

    module = torch.nn.Module()
    module.kernel = Kernel()
    tracer = Tracer()
    tracer.record_module(0, module, transforms=E.tracer_transforms(kernel, backend="torch"),
                         labels={"kernel.lengthscale": FEATURES, "kernel.cat_lengthscale": CATEGORIES})
    assert set(E.placeholders(E.unvectorize(E.constrain(kernel)))) == set(tracer.frame()["param"])


def test_the_site_parses_printed_templates_to_the_same_names_and_settings():
    template = pytest.importorskip("sitegen.figures.template")
    names = ["plain", "odd|name", 'say "hi"', "back\\slash", "w[log_lr]"]
    tree = E.const(0.0)
    for name in names:
        tree = tree + E.param(name, options={"log": True, "label": "ℓ₁"})
    parsed = template.parse(E.to_template(tree)).placeholders
    assert [p.name for p in parsed] == names
    assert all(p.log is True and p.label == "ℓ₁" for p in parsed)
    kernel_text = E.to_template(E.unvectorize(E.constrain(gp_kernel())))
    assert [p.name for p in template.parse(kernel_text).placeholders] == E.template_placeholders(kernel_text)


def test_a_defined_function_can_be_a_constraint_and_the_tracer_applies_it():
    x = E.var("x")
    E.define("positive", ["x"], E.exp(x) + E.const(1e-4))
    noise = E.param("likelihood.raw_noise", transform="positive")
    assert noise.constrained == "likelihood.noise"
    assert flat(noise) == "positive(⟦likelihood.raw_noise⟧)"
    assert flat(E.constrain(noise)) == "⟦likelihood.noise⟧"
    name, fn = E.tracer_transforms(noise, backend="torch")["likelihood.raw_noise"]
    assert name == "likelihood.noise"
    assert float(fn(torch.tensor(0.0))) == pytest.approx(1.0001)
    assert float(E.evaluate(noise, {"likelihood.raw_noise": 0.0})) == pytest.approx(1.0001)
    assert float(E.evaluate(E.constrain(noise), {"likelihood.noise": 0.5})) == 0.5


# ---------------------------------------------------------------- fixed: printing and folding

def test_a_registered_reduction_keeps_its_name_after_unvectorize():
    E.register_function("norm_l2", ["v"], numpy=lambda v: np.sqrt(np.sum(v * v, axis=-1)), shape="reduce")
    x = E.var("x", (3,), ["a", "b", "c"], element_format="{label}")
    w = E.param("w", (3,), ["a", "b", "c"])
    tree = E.call("norm_l2", w * x)
    shown = E.unvectorize(tree)
    assert flat(shown) == "norm_l2([⟦w[a]⟧ * a, ⟦w[b]⟧ * b, ⟦w[c]⟧ * c])"
    params, inputs = {"w": np.array([1.0, 2.0, 3.0])}, {"x": np.array([0.5, -1.0, 2.0])}
    expected = np.linalg.norm(params["w"] * inputs["x"])
    assert float(E.evaluate(shown, params, inputs)) == pytest.approx(expected)
    assert float(E.evaluate(tree, params, inputs)) == pytest.approx(expected)


def test_one_element_of_a_vector_parameter_prints_as_its_own_placeholder():
    w = E.param("w", (3,), ["a", "b", "c"])
    assert flat(w[1] * E.var("x")) == "⟦w[b]⟧ * x"
    assert flat(E.unvectorize(w[1] * E.var("x"))) == "⟦w[b]⟧ * x"
    W = E.param("W", (2, 2))
    assert flat(W[1]) == "[⟦W[1,0]⟧, ⟦W[1,1]⟧]"
    assert flat(E.param("raw", (2,), transform="softplus")[0]) == "softplus(⟦raw[0]⟧)"


def test_partial_evaluation_folds_vectors_of_constants():
    tree = E.sum_(E.Vector([E.const(1.0), E.const(2.0) * E.const(3.0)]) * E.var("x", (2,)))
    folded = E.partial(tree)
    weights = folded.args[0].args[0]
    assert isinstance(weights, E.Const) and weights.value.tolist() == [1.0, 6.0]
    assert float(E.evaluate(folded, inputs={"x": np.array([1.0, 1.0])})) == 7.0
    named = E.Vector([E.const(1.0, "w_cls"), E.const(2.0)])
    assert isinstance(E.partial(named), E.Vector)  # a named constant stays a name


def test_a_long_negated_sum_inside_a_call_wraps_within_the_width():
    names = [f"feature_{i}" for i in range(10)]
    x = E.var("x", (10,), names, element_format="{label}")
    ls = E.param("lengthscale", (10,), names)
    text = E.to_template(E.unvectorize(E.exp(-E.sum_(x / ls))), name="k", width=60)
    lines = text.splitlines()
    assert lines[0] == "k = exp(-("
    assert lines[1].strip() == "feature_0 / ⟦lengthscale[feature_0]⟧"
    assert all(line.strip().startswith("+ feature_") for line in lines[2:-1])
    assert lines[-1] == "))"
    assert all(len(line) <= 60 for line in lines)
    flat_text = " ".join(line.strip() for line in lines)[len("k = "):]
    one_line = E.to_template(E.unvectorize(E.exp(-E.sum_(x / ls))), width=10_000).strip()
    assert flat_text.replace("( ", "(").replace(" )", ")") == one_line


# ---------------------------------------------------------------- rewrites (macros)

def _feature_kernel(n_points=7):
    """A small kernel written the readable way: one distance per feature (a one-hot choice takes
    three columns), each over its own lengthscale."""
    feats = ["log_lr", "log_wd", "optimizer"]
    columns = {"log_lr": [0], "log_wd": [1], "optimizer": [2, 3, 4]}
    x1, x2 = E.var("x1", (n_points, 5)), E.var("x2", (n_points, 5))
    ls = E.param("lengthscale", (3,), feats)

    def distance(f, p):
        i, cols = feats.index(f), columns[f]
        return E.cdist(x1[..., cols] / ls[i], x2[..., cols] / ls[i], p=p)

    k = E.param("outputscale") * E.prod([E.matern52(distance("log_lr", 2)), E.matern52(distance("log_wd", 2)),
                                         E.exp(-distance("optimizer", 1))], axis=0)
    return k, feats, columns


def test_a_rule_shows_a_runnable_distance_as_compare_pseudocode_before_partial_evaluation():
    k, feats, columns = _feature_kernel()
    name_of = {tuple(c): f for f, c in columns.items()}
    X1, X2, C, L, P = E.Wild("X1"), E.Wild("X2"), E.Wild("cols"), E.Wild("L"), E.Wild("p")
    compare = E.Rule(E.cdist(X1[..., C] / L, X2[..., C] / L, p=P),
                     lambda cols, L, node, **_: E.pseudocode("compare", name_of[cols], shape=node.shape) / L)
    shown = E.partial(E.rewrite(k, compare), params={"outputscale": 2.0})
    text = E.to_template(shown, definitions=False)
    assert "matern52(compare('log_lr') / ⟦lengthscale[log_lr]⟧)" in text
    assert "exp(-compare('optimizer') / ⟦lengthscale[optimizer]⟧)" in text
    assert text.startswith("(\n    2\n    * prod(")
    assert E.placeholders(shown) == [f"lengthscale[{f}]" for f in feats]
    with pytest.raises(ValueError, match="compare"):
        E.evaluate(shown, inputs={"x1": np.zeros((7, 5)), "x2": np.zeros((7, 5))})
    # the runnable tree still computes the kernel
    rng = np.random.default_rng(1)
    X1v, X2v, lsv = rng.normal(size=(7, 5)), rng.normal(size=(7, 5)), np.array([0.5, 2.0, 1.5])
    from scipy.spatial.distance import cdist

    def m52(r):
        return (1 + 5 ** 0.5 * r + 5 / 3 * r ** 2) * np.exp(-(5 ** 0.5) * r)

    expected = 3.0 * m52(cdist(X1v[:, [0]], X2v[:, [0]]) / 0.5) * m52(cdist(X1v[:, [1]], X2v[:, [1]]) / 2.0) \
        * np.exp(-cdist(X1v[:, 2:], X2v[:, 2:], "cityblock") / 1.5)
    got = E.evaluate(k, {"lengthscale": lsv, "outputscale": 3.0}, {"x1": X1v, "x2": X2v})
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_a_rule_with_a_tree_replacement_binds_a_repeated_wildcard_to_equal_subtrees():
    X = E.Wild("X")
    double = E.Rule(X + X, E.const(2.0) * X)
    a, b = E.var("a"), E.var("b")
    assert flat(E.rewrite(E.exp(a + a) + (a + b), double)) == "exp(2 * a) + a + b"
    assert E.match(X + X, a + b) is None
    assert E.match(X + X, (a * b) + (a * b))["X"].key() == (a * b).key()
    only_vars = E.Rule(E.Wild("V", test=lambda n: isinstance(n, E.Var)) * 1, E.Wild("V"))
    assert flat(E.rewrite(a * 1 + E.exp(a) * 1, only_vars)) == "a + exp(a) * 1"
    program = E.Program([("s", a + a), ("t", E.Ref("s") * b)])
    assert E.to_template(E.rewrite(program, double)).splitlines() == ["s = 2 * a", "t = s * b"]
    with pytest.raises(ValueError, match="keeps the shape"):
        E.rewrite(E.var("v", (3,)) + E.var("v", (3,)), E.Rule(X + X, lambda X: E.const(0.0)))
    assert E.map_tree(a + b, lambda n: E.var("c") if n.key() == b.key() else n).sexpr() == "(add a c)"


# ---------------------------------------------------------------- vectorize (vexpr's behaviours)

from scipy.spatial.distance import cdist as scipy_cdist  # noqa: E402


def _x(n=10, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(n, d))


def _count(tree, op):
    return sum(1 for n in E.iter_nodes(tree) if isinstance(n, E.Op) and n.op == op)


def test_vexpr_readme_example_vectorizes_to_one_multi_distance_and_partially_evaluates():
    calls = []

    @E.vectorized
    def f(x1, x2, w1, w2):
        calls.append(1)
        return E.sum_([w1 * E.cdist(x1[..., [0, 1, 2]], x2[..., [0, 1, 2]]),
                       w2 * E.cdist(x1[..., [0, 3, 4]], x2[..., [0, 3, 4]])], axis=0)

    X1, X2 = _x()
    expected = 0.7 * scipy_cdist(X1[:, [0, 1, 2]], X2[:, [0, 1, 2]]) + 0.3 * scipy_cdist(X1[:, [0, 3, 4]], X2[:, [0, 3, 4]])
    np.testing.assert_allclose(f(X1, X2, np.array(0.7), np.array(0.3)), expected, rtol=1e-12)
    assert f.vectorized.sexpr() == (
        "(sum (mul (reshape (vector w1 w2) :shape (2, 1, 1)) (cdist_multi (index x1 : [0, 1, 2, 0, 3, 4]) "
        "(index x2 : [0, 1, 2, 0, 3, 4]) :lengths (3, 3) :p 2 :axis -3)) :axis -3)")
    assert _count(f.tree, "cdist") == 2 and _count(f.vectorized, "cdist") == 0
    # caching: the function ran once; later calls of the same shapes reuse the vector form
    vector_form = f.vectorized
    np.testing.assert_allclose(f(X1, X2, np.array(0.7), np.array(0.3)), expected, rtol=1e-12)
    assert len(calls) == 1 and f.vectorized is vector_form
    # partial evaluation: the weights become one constant array, as in vexpr's README
    inference = E.partial(f.vectorized, inputs={"w1": 0.75, "w2": 0.25})
    weights = inference.args[0].args[0]
    assert isinstance(weights, E.Const) and weights.value.tolist() == [[[0.75]], [[0.25]]]
    np.testing.assert_allclose(E.evaluate(inference, inputs={"x1": X1, "x2": X2}),
                               0.75 * scipy_cdist(X1[:, [0, 1, 2]], X2[:, [0, 1, 2]])
                               + 0.25 * scipy_cdist(X1[:, [0, 3, 4]], X2[:, [0, 3, 4]]), rtol=1e-12)
    # other shapes: traced again, cached beside the first
    f(X1[:4], X2[:3], np.array(0.7), np.array(0.3))
    assert len(calls) == 2 and len(f.cache) == 2


@pytest.mark.parametrize("how, segment, numpy_fn", [("sum_", "segment_sum", np.sum), ("prod", "segment_prod", np.prod)])
def test_a_stack_of_reductions_becomes_one_segment_reduction(how, segment, numpy_fn):
    reduce = getattr(E, how)

    @E.vectorized
    def f(x1, x2):
        return E.stack([reduce([x1, x2], axis=0), reduce([x1, x2, x2], axis=0)])

    a, b = np.full((3, 3), 1.5), np.full((3, 3), 2.0)
    got = f(a, b)
    np.testing.assert_allclose(got, np.stack([numpy_fn([a, b], axis=0), numpy_fn([a, b, b], axis=0)]))
    assert f.vectorized.sexpr() == f"({segment} (vector x1 x2 x1 x2 x2) :lengths (2, 3) :axis -3)"


def test_stacks_of_scalar_sums_and_selections_vectorize():
    @E.vectorized
    def f(a, b, c, d):
        return E.stack([E.sum_([a, b]), E.sum_([c, d])])

    np.testing.assert_allclose(f(1.0, 2.0, 3.0, 4.0), [3.0, 7.0])
    assert f.vectorized.op == "segment_sum"

    @E.vectorized
    def g(x):
        return E.stack([x[0] + x[1] + x[2], x[2] + x[3] + x[4]])

    x = np.array([10.0, 11.0, 12.0, 13.0, 14.0])
    np.testing.assert_allclose(g(x), [33.0, 39.0])
    assert g.vectorized.sexpr() == "(segment_sum (index x [0, 1, 2, 2, 3, 4]) :lengths (3, 3) :axis -1)"


def test_vexpr_kernel_test_lengthscales_and_columns_join_into_one_index():
    @E.vectorized
    def kernel(x1, x2, scale, lengthscale):
        return scale * E.sum_([E.cdist(x1[..., idx] / lengthscale[idx], x2[..., idx] / lengthscale[idx])
                               for idx in ([0, 1, 2], [2, 3, 4])], axis=0)

    X1, X2 = _x(2)
    ls = np.array([0.7, 0.8, 0.9, 1.0, 1.1])
    got = kernel(X1, X2, np.array(1.2), ls)
    expected = 1.2 * sum(scipy_cdist(X1[:, i] / ls[i], X2[:, i] / ls[i]) for i in ([0, 1, 2], [2, 3, 4]))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert kernel.vectorized.sexpr() == (
        "(mul scale (sum (cdist_multi (div (index x1 : [0, 1, 2, 2, 3, 4]) (index lengthscale [0, 1, 2, 2, 3, 4])) "
        "(div (index x2 : [0, 1, 2, 2, 3, 4]) (index lengthscale [0, 1, 2, 2, 3, 4])) :lengths (3, 3) :p 2 :axis -3) "
        ":axis -3))")


def test_vexpr_weighted_additive_kernel_vectorizes_to_one_distance_call():
    rng = np.random.default_rng(3)
    X1, X2 = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    beta, dirichlet = np.array([0.9, 0.1]), np.array([0.5, 0.2, 0.3])
    ls, scale = np.array([0.7, 0.8, 0.9, 1.0, 1.1]), np.array(1.2)
    groups, joint = [[0], [1], [2]], [0, 1, 2]

    @E.vectorized
    def kernel(x1, x2, scale, beta_w, dirichlet_w, lengthscale):
        def sub(idx):
            return E.cdist(x1[..., idx] / lengthscale[idx], x2[..., idx] / lengthscale[idx])
        additive = E.sum_(dirichlet_w * E.stack([sub(g) for g in groups], axis=-1), axis=-1)
        return scale * E.sum_(beta_w * E.stack([additive, sub(joint)], axis=-1), axis=-1)

    def by_hand(x1, x2):
        d = [scipy_cdist(x1[:, g] / ls[g], x2[:, g] / ls[g]) for g in groups + [joint]]
        return scale * (beta[0] * sum(w * di for w, di in zip(dirichlet, d[:3])) + beta[1] * d[3])

    np.testing.assert_allclose(kernel(X1, X2, scale, beta, dirichlet, ls), by_hand(X1, X2), rtol=1e-12)
    assert _count(kernel.tree, "cdist") == 4
    # as vexpr: the weights joined with a neutral 1 ([w, 1] * [d0, d1, d2, d012]), one multi-distance call
    assert _count(kernel.vectorized, "cdist") == 0 and _count(kernel.vectorized, "cdist_multi") == 1
    multi = next(n for n in E.iter_nodes(kernel.vectorized) if isinstance(n, E.Op) and n.op == "cdist_multi")
    assert multi.attrs["lengths"] == (1, 1, 1, 3)
    # a batch of 4 models (leading dimension of every argument) computes each model's kernel
    batched = kernel.with_batch_dims(1)
    rng = np.random.default_rng(4)
    B1, B2 = rng.normal(size=(4, 3, 5)), rng.normal(size=(4, 3, 5))
    betas, dirichlets = rng.dirichlet([1, 1], 4), rng.dirichlet([1, 1, 1], 4)
    lss, scales = rng.uniform(0.5, 2, (4, 5)), rng.uniform(0.5, 2, 4)
    got = batched(B1, B2, scales, betas, dirichlets, lss)
    for m in range(4):
        d = [scipy_cdist(B1[m][:, g] / lss[m][g], B2[m][:, g] / lss[m][g]) for g in groups + [joint]]
        want = scales[m] * (betas[m][0] * sum(w * di for w, di in zip(dirichlets[m], d[:3])) + betas[m][1] * d[3])
        np.testing.assert_allclose(got[m], want, rtol=1e-12)


def _matern(r):
    return (1 + 5 ** 0.5 * r + 5 / 3 * r ** 2) * np.exp(-(5 ** 0.5) * r)


@pytest.mark.parametrize("scrambled", [False, True])
def test_branch_grouping_batches_each_kind_of_branch_once(scrambled):
    idx = [[0, 1], [2, 3], [4, 5], [6, 7]]
    order = [0, 2, 1, 3] if scrambled else [0, 1, 2, 3]

    @E.vectorized
    def f(x1, x2):
        branches = [E.matern52(E.cdist(x1[..., idx[0]], x2[..., idx[0]])),
                    E.matern52(E.cdist(x1[..., idx[1]], x2[..., idx[1]])),
                    E.exp(-E.cdist(x1[..., idx[2]], x2[..., idx[2]], p=1)),
                    E.exp(-E.cdist(x1[..., idx[3]], x2[..., idx[3]], p=1))]
        return E.stack([branches[i] for i in order])

    X1, X2 = _x(4, 8, seed=5)
    by_hand = [_matern(scipy_cdist(X1[:, idx[0]], X2[:, idx[0]])), _matern(scipy_cdist(X1[:, idx[1]], X2[:, idx[1]])),
               np.exp(-scipy_cdist(X1[:, idx[2]], X2[:, idx[2]], "cityblock")),
               np.exp(-scipy_cdist(X1[:, idx[3]], X2[:, idx[3]], "cityblock"))]
    np.testing.assert_allclose(f(X1, X2), np.stack([by_hand[i] for i in order]), rtol=1e-12)
    v = f.vectorized
    assert _count(v, "cdist") == 0 and _count(v, "cdist_multi") == 2
    assert _count(v, "matern52") == 1 and _count(v, "exp") == 1
    if scrambled:
        assert isinstance(v, E.Index) and v.index == ((0, 2, 1, 3),)
    else:
        assert v.op == "concat"


def test_concatenated_branches_of_one_function_join():
    @E.vectorized
    def f(a, b, c):
        v = E.stack([a, b, c])
        return E.concatenate([E.matern52(v), E.matern52(v), E.exp(-v), E.exp(-v)])

    got = f(1.2, 1.3, 1.4)
    v = np.array([1.2, 1.3, 1.4])
    np.testing.assert_allclose(got, np.concatenate([_matern(v), _matern(v), np.exp(-v), np.exp(-v)]))
    assert f.vectorized.sexpr() == "(concat (matern52 (vector a b c a b c)) (exp (neg (vector a b c a b c))) :axis -1)"


def test_vectorize_undoes_unvectorize_and_keeps_the_values():
    x = E.var("x", (6,), [f"f{i}" for i in range(6)])
    x2 = E.var("x2", (6,))
    ls = E.param("lengthscale", (6,))
    written_out = E.unvectorize(E.sqrt(E.sum_(((x - x2) / ls) ** 2)))
    vector_form = E.vectorize(written_out)
    assert sum(1 for _ in E.iter_nodes(vector_form)) < sum(1 for _ in E.iter_nodes(written_out)) / 3
    rng = np.random.default_rng(2)
    values = dict(params={"lengthscale": rng.uniform(0.5, 2, 6)}, inputs={"x": rng.normal(size=(4, 6)),
                                                                          "x2": rng.normal(size=(4, 6))})
    np.testing.assert_allclose(E.evaluate(vector_form, **values), E.evaluate(written_out, **values), rtol=1e-12)


def test_a_user_rule_in_the_table_vectorizes_a_function_of_ones_own():
    calls = []
    E.register_function("scaled_tanh", ["x"], numpy=lambda x: (calls.append(np.shape(x)), 2 * np.tanh(x))[1])
    E.register_function("scaled_tanh_block", ["x"], numpy=lambda x: (calls.append(("block", np.shape(x))),
                                                                       2 * np.tanh(x))[1])
    E.STACK_RULES["scaled_tanh"] = lambda items, axis, vec: E.call(
        "scaled_tanh_block", vec(E.stack([i.args[0] for i in items], axis)))
    try:
        tree = E.stack([E.call("scaled_tanh", E.var(n)) for n in "abc"])
        v = E.vectorize(tree)
        assert v.sexpr() == "(scaled_tanh_block (vector a b c))"
        np.testing.assert_allclose(E.evaluate(v, inputs={"a": 0.1, "b": 0.2, "c": 0.3}), 2 * np.tanh([0.1, 0.2, 0.3]))
        assert calls == [("block", (3,))]
    finally:
        del E.STACK_RULES["scaled_tanh"]


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_vectorized_gradients_match_the_tree_as_written(backend):
    lib = pytest.importorskip(backend)

    @E.vectorized(params=["w", "lengthscale"])
    def kernel(x1, x2, w, lengthscale):
        parts = [E.matern52(E.cdist(x1[..., [j]] / lengthscale[j], x2[..., [j]] / lengthscale[j])) for j in range(4)]
        parts.append(E.exp(-E.cdist(x1[..., [4, 5, 6]] / lengthscale[4], x2[..., [4, 5, 6]] / lengthscale[4], p=1)))
        return E.sum_(w * E.stack(parts, axis=-1), axis=-1)

    rng = np.random.default_rng(4)
    X = rng.normal(size=(6, 7))
    w, ls = rng.uniform(0.2, 1, 5), rng.uniform(0.5, 2, 5)

    def total(fn, w, ls):
        return fn(X, X, w, ls).sum()

    if backend == "torch":
        def grad(fn):
            wt = lib.tensor(w, requires_grad=True)
            lt = lib.tensor(ls, requires_grad=True)
            total(fn, wt, lt).backward()
            return np.concatenate([wt.grad.numpy(), lt.grad.numpy()])
        X = lib.tensor(X)
    else:
        lib.config.update("jax_enable_x64", True)

        def grad(fn):
            g = lib.grad(lambda a, b: total(fn, a, b), argnums=(0, 1))(lib.numpy.asarray(w), lib.numpy.asarray(ls))
            return np.concatenate([np.asarray(g[0]), np.asarray(g[1])])
        X = lib.numpy.asarray(X)
    vectorized, written = grad(kernel), grad(kernel.as_written)
    assert np.all(np.isfinite(vectorized))  # the zero distances on the diagonal have zero gradients
    np.testing.assert_allclose(vectorized, written, rtol=1e-9, atol=1e-12)
    assert _count(kernel.vectorized, "cdist_multi") == 1 and _count(kernel.vectorized, "cdist") == 1


def test_unvectorize_shows_a_vectorized_tree_as_it_was_written():
    names = [f"f{i}" for i in range(6)]
    x = E.var("x", (6,), names, element_format="{label}")
    x2 = E.var("x2", (6,), names, display="x′", element_format="{label}′")
    ls, w = E.param("lengthscale", (6,), names), E.param("w", (2,), ["a", "b"])
    tree = E.sum_(w * E.stack([E.sum_(E.exp(-(x[[0, 1, 2]] - x2[[0, 1, 2]]) / ls[[0, 1, 2]])),
                               E.prod(((x - x2) / ls)[[3, 4, 5]])]))
    shown = E.unvectorize(tree)
    runs = E.vectorize(shown)
    assert "(index lengthscale [3, 4, 5])" in runs.sexpr()  # the elements of a vector parameter, one index again
    assert E.to_template(E.unvectorize(runs)) == E.to_template(shown)
    rng = np.random.default_rng(0)
    values = dict(params={"lengthscale": rng.uniform(1, 2, 6), "w": np.array([0.3, 0.7])},
                  inputs={"x": rng.normal(size=6), "x2": rng.normal(size=6)})
    expected = 0.3 * np.exp(-(values["inputs"]["x"][:3] - values["inputs"]["x2"][:3])
                            / values["params"]["lengthscale"][:3]).sum() \
        + 0.7 * np.prod(((values["inputs"]["x"] - values["inputs"]["x2"]) / values["params"]["lengthscale"])[3:])
    for t in (tree, shown, runs):
        assert float(E.evaluate(t, **values)) == pytest.approx(expected, rel=1e-12)
