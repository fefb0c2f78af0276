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
