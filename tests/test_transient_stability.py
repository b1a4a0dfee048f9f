"""The stability policy of docs/theory.md §5 on transiently unstable schedules.

A schedule that is above its model's constant-step stability limit for some steps and then
returns below it has a finite risk: it is computed, with a warning that names the model, the
steps above the limit, the limit and the peak growth factor (the product over those steps of
the spectral radius of the second-moment map). A final constant phase above the limit, or an
overflow, is an error; ``on_unstable="raise"`` refuses any step above the limit and
``"ignore"`` computes without a warning.

Values are checked against the independent dense implementation of tests/reference.py
(relative 1e-10), the renewal solver and ``auto`` against the exact solver (1e-8), the growth
factor against dense eigenvalues, and one schedule against Monte Carlo (4 standard errors).
"""

from __future__ import annotations

import re
import time
import warnings

import numpy as np
import pytest
from reference import RefModel, dense_reference

import spectral_theory as st
from spectral_theory import stability
from spectral_theory.solvers import PrefixCache
from spectral_theory.stability import guard_steps


def problem(d: int = 50, scale: float = 1.0, noise: float = 0.1) -> st.Problem:
    """lambda_i = scale i^-1.5, Gaussian latents, B = 1: the limit is about 0.546 / scale (d = 50)."""
    return st.Problem(st.PowerLawSpectrum(a=1.5, d=d, scale=scale), st.PowerLawTarget(b=2.0), noise=noise)


T_ARRAY = 400
ARRAY = 0.6 * (0.05 / 0.6) ** (np.arange(T_ARRAY) / (T_ARRAY - 1))  # 0.6 decaying to 0.05

#: name -> (problem, models, the model whose schedule is transient)
CASES = {
    # limit 0.546: steps 0-15 above it
    "array": (problem(), [st.Model("m", steps=T_ARRAY, schedule=st.ArraySchedule(ARRAY))], "m"),
    # scale 1.5: limit 0.364, so 300 steps at 0.4 (growth ~4e4), then 300 at 0.1
    "piecewise": (problem(scale=1.5), [st.Model("m", steps=600, schedule=st.Piecewise((0.4, 0.1), (300, 300)))],
                  "m"),
    # 1.0 halving every 10 steps: steps 0-9 above the limit (lambda_1 = 1: a_1 = 1 exactly there)
    "step_decay": (problem(), [st.Model("m", steps=200, schedule=st.StepDecay(1.0, 0.5, 10))], "m"),
    # three large first steps
    "short": (problem(), [st.Model("m", steps=200, schedule=st.Piecewise((0.6, 0.3), (3, 197)))], "m"),
    # a stable teacher, then a student (mixed labels) whose first 40 steps are above the limit
    "chain": (problem(), [st.Model("t", steps=300, schedule=0.2),
                          st.Model("s", steps=400, schedule=st.Piecewise((0.6, 0.25), (40, 360)),
                                   teacher="t", alpha=0.2)], "s"),
}

CHECKPOINTS = [0, 1, 2, 3, 5, 9, 10, 11, 15, 16, 20, 39, 40, 41, 100, 299, 300, 301, 399, 400, 600]


def scenario(case: str) -> st.Scenario:
    prob, models, _ = CASES[case]
    return st.Scenario(prob, tuple(models))


def limit_of(sc: st.Scenario, name: str) -> float:
    m = sc.models[sc.index(name)]
    return st.stability_limit(m.speed_profile(sc.problem.eigenvalues), m.batch, sc.problem.kappa)


def expected_ranges(sc: st.Scenario, name: str) -> list[list[int]]:
    """Steps at or above the limit, as inclusive ranges, from the per-step step sizes
    (kappa = 3: every step at or above the limit is unstable)."""
    eta = sc.models[sc.index(name)].step_sizes()
    bad = np.flatnonzero(eta >= limit_of(sc, name))
    out: list[list[int]] = []
    for t in bad:
        if out and out[-1][1] == t - 1:
            out[-1][1] = int(t)
        else:
            out.append([int(t), int(t)])
    return out


