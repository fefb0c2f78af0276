"""Drawing symgrad graphs with networkx and matplotlib (no Graphviz needed).

Nodes are placed in layers by their longest distance from a leaf, leaves at the bottom, so a
graph reads upward from inputs to the cost, as in the course notes' computational graphs.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np

LEAF_COLORS = {"input": "#9ecae1", "variable": "#a1d99b", "constant": "#d9d9d9"}
OP_COLOR = "#ffffff"
HIGHLIGHT = "#fdae6b"


def subgraph(roots) -> tuple:
    """The graph of the Tensors ``roots`` and the ids of every node they depend on."""
    roots = list(roots)
    graph = roots[0].graph
    nodes = {t.node for t in roots}
    for t in roots:
        nodes |= nx.ancestors(graph.nx, t.node)
    return graph, sorted(nodes)  # ids increase along every edge: a topological order


def label(graph, n: int) -> str:
    d = graph.nx.nodes[n]
    text = d.get("name") or d["op"]
    if d["op"] == "constant" and d["attrs"]["value"].size == 1:
        text = f"{d['attrs']['value'].item():g}"
    return f"{text}\n{'x'.join(map(str, d['shape']))}" if d["shape"] else text


def layout(G, nodes) -> dict:
    """Layered positions: y = longest path from a leaf (leaves just below their first
    consumer), x ordered within each layer by the mean x of neighbours (barycenter sweeps)."""
    layer: dict[int, int] = {}
    for n in nodes:  # ids are a topological order
        layer[n] = 1 + max((layer[a] for a in G.predecessors(n)), default=-1)
    for n in reversed(nodes):
        users = [layer[u] for u in G.successors(n)]
        if G.in_degree(n) == 0 and users:
            layer[n] = min(users) - 1
    rows: dict[int, list] = {}
    for n in nodes:
        rows.setdefault(layer[n], []).append(n)
    x = {n: float(i) for row in rows.values() for i, n in enumerate(row)}

    def place(row):
        for i, n in enumerate(row):
            x[n] = i - (len(row) - 1) / 2

    for row in rows.values():
        place(row)
    for _ in range(4):
        for key in sorted(rows):  # upward: follow the arguments
            rows[key].sort(key=lambda n: np.mean([x[a] for a in G.predecessors(n)] or [x[n]]))
            place(rows[key])
        for key in sorted(rows, reverse=True):  # downward: follow the consumers
            rows[key].sort(key=lambda n: np.mean([x[u] for u in G.successors(n)] or [x[n]]))
            place(rows[key])
    return {n: (x[n], float(layer[n])) for n in nodes}


def draw(roots, highlight=(), ax=None, title=None, node_size=900, font_size=7):
    """Draw the nodes ``roots`` depend on; ``highlight`` (node ids) are filled orange."""
    graph, nodes = subgraph(roots)
    simple = nx.DiGraph(graph.nx.subgraph(nodes))
    pos = layout(simple, nodes)
    marked = set(highlight)
    colors = [
        HIGHLIGHT if n in marked else LEAF_COLORS.get(graph.nx.nodes[n]["op"], OP_COLOR)
        for n in simple
    ]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 6))
    nx.draw_networkx_edges(simple, pos, ax=ax, arrows=True, arrowsize=10, edge_color="#888888",
                           node_size=node_size, node_shape="s",
                           connectionstyle="arc3,rad=0.08")  # fmt: skip
    nx.draw_networkx_nodes(simple, pos, ax=ax, node_color=colors, edgecolors="#444444",
                           node_size=node_size, node_shape="s")  # fmt: skip
    nx.draw_networkx_labels(simple, pos, {n: label(graph, n) for n in simple}, ax=ax,
                            font_size=font_size, font_family="monospace")  # fmt: skip
    xs = [x for x, _ in pos.values()]
    ax.set_xlim(min(xs) - 1.0, max(xs) + 1.0)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax
