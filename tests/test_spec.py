"""Specification objects: construction, derived arrays and error messages."""

import math

import numpy as np
import pytest

import spectral_theory as st
from spectral_theory.spec import log_steps


def prob(d=10, **kw):
    return st.Problem(st.PowerLawSpectrum(a=1.5, d=d), st.PowerLawTarget(b=2.0), **kw)


def test_powerlaw_and_exponential_values():
    np.testing.assert_allclose(st.PowerLawSpectrum(a=2.0, d=4).values, [1, 1 / 4, 1 / 9, 1 / 16])
    np.testing.assert_allclose(st.ExponentialSpectrum(rate=math.log(2), d=3, scale=2).values, [2, 1, 0.5])
    np.testing.assert_allclose(st.PowerLawTarget(b=1.0, scale=3).theta2(3), [3, 1.5, 1])


def test_features_kurtosis():
    assert st.Features("gaussian").kappa == 3
    assert st.Features("rademacher").kappa == 1
    assert st.Features("uniform").kappa == pytest.approx(1.8)
    assert st.Features("kurtosis", kurtosis=2.5).kappa == 2.5


def test_capacity_speed_profile():
    p = prob(d=6)
    m = st.Model("m", steps=1, capacity=2)
    s = m.speed_profile(p.eigenvalues)
    np.testing.assert_allclose(s[:2], p.eigenvalues[:2])
    assert np.all(s[2:] == 0)


def test_lr_convention_sum_scales_by_batch():
    m = st.Model("m", steps=3, schedule=0.1, batch=4, lr_convention="sum")
    np.testing.assert_allclose(m.step_sizes(), [0.4] * 3)
    assert m.phases() == [(pytest.approx(0.4), 3)]


@pytest.mark.parametrize(
    "build, field, fragment",
    [
        (lambda: st.PowerLawSpectrum(a=-1, d=5), "spectrum.a", "> 0"),
        (lambda: st.PowerLawSpectrum(a=1.5, d=0), "spectrum.d", ">= 1"),
        (lambda: st.PowerLawSpectrum(a=float("nan"), d=5), "spectrum.a", "finite"),
        (lambda: st.ArraySpectrum([1.0, 2.0]), "spectrum.values[1]", "non-increasing"),
        (lambda: st.ArraySpectrum([1.0, -0.1]), "spectrum.values[1]", ">= 0"),
        (lambda: st.ArrayTarget([0.1, float("inf")]), "target.values[1]", "finite"),
        (lambda: st.Features("cauchy"), "problem.features", "gaussian"),
        (lambda: st.Features("kurtosis", kurtosis=0.5), "problem.kurtosis", ">= 1"),
        (lambda: prob(noise=-1.0), "problem.noise", ">= 0"),
        (lambda: st.Problem(st.PowerLawSpectrum(a=1.5, d=3), st.ArrayTarget([1, 2])), "target.values", "length d = 3"),
        (lambda: st.Model("m", steps=-1), "models['m'].steps", ">= 0"),
        (lambda: st.Model("m", steps=5, batch=0), "models['m'].batch", ">= 1"),
        (lambda: st.Model("m", steps=5, schedule=-0.1), "models['m'].lr", "> 0"),
        (lambda: st.Model("m", steps=5, alpha=0.5), "models['m'].alpha", "hard labels"),
        (lambda: st.Model("m", steps=5, teacher="t", alpha=1.5), "models['m'].alpha", "<= 1"),
        (lambda: st.Model("m", steps=5, teacher="m"), "models['m'].teacher", "own teacher"),
        (lambda: st.Model("m", steps=5, capacity=2, speeds=[1.0]), "models['m'].speeds", "not both"),
        (lambda: st.Model("m", steps=5, lr_convention="median"), "models['m'].lr_convention", "'mean' or 'sum'"),
        (lambda: st.Model("m", steps=5, schedule=st.ArraySchedule([0.1, 0.1])), "models['m'].schedule.values", "the model's steps are 5, the array has 2 values"),
        (lambda: st.Model("m", steps=5, schedule=st.Piecewise([0.1], [3])), "models['m'].schedule.lengths", "must add up to the model's steps (5); they add up to 3"),
        (lambda: st.Piecewise([0.1, 0.2], [3]), "schedule.lengths", "one length per step size"),
        (lambda: st.StepDecay(0.1, 0.5, 0), "schedule.every", ">= 1"),
        (lambda: st.Polynomial(0.1, t0=0, power=1.0), "schedule.t0", "> 0"),
        (lambda: st.ArraySchedule([0.1, 0.0]), "schedule.values[1]", "> 0"),
        (lambda: st.Scenario(prob(), (st.Model("a", steps=1), st.Model("a", steps=1))), "models[1].name", "unique"),
        (lambda: st.Scenario(prob(), (st.Model("a", steps=1, teacher="b"), st.Model("b", steps=1))), "models['a'].teacher", "earlier"),
        (lambda: st.Scenario(prob(d=3), (st.Model("a", steps=1, capacity=5),)), "models['a'].capacity", "d = 3"),
        (lambda: st.Scenario(prob(d=3), (st.Model("a", steps=1, speeds=[1, 1]),)), "models['a'].speeds", "length d = 3"),
        (lambda: st.Output(at=(0, -3)), "output.at[1]", ">= 0"),
        (lambda: st.Output(at="10"), "output.at", "list"),
    ],
)
def test_errors_name_field_value_and_allowed(build, field, fragment):
    with pytest.raises(st.SpecError) as info:
        build()
    err = info.value
    assert err.field == field
    assert fragment in str(err)
    assert str(err).startswith(field + ": got ")


def test_output_steps():
    o = st.Output(at=(100, 0, 10, 10))
    assert o.at == (0, 10, 100)
    np.testing.assert_array_equal(o.steps_for(50), [0, 10, 50])  # a step past the end: the last step
    assert o.past_end(50) == [100] and o.past_end(100) == []
    s = log_steps(1000, 20)
    assert s[0] == 0 and s[-1] == 1000 and np.all(np.diff(s) > 0)


def test_schedules_rates_and_phases():
    T = 10
    cases = [
        (st.Constant(0.5), [0.5] * T),
        (st.StepDecay(1.0, 0.5, 4), [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]),
        (st.Piecewise([0.3, 0.1], [3, 7]), [0.3] * 3 + [0.1] * 7),
        (st.Geometric(1.0, 0.9), [0.9**t for t in range(T)]),
        (st.Polynomial(1.0, t0=2.0, power=0.5), [(1 + t / 2) ** -0.5 for t in range(T)]),
        (st.WarmupDecay(1.0, warmup=4, t0=2.0, power=1.0),
         [0.25, 0.5, 0.75, 1.0] + [1 / (1 + (t - 4) / 2) for t in range(4, T)]),
        (st.ArraySchedule(np.linspace(1, 0.1, T)), list(np.linspace(1, 0.1, T))),
    ]
    for sched, expected in cases:
        np.testing.assert_allclose(sched.rates(T), expected, rtol=1e-15)
        ph = sched.phases(T)
        assert sum(n for _, n in ph) == T
        np.testing.assert_allclose(np.repeat([lr for lr, _ in ph], [n for _, n in ph]), expected, rtol=1e-15)
    assert st.halving_every(1024) == 102
