"""One MLP training step (forward, backward, SGD update): symgrad against hand-written NumPy.

Both steps train the same network from the same start: ReLU hidden layers, softmax
cross-entropy (mean over the batch) on integer labels, plain SGD with the parameters updated
in place. Before timing, one step of each is run from identical parameters and the losses and
the updated parameters are checked to agree, so both sides do the same work.

    python benchmarks/mlp_step.py                  # all configs, float32 and float64
    python benchmarks/mlp_step.py --quick          # fewer repeats, no batch-512 config
    python benchmarks/mlp_step.py --configs small mnist --dtypes float32
    python benchmarks/mlp_step.py --configs 32/100-50-5 --show-source

A config is ``BATCH/IN-HIDDEN-...-CLASSES`` or one of the names listed by ``--help``.
The ratio column is symgrad time / NumPy time per step (lower is better, 1.0 = parity).
``compile ms`` is graph build + ``sg.grad`` + ``sg.compile``; ``1st call ms`` is the first
call, which specializes the kernel to the argument shapes (and meets cold memory and caches).
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from dataclasses import dataclass

import numpy as np
from _common import blas_threads, compare, markdown_table

import symgrad as sg

LR = 0.1

NAMED_CONFIGS = {
    "tiny": "4/2-16-2",
    "small": "64/64-128-10",
    "mnist": "128/784-256-256-10",
    "large": "512/784-1024-1024-10",
}
QUICK_SKIP = {"large"}


@dataclass(frozen=True)
class Config:
    batch: int
    sizes: tuple[int, ...]  # input features, hidden widths..., classes

    @classmethod
    def parse(cls, text: str) -> Config:
        spec = NAMED_CONFIGS.get(text, text)
        try:
            batch, layers = spec.split("/")
            sizes = tuple(int(s) for s in layers.split("-"))
            if len(sizes) < 2 or int(batch) < 1 or min(sizes) < 1:
                raise ValueError
        except ValueError:
            names = ", ".join(NAMED_CONFIGS)
            raise argparse.ArgumentTypeError(
                f"bad config {text!r}: use BATCH/IN-HIDDEN-...-CLASSES (e.g. 64/64-128-10) "
                f"or a name ({names})"
            ) from None
        return cls(int(batch), sizes)

    def __str__(self) -> str:
        return f"{self.batch}/" + "-".join(map(str, self.sizes))

    @property
    def big(self) -> bool:
        return self.batch * max(self.sizes) ** 2 >= 2**28


def initial_state(cfg: Config, dtype: str, seed: int = 0):
    """He-initialized parameters [W0, b0, W1, b1, ...] and one batch (X, labels)."""
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(cfg.sizes[:-1], cfg.sizes[1:]):
        params.append((rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / fan_in)).astype(dtype))
        params.append((0.1 * rng.standard_normal(fan_out)).astype(dtype))
    X = rng.standard_normal((cfg.batch, cfg.sizes[0])).astype(dtype)
    labels = rng.integers(0, cfg.sizes[-1], size=cfg.batch).astype(np.int64)
    return params, X, labels


# ---- the hand-written NumPy step ---------------------------------------------------------


def make_numpy_step(params: list[np.ndarray], lr: float = LR):
    """A training step on ``params`` (updated in place), returning the mean loss."""
    Ws, bs = params[0::2], params[1::2]
    n_layers = len(Ws)

    def step(X: np.ndarray, labels: np.ndarray):
        batch = X.shape[0]
        rows = np.arange(batch)
        acts = [X]  # the input of each layer
        h = X
        for i in range(n_layers):
            z = h @ Ws[i]
            z += bs[i]
            if i < n_layers - 1:
                h = np.maximum(z, 0, out=z)
                acts.append(h)
        # stable softmax cross-entropy with integer labels
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = np.log(s).mean() - z[rows, labels].mean()
        # d loss / d logits = (softmax - onehot) / batch
        dz = e
        dz /= s
        dz[rows, labels] -= 1
        dz *= 1.0 / batch
        for i in range(n_layers - 1, -1, -1):
            gW = acts[i].T @ dz
            gb = dz.sum(axis=0)
            if i > 0:
                dz = dz @ Ws[i].T
                dz *= acts[i] > 0
            Ws[i] -= lr * gW
            bs[i] -= lr * gb
        return loss

    return step


# ---- the symgrad step --------------------------------------------------------------------


def make_symgrad_step(params: list[np.ndarray], cfg: Config, dtype: str, lr: float = LR):
    """(compiled step, variables, build+grad+compile seconds) for the same network."""
    t0 = time.perf_counter()
    g = sg.Graph()
    X = g.input("X", ("batch", cfg.sizes[0]), dtype=dtype)
    y = g.input("y", ("batch",), dtype="int64")
    variables = [g.variable(f"{'Wb'[i % 2]}{i // 2}", p) for i, p in enumerate(params)]
    h = X
    n_layers = len(variables) // 2
    for i in range(n_layers):
        h = h @ variables[2 * i] + variables[2 * i + 1]
        if i < n_layers - 1:
            h = sg.relu(h)
    loss = sg.cross_entropy(h, y).mean()
    grads = sg.grad(loss, variables)
    step = sg.compile(
        loss, inputs=[X, y], updates={p: p - lr * gp for p, gp in zip(variables, grads)}
    )
    return step, variables, time.perf_counter() - t0


# ---- checking and timing -----------------------------------------------------------------


def check_same_step(loss_np, loss_sg, params_np, variables, start, dtype: str, label: str):
    """Both steps started from ``start``: their losses and updated parameters must agree."""
    rtol = 1e-4 if dtype == "float32" else 1e-10
    if np.asarray(loss_sg).dtype != dtype:
        raise AssertionError(f"{label}: symgrad's loss is {np.asarray(loss_sg).dtype}, not {dtype}")
    np.testing.assert_allclose(
        np.asarray(loss_sg), np.asarray(loss_np), rtol=rtol, err_msg=f"{label}: loss differs"
    )
    for k, (p_np, v, p0) in enumerate(zip(params_np, variables, start)):
        p_sg = v.value
        what = f"{label}: parameter {v.name} (#{k}) after one step"
        if p_sg.shape != p_np.shape or p_sg.dtype != p_np.dtype:
            raise AssertionError(
                f"{what}: symgrad has {p_sg.shape} {p_sg.dtype}, expected {p_np.shape} {p_np.dtype}"
            )
        np.testing.assert_allclose(p_sg, p_np, rtol=rtol, atol=rtol, err_msg=what)
        # the update itself (small against the weights) must agree too
        d_np, d_sg = p_np - p0, p_sg - p0
        scale = float(np.max(np.abs(d_np))) or 1.0
        np.testing.assert_allclose(d_sg, d_np, rtol=0, atol=10 * rtol * scale, err_msg=what)
        if not np.any(d_np):
            raise AssertionError(f"{what}: the update is zero, the check would be vacuous")


def run_config(cfg: Config, dtype: str, quick: bool, show_source: bool) -> list[str]:
    label = f"{cfg} {dtype}"
    start, X, labels = initial_state(cfg, dtype)
    params_np = [p.copy() for p in start]
    np_step = make_numpy_step(params_np)
    sg_step, variables, build_s = make_symgrad_step(start, cfg, dtype)

    t0 = time.perf_counter()
    loss_sg = sg_step(X, labels)
    first_call_s = time.perf_counter() - t0
    loss_np = np_step(X, labels)
    check_same_step(loss_np, loss_sg, params_np, variables, start, dtype, label)
    if show_source:
        print(f"## generated source, {label}\n\n```python\n{sg_step.source}```\n")

    # time from the same start, on one fixed batch
    for p, v, p0 in zip(params_np, variables, start):
        p[...] = p0
        v.value[...] = p0
    repeats = 3 if quick else (5 if cfg.big else 9)
    target = 0.1 if quick else (0.3 if cfg.big else 0.15)
    times = compare(
        {"numpy": lambda: np_step(X, labels), "symgrad": lambda: sg_step(X, labels)},
        repeats=repeats,
        target_s=target,
        warmup_s=0.05 if quick else 0.1,
    )
    for p, v in zip(params_np, variables):
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(v.value))):
            print(f"warning: {label}: parameters became non-finite while timing", file=sys.stderr)
    t_np, t_sg = times["numpy"], times["symgrad"]
    return [
        str(cfg),
        dtype,
        f"{t_np * 1e6:,.1f}",
        f"{t_sg * 1e6:,.1f}",
        f"{t_sg / t_np:.2f}",
        f"{build_s * 1e3:,.1f}",
        f"{first_call_s * 1e3:,.1f}",
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="named configs: "
        + ", ".join(f"{k} = {v}" for k, v in NAMED_CONFIGS.items())
        + "; --quick skips: "
        + ", ".join(sorted(QUICK_SKIP)),
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats, skip batch 512")
    parser.add_argument(
        "--configs",
        nargs="+",
        type=Config.parse,
        metavar="CONFIG",
        help="configs to run: names or BATCH/IN-HIDDEN-...-CLASSES (default: all)",
    )
    parser.add_argument(
        "--dtypes", nargs="+", choices=["float32", "float64"], default=["float32", "float64"]
    )
    parser.add_argument("--show-source", action="store_true", help="print symgrad's step.source")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads for both sides (default 1: steadier timings on a shared machine; "
        "0 leaves the BLAS default)",
    )
    args = parser.parse_args(argv)

    if args.configs is not None:
        configs = args.configs
    else:
        configs = [
            Config.parse(name) for name in NAMED_CONFIGS if not (args.quick and name in QUICK_SKIP)
        ]

    # the first compile in a process pays one-time setup (imports, caches): measure it apart
    t0 = time.perf_counter()
    warm = Config(2, (2, 2, 2))
    for dtype in args.dtypes:
        params, X, labels = initial_state(warm, dtype)
        make_symgrad_step(params, warm, dtype)[0](X, labels)
    first_compile_ms = (time.perf_counter() - t0) * 1e3

    rows, failed = [], 0
    with blas_threads(args.threads) as threads:
        for cfg in configs:
            for dtype in args.dtypes:
                try:
                    rows.append(run_config(cfg, dtype, args.quick, args.show_source))
                except Exception:  # report it and go on with the other configs
                    failed += 1
                    traceback.print_exc()
                    rows.append([str(cfg), dtype] + ["failed"] * 5)
                print(f"  done {cfg} {dtype}", file=sys.stderr, flush=True)
    print(f"# MLP train step: symgrad vs hand-written NumPy (numpy {np.__version__})\n")
    print(
        markdown_table(
            [
                "config (batch/layers)",
                "dtype",
                "NumPy µs/step",
                "symgrad µs/step",
                "symgrad/NumPy",
                "compile ms",
                "1st call ms",
            ],
            rows,
            align="llrrrrr",
        )
    )
    notes = [
        f"ReLU MLP, softmax cross-entropy (mean over the batch), SGD lr={LR}, "
        "parameters updated in place; one fixed batch.",
        "µs/step: median over interleaved repeats of a timed loop; "
        "symgrad/NumPy < 1 means symgrad is faster.",
        "compile ms: graph build + sg.grad + sg.compile. 1st call ms: the first call, which "
        "specializes the kernel to the shapes and also pays for cold memory and caches.",
        f"The first compile in the process also paid {first_compile_ms:.0f} ms of one-time "
        "setup (measured apart, on a warm-up graph).",
        f"BLAS threads: {threads}.",
    ]
    print("\n" + "\n".join(f"- {n}" for n in notes))
    if failed:
        print(f"\n{failed} config(s) failed: see the errors above", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
