"""SGD variants against the literature and against closed forms (docs/theory.md §10).

Each test names its source and the number it measures; the numbers are quoted in
docs/variants.md.

* Averaged constant-step SGD, variance term (Bach & Moulines 2013; Défossez & Bach 2015): after
  a burn-in the iterates are stationary, cross-mode moments vanish and each mode is an AR(1)
  sequence in the mean (``E[e_{t+1} | past] = (1 - x) e_t``), so the average of ``N`` iterates has
  the closed-form variance ``sum_i (M_i / N) [(1 + q_i)/(1 - q_i) - 2 q_i (1 - q_i^N) / (N (1 - q_i)^2)]``,
  ``q_i = 1 - x_i``, with the stationary moments ``M_i = b_i (S + sigma2) / (1 - a_i)``,
  ``S = K sigma2 / (1 - K)`` (docs/theory.md §5-6). Its limit ``N Var -> sigma2 d`` as the step
  goes to 0 is the Bach-Moulines / Polyak-Juditsky variance ``sigma^2 d / n``.
* Tail averaging removes the constant-step variance floor at rate 1/N (Jain et al. 2018, "Parallelizing
  SGD for least squares"; Zou et al. 2021): log-log slope of the tail-averaged variance in N.
* Heavy-ball's deterministic stability region 0 <= beta < 1, 0 < eta lambda < 2 (1 + beta)
  (Polyak 1964) at sigma2 = 0 and B -> infinity.
* Small batch: momentum with step eta behaves as plain SGD with eta / (1 - beta) (e.g. Paquette &
  Paquette 2021; Kidambi et al. 2018), with the measured gap; at large batch momentum reaches
  effective steps far beyond plain SGD's stability limit.
* Nesterov momentum (beta_t = t / (t + 3)) at large batch on a power law: the bias exponent
  doubles, E ~ t^-2(b-1)/a against t^-(b-1)/a for SGD (a measurement, in the spirit of Nesterov
  1983's O(1/t^2) against O(1/t); not a quoted theorem). This is deterministic Nesterov.
* Accelerated SGD (Jain, Kakade, Kidambi, Netrapalli and Sidford 2018, "Accelerating stochastic
  gradient descent for least squares regression", Algorithm 1 and Theorem 1): with
  ``alpha = 3 sqrt5 s / (1 + 3 sqrt5 s)``, ``beta = alpha / (9 s)``, ``gamma = 1 / (3 sqrt5 mu s)``,
  ``delta = 1 / (5 R^2)``, ``s = sqrt(kappa kappa~)``, the bias decays like ``exp(-n / (9 s))``,
  against ``kappa`` steps per e-fold for SGD: measured on power laws (Gaussian data:
  ``R^2 = tr H + 2 lambda_max``, ``kappa~ = d + 2``), the e-folding steps of the exact recursion
  and their log-log slopes.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import spectral_theory as st
from spectral_theory.analysis.rates import fit_loglog_slope
from spectral_theory.errors import InstabilityError
from spectral_theory.spec.variants import Momentum
from spectral_theory.stability_momentum import (
    _radius_reduced,
    is_stable_momentum,
    momentum_beta_limit,
    momentum_blocks,
    momentum_limit,
    momentum_radius,
)


def _stationary_average_variance(lam, eta, B, kappa, sigma2, N):
    x = eta * lam
    q = (B + kappa - 2) / B
    a = 1 - 2 * x + q * x * x
    b = x * x / B
    K = float(np.sum(b / (1 - a)))
    S = K * sigma2 / (1 - K)
    M = b * (S + sigma2) / (1 - a)
    r = 1 - x
    return float(np.sum(M / N * ((1 + r) / (1 - r) - 2 * r * (1 - r**N) / (N * (1 - r) ** 2))))


@pytest.mark.parametrize("B, feat", [(1, "gaussian"), (3, "rademacher")])
def test_averaged_variance_stationary_closed_form(B, feat):
    """Défossez & Bach 2015 / Bach & Moulines 2013: the variance of the average of N stationary
    constant-step iterates, exact closed form (module docstring), to 1e-9."""
    lam = np.array([1.0, 0.8, 0.6, 0.5])
    eta, N, sigma2 = 0.05, 1500, 0.7
    kappa = {"gaussian": 3.0, "rademacher": 1.0}[feat]
    burn = 3500  # a_i^burn < 1e-70: the transient from phi_0 = 0 is gone
    prob = st.Problem(st.ArraySpectrum(lam), st.ArrayTarget(np.zeros(4)), noise=sigma2, features=st.Features(feat))
    m = st.Model("m", steps=burn + N, schedule=eta, batch=B, average={"kind": "tail", "last": N})
    r = st.predict(st.Scenario(prob, (m,), output=st.Output(at=(burn + N,))), method="exact")
    want = _stationary_average_variance(lam, eta, B, kappa, sigma2, N)
    assert math.isclose(r["m"].final, want, rel_tol=1e-9), (r["m"].final, want)


def test_averaged_variance_tends_to_sigma2_d_over_n():
    """Bach & Moulines 2013 (and Polyak & Juditsky 1992): N Var(average) -> sigma2 d as the step
    -> 0 (N eta lambda_min -> inf). The closed form (checked against the engine above) at d = 4,
    sigma2 = 1, N = 10^6: eta = 0.02 gives 1.0379, eta = 0.002 gives 1.0029 (the O(eta tr H)
    correction)."""
    lam = np.array([1.0, 0.8, 0.6, 0.5])
    ratios = [_stationary_average_variance(lam, eta, 1, 3.0, 1.0, 10**6) * 10**6 / 4 for eta in (0.02, 0.002)]
    assert abs(ratios[0] - 1.0379) < 5e-4 and abs(ratios[1] - 1.0029) < 5e-4, ratios
    assert abs(ratios[1] - 1) < abs(ratios[0] - 1) / 5


def _engine_average_ratio(eta: float, N: int) -> float:
    """N Var(tail average of the last N iterates) / (sigma2 d), computed by the exact engine
    (d = 4, sigma2 = 1, Gaussian features, B = 1; zero target, so the risk is all variance; a
    burn-in of 35 / (eta lambda_min) steps)."""
    lam = np.array([1.0, 0.8, 0.6, 0.5])
    burn = int(35 / (eta * lam.min())) + 1
    prob = st.Problem(st.ArraySpectrum(lam), st.ArrayTarget(np.zeros(4)), noise=1.0)
    m = st.Model("m", steps=burn + N, schedule=eta, average={"kind": "tail", "last": N})
    r = st.predict(st.Scenario(prob, (m,), output=st.Output(at=(burn + N,))), method="exact")
    return float(r["m"].final) * N / 4


@pytest.mark.parametrize("eta, N", [(0.02, 20_000), pytest.param(0.005, 400_000, marks=pytest.mark.slow)])
def test_engine_averaged_variance_tends_to_sigma2_d_over_n(eta, N):
    """Bach & Moulines 2013 / Défossez & Bach 2015, run by the exact engine (issue 13 review,
    finding 6): the averaged constant-step iterate's variance is sigma2 d / N up to the
    O(eta tr H) correction of constant-step SGD: 0 < N Var / (sigma2 d) - 1 < eta tr H
    (tr H = 2.9). Measured: 1.0341 at eta = 0.02, N = 2 10^4 (eta tr H = 0.058); 1.0084 at
    eta = 0.005, N = 4 10^5 (eta tr H = 0.0145): the correction shrinks with the step."""
    ratio = _engine_average_ratio(eta, N)
    assert 0.0 < ratio - 1.0 < eta * 2.9, ratio


def test_tail_averaging_removes_the_variance_floor_at_rate_one_over_n():
    """Jain et al. 2018 / Zou et al. 2021: at a constant step the last iterate's variance stays at
    the floor K sigma2 / (1 - K) (docs/theory.md §6), the tail average's decays as 1/N. Measured:
    log-log slope -0.990 over N = 2000..16000 (d = 10, eta = 0.3, B = 1)."""
    lam = np.arange(1, 11, dtype=float) ** -1.5
    eta, sigma2, burn = 0.3, 0.5, 1500
    Ns = np.array([2000, 4000, 8000, 16000])
    prob = st.Problem(st.ArraySpectrum(lam), st.ArrayTarget(lam), noise=sigma2)
    m = st.Model("m", steps=burn + int(Ns[-1]), schedule=eta, average={"kind": "uniform", "start": burn})
    r = st.predict(st.Scenario(prob, (m,), output=st.Output(at=tuple(int(burn + n) for n in Ns))), method="exact")
    x = eta * lam
    K = float(np.sum(x / (2 - 2 * x)))
    floor = K * sigma2 / (1 - K)
    np.testing.assert_allclose(r["m"].last_iterate["variance"], floor, rtol=1e-9)
    fit = fit_loglog_slope(Ns, r["m"].variance)
    assert abs(fit.slope + 1) < 0.02, fit.slope
    assert r["m"].variance[-1] < floor / 50


@pytest.mark.parametrize("beta", [0.0, 0.3, 0.6, 0.9, 0.99])
def test_heavy_ball_deterministic_region(beta):
    """Polyak 1964: at sigma2 = 0 and B -> infinity heavy-ball is stable iff 0 <= beta < 1 and
    0 < eta lambda < 2 (1 + beta). The largest stable step at B = 10^12 (one mode, lambda = 1)
    is 2 (1 + beta) to 1e-8, and the exact engine decays just below it and is refused above."""
    mom = Momentum("heavy_ball", beta=beta)
    lim = momentum_limit(mom, np.array([1.0]), 10**12, 3.0)
    assert math.isclose(lim, 2 * (1 + beta), rel_tol=1e-8), lim
    prob = st.Problem(st.ArraySpectrum([1.0]), st.ArrayTarget([1.0]))
    below = st.Model("m", steps=3000, schedule=0.995 * lim, batch=10**12, momentum={"kind": "heavy_ball", "beta": beta})
    with pytest.warns(RuntimeWarning, match="99.5% of the stability limit"):  # the near-limit warning
        r = st.predict(st.Scenario(prob, (below,), output=st.Output(at=(3000,))), method="exact")
    assert r["m"].final < 1e-3
    above = st.Model("m", steps=50, schedule=1.005 * lim, batch=10**12, momentum={"kind": "heavy_ball", "beta": beta})
    with pytest.raises(InstabilityError):
        st.predict(st.Scenario(prob, (above,)), method="exact")


def test_momentum_stability_matches_dense_eigenvalues():
    """The O(d) stability test and growth factor (kappa >= 2) and the reduced-matrix radius
    (kappa < 2) against all eigenvalues of the full 3d x 3d second-moment map, built here
    directly from the blocks, on random constant-coefficient updates."""
    rng = np.random.default_rng(7)
    for _ in range(120):
        d = int(rng.integers(1, 9))
        lam = np.sort(rng.uniform(0.01, 1, d))[::-1]
        kind = rng.choice(["heavy_ball", "nesterov", "accelerated", "general"])
        if kind in ("heavy_ball", "nesterov"):
            mom = Momentum(kind, beta=rng.uniform(0, 0.99))
        elif kind == "accelerated":
            mom = Momentum(kind, alpha=rng.uniform(0.05, 1), beta=rng.uniform(0, 1), gamma=rng.uniform(0, 3))
        else:
            mom = Momentum(kind, r=rng.uniform(0, 2), p_e=rng.uniform(0, 2), p_v=rng.uniform(-1, 2),
                           k_v=rng.uniform(0, 2))
        B, kappa = int(rng.integers(1, 5)), float(rng.choice([1.0, 1.8, 2.0, 3.0, 5.0]))
        coef = mom.coefficients(rng.uniform(0.01, 3))
        D, b, w, T, _ = momentum_blocks(coef, np.repeat(lam, 1), B, kappa)
        full = np.zeros((3 * d, 3 * d))
        for i in range(d):
            full[3 * i:3 * i + 3, 3 * i:3 * i + 3] = D[i]
        full += np.outer(b.ravel(), np.tile(w, d))
        rho = max(float(np.max(np.abs(np.linalg.eigvals(full)))), float(np.max(np.abs(np.linalg.eigvals(T)))))
        if abs(rho - 1) < 1e-9:
            continue
        assert is_stable_momentum(coef, lam, B, kappa) == (rho < 1)
        assert math.isclose(momentum_radius(coef, lam, B, kappa), rho, rel_tol=1e-7)
        assert math.isclose(max(_radius_reduced(D, b, w), float(np.max(np.abs(np.linalg.eigvals(T))))), rho,
                            rel_tol=1e-9)


def _final_risks(prob, at, **model):
    r = st.predict(st.Scenario(prob, (st.Model("m", **model),), output=st.Output(at=at)), method="exact")
    return r["m"].excess_risk


def test_small_batch_momentum_is_sgd_with_eta_over_one_minus_beta():
    """At B = 1, heavy-ball (eta, beta) tracks plain SGD with eta / (1 - beta); the gap shrinks
    with the step. Measured (d = 100, a = 1.5, b = 2, sigma2 = 0.1, beta = 0.9, steps 300..3000):
    largest relative gap 0.0730 at eta / (1 - beta) = 0.2, 0.0051 at 0.05."""
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=100), st.PowerLawTarget(b=2.0), noise=0.1)
    at = (300, 1000, 3000)
    gaps = []
    for eff in (0.2, 0.05):
        mom = _final_risks(prob, at, steps=3000, schedule=eff * 0.1, momentum={"kind": "heavy_ball", "beta": 0.9})
        plain = _final_risks(prob, at, steps=3000, schedule=eff)
        gaps.append(float(np.max(np.abs(mom / plain - 1))))
    assert abs(gaps[0] - 0.0730) < 2e-3 and abs(gaps[1] - 0.0051) < 1e-3, gaps
    assert gaps[1] < gaps[0] / 3


def test_momentum_helps_at_large_batch_not_at_batch_one():
    """The largest stable effective step eta / (1 - beta) of heavy-ball (beta = 0.9) against plain
    SGD's limit (d = 200, a = 1.5): at B = 1 they are close (ratio 1.22), at B = 64 momentum
    reaches 11.4 times plain SGD's limit."""
    lam = np.arange(1, 201, dtype=float) ** -1.5
    mom = Momentum("heavy_ball", beta=0.9)
    ratios = [momentum_limit(mom, lam, B, 3.0) / 0.1 / st.stability_limit(lam, B, 3.0) for B in (1, 64)]
    assert abs(ratios[0] - 1.22) < 0.01 and abs(ratios[1] - 11.4) < 0.05, ratios
    assert 0.0 < momentum_beta_limit("heavy_ball", 0.3, lam, 1, 3.0) < 0.6


