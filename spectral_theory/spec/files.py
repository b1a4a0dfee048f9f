"""Scenario files (TOML or JSON) -> :class:`~spectral_theory.spec.Scenario`: the one strict
reader of every section, used by every command (``docs/scenario-files.md`` lists every key,
its type, default and allowed values).

The keys of the stable interface (see README) are accepted exactly as named; unknown keys
anywhere (top level, ``[problem]``, the spectrum, target and schedule tables, ``[[models]]``,
``[output]``, ``[transfer]``) are errors that list the allowed keys (they are almost always
typos), and so are values of the wrong type or out of range. Nothing is defaulted silently:
every default is documented and echoed by ``Scenario.describe()``.
"""

from __future__ import annotations

import dataclasses
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
from .sketch import RandomFeatures
from .validate import finite, integer

__all__ = ["load_scenario", "read_scenario_file", "scenario_from_dict", "read_sections", "parse_schedule",
           "parse_transfer", "SCENARIO_KEYS", "PROBLEM_KEYS", "MODEL_KEYS", "OUTPUT_KEYS", "TRANSFER_KEYS",
           "TRANSFER_ROLES", "MAX_GENERATIONS"]

#: allowed keys of each section (``docs/scenario-files.md``)
SCENARIO_KEYS = frozenset({"problem", "models", "output", "name", "transfer"})
PROBLEM_KEYS = frozenset({"spectrum", "target", "noise", "features", "kurtosis"})
SPECTRUM_KEYS = {"powerlaw": frozenset({"kind", "a", "d", "scale"}),
                 "exponential": frozenset({"kind", "rate", "d", "scale"}),
                 "array": frozenset({"kind", "values"})}
TARGET_KEYS = {"powerlaw": frozenset({"kind", "b", "scale"}), "array": frozenset({"kind", "values"})}
MODEL_KEYS = frozenset({"name", "capacity", "speeds", "batch", "steps", "lr", "schedule", "teacher",
                        "alpha", "lr_convention", "average", "momentum", "features"})
#: keys of a model's ``features`` table (random features, ``docs/sketch.md``)
FEATURES_KEYS = frozenset({"p", "kind", "seed"})
OUTPUT_KEYS = frozenset({"at", "points"})
#: the roles of each comparison in ``[transfer]`` (``spectral_theory.transfer``)
TRANSFER_ROLES: dict[str, tuple[str, str]] = {"kd": ("teacher", "student"), "w2s": ("weak", "strong"),
                                              "chain": ("base", "child")}
_ROLE_KIND = {r: k for k, roles in TRANSFER_ROLES.items() for r in roles}
TRANSFER_KEYS = frozenset({"kind", "alpha", "generations", *_ROLE_KIND})
#: most models in a chain (``[transfer] generations``, ``Chain(generations=...)``); the chain
#: state holds ``G (G + 1)`` pair-moment rows of ``d`` numbers, so a chain is also refused when
#: those would exceed ``spectral_theory.transfer.specs.CHAIN_MEMORY_BUDGET`` bytes
MAX_GENERATIONS = 1000


def check_keys(field: str, table: Any, allowed: Any, required: Any = ()) -> dict:
    if not isinstance(table, dict):
        raise SpecError(field, table, "must be a table (TOML) / object (JSON)")
    for k in table:
        if k not in allowed:
            raise SpecError(f"{field}.{k}", table[k], f"unknown key; allowed keys: {sorted(allowed)}")
    for k in sorted(required):
        if k not in table:
            raise SpecError(f"{field}.{k}", None, f"is required; allowed keys: {sorted(allowed)}")
    return table


def _call(field: str, cls: Any, kwargs: dict) -> Any:
    try:
        return cls(**kwargs)
    except SpecError as err:
        # re-root the error's field path under ``field``
        sub = err.field.split(".", 1)[-1] if "." in err.field else err.field
        raise SpecError(f"{field}.{sub}", err.value, err.allowed) from None


