"""The standard gallery (``spectral-theory gallery --out DIR``, ``docs/figures.md``): the two
transfer mechanisms, their phase diagrams, transfer that hurts, a chain, scaling laws and the
stability limit (theory), and with ``simulate`` theory against Monte Carlo for one
configuration of each comparison. Every caption states a claim and the numbers behind it,
read from the figure's own data (:data:`GALLERY`: each entry's ``caption`` is a function of
the :class:`~spectral_theory.figures.data.FigureData`; ``tests/test_figures.py`` checks each
claim against the same data).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SpecError
from .data import FigureData

__all__ = ["GalleryEntry", "GALLERY", "build_gallery", "gallery_data", "index_markdown", "MC_REPS"]

#: default Monte Carlo replicates of the gallery's theory-against-simulation figures
MC_REPS = 200


@dataclass(frozen=True)
class GalleryEntry:
    """One gallery figure: its file name, title, data builder ``build(options) -> FigureData``
    and caption ``caption(data) -> str``; ``simulate``: a Monte Carlo figure (built only when
    the gallery simulates)."""

    name: str
    title: str
    build: Callable[[dict[str, Any]], FigureData]
    caption: Callable[[FigureData], str]
    simulate: bool = False
    #: estimated seconds on two idle cores, the progress bar's unit (montecarlo.Progress); a phase
    #: diagram evaluates 42 comparisons
    weight: float = 1.0


# ---------------------------------------------------------------------------- the scenarios
def _problem(noise: float = 1.0, d: int = 400):
    from ..spec import PowerLawSpectrum, PowerLawTarget, Problem

    return Problem(PowerLawSpectrum(a=1.5, d=d), PowerLawTarget(b=2.0), noise=noise)


def _pts(spec: Any, points: int = 60) -> Any:
    from ..spec import Output

    return dataclasses.replace(spec, output=Output(points=points))


def _horizon_report():
    from ..demo import horizon_spec
    from ..transfer import evaluate

    return evaluate(_pts(horizon_spec()))


def _denoising_report():
    from ..demo import denoising_spec
    from ..transfer import evaluate

    return evaluate(_pts(denoising_spec()))


_CACHE: dict[str, Any] = {}


def _cached(key: str, fn: Callable[[], Any]) -> Any:
    """Reports shared by two figures of one gallery run (cleared by :func:`gallery_data`)."""
    if key not in _CACHE:
        _CACHE[key] = fn()
    return _CACHE[key]


def _opts(o: dict[str, Any]) -> dict[str, Any]:
    return {"style": o.get("style", "default"), "width": o.get("width")}


# ---------------------------------------------------------------------------- builders
def _b_horizon_modes(o):
    from .kinds import modes_data

    return modes_data(_cached("horizon", _horizon_report), **_opts(o))


def _b_horizon_curves(o):
    from .kinds import curves_data

    return curves_data(_cached("horizon", _horizon_report), **_opts(o))


def _b_denoising_profile(o):
    from .kinds import denoising_data

    return denoising_data(_cached("denoising", _denoising_report), **_opts(o))


def _b_denoising_curves(o):
    from .kinds import curves_data

    return curves_data(_cached("denoising", _denoising_report), **_opts(o))


#: the phase diagrams' grids (computed with the renewal solver, exact to ~1e-10 and, with its cost
#: independent of the number of steps, a third faster than auto's step-by-step choice here)
KD_MAP = (("teacher.steps", [30, 100, 300, 1000, 3000, 10000]), ("noise", [0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]))
PGR_MAP = (("weak.capacity", [5, 10, 20, 50, 100, 200]), ("strong.lr", [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4]))


def _b_map_kd(o):
    from ..demo import hurts_spec
    from .kinds import map_data

    return map_data(hurts_spec(), *KD_MAP, method="renewal", progress=o.get("progress"), **_opts(o))


def _b_map_pgr(o):
    from ..demo import denoising_spec
    from .kinds import map_data

    return map_data(denoising_spec(), *PGR_MAP, method="renewal", progress=o.get("progress"), **_opts(o))


def _b_hurts_modes(o):
    from ..demo import hurts_spec
    from .kinds import modes_data

    return modes_data(hurts_spec(), **_opts(o))


def chain_spec():
    """The gallery's chain: the distillation demo's teacher as generation 0, then seven
    generations of its capacity-200 student recipe, each on its parent's labels."""
    from ..demo import horizon_spec
    from ..transfer import Chain

    h = horizon_spec()
    return Chain(h.problem, base=h.teacher, child=h.student, generations=8)


