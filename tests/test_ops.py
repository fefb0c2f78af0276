"""Every public op, table-driven: values against NumPy written out by hand, compiled against
evaluated, derivatives against finite differences (reverse and forward, first and second
order, batched tangents) and against hand-written derivatives."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import sympy as sp

import symgrad as sg

# user-defined elementwise ops (names are global to the registry, so they carry a prefix)
silu = sg.elementwise("test_ops_silu", lambda x: x / (1 + sp.exp(-x)))
gauss = sg.elementwise("test_ops_gauss", lambda x: sp.exp(-(x**2)))
sin_times_sq = sg.elementwise("test_ops_sin_times_sq", lambda x, y: sp.sin(x) * y**2)


# ---- samplers: (rng, shape) -> array in the op's smooth domain ----------------------------
def normal(rng, shape):
    return rng.standard_normal(shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, shape)


def away(rng, shape):
    # |x| >= 0.2: away from the kink at 0 (relu, abs, leaky_relu, prelu) and from poles
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 1.5, shape)


def off_clip(rng, shape):
    # hard_tanh: inside (-0.8, 0.8) or outside +-1.2, never near its kinks at +-1
    inner = rng.uniform(-0.8, 0.8, shape)
    outer = rng.choice([-1.0, 1.0], shape) * rng.uniform(1.2, 2.0, shape)
    return np.where(rng.random(shape) < 0.5, inner, outer)


def on_grid(offset):
    # values k/10 + offset: two samplers with offsets 0 and 0.05 never come closer than 0.05
    return lambda rng, shape: rng.integers(-15, 16, shape) * 0.1 + offset


def distinct(rng, shape):
    # all values different (gaps of 0.1), so max/min have no ties
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.1 - 0.05 * n).reshape(shape)


def halves(rng, shape):
    # few distinct values, so comparisons see equal pairs too
    return rng.integers(-2, 3, shape) * 0.5


def fixed(values, dtype=np.int64):
    return lambda rng, shape: np.asarray(values, dtype=dtype)


def labels(classes):
    return lambda rng, shape: rng.integers(0, classes, shape)


def coin(rng, shape):
    return rng.random(shape) < 0.5


@dataclass
class Arg:
    shape: tuple
    sample: Callable = normal
    dtype: str = "float64"


def F(*shape, sample=normal):
    return Arg(shape, sample)


@dataclass
class Case:
    id: str
    fn: Callable  # Tensors -> Tensor
    ref: Callable  # ndarrays -> ndarray, NumPy by hand
    args: tuple
    grad: bool = True  # differentiable: checked against finite differences
    out32: str = "float32"  # result dtype when the float inputs are float32


def C(id, fn, ref, *args, grad=True, out32="float32"):
    return Case(id, fn, ref, tuple(args), grad, out32)


BA, BB = (3, 1, 4), (5, 4)  # broadcasting operand shapes


def np_softmax(x, axis):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def np_log_softmax(x, axis):
    return x - np.log(np.sum(np.exp(x), axis=axis, keepdims=True))


def np_cross_entropy(z, y):
    picked = np.take_along_axis(z, y[..., None], axis=-1)[..., 0]
    return np.log(np.sum(np.exp(z), axis=-1)) - picked


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


ELEMENTWISE = [
    C("add", sg.add, lambda a, b: a + b, F(*BA), F(*BB)),
    C("sub", sg.sub, lambda a, b: a - b, F(*BA), F(*BB)),
    C("mul", sg.mul, lambda a, b: a * b, F(*BA), F(*BB)),
    C("div", sg.div, lambda a, b: a / b, F(*BA), F(*BB, sample=away)),
    C("pow", sg.pow, lambda a, b: a**b, F(*BA, sample=positive), F(*BB)),
    C("maximum", sg.maximum, np.maximum, F(*BA, sample=on_grid(0)), F(*BB, sample=on_grid(0.05))),
    C("minimum", sg.minimum, np.minimum, F(*BA, sample=on_grid(0)), F(*BB, sample=on_grid(0.05))),
    C("op+", lambda a, b: a + b, lambda a, b: a + b, F(*BA), F(*BB)),
    C("op-", lambda a, b: a - b, lambda a, b: a - b, F(*BA), F(*BB)),
    C("op*", lambda a, b: a * b, lambda a, b: a * b, F(*BA), F(*BB)),
    C("op/", lambda a, b: a / b, lambda a, b: a / b, F(*BA), F(*BB, sample=away)),
    C("op**", lambda a, b: a**b, lambda a, b: a**b, F(*BA, sample=positive), F(*BB)),
    C("scalar-left", lambda a: 2.0 - 3.0 / a, lambda a: 2.0 - 3.0 / a, F(3, 4, sample=away)),
    C("scalar-right", lambda a: (a - 1) * 0.5 + a / 4, lambda a: (a - 1) * 0.5 + a / 4, F(3, 4)),
    C("rpow", lambda a: 2.0**a, lambda a: 2.0**a, F(3, 4)),
    C("cube", lambda a: a**3, lambda a: a * a * a, F(3, 4)),
    C("neg", sg.neg, lambda a: -a, F(3, 4)),
    C("op-neg", lambda a: -a, lambda a: -a, F(3, 4)),
    C("exp", sg.exp, np.exp, F(3, 4)),
    C("log", sg.log, np.log, F(3, 4, sample=positive)),
    C("sqrt", sg.sqrt, np.sqrt, F(3, 4, sample=positive)),
    C("square", sg.square, lambda a: a * a, F(3, 4)),
    C("abs", sg.abs, lambda a: np.where(a < 0, -a, a), F(3, 4, sample=away)),
    C("op-abs", abs, lambda a: np.where(a < 0, -a, a), F(3, 4, sample=away)),
    C("sin", sg.sin, np.sin, F(3, 4)),
    C("cos", sg.cos, np.cos, F(3, 4)),
    C("tanh", sg.tanh, lambda a: (np.exp(2 * a) - 1) / (np.exp(2 * a) + 1), F(3, 4)),
    C("sigmoid", sg.sigmoid, np_sigmoid, F(3, 4)),
    C("relu", sg.relu, lambda a: np.where(a > 0, a, 0.0), F(3, 4, sample=away)),
    C(
        "leaky_relu",
        lambda a: sg.leaky_relu(a, 0.1),
        lambda a: np.where(a > 0, a, 0.1 * a),
        F(3, 4, sample=away),
    ),
    C(
        "leaky_relu-default",
        sg.leaky_relu,
        lambda a: np.where(a > 0, a, 0.01 * a),
        F(3, 4, sample=away),
    ),
    C(
        "prelu",
        sg.prelu,
        lambda a, s: np.where(a > 0, a, s * a),
        F(3, 4, sample=away),
        F(4, sample=positive),
    ),
    C("softplus", sg.softplus, lambda a: np.log(1.0 + np.exp(a)), F(3, 4)),
    C("logaddexp", sg.logaddexp, lambda a, b: np.log(np.exp(a) + np.exp(b)), F(*BA), F(*BB)),
    C(
        "hard_tanh",
        sg.hard_tanh,
        lambda a: np.where(a > 1, 1.0, np.where(a < -1, -1.0, a)),
        F(3, 4, sample=off_clip),
    ),
    C("silu", silu, lambda a: a * np_sigmoid(a), F(3, 4)),
    C("gauss", gauss, lambda a: np.exp(-a * a), F(3, 4)),
    C("user-binary", sin_times_sq, lambda a, b: np.sin(a) * b * b, F(*BA), F(*BB)),
    C(
        "where-compare",
        lambda c, a, b: sg.where(c > 0, a, b),
        lambda c, a, b: np.where(c > 0, a, b),
        F(*BA),
        F(*BB),
        F(4),
    ),
    C(
        "where-bool-input",
        lambda c, a: sg.where(c, a, 0.5),
        lambda c, a: np.where(c, a, 0.5),
        Arg(BB, coin, "bool"),
        F(*BA),
    ),
    C(
        "where-scalar-first",
        lambda a: sg.where(sg.less(a, 0.0), -1.0, a * a),
        lambda a: np.where(a < 0.0, -1.0, a * a),
        F(3, 4, sample=away),
    ),
]

MATMUL = [
    C("2d", sg.matmul, lambda a, b: np.einsum("ik,kj->ij", a, b), F(3, 4), F(4, 5)),
    C("op@", lambda a, b: a @ b, lambda a, b: np.einsum("ik,kj->ij", a, b), F(3, 4), F(4, 5)),
    C("vec-mat", sg.matmul, lambda a, b: np.einsum("k,kj->j", a, b), F(4), F(4, 5)),
    C("mat-vec", sg.matmul, lambda a, b: np.einsum("ik,k->i", a, b), F(3, 4), F(4)),
    C("vec-vec", sg.matmul, lambda a, b: np.sum(a * b), F(4), F(4)),
    C(
        "batched-broadcast",
        sg.matmul,
        lambda a, b: np.einsum("xyik,ykj->xyij", np.broadcast_to(a, (2, 5, 3, 4)), b),
        F(2, 1, 3, 4),
        F(5, 4, 2),
    ),
    C(
        "batched-2d",
        sg.matmul,
        lambda a, b: np.einsum("ik,ykj->yij", a, b),
        F(3, 4),
        F(2, 4, 5),
    ),
    C("batched-vec", sg.matmul, lambda a, b: np.einsum("bik,k->bi", a, b), F(2, 3, 4), F(4)),
    C("vec-batched", sg.matmul, lambda a, b: np.einsum("k,bkj->bj", a, b), F(4), F(2, 4, 3)),
]

SHAPES = [
    C("transpose", sg.transpose, lambda x: np.einsum("ijk->kji", x), F(2, 3, 4)),
    C(
        "transpose-axes",
        lambda x: sg.transpose(x, (1, 2, 0)),
        lambda x: np.einsum("ijk->jki", x),
        F(2, 3, 4),
    ),
    C(
        "transpose-method",
        lambda x: x.transpose(0, -1, 1),
        lambda x: np.einsum("ijk->ikj", x),
        F(2, 3, 4),
    ),
    C(".T", lambda x: x.T, lambda x: np.einsum("ij->ji", x), F(3, 4)),
    C("reshape", lambda x: sg.reshape(x, (2, 6)), lambda x: x.reshape(2, 6), F(3, 4)),
    C("reshape-flat", lambda x: sg.reshape(x, -1), lambda x: x.reshape(-1), F(2, 3, 4)),
    C("reshape-infer", lambda x: x.reshape(4, -1), lambda x: x.reshape(4, 6), F(2, 3, 4)),
    C("reshape-0d", lambda x: x.reshape(()), lambda x: x.reshape(()), F(1, 1)),
    C(
        "broadcast_to",
        lambda x: sg.broadcast_to(x, (2, 3, 4)),
        lambda x: x * np.ones((2, 3, 4)),
        F(3, 1),
    ),
    C(
        "broadcast_to-0d",
        lambda x: sg.broadcast_to(x, (2, 2)),
        lambda x: x * np.ones((2, 2)),
        F(),
    ),
    C(
        "concatenate-0",
        lambda a, b: sg.concatenate([a, b]),
        lambda a, b: np.vstack([a, b]),
        F(2, 3),
        F(4, 3),
    ),
    C(
        "concatenate--1",
        lambda a, b, c: sg.concatenate([a, b, c], axis=-1),
        lambda a, b, c: np.hstack([a, b, c]),
        F(2, 3),
        F(2, 1),
        F(2, 2),
    ),
    C(
        "concatenate-mid",
        lambda a, b: sg.concatenate([a, b], axis=1),
        lambda a, b: np.stack([np.vstack([a[i], b[i]]) for i in range(2)]),
        F(2, 1, 3),
        F(2, 2, 3),
    ),
]


def _reduce_cases(name, fn, sample):
    rows = [
        ("all", {}, lambda x: fn(x, None, False)),
        ("0", {"axis": 0}, lambda x: fn(x, 0, False)),
        ("-1", {"axis": -1}, lambda x: fn(x, -1, False)),
        ("(0,2)", {"axis": (0, 2)}, lambda x: fn(x, (0, 2), False)),
        ("1-keep", {"axis": 1, "keepdims": True}, lambda x: fn(x, 1, True)),
        ("all-keep", {"axis": None, "keepdims": True}, lambda x: fn(x, None, True)),
    ]
    op = getattr(sg, name)
    out = [
        C(f"{name}-{rid}", lambda x, kw=kw: op(x, **kw), ref, F(2, 3, 4, sample=sample))
        for rid, kw, ref in rows
    ]
    method = getattr(sg.Tensor, name)
    out.append(
        C(
            f"{name}-method",
            lambda x: method(x, 1),
            lambda x: fn(x, 1, False),
            F(2, 3, 4, sample=sample),
        )
    )
    return out


def np_sum(x, axis, keepdims):
    axes = tuple(range(x.ndim)) if axis is None else np.atleast_1d(axis) % x.ndim
    out = x
    for a in sorted(axes, reverse=True):  # one axis at a time, by adding slices
        out = sum(np.take(out, i, axis=a) for i in range(out.shape[a]))
    if keepdims:
        out = np.expand_dims(out, tuple(sorted(axes)))
    return np.asarray(out)


def np_mean(x, axis, keepdims):
    return np_sum(x, axis, keepdims) / np_sum(np.ones(x.shape), axis, keepdims)


def np_extreme(pick):
    def reduce(x, axis, keepdims):
        axes = tuple(range(x.ndim)) if axis is None else np.atleast_1d(axis) % x.ndim
        out = x
        for a in sorted(axes, reverse=True):
            out = pick(np.moveaxis(out, a, 0))
        if keepdims:
            out = np.expand_dims(out, tuple(sorted(axes)))
        return np.asarray(out)

    return reduce


def _fold(f):
    def pick(stacked):
        out = stacked[0]
        for row in stacked[1:]:
            out = np.where(f(row, out), row, out)
        return out

    return pick


REDUCTIONS = (
    _reduce_cases("sum", np_sum, normal)
    + _reduce_cases("mean", np_mean, normal)
    + _reduce_cases("max", np_extreme(_fold(lambda a, b: a > b)), distinct)
    + _reduce_cases("min", np_extreme(_fold(lambda a, b: a < b)), distinct)
    + [
        # integer and bool reductions take NumPy's result dtypes
        C(
            "sum-int",
            lambda i: sg.sum(i, 0),
            lambda i: np_sum(i, 0, False),
            Arg((3, 4), labels(7), "int64"),
            grad=False,
            out32="int64",
        ),
        C(
            "mean-int",
            lambda i: sg.mean(i, -1),
            lambda i: np_mean(i, -1, False),
            Arg((3, 4), labels(7), "int64"),
            grad=False,
            out32="float64",
        ),
        C(
            "sum-bool",
            lambda x: sg.sum(x > 0, -1),
            lambda x: np_sum(np.where(x > 0, 1, 0), -1, False),
            F(3, 4),
            grad=False,
            out32="int64",
        ),
        C(
            "max-int",
            lambda i: sg.max(i),
            lambda i: np_extreme(_fold(lambda a, b: a > b))(i, None, False),
            Arg((3, 4), labels(7), "int64"),
            grad=False,
            out32="int64",
        ),
    ]
)


def _index_case(id, index, ref_index=None, *extra):
    """x[index] on a (4, 5, 3) input; a callable index gets the extra (integer) inputs."""
    if callable(index):
        fn, ref = (lambda x, *i: x[index(*i)]), (lambda x, *i: x[ref_index(*i)])
    else:
        fn, ref = (lambda x: x[index]), (lambda x: x[index])
    return C(f"getitem-{id}", fn, ref, F(4, 5, 3), *extra)


GETITEM = [
    _index_case("int", 1),
    _index_case("negative-int", (-1, 2)),
    _index_case("slice-step", (slice(None, None, 2), slice(1, 5, 3))),
    _index_case("negative-step-newaxis", (slice(1, 4, 2), slice(None, None, -2), None)),
    _index_case("ellipsis", (Ellipsis, 1)),
    _index_case("newaxis-ellipsis", (None, Ellipsis, slice(None, None, 2))),
    _index_case("mixed", (slice(-3, None), 1, slice(None, None, -1))),
    _index_case("list-repeated", [0, 2, 2, 1, -1]),
    C("sg.getitem", lambda x: sg.getitem(x, (slice(None, 3), 4)), lambda x: x[:3, 4], F(4, 5, 3)),
    _index_case("array-2d-then-int", (np.array([[0, 1], [3, 3]]), slice(None), 2)),
    _index_case("second-axis-repeated", (slice(1, None), [0, 0, 4])),
    _index_case("separated-arrays", ([0, 1, 1], slice(None), [1, 2, 2])),
    _index_case("int-and-array", (2, slice(None), [0, 2, 0])),
    _index_case("tensor", lambda i: i, lambda i: i, Arg((5,), fixed([3, 0, 3, 1, 3]), "int64")),
    _index_case(
        "tensor-middle",
        lambda i: (slice(None), i, slice(1, None)),
        lambda i: (slice(None), i, slice(1, None)),
        Arg((2, 3), fixed([[4, 0, 4], [1, 4, 2]]), "int64"),
    ),
]

COMPARISONS = [
    C(f"{name}", getattr(sg, name), ref, F(*BA, sample=halves), F(*BB, sample=halves))
    for name, ref in [
        ("less", lambda a, b: a < b),
        ("less_equal", lambda a, b: a <= b),
        ("greater", lambda a, b: a > b),
        ("greater_equal", lambda a, b: a >= b),
        ("equal", lambda a, b: a == b),
        ("not_equal", lambda a, b: a != b),
    ]
] + [
    C(f"op{sym}", fn, fn, F(*BA, sample=halves), F(*BB, sample=halves))
    for sym, fn in [
        ("<", lambda a, b: a < b),
        ("<=", lambda a, b: a <= b),
        (">", lambda a, b: a > b),
        (">=", lambda a, b: a >= b),
    ]
]
for _c in COMPARISONS:
    _c.grad, _c.out32 = False, "bool"

CASTS = [
    C(
        "cast-int",
        lambda x: sg.cast(x * 3, "int64"),
        lambda x: np.trunc(x * 3).astype(np.int64),
        F(3, 4),
        grad=False,
        out32="int64",
    ),
    # float casts are differentiable, but finite differences cannot see through float32
    # rounding: test_float_cast_passes_derivatives_in_the_input_dtype checks them
    C(
        "cast-float32",
        lambda x: sg.cast(x, "float32"),
        lambda x: x.astype(np.float32),
        F(3, 4),
        grad=False,
    ),
    C(
        "cast-from-float32",
        lambda x: sg.cast(x, "float64"),
        lambda x: x.astype(np.float64),
        Arg((3, 4), normal, "float32"),
        grad=False,
        out32="float64",
    ),
    C(
        "astype-float64",
        lambda i: i.astype("float64"),
        lambda i: i.astype(np.float64),
        Arg((3, 4), labels(7), "int64"),
        grad=False,
        out32="float64",
    ),
    C(
        "cast-bool",
        lambda x: sg.cast(x > 0, "float64"),
        lambda x: np.where(x > 0, 1.0, 0.0),
        F(3, 4),
        grad=False,
        out32="float64",
    ),
    C("stop_gradient", sg.stop_gradient, lambda x: x + 0.0, F(3, 4), grad=False),
]

NN = [
    C("softmax", sg.softmax, lambda x: np_softmax(x, -1), F(3, 5)),
    C("softmax-0", lambda x: sg.softmax(x, 0), lambda x: np_softmax(x, 0), F(3, 2, 4)),
    C(
        "softmax-(0,2)",
        lambda x: sg.softmax(x, (0, 2)),
        lambda x: np_softmax(x, (0, 2)),
        F(3, 2, 4),
    ),
    C("log_softmax", sg.log_softmax, lambda x: np_log_softmax(x, -1), F(3, 5)),
    C("log_softmax-1", lambda x: sg.log_softmax(x, 1), lambda x: np_log_softmax(x, 1), F(2, 3, 4)),
    C("logsumexp", sg.logsumexp, lambda x: np.log(np.sum(np.exp(x))), F(3, 4)),
    C(
        "logsumexp--1",
        lambda x: sg.logsumexp(x, -1),
        lambda x: np.log(np.sum(np.exp(x), axis=-1)),
        F(2, 3, 4),
    ),
    C(
        "logsumexp-(0,2)-keep",
        lambda x: sg.logsumexp(x, (0, 2), keepdims=True),
        lambda x: np.log(np.sum(np.exp(x), axis=(0, 2), keepdims=True)),
        F(2, 3, 4),
    ),
    C(
        "cross_entropy",
        sg.cross_entropy,
        np_cross_entropy,
        F(5, 4),
        Arg((5,), fixed([0, 3, 3, 1, 2]), "int64"),
    ),
    C(
        "cross_entropy-batched",
        sg.cross_entropy,
        np_cross_entropy,
        F(2, 3, 4),
        Arg((2, 3), labels(4), "int64"),
    ),
    C(
        "softmax-int",
        sg.softmax,
        lambda i: np_softmax(i.astype(np.float64), -1),
        Arg((3, 4), labels(7), "int64"),
        grad=False,
        out32="float64",
    ),
    C(
        "logsumexp-int",
        lambda i: sg.logsumexp(i, 0),
        lambda i: np.log(np.sum(np.exp(i.astype(np.float64)), axis=0)),
        Arg((3, 4), labels(7), "int64"),
        grad=False,
        out32="float64",
    ),
    C("mse", sg.mse, lambda a, b: np.mean((a - b) * (a - b)), F(3, 4), F(3, 4)),
    C("mse-broadcast", sg.mse, lambda a, b: np.mean((a - b) ** 2), F(3, 4), F(4)),
    C(
        "maxout",
        lambda x: sg.maxout(x, 3),
        lambda x: np.maximum(np.maximum(x[:, 0::3], x[:, 1::3]), x[:, 2::3]),
        F(2, 6, sample=distinct),
    ),
    C(
        "maxout-3d",
        lambda x: sg.maxout(x, 2),
        lambda x: np.maximum(x[..., 0::2], x[..., 1::2]),
        F(2, 3, 4, sample=distinct),
    ),
]

THIRD_ORDER = {
    "pow",
    "user-binary",
    "where-compare",
    "batched-broadcast",
    "max-(0,2)",
    "getitem-separated-arrays",
    "softmax-(0,2)",
    "cross_entropy-batched",
    "maxout",
}
CASES = ELEMENTWISE + MATMUL + SHAPES + REDUCTIONS + GETITEM + COMPARISONS + CASTS + NN
GRAD_CASES = [c for c in CASES if c.grad]


def _params(cases, prefix=""):
    return [pytest.param(c, id=prefix + c.id) for c in cases]


def build(case: Case, float_dtype: str = "float64"):
    """The case's graph on fresh inputs: (output, input Tensors, input arrays)."""
    g = sg.Graph()
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    tensors, arrays = [], []
    for i, arg in enumerate(case.args):
        dtype = float_dtype if arg.dtype == "float64" else arg.dtype
        tensors.append(g.input(f"x{i}", arg.shape, dtype))
        arrays.append(np.asarray(arg.sample(rng, arg.shape)).astype(dtype))
    return case.fn(*tensors), tensors, arrays


