"""Products added into arrays by BLAS gemm (``symgrad/blas.py``), which adds a product while
computing it: no buffer for the product and no second pass to add it. Two plans use it:

- **Into variables.** A big weight's SGD step ``W <- W + c * (A @ B)``, whose product is read
  by nothing but the update, is one gemm into ``W``, run where the product is scheduled, so
  nothing after it may read the variable; a weight used twice, ``W + c * (A @ B + C @ D)``,
  takes two. Small variables are left to the packed updates, which save calls instead.
- **Row broadcasts.** ``Z + b`` with ``b`` one row broadcast over ``Z``'s rows (a bias): where
  ``Z`` is a product read by nothing else, the sum's array is filled with ``b`` and gemm adds
  the product there (a copy instead of a pass adding ``b``); else, with ``Z``'s array reused
  for the sum, gemm adds the outer product of a column of ones with ``b``. NumPy's broadcast
  add runs 1.1-1.3x slower and allocates an iterator buffer of 8,192 elements on every call.
- **Summed products.** ``A @ B + C @ D`` (or a fused chain starting with that sum, as in a
  Hessian-vector product's ``R{h} @ W + h @ V``) is one matmul into the sum's array and one
  gemm adding the other product there. The sum's statement computes both products, so their
  operands stay alive until it runs (``Layout.reads``).

Only big arrays take a gemm: below ``MIN_SIZE`` elements, its call costs more than the add.
"""

from __future__ import annotations

import numpy as np

from .. import blas
from ..graph import Graph
from ..ops import get_op
from ..ops.elementwise import sym
from ..ops.shapes import is_float, resolve
from ..ops.sympy_numpy import emit_steps, index_of, into_steps
from .memory import alias_roots, split_coefficient

MIN_SIZE = 1 << 15  # elements of the array added into (a packed variable keeps its packed run)


def plan_accumulate(
    graph: Graph, order: list[int], position: dict, in_place: dict, escaping, folded, dims, layout
):
    """Add gemm statements to ``layout`` (``position`` {node: index in order}, ``in_place``
    as in ``plan_layout``)."""
    taken = set(layout.slots) | set(layout.statements) | layout.skip | set(folded)
    _summed_products(graph, order, position, in_place, escaping, dims, layout, taken)
    _into_variables(graph, order, position, in_place, escaping, layout, taken)
    _row_broadcasts(graph, order, position, in_place, escaping, dims, layout, taken)


# ---- into variables -------------------------------------------------------------------------
def _into_variables(graph, order, position, in_place, escaping, layout, taken) -> None:
    nodes = graph.nx.nodes
    root = alias_roots(graph, order)
    readers: dict[int, dict[int, int]] = {}  # memory owner -> {reader: position}
    for i, n in enumerate(order):  # a node computed by another's statement reads there too
        for a in [*graph.nx.pred[n], *layout.reads.get(n, ())]:
            readers.setdefault(root[a], {})[n] = i
    for value, (var, rest) in in_place.items():
        terms = _products_added(graph, value, rest)
        if not terms or value in layout.packed:
            continue
        products = [g for _, g in terms]
        if len(set(products)) != len(products) or not all(
            _lone_product(graph, g, value, escaping, taken)
            and nodes[g]["dtype"] == nodes[var]["dtype"]
            and all(root[a] != var for a in graph.args(g))
            for g in products
        ):
            continue
        last = max(products, key=position.__getitem__)
        first = min(position[g] for g in products)
        early = [a for g in products if g != last for a in graph.args(g)]
        if any(nodes[root[a]]["op"] == "variable" for a in early):
            continue  # computed later than scheduled, a product must not read a variable
        if any(u in in_place for u in order[first : position[last]]):
            continue
        if any(p > position[last] for r, p in readers.get(var, {}).items() if r != value):
            continue  # the variable is read after the products would have written it
        array = nodes[var]["attrs"]["value"]
        accs = [blas.accumulator(array, c) if array.size >= MIN_SIZE else None for c, _ in terms]
        if None in accs:
            continue
        names = [layout.const(acc, "gemm") for acc in accs]
        layout.slots[last] = array
        layout.statements[last] = _added_into_variable(graph, accs, names, products)
        layout.skip |= set(products) - {last}
        if early:
            layout.reads[last] = early
        layout.packed.add(value)
        taken |= set(products)


