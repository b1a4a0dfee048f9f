"""Quenched theory of chains with sketched (random-feature) models at a fixed sketch
(``docs/sketch.md`` §2-3).

Every model ``g`` is a feature map in latent coordinates with eigensystem ``(m, R)``: a
sketched model ``A = S Lambda^(1/2) = Q diag(sqrt m) R^T``; a plain or capacity model the
coordinate directions with ``s_i > 0`` and speeds ``m = s``. Conditional on its parent's
weights, model ``g`` trains on the target ``tau = c phi_p + alpha theta`` with label noise
``alpha^2 sigma^2``; in its own basis ``zeta = R^T z`` that is a *standard* hard-label problem
(spectrum ``m``, target ``R^T tau``) whose extra label noise is the part of the target outside
its span, ``z.(I - Pi) tau`` (independent of ``zeta`` for Gaussian data). The standard
recursion is linear in its sources, so its per-mode second moments ``delta_j`` follow, exactly,
from one solve with the *expected* sources ``diag(R^T E[tau tau^T] R)`` and
``alpha^2 sigma^2 + tr((I - Pi) E[tau tau^T])``, by any registered solver (renewal and ODE
included). The rest is closed form:

* first moments: ``E[e | tau] = -D1 R^T tau``, ``D1_j(t) = prod_u (1 - eta_u m_j)``;
* off-diagonal second moments in the model's basis decouple (Gaussian fourth moments):
  ``E[e_j e_k] <- ((1 - x_j)(1 - x_k) + x_j x_k / B) E[e_j e_k]``, so at the end
  ``E[e e^T] = F o (R^T T R)`` off the diagonal, ``F`` the product of those factors over the
  constant phases (``O(p^2)`` per phase), ``delta`` on it;
* the model's full second moment ``E[phi_g phi_g^T] = R X R^T`` and its cross moments with
  every earlier model ``E[phi_g phi_h^T] = R (I - D1) R^T E[tau phi_h^T]`` (``d x d``
  matrices, kept only when the chain has more than one model).

The excess risk against the true target at step ``t`` is
``sum_j delta_j(t) - 2 sum_j D1_j(t) w_j + E||R^T (tau - theta)||^2 + ||(I - Pi) theta||^2``
with ``w = diag(R^T E[tau (tau - theta)^T] R)``. Bias and variance are two runs of this
pipeline, with the sources ``(theta, 0)`` and ``(0, sigma^2)``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import SpecError
from ..result import ModelResult, ModeProfile, Result
from ..solvers.base import PrefixCache, Solver, nonnegative
from ..spec import ArraySpectrum, ArrayTarget, Features, Model, Output, Problem, Scenario
from ..spec.sketch import eigensystem

__all__ = ["SketchedSolver", "Basis", "model_basis", "is_sketched", "MATRIX_BUDGET", "decay_sums",
           "offdiagonal_factors", "exactness", "SketchApproximationWarning"]

#: bytes of ``d x d`` moment matrices a chain with sketched models may hold
MATRIX_BUDGET = 4 * 2**30


def is_sketched(scenario: Scenario) -> bool:
    """Whether some model of the scenario sees the data through random features."""
    return any(getattr(m, "features", None) is not None for m in scenario.models)


@dataclass(frozen=True, eq=False)
class Basis:
    """A model's eigenbasis: speeds ``m`` (descending, ``> 0``) and either the columns ``R``
    (``d x r``, orthonormal) or, for a plain/capacity/speeds model, the coordinate indices ``idx``."""

    m: np.ndarray
    d: int
    R: np.ndarray | None = None
    idx: np.ndarray | None = None
    sketched: bool = False

    @property
    def coordinate(self) -> bool:
        """Whether the basis is made of latent coordinate directions (then its coordinates are
        independent for any data law, and the problem's kurtosis applies exactly)."""
        return self.R is None

    def vec(self, v: np.ndarray) -> np.ndarray:
        """``R^T v``."""
        return v[self.idx] if self.R is None else self.R.T @ v

    def lift_vec(self, y: np.ndarray) -> np.ndarray:
        """``R y``."""
        if self.R is None:
            out = np.zeros(self.d)
            out[self.idx] = y
            return out
        return self.R @ y

    def proj(self, M: np.ndarray) -> np.ndarray:
        """``R^T M R``."""
        return M[np.ix_(self.idx, self.idx)] if self.R is None else self.R.T @ M @ self.R

    def proj_diag(self, M: np.ndarray) -> np.ndarray:
        """``diag(R^T M R)``."""
        if self.R is None:
            return np.diagonal(M)[self.idx].copy()
        return np.einsum("ij,ij->j", self.R, M @ self.R)

    def left(self, M: np.ndarray) -> np.ndarray:
        """``R^T M``."""
        return M[self.idx] if self.R is None else self.R.T @ M

    def lift_left(self, Y: np.ndarray) -> np.ndarray:
        """``R Y`` (``Y`` of shape ``(r, d)``)."""
        if self.R is None:
            out = np.zeros((self.d, Y.shape[1]))
            out[self.idx] = Y
            return out
        return self.R @ Y

    def lift(self, X: np.ndarray) -> np.ndarray:
        """``R X R^T``."""
        if self.R is None:
            out = np.zeros((self.d, self.d))
            out[np.ix_(self.idx, self.idx)] = X
            return out
        return self.R @ X @ self.R.T

    def lift_diag(self, X: np.ndarray) -> np.ndarray:
        """``diag(R X R^T)``."""
        if self.R is None:
            out = np.zeros(self.d)
            out[self.idx] = np.diagonal(X)
            return out
        return np.einsum("ij,ij->i", self.R @ X, self.R)


def model_basis(model: Model, problem: Problem) -> Basis:
    """The eigenbasis of a model on a problem (module docstring)."""
    lam = problem.eigenvalues
    d = lam.size
    if model.features is not None:
        es = eigensystem(model.features, lam)
        if es.coordinate:  # signed coordinate directions: the same span in coordinate form
            return Basis(m=es.m, d=d, idx=np.argmax(np.abs(es.R), axis=0), sketched=True)
        return Basis(m=es.m, d=d, R=es.R, sketched=True)
    s = model.speed_profile(lam)
    idx = np.flatnonzero(s > 0)
    idx = idx[np.argsort(-s[idx], kind="stable")]
    return Basis(m=s[idx].copy(), d=d, idx=idx)


class SketchApproximationWarning(RuntimeWarning):
    """A sketched scenario's prediction is the Gaussian-equivalent approximation, not exact:
    non-Gaussian data seen through a sketch that mixes latent coordinates (``docs/sketch.md`` §4)."""


def exactness(scenario: Scenario, bases: list[Basis] | None = None) -> dict[str, str | None]:
    """Per model, ``None`` where the quenched theory is exact, else why it is not.

    Exact for Gaussian data always; for other data laws (independent non-Gaussian latent
    coordinates) exactly where the model's basis is made of latent coordinate directions (plain
    and capacity models, orthogonal sketches with ``p >= d``) *and* every model upstream of it
    is exact: a sketch that mixes coordinates makes the model's coordinates dependent, and the
    Gaussian-equivalent recursion used for it is then an approximation (``docs/sketch.md`` §4)."""
    prob = scenario.problem
    if bases is None:
        bases = [model_basis(m, prob) for m in scenario.models]
    gauss = prob.features.kappa == 3.0
    out: dict[str, str | None] = {}
    for m, b in zip(scenario.models, bases, strict=True):
        if gauss:
            out[m.name] = None
        elif not b.coordinate:
            out[m.name] = "it sees the data through a sketch that mixes latent coordinates"
        elif m.teacher is not None and out[m.teacher] is not None:
            out[m.name] = f"its teacher {m.teacher!r} is not exact (it inherits the teacher's approximation)"
        else:
            out[m.name] = None
    return out


def _approximation_message(scenario: Scenario, why: dict[str, str | None]) -> str | None:
    bad = {n: w for n, w in why.items() if w is not None}
    if not bad:
        return None
    f = scenario.problem.features
    parts = "; ".join(f"{n!r}: {w}" for n, w in bad.items())
    return (f"not exact for non-Gaussian data (features {f.kind!r}, kurtosis {f.kappa:g}): {parts}. The "
            "sketched solver uses the Gaussian-equivalent recursion (kurtosis 3 in the model's own "
            "basis) for these models, an approximation whose error can be tens of percent at small d or "
            "on power-law spectra; spectral_theory.sketch.dense.dense_chain is exact for independent "
            "coordinates of any kurtosis (small d), or check against Monte Carlo (docs/sketch.md §4)")


def _phases_to(model: Model, steps: np.ndarray):
    """Yield ``(eta, start, length)`` of each constant phase."""
    t = 0
    for lr, n in model.phases():
        yield lr, t, n
        t += n


def decay_sums(model: Model, m: np.ndarray, weights: np.ndarray, steps: np.ndarray,
               chunk: int = 512) -> np.ndarray:
    """``sum_j D1_j(t) weights[k, j]`` at each of ``steps`` (sorted), with
    ``D1_j(t) = prod_{u < t} (1 - eta_u m_j)``: shape ``(len(steps), len(weights))``."""
    steps = np.asarray(steps, dtype=np.int64)
    W = np.atleast_2d(weights)
    out = np.empty((steps.size, W.shape[0]))
    D = np.ones(m.size)
    k = 0
    with np.errstate(over="ignore", invalid="ignore"):
        for lr, t0, n in _phases_to(model, steps):
            f = 1.0 - lr * m
            while k < steps.size and steps[k] < t0 + n:
                j = k
                while j < steps.size and steps[j] < t0 + n and j - k < chunk:
                    j += 1
                pw = np.power(f[None, :], (steps[k:j] - t0)[:, None].astype(float))
                out[k:j] = (pw * D[None, :]) @ W.T
                k = j
            D = D * np.power(f, float(n))
        while k < steps.size:  # steps at the very end (t = T)
            out[k] = W @ D
            k += 1
    return out


def offdiagonal_factors(model: Model, m: np.ndarray) -> np.ndarray:
    """``F_jk = prod_t ((1 - x_j)(1 - x_k) + x_j x_k / B)``, ``x = eta_t m`` (``p x p``; the
    diagonal is not used): the decay of the off-diagonal second moments in the model's basis."""
    F = np.ones((m.size, m.size))
    B = model.batch
    f = np.empty_like(F)
    with np.errstate(over="ignore", invalid="ignore"):
        for lr, n in model.phases():
            x = lr * m
            np.outer(1.0 - x, 1.0 - x, out=f)
            f += np.outer(x, x / B)
            if n == 1:  # a step-varying schedule: one phase per step, no power to take
                F *= f
            else:
                F *= np.power(f, float(n))
    return F


@dataclass(frozen=True)
class SketchedSolver(Solver):
    """Chains with sketched models at fixed sketches, exact for Gaussian data, and for other data
    laws where :func:`exactness` says so (else a :class:`SketchApproximationWarning`, the
    message in ``diagnostics["warnings"]`` and ``diagnostics["exact"][name] = False``; module docstring):
    each model's per-mode recursion in its own basis is integrated by ``inner`` (a method name
    or :class:`Solver`, ``"auto"`` by default, with ``options``); off-diagonal and cross moments
    in closed form."""

    name: ClassVar[str] = "sketched"
    exact: ClassVar[bool] = True
    uses_cache: ClassVar[bool] = True  # accepted and not used (each call solves its chain)
    handles_sketches: ClassVar[bool] = True
    inner: Any = "auto"
    options: tuple = ()

    def supports(self, scenario: Scenario, *, every_step: bool = False,
                 record_modes: bool = False) -> str | None:
        if record_modes:
            return ("per-mode curves (record_modes) are not available for sketched models: their "
                    "modes are not the problem's modes; the final per-mode moments are in 'modes'")
        return None

    def cost(self, scenario: Scenario, *, every_step: bool = False) -> float:
        d = scenario.problem.d
        return float(sum((m.features.p if m.features is not None else d) * (m.steps + d)
                         for m in scenario.models))

    def _inner(self, sub: Scenario, every_step: bool) -> Solver:
        from ..api import resolve_solver

        return resolve_solver(sub, self.inner, dict(self.options), every_step=every_step)[0]

    def _solve(self, scenario: Scenario, *, at: dict[str, np.ndarray], record_modes: bool,
               every_step: bool, on_unstable: str, cache: PrefixCache | None) -> Result:
        t0 = time.perf_counter()
        prob = scenario.problem
        d = prob.d
        G = len(scenario.models)
        full = G > 1
        if full:
            n_mat = G * (G + 1) // 2 + 4
            need = n_mat * d * d * 8
            if need > MATRIX_BUDGET:
                raise SpecError(
                    "problem.spectrum.d", d,
                    f"a chain of {G} models with sketched models keeps {n_mat} moment matrices of "
                    f"d x d numbers ({need / 2**30:.3g} GiB, over the {MATRIX_BUDGET / 2**30:g} GiB "
                    "budget): use a smaller d, or a single sketched model (no d x d matrices)")
        bases = [model_basis(m, prob) for m in scenario.models]
        why = exactness(scenario, bases)
        approx_msg = _approximation_message(scenario, why)
        if approx_msg is not None:
            import warnings

            from ..stability import user_stacklevel

            warnings.warn(approx_msg, SketchApproximationWarning, stacklevel=user_stacklevel())
        theta = np.sqrt(np.asarray(prob.theta2, dtype=float))
        # the off-diagonal factors depend on the model only (not on the source): once per model
        # (O(r^2) per constant phase, so O(r^2 T) for a step-varying schedule)
        factors = [offdiagonal_factors(m, b.m) for m, b in zip(scenario.models, bases, strict=True)]
        runs = [_pipeline(self, scenario, bases, factors, theta, 0.0, at, every_step, on_unstable, full)]
        if prob.noise > 0:
            runs.append(_pipeline(self, scenario, bases, factors, np.zeros(d), prob.noise, at, every_step,
                                  on_unstable, full))
        results: dict[str, ModelResult] = {}
        diagnostics: dict[str, Any] = {"warnings": [] if approx_msg is None else [approx_msg],
                                       "inner_methods": {},
                                       "exact": {n: w is None for n, w in why.items()}}
        for gi, m in enumerate(scenario.models):
            parts = [r["models"][gi] for r in runs]
            bias = parts[0]
            var = parts[1] if len(parts) > 1 else None

            def tot(key, bias=bias, var=var):
                if bias[key] is None:
                    return None
                return bias[key] + (var[key] if var is not None else 0.0)

            zero = np.zeros_like(bias["risk"])
            e2_b = bias["mode_e2"]
            e2_v = var["mode_e2"] if var is not None else np.zeros(d)
            with np.errstate(divide="ignore", invalid="ignore"):
                mu = np.where(theta > 0, (bias["mean"] - theta) / np.where(theta > 0, theta, 1.0), np.nan)
            results[m.name] = ModelResult(
                name=m.name, steps=np.asarray(at[m.name], dtype=np.int64),
                excess_risk=nonnegative(tot("risk")), bias=nonnegative(bias["risk"]),
                variance=nonnegative(var["risk"] if var is not None else zero),
                teacher=m.teacher,
                disagreement=None if bias["dis"] is None else nonnegative(tot("dis")),
                modes=ModeProfile(second_moment=nonnegative(e2_b + e2_v), bias=nonnegative(e2_b),
                                  variance=nonnegative(e2_v), first_moment=mu,
                                  theta2=np.asarray(prob.theta2)),
                curve=None if bias["curve"] is None else nonnegative(tot("curve")),
                stability_limit=bias["limit"], max_lr=bias["max_lr"],
            )
            diagnostics["inner_methods"][m.name] = bias["inner"]
            if m.features is not None:
                diagnostics.setdefault("sketch", {})[m.name] = {
                    **m.features.describe(), "rank": int(bases[gi].m.size),
                    "approximation_error": float(bias["approx"]),
                }
        for r in runs:
            for w in r["warnings"]:
                if w not in diagnostics["warnings"]:
                    diagnostics["warnings"].append(w)
            if r["unstable"]:
                diagnostics.setdefault("unstable_steps", {}).update(r["unstable"])
        names = [m.name for m in scenario.models]
        dis = {a: {b: 0.0 for b in names} for a in names}
        for g in range(G):
            for h in range(g):
                v = nonnegative(sum(r["pair"][(g, h)] for r in runs))
                dis[names[g]][names[h]] = dis[names[h]][names[g]] = v
        diagnostics["seconds"] = time.perf_counter() - t0
        return Result(method=self.name, models=results, scenario=scenario, disagreement=dis,
                      diagnostics=diagnostics)


def _sub_scenario(model: Model, basis: Basis, prob: Problem, target: np.ndarray, noise: float,
                  steps: np.ndarray) -> Scenario:
    """The standard hard-label problem of ``model`` in its own basis: the problem's data law
    where the basis is made of coordinate directions, else the Gaussian-equivalent one
    (kurtosis 3; exact only for Gaussian data: :func:`exactness`)."""
    feats = prob.features if basis.coordinate else Features("gaussian")
    sub_prob = Problem(ArraySpectrum(basis.m), ArrayTarget(np.maximum(target, 0.0)),
                       noise=max(float(noise), 0.0), features=feats)
    sub_model = dataclasses.replace(model, teacher=None, alpha=None, features=None, capacity=None,
                                    speeds=None)
    return Scenario(sub_prob, (sub_model,), output=Output(at=tuple(int(t) for t in steps)))


def _pipeline(solver: SketchedSolver, scenario: Scenario, bases: list[Basis], factors: list[np.ndarray],
              theta: np.ndarray,
              sigma2: float, at: dict[str, np.ndarray], every_step: bool, on_unstable: str,
              full: bool) -> dict[str, Any]:
    """One source (``theta``, ``sigma2``) through the whole chain (module docstring)."""
    prob = scenario.problem
    idx = {m.name: i for i, m in enumerate(scenario.models)}
    means: list[np.ndarray] = []
    trC: list[float] = []
    C: dict[tuple[int, int], np.ndarray] = {}
    out_models: list[dict[str, Any]] = []
    warnings: list[str] = []
    unstable: dict[str, Any] = {}
    pair: dict[tuple[int, int], float] = {}
    theta_sq = float(theta @ theta)

    def cmat(g: int, h: int) -> np.ndarray:
        return C[(g, h)] if g >= h else C[(h, g)].T

    for g, m in enumerate(scenario.models):
        b = bases[g]
        steps = np.asarray(at[m.name], dtype=np.int64)
        p = idx[m.teacher] if m.teacher is not None else None
        al = float(m.alpha)
        c = 1.0 - al if p is not None else 0.0
        th_r = b.vec(theta)
        Etau = al * theta + (c * means[p] if p is not None else 0.0)
        Etau_r = b.vec(Etau)
        if p is None or c == 0.0:
            T = np.outer(theta, theta) * (al * al) if full else None
            Ttil = np.outer(th_r, th_r) * (al * al)
            trT = al * al * theta_sq
        else:
            T = (c * c) * C[(p, p)] + (c * al) * (np.outer(means[p], theta) + np.outer(theta, means[p])) \
                + (al * al) * np.outer(theta, theta)
            Ttil = b.proj(T)
            trT = float(np.trace(T))
        tt = np.diagonal(Ttil).copy()
        out_span = max(trT - float(tt.sum()), 0.0)
        w = tt - Etau_r * th_r  # diag R^T E[tau (tau - theta)^T] R
        wn = float(tt.sum() - 2.0 * Etau_r @ th_r + th_r @ th_r)  # E||R^T (tau - theta)||^2
        approx = max(theta_sq - float(th_r @ th_r), 0.0)  # ||(I - Pi) theta||^2
        sub = _sub_scenario(m, b, prob, tt, al * al * sigma2 + out_span, steps)
        inner = solver._inner(sub, every_step)
        try:
            res = inner.solve(sub, at={m.name: steps}, every_step=every_step, on_unstable=on_unstable)
        except SpecError as err:
            if err.field != "method":
                raise
            raise SpecError("method", err.value,
                            f"{err.allowed} (model {m.name!r} is solved in its own eigenbasis, an array "
                            "spectrum of its speeds: use exact, renewal or ode, or the annealed equivalent "
                            "of spectral_theory.sketch.annealed; docs/sketch.md)") from None
        mr = res[m.name]
        for wmsg in res.diagnostics.get("warnings", []):
            if wmsg not in warnings:
                warnings.append(wmsg)
        if res.diagnostics.get("unstable_steps"):
            unstable.update(res.diagnostics["unstable_steps"])
        delta_t = np.asarray(mr.excess_risk, dtype=float)
        weights = [w, tt]
        if p is not None:
            ydiag = c * b.proj_diag(C[(p, p)]) + al * th_r * b.vec(means[p])  # diag R^T E[tau phi_p^T] R
            weights.append(ydiag)
        sums = decay_sums(m, b.m, np.array(weights), steps)
        risk = delta_t - 2.0 * sums[:, 0] + wn + approx
        dis = None
        if p is not None:
            norm2 = delta_t - 2.0 * sums[:, 1] + tt.sum()
            cross = ydiag.sum() - sums[:, 2]
            dis = norm2 - 2.0 * cross + trC[p]
        curve = None
        if every_step and mr.curve is not None:
            all_t = np.arange(m.steps + 1, dtype=np.int64)
            s_all = decay_sums(m, b.m, np.array([w]), all_t)
            curve = np.asarray(mr.curve, dtype=float) - 2.0 * s_all[:, 0] + wn + approx
        # final state
        D1 = decay_sums(m, b.m, np.eye(b.m.size), np.array([m.steps]))[0]
        delta = np.asarray(mr.modes.second_moment, dtype=float)
        X = factors[g] * Ttil
        X -= D1[:, None] * Ttil + Ttil * D1[None, :]
        X += Ttil
        np.fill_diagonal(X, tt - 2.0 * D1 * tt + delta)  # Ttil_jj - 2 D1_j Ttil_jj + delta_j
        mean = b.lift_vec((1.0 - D1) * Etau_r)
        means.append(mean)
        trC.append(float(np.trace(X)))
        diagC = b.lift_diag(X)
        mode_e2 = diagC - 2.0 * mean * theta + theta * theta
        if full:
            C[(g, g)] = b.lift(X)
            for h in range(g):
                Y = (al * np.outer(theta, means[h])) if (p is None or c == 0.0) else \
                    c * cmat(p, h) + al * np.outer(theta, means[h])  # E[tau phi_h^T]
                C[(g, h)] = b.lift_left((1.0 - D1)[:, None] * b.left(Y))
                pair[(g, h)] = trC[g] + trC[h] - 2.0 * float(np.trace(C[(g, h)]))
        out_models.append({
            "risk": risk, "dis": dis, "curve": curve, "mode_e2": mode_e2, "mean": mean,
            "limit": mr.stability_limit, "max_lr": mr.max_lr, "inner": res.method, "approx": approx,
        })
    return {"models": out_models, "warnings": warnings, "unstable": unstable, "pair": pair}


def resolve_sketched(scenario: Scenario, method: Any, options: dict[str, Any], *, every_step: bool = False,
                     record_modes: bool = False) -> tuple[Solver, str]:
    """``predict``'s solver for a scenario with sketched models: :class:`SketchedSolver` with
    ``method`` (and its options) integrating each model's recursion in its own basis."""
    from ..solvers import make_solver

    if isinstance(method, SketchedSolver):
        if options:
            key = next(iter(options))
            raise SpecError(key, options[key], "cannot be combined with a Solver object (give it to the solver)")
        return method, f"forced: {method.name}"
    if isinstance(method, str) and method == "auto":
        if options:
            key = next(iter(options))
            raise SpecError(key, options[key], "is a solver option: name the method it belongs to")
    else:
        make_solver(method, **options)  # a bad method name or option is refused now
    solver = SketchedSolver(inner=method, options=tuple(sorted(options.items())))
    inner = method if isinstance(method, str) else method.name
    return solver, (f"sketched models: each model's recursion in its own eigenbasis by {inner!r}, "
                    "cross and off-diagonal moments in closed form (docs/sketch.md)")
