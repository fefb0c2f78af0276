"""NumPy helpers that generated code and the reference evaluator both call (as ``rt.<name>``).

Each is a numerically stable form of a function NumPy lacks.
"""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    # exp(-log(1 + exp(-x))) never overflows and keeps full relative precision in both tails
    return np.exp(-np.logaddexp(0, -x))


def softplus(x):
    # log(1 + exp(x)) without overflow for large x
    return np.logaddexp(0, x)


def index_add(shape, index, g, dtype):
    """Zeros of ``shape`` with ``g`` added at ``index`` (repeated indices accumulate)."""
    out = np.zeros(shape, dtype=dtype)
    if any(isinstance(i, np.ndarray) for i in index):
        np.add.at(out, index, g)  # index arrays may repeat an entry: accumulate
    else:
        out[index] = g  # basic indexing reaches each entry at most once
    return out


def one_hot(labels, depth, dtype):
    out = np.zeros(labels.shape + (depth,), dtype=dtype)
    if labels.ndim == 1:  # the common case, by plain indexing: no index array for the axis
        out[np.arange(labels.shape[0]), labels] = 1
    else:
        np.put_along_axis(out, labels[..., None].astype(np.intp), 1, axis=-1)
    return out


def take_labels(x, labels):
    """x[..., labels] per row: the entry of the last axis picked by each integer label."""
    if x.ndim == 2:
        return x[np.arange(x.shape[0]), labels]
    return np.take_along_axis(x, labels[..., None].astype(np.intp), axis=-1)[..., 0]


def _max_keepdims(x, axis):
    """np.max(x, axis, keepdims=True). NumPy runs one tiny loop per row when the axis is short
    and contiguous (the class axis of logits); over a transposed copy it is one vectorized pass
    per class instead: 5 to 10 times faster for 10 classes, and exactly the same values."""
    last = axis in (-1, x.ndim - 1, (-1,), (x.ndim - 1,))
    if last and x.ndim >= 2 and x.shape[-1] <= 32 and x.size >= 256:
        columns = x.T if x.ndim == 2 else np.moveaxis(x, -1, 0)
        return np.maximum.reduce(np.ascontiguousarray(columns), 0)[..., None]
    return np.maximum.reduce(x, axis, keepdims=True)


def _floating(x):
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def logsumexp(x, axis, keepdims):
    x = _floating(x)
    m = _max_keepdims(x, axis)
    if not np.isfinite(m).all():
        m = np.where(np.isfinite(m), m, 0)  # all -inf rows stay -inf instead of nan
    e = x - m
    np.exp(e, out=e)
    s = np.add.reduce(e, axis, keepdims=True)
    np.log(s, out=s)
    s += m
    return s if keepdims else np.squeeze(s, axis=axis)


def softmax(x, axis):
    e = _floating(x) - _max_keepdims(x, axis)
    np.exp(e, out=e)
    e /= np.add.reduce(e, axis, keepdims=True)
    return e


def log_softmax(x, axis):
    return x - logsumexp(x, axis, True)


def softmax_minus_one_hot(logits, labels, lse=None, out=None):
    """softmax(logits) - one_hot(labels) over the last axis: the cross-entropy gradient.
    ``lse``, the logits' logsumexp when the forward pass computed it, saves the max and sum."""
    if lse is None:
        s = softmax(logits, -1)
    else:
        s = _floating(logits) - lse[..., None]
        np.exp(s, out=s)
    if logits.ndim == 2:
        s[np.arange(s.shape[0]), labels] -= 1
    else:
        np.put_along_axis(
            s, labels[..., None].astype(np.intp), take_labels(s, labels)[..., None] - 1, -1
        )
    if out is None:
        return s
    out[...] = s
    return out


def cross_entropy_from_lse(logits, labels, lse):
    """The cross-entropy given the logits' logsumexp over the last axis."""
    return lse - take_labels(logits, labels)


def cross_entropy(logits, labels):
    return cross_entropy_from_lse(logits, labels, logsumexp(logits, -1, False))
