"""The Gaussian process the GP experiments share, written in JAX: kernel, priors, marginal
likelihood, and a batched L-BFGS that fits many models at once, each with its own stopping rule.

The model, for a configuration x with scalar hyperparameters u (scaled to [0, 1]) and categorical
choices c::

    k(x, x') = outputscale * matern52(|(u - u') / lengthscale_u|) * exp(-sum_j [c_j != c'_j] / lengthscale_c_j)
    y ~ GP(mean, k) + Normal(0, noise)

Every lengthscale (scalar and categorical alike) gets the same Gamma prior, the outputscale and the
noise get Gamma priors of their own, and the constant mean gets none. Fitting maximises
``log p(y | theta) + sum log prior(constrained parameter)`` with no change-of-variables term, the same
objective GPyTorch's ``ExactMarginalLogLikelihood`` maximises, so the optimum does not depend on how
the parameters are represented inside the optimiser (here: softplus of a raw value, as GPyTorch).

Why a hand-written L-BFGS: it is written in *reverse communication* style, so one call of
``lbfgs_update`` consumes exactly one loss/gradient evaluation and says where to evaluate next.
That lets a batch of models share one compiled loop while each model takes its own line-search
steps and stops by its own rule, and lets the per-model driver compute *only* the models that have
not converged (``fit_per_model``), so batching costs no extra evaluations over fitting one by one.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

# One thread for XLA's CPU kernels (read when the backend starts, so set before first use). Each
# model is a few dozen points: threads only add synchronisation, and on a busy 2-core machine
# they made evaluations 10-50x slower.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # only where OpenBLAS is not loaded yet; see limit_blas_threads

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_enable_x64", True)  # GP fitting needs float64 Cholesky factors


def limit_blas_threads(threads: int = 1):
    """Limit OpenBLAS (numpy/scipy's, which XLA's CPU Cholesky calls through scipy's LAPACK) to
    ``threads``. Its thread pool spins while waiting; with other processes on the cores that made a
    64-point Cholesky 50x slower. Returns the limiter (keep it alive) or None without threadpoolctl."""
    import scipy.linalg  # noqa: F401  (loads scipy's OpenBLAS, so the limit reaches it too)

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=threads, user_api="blas")

SQRT5 = math.sqrt(5.0)
NOISE_FLOOR = 1e-6  # keeps K + noise*I factorable; the noise prior keeps the optimum far above it


# ----------------------------------------------------------------------------------- priors
class Gamma(NamedTuple):
    """Gamma(concentration, rate) on a positive parameter. A NamedTuple, so a pytree: priors are
    traced values inside the compiled fits, and changing them does not recompile anything."""

    concentration: float
    rate: float

    @property
    def mode(self) -> float:
        return max(self.concentration - 1.0, 0.0) / self.rate

    def log_prob(self, x):
        a, b = self.concentration, self.rate
        return a * jnp.log(b) - jax.scipy.special.gammaln(a) + (a - 1.0) * jnp.log(x) - b * x

    def __str__(self) -> str:
        return f"Gamma({self.concentration:g}, {self.rate:g})"


class Priors(NamedTuple):
    lengthscale: Gamma
    outputscale: Gamma = Gamma(2.0, 0.15)
    noise: Gamma = Gamma(1.1, 0.05)
    weight: Gamma = Gamma(2.0, 2.0)   # the essay kernel's mixing weights (EssayLayout): mode 0.5, mean 1


# The two lengthscale priors the essays compare. Both have their mode at 1/3 of the unit cube; the
# loose one has a mean of 3 (not 0.5) and lets a lengthscale grow long enough to switch an input off.
TIGHT = Priors(Gamma(3.0, 6.0))
LOOSE = Priors(Gamma(1.125, 0.375))
PRIORS = {"tight": TIGHT, "loose": LOOSE}


# ------------------------------------------------------------------------------- parameters
def softplus(raw):
    return jnp.logaddexp(raw, 0.0)


def inverse_softplus(value):
    value = np.asarray(value, dtype=np.float64)
    return value + np.log(-np.expm1(-value))


@dataclass(frozen=True)
class Layout:
    """Where each of a model's parameters sits in its flat vector ``theta``.

    ``theta = [raw lengthscales (one per feature) | raw outputscale | raw noise | mean]``; the names
    are the ones the traces and the kernel template use: ``lengthscale[log_lr]``, ...,
    ``cat_lengthscale[optimizer]``, ..., ``outputscale``, ``noise``, ``mean``.
    """

    continuous: tuple[str, ...]
    categorical: tuple[str, ...] = ()

    @property
    def features(self) -> tuple[str, ...]:
        return self.continuous + self.categorical

    @property
    def size(self) -> int:
        return len(self.features) + 3

    @property
    def names(self) -> list[str]:
        return ([f"lengthscale[{f}]" for f in self.continuous] + [f"cat_lengthscale[{f}]" for f in self.categorical]
                + ["outputscale", "noise", "mean"])

    def unpack(self, theta):
        """Constrained (lengthscale vector, outputscale, noise, mean) from a raw vector ``(..., P)``."""
        d = len(self.features)
        return (softplus(theta[..., :d]), softplus(theta[..., d]),
                softplus(theta[..., d + 1]) + NOISE_FLOOR, theta[..., d + 2])

    def constrained(self, theta):
        """``(..., P)`` raw -> ``(..., P)`` constrained values, in the order of ``names``."""
        ls, outputscale, noise, mean = self.unpack(theta)
        return jnp.concatenate([ls, outputscale[..., None], noise[..., None], mean[..., None]], axis=-1)

    def raw(self, lengthscale, outputscale, noise, mean) -> np.ndarray:
        """The raw vector for constrained values (lengthscale: scalar or one per feature)."""
        ls = np.broadcast_to(np.asarray(lengthscale, dtype=np.float64), (len(self.features),))
        return np.concatenate([inverse_softplus(ls), inverse_softplus([outputscale]),
                               inverse_softplus([noise - NOISE_FLOOR]), [float(mean)]])

    def initial(self, priors: Priors) -> np.ndarray:
        """Where every fit starts: lengthscales at their prior's mode (1/3 for both priors here),
        unit outputscale (the targets are standardised), noise 0.1, mean 0."""
        return self.raw(priors.lengthscale.mode or 0.5, 1.0, 0.1, 0.0)

    # what the model code asks of a layout (EssayLayout answers the same questions)
    def gram(self, theta, u1, c1, u2, c2):
        ls, outputscale, _, _ = self.unpack(theta)
        return kernel(u1, c1, u2, c2, ls, outputscale)

    def prior_variance(self, theta):
        """k(x, x), the same for every x."""
        return self.unpack(theta)[1]

    def noise_mean(self, theta):
        _, _, noise, mean = self.unpack(theta)
        return noise, mean

    def log_prior(self, theta, priors: Priors):
        ls, outputscale, noise, _ = self.unpack(theta)
        return (jnp.sum(priors.lengthscale.log_prob(ls)) + priors.outputscale.log_prob(outputscale)
                + priors.noise.log_prob(noise))


# ------------------------------------------------------------------------------------ model
def kernel(u1, c1, u2, c2, lengthscale, outputscale):
    """Matern-5/2 ARD over the scalar inputs times an exponential kernel over the choices."""
    d = u1.shape[-1]
    z1, z2 = u1 / lengthscale[:d], u2 / lengthscale[:d]
    r2 = jnp.sum((z1[:, None, :] - z2[None, :, :]) ** 2, axis=-1)
    r = jnp.sqrt(jnp.maximum(r2, 1e-30))  # the floor keeps d r / d r2 finite on the diagonal
    matern = (1.0 + SQRT5 * r + (5.0 / 3.0) * r2) * jnp.exp(-SQRT5 * r)
    mismatch = (c1[:, None, :] != c2[None, :, :]).astype(u1.dtype)
    categorical = jnp.exp(-jnp.sum(mismatch / lengthscale[d:], axis=-1))
    return outputscale * matern * categorical


@jax.custom_vjp
def gaussian_nll(K, r):
    """-log N(r | 0, K). Its gradient is written out, 0.5 (K^-1 - a a^T) with a = K^-1 r, because
    differentiating through the Cholesky factor costs ~30x the forward pass in XLA on a CPU."""
    return _gaussian_nll_fwd(K, r)[0]


def _gaussian_nll_fwd(K, r):
    """(value without the 0.5 n log 2 pi term, saved values for the gradient)."""
    n = r.shape[0]
    L = jnp.linalg.cholesky(K)
    # L^-T by solving L^T X = I: of the equivalent triangular solves this one is fast in XLA on a
    # CPU both alone and batched (the plain left-side solve is ~8x slower under vmap).
    L_inv_T = jax.lax.linalg.triangular_solve(L, jnp.eye(n, dtype=K.dtype), left_side=True, lower=True,
                                              transpose_a=True)
    K_inv = L_inv_T @ L_inv_T.T
    alpha = K_inv @ r
    value = 0.5 * r @ alpha + jnp.sum(jnp.log(jnp.diag(L)))
    return value, (K_inv, alpha)


def _gaussian_nll_bwd(saved, g):
    K_inv, alpha = saved
    return g * 0.5 * (K_inv - jnp.outer(alpha, alpha)), g * alpha


gaussian_nll.defvjp(_gaussian_nll_fwd, _gaussian_nll_bwd)


def covariance(theta, u, c, mask, *, layout: Layout):
    """K + noise I of one model. Padding points (``mask`` 0) get a unit diagonal and no covariance
    with anything, which leaves the likelihood of the real points exactly as it was: that lets
    datasets of different sizes share one compiled fit."""
    noise, _ = layout.noise_mean(theta)
    both = mask[:, None] * mask[None, :]
    return layout.gram(theta, u, c, u, c) * both + jnp.diag(noise * mask + (1.0 - mask))


def neg_log_posterior(theta, u, c, y, mask, *, layout: Layout, priors: Priors):
    """-(log marginal likelihood + log priors) of one model: ``u (n, Dc)``, ``c (n, Dk)``,
    ``y (n,)``, ``mask (n,)`` (1 for a point, 0 for padding)."""
    _, mean = layout.noise_mean(theta)
    K = covariance(theta, u, c, mask, layout=layout)
    log_prior = layout.log_prior(theta, priors)
    return gaussian_nll(K, (y - mean) * mask) + 0.5 * jnp.sum(mask) * math.log(2 * math.pi) - log_prior


def predict(theta, u, c, y, mask, u_new, c_new, *, layout: Layout):
    """Posterior mean and variance (of the latent function) at ``u_new, c_new`` for one model."""
    _, mean = layout.noise_mean(theta)
    L = jnp.linalg.cholesky(covariance(theta, u, c, mask, layout=layout))
    Ks = layout.gram(theta, u_new, c_new, u, c) * mask[None, :]
    alpha = jax.scipy.linalg.cho_solve((L, True), (y - mean) * mask)
    v = jax.scipy.linalg.solve_triangular(L, Ks.T, lower=True)
    var = layout.prior_variance(theta) - jnp.sum(v * v, axis=0)
    return mean + Ks @ alpha, var


# ------------------------------------------------------------------------------- template
def expression(layout):
    """The kernel as a :mod:`sitegen.expr` program (vectors kept; see ``template`` for the printed
    form). Its parameters are named as ``Layout.names``; ``tests/test_experiments_gp.py`` checks it
    computes what ``kernel`` computes."""
    import sitegen.expr as E

    if isinstance(layout, EssayLayout):
        return essay_expression(layout)
    cont, cat = list(layout.continuous), list(layout.categorical)
    u = E.var("u", (len(cont),), cont, element_format="{label}")
    u2 = E.var("u2", (len(cont),), cont, display="u′", element_format="{label}′")
    lengthscale = E.param("lengthscale", (len(cont),), cont, options={"log": True})
    r = E.sqrt(E.sum_(((u - u2) / lengthscale) ** 2))
    k = E.param("outputscale", options={"log": True}) * E.matern52(r)
    names = {"r": r}
    comments = {"r": "distance over the scalar hyperparameters, each scaled to [0, 1] over the sweep"}
    if cat:
        c = E.var("c", (len(cat),), cat, element_format="{label}")
        c2 = E.var("c2", (len(cat),), cat, display="c′", element_format="{label}′")
        d_cat = E.sum_(E.ne(c, c2) / E.param("cat_lengthscale", (len(cat),), cat, options={"log": True}))
        k = k * E.exp(-d_cat)
        names["d_cat"] = d_cat
        comments["d_cat"] = "how many categorical choices differ, each weighted by its own lengthscale"
    return E.let(k, names, "k", comments=comments)


OBSERVATION_LINES = (
    "# a configuration's (log) validation error: constant mean, the kernel above, Gaussian noise",
    "y = ⟦mean⟧ + GP(0, k) + Normal(0, ⟦noise | log⟧)   # noise is a variance",
)


def template(layout, style: str = "python") -> str:
    """The printed model: the kernel written out feature by feature, then the observation model.
    Every placeholder is a name in ``layout.names``, the names the traces use. The essay kernel is
    printed as the essay prints it, ``compare('log_epochs') / ⟦lengthscale⟧`` (see ``compare_form``)."""
    import sitegen.expr as E

    tree = E.unvectorize(expression(layout))
    if isinstance(layout, EssayLayout):
        tree = compare_form(tree)
    text = E.to_template(tree, style=style)
    if isinstance(layout, EssayLayout):
        text = COMPARE_LINE + "\n" + text
    return text + "\n".join(OBSERVATION_LINES) + "\n"


COMPARE_LINE = "# compare('x') = x - x′: two configurations' values of x (scaled to [0, 1] over the sweep) subtracted"


# ------------------------------------------------------------------- the essay's kernel
@dataclass(frozen=True)
class EssayLayout:
    """The kernel of the essay this project grew from: a *factorized* kernel (a kernel over the
    scalar hyperparameters plus a kernel over the choice, each with its own weight) plus a *joint*
    kernel (their product), each part with its own lengthscales, all times one output scale::

        k = outputscale * (w_factorized * (w_scalar * matern52(r_f) + w_choice * exp(-d_f))
                           + w_joint * matern52(r_j) * exp(-d_j))

    ``r`` is the scaled Euclidean distance over the scalar inputs, ``d`` the scaled L1 distance
    over the choice's one-hot columns (``is_sgd``, ...). With 20 scalars and a 4-way choice that is
    48 lengthscales, 4 weights, the output scale, noise and mean: 55 parameters.

    ``theta = [fact_lengthscale (Dc) | fact_choice_lengthscale (L) | joint_lengthscale (Dc) |
    joint_choice_lengthscale (L) | w_factorized, w_scalar, w_choice, w_joint | outputscale | noise |
    mean]``, all but the mean through softplus. ``c`` holds the choice as an integer code (one column).
    """

    continuous: tuple[str, ...]
    categorical: str
    levels: tuple[str, ...]

    WEIGHTS = ("w_factorized", "w_scalar", "w_choice", "w_joint")

    @property
    def choice_names(self) -> list[str]:
        return [f"is_{level}" for level in self.levels]

    @property
    def lengthscales(self) -> int:
        return 2 * (len(self.continuous) + len(self.levels))

    @property
    def size(self) -> int:
        return self.lengthscales + len(self.WEIGHTS) + 3

    @property
    def names(self) -> list[str]:
        cont, choice = list(self.continuous), self.choice_names
        return ([f"fact_lengthscale[{f}]" for f in cont] + [f"fact_choice_lengthscale[{f}]" for f in choice]
                + [f"joint_lengthscale[{f}]" for f in cont] + [f"joint_choice_lengthscale[{f}]" for f in choice]
                + list(self.WEIGHTS) + ["outputscale", "noise", "mean"])

    def _split(self, theta):
        dc, nl, n_ls = len(self.continuous), len(self.levels), self.lengthscales
        ls = softplus(theta[..., :n_ls])
        w = softplus(theta[..., n_ls:n_ls + 4])
        outputscale = softplus(theta[..., n_ls + 4])
        noise = softplus(theta[..., n_ls + 5]) + NOISE_FLOOR
        mean = theta[..., n_ls + 6]
        parts = (ls[..., :dc], ls[..., dc:dc + nl], ls[..., dc + nl:2 * dc + nl], ls[..., 2 * dc + nl:])
        return parts, w, outputscale, noise, mean

    def constrained(self, theta):
        n_ls = self.lengthscales
        _, _, _, noise, _ = self._split(theta)
        return jnp.concatenate([softplus(theta[..., :n_ls + 5]), noise[..., None], theta[..., n_ls + 6:n_ls + 7]],
                               axis=-1)

    def raw(self, lengthscale, weight, outputscale, noise, mean) -> np.ndarray:
        ls = np.broadcast_to(np.asarray(lengthscale, dtype=np.float64), (self.lengthscales,))
        w = np.broadcast_to(np.asarray(weight, dtype=np.float64), (4,))
        return np.concatenate([inverse_softplus(ls), inverse_softplus(w), inverse_softplus([outputscale]),
                               inverse_softplus([noise - NOISE_FLOOR]), [float(mean)]])

    def initial(self, priors: Priors) -> np.ndarray:
        """Each lengthscale at its prior's mode times the square root of the number of inputs its
        distance sums over (20 scalars, 4 one-hot columns), weights 0.5 (so k(x, x) starts at the
        output scale, 1: the targets are standardised), noise 0.1, mean 0.

        Why not the mode itself: over 20 inputs scaled to [0, 1], lengthscales of 1/3 put two random
        configurations about r = 5.5 apart, where the Matern kernel is 3e-4: every correlation
        starts near zero, the likelihood's gradient with respect to the lengthscales vanishes, and
        the fits stopped where they started. Scaled by sqrt(20) the typical r is about 1.2 (kernel
        about 0.4), the same start for both priors."""
        mode = priors.lengthscale.mode or 0.5
        dc, nl = len(self.continuous), len(self.levels)
        scale = np.concatenate([np.full(dc, math.sqrt(dc)), np.full(nl, math.sqrt(nl))] * 2)
        return self.raw(mode * scale, 0.5, 1.0, 0.1, 0.0)

    def gram(self, theta, u1, c1, u2, c2):
        (ls_f, ls_fc, ls_j, ls_jc), w, outputscale, _, _ = self._split(theta)
        levels = len(self.levels)
        h1 = jax.nn.one_hot(c1[:, 0], levels, dtype=u1.dtype)
        h2 = jax.nn.one_hot(c2[:, 0], levels, dtype=u1.dtype)

        def matern(ls):
            z1, z2 = u1 / ls, u2 / ls
            r2 = jnp.sum((z1[:, None, :] - z2[None, :, :]) ** 2, axis=-1)
            r = jnp.sqrt(jnp.maximum(r2, 1e-30))
            return (1.0 + SQRT5 * r + (5.0 / 3.0) * r2) * jnp.exp(-SQRT5 * r)

        def choice(ls):
            return jnp.exp(-jnp.sum(jnp.abs(h1[:, None, :] - h2[None, :, :]) / ls, axis=-1))

        factorized = w[1] * matern(ls_f) + w[2] * choice(ls_fc)
        joint = matern(ls_j) * choice(ls_jc)
        return outputscale * (w[0] * factorized + w[3] * joint)

    def prior_variance(self, theta):
        _, w, outputscale, _, _ = self._split(theta)
        return outputscale * (w[0] * (w[1] + w[2]) + w[3])

    def noise_mean(self, theta):
        _, _, _, noise, mean = self._split(theta)
        return noise, mean

    def log_prior(self, theta, priors: Priors):
        parts, w, outputscale, noise, _ = self._split(theta)
        return (sum(jnp.sum(priors.lengthscale.log_prob(ls)) for ls in parts) + jnp.sum(priors.weight.log_prob(w))
                + priors.outputscale.log_prob(outputscale) + priors.noise.log_prob(noise))


def essay_expression(layout: EssayLayout):
    """The essay kernel as a :mod:`sitegen.expr` program, vectors kept (evaluable: the tests check
    it computes ``EssayLayout.gram``). Inputs: ``u, u2`` (scalars in [0, 1]) and ``h, h2`` (the
    choice one-hot)."""
    import sitegen.expr as E

    cont, choice = list(layout.continuous), layout.choice_names
    u = E.var("u", (len(cont),), cont, element_format="{label}")
    u2 = E.var("u2", (len(cont),), cont, display="u′", element_format="{label}′")
    h = E.var("h", (len(choice),), choice, element_format="{label}")
    h2 = E.var("h2", (len(choice),), choice, display="h′", element_format="{label}′")

    def ls(name, labels):
        return E.param(name, (len(labels),), labels, options={"log": True})

    def weight(name):
        return E.param(name, options={"log": True})

    r_f = E.sqrt(E.sum_(((u - u2) / ls("fact_lengthscale", cont)) ** 2))
    d_f = E.sum_(E.abs_(h - h2) / ls("fact_choice_lengthscale", choice))
    r_j = E.sqrt(E.sum_(((u - u2) / ls("joint_lengthscale", cont)) ** 2))
    d_j = E.sum_(E.abs_(h - h2) / ls("joint_choice_lengthscale", choice))
    factorized = weight("w_scalar") * E.matern52(r_f) + weight("w_choice") * E.exp(-d_f)
    joint = E.matern52(r_j) * E.exp(-d_j)
    k = E.param("outputscale", options={"log": True}) * (weight("w_factorized") * factorized
                                                        + weight("w_joint") * joint)
    comments = {
        "r_scalar": "factorized kernel, scalar part: distance over the 20 scalar hyperparameters "
                    "(each scaled to [0, 1] over the sweep)",
        "d_choice": "factorized kernel, choice part: distance over the optimiser's one-hot columns",
        "r_joint": "joint kernel: the same distances with lengthscales of its own",
        "d_joint": None,
        "k": "k = factorized (scalar + choice, weighted) + joint (scalar x choice), times the output scale",
    }
    return E.let(k, {"r_scalar": r_f, "d_choice": d_f, "r_joint": r_j, "d_joint": d_j}, "k",
                 comments={n: c for n, c in comments.items() if c})


def _register_compare():
    import sitegen.expr as E

    if "compare" not in E.FUNCTIONS:
        E.register_function("compare", ("name",),
                            doc="compare('x'): configuration x's value of hyperparameter x minus x′'s")


def compare_form(tree):
    """Rewrite an unvectorized essay kernel into the essay's pseudocode: every ``u[f] - u′[f]`` (and
    ``h[f] - h′[f]``) becomes ``compare('f')``. A printing form only (``compare`` has no
    implementation); :func:`essay_expression` is the evaluable one."""
    import sitegen.expr as E

    _register_compare()

    def rewrite(node):
        if isinstance(node, E.Op) and node.op == "sub":
            a, b = node.args
            if (isinstance(a, E.Index) and isinstance(b, E.Index) and isinstance(a.node, E.Var)
                    and isinstance(b.node, E.Var) and (a.node.name, b.node.name) in (("u", "u2"), ("h", "h2"))
                    and a.index == b.index):
                label = a.node.element_label(a.index)
                return E.call("compare", E.var(f"'{label}'"))
        return node

    if isinstance(tree, E.Program):
        return tree.map(lambda t: E.map_tree(t, rewrite))
    return E.map_tree(tree, rewrite)


# --------------------------------------------------------------- reverse-communication L-BFGS
class Options(NamedTuple):
    """Stopping rules (the defaults are scipy's L-BFGS-B defaults, which BoTorch uses)."""

    ftol: float = 2.220446049250313e-09  # stop when the relative decrease of f is below this
    gtol: float = 1e-5                    # ... or the largest |gradient| component is below this
    max_evals: int = 2000                 # ... or after this many evaluations
    history: int = 10                     # correction pairs kept
    c1: float = 1e-4                      # sufficient-decrease (Armijo) constant


# why a model stopped
RUNNING, CONVERGED_F, CONVERGED_G, LINE_SEARCH_FAILED, MAX_EVALS, BAD_START = range(6)
STATUS = {RUNNING: "running", CONVERGED_F: "ftol", CONVERGED_G: "gtol",
          LINE_SEARCH_FAILED: "line search failed", MAX_EVALS: "max evals", BAD_START: "non-finite start"}


class State(NamedTuple):
    x: jax.Array        # accepted point (P,)
    f: jax.Array        # loss at x
    g: jax.Array        # gradient at x (P,)
    trial: jax.Array    # where the next evaluation happens (P,)
    d: jax.Array        # search direction (P,)
    t: jax.Array        # step length of the trial along d
    gd: jax.Array       # g . d
    S: jax.Array        # steps, newest last (m, P)
    Y: jax.Array        # gradient changes, newest last (m, P)
    rho: jax.Array      # 1 / (s . y) (m,)
    n_hist: jax.Array   # valid pairs (the last n_hist rows)
    evals: jax.Array    # evaluations consumed
    started: jax.Array  # has f/g at x
    done: jax.Array
    status: jax.Array


def lbfgs_init(x0, history: int = 10) -> State:
    """State for one model (vmap or pass a batch ``x0 (B, P)`` to ``lbfgs_init_batch``)."""
    x0 = jnp.asarray(x0, dtype=jnp.float64)
    p = x0.shape[-1]
    zero = jnp.zeros((), jnp.float64)
    return State(x=x0, f=zero, g=jnp.zeros(p), trial=x0, d=jnp.zeros(p), t=jnp.ones(()), gd=zero,
                 S=jnp.zeros((history, p)), Y=jnp.zeros((history, p)), rho=jnp.zeros(history),
                 n_hist=jnp.zeros((), jnp.int32), evals=jnp.zeros((), jnp.int32),
                 started=jnp.zeros((), bool), done=jnp.zeros((), bool), status=jnp.zeros((), jnp.int32))


def lbfgs_init_batch(x0, history: int = 10) -> State:
    return jax.vmap(partial(lbfgs_init, history=history))(jnp.asarray(x0, dtype=jnp.float64))


def _two_loop(g, S, Y, rho, n_hist):
    """-H g for the L-BFGS inverse-Hessian estimate H held in (S, Y) (newest pair last; the last
    ``n_hist`` rows are valid). Written with scans, not unrolled, to keep compile times short."""
    m = S.shape[0]
    valid = jnp.arange(m) >= m - n_hist

    def backward(q, i):
        a = jnp.where(valid[i], rho[i] * (S[i] @ q), 0.0)
        return q - a * Y[i], a

    q, alphas = jax.lax.scan(backward, g, jnp.arange(m - 1, -1, -1))
    alphas = alphas[::-1]
    yy = Y[-1] @ Y[-1]
    gamma = jnp.where(n_hist > 0, (S[-1] @ Y[-1]) / jnp.where(yy > 0, yy, 1.0), 1.0)

    def forward(r, i):
        b = rho[i] * (Y[i] @ r)
        return r + jnp.where(valid[i], alphas[i] - b, 0.0) * S[i], None

    r, _ = jax.lax.scan(forward, gamma * q, jnp.arange(m))
    return -r


def lbfgs_update(s: State, f_new, g_new, opts: Options = Options()) -> State:
    """Consume the loss and gradient at ``s.trial``; return the state with the next trial point.

    Line search: backtracking with safeguarded quadratic interpolation until the Armijo condition
    holds; the first trial of every iteration is the full L-BFGS step.
    """
    finite = jnp.isfinite(f_new) & jnp.all(jnp.isfinite(g_new))
    first = ~s.started
    accept = finite & (first | (f_new <= s.f + opts.c1 * s.t * s.gd))

    # --- accepted: store the correction pair, test convergence, choose a new direction
    step, dg = s.trial - s.x, g_new - s.g
    sy, yy = step @ dg, dg @ dg
    keep_pair = s.started & (sy > 1e-10 * yy) & (sy > 0)
    S = jnp.where(keep_pair, jnp.roll(s.S, -1, axis=0).at[-1].set(step), s.S)
    Y = jnp.where(keep_pair, jnp.roll(s.Y, -1, axis=0).at[-1].set(dg), s.Y)
    rho = jnp.where(keep_pair, jnp.roll(s.rho, -1).at[-1].set(1.0 / jnp.where(sy > 0, sy, 1.0)), s.rho)
    n_hist = jnp.where(keep_pair, jnp.minimum(s.n_hist + 1, S.shape[0]), s.n_hist)
    rel_decrease = (s.f - f_new) / jnp.maximum(jnp.maximum(jnp.abs(s.f), jnp.abs(f_new)), 1.0)
    f_converged = s.started & (rel_decrease <= opts.ftol)
    g_converged = jnp.max(jnp.abs(g_new)) <= opts.gtol
    d = _two_loop(g_new, S, Y, rho, n_hist)
    gd = g_new @ d
    descent = jnp.isfinite(gd) & (gd < 0)
    d = jnp.where(descent, d, -g_new)
    gd = jnp.where(descent, gd, -(g_new @ g_new))
    n_hist = jnp.where(descent, n_hist, 0)
    t0 = jnp.where(n_hist > 0, 1.0, jnp.minimum(1.0, 1.0 / jnp.maximum(jnp.linalg.norm(d), 1e-300)))
    accepted = State(x=s.trial, f=f_new, g=g_new, trial=s.trial + t0 * d, d=d, t=t0, gd=gd,
                     S=S, Y=Y, rho=rho, n_hist=n_hist, evals=s.evals, started=jnp.ones((), bool),
                     done=f_converged | g_converged,
                     status=jnp.where(g_converged, CONVERGED_G, jnp.where(f_converged, CONVERGED_F, RUNNING)))

    # --- rejected: shorten the step (quadratic model of f along d, kept within [0.1 t, 0.5 t])
    curvature = f_new - s.f - s.gd * s.t
    t_quad = -s.gd * s.t ** 2 / (2.0 * jnp.where(curvature > 0, curvature, 1.0))
    t_new = jnp.where(finite & (curvature > 0), jnp.clip(t_quad, 0.1 * s.t, 0.5 * s.t), 0.25 * s.t)
    stuck = t_new * jnp.max(jnp.abs(s.d)) < 1e-12
    rejected = s._replace(trial=s.x + t_new * s.d, t=t_new, done=stuck | first,
                          status=jnp.where(first, BAD_START, jnp.where(stuck, LINE_SEARCH_FAILED, RUNNING)))

    new = jax.tree.map(lambda a, r: jnp.where(accept, a, r), accepted, rejected)
    evals = s.evals + 1
    out_of_budget = (~new.done) & (evals >= opts.max_evals)
    return new._replace(evals=evals, done=new.done | out_of_budget,
                        status=jnp.where(out_of_budget, MAX_EVALS, new.status))


# ----------------------------------------------------------------------------------- drivers
class Problem(NamedTuple):
    """B models' data, stacked: ``u (B, n, Dc)`` in [0, 1], ``c (B, n, Dk)`` integer codes,
    ``y (B, n)``, ``mask (B, n)``: 1 for a point, 0 for padding (see ``covariance``)."""

    u: jax.Array
    c: jax.Array
    y: jax.Array
    mask: jax.Array

    @classmethod
    def of(cls, u, c, y, mask=None) -> "Problem":
        u, c, y = np.asarray(u, np.float64), np.asarray(c, np.int32), np.asarray(y, np.float64)
        mask = np.ones(y.shape) if mask is None else np.asarray(mask, np.float64)
        return cls(jnp.asarray(u), jnp.asarray(c), jnp.asarray(y), jnp.asarray(mask))

    @property
    def models(self) -> int:
        return self.y.shape[0]

    def take(self, index) -> "Problem":
        return Problem(*(a[index] for a in self))

    def padded(self, models: int | None = None, points: int | None = None) -> "Problem":
        """Pad with masked points to ``points`` per model and with copies of model 0 to ``models``
        models, so problems of different sizes share one compiled fit."""
        B, n = self.y.shape
        models, points = max(models or B, B), max(points or n, n)
        extra = points - n

        def pad(a, value=0):
            a = np.asarray(a)
            width = [(0, 0), (0, extra)] + [(0, 0)] * (a.ndim - 2)
            a = np.pad(a, width, constant_values=value)
            return np.concatenate([a, np.repeat(a[:1], models - B, axis=0)]) if models > B else a

        return Problem(*(jnp.asarray(pad(a)) for a in self))


def _where_batch(mask, new, old):
    return jax.tree.map(lambda a, b: jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b), new, old)