def _kind(field: str, t: Any, kinds: Any) -> str:
    """The ``kind`` of a table, checked against ``kinds``."""
    if not isinstance(t, dict):
        raise SpecError(field, t, f"must be a table with a 'kind' key (one of {sorted(kinds)})")
    kind = t.get("kind")
    if not isinstance(kind, str) or kind not in kinds:
        raise SpecError(f"{field}.kind", kind, f"must be one of {sorted(kinds)}")
    return kind


def _spectrum(t: Any) -> Any:
    field = "problem.spectrum"
    kind = _kind(field, t, SPECTRUM_KEYS)
    check_keys(field, t, SPECTRUM_KEYS[kind], SPECTRUM_KEYS[kind] - {"kind", "scale"})
    if kind == "powerlaw":
        return _call(field, PowerLawSpectrum, {k: v for k, v in t.items() if k != "kind"})
    if kind == "exponential":
        return _call(field, ExponentialSpectrum, {k: v for k, v in t.items() if k != "kind"})
    return _call(field, ArraySpectrum, {"eigenvalues": t["values"]})


def _target(t: Any) -> Any:
    field = "problem.target"
    kind = _kind(field, t, TARGET_KEYS)
    check_keys(field, t, TARGET_KEYS[kind], TARGET_KEYS[kind] - {"kind", "scale"})
    if kind == "powerlaw":
        return _call(field, PowerLawTarget, {k: v for k, v in t.items() if k != "kind"})
    return _call(field, ArrayTarget, {"values": t["values"]})


