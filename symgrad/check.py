"""Checking symbolic derivatives against central finite differences in float64."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .autodiff.forward import jvp
from .autodiff.reverse import grad
from .compile.evaluate import evaluate, feed_nodes
from .errors import GradientCheckError, InputError, show, user_site
from .graph import Tensor, mapping, tensor_list
from .ops import sum as sum_
from .ops.shapes import is_float
from .validate import count, number, refuse


@dataclass
class CheckRecord:
    order: int
    mode: str
    direction: int
    symbolic: float
    numeric: float

    @property
    def error(self) -> float:
        return abs(self.symbolic - self.numeric)


def numeric_grad(f: Tensor, feed: dict, x: Tensor, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of the scalar ``f`` with respect to the fed input ``x``."""
    if not isinstance(f, Tensor) or f.ndim != 0:
        raise InputError(f"numeric_grad needs a scalar Tensor, got {f!r} ({user_site()})")
    number("numeric_grad", "eps", eps, above=0)
    feed = mapping(feed, "numeric_grad: the feed {input: value}", InputError)
    base = {k: np.array(v, copy=True) for k, v in feed.items()}
    key = next((k for k in base if (k if isinstance(k, Tensor) else f.graph[k]) == x), None)
    if key is None or base[key].dtype.kind != "f":  # x + eps of an int array rounds eps away
        raise InputError(f"numeric_grad: {x!r} must be a fed float input ({user_site()})")
    g = np.zeros_like(base[key])
    flat, gflat = base[key].reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        hi = float(evaluate(f, base))
        flat[i] = old - eps
        lo = float(evaluate(f, base))
        flat[i] = old
        gflat[i] = (hi - lo) / (2 * eps)
    return g


# each order differentiates the last one's graph: its size roughly doubles per order
MAX_ORDER = 8


def _check_settings(order, modes, directions, eps, rtol, atol) -> None:
    """Refuse settings under which check_grads would check nothing, or pass whatever it
    found (a nan tolerance makes every comparison false)."""
    count("check_grads", "order", order)
    if order > MAX_ORDER:
        refuse("check_grads", f"order must be at most {MAX_ORDER}, got {order}")
    count("check_grads", "directions", directions)
    number("check_grads", "eps", eps, above=0)
    number("check_grads", "rtol", rtol, low=0)
    number("check_grads", "atol", atol, low=0)
    if not isinstance(modes, (list, tuple, set)) or not modes or not set(modes) <= {"rev", "fwd"}:
        refuse("check_grads", f"modes must be a non-empty subset of rev, fwd: {show(modes)}")


def _wrt(graph, wrt, fed) -> list[Tensor]:
    """The inputs to check: ``wrt`` (a Tensor or a list of Tensors of the graph, each once), or
    every fed input; float ones only."""
    if wrt is None:
        xs = [graph.tensor(n) for n in fed]
    else:
        xs, _ = tensor_list(wrt, "check_grads: wrt")  # one Tensor is one input, not its rows
        for i, x in enumerate(xs):
            if x.graph is not graph:
                refuse("check_grads", f"wrt {x!r} is not a Tensor of f's graph")
            if x in xs[:i]:  # its derivative would count twice against one difference
                refuse("check_grads", f"wrt lists {graph.describe(x.node)} twice")
    return [x for x in xs if is_float(x.dtype)]


