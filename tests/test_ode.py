"""The deterministic-equivalent ODE solver (spectral_theory.solvers.ode).

Two kinds of checks (``docs/design.md``: tolerances that explain themselves):

(a) the integrator against the ODE's own solution, in units of ``rtol``:
    a d = 1 closed form, and an independent ``scipy.integrate.solve_ivp``
    integration of the full moment ODE (M_gg, M_gh, mu written out, no
    U/W reduction) for a chain at small d;
(b) the ODE against the exact recursion (solvers.exact.run_exact), in units of
    ``x_max = max eta s``: the stated bound
    ``max_t |E_ode - E_exact| <= 0.5 x_max max_t E_exact``, first-order
    convergence (halving eta and doubling the steps halves the discrepancy),
    and identical constant-step fixed points.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import spectral_theory as st
from spectral_theory.errors import InstabilityError, SpecError
from spectral_theory.solvers.exact import run_exact
from spectral_theory.solvers.ode import ODE_ERROR_CONSTANT, Timeline, ode_error_bound, run_ode
from spectral_theory.spec import log_steps


def _problem(a=1.5, b=2.0, d=100, noise=0.1, features="gaussian"):
    return st.Problem(st.PowerLawSpectrum(a=a, d=d), st.PowerLawTarget(b=b), noise=noise,
                      features=st.Features(features))


def _at(sc, points=30):
    return {m.name: log_steps(m.steps, points) for m in sc.models}


# ----------------------------------------------------------------------------
# (a) the integrator against the ODE's own solution


def test_d1_closed_form():
    s, th2, sig2, lr, B, kappa = 0.8, 1.7, 0.3, 0.3, 2, 3.0
    prob = st.Problem(st.ArraySpectrum([s]), st.ArrayTarget([th2]), noise=sig2)
    sc = st.Scenario(prob, (st.Model("m", steps=400, schedule=lr, batch=B),))
    at = {"m": np.array([0, 1, 2, 5, 17, 50, 133, 400])}
    rtol, atol = 1e-9, 1e-13
    res = run_ode(sc, at=at, rtol=rtol, atol=atol)
    q = 1 + (kappa - 2) / B
    k = 2 * s - lr * s * s * (q + 1 / B)
    mstar = lr * s * s * sig2 / B / k
    tau = lr * at["m"]
    bias = th2 * np.exp(-k * tau)
    var = mstar * -np.expm1(-k * tau)
    m = res["m"]
    # in units of the tolerance: rtol relative, atol relative to the row's peak
    assert np.all(np.abs(m.bias - bias) <= 10 * (rtol * bias + atol * th2))
    assert np.all(np.abs(m.variance - var) <= 10 * (rtol * var + atol * mstar))
    assert m.variance[0] == 0.0
    np.testing.assert_allclose(m.modes.first_moment, -np.exp(-s * tau[-1]), rtol=1e-14)


class _RefModelODE:
    """Right-hand side of the full moment ODE of one model g (all other models frozen)."""

    def __init__(self, d, g, m, M, mu, sigma2, kappa):
        self.d, self.g, self.M, self.mu, self.kappa = d, g, M, mu, kappa
        self.s, self.B, self.p = m["s"], m["B"], m["parent"]
        self.c = 1 - m["alpha"]
        self.nu = np.array([0.0, m["alpha"] ** 2 * sigma2])
        self.others = list(range(g))

    def pair(self, x, y):
        return self.M[(x, y) if x <= y else (y, x)]

    def pack(self, Mgg, Mgh, mug):
        return np.concatenate([Mgg.ravel()] + [Mgh[h].ravel() for h in self.others] + [mug])

    def unpack(self, y):
        d = self.d
        Mgg = y[: 2 * d].reshape(2, d)
        Mgh = {h: y[2 * d * (1 + j): 2 * d * (2 + j)].reshape(2, d) for j, h in enumerate(self.others)}
        return Mgg, Mgh, y[2 * d * (1 + len(self.others)):]

    def rhs(self, _t, y, eta):
        s, c, p, d = self.s, self.c, self.p, self.d
        Mgg, Mgh, mug = self.unpack(y)
        if p is None:
            Mgp, Mpp, mup = np.zeros((2, d)), np.zeros((2, d)), np.zeros(d)
        else:
            Mgp, Mpp, mup = Mgh[p], self.pair(p, p), self.mu[p]
        U = Mgg - 2 * c * Mgp + c * c * Mpp
        SU = U.sum(axis=1, keepdims=True)
        fl = (SU + (self.kappa - 2) * U + self.nu[:, None]) / self.B
        dMgg = -2 * s * (Mgg - c * Mgp) + eta * s * s * (U + fl)
        dMgh = {h: -s * (Mgh[h] - c * (self.pair(p, h) if p is not None else 0.0)) for h in self.others}
        dmu = -s * (mug - c * mup)
        return self.pack(dMgg, dMgh, dmu)

    def observe(self, y):
        Mgg, Mgh, _ = self.unpack(y)
        dis = None if self.p is None else (Mgg - 2 * Mgh[self.p] + self.pair(self.p, self.p)).sum()
        return Mgg.sum(axis=1), dis


def _ref_ode(lam, theta2, sigma2, kappa, models, rtol=1e-10):
    """Full moment ODE (docs/solvers/ode.md) by solve_ivp, restarted
    at every jump of the step-size staircase. ``models``: dicts with ``etas`` (per step),
    ``s``, ``B``, ``parent`` (index or None), ``alpha``, ``at`` (steps)."""
    d = lam.size
    M = {}  # (g, h) with g <= h -> (2, d)
    mu = []
    out = []
    for g, m in enumerate(models):
        ode = _RefModelODE(d, g, m, M, mu, sigma2, kappa)
        # initialise at phi = 0
        y = ode.pack(np.stack([theta2.copy(), np.zeros(d)]),
                     {h: np.stack([-mu[h] * theta2, np.zeros(d)]) for h in ode.others}, -np.ones(d))
        etas = np.asarray(m["etas"], dtype=float)
        taus = np.concatenate([[0.0], np.cumsum(etas)])
        rows = {int(t): None for t in m["at"]}
        if 0 in rows:
            rows[0] = ode.observe(y)
        change = np.flatnonzero(etas[1:] != etas[:-1]) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change, [etas.size]])
        for a, b in zip(starts, ends, strict=True):
            t_ev = sorted(t for t in rows if a < t <= b)
            t_eval = [taus[t] for t in t_ev]
            if not t_ev or t_ev[-1] != b:
                t_eval.append(taus[b])
            sol = solve_ivp(ode.rhs, (taus[a], taus[b]), y, method="DOP853", rtol=rtol, atol=1e-16,
                            args=(etas[a],), t_eval=t_eval)
            assert sol.success
            for j, t in enumerate(t_ev):
                rows[t] = ode.observe(sol.y[:, j])
            y = sol.y[:, -1]
        Mgg, Mgh, mug = ode.unpack(y)
        M[(g, g)] = Mgg.copy()
        for h in ode.others:
            M[(h, g)] = Mgh[h].copy()
        mu.append(mug.copy())
        out.append(rows)
    return out, M, mu


def _chain_for_ref(schedules, T):
    lam = np.array([1.0, 0.6, 0.3, 0.15, 0.05, 0.01])
    th2 = np.array([1.0, 0.5, 0.8, 0.2, 0.3, 0.1])
    prob = st.Problem(st.ArraySpectrum(lam), st.ArrayTarget(th2), noise=0.2,
                      features=st.Features("uniform"))
    models = (
        st.Model("t", steps=T, schedule=schedules[0]),
        st.Model("s", steps=T, schedule=schedules[1], teacher="t", capacity=3),
        st.Model("g", steps=T, schedule=schedules[2], teacher="s", alpha=0.4, batch=2),
    )
    return st.Scenario(prob, models)


@pytest.mark.parametrize("kind", ["constant", "piecewise", "polynomial"])
def test_matches_solve_ivp_chain(kind):
    T = 40
    scheds = {
        "constant": (0.5, 0.4, 0.3),
        "piecewise": (st.Piecewise((0.5, 0.2, 0.1), (10, 15, 15)), 0.4,
                      st.StepDecay(0.6, 0.5, 9)),
        "polynomial": (st.Polynomial(0.6, 5.0, 1.0), st.WarmupDecay(0.5, 8, 20.0, 0.5), 0.3),
    }[kind]
    sc = _chain_for_ref(scheds, T)
    at = {m.name: np.array([0, 1, 3, 10, 27, 39, 40]) for m in sc.models}
    rtol = 1e-8
    res = run_ode(sc, at=at, rtol=rtol, jump_tol=0.0)  # jump_tol=0: exactly the staircase ODE
    lam = sc.problem.eigenvalues
    ref_models = []
    for m in sc.models:
        ref_models.append(dict(etas=m.step_sizes(), s=m.speed_profile(lam), B=m.batch,
                               parent=sc.index(m.teacher) if m.teacher else None,
                               alpha=m.alpha, at=at[m.name]))
    rows, M, mu = _ref_ode(lam, np.array(sc.problem.theta2), sc.problem.noise, sc.problem.kappa,
                           ref_models)
    for gi, m in enumerate(sc.models):
        r = res[m.name]
        ref = np.array([rows[gi][int(t)][0] for t in at[m.name]])
        scale = ref.sum(axis=1).max()
        # in units of rtol times the curve's scale
        assert np.max(np.abs(r.bias - ref[:, 0])) <= 20 * rtol * scale
        assert np.max(np.abs(r.variance - ref[:, 1])) <= 20 * rtol * scale
        if m.teacher is not None:
            dref = np.array([rows[gi][int(t)][1] for t in at[m.name]])
            assert np.max(np.abs(r.disagreement - dref)) <= 20 * rtol * scale
        np.testing.assert_allclose(r.modes.second_moment, M[(gi, gi)].sum(axis=0), rtol=0,
                                   atol=20 * rtol * scale)
        np.testing.assert_allclose(r.modes.first_moment, mu[gi], rtol=0, atol=1e-9)
    # final pairwise disagreements
    for g, gname in enumerate(res.models):
        for h, hname in enumerate(res.models):
            if g == h:
                continue
            mgh = M[(min(g, h), max(g, h))]
            ref = (M[(g, g)] - 2 * mgh + M[(h, h)]).sum()
            assert abs(res.disagreement[gname][hname] - ref) <= 20 * rtol * max(ref, 1e-3)


def test_rtol_controls_global_error():
    sc = st.Scenario(_problem(d=200), (st.Model("t", steps=5000, schedule=0.2),))
    at = _at(sc)
    ref = run_ode(sc, at=at, rtol=1e-10)["t"].excess_risk
    for rtol in (1e-4, 1e-6):
        err = np.max(np.abs(run_ode(sc, at=at, rtol=rtol)["t"].excess_risk / ref - 1))
        assert err <= rtol


def test_smoothing_of_small_jumps_is_bounded():
    """Default jump_tol smooths the staircase: the change is O(jump_tol * x_max) relative."""
    sc = st.Scenario(_problem(d=100), (st.Model("t", steps=300, schedule=st.Polynomial(0.4, 100.0, 1.0)),))
    at = _at(sc)
    exact_stair = run_ode(sc, at=at, jump_tol=0.0)
    smooth = run_ode(sc, at=at)
    assert smooth.diagnostics["grid_points"] < exact_stair.diagnostics["grid_points"] / 3
    x = smooth.diagnostics["max_eta_s"]["t"]
    diff = np.abs(smooth["t"].excess_risk - exact_stair["t"].excess_risk)
    assert diff.max() <= 1e-2 * x * exact_stair["t"].excess_risk.max()


# ----------------------------------------------------------------------------
# (b) the ODE against the exact recursion


def _configs():
    chain = (st.Model("t", steps=1500, schedule=0.3),
             st.Model("s", steps=1500, schedule=0.3, teacher="t", capacity=30, batch=2),
             st.Model("g", steps=1500, schedule=0.2, teacher="s", alpha=0.5))
    return {
        "single": st.Scenario(_problem(), (st.Model("t", steps=2000, schedule=0.2),)),
        "rademacher": st.Scenario(_problem(2.0, 1.5, 100, 0.5, "rademacher"),
                                  (st.Model("t", steps=2000, schedule=0.5),)),
        "step_decay": st.Scenario(_problem(1.5, 2.5), (st.Model("t", steps=3000,
                                                                schedule=st.StepDecay(0.4, 0.5, 500)),)),
        "chain": st.Scenario(_problem(1.5, 2.0, 100, 0.2, "uniform"), chain),
        "d1": st.Scenario(st.Problem(st.ArraySpectrum([1.0]), st.ArrayTarget([1.0]), noise=0.1),
                          (st.Model("t", steps=200, schedule=0.2),)),
    }


@pytest.mark.parametrize("name", list(_configs()))
def test_bound_against_exact_recursion(name):
    sc = _configs()[name]
    at = _at(sc, 40)
    ex = run_exact(sc, at=at)
    od = run_ode(sc, at=at)
    bounds = ode_error_bound(sc, od)
    for m in sc.models:
        x = od.diagnostics["max_eta_s"][m.name]
        e, o = ex[m.name], od[m.name]
        assert np.max(np.abs(e.excess_risk - o.excess_risk)) <= ODE_ERROR_CONSTANT * x * e.excess_risk.max()
        assert np.max(np.abs(e.excess_risk - o.excess_risk)) <= bounds[m.name] * (1 + 1e-6)
        if e.disagreement is not None:
            assert np.max(np.abs(e.disagreement - o.disagreement)) <= \
                ODE_ERROR_CONSTANT * x * e.disagreement.max()


def test_first_order_in_step_size():
    """Halving eta and doubling the steps (same tau grid) halves the discrepancy."""
    prob = _problem(1.5, 2.0, 20, 0.1)
    gaps = []
    for lr in (0.1, 0.05, 0.025):
        T = int(round(30 / lr))
        sc = st.Scenario(prob, (st.Model("t", steps=T, schedule=lr),
                                st.Model("s", steps=T, schedule=lr, teacher="t", alpha=0.3)))
        at = {m.name: (np.array([0, 1, 3, 10, 30]) / lr).round().astype(int) for m in sc.models}
        ex, od = run_exact(sc, at=at), run_ode(sc, at=at, rtol=1e-7)
        gaps.append(max(np.max(np.abs(ex[n].excess_risk - od[n].excess_risk)) for n in ("t", "s")))
    r1, r2 = gaps[0] / gaps[1], gaps[1] / gaps[2]
    assert 1.7 < r1 < 2.3 and 1.8 < r2 < 2.2, gaps


def test_constant_step_fixed_point_is_exact():
    """The ODE's vector field is (per-step change)/eta: same fixed point (risk floor)."""
    prob = _problem(1.5, 2.0, 10, 0.5)
    sc = st.Scenario(prob, (st.Model("t", steps=4000, schedule=0.3),))
    at = {"t": np.array([4000])}
    ex, od = run_exact(sc, at=at), run_ode(sc, at=at, rtol=1e-9)
    assert abs(od["t"].final / ex["t"].final - 1) < 1e-7