def test_nesterov_doubles_the_exponent_on_a_power_law():
    """Nesterov momentum with beta_t = t / (t + 3) at large batch (B = 10^6, sigma2 = 0) on
    lambda_i = i^-2, theta_i^2 = i^-2: the excess risk decays as t^-1 (= t^-2(b-1)/a, the
    doubled exponent), plain SGD as t^-1/2 (= t^-(b-1)/a). Deterministic Nesterov, not Jain et
    al.'s accelerated SGD (module docstring). Measured slopes over t = 30..300 (d = 2000): -0.984
    (accelerated) and -0.501 (SGD)."""
    prob = st.Problem(st.PowerLawSpectrum(a=2.0, d=2000), st.PowerLawTarget(b=2.0))
    T = 300
    at = tuple(int(v) for v in np.unique(np.geomspace(30, T, 12).astype(int)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        acc = _final_risks(prob, at, steps=T, schedule=0.5, batch=10**6,
                           momentum={"kind": "nesterov", "beta": [t / (t + 3) for t in range(T)]})
        sgd = _final_risks(prob, at, steps=T, schedule=0.5, batch=10**6)
    s_acc = np.polyfit(np.log(at), np.log(acc), 1)[0]
    s_sgd = np.polyfit(np.log(at), np.log(sgd), 1)[0]
    assert abs(s_acc + 1) < 0.03 and abs(s_sgd + 0.5) < 0.01, (s_acc, s_sgd)


def test_momentum_follows_the_stability_policy():
    """docs/theory.md §5 for momentum models: a transient excursion above the limit (a large first
    phase) is computed with a warning naming the steps and the peak growth factor; a final phase
    above the limit is an error; 'raise' refuses any step above it; 'ignore' computes silently."""
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=50), st.PowerLawTarget(b=2.0), noise=0.1)
    mom = {"kind": "heavy_ball", "beta": 0.9}
    lim = momentum_limit(Momentum("heavy_ball", beta=0.9), prob.eigenvalues, 1, 3.0)
    warm = st.Model("m", steps=200, schedule=st.Piecewise([1.5 * lim, 0.3 * lim], [5, 195]), momentum=mom)
    scn = st.Scenario(prob, (warm,), output=st.Output(at=(0, 200)))
    with pytest.warns(RuntimeWarning, match="steps 0-4"):
        r = st.predict(scn, method="exact")
    entry = r.diagnostics["unstable_steps"]["m"]
    assert entry["steps"] == [[0, 4]] and entry["growth_bound"] > 1
    assert math.isclose(entry["limit"], lim, rel_tol=1e-12)
    with pytest.raises(InstabilityError):
        st.predict(scn, method="exact", on_unstable="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        st.predict(scn, method="exact", on_unstable="ignore")
    near = st.Model("m", steps=20, schedule=0.995 * lim, momentum=mom)
    with pytest.warns(RuntimeWarning, match="99.5% of the stability limit"):
        st.predict(st.Scenario(prob, (near,)), method="exact")
    final = st.Model("m", steps=100, schedule=1.02 * lim, momentum=mom)
    with pytest.raises(InstabilityError, match="final constant phase"):
        st.predict(st.Scenario(prob, (final,)), method="exact")


def _dense_radius(coef, lam, B, kappa):
    """All eigenvalues of the full 3d x 3d second-moment map (and the 2x2 mean maps), built here
    from the blocks: the independent reference for :func:`momentum_radius`."""
    D, b, w, T, _ = momentum_blocks(coef, lam, B, kappa)
    d = lam.size
    full = np.zeros((3 * d, 3 * d))
    for i in range(d):
        full[3 * i:3 * i + 3, 3 * i:3 * i + 3] = D[i]
    full += np.outer(b.ravel(), np.tile(w, d))
    return max(float(np.max(np.abs(np.linalg.eigvals(full)))), float(np.max(np.abs(np.linalg.eigvals(T)))))


def test_radius_near_defective_blocks_is_the_engines_growth_rate():
    """Issue 13 review, finding 1: Nesterov with beta = 1070/1073 at eta = 0.05 (d = 1000, a = 1.5,
    B = 1) has nearly defective 3x3 blocks; an earlier root search started inside numpy's
    eigenvalue error and called it stable (radius 0.99921). The exact engine, run step by step
    with on_unstable='ignore', grows by exp(0.04307) per step: the radius must be that rate (and
    the model unstable, refused by default)."""
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=1000), st.PowerLawTarget(b=2.0), noise=0.1)
    mom = {"kind": "nesterov", "beta": 1070 / 1073}
    coef = Momentum(**mom).coefficients(0.05)
    rho = momentum_radius(coef, prob.eigenvalues, 1, 3.0)
    assert not is_stable_momentum(coef, prob.eigenvalues, 1, 3.0)
    m = st.Model("m", steps=400, schedule=0.05, momentum=mom)
    r = st.predict(st.Scenario(prob, (m,), output=st.Output(at=(200, 300, 400))), method="exact",
                   on_unstable="ignore")
    rate = np.diff(np.log(r["m"].excess_risk)) / 100  # per-step log growth of the engine's risk
    assert abs(rate[-1] - math.log(rho)) < 1e-6, (rate, rho)  # the slower modes decay relative to it
    assert rho > 1.04
    with pytest.raises(InstabilityError, match="final constant phase"):
        st.predict(st.Scenario(prob, (m,)), method="exact")


