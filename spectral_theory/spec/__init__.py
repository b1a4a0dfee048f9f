"""Specification: frozen, self-validating objects for the problem, the models of a chain,
their step-size schedules and the reported steps, and the scenario-file reader
(``docs/theory.md`` §1-3). Every constructor raises :class:`~spectral_theory.errors.SpecError`
naming the field, the value and what is allowed."""

from .files import (
    load_scenario,
    parse_schedule,
    parse_transfer,
    read_scenario_file,
    read_sections,
    scenario_from_dict,
)
from .problem import (
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
    log_steps,
)
from .schedules import (
    SCHEDULE_KINDS,
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
from .sketch import RandomFeatures

__all__ = [
    "ArraySchedule", "ArraySpectrum", "ArrayTarget", "Constant", "ExponentialSpectrum", "Features",
    "Geometric", "Model", "Output", "Piecewise", "Polynomial", "PowerLawSpectrum", "PowerLawTarget",
    "Problem", "RandomFeatures", "SCHEDULE_KINDS", "Scenario", "Schedule", "Spectrum", "StepDecay", "Target",
    "WarmupDecay", "halving_every", "load_scenario", "log_steps", "parse_schedule", "parse_transfer",
    "read_scenario_file", "read_sections", "scenario_from_dict",
]
