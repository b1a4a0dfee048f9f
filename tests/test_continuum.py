"""Continuum nodes (spectral_theory.solvers.continuum).

* Quadrature of mode sums against exact finite sums (d = 10^4, 10^5) and, for
  d = infinity, against a reference built from an exact head sum and the
  Hurwitz-zeta series of the tail (mpmath). Stated accuracy: 1e-9 relative.
* ODE risk curves on the nodes against the full-d ODE: stated tolerance 1e-4
  relative (measured ~1e-10: the integrator takes the same steps on both).
* d -> infinity: the finite-d curves increase monotonically to the d = infinity
  curve, and the gap at step 0 is the missing target mass sum_{i>d} theta_i^2.
* density_nodes: mass and moments against scipy.integrate.quad, and an ODE on a
  bulk (uniform) spectrum against the discrete spectrum it approximates.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from scipy.integrate import quad

import spectral_theory as st
from spectral_theory.errors import SpecError
from spectral_theory.solvers.continuum import (
    ModeNodes,
    continuum_nodes,
    density_nodes,
    mode_sum,
    powerlaw_nodes,
    run_continuum,
)
from spectral_theory.solvers.ode import run_ode
from spectral_theory.spec import log_steps
from spectral_theory.stability import stability_limit

GRID = [(1.5, 1.5), (1.5, 2.5), (2.0, 1.5), (2.0, 2.5)]
QUAD_TOL = 1e-9
CURVE_TOL = 1e-4


def _bias_sum(nodes, tau):
    return mode_sum(nodes, lambda lam, th2: th2 * np.exp(-2.0 * lam * tau))


@pytest.mark.parametrize("a,b", GRID)
def test_mode_sums_match_exact_finite_sums(a, b):
    for d in (10**4, 10**5):
        nodes = powerlaw_nodes(a, b, d=d)
        assert nodes.size < 200
        i = np.arange(1, d + 1, dtype=float)
        for tau in (0.0, 1.0, 1e2, 1e4, 1e6):
            exact = np.sum(i**-b * np.exp(-2.0 * i**-a * tau))
            assert abs(_bias_sum(nodes, tau) / exact - 1) < QUAD_TOL, (d, tau)
            # a variance-like sum with a different power and shape
            ex2 = np.sum(i ** (-2 * a) * tau / (1.0 + 2.0 * i**-a * tau))
            ap2 = mode_sum(nodes, lambda lam, th2, tau=tau: lam * lam * tau / (1.0 + 2.0 * lam * tau))
            if ex2 > 0:
                assert abs(ap2 / ex2 - 1) < QUAD_TOL, (d, tau)


def _infinite_reference(a, b, tau, N=10**5):
    """sum_{i>=1} i^-b exp(-2 tau i^-a): exact head i < N plus the tail
    sum_{k>=N} = sum_m (-2 tau)^m / m! zeta(b + m a, N) (Hurwitz zeta)."""
    i = np.arange(1, N, dtype=float)
    head = math.fsum(i**-b * np.exp(-2.0 * tau * i**-a))
    mp.mp.dps = 30
    tail = mp.mpf(0)
    term_scale = mp.mpf(1)
    for m in range(60):
        t = term_scale * mp.zeta(b + m * a, N)
        tail += t
        if abs(t) < mp.mpf(10) ** -25 * abs(tail):
            break
        term_scale *= -2 * tau / (m + 1)
    return head + float(tail)


@pytest.mark.parametrize("a,b", [(1.5, 2.5), (2.0, 1.5)])
def test_mode_sums_infinite_d_match_mpmath(a, b):
    nodes = powerlaw_nodes(a, b, d=None)
    assert nodes.size < 400
    assert abs(mode_sum(nodes, lambda lam, th2: th2) / float(mp.zeta(b)) - 1) < QUAD_TOL
    for tau in (1.0, 1e2, 1e4, 1e6):
        ref = _infinite_reference(a, b, tau)
        assert abs(_bias_sum(nodes, tau) / ref - 1) < QUAD_TOL, tau


def test_node_count_grows_with_log_d():
    sizes = [powerlaw_nodes(1.5, 2.0, d=d).size for d in (10**4, 10**6, 10**8)]
    assert sizes[-1] < 250
    assert sizes[2] - sizes[1] <= sizes[1] - sizes[0] + 8


def _scenario(a, b, d, T=20000, chain=False, noise=0.1, lr=None):
    prob = st.Problem(st.PowerLawSpectrum(a=a, d=d), st.PowerLawTarget(b=b), noise=noise)
    lr = lr or 0.5 * stability_limit(prob.eigenvalues, 1, 3.0)
    models = [st.Model("t", steps=T, schedule=lr)]
    if chain:
        models.append(st.Model("s", steps=T, schedule=lr, teacher="t", capacity=300, alpha=0.2))
    return st.Scenario(prob, tuple(models))


def _max_rel(res_a, res_b, field="excess_risk"):
    return max(np.max(np.abs(getattr(res_a[n], field) / getattr(res_b[n], field) - 1))
               for n in res_a.models if getattr(res_a[n], field) is not None)


@pytest.mark.parametrize("a,b", GRID)
def test_node_ode_matches_full_d_ode(a, b):
    sc = _scenario(a, b, 10**4)
    at = {m.name: log_steps(m.steps, 20) for m in sc.models}
    full = run_ode(sc, at=at, rtol=1e-5)
    cont = run_continuum(sc, at=at, rtol=1e-5)
    assert cont.diagnostics["nodes"]["nodes"] < 200
    assert _max_rel(cont, full) < CURVE_TOL


def test_node_ode_matches_full_d_chain_d1e5():
    sc = _scenario(2.0, 2.5, 10**5, T=2000, chain=True)
    at = {m.name: log_steps(m.steps, 8) for m in sc.models}
    full = run_ode(sc, at=at, rtol=1e-3)
    cont = run_continuum(sc, at=at, rtol=1e-3)
    assert _max_rel(cont, full) < CURVE_TOL
    assert _max_rel(cont, full, "disagreement") < CURVE_TOL
    assert abs(cont.disagreement["s"]["t"] / full.disagreement["s"]["t"] - 1) < CURVE_TOL


def test_infinite_d_is_the_monotone_limit():
    a, b = 1.5, 2.0
    T = 20000
    at = {"t": log_steps(T, 15), "s": log_steps(T, 15)}
    curves = {}
    for d in (10**3, 10**4, 10**5, None):
        sc = _scenario(a, b, d or 10**5, T=T, chain=True, lr=0.25)  # one lr for every d
        curves[d] = run_continuum(sc, at=at, d=d, rtol=1e-6)
    for n in ("t", "s"):
        inf = curves[None][n].excess_risk
        gaps = [inf - curves[d][n].excess_risk for d in (10**3, 10**4, 10**5)]
        for g in gaps:
            assert np.all(g > -1e-6 * inf)  # finite d below the limit
        assert np.all(gaps[0] > gaps[1]) and np.all(gaps[1] > gaps[2])  # monotone approach
    # at step 0 the gap is the target mass beyond d: sum_{i>d} i^-b
    for d in (10**3, 10**4, 10**5):
        gap0 = curves[None]["t"].excess_risk[0] - curves[d]["t"].excess_risk[0]
        assert gap0 == pytest.approx(float(mp.zeta(b, d + 1)), rel=1e-8)


def test_density_nodes_mass_and_moments():
    d = 5000.0
    lo, hi = 1e-4, 1.0
    c = d / math.log(hi / lo)
    rho = lambda lam: c / lam  # noqa: E731  (log-uniform spectrum)
    target = lambda lam: lam**1.3  # noqa: E731
    nodes = density_nodes(rho, lo, hi, target=target)
    lam, th2, w = nodes
    assert np.all(np.diff(lam) < 0)
    assert w.sum() == pytest.approx(d, rel=1e-12)
    ref = quad(lambda x: rho(x) * target(x) * np.exp(-3.0 * x), lo, hi, limit=200, epsrel=1e-12)[0]
    assert mode_sum(nodes, lambda L, T2: T2 * np.exp(-3.0 * L)) == pytest.approx(ref, rel=1e-10)
    assert nodes.index_hi.max() == pytest.approx(d, rel=1e-12)


def test_density_nodes_ode_matches_bulk_spectrum():
    """A uniform bulk: d modes evenly spaced (midpoints) in [1/d, 2/d] vs density d^2 there."""
    d = 2000
    lam = (2.0 - (np.arange(1, d + 1) - 0.5) / d) / d
    target = lambda x: 0.5 * x * d  # noqa: E731
    prob = st.Problem(st.ArraySpectrum(lam), st.ArrayTarget(target(lam)), noise=0.2)
    sc = st.Scenario(prob, (st.Model("t", steps=3000, schedule=0.5),
                            st.Model("s", steps=3000, schedule=0.5, teacher="t", alpha=0.5)))
    at = {m.name: log_steps(m.steps, 12) for m in sc.models}
    full = run_ode(sc, at=at, rtol=1e-8)
    nodes = density_nodes(lambda x: np.full_like(x, float(d) * d), 1.0 / d, 2.0 / d, target=target)
    cont = run_ode(sc, at=at, rtol=1e-8, modes=nodes)
    # midpoint sums vs integrals: relative O(1/d^2)
    assert _max_rel(cont, full) < 1e-5


def test_capacity_needs_breaks_and_errors():
    sc = _scenario(1.5, 2.0, 1000, T=100, chain=True)
    at = {"t": np.array([100]), "s": np.array([100])}
    with pytest.raises(SpecError, match="panel"):
        run_ode(sc, at=at, modes=powerlaw_nodes(1.5, 2.0, d=1000))
    nodes = continuum_nodes(sc)
    assert 300 in nodes.info["breaks"] and isinstance(nodes, ModeNodes)
    with pytest.raises(SpecError):
        powerlaw_nodes(1.5, 1.0, d=None)
    bad = st.Scenario(st.Problem(st.ExponentialSpectrum(0.1, 50), st.PowerLawTarget(2.0)),
                      (st.Model("t", steps=10, schedule=0.1),))
    with pytest.raises(SpecError, match="power-law"):
        continuum_nodes(bad)
