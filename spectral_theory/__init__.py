"""spectral-theory: analytic theory calculator for teacher-student knowledge
transfer under one-pass SGD in high-dimensional linear regression.

Quick start::

    import spectral_theory as st
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=200), st.PowerLawTarget(b=2.0), noise=0.1)
    teacher = st.Model("teacher", steps=2000, schedule=0.5)
    student = st.Model("student", steps=2000, schedule=0.5, capacity=20, teacher="teacher")
    res = st.predict(st.Scenario(prob, (teacher, student)))
    res["student"].excess_risk
"""

from . import conventions
from .api import METHODS, predict, simulate
from .errors import InstabilityError, SpecError
from .io import load_scenario, scenario_from_dict
from .result import CONVENTIONS, ModelResult, ModeProfile, Result
from .schedules import (
    ArraySchedule,
    Constant,
    Geometric,
    Piecewise,
    Polynomial,
    Schedule,
    StepDecay,
    WarmupDecay,
    halving_every,
)
from .spec import (
    ArraySpectrum,
    ArrayTarget,
    ExponentialSpectrum,
    Features,
    Model,
    Output,
    PowerLawSpectrum,
    PowerLawTarget,
    Problem,
    Scenario,
    Spectrum,
    Target,
)
from .stability import check_step, stability_limit
from .transfer import (
    Chain,
    Distillation,
    TransferReport,
    WeakToStrong,
    evaluate,
    spectral_horizon,
    transfer_map,
    tune_alpha,
    tune_lr,
)

__version__ = "0.1.0"

__all__ = [
    "Chain", "Distillation", "TransferReport", "WeakToStrong", "evaluate", "spectral_horizon",
    "transfer_map", "tune_alpha", "tune_lr",
    "ArraySchedule", "ArraySpectrum", "ArrayTarget", "CONVENTIONS", "Constant",
    "ExponentialSpectrum", "Features", "Geometric", "InstabilityError", "METHODS", "Model",
    "ModeProfile", "ModelResult", "Output", "Piecewise", "Polynomial", "PowerLawSpectrum",
    "PowerLawTarget", "Problem", "Result", "Scenario", "Schedule", "SpecError", "Spectrum",
    "StepDecay", "Target", "WarmupDecay", "check_step", "conventions", "halving_every",
    "load_scenario", "predict", "scenario_from_dict", "simulate", "stability_limit",
]
