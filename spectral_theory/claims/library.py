"""A library of checked statements: claims from this project's theory and the literature.

Each function returns a :class:`~spectral_theory.claims.Claim` whose docstring gives its
source; ``tests/test_claims_library.py`` checks every one (``LIBRARY``), and the false one
(:func:`textbook_bias_rate`, in ``FALSE``) with its certified counterexample. Budgets are
the callers'; the domains are chosen where each statement is claimed to hold, and say why.

``stability_criterion(constant=2.1)`` is the planted bug of ``benchmarks/bench_claims.py``:
the Gaussian ``B = 1`` criterion with its constant 5% too large.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .claim import Equality, Inequality, Limit, Quantity, Rate
from .domain import Param

__all__ = ["LIBRARY", "FALSE", "stability_criterion", "stability_criterion_necessary", "risk_floor_limit",
           "bias_rate", "bias_rate_sgd_noise", "variance_rate_annealed", "hard_label_distillation", "perfect_teacher",
           "continuum_limit", "ode_error_bound", "textbook_bias_rate", "powerlaw_scenario"]


def powerlaw_scenario(*, a: float, b: float, d: int, eta: float | None = None, frac: float | None = None,
                      steps: int = 1000, batch: int = 1, kappa: float = 3.0, sigma2: float = 0.0,
                      capacity: int | None = None, schedule: Any = None, points: int = 30, **_: Any):
    """One hard-label model ``m`` on ``lambda_i = i^-a``, ``theta_i^2 = i^-b``; its constant
    step is ``eta``, or ``frac`` times the model's stability limit (``docs/theory.md`` §5)."""
    import spectral_theory as st
    from spectral_theory.stability import stability_limit

    feats = st.Features("gaussian") if kappa == 3.0 else st.Features("kurtosis", kappa)
    prob = st.Problem(st.PowerLawSpectrum(a=a, d=int(d)), st.PowerLawTarget(b=b), noise=sigma2, features=feats)
    if eta is None:
        probe = st.Model("m", steps=1, schedule=1.0, batch=int(batch), capacity=capacity)
        eta = float(frac) * stability_limit(probe.speed_profile(prob.eigenvalues), int(batch), prob.kappa)
    sched = schedule(eta, int(steps)) if callable(schedule) else eta
    model = st.Model("m", steps=int(steps), schedule=sched, batch=int(batch), capacity=capacity)
    return st.Scenario(prob, (model,), output=st.Output(points=points))


# ---------------------------------------------------------------------------- stability
def stability_criterion(constant: float = 2.0) -> Inequality:
    """The constant-step stability criterion for Gaussian latents, ``B = 1``, ``s = lambda``.

    Source: ``docs/theory.md`` §5, "Special cases": for ``B = 1``, ``kappa = 3`` (``q = 2``)
    the exact conditions reduce to ``eta lambda_1 < 1`` and
    ``sum_i eta lambda_i / (2 (1 - eta lambda_i)) < 1``. Claim: wherever the criterion holds,
    the step is below the exact stability limit of the general routine
    (``stability.stability_limit``: the secular equation, conditions 1-3 of §5), i.e.
    ``eta / stability_limit < 1``, a scale-free ratio that is 1 on the limit. ``constant`` replaces the 2 of the criterion:
    with ``constant = 2.1`` (5% too large) the claim is false, the planted bug of
    ``benchmarks/bench_claims.py``. Domain: ``eta`` in ``[1e-3, 2]`` (log), ``a`` in
    ``[1.1, 3]``, ``d`` in ``[2, 2000]`` (log, integer).
    """
    c = float(constant)
    return Inequality(
        name="stability_criterion" if c == 2.0 else f"stability_criterion_c{c:g}",
        scenario={"problem": {"spectrum": {"kind": "powerlaw", "a": 1.5, "d": 100},
                              "target": {"kind": "powerlaw", "b": 2.0}},
                  "models": [{"name": "m", "steps": 1, "lr": 0.1}]},
        model="m", lhs="eta", rhs="stability_limit", op="<",
        where=f"eta*lam1 < 1 and modesum(eta*s/({c!r}*(1 - eta*s))) < 1",
        domain={"eta": Param(1e-3, 2.0, log=True), "a": Param(1.1, 3.0), "d": Param(2, 2000, log=True, integer=True)},
        source="docs/theory.md §5 (special cases: B = 1, kappa = 3)",
        description="the criterion implies stability" + ("" if c == 2.0 else f" (constant {c:g}: planted bug)"))


