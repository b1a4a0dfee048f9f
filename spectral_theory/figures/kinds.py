"""The seven figure kinds (``docs/figures.md``), each in two stages.

For every kind ``K`` there is a data builder ``K_data(...) -> FigureData`` (computes through
the existing layers: :func:`~spectral_theory.api.predict`, :func:`~spectral_theory.api.simulate`,
:func:`~spectral_theory.transfer.evaluate`, :func:`~spectral_theory.transfer.transfer_map`,
:func:`~spectral_theory.analysis.rates.check_rate`, :func:`~spectral_theory.stability_limit`),
a drawer that reads only the :class:`~spectral_theory.figures.data.FigureData`, and the public
function ``K(...)`` that does both and returns the matplotlib ``Figure`` (drawn into ``ax``
when one is given). ``figure.spectral_data`` holds the data, which
:func:`~spectral_theory.figures.save` writes beside the image and
:func:`~spectral_theory.figures.replot` redraws.

Kinds: ``curves`` (risk against steps), ``modes`` (per-mode normalised error, horizons),
``denoising`` (per-mode variance parts of weak teacher and strong student), ``map`` (a
transfer metric over two parameters, diverging colours centred on the neutral value),
``chain`` (risk and horizon per generation), ``rates`` (log-log slopes against predicted
exponents), ``stability`` (final risk against the step size, with the stability limit).
The mathematics: ``docs/theory.md`` §5 (stability), §7 (rates), §8 (transfer metrics).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import SpecError
from .data import FigureData
from .style import (
    LABELS,
    check_style,
    check_width,
    colour,
    figure_size,
    matplotlib_module,
    rc_params,
)

__all__ = ["KINDS", "NEUTRAL", "render", "curves", "modes", "denoising", "phase_map", "chain", "rates",
           "stability", "curves_data", "modes_data", "denoising_data", "map_data", "chain_data",
           "rates_data", "stability_data"]

#: colour-bar labels of the transfer metrics (docs/theory.md §8)
METRIC_LABELS = {"kd_gain": r"KD gain $\mathcal{E}_{hard}/\mathcal{E}_{kd}$",
                 "kd_gain_oracle": r"oracle KD gain $\mathcal{E}^*_{hard}/\mathcal{E}^*_{kd}$",
                 "kd_gain_difference": r"$\mathcal{E}_{hard} - \mathcal{E}_{kd}$",
                 "pgr": "performance gap recovered (PGR)", "pgr_oracle": "PGR at oracle stopping",
                 "final_over_first": r"$\mathcal{E}_{G-1}/\mathcal{E}_0$"}
#: short names of the transfer metrics (the neutral contour's legend)
METRIC_NAMES = {"kd_gain": "KD gain", "kd_gain_oracle": "oracle KD gain", "kd_gain_difference": "KD gain difference",
                "horizon_expansion": "horizon expansion", "pgr": "PGR", "pgr_oracle": "oracle PGR",
                "final_over_first": "final / first risk"}
#: transfer metrics that are ratios (neutral 1): their maps' colours are symmetric in log
RATIO_METRICS = frozenset({"kd_gain", "kd_gain_oracle", "final_over_first"})
#: the neutral value of a transfer metric (no gain, no loss): the centre of a map's colours
NEUTRAL = {"kd_gain": 1.0, "kd_gain_oracle": 1.0, "kd_gain_difference": 0.0, "horizon_expansion": 0.0,
           "pgr": 0.0, "pgr_oracle": 0.0, "final_over_first": 1.0}


# ---------------------------------------------------------------------------- shared helpers
def _is_spec(obj: Any) -> bool:
    from ..transfer.specs import TransferSpec

    return isinstance(obj, TransferSpec)


def _is_report(obj: Any) -> bool:
    from ..transfer.report import TransferReport

    return isinstance(obj, TransferReport)


def _is_mc_report(rep: Any) -> bool:
    return any(r.reps is not None for r in rep.results.values())


def _with_points(obj: Any, points: int | None) -> Any:
    """A scenario or comparison reporting ``points`` log-spaced steps (``None``: as it is)."""
    if points is None:
        return obj
    from ..spec import Output

    return dataclasses.replace(obj, output=Output(points=points))


def _describe(obj: Any) -> dict[str, Any]:
    return obj.describe() if obj is not None and hasattr(obj, "describe") else {}


def _mc_source(src: dict[str, Any], sim: Any) -> dict[str, Any]:
    if sim is None:
        return src
    res = next(iter(sim.results.values())) if _is_report(sim) else sim
    return {**src, "montecarlo": {"reps": res.reps, "seed": res.seed}}


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def _col(arr: Any, n: int) -> list:
    return [None] * n if arr is None else [float(v) for v in np.asarray(arr, dtype=float).ravel()]


def _check_models(names: Any, available: Sequence[str]) -> list[str]:
    if names is None:
        return list(available)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out = list(names)
    for n in out:
        if n not in available:
            raise SpecError("models", n, f"must be models of the source: {list(available)}")
    if not out:
        raise SpecError("models", names, f"must name at least one of {list(available)}")
    return out


def _options(kind_options: dict[str, Any], style: str, width: Any) -> dict[str, Any]:
    check_style(style)
    check_width(width)
    return {**kind_options, "style": style, "width": width}


def _theory_of(source: Any, method: str, simulate_: bool, reps: int, seed: int, progress: Any,
               points: int | None, simulation: Any) -> tuple[Any, Any]:
    """(theory, simulation) from a source: a Scenario or comparison (computed here), or a theory
    Result or report (used as given); ``simulation`` or, with ``simulate_``, a Monte Carlo run."""
    from ..api import predict, simulate
    from ..result import Result
    from ..spec import Scenario
    from ..transfer import evaluate

    if isinstance(source, Scenario):
        source = _with_points(source, points)
        theory = predict(source, method=method)
        if simulate_ and simulation is None:
            simulation = simulate(source, reps=reps, seed=seed, progress=progress)
    elif _is_spec(source):
        source = _with_points(source, points)
        theory = evaluate(source, method=method)
        if simulate_ and simulation is None:
            simulation = evaluate(source, simulate=True, reps=reps, seed=seed, progress=progress)
    elif isinstance(source, Result):
        if source.reps is not None:
            raise SpecError("source", "a Monte Carlo result", "must be theory (predict); pass the Monte Carlo "
                                                              "result as simulation=")
        theory = source
    elif _is_report(source):
        if _is_mc_report(source):
            raise SpecError("source", "a Monte Carlo report", "must be theory (evaluate); pass the Monte Carlo "
                                                              "report as simulation=")
        theory = source
    else:
        raise SpecError("source", type(source).__name__,
                        "must be a Scenario, a Distillation/WeakToStrong/Chain, a Result or a TransferReport")
    if simulation is not None:
        ok = (_is_report(simulation) and _is_mc_report(simulation)) if _is_report(theory) else \
            (isinstance(simulation, Result) and simulation.reps is not None)
        if not ok:
            raise SpecError("simulation", type(simulation).__name__,
                            "must be the Monte Carlo counterpart of the source (simulate for a Result, "
                            "evaluate(..., simulate=True) for a report)")
    return theory, simulation


def _model_results(obj: Any) -> dict[str, Any]:
    """Model name -> ModelResult of a Result or of every lineage of a report (report order)."""
    from ..result import Result

    if isinstance(obj, Result):
        return dict(obj.models)
    found = {name: m for r in obj.results.values() for name, m in r.models.items()}
    return {name: found[name] for name in obj.models}


def _scenario_of(theory: Any) -> Any:
    return theory.spec if _is_report(theory) else theory.scenario


def _theta_lambda(theory: Any) -> tuple[np.ndarray, np.ndarray]:
    prob = _scenario_of(theory).problem
    return np.asarray(prob.eigenvalues, dtype=float), np.asarray(prob.theta2, dtype=float)


# ---------------------------------------------------------------------------- rendering
def _axes(ax: Any, data: FigureData, aspect: float | None = None):
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure

    fig = Figure(figsize=figure_size(data.options.get("style", "default"), data.options.get("width"), aspect))
    return fig, fig.add_subplot()


def render(data: FigureData, ax: Any = None, **overrides: Any):
    """Draw ``data`` (a :class:`FigureData`) and return the ``Figure``; ``overrides`` replace
    drawing options (``style``, ``width`` and the kind's own, e.g. ``axis="lambda"`` for
    ``modes``), recorded in the returned figure's ``spectral_data``."""
    matplotlib = matplotlib_module()
    if overrides:
        data = dataclasses.replace(data, options={**data.options, **overrides})
    style = check_style(data.options.get("style", "default"))
    check_width(data.options.get("width"))
    with matplotlib.rc_context(rc_params(style)):
        fig = _DRAW[data.kind](data, ax)
    fig.spectral_data = data
    return fig


