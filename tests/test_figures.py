"""The figure layer (issue 9, ``docs/figures.md``): every kind rendered headless into a temporary
folder, its data file against the values ``predict``/``evaluate``/``transfer_map`` return when
called independently here (to 1e-12), ``replot`` reproducing the data and the figure (axes,
labels, scales, line counts, and the very pixels), the command line, and every gallery caption's
claim checked against the same data the caption was written from."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from conftest import run_cli as run

import spectral_theory as st
from spectral_theory.cli import main
from spectral_theory.figures import kinds as K
from spectral_theory.figures import replot, save

PROB = st.Problem(st.PowerLawSpectrum(a=1.5, d=60), st.PowerLawTarget(b=2.0), noise=0.5)
OUT = st.Output(points=12)
KD = st.Distillation(PROB, teacher=st.Model("T", steps=400, schedule=0.1, batch=2),
                     student=st.Model("S", steps=200, schedule=0.3, capacity=30), output=OUT)
W2S = st.WeakToStrong(PROB, weak=st.Model("W", steps=200, schedule=0.35, capacity=15),
                      strong=st.Model("S", steps=200, schedule=0.05), output=OUT)
CHAIN = st.Chain(PROB, base=st.Model("B", steps=400, schedule=0.1, batch=2),
                 child=st.Model("C", steps=200, schedule=0.3, capacity=30), generations=4, output=OUT)
SCN = st.Scenario(PROB, (st.Model("t", steps=300, schedule=0.2),
                         st.Model("s", steps=200, schedule=st.StepDecay(0.3, 0.5, 50), capacity=20, teacher="t")),
                  output=OUT, name="small")
TOL = 1e-12


# ---------------------------------------------------------------------------- helpers
def read_csv(path) -> list[dict[str, str]]:
    """The CSV as written, read with the csv module (not the package's reader)."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def column(rows, name, **where) -> np.ndarray:
    sel = [r for r in rows if all(r[k] == str(v) for k, v in where.items())]
    return np.array([float(r[name]) if r[name] != "" else np.nan for r in sel])


def close(x, y, what: str) -> None:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    assert x.shape == y.shape, (what, x.shape, y.shape)
    both_nan = np.isnan(x) & np.isnan(y)
    ok = both_nan | (np.abs(x - y) <= TOL * np.maximum(np.abs(y), 1e-300))
    assert ok.all(), f"{what}: {x[~ok][:3]} vs {y[~ok][:3]}"


def signature(fig) -> list[tuple]:
    """What a reader sees of each axes: labels, scales, limits, line and collection counts,
    the lines' data and the legend."""
    out = []
    for ax in fig.axes:
        leg = ax.get_legend()
        out.append((ax.get_xlabel(), ax.get_ylabel(), ax.get_xscale(), ax.get_yscale(), len(ax.lines),
                    len(ax.collections), len(ax.patches), len(ax.containers),
                    tuple(np.round(ax.get_xlim(), 12)), tuple(np.round(ax.get_ylim(), 12)),
                    tuple(repr(np.asarray(line.get_xydata(), dtype=float).ravel().tolist()) for line in ax.lines),
                    tuple((t.get_text(), t.get_color()) for t in ax.texts),
                    tuple(t.get_text() for t in leg.get_texts()) if leg else ()))
    return out


def pixels(path):
    import matplotlib.image

    return matplotlib.image.imread(str(path))


def rendered(fig, tmp_path, name: str, *, same_pixels: bool = False):
    """Save the figure with its data, check the image is not blank, replot it from the JSON and
    check that the replot has the same data and axes (labels, scales, limits, lines and their
    data, legend), with ``same_pixels`` also the very same image. Returns the CSV rows."""
    paths = save(fig, tmp_path / f"{name}.png")
    assert paths == [str(tmp_path / f"{name}.{s}") for s in ("png", "csv", "json")]
    img = pixels(tmp_path / f"{name}.png")
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(img[..., :3].var()) > 1e-3, "blank image"
    assert len(np.unique(img[..., :3].reshape(-1, 3), axis=0)) > 20  # more than a few flat colours
    again = replot(tmp_path / f"{name}.json")
    d0, d1 = fig.spectral_data, again.spectral_data
    assert d1.kind == d0.kind and list(d1.columns) == list(d0.columns) and d1.types == d0.types
    for k in d0.columns:
        a, b = d0.columns[k], d1.columns[k]
        assert len(a) == len(b)
        assert all((x == y) or (isinstance(x, float) and math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True)), k
    assert json.loads(json.dumps(d1.annotations)) == json.loads(json.dumps(_jsonable(d0.annotations)))
    assert signature(again) == signature(fig)
    if same_pixels:  # the very same picture (one more rendering: two kinds of figure only)
        save(again, tmp_path / f"{name}-replot.png", data=False)
        assert np.array_equal(pixels(tmp_path / f"{name}-replot.png"), img)
    rec = json.loads((tmp_path / f"{name}.json").read_text())
    assert rec["version"] == st.__version__ and rec["conventions"] == st.CONVENTIONS
    assert rec["csv"] == f"{name}.csv" and rec["image"] == f"{name}.png" and rec["method"]
    return read_csv(tmp_path / f"{name}.csv")


def _jsonable(obj):
    from spectral_theory.result import jsonable

    return jsonable(obj)


# ---------------------------------------------------------------------------- kinds
def test_curves_of_a_scenario_equal_predict(tmp_path):
    fig = K.curves(SCN, split=True)
    rows = rendered(fig, tmp_path, "curves", same_pixels=True)
    res = st.predict(SCN)
    for name in ("t", "s"):
        m = res[name]
        assert column(rows, "step", model=name, source="theory").tolist() == m.steps.tolist()
        close(column(rows, "excess_risk", model=name, source="theory"), m.excess_risk, f"{name} risk")
        close(column(rows, "bias", model=name, source="theory"), m.bias, f"{name} bias")
        close(column(rows, "variance", model=name, source="theory"), m.variance, f"{name} variance")
        # step 0 is phi = 0: the excess risk is sum_i theta_i^2 (docs/conventions.md)
        assert column(rows, "excess_risk", model=name, source="theory")[0] == pytest.approx(PROB.theta2.sum(),
                                                                                         rel=1e-14)
        # the oracle stop against the curve at every step, computed here (docs/theory.md §8)
        curve = st.predict(SCN, every_step=True)[name].curve
        stop = fig.spectral_data.annotations["oracle"][name]
        assert stop["step"] == int(np.argmin(curve)) and stop["risk"] == pytest.approx(curve.min(), rel=1e-12)
    ax = fig.axes[0]
    assert len(fig.axes) == 1 and ax.get_xscale() == ax.get_yscale() == "log"
    assert "excess risk" in ax.get_ylabel() and "not halved" in ax.get_ylabel()
    assert "step" in ax.get_xlabel()
    assert len(ax.lines) == 2 * 4  # per model: risk, bias, variance, oracle star


@pytest.fixture(scope="module")
def kd_mc():
    """The distillation simulated through evaluate (20 replicates, seed 3), shared by two tests."""
    import warnings

    from spectral_theory.montecarlo import HeavyTailWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HeavyTailWarning)
        return st.evaluate(KD, simulate=True, reps=20, seed=3, progress=False)


