"""sg.compile: values equal the reference evaluator, readable source, kernel caching, updates."""

import ast
import importlib
import linecache
import re
import sys

import networkx as nx
import numpy as np
import pytest

import symgrad as sg

# sg.compile is the function; the module that defines it is reached by name
function_module = importlib.import_module("symgrad.compile.function")


def mlp(batch="batch"):
    """A two-layer classifier: mean cross-entropy and its gradients."""
    rng = np.random.default_rng(1)
    g = sg.Graph()
    X = g.input("X", shape=(batch, 4))
    y = g.input("y", shape=(batch,), dtype="int64")
    W1 = g.variable("W1", rng.normal(size=(4, 5)))
    b1 = g.variable("b1", rng.normal(size=5))
    W2 = g.variable("W2", rng.normal(size=(5, 3)))
    b2 = g.variable("b2", np.zeros(3))
    logits = sg.tanh(X @ W1 + b1) @ W2 + b2
    loss = sg.mean(sg.cross_entropy(logits, y))
    params = [W1, b1, W2, b2]
    return g, X, y, params, loss, sg.grad(loss, params)


def batch_data(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 4)), rng.integers(0, 3, size=n)


def numpy_mlp_loss(xv, yv, W1, b1, W2, b2):
    z = np.tanh(xv @ W1 + b1) @ W2 + b2
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(yv)), yv].mean()


def test_mlp_forward_and_gradient_match_the_evaluator():
    g, X, y, params, loss, grads = mlp()
    fn = sg.compile([loss, *grads], inputs=[X, y])
    xv, yv = batch_data(6)
    got = fn(xv, yv)
    want = sg.evaluate([loss, *grads], {X: xv, y: yv})
    assert isinstance(got, tuple) and len(got) == 5
    for t, a, b in zip([loss, *grads], got, want):
        assert a.shape == b.shape and a.dtype == np.dtype(t.dtype)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    values = [p.value for p in params]
    np.testing.assert_allclose(got[0], numpy_mlp_loss(xv, yv, *values), rtol=1e-12)
    # gradients against central differences of the NumPy loss
    eps = 1e-6
    for k, (p, dp) in enumerate(zip(values, got[1:])):
        for i in [(0,) * p.ndim, tuple(s - 1 for s in p.shape)]:
            shifted = [v.copy() for v in values]
            shifted[k][i] += eps
            up = numpy_mlp_loss(xv, yv, *shifted)
            shifted[k][i] -= 2 * eps
            down = numpy_mlp_loss(xv, yv, *shifted)
            assert dp[i] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-8)


def test_source_is_readable_numpy():
    g, X, y, params, loss, grads = mlp()
    fn = sg.compile([loss, *grads], inputs=[X, y])
    fn(*batch_data(4))
    src = fn.source
    tree = ast.parse(src)  # plain Python ...
    (func,) = tree.body
    assert isinstance(func, ast.FunctionDef) and [a.arg for a in func.args.args] == ["a0", "a1"]
    assert "np.tanh(" in src and "@" in src and "rt.softmax_cross_entropy(" in src  # ... of NumPy
    assert isinstance(func.body[-1], ast.Return)
    # tracebacks through the kernel show its lines
    kernel = next(iter(fn._kernels.values()))[0]
    assert linecache.getline(kernel.__code__.co_filename, 2) == src.splitlines(True)[1]
    # every computing line names the graph node it computes, and that node has that op
    # (a value is assigned to vN, or written into a reused buffer with out=); so does every
    # comment on a node computed once (a folded value, a view of kept memory)
    lines = [ln for ln in src.splitlines() if re.match(r"\s+(v\d+ = |np\.\w+(\.\w+)?\()", ln)]
    notes = [ln for ln in src.splitlines() if re.match(r"\s+# %\d+ \w+: ", ln)]
    assert len(lines) + len(notes) > 10 and any("a view of" in ln for ln in notes)
    for line in lines + notes:
        m = re.fullmatch(r"\s+(?:v(\d+) = )?.*# %(\d+) (\w+)(?::.*)?", line)
        assert m, line
        node = int(m.group(2))
        assert m.group(1) is None or int(m.group(1)) == node
        op = fn._prog.graph.nx.nodes[node]["op"]  # the kernel is made from the rewritten copy
        assert m.group(3) == (op if op.isidentifier() else "op")


