"""Sweeps beyond one machine (``docs/sweeps.md``): a base scenario or comparison and a design
over any number of fields (grid, list, log-spaced, random, scrambled Sobol), every point's
recorded quantities in a tidy table (Parquet, CSV fallback), resumable and crash-safe, on a
process pool or a ``dask.distributed`` cluster, with Monte Carlo validation at scale
(:func:`validate_sweep`).

Needs the ``sweeps`` extra (``pip install ".[sweeps]"``: dask.distributed, pandas, pyarrow,
xarray) for the tables and clusters.
"""

from __future__ import annotations

from .design import DESIGN_KINDS, Block, design_points, parse_design
from .executors import SweepError
from .run import SweepResult, make_batches, read_results, resolve_sweep, sweep, to_xarray
from .spec import (
           KINDS,
           METRIC_NAMES,
           RECORD_GROUPS,
           Sweep,
           SweepPoint,
           load_sweep,
           make_sweep,
           sweep_from_dict,
)
from .validate import ValidationResult, read_validation, validate_sweep

__all__ = ["sweep", "validate_sweep", "SweepResult", "ValidationResult", "Sweep", "SweepPoint", "SweepError",
           "load_sweep", "sweep_from_dict", "make_sweep", "read_results", "read_validation", "to_xarray",
           "parse_design", "design_points", "make_batches", "resolve_sweep", "Block", "DESIGN_KINDS", "KINDS",
           "METRIC_NAMES", "RECORD_GROUPS"]