def parse_schedule(field: str, t: Any) -> Schedule:
    """A schedule from its table form ``{kind = ..., ...}`` (see :mod:`~spectral_theory.spec.schedules`):
    every key of its kind without a default is required, unknown keys are errors."""
    kind = _kind(field, t, SCHEDULE_KINDS)
    cls = SCHEDULE_KINDS[kind]
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = {f.name for f in fields} | {"kind"}
    required = [f.name for f in fields  # in the order of the class's fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    for k in t:
        if k not in names:
            raise SpecError(f"{field}.{k}", t[k], f"unknown key for kind {kind!r}; allowed keys: {sorted(names)}")
    for k in required:
        if k not in t:
            raise SpecError(f"{field}.{k}", None, f"is required for kind {kind!r} (it has no default); "
                                                   f"the keys of {kind!r} are {sorted(names)}")
    return _call(field, cls, {k: v for k, v in t.items() if k != "kind"})


def _model(i: int, t: Any) -> Model:
    field = f"models[{i}]"
    check_keys(field, t, MODEL_KEYS, {"name", "steps"})
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
    if "features" in t:
        kwargs["features"] = _features(f"{field}.features", t["features"])
    return Model(**kwargs)


def _features(field: str, t: Any) -> RandomFeatures:
    """A model's random features ``{p = ..., kind = "gaussian" | "orthogonal", seed = ...}``."""
    check_keys(field, t, FEATURES_KEYS, {"p"})
    return _call(field, RandomFeatures, dict(t))


def parse_transfer(t: Any, model_names: Any, *, field: str = "transfer") -> dict[str, Any]:
    """The ``[transfer]`` section, checked: known keys only (:data:`TRANSFER_KEYS`); ``kind`` one
    of ``kd``, ``w2s``, ``chain``; every role the name of a model in ``model_names``, and a role
    of ``kind`` when ``kind`` is given (without ``kind`` the section may name the roles of
    several comparisons, each command reading its own); ``alpha`` a number in ``[0, 1]``;
    ``generations`` an integer in ``[1, MAX_GENERATIONS]``, only for a chain. Returns the
    section with its values converted."""
    check_keys(field, t, TRANSFER_KEYS)
    names = list(model_names)
    out: dict[str, Any] = {}
    kind = t.get("kind")
    if "kind" in t:
        if not isinstance(kind, str) or kind not in TRANSFER_ROLES:
            raise SpecError(f"{field}.kind", kind, f"must be one of {list(TRANSFER_ROLES)}")
        out["kind"] = kind
    for role, role_kind in _ROLE_KIND.items():
        if role not in t:
            continue
        value = t[role]
        if not isinstance(value, str) or value not in names:
            raise SpecError(f"{field}.{role}", value, f"must name one of the models {names}")
        if kind is not None and role_kind != kind:
            raise SpecError(f"{field}.{role}", value,
                            f"is a role of a {role_kind!r} comparison; a [transfer] section of kind "
                            f"{kind!r} takes the roles {list(TRANSFER_ROLES[kind])} (leave out 'kind' "
                            "to name the roles of several comparisons)")
        out[role] = value
    if "alpha" in t:
        out["alpha"] = finite(f"{field}.alpha", t["alpha"], lo=0.0, hi=1.0)
    if "generations" in t:
        if kind is not None and kind != "chain":
            raise SpecError(f"{field}.generations", t["generations"],
                            f"only a chain has generations; this [transfer] section is of kind {kind!r}")
        out["generations"] = integer(f"{field}.generations", t["generations"], lo=1, hi=MAX_GENERATIONS)
    return out


def read_sections(data: Any, *, name: str = "scenario") -> tuple[Scenario, dict[str, Any]]:
    """The scenario and the checked ``[transfer]`` section (``{}`` if absent) of a scenario
    file's parsed contents: every section read strictly (module docstring)."""
    check_keys("scenario", data, SCENARIO_KEYS, {"problem", "models"})
    p = check_keys("problem", data["problem"], PROBLEM_KEYS, {"spectrum", "target"})
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
    o = check_keys("output", data.get("output", {}), OUTPUT_KEYS)
    if "at" in o and "points" in o:
        raise SpecError("output.points", o["points"], "give either at (explicit steps) or points, not both")
    at = o.get("at")
    if at is not None and not isinstance(at, list):
        raise SpecError("output.at", at, "must be a list of non-negative integers")
    output = Output(at=None if at is None else tuple(at), points=o.get("points", 50))
    label = data.get("name", name)
    if not isinstance(label, str):
        raise SpecError("scenario.name", label, "must be a string")
    scenario = Scenario(problem=problem, models=models, output=output, name=label)
    transfer = parse_transfer(data["transfer"], [m.name for m in models]) if "transfer" in data else {}
    return scenario, transfer


def scenario_from_dict(data: dict[str, Any], *, name: str = "scenario") -> Scenario:
    """Build a scenario from the parsed contents of a scenario file (every section checked,
    ``[transfer]`` included: :func:`read_sections`)."""
    return read_sections(data, name=name)[0]


def load_scenario(path: str | Path) -> Scenario:
    """Read a ``.toml`` or ``.json`` scenario file."""
    return scenario_from_dict(read_scenario_file(path), name=Path(path).stem)


def no_duplicate_keys(pairs: list[tuple[str, Any]], *, what: str = "key") -> dict[str, Any]:
    """A ``json.loads`` ``object_pairs_hook``: the object as a dict, a :class:`SpecError` naming
    ``what`` and the key when a key appears twice (``json`` would keep the last silently)."""
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise SpecError(f"{what} {k!r}", v, "appears twice in one JSON object; give each key once")
        out[k] = v
    return out


def read_scenario_file(path: str | Path) -> dict[str, Any]:
    """The parsed contents of a ``.toml`` or ``.json`` scenario file (UTF-8; a JSON object
    with a repeated key is an error, as it is in TOML)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise SpecError("scenario file", str(path), "must end in .toml or .json")
    if not path.is_file():
        raise SpecError("scenario file", str(path), "must be an existing .toml or .json file"
                        + (" (this is a directory)" if path.is_dir() else ""))
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError("scenario file", str(path),
                        f"must be UTF-8 text (byte {err.start} is not valid UTF-8)") from None
    try:
        data = json.loads(text, object_pairs_hook=no_duplicate_keys) if suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise SpecError("scenario file", str(path), f"must be valid {suffix[1:].upper()}: {err}") from None
    except RecursionError:
        raise SpecError("scenario file", str(path), "is nested too deeply") from None
    if not isinstance(data, dict):
        raise SpecError("scenario file", str(path), "must hold a JSON object (a table of sections) at the top")
    return data
