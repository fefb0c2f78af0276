"""The softmax cross-entropy head of a training step: the runtime helpers at extreme inputs
(each path of logsumexp), the gradient fused with its scale, and the compiled head against the
reference evaluator and the stable formulas."""

import numpy as np
import pytest

import symgrad as sg
from symgrad import runtime as rt

RNG = np.random.default_rng(0)
DTYPES = ["float32", "float64"]
# (shape, axis): one logaddexp reduce (few elements), the class axis reduced first (short
# last axis), and reduced along rows (long last axis, another axis, several axes)
LSE_CASES = [
    ((4, 3), (1,)),
    ((64, 10), (1,)),
    ((4, 8, 5), (2,)),
    ((8, 40), (1,)),
    ((64, 10), (0,)),
    ((4, 8, 5), (0, 2)),
]


def tol(dtype) -> float:
    """A few rounding errors of ``dtype``: a logsumexp is within them."""
    return 8 * float(np.finfo(dtype).eps)


def exp_tol(dtype) -> float:
    """exp(z - lse) for logits of tens: the rounding of z - lse, magnified by exp."""
    return 1e-5 if dtype == "float32" else 1e-12


def reference_lse(x, axis, keepdims=False):
    return np.logaddexp.reduce(x.astype(np.float64), axis=axis, keepdims=keepdims)


def reference_residual(z, y, scale=1.0):
    """scale * (softmax(z) - one_hot(y)) over the last axis, in float64."""
    z = z.astype(np.float64)
    p = np.exp(z - reference_lse(z, -1, True))
    return np.asarray(scale) * (p - np.eye(z.shape[-1])[y])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, axis", LSE_CASES)
def test_logsumexp_matches_the_stable_reference_on_every_path(shape, axis, dtype):
    x = (RNG.standard_normal(shape) * 30).astype(dtype)
    for keepdims in (False, True):
        got = rt.logsumexp(x, axis, keepdims)
        assert got.dtype == x.dtype
        want = reference_lse(x, axis, keepdims)
        np.testing.assert_allclose(got, want, rtol=tol(dtype), atol=tol(dtype))
        out = np.empty_like(got)
        assert rt.logsumexp(x, axis, keepdims, out) is out
        np.testing.assert_array_equal(out, got)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3), (64, 10), (8, 40)])
def test_logsumexp_extreme_rows(shape, dtype):
    x = RNG.standard_normal(shape).astype(dtype)
    x[0] = -np.inf  # exp underflows everywhere: -inf, not nan
    x[1, 0] = np.inf  # overflows: +inf, not nan
    x[2] = 1000.0  # exp overflows without the shift
    x[2, 1] = -1000.0
    x[3, 0] = -np.inf  # one impossible class
    with np.errstate(divide="ignore"):
        got = rt.logsumexp(x, (1,), False)
    assert got[0] == -np.inf and got[1] == np.inf
    np.testing.assert_allclose(got[2:], reference_lse(x[2:], 1), rtol=tol(dtype))


def test_logsumexp_of_integers_is_float64():
    x = np.arange(12).reshape(3, 4)
    np.testing.assert_allclose(rt.logsumexp(x, -1, False), reference_lse(x, -1), rtol=1e-15)


def test_row_indices_are_cached_and_read_only():
    rows = rt.row_indices(5)
    assert rows is rt.row_indices(5) and not rows.flags.writeable
    np.testing.assert_array_equal(rows, np.arange(5))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3), (64, 10), (2, 4, 3), (3,)])
def test_softmax_minus_one_hot_with_and_without_its_parts(shape, dtype):
    z = (RNG.standard_normal(shape) * 30).astype(dtype)
    y = RNG.integers(0, shape[-1], shape[:-1])
    lse = rt.logsumexp(z, -1, False)
    per_row = RNG.uniform(0.5, 2.0, shape[:-1] + (1,)).astype(dtype)
    for scale in (None, np.asarray(0.25, dtype), per_row):
        want = reference_residual(z, y, 1.0 if scale is None else scale)
        for given in (None, lse):
            got = rt.softmax_minus_one_hot(z, y, given, scale)
            assert got.dtype == z.dtype and got.shape == z.shape
            np.testing.assert_allclose(got, want, rtol=exp_tol(dtype), atol=exp_tol(dtype))
            out = np.empty_like(z)
            assert rt.softmax_minus_one_hot(z, y, given, scale, out) is out
            np.testing.assert_array_equal(out, got)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_head_is_finite_at_extreme_logits(dtype):
    z = np.array(
        [[1000.0, -1000.0, 0.0], [-np.inf, 1000.0, -1000.0], [0.0, -np.inf, 1e-30], [5, 5, 5]],
        dtype=dtype,
    )
    y = np.array([1, 2, 0, 2])
    lse = rt.logsumexp(z, -1, False)
    loss = rt.cross_entropy_from_lse(z, y, lse)
    grad = rt.softmax_minus_one_hot(z, y, lse, np.asarray(0.25, dtype))
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    picked = z.astype(np.float64)[np.arange(4), y]
    np.testing.assert_allclose(loss, reference_lse(z, -1) - picked, rtol=tol(dtype))
    np.testing.assert_allclose(grad, reference_residual(z, y, 0.25), rtol=tol(dtype), atol=1e-30)


