"""What every theory solver shares: the chain state, the prefix cache, the chain loop,
result assembly and the solver contract (:class:`Solver`).

The chain state holds, for the models trained so far, the first-moment multipliers
``mu[g]`` (``E[e_g,i] = mu_g,i theta_i``) and the pair moments ``M[(g, h)]`` of
``docs/theory.md`` §4, each of shape ``(2, d)``: row 0 driven by the target (bias
source), row 1 by label noise (variance source). They add up to the full moments.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import SpecError
from ..result import ModelResult, ModeProfile, Result
from ..spec import Scenario
from ..stability import (
    DEFAULT_ON_UNSTABLE,
    StepCheck,
    check_on_unstable,
    guard_steps,
    stability_limit,
)

__all__ = ["Solver", "ChainState", "PrefixCache", "model_stability_limit", "guard_chain", "solve_chain",
           "pairwise_disagreement", "model_result"]


#: mode-operations one step of the step-by-step solver costs whatever ``d`` is (its Python
#: overhead, ~20 us against ~30 ns per mode)
STEP_OVERHEAD = 512


@dataclass(frozen=True)
class Solver:
    """The contract of a theory solver: a small frozen object holding its own options.

    ``supports(scenario, ...)`` returns ``None`` or the reason the solver cannot answer
    the request (exactly, if ``exact``); ``cost`` is a rough work estimate in
    mode-operations used by ``method="auto"``; ``solve`` does the bookkeeping shared by
    every solver (argument checks, the ``supports`` refusal, the prefix cache check,
    the method name and timing) around the solver's ``_solve``.
    """

    name: ClassVar[str] = "base"
    #: exact to round-off (``auto`` only picks exact solvers)
    exact: ClassVar[bool] = True
    #: accepts a :class:`PrefixCache`
    uses_cache: ClassVar[bool] = False

    @classmethod
    def with_options(cls, **options: Any) -> Solver:
        """The solver with these options, or a :class:`SpecError` naming the unknown ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        for key, value in options.items():
            if key not in known:
                allowed = f"its options are {sorted(known)}" if known else "it takes no options"
                raise SpecError(key, value, f"is not an option of method {cls.name!r}; {allowed}")
        return cls(**options)

    def supports(self, scenario: Scenario, *, every_step: bool = False,
                 record_modes: bool = False) -> str | None:
        """``None`` if this solver answers the request, else why not."""
        return None

    def cost(self, scenario: Scenario, *, every_step: bool = False) -> float:
        """Rough work estimate (mode-operations), used by ``method="auto"``: a step of each model
        costs its ``d`` modes plus :data:`STEP_OVERHEAD` (so that a long run on few modes is not
        taken for cheap)."""
        ops = (scenario.problem.d + STEP_OVERHEAD) * sum(m.steps for m in scenario.models) * len(scenario.models)
        return float(ops) if ops < 10**300 else math.inf  # steps such as 1e308: beyond the float range

    def solve(self, scenario: Scenario, *, at: dict[str, np.ndarray], record_modes: bool = False,
              every_step: bool = False, on_unstable: str = DEFAULT_ON_UNSTABLE,
              cache: PrefixCache | None = None) -> Result:
        """Curves of every model of the chain at the steps ``at[name]`` (see :func:`spectral_theory.predict`)."""
        if not isinstance(scenario, Scenario):
            raise SpecError("scenario", scenario, "must be a Scenario object")
        check_on_unstable(on_unstable)
        if cache is not None:
            if not self.uses_cache:
                raise SpecError("cache", "PrefixCache", f"is not used by method {self.name!r} "
                                "(the exact and renewal methods take one)")
            if not isinstance(cache, PrefixCache):
                raise SpecError("cache", cache, "must be a PrefixCache")
        reason = self.supports(scenario, every_step=every_step, record_modes=record_modes)
        if reason is not None:
            raise SpecError("method", self.name, f"cannot solve this scenario: {reason}")
        if not getattr(self, "handles_sketches", False) and any(
                getattr(m, "features", None) is not None for m in scenario.models):
            raise SpecError("method", self.name, "cannot solve a chain with sketched models directly: "
                            "use predict, which wraps it in the sketched solver (docs/sketch.md)")
        t0 = time.perf_counter()
        res = self._solve(scenario, at=at, record_modes=record_modes, every_step=every_step,
                          on_unstable=on_unstable, cache=cache)
        res.method = self.name
        res.diagnostics.setdefault("seconds", time.perf_counter() - t0)
        return res

    def _solve(self, scenario: Scenario, *, at: dict[str, np.ndarray], record_modes: bool,
               every_step: bool, on_unstable: str, cache: PrefixCache | None) -> Result:
        raise NotImplementedError  # pragma: no cover


