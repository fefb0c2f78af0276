"""symgrad.krylov against dense linear algebra computed independently with NumPy/SciPy."""

import numpy as np
import pytest
import scipy.sparse.linalg as spla

import symgrad as sg
from symgrad import krylov, nn
from symgrad.krylov.operators import _staged

SIZES = (2, 16, 2)  # 2*16 + 16 + 16*2 + 2 = 82 parameters


def small_net(activation="tanh", seed=0):
    """The (batch 4, 2-16-2) network: its loss over variables, and the same loss written over
    one flat parameter vector (an independent graph for the explicit Hessian)."""
    rng = np.random.default_rng(seed)
    Xd, yd = rng.standard_normal((4, 2)), np.array([0, 1, 1, 0])
    net = nn.mlp(SIZES, activation, seed=seed)
    g = net.graph
    X, y = g.input("X", (4, 2)), g.input("y", (4,), "int64")
    z = net(X)
    loss = sg.cross_entropy(z, y).mean()

    h = sg.Graph()
    theta = h.input("theta", (82,))
    act = {"tanh": sg.tanh, "relu": sg.relu}[activation]
    W0, b0, W1, b1 = sg.nn.split_flat(theta, [(2, 16), (16,), (16, 2), (2,)])
    flat_logits = act(h.constant(Xd) @ W0 + b0) @ W1 + b1
    flat_loss = sg.cross_entropy(flat_logits, h.constant(yd)).mean()
    point = np.concatenate([p.value.ravel() for p in net.params])
    H = sg.compile(sg.hessian(flat_loss, theta), [theta])(point)
    J = sg.compile(sg.jacobian(flat_logits, theta), [theta])(point)  # (4, 2, 82)
    logits = sg.compile(flat_logits, [theta])(point)
    return {
        "net": net, "loss": loss, "z": z, "feed": {X: Xd, y: yd}, "H": H, "J": J,
        "logits": logits, "labels": yd,
    }  # fmt: skip


@pytest.fixture(scope="module")
def case():
    return small_net()


# ---- the must-show numbers -----------------------------------------------------------------
def test_lanczos_top5_equals_eigh_of_the_explicit_hessian(case):
    op = krylov.hvp_operator(case["loss"], case["net"].params, case["feed"])
    assert op.shape == (82, 82)
    exact = np.linalg.eigh(case["H"])[0][::-1][:5]
    top = krylov.top_eigenvalues(op, 5)
    np.testing.assert_allclose(top, exact, rtol=1e-6)
    assert op.n_products < 82  # found without building the whole matrix
    vals, vecs = krylov.top_eigenvalues(op, 5, return_vectors=True)
    np.testing.assert_allclose(case["H"] @ vecs, vecs * vals, atol=1e-8)


def test_eigsh_on_the_operator_agrees(case):
    op = krylov.hvp_operator(case["loss"], case["net"].params, case["feed"])
    exact = np.linalg.eigh(case["H"])[0]
    top = np.sort(spla.eigsh(op, k=5, which="LA", tol=1e-12)[0])[::-1]
    np.testing.assert_allclose(top, exact[::-1][:5], rtol=1e-6)
    bottom = np.sort(spla.eigsh(op, k=3, which="SA", tol=1e-12)[0])
    np.testing.assert_allclose(bottom, exact[:3], rtol=1e-6, atol=1e-10)


def test_trace_with_200_probes_within_5_percent(case):
    op = krylov.hvp_operator(case["loss"], case["net"].params, case["feed"])
    exact = np.trace(case["H"])
    est = krylov.trace(op, 200)
    assert op.n_products == est.n_products <= 200
    assert abs(est.value - exact) <= 0.05 * abs(exact)
    # plain Hutchinson is unbiased with the variance 2 (|H|_F^2 - sum H_ii^2) / probes
    H = case["H"]
    sd = np.sqrt(2 * (np.sum(H**2) - np.sum(np.diag(H) ** 2)) / 200)
    plain = krylov.trace(op, 200, method="hutchinson")
    assert abs(plain.value - exact) <= 4 * sd
    assert plain.stderr == pytest.approx(sd, rel=0.35)


