"""Tests of the asymptotics layer (``docs/theory.md`` §7, power-law asymptotics).

(a) the symbolic layer: the generated document is up to date, the derived
    forcing equals the incomplete-gamma formula of ``docs/theory.md`` §7, the numeric layer
    evaluates the same closed forms (symbolic -> numeric bridge, STYLE lesson 7),
    and the numeric layer does not import sympy;
(b) the closed forms against direct numerical sums (numpy, Hurwitz zeta, mpmath);
(c) the closed forms against the exact engine (``spectral_theory.predict``) and
    ``spectral_theory.stability_limit``.

Every bound below is the accuracy stated in the docstring of the function
tested (measured values in ``derivations/asymptotics.md`` section 10).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest

import spectral_theory as st
from spectral_theory.analysis import asymptotics as A
from spectral_theory.analysis.rates import fit_loglog_slope

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------
# (a) symbolic layer and bridge
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sym():
    from spectral_theory.symbolic import asymptotics as S

    return S


@pytest.fixture(scope="module")
def derived(sym):
    return sym.all_results()


def _ev(expr, values, digits=30):
    return float(expr.subs(values).evalf(digits))


def test_document_is_up_to_date(sym, derived):
    on_disk = (ROOT / sym.DOCUMENT_PATH).read_text(encoding="utf-8")
    assert sym.generate_document() == on_disk, (
        "derivations/asymptotics.md is stale: run python derivations/generate.py")


def test_derive_script_check_flag(tmp_path, derived):
    sys.path.insert(0, str(ROOT / "derivations"))
    try:
        import generate
    finally:
        sys.path.pop(0)
    assert generate.main(["--check", "--only", "asymptotics"]) == 0
    # a stale copy is detected and rewritten
    (tmp_path / "derivations").mkdir()
    stale = tmp_path / "derivations" / "asymptotics.md"
    stale.write_text("old\n", encoding="utf-8")
    assert generate.main(["--check", "--only", "asymptotics"], root=tmp_path) == 1
    assert stale.read_text(encoding="utf-8") == "old\n"
    assert generate.main(["--only", "asymptotics"], root=tmp_path) == 0
    assert generate.main(["--check", "--only", "asymptotics"], root=tmp_path) == 0


def test_forcing_equals_theory_md(sym, derived):
    import sympy as sp

    f = derived["forcing"].expr.rhs
    assert sp.simplify(f - sym.theory_md_forcing()) == 0
    assert derived["bias_rate"].expr.rhs == -sp.Min((sym.b - 1) / sym.a, 2 - 1 / sym.a)


def test_numeric_forcing_and_kernel_match_sympy(sym, derived):
    S = sym.SYMBOLS
    f = derived["forcing"].expr.rhs
    kern = derived["kernel"].expr.rhs
    for a, b, tau, d in [(1.5, 2.0, 7.0, 3000), (2.0, 3.0, 0.4, 50), (2.5, 1.5, 300.0, 1000)]:
        ref = _ev(f, {S["a"]: a, S["b"]: b, S["tau"]: tau, S["d"]: d})
        assert float(A.bias_powerlaw(tau, a, b, d)) == pytest.approx(ref, rel=1e-12)
        refk = _ev(kern, {S["a"]: a, S["eta"]: 0.3, S["n"]: tau / 0.3, S["d"]: d, S["B"]: 2})
        assert float(A.kernel_powerlaw(tau / 0.3, 0.3, a, d, batch=2)) == pytest.approx(refk, rel=1e-12)
    lead = derived["forcing_leading"].expr.rhs
    assert float(A.bias_leading(5.0, 1.5, 2.0)) == pytest.approx(
        _ev(lead, {S["a"]: 1.5, S["b"]: 2, S["tau"]: 5}), rel=1e-13)


def test_stability_series_coefficients_match_sympy(sym, derived):
    import sympy as sp

    expr = derived["stability_series"].expr.rhs
    S1, S2, S3, S4 = sp.symbols("S1:5", positive=True)
    vals = {S1: 2.7, S2: 1.3, S3: 1.05, S4: 1.01, sym.B: 3, sym.q: 1.4}
    terms = A._reversion_terms([2.7, 1.3, 1.05, 1.01], 3, 1.4)
    assert sum(terms) == pytest.approx(_ev(expr, vals), rel=1e-13)
    # and order by order: the q^m coefficient is term m
    poly = sp.Poly(sp.expand(expr * S1**7), sym.q)
    for m, term in enumerate(terms):
        coeff = poly.coeff_monomial(sym.q**m) / S1**7
        assert float(coeff.subs(vals) * 1.4**m) == pytest.approx(term, rel=1e-13)
    assert derived["stability_leading"].expr.rhs == 2 * sym.B / S1


def test_one_mode_limit_matches_sympy(sym, derived):
    import sympy as sp

    expr = derived["stability_one_mode"].expr.rhs
    lam1, R1 = sp.symbols("lambda_1 R_1", positive=True)
    speeds = st.PowerLawSpectrum(a=2.0, d=400).values
    for batch, kappa in [(1, 3.0), (4, 1.0)]:
        q = (batch + kappa - 2) / batch
        ref = _ev(expr, {sym.B: batch, sym.q: q, lam1: 1.0, R1: float(speeds.sum() - 1.0)})
        assert A.stability_limit_one_mode(speeds=speeds, batch=batch, kappa=kappa) == pytest.approx(ref, rel=1e-12)


def test_floor_horizon_and_optimum_match_sympy(sym, derived):
    import sympy as sp

    K, finf = sp.Symbol("K", positive=True), sp.Symbol("f_inf", nonnegative=True)
    floor = derived["risk_floor"].expr.rhs
    speeds = st.PowerLawSpectrum(a=1.5, d=100).values.copy()
    speeds[30:] = 0.0
    theta2 = np.arange(1, 101, dtype=float) ** -2.0
    knorm = st.stability.kernel_norm(0.2, speeds, 1, 3.0)
    ref = _ev(floor, {K: knorm, finf: float(theta2[30:].sum()), sym.sigma2: 0.7})
    assert A.risk_floor(0.2, speeds, theta2, 0.7) == pytest.approx(ref, rel=1e-13)
    # horizon: floor((eta N)^(1/a)); the two definitions differ by (2/ln 2)^(1/a)
    hz = derived["horizon"].expr.rhs
    for en in [3.7, 150.2, 12345.6]:
        assert A.horizon(en, 1.5) == int(_ev(hz, {sym.eta: en, sym.N: 1, sym.a: 1.5}))
    ratio = derived["horizon_ratio"].expr.rhs
    assert _ev(ratio, {sym.a: 2.0}) == pytest.approx(math.sqrt(2 / math.log(2)))
    # compute-optimal: exponents, the stationarity root, the additive closed form
    ex = A.compute_optimal_exponents(1.5, 2.0)
    for key, name in [("k", "exponent_k"), ("N", "exponent_N"), ("loss", "exponent_loss")]:
        base, expo = derived[name].expr.rhs.as_base_exp()
        assert base == sym.C
        assert ex[key] == pytest.approx(_ev(expo, {sym.a: 1.5, sym.b: 2}))
    stat = derived["optimal_y"].expr.lhs
    for a, b in [(1.5, 2.0), (2.0, 3.0)]:
        y = A._optimal_y(a, b)
        assert abs(_ev(stat, {sym.a: a, sym.b: b, sym.y: y})) < 1e-12
        kadd = _ev(derived["additive_k_opt"].expr.rhs, {sym.a: a, sym.b: b, sym.eta: 0.5, sym.C: 1e7})
        assert A.compute_optimal_additive(1e7, a, b, 0.5).k == pytest.approx(kadd, rel=1e-12)


def test_numeric_layer_does_not_import_sympy():
    code = ("import sys; import spectral_theory.analysis.asymptotics, spectral_theory.analysis.rates; "
            "assert 'sympy' not in sys.modules, 'sympy imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ---------------------------------------------------------------------------
# (b) closed forms against direct sums
# ---------------------------------------------------------------------------


def test_incomplete_gamma_interval_against_mpmath():
    rng = np.random.default_rng(1)
    with mpmath.workdps(30):
        for _ in range(60):
            s = rng.uniform(0.1, 5.0)
            lo = 10 ** rng.uniform(-6, 1.5)
            hi = lo * 10 ** rng.uniform(0.3, 3)
            ref = float(mpmath.gammainc(s, lo, hi))
            assert A.incomplete_gamma_interval(s, lo, hi) == pytest.approx(ref, rel=1e-12)
        assert A.incomplete_gamma_interval(0.7, 0.0, np.inf) == pytest.approx(math.gamma(0.7), rel=1e-14)
        assert A.incomplete_gamma_interval(-0.4, 0.5, 3.0) == pytest.approx(
            float(mpmath.gammainc(-0.4, 0.5, 3.0)), rel=1e-12)


@pytest.mark.parametrize("a,p,d", [(1.5, 2.0, 3000), (1.5, 1.5, 20000), (2.0, 3.0, 2000),
                                   (2.5, 2.0, 2000), (2.0, 4.0, None), (1.5, 5.0, None)])
def test_mode_sum_integral_approximation(a, p, d):
    tau = np.array([3.0, 10.0, 30.0, 100.0, 1000.0])
    exact = A.powerlaw_mode_sum_exact(tau, a, p, d)
    approx = A.powerlaw_mode_sum(tau, a, p, d)
    rel = np.abs(approx / exact - 1)
    assert rel[0] < 6e-2 and rel[1] < 2e-3 and np.all(rel[2:] < 1e-4), rel
    if d is not None:  # near saturation the sum exceeds the integral by the half end-term
        x = np.array([0.1, 1.0, 3.0, 10.0])
        tau_s = x * d**a / 2
        gap = A.powerlaw_mode_sum_exact(tau_s, a, p, d) - A.powerlaw_mode_sum(tau_s, a, p, d)
        np.testing.assert_allclose(gap, 0.5 * d ** (-p) * np.exp(-x), rtol=1e-2)
        assert np.all(gap / A.powerlaw_mode_sum_exact(tau_s, a, p, d) < 1e-2)


def test_exact_mode_sum_d_infinite_against_long_direct_sum():
    # (mpmath.nsum's extrapolation is off by ~1e-4 on these slowly converging sums)
    M = 10**6
    i = np.arange(1, M + 1, dtype=float)
    for a, p, tau in [(1.5, 2.0, 2.0), (2.0, 3.0, 40.0)]:
        head = float(np.sum(i ** (-p) * np.exp(-2 * tau * i ** (-a))))
        tail = sum(float((-2 * tau) ** m / math.factorial(m) * mpmath.zeta(p + a * m, M + 1))
                   for m in range(4))
        assert float(A.powerlaw_mode_sum_exact(tau, a, p, None)) == pytest.approx(head + tail, rel=1e-12)


def test_leading_term_and_finite_d_correction():
    a, b = 1.5, 2.0
    s = (b - 1) / a
    tau = np.array([2.0, 8.0, 50.0])
    inf = A.bias_powerlaw(tau, a, b)
    rel = A.bias_leading(tau, a, b) / inf - 1
    expected = A.incomplete_gamma_interval(s, 2 * tau, np.inf) / math.gamma(s)
    np.testing.assert_allclose(rel, expected / (1 - expected), rtol=1e-8, atol=1e-15)
    assert np.all(np.abs(rel[1:]) < 1e-6)
    # first finite-d correction: f_d - f_oo ~ -d^(1-b)/(b-1) while 2 tau d^-a << 1
    d = 10**5
    corr = A.bias_powerlaw(tau, a, b, d) - inf
    np.testing.assert_allclose(corr, -d ** (1 - b) / (b - 1), rtol=2e-3)


def test_kernel_norm_and_power_sums():
    lam = st.PowerLawSpectrum(a=1.5, d=3000).values
    for batch, kappa in [(1, 3.0), (4, 1.0), (2, 9 / 5)]:
        assert A.kernel_norm_powerlaw(0.3, 1.5, 3000, batch=batch, kappa=kappa) == pytest.approx(
            st.stability.kernel_norm(0.3, lam, batch, kappa), rel=1e-12)
    # d = oo: the head-plus-zeta-series sum agrees with a long direct sum plus its integral tail
    big = 2 * 10**6
    direct = A.kernel_norm_powerlaw(0.2, 2.0, big)
    tail = 0.2 / 2 * big ** (1 - 2.0) / (2.0 - 1)
    assert A.kernel_norm_powerlaw(0.2, 2.0, None) == pytest.approx(direct + tail, rel=1e-9)
    assert A.power_sum(2.0) == pytest.approx(math.pi**2 / 6, rel=1e-14)
    assert A.power_sum(1.5, 10**7, start=11) == pytest.approx(
        float(mpmath.zeta(1.5, 11) - mpmath.zeta(1.5, 10**7 + 1)), rel=1e-12)
    assert A.missed_mode_bias(10, 2.0) == pytest.approx(float(mpmath.zeta(2, 11)), rel=1e-13)
    assert A.missed_mode_bias(10, 2.0, approx=True) / A.missed_mode_bias(10, 2.0) - 1 == pytest.approx(
        (2.0 - 1) / (2 * 10), rel=0.15)


def test_learned_sum_closed_form():
    for a, p, d in [(2.5, -0.5, 1000), (1.5, 0.5, 4000), (2.0, 1.0, 1000)]:
        tau = np.array([50.0, 500.0, 5000.0])
        i = np.arange(1, d + 1, dtype=float)
        exact = np.array([np.sum(i ** (-p) * -np.expm1(-2 * t * i ** (-a))) for t in tau])
        np.testing.assert_allclose(A._learned_integral(tau, a, p, d), exact, rtol=2e-5)


# ---------------------------------------------------------------------------
# (c) against the exact engine and the project's stability limit
# ---------------------------------------------------------------------------


def _predict(a, b, d, eta, T, at, *, noise=0.0, capacity=None, batch=1, features="gaussian",
             scale=1.0, **kw):
    prob = st.Problem(st.PowerLawSpectrum(a=a, d=d), st.PowerLawTarget(b=b, scale=scale),
                      noise=noise, features=features)
    m = st.Model("m", steps=T, schedule=eta, capacity=capacity, batch=batch)
    return st.predict(st.Scenario(prob, (m,)), at=list(at), **kw), prob


@pytest.mark.parametrize("a,b,eta", [(1.5, 2.0, 0.3), (2.0, 3.0, 0.05), (1.5, 1.5, 0.3),
                                     (2.5, 2.0, 0.3), (1.5, 4.0, 0.3), (2.0, 6.0, 0.3)])
def test_sgd_bias_uniform_approximation_against_engine(a, b, eta):
    t = np.array([100, 300, 1000, 3000])
    res, _ = _predict(a, b, 2000, eta, 3000, t)
    approx = A.sgd_bias_powerlaw(t, eta, a, b, 2000)
    rel = np.abs(res["m"].bias / approx - 1)
    assert np.all(rel < 0.08), rel
    assert rel[-1] < 0.035, rel


def test_forcing_alone_misses_the_sgd_feedback():
    """f(tau) is the gradient-flow bias: SGD's is larger by ~1/(1-K), the rate is the same."""
    a, b, eta = 2.5, 2.0, 0.3
    t = np.array([1000, 3000])
    res, _ = _predict(a, b, 1000, eta, 3000, t)
    K = A.kernel_norm_powerlaw(eta, a, 1000)
    ratio = res["m"].bias / A.bias_powerlaw(eta * t, a, b, 1000)
    np.testing.assert_allclose(ratio, 1 / (1 - K), rtol=3e-3)


