"""SGD variants of a model: iterate averaging and momentum (``docs/theory.md`` §10).

* :class:`Average` -- the predictor a model deploys is a weighted average of its iterates
  ``phi_0 .. phi_T``: uniform (Polyak-Ruppert) from a start step, the tail (the last fraction or
  the last ``N`` iterates), an exponential moving average (a decay or a half-life) or explicit
  weights. It never feeds back into the training dynamics.
* :class:`Momentum` -- a linear two-state update with one stochastic gradient per step that
  covers heavy-ball, Nesterov, the accelerated SGD of Jain, Kakade, Kidambi, Netrapalli and
  Sidford (2018) and any other such method (``kind = "general"``), with constant or
  step-dependent coefficients.

Both are frozen and validate their fields; errors name the field (re-rooted under
``models[i].average`` / ``models[i].momentum`` by the model and the file reader), the value and
what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SpecError
from .validate import finite, integer

__all__ = ["Average", "Momentum", "variant_phases", "AVERAGE_KINDS", "MOMENTUM_KINDS", "AVERAGE_KEYS", "MOMENTUM_KEYS"]

#: the keys each kind takes (``kind`` included); the first group of each tuple is required
AVERAGE_KEYS: dict[str, frozenset[str]] = {
    "uniform": frozenset({"kind", "start"}),
    "tail": frozenset({"kind", "fraction", "last"}),
    "ema": frozenset({"kind", "decay", "half_life"}),
    "weights": frozenset({"kind", "values"}),
}
AVERAGE_KINDS = tuple(AVERAGE_KEYS)
MOMENTUM_KEYS: dict[str, frozenset[str]] = {
    "heavy_ball": frozenset({"kind", "beta"}),
    "nesterov": frozenset({"kind", "beta"}),
    "accelerated": frozenset({"kind", "alpha", "beta", "gamma"}),
    "general": frozenset({"kind", "r", "p_e", "p_v", "k_v"}),
}
MOMENTUM_KINDS = tuple(MOMENTUM_KEYS)


def _kind(field_: str, kind: Any, kinds: tuple[str, ...]) -> str:
    if not isinstance(kind, str) or kind not in kinds:
        raise SpecError(f"{field_}.kind", kind, f"must be one of {list(kinds)}")
    return kind


@dataclass(frozen=True)
class Average:
    """Iterate averaging: the deployed predictor ``phibar = sum_t w_t phi_t / sum_t w_t``.

    Kinds (``T`` the model's steps; iterates ``phi_0 = 0, phi_1, .., phi_T``):

    * ``uniform`` (``start``): equal weights on ``phi_start .. phi_T`` (Polyak-Ruppert;
      ``start = 1`` leaves out the initialisation, ``start = 0`` includes it);
    * ``tail`` (``fraction`` in (0, 1] or ``last = N >= 1``): equal weights on the last
      ``N = max(1, ceil(fraction * T))`` iterates ``phi_{T-N+1} .. phi_T``;
    * ``ema`` (``decay`` in [0, 1) or ``half_life > 0``, ``decay = 2^(-1/half_life)``):
      ``phibar_t = decay * phibar_{t-1} + (1 - decay) phi_t`` from ``phibar_0 = phi_0``;
    * ``weights`` (``values``: ``T + 1`` numbers >= 0 with a positive sum, one per iterate
      ``phi_0 .. phi_T``), normalised to sum 1.

    At a reported step ``t < T`` the average is the one an online averager holds at ``t``:
    ``sum_{u<=t} w_u phi_u / sum_{u<=t} w_u``, and the last iterate ``phi_t`` while no weight
    has been reached yet (e.g. before the tail window opens). In recursive form
    ``phibar_t = (1 - rho_t) phibar_{t-1} + rho_t phi_t`` with ``rho_t = w_t / sum_{u<=t} w_u``
    (:meth:`mix`); the final value at ``T`` is the average the kind names.
    """

    kind: str
    start: int | None = None
    fraction: float | None = None
    last: int | None = None
    decay: float | None = None
    half_life: float | None = None
    values: Any = field(default=None, repr=False)

    def __post_init__(self):
        f = "average"
        kind = _kind(f, self.kind, AVERAGE_KINDS)
        given = {k for k in ("start", "fraction", "last", "decay", "half_life", "values")
                 if getattr(self, k) is not None}
        for k in sorted(given - AVERAGE_KEYS[kind]):
            raise SpecError(f"{f}.{k}", getattr(self, k),
                            f"unknown key for kind {kind!r}; allowed keys: {sorted(AVERAGE_KEYS[kind])}")
        if kind == "uniform":
            if self.start is None:
                raise SpecError(f"{f}.start", None, "is required for kind 'uniform' (the first iterate "
                                "averaged: 0 includes the initialisation phi_0 = 0, 1 leaves it out)")
            object.__setattr__(self, "start", integer(f"{f}.start", self.start, lo=0))
        elif kind == "tail":
            if (self.fraction is None) == (self.last is None):
                raise SpecError(f"{f}.fraction", self.fraction,
                                "kind 'tail' takes exactly one of fraction (in (0, 1]) or last (an integer >= 1)")
            if self.fraction is not None:
                object.__setattr__(self, "fraction", finite(f"{f}.fraction", self.fraction, lo=0.0, lo_open=True,
                                                            hi=1.0))
            else:
                object.__setattr__(self, "last", integer(f"{f}.last", self.last, lo=1))
        elif kind == "ema":
            if (self.decay is None) == (self.half_life is None):
                raise SpecError(f"{f}.decay", self.decay,
                                "kind 'ema' takes exactly one of decay (in [0, 1)) or half_life (> 0 steps)")
            if self.decay is not None:
                object.__setattr__(self, "decay", finite(f"{f}.decay", self.decay, lo=0.0, hi=1.0, hi_open=True))
            else:
                object.__setattr__(self, "half_life", finite(f"{f}.half_life", self.half_life, lo=0.0,
                                                             lo_open=True))
        else:
            allowed = "must be a non-empty 1-D list of finite weights >= 0 with a positive sum"
            try:
                arr = np.array(self.values, dtype=float)
            except (TypeError, ValueError, OverflowError):
                raise SpecError(f"{f}.values", self.values, allowed) from None
            if arr.ndim != 1 or arr.size == 0:
                raise SpecError(f"{f}.values", self.values, allowed)
            bad = ~np.isfinite(arr) | (arr < 0)
            if bad.any():
                i = int(np.argmax(bad))
                raise SpecError(f"{f}.values[{i}]", float(arr[i]), allowed)
            total = float(arr.sum())
            if not (total > 0 and math.isfinite(total)):
                raise SpecError(f"{f}.values", f"<weights summing to {total:g}>", allowed)
            arr.setflags(write=False)
            object.__setattr__(self, "values", arr)

    @property
    def ema_decay(self) -> float:
        """The decay of an ``ema`` average (from ``half_life`` if given so)."""
        if self.decay is not None:
            return float(self.decay)
        return 2.0 ** (-1.0 / float(self.half_life))

    def check_steps(self, steps: int) -> None:
        """A :class:`SpecError` unless this average fits a model of ``steps`` steps."""
        if self.kind == "uniform" and self.start > steps:
            raise SpecError("average.start", self.start,
                            f"must be at most the model's steps ({steps}): the average runs over "
                            "phi_start .. phi_steps")
        if self.kind == "tail" and self.last is not None and self.last > steps + 1:
            raise SpecError("average.last", self.last,
                            f"must be at most steps + 1 = {steps + 1} (the iterates phi_0 .. phi_{steps})")
        if self.kind == "weights" and self.values.size != steps + 1:
            raise SpecError("average.values", f"<array of length {self.values.size}>",
                            f"must give one weight per iterate phi_0 .. phi_T: the model's steps are "
                            f"{steps}, so {steps + 1} weights")

    def first_weighted(self, steps: int) -> int:
        """The first iterate with a positive weight (uniform and tail: the window's start)."""
        if self.kind == "uniform":
            return int(self.start)
        if self.kind == "tail":
            n = self.last if self.last is not None else max(1, math.ceil(self.fraction * steps))
            return max(0, steps + 1 - int(n))
        if self.kind == "ema":
            return 0
        return int(np.argmax(self.values > 0))

    def mix(self, steps: int) -> np.ndarray:
        """``rho_t`` for ``t = 0..steps`` (length ``steps + 1``): ``phibar_t = (1 - rho_t) phibar_{t-1}
        + rho_t phi_t``, ``rho_0 = 1`` (class docstring)."""
        self.check_steps(steps)
        t = np.arange(steps + 1, dtype=float)
        if self.kind in ("uniform", "tail"):
            s0 = self.first_weighted(steps)
            rho = np.ones(steps + 1)
            rho[s0:] = 1.0 / (t[s0:] - s0 + 1.0)
            return rho
        if self.kind == "ema":
            rho = np.full(steps + 1, 1.0 - self.ema_decay)
            rho[0] = 1.0
            return rho
        w = np.asarray(self.values, dtype=float) / float(np.sum(self.values))
        cum = np.cumsum(w)
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = np.where(cum > 0, w / np.where(cum > 0, cum, 1.0), 1.0)
        return np.clip(rho, 0.0, 1.0)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for k in ("start", "fraction", "last", "decay", "half_life"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        if self.values is not None:
            out["values"] = self.values.tolist()
        return out


def _coef(field_: str, value: Any, steps_hint: str, **bounds: Any) -> float | np.ndarray:
    """A momentum coefficient: one number, or one number per step (a list)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        try:
            arr = np.array(value, dtype=float)
        except (TypeError, ValueError, OverflowError):
            raise SpecError(field_, value, f"must be a number or a list of numbers ({steps_hint})") from None
        if arr.ndim != 1 or arr.size == 0:
            raise SpecError(field_, value, f"must be a number or a non-empty list of numbers ({steps_hint})")
        for i, v in enumerate(arr.tolist()):
            finite(f"{field_}[{i}]", v, **bounds)
        arr.setflags(write=False)
        return arr
    return finite(field_, value, **bounds)


@dataclass(frozen=True)
class Momentum:
    """A linear two-state update with one stochastic gradient per step.

    The model keeps its iterate ``phi`` and an auxiliary sequence ``v`` (both start at 0). With
    ``G(y)`` the batch-mean stochastic gradient at the point ``y`` (``docs/theory.md`` §3) and
    ``S = diag(s)`` the speeds, step ``t`` is

    .. code-block:: text

        y     = r phi + (1 - r) v
        phi'  = p_e phi + (1 - p_e) v - eta_t   S G(y)
        v'    = p_v phi + (1 - p_v) v - k_v eta_t S G(y)

    Kinds and their coefficients (``eta_t`` the model's step-size schedule):

    * ``heavy_ball`` (``beta``): ``v = phi_{t-1}``; ``r = 1``, ``p_e = 1 + beta``, ``p_v = 1``,
      ``k_v = 0`` -- ``phi' = phi + beta (phi - phi_{t-1}) - eta G(phi)`` (Polyak);
    * ``nesterov`` (``beta``): ``r = p_e = 1 + beta``, ``p_v = 1``, ``k_v = 0`` --
      ``y = phi + beta (phi - phi_{t-1})``, ``phi' = y - eta G(y)``;
    * ``accelerated`` (``alpha``, ``beta``, ``gamma``; Jain et al. 2018, Algorithm 1, with
      their ``delta`` = the model's step ``eta_t``): ``y = alpha phi + (1 - alpha) v``,
      ``phi' = y - delta G(y)``, ``v' = beta y + (1 - beta) v - gamma G(y)``; i.e. ``r = alpha``,
      ``p_e = alpha``, ``p_v = alpha beta``, ``k_v = gamma / eta_t``. ``gamma`` is a step size
      like ``delta``: a model with ``lr_convention = 'sum'`` (gradients summed over the batch)
      scales it by the batch size, as it scales the schedule (``gain_scale``);
    * ``general`` (``r``, ``p_e``, ``p_v``, ``k_v``): the update above as written.

    Every coefficient is a number or a list of one number per step (step-dependent
    coefficients, e.g. a momentum schedule ``beta_t`` as in DANA). ``beta = 0`` (heavy-ball,
    Nesterov) is plain SGD exactly.
    """

    kind: str
    beta: Any = None
    alpha: Any = None
    gamma: Any = None
    r: Any = None
    p_e: Any = None
    p_v: Any = None
    k_v: Any = None
    #: ``gamma``'s factor to the batch-mean convention, set by a model with
    #: ``lr_convention = 'sum'`` (its batch size; not a file key, not in :meth:`describe`)
    gain_scale: float = 1.0

    def __post_init__(self):
        f = "momentum"
        kind = _kind(f, self.kind, MOMENTUM_KINDS)
        names = ("beta", "alpha", "gamma", "r", "p_e", "p_v", "k_v")
        for k in names:
            if getattr(self, k) is not None and k not in MOMENTUM_KEYS[kind]:
                raise SpecError(f"{f}.{k}", getattr(self, k),
                                f"unknown key for kind {kind!r}; allowed keys: {sorted(MOMENTUM_KEYS[kind])}")
        for k in sorted(MOMENTUM_KEYS[kind] - {"kind"}):
            if getattr(self, k) is None:
                raise SpecError(f"{f}.{k}", None, f"is required for kind {kind!r}; the keys of {kind!r} "
                                f"are {sorted(MOMENTUM_KEYS[kind])}")
        hint = "one per step"
        if kind in ("heavy_ball", "nesterov"):
            object.__setattr__(self, "beta", _coef(f"{f}.beta", self.beta, hint, lo=0.0, hi=1.0, hi_open=True))
        elif kind == "accelerated":
            object.__setattr__(self, "alpha", _coef(f"{f}.alpha", self.alpha, hint, lo=0.0, lo_open=True, hi=1.0))
            object.__setattr__(self, "beta", _coef(f"{f}.beta", self.beta, hint, lo=0.0, hi=1.0))
            object.__setattr__(self, "gamma", _coef(f"{f}.gamma", self.gamma, hint, lo=0.0))
        else:
            for k in ("r", "p_e", "p_v", "k_v"):
                object.__setattr__(self, k, _coef(f"{f}.{k}", getattr(self, k), hint))

    def _arrays(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, k)) for k in ("beta", "alpha", "gamma", "r", "p_e", "p_v", "k_v")
                if getattr(self, k) is not None]

    @property
    def constant(self) -> bool:
        """Every coefficient is one number (not a per-step list)."""
        return not any(isinstance(v, np.ndarray) for _, v in self._arrays())

    @property
    def is_plain(self) -> bool:
        """The update is plain SGD at every step (heavy-ball or Nesterov with ``beta = 0``;
        accelerated with ``alpha = 1``; ``general`` with ``r = p_e = 1``): the model is then trained by the plain
        SGD path and its values are identical to those of the same model without momentum."""
        def zero(v: Any) -> bool:
            return bool(np.all(np.asarray(v) == 0.0))

        def one(v: Any) -> bool:
            return bool(np.all(np.asarray(v) == 1.0))

        if self.kind in ("heavy_ball", "nesterov"):
            return zero(self.beta)
        if self.kind == "general":
            return one(self.r) and one(self.p_e)  # then v never enters the iterate
        return one(self.alpha)  # accelerated, alpha = 1: y = w and w' = w - delta G(w); v never enters

    def check_steps(self, steps: int) -> None:
        """A :class:`SpecError` unless every per-step list has one value per step."""
        for k, v in self._arrays():
            if isinstance(v, np.ndarray) and v.size != steps:
                raise SpecError(f"momentum.{k}", f"<array of length {v.size}>",
                                f"must give one value per training step: the model's steps are {steps}, "
                                f"the list has {v.size} values")

    def coefficients(self, eta: np.ndarray | float) -> tuple[Any, Any, Any, Any, Any]:
        """``(r, p_e, p_v, h_e, h_v)`` at step sizes ``eta`` (an array of per-step sizes, or one
        step size for constant coefficients): the gradient point weight, the two mixing
        coefficients and the gradient gains ``h_e = eta``, ``h_v = k_v eta`` of the class docstring."""
        eta = np.asarray(eta, dtype=float) if isinstance(eta, np.ndarray) else float(eta)
        k = self.kind
        if k in ("heavy_ball", "nesterov"):
            b = self.beta
            one = b * 0.0 + 1.0
            r = one if k == "heavy_ball" else 1.0 + b
            return r, 1.0 + b, one, eta, eta * 0.0
        if k == "accelerated":
            a, b = self.alpha, self.beta
            return a, a, a * b, eta, self.gamma * self.gain_scale + eta * 0.0
        return self.r, self.p_e, self.p_v, eta, self.k_v * eta

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for k, v in self._arrays():
            out[k] = v.tolist() if isinstance(v, np.ndarray) else v
        return out


def parse_average(t: Any) -> Average:
    """An :class:`Average` from its table form (unknown keys refused)."""
    return _parse("average", t, AVERAGE_KEYS, Average)


def parse_momentum(t: Any) -> Momentum:
    """A :class:`Momentum` from its table form (unknown keys refused)."""
    return _parse("momentum", t, MOMENTUM_KEYS, Momentum)


def _parse(f: str, t: Any, keys: dict[str, frozenset[str]], cls: Any) -> Any:
    if isinstance(t, cls):
        return t
    if not isinstance(t, dict):
        raise SpecError(f, t, f"must be a table with a 'kind' key (one of {list(keys)})")
    kind = _kind(f, t.get("kind"), tuple(keys))
    for k in t:
        if k not in keys[kind]:
            raise SpecError(f"{f}.{k}", t[k], f"unknown key for kind {kind!r}; allowed keys: {sorted(keys[kind])}")
    return cls(**t)


def variant_phases(model) -> Iterator[tuple[tuple[float, float, float, float, float], float, int]]:
    """Runs of equal step coefficients: ``((r, p_e, p_v, h_e, h_v), eta, length)`` in training
    order (plain SGD: ``r = p_e = p_v = 1``, ``h_v = 0``). Constant momentum coefficients follow
    the schedule's constant phases; per-step coefficients give runs of one step."""
    mom = model.momentum
    if mom is None or mom.constant:
        for lr, n in model.phases():
            if mom is None:
                yield (1.0, 1.0, 1.0, lr, 0.0), lr, n
            else:
                yield tuple(float(v) for v in mom.coefficients(lr)), lr, n
        return
    eta = model.step_sizes()
    coefs = [np.broadcast_to(np.asarray(v, dtype=float), eta.shape) for v in mom.coefficients(eta)]
    stack = np.stack(coefs, axis=1)
    t, T = 0, eta.size
    while t < T:
        u = t + 1
        while u < T and np.array_equal(stack[u], stack[t]):
            u += 1
        yield tuple(float(v) for v in stack[t]), float(eta[t]), u - t
        t = u
