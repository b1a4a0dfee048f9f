"""Checking proofs numerically: claims, the search that tries to break them, certified
witnesses (``docs/claims.md``).

A claim states an inequality, an equality, a limit, a monotonicity or an asymptotic rate
about quantities the calculator computes, over a parameter domain::

    from spectral_theory import claims as C
    claim = C.Inequality(name="floor", scenario=data, model="m", lhs="excess_risk", rhs="risk_floor",
                         constant=1.01, domain={"eta": C.Param(0.01, 0.3, log=True)})
    report = C.check(claim, budget=100)      # grid, Sobol, local and global maximisation
    print(report.summary())                  # verdict, worst point, margin, certificate
    C.assert_claim(claim)                    # in a test

``spectral-theory check CLAIMS.toml`` runs the claims of a file (exit 0: all hold, 1: a
violation, 2: bad input); :mod:`spectral_theory.claims.library` holds checked statements.
"""

from __future__ import annotations

from .certify import Certificate, CertificationError, certify_point, estimate_cost
from .claim import (
           QUANTITIES,
           SYMBOLS,
           Claim,
           Context,
           Equality,
           Inequality,
           Limit,
           Monotone,
           Quantity,
           Rate,
)
from .domain import Domain, Param
from .expr import parse, parse_condition
from .files import load_claims, read_claims
from .search import STRATEGIES, ClaimReport, check, check_all
from .testing import assert_claim

__all__ = ["Claim", "Inequality", "Equality", "Limit", "Monotone", "Rate", "Quantity", "Param", "Domain",
           "Context", "check", "check_all", "ClaimReport", "assert_claim", "certify_point", "estimate_cost",
           "Certificate", "CertificationError", "load_claims", "read_claims", "parse", "parse_condition",
           "QUANTITIES", "SYMBOLS", "STRATEGIES"]