@pytest.mark.parametrize("a,d,capacity,eta,T", [(1.5, 40, None, 0.4, 10000), (1.5, 200, 25, 0.4, 6000)])
def test_risk_floor_is_the_plateau_of_a_long_run(a, d, capacity, eta, T):
    res, prob = _predict(a, 2.0, d, eta, T, [T - 1000, T], noise=0.5, capacity=capacity)
    m = res["m"]
    floor = A.risk_floor_powerlaw(eta, a, 2.0, 0.5, d, capacity=capacity)
    assert m.excess_risk[-1] == pytest.approx(floor, rel=1e-9)
    assert m.excess_risk[0] == pytest.approx(floor, rel=1e-9)  # a plateau, not a crossing
    s = prob.eigenvalues.copy()
    if capacity:
        s[capacity:] = 0.0
    assert A.risk_floor(eta, s, prob.theta2, 0.5) == pytest.approx(floor, rel=1e-12)
    # full capacity: no target mass is left, the floor is pure variance K sigma2/(1 - K)
    if capacity is None:
        assert m.bias[-1] < 1e-12 * floor


def test_risk_floor_leading_order():
    for eta in (0.01, 0.05, 0.1):
        for a, batch in [(1.5, 1), (2.0, 1), (2.0, 4)]:
            exact = A.risk_floor_powerlaw(eta, a, 2.0, 1.0, 1000, capacity=50, batch=batch)
            lead = A.risk_floor_leading(eta, a, 2.0, 1.0, 1000, capacity=50, batch=batch)
            K = A.kernel_norm_powerlaw(eta, a, 1000, capacity=50, batch=batch)
            assert 0 < 1 - lead / exact <= 2 * K


