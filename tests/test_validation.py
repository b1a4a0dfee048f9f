"""Theory against Monte Carlo: the quick validation tier (THEORY.md section 6).

The long tier runs with ``pytest -m slow`` or ``python -m validation --tier long``.
"""

import pytest

from spectral_theory.analysis.checks import check_against_simulation, sign_test
from validation.suite import LONG, QUICK, TIERS, TRANSFER_LONG, TRANSFER_SPECS

QUICK_ALL = TIERS["quick"]

_FINAL_Z: dict[str, float] = {}


@pytest.mark.parametrize("config", QUICK_ALL, ids=[c.name for c in QUICK_ALL])
def test_quick_tier(config):
    chk = check_against_simulation(config.build(), reps=config.reps, seed=config.seed, name=config.name)
    _FINAL_Z[config.name] = chk.final_z
    assert chk.passed, chk.table()


def test_quick_tier_covers_what_it_claims():
    kappas = {c.build().problem.kappa for c in QUICK}
    assert {1.0, 1.8, 3.0} <= kappas
    scenarios = [c.build() for c in QUICK]
    assert any(m.batch == 1 for s in scenarios for m in s.models)
    assert any(m.batch > 1 for s in scenarios for m in s.models)
    assert any(m.capacity is not None for s in scenarios for m in s.models)
    assert any(len(s.models) >= 3 and all(0 < m.alpha < 1 for m in s.models[1:]) for s in scenarios)
    assert any(len({lr for lr, _ in m.phases()}) > 1 for s in scenarios for m in s.models)
    assert len(QUICK) >= 8
    # every transfer builder is validated: distillation soft and mixed, weak-to-strong with a
    # weak capacity and a weak budget, a 4-generation chain
    specs = {k: f() for k, f in TRANSFER_SPECS.items()}
    assert {s.kind for s in specs.values()} == {"kd", "w2s", "chain"}
    assert any(s.kind == "kd" and s.alpha == 0 for s in specs.values())
    assert any(s.kind == "kd" and 0 < s.alpha < 1 for s in specs.values())
    assert any(s.kind == "w2s" and s.weak.capacity is not None for s in specs.values())
    assert any(s.kind == "w2s" and s.weak.steps < s.strong.steps for s in specs.values())
    assert any(s.kind == "chain" and s.generations >= 4 for s in specs.values())
    names = {c.name for c in QUICK_ALL}
    for k, s in specs.items():
        assert {f"{k}/{lname}" for lname in s.lineages()} <= names


def test_quick_tier_no_systematic_sign():
    if len(_FINAL_Z) < len(QUICK_ALL):  # run on its own: compute the final z-scores here
        for c in QUICK_ALL:
            if c.name not in _FINAL_Z:
                _FINAL_Z[c.name] = check_against_simulation(c.build(), reps=c.reps, seed=c.seed).final_z
    assert sign_test(list(_FINAL_Z.values()))["p_value"] >= 0.01


@pytest.mark.slow
@pytest.mark.parametrize("config", LONG + TRANSFER_LONG, ids=[c.name for c in LONG + TRANSFER_LONG])
def test_long_tier(config):
    chk = check_against_simulation(config.build(), reps=config.reps, seed=config.seed, name=config.name)
    assert chk.passed, chk.table()