def variant_reason(scenario: Scenario, method: str) -> str | None:
    """Why the continuous-time ``method`` (``ode``, ``continuum``) declines a scenario with an
    averaged or momentum model (``docs/theory.md`` §10), or ``None`` when every model is plain
    SGD. The variants are integrated by ``exact`` (every variant, step by step) and by
    ``renewal`` (constant coefficients: the constant-phase fast path
    of :mod:`spectral_theory.solvers.variant_renewal`); the continuous-time limits of the
    variants are not derived."""
    for m in scenario.models:
        if getattr(m, "is_variant", False):
            what = " and ".join(w for w, v in (("iterate averaging", m.average), ("momentum", m.momentum))
                                if v is not None)
            return (f"model {m.name!r} uses {what}, which method {method!r} does not model ('exact' "
                    "integrates every SGD variant step by step, 'renewal' those with constant "
                    "coefficients at a cost independent of T; docs/variants.md)")
    return None


def model_stability_limit(scenario: Scenario, index: int) -> float:
    """Largest stable constant step of model ``index`` (batch-mean convention)."""
    m = scenario.models[index]
    s = m.speed_profile(scenario.problem.eigenvalues)
    if _has_momentum(m) and m.momentum.constant:  # docs/theory.md §10
        from ..stability_momentum import momentum_limit

        return momentum_limit(m.momentum, s, m.batch, scenario.problem.kappa)
    return stability_limit(s, m.batch, scenario.problem.kappa)


def guard_chain(scenario: Scenario, on_unstable: str, diagnostics: dict[str, Any]) -> list[StepCheck]:
    """The stability policy (:func:`~spectral_theory.stability.guard_steps`) for every model of
    the chain on its own modes, before anything is trained (so that a model taken from a
    :class:`PrefixCache` is checked and reported too). Fills ``diagnostics["warnings"]`` and,
    when some model has steps above its limit, ``diagnostics["unstable_steps"]``."""
    warn_msgs = diagnostics.setdefault("warnings", [])
    unstable: dict[str, dict] = {}
    lam = scenario.problem.eigenvalues
    checks = [guard_steps(m.name, m.phases(), m.speed_profile(lam), m.batch, scenario.problem.kappa,
                          on_unstable=on_unstable, warn_msgs=warn_msgs, unstable_steps=unstable)
              if not _has_momentum(m) else _guard_momentum_model(m, lam, scenario.problem.kappa, on_unstable,
                                                                 warn_msgs, unstable)
              for m in scenario.models]
    if unstable:
        diagnostics["unstable_steps"] = unstable
    return checks


def guard_model(m: Any, lam: np.ndarray, kappa: float, on_unstable: str, warn_msgs: list[str] | None = None,
                unstable: dict | None = None) -> StepCheck:
    """The stability policy for one model: :func:`~spectral_theory.stability.guard_steps`, or for a
    model with momentum the exact test of its 3x3 maps (``docs/theory.md`` §10)."""
    if _has_momentum(m):
        return _guard_momentum_model(m, lam, kappa, on_unstable, warn_msgs, unstable)
    return guard_steps(m.name, m.phases(), m.speed_profile(lam), m.batch, kappa, on_unstable=on_unstable,
                       warn_msgs=warn_msgs, unstable_steps=unstable)


def _has_momentum(m: Any) -> bool:
    mom = getattr(m, "momentum", None)
    return mom is not None and not mom.is_plain


