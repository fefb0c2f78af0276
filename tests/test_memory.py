"""Workspace buffers and in-place updates: compiled results stay equal to the evaluator's."""

import re

import numpy as np
import pytest

import symgrad as sg

rng = np.random.default_rng(11)


def train_step(lr=0.1):
    g = sg.Graph()
    X, y = g.input("X", ("batch", 5)), g.input("y", ("batch",), "int64")
    W1 = g.variable("W1", rng.standard_normal((5, 8)))
    b1 = g.variable("b1", np.zeros(8))
    W2 = g.variable("W2", rng.standard_normal((8, 3)))
    logits = sg.relu(X @ W1 + b1) @ W2
    loss = sg.cross_entropy(logits, y).mean()
    params = [W1, b1, W2]
    grads = sg.grad(loss, params)
    return g, X, y, params, loss, grads, logits


def test_kernels_use_workspace_buffers_and_update_in_place():
    g, X, y, params, loss, grads, _ = train_step()
    step = sg.compile(loss, [X, y], updates={p: p - 0.1 * d for p, d in zip(params, grads)})
    step(rng.standard_normal((4, 5)), rng.integers(0, 3, 4))
    assert "out=s" in step.source  # values computed into reused buffers
    assert "out=p" in step.source  # the adjacent parameters updated in place by one call
    assert "[...] =" not in step.source