def _b_chain(o):
    from .kinds import chain_data

    return chain_data(chain_spec(), **_opts(o))


#: (a, b) of the scaling-law figure: below, at and beyond b = 2a
RATE_PAIRS = ((1.5, 2.0), (2.0, 3.0), (1.5, 3.5))
RATE_BAND = 0.1


def rate_scenarios():
    """Noise-free power laws, d = 10^4, constant step 0.2 for 10^5 steps (the renewal solver)."""
    from ..spec import Model, Output, PowerLawSpectrum, PowerLawTarget, Problem, Scenario

    return [Scenario(Problem(PowerLawSpectrum(a=a, d=10**4), PowerLawTarget(b=b)),
                     (Model("m", steps=10**5, schedule=0.2),), output=Output(points=80), name=f"a{a:g}_b{b:g}")
            for a, b in RATE_PAIRS]


def _b_rates(o):
    from .kinds import rates_data

    return rates_data(rate_scenarios(), band=RATE_BAND, **_opts(o))


def stability_scenario():
    """examples/distillation.toml's problem with a teacher and a capacity-50 student."""
    from ..spec import Model, Output, PowerLawSpectrum, PowerLawTarget, Problem, Scenario

    prob = Problem(PowerLawSpectrum(a=1.5, d=1000), PowerLawTarget(b=2.0), noise=0.1)
    return Scenario(prob, (Model("teacher", steps=2000, schedule=0.3),
                           Model("student", steps=2000, schedule=0.3, capacity=50, teacher="teacher")),
                    output=Output(points=10), name="stability")


def _b_stability(o):
    from .kinds import stability_data

    return stability_data(stability_scenario(), progress=o.get("progress"), **_opts(o))


def mc_specs():
    """Small configurations for theory against Monte Carlo (d = 100, a few hundred steps)."""
    from ..spec import Model, Output
    from ..transfer import Chain, Distillation, WeakToStrong

    prob = _problem(noise=0.5, d=100)
    out = Output(points=16)
    kd = Distillation(prob, teacher=Model("teacher", steps=1000, schedule=0.1, batch=2),
                      student=Model("student", steps=400, schedule=0.3, capacity=50), output=out)
    w2s = WeakToStrong(prob, weak=Model("weak", steps=300, schedule=0.35, capacity=20),
                       strong=Model("strong", steps=300, schedule=0.05), output=out)
    ch = Chain(prob, base=Model("base", steps=1000, schedule=0.1, batch=2),
               child=Model("child", steps=400, schedule=0.3, capacity=50), generations=4, output=out)
    return {"kd": kd, "w2s": w2s, "chain": ch}


def _mc_reports(kind: str, o: dict[str, Any]) -> tuple[Any, Any]:
    """Theory and Monte Carlo reports of one of :func:`mc_specs` (shared by the figures of a run)."""
    from ..transfer import evaluate

    reps, seed = o.get("reps", MC_REPS), o.get("seed", 0)

    def both():
        spec = mc_specs()[kind]
        return evaluate(spec), evaluate(spec, simulate=True, reps=reps, seed=seed, progress=o.get("progress"))

    return _cached(f"mc-{kind}-{reps}-{seed}", both)


def _b_mc(kind: str, figure: str):
    def build(o):
        from .kinds import chain_data, curves_data, modes_data

        theory, sim = _mc_reports(kind, o)
        if figure == "modes":
            return modes_data(theory, sim, **_opts(o))
        return chain_data(theory, sim, **_opts(o)) if kind == "chain" else \
            curves_data(theory, sim, oracle=False, **_opts(o))

    return build


# ---------------------------------------------------------------------------- captions
def _f(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}g}"


