"""Reverse mode, symbol to symbol: the cotangents are new nodes of the same graph.

One iterative sweep in decreasing node id (reverse topological) order over the nodes that lie
between ``wrt`` and the outputs; zero cotangents are ``None`` and never become arrays.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DifferentiationError, GraphError, ShapeError, show, user_site
from ..graph import Tensor, mapping
from ..ops import get_op
from ..ops.reductions import ones_like, zeros_like
from ..ops.shapes import compatible, is_float
from ..ops.structural import broadcast_to, unbroadcast
from .stable import stable_twins
from .sweep import ancestors, dependents


def backprop(
    seeds: dict[Tensor, Tensor], wrt: Sequence[Tensor], batch: tuple = ()
) -> dict[int, Tensor]:
    """Cotangents of the ``wrt`` nodes given cotangents ``seeds`` of some nodes.

    Every cotangent has shape ``batch + node shape``: batched cotangents push many rows of a
    Jacobian through one graph.

    Returns {node id: cotangent Tensor} for every wrt node reached (absent = zero).
    """
    graph = next(iter(seeds)).graph
    seeds = _stable_seeds(graph, seeds, wrt)
    order = ancestors(graph, [s.node for s in seeds])
    live = dependents(graph, order, [w.node for w in wrt])
    targets = {w.node for w in wrt}
    cts: dict[int, Tensor] = {}
    for s, ct in seeds.items():
        _accumulate(cts, s.node, ct)
    for n in reversed(order):
        ct = cts.get(n)
        if ct is None or n not in live:
            continue
        node = Tensor(graph, n)
        args = node.args
        # integer arguments are visited too: their rules raise (cast) or give None (labels)
        needed = [a.node in live for a in args]
        if not any(needed):
            continue
        op = get_op(node.op)
        if not op.differentiable or op.vjp is None:
            raise DifferentiationError(
                f"cannot differentiate through op {node.op!r}: {graph.describe(n)}; "
                f"requested at {user_site()}"
            )
        contributions = op.vjp(node, ct, needed)
        for a, c, need in zip(args, contributions, needed):
            if c is None or not need:
                continue
            _accumulate(cts, a.node, unbroadcast(c, a.shape, len(batch)))
        if n not in targets:
            del cts[n]  # free the reference; nothing upstream reads it again
    return {n: cts[n] for n in targets if n in cts}


def _stable_seeds(graph, seeds: dict[Tensor, Tensor], wrt: Sequence[Tensor]) -> dict:
    """The seeds moved to their nodes' stable twins (see stable.py): equal functions of
    ``wrt``, so the same derivatives, built from stable rules."""
    twins = stable_twins(graph, [s.node for s in seeds], [w.node for w in wrt])
    if not twins:
        return seeds
    moved: dict[Tensor, Tensor] = {}
    for s, ct in seeds.items():
        s = Tensor(graph, twins.get(s.node, s.node))
        moved[s] = ct if s not in moved else moved[s] + ct
    return moved


def _accumulate(cts: dict[int, Tensor], n: int, c: Tensor) -> None:
    prev = cts.get(n)
    cts[n] = c if prev is None else prev + c


def _as_list(x) -> tuple[list, bool]:
    """(items, was_single): a Tensor or an array is one item; a list or tuple is many."""
    if isinstance(x, (list, tuple)):
        return list(x), False
    return [x], True


def _seed(graph, value, like: Tensor, what: str) -> Tensor:
    """A tangent or cotangent for ``like``: a Tensor of ``graph`` as it is, else ``value``, an
    array of real numbers, as a constant in ``like``'s dtype."""
    if isinstance(value, Tensor):
        if value.graph is not graph:
            raise GraphError(f"{what} {value!r} is a Tensor of another graph ({user_site()})")
        return value
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):  # a ragged list
        arr = None
    if arr is None or arr.dtype.kind not in "biuf":  # text, objects; complex would lose a part
        got = type(value).__name__ + ("" if arr is None else f" of dtype {arr.dtype}")
        raise GraphError(
            f"{what} for {graph.describe(like.node)} must be a Tensor or an array of real "
            f"numbers, got {got} ({user_site()})"
        )
    return graph.constant(arr.astype(like.dtype, copy=False))


def _outputs(outs: list, what: str):
    """The graph of ``outs``, after refusing an empty list and anything but Tensors of one
    graph (a foreign output would be read by node id in the wrong graph)."""
    if not outs or not all(isinstance(o, Tensor) for o in outs):
        raise GraphError(f"{what} needs output Tensors, got {show(outs)} ({user_site()})")
    graph = outs[0].graph
    if any(o.graph is not graph for o in outs):
        raise GraphError(f"{what}: the outputs are Tensors of different graphs ({user_site()})")
    return graph


