"""Stabilizing rewrites at extreme inputs (+-1000, 1e-300): the rewritten graph gives finite
values and finite gradients, equal to the stable formulas, where the graph as written gives
inf or nan."""

import re

import numpy as np
import pytest

import symgrad as sg
from symgrad.autodiff import stable
from symgrad.autodiff.sweep import ancestors
from symgrad.ops import OPS
from symgrad.ops.elementwise import expression
from symgrad.rewrite.fuse import denominators


def sigmoid(x):
    return np.exp(-np.logaddexp(0, -x))


def log_softmax(x):
    return x - np.logaddexp.reduce(x, axis=-1, keepdims=True)


# name -> (f(x) built from graph ops, x, stable f(x), stable d sum(w * f) / dx given w)
CASES = {
    "log_softmax": (
        lambda x: sg.log(sg.softmax(x)),
        np.array([[1000.0, -1000.0, 0.0], [1e-300, 3.0, -2.0]]),
        log_softmax,
        lambda x, w: w - np.exp(log_softmax(x)) * w.sum(-1, keepdims=True),
    ),
    "logsumexp": (
        lambda x: sg.log(sg.sum(sg.exp(x), axis=-1)),
        np.array([[1000.0, 999.0, -1000.0], [-1000.0, -1001.0, 1e-300]]),
        lambda x: np.logaddexp.reduce(x, axis=-1),
        lambda x, w: w[:, None] * np.exp(log_softmax(x)),
    ),
    "softplus": (
        lambda x: sg.log(1.0 + sg.exp(x)),
        np.array([1000.0, -1000.0, 1e-300, 2.5]),
        lambda x: np.logaddexp(0, x),
        lambda x, w: w * sigmoid(x),
    ),
    "log_sigmoid": (
        lambda x: sg.log(sg.sigmoid(x)),
        np.array([1000.0, -1000.0, 1e-300, 2.5]),
        lambda x: -np.logaddexp(0, -x),
        lambda x, w: w * sigmoid(-x),
    ),
    "log1m_sigmoid": (
        lambda x: sg.log(1.0 - sg.sigmoid(x)),
        np.array([1000.0, -1000.0, 1e-300, 2.5]),
        lambda x: -np.logaddexp(0, x),
        lambda x, w: -w * sigmoid(x),
    ),
    "log_exp": (
        lambda x: sg.log(sg.exp(x)),
        np.array([1000.0, -1000.0, 1e-300]),
        lambda x: x,
        lambda x, w: w,
    ),
    "logaddexp": (
        lambda x: sg.log(sg.exp(x) + sg.exp(x * 0.5)),
        np.array([1000.0, -1000.0, 1e-300, 2.5]),
        lambda x: np.logaddexp(x, x / 2),
        lambda x, w: w * (sigmoid(x / 2) + sigmoid(-x / 2) / 2),
    ),
    "logsumexp_mean": (
        lambda x: sg.log(sg.mean(sg.exp(x), axis=-1)),
        np.array([[1000.0, 999.0, -1000.0], [30.0, -3.0, 400.0]]),
        lambda x: np.logaddexp.reduce(x, axis=-1) - np.log(3.0),
        lambda x, w: w[:, None] * np.exp(log_softmax(x)),
    ),
    "log_scaled": (
        lambda x: sg.log(sg.softmax(x) * 2.0),
        np.array([[1000.0, -1000.0, 0.0], [1e-300, 3.0, -2.0]]),
        lambda x: np.log(2.0) + log_softmax(x),
        lambda x, w: w - np.exp(log_softmax(x)) * w.sum(-1, keepdims=True),
    ),
    "exp_log": (
        lambda x: sg.exp(sg.log(x * x)),
        np.array([1e-300, -1e-300, 3.0]),
        lambda x: x * x,
        lambda x, w: 2 * w * x,
    ),
    "sigmoid": (
        lambda x: sg.exp(x) / (1.0 + sg.exp(x)),
        np.array([1000.0, -1000.0, 1e-300, 2.5]),
        sigmoid,
        lambda x, w: w * sigmoid(x) * sigmoid(-x),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_stabilized_values_and_gradients_are_finite(name, monkeypatch):
    build, xv, value, gradient = CASES[name]
    name = name.split("_mean")[0]  # the rule's name
    g = sg.Graph()
    x = g.input("x", xv.shape)
    y = build(x)
    w = np.random.default_rng(1).uniform(0.5, 1.5, y.shape)
    dx = sg.grad(sg.sum(y * w), x)
    fn = sg.compile([y, dx], [x])
    got_y, got_dx = fn(xv)
    assert fn.rewrite_log.get(name, 0) >= 1, fn.rewrite_log
    assert np.all(np.isfinite(got_y)) and np.all(np.isfinite(got_dx))
    np.testing.assert_allclose(got_y, value(xv), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(got_dx, gradient(xv, w), rtol=1e-12, atol=1e-300)
    # differentiated as written and compiled without rewrites, the same function is not finite
    with monkeypatch.context() as m:
        m.setattr(stable, "ENABLED", False)
        dx_as_written = sg.grad(sg.sum(y * w), x)
    with np.errstate(all="ignore"):
        plain_y, plain_dx = sg.compile([y, dx_as_written], [x], rewrites=False)(xv)
    assert not (np.all(np.isfinite(plain_y)) and np.all(np.isfinite(plain_dx)))


def test_softmax_cross_entropy_is_fused_with_its_simple_gradient():
    g = sg.Graph()
    z = g.input("z", ("batch", 3))
    labels = g.input("labels", ("batch",), "int64")
    loss = sg.mean(-sg.sum(sg.one_hot(labels, 3) * sg.log(sg.softmax(z)), axis=-1))
    dz = sg.grad(loss, z)
    zv = np.array([[1000.0, -1000.0, 0.0], [0.0, 1000.0, -1000.0], [1e-300, 2.0, -1.0]])
    yv = np.array([1, 0, 2])
    fn = sg.compile([loss, dz], [z, labels])
    got_loss, got_dz = fn(zv, yv)
    assert fn.rewrite_log["softmax_cross_entropy"] == 1
    assert "rt.cross_entropy" in fn.source  # the fused op (possibly from a shared logsumexp)
    want_dz = (np.exp(log_softmax(zv)) - np.eye(3)[yv]) / 3
    np.testing.assert_allclose(got_loss, -log_softmax(zv)[np.arange(3), yv].mean(), rtol=1e-12)
    np.testing.assert_allclose(got_dz, want_dz, rtol=1e-12, atol=1e-300)
    with np.errstate(all="ignore"):
        plain = sg.compile([loss, dz], [z, labels], rewrites=False)(zv, yv)
    assert not all(np.all(np.isfinite(v)) for v in plain)
    # on ordinary inputs the two agree with the reference evaluator
    zv = np.random.default_rng(2).standard_normal((5, 3))
    yv = np.array([0, 1, 2, 1, 0])
    want = sg.evaluate([loss, dz], {z: zv, labels: yv})
    for a, b in zip(fn(zv, yv), want):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_softmax_written_by_hand_becomes_the_stable_op():
    g = sg.Graph()
    x = g.input("x", (2, 3))
    e = sg.exp(x)
    p = e / sg.sum(e, axis=-1, keepdims=True)
    fn = sg.compile(p, [x])
    xv = np.array([[1000.0, -1000.0, 0.0], [1e-300, 3.0, -2.0]])
    np.testing.assert_allclose(fn(xv), np.exp(log_softmax(xv)), rtol=1e-12)
    assert fn.rewrite_log["softmax"] == 1 and "rt.softmax(" in fn.source


def test_exp_log_stays_where_log_may_be_nan():
    g = sg.Graph()
    x = g.input("x", (3,))
    fn = sg.compile(sg.exp(sg.log(x)), [x])
    assert "exp_log" not in fn.rewrite_log  # x may be negative: log(x) is nan there
    with np.errstate(invalid="ignore"):
        assert np.isnan(fn(np.array([-1.0, 1.0, 2.0]))[0])


def test_softmax_into_kept_arrays_across_batch_sizes():
    # a short class axis: the softmax works class-first in an array the kernel keeps, then
    # writes its buffer; fewer than 256 entries work along the rows
    g = sg.Graph()
    x, w = g.input("x", ("n", 10)), g.input("w", ("n", 10))
    p = sg.softmax(x)
    outs = [sg.sum(p * w, -1), sg.sum(p * p, -1)]
    fn = sg.compile(outs, [x, w])
    rng = np.random.default_rng(3)
    for n in (64, 8, 64, 30):
        xv, wv = rng.standard_normal((2, n, 10)) * 300  # logits far past exp's range
        xv[0, :] = 1000.0  # a row of equal huge logits
        want_p = np.exp(log_softmax(xv))
        got = fn(xv, wv)
        np.testing.assert_allclose(got[0], (want_p * wv).sum(-1), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got[1], (want_p * want_p).sum(-1), rtol=1e-12)
        if n == 64:
            assert re.search(r"rt\.softmax\(a0, \(1,\), s\d+, m\d+\)", fn.source), fn.source
        assert np.isfinite(got[0]).all() and got[1][0] == pytest.approx(0.1)


def test_binary_cross_entropy_through_a_sigmoid_has_finite_derivatives():
    # d/ds of y log s + (1 - y) log(1 - s) divides by s and 1 - s, which underflow to 0 past
    # logits of +-40; differentiated from its stable twin y softplus(-z) + (1 - y) softplus(z),
    # no derivative node divides, so even the reference evaluator's values are finite
    g = sg.Graph()
    z, y, v = g.input("z", (7,)), g.input("y", (7,)), g.input("v", (7,))
    s = sg.sigmoid(z)
    loss = sg.sum(-(y * sg.log(s) + (1.0 - y) * sg.log(1.0 - s)))
    (gz,) = sg.grad(loss, [z])
    (hv,) = sg.hvp(loss, [z], [v])
    (hv_rr,) = sg.hvp(loss, [z], [v], mode="rev-rev")
    zv = np.array([-1000.0, 1000.0, -1000.0, 1000.0, -45.0, 0.0, 2.5])
    yv = np.array([1.0, 0.0, 0.0, 1.0, 0.3, 1.0, 0.7])
    vv = np.arange(1.0, 8.0)
    p = sigmoid(zv)
    want_loss = np.sum(yv * np.logaddexp(0, -zv) + (1 - yv) * np.logaddexp(0, zv))
    want_hv = vv * p * sigmoid(-zv)
    apart = [
        *sg.compile([loss, gz], [z, y])(zv, yv),
        *sg.compile([hv], [z, y, v])(zv, yv, vv),
    ]
    together = sg.compile([loss, gz, hv, hv_rr], [z, y, v])(zv, yv, vv)
    reference = sg.evaluate([gz, hv, hv_rr], {z: zv, y: yv, v: vv})
    for got_grad, *got_hvs in ([apart[1], apart[2]], together[1:], reference):
        np.testing.assert_allclose(got_grad, p - yv, rtol=1e-12, atol=1e-300)
        for got_hv in got_hvs:
            np.testing.assert_allclose(got_hv, want_hv, rtol=1e-9, atol=1e-300)
    for got_loss in (apart[0], together[0]):
        np.testing.assert_allclose(got_loss, want_loss, rtol=1e-14)
    for n in ancestors(g, [gz.node, hv.node, hv_rr.node]):
        if OPS[g.nx.nodes[n]["op"]].extra.get("elementwise"):
            assert not denominators(expression(g.tensor(n))), g.describe(n)


def test_a_chain_rule_written_by_hand_cancels_its_divisions():
    # (y / s - (1 - y) / (1 - s)) s (1 - s) is nan where s or 1 - s underflows; written out in
    # one expression it is y - s, and s (1 - s), read by a second output too, is computed again
    g = sg.Graph()
    z, y, v = g.input("z", (7,)), g.input("y", (7,)), g.input("v", (7,))
    s = sg.sigmoid(z)
    ds = s * (1.0 - s)
    fn = sg.compile([(y / s - (1.0 - y) / (1.0 - s)) * ds, ds * v], [z, y, v])
    zv = np.array([-1000.0, 1000.0, -1000.0, 1000.0, -45.0, 0.0, 2.5])
    yv = np.array([1.0, 0.0, 0.0, 1.0, 0.3, 1.0, 0.7])
    vv = np.arange(1.0, 8.0)
    got, got_v = fn(zv, yv, vv)
    p = sigmoid(zv)
    np.testing.assert_allclose(got, yv - p, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(got_v, vv * p * (1 - p), rtol=1e-12, atol=1e-300)
    assert fn.rewrite_log["cancel_division"] == 1
    with np.errstate(all="ignore"):
        plain = sg.compile([(y / s - (1.0 - y) / (1.0 - s)) * ds], [z, y], rewrites=False)
        assert np.isnan(plain(zv, yv)[0][:4]).all()


def test_binary_cross_entropy_differentiated_as_written_cancels_its_divisions(monkeypatch):
    # without the stable twin the chain rule divides by s and 1 - s and multiplies by
    # sigmoid' = s(z) s(-z); the fused kernels take s(-z) as the 1 - s(z) they divide by
    monkeypatch.setattr(stable, "ENABLED", False)
    g = sg.Graph()
    z, y, v = g.input("z", (7,)), g.input("y", (7,)), g.input("v", (7,))
    s = sg.sigmoid(z)
    loss = sg.sum(-(y * sg.log(s) + (1.0 - y) * sg.log(1.0 - s)))
    gz, hv = sg.grad(loss, z), sg.hvp(loss, z, v)
    zv = np.array([-1000.0, 1000.0, -1000.0, 1000.0, -45.0, 0.0, 2.5])
    yv = np.array([1.0, 0.0, 0.0, 1.0, 0.3, 1.0, 0.7])
    vv = np.arange(1.0, 8.0)
    p = sigmoid(zv)
    for fn in (sg.compile([gz], [z, y]), sg.compile([gz, hv], [z, y, v])):
        got = fn(zv, yv, vv) if len(fn.inputs) == 3 else fn(zv, yv)
        np.testing.assert_allclose(got[0], p - yv, rtol=1e-12, atol=1e-300)
        if len(got) == 2:  # s (1 - s) v: exact where s is small, 0 where it rounds to 1
            np.testing.assert_allclose(got[1], vv * p * sigmoid(-zv), rtol=1e-9, atol=1e-16)
        assert fn.rewrite_log["cancel_division"] == len(got) and " / " not in fn.source


def test_a_stabilization_still_fires_once_its_argument_is_shared_with_a_gradient():
    # the gradient's sigmoid node is older than the 1 / (1 + exp(-z)) the rule turns into
    # one: the sum 1 - s then reads a node ranked after it, which views must still open
    g = sg.Graph()
    z = g.input("z", (3,))
    loss = sg.sum(sg.log(1.0 - 1.0 / (1.0 + sg.exp(-z))))
    fn = sg.compile([loss, sg.grad(loss, z)], [z])
    zv = np.array([-1000.0, 0.0, 1000.0])
    got_loss, got_grad = fn(zv)
    np.testing.assert_allclose(got_loss, -np.logaddexp(0, zv).sum(), rtol=1e-15)
    np.testing.assert_allclose(got_grad, -sigmoid(zv), rtol=1e-15, atol=1e-300)
    assert fn.rewrite_log["log1m_sigmoid"] == 1


def test_a_constant_array_of_ones_is_one():
    g = sg.Graph()
    z = g.input("z", (2, 3))
    fn = sg.compile(sg.log(g.constant(np.ones(3)) + sg.exp(z)), [z])
    zv = np.array([[-1000.0, 0.0, 1000.0], [3.0, -3.0, 40.0]])
    np.testing.assert_allclose(fn(zv), np.logaddexp(0, zv), rtol=1e-15)
    assert fn.rewrite_log["softplus"] == 1


def test_a_hand_written_sigmoid_whose_one_is_subtracted():
    g = sg.Graph()
    z = g.input("z", (3,))
    fn = sg.compile(sg.exp(z) / (sg.exp(z) - (-1.0)), [z])
    zv = np.array([-800.0, 0.0, 800.0])
    np.testing.assert_allclose(fn(zv), sigmoid(zv), rtol=1e-15, atol=1e-300)
    assert fn.rewrite_log["sigmoid"] == 1


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_logaddexp_of_two_broadcast_inputs_and_its_hessian(dtype):
    # log(exp(a) + exp(b)) over a (3, 1) x (1, 4) grid; d/da = sigmoid(a - b), and the second
    # derivatives are sigmoid(a - b) sigmoid(b - a) with signs: all finite at +-1000
    g = sg.Graph()
    a, b = g.input("a", (3, 1), dtype), g.input("b", (1, 4), dtype)
    loss = sg.sum(sg.log(sg.exp(a) + sg.exp(b)))
    da, db = sg.grad(loss, [a, b])
    va, vb = g.input("va", (3, 1), dtype), g.input("vb", (1, 4), dtype)
    ha, hb = sg.hvp(loss, [a, b], [va, vb])
    fn = sg.compile([loss, da, db, ha, hb], [a, b, va, vb])
    av = np.array([[1000.0], [-1000.0], [0.5]], dtype)
    bv = np.array([[999.0, -1000.0, 0.0, 80.0]], dtype)
    wa, wb = np.array([[1.0], [-2.0], [0.5]], dtype), np.array([[0.3, 1.0, -1.0, 2.0]], dtype)
    got = fn(av, bv, wa, wb)
    assert fn.rewrite_log["logaddexp"] >= 1
    a64, b64 = av.astype(np.float64), bv.astype(np.float64)
    s, c = sigmoid(a64 - b64), sigmoid(a64 - b64) * sigmoid(b64 - a64)  # (3, 4)
    want = [
        np.logaddexp(a64, b64).sum(),
        s.sum(1, keepdims=True),
        (1 - s).sum(0, keepdims=True),
        (c * (wa - wb)).sum(1, keepdims=True),
        (c * (wb - wa)).sum(0, keepdims=True),
    ]
    tol = 1e-12 if dtype == "float64" else 1e-5
    for x, w in zip(got, want):
        assert np.all(np.isfinite(x))
        np.testing.assert_allclose(x, w, rtol=tol, atol=tol * 10)


def test_logaddexp_of_infinities_is_numpys():
    # a zero weight in a mixture, log(exp(log(0) + x) + exp(y)): -inf + inf must not be nan
    g = sg.Graph()
    a, b = g.input("a", (5,)), g.input("b", (5,))
    y = sg.log(sg.exp(a) + sg.exp(b))
    da, db = sg.grad(sg.sum(y), [a, b])
    fn = sg.compile([y, da, db], [a, b])
    av = np.array([-np.inf, -np.inf, np.inf, 3.0, -np.inf])
    bv = np.array([0.0, -np.inf, np.inf, -np.inf, 5.0])
    with np.errstate(invalid="ignore"):
        got_y, got_da, got_db = fn(av, bv)
    assert fn.rewrite_log["logaddexp"] == 1
    np.testing.assert_array_equal(got_y, np.logaddexp(av, bv))
    np.testing.assert_array_equal(got_da[[0, 3, 4]], [0.0, 1.0, 0.0])  # sigmoid(a - b)
    np.testing.assert_array_equal(got_db[[0, 3, 4]], [1.0, 0.0, 1.0])


def test_logaddexp_derivatives_keep_their_relative_precision():
    # d/da = sigmoid(a - b), tiny where b >> a: 1 - sigmoid(b - a) would round it to 0
    g = sg.Graph()
    a, b = g.input("a", (4,)), g.input("b", (4,))
    loss = sg.sum(sg.log(sg.exp(a) + sg.exp(b)))
    (da,) = sg.grad(loss, [a])
    v = g.input("v", (4,))
    (ha,) = sg.hvp(loss, [a], [v])
    fn = sg.compile([da, ha], [a, b, v])
    av, bv = np.array([1e-5, -40.0, 0.0, 0.0]), np.array([30.0, -3.0, 400.0, 20.0])
    got_da, got_ha = fn(av, bv, np.ones(4))
    d = av - bv
    np.testing.assert_allclose(got_da, sigmoid(d), rtol=1e-14, atol=0)
    np.testing.assert_allclose(got_ha, sigmoid(d) * sigmoid(-d), rtol=1e-13, atol=0)


@pytest.mark.parametrize("dtype", ["uint8", "int32", "bool"])
def test_logs_of_integer_arguments_are_not_rewritten_in_their_dtype(dtype):
    # b - a or -x of unsigned ints wraps around: the rules leave integer arguments alone
    g = sg.Graph()
    a, b = g.input("a", (2,), dtype), g.input("b", (2,), dtype)
    outs = [sg.log(sg.exp(a) + sg.exp(b)), sg.log(sg.sigmoid(a))]
    fn = sg.compile(outs, [a, b])
    av, bv = np.array([5, 3]).astype(dtype), np.array([3, 5]).astype(dtype)
    for got, want in zip(fn(av, bv), sg.evaluate(outs, {a: av, b: bv})):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-3)
    assert "logaddexp" not in fn.rewrite_log and "log_sigmoid" not in fn.rewrite_log


@pytest.mark.parametrize(
    "build",
    [
        lambda x: sg.log(sg.exp(x) - sg.exp(x)),  # the chain rule divides by exp(x) - exp(x)
        lambda x: sg.tanh(x) / (x - x),
        lambda x: sg.exp(x) / (sg.exp(x) - sg.exp(x)),
        lambda x: (x / (x - x)) * (x - x),
    ],
)
def test_divisions_that_simplify_to_infinity_are_left_to_numpy(build):
    # SymPy writes a division by x - x as zoo: the rules that simplify leave such a node as
    # it is written (it compiled to a GraphError before); the values are NumPy's
    g = sg.Graph()
    x = g.input("x", (3,))
    y = sg.sum(build(x))
    dx = sg.grad(y, x)
    fn = sg.compile([y, dx], [x])
    xv = np.array([0.0, 1.0, 2.0])
    with np.errstate(all="ignore"):
        got_y, got_dx = fn(xv)
        want_y, _ = sg.evaluate([y, dx], {x: xv})
    np.testing.assert_array_equal(got_y, want_y)
    assert got_dx.shape == (3,)