@pytest.mark.parametrize("solver", ["scipy-cg", "krylov-cg"])
@pytest.mark.parametrize("tol", [1e-4, 1e-8, 1e-11])
def test_cg_on_damped_hvp_operator_reaches_the_tolerance(case, solver, tol):
    op = krylov.hvp_operator(case["loss"], case["net"].params, case["feed"])
    H = case["H"]
    damping = max(0.0, -np.linalg.eigvalsh(H)[0]) + 0.05  # positive definite
    A = op.damped(damping)
    b = np.random.default_rng(2).standard_normal(82)
    if solver == "scipy-cg":
        x, info = spla.cg(A, b, rtol=tol, atol=0.0, maxiter=2000)
        assert info == 0
    else:
        result = krylov.conjugate_gradient(A, b, tol=tol, max_iter=2000)
        assert result.reason == "residual"
        x = result.x
    residual = np.linalg.norm((H + damping * np.eye(82)) @ x - b) / np.linalg.norm(b)
    assert residual <= tol * 1.01  # the true residual, not CG's recurrence
    np.testing.assert_allclose(x, np.linalg.solve(H + damping * np.eye(82), b), rtol=1e3 * tol)


def test_minres_solves_with_the_indefinite_hessian(case):
    op = krylov.hvp_operator(case["loss"], case["net"].params, case["feed"])
    H = case["H"]
    b = H @ np.random.default_rng(3).standard_normal(82)  # in the range of H
    x, info = spla.minres(op, b, rtol=1e-10)
    assert np.linalg.norm(H @ x - b) <= 1e-6 * np.linalg.norm(b)


