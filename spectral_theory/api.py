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

__all__ = ["Solver", "ExactSolver", "METHODS", "predict", "simulate", "resolve_at", "dropped_steps"]


def resolve_at(scenario: Scenario, at: Sequence[int] | None) -> dict[str, np.ndarray]:
    """Reported steps per model: ``at`` (clipped to each model's steps) or the scenario's output."""
    if at is None:
        out = scenario.output
    else:
        try:
            out = Output(at=tuple(at), points=scenario.output.points)
        except SpecError as err:
            raise SpecError(err.field.replace("output.at", "at"), err.value, err.allowed) from None
    return {m.name: out.steps_for(m.steps) for m in scenario.models}


def dropped_steps(scenario: Scenario, at: Sequence[int] | None) -> dict[str, list[int]]:
    """Requested steps past each model's training, which that model does not report."""
    steps = scenario.output.at if at is None else at
    if steps is None:
        return {}
    out = {m.name: sorted({int(t) for t in steps if int(t) > m.steps}) for m in scenario.models}
    return {k: v for k, v in out.items() if v}


class Solver:
    """Base class of theory solvers."""

    name = "base"
    exact = True
    options: frozenset[str] = frozenset({"record_modes", "every_step", "on_unstable"})

    def supports(self, scenario: Scenario, **options: Any) -> str | None:
        """``None`` if this solver answers the request (exactly, if ``exact``), else why not."""
        return None

    def cost(self, scenario: Scenario, **options: Any) -> float:
        """Rough work estimate (mode-operations), used by ``method="auto"``."""
        return float(scenario.problem.d * sum(m.steps for m in scenario.models) * len(scenario.models))

    def solve(self, scenario: Scenario, *, at: dict[str, np.ndarray], **options: Any) -> Result:
        for key in options:
            if key not in self.options:
                raise SpecError(key, options[key], f"is not an option of method {self.name!r}; "
                                                   f"its options are {sorted(self.options)}")
        reason = self.supports(scenario, every_step=options.get("every_step", False),
                               record_modes=options.get("record_modes", False))
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
    options = Solver.options | {"cache"}

    def _solve(self, scenario, *, at, record_modes=False, every_step=False, on_unstable="raise",
               cache=None):
        return run_exact(scenario, at=at, record_modes=record_modes, every_step=every_step,
                         on_unstable=on_unstable, cache=cache)


class ODESolver(Solver):
    """Continuous-time deterministic equivalent (``tau = sum of steps``) on an adaptive
    log grid, any schedule. Not exact: it drops terms of relative order ``eta s`` per step
    (bound ``|dE| <= 0.5 max(eta s) max_t E``, :mod:`spectral_theory.ode`). Options:
    ``rtol``, ``atol``, ``jump_tol``."""

    name = "ode"
    exact = False
    options = Solver.options | {"rtol", "atol", "jump_tol", "modes", "max_points"}

    def _solve(self, scenario, *, at, **options):
        from .ode import run_ode

        return run_ode(scenario, at=at, **options)


class ContinuumSolver(Solver):
    """The ODE on quadrature nodes over the spectral measure: cost independent of ``d``
    (``d=None``: d = infinity). Power-law spectrum and target, capacities (no explicit
    speeds). Node sums match the full-d sums to ~1e-9 (:mod:`spectral_theory.continuum`).
    Options: ``d``, ``node_options`` and the ODE's."""

    name = "continuum"
    exact = False
    options = ODESolver.options - {"modes"} | {"d", "node_options"}

    def supports(self, scenario, **options):
        from .spec import PowerLawSpectrum, PowerLawTarget

        p = scenario.problem
        if not isinstance(p.spectrum, PowerLawSpectrum) or not isinstance(p.target, PowerLawTarget):
            return "needs a power-law spectrum and a power-law target"
        if any(m.speeds is not None for m in scenario.models):
            return "explicit per-mode speeds cannot be mapped to continuum nodes"
        return None

    def _solve(self, scenario, *, at, **options):
        from .continuum import run_continuum

        return run_continuum(scenario, at=at, **options)


class RenewalSolver(Solver):
    """Renewal equation of each constant phase inverted on hyperbolic contours: exact to
    ~1e-10 relative (tested against ``exact`` at 1e-8), cost independent of the number of
    steps (:mod:`spectral_theory.fast`). Needs few constant phases and every per-mode
    factor ``a_i > 0`` (always for kurtosis >= 2 at stable steps)."""

    name = "renewal"
    exact = True
    options = Solver.options | {"cache"}

    def supports(self, scenario, *, every_step=False, record_modes=False):
        from . import fast

        reason = fast.supports(scenario)
        if reason is None and every_step and max(m.steps for m in scenario.models) > fast.MAX_EVERY_STEP:
            reason = f"every_step is served up to {fast.MAX_EVERY_STEP} steps per model"
        return reason

    def cost(self, scenario, **options):
        # per phase: ~24 d for the compressed mode sums plus ~60 contour nodes per window;
        # direct stepping below 16 steps; every_step adds the curve
        d = scenario.problem.d
        phases = sum(len(m.phases()) for m in scenario.models)
        extra = sum(m.steps for m in scenario.models) if options.get("every_step") else 0
        return float(len(scenario.models) * phases * d * 150 + 50 * extra)

    def _solve(self, scenario, *, at, **options):
        from .fast import run_fast

        return run_fast(scenario, at=at, **options)