def _c_horizon_modes(d: FigureData) -> str:
    h = d.annotations["horizons"]
    m = d.annotations["metrics"]
    return (f"**Spectral horizon expansion.** Normalised error $M_{{ii}}/\\theta_i^2$ per mode at the end of "
            f"training ($\\lambda_i = i^{{-1.5}}$, $\\theta_i^2 = i^{{-2}}$, d = 400, noise $\\sigma^2 = 1$; teacher "
            f"20000 steps at lr 0.05, B = 4; students: capacity 200, 2000 steps at lr 0.3). The distilled student "
            f"learns {h['kd_student']} modes (normalised error at most 1/2) against {h['hard_student']} for the "
            f"same student on hard labels: its horizon exceeds the hard-label student's by "
            f"{h['kd_student'] - h['hard_student']} modes (the teacher's horizon is {h['teacher']}). "
            f"KD gain $E_{{hard}}/E_{{kd}}$ = {_f(m['kd_gain'], 4)}.")


def _c_horizon_curves(d: FigureData) -> str:
    fin, o = d.annotations["final"], d.annotations["oracle"]
    return (f"**Risk curves of the horizon-expansion comparison** (same models; stars: oracle stopping steps). "
            f"Final excess risk: teacher {_f(fin['teacher'])}, distilled student {_f(fin['kd_student'])}, "
            f"hard-label student {_f(fin['hard_student'])}. The hard-label student is best at step "
            f"{o['hard_student']['step']} ({_f(o['hard_student']['risk'])}) and then fits its label noise; the "
            f"distilled student, taught by noise-free soft labels, is still improving at its last step "
            f"{o['kd_student']['step']}.")


def _c_denoising_profile(d: FigureData) -> str:
    m = d.annotations["metrics"]
    return (f"**Spectral denoising.** Per-mode variance parts (the label-noise-driven error) of a weak teacher "
            f"(capacity 50, 1000 steps at lr 0.35) and of the strong student trained on its labels (full capacity, "
            f"1000 steps at lr 0.02). The teacher's error is mostly noise on {m['teacher_noisy_modes']} modes "
            f"(shaded); on {m['denoised_modes']} of them the student's variance part is below the teacher's "
            f"(totals {_f(m['student_variance_on_noisy_modes'], 4)} against "
            f"{_f(m['teacher_variance_on_noisy_modes'], 4)}).")


def _c_denoising_curves(d: FigureData) -> str:
    m = d.annotations["metrics"]
    return (f"**Weak-to-strong risk curves.** Weak teacher, W2S student and strong ceiling (the strong recipe on "
            f"hard labels): final excess risk {_f(m['weak_risk'], 4)}, {_f(m['w2s_risk'], 4)} and "
            f"{_f(m['ceiling_risk'], 4)}. The student recovers PGR = {_f(m['pgr'])} of the gap at the end of "
            f"training, {_f(m['pgr_oracle'])} with each model at its oracle stopping step (stars).")


def _cells_text(a: dict[str, Any]) -> str:
    return f"{a['above_neutral']} of {a['nx'] * a['ny']} cells above, {a['below_neutral']} below"


def _c_map_kd(d: FigureData) -> str:
    a = d.annotations
    return (f"**When distillation helps: KD gain over teacher training and label noise.** KD gain "
            f"$E_{{hard}}/E_{{kd}}$ on a {a['nx']} x {a['ny']} grid (teacher: full capacity, lr 0.3; students: "
            f"2000 steps at lr 0.3; $\\lambda_i = i^{{-1.5}}$, $\\theta_i^2 = i^{{-2}}$, d = 400). Blue: KD gain "
            f"above 1, red: below ({_cells_text(a)}); the black line is KD gain = 1. With clean labels an "
            f"under-trained teacher caps its student (KD gain down to {_f(a['min'])}); with noisy labels the "
            f"teacher's noise-free labels help (up to {_f(a['max'])}).")


def _c_map_pgr(d: FigureData) -> str:
    a = d.annotations
    return (f"**Weak-to-strong phase diagram: PGR over weak capacity and strong step size** (the denoising "
            f"recipes otherwise). Blue: PGR > 0 ({_cells_text(a)}); the black line is PGR = 0. A strong student "
            f"with a small step averages the weak teacher's noise away (PGR up to {_f(a['max'])}); with a large "
            f"step it copies it (PGR down to {_f(a['min'])}).")