@pytest.mark.montecarlo
@pytest.mark.filterwarnings("ignore::spectral_theory.montecarlo.HeavyTailWarning")
def test_curves_with_monte_carlo_markers_equal_evaluate(tmp_path, kd_mc):
    fig = K.curves(KD, simulate=True, reps=20, seed=3, progress=False)
    rows = rendered(fig, tmp_path, "mc")
    theory = st.evaluate(KD)
    mc = kd_mc
    for lineage in ("distilled", "hard"):
        for name, m in theory.results[lineage].models.items():
            close(column(rows, "excess_risk", model=name, source="theory"), m.excess_risk, name)
            s = mc.results[lineage].models[name]
            close(column(rows, "excess_risk", model=name, source="montecarlo"), s.excess_risk, f"{name} MC")
            close(column(rows, "se", model=name, source="montecarlo"), s.excess_risk_se, f"{name} SE")
            close(column(rows, "ci_low", model=name, source="montecarlo"), s.excess_risk_ci_low, f"{name} CI")
            assert fig.spectral_data.annotations["oracle"][name]["step"] == theory.models[name].oracle_step
    ax = fig.axes[0]
    assert len(ax.containers) == 3  # one error-bar set per model
    for c, name in zip(ax.containers, ("teacher", "kd_student", "hard_student"), strict=True):
        steps = column(rows, "step", model=name, source="montecarlo")
        se = column(rows, "se", model=name, source="montecarlo")[steps > 0]
        seg = c.lines[2][0].get_segments()
        assert np.allclose([s[1, 1] - s[0, 1] for s in seg], 4 * se, rtol=1e-12, atol=0)  # +-2 SE bars
    rec = json.loads((tmp_path / "mc.json").read_text())
    assert rec["source"]["montecarlo"] == {"reps": 20, "seed": 3} and rec["method"].endswith("montecarlo")


def test_modes_of_a_comparison_equal_evaluate_and_replot_on_lambda(tmp_path):
    fig = K.modes(KD)
    rows = rendered(fig, tmp_path, "modes")
    rep = st.evaluate(KD)
    for name, m in rep.models.items():
        close(column(rows, "normalised", model=name), m.normalised, name)
        close(column(rows, "normalised_bias", model=name), m.normalised_bias, name)
        close(column(rows, "normalised_variance", model=name), m.normalised_variance, name)
        close(column(rows, "lambda", model=name), PROB.eigenvalues, "lambda")
        # the horizon recomputed from the file: the largest mode with normalised error <= 1/2
        n = column(rows, "normalised", model=name)
        assert fig.spectral_data.annotations["horizons"][name] == m.horizon == int(np.flatnonzero(n <= 0.5)[-1] + 1)
    ax = fig.axes[0]
    assert len(ax.lines) == 3 + 3 + 1  # a line and a horizon marker per model, the 1/2 threshold
    assert ax.get_xlabel().startswith("mode index")
    lam = replot(tmp_path / "modes.json", axis="lambda", style="paper")
    assert lam.axes[0].get_xlabel().startswith("eigenvalue") and lam.axes[0].xaxis_inverted()
    close(lam.axes[0].lines[0].get_xdata(), PROB.eigenvalues, "x = lambda")
    assert lam.get_size_inches()[0] == pytest.approx(3.4)