def assert_close(got, want, rtol, atol):
    if np.asarray(want).dtype.kind in "biu":  # exact kinds: no tolerance
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# ---- 1. values ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", _params(CASES))
def test_value_float64(case):
    out, xs, arrays = build(case)
    got = sg.evaluate(out, dict(zip(xs, arrays)))
    want = np.asarray(case.ref(*arrays))
    assert got.dtype == want.dtype and out.dtype == want.dtype.name
    assert got.shape == want.shape == out.shape
    assert_close(got, want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("case", _params(CASES))
def test_value_float32_keeps_dtype(case):
    out, xs, arrays = build(case, "float32")
    got = sg.evaluate(out, dict(zip(xs, arrays)))
    assert got.dtype == case.out32 and out.dtype == case.out32
    want = case.ref(*[a.astype(np.float64) if a.dtype == np.float32 else a for a in arrays])
    assert_close(got, want, rtol=2e-5, atol=2e-6)


# ---- 2. compiled == evaluated ----------------------------------------------------------------
@pytest.mark.parametrize("float_dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", _params(CASES))
def test_compiled_matches_evaluated(case, float_dtype):
    out, xs, arrays = build(case, float_dtype)
    want = sg.evaluate(out, dict(zip(xs, arrays)))
    got = sg.compile(out, inputs=xs)(*arrays)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert_close(got, want, rtol=1e-13, atol=1e-15)


# ---- 3. derivatives ------------------------------------------------------------------------
@pytest.mark.parametrize("case", _params(GRAD_CASES))
def test_derivatives_match_finite_differences(case):
    out, xs, arrays = build(case)
    sg.check_grads(out, dict(zip(xs, arrays)), order=2, modes=("rev", "fwd"))


@pytest.mark.parametrize("float_dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", _params(GRAD_CASES))
def test_compiled_derivatives_match_evaluated(case, float_dtype):
    """The emitted NumPy of the derivative nodes (expr, index_add, one_hot ...) agrees too."""
    out, xs, arrays = build(case, float_dtype)
    floats = [x for x in xs if x.dtype == float_dtype]
    w = out.graph.constant(np.random.default_rng(8).standard_normal(out.shape).astype(out.dtype))
    f = sg.sum(out * w)
    gs = sg.grad(f, floats)
    hv = sg.hvp(f, floats, [sg.cos(x) for x in floats])
    want = sg.evaluate([f, *gs, *hv], dict(zip(xs, arrays)))
    got = sg.compile([f, *gs, *hv], inputs=xs)(*arrays)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype == float_dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-13 if float_dtype == "float64" else 1e-6)


