"""Structural ops: leaves, reshape, transpose, broadcast, indexing, concatenate, where,
comparisons, cast and stop_gradient, each with its shape rule, NumPy form and derivatives."""

from __future__ import annotations

import numpy as np

from .. import runtime
from ..errors import DifferentiationError, GraphError, ShapeError, format_shape, show, user_site
from ..graph import Tensor, normalize_shape, numeric_dtype
from .elementwise import lift
from .registry import OPS, Op, defjvp, defvjp, register
from .shapes import broadcast_shapes, compatible, is_float, numel, same_dim


def _no_impl(arrays, attrs):  # leaves are read by the evaluator itself
    raise AssertionError("leaf ops have no impl")


for _leaf in ("input", "variable", "constant"):
    register(Op(_leaf, infer=None, impl=_no_impl, emit=None, arity=(0, 0)))


# ---- reshape ----------------------------------------------------------------------------
def _infer_reshape(types, attrs):
    (x,) = types
    shape = attrs["shape"]
    if sum(1 for d in shape if d == -1) > 1:
        raise ShapeError(f"reshape to {shape}: at most one -1")
    n_in, known = numel(x.shape), [d for d in shape if d != -1]
    if -1 in shape:
        n_known = numel(tuple(known))
        if n_in is None or n_known is None:
            raise ShapeError("reshape with -1 needs concrete dims; name the symbolic dim instead")
        if n_known == 0 or n_in % n_known:
            raise ShapeError(f"cannot reshape {format_shape(x.shape)} to {shape}")
        shape = tuple(n_in // n_known if d == -1 else d for d in shape)
    n_out = numel(shape)
    if n_in is not None and n_out is not None and n_in != n_out:
        raise ShapeError(f"cannot reshape {format_shape(x.shape)} to {format_shape(shape)}")
    if (n_in is None) != (n_out is None) or sorted(
        d for d in x.shape if isinstance(d, str)
    ) != sorted(d for d in shape if isinstance(d, str)):
        raise ShapeError(
            f"reshape {format_shape(x.shape)} to {format_shape(shape)}: symbolic dims must be kept"
        )
    concrete = [numel(tuple(d for d in s if not isinstance(d, str))) for s in (x.shape, shape)]
    if concrete[0] != concrete[1]:  # the same symbolic dims, times other sizes
        raise ShapeError(f"cannot reshape {format_shape(x.shape)} to {format_shape(shape)}")
    return shape, x.dtype


register(
    Op(
        "reshape",
        attrs={"shape": "newshape"},
        infer=_infer_reshape,
        impl=lambda a, at: np.reshape(a[0], at["shape"]),
        emit=lambda ctx, a, at: f"np.reshape({a[0]}, {ctx.shape(at['shape'])})",
        shape_attrs=("shape",),
        is_view=True,
    )
)


def reshape(x: Tensor, shape) -> Tensor:
    """Reshape (symbolic dims allowed; at most one -1 where all dims are concrete)."""
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    shape = tuple(-1 if d == -1 else normalize_shape((d,))[0] for d in shape)
    if shape == x.shape:
        return x
    return x.graph.apply("reshape", [x], {"shape": shape})


defvjp("reshape", lambda g, ans, x, shape: reshape(g, _batch(g, ans) + x.shape))
defjvp("reshape", lambda t, ans, x, shape: reshape(t, _batch(t, x) + ans.shape))


# ---- transpose --------------------------------------------------------------------------
def _infer_transpose(types, attrs):
    (x,) = types
    axes = attrs["axes"]
    if sorted(axes) != list(range(len(x.shape))):
        raise ShapeError(f"transpose axes {axes} do not permute {len(x.shape)} dims")
    return tuple(x.shape[a] for a in axes), x.dtype


register(
    Op(
        "transpose",
        attrs={"axes": "ints"},
        infer=_infer_transpose,
        impl=lambda a, at: np.transpose(a[0], at["axes"]),
        emit=lambda ctx, a, at: (
            f"{a[0]}.T"  # reversing all axes: the cheapest spelling of the same view
            if tuple(at["axes"]) == tuple(reversed(range(len(at["axes"]))))
            else f"{a[0]}.transpose({tuple(at['axes'])!r})"
        ),
        is_view=True,
    )
)


def transpose(x: Tensor, axes=None) -> Tensor:
    """Permute axes (default: reverse them). ``x.T`` is ``transpose(x)``."""
    nd = x.ndim
    if axes is not None and not isinstance(axes, (tuple, list)):
        raise ShapeError(f"transpose axes must be a tuple of ints, got {show(axes)}")
    if axes is not None and any(
        not isinstance(a, (int, np.integer)) or isinstance(a, bool) for a in axes
    ):
        raise ShapeError(f"transpose axes must be ints, got {show(tuple(axes))}")
    if axes is not None and sorted(int(a) % nd if -nd <= a < nd else a for a in axes) != list(
        range(nd)
    ):
        raise ShapeError(f"transpose axes {show(tuple(axes))} are no permutation of {nd} axes")
    axes = tuple(reversed(range(nd))) if axes is None else tuple(int(a) % nd for a in axes)
    if axes == tuple(range(nd)):
        return x
    return x.graph.apply("transpose", [x], {"axes": axes})


defvjp(
    "transpose",
    lambda g, ans, x, axes: transpose(
        g, _batch_axes(g, ans) + tuple(int(a) + _nb(g, ans) for a in np.argsort(axes))
    ),
)
defjvp(
    "transpose",
    lambda t, ans, x, axes: transpose(t, _batch_axes(t, x) + tuple(a + _nb(t, x) for a in axes)),
)


# ---- broadcast_to -----------------------------------------------------------------------
def _infer_broadcast(types, attrs):
    (x,) = types
    shape = attrs["shape"]
    if broadcast_shapes(x.shape, shape) != tuple(shape):
        raise ShapeError(f"cannot broadcast {format_shape(x.shape)} to {format_shape(shape)}")
    return tuple(shape), x.dtype


register(
    Op(
        "broadcast_to",
        attrs={"shape": "shape"},
        infer=_infer_broadcast,
        impl=lambda a, at: np.broadcast_to(a[0], at["shape"]),
        emit=lambda ctx, a, at: f"np.broadcast_to({a[0]}, {ctx.shape(at['shape'])})",
        shape_attrs=("shape",),
        is_view=True,
    )
)


def broadcast_to(x, shape) -> Tensor:
    """Broadcast to ``shape`` (NumPy rules; dims may be symbolic)."""
    shape = normalize_shape(shape)
    if x.shape == shape:
        return x
    return x.graph.apply("broadcast_to", [x], {"shape": shape})


defvjp("broadcast_to", lambda g, ans, x, shape: unbroadcast(g, x.shape, _nb(g, ans)))
defjvp(
    "broadcast_to",
    lambda t, ans, x, shape: broadcast_to(expand_tangent(t, x, ans), _batch(t, x) + shape),
)


def unbroadcast(g: Tensor, shape, nb: int = 0) -> Tensor:
    """Sum ``g`` over the axes along which ``shape`` was broadcast (the one place this is done).

    The first ``nb`` axes of ``g`` are batch axes (batched cotangents) and are kept.
    """
    from .reductions import sum as sum_

    shape = tuple(shape)
    if g.shape[nb:] == shape:
        return g
    lead = g.ndim - nb - len(shape)
    if lead < 0:
        raise ShapeError(f"cannot unbroadcast {format_shape(g.shape)} to {format_shape(shape)}")
    if lead:
        g = sum_(g, tuple(range(nb, nb + lead)))
    ones = tuple(nb + i for i, d in enumerate(shape) if d == 1 and g.shape[nb + i] != 1)
    if ones:
        g = sum_(g, ones, keepdims=True)
    if not compatible(g.shape[nb:], shape):
        raise ShapeError(f"cannot unbroadcast {format_shape(g.shape)} to {format_shape(shape)}")
    return g


# ---- batched tangents and cotangents ------------------------------------------------------
def _nb(t: Tensor, x: Tensor) -> int:
    """Number of leading batch axes a tangent (or cotangent) of x carries."""
    return t.ndim - x.ndim


def _batch(t: Tensor, x: Tensor) -> tuple:
    return t.shape[: _nb(t, x)]


def _batch_axes(t: Tensor, x: Tensor) -> tuple:
    return tuple(range(_nb(t, x)))


def expand_tangent(t: Tensor, x: Tensor, out: Tensor) -> Tensor:
    """Insert unit axes so a batched tangent of x lines up with out's trailing axes."""
    nb, extra = _nb(t, x), out.ndim - x.ndim
    if nb == 0 or extra <= 0:
        return t
    return reshape(t, t.shape[:nb] + (1,) * extra + x.shape)


# ---- getitem and its transpose ------------------------------------------------------------
def _index_items(index, graph, shape: tuple = ()) -> tuple[tuple, list[Tensor]]:
    """Canonical, hashable index spec plus the integer index tensors it refers to; integer
    arrays given as values are checked against the concrete dims of ``shape`` they index."""
    if not isinstance(index, tuple):
        index = (index,)
    spec, tensors = [], []
    axes = _item_axes(index, len(shape))
    for item, axis in zip(index, axes):
        if item is None:
            spec.append(("newaxis",))
        elif item is Ellipsis:
            spec.append(("ellipsis",))
        elif isinstance(item, slice):
            for v in (item.start, item.stop, item.step):
                if v is not None and not isinstance(v, (int, np.integer)):
                    raise ShapeError(f"slice bounds must be ints, got {item}")
            if item.step == 0:
                raise ShapeError(f"slice step cannot be zero, got {item}")
            spec.append(
                (
                    "slice",
                    *(None if v is None else int(v) for v in (item.start, item.stop, item.step)),
                )
            )
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            spec.append(("int", int(item)))
        else:
            if not isinstance(item, Tensor):
                _check_range(np.asarray(item), shape[axis] if axis < len(shape) else None)
            t = item if isinstance(item, Tensor) else graph.constant(np.asarray(item))
            if not np.issubdtype(np.dtype(t.dtype), np.integer):
                raise ShapeError(
                    f"index arrays must be integers (got {t.dtype}); boolean masks give "
                    "data-dependent shapes: use sg.where"
                )
            spec.append(("tensor", len(tensors)))
            tensors.append(t)
    return tuple(spec), tensors


def _item_axes(index: tuple, ndim: int) -> list[int]:
    """The axis of the indexed array each index item reads (None and ... read none)."""
    consuming = sum(1 for item in index if item is not None and item is not Ellipsis)
    axes, axis = [], 0
    for item in index:
        axes.append(axis)
        if item is Ellipsis:
            axis += max(0, ndim - consuming)
        elif item is not None:
            axis += 1
    return axes


def _check_range(values: np.ndarray, size) -> None:
    """An integer array of known values indexing a dim of known size: each within range."""
    if not isinstance(size, int) or values.dtype.kind not in "iu" or not values.size:
        return
    bad = values[(values < -size) | (values >= size)]
    if bad.size:
        raise ShapeError(
            f"index {bad[:5].tolist()} out of bounds for a dim of size {size} "
            f"(an index array must lie in [-{size}, {size}))"
        )


def _python_index(spec, arrays):
    out = []
    for item in spec:
        kind = item[0]
        if kind == "newaxis":
            out.append(None)
        elif kind == "ellipsis":
            out.append(Ellipsis)
        elif kind == "slice":
            out.append(slice(*item[1:]))
        elif kind == "int":
            out.append(item[1])
        else:
            out.append(arrays[item[1]])
    return tuple(out)


def _index_source(spec, names):
    parts = []
    for item in spec:
        kind = item[0]
        if kind == "newaxis":
            parts.append("None")
        elif kind == "ellipsis":
            parts.append("...")
        elif kind == "slice":
            parts.append(":".join("" if v is None else repr(v) for v in item[1:]))
        elif kind == "int":
            parts.append(repr(item[1]))
        else:
            parts.append(names[item[1]])
    if not parts:  # x[()]: the whole array (a view), as NumPy gives
        return "()"
    return ", ".join(parts) + ("," if len(parts) == 1 else "")


def _indexed_shape(x_shape, index_shapes, spec):
    """Result shape of x[spec] (symbolic dims kept where they pass through untouched)."""
    names = sorted({d for s in (x_shape, *index_shapes) for d in s if isinstance(d, str)})
    results = []
    # two different sizes for every symbolic dim, then size 1 for all: x[1:3] of a batch has
    # 2 rows at sizes 53 and 71 but none at 1, so its size depends on the batch after all
    for base, step in ((53, 2), (71, 2), (1, 0)):
        size = {n: base + step * k for k, n in enumerate(names)}

        def conc(shape, size=size):
            return tuple(size.get(d, d) if isinstance(d, str) else d for d in shape)

        dummy = np.broadcast_to(np.zeros((), dtype=bool), conc(x_shape))
        idx = _python_index(spec, [np.zeros(conc(s), dtype=np.intp) for s in index_shapes])
        try:
            results.append((dummy[idx].shape, size))
        except IndexError as e:
            if step == 0:  # x[5] of a batch needs 6 rows, not 1: nothing to learn here
                results.append((results[0][0], size))
                continue
            raise ShapeError(
                f"index {_index_source(spec, ['i'] * 9)} on {format_shape(x_shape)}: {e}"
            ) from None
    (sa, size_a), (sb, size_b), (sc, _) = results
    out = []
    for da, db, dc in zip(sa, sb, sc):
        if da == db == dc:
            out.append(da)
            continue
        name = next((n for n in names if size_a[n] == da and size_b[n] == db), None)
        if name is None:
            raise ShapeError(
                f"index on {format_shape(x_shape)} gives a size that depends on a symbolic dim; "
                "slice symbolic dims only with ':'"
            )
        out.append(name)
    return tuple(out)


def _infer_getitem(types, attrs):
    x, *idx = types
    return _indexed_shape(x.shape, [t.shape for t in idx], attrs["index"]), x.dtype


register(
    Op(
        "getitem",
        attrs={"index": "index"},
        infer=_infer_getitem,
        impl=lambda a, at: a[0][_python_index(at["index"], a[1:])],
        emit=lambda ctx, a, at: f"{a[0]}[{_index_source(at['index'], a[1:])}]",
        arity=(1, None),
        is_view=True,
    )
)


def getitem(x: Tensor, index) -> Tensor:
    """NumPy basic and integer-array indexing: ints, slices, None, ..., integer arrays/Tensors."""
    with x.graph.transaction():
        spec, tensors = _index_items(index, x.graph, x.shape)
        return x.graph.apply("getitem", [x, *tensors], {"index": spec})


def _infer_scatter(types, attrs):
    g, *idx = types
    shape = attrs["shape"]
    expect = _indexed_shape(shape, [t.shape for t in idx], attrs["index"])
    if broadcast_shapes(g.shape, expect) != expect:
        raise ShapeError(f"index_add of {format_shape(g.shape)} into {format_shape(shape)}")
    return tuple(shape), g.dtype


register(
    Op(
        "index_add",
        attrs={"index": "index", "shape": "shape"},
        infer=_infer_scatter,
        impl=lambda a, at: runtime.index_add(
            at["shape"], _python_index(at["index"], a[1:]), a[0], a[0].dtype
        ),
        emit=lambda ctx, a, at: (
            f"rt.index_add({ctx.shape(at['shape'])}, np.s_[{_index_source(at['index'], a[1:])}], "
            f"{a[0]}, {a[0]}.dtype)"
        ),
        arity=(1, None),
        shape_attrs=("shape",),
    )
)


def index_add(g: Tensor, shape, index_spec, index_tensors) -> Tensor:
    """Zeros of ``shape`` with ``g`` added at the index (the transpose of getitem)."""
    return g.graph.apply(
        "index_add", [g, *index_tensors], {"shape": tuple(shape), "index": index_spec}
    )


def _getitem_jvp(t, ans, x, *idx, index):
    nb, lead = _nb(t, x), _advanced_first(index, idx)
    out = getitem(t, (slice(None),) * nb + _python_index(index, idx))
    # NumPy put the index arrays' dims in front of the batch axes: move the batch back first
    return transpose(out, _roll(lead, nb, out.ndim)) if nb and lead else out


def _index_add_jvp(t, ans, src, *idx, shape, index):
    nb, lead = _nb(t, src), _advanced_first(index, idx)
    batch = _batch(t, src)
    if nb and lead:  # the batched scatter takes its source with the index dims in front
        t = transpose(t, _roll(nb, lead, t.ndim))
    return index_add(t, batch + tuple(shape), (("slice", None, None, None),) * nb + index, idx)


def _advanced_first(index, idx) -> int:
    """How many leading dims NumPy gives the index arrays when they are not side by side
    (then their dims go first, in front of every sliced dim); 0 when they stay in place."""
    tensors = [k for k, item in enumerate(index) if item[0] == "tensor"]
    if not tensors:
        return 0
    advanced = [k for k, item in enumerate(index) if item[0] in ("tensor", "int")]
    if advanced == list(range(advanced[0], advanced[-1] + 1)):
        return 0
    return len(broadcast_shapes(*[t.shape for t in idx]))


def _roll(first: int, second: int, ndim: int) -> tuple:
    """Transpose axes that swap the ``first`` leading axes with the ``second`` axes after them."""
    order = list(range(first, first + second)) + list(range(first))
    return tuple(order) + tuple(range(first + second, ndim))


# getitem and index_add are linear and each other's transpose: a batched cotangent of one
# goes through the other's batched forward rule
defvjp(
    "getitem",
    lambda g, ans, x, *idx, index: _index_add_jvp(g, None, ans, *idx, shape=x.shape, index=index),
)
defvjp(
    "index_add",
    lambda g, ans, src, *idx, shape, index: _getitem_jvp(g, None, ans, *idx, index=index),
)
defjvp("getitem", _getitem_jvp)
defjvp("index_add", _index_add_jvp)


# ---- concatenate ----------------------------------------------------------------------------
def _infer_concat(types, attrs):
    axis = attrs["axis"]
    first = types[0].shape
    total = 0
    for t in types:
        if len(t.shape) != len(first) or any(
            not same_dim(d, e) for i, (d, e) in enumerate(zip(t.shape, first)) if i != axis
        ):
            shown = ", ".join(format_shape(t.shape) for t in types)
            raise ShapeError(f"concatenate on axis {axis}: shapes {shown} differ off that axis")
        if isinstance(t.shape[axis], str):
            raise ShapeError("concatenate along a symbolic dim is not supported")
        total += t.shape[axis]
    dtype = np.result_type(*[np.dtype(t.dtype) for t in types]).name
    return first[:axis] + (total,) + first[axis + 1 :], dtype


register(
    Op(
        "concatenate",
        attrs={"axis": "int"},
        infer=_infer_concat,
        impl=lambda a, at: np.concatenate(a, axis=at["axis"]),
        emit=lambda ctx, a, at: f"np.concatenate(({', '.join(a)},), axis={at['axis']!r})",
        arity=(1, None),
    )
)


def concatenate(xs, axis: int = 0) -> Tensor:
    """The Tensors (or arrays) ``xs`` joined along ``axis``, as np.concatenate."""
    if not isinstance(xs, (list, tuple)) or not xs:
        raise GraphError(
            f"concatenate needs a non-empty list of Tensors, got {xs!r} ({user_site()})"
        )
    xs = lift(*xs)
    nd = xs[0].ndim
    if not isinstance(axis, int | np.integer) or isinstance(axis, bool) or not -nd <= axis < nd:
        raise ShapeError(
            f"concatenate axis must be an int in [{-nd}, {nd}) for {nd}-d inputs, got "
            f"{show(axis)} ({user_site()})"
        )
    return xs[0].graph.apply("concatenate", xs, {"axis": int(axis) % nd})


def _concat_vjp(node, g, needed):
    axis = node.attrs["axis"] + _nb(g, node)  # in g, behind its batch axes
    out, start = [], 0
    for x, need in zip(node.args, needed):
        stop = start + x.shape[node.attrs["axis"]]
        out.append(getitem(g, (slice(None),) * axis + (slice(start, stop),)) if need else None)
        start = stop
    return out


def _concat_jvp(node, tangents):
    from .reductions import zeros_like

    if all(t is None for t in tangents):
        return None
    ref = next(t for t, x in zip(tangents, node.args) if t is not None)
    nb = _nb(ref, node.args[tangents.index(ref)])
    parts = [
        t if t is not None else broadcast_to(zeros_like(x), ref.shape[:nb] + x.shape)
        for t, x in zip(tangents, node.args)
    ]
    return concatenate(parts, axis=node.attrs["axis"] + nb)


OPS["concatenate"].vjp = _concat_vjp
OPS["concatenate"].jvp = _concat_jvp


# ---- where --------------------------------------------------------------------------------
def _infer_where(types, attrs):
    c, a, b = types
    if c.dtype != "bool":
        raise ShapeError(f"where's condition must be bool, got {c.dtype}")
    shape = broadcast_shapes(c.shape, a.shape, b.shape)
    return shape, np.result_type(np.dtype(a.dtype), np.dtype(b.dtype)).name


register(
    Op(
        "where",
        attrs={},
        infer=_infer_where,
        impl=lambda a, at: np.where(*a),
        emit=lambda ctx, a, at: f"np.where({a[0]}, {a[1]}, {a[2]})",
        arity=(3, 3),
    )
)


def where(cond, a, b) -> Tensor:
    """Elementwise choice: a where cond is true, else b (broadcasting)."""
    c, a, b = lift(cond, a, b)
    return c.graph.apply("where", [c, a, b])


defvjp(
    "where",
    None,
    lambda g, ans, c, a, b: where(c, g, 0.0),
    lambda g, ans, c, a, b: where(c, 0.0, g),
)


defjvp(
    "where",
    None,
    lambda t, ans, c, a, b: where(c, expand_tangent(t, a, ans), 0.0),
    lambda t, ans, c, a, b: where(c, 0.0, expand_tangent(t, b, ans)),
)


# ---- comparisons ----------------------------------------------------------------------------
COMPARISONS = {
    "less": ("<", np.less),
    "less_equal": ("<=", np.less_equal),
    "greater": (">", np.greater),
    "greater_equal": (">=", np.greater_equal),
    "equal": ("==", np.equal),
    "not_equal": ("!=", np.not_equal),
}


def _infer_compare(types, attrs):
    return broadcast_shapes(*[t.shape for t in types]), "bool"


def _compare_jvp(node, tangents):
    # a bool result has no derivative; a zero bool tangent marks that it depends on the
    # inputs, so where's condition ignores it while cast and arithmetic refuse it (as in rev)
    t, x = next((t, x) for t, x in zip(tangents, node.args) if t is not None)
    false = node.graph.constant(np.zeros((), dtype=bool))
    return broadcast_to(false, _batch(t, x) + node.shape)


def _compare_vjp(node, g, needed):
    raise DifferentiationError(
        f"cannot differentiate through the comparison {node.graph.describe(node.node)}: "
        f"its bool result is used as a number; use sg.where to select by it; "
        f"requested at {user_site()}"
    )


def _compare_op(name, symbol, fn):
    register(
        Op(
            name,
            attrs={},
            infer=_infer_compare,
            impl=lambda a, at: fn(a[0], a[1]),
            emit=lambda ctx, a, at: f"({a[0]} {symbol} {a[1]})",
            arity=(2, 2),
            vjp=_compare_vjp,
            jvp=_compare_jvp,
        )
    )

    def compare(a, b) -> Tensor:
        a, b = lift(a, b)
        return a.graph.apply(name, [a, b])

    compare.__name__ = name
    compare.__doc__ = f"Elementwise a {symbol} b (bool, not differentiable)."
    return compare


less, less_equal, greater, greater_equal, equal, not_equal = (
    _compare_op(name, sym, fn) for name, (sym, fn) in COMPARISONS.items()
)


# ---- cast and stop_gradient ------------------------------------------------------------------
register(
    Op(
        "cast",
        attrs={"dtype": "dtype"},
        infer=lambda types, at: (types[0].shape, at["dtype"]),
        impl=lambda a, at: a[0].astype(at["dtype"]),
        emit=lambda ctx, a, at: f"{a[0]}.astype({ctx.literal(at['dtype'])})",
    )
)


def cast(x: Tensor, dtype) -> Tensor:
    """``x`` converted to ``dtype`` (a number or bool type), as NumPy's astype."""
    dtype = numeric_dtype(dtype, "cast")
    if x.dtype == dtype:
        return x
    return x.graph.apply("cast", [x], {"dtype": dtype})


def _check_cast(ans, x, dtype):
    if not (is_float(x.dtype) and is_float(dtype)):
        raise DifferentiationError(
            f"cannot differentiate through cast {x.dtype} -> {dtype} "
            f"({ans.graph.describe(ans.node)}): integer and bool values have no derivative; "
            f"requested at {user_site()}"
        )


def _cast_vjp(g, ans, x, dtype):
    _check_cast(ans, x, dtype)
    return cast(g, x.dtype)


def _cast_jvp(t, ans, x, dtype):
    _check_cast(ans, x, dtype)
    return cast(t, dtype)


defvjp("cast", _cast_vjp)
defjvp("cast", _cast_jvp)

register(
    Op(
        "stop_gradient",
        attrs={},
        infer=lambda types, at: (types[0].shape, types[0].dtype),
        impl=lambda a, at: a[0],
        emit=lambda ctx, a, at: a[0],
        vjp=lambda node, g, needed: [None],
        jvp=lambda node, tangents: None,
        is_view=True,
    )
)


def stop_gradient(x: Tensor) -> Tensor:
    """x itself, with no derivative flowing through it."""
    return x.graph.apply("stop_gradient", [x])
