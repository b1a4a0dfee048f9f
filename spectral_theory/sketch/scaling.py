"""Compute-optimal width and steps for random-feature models on power laws (``docs/sketch.md`` §7).

A model of width ``p`` (a Gaussian sketch) trained ``N`` one-pass SGD steps at batch 1 costs
``C = p N`` (one multiply-add per feature per step, as in Paquette et al.). For each width the
annealed theory (:mod:`.annealed`, the deterministic equivalent over the sketch) gives the
whole risk curve in one solve; the frontier ``L*(C) = min_p L(p, C/p)`` and the optimal width
``p*(C)`` are read off it and their log-log slopes fitted. The closed-form reference is the
capacity-limited scaling form ``L(N, k) = k^(1-b) h(eta N k^-a)`` of
``docs/theory.md`` §7 (:func:`~spectral_theory.analysis.asymptotics.compute_optimal_exponents`):
``p* ~ C^(1/(a+1))``, ``L* ~ C^(-(b-1)/(a+1))``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..analysis.asymptotics import compute_optimal_exponents
from ..analysis.rates import fit_loglog_slope
from ..errors import SpecError
from ..spec import Model, Output, PowerLawSpectrum, PowerLawTarget, Problem, Scenario, log_steps
from ..stability import stability_limit
from .annealed import equivalent

__all__ = ["width_frontier"]


def width_frontier(a: float, b: float, *, widths: Any, steps: int, d: int | None = None, noise: float = 0.0,
                   lr: float | None = None, budgets: int = 40, method: str = "auto") -> dict[str, Any]:
    """The compute-optimal frontier over ``widths`` (Gaussian sketches, annealed theory) on the
    power law ``lambda_i = i^-a``, ``theta_i^2 = i^-b`` with ``d`` modes (default ``8 max(widths)``),
    constant step ``lr`` (default half the smallest stability limit over the widths), batch 1,
    up to ``steps`` steps. Returns the grid of risks, the frontier at ``budgets`` log-spaced
    compute budgets (``C``, ``loss``, ``p``, ``N``), the fitted exponents of ``p*`` and ``L*``
    over the budgets where the optimum is interior to the width grid, and the closed-form
    capacity exponents for comparison."""
    widths = sorted({int(w) for w in widths})
    if len(widths) < 3 or widths[0] < 1:
        raise SpecError("widths", widths, "must list at least three distinct widths >= 1")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 10:
        raise SpecError("steps", steps, "must be an integer >= 10")
    d = int(d) if d is not None else 8 * widths[-1]
    prob = Problem(PowerLawSpectrum(a=a, d=d), PowerLawTarget(b=b), noise=noise)
    eqs = {p: equivalent(prob, p) for p in widths}
    if lr is None:
        lr = 0.5 * min(stability_limit(eqs[p].m, 1, 3.0) for p in widths)
    grid_t = log_steps(steps, 120)[1:]
    risk = np.empty((len(widths), grid_t.size))
    from ..api import predict

    for k, p in enumerate(widths):
        eq = eqs[p]
        sc = Scenario(eq.problem(noise), (Model("m", steps=steps, schedule=float(lr)),),
                      output=Output(at=tuple(int(t) for t in grid_t)))
        risk[k] = np.asarray(predict(sc, method=method)["m"].excess_risk) + eq.approximation_error
    # frontier: for each budget C and width p, the risk at N = C / p (log-log interpolation)
    lo = max(widths[0] * grid_t[0], widths[-1] * 10)
    hi = widths[0] * steps
    if hi <= lo:
        raise SpecError("steps", steps, f"too few for the widths: need steps * {widths[0]} > {lo}")
    C = np.geomspace(lo, hi, budgets)
    L = np.full((len(widths), C.size), np.inf)
    for k, p in enumerate(widths):
        N = C / p
        ok = (N >= grid_t[0]) & (N <= grid_t[-1])
        L[k, ok] = np.exp(np.interp(np.log(N[ok]), np.log(grid_t), np.log(risk[k])))
    best = np.argmin(L, axis=0)
    loss = L[best, np.arange(C.size)]
    p_opt = np.array([widths[i] for i in best], dtype=float)
    interior = (best > 0) & (best < len(widths) - 1)
    # between grid widths: the vertex of the parabola through log L against log p at the best
    # width and its two neighbours
    lw = np.log(np.asarray(widths, dtype=float))
    for j in np.flatnonzero(interior):
        i = best[j]
        x, y = lw[i - 1:i + 2], np.log(L[i - 1:i + 2, j])
        if not np.all(np.isfinite(y)):
            interior[j] = False
            continue
        c2, c1, c0 = np.polyfit(x, y, 2)
        if c2 <= 0:
            continue
        xv = min(max(-c1 / (2 * c2), x[0]), x[2])
        p_opt[j] = math.exp(xv)
        loss[j] = math.exp(c0 + c1 * xv + c2 * xv * xv)
    fits: dict[str, Any] = {}
    if interior.sum() >= 3:
        fits["p"] = fit_loglog_slope(C[interior], p_opt[interior]).slope
        fits["loss"] = fit_loglog_slope(C[interior], loss[interior]).slope
        fits["N"] = 1.0 - fits["p"]
    return {"a": a, "b": b, "d": d, "lr": float(lr), "noise": noise, "widths": widths, "steps": grid_t,
            "risk": risk, "C": C, "loss": loss, "p": p_opt, "N": C / p_opt, "interior": interior,
            "fitted": fits, "predicted": compute_optimal_exponents(a, b),
            "approximation_error": {p: eqs[p].approximation_error for p in widths},
            "paquette": {"alpha": a / 2.0, "beta": (b - a) / 2.0}}
