"""Forward mode, symbol to symbol: one topological sweep pushing tangents through JVP rules.

Tangents may carry extra leading batch axes (shape ``batch + x.shape``); every JVP rule keeps
them in front, which is how Jacobians and Hessians push a whole basis through one graph.
"""

from __future__ import annotations

from ..errors import DifferentiationError, GraphError, ShapeError, user_site
from ..graph import Tensor
from ..ops import get_op
from ..ops.reductions import zeros_like
from ..ops.structural import broadcast_to
from .reverse import _as_list, _check, _outputs, _seed
from .stable import stable_twins
from .sweep import BARRIERS, ancestors, dependents


def push_tangents(
    outputs: list[Tensor], tangents: dict[int, Tensor], batch: tuple
) -> dict[int, Tensor]:
    """Tangents (shape ``batch + node shape``) of every node between the seeds and ``outputs``."""
    graph = outputs[0].graph
    # the outputs' stable twins are differentiated instead (stable.py): same tangents
    twins = stable_twins(graph, [o.node for o in outputs], list(tangents))
    roots = [twins.get(o.node, o.node) for o in outputs]
    order = ancestors(graph, roots)
    # what only feeds a stop_gradient has no tangent to push, and may have no rule for one
    barriers = [n for n in order if graph.nx.nodes[n]["op"] in BARRIERS]
    if barriers:
        order = ancestors(graph, roots, stop=barriers)
    live = dependents(graph, order, tangents)
    tans = dict(tangents)
    for n in order:
        if n in tans or n not in live:
            continue
        node = Tensor(graph, n)
        ts = [tans.get(a) for a in graph.args(n)]
        if all(t is None for t in ts):
            continue
        op = get_op(node.op)
        if not op.differentiable or op.jvp is None:
            raise DifferentiationError(
                f"cannot differentiate through op {node.op!r}: {graph.describe(n)}; "
                f"requested at {user_site()}"
            )
        t = op.jvp(node, ts)
        if t is not None:
            # the one place tangents are broadcast: a rule may leave out broadcast dims
            # (d(a + b)/da = 1 gives a's shape), the tangent has the node's full shape
            tans[n] = broadcast_to(t, batch + node.shape) if t.shape != batch + node.shape else t
    for o, twin in twins.items():
        if twin in tans:
            tans[o] = tans[twin]
    return tans


def jvp(outputs, inputs, tangents, disconnected: str = "zero"):
    """Forward mode: d outputs / d inputs applied to ``tangents`` (shape [batch +] input shape)."""
    outs, single = _as_list(outputs)
    ins, _ = _as_list(inputs)
    tns, _ = _as_list(tangents)
    if len(ins) != len(tns):
        raise GraphError(f"jvp: {len(ins)} inputs but {len(tns)} tangents ({user_site()})")
    graph = _outputs(outs, "jvp")
    _check(graph, ins, disconnected)
    with graph.transaction():
        seeds, batch = {}, None
        for x, t in zip(ins, tns):
            t = _seed(graph, t, x, "jvp: the tangent")
            nb = t.ndim - x.ndim
            # the input's own dims, symbolic ones by name (as vjp asks of cotangents): a
            # concrete tangent of a symbolic input could not be spread to the tangents' shapes
            if nb < 0 or tuple(t.shape[nb:]) != tuple(x.shape) or batch not in (None, t.shape[:nb]):
                raise ShapeError(
                    f"jvp: tangent shape {t.shape} does not fit {graph.describe(x.node)} "
                    f"(expected [batch +] {x.shape}, one batch shape for all) at {user_site()}"
                )
            batch = t.shape[:nb]
            # an input listed twice moves along both tangents: J (t1 + t2), as vjp sums
            seeds[x.node] = t if x.node not in seeds else seeds[x.node] + t
        tans = push_tangents(outs, seeds, batch or ())
        result = []
        for o in outs:
            t = tans.get(o.node)
            if t is None:
                if disconnected == "raise":
                    raise DifferentiationError(
                        f"{graph.describe(o.node)} does not depend on the inputs ({user_site()})"
                    )
                t = broadcast_to(zeros_like(o), batch + o.shape)
            result.append(t)
    return result[0] if single else result