@pytest.mark.parametrize("a,eta,batch,features", [(1.5, 0.3, 1, "gaussian"), (2.0, 0.3, 1, "gaussian"),
                                                  (2.0, 0.5, 4, "rademacher")])
def test_constant_step_variance_against_engine(a, eta, batch, features):
    t = np.array([30, 100, 300, 1000, 3000])
    res, prob = _predict(a, 2.0, 2000, eta, 3000, t, noise=1.0, scale=0.0, batch=batch,
                         features=features)
    approx = A.variance_constant_step(t, eta, a, 1.0, 2000, batch=batch, kappa=prob.kappa)
    rel = np.abs(res["m"].variance / approx - 1)
    assert rel[0] < 0.035 and rel[1] < 0.015 and np.all(rel[2:] < 0.008), rel
    assert res["m"].bias.max() == 0.0


def test_step_decay_variance_scales_with_learned_modes():
    """the annealed-variance law sigma2 (eta N)^(1/a)/N, for step decay (halve every N/log2 N steps)."""
    a, eta = 2.0, 0.3
    prob = st.Problem(st.PowerLawSpectrum(a=a, d=1000), st.PowerLawTarget(b=2.0, scale=0.0), noise=1.0)
    Ns = np.array([2**k for k in range(9, 14)])
    v = np.array([st.predict(st.Scenario(prob, (st.Model(
        "m", steps=int(N), schedule=st.StepDecay(eta, 0.5, st.halving_every(int(N)))),)),
        at=[int(N)])["m"].final for N in Ns])
    ratio = v / A.variance_learned_modes(Ns, eta, a, 1.0)
    assert np.all((ratio > 0.9) & (ratio < 2.0)), ratio
    slope = fit_loglog_slope(Ns, v).slope
    assert abs(slope - A.variance_rate_exponent_annealed(a)) < 0.1, slope
    # whereas a constant step plateaus at the floor (no 1/N decay)
    const = A.variance_constant_step(Ns, eta, a, 1.0, 1000)
    assert const[-1] / const[0] > 0.9


