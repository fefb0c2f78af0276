"""symgrad.nn: initializers, layers, losses and optimizers against NumPy written here."""

import numpy as np
import pytest

import symgrad as sg
from symgrad import nn


def softmax_xent(z, y):
    z = z - z.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


# ---- initializers ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, variance",
    [
        ("he_normal", lambda i, o: 2 / i),
        ("he_uniform", lambda i, o: 2 / i),
        ("glorot_normal", lambda i, o: 2 / (i + o)),
        ("glorot_uniform", lambda i, o: 2 / (i + o)),
    ],
)
def test_initializer_variance(name, variance):
    init = nn.INITIALIZERS[name]
    W = init(np.random.default_rng(0), (400, 300), "float64")
    assert W.shape == (400, 300) and W.dtype == np.float64
    assert abs(W.mean()) < 0.01 * np.sqrt(variance(400, 300))
    np.testing.assert_allclose(W.var(), variance(400, 300), rtol=0.02)


def test_uniform_bounds_and_seeding():
    W = nn.glorot_uniform(np.random.default_rng(3), (10, 20))
    assert np.abs(W).max() <= np.sqrt(6 / 30)
    np.testing.assert_array_equal(W, nn.glorot_uniform(np.random.default_rng(3), (10, 20)))
    assert nn.he_normal(np.random.default_rng(0), (5, 5), "float32").dtype == np.float32


def test_mlp_is_seeded_and_picks_init_by_activation():
    a, b = nn.mlp([8, 50, 3], "relu", seed=4), nn.mlp([8, 50, 3], "relu", seed=4)
    for p, q in zip(a.params, b.params):
        np.testing.assert_array_equal(p.value, q.value)
    relu_net = nn.mlp([1000, 1000, 2], "relu", seed=0)
    tanh_net = nn.mlp([1000, 1000, 2], "tanh", seed=0)
    np.testing.assert_allclose(relu_net.params[0].value.var(), 2 / 1000, rtol=0.02)  # He
    np.testing.assert_allclose(tanh_net.params[0].value.var(), 1 / 1000, rtol=0.02)  # Glorot


# ---- layers --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, ref",
    [
        ("relu", lambda x: np.maximum(x, 0)),
        ("tanh", np.tanh),
        ("sigmoid", lambda x: 1 / (1 + np.exp(-x))),
        ("softplus", lambda x: np.log1p(np.exp(x))),
        ("abs", np.abs),
        ("linear", lambda x: x),
    ],
)
def test_mlp_forward_matches_numpy(name, ref):
    net = nn.mlp([3, 5, 4, 2], name, seed=1)
    assert net.n_params == 3 * 5 + 5 + 5 * 4 + 4 + 4 * 2 + 2
    X = np.random.default_rng(0).standard_normal((6, 3))
    W0, b0, W1, b1, W2, b2 = (p.value for p in net.params)
    expected = ref(ref(X @ W0 + b0) @ W1 + b1) @ W2 + b2
    np.testing.assert_allclose(nn.predict(net, X), expected, rtol=1e-12, atol=1e-12)


def test_dense_layer_and_custom_activation():
    g = sg.Graph()
    layer = nn.Dense(g, 3, 2, lambda t: t * t, init="zeros", name="sq")
    layer.W.value[...] = np.arange(6.0).reshape(3, 2)
    layer.b.value[...] = [1.0, -1.0]
    x = g.input("x", ("batch", 3))
    out = sg.evaluate(layer(x), {x: np.ones((2, 3))})
    np.testing.assert_array_equal(out, [[49.0, 64.0]] * 2)
    assert [p.name for p in layer.params] == ["sq.W", "sq.b"]
    with pytest.raises(ValueError, match="unknown activation"):
        nn.mlp([2, 2], "swishy")


def test_set_and_get_values():
    net = nn.mlp([2, 3, 1], "tanh", seed=0)
    values = [np.full(p.shape, float(i)) for i, p in enumerate(net.params)]
    net.set_values(values)
    for v, w in zip(values, net.get_values()):
        np.testing.assert_array_equal(v, w)


