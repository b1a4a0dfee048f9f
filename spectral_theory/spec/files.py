"""Scenario files (TOML or JSON) -> :class:`~spectral_theory.spec.Scenario`.

The keys of the stable interface (see README) are accepted exactly as named;
unknown keys are errors (they are almost always typos).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from ..errors import SpecError
from .problem import (
    ArraySpectrum,
    ArrayTarget,
    ExponentialSpectrum,
    Features,
    Model,
    Output,
    PowerLawSpectrum,
    PowerLawTarget,
    Problem,
    Scenario,
)
from .schedules import SCHEDULE_KINDS, Constant, Schedule

__all__ = ["load_scenario", "read_scenario_file", "scenario_from_dict", "parse_schedule"]


def _check_keys(field: str, table: Any, allowed: set[str], required: set[str] = frozenset()) -> dict:
    if not isinstance(table, dict):
        raise SpecError(field, table, "must be a table (TOML) / object (JSON)")
    for k in table:
        if k not in allowed:
            raise SpecError(f"{field}.{k}", table[k], f"unknown key; allowed keys: {sorted(allowed)}")
    for k in required:
        if k not in table:
            raise SpecError(f"{field}.{k}", None, "is required")
    return table


def _call(field: str, cls: Any, kwargs: dict) -> Any:
    try:
        return cls(**kwargs)
    except SpecError as err:
        # re-root the error's field path under ``field``
        sub = err.field.split(".", 1)[-1] if "." in err.field else err.field
        raise SpecError(f"{field}.{sub}", err.value, err.allowed) from None


def _spectrum(t: Any) -> Any:
    kind = t.get("kind") if isinstance(t, dict) else None
    if kind == "powerlaw":
        _check_keys("problem.spectrum", t, {"kind", "a", "d", "scale"}, {"a", "d"})
        return _call("problem.spectrum", PowerLawSpectrum, {k: v for k, v in t.items() if k != "kind"})
    if kind == "exponential":
        _check_keys("problem.spectrum", t, {"kind", "rate", "d", "scale"}, {"rate", "d"})
        return _call("problem.spectrum", ExponentialSpectrum, {k: v for k, v in t.items() if k != "kind"})
    if kind == "array":
        _check_keys("problem.spectrum", t, {"kind", "values"}, {"values"})
        return _call("problem.spectrum", ArraySpectrum, {"eigenvalues": t["values"]})
    raise SpecError("problem.spectrum.kind", kind, "must be 'powerlaw', 'exponential' or 'array'")


def _target(t: Any) -> Any:
    kind = t.get("kind") if isinstance(t, dict) else None
    if kind == "powerlaw":
        _check_keys("problem.target", t, {"kind", "b", "scale"}, {"b"})
        return _call("problem.target", PowerLawTarget, {k: v for k, v in t.items() if k != "kind"})
    if kind == "array":
        _check_keys("problem.target", t, {"kind", "values"}, {"values"})
        return _call("problem.target", ArrayTarget, {"values": t["values"]})
    raise SpecError("problem.target.kind", kind, "must be 'powerlaw' or 'array'")


def parse_schedule(field: str, t: Any) -> Schedule:
    """A schedule from its table form ``{kind = ..., ...}`` (see :mod:`~spectral_theory.spec.schedules`)."""
    if not isinstance(t, dict):
        raise SpecError(field, t, "must be a table with a 'kind' key")
    kind = t.get("kind")
    if kind not in SCHEDULE_KINDS:
        raise SpecError(f"{field}.kind", kind, f"must be one of {sorted(SCHEDULE_KINDS)}")
    cls = SCHEDULE_KINDS[kind]
    names = set(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    _check_keys(field, t, names | {"kind"})
    try:
        return cls(**{k: v for k, v in t.items() if k != "kind"})
    except SpecError as err:
        raise SpecError(f"{field}.{err.field.split('.', 1)[-1]}", err.value, err.allowed) from None
    except TypeError as err:  # missing required keys
        raise SpecError(field, t, f"is incomplete for kind {kind!r}: {err}") from None


TRANSFER_KEYS = {"kind", "teacher", "student", "weak", "strong", "base", "child", "generations", "alpha"}

_MODEL_KEYS = {"name", "capacity", "speeds", "batch", "steps", "lr", "schedule", "teacher",
               "alpha", "lr_convention"}


def _model(i: int, t: Any) -> Model:
    field = f"models[{i}]"
    _check_keys(field, t, _MODEL_KEYS, {"name", "steps"})
    if "lr" in t and "schedule" in t:
        raise SpecError(f"{field}.lr", t["lr"], "give either lr (constant step) or schedule, not both")
    if "schedule" in t:
        sched: Schedule = parse_schedule(f"{field}.schedule", t["schedule"])
    elif "lr" in t:
        sched = _call(f"{field}", Constant, {"lr": t["lr"]}) if not isinstance(t["lr"], dict) else \
            parse_schedule(f"{field}.lr", t["lr"])
    else:
        raise SpecError(f"{field}.lr", None, "is required (a constant step) unless 'schedule' is given")
    kwargs = {k: v for k, v in t.items() if k not in ("lr", "schedule")}
    kwargs["schedule"] = sched
    return Model(**kwargs)


def scenario_from_dict(data: dict[str, Any], *, name: str = "scenario") -> Scenario:
    """Build a scenario from the parsed contents of a scenario file."""
    _check_keys("scenario", data, {"problem", "models", "output", "name", "transfer"},
                {"problem", "models"})
    if "transfer" in data:  # roles for the kd / w2s / chain commands (spectral_theory.transfer)
        _check_keys("transfer", data["transfer"], TRANSFER_KEYS)
    p = _check_keys("problem", data["problem"], {"spectrum", "target", "noise", "features", "kurtosis"},
                    {"spectrum", "target"})
    if "kurtosis" in p and "features" in p:
        raise SpecError("problem.kurtosis", p["kurtosis"],
                        "give either features (a named law) or kurtosis, not both")
    features = Features("kurtosis", p["kurtosis"]) if "kurtosis" in p else Features(p.get("features", "gaussian"))
    problem = Problem(spectrum=_spectrum(p["spectrum"]), target=_target(p["target"]),
                      noise=p.get("noise", 0.0), features=features)
    models_t = data["models"]
    if not isinstance(models_t, list) or not models_t:
        raise SpecError("models", models_t, "must be a non-empty list of [[models]] tables")
    models = tuple(_model(i, t) for i, t in enumerate(models_t))
    o = _check_keys("output", data.get("output", {}), {"at", "points"})
    output = Output(at=tuple(o["at"]) if "at" in o and not isinstance(o["at"], str) else o.get("at"),
                    points=o.get("points", 50))
    return Scenario(problem=problem, models=models, output=output, name=str(data.get("name", name)))


def load_scenario(path: str | Path) -> Scenario:
    """Read a ``.toml`` or ``.json`` scenario file."""
    return scenario_from_dict(read_scenario_file(path), name=Path(path).stem)


def read_scenario_file(path: str | Path) -> dict[str, Any]:
    """The parsed contents of a ``.toml`` or ``.json`` scenario file."""
    path = Path(path)
    if not path.exists():
        raise SpecError("scenario file", str(path), "must be an existing .toml or .json file")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        elif path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            raise SpecError("scenario file", str(path), "must end in .toml or .json")
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise SpecError("scenario file", str(path), f"must be valid {path.suffix[1:].upper()}: {err}") from None
    return data
