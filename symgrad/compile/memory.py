"""The memory plan of a kernel: which values are computed into reusable workspace buffers.

Liveness over the schedule decides when a buffer is free again; a value whose op can write
into an existing array (``Op.emit_into``) takes a free buffer of its shape and dtype, or a new
one (values are views of a buffer's first elements, so shapes may differ). The buffers are
allocated once per shape specialization and reused by every call, so a
steady-state call allocates nothing but what escapes it. Elementwise ops may write over an
argument that dies with them (chains computed in place); other ops never write over their
arguments. Values that leave the kernel (outputs, update values, or views of them) are fresh
arrays, since the caller keeps them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..graph import Graph
from ..ops import get_op
from ..ops.shapes import is_float, resolve


@dataclass
class MemoryPlan:
    buffer: dict[int, int] = field(default_factory=dict)  # node -> workspace buffer index
    buffers: list[list] = field(default_factory=list)  # [elements, dtype] of each buffer
    freed: dict[int, list[int]] = field(default_factory=dict)  # node -> buffers' owners dying

    def views(self, nodes, dims) -> dict[int, tuple[int, tuple[int, ...]]]:
        """{node: (buffer index, shape)}: each value is a view of the first elements of its
        buffer, so values of different shapes share memory when their lifetimes allow."""
        return {n: (b, resolve(nodes[n]["shape"], dims)) for n, b in self.buffer.items()}


def plan_memory(
    graph: Graph,
    order: list[int],
    dims: dict,
    escaping: set[int],
    fixed: set[int] = frozenset(),
    reads: dict[int, list[int]] | None = None,
) -> MemoryPlan:
    """Assign workspace buffers to the nodes of ``order`` (concrete ``dims`` required).
    ``fixed`` nodes are computed ahead (constants of the kernel) and take no buffer; ``reads``
    are values a node's statement reads besides its arguments, after writing its output."""
    reads = reads or {}
    nodes = graph.nx.nodes
    root = alias_roots(graph, order)
    escapes = kept_by_caller(graph, order, escaping)
    # a buffer is free after the last reader of its value or of any view of it
    release: dict[int, list[int]] = {}
    last: dict[int, int] = {}
    for n in order:
        for a in [*graph.nx.pred[n], *reads.get(n, ())]:
            last[root[a]] = n
    for r, n in last.items():
        release.setdefault(n, []).append(r)

    plan = MemoryPlan(freed=release)
    free: dict[str, list[int]] = {}  # dtype -> free buffers

    def take(data) -> int:
        size, dtype = _size(data, dims), data["dtype"]
        pool = free.get(dtype)
        if pool:  # the smallest free buffer that fits, else the largest one, grown
            fits = [b for b in pool if plan.buffers[b][0] >= size]
            b = (
                min(fits, key=lambda b: plan.buffers[b][0])
                if fits
                else max(pool, key=lambda b: plan.buffers[b][0])
            )
            pool.remove(b)
            plan.buffers[b][0] = max(plan.buffers[b][0], size)
            return b
        plan.buffers.append([size, dtype])
        return len(plan.buffers) - 1

    def give_back(n: int) -> None:
        for r in release.get(n, ()):
            if r in plan.buffer:
                free.setdefault(nodes[r]["dtype"], []).append(plan.buffer[r])

    for n in order:
        data = nodes[n]
        spec = get_op(data["op"])
        wanted = (
            spec.emit_into is not None
            and n not in escapes
            and n not in fixed
            and spec.extra.get("into_ok", _always)(data["attrs"])
            and (not spec.extra.get("elementwise") or is_float(data["dtype"]))
        )
        # a single ufunc may write over an argument dying with it; a chain of them only if no
        # later step reads an argument (it would read it overwritten)
        in_place = spec.extra.get("elementwise", False) and spec.extra.get(
            "reads_args_first", _always
        )(data["attrs"])
        if wanted and in_place and n not in reads:
            give_back(n)  # an elementwise op may write over an argument dying here
            plan.buffer[n] = take(data)
            continue
        if wanted:
            plan.buffer[n] = take(data)
        give_back(n)
    return plan


def _always(attrs) -> bool:
    return True


def _size(data: dict, dims: dict) -> int:
    return int(np.prod(resolve(data["shape"], dims), dtype=np.int64))


def alias_roots(graph: Graph, order: list[int]) -> dict[int, int]:
    """Each node's memory owner: a view's owner is its first argument's owner."""
    root: dict[int, int] = {}
    for n in order:
        if get_op(graph.nx.nodes[n]["op"]).is_view and graph.args(n):
            root[n] = root[graph.args(n)[0]]
        else:
            root[n] = n
    return root


def kept_by_caller(graph: Graph, order: list[int], escaping: set[int]) -> set[int]:
    """The escaping values and the memory they view: the caller keeps both."""
    root = alias_roots(graph, order)
    return set(escaping) | {root[n] for n in escaping}


def in_place_updates(
    graph: Graph, order: list[int], updates: list[tuple[int, int]], outputs: list[int]
) -> dict[int, tuple[int, object]]:
    """Updates ``var <- var + E`` that can be written into the variable where computed:
    {value node: (variable, E as an expression over the node's arguments)}.

    Safe when the value is read by nothing else, the variable (or a view of it) is read by
    nothing scheduled later, and no output is the variable or a view of it.
    """
    from ..graph import Tensor
    from ..ops.elementwise import expression, is_elementwise, sym

    position = {n: i for i, n in enumerate(order)}
    root = alias_roots(graph, order)
    out_roots = {root[o] for o in outputs}
    last_read: dict[int, int] = {}  # memory owner -> position of its last reader
    for i, n in enumerate(order):
        for a in graph.nx.pred[n]:
            last_read[root[a]] = i
    for _, value in updates:  # new values are copied into their variables after the body
        last_read[root[value]] = len(order)
    found = {}
    targets = Counter(value for _, value in updates)
    for var, value in updates:
        data = graph.nx.nodes[value]
        if not is_elementwise(data["op"]) or graph.nx.succ[value] or value in outputs:
            continue
        if targets[value] > 1:  # one value for two variables: written into one, not both
            continue
        if var in out_roots or data["shape"] != graph.nx.nodes[var]["shape"]:
            continue
        if last_read.get(var, -1) > position[value]:
            continue
        args = graph.args(value)
        if args.count(var) != 1:
            continue
        x = sym(args.index(var))
        e = expression(Tensor(graph, value))
        rest = e - x
        if not e.is_Add or x in rest.free_symbols:
            continue
        found[value] = (var, rest)
    return found


def split_coefficient(rest) -> tuple[float, object]:
    """(c, g) with ``rest == c * g`` and c a number (1 when there is none)."""
    sign = -1 if rest.could_extract_minus_sign() else 1
    c, g = (sign * rest).as_coeff_Mul()
    return sign * float(c), g


def scaled_argument(graph: Graph, value: int, rest) -> tuple[float, int | None]:
    """(c, g) when the added expression ``rest`` of update ``value`` is c times its argument
    g (g None otherwise)."""
    from ..ops.elementwise import sym

    c, g = split_coefficient(rest)
    held = [a for i, a in enumerate(graph.args(value)) if g == sym(i)]
    return c, (held[0] if held else None)