# ---- losses ----------------------------------------------------------------------------------
def test_losses_match_numpy():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((7, 4)) * 3
    labels = rng.integers(0, 4, 7)
    t = rng.standard_normal((7, 4))
    bits = rng.integers(0, 2, (7, 4)).astype(float)
    g = sg.Graph()
    Z = g.input("z", (7, 4))
    Y = g.input("y", (7,), "int64")
    T = g.input("t", (7, 4))
    got = sg.evaluate(
        [nn.cross_entropy(Z, Y), nn.mse(Z, T), nn.sigmoid_cross_entropy(Z, T)],
        {Z: z, Y: labels, T: bits},
    )
    p = 1 / (1 + np.exp(-z))
    bce = -np.mean(bits * np.log(p) + (1 - bits) * np.log(1 - p))
    np.testing.assert_allclose(got[0], softmax_xent(z, labels), rtol=1e-12)
    np.testing.assert_allclose(
        sg.evaluate(nn.mse(Z, T), {Z: z, T: t}), np.mean((z - t) ** 2), rtol=1e-12
    )
    np.testing.assert_allclose(got[2], bce, rtol=1e-12)
    assert nn.accuracy(z, labels) == np.mean(z.argmax(1) == labels)


# ---- optimizers: one compiled step against NumPy ------------------------------------------------
def quadratic_problem(opt):
    """loss = 1/2 |A w - b|^2 / n on a fixed batch; returns the step, w and a NumPy gradient."""
    rng = np.random.default_rng(0)
    A, b = rng.standard_normal((5, 3)), rng.standard_normal(5)
    g = sg.Graph()
    w = g.variable("w", rng.standard_normal(3))
    Ain = g.input("A", ("batch", 3))
    bin_ = g.input("b", ("batch",))
    r = Ain @ w - bin_
    loss = 0.5 * (r * r).mean()
    step = opt.make_step(nn.Problem(loss, [w], [Ain, bin_]))

    def grad(x):
        return A.T @ (A @ x - b) / 5

    return step, w, grad, A, b


@pytest.mark.parametrize(
    "opt, reference",
    [
        (nn.SGD(lr=0.1), "sgd"),
        (nn.SGD(lr=0.1, weight_decay=0.01), "sgd"),
        (nn.Momentum(lr=0.1, momentum=0.8), "momentum"),
        (nn.Nesterov(lr=0.1, momentum=0.8, weight_decay=0.01), "nesterov"),
        (nn.Adam(lr=0.05), "adam"),
        (nn.Adam(lr=0.05, beta1=0.5, beta2=0.9, weight_decay=0.1), "adam"),
    ],
)
def test_optimizer_steps_match_numpy(opt, reference):
    step, w, grad, A, b = quadratic_problem(opt)
    x = w.value.copy()
    v = np.zeros(3)
    m, s = np.zeros(3), np.zeros(3)
    for t in range(1, 5):
        loss = step(A, b)
        np.testing.assert_allclose(loss, 0.5 * np.mean((A @ x - b) ** 2), rtol=1e-12)
        g = grad(x)
        if reference != "adam":
            g = g + opt.weight_decay * x
        if reference == "sgd":
            x = x - opt.lr * g
        elif reference == "momentum":
            v = opt.momentum * v - opt.lr * g
            x = x + v
        elif reference == "nesterov":
            v = opt.momentum * v - opt.lr * g
            x = x + opt.momentum * v - opt.lr * g
        else:
            m = opt.beta1 * m + (1 - opt.beta1) * g
            s = opt.beta2 * s + (1 - opt.beta2) * g**2
            mh, sh = m / (1 - opt.beta1**t), s / (1 - opt.beta2**t)
            x = x - opt.lr * mh / (np.sqrt(sh) + opt.eps) - opt.lr * opt.weight_decay * x
        np.testing.assert_allclose(w.value, x, rtol=1e-12, atol=1e-14)
    assert step.passes == 4
    assert isinstance(step.function, sg.Function)  # forward, backward and update: one call


def test_two_optimizers_on_one_graph_keep_separate_state():
    step1, w, grad, A, b = quadratic_problem(nn.Adam(lr=0.01))
    g = w.graph
    step2 = nn.Adam(lr=0.01).make_step(nn.Problem(step1.function.outputs[0], [w], [g["A"], g["b"]]))
    assert g["w.adam.m"].node != g["w.adam.m#2"].node
    start = w.value.copy()
    step1(A, b)
    after_one = w.value.copy()
    w.value[...] = start
    step2(A, b)
    np.testing.assert_array_equal(w.value, after_one)  # step2's moments started from zero


# ---- fit --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    return nn.digits()


