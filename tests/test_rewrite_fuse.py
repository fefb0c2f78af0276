"""Elementwise fusion: SymPy kernels, their size and exactness, the boundaries they keep, and
user-defined elementwise ops differentiated to any order by SymPy alone."""

import itertools
import re
import time

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.autodiff.sweep import ancestors
from symgrad.ops.elementwise import derivative
from symgrad.rewrite import optimize

RNG = np.random.default_rng(0)
_NAMES = itertools.count()


def kernels(fn) -> list[dict]:
    return [d for d in fn._prog.graph.nx.nodes.values() if d["op"] == "expr"]


@pytest.mark.parametrize("k", range(1, 9))
def test_kth_derivative_of_tanh_is_one_kernel(k):
    t0 = time.perf_counter()
    g = sg.Graph()
    x = g.input("x", ())
    y = sg.tanh(x)
    for _ in range(k):
        y = sg.grad(y, x)
    fn = sg.compile(y, [x])
    xv = np.array(0.3)
    got = fn(xv)
    elapsed = time.perf_counter() - t0
    assert len(fn._prog.graph) <= 4 < len(ancestors(g, [y.node])) or k == 1
    assert fn.rewrite_log["fuse_elementwise"] == 1
    np.testing.assert_allclose(got, sg.evaluate(y, {x: xv}), rtol=1e-12)
    t = sp.Symbol("t")
    exact = sp.diff(sp.tanh(t), t, k).subs(t, 0.3)
    np.testing.assert_allclose(got, float(exact), rtol=1e-12)
    assert elapsed < 5.0  # about 0.1 s at k = 8; generous for a loaded machine


