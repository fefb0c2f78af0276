"""Where variables live: packed one after another in shared chunks, one pool per dtype.

A variable's array is a view of a chunk, so variables made one after another are adjacent in
memory. The compiler uses that: a run of adjacent variables updated the same way is updated
by one NumPy call, and a bias stored right after its weight matrix forms one ``[W; b]``
matrix, so ``h @ W + b`` is a single matmul of ``[h, 1]`` (see ``compile/layout.py``).
"""

from __future__ import annotations

import numpy as np

CHUNK = 1 << 15  # elements: small variables share a chunk
TAIL = 1 << 12  # room kept after a big variable, for the bias that usually follows it


class VariableStorage:
    """Hands out variable arrays from chunks of one dtype, each next to the previous one."""

    def __init__(self) -> None:
        self._free: dict[np.dtype, tuple[np.ndarray, int]] = {}  # dtype -> (chunk, used)

    def place(self, value: np.ndarray) -> np.ndarray:
        """A view of chunk memory holding a copy of ``value`` (C order)."""
        size = value.size
        chunk, used = self._free.get(value.dtype, (None, 0))
        if chunk is None or used + size > chunk.size:
            chunk, used = np.empty(max(CHUNK, size + TAIL), value.dtype), 0
        view = chunk[used : used + size].reshape(value.shape)
        view[...] = value
        self._free[value.dtype] = (chunk, used + size)
        return view


def address(a: np.ndarray) -> int:
    """The address of ``a``'s first element."""
    return a.__array_interface__["data"][0]


def follows(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether ``second`` starts where the C-contiguous ``first`` ends, in the same memory."""
    return (
        first.dtype == second.dtype
        and first.flags.c_contiguous
        and second.flags.c_contiguous
        and address(first) + first.nbytes == address(second)
    )
