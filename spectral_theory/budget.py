"""Memory (and time) a run will need, estimated before anything is allocated, and the budget
it must fit in (the command line's ``--max-memory``; ``docs/design.md``).

The estimates are upper bounds calibrated on the solvers' peak allocations (numpy arrays
counted by ``tracemalloc``; tests/test_cli.py checks them against measured peaks): they exist
to refuse what cannot fit (``d = 10^9`` modes with a method that holds d-sized arrays, a
chain of thousands of generations, ``points = 10^12`` reported steps, a per-step schedule of
``10^10`` steps) with a message naming the size and a way out, instead of a ``MemoryError``
after minutes, or the machine swapping. Only sizes are read from the scenario: nothing here
materialises eigenvalues, targets or step sizes.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

__all__ = ["BudgetError", "Estimate", "available_memory", "default_budget", "parse_size", "format_size",
           "theory_estimate", "simulation_estimate", "stability_estimate", "transfer_estimate", "check_budget",
           "exact_seconds", "variant_step_factor", "CONTINUUM_NODES", "ECHO_LIMIT"]

#: an upper bound on the quadrature nodes of the continuum method (about 150-270 per
#: capacity break in practice): its arrays have this many entries whatever d is
CONTINUUM_NODES = 4000
#: arrays longer than this in the JSON echo of a scenario are summarised unless ``--modes``
ECHO_LIMIT = 1000
#: bytes per constant phase held as a Python ``(lr, length)`` tuple in a list
_PHASE_BYTES = 120
#: float64 arrays of the mode dimension that every theory solver may hold at once besides the
#: chain state (calibrated: exact 24-52, renewal 40-88, ode 52-89 for 1-4 models)
_WORK_VECTORS = 48
_WORK_VECTORS_PER_MODEL = 16
#: extra mode-dimension arrays of an averaged or momentum model (docs/theory.md §10): its
#: moments and temporaries (~40) or the 3x3 stability blocks and their solves (~60) for the
#: exact engine; for the renewal fast path the per-mode polynomials of the transforms (~100),
#: the phase's start and end states, the eigenvalue and power arrays (measured peaks 110-260
#: with the chain state and working arrays, tests/test_variant_renewal.py)
_VARIANT_VECTORS = 200
#: bytes per step of an every-step curve (renewal: ~300 measured; exact: 16)
_EVERY_STEP_BYTES = 512
#: mode-dimension arrays per reported step recorded with ``record_modes`` (renewal ~6)
_RECORD_VECTORS = 8
#: bytes every run allocates whatever its size (contour nodes, quadrature tables, buffers)
_FIXED_BYTES = 32 * 2**20


class BudgetError(MemoryError):
    """A run whose estimated memory is over the budget (a :class:`MemoryError`, raised before
    anything is allocated); the message names the size, the budget and what would fit."""


class Estimate:
    """Bytes a run needs, with the parts that make it up (``parts``: description -> bytes),
    so that a refusal can name the largest."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.parts: dict[str, float] = {}

    def add(self, part: str, nbytes: float) -> None:
        self.parts[part] = self.parts.get(part, 0.0) + float(nbytes)

    @property
    def total(self) -> float:
        return float(sum(self.parts.values()))

    def largest(self) -> str:
        return max(self.parts, key=self.parts.get) if self.parts else ""

    def __add__(self, other: Estimate) -> Estimate:
        out = Estimate(self.what)
        for e in (self, other):
            for k, v in e.parts.items():
                out.add(k, v)
        return out


# ---------------------------------------------------------------------------- the budget
def available_memory() -> int | None:
    """Bytes the system can still give this process: ``MemAvailable`` of ``/proc/meminfo``
    (else ``os.sysconf``'s available pages), capped by a cgroup v2 memory limit; ``None`` when
    the platform says nothing."""
    avail: int | None = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None:
        try:
            avail = int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            avail = None
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as fh:
            limit = fh.read().strip()
        if limit.isdigit():
            with open("/sys/fs/cgroup/memory.current", encoding="ascii") as fh:
                room = int(limit) - int(fh.read().strip())
            avail = room if avail is None else min(avail, room)
    except (OSError, ValueError):
        pass
    return None if avail is None or avail <= 0 else int(avail)


def default_budget() -> int | None:
    """Half of :func:`available_memory` (``None``: unknown, no limit)."""
    avail = available_memory()
    return None if avail is None else avail // 2


_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6, "mib": 2**20,
          "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12, "tib": 2**40}


def parse_size(text: str) -> int | None:
    """``"4GiB"``, ``"512M"`` (binary: K, M, G, T), ``"2GB"`` (decimal), ``"1e9"`` (bytes) ->
    bytes; ``"none"``/``"inf"``: no limit (``None``). A :class:`ValueError` otherwise."""
    t = str(text).strip().lower()
    if t in ("none", "inf", "unlimited"):
        return None
    m = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z]*)", t)
    if not m or m.group(2) not in _UNITS:
        raise ValueError(text)
    value = float(m.group(1)) * _UNITS[m.group(2)]
    if not math.isfinite(value) or value < 1:
        raise ValueError(text)
    return int(value)


