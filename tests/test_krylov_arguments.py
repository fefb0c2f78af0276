"""Bad arguments to the krylov functions: a symgrad error that names the argument, the value
and the caller's file:line, raised before anything is changed."""

import numpy as np
import pytest
from scipy.sparse.linalg import LinearOperator, aslinearoperator

import symgrad as sg
from symgrad import krylov, nn

SITE = "test_krylov_arguments.py:"


def refused(call, *words, error=sg.InputError):
    """``call()`` raises ``error`` (a symgrad error) whose message holds ``words`` and the
    line of this file that made the call."""
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, sg.SymgradError)
    message = str(info.value)
    assert SITE in message, message
    for word in words:
        assert word in message, message
    return message


@pytest.fixture
def curvature():
    g = sg.Graph()
    x = g.input("x", (3,))
    f = sg.sum(sg.tanh(x))
    return g, x, f, krylov.hvp_operator(f, x, {x: np.ones(3)})


def nonsymmetric(n=4):
    return np.arange(float(n * n)).reshape(n, n)


def symmetric(n=4, seed=0):
    B = np.random.default_rng(seed).standard_normal((n, n))
    return B + B.T


# ---- damped -------------------------------------------------------------------------------
@pytest.mark.parametrize("damping", [np.nan, np.inf, -np.inf, "1", None, 1j])
def test_damped_refuses_a_damping_that_is_no_finite_number(curvature, damping):
    *_, op = curvature
    refused(lambda: krylov.damped(op, damping), "damped", "damping", repr(damping))
    refused(lambda: op.damped(damping), "damping", repr(damping))


def test_damped_takes_any_finite_shift_and_a_matrix(curvature):
    *_, op = curvature
    v = np.arange(3.0)
    np.testing.assert_allclose(krylov.damped(op, -0.5).matvec(v), op.matvec(v) - 0.5 * v)
    np.testing.assert_allclose(krylov.damped(np.eye(3), 2).matvec(v), 3 * v)
    refused(lambda: krylov.damped(np.ones((2, 3)), 1.0), "damped", "op", "(2, 3)")


# ---- Lanczos and top_eigenvalues ------------------------------------------------------------
def test_lanczos_and_top_eigenvalues_refuse_a_nonsymmetric_matrix():
    A = nonsymmetric()
    refused(lambda: krylov.lanczos(A, 2), "lanczos", "op", "symmetric")
    refused(lambda: krylov.top_eigenvalues(A, 2), "top_eigenvalues", "op", "symmetric")
    refused(lambda: krylov.spectral_density(A), "spectral_density", "op", "symmetric")
    refused(lambda: krylov.conjugate_gradient(A, np.ones(4)), "conjugate_gradient", "A")
    refused(lambda: krylov.lanczos(np.diag([1.0, np.nan]), 1), "lanczos", "op", "nan")


def test_a_matrix_symmetric_up_to_rounding_is_taken():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((30, 30)))
    A = (Q * np.arange(30.0)) @ Q.T  # not bitwise symmetric
    assert not np.array_equal(A, A.T)
    np.testing.assert_allclose(krylov.top_eigenvalues(A, 2), [29.0, 28.0], rtol=1e-8)
    A32 = A.astype(np.float32)
    assert krylov.lanczos(A32, 3).steps == 3


def test_a_matrix_free_operator_costs_no_extra_products():
    calls = []

    def matvec(v):
        calls.append(1)
        return nonsymmetric() @ np.ravel(v)  # not symmetric: seen only through products

    op = LinearOperator((4, 4), matvec=matvec, dtype=np.float64)
    assert krylov.lanczos(op, 2).steps == 2
    assert len(calls) == 2


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "2", None])
def test_lanczos_refuses_a_k_that_is_no_positive_int(k):
    refused(lambda: krylov.lanczos(np.eye(3), k), "lanczos", "k", repr(k))


def test_lanczos_refuses_bad_start_vectors_and_starts():
    A = np.eye(3)
    refused(lambda: krylov.lanczos(A, 2, v0=np.ones(4)), "v0", "3 entries", "(4,)")
    refused(lambda: krylov.lanczos(A, 2, v0=np.zeros(3)), "v0", "zero")
    refused(lambda: krylov.lanczos(A, 2, v0=np.array([np.inf, 0, 0])), "v0", "not finite")
    refused(lambda: krylov.lanczos(A, 2, v0="abc"), "v0", "str")
    first = krylov.lanczos(A, 1)
    refused(lambda: krylov.lanczos(A, 1, v0=np.ones(3), start=first), "v0", "start", "not both")
    refused(lambda: krylov.lanczos(np.eye(4), 1, start=first), "start", "3 x 3", "4 x 4")
    refused(lambda: krylov.lanczos(A, 1, start="again"), "start", "str")
    refused(lambda: krylov.lanczos(A, 1, seed=-1), "lanczos", "seed", "-1")