def test_source_before_any_call_reads_symbolic_dims_from_the_arguments():
    g, X, y, params, loss, grads = mlp()
    fn = sg.compile([loss, *grads], inputs=[X, y])
    src = fn.source
    ast.parse(src)
    assert "a0.shape[0]" in src  # "batch" is read off the first argument at run time


def test_kernels_are_cached_per_input_shapes(monkeypatch):
    g, X, y, params, loss, grads = mlp()
    fn = sg.compile([loss, *grads], inputs=[X, y])
    emitted = []
    real_emit = function_module.emit_program
    monkeypatch.setattr(
        function_module, "emit_program", lambda *a, **k: emitted.append(1) or real_emit(*a, **k)
    )
    fn(*batch_data(5))
    kernel = next(iter(fn._kernels.values()))[0]
    fn(*batch_data(5, seed=2))
    assert len(emitted) == 1 and len(fn._kernels) == 1  # same shapes: no new code
    assert next(iter(fn._kernels.values()))[0] is kernel
    fn(*batch_data(8))
    assert len(emitted) == 2 and len(fn._kernels) == 2  # a new batch size: one more kernel
    fn(*batch_data(5))
    assert len(emitted) == 2


def test_fully_concrete_function_has_one_kernel():
    g, X, y, params, loss, grads = mlp(batch=6)
    fn = sg.compile(loss, inputs=[X, y])
    for seed in range(3):
        fn(*batch_data(6, seed))
    assert len(fn._kernels) == 1


# ---- the fast argument check -----------------------------------------------------------------
# A call whose arguments are all ndarrays of exactly the declared dtype and shape skips the full
# check; anything else must still go through it (converted, or rejected naming the input).
def test_same_shapes_but_another_dtype_is_rejected_after_a_cached_call():
    g, X, y, params, loss, grads = mlp()
    fn = sg.compile(loss, inputs=[X, y])
    xv, yv = batch_data(5)
    want = numpy_mlp_loss(xv, yv, *[p.value for p in params])
    np.testing.assert_allclose(fn(xv, yv), want, rtol=1e-12)

    def bad():
        return fn(xv.astype("float32"), yv)

    with pytest.raises(sg.InputError) as info:
        bad()
    text = str(info.value)
    assert "'X'" in text and "float64" in text and "float32" in text
    assert f"{__file__}:{bad.__code__.co_firstlineno + 1}" in text  # the call's own line
    with pytest.raises(sg.InputError, match=r"'y'.*int64.*int32"):
        fn(xv, yv.astype("int32"))
    # lists are converted to the declared dtype, as before
    np.testing.assert_allclose(fn(xv.tolist(), yv.tolist()), want, rtol=1e-12)
    assert len(fn._kernels) == 1


def test_a_symbolic_dim_bound_to_two_sizes_is_rejected_even_when_both_are_cached():
    g = sg.Graph()
    a = g.input("a", shape=("batch", 3))
    b = g.input("b", shape=("batch",))
    fn = sg.compile(a * sg.reshape(b, ("batch", 1)), inputs=[a, b])
    for n in (4, 5):
        out = fn(np.ones((n, 3)), np.arange(float(n)))
        np.testing.assert_array_equal(out, np.ones((n, 3)) * np.arange(float(n))[:, None])
    assert len(fn._kernels) == 2
    for n, m in ((4, 5), (5, 4)):
        with pytest.raises(sg.InputError) as info:
            fn(np.ones((n, 3)), np.ones(m))
        text = str(info.value)
        assert "'b'" in text and "'batch'" in text and str(n) in text and str(m) in text
        assert f"{__file__}:" in text
    assert len(fn._kernels) == 2