def test_cross_entropy_from_lse_with_extra_batch_axes():
    z = RNG.standard_normal((2, 4, 3))
    y = RNG.integers(0, 3, (2, 4))
    got = rt.cross_entropy_from_lse(z, y, rt.logsumexp(z, -1, False))
    picked = np.take_along_axis(z, y[..., None], -1)[..., 0]
    np.testing.assert_allclose(got, reference_lse(z, -1) - picked, rtol=1e-14)


# ---- the compiled head ------------------------------------------------------------------------
def mlp_head(dtype, classes=3, features=5):
    """A linear layer, the mean cross-entropy, its gradients and an SGD step."""
    g = sg.Graph()
    X = g.input("X", ("batch", features), dtype)
    y = g.input("y", ("batch",), "int64")
    W = g.variable("W", RNG.standard_normal((features, classes)).astype(dtype))
    b = g.variable("b", np.zeros(classes, dtype))
    z = X @ W + b
    loss = sg.cross_entropy(z, y).mean()
    dz, dW = sg.grad(loss, [z, W])
    return g, (X, y), (loss, dz, dW)


@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_head_folds_the_mean_into_the_fused_gradient(dtype):
    g, (X, y), outs = mlp_head(dtype)
    fn = sg.compile(list(outs), [X, y])
    Xv = RNG.standard_normal((6, 5)).astype(dtype)
    yv = RNG.integers(0, 3, 6)
    got = fn(Xv, yv)
    assert fn.rewrite_log["scale_softmax_minus_one_hot"] == 1
    assert fn.rewrite_log["share_logsumexp"] == 2
    assert fn.source.count("rt.softmax_minus_one_hot(") == 1 and "scale=" in fn.source
    want = sg.evaluate(list(outs), {X: Xv, y: yv})
    for a, b in zip(got, want):
        assert a.dtype == b.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, b, rtol=tol(dtype), atol=tol(dtype))
    off = sg.compile(list(outs), [X, y], rewrites={"exclude": ["scale_softmax_minus_one_hot"]})
    assert "scale_softmax_minus_one_hot" not in off.rewrite_log
    for a, b in zip(off(Xv, yv), want):
        np.testing.assert_allclose(a, b, rtol=tol(dtype), atol=tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_head_is_finite_at_extreme_logits(dtype):
    g = sg.Graph()
    z = g.input("z", ("batch", 3), dtype)
    y = g.input("y", ("batch",), "int64")
    loss = sg.cross_entropy(z, y).mean()
    fn = sg.compile([loss, sg.grad(loss, z)], [z, y])
    zv = np.array([[1000.0, -1000.0, 0.0], [-np.inf, 1000.0, -1000.0], [3, 3, 3]], dtype)
    yv = np.array([1, 2, 0])
    got_loss, got_dz = fn(zv, yv)
    assert np.isfinite(got_loss) and np.all(np.isfinite(got_dz))
    picked = zv.astype(np.float64)[np.arange(3), yv]
    want_loss = np.mean(reference_lse(zv, -1) - picked)
    np.testing.assert_allclose(got_loss, want_loss, rtol=tol(dtype))
    np.testing.assert_allclose(got_dz, reference_residual(zv, yv, 1 / 3), rtol=tol(dtype))


def test_per_row_weights_are_folded_into_the_fused_gradient():
    g = sg.Graph()
    z = g.input("z", ("batch", 4))
    y = g.input("y", ("batch",), "int64")
    w = g.input("w", ("batch",))
    loss = sg.sum(sg.cross_entropy(z, y) * w)
    outs = [loss, sg.grad(loss, z)]
    fn = sg.compile(outs, [z, y, w])
    feed = [RNG.standard_normal((5, 4)) * 40, RNG.integers(0, 4, 5), RNG.uniform(-1, 1, 5)]
    assert fn.rewrite_log["scale_softmax_minus_one_hot"] == 1
    np.testing.assert_allclose(fn(*feed)[1], reference_residual(feed[0], feed[1], feed[2][:, None]))
    for a, b in zip(fn(*feed), sg.evaluate(outs, dict(zip([z, y, w], feed)))):
        np.testing.assert_allclose(a, b, rtol=1e-13)


def test_factors_of_another_shape_are_not_folded():
    g = sg.Graph()
    z = g.input("z", (5, 4))
    y = g.input("y", (5,), "int64")
    v = g.input("v", (5, 4))
    out = sg.grad(sg.cross_entropy(z, y).sum(), z) * v  # one factor per entry, not per row
    fn = sg.compile(out, [z, y, v])
    assert "softmax_minus_one_hot" in fn.rewrite_log
    assert "scale_softmax_minus_one_hot" not in fn.rewrite_log
    feed = [RNG.standard_normal((5, 4)), RNG.integers(0, 4, 5), RNG.standard_normal((5, 4))]
    np.testing.assert_allclose(fn(*feed), reference_residual(feed[0], feed[1]) * feed[2])
    want = sg.evaluate([out], dict(zip([z, y, v], feed)))[0]
    np.testing.assert_allclose(fn(*feed), want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mean_of_a_vector_rounds_as_numpy_does(dtype):
    g = sg.Graph()
    x = g.input("x", ("batch",), dtype)
    fn = sg.compile(sg.mean(sg.exp(x)), [x])
    xv = RNG.standard_normal(37).astype(dtype)
    got = fn(xv)
    assert got.dtype == np.dtype(dtype)
    assert got == np.mean(np.exp(xv)) == sg.evaluate([sg.mean(sg.exp(x))], {x: xv})[0]


def test_hessian_vector_product_through_the_head():
    g = sg.Graph()
    X = g.input("X", ("batch", 5))
    y = g.input("y", ("batch",), "int64")
    W = g.input("W", (5, 3))
    v = g.input("v", (5, 3))
    loss = sg.cross_entropy(X @ W, y).mean()
    grad = sg.compile(sg.grad(loss, W), [X, y, W])
    hvp = sg.compile(sg.hvp(loss, W, v), [X, y, W, v])
    Xv, yv = RNG.standard_normal((6, 5)), RNG.integers(0, 3, 6)
    Wv, vv = RNG.standard_normal((5, 3)), RNG.standard_normal((5, 3))
    eps = 1e-5
    numeric = (grad(Xv, yv, Wv + eps * vv) - grad(Xv, yv, Wv - eps * vv)) / (2 * eps)
    np.testing.assert_allclose(hvp(Xv, yv, Wv, vv), numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 3), (64, 10), (6, 50, 5), (8, 40)])
