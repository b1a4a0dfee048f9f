"""Annealed theory: the deterministic equivalent over a Gaussian sketch (``docs/sketch.md`` §5).

For ``S`` with i.i.d. ``N(0, 1/p)`` entries, ``A^T A = Lambda^(1/2) S^T S Lambda^(1/2)`` is the
sample covariance of ``p`` draws from ``N(0, Lambda)``; its non-zero eigenvalues are those of
``K = S Lambda S^T``. As ``p, d -> infinity`` at a fixed ratio, the Stieltjes transform
``g(z) = (1/p) tr (K - z)^(-1)`` solves the Marchenko-Pastur (Silverstein) equation

    g = 1 / (-z + (1/p) sum_i lambda_i / (1 + lambda_i g)),

and, with ``kappa = 1/g``, the resolvent has the deterministic equivalent
``(A^T A - z)^(-1) ~ (kappa / (-z)) (Lambda + kappa)^(-1)``. So

* the sketched spectrum has density ``rho(m) = (p/pi) Im g(m + i0)`` (eigenvalues per unit m);
* the projected target ``nu = sum_j (R^T theta)_j^2 delta_{m_j}`` has density
  ``(1/pi) Im [(kappa/(-z)) sum_i theta_i^2 / (lambda_i + kappa)]`` at ``z = m + i0``;
* the approximation error (target outside the span, the atom of ``nu`` at 0) is
  ``kappa_0 sum_i theta_i^2 / (lambda_i + kappa_0)``, ``kappa_0`` the root of
  ``(1/p) sum_i lambda_i / (lambda_i + kappa_0) = 1`` (``p < d``; 0 for ``p >= d``).

A single sketched model on hard labels is a standard problem on the sketched spectrum with
the projected target and the approximation error added to the label noise (``docs/sketch.md``
§2); the annealed prediction runs that problem on the deterministic equivalents: either ``r``
quantile modes (``r = min(p, d)``, each carrying its cell's target mass; any solver, renewal
for long horizons) or quadrature nodes over the density (the ODE solver, any ``r``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SpecError
from ..result import Result
from ..spec import ArraySpectrum, ArrayTarget, Features, Problem, Scenario

__all__ = ["SketchEquivalent", "equivalent", "stieltjes", "predict_annealed"]


def stieltjes(z: np.ndarray, lam: np.ndarray, p: int, *, tol: float = 1e-12, max_iter: int = 100) -> np.ndarray:
    """``g(z) = (1/p) tr (S Lambda S^T - z)^(-1)`` in the deterministic-equivalent limit, for
    ``Im z > 0``: Newton's method on ``g (-z + (1/p) sum lambda/(1 + lambda g)) = 1``, continued
    from the largest ``Re z`` down (each point starts from its neighbour's root), with damped
    fixed-point steps (a contraction for ``Im z > 0``) where Newton does not converge."""
    z = np.asarray(z, dtype=complex)
    lam = np.asarray(lam, dtype=float)
    lam = lam[lam > 0]
    out = np.empty_like(z)
    order = np.argsort(-z.real)
    g = -1.0 / z[order[0]]

    def newton(zk: complex, gk: complex) -> tuple[complex, bool]:
        for _ in range(max_iter):
            q = 1.0 / (1.0 + lam * gk)
            s1 = float(0) + np.dot(lam, q) / p
            s2 = np.dot(lam * lam, q * q) / p
            f = gk * (-zk + s1) - 1.0
            step = f / ((-zk + s1) - gk * s2)
            gn = gk - step
            if gn.imag <= 0:  # stay on the physical branch (Im g > 0 for Im z > 0)
                return gk, False
            gk = gn
            if abs(step) <= tol * abs(gk):
                return gk, True
        return gk, False

    for k in order:
        zk = z[k]
        gk, ok = newton(zk, g)
        if not ok:
            gk = g if g.imag > 0 else complex(g.real, abs(g) * 1e-3 + 1e-300)
            for _ in range(2000):
                gk = 0.5 * gk + 0.5 / (-zk + np.dot(lam, 1.0 / (1.0 + lam * gk)) / p)
            gk, ok = newton(zk, gk)
        out[k] = gk
        g = gk
    return out


@dataclass(frozen=True, eq=False)
class SketchEquivalent:
    """Deterministic equivalent of a Gaussian sketch of width ``p`` on a problem: the grid
    ``grid`` with eigenvalue density ``rho`` and target density ``tau``, the ``r`` quantile
    modes ``m`` with their target masses ``theta2``, and ``approximation_error``."""

    p: int
    d: int
    grid: np.ndarray
    rho: np.ndarray
    tau: np.ndarray
    m: np.ndarray
    theta2: np.ndarray
    approximation_error: float
    signal: float

    def problem(self, noise: float = 0.0) -> Problem:
        """The equivalent standard problem: quantile modes, their target masses, and the label
        noise plus the approximation error (Gaussian features)."""
        return Problem(ArraySpectrum(self.m), ArrayTarget(self.theta2),
                       noise=float(noise) + self.approximation_error, features=Features("gaussian"))

    def nodes(self, discrete: int = 64):
        """Nodes for the ODE solver's ``modes=`` (``ModeNodes``): the top ``discrete`` quantile
        modes as they are (the top of a sketched spectrum is a few separate eigenvalues, whose
        smoothed density would give single modes spurious large steps), then one node per grid
        point of the density below them, weighted by its count (the bulk)."""
        from ..solvers.continuum import ModeNodes

        k = min(int(discrete), self.m.size)
        w = _cell_weights(self.grid) * self.rho
        top = np.cumsum(w[::-1])[::-1]  # count at or above each grid point
        below = (top > k) & (w > 0)
        th = np.where(self.rho > 0, self.tau / np.where(self.rho > 0, self.rho, 1.0), 0.0)
        lam_b, th_b, w_b = self.grid[below], th[below], w[below]
        rest = self.m.size - k
        if rest > 0 and w_b.sum() > 0:
            w_b = w_b * (rest / float(w_b.sum()))
            mass = float(self.theta2[k:].sum())
            got = float(th_b @ w_b)
            th_b = th_b * (mass / got) if got > 0 else th_b
        else:
            lam_b, th_b, w_b = lam_b[:0], th_b[:0], w_b[:0]
        lam = np.concatenate([self.m[:k], lam_b[::-1]])
        theta2 = np.concatenate([self.theta2[:k], th_b[::-1]])
        weights = np.concatenate([np.ones(k), w_b[::-1]])
        return ModeNodes(lam, theta2, weights,
                         info={"kind": "sketch deterministic equivalent", "p": self.p, "d": self.d,
                               "discrete": k, "bulk_nodes": int(lam_b.size)})


def _cell_weights(x: np.ndarray) -> np.ndarray:
    """Trapezoid weights of a sorted grid."""
    w = np.zeros_like(x)
    dx = np.diff(x)
    w[:-1] += 0.5 * dx
    w[1:] += 0.5 * dx
    return w


def equivalent(problem: Problem, p: int, *, kind: str = "gaussian", points_per_decade: int = 600,
               eta: float = 1e-9) -> SketchEquivalent:
    """The deterministic equivalent of a width-``p`` Gaussian sketch of ``problem`` (module
    docstring). The densities are evaluated at ``z = m (1 + i eta)`` on a log grid of
    ``points_per_decade`` points per decade spanning the support. ``eta`` must be tiny: the
    Lorentzian tails it leaves bias the cells' mean eigenvalues (measured at d = 1000, p = 500:
    +1% on the risk at ``eta = 1e-5``, converged to 1e-5 relative from ``eta = 1e-9``; 400 against
    800 points per decade: 0.13%)."""
    if kind != "gaussian":
        raise SpecError("features.kind", kind, "the annealed equivalent is derived for Gaussian sketches only")
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 1:
        raise SpecError("features.p", p, "must be an integer >= 1")
    key = (int(p), int(points_per_decade), float(eta), _digest(problem.eigenvalues), _digest(problem.theta2))
    hit = _EQ_CACHE.get(key)
    if hit is None:
        hit = _equivalent(problem, int(p), points_per_decade, eta)
        if len(_EQ_CACHE) > 64:
            _EQ_CACHE.pop(next(iter(_EQ_CACHE)))
        _EQ_CACHE[key] = hit
    return hit


_EQ_CACHE: dict[tuple, SketchEquivalent] = {}


def _digest(arr: Any) -> str:
    import hashlib

    return hashlib.sha1(np.ascontiguousarray(arr, dtype=float).tobytes()).hexdigest()


def _equivalent(problem: Problem, p: int, points_per_decade: int, eta: float) -> SketchEquivalent:
    lam_all = np.asarray(problem.eigenvalues, dtype=float)
    th2_all = np.asarray(problem.theta2, dtype=float)
    pos = lam_all > 0
    lam, th2 = lam_all[pos], th2_all[pos]
    lost = float(th2_all[~pos].sum())  # directions the data never shows: always outside the span
    d = int(lam_all.size)
    r = min(int(p), int(lam.size))
    # support: from below the smallest eigenvalue scale to above the largest (sample-covariance edges)
    ratio = lam.size / p
    hi = float(lam.max() * (1 + math.sqrt(ratio)) ** 2 * 1.5 + lam.sum() / p * 2)
    lo = float(max(lam.min() * 1e-3, hi * 1e-14))
    n = int(math.ceil(math.log10(hi / lo) * points_per_decade))
    grid = np.geomspace(lo, hi, n)
    z = grid * (1 + 1j * eta)
    g = stieltjes(z, lam, p)
    kap = 1.0 / g
    rho = p / math.pi * g.imag
    res_t = (kap / (-z)) * np.sum(th2[None, :] / (lam[None, :] + kap[:, None]), axis=1)
    tau = np.maximum(res_t.imag / math.pi, 0.0)
    rho = np.maximum(rho, 0.0)
    # approximation error: kappa_0 with (1/p) sum lambda/(lambda + kappa_0) = 1 (p < d)
    if p < lam.size:
        lo_k, hi_k = 0.0, float(lam.sum() / p) + float(lam.max())
        for _ in range(200):
            mid = 0.5 * (lo_k + hi_k)
            if np.sum(lam / (lam + mid)) / p > 1.0:
                lo_k = mid
            else:
                hi_k = mid
        k0 = 0.5 * (lo_k + hi_k)
        approx = float(k0 * np.sum(th2 / (lam + k0)))
    else:
        approx = 0.0
    signal = float(th2.sum()) - approx
    # normalise the numerical densities to their exact masses (r modes, signal inside the span)
    w = _cell_weights(grid)
    rho *= r / float(w @ rho)
    if float(w @ tau) > 0:
        tau *= signal / float(w @ tau)
    m_q, th_q = _quantiles(grid, rho, tau, r)
    return SketchEquivalent(p=int(p), d=d, grid=grid, rho=rho, tau=tau, m=m_q, theta2=th_q,
                            approximation_error=approx + lost, signal=signal)


def _quantiles(grid: np.ndarray, rho: np.ndarray, tau: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """``r`` modes: each holds one unit of eigenvalue count, at the count-weighted mean
    eigenvalue of its cell, carrying the cell's target mass (descending)."""
    w = _cell_weights(grid)
    # cumulative count and target mass from the top, per grid point (piecewise constant)
    cnt = (w * rho)[::-1]
    mass = (w * tau)[::-1]
    mom = (w * rho * grid)[::-1]
    C = np.concatenate([[0.0], np.cumsum(cnt)])
    Cm = np.concatenate([[0.0], np.cumsum(mass)])
    Cx = np.concatenate([[0.0], np.cumsum(mom)])
    edges = np.arange(r + 1, dtype=float)
    edges[-1] = C[-1]

    def at(F: np.ndarray, q: np.ndarray) -> np.ndarray:
        return np.interp(q, C, F)

    m = np.diff(at(Cx, edges)) / np.maximum(np.diff(edges), 1e-300)
    th = np.maximum(np.diff(at(Cm, edges)), 0.0)
    m = np.maximum.accumulate(m[::-1])[::-1]  # non-increasing (round-off)
    return m, th


