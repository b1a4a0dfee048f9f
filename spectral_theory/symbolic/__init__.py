"""Symbolic layer: sympy derivation of the moment recursions and code generation.

Importing this package imports sympy. The numerical layer never does: it calls
``spectral_theory._generated``, which this layer writes (see
``derivations/derive_recursions.py``).
"""

from .derive import (
    DerivationError,
    Setting,
    batch_expectation,
    check_d_independence,
    derive_hard_recursion,
    derive_student_recursion,
    expectation,
    extract_rank_one,
    generate_document,
    generate_module,
    theory_md_hard,
    theory_md_student,
    verify_quartic_identity,
)

__all__ = [
    "DerivationError",
    "Setting",
    "batch_expectation",
    "check_d_independence",
    "derive_hard_recursion",
    "derive_student_recursion",
    "expectation",
    "extract_rank_one",
    "generate_document",
    "generate_module",
    "theory_md_hard",
    "theory_md_student",
    "verify_quartic_identity",
]