def _legend(ax: Any, **kw: Any) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(**kw)


def _positive(v: Sequence) -> np.ndarray:
    a = np.array([np.nan if x is None else x for x in v], dtype=float)
    return np.where(a > 0, a, np.nan)


# ---------------------------------------------------------------------------- curves
def curves_data(source: Any, simulation: Any = None, *, simulate: bool = False, reps: int = 1000,
                seed: int = 0, models: Any = None, split: bool = False, oracle: bool = True,
                points: int | None = None, method: str = "auto", progress: bool | None = None,
                style: str = "default", width: Any = None) -> FigureData:
    """Data of a ``curves`` figure: excess risk at the reported steps of each model (theory),
    with its bias and variance parts (drawn with ``split``), Monte Carlo means, standard errors
    and bootstrap intervals (``simulation``, or ``simulate=True`` with ``reps`` and ``seed``),
    and each model's oracle stopping step and risk (theory: over every step,
    ``docs/theory.md`` §8). ``source``: a Scenario or comparison (computed here, at ``points``
    log-spaced steps if given) or a theory Result or TransferReport."""
    theory, sim = _theory_of(source, method, simulate, reps, seed, progress, points, simulation)
    mres = _model_results(theory)
    names = _check_models(models, list(mres))
    cols: dict[str, list] = {k: [] for k in ("model", "source", "step", "excess_risk", "bias", "variance",
                                             "se", "ci_low", "ci_high")}

    def add(name: str, src: str, m: Any) -> None:
        n = len(m.steps)
        cols["model"] += [name] * n
        cols["source"] += [src] * n
        cols["step"] += [int(t) for t in np.asarray(m.steps).ravel()]
        cols["excess_risk"] += _col(m.excess_risk, n)
        cols["bias"] += _col(m.bias, n)
        cols["variance"] += _col(m.variance, n)
        cols["se"] += _col(m.excess_risk_se, n)
        cols["ci_low"] += _col(m.excess_risk_ci_low, n)
        cols["ci_high"] += _col(m.excess_risk_ci_high, n)

    for name in names:
        add(name, "theory", mres[name])
    if sim is not None:
        sres = _model_results(sim)
        for name in names:
            add(name, "montecarlo", sres[name])
    stops: dict[str, Any] = {}
    if oracle:
        if _is_report(theory):
            stops = {n: {"step": theory.models[n].oracle_step, "risk": theory.models[n].oracle_risk,
                         "over": theory.models[n].oracle_over} for n in names}
        elif theory.scenario is not None:
            from ..spec import Scenario
            from ..transfer.oracle import oracle_stop

            for n in names:
                try:
                    if not isinstance(theory.scenario, Scenario):  # e.g. the continuum's computed scenario
                        raise SpecError("method", theory.method, "computed another scenario")
                    o = oracle_stop(theory.scenario, n, method=theory.method)
                    stops[n] = {"step": o.step, "risk": o.risk, "over": o.how}
                except SpecError:  # the method cannot search every step: the best reported step
                    m = mres[n]
                    j = int(np.argmin(m.excess_risk))
                    stops[n] = {"step": int(m.steps[j]), "risk": float(m.excess_risk[j]), "over": "reported steps"}
    types = {"model": "str", "source": "str", "step": "int", **{k: "float" for k in list(cols)[3:]}}
    ann = {"models": names, "oracle": stops,
           "final": {n: float(mres[n].excess_risk[-1]) for n in names}}
    if _is_report(theory):
        ann["metrics"] = {k: v for k, v in theory.metrics.items() if not isinstance(v, (dict, list))}
    return FigureData("curves", cols, types, _mc_source(_describe(_scenario_of(theory)), sim),
                      _method_name(theory, sim), ann,
                      _options({"split": bool(split), "logx": True, "logy": True}, style, width))


def _method_name(theory: Any, sim: Any) -> str:
    text = theory.method
    if sim is not None:
        text += " + montecarlo"
    return text