def test_modes_of_a_scenario_are_second_moments_over_theta2():
    # the data path of a Scenario (the drawing is the comparison's, rendered above)
    data = K.modes_data(SCN)
    res = st.predict(SCN)
    for name in ("t", "s"):
        p = res[name].modes
        close(data.select("normalised", model=name), p.second_moment / PROB.theta2, name)
        close(data.select("normalised_bias", model=name), p.bias / PROB.theta2, name)
        close(data.select("normalised_variance", model=name), p.variance / PROB.theta2, name)
        n = p.second_moment / PROB.theta2
        assert data.annotations["horizons"][name] == int(np.flatnonzero(n <= 0.5)[-1] + 1)


@pytest.mark.montecarlo
@pytest.mark.filterwarnings("ignore::spectral_theory.montecarlo.HeavyTailWarning")
def test_modes_with_monte_carlo(tmp_path, kd_mc):
    mc = kd_mc
    fig = K.modes(st.evaluate(KD), mc)  # (simulate=True runs the same call: test_curves_with_monte_carlo_...)
    rows = rendered(fig, tmp_path, "mcmodes")
    for lineage in mc.results.values():
        for name, m in lineage.models.items():
            close(column(rows, "normalised", model=name, source="montecarlo"), m.modes.second_moment / PROB.theta2,
                  name)
            close(column(rows, "se", model=name, source="montecarlo"), m.modes.second_moment_se / PROB.theta2, name)
    assert len(fig.axes[0].containers) == 3


@pytest.mark.filterwarnings("ignore::spectral_theory.montecarlo.HeavyTailWarning")
def test_denoising_equals_the_report_profiles(tmp_path):
    fig = K.denoising(W2S)
    rows = rendered(fig, tmp_path, "den")
    rep = st.evaluate(W2S)
    for k in ("teacher_variance", "student_variance", "teacher_bias", "student_bias"):
        close(column(rows, k), rep.profiles[k], k)
    noisy = column(rows, "teacher_noisy").astype(bool)
    tv, sv = column(rows, "teacher_variance"), column(rows, "student_variance")
    assert noisy.sum() == rep["teacher_noisy_modes"] and (noisy & (sv < tv)).sum() == rep["denoised_modes"]
    assert len(fig.axes[0].lines) == 4 and len(fig.axes[0].patches) == len(K._runs(noisy))
    with pytest.raises(st.SpecError, match="Monte Carlo"):
        K.denoising_data(st.evaluate(W2S, simulate=True, reps=2, seed=0, progress=False))
    with pytest.raises(st.SpecError, match="WeakToStrong"):
        K.denoising_data(KD)


def test_map_equals_transfer_map_with_its_neutral_contour(tmp_path):
    x, y = ("teacher.steps", [30, 100, 400]), ("noise", [0.001, 0.1, 3.0])
    hurts = dataclasses.replace(KD, problem=dataclasses.replace(PROB, noise=0.01))
    fig = K.phase_map(hurts, x, y, progress=False)
    rows = rendered(fig, tmp_path, "map")
    mp = st.transfer_map(hurts, x, y)
    close(column(rows, "value"), mp.values.ravel(), "kd gain")
    assert column(rows, "x").tolist() == [float(v) for v in np.repeat(x[1], 3)]
    a = fig.spectral_data.annotations
    assert a["neutral"] == 1.0 and a["metric"] == "kd_gain"
    assert a["crosses"] == bool(mp.values.min() < 1 < mp.values.max()) is True
    assert a["above_neutral"] == int((mp.values > 1).sum()) and a["below_neutral"] == int((mp.values < 1).sum())
    ax = fig.axes[0]
    from matplotlib.collections import QuadMesh

    assert any(isinstance(c, QuadMesh) for c in ax.collections)
    # the KD gain = 1 contour: where two neighbouring cells straddle 1 it passes between their
    # centres at the point interpolated linearly in the drawn coordinates (log x, log KD gain)
    contour = [line for line in ax.lines if line.get_label() in ("KD gain = 1 (neutral)", "_neutral")]
    assert contour and all(line.get_color() == "black" for line in contour)
    pts = np.concatenate([line.get_xydata() for line in contour])
    lv, lx = np.log(mp.values), np.log(np.array(x[1], dtype=float))
    crossings = 0
    for j, yv in enumerate(y[1]):
        for i in range(len(x[1]) - 1):
            if lv[i, j] * lv[i + 1, j] < 0:
                xc = math.exp(lx[i] - lv[i, j] * (lx[i + 1] - lx[i]) / (lv[i + 1, j] - lv[i, j]))
                assert np.min(np.hypot(np.log(pts[:, 0] / xc), np.log(pts[:, 1] / yv))) < 1e-9, (xc, yv)
                crossings += 1
    assert crossings >= 1
    norm = next(c for c in ax.collections if isinstance(c, QuadMesh)).norm
    # diverging colours centred on the neutral value, symmetric in log for a ratio: a gain g and
    # a gain 1/g are equally deep blue and red
    g = float(mp.values.min())
    assert float(norm(1.0)) == pytest.approx(0.5, abs=1e-12)
    assert float(norm(g)) + float(norm(1 / g)) == pytest.approx(1.0, abs=1e-12)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["KD gain = 1 (neutral)"]
    assert len(fig.axes) == 2 and "KD gain" in fig.axes[1].get_ylabel()  # the colour bar


