"""Rate checks (``docs/design.md``: tolerances that explain themselves): fitted log-log slopes of exact risk curves vs exponents.

Curves come from ``spectral_theory.predict`` (the exact recursion) on noiseless
problems (noise 0: the risk is pure bias) with a constant step. The expected
exponent is ``bias_rate_exponent(a, b) = -min((b-1)/a, 2 - 1/a)``, which is
the rate ``-(b-1)/a`` of ``docs/theory.md`` §7 for every case with ``b <= 2a``.

Band: 0.05 absolute on the slope. Budget of the known corrections inside each
window (all computed from the closed forms, see the second assertion):

* finite d: the incomplete-gamma forcing with ``d`` steepens the slope by
  about ``-(2 tau d^-a)^s / Gamma(s)`` (``s = (b-1)/a``); the windows keep this
  below 0.045 at the window's end (0.033 averaged over the window, worst case
  ``s = 1/3``), i.e. ``2 eta t d^-a <= 0.012`` (0.034 for the ``s = 4/3`` case);
* SGD-noise feedback: the factor ``1/(1 - K_{t/2})`` still grows inside the
  window and flattens the slope by ~``(1 - 1/a) (K - K_{t/2})/(1 - K)``, up to
  +0.015 for ``a = 1.5`` at ``tau >= 100`` (hence windows start at
  ``t = 350 > 100/eta``: the asymptotics have kicked in);
* the fit itself: ``stderr`` below 0.003 (the local slope hardly drifts).

The two corrections partly cancel; measured deviations are 0.002-0.018. A
tighter check compares the fitted slope with the slope of the uniform renewal
approximation ``sgd_bias_powerlaw`` over the same points (band 0.025; measured
at most 0.018).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import spectral_theory as st
from spectral_theory.analysis import asymptotics as A
from spectral_theory.analysis.rates import (
    RateCheck,
    SlopeFit,
    check_rate,
    fit_loglog_slope,
    rate_table,
)

BAND = 0.05
BAND_UNIFORM = 0.025

# (a, b, d, eta, window in steps, every_step)
CASES = [
    (1.5, 2.0, 4000, 0.3, (350, 5000), False),
    (2.0, 3.0, 1000, 0.3, (350, 5000), True),
    (1.5, 1.5, 10000, 0.3, (350, 2000), False),
    (2.5, 2.0, 1000, 0.3, (350, 5000), False),
    (1.5, 4.0, 2000, 0.3, (350, 5000), False),  # b > 2a: SGD-noise-dominated, rate -(2 - 1/a)
]


def _run(a, b, d, eta, window, every_step):
    lo, hi = window
    at = np.unique(np.round(np.geomspace(lo, hi, 25)).astype(int))
    prob = st.Problem(st.PowerLawSpectrum(a=a, d=d), st.PowerLawTarget(b=b), noise=0.0)
    res = st.predict(st.Scenario(prob, (st.Model("m", steps=hi, schedule=eta),)), at=list(at),
                     every_step=every_step)
    return res, at


@pytest.fixture(scope="module")
def rate_runs():
    return {case[:2]: _run(*case) for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[f"a={c[0]},b={c[1]}" for c in CASES])
def test_bias_rate_of_exact_engine(case, rate_runs):
    a, b, d, eta, window, every_step = case
    res, at = rate_runs[(a, b)]
    lo, hi = window
    # the window is in the asymptotic regime: tau >= 100, and well before the finite-d saturation
    assert eta * lo >= 100
    expected = A.bias_rate_exponent(a, b)
    x_hi = 2 * eta * hi * d ** (-a)
    assert x_hi ** -expected / math.gamma(-expected) <= 0.045  # finite-d slope shift, window end
    if b <= 2 * a:
        assert expected == pytest.approx(-(b - 1) / a)  # the rate of docs/theory.md §7
    chk = check_rate(res, expected, window, BAND, note=f"a={a}, b={b}, d={d}, eta={eta}")
    assert chk.passed, str(chk)
    assert chk.stderr < 0.003, str(chk)
    assert res["m"].variance.max() == 0.0  # noiseless: the risk is pure bias
    # finer: the slope of the uniform renewal approximation over the same points
    approx = A.sgd_bias_powerlaw(at, eta, a, b, d)
    slope_approx = fit_loglog_slope(at, approx).slope
    assert abs(slope_approx - chk.slope) <= BAND_UNIFORM, (slope_approx, str(chk))


def test_forcing_rate_is_not_the_sgd_rate_beyond_b_equals_2a(rate_runs):
    """For b > 2a the forcing alone decays like tau^-(b-1)/a, but SGD's risk does not."""
    a, b = 1.5, 4.0
    res, _ = rate_runs[(a, b)]
    chk = check_rate(res, A.forcing_rate_exponent(a, b), (350, 5000), BAND)
    assert not chk.passed
    assert chk.deviation > 0.5  # much slower than -(b-1)/a = -2