@pytest.mark.parametrize("case", _params([c for c in GRAD_CASES if c.id in THIRD_ORDER]))
def test_third_order_derivatives(case):
    out, xs, arrays = build(case)
    sg.check_grads(out, dict(zip(xs, arrays)), order=3, modes=("rev", "fwd"))


def numeric_jacobian(out, feed, x, eps=1e-6):
    base = {k: v.copy() for k, v in feed.items()}
    flat = base[x].reshape(-1)
    cols = []
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        hi = sg.evaluate(out, base)
        flat[i] = old - eps
        lo = sg.evaluate(out, base)
        flat[i] = old
        cols.append((hi - lo) / (2 * eps))
    return np.stack(cols, axis=-1).reshape(np.shape(hi) + base[x].shape)


@pytest.mark.parametrize("case", _params(GRAD_CASES))
def test_jacobian_batched_tangents(case):
    """sg.jacobian pushes a whole basis through every JVP rule as one batched tangent."""
    out, xs, arrays = build(case)
    feed = dict(zip(xs, arrays))
    floats = [x for x in xs if x.dtype == "float64"]
    for x, J in zip(floats, sg.jacobian(out, floats)):
        np.testing.assert_allclose(
            sg.evaluate(J, feed), numeric_jacobian(out, feed, x), rtol=1e-6, atol=1e-8
        )


