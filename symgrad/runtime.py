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
    np.add.at(out, index, g)
    return out


def one_hot(labels, depth, dtype):
    out = np.zeros(labels.shape + (depth,), dtype=dtype)
    np.put_along_axis(out, labels[..., None].astype(np.intp), 1, axis=-1)
    return out


def take_labels(x, labels):
    """x[..., labels] per row: the entry of the last axis picked by each integer label."""
    return np.take_along_axis(x, labels[..., None].astype(np.intp), axis=-1)[..., 0]


def logsumexp(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # all -inf rows stay -inf instead of nan
    s = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return s if keepdims else np.squeeze(s, axis=axis)


def softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis):
    return x - logsumexp(x, axis, True)


def cross_entropy(logits, labels):
    return logsumexp(logits, -1, False) - take_labels(logits, labels)


def sum_to(x, shape):
    """Sum ``x`` over the axes along which ``shape`` was broadcast to x.shape."""
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, d in enumerate(shape) if d == 1 and x.shape[lead + i] != 1
    )
    if axes:
        x = np.sum(x, axis=axes, keepdims=True)
    return x.reshape(shape)
