CELLS = [
    (
        "md",
        r"""# 05 · Second-order methods: poor conditioning, saddle points, Hessian-free

Chapter 8 of the course notes explains gradient descent's troubles with the second-order
Taylor model of the cost around $\theta_0$, with gradient $g$ and Hessian $H$:
$$J(\theta_0 - \epsilon g) \approx
  J(\theta_0) - \epsilon\, g^\top g + \tfrac12 \epsilon^2\, g^\top H g .$$
If $g^\top H g$ is large the best step $\epsilon^* = g^\top g / g^\top H g$ is tiny, and a
step that is safe along the sharpest direction crawls along the flat ones: **poor
conditioning**. Where $H$ has eigenvalues of both signs, $\theta_0$ can be a **saddle
point**, which Newton's method is attracted to rather than repelled from.

Below: the Taylor picture on a real network, then gradient descent, Newton-CG (scipy's, on
our compiled Hessian-vector products) and Hessian-free optimization (`krylov.HessianFree`:
truncated Newton with Levenberg-Marquardt damping, Martens 2010) on an ill-conditioned
quadratic, a saddle, and an MLP, with loss against wall time.""",
    ),
    (
        "code",
        r"""%matplotlib inline
import time

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display
from scipy.optimize import minimize

import symgrad as sg
from symgrad import krylov, nn


def show(fig):
    display(fig)
    plt.close(fig)


def run_steps(step, problem, n, *batch):
    # loss, wall time (training only) and gradient-equivalent passes after each step
    record = {
        "time": [0.0],
        "loss": [problem.evaluate(*batch)],
        "passes": [0],
        "path": [krylov.get_flat(problem.params)],
    }
    elapsed = 0.0
    for _ in range(n):
        t0 = time.perf_counter()
        step(*batch)
        elapsed += time.perf_counter() - t0
        record["time"].append(elapsed)
        record["loss"].append(problem.evaluate(*batch))
        record["passes"].append(step.passes)
        record["path"].append(krylov.get_flat(problem.params))
    return record


def run_newton_cg(problem, n, *batch, budget=None):
    # scipy's Newton-CG with the function, gradient and Hessian-vector products from symgrad;
    # stops after n iterations or once ``budget`` gradient-equivalent passes are spent
    params = problem.params
    value_and_grad = sg.compile([problem.loss, *sg.grad(problem.loss, params)], problem.inputs)
    feed = dict(zip(problem.inputs, batch))
    count = {"passes": 0}

    def fun(theta):
        krylov.set_flat(params, theta)
        f, *g = value_and_grad(*batch)
        count["passes"] += 1
        return float(f), krylov.flatten(g)

    at = {}  # the Hessian operator at the last point asked for (CG asks many times there)

    def hessp(theta, p):
        key = theta.tobytes()
        if key not in at:
            krylov.set_flat(params, theta)
            at.clear()
            at[key] = krylov.hvp_operator(problem.loss, params, feed)
        count["passes"] += 2
        return at[key] @ p

    theta0 = krylov.get_flat(params)
    record = {"time": [0.0], "loss": [problem.evaluate(*batch)], "passes": [0], "path": [theta0]}
    clock = {"start": time.perf_counter(), "paused": 0.0}

    def callback(theta):
        t0 = time.perf_counter()
        krylov.set_flat(params, theta)
        record["time"].append(t0 - clock["start"] - clock["paused"])
        record["loss"].append(problem.evaluate(*batch))
        record["passes"].append(count["passes"])
        record["path"].append(theta.copy())
        clock["paused"] += time.perf_counter() - t0
        if budget is not None and count["passes"] >= budget:
            raise StopIteration

    minimize(
        fun,
        theta0,
        jac=True,
        hessp=hessp,
        method="Newton-CG",
        callback=callback,
        options={"maxiter": n, "xtol": 1e-14},
    )
    krylov.set_flat(params, record["path"][-1])
    return record""",
    ),
    (
        "md",
        r"""## The Taylor picture on a network

An MLP on inputs whose scales span three orders of magnitude (so its Hessian is badly
conditioned). Along the negative gradient the loss follows the quadratic model for small
steps; the model's best step $\epsilon^*$ is where the first-order decrease
$\epsilon g^\top g$ is eaten by the curvature term $\tfrac12\epsilon^2 g^\top H g$.""",
    ),
    (
        "code",
        r"""def ill_conditioned_regression(n=256, d=8, decades=3, seed=0):
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((d, d)))
    u = rng.standard_normal((n, d))
    X = u @ np.diag(np.logspace(0, -decades, d)) @ U.T  # input scales 1 ... 10^-decades
    y = np.tanh(u @ rng.standard_normal((d, 4)) / 2) @ rng.standard_normal(4)
    return X, y


Xr, yr = ill_conditioned_regression()
net = nn.mlp([8, 16, 1], "tanh", seed=0)
problem = nn.supervised_problem(net, Xr, "mse")
batch = (Xr, yr.reshape(-1, 1))
value_and_grad = sg.compile([problem.loss, *sg.grad(problem.loss, problem.params)], problem.inputs)
J0, *g = value_and_grad(*batch)
g = krylov.flatten(g)
H_op = krylov.hvp_operator(problem.loss, problem.params, dict(zip(problem.inputs, batch)))
curvature_g = g @ (H_op @ g)
theta0 = krylov.get_flat(problem.params)
eps_star = (g @ g) / curvature_g
eps = np.linspace(0, 3 * eps_star, 60)
actual = []
for e in eps:
    krylov.set_flat(problem.params, theta0 - e * g)
    actual.append(problem.evaluate(*batch))
krylov.set_flat(problem.params, theta0)
lam = krylov.top_eigenvalues(H_op, 1)[0]
print(
    f"g^T g = {g @ g:.4g}, g^T H g = {curvature_g:.4g}, best step ε* = {eps_star:.4g}; "
    f"largest eigenvalue {lam:.4g} (gradient descent diverges beyond ε = 2/λ = {2 / lam:.4g})"
)

fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(eps, actual, label="J(θ0 - ε g)")
taylor = J0 - eps * (g @ g) + 0.5 * eps**2 * curvature_g
ax.plot(eps, taylor, "--", label="second-order Taylor model")
ax.plot(eps, J0 - eps * (g @ g), ":", label="first-order model")
ax.axvline(eps_star, color="gray", lw=0.8)
ax.set_ylim(min(actual) - 0.1, J0 + 0.2)
ax.set_xlabel("ε")
ax.legend()
show(fig)""",
    ),
    (
        "md",
        r"""## An ill-conditioned quadratic

$J(w) = \tfrac12 (w - w^*)^\top A (w - w^*)$ with condition number 25 in two dimensions, so
the paths can be drawn. Gradient descent at the largest stable step zig-zags across the
valley; Newton-CG solves $H p = -g$ exactly in two CG iterations and lands on the minimum;
Hessian-free (here with the Hessian itself as curvature, damped) gets there in a few
steps while its damping adapts.""",
    ),
    (
        "code",
        r"""R = np.array([[np.cos(0.5), -np.sin(0.5)], [np.sin(0.5), np.cos(0.5)]])
A = R @ np.diag([1.0, 25.0]) @ R.T
w_star = np.array([1.0, -0.5])
start = np.array([-2.0, 1.2])


def quadratic_problem():
    q = sg.Graph()
    w = q.variable("w", start)
    d = w - q.constant(w_star)
    return nn.Problem(0.5 * sg.sum(d * (q.constant(A) @ d)), [w])


runs = {}
p = quadratic_problem()
runs["gradient descent, ε = 1.6/λmax"] = run_steps(nn.SGD(lr=1.6 / 25).make_step(p), p, 40)
p = quadratic_problem()
runs["Newton-CG (scipy)"] = run_newton_cg(p, 30)
p = quadratic_problem()
hessian_free = krylov.HessianFree(curvature="hessian", damping=1.0)
runs["Hessian-free"] = run_steps(hessian_free.make_step(p), p, 12)

grid = np.linspace(-2.5, 2.5, 200)
G1, G2 = np.meshgrid(grid, grid)
D = np.stack([G1 - w_star[0], G2 - w_star[1]], -1)
Z = 0.5 * np.einsum("...i,ij,...j->...", D, A, D)
fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
a.contour(G1, G2, Z, levels=np.logspace(-2, 2, 14), colors="lightgray")
for name, r in runs.items():
    path = np.array(r["path"])
    a.plot(path[:, 0], path[:, 1], "o-", ms=3, label=name)
    b.semilogy(r["passes"], np.maximum(r["loss"], 1e-16), "o-", ms=3, label=name)
a.plot(*w_star, "k*", ms=12)
a.set_title("paths on the contours of J")
a.set(xlim=(-2.5, 2.5), ylim=(-2.5, 2.5), aspect="equal")
a.legend(fontsize=8)
b.set_xlabel("gradient-equivalent passes (an HVP counts 2)")
b.set_ylabel("J")
b.set_title("loss")
show(fig)""",
    ),
    (
        "md",
        r"""## A saddle point

$J(x, y) = x^2 - y^2 + y^4/4$ has a saddle at the origin and minima at $(0, \pm\sqrt2)$.
Started almost on the ridge, gradient descent first slides toward the saddle and then
escapes only as fast as the tiny $y$-component grows. Plain Newton, $\theta \leftarrow
\theta - H^{-1} g$, jumps straight to the saddle: it seeks any point with zero gradient.
Hessian-free with damping $\lambda$ solves $(H + \lambda I) p = -g$; CG stops at negative
curvature, the damping grows until $H + \lambda I$ is positive definite, and the step then
points downhill along $y$ too.""",
    ),
    (
        "code",
        r"""def saddle_problem():
    s = sg.Graph()
    w = s.variable("w", np.array([1.5, 1e-3]))
    x, y = w[0], w[1]
    return nn.Problem(x**2 - y**2 + y**4 / 4, [w])


runs = {}
p = saddle_problem()
runs["gradient descent, ε = 0.1"] = run_steps(nn.SGD(lr=0.1).make_step(p), p, 60)
p = saddle_problem()
runs["Hessian-free (damped)"] = run_steps(
    krylov.HessianFree(curvature="hessian", damping=1.0).make_step(p), p, 20
)
p = saddle_problem()
runs["Newton-CG (scipy)"] = run_newton_cg(p, 30)

# plain Newton with the explicit 2 x 2 Hessian from two products
p = saddle_problem()
grad2 = sg.compile(sg.grad(p.loss, p.params[0]), [])
path = [krylov.get_flat(p.params)]
for _ in range(6):
    H2 = krylov.hvp_operator(p.loss, p.params, {}) @ np.eye(2)  # the Hessian here
    krylov.set_flat(p.params, path[-1] - np.linalg.solve(H2, grad2()))
    path.append(krylov.get_flat(p.params))
runs["plain Newton"] = {"path": path, "loss": [float(sg.evaluate(p.loss))], "passes": [0]}

grid_x, grid_y = np.linspace(-2, 2, 200), np.linspace(-2, 2, 200)
GX, GY = np.meshgrid(grid_x, grid_y)
ZS = GX**2 - GY**2 + GY**4 / 4
fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
a.contour(GX, GY, ZS, levels=np.linspace(-1, 4, 21), colors="lightgray")
for name, r in runs.items():
    pts = np.array(r["path"])
    a.plot(pts[:, 0], pts[:, 1], "o-", ms=3, label=name)
    if len(r["loss"]) > 1:
        b.plot(r["passes"], r["loss"], "o-", ms=3, label=name)
a.plot(0, 0, "kx", ms=10)
a.set_title("saddle at the origin, minima at y = ±√2")
a.legend(fontsize=8)
b.axhline(-1, color="k", ls=":", label="minimum value")
b.set_xlabel("gradient-equivalent passes")
b.set_ylabel("J")
b.legend(fontsize=8)
show(fig)
print("plain Newton ends at", np.round(path[-1], 6), "with gradient", grad2())""",
    ),
    (
        "md",
        r"""## The MLP: loss against wall time

Back to the ill-conditioned regression network. Full-batch gradient descent and Adam (both
at the best of a few step sizes), scipy's Newton-CG on the compiled Hessian-vector product,
and Hessian-free with Gauss-Newton products (positive semidefinite, so CG is well defined
everywhere), all from the same initial weights. Every method is charged for its passes: a
gradient or a loss evaluation 1, a curvature-vector product 2.""",
    ),
    (
        "code",
        r"""def fresh():
    model = nn.mlp([8, 16, 1], "tanh", seed=0)
    return nn.supervised_problem(model, Xr, "mse")


runs = {}
p = fresh()
hf_step = krylov.HessianFree(max_cg=250).make_step(p)
hf = run_steps(hf_step, p, 40, *batch)
budget = hf["passes"][-1]  # the first-order methods get as many passes as Hessian-free used
with np.errstate(all="ignore"):  # the largest step sizes diverge
    for name, make, rates in [
        ("gradient descent", nn.SGD, (0.03, 0.1, 0.3)),
        ("Adam", nn.Adam, (0.01, 0.03, 0.1)),
    ]:
        tried = []
        for lr in rates:
            p = fresh()
            tried.append((lr, run_steps(make(lr=lr).make_step(p), p, budget, *batch)))
        lr, best = min(tried, key=lambda t: np.nan_to_num(t[1]["loss"][-1], nan=np.inf))
        runs[f"{name} (step {lr})"] = best
p = fresh()
runs["Newton-CG (scipy)"] = run_newton_cg(p, 400, *batch, budget=budget)
runs["Hessian-free (Gauss-Newton)"] = hf

fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.5))
for name, r in runs.items():
    a.semilogy(r["time"], r["loss"], label=name)
    b.semilogy(r["passes"], r["loss"], label=name)
a.set_xlabel("seconds")
a.set_ylabel("training loss (MSE)")
a.set_title("loss against wall time")
a.legend()
b.set_xlabel("gradient-equivalent passes")
b.set_title("loss against work")
b.set_xlim(0, max(r["passes"][-1] for r in runs.values()))
show(fig)
print(f"{'method':34s} {'final loss':>10s} {'passes':>7s} {'seconds':>8s}")
for name, r in runs.items():
    print(f"{name:34s} {r['loss'][-1]:10.4g} {r['passes'][-1]:7d} {r['time'][-1]:8.2f}")""",
    ),
    (
        "md",
        r"""What Hessian-free did at each step: the CG iterations it ran, which of CG's stored
iterates backtracking picked, the reduction ratio $\rho$ (actual decrease over the
decrease the quadratic model promised), and the damping $\lambda$ that $\rho$ steers.""",
    ),
    (
        "code",
        r"""rec = hf_step.records
fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
axes[0].plot([r.cg_iterations for r in rec], "o-", ms=3, label="CG iterations")
axes[0].plot([r.chosen_iteration for r in rec], "s", ms=3, label="iterate chosen")
axes[0].legend()
axes[1].plot(np.clip([r.rho for r in rec], -1, 2), "o-", ms=3)
axes[1].axhline(0.25, color="gray", ls=":")
axes[1].axhline(0.75, color="gray", ls=":")
axes[1].set_title("reduction ratio ρ (clipped to [-1, 2])")
axes[2].semilogy([r.damping for r in rec], "o-", ms=3)
axes[2].set_title("damping λ")
for ax in axes:
    ax.set_xlabel("Hessian-free step")
show(fig)""",
    ),
]
