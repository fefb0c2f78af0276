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
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
        want = "a positive int" if least == 1 else f"an int >= {least}"
        refuse(fn, f"{name} must be {want}{' or None' if optional else ''}, got {value!r}")
    return int(value)


def number(fn: str, name: str, value, *, low=None, above=None, high=None, optional=False):
    """``value``, a finite real number with ``low <= value``, ``above < value`` and
    ``value <= high`` (the bounds that are given), or None when ``optional``."""
    if value is None and optional:
        return None
    bounds = [f">= {low}"] if low is not None else []
    bounds += [f"> {above}"] if above is not None else []
    bounds += [f"<= {high}"] if high is not None else []
    fits = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (low is None or value >= low)
        and (above is None or value > above)
        and (high is None or value <= high)
    )
    if not fits:
        want = " ".join(["a finite number", " and ".join(bounds)]).strip()
        refuse(fn, f"{name} must be {want}{' or None' if optional else ''}, got {value!r}")
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
    if symmetric and isinstance(op, np.ndarray):
        if not np.all(np.isfinite(op)):
            refuse(fn, f"{name} has nan or inf entries")
        scale = float(np.max(np.abs(op), initial=0.0))
        dtype = op.dtype if np.issubdtype(op.dtype, np.inexact) else np.float64
        if not np.allclose(op, op.T, rtol=0.0, atol=np.sqrt(np.finfo(dtype).eps) * scale):
            gap = float(np.max(np.abs(op - op.T)))
            refuse(
                fn,
                f"{name} must be symmetric, got a {A.shape[0]} x {A.shape[1]} matrix with "
                f"max |A - A^T| = {gap:.3g} (max |A| = {scale:.3g})",
            )
    return A


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
