"""Products added into arrays through BLAS gemm (``symgrad/blas.py``) and the kernels that
add a big weight's gradient product into the weight (``symgrad/compile/accumulate.py``)."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import symgrad as sg
from symgrad import blas

rng = np.random.default_rng(11)
needs_gemm = pytest.mark.skipif(
    blas._gemm(np.dtype(np.float64)) is None, reason="NumPy's BLAS has no gemm reachable"
)


def operand(shape, transposed: bool, dtype):
    """An array of ``shape``, stored transposed (F order) when asked."""
    x = rng.standard_normal(shape[::-1] if transposed else shape).astype(dtype)
    return x.T if transposed else x


@needs_gemm
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
@pytest.mark.parametrize("alpha", [1.0, -0.05])
def test_an_accumulator_adds_the_product_in_every_layout(dtype, ta, tb, alpha):
    c = rng.standard_normal((7, 5)).astype(dtype)
    a, b = operand((7, 3), ta, dtype), operand((3, 5), tb, dtype)
    want = c.astype(np.float64) + alpha * (a.astype(np.float64) @ b.astype(np.float64))
    acc = blas.accumulator(c, alpha)
    assert acc is not None
    acc(a, b)
    acc.fix(a, b)  # the same arrays again, their layouts read once
    acc(a, b)
    want += alpha * (a.astype(np.float64) @ b.astype(np.float64))
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(c, want, rtol=tol, atol=tol)


@needs_gemm
@pytest.mark.parametrize(
    "case",
    ["strided", "another dtype", "overlaps c", "fixed then changed"],
)
def test_operands_blas_cannot_read_go_through_numpy(case):
    c = rng.standard_normal((6, 4))
    a, b = rng.standard_normal((6, 3)), rng.standard_normal((3, 4))
    acc = blas.accumulator(c, 0.5)
    if case == "strided":
        a = rng.standard_normal((6, 6))[:, ::2]
    elif case == "another dtype":
        b = b.astype(np.float32)
    elif case == "overlaps c":
        a = c[:, :3]  # read while written: BLAS would see half-updated values
    elif case == "fixed then changed":
        acc.fix(a)
        a = a.copy()  # another object: its layout is read again
    want = c + 0.5 * (a.astype(np.float64) @ b.astype(np.float64))
    acc(a, b)
    np.testing.assert_allclose(c, want, rtol=1e-14, atol=1e-14)


@needs_gemm
def test_an_array_passed_on_each_call_is_checked_too():
    acc = blas.accumulator(None, 2.0, np.float64)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5))
    for c in (np.ones((4, 5)), np.ones((4, 5), np.float32), np.ones((5, 4)).T):
        want = c.astype(np.float64) + 2.0 * (a @ b)
        acc(a, b, c)  # float64, then float32 and F order, which go through NumPy
        np.testing.assert_allclose(c, want, rtol=1e-6)
    shared = np.ones((4, 5))
    want = shared + 2.0 * (shared[:, :3] @ b)
    acc(shared[:, :3], b, shared)  # an operand overlapping the array written
    np.testing.assert_allclose(shared, want, rtol=1e-14)


def test_no_accumulator_without_a_writable_contiguous_float_matrix():
    assert blas.accumulator(np.zeros((4, 4))[:, ::2], 1.0) is None
    assert blas.accumulator(np.zeros(5), 1.0) is None
    assert blas.accumulator(np.zeros((3, 3), np.int64), 1.0) is None
    frozen = np.zeros((3, 3))
    frozen.flags.writeable = False
    assert blas.accumulator(frozen, 1.0) is None


@needs_gemm
def test_operands_of_the_wrong_shape_raise_numpys_error_and_leave_c_alone():
    c = np.zeros((4, 5))
    acc = blas.accumulator(c, 1.0)
    with pytest.raises(ValueError):
        acc(np.ones((4, 3)), np.ones((2, 5)))  # inner dims differ: gemm would read past b
    with pytest.raises(ValueError):
        acc(np.ones((3, 2)), np.ones((2, 5)))  # 3 rows into 4
    np.testing.assert_array_equal(c, 0)


def test_the_environment_can_turn_gemm_off():
    code = "import numpy as np; from symgrad import blas; print(blas._gemm(np.dtype('f8')))"
    env = {**os.environ, "SYMGRAD_NO_GEMM": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "None", done.stderr


def test_without_gemm_there_is_no_accumulator(monkeypatch):
    monkeypatch.setattr(blas, "_gemm", lambda dtype: None)
    assert blas.accumulator(np.zeros((3, 3)), 1.0) is None


def regression(dtype, width=300):
    """Least squares through one hidden ReLU layer whose input weight has 60,000 entries."""
    g = sg.Graph()
    X = g.input("X", ("batch", 200), dtype)
    t = g.input("t", ("batch", 3), dtype)
    W0 = g.variable("W0", rng.standard_normal((200, width)) / 15, dtype)
    W1 = g.variable("W1", rng.standard_normal((width, 3)) / 15, dtype)
    loss = (((sg.relu(X @ W0) @ W1) - t) ** 2).sum() * 0.5
    return g, X, t, [W0, W1], loss


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("gemm", [True, False])
def test_sgd_steps_adding_products_into_a_weight_match_the_evaluator(dtype, gemm, monkeypatch):
    if not gemm:
        monkeypatch.setattr(blas, "_gemm", lambda dtype: None)
    elif blas._gemm(np.dtype(dtype)) is None:
        pytest.skip("NumPy's BLAS has no gemm reachable")
    g, X, t, params, loss = regression(dtype)
    lr = 1e-3
    grads = sg.grad(loss, params)
    step = sg.compile(loss, [X, t], updates={p: p - lr * d for p, d in zip(params, grads)})
    values = [p.value.copy() for p in params]
    for batch in (8, 3, 8):  # two shape specializations, each with its own accumulator
        Xv = rng.standard_normal((batch, 200)).astype(dtype)
        tv = rng.standard_normal((batch, 3)).astype(dtype)
        feed = {X: Xv, t: tv, **dict(zip(params, values))}
        want_loss = sg.evaluate(loss, feed)
        values = [v - np.asarray(lr * d, dtype) for v, d in zip(values, sg.evaluate(grads, feed))]
        got = step(Xv, tv)
        tol = 1e-12 if dtype == "float64" else 2e-4
        np.testing.assert_allclose(got, want_loss, rtol=tol)
        for p, v in zip(params, values):
            np.testing.assert_allclose(p.value, v, rtol=tol, atol=tol)
    gemm_lines = [line for line in step.source.splitlines() if "gemm" in line]
    assert len(gemm_lines) == gemm  # W0 only: W1 (900 entries) is left to a plain add
    assert step.source.count("out=w") == 2 - gemm  # the weights added to in place


@needs_gemm
def test_a_weight_read_after_its_gradient_product_is_not_written_early():
    # an output reading W0, scheduled between W0's gradient product and its update
    g, X, t, params, loss = regression("float64")
    W0 = params[0]
    grads = sg.grad(loss, params)
    late = (W0 * W0).sum()
    step = sg.compile([loss, late], [X, t], updates={W0: W0 - 0.01 * grads[0]})
    Xv, tv = rng.standard_normal((5, 200)), rng.standard_normal((5, 3))
    want = sg.evaluate([loss, late], {X: Xv, t: tv})
    want_w0 = W0.value - 0.01 * sg.evaluate(grads[0], {X: Xv, t: tv})
    got = step(Xv, tv)
    assert "gemm" not in step.source
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(W0.value, want_w0, rtol=1e-12, atol=1e-14)


def with_and_without_gemm(outputs, inputs, feeds, monkeypatch):
    """Results of the graph compiled with gemm and without it (NumPy matmuls and adds) on
    each of ``feeds``, and the two kernels' sources (of the last feed's shapes)."""
    fast = sg.compile(outputs, inputs)
    got = [fast(*feed) for feed in feeds]
    monkeypatch.setattr(blas, "_gemm", lambda dtype: None)
    plain = sg.compile(outputs, inputs)
    got_plain = [plain(*feed) for feed in feeds]
    monkeypatch.undo()
    return got, got_plain, fast, plain


@needs_gemm
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_summed_products_match_the_evaluator(dtype, monkeypatch):
    # a fresh output, a chain through tanh (into a workspace buffer) and transposed operands;
    # Z * 2 and the transposes are read only by the products the sums compute
    g = sg.Graph()
    X, Z = g.input("X", ("batch", 200), dtype), g.input("Z", ("batch", 200), dtype)
    W, V = g.input("W", (200, 180), dtype), g.input("V", (200, 180), dtype)
    fresh = X @ W + (Z * 2) @ V
    chained = sg.tanh(X @ V + Z @ W) * 3
    wide = X.T @ chained + Z.T @ sg.tanh(fresh)  # (200, 180): a sum of two X^T-like products
    outputs = [fresh, chained.sum(), wide]
    feeds = []
    for batch in (200, 190, 200):  # (batch, 180) sums of at least 32K elements
        feed = [rng.standard_normal(s).astype(dtype) / 10 for s in ((batch, 200),) * 2]
        feeds.append(feed + [rng.standard_normal((200, 180)).astype(dtype) for _ in range(2)])
    got, got_plain, fast, plain = with_and_without_gemm(outputs, [X, Z, W, V], feeds, monkeypatch)
    tol = 1e-12 if dtype == "float64" else 2e-4
    for feed, a, b in zip(feeds, got, got_plain):
        want = sg.evaluate(outputs, dict(zip([X, Z, W, V], feed)))
        for results in (a, b):
            for x, w in zip(results, want):
                np.testing.assert_allclose(x, w, rtol=tol, atol=tol)
    assert fast.source.count("gemm") == 3 and "gemm" not in plain.source


@needs_gemm
def test_hvp_kernels_add_summed_products_by_gemm_and_match_without(monkeypatch):
    g = sg.Graph()
    X, y = g.input("X", (200, 300)), g.input("y", (200,), "int64")
    W0, W1 = g.input("W0", (300, 200)), g.input("W1", (200, 10))
    V0, V1 = g.input("V0", (300, 200)), g.input("V1", (200, 10))
    inputs = [X, y, W0, W1, V0, V1]
    loss = sg.cross_entropy(sg.relu(X @ W0) @ W1, y).mean()
    hv = sg.hvp(loss, [W0, W1], [V0, V1])
    feed = [rng.standard_normal((200, 300)), rng.integers(0, 10, 200)]
    feed += [rng.standard_normal(s) / 10 for s in ((300, 200), (200, 10), (300, 200), (200, 10))]
    got, got_plain, fast, plain = with_and_without_gemm(hv, inputs, [feed], monkeypatch)
    want = sg.evaluate(hv, dict(zip(inputs, feed)))
    staged = fast.specialize(dict(zip(inputs[:4], feed[:4])))
    for results in (got[0], got_plain[0], staged(*feed[4:])):
        for a, b in zip(results, want):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
    assert "gemm" in fast.source and "gemm" in staged.source and "gemm" not in plain.source


def test_a_tied_weight_whose_gradient_is_a_sum_of_products_is_updated(monkeypatch):
    # W used twice: its gradient is X1^T @ . + X2^T @ . and the SGD update adds that sum
    g = sg.Graph()
    X1, X2 = g.input("X1", ("batch", 256)), g.input("X2", ("batch", 256))
    W = g.variable("W", rng.standard_normal((256, 256)) / 16)
    loss = ((sg.tanh(X1 @ W) - sg.tanh(X2 @ W)) ** 2).sum()
    (dW,) = sg.grad(loss, [W])
    step = sg.compile(loss, [X1, X2], updates={W: W - 0.01 * dW})
    for _ in range(2):  # both products added into W by gemm, where the later one is scheduled
        x1, x2 = rng.standard_normal((64, 256)), rng.standard_normal((64, 256))
        want = W.value - 0.01 * sg.evaluate(dW, {X1: x1, X2: x2})
        step(x1, x2)
        np.testing.assert_allclose(W.value, want, rtol=1e-12, atol=1e-14)
    assert sum(line.count("gemm") for line in step.source.splitlines()) == (gemm_found() and 2)


def gemm_found() -> bool:
    return blas._gemm(np.dtype(np.float64)) is not None


@pytest.mark.parametrize("form", range(4))
def test_an_update_adding_summed_products_writes_its_variable(form):
    g = sg.Graph()
    X, Z, V, U = (g.input(name, (200, 200)) for name in "XZVU")
    W = g.variable("W", rng.standard_normal((200, 200)))
    new = [
        lambda: X @ V + Z @ U + W,
        lambda: W + (X @ V + Z @ U),
        lambda: sg.tanh(X @ V + Z @ U) + W,
        lambda: (X @ V + Z @ U) * 0.5 + W,
    ][form]()
    step = sg.compile([], [X, Z, V, U], updates={W: new})
    feed = [rng.standard_normal((200, 200)) for _ in range(4)]
    want = sg.evaluate(new, dict(zip([X, Z, V, U], feed)))
    step(*feed)
    np.testing.assert_allclose(W.value, want, rtol=1e-12, atol=1e-12)


def test_a_product_computed_at_its_sum_reads_the_weight_before_its_update():
    # X @ W is computed by the sum's statement, after the update's product G is scheduled
    g = sg.Graph()
    X, Z, V = (g.input(name, (200, 200)) for name in "XZV")
    A, B = g.input("A", (50, 200)), g.input("B", (50, 200))
    W = g.variable("W", rng.standard_normal((200, 200)))
    P = X @ W
    G = A.T @ B  # W's update product, scheduled between P and the sum
    S = P + Z @ V
    step = sg.compile(S, [X, Z, V, A, B], updates={W: W - 0.1 * G})
    feed = [rng.standard_normal(s) for s in ((200, 200),) * 3 + ((50, 200),) * 2]
    want = sg.evaluate(S, dict(zip([X, Z, V, A, B], feed)))
    want_w = W.value - 0.1 * feed[3].T @ feed[4]
    np.testing.assert_allclose(step(*feed), want, rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(W.value, want_w, rtol=1e-12, atol=1e-12)


def test_a_matmul_computed_at_its_bias_add_reads_the_weight_before_its_update():
    g = sg.Graph()
    H, A, B = g.input("H", (100, 100)), g.input("A", (50, 100)), g.input("B", (50, 400))
    W = g.variable("W", rng.standard_normal((100, 400)))  # 40,000 entries
    b = g.variable("b", rng.standard_normal(400))  # stored right after W: [W; b]
    M = H @ W
    G = A.T @ B  # W's update product, scheduled between the matmul and its bias add
    out = M + b
    step = sg.compile(out, [H, A, B], updates={W: W - 0.1 * G})
    feed = [rng.standard_normal(s) for s in ((100, 100), (50, 100), (50, 400))]
    want = sg.evaluate(out, dict(zip([H, A, B], feed)))
    np.testing.assert_allclose(step(*feed), want, rtol=1e-12, atol=1e-11)


@needs_gemm
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_bias_rows_added_by_gemm_match_the_evaluator(dtype, monkeypatch):
    # a variable bias (its row view made once, following its SGD updates), an input bias in
    # a fused relu(Z + c) chain and a (1, n) row bias, each added to a product (gemm adds the
    # product to the bias) and to a reduction (gemm adds ones @ bias); alternating batch sizes
    g = sg.Graph()
    X = g.input("X", ("batch", 40), dtype)
    V, U = g.input("V", (40, 180), dtype), g.input("U", (40, 180), dtype)
    c, r = g.input("c", (180,), dtype), g.input("r", (1, 180), dtype)
    T = g.input("T", ("batch", 3, 180), dtype)
    b = g.variable("b", rng.standard_normal(180).astype(dtype))  # not after W: no [W; b]
    W = g.variable("W", (rng.standard_normal((40, 180)) / 7).astype(dtype))
    loss = sg.sum(sg.tanh(X @ W + b) ** 2) + sg.sum(sg.relu(X @ V + c) * 0.5)
    loss = loss + sg.sum(sg.tanh(X @ U + r))
    loss = loss + sg.sum(sg.tanh(T.sum(1) + b) ** 2) + sg.sum(sg.relu(T.max(1) + c) * 0.5)
    loss = loss + sg.sum(sg.tanh(T.min(1) + r))
    gW, gb = sg.grad(loss, [W, b])
    inputs = [X, V, U, c, r, T]
    feeds = [
        [rng.standard_normal(s).astype(dtype) for s in ((n, 40), (40, 180), (40, 180))]
        + [rng.standard_normal(s).astype(dtype) for s in ((180,), (1, 180), (n, 3, 180))]
        for n in (200, 190, 200)  # (batch, 180) sums of at least 32K elements
    ]
    start = W.value.copy(), b.value.copy()
    results, sources = {}, {}
    for use_gemm in (True, False):
        W.value[...], b.value[...] = start
        if not use_gemm:
            monkeypatch.setattr(blas, "_gemm", lambda dtype: None)
        step = sg.compile(loss, inputs, updates={W: W - 1e-3 * gW, b: b - 1e-3 * gb})
        results[use_gemm] = [(step(*feed), W.value.copy(), b.value.copy()) for feed in feeds]
        sources[use_gemm] = step.source
        monkeypatch.undo()
    rows = r"gemm\d+\(z\d+, (view\d+|a3\.reshape\(1, -1\)|a4)\)"
    assert sorted(m.group(1)[:4] for m in re.finditer(rows, sources[True])) == [
        "a3.r",
        "a4",
        "view",
    ]
    assert sources[True].count("reshape") == 1
    biased = r"np\.copyto\(s\d+, (w\d+|a3|a4)\); gemm\d+\(a0, (w\d+|a1|a2)\)"
    found = [
        re.sub(r"w\d+", "w", m.group(1) + m.group(2)) for m in re.finditer(biased, sources[True])
    ]
    assert sorted(found) == ["a3a1", "a4a2", "ww"]  # the bias copied, gemm adding X @ weight
    assert "gemm" not in sources[False]
    tol = 1e-11 if dtype == "float64" else 2e-4
    W.value[...], b.value[...] = start
    for feed, fast, plain in zip(feeds, results[True], results[False]):
        want = sg.evaluate([loss, gW, gb], dict(zip(inputs, feed)))
        W.value[...] -= 1e-3 * want[1]
        b.value[...] -= 1e-3 * want[2]
        for got in (fast, plain):
            np.testing.assert_allclose(got[0], want[0], rtol=tol)
            np.testing.assert_allclose(got[1], W.value, rtol=tol, atol=tol)
            np.testing.assert_allclose(got[2], b.value, rtol=tol, atol=tol)


@pytest.mark.parametrize("transposed", [False, True])
def test_a_product_at_its_bias_reads_the_weight_before_a_gemm_update_scheduled_between(transposed):
    # W's update product A^T @ B is added into W by gemm where it is scheduled, between
    # H @ W and the bias add that would compute that product: the add must not read W then
    g = sg.Graph()
    H, A = g.input("H", (100, 100)), g.input("A", (50, 100))
    B = g.input("B", (50, 400))
    b = g.variable("b", rng.standard_normal(400))  # made before W: no [W; b]
    W = g.variable("W", rng.standard_normal((400, 100) if transposed else (100, 400)))
    M = H @ (W.T if transposed else W)
    G = (B.T @ A) if transposed else (A.T @ B)
    out = sg.tanh(M + b).sum()
    step = sg.compile(out, [H, A, B], updates={W: W - 0.1 * G})
    feed = [rng.standard_normal(s) for s in ((100, 100), (50, 100), (50, 400))]
    W0 = W.value.copy()
    want = sg.evaluate(out, dict(zip([H, A, B], feed)))
    np.testing.assert_allclose(
        want, np.tanh(feed[0] @ (W0.T if transposed else W0) + b.value).sum()
    )
    np.testing.assert_allclose(step(*feed), want, rtol=1e-12)
    np.testing.assert_allclose(W.value, W0 - 0.1 * sg.evaluate(G, dict(zip([A, B], feed[1:]))))


def test_a_gradient_update_between_a_product_and_its_bias_add():
    g = sg.Graph()
    X, X2 = g.input("X", ("batch", 180)), g.input("X2", ("batch", 180))
    C = g.input("C", ("batch", 200))
    b = g.variable("b", rng.standard_normal(200) * 0.3)
    W = g.variable("W", rng.standard_normal((180, 200)) / 13)  # 36,000 entries: gemm-updated
    Z = X @ W
    gW = sg.grad(((X2 @ W) * C).sum(), W)  # X2^T @ C, scheduled between Z and the bias add
    out = sg.tanh(Z + b).sum()
    step = sg.compile(out, [X, X2, C], updates={W: W - 0.01 * gW})
    for n in (200, 190, 200):
        feed = [rng.standard_normal(s) for s in ((n, 180), (n, 180), (n, 200))]
        W0 = W.value.copy()
        want = np.tanh(feed[0] @ W0 + b.value).sum()
        np.testing.assert_allclose(step(*feed), want, rtol=1e-12)
        np.testing.assert_allclose(W.value, W0 - 0.01 * feed[1].T @ feed[2], rtol=1e-12, atol=1e-13)
