"""What products alone tell about a spectrum: its density (stochastic Lanczos quadrature)
and its trace (Hutchinson's estimator and Hutch++)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigh_tridiagonal

from .arguments import choice, count, generator, number, operator
from .lanczos import lanczos


def rademacher(rng: np.random.Generator, shape) -> np.ndarray:
    """Random signs: the probes with the smallest variance for Hutchinson's estimator."""
    return rng.choice(np.array([-1.0, 1.0]), size=shape)


# ---- spectral density --------------------------------------------------------------------
@dataclass
class SpectralDensity:
    """The eigenvalue distribution of an n x n operator as a weighted set of ``nodes``
    (Ritz values) whose ``weights`` sum to 1, pooled over the probes."""

    nodes: np.ndarray
    weights: np.ndarray
    n: int
    n_probes: int

    def density(self, grid: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """The density on ``grid``: each node smoothed by a Gaussian of width ``sigma``
        (default: 1% of the nodes' range); it integrates to 1."""
        number("SpectralDensity.density", "sigma", sigma, above=0, optional=True)
        if sigma is None:
            sigma = max(1e-12, 0.01 * float(np.ptp(self.nodes)))
        grid = np.asarray(grid, dtype=np.float64)
        z = (grid[:, None] - self.nodes[None, :]) / sigma
        return np.exp(-0.5 * z**2) @ self.weights / (sigma * np.sqrt(2 * np.pi))

    def moment(self, p: float) -> float:
        """Estimate of tr(A^p) / n."""
        number("SpectralDensity.moment", "p", p)
        return float(self.weights @ self.nodes**p)

    @property
    def trace(self) -> float:
        return self.n * self.moment(1)


def spectral_density(op, *, n_probes: int = 8, steps: int = 60, seed: int = 0) -> SpectralDensity:
    """Stochastic Lanczos quadrature (Golub & Meurant; Ghorbani et al. 2019).

    For each random unit probe v, ``steps`` Lanczos steps from v give T = S diag(theta) S^T;
    the Gauss quadrature nodes theta_j with weights S[0, j]^2 reproduce v^T f(A) v for
    polynomials f of degree < 2 steps. Averaged over probes this estimates the spectral
    density (1/n) sum_i delta(t - lambda_i). Costs ``n_probes * steps`` products.
    """
    fn = "spectral_density"
    n_probes, steps = count(fn, "n_probes", n_probes), count(fn, "steps", steps)
    A = operator(fn, op, symmetric=True)
    n = A.shape[0]
    rng = generator(fn, seed)
    nodes, weights = [], []
    for _ in range(n_probes):
        v = rademacher(rng, n) / np.sqrt(n)
        result = lanczos(A, min(steps, n), v0=v)
        theta, S = eigh_tridiagonal(result.alpha, result.beta)
        nodes.append(theta)
        weights.append(S[0] ** 2 / n_probes)
    return SpectralDensity(np.concatenate(nodes), np.concatenate(weights), n, n_probes)


# ---- trace ------------------------------------------------------------------------------------
@dataclass
class TraceEstimate:
    """A trace estimate with its standard error (0 where the estimate is exact)."""

    value: float
    stderr: float
    n_products: int
    method: str

    def __float__(self) -> float:
        return self.value


def _hutchinson(A, n: int, m: int, rng) -> TraceEstimate:
    """mean of z^T A z over m random sign vectors z: unbiased, variance
    2 (|A|_F^2 - sum_i A_ii^2) / m."""
    samples = np.array([z @ A.matvec(z) for z in rademacher(rng, (m, n))])
    stderr = float(np.std(samples, ddof=1) / np.sqrt(m)) if m > 1 else float("inf")
    return TraceEstimate(float(np.mean(samples)), stderr, m, "hutchinson")


def _hutch_plus_plus(A, n: int, m: int, rng) -> TraceEstimate:
    """Hutch++ (Meyer, Musco, Musco & Woodruff 2021): the trace of A on the range Q of a
    sketch A S exactly, plus Hutchinson's estimate of what is left, (I - QQ^T) A (I - QQ^T).
    The error falls like 1/m instead of 1/sqrt(m) when A's spectrum is dominated by a
    few large eigenvalues, as a network's Hessian usually is."""
    if m >= n:  # n products with the columns of I give the trace exactly
        return TraceEstimate(float(np.trace(A.matmat(np.eye(n)))), 0.0, n, "hutch++")
    if m < 3:  # a sketch, its product and one probe need 3: plain Hutchinson
        return _hutchinson(A, n, m, rng)
    s = m // 3  # a sketch of rank s < n, then rest >= 1 probes of what it leaves
    Q, _ = np.linalg.qr(A.matmat(rademacher(rng, (n, s))))
    exact = float(np.trace(Q.T @ A.matmat(Q)))
    rest = m - 2 * s
    G = rademacher(rng, (n, rest))
    G = G - Q @ (Q.T @ G)
    samples = np.einsum("ij,ij->j", G, A.matmat(G))
    stderr = float(np.std(samples, ddof=1) / np.sqrt(rest)) if rest > 1 else float("inf")
    return TraceEstimate(exact + float(np.mean(samples)), stderr, m, "hutch++")


TRACE_METHODS = {"hutchinson": _hutchinson, "hutch++": _hutch_plus_plus}


def trace(op, n_probes: int = 200, *, method: str = "hutch++", seed: int = 0) -> TraceEstimate:
    """Estimate tr(A) from ``n_probes`` products with random sign vectors.

    ``method``: "hutch++" (default; Hutchinson's estimator on what a rank-n_probes/3 sketch
    leaves over) or "hutchinson" (plain mean of z^T A z).
    """
    choice("trace", "method", method, TRACE_METHODS)
    n_probes = count("trace", "n_probes", n_probes)
    A = operator("trace", op)
    return TRACE_METHODS[method](A, A.shape[0], n_probes, generator("trace", seed))
