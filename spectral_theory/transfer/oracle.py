"""Oracle early stopping: the step ``argmin_t E(t)`` over every step ``0..T`` of a model and the
risk there (``docs/theory.md`` §8), found without evaluating every step when that is costly.

When the chosen solver is the step-by-step one, or the model trains at most
:data:`EXHAUSTIVE_STEPS` steps, every step is evaluated (``how = "every step"``). Otherwise the
curve is searched: a first solve at :data:`SEARCH_POINTS` log-spaced steps, the ends of the
schedule's constant phases and the reported steps; then the bracket between the neighbours of
the best step is re-evaluated on :data:`SEARCH_POINTS` evenly spaced steps, until the bracket is
short enough to evaluate every step in it ("verified locally"). A solver whose cost does not
grow with the number of steps (renewal) makes each round cost about one solve. The search finds
the global minimum unless the curve has a second, lower dip narrower than the spacing of the
first grid (about ``T^(1/SEARCH_POINTS)``: 1% of ``t`` at ``T = 10^8``) away from every phase end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..api import resolve_at, resolve_solver
from ..solvers import PrefixCache, Solver
from ..spec import Scenario, log_steps

__all__ = ["OracleStop", "oracle_stop", "EXHAUSTIVE_STEPS", "SEARCH_POINTS"]

#: models of at most this many steps are evaluated at every step
EXHAUSTIVE_STEPS = 4096
#: steps evaluated per search round
SEARCH_POINTS = 2048


@dataclass(frozen=True)
class OracleStop:
    """The oracle stopping step of one model, its excess risk and how it was found."""

    step: int
    risk: float
    how: str
    #: steps evaluated to find it
    evaluated: int


def exhaustive(solver: Solver, scenario: Scenario) -> bool:
    """Whether every step of every model is evaluated (one solve with ``every_step``)."""
    longest = max(m.steps for m in scenario.models)
    return solver.name == "exact" or (longest <= EXHAUSTIVE_STEPS
                                      and solver.supports(scenario, every_step=True) is None)


def from_curve(curve: np.ndarray) -> OracleStop:
    """The oracle stop read off a risk curve over every step."""
    j = int(np.argmin(curve))
    return OracleStop(j, float(curve[j]), "every step", int(curve.size))


def search(solver: Solver, scenario: Scenario, name: str, prefix_at: dict[str, np.ndarray], *,
           cache: PrefixCache | None, on_unstable: str, reported: np.ndarray | None = None) -> OracleStop:
    """Search model ``name``'s curve (module docstring). ``prefix_at``: the steps reported for
    the models trained before it (so that a shared ``cache`` serves them)."""
    g = scenario.index(name)
    sub = Scenario(scenario.problem, scenario.models[:g + 1], output=scenario.output, name=scenario.name)
    model = sub.models[g]
    T = model.steps
    ends = np.cumsum([n for _, n in model.phases()], dtype=np.int64)
    grid = [log_steps(T, SEARCH_POINTS), ends[-SEARCH_POINTS:]]
    if reported is not None:
        grid.append(np.asarray(reported, dtype=np.int64))
    grid = np.unique(np.concatenate(grid))
    at = {m.name: np.asarray(prefix_at[m.name], dtype=np.int64) for m in sub.models[:g]}
    best_step, best_risk, evaluated, rounds = 0, np.inf, 0, 0
    while True:
        rounds += 1
        res = solver.solve(sub, at={**at, name: grid}, cache=cache, on_unstable=on_unstable)
        risk = res.models[name].excess_risk
        evaluated += grid.size
        j = int(np.argmin(risk))
        if risk[j] < best_risk:
            best_step, best_risk = int(grid[j]), float(risk[j])
        lo, hi = int(grid[max(j - 1, 0)]), int(grid[min(j + 1, grid.size - 1)])
        if grid.size == hi - lo + 1 or hi - lo <= 1:  # every step of the bracket was evaluated
            how = (f"search: {evaluated} steps in {rounds} rounds (log grid and phase ends, then "
                   f"every step of [{lo}, {hi}])")
            return OracleStop(best_step, best_risk, how, evaluated)
        if hi - lo + 1 <= SEARCH_POINTS:
            grid = np.arange(lo, hi + 1, dtype=np.int64)
        else:
            grid = np.unique(np.round(np.linspace(lo, hi, SEARCH_POINTS)).astype(np.int64))


def oracle_stop(scenario: Scenario, name: str, *, method: str | Solver = "auto",
                cache: PrefixCache | None = None, on_unstable: str | None = None,
                **options: Any) -> OracleStop:
    """Oracle early stopping of model ``name`` of ``scenario`` (module docstring); ``method``
    and ``options`` choose the solver as in :func:`spectral_theory.predict`."""
    from ..api import predict

    kw = {} if on_unstable is None else {"on_unstable": on_unstable}
    solver, _ = resolve_solver(scenario, method, options)
    scenario.model(name)  # an UnknownNameError listing the models if there is none
    final = [m.steps for m in scenario.models]
    if exhaustive(solver, scenario):
        res = predict(scenario, at=final, every_step=True, method=solver, cache=cache, **kw)
        return from_curve(res[name].curve)
    return search(solver, scenario, name, resolve_at(scenario, final), cache=cache,
                  on_unstable=kw.get("on_unstable", _default_on_unstable()))


def _default_on_unstable() -> str:
    from ..stability import DEFAULT_ON_UNSTABLE

    return DEFAULT_ON_UNSTABLE
