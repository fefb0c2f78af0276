"""Which nodes a derivative sweep visits: ancestors of the outputs that depend on the inputs."""

from __future__ import annotations

from collections.abc import Iterable

from ..graph import Graph


def ancestors(graph: Graph, nodes: Iterable[int], stop: Iterable[int] = ()) -> list[int]:
    """The nodes themselves and everything they depend on, in topological (id) order; the
    arguments of ``stop`` nodes are not followed."""
    seen = set(nodes)
    stack = list(seen)
    pred = graph.nx.pred
    stop = set(stop)
    while stack:
        n = stack.pop()
        if n in stop:
            continue
        for a in pred[n]:
            if a not in seen:
                seen.add(a)
                stack.append(a)
    return sorted(seen)


# ops whose value is treated as a constant by differentiation
BARRIERS = ("stop_gradient",)


def dependents(graph: Graph, order: list[int], sources: Iterable[int]) -> set[int]:
    """Members of ``order`` (topologically sorted) that depend differentiably on ``sources``."""
    hit = set(sources)
    pred, nodes = graph.nx.pred, graph.nx.nodes
    for n in order:
        if n not in hit and nodes[n]["op"] not in BARRIERS and any(a in hit for a in pred[n]):
            hit.add(n)
    return hit
