"""The learning rate folded into the cross-entropy gradient's seed: the updated parameters
equal a NumPy replay of plain SGD, and the fold stands back whenever it would change a value
anyone sees."""

import numpy as np

import symgrad as sg
from symgrad import nn

rng = np.random.default_rng(8)


def net(sizes=(3, 8, 4)):
    g = sg.Graph()
    X, y = g.input("X", ("batch", sizes[0])), g.input("y", ("batch",), "int64")
    params = []
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        params += [
            g.variable(f"W{i}", rng.standard_normal((m, n))),
            g.variable(f"b{i}", np.zeros(n)),
        ]
    h = X
    for i in range(0, len(params), 2):
        h = h @ params[i] + params[i + 1]
        h = sg.tanh(h) if i + 2 < len(params) else h
    return g, X, y, params, sg.cross_entropy(h, y).mean()


def data(n=5, sizes=(3, 8, 4)):
    return rng.standard_normal((n, sizes[0])), rng.integers(0, sizes[-1], n)


def sgd_replay(params, loss, X, y, Xv, yv, lrs):
    ds = sg.evaluate(sg.grad(loss, params), {X: Xv, y: yv})
    return [p.value - lr * d for p, lr, d in zip(params, lrs, ds)]


def test_sgd_updates_are_single_adds_of_prescaled_gradients():
    g, X, y, params, loss = net()
    grads = sg.grad(loss, params)
    step = sg.compile(loss, [X, y], updates={p: p - 0.05 * d for p, d in zip(params, grads)})
    for batch in (5, 2, 5):
        Xv, yv = data(batch)
        want = sgd_replay(params, loss, X, y, Xv, yv, [0.05] * 4)
        step(Xv, yv)
        for p, w in zip(params, want):
            np.testing.assert_allclose(p.value, w, rtol=1e-12, atol=1e-14)
    updates = [line for line in step.source.splitlines() if "out=p" in line or "out=w" in line]
    assert updates and all(line.lstrip().startswith("np.add(") for line in updates)
    assert "0.05" not in step.source  # no multiply by the learning rate anywhere


def check_sgd_beside(extra):
    """An SGD step that also returns ``extra(grads)``: that value and the parameters equal
    the evaluator's and a NumPy replay."""
    g, X, y, params, loss = net()
    grads = sg.grad(loss, params)
    seen = extra(grads)
    step = sg.compile(
        [loss, seen], [X, y], updates={p: p - 0.05 * d for p, d in zip(params, grads)}
    )
    Xv, yv = data()
    want_seen = sg.evaluate(seen, {X: Xv, y: yv})
    want = sgd_replay(params, loss, X, y, Xv, yv, [0.05] * 4)
    np.testing.assert_allclose(step(Xv, yv)[1], want_seen, rtol=1e-12)
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.value, w, rtol=1e-12, atol=1e-14)


def test_a_gradient_handed_out_keeps_its_own_scale():
    check_sgd_beside(lambda grads: grads[2])


def test_a_nonlinear_use_of_the_gradient_keeps_the_fold_off():
    check_sgd_beside(lambda grads: sum(sg.sum(d * d) for d in grads))


def test_per_parameter_learning_rates_and_weight_decay_are_not_folded():
    g, X, y, params, loss = net()
    grads = sg.grad(loss, params)
    lrs = [0.05, 0.05, 0.2, 0.2]
    step = sg.compile(loss, [X, y], updates={p: p - lr * d for p, lr, d in zip(params, lrs, grads)})
    Xv, yv = data()
    want = sgd_replay(params, loss, X, y, Xv, yv, lrs)
    step(Xv, yv)
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.value, w, rtol=1e-12, atol=1e-14)
    decay = sg.compile(
        loss, [X, y], updates={p: p - 0.05 * (d + 0.01 * p) for p, d in zip(params, grads)}
    )
    ds = sg.evaluate(grads, {X: Xv, y: yv})
    want = [p.value - 0.05 * (d + 0.01 * p.value) for p, d in zip(params, ds)]
    decay(Xv, yv)
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.value, w, rtol=1e-12, atol=1e-14)


def test_momentum_steps_match_a_numpy_replay():
    g, X, y, params, loss = net()
    start = [p.value.copy() for p in params]
    opt = nn.Momentum(lr=0.05, momentum=0.9)
    grads = sg.grad(loss, params)
    step = sg.compile(loss, [X, y], updates=opt.updates(params, grads))
    values, velocity = [s.copy() for s in start], [np.zeros_like(s) for s in start]
    for _ in range(3):
        Xv, yv = data()
        ds = sg.evaluate(grads, {X: Xv, y: yv, **dict(zip(params, values))})
        velocity = [0.9 * v - 0.05 * d for v, d in zip(velocity, ds)]
        values = [w + v for w, v in zip(values, velocity)]
        step(Xv, yv)
    for p, w in zip(params, values):
        np.testing.assert_allclose(p.value, w, rtol=1e-12, atol=1e-14)
