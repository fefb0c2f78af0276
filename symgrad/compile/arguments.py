"""Checking call arguments against the declared inputs and binding symbolic dims."""

from __future__ import annotations

import numpy as np

from ..errors import InputError, format_shape
from ..graph import Graph
from ..ops.shapes import resolve
from .codegen import Program


def check_argument(
    graph: Graph, node: int, value, dims: dict, where, bound_by: dict | None = None
) -> np.ndarray:
    """``value`` as an array of the input's dtype and shape; binds its symbolic dims in ``dims``
    (and records in ``bound_by`` which input bound each, for the error message).

    Raises InputError naming the input, the expected and the given shape/dtype and ``where``
    (a string, or a function giving it: it is only needed when something is wrong).
    """
    data = graph.nx.nodes[node]
    shape, dtype = data["shape"], data["dtype"]
    arr = value
    if type(value) is not np.ndarray:  # the common case skips the conversion entirely
        try:
            arr = np.asarray(value)
        except Exception as e:
            _fail(graph, node, where, f"cannot make an array of {type(value).__name__}: {e}")
        # Python numbers and lists take the declared dtype when that loses nothing of their kind
        if arr.dtype != dtype and np.can_cast(arr.dtype, dtype, "same_kind"):
            arr = arr.astype(dtype)
    if arr.dtype != dtype:
        _fail(
            graph,
            node,
            where,
            f"expected dtype {dtype}, got {arr.dtype} (shape {format_shape(arr.shape)}); "
            "cast it first",
        )
    if arr.shape == shape:
        return arr
    if arr.ndim != len(shape):
        _fail(
            graph,
            node,
            where,
            f"expected shape {format_shape(shape)}, got {format_shape(arr.shape)}",
        )
    bound_by = {} if bound_by is None else bound_by
    for i, (want, got) in enumerate(zip(shape, arr.shape)):
        if isinstance(want, str):
            bound = dims.setdefault(want, got)
            first = bound_by.setdefault(want, f"input {data.get('name', node)!r}")
            if bound != got:
                _fail(
                    graph,
                    node,
                    where,
                    f"dim {i} ({want!r}) is {got} but {first} set {want!r} to {bound}; "
                    f"got shape {format_shape(arr.shape)}",
                )
        elif want != got:
            _fail(
                graph,
                node,
                where,
                f"expected shape {format_shape(shape)}, got {format_shape(arr.shape)} "
                f"(dim {i} is {got}, expected {want})",
            )
    return arr


def make_fast_key(inputs: list[tuple[tuple, np.dtype]]):
    """A function ``fast_key(args)`` for inputs of these (shape, dtype): the kernel cache key
    (the sizes of the symbolic dims, in the order ``check_argument`` binds them) when every
    argument is an ndarray of exactly its input's dtype and shape, else None.

    It is straight-line code generated for these inputs (no loop over specs per call); any
    other argument (a list, a subclass, another dtype or shape, a symbolic dim bound to two
    sizes, a wrong count) gives None and goes through ``check_argument``. Dtypes are passed in
    its namespace; the source holds only generated names and integer sizes.
    """
    n = len(inputs)
    names = [f"a{i}" for i in range(n)]
    lines = ["def fast_key(args):", f"    if len(args) != {n}:", "        return None"]
    if n:
        lines.append(f"    {', '.join(names)}{',' if n == 1 else ''} = args")
    namespace: dict = {"nd": np.ndarray}
    bound: dict[str, str] = {}  # symbolic dim -> where its size was first read
    for i, (shape, dtype) in enumerate(inputs):
        namespace[f"t{i}"] = np.dtype(dtype)
        lines += [
            f"    if type(a{i}) is not nd or ((t := a{i}.dtype) is not t{i} and t != t{i}):",
            "        return None",
            f"    s{i} = a{i}.shape",
        ]
        tests = [f"len(s{i}) != {len(shape)}"]
        for j, d in enumerate(shape):
            if not isinstance(d, str):
                tests.append(f"s{i}[{j}] != {int(d)!r}")
            elif d in bound:
                tests.append(f"s{i}[{j}] != {bound[d]}")
            else:
                bound[d] = f"s{i}[{j}]"
        lines += [f"    if {' or '.join(tests)}:", "        return None"]
    key = ", ".join(bound.values())
    lines.append(f"    return ({key}{',' if len(bound) == 1 else ''})")
    source = "\n".join(lines) + "\n"
    return Program(source, namespace, fn_name="fast_key").build()


def _fail(graph: Graph, node: int, where, message: str):
    data = graph.nx.nodes[node]
    site = where() if callable(where) else where
    label = f"input {data.get('name', node)!r} ({graph.describe(node)})"
    raise InputError(f"{label}: {message}; at {site}") from None


def run_failure(graph: Graph, node: int, dims: dict, error: Exception, where: str) -> InputError:
    """The InputError for NumPy failing on ``node`` at run time: arguments whose sizes fit the
    declared shapes but not each other (a symbolic dim bound to a size an op cannot take), or
    data such as an index out of range."""
    args = "; ".join(
        f"{graph.describe(a)} is {format_shape(resolve(graph.nx.nodes[a]['shape'], dims))}"
        for a in graph.args(node)
    )
    bound = ", ".join(f"{k}={v}" for k, v in dims.items()) or "none"
    return InputError(
        f"{graph.describe(node)} failed on these arguments: {type(error).__name__}: {error}\n"
        f"  its arguments: {args or 'none'} (symbolic dims: {bound}); at {where}"
    )