def test_fit_digits_with_adam_and_history(digits):
    Xtr, Xte, ytr, yte = digits
    net = nn.mlp([64, 64, 10], "relu", seed=0)
    h = nn.fit(
        net,
        Xtr,
        ytr,
        optimizer=nn.Adam(lr=3e-3),
        epochs=8,
        batch_size=64,
        validation=(Xte, yte),
        quiet=True,
    )
    n = len(h.epoch)
    assert n == 8 and h.stopped == "epochs"
    assert len(h.loss) == len(h.val_loss) == len(h.val_accuracy) == len(h.time) == n
    assert h.passes == [22 * e for e in range(1, 9)]  # 1347 rows: 22 batches of 61 or 62
    assert all(np.diff(h.time) > 0)
    assert h.loss[-1] < h.loss[0] / 5
    assert h.val_accuracy[-1] >= 0.93
    acc = nn.accuracy(nn.predict(net, Xte), yte)
    assert acc == pytest.approx(h.val_accuracy[-1])
    z = nn.predict(net, Xte)
    assert h.val_loss[-1] == pytest.approx(softmax_xent(z, yte), rel=1e-10)


def test_early_stopping_restores_the_best_parameters(digits):
    Xtr, Xte, ytr, yte = digits
    net = nn.mlp([64, 32, 10], "relu", seed=0)
    # a learning rate this large makes the validation loss go up again soon
    h = nn.fit(
        net,
        Xtr[:300],
        ytr[:300],
        optimizer=nn.Momentum(lr=0.3),
        epochs=200,
        batch_size=30,
        validation=(Xte, yte),
        patience=3,
        quiet=True,
    )
    assert h.stopped == "patience"
    assert len(h.epoch) == h.best_epoch + 3
    best = min(h.val_loss)
    assert h.val_loss[h.best_epoch - 1] == best
    assert softmax_xent(nn.predict(net, Xte), yte) == pytest.approx(best, rel=1e-10)


def test_target_loss_and_max_passes_stop_training():
    X, y = nn.xor()
    net = nn.mlp([2, 8, 1], "tanh", seed=0)
    h = nn.fit(net, X, y, loss="mse", optimizer=nn.Adam(lr=0.05), epochs=5000,
               batch_size=None, target_loss=1e-3, quiet=True)  # fmt: skip
    assert h.stopped == "target" and h.loss[-1] < 1e-3 <= h.loss[-2]
    h = nn.fit(net, X, y, loss="mse", optimizer=nn.SGD(lr=0.0), epochs=50, batch_size=1,
               max_passes=10, quiet=True)  # fmt: skip
    assert h.stopped == "passes" and h.passes[-1] == 10 and len(h.epoch) == 3


def test_fit_shows_a_progress_bar_unless_quiet(capsys):
    X, y = nn.xor()
    net = nn.mlp([2, 4, 1], "tanh", seed=0)
    nn.fit(net, X, y, loss="mse", epochs=3, quiet=False, desc="xor-bar")
    assert "xor-bar" in capsys.readouterr().err
    nn.fit(net, X, y, loss="mse", epochs=3, quiet=True, desc="xor-bar")
    assert "xor-bar" not in capsys.readouterr().err


def test_fit_twice_on_one_model_and_callback():
    X, y = nn.two_spirals(50)
    net = nn.mlp([2, 16, 2], "tanh", seed=0)
    seen = []
    nn.fit(net, X, y, epochs=2, quiet=True)
    h = nn.fit(net, X, y, epochs=10, quiet=True, callback=lambda e, h: seen.append(e) or e == 4)
    assert seen == [1, 2, 3, 4] and h.stopped == "callback"


# ---- datasets -----------------------------------------------------------------------------------
def test_datasets():
    X, y = nn.xor()
    np.testing.assert_array_equal(y, np.logical_xor(X[:, 0], X[:, 1]))
    Xtr, Xte, ytr, yte = nn.digits(test_size=0.25, seed=0)
    assert Xtr.shape == (1347, 64) and Xte.shape == (450, 64)
    assert ytr.dtype == np.int64 and 0 <= Xtr.min() and Xtr.max() <= 1
    assert set(np.unique(ytr)) == set(range(10))
    X, y = nn.two_spirals(100, noise=0.0, seed=1)
    assert X.shape == (200, 2) and np.bincount(y).tolist() == [100, 100]
    np.testing.assert_allclose(X[0::2], -X[1::2])  # the second arm is the first rotated by pi
    assert np.abs(X).max() <= 1.0


