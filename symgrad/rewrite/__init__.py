"""Graph rewrites applied by ``sg.compile`` to a private copy of the needed subgraph.

``optimize(graph, roots, rewrites)`` copies the nodes the roots need into a new Graph and
rewrites that copy; the user's graph is never changed. It returns the new graph (node ids in
topological order), the map from the user's node ids to new ones (every root and every node
kept as it was; a replaced root maps to its replacement) and the log of the rewrites that
fired.

The rewrites, one module per family, each a named entry that can be switched off with
``rewrites={"exclude": [name, ...]}`` (``REWRITES`` lists them all):
- ``fold``: constant folding (small results only) and uniform values kept symbolic;
- ``algebra``: identities (x*1, x+0, x*0, --x ...), canonical signs and divisions, and
  structural ops that cancel (transpose of transpose, reshape of reshape, sum of broadcast);
- ``stabilize``: log(softmax), log(sum(exp)), log(1+exp), log(sigmoid), log(1-sigmoid),
  exp(log x), softmax and sigmoid written by hand, softmax cross-entropy, divisions that
  cancel (the gradients of all these);
- ``fuse``: connected elementwise nodes become one SymPy-expression node;
- merge (CSE) and dead-code elimination run after every change (``manager``);
- ``cost``: FLOP estimates per op (not a rewrite: what benchmarks compare graphs with).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..autodiff.sweep import ancestors
from ..errors import RewriteError
from ..graph import LEAF_OPS, Graph, freeze
from . import algebra, fold, fuse, stabilize  # noqa: F401  (importing registers the rules)
from .manager import REWRITES, Rewriter, _settle, enabled_rewrites

__all__ = ["REWRITES", "RewriteError", "Rewritten", "extract", "optimize"]


@dataclass
class Rewritten:
    graph: Graph
    mapping: dict[int, int]  # node of the user's graph -> node of ``graph``
    log: dict[str, int] = field(default_factory=dict)  # rewrite name -> times it fired


def extract(graph: Graph, roots: list[int], cut: dict[int, str] | None = None) -> Rewritten:
    """A copy of everything ``roots`` depend on. Variables and constants share their arrays
    with the original, so updates written by a compiled function reach the user's variables.
    ``cut`` {node: name}: those nodes become inputs of that name (what they read is not
    copied), so no rewrite looks through them."""
    new = Graph()
    G = new.nx
    nodes, pred = graph.nx._node, graph.nx._pred
    cut = cut or {}
    mapping: dict[int, int] = {}
    for n in ancestors(graph, roots, cut):
        data = dict(nodes[n])
        data["attrs"] = dict(data["attrs"])  # rewrites never touch the user's dicts
        if n in cut:
            data.update(op="input", attrs={}, name=cut[n])
        m = len(mapping)
        G._node[m] = data
        G._succ[m] = {}
        G._pred[m] = into = {}
        slots = []
        for a, keydict in pred[n].items() if n not in cut else ():
            a = mapping[a]
            edges = {k: {"pos": d["pos"]} for k, d in keydict.items()}
            G._succ[a][m] = into[a] = edges  # one edge dict seen from both ends
            slots += [(d["pos"], a) for d in keydict.values()]
        op = data["op"]
        if op in LEAF_OPS:
            new._names[data["name"]] = m
        elif op == "constant":
            key = graph._constant_keys.get(n) or ("constant", freeze(data["attrs"]))
            new._cons.setdefault(key, m)
            new._constant_keys[m] = key
        else:
            slots.sort()
            attrs = data["attrs"]
            key = (op, freeze(attrs) if attrs else (), tuple(a for _, a in slots))
            new._cons.setdefault(key, m)
        mapping[n] = m
    new._next_id = len(mapping)
    _settle(G)
    return Rewritten(new, mapping)


def optimize(graph: Graph, roots: list[int], rewrites=True) -> Rewritten:
    """Copy the subgraph of ``roots`` and rewrite it.

    ``rewrites``: True (all), False (none) or {"exclude": [names]}.
    """
    enabled = enabled_rewrites(rewrites)
    copy = extract(graph, roots)
    if not enabled:
        return copy
    rw = Rewriter(copy.graph, [copy.mapping[r] for r in roots], enabled)
    rw.run()
    rw.finish()
    now = {given: n for n, given in rw.original.items()}
    mapping = {user: now[n] for user, n in copy.mapping.items() if n in now}
    mapping.update(zip(roots, rw.roots))  # a replaced root maps to its replacement
    return Rewritten(rw.graph, mapping, dict(sorted(rw.log.items())))
