"""Lanczos with full reorthogonalization, and the extreme eigenvalues it finds.

k steps of Lanczos on a symmetric operator A from a start vector q1 build an orthonormal
basis Q of the Krylov space span{q1, A q1, ..., A^(k-1) q1} and the tridiagonal
T = Q^T A Q. The eigenvalues of T (Ritz values) converge to A's extreme eigenvalues first.
In floating point the plain three-term recurrence loses orthogonality and repeats
eigenvalues, so every new vector is orthogonalized again against the whole basis (twice:
"twice is enough").
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigh_tridiagonal
from scipy.sparse.linalg import LinearOperator

from ..validate import scalar
from .arguments import choice, count, generator, number, operator, refuse, vector


@dataclass
class LanczosResult:
    """The outcome of ``lanczos``: T's diagonal ``alpha`` and off-diagonal ``beta``, the basis
    ``Q`` (n x k), and ``residual`` = beta_k q_(k+1), the part of A q_k outside the basis."""

    alpha: np.ndarray
    beta: np.ndarray
    Q: np.ndarray
    residual: np.ndarray

    @property
    def steps(self) -> int:
        return len(self.alpha)

    @property
    def invariant(self) -> bool:
        """The basis spans an invariant subspace: the Ritz values are exact eigenvalues."""
        return bool(np.linalg.norm(self.residual) == 0.0)

    def tridiagonal(self) -> np.ndarray:
        """T = Q^T A Q as a dense k x k matrix."""
        return np.diag(self.alpha) + np.diag(self.beta, 1) + np.diag(self.beta, -1)

    def ritz(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ritz values (ascending), Ritz vectors (n x k) and their residual norms
        |A y - theta y| = beta_k |last entry of T's eigenvector|."""
        theta, S = eigh_tridiagonal(self.alpha, self.beta)
        bounds = np.linalg.norm(self.residual) * np.abs(S[-1])
        return theta, self.Q @ S, bounds


def lanczos(
    op,
    k: int,
    v0: np.ndarray | None = None,
    *,
    seed: int = 0,
    start: LanczosResult | None = None,
    restart: bool = False,
) -> LanczosResult:
    """``k`` Lanczos steps (at most n) on the symmetric ``op`` (a LinearOperator, a matrix or
    anything scipy's ``aslinearoperator`` takes) with full reorthogonalization.

    Starts from ``v0`` (default: a random vector from ``seed``), or continues ``start`` for
    ``k`` more steps. When the Krylov space becomes invariant it stops early, or with
    ``restart`` goes on from a random vector orthogonal to the basis (T then has a zero
    off-diagonal entry there): a Krylov space holds one direction of each eigenvalue, so a
    repeated eigenvalue shows its multiplicity only across restarts.
    """
    k = count("lanczos", "k", k)
    A: LinearOperator = operator("lanczos", op, symmetric=True)
    n = A.shape[0]
    if start is not None:
        if v0 is not None:
            refuse("lanczos", "give a start vector v0 or a result to continue (start), not both")
        if not isinstance(start, LanczosResult) or start.Q.shape[0] != n:
            got = type(start).__name__
            if isinstance(start, LanczosResult):
                got = f"one of a {start.Q.shape[0]} x {start.Q.shape[0]} op"
            refuse("lanczos", f"start must be a LanczosResult of this {n} x {n} op, got {got}")
    rng = generator("lanczos", seed)
    if start is None:
        q = rng.standard_normal(n) if v0 is None else vector("lanczos", "v0", v0, n)
        if not 0 < np.linalg.norm(q) < np.inf:
            refuse("lanczos", "the start vector v0 is zero (or not finite)")
        alphas, betas, basis = [], [], []
        residual = q / np.linalg.norm(q)  # as if beta = 1 and q1 the residual
        beta = 1.0
    else:
        alphas, betas = list(start.alpha), list(start.beta)
        basis = list(start.Q.T)
        beta = float(np.linalg.norm(start.residual))
        residual = start.residual
    tiny = np.finfo(np.float64).eps
    scale = max([abs(a) for a in alphas] + [beta, tiny])
    for _ in range(min(k, n - len(basis))):
        coupling = beta
        if beta <= tiny * n * scale:  # invariant subspace: nothing new to find from here
            if not restart:
                residual = np.zeros(n)
                break
            residual, beta, coupling = _orthogonal_start(rng, basis), 1.0, 0.0
        if basis:
            betas.append(coupling)
        q = residual / beta
        basis.append(q)
        w = np.asarray(A.matvec(q), dtype=np.float64).ravel()
        alpha = float(q @ w)
        alphas.append(alpha)
        Q = np.array(basis).T
        for _ in range(2):
            w = w - Q @ (Q.T @ w)
        residual = w
        beta = float(np.linalg.norm(w))
        scale = max(scale, abs(alpha), beta)
    if len(basis) == n or (beta <= tiny * n * scale and not restart):
        residual = np.zeros(n)
    Q = np.array(basis).T if basis else np.zeros((n, 0))
    return LanczosResult(np.array(alphas), np.array(betas), Q, residual)


