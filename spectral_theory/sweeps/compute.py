"""What a worker runs: one batch of points, sharing a :class:`~spectral_theory.solvers.PrefixCache`
(a teacher shared by the batch's points is trained once), each point's quantities recorded
as one row, a failing point recorded with its error. Only payloads go in and rows come out
(plain Python numbers and strings): nothing else crosses the network.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ..solvers import PrefixCache
from .spec import build_spec

__all__ = ["run_batch", "point_rows", "check_version", "check_memory", "TRANSIENT_ERRORS"]


def _version() -> str:
    from .. import __version__

    return __version__


def check_version(cfg: dict) -> None:
    """Refuse to compute for a driver of another package version (``cfg["version"]``, set by
    the driver): a point's rows are stored under a hash of the driver's version, so rows
    computed by a worker with another installed version would be stored as the driver's."""
    want = cfg.get("version")
    if want is not None and want != _version():
        from .executors import SweepError

        raise SweepError(f"this worker has spectral-theory {_version()}, the sweep's driver {want}: start "
                         "the workers in the driver's environment (docs/sweeps.md, \"Running on a real cluster\")")


#: errors that depend on where and how a point ran (the worker's memory, the budget), not on
#: the point: recorded in the table but computed again by the next run
TRANSIENT_ERRORS = ("BudgetError",)


def check_memory(spec: Any, cfg: dict, *, reps: int | None = None) -> None:
    """A :class:`~spectral_theory.budget.BudgetError` when the theory of ``spec`` (a scenario or
    a comparison; with ``reps``: its simulation with that many replicates) needs more memory
    than ``cfg["max_memory"]`` (bytes; ``None``: no limit; absent or ``"worker"``: half the
    memory available on this worker), estimated before anything is allocated
    (``spectral_theory.budget``)."""
    from ..budget import (
        check_budget,
        default_budget,
        format_size,
        simulation_estimate,
        theory_estimate,
        transfer_estimate,
    )
    from ..spec import Scenario

    budget = cfg.get("max_memory", "worker")
    if budget == "worker":
        budget, source = default_budget(), "half the worker's available memory; max_memory changes it"
    else:
        source = "max_memory" if budget is None else f"max_memory {format_size(budget)}"
    if budget is None:
        return
    what = "this point"
    if reps is not None:
        lineages = {"scenario": spec} if isinstance(spec, Scenario) else spec.lineages()
        est = None
        for scn in lineages.values():
            one = simulation_estimate(scn, reps, at=cfg.get("at"), what=what)
            est = one if est is None else est + one
    elif isinstance(spec, Scenario):
        est = theory_estimate(spec, cfg["method"], every_step="oracle" in cfg.get("record", ()), what=what)
    else:
        est = transfer_estimate(spec, cfg["method"], what=what)
    check_budget(est, budget, budget_source=source)


def _num(v: Any) -> Any:
    """A JSON-ready number: ints stay ints, floats (nan included) floats, None nan."""
    if v is None:
        return math.nan
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    return float(v)


def _at(model: Any, t: int) -> int:
    """Index of step ``min(t, last step)`` among a model's reported steps."""
    steps = np.asarray(model.steps)
    j = int(np.searchsorted(steps, min(int(t), int(steps[-1]))))
    return j


def _model_rows(row: dict, curves: list, name: str, m: Any, summary: dict, record: set, at: Any) -> None:
    """The per-model columns of ``record`` from a model's result ``m`` and its ``summary``
    (final/oracle/horizon), and its curve rows."""
    if "final" in record:
        row[f"{name}.final_risk"] = _num(summary["final_risk"])
    if "bias_variance" in record:
        row[f"{name}.final_bias"] = _num(summary["final_bias"])
        row[f"{name}.final_variance"] = _num(summary["final_variance"])
    if "oracle" in record:
        row[f"{name}.oracle_step"] = _num(summary["oracle_step"])
        row[f"{name}.oracle_risk"] = _num(summary["oracle_risk"])
    if "horizon" in record:
        row[f"{name}.horizon"] = _num(summary["horizon"])
    if "stability" in record:
        row[f"{name}.stability_limit"] = _num(m.stability_limit)
        row[f"{name}.max_lr"] = _num(m.max_lr)
    if at is not None:
        for t in at:
            j = _at(m, t)
            row[f"{name}.risk@{t}"] = _num(m.excess_risk[j])
            if "bias_variance" in record:
                row[f"{name}.bias@{t}"] = _num(None if m.bias is None else m.bias[j])
                row[f"{name}.variance@{t}"] = _num(None if m.variance is None else m.variance[j])
    if "curves" in record:
        for j, t in enumerate(np.asarray(m.steps)):
            curves.append({"model": name, "step": int(t), "excess_risk": _num(m.excess_risk[j]),
                           "bias": _num(None if m.bias is None else m.bias[j]),
                           "variance": _num(None if m.variance is None else m.variance[j]),
                           "disagreement": _num(None if m.disagreement is None else m.disagreement[j])})


