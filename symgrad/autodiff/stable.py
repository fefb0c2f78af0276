"""Differentiate the stable form: before a sweep, the nodes it will differentiate are rewritten
by the stabilizing rules, and the sweep starts from that rewrite.

The derivative of ``log(softmax(z))`` built rule by rule divides by a softmax that underflows;
the derivative of ``log_softmax(z)`` never does. The compiler stabilizes the values it computes,
but derivative nodes built from the unstable form keep their 0/0 and inf/inf: the HVP of
``log(1 + exp(z))`` at z = 1000 was NaN. So the sweeps differentiate the stable twin of each
output: the stabilizing rewrites run on a copy of the outputs' cone and their result joins the
user's graph as new nodes (hash-consing reuses every node that did not change). The user's own
nodes are never changed, and where no stabilizing rule fires nothing is added.
"""

from __future__ import annotations

import functools

import sympy as sp

from ..graph import LEAF_OPS, Graph, Tensor
from ..ops import OPS
from ..ops.elementwise import expression, index_of, parts
from .sweep import BARRIERS, ancestors, dependents

# the rules the differentiated cone is rewritten with: the stabilizing ones alone (the
# canonical forms would rebuild much of a graph for nothing; the stabilizing rules see
# through them), less the two that cancel divisions: they look at every product near a
# division, which in a gradient's graph is most of them (an HVP of a 20,000-node chain took
# 5x as long), and the compiled kernels cancel those divisions anyway
_PHASES = ("stabilize",)
_SKIPPED = frozenset({"div_cancel", "cancel_division"})

# False differentiates the graph exactly as written (what tests of the unstable forms use)
ENABLED = True


def stable_twins(graph: Graph, outputs: list[int], wrt: list[int]) -> dict[int, int]:
    """{output: its stable twin} for the outputs a stabilizing rewrite changes.

    A twin computes the same function of the ``wrt`` nodes, which it reads as they are: a
    ``wrt`` node inside the graph is an input to the rewrites, so none routes around it
    (``log(s)`` with ``wrt`` s = softmax(z) is not ``log_softmax(z)``). Twins that would
    depend on fewer ``wrt`` nodes than the outputs are not used."""
    if not ENABLED:
        return {}
    cone = ancestors(graph, outputs)
    live = dependents(graph, cone, wrt)
    if not any(_may_be_unstable(graph, n, live) for n in cone if n in live):
        return {}
    from ..rewrite import extract
    from ..rewrite.manager import Rewriter

    nodes = graph.nx.nodes
    cut = {w: f"wrt %{w}" for w in wrt if nodes[w]["op"] not in LEAF_OPS}
    copy = extract(graph, outputs, cut)
    rw = Rewriter(copy.graph, [copy.mapping[o] for o in outputs], _rules())
    rw.run()
    if not any(_stabilizing(name) for name in rw.log):
        return {}
    rw.finish()
    start = graph._next_id
    back = {c: u for u, c in copy.mapping.items()}
    made = _join(graph, rw.graph, {now: back[given] for now, given in rw.original.items()}, wrt)
    if made is None or _reached(graph, outputs, wrt) != _reached(
        graph, [made[r] for r in rw.roots], wrt
    ):
        graph.rollback(start)  # the outputs as written
        return {}
    return {o: made[r] for o, r in zip(outputs, rw.roots) if made[r] != o}


def _join(graph: Graph, new: Graph, user: dict[int, int], wrt: list[int]) -> dict | None:
    """Build the nodes of ``new`` (ids in topological order) in ``graph``: {new id: node}.
    Leaves and constants map to the ``user`` nodes they came from, equal nodes already there
    are reused, and new ones point at the user code of what they replace. None when a node a
    rule built is one of the ``wrt`` nodes (softplus(z) beside a wrt h = softplus(z)): the
    twin would read that wrt on a path the outputs do not, and its derivative would count
    it."""
    start = graph._next_id
    wrt = set(wrt)
    made: dict[int, int] = {}
    for m in sorted(new.nx.nodes):
        d = new.nx.nodes[m]
        if m in user and (d["op"] in LEAF_OPS or d["op"] == "constant"):
            made[m] = user[m]
            continue
        if d["op"] == "constant":  # folded by a rule
            t = graph.constant(d["attrs"]["value"])
        else:
            args = [Tensor(graph, made[a]) for a in new.args(m)]
            t = graph.apply(d["op"], args, d["attrs"])
        if t.node in wrt:
            return None
        if t.node >= start:
            graph.nx.nodes[t.node]["where"] = d["where"]
        made[m] = t.node
    return made


def _reached(graph: Graph, outputs: list[int], wrt: list[int]) -> set[int]:
    """The ``wrt`` nodes the outputs depend on, not through a differentiation barrier."""
    stops = [n for n in ancestors(graph, outputs) if graph.nx.nodes[n]["op"] in BARRIERS]
    return set(ancestors(graph, outputs, stops)) & set(wrt)


def _may_be_unstable(graph: Graph, n: int, live: set[int]) -> bool:
    """Whether a stabilizing rule could match at ``n``: each starts from a log, an exp or a
    division, held in elementwise expressions; a division by what does not depend on the
    ``live`` nodes (a mean's count) is differentiated as it stands."""
    if not OPS[graph.nx.nodes[n]["op"]].extra.get("elementwise"):
        return False
    logs, divisors = _risks(expression(Tensor(graph, n)))
    args = graph.args(n)
    return logs or any(args[i] in live for i in divisors)


@functools.lru_cache(maxsize=4096)
def _risks(e: sp.Expr) -> tuple[bool, frozenset[int]]:
    """(whether ``e`` holds an exp or a log, the arguments x_i it divides by)."""
    divisors = {
        index_of(s) for p in parts(e, sp.Pow) if p.exp.is_negative for s in p.base.free_symbols
    }
    return bool(parts(e, (sp.exp, sp.log))), frozenset(divisors)


@functools.cache
def _rules() -> frozenset[str]:
    from ..rewrite.manager import REWRITES

    chosen = {n for n, r in REWRITES.items() if r.phase in _PHASES and n not in _SKIPPED}
    return frozenset(chosen | {"merge", "dead_code"})


def _stabilizing(name: str) -> bool:
    from ..rewrite.manager import REWRITES

    return REWRITES[name].phase == "stabilize"