def test_the_eighth_derivative_is_a_factored_polynomial_in_tanh():
    g = sg.Graph()
    x = g.input("x", (5,))
    y = sg.tanh(x)
    for _ in range(8):
        y = sg.grad(sg.sum(y), x)
    fn = sg.compile(y, [x])
    (kernel,) = kernels(fn)
    assert sp.count_ops(kernel["attrs"]["expr"]) < 30
    assert fn.source.count("np.tanh(") == 1
    xv = np.linspace(-3, 3, 5)
    t = sp.Symbol("t")
    d8 = sp.lambdify(t, sp.diff(sp.tanh(t), t, 8))
    np.testing.assert_allclose(fn(xv), d8(xv), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_kernels_compute_exactly_what_the_nodes_computed(dtype):
    g = sg.Graph()
    x = g.input("x", ("batch", 6), dtype)
    W = g.variable("W", RNG.standard_normal((6, 6)).astype(dtype))
    b = g.variable("b", RNG.standard_normal(6).astype(dtype))
    h = sg.tanh(x @ W + b) * 0.5 + sg.sigmoid(x) / (1.0 + x * x)
    loss = sg.sum(sg.softplus(h) - h * 0.25)
    outs = [h, loss, *sg.grad(loss, [x, W, b])]
    xv = RNG.standard_normal((7, 6)).astype(dtype)
    fused = sg.compile(outs, [x])
    unfused = sg.compile(outs, [x], rewrites={"exclude": ["fuse_elementwise"]})
    assert fused.rewrite_log["fuse_elementwise"] >= 2
    assert len(fused._prog.graph) < len(unfused._prog.graph)
    for a, b_, t in zip(fused(xv), unfused(xv), outs):
        assert a.dtype == b_.dtype == np.dtype(t.dtype)
        np.testing.assert_array_equal(a, b_)  # same arithmetic, same rounding


def test_fusion_keeps_matmuls_and_reductions_and_never_recomputes():
    g = sg.Graph()
    x = g.input("x", (4, 5))
    W = g.input("W", (5, 5))
    h = sg.tanh(x * 2.0 + 1.0)  # read by the matmul and by the elementwise tail
    z = h @ W
    out = sg.exp(z) * h + sg.sum(h * h, axis=1, keepdims=True)
    fn = sg.compile(out, [x, W])
    src = fn.source
    assert src.count("np.tanh(") == 1 and src.count("np.exp(") == 1
    ops = sorted(d["op"] for d in fn._prog.graph.nx.nodes.values())
    assert ops == ["expr", "expr", "input", "input", "matmul", "mul", "sum"]
    xv, Wv = RNG.standard_normal((4, 5)), RNG.standard_normal((5, 5))
    np.testing.assert_allclose(fn(xv, Wv), sg.evaluate(out, {x: xv, W: Wv}), rtol=1e-13)


def test_values_of_constants_alone_stay_out_of_kernels_and_are_computed_once():
    # B + C is too big to fold while rewriting (5,000 elements): kept apart from the kernel
    # reading x, a compiled kernel computes it once, when specialized to the shapes
    g = sg.Graph()
    x = g.input("x", (50, 100))
    B, C = (g.constant(RNG.standard_normal((50, 100))) for _ in range(2))
    out = sg.tanh((sg.exp(B) + C) * x)
    fn = sg.compile(out, [x])
    xv = RNG.standard_normal((50, 100))
    np.testing.assert_allclose(fn(xv), sg.evaluate(out, {x: xv}), rtol=1e-13)
    assert "computed once for these shapes" in fn.source
    assert "np.exp(" not in fn.source
    assert len(kernels(fn)) == 2  # exp(B) + C fused on its own, apart from the x kernel


def test_shared_subexpressions_are_computed_once():
    g = sg.Graph()
    x = g.input("x", (3,))
    e = sg.exp(x * x)
    y = sg.sin(e) * sg.cos(e) + e
    fn = sg.compile(y, [x])
    (kernel,) = kernels(fn)
    assert fn.source.count("np.exp(") == 1
    temps = re.findall(r"^\s+(t\d+) = ", fn.source, re.M)
    assert temps and all(fn.source.count(t) >= 2 for t in temps)
    xv = RNG.standard_normal(3)
    np.testing.assert_allclose(fn(xv), sg.evaluate(y, {x: xv}), rtol=1e-14)


def test_a_long_chain_becomes_bounded_kernels_without_recursion_errors():
    g = sg.Graph()
    x = g.input("x", (3,))
    h = x
    for i in range(2000):
        h = sg.sin(h) * 0.5 + 0.25 if i % 2 else sg.tanh(h) - 0.125
    fn = sg.compile(h, [x])
    assert 10 < len(fn._prog.graph) < 200
    xv = RNG.standard_normal(3)
    np.testing.assert_allclose(fn(xv), sg.evaluate(h, {x: xv}), rtol=1e-12)


def test_a_fused_kernel_is_differentiated_by_sympy():
    g = sg.Graph()
    x = g.input("x", (4,))
    y = sg.tanh(sg.sin(x) * x + 1.0)
    out = optimize(g, [y.node, x.node])
    H = out.graph
    kernel = H.tensor(out.mapping[y.node])
    assert kernel.op == "expr" and len(kernel.args) == 1
    derivative.cache_clear()
    dk = sg.grad(sg.sum(kernel), H.tensor(out.mapping[x.node]))
    sg.grad(sg.sum(kernel), H.tensor(out.mapping[x.node]))
    info = derivative.cache_info()
    assert info.misses == 1 and info.hits >= 1  # one sympy.diff, then the cache
    xv = RNG.standard_normal(4)
    want = sg.evaluate(sg.grad(sg.sum(y), x), {x: xv})
    np.testing.assert_allclose(sg.evaluate(dk, {H.tensor(out.mapping[x.node]): xv}), want)


# ---- user-defined elementwise ops: every derivative order from SymPy ---------------------------
def user_ops():
    """A SiLU (swish) and a Gaussian bump, defined only by their SymPy expressions."""
    n = next(_NAMES)
    silu = sg.elementwise(f"silu_{n}", lambda x: x / (1 + sp.exp(-x)))
    gauss = sg.elementwise(f"gauss_{n}", lambda x, mu, s: sp.exp(-((x - mu) ** 2) / (2 * s**2)))
    return silu, gauss


def test_user_defined_ops_get_every_derivative_order():
    silu, gauss = user_ops()
    g = sg.Graph()
    x = g.input("x", (5,))
    mu = g.input("mu", (5,))
    ys = {"silu": silu(x), "gauss": gauss(x, mu, 0.7)}
    t, m = sp.symbols("t m", real=True)
    exact = {"silu": t / (1 + sp.exp(-t)), "gauss": sp.exp(-((t - m) ** 2) / (2 * 0.7**2))}
    xv, mv = RNG.standard_normal(5), RNG.standard_normal(5)
    for name, y in ys.items():
        d = y
        for order in range(1, 5):
            d = sg.grad(sg.sum(d), x)
            fn = sg.compile(d, [x, mu])
            want = sp.lambdify((t, m), sp.diff(exact[name], t, order))(xv, mv)
            np.testing.assert_allclose(fn(xv, mv), want, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(
                fn(xv, mv), sg.evaluate(d, {x: xv, mu: mv}), rtol=1e-12, atol=1e-14
            )
            assert len(fn._prog.graph) <= 4  # x, mu and one kernel (or a constant)
    sg.check_grads(sg.sum(ys["silu"] * ys["gauss"]), {x: xv, mu: mv}, order=3)


def test_user_defined_ops_fuse_with_the_rest_and_keep_float32():
    silu, gauss = user_ops()
    g = sg.Graph()
    x = g.input("x", (2, 3), "float32")
    y = gauss(silu(x) * 2.0, 0.5, 1.5)
    dx = sg.grad(sg.sum(y), x)
    fn = sg.compile([y, dx], [x])
    assert fn.rewrite_log["fuse_elementwise"] >= 1
    xv = RNG.standard_normal((2, 3)).astype(np.float32)
    for a, b in zip(fn(xv), sg.evaluate([y, dx], {x: xv})):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_inlined_integer_exponents_fold_exactly():
    # the derivative k * x**(k - 1) is built before k is inlined: (3 - 1) and x**1 fold
    g = sg.Graph()
    x = g.input("x", (4, 5))
    loss = sg.sum(sg.tanh(x) ** 2) + sg.sum(x**3) + sg.sum(sg.exp(x) ** 1.5)
    (gx,) = sg.grad(loss, [x])
    fn = sg.compile([loss, gx], [x])
    xv = np.random.default_rng(5).standard_normal((4, 5))
    got = fn(xv)
    t = np.tanh(xv)
    np.testing.assert_allclose(got[0], np.sum(t**2) + np.sum(xv**3) + np.sum(np.exp(1.5 * xv)))
    want = 2 * t * (1 - t**2) + 3 * xv**2 + 1.5 * np.exp(xv) ** 0.5 * np.exp(xv)
    np.testing.assert_allclose(got[1], want, rtol=1e-13)
    for a, b in zip(got, sg.evaluate([loss, gx], {x: xv})):
        np.testing.assert_array_equal(a, b)  # the same arithmetic, to the last bit
    # (1.5 - 1) stays: Python computes it as the source says, where folding it could round
    assert "(3 - 1)" not in fn.source and "(2 - 1)" not in fn.source and "(1.5 - 1)" in fn.source
    assert "** 1)" not in fn.source and "np.square(" in fn.source


@pytest.mark.parametrize(
    "make",
    [
        lambda x, b: sg.relu(sg.relu(x)),
        lambda x, b: sg.relu(sg.relu(x) * 2.0 - 0.1),
        lambda x, b: sg.relu(sg.leaky_relu(x + b)),
        lambda x, b: sg.abs(sg.relu(x) - 0.5) * sg.tanh(x),
        lambda x, b: sg.relu(sg.relu(x / (1.0 + x * x))),
        lambda x, b: sg.relu(sg.relu(1.0 / (x * x + 1.0))),
        lambda x, b: sg.leaky_relu(sg.relu(sg.log(x * x + 0.25)), 0.1),
        lambda x, b: sg.minimum(sg.relu(1.0 / (x * x + 1.0)), x),
    ],
    ids=["relu relu", "relu of a scaled relu", "relu leaky", "abs relu", "relu relu ratio"]
    + ["relu relu reciprocal", "leaky relu log", "minimum relu"],
)
def test_piecewise_values_in_conditions_are_not_fused(make):
    # a relu inside another's condition: SymPy would rewrite it to an if-then-else no kernel
    # computes (or fail rewriting it), so the two stay separate kernels, and the rewrites that
    # read several nodes as one expression do not open them together
    g = sg.Graph()
    x, b, v = g.input("x", (4, 3)), g.input("b", (3,)), g.input("v", (4, 3))
    y = make(x, b)
    loss = sg.sum(y * y)
    hvps = [sg.hvp(loss, [x], [v], mode=mode)[0] for mode in ("fwd-rev", "rev-rev")]
    outs = [y, sg.grad(loss, x), *hvps, sg.jvp(y, x, v)]
    rng = np.random.default_rng(7)
    xv, bv, vv = rng.standard_normal((4, 3)), rng.standard_normal(3), rng.standard_normal((4, 3))
    got = sg.compile(outs, [x, b, v])(xv, bv, vv)
    want = sg.evaluate(outs, {x: xv, b: bv, v: vv})
    for a, w in zip(got, want):
        np.testing.assert_allclose(a, w, rtol=1e-12, atol=1e-14)


def test_a_fusion_that_merges_a_later_groups_member_leaves_that_group_alone():
    # fusing one group made a node of another group equal to an existing node, which the
    # merge deleted: fusing that other group then read a node that was gone (KeyError)
    g = sg.Graph()
    t, v, u = g.input("t", (3, 4)), g.input("v", (3, 4)), g.input("u", (3, 4))
    e = sg.exp(t - sg.max(t, axis=-1, keepdims=True))
    s = e / sg.sum(e, axis=-1, keepdims=True)
    out = sg.jvp(sg.log(1.0 - sg.sigmoid(u)) / s * s, t, v)
    fn = sg.compile([out], [t, v, u])
    rng = np.random.default_rng(0)
    values = [rng.standard_normal((3, 4)) for _ in range(3)]
    want = sg.evaluate([out], dict(zip([t, v, u], values)))[0]
    np.testing.assert_allclose(fn(*values)[0], want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("build", [lambda x: -sg.mean(x), lambda x: -sg.mean(sg.exp(x))])
def test_a_group_of_numbers_alone_fuses_into_a_filled_value_without_folding(build):
    # with folding off, the seed -1/n of a mean's gradient is a group of constants only: its
    # fused expression, -1 * 3**-1 put together unevaluated, has no argument to read
    g = sg.Graph()
    x = g.input("x", (3,))
    dx = sg.grad(build(x), x)
    xv = np.array([0.0, 1.0, 2.0])
    fn = sg.compile(dx, [x], rewrites={"exclude": ["fold_constant", "fold_uniform"]})
    np.testing.assert_allclose(fn(xv), sg.evaluate([dx], {x: xv})[0], rtol=1e-15)
    y = x * (1.0 / (g.constant(0.0) * 2.0))  # SymPy's 1/0 is complex infinity: not fused
    fn = sg.compile(y, [x], rewrites={"exclude": ["fold_constant", "fold_uniform"]})
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(fn(xv), [np.nan, np.inf, np.inf])


def test_a_fused_kernel_subtracting_a_sum_keeps_its_terms():
    # -(e - t) is written as -e + t without SymPy evaluating it: evaluated, it flattened and
    # cancelled the kernel's sums, giving a bare 0 (a 0-d output, a matmul that failed on it)
    # and other roundings than the graph's
    g = sg.Graph()
    a, b, c, d, e, h = (g.input(n, (2, 3)) for n in "abcdeh")
    t = a * b + c * d
    y = (-e + t) + (e - t)
    y = y + y
    z = ((-e + t) + (h - t)) * 2.0
    C = g.constant(np.eye(3))
    outs = [y, y @ C, z]
    vals = [np.ones((2, 3)) for _ in range(6)]
    vals[0][0, :] = [1e16, 3.0, 1e-3]
    vals[4][0, 0], vals[4][1, :] = np.inf, [0.1, 0.2, 1e-17]
    vals[5][1, :] = [0.7, 0.9, 2e-17]
    feed = dict(zip([a, b, c, d, e, h], vals))
    for out in outs:  # each compiled alone, as its own kernel
        with np.errstate(invalid="ignore"):
            got = sg.compile(out, [a, b, c, d, e, h])(*vals)
            want = sg.evaluate(out, feed)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)  # the same operations in the same order


def test_a_tangent_that_cancels_to_zero_feeds_a_matmul():
    g = sg.Graph()
    x, v = g.input("x", ("batch", 3)), g.input("v", ("batch", 3))
    z = x @ g.constant(np.arange(9.0).reshape(3, 3) / 10)
    loss = sg.mean(sg.softmax((z + z) - (z + z), axis=1) ** 2)
    (hv,) = sg.hvp(loss, [x], [v])
    fn = sg.compile(hv, [x, v])
    for n in (2, 5):
        xv, vv = np.ones((n, 3)), np.ones((n, 3))
        np.testing.assert_array_equal(fn(xv, vv), sg.evaluate(hv, {x: xv, v: vv}))


@pytest.mark.parametrize(
    "build",
    [
        lambda x, z: -1 / (x * z),
        lambda x, z: -1 / (x * sg.relu(z - 3)),
        lambda x, z: -1 / sg.square(sg.log(x) * sg.sigmoid(z)),
        lambda x, z: -1 / sg.square(sg.relu(x)),  # 1 / 0 moved into the relu's zero piece
    ],
)
def test_negated_reciprocals_in_fused_kernels(build):
    # -1 / d is written -(1 / d) without SymPy moving the 1 / d into d (it failed to compile)
    g = sg.Graph()
    x, z = g.input("x", (3,)), g.input("z", (3,))
    y = build(x, z)
    xv, zv = np.array([0.5, 2.0, -1.0]), np.array([4.0, 1.0, 3.0])
    with np.errstate(all="ignore"):
        got = sg.compile(y, [x, z])(xv, zv)
        want = sg.evaluate(y, {x: xv, z: zv})
    np.testing.assert_allclose(got, want, rtol=1e-15)


def test_integer_negations_are_not_moved_past_a_promotion():
    # -u of a uint8 wraps around (-1 is 255) before it meets the float: x + (-u) is not x - u
    g = sg.Graph()
    x, u = g.input("x", (3,)), g.input("u", (3,), "uint8")
    outs = [x + (-u), x - (-u), (-u) * x, x / (-u)]
    xv, uv = np.array([0.5, 1.5, -2.0]), np.array([1, 2, 0], np.uint8)
    with np.errstate(all="ignore"):
        got = sg.compile(outs, [x, u])(xv, uv)
        want = [xv + (-uv), xv - (-uv), (-uv) * xv, xv / (-uv)]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_the_mean_of_integers_sums_in_floats():
    g = sg.Graph()
    i = g.input("i", (3,), "int64")
    iv = np.array([2**62, 2**62, 5])
    got = sg.compile(sg.mean(i), [i])(iv)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, np.mean(iv), rtol=1e-15)


@pytest.mark.parametrize(
    "dtype, build, values",
    [
        ("uint8", lambda u: sg.sqrt(u * 2.0), [200, 16, 255]),
        ("uint8", lambda u: sg.tanh(u + 1.0) * 3.0, [255, 0, 7]),
        ("int32", lambda u: sg.sqrt(u * 1e6), [3000, 1, 7]),
        ("float16", lambda u: sg.log(u * u.graph.constant(np.float64(1e300))), [2.0, 3.0, 0.5]),
    ],
)
def test_a_constant_beside_a_narrower_argument_promotes_first(dtype, build, values):
    # a Python number beside a uint8 array is computed in uint8 by NumPy: such a constant
    # stays an array of the op's dtype, which promotes the narrower argument first
    g = sg.Graph()
    u = g.input("u", (3,), dtype)
    y = build(u)
    uv = np.array(values, dtype)
    got = sg.compile(y, [u])(uv)
    want = sg.evaluate(y, {u: uv})
    assert got.dtype == want.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-15)
