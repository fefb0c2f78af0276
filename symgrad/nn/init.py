"""Weight initializers drawn from a seeded ``numpy.random.Generator``.

A weight matrix of shape (fan_in, fan_out) maps fan_in units to fan_out units. He
initialization keeps the activations' variance constant through ReLU layers (He et al. 2015);
Glorot (Xavier) keeps it through tanh/sigmoid layers in both directions (Glorot & Bengio 2010).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import GraphError, user_site

Initializer = Callable[[np.random.Generator, tuple, str], np.ndarray]


def _fans(shape: tuple) -> tuple[int, int]:
    fan_in = shape[0] if len(shape) > 1 else 1
    return fan_in, shape[-1]


def he_normal(rng: np.random.Generator, shape: tuple, dtype: str = "float64") -> np.ndarray:
    """Normal with variance 2 / fan_in."""
    fan_in, _ = _fans(shape)
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(dtype)


def he_uniform(rng: np.random.Generator, shape: tuple, dtype: str = "float64") -> np.ndarray:
    """Uniform on +-sqrt(6 / fan_in) (variance 2 / fan_in)."""
    fan_in, _ = _fans(shape)
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, shape).astype(dtype)


def glorot_normal(rng: np.random.Generator, shape: tuple, dtype: str = "float64") -> np.ndarray:
    """Normal with variance 2 / (fan_in + fan_out)."""
    fan_in, fan_out = _fans(shape)
    return rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), shape).astype(dtype)


def glorot_uniform(rng: np.random.Generator, shape: tuple, dtype: str = "float64") -> np.ndarray:
    """Uniform on +-sqrt(6 / (fan_in + fan_out)) (variance 2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, shape).astype(dtype)


def zeros(rng: np.random.Generator, shape: tuple, dtype: str = "float64") -> np.ndarray:
    """All zeros (``rng`` unused): the biases' initializer."""
    return np.zeros(shape, dtype)


INITIALIZERS: dict[str, Initializer] = {
    "he": he_normal,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
    "glorot": glorot_uniform,
    "glorot_normal": glorot_normal,
    "glorot_uniform": glorot_uniform,
    "xavier": glorot_uniform,
    "zeros": zeros,
}


def get_initializer(init: str | Initializer) -> Initializer:
    """An initializer by name (see ``INITIALIZERS``) or the callable itself."""
    if callable(init):
        return init
    try:
        return INITIALIZERS[init]
    except KeyError:
        known = sorted(INITIALIZERS)
        raise GraphError(f"unknown initializer {init!r}; known: {known} ({user_site()})") from None
