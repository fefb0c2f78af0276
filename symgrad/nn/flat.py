"""Parameters as slices of one flat vector, so a Hessian over all of them is one matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..graph import Tensor
from ..ops import reshape


def split_flat(theta: Tensor, shapes: Sequence[tuple]) -> list[Tensor]:
    """Consecutive slices of the 1-D ``theta`` reshaped to ``shapes`` (in their order).

    ``sg.hessian(f(*split_flat(theta, shapes)), theta)`` is then the full Hessian over every
    parameter, in the order ``krylov.flatten`` and ``get_flat`` use.
    """
    pieces, offset = [], 0
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        pieces.append(reshape(theta[offset : offset + size], tuple(shape)))
        offset += size
    if offset != theta.shape[0]:
        raise ValueError(f"split_flat: shapes hold {offset} values, theta has {theta.shape[0]}")
    return pieces