def _c_hurts_modes(d: FigureData) -> str:
    h = d.annotations["horizons"]
    m = d.annotations["metrics"]
    return (f"**When transfer hurts.** Teacher trained only 100 steps (lr 0.3) on clean labels (noise 0.01): "
            f"the distilled student learns the teacher's function, so its horizon stays at the teacher's "
            f"({h['kd_student']} and {h['teacher']} modes), while the hard-label student with the same recipe "
            f"learns {h['hard_student']} modes. KD gain = {_f(m['kd_gain'])} < 1.")


def _c_chain(d: FigureData) -> str:
    r = d.select("risk", source="theory")
    h = d.select("horizon", source="theory")
    g = d.annotations["generation_growth"]
    return (f"**A chain of {len(r)} generations** (generation 0: the distillation teacher; each later one the "
            f"capacity-200 student recipe on its parent's labels). The excess risk grows at every generation, "
            f"from {_f(r[0])} to {_f(r[-1])} (x{_f(d.annotations['final_over_first'])}; growth per generation "
            f"{_f(min(g))} to {_f(max(g))}), and the horizon shrinks from {h[0]} to {h[-1]} modes: each copy "
            f"loses modes its parent knew.")


def _c_rates(d: FigureData) -> str:
    parts = []
    for f in d.annotations["fits"]:
        parts.append(f"(a, b) = ({f['a']:g}, {f['b']:g}): fitted {f['slope']:+.3f}, predicted {f['expected']:+.3f}")
    beyond = [f for f in d.annotations["fits"] if f["b"] > 2 * f["a"]]
    tail = ""
    if beyond:
        f = beyond[0]
        tail = (f" For b > 2a the textbook exponent -(b-1)/a = {-(f['b'] - 1) / f['a']:+.3f} is off by "
                f"{abs(f['slope'] + (f['b'] - 1) / f['a']):.3f}: SGD noise sets the rate (docs/corrections.md).")
    w = d.annotations["fits"][0]["window"]
    return (f"**Scaling laws.** Noise-free excess risk of constant-step SGD (lr 0.2, d = 10^4) for three "
            f"power-law problems, log-log slopes fitted over steps {w[0]:g} to {w[1]:g} (thick) against the "
            f"predicted exponent -min((b-1)/a, 2-1/a) (dashed): " + "; ".join(parts)
            + f"; all within {RATE_BAND:g} of the prediction." + tail)


def _c_stability(d: FigureData) -> str:
    a = d.annotations
    parts = []
    for n in a["models"]:
        risks = d.select("final_risk", model=n)
        parts.append(f"{n}: limit {a['limits'][n]:.4g}, best step {a['best'][n]['lr']:.3g} "
                     f"({a['best'][n]['fraction']:.2g} of the limit), risk x{risks[-1] / a['best'][n]['risk']:.3g} "
                     f"higher at {d.select('fraction', model=n)[-1]:.2g} of it")
    return ("**Stability limit.** Final excess risk against a constant step size for each model "
            "($\\lambda_i = i^{-1.5}$, d = 1000, noise 0.1; teacher 2000 steps, capacity-50 student 2000 steps); "
            "dashed: the largest stable constant step (docs/theory.md §5). " + "; ".join(parts) + ".")


def mc_agreement(d: FigureData) -> dict[str, Any]:
    """Theory against Monte Carlo in a figure's data: per point ``z = (MC - theory) / SE`` (the
    theory at the same model/generation and step; points with SE = 0 agree exactly or not at
    all), how many are within 2 and 4 SE, and the largest ``|z|``."""
    zs, exact_bad = [], 0
    if d.kind == "modes":
        pairs = []
        for name in d.annotations["models"]:
            th = d.select("normalised", model=name, source="theory")
            pairs += list(zip(th, d.select("normalised", model=name, source="montecarlo"),
                              d.select("se", model=name, source="montecarlo"), strict=True))
    elif d.kind == "chain":
        th = dict(zip(d.select("generation", source="theory"), d.select("risk", source="theory"), strict=True))
        pts = zip(d.select("generation", source="montecarlo"), d.select("risk", source="montecarlo"),
                  d.select("se", source="montecarlo"), strict=True)
        pairs = [(th[g], v, se) for g, v, se in pts]
    else:
        pairs = []
        for name in d.annotations["models"]:
            th = dict(zip(d.select("step", model=name, source="theory"),
                          d.select("excess_risk", model=name, source="theory"), strict=True))
            pairs += [(th[t], v, se) for t, v, se in zip(d.select("step", model=name, source="montecarlo"),
                                                         d.select("excess_risk", model=name, source="montecarlo"),
                                                         d.select("se", model=name, source="montecarlo"), strict=True)]
    for t, v, se in pairs:
        if se > 0:
            zs.append((v - t) / se)
        elif abs(v - t) > 1e-12 * max(1.0, abs(t)):
            exact_bad += 1
    z = np.abs(np.array(zs))
    return {"points": len(pairs), "with_se": int(z.size), "within_2se": int((z <= 2).sum()),
            "within_4se": int((z <= 4).sum()), "max_abs_z": float(z.max()) if z.size else 0.0,
            "exact_disagreements": exact_bad}


