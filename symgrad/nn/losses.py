"""Losses by name: each takes the model's outputs and the targets and gives a scalar mean.

A loss also says what its targets look like, so ``fit`` can declare the target input:
integer class labels of shape (batch,) or float values of the outputs' shape (batch, k).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import ops
from ..errors import InputError, format_shape, user_site
from ..graph import Tensor
from ..validate import choice


@dataclass(frozen=True)
class Loss:
    """A scalar training loss of (outputs, targets); ``labels``: targets are class indices."""

    name: str
    fn: Callable[[Tensor, Tensor], Tensor]
    labels: bool

    def __call__(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return self.fn(outputs, targets)

    def target_spec(self, outputs: Tensor) -> tuple[tuple, str]:
        """Shape and dtype of the target input that goes with ``outputs``."""
        if self.labels:
            return ("batch",), "int64"
        return ("batch",) + tuple(outputs.shape[1:]), outputs.dtype

    def targets(self, y: np.ndarray, outputs: Tensor) -> np.ndarray:
        """Target data in the shape and dtype of the target input."""
        shape, dtype = self.target_spec(outputs)
        y = np.asarray(y)
        if not self.labels:
            want = (len(y),) + tuple(shape[1:])
            if y.size != int(np.prod(want)):
                raise InputError(
                    f"targets of shape {y.shape} do not fit outputs of shape {shape} "
                    f"({user_site()})"
                )
            return y.reshape(want).astype(dtype)
        with np.errstate(invalid="ignore"):  # nan and inf labels are refused just below
            labels = y.astype(dtype)
        if y.dtype.kind not in "iub" and not np.array_equal(labels, y):  # 0.7 is no class
            bad = y[labels != y].reshape(-1)[:5].tolist()
            raise InputError(f"class labels must be whole numbers, got {bad} ({user_site()})")
        classes = outputs.shape[-1] if outputs.ndim else None
        if isinstance(classes, int):  # checked here, before a training step meets one
            bad = labels[(labels < 0) | (labels >= classes)].reshape(-1)[:5].tolist()
            if bad:
                raise InputError(
                    f"class labels must lie in [0, {classes}) for the model's {classes} "
                    f"outputs, got {bad} ({user_site()})"
                )
        return labels


def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean softmax cross-entropy of logits (batch, classes) against integer labels."""
    return ops.cross_entropy(logits, labels).mean()


def mse(outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean squared error over every element (the course notes' J for XOR)."""
    return ops.mse(outputs, targets)


def sigmoid_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean binary cross-entropy of sigmoid(logits) against 0/1 targets, in the stable form
    softplus(z) - y z (no log of a probability that may round to 0)."""
    return (ops.softplus(logits) - targets * logits).mean()


LOSSES: dict[str, Loss] = {
    "cross_entropy": Loss("cross_entropy", cross_entropy, labels=True),
    "mse": Loss("mse", mse, labels=False),
    "sigmoid_cross_entropy": Loss("sigmoid_cross_entropy", sigmoid_cross_entropy, labels=False),
}


def get_loss(loss: str | Loss) -> Loss:
    """A loss by name (see ``LOSSES``) or the Loss itself."""
    if isinstance(loss, Loss):
        return loss
    choice("symgrad.nn", "loss", loss, LOSSES)
    return LOSSES[loss]


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose largest logit is at the label: ``logits`` of shape
    (..., classes) and integer ``labels`` of the leading shape (...)."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if logits.ndim == 0 or labels.shape != logits.shape[:-1]:
        raise InputError(
            f"accuracy needs logits of shape (..., classes) and labels of their leading "
            f"shape, got {format_shape(logits.shape)} and {format_shape(labels.shape)} "
            f"({user_site()})"
        )
    return float(np.mean(np.argmax(logits, axis=-1) == labels))