@pytest.mark.parametrize(
    "op, words",
    [
        (np.ones((2, 3)), ["op", "(2, 3)"]),
        (np.ones(3), ["op", "(3,)"]),
        (np.zeros((0, 0)), ["op", "(0, 0)"]),
        ([[1.0, 0.0], [0.0, 1.0]], ["op", "list"]),
    ],
)
def test_krylov_functions_refuse_an_op_that_is_no_square_matrix(op, words):
    refused(lambda: krylov.lanczos(op, 1), "lanczos", *words)
    refused(lambda: krylov.top_eigenvalues(op, 1), "top_eigenvalues", *words)
    refused(lambda: krylov.trace(op, 3), "trace", *words)
    refused(lambda: krylov.spectral_density(op), "spectral_density", *words)


def test_top_eigenvalues_refuses_bad_settings():
    A = symmetric()
    fn = "top_eigenvalues"
    refused(lambda: krylov.top_eigenvalues(A, 2.5), fn, "k = 2.5")
    refused(lambda: krylov.top_eigenvalues(A, 5), fn, "k = 5", "4 x 4")
    refused(lambda: krylov.top_eigenvalues(A, 0), fn, "k = 0")
    refused(lambda: krylov.top_eigenvalues(A, 2, which="XX"), fn, "which", "'XX'")
    refused(lambda: krylov.top_eigenvalues(A, 2, tol=np.nan), fn, "tol", "nan")
    refused(lambda: krylov.top_eigenvalues(A, 2, tol=-1.0), fn, "tol", "-1.0")
    refused(lambda: krylov.top_eigenvalues(A, 3, max_steps=2), fn, "max_steps = 2", "k = 3")
    refused(lambda: krylov.top_eigenvalues(A, 2, max_steps=0), fn, "max_steps", "0")
    refused(lambda: krylov.top_eigenvalues(A, 2, seed=-3), fn, "seed", "-3")


def test_top_eigenvalues_takes_what_lanczos_takes():
    # seed None (fresh entropy, as everywhere in krylov), 0-d arrays and NumPy numbers
    A = symmetric(30, seed=2)
    want = np.sort(np.linalg.eigvalsh(A))[::-1][:2]
    for kwargs in ({"seed": None}, {"tol": np.array(1e-10)}, {"tol": np.float32(1e-6)}):
        np.testing.assert_allclose(krylov.top_eigenvalues(A, 2, **kwargs), want, rtol=1e-6)
    op = aslinearoperator(A)
    got = krylov.damped(op, np.array(0.5)) @ np.ones(30)
    np.testing.assert_allclose(got, A @ np.ones(30) + 0.5)


# ---- conjugate gradient -------------------------------------------------------------------
def test_conjugate_gradient_refuses_bad_arguments():
    A, b = np.diag([1.0, 2.0, 3.0]), np.ones(3)
    fn = "conjugate_gradient"
    refused(lambda: krylov.conjugate_gradient(A, np.ones(4)), fn, "b", "3 entries", "(4,)")
    refused(lambda: krylov.conjugate_gradient(A, b, np.ones(2)), fn, "x0", "(2,)")
    refused(lambda: krylov.conjugate_gradient(A, b, tol=-1e-3), fn, "tol", "-0.001")
    refused(lambda: krylov.conjugate_gradient(A, b, tol=np.nan), fn, "tol", "nan")
    refused(lambda: krylov.conjugate_gradient(A, b, max_iter=-1), fn, "max_iter", "-1")
    refused(lambda: krylov.conjugate_gradient(A, b, max_iter=2.5), fn, "max_iter", "2.5")
    refused(lambda: krylov.conjugate_gradient(A, b, progress_tol=np.nan), fn, "progress_tol")
    for growth in (1.0, np.inf, np.nan, "2"):
        refused(lambda: krylov.conjugate_gradient(A, b, growth=growth), fn, "growth")
    refused(lambda: krylov.conjugate_gradient(np.ones((3, 2)), b), fn, "A", "(3, 2)")


def test_conjugate_gradient_leaves_the_start_vector_alone():
    A, b, x0 = np.diag([1.0, 2.0, 3.0]), np.ones(3), np.zeros(3)
    x0[0] = 0.5
    result = krylov.conjugate_gradient(A, b, x0)
    assert x0.tolist() == [0.5, 0.0, 0.0]
    np.testing.assert_allclose(result.x, [1.0, 0.5, 1 / 3])
    assert krylov.conjugate_gradient(A, b, x0, max_iter=0).x is not x0