def _finish(
    graph, wrt: list[Tensor], cts: dict[int, Tensor], disconnected: str, batch: tuple = ()
) -> list[Tensor]:
    out = []
    for w in wrt:
        ct = cts.get(w.node)
        if ct is None:
            if disconnected == "raise":
                raise DifferentiationError(
                    f"the output does not depend on {graph.describe(w.node)}; "
                    f"pass disconnected='zero' to get zeros (at {user_site()})"
                )
            ct = zeros_like(w) if not batch else broadcast_to(zeros_like(w), batch + w.shape)
        elif ct.dtype != w.dtype:
            from ..ops import cast

            if np.dtype(ct.dtype).kind == "c":  # a cast to real would drop the imaginary part
                raise DifferentiationError(
                    f"the derivative in {graph.describe(w.node)} is complex ({ct.dtype}): "
                    f"symgrad differentiates real functions ({user_site()})"
                )

            ct = cast(ct, w.dtype)
        out.append(ct)
    return out


def _check(graph, wrt, disconnected):
    if not isinstance(disconnected, str) or disconnected not in ("zero", "raise"):
        raise GraphError(
            f"disconnected must be 'zero' or 'raise', got {show(disconnected)} ({user_site()})"
        )
    for w in wrt:
        if not isinstance(w, Tensor) or w.graph is not graph:
            raise GraphError(f"wrt {w!r} is not a Tensor of the output's graph ({user_site()})")
        if not is_float(w.dtype):
            raise DifferentiationError(
                f"cannot differentiate with respect to {graph.describe(w.node)}: "
                f"dtype {w.dtype} is not floating point ({user_site()})"
            )


def grad(
    cost: Tensor,
    wrt,
    known_grads: dict | None = None,
    disconnected: str = "zero",
):
    """Gradient of the scalar ``cost`` with respect to ``wrt`` (a Tensor or a list of them).

    The result is new nodes of the same graph, so it can be differentiated again.
    ``known_grads={node: cotangent}`` starts the sweep from given cotangents as well
    (``cost`` may then be None).
    """
    known = mapping(known_grads, "known_grads")  # {Tensor: cotangent}
    if cost is not None and not isinstance(cost, Tensor):
        raise GraphError(
            f"grad needs a symgrad Tensor as its cost, got {type(cost).__name__} ({user_site()})"
        )
    if cost is not None:
        if cost.ndim != 0:
            raise DifferentiationError(
                f"grad needs a scalar cost, got {cost.graph.describe(cost.node)}; "
                f"use sg.vjp for non-scalar outputs ({user_site()})"
            )
    anchor = cost if cost is not None else next(iter(known), None)
    if anchor is None:
        raise GraphError(f"grad needs a cost or known_grads ({user_site()})")
    graph = getattr(anchor, "graph", None)  # None: a key that is no Tensor, refused next
    for node in known:
        if not isinstance(node, Tensor) or node.graph is not graph:
            raise GraphError(
                f"known_grads key {node!r} is not a Tensor of the graph ({user_site()})"
            )
    wrt_list, single = _as_list(wrt)
    _check(graph, wrt_list, disconnected)
    with graph.transaction():
        seeds = {}
        if cost is not None:
            seeds[cost] = ones_like(cost)
        for node, ct in known.items():
            ct = _seed(graph, ct, node, "known_grads cotangent")
            if not compatible(ct.shape, node.shape):
                raise ShapeError(
                    f"known_grads: cotangent shape {ct.shape} does not fit "
                    f"{graph.describe(node.node)} at {user_site()}"
                )
            seeds[node] = ct if node not in seeds else seeds[node] + ct
        out = _finish(graph, wrt_list, backprop(seeds, wrt_list), disconnected)
    return out[0] if single else out


def vjp(outputs, inputs, cotangents, disconnected: str = "zero"):
    """Reverse mode with given cotangents: sum over outputs of cotangent^T d output / d input.

    Cotangents may carry extra leading batch axes (shape ``batch + output shape``); the
    results then have shape ``batch + input shape``.
    """
    outs, _ = _as_list(outputs)
    cots, _ = _as_list(cotangents)
    ins, single = _as_list(inputs)
    if len(outs) != len(cots):
        raise GraphError(f"vjp: {len(outs)} outputs but {len(cots)} cotangents ({user_site()})")
    graph = _outputs(outs, "vjp")
    _check(graph, ins, disconnected)
    with graph.transaction():
        seeds: dict[Tensor, Tensor] = {}
        batch = None
        for o, c in zip(outs, cots):
            c = _seed(graph, c, o, "vjp: the cotangent")
            nb = c.ndim - o.ndim
            # the output's own dims, symbolic ones by name: another name would give the
            # result the cotangent's dims, which no call checks against the input's
            if nb < 0 or tuple(c.shape[nb:]) != tuple(o.shape) or batch not in (None, c.shape[:nb]):
                raise ShapeError(
                    f"vjp: cotangent shape {c.shape} does not fit {graph.describe(o.node)} "
                    f"(expected [batch +] {o.shape}, one batch shape for all) at {user_site()}"
                )
            batch = c.shape[:nb]
            seeds[o] = c if o not in seeds else seeds[o] + c
        out = _finish(graph, ins, backprop(seeds, ins, batch), disconnected, batch)
    return out[0] if single else out