def _c_mc(kind: str) -> Callable[[FigureData], str]:
    what = {"kd": "distillation (risk curves of teacher, distilled and hard-label students)",
            "kd-modes": "distillation (per-mode normalised error at the end of training; markers on 30 "
                        "log-spaced modes, every mode in the data)",
            "w2s": "weak-to-strong (risk curves of weak teacher, W2S student, strong ceiling)",
            "chain": "a 4-generation chain (final risk per generation)"}[kind]

    def caption(d: FigureData) -> str:
        mc = d.source.get("montecarlo", {})
        a = mc_agreement(d)
        exact = a["points"] - a["with_se"]
        tail = (f"; the {exact} deterministic points (where every replicate agrees: step 0, modes beyond a "
                f"capacity) agree exactly" if exact else "")
        return (f"**Theory against Monte Carlo: {what}.** Lines: theory; markers: the mean of {mc.get('reps')} "
                f"simulated SGD runs (seed {mc.get('seed')}) with $\\pm 2$ SE bars ($\\lambda_i = i^{{-1.5}}$, "
                f"$\\theta_i^2 = i^{{-2}}$, d = 100, noise 0.5). {a['within_2se']} of {a['with_se']} simulated "
                f"points lie within 2 SE of the theory and {a['within_4se']} within 4 SE (largest |z| = "
                f"{a['max_abs_z']:.2f}){tail}.")

    return caption


#: the gallery, in the order of its index
GALLERY: tuple[GalleryEntry, ...] = (
    GalleryEntry("horizon-modes", "Spectral horizon expansion", _b_horizon_modes, _c_horizon_modes),
    GalleryEntry("horizon-curves", "Horizon expansion: risk curves", _b_horizon_curves, _c_horizon_curves),
    GalleryEntry("denoising-profile", "Spectral denoising", _b_denoising_profile, _c_denoising_profile),
    GalleryEntry("denoising-curves", "Weak-to-strong: risk curves", _b_denoising_curves, _c_denoising_curves),
    GalleryEntry("map-kd-gain", "Phase diagram: KD gain", _b_map_kd, _c_map_kd, weight=7.0),
    GalleryEntry("map-pgr", "Phase diagram: PGR", _b_map_pgr, _c_map_pgr, weight=4.0),
    GalleryEntry("hurts-modes", "When transfer hurts", _b_hurts_modes, _c_hurts_modes),
    GalleryEntry("chain", "A multi-generation chain", _b_chain, _c_chain),
    GalleryEntry("rates", "Scaling laws", _b_rates, _c_rates),
    GalleryEntry("stability", "Stability limit", _b_stability, _c_stability),
    GalleryEntry("mc-kd", "Theory against Monte Carlo: distillation", _b_mc("kd", "curves"), _c_mc("kd"),
                 simulate=True, weight=6.0),
    GalleryEntry("mc-kd-modes", "Theory against Monte Carlo: per-mode errors", _b_mc("kd", "modes"),
                 _c_mc("kd-modes"), simulate=True),
    GalleryEntry("mc-w2s", "Theory against Monte Carlo: weak-to-strong", _b_mc("w2s", "curves"), _c_mc("w2s"),
                 simulate=True, weight=3.0),
    GalleryEntry("mc-chain", "Theory against Monte Carlo: chain", _b_mc("chain", "chain"), _c_mc("chain"),
                 simulate=True, weight=6.0),
)
NAMES = tuple(e.name for e in GALLERY)