# ---- products --------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["fwd-rev", "rev-rev"])
def test_hvp_operator_is_the_explicit_hessian(case, mode):
    op = krylov.hvp_operator(case["loss"], case["net"].params, case["feed"], mode=mode)
    v = np.random.default_rng(1).standard_normal((82, 3))
    np.testing.assert_allclose(op @ v, case["H"] @ v, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(op.rmatvec(v[:, 0]), case["H"] @ v[:, 0], rtol=1e-10)
    assert op.n_products == 4 and op.passes == 8


def test_hvp_matches_finite_differences_of_gradients(case):
    net, loss, feed = case["net"], case["loss"], case["feed"]
    op = krylov.hvp_operator(loss, net.params, feed)
    grad_fn = sg.compile(sg.grad(loss, net.params), list(feed))
    base = krylov.get_flat(net.params)
    v = np.random.default_rng(5).standard_normal(82)
    eps = 1e-5
    krylov.set_flat(net.params, base + eps * v)
    gp = krylov.flatten(grad_fn(*feed.values()))
    krylov.set_flat(net.params, base - eps * v)
    gm = krylov.flatten(grad_fn(*feed.values()))
    krylov.set_flat(net.params, base)
    np.testing.assert_allclose(op @ v, (gp - gm) / (2 * eps), rtol=1e-7, atol=1e-9)


def test_gauss_newton_operator_is_jt_hl_j(case):
    op = krylov.gnvp_operator(case["loss"], case["net"].params, case["feed"], outputs=case["z"])
    G = op @ np.eye(82)
    z, J = case["logits"], case["J"]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = sum(J[i].T @ (np.diag(p[i]) - np.outer(p[i], p[i])) @ J[i] for i in range(4)) / 4
    np.testing.assert_allclose(G, expected, rtol=1e-10, atol=1e-14)
    assert np.linalg.eigvalsh(G)[0] > -1e-12  # positive semidefinite, unlike H
    assert np.linalg.eigvalsh(case["H"])[0] < -1e-3


def test_gauss_newton_of_squared_error_is_scaled_jtj():
    rng = np.random.default_rng(0)
    net = nn.mlp([3, 5, 2], "tanh", seed=1)
    g = net.graph
    X, T = g.input("X", (6, 3)), g.input("T", (6, 2))
    Xd, Td = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    z = net(X)
    op = krylov.gnvp_operator(sg.mse(z, T), net.params, {X: Xd, T: Td}, outputs=z)
    h = sg.Graph()
    theta = h.input("theta", (op.shape[0],))
    pieces = sg.nn.split_flat(theta, [p.shape for p in net.params])
    out = sg.tanh(h.constant(Xd) @ pieces[0] + pieces[1]) @ pieces[2] + pieces[3]
    J = sg.compile(sg.jacobian(out, theta), [theta])(krylov.get_flat(net.params)).reshape(12, -1)
    np.testing.assert_allclose(op @ np.eye(op.shape[0]), 2 / 12 * J.T @ J, rtol=1e-10, atol=1e-14)


def test_parameters_as_inputs_and_feed_by_name():
    g = sg.Graph()
    w = g.input("w", (3,))
    A = g.input("A", (3, 3))
    f = sg.sum(sg.tanh(A @ w) ** 2)
    Ad = np.random.default_rng(0).standard_normal((3, 3))
    wd = np.array([0.3, -0.2, 0.5])
    op = krylov.hvp_operator(f, w, {"w": wd, "A": Ad})
    H = sg.compile(sg.hessian(f, w), [w, A])(wd, Ad)
    np.testing.assert_allclose(op @ np.eye(3), H, rtol=1e-12)
    wd[:] = 0  # the point was copied: the operator does not change
    np.testing.assert_allclose(op @ np.eye(3), H, rtol=1e-12)
    with pytest.raises(sg.InputError, match="feed a value"):
        krylov.hvp_operator(f, w, {"A": Ad})


def test_products_are_compiled_once_per_function():
    case = small_net(seed=1)
    loss, params, feed = case["loss"], case["net"].params, case["feed"]
    graph = loss.graph
    krylov.hvp_operator(loss, params, feed)
    n_nodes = len(graph)
    X, y = feed
    op = krylov.hvp_operator(loss, params, {X: 2 * feed[X], y: feed[y]})
    assert len(graph) == n_nodes  # same graph and compiled function, new data
    assert op.matvec(np.ones(82)).shape == (82,)


def test_staging_uses_specialize_when_the_compiler_has_it():
    calls = []

    class Specializable:
        def __call__(self, *args):
            raise AssertionError("the generic call is not used")

        def specialize(self, fixed):
            calls.append(fixed)
            return lambda v: 2 * v

    product = _staged(Specializable(), {"X": np.ones(2)})
    np.testing.assert_array_equal(product(np.arange(3.0)), [0.0, 2.0, 4.0])
    assert list(calls[0]) == ["X"]


# ---- Lanczos ---------------------------------------------------------------------------------
def random_symmetric(n, seed=0, spectrum=None):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = rng.standard_normal(n) if spectrum is None else np.asarray(spectrum, dtype=float)
    return (Q * lam) @ Q.T, np.sort(lam)


def test_lanczos_basis_is_orthonormal_and_tridiagonalizes():
    A, _ = random_symmetric(120, spectrum=np.r_[np.linspace(0, 1, 110), np.arange(2, 12)])
    res = krylov.lanczos(A, 60)
    assert res.steps == 60 and res.Q.shape == (120, 60)
    np.testing.assert_allclose(res.Q.T @ res.Q, np.eye(60), atol=1e-12)
    np.testing.assert_allclose(res.Q.T @ A @ res.Q, res.tridiagonal(), atol=1e-12)
    r = A @ res.Q[:, -1] - res.Q @ (res.Q.T @ A @ res.Q[:, -1])
    np.testing.assert_allclose(r, res.residual, atol=1e-12)
    more = krylov.lanczos(A, 20, start=res)
    once = krylov.lanczos(A, 80)
    np.testing.assert_allclose(more.alpha, once.alpha, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(more.beta, once.beta, rtol=1e-10)


def test_lanczos_stops_on_an_invariant_subspace():
    A = np.diag([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    v0 = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])  # lives in a 3-dimensional invariant space
    res = krylov.lanczos(A, 6, v0=v0)
    assert res.steps == 3 and res.invariant
    np.testing.assert_allclose(np.sort(res.ritz()[0]), [1.0, 2.0, 3.0], rtol=1e-12)


@pytest.mark.parametrize("which", ["LA", "SA", "LM"])
def test_top_eigenvalues_of_a_dense_matrix(which):
    A, lam = random_symmetric(200, seed=1)
    order = {"LA": lam[::-1], "SA": lam, "LM": lam[np.argsort(-np.abs(lam))]}[which]
    got = krylov.top_eigenvalues(A, 4, which=which)
    np.testing.assert_allclose(got, order[:4], rtol=1e-8)


# ---- spectral density and trace ---------------------------------------------------------
def test_slq_is_gauss_quadrature_of_each_probe():
    A, lam = random_symmetric(60, seed=2)
    steps = 10
    sd = krylov.spectral_density(A, n_probes=3, steps=steps, seed=7)
    np.testing.assert_allclose(sd.weights.sum(), 1.0)
    # the probes are documented: random signs from default_rng(seed), scaled to unit length
    rng = np.random.default_rng(7)
    probes = [rng.choice([-1.0, 1.0], size=60) / np.sqrt(60) for _ in range(3)]
    for p in range(2 * steps):  # exact for polynomials of degree < 2 steps
        exact = np.mean([v @ np.linalg.matrix_power(A, p) @ v for v in probes])
        assert sd.moment(p) == pytest.approx(exact, rel=1e-8, abs=1e-10)


def test_slq_density_approaches_the_smoothed_spectrum():
    bulk = np.random.default_rng(0).gamma(2.0, 1.0, 290)
    A, lam = random_symmetric(300, seed=3, spectrum=np.r_[bulk, 20 + np.arange(10)])
    sd = krylov.spectral_density(A, n_probes=30, steps=40)
    grid = np.linspace(-2, 32, 800)
    sigma = 0.5
    exact = np.exp(-0.5 * ((grid[:, None] - lam[None]) / sigma) ** 2).sum(1)
    exact /= len(lam) * sigma * np.sqrt(2 * np.pi)
    got = sd.density(grid, sigma)
    dx = grid[1] - grid[0]
    assert np.sum(got) * dx == pytest.approx(1.0, abs=1e-3)
    assert np.sum(np.abs(got - exact)) * dx < 0.1
    assert sd.trace == pytest.approx(lam.sum(), rel=0.05)


def test_hutch_plus_plus_beats_hutchinson_on_a_dominant_spectrum():
    lam = np.r_[100.0 / np.arange(1, 21), 0.01 * np.ones(380)]
    A, _ = random_symmetric(400, seed=4, spectrum=lam)
    exact = lam.sum()
    errors = {m: [] for m in ("hutch++", "hutchinson")}
    for seed in range(5):
        for m in errors:
            est = krylov.trace(A, 90, method=m, seed=seed)
            errors[m].append(abs(est.value - exact) / exact)
    assert max(errors["hutch++"]) < 0.01
    assert np.mean(errors["hutchinson"]) > 5 * np.mean(errors["hutch++"])


# ---- conjugate gradient ------------------------------------------------------------------------
def test_cg_iterates_checkpoints_and_model_values():
    A, _ = random_symmetric(50, seed=5, spectrum=np.logspace(0, 3, 50))
    b = np.random.default_rng(0).standard_normal(50)
    res = krylov.conjugate_gradient(A, b, tol=1e-12, max_iter=500)
    assert res.converged
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-8)
    its = [i for i, _, _ in res.iterates]
    assert its[:6] == [1, 2, 3, 4, 5, 7] and its[-1] == res.iterations  # ceil(1.3^j)
    for _, x, phi in res.iterates:
        assert phi == pytest.approx(0.5 * x @ A @ x - b @ x, rel=1e-8)
    assert all(np.diff(res.phi) <= 1e-12)  # CG decreases the quadratic model monotonically


def test_cg_progress_rule_and_negative_curvature():
    A, _ = random_symmetric(400, seed=6, spectrum=np.logspace(0, 4, 400))
    b = np.random.default_rng(1).standard_normal(400)
    res = krylov.conjugate_gradient(A, b, tol=1e-14, max_iter=400, progress_tol=5e-4)
    assert res.reason == "progress" and 10 < res.iterations < 400
    indefinite = np.diag([1.0, -1.0])
    res = krylov.conjugate_gradient(indefinite, np.array([0.0, 1.0]))
    assert res.reason == "negative_curvature" and not res.converged


# ---- Hessian-free ----------------------------------------------------------------------------
def ill_conditioned_regression(condition_exp=3, n=256, d=8, seed=0):
    """Inputs whose covariance has eigenvalues from 1 down to 10^(-2 condition_exp); the
    target depends on every direction alike, so the small ones must be learned too."""
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((d, d)))
    u = rng.standard_normal((n, d))
    X = u @ np.diag(np.logspace(0, -condition_exp, d)) @ U.T
    y = np.tanh(u @ rng.standard_normal((d, 4)) / 2) @ rng.standard_normal(4)
    return X, y


