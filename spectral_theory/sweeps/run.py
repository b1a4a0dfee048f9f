"""``spectral_theory.sweep``: every point of a design computed once, in batches that share a
trained prefix, on any executor, written crash-safely and assembled into tidy tables
(``docs/sweeps.md``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SpecError
from .compute import TRANSIENT_ERRORS, run_batch
from .design import is_full_grid, parse_design
from .executors import run_tasks
from .spec import Sweep, SweepPoint, load_sweep, make_sweep, sweep_from_dict
from .store import RESULT_FIRST, Store, column_types, frame, read_table

__all__ = ["sweep", "SweepResult", "read_results", "to_xarray", "resolve_sweep", "make_batches"]


@dataclass
class SweepResult:
    """A finished sweep: ``table`` (one row per design point: ``point``, the design fields,
    ``status``, ``error_type``, ``error``, ``method``, ``warnings``, the recorded quantities,
    ``point_hash``), ``curves`` (long table: ``point``, the design fields, ``model``, ``step``,
    ``excess_risk``, ``bias``, ``variance``, ``disagreement``; ``None`` unless ``curves`` was
    recorded), the output directory ``path`` and the counts of this run (``computed``,
    ``reused``: found done in the directory, ``failed``: points recorded with an error)."""

    sweep: Sweep
    path: Path
    table: Any
    curves: Any = None
    counts: dict[str, int] = field(default_factory=dict)
    executor: str = "serial"

    def to_xarray(self) -> Any:
        """The table as an ``xarray.Dataset`` over the design's fields (full grids only)."""
        return to_xarray(self.table, self.sweep.fields if self.sweep else None,
                         full_grid=is_full_grid(self.sweep.blocks))

    def summary(self) -> str:
        """What ran and where the tables are (the CLI's report)."""
        c = self.counts
        where = f" on {self.executor}" if self.executor else "; nothing left to compute"
        lines = [f"# sweep {self.sweep.name}: {c['points']} points ({c['computed']} computed, {c['reused']} "
                 f"already done, {c['failed']} failed){where}",
                 f"results: {self.path / ('results.' + self.sweep.format)}"]
        if self.curves is not None:
            lines.append(f"curves:  {self.path / ('curves.' + self.sweep.format)}")
        if c["failed"]:
            errs = self.table[self.table["status"] == "error"]
            for _, r in errs.head(5).iterrows():
                lines.append(f"  point {r['point']}: {r['error_type']}: {r['error']}")
            if len(errs) > 5:
                lines.append(f"  ... and {len(errs) - 5} more (column 'error')")
        return "\n".join(lines) + "\n"


def resolve_sweep(spec: Any = None, *, base: Any = None, design: Any = None, out: Any = None,
                  **options: Any) -> Sweep:
    """A :class:`Sweep` from a sweep file path, a sweep file's contents (a dict), a Sweep, or
    ``base`` and ``design`` (a design table or a list of blocks, as in a sweep file) with the
    Sweep's options; ``out`` overrides the output directory."""
    import dataclasses

    if spec is not None:
        if base is not None or design is not None:
            raise SpecError("base", base, "give either a sweep (file, dict or Sweep) or base and design, not both")
        if options:
            k = next(iter(options))
            raise SpecError(k, options[k], "is set by the sweep file; pass base and design to set options here")
        if isinstance(spec, (str, Path)):
            sw = load_sweep(spec)
        elif isinstance(spec, dict):
            sw = sweep_from_dict(spec)
        elif isinstance(spec, Sweep):
            sw = spec
        else:
            raise SpecError("sweep", spec, "must be a sweep file path, a sweep file's contents or a Sweep")
    else:
        if base is None or design is None:
            raise SpecError("base" if base is None else "design", None,
                            "is required (or give a sweep file)")
        if isinstance(base, (str, Path)):
            from ..spec.files import read_scenario_file

            base = read_scenario_file(base)
        sw = make_sweep(base, parse_design(design), **options)
    if out is not None:
        sw = dataclasses.replace(sw, out=Path(out))
    if sw.out is None:
        raise SpecError("out", None, "is required: the output directory of the sweep")
    return sw


