"""Krylov methods on compiled curvature products: a Hessian or Gauss-Newton matrix seen only
through products with vectors, as a ``scipy.sparse.linalg.LinearOperator``.

    op = krylov.hvp_operator(loss, params, {X: Xb, y: yb})
    krylov.top_eigenvalues(op, 5)                   # Lanczos, full reorthogonalization
    scipy.sparse.linalg.eigsh(op, k=5, which="LA")  # scipy works on it too
    krylov.trace(op, 200)                           # Hutch++ / Hutchinson
    krylov.spectral_density(op)                     # stochastic Lanczos quadrature
    nn.fit(net, X, y, optimizer=krylov.HessianFree(), batch_size=None)
"""

from .cg import CGResult, conjugate_gradient
from .flat import flatten, get_flat, set_flat, unflatten
from .hessian_free import HessianFree, HessianFreeStep, Record
from .lanczos import LanczosResult, lanczos, top_eigenvalues
from .operators import CurvatureOperator, damped, gnvp_operator, hvp_operator
from .spectrum import SpectralDensity, TraceEstimate, spectral_density, trace

__all__ = [
    "CGResult",
    "CurvatureOperator",
    "HessianFree",
    "HessianFreeStep",
    "LanczosResult",
    "Record",
    "SpectralDensity",
    "TraceEstimate",
    "conjugate_gradient",
    "damped",
    "flatten",
    "get_flat",
    "gnvp_operator",
    "hvp_operator",
    "lanczos",
    "set_flat",
    "spectral_density",
    "top_eigenvalues",
    "trace",
    "unflatten",
]
