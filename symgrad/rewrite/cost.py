"""FLOP estimates per op, to compare graphs (say a gradient with its forward pass).

One rule per op family: a matmul is 2*m*k*n per batch entry; an elementwise node is the
operations of its expression times its size; a reduction touches each element of its
argument once; the NN ops cost a few operations per element; views, copies and leaves are
free. Symbolic dims take their sizes from ``dims``.
"""

from __future__ import annotations

import math

from ..graph import Graph
from ..ops import OPS
from ..ops.elementwise import _frozen, _named_expression
from ..ops.shapes import resolve
from .fuse import cost as expression_cost

# op -> operations per element of its (first) argument
PER_INPUT_ELEMENT = {
    "sum": 1,
    "mean": 1,
    "max": 1,
    "min": 1,
    "logsumexp": 4,  # max, subtract, exp, add (the log and the shift back are per row)
    "softmax": 5,  # max, subtract, exp, add, divide
    "log_softmax": 5,
    "cross_entropy": 5,
    "softmax_minus_one_hot": 3,  # subtract the logsumexp, exp, scale (a softmax's 5 without it)
    "index_add": 1,
}
# op -> operations per element of its result
PER_OUTPUT_ELEMENT = {
    "where": 1,
    "less": 1,
    "less_equal": 1,
    "greater": 1,
    "greater_equal": 1,
    "equal": 1,
    "not_equal": 1,
    "cast": 1,
}
FREE = (
    "input",
    "variable",
    "constant",
    "reshape",
    "transpose",
    "broadcast_to",
    "getitem",
    "stop_gradient",
    "concatenate",
    "one_hot",
    "numel",
)


def flops(graph: Graph, n: int, dims: dict | None = None) -> int:
    """Estimated floating-point operations of computing node ``n`` once."""
    data = graph.nx.nodes[n]
    op = data["op"]
    if op in FREE:
        return 0
    size = _size(data["shape"], dims)
    if op == "matmul":
        a, b = (graph.nx.nodes[x]["shape"] for x in graph.args(n))
        k = resolve((a[-1],), dims or {})[0]
        return 2 * size * k
    if OPS[op].extra.get("elementwise"):
        expr = _named_expression(op, len(graph.args(n)), _frozen(data["attrs"]))
        return max(1, expression_cost(expr)) * size
    if op in PER_OUTPUT_ELEMENT:
        return PER_OUTPUT_ELEMENT[op] * size
    first = graph.args(n)[0]
    return PER_INPUT_ELEMENT.get(op, 1) * _size(graph.nx.nodes[first]["shape"], dims)


def graph_flops(graph: Graph, nodes=None, dims: dict | None = None) -> int:
    """Estimated floating-point operations of computing ``nodes`` (default: all) once each."""
    return sum(flops(graph, n, dims) for n in (graph.nx.nodes if nodes is None else nodes))


def _size(shape, dims) -> int:
    return math.prod(resolve(shape, dims or {}))