def select_entries(only: Any, simulate: bool) -> list[GalleryEntry]:
    if only is None:
        return [e for e in GALLERY if simulate or not e.simulate]
    names = [n.strip() for n in only.split(",")] if isinstance(only, str) else list(only)
    for n in names:
        if n not in NAMES:
            raise SpecError("only", n, f"must be gallery figures among {list(NAMES)}")
    out = [e for e in GALLERY if e.name in names]
    for e in out:
        if e.simulate and not simulate:
            raise SpecError("only", e.name, "is a Monte Carlo figure: it needs simulate (--simulate)")
    return out


def gallery_data(*, simulate: bool = False, reps: int = MC_REPS, seed: int = 0, only: Any = None,
                 style: str = "default", width: Any = None, progress: bool | None = None) -> list[FigureData]:
    """The data of every gallery figure (``only``: some of :data:`NAMES`; ``simulate``: with the
    Monte Carlo figures), each with its caption; one progress bar over the figures."""
    from ..montecarlo import Progress
    from .kinds import progress_on

    entries = select_entries(only, simulate)
    o = {"style": style, "width": width, "reps": reps, "seed": seed, "progress": False}
    bar = Progress(sum(e.weight for e in entries), progress_on(progress, True), label="gallery")
    out = []
    _CACHE.clear()
    try:
        for e in entries:
            bar.advance(0.0, e.name, force=True)
            data = e.build(o)
            data.caption = e.caption(data)
            data.options["gallery"] = e.name
            out.append(data)
            bar.advance(e.weight, e.name)
    finally:
        _CACHE.clear()
        bar.close()
    return out


def index_markdown(items: list[FigureData], *, image_format: str = "png") -> str:
    """``index.md``: every figure with its title, image, caption and data files."""
    titles = {e.name: e.title for e in GALLERY}
    lines = ["# spectral-theory gallery", "",
             "Built by `spectral-theory gallery`; every caption's numbers are read from the figure's data "
             "(`NAME.csv`, `NAME.json` beside each image; `spectral-theory replot NAME.json` redraws one). "
             "Excess risk is never halved; step sizes are batch-mean; each model counts its own steps "
             "(docs/conventions.md).", ""]
    for d in items:
        name = d.options["gallery"]
        lines += [f"## {titles[name]}", "", f"![{titles[name]}]({name}.{image_format})", "", d.caption, "",
                  f"Data: [`{name}.csv`]({name}.csv), [`{name}.json`]({name}.json); method: {d.method}.", ""]
    return "\n".join(lines)


def build_gallery(out: str | Path, *, formats: Any = ("png",), simulate: bool = False, reps: int = MC_REPS,
                  seed: int = 0, only: Any = None, style: str = "default", width: Any = None,
                  progress: bool | None = None, write: bool = True) -> dict[str, bytes]:
    """Build the gallery into the directory ``out`` (created if missing): per figure
    ``NAME.<format>`` for each of ``formats`` (``pdf``, ``png``, ``svg``; the first is shown in
    the index), ``NAME.csv`` and ``NAME.json``, and ``index.md``. Everything is computed and
    rendered before anything is written, then written all or nothing. Returns ``{path: bytes}``
    (``write=False``: computes without writing)."""
    from . import FORMATS, figure_files, image_bytes, write_atomically
    from .kinds import render

    fmts = [f.strip().lower().lstrip(".") for f in formats.split(",")] if isinstance(formats, str) else list(formats)
    if not fmts or any(f not in FORMATS for f in fmts):
        raise SpecError("formats", formats, f"must be one or more of {list(FORMATS)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SpecError("--out", str(out), "is not a directory: the gallery writes a directory of files")
    items = gallery_data(simulate=simulate, reps=reps, seed=seed, only=only, style=style, width=width,
                         progress=progress)
    files: dict[str, bytes] = {}
    for d in items:
        name = d.options["gallery"]
        fig = render(d)
        files.update(figure_files(fig, out / f"{name}.{fmts[0]}"))
        for f in fmts[1:]:
            files[str(out / f"{name}.{f}")] = image_bytes(fig, f)
    files[str(out / "index.md")] = index_markdown(items, image_format=fmts[0]).encode("utf-8")
    if write:
        made = not out.exists()
        out.mkdir(parents=True, exist_ok=True)
        try:
            write_atomically(files)
        except BaseException:
            if made:
                try:
                    out.rmdir()
                except OSError:
                    pass
            raise
    return files