def format_size(n: float) -> str:
    """``n`` bytes for a message: ``7.45 GiB``, ``512 MiB``, ``3.2e+03 TiB``."""
    n = float(n)
    for unit, k in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= k:
            return f"{n / k:.3g} {unit}"
    return f"{n:.0f} bytes"


def check_budget(est: Estimate, budget: int | None, *, budget_source: str, hint: str = "") -> None:
    """A :class:`BudgetError` when ``est`` is over ``budget`` (``None``: no limit)."""
    if budget is None or est.total <= budget:
        return
    msg = (f"{est.what} needs about {format_size(est.total)} of memory (mostly {est.largest()}), "
           f"over the budget of {format_size(budget)} ({budget_source})")
    if hint:
        msg += f"; {hint}"
    raise BudgetError(msg)


# ---------------------------------------------------------------------------- sizes of a scenario
def _cap(n: Any) -> int:
    """A size as an int no larger than 10^18 (far beyond any budget; keeps the float estimates
    finite for sizes such as ``d = 10**400``)."""
    return min(int(n), 10**18)


def _schedule_kind(model: Any) -> str:
    """``"constant"``, ``"phases"`` (step decay, piecewise: phases without per-step arrays) or
    ``"per-step"`` (every other schedule: its rates are an array of ``steps`` numbers)."""
    from .spec.schedules import Constant, Piecewise, StepDecay

    sched = model.schedule
    if isinstance(sched, Constant):
        return "constant"
    if isinstance(sched, (StepDecay, Piecewise)):
        return "phases"
    return "per-step"


