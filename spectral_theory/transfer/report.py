"""Evaluating a comparison: every model it needs trained by theory or Monte Carlo, the
metrics a paper reports and the per-mode picture that explains them (``docs/theory.md`` §8).

Per model, at the end of its training: normalised error ``M_gg,i / theta_i^2`` (undefined
where ``theta_i = 0``) with bias and variance parts; the spectral horizon (largest 1-based
mode index with ``theta_i > 0`` and normalised error ``<= 1/2``, 0 if none); oracle stopping
``argmin_t E_g(t)`` and the risk there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..api import predict, resolve_at, resolve_solver
from ..api import simulate as run_simulation
from ..errors import SpecError
from ..result import CONVENTIONS, Result, as_list, jsonable, save_npz
from ..solvers import PrefixCache
from ..spec import Scenario
from ..stability import DEFAULT_ON_UNSTABLE
from .oracle import OracleStop, exhaustive, from_curve, search
from .specs import Chain, Distillation, WeakToStrong, check_spec

__all__ = ["ModelSummary", "TransferReport", "spectral_horizon", "evaluate"]


def spectral_horizon(second_moment: np.ndarray, theta2: np.ndarray, threshold: float = 0.5) -> int:
    """Largest 1-based mode index with ``theta_i > 0`` and ``M_i / theta_i^2 <= threshold`` (0 if none)."""
    t = np.asarray(theta2, dtype=float)
    m = np.asarray(second_moment, dtype=float)
    ok = (t > 0) & (m <= threshold * t)
    idx = np.flatnonzero(ok)
    return int(idx[-1] + 1) if idx.size else 0


@dataclass
class ModelSummary:
    """One model of a comparison: final and oracle risk, horizon, per-mode profile."""

    name: str
    final_risk: float
    final_bias: float | None
    final_variance: float | None
    oracle_step: int
    oracle_risk: float
    horizon: int
    normalised: np.ndarray
    normalised_bias: np.ndarray | None
    normalised_variance: np.ndarray | None
    final_se: float | None = None
    oracle_over: str = "every step"
    #: Monte Carlo: bootstrap intervals (``docs/montecarlo.md``, "Uncertainty"); None for theory
    final_ci: list[float] | None = None
    oracle_step_ci: list[int] | None = None
    oracle_risk_ci: list[float] | None = None
    horizon_ci: list[int] | None = None

    def to_dict(self, *, modes: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "final_risk": self.final_risk, "final_bias": self.final_bias,
            "final_variance": self.final_variance, "oracle_step": self.oracle_step,
            "oracle_risk": self.oracle_risk, "oracle_over": self.oracle_over, "horizon": self.horizon,
        }
        if self.final_se is not None:
            out["final_se"] = self.final_se
        for k in ("final_ci", "oracle_step_ci", "oracle_risk_ci", "horizon_ci"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        if modes:
            out["normalised_error"] = as_list(self.normalised)
            if self.normalised_bias is not None:
                out["normalised_bias"] = as_list(self.normalised_bias)
                out["normalised_variance"] = as_list(self.normalised_variance)
        return out


@dataclass
class TransferReport:
    kind: str
    method: str
    spec: Any
    models: dict[str, ModelSummary]
    metrics: dict[str, Any]
    profiles: dict[str, np.ndarray]
    results: dict[str, Result]
    conventions: dict[str, str] = field(default_factory=lambda: dict(CONVENTIONS))

    def __getitem__(self, key: str) -> Any:
        try:
            return self.metrics[key]
        except (KeyError, TypeError):
            from ..errors import UnknownNameError

            raise UnknownNameError("report", key, list(self.metrics), "metrics") from None

    def to_dict(self, *, modes: bool = False) -> dict[str, Any]:
        """JSON-ready contents; ``modes``: also the per-mode arrays (each model's normalised
        error and its parts, the metric's profiles; ``d`` numbers each: opt-in, see
        :meth:`save_npz` for a compact binary copy)."""
        out = {"kind": self.kind, "method": self.method, "metrics": jsonable(self.metrics),
               "models": {k: v.to_dict(modes=modes) for k, v in self.models.items()},
               "curves": {name: m.to_dict(modes=False) for r in self.results.values()
                          for name, m in r.models.items()},
               "conventions": self.conventions, "spec": self.spec.describe()}
        for m in out["curves"].values():
            m.pop("curve", None)
        if modes:
            out["profiles"] = {k: as_list(v) for k, v in self.profiles.items()}
        return out

    def to_json(self, *, modes: bool = False) -> str:
        return json.dumps(self.to_dict(modes=modes), indent=2, allow_nan=False)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of the report: ``"models/<model>/<array>"`` (per-mode normalised error,
        bias and variance), ``"profiles/<name>"`` and ``"curves/<model>/<array>"`` (each
        trained model's arrays, :meth:`~spectral_theory.result.ModelResult.arrays`)."""
        out: dict[str, np.ndarray] = {}
        for name, m in self.models.items():
            for k, v in (("normalised_error", m.normalised), ("normalised_bias", m.normalised_bias),
                         ("normalised_variance", m.normalised_variance)):
                if v is not None:
                    out[f"models/{name}/{k}"] = np.asarray(v)
        out.update({f"profiles/{k}": np.asarray(v) for k, v in self.profiles.items()})
        for r in self.results.values():
            for name, m in r.models.items():
                out.update({f"curves/{name}/{k}": v for k, v in m.arrays().items()})
        return out

    def save_npz(self, file: Any) -> None:
        """Write :meth:`arrays` as an uncompressed numpy ``.npz`` archive (a path, written as
        named, or a binary file object)."""
        save_npz(file, self.arrays())

    def table(self) -> str:
        lines = [f"# {self.kind} ({self.method}); excess risk sum_i (phi_i - theta_i)^2, not halved"]
        head = f"{'model':<16} {'final risk':>12} {'bias':>11} {'variance':>11} {'oracle step':>12} " \
               f"{'oracle risk':>12} {'horizon':>8}"
        lines += [head, "-" * len(head)]
        for name, m in self.models.items():
            fin = f"{m.final_risk:.6g}" + (f"+-{m.final_se:.1g}" if m.final_se else "")
            lines.append(f"{name:<16} {fin:>12} {_f(m.final_bias):>11} {_f(m.final_variance):>11} "
                         f"{m.oracle_step:>12d} {m.oracle_risk:>12.6g} {m.horizon:>8d}")
        cis = [(name, m) for name, m in self.models.items() if m.oracle_step_ci is not None]
        if cis:
            level = self.metrics.get("uncertainty", {}).get("level", 0.95)
            lines.append(f"{100 * level:g}% bootstrap intervals:")
            for name, m in cis:
                lines.append(f"  {name:<14} final {_f(m.final_ci)}  oracle step {_f(m.oracle_step_ci)}  "
                             f"oracle risk {_f(m.oracle_risk_ci)}  horizon {_f(m.horizon_ci) or 'n/a'}")
        lines.append("")
        for k, v in self.metrics.items():
            if isinstance(v, list):
                lines.append(f"{k:<28} " + " ".join(_f(x) for x in v))
            elif not isinstance(v, dict):
                lines.append(f"{k:<28} {_f(v)}")
        return "\n".join(lines) + "\n"


