"""Step-size schedules (``docs/theory.md`` §3).

Step ``t = 0 .. steps-1`` uses ``rates(steps)[t]``. Every schedule also
reports its constant phases (``phases``), which the exact engine uses to
precompute per-phase factors and which a phase-wise solver can exploit.

Kinds (the scenario-file ``kind`` key in brackets):

* :class:`Constant` [``constant``]: ``lr``.
* :class:`StepDecay` [``step_decay``]: ``lr * factor^(t // every)``.
* :class:`Piecewise` [``piecewise``]: constant phases ``lrs`` of ``lengths``
  steps; the lengths add up to the model's steps exactly.
* :class:`Geometric` [``geometric``]: ``lr * factor^t``.
* :class:`Polynomial` [``polynomial``]: ``lr / (1 + t/t0)^power`` (``t0`` and
  ``power`` required: there are no defaults).
* :class:`WarmupDecay` [``warmup_decay``]: linear warm-up
  ``lr * (t + 1) / warmup`` for ``t < warmup``, then
  ``lr / (1 + (t - warmup)/t0)^power`` (``power = 0``: constant after warm-up;
  ``t0`` and ``power`` required).
* :class:`ArraySchedule` [``array``]: one value per step (exactly ``steps`` values).

A schedule with a length of its own (``piecewise``, ``array``) whose length differs from
the model's ``steps`` is an error naming both (``docs/scenario-files.md``).

All step sizes are in the batch-mean convention unless the model says
``lr_convention = 'sum'``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SpecError
from .validate import MAX_SIZE, finite, integer

__all__ = [
    "Schedule", "Constant", "StepDecay", "Piecewise", "Geometric", "Polynomial",
    "WarmupDecay", "ArraySchedule", "halving_every",
]


def _checked_rates(kind: str, rates: np.ndarray) -> np.ndarray:
    """``rates`` if every step size is finite, else a :class:`SpecError` naming the first step
    whose size overflows (a growing schedule, ``factor > 1``, past the float range). Sizes that
    underflow to 0 (a decay past the float range) are kept: they are 0 in any arithmetic."""
    bad = ~np.isfinite(rates)
    if bad.any():
        raise SpecError("schedule", kind, _overflow(int(np.argmax(bad))))
    return rates


def _overflow(step: int) -> str:
    return (f"step sizes overflow the float range from step {step} (the schedule grows without bound): "
            "use fewer steps or a smaller factor")


def _runs(rates: np.ndarray) -> list[tuple[float, int]]:
    """Run-length encoding of a step-size array into constant phases."""
    if rates.size == 0:
        return []
    change = np.flatnonzero(rates[1:] != rates[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [rates.size]])
    return [(float(rates[s]), int(e - s)) for s, e in zip(starts, ends, strict=True)]


class Schedule:
    """Base class. Subclasses implement ``rates`` and ``describe``."""

    def rates(self, steps: int) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def phases(self, steps: int) -> list[tuple[float, int]]:
        """Constant phases ``(lr, length)`` whose lengths add up to ``steps``."""
        return _runs(self.rates(steps))

    def check_length(self, steps: int) -> None:
        """Raise :class:`SpecError` if the schedule's own length (if it has one) is not ``steps``."""

    def describe(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True)
class Constant(Schedule):
    """``eta_t = lr`` at every step."""

    lr: float

    def __post_init__(self):
        object.__setattr__(self, "lr", finite("schedule.lr", self.lr, lo=0, lo_open=True))

    def rates(self, steps: int) -> np.ndarray:
        return np.full(steps, self.lr)

    def phases(self, steps: int) -> list[tuple[float, int]]:
        return [(self.lr, steps)] if steps else []

    def describe(self) -> dict[str, Any]:
        return {"kind": "constant", "lr": self.lr}


