"""Stability limit: against the spectral radius of the explicit linear map, the
closed form of docs/theory.md §5 for B = 1, kappa = 3, and the engine's behaviour."""

import warnings

import numpy as np
import pytest

import spectral_theory as st


def spectral_radius(eta, s, batch, kappa):
    """Radius of the one-step linear map of (M_gg, M_gh) for a constant step, built densely."""
    s = s[s > 0]
    x = eta * s
    a = (1 - x) ** 2 + x**2 * (kappa - 2) / batch
    b = x**2 / batch
    L = np.diag(a) + np.outer(b, np.ones_like(b))
    rho_second = np.max(np.abs(np.linalg.eigvals(L)))
    rho_cross = np.max(np.abs(1 - x))
    return max(rho_second, rho_cross)


@pytest.mark.parametrize("batch", [1, 3, 16])
@pytest.mark.parametrize("kappa", [1.0, 1.8, 3.0, 7.0])
def test_limit_is_where_spectral_radius_crosses_one(batch, kappa):
    rng = np.random.default_rng(batch * 100 + int(kappa * 10))
    s = np.sort(rng.uniform(0.0, 1.0, 12))[::-1]
    s[-2:] = 0.0  # frozen modes do not count
    lim = st.stability_limit(s, batch, kappa)
    assert spectral_radius(lim * (1 - 1e-6), s, batch, kappa) < 1
    assert spectral_radius(lim * (1 + 1e-6), s, batch, kappa) >= 1 - 1e-12


def test_theory_closed_form_b1_gaussian():
    lam = st.PowerLawSpectrum(a=1.5, d=200).values
    lim = st.stability_limit(lam, 1, 3.0)
    k = lambda eta: np.sum(eta * lam / (2 * (1 - eta * lam)))  # noqa: E731  docs/theory.md §5
    assert k(lim) == pytest.approx(1.0, rel=1e-10)
    assert k(0.999 * lim) < 1


def test_engine_reports_instability_with_limit():
    """A schedule whose final constant phase is above the limit is an error under the default
    policy (warn) and under "raise", in predict and simulate; the message names the model, the
    first step of that phase, the limit and the peak growth factor."""
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=50), st.PowerLawTarget(b=2.0), noise=0.1)
    lim = st.stability_limit(prob.eigenvalues, 1, 3.0)
    sc = st.Scenario(prob, (st.Model("m", steps=100, schedule=st.Piecewise([0.5 * lim, 1.01 * lim], [50, 50])),))
    for on_unstable in ("warn", "raise"):
        with pytest.raises(st.InstabilityError) as info:
            st.predict(sc, on_unstable=on_unstable)
        err = info.value
        assert err.model == "m" and err.step == 50
        assert err.lr == pytest.approx(1.01 * lim)
        assert err.limit == pytest.approx(lim)
        text = str(err)
        assert "models['m']" in text and "largest stable constant step" in text
        assert f"{lim:.6g}" in text and "steps above the limit: 50-99 (50 of 100)" in text
        assert "peak growth factor" in text
    assert "final constant phase (steps 50-99)" in str(st_error(sc, "warn"))
    assert "on_unstable='raise' refuses" in str(st_error(sc, "raise"))
    with pytest.raises(st.InstabilityError, match="final constant phase"):
        st.simulate(sc, reps=10, seed=0)


def st_error(sc, on_unstable):
    with pytest.raises(st.InstabilityError) as info:
        st.predict(sc, on_unstable=on_unstable)
    return info.value


def test_unstable_run_grows_and_stable_run_converges():
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=50), st.PowerLawTarget(b=2.0), noise=0.1)
    lim = st.stability_limit(prob.eigenvalues, 1, 3.0)
    ok = st.predict(st.Scenario(prob, (st.Model("m", steps=3000, schedule=0.98 * lim),)), at=[1000, 2000, 3000])
    r = ok["m"].excess_risk
    assert abs(r[2] - r[1]) < abs(r[1] - r[0]) + 1e-15  # settling to the floor
    assert ok.diagnostics["warnings"] == [] and "unstable_steps" not in ok.diagnostics
    sc = st.Scenario(prob, (st.Model("m", steps=3000, schedule=1.05 * lim),))
    with pytest.raises(st.InstabilityError, match="final constant phase"):
        st.predict(sc, at=[1000, 2000, 3000])  # the default refuses a final unstable phase
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "ignore": computed, and no warning at all
        bad = st.predict(sc, at=[1000, 2000, 3000], on_unstable="ignore")
    rb = bad["m"].excess_risk
    assert rb[2] > rb[1] > rb[0] > r[0]
    assert bad.diagnostics["warnings"] == []
    entry = bad.diagnostics["unstable_steps"]["m"]
    assert entry["steps"] == [[0, 2999]] and entry["final_phase_unstable"]
    assert entry["limit"] == pytest.approx(lim) and entry["max_step"] == pytest.approx(1.05 * lim)


