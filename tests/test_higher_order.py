"""Every op under every derivative transform, against finite differences and SymPy.

Each case is an op applied to small float64 inputs away from kinks. For each case:
jvp, vjp, HVP forward-over-reverse, HVP reverse-over-reverse, the full Hessian and the
vectorized Jacobian are compared with central finite differences; scalar versions are compared
with SymPy's exact derivatives up to order 3.
"""

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.symbolic import input_symbols, to_sympy

EPS = 1e-6


def pos(shape, rng):  # positive, away from 0
    return rng.uniform(0.5, 1.5, shape)


def signed(shape, rng):  # either sign, away from 0 (kinks of relu/abs)
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 1.2, shape)


def distinct(shape, rng):  # no ties (max/min/maximum)
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) * 0.3 + rng.uniform(-0.05, 0.05, shape)


LABELS = np.array([2, 0, 1])

# name -> (function of input Tensors, [(shape, sampler), ...])
CASES = {
    "add": (lambda a, b: a + b, [((3, 1), signed), ((4,), signed)]),
    "sub": (lambda a, b: a - b, [((2, 3), signed), ((3,), signed)]),
    "mul": (lambda a, b: a * b, [((2, 3), signed), ((2, 1), signed)]),
    "div": (lambda a, b: a / b, [((3,), signed), ((3,), pos)]),
    "neg": (lambda a: -a, [((3,), signed)]),
    "pow": (lambda a, b: a**b, [((3,), pos), ((3,), signed)]),
    "pow_const": (lambda a: a**3, [((3,), signed)]),
    "exp": (sg.exp, [((3,), signed)]),
    "log": (sg.log, [((3,), pos)]),
    "sqrt": (sg.sqrt, [((3,), pos)]),
    "square": (sg.square, [((3,), signed)]),
    "abs": (sg.abs, [((4,), signed)]),
    "sin": (sg.sin, [((3,), signed)]),
    "cos": (sg.cos, [((3,), signed)]),
    "tanh": (sg.tanh, [((3,), signed)]),
    "sigmoid": (sg.sigmoid, [((3,), signed)]),
    "softplus": (sg.softplus, [((3,), signed)]),
    "logaddexp": (sg.logaddexp, [((3, 1), signed), ((4,), signed)]),
    "relu": (lambda a: sg.relu(a) * a, [((4,), signed)]),
    "leaky_relu": (lambda a: sg.leaky_relu(a, 0.1) * a, [((4,), signed)]),
    "prelu": (lambda a, s: sg.prelu(a, s) * a, [((2, 3), signed), ((3,), pos)]),
    "hard_tanh": (lambda a: sg.hard_tanh(a) * a, [((4,), lambda s, r: r.uniform(-0.9, 0.9, s))]),
    "maximum": (lambda a, b: sg.maximum(a, b) * a, [((4,), distinct), ((4,), distinct)]),
    "minimum": (lambda a, b: sg.minimum(a, b) * b, [((4,), distinct), ((4,), distinct)]),
    "where": (lambda a, b: sg.where(a > 0, a * b, sg.exp(b)), [((4,), signed), ((4,), signed)]),
    "matmul": (lambda a, b: a @ b, [((2, 3), signed), ((3, 2), signed)]),
    "matmul_vec": (lambda a, b: a @ b, [((3,), signed), ((3, 2), signed)]),
    "matmul_batched": (lambda a, b: a @ b, [((2, 2, 3), signed), ((3, 2), signed)]),
    "transpose": (lambda a: sg.transpose(a) * a.T, [((2, 3), signed)]),
    "reshape": (lambda a: sg.reshape(a, (3, 2)) ** 2, [((2, 3), signed)]),
    "broadcast_to": (lambda a: sg.broadcast_to(a, (2, 3)) ** 2, [((3,), signed)]),
    "sum": (lambda a: sg.sum(a * a, axis=1), [((2, 3), signed)]),
    "sum_keepdims": (lambda a: sg.sum(a * a, axis=0, keepdims=True) * a, [((2, 3), signed)]),
    "mean": (lambda a: sg.mean(sg.sin(a), axis=(0, 2)), [((2, 3, 2), signed)]),
    "max": (lambda a: sg.max(a * a, axis=1), [((2, 3), distinct)]),
    "min": (lambda a: sg.min(a, axis=0) ** 2, [((3, 2), distinct)]),
    "getitem": (lambda a: a[1:, ::2] ** 2, [((3, 4), signed)]),
    "getitem_array": (lambda a: a[np.array([0, 2, 0])] ** 2, [((3, 2), signed)]),
    "concatenate": (
        lambda a, b: sg.concatenate([a * b, b], axis=0),
        [((2, 2), signed), ((1, 2), signed)],
    ),
    "softmax": (lambda a: sg.softmax(a, axis=-1), [((2, 3), signed)]),
    "log_softmax": (lambda a: sg.log_softmax(a, axis=0), [((3, 2), signed)]),
    "logsumexp": (lambda a: sg.logsumexp(a, axis=1), [((2, 3), signed)]),
    "cross_entropy": (lambda a: sg.cross_entropy(a, LABELS), [((3, 4), signed)]),
    "mse": (lambda a, b: sg.mse(sg.tanh(a), b), [((2, 3), signed), ((2, 3), signed)]),
    "maxout": (lambda a: sg.maxout(a, 2) ** 2, [((2, 4), distinct)]),
}