def stability_criterion_necessary() -> Inequality:
    """The converse of :func:`stability_criterion`: where ``eta lambda_1 < 1`` and the sum
    ``sum_i eta lambda_i / (2 (1 - eta lambda_i))`` is at least 1, the map is not stable
    (spectral radius ``>= 1``). Source: ``docs/theory.md`` §5 (the criterion is an "if and only if")."""
    base = stability_criterion()
    return Inequality(name="stability_criterion_necessary", scenario=base.scenario, model="m",
                      lhs="map_radius", rhs=1.0, op=">=",
                      where="eta*lam1 < 1 and modesum(eta*s/(2*(1 - eta*s))) >= 1",
                      domain=base.domain, source=base.source, description="the criterion is necessary")


# ---------------------------------------------------------------------------- floor and rates
def risk_floor_limit() -> Limit:
    """The constant-step risk floor: ``E(T) -> (K sigma2 + f_inf)/(1 - K)`` as ``T -> inf``,
    ``K = sum_i x_i/(B (2 - q x_i))`` (``f_inf = 0`` at full capacity; capacity ``k`` adds the
    missed target mass ``sum_{i>k} theta_i^2``).

    Source: ``docs/theory.md`` §6, "Risk floor" (final-value theorem of the renewal
    equation); ``analysis.asymptotics.risk_floor``. Domain: power laws with ``d <= 40`` modes
    (so that ``T = 10^8`` steps converge to double precision: the slowest mode decays like
    ``exp(-2 eta lambda_d T)``), step ``frac`` in ``[0.05, 0.8]`` of the stability limit, batch
    1-8, kurtosis 2-5 (where every per-mode factor ``a_i > 0``, so the renewal solver, whose cost
    does not grow with ``T``, applies: docs/solvers/renewal.md), noise ``1e-3..1``, capacity ``k <= d``. The limit is checked along
    ``T = 10^6, 10^7, 10^8`` (the renewal solver: cost independent of ``T``) to relative 1e-6.
    """
    def scenario(**p: Any):
        return powerlaw_scenario(a=p["a"], b=p["b"], d=p["d"], frac=p["frac"], steps=int(p.get("T", 10**8)),
                                 batch=p["B"], kappa=p["kappa"], sigma2=p["sigma2"],
                                 capacity=min(int(p["k"]), int(p["d"])), points=5)

    return Limit(name="risk_floor", scenario=scenario, model="m", value="excess_risk", limit="risk_floor",
                 method="renewal",
                 param="T", values=(10**6, 10**7, 10**8), rtol=1e-6,
                 domain={"a": Param(1.2, 2.5), "b": Param(1.5, 3.0), "d": Param(2, 40, integer=True),
                         "frac": Param(0.05, 0.8), "B": Param(1, 8, integer=True),
                         "kappa": Param(2.0, 5.0), "sigma2": Param(1e-3, 1.0, log=True),
                         "k": Param(1, 40, integer=True)},
                 source="docs/theory.md §6 (risk floor, final-value theorem)")


def _bias_rate(name: str, where: str, doc_regime: str) -> Rate:
    return Rate(name=name,
                scenario=lambda a, b: powerlaw_scenario(a=a, b=b, d=4000, eta=0.3, steps=5000),
                model="m", quantity="excess_risk", expected="-min((b - 1)/a, 2 - 1/a)",
                window=(350, 5000), band=0.05, points=25, where=where,
                domain={"a": Param(1.5, 2.5), "b": Param(2.0, 8.0)},
                source="docs/theory.md §7; docs/corrections.md §2", description=doc_regime)