@pytest.mark.parametrize("d", [120, pytest.param(300, marks=pytest.mark.slow)])
def test_radius_near_defective_blocks_matches_dense_eigenvalues(d):
    """Issue 13 review, finding 1: beta in [0.99, 0.999] (nearly defective blocks), Nesterov at
    eta = 0.05 (unstable, radius about 1.04) and heavy-ball at eta = (1 - beta) / 2 (stable,
    radius 1 - 1e-4): the O(d) radius and stability verdict against all eigenvalues of the
    dense 3d x 3d map."""
    lam = np.arange(1, d + 1, dtype=float) ** -1.5
    for beta in np.random.default_rng(3).uniform(0.99, 0.999, 2 if d < 300 else 4):
        for kind, eta in (("nesterov", 0.05), ("heavy_ball", 0.5 * (1 - beta))):
            coef = Momentum(kind, beta=float(beta)).coefficients(eta)
            dense = _dense_radius(coef, lam, 1, 3.0)
            assert math.isclose(momentum_radius(coef, lam, 1, 3.0), dense, rel_tol=1e-9), (kind, beta)
            assert is_stable_momentum(coef, lam, 1, 3.0) == (dense < 1)


def _jain_parameters(lam: np.ndarray) -> tuple[float, float, float, float, float, float]:
    """Jain et al. (2018)'s Algorithm 1 parameters for Gaussian data with covariance eigenvalues
    ``lam``: ``(alpha, beta, gamma, delta, kappa, s = sqrt(kappa kappa~))``."""
    R2 = float(lam.sum() + 2.0 * lam.max())  # E[|x|^2 x x^T] = tr(H) H + 2 H^2 <= R^2 H
    kappa = R2 / float(lam.min())
    s = math.sqrt(kappa * (lam.size + 2.0))  # E[x^T H^-1 x x x^T] = (d + 2) H
    alpha = 3.0 * math.sqrt(5.0) * s / (1.0 + 3.0 * math.sqrt(5.0) * s)
    return alpha, alpha / (9.0 * s), 1.0 / (3.0 * math.sqrt(5.0) * float(lam.min()) * s), 1.0 / (5.0 * R2), kappa, s


