"""What an optimizer works on: a scalar loss of some variables given data inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from ..errors import GraphError
from ..graph import Graph, Tensor


@dataclass(eq=False)
class Problem:
    """A scalar ``loss`` of the variables ``params`` and the data ``inputs``.

    A training step takes one array per input, in the order of ``inputs``. ``outputs`` are the
    model's outputs (logits), which Gauss-Newton curvature needs; ``loss`` must then depend on
    the params only through them.
    """

    loss: Tensor
    params: list[Tensor]
    inputs: list[Tensor] = field(default_factory=list)
    outputs: Tensor | None = None
    _loss_fn: object = field(default=None, init=False, repr=False)

    @property
    def graph(self) -> Graph:
        return self.loss.graph

    @property
    def n_params(self) -> int:
        return int(sum(np.prod(p.shape) for p in self.params))

    def evaluate(self, *data: np.ndarray) -> float:
        """The loss on ``data`` (one array per input) at the parameters' current values."""
        if self._loss_fn is None:
            from ..compile.function import compile

            self._loss_fn = compile(self.loss, self.inputs)
        return float(self._loss_fn(*data))


class Step(Protocol):
    """One optimizer step on a batch; returns the batch loss before the step.

    ``passes`` counts the work done so far in gradient-equivalent passes (a gradient or a loss
    evaluation counts 1, a Hessian- or Gauss-Newton-vector product 2).
    """

    passes: int

    def __call__(self, *batch: np.ndarray) -> float: ...


def fresh_name(graph: Graph, base: str) -> str:
    """``base``, or ``base#2``, ``base#3``, ... : the first name not taken in ``graph``."""
    name, i = base, 1
    while True:
        try:
            graph[name]
        except GraphError:
            return name
        i += 1
        name = f"{base}#{i}"