def _products_added(graph, value: int, rest) -> list[tuple[float, int]]:
    """[(c, g)] with the update's added expression ``rest`` the sum of the c * g, each g one
    of its arguments; [] when it is not of that form."""
    args = graph.args(value)
    c, total = split_coefficient(rest)  # c * (g1 + g2) or c1 * g1 + c2 * g2
    terms = []
    for term in total.args if total.is_Add else (total,):
        k, g = split_coefficient(term)
        held = [a for i, a in enumerate(args) if g == sym(i)]
        if not held:
            return []
        terms.append((c * k, held[0]))
    return terms


def _added_into_variable(graph, accs: list, names: list[str], products: list[int]):
    def statement(ctx, node_names: dict, out: str, buffered: bool) -> str:
        calls = []
        for acc, name, g in zip(accs, names, products):
            a, b = (node_names[x] for x in graph.args(g))
            _fix_known(ctx, acc, a, b)
            calls.append(f"{name}({a}, {b})")
        return "; ".join(calls)

    return statement


def _fix_known(ctx, acc: blas.Accumulator, *names: str) -> None:
    # buffers, variables and constants are the same arrays on every call: read them once
    acc.fix(*(a for a in map(ctx.kept, names) if a is not None))


# ---- summed products ------------------------------------------------------------------------
def _summed_products(graph, order, position, in_place, escaping, dims, layout, taken) -> None:
    nodes = graph.nx.nodes
    for n in order:
        data = nodes[n]
        if n in taken or n in in_place or not is_float(data["dtype"]) or len(data["shape"]) != 2:
            continue  # (an update added into its variable is written by that plan)
        pairs, rest = first_add_operands(data, graph.args(n))
        if not pairs or not all(
            _lone_product(graph, m, n, escaping, taken) and nodes[m]["shape"] == data["shape"]
            for m in pairs[0]
        ):
            continue
        p, q = sorted(pairs[0], key=position.__getitem__)
        if p == q or np.prod(resolve(data["shape"], dims)) < MIN_SIZE:
            continue
        if any(m in in_place for m in order[position[p] : position[n]]):
            continue  # a variable written between the products and the sum, which computes them
        if not blas.available(data["dtype"]):
            continue
        layout.statements[n] = _summed_statement(graph, n, p, q, rest)
        layout.skip |= {p, q}
        layout.reads[n] = graph.args(p) + graph.args(q)
        taken |= {n, p, q}


def _lone_product(graph, m: int, reader: int, escaping, taken) -> bool:
    """Whether node m is a matmul of 2-D operands and of ``reader``'s dtype, read once by
    ``reader`` and by nothing else."""
    nodes = graph.nx.nodes
    return (
        nodes[m]["op"] == "matmul"
        and m not in escaping
        and m not in taken
        and list(graph.nx.succ[m]) == [reader]
        and len(graph.nx.pred[reader][m]) == 1
        and nodes[m]["dtype"] == nodes[reader]["dtype"]
        and all(len(nodes[a]["shape"]) == 2 for a in graph.args(m))
    )


def _summed_statement(graph, n: int, p: int, q: int, rest):
    """``out = P @ Q`` for the first product, the second added by gemm, then the rest of the
    chain (say a ReLU's mask) on ``out``."""

    def statement(ctx, names: dict, out: str, buffered: bool) -> str:
        a, b = (names[x] for x in graph.args(p))
        c, d = (names[x] for x in graph.args(q))
        dtype = graph.nx.nodes[n]["dtype"]
        acc = blas.accumulator(ctx.namespace[out], 1.0) if buffered else None
        if acc is not None:  # a workspace buffer: the same array on every call
            _fix_known(ctx, acc, c, d)
            src = f"np.dot({a}, {b}, {out}); {ctx.const(acc, 'gemm')}({c}, {d})"
        else:  # a fresh array every call: gemm is told where it is
            acc = blas.accumulator(None, 1.0, dtype)
            first = f"np.dot({a}, {b}, {out})" if buffered else f"{out} = np.dot({a}, {b})"
            src = f"{first}; {ctx.const(acc, 'gemm')}({c}, {d}, {out})"
        args = [names[x] for x in graph.args(n)]
        return f"{src}; {emit_steps(ctx, out, rest, args)}" if rest else src

    return statement