def _draw_curves(data: FigureData, ax: Any):
    from matplotlib.lines import Line2D

    fig, ax = _axes(ax, data)
    opt = data.options
    names = data.annotations.get("models") or data.unique("model")
    logx = opt.get("logx", True)
    keys: dict[str, Any] = {}  # legend entries for the line styles and markers, in black (any model)
    for k, name in enumerate(names):
        c = colour(k)
        t = np.array(data.select("step", model=name, source="theory"), dtype=float)
        keep = t > 0 if logx else np.ones(t.size, bool)
        y = np.array(data.select("excess_risk", model=name, source="theory"), dtype=float)
        ax.plot(t[keep], y[keep], color=c, label=name)
        if opt.get("split"):
            for part, ls in (("bias", "--"), ("variance", ":")):
                v = data.select(part, model=name, source="theory")
                if any(x is not None for x in v):
                    ax.plot(t[keep], _positive(v)[keep], color=c, ls=ls, lw=0.9, label=f"_{name} {part}")
                    keys[f"{part} part"] = Line2D([], [], color="black", ls=ls, lw=0.9)
    for k, name in enumerate(names):
        ms = np.array(data.select("step", model=name, source="montecarlo"), dtype=float)
        if ms.size:
            keep = ms > 0 if logx else np.ones(ms.size, bool)
            my = np.array(data.select("excess_risk", model=name, source="montecarlo"), dtype=float)
            se = np.array([0.0 if v is None else v for v in data.select("se", model=name, source="montecarlo")])
            ax.errorbar(ms[keep], my[keep], yerr=2 * se[keep], fmt="o", ms=3, mfc="none", color=colour(k), lw=0.8,
                        label=f"_{name} mc")
            keys["Monte Carlo mean ($\\pm 2$ SE)"] = Line2D([], [], color="black", marker="o", ms=3, mfc="none",
                                                           ls="none")
    for k, name in enumerate(names):
        stop = data.annotations.get("oracle", {}).get(name)
        if stop and (stop["step"] > 0 or not logx):
            ax.plot([stop["step"]], [stop["risk"]], marker="*", ms=9, color=colour(k), ls="none",
                    markeredgecolor="black", markeredgewidth=0.4, label=f"_{name} oracle")
            keys["oracle stopping step"] = Line2D([], [], color="white", marker="*", ms=9, ls="none",
                                                  markeredgecolor="black", markeredgewidth=0.6)
    if logx:
        ax.set_xscale("log")
    if opt.get("logy", True):
        ax.set_yscale("log")
    ax.set_xlabel(LABELS["step"])
    ax.set_ylabel(LABELS["risk"])
    handles, labels = ax.get_legend_handles_labels()
    if handles or keys:
        ax.legend(handles + list(keys.values()), labels + list(keys))
    return fig


def curves(source: Any, simulation: Any = None, *, ax: Any = None, **kw: Any):
    """A ``curves`` figure (:func:`curves_data` for the arguments): excess risk against steps,
    log-log, one line per model; Monte Carlo as markers with ``±2`` SE bars; oracle stopping
    points as stars; ``split=True`` adds bias (dashed) and variance (dotted)."""
    return render(curves_data(source, simulation, **kw), ax)


# ---------------------------------------------------------------------------- modes
def modes_data(source: Any, simulation: Any = None, *, simulate: bool = False, reps: int = 1000, seed: int = 0,
               models: Any = None, axis: str = "index", method: str = "auto", progress: bool | None = None,
               style: str = "default", width: Any = None) -> FigureData:
    """Data of a ``modes`` figure: per-mode normalised error ``M_ii / theta_i^2`` at the end of
    training of each model (with its bias and variance parts), its spectral horizon (largest
    mode with normalised error ``<= 1/2``, ``docs/theory.md`` §8), and the Monte Carlo
    estimate with its standard error when simulated. ``axis``: ``"index"`` or ``"lambda"``."""
    if axis not in ("index", "lambda"):
        raise SpecError("axis", axis, "must be 'index' (mode index) or 'lambda' (eigenvalue)")
    theory, sim = _theory_of(source, method, simulate, reps, seed, progress, None, simulation)
    lam, theta2 = _theta_lambda(theory)
    from ..transfer.report import spectral_horizon

    for m in _model_results(theory).values():
        if m.modes is None or np.size(m.modes.second_moment) != lam.size:
            raise SpecError("method", theory.method, f"gives no per-mode values of the d = {lam.size} modes (the "
                                                     "continuum method computes on quadrature nodes): use another")

    if _is_report(theory):
        prof = {n: (m.normalised, m.normalised_bias, m.normalised_variance, m.horizon)
                for n, m in theory.models.items()}
    else:
        prof = {}
        for n, m in theory.models.items():
            p = m.modes
            prof[n] = (p.normalised, _normalised(p.bias, theta2), _normalised(p.variance, theta2),
                       spectral_horizon(p.second_moment, theta2))
    names = _check_models(models, list(prof))
    d = lam.size
    cols: dict[str, list] = {k: [] for k in ("model", "source", "mode", "lambda", "theta2", "normalised",
                                             "normalised_bias", "normalised_variance", "se")}
    for n in names:
        cols["model"] += [n] * d
        cols["source"] += ["theory"] * d
        cols["mode"] += list(range(1, d + 1))
        cols["lambda"] += lam.tolist()
        cols["theta2"] += theta2.tolist()
        cols["normalised"] += _col(prof[n][0], d)
        cols["normalised_bias"] += _col(prof[n][1], d)
        cols["normalised_variance"] += _col(prof[n][2], d)
        cols["se"] += [None] * d
    mc_h: dict[str, int] = {}
    if sim is not None:
        sres = _model_results(sim)
        for n in names:
            p = sres[n].modes
            norm = _normalised(p.second_moment, theta2)
            se = _normalised(p.second_moment_se, theta2)
            cols["model"] += [n] * d
            cols["source"] += ["montecarlo"] * d
            cols["mode"] += list(range(1, d + 1))
            cols["lambda"] += lam.tolist()
            cols["theta2"] += theta2.tolist()
            cols["normalised"] += _col(norm, d)
            cols["normalised_bias"] += [None] * d
            cols["normalised_variance"] += [None] * d
            cols["se"] += _col(se, d)
            mc_h[n] = spectral_horizon(p.second_moment, theta2)
    types = {"model": "str", "source": "str", "mode": "int", **{k: "float" for k in list(cols)[3:]}}
    ann: dict[str, Any] = {"models": names, "horizons": {n: int(prof[n][3]) for n in names}, "threshold": 0.5}
    if mc_h:
        ann["horizons_montecarlo"] = mc_h
    if _is_report(theory):
        ann["metrics"] = {k: v for k, v in theory.metrics.items() if not isinstance(v, (dict, list))}
    return FigureData("modes", cols, types, _mc_source(_describe(_scenario_of(theory)), sim),
                      _method_name(theory, sim), ann, _options({"axis": axis}, style, width))


def _normalised(v: Any, theta2: np.ndarray) -> np.ndarray | None:
    """``v / theta2`` (nan where ``theta_i = 0`` or the ratio overflows), as the reports compute it."""
    if v is None:
        return None
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = np.where(theta2 > 0, v / np.where(theta2 > 0, theta2, 1.0), np.nan)
    return np.where(np.isinf(r), np.nan, r)


def _marker_modes(d: int, n: int = 30) -> np.ndarray:
    """About ``n`` log-spaced 1-based mode indices (the Monte Carlo markers shown)."""
    return np.unique(np.geomspace(1, d, n).round().astype(int))


