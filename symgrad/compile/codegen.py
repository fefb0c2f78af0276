"""Emit the source of one Python function of NumPy calls for a scheduled graph.

Identifiers are generated (``a0`` arguments, ``v12`` the value of node 12, ``k3`` constants,
``w4`` variables, ``d0`` symbolic dims); constants and variables are passed in the function's
namespace. No user-supplied name, label or constant ever becomes source text.
"""

from __future__ import annotations

import itertools
import linecache
import math
import re
import weakref
from dataclasses import dataclass

import numpy as np

from .. import runtime
from ..graph import Graph
from ..ops import get_op
from ..ops.nn import head_call
from ..ops.shapes import resolve
from ..storage import staggered_empty
from .head import Heads, plan_heads
from .layout import Layout, add_scaled, plan_layout
from .memory import (
    alias_roots,
    in_place_updates,
    kept_by_caller,
    plan_memory,
    split_coefficient,
)
from .scaling import fold_update_scale

# names of the kernel's locals: its arguments aN, dims dN, values vN, temporaries tN, copied
# outputs uN and the result rN
LOCAL_PREFIXES = frozenset("adrtuv")


class EmitContext:
    """What an op's ``emit`` may ask for while writing its expression."""

    def __init__(self, dims: dict | None):
        self.namespace: dict = {"np": np, "rt": runtime}
        self.dims = dims  # concrete sizes of symbolic dims, or None to read them at run time
        self.dim_names: dict[str, str] = {}
        self.pending: list[tuple[str, str]] = []  # statements the current line needs first
        self.arg_ndims: list[int] = []  # ranks of the current node's arguments
        self.arg_shapes: list[tuple] | None = None  # and their concrete shapes, if known
        self.node_shape: tuple | None = None  # the current node's concrete shape, if known
        self.node_dtype: str | None = None  # and its dtype
        self.scratches: dict[tuple, str] = {}  # (shape, dtype, slot) -> a kept array's name
        self._temps = 0

    def statement(self, src: str) -> str:
        """Compute ``src`` in a statement of its own just before the current line; its name."""
        name = f"t{self._temps}"
        self._temps += 1
        self.pending.append((name, src))
        return name

    def const(self, value, hint: str = "k") -> str:
        """A name bound to ``value`` in the kernel's namespace: ``hint`` and a number."""
        if hint in LOCAL_PREFIXES:  # tN, vN ... are the kernel's locals: they would shadow it
            raise ValueError(f"a kept value's name may not start with {hint!r}")
        name = f"{hint}{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def scratch(self, shape: tuple, dtype, slot: int | str = 0) -> str:
        """An array of ``shape`` kept by the kernel for a value that lives within one statement
        (shared by every statement asking for the same shape, dtype and ``slot``: the values
        one statement needs at once take different slots)."""
        key = (tuple(shape), np.dtype(dtype), slot)
        if key not in self.scratches:
            self.scratches[key] = self.const(staggered_empty(shape, dtype), "m")
        return self.scratches[key]

    def filled(self, value: float, shape: tuple, dtype) -> str:
        """A read-only array of ``value`` the kernel keeps, shared by every statement asking
        for the same value, shape and dtype."""
        key = (tuple(shape), np.dtype(dtype), ("filled", value))
        if key not in self.scratches:
            z = staggered_empty(shape, dtype)
            z[...] = value
            z.flags.writeable = False
            self.scratches[key] = self.const(z, "z")
        return self.scratches[key]

    def kept(self, name: str | None) -> np.ndarray | None:
        """The array the kernel keeps under ``name`` (a workspace buffer, a variable, a
        constant, a view of one), or None: a view of it made now is valid on every call."""
        value = self.namespace.get(name) if name is not None else None
        return value if isinstance(value, np.ndarray) else None

    def contiguous(self, name: str | None) -> np.ndarray | None:
        """The kept array under ``name`` if it is C-contiguous, else None."""
        value = self.kept(name)
        return value if value is not None and value.flags.c_contiguous else None

    def literal(self, v) -> str:
        """Source for a small static value: ints and finite floats inline, the rest by name."""
        if isinstance(v, bool) or v is None:
            return repr(v)
        if isinstance(v, (int, np.integer)):
            return repr(int(v))
        if isinstance(v, float) and math.isfinite(v):
            return repr(v)
        return self.const(v)

    def dim(self, name: str) -> str:
        if self.dims is not None:
            return repr(int(self.dims[name]))
        return self.dim_names.setdefault(name, f"d{len(self.dim_names)}")

    def shape(self, shape) -> str:
        parts = [self.dim(d) if isinstance(d, str) else repr(int(d)) for d in shape]
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