_ORDER = {
    "LA": lambda theta: np.argsort(-theta),  # largest algebraic first
    "SA": lambda theta: np.argsort(theta),  # smallest algebraic first
    "LM": lambda theta: np.argsort(-np.abs(theta)),  # largest magnitude first
}


def _orthogonal_start(rng, basis: list) -> np.ndarray:
    """A random unit vector orthogonal to the (orthonormal) ``basis``."""
    Q = np.array(basis).T
    q = rng.standard_normal(Q.shape[0])
    for _ in range(2):
        q = q - Q @ (Q.T @ q)
    return q / np.linalg.norm(q)


def top_eigenvalues(
    op,
    k: int = 5,
    *,
    which: str = "LA",
    tol: float = 1e-10,
    max_steps: int | None = None,
    seed: int = 0,
    return_vectors: bool = False,
):
    """The ``k`` extreme eigenvalues of the symmetric ``op`` by Lanczos.

    ``which``: "LA" largest (default, in decreasing order), "SA" smallest (increasing) or
    "LM" largest in magnitude. Lanczos runs until every wanted Ritz pair's residual is below
    ``tol`` times the largest Ritz value's magnitude (an eigenvalue's error is at most its
    residual), the basis is the whole space, or ``max_steps``. With ``return_vectors``
    returns (values, vectors as columns).
    """
    fn = "top_eigenvalues"
    choice(fn, "which", which, _ORDER)
    op = operator(fn, op, symmetric=True)  # checked once here, not by each lanczos call
    n = op.shape[0]
    k = scalar(k)  # a 0-d array stands for its number, as in every count
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or not 0 < k <= n:
        refuse(fn, f"k = {k!r} eigenvalues of a {n} x {n} operator; k must be an int in 1..{n}")
    number(fn, "tol", tol, low=0)
    max_steps = count(fn, "max_steps", max_steps, optional=True)
    if max_steps is not None and max_steps < k:
        refuse(fn, f"max_steps = {max_steps} Lanczos steps give fewer than k = {k} eigenvalues")
    seed = count(fn, "seed", seed, 0, optional=True)  # later runs use seed + steps
    if seed is None:  # fresh entropy, as np.random.default_rng(None) would take
        seed = int(np.random.default_rng().integers(2**31))
    limit = n if max_steps is None else min(n, max_steps)
    steps = min(limit, max(2 * k + 10, 20))
    result = lanczos(op, steps, seed=seed, restart=True)
    while True:
        theta, Y, bounds = result.ritz()
        pick = _ORDER[which](theta)[:k]
        scale = np.max(np.abs(theta)) if len(theta) else 1.0
        done = np.all(bounds[pick] <= tol * scale) or result.invariant
        if done or result.steps >= limit:
            break
        steps = min(limit, 2 * result.steps) - result.steps
        result = lanczos(op, steps, seed=seed + result.steps, start=result, restart=True)
    values = theta[pick]
    return (values, Y[:, pick]) if return_vectors else values