def _draw_modes(data: FigureData, ax: Any):
    fig, ax = _axes(ax, data)
    axis = data.options.get("axis", "index")
    if axis not in ("index", "lambda"):
        raise SpecError("axis", axis, "must be 'index' (mode index) or 'lambda' (eigenvalue)")
    xcol = "mode" if axis == "index" else "lambda"
    from matplotlib.lines import Line2D

    names = data.annotations.get("models") or data.unique("model")
    thr = data.annotations.get("threshold", 0.5)
    keys: dict[str, Any] = {}  # legend entries of the markers and line styles, in black
    for k, name in enumerate(names):
        c = colour(k)
        x = np.array(data.select(xcol, model=name, source="theory"), dtype=float)
        y = _positive(data.select("normalised", model=name, source="theory"))
        h = data.annotations["horizons"][name]
        ax.plot(x, y, color=c, label=f"{name} (horizon {h})")
        if h > 0:
            xh = h if axis == "index" else float(data.select("lambda", model=name, source="theory")[h - 1])
            ax.axvline(xh, color=c, ls="--", lw=0.8)
        mx = np.array(data.select(xcol, model=name, source="montecarlo"), dtype=float)
        if mx.size:
            idx = _marker_modes(mx.size) - 1
            my = np.array(data.select("normalised", model=name, source="montecarlo"), dtype=float)[idx]
            se = np.array([np.nan if v is None else v for v in data.select("se", model=name, source="montecarlo")])
            ok = np.isfinite(my) & (my > 0)
            ax.errorbar(mx[idx][ok], my[ok], yerr=2 * se[idx][ok], fmt="o", ms=3, mfc="none", color=c, lw=0.8,
                        label=f"_{name} mc")
            keys["Monte Carlo mean ($\\pm 2$ SE)"] = Line2D([], [], color="black", marker="o", ms=3, mfc="none",
                                                           ls="none")
    ax.axhline(thr, color="black", lw=0.6, ls=":", label=f"threshold {thr:g} (horizon)")
    keys["horizon (dashed)"] = Line2D([], [], color="black", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    if axis == "lambda":
        ax.invert_xaxis()  # large eigenvalues (learned first) on the left, as for the index
    ax.set_xlabel(LABELS["mode"] if axis == "index" else LABELS["lambda"])
    ax.set_ylabel(LABELS["normalised"])
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles + list(keys.values()), labels + list(keys))
    return fig


def modes(source: Any, simulation: Any = None, *, ax: Any = None, **kw: Any):
    """A ``modes`` figure (:func:`modes_data`): per-mode normalised error against the mode index
    (``axis="lambda"``: against ``lambda_i``), one line per model, horizons as dashed verticals
    and the 1/2 threshold: the picture of spectral horizon expansion."""
    return render(modes_data(source, simulation, **kw), ax)


# ---------------------------------------------------------------------------- denoising
_DENOISING_METRICS = ("teacher_noisy_modes", "denoised_modes", "teacher_variance_on_noisy_modes",
                      "student_variance_on_noisy_modes", "teacher_variance", "student_variance", "pgr",
                      "pgr_oracle", "weak_risk", "w2s_risk", "ceiling_risk")


def denoising_data(source: Any, *, method: str = "auto", style: str = "default", width: Any = None) -> FigureData:
    """Data of a ``denoising`` figure: the per-mode variance parts (label-noise driven error) of
    the weak teacher and the weak-to-strong student, their bias parts, and the teacher's noisy
    modes (variance part above bias part) with the report's denoising metrics
    (``docs/theory.md`` §8). Theory only: Monte Carlo has no bias/variance split."""
    from ..transfer import WeakToStrong, evaluate

    if isinstance(source, WeakToStrong):
        rep = evaluate(source, method=method)
    elif _is_report(source) and source.kind == "w2s":
        rep = source
    else:
        raise SpecError("source", type(source).__name__ if not _is_report(source) else f"a {source.kind} report",
                        "must be a WeakToStrong comparison or its theory report (a denoising figure shows the "
                        "weak teacher and the w2s student)")
    if "teacher_variance" not in rep.profiles:
        raise SpecError("source", "a Monte Carlo report",
                        "must be a theory report: the denoising profile needs the exact bias/variance split, "
                        "which Monte Carlo does not have")
    lam, _ = _theta_lambda(rep)
    d = lam.size
    p = rep.profiles
    cols = {"mode": list(range(1, d + 1)), "lambda": lam.tolist(),
            "teacher_variance": _col(p["teacher_variance"], d), "student_variance": _col(p["student_variance"], d),
            "teacher_bias": _col(p["teacher_bias"], d), "student_bias": _col(p["student_bias"], d),
            "teacher_noisy": [int(v) for v in np.asarray(p["teacher_noisy"]).ravel()]}
    types = {"mode": "int", "teacher_noisy": "int", **{k: "float" for k in cols if k not in ("mode", "teacher_noisy")}}
    ann = {"metrics": {k: rep.metrics[k] for k in _DENOISING_METRICS if k in rep.metrics}}
    return FigureData("denoising", cols, types, _describe(rep.spec), rep.method, ann, _options({}, style, width))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) 0-based index pairs of the runs of True in ``mask``."""
    out, start = [], None
    for i, v in enumerate(mask.tolist() + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i - 1))
            start = None
    return out


def _draw_denoising(data: FigureData, ax: Any):
    fig, ax = _axes(ax, data)
    x = np.array(data.column("mode"), dtype=float)
    noisy = np.array(data.column("teacher_noisy"), dtype=bool)
    for k, (a, b) in enumerate(_runs(noisy)):
        ax.axvspan(x[a] - 0.5 if a else 0.8, x[b] + 0.5, color="#999999", alpha=0.15, lw=0,
                   label="teacher's noisy modes (variance > bias)" if k == 0 else None)
    ax.plot(x, _positive(data.column("teacher_variance")), color=colour(1), label="weak teacher: variance part")
    ax.plot(x, _positive(data.column("student_variance")), color=colour(0), label="w2s student: variance part")
    ax.plot(x, _positive(data.column("teacher_bias")), color=colour(1), ls=":", lw=0.9, label="weak teacher: bias part")
    ax.plot(x, _positive(data.column("student_bias")), color=colour(0), ls=":", lw=0.9, label="w2s student: bias part")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(LABELS["mode"])
    ax.set_ylabel(r"per-mode error $M_{ii}$: bias and variance parts")
    _legend(ax)
    return fig


def denoising(source: Any, *, ax: Any = None, **kw: Any):
    """A ``denoising`` figure (:func:`denoising_data`): per-mode variance parts of the weak
    teacher and the strong student on the teacher's noisy modes (shaded): spectral denoising."""
    return render(denoising_data(source, **kw), ax)


