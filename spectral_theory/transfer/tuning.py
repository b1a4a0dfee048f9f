"""Tuning a comparison's student: the best hard-label weight ``alpha`` or the best constant
step, as a risk curve over a grid refined by a bounded scalar search."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..api import predict, resolve_solver
from ..errors import SpecError
from ..result import as_list
from ..solvers import PrefixCache, Solver
from ..stability import stability_limit
from .oracle import oracle_stop
from .specs import Chain, Distillation, WeakToStrong, check_spec

__all__ = ["Tuning", "tune_alpha", "tune_lr"]


@dataclass
class Tuning:
    """The student's risk over a grid of one parameter (``alpha`` or ``lr``) and the best value
    found by refining around the best grid point."""

    param: str
    values: np.ndarray
    risks: np.ndarray
    best: float
    best_risk: float
    objective: str
    cache_hits: int
    cache_misses: int
    #: the student's largest stable constant step (``param == "lr"``)
    stability_limit: float | None = None
    #: the solver(s) that ran, ``+``-joined (as in a transfer report)
    method: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {"param": self.param, "values": as_list(self.values), "risks": as_list(self.risks),
               "best": self.best, "best_risk": self.best_risk, "objective": self.objective,
               "method": self.method, "cache": {"hits": self.cache_hits, "misses": self.cache_misses}}
        if self.stability_limit is not None:
            out["stability_limit"] = self.stability_limit
        return out

    def table(self) -> str:
        """The risk curve as a table with a header, and the best value."""
        lines = [f"# student {self.objective} excess risk over {self.param}"
                 + (f" ({self.method})" if self.method else ""),
                 f"{self.param:>12} {'risk':>14}"]
        lines += [f"{x:>12.6g} {r:>14.8g}" for x, r in zip(self.values, self.risks, strict=True)]
        lines.append(f"best {self.param} = {self.best:.6g}, risk {self.best_risk:.8g}")
        if self.stability_limit is not None:
            lines.append(f"stability limit of the student's constant step: {self.stability_limit:.6g}")
        return "\n".join(lines) + "\n"


OBJECTIVES = ("final", "oracle")


def _student_risk(spec, cache: PrefixCache, objective: str, method: str | Solver = "auto",
                  ran: set[str] | None = None) -> float:
    """The student's final or oracle (minimum over every step) excess risk, by solver
    ``method`` (as in :func:`~spectral_theory.predict`); the solver's name is added to ``ran``."""
    name = spec.student_model
    for scn in spec.lineages().values():
        if name in [m.name for m in scn.models]:
            solver, _ = resolve_solver(scn, method, {})
            if ran is not None:
                ran.add(solver.name)
            if objective == "oracle":
                return oracle_stop(scn, name, method=solver, cache=cache).risk
            r = predict(scn, at=[scn.model(name).steps], method=solver, cache=cache)
            return float(r.models[name].excess_risk[-1])
    raise KeyError(name)  # pragma: no cover


def _grid_then_refine(f, grid: np.ndarray, xatol: float) -> tuple[np.ndarray, float, float]:
    """``f`` on ``grid``, then a bounded Brent search between the neighbours of the best point;
    returns the grid risks and the best (x, f(x)) found."""
    from scipy.optimize import minimize_scalar

    risks = np.array([f(x) for x in grid])
    j = int(np.argmin(risks))
    lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
    opt = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": xatol})
    if opt.fun < risks[j]:
        return risks, float(opt.x), float(opt.fun)
    return risks, float(grid[j]), float(risks[j])


def _check(objective: str, grid: Any) -> None:
    if objective not in OBJECTIVES:
        raise SpecError("objective", objective, f"must be one of {list(OBJECTIVES)}")
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 3:
        raise SpecError("grid", grid, "must be an integer >= 3")


def tune_alpha(spec: Distillation | WeakToStrong | Chain, *, grid: int = 21, objective: str = "final",
               xatol: float = 1e-4, cache: PrefixCache | None = None,
               method: str | Solver = "auto") -> Tuning:
    """Best hard-label weight ``alpha`` in [0, 1] for the student's risk.

    The student's final (``objective="final"``) or oracle (``"oracle"``) risk on a uniform
    grid of ``grid`` alphas (the risk curve), then a bounded scalar search (Brent) around the
    best grid point to ``xatol``. The teacher is trained once (shared prefix). ``method``:
    the theory solver, as in :func:`spectral_theory.predict` (the result names what ran).
    """
    check_spec(spec)
    _check(objective, grid)
    cache = cache if cache is not None else PrefixCache()
    h0, m0 = cache.hits, cache.misses
    ran: set[str] = set()
    f = lambda a: _student_risk(dataclasses.replace(spec, alpha=float(a)), cache, objective,  # noqa: E731
                                method, ran)
    alphas = np.linspace(0.0, 1.0, grid)
    risks, best, best_r = _grid_then_refine(f, alphas, xatol)
    return Tuning("alpha", alphas, risks, best, best_r, objective, cache.hits - h0, cache.misses - m0,
                  method="+".join(sorted(ran)))


def tune_lr(spec: Distillation | WeakToStrong | Chain, *, grid: int = 21, objective: str = "final",
            lo_fraction: float = 1e-3, xatol: float = 1e-4, cache: PrefixCache | None = None,
            method: str | Solver = "auto") -> Tuning:
    """Best constant step size of the student (in its own convention), in ``(0, stability limit)``.

    Grid in log-space on ``[lo_fraction, 0.999] x limit``, then a bounded scalar search in
    ``log(lr)`` (to ``xatol``) around the best grid point. For a chain, the child recipe
    (every generation after the first) is tuned. ``method``: the theory solver, as in
    :func:`spectral_theory.predict` (the result names what ran).
    """
    check_spec(spec)
    _check(objective, grid)
    field_ = {"kd": "student", "w2s": "strong", "chain": "child"}[spec.kind]
    student = getattr(spec, field_) or spec.base  # chain without child: the base recipe
    s = student.speed_profile(spec.problem.eigenvalues)
    mom = getattr(student, "momentum", None)
    if mom is not None and not mom.is_plain:  # docs/theory.md §10: the momentum model's own limit
        if not mom.constant:
            raise SpecError(f"{field_}.momentum", mom.describe(),
                            "tune_lr needs constant momentum coefficients (a per-step list has no single "
                            "constant-step stability limit)")
        from ..stability_momentum import momentum_limit

        limit = momentum_limit(mom, s, student.batch, spec.problem.kappa)
    else:
        limit = stability_limit(s, student.batch, spec.problem.kappa)
    if student.lr_convention == "sum":
        limit /= student.batch
    cache = cache if cache is not None else PrefixCache()
    h0, m0 = cache.hits, cache.misses
    ran: set[str] = set()

    def f(loglr: float) -> float:
        m = dataclasses.replace(student, schedule=float(math.exp(loglr)))
        return _student_risk(dataclasses.replace(spec, **{field_: m}), cache, objective, method, ran)

    lrs = np.geomspace(lo_fraction * limit, 0.999 * limit, grid)
    risks, best, best_r = _grid_then_refine(f, np.log(lrs), xatol)
    return Tuning("lr", lrs, risks, math.exp(best), best_r, objective, cache.hits - h0, cache.misses - m0,
                  stability_limit=limit, method="+".join(sorted(ran)))
