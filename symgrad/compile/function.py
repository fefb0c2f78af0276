"""``sg.compile``: a graph becomes a Python function of NumPy calls (``Function``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..autodiff.sweep import ancestors
from ..errors import GraphError, InputError, ShapeError, format_shape, user_site
from ..graph import Tensor, mapping, tensor_list
from ..rewrite import optimize
from .arguments import check_argument, make_fast_key, run_failure
from .codegen import emit_program, node_of_line


class Function:
    """A compiled graph. Call it with one array per input; it returns the outputs (one array
    for a single Tensor, a tuple for a list) and then applies the ``updates`` in place.
    Outputs are fresh arrays, each its own. An input must not share memory with a variable
    that ``updates`` changes (``fn(w.value)``): the update may be written before it is read.

    Kernels are specialized and cached per input shapes; ``source`` is the generated code.
    """

    def __init__(
        self,
        outputs,
        inputs: Sequence[Tensor] = (),
        updates: dict | None = None,
        rewrites=True,
    ):
        outs, self.single = tensor_list(outputs, "compile: outputs")
        inputs, _ = tensor_list(inputs, "compile: inputs")
        pairs = list(mapping(updates, "compile: updates").items())
        given = outs + inputs + [x for kv in pairs for x in kv]
        if not given:
            raise GraphError(f"compile needs outputs, inputs or updates ({user_site()})")
        self.graph = graph = given[0].graph if isinstance(given[0], Tensor) else None
        self.origin_graph = graph  # a staged Function's graph is private; this is the user's
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
                raise GraphError(
                    f"updates keys must be variables, got {graph.describe(var.node)} "
                    f"({user_site()})"
                )
            if value.shape != var.shape or value.dtype != var.dtype:
                raise ShapeError(
                    f"update of {graph.describe(var.node)} with {graph.describe(value.node)}: "
                    f"shape/dtype {value.shape} {value.dtype} must equal {var.shape} {var.dtype} "
                    f"({user_site()})"
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
        self._kernels: dict = {}  # sizes of the symbolic dims -> (kernel, source, workspace)
        self._last = None
        # the symbolic dims in the order the arguments bind them (the cache key's order)
        self._dim_names = list(
            dict.fromkeys(d for x in inputs for d in x.shape if isinstance(d, str))
        )
        # the cache key of a call whose arguments are all exactly right, else None
        self._fast_key = make_fast_key([(x.shape, x.dtype) for x in inputs])

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
        key = tuple(dims.values())  # bound in argument order, so equal shapes give equal keys
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

    def __call__(self, *args, **keywords):
        if keywords:
            raise InputError(
                f"a compiled function takes its inputs by position, in the order "
                f"{[x.name for x in self.inputs]}; got keywords {sorted(keywords)}; "
                f"at {user_site()}"
            )
        # the common call: every argument already an array of the declared dtype and shape
        key = self._fast_key(args)
        hit = self._kernels.get(key)
        if hit is None:
            return self._checked_call(args)
        self._last = hit
        kernel = hit[0]
        try:
            return kernel(*args)
        except (ValueError, IndexError) as e:
            failure = self._run_failure(e, kernel, dict(zip(self._dim_names, key)))
            if failure is None:
                raise
            raise failure from e

    def _checked_call(self, args):
        """The call through the full check of every argument, which converts what it can and
        raises an error naming the input and the user's call site for what it cannot."""
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

    def _run(self, kernel, arrays, dims: dict | None = None):
        try:
            return kernel(*arrays)
        except (ValueError, IndexError) as e:
            if dims is None:
                dims = dict(zip(self._dim_names, self._fast_key(tuple(arrays)) or ()))
            failure = self._run_failure(e, kernel, dims)
            if failure is None:
                raise
            raise failure from e

    def _run_failure(self, error: Exception, kernel, dims: dict) -> InputError | None:
        """The InputError naming the node whose line of ``kernel`` raised ``error`` (None
        when no line of the kernel did)."""
        node = self._failed_node(error, kernel)
        if node is None:
            return None
        return run_failure(self._prog.graph, node, dims, error, user_site())

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