# ---------------------------------------------------------------------------- map
def map_data(source: Any, x: tuple[str, Sequence] | None = None, y: tuple[str, Sequence] | None = None, *,
             metric: str | None = None, neutral: float | None = None, method: str = "auto",
             progress: bool | None = None, annotate: bool | None = None, style: str = "default",
             width: Any = None) -> FigureData:
    """Data of a ``map`` figure: a transfer metric over two parameters
    (:func:`~spectral_theory.transfer.transfer_map`, computed row by row through one prefix
    cache, with a progress bar), its neutral value (:data:`NEUTRAL`: KD gain 1, PGR 0; or
    ``neutral``) and whether the neutral contour crosses the grid. ``source``: a comparison
    (with ``x`` and ``y`` as ``(path, values)``) or a ready :class:`TransferMap`."""
    from ..solvers import PrefixCache
    from ..transfer import TransferMap, transfer_map
    from ..transfer.specs import check_spec

    if isinstance(source, TransferMap):
        mp, src = source, {}
    else:
        check_spec(source, "source")
        if x is None or y is None:
            raise SpecError("x/y", (x, y), "a map of a comparison needs both axes as (parameter path, values)")
        from ..montecarlo import Progress

        ok = all(isinstance(v, (tuple, list)) and len(v) == 2 and isinstance(v[1], Sequence | np.ndarray)
                 and not isinstance(v[1], (str, bytes)) and len(v[1]) > 0 for v in (x, y))
        if not ok:  # transfer_map's own error names the malformed axis
            transfer_map(source, x, y, metric=metric, method=method)
        xs = list(x[1])
        bar = Progress(len(xs), progress_on(progress, len(xs) * len(y[1]) > 8), label="map")
        cache = PrefixCache()
        rows, ran = [], set()
        try:
            for k, xv in enumerate(xs):
                part = transfer_map(source, (x[0], [xv]), y, metric=metric, cache=cache, method=method)
                rows.append(part.values[0])
                ran.update(part.method.split("+"))
                bar.advance(1.0, f"row {k + 1}/{len(xs)}")
        finally:
            bar.close()
        mp = TransferMap(part.x_param, part.y_param, xs, list(y[1]), part.metric, np.array(rows, dtype=float),
                         cache.hits, cache.misses, method="+".join(sorted(ran)))
        src = _describe(source)
    if neutral is None:
        neutral = NEUTRAL.get(mp.metric)
    vals = np.asarray(mp.values, dtype=float)
    cols: dict[str, list] = {"x": [], "y": [], "value": []}
    for i, xv in enumerate(mp.xs):
        for j, yv in enumerate(mp.ys):
            cols["x"].append(float(xv))
            cols["y"].append(float(yv))
            cols["value"].append(float(vals[i, j]))
    fin = vals[np.isfinite(vals)]
    ann: dict[str, Any] = {"x_param": mp.x_param, "y_param": mp.y_param, "metric": mp.metric,
                           "neutral": neutral, "nx": len(mp.xs), "ny": len(mp.ys),
                           "min": float(fin.min()) if fin.size else None, "max": float(fin.max()) if fin.size else None,
                           "cache": {"hits": mp.cache_hits, "misses": mp.cache_misses}}
    if neutral is not None and fin.size:
        ann["above_neutral"] = int((fin > neutral).sum())
        ann["below_neutral"] = int((fin < neutral).sum())
        ann["crosses"] = bool(fin.min() < neutral < fin.max())
    if annotate is None:
        annotate = len(mp.xs) * len(mp.ys) <= 64
    return FigureData("map", cols, {"x": "float", "y": "float", "value": "float"}, src, mp.method, ann,
                      _options({"annotate": bool(annotate)}, style, width))


def progress_on(progress: bool | None, long: bool) -> bool:
    if progress is None:
        import sys

        return sys.stderr.isatty() and long
    return bool(progress)


def _edges(v: np.ndarray, log: bool) -> np.ndarray:
    w = np.log(v) if log else v.astype(float)
    if w.size == 1:
        e = np.array([w[0] - 0.5, w[0] + 0.5]) if not log else np.array([w[0] - 0.35, w[0] + 0.35])
    else:
        mid = (w[1:] + w[:-1]) / 2
        e = np.concatenate([[w[0] - (mid[0] - w[0])], mid, [w[-1] + (w[-1] - mid[-1])]])
    return np.exp(e) if log else e


def _is_log(v: np.ndarray) -> bool:
    return bool(v.size > 1 and np.all(v > 0) and v.max() / v.min() >= 10)


def _map_norm(fin: np.ndarray, metric: str, neutral: float | None):
    """The colour scale of a map: without a neutral value viridis over the range; with one a
    diverging scale symmetric about it, so that equal colour depth means an equal effect on
    either side (a ratio metric, KD gain or ``final_over_first``, symmetric in log: a gain of 4
    and one of 1/4 get the same depth; others symmetric in the difference)."""
    from matplotlib.colors import LogNorm, Normalize

    if neutral is None:
        lo, hi = (float(fin.min()), float(fin.max())) if fin.size else (0.0, 1.0)
        return Normalize(lo, hi if hi > lo else lo + 1.0), "viridis"
    if metric in RATIO_METRICS and neutral > 0 and fin.size and fin.min() > 0:
        r = max(float(np.max(np.abs(np.log(fin / neutral)))), 1e-9)
        return LogNorm(neutral * math.exp(-r), neutral * math.exp(r)), "RdBu"  # above: blue
    m = max(float(np.max(np.abs(fin - neutral))) if fin.size else 0.0, 1e-12 * max(1.0, abs(neutral)))
    return Normalize(neutral - m, neutral + m), "RdBu"


def _neutral_contour(xs: np.ndarray, ys: np.ndarray, V: np.ndarray, neutral: float, lx: bool, ly: bool,
                     log_values: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """The neutral contour through the cell centres, interpolated linearly in the coordinates the
    map is drawn in (log of a log axis, log of a ratio metric): ``[(x, y), ...]``, one per piece."""
    from contourpy import contour_generator

    X = np.log(xs) if lx else xs
    Y = np.log(ys) if ly else ys
    with np.errstate(divide="ignore", invalid="ignore"):
        Z = np.log(V / neutral) if log_values else V - neutral
    Z = np.ma.masked_invalid(Z.T)
    out = []
    for seg in contour_generator(X, Y, Z).lines(0.0):
        px, py = seg[:, 0], seg[:, 1]
        out.append((np.exp(px) if lx else px, np.exp(py) if ly else py))
    return out


def _draw_map(data: FigureData, ax: Any):
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    a = data.annotations
    fig, ax = _axes(ax, data, aspect=0.8)
    xs = np.array(data.unique("x"), dtype=float)
    ys = np.array(data.unique("y"), dtype=float)
    V = np.array(data.column("value"), dtype=float).reshape(xs.size, ys.size)
    fin = V[np.isfinite(V)]
    neutral = a.get("neutral")
    norm, cmap = _map_norm(fin, a["metric"], neutral)
    lx, ly = _is_log(xs), _is_log(ys)
    mesh = ax.pcolormesh(_edges(xs, lx), _edges(ys, ly), V.T, norm=norm, cmap=cmap, shading="flat")
    cb = fig.colorbar(mesh, ax=ax)
    cb.set_label(METRIC_LABELS.get(a["metric"], a["metric"].replace("_", " "))
                 + (f" (neutral {neutral:g})" if neutral is not None else ""))
    if neutral is not None and xs.size > 1 and ys.size > 1 and a.get("crosses"):
        label = f"{METRIC_NAMES.get(a['metric'], a['metric'].replace('_', ' '))} = {neutral:g} (neutral)"
        for k, (px, py) in enumerate(_neutral_contour(xs, ys, V, neutral, lx, ly, isinstance(norm, LogNorm))):
            ax.plot(px, py, color="black", lw=1.2, label=label if k == 0 else "_neutral")
        ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), borderaxespad=0.2, fontsize="small")
    if data.options.get("annotate"):
        rgba = colormaps[cmap]
        for i, xv in enumerate(xs):
            for j, yv in enumerate(ys):
                if np.isfinite(V[i, j]):
                    r, g, b, _ = rgba(float(norm(V[i, j])))
                    dark = 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.45  # white text on dark cells
                    ax.text(xv, yv, f"{V[i, j]:.3g}", ha="center", va="center", fontsize="x-small",
                            color="white" if dark else "black")
    if lx:
        ax.set_xscale("log")
    if ly:
        ax.set_yscale("log")
    ax.set_xlim(_edges(xs, lx)[[0, -1]])
    ax.set_ylim(_edges(ys, ly)[[0, -1]])
    ax.set_xticks(xs, [f"{v:g}" for v in xs])
    ax.set_yticks(ys, [f"{v:g}" for v in ys])
    ax.minorticks_off()
    ax.set_xlabel(_param_label(a["x_param"]))
    ax.set_ylabel(_param_label(a["y_param"]))
    return fig


