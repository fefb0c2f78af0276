"""Layout planning: values computed straight into memory laid out like the variables.

Variables made one after another are adjacent (``symgrad/storage.py``). Two plans use that,
each cutting NumPy calls, which is what small train steps are made of, and a third adds big
products where they are summed:

- **Packed updates.** When adjacent variables are updated as ``w <- w + c * g_w`` with one
  coefficient ``c``, each ``g_w`` is computed into a mirror buffer at its variable's offset,
  and the whole run is updated by one ``R += c * M`` instead of one or two calls per variable.
- **Bias in the matmul.** When a bias ``b`` is stored right after its weight ``W``, ``[W; b]``
  is one matrix and ``h @ W + b == [h, 1] @ [W; b]``: ``h`` is computed (or copied, when it is
  a narrow input) into a buffer whose last column holds ones, so the add disappears. If both
  gradients sit in a packed run, ``[h, 1]^T @ dz`` writes ``[dW; db]`` in one matmul and the
  bias gradient's sum disappears too.
- **Products added where they are summed** (``accumulate.py``): through BLAS gemm, a big
  weight's gradient products go straight into the weight, and ``A @ B + C @ D`` is one
  matmul and one gemm.

Buffers here are dedicated to their values (the memory plan never hands them out again), so
the ones column and the gradients survive until they are used. Needs concrete dims.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..graph import Graph
from ..ops import get_op
from ..ops.elementwise import is_elementwise
from ..ops.shapes import is_float, resolve
from ..ops.sympy_numpy import emit_steps
from ..storage import address, follows, staggered_empty
from .accumulate import first_add_operands, plan_accumulate
from .memory import kept_by_caller, scaled_argument

WIDE_INPUT = 2  # copy an input into a ones-column buffer only if it has <= 2x the add's columns
# [h, 1] makes h a strided view, slower to write; that pays only while the two calls it saves
# (the bias add and the bias gradient's sum) cost more than the work, at small sizes
ONES_COLUMN_LIMIT = 1 << 14  # elements of [h, 1]
# a computed h wider than WIDE_INPUT x the add's columns is written strided at half speed,
# which from this many elements on costs more than the add and the sum it saves
WIDE_HIDDEN_LIMIT = 1 << 12
# a packed gradient keeps a buffer of its own; a big one is updated alone, where the call
# saved is nothing next to the work and its buffer can be shared with other values
PACK_LIMIT = 1 << 15  # elements of one variable


@dataclass
class Layout:
    slots: dict[int, np.ndarray] = field(default_factory=dict)  # node -> array it is written in
    # node -> the source replacing its own, given {node: name} and the name of its buffer or,
    # without one, of the fresh value to assign
    statements: dict[int, Callable[[dict, str, bool], str]] = field(default_factory=dict)
    skip: set[int] = field(default_factory=set)  # nodes another node's statement computes
    after: dict[int, list[str]] = field(default_factory=dict)  # node -> statements to follow it
    # node -> values its statement reads besides its arguments (those of nodes it computes)
    reads: dict[int, list[int]] = field(default_factory=dict)
    packed: set[int] = field(default_factory=set)  # update values written by a packed update
    const: Callable[[np.ndarray, str], str] | None = None  # names an array for the source
    owned: list[np.ndarray] = field(default_factory=list)  # buffers allocated for the kernel

    @property
    def unbuffered(self) -> set[int]:
        """Nodes the memory plan must not give a workspace buffer."""
        return set(self.slots) | self.skip


def plan_layout(
    graph: Graph,
    order: list[int],
    in_place: dict[int, tuple[int, object]],
    escaping: set[int],
    folded: set[int],
    dims: dict,
    const: Callable[[np.ndarray, str], str],
) -> Layout:
    """The layout plan of one shape specialization. ``in_place`` is ``in_place_updates``:
    {update value: (variable, the added expression over the value's arguments)}; ``const``
    names an array in the kernel's namespace."""
    layout = Layout(const=const)
    escaping = kept_by_caller(graph, order, escaping)
    position = {n: i for i, n in enumerate(order)}
    grads = _packed_updates(graph, order, in_place, escaping, folded, layout, position)
    _bias_in_matmul(graph, order, in_place, escaping, folded, dims, layout, grads, position)
    plan_accumulate(graph, order, position, in_place, escaping, folded, dims, layout)
    return layout


# ---- packed updates -------------------------------------------------------------------------
def _packed_updates(graph, order, in_place, escaping, folded, layout, position) -> dict:
    """Plan the packed runs; returns {variable: its gradient node} for the packed ones."""

    nodes = graph.nx.nodes
    groups: dict[tuple, list] = {}  # (dtype, coefficient) -> [(address, var, value, grad)]
    for value, (var, rest) in in_place.items():
        c, grad = scaled_argument(graph, value, rest)
        if grad is None or not _writable_into(graph, grad, escaping, folded):
            continue
        if list(graph.nx.succ[grad]) != [value] or len(graph.nx.pred[value][grad]) != 1:
            continue  # the gradient has readers besides its update
        if nodes[grad]["shape"] != nodes[var]["shape"]:
            continue
        array = nodes[var]["attrs"]["value"]
        if array.size > PACK_LIMIT:
            continue
        groups.setdefault((array.dtype.str, c), []).append((address(array), var, value, grad))
    grads = {}
    for (_, c), members in groups.items():
        members.sort()
        for run in _runs(graph, members):
            if len(run) > 1 and _pack(graph, run, c, layout, position):
                grads.update((var, grad) for _, var, _, grad in run)
    return grads


def _runs(graph, members):
    """Split members (sorted by address) into runs of variables adjacent in memory."""
    run = []
    for m in members:
        prev = graph.nx.nodes[run[-1][1]]["attrs"]["value"] if run else None
        if run and not follows(prev, graph.nx.nodes[m[1]]["attrs"]["value"]):
            yield run
            run = []
        run.append(m)
    if run:
        yield run


def _pack(graph, run, c: float, layout: Layout, position) -> bool:
    """Plan one packed run; False when its variables do not lie in one array."""
    nodes = graph.nx.nodes
    arrays = [nodes[var]["attrs"]["value"] for _, var, _, _ in run]
    region = _region(arrays)
    if region is None:
        return False
    mirror = staggered_empty(region.size, region.dtype)
    layout.owned.append(mirror)
    offset = 0
    for (_, _, value, grad), array in zip(run, arrays):
        layout.slots[grad] = mirror[offset : offset + array.size].reshape(array.shape)
        layout.packed.add(value)
        offset += array.size
    r, m = layout.const(region, "p"), layout.const(mirror, "g")
    last = max((value for _, _, value, _ in run), key=position.__getitem__)
    layout.after.setdefault(last, []).append(add_scaled(r, m, c))
    return True


def add_scaled(target: str, buf: str, c: float) -> str:
    """Source of ``target += c * buf`` in place, scaling the spare ``buf`` first if need be."""
    ufunc = "np.subtract" if c < 0 else "np.add"
    scale = "" if abs(c) == 1 else f"np.multiply({buf}, {abs(c)!r}, out={buf}); "
    return f"{scale}{ufunc}({target}, {buf}, out={target})"


def _region(arrays: list[np.ndarray]) -> np.ndarray | None:
    """One 1-D array over the adjacent ``arrays``, viewing the memory they live in."""
    base = arrays[0].base if arrays[0].base is not None else arrays[0]
    if base.ndim != 1 or not base.flags.c_contiguous:
        return None
    start = (address(arrays[0]) - address(base)) // base.itemsize
    return base[start : start + sum(a.size for a in arrays)]


def _writable_into(graph, n: int, escaping: set[int], folded: set[int]) -> bool:
    """Whether node n's op can compute it into an array the layout chooses."""
    data = graph.nx.nodes[n]
    spec = get_op(data["op"])
    return (
        spec.emit_into is not None
        and not spec.is_view
        and n not in escaping
        and n not in folded
        and data["op"] not in ("input", "variable", "constant")
        and spec.extra.get("into_ok", lambda attrs: True)(data["attrs"])
        and (not is_elementwise(data["op"]) or is_float(data["dtype"]))
    )


# ---- bias in the matmul ---------------------------------------------------------------------
def _bias_in_matmul(
    graph, order, in_place, escaping, folded, dims, layout, grads, position
) -> None:
    nodes = graph.nx.nodes
    ones: dict[int, tuple[str, str, str]] = {}  # h -> names of [h, 1], its transpose, its h
    for n in order:
        found = _biased_matmul(graph, n, escaping) if n not in in_place else None
        if found is None:
            continue
        mm, h, W, b, rest = found
        if any(u in in_place for u in order[position[mm] : position[n]]):
            continue  # a variable written between the matmul and the add, which computes it
        k, m = nodes[W]["shape"]
        if h not in ones:
            batch = resolve(nodes[h]["shape"], dims)[0]
            if batch * (k + 1) > ONES_COLUMN_LIMIT:
                continue
            wide = k > WIDE_INPUT * m
            if nodes[h]["op"] == "input":
                if wide:
                    continue  # copying the input costs more than the add it saves
            elif wide and batch * k >= WIDE_HIDDEN_LIMIT:
                continue
            elif not (
                is_elementwise(nodes[h]["op"]) and _writable_into(graph, h, escaping, folded)
            ):
                continue
            if h in layout.slots:
                continue
            aug = staggered_empty((batch, k + 1), nodes[h]["dtype"])
            layout.owned.append(aug)
            aug[:, k] = 1
            names = (
                layout.const(aug, "h"),
                layout.const(aug.T, "h"),
                layout.const(aug[:, :k], "h"),
            )
            ones[h] = names
            if nodes[h]["op"] != "input":
                layout.slots[h] = aug[:, :k]  # computed there: no copy
        aug, aug_t, part = ones[h]
        W_b = layout.const(_stacked(nodes[W]["attrs"]["value"], nodes[b]["attrs"]["value"]), "wb")
        copy = nodes[h]["op"] == "input"
        layout.statements[n] = _biased_statement(
            aug, W_b, part if copy else None, h, n, layout, rest, graph.args(n)
        )
        layout.skip.add(mm)
        layout.reads[n] = [h, W, b]
        _gradients_in_matmul(graph, h, W, b, grads, aug_t, layout, position[n], position, escaping)


def _biased_statement(aug, W_b, part: str | None, h: int, n: int, layout, rest, arg_nodes):
    """The matmul of [h, 1] and [W; b] into the node's output, then the ``rest`` of its fused
    chain (say a ReLU) on that output."""

    def statement(ctx, names: dict, out: str, buffered: bool) -> str:
        copy = f"np.copyto({part}, {names[h]}); " if part else ""
        product = out
        if not buffered:
            head = f"{out} = np.matmul({aug}, {W_b})"
        elif n not in layout.slots:
            head = f"np.dot({aug}, {W_b}, {out})"
        elif rest and ctx.node_shape is not None:
            # the next layer's [h, 1] is a strided view, slow to write twice: the product goes
            # to a scratch array and the chain's first step writes the view
            product = ctx.scratch(ctx.node_shape, ctx.node_dtype, "product")
            head = f"np.dot({aug}, {W_b}, {product})"
        else:  # np.dot refuses a strided output
            head = f"np.matmul({aug}, {W_b}, out={out})"
        args = [names[a] for a in arg_nodes]
        tail = f"; {emit_steps(ctx, out, rest, args, product)}" if rest else ""
        return f"{copy}{head}{tail}"

    return statement


def _biased_matmul(graph, n: int, escaping: set[int]):
    """(matmul, h, W, b, the rest of the chain) when node n is ``add(matmul(h, W), b)``, or a
    fused chain starting with that add, with b stored after W."""
    nodes = graph.nx.nodes
    if not is_float(nodes[n]["dtype"]):
        return None
    args = graph.args(n)
    pairs, rest = first_add_operands(nodes[n], args)
    for mm, b in pairs:
        if nodes[mm]["op"] != "matmul" or nodes[b]["op"] != "variable" or mm in escaping:
            continue
        h, W = graph.args(mm)
        if nodes[W]["op"] != "variable" or len(nodes[W]["shape"]) != 2:
            continue
        if len(nodes[h]["shape"]) != 2 or nodes[b]["shape"] != nodes[W]["shape"][1:]:
            continue
        if list(graph.nx.succ[mm]) != [n] or len(graph.nx.pred[n][mm]) != 1:
            continue
        if not follows(nodes[W]["attrs"]["value"], nodes[b]["attrs"]["value"]):
            continue
        if not nodes[h]["dtype"] == nodes[W]["dtype"] == nodes[n]["dtype"]:
            continue
        if nodes[n]["shape"] != nodes[mm]["shape"]:
            continue  # the chain broadcasts past the product (a batch of tangents)
        return mm, h, W, b, rest
    return None


def _stacked(W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The (k + 1, m) matrix [W; b] over W's and b's own memory."""
    return _region([W, b]).reshape(W.shape[0] + 1, W.shape[1])


def _gradients_in_matmul(graph, h, W, b, grads, aug_t, layout, filled, position, escaping) -> None:
    """dW = h^T @ dz and db = sum(dz, 0), adjacent in a packed run, as one [h, 1]^T @ dz
    (when it runs after ``filled``, where the [h, 1] buffer is written)."""
    nodes = graph.nx.nodes
    gW, gb = grads.get(W), grads.get(b)
    if gW is None or gb is None or nodes[gW]["op"] != "matmul" or nodes[gb]["op"] != "sum":
        return
    if position[gW] < filled:
        return
    t, dz = graph.args(gW)
    if (
        nodes[t]["op"] != "transpose"
        or graph.args(t) != [h]
        or tuple(nodes[t]["attrs"]["axes"]) != (1, 0)
    ):
        return
    if graph.args(gb) != [dz] or tuple(nodes[gb]["attrs"]["axis"]) != (0,):
        return
    if nodes[gb]["attrs"]["keepdims"]:
        return
    gW_slot, gb_slot = layout.slots[gW], layout.slots[gb]
    if not follows(gW_slot, gb_slot):
        return
    both = layout.const(_stacked(gW_slot, gb_slot), "gwb")
    layout.statements[gW] = lambda ctx, names, out, buf: f"np.dot({aug_t}, {names[dz]}, {both})"
    layout.skip.add(gb)
    if list(graph.nx.succ[t]) == [gW] and t not in escaping:  # h^T may be an output too
        layout.skip.add(t)  # the statement reads [h, 1]^T instead
