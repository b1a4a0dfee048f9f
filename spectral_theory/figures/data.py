"""The data stage of a figure (``docs/design.md`` §10): a tidy table and a JSON record.

A :class:`FigureData` holds everything a figure draws: the tidy columns (one row per point:
model, step, value, ...), the record of what produced them (the scenario or comparison,
the method, the package version, the conventions, Monte Carlo replicates and seed), the
kind's annotations (horizons, oracle stops, fitted slopes, stability limits, ...) and the
drawing options. :func:`write_files` writes it as ``NAME.csv`` (the table; floats written
with 17 significant digits, so they read back exactly) and ``NAME.json`` (the record, which
names the CSV and the image); :func:`read_data` reads a record back strictly (unknown keys,
missing columns, values of the wrong type are :class:`~spectral_theory.errors.SpecError`\\ s
naming the field), so that ``replot`` redraws without recomputing.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import SpecError

__all__ = ["FigureData", "FORMAT", "FORMAT_VERSION", "RECORD_KEYS", "KIND_COLUMNS", "KIND_ANNOTATIONS", "read_data",
           "data_texts"]

FORMAT = "spectral-theory figure data"
FORMAT_VERSION = 1
#: keys of the JSON record (all required)
RECORD_KEYS = frozenset({"format", "format_version", "kind", "csv", "image", "columns", "source",
                         "method", "version", "conventions", "annotations", "options", "caption"})
_TYPES = ("str", "int", "float")
_F = "float"
#: the tidy columns of each kind, in order, with their types (what the data builders of
#: :mod:`.kinds` write; a record of another shape is not drawn)
KIND_COLUMNS: dict[str, dict[str, str]] = {
    "curves": {"model": "str", "source": "str", "step": "int", "excess_risk": _F, "bias": _F, "variance": _F,
               "se": _F, "ci_low": _F, "ci_high": _F},
    "modes": {"model": "str", "source": "str", "mode": "int", "lambda": _F, "theta2": _F, "normalised": _F,
              "normalised_bias": _F, "normalised_variance": _F, "se": _F},
    "denoising": {"mode": "int", "lambda": _F, "teacher_variance": _F, "student_variance": _F,
                  "teacher_bias": _F, "student_bias": _F, "teacher_noisy": "int"},
    "map": {"x": _F, "y": _F, "value": _F},
    "chain": {"generation": "int", "source": "str", "risk": _F, "oracle_risk": _F, "horizon": "int", "se": _F},
    "rates": {"series": "str", "step": "int", "value": _F},
    "stability": {"model": "str", "fraction": _F, "lr": _F, "final_risk": _F, "bias": _F, "variance": _F},
}
#: annotations each kind's drawing needs (key -> JSON type)
KIND_ANNOTATIONS: dict[str, dict[str, type]] = {
    "curves": {}, "modes": {"horizons": dict}, "denoising": {}, "chain": {},
    "map": {"metric": str, "x_param": str, "y_param": str}, "rates": {"fits": list},
    "stability": {"models": list, "limits": dict},
}


@dataclass
class FigureData:
    """What a figure draws (module docstring). ``columns``: name -> list of values (``str``,
    ``int`` or ``float``, ``None`` for a missing value), all of one length; ``types``: name ->
    ``"str"``, ``"int"`` or ``"float"``; ``source``: the scenario or comparison's
    ``describe()`` (with ``reps``/``seed`` for Monte Carlo); ``annotations``: the kind's numbers
    (JSON values); ``options``: how it is drawn (the kind's options, ``style``, ``width``)."""

    kind: str
    columns: dict[str, list]
    types: dict[str, str]
    source: dict[str, Any]
    method: str
    annotations: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    caption: str = ""
    version: str = ""
    conventions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if not self.version:
            from .. import __version__

            self.version = __version__
        if not self.conventions:
            from ..result import CONVENTIONS

            self.conventions = dict(CONVENTIONS)
        n = {len(v) for v in self.columns.values()}
        if len(n) > 1:
            raise ValueError(f"columns of different lengths: { {k: len(v) for k, v in self.columns.items()} }")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))

    def column(self, name: str) -> list:
        """One column (a :class:`SpecError` naming the columns if there is none)."""
        if name not in self.columns:
            raise SpecError("column", name, f"must be one of {list(self.columns)}")
        return self.columns[name]

    def select(self, name: str, **where: Any) -> list:
        """Column ``name`` on the rows where every ``column == value`` of ``where``."""
        col = self.column(name)
        keys = [(self.column(k), v) for k, v in where.items()]
        return [col[i] for i in range(len(col)) if all(c[i] == v for c, v in keys)]

    def unique(self, name: str) -> list:
        """The distinct values of a column, in order of first appearance."""
        return list(dict.fromkeys(self.column(name)))

    def rows(self) -> list[dict[str, Any]]:
        """The table as a list of row dicts."""
        names = list(self.columns)
        return [dict(zip(names, vals, strict=True)) for vals in zip(*self.columns.values(), strict=True)]

    def to_csv(self) -> str:
        """The tidy table as CSV (floats with 17 significant digits: exact when read back)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(list(self.columns))
        for row in zip(*self.columns.values(), strict=True):
            w.writerow([_cell(v) for v in row])
        return buf.getvalue()

    def record(self, *, csv_name: str, image_name: str) -> dict[str, Any]:
        """The JSON record (module docstring)."""
        from ..result import jsonable

        return {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind, "csv": csv_name,
                "image": image_name, "columns": [{"name": k, "type": self.types[k]} for k in self.columns],
                "source": jsonable(self.source), "method": self.method, "version": self.version,
                "conventions": self.conventions, "annotations": jsonable(self.annotations),
                "options": jsonable(self.options), "caption": self.caption}


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return str(v)


def data_texts(data: FigureData, image: str | Path) -> dict[str, str]:
    """``{path: text}`` of the two data files beside ``image`` (``NAME.csv``, ``NAME.json``)."""
    image = Path(image)
    csv_path, json_path = image.with_suffix(".csv"), image.with_suffix(".json")
    rec = data.record(csv_name=csv_path.name, image_name=image.name)
    return {str(csv_path): data.to_csv(), str(json_path): json.dumps(rec, indent=2, allow_nan=False) + "\n"}


def read_data(path: str | Path) -> FigureData:
    """Read a figure's JSON record and the CSV it names (beside it), strictly."""
    from ..spec.files import check_keys, no_duplicate_keys

    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        raise SpecError("figure data", str(path), "must be an existing .json file written with a figure")
    try:
        rec = json.loads(path.read_bytes().decode("utf-8"), object_pairs_hook=partial(no_duplicate_keys, what="figure data key"))
    except UnicodeDecodeError as err:
        raise SpecError("figure data", str(path), f"must be UTF-8 text (byte {err.start} is not)") from None
    except json.JSONDecodeError as err:
        raise SpecError("figure data", str(path), f"must be valid JSON: {err}") from None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise SpecError("figure data", str(path), f"is not a figure's data record (its \"format\" is not {FORMAT!r}): "
                                                  "replot reads the NAME.json written beside a figure")
    check_keys("figure data", rec, RECORD_KEYS, RECORD_KEYS)
    if rec["format_version"] != FORMAT_VERSION:
        raise SpecError("figure data.format_version", rec["format_version"], f"must be {FORMAT_VERSION}")
    from .kinds import KINDS

    if rec["kind"] not in KINDS:
        raise SpecError("figure data.kind", rec["kind"], f"must be one of {sorted(KINDS)}")
    for key, typ in (("csv", str), ("image", str), ("method", str), ("version", str), ("caption", str),
                     ("source", dict), ("conventions", dict), ("annotations", dict), ("options", dict),
                     ("columns", list)):
        if not isinstance(rec[key], typ):
            raise SpecError(f"figure data.{key}", rec[key], f"must be a {typ.__name__}")
    types: dict[str, str] = {}
    for i, c in enumerate(rec["columns"]):
        check_keys(f"figure data.columns[{i}]", c, {"name", "type"}, {"name", "type"})
        if not isinstance(c["name"], str) or c["type"] not in _TYPES:
            raise SpecError(f"figure data.columns[{i}]", c, f"must name a column and a type in {list(_TYPES)}")
        types[c["name"]] = c["type"]
    if types != KIND_COLUMNS[rec["kind"]] or len(rec["columns"]) != len(types):
        raise SpecError("figure data.columns", [c.get("name") for c in rec["columns"]],
                        f"must be the columns of a {rec['kind']} figure {list(KIND_COLUMNS[rec['kind']])}")
    for key, typ in KIND_ANNOTATIONS[rec["kind"]].items():
        if not isinstance(rec["annotations"].get(key), typ):
            raise SpecError(f"figure data.annotations.{key}", rec["annotations"].get(key),
                            f"must be a {'JSON object' if typ is dict else 'list' if typ is list else 'string'} "
                            f"(a {rec['kind']} figure draws it)")
    csv_path = path.parent / rec["csv"]
    if Path(rec["csv"]).name != rec["csv"] or not csv_path.is_file():
        raise SpecError("figure data.csv", rec["csv"], f"must name a CSV file beside {path.name}")
    reader = csv.reader(io.StringIO(csv_path.read_text(encoding="utf-8")))
    header = next(reader, None)
    if header != list(types):
        raise SpecError(f"{csv_path.name} header", header, f"must be the record's columns {list(types)}")
    columns: dict[str, list] = {k: [] for k in types}
    for n, row in enumerate(reader, start=2):
        if len(row) != len(header):
            raise SpecError(f"{csv_path.name} line {n}", row, f"must have {len(header)} cells")
        for k, cell in zip(header, row, strict=True):
            columns[k].append(_parse(cell, types[k], f"{csv_path.name} line {n}, column {k}"))
    return FigureData(kind=rec["kind"], columns=columns, types=types, source=rec["source"], method=rec["method"],
                      annotations=rec["annotations"], options=rec["options"], caption=rec["caption"],
                      version=rec["version"], conventions=rec["conventions"])


def _parse(cell: str, typ: str, where: str) -> Any:
    if cell == "":
        return None
    try:
        return {"str": str, "int": int, "float": float}[typ](cell)
    except ValueError:
        raise SpecError(where, cell, f"must be {'an' if typ == 'int' else 'a'} {typ}") from None
