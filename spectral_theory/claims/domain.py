"""Parameter domains of claims: boxes and lists over scenario fields, integers and log scales.

A :class:`Param` is a range ``[lo, hi]`` (``log=True``: uniform in ``log``; ``integer=True``:
rounded to integers) or a list of ``values``; ``path`` names the scenario field it sets
(``"problem.noise"``, ``"models.teacher.lr"``, ``"models[0].batch"``, ``"transfer.alpha"``;
``docs/claims.md``), or is left out for the standard names (``eta``, ``B``, ``a``, ``b``, ``d``,
``sigma2``, ``kappa``, ``T``, ``k``, ``alpha``) or for a parameter a Python scenario builder
takes. A :class:`Domain` is a box of parameters, or an explicit list of points.

The search works in the unit cube ``[0, 1]^n``: :meth:`Domain.point` maps a cube point to
parameter values (log scales, rounding, list positions), :meth:`Domain.unit` maps back.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SpecError

__all__ = ["Param", "Domain", "as_domain"]


def _num(field_: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
        raise SpecError(field_, v, "must be a finite number")
    return float(v)


@dataclass(frozen=True)
class Param:
    """One parameter: ``Param(lo, hi, log=..., integer=..., path=...)`` or ``Param(values=[...])``."""

    lo: float | None = None
    hi: float | None = None
    log: bool = False
    integer: bool = False
    values: tuple | None = None
    path: str | None = None
    name: str = ""

    def __post_init__(self):
        f = f"domain.{self.name or '?'}"
        for k in ("log", "integer"):
            if not isinstance(getattr(self, k), bool):
                raise SpecError(f"{f}.{k}", getattr(self, k), "must be true or false")
        if self.path is not None and (not isinstance(self.path, str) or not self.path):
            raise SpecError(f"{f}.path", self.path, "must be a field path such as 'problem.noise'")
        if self.values is not None:
            if self.lo is not None or self.hi is not None or self.log:
                raise SpecError(f"{f}.values", self.values, "give either values (a list) or lo/hi, not both")
            vals = self.values
            if isinstance(vals, (str, bytes)) or not isinstance(vals, Sequence | np.ndarray) or len(vals) == 0:
                raise SpecError(f"{f}.values", vals, "must be a non-empty list")
            for j, v in enumerate(vals):
                if isinstance(v, bool) or not isinstance(v, (int, float, str)) or (
                        isinstance(v, float) and not math.isfinite(v)):
                    raise SpecError(f"{f}.values[{j}]", v, "must be a finite number or a string")
            object.__setattr__(self, "values", tuple(vals))
            return
        if self.lo is None or self.hi is None:
            raise SpecError(f"{f}", None, "needs lo and hi (a range) or values (a list)")
        lo, hi = _num(f"{f}.lo", self.lo), _num(f"{f}.hi", self.hi)
        if not hi >= lo:
            raise SpecError(f"{f}.hi", self.hi, f"must be >= lo = {self.lo!r}")
        if self.log and not lo > 0:
            raise SpecError(f"{f}.lo", self.lo, "must be > 0 on a log scale")
        if self.integer and (lo != math.floor(lo) or hi != math.floor(hi)):
            raise SpecError(f"{f}.lo", (self.lo, self.hi), "integer parameters need integer bounds")

    def value(self, u: float) -> Any:
        """The parameter value at ``u`` in [0, 1]."""
        u = min(max(float(u), 0.0), 1.0)
        if self.values is not None:
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        lo, hi = float(self.lo), float(self.hi)  # type: ignore[arg-type]
        if u in (0.0, 1.0):  # the ends exactly (exp(log(hi)) need not be hi)
            v = lo if u == 0.0 else hi
            return int(round(v)) if self.integer else v
        if self.log:
            v = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
        else:
            v = lo + u * (hi - lo)
        v = min(max(v, lo), hi)
        return int(round(v)) if self.integer else v

    def unit(self, value: Any) -> float:
        """Inverse of :meth:`value` (the centre of the cell of a list value)."""
        if self.values is not None:
            return (self.values.index(value) + 0.5) / len(self.values)
        lo, hi = float(self.lo), float(self.hi)  # type: ignore[arg-type]
        if hi == lo:
            return 0.5
        if self.log:
            return (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))
        return (float(value) - lo) / (hi - lo)

    @property
    def size(self) -> float:
        """Number of distinct values (inf for a continuous range)."""
        if self.values is not None:
            return len(self.values)
        if self.integer:
            return int(self.hi) - int(self.lo) + 1  # type: ignore[arg-type]
        return math.inf if self.hi != self.lo else 1

    def describe(self) -> dict[str, Any]:
        """The parameter as a claim-file table."""
        if self.values is not None:
            out: dict[str, Any] = {"values": list(self.values)}
        else:
            out = {"lo": self.lo, "hi": self.hi}
            if self.log:
                out["log"] = True
            if self.integer:
                out["integer"] = True
        if self.path:
            out["path"] = self.path
        return out


@dataclass(frozen=True)
class Domain:
    """A box of named parameters, or (``points``) an explicit list of parameter dicts."""

    params: dict[str, Param] = field(default_factory=dict)
    points: tuple[dict[str, Any], ...] | None = None

    def __post_init__(self):
        if not isinstance(self.params, Mapping):
            raise SpecError("domain", self.params, "must map parameter names to Param objects")
        fixed = {}
        for name, p in self.params.items():
            if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
                raise SpecError("domain", name, "parameter names are identifiers not starting with '_'")
            if not isinstance(p, Param):
                raise SpecError(f"domain.{name}", p, "must be a Param")
            fixed[name] = p if p.name == name else Param(p.lo, p.hi, log=p.log, integer=p.integer,
                                                         values=p.values, path=p.path, name=name)
        object.__setattr__(self, "params", fixed)
        if self.points is not None:
            pts = tuple(dict(p) for p in self.points)
            if not pts:
                raise SpecError("domain.points", self.points, "must be a non-empty list of points")
            keys = set(pts[0])
            for j, p in enumerate(pts):
                if set(p) != keys:
                    raise SpecError(f"domain.points[{j}]", p, f"must set the same names as points[0]: {sorted(keys)}")
            object.__setattr__(self, "points", pts)

    @property
    def names(self) -> list[str]:
        if self.points is not None:
            return list(self.points[0])
        return list(self.params)

    @property
    def dim(self) -> int:
        return len(self.params)

    def point(self, u: Sequence[float]) -> dict[str, Any]:
        """Parameter values at the unit-cube point ``u``."""
        return {name: p.value(x) for (name, p), x in zip(self.params.items(), u, strict=True)}

    def unit(self, values: Mapping[str, Any]) -> np.ndarray:
        """The unit-cube point of parameter values."""
        return np.array([p.unit(values[name]) for name, p in self.params.items()])

    @property
    def size(self) -> float:
        """Number of distinct points (inf when a parameter is continuous)."""
        if self.points is not None:
            return len(self.points)
        return math.prod(p.size for p in self.params.values())

    def enumerate(self) -> list[dict[str, Any]]:
        """Every point of a finite domain."""
        if self.points is not None:
            return [dict(p) for p in self.points]
        axes = []
        for p in self.params.values():
            if p.values is not None:
                axes.append(list(p.values))
            else:
                axes.append(list(range(int(p.lo), int(p.hi) + 1)) if p.integer else [p.lo])
        return [dict(zip(self.params, combo, strict=True)) for combo in itertools.product(*axes)]

    def grid(self, per_axis: int) -> list[dict[str, Any]]:
        """A grid of ``per_axis`` values per continuous axis (lists: every value)."""
        axes = []
        for p in self.params.values():
            n = min(per_axis, p.size) if p.values is None else p.size
            us = [0.5] if n == 1 else ([(j + 0.5) / n for j in range(int(n))] if p.values is not None
                                       else list(np.linspace(0.0, 1.0, int(n))))
            axes.append(us)
        pts, seen = [], set()
        for combo in itertools.product(*axes):
            pt = self.point(combo)
            key = tuple(sorted(pt.items()))
            if key not in seen:
                seen.add(key)
                pts.append(pt)
        return pts

    def describe(self) -> dict[str, Any]:
        if self.points is not None:
            return {"points": [dict(p) for p in self.points]}
        return {k: p.describe() for k, p in self.params.items()}


def as_domain(value: Any) -> Domain:
    """A :class:`Domain` from a Domain, a dict of Params/tuples, or a list of points."""
    if value is None:
        return Domain({})
    if isinstance(value, Domain):
        return value
    if isinstance(value, Mapping):
        params = {}
        for k, v in value.items():
            if isinstance(v, Param):
                params[k] = v
            elif isinstance(v, tuple) and len(v) == 2:
                params[k] = Param(v[0], v[1], name=k)
            elif isinstance(v, list):
                params[k] = Param(values=tuple(v), name=k)
            else:
                raise SpecError(f"domain.{k}", v, "must be a Param, a (lo, hi) pair or a list of values")
        return Domain(params)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return Domain({}, points=tuple(value))
    raise SpecError("domain", value, "must be a Domain, a dict of parameters or a list of points")
