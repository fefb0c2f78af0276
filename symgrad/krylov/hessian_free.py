"""Hessian-free optimization: truncated Newton with Gauss-Newton products (Martens 2010).

Each step minimizes the local quadratic model
    q(p) = f + g^T p + 1/2 p^T (G + lambda I) p
by conjugate gradient, using only products with the Gauss-Newton matrix G (or the Hessian):
1. CG starts from a fraction ``decay`` of the previous step (the model changes slowly) and
   stops by Martens' relative-progress rule or after ``max_cg`` iterations;
2. backtracking: of the iterates CG kept at iterations ceil(1.3^j), the earliest one after
   which the loss stops improving is taken (later iterates overfit the batch's model);
3. Levenberg-Marquardt damping: with rho = (f(theta + p) - f) / (q(p) - f), lambda grows by
   3/2 when rho < 1/4 (the model is not to be trusted) and shrinks by 2/3 when rho > 3/4;
   with Hessian curvature it also grows when CG meets negative curvature, until
   H + lambda I is positive definite where the step is taken. Where the model predicts a
   decrease within the loss's rounding (at a minimum) rho is noise: lambda stays;
4. an Armijo backtracking line search on the step length (Martens & Sutskever 2012).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..autodiff.reverse import grad
from ..compile.function import compile
from ..errors import GraphError, user_site
from ..nn.problem import Problem
from .arguments import choice, count, number, refuse
from .cg import CGResult, conjugate_gradient
from .flat import flatten, get_flat, set_flat
from .operators import damped, gnvp_operator, hvp_operator


@dataclass
class HessianFree:
    """Hessian-free (truncated Newton) optimizer; ``make_step(problem)`` gives a step that
    ``nn.fit`` calls once per batch (use large batches: ``batch_size=None`` for full-batch).

    ``curvature``: "gauss-newton" (positive semidefinite; needs ``problem.outputs``) or
    "hessian". ``curvature_batch``: use only the first rows of each batch for the products.
    """

    damping: float = 1.0
    curvature: str = "gauss-newton"
    max_cg: int = 100
    cg_tol: float = 1e-10
    progress_tol: float = 5e-4
    decay: float = 0.95
    curvature_batch: int | None = None
    line_search: bool = True
    boost: float = 1.5
    drop: float = 2.0 / 3.0

    def __post_init__(self):
        self._check()

    def _check(self) -> None:
        """Refuse settings that make no optimizer (run again by ``make_step``: the fields
        may have changed since)."""
        fn = "HessianFree"
        number(fn, "damping", self.damping, low=0)
        choice(fn, "curvature", self.curvature, ("gauss-newton", "hessian"))
        if self.curvature == "hessian" and self.damping == 0:
            refuse(
                fn,
                "damping must be > 0 with curvature='hessian': it grows by boost where CG "
                "meets negative curvature, and 0 cannot grow",
            )
        count(fn, "max_cg", self.max_cg)
        number(fn, "cg_tol", self.cg_tol, low=0)
        number(fn, "progress_tol", self.progress_tol, low=0, optional=True)
        number(fn, "decay", self.decay, low=0, high=1)
        count(fn, "curvature_batch", self.curvature_batch, optional=True)
        if not isinstance(self.line_search, (bool, np.bool_)):
            refuse(fn, f"line_search must be True or False, got {self.line_search!r}")
        number(fn, "boost", self.boost, low=1)  # damping grows when the model is bad
        number(fn, "drop", self.drop, above=0, high=1)  # and shrinks when it is good

    def make_step(self, problem: Problem) -> HessianFreeStep:
        return HessianFreeStep(self, problem)


@dataclass
class Record:
    """One Hessian-free step: the loss before it, the damping it used, CG iterations, the
    iterate backtracking chose, the reduction ratio rho (nan where the predicted decrease is
    within the loss's rounding) and the line-search step length."""

    loss: float
    damping: float
    cg_iterations: int
    cg_reason: str
    chosen_iteration: int
    rho: float
    step_length: float


@dataclass
class HessianFreeStep:
    """A Hessian-free step bound to one problem; holds lambda and the previous CG solution."""

    config: HessianFree
    problem: Problem
    passes: int = 0
    records: list[Record] = field(default_factory=list)

    def __post_init__(self):
        pb, cfg = self.problem, self.config
        if not isinstance(cfg, HessianFree):
            refuse("HessianFreeStep", f"config must be a HessianFree, got {type(cfg).__name__}")
        cfg._check()
        if cfg.curvature == "gauss-newton" and pb.outputs is None:
            raise GraphError(
                "Gauss-Newton curvature needs problem.outputs; or curvature='hessian' "
                f"({user_site()})"
            )
        self._grad = compile([pb.loss, *grad(pb.loss, pb.params)], pb.inputs)
        self._loss = compile(pb.loss, pb.inputs)
        self.damping = cfg.damping
        self._previous: np.ndarray | None = None

    def _loss_at(self, theta: np.ndarray, batch) -> float:
        set_flat(self.problem.params, theta)
        self.passes += 1
        return float(self._loss(*batch))

    def _operator(self, batch):
        pb, cfg = self.problem, self.config
        rows = slice(None) if cfg.curvature_batch is None else slice(0, cfg.curvature_batch)
        feed = {x: a[rows] if x.ndim else a for x, a in zip(pb.inputs, batch)}
        if cfg.curvature == "gauss-newton":
            return gnvp_operator(pb.loss, pb.params, feed, outputs=pb.outputs)
        return hvp_operator(pb.loss, pb.params, feed)

    def __call__(self, *batch: np.ndarray) -> float:
        params = self.problem.params
        theta = get_flat(params)
        f0, *grads = self._grad(*batch)
        f0, g = float(f0), flatten(grads)
        self.passes += 1
        cg = self._solve(g, batch)
        chosen, p, phi, f_p = self._backtrack(theta, cg, batch)
        rho = _reduction_ratio(f0, f_p, phi)
        damping = self.damping
        self._adapt_damping(rho, cg.reason)
        alpha = self._line_search(theta, p, f0, f_p, float(g @ p), batch)
        set_flat(params, theta + alpha * p)
        self.records.append(Record(f0, damping, cg.iterations, cg.reason, chosen, rho, alpha))
        return f0

    def _solve(self, g: np.ndarray, batch) -> CGResult:
        """CG on (curvature + lambda I) p = -g, warm-started from the previous solution."""
        cfg = self.config
        op = self._operator(batch)
        self.passes += 1  # making the operator runs the forward pass and gradient once
        x0 = None if self._previous is None else cfg.decay * self._previous
        cg = conjugate_gradient(
            damped(op, self.damping), -g, x0,
            tol=cfg.cg_tol, max_iter=cfg.max_cg, progress_tol=cfg.progress_tol,
        )  # fmt: skip
        self.passes += op.passes
        self._previous = cg.x
        return cg

    def _backtrack(self, theta: np.ndarray, cg: CGResult, batch):
        """The earliest stored CG iterate after which the loss stops improving, walking back
        from the last one: (iteration, step, model value, loss there)."""
        j = len(cg.iterates) - 1
        f_p = self._loss_at(theta + cg.iterates[j][1], batch)
        while j > 0:
            f_prev = self._loss_at(theta + cg.iterates[j - 1][1], batch)
            if f_prev >= f_p:
                break
            j, f_p = j - 1, f_prev
        chosen, p, phi = cg.iterates[j]
        return chosen, p, phi, f_p

    def _adapt_damping(self, rho: float, cg_reason: str) -> None:
        """Levenberg-Marquardt: trust the model more when it predicted the decrease well."""
        # a nan rho (no measurable predicted decrease) compares False: lambda stays
        if rho < 0.25 or cg_reason == "negative_curvature":  # an unbounded model: not at all
            self.damping *= self.config.boost
        elif rho > 0.75:
            self.damping *= self.config.drop

    def _line_search(self, theta, p, f0: float, f_p: float, slope: float, batch) -> float:
        """Armijo backtracking on the step length; 0 when no length decreases the loss."""
        alpha, f_new = 1.0, f_p
        while self.config.line_search and f_new > f0 + 1e-2 * alpha * slope and alpha > 0.8**20:
            alpha *= 0.8
            f_new = self._loss_at(theta + alpha * p, batch)
        return alpha if f_new < f0 else 0.0


def _reduction_ratio(f0: float, f_p: float, phi: float) -> float:
    """rho = (f(theta + p) - f) / (q(p) - f): -inf where the model predicts no decrease, nan
    where its predicted decrease is within the rounding of the loss (the ratio is noise)."""
    if abs(phi) <= 64 * np.finfo(np.float64).eps * abs(f0):
        return float("nan")
    return (f_p - f0) / phi if phi < 0 else -np.inf