def test_fit_refuses_mismatched_targets_and_bad_batch_sizes():
    X, y = nn.xor()
    net = nn.mlp([2, 4, 1], "tanh", seed=0)
    with pytest.raises(sg.InputError, match="4 examples in X but 3 targets"):
        nn.fit(net, X, y[:3], loss="mse", epochs=1, quiet=True)
    for bad in (0, -2, 2.5):
        with pytest.raises(sg.InputError, match="batch_size must be a positive int"):
            nn.fit(net, X, y, loss="mse", epochs=1, batch_size=bad, quiet=True)


def test_patience_must_be_positive():
    net = nn.mlp([2, 3, 2], seed=0)
    X, y = np.ones((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(sg.InputError, match="patience must be a positive int"):
        nn.fit(net, X, y, epochs=3, patience=0, validation=(X, y), quiet=True)


def test_adam_corrects_each_parameter_in_its_own_dtype():
    g = sg.Graph()
    w32 = g.variable("w32", np.array([1.0, -2.0, 3.0], np.float32))
    w64 = g.variable("w64", np.array([0.5, 1.5], np.float64))
    loss = sg.sum(sg.square(w32)) + sg.sum(sg.square(w64))
    step = sg.compile(
        loss, [], updates=nn.Adam(lr=0.1).updates([w32, w64], sg.grad(loss, [w32, w64]))
    )
    g64 = 2 * np.array([0.5, 1.5])
    m, v = 0.1 * g64, 0.001 * g64**2
    want = np.array([0.5, 1.5]) - 0.1 * (m / 0.1) / (np.sqrt(v / 0.001) + 1e-8)
    step()
    assert w32.value.dtype == np.float32 and w64.value.dtype == np.float64
    np.testing.assert_allclose(w64.value, want, rtol=1e-15)
    with pytest.raises(sg.GraphError, match="one gradient per parameter"):
        nn.Adam().updates([], [])


def test_a_linear_output_named_none_is_linear():
    a, b = nn.mlp([4, 3], output_activation=None, seed=0), nn.mlp([4, 3], seed=0)
    np.testing.assert_array_equal(a.params[0].value, b.params[0].value)  # Glorot both
    assert a.layers[0].activation_name == "linear"


def test_mse_targets_of_another_width_are_refused():
    net = nn.mlp([3, 4, 2], seed=0)
    with pytest.raises(sg.InputError, match=r"targets of shape \(5, 3\) do not fit"):
        nn.fit(net, np.ones((5, 3)), np.ones((5, 3)), loss="mse", epochs=1, quiet=True)


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: nn.SGD(-0.1), "SGD: lr must be a finite number >= 0, got -0.1"),
        (lambda: nn.SGD(float("nan")), "lr must be a finite number >= 0, got nan"),
        (lambda: nn.SGD(lr="0.1"), "lr must be a finite number"),
        (lambda: nn.SGD(0.1, weight_decay=-1.0), "weight_decay must be a finite number >= 0"),
        (lambda: nn.Momentum(0.1, momentum=-0.5), "momentum must be a finite number >= 0 and < 1"),
        (lambda: nn.Nesterov(0.1, momentum=1.0), "Nesterov: momentum must be"),
        (lambda: nn.Adam(beta1=1.0), "Adam: beta1 must be a finite number >= 0 and < 1, got 1.0"),
        (lambda: nn.Adam(beta2=1.5), "beta2 must be a finite number >= 0 and < 1"),
        (lambda: nn.Adam(eps=-1e-8), "eps must be a finite number >= 0"),
    ],
)
def test_optimizers_refuse_settings_that_diverge_or_give_nan(make, words):
    with pytest.raises(sg.InputError) as info:
        make()
    assert words in str(info.value)
    assert f"{__file__}:" in str(info.value)  # the line that built the optimizer


def test_an_optimizer_changed_after_construction_is_checked_again():
    X, y = nn.xor()
    net = nn.mlp([2, 4, 2], seed=0)
    opt, before = nn.SGD(0.1), net.get_values()
    opt.lr = -0.1
    with pytest.raises(sg.InputError, match="lr must be a finite number >= 0"):
        nn.fit(net, X, y, optimizer=opt, epochs=1, quiet=True)
    for b, a in zip(before, net.get_values()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "n, size, want",
    [(63, 32, [32, 31]), (64, 32, [32, 32]), (100, 30, [25] * 4), (5, 2, [2, 2, 1]), (7, 9, [7])],
)
def test_batches_hold_at_most_batch_size_rows(n, size, want):
    parts = nn.fit.__globals__["batches"](n, size, np.random.default_rng(0))
    assert [len(p) for p in parts] == want
    assert sorted(np.concatenate(parts).tolist()) == list(range(n))  # each row once