def test_chain_equals_evaluate(tmp_path):
    fig = K.chain(CHAIN)
    rows = rendered(fig, tmp_path, "chain")
    rep = st.evaluate(CHAIN)
    close(column(rows, "risk", source="theory"), rep["generation_risk"], "risk")
    close(column(rows, "oracle_risk", source="theory"), rep["generation_oracle_risk"], "oracle")
    assert column(rows, "horizon", source="theory").tolist() == rep["generation_horizon"]
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 1
    assert "horizon" in fig.axes[1].get_ylabel() and "not halved" in fig.axes[0].get_ylabel()


def test_rates_equal_check_rate(tmp_path):
    from spectral_theory.analysis.asymptotics import bias_rate_exponent
    from spectral_theory.analysis.rates import check_rate

    scs = [st.Scenario(st.Problem(st.PowerLawSpectrum(a=a, d=500), st.PowerLawTarget(b=b)),
                       (st.Model("m", steps=4000, schedule=0.2),), output=st.Output(points=40)) for a, b in
           ((1.5, 2.0), (2.0, 3.0))]
    fig = K.rates(scs, window=(100, 4000))
    rows = rendered(fig, tmp_path, "rates")
    for sc, f in zip(scs, fig.spectral_data.annotations["fits"], strict=True):
        res = st.predict(sc)
        chk = check_rate(res, bias_rate_exponent(sc.problem.spectrum.a, sc.problem.target.b), (100, 4000), 0.05)
        assert f["slope"] == chk.slope and f["expected"] == chk.expected and f["passed"] == chk.passed
        close(column(rows, "value", series=f["series"]), res["m"].excess_risk, "curve")
        # the fitted line goes through the curve's geometric mean over the window, with the
        # least-squares slope of log risk on log step (numpy's polyfit here)
        t, v = res["m"].steps.astype(float), res["m"].excess_risk
        w = (t >= 100) & (t <= 4000)
        assert f["slope"] == pytest.approx(np.polyfit(np.log(t[w]), np.log(v[w]), 1)[0], rel=1e-9)
        a, b = sc.problem.spectrum.a, sc.problem.target.b
        assert f["expected"] == pytest.approx(-min((b - 1) / a, 2 - 1 / a), rel=1e-12)  # docs/theory.md §7
        assert f["intercept"] == pytest.approx(np.mean(np.log(v[w])) - chk.slope * np.mean(np.log(t[w])), rel=1e-12)
    assert len(fig.axes[0].lines) == 3 * 2


def test_stability_sweeps_fractions_of_the_limit(tmp_path):
    fig = K.stability(SCN, fractions=[0.1, 0.5, 0.9], progress=False)
    rows = rendered(fig, tmp_path, "stab")
    lam = PROB.eigenvalues
    for k, m in enumerate(SCN.models):
        limit = st.stability_limit(m.speed_profile(lam), m.batch, PROB.kappa)
        assert fig.spectral_data.annotations["limits"][m.name] == limit
        close(column(rows, "lr", model=m.name), [0.1 * limit, 0.5 * limit, 0.9 * limit], "lr grid")
        for f, risk in zip((0.1, 0.5, 0.9), column(rows, "final_risk", model=m.name), strict=True):
            models = list(SCN.models)
            models[k] = dataclasses.replace(m, schedule=st.Constant(f * limit))
            ref = st.predict(dataclasses.replace(SCN, models=tuple(models)))[m.name].excess_risk[-1]
            assert risk == pytest.approx(ref, rel=TOL)
    assert len(fig.axes[0].lines) == 2 * 2  # a curve and a limit line per model
    with pytest.raises(st.SpecError, match="fractions"):
        K.stability_data(SCN, fractions=[0.5, 1.2])


def test_paper_style_and_palette(tmp_path):
    from spectral_theory.figures.style import PALETTE

    fig = K.curves(SCN, style="paper", width="double", oracle=False)
    assert tuple(fig.get_size_inches()) == pytest.approx((7.0, 7.0 * 0.75))
    assert [line.get_color() for line in fig.axes[0].lines] == list(PALETTE[:2])
    for fmt in ("pdf", "svg"):
        save(fig, tmp_path / f"p.{fmt}")
        blob = (tmp_path / f"p.{fmt}").read_bytes()
        assert blob.startswith(b"%PDF" if fmt == "pdf" else b"<?xml")
        save(fig, tmp_path / f"q.{fmt}", data=False)
        assert (tmp_path / f"q.{fmt}").read_bytes() == blob  # no creation date: identical files
    assert "serif" in fig.axes[0].xaxis.label.get_fontfamily()
    with pytest.raises(st.SpecError, match="style"):
        K.curves(SCN, style="poster")
    with pytest.raises(st.SpecError, match="width"):
        K.curves(SCN, width="triple")


def test_figure_into_a_given_axes():
    from matplotlib.figure import Figure

    host = Figure()
    ax1, ax2 = host.subplots(1, 2)
    assert K.modes(KD, ax=ax2) is host and K.curves(KD, ax=ax1) is host
    assert ax2.get_ylabel().startswith("normalised") and len(ax1.lines) == 6


