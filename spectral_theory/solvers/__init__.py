"""Theory solvers: one module per method, all answering :meth:`Solver.solve` with a
:class:`~spectral_theory.result.Result` (``docs/solvers/``).

========== ========================================================= =================
method     what                                                      exact
========== ========================================================= =================
exact      the recursion step by step (:mod:`.exact`)                 to round-off
renewal    renewal equation of each constant phase on contours        ~1e-10 relative
ode        continuous-time deterministic equivalent (:mod:`.ode`)     no (first order)
continuum  the ODE on quadrature nodes over the spectral measure      no
========== ========================================================= =================

Solver modules are imported when first used, so ``import spectral_theory`` stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import SpecError
from ..spec import Scenario
from .base import ChainState, PrefixCache, Solver

__all__ = ["METHODS", "EXACT_METHODS", "CHEAP", "Solver", "ChainState", "PrefixCache", "solver_class", "make_solver",
           "choose"]

class _Registry(Mapping):
    """Method name -> solver class, each module imported on first use."""

    def __init__(self, entries: dict[str, tuple[str, str]]):
        self._entries = entries

    def __getitem__(self, name: str) -> type[Solver]:
        module, cls = self._entries[name]
        return getattr(importlib.import_module(f".{module}", __name__), cls)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


#: method name -> solver class
METHODS: Mapping[str, type[Solver]] = _Registry({
    "exact": ("exact", "ExactSolver"),
    "renewal": ("renewal", "RenewalSolver"),
    "ode": ("ode", "ODESolver"),
    "continuum": ("continuum", "ContinuumSolver"),
})
#: the methods exact to round-off, the only ones ``auto`` picks (without importing the others;
#: a test checks this against each class's ``exact``)
EXACT_METHODS = ("exact", "renewal")

#: mode-operations (about 0.1 s): below this, ``auto`` keeps the step-by-step solver
CHEAP = 1e7


def solver_class(name: str) -> type[Solver]:
    """The solver class registered as ``name``."""
    if not isinstance(name, str) or name not in METHODS:
        raise SpecError("method", name, f"must be 'auto' or one of {sorted(METHODS)}")
    return METHODS[name]


def make_solver(method: str | Solver, **options: Any) -> Solver:
    """A solver from a method name and its options (or a :class:`Solver` passed as it is)."""
    if isinstance(method, Solver):
        if options:
            raise SpecError(next(iter(options)), options[next(iter(options))],
                            "cannot be combined with a Solver object (give it to the solver)")
        return method
    return solver_class(method).with_options(**options)


def choose(scenario: Scenario, *, every_step: bool = False, record_modes: bool = False) -> tuple[Solver, str]:
    """``method="auto"``: ``exact`` when it costs under :data:`CHEAP` mode-operations, else the
    cheapest exact method that supports the request; returns the solver and why it was chosen."""
    exact = make_solver("exact")
    exact_cost = exact.cost(scenario, every_step=every_step)
    if exact_cost <= CHEAP:
        return exact, f"auto: exact (step by step, ~{exact_cost:.3g} mode-operations)"
    best, best_cost, why = exact, exact_cost, ""
    for name in EXACT_METHODS:
        if name == "exact":
            continue
        solver = solver_class(name)()
        reason = solver.supports(scenario, every_step=every_step, record_modes=record_modes)
        if reason is not None:
            why += f"; {name} declined: {reason}"
            continue
        cost = solver.cost(scenario, every_step=every_step)
        if cost < best_cost:
            best, best_cost = solver, cost
    return best, f"auto: {best.name} (cheapest exact method, ~{best_cost:.3g} mode-operations{why})"
