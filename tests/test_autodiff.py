"""Reverse and forward mode, HVPs, Jacobians and Hessians against independent oracles."""

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.autodiff.sweep import ancestors

rng = np.random.default_rng(42)


def test_grad_matches_hand_derivative():
    g = sg.Graph()
    x = g.input("x", (3,))
    c = g.constant(np.arange(3.0))
    y = sg.sum(sg.tanh(x) * c)
    xv = np.array([0.1, 0.2, 0.3])
    np.testing.assert_allclose(
        sg.evaluate(sg.grad(y, x), {x: xv}), (1 - np.tanh(xv) ** 2) * [0, 1, 2]
    )


def test_grad_of_list_and_shared_subexpressions():
    g = sg.Graph()
    a, b = g.input("a", (4,)), g.input("b", (4,))
    y = sg.sum(a * b + sg.exp(a))
    da, db = sg.grad(y, [a, b])
    av, bv = rng.standard_normal(4), rng.standard_normal(4)
    va, vb = sg.evaluate([da, db], {a: av, b: bv})
    np.testing.assert_allclose(va, bv + np.exp(av))
    np.testing.assert_allclose(vb, av)


def test_grad_of_grad_scalar():
    g = sg.Graph()
    x = g.input("x", ())
    f = x**3 * sg.sin(x)
    d2 = sg.grad(sg.grad(f, x), x)
    for xv in (0.3, -1.2, 2.0):
        expect = 6 * xv * np.sin(xv) + 6 * xv**2 * np.cos(xv) - xv**3 * np.sin(xv)
        np.testing.assert_allclose(sg.evaluate(d2, {x: xv}), expect, rtol=1e-12)


def test_third_derivative_of_tanh_against_sympy():
    g = sg.Graph()
    x = g.input("x", ())
    d = sg.tanh(x)
    for _ in range(3):
        d = sg.grad(d, x)
    s = sp.Symbol("s")
    exact = sp.lambdify(s, sp.diff(sp.tanh(s), s, 3))
    for xv in (-0.7, 0.1, 1.3):
        np.testing.assert_allclose(sg.evaluate(d, {x: xv}), exact(xv), rtol=1e-12)


def test_known_grads_starts_the_sweep():
    g = sg.Graph()
    x = g.input("x", (3,))
    h = sg.exp(x)
    ct = np.array([1.0, 2.0, 3.0])
    dx = sg.grad(None, x, known_grads={h: ct})
    xv = rng.standard_normal(3)
    np.testing.assert_allclose(sg.evaluate(dx, {x: xv}), ct * np.exp(xv))


def test_vjp_and_jvp_against_explicit_jacobian():
    g = sg.Graph()
    x = g.input("x", (3,))
    A = rng.standard_normal((4, 3))
    y = sg.tanh(g.constant(A) @ x)
    xv, u, t = rng.standard_normal(3), rng.standard_normal(4), rng.standard_normal(3)
    J = (1 - np.tanh(A @ xv) ** 2)[:, None] * A
    np.testing.assert_allclose(sg.evaluate(sg.vjp(y, x, u), {x: xv}), u @ J)
    np.testing.assert_allclose(sg.evaluate(sg.jvp(y, x, t), {x: xv}), J @ t)
    np.testing.assert_allclose(sg.evaluate(sg.jacobian(y, x), {x: xv}), J)


def _mlp_loss(g, activation):
    X = g.constant(rng.standard_normal((4, 2)))
    y = g.constant(np.array([0, 1, 1, 0]))
    W1, b1 = g.input("W1", (2, 16)), g.input("b1", (16,))
    W2, b2 = g.input("W2", (16, 16)), g.input("b2", (16,))
    W3, b3 = g.input("W3", (16, 2)), g.input("b3", (2,))
    h = activation(X @ W1 + b1)
    h = activation(h @ W2 + b2)
    loss = sg.cross_entropy(h @ W3 + b3, y).mean()
    return loss, [W1, b1, W2, b2, W3, b3]


