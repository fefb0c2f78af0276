"""The reference interpreter: runs each node's plain NumPy ``impl`` in order, no rewrites.

Tests compare compiled Functions against it. It also checks every value's shape and dtype
against the graph's inference, so a wrong rule shows up here first.
"""

from __future__ import annotations

import numpy as np

from ..autodiff.sweep import ancestors
from ..errors import InputError, SymgradError, show, user_site
from ..graph import Tensor, mapping, tensor_list
from ..ops import get_op
from ..ops.shapes import resolve
from .arguments import check_argument, run_failure


def feed_nodes(graph, feed) -> dict[int, object]:
    """Feed keys (Tensors or input/variable names) -> node ids."""
    out = {}
    for key, value in mapping(feed, "the feed {input: value}", InputError).items():
        t = graph[key] if isinstance(key, str) else key
        if not isinstance(t, Tensor) or t.graph is not graph:
            raise InputError(f"feed key {key!r} is not a Tensor of this graph ({user_site()})")
        out[t.node] = value
    return out


def resolve_attrs(spec, attrs: dict, dims: dict) -> dict:
    if not spec.shape_attrs:
        return attrs
    return {k: resolve(v, dims) if k in spec.shape_attrs else v for k, v in attrs.items()}


def evaluate(outputs, feed: dict | None = None):
    """Values of ``outputs`` (a Tensor or a list) given ``feed`` {input: array}."""
    outs, single = tensor_list(outputs, "evaluate: outputs")
    if not outs:
        return []
    if not all(isinstance(o, Tensor) for o in outs) or any(
        o.graph is not outs[0].graph for o in outs
    ):
        raise InputError(f"evaluate needs Tensors of one graph, got {show(outs)} ({user_site()})")
    graph = outs[0].graph
    fed = feed_nodes(graph, feed)
    where = user_site()
    dims: dict = {}
    bound_by: dict = {}
    # every fed value is checked and binds its symbolic dims, needed by the outputs or not
    values = {n: check_argument(graph, n, v, dims, where, bound_by) for n, v in fed.items()}
    for n in ancestors(graph, [o.node for o in outs]):
        data = graph.nx.nodes[n]
        op = data["op"]
        if n in values:
            continue
        if op == "input":
            raise InputError(f"no value fed for {graph.describe(n)}; at {where}")
        elif op in ("constant", "variable"):
            values[n] = data["attrs"]["value"]
        else:
            spec = get_op(op)
            args = [values[a] for a in graph.args(n)]
            try:
                with np.errstate(all="ignore"):  # inf/nan are values here, as in NumPy
                    v = np.asarray(spec.impl(args, resolve_attrs(spec, data["attrs"], dims)))
            except (ValueError, IndexError) as e:
                raise run_failure(graph, n, dims, e, where) from e
            expect = resolve(data["shape"], dims)
            if v.shape != expect or v.dtype != data["dtype"]:
                raise SymgradError(
                    f"internal: {graph.describe(n)} evaluated to {v.shape} {v.dtype}, "
                    f"inferred {expect} {data['dtype']}"
                )
            values[n] = v
    result = [np.array(values[o.node], copy=True) for o in outs]
    return result[0] if single else result