def test_softmax_on_every_path_with_and_without_out(shape, dtype):
    # (64, 10) and (6, 50, 5) take the class-axis-first path, the others reduce along rows
    x = (10 * RNG.standard_normal(shape)).astype(dtype)
    x[0, ..., 0] = 1000  # a dominant logit: exp would overflow without the shift
    want = np.exp(x.astype(np.float64) - reference_lse(x, -1, True))
    got = rt.softmax(x, (x.ndim - 1,))
    assert got.dtype == x.dtype and got.flags.c_contiguous
    np.testing.assert_allclose(got, want, rtol=exp_tol(dtype), atol=exp_tol(dtype) * 1e-3)
    out = np.empty_like(x)
    assert rt.softmax(x, (x.ndim - 1,), out) is out
    np.testing.assert_array_equal(out, got)
    work = rt.softmax_workspace(shape, (x.ndim - 1,))
    assert (work is not None) == (shape in [(64, 10), (6, 50, 5)])
    if work is not None:  # the class-first copy into an array kept by the caller
        kept = np.full(work, np.nan, dtype)
        assert rt.softmax(x, (x.ndim - 1,), out, kept) is out
        np.testing.assert_array_equal(out, got)
        np.testing.assert_array_equal(np.moveaxis(kept, 0, -1), got)  # it held the softmax