def bias_rate() -> Rate:
    """The power-law bias rate, forcing-dominated regime:
    ``E_bias(t) ~ t^-(b-1)/a`` for ``b <= 2a`` (noise 0, constant step, ``s = lambda``).

    Source: ``docs/theory.md`` §7; ``analysis.asymptotics.bias_rate_exponent``
    (``-min((b-1)/a, 2 - 1/a)``). Checked as in ``tests/test_rates.py``: a log-log fit over
    ``t`` in ``[350, 5000]`` at ``eta = 0.3``, ``d = 4000``, band 0.05, for ``a`` in
    ``[1.5, 2.5]`` and ``2 <= b <= 2a - 0.5``. Near the crossover ``b = 2a`` the two power laws
    of the renewal solution are of the same order and this window is not yet asymptotic: the
    search found (and certified) slope -1.486 against -1.428 at ``a = 1.75, b = 4.22``, so
    the regimes are checked apart (:func:`bias_rate_sgd_noise`).
    """
    return _bias_rate("bias_rate", "b <= 2*a - 0.5", "forcing-dominated regime b <= 2a - 0.5")


def bias_rate_sgd_noise() -> Rate:
    """The power-law bias rate in the SGD-noise regime: ``E_bias(t) ~ t^-(2 - 1/a)`` for
    ``b > 2a``, even at noise 0 (the multiplicative SGD noise's kernel term dominates).

    Source: ``docs/corrections.md`` §2 (this project's correction of the textbook rate);
    ``docs/theory.md`` §7. Same fit as :func:`bias_rate`, for ``b >= 2a + 2`` (``b <= 8``):
    closer to the crossover the window ``[350, 5000]`` is pre-asymptotic (measured deviation
    up to 0.095 at ``b = 2a + 0.5``, 0.05 at ``b = 2a + 1.5``, ``a = 2.5``).
    """
    return _bias_rate("bias_rate_sgd_noise", "b >= 2*a + 2", "SGD-noise regime b >= 2a + 2")


def textbook_bias_rate() -> Rate:
    """FALSE (kept to show a failure): the textbook bias rate ``t^-(b-1)/a`` for every ``b``.

    It is the rate of gradient flow without SGD noise; for ``b > 2a`` one-pass SGD's
    multiplicative noise makes the bias decay only like ``t^-(2 - 1/a)``
    (``docs/corrections.md`` §2). The search finds the counterexample at large ``b`` and the
    certificate encloses the fitted slope in interval arithmetic, away from ``-(b-1)/a``.
    Small problem (``d = 200``, 1500 steps, window ``[150, 1500]``) so that certification
    takes about a second.
    """
    return Rate(name="textbook_bias_rate",
                scenario=lambda a, b: powerlaw_scenario(a=a, b=b, d=200, eta=0.5, steps=1500),
                model="m", quantity="excess_risk", expected="-(b - 1)/a", window=(150, 1500), band=0.05,
                points=12, domain={"a": Param(1.5, 2.5), "b": Param(1.5, 6.0)},
                source="the gradient-flow rate; refuted for b > 2a in docs/corrections.md §2")


def variance_rate_annealed() -> Rate:
    """Variance under step decay: halving every ``N / log2 N`` steps, the variance part at the
    end of ``N`` steps decays like ``N^-(1 - 1/a)`` (the learned modes,
    ``(eta N)^(1/a)``, each carry noise ``~ sigma2 / N``).

    Source: ``docs/theory.md`` §7 ("Variance"); ``analysis.asymptotics.variance_rate_exponent_annealed``
    and ``tests/test_asymptotics.py`` (band 0.1). Slope over ``N = 10^3 .. 10^5`` (log), noise 1,
    target 0 on the variance row, ``d = 2000``, ``eta = 0.3``, ``a`` in ``[1.5, 2.5]``.
    """
    from spectral_theory.spec.schedules import StepDecay, halving_every

    def scenario(a: float, T: int = 1000, **_: Any):
        return powerlaw_scenario(a=a, b=2.0, d=2000, eta=0.3, steps=int(T), sigma2=1.0,
                                 schedule=lambda eta, n: StepDecay(eta, 0.5, halving_every(n)), points=5)

    return Rate(name="variance_rate_annealed", scenario=scenario, model="m", quantity="variance",
                expected="-(1 - 1/a)", param="T", values=(1000, 3162, 10000, 31623, 100000), band=0.1,
                domain={"a": Param(1.5, 2.5)}, source="docs/theory.md §7 (variance under annealing)")


