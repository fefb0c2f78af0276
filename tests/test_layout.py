"""Variable storage and layout plans: packed updates and biases folded into matmuls compute
exactly what the reference evaluator does, and fall back cleanly when they do not apply."""

import re

import numpy as np
import pytest

import symgrad as sg
from symgrad import blas
from symgrad.storage import CHUNK, PAGE, address, follows, staggered_empty

rng = np.random.default_rng(5)


def mlp(sizes, dtype="float64", order="Wb", activation=sg.relu):
    """A ReLU MLP with softmax cross-entropy; ``order`` "bW" makes each bias before its W."""
    g = sg.Graph()
    X = g.input("X", ("batch", sizes[0]), dtype)
    y = g.input("y", ("batch",), "int64")
    params = []
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        made = {
            "W": lambda: g.variable(f"W{i}", rng.standard_normal((m, n)) / np.sqrt(m), dtype),
            "b": lambda: g.variable(f"b{i}", 0.1 * rng.standard_normal(n), dtype),
        }
        W, b = [made[k]() for k in order][:: 1 if order == "Wb" else -1]
        params += [W, b]
    h = X
    for i in range(0, len(params), 2):
        h = h @ params[i] + params[i + 1]
        if i + 2 < len(params):
            h = activation(h)
    loss = sg.cross_entropy(h, y).mean()
    return g, X, y, params, loss


def replay(params, loss, X, y, batches, lrs):
    """Parameters after SGD steps computed from the evaluator's gradients, in NumPy."""
    values = [p.value.copy() for p in params]
    grads = sg.grad(loss, params)
    for Xv, yv in batches:
        ds = sg.evaluate(grads, {X: Xv, y: yv, **dict(zip(params, values))})
        values = [v - lr * d for v, lr, d in zip(values, lrs, ds)]
    return values


def _bias_adds(source: str) -> list[str]:
    """The kernel lines that add a bias with np.add (lines end with their node's op)."""
    return [line for line in source.splitlines() if line.endswith(" add") and "np.add(" in line]


def batches(sizes, counts):
    return [(rng.standard_normal((b, sizes[0])), rng.integers(0, sizes[-1], b)) for b in counts]


def train(sizes, lrs=None, order="Wb", counts=(4, 7, 4, 7), dtype="float64"):
    g, X, y, params, loss = mlp(sizes, dtype, order)
    lrs = lrs or [0.1] * len(params)
    grads = sg.grad(loss, params)
    step = sg.compile(loss, [X, y], updates={p: p - lr * d for p, lr, d in zip(params, lrs, grads)})
    data = [(Xv.astype(dtype), yv) for Xv, yv in batches(sizes, counts)]
    want = replay(params, loss, X, y, data, lrs)
    for Xv, yv in data:
        step(Xv, yv)
    return step, params, want


def test_variables_made_one_after_another_are_adjacent_copies():
    g = sg.Graph()
    w0 = np.ones((3, 4))
    W, b = g.variable("W", w0), g.variable("b", np.zeros(4))
    s = g.variable("s", np.float32(2))  # another dtype: another chunk
    assert follows(W.value, b.value)
    w0[...] = 7  # the graph holds a copy
    np.testing.assert_array_equal(W.value, np.ones((3, 4)))
    assert s.value.shape == () and s.value.dtype == np.float32 and s.value == 2
    big = g.variable("big", np.zeros(CHUNK + 1))  # a chunk of its own, with room after it
    after = g.variable("after", np.arange(5.0))
    assert follows(big.value, after.value)
    np.testing.assert_array_equal(after.value, np.arange(5.0))


def test_staggered_arrays_start_at_different_offsets_within_a_page():
    arrays = [staggered_empty((64, 128), "float64") for _ in range(8)]
    offsets = {address(a) % PAGE for a in arrays}
    assert len(offsets) == 8  # whole-page arrays no longer all start at one offset
    assert all(o % 64 == 0 for o in offsets)  # each on a cache line
    for i, a in enumerate(arrays):
        assert a.shape == (64, 128) and a.dtype == np.float64 and a.flags.c_contiguous
        a[...] = i
    for i, a in enumerate(arrays):  # no two overlap
        assert (a == i).all()
    for shape, dtype in [(5000, "float32"), ((3, 4096), bool), ((40, 40), "complex128")]:
        a = staggered_empty(shape, dtype)
        assert a.shape == np.empty(shape).shape and a.dtype == dtype and a.flags.aligned
        assert a.flags.c_contiguous and a.flags.writeable
    small = staggered_empty((3, 4), "float64")  # under a page: as np.empty makes it
    assert small.base is None and small.shape == (3, 4)