def dense_growth(eta: float, s: np.ndarray, batch: int, kappa: float) -> float:
    """Spectral radius of diag(a) + b 1^T (and of the mean factors 1 - x), built densely."""
    x = eta * s[s > 0]
    a = 1 - 2 * x + (batch + kappa - 2) / batch * x**2
    b = x**2 / batch
    rho = np.max(np.abs(np.linalg.eigvals(np.diag(a) + np.outer(b, np.ones_like(b)))))
    return max(float(rho), float(np.max(np.abs(1 - x))))


def rel(x, y, floor: float = 1e-300) -> float:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return float(np.max(np.abs(x - y) / np.maximum(np.abs(y), floor)))


def predict_warned(sc: st.Scenario, **kw) -> tuple[st.Result, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = st.predict(sc, **kw)
    msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    return res, msgs


# ---------------------------------------------------------------------------- computed, with a warning


@pytest.mark.parametrize("case", sorted(CASES))
def test_transient_schedule_is_computed_with_a_warning(case):
    sc = scenario(case)
    name = CASES[case][2]
    lim = limit_of(sc, name)
    ranges = expected_ranges(sc, name)
    assert ranges and ranges[-1][1] < sc.models[sc.index(name)].steps - 1  # transient, by construction
    with pytest.warns(RuntimeWarning) as caught:
        res = st.predict(sc, at=CHECKPOINTS)
    msgs = [str(w.message) for w in caught if "above the stability limit" in str(w.message)]
    assert len(msgs) == 1  # one warning, for the transient model only
    msg = msgs[0]
    first, last = ranges[0]
    assert msg.startswith(f"model {name!r}: steps {first}-{last} (")
    assert f"above the stability limit {lim:.6g}" in msg and "peak growth factor" in msg
    assert caught[0].filename == __file__  # the warning points at the caller's line
    assert res.diagnostics["warnings"] == [msg]
    entry = res.diagnostics["unstable_steps"]
    assert list(entry) == [name]
    entry = entry[name]
    assert entry["steps"] == ranges and entry["limit"] == lim
    assert entry["max_step"] == float(sc.models[sc.index(name)].step_sizes().max())
    assert not entry["final_phase_unstable"]
    # the growth factor: dense spectral radii, one per step above the limit
    m = sc.models[sc.index(name)]
    s = m.speed_profile(sc.problem.eigenvalues)
    eta = m.step_sizes()
    want = sum(np.log10(dense_growth(e, s, m.batch, sc.problem.kappa)) for e in eta[eta >= lim])
    assert entry["log10_growth_bound"] == pytest.approx(want, rel=1e-10)
    assert entry["growth_bound"] == pytest.approx(10**want, rel=1e-9)
    assert f"peak growth factor {10**want:.4g}" in msg


@pytest.mark.parametrize("case", sorted(CASES))
def test_transient_values_against_the_dense_reference(case):
    """Exact solver (auto picks it here) against the independent dense recursion, 1e-10."""
    sc = scenario(case)
    res, _ = predict_warned(sc, at=CHECKPOINTS, method="exact")
    idx = {m.name: i for i, m in enumerate(sc.models)}
    refs = [RefModel(m.name, m.step_sizes(), m.speed_profile(sc.problem.eigenvalues), m.batch,
                     idx[m.teacher] if m.teacher else None, float(m.alpha), at=res[m.name].steps)
            for m in sc.models]
    ref = dense_reference(sc.problem.theta2, sc.problem.noise, sc.problem.kappa, refs)
    for m in sc.models:
        got, want = res[m.name], ref["models"][m.name]
        np.testing.assert_array_equal(got.steps, want["steps"])
        assert rel(got.excess_risk, want["risk"]) < 1e-10
        assert rel(got.bias, want["bias"]) < 1e-10
        assert rel(got.variance[1:], want["variance"][1:]) < 1e-10  # variance is 0 at step 0
        assert rel(got.modes.second_moment, want["second_moment"]) < 1e-10
        if m.teacher is not None:
            assert rel(got.disagreement, want["disagreement"]) < 1e-10
    name = CASES[case][2]
    assert np.max(res[name].excess_risk) > res[name].excess_risk[0]  # the transient growth is there


@pytest.mark.parametrize("case", sorted(CASES))
def test_renewal_and_auto_agree_with_exact(case):
    sc = scenario(case)
    ex, _ = predict_warned(sc, at=CHECKPOINTS, method="exact", record_modes=True)
    for method in ("renewal", "auto"):
        res, msgs = predict_warned(sc, at=CHECKPOINTS, method=method, record_modes=True)
        assert msgs == ex.diagnostics["warnings"]
        assert res.diagnostics["unstable_steps"] == ex.diagnostics["unstable_steps"]
        for m in sc.models:
            a, b = res[m.name], ex[m.name]
            for field in ("excess_risk", "bias", "disagreement"):
                if getattr(b, field) is not None:
                    assert rel(getattr(a, field), getattr(b, field)) < 1e-8, (method, m.name, field)
            assert rel(a.variance[1:], b.variance[1:]) < 1e-8
            assert rel(a.mode_curves, b.mode_curves, 1e-14 * np.abs(b.mode_curves).max()) < 1e-8


def test_auto_picks_renewal_for_a_large_transient_chain():
    """d = 3000, 11000 steps: auto chooses the renewal solver, which integrates the student's
    200 unstable steps on a shifted contour; agreement with exact at 1e-8."""
    sc = st.Scenario(problem(d=3000), (
        st.Model("t", steps=5000, schedule=0.2),
        st.Model("s", steps=6000, schedule=st.Piecewise((0.6, 0.25), (200, 5800)), teacher="t", alpha=0.2)))
    at = [0, 1, 17, 100, 199, 200, 201, 1000, 5000, 6000]
    auto, _ = predict_warned(sc, at=at)
    ex, _ = predict_warned(sc, at=at, method="exact")
    assert auto.method == "renewal"
    assert auto.diagnostics["unstable_steps"]["s"]["steps"] == [[0, 199]]
    for name in ("t", "s"):
        assert rel(auto[name].excess_risk, ex[name].excess_risk) < 1e-8
    assert rel(auto["s"].disagreement, ex["s"].disagreement) < 1e-8
    assert ex["s"].excess_risk[4] > 100 * ex["s"].excess_risk[0]  # it did grow


@pytest.mark.parametrize("case", sorted(CASES))
def test_ode_computes_transient_schedules(case):
    """The ODE (first order) follows the same policy: computed, with the same warning."""
    sc = scenario(case)
    res, msgs = predict_warned(sc, at=CHECKPOINTS, method="ode")
    ex, _ = predict_warned(sc, at=CHECKPOINTS, method="exact")
    assert msgs == ex.diagnostics["warnings"] == res.diagnostics["warnings"]
    assert res.diagnostics["unstable_steps"] == ex.diagnostics["unstable_steps"]
    for m in sc.models:
        assert np.all(np.isfinite(res[m.name].excess_risk))


def test_continuum_follows_the_policy():
    sc = scenario("short")
    res, msgs = predict_warned(sc, at=[0, 3, 200], method="continuum")
    assert len(msgs) == 1 and msgs[0].startswith("model 'm': steps 0-2 (")
    assert res.diagnostics["unstable_steps"]["m"]["steps"] == [[0, 2]]


def test_cached_models_are_reported_too():
    sc = scenario("chain")
    cache = PrefixCache()
    first, _ = predict_warned(sc, at=[0, 400], method="exact", cache=cache)
    second, msgs = predict_warned(sc, at=[0, 400], method="exact", cache=cache)
    assert cache.hits == 2
    assert second.diagnostics["warnings"] == first.diagnostics["warnings"] == msgs
    assert second.diagnostics["unstable_steps"] == first.diagnostics["unstable_steps"]


# ---------------------------------------------------------------------------- raise, ignore, errors


@pytest.mark.parametrize("case", sorted(CASES))
def test_raise_refuses_and_ignore_is_silent(case):
    sc = scenario(case)
    name = CASES[case][2]
    lim = limit_of(sc, name)
    first, last = expected_ranges(sc, name)[0]
    with pytest.raises(st.InstabilityError) as info:
        st.predict(sc, at=[0], on_unstable="raise")
    err = info.value
    assert err.model == name and err.step == first and err.limit == lim
    assert err.lr == sc.models[sc.index(name)].step_sizes()[first]
    assert f"steps above the limit: {first}-{last}" in str(err) and "peak growth factor" in str(err)
    with pytest.raises(st.InstabilityError):
        st.simulate(sc, at=[0], reps=2, on_unstable="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = st.predict(sc, at=CHECKPOINTS, on_unstable="ignore")
    loud, _ = predict_warned(sc, at=CHECKPOINTS)
    assert quiet.diagnostics["warnings"] == []
    assert quiet.diagnostics["unstable_steps"] == loud.diagnostics["unstable_steps"]
    for m in sc.models:
        np.testing.assert_array_equal(quiet[m.name].excess_risk, loud[m.name].excess_risk)


FINAL_UNSTABLE = {
    "constant": lambda lim: st.Constant(1.05 * lim),
    "warm-up then too large": lambda lim: st.Piecewise((0.5 * lim, 1.2 * lim), (100, 100)),
    "array ending above": lambda lim: st.ArraySchedule(np.linspace(0.5, 1.1, 200) * lim),
}


@pytest.mark.parametrize("kind", sorted(FINAL_UNSTABLE))
def test_final_unstable_phase_is_an_error(kind):
    prob = problem()
    lim = st.stability_limit(prob.eigenvalues, 1, prob.kappa)
    model = st.Model("m", steps=200, schedule=FINAL_UNSTABLE[kind](lim))
    sc = st.Scenario(prob, (model,))
    eta = model.step_sizes()
    start = int(np.flatnonzero(eta != eta[-1])[-1] + 1) if np.any(eta != eta[-1]) else 0
    first = int(np.flatnonzero(eta >= lim)[0])
    for method in ("exact", "renewal", "ode", "continuum", "auto"):
        with pytest.raises(st.InstabilityError) as info:
            st.predict(sc, at=[0, 200], method=method)
        err = info.value
        text = str(err)
        assert err.model == "m" and err.step == start and err.lr == eta[-1], method
        if method != "continuum":  # the continuum's limit is that of its quadrature nodes
            assert err.limit == lim and f"{lim:.6g}" in text
        assert f"final constant phase (steps {start}-199) is above the limit" in text
        assert re.search(rf"steps above the limit: {first}-199 \({200 - first} of 200\); peak growth factor",
                         text), text
    with pytest.raises(st.InstabilityError, match="final constant phase") as info:
        st.simulate(sc, at=[0, 200], reps=4)
    assert info.value.limit == lim
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = st.predict(sc, at=[0, 200], on_unstable="ignore")
    assert res.diagnostics["unstable_steps"]["m"]["final_phase_unstable"]
    assert res["m"].final > res["m"].excess_risk[0]


def test_monte_carlo_lr5_is_an_error_not_huge_numbers():
    """lr = 5 (10x the limit) in a simulation: refused before any sampling under the default;
    under "ignore" the simulated risk overflows, which is an error too."""
    sc = st.Scenario(problem(d=20), (st.Model("m", steps=400, schedule=5.0),))
    t0 = time.process_time()
    with pytest.raises(st.InstabilityError, match="final constant phase"):
        st.simulate(sc, reps=100)
    assert time.process_time() - t0 < 1.0  # CPU seconds: refused before sampling
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy's overflow warnings
        with pytest.raises(st.InstabilityError, match="overflowed") as info:
            st.simulate(sc, reps=4, on_unstable="ignore")
    assert info.value.limit == limit_of(sc, "m")


def test_on_unstable_values():
    assert stability.ON_UNSTABLE == ("warn", "raise", "ignore")
    assert stability.DEFAULT_ON_UNSTABLE == "warn"
    sc = scenario("short")
    for call in (lambda: st.predict(sc, on_unstable="loud"), lambda: st.simulate(sc, on_unstable="loud"),
                 lambda: st.predict(sc, method="renewal", on_unstable="loud")):
        with pytest.raises(st.SpecError, match="on_unstable"):
            call()


# ---------------------------------------------------------------------------- the growth factor


@pytest.mark.parametrize("batch,kappa", [(1, 3.0), (4, 3.0), (1, 1.0), (2, 1.8)])
def test_growth_factor_is_the_product_of_dense_spectral_radii(batch, kappa):
    """guard_steps' growth factor against numpy.linalg.eigvals of diag(a) + b 1^T, step by
    step (B = 1, kappa = 1: the bottom eigenvalue can dominate); repeated speeds and mode
    multiplicities (weights) included."""
    rng = np.random.default_rng(int(10 * kappa) + batch)
    s = np.sort(rng.uniform(0.05, 1.0, 7))[::-1]
    s[3] = s[2]  # a repeated speed: its factor is an eigenvalue
    s = np.append(s, 0.0)  # a frozen mode takes no part
    lim = st.stability_limit(s, batch, kappa)
    lrs = np.array([1.3, 1.02, 2.2, 0.7, 1.02, 0.3]) * lim
    lengths = np.array([3, 5, 2, 10, 4, 20])
    check = guard_steps("m", list(zip(lrs, lengths, strict=True)), s, batch, kappa, on_unstable="ignore")
    want, bad = 0.0, []
    t = 0
    for lr, n in zip(lrs, lengths, strict=True):
        rho = dense_growth(lr, s, batch, kappa)
        if rho >= 1 - 1e-12 and lr >= lim:
            want += n * np.log10(rho)
            bad.append((t, t + n - 1))
        t += n
    assert check.log10_growth == pytest.approx(want, rel=1e-11)
    merged = []
    for a, b in bad:
        if merged and merged[-1][1] == a - 1:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    assert list(check.ranges) == merged
    # weights: a mode standing for 3 identical modes, against the expanded dense matrix
    w = np.array([3.0, 1, 1, 1, 2, 1, 1, 1])
    expanded = np.repeat(s, w.astype(int))
    for lr in lrs[:3]:
        assert stability.step_growth(lr, s, batch, kappa, w) == pytest.approx(
            dense_growth(lr, expanded, batch, kappa), rel=1e-12)


def test_growth_factor_bounds_the_amplification_in_the_s_norm():
    """docs/theory.md §5: in ||U||_s = ||diag(s)^-1 U||_2 every step's map has norm rho(A_t)
    and stable steps do not amplify, so the bias second moments (noise 0) satisfy
    ||U(t)||_s <= growth factor x ||U(0)||_s at every step."""
    sc = st.Scenario(problem(noise=0.0), (st.Model("m", steps=300, schedule=st.StepDecay(1.0, 0.5, 30)),))
    res, _ = predict_warned(sc, every_step=False, at=list(range(301)), record_modes=True)
    s = sc.problem.eigenvalues
    norms = np.linalg.norm(res["m"].mode_curves / s, axis=1)
    growth = res.diagnostics["unstable_steps"]["m"]["growth_bound"]
    assert np.max(norms) <= growth * norms[0] * (1 + 1e-12)
    assert np.max(norms) > 1e-3 * growth * norms[0]  # and it is not a vacuous bound here


def test_equal_step_sizes_cost_one_radius(monkeypatch):
    """An array schedule of 10^6 steps alternating between two values above the limit and one
    below: three distinct step sizes, two radii."""
    calls = []
    real = stability.step_growth
    monkeypatch.setattr(stability, "step_growth", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    s = st.PowerLawSpectrum(a=1.5, d=200).values
    lim = st.stability_limit(s, 1, 3.0)
    rates = np.tile([1.1 * lim, 1.2 * lim, 1.1 * lim, 0.5 * lim], 250_000)
    model = st.Model("m", steps=rates.size, schedule=st.ArraySchedule(rates))
    check = guard_steps("m", model.phases(), s, 1, 3.0, on_unstable="ignore")  # work counted by calls, not timed
    assert sorted(calls) == [1.1 * lim, 1.2 * lim]
    assert len(check.ranges) == 250_000 and check.count == 750_000
    g1, g2 = (real(e, s, 1, 3.0) for e in (1.1 * lim, 1.2 * lim))
    assert check.log10_growth == pytest.approx(500_000 * np.log10(g1) + 250_000 * np.log10(g2), rel=1e-12)
    assert check.growth == np.inf and "10^" in check.summary()  # reported in log10
    assert check.entry()["growth_bound"] is None
    assert "... (250000 ranges in all)" in check.summary()


# ---------------------------------------------------------------------------- Monte Carlo


def test_monte_carlo_agrees_on_a_transient_schedule():
    """Three steps at 0.6 (limit 0.56 at d = 20), then 0.3: simulation and theory agree within
    4 standard errors at every checkpoint, and both warn alike. Over steps above the limit the
    per-replicate risk is a product of random amplifications with a heavy right tail: with a
    few hundred replicates the sample mean and its standard error both come out low (|z| up to
    7 at 400 replicates, measured over 20 seeds), hence 5000 replicates (max |z| 2.9 over 20
    seeds) and a short unstable phase."""
    sc = st.Scenario(problem(d=20), (st.Model("m", steps=100, schedule=st.Piecewise((0.6, 0.3), (3, 97))),))
    at = [0, 1, 2, 3, 5, 10, 20, 100]
    with pytest.warns(RuntimeWarning, match=r"model 'm': steps 0-2 \(3 of 100"):
        mc = st.simulate(sc, at=at, reps=5000, seed=0)
    th, _ = predict_warned(sc, at=at)
    assert mc.diagnostics["unstable_steps"] == th.diagnostics["unstable_steps"]
    # the stability warnings alike; the simulation also flags its heavy-tailed replicates
    heavy = [w for w in mc.diagnostics["warnings"] if "the normal interval" in w]
    assert [w for w in mc.diagnostics["warnings"] if w not in heavy] == th.diagnostics["warnings"]
    assert heavy and set(mc.diagnostics["heavy_tail"]) == {"m"}
    r, se = mc["m"].excess_risk, mc["m"].excess_risk_se
    z = np.abs(r - th["m"].excess_risk)[1:] / se[1:]
    assert np.all(z < 4), z
    assert th["m"].excess_risk[3] > th["m"].excess_risk[0]  # it grew


def test_a_step_near_the_limit_is_warned_about_with_its_amplification():
    """Issue 8: nothing warned at 99.99% of the limit, where the risk grows many-fold first."""
    import warnings

    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=50), st.PowerLawTarget(b=2.0), noise=0.1)
    m0 = st.Model("m", steps=1, schedule=0.1)
    lim = st.stability_limit(m0.speed_profile(prob.eigenvalues), 1, prob.kappa)
    sc = st.Scenario(prob, (st.Model("m", steps=3000, schedule=0.9999 * lim),), output=st.Output(at=(0, 3000)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = st.predict(sc, every_step=True, method="exact")
    msgs = [w for w in res.diagnostics["warnings"] if "of the stability limit" in w]
    assert len(msgs) == 1 and "99.99%" in msgs[0] and any("of the stability limit" in str(w.message) for w in caught)
    amp = float(msgs[0].split("up to ")[1].split("-fold")[0])
    from spectral_theory.stability import kernel_norm

    k = kernel_norm(0.9999 * lim, m0.speed_profile(prob.eigenvalues), 1, prob.kappa)
    assert amp == pytest.approx(1.0 / (1.0 - k), rel=1e-3)
    curve = res["m"].curve
    assert curve.max() > 2 * curve[1]  # the risk does grow many-fold before it falls
    # far from the limit, and under "ignore", nothing is said
    calm = st.Scenario(prob, (st.Model("m", steps=100, schedule=0.5 * lim),))
    assert not [w for w in st.predict(calm).diagnostics["warnings"] if "of the stability limit" in w]
    assert not [w for w in st.predict(sc, on_unstable="ignore").diagnostics["warnings"]
                if "of the stability limit" in w]
