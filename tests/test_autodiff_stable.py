"""Derivatives of the stable twin: functions written in a form that overflows have finite,
exact first and second derivatives wherever the math is finite, in both HVP modes."""

import tracemalloc

import numpy as np
import pytest

import symgrad as sg
from symgrad.autodiff import stable


def sigmoid(x):
    return np.exp(-np.logaddexp(0, -x))


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def log_softmax(x):
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def softmax_hvp(p, v):
    """d softmax(z) / dz applied to v, row by row: p_j sum_k p_k (v_j - v_k), which has no
    cancellation where p is almost one-hot (p_j (v_j - p.v) does)."""
    return p * (p[..., None, :] * (v[..., :, None] - v[..., None, :])).sum(-1)


Z1 = np.array([-1000.0, -45.0, -3.0, 0.0, 2.5, 45.0, 1000.0])
Z2 = np.array([[-1000.0, 0.0, 1000.0], [400.0, -400.0, 3.0], [1e-300, 2.0, -1.0]])
LABELS = np.array([0, 1, 2])


def shifted_log_softmax(z, y):
    e = sg.exp(z - sg.max(z, axis=-1, keepdims=True))
    return sg.sum(sg.log(e / sg.sum(e, axis=-1, keepdims=True)))


# name -> (loss builder (z, labels), z, value, gradient, HVP along v): NumPy references
CASES = {
    "log(1 + exp z)": (
        lambda z, y: sg.sum(sg.log(1.0 + sg.exp(z))),
        Z1,
        lambda z: np.logaddexp(0, z).sum(),
        sigmoid,
        lambda z, v: v * sigmoid(z) * sigmoid(-z),
    ),
    "log(exp z)": (
        lambda z, y: sg.sum(sg.log(sg.exp(z)) * 3.0),
        Z1,
        lambda z: 3.0 * z.sum(),
        lambda z: np.full_like(z, 3.0),
        lambda z, v: np.zeros_like(z),
    ),
    "log(1 - sigmoid z)": (
        lambda z, y: sg.sum(sg.log(1.0 - sg.sigmoid(z))),
        Z1,
        lambda z: -np.logaddexp(0, z).sum(),
        lambda z: -sigmoid(z),
        lambda z, v: -v * sigmoid(z) * sigmoid(-z),
    ),
    "one_hot * log(softmax)": (
        lambda z, y: -sg.sum(sg.one_hot(y, 3) * sg.log(sg.softmax(z))),
        Z2,
        lambda z: -log_softmax(z)[np.arange(3), LABELS].sum(),
        lambda z: softmax(z) - np.eye(3)[LABELS],
        lambda z, v: softmax_hvp(softmax(z), v),
    ),
    "log(e / sum e), shifted": (
        shifted_log_softmax,
        Z2,
        lambda z: log_softmax(z).sum(),
        lambda z: 1.0 - 3.0 * softmax(z),
        lambda z, v: -3.0 * softmax_hvp(softmax(z), v),
    ),
}


def _problem(name, dtype="float64"):
    build, zv, *refs = CASES[name]
    g = sg.Graph()
    z = g.input("z", zv.shape, dtype)
    v = g.input("v", zv.shape, dtype)
    y = g.input("y", (3,), "int64")
    loss = build(z, y)
    vv = np.random.default_rng(0).uniform(0.5, 1.5, zv.shape)
    feed = {z: zv.astype(dtype), v: vv.astype(dtype), y: LABELS}
    return g, loss, z, v, feed, refs


@pytest.mark.parametrize("name", sorted(CASES))
def test_first_and_second_derivatives_are_finite_and_exact(name):
    g, loss, z, v, feed, (value, gradient, hvp) = _problem(name)
    dz = sg.grad(loss, z)
    hv_fr = sg.hvp(loss, z, v)
    hv_rr = sg.hvp(loss, z, v, mode="rev-rev")
    tangent = sg.jvp(dz, z, v)  # forward mode over the gradient, as a user would write it
    outs = [loss, dz, hv_fr, hv_rr, tangent]
    zv, vv = feed[z], feed[v]
    want = [value(zv), gradient(zv), hvp(zv, vv), hvp(zv, vv), hvp(zv, vv)]
    compiled = sg.compile(outs, [z, v, g["y"]])(zv, vv, LABELS)
    reference = sg.evaluate(outs[1:], feed)  # no rewrites: the derivative graph itself is stable
    for got, ref in [*zip(compiled, want), *zip(reference, want[1:])]:
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=_floor(name, ref))