def test_variable_chunks_are_staggered_too():
    g = sg.Graph()
    big = [g.variable(f"W{i}", np.full(CHUNK, float(i))) for i in range(4)]  # a chunk each
    assert len({address(v.value) % PAGE for v in big}) == 4
    for i, v in enumerate(big):
        np.testing.assert_array_equal(v.value, np.full(CHUNK, float(i)))


@pytest.mark.parametrize("sizes", [(2, 16, 2), (5, 8, 6, 3)])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_packed_updates_and_biases_in_matmuls_match_the_evaluator(sizes, dtype):
    step, params, want = train(sizes, dtype=dtype)
    source = step.source
    assert source.count("out=p") == 1  # every parameter in one packed update
    assert "out=w" not in source
    assert "np.copyto(h" in source  # the narrow input copied beside a ones column
    assert not _bias_adds(source)  # every bias add rides in its matmul
    assert not [line for line in source.splitlines() if line.endswith(" sum")]  # nor its grad
    tol = 1e-12 if dtype == "float64" else 2e-5
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.value, w, rtol=tol, atol=tol)


def test_forward_values_of_a_biased_matmul_with_and_without_the_layout():
    g, X, y, params, loss = mlp((3, 5, 4))
    h = sg.relu(X @ params[0] + params[1])
    logits = h @ params[2] + params[3]
    fn = sg.compile(logits, [X])
    for b in (2, 6, 2):
        Xv = rng.standard_normal((b, 3))
        want = np.maximum(Xv @ params[0].value + params[1].value, 0)
        want = want @ params[2].value + params[3].value
        np.testing.assert_allclose(fn(Xv), want, rtol=1e-13)
        np.testing.assert_allclose(fn(Xv), sg.evaluate(logits, {X: Xv}), rtol=1e-13)
    assert not _bias_adds(fn.source)


def test_biases_made_before_their_weights_fall_back_to_adds():
    step, params, want = train((2, 16, 2), order="bW")
    assert _bias_adds(step.source) and "np.copyto(h" not in step.source
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.value, w, rtol=1e-12, atol=1e-14)


def test_different_learning_rates_split_the_packed_runs():
    lrs = [0.1, 0.1, 0.05, 0.05]
    step, params, want = train((2, 16, 2), lrs=lrs)
    assert step.source.count("out=p") == 2  # one run per learning rate
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.value, w, rtol=1e-12, atol=1e-14)


def test_a_frozen_variable_between_updated_ones_is_left_alone():
    g, X, y, params, loss = mlp((2, 16, 2))
    frozen = params[1].value.copy()
    train_params = [params[0], params[2], params[3]]
    grads = sg.grad(loss, train_params)
    step = sg.compile(loss, [X, y], updates={p: p - 0.1 * d for p, d in zip(train_params, grads)})
    data = batches((2, 16, 2), (4, 4, 3))
    want = replay(train_params, loss, X, y, data, [0.1] * 3)
    for Xv, yv in data:
        step(Xv, yv)
    np.testing.assert_array_equal(params[1].value, frozen)
    for p, w in zip(train_params, want):
        np.testing.assert_allclose(p.value, w, rtol=1e-12, atol=1e-14)


def test_gradients_and_activations_that_are_outputs_are_not_packed_away():
    g, X, y, params, loss = mlp((2, 16, 2))
    hidden = sg.relu(X @ params[0] + params[1])
    grads = sg.grad(loss, params)
    step = sg.compile(
        [loss, hidden, grads[0], grads[1]],
        [X, y],
        updates={p: p - 0.1 * d for p, d in zip(params, grads)},
    )
    Xv, yv = batches((2, 16, 2), (5,))[0]
    start = [p.value.copy() for p in params]
    want = sg.evaluate([loss, hidden, grads[0], grads[1]], {X: Xv, y: yv})
    got = step(Xv, yv)
    for a, w in zip(got, want):
        np.testing.assert_allclose(a, w, rtol=1e-12, atol=1e-14)
    ds = sg.evaluate(grads, {X: Xv, y: yv, **dict(zip(params, start))})
    for p, s, d in zip(params, start, ds):
        np.testing.assert_allclose(p.value, s - 0.1 * d, rtol=1e-12, atol=1e-14)