def final_loss(optimizer, X, y, epochs):
    net = nn.mlp([X.shape[1], 16, 1], "tanh", seed=0)
    h = nn.fit(net, X, y, loss="mse", optimizer=optimizer, epochs=epochs, batch_size=None,
               quiet=True)  # fmt: skip
    return h.problem.evaluate(X, y.reshape(-1, 1)), h


def test_hessian_free_beats_sgd_and_adam_at_equal_passes():
    X, y = ill_conditioned_regression()
    hf_loss, h = final_loss(krylov.HessianFree(max_cg=250), X, y, epochs=40)
    budget = h.passes[-1]  # gradients and loss evaluations 1, Gauss-Newton products 2
    records = h.step.records
    assert len(records) == 40 and max(r.cg_iterations for r in records) > 20
    assert budget == h.step.passes > sum(1 + 2 * r.cg_iterations for r in records)
    with np.errstate(all="ignore"):  # the largest step sizes diverge
        sgd = min(final_loss(nn.SGD(lr), X, y, budget)[0] for lr in (0.03, 0.1, 0.3))
        adam = min(final_loss(nn.Adam(lr), X, y, budget)[0] for lr in (3e-3, 1e-2, 3e-2, 1e-1))
    assert hf_loss < adam / 2 and hf_loss < sgd / 10, (hf_loss, sgd, adam)