def predict_annealed(scenario: Scenario, *, method: str = "auto", at: Any = None,
                     via: str = "quantiles", **options: Any) -> Result:
    """The annealed (sketch-averaged) prediction for a scenario of one sketched model on hard
    labels, a Gaussian sketch and Gaussian data — the only case the equivalent is derived for;
    anything else (chains, teachers, orthogonal sketches, non-Gaussian data) is a
    :class:`SpecError` naming the field, never a silent number: the equivalent problem run by ``method`` (``via="quantiles"``) or
    the ODE on quadrature nodes over the density (``via="nodes"``). The excess risk includes the
    approximation error."""
    from ..api import predict, resolve_at

    if len(scenario.models) != 1 or scenario.models[0].features is None or scenario.models[0].teacher is not None:
        raise SpecError("scenario.models", [m.name for m in scenario.models],
                        "the annealed equivalent takes one sketched model on hard labels (chains: use "
                        "the quenched theory at fixed sketches and average)")
    model = scenario.models[0]
    if model.features.kind != "gaussian":
        raise SpecError("models[0].features.kind", model.features.kind,
                        "the annealed equivalent is derived for Gaussian sketches only (an orthogonal "
                        "sketch's equivalent is a different free convolution): use the quenched theory "
                        "(predict) at fixed sketches and average over seeds")
    kappa = scenario.problem.features.kappa
    if kappa != 3.0:
        raise SpecError("problem.features", scenario.problem.features.kind,
                        f"the annealed equivalent needs Gaussian data (kurtosis 3, got {kappa:g}): a sketch "
                        "mixes non-Gaussian coordinates, which the Gaussian-equivalent spectrum does not "
                        "describe (docs/sketch.md §4-§5); use spectral_theory.sketch.dense.dense_chain or "
                        "Monte Carlo at fixed sketches")
    eq = equivalent(scenario.problem, model.features.p, kind=model.features.kind)
    sub_model = dataclasses.replace(model, features=None)
    sub = Scenario(eq.problem(scenario.problem.noise), (sub_model,), output=scenario.output)
    steps = resolve_at(scenario, at)
    if via == "quantiles":
        res = predict(sub, at=steps[model.name], method=method, **options)
    elif via == "nodes":
        from ..solvers.ode import run_ode

        res = run_ode(sub, at=steps, modes=eq.nodes(), **options)
    else:
        raise SpecError("via", via, "must be 'quantiles' or 'nodes'")
    mr = res[model.name]
    # the equivalent's label noise is sigma^2 + approximation error; its variance row is linear in
    # it, so the share of the approximation error goes to the bias (it is driven by the target)
    sig2, noise = scenario.problem.noise, sub.problem.noise
    share = sig2 / noise if noise > 0 else 0.0
    if mr.bias is not None and mr.variance is not None:
        v = np.asarray(mr.variance, dtype=float)
        mr.bias = mr.bias + (1.0 - share) * v + eq.approximation_error
        mr.variance = share * v
    mr.excess_risk = mr.excess_risk + eq.approximation_error
    if mr.curve is not None:
        mr.curve = mr.curve + eq.approximation_error
    mr.modes = None  # modes of the equivalent, not of the problem
    res.scenario = scenario
    res.diagnostics["sketch_equivalent"] = {"p": eq.p, "approximation_error": eq.approximation_error,
                                            "modes": int(eq.m.size), "via": via}
    return res


