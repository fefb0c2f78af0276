"""``sg.compile``: a graph becomes a Python function of NumPy calls (``Function``)."""

from __future__ import annotations

from collections.abc import Sequence

from ..autodiff.sweep import ancestors
from ..errors import GraphError, InputError, ShapeError, user_site
from ..graph import Tensor
from .arguments import check_argument
from .codegen import emit_program


class Function:
    """A compiled graph. Call it with one array per input; it returns the outputs (one array
    for a single Tensor, a tuple for a list) and then applies the ``updates`` in place.

    Kernels are specialized and cached per input shapes; ``source`` is the generated code.
    """

    def __init__(self, outputs, inputs: Sequence[Tensor] = (), updates: dict | None = None):
        self.single = isinstance(outputs, Tensor)
        outs = [outputs] if self.single else list(outputs)
        inputs = list(inputs)
        pairs = list((updates or {}).items())
        anchor = (outs + inputs + [k for k, _ in pairs] or [None])[0]
        if anchor is None:
            raise GraphError(f"compile needs outputs, inputs or updates ({user_site()})")
        self.graph = graph = anchor.graph
        for t in outs + inputs + [x for kv in pairs for x in kv]:
            if not isinstance(t, Tensor) or t.graph is not graph:
                raise GraphError(f"{t!r} is not a Tensor of the same graph ({user_site()})")
        for x in inputs:
            if x.op != "input":
                raise InputError(f"inputs must be graph inputs, got {graph.describe(x.node)}")
        for var, value in pairs:
            if var.op != "variable":
                raise GraphError(f"updates keys must be variables, got {graph.describe(var.node)}")
            if value.shape != var.shape or value.dtype != var.dtype:
                raise ShapeError(
                    f"update of {graph.describe(var.node)} with {graph.describe(value.node)}: "
                    f"shape/dtype {value.shape} {value.dtype} must equal {var.shape} {var.dtype}"
                )
        self.outputs, self.inputs, self.updates = outs, inputs, pairs
        self._order = ancestors(graph, [o.node for o in outs] + [v.node for _, v in pairs])
        declared = {x.node for x in inputs}
        for n in self._order:
            if graph.nx.nodes[n]["op"] == "input" and n not in declared:
                raise InputError(
                    f"the outputs depend on {graph.describe(n)}, which is not in inputs=[...] "
                    f"({user_site()})"
                )
        self._kernels: dict = {}
        self._last = None

    def _program(self, dims):
        return emit_program(
            self.graph,
            self._order,
            [x.node for x in self.inputs],
            [o.node for o in self.outputs],
            [(v.node, u.node) for v, u in self.updates],
            self.single,
            dims,
        )

    def _kernel(self, dims: dict):
        key = tuple(sorted(dims.items()))
        hit = self._kernels.get(key)
        if hit is None:
            program = self._program(dims)
            hit = self._kernels[key] = (program.build(), program.source)
        self._last = hit
        return hit[0]

    @property
    def source(self) -> str:
        """The generated NumPy source (of the last specialization called, else generic)."""
        if self._last is not None:
            return self._last[1]
        return self._program(None).source

    def __call__(self, *args):
        if len(args) != len(self.inputs):
            names = ", ".join(repr(x.name) for x in self.inputs)
            raise InputError(
                f"this function takes {len(self.inputs)} arguments ({names}), got {len(args)}; "
                f"at {user_site()}"
            )
        dims: dict = {}
        where = None
        arrays = []
        for x, a in zip(self.inputs, args):
            try:
                arrays.append(check_argument(self.graph, x.node, a, dims, where or "call"))
            except InputError:
                where = user_site()
                arrays.append(check_argument(self.graph, x.node, a, dims, where))
        return self._kernel(dims)(*arrays)


def compile(outputs, inputs: Sequence[Tensor] = (), updates: dict | None = None) -> Function:  # noqa: A001
    """Compile ``outputs`` (a Tensor or a list) into a Function of ``inputs``.

    ``updates={variable: new_value}`` writes new values in place after the outputs are
    computed, so one call can run forward, backward and an optimizer step.
    """
    return Function(outputs, inputs, updates)