# ---- trace and spectral density -------------------------------------------------------------
def test_trace_and_spectral_density_refuse_bad_settings():
    A = symmetric()
    refused(lambda: krylov.trace(A, 0), "trace", "n_probes", "0")
    refused(lambda: krylov.trace(A, 2.0), "trace", "n_probes", "2.0")
    refused(lambda: krylov.trace(A, 3, method="exact"), "trace", "method", "'exact'")
    refused(lambda: krylov.trace(A, 3, seed=-2), "trace", "seed", "-2")
    fn = "spectral_density"
    refused(lambda: krylov.spectral_density(A, n_probes=0), fn, "n_probes", "0")
    refused(lambda: krylov.spectral_density(A, steps=0), fn, "steps", "0")
    refused(lambda: krylov.spectral_density(A, seed="x"), fn, "seed", "'x'")
    sd = krylov.spectral_density(A, n_probes=2, steps=4)
    grid = np.linspace(-5, 5, 11)
    for sigma in (0.0, -1.0, np.nan):
        refused(lambda: sd.density(grid, sigma), "density", "sigma", repr(sigma))
    refused(lambda: sd.moment("2"), "moment", "p", "'2'")
    assert sd.weights.sum() == pytest.approx(1.0) and sd.density(grid).shape == (11,)
    assert krylov.trace(A, 3, method="hutchinson").n_products == 3


# ---- curvature operators ------------------------------------------------------------------
def test_curvature_operators_refuse_arguments_of_the_wrong_kind(curvature):
    g, x, f, _ = curvature
    other = sg.Graph().input("x", (3,))
    nodes = len(g.nx)
    feed = {x: np.ones(3)}
    fn = "hvp_operator"
    refused(lambda: krylov.hvp_operator(np.ones(3), x, feed), fn, "f", "ndarray")
    refused(lambda: krylov.hvp_operator(f, np.ones(3), feed), fn, "wrt", "ndarray")
    refused(lambda: krylov.hvp_operator(f, [x, "x"], feed), fn, "wrt", "str")
    refused(lambda: krylov.hvp_operator(f, other, feed), fn, "wrt", "another graph")
    refused(lambda: krylov.hvp_operator(f, x, [np.ones(3)]), fn, "feed", "list")
    refused(lambda: krylov.hvp_operator(f, x, {other: np.ones(3)}), fn, "feed", "another graph")
    refused(lambda: krylov.hvp_operator(f, x, {x: "abc"}), fn, "feed", "'x'", "float64", "str")
    refused(
        lambda: krylov.gnvp_operator(f, x, feed, outputs=other),
        "gnvp_operator",
        "outputs",
        "another graph",
    )
    assert len(g.nx) == nodes  # nothing was built
    assert krylov.hvp_operator(f, (w for w in [x]), feed).shape == (3, 3)


# ---- Hessian-free ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "setting, value",
    [
        ("damping", -1.0),
        ("damping", np.nan),
        ("curvature", "newton"),
        ("max_cg", 0),
        ("max_cg", 10.0),
        ("cg_tol", -1e-3),
        ("progress_tol", np.inf),
        ("decay", 1.5),
        ("decay", -0.1),
        ("curvature_batch", 0),
        ("line_search", "no"),
        ("boost", 0.5),
        ("drop", 0.0),
        ("drop", 2.0),
    ],
)
def test_hessian_free_refuses_settings_that_make_no_optimizer(setting, value):
    refused(lambda: krylov.HessianFree(**{setting: value}), "HessianFree", setting, repr(value))


def test_hessian_free_checks_its_settings_again_when_it_makes_a_step():
    net = nn.mlp([2, 3, 1], seed=0)
    nodes = len(net.graph.nx)
    hf = krylov.HessianFree(damping=0.0, boost=1.0, drop=1.0, progress_tol=None)
    hf.damping = -2.0
    X, y = np.ones((4, 2)), np.ones((4, 1))
    refused(
        lambda: nn.fit(net, X, y, loss="mse", optimizer=hf, epochs=1, quiet=True),
        "HessianFree",
        "damping",
        "-2.0",
    )
    assert len(net.graph.nx) == nodes  # nothing was built
    hf.damping = 1.0
    nn.fit(net, X, y, loss="mse", optimizer=hf, epochs=1, quiet=True)


