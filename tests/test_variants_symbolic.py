"""The variant kernels derived from the update rules by sympy (docs/theory.md §10): at finite
symbolic dimension the expectation of every tracked product after one step of the literal
two-state update with averaging equals the numeric kernel expression, no product of errors of
two different modes survives, and r = p_e = 1 reduces to plain SGD's mixed-label recursion
exactly (spectral_theory/symbolic/variants.py)."""

from __future__ import annotations

import pytest

from spectral_theory.symbolic.variants import check_variant_kernels


def test_variant_kernels_match_the_derivation_at_d2():
    checks = check_variant_kernels(2)
    assert len(checks) == 13


@pytest.mark.slow
def test_variant_kernels_match_the_derivation_at_d3():
    assert len(check_variant_kernels(3)) == 13


@pytest.mark.slow
def test_variants_document_is_up_to_date():
    """derivations/variants.md is byte-identical to what the generator writes."""
    from pathlib import Path

    from spectral_theory.symbolic.variants import DOCUMENT_PATH, generate_document

    on_disk = (Path(__file__).resolve().parents[1] / DOCUMENT_PATH).read_text(encoding="utf-8")
    assert generate_document() == on_disk, f"{DOCUMENT_PATH} is stale: run python derivations/generate.py"