def test_overflow_is_reported_not_returned():
    """Under "ignore" a final unstable phase is integrated; the overflow is still an error,
    naming the limit, for every theory method and for Monte Carlo."""
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=20), st.PowerLawTarget(b=2.0), noise=0.1)
    lim = st.stability_limit(prob.eigenvalues, 1, 3.0)
    sc = st.Scenario(prob, (st.Model("m", steps=5000, schedule=3 * lim),))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's overflow warnings
        for method in ("exact", "renewal"):  # the ODE's overflow: tests/test_ode.py
            with pytest.raises(st.InstabilityError, match="non-finite") as info:
                st.predict(sc, method=method, on_unstable="ignore")
            assert info.value.limit == pytest.approx(lim)
            assert f"largest stable constant step for this model is {lim:.6g}" in str(info.value)
            assert "peak growth factor 10^" in str(info.value)  # the factor overflows a float
        sim = st.Scenario(prob, (st.Model("m", steps=2000, schedule=3 * lim),))
        with pytest.raises(st.InstabilityError, match="simulated risk overflowed") as info:
            st.simulate(sim, reps=4, seed=0, on_unstable="ignore")
        assert info.value.limit == pytest.approx(lim)


def test_exact_criterion_against_spectral_radius_random():
    """is_stable is the exact eigenvalue test and stability_limit ends the stable interval,
    including B = 1 with kappa < 1.5, where single per-mode factors may be below -1."""
    from spectral_theory.stability import is_stable

    rng = np.random.default_rng(7)
    for _ in range(400):
        d = int(rng.integers(1, 6))
        s = np.sort(rng.uniform(0.0, 1.0, d))[::-1]
        if rng.random() < 0.3:
            s[-1] = s[0]  # repeated speeds: repeated factors are eigenvalues
        batch = int(rng.choice([1, 1, 2]))
        kappa = float(rng.choice([1.0, 1.2, 1.8, 3.0]))
        eta = rng.uniform(0.0, 4.0)
        r = spectral_radius(eta, s, batch, kappa)
        if abs(r - 1) > 1e-9:
            assert (r < 1) == is_stable(eta, s, batch, kappa), (s, batch, kappa, eta, r)
        lim = st.stability_limit(s, batch, kappa)
        for e in np.linspace(0, lim, 12)[1:-1]:
            assert spectral_radius(e, s, batch, kappa) < 1
        assert spectral_radius(lim * (1 + 1e-6), s, batch, kappa) >= 1 - 1e-9


def test_rademacher_single_mode_limit_is_x_below_two():
    # kappa = 1, B = 1, d = 1: M' = (1 - x)^2 M + x^2 sigma2 is stable for x < 2 although a = 1 - 2x < -1
    assert st.stability_limit(np.array([0.8]), 1, 1.0) == pytest.approx(2.5)


@pytest.mark.parametrize("d,a,batch,kappa", [(10, 1.5, 1, 3.0), (1000, 1.1, 1, 3.0), (10**5, 1.5, 1, 3.0),
                                             (1000, 2.5, 4, 1.2), (50, 1.5, 1, 1.0), (300, 1.2, 3, 9.0)])
def test_limit_root_and_secular_top_against_scipy_and_dense(d, a, batch, kappa):
    """The monotone Newton iterations of the stability limit and of the secular equation's top
    root against scipy's brentq on the same equations and numpy's dense eigenvalues."""
    from scipy.optimize import brentq

    from spectral_theory.stability import _upper_bound, kernel_norm, secular_top

    s = np.arange(1, d + 1, dtype=float) ** -a
    eps = np.finfo(float).eps
    below = _upper_bound(batch, kappa) / s.max() * (1 - 1e-13)
    if kernel_norm(below, s, batch, kappa) >= 1.0:
        ref = brentq(lambda e: kernel_norm(e, s, batch, kappa) - 1.0, 0.0, below, xtol=1e-300, rtol=4 * eps)
        assert st.stability_limit(s, batch, kappa) == pytest.approx(ref, rel=8 * eps)
    q = (batch + kappa - 2.0) / batch
    for frac in (0.3, 0.9):
        x = frac * st.stability_limit(s, batch, kappa) * s
        av, bv = 1.0 - 2.0 * x + q * x * x, x * x / batch
        D = av.max() - av
        v = secular_top(D, bv)
        h = lambda u, D=D, bv=bv: float(np.sum(bv / (u + D))) - 1.0  # noqa: E731
        ref = brentq(h, 0.5 * bv[D == 0].sum(), 2.0 * bv.sum(), xtol=1e-300, rtol=4 * eps)
        assert v == pytest.approx(ref, rel=1e-13)
        top = av.max() + v
        if d <= 1000:
            dense = np.max(np.linalg.eigvals(np.diag(av) + np.outer(bv, np.ones(d))).real)
            assert top == pytest.approx(dense, rel=1e-10)
