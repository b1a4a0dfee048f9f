"""Method registry: auto's choice, forced methods, and agreement of every method with the
exact engine within its stated tolerance."""

import numpy as np
import pytest
from conftest import EXAMPLES

import spectral_theory as st
from spectral_theory.cli import main
from spectral_theory.solvers import CHEAP
from spectral_theory.solvers.ode import ode_error_bound


def chain(d=300, T=4000, features="gaussian", lr=0.2):
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=d), st.PowerLawTarget(b=2.0), noise=0.2,
                      features=st.Features(features))
    return st.Scenario(prob, (st.Model("t", steps=T, schedule=st.StepDecay(lr, 0.5, T // 4)),
                              st.Model("s", steps=T // 2, schedule=lr, capacity=d // 3, teacher="t", alpha=0.2)),
                       output=st.Output(points=30))


def test_auto_choices_are_reported():
    small = chain(d=20, T=100)
    r = st.predict(small)
    assert r.method == "exact" and r.diagnostics["method_choice"].startswith("auto: exact")
    big = chain(d=3000, T=20000)
    assert st.METHODS["exact"]().cost(big) > CHEAP
    r = st.predict(big)
    assert r.method == "renewal" and "cheapest exact" in r.diagnostics["method_choice"]
    # renewal declines Rademacher latents at a step where a per-mode factor is <= 0
    rad = chain(d=3000, T=20000, features="rademacher", lr=0.6)
    r = st.predict(rad, at=[0, 10])
    assert r.method == "exact" and "renewal declined" in r.diagnostics["method_choice"]
    with pytest.raises(st.SpecError, match="renewal"):
        st.predict(rad, method="renewal")
    with pytest.raises(st.SpecError, match="method: got 'magic'"):
        st.predict(small, method="magic")


def test_renewal_agrees_with_exact_to_1e8():
    sc = chain()
    ex = st.predict(sc, method="exact")
    fa = st.predict(sc, method="renewal")
    for name in ("t", "s"):
        for field in ("excess_risk", "bias", "variance"):
            np.testing.assert_allclose(getattr(fa[name], field), getattr(ex[name], field), rtol=1e-8)
        np.testing.assert_allclose(fa[name].modes.second_moment, ex[name].modes.second_moment,
                                   rtol=1e-8, atol=1e-14 * ex[name].excess_risk[0])
    np.testing.assert_allclose(fa["s"].disagreement, ex["s"].disagreement, rtol=1e-8)


def test_ode_and_continuum_within_their_stated_bound():
    sc = chain(d=300, T=4000)
    ex = st.predict(sc, method="exact")
    for method in ("ode", "continuum"):
        r = st.predict(sc, method=method)
        bound = ode_error_bound(sc, r)
        for name in ("t", "s"):
            err = np.max(np.abs(r[name].excess_risk - ex[name].excess_risk))
            assert err <= bound[name], (method, name, err, bound[name])


def test_continuum_infinite_d_is_above_finite_d():
    sc = chain(d=300, T=4000)
    fin = st.predict(sc, method="continuum")
    inf = st.predict(sc, method="continuum", d=None)
    assert np.all(inf["t"].excess_risk >= fin["t"].excess_risk - 1e-12)
    assert st.METHODS["continuum"]().supports(
        st.Scenario(st.Problem(st.ArraySpectrum([1.0, 0.5]), st.ArrayTarget([1.0, 1.0])),
                    (st.Model("m", steps=3),))) is not None


def test_cli_method_flags(capsys):
    assert main(["run", str(EXAMPLES / "distillation.toml"), "--method", "renewal", "--at", "0,100,10000",
                 "--format", "json", "--no-modes"]) == 0
    out = capsys.readouterr().out
    assert '"method": "renewal"' in out
    assert main(["run", str(EXAMPLES / "distillation.toml"), "--method", "continuum", "--d", "inf", "--at", "0,100"]) == 0
    assert "continuum" in capsys.readouterr().out
    assert main(["run", str(EXAMPLES / "distillation.toml"), "--method", "exact", "--d", "inf"]) == 2
    assert "--d" in capsys.readouterr().err


def test_options_belong_to_their_method():
    sc = chain(d=20, T=100)
    with pytest.raises(st.SpecError, match="rtol: got 0.001; is not an option of method 'exact'"):
        st.predict(sc, method="exact", rtol=1e-3)
    st.predict(sc, method="ode", rtol=1e-3)  # accepted there
    with pytest.raises(st.SpecError, match=r"^at\[1\]: got -5"):
        st.predict(sc, at=[0, -5])
    with pytest.raises(st.SpecError, match=r"^d: got 0"):
        st.predict(sc, method="continuum", d=0)


def test_cache_entries_are_per_method():
    from spectral_theory.solvers import PrefixCache

    sc = chain(d=30, T=200)
    cache = PrefixCache()
    st.predict(sc, method="exact", cache=cache)
    st.predict(sc, method="renewal", cache=cache)
    assert cache.hits == 0 and cache.misses == 4
    st.predict(sc, method="renewal", cache=cache)
    assert cache.hits == 2


def test_steps_past_training_report_the_last_step(capsys):
    sc = chain(d=20, T=100)
    r = st.predict(sc, at=[0, 10, 80, 150])
    assert r.diagnostics["steps_past_end"] == {"t": {"requested": [150], "reported": 100},
                                               "s": {"requested": [80, 150], "reported": 50}}
    assert r["t"].steps.tolist() == [0, 10, 80, 100] and r["s"].steps.tolist() == [0, 10, 50]
    assert main(["run", str(EXAMPLES / "chain.json"), "--at", "0,10,500"]) == 0
    assert "its last step 200 is reported in their place" in capsys.readouterr().err
    assert main(["run", str(EXAMPLES / "chain.json"), "--rtol", "1e-3"]) == 2
    assert "--rtol" in capsys.readouterr().err


def test_exact_methods_list_matches_the_classes():
    from spectral_theory.solvers import EXACT_METHODS

    assert set(EXACT_METHODS) == {name for name, cls in st.METHODS.items() if cls.exact}


def test_auto_on_a_long_horizon_imports_no_approximate_solver():
    import subprocess
    import sys

    code = ("import sys, spectral_theory as st\n"
            "p = st.Problem(st.PowerLawSpectrum(a=1.5, d=20000), st.PowerLawTarget(b=2.0), noise=0.1)\n"
            "r = st.predict(st.Scenario(p, (st.Model('m', steps=10**7, schedule=0.2),)))\n"
            "assert r.method == 'renewal'\n"
            "bad = [m for m in ('spectral_theory.solvers.ode', 'spectral_theory.solvers.continuum', 'scipy.optimize') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
