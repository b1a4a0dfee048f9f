"""The constant-phase fast path for averaged and momentum models
(``spectral_theory.solvers.variant_renewal``, run by the renewal solver) against the exact engine.

The comparison is ``tests/test_renewal.py``'s: every reported field, the per-mode arrays, the
first moments and the whole final chain state at relative 1e-8 with the same floors; for an
averaged model also the last iterate's curves. The exact engine itself is checked against the
independent dense reference in ``tests/test_variants.py``. Cost is not timed: the work counter
``node_modes`` and the direct steps are asserted to be the same for 10^4 and 10^9 steps.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from test_renewal import FLOOR, RTOL, checkpoints, compare, problem

import spectral_theory as st
from spectral_theory.errors import SpecError
from spectral_theory.solvers import choose, variant_renewal
from spectral_theory.spec import StepDecay

MOMENTA = {
    "heavy_ball": {"kind": "heavy_ball", "beta": 0.9},
    "heavy_ball_small": {"kind": "heavy_ball", "beta": 0.3},
    "nesterov": {"kind": "nesterov", "beta": 0.8},
    "accelerated": {"kind": "accelerated", "alpha": 0.6, "beta": 0.9, "gamma": 0.5},
    "general": {"kind": "general", "r": 1.2, "p_e": 1.5, "p_v": 0.9, "k_v": 0.3},
}
AVERAGES = {
    "ema": {"kind": "ema", "decay": 0.99},
    "ema_long": {"kind": "ema", "half_life": 20000.0},
    "tail": {"kind": "tail", "fraction": 0.5},
    "tail_last": {"kind": "tail", "last": 777},
    "uniform": {"kind": "uniform", "start": 1},
    "uniform0": {"kind": "uniform", "start": 0},
    "uniform_late": {"kind": "uniform", "start": 4321},
}


def _lr(momentum):
    if not momentum:
        return 0.4
    if momentum["kind"] in ("accelerated", "general"):
        return 0.15
    return 0.4 * (1.0 - momentum["beta"])


def _last_iterates(fa, ex, sc):
    scale = float(np.sum(sc.problem.theta2)) + sc.problem.noise
    for name, me in ex.models.items():
        mf = fa.models[name]
        assert (mf.last_iterate is None) == (me.last_iterate is None)
        if me.last_iterate is not None:
            for k in ("excess_risk", "bias", "variance"):
                b = me.last_iterate[k]
                tol = RTOL * np.maximum(np.abs(b), FLOOR * scale)
                assert np.all(np.abs(mf.last_iterate[k] - b) <= tol), f"{name}.last_iterate.{k}"


def _solve(sc, at=None, record_modes=True):
    fa, ex = compare(sc, at=at, record_modes=record_modes)
    _last_iterates(fa, ex, sc)
    assert "variant_fallbacks" not in fa.diagnostics, fa.diagnostics.get("variant_fallbacks")
    return fa, ex


@pytest.mark.parametrize("mom", sorted(MOMENTA))
def test_momentum_matches_the_engine(mom):
    T = 20000
    m = st.Model("m", steps=T, schedule=_lr(MOMENTA[mom]), momentum=MOMENTA[mom])
    sc = st.Scenario(problem(noise=0.3), (m,))
    fa, _ = _solve(sc, at=checkpoints(T))
    assert fa.diagnostics["phases_contour"] >= 1


@pytest.mark.parametrize("avg", sorted(AVERAGES))
def test_averages_match_the_engine(avg):
    T = 20000
    m = st.Model("m", steps=T, schedule=0.4, average=AVERAGES[avg])
    sc = st.Scenario(problem(noise=0.3), (m,))
    fa, _ = _solve(sc, at=checkpoints(T, extra=(4320, 4321, 4322, 10000, 10001, 19223, 19224)))
    assert fa.diagnostics["phases_contour"] >= 1


@pytest.mark.parametrize("features, batch", [("gaussian", 1), ("rademacher", 8), ("uniform", 2)])
def test_momentum_and_averaging_with_batches_kurtoses_and_phases(features, batch):
    T = 12000
    sched = StepDecay(0.3 * batch ** 0.5 / 4, 0.5, 2800)
    m = st.Model("m", steps=T, schedule=sched, batch=batch, momentum={"kind": "heavy_ball", "beta": 0.7},
                 average={"kind": "tail", "fraction": 0.4})
    e = st.Model("e", steps=T, schedule=sched, batch=batch, momentum={"kind": "nesterov", "beta": 0.6},
                 average={"kind": "ema", "half_life": 300.0})
    sc = st.Scenario(problem(noise=0.2, features=features), (m, e))
    _solve(sc, at=checkpoints(T, extra=(2800, 2801, 7200, 7201)))


def test_chain_with_a_variant_teacher_and_plain_models_around_it():
    """A plain model before (cross moments), an averaged momentum teacher, a distilled student
    and a second-generation student: the deployed average feeds the students."""
    T = 12000
    first = st.Model("first", steps=5000, schedule=0.5)
    teacher = st.Model("t", steps=T, schedule=0.15, momentum={"kind": "heavy_ball", "beta": 0.6},
                       average={"kind": "tail", "fraction": 0.5})
    student = st.Model("s", steps=8000, schedule=0.5, teacher="t", alpha=0.3, capacity=60)
    grand = st.Model("g", steps=8000, schedule=0.4, teacher="s", alpha=0.0, capacity=40)
    sc = st.Scenario(problem(d=300, noise=0.5), (first, teacher, student, grand))
    fa, _ = _solve(sc)
    assert fa.models["s"].disagreement is not None


@settings(max_examples=12, deadline=None)
@given(seed=hst.integers(0, 2**31 - 1))
def test_random_variant_models_match_the_engine(seed):
    rng = np.random.default_rng(seed)
    d = int(rng.integers(20, 300))
    T = int(rng.integers(40, 20000))
    mom = MOMENTA[sorted(MOMENTA)[int(rng.integers(len(MOMENTA)))]] if rng.random() < 0.8 else None
    avg = AVERAGES[sorted(AVERAGES)[int(rng.integers(len(AVERAGES)))]] if rng.random() < 0.6 else None
    if avg is not None and avg["kind"] == "uniform" and avg["start"] > T:
        avg = {"kind": "uniform", "start": int(rng.integers(0, T + 1))}
    if avg is not None and avg["kind"] == "tail" and "last" in avg and avg["last"] > T + 1:
        avg = {"kind": "tail", "last": int(rng.integers(1, T + 2))}
    batch = int(rng.choice([1, 2, 16]))
    lr = _lr(mom) * float(rng.uniform(0.3, 1.0))
    m = st.Model("m", steps=T, schedule=lr, batch=batch, momentum=mom, average=avg)
    feats = str(rng.choice(["gaussian", "rademacher", "uniform"]))
    prob = st.Problem(st.PowerLawSpectrum(a=float(rng.uniform(1.1, 2.0)), d=d),
                      st.PowerLawTarget(b=float(rng.uniform(1.0, 3.0))), noise=float(rng.uniform(0, 1)),
                      features=feats)
    if not m.is_variant:
        return
    at = np.unique(np.concatenate([[0, 1, T], rng.integers(0, T + 1, size=12)]))
    _solve(st.Scenario(prob, (m,)), at=at)


def test_work_does_not_grow_with_the_number_of_steps():
    # checkpoints at fixed fractions of T, far above the direct steps: the same contour windows
    # for every T (capacity 400 of
    # 500 modes: the frozen modes keep the bias from decaying exponentially, so no source row is
    # moved onto the shifted contour, whose use depends on T)
    prob = problem(d=500)
    work = []
    for T in (10**7, 10**8, 10**10):
        at = [0, 1, 5, T // 1000, T // 100, T // 10, T // 3, T // 2, T]
        sc = st.Scenario(prob, (
            st.Model("m", steps=T, schedule=0.05, capacity=400, momentum={"kind": "heavy_ball", "beta": 0.9},
                     average={"kind": "ema", "decay": 0.999}),
            st.Model("n", steps=T, schedule=0.1, capacity=450, momentum={"kind": "nesterov", "beta": 0.5},
                     average={"kind": "tail", "fraction": 0.5})))
        r = st.predict(sc, at=at, method="renewal")
        assert "variant_fallbacks" not in r.diagnostics
        work.append((r.diagnostics["node_modes"], r.diagnostics["contour_nodes"], r.diagnostics["direct_steps"],
                     r.diagnostics["windows"]))
    assert work[0] == work[1] == work[2]


@pytest.mark.parametrize("student", [
    {"momentum": {"kind": "nesterov", "beta": 0.5}},
    {"average": {"kind": "ema", "decay": 0.99}},
    {"average": {"kind": "uniform", "start": 0}},
    {"momentum": {"kind": "heavy_ball", "beta": 0.7}, "average": {"kind": "tail", "fraction": 0.3}},
    {"momentum": {"kind": "accelerated", "alpha": 0.6, "beta": 0.9, "gamma": 0.5}},
    {"momentum": {"kind": "general", "r": 1.2, "p_e": 1.5, "p_v": 0.9, "k_v": 0.3},
     "average": {"kind": "ema", "half_life": 300.0}},
])
def test_variant_students_match_the_engine(student):
    """A variant student of a variant teacher (soft labels, capacity, batch 2, kappa 9/5), with a
    plain model before and a plain student after: the residual reduction, the cross moments with
    the parent on the contour, the disagreement and the chain state."""
    T = 6000
    t = st.Model("t", steps=T, schedule=0.15, momentum={"kind": "heavy_ball", "beta": 0.6},
                 average={"kind": "tail", "fraction": 0.5})
    s = st.Model("s", steps=5000, schedule=0.05, teacher="t", alpha=0.3, capacity=60, batch=2, **student)
    g = st.Model("g", steps=3000, schedule=0.3, teacher="s", alpha=0.5)
    sc = st.Scenario(problem(d=150, noise=0.5, features="uniform"), (st.Model("first", steps=500, schedule=0.3), t, s, g))
    fa, _ = _solve(sc, at=checkpoints(T))
    assert fa.models["s"].disagreement is not None


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_pure_distillation_and_hard_labels_from_a_teacher(alpha):
    T = 8000
    t = st.Model("t", steps=6000, schedule=0.15, momentum={"kind": "heavy_ball", "beta": 0.6})
    s = st.Model("s", steps=T, schedule=0.1, teacher="t", alpha=alpha, capacity=60,
                 momentum={"kind": "nesterov", "beta": 0.5}, average={"kind": "tail", "last": 1000})
    _solve(st.Scenario(problem(d=80, noise=0.5), (t, s)), at=checkpoints(T))


def test_declines_and_auto_choices():
    prob = problem(d=400)
    t = st.Model("t", steps=2000, schedule=0.3)
    cases = {
        "per-step momentum": st.Model("s", steps=2000, schedule=0.3,
                                      momentum={"kind": "heavy_ball", "beta": [0.5] * 2000}),
        "per-step weights": st.Model("s", steps=2000, schedule=0.3,
                                     average={"kind": "weights", "values": [1.0] * 2001}),
    }
    for key, m in cases.items():
        with pytest.raises(SpecError, match=key):
            st.predict(st.Scenario(prob, (t, m)), method="renewal")
    long = st.Scenario(prob, (st.Model("t", steps=10**6, schedule=0.3),
                              st.Model("s", steps=10**6, schedule=0.3, teacher="t", alpha=0.5,
                                       momentum={"kind": "heavy_ball", "beta": 0.5})))
    assert choose(long)[0].name == "renewal"
    ok = st.Scenario(prob, (st.Model("m", steps=10**6, schedule=0.3, momentum={"kind": "nesterov", "beta": 0.5},
                                     average={"kind": "tail", "fraction": 0.5}),))
    assert choose(ok)[0].name == "renewal"
    weights = st.Scenario(prob, (st.Model("m", steps=10**6, schedule=0.3, average={"kind": "weights",
                                                                                  "values": np.ones(10**6 + 1)}),))
    solver, why = choose(weights)
    assert solver.name == "exact" and "renewal declined" in why and "per-step weights" in why


def test_every_step_and_transient_excursions_go_to_the_engine():
    prob = problem(d=100)
    m = st.Model("m", steps=3000, schedule=0.3, momentum={"kind": "heavy_ball", "beta": 0.5},
                 average={"kind": "ema", "decay": 0.9})
    sc = st.Scenario(prob, (m,))
    fa, ex = compare(sc, every_step=True)
    assert any("every step" in w for w in fa.diagnostics["variant_fallbacks"])
    limit = st.predict(sc, method="exact").models["m"].stability_limit
    hot = st.Model("m", steps=3000, schedule=st.Piecewise((1.2 * limit, 0.3), (5, 2995)),
                   momentum={"kind": "heavy_ball", "beta": 0.5})
    with pytest.warns(RuntimeWarning, match="above the stability limit"):
        fa, ex = compare(st.Scenario(prob, (hot,)))
    assert any("stability limit" in w for w in fa.diagnostics["variant_fallbacks"])


def _extended_reference(model, prob, at):
    """Bias and variance of a momentum model trained on the data at the steps ``at``: the per-mode
    recursion in the iterate and auxiliary coordinates ``(e, v)`` (written out here, as the
    derivation states it, ``derivations/variants.md`` §1), in extended precision
    (``np.longdouble``: 64-bit mantissa, 3 more digits than float64, whose cancellations in these
    coordinates cost ~1e-14 per step at beta = 0.99)."""
    ld = np.longdouble
    r, pe, pv, he, hv = (ld(v) for v in model.momentum.coefficients(float(model.schedule.lr)))
    s = model.speed_profile(prob.eigenvalues).astype(ld)
    xe, xv = he * s, hv * s
    Mee = np.stack([prob.theta2.astype(ld), np.zeros(s.size, dtype=ld)])
    Mev, Mvv = Mee.copy(), Mee.copy()
    noise = np.array([[ld(0)], [ld(prob.noise)]])
    inv_b, kappa = ld(1) / ld(model.batch), ld(prob.kappa)
    out = {}
    for t in range(1, max(at) + 1):
        e_pi, v_pi = r * Mee + (1 - r) * Mev, r * Mev + (1 - r) * Mvv  # pi = r e + (1 - r) v
        U = r * e_pi + (1 - r) * v_pi
        Q = U + inv_b * (noise + U.sum(axis=1, keepdims=True) + (kappa - 2) * U)  # E[G^2]
        eh_pi, vh_pi = pe * e_pi + (1 - pe) * v_pi, pv * e_pi + (1 - pv) * v_pi
        ee = pe * pe * Mee + 2 * pe * (1 - pe) * Mev + (1 - pe) ** 2 * Mvv - 2 * xe * eh_pi + xe * xe * Q
        ev = (pe * pv * Mee + (pe * (1 - pv) + (1 - pe) * pv) * Mev + (1 - pe) * (1 - pv) * Mvv
              - xe * vh_pi - xv * eh_pi + xe * xv * Q)
        vv = pv * pv * Mee + 2 * pv * (1 - pv) * Mev + (1 - pv) ** 2 * Mvv - 2 * xv * vh_pi + xv * xv * Q
        Mee, Mev, Mvv = ee, ev, vv
        if t in at:
            out[t] = Mee.sum(axis=1)
    return np.array([out[t] for t in at], dtype=float)


def test_slow_oscillations_are_stepped_directly_before_the_contour():
    """beta = 0.99: the under-damped modes' poles (|zeta| ~ 0.99, outside the contours' wedge)
    decay over ~4000 steps, which are stepped directly; the check at the switch passes. The
    reference is the recursion of the derivation in extended precision (see above)."""
    assert np.finfo(np.longdouble).eps < 1e-18, "needs an 80-bit long double"
    T = 8000
    m = st.Model("m", steps=T, schedule=0.004, momentum={"kind": "heavy_ball", "beta": 0.99})
    prob = problem(d=60, noise=0.3)
    at = [0, 1, 17, 500, 3000, 3979, 3981, 4500, 6000, T]
    r = st.predict(st.Scenario(prob, (m,)), at=at, method="renewal")
    assert "variant_fallbacks" not in r.diagnostics
    assert r.diagnostics["direct_steps"] >= variant_renewal.DECAY_E / -np.log(0.99) - 1
    assert r.diagnostics["consistency"] <= variant_renewal.CHECK_TOL
    ref = _extended_reference(m, prob, at[1:])
    got = np.stack([r["m"].bias, r["m"].variance], axis=1)[1:]
    assert np.all(np.abs(got - ref) <= 1e-9 * np.abs(ref)), np.max(np.abs(got - ref) / np.abs(ref))
    # the step engine, in the same (e, e - v) coordinates, keeps its digits too (in (e, v) it
    # lost 2e-8 here)
    e = st.predict(st.Scenario(prob, (m,)), at=at, method="exact")
    got = np.stack([e["m"].bias, e["m"].variance], axis=1)[1:]
    assert np.all(np.abs(got - ref) <= 1e-9 * np.abs(ref)), np.max(np.abs(got - ref) / np.abs(ref))


@pytest.mark.slow
def test_long_horizon_against_the_engine():
    """10^6 steps of heavy-ball (beta 0.5) with a tail average and of Nesterov (beta 0.8) with an
    EMA at batch 4: the fast path against the step engine (~90 s each), measured 1e-11 to 1e-13."""
    for kw in (dict(momentum={"kind": "heavy_ball", "beta": 0.5}, average={"kind": "tail", "fraction": 0.3}),
               dict(momentum={"kind": "nesterov", "beta": 0.8}, average={"kind": "ema", "half_life": 1e4}, batch=4)):
        m = st.Model("m", steps=10**6, schedule=0.05, **kw)
        _solve(st.Scenario(problem(d=100, noise=0.2), (m,)), at=[0, 10, 1000, 100000, 700000, 700001, 900000, 10**6],
               record_modes=False)


@pytest.mark.parametrize("method", ["renewal", "exact"])
def test_memory_estimate_bounds_the_measured_peak(method):
    """The budget's estimate (without its fixed 32 MiB; 4 MiB of slack) bounds what a variant
    teacher and a plain student allocate (numpy arrays, counted by tracemalloc), as
    tests/test_cli.py checks for plain SGD."""
    import tracemalloc

    from spectral_theory.budget import _FIXED_BYTES, theory_estimate

    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=20000), st.PowerLawTarget(b=2.0), noise=0.1)
    for kw in (dict(momentum={"kind": "heavy_ball", "beta": 0.9}, average={"kind": "tail", "fraction": 0.5}),
               dict(average={"kind": "ema", "decay": 0.99}), dict(momentum={"kind": "nesterov", "beta": 0.5})):
        for record_modes in (False, True):
            sc = st.Scenario(prob, (st.Model("t", steps=800, schedule=0.03, **kw),
                                    st.Model("s", steps=300, schedule=0.2, teacher="t", alpha=0.3)),
                             output=st.Output(points=20))
            est = theory_estimate(sc, method, record_modes=record_modes)
            tracemalloc.start()
            try:
                st.predict(sc, method=method, record_modes=record_modes)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert peak <= est.total - _FIXED_BYTES + 4 * 2**20, (kw, record_modes, peak, est.parts)


@pytest.mark.parametrize("knob, value, words", [("CHECK_TOL", -1.0, "contour and direct steps differ"),
                                                  ("MAX_DIRECT", 10, "oscillating modes decay over more than")])
def test_a_phase_the_fast_path_cannot_serve_goes_to_the_engine(monkeypatch, knob, value, words):
    """A failed a-posteriori check, or too many direct steps, hands the model (after the chain
    state was extended for it) to the step engine: the chain state is restored first, so the
    results are the engine's, students included."""
    monkeypatch.setattr(variant_renewal, knob, value)
    T = 3000
    t = st.Model("t", steps=T, schedule=0.03, momentum={"kind": "heavy_ball", "beta": 0.9},
                 average={"kind": "ema", "decay": 0.99})
    s = st.Model("s", steps=2000, schedule=0.3, teacher="t", alpha=0.4, capacity=60)
    fa, _ = compare(st.Scenario(problem(noise=0.3), (st.Model("first", steps=500, schedule=0.3), t, s)),
                    at=checkpoints(T), record_modes=True)
    assert any(words in w for w in fa.diagnostics["variant_fallbacks"])