# ----------------------------------------------------------------------------
# grid, weights, schema, errors


def test_grid_grows_logarithmically():
    prob = _problem(1.5, 2.0, 300, 0.1)
    pts = []
    for T in (10**3, 10**4, 10**5, 10**6):
        sc = st.Scenario(prob, (st.Model("t", steps=T, schedule=0.2),))
        pts.append(run_ode(sc, at={"t": np.array([0, T])}).diagnostics["grid_points"])
    inc = np.diff(pts)
    assert pts[-1] < 600, pts
    assert inc.max() < 150, pts  # bounded increment per decade of T


def test_duplicate_modes_equal_weight_two():
    lam = np.array([1.0, 0.4, 0.1])
    th2 = np.array([1.0, 0.3, 0.5])
    dup = st.Problem(st.ArraySpectrum(np.repeat(lam, 2)), st.ArrayTarget(np.repeat(th2, 2)), noise=0.2)
    one = st.Problem(st.ArraySpectrum(lam), st.ArrayTarget(th2), noise=0.2)
    models = (st.Model("t", steps=300, schedule=0.3), st.Model("s", steps=300, schedule=0.3, teacher="t"))
    sc_dup, sc_one = st.Scenario(dup, models), st.Scenario(one, models)
    at = _at(sc_dup)
    a = run_ode(sc_dup, at=at)
    b = run_ode(sc_one, at=at, modes=(lam, th2, np.full(3, 2.0)))
    for n in ("t", "s"):
        np.testing.assert_allclose(b[n].excess_risk, a[n].excess_risk, rtol=1e-7)
        np.testing.assert_allclose(b[n].modes.second_moment, a[n].modes.second_moment[::2], rtol=1e-7)
    np.testing.assert_allclose(b["s"].disagreement, a["s"].disagreement, rtol=1e-7)
    assert b.diagnostics["mode_weight_total"] == 6.0