def test_flatten_and_unflatten_check_sizes_with_the_call_site():
    g = sg.Graph()
    W = g.variable("W", np.zeros((2, 3)))
    assert krylov.flatten([]).shape == (0,)
    for v in (np.zeros(5), np.zeros(7)):
        with pytest.raises(sg.ShapeError, match=r"6 entries \(.*test_krylov_arguments.py:\d+"):
            krylov.unflatten(v, [W])
    (piece,) = krylov.unflatten(np.arange(6.0).reshape(6, 1), [W])  # a column, as scipy gives
    np.testing.assert_array_equal(piece, np.arange(6.0).reshape(2, 3))
    x = g.input("x", ("batch",))
    with pytest.raises(sg.ShapeError, match=r"concrete shapes \(.*test_krylov_arguments.py:"):
        krylov.unflatten(np.zeros(2), [x])


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix
def test_dense_matrices_of_any_numeric_kind_are_taken_and_checked():
    S = np.array([[2.0, 1.0], [1.0, 3.0]])
    want = krylov.conjugate_gradient(S, np.ones(2)).x
    np.testing.assert_allclose(want, [0.4, 0.2])
    np.testing.assert_allclose(krylov.conjugate_gradient(np.asmatrix(S), np.ones(2)).x, want)
    np.testing.assert_allclose(krylov.top_eigenvalues(S.astype(object), 1), [3.618034], rtol=1e-6)
    for bad in (np.array([[True, True], [False, True]]), np.array([[1, 2], [0, 1]], np.uint8)):
        refused(lambda bad=bad: krylov.top_eigenvalues(bad, 1), "must be symmetric")


def test_a_float32_hessian_read_in_float64_is_symmetric_enough():
    # a Hessian computed in float32 is symmetric to ~1e-7 relative: taken, in either dtype
    g = sg.Graph()
    X, y = g.input("X", (20, 8), "float32"), g.input("y", (20, 1), "float32")
    th = g.input("theta", (144,), "float32")
    W, v = nn.split_flat(th, [(8, 16), (16, 1)])
    loss = sg.mean((sg.tanh(X @ W) @ v - y) ** 2)
    rng = np.random.default_rng(0)
    feed = [rng.standard_normal(s).astype(np.float32) for s in ((20, 8), (20, 1), (144,))]
    H = sg.compile(sg.hessian(loss, th), [X, y, th])(*feed)
    top = krylov.top_eigenvalues(H.astype(np.float64), 2)
    np.testing.assert_allclose(top, np.linalg.eigvalsh(H.astype(np.float64))[::-1][:2], rtol=1e-5)
    np.testing.assert_allclose(krylov.top_eigenvalues(H, 2), top, rtol=1e-4)


def test_moment_takes_real_powers():
    A = np.diag([1.0, 4.0, 9.0])
    density = krylov.spectral_density(A, n_probes=4, steps=3, seed=0)
    np.testing.assert_allclose(density.moment(2.0), density.moment(2), rtol=1e-12)
    np.testing.assert_allclose(density.moment(0.5), np.mean(np.sqrt([1.0, 4.0, 9.0])), rtol=1e-9)
    refused(lambda: density.moment(np.nan), "moment", "p")


def test_complex_and_non_finite_operands_are_refused():
    hermitian = np.array([[2.0, 1j], [-1j, 2.0]])  # eigenvalues 1 and 3, not 2 and 2
    refused(lambda: krylov.top_eigenvalues(hermitian, 2), "op must be real", "complex128")
    refused(lambda: krylov.trace(aslinearoperator(hermitian)), "must be real")
    refused(lambda: krylov.conjugate_gradient(np.eye(2), [1j, 1j]), "b must be real")
    for bad in (np.inf, np.nan):
        # tol * |b| = inf would take any x as converged
        refused(lambda: krylov.conjugate_gradient(np.eye(2), [1.0, bad]), "b has entries", "nan")
        refused(lambda: krylov.conjugate_gradient(np.eye(2), np.ones(2), [bad, 0.0]), "x0 has")
        A = np.eye(3)
        A[1, 1] = bad
        refused(lambda: krylov.trace(A, 10), "op has nan or inf entries")
        refused(lambda: krylov.damped(A, 1.0), "op has nan or inf entries")


def test_top_eigenvalues_takes_a_0d_k_as_lanczos_does():
    A = np.diag([3.0, 2.0, 1.0])
    np.testing.assert_allclose(krylov.top_eigenvalues(A, np.array(2)), [3.0, 2.0], atol=1e-12)


def test_hessian_free_refuses_zero_damping_with_hessian_curvature():
    # boost multiplies: from 0 the damping never grows past negative curvature
    refused(lambda: krylov.HessianFree(curvature="hessian", damping=0.0), "damping must be > 0")
    krylov.HessianFree(damping=0.0)  # Gauss-Newton curvature is never negative