def _param_label(path: str) -> str:
    head, _, tail = path.partition(".")
    words = {"steps": "steps", "capacity": "capacity (top-k modes)", "lr": "step size (batch-mean)",
             "batch": "batch size", "a": "spectral exponent $a$", "b": "target exponent $b$"}
    if path == "noise":
        return r"label-noise variance $\sigma^2$"
    if path == "alpha":
        return r"hard-label weight $\alpha$"
    return f"{head} {words.get(tail, tail)}" if tail else path


def phase_map(source: Any, x: Any = None, y: Any = None, *, ax: Any = None, **kw: Any):
    """A ``map`` figure (:func:`map_data`): the metric as a heat map over two parameters,
    diverging colours centred on its neutral value, the neutral contour drawn (where the grid
    crosses it): the phase diagram of when transfer helps."""
    return render(map_data(source, x, y, **kw), ax)


# ---------------------------------------------------------------------------- chain
def chain_data(source: Any, simulation: Any = None, *, simulate: bool = False, reps: int = 1000, seed: int = 0,
               method: str = "auto", progress: bool | None = None, style: str = "default",
               width: Any = None) -> FigureData:
    """Data of a ``chain`` figure: per generation the final and oracle excess risk, the spectral
    horizon, and with Monte Carlo the simulated final risk and its standard error; the growth
    factors ``E_g / E_{g-1}`` and ``final_over_first`` (``docs/theory.md`` §8)."""
    from ..transfer import Chain

    if not (isinstance(source, Chain) or (_is_report(source) and source.kind == "chain")):
        raise SpecError("source", type(source).__name__, "must be a Chain comparison or its report")
    theory, sim = _theory_of(source, method, simulate, reps, seed, progress, None, simulation)
    m = theory.metrics
    G = len(m["generation_risk"])
    cols: dict[str, list] = {"generation": list(range(G)), "source": ["theory"] * G,
                             "risk": [float(v) for v in m["generation_risk"]],
                             "oracle_risk": [float(v) for v in m["generation_oracle_risk"]],
                             "horizon": [int(v) for v in m["generation_horizon"]], "se": [None] * G}
    if sim is not None:
        sm = sim.metrics
        cols["generation"] += list(range(G))
        cols["source"] += ["montecarlo"] * G
        cols["risk"] += [float(v) for v in sm["generation_risk"]]
        cols["oracle_risk"] += [None] * G
        cols["horizon"] += [int(v) for v in sm["generation_horizon"]]
        cols["se"] += [float(sim.models[f"g{g}"].final_se) for g in range(G)]
    types = {"generation": "int", "source": "str", "risk": "float", "oracle_risk": "float", "horizon": "int",
             "se": "float"}
    ann = {"generation_growth": m["generation_growth"], "final_over_first": m["final_over_first"],
           "parent_disagreement": m["parent_disagreement"]}
    return FigureData("chain", cols, types, _mc_source(_describe(theory.spec), sim), _method_name(theory, sim), ann,
                      _options({}, style, width))


def _draw_chain(data: FigureData, ax: Any):
    fig, ax = _axes(ax, data)
    g = np.array(data.select("generation", source="theory"), dtype=float)
    ax.plot(g, data.select("risk", source="theory"), "o-", color=colour(0), label="final excess risk")
    ax.plot(g, data.select("oracle_risk", source="theory"), "s--", color=colour(0), mfc="none", lw=0.9,
            label="oracle-stopped excess risk")
    mg = np.array(data.select("generation", source="montecarlo"), dtype=float)
    if mg.size:
        se = np.array(data.select("se", source="montecarlo"), dtype=float)
        ax.errorbar(mg, data.select("risk", source="montecarlo"), yerr=2 * se, fmt="D", ms=4, mfc="none",
                    color=colour(4), lw=0.8, label="Monte Carlo mean ($\\pm 2$ SE)")
    risks = np.array(data.select("risk", source="theory"), dtype=float)
    if risks.min() > 0 and risks.max() / risks.min() > 10:
        ax.set_yscale("log")
    ax.set_xlabel(LABELS["generation"])
    ax.set_ylabel(LABELS["risk"])
    ax.set_xticks(g)
    tw = ax.twinx()
    tw.plot(g, data.select("horizon", source="theory"), "^:", color=colour(1), lw=1.0, label="horizon (right axis)")
    tw.set_ylabel(LABELS["horizon"], color=colour(1))
    tw.tick_params(axis="y", colors=colour(1))
    tw.set_ylim(bottom=0)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = tw.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="center right")
    return fig


def chain(source: Any, simulation: Any = None, *, ax: Any = None, **kw: Any):
    """A ``chain`` figure (:func:`chain_data`): final and oracle risk per generation (left
    axis), the spectral horizon per generation (right axis)."""
    return render(chain_data(source, simulation, **kw), ax)


