"""Public entry points: :func:`predict` (theory) and :func:`simulate` (Monte Carlo).

Both take a :class:`~spectral_theory.spec.Scenario` and return a
:class:`~spectral_theory.result.Result`, so validation is a plain comparison.
The theory solvers live in :mod:`spectral_theory.solvers` (registry ``METHODS``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import SpecError
from .result import Result
from .solvers import METHODS, Solver, choose, make_solver
from .spec import Output, Scenario
from .stability import DEFAULT_ON_UNSTABLE, check_on_unstable

__all__ = ["METHODS", "predict", "simulate", "resolve_at", "resolve_solver", "steps_past_end", "dropped_steps"]


def _output(scenario: Scenario, at: Sequence[int] | None) -> Output:
    if at is None:
        return scenario.output
    if isinstance(at, (str, bytes)) or not isinstance(at, Sequence | np.ndarray):
        raise SpecError("at", at, "must be a list of non-negative integers (steps)")
    try:
        return Output(at=tuple(at), points=scenario.output.points)
    except SpecError as err:
        raise SpecError(err.field.replace("output.at", "at"), err.value, err.allowed) from None


def resolve_at(scenario: Scenario, at: Sequence[int] | None) -> dict[str, np.ndarray]:
    """Reported steps per model: ``at`` or the scenario's output; a step past a model's end is
    reported as its last step (:func:`steps_past_end` lists them)."""
    out = _output(scenario, at)
    return {m.name: out.steps_for(m.steps) for m in scenario.models}


def steps_past_end(scenario: Scenario, at: Sequence[int] | None) -> dict[str, dict[str, Any]]:
    """Requested steps past each model's training: ``{model: {"requested": [...], "reported":
    its last step}}``; each such model reports its last step in their place
    (``diagnostics["steps_past_end"]`` of :func:`predict` and :func:`simulate`)."""
    out = _output(scenario, at)
    found = {m.name: (out.past_end(m.steps), m.steps) for m in scenario.models}
    return {k: {"requested": past, "reported": last} for k, (past, last) in found.items() if past}


def dropped_steps(scenario: Scenario, at: Sequence[int] | None) -> dict[str, list[int]]:
    """Deprecated name: the requested steps of :func:`steps_past_end`, per model."""
    return {k: v["requested"] for k, v in steps_past_end(scenario, at).items()}


def resolve_solver(scenario: Scenario, method: str | Solver, options: dict[str, Any], *,
                   every_step: bool = False, record_modes: bool = False) -> tuple[Solver, str]:
    """The solver ``predict`` runs for ``method`` (``"auto"``, a name or a Solver) and its
    options, and why it was chosen."""
    if not isinstance(scenario, Scenario):
        raise SpecError("scenario", scenario, "must be a Scenario object")
    if any(getattr(m, "features", None) is not None for m in scenario.models):
        from .sketch.quenched import resolve_sketched  # random features: docs/sketch.md

        return resolve_sketched(scenario, method, options, every_step=every_step, record_modes=record_modes)
    if isinstance(method, str) and method == "auto":
        if options:
            key = next(iter(options))
            raise SpecError(key, options[key], "is a solver option: name the method it belongs to")
        return choose(scenario, every_step=every_step, record_modes=record_modes)
    solver = make_solver(method, **options)
    return solver, f"forced: {solver.name}"


def predict(
    scenario: Scenario,
    *,
    at: Sequence[int] | None = None,
    method: str | Solver = "auto",
    record_modes: bool = False,
    every_step: bool = False,
    on_unstable: str = DEFAULT_ON_UNSTABLE,
    cache: Any = None,
    **options: Any,
) -> Result:
    """Predicted excess-risk curves of every model of the scenario's chain.

    Parameters
    ----------
    at : steps at which each model's excess risk is reported (each model's own
        step count, 0 = initialisation); default: the scenario's ``output``. A step past a
        model's end is reported as its last step, and ``diagnostics["steps_past_end"]`` says
        so (``{model: {"requested": [...], "reported": last step}}``).
    method : ``"auto"`` (``"exact"`` when it costs under ``solvers.CHEAP`` mode-operations,
        else the cheapest exact method that supports the request), a key of ``METHODS``
        (``"exact"``, ``"renewal"``, ``"ode"``, ``"continuum"``: ``docs/solvers/``) or a
        :class:`~spectral_theory.solvers.Solver` object; the result's ``method`` and
        ``diagnostics["method_choice"]`` say what ran.
    record_modes : also return per-mode second moments at every reported step
        (``ModelResult.mode_curves``, shape ``(steps, d)``).
    every_step : also return the excess risk at every step ``0..T`` (``ModelResult.curve``).
    on_unstable : step sizes above a model's stability limit (``docs/theory.md`` §5):
        ``"warn"`` (default) computes a schedule that returns below the limit and warns (a
        :class:`RuntimeWarning`, ``diagnostics["warnings"]`` and ``diagnostics["unstable_steps"]``
        name the steps, the limit and the peak growth factor); ``"raise"`` refuses any step
        above the limit; ``"ignore"`` computes without a warning. A model whose final constant
        phase is above the limit (except under ``"ignore"``) or whose risk overflows raises
        :class:`~spectral_theory.errors.InstabilityError`.
    cache : a :class:`~spectral_theory.solvers.PrefixCache` shared between calls, so that
        scenarios whose chains start with the same models train them once (exact and renewal).
    options : the solver's options (e.g. ``rtol`` for ``"ode"``, ``d=None`` for ``"continuum"``).
    """
    solver, why = resolve_solver(scenario, method, options, every_step=every_step,
                                 record_modes=record_modes)
    res = solver.solve(scenario, at=resolve_at(scenario, at), record_modes=record_modes,
                       every_step=every_step, on_unstable=on_unstable, cache=cache)
    res.diagnostics["method_choice"] = why
    past = steps_past_end(scenario, at)
    if past:
        res.diagnostics["steps_past_end"] = past
    return res


def simulate(
    scenario: Scenario,
    *,
    at: Sequence[int] | None = None,
    reps: int = 1000,
    seed: int = 0,
    progress: bool | None = None,
    on_unstable: str = DEFAULT_ON_UNSTABLE,
) -> Result:
    """Monte Carlo SGD for the scenario's chain, same call shape and result type as :func:`predict`.

    ``reps`` replicates (each trains its own chain on fresh samples), seeded by
    ``seed``; at each reported step the mean excess risk, its standard error (exactly 0 where
    every replicate agrees) and a 95% studentized bootstrap interval
    (``excess_risk_ci_low/high``); a :class:`~spectral_theory.montecarlo.HeavyTailWarning`
    where the replicates are too skewed for the normal interval (``docs/montecarlo.md``,
    "Uncertainty"). ``progress``: a bar with an ETA on standard error (``None``: when it is a
    terminal and the run is estimated above 2 s); unless ``False``, a run estimated above
    ``montecarlo.NOTE_SECONDS`` is announced first
    (:func:`~spectral_theory.montecarlo.estimate_simulation_seconds`). ``on_unstable``: the
    stability policy, as in :func:`predict` (anything overflowing is an
    :class:`~spectral_theory.errors.InstabilityError`, never a non-finite number).
    """
    from .montecarlo import run_monte_carlo

    if not isinstance(scenario, Scenario):
        raise SpecError("scenario", scenario, "must be a Scenario object")
    check_on_unstable(on_unstable)
    res = run_monte_carlo(scenario, at=resolve_at(scenario, at), reps=reps, seed=seed,
                          progress=progress, on_unstable=on_unstable)
    past = steps_past_end(scenario, at)
    if past:
        res.diagnostics["steps_past_end"] = past
    return res
