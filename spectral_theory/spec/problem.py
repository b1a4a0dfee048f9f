"""Frozen, self-validating specification objects (``docs/theory.md`` §1-3).

A :class:`Scenario` ties a :class:`Problem` (spectrum, target, noise,
feature distribution) to an ordered chain of :class:`Model` specs. Each model
has a speed profile (capacity or explicit speeds), a training recipe (batch,
steps, step-size schedule) and a label source (hard labels, or a parent
model's predictions mixed with weight ``alpha`` on the hard label).

Every constructor validates its fields and raises :class:`SpecError` naming
the field, the value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ..errors import SpecError, UnknownNameError
from .schedules import Constant, Schedule
from .sketch import RandomFeatures, sketched_speeds
from .validate import MAX_SIZE, array, finite, integer

__all__ = [
    "Spectrum",
    "PowerLawSpectrum",
    "ExponentialSpectrum",
    "ArraySpectrum",
    "Target",
    "PowerLawTarget",
    "ArrayTarget",
    "Features",
    "Problem",
    "Model",
    "Output",
    "Scenario",
]


# ----------------------------------------------------------------------------
# spectra


class Spectrum:
    """Base class: data covariance eigenvalues ``lambda_1 >= ... >= lambda_d >= 0``."""

    d: int

    @cached_property
    def values(self) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True)
class PowerLawSpectrum(Spectrum):
    """``lambda_i = scale * i^-a`` for ``i = 1..d`` (``a > 0``; ``a > 1`` has finite trace)."""

    a: float
    d: int
    scale: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "a", finite("spectrum.a", self.a, lo=0.0, lo_open=True))
        object.__setattr__(self, "d", integer("spectrum.d", self.d, lo=1, hi=MAX_SIZE))
        object.__setattr__(self, "scale", finite("spectrum.scale", self.scale, lo=0.0, lo_open=True))

    @cached_property
    def values(self) -> np.ndarray:
        v = self.scale * np.arange(1, self.d + 1, dtype=float) ** (-self.a)
        v.setflags(write=False)
        return v

    def describe(self) -> dict[str, Any]:
        return {"kind": "powerlaw", "a": self.a, "d": self.d, "scale": self.scale}


@dataclass(frozen=True)
class ExponentialSpectrum(Spectrum):
    """``lambda_i = scale * exp(-rate * (i - 1))`` for ``i = 1..d``."""

    rate: float
    d: int
    scale: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "rate", finite("spectrum.rate", self.rate, lo=0.0))
        object.__setattr__(self, "d", integer("spectrum.d", self.d, lo=1, hi=MAX_SIZE))
        object.__setattr__(self, "scale", finite("spectrum.scale", self.scale, lo=0.0, lo_open=True))

    @cached_property
    def values(self) -> np.ndarray:
        with np.errstate(over="ignore"):  # rate * i beyond the float range: exp(-inf) = 0, exactly
            v = self.scale * np.exp(-self.rate * np.arange(self.d, dtype=float))
        v.setflags(write=False)
        return v

    def describe(self) -> dict[str, Any]:
        return {"kind": "exponential", "rate": self.rate, "d": self.d, "scale": self.scale}


@dataclass(frozen=True, eq=False)
class ArraySpectrum(Spectrum):
    """Explicit eigenvalues, non-increasing and non-negative."""

    eigenvalues: Any = field(repr=False)

    def __post_init__(self):
        arr = array("spectrum.values", self.eigenvalues)
        if arr.size > 1 and np.any(np.diff(arr) > 0):
            i = int(np.argmax(np.diff(arr) > 0)) + 1
            raise SpecError(
                f"spectrum.values[{i}]", float(arr[i]),
                "eigenvalues must be sorted non-increasing (sort the spectrum and the "
                "target array together)",
            )
        object.__setattr__(self, "eigenvalues", arr)

    @property
    def d(self) -> int:  # type: ignore[override]
        return int(self.eigenvalues.size)

    @property
    def values(self) -> np.ndarray:  # type: ignore[override]
        return self.eigenvalues

    def describe(self) -> dict[str, Any]:
        return {"kind": "array", "values": self.eigenvalues.tolist()}


# ----------------------------------------------------------------------------
# targets


class Target:
    """Base class: ``theta_i^2`` (or ``E theta_i^2`` under a diagonal prior) per mode."""

    def theta2(self, d: int) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True)
class PowerLawTarget(Target):
    """``theta_i^2 = scale * i^-b`` (``b > 1`` for finite signal as d -> infinity)."""

    b: float
    scale: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "b", finite("target.b", self.b))
        object.__setattr__(self, "scale", finite("target.scale", self.scale, lo=0.0))

    def theta2(self, d: int) -> np.ndarray:
        if self.scale == 0:
            return np.zeros(d)
        with np.errstate(over="ignore"):
            t = self.scale * np.arange(1, d + 1, dtype=float) ** (-self.b)
        if not np.isfinite(t[-1]):  # b < 0: the largest entry is the last
            i = int(np.argmin(np.isfinite(t))) + 1
            raise SpecError("target.b", self.b, f"makes theta_i^2 = scale * i^-b overflow from i = {i} "
                                                f"(d = {d}): theta_i^2 must be finite")
        return t

    def describe(self) -> dict[str, Any]:
        return {"kind": "powerlaw", "b": self.b, "scale": self.scale}


@dataclass(frozen=True, eq=False)
class ArrayTarget(Target):
    """Explicit ``theta_i^2`` per mode (non-negative)."""

    values: Any = field(repr=False)

    def __post_init__(self):
        object.__setattr__(self, "values", array("target.values", self.values))

    def theta2(self, d: int) -> np.ndarray:
        if self.values.size != d:
            raise SpecError(
                "target.values", f"<array of length {self.values.size}>",
                f"must have one entry per mode, i.e. length d = {d}",
            )
        return np.array(self.values)

    def describe(self) -> dict[str, Any]:
        return {"kind": "array", "values": self.values.tolist()}


# ----------------------------------------------------------------------------
# features

_KURTOSIS = {"gaussian": 3.0, "rademacher": 1.0, "uniform": 9.0 / 5.0}


@dataclass(frozen=True)
class Features:
    """Latent coordinate law: ``gaussian`` (kurtosis 3), ``rademacher`` (1),
    ``uniform`` (9/5), or ``kurtosis`` with an explicit value ``>= 1``.

    For an explicit kurtosis the Monte Carlo simulator samples the symmetric
    three-point law ``P(z = +-kappa^(1/2)) = 1/(2 kappa)``, ``P(z = 0) = 1 - 1/kappa``,
    whose variance is 1 and fourth moment kappa.
    """

    kind: str | None = None
    kurtosis: float | None = None

    def __post_init__(self):
        if self.kind is None:  # Features(kurtosis=k) or Features(): default law
            object.__setattr__(self, "kind", "gaussian" if self.kurtosis is None else "kurtosis")
        allowed = "must be one of 'gaussian', 'rademacher', 'uniform', 'kurtosis'"
        if self.kind not in (*_KURTOSIS, "kurtosis"):
            raise SpecError("problem.features", self.kind, allowed)
        if self.kind == "kurtosis":
            k = finite("problem.kurtosis", self.kurtosis, lo=1.0)
            object.__setattr__(self, "kurtosis", k)
        else:
            if self.kurtosis is not None and finite("problem.kurtosis", self.kurtosis, lo=1.0) != _KURTOSIS[self.kind]:
                raise SpecError(
                    "problem.kurtosis", self.kurtosis,
                    f"features {self.kind!r} have kurtosis {_KURTOSIS[self.kind]:g}; "
                    "give either a named law or a kurtosis value, not both",
                )
            object.__setattr__(self, "kurtosis", _KURTOSIS[self.kind])

    @property
    def kappa(self) -> float:
        return float(self.kurtosis)  # type: ignore[arg-type]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "kurtosis": self.kappa}


# ----------------------------------------------------------------------------
# problem


@dataclass(frozen=True)
class Problem:
    """Spectrum, target, label-noise variance ``sigma2`` and latent law."""

    spectrum: Spectrum
    target: Target
    _: KW_ONLY
    noise: float = 0.0
    features: Features = field(default_factory=Features)

    def __post_init__(self):
        if not isinstance(self.spectrum, Spectrum):
            raise SpecError("problem.spectrum", self.spectrum, "must be a Spectrum object")
        if not isinstance(self.target, Target):
            raise SpecError("problem.target", self.target, "must be a Target object")
        if isinstance(self.features, str):
            object.__setattr__(self, "features", Features(self.features))
        if not isinstance(self.features, Features):
            raise SpecError("problem.features", self.features, "must be a Features object")
        object.__setattr__(self, "noise", finite("problem.noise", self.noise, lo=0.0))
        # an array target must have one entry per mode: checked now, without materialising
        # d-sized arrays for the other kinds (the continuum method never needs them)
        if isinstance(self.target, ArrayTarget):
            self.theta2  # noqa: B018

    @property
    def d(self) -> int:
        return self.spectrum.d

    @property
    def eigenvalues(self) -> np.ndarray:
        return self.spectrum.values

    @cached_property
    def theta2(self) -> np.ndarray:
        t = self.target.theta2(self.d)
        t.setflags(write=False)
        return t

    @property
    def kappa(self) -> float:
        return self.features.kappa

    def describe(self) -> dict[str, Any]:
        return {
            "spectrum": self.spectrum.describe(),
            "target": self.target.describe(),
            "noise": self.noise,
            "features": self.features.describe(),
        }


# ----------------------------------------------------------------------------
# models


@dataclass(frozen=True, eq=False)
class Model:
    """One model of the chain: speed profile, recipe and label source.

    * speed profile: ``capacity=k`` (``s_i = lambda_i`` for ``i <= k``, else 0),
      or ``speeds`` (one ``s_i >= 0`` per mode); default ``s = lambda``;
    * recipe: ``batch`` B (default 1), ``steps`` T, ``schedule`` (a
      :mod:`~spectral_theory.spec.schedules` object or a float for a constant step; default a
      constant 0.1, echoed by :meth:`describe`); ``lr_convention='mean'`` (batch-averaged
      gradients, the default) or ``'sum'`` (batch-summed: the recursion uses
      ``eta_mean = B * eta_sum``);
    * label source: ``teacher=None`` (hard labels) or the name of an earlier
      model, with ``alpha`` the weight of the hard label in the mix
      (``l = alpha y + (1 - alpha) z.phi_teacher``; default 0: soft labels only).
    """

    name: str
    _: KW_ONLY
    steps: int
    schedule: Schedule | float = 0.1
    batch: int = 1
    capacity: int | None = None
    speeds: Any = None
    teacher: str | None = None
    alpha: float | None = None
    lr_convention: str = "mean"
    average: Any = None
    momentum: Any = None
    #: random features (a frozen sketch, :class:`~spectral_theory.spec.sketch.RandomFeatures`)
    features: Any = None

    def __post_init__(self):
        f = f"models[{self.name!r}]" if isinstance(self.name, str) else "models[?]"
        if not isinstance(self.name, str) or not self.name.strip():
            raise SpecError(f"{f}.name", self.name, "must be a non-empty string")
        object.__setattr__(self, "steps", integer(f"{f}.steps", self.steps, lo=0, hi=MAX_SIZE))
        object.__setattr__(self, "batch", integer(f"{f}.batch", self.batch, lo=1, hi=MAX_SIZE))
        sched = self.schedule
        if not isinstance(sched, Schedule):
            sched = Constant(finite(f"{f}.lr", sched, lo=0.0, lo_open=True))
        object.__setattr__(self, "schedule", sched)
        try:
            sched.check_length(self.steps)
        except SpecError as err:
            raise SpecError(f"{f}.{err.field}", err.value, err.allowed) from None
        if self.lr_convention not in ("mean", "sum"):
            raise SpecError(f"{f}.lr_convention", self.lr_convention, "must be 'mean' or 'sum'")
        if self.capacity is not None and self.speeds is not None:
            raise SpecError(f"{f}.speeds", "<array>", "give either capacity or speeds, not both")
        if self.capacity is not None:
            object.__setattr__(self, "capacity", integer(f"{f}.capacity", self.capacity, lo=1, hi=MAX_SIZE))
        if self.speeds is not None:
            object.__setattr__(self, "speeds", array(f"{f}.speeds", self.speeds))
        if self.teacher is None:
            if self.alpha is not None and finite(f"{f}.alpha", self.alpha, lo=0.0, hi=1.0) != 1.0:
                raise SpecError(
                    f"{f}.alpha", self.alpha,
                    "a model without a teacher trains on hard labels (alpha = 1); "
                    "set 'teacher' to mix in a parent's predictions",
                )
            object.__setattr__(self, "alpha", 1.0)
        else:
            if not isinstance(self.teacher, str):
                raise SpecError(f"{f}.teacher", self.teacher, "must be the name of an earlier model")
            if self.teacher == self.name:
                raise SpecError(f"{f}.teacher", self.teacher, "a model cannot be its own teacher")
            a = 0.0 if self.alpha is None else self.alpha
            object.__setattr__(self, "alpha", finite(f"{f}.alpha", a, lo=0.0, hi=1.0))
        self._check_variants(f)
        self._check_features(f)

    def _check_variants(self, f: str) -> None:
        """Averaging and momentum (``docs/theory.md`` §10): tables or objects, checked against
        the steps; errors re-rooted under this model's field."""
        from .variants import parse_average, parse_momentum

        for key, parse in (("average", parse_average), ("momentum", parse_momentum)):
            value = getattr(self, key)
            if value is None:
                continue
            try:
                obj = parse(value)
                obj.check_steps(self.steps)
            except SpecError as err:
                raise SpecError(f"{f}.{err.field}", err.value, err.allowed) from None
            if key == "momentum" and obj.kind == "accelerated":
                import dataclasses

                # gamma multiplies the (summed, under 'sum') gradient as the step size does
                obj = dataclasses.replace(obj, gain_scale=float(self.batch) if self.lr_convention == "sum" else 1.0)
            object.__setattr__(self, key, obj)

    @property
    def is_variant(self) -> bool:
        """Averaged, or with momentum that is not plain SGD (``Momentum.is_plain``): not plain
        last-iterate SGD. Plain models are trained by the plain SGD path of every solver."""
        return self.average is not None or (self.momentum is not None and not self.momentum.is_plain)

    def _check_features(self, f: str) -> None:
        """``features``: ``None`` or a :class:`RandomFeatures` sketch, which replaces the speed
        profile (``docs/sketch.md``)."""
        if self.features is None:
            return
        if not isinstance(self.features, RandomFeatures):
            raise SpecError(f"{f}.features", self.features,
                            "must be a RandomFeatures object (p random features) or None")
        if self.capacity is not None or self.speeds is not None:
            raise SpecError(f"{f}.features", self.features.describe(),
                            "a sketched model's speeds are those of its sketch: give features, "
                            "or capacity/speeds, not both")

    @property
    def field_name(self) -> str:
        return f"models[{self.name!r}]"

    def check_modes(self, d: int) -> None:
        """A :class:`SpecError` unless this model's speeds or capacity fit ``d`` modes (no
        d-sized array is made: scenarios check their models with it)."""
        if self.speeds is not None and self.speeds.size != d:
            raise SpecError(
                f"{self.field_name}.speeds", f"<array of length {self.speeds.size}>",
                f"must have one entry per mode, i.e. length d = {d}",
            )
        if self.capacity is not None and self.capacity > d:
            raise SpecError(f"{self.field_name}.capacity", self.capacity,
                            f"must be an integer between 1 and d = {d}")
        if self.features is not None:
            self.features.check_size(d, f"{self.field_name}.features")

    def speed_profile(self, eigenvalues: np.ndarray) -> np.ndarray:
        """The per-mode speeds ``s_i`` of this model on a problem's spectrum."""
        self.check_modes(eigenvalues.size)
        if self.features is not None:  # its speeds in its own eigenbasis, padded with zeros
            return np.array(sketched_speeds(self.features, eigenvalues))
        if self.speeds is not None:
            return np.array(self.speeds)
        s = np.array(eigenvalues, dtype=float)
        if self.capacity is not None:
            s[self.capacity:] = 0.0
        return s

    def step_sizes(self) -> np.ndarray:
        """Per-step step sizes in the batch-mean convention (length ``steps``)."""
        try:
            eta = np.asarray(self.schedule.rates(self.steps), dtype=float)
        except SpecError as err:  # e.g. step sizes that overflow: name the model
            raise SpecError(f"{self.field_name}.{err.field}", err.value, err.allowed) from None
        if self.lr_convention == "sum":
            eta = eta * self.batch
        return eta

    def phases(self) -> list[tuple[float, int]]:
        """Constant-step phases ``(eta_mean, length)`` covering the ``steps`` steps."""
        scale = self.batch if self.lr_convention == "sum" else 1
        try:
            return [(lr * scale, n) for lr, n in self.schedule.phases(self.steps)]
        except SpecError as err:  # e.g. step sizes that overflow: name the model
            raise SpecError(f"{self.field_name}.{err.field}", err.value, err.allowed) from None

    def phase_starts(self) -> list[tuple[float, int]]:
        """``(eta_mean, first step)`` of each constant phase."""
        out, t = [], 0
        for lr, n in self.phases():
            out.append((lr, t))
            t += n
        return out

    def describe(self) -> dict[str, Any]:
        """Every field, defaults included (``capacity``/``speeds`` ``None``: ``s = lambda``;
        ``teacher`` ``None``: hard labels, ``alpha = 1``)."""
        out: dict[str, Any] = {
            "name": self.name, "steps": self.steps, "batch": self.batch,
            "schedule": self.schedule.describe(), "lr_convention": self.lr_convention,
            "capacity": self.capacity,
            "speeds": None if self.speeds is None else self.speeds.tolist(),
        }
        out["teacher"] = self.teacher
        out["alpha"] = self.alpha
        if self.average is not None:  # only when set: plain SGD's echo is unchanged
            out["average"] = self.average.describe()
        if self.momentum is not None:
            out["momentum"] = self.momentum.describe()
        if self.features is not None:
            out["features"] = self.features.describe()
        return out


