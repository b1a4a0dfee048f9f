"""Checks as public API (``docs/design.md``): theory against Monte Carlo.

:func:`check_against_simulation` runs :func:`predict` and :func:`simulate`
on one scenario and returns a tidy :class:`SimulationCheck` table with one
row per (model, reported step): theory, Monte Carlo mean, standard error,
z-score ``(MC - theory) / (SE + floor / z_max)`` and verdict. The criterion is ``docs/theory.md`` §9:
``|theory - MC| <= z_max * SE + floor`` at every checkpoint (``z_max = 4``,
``floor = 1e-12``). Checkpoints of one trajectory are correlated, so the rows
are not independent tests; :func:`sign_test` looks for a systematic sign
across *configurations* (one number per configuration).

Each row also carries the simulation's bootstrap interval (``ci_low``, ``ci_high``, level
``SimulationCheck.ci_level``), whether it covers the theory (``covered``) and whether the normal
interval is unreliable there (``heavy_tailed``: the heavy-tail rule of ``docs/montecarlo.md``).
:func:`compare` is the same table for a user's scenario (the CLI's compare mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..api import predict, simulate
from ..spec import Scenario
from ..stability import DEFAULT_ON_UNSTABLE

__all__ = ["SimulationCheck", "check_against_simulation", "compare", "sign_test"]

#: columns of :meth:`SimulationCheck.to_csv` (and keys of each row)
COLUMNS = ("model", "quantity", "step", "theory", "mc", "se", "ci_low", "ci_high", "z", "ok", "covered",
           "heavy_tailed")


@dataclass
class SimulationCheck:
    name: str
    rows: list[dict[str, Any]]
    reps: int
    seed: int
    z_max: float
    floor: float
    seconds: dict[str, float] = field(default_factory=dict)
    ci_level: float | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r["ok"] for r in self.rows)

    @property
    def max_abs_z(self) -> float:
        return max((abs(r["z"]) for r in self.rows), default=0.0)

    @property
    def final_z(self) -> float:
        """z-score of the last model's last reported step (one number per configuration)."""
        return self.rows[-1]["z"]

    @property
    def coverage(self) -> float:
        """Fraction of rows whose bootstrap interval covers the theory."""
        rows = [r for r in self.rows if r.get("covered") is not None]
        return sum(r["covered"] for r in rows) / len(rows) if rows else float("nan")

    def table(self) -> str:
        level = f"{100 * self.ci_level:g}% interval" if self.ci_level else "interval"
        head = (f"{'model':<14} {'step':>7} {'theory':>12} {'monte carlo':>12} {'s.e.':>10} "
                f"{level:>25} {'z':>7}  ok")
        out = [f"## {self.name}: {self.reps} replicates, seed {self.seed}, "
               f"criterion |theory - MC| <= {self.z_max:g} SE + {self.floor:g}; "
               "interval: studentized bootstrap (* = normal interval unreliable)", head, "-" * len(head)]
        for r in self.rows:
            ci = "" if r.get("ci_low") is None else f"[{r['ci_low']:.6g}, {r['ci_high']:.6g}]"
            ci += "*" if r.get("heavy_tailed") else " "
            out.append(f"{r['model']:<14} {r['step']:>7d} {r['theory']:>12.6g} {r['mc']:>12.6g} "
                       f"{r['se']:>10.3g} {ci:>25} {r['z']:>7.2f}  {'yes' if r['ok'] else 'NO'}")
        return "\n".join(out) + "\n"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready contents (every row, the criterion and the interval's level)."""
        return {"name": self.name, "reps": self.reps, "seed": self.seed, "z_max": self.z_max,
                "floor": self.floor, "ci_level": self.ci_level, "passed": self.passed,
                "max_abs_z": self.max_abs_z, "rows": [{k: r.get(k) for k in COLUMNS} for r in self.rows],
                "warnings": list(self.warnings)}

    def to_csv(self) -> str:
        """One line per row, columns :data:`COLUMNS`."""
        import csv
        import io

        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: ("" if r.get(k) is None else (f"{r[k]:.12g}" if isinstance(r[k], float) else r[k]))
                        for k in COLUMNS})
        return buf.getvalue()