def test_horizon_definitions():
    lam = st.PowerLawSpectrum(a=1.5, d=5000).values
    rng = np.random.default_rng(3)
    for en in np.concatenate([10 ** rng.uniform(0, 5, 50), [8.0, 27.0, 1000.0]]):
        assert A.horizon(en, 1.5, 5000) == A.horizon_count(en, lam)
    # section 5 (half error) vs section 4 (eta N s_i >= 1): ratio (2/ln 2)^(1/a)
    assert A.horizon_half(3000, 0.3, 1.5) / A.horizon(900, 1.5) == pytest.approx(
        (2 / math.log(2)) ** (1 / 1.5), rel=0.01)


@pytest.mark.parametrize("a,b,eta", [(1.5, 2.0, 0.3), (2.0, 3.0, 0.3), (2.5, 2.0, 0.1)])
def test_half_error_horizon_against_engine_profile(a, b, eta):
    T, d = 3000, 2000
    res, _ = _predict(a, b, d, eta, T, [T])
    ok = res["m"].modes.normalised <= 0.5
    k_engine = d if ok.all() else int(np.argmin(ok))
    k_formula = int(A.horizon_half(T, eta, a, d))
    assert int(A.horizon_half(T, eta, a, d, exact=True)) == pytest.approx(k_formula, abs=1)
    assert k_formula - 1 <= k_engine + 0.06 * k_formula and k_engine <= k_formula + 1