def test_a_symbolic_dim_repeated_in_one_input():
    g = sg.Graph()
    A = g.input("A", shape=("n", "n"))
    v = g.input("v", shape=("n",))
    fn = sg.compile(A @ v, inputs=[A, v])
    Av = np.arange(9.0).reshape(3, 3)
    np.testing.assert_allclose(fn(Av, np.ones(3)), Av @ np.ones(3))
    np.testing.assert_allclose(fn(Av, np.arange(3.0)), Av @ np.arange(3.0))
    assert len(fn._kernels) == 1
    with pytest.raises(sg.InputError, match=r"'A'.*'n'.*(3, 4)"):
        fn(np.ones((3, 4)), np.ones(3))
    with pytest.raises(sg.InputError, match=r"'v'.*'n'"):
        fn(Av, np.ones(4))


def test_a_0d_input():
    g = sg.Graph()
    s = g.input("s", shape=())
    x = g.input("x", shape=(3,))
    fn = sg.compile(s * x, inputs=[s, x])
    xv = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(fn(np.array(2.0), xv), 2.0 * xv)
    np.testing.assert_array_equal(fn(np.array(-1.5), xv), -1.5 * xv)  # cached
    np.testing.assert_array_equal(fn(np.float64(3.0), xv), 3.0 * xv)  # a NumPy scalar
    np.testing.assert_array_equal(fn(4, xv), 4.0 * xv)  # a Python int takes float64
    assert len(fn._kernels) == 1
    with pytest.raises(sg.InputError, match=r"'s'.*expected shape \(\), got \(1,\)"):
        fn(np.ones(1), xv)
    with pytest.raises(sg.InputError, match=r"'s'.*float64.*int64"):
        fn(np.array(2), xv)
    with pytest.raises(sg.InputError, match=r"takes 2 arguments.*got 3"):
        fn(np.array(2.0), xv, xv)
    with pytest.raises(sg.InputError, match=r"takes 2 arguments.*got 1"):
        fn(np.array(2.0))


def test_non_contiguous_arrays_give_the_right_values():
    g, X, y, params, loss, grads = mlp()
    fn = sg.compile([loss, *grads], inputs=[X, y])
    xv, yv = batch_data(6)
    want = fn(xv, yv)
    wide = np.zeros((12, 8))
    wide[::2, ::2] = xv
    strided, fortran = wide[::2, ::2], np.asfortranarray(xv)
    labels = np.repeat(yv, 2)[::2]
    assert not strided.flags.c_contiguous and not labels.flags.c_contiguous
    for xs, ys in ((strided, labels), (fortran, yv), (xv.T.copy().T, labels)):
        got = fn(xs, ys)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(wide[::2, ::2], xv)  # the inputs are left as they were
    assert len(fn._kernels) == 1


class Tagged(np.ndarray):
    """An ndarray subclass: operations on it return Tagged too."""


def test_ndarray_subclasses_are_converted_to_plain_arrays():
    g = sg.Graph()
    x = g.input("x", shape=("n", 2))
    fn = sg.compile(x * 2.0 + 1.0, inputs=[x])
    xv = np.arange(6.0).reshape(3, 2)
    plain = fn(xv)
    assert type(plain) is np.ndarray
    tagged = fn(xv.view(Tagged))
    assert type(tagged) is np.ndarray
    np.testing.assert_array_equal(tagged, xv * 2.0 + 1.0)
    masked = fn(np.ma.masked_array(xv, mask=np.eye(3, 2, dtype=bool)))
    assert type(masked) is np.ndarray
    np.testing.assert_array_equal(masked, xv * 2.0 + 1.0)
    # not an ndarray itself, so converted like a list: float32 takes float64 (same kind)
    cast = fn(xv.astype("float32").view(Tagged))
    assert type(cast) is np.ndarray and cast.dtype == np.float64
    np.testing.assert_array_equal(cast, xv * 2.0 + 1.0)
    with pytest.raises(sg.InputError, match=r"'x'.*\(n, 2\).*\(2, 3\)"):
        fn(xv.T.view(Tagged))
    assert len(fn._kernels) == 1


def test_equal_dtypes_pass_and_unequal_byte_orders_are_rejected():
    g = sg.Graph()
    x = g.input("x", shape=(3,))
    fn = sg.compile(sg.sum(x * x), inputs=[x])
    xv = np.array([1.0, 2.0, 3.0])
    assert fn(xv) == 14.0
    tagged_dtype = np.empty(3, dtype=np.dtype("f8", metadata={"unit": "m"}))
    tagged_dtype[...] = xv
    assert tagged_dtype.dtype is not np.dtype("float64")
    assert fn(tagged_dtype) == 14.0
    with pytest.raises(sg.InputError, match=r"'x'.*float64.*>f8"):
        fn(xv.astype(">f8"))