# ---------------------------------------------------------------------------- rates
def rates_data(sources: Any, *, labels: Sequence[str] | None = None, model: str | None = None,
               window: tuple[float, float] | None = None, expected: Any = None, band: float = 0.05,
               quantity: str | None = None, method: str = "auto", style: str = "default",
               width: Any = None) -> FigureData:
    """Data of a ``rates`` figure: log-log risk curves of one or several sources (a Scenario,
    computed here, or a theory Result; ``model`` picks the model, default the last), each with
    its slope fitted over ``window`` (default ``(T/40, T)``) by
    :func:`~spectral_theory.analysis.rates.check_rate` and the predicted exponent (``expected``:
    a number or one per source; default, for power laws, the bias rate
    :func:`~spectral_theory.analysis.asymptotics.bias_rate_exponent` ``(a, b)``,
    ``docs/theory.md`` §7). ``quantity``: ``"excess_risk"`` (default without label noise) or
    ``"bias"`` (default with noise: the rate is the bias's)."""
    from ..analysis.asymptotics import bias_rate_exponent
    from ..analysis.rates import check_rate
    from ..api import predict
    from ..result import Result
    from ..spec import Scenario

    items = list(sources) if isinstance(sources, (list, tuple)) else [sources]
    if not items:
        raise SpecError("sources", sources, "must be a Scenario or Result, or a non-empty list of them")
    if labels is not None and len(labels) != len(items):
        raise SpecError("labels", labels, f"must give one label per source ({len(items)})")
    exps = list(expected) if isinstance(expected, (list, tuple)) else [expected] * len(items)
    if len(exps) != len(items):
        raise SpecError("expected", expected, f"must be one number or one per source ({len(items)})")
    cols: dict[str, list] = {"series": [], "step": [], "value": []}
    fits, srcs, ran = [], [], set()
    for k, src in enumerate(items):
        if isinstance(src, Scenario):
            res = predict(src, method=method)
        elif isinstance(src, Result) and src.reps is None:
            res = src
        else:
            raise SpecError(f"sources[{k}]", type(src).__name__, "must be a Scenario or a theory Result")
        scn = res.scenario
        ran.add(res.method)
        name = model or list(res.models)[-1]
        m = res[name]
        prob = scn.problem
        desc = prob.describe()
        a = desc["spectrum"].get("a") if desc["spectrum"]["kind"] == "powerlaw" else None
        b = desc["target"].get("b") if desc["target"]["kind"] == "powerlaw" else None
        q = quantity or ("excess_risk" if prob.noise == 0 else "bias")
        if q not in ("excess_risk", "bias", "variance"):
            raise SpecError("quantity", q, "must be 'excess_risk', 'bias' or 'variance'")
        e = exps[k]
        if e is None:
            if a is None or b is None:
                raise SpecError("expected", None, f"sources[{k}] is not a power law: give the expected exponent")
            e = bias_rate_exponent(a, b)
        T = int(m.steps[-1])
        win = tuple(window) if window is not None else (max(1.0, T / 40), float(T))
        try:
            chk = check_rate(m, float(e), win, band, quantity=q)
        except ValueError as err:  # too few reported steps in the window, a window out of order
            raise SpecError("window", list(win), f"{err} (sources[{k}], model {name!r}: report more steps, "
                                                 "e.g. Output(points=80), or widen the window)") from None
        steps = np.asarray(m.steps, dtype=float)
        vals = np.asarray(getattr(m, q), dtype=float)
        sel = (steps >= win[0]) & (steps <= win[1]) & (vals > 0)
        intercept = float(np.mean(np.log(vals[sel]) - chk.slope * np.log(steps[sel])))
        label = labels[k] if labels is not None else (f"a = {a:g}, b = {b:g}" if a is not None and b is not None
                                                      else f"{scn.name}: {name}")
        n = steps.size
        cols["series"] += [label] * n
        cols["step"] += [int(t) for t in m.steps]
        cols["value"] += vals.tolist()
        fits.append({"series": label, "model": name, "a": a, "b": b, "quantity": q, "window": list(win),
                     "slope": chk.slope, "stderr": chk.stderr, "r2": chk.r2, "expected": float(e), "band": band,
                     "deviation": chk.deviation, "passed": chk.passed, "n_points": chk.n_points,
                     "intercept": intercept})
        srcs.append(scn.describe())
    return FigureData("rates", cols, {"series": "str", "step": "int", "value": "float"}, {"sources": srcs},
                      "+".join(sorted(ran)), {"fits": fits},
                      _options({}, style, width))


def _draw_rates(data: FigureData, ax: Any):
    fig, ax = _axes(ax, data)
    for k, f in enumerate(data.annotations["fits"]):
        c = colour(k)
        t = np.array(data.select("step", series=f["series"]), dtype=float)
        v = np.array(data.select("value", series=f["series"]), dtype=float)
        keep = (t > 0) & (v > 0)
        ax.plot(t[keep], v[keep], color=c, label=f"{f['series']}: fit {f['slope']:+.3f}, theory {f['expected']:+.3f}")
        lo, hi = f["window"]
        tw = np.geomspace(lo, hi, 20)
        ax.plot(tw, np.exp(f["intercept"]) * tw ** f["slope"], color=c, lw=5, alpha=0.25, solid_capstyle="butt",
                label="fitted slope over the window" if k == 0 else "_fit")
        mid = math.sqrt(lo * hi)
        y_mid = math.exp(f["intercept"]) * mid ** f["slope"]
        te = np.geomspace(lo / 3, min(hi * 3, t.max()), 20)
        ax.plot(te, 2.0 * y_mid * (te / mid) ** f["expected"], color=c, ls="--", lw=0.9,
                label="predicted exponent (offset x2)" if k == 0 else "_pred")
    ax.set_xscale("log")
    ax.set_yscale("log")
    q = data.annotations["fits"][0]["quantity"] if data.annotations["fits"] else "excess_risk"
    ax.set_xlabel(LABELS["step"])
    ax.set_ylabel(LABELS["risk"] if q == "excess_risk" else f"{q} part of the excess risk (not halved)")
    _legend(ax, fontsize="x-small")
    return fig


def rates(sources: Any, *, ax: Any = None, **kw: Any):
    """A ``rates`` figure (:func:`rates_data`): each curve with its fitted slope over the window
    (thick, translucent) and the predicted exponent (dashed, offset by a factor 2)."""
    return render(rates_data(sources, **kw), ax)


# ---------------------------------------------------------------------------- stability
#: default grid of step sizes, as fractions of each model's stability limit
FRACTIONS = tuple(float(v) for v in np.round(np.concatenate([np.geomspace(0.01, 0.5, 12),
                                                             np.linspace(0.55, 0.95, 9), [0.97, 0.98]]), 6))