def _f(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{v:.6g}"
    if isinstance(v, list):  # an interval
        return "[" + ", ".join(_f(x) for x in v) + "]"
    return str(v)


def _summary(res: Result, name: str, theta2: np.ndarray, oracle: OracleStop | None) -> ModelSummary:
    m = res.models[name]
    if oracle is not None:
        oracle_step, oracle_risk, over = oracle.step, oracle.risk, oracle.how
    else:
        j = int(np.argmin(m.excess_risk))
        oracle_step, oracle_risk, over = int(m.steps[j]), float(m.excess_risk[j]), "reported steps"
    t = np.asarray(theta2, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # nan where theta_i = 0, or where theta_i^2 is too small to divide by (the ratio overflows)
        norm = lambda v: None if v is None else np.where(  # noqa: E731
            t > 0, np.nan_to_num(v / np.where(t > 0, t, 1.0), nan=np.nan, posinf=np.nan, neginf=np.nan), np.nan)
        prof = m.modes
        return ModelSummary(
            name=name, final_risk=float(m.excess_risk[-1]),
            final_bias=None if m.bias is None else float(m.bias[-1]),
            final_variance=None if m.variance is None else float(m.variance[-1]),
            oracle_step=oracle_step, oracle_risk=oracle_risk,
            horizon=spectral_horizon(prof.second_moment, t),
            normalised=norm(prof.second_moment), normalised_bias=norm(prof.bias),
            normalised_variance=norm(prof.variance),
            final_se=None if m.excess_risk_se is None else float(m.excess_risk_se[-1]), oracle_over=over,
        )


def evaluate(
    spec: Distillation | WeakToStrong | Chain,
    *,
    method: str = "auto",
    simulate: bool = False,
    reps: int = 1000,
    seed: int = 0,
    cache: PrefixCache | None = None,
    progress: bool | None = None,
    on_unstable: str = DEFAULT_ON_UNSTABLE,
) -> TransferReport:
    """Train every model the comparison needs and compute its metrics.

    Theory by default (``method``: the solver, as in :func:`spectral_theory.predict`; oracle
    stopping over every step, :func:`oracle_stop`), or Monte Carlo with ``simulate=True``
    (``reps`` replicates; each lineage gets its own seed ``seed + k``; oracle over the
    reported steps; bootstrap intervals of every model's final risk, oracle step and risk and
    horizon and of the metrics, :mod:`~spectral_theory.transfer.uncertainty`). ``progress``: one
    bar with an ETA over all lineages (``None``: when standard error is a terminal and the
    simulations are estimated above 2 s); unless it is ``False``, simulations estimated above
    ``montecarlo.NOTE_SECONDS`` are announced on standard error first. Every model also reports
    its last step, whatever the spec's output says.
    ``cache``: a :class:`~spectral_theory.solvers.PrefixCache` shared with other calls (tuning,
    maps); ``on_unstable`` as in :func:`spectral_theory.predict`.
    """
    check_spec(spec)
    if not isinstance(simulate, bool):
        raise SpecError("simulate", simulate, "must be True (Monte Carlo) or False (theory)")
    if simulate and method != "auto":
        raise SpecError("method", method, "names a theory solver; a Monte Carlo evaluation takes none")
    results: dict[str, Result] = {}
    oracles: dict[str, OracleStop] = {}
    cache = cache if cache is not None else PrefixCache()
    bar = _progress_bar(spec, reps, progress) if simulate else None
    for k, (lname, scn) in enumerate(spec.lineages().items()):
        at = with_final(scn)
        if simulate:
            try:
                results[lname] = run_simulation(scn, at=at, reps=reps, seed=seed + k, progress=bar,
                                                on_unstable=on_unstable)
            finally:
                if k == len(spec.lineages()) - 1 or lname not in results:
                    bar.close()
            continue
        solver, why = resolve_solver(scn, method, {})
        every = exhaustive(solver, scn)
        use = cache if solver.uses_cache else None  # the ODE and continuum methods take no cache
        res = predict(scn, at=at, cache=use, method=solver, every_step=every, on_unstable=on_unstable)
        res.diagnostics["method_choice"] = why
        results[lname] = res
        at_map = resolve_at(scn, at)
        for m in scn.models:
            oracles[m.name] = (from_curve(res.models[m.name].curve) if every else
                               search(solver, scn, m.name, at_map, cache=use, on_unstable=on_unstable,
                                      reported=at_map[m.name]))
    theta2 = spec.problem.theta2
    summaries = {name: _summary(r, name, theta2, oracles.get(name))
                 for r in results.values() for name in r.models}
    metrics, profiles = _METRICS[spec.kind](spec, results, summaries)
    if simulate:
        from .uncertainty import add_uncertainty

        add_uncertainty(spec.kind, results, summaries, metrics, theta2)
    methods = sorted({r.method for r in results.values()})
    return TransferReport(kind=spec.kind, method="+".join(methods),
                          spec=spec, models=summaries, metrics=metrics, profiles=profiles, results=results)


def _progress_bar(spec: Any, reps: int, progress: bool | None):
    """One progress bar over every lineage's simulation, after the cost note (module
    ``montecarlo``)."""
    from ..montecarlo import Progress, announce, estimate_simulation_seconds

    lineages = spec.lineages()
    total = sum(estimate_simulation_seconds(scn, reps, at=with_final(scn)) for scn in lineages.values()) \
        if isinstance(reps, (int, np.integer)) and not isinstance(reps, bool) and reps >= 2 else 0.0
    if progress is not False:
        d = spec.problem.d
        announce(total, f"{reps} replicates of {len(lineages)} lineages, d = {d}")
    if progress is None:
        import sys

        progress = sys.stderr.isatty() and total > 2.0
    return Progress(total, bool(progress), label=f"simulate {spec.kind}")


def with_final(scn: Scenario) -> list[int] | None:
    """Reported steps of the scenario plus every model's last step (as one list)."""
    out = scn.output
    steps: set[int] = set()
    for m in scn.models:
        steps.update(int(t) for t in out.steps_for(m.steps))
        steps.add(m.steps)
    return sorted(steps)


def _ratio(num: float, den: float) -> float:
    """``num / den``; nan (JSON null: undefined) where ``den`` is 0, as for the PGR."""
    return num / den if den != 0 else math.nan


def _ratio_se(num: ModelSummary, den: ModelSummary) -> float | None:
    """Delta-method SE of num/den for independent estimates (separate lineages); nan where a
    risk is 0."""
    if num.final_se is None or den.final_se is None:
        return None
    if num.final_risk == 0 or den.final_risk == 0:
        return math.nan
    r = num.final_risk / den.final_risk
    return abs(r) * math.hypot(num.final_se / num.final_risk, den.final_se / den.final_risk)


def _kd_metrics(spec, results, s):
    t, kd, hard = s["teacher"], s["kd_student"], s["hard_student"]
    metrics = {
        "teacher_risk": t.final_risk, "kd_risk": kd.final_risk, "hard_risk": hard.final_risk,
        "kd_gain": _ratio(hard.final_risk, kd.final_risk),
        "kd_gain_difference": hard.final_risk - kd.final_risk,
        "kd_gain_oracle": _ratio(hard.oracle_risk, kd.oracle_risk),
        "teacher_horizon": t.horizon, "kd_horizon": kd.horizon, "hard_horizon": hard.horizon,
        "horizon_expansion": kd.horizon - hard.horizon,
        "student_teacher_disagreement": results["distilled"].disagreement["kd_student"]["teacher"],
    }
    se = _ratio_se(hard, kd)
    if se is not None:
        metrics["kd_gain_se"] = se
    profiles = {"kd_normalised": kd.normalised, "hard_normalised": hard.normalised,
                "teacher_normalised": t.normalised}
    return metrics, profiles


def _w2s_metrics(spec, results, s):
    w, st_, c = s["weak_teacher"], s["w2s_student"], s["strong_ceiling"]
    den = w.final_risk - c.final_risk
    den_o = w.oracle_risk - c.oracle_risk
    metrics = {
        "weak_risk": w.final_risk, "w2s_risk": st_.final_risk, "ceiling_risk": c.final_risk,
        "pgr": (w.final_risk - st_.final_risk) / den if den != 0 else math.nan,
        "pgr_oracle": (w.oracle_risk - st_.oracle_risk) / den_o if den_o != 0 else math.nan,
        "w2s_oracle_step": st_.oracle_step,
        "student_teacher_disagreement": results["transfer"].disagreement["w2s_student"]["weak_teacher"],
        "weak_horizon": w.horizon, "w2s_horizon": st_.horizon, "ceiling_horizon": c.horizon,
    }
    profiles: dict[str, np.ndarray] = {}
    mt = results["transfer"].models["weak_teacher"].modes
    ms = results["transfer"].models["w2s_student"].modes
    if mt.variance is not None and ms.variance is not None:
        tv, sv = mt.variance, ms.variance
        noisy = (tv > mt.bias) & (tv > 0)  # the teacher's error there is mostly noise
        denoised = noisy & (sv < tv)
        metrics.update({
            "teacher_noisy_modes": int(noisy.sum()),
            "denoised_modes": int(denoised.sum()),
            "teacher_variance_on_noisy_modes": float(tv[noisy].sum()),
            "student_variance_on_noisy_modes": float(sv[noisy].sum()),
            "teacher_variance": float(tv.sum()), "student_variance": float(sv.sum()),
        })
        profiles = {"teacher_variance": tv, "student_variance": sv,
                    "teacher_bias": mt.bias, "student_bias": ms.bias,
                    "teacher_noisy": noisy.astype(float)}
    else:  # Monte Carlo: no source split; per-mode second moments only
        profiles = {"teacher_second_moment": mt.second_moment, "student_second_moment": ms.second_moment}
    return metrics, profiles


def _chain_metrics(spec, results, s):
    names = [f"g{g}" for g in range(spec.generations)]
    risks = [s[n].final_risk for n in names]
    res = results["chain"]
    metrics = {
        "generation_risk": risks,
        "generation_growth": [_ratio(risks[g], risks[g - 1]) for g in range(1, len(risks))],
        "generation_horizon": [s[n].horizon for n in names],
        "generation_oracle_risk": [s[n].oracle_risk for n in names],
        "parent_disagreement": [res.disagreement[names[g]][names[g - 1]] for g in range(1, len(names))],
        "final_over_first": _ratio(risks[-1], risks[0]),
    }
    profiles = {f"{n}_normalised": s[n].normalised for n in names}
    return metrics, profiles


_METRICS: dict[str, Callable] = {"kd": _kd_metrics, "w2s": _w2s_metrics, "chain": _chain_metrics}