def _floor(name: str, ref) -> float:
    """The absolute error allowed: none beyond the relative one for the elementwise cases
    (exact in the tails too); for a softmax row, rounding against the row's largest entry
    (p_0 (v_0 - p.v) with p_0 = 1 - 1e-173 is 0 in floating point, not -1e-173)."""
    return 1e-300 if np.ndim(ref) < 2 else 1e-15 * np.abs(ref).max()


@pytest.mark.parametrize("name", ["log(1 + exp z)", "one_hot * log(softmax)"])
def test_float32_derivatives_are_finite_and_close(name):
    g, loss, z, v, feed, (value, gradient, hvp) = _problem(name, "float32")
    outs = [sg.grad(loss, z), sg.hvp(loss, z, v), sg.hvp(loss, z, v, mode="rev-rev")]
    zv, vv = feed[z].astype(np.float64), feed[v].astype(np.float64)
    got = sg.compile(outs, [z, v, g["y"]])(feed[z], feed[v], LABELS)
    for out, ref in zip(got, [gradient(zv), hvp(zv, vv), hvp(zv, vv)]):
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-37)


@pytest.mark.parametrize("name", sorted(CASES))
def test_as_written_the_same_derivatives_are_not_finite(name, monkeypatch):
    # the cases are real: differentiated as written, the reference values overflow
    monkeypatch.setattr(stable, "ENABLED", False)
    g, loss, z, v, feed, _ = _problem(name)
    with np.errstate(all="ignore"):
        got = sg.evaluate([sg.grad(loss, z), sg.hvp(loss, z, v)], feed)
    assert not all(np.isfinite(x).all() for x in got)