def test_a_kernel_failing_on_a_cached_call_names_the_node():
    g = sg.Graph()
    x = g.input("x", shape=(2, 3))
    i = g.input("i", shape=(2,), dtype="int64")
    fn = sg.compile(x[0][i], [x, i])
    xv = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(fn(xv, np.array([2, 0])), [2.0, 0.0])
    with pytest.raises(sg.InputError) as info:
        fn(xv, np.array([0, 5]))  # the fast path: same shapes and dtypes, bad data
    text = str(info.value)
    assert "getitem" in text and "'i'" in text and "out of" in text and f"{__file__}:" in text
    assert isinstance(info.value.__cause__, IndexError)
    np.testing.assert_array_equal(fn(xv, np.array([1, 1])), [1.0, 1.0])


def test_source_and_workspace_follow_the_specialization_called_last():
    g, X, y, params, loss, grads = mlp()
    fn = sg.compile([loss, *grads], inputs=[X, y])
    fn(*batch_data(5))
    src5, bytes5 = fn.source, fn.workspace_bytes
    fn(*batch_data(8))
    src8, bytes8 = fn.source, fn.workspace_bytes
    assert bytes5 < bytes8  # buffers sized for the batch
    fn(*batch_data(5, seed=3))  # a cached specialization
    assert (fn.source, fn.workspace_bytes) == (src5, bytes5)
    fn(*batch_data(8, seed=3))
    assert (fn.source, fn.workspace_bytes) == (src8, bytes8)


def test_a_function_of_no_inputs_on_the_fast_path():
    g = sg.Graph()
    W = g.variable("W", np.array([1.0, 2.0]))
    fn = sg.compile(sg.sum(W * W), inputs=[])
    assert fn() == 5.0 and fn() == 5.0
    with pytest.raises(sg.InputError, match="takes 0 arguments"):
        fn(np.ones(2))


# ---- output conventions ----------------------------------------------------------------------
def test_one_tensor_gives_one_array_and_a_list_gives_a_tuple():
    g = sg.Graph()
    x = g.input("x", shape=(3,))
    s = sg.sum(x * x)
    xv = np.array([1.0, 2.0, 3.0])

    one = sg.compile(s, [x])(xv)
    assert isinstance(one, np.ndarray) and one.shape == () and one == 14.0

    (only,) = sg.compile([s], [x])(xv)  # a list of one is still a tuple
    assert isinstance(only, np.ndarray) and only == 14.0

    pair = sg.compile([s, 2.0 * x], [x])(xv)
    assert isinstance(pair, tuple) and len(pair) == 2
    np.testing.assert_array_equal(pair[1], 2.0 * xv)


def test_outputs_never_alias_inputs_or_state():
    g = sg.Graph()
    x = g.input("x", shape=(2, 2))
    W = g.variable("W", np.eye(2))
    c = g.constant(np.array([1.0, 2.0]))
    fn = sg.compile([x, x.T, W, c, sg.stop_gradient(W)], [x])
    xv = np.arange(4.0).reshape(2, 2)
    outs = fn(xv)
    for o in outs:
        o[...] = -7.0  # writing into results must not touch anything symgrad holds
    np.testing.assert_array_equal(xv, np.arange(4.0).reshape(2, 2))
    np.testing.assert_array_equal(W.value, np.eye(2))
    np.testing.assert_array_equal(fn(xv)[3], [1.0, 2.0])


def test_a_single_input_need_not_be_in_a_list():
    g = sg.Graph()
    x = g.input("x", shape=(3,))
    count = len(g)
    fn = sg.compile(sg.sum(x), x)
    assert fn(np.array([1.0, 2.0, 3.0])) == 6.0
    assert len(g) == count + 1  # only the sum: x was not iterated into rows


def test_a_constant_function_takes_no_arguments():
    g = sg.Graph()
    W = g.variable("W", np.array([1.0, -2.0]))
    fn = sg.compile(sg.sum(sg.abs(W)))
    assert fn() == 3.0


