"""The ``spectral-theory demo`` example: a distillation and a weak-to-strong run.

Problem: ``lambda_i = i^-1.5``, ``theta_i^2 = i^-2``, ``d = 400``, label noise
``sigma2 = 1``, Gaussian latents.

* Distillation: a full-capacity teacher trained long with a small step labels
  fresh inputs for a capacity-100 student (soft labels); the same student on
  hard labels with the same recipe is the baseline. KD gain = E_hard / E_kd.
* Weak-to-strong: a capacity-50 teacher trained briefly with a large step
  (its error is dominated by SGD noise) labels fresh inputs for a
  full-capacity student trained with a small step; the ceiling is that
  student on hard labels. PGR = (E_weak - E_w2s) / (E_weak - E_ceiling).
"""

from __future__ import annotations

from .api import predict
from .spec import Features, Model, Output, PowerLawSpectrum, PowerLawTarget, Problem, Scenario

__all__ = ["demo_scenario", "demo_text"]


def demo_scenario() -> Scenario:
    prob = Problem(PowerLawSpectrum(a=1.5, d=400), PowerLawTarget(b=2.0), noise=1.0,
                   features=Features("gaussian"))
    models = (
        Model("teacher", steps=20000, schedule=0.05, batch=4),
        Model("kd_student", steps=2000, schedule=0.2, capacity=100, teacher="teacher", alpha=0.0),
        Model("hard_student", steps=2000, schedule=0.2, capacity=100),
        Model("weak_teacher", steps=1000, schedule=0.35, capacity=50),
        Model("w2s_student", steps=1000, schedule=0.02, teacher="weak_teacher", alpha=0.0),
        Model("strong_ceiling", steps=1000, schedule=0.02),
    )
    return Scenario(prob, models, output=Output(at=(0, 10, 100, 1000, 2000, 20000)), name="demo")


def demo_text() -> str:
    sc = demo_scenario()
    res = predict(sc)
    lines = ["spectral-theory demo: lambda_i = i^-1.5, theta_i^2 = i^-2, d = 400, noise 1.0, gaussian",
             "", res.table().rstrip(), ""]
    f = {name: m.final for name, m in res.models.items()}
    gain = f["hard_student"] / f["kd_student"]
    lines.append(f"distillation: E_kd = {f['kd_student']:.5g}, E_hard = {f['hard_student']:.5g}, "
                 f"KD gain E_hard/E_kd = {gain:.4g} (difference {f['hard_student'] - f['kd_student']:.4g})")
    pgr = (f["weak_teacher"] - f["w2s_student"]) / (f["weak_teacher"] - f["strong_ceiling"])
    lines.append(f"weak-to-strong: E_weak = {f['weak_teacher']:.5g}, E_w2s = {f['w2s_student']:.5g}, "
                 f"E_ceiling = {f['strong_ceiling']:.5g}, PGR = {pgr:.4g}")
    lines.append(f"(excess risk sum_i (phi_i - theta_i)^2, not halved; theory by the {res.method!r} "
                 "method, no sampling)")
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