def build(name, seed=0):
    fn, specs = CASES[name]
    rng = np.random.default_rng(seed)
    g = sg.Graph()
    xs = [g.input(f"x{i}", shape) for i, (shape, _) in enumerate(specs)]
    point = {x: sampler(x.shape, rng) for x, (_, sampler) in zip(xs, specs)}
    return g, xs, fn(*xs), point, rng


def shifted(point, direction, scale):
    return {x: v + scale * direction[x] for x, v in point.items()}


def fd(out, point, direction):
    hi = sg.evaluate(out, shifted(point, direction, EPS))
    lo = sg.evaluate(out, shifted(point, direction, -EPS))
    if isinstance(hi, list):
        return [(a - b) / (2 * EPS) for a, b in zip(hi, lo)]
    return (hi - lo) / (2 * EPS)


def close(a, b, tol=1e-6):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", CASES)
def test_jvp(name):
    g, xs, out, point, rng = build(name)
    t = {x: rng.standard_normal(x.shape) for x in xs}
    close(sg.evaluate(sg.jvp(out, xs, [t[x] for x in xs]), point), fd(out, point, t))


@pytest.mark.parametrize("name", CASES)
def test_vjp(name):
    g, xs, out, point, rng = build(name)
    u = rng.standard_normal(out.shape)
    t = {x: rng.standard_normal(x.shape) for x in xs}
    cot = sg.evaluate(sg.vjp(out, xs, u), point)
    close(sum(np.sum(c * t[x]) for c, x in zip(cot, xs)), np.sum(u * fd(out, point, t)))


def scalarized(name, seed=0):
    g, xs, out, point, rng = build(name, seed)
    f = sg.sum(out * g.constant(rng.standard_normal(out.shape))) if out.ndim else out
    return g, xs, f, point, rng


@pytest.mark.parametrize("mode", ["fwd-rev", "rev-rev"])
@pytest.mark.parametrize("name", CASES)
def test_hvp(name, mode):
    g, xs, f, point, rng = scalarized(name)
    v = {x: rng.standard_normal(x.shape) for x in xs}
    hv = sg.evaluate(sg.hvp(f, xs, [g.constant(v[x]) for x in xs], mode=mode), point)
    numeric = fd(sg.grad(f, xs), point, v)
    for a, b in zip(hv, numeric):
        close(a, b)