def test_a_lone_parameter_is_updated_where_its_new_value_is_computed():
    g = sg.Graph()
    x = g.input("x", ("batch", 3))
    W = g.variable("W", rng.standard_normal((3, 2)))
    loss = sg.sum(sg.tanh(x @ W) ** 2)
    step = sg.compile(loss, [x], updates={W: W - 0.1 * sg.grad(loss, W)})
    xv, start = rng.standard_normal((4, 3)), W.value.copy()
    array = W.value
    step(xv)
    assert "out=w" in step.source and "[...] =" not in step.source
    want = start - 0.1 * sg.evaluate(sg.grad(loss, W), {x: xv, W: start})
    assert W.value is array
    np.testing.assert_allclose(W.value, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("batches", [(4, 4, 4), (3, 7, 3, 7, 3)])
def test_repeated_and_alternating_calls_match_the_evaluator(batches):
    g, X, y, params, loss, grads, logits = train_step()
    fn = sg.compile([loss, logits, *grads], [X, y])
    kept = []
    for b in batches:
        Xv, yv = rng.standard_normal((b, 5)), rng.integers(0, 3, b)
        got = fn(Xv, yv)
        want = sg.evaluate([loss, logits, *grads], {X: Xv, y: yv})
        for a, w in zip(got, want):
            np.testing.assert_allclose(a, w, rtol=1e-12, atol=1e-14)
        kept.append((got, want))
    # results handed out earlier were not overwritten by later calls reusing the workspace
    for got, want in kept:
        for a, w in zip(got, want):
            np.testing.assert_allclose(a, w, rtol=1e-12, atol=1e-14)


def test_training_with_updates_matches_a_numpy_replay():
    g, X, y, params, loss, grads, _ = train_step()
    start = [p.value.copy() for p in params]
    step = sg.compile(loss, [X, y], updates={p: p - 0.1 * d for p, d in zip(params, grads)})
    replay = [s.copy() for s in start]
    batches = [(rng.standard_normal((6, 5)), rng.integers(0, 3, 6)) for _ in range(5)]
    for p, s in zip(params, start):
        p.value[...] = s
    for Xv, yv in batches:
        # the reference: gradients from the evaluator at the replayed parameters
        feed = {X: Xv, y: yv, **dict(zip(params, replay))}
        ds = sg.evaluate(grads, feed)
        replay = [r - 0.1 * d for r, d in zip(replay, ds)]
        step(Xv, yv)
    for p, r in zip(params, replay):
        np.testing.assert_allclose(p.value, r, rtol=1e-12, atol=1e-14)


def test_an_output_viewing_an_updated_variable_keeps_the_old_value():
    g = sg.Graph()
    W = g.variable("W", np.arange(6.0).reshape(2, 3))
    x = g.input("x", (3,))
    loss = sg.sum((W @ x) ** 2)
    step = sg.compile([loss, W.T], [x], updates={W: W - 0.01 * sg.grad(loss, W)})
    old = W.value.copy()
    _, WT = step(np.ones(3))
    np.testing.assert_array_equal(WT, old.T)
    assert not np.array_equal(W.value, old)


def test_a_one_call_fused_kernel_writes_over_an_argument_dying_with_it():
    import re

    g = sg.Graph()
    X, y = g.input("X", ("batch", 6)), g.input("y", ("batch",), "int64")
    W1, b1 = g.variable("W1", rng.standard_normal((6, 8))), g.variable("b1", np.zeros(8))
    W2, b2 = g.variable("W2", rng.standard_normal((8, 3))), g.variable("b2", np.zeros(3))
    params = [W1, b1, W2, b2]
    loss = sg.cross_entropy(sg.relu(X @ W1 + b1) @ W2 + b2, y).mean()
    grads = sg.grad(loss, params)
    step = sg.compile(loss, [X, y], updates={p: p - 0.1 * d for p, d in zip(params, grads)})
    for b in (5, 2, 5):
        Xv, yv = rng.standard_normal((b, 6)), rng.integers(0, 3, b)
        start = [p.value.copy() for p in params]
        ds = sg.evaluate(grads, {X: Xv, y: yv})
        step(Xv, yv)
        for p, s, d in zip(params, start, ds):
            np.testing.assert_allclose(p.value, s - 0.1 * d, rtol=1e-12, atol=1e-14)
    # the ReLU mask (as floats) times the incoming gradient, into the buffer of one of the two
    pattern = (
        r"np\.greater\((s\d+), 0, out=(m\d+)\); np\.copyto\((m\d+), \2\); "
        r"np\.multiply\((s\d+), \3, out=(s\d+)\)"
    )
    mask = re.search(pattern, step.source)
    assert mask and mask.group(5) in mask.group(1, 4)


def test_masks_computed_into_scratch_arrays_keep_their_values_apart():
    g = sg.Graph()
    x, b, c = (g.input(name, ("n", 4)) for name in "xbc")
    loss = sg.sum(sg.relu(b) * sg.relu(c) * x)
    mixed = sg.grad(sg.sum(sg.grad(loss, b)), c)  # x * (b > 0) * (c > 0): two masks
    out = sg.sum(sg.tanh(mixed) * 2.0 + mixed * mixed)
    fn = sg.compile(out, [x, b, c])
    for n in (3, 6, 3):
        xv, bv, cv = rng.standard_normal((3, n, 4))
        m = xv * (bv > 0) * (cv > 0)
        np.testing.assert_allclose(fn(xv, bv, cv), np.sum(np.tanh(m) * 2 + m * m), rtol=1e-12)
    assert "out=m" in fn.source


@pytest.mark.parametrize(
    "make", [lambda a, b, c: c * (a - b) * 0.25, lambda a, b, c: sg.exp(a) - b * c]
)
def test_a_product_or_sum_of_a_difference_is_computed_into_a_buffer(make):
    # c * (a - b): the difference is the chain, c a plain operand (-b alone is no chain)
    g = sg.Graph()
    a, b, c = (g.input(name, ("n", 3)) for name in "abc")
    out = sg.sum(sg.tanh(make(a, b, c)))
    fn = sg.compile(out, [a, b, c])
    for n in (4, 2):
        vals = rng.standard_normal((3, n, 3))
        np.testing.assert_allclose(fn(*vals), sg.evaluate(out, dict(zip([a, b, c], vals))))
    assert "np.subtract(" in fn.source and "out=s" in fn.source
    assert not [line for line in fn.source.splitlines() if line.lstrip().startswith("v")][:-1]


def test_a_relu_mask_product_allocates_nothing_per_call():
    # float times bool is cast through a buffer NumPy allocates on every call (64 KiB here):
    # the kernel copies the mask into floats it keeps instead
    import tracemalloc

    g = sg.Graph()
    X = g.input("X", ("batch", 64))
    W1 = g.variable("W1", rng.standard_normal((64, 128)) / 8)
    W2 = g.variable("W2", rng.standard_normal((128, 4)) / 11)
    loss = sg.sum(sg.square(sg.relu(X @ W1) @ W2))
    grads = sg.grad(loss, [W1, W2])
    step = sg.compile(loss, [X], updates={W: W - 1e-3 * d for W, d in zip([W1, W2], grads)})
    Xv = rng.standard_normal((64, 64))
    for _ in range(2):
        start = [W1.value.copy(), W2.value.copy()]
        ds = sg.evaluate(grads, {X: Xv})
        step(Xv)
        for W, s, d in zip([W1, W2], start, ds):
            np.testing.assert_allclose(W.value, s - 1e-3 * d, rtol=1e-12, atol=1e-14)
    assert "np.copyto(m" in step.source
    tracemalloc.start()
    try:
        step(Xv)
        tracemalloc.reset_peak()
        step(Xv)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024


def test_an_hvp_allocates_nothing_per_call_but_its_results():
    # its ReLU masks are kept nodes of their own (each read twice), its softmax is kept for the
    # tangent, and its gradient is that softmax less the labels' ones: all in kept arrays
    import tracemalloc

    g = sg.Graph()
    X, y = g.input("X", ("batch", 64)), g.input("y", ("batch",), "int64")
    shapes = [(64, 128), (128,), (128, 10), (10,)]
    params = [g.input(f"p{i}", s) for i, s in enumerate(shapes)]
    vs = [g.input(f"v{i}", s) for i, s in enumerate(shapes)]
    W1, b1, W2, b2 = params
    loss = sg.cross_entropy(sg.relu(X @ W1 + b1) @ W2 + b2, y).mean()
    hv = sg.hvp(loss, params, vs)
    fn = sg.compile(hv, [X, y, *params, *vs])
    for batch in (64, 32, 64):
        vals = [rng.standard_normal((batch, 64)), rng.integers(0, 10, batch)]
        vals += [rng.standard_normal(s) / 8 for s in shapes]
        vals += [rng.standard_normal(s) for s in shapes]
        want = sg.evaluate(hv, dict(zip([X, y, *params, *vs], vals)))
        for a, w in zip(fn(*vals), want):
            np.testing.assert_allclose(a, w, rtol=1e-12, atol=1e-14)
    source = fn.source
    assert "np.asarray(" not in source and "rt.one_hot(" not in source
    assert "rt.minus_one_hot(" in source and "out=m" in source
    tracemalloc.start()
    try:
        fn(*vals)
        tracemalloc.reset_peak()
        results = fn(*vals)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - sum(r.nbytes for r in results) < 4 * 1024  # 60 KiB of masks and one-hots before


def test_a_step_with_wide_bias_adds_allocates_only_in_its_head():
    # a bias broadcast over 32K elements or more is copied and gemm adds the product to it:
    # NumPy's broadcast add allocates its iterator buffer (8,192 elements, 64 KiB) on every
    # call; the head keeps its
    # class-first copy of the logits, and what it still allocates is its broadcast shift's
    # buffer (the 2,560 logits, 20 KiB) and a few arrays of one value per row
    import tracemalloc

    g = sg.Graph()
    X, y = g.input("X", ("batch", 300)), g.input("y", ("batch",), "int64")
    W1 = g.variable("W1", rng.standard_normal((300, 128)) / 17)  # wide input: no [X, 1]
    b1 = g.variable("b1", rng.standard_normal(128))
    W2 = g.variable("W2", rng.standard_normal((128, 10)) / 11)
    params = [W1, b1, W2]
    loss = sg.cross_entropy(sg.relu(X @ W1 + b1) @ W2, y).mean()
    grads = sg.grad(loss, params)
    step = sg.compile(loss, [X, y], updates={p: p - 0.1 * d for p, d in zip(params, grads)})
    Xv, yv = rng.standard_normal((256, 300)), rng.integers(0, 10, 256)
    for _ in range(2):
        start = [p.value.copy() for p in params]
        ds = sg.evaluate(grads, {X: Xv, y: yv})
        step(Xv, yv)
        for p, s, d in zip(params, start, ds):
            np.testing.assert_allclose(p.value, s - 0.1 * d, rtol=1e-12, atol=1e-14)
    assert re.search(r"np\.copyto\(s\d+, w\d+\); gemm\d+\(a0, w\d+\)  # %\d+ add", step.source)
    tracemalloc.start()
    try:
        step(Xv, yv)
        tracemalloc.reset_peak()
        step(Xv, yv)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 36 * 1024  # 66,696 B before: the bias add's buffer
    assert "work=m" in step.source


@pytest.mark.parametrize("shape", [(3,), (128, 256)])
def test_one_new_value_for_two_variables_updates_both(shape):
    # written in place into the first variable, the value never reached the second
    rng = np.random.default_rng(0)
    g = sg.Graph()
    a, b = g.variable("a", rng.normal(size=shape)), g.variable("b", rng.normal(size=shape))
    x = g.input("x", shape)
    a0, b0, xv = a.value.copy(), b.value.copy(), rng.normal(size=shape)
    for new, want in ((a + x, a0 + xv), (a + b, None)):
        a.value[...], b.value[...] = a0, b0
        want = a0 + b0 if want is None else want
        sg.compile([], [x], updates={a: new, b: new})(xv)
        np.testing.assert_allclose(a.value, want, rtol=1e-15)
        np.testing.assert_allclose(b.value, want, rtol=1e-15)


def test_outputs_sharing_memory_come_back_as_arrays_of_their_own():
    g = sg.Graph()
    x = g.input("x", (2, 3))
    y = sg.tanh(x)
    s = sg.sum(y)
    xv = np.ones((2, 3))
    for outs in ([y, y.T], [y, y], [s, s]):
        a, b = sg.compile(outs, [x])(xv)
        assert not np.shares_memory(a, b)
        np.testing.assert_array_equal(np.asarray(b), sg.evaluate(outs[1], {x: xv}))