def stability_data(source: Any, *, models: Any = None, fractions: Sequence[float] | None = None,
                   method: str = "auto", progress: bool | None = None, style: str = "default",
                   width: Any = None) -> FigureData:
    """Data of a ``stability`` figure: for each model of a Scenario (``models``, default all),
    its final excess risk (with bias and variance parts) when its schedule is replaced by a
    constant step ``eta = f * limit`` for each fraction ``f`` of its stability limit
    (:func:`~spectral_theory.stability_limit`, ``docs/theory.md`` §5), the other models as
    given; the limit and the step the scenario uses."""
    from ..api import predict
    from ..montecarlo import Progress
    from ..solvers import PrefixCache
    from ..spec import Scenario
    from ..stability import stability_limit

    if not isinstance(source, Scenario):
        raise SpecError("source", type(source).__name__, "must be a Scenario (a stability figure sweeps the step "
                                                          "size of its models)")
    fr = list(FRACTIONS if fractions is None else fractions)
    if not fr or any(not (isinstance(f, (int, float)) and 0 < f < 1) for f in fr):
        raise SpecError("fractions", fractions, "must be fractions of the stability limit in (0, 1)")
    names = _check_models(models, [m.name for m in source.models])
    prob = source.problem
    cols: dict[str, list] = {k: [] for k in ("model", "fraction", "lr", "final_risk", "bias", "variance")}
    limits, used, best, ran = {}, {}, {}, set()
    bar = Progress(len(names) * len(fr), progress_on(progress, len(names) * len(fr) * source.problem.d > 2e5),
                   label="stability")
    cache = PrefixCache()
    final = [m.steps for m in source.models]
    try:
        for name in names:
            k = [m.name for m in source.models].index(name)
            mdl = source.models[k]
            lim = stability_limit(mdl.speed_profile(prob.eigenvalues), mdl.batch, prob.kappa)
            if not math.isfinite(lim):
                raise SpecError(f"{mdl.field_name}", name, "has no stability limit (every speed is 0)")
            limits[name] = lim
            used[name] = float(max(mdl.step_sizes()))
            rows = []
            for f in fr:
                lr = f * lim
                models_ = list(source.models)
                models_[k] = dataclasses.replace(mdl, schedule=lr)
                scn = dataclasses.replace(source, models=tuple(models_))
                res = predict(scn, at=final, method=method, cache=cache, on_unstable="raise")
                r = res[name]
                ran.add(res.method)
                rows.append((f, lr, float(r.excess_risk[-1]), _float(None if r.bias is None else r.bias[-1]),
                             _float(None if r.variance is None else r.variance[-1])))
                bar.advance(1.0, f"{name} at {f:.2f} of its limit")
            for row in rows:
                for key, v in zip(("fraction", "lr", "final_risk", "bias", "variance"), row, strict=True):
                    cols[key].append(v)
                cols["model"].append(name)
            j = int(np.argmin([r[2] for r in rows]))
            best[name] = {"lr": rows[j][1], "risk": rows[j][2], "fraction": rows[j][0]}
    finally:
        bar.close()
    types = {"model": "str", **{k: "float" for k in list(cols)[1:]}}
    ann = {"models": names, "limits": limits, "used_lr": used, "best": best}
    return FigureData("stability", cols, types, _describe(source), "+".join(sorted(ran)), ann,
                      _options({}, style, width))


def _draw_stability(data: FigureData, ax: Any):
    fig, ax = _axes(ax, data)
    a = data.annotations
    for k, name in enumerate(a["models"]):
        c = colour(k)
        ax.plot(data.select("lr", model=name), data.select("final_risk", model=name), "o-", ms=2.5, color=c,
                label=name)
        ax.axvline(a["limits"][name], color=c, ls="--", lw=0.9,
                   label=f"{name}: stability limit {a['limits'][name]:.4g}")
    ax.set_yscale("log")
    ax.set_xlim(left=0)
    ax.set_xlabel(LABELS["lr"])
    ax.set_ylabel(LABELS["final_risk"])
    _legend(ax, fontsize="x-small")
    return fig


def stability(source: Any, *, ax: Any = None, **kw: Any):
    """A ``stability`` figure (:func:`stability_data`): final risk against the constant step
    size of each model, its stability limit as a dashed vertical line."""
    return render(stability_data(source, **kw), ax)


_DRAW: dict[str, Callable] = {"curves": _draw_curves, "modes": _draw_modes, "denoising": _draw_denoising,
                              "map": _draw_map, "chain": _draw_chain, "rates": _draw_rates,
                              "stability": _draw_stability}
#: kind -> public function
KINDS: dict[str, Callable] = {"curves": curves, "modes": modes, "denoising": denoising, "map": phase_map,
                              "chain": chain, "rates": rates, "stability": stability}
#: kind -> data builder
BUILDERS: dict[str, Callable] = {"curves": curves_data, "modes": modes_data, "denoising": denoising_data,
                                 "map": map_data, "chain": chain_data, "rates": rates_data,
                                 "stability": stability_data}


def summary(data: FigureData) -> list[str]:
    """A few lines with the numbers a figure shows (printed by ``spectral-theory figure``)."""
    a = data.annotations
    k = data.kind
    if k == "curves":
        out = ["final excess risk: " + ", ".join(f"{n} {v:.6g}" for n, v in a["final"].items())]
        if a.get("oracle"):
            out.append("oracle stopping: " + ", ".join(f"{n} step {o['step']} ({o['risk']:.6g})"
                                                       for n, o in a["oracle"].items()))
        return out
    if k == "modes":
        out = ["horizon (modes with normalised error <= 1/2): "
               + ", ".join(f"{n} {h}" for n, h in a["horizons"].items())]
        if "horizons_montecarlo" in a:
            out.append("Monte Carlo horizon: " + ", ".join(f"{n} {h}" for n, h in a["horizons_montecarlo"].items()))
        return out
    if k == "denoising":
        m = a["metrics"]
        return [f"teacher's noisy modes {m['teacher_noisy_modes']}, denoised by the student {m['denoised_modes']} "
                f"(variance {m['student_variance_on_noisy_modes']:.6g} vs {m['teacher_variance_on_noisy_modes']:.6g}); "
                f"PGR {m['pgr']:.6g}"]
    if k == "map":
        out = [f"{a['metric']} over {a['x_param']} x {a['y_param']}: min {a['min']:.6g}, max {a['max']:.6g}"]
        if a.get("neutral") is not None:
            out.append(f"neutral {a['neutral']:g}: {a['above_neutral']} cells above, {a['below_neutral']} below; "
                       f"the neutral contour {'crosses' if a['crosses'] else 'does not cross'} the grid")
        return out
    if k == "chain":
        r = data.select("risk", source="theory")
        h = data.select("horizon", source="theory")
        return ["generation risk: " + ", ".join(f"{v:.6g}" for v in r), "generation horizon: " + ", ".join(map(str, h))]
    if k == "rates":
        return [f"{f['series']}: {f['quantity']} slope {f['slope']:+.4f} over [{f['window'][0]:g}, {f['window'][1]:g}] "
                f"vs predicted {f['expected']:+.4f} ({'within' if f['passed'] else 'outside'} +-{f['band']:g})"
                for f in a["fits"]]
    return [f"{n}: stability limit {a['limits'][n]:.6g}, step used {a['used_lr'][n]:.6g}, best constant step "
            f"{a['best'][n]['lr']:.6g} (final risk {a['best'][n]['risk']:.6g})" for n in a["models"]]