# ---- the fused head: losses and gradient from one exp ------------------------------------------
FUSED_SHAPES = [(4, 3), (64, 10), (8, 40)]  # one logaddexp reduce, class axis first, rows


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", FUSED_SHAPES)
def test_fused_head_matches_the_separate_ops(shape, dtype):
    z = (RNG.standard_normal(shape) * 30).astype(dtype)
    y = RNG.integers(0, shape[1], shape[0])
    per_row = RNG.uniform(-2.0, 2.0, (shape[0], 1)).astype(dtype)
    picked = z.astype(np.float64)[np.arange(shape[0]), y]
    want_loss = reference_lse(z, -1) - picked
    for scale in (None, np.asarray(-0.25, dtype), per_row):
        losses, grad = np.empty(shape[0], dtype), np.empty(shape, dtype)
        assert rt.softmax_cross_entropy(z, y, losses, grad, scale) is losses
        np.testing.assert_allclose(losses, want_loss, rtol=tol(dtype), atol=tol(dtype) * 30)
        want = reference_residual(z, y, 1.0 if scale is None else scale)
        np.testing.assert_allclose(grad, want, rtol=exp_tol(dtype), atol=exp_tol(dtype))
        work = rt.head_workspace(shape)
        assert (work is not None) == (shape == (64, 10))
        if work is not None:  # the class-first copy into an array kept by the caller
            again = np.empty_like(losses), np.empty_like(grad)
            rt.softmax_cross_entropy(z, y, *again, scale, work=np.full(work, np.nan, dtype))
            np.testing.assert_array_equal(again[0], losses)
            np.testing.assert_array_equal(again[1], grad)
        # what the compiled kernel computed before, op by op
        lse = rt.logsumexp(z, (1,), False)
        separate = rt.cross_entropy_from_lse(z, y, lse)
        np.testing.assert_allclose(losses, separate, rtol=tol(dtype), atol=tol(dtype) * 30)


@pytest.mark.parametrize("shape", FUSED_SHAPES)
def test_fused_head_may_write_over_its_arguments(shape):
    z = RNG.standard_normal(shape) * 5
    y = RNG.integers(0, shape[1], shape[0])
    scale = RNG.uniform(0.5, 2.0, (shape[0], 1))
    losses, grad = np.empty(shape[0]), np.empty(shape)
    rt.softmax_cross_entropy(z, y, losses, grad, scale)
    # the gradient over the logits, the losses over the per-row scale
    z2, scale2 = z.copy(), scale.copy()
    rt.softmax_cross_entropy(z2, y, scale2[:, 0], z2, scale2)
    np.testing.assert_array_equal(z2, grad)
    np.testing.assert_array_equal(scale2[:, 0], losses)