# ----------------------------------------------------------------------------
# output and scenario


@dataclass(frozen=True)
class Output:
    """Which steps of each model are reported.

    ``at``: explicit steps (step 0 is each model's initialisation); a step past a
    model's ``steps`` is reported as that model's last step (``steps_for``; the results
    say so in ``diagnostics["steps_past_end"]``). ``None``: ``points`` log-spaced steps
    from 0 to each model's last step (``points`` is used only without ``at``).
    """

    _: KW_ONLY
    at: tuple[int, ...] | None = None
    points: int = 50

    def __post_init__(self):
        if self.at is not None:
            if isinstance(self.at, (str, bytes)) or not isinstance(self.at, Sequence | np.ndarray):
                raise SpecError("output.at", self.at, "must be a list of non-negative integers")
            steps = tuple(integer(f"output.at[{i}]", t, lo=0, hi=MAX_SIZE) for i, t in enumerate(self.at))
            if not steps:
                raise SpecError("output.at", list(self.at), "must list at least one step")
            object.__setattr__(self, "at", tuple(sorted(set(steps))))
        object.__setattr__(self, "points", integer("output.points", self.points, lo=2, hi=MAX_SIZE))

    def steps_for(self, total: int) -> np.ndarray:
        """The steps a model of ``total`` steps reports: ``at`` with every step past ``total``
        replaced by ``total`` (sorted, without repeats), or ``points`` log-spaced steps."""
        if self.at is not None:
            return np.array(sorted({min(t, total) for t in self.at}), dtype=np.int64)
        return log_steps(total, self.points)

    def past_end(self, total: int) -> list[int]:
        """The requested steps ``at`` past ``total`` (reported as step ``total``)."""
        return [t for t in self.at if t > total] if self.at is not None else []