def check_max_memory(value: Any) -> None:
    """``max_memory``: ``"worker"``, ``None`` or a number of bytes >= 1."""
    if value == "worker" or value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError("max_memory", value, "must be a number of bytes >= 1, None (no limit) or 'worker' (half "
                                             "the memory available on each worker)")


def make_batches(points: list[SweepPoint], size: int) -> list[list[SweepPoint]]:
    """Points in batches of at most ``size``: points sharing a trained prefix (the same
    ``group``) together, groups in order of first appearance. Deterministic: the same points
    give the same batches whatever the executor."""
    groups: dict[str, list[SweepPoint]] = {}
    for p in points:
        groups.setdefault(p.group, []).append(p)
    out = []
    for g in groups.values():
        for i in range(0, len(g), size):
            out.append(g[i:i + size])
    return out


def batch_key(points: list[SweepPoint]) -> str:
    """The name of a batch's part file: a hash of its points' hashes."""
    return hashlib.sha256("".join(p.hash for p in points).encode()).hexdigest()[:32]


def sweep(spec: Any = None, *, base: Any = None, design: Any = None, out: Any = None,
          workers: int | None = None, cluster: str | None = None, scheduler: str | None = None,
          client: Any = None, progress: bool | None = None, dashboard: bool = True,
          max_memory: Any = "worker",
          **options: Any) -> SweepResult:
    """Run a sweep (``docs/sweeps.md``): every point of its design not already in its output
    directory is computed, in batches sharing trained prefixes, on the chosen executor
    (serial; ``workers=N``: a process pool; ``cluster="local:N"``: a dask LocalCluster;
    ``scheduler="tcp://HOST:PORT"`` or ``client``: an existing dask cluster). Results are
    identical, bit for bit, whatever the executor.

    ``spec``: a sweep file (path), its contents (dict) or a :class:`Sweep`; or ``base`` (a
    scenario file path or contents, a ``Scenario``, ``Distillation``, ``WeakToStrong`` or
    ``Chain``) and ``design`` (a design table or list of blocks) with the options of a sweep
    file's ``[sweep]`` table as keywords (``kind``, ``record``, ``at``, ``method``,
    ``on_unstable``, ``batch_size``, ``format``, ``name``). ``out``: the output directory
    (default: the sweep file's). Finished batches are saved as they arrive; an interrupted
    sweep resumes where it stopped when run again. ``progress``: a bar on standard error
    (``None``: when it is a terminal). ``max_memory``: each point's memory budget in bytes,
    checked on the worker against the estimate of ``spectral_theory.budget`` before anything is
    allocated (``"worker"``: half the memory available on the worker; ``None``: no limit); a
    point over it is an error row (``BudgetError``) that the next run computes again.
    """
    from .. import __version__

    check_max_memory(max_memory)
    sw = resolve_sweep(spec, base=base, design=design, out=out, **options)
    points = sw.points()
    with Store(sw.out, sw.format) as store:
        done: dict[str, tuple[dict, list]] = {}
        for doc in store.read_parts():
            for h, row, curves in doc.get("points", []):
                if row.get("error_type") not in TRANSIENT_ERRORS:  # else computed again
                    done[h] = (row, curves)
        reused = len({p.hash for p in points if p.hash in done})
        todo: list[SweepPoint] = []
        seen: set[str] = set()
        failed_early = []
        for p in points:
            if p.hash in done or p.hash in seen:
                continue
            seen.add(p.hash)
            (failed_early if p.error is not None else todo).append(p)
        batches = make_batches(todo, sw.batch_size)
        # a worker of another version refuses (compute.py); the memory budget is not part of a
        # point's hash (a point refused for memory is computed again by the next run)
        cfg = {**sw.config(), "version": __version__, "max_memory": max_memory}
        tasks = [(batch_key(b), ([(p.hash, p.payload) for p in b], cfg)) for b in batches]
        def save(key: str, result: list) -> int:
            store.write_part(key, {"version": __version__,
                                   "points": [[h, row, curves] for h, row, curves in result]})
            for h, row, curves in result:
                done[h] = (row, curves)
            return len(result)

        executor_label = run_tasks(run_batch, tasks, save, total=len(todo), progress=progress,
                                   label=f"sweep {sw.name}", unit="batches", idle_label="",  # nothing to compute
                                   executor=dict(workers=workers, cluster=cluster, scheduler=scheduler,
                                                 client=client, dashboard=dashboard))
        if failed_early:  # a payload that could not even be built: its error is its result (saved
            # after the computed points, so that a run whose executor cannot start saves nothing)
            rows = [[p.hash, {"status": "error", "error_type": p.error[0], "error": p.error[1], "method": "",
                              "warnings": ""}, []] for p in failed_early]
            store.write_part(batch_key(failed_early), {"version": __version__, "points": rows})
            done.update({h: (r, c) for h, r, c in rows})
        result = assemble(sw, points, done, store)
        result.counts.update(computed=len(todo) + len(failed_early), reused=reused)
        result.executor = executor_label
        return result