@dataclass
class Program:
    source: str
    namespace: dict
    fn_name: str = "symgrad_kernel"
    workspace_bytes: int = 0  # the buffers the kernel keeps and reuses across calls

    def build(self):
        # a file name of its own, known to linecache, so tracebacks show the generated lines
        filename = f"<symgrad {self.fn_name} {next(_BUILT)}>"
        code = compile(self.source, filename, "exec")
        scope = dict(self.namespace)
        exec(code, scope)
        fn = scope[self.fn_name]
        linecache.cache[filename] = (len(self.source), None, self.source.splitlines(True), filename)
        weakref.finalize(fn, linecache.cache.pop, filename, None)
        return fn


_BUILT = itertools.count()


def _classes_of_first_argument(graph, n: int):
    return graph.nx.nodes[graph.args(n)[0]]["shape"][-1]


# ops reading integer labels: which argument, and where the number of classes is
LABEL_READERS = {
    "one_hot": (0, lambda graph, n: graph.nx.nodes[n]["attrs"]["depth"]),
    **{
        op: (1, _classes_of_first_argument)
        for op in ("cross_entropy", "cross_entropy_from_lse", "softmax_minus_one_hot")
        + ("minus_one_hot",)
    },
}


def _label_checks(graph, order, names, in_place, layout) -> list[str]:
    """Statements checking, before anything else, the labels that nodes scheduled after a
    variable is first written in place read: a bad label must fail the call before any
    variable has changed."""
    variables = [d["attrs"]["value"] for _, d in graph.nx.nodes(data=True) if d["op"] == "variable"]
    writes = set(in_place) | {
        n
        for n, a in layout.slots.items()
        if n in layout.statements and any(a is v for v in variables)
    }
    first = next((i for i, n in enumerate(order) if n in writes), None)
    checks = []
    for n in order[first:] if first is not None else ():
        op = graph.nx.nodes[n]["op"]
        if op not in LABEL_READERS:
            continue
        k, classes = LABEL_READERS[op]
        labels, depth = names.get(graph.args(n)[k], ""), classes(graph, n)
        if labels.startswith("a") and isinstance(depth, int):  # an argument of the call
            checks.append(f"rt.check_labels({labels}, {depth})  # %{n} {op}")
    return checks


def node_of_line(source: str, lineno: int) -> int | None:
    """The graph node that line ``lineno`` (from 1) of generated source computes."""
    lines = source.splitlines()
    if 0 < lineno <= len(lines):
        m = re.search(r"  # %(\d+) \w+( and %\d+)?$", lines[lineno - 1])  # (a fused head's two)
        if m:
            return int(m.group(1))
    return None


def may_alias(graph: Graph, order: list[int]) -> set[int]:
    """Nodes whose emitted value may share memory with an input, constant or variable."""
    leaves = ("input", "constant", "variable")
    return {n for n, r in alias_roots(graph, order).items() if graph.nx.nodes[r]["op"] in leaves}


def last_uses(
    graph: Graph, order: list[int], keep: set[int], reads: dict | None = None
) -> dict[int, list[int]]:
    """{node: the values whose last reader it is}, for values not in ``keep``; ``reads`` as in
    ``plan_memory``."""
    last: dict[int, int] = {}
    for n in order:
        for a in [*graph.nx.pred[n], *(reads or {}).get(n, ())]:
            last[a] = n
    out: dict[int, list[int]] = {}
    for a, n in last.items():
        if a not in keep:
            out.setdefault(n, []).append(a)
    return out


