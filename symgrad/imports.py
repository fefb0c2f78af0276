"""Validating a graph built directly in networkx and importing it (``Graph.from_networkx``)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import sympy as sp

from .errors import GraphError, ShapeError, SymgradError, format_shape, user_site
from .ops.registry import OPS

# attribute values that may come from a user's networkx graph: plain data only, so nothing
# with a custom repr or behaviour reaches shape rules or generated code (a SymPy expression
# is allowed only as the ``expr`` op's expression, which is translated head by head)
_SCALARS = (type(None), bool, int, float, complex, str, np.ndarray)


def _where(G, n) -> str:
    w = G.nodes[n].get("where")
    return f" (made at {w})" if w else ""


def _order_key(n):
    # ints in numeric order (so a graph's own export keeps its ids), then anything else
    return (0, n, "") if isinstance(n, int) else (1, 0, repr(n))


def import_networkx(graph, G: nx.MultiDiGraph):
    """Check ``G`` (ops known, acyclic, arguments complete, shapes consistent) and rebuild it
    node by node in ``graph``. On any error nothing is kept."""
    site = user_site()
    if not isinstance(G, (nx.MultiDiGraph, nx.DiGraph)):
        raise GraphError(
            f"from_networkx needs a networkx DiGraph/MultiDiGraph, got {type(G).__name__}; "
            f"at {site}"
        )
    for n, d in G.nodes(data=True):
        if not isinstance(d.get("op"), str):
            raise GraphError(
                f"node {n!r} has no 'op' attribute (a string){_where(G, n)}; at {site}"
            )
    try:
        cycle = nx.find_cycle(G)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join(f"{u!r} ({G.nodes[u]['op']})" for u, *_ in cycle)
        raise GraphError(f"the graph has a cycle: {path} -> {cycle[0][0]!r}; at {site}")
    start = graph._next_id
    imported = {}
    try:
        for n in nx.lexicographical_topological_sort(G, key=_order_key):
            imported[n] = _import_node(graph, G, n, imported, site)
    except BaseException:
        graph.rollback(start)
        raise
    graph.imported = imported
    return graph


def _arguments(G, n, imported, site) -> list:
    """The imported argument Tensors of node ``n``, checking edge positions are 0..k-1."""
    op = G.nodes[n]["op"]
    edges = []
    for u, _, data in G.in_edges(n, data=True):
        pos = data.get("pos")
        if not isinstance(pos, (int, np.integer)) or isinstance(pos, bool):
            raise GraphError(
                f"edge {u!r} -> {n!r} ({op}) needs an int 'pos', got {pos!r}{_where(G, n)}; "
                f"at {site}"
            )
        edges.append((int(pos), u))
    edges.sort(key=lambda e: e[0])
    positions = [p for p, _ in edges]
    if positions != list(range(len(edges))):
        given = ", ".join(f"{p}: {_show(u, imported)}" for p, u in edges)
        raise GraphError(
            f"node {n!r} ({op}): argument positions {positions} are not 0..{len(edges) - 1}; "
            f"an argument is missing or repeated (given {given}){_where(G, n)}; at {site}"
        )
    return [u for _, u in edges]


def _show(u, imported) -> str:
    """Node ``u`` of the user's graph and what it became, for error messages."""
    t = imported[u]
    return f"{u!r} = {t.graph.describe(t.node)}"


def _plain(value, what: str):
    """``value`` as plain, hashable-friendly data (lists become tuples); else GraphError."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v, what) for v in value)
    if isinstance(value, np.ndarray) and value.dtype == object:
        raise GraphError(f"attrs[{what!r}] is an array of Python objects, not plain data")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    if isinstance(value, _SCALARS):
        return value
    raise GraphError(
        f"attrs[{what!r}] has type {type(value).__name__}; attributes must be plain data"
    )


def _import_node(graph, G, n, imported, site):
    d = G.nodes[n]
    op = d["op"]
    arg_ids = _arguments(G, n, imported, site)
    args = [imported[u] for u in arg_ids]
    shown = ", ".join(_show(u, imported) for u in arg_ids) or "no arguments"
    if op not in OPS:
        raise GraphError(
            f"node {n!r}: unknown op {op!r} applied to {shown}{_where(G, n)}; at {site}"
        )
    attrs = d.get("attrs") or {}
    if not isinstance(attrs, dict):
        raise GraphError(f"node {n!r} ({op}): 'attrs' must be a dict, got {attrs!r}; at {site}")
    before = graph._next_id
    try:
        attrs = {
            k: v if op == "expr" and k == "expr" and isinstance(v, sp.Basic) else _plain(v, k)
            for k, v in attrs.items()
        }
        t = _build(graph, G, n, op, attrs, args)
    except SymgradError as e:
        at = "" if site in str(e) else f"; at {site}"
        raise type(e)(f"node {n!r} ({op}): {e}{_where(G, n)}{at}") from None
    except Exception as e:  # an op's rules met attrs they do not understand
        raise GraphError(
            f"node {n!r} ({op}): attrs {attrs!r} do not fit the op "
            f"({type(e).__name__}: {e}); arguments {shown}{_where(G, n)}; at {site}"
        ) from e
    declared = d.get("shape")
    if declared is not None and op != "input":
        declared = tuple(declared) if isinstance(declared, (list, tuple)) else (declared,)
        if declared != t.shape:
            raise ShapeError(
                f"node {n!r} ({op}) declares shape {format_shape(declared)} but its arguments "
                f"give {format_shape(t.shape)}{_where(G, n)}; at {site}"
            )
    if "dtype" in d and _dtype(d["dtype"]) != t.dtype:
        raise ShapeError(
            f"node {n!r} ({op}) of shape {format_shape(t.shape)} declares dtype {d['dtype']!r} "
            f"but computes {t.dtype}{_where(G, n)}; at {site}"
        )
    if t.node >= before:  # a new node keeps its label and the site it was first made at
        data = graph.nx.nodes[t.node]
        for key in ("name", "where"):
            if key in d and key not in data:
                data[key] = str(d[key])
        if "where" in d:
            data["where"] = str(d["where"])
    return t


def _build(graph, G, n, op, attrs, args):
    d = G.nodes[n]
    if op in ("input", "variable", "constant") and args:
        raise GraphError(f"{op} takes no arguments, got {len(args)}")
    if op == "input":
        if "shape" not in d or "name" not in d:
            raise GraphError("an input node needs 'name' and 'shape'")
        return graph.input(d["name"], d["shape"], d.get("dtype", "float64"))
    if op in ("variable", "constant") and not isinstance(attrs.get("value"), np.ndarray):
        attrs["value"] = np.asarray(attrs.get("value"))
        if attrs["value"].dtype == object:
            raise GraphError(f"a {op} node needs attrs['value'], an array")
    if op == "variable":
        return graph.variable(d.get("name", f"var{n}"), attrs["value"])
    if op == "constant":
        return graph.constant(attrs["value"], name=d.get("name"))
    return graph.apply(op, args, attrs)


def _dtype(dtype) -> str | None:
    """The dtype's name, or None when it names no dtype (so it matches nothing)."""
    try:
        return np.dtype(dtype).name
    except TypeError:
        return None
