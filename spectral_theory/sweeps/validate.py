"""Monte Carlo validation at scale (``docs/sweeps.md``, "Validation"): for every point of a
sweep, the theory and a Monte Carlo simulation of every scenario it trains (a comparison's
lineages), compared in a z-score table, with a sign test across points.

Replicates are split into blocks of a fixed size; block ``j`` of the point at design index
``i`` and its lineage ``k`` run on the seed of ``SeedSequence(seed).spawn(...)[i].spawn(...)[j]
.spawn(...)[k]`` (:func:`block_seed`), so every block's replicates depend on the seed, the
point and the block only: the z table is the same for 1 worker or 50, and a block is
computed once (its part file is keyed by its content). Statistics follow
``spectral_theory.montecarlo`` (the blocks' replicates in block order: mean, standard error,
the heavy-tail rule) and the criterion of ``docs/theory.md`` §9 (``|theory - MC| <= z_max SE
+ floor``), as :func:`spectral_theory.analysis.checks.check_against_simulation` does for one
scenario.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .compute import TRANSIENT_ERRORS, check_memory
from .executors import run_tasks
from .spec import Sweep, build_spec, check_validate_settings
from .store import Store, column_types, frame, read_table

__all__ = ["validate_sweep", "ValidationResult", "block_seed", "read_validation", "FLOOR"]

#: absolute floor of the criterion (``docs/theory.md`` §9), as in ``analysis.checks``
FLOOR = 1e-12


def block_seed(seed: int, point: int, block: int, lineage: int) -> int:
    """The integer seed of one block of one lineage of one point: the first 63 bits of the state
    of ``SeedSequence(seed, spawn_key=(point, block, lineage))``, which is the sequence
    ``SeedSequence(seed).spawn(n)[point].spawn(m)[block].spawn(l)[lineage]``."""
    ss = np.random.SeedSequence(int(seed), spawn_key=(int(point), int(block), int(lineage)))
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def _lineages(spec: Any) -> dict[str, Any]:
    from ..spec import Scenario

    return {"scenario": spec} if isinstance(spec, Scenario) else spec.lineages()


def _err(err: BaseException) -> dict[str, str]:
    return {"error_type": type(err).__name__, "error": " ".join(str(err).split())}


def theory_task(payload: Any, cfg: dict) -> dict[str, Any]:
    """The theory of every lineage of one point at the validation's steps (or its error)."""
    from ..api import predict

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spec = build_spec(payload, cfg["kind"])
            check_memory(spec, cfg)
            out: dict[str, Any] = {}
            for lname, scn in _lineages(spec).items():
                res = predict(scn, at=cfg["at"], method=cfg["method"], on_unstable=cfg["on_unstable"])
                out[lname] = {m: {"steps": [int(t) for t in r.steps],
                                  "excess_risk": [float(v) for v in r.excess_risk],
                                  "disagreement": None if r.disagreement is None else
                                  [float(v) for v in r.disagreement]}
                              for m, r in res.models.items()}
        return {"lineages": out}
    except Exception as err:  # noqa: BLE001 - recorded as the point's result
        return _err(err)


def mc_task(payload: Any, cfg: dict, point: int, block: int) -> dict[str, Any]:
    """One block of replicates of every lineage of one point (per-replicate values), or its error."""
    from ..api import resolve_at
    from ..montecarlo import run_monte_carlo

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spec = build_spec(payload, cfg["kind"])
            check_memory(spec, cfg, reps=cfg["block"])
            out: dict[str, Any] = {}
            for k, (lname, scn) in enumerate(_lineages(spec).items()):
                seed = block_seed(cfg["seed"], point, block, k)
                res = run_monte_carlo(scn, at=resolve_at(scn, cfg["at"]), reps=cfg["block"], seed=seed,
                                      progress=False, on_unstable=cfg["on_unstable"])
                out[lname] = {m: {"steps": [int(t) for t in r.steps],
                                  "excess_risk": r.replicates.excess_risk.tolist(),
                                  "disagreement": None if r.replicates.disagreement is None else
                                  r.replicates.disagreement.tolist()}
                              for m, r in res.models.items()}
        return {"lineages": out}
    except Exception as err:  # noqa: BLE001
        return _err(err)


def _run(task: tuple) -> dict[str, Any]:
    """One task (``("theory", payload, cfg)`` or ``("mc", payload, cfg, point, block)``)."""
    from .compute import check_version

    check_version(task[2])
    if task[0] == "theory":
        return theory_task(*task[1:])
    return mc_task(*task[1:])