def _workspace_bytes(ctx: EmitContext, buffers: dict[int, str], layout: Layout) -> int:
    """Bytes of the arrays the kernel allocated for itself: the memory plan's buffers, the
    layout's and the scratch arrays."""
    arrays = [ctx.namespace[name] for name in buffers.values()]
    arrays += layout.owned + [ctx.namespace[name] for name in ctx.scratches.values()]
    bases = {id(a if a.base is None else a.base): a if a.base is None else a.base for a in arrays}
    return sum(b.nbytes for b in bases.values())


def _kept_view(ctx: EmitContext, spec, args: list[str], attrs: dict) -> np.ndarray | None:
    """A view op's value, made now, when it views an array the kernel keeps (say ``W.T`` of
    a variable); None for any other node, or where the op would copy."""
    from .evaluate import resolve_attrs

    arrays = [ctx.kept(a) for a in args] if spec.is_view and len(args) == 1 else [None]
    if any(a is None for a in arrays) or (spec.shape_attrs and ctx.dims is None):
        return None
    value = spec.impl(arrays, resolve_attrs(spec, attrs, ctx.dims))
    root = arrays[0] if arrays[0].base is None else arrays[0].base
    return value if value is arrays[0] or value.base is root else None


def _buffer_views(ctx: EmitContext, graph: Graph, plan, dims: dict) -> dict[int, str]:
    """Allocate the plan's buffers once and name each value's view of its buffer."""
    bases = [staggered_empty(size, dtype) for size, dtype in plan.buffers]
    names: dict[tuple, str] = {}
    out = {}
    for n, (b, shape) in plan.views(graph.nx.nodes, dims).items():
        if (b, shape) not in names:
            size = int(np.prod(shape, dtype=np.int64))
            names[b, shape] = ctx.const(bases[b][:size].reshape(shape), "s")
        out[n] = names[b, shape]
    return out


def _accumulate(var: str, rest, args: list[str], spare: list[str]) -> str:
    """``var += rest`` (or ``-=``) in place, ``rest`` an expression over ``args``. When rest
    is c * g with g in a buffer dying here (``spare``), g is scaled in place first, so the
    update allocates nothing."""
    from ..ops.elementwise import sym, to_source

    c, g = split_coefficient(rest)
    held = [i for i, name in enumerate(args) if name in spare and g == sym(i)]
    if held:
        return add_scaled(var, args[held[0]], c)
    ufunc = "np.subtract" if c < 0 else "np.add"
    return f"{ufunc}({var}, {to_source(-rest if c < 0 else rest, args)}, out={var})"


FOLD_LIMIT = 1 << 16  # elements: a bigger value is cheaper to compute than to keep


def fold_static(graph: Graph, order: list[int], dims: dict) -> dict[int, np.ndarray]:
    """Values of the nodes that depend on no input or variable, for one shape specialization
    (e.g. 1/batch_size in a mean's gradient): computed once, when the kernel is built."""
    from .evaluate import resolve_attrs

    values: dict[int, np.ndarray] = {}
    folded: dict[int, np.ndarray] = {}
    for n in order:
        data = graph.nx.nodes[n]
        if data["op"] == "constant":
            values[n] = data["attrs"]["value"]
            continue
        args = graph.args(n)
        if data["op"] in ("input", "variable") or not all(a in values for a in args):
            continue
        spec = get_op(data["op"])
        with np.errstate(all="ignore"):
            v = np.asarray(
                spec.impl([values[a] for a in args], resolve_attrs(spec, data["attrs"], dims))
            )
        if v.size > FOLD_LIMIT and not spec.is_view:
            continue
        values[n] = folded[n] = v
    return folded