def _scenario_point(scn: Any, cfg: dict, cache: PrefixCache, row: dict, curves: list) -> None:
    from ..api import predict, resolve_at, resolve_solver
    from ..transfer.oracle import exhaustive, from_curve, search
    from ..transfer.report import spectral_horizon, with_final

    record = set(cfg["record"])
    solver, _ = resolve_solver(scn, cfg["method"], {})
    every = "oracle" in record and exhaustive(solver, scn)
    use = cache if solver.uses_cache else None
    at = with_final(scn)
    res = predict(scn, at=at, cache=use, method=solver, every_step=every, on_unstable=cfg["on_unstable"])
    row["method"] = res.method
    at_map = resolve_at(scn, at)
    theta2 = scn.problem.theta2
    for mod in scn.models:
        m = res.models[mod.name]
        summary = {"final_risk": m.excess_risk[-1], "final_bias": None if m.bias is None else m.bias[-1],
                   "final_variance": None if m.variance is None else m.variance[-1]}
        if "oracle" in record:
            o = from_curve(m.curve) if every else search(solver, scn, mod.name, at_map, cache=use,
                                                         on_unstable=cfg["on_unstable"], reported=at_map[mod.name])
            summary.update(oracle_step=o.step, oracle_risk=o.risk)
        if "horizon" in record:
            summary["horizon"] = spectral_horizon(m.modes.second_moment, theta2)
        _model_rows(row, curves, mod.name, m, summary, record, cfg["at"])
    if res.diagnostics.get("warnings"):
        row["warnings"] = "; ".join(dict.fromkeys(res.diagnostics["warnings"]))


def _transfer_point(spec: Any, cfg: dict, cache: PrefixCache, row: dict, curves: list) -> None:
    from ..transfer import evaluate

    record = set(cfg["record"])
    rep = evaluate(spec, method=cfg["method"], cache=cache, on_unstable=cfg["on_unstable"])
    row["method"] = rep.method
    wanted = None if "metrics" in record else record
    for k, v in rep.metrics.items():
        if isinstance(v, dict) or (wanted is not None and k not in wanted):
            continue
        if isinstance(v, (list, tuple)):
            for i, x in enumerate(v):
                row[f"{k}[{i}]"] = _num(x)
        else:
            row[k] = _num(v)
    for res in rep.results.values():
        for name, m in res.models.items():
            s = rep.models[name]
            summary = {"final_risk": s.final_risk, "final_bias": s.final_bias, "final_variance": s.final_variance,
                       "oracle_step": s.oracle_step, "oracle_risk": s.oracle_risk, "horizon": s.horizon}
            _model_rows(row, curves, name, m, summary, record, cfg["at"])
    msgs = [w for r in rep.results.values() for w in r.diagnostics.get("warnings", [])]
    if msgs:
        row["warnings"] = "; ".join(dict.fromkeys(msgs))


def point_rows(payload: Any, cfg: dict, cache: PrefixCache | None = None) -> tuple[dict, list[dict]]:
    """One point's row (``status`` ``ok`` with its quantities, or ``error`` with ``error_type``
    and ``error``) and its curve rows. Every exception of the computation is recorded, never
    raised: an invalid combination (``SpecError``), an unstable step (``InstabilityError``),
    a point too large for memory."""
    cache = cache if cache is not None else PrefixCache()
    row: dict[str, Any] = {"status": "ok", "error_type": "", "error": "", "method": "", "warnings": ""}
    curves: list[dict] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            spec = build_spec(payload, cfg["kind"])
            check_memory(spec, cfg)
            if cfg["kind"] == "scenario":
                _scenario_point(spec, cfg, cache, row, curves)
            else:
                _transfer_point(spec, cfg, cache, row, curves)
        extra = [" ".join(str(w.message).split()) for w in caught]
        if extra:
            have = [row["warnings"]] if row["warnings"] else []
            row["warnings"] = "; ".join(dict.fromkeys(have + extra))
    except Exception as err:  # noqa: BLE001 - every failing point is recorded, the sweep goes on
        row = {"status": "error", "error_type": type(err).__name__, "error": " ".join(str(err).split()),
               "method": "", "warnings": ""}
        curves = []
    return row, curves


def run_batch(points: list[tuple[str, Any]], cfg: dict,
              cache: PrefixCache | None = None) -> list[tuple[str, dict, list[dict]]]:
    """Every point of a batch (``(hash, payload)`` pairs) through one prefix cache (a new one
    unless ``cache`` is given): ``[(hash, row, curve rows), ...]`` in the batch's order."""
    check_version(cfg)
    cache = cache if cache is not None else PrefixCache()
    out = []
    for h, payload in points:
        row, curves = point_rows(payload, cfg, cache)
        out.append((h, row, curves))
    return out
