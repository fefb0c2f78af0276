"""NumPy helpers that generated code and the reference evaluator both call (as ``rt.<name>``).

Each is a numerically stable form of a function NumPy lacks. They are called once per op in
every compiled step, on arrays that are often small, so each is written as few NumPy calls.
"""

from __future__ import annotations

import functools
import math

import numpy as np

# last axes up to this long are reduced over a contiguous copy with the axis moved first
_SHORT_AXIS = 32
# up to this many elements a logsumexp is one np.logaddexp.reduce: a single call, though
# about 40 ns an element, where the shifted form is 8 calls of about 0.6 us
_TINY = 64


def sigmoid(x):
    """1 / (1 + exp(-x)) as exp(min(x, 0)) / (1 + exp(-|x|)): no exp overflows, and both
    tails keep full relative precision (e / (1 + e) for x < 0). Two exps, several times
    faster than np.logaddexp."""
    x = _floating(x)  # -x of an unsigned int wraps around
    out = np.exp(np.minimum(x, 0))
    out /= 1 + np.exp(-np.abs(x))
    return out


def softplus(x):
    """log(1 + exp(x)) as max(x, 0) + log1p(exp(-|x|)): no overflow, full precision where
    it is tiny (x << 0), and several times faster than np.logaddexp(0, x)."""
    x = _floating(x)  # -x of an unsigned int wraps around, of a bool fails
    out = np.log1p(np.exp(-np.abs(x)))
    out += np.maximum(x, 0)
    return out


def index_add(shape, index, g, dtype):
    """Zeros of ``shape`` with ``g`` added at ``index`` (repeated indices accumulate)."""
    out = np.zeros(shape, dtype=dtype)
    if any(isinstance(i, np.ndarray) for i in index):
        np.add.at(out, index, g)  # index arrays may repeat an entry: accumulate
    else:
        out[index] = g  # basic indexing reaches each entry at most once
    return out


@functools.lru_cache(maxsize=64)
def row_indices(n: int) -> np.ndarray:
    """np.arange(n), read-only: the row index of a per-row pick, cached per batch size."""
    rows = np.arange(n)
    rows.flags.writeable = False  # shared by every call: nobody may write into it
    return rows


@functools.cache
def _float_max(dtype: np.dtype):
    return np.finfo(dtype).max


def _finite_max(x, axis, keepdims: bool = True):
    """The max over ``axis``, clipped into the dtype's finite range: a logsumexp's shift (an
    all -inf row gets a finite one; a +inf entry gives inf - max = inf, not inf - inf = nan)."""
    top = _float_max(x.dtype)
    m = np.maximum.reduce(x, axis, None, None, keepdims, -top)
    return np.minimum(m, top, out=m)


@functools.cache
def _one(dtype: np.dtype):
    # ufunc.at takes its fast path only for a value of the array's own dtype
    return dtype.type(1)


def one_hot(labels, depth, dtype):
    out = np.zeros(labels.shape + (depth,), dtype=dtype)
    if labels.ndim == 1:  # the common case, by flat positions: no index array for the axis
        out.reshape(-1)[label_positions(out.shape, labels)] = 1
    else:
        np.put_along_axis(out, _checked(labels, depth)[..., None].astype(np.intp), 1, axis=-1)
    return out


def label_positions(shape, labels) -> np.ndarray:
    """Flat positions of x[i, labels[i]] in a C-contiguous 2-D x of ``shape``; a label outside
    [0, classes) raises. One call, and the 1-D indexing it feeds skips NumPy's general fancy
    indexing machinery (and its few KiB of scratch memory on every call)."""
    try:
        return np.ravel_multi_index((row_indices(shape[0]), labels), shape)
    except ValueError:
        _checked(labels, shape[1])
        raise


def check_labels(labels, classes: int) -> None:
    """Raise IndexError if a label lies outside [0, classes)."""
    _checked(np.asarray(labels), classes)


def _checked(labels, classes: int):
    """``labels``, after raising IndexError if one lies outside [0, classes) (NumPy's own
    indexing would wrap a negative label around to a class from the end)."""
    bad = labels[(labels < 0) | (labels >= classes)]
    if bad.size:
        raise IndexError(
            f"labels must lie in [0, {classes}) for {classes} classes; got {bad[:5].tolist()}"
        )
    return labels


def take_labels(x, labels):
    """x[..., labels] per row: the entry of the last axis picked by each integer label."""
    if x.ndim == 2:
        if x.flags.c_contiguous:
            return x.reshape(-1)[label_positions(x.shape, labels)]
        return x[row_indices(x.shape[0]), _checked(labels, x.shape[1])]
    at = _checked(labels, x.shape[-1])[..., None].astype(np.intp)
    return np.take_along_axis(x, at, axis=-1)[..., 0]


def _is_last(axis, ndim: int) -> bool:
    return axis in (-1, ndim - 1, (-1,), (ndim - 1,))


def _floating(x):
    """``x`` in the float dtype NumPy's exp gives it (what the ops' inference says too):
    float16 for bools and 8-bit integers, float32 for 16-bit ones, float64 for wider."""
    x = x if hasattr(x, "dtype") else np.asarray(x)  # a Python number
    return x if x.dtype.kind == "f" else x.astype(_exp_dtype(x.dtype))