def _phase_count(model: Any) -> int:
    """Constant phases of a model's schedule, counted without building them (at most ``steps``)."""
    from .spec.schedules import Piecewise, StepDecay

    T = _cap(model.steps)
    kind = _schedule_kind(model)
    if T == 0:
        return 0
    if kind == "constant":
        return 1
    sched = model.schedule
    if isinstance(sched, StepDecay):
        return -(-T // _cap(sched.every))
    if isinstance(sched, Piecewise):
        return min(len(sched.lrs), T)
    return T


def _schedule_bytes(est: Estimate, models: Any, *, per_step_arrays: bool) -> None:
    """The schedules' phases (the stability policy builds them for every run) and, with
    ``per_step_arrays`` (Monte Carlo) or per-step schedules, their arrays of step sizes."""
    for m in models:
        T = _cap(m.steps)
        est.add("the schedules' constant phases", _PHASE_BYTES * _phase_count(m))
        if per_step_arrays or _schedule_kind(m) == "per-step":
            est.add("per-step step sizes", 5 * 8 * T)


def _reported(scenario: Any, at: Any) -> list[int]:
    """Reported steps per model, counted without building them (``points`` makes a
    log-spaced grid of that many numbers before rounding)."""
    out = scenario.output
    if at is not None:
        return [len(at) for _ in scenario.models]
    if out.at is not None:
        return [len(out.at) for _ in scenario.models]
    return [_cap(out.points) for _ in scenario.models]


def _modes(scenario: Any, method: str) -> tuple[int, str]:
    """Entries of a per-mode array for ``method`` and how to say it."""
    if method == "continuum":
        return CONTINUUM_NODES, "continuum nodes"
    d = _cap(scenario.problem.d)
    return d, f"d = {scenario.problem.d} modes, {format_size(8.0 * d)} per array"


def theory_estimate(scenario: Any, method: str = "auto", *, record_modes: bool = False,
                    every_step: bool = False, at: Any = None,
                    what: str = "this run") -> Estimate:
    """Bytes :func:`spectral_theory.predict` needs for ``scenario`` by ``method`` (``"auto"``:
    exact or renewal, both d-sized): the chain state (``G (G + 1)`` rows of pair moments and
    ``G`` first moments per mode entry), the solver's working arrays, per-mode curves
    (``record_modes``), every-step curves (``every_step``), reported steps and schedules."""
    est = Estimate(what)
    est.add("fixed buffers", _FIXED_BYTES)
    n, label = _modes(scenario, method)
    G = len(scenario.models)
    est.add(f"the chain state of {G} model(s) on {label}", 8.0 * n * (G * (G + 1) + G))
    est.add(f"working arrays on {label}", 8.0 * n * (_WORK_VECTORS + _WORK_VECTORS_PER_MODEL * G))
    variants = sum(1 for m in scenario.models if getattr(m, "is_variant", False))
    if variants:  # docs/theory.md §10: two-state and averaged moments, momentum stability blocks
        est.add(f"SGD variants' moments and stability blocks on {label}",
                8.0 * n * (_VARIANT_VECTORS + 6 * G))
    reported = _reported(scenario, at)
    est.add("reported steps", 3 * 8.0 * sum(reported))
    if record_modes:
        est.add(f"per-mode curves (--record-modes) on {label}",
                8.0 * n * _RECORD_VECTORS * sum(min(r, _cap(m.steps) + 1) for r, m in zip(reported, scenario.models,
                                                                                          strict=True)))
    if every_step:
        est.add("every-step curves (--every-step)",
                float(_EVERY_STEP_BYTES) * sum(_cap(m.steps) + 1 for m in scenario.models))
    _schedule_bytes(est, scenario.models, per_step_arrays=False)
    return est


def simulation_estimate(scenario: Any, reps: int, *, at: Any = None, what: str = "this simulation") -> Estimate:
    """Bytes :func:`spectral_theory.simulate` needs: a block of replicates' latent draws and
    weights (the simulator's block size), per-replicate risks at the reported steps, the kept
    per-replicate per-mode errors, the step-size arrays."""
    from . import montecarlo

    est = Estimate(what)
    est.add("fixed buffers", _FIXED_BYTES)
    d = _cap(scenario.problem.d)
    G = len(scenario.models)
    reps = max(_cap(reps), 2)
    B = max(_cap(m.batch) for m in scenario.models)
    block_elements = getattr(montecarlo, "_BLOCK_ELEMENTS", 2_000_000)
    block = max(1, min(reps, block_elements // max(1, B * d)))
    est.add(f"a block of {block} replicate(s) on d = {scenario.problem.d} modes (batch {B})", 8.0 * (8 + 2 * G) * block * B * d)
    est.add(f"per-mode sums on d = {scenario.problem.d} modes", 8.0 * 6 * G * d)
    kept = min(reps * d * G, getattr(montecarlo, "MAX_REPLICATE_MODES", 0))
    est.add("per-replicate per-mode errors", 8.0 * kept)
    est.add(f"per-replicate risks ({reps} replicates)",
            8.0 * reps * (3 * sum(_reported(scenario, at)) + G * G))
    _schedule_bytes(est, scenario.models, per_step_arrays=True)
    return est


def stability_estimate(scenario: Any, *, what: str = "the stability check") -> Estimate:
    """Bytes of the stability check of every model (``spectral-theory stability``): the
    eigenvalues, each model's speeds and the secular equation's work arrays, and the phases."""
    est = Estimate(what)
    est.add("fixed buffers", _FIXED_BYTES)
    d, label = _modes(scenario, "exact")
    est.add(f"per-mode speeds on {label}", 8.0 * d * (8 + 2 * len(scenario.models)))
    _schedule_bytes(est, scenario.models, per_step_arrays=False)
    return est


def transfer_estimate(spec: Any, method: str = "auto", *, simulate: bool = False, reps: int = 1000,
                      evaluations: int = 1, what: str = "this comparison") -> Estimate:
    """Bytes of :func:`spectral_theory.evaluate` (``evaluations`` of them sharing one prefix
    cache, as tuning and maps do): each lineage's run, states kept by the cache."""
    from .transfer.oracle import EXHAUSTIVE_STEPS

    est = Estimate(what)
    for scn in spec.lineages().values():
        if simulate:
            one = simulation_estimate(scn, reps, what=what)
        else:
            every = max(m.steps for m in scn.models) <= EXHAUSTIVE_STEPS or method == "exact"
            one = theory_estimate(scn, method, every_step=every, what=what)
        for k, v in one.parts.items():
            est.add(k, v * (evaluations if "chain state" in k else 1))
    return est


#: cost of one exact-engine step of an SGD variant over plain SGD's (docs/variants.md, "Cost";
#: ``benchmarks/bench_variants.py`` at d = 10^5: tail average 4.8x, heavy-ball 5.3x, Nesterov
#: 7.9x, accelerated SGD 18x, heavy-ball with a tail average 17x)
VARIANT_STEP_FACTORS = {"average": 4.8, "heavy_ball": 5.3, "nesterov": 7.9, "accelerated": 18.0,
                        "general": 18.0}
#: what an average adds to a momentum model's step, in plain steps (17x - 5.3x, measured)
AVERAGE_WITH_MOMENTUM = 12.0


def variant_step_factor(model: Any) -> float:
    """How many plain-SGD steps one exact-engine step of ``model`` costs (1 for plain SGD and for
    momentum that reduces to it, :attr:`Momentum.is_plain`; :data:`VARIANT_STEP_FACTORS`)."""
    mom = getattr(model, "momentum", None)
    avg = getattr(model, "average", None) is not None
    if mom is None or mom.is_plain:
        return VARIANT_STEP_FACTORS["average"] if avg else 1.0
    return VARIANT_STEP_FACTORS[mom.kind] + (AVERAGE_WITH_MOMENTUM if avg else 0.0)


def exact_seconds(scenario: Any) -> float:
    """Rough wall time of the exact (step-by-step) solver: about 20 us per step plus 30 ns per
    mode and model trained so far (measured on one core), times :func:`variant_step_factor` for
    a model with averaging or momentum."""
    d = _cap(scenario.problem.d)
    return sum(_cap(m.steps) * (2e-5 + 3e-8 * d * (g + 1)) * variant_step_factor(m)
               for g, m in enumerate(scenario.models))
