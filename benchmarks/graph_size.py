"""Graph sizes, FLOPs and compile times, with and without the graph rewrites.

    python benchmarks/graph_size.py            # all tables
    python benchmarks/graph_size.py --quick    # fewer repeats

Tables:
1. The k-th derivative of tanh(x) (x a scalar), k = 1..8: nodes before and after rewrites
   and the compile time (differentiate + rewrite + generate and load the code), with SymPy's
   caches cleared before each compile. PyTensor, for reference, gives 3, 4, 6, 6, 17, 57,
   197, 646 nodes after its rewrites and takes about 9 s at k = 8. Target: at most 4 nodes
   for every k, under 0.5 s at k = 8.
2. The (batch 128, 784-256-256-10) ReLU MLP with softmax cross-entropy: nodes of the
   forward, forward + gradient and forward + gradient + HVP graphs before and after
   rewrites, and their FLOPs (``symgrad.rewrite.cost``) over the forward's. Target for the
   gradient alone (the cheap-gradient principle): at most 3 times the forward.
3. Rewrite time per node of the HVP graphs of 10-, 50- and 200-layer tanh MLPs (width 32),
   garbage collector off: it should not grow with the graph (the rewriter is linear).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import numpy as np
from _common import markdown_table

import symgrad as sg
from symgrad.autodiff.sweep import ancestors
from symgrad.ops.elementwise import (
    _named_expression,
    _result_dtype,
    derivative,
    kernel_template,
    source_template,
)
from symgrad.rewrite import optimize
from symgrad.rewrite.cost import graph_flops
from symgrad.rewrite.fuse import compose

PYTENSOR_NODES = {1: 3, 2: 4, 3: 6, 4: 6, 5: 17, 6: 57, 7: 197, 8: 646}


def clear_caches() -> None:
    """Forget every translation and composition SymPy did, so a compile starts cold."""
    for cached in (
        derivative,
        _named_expression,
        source_template,
        kernel_template,
        _result_dtype,
        compose,
    ):
        cached.cache_clear()


def tanh_derivative(k: int):
    """(graph, x, d^k tanh(x) / dx^k, its compiled Function): all timed by the caller."""
    g = sg.Graph()
    x = g.input("x", ())
    y = sg.tanh(x)
    for _ in range(k):
        y = sg.grad(y, x)
    fn = sg.compile(y, [x])
    fn(np.array(0.3))  # generate and load the code
    return g, x, y, fn


def tanh_table(repeats: int) -> list[list[str]]:
    rows = []
    for k in range(1, 9):
        times = []
        for _ in range(repeats):
            clear_caches()
            t0 = time.perf_counter()
            g, x, y, fn = tanh_derivative(k)
            times.append(time.perf_counter() - t0)
        value = fn(np.array(0.3))
        assert np.allclose(value, sg.evaluate(y, {x: np.array(0.3)}), rtol=1e-10, atol=1e-12)
        before = len(ancestors(g, [y.node]))
        after = len(fn._prog.graph)
        rows.append(
            [
                str(k),
                str(before),
                str(after),
                str(PYTENSOR_NODES[k]),
                f"{statistics.median(times) * 1e3:.1f}",
            ]
        )
    return rows


def mlp(sizes, batch, activation=sg.relu):
    """An MLP loss whose parameters are graph inputs: (graph, data inputs, params, loss)."""
    g = sg.Graph()
    X = g.input("X", (batch, sizes[0]))
    y = g.input("y", (batch,), "int64")
    params, h = [], X
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = g.input(f"W{i}", (m, n))
        b = g.input(f"b{i}", (n,))
        params += [W, b]
        h = h @ W + b
        if i < len(sizes) - 2:
            h = activation(h)
    return g, [X, y], params, sg.cross_entropy(h, y).mean()


def mlp_table() -> tuple[list[list[str]], float]:
    g, data, params, loss = mlp((784, 256, 256, 10), 128)
    grads = sg.grad(loss, params)
    vs = [g.input(f"v{i}", p.shape) for i, p in enumerate(params)]
    hv = sg.hvp(loss, params, vs)
    graphs = [
        ("forward", [loss], data + params),
        ("forward + gradient", [loss, *grads], data + params),
        ("forward + gradient + HVP", [loss, *grads, *hv], data + params + vs),
    ]
    rows, flops = [], []
    for name, outs, ins in graphs:
        plain = sg.compile(outs, ins, rewrites=False)
        fn = sg.compile(outs, ins)
        flops.append(graph_flops(fn._prog.graph))
        rows.append(
            [
                name,
                str(len(plain._prog.graph)),
                str(len(fn._prog.graph)),
                f"{graph_flops(plain._prog.graph) / 1e6:,.1f}",
                f"{flops[-1] / 1e6:,.1f}",
                f"{flops[-1] / flops[0]:.2f}",
            ]
        )
    return rows, (flops[1] - flops[0]) / flops[0]


def rewrite_time_table(repeats: int) -> list[list[str]]:
    rows = []
    for layers in (10, 50, 200):
        g, data, params, loss = mlp((32,) * layers + (10,), 16, activation=sg.tanh)
        vs = [g.input(f"v{i}", p.shape) for i, p in enumerate(params)]
        hv = sg.hvp(loss, params, vs)
        roots = [h.node for h in hv] + [x.node for x in data + params + vs]
        nodes = len(ancestors(g, roots))
        times = []
        for _ in range(repeats):
            gc.disable()  # the collector's pauses grow with the heap, not with this graph
            try:
                t0 = time.perf_counter()
                out = optimize(g, roots)
                times.append(time.perf_counter() - t0)
            finally:
                gc.enable()
        t = statistics.median(times)
        rows.append(
            [
                str(layers),
                str(nodes),
                str(len(out.graph)),
                f"{t * 1e3:.1f}",
                f"{t / nodes * 1e6:.1f}",
            ]
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7

    print("k-th derivative of tanh(x): nodes and compile time (SymPy caches cleared)\n")
    headers = ["order k", "nodes before", "nodes after", "PyTensor after", "compile ms"]
    print(markdown_table(headers, tanh_table(repeats), "rrrrr"))

    rows, gradient_ratio = mlp_table()
    print("\n(batch 128, 784-256-256-10) ReLU MLP, softmax cross-entropy\n")
    headers = ["graph", "nodes before", "nodes after", "MFLOP before", "MFLOP after"]
    print(markdown_table(headers + ["FLOP / forward"], rows, "lrrrrr"))
    print(f"\ngradient alone / forward (FLOPs, after rewrites): {gradient_ratio:.2f}")

    print("\nRewrite time of tanh MLP HVP graphs (width 32, batch 16)\n")
    headers = ["layers", "nodes before", "nodes after", "rewrite ms", "µs / node"]
    print(markdown_table(headers, rewrite_time_table(repeats), "rrrrr"))


if __name__ == "__main__":
    main()