@functools.cache
def _exp_dtype(dtype: np.dtype) -> np.dtype:
    return np.exp(np.zeros(1, dtype)).dtype


def _into(out, value):
    """``value`` written into ``out``, or as a new C-ordered array when ``out`` is None."""
    if out is None:
        return np.array(value, order="C")
    np.copyto(out, value)
    return out


def logsumexp(x, axis, keepdims, out=None):
    """log(sum(exp(x))) over ``axis``, shifted by the max so nothing overflows: a row of -inf
    gives -inf, a +inf entry gives +inf. ``out``, if given, receives the result."""
    x = _floating(x)
    if axis == ():  # over no axes (a 0-d x, say): each entry alone, log(exp(x)) = x
        return _into(out, x)
    last = x.ndim - 1
    if 0 < x.size <= _TINY and last >= 1 and (not isinstance(axis, tuple) or len(axis) == 1):
        # log(exp(a) + exp(b)) pair by pair: -inf and +inf rows come out right by themselves
        return np.logaddexp.reduce(x, axis, None, out, keepdims)
    if not _short_last_axis(x.shape, axis):
        return _logsumexp_rows(x, axis, keepdims, out)
    e, m = _shifted_exp_by_class(x)
    s = np.add.reduce(e, 0, None, out[..., 0] if keepdims and out is not None else out)
    np.log(s, out=s)
    s += m
    if out is not None:
        return out
    return s[..., None] if keepdims else s


def _short_last_axis(shape: tuple, axis) -> bool:
    return len(shape) >= 2 and shape[-1] <= _SHORT_AXIS and _is_last(axis, len(shape))


def _shifted_exp_by_class(x, work=None):
    """(exp(x - m) with the last axis moved first, m): m the row maxima, clipped finite. The
    class axis moved first and copied contiguous makes each step one vectorized pass per class
    instead of a tiny loop per row, and the copy is the workspace (``work`` if given)."""
    moved = x.T if x.ndim == 2 else np.moveaxis(x, -1, 0)
    if work is None:
        e = np.array(moved, order="C")
    else:  # (a call less than _into: the head runs this on every training step)
        e = work
        np.copyto(e, moved)
    m = _finite_max(e, 0, keepdims=False)
    np.subtract(e, m, out=e)
    np.exp(e, out=e)
    return e, m


def _logsumexp_rows(x, axis, keepdims, out):
    """logsumexp over any axes, reduced along them where they lie."""
    m = _finite_max(x, axis)
    e = x - m
    np.exp(e, out=e)
    s = np.add.reduce(e, axis, None, None, True)
    np.log(s, out=s)
    s += m
    if not keepdims:
        s = np.squeeze(s, axis)
    if out is None:
        return s
    out[...] = s
    return out


def softmax_workspace(shape: tuple, axis) -> tuple | None:
    """The shape of the workspace softmax uses on an array of ``shape`` (its last axis moved
    first), or None where it works along the rows in place."""
    if not _short_last_axis(shape, axis) or math.prod(shape) < 256:
        return None
    return (shape[-1], *shape[:-1])


def softmax(x, axis, out=None, work=None):
    """exp(x) / sum(exp(x)) over ``axis``, shifted by the max; written into ``out`` if given.
    ``work``, an array of ``softmax_workspace(x.shape, axis)`` and the result's dtype, saves
    allocating that workspace."""
    x = _floating(x)
    if axis == ():  # over no axes: each entry alone, exp(x - x) / exp(x - x)
        return _into(out, np.exp(x - x) / np.exp(x - x))
    if x.size == 0:  # nothing to normalize (the max below has no identity)
        return _into(out, np.exp(x))
    if softmax_workspace(x.shape, axis) is not None:
        e, _ = _shifted_exp_by_class(x, work)
        e *= np.reciprocal(np.add.reduce(e, 0))  # a broadcast divide runs 3x slower here
        back = e.T if x.ndim == 2 else np.moveaxis(e, 0, -1)
        if out is None:
            return np.ascontiguousarray(back)
        np.copyto(out, back)
        return out
    e = np.subtract(x, np.maximum.reduce(x, axis, None, None, True), out=out)
    np.exp(e, out=e)
    e /= np.add.reduce(e, axis, None, None, True)
    return e


def log_softmax(x, axis):
    """(x - max) - log(sum(exp(x - max))) over ``axis``: exact for the largest entries where
    x - logsumexp(x) would lose the rounding of a logsumexp of large logits (1e10 in float32:
    log(1/3) came out 0)."""
    x = _floating(x)
    if axis == () or x.size == 0:
        return x - logsumexp(x, axis, True)
    d = x - _finite_max(x, axis)
    e = np.exp(d)
    s = np.add.reduce(e, axis, None, None, True)
    return np.subtract(d, np.log(s, out=s), out=d)