# ---- updates ---------------------------------------------------------------------------------
def test_sgd_step_updates_variables_in_place_after_the_outputs():
    g, X, y, params, loss, grads = mlp()
    lr = 0.5
    step = sg.compile(loss, [X, y], updates={p: p - lr * d for p, d in zip(params, grads)})
    xv, yv = batch_data(8)
    before = [p.value.copy() for p in params]
    arrays = [p.value for p in params]
    want_loss, *want_grads = sg.evaluate([loss, *grads], {X: xv, y: yv})

    got = step(xv, yv)
    np.testing.assert_allclose(got, want_loss, rtol=1e-12)  # the loss before the step
    for p, b, a, d in zip(params, before, arrays, want_grads):
        assert p.value is a  # written in place: the same array object
        np.testing.assert_allclose(p.value, b - lr * d, rtol=1e-12)
    # the next call sees the new values, and training lowers the loss
    after = step(xv, yv)
    np.testing.assert_allclose(
        after, numpy_mlp_loss(xv, yv, *[b - lr * d for b, d in zip(before, want_grads)]), rtol=1e-12
    )
    assert after < got


def test_swap_update_really_swaps():
    g = sg.Graph()
    A = g.variable("A", np.array([1.0, 2.0]))
    B = g.variable("B", np.array([3.0, 4.0]))
    swap = sg.compile([A, B], updates={A: B, B: A})
    a, b = swap()
    np.testing.assert_array_equal(a, [1.0, 2.0])  # outputs are the values before the step
    np.testing.assert_array_equal(b, [3.0, 4.0])
    np.testing.assert_array_equal(A.value, [3.0, 4.0])
    np.testing.assert_array_equal(B.value, [1.0, 2.0])
    swap()
    np.testing.assert_array_equal(A.value, [1.0, 2.0])
    np.testing.assert_array_equal(B.value, [3.0, 4.0])


def test_updates_read_every_new_value_before_writing_any():
    g = sg.Graph()
    A = g.variable("A", np.array([[1.0, 2.0], [3.0, 4.0]]))
    B = g.variable("B", np.zeros((2, 2)))
    # A's new value is a view of A itself; B's new value reads A
    step = sg.compile([], updates={A: A.T, B: A + 1.0})
    step()
    np.testing.assert_array_equal(A.value, [[1.0, 3.0], [2.0, 4.0]])
    np.testing.assert_array_equal(B.value, [[2.0, 3.0], [4.0, 5.0]])


