"""Theory against Monte Carlo: the quick validation tier (``docs/theory.md`` §9).

Marked ``montecarlo``: ``pytest -m montecarlo`` runs it as a step of its own, ``pytest -m "not
montecarlo"`` leaves it out. The long tier runs with ``pytest -m slow`` or
``python -m validation --tier long``.
"""

import pytest

from spectral_theory.analysis.checks import check_against_simulation, sign_test
from validation.suite import LONG, QUICK, TIERS, TRANSFER_LONG, TRANSFER_SPECS

pytestmark = pytest.mark.montecarlo

QUICK_ALL = TIERS["quick"]


@pytest.fixture(scope="session")
def quick_check():
    """Each quick configuration's check, computed once per session whatever the test order."""
    done = {}

    def get(config):
        if config.name not in done:
            done[config.name] = check_against_simulation(config.build(), reps=config.reps, seed=config.seed,
                                                         name=config.name)
        return done[config.name]

    return get


@pytest.mark.parametrize("config", QUICK_ALL, ids=[c.name for c in QUICK_ALL])
def test_quick_tier(config, quick_check):
    chk = quick_check(config)
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


def test_quick_tier_no_systematic_sign(quick_check):
    assert sign_test([quick_check(c).final_z for c in QUICK_ALL])["p_value"] >= 0.01


@pytest.mark.slow
@pytest.mark.parametrize("config", LONG + TRANSFER_LONG, ids=[c.name for c in LONG + TRANSFER_LONG])
def test_long_tier(config):
    chk = check_against_simulation(config.build(), reps=config.reps, seed=config.seed, name=config.name)
    assert chk.passed, chk.table()


def test_quick_tier_bootstrap_intervals_cover_the_theory(quick_check):
    """The 95% bootstrap intervals (docs/montecarlo.md, "Uncertainty") cover the theory at most
    random rows of the quick tier: a measured rate, not a per-row criterion (the checkpoints of
    one trajectory are correlated, so the rate fluctuates more than a binomial one)."""
    rows = [r for c in QUICK_ALL for r in quick_check(c).rows if r["se"] > 0]
    rate = sum(r["covered"] for r in rows) / len(rows)
    assert rate >= 0.85, (rate, len(rows))


def test_validation_only_names_a_configuration(capsys):
    from validation.__main__ import main

    with pytest.raises(SystemExit):
        main(["--only", "no_such_config"])
    assert "no such configuration" in capsys.readouterr().err


def test_quick_tier_covers_the_sketched_configurations():
    """The random-feature configurations of the quick tier cover what docs/montecarlo.md and
    docs/sketch.md §4 claim: p/d = 2, 1 and 0.25, Gaussian and orthogonal sketches, batches 1, 2
    and 4 on sketched models, constant, step-decay and polynomial schedules, a chain of two
    sketched models of different widths (24 -> 8) and a plain teacher with a sketched student,
    all on Gaussian data (where the quenched theory is exact)."""
    from validation.suite import SKETCH_QUICK

    assert {c.name for c in SKETCH_QUICK} <= {c.name for c in QUICK_ALL}
    scenarios = [c.build() for c in SKETCH_QUICK]
    sketched = [(s, m) for s in scenarios for m in s.models if m.features is not None]
    assert all(s.problem.kappa == 3.0 for s in scenarios)
    ratios = {m.features.p / s.problem.d for s, m in sketched}
    assert {2.0, 1.0, 0.25} <= ratios, ratios
    assert {m.features.kind for _, m in sketched} == {"gaussian", "orthogonal"}
    assert {1, 2, 4} <= {m.batch for _, m in sketched}
    kinds = {type(m.schedule).__name__ for _, m in sketched}
    assert {"StepDecay", "Polynomial"} <= kinds and any(len(m.phases()) == 1 for _, m in sketched), kinds
    assert any(len(s.models) == 2 and all(m.features is not None for m in s.models)
               and [m.features.p for m in s.models] == [24, 8] and s.models[1].teacher == s.models[0].name
               for s in scenarios)
    assert any(s.models[0].features is None and s.models[1].features is not None
               and s.models[1].teacher == s.models[0].name for s in scenarios if len(s.models) == 2)
