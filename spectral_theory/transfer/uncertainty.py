"""Bootstrap uncertainty of a Monte Carlo transfer report (``docs/montecarlo.md``, "Uncertainty").

Every number of a Monte Carlo comparison is a function of means over replicates: each model's
final risk, its oracle step and risk (over the reported steps), its spectral horizon (from the
per-mode mean squared errors at the end), and the metrics built from them (KD gain, PGR, horizon
expansion, generation growth, ...). The bootstrap resamples each lineage's replicates with
replacement, **independently across lineages** (they are independent simulations) and jointly
within a lineage (a teacher and its student stay paired), recomputes every quantity from the
resampled means with the report's own formulas, and reports the percentile interval at
:data:`~spectral_theory.montecarlo.CI_LEVEL` (``BOOTSTRAP_RESAMPLES`` resamples). Integer
quantities (steps, horizons) get intervals made of values that occur in the bootstrap
distribution. A horizon is a largest index below a threshold, which replicate noise biases
upward where the normalised error crosses 1/2 slowly; its interval is widened to
:func:`horizon_band`.

Horizons need each replicate's per-mode errors (``reps * d`` numbers per model); they are kept up
to :data:`~spectral_theory.montecarlo.MAX_REPLICATE_MODES` numbers per lineage, beyond which the
horizons' intervals are not available (``metrics["uncertainty"]["horizons"]`` says so).
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..montecarlo import BOOTSTRAP_RESAMPLES, CI_LEVEL, MAX_REPLICATE_MODES, bootstrap_means
from ..result import Result

__all__ = ["add_uncertainty", "METRIC_CORES", "percentile_interval", "horizon_band", "BAND_Z"]

#: bootstrap stream of transfer reports (per-step intervals use stream 0)
_STREAM = 1


def _horizons(mean_sq: np.ndarray, theta2: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """:func:`~spectral_theory.transfer.report.spectral_horizon` of each row of ``mean_sq``."""
    t = np.asarray(theta2, dtype=float)
    ok = (t > 0) & (mean_sq <= threshold * t)
    last = ok.shape[1] - np.argmax(ok[:, ::-1], axis=1)
    return np.where(ok.any(axis=1), last, 0)


#: half-width, in standard errors, of the per-mode band of :func:`horizon_band`
BAND_Z = 2.0


def horizon_band(second_moment: np.ndarray, second_moment_se: np.ndarray, theta2: np.ndarray,
                 threshold: float = 0.5, z: float = BAND_Z) -> list[int]:
    """The horizons the per-mode errors cannot tell apart (1-based, 0 if none): each mode with
    ``theta_i > 0`` is confidently below the threshold (``M_i + z SE_i <= threshold theta_i^2``),
    confidently above (``M_i - z SE_i > threshold theta_i^2``) or ambiguous. The band runs from
    the last confidently-below mode before the first ambiguous one to the last mode not
    confidently above; if every mode's ``z``-SE interval covers its true value, it contains the
    true horizon. A horizon is a largest index below a threshold: where the normalised error
    crosses it slowly, replicate noise pushes modes past the true horizon below the threshold
    (a low mean with a low SE can even look confidently below), which biases the estimate upward
    and the percentile bootstrap with it; the band does not depend on the largest of them."""
    t = np.asarray(theta2, dtype=float)
    m = np.asarray(second_moment, dtype=float)
    se = np.asarray(second_moment_se, dtype=float)
    pos = t > 0
    below = pos & (m + z * se <= threshold * t)
    maybe = pos & (m - z * se <= threshold * t)
    ambiguous = np.flatnonzero(maybe & ~below)
    first = int(ambiguous[0]) if ambiguous.size else t.size
    lo = np.flatnonzero(below[:first])
    hi = np.flatnonzero(maybe)
    return [int(lo[-1] + 1) if lo.size else 0, int(hi[-1] + 1) if hi.size else 0]


def _hull(a: list | None, b: list | None) -> list | None:
    if a is None:
        return b
    if b is None:
        return a
    return [min(a[0], b[0]), max(a[1], b[1])]


def percentile_interval(draws: np.ndarray, level: float = CI_LEVEL, *,
                        integer: bool = False) -> list[float] | list[int] | None:
    """Percentile interval of bootstrap draws (first axis); ``None`` when more than the
    interval's tail mass of the draws is undefined (a ratio over a zero denominator).
    ``integer``: endpoints that occur among the draws (``inverted_cdf``), as ints."""
    draws = np.asarray(draws, dtype=float)
    a = (1.0 - level) / 2.0
    fin = draws[np.isfinite(draws)]
    if fin.size == 0 or (draws.size - fin.size) > a * draws.size:
        return None
    if integer:
        lo = np.quantile(fin, a, method="inverted_cdf")
        hi = np.quantile(fin, 1.0 - a, method="inverted_cdf")
        return [int(lo), int(hi)]
    lo, hi = np.quantile(fin, [a, 1.0 - a])
    return [float(lo), float(hi)]


def _ratio(num: Any, den: Any) -> Any:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, np.divide(num, np.where(den != 0, den, 1.0)), np.nan)


# The metrics with an interval, as functions of per-model quantities (``final_risk``,
# ``oracle_risk``, ``oracle_step``, ``horizon``: numbers or arrays over resamples). The same
# formulas as the report's (``report._kd_metrics`` etc.); tests/test_montecarlo_honesty.py
# checks that they reproduce the report's point values.
def _kd_core(s: dict[str, Any], horizons: bool) -> dict[str, Any]:
    t, kd, hard = s["teacher"], s["kd_student"], s["hard_student"]
    out = {"kd_gain": _ratio(hard.final_risk, kd.final_risk),
           "kd_gain_difference": hard.final_risk - kd.final_risk,
           "kd_gain_oracle": _ratio(hard.oracle_risk, kd.oracle_risk)}
    if horizons:
        out.update({"teacher_horizon": t.horizon, "kd_horizon": kd.horizon, "hard_horizon": hard.horizon,
                    "horizon_expansion": kd.horizon - hard.horizon})
    return out


def _w2s_core(s: dict[str, Any], horizons: bool) -> dict[str, Any]:
    w, st_, c = s["weak_teacher"], s["w2s_student"], s["strong_ceiling"]
    out = {"pgr": _ratio(w.final_risk - st_.final_risk, w.final_risk - c.final_risk),
           "pgr_oracle": _ratio(w.oracle_risk - st_.oracle_risk, w.oracle_risk - c.oracle_risk),
           "w2s_oracle_step": st_.oracle_step}
    if horizons:
        out.update({"weak_horizon": w.horizon, "w2s_horizon": st_.horizon, "ceiling_horizon": c.horizon})
    return out


def _chain_core(s: dict[str, Any], horizons: bool) -> dict[str, Any]:
    names = sorted((n for n in s if n[0] == "g" and n[1:].isdigit()), key=lambda n: int(n[1:]))
    risks = [s[n].final_risk for n in names]
    out = {"generation_risk": risks,
           "generation_growth": [_ratio(risks[g], risks[g - 1]) for g in range(1, len(risks))],
           "generation_oracle_risk": [s[n].oracle_risk for n in names],
           "final_over_first": _ratio(risks[-1], risks[0])}
    if horizons:
        out["generation_horizon"] = [s[n].horizon for n in names]
    return out


METRIC_CORES: dict[str, Callable[[dict[str, Any], bool], dict[str, Any]]] = {
    "kd": _kd_core, "w2s": _w2s_core, "chain": _chain_core}


def _band_metrics(kind: str, bands: dict[str, SimpleNamespace]) -> dict[str, Any]:
    """The horizon metrics' ranges implied by each model's :func:`horizon_band`."""
    h = {n: [int(b.horizon[0]), int(b.horizon[1])] for n, b in bands.items()}
    if kind == "kd":
        return {"teacher_horizon": h["teacher"], "kd_horizon": h["kd_student"], "hard_horizon": h["hard_student"],
                "horizon_expansion": [h["kd_student"][0] - h["hard_student"][1],
                                      h["kd_student"][1] - h["hard_student"][0]]}
    if kind == "w2s":
        return {"weak_horizon": h["weak_teacher"], "w2s_horizon": h["w2s_student"],
                "ceiling_horizon": h["strong_ceiling"]}
    if kind == "chain":
        names = sorted((n for n in h if n[0] == "g" and n[1:].isdigit()), key=lambda n: int(n[1:]))
        return {"generation_horizon": [h[n] for n in names]}
    return {}


def _is_integer_metric(name: str) -> bool:
    return name.endswith("_horizon") or name.endswith("_step") or name == "horizon_expansion"


def add_uncertainty(kind: str, results: dict[str, Result], summaries: dict[str, Any],
                    metrics: dict[str, Any], theta2: np.ndarray) -> None:
    """Fill the Monte Carlo report's intervals in place: each summary's ``final_ci`` (the
    simulation's own interval at the last step), ``oracle_step_ci``, ``oracle_risk_ci`` and
    ``horizon_ci``; ``metrics["<metric>_ci"]`` for every metric of :data:`METRIC_CORES`
    (a list of intervals for a per-generation list); ``metrics["uncertainty"]`` says how."""
    lineages = list(results.values())
    horizons = all(m.replicates is not None and m.replicates.final_sq_error is not None
                   for r in lineages for m in r.models.values())
    groups, seeds, layout = [], [], []
    for res in lineages:
        g: dict[str, np.ndarray] = {}
        for name, m in res.models.items():
            rep = m.replicates
            g[f"{name}/risk"] = rep.excess_risk.T  # (reps, steps)
            if horizons:
                g[f"{name}/modes"] = rep.final_sq_error  # (reps, d)
            layout.append(name)
        groups.append(g)
        seeds.append(res.seed)
    steps = {name: np.asarray(m.steps) for r in lineages for name, m in r.models.items()}

    def statistic(means: list[dict[str, np.ndarray]]) -> np.ndarray:
        cols = []
        for g in means:
            for key in g:
                if not key.endswith("/risk"):
                    continue
                name = key[:-5]
                curve = g[key]  # (n, steps); the last reported step is the model's last step
                j = np.argmin(curve, axis=1)
                cols += [curve[:, -1], steps[name][j].astype(float), curve[np.arange(curve.shape[0]), j]]
                cols.append(_horizons(g[f"{name}/modes"], theta2).astype(float) if horizons
                            else np.zeros(curve.shape[0]))
        return np.stack(cols, axis=1)

    draws = bootstrap_means(groups, statistic, seeds=seeds, resamples=BOOTSTRAP_RESAMPLES, stream=_STREAM)
    per_model: dict[str, SimpleNamespace] = {}
    for k, name in enumerate(layout):
        per_model[name] = SimpleNamespace(final_risk=draws[:, 4 * k], oracle_step=draws[:, 4 * k + 1],
                                          oracle_risk=draws[:, 4 * k + 2], horizon=draws[:, 4 * k + 3])
    bands: dict[str, SimpleNamespace] = {}
    for name, ns in per_model.items():
        sm = summaries[name]
        m = next(r.models[name] for r in lineages if name in r.models)
        if m.excess_risk_ci_low is not None:
            sm.final_ci = [float(m.excess_risk_ci_low[-1]), float(m.excess_risk_ci_high[-1])]
        sm.oracle_step_ci = percentile_interval(ns.oracle_step, integer=True)
        sm.oracle_risk_ci = percentile_interval(ns.oracle_risk)
        if horizons:
            lo, hi = horizon_band(m.modes.second_moment, m.modes.second_moment_se, theta2)
            bands[name] = SimpleNamespace(final_risk=None, oracle_risk=None, oracle_step=None,
                                          horizon=np.array([lo, hi]))
            sm.horizon_ci = _hull(percentile_interval(ns.horizon, integer=True), [lo, hi])
        else:
            sm.horizon_ci = None
    core = METRIC_CORES.get(kind)
    if core is not None:
        for key, value in core(per_model, horizons).items():
            integer = _is_integer_metric(key)
            if isinstance(value, list):
                metrics[f"{key}_ci"] = [percentile_interval(v, integer=integer) for v in value]
            else:
                metrics[f"{key}_ci"] = percentile_interval(value, integer=integer)
        if horizons:  # widen every horizon's interval to the per-mode bands (horizon_band)
            for key, ci in _band_metrics(kind, bands).items():
                if isinstance(ci, list) and ci and isinstance(ci[0], list):
                    metrics[f"{key}_ci"] = [_hull(a, b) for a, b in zip(metrics[f"{key}_ci"], ci, strict=True)]
                else:
                    metrics[f"{key}_ci"] = _hull(metrics[f"{key}_ci"], ci)
    reps = sorted({r.reps for r in lineages})
    info: dict[str, Any] = {
        "level": CI_LEVEL, "resamples": BOOTSTRAP_RESAMPLES,
        "method": "percentile bootstrap over replicates, each lineage resampled independently "
                  "(oracle steps over the reported steps); final risks: the simulation's studentized "
                  "bootstrap interval; horizons: the bootstrap interval widened to the modes whose "
                  f"normalised error is within {BAND_Z:g} standard errors of 1/2",
        "reps": reps[0] if len(reps) == 1 else reps}
    if not horizons:
        d = theta2.size
        info["horizons"] = (f"not available: the per-replicate per-mode errors (reps x d x models = "
                            f"{reps[-1]} x {d} x models) exceed MAX_REPLICATE_MODES = "
                            f"{MAX_REPLICATE_MODES:.3g} numbers per lineage and were not kept")
    metrics["uncertainty"] = info