def test_an_output_that_views_an_updated_variable_has_the_old_values():
    g = sg.Graph()
    W = g.variable("W", np.array([[1.0, 2.0], [3.0, 4.0]]))
    fn = sg.compile([W.T, W[0], W], updates={W: W * 10.0})
    WT, row, whole = fn()
    np.testing.assert_array_equal(WT, [[1.0, 3.0], [2.0, 4.0]])
    np.testing.assert_array_equal(row, [1.0, 2.0])
    np.testing.assert_array_equal(whole, [[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_array_equal(W.value, [[10.0, 20.0], [30.0, 40.0]])


def test_values_set_by_hand_are_seen_by_compiled_functions():
    g = sg.Graph()
    W = g.variable("W", np.ones(2))
    fn = sg.compile(sg.sum(W))
    assert fn() == 2.0
    W.value[...] = [3.0, 4.0]  # the compiled code holds the variable's array itself
    assert fn() == 7.0


def test_update_of_a_scalar_variable():
    g = sg.Graph()
    x = g.input("x", shape=(3,))
    total = g.variable("total", 0.0)
    acc = sg.compile(total, [x], updates={total: total + sg.sum(x)})
    assert acc(np.ones(3)) == 0.0
    assert acc(np.ones(3)) == 3.0
    assert total.value == 6.0


# ---- deep graphs -----------------------------------------------------------------------------
def test_a_20000_node_chain_differentiates_and_compiles_without_recursion():
    limit = sys.getrecursionlimit()
    g = sg.Graph()
    x = g.input("x", shape=(3,))
    h = x
    for _ in range(20_000):
        h = sg.tanh(h)
    cost = sg.sum(h)
    dx = sg.grad(cost, x)
    got_cost, got_dx = sg.compile([cost, dx], [x])(np.array([-1.0, 0.2, 3.0]))
    # the same chain in NumPy, its derivative accumulated forward
    y, d = np.array([-1.0, 0.2, 3.0]), np.ones(3)
    for _ in range(20_000):
        y = np.tanh(y)
        d *= 1.0 - y * y
    np.testing.assert_allclose(got_cost, y.sum(), rtol=1e-12)
    np.testing.assert_allclose(got_dx, d, rtol=1e-9)
    assert np.all(got_dx != 0.0)  # a real derivative, not an underflow
    assert sys.getrecursionlimit() == limit


# ---- user text never becomes code ------------------------------------------------------------
EVIL = 'x"; import os; os.system("echo pwned") #\n'


def string_literals(source: str) -> list[str]:
    return [
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def assert_clean(source: str):
    assert "import" not in source and "pwned" not in source and "os.system" not in source
    assert string_literals(source) == []  # no user text, quoted or not


def test_names_and_constants_never_become_source():
    g = sg.Graph()
    x = g.input(EVIL, shape=(3,))
    W = g.variable(EVIL + "W", np.array([1.5, 2.5, 3.5]))
    c = g.constant(np.array([123.456789, 987.654321, 555.125]), name=EVIL + "c")
    y = sg.sum(sg.tanh(x * W) + c)
    fn = sg.compile([y, sg.grad(y, W)], [x])
    xv = np.array([0.1, -0.2, 0.3])
    val, dW = fn(xv)
    assert_clean(fn.source)
    assert "123.456789" not in fn.source and "987.654321" not in fn.source
    np.testing.assert_allclose(val, np.sum(np.tanh(xv * W.value) + c.value), rtol=1e-12)
    np.testing.assert_allclose(dW, xv / np.cosh(xv * W.value) ** 2, rtol=1e-12)


def test_names_from_networkx_never_become_source():
    G = nx.MultiDiGraph()
    G.add_node(EVIL, op="input", name=EVIL, shape=(2,), dtype="float64")
    G.add_node(EVIL + "1", op="exp", name=EVIL + "exp")
    G.add_edge(EVIL, EVIL + "1", pos=0)
    g = sg.Graph.from_networkx(G)
    fn = sg.compile(g.imported[EVIL + "1"], [g.imported[EVIL]])
    np.testing.assert_allclose(fn(np.array([0.0, 1.0])), np.exp([0.0, 1.0]))
    assert_clean(fn.source)


def test_names_and_dims_never_become_source_of_the_argument_check():
    g = sg.Graph()
    x = g.input(EVIL, shape=(EVIL + "n", 2))
    y = g.input(EVIL + "y", shape=(EVIL + "n",), dtype="int64")
    fn = sg.compile(sg.sum(x) + sg.sum(y), [x, y])
    assert fn(np.ones((3, 2)), np.arange(3)) == 9.0
    assert fn(np.ones((4, 2)), np.arange(4)) == 14.0
    check = fn._fast_key.__code__.co_filename
    source = "".join(linecache.getlines(check))
    assert source.startswith("def ")
    assert_clean(source)
    with pytest.raises(sg.InputError, match="pwned"):  # the messages still name them
        fn(np.ones((3, 2)), np.arange(4))


def test_a_weird_elementwise_name_never_becomes_source():
    cube_plus = sg.elementwise('evil"); import os; os.system("echo pwned") #\n', lambda a: a**3 + 1)
    g = sg.Graph()
    x = g.input("x", shape=(3,))
    y = cube_plus(x)
    fn = sg.compile([y, sg.grad(sg.sum(y), x)], [x])
    xv = np.array([-1.0, 0.5, 2.0])
    val, dx = fn(xv)
    np.testing.assert_allclose(val, xv**3 + 1, rtol=1e-12)
    np.testing.assert_allclose(dx, 3 * xv**2, rtol=1e-12)
    assert_clean(fn.source)
    assert "evil" not in fn.source


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_column_sums_by_blas_are_as_accurate_as_numpys(dtype, keepdims):
    g = sg.Graph()
    x = g.input("x", ("n", 7), dtype)
    s = sg.sum(x * 2.0, axis=0, keepdims=keepdims)  # into a workspace buffer
    fresh = sg.sum(x, axis=0, keepdims=keepdims)  # an output: a fresh array
    t = sg.sum(sg.transpose(x), axis=1)  # rows of a transposed view: no BLAS form
    fn = sg.compile([s * 3.0, fresh, t], [x])
    rng = np.random.default_rng(4)
    eps = np.finfo(dtype).eps
    for n in (5, 64, 1):
        xv = rng.standard_normal((n, 7)).astype(dtype)
        got = fn(xv)
        exact = xv.astype(np.float64).sum(0, keepdims=keepdims)
        size = np.abs(xv.astype(np.float64)).sum(0, keepdims=keepdims)
        # the error bound of a sum of n terms (NumPy's own sums meet it too)
        for a, scale in zip(got, (6.0, 1.0, 1.0)):
            assert a.dtype == dtype
            want, bound = scale * exact.reshape(a.shape), scale * n * eps * size.reshape(a.shape)
            assert np.all(np.abs(a - want) <= bound + 1e-300)
        xv[0, 0], xv[-1, 1] = np.inf, np.nan  # propagate as NumPy's sums do
        inf_nan = [np.isposinf(a.reshape(-1)[:2]) for a in fn(xv)[:2]]
        assert all(r[0] for r in inf_nan) and all(np.isnan(a.reshape(-1)[1]) for a in fn(xv))
    assert fn.source.count("np.dot(z") == 2  # a kept vector of ones times the matrix


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_middle_axis_sums_by_einsum_equal_numpys_to_the_last_bit(dtype):
    g = sg.Graph()
    x = g.input("x", ("n", 6, 5), dtype)
    inner = sg.sum(x * 2.0, axis=1)  # into a workspace buffer
    kept = sg.sum(x, axis=1, keepdims=True)  # keepdims: NumPy's reduction
    fn = sg.compile([inner * 3.0, sg.sum(x, axis=1), kept], [x])
    rng = np.random.default_rng(6)
    for n in (4, 1, 9):
        xv = rng.standard_normal((n, 6, 5)).astype(dtype)
        xv[0, 0, 0], xv[-1, 2, 1] = np.inf, np.nan
        got = fn(xv)
        want = [np.sum(xv * 2.0, 1) * 3.0, np.sum(xv, 1), np.sum(xv, 1, keepdims=True)]
        for a, w in zip(got, want):
            assert a.dtype == dtype
            np.testing.assert_array_equal(a, w)
    assert fn.source.count("np.einsum('ijk->ik'") == 2


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_batch_times_one_matrix_is_one_product_of_stacked_rows(dtype):
    g = sg.Graph()
    x = g.input("x", ("b", 4, 3), dtype)
    W, V = g.input("W", (3, 5), dtype), g.input("V", (4, 2), dtype)
    h = sg.tanh(x)  # in a workspace buffer: its rows stack without a copy
    y = sg.sum(sg.tanh(h @ W), axis=2)  # @ into a workspace buffer too
    swapped = sg.transpose(h, (0, 2, 1))  # a strided view: np.matmul as before
    z = sg.sum(sg.tanh(swapped @ V), axis=2)
    fn = sg.compile([y, z], [x, W, V])
    rng = np.random.default_rng(7)
    for b in (6, 1, 6):
        xv = rng.standard_normal((b, 4, 3)).astype(dtype)
        Wv = rng.standard_normal((3, 5)).astype(dtype)
        Vv = rng.standard_normal((4, 2)).astype(dtype)
        got = fn(xv, Wv, Vv)
        hv = np.tanh(xv)
        np.testing.assert_array_equal(got[0], np.sum(np.tanh(np.matmul(hv, Wv)), axis=2))
        want = np.sum(np.tanh(np.matmul(hv.transpose(0, 2, 1), Vv)), axis=2)
        np.testing.assert_array_equal(got[1], want)
    assert "np.matmul(" in fn.source and re.search(r"np\.dot\(s\d+, a1, s\d+\)", fn.source)


def test_views_of_kept_arrays_are_made_once_and_follow_their_updates():
    # W.T views the variable's own array, updated in place: the view made when the kernel is
    # built reads every new value
    g = sg.Graph()
    x = g.input("x", ("b", 3))
    W = g.variable("W", np.arange(12.0).reshape(4, 3) / 10)
    out = sg.sum(sg.tanh(x @ sg.transpose(W)))
    (dW,) = sg.grad(out, [W])
    fn = sg.compile(out, [x], updates={W: W - 0.1 * dW})
    rng = np.random.default_rng(8)
    w = W.value.copy()
    for b in (5, 2, 5):
        xv = rng.standard_normal((b, 3))
        t = np.tanh(xv @ w.T)
        np.testing.assert_allclose(fn(xv), t.sum(), rtol=1e-13)
        w = w - 0.1 * ((1 - t**2).T @ xv)
        np.testing.assert_allclose(W.value, w, rtol=1e-13)
    notes = re.findall(r"# %\d+ transpose: (view\d+), a view of (w\d+) made once", fn.source)
    assert notes and not re.search(r"= w\d+\.T", fn.source)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_product_with_a_narrow_transposed_matrix_copies_it_first(dtype):
    # dz @ W^T with W of 10 columns: BLAS is faster on a contiguous copy of W^T, for products
    # between 4K and 64K elements
    g = sg.Graph()
    dz = g.input("dz", ("b", 10), dtype)
    W = g.variable("W", np.random.default_rng(9).standard_normal((128, 10)), dtype)
    fn = sg.compile(sg.tanh(dz @ sg.transpose(W)), [dz])
    rng = np.random.default_rng(10)
    for b, copied in [(64, True), (4, False), (64, True)]:
        dv = rng.standard_normal((b, 10)).astype(dtype)
        got = fn(dv)
        assert got.dtype == dtype
        np.testing.assert_allclose(
            got, np.tanh(dv @ W.value.T), rtol=1e-6 if dtype == "float32" else 1e-14
        )
        assert (
            bool(re.search(r"np\.copyto\((m\d+), view\d+\); np\.dot\(a0, \1, ", fn.source))
            == copied
        )


def test_views_made_once_never_share_a_name_with_the_kernels_temporaries():
    # the shared subexpressions of fused expressions are locals t0, t1 ...: a made-once view
    # named like one would be shadowed (an UnboundLocalError, or that temporary's value)
    g = sg.Graph()
    x = g.input("x", ("n", 3))
    W = g.variable("W", np.array([[10.0], [20.0], [30.0]]))
    V = g.variable("V", np.arange(6.0).reshape(2, 3))
    first = [x @ sg.transpose(V)]  # viewed before the temporaries are assigned
    outs = []
    for i in range(4):
        s = sg.sigmoid(x * (i + 1.0))
        outs.append(s * (1 - s) + (s * sg.transpose(W) if i == 3 else s))
    for graph_outs in (outs, first + outs):
        fn = sg.compile(graph_outs, [x])
        xv = np.random.default_rng(11).standard_normal((4, 3))
        for got, want in zip(fn(xv), sg.evaluate(graph_outs, {x: xv})):
            np.testing.assert_allclose(got, want, rtol=1e-13)
        assert "a view of w" in fn.source and re.search(r"\bt\d+ = ", fn.source)
    codegen = sys.modules["symgrad.compile.codegen"]
    with pytest.raises(ValueError, match="may not start with 't'"):
        codegen.EmitContext(None).const(np.zeros(3), "t")


@pytest.mark.parametrize("shapes", [((4, 2, 3), (3, 0)), ((4, 2, 0), (0, 3)), ((4, 2, 3), (3, 5))])
def test_a_batch_of_matrices_times_a_matrix_with_an_empty_dim(shapes):
    # the stacked-rows product reshapes its buffers to 2-D: -1 cannot stand beside a 0 dim
    g = sg.Graph()
    x, W = g.input("x", shapes[0]), g.input("W", shapes[1])
    y = sg.sin(sg.tanh(x) @ W)
    xv, wv = np.ones(shapes[0]), np.ones(shapes[1])
    got = sg.compile(y, [x, W])(xv, wv)
    assert got.shape == shapes[0][:2] + shapes[1][1:]
    np.testing.assert_allclose(got, np.sin(np.tanh(xv) @ wv), rtol=1e-15)