def test_stability_limit_against_project():
    for a in (1.5, 2.0, 3.0):
        lam = st.PowerLawSpectrum(a=a, d=3000).values
        for batch, kappa in [(1, 3.0), (8, 3.0), (4, 1.0)]:  # q >= 1/2
            ref = st.stability_limit(lam, batch, kappa)
            assert A.stability_limit_powerlaw(a, 3000, batch=batch, kappa=kappa) == pytest.approx(ref, rel=1e-10)
            inf = A.stability_limit_powerlaw(a, None, batch=batch, kappa=kappa)
            assert inf <= ref  # more modes, more kernel mass
            lead = A.stability_limit_leading(a, None, batch=batch, kappa=kappa)
            assert 1.0 <= lead / inf <= 1.66
            one = A.stability_limit_one_mode(a, None, batch=batch, kappa=kappa)
            assert abs(one / inf - 1) <= 0.025


def test_stability_series_converges_for_a_flat_spectrum():
    speeds = st.PowerLawSpectrum(a=1.1, d=10**4).values
    exact = st.stability_limit(speeds, 1, 3.0)
    S = [float(np.sum(speeds**m)) for m in (1, 2)]
    rho = 2.0 * S[1] / S[0] ** 2
    assert rho < 0.1
    errs = [abs(A.stability_limit_series(speeds=speeds, order=o) / exact - 1) for o in range(4)]
    for o in range(4):
        assert errs[o] <= 3 * rho ** (o + 1), errs
    assert errs[3] < errs[1] < errs[0]