@pytest.mark.parametrize("activation", [sg.tanh, sg.relu])
def test_hvp_modes_agree_and_match_finite_differences(activation):
    g = sg.Graph()
    loss, params = _mlp_loss(g, activation)
    vs = [g.input(f"v{i}", p.shape) for i, p in enumerate(params)]
    values = {p: rng.standard_normal(p.shape) * 0.5 for p in params}
    vvals = {v: rng.standard_normal(v.shape) for v in vs}
    fwd = sg.evaluate(sg.hvp(loss, params, vs), {**values, **vvals})
    rev = sg.evaluate(sg.hvp(loss, params, vs, mode="rev-rev"), {**values, **vvals})
    for a, b in zip(fwd, rev):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)
    grads = sg.grad(loss, params)
    eps = 1e-6

    def grads_at(sign):
        shifted = {p: values[p] + sign * eps * vvals[v] for p, v in zip(params, vs)}
        return sg.evaluate(grads, shifted)

    numeric = [(a - b) / (2 * eps) for a, b in zip(grads_at(1), grads_at(-1))]
    for a, b in zip(fwd, numeric):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_hessian_of_quadratic_form_is_symmetric_part():
    g = sg.Graph()
    x = g.input("x", (5,))
    A = rng.standard_normal((5, 5))
    f = sg.sum(x * (g.constant(A) @ x)) + sg.sum(sg.sin(x))
    xv = rng.standard_normal(5)
    H = sg.evaluate(sg.hessian(f, x), {x: xv})
    np.testing.assert_allclose(H, A + A.T - np.diag(np.sin(xv)), atol=1e-12)
    np.testing.assert_allclose(H, H.T, atol=1e-12)


def test_hessian_node_count_does_not_grow_with_n():
    counts = []
    for n in (10, 100, 1000):
        g = sg.Graph()
        x = g.input("x", (n,))
        f = sg.sum(sg.tanh(x) ** 2) + sg.logsumexp(x)
        H = sg.hessian(f, x)
        counts.append(len(ancestors(g, [H.node])))
    assert counts[0] == counts[1] == counts[2]


def test_disconnected_policy():
    g = sg.Graph()
    x, z = g.input("x", (2,)), g.input("z", (3,))
    y = sg.sum(x * x)
    dz = sg.grad(y, z)
    np.testing.assert_array_equal(sg.evaluate(dz, {x: np.ones(2), z: np.ones(3)}), np.zeros(3))
    n = len(g)
    with pytest.raises(sg.DifferentiationError, match="'z'"):
        sg.grad(y, z, disconnected="raise")
    assert len(g) == n


def test_stop_gradient_blocks_and_integer_input_raises():
    g = sg.Graph()
    x = g.input("x", (3,))
    y = sg.sum(sg.stop_gradient(x) * x)
    xv = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(sg.evaluate(sg.grad(y, x), {x: xv}), xv)
    k = g.input("k", (3,), "int64")
    with pytest.raises(sg.DifferentiationError, match="int64"):
        sg.grad(sg.sum(x * k), k)


def test_check_grads_catches_a_wrong_rule():
    g = sg.Graph()
    x = g.input("x", (3,))
    y = sg.sum(sg.sin(x))
    sg.check_grads(y, {x: rng.standard_normal(3)}, order=3, modes=("rev", "fwd"))
    op = sg.get_op("sin")
    saved = op.vjp
    op.vjp = lambda node, g_, needed: [g_ * 2.0]  # a deliberately wrong derivative
    try:
        with pytest.raises(sg.GradientCheckError, match="order 1"):
            sg.check_grads(y, {x: rng.standard_normal(3)})
    finally:
        op.vjp = saved


def _flat_mlp_loss(g, activation):
    """(batch 4, 2-16-2) network as a function of one flat vector of all 82 parameters."""
    data = np.random.default_rng(7)
    theta = g.input("theta", (82,))
    X = g.constant(data.standard_normal((4, 2)))
    y = g.constant(np.array([0, 1, 1, 0]))
    W1, b1, W2, b2 = sg.nn.split_flat(theta, [(2, 16), (16,), (16, 2), (2,)])
    return theta, sg.cross_entropy(activation(X @ W1 + b1) @ W2 + b2, y).mean()


@pytest.mark.parametrize("activation", [sg.tanh, sg.relu])
def test_full_hessian_of_82_parameter_network_equals_82_hvps(activation):
    g = sg.Graph()
    theta, loss = _flat_mlp_loss(g, activation)
    v = g.input("v", (82,))
    H_fn = sg.compile(sg.hessian(loss, theta), [theta])
    hvp_fn = sg.compile(sg.hvp(loss, theta, v), [theta, v])
    point = rng.standard_normal(82) * 0.5
    H = H_fn(point)
    columns = np.stack([hvp_fn(point, e) for e in np.eye(82)], axis=1)
    np.testing.assert_allclose(H, columns, rtol=0, atol=1e-13)
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(H, sg.evaluate(sg.hessian(loss, theta), {theta: point}), atol=1e-13)