@partial(jax.jit, static_argnames=("layout", "opts", "steps", "chunk"))
def per_model_steps(state: State, problem: Problem, priors: Priors, *, layout, opts, steps, chunk=1):
    """Run ``steps`` evaluation rounds; in each, evaluate only the models not yet done.

    The active models are gathered with ``jnp.nonzero`` and evaluated ``chunk`` at a time in a loop
    whose trip count is the number of active chunks, so a converged model costs nothing (with
    ``chunk=1``, the default on a CPU, the work is exactly one evaluation per active model; a GPU
    wants larger chunks and then pads the last one).
    Returns the new state, the accepted points and losses after every round ``(steps, B, ...)``, and
    how many model-evaluations were computed (padding included).
    """
    B, P = state.x.shape
    value_and_grad = jax.value_and_grad(partial(neg_log_posterior, layout=layout, priors=priors))
    batched = jax.vmap(value_and_grad)

    def evaluate(trial, active):
        n_active = jnp.sum(active, dtype=jnp.int32)
        index = jnp.concatenate([jnp.nonzero(active, size=B, fill_value=0)[0].astype(jnp.int32),
                                 jnp.zeros(chunk, jnp.int32)])

        def one_model(j, fg):
            f, g = fg
            i = index[j]
            fi, gi = value_and_grad(trial[i], *(a[i] for a in problem))
            return f.at[i].set(fi), g.at[i].set(gi)

        def one_chunk(j, fg):
            f, g = fg
            sel = jax.lax.dynamic_slice(index, (j * chunk,), (chunk,))
            valid = j * chunk + jnp.arange(chunk) < n_active
            fi, gi = batched(trial[sel], *(a[sel] for a in problem))
            target = jnp.where(valid, sel, B)  # out of range: dropped
            return f.at[target].set(fi, mode="drop"), g.at[target].set(gi, mode="drop")

        n_chunks = (n_active + chunk - 1) // chunk
        f, g = jax.lax.fori_loop(0, n_chunks, one_model if chunk == 1 else one_chunk,
                                 (jnp.zeros(B), jnp.zeros((B, P))))
        return f, g, n_chunks * chunk

    def round_(carry, _):
        state, computed = carry
        active = ~state.done
        f, g, work = evaluate(state.trial, active)
        new = jax.vmap(partial(lbfgs_update, opts=opts))(state, f, g)
        state = _where_batch(active, new, state)
        return (state, computed + work), (state.x, state.f)

    (state, computed), (xs, fs) = jax.lax.scan(round_, (state, jnp.zeros((), jnp.int32)), None, length=steps)
    return state, xs, fs, computed