METHODS: dict[str, Solver] = {"exact": ExactSolver(), "renewal": RenewalSolver(), "ode": ODESolver(),
                              "continuum": ContinuumSolver()}


CHEAP = 1e7  # mode-operations (about 0.1 s): below this, auto keeps the step-by-step engine


def _choose(scenario: Scenario, options: dict[str, Any]) -> tuple[Solver, str]:
    """``exact`` (exact to round-off) when it is cheap, else the cheapest exact method."""
    exact = METHODS["exact"]
    exact_cost = exact.cost(scenario, **options)
    if exact_cost <= CHEAP:
        return exact, f"auto: exact (step by step, ~{exact_cost:.3g} mode-operations)"
    best, best_cost, why = exact, exact_cost, ""
    for name, solver in METHODS.items():
        if not solver.exact or solver is exact:
            continue
        reason = solver.supports(scenario, **options)
        if reason is not None:
            why += f"; {name} declined: {reason}"
            continue
        cost = solver.cost(scenario, **options)
        if cost < best_cost:
            best, best_cost = solver, cost
    return best, f"auto: {best.name} (cheapest exact method, ~{best_cost:.3g} mode-operations{why})"


def predict(
    scenario: Scenario,
    *,
    at: Sequence[int] | None = None,
    method: str = "auto",
    record_modes: bool = False,
    every_step: bool = False,
    on_unstable: str = "raise",
    cache: Any = None,
    **options: Any,
) -> Result:
    """Predicted excess-risk curves of every model of the scenario's chain.

    Parameters
    ----------
    at : steps at which each model's excess risk is reported (each model's own
        step count, 0 = initialisation); default: the scenario's ``output``.
    method : ``"auto"`` (``"exact"`` when it costs under ``CHEAP`` mode-operations, else the
        cheapest exact method that supports the request) or a key of
        ``METHODS``: ``"exact"`` (step by step, any schedule), ``"ode"`` (continuous-time
        deterministic equivalent, approximate), ``"continuum"`` (ODE on quadrature nodes,
        cost independent of d), and ``"renewal"`` where available; the result's ``method``
        and ``diagnostics["method_choice"]`` say what ran.
    record_modes : also return per-mode second moments at every reported step.
    every_step : also return the excess risk at every step (``ModelResult.curve``).
    on_unstable : ``"raise"`` (default) raises :class:`InstabilityError` with the
        largest stable step when a step size is at or beyond the stability limit;
        ``"warn"`` integrates anyway (the recursion stays exact) and records a warning.
    cache : a :class:`~spectral_theory.engine.PrefixCache` shared between calls, so that
        scenarios whose chains start with the same models train them once (sweeps, maps;
        exact method).
    options : method-specific keywords (e.g. ``rtol`` for ``"ode"``, ``d=None`` for
        ``"continuum"``), passed to the solver.
    """
    if not isinstance(scenario, Scenario):
        raise SpecError("scenario", scenario, "must be a Scenario object")
    if on_unstable not in ("raise", "warn"):
        raise SpecError("on_unstable", on_unstable, "must be 'raise' or 'warn'")
    if method == "auto":
        solver, why = _choose(scenario, {"record_modes": record_modes, "every_step": every_step})
    elif method in METHODS:
        solver, why = METHODS[method], f"forced: {method}"
    else:
        raise SpecError("method", method, f"must be 'auto' or one of {sorted(METHODS)}")
    opts: dict[str, Any] = {"record_modes": record_modes, "every_step": every_step,
                            "on_unstable": on_unstable, **options}
    if cache is not None:
        if solver.name not in ("exact", "renewal"):
            raise SpecError("cache", "PrefixCache", "is used by the exact and renewal methods only")
        opts["cache"] = cache
    res = solver.solve(scenario, at=resolve_at(scenario, at), **opts)
    res.diagnostics["method_choice"] = why
    dropped = dropped_steps(scenario, at)
    if dropped:
        res.diagnostics["steps_not_reported"] = dropped
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
    res = run_monte_carlo(scenario, at=resolve_at(scenario, at), reps=reps, seed=seed,
                          progress=progress, on_unstable=on_unstable)
    dropped = dropped_steps(scenario, at)
    if dropped:
        res.diagnostics["steps_not_reported"] = dropped
    return res