def test_rate_table_lists_every_check(rate_runs):
    checks = [check_rate(rate_runs[c[:2]][0], A.bias_rate_exponent(c[0], c[1]), c[4], BAND,
                         note=f"a={c[0]}, b={c[1]}") for c in CASES]
    table = rate_table(checks)
    assert table.count("PASS") == len(CASES)
    assert "a=1.5, b=4.0" in table
    rows = [c.row() for c in checks]
    assert {"slope", "expected", "band", "passed", "window", "deviation"} <= set(rows[0])


# ---------------------------------------------------------------------------
# unit tests of the fitter


def test_fit_exact_power_law():
    t = np.geomspace(1, 1e4, 40)
    fit = fit_loglog_slope(t, 3.0 * t**-0.7)
    assert isinstance(fit, SlopeFit)
    slope, stderr, r2 = fit
    assert slope == pytest.approx(-0.7, abs=1e-12)
    assert stderr < 1e-12 and r2 == pytest.approx(1.0)


def test_fit_window_and_filtering():
    t = np.arange(0, 1001, dtype=float)
    y = np.where(t < 100, 1.0, np.maximum(t, 1.0) ** -2.0)
    y[500] = -1.0  # dropped (non-positive)
    y[600] = np.nan  # dropped
    fit = fit_loglog_slope(t, y, window=(100, 1000))
    assert fit.slope == pytest.approx(-2.0, abs=1e-12)
    with pytest.raises(ValueError):
        fit_loglog_slope(t, y, window=(2000, 3000))
    with pytest.raises(ValueError):
        fit_loglog_slope(t, y, window=(10, 5))
    with pytest.raises(ValueError):
        fit_loglog_slope([1, 2, 3], [1, 2])


def test_fit_stderr_reflects_scatter():
    rng = np.random.default_rng(0)
    t = np.geomspace(1, 1e3, 200)
    y = t**-1.0 * np.exp(0.05 * rng.standard_normal(t.size))
    slope, stderr, r2 = fit_loglog_slope(t, y)
    assert abs(slope + 1.0) < 4 * stderr
    assert 0.9 < r2 < 1.0
    expected_se = 0.05 / math.sqrt(np.sum((np.log(t) - np.log(t).mean()) ** 2))
    assert stderr == pytest.approx(expected_se, rel=0.2)


def test_check_rate_accepts_curves_and_reports():
    t = np.arange(0, 2001, dtype=float)
    curve = (1.0 + t) ** -0.5
    chk = check_rate(curve, -0.5, (500, 2000), 0.01)
    assert isinstance(chk, RateCheck) and chk.passed
    assert chk.n_points == 1501 and chk.window == (500.0, 2000.0)
    bad = check_rate((t[1:], t[1:] ** -0.8), -0.5, (10, 100), 0.05)
    assert not bad.passed and bad.deviation == pytest.approx(-0.3)
    assert "FAIL" in str(bad) and "PASS" in str(chk)
    with pytest.raises(ValueError):
        check_rate(curve, -0.5, (500, 2000), 0.0)


def test_check_rate_on_a_result_picks_the_model():
    prob = st.Problem(st.PowerLawSpectrum(a=2.0, d=200), st.PowerLawTarget(b=3.0), noise=0.0)
    sc = st.Scenario(prob, (st.Model("t", steps=500, schedule=0.3),
                            st.Model("s", steps=500, schedule=0.3, teacher="t")))
    res = st.predict(sc, at=list(range(0, 501, 10)))
    with pytest.raises(ValueError):
        check_rate(res, -1.0, (100, 500), 0.5)
    chk = check_rate(res, -1.0, (100, 500), 0.5, model="t", quantity="bias")
    assert chk.model == "t" and chk.quantity == "bias" and chk.n_points == 41
