"""Random-feature (sketched) models: the frozen sketch ``S`` of a :class:`~spectral_theory.spec.Model`
(``docs/sketch.md``).

A sketched model sees the data through ``p`` random features ``S x`` (``S`` of shape ``p x d``,
drawn once from its seed and frozen) and trains ``v`` in ``f(x) = (S x) . v`` by one-pass SGD.
``S`` acts on the data ``x = Lambda^(1/2) z`` written in the covariance eigenbasis:

* ``kind="gaussian"``: i.i.d. entries ``N(0, 1/p)``;
* ``kind="orthogonal"``: ``p <= d``: ``sqrt(d/p)`` times ``p`` orthonormal rows of a Haar-random
  ``d x d`` orthogonal matrix; ``p > d``: ``p x d`` with Haar-random orthonormal columns.

Both are scaled so that ``E[S^T S] = I_d``: a very wide sketch approaches the plain model
(``s = lambda``), and an orthogonal sketch with ``p >= d`` *is* the plain model
(``S^T S = I_d``). Both laws are rotation invariant, so writing ``S`` in the eigenbasis loses
no generality.

In latent coordinates a sketched model is the feature map ``A = S Lambda^(1/2)`` (``p x d``);
its SVD ``A = Q diag(sqrt m) R^T`` gives the model's own eigenbasis (the columns of ``R``) and
its speeds ``m`` (the eigenvalues of ``S Lambda S^T``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..errors import SpecError
from .validate import MAX_SIZE, integer

__all__ = ["RandomFeatures", "SKETCH_KINDS", "MAX_SKETCH_ENTRIES", "Eigensystem", "draw_sketch",
           "eigensystem"]

SKETCH_KINDS = ("gaussian", "orthogonal")
#: the most entries ``p * d`` a sketch may have (the quenched computation draws ``S`` and takes
#: the SVD of ``S Lambda^(1/2)``, ``O(p d min(p, d))``): 2.5e7 entries = 200 MB
MAX_SKETCH_ENTRIES = 25_000_000


@dataclass(frozen=True)
class RandomFeatures:
    """``p`` random features ``S x`` of the data, ``S`` drawn from ``kind`` with ``seed`` and frozen.

    ``kind``: ``"gaussian"`` (i.i.d. ``N(0, 1/p)`` entries, the default) or ``"orthogonal"``
    (scaled Haar-orthogonal rows or columns); ``E[S^T S] = I_d`` for both. ``seed``: the seed of
    the sketch (default 0), independent of the seeds of Monte Carlo runs; two models with equal
    ``RandomFeatures`` share the same sketch.
    """

    p: int
    kind: str = "gaussian"
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "p", integer("features.p", self.p, lo=1, hi=MAX_SIZE))
        if not isinstance(self.kind, str) or self.kind not in SKETCH_KINDS:
            raise SpecError("features.kind", self.kind, f"must be one of {list(SKETCH_KINDS)}")
        object.__setattr__(self, "seed", integer("features.seed", self.seed, lo=0, hi=2**63 - 1))

    def check_size(self, d: int, field: str = "features") -> None:
        """A :class:`SpecError` unless a ``p x d`` sketch fits :data:`MAX_SKETCH_ENTRIES`."""
        if self.p * d > MAX_SKETCH_ENTRIES:
            raise SpecError(
                f"{field}.p", self.p,
                f"a sketch of p x d = {self.p} x {d} = {self.p * d:.3g} entries is too large for the "
                f"quenched (fixed-sketch) computation: at most {MAX_SKETCH_ENTRIES:.3g} entries "
                "(use the annealed equivalent, spectral_theory.sketch.annealed, for larger sizes)",
            )

    def matrix(self, d: int) -> np.ndarray:
        """The sketch ``S`` (``p x d``) for ``d`` data dimensions."""
        self.check_size(d)
        return draw_sketch(self.p, d, self.kind, self.seed)

    def describe(self) -> dict[str, Any]:
        return {"p": self.p, "kind": self.kind, "seed": self.seed}


def draw_sketch(p: int, d: int, kind: str, seed: int) -> np.ndarray:
    """The ``p x d`` sketch of the given law and seed (module docstring)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EC7]))
    g = rng.standard_normal((p, d))
    if kind == "gaussian":
        return g / np.sqrt(p)
    # Haar orthogonal: QR of a Gaussian matrix with the signs of R's diagonal fixed
    tall = g if p > d else g.T  # (max, min)
    q, r = np.linalg.qr(tall)
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)
    if p > d:
        return q  # p x d, orthonormal columns: S^T S = I_d
    return np.sqrt(d / p) * q.T  # p x d, orthogonal rows scaled: E[S^T S] = I_d