@partial(jax.jit, static_argnames=("layout", "opts", "steps"))
def lockstep_steps(state: State, problem: Problem, priors: Priors, *, layout, opts, steps):
    """The lockstep baseline: one L-BFGS over all B models' parameters with the summed loss.

    ``state`` holds a single optimiser over the flattened ``(B * P,)`` vector; every round evaluates
    all B models.
    """
    B = problem.models
    loss = jax.vmap(partial(neg_log_posterior, layout=layout, priors=priors))

    def total(theta_flat):
        return jnp.sum(loss(theta_flat.reshape(B, -1), *problem))

    value_and_grad = jax.value_and_grad(total)

    def round_(state, _):
        f, g = value_and_grad(state.trial)
        new = lbfgs_update(state, f, g, opts)
        state = jax.tree.map(lambda a, b: jnp.where(state.done, b, a), new, state)
        return state, state.x.reshape(B, -1)

    return jax.lax.scan(round_, state, None, length=steps)


@partial(jax.jit, static_argnames=("layout",))
def losses(theta, problem: Problem, priors: Priors, *, layout):
    """-log posterior of each of B models at ``theta (B, P)``."""
    return jax.vmap(partial(neg_log_posterior, layout=layout, priors=priors))(theta, *problem)


@dataclass
class Fit:
    theta: np.ndarray        # (B, P) raw parameters
    loss: np.ndarray         # (B,) final -log posterior
    evals: np.ndarray        # (B,) evaluations each model consumed
    status: np.ndarray       # (B,) why each stopped (see STATUS)
    computed: int            # model-evaluations actually computed (lockstep: rounds x B)
    rounds: int              # evaluation rounds until every model stopped