# ---------------------------------------------------------------------------- transfer
def hard_label_distillation() -> Equality:
    """``alpha = 1`` distillation equals hard-label training: a student whose labels are all
    hard label (weight 1) has exactly the risk of the same recipe on hard labels, whatever
    its teacher. Source: ``docs/theory.md`` §3-§4 (``c = 1 - alpha = 0`` removes the parent
    from the recursion). Checked to relative ``1e-12`` (the solvers reduce the student step
    to the hard-label step at ``c = 0``)."""
    def scenario(t_lr: float, s_lr: float, cap: int, sigma2: float, t_steps: int):
        import spectral_theory as st

        prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=100), st.PowerLawTarget(b=2.0), noise=sigma2)
        return st.Distillation(prob, teacher=st.Model("T", steps=int(t_steps), schedule=t_lr),
                               student=st.Model("S", steps=300, schedule=s_lr, capacity=int(cap)), alpha=1.0)

    return Equality(name="hard_label_distillation", scenario=scenario, model="kd_student",
                    lhs=Quantity("excess_risk", model="kd_student"), rhs=Quantity("excess_risk", model="hard_student"),
                    rtol=1e-12, domain={"t_lr": Param(0.01, 0.5, log=True), "s_lr": Param(0.01, 0.5, log=True),
                                        "cap": Param(5, 100, integer=True), "sigma2": Param(0.0, 2.0),
                                        "t_steps": Param(0, 500, integer=True)},
                    source="docs/theory.md §3-§4 (alpha = 1: c = 0)")


def perfect_teacher() -> Equality:
    """A soft-label student of a perfect teacher equals noise-free training: labels
    ``z . theta`` carry no noise, so the student's risk is that of the same recipe on hard
    labels with ``sigma2 = 0``, whatever the problem's noise.

    Source: ``docs/theory.md`` §3-§4 (soft labels: ``alpha = 0``, the parent's error ``e_p = 0``).
    The teacher here is within ``2^-60`` of perfect: one step at ``x_i = 1`` (speeds 1, step 1)
    with batch ``2^60`` leaves ``M_tt,i = (sum_j theta_j^2 + (kappa - 2) theta_i^2 + sigma2)/2^60``
    (§4); its ``d = 60`` modes act on the student like label noise of variance
    ``sum_i M_tt,i < 1e-15``, which moves the student's risk by a relative ``~1e-13`` (measured
    5e-11 with batch ``2^50``, a thousand times more); the claim's tolerance is 1e-9.
    The noise-free reference is the same student with ``alpha = 1`` (its own hard labels) on
    the problem with ``sigma2 = 0``.
    """
    def scenario(a: float, b: float, sigma2: float, s_lr: float, cap: int, kappa: float):
        import spectral_theory as st

        d = 60
        feats = st.Features("kurtosis", kappa)
        prob = st.Problem(st.PowerLawSpectrum(a=a, d=d), st.PowerLawTarget(b=b), noise=sigma2, features=feats)
        teacher = st.Model("teacher", steps=1, schedule=1.0, batch=2**60, speeds=np.ones(d))
        student = st.Model("student", steps=400, schedule=s_lr, capacity=int(cap), teacher="teacher", alpha=0.0)
        return st.Scenario(prob, (teacher, student), output=st.Output(at=(0, 400)))

    return Equality(name="perfect_teacher", scenario=scenario, model="student", lhs="excess_risk",
                    rhs=Quantity("excess_risk", set={"problem.noise": 0.0, "models.student.alpha": 1.0}),
                    rtol=1e-9, domain={"a": Param(1.1, 2.5), "b": Param(1.2, 3.0), "sigma2": Param(0.01, 5.0, log=True),
                                       "s_lr": Param(0.01, 0.3, log=True), "cap": Param(5, 60, integer=True),
                                       "kappa": Param(1.0, 5.0)},
                    source="docs/theory.md §3-§4 (soft labels of a perfect teacher are noise free)")