def test_result_schema_matches_exact():
    sc = _configs()["chain"]
    at = _at(sc, 10)
    ex = run_exact(sc, at=at, record_modes=True)
    od = run_ode(sc, at=at, record_modes=True)
    assert od.method == "ode" and set(od.models) == set(ex.models)
    for n in ex.models:
        e, o = ex[n], od[n]
        np.testing.assert_array_equal(e.steps, o.steps)
        np.testing.assert_allclose(o.bias + o.variance, o.excess_risk, rtol=1e-14)
        assert o.mode_curves.shape == e.mode_curves.shape
        assert (o.disagreement is None) == (e.disagreement is None)
        assert o.modes.first_moment.shape == e.modes.first_moment.shape
        assert o.stability_limit == pytest.approx(e.stability_limit)
    assert set(od.disagreement) == set(ex.disagreement)
    d = od.diagnostics
    assert d["grid_points"] > 0 and d["mode_evaluations"] >= d["grid_points"] * 100
    od.to_json()  # exportable


def test_every_step_curve():
    sc = st.Scenario(_problem(d=30), (st.Model("t", steps=50, schedule=0.3),))
    res = run_ode(sc, at={"t": np.array([0, 7, 50])}, every_step=True)
    c = res["t"].curve
    assert c.shape == (51,)
    np.testing.assert_allclose(c[[0, 7, 50]], res["t"].excess_risk, rtol=1e-14)
    assert np.all(np.diff(c[:20]) < 0)


