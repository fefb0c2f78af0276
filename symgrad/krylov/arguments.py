"""Checks of the krylov functions' arguments. A bad one raises ``InputError`` naming the
function, the argument, the value got, what is expected and the caller's file:line; the
checks run before any work, so nothing is changed."""

from __future__ import annotations

import math
import numbers
from typing import NoReturn

import numpy as np
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from ..errors import InputError, format_shape, user_site


def refuse(fn: str, message: str) -> NoReturn:
    raise InputError(f"{fn}: {message} ({user_site()})") from None


def count(fn: str, name: str, value, least: int = 1, *, optional: bool = False):
    """``value``, an int >= ``least`` (or None when ``optional``)."""
    if value is None and optional:
        return None
    value = _scalar(value)
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
        want = "a positive int" if least == 1 else f"an int >= {least}"
        refuse(fn, f"{name} must be {want}{' or None' if optional else ''}, got {value!r}")
    return int(value)


def number(fn: str, name: str, value, *, low=None, above=None, high=None, optional=False):
    """``value``, a finite real number with ``low <= value``, ``above < value`` and
    ``value <= high`` (the bounds that are given), or None when ``optional``."""
    if value is None and optional:
        return None
    value = _scalar(value)
    bounds = [f">= {low}"] if low is not None else []
    bounds += [f"> {above}"] if above is not None else []
    bounds += [f"<= {high}"] if high is not None else []
    fits = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and _finite(value)
        and (low is None or value >= low)
        and (above is None or value > above)
        and (high is None or value <= high)
    )
    if not fits:
        want = " ".join(["a finite number", " and ".join(bounds)]).strip()
        refuse(fn, f"{name} must be {want}{' or None' if optional else ''}, got {value!r}")
    return value


def _finite(value) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float64
        return False


def _scalar(value):
    """A 0-d array's number (np.array(0.5) stands for 0.5); anything else as it is."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biuf":
        return value.item()
    return value


def choice(fn: str, name: str, value, options) -> None:
    if not isinstance(value, str) or value not in options:
        refuse(fn, f"{name} must be one of {sorted(options)}, got {value!r}")


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
    if symmetric and isinstance(op, np.ndarray) and op.dtype.kind in "biuf":
        _check_symmetric(fn, name, np.asarray(op))
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
    """``value`` as a float64 vector of ``n`` entries (any shape holding ``n`` entries)."""
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
    return v.ravel()


def generator(fn: str, seed) -> np.random.Generator:
    """``np.random.default_rng(seed)``."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError):
        refuse(fn, f"seed must be a non-negative int (or None), got {seed!r}")
