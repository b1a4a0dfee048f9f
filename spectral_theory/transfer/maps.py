"""A transfer metric over a grid of two parameters, sharing work through a prefix cache
and optionally computing rows in parallel through any ``submit``/``result`` executor."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SpecError
from ..result import as_list
from ..solvers import PrefixCache
from ..spec import Model
from .report import evaluate
from .specs import Chain, Distillation, WeakToStrong, check_spec

__all__ = ["TransferMap", "transfer_map", "set_param"]


def set_param(spec: Any, path: str, value: Any) -> Any:
    """A copy of ``spec`` with the parameter at ``path`` set to ``value``.

    Paths: ``alpha``, ``generations``, ``<model>.<field>`` for a model field of the
    spec (``teacher.capacity``, ``student.steps``, ``weak.capacity``, ``strong.schedule``;
    ``<model>.lr`` sets a constant step), ``spectrum.<field>`` (``spectrum.a``),
    ``target.<field>`` (``target.b``), ``noise``.
    """
    if not isinstance(path, str):
        raise SpecError("map parameter", path, "must be a string such as 'teacher.capacity' or 'alpha'")
    head, _, tail = path.partition(".")
    if not tail:
        if head == "noise":
            return dataclasses.replace(spec, problem=dataclasses.replace(spec.problem, noise=value))
        if head in ("alpha", "generations"):
            return dataclasses.replace(spec, **{head: value})
    elif head in ("spectrum", "target"):
        sub = getattr(spec.problem, head)
        if not dataclasses.is_dataclass(sub) or tail not in {f.name for f in dataclasses.fields(sub)}:
            raise SpecError("map parameter", path, f"{type(sub).__name__} has no field {tail!r}")
        return dataclasses.replace(spec, problem=dataclasses.replace(
            spec.problem, **{head: dataclasses.replace(sub, **{tail: value})}))
    elif isinstance(getattr(spec, head, None), Model):
        model = getattr(spec, head)
        if tail == "lr":
            from ..spec.validate import finite

            tail, value = "schedule", finite(f"map parameter {path}", value, lo=0.0, lo_open=True)
        if tail not in {f.name for f in dataclasses.fields(model)}:
            raise SpecError("map parameter", path, f"Model has no field {tail!r}")
        return dataclasses.replace(spec, **{head: dataclasses.replace(model, **{tail: value})})
    raise SpecError("map parameter", path,
                    "must be 'alpha', 'generations', 'noise', 'spectrum.<field>', 'target.<field>' "
                    "or '<model>.<field>' for a model of the spec")


@dataclass
class TransferMap:
    x_param: str
    y_param: str
    xs: list
    ys: list
    metric: str
    values: np.ndarray  # (len(xs), len(ys))
    cache_hits: int
    cache_misses: int
    #: the solver(s) that ran, ``+``-joined (as in a transfer report)
    method: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x_param, "y": self.y_param, "xs": list(self.xs), "ys": list(self.ys),
                "metric": self.metric, "values": [as_list(r) for r in self.values], "method": self.method,
                "cache": {"hits": self.cache_hits, "misses": self.cache_misses}}

    def to_csv(self) -> str:
        lines = [f"{self.x_param},{self.y_param},{self.metric}"]
        for i, x in enumerate(self.xs):
            for j, y in enumerate(self.ys):
                lines.append(f"{x},{y},{self.values[i, j]:.12g}")
        return "\n".join(lines) + "\n"


def _map_row(spec, xp: str, xv: Any, yp: str, ys: Sequence, metric: str,
             cache: PrefixCache | None, method: str = "auto") -> tuple[list[float], int, int, set[str]]:
    """One row of a map (fixed x): values over ``ys``, the cache's hits and misses, and the
    solvers that ran."""
    cache = cache if cache is not None else PrefixCache()
    h0, m0 = cache.hits, cache.misses
    sx = set_param(spec, xp, xv)
    row, ran = [], set()
    for yv in ys:
        rep = evaluate(set_param(sx, yp, yv), method=method, cache=cache)
        if metric not in rep.metrics:
            raise SpecError("metric", metric, f"must be one of {sorted(rep.metrics)}")
        row.append(float(rep.metrics[metric]))
        ran.update(rep.method.split("+"))
    return row, cache.hits - h0, cache.misses - m0, ran


def transfer_map(spec: Distillation | WeakToStrong | Chain, x: tuple[str, Sequence], y: tuple[str, Sequence],
                 *, metric: str | None = None, cache: PrefixCache | None = None,
                 executor: Any = None, method: str = "auto") -> TransferMap:
    """A metric (default: ``kd_gain`` for distillation, ``pgr`` for weak-to-strong,
    ``final_over_first`` for chains) over a grid of two parameters (see ``_set_param``).

    Work shared by grid points (a teacher shared by a row, a hard-label student
    shared by a column) is done once, through a shared :class:`PrefixCache`.
    ``executor``: anything with ``submit(fn, *args)`` returning futures with ``result()``
    (a :class:`concurrent.futures.ProcessPoolExecutor`, or a ``dask.distributed.Client``
    with the ``sweeps`` extra) computes the rows in parallel, each with its own cache
    (work is then shared within a row only). ``method``: the theory solver of every grid
    point, as in :func:`spectral_theory.predict` (the map names what ran).
    """
    check_spec(spec)
    for label, axis in (("x", x), ("y", y)):
        if (not isinstance(axis, (tuple, list)) or len(axis) != 2 or not isinstance(axis[0], str)
                or isinstance(axis[1], (str, bytes)) or not isinstance(axis[1], Sequence | np.ndarray)
                or len(axis[1]) == 0):
            raise SpecError(label, axis, "must be a pair (parameter path, non-empty list of values), "
                                         "e.g. ('teacher.capacity', [50, 100])")
    if metric is not None and not isinstance(metric, str):
        raise SpecError("metric", metric, "must be the name of a metric of the comparison's report")
    metric = metric or {"kd": "kd_gain", "w2s": "pgr", "chain": "final_over_first"}[spec.kind]
    (xp, xs), (yp, ys) = x, y
    if executor is None:
        cache = cache if cache is not None else PrefixCache()
        rows = [_map_row(spec, xp, xv, yp, ys, metric, cache, method) for xv in xs]
    else:
        if cache is not None:
            raise SpecError("cache", "PrefixCache", "cannot be shared with an executor's workers")
        futures = [executor.submit(_map_row, spec, xp, xv, yp, list(ys), metric, None, method) for xv in xs]
        rows = [f.result() for f in futures]
    vals = np.array([r[0] for r in rows], dtype=float).reshape(len(xs), len(ys))
    return TransferMap(xp, yp, list(xs), list(ys), metric, vals, sum(r[1] for r in rows),
                       sum(r[2] for r in rows), method="+".join(sorted(set().union(*(r[3] for r in rows)))))


