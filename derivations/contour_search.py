"""How the contour tables ``CONTOURS`` and ``CONTOURS_POLES`` of
``spectral_theory.solvers.renewal`` were found, and a check of them.

    python derivations/contour_search.py --check                       # re-measure every tabulated contour
    python derivations/contour_search.py --lam 100 --n 44              # search parameters for one window
    python derivations/contour_search.py --lam 10 --n 40 --order 4     # the same for CONTOURS_POLES

Each tabulated contour is a hyperbola ``s(u) = mu (1 + sin(i u - alpha))`` with
``n`` trapezoid nodes ``u_k = (k + 1/2) h``, ``h = hn / n``, ``mu = mun n``,
serving the times ``t in [1, lam]`` (scaled by ``1/t0`` for a window
``[t0, lam t0]``). Its design criterion is :func:`spectral_theory.solvers.renewal.contour_error`:
the largest weighted error ``|Q_t[1/(s + rho)] - e^(-rho t)| (1 + rho t)`` over
log-spaced ``t`` in the window and decay rates ``rho in {0} U [1e-6, 1e5]``.

``CONTOURS_POLES`` (the SGD variants' fast path) uses the same criterion for poles of order
up to 4 (``contour_error(spec, order=4)``: ``1/(s + rho)^k`` against ``t^(k-1) e^(-rho t)/(k-1)!``,
weighted by ``(1 + rho t)^k`` over ``t^(k-1)/(k-1)!``).

The search minimises that criterion over ``(alpha, hn, log mun)`` by Nelder-Mead
from three starting points, and adds 4 nodes until the target is met. The
criterion is checked, not trusted: ``--check`` re-measures each row (also a test
in ``tests/test_renewal.py``), whatever the search that produced it.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from spectral_theory.solvers.renewal import CONTOURS, CONTOURS_POLES, ContourSpec, contour_error  # noqa: E402


def criterion(params: np.ndarray, n: int, lam: float, order: int = 1) -> float:
    alpha, hn, log_mun = params
    if not (0.3 < alpha < math.pi / 2) or hn <= 0:
        return 1e9
    with np.errstate(all="ignore"):
        v = contour_error(ContourSpec(lam, n, float(alpha), float(hn), float(math.exp(log_mun)), 0.0),
                          order=order, n_rho=260 if order == 1 else 120)
    return v if math.isfinite(v) else 1e9


def search(lam: float, n: int, target: float = -12.0, n_max: int = 120, order: int = 1) -> ContourSpec:
    """Fewest nodes (from ``n``, in steps of 4) whose best contour meets ``target`` (log10);
    ``order``: the criterion's highest pole order (1: :data:`CONTOURS`, 4: :data:`CONTOURS_POLES`;
    the search grid then has 120 decay rates, the reported error is re-measured on 260)."""
    x0 = None
    while True:
        starts = [[1.0, 1.5 + math.log10(lam), math.log(1.0 / lam)],
                  [0.85, 2.0 + 1.3 * math.log10(lam), math.log(0.3 / lam)],
                  [1.15, 1.0 + math.log10(lam), math.log(3.0 / lam)]]
        if x0 is not None:
            starts.insert(0, x0)
        best = None
        for start in starts:
            r = minimize(criterion, start, args=(n, lam, order), method="Nelder-Mead",
                         options={"maxiter": 800, "xatol": 1e-6, "fatol": 1e-4})
            r = minimize(criterion, r.x, args=(n, lam, order), method="Nelder-Mead",
                         options={"maxiter": 800, "xatol": 1e-7, "fatol": 1e-5})
            if best is None or r.fun < best.fun:
                best = r
        x0 = list(best.x)
        spec = ContourSpec(lam, n, float(best.x[0]), float(best.x[1]), float(math.exp(best.x[2])), 0.0)
        err = contour_error(spec, order=order)
        spec = ContourSpec(lam, n, spec.alpha, spec.hn, spec.mun, round(err, 2))
        best.fun = err
        print(f"lam={lam:g} n={n} log10 error {best.fun:.2f}: {spec}", flush=True)
        if best.fun < target or n >= n_max:
            return spec
        n += 4


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="re-measure every row of CONTOURS and CONTOURS_POLES")
    ap.add_argument("--order", type=int, default=1,
                    help="highest pole order of the criterion (1: CONTOURS, 4: CONTOURS_POLES)")
    ap.add_argument("--lam", type=float, help="window ratio to search a contour for")
    ap.add_argument("--n", type=int, default=12, help="starting number of nodes")
    ap.add_argument("--target", type=float, default=-12.0, help="log10 of the error to reach")
    args = ap.parse_args(argv)
    if args.check:
        worst = -math.inf
        for table, order in ((CONTOURS, 1), (CONTOURS_POLES, 4)):
            for spec in table:
                err = contour_error(spec, order=order)
                worst = max(worst, err)
                print(f"order {order}, lam={spec.lam:g} n={spec.n}: tabulated {spec.log10_err:.2f}, "
                      f"measured {err:.2f}")
        print(f"worst log10 error {worst:.2f}")
        return 0 if worst <= -11.5 else 1
    if args.lam is None:
        ap.error("give --check or --lam")
    search(args.lam, args.n, args.target, order=args.order)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
