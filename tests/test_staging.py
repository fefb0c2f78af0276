"""fn.specialize: fixed inputs bound, their work done once, the rest compiled."""

import numpy as np
import pytest

import symgrad as sg

rng = np.random.default_rng(3)


def mlp_hvp():
    g = sg.Graph()
    X, y = g.input("X", ("batch", 5)), g.input("y", ("batch",), "int64")
    W1, W2 = g.input("W1", (5, 7)), g.input("W2", (7, 3))
    loss = sg.cross_entropy(sg.tanh(X @ W1) @ W2, y).mean()
    V1, V2 = g.input("V1", (5, 7)), g.input("V2", (7, 3))
    hv = sg.hvp(loss, [W1, W2], [V1, V2])
    fn = sg.compile(hv, [X, y, W1, W2, V1, V2])
    feed = {
        X: rng.standard_normal((6, 5)),
        y: rng.integers(0, 3, 6),
        W1: rng.standard_normal((5, 7)),
        W2: rng.standard_normal((7, 3)),
    }
    return g, fn, feed, (V1, V2)


def test_specialized_hvp_equals_full_call_and_evaluator():
    g, fn, feed, (V1, V2) = mlp_hvp()
    staged = fn.specialize(feed)
    assert [x.name for x in staged.inputs] == ["V1", "V2"]
    for _ in range(3):
        v1, v2 = rng.standard_normal((5, 7)), rng.standard_normal((7, 3))
        full = fn(*feed.values(), v1, v2)
        got = staged(v1, v2)
        ref = sg.evaluate(fn.outputs, {**feed, V1: v1, V2: v2})
        for a, b, c in zip(got, full, ref):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-14)


def test_specialize_does_the_fixed_work_once():
    g, fn, feed, _ = mlp_hvp()
    staged = fn.specialize(feed)
    # the forward pass (tanh of X @ W1) depends only on fixed values: it is not recomputed
    assert "np.tanh" not in staged.source
    assert "np.tanh" in fn.source


def test_specialize_copies_values_and_binds_symbolic_dims():
    g, fn, feed, _ = mlp_hvp()
    X = g["X"]
    Xv = feed[X].copy()
    staged = fn.specialize(feed)
    feed[X][...] = 0.0  # later changes to the caller's array are not seen
    v1, v2 = np.ones((5, 7)), np.ones((7, 3))
    want = fn(Xv, *list(feed.values())[1:], v1, v2)
    for a, b in zip(staged(v1, v2), want):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_live_variables_keep_updating():
    g = sg.Graph()
    x, scale = g.input("x", (3,)), g.input("scale", ())
    w = g.variable("w", np.ones(3))
    loss = sg.sum(w * x) * scale
    step = sg.compile(loss, [x, scale], updates={w: w - 0.5 * sg.grad(loss, w)})
    staged = step.specialize({scale: 2.0})
    xv = np.array([1.0, 2.0, 3.0])
    assert staged(xv) == pytest.approx(12.0)
    np.testing.assert_allclose(w.value, 1 - xv)
    assert staged(xv) == pytest.approx(2 * np.dot(1 - xv, xv))


def test_fixing_a_variable_or_a_wrong_key_is_checked():
    g = sg.Graph()
    x = g.input("x", (3,))
    w, c = g.variable("w", np.ones(3)), g.variable("c", np.full(3, 2.0))
    loss = sg.sum(w * x * c)
    step = sg.compile(loss, [x], updates={w: w - sg.grad(loss, w)})
    frozen = step.specialize({c: np.full(3, 3.0)})  # a fixed variable is read now, as a value
    assert frozen(np.ones(3)) == pytest.approx(9.0)
    with pytest.raises(sg.InputError, match="updated"):
        step.specialize({w: np.zeros(3)})
    with pytest.raises(sg.InputError, match="shape"):
        step.specialize({x: np.zeros(4)})
    other = sg.Graph().input("z", ())
    with pytest.raises(sg.InputError, match="not an input"):
        step.specialize({other: 1.0})


def test_fixing_only_values_without_the_batch_leaves_its_count_to_each_call():
    # the mean's element count depends on the batch, which no fixed value binds here
    g = sg.Graph()
    X, y = g.input("X", ("batch", 3)), g.input("y", ("batch",), "int64")
    W, v = g.input("W", (3, 4)), g.input("v", (3, 4))
    loss = sg.cross_entropy(X @ W, y).mean()
    (hv,) = sg.hvp(loss, [W], [v])
    fn = sg.compile(hv, [X, y, W, v])
    Wv, vv = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    for fixed, rest in (({v: vv}, lambda X_, y_: (X_, y_, Wv)), ({W: Wv, v: vv}, lambda *a: a)):
        staged = fn.specialize(fixed)
        for batch in (5, 2, 5):
            Xv, yv = rng.standard_normal((batch, 3)), rng.integers(0, 4, batch)
            want = sg.evaluate(hv, {X: Xv, y: yv, W: Wv, v: vv})
            np.testing.assert_allclose(staged(*rest(Xv, yv)), want, rtol=1e-12, atol=1e-15)


def test_a_staged_function_takes_the_users_tensors_again():
    g = sg.Graph()
    X, s = g.input("X", (2, 3)), g.input("s", ())
    fn = sg.compile(sg.sum(X * s), [X, s])
    once = fn.specialize({s: 2.0})
    assert once.origin_graph is g
    twice = once.specialize({X: np.ones((2, 3))})
    assert twice() == pytest.approx(12.0) == once(np.ones((2, 3)))
    other = sg.Graph().input("X", (2, 3))  # same name, another graph: refused
    with pytest.raises(sg.InputError, match="is not an input or variable"):
        once.specialize({other: np.ones((2, 3))})


def test_specializing_a_piecewise_kernel_near_divisions():
    # staged, c is a number: cancel_division wrote out leaky_relu(c) pieces beside divisions,
    # and SymPy's count of a divisor failed ordering zoo in a piece's condition
    g = sg.Graph()
    c, x = g.input("c", ()), g.input("x", ("batch", 3))
    s = sg.sum(x, axis=1)
    t6 = s / (sg.leaky_relu(c) ** 2 + 1.0)
    t11 = sg.tanh(c + s) * 0.5 + (c + s) * 2.0
    t15 = t6 + 1.0 / (t11 * t11 + 1.0)
    y = sg.where(t15 > 0.1, t15, t11)
    fn = sg.compile(y, [c, x])
    xv = np.random.default_rng(0).standard_normal((7, 3))
    for cv in (0.13212972, 0.5, 2.0, -0.3):
        staged = fn.specialize({c: np.array(cv)})
        np.testing.assert_allclose(staged(xv), fn(cv, xv), rtol=1e-14)
        np.testing.assert_allclose(staged(xv), sg.evaluate(y, {c: cv, x: xv}), rtol=1e-14)
