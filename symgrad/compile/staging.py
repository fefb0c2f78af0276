"""Staged evaluation: ``fn.specialize({input: value})``.

Every node of the compiled program that depends only on the given values is computed once,
now; the Function returned computes the rest. For a Hessian-vector product at fixed
parameters and data this leaves only the v-dependent work per call (what Lanczos and CG need).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, user_site
from ..graph import Graph, Tensor
from ..graph import mapping as as_mapping
from ..ops import get_op
from .arguments import check_argument
from .evaluate import evaluate


def specialize(fn, fixed: dict):
    """A Function of ``fn``'s remaining inputs with ``fixed`` {input or variable: value} bound.

    Values are copied now: later changes to the arrays (or to a fixed variable) are not seen.
    Variables not in ``fixed`` stay live (read at each call, updates still apply).
    """
    prog = fn._prog
    G = prog.graph
    updated = {v.node for v, _ in fn.updates}
    dims: dict = {}
    feed: dict[int, np.ndarray] = {}
    origin = fn.origin_graph
    for key, value in as_mapping(fixed, "specialize: the values", InputError).items():
        t = fn.graph[key] if isinstance(key, str) else key
        if (
            isinstance(t, Tensor)
            and t.graph is origin is not fn.graph
            and t.name in fn.graph._names
        ):
            t = fn.graph[t.name]  # a staged Function's own graph holds the user's leaves by name
        if (
            not isinstance(t, Tensor)
            or t.graph is not fn.graph
            or t.op not in ("input", "variable")
        ):
            raise InputError(f"specialize: {key!r} is not an input or variable ({user_site()})")
        if t.op == "input" and t not in fn.inputs:
            raise InputError(
                f"specialize: {fn.graph.describe(t.node)} is not an input of this function "
                f"({user_site()})"
            )
        if t.node in updated:
            raise InputError(
                f"specialize: {fn.graph.describe(t.node)} is updated by this function and "
                f"cannot be fixed ({user_site()})"
            )
        if t.node not in prog.mapping:  # a variable the function never reads
            continue
        n = prog.mapping[t.node]
        feed[n] = np.array(check_argument(G, n, value, dims, user_site), copy=True)

    order = sorted(G.nx.nodes)
    dynamic: set[int] = set()
    for n in order:
        op = G.nx.nodes[n]["op"]
        if op in ("input", "variable") and n not in feed:
            dynamic.add(n)
        elif any(a in dynamic for a in G.nx.pred[n]) or _unbound(G, n, dims):
            dynamic.add(n)  # (a batch's element count, say, when no fixed value binds it)

    roots = [prog.mapping[o.node] for o in fn.outputs]
    roots += [prog.mapping[x.node] for pair in fn.updates for x in pair]
    needed_static = {
        n
        for n in order
        if n not in dynamic
        and G.nx.nodes[n]["op"] != "constant"
        and (n in roots or any(c in dynamic for c in G.nx.succ[n]))
    }
    precomputed = _values(G, sorted(needed_static), feed)

    H = Graph()
    mapping: dict[int, int] = {}
    for n in order:
        if n in needed_static:
            mapping[n] = H.constant(precomputed[n]).node
        elif n in dynamic or G.nx.nodes[n]["op"] == "constant":
            mapping[n] = _copy(H, G, n, [mapping[a] for a in G.args(n)], dims)

    def tensor(user: Tensor) -> Tensor:
        return Tensor(H, mapping[prog.mapping[user.node]])

    rest = [tensor(x) for x in fn.inputs if prog.mapping[x.node] not in feed]
    outputs = [tensor(o) for o in fn.outputs]
    updates = {tensor(v): tensor(u) for v, u in fn.updates}
    staged = type(fn)(outputs[0] if fn.single else outputs, rest, updates, fn.rewrites)
    staged.origin_graph = origin  # the user's graph, whose Tensors specialize takes again
    return staged


def _values(G: Graph, nodes: list[int], feed: dict) -> dict[int, np.ndarray]:
    if not nodes:
        return {}
    outs = evaluate([Tensor(G, n) for n in nodes], {Tensor(G, n): v for n, v in feed.items()})
    return dict(zip(nodes, outs))


def _unbound(G: Graph, n: int, dims: dict) -> bool:
    """Whether node n's shape or shape attributes hold a symbolic dim no fixed value binds."""
    data = G.nx.nodes[n]
    shapes = [data["shape"], *(data["attrs"][k] for k in get_op(data["op"]).shape_attrs)]
    return any(isinstance(d, str) and d not in dims for shape in shapes for d in shape)


def _copy(H: Graph, G: Graph, n: int, args: list[int], dims: dict) -> int:
    """Node n of G into H, with the symbolic dims that fixed values bound made concrete."""
    data = G.nx.nodes[n]
    attrs = data["attrs"]
    shape_attrs = get_op(data["op"]).shape_attrs
    if shape_attrs:
        attrs = {k: _bind(v, dims) if k in shape_attrs else v for k, v in attrs.items()}
    m = H._add_node(
        data["op"], attrs, _bind(data["shape"], dims), data["dtype"], args, data.get("name")
    )
    H.nx.nodes[m]["where"] = data["where"]
    if data["op"] in ("input", "variable"):
        H._names[data["name"]] = m
    return m


def _bind(shape, dims: dict) -> tuple:
    return tuple(dims.get(d, d) if isinstance(d, str) else d for d in shape)