# ---- row broadcasts -------------------------------------------------------------------------
def _row_broadcasts(graph, order, position, in_place, escaping, dims, layout, taken) -> None:
    nodes = graph.nx.nodes
    variables = {id(nodes[v]["attrs"]["value"]) for v in order if nodes[v]["op"] == "variable"}

    def writes_a_variable(m: int) -> bool:  # an update, or a product added into a variable
        return m in in_place or (m in layout.slots and id(layout.slots[m]) in variables)

    for n in order:
        data = nodes[n]
        shape = data["shape"]
        if n in taken or n in in_place or n in escaping or len(shape) != 2:
            continue
        pairs, rest = first_add_operands(data, graph.args(n))
        for z, b in pairs:
            if nodes[z]["shape"] == shape and nodes[b]["shape"] in ((shape[1],), (1, shape[1])):
                break
        else:
            continue
        if any(nodes[a]["dtype"] != data["dtype"] for a in (z, b)) or z == b:
            continue
        if not blas.available(data["dtype"]) or np.prod(resolve(shape, dims)) < MIN_SIZE:
            continue
        if _lone_product(graph, z, n, escaping, taken) and not any(
            map(writes_a_variable, order[position[z] : position[n]])
        ):  # the product computed by the sum's statement, added to the bias it starts from
            layout.statements[n] = _biased_product_statement(graph, n, z, b, rest)
            layout.skip.add(z)
            layout.reads[n] = graph.args(z)
            taken |= {n, z}
            continue
        layout.statements[n] = _row_broadcast_statement(graph, n, z, b, rest)
        taken.add(n)


def _biased_product_statement(graph, n: int, z: int, b: int, rest):
    """``out = b`` (broadcast over the rows), then ``out += A @ B`` by gemm as BLAS computes
    the product, then the rest of the chain: the bias costs one copy, not a pass of its own."""

    def statement(ctx, names: dict, out: str, buffered: bool) -> str:
        a, w = (names[x] for x in graph.args(z))
        acc = blas.accumulator(ctx.namespace[out], 1.0) if buffered else None
        if acc is None:  # a fresh array every call: the product, then NumPy's add
            first = f"np.dot({a}, {w}, {out})" if buffered else f"{out} = np.dot({a}, {w})"
            src = f"{first}; np.add({out}, {names[b]}, out={out})"
        else:
            _fix_known(ctx, acc, a, w)
            src = f"np.copyto({out}, {names[b]}); {ctx.const(acc, 'gemm')}({a}, {w})"
        args = [names[x] for x in graph.args(n)]
        return f"{src}; {emit_steps(ctx, out, rest, args)}" if rest else src

    return statement


def _row_broadcast_statement(graph, n: int, z: int, b: int, rest):
    """``out += ones @ b`` by gemm where ``out`` holds ``z`` already (its buffer reused for the
    sum), then the rest of the chain; else the sum as NumPy computes it."""

    def statement(ctx, names: dict, out: str, buffered: bool) -> str:
        data = graph.nx.nodes[n]
        args = [names[x] for x in graph.args(n)]
        spec = get_op(data["op"])
        acc = blas.accumulator(ctx.namespace[out], 1.0) if out == names[z] else None
        if acc is None:  # not in place: NumPy's add, as without this plan
            if buffered:
                return spec.emit_into(ctx, out, args, data["attrs"])
            return f"{out} = {spec.emit(ctx, args, data['attrs'])}"
        ones = ctx.filled(1, (ctx.node_shape[0], 1), data["dtype"])
        row = ctx.kept(names[b])
        if row is not None:  # a bias kept by the kernel: its row view made once
            row = ctx.const(row.reshape(1, -1), "view")
            acc.fix(ctx.namespace[ones], ctx.namespace[row])
        else:  # a (1, n) row as it is, an (n,) one viewed as a row on each call
            one_d = len(graph.nx.nodes[b]["shape"]) == 1
            row = f"{names[b]}.reshape(1, -1)" if one_d else names[b]
            acc.fix(ctx.namespace[ones])
        src = f"{ctx.const(acc, 'gemm')}({ones}, {row})"
        return f"{src}; {emit_steps(ctx, out, rest, args)}" if rest else src

    return statement


def first_add_operands(data: dict, args: list[int]) -> tuple[list, tuple]:
    """([(p, q), (q, p)], the chain's later steps) of an add ``p + q``, or of a fused chain
    whose first step adds two of its arguments that no later step reads; ([], ()) otherwise."""
    if data["op"] == "add":
        return [tuple(args), tuple(args[::-1])], ()
    if data["op"] != "expr":
        return [], ()
    steps = into_steps(data["attrs"]["expr"])
    if not steps or steps[0][0] != "np.add":
        return [], ()
    first = steps[0][1]
    if not all(o is not None and o.is_Symbol for o in first):
        return [], ()
    later = set().union(*(o.free_symbols for _, ops in steps[1:] for o in ops if o is not None))
    if any(o in later for o in first):
        return [], ()
    p, q = args[index_of(first[0])], args[index_of(first[1])]
    return [(p, q), (q, p)], steps[1:]
