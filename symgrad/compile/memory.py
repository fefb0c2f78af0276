"""The memory plan of a kernel: which values are computed into reusable workspace buffers.

Liveness over the schedule decides when a buffer is free again; a value whose op can write
into an existing array (``Op.emit_into``) takes a free buffer of its shape and dtype, or a new
one. The buffers are allocated once per shape specialization and reused by every call, so a
steady-state call allocates nothing but what escapes it. Elementwise ops may write over an
argument that dies with them (chains computed in place); other ops never write over their
arguments. Values that leave the kernel (outputs, update values, or views of them) are fresh
arrays, since the caller keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..graph import Graph
from ..ops import get_op
from ..ops.shapes import resolve


@dataclass
class MemoryPlan:
    buffer: dict[int, int] = field(default_factory=dict)  # node -> workspace buffer index
    buffers: list[tuple[tuple[int, ...], str]] = field(default_factory=list)  # (shape, dtype)


def plan_memory(graph: Graph, order: list[int], dims: dict, escaping: set[int]) -> MemoryPlan:
    """Assign workspace buffers to the nodes of ``order`` (concrete ``dims`` required)."""
    nodes = graph.nx.nodes
    root = _alias_roots(graph, order)
    escapes = _escaping(graph, order, escaping, root)
    # a buffer is free after the last reader of its value or of any view of it
    release: dict[int, list[int]] = {}
    last: dict[int, int] = {}
    for n in order:
        for a in graph.nx.pred[n]:
            last[root[a]] = n
    for r, n in last.items():
        release.setdefault(n, []).append(r)

    plan = MemoryPlan()
    free: dict[tuple, list[int]] = {}

    def take(key) -> int:
        pool = free.get(key)
        if pool:
            return pool.pop()
        plan.buffers.append(key)
        return len(plan.buffers) - 1

    def give_back(n: int) -> None:
        for r in release.get(n, ()):
            if r in plan.buffer:
                free.setdefault(_key(nodes[r], dims), []).append(plan.buffer[r])

    for n in order:
        data = nodes[n]
        spec = get_op(data["op"])
        wanted = spec.emit_into is not None and n not in escapes
        in_place = spec.extra.get("elementwise", False)
        if wanted and in_place:
            give_back(n)  # an elementwise op may write over an argument dying here
            plan.buffer[n] = take(_key(data, dims))
            continue
        if wanted:
            plan.buffer[n] = take(_key(data, dims))
        give_back(n)
    return plan


def _key(data: dict, dims: dict) -> tuple:
    return resolve(data["shape"], dims), data["dtype"]


def _alias_roots(graph: Graph, order: list[int]) -> dict[int, int]:
    """Each node's memory owner: a view's owner is its first argument's owner."""
    root: dict[int, int] = {}
    for n in order:
        if get_op(graph.nx.nodes[n]["op"]).is_view:
            root[n] = root[graph.args(n)[0]]
        else:
            root[n] = n
    return root


def _escaping(graph: Graph, order: list[int], escaping: set[int], root: dict) -> set[int]:
    """Owners of memory the caller keeps: the escaping nodes and what they view."""
    return {root[n] for n in escaping} | set(escaping)