def fit_per_model(problem: Problem, layout: Layout, priors: Priors, opts: Options = Options(),
                  x0=None, *, chunk: int = 1, steps: int = 50, pad_models: int | None = None,
                  on_steps=None) -> Fit:
    """Fit B models, each stopping by its own rule, computing only the models still running.

    ``pad_models`` pads the batch with models that start out stopped (they cost nothing with
    ``chunk=1``) so batches of different sizes share one compiled loop.
    ``on_steps(first_round, xs (k, B, P), fs (k, B), state)`` sees the accepted point and loss of
    every model after each of the k rounds of a chunk (for tracing); rounds count from 1. A model
    that has stopped keeps its last values. ``state`` is the optimiser state of the B models after
    the chunk: a model with ``state.done`` has its final ``state.evals``, so a tracer can tell, while
    fitting, from which round on it has stopped and that rounds past ``max(state.evals)`` ran after
    every model had stopped.
    """
    B = problem.models
    x0 = np.broadcast_to(layout.initial(priors) if x0 is None else x0, (B, layout.size))
    state = lbfgs_init_batch(x0, opts.history)
    if pad_models and pad_models > B:
        problem = problem.padded(models=pad_models)
        state = jax.tree.map(lambda a: jnp.concatenate([a, jnp.repeat(a[:1], pad_models - B, axis=0)]), state)
        state = state._replace(done=state.done.at[B:].set(True))
    computed, rounds = 0, 0
    while not bool(jnp.all(state.done)):
        state, xs, fs, work = per_model_steps(state, problem, priors, layout=layout, opts=opts,
                                              steps=steps, chunk=chunk)
        computed += int(work)
        if on_steps is not None:
            on_steps(rounds + 1, xs[:, :B], fs[:, :B], jax.tree.map(lambda a: a[:B], state))
        rounds += steps
    evals = np.asarray(state.evals)[:B]
    return Fit(np.asarray(state.x)[:B], np.asarray(state.f)[:B], evals, np.asarray(state.status)[:B], computed,
               int(evals.max()))