def test_continuum_curves_mark_the_best_reported_step_and_have_no_modes():
    sc = st.Scenario(PROB, (st.Model("m", steps=300, schedule=0.2),), output=OUT)
    res = st.predict(sc, method="continuum")
    data = K.curves_data(sc, method="continuum")
    close(data.select("excess_risk", model="m"), res["m"].excess_risk, "continuum curve")
    j = int(np.argmin(res["m"].excess_risk))
    assert data.annotations["oracle"]["m"] == {"step": int(res["m"].steps[j]), "risk": float(res["m"].excess_risk[j]),
                                               "over": "reported steps"}
    big = dataclasses.replace(sc, problem=dataclasses.replace(PROB, spectrum=st.PowerLawSpectrum(a=1.5, d=2000)))
    with pytest.raises(st.SpecError, match="quadrature nodes"):  # fewer nodes than modes
        K.modes_data(big, method="continuum")


@pytest.mark.filterwarnings("ignore::spectral_theory.montecarlo.HeavyTailWarning")
def test_sources_that_are_refused():
    with pytest.raises(st.SpecError, match="simulation="):
        K.curves(st.simulate(SCN, reps=4, seed=0, progress=False))
    with pytest.raises(st.SpecError, match="models"):
        K.curves(SCN, models=["nobody"])
    with pytest.raises(st.SpecError, match="axis"):
        K.modes(KD, axis="frequency")
    with pytest.raises(st.SpecError, match="Chain"):
        K.chain(KD)


# ---------------------------------------------------------------------------- data files
def test_data_file_reader_is_strict(tmp_path):
    save(K.chain(CHAIN), tmp_path / "c.png")
    rec = json.loads((tmp_path / "c.json").read_text())
    for change, match in ((lambda r: r.update(colour="red"), "unknown key"),
                          (lambda r: r.pop("method"), "method: got None; is required"),
                          (lambda r: r.update(kind="pie"), "kind"),
                          (lambda r: r.update(format_version=99), "format_version"),
                          (lambda r: r.update(csv="../elsewhere.csv"), "csv")):
        bad = json.loads(json.dumps(rec))
        change(bad)
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(st.SpecError, match=match):
            replot(tmp_path / "bad.json")
    text = (tmp_path / "c.csv").read_text().splitlines()
    (tmp_path / "c.csv").write_text("\n".join([text[0], "x" + text[1]] + text[2:]) + "\n")
    with pytest.raises(st.SpecError, match="line 2, column generation"):
        replot(tmp_path / "c.json")


# ---------------------------------------------------------------------------- command line
@pytest.fixture
def transfer_file(tmp_path):
    p = tmp_path / "t.toml"
    p.write_text("""
[problem]
spectrum = { kind = "powerlaw", a = 1.5, d = 60 }
target = { kind = "powerlaw", b = 2.0 }
noise = 0.5
[[models]]
name = "big"
batch = 2
steps = 400
lr = 0.1
[[models]]
name = "small"
capacity = 30
steps = 200
lr = 0.3
[transfer]
teacher = "big"
student = "small"
weak = "small"
strong = "big"
base = "big"
child = "small"
[output]
at = [0, 10, 200, 400]
""")
    return p


@pytest.mark.parametrize("kind, extra", [
    ("curves", ["--kind", "kd", "--points", "8", "--split"]), ("modes", ["--kind", "kd", "--axis", "lambda"]),
    ("denoising", []), ("map", ["--kind", "kd", "--x", "teacher.steps=100,400", "--y", "student.capacity=10,30"]),
    ("chain", ["--generations", "3"]), ("rates", ["--window", "20,400"]), ("stability", ["--models", "small"]),
])
def test_figure_command_writes_image_and_data(kind, extra, transfer_file, tmp_path, capsys):
    out = tmp_path / f"{kind}.svg"
    code, text, err = run(["figure", kind, transfer_file, "--out", out, *extra], capsys)
    assert code == 0, err
    assert out.is_file() and out.with_suffix(".csv").is_file() and out.with_suffix(".json").is_file()
    assert f"{kind} figure" in text and str(out) in text
    rec = json.loads(out.with_suffix(".json").read_text())
    assert rec["kind"] == kind and rec["image"] == out.name
    if kind in ("modes", "map"):  # replot through the command line (every kind: rendered() above)
        code, text, err = run(["replot", out.with_suffix(".json"), "--style", "paper", "--out",
                               tmp_path / "r.png"], capsys)
        assert code == 0 and (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG"), err
        assert not (tmp_path / "r.csv").exists()  # a replot writes the image only


def test_figure_command_values_equal_the_api(transfer_file, tmp_path, capsys):
    code, _, err = run(["figure", "modes", transfer_file, "--kind", "kd", "--out", tmp_path / "m.png"], capsys)
    assert code == 0, err
    # the file's comparison built here, not by the command line's own reader
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=60), st.PowerLawTarget(b=2.0), noise=0.5)
    spec = st.Distillation(prob, teacher=st.Model("big", steps=400, schedule=0.1, batch=2),
                           student=st.Model("small", steps=200, schedule=0.3, capacity=30), alpha=0.0)
    rep = st.evaluate(spec)
    rows = read_csv(tmp_path / "m.csv")
    for name, m in rep.models.items():
        close(column(rows, "normalised", model=name), m.normalised, name)