def check_grads(
    f: Tensor,
    feed: dict,
    order: int = 1,
    modes=("rev",),
    wrt=None,
    directions: int = 2,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    seed: int = 0,
) -> list[CheckRecord]:
    """Check the derivatives of ``f`` up to ``order`` at ``feed`` against finite differences.

    Non-scalar outputs are projected on a fixed random vector. Each order k differentiates the
    (k-1)-th directional derivative once more, symbolically (``modes``: "rev" = sg.grad,
    "fwd" = sg.jvp), and compares it with a central difference of the evaluated (k-1)-th
    derivative along random directions. Inputs must be float64. Raises GradientCheckError
    with a report on any disagreement; returns the records otherwise.
    """
    if not isinstance(f, Tensor):
        raise InputError(f"check_grads needs a Tensor, got {type(f).__name__} ({user_site()})")
    _check_settings(order, modes, directions, eps, rtol, atol)
    graph = f.graph
    fed = feed_nodes(graph, feed)
    xs = _wrt(graph, wrt, fed)
    for x in xs:
        if x.dtype != "float64":
            raise InputError(
                f"check_grads needs float64 inputs, {graph.describe(x.node)} is {x.dtype} "
                f"({user_site()})"
            )
    rng = np.random.default_rng(seed)
    point = {graph.tensor(n): np.asarray(v) for n, v in fed.items()}
    for x in xs:  # a variable checked but not fed is checked at its current value
        if x not in point and x.op == "variable":
            point[x] = np.array(x.value, copy=True)
        elif x not in point:
            raise InputError(
                f"check_grads: no value fed for {graph.describe(x.node)} ({user_site()})"
            )
    with graph.transaction():  # a failed check leaves none of its derivative nodes
        shape = np.shape(evaluate(f, point))
        h = f if not shape else sum_(f * graph.constant(rng.standard_normal(shape)))
        records: list[CheckRecord] = []
        failures = []
        for k in range(1, order + 1):
            dirs = [{x: rng.standard_normal(point[x].shape) for x in xs} for _ in range(directions)]
            for j, d in enumerate(dirs):
                numeric = _central_difference(h, point, d, eps)
                for mode in modes:
                    derivative, tangents = _directional(h, xs, d, mode)
                    sym = float(evaluate(derivative, {**point, **tangents}))
                    rec = CheckRecord(k, mode, j, sym, numeric)
                    records.append(rec)
                    if rec.error > atol + rtol * max(abs(sym), abs(numeric)):
                        failures.append(rec)
            if k < order:  # the next order differentiates this order's derivative along a new w
                w = {x: graph.constant(rng.standard_normal(point[x].shape)) for x in xs}
                gs = grad(h, xs)
                h = None
                for g_, x in zip(gs, xs):
                    term = sum_(g_ * w[x])
                    h = term if h is None else h + term
        if failures:
            lines = [
                f"order {r.order} ({r.mode}), direction {r.direction}: symbolic {r.symbolic:.10g} "
                f"vs numeric {r.numeric:.10g} (abs err {r.error:.3g})"
                for r in failures
            ]
            names = ", ".join(graph.describe(x.node) for x in xs)
            raise GradientCheckError(
                f"derivatives of {graph.describe(f.node)} disagree with finite differences "
                f"(w.r.t. {names}; checked at {user_site()}):\n  " + "\n  ".join(lines)
            )
    return records


def _directional(h: Tensor, xs, d, mode: str) -> tuple[Tensor, dict]:
    """(the derivative of h along the directions d, the values of the inputs it adds)."""
    graph = h.graph
    if mode == "rev":
        total = None
        for g_, x in zip(grad(h, xs), xs):
            term = sum_(g_ * graph.constant(d[x]))
            total = term if total is None else total + term
        return total, {}
    if mode == "fwd":  # tangents of the inputs' own shapes: inputs where a dim is symbolic
        tangents, fed = [], {}
        for x in xs:
            if any(isinstance(n, str) for n in x.shape):
                tangents.append(_fresh_input(graph, x))
                fed[tangents[-1]] = d[x]
            else:
                tangents.append(graph.constant(d[x]))
        return jvp(h, xs, tangents), fed
    raise InputError(f"check_grads mode must be 'rev' or 'fwd', got {mode!r}")


def _fresh_input(graph, x: Tensor) -> Tensor:
    k = 0
    while f"check_grads tangent {k}" in graph._names:
        k += 1
    return graph.input(f"check_grads tangent {k}", x.shape, x.dtype)


def _central_difference(h: Tensor, point: dict, d: dict, eps: float) -> float:
    plus = {k: (v + eps * d[k] if k in d else v) for k, v in point.items()}
    minus = {k: (v - eps * d[k] if k in d else v) for k, v in point.items()}
    return (float(evaluate(h, plus)) - float(evaluate(h, minus))) / (2 * eps)
