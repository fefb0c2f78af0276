"""Products added into variables: ``W <- W + c * (A @ B)`` as one BLAS gemm into ``W``.

A big weight's SGD step is its gradient matmul then an add over the whole weight. Where the
gradient is read by nothing but the update, BLAS gemm with ``beta = 1`` adds the product into
``W`` while computing it (``symgrad/blas.py``): no gradient buffer and no second pass. The
variable is written at the gradient's place in the schedule, so nothing after it may read
the variable. Small variables are left to the packed updates, which save calls instead.
"""

from __future__ import annotations

from .. import blas
from ..graph import Graph
from .memory import alias_roots, scaled_argument

MIN_SIZE = 1 << 15  # elements of the variable: below, the add it saves is cheaper than a call


def plan_accumulate(graph: Graph, order: list[int], in_place: dict, escaping, folded, layout):
    """Add to ``layout`` a gemm statement for each update whose added term is ``c`` times a
    matmul read by nothing else (``in_place`` as in ``plan_layout``)."""
    nodes = graph.nx.nodes
    position = {n: i for i, n in enumerate(order)}
    root = alias_roots(graph, order)
    last_read: dict[int, dict[int, int]] = {}  # memory owner -> {reader: position}
    for i, n in enumerate(order):
        for a in graph.nx.pred[n]:
            last_read.setdefault(root[a], {})[n] = i
    taken = set(layout.slots) | set(layout.statements) | layout.skip | set(folded)
    for value, (var, rest) in in_place.items():
        c, g = scaled_argument(graph, value, rest)
        if g is None or value in layout.packed or g in taken or g in escaping:
            continue
        if nodes[g]["op"] != "matmul" or list(graph.nx.succ[g]) != [value]:
            continue
        if len(graph.nx.pred[value][g]) != 1 or nodes[g]["dtype"] != nodes[var]["dtype"]:
            continue
        operands = graph.args(g)
        if any(len(nodes[a]["shape"]) != 2 or root[a] == var for a in operands):
            continue
        if any(p > position[g] for r, p in last_read.get(var, {}).items() if r != value):
            continue  # the variable is read after the product would have written it
        array = nodes[var]["attrs"]["value"]
        acc = blas.accumulator(array, c) if array.size >= MIN_SIZE else None
        if acc is None:
            continue
        layout.slots[g] = array
        layout.statements[g] = _statement(acc, layout.const(acc, "gemm"), operands)
        layout.packed.add(value)
        taken.add(g)


def _statement(acc: blas.Accumulator, name: str, operands: list[int]):
    def statement(ctx, names: dict, out: str, buffered: bool) -> str:
        a, b = (names[x] for x in operands)
        # buffers and variables are the same arrays on every call: read their layout once
        acc.fix(*(ctx.namespace[x] for x in (a, b) if x in ctx.namespace))
        return f"{name}({a}, {b})"

    return statement