def test_third_and_fourth_derivatives_compose():
    """grad of hvp, hessian of grad and jvp of hessian all agree with SymPy."""
    g = sg.Graph()
    x = g.input("x", (2,))
    f = sg.sum(sg.sin(x) * sg.exp(x[::-1]))
    a, b = sp.symbols("a b")
    fs = sp.sin(a) * sp.exp(b) + sp.sin(b) * sp.exp(a)
    xv = np.array([0.3, -0.8])
    at = {a: xv[0], b: xv[1]}
    v = g.constant(np.array([1.0, 0.0]))
    # grad of <hvp, e1>: third derivative d3f / (da da dx)
    third = sg.grad(sg.sum(sg.hvp(f, x, v) * v), x)
    want3 = [float(sp.diff(fs, a, a, s).subs(at)) for s in (a, b)]
    np.testing.assert_allclose(sg.evaluate(third, {x: xv}), want3, rtol=1e-12)
    # hessian of a directional derivative: d2 / dx2 of (d f / da): third derivatives again
    h_of_g = sg.hessian(sg.sum(sg.grad(f, x) * v), x)
    want = [[float(sp.diff(fs, a, s, t).subs(at)) for t in (a, b)] for s in (a, b)]
    np.testing.assert_allclose(sg.evaluate(h_of_g, {x: xv}), want, rtol=1e-12)
    # jvp of the hessian along e1, then hessian of that: fourth derivatives
    fourth = sg.hessian(sg.sum(sg.jvp(sg.grad(f, x), x, v) * v), x)
    want4 = [[float(sp.diff(fs, a, a, s, t).subs(at)) for t in (a, b)] for s in (a, b)]
    np.testing.assert_allclose(sg.evaluate(fourth, {x: xv}), want4, rtol=1e-12)
    jvp_of_h = sg.jvp(sg.hessian(f, x), x, v)
    want_j = [[float(sp.diff(fs, s, t, a).subs(at)) for t in (a, b)] for s in (a, b)]
    np.testing.assert_allclose(sg.evaluate(jvp_of_h, {x: xv}), want_j, rtol=1e-12)


def test_check_grads_with_respect_to_an_unfed_variable():
    g = sg.Graph()
    x = g.input("x", (2,))
    W = g.variable("W", np.array([0.5, -1.5]))
    records = sg.check_grads(sg.sum(sg.tanh(x * W)), {x: np.ones(2)}, wrt=[W], order=2)
    assert len(records) == 4 and all(r.error < 1e-7 for r in records)


def test_check_grads_in_forward_mode_with_symbolic_dims():
    # the tangents take the inputs' own (symbolic) shapes, as inputs fed with the directions
    g = sg.Graph()
    x, b = g.input("x", ("n", 3)), g.input("b", (3,))
    f = sg.sum(sg.tanh(x) * b)
    feed = {x: np.random.default_rng(2).standard_normal((4, 3)), b: np.arange(3.0)}
    records = sg.check_grads(f, feed, order=2, modes=("fwd", "rev"))
    assert len(records) == 8 and all(r.error < 1e-7 for r in records)
    before = len(g)
    sg.check_grads(f, feed, modes=("fwd",))  # again: fresh names for the tangents
    assert len(g) > before


def test_forward_mode_does_not_go_inside_stop_gradient():
    # a constant mask made from a comparison: reverse mode stopped at the barrier, forward
    # mode pushed tangents into the cast of the bool and raised
    g = sg.Graph()
    x = g.input("x", (3,))
    y = sg.stop_gradient(sg.cast(x > 0, "float64")) * x
    xv, mask = np.array([-1.0, 0.5, 2.0]), np.array([0.0, 1.0, 1.0])
    f = sg.sum(y * y)
    np.testing.assert_array_equal(sg.evaluate(sg.jvp(y, x, np.ones(3)), {x: xv}), mask)
    for mode in ("fwd-rev", "rev-rev"):
        hv = sg.evaluate(sg.hvp(f, x, np.ones(3), mode=mode), {x: xv})
        np.testing.assert_array_equal(hv, 2 * mask)
    np.testing.assert_array_equal(sg.evaluate(sg.hessian(f, x), {x: xv}), np.diag(2 * mask))
    fn = sg.compile(sg.jacobian(y, x, mode="fwd"), [x])
    np.testing.assert_array_equal(fn(xv), np.diag(mask))


def test_empty_index_and_softmax_over_an_empty_axis_compile():
    g = sg.Graph()
    x, w, e = g.input("x", (2, 3)), g.input("w", (2, 3)), g.input("e", (2, 0))
    xv, wv = np.arange(6.0).reshape(2, 3), np.ones((2, 3)) * 3
    y = x[()]  # the whole array, as NumPy's x[()]
    fn = sg.compile([y * 2.0, sg.grad(sg.sum(y * w), x)], [x, w])
    got = fn(xv, wv)
    np.testing.assert_array_equal(got[0], 2 * xv)
    np.testing.assert_array_equal(got[1], wv)
    outs = [sg.softmax(e, -1), sg.grad(sg.sum(sg.logsumexp(e, -1)), e)]
    for got in (sg.evaluate(outs, {e: np.zeros((2, 0))}), sg.compile(outs, [e])(np.zeros((2, 0)))):
        assert all(a.shape == (2, 0) and a.dtype == np.float64 for a in got)