def test_a_wide_input_is_not_copied():
    g, X, y, params, loss = mlp((40, 4, 3))
    grads = sg.grad(loss, params)
    step = sg.compile(loss, [X, y], updates={p: p - 0.1 * d for p, d in zip(params, grads)})
    data = batches((40, 4, 3), (6, 6))
    want = replay(params, loss, X, y, data, [0.1] * 4)
    for Xv, yv in data:
        step(Xv, yv)
    assert "np.copyto(h" not in step.source
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.value, w, rtol=1e-12, atol=1e-14)


def test_a_view_of_a_pinned_activation_handed_out_is_not_overwritten_later():
    g, X, y, params, loss = mlp((2, 16, 2))
    hidden = sg.relu(X @ params[0] + params[1])
    fn = sg.compile([hidden.T, *sg.grad(loss, params)], [X, y])
    first, second = batches((2, 16, 2), (4, 4))
    kept = fn(*first)[0]
    want = sg.evaluate(hidden.T, {X: first[0]})
    fn(*second)
    assert "np.maximum(" in fn.source
    np.testing.assert_allclose(kept, want, rtol=1e-13)


def test_a_gradient_that_does_not_wait_for_the_forward_matmul_is_still_right():
    # the loss is linear, so dW = X^T @ ones needs no forward value and may run first
    g = sg.Graph()
    X = g.input("X", ("batch", 2))
    W, b = g.variable("W", rng.standard_normal((2, 6))), g.variable("b", rng.standard_normal(6))
    loss = sg.sum(X @ W + b)
    dW, db = sg.grad(loss, [W, b])
    step = sg.compile(loss, [X], updates={W: W - 0.1 * dW, b: b - 0.1 * db})
    for batch in (3, 5, 3):
        Xv = rng.standard_normal((batch, 2))
        W0, b0 = W.value.copy(), b.value.copy()
        np.testing.assert_allclose(step(Xv), np.sum(Xv @ W0 + b0), rtol=1e-12)
        np.testing.assert_allclose(W.value, W0 - 0.1 * Xv.sum(0)[:, None], rtol=1e-12)
        np.testing.assert_allclose(b.value, b0 - 0.1 * batch, rtol=1e-12)


def test_big_activations_keep_the_plain_bias_add():
    step, params, want = train((3, 16, 2), counts=(2000, 2000))
    assert _bias_adds(step.source)  # [h, 1] would be 2000 x 17: the strided writes cost more
    assert "np.copyto(h" in step.source  # the first layer's [X, 1] is small enough
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.value, w, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("gemm", [True, False])
def test_a_big_variable_is_updated_alone(gemm, monkeypatch):
    if not gemm:
        monkeypatch.setattr(blas, "_gemm", lambda dtype: None)
    step, params, want = train((3, 200, 200, 2), counts=(3, 3))
    source = step.source
    # W1 (40,000 elements): its gradient product added into it by BLAS, or added in place
    assert ("gemm" in source) == gemm and ("out=w" in source) != gemm
    assert "out=p" in source  # the small ones still packed
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.value, w, rtol=1e-11, atol=1e-13)


def two_layers(hidden: int):
    """X of 3 features and two layers (3 -> hidden -> 2), each a weight and its bias."""
    g = sg.Graph()
    X = g.input("X", ("batch", 3))
    W0 = g.variable("W0", rng.standard_normal((3, hidden)))
    b0 = g.variable("b0", rng.standard_normal(hidden))
    W1, b1 = (
        g.variable("W1", rng.standard_normal((hidden, 2))),
        g.variable("b1", rng.standard_normal(2)),
    )
    return X, W0, b0, W1, b1