def as_output(value: Any) -> Output:
    """``value`` as an :class:`Output`: an Output, or a dict with the keys ``at`` / ``points``."""
    if isinstance(value, dict):
        bad = sorted(set(value) - {"at", "points"})
        if bad:
            raise SpecError(f"output.{bad[0]}", value[bad[0]], "unknown key; allowed keys: ['at', 'points']")
        value = Output(**value)
    if not isinstance(value, Output):
        raise SpecError("output", value, "must be an Output object (or a dict with 'at' / 'points')")
    return value


def log_steps(total: int, points: int) -> np.ndarray:
    """``points`` roughly log-spaced integer steps in ``[0, total]``, with 0 and ``total``."""
    if total == 0:
        return np.array([0], dtype=np.int64)
    grid = np.unique(np.round(np.geomspace(1, total, max(points - 1, 1))).astype(np.int64))
    return np.concatenate([[0], grid]).astype(np.int64)


@dataclass(frozen=True, eq=False)
class Scenario:
    """A problem and a chain of models trained in order, each frozen once trained."""

    problem: Problem
    models: tuple[Model, ...]
    _: KW_ONLY
    output: Output = field(default_factory=Output)
    name: str = "scenario"

    def __post_init__(self):
        if not isinstance(self.problem, Problem):
            raise SpecError("problem", self.problem, "must be a Problem object")
        models = tuple(self.models) if not isinstance(self.models, Model) else (self.models,)
        if not models:
            raise SpecError("models", [], "must list at least one model")
        seen: set[str] = set()
        for i, m in enumerate(models):
            if not isinstance(m, Model):
                raise SpecError(f"models[{i}]", m, "must be a Model object")
            if m.name in seen:
                raise SpecError(f"models[{i}].name", m.name, "model names must be unique")
            if m.teacher is not None and m.teacher not in seen:
                raise SpecError(
                    f"{m.field_name}.teacher", m.teacher,
                    "must name a model listed earlier in the chain "
                    f"(earlier models: {sorted(seen) or 'none'})",
                )
            # speeds and capacity must fit the problem (checked without d-sized arrays)
            m.check_modes(self.problem.d)
            seen.add(m.name)
        sketched = [m for m in models if m.features is not None]
        variant = [m for m in models if m.is_variant]
        if sketched and variant:  # the sketched solver and simulator train plain SGD only
            key = "average" if variant[0].average is not None else "momentum"
            raise SpecError(f"{variant[0].field_name}.{key}", getattr(variant[0], key).describe(),
                            f"SGD variants and random-feature models ({sketched[0].field_name}.features) cannot "
                            "be combined in one scenario: sketched models are trained by plain SGD only")
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "output", as_output(self.output))
        if not isinstance(self.name, str):
            raise SpecError("scenario.name", self.name, "must be a string")

    def model(self, name: str) -> Model:
        """The model named ``name`` (an :class:`~spectral_theory.errors.UnknownNameError`, a
        ``KeyError`` listing the names, if there is none)."""
        return self.models[self.index(name)]

    def index(self, name: str) -> int:
        """Position of the model named ``name`` in the chain."""
        for i, m in enumerate(self.models):
            if m.name == name:
                return i
        raise UnknownNameError("scenario.models", name, [m.name for m in self.models], "models")

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "problem": self.problem.describe(),
            "models": [m.describe() for m in self.models],
            "output": {"at": list(self.output.at) if self.output.at is not None else None,
                       "points": self.output.points},
        }
