"""Scenarios of claims: a base scenario in the scenario-file form, parameters set by field
path, and the reverse (a scenario or comparison written back as a scenario file, for
witnesses).

Paths (``docs/claims.md``): ``problem.noise``, ``problem.kurtosis``, ``problem.features``,
``problem.spectrum.a`` (any key of the spectrum or target table), ``models.<name>.<key>`` or
``models[<i>].<key>`` (``lr`` sets a constant step and removes a schedule;
``schedule.<key>`` sets a key of the schedule table), ``transfer.<key>``, ``output.at``.
Short names without a path: ``eta`` (the claim's model's ``lr``), ``B`` (``batch``), ``T``
(``steps``), ``k`` (``capacity``), ``alpha`` (the model's ``alpha``, or ``transfer.alpha`` for a
comparison), ``a`` (``problem.spectrum.a``), ``b`` (``problem.target.b``), ``d``
(``problem.spectrum.d``), ``sigma2`` (``problem.noise``), ``kappa`` (``problem.kurtosis``).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from ..errors import SpecError

__all__ = ["ALIASES", "resolve_path", "set_path", "scenario_file_dict", "spec_file_dict", "build",
           "witness_text"]

#: short parameter names and the field they set (``{model}``: the claim's model)
ALIASES = {"eta": "models.{model}.lr", "B": "models.{model}.batch", "T": "models.{model}.steps",
           "k": "models.{model}.capacity", "alpha": "models.{model}.alpha", "a": "problem.spectrum.a",
           "b": "problem.target.b", "d": "problem.spectrum.d", "sigma2": "problem.noise",
           "kappa": "problem.kurtosis"}
_INDEX = re.compile(r"^models\[(\d+)\]$")


def resolve_path(name: str, path: str | None, model: str | None, data: dict | None) -> str | None:
    """The field path a parameter sets (``None``: none, a free parameter)."""
    if path is not None:
        return path
    if name not in ALIASES:
        return None
    alias = ALIASES[name]
    if name == "alpha" and data is not None and isinstance(data.get("transfer"), dict):
        return "transfer.alpha"
    if "{model}" in alias:
        if model is None:
            if data is not None and isinstance(data.get("models"), list) and len(data["models"]) == 1:
                return alias.replace("models.{model}", "models[0]")
            raise SpecError(f"domain.{name}", name,
                            f"sets a model field ({alias}): name the claim's model, or give a path")
        return alias.format(model=model)
    return alias


def _model_table(data: dict, key: str, path: str) -> dict:
    models = data.get("models")
    if not isinstance(models, list):
        raise SpecError(path, key, "the scenario has no [[models]] list")
    m = _INDEX.match(key)
    if m:
        i = int(m.group(1))
        if i >= len(models):
            raise SpecError(path, key, f"the scenario has {len(models)} models")
        return models[i]
    for t in models:
        if isinstance(t, dict) and t.get("name") == key:
            return t
    raise SpecError(path, key, f"no model of that name; models: {[t.get('name') for t in models if isinstance(t, dict)]}")


def set_path(data: dict, path: str, value: Any) -> None:
    """Set ``path`` (module docstring) to ``value`` in a scenario-file dict, in place."""
    if not isinstance(path, str) or not path:
        raise SpecError("path", path, "must be a field path such as 'problem.noise'")
    parts = path.split(".")
    if parts[0].startswith("models["):
        table = _model_table(data, parts[0], path)
        rest = parts[1:]
    elif parts[0] == "models" and len(parts) >= 3:
        table = _model_table(data, parts[1], path)
        rest = parts[2:]
    elif parts[0] in ("problem", "transfer", "output") and len(parts) >= 2:
        table = data.setdefault(parts[0], {})
        rest = parts[1:]
        if parts[0] == "problem" and rest == ["kurtosis"]:
            table.pop("features", None)
        if parts[0] == "problem" and rest == ["features"]:
            table.pop("kurtosis", None)
    else:
        raise SpecError("path", path, "must start with problem., models.<name>., models[<i>]., transfer. or output.")
    if rest == ["lr"]:
        table.pop("schedule", None)
    if not rest:
        raise SpecError("path", path, "names a table, not a field")
    for key in rest[:-1]:
        nxt = table.get(key)
        if not isinstance(nxt, dict):
            raise SpecError("path", path, f"{key!r} is not a table of the scenario")
        table = nxt
    table[rest[-1]] = value


def _features(problem: dict) -> dict:
    f = problem.pop("features", None)
    if isinstance(f, dict):
        if f.get("kind") == "kurtosis":
            problem["kurtosis"] = f["kurtosis"]
        else:
            problem["features"] = f["kind"]
    return problem


def _clean(table: dict) -> dict:
    return {k: v for k, v in table.items() if v is not None}


def _model_dict(desc: dict) -> dict:
    out = _clean(desc)
    if out.get("lr_convention") == "mean":
        out.pop("lr_convention")
    if "teacher" not in out:
        out.pop("alpha", None)
    if out.get("capacity") is not None and out.get("speeds") is not None:
        out.pop("capacity")
    sched = out.pop("schedule")
    if sched.get("kind") == "constant":
        out["lr"] = sched["lr"]
    else:
        out["schedule"] = sched
    return out


def _problem_dict(desc: dict) -> dict:
    p = copy.deepcopy(desc)
    _features(p)
    for key in ("spectrum", "target"):
        t = p[key]
        if t.get("kind") == "array" and "values" not in t and "eigenvalues" in t:
            t["values"] = t.pop("eigenvalues")
        p[key] = _clean(t)
    return _clean(p)


def scenario_file_dict(scenario: Any) -> dict:
    """A scenario as the contents of a scenario file (``load_scenario`` reads it back)."""
    desc = scenario.describe()
    out = {"name": desc.get("name", "scenario"), "problem": _problem_dict(desc["problem"]),
           "models": [_model_dict(m) for m in desc["models"]]}
    o = desc.get("output") or {}
    out["output"] = {"at": list(o["at"])} if o.get("at") is not None else {"points": o.get("points", 50)}
    return out


def spec_file_dict(spec: Any) -> dict:
    """A comparison (:class:`~spectral_theory.transfer.Distillation`, ...) as a scenario file
    with its ``[transfer]`` section."""
    roles = {"kd": ("teacher", "student"), "w2s": ("weak", "strong"), "chain": ("base", "child")}[spec.kind]
    desc = spec.describe()
    models, transfer = [], {"kind": spec.kind, "alpha": desc["alpha"]}
    for role in roles:
        m = _model_dict(desc[role])
        m.pop("teacher", None)
        m.pop("alpha", None)
        m["name"] = role
        models.append(m)
        transfer[role] = role
    if spec.kind == "chain":
        transfer["generations"] = desc["generations"]
    o = desc.get("output") or {}
    out = {"name": getattr(spec, "name", spec.kind), "problem": _problem_dict(desc["problem"]),
           "models": models, "transfer": transfer}
    out["output"] = {"at": list(o["at"])} if o.get("at") is not None else {"points": o.get("points", 50)}
    return out


def build(data: dict, *, kind: str | None = None) -> Any:
    """A :class:`~spectral_theory.spec.Scenario`, or a comparison when the file has a
    ``[transfer]`` section with a ``kind`` (or ``kind`` is given), from a scenario-file dict:
    the project's strict reader (unknown keys and invalid values are errors naming the field)."""
    from ..spec import scenario_from_dict

    transfer = data.get("transfer")
    if kind is not None or (isinstance(transfer, dict) and "kind" in transfer):
        from ..transfer.specs import transfer_from_dict

        return transfer_from_dict(data, kind=kind, name=str(data.get("name", "scenario")))
    return scenario_from_dict(data, name=str(data.get("name", "scenario")))


def witness_text(data: dict) -> str:
    """A witness scenario file (JSON: every float written so that it reads back exactly)."""
    return json.dumps(data, indent=2, allow_nan=False) + "\n"