def fit_lockstep(problem: Problem, layout: Layout, priors: Priors, opts: Options = Options(),
                 x0=None, *, steps: int = 50, on_steps=None) -> Fit:
    """Fit B models as one problem: one optimiser, the summed loss, one stopping rule for all.

    ``on_steps(first_round, xs (k, B, P), state)`` sees every round's accepted points and the
    optimiser state after the chunk: ``state.evals`` rounds have run so far, so rounds past it (the
    end of the last chunk, once ``state.done``) ran after the fit had stopped."""
    B = problem.models
    x0 = np.broadcast_to(layout.initial(priors) if x0 is None else x0, (B, layout.size))
    state = lbfgs_init(jnp.asarray(x0).reshape(-1), opts.history)
    rounds = 0
    while not bool(state.done):
        state, xs = lockstep_steps(state, problem, priors, layout=layout, opts=opts, steps=steps)
        if on_steps is not None:
            on_steps(rounds + 1, xs, state)
        rounds += steps
    theta = np.asarray(state.x).reshape(B, -1)
    n = int(state.evals)
    return Fit(theta, np.asarray(losses(theta, problem, priors, layout=layout)), np.full(B, n),
               np.full(B, int(state.status)), n * B, n)


def fit_one_by_one(problem: Problem, layout: Layout, priors: Priors, opts: Options = Options(),
                   x0=None) -> Fit:
    """Fit the B models one after another, each alone (the baseline batching is measured against)."""
    fits = [fit_per_model(problem.take(slice(i, i + 1)), layout, priors, opts,
                          None if x0 is None else np.asarray(x0)[i:i + 1])
            for i in range(problem.models)]
    evals = np.concatenate([f.evals for f in fits])
    return Fit(np.concatenate([f.theta for f in fits]), np.concatenate([f.loss for f in fits]), evals,
               np.concatenate([f.status for f in fits]), int(evals.sum()), int(evals.max()))


