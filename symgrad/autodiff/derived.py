"""Derivatives built from the two sweeps: HVPs, Jacobians, Hessians."""

from __future__ import annotations

import numpy as np

from ..errors import DifferentiationError, GraphError, show, user_site
from ..graph import Tensor
from ..ops import reshape, sum, transpose
from ..ops.shapes import numel
from .forward import jvp
from .reverse import _as_list, _check, _outputs, grad, vjp


def hvp(f: Tensor, wrt, v, mode: str = "fwd-rev"):
    """Hessian-vector product of the scalar ``f``: H v, as graph nodes.

    ``mode="fwd-rev"`` (default) is forward-over-reverse, jvp(grad f, v);
    ``mode="rev-rev"`` is the textbook grad(<grad f, v>).
    """
    _outputs([f], "hvp")
    ws, single = _as_list(wrt)
    vs, _ = _as_list(v)
    if len(ws) != len(vs):
        raise GraphError(f"hvp: {len(ws)} inputs but {len(vs)} vectors ({user_site()})")
    if not isinstance(mode, str) or mode not in ("fwd-rev", "rev-rev"):
        raise GraphError(
            f"hvp mode must be 'fwd-rev' or 'rev-rev', got {show(mode)} ({user_site()})"
        )
    with f.graph.transaction():  # all or nothing: a bad v leaves no gradient nodes behind
        gs = grad(f, ws)
        if mode == "fwd-rev":
            out = jvp(gs, ws, vs)
        else:
            dot = None
            for g_, v_ in zip(gs, vs):
                term = sum(g_ * v_)
                dot = term if dot is None else dot + term
            out = grad(dot, ws)
    return out[0] if single else out


def _basis(x: Tensor) -> Tensor:
    n = numel(x.shape)
    if n is None:
        raise DifferentiationError(
            f"jacobian/hessian need concrete dims, {x.graph.describe(x.node)} has symbolic "
            f"ones ({user_site()})"
        )
    return x.graph.constant(np.eye(n, dtype=x.dtype).reshape((n,) + x.shape))


def _move_front_to_back(t: Tensor, nfront: int) -> Tensor:
    """(front..., rest...) -> (rest..., front...)."""
    nd = t.ndim
    return transpose(t, tuple(range(nfront, nd)) + tuple(range(nfront)))


def jacobian(y: Tensor, x, mode: str = "auto"):
    """d y / d x with shape y.shape + x.shape, built as one graph whatever the sizes.

    ``mode="fwd"`` pushes the basis of x through batched tangents (one JVP graph);
    ``mode="rev"`` pulls the basis of y back through batched cotangents (one VJP graph);
    ``"auto"`` picks reverse mode when y has fewer elements than x.
    """
    graph = _outputs([y], "jacobian")
    xs, single = _as_list(x)
    if not isinstance(mode, str) or mode not in ("auto", "fwd", "rev"):
        raise GraphError(
            f"jacobian mode must be 'auto', 'fwd' or 'rev', got {show(mode)} ({user_site()})"
        )
    _check(graph, xs, "zero")  # before a basis is made in some other graph
    with y.graph.transaction():
        out = _jacobians(y, xs, mode)
    return out[0] if single else out


def _jacobians(y: Tensor, xs: list, mode: str) -> list:
    out = []
    for xi in xs:
        m, n = numel(y.shape), numel(xi.shape)
        use_rev = mode == "rev" or (mode == "auto" and m is not None and n is not None and m < n)
        if use_rev:
            rows = vjp(y, xi, _basis(y))  # (m,) + x.shape: row i is e_i^T J
            out.append(reshape(rows, y.shape + xi.shape))
        else:
            cols = jvp(y, xi, _basis(xi))  # (n,) + y.shape: column j is J e_j
            out.append(reshape(_move_front_to_back(cols, 1), y.shape + xi.shape))
    return out


def hessian(f: Tensor, x):
    """Hessian of the scalar ``f``: shape x.shape + x.shape, the Jacobian of its gradient.

    With a list ``x``, a list of blocks ``H[i][j]`` (d^2 f / dx_i dx_j); each block is pushed
    forward over the gradient, or pulled back through it where the block has fewer rows than
    columns (``jacobian``'s ``"auto"``)."""
    _outputs([f], "hessian")
    xs, single = _as_list(x)
    with f.graph.transaction():
        if single:
            return jacobian(grad(f, xs[0]), xs[0])
        gs = grad(f, xs)
        return [[jacobian(g_, xj) for xj in xs] for g_ in gs]
