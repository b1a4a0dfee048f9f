"""The three comparisons (``docs/theory.md`` §8) as frozen specs: each knows which models
it needs and returns them as independent chains ("lineages"), so that a shared
:class:`~spectral_theory.solvers.PrefixCache` never trains a lineage prefix twice.

* :class:`Distillation`: a teacher (hard labels), the student on its labels (``alpha`` =
  weight of the hard label), and the same student on hard labels.
* :class:`WeakToStrong`: a weak teacher, the strong student on its labels, and the strong
  ceiling (the student's recipe on hard labels).
* :class:`Chain`: generation 0 on hard labels, generation g on generation g - 1's labels.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

import numpy as np

from ..errors import SpecError
from ..spec import Model, Output, Problem, Scenario
from ..spec.files import MAX_GENERATIONS, TRANSFER_ROLES, parse_transfer, read_sections
from ..spec.problem import as_output
from ..spec.validate import integer

__all__ = ["Distillation", "WeakToStrong", "Chain", "TransferSpec", "transfer_from_dict", "MAX_GENERATIONS",
           "CHAIN_MEMORY_BUDGET", "chain_state_bytes"]

#: bytes the theory's chain state may take (``docs/scenario-files.md``): a chain of ``G`` models
#: on ``d`` modes holds ``G (G + 1) / 2`` pair moments of shape ``(2, d)`` plus ``G`` first
#: moments, :func:`chain_state_bytes`; a :class:`Chain` that would need more is refused
CHAIN_MEMORY_BUDGET = 4 * 2**30


def _renamed(model: Model, name: str, *, teacher: str | None = None, alpha: float | None = None) -> Model:
    return dataclasses.replace(model, name=name, teacher=teacher,
                               alpha=(None if teacher is None else alpha))


@dataclass(frozen=True, eq=False)
class TransferSpec:
    """Base of the comparisons: a problem and the models a comparison needs (keyword-only)."""

    problem: Problem

    kind = "transfer"
    #: the lineage model whose recipe tuning changes
    student_model = ""

    def lineages(self) -> dict[str, Scenario]:  # pragma: no cover - overridden
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _scn(self, models: tuple[Model, ...], name: str) -> Scenario:
        return Scenario(self.problem, models, output=self.output, name=name)  # type: ignore[attr-defined]


@dataclass(frozen=True, eq=False)
class Distillation(TransferSpec):
    """Teacher -> student distillation against the same student on hard labels."""

    _: KW_ONLY
    teacher: Model
    student: Model
    alpha: float = 0.0
    output: Output = field(default_factory=Output)

    kind = "kd"
    student_model = "kd_student"

    def __post_init__(self):
        _check_models(self, ("teacher", "student"))
        _check_alpha(self.alpha)

    def lineages(self) -> dict[str, Scenario]:
        t = _renamed(self.teacher, "teacher")
        kd = _renamed(self.student, "kd_student", teacher="teacher", alpha=self.alpha)
        hard = _renamed(self.student, "hard_student")
        return {"distilled": self._scn((t, kd), "kd"), "hard": self._scn((hard,), "kd_hard")}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "problem": self.problem.describe(), "teacher": self.teacher.describe(),
                "student": self.student.describe(), "alpha": self.alpha, "output": _describe_output(self.output)}


@dataclass(frozen=True, eq=False)
class WeakToStrong(TransferSpec):
    """Weak teacher -> strong student against the strong ceiling (hard labels, student's recipe)."""

    _: KW_ONLY
    weak: Model
    strong: Model
    alpha: float = 0.0
    output: Output = field(default_factory=Output)

    kind = "w2s"
    student_model = "w2s_student"

    def __post_init__(self):
        _check_models(self, ("weak", "strong"))
        _check_alpha(self.alpha)

    def lineages(self) -> dict[str, Scenario]:
        w = _renamed(self.weak, "weak_teacher")
        s = _renamed(self.strong, "w2s_student", teacher="weak_teacher", alpha=self.alpha)
        c = _renamed(self.strong, "strong_ceiling")
        return {"transfer": self._scn((w, s), "w2s"), "ceiling": self._scn((c,), "w2s_ceiling")}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "problem": self.problem.describe(), "weak": self.weak.describe(),
                "strong": self.strong.describe(), "alpha": self.alpha, "output": _describe_output(self.output)}


@dataclass(frozen=True, eq=False)
class Chain(TransferSpec):
    """``generations`` models: g0 = ``base`` on hard labels, g1.. = ``child`` on the parent's labels."""

    _: KW_ONLY
    base: Model
    child: Model | None = None
    generations: int = 2
    alpha: float = 0.0
    output: Output = field(default_factory=Output)

    kind = "chain"

    def __post_init__(self):
        _check_models(self, ("base",))
        if self.child is not None and not isinstance(self.child, Model):
            raise SpecError("transfer.child", self.child, "must be a Model")
        g = integer("transfer.generations", self.generations, lo=1, hi=MAX_GENERATIONS)
        object.__setattr__(self, "generations", g)
        need = chain_state_bytes(g, self.problem.d)
        if need > CHAIN_MEMORY_BUDGET:
            raise SpecError("transfer.generations", g,
                            f"a chain of {g} models on d = {self.problem.d} modes needs "
                            f"{_size(need)} for its pair moments (G (G + 1) rows of d numbers), over "
                            f"the budget of {_size(CHAIN_MEMORY_BUDGET)} (spectral_theory.transfer.specs."
                            f"CHAIN_MEMORY_BUDGET); at most {_max_generations(self.problem.d)} "
                            "generations fit")
        _check_alpha(self.alpha)

    @property
    def student_model(self) -> str:  # type: ignore[override]
        return f"g{self.generations - 1}"

    def lineages(self) -> dict[str, Scenario]:
        child = self.child if self.child is not None else self.base
        models = [_renamed(self.base, "g0")]
        for g in range(1, self.generations):
            models.append(_renamed(child, f"g{g}", teacher=f"g{g - 1}", alpha=self.alpha))
        return {"chain": self._scn(tuple(models), "chain")}

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "problem": self.problem.describe(), "base": self.base.describe(),
                "child": (self.child or self.base).describe(), "generations": int(self.generations),
                "alpha": self.alpha, "output": _describe_output(self.output)}