@pytest.mark.parametrize("name", CASES)
def test_hessian_and_jacobian(name):
    g, xs, f, point, rng = scalarized(name)
    x = xs[0]
    H = sg.evaluate(sg.hessian(f, x), point)
    n = int(np.prod(x.shape))
    H2 = H.reshape(n, n)
    np.testing.assert_allclose(H2, H2.T, atol=1e-12, rtol=0)
    dx = sg.grad(f, x)
    for i in range(n):
        e = np.zeros(n)
        e[i] = 1.0
        direction = {y: np.zeros(y.shape) for y in xs}
        direction[x] = e.reshape(x.shape)
        close(H2[i], fd(dx, point, direction).reshape(-1))
    g2, xs2, out, point2, _ = build(name)
    J = sg.evaluate(sg.jacobian(out, xs2[0]), point2)
    assert J.shape == out.shape + xs2[0].shape
    for i in range(n):
        direction = {y: np.zeros(y.shape) for y in xs2}
        direction[xs2[0]] = np.eye(n)[i].reshape(xs2[0].shape)
        column = J.reshape(out.shape + (n,))[..., i]
        close(column, fd(out, point2, direction))


# ---- exact derivatives of scalar graphs, SymPy as the oracle ------------------------------
def scalar_cases():
    return list(CASES)