def compare_with_quenched(scenario: Scenario, *, sketches: int = 50, first_seed: int = 0,
                          method: str = "auto", at: Any = None) -> dict[str, Any]:
    """The annealed prediction of a one-sketched-model scenario against the average of the
    quenched (exact, fixed-sketch) predictions over ``sketches`` seeds ``first_seed, ...``: per
    reported step the annealed risk, the sketch average, its standard error over sketches, the
    relative error and ``z = (annealed - average) / SE``."""
    from ..api import predict, resolve_at

    if isinstance(sketches, bool) or not isinstance(sketches, int) or sketches < 2:
        raise SpecError("sketches", sketches, "must be an integer >= 2")
    an = predict_annealed(scenario, method=method, at=at)
    model = scenario.models[0]
    steps = resolve_at(scenario, at)[model.name]
    curves = []
    for k in range(sketches):
        feats = dataclasses.replace(model.features, seed=first_seed + k)
        sc = dataclasses.replace(scenario, models=(dataclasses.replace(model, features=feats),))
        curves.append(predict(sc, at=steps, method=method)[model.name].excess_risk)
    q = np.array(curves)
    mean = q.mean(axis=0)
    se = q.std(axis=0, ddof=1) / math.sqrt(sketches)
    a = np.asarray(an[model.name].excess_risk, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(mean > 0, (a - mean) / mean, 0.0)
        z = np.where(se > 0, (a - mean) / np.where(se > 0, se, 1.0), 0.0)
    return {"steps": np.asarray(steps), "annealed": a, "quenched_mean": mean, "quenched_se": se,
            "quenched_sd": q.std(axis=0, ddof=1), "relative_error": rel, "z": z, "sketches": sketches,
            "max_relative_error": float(np.max(np.abs(rel)))}


def simulate_over_sketches(scenario: Scenario, *, sketches: int = 40, reps: int = 50, seed: int = 0,
                           first_sketch: int = 0, at: Any = None) -> dict[str, Any]:
    """Monte Carlo over both the sketch and SGD for a one-sketched-model scenario: ``sketches``
    sketches (seeds ``first_sketch, ...``), ``reps`` SGD replicates on each (Monte Carlo seed
    ``seed + k``). The estimate of the sketch-averaged risk is the mean of the per-sketch means;
    its standard error is the spread of those means over sketches divided by ``sqrt(sketches)``
    (they are independent and identically distributed), which includes the SGD noise. Returns
    the steps, ``mean``, ``se``, the annealed prediction and ``z = (mean - annealed) / se``."""
    from ..api import resolve_at, simulate

    if isinstance(sketches, bool) or not isinstance(sketches, int) or sketches < 2:
        raise SpecError("sketches", sketches, "must be an integer >= 2")
    model = scenario.models[0]
    an = predict_annealed(scenario, at=at)
    steps = resolve_at(scenario, at)[model.name]
    means = []
    for k in range(sketches):
        feats = dataclasses.replace(model.features, seed=first_sketch + k)
        sc = dataclasses.replace(scenario, models=(dataclasses.replace(model, features=feats),))
        means.append(simulate(sc, at=steps, reps=reps, seed=seed + k, progress=False)[model.name].excess_risk)
    q = np.array(means)
    mean = q.mean(axis=0)
    se = q.std(axis=0, ddof=1) / math.sqrt(sketches)
    a = np.asarray(an[model.name].excess_risk, dtype=float)
    z = (mean - a) / (se + 1e-12 / 4)
    return {"steps": np.asarray(steps), "mean": mean, "se": se, "annealed": a, "z": z,
            "sketches": sketches, "reps": reps}
