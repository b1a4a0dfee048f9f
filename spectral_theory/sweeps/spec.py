"""The sweep definition: a base (a scenario file's contents or a spec object), the comparison
it is for, a design (:mod:`.design`), what to record and how to run it; read from a sweep
file by a strict reader (unknown keys are errors naming the field, as for scenario files:
``docs/sweeps.md`` lists every key).

Each point of the design becomes a *payload* (the base with the point's values set: a
scenario file's contents, or a spec object) keyed by a content hash of that payload, of
what is recorded and of the package version (:func:`point_hash`): the key of its results
in the output directory, so a point is computed once whatever the sweep it belongs to.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SpecError
from ..spec.files import TRANSFER_ROLES, read_scenario_file
from .design import Block, design_points, parse_design

__all__ = ["Sweep", "SweepPoint", "load_sweep", "sweep_from_dict", "RECORD_GROUPS", "KINDS",
           "METRIC_NAMES", "build_spec", "apply_value"]

#: what a sweep may be over: one scenario (every model of it), or a comparison
KINDS = ("scenario", "kd", "w2s", "chain")
#: groups of recorded quantities (``docs/sweeps.md``, "Recorded quantities")
RECORD_GROUPS = {
    "final": "{model}.final_risk: excess risk at the end of training",
    "bias_variance": "{model}.final_bias, {model}.final_variance (and bias@t, variance@t with at)",
    "oracle": "{model}.oracle_step, {model}.oracle_risk: oracle early stopping over every step",
    "horizon": "{model}.horizon: spectral horizon at the end of training",
    "stability": "{model}.stability_limit, {model}.max_lr: largest stable constant step, largest step used",
    "metrics": "every scalar metric of the comparison's report (kd, w2s, chain; lists as name[i])",
    "curves": "the excess risk (bias, variance, disagreement) at every reported step, in the long table",
}
#: scalar metrics of each comparison's report (``transfer.evaluate``; a test checks these)
METRIC_NAMES = {
    "kd": ("teacher_risk", "kd_risk", "hard_risk", "kd_gain", "kd_gain_difference", "kd_gain_oracle",
           "teacher_horizon", "kd_horizon", "hard_horizon", "horizon_expansion",
           "student_teacher_disagreement"),
    "w2s": ("weak_risk", "w2s_risk", "ceiling_risk", "pgr", "pgr_oracle", "w2s_oracle_step",
            "student_teacher_disagreement", "weak_horizon", "w2s_horizon", "ceiling_horizon",
            "teacher_noisy_modes", "denoised_modes", "teacher_variance_on_noisy_modes",
            "student_variance_on_noisy_modes", "teacher_variance", "student_variance"),
    "chain": ("generation_risk", "generation_growth", "generation_horizon", "generation_oracle_risk",
              "parent_disagreement", "final_over_first"),
}
SWEEP_FILE_KEYS = frozenset({"sweep", "base", "design", "validate"})
SWEEP_KEYS = frozenset({"base", "kind", "record", "at", "method", "on_unstable", "batch_size", "out",
                        "format", "name"})
VALIDATE_KEYS = frozenset({"reps", "block", "seed", "z_max", "at"})
FORMATS = ("parquet", "csv")
DEFAULT_BATCH = 8
_PROBLEM_SHORT = ("noise", "features", "kurtosis")
_METHODS = ("auto", "exact", "renewal", "ode", "continuum")
_ON_UNSTABLE = ("warn", "raise", "ignore")


@dataclass(frozen=True)
class SweepPoint:
    """One point: its index in the design, its values, its payload and their content hash;
    ``group``: points with equal groups share a trained prefix (batched together)."""

    index: int
    values: dict[str, Any]
    payload: Any
    hash: str
    group: str
    #: the error building the payload raised (recorded as the point's result), or None
    error: tuple[str, str] | None = None


@dataclass(frozen=True)
class Sweep:
    """A sweep: ``base`` (a scenario file's contents, or a ``Scenario`` / ``Distillation`` /
    ``WeakToStrong`` / ``Chain``), ``kind``, the design ``blocks``, ``record`` (groups of
    :data:`RECORD_GROUPS` and metric names), ``at`` (steps recorded as ``{model}.risk@t``
    columns, and the steps of the curves), the theory ``method``, ``on_unstable``,
    ``batch_size`` (points per task), ``out`` (output directory), ``format`` and the
    ``validate`` settings (reps, block, seed, z_max, at) of ``validate-sweep``."""

    base: Any
    kind: str
    blocks: tuple[Block, ...]
    record: tuple[str, ...]
    at: tuple[int, ...] | None = None
    method: str = "auto"
    on_unstable: str = "warn"
    batch_size: int = DEFAULT_BATCH
    out: Path | None = None
    format: str = "parquet"
    name: str = "sweep"
    validate: dict[str, Any] = field(default_factory=dict)

    @property
    def fields(self) -> list[str]:
        """The design's fields, in block order."""
        return [f for b in self.blocks for f in b.fields]

    def config(self) -> dict[str, Any]:
        """What every point's computation needs besides its payload (sent with each task)."""
        return {"kind": self.kind, "record": sorted(self.record), "at": None if self.at is None else list(self.at),
                "method": self.method, "on_unstable": self.on_unstable}

    def points(self) -> list[SweepPoint]:
        """Every point of the design with its payload and content hash (module docstring)."""
        from .. import __version__

        cfg = self.config()
        prefix_fields = [f for f in self.fields if _is_prefix_field(self, f)]
        out = []
        for i, values in enumerate(design_points(self.blocks)):
            error = None
            try:
                payload = make_payload(self, values)
                described = payload if isinstance(payload, dict) else _describe(payload)
            except SpecError as err:
                payload, described, error = None, {"values": values, "error": str(err)}, ("SpecError", str(err))
            h = point_hash(described, cfg, __version__)
            group = json.dumps([values.get(f) for f in prefix_fields], sort_keys=True, default=str)
            out.append(SweepPoint(i, values, payload, h, group, error))
        return out

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary (the manifest of the output directory)."""
        return {"name": self.name, "kind": self.kind, "fields": self.fields,
                "blocks": [{"kind": b.kind, "fields": list(b.fields), "points": len(b.points)} for b in self.blocks],
                "record": list(self.record), "at": None if self.at is None else list(self.at),
                "method": self.method, "on_unstable": self.on_unstable, "batch_size": self.batch_size,
                "format": self.format}


def point_hash(described: Any, config: dict[str, Any], version: str) -> str:
    """SHA-256 of a point's scenario (``described``), what it records and the package version."""
    blob = json.dumps({"version": version, "scenario": described, "config": config}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _describe(spec: Any) -> Any:
    return {"kind": getattr(spec, "kind", "scenario"), "spec": spec.describe()}


# ---------------------------------------------------------------------------- paths
def _role_model(data: dict, kind: str, role: str) -> str | None:
    """The model name playing ``role`` in a comparison of ``kind`` (its ``[transfer]`` entry,
    else by position), or None when ``role`` is not a role of ``kind``."""
    roles = TRANSFER_ROLES.get(kind, ())
    if role not in roles:
        return None
    named = (data.get("transfer") or {}).get(role)
    if isinstance(named, str):
        return named
    order = [m.get("name") for m in data.get("models", []) if isinstance(m, dict)]
    i = roles.index(role)
    if i < len(order):
        return order[i]
    return order[0] if role == "child" and order else None


def _model_table(data: dict, kind: str, head: str) -> dict | None:
    name = _role_model(data, kind, head) or head
    for m in data.get("models", []):
        if isinstance(m, dict) and m.get("name") == name:
            return m
    return None


def _set_nested(table: dict, keys: list[str], value: Any, path: str) -> None:
    for i, k in enumerate(keys[:-1]):
        sub = table.get(k)
        if not isinstance(sub, dict):
            where = ".".join(keys[:i + 1])
            raise SpecError(f"design field {path!r}", value,
                            f"the base has no table {where!r} to set {keys[-1]!r} in")
        table = sub
    table[keys[-1]] = value


def apply_value(data: dict, kind: str, path: str, value: Any) -> None:
    """Set the design field ``path`` to ``value`` in a scenario file's contents ``data`` (in
    place). Paths: ``noise``, ``features``, ``kurtosis``; ``spectrum.<key>``, ``target.<key>``,
    ``problem.<key>...``; ``alpha``, ``generations``, ``transfer.<key>``; ``output.<key>``;
    ``<role>.<key>...`` (``teacher``, ``student``, ``weak``, ``strong``, ``base``, ``child``: the
    model playing that role in the sweep's comparison) or ``<model name>.<key>...``, where
    ``<model>.lr`` sets a constant step (dropping a schedule) and ``<model>.schedule`` a
    schedule (dropping ``lr``)."""
    keys = path.split(".")
    head = keys[0]
    problem = data.get("problem")
    if not isinstance(problem, dict):
        raise SpecError("base.problem", problem, "must be a table")
    if len(keys) == 1 and head in _PROBLEM_SHORT:
        problem[head] = value
        other = {"features": "kurtosis", "kurtosis": "features"}.get(head)
        if other:
            problem.pop(other, None)
        return
    if len(keys) == 1 and head in ("alpha", "generations"):
        if kind == "scenario":
            raise SpecError(f"design field {path!r}", value, "is a parameter of a comparison; this sweep's "
                                                            "kind is 'scenario' (set sweep.kind to kd, w2s or chain)")
        t = data.setdefault("transfer", {})
        t[head] = value
        return
    if len(keys) >= 2 and head in ("spectrum", "target"):
        _set_nested(problem, keys, value, path)
        return
    if len(keys) >= 2 and head == "problem":
        _set_nested(problem, keys[1:], value, path)
        return
    if len(keys) >= 2 and head in ("transfer", "output"):
        if not isinstance(data.get(head, {}), dict):
            raise SpecError(f"base.{head}", data[head], "must be a table")
        _set_nested(data.setdefault(head, {}), keys[1:], value, path)
        return
    model = _model_table(data, kind, head) if len(keys) >= 2 else None
    if model is None:
        names = [m.get("name") for m in data.get("models", []) if isinstance(m, dict)]
        roles = list(TRANSFER_ROLES.get(kind, ()))
        raise SpecError(f"design field {path!r}", value,
                        "must be 'noise', 'features', 'kurtosis', 'spectrum.<key>', 'target.<key>', "
                        "'problem.<key>', 'alpha', 'generations', 'transfer.<key>', 'output.<key>' or "
                        f"'<model>.<key>' for a model {names}" + (f" or a role {roles}" if roles else ""))
    if keys[1:] == ["lr"]:
        model.pop("schedule", None)
    elif keys[1:] == ["schedule"]:
        model.pop("lr", None)
    _set_nested(model, keys[1:], value, path)


def _is_prefix_field(sw: Sweep, path: str) -> bool:
    """Whether a field changes the first trained model of the comparison (or the problem):
    points that agree on every such field share that model's training (batched together)."""
    head = path.split(".")[0]
    if head in _PROBLEM_SHORT or head in ("spectrum", "target", "problem", "output"):
        return True
    if head in ("alpha", "generations", "transfer"):
        return head == "transfer"
    first_role = {"kd": "teacher", "w2s": "weak", "chain": "base"}.get(sw.kind)
    if isinstance(sw.base, dict):
        if first_role is not None:
            first = _role_model(sw.base, sw.kind, first_role)
        else:
            first = next((m.get("name") for m in sw.base.get("models", []) if isinstance(m, dict)), None)
        return head in (first_role, first)
    if sw.kind == "scenario":
        return head == sw.base.models[0].name
    return head == first_role


def make_payload(sw: Sweep, values: dict[str, Any]) -> Any:
    """The base with a point's ``values`` set (a scenario file's contents, or a spec object)."""
    if isinstance(sw.base, dict):
        data = copy.deepcopy(sw.base)
        for path, v in values.items():
            apply_value(data, sw.kind, path, copy.deepcopy(v))
        if sw.at is not None:
            data["output"] = {"at": list(sw.at)}
        return data
    from ..spec import Output

    spec = sw.base
    for path, v in values.items():
        spec = _set_object(spec, path, v)
    if sw.at is not None:
        spec = dataclasses.replace(spec, output=Output(at=tuple(sw.at)))
    return spec


def _set_object(spec: Any, path: str, value: Any) -> Any:
    """A copy of a spec object with the design field ``path`` set: a comparison through
    :func:`spectral_theory.transfer.maps.set_param`; a scenario's ``<model>.<field>``
    (``<model>.lr``: a constant step), ``noise``, ``spectrum.<field>``, ``target.<field>``."""
    from ..spec import Scenario
    from ..transfer.maps import set_param

    if not isinstance(spec, Scenario):
        return set_param(spec, path, value)
    head, _, tail = path.partition(".")
    names = [m.name for m in spec.models]
    if head in names and tail:
        i = names.index(head)
        m = spec.models[i]
        if tail == "lr":
            from ..spec.validate import finite

            tail, value = "schedule", finite(f"design field {path}", value, lo=0.0, lo_open=True)
        if tail not in {f.name for f in dataclasses.fields(m)}:
            raise SpecError(f"design field {path!r}", value, f"Model has no field {tail!r}")
        models = list(spec.models)
        models[i] = dataclasses.replace(m, **{tail: value})
        return dataclasses.replace(spec, models=tuple(models))
    if head == "noise" and not tail:
        return dataclasses.replace(spec, problem=dataclasses.replace(spec.problem, noise=value))
    if head in ("spectrum", "target") and tail:
        sub = getattr(spec.problem, head)
        if tail not in {f.name for f in dataclasses.fields(sub)}:
            raise SpecError(f"design field {path!r}", value, f"{type(sub).__name__} has no field {tail!r}")
        return dataclasses.replace(spec, problem=dataclasses.replace(
            spec.problem, **{head: dataclasses.replace(sub, **{tail: value})}))
    raise SpecError(f"design field {path!r}", value,
                    f"must be 'noise', 'spectrum.<field>', 'target.<field>' or '<model>.<field>' for a model {names}")


def build_spec(payload: Any, kind: str) -> Any:
    """The scenario or comparison of a payload (a file's contents read by the strict reader)."""
    if not isinstance(payload, dict):
        return payload
    if kind == "scenario":
        from ..spec.files import read_sections

        return read_sections(payload, name="point")[0]
    from ..transfer.specs import transfer_from_dict

    return transfer_from_dict(payload, kind=kind, name="point")


# ---------------------------------------------------------------------------- the reader
def check_keys(field: str, table: Any, allowed: Any) -> dict:
    if not isinstance(table, dict):
        raise SpecError(field, table, "must be a table")
    for k in table:
        if k not in allowed:
            raise SpecError(f"{field}.{k}", table[k], f"unknown key; allowed keys: {sorted(allowed)}")
    return table


def _kind_of(base: Any, kind: Any) -> str:
    if kind is not None:
        if kind not in KINDS:
            raise SpecError("sweep.kind", kind, f"must be one of {list(KINDS)}")
        return kind
    if isinstance(base, dict):
        k = (base.get("transfer") or {}).get("kind") if isinstance(base.get("transfer"), dict) else None
        return k if k in KINDS else "scenario"
    return getattr(base, "kind", "scenario") if getattr(base, "kind", None) in KINDS else "scenario"


def _record(kind: str, record: Any) -> tuple[str, ...]:
    if record is None:
        return ("final", "bias_variance") if kind == "scenario" else ("metrics",)
    if isinstance(record, str):
        record = [record]
    if not isinstance(record, list) or not record:
        raise SpecError("sweep.record", record, f"must be a non-empty list of {sorted(RECORD_GROUPS)} or metric names")
    allowed = set(RECORD_GROUPS) | set(METRIC_NAMES.get(kind, ()))
    for i, r in enumerate(record):
        if r not in allowed:
            extra = f" or metrics of a {kind} comparison {list(METRIC_NAMES[kind])}" if kind in METRIC_NAMES else \
                " (metrics need sweep.kind = kd, w2s or chain)"
            raise SpecError(f"sweep.record[{i}]", r, f"must be one of {sorted(RECORD_GROUPS)}{extra}")
        if r == "metrics" and kind == "scenario":
            raise SpecError(f"sweep.record[{i}]", r, "metrics are those of a comparison: set sweep.kind to kd, "
                                                     "w2s or chain")
    return tuple(dict.fromkeys(record))


def steps_field(field: str, at: Any) -> tuple[int, ...] | None:
    if at is None:
        return None
    if not isinstance(at, list) or not at or any(isinstance(t, bool) or not isinstance(t, int) or t < 0
                                                  for t in at):
        raise SpecError(field, at, "must be a non-empty list of non-negative integers (steps)")
    return tuple(sorted(set(at)))


def _validate_settings(t: Any) -> dict[str, Any]:
    t = check_keys("validate", t, VALIDATE_KEYS)
    out = {"reps": t.get("reps", 1000), "block": t.get("block", 100), "seed": t.get("seed", 0),
           "z_max": t.get("z_max", 4.0), "at": steps_field("validate.at", t.get("at"))}
    check_validate_settings(out)
    return out


def check_validate_settings(v: dict[str, Any], prefix: str = "validate.") -> None:
    """Replicates ``reps`` (>= 2) in blocks of ``block`` (>= 2, dividing ``reps``), ``seed`` >= 0,
    ``z_max`` > 0."""
    for k in ("reps", "block", "seed"):
        x = v[k]
        lo = 0 if k == "seed" else 2
        if isinstance(x, bool) or not isinstance(x, int) or x < lo:
            raise SpecError(f"{prefix}{k}", x, f"must be an integer >= {lo}")
    if v["reps"] % v["block"]:
        raise SpecError(f"{prefix}block", v["block"], f"must divide reps = {v['reps']} (every block holds the "
                                                      "same number of replicates)")
    z = v["z_max"]
    if isinstance(z, bool) or not isinstance(z, (int, float)) or not z > 0:
        raise SpecError(f"{prefix}z_max", z, "must be a positive number")


def sweep_from_dict(data: dict[str, Any], *, root: Path | None = None, name: str = "sweep") -> Sweep:
    """A :class:`Sweep` from a sweep file's parsed contents (``root``: the directory relative
    paths are read from)."""
    check_keys("sweep file", data, SWEEP_FILE_KEYS)
    s = check_keys("sweep", data.get("sweep", {}), SWEEP_KEYS)
    root = Path(".") if root is None else Path(root)
    if ("base" in s) == ("base" in data):
        raise SpecError("sweep.base", s.get("base"), "give either sweep.base (the path of a scenario file) or "
                                                     "an inline [base] table (a scenario file's contents), "
                                                     "exactly one")
    if "base" in s:
        if not isinstance(s["base"], str):
            raise SpecError("sweep.base", s["base"], "must be the path of a .toml or .json scenario file")
        base = read_scenario_file(root / s["base"])
    else:
        base = data["base"]
        if not isinstance(base, dict):
            raise SpecError("base", base, "must be a table: a scenario file's contents")
    if "design" not in data:
        raise SpecError("design", None, "is required: a [design] table or [[design]] blocks")
    out = s.get("out")
    if out is not None and (not isinstance(out, str) or not out):
        raise SpecError("sweep.out", out, "must be a directory path")
    label = s.get("name", name)
    if not isinstance(label, str):
        raise SpecError("sweep.name", label, "must be a string")
    return make_sweep(base, parse_design(data["design"]), kind=s.get("kind"), record=s.get("record"),
                      at=s.get("at"), method=s.get("method", "auto"), on_unstable=s.get("on_unstable", "warn"),
                      batch_size=s.get("batch_size", DEFAULT_BATCH),
                      out=None if out is None else root / out, format=s.get("format"), name=label,
                      validate=_validate_settings(data.get("validate", {})), prefix="sweep.")


def make_sweep(base: Any, blocks: tuple[Block, ...], *, kind: Any = None, record: Any = None, at: Any = None,
               method: Any = "auto", on_unstable: Any = "warn", batch_size: Any = DEFAULT_BATCH,
               out: Any = None, format: Any = None, name: str = "sweep", validate: dict | None = None,
               prefix: str = "") -> Sweep:
    """A checked :class:`Sweep` (every field checked; the base read once with the first
    point's values, so that a wrong design field is an error before anything runs)."""
    from ..spec import Scenario
    from ..transfer.specs import TransferSpec

    if not isinstance(base, (dict, Scenario, TransferSpec)):
        raise SpecError("base", base, "must be a scenario file's contents (a dict), a Scenario, or a "
                                      "Distillation / WeakToStrong / Chain")
    kind = _kind_of(base, kind)
    if not isinstance(base, dict):
        own = getattr(base, "kind", "scenario") if isinstance(base, TransferSpec) else "scenario"
        if own != kind:
            raise SpecError(f"{prefix}kind", kind, f"the base is a {own!r} spec")
    if method not in _METHODS:
        raise SpecError(f"{prefix}method", method, f"must be one of {list(_METHODS)}")
    if on_unstable not in _ON_UNSTABLE:
        raise SpecError(f"{prefix}on_unstable", on_unstable, f"must be one of {list(_ON_UNSTABLE)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise SpecError(f"{prefix}batch_size", batch_size, "must be an integer >= 1 (points per task)")
    if format is None:
        format = "parquet" if has_pyarrow() else "csv"
    if format not in FORMATS:
        raise SpecError(f"{prefix}format", format, f"must be one of {list(FORMATS)}")
    if format == "parquet" and not has_pyarrow():
        raise SpecError(f"{prefix}format", format, "needs pyarrow (pip install \".[sweeps]\"); or use format = 'csv'")
    sw = Sweep(base=base, kind=kind, blocks=tuple(blocks), record=_record(kind, record),
               at=steps_field(f"{prefix}at", at), method=method, on_unstable=on_unstable, batch_size=batch_size,
               out=None if out is None else Path(out), format=format, name=name,
               validate=dict(validate) if validate else {"reps": 1000, "block": 100, "seed": 0, "z_max": 4.0,
                                                         "at": None})
    # the base and every field, checked once with the first point's values
    try:
        build_spec(make_payload(sw, {}), kind)
    except SpecError as err:
        raise SpecError(f"base: {err.field}", err.value, err.allowed) from None
    first = design_points(tuple(dataclasses.replace(b, points=b.points[:1]) for b in sw.blocks))[0]
    payload = copy.deepcopy(sw.base) if isinstance(sw.base, dict) else sw.base
    for path, v in first.items():
        if isinstance(payload, dict):
            apply_value(payload, kind, path, copy.deepcopy(v))
        else:
            payload = _set_object(payload, path, v)
    if isinstance(payload, dict):
        # a field naming a key the strict reader does not know is a typo in the design: an
        # error now (an invalid *value* is only that point's error, recorded in its row)
        try:
            build_spec(payload, kind)
        except SpecError as err:
            if err.allowed.startswith("unknown key"):
                field_ = next((f for f in first if f.split(".")[-1] == err.field.split(".")[-1]), None)
                raise SpecError(f"design field {field_!r}" if field_ else err.field, err.value,
                                f"{err.allowed} (read as {err.field})") from None
    return sw


def has_pyarrow() -> bool:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep file (``.toml`` or ``.json``; ``docs/sweeps.md``). Relative paths in it
    (``sweep.base``, ``sweep.out``) are relative to the file; the output directory defaults
    to ``<file stem>.sweep`` next to it."""
    path = Path(path)
    if path.suffix.lower() not in (".toml", ".json"):
        raise SpecError("sweep file", str(path), "must end in .toml or .json")
    if not path.is_file():
        raise SpecError("sweep file", str(path), "must be an existing .toml or .json file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError("sweep file", str(path), f"must be UTF-8 text (byte {err.start} is not valid UTF-8)") from None
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise SpecError("sweep file", str(path), f"must be valid {path.suffix[1:].upper()}: {err}") from None
    if not isinstance(data, dict):
        raise SpecError("sweep file", str(path), "must hold a table at the top")
    stem = path.name.split(".")[0]
    sw = sweep_from_dict(data, root=path.parent, name=stem)
    if sw.out is None:
        sw = dataclasses.replace(sw, out=path.parent / f"{stem}.sweep")
    return sw