# ------------------------------------------------------------------------------------- data
def encode(table, continuous, categorical, bounds=None):
    """Scale the scalar columns to [0, 1] (by ``bounds`` or the table's own range) and code the
    categorical ones as integers. Returns ``(u (n, Dc), c (n, Dk))`` as numpy arrays."""
    u = np.empty((len(table), len(continuous)))
    for j, name in enumerate(continuous):
        col = table[name].to_numpy(dtype=np.float64)
        lo, hi = bounds[name] if bounds else (col.min(), col.max())
        u[:, j] = (col - lo) / (hi - lo if hi > lo else 1.0)
    c = np.empty((len(table), len(categorical)), dtype=np.int32)
    for j, name in enumerate(categorical):
        col = table[name]
        c[:, j] = col.cat.codes if hasattr(col, "cat") else np.unique(col.to_numpy(), return_inverse=True)[1]
    return u, c


@dataclass
class LeaveOneOut:
    """The hold-one-out folds of S datasets of n points each, stacked as S * n models.

    Model ``s * n + i`` is trained on dataset ``s`` without its point ``i`` and predicts that point.
    Targets are standardised per fold with the training points' mean and standard deviation, so
    the held-out point never informs its own model.
    """

    problem: Problem          # (S * n) models of n - 1 points, standardised targets
    u_held: np.ndarray        # (S * n, 1, Dc)
    c_held: np.ndarray        # (S * n, 1, Dk)
    y_held: np.ndarray        # (S * n,) in the original units
    y_mean: np.ndarray        # (S * n,) per fold
    y_std: np.ndarray         # (S * n,)
    shape: tuple[int, int]    # (S, n)