def test_fit_checks_every_label_before_the_first_update():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 3)), rng.integers(0, 3, 200)
    y[150] = 7  # met in the middle of the first epoch
    net = nn.mlp([3, 4, 3], seed=0)
    before = net.get_values()
    with pytest.raises(sg.InputError, match=r"labels must lie in \[0, 3\).*got \[7\]"):
        nn.fit(net, X, y, epochs=1, batch_size=10, quiet=True)
    with pytest.raises(sg.InputError, match=r"labels must lie in \[0, 3\).*got \[-1\]"):
        nn.fit(net, X[:10], y[:10], epochs=1, validation=(X[:4], [0, 1, 2, -1]), quiet=True)
    for b, a in zip(before, net.get_values()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"loss": "nope"}, "loss must be one of"),
        ({"optimizer": "adagrad"}, "optimizer must be one of"),
        ({"optimizer": 0.1}, "optimizer must be an optimizer (with make_step)"),
        ({"seed": -1}, "seed must be a non-negative int"),
        ({"validation": (np.ones((2, 2)),)}, "validation must be a pair (X, y)"),
        ({"target_loss": "a"}, "target_loss must be a finite number"),
        ({"target_loss": float("nan")}, "target_loss must be a finite number"),
        ({"max_passes": 0}, "max_passes must be a positive int"),
        ({"patience": 2}, "patience counts epochs without a better validation loss"),
    ],
)
def test_fit_refuses_bad_settings_before_training(kwargs, words):
    X, y = nn.xor()
    net = nn.mlp([2, 4, 2], seed=0)
    before, nodes = net.get_values(), net.graph.nx.number_of_nodes()
    with pytest.raises(sg.InputError) as info:
        nn.fit(net, X, y, epochs=2, quiet=True, **kwargs)
    assert words in str(info.value) and f"{__file__}:" in str(info.value)
    assert net.graph.nx.number_of_nodes() == nodes
    for b, a in zip(before, net.get_values()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(sg.InputError, match="X must hold numbers"):
        nn.fit(net, np.array([["a", "b"]] * 4), y, epochs=1, quiet=True)


def test_fit_takes_an_optimizer_by_name():
    X, y = nn.xor()
    net = nn.mlp([2, 8, 2], "tanh", seed=0)
    h = nn.fit(net, X, y, optimizer="adam", epochs=30, batch_size=None, quiet=True)
    assert h.loss[-1] < h.loss[0]
    names = [name for _, name in net.graph.nx.nodes(data="name") if name]
    assert any(name.endswith(".adam.m") for name in names)  # Adam's state, with defaults


def test_unknown_initializer_names_the_known_ones():
    with pytest.raises(sg.GraphError, match=r"unknown initializer 'nope'; known: \['glorot"):
        nn.mlp([2, 3], init="nope")


def test_accuracy_refuses_labels_of_another_shape():
    logits = np.array([[2.0, 0], [0, 2], [2, 0], [0, 2]])
    assert nn.accuracy(logits, np.array([0, 1, 0, 0])) == 0.75
    for labels in (np.array([[0], [1], [0], [1]]), np.array([0, 1, 0])):
        with pytest.raises(
            sg.InputError, match=r"accuracy needs logits of shape \(\.\.\., classes"
        ):
            nn.accuracy(logits, labels)


def test_set_values_checks_count_and_shapes_before_writing():
    net = nn.mlp([3, 4, 2], seed=0)
    before = net.get_values()
    bad = [np.zeros_like(v) for v in before]
    bad[2] = np.array(1.0)  # would fill the (4, 2) matrix by broadcasting
    with pytest.raises(sg.InputError, match=r"needs shape \(4, 2\), got \(\)"):
        net.set_values(bad)
    with pytest.raises(sg.InputError, match="needs 4 arrays, one per parameter, got 3"):
        net.set_values(before[:3])
    for b, a in zip(before, net.get_values()):
        np.testing.assert_array_equal(a, b)


def test_fit_checks_the_validation_data_before_the_first_update():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    net = nn.mlp([3, 4, 2], seed=0)
    before = net.get_values()
    for validation in ((X[:5, :2], y[:5]), (X[:5], y[:4])):
        with pytest.raises(sg.InputError, match="validation X of shape"):
            nn.fit(net, X, y, epochs=1, batch_size=10, validation=validation, quiet=True)
    for b, a in zip(before, net.get_values()):
        np.testing.assert_array_equal(a, b)