@pytest.mark.parametrize("name", scalar_cases())
def test_third_order_against_sympy(name):
    g, xs, f, point, rng = scalarized(name, seed=3)
    exact = to_sympy(f).item()
    symbols = {x: input_symbols(x) for x in xs}
    subs = {s: float(v) for x in xs for s, v in zip(symbols[x].ravel(), point[x].ravel())}
    # a mixed third derivative d3 f / (da db dc) over three chosen input elements
    flat = [(x, i) for x in xs for i in range(int(np.prod(x.shape)))]
    picks = [flat[int(k)] for k in rng.integers(0, len(flat), 3)]
    d = f
    expr = exact
    for x, i in picks:
        d = sg.grad(d, x).reshape(-1)[i] if x.ndim else sg.grad(d, x)
        expr = sp.diff(expr, symbols[x].ravel()[i])
    np.testing.assert_allclose(sg.evaluate(d, point), float(expr.subs(subs)), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", CASES)
def test_reverse_jacobian_matches_forward(name):
    """Batched cotangents (one VJP graph) give the same Jacobian as batched tangents."""
    g, xs, out, point, _ = build(name)
    for x in xs:
        fwd, rev = sg.evaluate(
            [sg.jacobian(out, x, mode="fwd"), sg.jacobian(out, x, mode="rev")], point
        )
        np.testing.assert_allclose(rev, fwd, rtol=1e-12, atol=1e-12)


def test_jacobian_auto_mode_picks_the_smaller_side():
    g = sg.Graph()
    x = g.input("x", (50,))
    wide = sg.jacobian(sg.sum(sg.tanh(x)).reshape((1,)), x)  # 1 output, 50 inputs: reverse
    tall = sg.jacobian(sg.tanh(sg.concatenate([x, x])), x)  # 100 outputs, 50 inputs: forward
    xv = np.linspace(-1, 1, 50)
    w, t = sg.evaluate([wide, tall], {x: xv})
    np.testing.assert_allclose(w[0], 1 - np.tanh(xv) ** 2, rtol=1e-13)
    np.testing.assert_allclose(t, np.vstack([np.diag(1 - np.tanh(xv) ** 2)] * 2), rtol=1e-13)
    # hash-consing returns the very nodes auto built when the same mode is asked for
    assert sg.jacobian(sg.sum(sg.tanh(x)).reshape((1,)), x, mode="rev").node == wide.node
    assert sg.jacobian(sg.tanh(sg.concatenate([x, x])), x, mode="fwd").node == tall.node


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_reverse_jacobian_through_concatenate(axis):
    # each part's share of the cotangent is cut at the part's size along the axis, which
    # sits behind the cotangent's batch axes
    g = sg.Graph()
    x = g.input("x", (2, 3))
    y = sg.concatenate([x, sg.tanh(x) * 2.0, x[:1] * 3.0 if axis == 0 else x[:, :1]], axis=axis)
    xv = np.random.default_rng(4).standard_normal((2, 3))
    fwd, rev = sg.evaluate([sg.jacobian(y, x, mode="fwd"), sg.jacobian(y, x, mode="rev")], {x: xv})
    np.testing.assert_allclose(rev, fwd, rtol=1e-13, atol=1e-15)
    eye = np.eye(6).reshape(6, 2, 3)  # by hand: d y / d x[i] stacks the parts' derivatives
    parts = [eye, 2 * (1 - np.tanh(xv) ** 2) * eye, 3 * eye[:, :1] if axis == 0 else eye[:, :, :1]]
    want = np.moveaxis(np.concatenate(parts, axis=1 + axis % 2), 0, -1).reshape(fwd.shape)
    np.testing.assert_allclose(fwd, want, rtol=1e-13)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_derivatives_of_whole_powers_past_their_degree_are_zero_at_zero(k):
    # d^(k+1)/dx^(k+1) x**k is 0; written k (k-1) ... (k-k) x**(-1) it was 0 * inf = nan at 0
    g = sg.Graph()
    x, y = g.input("x", ()), g.input("y", (2,))
    d = x**k
    for _ in range(k + 1):
        d = sg.grad(d, x)
    zero = np.float64(0.0)
    assert sg.evaluate(d, {x: zero}) == 0.0 and sg.compile(d, [x])(zero) == 0.0
    t = x**k
    for _ in range(k + 1):
        t = sg.jvp(t, x, 1.0)
    assert sg.evaluate(t, {x: zero}) == 0.0
    T = sg.jacobian(sg.hessian(sg.sum(y**2), y), y)
    np.testing.assert_array_equal(sg.compile(T, [y])(np.array([0.0, 1.0])), np.zeros((2, 2, 2)))
    # a fractional power keeps its value: d^3/dx^3 x**2.5 = 2.5 * 1.5 * 0.5 x**-0.5
    f = x**2.5
    for _ in range(3):
        f = sg.grad(f, x)
    assert sg.evaluate(f, {x: np.float64(2.0)}) == pytest.approx(2.5 * 1.5 * 0.5 / np.sqrt(2.0))


def test_a_fourth_derivative_through_a_user_op_compiles_to_sympys_value():
    # its kernels share subexpressions many times over: SymPy's tree walks (count_ops,
    # Basic.count) visited every use and took a minute; the walks are over distinct parts
    u2 = sg.elementwise("u2_fourth", lambda a, b: sp.sin(a) * b + a**2 / (1 + b**2))
    g = sg.Graph()
    x = g.input("x", ())
    d = sg.sqrt(sg.sigmoid(u2(x, x * sg.square(x))) + 0.1)
    for _ in range(4):
        d = sg.grad(d, x)
    t = sp.Symbol("t", real=True)
    b = t**3
    exact = sp.diff(sp.sqrt(1 / (1 + sp.exp(-(sp.sin(t) * b + t**2 / (1 + b**2)))) + 0.1), t, 4)
    want = float(exact.subs(t, sp.Rational(7, 10)).evalf(30))
    assert sg.compile(d, [x])(np.float64(0.7)) == pytest.approx(want, rel=1e-10)
    assert sg.evaluate(d, {x: np.float64(0.7)}) == pytest.approx(want, rel=1e-10)


def test_second_derivatives_through_abs_of_a_quotient():
    # SymPy leaves d sign(a / b) / db unevaluated (a / b may be zoo): it is 0 almost everywhere
    g = sg.Graph()
    x, y, v = (g.input(n, (3,)) for n in "xyv")
    a = sg.abs(y / x)
    f = sg.sum(sg.exp(a) / (1.0 + sg.exp(a)))
    xv, yv, vv = np.array([1.0, -2.0, 3.0]), np.array([0.5, 1.0, -2.0]), np.array([1.0, 2.0, -1.0])
    feed = {x: xv, y: yv, v: vv}
    grad_fn = sg.compile(sg.grad(f, x), [x, y])
    eps = 1e-6
    want = (grad_fn(xv + eps * vv, yv) - grad_fn(xv - eps * vv, yv)) / (2 * eps)
    for mode in ("fwd-rev", "rev-rev"):
        h = sg.hvp(f, x, v, mode=mode)
        np.testing.assert_allclose(sg.compile(h, [x, y, v])(xv, yv, vv), want, rtol=1e-6)
        np.testing.assert_allclose(sg.evaluate(h, feed), want, rtol=1e-6)