def softmax_minus_one_hot(logits, labels, lse=None, scale=None, out=None):
    """scale * (softmax(logits) - one_hot(labels)) over the last axis: the cross-entropy
    gradient, with ``scale`` (0-d, or one per row with a trailing axis of 1) the cotangent of
    the losses. ``lse``, the logits' logsumexp when the forward pass computed it, saves the
    max and the sum. ``out``, if given, receives the result."""
    if lse is None:
        s = softmax(logits, -1, out)
    else:
        s = np.subtract(logits, lse[..., None], out=out)
        np.exp(s, out=s)
    if scale is not None:
        np.multiply(s, scale, out=s)
    _subtract_at_labels(s, labels, scale)
    return s


def _subtract_at_labels(grad, labels, scale, at=None) -> None:
    """grad[..., labels] -= scale (1 when None; one per row if it has a trailing axis of 1),
    in place; ``at`` the flat label positions in a C-contiguous 2-D grad, if known."""
    step = _one(grad.dtype) if scale is None else scale if scale.ndim == 0 else scale[..., 0]
    if at is not None and grad.flags.c_contiguous:  # each row's labelled entry reached once
        grad.reshape(-1)[at] -= step
        return
    if grad.ndim == 2 and grad.flags.c_contiguous:
        grad.reshape(-1)[label_positions(grad.shape, labels)] -= step
        return
    index = (*np.indices(labels.shape, sparse=True), _checked(labels, grad.shape[-1]))
    np.subtract.at(grad, index, step)


def minus_one_hot(x, labels, scale=None, out=None):
    """scale * (x - one_hot(labels)) over the last axis, with no one-hot matrix: x (scaled,
    into ``out`` if given, which may be x itself) with ``scale`` taken off each row's
    labelled entry; ``scale`` as in softmax_minus_one_hot."""
    if scale is not None:
        out = np.multiply(x, scale, out=out)
    elif out is None:
        out = np.array(x)
    elif out is not x:
        np.copyto(out, x)
    _subtract_at_labels(out, labels, scale)
    return out


def head_workspace(shape: tuple) -> tuple | None:
    """The shape of the workspace softmax_cross_entropy uses on logits of ``shape`` (the
    class axis moved first), or None where it needs none."""
    if math.prod(shape) <= _TINY or shape[1] > _SHORT_AXIS:
        return None
    return shape[1], shape[0]


def softmax_cross_entropy(logits, labels, losses, grad, scale=None, work=None):
    """The cross-entropy of each row of 2-D ``logits`` against integer ``labels`` into
    ``losses``, and its gradient ``scale * (softmax(logits) - one_hot(labels))`` into ``grad``
    (``scale`` as in softmax_minus_one_hot): one max, one exp and one sum for both, where the
    separate ops compute the exp twice. ``grad`` is written once the logits are read and
    ``losses`` last, so ``losses`` may share memory with any argument. ``work``, an array of
    ``head_workspace(logits.shape)`` and the logits' dtype, saves allocating that workspace."""
    at = label_positions(logits.shape, labels) if logits.flags.c_contiguous else None
    picked = logits.reshape(-1).take(at) if at is not None else take_labels(logits, labels)
    if logits.size <= _TINY:  # one logaddexp reduce, as in logsumexp, then exp(logits - lse)
        # in float64: lse's rounding grows with the logits (3e-5 at 1000 in float32, 1e-13 in
        # float64), and two more calls on a few elements cost less than the shifted form
        z = logits if logits.dtype == np.float64 else logits.astype(np.float64)
        lse = np.logaddexp.reduce(z, 1)
        e = np.subtract(z, lse[:, None], out=grad if z is logits else z)
        np.exp(e, out=e)
        if scale is not None:
            np.multiply(e, scale, out=e)
        if e is not grad:
            np.copyto(grad, e)
        _subtract_at_labels(grad, labels, scale, at)
        return np.subtract(lse, picked, out=losses, casting="same_kind")
    if work is not None or head_workspace(logits.shape) is not None:  # class axis first
        e, m = _shifted_exp_by_class(logits, work)
        s = np.add.reduce(e, 0)
    else:
        m = _finite_max(logits, 1)
        e = np.subtract(logits, m, out=grad)
        np.exp(e, out=e)
        s = np.add.reduce(e, 1, None, None, True)
    if scale is None:
        e *= np.reciprocal(s)
    else:  # a per-row scale lines up with the sums in either layout
        e *= np.divide(scale if scale.ndim == 0 or e is grad else scale[:, 0], s)
    if e is not grad:
        np.copyto(grad, e.T)
    # log(s) - (picked - m): the label's logit less the shift is exact when it is the max
    lse = np.log(s, out=s).reshape(-1)
    np.subtract(picked, m.reshape(-1), out=picked)  # (a fresh array: take copies)
    _subtract_at_labels(grad, labels, scale, at)
    return np.subtract(lse, picked, out=losses)


def cross_entropy_from_lse(logits, labels, lse, out=None):
    """The cross-entropy given the logits' logsumexp over the last axis."""
    return np.subtract(lse, take_labels(logits, labels), out=out)


def cross_entropy(logits, labels):
    return cross_entropy_from_lse(logits, labels, logsumexp(logits, -1, False))
