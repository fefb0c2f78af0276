"""Learning rates folded into the gradient's seed.

An SGD step ``w <- w - lr * g_w`` costs a multiply and a subtract over every parameter. The
gradients are linear in the loss's cotangent seed (the scaled softmax-minus-one-hot of a
cross-entropy), so when everything computed from the seed is linear in it and ends in such
updates with one coefficient ``c``, the seed is scaled by ``c`` once, on the small logits-sized
array, and every update becomes a single ``w += g_w``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..graph import Graph, Tensor
from ..ops.elementwise import expression, is_elementwise, sym
from ..ops.nn import residual_parts
from .memory import scaled_argument, split_coefficient

# ops linear in their one argument
_LINEAR_UNARY = ("transpose", "reshape", "broadcast_to", "sum")


def fold_update_scale(
    graph: Graph,
    in_place: dict[int, tuple[int, sp.Expr]],
    static: dict[int, np.ndarray],
    escaping: set[int],
) -> tuple[dict[int, tuple[int, sp.Expr]], dict[int, tuple[int, np.ndarray]]]:
    """(the in-place updates with the coefficient taken out, {seed: (argument index, its new
    static value)}); the updates unchanged and no seed when the fold does not apply.
    ``static`` holds the values of the nodes computed once per shape specialization."""
    if not in_place:  # no updates to fold into (a gradient or HVP function)
        return in_place, {}
    seeds = {n: i for n in graph.nx.nodes if (i := _scale_argument(graph, n, static)) is not None}
    if not seeds:
        return in_place, {}
    tainted = _downstream(graph, seeds)
    coefficients = set()
    for n in tainted:
        if n in seeds:
            if n in escaping:
                return in_place, {}
            continue
        if n in in_place:
            c = _coefficient(graph, n, in_place[n], tainted)
            if c is None:
                return in_place, {}
            coefficients.add(c)
        elif n in escaping or not _linear(graph, n, tainted):
            return in_place, {}
    if len(coefficients) != 1:
        return in_place, {}
    (c,) = coefficients
    folded = {
        n: (var, split_coefficient(rest)[1] if n in tainted else rest)
        for n, (var, rest) in in_place.items()
    }
    scales = {}
    for seed, i in seeds.items():
        k = _static(graph, graph.args(seed)[i], static)
        scales[seed] = (i, np.asarray(k * c, dtype=k.dtype))
    return folded, scales


def _static(graph: Graph, n: int, static: dict):
    """The value of node n when it is fixed per shape specialization, else None."""
    data = graph.nx.nodes[n]
    return data["attrs"]["value"] if data["op"] == "constant" else static.get(n)


def _scale_argument(graph: Graph, n: int, static: dict) -> int | None:
    """The index of seed n's static scale argument, if n is a seed."""
    data = graph.nx.nodes[n]
    if data["op"] != "softmax_minus_one_hot" or not data["attrs"].get("scaled"):
        return None
    args = graph.args(n)
    scale = residual_parts(args, data["attrs"])[3]
    fixed = _static(graph, scale, static) is not None and args.count(scale) == 1
    return len(args) - 1 if fixed else None


def _downstream(graph: Graph, seeds) -> set[int]:
    seen, stack = set(seeds), list(seeds)
    while stack:
        for c in graph.nx.succ[stack.pop()]:
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return seen


def _coefficient(graph: Graph, n: int, update, tainted: set[int]) -> float | None:
    """c when update n is ``var + c * g`` with only g computed from the seeds."""
    var, rest = update
    if var in tainted:
        return None
    c, grad = scaled_argument(graph, n, rest)
    if grad is None or any(a in tainted for a in graph.args(n) if a != grad):
        return None
    return c


def _linear(graph: Graph, n: int, tainted: set[int]) -> bool:
    """Whether node n is linear and homogeneous in its arguments computed from the seeds."""
    data = graph.nx.nodes[n]
    args = graph.args(n)
    hit = [i for i, a in enumerate(args) if a in tainted]
    if data["op"] == "matmul":
        return len(hit) == 1
    if data["op"] in _LINEAR_UNARY:
        return hit == [0]
    if not is_elementwise(data["op"]):
        return False
    e = expression(Tensor(graph, n))
    t = sp.Symbol("scale_probe")
    scaled = e.xreplace({sym(i): t * sym(i) for i in hit})
    return sp.expand(scaled - t * e) == 0