@dataclass
class ValidationResult:
    """The z table (one row per point, lineage, model, quantity and reported step: ``theory``,
    ``mc``, ``se``, ``z``, ``ok``, ``heavy_tailed``), the per-configuration ``finals`` (the z of
    each lineage's last model at its last step, one number per point and lineage), the
    ``sign_test`` across them, and where they were written."""

    sweep: Sweep
    path: Path
    table: Any
    finals: Any
    sign_test: dict[str, Any]
    settings: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    executor: str = "serial"

    @property
    def passed(self) -> bool:
        """Every row within the criterion and no systematic sign across configurations (sign
        test p >= 0.01). Points whose theory or simulation failed (an invalid combination, an
        unstable step) are not validated: ``counts["failed"]`` and the finals table list them."""
        ok = self.table["ok"].astype(bool).all() if len(self.table) else True
        return bool(ok) and self.sign_test["p_value"] >= 0.01

    def summary(self) -> str:
        """The per-configuration table and the verdict (the CLI's report)."""
        s = self.settings
        t = self.table
        lines = [f"# validate-sweep {self.sweep.name}: {self.counts['points']} points, {s['reps']} replicates "
                 f"each in blocks of {s['block']}, seed {s['seed']}; criterion |theory - MC| <= "
                 f"{s['z_max']:g} SE + {FLOOR:g}; on {self.executor}"]
        fields = self.sweep.fields
        head = ["point", *fields, "lineage", "final z", "max |z|", "rows ok"]
        cells = [head]
        for _, r in self.finals.iterrows():
            cells.append([str(r["point"]), *[_cell(r[f]) for f in fields], str(r["lineage"]),
                          "" if r["status"] != "ok" else f"{r['final_z']:.2f}",
                          "" if r["status"] != "ok" else f"{r['max_abs_z']:.2f}",
                          _short(r["error"]) if r["status"] != "ok" else f"{r['rows_ok']}/{r['rows']}"])
        widths = [max(len(c[i]) for c in cells) for i in range(len(head) - 1)] + [len(head[-1])]
        for k, c in enumerate(cells):
            lines.append("  ".join(x.rjust(w) if i < len(head) - 1 else x for i, (x, w) in
                                   enumerate(zip(c, widths, strict=True))))
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        st = self.sign_test
        n_ok = int(t["ok"].astype(bool).sum()) if len(t) else 0
        lines.append(f"rows within the criterion: {n_ok}/{len(t)}; max |z| "
                     f"{(t['z'].abs().max() if len(t) else 0.0):.2f}; points not validated (their error above): "
                     f"{self.counts.get('failed', 0)}")
        lines.append(f"sign test over {st['n']} final z-scores: {st['positive']} positive, {st['negative']} "
                     f"negative, p = {st['p_value']:.3g}")
        lines.append(f"{'PASSED' if self.passed else 'FAILED'}; table: {self.path / ('validation.' + self.sweep.format)}")
        return "\n".join(lines) + "\n"


