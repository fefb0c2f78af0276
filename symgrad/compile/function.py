"""``sg.compile``: a graph becomes a Python function of NumPy calls (``Function``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..autodiff.sweep import ancestors
from ..errors import GraphError, InputError, ShapeError, format_shape, user_site
from ..graph import Tensor
from ..rewrite import optimize
from .arguments import check_argument, run_failure
from .codegen import emit_program, node_of_line


class Function:
    """A compiled graph. Call it with one array per input; it returns the outputs (one array
    for a single Tensor, a tuple for a list) and then applies the ``updates`` in place.

    Kernels are specialized and cached per input shapes; ``source`` is the generated code.
    """

    def __init__(
        self,
        outputs,
        inputs: Sequence[Tensor] = (),
        updates: dict | None = None,
        rewrites=True,
    ):
        self.single = isinstance(outputs, Tensor)
        outs = [outputs] if self.single else list(outputs)
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        pairs = list((updates or {}).items())
        given = outs + inputs + [x for kv in pairs for x in kv]
        if not given:
            raise GraphError(f"compile needs outputs, inputs or updates ({user_site()})")
        self.graph = graph = given[0].graph if isinstance(given[0], Tensor) else None
        for t in given:
            if not isinstance(t, Tensor) or t.graph is not graph:
                raise GraphError(f"{t!r} is not a Tensor of the same graph ({user_site()})")
        for i, x in enumerate(inputs):
            if x.op != "input":
                raise InputError(
                    f"inputs must be graph inputs, got {graph.describe(x.node)} ({user_site()})"
                )
            if x in inputs[:i]:
                raise InputError(
                    f"{graph.describe(x.node)} is listed twice in inputs=[...] ({user_site()})"
                )
        for var, value in pairs:
            if var.op != "variable":
                raise GraphError(f"updates keys must be variables, got {graph.describe(var.node)}")
            if value.shape != var.shape or value.dtype != var.dtype:
                raise ShapeError(
                    f"update of {graph.describe(var.node)} with {graph.describe(value.node)}: "
                    f"shape/dtype {value.shape} {value.dtype} must equal {var.shape} {var.dtype}"
                )
        self.outputs, self.inputs, self.updates = outs, inputs, pairs
        # updated variables are needed even when nothing reads them (they are written)
        roots = [o.node for o in outs] + [x.node for kv in pairs for x in kv]
        self._order = ancestors(graph, roots)
        declared = {x.node for x in inputs}
        bound = {d for x in inputs for d in x.shape if isinstance(d, str)}
        for n in self._order:
            data = graph.nx.nodes[n]
            if data["op"] == "input" and n not in declared:
                raise InputError(
                    f"the outputs depend on {graph.describe(n)}, which is not in inputs=[...] "
                    f"({user_site()})"
                )
            unbound = [d for d in data["shape"] if isinstance(d, str) and d not in bound]
            if unbound:  # its size could never be known at call time
                raise ShapeError(
                    f"symbolic dim {unbound[0]!r} of {graph.describe(n)} is not a dim of any "
                    f"input in inputs=[...] ({user_site()})"
                )
        # the kernel is generated from a rewritten private copy; the user's graph stays as is
        self.rewrites = rewrites
        self._prog = optimize(graph, roots + [x.node for x in inputs], rewrites)
        self.rewrite_log = self._prog.log
        self._kernels: dict = {}
        self._last = None
        # (ndim, dtype, concrete dims, symbolic dims) of each input, for the fast check
        self._specs = [
            (
                len(x.shape),
                np.dtype(x.dtype),
                tuple((i, d) for i, d in enumerate(x.shape) if not isinstance(d, str)),
                tuple((i, d) for i, d in enumerate(x.shape) if isinstance(d, str)),
            )
            for x in inputs
        ]

    def _program(self, dims):
        m = self._prog.mapping
        return emit_program(
            self._prog.graph,
            sorted(self._prog.graph.nx.nodes),
            [m[x.node] for x in self.inputs],
            [m[o.node] for o in self.outputs],
            [(m[v.node], m[u.node]) for v, u in self.updates],
            self.single,
            dims,
        )

    def _kernel(self, dims: dict):
        key = tuple(dims.items())  # bound in argument order, so equal shapes give equal keys
        hit = self._kernels.get(key)
        if hit is None:
            program = self._program(dims)
            hit = self._kernels[key] = (program.build(), program.source, program.workspace_bytes)
        self._last = hit
        return hit[0]

    def specialize(self, fixed: dict) -> Function:
        """A Function of the remaining inputs, with ``fixed`` {input or variable: value} bound
        and everything that depends only on them computed once, now."""
        from .staging import specialize

        return specialize(self, fixed)

    @property
    def workspace_bytes(self) -> int:
        """Bytes of the buffers the last specialization called keeps between calls."""
        return 0 if self._last is None else self._last[2]

    @property
    def source(self) -> str:
        """The generated NumPy source (of the last specialization called, else generic)."""
        if self._last is not None:
            return self._last[1]
        return self._program(None).source

    def __call__(self, *args):
        hit = self._kernels.get(self._fast_key(args))
        if hit is not None:  # every argument already an array of the declared dtype and shape
            self._last = hit
            return self._run(hit[0], args, None)
        if len(args) != len(self.inputs):
            where = user_site()
            wanted = "; ".join(self.graph.describe(x.node) for x in self.inputs) or "none"
            got = ", ".join(_shape_text(a) for a in args) or "none"
            raise InputError(
                f"this function takes {len(self.inputs)} arguments ({wanted}), got {len(args)} "
                f"of shapes {got}; at {where}"
            )
        dims: dict = {}
        bound_by: dict = {}
        graph = self.graph
        # the call site is looked up only if an argument is wrong
        arrays = [
            check_argument(graph, x.node, a, dims, user_site, bound_by)
            for x, a in zip(self.inputs, args)
        ]
        return self._run(self._kernel(dims), arrays, dims)

    def _run(self, kernel, arrays, dims: dict | None):
        try:
            return kernel(*arrays)
        except (ValueError, IndexError) as e:
            node = self._failed_node(e, kernel)
            if node is None:
                raise
            dims = dict(self._fast_key(arrays) or ()) if dims is None else dims
            raise run_failure(self._prog.graph, node, dims, e, user_site()) from e

    def _fast_key(self, args) -> tuple | None:
        """The kernel cache key when every argument is an ndarray of exactly the declared
        dtype and shape (the common case, checked in one cheap pass), else None."""
        if len(args) != len(self._specs):
            return None
        dims: dict = {}
        for (ndim, dtype, fixed, named), a in zip(self._specs, args):
            if type(a) is not np.ndarray or (a.dtype is not dtype and a.dtype != dtype):
                return None
            shape = a.shape
            if len(shape) != ndim:
                return None
            for i, d in fixed:
                if shape[i] != d:
                    return None
            for i, name in named:
                if dims.setdefault(name, shape[i]) != shape[i]:
                    return None
        return tuple(dims.items())

    def _failed_node(self, error: Exception, kernel) -> int | None:
        """The node whose line of the kernel raised ``error``."""
        tb = error.__traceback__
        while tb is not None and tb.tb_frame.f_code is not kernel.__code__:
            tb = tb.tb_next
        return None if tb is None else node_of_line(self._last[1], tb.tb_lineno)


def _shape_text(value) -> str:
    try:
        return format_shape(np.shape(value))
    except Exception:  # a ragged list or an object NumPy cannot take
        return type(value).__name__


def compile(  # noqa: A001
    outputs, inputs: Sequence[Tensor] = (), updates: dict | None = None, rewrites=True
) -> Function:
    """Compile ``outputs`` (a Tensor or a list) into a Function of ``inputs``.

    ``updates={variable: new_value}`` writes new values in place after the outputs are
    computed, so one call can run forward, backward and an optimizer step. ``rewrites`` is
    True (all graph rewrites), False (none) or ``{"exclude": [names]}``.
    """
    return Function(outputs, inputs, updates, rewrites)