def emit_program(
    graph: Graph,
    order: list[int],
    inputs: list[int],
    outputs: list[int],
    updates: list[tuple[int, int]],
    single: bool,
    dims: dict | None = None,
) -> Program:
    """Source and namespace of ``symgrad_kernel(a0, a1, ...)`` computing ``outputs`` then
    writing each update (variable, new value) in place."""
    ctx = EmitContext(dims)
    names: dict[int, str] = {n: f"a{i}" for i, n in enumerate(inputs)}
    body: list[str] = []
    folded = fold_static(graph, order, dims) if dims is not None else {}
    escaping = set(outputs) | {v for _, v in updates}
    in_place = in_place_updates(graph, order, updates, outputs) if dims is not None else {}
    in_place, rescaled = fold_update_scale(graph, in_place, folded, escaping)
    layout = (
        plan_layout(graph, order, in_place, escaping, set(folded), dims, ctx.const)
        if dims is not None
        else Layout()
    )
    fixed = set(folded) | layout.unbuffered  # take no workspace buffer
    heads = Heads()
    if dims is not None:
        kept = kept_by_caller(graph, order, escaping) | set(in_place)  # not in buffers
        claimed = fixed | kept | set(layout.statements)  # stay where they are
        order, heads = plan_heads(graph, order, claimed, set(folded))
    dies_at = last_uses(graph, order, escaping, layout.reads)
    plan = (
        plan_memory(graph, order, dims, escaping, fixed | heads.inner, layout.reads)
        if dims is not None
        else None
    )
    buffers = _buffer_views(ctx, graph, plan, dims) if plan else {}
    slots = {n: ctx.const(a, "s") for n, a in layout.slots.items()}
    names.update({n: ctx.const(v) for n, v in folded.items()})  # ready wherever scheduled
    names.update({n: "" for n in heads.inner})  # computed inside their head's call
    names.update({loss: buffers[loss] for loss in heads.losses.values()})  # written by it
    for n in order:
        data = graph.nx.nodes[n]
        op = data["op"]
        label = op if op.isidentifier() else "op"
        if n in folded and any(c not in folded for c in graph.nx.succ[n]):
            body.append(f"# %{n} {label}: {names[n]}, computed once for these shapes")
        if n in names:
            continue
        if op in ("constant", "variable"):
            names[n] = ctx.const(data["attrs"]["value"], "w" if op == "variable" else "k")
            continue
        spec = get_op(op)
        args = [names[a] for a in graph.args(n)]
        ctx.arg_ndims = [len(graph.nx.nodes[a]["shape"]) for a in graph.args(n)]
        ctx.arg_shapes = (
            [resolve(graph.nx.nodes[a]["shape"], dims) for a in graph.args(n)]
            if dims is not None
            else None
        )
        ctx.node_shape = resolve(data["shape"], dims) if dims is not None else None
        ctx.node_dtype = data["dtype"]
        if n in rescaled:  # a seed whose scale took the updates' learning rate
            i, value = rescaled[n]
            args[i] = ctx.const(value)
        if n in layout.skip:  # computed by another node's statement
            names[n] = slots.get(n, "")
        elif n in layout.packed:  # written with its neighbours by a packed update
            names[n] = names[in_place[n][0]]
        elif n in layout.statements:
            names[n] = slots.get(n) or buffers.get(n) or f"v{n}"
            buffered = names[n] != f"v{n}"
            statement = layout.statements[n](ctx, names, names[n], buffered)
            body.append(f"{statement}  # %{n} {label}")
        elif n in heads.losses:  # the cross-entropy head: its losses and gradient in one call
            names[n] = buffers[n]
            shape = runtime.head_workspace(ctx.node_shape) if ctx.node_shape else None
            work = ctx.scratch(shape, data["dtype"], "softmax") if shape else None
            call = head_call(args, data["attrs"], names[heads.losses[n]], names[n], work)
            body.append(f"{call}  # %{n} {label} and %{heads.losses[n]}")
        elif n in slots:  # into memory the layout chose
            names[n] = slots[n]
            body.append(f"{spec.emit_into(ctx, names[n], args, data['attrs'])}  # %{n} {label}")
        elif n in in_place:  # var <- var + E, added into the variable's own array
            var, rest = in_place[n]
            names[n] = names[var]
            spare = [  # buffers dying here may hold the scaled step
                a for a in graph.args(n) if plan and a in plan.buffer and a in plan.freed.get(n, ())
            ]
            step = _accumulate(names[var], rest, args, [names[a] for a in spare])
            body.append(f"{step}  # %{n} {label}")
        elif plan is not None and n in plan.buffer:  # into a buffer reused across calls
            names[n] = buffers[n]
            body.append(f"{spec.emit_into(ctx, names[n], args, data['attrs'])}  # %{n} {label}")
        elif (view := _kept_view(ctx, spec, args, data["attrs"])) is not None:
            names[n] = ctx.const(view, "view")  # the same view of kept memory on every call
            body.append(f"# %{n} {label}: {names[n]}, a view of {args[0]} made once")
        else:
            expr = spec.emit(ctx, args, data["attrs"])
            names[n] = f"v{n}"
            temps = [name for name, _ in ctx.pending]
            body += [f"{name} = {src}  # %{n} {label}" for name, src in ctx.pending]
            body.append(f"v{n} = {expr}  # %{n} {label}")
            if temps:  # a fused kernel's intermediates are dead once its value is computed
                body.append(f"del {', '.join(temps)}")
            ctx.pending.clear()
        body += [f"{src}  # %{n} {label}" for src in layout.after.get(n, ())]
        dead = [names[a] for a in dies_at.get(n, ()) if names[a] == f"v{a}"]  # fresh values
        if dead:  # free intermediates at their last use, so memory is reused, not grown
            body.append(f"del {', '.join(dead)}")
    if dims is None and ctx.dim_names:
        header = []
        for dim, ident in ctx.dim_names.items():
            src = next(
                (i, k)
                for i, n in enumerate(inputs)
                for k, d in enumerate(graph.nx.nodes[n]["shape"])
                if d == dim
            )
            header.append(f"{ident} = a{src[0]}.shape[{src[1]}]")
        body = header + body
    aliased = may_alias(graph, order) | set(folded)
    # updates: read every new value before writing any (a value may view another variable)
    body = _label_checks(graph, order, names, in_place, layout) + body
    staged = []
    for i, (var, value) in enumerate(updates):
        if value in in_place:
            continue  # already written where it was computed
        src = names[value]
        if value in aliased:
            body.append(f"u{i} = np.array({src}, copy=True)")
            src = f"u{i}"
        staged.append(f"{names[var]}[...] = {src}")
    results = []
    root, owners = alias_roots(graph, order), set()
    for o in outputs:
        src = names[o]
        # an output viewing kept memory, or memory an earlier output returns (y and y.T, or
        # one Tensor listed twice), is copied: every output is an array of its own
        if o in aliased or root.get(o, o) in owners:
            src = f"np.array({src}, copy=True)"
        elif not graph.nx.nodes[o]["shape"]:
            src = f"np.asarray({src})"  # NumPy reductions give scalars; outputs are arrays
        owners.add(root.get(o, o))
        results.append(src)
    if updates:  # outputs are taken (aliased ones copied) before any variable is written
        body += [f"r{i} = {r}" for i, r in enumerate(results)]
        results = [f"r{i}" for i in range(len(results))]
    body += staged
    ret = (
        results[0]
        if single
        else "(" + ", ".join(results) + ("," if len(results) == 1 else "") + ")"
    )
    body.append(f"return {ret}")
    params = ", ".join(f"a{i}" for i in range(len(inputs)))
    source = f"def symgrad_kernel({params}):\n" + "".join(f"    {line}\n" for line in body)
    return Program(source, ctx.namespace, workspace_bytes=_workspace_bytes(ctx, buffers, layout))
