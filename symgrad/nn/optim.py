"""First-order optimizers written as graph ``updates``: a training step is one compiled call
that computes the loss, its gradient and every parameter's (and state's) new value.

Each optimizer's ``rule`` says how one parameter and its gradient give new values; the state
it keeps (velocities, moments, a step count) are graph variables next to the parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .. import ops
from ..autodiff.reverse import grad
from ..compile.function import Function, compile
from ..errors import GraphError, user_site
from ..graph import Tensor
from ..validate import number
from .problem import Problem, fresh_name


class CompiledStep:
    """A compiled training step: call it with one batch; it returns the batch loss (before
    the update) and updates the variables in place."""

    def __init__(self, function: Function) -> None:
        self.function = function
        self.passes = 0

    def __call__(self, *batch: np.ndarray) -> float:
        self.passes += 1
        return float(self.function(*batch))


def state(p: Tensor, what: str, value: float = 0.0) -> Tensor:
    """A new variable shaped like ``p`` holding optimizer state (named after ``p``)."""
    base = f"{p.name or f'%{p.node}'}.{what}"
    return p.graph.variable(fresh_name(p.graph, base), np.full(p.shape, value, p.dtype))


@dataclass
class Optimizer:
    """Base class: ``make_step(problem)`` compiles loss, gradient and updates into one call."""

    lr: float = 0.01
    # L2 penalty (weight_decay / 2) |p|^2 added to the loss; keyword-only in every optimizer
    weight_decay: float = field(default=0.0, kw_only=True)
    decoupled: ClassVar[bool] = False  # decay applied to the parameter, not the gradient
    # each setting's allowed range, as bounds of ``validate.number``; a value outside it
    # (a negative rate, a momentum of 1 or more, nan) would train into nan or diverge
    bounds: ClassVar[dict[str, dict]] = {"lr": {"low": 0}, "weight_decay": {"low": 0}}

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Refuse settings outside their ranges (InputError naming the setting)."""
        for name, bounds in self.bounds.items():
            number(type(self).__name__, name, getattr(self, name), **bounds)

    def make_step(self, problem: Problem) -> CompiledStep:
        """One compiled call computing the loss, its gradient and every update."""
        self.check()  # the settings may have been changed since construction
        grads = grad(problem.loss, problem.params)
        updates = self.updates(problem.params, grads)
        return CompiledStep(compile(problem.loss, problem.inputs, updates=updates))

    def updates(self, params: list[Tensor], grads: list[Tensor]) -> dict[Tensor, Tensor]:
        """{variable: new value} for every parameter and piece of state."""
        if not params or len(params) != len(grads):
            raise GraphError(
                f"{type(self).__name__}.updates needs one gradient per parameter and at least "
                f"one parameter, got {len(params)} and {len(grads)} ({user_site()})"
            )
        self.begin(params)
        out: dict[Tensor, Tensor] = {}
        decay = self.weight_decay
        for p, g in zip(params, grads):
            new = self.rule(p, g + decay * p if decay and not self.decoupled else g)
            if decay and self.decoupled:
                new[p] = new[p] - self.lr * decay * p
            out.update(new)
        return out

    def begin(self, params: list[Tensor]) -> None:
        """Make state shared by all parameters (e.g. a step count)."""

    def rule(self, p: Tensor, g: Tensor) -> dict[Tensor, Tensor]:
        """{variable: new value} for parameter ``p`` with gradient ``g`` and its state."""
        raise NotImplementedError


@dataclass
class SGD(Optimizer):
    """p <- p - lr g."""

    def rule(self, p, g):
        return {p: p - self.lr * g}


@dataclass
class Momentum(Optimizer):
    """Heavy ball: v <- momentum v - lr g; p <- p + v."""

    momentum: float = 0.9
    bounds: ClassVar[dict[str, dict]] = {**Optimizer.bounds, "momentum": {"low": 0, "below": 1}}

    def rule(self, p, g):
        v = state(p, "velocity")
        new_v = self.momentum * v - self.lr * g
        return {v: new_v, p: p + new_v}


@dataclass
class Nesterov(Momentum):
    """Nesterov momentum (Sutskever et al. 2013 form): v <- momentum v - lr g;
    p <- p + momentum v - lr g (the step looks ahead along the new velocity)."""

    def rule(self, p, g):
        v = state(p, "velocity")
        new_v = self.momentum * v - self.lr * g
        return {v: new_v, p: p + self.momentum * new_v - self.lr * g}


@dataclass
class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with bias correction. ``weight_decay`` here is decoupled
    (AdamW, Loshchilov & Hutter 2019): p <- p - lr weight_decay p, outside the moments."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    decoupled: ClassVar[bool] = True
    bounds: ClassVar[dict[str, dict]] = {
        **Optimizer.bounds,
        "beta1": {"low": 0, "below": 1},
        "beta2": {"low": 0, "below": 1},
        "eps": {"low": 0},
    }

    def begin(self, params):
        g = params[0].graph
        # the step count in the widest parameter dtype: float64 parameters get float64 bias
        # corrections beside float32 ones
        dtype = np.result_type(*[p.dtype for p in params])
        self._t = g.variable(fresh_name(g, "adam.t"), np.zeros((), dtype))
        self._t_next = self._t + 1.0

    def rule(self, p, g):
        m, v = state(p, "adam.m"), state(p, "adam.v")
        new_m = self.beta1 * m + (1.0 - self.beta1) * g
        new_v = self.beta2 * v + (1.0 - self.beta2) * ops.square(g)
        # bias correction folded into the step size, in the parameter's own dtype
        t = self._t_next if self._t_next.dtype == p.dtype else ops.cast(self._t_next, p.dtype)
        m_hat = new_m / (1.0 - ops.pow(self.beta1, t))
        v_hat = new_v / (1.0 - ops.pow(self.beta2, t))
        return {
            m: new_m,
            v: new_v,
            self._t: self._t_next,
            p: p - self.lr * m_hat / (ops.sqrt(v_hat) + self.eps),
        }


OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adam": Adam,
}
