"""Looking at graphs: ``pprint`` (one line per node, jaxpr-like) and ``to_dot`` (Graphviz)."""

from __future__ import annotations

import reprlib

import networkx as nx
import numpy as np

from .autodiff.sweep import ancestors
from .errors import GraphError, dim_text, user_site
from .graph import Graph, Tensor


def _nodes(x, what: str) -> tuple[Graph, list[int]]:
    """The graph and the node ids ``what`` (pprint, to_dot) shows for ``x``: a Graph, a
    Tensor or a non-empty list of Tensors of one graph."""
    if isinstance(x, Graph):
        return x, sorted(x.nx.nodes)
    outs = [x] if isinstance(x, Tensor) else _tensors(x)
    if not outs:
        hint = "; import it with sg.Graph.from_networkx(G)" if isinstance(x, nx.Graph) else ""
        raise GraphError(
            f"{what} needs a Graph, a Tensor or a non-empty list of Tensors, got "
            f"{type(x).__name__} {_shown(x)}{hint} ({user_site()})"
        )
    graph = outs[0].graph
    if any(o.graph is not graph for o in outs):
        raise GraphError(f"{what}: the Tensors are of different graphs ({user_site()})")
    return graph, ancestors(graph, [o.node for o in outs])


def _tensors(x) -> list[Tensor]:
    """The items of ``x`` if it is a collection of Tensors only, else []."""
    if isinstance(x, (str, bytes, np.ndarray)):
        return []
    try:
        items = list(x)
    except TypeError:
        return []
    return items if all(isinstance(t, Tensor) for t in items) else []


def _shown(x) -> str:
    """A short one-line repr of a user's value for an error message."""
    return _printable(reprlib.repr(x))


def _marked(graph: Graph, highlight) -> set[int]:
    """The node ids of ``highlight``: Tensors of ``graph`` or ids of its nodes (or one)."""
    if isinstance(highlight, (Tensor, int, np.integer)):  # iterating a Tensor builds nodes
        highlight = [highlight]
    try:  # (a Graph indexes by name: iterating it would look up names 0, 1, ...)
        items = None if isinstance(highlight, (Graph, str, bytes)) else list(highlight)
    except TypeError:
        items = None
    if items is None:
        raise GraphError(
            f"to_dot: highlight must be a list of Tensors or node ids, got "
            f"{type(highlight).__name__} {_shown(highlight)} ({user_site()})"
        )
    marked = set()
    for h in items:
        if isinstance(h, Tensor) and h.graph is graph:
            marked.add(h.node)
        elif isinstance(h, (int, np.integer)) and not isinstance(h, (bool, np.bool_)):
            if h not in graph.nx:
                raise GraphError(
                    f"to_dot: highlight {h} is no node of this graph of {len(graph)} nodes "
                    f"({user_site()})"
                )
            marked.add(int(h))
        else:
            what = "a Tensor of another graph" if isinstance(h, Tensor) else type(h).__name__
            raise GraphError(
                f"to_dot: highlight holds {what} {_shown(h)}, not a Tensor of this graph or "
                f"a node id ({user_site()})"
            )
    return marked


def _printable(text) -> str:
    """``text`` on one line: newlines and other control characters shown as escapes."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _attr_text(attrs: dict) -> str:
    parts = []
    for k, v in attrs.items():
        if isinstance(v, np.ndarray):
            v = f"array{v.shape}" if v.size > 6 else np.array2string(v, separator=",")
            v = v.replace("\n", "")  # a small matrix prints one row a line
        parts.append(f"{k}={v}")
    return _printable(", ".join(parts))


def _type_text(d: dict) -> str:
    return f"{d['dtype']}[{','.join(dim_text(s) for s in d['shape'])}]"


def format_graph(x) -> str:
    """The text ``pprint`` prints."""
    graph, nodes = _nodes(x, "pprint")
    lines = []
    for n in nodes:
        d = graph.nx.nodes[n]
        args = " ".join(f"%{a}" for a in graph.args(n))
        attrs = _attr_text(d["attrs"])
        label = f"  # {_printable(d['name'])}" if "name" in d else ""
        call = _printable(d["op"]) + (f"[{attrs}]" if attrs else "") + (f" {args}" if args else "")
        lines.append(f"%{n}:{_type_text(d)} = {call}{label}")
    return "\n".join(lines)


def pprint(x, file=None) -> None:
    """Print a Tensor's subgraph (or a list of Tensors', or a whole Graph), one node a line."""
    print(format_graph(x), file=file)


def to_dot(x, highlight=()) -> str:
    """Graphviz DOT text of a Tensor's subgraph, a list of Tensors' or a whole Graph.

    ``highlight`` (Tensors or node ids) are drawn filled, e.g. the nodes a derivative added.
    """
    graph, nodes = _nodes(x, "to_dot")
    marked = _marked(graph, highlight)
    lines = ["digraph symgrad {", "  rankdir=BT;", "  node [shape=box, fontname=monospace];"]
    for n in nodes:
        d = graph.nx.nodes[n]
        text = f"%{n} {d['op']}" + (f" {d['name']}" if "name" in d else "")
        label = _dot_string(_printable(text)) + "\\n" + _dot_string(_type_text(d))
        style = ', style=filled, fillcolor="#ffe8a8"' if n in marked else ""
        lines.append(f'  n{n} [label="{label}"{style}];')
    for n in nodes:
        for pos, a in enumerate(graph.args(n)):
            lines.append(f'  n{a} -> n{n} [label="{pos}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_string(text: str) -> str:
    """``text`` escaped for the inside of a double-quoted DOT string."""
    return text.replace("\\", "\\\\").replace('"', '\\"')
