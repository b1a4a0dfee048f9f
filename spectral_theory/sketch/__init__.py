"""Random-feature (sketched) models (``docs/sketch.md``): the quenched theory at a fixed sketch
(:mod:`.quenched`, exact for Gaussian data, any chain of sketched and plain models) and the
annealed deterministic equivalent over the sketch (:mod:`.annealed`)."""

from ..spec.sketch import RandomFeatures
from .quenched import SketchedSolver, is_sketched

__all__ = ["RandomFeatures", "SketchedSolver", "is_sketched"]