def test_timeline_tau_and_segments():
    m = st.Model("m", steps=10, schedule=st.Piecewise((0.5, 0.25), (4, 6)))
    tl = Timeline.from_model(m)
    np.testing.assert_allclose(tl.tau_of_steps(np.array([0, 1, 4, 5, 10])), [0, 0.5, 2.0, 2.25, 3.5])
    assert len(list(tl.segments())) == 2
    m2 = st.Model("m", steps=1000, schedule=st.Polynomial(0.5, 1000.0, 1.0))
    segs = list(Timeline.from_model(m2).segments())
    assert len(segs) == 1  # relative jumps ~ 1e-3 < jump_tol: one smooth segment
    np.testing.assert_allclose(Timeline.from_model(m2).total_tau, m2.step_sizes().sum(), rtol=1e-13)


def test_unstable_step_raises_and_warns():
    """The stability policy of docs/theory.md §5 in the ODE: a final unstable phase is an
    error (default and "raise"), computed under "ignore"; a transient one warns and computes."""
    prob = st.Problem(st.ArraySpectrum([1.0]), st.ArrayTarget([1.0]), noise=0.1)
    sc = st.Scenario(prob, (st.Model("t", steps=20, schedule=0.7),))  # limit 2/3 (B=1, kappa=3)
    for on_unstable in ("warn", "raise"):
        with pytest.raises(InstabilityError) as err:
            run_ode(sc, at={"t": np.array([20])}, on_unstable=on_unstable)
        assert err.value.limit == pytest.approx(2 / 3) and err.value.step == 0
        assert "steps above the limit: 0-19 (20 of 20)" in str(err.value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = run_ode(sc, at={"t": np.array([0, 20])}, on_unstable="ignore")
    assert res["t"].final > res["t"].excess_risk[0]  # the ODE grows too
    assert res.diagnostics["warnings"] == []
    assert res.diagnostics["unstable_steps"]["t"]["steps"] == [[0, 19]]
    transient = st.Scenario(prob, (st.Model("t", steps=20, schedule=st.Piecewise((0.7, 0.3), (5, 15))),))
    with pytest.warns(RuntimeWarning, match=r"model 't': steps 0-4 \(5 of 20; step sizes up to 0.7\)"):
        res = run_ode(transient, at={"t": np.array([0, 5, 20])})
    assert res.diagnostics["unstable_steps"]["t"]["steps"] == [[0, 4]]
    assert res["t"].excess_risk[1] > res["t"].excess_risk[0] > res["t"].excess_risk[2]
    # the transient growth as the exact recursion has it, to the ODE's first-order accuracy
    ex = st.predict(transient, at=[0, 5, 20], method="exact", on_unstable="ignore")
    np.testing.assert_allclose(res["t"].excess_risk, ex["t"].excess_risk, rtol=0.3)


def test_capacity_with_plain_weighted_nodes_is_refused():
    prob = _problem(d=10)
    sc = st.Scenario(prob, (st.Model("t", steps=10, schedule=0.3, capacity=3),))
    lam = np.array(prob.eigenvalues)
    with pytest.raises(SpecError, match="capacity"):
        run_ode(sc, at={"t": np.array([10])}, modes=(lam, np.array(prob.theta2), np.ones(10)))
    with pytest.raises(SpecError):
        run_ode(sc, at={"t": np.array([10])}, rtol=2.0)


def test_error_bound_constant_is_consistent_with_single_mode_theory():
    # per mode |a^n - exp(-n (1 - a))| <= (1 - a) / (2e) + O((1-a)^2), 1 - a ~ 2x: C = 1/e < 0.5
    x = np.linspace(1e-3, 0.05, 50)
    n = np.arange(1, 20000)
    worst = max(np.max(np.abs((1 - xx) ** (2 * n) - np.exp(-2 * xx * n))) / xx for xx in x)
    assert worst <= 1 / math.e + 1e-2
    assert 1 / math.e < ODE_ERROR_CONSTANT
