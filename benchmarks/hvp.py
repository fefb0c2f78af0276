"""Hessian-vector products: time of one HVP over one gradient, full Hessians, node counts.

    python benchmarks/hvp.py            # all tables
    python benchmarks/hvp.py --quick    # fewer repeats

Tables:
1. HVP / gradient time for MLPs (ReLU, softmax cross-entropy), float32 and float64, both HVP
   modes (forward-over-reverse and reverse-over-reverse). Lower is better; target <= 1.5.
2. 100 HVPs at one point, (batch 128, 784-256-256-10), float32 and float64: the compiled HVP
   function called 100 times with all its inputs, against
   ``fn.specialize({X: ..., y: ..., W0: ..., ...})`` (staged evaluation: everything that does
   not depend on v is computed once) followed by 100 calls with v only; the staged total
   includes the specialize() call. Target: >= 1.5x.
3. The full Hessian of the (batch 4, 2-16-2) network over all 82 parameters in one
   vectorized graph, against a loop of 82 compiled HVPs. Target: <= 150 µs.
4. Node counts: gradient graph / forward graph, HVP graph / forward graph, and the Hessian
   graph of a function of x for n = 10, 100, 1000 (it must not grow with n).
"""

from __future__ import annotations

import argparse
import statistics
import traceback

import numpy as np
from _common import blas_threads, compare, markdown_table, symgrad_origin, time_loop

import symgrad as sg
from symgrad.autodiff.sweep import ancestors


def mlp(sizes, batch, dtype, activation=sg.relu, seed=0):
    """Loss graph of an MLP whose parameters are graph inputs; returns feeds for them too."""
    rng = np.random.default_rng(seed)
    g = sg.Graph()
    X = g.input("X", (batch, sizes[0]), dtype)
    y = g.input("y", (batch,), "int64")
    params, values, h = [], [], X
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        W, b = g.input(f"W{i}", (m, n), dtype), g.input(f"b{i}", (n,), dtype)
        params += [W, b]
        values += [rng.normal(0, np.sqrt(2 / m), (m, n)).astype(dtype), np.zeros(n, dtype)]
        h = h @ W + b
        if i < len(sizes) - 2:
            h = activation(h)
    loss = sg.cross_entropy(h, y).mean()
    data = [rng.standard_normal((batch, sizes[0])).astype(dtype), rng.integers(0, sizes[-1], batch)]
    return g, X, y, params, loss, data, values


def hvp_over_grad(sizes, batch, dtype, repeats):
    g, X, y, params, loss, data, values = mlp(sizes, batch, dtype)
    vs = [g.input(f"v{i}", p.shape, dtype) for i, p in enumerate(params)]
    rng = np.random.default_rng(1)
    vvals = [rng.standard_normal(p.shape).astype(dtype) for p in params]
    grad_fn = sg.compile(sg.grad(loss, params), [X, y, *params])
    fns = {"grad": lambda: grad_fn(*data, *values)}
    for mode in ("fwd-rev", "rev-rev"):
        f = sg.compile(sg.hvp(loss, params, vs, mode=mode), [X, y, *params, *vs])
        fns[mode] = lambda f=f: f(*data, *values, *vvals)
    times = compare(fns, repeats=repeats)
    return times


def hvps_at_one_point(sizes, batch, dtype, repeats, calls=100):
    """Seconds for ``calls`` HVPs at one point: plain calls, and specialize() + calls of v only."""
    g, X, y, params, loss, data, values = mlp(sizes, batch, dtype)
    vs = [g.input(f"v{i}", p.shape, dtype) for i, p in enumerate(params)]
    rng = np.random.default_rng(1)
    vvals = [rng.standard_normal(p.shape).astype(dtype) for p in params]
    fn = sg.compile(sg.hvp(loss, params, vs), [X, y, *params, *vs])
    fixed = dict(zip([X, y, *params], [*data, *values]))

    def plain():
        for _ in range(calls):
            out = fn(*data, *values, *vvals)
        return out

    def staged():
        fs = fn.specialize(fixed)
        for _ in range(calls):
            out = fs(*vvals)
        return out

    rtol = 1e-4 if dtype == "float32" else 1e-10
    fs = fn.specialize(fixed)
    for a, b in zip(fs(*vvals), fn(*data, *values, *vvals)):
        scale = float(np.abs(b).max()) or 1.0
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg="specialized HVP")
    fn(*data, *values, *vvals)  # warm: the kernels of both are built
    samples: dict[str, list[float]] = {"plain": [], "staged": [], "specialize": []}
    for _ in range(repeats):  # interleaved
        samples["plain"].append(time_loop(plain, 1))
        samples["staged"].append(time_loop(staged, 1))
        samples["specialize"].append(time_loop(lambda: fn.specialize(fixed), 1))
    return {k: statistics.median(v) for k, v in samples.items()}


def flat_mlp_loss(sizes=(2, 16, 2), batch=4, activation=sg.tanh, seed=0):
    """The MLP loss as a function of one flat parameter vector theta (so H is one matrix)."""
    rng = np.random.default_rng(seed)
    shapes = [s for m, n in zip(sizes[:-1], sizes[1:]) for s in ((m, n), (n,))]
    total = sum(int(np.prod(s)) for s in shapes)
    g = sg.Graph()
    theta = g.input("theta", (total,))
    X = g.constant(rng.standard_normal((batch, sizes[0])))
    y = g.constant(rng.integers(0, sizes[-1], batch))
    pieces, h = sg.nn.split_flat(theta, shapes), X
    for i in range(0, len(pieces), 2):
        h = h @ pieces[i] + pieces[i + 1]
        if i < len(pieces) - 2:
            h = activation(h)
    loss = sg.cross_entropy(h, y).mean()
    return g, theta, loss, rng.standard_normal(total) * 0.5