def test_hessian_free_solves_linear_least_squares():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 6)) @ np.diag(np.logspace(0, -3, 6))
    y = X @ rng.standard_normal(6) + 0.01 * rng.standard_normal(100)
    net = nn.mlp([6, 1], seed=0)
    h = nn.fit(net, X, y, loss="mse", optimizer=krylov.HessianFree(damping=1e-3), epochs=20,
               batch_size=None, quiet=True)  # fmt: skip
    Xb = np.c_[X, np.ones(100)]
    w = np.linalg.lstsq(Xb, y, rcond=None)[0]
    best = np.mean((Xb @ w - y) ** 2)
    assert h.problem.evaluate(X, y.reshape(-1, 1)) == pytest.approx(best, rel=1e-6)


def test_hessian_free_with_hessian_curvature_and_curvature_batches():
    X, y = nn.two_spirals(100, turns=0.75)
    for opt in (
        krylov.HessianFree(curvature="hessian", damping=1.0),
        krylov.HessianFree(curvature_batch=50),
    ):
        net = nn.mlp([2, 16, 2], "tanh", seed=0)
        h = nn.fit(net, X, y, optimizer=opt, epochs=15, batch_size=None, quiet=True)
        assert h.loss[-1] < 0.5 * h.loss[0]
        assert all(r.step_length >= 0 for r in h.step.records)
        assert all(np.diff(h.loss) <= 1e-12)  # a step is taken only when the loss decreases


