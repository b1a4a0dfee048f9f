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

    def __reduce__(self):  # picklable (errors raised in worker processes reach the caller)
        return (type(self), (self.field, self.value, self.allowed))


class UnknownNameError(SpecError, KeyError):
    """A name looked up that does not exist (a model of a result or scenario, a metric of a
    report): a :class:`SpecError` whose message lists the names that do, and a
    :class:`KeyError`, so that ``except KeyError`` keeps working."""

    def __init__(self, field: str, value: Any, names: Any, what: str = "names"):
        self.names = list(names)
        self.what = what
        super().__init__(field, value, f"must be one of the {what} {self.names}")

    def __reduce__(self):
        return (type(self), (self.field, self.value, self.names, self.what))

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return self.args[0]



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
        where = (f"the largest stable constant step for this model is {limit:.6g} (batch-mean convention)"
                 if limit == limit else  # nan: momentum coefficients that change from step to step
                 "this model has no single stability limit on the step size (its momentum coefficients "
                 "change from step to step; each step is tested with its own coefficients)")
        msg = f"models[{model!r}]: step size {lr:.6g} at step {step} is unstable; {where}"
        if detail:
            msg += f" [{detail}]"
        super().__init__(msg)

    def __reduce__(self):  # picklable (errors raised in worker processes reach the caller)
        return (type(self), (self.model, self.step, self.lr, self.limit, self.detail, self.detail_tau))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
