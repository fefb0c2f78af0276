"""Validating a graph built directly in networkx and importing it (``Graph.from_networkx``)."""

from __future__ import annotations

import networkx as nx
import numpy as np

from .errors import GraphError, ShapeError, format_shape
from .ops.registry import OPS


def _where(G, n) -> str:
    w = G.nodes[n].get("where")
    return f" (made at {w})" if w else ""


def import_networkx(graph, G: nx.MultiDiGraph):
    """Check ``G`` (ops known, acyclic, arguments complete, shapes consistent) and rebuild it
    node by node in ``graph``. On any error nothing is kept."""
    if not isinstance(G, (nx.MultiDiGraph, nx.DiGraph)):
        raise GraphError(
            f"from_networkx needs a networkx DiGraph/MultiDiGraph, got {type(G).__name__}"
        )
    for n, d in G.nodes(data=True):
        op = d.get("op")
        if op is None:
            raise GraphError(f"node {n!r} has no 'op' attribute{_where(G, n)}")
        if op not in OPS:
            raise GraphError(f"node {n!r}: unknown op {op!r}{_where(G, n)}")
    try:
        cycle = nx.find_cycle(G)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join(f"{u!r}({G.nodes[u]['op']})" for u, *_ in cycle)
        raise GraphError(f"the graph has a cycle: {path} -> {cycle[0][0]!r}")
    args: dict = {}
    for n in G.nodes:
        edges = []
        for u, _, data in G.in_edges(n, data=True):
            if "pos" not in data:
                raise GraphError(f"edge {u!r} -> {n!r} ({G.nodes[n]['op']}) has no 'pos'")
            edges.append((data["pos"], u))
        edges.sort(key=lambda e: e[0])
        positions = [p for p, _ in edges]
        if positions != list(range(len(edges))):
            raise GraphError(
                f"node {n!r} ({G.nodes[n]['op']}): argument positions {positions} are not "
                f"0..{len(edges) - 1}; an argument is missing or repeated{_where(G, n)}"
            )
        args[n] = [u for _, u in edges]
    start = graph._next_id
    imported = {}
    try:
        for n in nx.lexicographical_topological_sort(G, key=str):
            imported[n] = _import_node(graph, G, n, [imported[u] for u in args[n]])
    except Exception:
        graph.rollback(start)
        raise
    graph.imported = imported
    return graph


def _import_node(graph, G, n, arg_tensors):
    d = G.nodes[n]
    op, attrs = d["op"], dict(d.get("attrs") or {})
    if op == "input":
        if "shape" not in d or "name" not in d:
            raise GraphError(f"input node {n!r} needs 'name' and 'shape'{_where(G, n)}")
        t = graph.input(d["name"], d["shape"], d.get("dtype", "float64"))
    elif op == "variable":
        t = graph.variable(d.get("name", f"var{n}"), attrs["value"])
    elif op == "constant":
        if "value" not in attrs:
            raise GraphError(f"constant node {n!r} needs attrs['value']{_where(G, n)}")
        t = graph.constant(attrs["value"], name=d.get("name"))
    else:
        try:
            t = graph.apply(op, arg_tensors, attrs)
        except (ShapeError, GraphError) as e:
            raise type(e)(f"node {n!r}: {e}") from None
    declared = d.get("shape")
    if declared is not None and tuple(declared) != t.shape:
        raise ShapeError(
            f"node {n!r} ({op}) declares shape {format_shape(tuple(declared))} but its arguments "
            f"give {format_shape(t.shape)}{_where(G, n)}"
        )
    if "dtype" in d and np.dtype(d["dtype"]).name != t.dtype:
        raise ShapeError(f"node {n!r} ({op}) declares dtype {d['dtype']} but computes {t.dtype}")
    return t
