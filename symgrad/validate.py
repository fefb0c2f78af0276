"""Checks of numeric settings: counts, bounded numbers, choices among names, seeds.

A bad value raises ``InputError`` naming the function, the setting, the value got, what is
expected and the caller's file:line. Callers check before any work, so nothing is changed.
"""

from __future__ import annotations

import math
import numbers
from typing import NoReturn

import numpy as np

from .errors import InputError, user_site


def refuse(fn: str, message: str) -> NoReturn:
    raise InputError(f"{fn}: {message} ({user_site()})") from None


def count(fn: str, name: str, value, least: int = 1, *, optional: bool = False):
    """``value``, an int >= ``least`` (or None when ``optional``)."""
    if value is None and optional:
        return None
    value = scalar(value)
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < least:
        want = "a positive int" if least == 1 else f"an int >= {least}"
        refuse(fn, f"{name} must be {want}{' or None' if optional else ''}, got {value!r}")
    return int(value)


def number(
    fn: str, name: str, value, *, low=None, above=None, high=None, below=None, optional=False
):
    """``value``, a finite real number with ``low <= value``, ``above < value``,
    ``value <= high`` and ``value < below`` (the bounds that are given), or None when
    ``optional``."""
    if value is None and optional:
        return None
    value = scalar(value)
    bounds = [f">= {low}"] if low is not None else []
    bounds += [f"> {above}"] if above is not None else []
    bounds += [f"<= {high}"] if high is not None else []
    bounds += [f"< {below}"] if below is not None else []
    fits = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and _finite(value)
        and (low is None or value >= low)
        and (above is None or value > above)
        and (high is None or value <= high)
        and (below is None or value < below)
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


def scalar(value):
    """A 0-d array's number (np.array(0.5) stands for 0.5); anything else as it is."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "biuf":
        return value.item()
    return value


def choice(fn: str, name: str, value, options) -> None:
    if not isinstance(value, str) or value not in options:
        refuse(fn, f"{name} must be one of {sorted(options)}, got {value!r}")


def generator(fn: str, seed) -> np.random.Generator:
    """``np.random.default_rng(seed)``."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError):
        refuse(fn, f"seed must be a non-negative int (or None), got {seed!r}")