def test_a_biased_matmul_written_into_the_next_layers_ones_column_buffer():
    # no activation between the layers: the first sum is itself the next layer's [h, 1]
    X, W0, b0, W1, b1 = two_layers(5)
    out = (X @ W0 + b0) @ W1 + b1
    fn = sg.compile(out, [X])
    for batch in (4, 2):
        Xv = rng.standard_normal((batch, 3))
        want = (Xv @ W0.value + b0.value) @ W1.value + b1.value
        np.testing.assert_allclose(fn(Xv), want, rtol=1e-13)
    assert not _bias_adds(fn.source)


def test_a_wide_hidden_layer_takes_a_ones_column_only_while_small():
    # writing h into [h, 1] is a strided pass: for a big h (64 x 128 here, 128 > 2 x 10
    # columns) it costs more than the output layer's bias add and bias sum it would save
    g, X, y, params, loss = mlp((64, 128, 10))
    grads = sg.grad(loss, params)
    step = sg.compile(loss, [X, y], updates={p: p - 0.1 * d for p, d in zip(params, grads)})
    data = batches((64, 128, 10), (64, 8, 64, 8))
    want = replay(params, loss, X, y, data, [0.1] * 4)
    adds = []
    for Xv, yv in data:
        step(Xv, yv)
        adds.append(len(_bias_adds(step.source)))
    assert adds == [1, 0, 1, 0]  # batch 64: the output layer adds its bias; batch 8: in [h, 1]
    assert "np.copyto(h" in step.source  # the input keeps its ones column at every batch
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.value, w, rtol=1e-11, atol=1e-13)


def test_a_fused_relu_writes_the_next_layers_ones_column_from_a_contiguous_product():
    # [h, 1] is a strided view: the product goes to a scratch array (np.dot, no stride) and
    # the ReLU, against a kept array of zeros, writes the view once
    X, W0, b0, W1, b1 = two_layers(8)
    fn = sg.compile(sg.relu(X @ W0 + b0) @ W1 + b1, [X])
    for batch in (5, 2, 5):
        Xv = rng.standard_normal((batch, 3))
        want = np.maximum(Xv @ W0.value + b0.value, 0) @ W1.value + b1.value
        np.testing.assert_allclose(fn(Xv), want, rtol=1e-13)
        first = fn.source.splitlines()[1]
        assert re.search(r"np\.dot\(h\d+, wb\d+, (m\d+)\); np\.maximum\(\1, z\d+, out=s", first)
    assert not _bias_adds(fn.source) and "np.matmul(h" not in first


def test_the_workspace_counts_the_layout_buffers_and_scratch_masks():
    step, params, want = train((2, 16, 2), counts=(7,))
    mirror = 82 * 8  # the packed gradients, float64
    ones_columns = 7 * (2 + 1) * 8 + 7 * (16 + 1) * 8  # [X, 1] and [h, 1]
    mask = 7 * 16  # the ReLU mask, bool
    assert "out=m" in step.source  # the mask computed into its scratch array
    assert step.workspace_bytes >= mirror + ones_columns + mask


def test_a_bias_add_fused_with_its_activation_rides_in_the_matmul():
    # tanh' is written on tanh's output, so the add and the tanh fuse into one chain whose
    # first step (the bias add) becomes the matmul of [h, 1] and [W; b]
    g, X, y, params, loss = mlp((3, 8, 6, 2), activation=sg.tanh)
    grads = sg.grad(loss, params)
    step = sg.compile(loss, [X, y], updates={p: p - 0.1 * d for p, d in zip(params, grads)})
    data = batches((3, 8, 6, 2), (5, 2, 5))
    want = replay(params, loss, X, y, data, [0.1] * 6)
    for Xv, yv in data:
        step(Xv, yv)
    for p, w in zip(params, want):
        np.testing.assert_allclose(p.value, w, rtol=1e-12, atol=1e-14)
    chains = [line for line in step.source.splitlines() if "np.tanh(" in line]
    assert len(chains) == 2 and all("np.matmul(h" in line or "np.dot(h" in line for line in chains)
    assert not _bias_adds(step.source) and "np.add(s" not in step.source


