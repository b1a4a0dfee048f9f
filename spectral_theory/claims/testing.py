"""A pytest helper: :func:`assert_claim` fails a test with the report when a claim is violated."""

from __future__ import annotations

from typing import Any

from .search import ClaimReport, check

__all__ = ["assert_claim", "ClaimViolated"]


class ClaimViolated(AssertionError):
    """The search found a violation (the message is the report's summary)."""

    def __init__(self, report: ClaimReport):
        self.report = report
        super().__init__("claim violated:\n" + report.summary())


def assert_claim(claim: Any, *, budget: int = 64, seed: int = 0, certify: bool | str = False,
                 expect: str = "holds", **kw: Any) -> ClaimReport:
    """Check ``claim`` (:func:`~spectral_theory.claims.check`) and raise :class:`ClaimViolated`
    (an ``AssertionError``, so pytest prints the report) unless its verdict is ``expect``
    (``"holds"``, or ``"violated"`` for a claim known to be false). Returns the report.

    ``budget`` defaults to 64 evaluations so that a test stays quick; a claim that holds on
    them is reported as holding on those points only (the report says how many)."""
    report = check(claim, budget=budget, seed=seed, certify=certify, **kw)
    if report.verdict != expect:
        if expect == "holds":
            raise ClaimViolated(report)
        raise AssertionError(f"expected the claim to be {expect}, got {report.verdict}:\n" + report.summary())
    return report