def check_against_simulation(
    scenario: Scenario,
    *,
    reps: int,
    seed: int,
    at: Sequence[int] | None = None,
    z_max: float = 4.0,
    floor: float = 1e-12,
    progress: bool | None = False,
    name: str | None = None,
    method: str = "auto",
    on_unstable: str = DEFAULT_ON_UNSTABLE,
) -> SimulationCheck:
    """Compare predicted excess risk (and teacher disagreement) with Monte Carlo (``method``:
    the theory's solver, as in :func:`~spectral_theory.predict`)."""
    th = predict(scenario, at=at, method=method, on_unstable=on_unstable)
    mc = simulate(scenario, at=at, reps=reps, seed=seed, progress=progress, on_unstable=on_unstable)
    heavy = mc.diagnostics.get("heavy_tail", {})
    rows = []
    for mname, tm in th.models.items():
        mm = mc.models[mname]
        series = [("excess_risk", tm.excess_risk, mm.excess_risk, mm.excess_risk_se,
                   mm.excess_risk_ci_low, mm.excess_risk_ci_high)]
        if tm.disagreement is not None:
            series.append(("disagreement", tm.disagreement, mm.disagreement, mm.disagreement_se,
                           mm.disagreement_ci_low, mm.disagreement_ci_high))
        if tm.last_iterate is not None and mm.last_iterate is not None:  # averaged models (theory §10)
            li = mm.last_iterate
            series.append(("last_iterate", tm.last_iterate["excess_risk"], li["excess_risk"], li["excess_risk_se"],
                           li.get("excess_risk_ci_low"), li.get("excess_risk_ci_high")))
        for qty, tv, mv, sv, lo, hi in series:
            flagged = set(heavy.get(mname, {}).get(qty, {}).get("steps", []))
            for j, step in enumerate(tm.steps):
                diff = float(mv[j] - tv[j])
                se = float(sv[j])
                ok = abs(diff) <= z_max * se + floor
                # z in units of the criterion's scale: |z| <= z_max  <=>  ok. At step 0 the
                # replicates agree to round-off and the floor, not the SE, sets the scale.
                z = diff / (se + floor / z_max)
                ci_low = None if lo is None else float(lo[j])
                ci_high = None if hi is None else float(hi[j])
                rows.append({"model": {"excess_risk": mname, "disagreement": f"{mname}:disagr"}.get(
                                 qty, f"{mname}:last"),
                             "quantity": qty, "step": int(step), "theory": float(tv[j]),
                             "mc": float(mv[j]), "se": se, "z": z, "ok": ok,
                             "ci_low": ci_low, "ci_high": ci_high,
                             "covered": None if lo is None else bool(
                                 ci_low - floor <= float(tv[j]) <= ci_high + floor),
                             "heavy_tailed": int(step) in flagged})
    # put the last model's excess-risk rows last, so final_z is its last step
    last = scenario.models[-1].name
    rows.sort(key=lambda r: (r["model"] == last, r["quantity"] == "excess_risk"))
    return SimulationCheck(name=name or scenario.name, rows=rows, reps=reps, seed=seed, z_max=z_max,
                           floor=floor, seconds={"theory": th.diagnostics.get("seconds", 0.0),
                                                 "monte_carlo": mc.diagnostics.get("seconds", 0.0)},
                           ci_level=mc.ci_level,
                           warnings=list(dict.fromkeys(th.diagnostics.get("warnings", [])
                                                       + mc.diagnostics.get("warnings", []))))


def compare(
    scenario: Scenario,
    *,
    reps: int = 1000,
    seed: int = 0,
    at: Sequence[int] | None = None,
    method: str = "auto",
    z_max: float = 4.0,
    floor: float = 1e-12,
    progress: bool | None = None,
    on_unstable: str = DEFAULT_ON_UNSTABLE,
) -> SimulationCheck:
    """Theory against Monte Carlo for one scenario, as a table: per model, quantity (excess
    risk; disagreement with the teacher for students) and reported step, the theory, the Monte
    Carlo mean, its standard error, its bootstrap interval and ``z`` (the rows of
    :func:`check_against_simulation`, whose criterion gives ``ok``). ``table()``, ``to_csv()``
    and ``to_dict()`` print it; ``warnings`` holds the theory's and the simulation's warnings
    (also issued as Python warnings). ``progress``: as in :func:`~spectral_theory.simulate`."""
    return check_against_simulation(scenario, reps=reps, seed=seed, at=at, z_max=z_max, floor=floor,
                                    progress=progress, name=scenario.name, method=method,
                                    on_unstable=on_unstable)


def sign_test(z_scores: Sequence[float]) -> dict[str, float]:
    """Two-sided binomial sign test of ``MC - theory`` across configurations.

    Returns the counts and the p-value of seeing at least that imbalance
    under no systematic sign; a small p-value (say < 0.01) flags a bias.
    """
    from scipy.stats import binomtest

    zs = [z for z in z_scores if z != 0.0]
    n = len(zs)
    pos = sum(1 for z in zs if z > 0)
    p_value = float(binomtest(pos, n, 0.5).pvalue) if n else 1.0
    return {"n": n, "positive": pos, "negative": n - pos, "p_value": p_value}
