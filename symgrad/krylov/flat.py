"""One flat vector for a list of parameters: the space Krylov methods work in."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ShapeError
from ..graph import Tensor


def sizes(params: Sequence[Tensor]) -> list[int]:
    """Number of entries of each parameter (their shapes must be concrete)."""
    out = []
    for p in params:
        if any(isinstance(d, str) for d in p.shape):
            raise ShapeError(f"{p.graph.describe(p.node)}: parameters need concrete shapes")
        out.append(int(np.prod(p.shape)))
    return out


def flatten(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The arrays' entries, one after another, as one vector."""
    return np.concatenate([np.ravel(a) for a in arrays])


def unflatten(vector: np.ndarray, params: Sequence[Tensor]) -> list[np.ndarray]:
    """Pieces of ``vector`` shaped like ``params`` (views where possible)."""
    out, offset = [], 0
    for p, k in zip(params, sizes(params)):
        out.append(np.reshape(vector[offset : offset + k], p.shape))
        offset += k
    if offset != len(vector):
        raise ShapeError(f"a vector of {len(vector)} entries for parameters of {offset}")
    return out


def get_flat(params: Sequence[Tensor]) -> np.ndarray:
    """A copy of the variables' current values as one vector."""
    return flatten([p.value for p in params])


def set_flat(params: Sequence[Tensor], vector: np.ndarray) -> None:
    """Write ``vector`` into the variables in place (compiled functions see the new values)."""
    for p, piece in zip(params, unflatten(vector, params)):
        p.value[...] = piece
