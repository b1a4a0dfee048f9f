"""Worked examples for ``spectral-theory demo [NAME]``, theory only (no sampling).

``basic`` (the default): a distillation and a weak-to-strong comparison on one problem
(``lambda_i = i^-1.5``, ``theta_i^2 = i^-2``, ``d = 400``, label noise ``sigma2 = 1``,
Gaussian latents), with their KD gain and PGR:

* distillation: a full-capacity teacher trained long with a small step labels fresh inputs
  for a capacity-100 student (soft labels); the baseline is the same student on hard labels;
* weak-to-strong: a capacity-50 teacher trained briefly with a large step (its error is
  mostly SGD noise) labels fresh inputs for a full-capacity student trained with a small
  step; the ceiling is that student on hard labels.

``horizon``, ``denoising`` and ``hurts`` each demonstrate one transfer mechanism
(:func:`demonstration_text`).
"""

from __future__ import annotations

from .spec import Model, Output, PowerLawSpectrum, PowerLawTarget, Problem

__all__ = ["DEMOS", "basic_specs", "demo_text", "demonstration_text", "horizon_spec", "denoising_spec",
           "hurts_spec"]


def basic_specs():
    """The distillation and weak-to-strong comparisons of the default demo."""
    from .transfer import Distillation, WeakToStrong

    prob = Problem(PowerLawSpectrum(a=1.5, d=400), PowerLawTarget(b=2.0), noise=1.0)
    out = Output(at=(0, 10, 100, 1000, 2000, 20000))
    kd = Distillation(prob, teacher=Model("teacher", steps=20000, schedule=0.05, batch=4),
                      student=Model("student", steps=2000, schedule=0.2, capacity=100), alpha=0.0, output=out)
    w2s = WeakToStrong(prob, weak=Model("weak", steps=1000, schedule=0.35, capacity=50),
                       strong=Model("strong", steps=1000, schedule=0.02), alpha=0.0, output=out)
    return kd, w2s


