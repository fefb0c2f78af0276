"""Checks of the krylov functions' arguments: matrices and operators, vectors, and (from
``symgrad.validate``) counts, numbers, choices and seeds. A bad one raises ``InputError``
naming the function, the argument, the value got, what is expected and the caller's
file:line; the checks run before any work, so nothing is changed."""

from __future__ import annotations

import math

import numpy as np
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from ..errors import format_shape
from ..validate import choice, count, generator, number, refuse

__all__ = ["choice", "count", "generator", "number", "operator", "refuse", "vector"]


def operator(fn: str, op, *, symmetric: bool = False, name: str = "op") -> LinearOperator:
    """``op`` (a LinearOperator, a matrix or anything ``aslinearoperator`` takes) as a square
    LinearOperator. With ``symmetric``, a dense matrix must be symmetric up to rounding;
    an operator seen only through products is taken at its word (checking costs products)."""
    if isinstance(op, np.ndarray) and op.ndim != 2:
        refuse(
            fn, f"{name} must be a square matrix, got an array of shape {format_shape(op.shape)}"
        )
    try:
        A = aslinearoperator(op)
    except (TypeError, ValueError):
        refuse(fn, f"{name} must be a LinearOperator or a square matrix, got {type(op).__name__}")
    if len(A.shape) != 2 or A.shape[0] != A.shape[1] or A.shape[0] == 0:
        refuse(fn, f"{name} must be square and not empty, got shape {format_shape(A.shape)}")
    if np.dtype(A.dtype).kind == "c":  # the methods assume real symmetric operators
        refuse(fn, f"{name} must be real, got a {A.dtype} operator")
    if isinstance(op, np.ndarray) and op.dtype.kind in "biuf":
        if symmetric:
            _check_symmetric(fn, name, np.asarray(op))
        elif not np.isfinite(op).all():
            refuse(fn, f"{name} has nan or inf entries")
    return A


# a dense matrix is refused as not symmetric when, for random u and v, u^T A v and v^T A u
# differ by more than this times ||A||_F: far above rounding (a float32 Hessian read in
# float64 differs by ~1e-7), far below a matrix that is not symmetric at all (~1)
ASYMMETRY = 1e-4


def _check_symmetric(fn: str, name: str, a: np.ndarray) -> None:
    """Refuse a dense matrix with nan or inf entries or that is not symmetric: two products
    with random vectors (the krylov methods make many), not a pass over A^T."""
    u, v = np.random.default_rng(0).standard_normal((2, a.shape[0]))
    gap = abs(float(u @ (a @ v)) - float(v @ (a @ u)))
    scale = float(np.linalg.norm(a.astype(np.float64, copy=False)))
    if not (math.isfinite(gap) and math.isfinite(scale)):
        refuse(fn, f"{name} has nan or inf entries")
    if gap > ASYMMETRY * scale:
        refuse(
            fn,
            f"{name} must be symmetric: for random u, v, |u^T A v - v^T A u| = {gap:.3g} "
            f"where ||A|| = {scale:.3g} ({a.shape[0]} x {a.shape[1]})",
        )


def vector(fn: str, name: str, value, n: int) -> np.ndarray:
    """``value`` as a float64 vector of ``n`` finite entries (any shape holding ``n``)."""
    if np.iscomplexobj(value):  # float64 would drop the imaginary parts with a warning
        refuse(fn, f"{name} must be real, got {np.asarray(value).dtype} entries")
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        refuse(fn, f"{name} must be a vector of {n} numbers, got {type(value).__name__}")
    if v.size != n:
        refuse(
            fn,
            f"{name} must have {n} entries (the operator is {n} x {n}), "
            f"got shape {format_shape(v.shape)}",
        )
    if not np.isfinite(v).all():
        refuse(fn, f"{name} has entries that are not finite (nan or inf)")
    return v.ravel()
