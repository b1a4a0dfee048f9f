"""Shared test helpers and settings.

- ``ROOT`` / ``EXAMPLES``: paths independent of the working directory.
- :func:`assert_close`: elementwise relative comparison with a floor, with a message that
  names the worst entry.
- :func:`run_cli`: the command line in-process (exit status, standard output, standard error).
- Hypothesis profiles: ``ci`` (derandomized: the same examples on every run; selected when
  the ``CI`` environment variable is set) and ``dev`` (random, the default). Choose one with
  ``--hypothesis-profile``; ``long`` runs ten times as many examples.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def assert_close(x, y, what: str, *, rtol: float, floor: float) -> None:
    """``|x - y| <= rtol * max(|y|, floor)`` everywhere, ``x`` finite and of ``y``'s shape."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    assert x.shape == y.shape, f"{what}: shape {x.shape} != {y.shape}"
    assert np.all(np.isfinite(x)), f"{what}: non-finite value in {x!r}"
    scale = np.maximum(np.abs(y), floor)
    bad = ~(np.abs(x - y) <= rtol * scale)
    if bad.any():
        i = int(np.argmax(np.where(bad, np.abs(x - y) / scale, 0).ravel()))
        xi, yi = x.ravel()[i], y.ravel()[i]
        raise AssertionError(f"{what}: {xi!r} vs reference {yi!r} (rel {abs(xi - yi) / max(abs(yi), floor):.3g} "
                             f"> {rtol:g}) at entry {i} of {x.size}")


def run_cli(argv, capsys):
    """``spectral_theory.cli.main(argv)`` in-process (arguments passed through ``str``): its exit
    status, standard output and standard error, read from ``capsys``."""
    from spectral_theory.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err