def full_hessian(repeats):
    g, theta, loss, point = flat_mlp_loss()
    n = theta.shape[0]
    H_fn = sg.compile(sg.hessian(loss, theta), [theta])
    v = g.input("v", (n,))
    hvp_fn = sg.compile(sg.hvp(loss, theta, v), [theta, v])
    basis = np.eye(n)

    def loop():
        return np.stack([hvp_fn(point, e) for e in basis])

    H = H_fn(point)
    err = float(np.abs(H - loop()).max())
    times = compare({"hessian": lambda: H_fn(point), "loop": loop}, repeats=repeats)
    return n, times, err, float(np.abs(H - H.T).max())


def node_counts():
    g, X, y, params, loss, _, _ = mlp((784, 256, 256, 10), 128, "float64")
    forward = len(ancestors(g, [loss.node]))
    grads = sg.grad(loss, params)
    with_grad = len(ancestors(g, [t.node for t in grads]))
    vs = [g.input(f"v{i}", p.shape) for i, p in enumerate(params)]
    hv = sg.hvp(loss, params, vs)
    with_hvp = len(ancestors(g, [t.node for t in hv]))
    hessian_nodes = []
    for n in (10, 100, 1000):
        h = sg.Graph()
        x = h.input("x", (n,))
        f = sg.sum(sg.tanh(x) ** 2) + sg.logsumexp(x)
        H = sg.hessian(f, x)
        hessian_nodes.append((n, len(ancestors(h, [H.node]))))
    return forward, with_grad, with_hvp, hessian_nodes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (0 = default)")
    args = parser.parse_args()
    with blas_threads(args.threads) as threads:
        print(f"BLAS threads: {threads}; {symgrad_origin()}\n")
        run(3 if args.quick else 7)


def run(repeats: int) -> None:
    rows = []
    for batch, sizes in ((64, (64, 128, 10)), (128, (784, 256, 256, 10))):
        for dtype in ("float32", "float64"):
            t = hvp_over_grad(sizes, batch, dtype, repeats)
            name = f"{batch}/{'-'.join(map(str, sizes))}"
            rows.append(
                [name, dtype, f"{t['grad'] * 1e6:,.1f}"]
                + [f"{t[m] * 1e6:,.1f}" for m in ("fwd-rev", "rev-rev")]
                + [f"{t[m] / t['grad']:.2f}" for m in ("fwd-rev", "rev-rev")]
            )
    print("HVP time over gradient time (median per call)\n")
    headers = ["config", "dtype", "grad µs", "HVP fwd-rev µs", "HVP rev-rev µs"]
    headers += ["fwd-rev / grad", "rev-rev / grad"]
    print(markdown_table(headers, rows, "llrrrrr"))

    rows = []
    for dtype in ("float32", "float64"):
        try:
            t = hvps_at_one_point((784, 256, 256, 10), 128, dtype, repeats)
        except Exception:  # report it and go on with the other tables
            traceback.print_exc()
            rows.append(["128/784-256-256-10", dtype] + ["failed"] * 5)
            continue
        speedup = t["plain"] / t["staged"]
        rows.append(
            [
                "128/784-256-256-10",
                dtype,
                f"{t['plain'] * 1e3:,.1f}",
                f"{t['specialize'] * 1e3:,.1f}",
                f"{t['staged'] * 1e3:,.1f}",
                f"{speedup:.2f}",
                "met" if speedup >= 1.5 else "missed",
            ]
        )
    print("\n100 HVPs (fwd-rev) at one point: plain calls vs specialize({X, y, params}) + calls\n")
    headers = ["config", "dtype", "plain: 100 calls ms", "specialize() ms"]
    headers += ["staged: specialize + 100 calls ms", "speedup", "target >= 1.5x"]
    print(markdown_table(headers, rows, "llrrrrl"))

    n, t, err, asym = full_hessian(repeats)
    print(
        f"\nFull Hessian of the (batch 4, 2-16-2) tanh network, all {n} parameters "
        "(target <= 150 µs)\n"
    )
    print(
        markdown_table(
            ["method", "µs", "ratio"],
            [
                ["one vectorized Hessian graph", f"{t['hessian'] * 1e6:,.1f}", "1.00"],
                [f"loop of {n} HVPs", f"{t['loop'] * 1e6:,.1f}", f"{t['loop'] / t['hessian']:.2f}"],
            ],
            "lrr",
        )
    )
    print(f"\nmax |H - HVP loop| = {err:.2e}, max |H - H^T| = {asym:.2e}")

    forward, with_grad, with_hvp, hessian_nodes = node_counts()
    print("\nNode counts, (batch 128, 784-256-256-10) MLP loss (no rewrites)\n")
    print(
        markdown_table(
            ["graph", "nodes", "/ forward"],
            [
                ["forward", str(forward), "1.00"],
                ["forward + gradient", str(with_grad), f"{with_grad / forward:.2f}"],
                ["forward + gradient + HVP", str(with_hvp), f"{with_hvp / forward:.2f}"],
            ],
            "lrr",
        )
    )
    print("\nHessian graph of sum(tanh(x)^2) + logsumexp(x), x of size n\n")
    print(markdown_table(["n", "nodes"], [[str(n), str(c)] for n, c in hessian_nodes], "rr"))


if __name__ == "__main__":
    main()