@pytest.mark.parametrize("case", _params(GRAD_CASES))
def test_hessian_batched_tangents_through_backward_rules(case):
    """sg.hessian pushes a basis forward through the reverse rules' nodes (index_add, ...)."""
    out, xs, arrays = build(case)
    feed = dict(zip(xs, arrays))
    w = np.random.default_rng(5).standard_normal(np.shape(sg.evaluate(out, feed)))
    f = sg.sum(out * out * out.graph.constant(w))
    x = next(x for x in xs if x.dtype == "float64")
    H = sg.evaluate(sg.hessian(f, x), feed)
    np.testing.assert_allclose(H, numeric_jacobian(sg.grad(f, x), feed, x), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", _params(GRAD_CASES))
def test_float32_gradients_stay_float32(case):
    out32, xs32, arrays32 = build(case, "float32")
    out, xs, arrays = build(case)
    w = np.random.default_rng(6).standard_normal(out.shape)
    floats = [i for i, x in enumerate(xs) if x.dtype == "float64"]
    g32 = sg.vjp(out32, [xs32[i] for i in floats], w.astype(np.float32))
    g64 = sg.vjp(out, [xs[i] for i in floats], w)
    got = sg.evaluate(g32, dict(zip(xs32, arrays32)))
    want = sg.evaluate(g64, dict(zip(xs, [a.astype(np.float32).astype(a.dtype) for a in arrays])))
    for t, a, b in zip(g32, got, want):
        assert t.dtype == "float32" and a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ops on a symbolic "batch" dim: (x: (batch, 4), labels: (batch,), W: (4, 3)) -> Tensor, NumPy
SYMBOLIC = [
    ("mean-0", lambda x, y, W: sg.mean(x, 0), lambda x, y, W: np_mean(x, 0, False)),
    ("mean-all", lambda x, y, W: sg.mean(x), lambda x, y, W: np_mean(x, None, False)),
    ("max-0", lambda x, y, W: sg.max(x, 0), lambda x, y, W: np_extreme(_fold(np.greater))(x, 0, 0)),
    ("softmax", lambda x, y, W: sg.softmax(x), lambda x, y, W: np_softmax(x, -1)),
    ("matmul", lambda x, y, W: x @ W, lambda x, y, W: np.einsum("bi,ij->bj", x, W)),
    (
        "cross_entropy",
        lambda x, y, W: sg.cross_entropy(x @ W, y),
        lambda x, y, W: np_cross_entropy(np.einsum("bi,ij->bj", x, W), y),
    ),
    ("reshape", lambda x, y, W: x.reshape("batch", 2, 2), lambda x, y, W: x.reshape(-1, 2, 2)),
    ("slice", lambda x, y, W: x[:, 1::2], lambda x, y, W: x[:, 1::2]),
    ("index", lambda x, y, W: x[y], lambda x, y, W: x[y]),
    ("transpose", lambda x, y, W: x.T, lambda x, y, W: np.einsum("bi->ib", x)),
    ("mse", lambda x, y, W: sg.mse(x, 0.5), lambda x, y, W: np.mean((x - 0.5) ** 2)),
    (
        "maxout",
        lambda x, y, W: sg.maxout(x, 2),
        lambda x, y, W: np.maximum(x[:, 0::2], x[:, 1::2]),
    ),
]


@pytest.mark.parametrize("id, f, ref", SYMBOLIC, ids=[s[0] for s in SYMBOLIC])
def test_symbolic_batch_dim(id, f, ref):
    g = sg.Graph()
    x, y, W = g.input("x", ("batch", 4)), g.input("y", ("batch",), "int64"), g.input("W", (4, 3))
    out = f(x, y, W)
    fn = sg.compile([out, sg.grad(sg.sum(out * out), x)], inputs=[x, y, W])
    rng = np.random.default_rng(7)
    for n in (3, 5):
        feed = {x: distinct(rng, (n, 4)) * 0.2, y: rng.integers(0, 3, n), W: normal(rng, (4, 3))}
        want = ref(*feed.values())
        got = sg.evaluate(out, feed)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
        value, dx = fn(*feed.values())
        np.testing.assert_allclose(value, got, rtol=1e-13, atol=1e-15)
        want_dx = numeric_jacobian(sg.sum(out * out), feed, x)
        np.testing.assert_allclose(dx, want_dx, rtol=1e-6, atol=1e-8)


def _onehot(y, k):
    return np.eye(k)[y]


# (id, input shapes, f(tensors..., w) -> scalar, hand-written gradients(arrays..., w))
# (id, input shapes, op, hand-written gradients of sum(op(...) * w)) at distinct inputs
HAND_GRADS = [
    ("tanh", [(3, 4)], sg.tanh, lambda x, w: [w * (1 - np.tanh(x) ** 2)]),
    (
        "sigmoid",
        [(3, 4)],
        sg.sigmoid,
        lambda x, w: [w * np_sigmoid(x) * (1 - np_sigmoid(x))],
    ),
    (
        "softmax",
        [(3, 4)],
        sg.softmax,
        lambda x, w: [
            np_softmax(x, -1) * (w - np.sum(np_softmax(x, -1) * w, axis=-1, keepdims=True))
        ],
    ),
    ("matmul", [(3, 4), (4, 5)], sg.matmul, lambda a, b, w: [w @ b.T, a.T @ w]),
    (
        "matmul-batched",
        [(2, 1, 3, 4), (5, 4, 2)],
        sg.matmul,
        lambda a, b, w: [
            np.einsum("xyij,ykj->xik", w, b)[:, None],
            np.einsum("xik,xyij->ykj", a[:, 0], w),
        ],
    ),
    (
        "getitem-repeated",
        [(4, 3)],
        lambda x: x[[2, 0, 2, 2, 3]],
        lambda x, w: [np.stack([w[1], np.zeros(3), w[0] + w[2] + w[3], w[4]])],
    ),
    (
        "max-no-ties",
        [(3, 5)],
        lambda x: sg.max(x, axis=1),
        lambda x, w: [_onehot(np.argmax(x, axis=1), 5) * w[:, None]],
    ),
    (
        "min-no-ties-axis0",
        [(3, 5)],
        lambda x: sg.min(x, axis=0),
        lambda x, w: [_onehot(np.argmin(x, axis=0), 3).T * w],
    ),
]


@pytest.mark.parametrize("id, shapes, op, hand", HAND_GRADS, ids=[h[0] for h in HAND_GRADS])
def test_grad_against_hand_derivative(id, shapes, op, hand):
    rng = np.random.default_rng(1)
    g = sg.Graph()
    xs = [g.input(f"x{i}", s) for i, s in enumerate(shapes)]
    arrays = [distinct(rng, s) * 0.3 for s in shapes]
    out = op(*xs)
    wv = rng.standard_normal(out.shape)
    gs = sg.grad(sg.sum(out * g.constant(wv)), xs)
    for got, want in zip(sg.evaluate(gs, dict(zip(xs, arrays))), hand(*arrays, wv)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_cross_entropy_grad_is_softmax_minus_onehot():
    rng = np.random.default_rng(2)
    g = sg.Graph()
    z = g.input("z", (6, 4))
    y = g.input("y", (6,), "int64")
    zv, yv = rng.standard_normal((6, 4)), np.array([0, 3, 3, 1, 2, 0])
    dz = sg.grad(sg.sum(sg.cross_entropy(z, y)), z)
    want = np_softmax(zv, -1) - _onehot(yv, 4)
    np.testing.assert_allclose(sg.evaluate(dz, {z: zv, y: yv}), want, rtol=1e-12, atol=1e-14)


# ---- 4. second derivatives of scalar functions -----------------------------------------------
def _d2_tanh(x):
    t = np.tanh(x)
    return -2 * t * (1 - t**2)


SECOND = [
    ("tanh", sg.tanh, _d2_tanh, normal),
    ("cube", lambda x: x**3, lambda x: 6 * x, lambda rng, s: np.append(normal(rng, s[0] - 1), 0)),
    ("square-op", lambda x: x**2, lambda x: 2 + 0 * x, lambda rng, s: np.append(normal(rng, 4), 0)),
    (
        "exp-sin",
        lambda x: sg.exp(sg.sin(x)),
        lambda x: np.exp(np.sin(x)) * (np.cos(x) ** 2 - np.sin(x)),
        normal,
    ),
    (
        "sigmoid",
        sg.sigmoid,
        lambda x: np_sigmoid(x) * (1 - np_sigmoid(x)) * (1 - 2 * np_sigmoid(x)),
        normal,
    ),
    ("softplus", sg.softplus, lambda x: np_sigmoid(x) * (1 - np_sigmoid(x)), normal),
    ("log", sg.log, lambda x: -1 / x**2, positive),
    ("sqrt", sg.sqrt, lambda x: -0.25 * x**-1.5, positive),
    ("sin", sg.sin, lambda x: -np.sin(x), normal),
    ("relu", sg.relu, lambda x: 0 * x, away),
    ("gauss", gauss, lambda x: (4 * x**2 - 2) * np.exp(-(x**2)), normal),
    (
        "silu",
        silu,
        lambda x: np_sigmoid(x) * (1 - np_sigmoid(x)) * (2 + x * (1 - 2 * np_sigmoid(x))),
        normal,
    ),
]


@pytest.mark.parametrize("id, f, d2, sample", SECOND, ids=[s[0] for s in SECOND])
def test_grad_of_grad_against_known_second_derivative(id, f, d2, sample):
    g = sg.Graph()
    x = g.input("x", (5,))
    xv = sample(np.random.default_rng(3), (5,))
    h = sg.grad(sg.grad(sg.sum(f(x)), x).sum(), x)  # elementwise: the sum trick gives the diagonal
    got = sg.evaluate(h, {x: xv})
    np.testing.assert_allclose(got, d2(xv), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(sg.compile(h, inputs=[x])(xv), got, rtol=1e-13, atol=1e-15)


def test_power_derivatives_are_finite_at_zero():
    """d/dx x**n = n x**(n-1), not n * x**n / x (which is nan at 0)."""
    g = sg.Graph()
    x = g.input("x", (4,))
    xv = np.array([0.0, 1.5, -2.0, 0.0])
    d2, d3 = sg.grad(sg.sum(x**2), x), sg.grad(sg.sum(x**3), x)
    got = sg.evaluate([d2, d3, sg.grad(sg.sum(d3), x)], {x: xv})
    for a, b in zip(got, [2 * xv, 3 * xv * xv, 6 * xv]):
        np.testing.assert_array_equal(a, b)


def test_max_splits_the_gradient_among_ties():
    g = sg.Graph()
    x = g.input("x", (2, 3))
    xv = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    got = sg.evaluate(sg.grad(sg.sum(sg.max(x, axis=1)), x), {x: xv})
    np.testing.assert_allclose(got, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-15)


def _stable_softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _stable_lse(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))


# (id, op, hand-written stable NumPy, its derivative): at |x| ~ 1000 naive formulas overflow
LARGE = [
    ("sigmoid", sg.sigmoid, lambda x: np.exp(-_stable_softplus(-x)), lambda x, s: s * (1 - s)),
    ("softplus", sg.softplus, _stable_softplus, lambda x, s: np.exp(-_stable_softplus(-x))),
    ("tanh", sg.tanh, np.tanh, lambda x, s: 1 - s * s),
    (
        "log_softmax",
        sg.log_softmax,
        lambda x: x - _stable_lse(x, -1)[:, None],
        lambda x, s: 1 - 4 * np.exp(s),  # cotangent ones: 1 - n_classes * softmax
    ),
    (
        "logsumexp",
        lambda x: sg.logsumexp(x, -1),
        lambda x: _stable_lse(x, -1),
        lambda x, s: np.exp(x - s[:, None]),
    ),
    (
        "cross_entropy",
        lambda x: sg.cross_entropy(x, np.array([0, 1, 2])),
        lambda x: _stable_lse(x, -1) - x[[0, 1, 2], [0, 1, 2]],
        lambda x, s: np.exp(x - _stable_lse(x, -1)[:, None]) - np.eye(3, 4),
    ),
]


@pytest.mark.parametrize("id, f, ref, dref", LARGE, ids=[c[0] for c in LARGE])
def test_large_inputs_stay_finite(id, f, ref, dref):
    g = sg.Graph()
    x = g.input("x", (3, 4))
    xv = np.array([[1000.0, -1000.0, 0.5, 999.0], [-800.0, -1000.0, -999.0, 3.0], [0, 1, 2, 700]])
    out = f(x)
    dx = sg.grad(sg.sum(out), x)
    value, grad = sg.compile([out, dx], inputs=[x])(xv)
    want = ref(xv)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(value, want, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(grad, dref(xv, want), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(sg.evaluate([out, dx], {x: xv})[1], grad, rtol=1e-13, atol=1e-300)


# ---- 5. non-differentiable ops ----------------------------------------------------------------
NON_DIFFERENTIABLE = [
    ("float-int-float", lambda x: sg.cast(sg.cast(x * 3, "int64"), "float64")),
    ("compare-cast", lambda x: sg.cast(sg.greater(x, 0.0), "float64") * x),
    ("compare-op-cast", lambda x: (x < 0.5).astype("float64")),
    ("compare-arithmetic", lambda x: x * (x > 0)),
]


@pytest.mark.parametrize("id, f", NON_DIFFERENTIABLE, ids=[n[0] for n in NON_DIFFERENTIABLE])
def test_differentiating_through_integers_raises_reverse(id, f):
    g = sg.Graph()
    x = g.input("x", (4,))
    total = sg.sum(f(x))
    size = len(g)
    with pytest.raises(sg.DifferentiationError):
        sg.grad(total, x)
    assert len(g) == size  # a failed derivative leaves the graph as it was


@pytest.mark.parametrize("id, f", NON_DIFFERENTIABLE, ids=[n[0] for n in NON_DIFFERENTIABLE])
def test_differentiating_through_integers_raises_forward(id, f):
    g = sg.Graph()
    x = g.input("x", (4,))
    y = f(x)
    size = len(g)
    with pytest.raises(sg.DifferentiationError):
        sg.jvp(y, x, np.ones(4))
    assert len(g) == size


def test_stop_gradient_gives_zero_derivative():
    g = sg.Graph()
    x = g.input("x", (4,))
    xv = np.array([0.5, -1.0, 2.0, 0.25])
    y = sg.sum(sg.stop_gradient(x) ** 2)
    np.testing.assert_array_equal(sg.evaluate(sg.grad(y, x), {x: xv}), np.zeros(4))
    np.testing.assert_array_equal(sg.evaluate(sg.jvp(y, x, np.ones(4)), {x: xv}), 0.0)
    # only the path around the stop counts: d/dx sum(sg(x) * x) = x
    z = sg.sum(sg.stop_gradient(x) * x)
    np.testing.assert_allclose(sg.evaluate(sg.grad(z, x), {x: xv}), xv, rtol=1e-15)
    np.testing.assert_allclose(sg.evaluate(sg.jvp(z, x, np.ones(4)), {x: xv}), xv.sum(), rtol=1e-15)


def test_comparisons_as_conditions_are_differentiable():
    """where(x > 0, ...) needs no derivative of the comparison, in either mode."""
    g = sg.Graph()
    x = g.input("x", (4,))
    xv = np.array([0.5, -1.0, 2.0, -0.25])
    y = sg.where(x > 0, x**2, -x)
    want = np.where(xv > 0, 2 * xv, -1.0)
    np.testing.assert_allclose(sg.evaluate(sg.grad(sg.sum(y), x), {x: xv}), want, rtol=1e-15)
    np.testing.assert_allclose(sg.evaluate(sg.jvp(y, x, np.ones(4)), {x: xv}), want, rtol=1e-15)


def test_float_cast_passes_derivatives_in_the_input_dtype():
    g = sg.Graph()
    x = g.input("x", (3,), "float32")
    w = np.array([1.0, -2.0, 0.5])
    dx = sg.grad(sg.sum(sg.cast(x, "float64") * w), x)
    assert dx.dtype == "float32"
    got = sg.evaluate(dx, {x: np.ones(3, np.float32)})
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, w.astype(np.float32))


# ---- stop_gradient, symbolic dims and integer feeds at the edges of the ops ---------------------
def test_stop_gradient_before_a_bool_cast_reverse():
    g = sg.Graph()
    x = g.input("x", (3,))
    mask = sg.cast(sg.stop_gradient(x) > 0, "float64")
    xv = np.array([1.0, -1.0, 2.0])
    np.testing.assert_array_equal(sg.evaluate(sg.grad(sg.sum(mask * x), x), {x: xv}), [1, 0, 1])


def test_stop_gradient_before_a_bool_cast_forward():
    g = sg.Graph()
    x = g.input("x", (3,))
    mask = sg.cast(sg.stop_gradient(x) > 0, "float64")
    xv = np.array([1.0, -1.0, 2.0])
    np.testing.assert_array_equal(sg.evaluate(sg.jvp(mask * x, x, np.ones(3)), {x: xv}), [1, 0, 1])


def test_evaluate_binds_symbolic_dims_of_every_fed_input():
    g = sg.Graph()
    x, w = g.input("x", ("batch", 2)), g.input("w", ("batch",))
    dw = sg.grad(sg.sum(x * x), w)  # zeros of w's (symbolic) shape
    feed = {x: np.ones((3, 2)), w: np.ones(3)}
    np.testing.assert_array_equal(sg.compile(dw, inputs=[x, w])(*feed.values()), np.zeros(3))
    np.testing.assert_array_equal(sg.evaluate(dw, feed), np.zeros(3))


def test_numeric_grad_with_integer_labels():
    g = sg.Graph()
    z, y = g.input("z", (2, 3)), g.input("y", (2,), "int64")
    zv, yv = np.zeros((2, 3)), np.array([0, 2])
    got = sg.numeric_grad(sg.sum(sg.cross_entropy(z, y)), {z: zv, y: yv}, z)
    np.testing.assert_allclose(got, np.full((2, 3), 1 / 3) - _onehot(yv, 3), rtol=1e-8)


def test_the_evaluator_propagates_nan_through_max_and_min_as_numpy():
    g = sg.Graph()
    a, b = g.input("a", (3,)), g.input("b", (3,))
    outs = [sg.maximum(a, b), sg.maximum(b, a), sg.minimum(a, b), sg.relu(a)]
    av, bv = np.array([np.nan, 1.0, np.nan]), np.array([1.0, np.nan, np.nan])
    want = [np.maximum(av, bv), np.maximum(bv, av), np.minimum(av, bv), np.maximum(av, 0.0)]
    for got in (sg.evaluate(outs, {a: av, b: bv}), sg.compile(outs, [a, b])(av, bv)):
        for x, w in zip(got, want):
            np.testing.assert_array_equal(x, w)