# ---------------------------------------------------------------------------- solvers
def continuum_limit() -> Limit:
    """The continuum limit as ``d`` grows: the deterministic-equivalent ODE on ``d`` modes
    tends to the continuum solver's ``d = inf`` answer.

    Source: ``docs/solvers/continuum.md`` (the spectral measure's node sums stand for any
    number of modes, ``d = inf`` included). ``value``: ``method = "ode"`` at ``d``; ``limit``:
    ``method = "continuum"``, ``d = None``, along ``d = 10^2, 10^3, 10^4``. The error is the
    target mass beyond ``d`` and its effect, relative ``~ d^(1-b)``: measured at ``d = 10^4``,
    1.5% at ``b = 2`` (``a = 1.5``), 4.2e-4 at ``b = 2.5``, 1.2e-5 at ``b = 3``. The claim:
    relative error at most ``2e-3`` at ``d = 10^4`` for ``a`` in ``[1.5, 2.5]``, ``b`` in
    ``[2.5, 3.5]``, ``eta = frac`` of the limit (``[0.05, 0.5]``), 10^4 steps, noise 0.01.
    (Stated first for ``b`` in ``[2, 3]``, it was broken by the search at ``a = 1.5, b = 2``:
    ratio 7.6, i.e. 1.5% at ``d = 10^4``.)
    """
    def scenario(a: float, b: float, frac: float, d: int = 100):
        return powerlaw_scenario(a=a, b=b, d=int(d), frac=frac, steps=10**4, sigma2=0.01, points=5)

    return Limit(name="continuum_limit", scenario=scenario, model="m",
                 value=Quantity("excess_risk", method="ode"),
                 limit=Quantity("excess_risk", method="continuum", options={"d": None}),
                 param="d", values=(100, 1000, 10**4), rtol=2e-3,
                 domain={"a": Param(1.5, 2.5), "b": Param(2.5, 3.5), "frac": Param(0.05, 0.5)},
                 source="docs/solvers/continuum.md; docs/theory.md §6 (continuous time)")


def _ode_gap(ctx: Any) -> float:
    """``max_t |E_ode(t) - E_exact(t)|`` over the scenario's reported steps."""
    from spectral_theory import predict

    scn = ctx.scenario_for()
    ode = predict(scn, method="ode", on_unstable="ignore")
    exact = predict(scn, method="exact", on_unstable="ignore")
    return float(np.max(np.abs(ode["m"].excess_risk - exact["m"].excess_risk)))


def ode_error_bound() -> Inequality:
    """The ODE's stated first-order error bound:
    ``max_t |E_ode(t) - E_exact(t)| <= 0.5 x_max max_t E_exact(t)``, ``x_max = max eta s``.

    Source: ``docs/theory.md`` §6 ("Its error against the recursion") and
    ``docs/solvers/ode.md``. Domain: power laws (``a`` in ``[1.1, 3]``, ``b`` in ``[1.2, 4]``,
    ``d`` in ``[5, 300]``), step ``frac`` of the stability limit in ``[0.01, 0.9]``, batch 1-16,
    kurtosis 1-6, noise ``0..1``, 2000 steps, 40 log-spaced reported steps."""
    def scenario(a: float, b: float, d: int, frac: float, B: int, kappa: float, sigma2: float):
        return powerlaw_scenario(a=a, b=b, d=int(d), frac=frac, steps=2000, batch=int(B), kappa=kappa,
                                 sigma2=sigma2, points=40)

    return Inequality(name="ode_error_bound", scenario=scenario, model="m", lhs=Quantity(fn=_ode_gap),
                      rhs="0.5*x_max*max_excess_risk",
                      domain={"a": Param(1.1, 3.0), "b": Param(1.2, 4.0), "d": Param(5, 300, log=True, integer=True),
                              "frac": Param(0.01, 0.9), "B": Param(1, 16, integer=True), "kappa": Param(1.0, 6.0),
                              "sigma2": Param(0.0, 1.0)},
                      method="exact", source="docs/theory.md §6; docs/solvers/ode.md")


#: every checked statement, by name (true ones)
LIBRARY = {"stability_criterion": stability_criterion, "stability_criterion_necessary": stability_criterion_necessary,
           "risk_floor": risk_floor_limit, "bias_rate": bias_rate, "bias_rate_sgd_noise": bias_rate_sgd_noise,
           "variance_rate_annealed": variance_rate_annealed,
           "hard_label_distillation": hard_label_distillation, "perfect_teacher": perfect_teacher,
           "continuum_limit": continuum_limit, "ode_error_bound": ode_error_bound}
#: statements known to be false, kept to show what a failure looks like
FALSE = {"textbook_bias_rate": textbook_bias_rate}