@dataclass(frozen=True, eq=False)
class Eigensystem:
    """A model's feature map in latent coordinates, ``A = Q diag(sqrt m) R^T``: its speeds ``m``
    (descending, all ``> 0``) and its basis ``R`` (``d x r``, orthonormal columns).
    ``coordinate``: every column of ``R`` is a signed latent coordinate direction (an orthogonal
    sketch with ``p >= d``, or a sketch that happens not to mix coordinates), so the model's
    coordinates are latent coordinates, independent for any data law (``docs/sketch.md`` §4)."""

    m: np.ndarray
    R: np.ndarray
    coordinate: bool = False


def _key(arr: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(arr, dtype=float).tobytes()).hexdigest()


_CACHE: dict[tuple, Eigensystem] = {}
#: bytes the eigensystem cache may hold (its bases ``R`` are up to ``d x min(p, d)`` doubles,
#: 200 MB for the largest sketch): older entries are dropped beyond it, the newest is always kept
CACHE_BYTES = 512 * 2**20
#: and at most this many entries
CACHE_ENTRIES = 32


def _nbytes(es: Eigensystem) -> int:
    return int(es.m.nbytes + es.R.nbytes)


def cache_bytes() -> int:
    """Bytes held by the eigensystem cache now."""
    return sum(_nbytes(e) for e in _CACHE.values())


def eigensystem(features: RandomFeatures, eigenvalues: np.ndarray) -> Eigensystem:
    """The eigensystem of ``A = S Lambda^(1/2)`` (cached per sketch and spectrum, least recently
    used dropped first, at most :data:`CACHE_BYTES` bytes beyond the newest entry). Directions
    with ``sqrt m`` below the usual rank tolerance (``max sqrt m * max(p, d) * eps``) are
    outside the model's span."""
    lam = np.asarray(eigenvalues, dtype=float)
    key = (features.p, features.kind, features.seed, lam.size, _key(lam))
    hit = _CACHE.pop(key, None)
    if hit is not None:
        _CACHE[key] = hit  # most recently used last
        return hit
    es = _eigensystem(features.p, features.kind, features.seed, lam)
    total = cache_bytes() + _nbytes(es)
    while _CACHE and (total > CACHE_BYTES or len(_CACHE) >= CACHE_ENTRIES):
        total -= _nbytes(_CACHE.pop(next(iter(_CACHE))))  # oldest first
    _CACHE[key] = es
    return es


#: a column of ``R`` whose largest entry is within this of 1 in magnitude is a coordinate direction
COORDINATE_TOL = 1e-12


def _eigensystem(p: int, kind: str, seed: int, lam: np.ndarray) -> Eigensystem:
    d = lam.size
    if kind == "orthogonal" and p >= d:
        # S^T S = I_d: A^T A = Lambda, the plain model's basis exactly (no round-off, and the
        # coordinate basis also where Lambda has repeated eigenvalues, which an SVD would rotate)
        idx = np.flatnonzero(lam > 0)
        idx = idx[np.argsort(-lam[idx], kind="stable")]
        m = lam[idx].copy()
        R = np.zeros((d, idx.size))
        R[idx, np.arange(idx.size)] = 1.0
        m.setflags(write=False)
        R.setflags(write=False)
        return Eigensystem(m=m, R=R, coordinate=True)
    S = draw_sketch(p, d, kind, seed)
    A = S * np.sqrt(lam)[None, :]
    _, sv, vt = np.linalg.svd(A, full_matrices=False)
    tol = (sv[0] if sv.size else 0.0) * max(p, d) * np.finfo(float).eps
    keep = sv > tol
    m = sv[keep] ** 2
    R = vt[keep].T.copy()
    coordinate = bool(R.size == 0 or np.all(np.max(np.abs(R), axis=0) >= 1.0 - COORDINATE_TOL))
    m.setflags(write=False)
    R.setflags(write=False)
    return Eigensystem(m=m, R=R, coordinate=coordinate)


@lru_cache(maxsize=64)
def _padded(p: int, kind: str, seed: int, d: int, key: str, lam_bytes: bytes) -> np.ndarray:
    lam = np.frombuffer(lam_bytes, dtype=float)
    es = eigensystem(RandomFeatures(p, kind, seed), lam)
    out = np.zeros(d)
    out[: es.m.size] = es.m
    out.setflags(write=False)
    return out


def sketched_speeds(features: RandomFeatures, eigenvalues: np.ndarray) -> np.ndarray:
    """The speeds of a sketched model in its own eigenbasis (the eigenvalues of ``S Lambda S^T``,
    descending), padded with zeros to ``d``: what stability limits and cost estimates use (they
    depend on the speeds, not on the basis)."""
    lam = np.ascontiguousarray(eigenvalues, dtype=float)
    features.check_size(lam.size)
    return _padded(features.p, features.kind, features.seed, lam.size, _key(lam), lam.tobytes())
