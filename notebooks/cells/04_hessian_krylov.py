CELLS = [
    (
        "md",
        r"""# 04 · Looking inside the loss surface: Hessian-vector products and Krylov methods

The Hessian of a network with $n$ parameters has $n^2$ entries, too many to form for any real
network. The course notes' way out: **Krylov methods** (Lanczos, conjugate gradient, ...)
need only products $Hv$, and a product costs about two gradients:
$$Hv = \nabla_\theta\big[(\nabla_\theta J)^\top v\big].$$
`symgrad.krylov` compiles that product once and wraps it as a
`scipy.sparse.linalg.LinearOperator` over the flattened parameters, so both its own Lanczos
and scipy's `eigsh`, `cg`, `minres` work on it.

We use a network small enough to also build the explicit Hessian and check every number:
2 inputs, 16 tanh units, 2 softmax outputs (82 parameters), a batch of 4 points.""",
    ),
    (
        "code",
        r"""%matplotlib inline
import time

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse.linalg as spla
from IPython.display import display

import symgrad as sg
from symgrad import krylov, nn


def show(fig):
    display(fig)
    plt.close(fig)


rng = np.random.default_rng(0)
Xd, yd = rng.standard_normal((4, 2)), np.array([0, 1, 1, 0])
net = nn.mlp([2, 16, 2], "tanh", seed=0)
g = net.graph
X, y = g.input("X", (4, 2)), g.input("y", (4,), "int64")
logits = net(X)
loss = sg.cross_entropy(logits, y).mean()
feed = {X: Xd, y: yd}
params = net.params
theta0 = krylov.get_flat(params)
H_op = krylov.hvp_operator(loss, params, feed)
print(H_op, "over", [p.name for p in params])""",
    ),
    (
        "md",
        r"""## HVP two ways, against finite differences

Forward-over-reverse (`jvp` of the gradient, the default) and reverse-over-reverse (the
notes' formula) are different graphs computing the same product. A central difference of
gradients, $(\nabla J(\theta + \epsilon v) - \nabla J(\theta - \epsilon v)) / 2\epsilon$,
approaches it with error $O(\epsilon^2)$ until rounding, $O(\text{eps}/\epsilon)$, takes
over: the usual V-shaped curve.""",
    ),
    (
        "code",
        r"""H_rr = krylov.hvp_operator(loss, params, feed, mode="rev-rev")
grad_fn = sg.compile(sg.grad(loss, params), [X, y])


def gradient_at(theta):
    krylov.set_flat(params, theta)
    out = krylov.flatten(grad_fn(Xd, yd))
    krylov.set_flat(params, theta0)
    return out


v = rng.standard_normal(H_op.shape[0])
fr, rr = H_op @ v, H_rr @ v
print(f"|fwd-rev - rev-rev| / |Hv| = {np.linalg.norm(fr - rr) / np.linalg.norm(fr):.1e}")
eps_grid = np.logspace(-10, -1, 28)
errors = [
    np.linalg.norm((gradient_at(theta0 + e * v) - gradient_at(theta0 - e * v)) / (2 * e) - fr)
    / np.linalg.norm(fr)
    for e in eps_grid
]
fig, ax = plt.subplots(figsize=(6, 3.8))
ax.loglog(eps_grid, errors, "o-", ms=3, label="central difference vs fwd-rev HVP")
ax.axhline(
    np.linalg.norm(fr - rr) / np.linalg.norm(fr) + 1e-17,
    color="k",
    ls=":",
    label="fwd-rev vs rev-rev",
)
ax.set_xlabel("ε")
ax.set_ylabel("relative error")
ax.legend()
show(fig)
print(f"best finite difference: {min(errors):.1e} at ε = {eps_grid[np.argmin(errors)]:.0e}")""",
    ),
    (
        "md",
        r"""## The explicit Hessian

For a reference, the same network written as a function of one flat vector $\theta$ (slices
and reshapes of a single input), and `sg.hessian`: the whole basis is pushed through one
vectorized forward-over-reverse graph. It agrees with 82 products of the operator, and
shows the block structure of the layers.""",
    ),
    (
        "code",
        r"""h = sg.Graph()
theta = h.input("theta", (82,))
W0, b0, W1, b1 = sg.nn.split_flat(theta, [(2, 16), (16,), (16, 2), (2,)])
flat_loss = sg.cross_entropy(sg.tanh(h.constant(Xd) @ W0 + b0) @ W1 + b1, h.constant(yd)).mean()
H = sg.compile(sg.hessian(flat_loss, theta), [theta])(theta0)
print("max |H - H^T| =", np.abs(H - H.T).max())
print("max |H - (operator @ I)| =", np.abs(H - H_op @ np.eye(82)).max())
eigenvalues = np.linalg.eigh(H)[0]
print(
    f"eigenvalues from {eigenvalues[0]:.3f} to {eigenvalues[-1]:.3f}; "
    f"{np.sum(eigenvalues < -1e-10)} negative: θ0 is not a minimum"
)

fig, ax = plt.subplots(figsize=(5.5, 5))
lim = np.abs(H).max()
ax.imshow(H, cmap="RdBu_r", vmin=-lim, vmax=lim)
for edge in (32, 48, 80):
    ax.axhline(edge - 0.5, color="k", lw=0.6)
    ax.axvline(edge - 0.5, color="k", lw=0.6)
ax.set_xticks([16, 40, 64, 81])
ax.set_xticklabels(["W0", "b0", "W1", "b1"])
ax.set_yticks([16, 40, 64, 81])
ax.set_yticklabels(["W0", "b0", "W1", "b1"])
ax.set_title("Hessian of the 82-parameter network")
show(fig)""",
    ),
    (
        "md",
        r"""## Lanczos: the top eigenvalues from products alone

$k$ steps of Lanczos build an orthonormal basis of the Krylov space
$\mathrm{span}\{q, Hq, \dots, H^{k-1}q\}$ and the tridiagonal $T = Q^\top H Q$; the
eigenvalues of $T$ (Ritz values) converge to the extreme eigenvalues of $H$ first. The
basis is kept orthogonal by full reorthogonalization, so no spurious copies appear.""",
    ),
    (
        "code",
        r"""H_op.n_products = 0
top = krylov.top_eigenvalues(H_op, 5)
exact_top = eigenvalues[::-1][:5]
lanczos_products = H_op.n_products
eigsh_top = np.sort(spla.eigsh(H_op, k=5, which="LA", tol=1e-12)[0])[::-1]
print(f"{'eigh of explicit H':>20s} {'Lanczos':>14s} {'rel. error':>10s} {'scipy eigsh':>14s}")
for e, l, s in zip(exact_top, top, eigsh_top):
    print(f"{e:20.10f} {l:14.10f} {abs(l - e) / abs(e):10.1e} {s:14.10f}")
print(f"Lanczos used {lanczos_products} Hessian-vector products")

result = krylov.lanczos(H_op, 45, seed=1)
fig, ax = plt.subplots(figsize=(8, 4.5))
for k in range(1, result.steps + 1):
    T = result.tridiagonal()[:k, :k]
    ax.plot([k] * k, np.linalg.eigvalsh(T), "k.", ms=3)
for e in eigenvalues:
    ax.axhline(e, color="tab:blue", lw=0.4, alpha=0.6)
ax.set_xlabel("Lanczos step k")
ax.set_ylabel("Ritz values (eigenvalues of T_k)")
ax.set_title("extreme eigenvalues converge first (blue: eigenvalues of H)")
show(fig)""",
    ),
    (
        "md",
        r"""## Spectral density by stochastic Lanczos quadrature

For a random unit vector $v$, Lanczos from $v$ gives a Gauss quadrature rule (nodes = Ritz
values, weights = squared first components of $T$'s eigenvectors) for the spectral measure
$\sum_i (u_i^\top v)^2 \delta_{\lambda_i}$, whose average over $v$ is the eigenvalue density.
On the small network we can compare with the exact eigenvalues; on the digits network
(9610 parameters, trained for a few epochs) only products are affordable, and the
picture is the well-known one: a bulk near zero and a few outliers.""",
    ),
    (
        "code",
        r"""sd = krylov.spectral_density(H_op, n_probes=20, steps=30)
grid = np.linspace(eigenvalues[0] - 0.2, eigenvalues[-1] + 0.2, 600)

Xtr, Xte, ytr, yte = nn.digits()
digits_net = nn.mlp([64, 128, 10], "relu", seed=0)
fitted = nn.fit(digits_net, Xtr, ytr, optimizer=nn.Momentum(lr=0.05), epochs=10, quiet=True)
Xin, yin = fitted.problem.inputs
t0 = time.perf_counter()
D_op = krylov.hvp_operator(fitted.problem.loss, digits_net.params, {Xin: Xtr[:512], yin: ytr[:512]})
digits_sd = krylov.spectral_density(D_op, n_probes=4, steps=60)
digits_top = krylov.top_eigenvalues(D_op, 5)
print(
    f"digits Hessian ({D_op.shape[0]} parameters): top eigenvalues {np.round(digits_top, 4)}; "
    f"{D_op.n_products} products in {time.perf_counter() - t0:.2f} s"
)

fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4))
a.hist(eigenvalues, bins=40, density=True, color="lightgray", label="exact eigenvalues")
a.plot(grid, sd.density(grid, sigma=0.03), label="SLQ, 20 probes × 30 steps")
a.set_xlabel("eigenvalue")
a.set_title("82-parameter network")
a.legend()
dgrid = np.linspace(digits_sd.nodes.min() - 0.2, digits_sd.nodes.max() + 0.2, 800)
b.semilogy(dgrid, digits_sd.density(dgrid, sigma=0.02) + 1e-6)
b.set_xlabel("eigenvalue")
b.set_title("digits MLP (9610 parameters), SLQ")
show(fig)""",
    ),
    (
        "md",
        r"""## The trace from random probes

Hutchinson: $\mathbb{E}[z^\top H z] = \mathrm{tr}\,H$ for random sign vectors $z$, with
variance $2(\|H\|_F^2 - \sum_i H_{ii}^2)$ per probe, which is large when a few eigenvalues
dominate, as they do for networks. Hutch++ spends a third of the products on a sketch of
$H$'s range, takes the trace there exactly and applies Hutchinson only to the rest; its
error falls like $1/m$ instead of $1/\sqrt{m}$.""",
    ),
    (
        "code",
        r"""exact = np.trace(H)
probes = np.arange(3, 201, 3)
plain = [krylov.trace(H_op, m, method="hutchinson", seed=2) for m in probes]
plus = [krylov.trace(H_op, m, method="hutch++", seed=2) for m in probes]
est200 = krylov.trace(H_op, 200)
print(
    f"exact trace {exact:.6f}; with 200 probes: Hutch++ {est200.value:.6f} "
    f"({abs(est200.value / exact - 1):.1e} relative), Hutchinson {plain[-1].value:.4f} "
    f"± {plain[-1].stderr:.4f}"
)
fig, ax = plt.subplots(figsize=(7, 4))
mean = np.array([p.value for p in plain])
err = np.array([p.stderr for p in plain])
ax.plot(probes, mean, label="Hutchinson")
ax.fill_between(probes, mean - 2 * err, mean + 2 * err, alpha=0.2, label="± 2 standard errors")
ax.plot(probes, [p.value for p in plus], label="Hutch++")
ax.axhline(exact, color="k", ls="--", label="tr H (explicit)")
ax.set_xlabel("products")
ax.set_ylabel("trace estimate")
ax.legend()
show(fig)""",
    ),
    (
        "md",
        r"""## The loss along eigenvectors

Cutting the loss surface along the top eigenvector, the bottom one (negative curvature:
$\theta_0$ is not a minimum) and a random direction. Near $\theta_0$ each cut follows the
second-order Taylor model $J_0 + t\,g^\top u + \tfrac12 t^2 u^\top H u$ (dotted), whose
curvature along an eigenvector is its eigenvalue.""",
    ),
    (
        "code",
        r"""values, vectors = krylov.top_eigenvalues(H_op, 1, return_vectors=True)
low, low_vec = krylov.top_eigenvalues(H_op, 1, which="SA", return_vectors=True)
random_dir = rng.standard_normal(82)
random_dir /= np.linalg.norm(random_dir)
loss_fn = sg.compile([loss, *sg.grad(loss, params)], [X, y])
J0, *g0 = loss_fn(Xd, yd)
g0 = krylov.flatten(g0)


def loss_at(theta):
    krylov.set_flat(params, theta)
    value = float(loss_fn(Xd, yd)[0])
    krylov.set_flat(params, theta0)
    return value


ts = np.linspace(-3, 3, 61)
fig, ax = plt.subplots(figsize=(8, 4.5))
for name, u in [
    (f"top eigenvector (λ = {values[0]:.2f})", vectors[:, 0]),
    (f"bottom eigenvector (λ = {low[0]:.2f})", low_vec[:, 0]),
    ("random direction", random_dir),
]:
    (line,) = ax.plot(ts, [loss_at(theta0 + t * u) for t in ts], label=name)
    curvature = u @ (H_op @ u)
    ax.plot(ts, J0 + ts * (g0 @ u) + 0.5 * curvature * ts**2, ":", color=line.get_color())
ax.set_xlabel("t (step along the unit direction)")
ax.set_ylabel("J(θ0 + t u)")
ax.set_ylim(0, 2.5)
ax.legend()
show(fig)""",
    ),
]