def assemble(sw: Sweep, points: list[SweepPoint], done: dict[str, tuple[dict, list]], store: Store) -> SweepResult:
    """The tables of the current design from the finished points (one row per design point,
    in design order), written atomically with the manifest."""
    from .. import __version__

    fields = sw.fields
    rows, curve_rows = [], []
    for p in points:
        row, curves = done[p.hash]
        rows.append({"point": p.index, **p.values, **row, "point_hash": p.hash})
        for c in curves:
            curve_rows.append({"point": p.index, **p.values, **c})
    table = frame(rows, ["point", *fields, *RESULT_FIRST])
    curves_df = None
    store.write_table("results", table)
    types = {"results": column_types(table)}
    if "curves" in sw.record:
        curves_df = frame(curve_rows, ["point", *fields, "model", "step", "excess_risk", "bias", "variance",
                                       "disagreement"])
        store.write_table("curves", curves_df)
        types["curves"] = column_types(curves_df)
    else:
        store.remove_table("curves")  # another sweep's curves in this directory: not this one's
    failed = int((table["status"] == "error").sum())
    store.write_manifest({"spectral_theory_version": __version__, "sweep": sw.describe(),
                          "points": len(points), "failed": failed, "columns": types,
                          "xarray_view": is_full_grid(sw.blocks)})
    return SweepResult(sw, store.root, table, curves_df, counts={"points": len(points), "failed": failed})


def read_results(path: str | Path, *, curves: bool = False) -> Any:
    """A sweep's results table (or, with ``curves=True``, its long curves table) as a pandas
    DataFrame: ``path`` is its output directory or a table file."""
    return read_table(path, "curves" if curves else "results")


def to_xarray(table: Any, fields: list[str] | None = None, *, full_grid: bool | None = None) -> Any:
    """An ``xarray.Dataset`` of a results table over its design fields (one dimension per
    field, one variable per numeric column). ``table``: a DataFrame or an output directory
    (its manifest names the fields). Only for full grids: every combination of the fields'
    values present exactly once."""
    import json

    if isinstance(table, (str, Path)):
        root = Path(table)
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
        fields = manifest["sweep"]["fields"]
        full_grid = manifest.get("xarray_view", False)
        table = read_table(root)
    if not fields:
        raise SpecError("fields", fields, "the design fields are needed (pass them, or a sweep directory)")
    if full_grid is False:
        raise SpecError("xarray view", "design", "needs a full grid design (every block of kind grid); "
                                                 "use the table itself for list, random and Sobol designs")
    df = table.drop(columns=[c for c in ("point", "point_hash") if c in table.columns])
    if df.duplicated(subset=fields).any():
        raise SpecError("xarray view", fields, "the design repeats a combination of values; a grid view "
                                               "needs each combination once")
    import numpy as np

    levels = [list(dict.fromkeys(df[f])) for f in fields]
    if int(np.prod([len(v) for v in levels])) != len(df):
        raise SpecError("xarray view", fields, "the table is not a full grid of these fields")
    return df.set_index(fields).to_xarray()
