"""Where variables live: packed one after another in shared chunks, one pool per dtype.

A variable's array is a view of a chunk, so variables made one after another are adjacent in
memory. The compiler uses that: a run of adjacent variables updated the same way is updated
by one NumPy call, and a bias stored right after its weight matrix forms one ``[W; b]``
matrix, so ``h @ W + b`` is a single matmul of ``[h, 1]`` (see ``compile/layout.py``).

Every array symgrad keeps for itself (variable chunks, kernel workspaces) comes from
``staggered_empty``, which starts each one at its own offset within a memory page.
"""

from __future__ import annotations

import itertools
import math

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
            chunk, used = staggered_empty(max(CHUNK, size + TAIL), value.dtype), 0
        view = chunk[used : used + size].reshape(value.shape)
        view[...] = value
        self._free[value.dtype] = (chunk, used + size)
        return view


PAGE = 4096  # bytes
# an odd number of cache lines: successive arrays start at all 64 line offsets of a page
STAGGER = 11 * 64
_starts = itertools.count()


def staggered_empty(shape, dtype) -> np.ndarray:
    """An uninitialized C-contiguous array, like ``np.empty(shape, dtype)``. One of a page or
    more starts at another offset within its page than the one made before it.

    Arrays whose sizes are whole pages, allocated one after another, otherwise all start at
    the same page offset. A NumPy call reading one and writing another then has its loads
    wait on stores to the same offset (4K aliasing), and the arrays contend for the same
    cache sets: 5-10% of a small training step."""
    dtype = np.dtype(dtype)
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(d) for d in shape)
    size = math.prod(shape)
    if size * dtype.itemsize < PAGE:
        return np.empty(shape, dtype)
    raw = np.empty(size + -(-PAGE // dtype.itemsize), dtype)
    skip = (next(_starts) * STAGGER - address(raw)) % PAGE // dtype.itemsize
    return raw[skip : skip + size].reshape(shape)


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