@pytest.mark.parametrize("shape", FUSED_SHAPES)
def test_fused_head_into_a_strided_gradient(shape):
    # contiguous logits (whose flat label positions are known) and a gradient that is a
    # strided view: the labels' entries are still taken off in the view itself
    z = RNG.standard_normal(shape) * 5
    y = RNG.integers(0, shape[1], shape[0])
    scale = np.asarray(0.25)
    losses, grad = np.empty(shape[0]), np.empty(shape)
    rt.softmax_cross_entropy(z, y, losses, grad, scale)
    for view in (np.zeros((shape[1], shape[0])).T, np.zeros((shape[0], 2 * shape[1]))[:, ::2]):
        again = np.empty(shape[0])
        rt.softmax_cross_entropy(z, y, again, view, scale)
        np.testing.assert_allclose(again, losses, rtol=1e-14)  # sums of strided rows round
        np.testing.assert_allclose(view, grad, rtol=1e-14, atol=1e-17)  # in another order
        np.testing.assert_allclose(view, reference_residual(z, y, 0.25), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", FUSED_SHAPES)
def test_fused_head_is_finite_at_extreme_logits(shape, dtype):
    z = RNG.standard_normal(shape).astype(dtype)
    z[0, 0], z[0, 1] = 1000.0, -1000.0  # exp overflows without the shift
    z[1, :] = -1000.0
    z[2, 1:] = -np.inf  # impossible classes
    y = np.zeros(shape[0], dtype=np.int64)
    y[1] = shape[1] - 1
    losses, grad = np.empty(shape[0], dtype), np.empty(shape, dtype)
    rt.softmax_cross_entropy(z, y, losses, grad, np.asarray(0.5, dtype))
    assert np.all(np.isfinite(losses)) and np.all(np.isfinite(grad))
    picked = z.astype(np.float64)[np.arange(shape[0]), y]
    # a loss is a difference of numbers near 1000 in the reference: within their rounding
    want_loss = reference_lse(z, -1) - picked
    np.testing.assert_allclose(losses, want_loss, rtol=tol(dtype), atol=1000 * tol(dtype))
    # the one-call path of a few float64 elements computes exp(z - lse): within the rounding
    # of logits of 1000; the shifted paths are exact to a few roundings of the result
    near = 1000 * tol(dtype) if z.size <= 64 and dtype == np.float64 else tol(dtype)
    np.testing.assert_allclose(grad, reference_residual(z, y, 0.5), rtol=near, atol=near)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("rows", [1, 4, 40])  # a few elements, and more than 64
def test_fused_head_of_narrow_floats_is_exact_at_tied_large_logits(rows, dtype):
    z = np.full((rows, 2), 1000.0, dtype)  # log 2 and 1/2 exactly, whatever the logits
    y = np.zeros(rows, np.int64)
    losses, grad = np.empty(rows, dtype), np.empty((rows, 2), dtype)
    rt.softmax_cross_entropy(z, y, losses, grad)
    np.testing.assert_allclose(losses, np.log(2.0), rtol=2 * np.finfo(dtype).eps)
    np.testing.assert_array_equal(grad, np.tile(np.array([-0.5, 0.5], dtype), (rows, 1)))


def test_fused_head_rejects_a_label_out_of_range_before_writing():
    z = RNG.standard_normal((6, 4))
    losses, grad = np.zeros(6), np.zeros((6, 4))
    with pytest.raises(IndexError, match=r"\[0, 4\)"):
        rt.softmax_cross_entropy(z, np.array([0, 1, 2, 3, 4, 0]), losses, grad)
    assert not losses.any() and not grad.any()


def sgd_on_head(classes, dtype="float64", features=6, hidden=8):
    """A tanh layer, a linear layer to ``classes`` logits, the mean cross-entropy, SGD."""
    g = sg.Graph()
    X = g.input("X", ("batch", features), dtype)
    y = g.input("y", ("batch",), "int64")
    params = [
        g.variable("W0", RNG.standard_normal((features, hidden)).astype(dtype)),
        g.variable("b0", np.zeros(hidden, dtype)),
        g.variable("W1", RNG.standard_normal((hidden, classes)).astype(dtype)),
        g.variable("b1", np.zeros(classes, dtype)),
    ]
    loss = sg.cross_entropy(sg.tanh(X @ params[0] + params[1]) @ params[2] + params[3], y)
    loss = loss.mean()
    grads = sg.grad(loss, params)
    step = sg.compile(loss, [X, y], updates={p: p - 0.1 * d for p, d in zip(params, grads)})
    return X, y, params, loss, grads, step


@pytest.mark.parametrize("classes", [3, 10, 40])
def test_compiled_step_fuses_the_head_and_matches_the_evaluator(classes):
    X, y, params, loss, grads, step = sgd_on_head(classes)
    for batch in (5, 64, 5):  # the tiny, class-first and row paths, across two specializations
        Xv, yv = RNG.standard_normal((batch, 6)), RNG.integers(0, classes, batch)
        feed = {X: Xv, y: yv}
        want_loss, *ds = sg.evaluate([loss, *grads], feed)
        want = [p.value - 0.1 * d for p, d in zip(params, ds)]
        np.testing.assert_allclose(step(Xv, yv), want_loss, rtol=1e-13)
        for p, w in zip(params, want):
            np.testing.assert_allclose(p.value, w, rtol=1e-12, atol=1e-14)
    src = step.source
    assert src.count("rt.softmax_cross_entropy(") == 1
    assert "rt.logsumexp(" not in src and "rt.softmax_minus_one_hot(" not in src


def test_compiled_head_is_not_fused_when_its_logsumexp_is_wanted_elsewhere():
    g = sg.Graph()
    z = g.input("z", ("batch", 4))
    y = g.input("y", ("batch",), "int64")
    loss = sg.cross_entropy(z, y).mean()
    fn = sg.compile([loss, sg.grad(loss, z)], [z, y])  # the gradient leaves the kernel
    zv, yv = RNG.standard_normal((6, 4)), RNG.integers(0, 4, 6)
    assert "rt.softmax_cross_entropy(" not in fn.source
    for a, b in zip(fn(zv, yv), sg.evaluate([loss, sg.grad(loss, z)], {z: zv, y: yv})):
        np.testing.assert_allclose(a, b, rtol=1e-13)


def weighted_step(per_row_loss):
    """SGD on sum(per_row_loss(cross-entropies, weights)) of a linear layer to 12 classes."""
    g = sg.Graph()
    X, y = g.input("X", ("batch", 5)), g.input("y", ("batch",), "int64")
    w = g.input("w", ("batch",))
    params = [g.variable("W", RNG.standard_normal((5, 12))), g.variable("b", np.zeros(12))]
    loss = sg.sum(per_row_loss(sg.cross_entropy(X @ params[0] + params[1], y), w))
    grads = sg.grad(loss, params)
    step = sg.compile(loss, [X, y, w], updates={p: p - 0.1 * d for p, d in zip(params, grads)})
    feed = [RNG.standard_normal((40, 5)), RNG.integers(0, 12, 40), RNG.uniform(-1, 1, 40)]
    want_loss, *ds = sg.evaluate([loss, *grads], dict(zip([X, y, w], feed)))
    want = [p.value - 0.1 * d for p, d in zip(params, ds)]
    np.testing.assert_allclose(step(*feed), want_loss, rtol=1e-13)
    for p, v in zip(params, want):
        np.testing.assert_allclose(p.value, v, rtol=1e-12, atol=1e-14)
    return step.source


def test_a_per_row_scale_is_computed_before_the_fused_head():
    src = weighted_step(lambda ce, w: ce * w)  # the weights reshaped: moved before the losses
    assert src.count("rt.softmax_cross_entropy(") == 1
    assert src.index("np.reshape(") < src.index("rt.softmax_cross_entropy(")


def test_a_scale_read_from_the_losses_keeps_the_head_apart():
    src = weighted_step(lambda ce, w: ce * ce * w)  # the cotangent 2 * ce * w needs the losses
    assert "rt.softmax_cross_entropy(" not in src and "rt.softmax_minus_one_hot(" in src


@pytest.mark.parametrize("dtype", ["bool", "int8", "uint8", "int16", "int32"])
def test_stable_ops_of_integers_take_the_float_dtype_of_exp(dtype):
    # float16 for bools and 8-bit integers, float32 for 16-bit ones: what inference says
    g = sg.Graph()
    x, y = g.input("x", (5, 3), dtype), g.input("y", (5,), "int64")
    outs = [sg.softmax(x), sg.log_softmax(x), sg.logsumexp(x, -1), sg.cross_entropy(x, y)]
    xv, yv = (np.arange(15).reshape(5, 3) % 3 > 0).astype(dtype), np.arange(5) % 3
    want_dtype = np.exp(np.ones(1, dtype)).dtype
    evaluated = sg.evaluate(outs, {x: xv, y: yv})
    compiled = sg.compile(outs, [x, y])(xv, yv)
    reference = xv.astype(np.float64)
    lse = reference_lse(reference, -1)
    wants = [np.exp(reference - lse[:, None]), reference - lse[:, None], lse]
    wants.append(lse - reference[np.arange(5), yv])
    for t, a, b, want in zip(outs, evaluated, compiled, wants):
        assert a.dtype == b.dtype == want_dtype == np.dtype(t.dtype)
        np.testing.assert_allclose(a, want, rtol=tol(want_dtype.name), atol=tol(want_dtype.name))
        np.testing.assert_allclose(b, want, rtol=tol(want_dtype.name), atol=tol(want_dtype.name))


def test_stable_ops_over_no_axes_take_each_entry_alone():
    # a 0-d input (or axis=()): logsumexp is x, softmax 1, log_softmax 0, in both paths
    g = sg.Graph()
    x, y = g.input("x", ()), g.input("y", (3,))
    outs = [sg.logsumexp(x), sg.logsumexp(y, ()), sg.softmax(x, ()), sg.log_softmax(y, ())]
    outs.append(sg.grad(sg.logsumexp(x) + sg.sum(sg.softmax(y, ())), x))
    feed = {x: np.array(0.7), y: np.array([-1000.0, 0.0, 1000.0])}
    wants = [0.7, feed[y], 1.0, np.zeros(3), 1.0]
    for got in (sg.evaluate(outs, feed), sg.compile(outs, [x, y])(*feed.values())):
        for t, a, want in zip(outs, got, wants):
            assert a.shape == t.shape and a.dtype == np.dtype(t.dtype)
            np.testing.assert_array_equal(a, want)
