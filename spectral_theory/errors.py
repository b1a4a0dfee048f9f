"""Exceptions raised by the calculator.

Every error names the offending field (a dotted path such as
``models[1].schedule.lr``), the value it got and what is allowed.
"""

from __future__ import annotations

from typing import Any


class SpecError(ValueError):
    """Invalid specification: names the field, the value and what is allowed."""

    def __init__(self, field: str, value: Any, allowed: str):
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}: got {_short(value)}; {allowed}")


class InstabilityError(ArithmeticError):
    """A step size at or beyond the stability limit of the moment recursion.

    Attributes: ``model`` (name), ``step`` (first offending step of that
    model), ``lr`` (its step size, batch-mean convention) and ``limit`` (the
    largest stable constant step for that model, batch-mean convention).
    """

    def __init__(self, model: str, step: int, lr: float, limit: float, detail: str = "",
                 tau: float | None = None):
        self.model = model
        self.step = step
        self.lr = lr
        self.limit = limit
        self.detail = detail
        self.detail_tau = tau  # continuous-time solvers: where (in tau = sum of steps) it failed
        msg = (
            f"models[{model!r}]: step size {lr:.6g} at step {step} is unstable; "
            f"the largest stable constant step for this model is {limit:.6g} "
            f"(batch-mean convention)"
        )
        if detail:
            msg += f" [{detail}]"
        super().__init__(msg)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
