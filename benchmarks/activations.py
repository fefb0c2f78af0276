"""The MLP training step of ``mlp_step.py`` with other hidden activations (sigmoid, tanh,
softplus; ReLU for reference): symgrad against the same step written by hand in NumPy.

The NumPy steps use the usual idioms: sigmoid ``1 / (1 + exp(-z))`` with derivative
``h (1 - h)``, ``np.tanh`` with ``1 - h**2``, softplus ``np.logaddexp(0, z)`` with derivative
``1 / (1 + exp(-z))``. symgrad computes sigmoid and softplus in forms that keep full precision
in both tails (two exps, no overflow) and sigmoid' as ``s(x) s(-x)``. Before timing, one step
of each from identical parameters is checked to give the same loss and updates.

    python benchmarks/activations.py                 # batch 64 and 128 configs, both dtypes
    python benchmarks/activations.py --configs mnist --dtypes float32 --activations sigmoid
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from _common import blas_threads, compare, markdown_table, symgrad_origin
from mlp_step import LR, Config, check_same_step, initial_state, make_symgrad_step


# activation name -> (NumPy forward h(z), NumPy derivative dh/dz from (h, z))
def _sigmoid(z):
    with np.errstate(over="ignore"):  # exp(-z) overflows to inf for z < -88 (float32): h = 0
        return 1 / (1 + np.exp(-z))


NUMPY = {
    "relu": (lambda z: np.maximum(z, 0), lambda h, z: z > 0),
    "sigmoid": (_sigmoid, lambda h, z: h * (1 - h)),
    "tanh": (np.tanh, lambda h, z: 1 - h * h),
    "softplus": (lambda z: np.logaddexp(0, z), lambda h, z: _sigmoid(z)),
}


def make_numpy_step(params: list[np.ndarray], activation: str):
    forward, slope = NUMPY[activation]
    Ws, bs = params[0::2], params[1::2]

    def step(X, labels):
        batch = X.shape[0]
        rows = np.arange(batch)
        layers = []  # (input, pre-activation, activation) of each hidden layer
        h = X
        for i in range(len(Ws)):
            z = h @ Ws[i]
            z += bs[i]
            if i < len(Ws) - 1:
                layers.append((h, z, forward(z)))
                h = layers[-1][2]
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = np.log(s).mean() - z[rows, labels].mean()
        dz = e / s
        dz[rows, labels] -= 1
        dz *= 1.0 / batch
        for i in range(len(Ws) - 1, -1, -1):
            h_in = layers[i][0] if i < len(layers) else h
            gW, gb = h_in.T @ dz, dz.sum(axis=0)
            if i > 0:
                _, z_prev, h_prev = layers[i - 1]
                dz = dz @ Ws[i].T
                dz *= slope(h_prev, z_prev)
            Ws[i] -= LR * gW
            bs[i] -= LR * gb
        return loss

    return step


def run(cfg: Config, dtype: str, activation: str, repeats: int) -> list[str]:
    start, X, labels = initial_state(cfg, dtype)
    params_np = [p.copy() for p in start]
    step_np = make_numpy_step(params_np, activation)
    fn, variables, _ = make_symgrad_step(
        [p.copy() for p in start], cfg, dtype, activation=activation
    )
    loss_np, loss = step_np(X, labels), fn(X, labels)
    got = [v.value for v in variables]
    check_same_step(loss_np, loss, params_np, got, start, dtype, f"{activation} {cfg}")
    times = compare(
        {"numpy": lambda: step_np(X, labels), "symgrad": lambda: fn(X, labels)}, repeats=repeats
    )
    t_np, t_sg = times["numpy"], times["symgrad"]
    return [str(cfg), dtype, activation, f"{t_np * 1e6:,.1f}", f"{t_sg * 1e6:,.1f}"] + [
        f"{t_sg / t_np:.2f}"
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", type=Config.parse, default=None)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--activations", nargs="+", choices=sorted(NUMPY), default=list(NUMPY))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (0: default)")
    args = parser.parse_args(argv)
    configs = args.configs or [Config.parse("small"), Config.parse("mnist")]
    rows = []
    with blas_threads(args.threads) as threads:
        for cfg in configs:
            for dtype in args.dtypes:
                for activation in args.activations:
                    rows.append(run(cfg, dtype, activation, args.repeats))
                    print(f"  done {activation} {cfg} {dtype}", file=sys.stderr)
    print("# MLP train step by hidden activation: symgrad vs hand-written NumPy\n")
    headers = ["config (batch/layers)", "dtype", "activation", "NumPy µs/step"]
    headers += ["symgrad µs/step", "symgrad/NumPy"]
    print(markdown_table(headers, rows, "lllrrr"))
    print(f"\n- Softmax cross-entropy (mean), SGD lr={LR}; median over interleaved repeats.")
    print(f"- BLAS threads: {threads}.\n- {symgrad_origin()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
