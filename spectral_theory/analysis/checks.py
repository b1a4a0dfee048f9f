"""Checks as public API (``docs/design.md``): theory against Monte Carlo.

:func:`check_against_simulation` runs :func:`predict` and :func:`simulate`
on one scenario and returns a tidy :class:`SimulationCheck` table with one
row per (model, reported step): theory, Monte Carlo mean, standard error,
z-score ``(MC - theory) / (SE + floor / z_max)`` and verdict. The criterion is ``docs/theory.md`` §9:
``|theory - MC| <= z_max * SE + floor`` at every checkpoint (``z_max = 4``,
``floor = 1e-12``). Checkpoints of one trajectory are correlated, so the rows
are not independent tests; :func:`sign_test` looks for a systematic sign
across *configurations* (one number per configuration).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..api import predict, simulate
from ..spec import Scenario

__all__ = ["SimulationCheck", "check_against_simulation", "sign_test"]


@dataclass
class SimulationCheck:
    name: str
    rows: list[dict[str, Any]]
    reps: int
    seed: int
    z_max: float
    floor: float
    seconds: dict[str, float] = field(default_factory=dict)

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

    def table(self) -> str:
        head = f"{'model':<14} {'step':>7} {'theory':>12} {'monte carlo':>12} {'s.e.':>10} {'z':>7}  ok"
        out = [f"## {self.name}: {self.reps} replicates, seed {self.seed}, "
               f"criterion |theory - MC| <= {self.z_max:g} SE + {self.floor:g}", head, "-" * len(head)]
        for r in self.rows:
            out.append(f"{r['model']:<14} {r['step']:>7d} {r['theory']:>12.6g} {r['mc']:>12.6g} "
                       f"{r['se']:>10.3g} {r['z']:>7.2f}  {'yes' if r['ok'] else 'NO'}")
        return "\n".join(out) + "\n"


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
) -> SimulationCheck:
    """Compare predicted excess risk (and teacher disagreement) with Monte Carlo."""
    th = predict(scenario, at=at)
    mc = simulate(scenario, at=at, reps=reps, seed=seed, progress=progress)
    rows = []
    for mname, tm in th.models.items():
        mm = mc.models[mname]
        series = [("excess_risk", tm.excess_risk, mm.excess_risk, mm.excess_risk_se)]
        if tm.disagreement is not None:
            series.append(("disagreement", tm.disagreement, mm.disagreement, mm.disagreement_se))
        for qty, tv, mv, sv in series:
            for j, step in enumerate(tm.steps):
                diff = float(mv[j] - tv[j])
                se = float(sv[j])
                ok = abs(diff) <= z_max * se + floor
                # z in units of the criterion's scale: |z| <= z_max  <=>  ok. At step 0 the
                # replicates agree to round-off and the floor, not the SE, sets the scale.
                z = diff / (se + floor / z_max)
                rows.append({"model": mname if qty == "excess_risk" else f"{mname}:disagr",
                             "quantity": qty, "step": int(step), "theory": float(tv[j]),
                             "mc": float(mv[j]), "se": se, "z": z, "ok": ok})
    # put the last model's excess-risk rows last, so final_z is its last step
    last = scenario.models[-1].name
    rows.sort(key=lambda r: (r["model"] == last, r["quantity"] == "excess_risk"))
    return SimulationCheck(name=name or scenario.name, rows=rows, reps=reps, seed=seed, z_max=z_max,
                           floor=floor, seconds={"theory": th.diagnostics.get("seconds", 0.0),
                                                 "monte_carlo": mc.diagnostics.get("seconds", 0.0)})


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