@dataclass(frozen=True)
class StepDecay(Schedule):
    """``eta_t = lr * factor^(t // every)``: constant phases of ``every`` steps, each ``factor``
    times the previous (see :func:`halving_every` for the usual period)."""

    lr: float
    factor: float
    every: int

    def __post_init__(self):
        object.__setattr__(self, "lr", finite("schedule.lr", self.lr, lo=0, lo_open=True))
        f = finite("schedule.factor", self.factor, lo=0, lo_open=True)
        object.__setattr__(self, "factor", f)
        object.__setattr__(self, "every", integer("schedule.every", self.every, lo=1, hi=MAX_SIZE))

    def rates(self, steps: int) -> np.ndarray:
        t = np.arange(steps)
        with np.errstate(over="ignore", under="ignore"):
            return _checked_rates("step_decay", self.lr * self.factor ** (t // self.every))

    def phases(self, steps: int) -> list[tuple[float, int]]:
        out, t, k = [], 0, 0
        while t < steps:
            n = min(self.every, steps - t)
            try:
                lr = self.lr * self.factor**k
            except OverflowError:
                lr = math.inf
            if not math.isfinite(lr):
                raise SpecError("schedule", "step_decay", _overflow(t))
            out.append((lr, n))
            t += n
            k += 1
        return out

    def describe(self) -> dict[str, Any]:
        return {"kind": "step_decay", "lr": self.lr, "factor": self.factor, "every": self.every}


def halving_every(total_steps: int) -> int:
    """The step-decay period of ``docs/theory.md`` §3: halve every ``T / log2(T)`` steps (at least 1)."""
    total_steps = integer("total_steps", total_steps, lo=0)
    if total_steps < 2:
        return 1
    return max(1, int(round(total_steps / math.log2(total_steps))))


@dataclass(frozen=True)
class Piecewise(Schedule):
    """Constant phases: ``lrs[k]`` for ``lengths[k]`` steps, in order; the lengths add up to the
    model's steps exactly."""

    lrs: tuple[float, ...]
    lengths: tuple[int, ...]

    def __post_init__(self):
        if isinstance(self.lrs, (str, bytes)) or not hasattr(self.lrs, "__len__") or not len(self.lrs):
            raise SpecError("schedule.lrs", self.lrs, "must be a non-empty list of step sizes > 0")
        lrs = tuple(finite(f"schedule.lrs[{i}]", v, lo=0, lo_open=True) for i, v in enumerate(self.lrs))
        if isinstance(self.lengths, (str, bytes)) or not hasattr(self.lengths, "__len__"):
            raise SpecError("schedule.lengths", self.lengths, "must be a list of integers >= 1")
        lengths = tuple(integer(f"schedule.lengths[{i}]", v, lo=1, hi=MAX_SIZE) for i, v in enumerate(self.lengths))
        if len(lengths) != len(lrs):
            raise SpecError("schedule.lengths", list(lengths),
                            f"must have one length per step size ({len(lrs)} given in lrs)")
        object.__setattr__(self, "lrs", lrs)
        object.__setattr__(self, "lengths", lengths)

    def check_length(self, steps: int) -> None:
        total = sum(self.lengths)
        if total != steps:
            raise SpecError("schedule.lengths", list(self.lengths),
                            f"must add up to the model's steps ({steps}); they add up to {total}")

    def rates(self, steps: int) -> np.ndarray:
        self.check_length(steps)
        return np.repeat(np.array(self.lrs), self.lengths)[:steps]

    def phases(self, steps: int) -> list[tuple[float, int]]:
        self.check_length(steps)
        out, t = [], 0
        for lr, n in zip(self.lrs, self.lengths, strict=True):
            if t >= steps:
                break
            n = min(n, steps - t)
            out.append((lr, n))
            t += n
        return out

    def describe(self) -> dict[str, Any]:
        return {"kind": "piecewise", "lrs": list(self.lrs), "lengths": list(self.lengths)}


@dataclass(frozen=True)
class Geometric(Schedule):
    """``eta_t = lr * factor^t``."""

    lr: float
    factor: float

    def __post_init__(self):
        object.__setattr__(self, "lr", finite("schedule.lr", self.lr, lo=0, lo_open=True))
        object.__setattr__(self, "factor", finite("schedule.factor", self.factor, lo=0, lo_open=True))

    def rates(self, steps: int) -> np.ndarray:
        with np.errstate(over="ignore", under="ignore"):
            return _checked_rates("geometric", self.lr * self.factor ** np.arange(steps, dtype=float))

    def describe(self) -> dict[str, Any]:
        return {"kind": "geometric", "lr": self.lr, "factor": self.factor}


@dataclass(frozen=True)
class Polynomial(Schedule):
    """``eta_t = lr / (1 + t / t0)^power`` (``t0 > 0`` and ``power >= 0`` required)."""

    lr: float
    t0: float
    power: float

    def __post_init__(self):
        object.__setattr__(self, "lr", finite("schedule.lr", self.lr, lo=0, lo_open=True))
        object.__setattr__(self, "t0", finite("schedule.t0", self.t0, lo=0, lo_open=True))
        object.__setattr__(self, "power", finite("schedule.power", self.power, lo=0))

    def rates(self, steps: int) -> np.ndarray:
        t = np.arange(steps, dtype=float)
        with np.errstate(over="ignore"):  # (1 + t/t0)^power past the float range: a step of 0
            return self.lr / (1.0 + t / self.t0) ** self.power

    def describe(self) -> dict[str, Any]:
        return {"kind": "polynomial", "lr": self.lr, "t0": self.t0, "power": self.power}


@dataclass(frozen=True)
class WarmupDecay(Schedule):
    """Linear warm-up then polynomial decay: ``eta_t = lr (t + 1) / warmup`` for ``t < warmup``,
    then ``lr / (1 + (t - warmup) / t0)^power`` (``t0 > 0`` and ``power >= 0`` required;
    ``power = 0``: constant after the warm-up)."""

    lr: float
    warmup: int
    t0: float
    power: float

    def __post_init__(self):
        object.__setattr__(self, "lr", finite("schedule.lr", self.lr, lo=0, lo_open=True))
        object.__setattr__(self, "warmup", integer("schedule.warmup", self.warmup, lo=1, hi=MAX_SIZE))
        object.__setattr__(self, "t0", finite("schedule.t0", self.t0, lo=0, lo_open=True))
        object.__setattr__(self, "power", finite("schedule.power", self.power, lo=0))

    def rates(self, steps: int) -> np.ndarray:
        t = np.arange(steps, dtype=float)
        up = self.lr * (t + 1.0) / self.warmup
        with np.errstate(over="ignore"):  # (1 + t/t0)^power past the float range: a step of 0
            down = self.lr / (1.0 + np.maximum(t - self.warmup, 0.0) / self.t0) ** self.power
        return np.where(t < self.warmup, up, down)

    def describe(self) -> dict[str, Any]:
        return {"kind": "warmup_decay", "lr": self.lr, "warmup": self.warmup,
                "t0": self.t0, "power": self.power}


@dataclass(frozen=True, eq=False)
class ArraySchedule(Schedule):
    """One step size per step, as given (``values[t]`` is ``eta_t``; exactly the model's steps)."""

    values: Any = field(repr=False)

    def __post_init__(self):
        allowed = "must be a non-empty 1-D list of finite step sizes > 0"
        try:
            arr = np.array(self.values, dtype=float)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond the float range
            raise SpecError("schedule.values", self.values, allowed) from None
        if arr.ndim != 1 or arr.size == 0:
            raise SpecError("schedule.values", self.values, allowed)
        bad = ~np.isfinite(arr) | (arr <= 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise SpecError(f"schedule.values[{i}]", float(arr[i]), allowed)
        arr.setflags(write=False)
        object.__setattr__(self, "values", arr)

    def check_length(self, steps: int) -> None:
        if self.values.size != steps:
            raise SpecError("schedule.values", f"<array of length {self.values.size}>",
                            f"must give one step size per training step: the model's steps are "
                            f"{steps}, the array has {self.values.size} values")

    def rates(self, steps: int) -> np.ndarray:
        self.check_length(steps)
        return np.array(self.values[:steps])

    def describe(self) -> dict[str, Any]:
        return {"kind": "array", "values": self.values.tolist()}


SCHEDULE_KINDS: dict[str, type[Schedule]] = {
    "constant": Constant,
    "step_decay": StepDecay,
    "piecewise": Piecewise,
    "geometric": Geometric,
    "polynomial": Polynomial,
    "warmup_decay": WarmupDecay,
    "array": ArraySchedule,
}
