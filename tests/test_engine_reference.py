"""The exact engine against independent references (tests/reference.py).

* a d = 1 closed form (geometric series) for one hard-label model;
* ``dense_reference``: full Gd x Gd covariance of the stacked errors of a chain,
  derived from the SGD update and the fourth-moment identity, no per-mode shortcut;
* ``mp_reference``: docs/theory.md §4 per-mode recursions at 40 digits;
* linearity of the risk in the sources (theta^2, sigma2);
* a hypothesis property test over random chains.

Only the public API of ``spectral_theory`` is used. Step sizes, speeds and
spectra fed to the references are computed here from their definitions
(docs/theory.md and the API description), not taken from the package.

Tolerances. Everything is compared at relative 1e-10:
``|x - y| <= 1e-10 * max(|y|, floor)``. The default floor is 1e-300, i.e. a
purely relative test (closed forms, linearity, the self-disagreement
E||phi_g - phi_g||^2 = 0, exact zeros such as the variance at sigma2 = 0).
Engine-vs-reference comparisons of second moments, risks, disagreements and
first moments add a floor tied to the size of the terms that cancel (see
``_MODE_FLOOR``, ``_disagreement_floor``, ``_FIRST_MOMENT_FLOOR``): a
difference of O(R) numbers in float64 is only known to ~1e-16 R absolutely,
whichever code computes it, so values far below the problem's scale are
checked to ~1e-14 of that scale instead of relatively.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_close as _assert_close
from hypothesis import given, settings
from hypothesis import strategies as hst
from reference import RefModel, d1_closed_form, dense_reference, mp_reference

import spectral_theory as st

RTOL = 1e-10
TINY = 1e-300
# mu_g is O(1) at initialisation (mu = -1); when a student tracks (1 - alpha) mu_p, or a
# per-mode factor 1 - eta s_i is negative, mu is formed by cancelling O(1) terms, so its
# absolute accuracy is ~1e-16 whatever the code: compare relative to max(|mu|, 1e-5),
# i.e. absolute 1e-15 at worst.
_FIRST_MOMENT_FLOOR = 1e-5

# Second moments are coupled through sum_j U_j, which is itself a cancelling sum
# (U = M_gg - 2 c M_gp + c^2 M_pp) of terms of the size of the sources: a mode whose exact
# value is 0 or tiny (theta_i = 0, a student that starts on its teacher) picks up
# rounding of ~1e-16 x (sum theta^2 + sigma2) from the other modes, in any float64 code
# (the engine returns e.g. -4e-17 for an exact 0
# when a soft-label student starts on an untrained teacher and theta_1 = 0). Per-mode arrays are
# therefore compared relative to max(|y|, 1e-4 * sources): absolute 1e-14 * sources at worst.
# The same floor serves the risks (sums of the modes): e.g. d = 1, kappa = 1, B = 2 and
# eta s = 1 give exactly 0 after one step, which float64 code returns as 0 or as 4e-16.
_MODE_FLOOR = 1e-4

KAPPA = {"gaussian": 3.0, "rademacher": 1.0, "uniform": 9.0 / 5.0}


def _disagreement_floor(r_g: float, r_h: float) -> float:
    """E||phi_g - phi_h||^2 = sum(M_gg - 2 M_gh + M_hh) cancels terms of size ~ R_g + R_h:
    accept an absolute error 1e-10 * 1e-5 (R_g + R_h) = 1e-15 (R_g + R_h), a few ulps of them."""
    return 1e-5 * (abs(r_g) + abs(r_h))


def assert_close(x, y, what, *, rtol=RTOL, floor=TINY):
    _assert_close(x, y, what, rtol=rtol, floor=floor)


# ----------------------------------------------------------------------------
# own definitions of schedules, spectra and speeds


def my_rates(kind: str, p: dict, T: int) -> np.ndarray:
    """Per-step step sizes from the schedule definitions (independent of schedules.py)."""
    t = np.arange(T, dtype=float)
    if kind == "constant":
        return np.full(T, float(p["lr"]))
    if kind == "step_decay":
        return np.array([p["lr"] * p["factor"] ** (k // p["every"]) for k in range(T)], dtype=float)
    if kind == "piecewise":
        out = []
        for lr, n in zip(p["lrs"], p["lengths"], strict=True):
            out += [float(lr)] * int(n)
        return np.array(out[:T], dtype=float)
    if kind == "geometric":
        return p["lr"] * p["factor"] ** t
    if kind == "polynomial":
        return p["lr"] / (1.0 + t / p["t0"]) ** p["power"]
    if kind == "warmup_decay":
        w = p["warmup"]
        return np.array([p["lr"] * (k + 1) / w if k < w
                         else p["lr"] / (1.0 + (k - w) / p["t0"]) ** p["power"] for k in range(T)])
    if kind == "array":
        return np.array(p["values"][:T], dtype=float)
    raise ValueError(kind)


def st_schedule(kind: str, p: dict):
    return {
        "constant": lambda: st.Constant(p["lr"]),
        "step_decay": lambda: st.StepDecay(p["lr"], p["factor"], p["every"]),
        "piecewise": lambda: st.Piecewise(tuple(p["lrs"]), tuple(p["lengths"])),
        "geometric": lambda: st.Geometric(p["lr"], p["factor"]),
        "polynomial": lambda: st.Polynomial(p["lr"], p["t0"], p["power"]),
        "warmup_decay": lambda: st.WarmupDecay(p["lr"], p["warmup"], p["t0"], p["power"]),
        "array": lambda: st.ArraySchedule(list(p["values"])),
    }[kind]()


def scale_schedule(kind: str, p: dict, c: float) -> dict:
    """Multiply every step size of a schedule by c (all kinds are linear in their lr)."""
    q = dict(p)
    if kind == "piecewise":
        q["lrs"] = [c * v for v in p["lrs"]]
    elif kind == "array":
        q["values"] = [c * v for v in p["values"]]
    else:
        q["lr"] = c * p["lr"]
    return q


def features_of(name):
    if isinstance(name, (int, float)):
        return st.Features("kurtosis", kurtosis=float(name)), float(name)
    return st.Features(name), KAPPA[name]


def build(lam, theta2, sigma2, feat, specs, at, *, spectrum=None, target=None):
    """A scenario and the matching reference chain from one description.

    ``specs``: list of dicts with name, steps, sched=(kind, params), and optional
    batch, capacity, speeds, teacher, alpha, lr_convention, and ``frac``: if given,
    the schedule is rescaled so that its largest batch-mean step is ``frac`` times
    ``st.stability_limit`` of the model (the shape of the schedule is kept).
    """
    lam = np.asarray(lam, dtype=float)
    theta2 = np.asarray(theta2, dtype=float)
    features, kappa = features_of(feat)
    prob = st.Problem(spectrum if spectrum is not None else st.ArraySpectrum(lam),
                      target if target is not None else st.ArrayTarget(theta2),
                      noise=sigma2, features=features)
    models, refs, names = [], [], []
    for sp in specs:
        kind, p = sp["sched"]
        B = sp.get("batch", 1)
        conv = sp.get("lr_convention", "mean")
        if sp.get("speeds") is not None:
            s = np.asarray(sp["speeds"], dtype=float)
        else:
            s = lam.copy()
            if sp.get("capacity") is not None:
                s[sp["capacity"]:] = 0.0
        if sp.get("frac") is not None:
            top = my_rates(kind, p, max(sp["steps"], 1)).max() * (B if conv == "sum" else 1)
            p = scale_schedule(kind, p, sp["frac"] * st.stability_limit(s, B, kappa) / top)
        m = st.Model(sp["name"], steps=sp["steps"], schedule=st_schedule(kind, p), batch=B,
                     capacity=sp.get("capacity"), speeds=sp.get("speeds"),
                     teacher=sp.get("teacher"), alpha=sp.get("alpha"), lr_convention=conv)
        etas = my_rates(kind, p, sp["steps"]) * (B if conv == "sum" else 1)
        if sp.get("teacher") is None:
            parent, alpha = None, 1.0
        else:
            parent = names.index(sp["teacher"])
            alpha = 0.0 if sp.get("alpha") is None else float(sp["alpha"])
        # a step past a model's end is reported as its last step (docs/scenario-files.md)
        refs.append(RefModel(sp["name"], etas, s, B, parent, alpha,
                             tuple(sorted({min(t, sp["steps"]) for t in at}))))
        models.append(m)
        names.append(sp["name"])
    sc = st.Scenario(prob, tuple(models), output=st.Output(at=tuple(at)))
    return sc, refs, (theta2, float(sigma2), kappa)


def compare(res, ref, refs, sources, *, split=True, modes=True, curves=False):
    """Engine result vs a reference dict (layout of tests/reference.py).

    ``sources = (theta2, sigma2)`` sets the floors of the per-mode comparisons."""
    names = [r.name for r in refs]
    s_bias, s_var = float(np.sum(sources[0])), float(sources[1])
    fl_tot = max(_MODE_FLOOR * (s_bias + s_var), TINY)
    fl_bias = max(_MODE_FLOOR * s_bias, TINY)
    fl_var = max(_MODE_FLOOR * s_var, TINY)
    for r in refs:
        e, q = res.models[r.name], ref["models"][r.name]
        n = r.name
        np.testing.assert_array_equal(np.asarray(e.steps), q["steps"], err_msg=f"{n}.steps")
        assert_close(e.excess_risk, q["risk"], f"{n}.excess_risk", floor=fl_tot)
        if split:
            assert_close(e.bias, q["bias"], f"{n}.bias", floor=fl_bias)
            assert_close(e.variance, q["variance"], f"{n}.variance", floor=fl_var)
        if r.parent is None:
            assert e.disagreement is None, f"{n}: disagreement without teacher"
        else:
            rp = ref["models"][names[r.parent]]["second_moment"].sum()
            assert_close(e.disagreement, q["disagreement"], f"{n}.disagreement",
                         floor=max(_disagreement_floor(np.max(q["risk"]), rp), fl_tot))
        if modes:
            assert_close(e.modes.second_moment, q["second_moment"], f"{n}.modes.second_moment",
                         floor=fl_tot)
            assert_close(e.modes.first_moment, q["first_moment"], f"{n}.modes.first_moment",
                         floor=_FIRST_MOMENT_FLOOR)
            if split:
                assert_close(e.modes.bias, q["second_moment_bias"], f"{n}.modes.bias",
                             floor=fl_bias)
                assert_close(e.modes.variance, q["second_moment_variance"], f"{n}.modes.variance",
                             floor=fl_var)
        if curves:
            assert_close(e.curve, q["curve"], f"{n}.curve", floor=fl_tot)
            assert_close(e.mode_curves, q["modes"], f"{n}.mode_curves", floor=fl_tot)
    final = {r.name: ref["models"][r.name]["second_moment"].sum() for r in refs}
    for g in names:
        for h in names:
            assert_close(res.disagreement[g][h], ref["disagreement"][g][h],
                         f"disagreement[{g}][{h}]",
                         floor=max(_disagreement_floor(final[g], final[h]), fl_tot)
                         if g != h else TINY)


def run_both(lam, theta2, sigma2, feat, specs, at, *, reference="dense", curves=True, **kw):
    sc, refs, (t2, s2, kappa) = build(lam, theta2, sigma2, feat, specs, at, **kw)
    res = st.predict(sc, record_modes=curves, every_step=curves)
    fn = dense_reference if reference == "dense" else mp_reference
    ref = fn(t2, s2, kappa, refs)
    compare(res, ref, refs, (t2, s2), curves=curves)
    return res, ref


# a small anisotropic problem used by the deterministic cases
D = 8
LAM = np.arange(1, D + 1, dtype=float) ** -1.3
THETA2 = np.arange(1, D + 1, dtype=float) ** -1.7
SIGMA2 = 0.15
AT = (0, 1, 2, 7, 19, 30, 40)


# ----------------------------------------------------------------------------
# d = 1 closed form


@pytest.mark.parametrize("feat", ["rademacher", "uniform", "gaussian", 5.5])
@pytest.mark.parametrize("B", [1, 4])
def test_d1_closed_form(feat, B):
    features, kappa = features_of(feat)
    lam, theta2, sigma2, T = 0.8, 1.7, 0.3, 60
    eta = 0.9 * st.stability_limit(np.array([lam]), B, kappa)
    prob = st.Problem(st.ArraySpectrum([lam]), st.ArrayTarget([theta2]), noise=sigma2,
                      features=features)
    m = st.Model("m", steps=T, schedule=eta, batch=B)
    res = st.predict(st.Scenario(prob, (m,), output=st.Output(at=(0, 1, 10, T))), every_step=True)
    want = d1_closed_form(np.arange(T + 1), theta2, sigma2, kappa, lam, eta, B)
    assert_close(res["m"].curve, want, "curve")
    assert_close(res["m"].excess_risk, want[[0, 1, 10, T]], "excess_risk")
    # the parts of the closed form: bias a^t theta2, variance b (1 - a^t)/(1 - a)
    assert_close(res["m"].bias, d1_closed_form(np.array([0, 1, 10, T]), theta2, 0.0, kappa, lam, eta, B), "bias")
    assert_close(res["m"].variance, d1_closed_form(np.array([0, 1, 10, T]), 0.0, sigma2, kappa, lam, eta, B), "variance")
    # the risk tends to the fixed point b / (1 - a) = x sigma2 / (2B - x (kappa + B - 1))
    x = eta * lam
    floor = x * sigma2 / (2 * B - x * (kappa + B - 1))
    long = st.predict(st.Scenario(prob, (st.Model("m", steps=4000, schedule=eta, batch=B),),
                                  output=st.Output(at=(4000,))))
    assert_close(long["m"].final, floor, "floor", rtol=1e-9)


@pytest.mark.parametrize("feat,B", [
    ("rademacher", 1), ("rademacher", 4), ("uniform", 1),
    ("uniform", 4), ("gaussian", 1), ("gaussian", 4), (5.5, 1), (5.5, 4)])
def test_d1_stability_limit(feat, B):
    """d = 1: M' = a M + b, stable iff |a| < 1 with a = 1 - 2x + x^2 (kappa + B - 1)/B,
    x = eta lam; a >= 1 - B/(kappa + B - 1) >= 0, so iff x < 2B/(kappa + B - 1) (<= 2, so the
    mean factor |1 - x| < 1 follows). The engine refuses steps beyond."""
    features, kappa = features_of(feat)
    lam = 0.8
    want = 2 * B / ((kappa + B - 1) * lam)
    assert_close(st.stability_limit(np.array([lam]), B, kappa), want, "d = 1 limit", rtol=1e-12)
    prob = st.Problem(st.ArraySpectrum([lam]), st.ArrayTarget([1.0]), features=features)
    with pytest.raises(st.InstabilityError):
        st.predict(st.Scenario(prob, (st.Model("m", steps=5, schedule=1.001 * want, batch=B),)))


def test_engine_exact_where_a_mode_factor_is_below_minus_one():
    """B = 1, kappa < 1.5: a_i = 1 - 2x + q x^2 < -1 for some modes, yet the recursion is
    stable (a_i alone is no eigenvalue of diag(a) + b 1^T for a simple mode). The engine
    accepts these steps and integrates them exactly (d = 1 closed form, and a d = 2 case
    whose map has spectral radius 0.971 < 1)."""
    import warnings

    lam, theta2, sigma2, T = 0.8, 1.7, 0.3, 200
    eta = 1.5 / lam  # x = 1.5: M' = 0.25 M + 2.25 sigma2
    prob = st.Problem(st.ArraySpectrum([lam]), st.ArrayTarget([theta2]), noise=sigma2,
                      features=st.Features("rademacher"))
    sc = st.Scenario(prob, (st.Model("m", steps=T, schedule=eta),), output=st.Output(at=(0, 3, T)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no instability warning: the step is stable
        res = st.predict(sc, every_step=True)
    assert_close(res["m"].curve, d1_closed_form(np.arange(T + 1), theta2, sigma2, 1.0, lam, eta, 1),
                 "curve with a_1 = -2")
    lam2, th2 = np.array([1.0, 0.01]), np.array([1.0, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sc2, refs, (t2, s2, kappa) = build(lam2, th2, 0.1, "rademacher",
                                           [dict(name="m", steps=300, sched=("constant", {"lr": 1.5}))],
                                           (0, 10, 300))
        res2 = st.predict(sc2)
    compare(res2, dense_reference(t2, s2, kappa, refs), refs, (t2, s2))
    assert res2["m"].final < 1.0  # bounded: the recursion is stable at this step


def test_stability_limit_secular_b1_gaussian():
    """docs/theory.md §5: for B = 1, kappa = 3, s = lambda the limit solves
    sum_i eta lam_i / (2 (1 - eta lam_i)) = 1."""
    eta = st.stability_limit(LAM, 1, 3.0)
    assert abs(np.sum(eta * LAM / (2 * (1 - eta * LAM))) - 1.0) < 1e-12


# ----------------------------------------------------------------------------
# schedules: the step sizes the engine is given are the ones defined in the API

SCHEDULES = {
    "constant": {"lr": 0.7},
    "step_decay": {"lr": 0.9, "factor": 0.5, "every": 9},
    "piecewise": {"lrs": [0.5, 0.9, 0.2], "lengths": [5, 12, 23]},
    "geometric": {"lr": 0.95, "factor": 0.96},
    "polynomial": {"lr": 0.9, "t0": 4.0, "power": 0.7},
    "warmup_decay": {"lr": 0.9, "warmup": 6, "t0": 5.0, "power": 1.0},
    "array": {"values": list(np.linspace(0.9, 0.1, 40) * (1 + 0.3 * np.sin(np.arange(40))))},
}


@pytest.mark.parametrize("kind", sorted(SCHEDULES))
def test_step_sizes_match_definitions(kind):
    for conv, B in (("mean", 1), ("mean", 3), ("sum", 3)):
        m = st.Model("m", steps=40, schedule=st_schedule(kind, SCHEDULES[kind]), batch=B,
                     lr_convention=conv)
        want = my_rates(kind, SCHEDULES[kind], 40) * (B if conv == "sum" else 1)
        assert_close(m.step_sizes(), want, f"{kind} {conv} step sizes", rtol=1e-14)


# ----------------------------------------------------------------------------
# the engine against the dense full-covariance reference


@pytest.mark.parametrize("kind", sorted(SCHEDULES))
def test_single_model_each_schedule(kind):
    p = SCHEDULES[kind]
    # largest step at 0.9 x the stability limit
    p = scale_schedule(kind, p, 0.9 * st.stability_limit(LAM, 2, 3.0) / my_rates(kind, p, 40).max())
    run_both(LAM, THETA2, SIGMA2, "gaussian",
             [dict(name="m", steps=40, sched=(kind, p), batch=2)], AT)


@pytest.mark.parametrize("feat", ["gaussian", "rademacher", "uniform", 2.5, 7.0])
@pytest.mark.parametrize("B", [1, 4])
def test_single_model_features_and_batch(feat, B):
    _, kappa = features_of(feat)
    lim = st.stability_limit(LAM, B, kappa)
    run_both(LAM, THETA2, SIGMA2, feat,
             [dict(name="m", steps=40, sched=("constant", {"lr": 0.85 * lim}), batch=B)], AT)


def test_capacity_and_explicit_speeds():
    speeds = np.array([0.9, 0.0, 0.5, 0.5, 0.0, 0.2, 0.05, 0.0])
    run_both(LAM, THETA2, SIGMA2, "uniform", [
        dict(name="small", steps=40, sched=("constant", {"lr": 0.9}), capacity=3, batch=3),
        dict(name="pre", steps=35, sched=("step_decay", {"lr": 1.1, "factor": 0.6, "every": 7}),
             speeds=speeds, batch=2),
    ], AT)


def test_lr_convention_sum():
    B = 4
    res, _ = run_both(LAM, THETA2, SIGMA2, "gaussian", [
        dict(name="s", steps=40, sched=("polynomial", {"lr": 0.9 / B, "t0": 3.0, "power": 0.5}),
             batch=B, lr_convention="sum"),
    ], AT)
    # the same model in the mean convention gives the same numbers
    sc2, _, _ = build(LAM, THETA2, SIGMA2, "gaussian", [
        dict(name="s", steps=40, sched=("polynomial", {"lr": 0.9, "t0": 3.0, "power": 0.5}),
             batch=B)], AT)
    assert_close(st.predict(sc2)["s"].excess_risk, res["s"].excess_risk, "sum vs mean", rtol=1e-13)


def test_named_spectra_and_targets():
    # PowerLawSpectrum / ExponentialSpectrum / PowerLawTarget, values from their definitions
    i = np.arange(1, 7, dtype=float)
    for spec, lam in ((st.PowerLawSpectrum(1.4, 6, scale=0.8), 0.8 * i**-1.4),
                      (st.ExponentialSpectrum(0.5, 6, scale=1.2), 1.2 * np.exp(-0.5 * (i - 1)))):
        theta2 = 0.7 * i**-2.2
        run_both(lam, theta2, 0.05, "gaussian",
                 [dict(name="t", steps=30, frac=0.5, sched=("constant", {"lr": 0.5})),
                  dict(name="s", steps=25, frac=0.6, sched=("constant", {"lr": 0.6}), capacity=3,
                       teacher="t", alpha=0.2)],
                 (0, 3, 25, 30), spectrum=spec, target=st.PowerLawTarget(2.2, scale=0.7))


def test_teacher_student_soft_and_mixed():
    for alpha in (None, 0.0, 0.3, 1.0):
        run_both(LAM, THETA2, SIGMA2, "gaussian", [
            dict(name="T", steps=40, frac=0.9, sched=("constant", {"lr": 0.9}), batch=2),
            dict(name="S", steps=30, frac=0.7, sched=("constant", {"lr": 0.7}), capacity=4,
                 teacher="T", alpha=alpha),
        ], AT)


def test_three_generation_chain():
    speeds2 = LAM * np.linspace(1.5, 0.2, D)
    run_both(LAM, THETA2, SIGMA2, 2.2, [
        dict(name="g0", steps=40, frac=0.95, sched=("step_decay", {"lr": 1.0, "factor": 0.5, "every": 10}),
             capacity=5, batch=1),
        dict(name="g1", steps=30, frac=0.6, sched=("polynomial", {"lr": 0.6, "t0": 5.0, "power": 1.0}),
             speeds=speeds2, batch=3, teacher="g0", alpha=0.4),
        dict(name="g2", steps=35, frac=0.8, sched=("warmup_decay", {"lr": 0.8, "warmup": 5, "t0": 4.0, "power": 0.5}),
             batch=2, teacher="g1", alpha=0.1, lr_convention="sum"),
    ], AT)


def test_teacher_not_immediate_predecessor():
    run_both(LAM, THETA2, SIGMA2, "rademacher", [
        dict(name="A", steps=40, frac=0.9, sched=("constant", {"lr": 0.9}), batch=2),
        dict(name="B", steps=30, frac=0.5, sched=("constant", {"lr": 0.5}), capacity=3, teacher="A"),
        dict(name="C", steps=35, frac=0.9, sched=("geometric", {"lr": 0.9, "factor": 0.97}), capacity=6,
             teacher="A", alpha=0.25, batch=4),
        dict(name="D", steps=20, frac=0.6, sched=("constant", {"lr": 0.6}), teacher="B", alpha=0.5),
    ], AT)


def test_zero_steps_and_zero_noise():
    run_both(LAM, THETA2, 0.0, "gaussian", [
        dict(name="A", steps=0, frac=0.5, sched=("constant", {"lr": 0.5})),
        dict(name="B", steps=20, frac=0.5, sched=("constant", {"lr": 0.5}), teacher="A", alpha=0.5),
    ], (0, 5, 20))


# ----------------------------------------------------------------------------
# the engine against the 40-digit per-mode transcription


def test_mp_reference_chain():
    d = 5
    lam, theta2 = LAM[:d], THETA2[:d]
    specs = [
        dict(name="T", steps=25, frac=0.95, sched=("step_decay", {"lr": 1.0, "factor": 0.7, "every": 6}), batch=3),
        dict(name="S", steps=20, frac=0.8, sched=("constant", {"lr": 0.8}), capacity=3, teacher="T", alpha=0.3),
        dict(name="U", steps=15, frac=0.9, sched=("polynomial", {"lr": 0.9, "t0": 2.0, "power": 1.0}),
             speeds=[0.3, 0.0, 0.6, 0.2, 0.1], teacher="T", batch=2),
    ]
    run_both(lam, theta2, 0.4, 1.5, specs, (0, 3, 15, 20, 25), reference="mp")


@pytest.mark.parametrize("feat,B", [("gaussian", 1), ("uniform", 3)])
def test_mp_reference_single(feat, B):
    _, kappa = features_of(feat)
    lim = st.stability_limit(LAM[:6], B, kappa)
    run_both(LAM[:6], THETA2[:6], 0.2, feat,
             [dict(name="m", steps=30, sched=("constant", {"lr": 0.9 * lim}), batch=B)],
             (0, 1, 10, 30), reference="mp")


# ----------------------------------------------------------------------------
# linearity in the sources (theta^2, sigma2)


def test_linearity_in_sources():
    specs = [
        dict(name="T", steps=40, frac=0.9, sched=("constant", {"lr": 0.9}), batch=2),
        dict(name="S", steps=30, frac=0.7, sched=("constant", {"lr": 0.7}), capacity=4, teacher="T", alpha=0.3),
        dict(name="U", steps=30, frac=0.8, sched=("geometric", {"lr": 0.8, "factor": 0.97}), teacher="S", alpha=0.0),
    ]
    full, _, _ = build(LAM, THETA2, SIGMA2, "uniform", specs, AT)
    clean, _, _ = build(LAM, THETA2, 0.0, "uniform", specs, AT)
    pure, _, _ = build(LAM, np.zeros(D), SIGMA2, "uniform", specs, AT)
    rf, rc, rp = st.predict(full), st.predict(clean), st.predict(pure)
    for n in ("T", "S", "U"):
        f = rf[n]
        assert_close(f.bias + f.variance, f.excess_risk, f"{n}: bias + variance")
        assert_close(f.bias, rc[n].excess_risk, f"{n}: bias == risk at sigma2 = 0")
        assert_close(f.variance, rp[n].excess_risk, f"{n}: variance == risk at theta = 0")
        assert_close(f.modes.bias + f.modes.variance, f.modes.second_moment, f"{n}: mode split")
        assert_close(f.modes.bias, rc[n].modes.second_moment, f"{n}: mode bias")
        assert_close(f.modes.variance, rp[n].modes.second_moment, f"{n}: mode variance")
        # with no noise there is no variance; with no target there is no bias
        assert np.all(rc[n].variance == 0), f"{n}: variance with sigma2 = 0"
        assert np.all(rp[n].bias == 0), f"{n}: bias with theta = 0"
        # homogeneity: scaling both sources by 3 scales every second moment by 3
    scaled, _, _ = build(LAM, 3 * THETA2, 3 * SIGMA2, "uniform", specs, AT)
    rs = st.predict(scaled)
    for n in ("T", "S", "U"):
        assert_close(rs[n].excess_risk, 3 * rf[n].excess_risk, f"{n}: homogeneity")


# ----------------------------------------------------------------------------
# property test: random chains against the dense reference

KINDS = sorted(SCHEDULES)


@hst.composite
def chains(draw):
    d = draw(hst.integers(1, 6))
    lam = np.sort(np.array(draw(hst.lists(hst.floats(0.05, 2.0), min_size=d, max_size=d))))[::-1]
    nz = draw(hst.integers(0, d - 1))  # trailing zero eigenvalues
    if nz:
        lam[d - nz:] = 0.0
    # sources are exact zeros or O(1e-3..1): denormal sources only test underflow
    theta2 = np.array(draw(hst.lists(hst.one_of(hst.just(0.0), hst.floats(1e-3, 2.0)),
                                     min_size=d, max_size=d)))
    sigma2 = draw(hst.one_of(hst.just(0.0), hst.floats(1e-3, 1.0)))
    feat = draw(hst.one_of(hst.sampled_from(["gaussian", "rademacher", "uniform"]),
                           hst.floats(1.0, 8.0)))
    kappa = features_of(feat)[1]
    G = draw(hst.integers(1, 3))
    specs = []
    for g in range(G):
        T = draw(hst.integers(0, 30))
        B = draw(hst.integers(1, 4))
        prof = draw(hst.sampled_from(["lambda", "capacity", "speeds"]))
        sp: dict = dict(name=f"m{g}", steps=T, batch=B)
        if prof == "capacity":
            sp["capacity"] = draw(hst.integers(1, d))
            s = lam.copy()
            s[sp["capacity"]:] = 0.0
        elif prof == "speeds":
            # zero or well away from the denormals (a speed of 1e-300 would need a step of 1e300)
            s = np.array(draw(hst.lists(hst.one_of(hst.just(0.0), hst.floats(0.01, 3.0)),
                                        min_size=d, max_size=d)))
            sp["speeds"] = s
        else:
            s = lam
        # piecewise and array schedules have a length of their own, which must be T (>= 1)
        kind = draw(hst.sampled_from(KINDS if T else [k for k in KINDS if k not in ("piecewise", "array")]))
        n = max(T, 1)
        if kind == "constant":
            p = {"lr": 1.0}
        elif kind == "step_decay":
            p = {"lr": 1.0, "factor": draw(hst.floats(0.2, 1.5)), "every": draw(hst.integers(1, 10))}
        elif kind == "piecewise":
            k = draw(hst.integers(1, min(4, T)))
            lrs = draw(hst.lists(hst.floats(0.05, 1.0), min_size=k, max_size=k))
            cuts = sorted(draw(hst.lists(hst.integers(1, T - 1), min_size=k - 1, max_size=k - 1, unique=True))
                          ) if k > 1 else []  # T = 1: integers(1, 0) is an invalid strategy
            p = {"lrs": lrs, "lengths": np.diff([0, *cuts, T]).tolist()}
        elif kind == "geometric":
            p = {"lr": 1.0, "factor": draw(hst.floats(0.8, 1.05))}
        elif kind == "polynomial":
            p = {"lr": 1.0, "t0": draw(hst.floats(0.5, 10.0)), "power": draw(hst.floats(0.0, 2.0))}
        elif kind == "warmup_decay":
            p = {"lr": 1.0, "warmup": draw(hst.integers(1, 10)), "t0": draw(hst.floats(0.5, 10.0)),
                 "power": draw(hst.floats(0.0, 2.0))}
        else:
            p = {"values": draw(hst.lists(hst.floats(0.05, 1.0), min_size=n, max_size=n))}
        # scale the schedule so that its largest batch-mean step is frac * stability limit
        rates = my_rates(kind, p, n)
        lim = st.stability_limit(s, B, kappa)
        frac = draw(hst.floats(0.05, 0.95))
        top = frac * lim if math.isfinite(lim) else 0.7
        conv = draw(hst.sampled_from(["mean", "sum"]))
        c = top / rates.max() / (B if conv == "sum" else 1)
        sp["sched"] = (kind, scale_schedule(kind, p, c))
        sp["lr_convention"] = conv
        if g > 0 and draw(hst.booleans()):
            sp["teacher"] = f"m{draw(hst.integers(0, g - 1))}"
            sp["alpha"] = draw(hst.one_of(hst.none(), hst.floats(0.0, 1.0)))
        specs.append(sp)
    at = sorted(set(draw(hst.lists(hst.integers(0, 30), min_size=1, max_size=6))) | {0})
    return lam, theta2, sigma2, feat, specs, at


@settings(max_examples=40)
@given(chains())
def test_property_random_chains(case):
    lam, theta2, sigma2, feat, specs, at = case
    run_both(lam, theta2, sigma2, feat, specs, at)