def test_operator_is_the_curvature_at_the_point_where_it_was_made(case):
    net, loss, feed = case["net"], case["loss"], case["feed"]
    op = krylov.hvp_operator(loss, net.params, feed)
    base = krylov.get_flat(net.params)
    krylov.set_flat(net.params, base + 0.3)
    try:
        v = np.random.default_rng(4).standard_normal(82)
        np.testing.assert_allclose(op @ v, case["H"] @ v, rtol=1e-10, atol=1e-12)
        moved = krylov.hvp_operator(loss, net.params, feed)
        assert np.linalg.norm(moved @ v - case["H"] @ v) > 1e-3
    finally:
        krylov.set_flat(net.params, base)


def test_staged_and_plain_calls_agree(case):
    from symgrad.krylov.operators import product_function

    net, loss, feed = case["net"], case["loss"], case["feed"]
    inputs = sorted(feed, key=lambda t: t.node)
    fn = product_function("hessian", loss, net.params, inputs)

    fixed = {x: feed[x] for x in inputs} | {p: p.value.copy() for p in net.params}
    v = np.random.default_rng(6).standard_normal(82)
    # the plain call reads the variables at their (unchanged) values and takes every input
    staged, plain = _staged(fn, fixed)(v), fn(*[fixed[x] for x in fn.inputs[:-1]], v)
    np.testing.assert_allclose(staged, plain, rtol=1e-12)
    np.testing.assert_allclose(staged, case["H"] @ v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "diagonal, k, which, want",
    [
        ([5.0, 5.0, 1.0, 1.0, 0.0], 2, "LA", [5.0, 5.0]),
        ([5.0, 5.0, 1.0, 1.0, 0.0], 3, "SA", [0.0, 1.0, 1.0]),
        ([1.0] * 6, 3, "LA", [1.0, 1.0, 1.0]),
    ],
)
def test_repeated_eigenvalues_come_with_their_multiplicity(diagonal, k, which, want):
    # one Krylov space holds one direction per eigenvalue: when it becomes invariant, Lanczos
    # goes on from a random vector orthogonal to it
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.standard_normal((len(diagonal),) * 2))
    A = Q @ np.diag(diagonal) @ Q.T
    np.testing.assert_allclose(krylov.top_eigenvalues(A, k, which=which), want, atol=1e-12)


def test_lanczos_refuses_a_zero_start_vector():
    with pytest.raises(ValueError, match="zero"):
        krylov.lanczos(np.eye(5), 3, v0=np.zeros(5))


def test_a_parameter_listed_twice_moves_along_both_directions():
    # f = sum(x^3): H = diag(6x); with wrt [x, x] every block is H, in both modes
    g = sg.Graph()
    x = g.input("x", (2,))
    f = (x**3).sum()
    for mode in ("fwd-rev", "rev-rev"):
        M = krylov.hvp_operator(f, [x, x], {x: np.ones(2)}, mode=mode).matmat(np.eye(4))
        np.testing.assert_allclose(M, np.kron(np.ones((2, 2)), 6 * np.eye(2)), rtol=1e-15)
    t = sg.jvp(f, [x, x], [np.array([1.0, 0.0]), np.array([0.0, 1.0])])
    assert sg.evaluate([t], {x: np.ones(2)})[0] == pytest.approx(6.0)


@pytest.mark.parametrize("n_probes", [1, 2])
def test_trace_with_too_few_probes_for_a_sketch_is_hutchinson(n_probes):
    A = np.diag(np.linspace(1, 10, 50))  # z^T A z = tr(A) for every sign vector z
    est = krylov.trace(A, n_probes)
    assert est.value == pytest.approx(275.0) and est.n_products == n_probes
    assert est.method == "hutchinson"
    rng = np.random.default_rng(0)
    B = rng.standard_normal((50, 50))
    B = B + B.T
    est = krylov.trace(B, 2)
    assert est.stderr > 0  # an estimate, not exact
    with pytest.raises(ValueError, match="n_probes"):
        krylov.trace(A, 0)


