"""Matrix products added into an existing array: ``c += alpha * a @ b`` in one pass.

NumPy's matmul always overwrites its output, so a product added to a variable (an SGD step
``W -= lr * h.T @ dz``) costs a buffer and one more pass over ``W`` to add it. The BLAS that
NumPy links has ``gemm``, whose ``beta = 1`` adds the product while computing it. This module
finds that ``gemm`` among NumPy's own libraries through ctypes and checks it on small
products before any kernel uses it. Where it is not found, :func:`accumulator` returns None
and kernels keep the matmul and the add.
"""

from __future__ import annotations

import functools
import os

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
# names NumPy's wheels and common builds give the CBLAS gemm: (prefix, suffix, 64-bit ints)
_NAMES = (
    ("scipy_cblas_", "gemm64_", True),
    ("scipy_cblas_", "gemm", False),
    ("cblas_", "gemm64_", True),
    ("cblas_", "gemm", False),
)
_LETTER = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}


@functools.cache
def _gemm(dtype: np.dtype):
    """The ctypes function of ``cblas_?gemm`` for ``dtype``, or None."""
    if dtype not in _LETTER or os.environ.get("SYMGRAD_NO_GEMM"):
        return None
    import ctypes

    try:
        from numpy._core import _multiarray_umath as core
    except ImportError:  # NumPy 1.x
        from numpy.core import _multiarray_umath as core
    try:
        lib = ctypes.CDLL(core.__file__)  # its symbol lookup reaches the BLAS it links
    except OSError:
        return None
    real = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    for prefix, suffix, wide in _NAMES:
        fn = getattr(lib, f"{prefix}{_LETTER[dtype]}{suffix}", None)
        if fn is None:
            continue
        i = ctypes.c_int64 if wide else ctypes.c_int
        p = ctypes.c_void_p
        fn.argtypes = [ctypes.c_int] * 3 + [i] * 3 + [real, p, i, p, i, real, p, i]
        fn.restype = None
        return fn if _agrees(fn, dtype) else None
    return None


def _agrees(fn, dtype) -> bool:
    """Whether ``fn`` computes what NumPy does on small products in every transpose."""
    rng = np.random.default_rng(0)
    for ta in (False, True):
        for tb in (False, True):
            a = rng.integers(-4, 5, (3, 2) if not ta else (2, 3)).astype(dtype)
            b = rng.integers(-4, 5, (2, 5) if not tb else (5, 2)).astype(dtype)
            c = rng.integers(-4, 5, (3, 5)).astype(dtype)
            want = c - 0.5 * ((a.T if ta else a) @ (b.T if tb else b))
            fn(
                *(_ROW_MAJOR, _TRANS if ta else _NO_TRANS, _TRANS if tb else _NO_TRANS, 3, 5, 2),
                *(-0.5, a.ctypes.data, a.shape[1], b.ctypes.data, b.shape[1]),
                *(1.0, c.ctypes.data, 5),
            )
            if not np.array_equal(c, want):
                return False
    return True


def _operand(x: np.ndarray) -> tuple[int, int] | None:
    """(transpose flag, leading dimension) of a 2-D ``x`` as a row-major BLAS operand."""
    if x.flags.c_contiguous:
        return _NO_TRANS, max(1, x.shape[1])
    if x.flags.f_contiguous:
        return _TRANS, max(1, x.shape[0])
    return None


class Accumulator:
    """``c += alpha * a @ b`` for 2-D ``a`` and ``b``, into the C-contiguous ``c`` given when
    built or, if built without one, passed on each call. Operands are checked on each call,
    and any that BLAS cannot read in place (strided, another dtype, overlapping ``c``) makes
    that call go through NumPy instead. Arrays declared with :meth:`fix` have their layouts
    and addresses read once."""

    def __init__(self, gemm, dtype: np.dtype, alpha: float, c: np.ndarray | None = None):
        self.gemm, self.dtype, self.alpha, self.c = gemm, dtype, alpha, c
        self.target = None if c is None else _target(c)
        self.static: dict[int, tuple] = {}

    def fix(self, *arrays: np.ndarray) -> None:
        """Declare ``arrays`` passed as the same objects, unchanged in place, on every call."""
        for x in arrays:
            found = self._check(x, self.target)
            if found is not None:
                self.static[id(x)] = (x, *found)

    def _read(self, x: np.ndarray, target):
        known = self.static.get(id(x))
        if known is not None and known[0] is x and target is self.target:
            return known[1], known[2]
        return self._check(x, target)

    def _check(self, x: np.ndarray, target):
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.dtype != self.dtype:
            return None
        layout = _operand(x)
        if layout is None:
            return None
        ptr = x.ctypes.data
        if target is not None and ptr < target[1] + target[2] and target[1] < ptr + x.nbytes:
            return None  # gemm must not read what it writes
        return layout, ptr

    def __call__(self, a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None) -> None:
        target = self.target if c is None else _target(c)
        ra, rb = self._read(a, target), self._read(b, target)
        c = self.c if c is None else c
        if ra is None or rb is None or target is None or target[0] != self.dtype:
            np.add(c, self.alpha * np.matmul(a, b), out=c)
            return
        m, n = c.shape
        if a.shape[0] != m or b.shape != (a.shape[1], n):
            np.add(c, self.alpha * np.matmul(a, b), out=c)  # NumPy names the mismatch
            return
        (ta, lda), pa = ra
        (tb, ldb), pb = rb
        self.gemm(
            *(_ROW_MAJOR, ta, tb, m, n, a.shape[1]),
            *(self.alpha, pa, lda, pb, ldb, 1.0, target[1], n),
        )


def _target(c: np.ndarray):
    """(dtype, address, bytes) of an array gemm may write, or None."""
    if c.ndim != 2 or not c.flags.c_contiguous or not c.flags.writeable or c.size == 0:
        return None
    return c.dtype, c.ctypes.data, c.nbytes


def available(dtype) -> bool:
    """Whether BLAS ``gemm`` was found for ``dtype`` (float32 and float64 only)."""
    return _gemm(np.dtype(dtype)) is not None


def accumulator(c: np.ndarray | None, alpha: float, dtype=None) -> Accumulator | None:
    """An :class:`Accumulator` into ``c`` (or, with ``c`` None, into arrays of ``dtype``
    passed on each call), or None where BLAS ``gemm`` is not available for the dtype or ``c``
    is not a writable C-contiguous matrix."""
    if c is not None and _target(c) is None:
        return None
    dtype = np.dtype(c.dtype if c is not None else dtype)
    gemm = _gemm(dtype)
    if gemm is None:
        return None
    return Accumulator(gemm, dtype, float(alpha), c)
