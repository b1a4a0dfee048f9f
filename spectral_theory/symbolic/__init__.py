"""Symbolic layer: the per-mode moment recursions derived with sympy from the SGD update
(:mod:`.recursions`), the numpy module generated from them (:mod:`.codegen`), the derivation
document (:mod:`.document`) and the power-law asymptotics (:mod:`.asymptotics`).

Importing this package imports sympy. The numerical layer never does: it calls
:mod:`spectral_theory.solvers.kernels`, which this layer writes
(``python derivations/generate.py``).
"""

from .codegen import codegen_functions, generate_module
from .common import DOCUMENT_PATH, MODULE_PATH, DerivationError
from .document import generate_document
from .recursions import (
    Setting,
    batch_expectation,
    check_against_spec,
    check_d_independence,
    derive_hard_recursion,
    derive_student_recursion,
    expectation,
    extract_rank_one,
    spec_hard_recursion,
    spec_student_recursion,
    verify_quartic_identity,
)

__all__ = [
    "DOCUMENT_PATH", "MODULE_PATH", "DerivationError", "Setting", "batch_expectation",
    "check_against_spec", "check_d_independence", "codegen_functions", "derive_hard_recursion",
    "derive_student_recursion", "expectation", "extract_rank_one", "generate_document",
    "generate_module", "spec_hard_recursion", "spec_student_recursion", "verify_quartic_identity",
]