def _guard_momentum_model(m: Any, lam: np.ndarray, kappa: float, on_unstable: str, warn_msgs: list[str],
                          unstable: dict) -> StepCheck:
    """The stability policy for a model with momentum (``docs/theory.md`` §10): the exact
    radius of its per-mode 3x3 maps with the rank-one noise coupling."""
    from ..spec.variants import variant_phases
    from ..stability_momentum import guard_momentum

    return guard_momentum(m.name, variant_phases(m), m.speed_profile(lam), m.batch, kappa,
                          on_unstable=on_unstable, warn_msgs=warn_msgs, unstable_steps=unstable,
                          momentum=m.momentum)


@dataclass
class ChainState:
    """Per-mode moments of every model trained so far (see module docstring)."""

    theta2: np.ndarray
    mu: list[np.ndarray]
    M: dict[tuple[int, int], np.ndarray]

    def pair(self, g: int, h: int) -> np.ndarray:
        return self.M[(g, h) if g <= h else (h, g)]

    def disagreement_modes(self, g: int, h: int) -> np.ndarray:
        """Per-mode ``E[(phi_g,i - phi_h,i)^2]`` summed over sources."""
        if g == h:
            return np.zeros(self.theta2.size)
        return (self.pair(g, g) - 2.0 * self.pair(g, h) + self.pair(h, h)).sum(axis=0)

    def residual(self, g: int, p: int | None, c: float):
        """Moments of the residual ``v = e_g - c e_p`` of model ``g`` (``p``: its parent, or
        None with ``c = 0``): ``U = E[v^2]`` per mode, ``W[h] = E[v e_h]`` for every model
        ``h < g`` and the first-moment multiplier ``mu_v``. ``v`` follows the hard-label
        recursion (with noise ``alpha^2 sigma2``); ``W`` and ``mu_v`` decay by ``1 - x`` per step."""
        if p is None or c == 0.0:
            return (self.pair(g, g).copy(), {h: self.pair(h, g).copy() for h in range(g)},
                    self.mu[g].copy())
        U = self.pair(g, g) - 2.0 * c * self.pair(p, g) + (c * c) * self.pair(p, p)
        W = {h: self.pair(h, g) - c * self.pair(p, h) for h in range(g)}
        return U, W, self.mu[g] - c * self.mu[p]

    def set_from_residual(self, g: int, p: int | None, c: float, U, W, mu_v) -> None:
        """Inverse of :meth:`residual`: ``M_gg = U + 2c W_p + c^2 M_pp``,
        ``M_gh = W_h + c M_ph``, ``mu_g = mu_v + c mu_p``."""
        if p is None or c == 0.0:
            self.M[(g, g)], self.mu[g] = U, mu_v
            for h, w in W.items():
                self.M[(h, g)] = w
            return
        self.M[(g, g)] = U + 2.0 * c * W[p] + (c * c) * self.pair(p, p)
        self.mu[g] = mu_v + c * self.mu[p]
        for h, w in W.items():
            self.M[(h, g)] = w + c * self.pair(p, h)

    def add_model(self, expect: int | None = None) -> int:
        """Initialise a new model at ``phi = 0`` and return its index (``expect``: the index
        the caller's chain gives it; a mismatch is an internal error)."""
        g = len(self.mu)
        if expect is not None and g != expect:  # pragma: no cover - internal invariant
            raise RuntimeError(f"chain state holds {g} models, expected {expect}")
        zero = np.zeros_like(self.theta2)
        for h in range(g):
            # E[e_g(0) e_h] = E[-theta e_h] = -mu_h theta^2 (bias source); 0 (variance source)
            self.M[(h, g)] = np.stack([-self.mu[h] * self.theta2, zero])
        self.M[(g, g)] = np.stack([self.theta2.copy(), zero])
        self.mu.append(-np.ones_like(self.theta2))
        return g


def nonnegative(x):
    """Reported second moments and disagreements are >= 0 exactly; where the exact value is 0
    the recursion can return -1e-16-sized round-off, which is clipped (the state is not)."""
    return np.maximum(x, 0.0) if isinstance(x, np.ndarray) else max(float(x), 0.0)


