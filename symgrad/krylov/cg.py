"""Conjugate gradient for A x = b with A symmetric positive definite, seen through products.

It keeps what truncated Newton methods need: the quadratic model value
phi(x) = 1/2 x^T A x - b^T x at every iteration (free: phi = -1/2 x^T (b + r) with r the
residual), the iterates at geometrically spaced iterations (for backtracking, Martens 2010)
and Martens' relative-progress stopping rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .arguments import count, number, operator, vector


@dataclass
class CGResult:
    """``x``: the last iterate; ``reason``: "residual" (|r| <= tol |b|), "progress"
    (Martens' rule), "max_iter" or "negative_curvature" (p^T A p <= 0: A is not positive
    definite along p; x is the iterate before it). ``iterates`` holds (iteration, x, phi)
    at iterations ceil(growth^j) and the last one; ``phi`` every model value."""

    x: np.ndarray
    iterations: int
    residual_norm: float
    reason: str
    phi: list[float] = field(default_factory=list)
    iterates: list[tuple[int, np.ndarray, float]] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return self.reason in ("residual", "progress")


def _checkpoints(growth: float, limit: int) -> set[int]:
    out, j = set(), 0
    while True:
        i = math.ceil(growth**j)
        if i > limit:
            return out
        out.add(i)
        j += 1


def conjugate_gradient(
    A,
    b: np.ndarray,
    x0: np.ndarray | None = None,
    *,
    tol: float = 1e-5,
    max_iter: int | None = None,
    progress_tol: float | None = None,
    growth: float = 1.3,
) -> CGResult:
    """Solve A x = b by conjugate gradient from ``x0`` (default 0).

    Stops when |b - A x| <= ``tol`` |b|, after ``max_iter`` iterations (default n), or, with
    ``progress_tol`` = eps, by Martens' rule: at iteration i with k = max(10, i/10), stop
    once phi_i < 0 and (phi_i - phi_(i-k)) / phi_i < k eps.
    """
    fn = "conjugate_gradient"
    number(fn, "growth", growth, above=1)  # 1: checkpoints without end
    number(fn, "tol", tol, low=0)
    number(fn, "progress_tol", progress_tol, low=0, optional=True)
    max_iter = count(fn, "max_iter", max_iter, 0, optional=True)
    A = operator(fn, A, symmetric=True, name="A")
    n = A.shape[0]
    b = vector(fn, "b", b, n)
    max_iter = n if max_iter is None else max_iter
    x = np.zeros(n) if x0 is None else vector(fn, "x0", x0, n).copy()
    r = b - A.matvec(x) if x0 is not None and np.any(x) else b.copy()
    p = r.copy()
    rr = float(r @ r)
    target = tol * float(np.linalg.norm(b))
    keep = _checkpoints(growth, max_iter)
    result = CGResult(x, 0, math.sqrt(rr), "max_iter", [-0.5 * float(x @ (b + r))])
    reason = "max_iter"
    i = 0
    while i < max_iter:
        if math.sqrt(rr) <= target:
            reason = "residual"
            break
        Ap = A.matvec(p)
        pAp = float(p @ Ap)
        if pAp <= 0:
            reason = "negative_curvature"
            break
        alpha = rr / pAp
        x = x + alpha * p
        r = r - alpha * Ap
        rr_new = float(r @ r)
        p = r + (rr_new / rr) * p
        rr = rr_new
        i += 1
        phi = -0.5 * float(x @ (b + r))
        result.phi.append(phi)
        if i in keep:
            result.iterates.append((i, x, phi))
        if progress_tol is not None:
            k = max(10, math.ceil(0.1 * i))
            if i > k and phi < 0 and (phi - result.phi[i - k]) / phi < k * progress_tol:
                reason = "progress"
                break
    if reason == "max_iter" and math.sqrt(rr) <= target:  # met at the last iteration
        reason = "residual"
    if not result.iterates or result.iterates[-1][0] != i:
        result.iterates.append((i, x, result.phi[-1]))
    result.x, result.iterations, result.reason = x, i, reason
    result.residual_norm = math.sqrt(rr)
    return result
