"""Designs: which points a sweep visits (``docs/sweeps.md``, "Designs").

A design is one or more blocks, each over its own fields; the points of a sweep are the
cartesian product of the blocks' points (the first block varies slowest). A block is

* ``grid``: the cartesian product of its fields' values (the first field varies slowest);
* ``list``: explicit points, ``points = [{field = value, ...}, ...]`` or equal-length value
  lists zipped;
* ``random``: ``n`` points drawn independently and uniformly (``log``: log-uniformly) within
  each field's bounds, from ``numpy.random.default_rng(seed)``;
* ``sobol``: ``n`` (a power of 2) points of a scrambled Sobol sequence
  (``scipy.stats.qmc.Sobol(scramble=True, seed=seed)``), mapped to each field's bounds.

A field's values: a list (a grid's values, a list block's column, or the categories a random
or Sobol block picks from), ``{range = [lo, hi], num = N}`` (evenly spaced; ``num`` only in a
grid), ``{log = [lo, hi], num = N}`` (log-spaced), each with ``integer = true`` to round to
integers (repeats dropped). Every point is generated on the driver, deterministically (the
same file and seed give the same points on every machine).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SpecError

__all__ = ["DESIGN_KINDS", "Block", "parse_design", "design_points", "is_full_grid"]

DESIGN_KINDS = ("grid", "list", "random", "sobol")
_BLOCK_KEYS = {"grid": {"kind", "fields"}, "list": {"kind", "fields", "points"},
               "random": {"kind", "fields", "n", "seed"}, "sobol": {"kind", "fields", "n", "seed"}}
_AXIS_KEYS = {"range", "log", "num", "integer"}
#: most points a design may hold (a sweep larger than this is almost always a typo)
MAX_POINTS = 10**7


@dataclass(frozen=True)
class Block:
    """One block of a design: its kind and its points (one dict ``{field: value}`` each)."""

    kind: str
    fields: tuple[str, ...]
    points: tuple[dict[str, Any], ...]
    #: a grid's values per field (for the xarray view); ``None`` for other kinds
    axes: dict[str, list] | None = None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) \
        and math.isfinite(float(v))


def _check_value(field: str, v: Any) -> Any:
    if isinstance(v, bool) or isinstance(v, str) or v is None:
        if v is None:
            raise SpecError(field, v, "must be a number, a string, a boolean, a list or a table")
        return v
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(float(v)):
            raise SpecError(field, v, "must be finite")
        return float(v)
    if isinstance(v, (list, dict)):
        return v
    raise SpecError(field, v, "must be a number, a string, a boolean, a list or a table")


def _bounds(field: str, spec: dict) -> tuple[str, float, float, bool]:
    """``("range" | "log", lo, hi, integer)`` of a field given as a table."""
    for k in spec:
        if k not in _AXIS_KEYS:
            raise SpecError(f"{field}.{k}", spec[k], f"unknown key; allowed keys: {sorted(_AXIS_KEYS)}")
    which = [k for k in ("range", "log") if k in spec]
    if len(which) != 1:
        raise SpecError(field, spec, "must give exactly one of range = [lo, hi] (evenly spaced) or "
                                     "log = [lo, hi] (log-spaced)")
    kind = which[0]
    b = spec[kind]
    if not isinstance(b, list) or len(b) != 2 or not all(_is_number(x) for x in b):
        raise SpecError(f"{field}.{kind}", b, "must be a pair of finite numbers [lo, hi]")
    lo, hi = float(b[0]), float(b[1])
    if not lo <= hi:
        raise SpecError(f"{field}.{kind}", b, "must have lo <= hi")
    if kind == "log" and not lo > 0:
        raise SpecError(f"{field}.{kind}", b, "must be positive (log-spaced values)")
    integer = spec.get("integer", False)
    if not isinstance(integer, bool):
        raise SpecError(f"{field}.integer", integer, "must be true or false")
    if integer and math.ceil(lo) > math.floor(hi):
        raise SpecError(f"{field}.{kind}", b, "holds no integer (integer = true)")
    return kind, lo, hi, integer


def _to_values(field: str, xs: np.ndarray, lo: float, hi: float, integer: bool) -> list:
    if integer:
        ints = np.clip(np.round(xs), math.ceil(lo), math.floor(hi)).astype(np.int64)
        return [int(v) for v in ints]
    return [float(v) for v in np.clip(xs, lo, hi)]


def _grid_axis(field: str, spec: Any) -> list:
    if isinstance(spec, list):
        if not spec:
            raise SpecError(field, spec, "must list at least one value")
        return [_check_value(f"{field}[{i}]", v) for i, v in enumerate(spec)]
    if not isinstance(spec, dict):
        raise SpecError(field, spec, "must be a list of values, {range = [lo, hi], num = N} or "
                                     "{log = [lo, hi], num = N}")
    kind, lo, hi, integer = _bounds(field, spec)
    num = spec.get("num")
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise SpecError(f"{field}.num", num, "is required in a grid: the number of values, an integer >= 1")
    if num == 1 and lo != hi:
        raise SpecError(f"{field}.num", num, "must be >= 2 unless lo == hi")
    xs = np.linspace(lo, hi, num) if kind == "range" else np.geomspace(lo, hi, num)
    vals = _to_values(field, xs, lo, hi, integer)
    if integer:  # rounding can repeat a value: keep the first
        vals = list(dict.fromkeys(vals))
    return vals


def _unit_to_values(field: str, spec: Any, u: np.ndarray) -> list:
    """Values of a random/Sobol field from uniform numbers ``u`` in [0, 1)."""
    if isinstance(spec, list):
        if not spec:
            raise SpecError(field, spec, "must list at least one value")
        cats = [_check_value(f"{field}[{i}]", v) for i, v in enumerate(spec)]
        idx = np.minimum((u * len(cats)).astype(np.int64), len(cats) - 1)
        return [cats[i] for i in idx]
    if not isinstance(spec, dict):
        raise SpecError(field, spec, "must be a list of categories, {range = [lo, hi]} or {log = [lo, hi]}")
    kind, lo, hi, integer = _bounds(field, spec)
    if "num" in spec:
        raise SpecError(f"{field}.num", spec["num"], "is for grids; a random or Sobol block draws n points")
    if integer:  # every integer of [lo, hi] equally likely (log: each of log-uniform width)
        a, b = math.ceil(lo), math.floor(hi)
        if kind == "range":
            return [int(v) for v in np.minimum(a + np.floor(u * (b - a + 1)), b).astype(np.int64)]
        la, lb = math.log(a - 0.5) if a > 0.5 else math.log(a), math.log(b + 0.5)
        xs = np.exp(la + u * (lb - la))
        return _to_values(field, xs, a, b, True)
    xs = lo + u * (hi - lo) if kind == "range" else np.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    return _to_values(field, xs, lo, hi, False)


def _n_seed(where: str, t: dict, *, sobol: bool) -> tuple[int, int]:
    n = t.get("n")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_POINTS:
        raise SpecError(f"{where}.n", n, f"is required: the number of points, an integer in [1, {MAX_POINTS}]")
    if sobol and n & (n - 1):
        lo = 1 << (n.bit_length() - 1)
        raise SpecError(f"{where}.n", n, f"must be a power of 2 (a Sobol sequence is balanced only "
                                         f"then), e.g. {lo} or {2 * lo}")
    seed = t.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SpecError(f"{where}.seed", seed, "must be a non-negative integer")
    return n, seed


def _block(where: str, t: Any) -> Block:
    if not isinstance(t, dict):
        raise SpecError(where, t, "must be a table with kind and fields")
    kind = t.get("kind")
    if kind not in DESIGN_KINDS:
        raise SpecError(f"{where}.kind", kind, f"must be one of {list(DESIGN_KINDS)}")
    for k in t:
        if k not in _BLOCK_KEYS[kind]:
            raise SpecError(f"{where}.{k}", t[k], f"unknown key for a {kind} block; allowed keys: "
                                                  f"{sorted(_BLOCK_KEYS[kind])}")
    if kind == "list" and "points" in t:
        if "fields" in t:
            raise SpecError(f"{where}.fields", t["fields"], "give either points (a list of tables) or "
                                                            "fields (equal-length lists), not both")
        pts = t["points"]
        if not isinstance(pts, list) or not pts or not all(isinstance(p, dict) and p for p in pts):
            raise SpecError(f"{where}.points", pts, "must be a non-empty list of tables {field = value, ...}")
        names = list(pts[0])
        for i, p in enumerate(pts):
            if set(p) != set(names):
                raise SpecError(f"{where}.points[{i}]", p, f"must set the same fields as points[0]: {names}")
        points = tuple({f: _check_value(f"{where}.points[{i}].{f}", p[f]) for f in names}
                       for i, p in enumerate(pts))
        return Block(kind, tuple(names), points)
    fields = t.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise SpecError(f"{where}.fields", fields, "is required: a table {\"path\" = values, ...}")
    names = tuple(fields)
    for f in names:
        if not isinstance(f, str) or not f:
            raise SpecError(f"{where}.fields", f, "field names must be non-empty strings")
    if kind == "grid":
        axes = {f: _grid_axis(f"{where}.fields.{f}", fields[f]) for f in names}
        n = math.prod(len(v) for v in axes.values())
        if n > MAX_POINTS:
            raise SpecError(f"{where}.fields", {f: len(v) for f, v in axes.items()},
                            f"a grid of {n} points; at most {MAX_POINTS}")
        points = tuple(dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values()))
        return Block(kind, names, points, axes)
    if kind == "list":
        cols = {}
        for f in names:
            v = fields[f]
            if not isinstance(v, list) or not v:
                raise SpecError(f"{where}.fields.{f}", v, "must be a non-empty list (a list block zips its "
                                                          "fields' lists)")
            cols[f] = [_check_value(f"{where}.fields.{f}[{i}]", x) for i, x in enumerate(v)]
        lengths = {f: len(v) for f, v in cols.items()}
        if len(set(lengths.values())) != 1:
            raise SpecError(f"{where}.fields", lengths, "a list block's fields must have equal lengths")
        n = next(iter(lengths.values()))
        return Block(kind, names, tuple({f: cols[f][i] for f in names} for i in range(n)))
    n, seed = _n_seed(where, t, sobol=kind == "sobol")
    if kind == "random":
        u = np.random.default_rng(seed).random((n, len(names)))
    else:
        from scipy.stats import qmc

        u = qmc.Sobol(d=len(names), scramble=True, seed=np.random.default_rng(seed)).random_base2(
            int(round(math.log2(n))))
    cols = {f: _unit_to_values(f"{where}.fields.{f}", fields[f], u[:, j]) for j, f in enumerate(names)}
    return Block(kind, names, tuple({f: cols[f][i] for f in names} for i in range(n)))


def parse_design(t: Any, where: str = "design") -> tuple[Block, ...]:
    """The blocks of a design: one table or a list of tables (``[[design]]``); fields must be
    distinct across blocks."""
    tables = t if isinstance(t, list) else [t]
    if not tables:
        raise SpecError(where, t, "must hold at least one block")
    blocks = tuple(_block(f"{where}[{i}]" if isinstance(t, list) else where, b) for i, b in enumerate(tables))
    seen: dict[str, int] = {}
    for i, b in enumerate(blocks):
        for f in b.fields:
            if f in seen:
                raise SpecError(f"{where}[{i}].fields.{f}", f, f"is already a field of block {seen[f]}; "
                                                              "each field belongs to one block")
            seen[f] = i
    n = math.prod(len(b.points) for b in blocks)
    if n > MAX_POINTS:
        raise SpecError(where, [len(b.points) for b in blocks], f"the product has {n} points; at most {MAX_POINTS}")
    return blocks


def design_points(blocks: tuple[Block, ...]) -> list[dict[str, Any]]:
    """Every point of the design (the product of its blocks, the first varying slowest)."""
    out = []
    for combo in itertools.product(*(b.points for b in blocks)):
        p: dict[str, Any] = {}
        for part in combo:
            p.update(part)
        out.append(p)
    return out


def is_full_grid(blocks: tuple[Block, ...]) -> bool:
    """Whether the design is a full grid (every block a grid): then the table has an xarray view."""
    return all(b.kind == "grid" for b in blocks)