def _short(text: str, n: int = 100) -> str:
    return text if len(text) <= n else text[:n - 3] + "..."


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def validate_sweep(spec: Any = None, *, reps: int | None = None, block: int | None = None,
                   seed: int | None = None, z_max: float | None = None, at: Any = None, out: Any = None,
                   workers: int | None = None, cluster: str | None = None, scheduler: str | None = None,
                   client: Any = None, progress: bool | None = None, dashboard: bool = True,
                   max_memory: Any = "worker",
                   **options: Any) -> ValidationResult:
    """Theory and Monte Carlo for every point of a sweep (module docstring). ``spec`` and the
    options as in :func:`spectral_theory.sweeps.sweep`; ``reps``, ``block``, ``seed``,
    ``z_max``, ``at`` override the sweep file's ``[validate]`` table (defaults: 1000 replicates
    in blocks of 100, seed 0, z_max 4, the sweep's ``at`` or the base's output). Written to
    ``<out>/validation/`` (``validation.parquet`` or ``.csv``, ``finals``, ``summary.json``);
    finished blocks are kept, so an interrupted validation resumes. The executors are those
    of :func:`~spectral_theory.sweeps.sweep`; the z table does not depend on them. ``max_memory``
    as for :func:`~spectral_theory.sweeps.sweep` (a Monte Carlo block's estimate counts its
    ``block`` replicates)."""
    from .. import __version__
    from ..analysis.checks import sign_test
    from ..montecarlo import mean_se, skewness_check
    from .run import check_max_memory, resolve_sweep

    check_max_memory(max_memory)
    sw = resolve_sweep(spec, out=out, **options)
    settings = dict(sw.validate)
    for k, v in (("reps", reps), ("block", block), ("seed", seed), ("z_max", z_max)):
        if v is not None:
            settings[k] = v
    check_validate_settings(settings, prefix="")
    if at is not None:
        from .spec import steps_field

        settings["at"] = steps_field("at", list(at) if not isinstance(at, list) else at)
    steps = settings.get("at") or sw.at
    n_blocks = settings["reps"] // settings["block"]
    cfg = {"kind": sw.kind, "at": None if steps is None else list(steps), "method": sw.method,
           "on_unstable": sw.on_unstable, "seed": settings["seed"], "block": settings["block"],
           "version": __version__, "max_memory": max_memory}
    points = sw.points()
    first: dict[str, int] = {}
    for p in points:
        first.setdefault(p.hash, p.index)
    with Store(Path(sw.out) / "validation", sw.format) as store:
        done: dict[str, dict] = {}
        for doc in store.read_parts():
            if doc["result"].get("error_type") not in TRANSIENT_ERRORS:  # else computed again
                done[doc["key"]] = doc["result"]
        tasks, keys = [], {}
        for p in points:
            if p.error is not None or first[p.hash] != p.index:
                continue
            tk = _key("theory", p.hash, cfg["at"])
            keys[(p.hash, "theory")] = tk
            if tk not in done:
                tasks.append((tk, (("theory", p.payload, cfg),)))
            for j in range(n_blocks):
                bk = _key("mc", p.hash, cfg["at"], cfg["seed"], cfg["block"], p.index, j)
                keys[(p.hash, j)] = bk
                if bk not in done:
                    tasks.append((bk, (("mc", p.payload, cfg, p.index, j),)))
        def save(key: str, result: dict) -> int:
            store.write_part(key, {"version": __version__, "key": key, "result": result})
            done[key] = result
            return 1

        label = run_tasks(_run, tasks, save, total=len(tasks), progress=progress, label=f"validate {sw.name}",
                          unit="tasks", idle_label="serial",
                          executor=dict(workers=workers, cluster=cluster, scheduler=scheduler, client=client,
                                        dashboard=dashboard))
        # ------------------------------------------------------------ the z table
        fields = sw.fields
        rows, finals = [], []
        failed = 0
        for p in points:
            base = {"point": p.index, **p.values}
            if p.error is not None:
                finals.append({**base, "lineage": "", "status": "error", "error": p.error[1]})
                failed += 1
                continue
            th = done[keys[(p.hash, "theory")]]
            blocks = [done[keys[(p.hash, j)]] for j in range(n_blocks)]
            bad = next((b for b in [th, *blocks] if "error" in b), None)
            if bad is not None:
                finals.append({**base, "lineage": "", "status": "error", "error": f"{bad['error_type']}: {bad['error']}"})
                failed += 1
                continue
            for lname, models in th["lineages"].items():
                lrows = []
                for mname, tq in models.items():
                    for qty in ("excess_risk", "disagreement"):
                        if tq[qty] is None:
                            continue
                        x = np.concatenate([np.asarray(b["lineages"][lname][mname][qty], dtype=float)
                                            for b in blocks], axis=1)
                        mean, se, _ = mean_se(x)
                        _, needed = skewness_check(x)
                        for j, step in enumerate(tq["steps"]):
                            tv, mv, sv = tq[qty][j], float(mean[j]), float(se[j])
                            diff = mv - tv
                            lrows.append({**base, "lineage": lname, "model": mname, "quantity": qty,
                                          "step": int(step), "theory": tv, "mc": mv, "se": sv,
                                          "z": diff / (sv + FLOOR / settings["z_max"]),
                                          "ok": bool(abs(diff) <= settings["z_max"] * sv + FLOOR),
                                          "heavy_tailed": bool(settings["reps"] < needed[j]),
                                          "reps": settings["reps"]})
                rows.extend(lrows)
                last = list(models)[-1]
                fin = [r for r in lrows if r["model"] == last and r["quantity"] == "excess_risk"][-1]
                finals.append({**base, "lineage": lname, "status": "ok", "error": "", "repeat_of": first[p.hash],
                               "final_z": fin["z"],
                               "max_abs_z": max(abs(r["z"]) for r in lrows),
                               "rows_ok": sum(r["ok"] for r in lrows), "rows": len(lrows)})
        table = frame(rows, ["point", *fields, "lineage", "model", "quantity", "step", "theory", "mc", "se",
                             "z", "ok", "heavy_tailed", "reps"])
        finals_df = frame(finals, ["point", *fields, "lineage", "status", "error", "repeat_of", "final_z",
                                   "max_abs_z", "rows_ok", "rows"])
        # one number per configuration: a point the design repeats (the same content hash) counts once
        st = sign_test([f["final_z"] for f in finals if f["status"] == "ok" and f["repeat_of"] == f["point"]])
        store.write_table("validation", table)
        store.write_table("finals", finals_df)
        summary = {"spectral_theory_version": __version__, "sweep": sw.describe(),
                   "settings": {**settings, "at": cfg["at"]}, "points": len(points), "failed": failed,
                   "rows": len(table), "rows_ok": int(table["ok"].astype(bool).sum()) if len(table) else 0,
                   "max_abs_z": float(table["z"].abs().max()) if len(table) else 0.0, "sign_test": st,
                   "columns": {"validation": column_types(table), "finals": column_types(finals_df)}}
        store.write_manifest({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                              for k, v in summary.items()})
        res = ValidationResult(sw, store.root, table, finals_df, st, {**settings, "at": cfg["at"]},
                               counts={"points": len(points), "failed": failed, "tasks": len(tasks)},
                               executor=label)
        return res


def read_validation(path: str | Path, *, finals: bool = False) -> Any:
    """A validation's z table (or its per-configuration ``finals``) as a pandas DataFrame:
    ``path`` is the sweep's output directory, its ``validation`` subdirectory or a table."""
    path = Path(path)
    if path.is_dir() and (path / "validation").is_dir():
        path = path / "validation"
    return read_table(path, "finals" if finals else "validation")