@dataclass
class PrefixCache:
    """Trained chain prefixes, so that scenarios sharing their first models share the work.

    The state after training models ``0..g`` depends only on the problem and on
    those models' specs, so it is keyed by them (plus the reporting options of
    model ``g`` for its curves). Frozen models' moments are never modified in
    place, so a cached state is reused through a shallow copy; a cached model's
    :class:`ModelResult` is shared by every result that takes it (treat results as
    read-only). Keys include the method, so solvers never share entries. ``hits`` and
    ``misses`` count models taken from the cache and models trained.
    """

    entries: dict[str, tuple[list[np.ndarray], dict[tuple[int, int], np.ndarray], ModelResult]] = \
        field(default_factory=dict)
    hits: int = 0
    misses: int = 0

    @staticmethod
    def key(scenario: Scenario, g: int, at: np.ndarray, record_modes: bool, every_step: bool,
            method: str) -> str:
        blob = json.dumps([method, scenario.problem.describe(),
                           [m.describe() for m in scenario.models[:g + 1]],
                           [int(t) for t in at], record_modes, every_step], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def solve_chain(
    scenario: Scenario,
    at: dict[str, np.ndarray],
    train: Callable[[ChainState, int, np.ndarray, StepCheck], ModelResult],
    *,
    cache: PrefixCache | None,
    record_modes: bool,
    every_step: bool,
    on_unstable: str,
    method: str,
) -> Result:
    """The chain loop shared by the step-by-step and renewal solvers: the stability policy for
    every model (:func:`guard_chain`), then each model trained in order with
    ``train(state, index, checkpoints, check)`` (or taken from ``cache`` when its chain prefix is
    there), then the final pairwise disagreements, assembled into a :class:`Result` whose
    ``diagnostics`` the solver completes with its own counters."""
    diagnostics: dict[str, Any] = {}
    checks = guard_chain(scenario, on_unstable, diagnostics)
    state = ChainState(theta2=np.array(scenario.problem.theta2, dtype=float), mu=[], M={})
    results: dict[str, ModelResult] = {}
    for gi, model in enumerate(scenario.models):
        key = None
        if cache is not None:
            key = PrefixCache.key(scenario, gi, at[model.name], record_modes, every_step, method)
            hit = cache.entries.get(key)
            if hit is not None:
                cache.hits += 1
                state.mu, state.M = list(hit[0]), dict(hit[1])
                results[model.name] = hit[2]
                continue
            cache.misses += 1
        results[model.name] = train(state, gi, np.asarray(at[model.name], dtype=np.int64), checks[gi])
        if cache is not None:
            cache.entries[key] = (list(state.mu), dict(state.M), results[model.name])
    disagreement = pairwise_disagreement(state, [m.name for m in scenario.models])
    return Result(method=method, models=results, scenario=scenario, disagreement=disagreement,
                  diagnostics=diagnostics, state=state)


def pairwise_disagreement(state: ChainState, names: list[str],
                          weights: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """Final ``E||phi_g - phi_h||^2`` for every pair (``weights``: mode multiplicities)."""
    def total(v: np.ndarray) -> float:
        return nonnegative(float(v.sum() if weights is None else v @ weights))

    return {names[g]: {names[h]: total(state.disagreement_modes(g, h)) for h in range(len(names))}
            for g in range(len(names))}


def model_result(model: Any, ckpt: np.ndarray, risk: np.ndarray, state: ChainState, g: int, *,
                 disagreement: np.ndarray | None, mode_curves: np.ndarray | None,
                 curve: np.ndarray | None, limit: float, max_lr: float) -> ModelResult:
    """The :class:`ModelResult` of model ``g`` from its checkpoint risks ``risk`` (shape
    ``(len(ckpt), 2)``: bias and variance rows) and its final per-mode state."""
    risk = nonnegative(risk)
    Mgg = state.M[(g, g)]
    return ModelResult(
        name=model.name,
        steps=ckpt,
        excess_risk=risk.sum(axis=1),
        bias=risk[:, 0].copy(),
        variance=risk[:, 1].copy(),
        teacher=model.teacher,
        disagreement=None if disagreement is None else nonnegative(disagreement),
        modes=ModeProfile(second_moment=nonnegative(Mgg.sum(axis=0)), bias=nonnegative(Mgg[0]),
                          variance=nonnegative(Mgg[1]), first_moment=state.mu[g].copy(),
                          theta2=state.theta2),
        mode_curves=None if mode_curves is None else nonnegative(mode_curves),
        curve=curve,
        stability_limit=limit,
        max_lr=max_lr,
    )
