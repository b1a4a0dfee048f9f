"""Stability limit: against the spectral radius of the explicit linear map, the
THEORY.md closed form for B = 1, kappa = 3, and the engine's behaviour."""

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
    k = lambda eta: np.sum(eta * lam / (2 * (1 - eta * lam)))  # noqa: E731  THEORY.md section 4
    assert k(lim) == pytest.approx(1.0, rel=1e-10)
    assert k(0.999 * lim) < 1


def test_engine_reports_instability_with_limit():
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=50), st.PowerLawTarget(b=2.0), noise=0.1)
    lim = st.stability_limit(prob.eigenvalues, 1, 3.0)
    sc = st.Scenario(prob, (st.Model("m", steps=100, schedule=st.Piecewise([0.5 * lim, 1.01 * lim], [50, 50])),))
    with pytest.raises(st.InstabilityError) as info:
        st.predict(sc)
    err = info.value
    assert err.model == "m" and err.step == 50
    assert err.limit == pytest.approx(lim)
    assert "largest stable constant step" in str(err)
    with pytest.raises(st.InstabilityError):
        st.simulate(sc, reps=10, seed=0)


def test_unstable_run_grows_and_stable_run_converges():
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=50), st.PowerLawTarget(b=2.0), noise=0.1)
    lim = st.stability_limit(prob.eigenvalues, 1, 3.0)
    ok = st.predict(st.Scenario(prob, (st.Model("m", steps=3000, schedule=0.98 * lim),)), at=[1000, 2000, 3000])
    r = ok["m"].excess_risk
    assert abs(r[2] - r[1]) < abs(r[1] - r[0]) + 1e-15  # settling to the floor
    with pytest.warns(RuntimeWarning, match="stability limit"):
        bad = st.predict(st.Scenario(prob, (st.Model("m", steps=3000, schedule=1.05 * lim),)),
                         at=[1000, 2000, 3000], on_unstable="warn")
    rb = bad["m"].excess_risk
    assert rb[2] > rb[1] > rb[0] > r[0]
    assert bad.diagnostics["warnings"]


def test_overflow_is_reported_not_returned():
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=20), st.PowerLawTarget(b=2.0), noise=0.1)
    lim = st.stability_limit(prob.eigenvalues, 1, 3.0)
    with pytest.warns(RuntimeWarning):
        with pytest.raises(st.InstabilityError, match="non-finite"):
            st.predict(st.Scenario(prob, (st.Model("m", steps=5000, schedule=3 * lim),)), on_unstable="warn")


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
