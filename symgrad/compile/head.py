"""The fused cross-entropy head: the losses and their gradient in one runtime call.

After the rewrites, a training step's head is three ops on the logits ``z``::

    lse  = logsumexp(z)                               # the max, the exp and the sum
    loss = cross_entropy_from_lse(z, y, lse)
    dz   = softmax_minus_one_hot(z, y, lse, scale)    # exp(z - lse) again

``rt.softmax_cross_entropy`` computes ``loss`` and ``dz`` from a single exp, in one call
instead of three: a handful of NumPy calls saved, which is what a small step is made of. The
plan moves ``dz`` to just before ``loss`` (all it reads is computed by then), so the call
happens where ``loss`` is first needed; ``lse`` is then computed by nobody else and needs no
buffer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..graph import Graph


@dataclass
class Heads:
    losses: dict[int, int] = field(default_factory=dict)  # gradient node -> its losses node
    inner: set[int] = field(default_factory=set)  # logsumexp nodes computed inside the call


def plan_heads(
    graph: Graph, order: list[int], unbuffered: set[int], ready: set[int]
) -> tuple[list[int], Heads]:
    """(the schedule with each fused gradient moved before its losses, the heads fused).

    A head is fused when the logits are 2-D and the logsumexp over their last axis is read by
    the losses and the gradient alone, and both of those are computed into workspace buffers
    (not ``unbuffered``: nothing escapes the kernel, no layout claims them). The gradient's
    scale is computed before the losses, moved there if it does not read them; ``ready``
    nodes are computed before the kernel runs, wherever they are scheduled."""
    heads = Heads()
    position = {n: i for i, n in enumerate(order)}
    nodes = graph.nx.nodes
    for dz in list(order):  # the schedule changes as heads are fused
        if nodes[dz]["op"] != "softmax_minus_one_hot" or dz in unbuffered:
            continue
        z, y, *rest = graph.args(dz)
        lse = rest[0] if rest and nodes[rest[0]]["op"] == "logsumexp" else None
        if lse is None or lse in unbuffered or len(nodes[z]["shape"]) != 2:
            continue
        if nodes[lse]["attrs"]["axis"] != (1,) or nodes[lse]["attrs"]["keepdims"]:
            continue
        readers = [c for c in graph.nx.succ[lse] if c in position]
        losses = [c for c in readers if nodes[c]["op"] == "cross_entropy_from_lse"]
        if len(readers) != 2 or len(losses) != 1 or losses[0] in unbuffered:
            continue
        (loss,) = losses
        if graph.args(loss) != [z, y, lse] or graph.nx.number_of_edges(lse, dz) != 1:
            continue
        early = _scale_cone(graph, rest[1:], loss, position, ready, unbuffered)
        if early is None:
            continue
        heads.losses[dz] = loss
        heads.inner.add(lse)
        moved = set(early) | {dz}
        order = [n for n in order if n not in moved]
        at = order.index(loss)
        order[at:at] = early + [dz]
        position = {n: i for i, n in enumerate(order)}
    return order, heads


def _scale_cone(
    graph: Graph, scale: list[int], loss: int, position: dict, ready: set[int], fixed: set[int]
) -> list[int] | None:
    """The nodes scheduled after ``loss`` that computing ``scale`` needs (``ready`` ones
    aside), in schedule order, to be moved before it; None if one of them reads the losses or
    is ``fixed`` where it is (another plan claims it)."""
    cone, todo = set(), [a for a in scale if position[a] >= position[loss]]
    while todo:
        n = todo.pop()
        if n in cone or n in ready:
            continue
        if n == loss or n in fixed:
            return None
        cone.add(n)
        todo += [a for a in graph.args(n) if position[a] >= position[loss]]
    return sorted(cone, key=position.__getitem__)