def leave_one_out(u, c, y, subsets=None) -> LeaveOneOut:
    """Folds of the datasets ``u[subsets[s]], c[...], y[...]`` (``subsets (S, n)`` row indices; by
    default one dataset of all rows)."""
    subsets = np.arange(len(y))[None, :] if subsets is None else np.asarray(subsets)
    S, n = subsets.shape
    keep = np.array([np.delete(np.arange(n), i) for i in range(n)])   # (n, n - 1)
    train = subsets[:, keep].reshape(S * n, n - 1)
    held = subsets.reshape(S * n)
    y_train, mu, sd = standardise(y[train])
    problem = Problem.of(u[train], c[train], y_train)
    return LeaveOneOut(problem, u[held][:, None, :], c[held][:, None, :], y[held], mu[:, 0], sd[:, 0], (S, n))


def held_out_predictions(loo: LeaveOneOut, theta, layout: Layout, pad_points: int | None = None,
                         pad_models: int | None = None):
    """Predictive mean and variance (noise included) of every fold at its held-out point, in the
    original units of y. The padding arguments only let calls of different sizes share one compile."""
    B = loo.y_held.shape[0]
    models = max(pad_models or B, B)
    problem = loo.problem.padded(models=models, points=pad_points)

    def pad(a):
        a = np.asarray(a)
        return np.concatenate([a, np.repeat(a[:1], models - B, axis=0)]) if models > B else a

    mean, var = predict_batch(jnp.asarray(pad(theta)), problem, jnp.asarray(pad(loo.u_held)),
                              jnp.asarray(pad(loo.c_held)), layout=layout)
    mean, var = np.asarray(mean)[:B, 0], np.asarray(var)[:B, 0]
    noise = np.asarray(layout.noise_mean(jnp.asarray(theta))[0])
    pred = mean * loo.y_std + loo.y_mean
    pred_var = (np.maximum(var, 0.0) + noise) * loo.y_std ** 2
    return pred, pred_var


def standardise(y):
    """Zero mean, unit standard deviation along the last axis; returns ``(z, mean, std)``."""
    mu, sd = y.mean(axis=-1, keepdims=True), y.std(axis=-1, keepdims=True)
    sd = np.where(sd > 0, sd, 1.0)
    return (y - mu) / sd, mu, sd


@partial(jax.jit, static_argnames=("layout",))
def predict_batch(theta, problem: Problem, u_new, c_new, *, layout: Layout):
    """Posterior mean and latent variance for B models at their own new points ``(B, m, ...)``."""
    return jax.vmap(partial(predict, layout=layout))(theta, *problem, u_new, c_new)
