"""Looking at graphs: ``pprint`` (one line per node, jaxpr-like) and ``to_dot`` (Graphviz)."""

from __future__ import annotations

import numpy as np

from .autodiff.sweep import ancestors
from .graph import Graph, Tensor


def _nodes(x) -> tuple[Graph, list[int]]:
    if isinstance(x, Graph):
        return x, sorted(x.nx.nodes)
    outs = [x] if isinstance(x, Tensor) else list(x)
    graph = outs[0].graph
    return graph, ancestors(graph, [o.node for o in outs])


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
    return f"{d['dtype']}[{','.join(str(s) for s in d['shape'])}]"


def format_graph(x) -> str:
    """The text ``pprint`` prints."""
    graph, nodes = _nodes(x)
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
    graph, nodes = _nodes(x)
    marked = {h.node if isinstance(h, Tensor) else h for h in highlight}
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
