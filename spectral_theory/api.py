"""Public entry points: :func:`predict` (theory) and :func:`simulate` (Monte Carlo).

Both take a :class:`~spectral_theory.spec.Scenario` and return a
:class:`~spectral_theory.result.Result`, so validation is a plain comparison.

Theory methods live in a registry (``METHODS``). Each solver is an object
with a small contract: ``supports(scenario)`` returns ``None`` or the reason
it cannot solve the request exactly, and ``solve`` does the bookkeeping
(method name, timing, choice) around a private ``_solve``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .engine import run_exact
from .errors import SpecError
from .result import Result
from .spec import Output, Scenario

__all__ = ["Solver", "ExactSolver", "METHODS", "predict", "simulate", "resolve_at"]


def resolve_at(scenario: Scenario, at: Sequence[int] | None) -> dict[str, np.ndarray]:
    """Reported steps per model: ``at`` (clipped to each model's steps) or the scenario's output."""
    out = scenario.output if at is None else Output(at=tuple(at), points=scenario.output.points)
    return {m.name: out.steps_for(m.steps) for m in scenario.models}


class Solver:
    """Base class of theory solvers."""

    name = "base"
    exact = True

    def supports(self, scenario: Scenario) -> str | None:
        """``None`` if this solver answers the scenario (exactly, if ``exact``), else why not."""
        return None

    def solve(self, scenario: Scenario, *, at: dict[str, np.ndarray], **options: Any) -> Result:
        reason = self.supports(scenario)
        if reason is not None:
            raise SpecError("method", self.name, f"cannot solve this scenario: {reason}")
        t0 = time.perf_counter()
        res = self._solve(scenario, at=at, **options)
        res.method = self.name
        res.diagnostics.setdefault("seconds", time.perf_counter() - t0)
        return res

    def _solve(self, scenario: Scenario, *, at: dict[str, np.ndarray], **options: Any) -> Result:
        raise NotImplementedError  # pragma: no cover


class ExactSolver(Solver):
    """Step-by-step integration of the exact recursion: O(G d) per step, any schedule."""

    name = "exact"

    def _solve(self, scenario, *, at, record_modes=False, every_step=False, on_unstable="raise",
               cache=None):
        return run_exact(scenario, at=at, record_modes=record_modes, every_step=every_step,
                         on_unstable=on_unstable, cache=cache)


METHODS: dict[str, Solver] = {"exact": ExactSolver()}


def _choose(scenario: Scenario) -> tuple[Solver, str]:
    for name, solver in METHODS.items():
        if solver.exact and solver.supports(scenario) is None:
            return solver, f"auto: {name} (first exact method that supports the scenario)"
    raise SpecError("method", "auto", "no registered method supports this scenario")  # pragma: no cover


def predict(
    scenario: Scenario,
    *,
    at: Sequence[int] | None = None,
    method: str = "auto",
    record_modes: bool = False,
    every_step: bool = False,
    on_unstable: str = "raise",
    cache: Any = None,
) -> Result:
    """Predicted excess-risk curves of every model of the scenario's chain.

    Parameters
    ----------
    at : steps at which each model's excess risk is reported (each model's own
        step count, 0 = initialisation); default: the scenario's ``output``.
    method : ``"auto"`` or a key of ``METHODS``; the result's ``method`` and
        ``diagnostics["method_choice"]`` say what ran.
    record_modes : also return per-mode second moments at every reported step.
    every_step : also return the excess risk at every step (``ModelResult.curve``).
    on_unstable : ``"raise"`` (default) raises :class:`InstabilityError` with the
        largest stable step when a step size is at or beyond the stability limit;
        ``"warn"`` integrates anyway (the recursion stays exact) and records a warning.
    cache : a :class:`~spectral_theory.engine.PrefixCache` shared between calls, so that
        scenarios whose chains start with the same models train them once (sweeps, maps).
    """
    if not isinstance(scenario, Scenario):
        raise SpecError("scenario", scenario, "must be a Scenario object")
    if on_unstable not in ("raise", "warn"):
        raise SpecError("on_unstable", on_unstable, "must be 'raise' or 'warn'")
    if method == "auto":
        solver, why = _choose(scenario)
    elif method in METHODS:
        solver, why = METHODS[method], f"forced: {method}"
    else:
        raise SpecError("method", method, f"must be 'auto' or one of {sorted(METHODS)}")
    opts: dict[str, Any] = {"record_modes": record_modes, "every_step": every_step,
                            "on_unstable": on_unstable}
    if cache is not None:
        opts["cache"] = cache
    res = solver.solve(scenario, at=resolve_at(scenario, at), **opts)
    res.diagnostics["method_choice"] = why
    return res


def simulate(
    scenario: Scenario,
    *,
    at: Sequence[int] | None = None,
    reps: int = 1000,
    seed: int = 0,
    progress: bool | None = None,
    on_unstable: str = "raise",
) -> Result:
    """Monte Carlo SGD for the scenario's chain, same call shape and result type as :func:`predict`.

    ``reps`` replicates (each trains its own chain on fresh samples), seeded by
    ``seed``; mean excess risk and its standard error at each reported step.
    """
    from .montecarlo import run_monte_carlo

    if not isinstance(scenario, Scenario):
        raise SpecError("scenario", scenario, "must be a Scenario object")
    if on_unstable not in ("raise", "warn"):
        raise SpecError("on_unstable", on_unstable, "must be 'raise' or 'warn'")
    return run_monte_carlo(scenario, at=resolve_at(scenario, at), reps=reps, seed=seed,
                           progress=progress, on_unstable=on_unstable)
