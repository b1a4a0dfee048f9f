"""The renewal (contour) solver ``spectral_theory.solvers.renewal`` against the exact engine.

Every comparison is at relative 1e-8 (the solver's target; it measures ~1e-11):
``|fast - exact| <= 1e-8 * max(|exact|, floor)``. The floors only matter where
the exact value is 0 or is formed by cancellation, and are the float64 noise of
any code: for risks and disagreements 1e-6 x the size of the sources
(``sum theta^2 + sigma2``), i.e. an absolute 1e-14 of it; for per-mode arrays
1e-6 x the largest entry of the array; for first moments 1e-6 (they are O(1)).

Cost is not timed here: the work counter ``diagnostics['node_modes']`` (contour
nodes x modes) is asserted to be the same for 10^4 and 10^9 steps.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close
from hypothesis import given, settings
from hypothesis import strategies as hst

import spectral_theory as st
from spectral_theory.api import resolve_at
from spectral_theory.errors import InstabilityError, SpecError
from spectral_theory.solvers import PrefixCache, renewal
from spectral_theory.solvers.exact import run_exact
from spectral_theory.spec import Piecewise, Polynomial, StepDecay, WarmupDecay, halving_every
from spectral_theory.stability import stability_limit

RTOL = 1e-8
FLOOR = 1e-6


def _check(x, y, what, floor):
    assert_close(x, y, what, rtol=RTOL, floor=floor)


def compare(sc: st.Scenario, at=None, **kw) -> tuple[st.Result, st.Result]:
    """Run both solvers and compare every field they report."""
    A = resolve_at(sc, at)
    ex = run_exact(sc, at=A, **{k: v for k, v in kw.items() if k != "fmm"})
    fa = renewal.run_renewal(sc, at=A, **kw)
    scale = float(np.sum(sc.problem.theta2)) + sc.problem.noise
    rfloor = FLOOR * scale
    for name, me in ex.models.items():
        mf = fa.models[name]
        np.testing.assert_array_equal(mf.steps, me.steps)
        for k in ("excess_risk", "bias", "variance", "disagreement", "curve"):
            a, b = getattr(mf, k), getattr(me, k)
            assert (a is None) == (b is None), f"{name}.{k}"
            if b is not None:
                _check(a, b, f"{name}.{k}", rfloor)
        for k in ("second_moment", "bias", "variance"):
            b = getattr(me.modes, k)
            _check(getattr(mf.modes, k), b, f"{name}.modes.{k}", FLOOR * max(np.abs(b).max(), 1e-300))
        _check(mf.modes.first_moment, me.modes.first_moment, f"{name}.modes.first_moment", FLOOR)
        assert (mf.mode_curves is None) == (me.mode_curves is None)
        if me.mode_curves is not None:
            _check(mf.mode_curves, me.mode_curves, f"{name}.mode_curves",
                   FLOOR * max(np.abs(me.mode_curves).max(), 1e-300))
        assert mf.stability_limit == me.stability_limit
        assert mf.max_lr == me.max_lr
    for g, row in ex.disagreement.items():
        for h, v in row.items():
            _check(fa.disagreement[g][h], v, f"disagreement[{g}][{h}]", rfloor)
    # the final state (all pair moments) feeds later models: compare it too
    for key, M in ex.state.M.items():
        _check(fa.state.M[key], M, f"state.M{key}", FLOOR * max(np.abs(M).max(), 1e-300))
    return fa, ex


def problem(d=200, a=1.5, b=2.0, noise=0.1, features="gaussian"):
    return st.Problem(st.PowerLawSpectrum(a=a, d=d), st.PowerLawTarget(b=b), noise=noise,
                      features=features)


def checkpoints(T, extra=()):
    """0, 1, small steps around T_DIRECT, log-spaced steps, the final step."""
    pts = {0, 1, 2, 3, 5, renewal.T_DIRECT - 1, renewal.T_DIRECT, renewal.T_DIRECT + 1, 40, T, *extra}
    pts |= set(np.unique(np.round(np.geomspace(1, T, 30)).astype(int)).tolist())
    return sorted(t for t in pts if 0 <= t <= T)


# ---------------------------------------------------------------------------- single models


def test_constant_schedule_long_run():
    T = 20_000
    sc = st.Scenario(problem(d=300), (st.Model("m", steps=T, schedule=0.3),))
    fa, _ = compare(sc, checkpoints(T))
    assert fa.diagnostics["consistency"] < 1e-9
    assert fa.diagnostics["phases_contour"] == 1


def test_step_decay_with_phase_boundaries():
    T = 8000
    every = halving_every(T)
    sched = StepDecay(0.4, 0.5, every)
    sc = st.Scenario(problem(d=200), (st.Model("m", steps=T, schedule=sched),))
    bounds = [k * every + dt for k in range(1, T // every + 1) for dt in (-1, 0, 1)]
    fa, _ = compare(sc, checkpoints(T, bounds))
    assert fa.diagnostics["phases_contour"] == len(sc.models[0].phases())


def test_piecewise_with_short_and_long_phases():
    T = 6000
    sched = Piecewise((0.35, 0.05, 0.3, 0.1), (5, 1000, 3, T - 1008))
    sc = st.Scenario(problem(d=150, noise=0.2), (st.Model("m", steps=T, schedule=sched),))
    fa, _ = compare(sc, checkpoints(T, [4, 5, 6, 1004, 1005, 1006, 1008, 1009, 1010]))
    assert fa.diagnostics["phases_direct"] == 2  # the 5- and 3-step phases are stepped directly


def test_capacity_truncated_model_and_zero_noise():
    T = 4000
    sc = st.Scenario(problem(d=200, noise=0.0),
                     (st.Model("m", steps=T, schedule=0.3, capacity=60),))
    fa, ex = compare(sc, checkpoints(T))
    assert np.all(fa["m"].variance == 0.0)
    # modes beyond the capacity never move: exactly theta^2 and mu = -1
    np.testing.assert_array_equal(fa["m"].modes.second_moment[60:], sc.problem.theta2[60:])
    np.testing.assert_array_equal(fa["m"].modes.first_moment[60:], -1.0)


def test_batch_and_summed_step_convention():
    T = 3000
    sc = st.Scenario(problem(d=120),
                     (st.Model("m", steps=T, schedule=0.08, batch=4, lr_convention="sum"),))
    compare(sc, checkpoints(T))


@pytest.mark.parametrize("features,lr", [("uniform", 0.3), ("gaussian", 0.3), ("rademacher", 0.2),
                                         (st.Features("kurtosis", 6.0), 0.15)])
def test_kurtosis(features, lr):
    T = 3000
    sc = st.Scenario(problem(d=120, features=features), (st.Model("m", steps=T, schedule=lr),))
    assert renewal.supports(sc) is None
    compare(sc, checkpoints(T))


def test_negative_mode_factor_is_declined_with_a_reason():
    # Rademacher latents (kappa = 1), B = 1: a = 1 - 2x is negative for x > 1/2
    prob = problem(d=50, features="rademacher")
    sc = st.Scenario(prob, (st.Model("m", steps=100, schedule=0.6),))
    reason = renewal.supports(sc)
    assert reason is not None and "a_i" in reason and "'m'" in reason
    with pytest.raises(SpecError, match="cannot solve"):
        renewal.run_renewal(sc, at=resolve_at(sc, None))


def test_single_mode_and_zero_steps():
    prob = st.Problem(st.ArraySpectrum([0.7]), st.ArrayTarget([2.0]), noise=0.5)
    sc = st.Scenario(prob, (st.Model("a", steps=500, schedule=0.9),
                            st.Model("b", steps=0, schedule=0.5, teacher="a", alpha=0.3)))
    compare(sc, checkpoints(500))


def test_explicit_speeds_with_zeros_and_equal_values():
    d = 80
    lam = np.arange(1, d + 1, dtype=float) ** -1.2
    speeds = lam.copy()
    speeds[10:20] = 0.0
    speeds[30:40] = speeds[30]  # repeated per-mode factors
    prob = st.Problem(st.ArraySpectrum(lam), st.PowerLawTarget(b=1.5), noise=0.3)
    sc = st.Scenario(prob, (st.Model("m", steps=2500, schedule=0.4, speeds=speeds),))
    compare(sc, checkpoints(2500))
    # unsorted speeds (the multipole path sorts them) and equal factors
    shuffled = np.random.default_rng(0).permutation(speeds)
    sc = st.Scenario(prob, (st.Model("m", steps=2500, schedule=0.4, speeds=shuffled),))
    compare(sc, checkpoints(2500), fmm=True)


def test_frozen_model():
    # a student whose speeds are all zero never moves (and has no stability limit)
    sc = st.Scenario(problem(d=30), (st.Model("t", steps=500, schedule=0.3),
                                     st.Model("s", steps=800, schedule=0.3, teacher="t", alpha=0.3,
                                              speeds=np.zeros(30))))
    compare(sc, checkpoints(800), record_modes=True)


def test_many_phases_schedule_stepped_directly():
    # a polynomial decay has one phase per step: solved, but by direct stepping
    sc = st.Scenario(problem(d=60), (st.Model("m", steps=300, schedule=Polynomial(0.3, 20.0, 1.0)),))
    fa, _ = compare(sc, checkpoints(300))
    assert fa.diagnostics["phases_direct"] == 300
    sc = st.Scenario(problem(d=60), (st.Model("m", steps=400, schedule=WarmupDecay(0.3, 30, 1.0, 0.0)),))
    compare(sc, checkpoints(400, [29, 30, 31]))


# ---------------------------------------------------------------------------- chains


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_teacher_student(alpha):
    T = 3000
    sc = st.Scenario(problem(d=200), (
        st.Model("t", steps=T, schedule=0.3, capacity=50),
        st.Model("s", steps=2 * T, schedule=StepDecay(0.3, 0.5, 2000), teacher="t", alpha=alpha)))
    fa, _ = compare(sc, checkpoints(2 * T))
    assert fa["s"].disagreement is not None


def test_three_generation_chain_and_shared_teacher():
    T = 2000
    sc = st.Scenario(problem(d=150, noise=0.2), (
        st.Model("t", steps=T, schedule=0.3, capacity=40),
        st.Model("s1", steps=T, schedule=0.25, teacher="t", alpha=0.3),
        st.Model("s2", steps=T // 2, schedule=0.2, batch=3, teacher="t", alpha=0.0),
        st.Model("g", steps=T, schedule=Piecewise((0.3, 0.1), (500, T - 500)), teacher="s1",
                 alpha=0.5, capacity=100)))
    compare(sc, checkpoints(T, [500, 501]))


def test_record_modes_and_every_step():
    T = 600
    sc = st.Scenario(problem(d=60), (
        st.Model("t", steps=T, schedule=0.3, capacity=30),
        st.Model("s", steps=T, schedule=StepDecay(0.3, 0.5, 200), teacher="t", alpha=0.3)))
    compare(sc, checkpoints(T, [199, 200, 201]), record_modes=True, every_step=True)


def test_every_step_limit():
    sc = st.Scenario(problem(d=10), (st.Model("m", steps=renewal.MAX_EVERY_STEP + 1, schedule=0.1),))
    with pytest.raises(SpecError, match="every_step"):
        renewal.run_renewal(sc, at={"m": np.array([0])}, every_step=True)


def test_prefix_cache():
    T = 1500
    sc = st.Scenario(problem(d=80), (st.Model("t", steps=T, schedule=0.3),
                                     st.Model("s", steps=T, schedule=0.2, teacher="t")))
    A = resolve_at(sc, None)
    cache = PrefixCache()
    r1 = renewal.run_renewal(sc, at=A, cache=cache)
    r2 = renewal.run_renewal(sc, at=A, cache=cache)
    assert cache.hits == 2 and cache.misses == 2
    np.testing.assert_array_equal(r1["s"].excess_risk, r2["s"].excess_risk)


# ---------------------------------------------------------------------------- instability


def test_instability_raises_like_the_engine():
    prob = problem(d=100)
    lim = stability_limit(prob.eigenvalues, 1, prob.kappa)
    sc = st.Scenario(prob, (st.Model("m", steps=300, schedule=Piecewise((0.5 * lim, 1.2 * lim),
                                                                           (100, 200))),))
    A = resolve_at(sc, None)
    with pytest.raises(InstabilityError) as e_fast:
        renewal.run_renewal(sc, at=A)
    with pytest.raises(InstabilityError) as e_exact:
        run_exact(sc, at=A)
    assert str(e_fast.value) == str(e_exact.value)


def test_unstable_phase_with_warn_matches_the_engine():
    """Phases above the limit are integrated on a shifted contour: a final one under "ignore"
    (the risk grows to the end), a transient one under the default (with a warning)."""
    prob = problem(d=100)
    lim = stability_limit(prob.eigenvalues, 1, prob.kappa)
    sc = st.Scenario(prob, (st.Model("m", steps=400, schedule=Piecewise((0.5 * lim, 1.05 * lim),
                                                                           (200, 200))),))
    fa, _ = compare(sc, checkpoints(400, [200, 201]), on_unstable="ignore")
    assert fa["m"].excess_risk[-1] > fa["m"].excess_risk[0]  # it grows
    assert fa.diagnostics["unstable_steps"]["m"]["steps"] == [[200, 399]]
    sc = st.Scenario(prob, (st.Model("m", steps=400, schedule=Piecewise((1.05 * lim, 0.5 * lim),
                                                                           (200, 200))),))
    with pytest.warns(RuntimeWarning, match=r"model 'm': steps 0-199 \(200 of 400"):
        fa, _ = compare(sc, checkpoints(400, [199, 200, 201]))
    r = fa["m"].excess_risk
    assert r[list(fa["m"].steps).index(200)] > r[0] > r[-1]  # grows, then decays


# ---------------------------------------------------------------------------- multipole path


def test_multipole_path_against_the_engine():
    T = 3000
    sc = st.Scenario(problem(d=2000), (
        st.Model("t", steps=T, schedule=StepDecay(0.3, 0.5, 1000), capacity=1500),
        st.Model("s", steps=T, schedule=0.2, teacher="t", alpha=0.3)))
    fa, _ = compare(sc, [0, 1, 7, 20, 300, 999, 1000, 1001, 2500, T], fmm=True)
    assert fa.diagnostics["multipole_setups"] > 0


def test_multipole_near_field(monkeypatch):
    # a tiny acceptance ratio sends many (node, bin) pairs to the direct near-field sums
    monkeypatch.setattr(renewal, "FMM_RATIO", 0.002)
    T = 2000
    sc = st.Scenario(problem(d=600, noise=0.3), (
        st.Model("t", steps=T, schedule=StepDecay(0.4, 0.5, 700), capacity=500),
        st.Model("s", steps=T, schedule=0.3, teacher="t", alpha=0.5)))
    fa, _ = compare(sc, checkpoints(T, [700, 701]), fmm=True, record_modes=True)
    assert fa.diagnostics["multipole_near_pairs"] > 0


def test_multipole_and_direct_sums_agree_at_scale():
    T = 10**7
    sc = st.Scenario(problem(d=20_000), (
        st.Model("t", steps=T, schedule=StepDecay(0.3, 0.5, T // 4)),
        st.Model("s", steps=T, schedule=0.2, teacher="t", alpha=0.0)))
    A = resolve_at(sc, None)
    f1 = renewal.run_renewal(sc, at=A, fmm=True)
    f0 = renewal.run_renewal(sc, at=A, fmm=False)
    assert f1.diagnostics["multipole_setups"] > 0 and f0.diagnostics["multipole_setups"] == 0
    for name in ("t", "s"):
        for k in ("excess_risk", "bias", "variance"):
            _check(getattr(f1[name], k), getattr(f0[name], k), f"{name}.{k}", 1e-300)
        _check(f1[name].modes.second_moment, f0[name].modes.second_moment, f"{name}.modes",
               FLOOR * f0[name].modes.second_moment.max())
    _check(f1["s"].disagreement, f0["s"].disagreement, "s.disagreement", 1e-300)


# ---------------------------------------------------------------------------- cost and contours


def test_work_does_not_grow_with_the_number_of_steps():
    # Checkpoints at fixed fractions of T (and above T_DIRECT): the same contour windows
    # for every T. (Capacity-truncated models: the frozen modes keep a steady forcing, so
    # no source is moved onto the exponential-regime contour, whose use depends on T.)
    work = []
    for T in (10**5, 10**7, 10**10):
        at = [0, 1, 5, T // 1000, T // 100, T // 10, T // 3, T // 2, T]
        sc = st.Scenario(problem(d=500), (
            st.Model("t", steps=T, schedule=StepDecay(0.3, 0.5, T // 4), capacity=400),
            st.Model("s", steps=T, schedule=0.2, teacher="t", alpha=0.3, capacity=450)))
        diag = renewal.run_renewal(sc, at=resolve_at(sc, at)).diagnostics
        work.append((diag["node_modes"], diag["contour_nodes"], diag["direct_steps"],
                     diag["windows"]))
    assert work[0] == work[1] == work[2]


def test_contour_table():
    for spec in renewal.CONTOURS:
        assert renewal.contour_error(spec, n_t=12, n_rho=120) <= spec.log10_err + 0.05
        assert spec.log10_err <= -12.0
        assert spec.t_min <= renewal.T_DIRECT
        s, _ = spec.nodes()
        assert np.abs(s.imag).max() / spec.t_min <= renewal.IM_MAX + 1e-12


def test_pole_contour_table():
    """The contours of the variant fast path: error on poles up to order 4 as tabulated."""
    for spec in renewal.CONTOURS_POLES:
        assert renewal.contour_error(spec, n_t=12, n_rho=120, order=4) <= spec.log10_err + 0.05
        assert spec.log10_err <= -11.7
        assert spec.t_min <= renewal.T_DIRECT
    # the plain table is not good enough for them (why the second table exists)
    wide = renewal.CONTOURS[-1]
    assert renewal.contour_error(wide, n_t=12, n_rho=120, order=2) > -7


def test_supports_reasons():
    ok = st.Scenario(problem(d=20), (st.Model("m", steps=10**9, schedule=0.2),))
    assert renewal.supports(ok) is None
    poly = st.Scenario(problem(d=20), (st.Model("m", steps=10**8, schedule=Polynomial(0.2, 1.0, 1.0)),))
    assert "polynomial" in renewal.supports(poly)
    many = st.Scenario(problem(d=20), (st.Model("m", steps=10**6, schedule=StepDecay(0.2, 0.99, 2)),))
    assert "phases" in renewal.supports(many)


# ---------------------------------------------------------------------------- property test


@hst.composite
def chains(draw):
    d = draw(hst.integers(1, 40))
    a = draw(hst.floats(0.5, 2.5))
    b = draw(hst.floats(0.0, 3.0))
    noise = draw(hst.sampled_from([0.0, 0.3]))
    kappa = draw(hst.sampled_from([1.8, 3.0, 5.0]))
    prob = st.Problem(st.PowerLawSpectrum(a=a, d=d), st.PowerLawTarget(b=b), noise=noise,
                      features=st.Features("kurtosis", kappa))
    n_models = draw(hst.integers(1, 3))
    models = []
    for g in range(n_models):
        batch = draw(hst.integers(1, 3))
        cap = draw(hst.one_of(hst.none(), hst.integers(1, d)))
        s = prob.eigenvalues.copy()
        if cap is not None:
            s[cap:] = 0.0
        lim = stability_limit(s, batch, kappa)
        # keep every per-mode factor a_i > 0 (what the solver supports)
        q = (batch + kappa - 2.0) / batch
        x_pos = 0.5 if q <= 1.0 else 1.0
        lim = min(lim, 0.95 * x_pos / s.max()) if np.isfinite(lim) else 1.0
        lr = draw(hst.floats(0.05, 0.9)) * lim
        steps = draw(hst.integers(0, 1500))
        kind = draw(hst.sampled_from(["constant", "decay", "piecewise"]))
        if kind == "constant":
            sched = lr
        elif kind == "decay":
            sched = StepDecay(lr, 0.5, draw(hst.integers(1, 600)))
        elif steps < 3:
            sched = lr
        else:  # the phase lengths add up to the model's steps
            first = draw(hst.integers(1, min(400, steps - 2)))
            second = draw(hst.integers(1, min(50, steps - 1 - first)))
            sched = Piecewise((lr, 0.3 * lr, 0.8 * lr), (first, second, steps - first - second))
        teacher = alpha = None
        if g and draw(hst.booleans()):
            teacher = models[draw(hst.integers(0, g - 1))].name
            alpha = draw(hst.sampled_from([0.0, 0.3, 1.0]))
        models.append(st.Model(f"m{g}", steps=steps, schedule=sched, batch=batch, capacity=cap,
                               teacher=teacher, alpha=alpha))
    extra = draw(hst.lists(hst.integers(0, 1500), max_size=6))
    return st.Scenario(prob, tuple(models)), sorted({0, 1, 2, 17, 100, 1500, *extra})


@settings(max_examples=40)
@given(chains())
def test_random_chains_match_the_engine(case):
    sc, at = case
    assert renewal.supports(sc) is None
    compare(sc, at)