def check_spec(spec: Any, field: str = "spec") -> None:
    """A :class:`SpecError` unless ``spec`` is a comparison (:class:`Distillation`,
    :class:`WeakToStrong` or :class:`Chain`)."""
    if not isinstance(spec, TransferSpec):
        raise SpecError(field, spec, "must be a Distillation, WeakToStrong or Chain (spectral_theory.transfer)")


def _describe_output(output: Output) -> dict[str, Any]:
    return {"at": list(output.at) if output.at is not None else None, "points": output.points}


def chain_state_bytes(models: int, d: int) -> int:
    """Bytes of the theory's chain state for ``models`` models on ``d`` modes: ``G (G + 1) / 2``
    pair moments of shape ``(2, d)`` and ``G`` first moments of ``d`` float64 numbers."""
    g = int(models)
    return 8 * int(d) * (g * (g + 1) + g)


def _max_generations(d: int) -> int:
    g = min(MAX_GENERATIONS, max(1, int(math.isqrt(CHAIN_MEMORY_BUDGET // (8 * max(int(d), 1))))))
    while g > 1 and chain_state_bytes(g, d) > CHAIN_MEMORY_BUDGET:
        g -= 1
    return g


def _size(n: int) -> str:
    for unit, k in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= k:
            return f"{n / k:.3g} {unit}"
    return f"{n} bytes"


def _check_models(spec: Any, names: Sequence[str]) -> None:
    if not isinstance(spec.problem, Problem):
        raise SpecError("problem", spec.problem, "must be a Problem")
    for n in names:
        if not isinstance(getattr(spec, n), Model):
            raise SpecError(f"transfer.{n}", getattr(spec, n), "must be a Model")
    object.__setattr__(spec, "output", as_output(spec.output))
    # speed profiles must fit the problem
    for n in names:
        getattr(spec, n).check_modes(spec.problem.d)


def _check_alpha(alpha: Any) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) \
            or not -1 <= alpha <= 2 or not math.isfinite(float(alpha)) or not 0.0 <= float(alpha) <= 1.0:
        raise SpecError("transfer.alpha", alpha, "must be a number in [0, 1] (weight of the hard label)")


def transfer_from_dict(data: dict[str, Any], *, kind: str | None = None, overrides: dict[str, Any] | None = None,
                       name: str = "scenario") -> Distillation | WeakToStrong | Chain:
    """A transfer spec from a scenario file's contents, read by the one strict reader
    (:func:`spectral_theory.spec.read_sections`: unknown keys anywhere, ``[transfer]`` included,
    are errors listing the allowed keys).

    ``[transfer]`` names the roles of the ``[[models]]`` (``docs/scenario-files.md``). The
    comparison is ``kind`` (a command's own: ``kd``, ``w2s``, ``chain``; or ``--kind``) or
    else the section's ``kind``; a section whose ``kind`` differs from the one asked for is an
    error naming both (a file used by several comparisons leaves ``kind`` out). Roles the
    comparison needs and nobody names default by position: the first model is the
    teacher/weak/base, the second the student/strong/child. ``overrides`` (e.g. from CLI
    flags; ``None`` values are ignored) take precedence over the section and are checked
    the same way: a role of another comparison is an error.
    """
    scn, t = read_sections(data, name=name)
    order = [m.name for m in scn.models]
    models = {m.name: m for m in scn.models}
    file_kind = t.get("kind")
    if kind is None:
        if file_kind is None:
            raise SpecError("transfer.kind", None, f"must be one of {list(TRANSFER_ROLES)}: give it in "
                                                   "[transfer] (or --kind on the command line)")
        kind = file_kind
    elif not isinstance(kind, str) or kind not in TRANSFER_ROLES:
        raise SpecError("kind", kind, f"must be one of {list(TRANSFER_ROLES)}")
    elif file_kind is not None and file_kind != kind:
        raise SpecError("transfer.kind", file_kind,
                        f"the file's [transfer] section is for a {file_kind!r} comparison, but a {kind!r} "
                        f"comparison was asked for: run {file_kind!r}, or leave 'kind' out of [transfer] "
                        "to use the file for several comparisons")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if given:
        t = {**t, **parse_transfer({**given, "kind": kind}, order)}

    def pick(role: str, default_index: int) -> Model:
        if role in t:
            return models[t[role]]
        if default_index >= len(order):
            raise SpecError(f"transfer.{role}", None, f"is required (the file lists {len(order)} model(s))")
        return models[order[default_index]]

    alpha = t.get("alpha", 0.0)
    if kind == "kd":
        return Distillation(scn.problem, teacher=pick("teacher", 0), student=pick("student", 1), alpha=alpha,
                            output=scn.output)
    if kind == "w2s":
        return WeakToStrong(scn.problem, weak=pick("weak", 0), strong=pick("strong", 1), alpha=alpha,
                            output=scn.output)
    base_m = pick("base", 0)
    child = pick("child", 1) if ("child" in t or len(order) > 1) else None
    return Chain(scn.problem, base=base_m, child=child, generations=t.get("generations", 2), alpha=alpha,
                 output=scn.output)