def demo_text() -> str:
    """The default demo: both comparisons' tables and their headline metrics."""
    from .transfer import evaluate

    kd, w2s = (evaluate(spec) for spec in basic_specs())
    m, w = kd.metrics, w2s.metrics
    lines = ["spectral-theory demo: lambda_i = i^-1.5, theta_i^2 = i^-2, d = 400, noise 1.0, gaussian", "",
             kd.table().rstrip(), "",
             f"distillation: E_kd = {m['kd_risk']:.5g}, E_hard = {m['hard_risk']:.5g}, "
             f"KD gain E_hard/E_kd = {m['kd_gain']:.4g} (difference {m['kd_gain_difference']:.4g})", "",
             w2s.table().rstrip(), "",
             f"weak-to-strong: E_weak = {w['weak_risk']:.5g}, E_w2s = {w['w2s_risk']:.5g}, "
             f"E_ceiling = {w['ceiling_risk']:.5g}, PGR = {w['pgr']:.4g}",
             f"(excess risk sum_i (phi_i - theta_i)^2, not halved; theory by the {kd.method!r} method, "
             "no sampling)"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------
# demonstrations of the transfer mechanisms (``spectral-theory demo NAME``)


def _modes_excerpt(report, names: list[str], rows: list[int]) -> str:
    """Per-mode normalised errors M_i / theta_i^2 of some models at some mode indices (1-based)."""
    head = "mode  " + "  ".join(f"{n:>14}" for n in names)
    out = ["normalised error M_i / theta_i^2 at the end of training (<= 1/2: learned):", head]
    for i in rows:
        out.append(f"{i:>4}  " + "  ".join(f"{report.models[n].normalised[i - 1]:>14.4g}" for n in names))
    return "\n".join(out)


def horizon_spec():
    """(i) Horizon expansion: with noisy labels the student's own data only teach it the first
    few modes; a well-trained teacher's soft labels carry no label noise, so the distilled
    student learns modes far past the hard-label student's horizon."""
    from .transfer import Distillation

    prob = Problem(PowerLawSpectrum(a=1.5, d=400), PowerLawTarget(b=2.0), noise=1.0)
    return Distillation(prob, teacher=Model("teacher", steps=20000, schedule=0.05, batch=4),
                        student=Model("student", steps=2000, schedule=0.3, capacity=200), alpha=0.0,
                        output=Output(at=(0, 100, 2000, 20000)))


def denoising_spec():
    """(ii) Spectral denoising: a weak teacher (capacity 50, large step, short budget) whose
    error is mostly SGD noise on the modes it learned; the strong student, trained on its
    labels with a small step, copies only part of that noise and beats it (PGR > 0)."""
    from .transfer import WeakToStrong

    prob = Problem(PowerLawSpectrum(a=1.5, d=400), PowerLawTarget(b=2.0), noise=1.0)
    return WeakToStrong(prob, weak=Model("weak", steps=1000, schedule=0.35, capacity=50),
                        strong=Model("strong", steps=1000, schedule=0.02), alpha=0.0,
                        output=Output(at=(0, 10, 100, 1000)))


def hurts_spec():
    """(iii) Transfer that hurts: an under-trained teacher (100 steps) has learned only its
    first modes; with clean labels (noise 0.01) the student on hard labels learns far more
    modes than the teacher knows, while the distilled student copies the teacher's ignorance:
    KD gain < 1."""
    from .transfer import Distillation

    prob = Problem(PowerLawSpectrum(a=1.5, d=400), PowerLawTarget(b=2.0), noise=0.01)
    return Distillation(prob, teacher=Model("teacher", steps=100, schedule=0.3),
                        student=Model("student", steps=2000, schedule=0.3), alpha=0.0,
                        output=Output(at=(0, 100, 2000)))


def demonstration_text(name: str) -> str:
    """One of the :data:`DEMOS` mechanisms: its comparison's table and the per-mode evidence."""
    from .transfer import evaluate

    specs = {"horizon": horizon_spec, "denoising": denoising_spec, "hurts": hurts_spec}
    spec = specs[name]()
    rep = evaluate(spec)
    m = rep.metrics
    lines = [f"spectral-theory demo {name}: " + " ".join(specs[name].__doc__.split()), "",
             rep.table().rstrip(), ""]
    if name == "horizon":
        h = [1, 2, 3, 5, 10, 20, 40, 80, 120]
        lines.append(_modes_excerpt(rep, ["teacher", "kd_student", "hard_student"], h))
        lines.append(f"\nhorizon expansion = {m['kd_horizon']} - {m['hard_horizon']} = {m['horizon_expansion']} "
                     f"modes; KD gain E_hard/E_kd = {m['kd_gain']:.4g}")
    elif name == "denoising":
        tv, sv = rep.profiles["teacher_variance"], rep.profiles["student_variance"]
        lines.append("per-mode variance part (label-noise driven error) at the end of training:")
        lines.append(f"{'mode':>4}  {'weak teacher':>14}  {'w2s student':>14}  {'teacher bias':>14}")
        for i in [1, 2, 5, 10, 20, 30, 40, 50]:
            lines.append(f"{i:>4}  {tv[i - 1]:>14.4g}  {sv[i - 1]:>14.4g}  {rep.profiles['teacher_bias'][i - 1]:>14.4g}")
        lines.append(f"\nthe teacher's error is mostly noise on {m['teacher_noisy_modes']} modes; the student's variance "
                     f"is below the teacher's on {m['denoised_modes']} of them "
                     f"({m['student_variance_on_noisy_modes']:.4g} vs {m['teacher_variance_on_noisy_modes']:.4g}); "
                     f"PGR = {m['pgr']:.4g} (at the oracle stopping steps: {m['pgr_oracle']:.4g})")
    else:
        h = [1, 2, 5, 10, 16, 20, 40, 80, 130]
        lines.append(_modes_excerpt(rep, ["teacher", "kd_student", "hard_student"], h))
        lines.append(f"\nKD gain = {m['kd_gain']:.4g} < 1: past the teacher's horizon ({m['teacher_horizon']}) the "
                     f"distilled student's normalised error stays near the teacher's (it learns the teacher's "
                     f"function, zero there), while the hard-label student's horizon is {m['hard_horizon']}")
    return "\n".join(lines) + "\n"


#: demo names and what each shows
DEMOS = {
    "basic": "a distillation and a weak-to-strong comparison with their KD gain and PGR",
    "horizon": "spectral horizon expansion: distillation teaches modes the student's noisy labels cannot",
    "denoising": "spectral denoising: a strong student filters a weak teacher's SGD noise",
    "hurts": "transfer that hurts: an under-trained teacher caps the distilled student",
}