def test_capacity_loss_model_against_engine():
    for a, b, k, eta, N in [(1.5, 2.0, 30, 0.05, 2000), (2.0, 3.0, 20, 0.05, 3000), (1.5, 2.0, 30, 0.3, 2000)]:
        d = 300
        res, _ = _predict(a, b, d, eta, N, [N], capacity=k)
        loss = A.capacity_loss_powerlaw(N, k, eta, a, b) - A.missed_mode_bias(d, b)  # finite d
        K = A.kernel_norm_powerlaw(eta, a, d, capacity=k)
        ratio = res["m"].final / float(loss)
        assert 1.0 <= ratio <= 1 / (1 - K) ** 2


@pytest.mark.parametrize("a,b", [(1.5, 2.0), (2.0, 3.0)])
def test_compute_optimum_against_brute_force(a, b):
    eta = 0.5
    Cs = np.geomspace(1e5, 1e8, 4)
    kmax = 4000
    i = np.arange(1, kmax + 1, dtype=float)
    tail = A.power_sum(b) - np.cumsum(i ** (-b))  # sum_{j > k} j^-b

    def loss(k: int, C: float) -> float:
        return float(np.sum(i[:k] ** (-b) * np.exp(-2 * eta * (C / k) * i[:k] ** (-a)))) + tail[k - 1]

    kb, Lb = [], []
    for C in Cs:
        grid = np.unique(np.round(np.geomspace(5, kmax - 1, 80)).astype(int))
        j = int(np.argmin([loss(k, C) for k in grid]))
        cand = range(grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)] + 1)
        best = min(cand, key=lambda k: loss(k, C))
        kb.append(best)
        Lb.append(loss(best, C))
    kb, Lb = np.array(kb, float), np.array(Lb)
    opt = [A.compute_optimal_powerlaw(C, a, b, eta) for C in Cs]
    ks = np.array([o.k for o in opt])
    assert np.all(kb >= 50)
    np.testing.assert_allclose(ks, kb, rtol=0.03)
    np.testing.assert_allclose([o.loss for o in opt], Lb, rtol=0.01)
    ex = A.compute_optimal_exponents(a, b)
    assert fit_loglog_slope(Cs, kb).slope == pytest.approx(ex["k"], abs=0.01)
    assert fit_loglog_slope(Cs, Lb).slope == pytest.approx(ex["loss"], abs=0.01)
    kadd = np.array([A.compute_optimal_additive(C, a, b, eta).k for C in Cs])
    assert np.all((kadd / kb > 1.0) & (kadd / kb < 1.3))