def test_an_operator_on_some_parameters_keeps_the_others_where_they_were():
    net = nn.mlp([3, 5, 2], seed=0)
    X = net.graph.input("Xk", ("batch", 3))
    y = net.graph.input("yk", ("batch",), "int64")
    loss = sg.cross_entropy(net(X), y).mean()
    feed = {X: np.random.default_rng(1).standard_normal((4, 3)), y: np.array([0, 1, 1, 0])}
    op = krylov.hvp_operator(loss, net.params[2:], feed)
    v = np.arange(op.shape[0], dtype=float)
    before = op.matvec(v)
    net.params[0].value[...] += 0.5  # a parameter outside wrt moves: the point does not
    np.testing.assert_array_equal(op.matvec(v), before)
    with pytest.raises(sg.GraphError, match="at least one parameter"):
        krylov.hvp_operator(loss, [], feed)


def test_top_eigenvalues_refuses_a_k_that_is_no_int():
    with pytest.raises(ValueError, match="k = 2.5"):
        krylov.top_eigenvalues(np.eye(4), 2.5)


def test_operator_argument_errors_name_the_call_site():
    g = sg.Graph()
    x = g.input("x", (3,))
    f = sg.sum(sg.tanh(x))
    cases = [
        (lambda: krylov.hvp_operator(f, x, {x: np.ones(3)}, mode="q"), "hvp mode"),
        (lambda: krylov.hvp_operator(sg.tanh(x), x, {x: np.ones(3)}), "non-scalar"),
        (lambda: krylov.hvp_operator(f, x, {}), "feed a value"),
        (lambda: krylov.hvp_operator(f, sg.tanh(x), {x: np.ones(3)}), "inputs or variables"),
    ]
    for call, words in cases:
        with pytest.raises(sg.SymgradError, match=rf"(?s){words}.*test_krylov"):
            call()


@pytest.mark.parametrize("n", [1, 3, 10])
def test_cg_that_converges_at_its_last_iteration_says_so(n):
    # exact CG needs n iterations, the default max_iter: the residual is met at the last one
    A = np.diag(np.arange(1.0, n + 1))
    r = krylov.conjugate_gradient(A, np.ones(n), tol=1e-10)
    assert r.iterations == n and r.reason == "residual" and r.converged
    np.testing.assert_allclose(r.x, 1 / np.arange(1.0, n + 1), rtol=1e-10)
    short = krylov.conjugate_gradient(A, np.ones(n), tol=1e-10, max_iter=n - 1)
    assert n == 1 or (short.reason == "max_iter" and not short.converged)


@pytest.mark.parametrize("n, m", [(1, 1), (2, 2), (2, 5), (4, 4), (4, 11)])
def test_hutch_plus_plus_with_as_many_probes_as_rows_is_exact(n, m):
    A = np.diag(np.arange(1.0, n + 1)) + 0.1
    for seed in range(3):
        t = krylov.trace(A, m, seed=seed)
        assert t.value == pytest.approx(np.trace(A), rel=1e-12)
        assert t.stderr == 0.0 and t.n_products == n <= m


def test_hutch_plus_plus_below_n_probes_is_an_estimate_with_an_error():
    B = np.random.default_rng(0).standard_normal((30, 30))
    A = B + B.T  # not diagonal: z^T A z varies with the sign vector z (of 2^30)
    for m in (1, 2, 3, 5):
        t = krylov.trace(A, m, seed=0)
        assert t.n_products == m and t.stderr > 0  # inf for a single probe


def test_hessian_free_damping_stays_put_at_a_minimum():
    # at the minimum the predicted decrease is within rounding and rho is noise; before, the
    # damping grew by 3/2 every step (0.1 -> 1e4 on this problem)
    g = sg.Graph()
    p = g.variable("p", np.array([0.1, 0.0]))
    f = -sg.square(p[0]) + sg.square(sg.square(p[0])) + sg.square(p[1])
    step = krylov.HessianFree(curvature="hessian", damping=0.1).make_step(
        nn.Problem(f, [p], [], None)
    )
    for _ in range(60):
        step()
    np.testing.assert_allclose(p.value, [np.sqrt(0.5), 0.0], atol=1e-8)
    late = step.records[30:]
    assert all(np.isnan(r.rho) for r in late)
    assert len({r.damping for r in late}) == 1 and late[0].damping <= 0.1 * (1 + 1e-12)