def test_an_update_adding_a_biased_matmul_writes_its_variable():
    g = sg.Graph()
    H = g.input("H", (8, 10))
    W, b = g.variable("W", rng.standard_normal((10, 6))), g.variable("b", rng.standard_normal(6))
    S = g.variable("S", np.zeros((8, 6)))
    new = S + (H @ W + b)
    step = sg.compile([], [H], updates={S: new})
    for _ in range(2):
        h = rng.standard_normal((8, 10))
        want = sg.evaluate(new, {H: h})
        step(h)
        np.testing.assert_allclose(S.value, want, rtol=1e-13, atol=1e-13)


def test_a_new_value_viewing_another_updated_variable_sees_its_old_value():
    g = sg.Graph()
    A, B = g.input("A", (50, 200)), g.input("B", (50, 200))
    Vt = g.variable("Vt", np.zeros((200, 200)))
    W = g.variable("W", rng.standard_normal((200, 200)))
    step = sg.compile([], [A, B], updates={Vt: W.T, W: W - 0.1 * (A.T @ B)})
    a, b = rng.standard_normal((50, 200)), rng.standard_normal((50, 200))
    w_old = W.value.copy()
    step(a, b)
    np.testing.assert_array_equal(Vt.value, w_old.T)
    np.testing.assert_allclose(W.value, w_old - 0.1 * a.T @ b, rtol=1e-13, atol=1e-13)


DERIVATIVES = {
    "jacobian fwd": lambda y, x, W, b: sg.jacobian(y, x, mode="fwd"),
    "jacobian rev": lambda y, x, W, b: sg.jacobian(y, x, mode="rev"),
    "jacobian in b": lambda y, x, W, b: sg.jacobian(y, [W, b])[1],
    "hessian": lambda y, x, W, b: sg.hessian(sg.sum(y * y), x),
    "jvp": lambda y, x, W, b: sg.jvp(y, x, np.ones((2, 3, 4))),
}


@pytest.mark.parametrize("name", sorted(DERIVATIVES))
def test_batched_derivatives_through_a_packed_bias_layer(name):
    # W and b made one after the other are one [W; b] matrix; a fused chain that broadcasts
    # the product against a batch of tangents cannot be computed into the product's buffer
    g = sg.Graph()
    x = g.input("x", (3, 4))
    rng = np.random.default_rng(0)
    W = g.variable("W", rng.standard_normal((4, 5)))
    b = g.variable("b", rng.standard_normal(5))
    out = DERIVATIVES[name](sg.sin(x @ W + b), x, W, b)
    xv = rng.standard_normal((3, 4))
    got = sg.compile(out, [x])(xv)
    np.testing.assert_allclose(got, sg.evaluate([out], {x: xv})[0], rtol=1e-13, atol=1e-14)
    if name.startswith("jacobian") and name != "jacobian in b":
        # by hand: d sin(z)[i, j] / d x[i, k] = cos(z)[i, j] W[k, j]
        jac = np.einsum("ij,kj,il->ijlk", np.cos(xv @ W.value + b.value), W.value, np.eye(3))
        np.testing.assert_allclose(got, jac, rtol=1e-13, atol=1e-14)


def test_an_input_transposed_for_the_packed_gradients_can_be_an_output():
    # [dW; db] as one [x, 1]^T @ dz took over x.T's statement: as an output it had no name
    g = sg.Graph()
    x, y = g.input("x", (4, 3)), g.input("y", (4, 2))
    W, b = g.variable("W", np.ones((3, 2))), g.variable("b", np.zeros(2))
    loss = sg.mean(sg.square(x @ W + b - y))
    dW, db = sg.grad(loss, [W, b])
    f = sg.compile([loss, x.T], [x, y], updates={W: W - 0.1 * dW, b: b - 0.1 * db})
    xv, yv = np.arange(12.0).reshape(4, 3), np.ones((4, 2))
    r = xv @ np.ones((3, 2)) - yv
    got = f(xv, yv)
    assert got[0] == pytest.approx(np.mean(r**2))
    np.testing.assert_array_equal(got[1], xv.T)
    np.testing.assert_allclose(W.value, 1 - 0.1 * xv.T @ r / 4, rtol=1e-14)
    np.testing.assert_allclose(b.value, -0.1 * r.sum(0) / 4, rtol=1e-14)