def test_accelerated_sgd_bias_rate_jain_et_al_2018():
    """Power laws a = 1.5, d = 16 .. 512, Gaussian data, B = 1: the e-folding steps of the bias
    (``-1 / log rho``, rho the spectral radius of the second-moment map, the exact recursion's
    decay factor) are at most the published ``9 sqrt(kappa kappa~)`` (measured ~3.6x below it)
    and grow like ``sqrt(kappa kappa~)`` (log-log slope ~1.02), while SGD's at its step
    ``1/R^2`` are ``kappa / 2`` (slope 1.00): acceleration by ``sqrt(kappa / kappa~)``, a gain
    once ``kappa > kappa~`` (here from d = 128 on). The radius is checked against the decay of
    the bias curve the fast path computes."""
    from spectral_theory.stability_momentum import second_moment_radius

    rows = []
    for d in (16, 32, 64, 128, 256, 512):
        lam = st.PowerLawSpectrum(a=1.5, d=d).values
        alpha, beta, gamma, delta, kappa, s = _jain_parameters(lam)
        n_acc = -1.0 / math.log(second_moment_radius((alpha, alpha, alpha * beta, delta, gamma), lam, 1, 3.0,
                                                     gap_rel=1e-6))
        n_sgd = -1.0 / math.log(second_moment_radius((1.0, 1.0, 1.0, 5.0 * delta, 0.0), lam, 1, 3.0, gap_rel=1e-6))
        assert n_acc <= 9.0 * s
        assert n_sgd == pytest.approx(kappa / 2.0, rel=0.01)
        rows.append((kappa, s, n_acc, n_sgd))
    r = np.array(rows)
    slope_acc = np.polyfit(np.log(r[:, 1]), np.log(r[:, 2]), 1)[0]
    slope_sgd = np.polyfit(np.log(r[:, 0]), np.log(r[:, 3]), 1)[0]
    assert 0.95 <= slope_acc <= 1.1 and 0.98 <= slope_sgd <= 1.02
    assert r[-1, 3] / r[-1, 2] > 1.3 and r[0, 3] / r[0, 2] < 1.0  # a gain only once kappa >> kappa~
    # the radius is the decay of the bias the step engine computes (d = 64, noiseless; between
    # 20 and 30 e-folds, where the slower-decaying components of a power law have died out to 1%)
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=64), st.PowerLawTarget(b=2.0), noise=0.0)
    alpha, beta, gamma, delta, _, _ = _jain_parameters(prob.eigenvalues)
    n_acc = float(r[2, 2])
    m = st.Model("m", steps=int(30 * n_acc), schedule=delta,
                 momentum={"kind": "accelerated", "alpha": alpha, "beta": beta, "gamma": gamma})
    at = [int(20 * n_acc), int(30 * n_acc)]
    bias = st.predict(st.Scenario(prob, (m,)), at=at, method="exact")["m"].bias
    assert math.log(bias[0] / bias[1]) / (at[1] - at[0]) == pytest.approx(1.0 / n_acc, rel=0.02)
