"""spectral-theory: analytic theory calculator for teacher-student knowledge
transfer under one-pass SGD in high-dimensional linear regression.

Quick start::

    import spectral_theory as st
    prob = st.Problem(st.PowerLawSpectrum(a=1.5, d=200), st.PowerLawTarget(b=2.0), noise=0.1)
    teacher = st.Model("teacher", steps=2000, schedule=0.5)
    student = st.Model("student", steps=2000, schedule=0.5, capacity=20, teacher="teacher")
    res = st.predict(st.Scenario(prob, (teacher, student)))
    res["student"].excess_risk

The specification is ``docs/theory.md``. Names are imported on first use, so that
``import spectral_theory`` (and the command line's ``--help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("METHODS", "predict", "simulate"), "api"),
    **dict.fromkeys(("InstabilityError", "SpecError"), "errors"),
    **dict.fromkeys(("CONVENTIONS", "ModelResult", "ModeProfile", "Result"), "result"),
    **dict.fromkeys(("ArraySchedule", "Constant", "Geometric", "Piecewise", "Polynomial", "Schedule",
                     "StepDecay", "WarmupDecay", "halving_every", "ArraySpectrum", "ArrayTarget",
                     "ExponentialSpectrum", "Features", "Model", "Output", "PowerLawSpectrum",
                     "PowerLawTarget", "Problem", "RandomFeatures", "Scenario", "Spectrum", "Target", "load_scenario",
                     "scenario_from_dict"), "spec"),
    **dict.fromkeys(("check_step", "stability_limit"), "stability"),
    **dict.fromkeys(("Average", "Momentum"), "spec.variants"),
    **dict.fromkeys(("Chain", "Distillation", "TransferReport", "WeakToStrong", "Tuning", "TransferMap",
                     "evaluate", "spectral_horizon", "transfer_map", "tune_alpha", "tune_lr"), "transfer"),
    **dict.fromkeys(("sweep", "validate_sweep", "load_sweep", "read_results"), "sweeps"),
}
_MODULES = ("conventions", "analysis", "solvers", "spec", "symbolic", "transfer", "stability", "sweeps")

__all__ = sorted([*_EXPORTS, "conventions"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