def test_hessian_and_jacobian_of_the_stable_twin():
    g = sg.Graph()
    z = g.input("z", Z1.shape)
    loss = sg.sum(sg.log(1.0 + sg.exp(z)))
    H = sg.hessian(loss, z)
    J = sg.jacobian(sg.log(1.0 + sg.exp(z)), z)
    got_H, got_J = sg.compile([H, J], [z])(Z1)
    np.testing.assert_allclose(got_H, np.diag(sigmoid(Z1) * sigmoid(-Z1)), rtol=1e-12, atol=0)
    np.testing.assert_allclose(got_J, np.diag(sigmoid(Z1)), rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_derivatives_match_finite_differences(name):
    build, zv, *_ = CASES[name]
    g = sg.Graph()
    z = g.input("z", zv.shape)
    y = g.input("y", (3,), "int64")
    point = np.random.default_rng(1).standard_normal(zv.shape)  # where differences are exact
    sg.check_grads(build(z, y), {z: point, y: LABELS}, wrt=[z], order=2, modes=("rev", "fwd"))


def test_the_users_nodes_are_never_changed():
    g = sg.Graph()
    z = g.input("z", (3,))
    loss = sg.sum(sg.log(1.0 + sg.exp(z)))
    before = {n: (d["op"], g.args(n), d["where"]) for n, d in g.nx.nodes(data=True)}
    sg.hvp(loss, z, g.input("v", (3,)))
    after = {n: (d["op"], g.args(n), d["where"]) for n, d in g.nx.nodes(data=True) if n in before}
    assert after == before
    assert "softplus" in {d["op"] for d in g.nx.nodes.values()}  # the twin joined the graph


def test_nothing_is_added_where_nothing_is_unstable(monkeypatch):
    def build():
        g = sg.Graph()
        x = g.input("x", (4, 3))
        w = g.input("w", (3, 2))
        # a log, and divisions by a constant and a count: nothing a stabilizing rule changes
        h = x @ w
        loss = sg.mean(sg.tanh(h) / 2.0 + sg.log(sg.square(h) + 1.0))
        sg.hvp(loss, w, g.input("v", (3, 2)))
        return [(d["op"], g.args(n)) for n, d in sorted(g.nx.nodes(data=True))]

    with_twins = build()
    monkeypatch.setattr(stable, "ENABLED", False)
    assert build() == with_twins


def test_an_inner_node_as_wrt_is_differentiated_as_written():
    # d log(s) / ds is 1 / s: the twin log_softmax(z) does not read s, so it is not used
    g = sg.Graph()
    z = g.input("z", (2, 3))
    s = sg.softmax(z)
    c = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    loss = sg.sum(sg.log(s) * c)
    ds, dz = sg.grad(loss, [s, z])
    zv = np.array([[0.1, -0.2, 0.3], [1.0, 2.0, -1.0]])
    got_ds, got_dz = sg.compile([ds, dz], [z])(zv)
    p = softmax(zv)
    np.testing.assert_allclose(got_ds, c / p, rtol=1e-12)
    np.testing.assert_allclose(got_dz, c - p * c.sum(-1, keepdims=True), rtol=1e-12)


def test_stop_gradient_is_kept_in_the_twin():
    g = sg.Graph()
    z = g.input("z", Z1.shape)
    loss = sg.sum(sg.log(1.0 + sg.exp(sg.stop_gradient(z))) * z)
    dz = sg.grad(loss, z)
    hv = sg.hvp(loss, z, g.input("v", Z1.shape))
    got_dz, got_hv = sg.compile([dz, hv], [z, g["v"]])(Z1, np.ones_like(Z1))
    np.testing.assert_allclose(got_dz, np.logaddexp(0, Z1), rtol=1e-12)
    np.testing.assert_array_equal(got_hv, np.zeros_like(Z1))


def test_known_grads_of_an_unstable_node():
    g = sg.Graph()
    z = g.input("z", Z1.shape)
    sp_z = sg.log(1.0 + sg.exp(z))
    ct = np.linspace(-1.0, 1.0, Z1.size)
    dz = sg.grad(None, z, known_grads={sp_z: ct})
    tangent = sg.jvp(sp_z, z, g.constant(ct))
    got_dz, got_t = sg.compile([dz, tangent], [z])(Z1)
    np.testing.assert_allclose(got_dz, ct * sigmoid(Z1), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(got_t, ct * sigmoid(Z1), rtol=1e-12, atol=1e-300)


def test_a_failing_derivative_leaves_no_twin_behind():
    g = sg.Graph()
    z, other = g.input("z", (3,)), g.input("other", (3,))
    loss = sg.sum(sg.log(1.0 + sg.exp(z)))
    count = len(g)
    with pytest.raises(sg.DifferentiationError, match="does not depend on"):
        sg.grad(loss, [z, other], disconnected="raise")
    assert len(g) == count


def test_sigmoid_derivatives_keep_their_precision_in_both_tails():
    # s' = s(x) s(-x): s (1 - s) is 0 in floating point from x = 37 on, where s' is 1e-16
    g = sg.Graph()
    x = g.input("x", (8,))
    xv = np.array([-700.0, -45.0, -3.0, 0.0, 2.0, 37.5, 45.0, 700.0])
    y = sg.sum(sg.sigmoid(x))
    dx = sg.grad(y, x)
    d2x = sg.grad(sg.sum(dx), x)  # s'' = s' (s(-x) - s(x))
    s, s_neg = sigmoid(xv), sigmoid(-xv)
    want = [s * s_neg, s * s_neg * (s_neg - s)]
    for got in (sg.compile([dx, d2x], [x])(xv), sg.evaluate([dx, d2x], {x: xv})):
        for out, ref in zip(got, want):
            np.testing.assert_allclose(out, ref, rtol=1e-13, atol=1e-300)


def test_an_inner_wrt_is_read_as_it_is_and_the_rest_is_still_stabilized():
    # wrt the logits z = x @ w, an inner node: the twin takes z as an input of its own
    g = sg.Graph()
    x, w, y = g.input("x", (4, 2)), g.input("w", (2, 3)), g.input("y", (4, 3))
    z = x @ w
    s = sg.sigmoid(z)
    loss = sg.sum(-(y * sg.log(s) + (1.0 - y) * sg.log(1.0 - s)))
    dz, dw = sg.grad(loss, [z, w])
    xv = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -0.5]])
    wv = np.array([[1000.0, -1000.0, 2.0], [-45.0, 1000.0, 0.0]])
    yv = np.random.default_rng(2).uniform(0, 1, (4, 3))
    got_dz, got_dw = sg.compile([dz, dw], [x, w, y])(xv, wv, yv)
    want_dz = sigmoid(xv @ wv) - yv
    np.testing.assert_allclose(got_dz, want_dz, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(got_dw, xv.T @ want_dz, rtol=1e-12, atol=1e-15)


def test_a_twin_that_loses_a_dependency_is_dropped_with_its_nodes(monkeypatch):
    # a twin that no longer reads a wrt node the outputs read: the outputs are differentiated
    # as written (d/dw is 0, not "disconnected") and none of the twin's nodes stay behind
    calls = []
    monkeypatch.setattr(stable, "_reached", lambda g, ends, wrt: calls.append(1) or len(calls))
    g = sg.Graph()
    z = g.input("z", (3,))
    loss = sg.sum(sg.log(1.0 + sg.exp(z)))
    with monkeypatch.context() as m:
        m.setattr(stable, "ENABLED", False)
        count = len(g)
        sg.grad(loss, z)
        as_written = [(g.nx.nodes[n]["op"], g.args(n)) for n in sorted(g.nx) if n >= count]
    g.rollback(count)
    (dz,) = sg.grad(loss, [z])
    assert len(calls) == 2  # the twin was built, then dropped
    assert [(g.nx.nodes[n]["op"], g.args(n)) for n in sorted(g.nx) if n >= count] == as_written
    zv = np.array([-3.0, 0.5, 2.0])
    np.testing.assert_allclose(sg.evaluate([dz], {z: zv})[0], sigmoid(zv), rtol=1e-12)
    monkeypatch.undo()

    # (e * w) / w is e, and e**1 of exp(log x) is x: the twin reads x and w as written
    g = sg.Graph()
    x, w = g.input("x", (3,)), g.input("w", (3,))
    loss = sg.sum((sg.exp(sg.log(x)) * w) / w)
    count = len(g)
    dx, dw = sg.grad(loss, [x, w], disconnected="raise")
    used = set(sg.autodiff.sweep.ancestors(g, [dx.node, dw.node]))
    assert all(n in used for n in g.nx if n >= count)
    got_dx, got_dw = sg.compile([dx, dw], [x, w])(np.array([1.0, 2.0, 3.0]), np.full(3, 2.0))
    np.testing.assert_allclose(got_dx, np.ones(3), rtol=1e-15)
    np.testing.assert_array_equal(got_dw, np.zeros(3))


def test_big_constants_are_neither_copied_nor_serialized_again():
    g = sg.Graph()
    X = g.constant(np.random.default_rng(0).standard_normal((500, 400)))
    w = g.input("w", (400,))
    loss = sg.sum(sg.log(1.0 + sg.exp(X @ w)))
    tracemalloc.start()
    dw = sg.grad(loss, w)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < X.value.nbytes / 4, peak  # no copy of X's 1.6 MB, no bytes of it either
    assert X.node in sg.autodiff.sweep.ancestors(g, [dw.node])  # the twin reads X itself


def test_a_twin_never_reads_a_wrt_node_on_a_path_of_its_own():
    # the twin of log(1 + exp(z)) is softplus(z), which is the node h the user asks about:
    # read there, d/dh would count the first term too (2 instead of 1)
    g = sg.Graph()
    z = g.input("z", (3,))
    h = sg.softplus(z)
    y = sg.log(1.0 + sg.exp(z)) + h
    dz, dh = sg.grad(sg.sum(y), [z, h])
    tangent = sg.jvp(y, [z, h], [np.zeros(3), np.ones(3)])
    zv = np.array([-1.0, 0.0, 2.0])
    got_dz, got_dh, got_t = sg.evaluate([dz, dh, tangent], {z: zv})
    np.testing.assert_allclose(got_dz, 2 * sigmoid(zv), rtol=1e-15)  # h depends on z too
    np.testing.assert_array_equal(got_dh, np.ones(3))
    np.testing.assert_array_equal(got_t, np.ones(3))
    # nor a constant a rule builds: C / 2 is read as the number 2, and c is 2.0 too
    g = sg.Graph()
    z = g.input("z", (2, 3))
    C, c = g.constant(np.full((2, 3), 2.0)), g.constant(2.0)
    e = sg.exp(z)
    loss = sg.sum(C * e / sg.sum(e, axis=-1, keepdims=True)) + sg.sum(c * z)
    zv = np.arange(6.0).reshape(2, 3)
    dc = sg.evaluate([sg.grad(loss, [z, c])[1]], {z: zv})[0]
    assert dc == pytest.approx(zv.sum(), rel=1e-15)


def test_constants_in_a_hand_written_sigmoid():
    # exp(C) / (1 + exp(C)) of a constant C is a number, not a sigmoid node to build
    g = sg.Graph()
    x, C = g.input("x", (3,)), g.constant(2.0)
    scale = sg.exp(C) / (1.0 + sg.exp(C))
    inner = (x * sg.exp(C)) / (1.0 + sg.exp(C))
    xv = np.array([-1000.0, 0.0, 1000.0])
    for loss, want in (
        (sg.sum(sg.log(1.0 + sg.exp(x)) * scale), sigmoid(xv) * sigmoid(2.0)),
        (sg.sum(sg.log(1.0 + sg.exp(inner))), sigmoid(xv * sigmoid(2.0)) * sigmoid(2.0)),
    ):
        dx = sg.grad(loss, x)
        for got in (sg.evaluate([dx], {x: xv})[0], sg.compile(dx, [x])(xv)):
            np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-300)