@pytest.mark.montecarlo
def test_transfer_commands_write_a_figure(transfer_file, tmp_path, capsys):
    for kind, fig_kind in (("kd", "modes"), ("w2s", "denoising"), ("chain", "chain")):
        out = tmp_path / f"{kind}.png"
        code, text, err = run([kind, transfer_file, "--figure", out, "--out", tmp_path / f"{kind}.txt"], capsys)
        assert code == 0, err
        assert json.loads(out.with_suffix(".json").read_text())["kind"] == fig_kind
        assert (tmp_path / f"{kind}.txt").read_text().startswith(f"# {kind}")
    code, _, err = run(["kd", transfer_file, "--simulate", "--reps", "4", "--no-progress", "--figure",
                        tmp_path / "s.png", "--figure-kind", "curves"], capsys)
    assert code == 0, err
    rec = json.loads((tmp_path / "s.json").read_text())
    assert rec["source"]["montecarlo"] == {"reps": 4, "seed": 0}


@pytest.mark.parametrize("argv, message", [
    (["figure", "curves", "{t}", "--out", "{d}/x.txt"], "--out: got '{d}/x.txt'; must end in one of"),
    (["figure", "map", "{t}", "--kind", "kd", "--x", "teacher.steps=1"], "--x/--y"),
    (["figure", "denoising", "{t}", "--simulate"], "--simulate"),
    (["figure", "rates", "{t}", "--axis", "lambda"], "--axis: got 'lambda'; is an option of a modes figure"),
    (["figure", "rates", "{t}", "--window", "5,1"], "--window"),
    (["figure", "curves", "{t}", "--teacher", "big"], "--teacher: got 'big'; is an option of a comparison"),
    (["figure", "curves", "{t}", "--kind", "kd", "--style", "poster"], "invalid choice"),
    (["w2s", "{t}", "--simulate", "--figure", "{d}/w.png", "--figure-kind", "denoising"], "bias/variance split"),
    (["kd", "{t}", "--figure-kind", "curves"], "needs --figure"),
    (["replot", "{t}"], "figure data"),
    (["gallery", "--out", "{t}"], "is not a directory"),
    (["gallery", "--out", "{d}/g", "--only", "pie"], "only: got 'pie'"),
    (["gallery", "--out", "{d}/g", "--only", "mc-kd"], "needs simulate"),
    (["figure", "pie", "{t}"], "KIND: got 'pie'; must be one of ['curves', 'modes', 'denoising', 'map'"),
    (["figure", "rates", "{c}"], "--expected: got None; is needed: the scenario is not a power law"),
    (["figure", "modes", "{t}", "--kind", "kd", "--models", "nobody"], "--models: got 'nobody'"),
    (["figure", "curves", "{t}", "--out", "{d}/x"], "--out: got '{d}/x'; must end in one of"),
    (["gallery", "--out", "{t}/sub"], "lies under '{t}', which is not a directory"),
    (["gallery", "--out", "{d}/g", "--formats", "png,jpg"], "--formats: got 'png,jpg'"),
    (["gallery", "--out", "{d}/g", "--width", "triple"], "--width: got 'triple'"),
])
def test_figure_errors_are_one_line_and_write_nothing(argv, message, transfer_file, tmp_path, capsys):
    before = sorted(p.name for p in tmp_path.iterdir())
    chain_json = ROOT / "examples" / "chain.json"  # an array spectrum: no predicted exponent
    argv = [a.format(t=transfer_file, d=tmp_path, c=chain_json) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message.format(t=transfer_file, d=tmp_path) in err and "Traceback" not in err
    if "invalid choice" not in message:  # argparse prints its usage first; ours are one line
        assert err.count("\n") == 1 and err.startswith("spectral-theory: error: "), err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_replot_refuses_foreign_and_corrupted_records(transfer_file, tmp_path, capsys):
    """A results JSON, truncated JSON, a record of another kind, missing annotations, rows that do
    not fill the map's grid, annotations of the wrong type: one error line, exit 2, no image."""
    code, _, err = run(["run", transfer_file, "--format", "json", "--out", tmp_path / "res.json"], capsys)
    assert code == 0, err
    code, _, err = run(["figure", "map", transfer_file, "--kind", "kd", "--x", "teacher.steps=100,400", "--y",
                        "noise=0.1,1", "--out", tmp_path / "m.png"], capsys)
    assert code == 0, err
    rec = json.loads((tmp_path / "m.json").read_text())
    rows = (tmp_path / "m.csv").read_text().splitlines()

    def variant(name, change=None, text=None, csv_rows=None):
        bad = json.loads(json.dumps(rec))
        if change:
            change(bad)
        bad["csv"] = f"{name}.csv"
        (tmp_path / f"{name}.json").write_text(text if text is not None else json.dumps(bad))
        (tmp_path / f"{name}.csv").write_text("\n".join(csv_rows or rows) + "\n")
        return tmp_path / f"{name}.json"

    cases = [(tmp_path / "res.json", "is not a figure's data record"),
             (variant("trunc", text=json.dumps(rec)[:200]), "must be valid JSON"),
             (variant("kind", lambda r: r.update(kind="modes")), "must be the columns of a modes figure"),
             (variant("noann", lambda r: r["annotations"].pop("metric")), "annotations.metric: got None"),
             (variant("grid", csv_rows=rows[:-1]), "cannot be drawn as a map figure"),
             (variant("types", lambda r: r["annotations"].update(neutral="one")), "cannot be drawn as a map figure")]
    before = sorted(p.name for p in tmp_path.iterdir())
    for path, message in cases:
        code, _, err = run(["replot", path, "--out", tmp_path / "r.png"], capsys)
        assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err, (path, err)
        with pytest.raises(st.SpecError, match="figure data"):
            replot(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_without_matplotlib_the_error_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    code = main(["figure", "chain", str(ROOT / "examples" / "transfer.toml"), "--out", str(tmp_path / "c.png")])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'spectral-theory[figures]'" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_cli_kinds_agree_and_stay_lazy():
    from spectral_theory import cli
    from spectral_theory.figures.kinds import KINDS

    assert set(cli.FIGURE_KINDS) == set(KINDS)
    code = ("import sys, spectral_theory, spectral_theory.cli, spectral_theory.figures; "
            "spectral_theory.cli.build_parser(); print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------- the gallery
@pytest.fixture(scope="module")
def gallery():
    from spectral_theory.figures.gallery import gallery_data

    return {d.options["gallery"]: d for d in gallery_data(progress=False)}


def test_gallery_horizon_expansion_claim(gallery):
    d = gallery["horizon-modes"]
    h = d.annotations["horizons"]
    # recomputed from the data: the largest mode with normalised error <= 1/2
    for name in ("teacher", "kd_student", "hard_student"):
        n = np.array(d.select("normalised", model=name), dtype=float)
        assert h[name] == int(np.flatnonzero(n <= 0.5)[-1] + 1)
    gap = h["kd_student"] - h["hard_student"]
    assert gap >= 50
    assert f"exceeds the hard-label student's by {gap} modes" in d.caption
    assert f"learns {h['kd_student']} modes" in d.caption and f"against {h['hard_student']} for" in d.caption
    assert f"the teacher's horizon is {h['teacher']}" in d.caption
    c = gallery["horizon-curves"]
    risk = {n: np.array(c.select("excess_risk", model=n, source="theory")) for n in ("kd_student", "hard_student")}
    assert risk["kd_student"][-1] < risk["hard_student"][-1]
    # the KD gain of the caption is the ratio of the curves' final risks
    gain = risk["hard_student"][-1] / risk["kd_student"][-1]
    assert d.annotations["metrics"]["kd_gain"] == pytest.approx(gain, rel=1e-12) and f"= {gain:.4g}." in d.caption
    o = c.annotations["oracle"]
    assert o["hard_student"]["risk"] <= risk["hard_student"].min() and o["hard_student"]["step"] < 2000
    assert o["hard_student"]["risk"] < risk["hard_student"][-1]  # and then fits its label noise
    assert o["kd_student"]["step"] == 2000 and risk["kd_student"][-1] < risk["kd_student"][-2]  # still improving
    assert f"best at step {o['hard_student']['step']}" in c.caption


def test_gallery_denoising_claim(gallery):
    d = gallery["denoising-profile"]
    noisy = np.array(d.column("teacher_noisy"), dtype=bool)
    tv = np.array(d.column("teacher_variance"))
    sv = np.array(d.column("student_variance"))
    tb = np.array(d.column("teacher_bias"))
    assert (noisy == ((tv > tb) & (tv > 0))).all()
    m = d.annotations["metrics"]
    assert m["teacher_noisy_modes"] == noisy.sum() and m["denoised_modes"] == (noisy & (sv < tv)).sum()
    assert m["denoised_modes"] > m["teacher_noisy_modes"] / 2 and sv[noisy].sum() < tv[noisy].sum()
    assert f"noise on {noisy.sum()} modes" in d.caption and f"on {m['denoised_modes']} of them" in d.caption
    assert f"totals {sv[noisy].sum():.4g} against {tv[noisy].sum():.4g}" in d.caption
    c = gallery["denoising-curves"]
    fin = {n: c.select("excess_risk", model=n, source="theory")[-1]
           for n in ("weak_teacher", "w2s_student", "strong_ceiling")}
    assert fin["strong_ceiling"] < fin["w2s_student"] < fin["weak_teacher"]
    pgr = (fin["weak_teacher"] - fin["w2s_student"]) / (fin["weak_teacher"] - fin["strong_ceiling"])
    assert 0 < pgr < 1 and pgr == pytest.approx(c.annotations["metrics"]["pgr"], rel=1e-12)
    assert f"PGR = {pgr:.3g}" in c.caption
    o = {n: c.annotations["oracle"][n]["risk"] for n in fin}  # PGR with each model at its oracle stop
    pgr_o = (o["weak_teacher"] - o["w2s_student"]) / (o["weak_teacher"] - o["strong_ceiling"])
    assert pgr_o > pgr and f"{pgr_o:.3g} with each model at its oracle stopping step" in c.caption


def _grid(d):
    a = d.annotations
    return np.array(d.column("value")).reshape(a["nx"], a["ny"]), np.array(d.unique("x")), np.array(d.unique("y"))


def test_gallery_phase_diagram_claims(gallery):
    d = gallery["map-kd-gain"]
    v, xs, ys = _grid(d)
    a = d.annotations
    assert v.min() < 1 < v.max() and a["crosses"]  # the KD gain = 1 boundary crosses the map
    assert a["above_neutral"] == (v > 1).sum() >= 5 and a["below_neutral"] == (v < 1).sum() >= 5
    i, j = np.unravel_index(np.argmin(v), v.shape)
    assert xs[i] == xs.min() and ys[j] == ys.min()  # the least-trained teacher with the cleanest labels
    assert np.unravel_index(np.argmax(v), v.shape)[1] == ys.size - 1  # the noisiest labels
    assert f"{a['above_neutral']} of {v.size} cells above" in d.caption and f"{v.min():.3g}" in d.caption
    p = gallery["map-pgr"]
    v, xs, ys = _grid(p)
    assert v.min() < 0 < v.max() and p.annotations["crosses"]
    assert ys[np.unravel_index(np.argmax(v), v.shape)[1]] == ys.min()  # a small strong step denoises
    assert ys[np.unravel_index(np.argmin(v), v.shape)[1]] == ys.max()  # a large one copies the noise
    assert f"{v.max():.3g}" in p.caption and f"{v.min():.3g}" in p.caption


def test_gallery_hurts_chain_rates_stability_claims(gallery):
    h = gallery["hurts-modes"]
    hz, kd_gain = h.annotations["horizons"], h.annotations["metrics"]["kd_gain"]
    assert hz["kd_student"] == hz["teacher"] < hz["hard_student"] and kd_gain < 1
    assert f"learns {hz['hard_student']} modes" in h.caption and f"KD gain = {kd_gain:.3g} < 1" in h.caption
    c = gallery["chain"]
    r = np.array(c.select("risk", source="theory"))
    hz = c.select("horizon", source="theory")
    assert (np.diff(r) > 0).all() and all(b <= a for a, b in zip(hz, hz[1:], strict=False))
    assert c.annotations["final_over_first"] == pytest.approx(r[-1] / r[0], rel=1e-12)
    assert f"from {r[0]:.3g} to {r[-1]:.3g}" in c.caption and f"from {hz[0]} to {hz[-1]} modes" in c.caption
    growth = r[1:] / r[:-1]
    assert np.allclose(c.annotations["generation_growth"], growth, rtol=1e-12, atol=0)
    assert f"growth per generation {growth.min():.3g} to {growth.max():.3g}" in c.caption
    rt = gallery["rates"]
    from spectral_theory.figures.gallery import RATE_BAND

    for f in rt.annotations["fits"]:
        assert abs(f["slope"] - f["expected"]) <= RATE_BAND
        assert f"fitted {f['slope']:+.3f}, predicted {f['expected']:+.3f}" in rt.caption
        if f["b"] > 2 * f["a"]:  # beyond b = 2a the textbook exponent is far off, the corrected one close
            assert abs(f["slope"] + (f["b"] - 1) / f["a"]) > 3 * abs(f["slope"] - f["expected"])
    s = gallery["stability"]
    for name in s.annotations["models"]:
        risks = s.select("final_risk", model=name)
        best = s.annotations["best"][name]
        assert best["risk"] == min(risks) and risks[-1] > 2 * best["risk"] and best["fraction"] < 0.98
        assert f"limit {s.annotations['limits'][name]:.4g}" in s.caption


@pytest.mark.slow
def test_gallery_command_end_to_end(tmp_path, capsys):
    """The whole theory gallery through the command line (about 20-35 s on two cores)."""
    code, text, err = run(["gallery", "--out", tmp_path / "g", "--formats", "png,pdf"], capsys)
    assert code == 0, err
    from spectral_theory.figures.gallery import GALLERY

    names = [e.name for e in GALLERY if not e.simulate]
    index = (tmp_path / "g" / "index.md").read_text()
    for n in names:
        for suffix in ("png", "pdf", "csv", "json"):
            assert (tmp_path / "g" / f"{n}.{suffix}").is_file()
        assert "![" in index and f"({n}.png)" in index
        rec = json.loads((tmp_path / "g" / f"{n}.json").read_text())
        assert rec["caption"] and rec["caption"] in index
        assert float(pixels(tmp_path / "g" / f"{n}.png")[..., :3].var()) > 1e-3


@pytest.mark.slow
@pytest.mark.montecarlo
@pytest.mark.filterwarnings("ignore::spectral_theory.montecarlo.HeavyTailWarning")
def test_gallery_theory_against_monte_carlo():
    from spectral_theory.figures.gallery import gallery_data, mc_agreement

    for d in gallery_data(simulate=True, only="mc-kd,mc-kd-modes,mc-w2s,mc-chain", progress=False):
        a = mc_agreement(d)
        assert a["exact_disagreements"] == 0 and a["with_se"] > 0
        assert a["within_4se"] == a["with_se"], a  # docs/theory.md §9: |theory - MC| <= 4 SE
        assert f"{a['within_2se']} of {a['with_se']} simulated points" in d.caption
