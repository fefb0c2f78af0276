"""Parameters as slices of one flat vector, so a Hessian over all of them is one matrix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ShapeError, user_site
from ..graph import Tensor
from ..ops import reshape


def split_flat(theta: Tensor, shapes: Sequence[tuple]) -> list[Tensor]:
    """Consecutive slices of the 1-D ``theta`` reshaped to ``shapes`` (in their order).

    ``sg.hessian(f(*split_flat(theta, shapes)), theta)`` is then the full Hessian over every
    parameter, in the order ``krylov.flatten`` and ``get_flat`` use.
    """
    if not isinstance(theta, Tensor) or theta.ndim != 1 or isinstance(theta.shape[0], str):
        got = (
            theta.graph.describe(theta.node) if isinstance(theta, Tensor) else type(theta).__name__
        )
        raise ShapeError(f"split_flat needs a 1-D Tensor of known size, got {got} ({user_site()})")
    shapes, sizes = list(shapes), []
    for shape in shapes:  # all checked before any node is built
        if not isinstance(shape, (tuple, list)) or not all(_is_size(d) for d in shape):
            raise ShapeError(
                f"split_flat: a shape is a tuple of ints >= 0, got {shape!r} ({user_site()})"
            )
        sizes.append(int(np.prod(shape, dtype=np.int64)))
    if sum(sizes) != theta.shape[0]:
        raise ShapeError(
            f"split_flat: shapes hold {sum(sizes)} values, {theta.graph.describe(theta.node)} "
            f"has {theta.shape[0]} ({user_site()})"
        )
    pieces, offset = [], 0
    for shape, size in zip(shapes, sizes):
        pieces.append(reshape(theta[offset : offset + size], tuple(shape)))
        offset += size
    return pieces


def _is_size(d) -> bool:
    return isinstance(d, (int, np.integer)) and not isinstance(d, (bool, np.bool_)) and d >= 0
