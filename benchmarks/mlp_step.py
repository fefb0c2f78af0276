"""One MLP training step (forward, backward, SGD update): symgrad against hand-written NumPy,
and against PyTorch (eager, CPU) and JAX (jit, CPU) when they are installed.

Every step trains the same network from the same start: ReLU hidden layers, softmax
cross-entropy (mean over the batch) on integer labels, plain SGD (NumPy, symgrad and PyTorch
update the parameters in place; JAX returns new ones, with the old buffers donated). Before
timing, one step of each is run from identical parameters and the losses and the updated
parameters are checked to agree with NumPy's, so every column does the same work.

    python benchmarks/mlp_step.py                  # all configs, float32 and float64
    python benchmarks/mlp_step.py --quick          # fewer repeats, no batch-512 config
    python benchmarks/mlp_step.py --configs small mnist --dtypes float32
    python benchmarks/mlp_step.py --configs 32/100-50-5 --show-source
    python benchmarks/mlp_step.py --without torch jax

A config is ``BATCH/IN-HIDDEN-...-CLASSES`` or one of the names listed by ``--help``.
Ratio columns are time / NumPy time per step (lower is better, 1.0 = parity). PyTorch and JAX
each run in a process of their own (this script with ``--child``), timed against NumPy there:
importing them changes how the process's allocator treats NumPy's large temporaries.
``compile ms`` is graph build + ``sg.grad`` + ``sg.compile``; ``1st call ms`` is the first
call, which specializes the kernel to the argument shapes (and meets cold memory and caches).

Two more tables follow: the fraction of the BLAS matmul peak each step reaches (the step's
matmul FLOPs over its time, against the best GFLOP/s of one plain ``X @ W`` of the config's
biggest layer), and the peak memory of one step (tracemalloc, after warm-up) of symgrad's and
NumPy's steps.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _common import (
    blas_threads,
    compare,
    loop_size,
    markdown_table,
    symgrad_origin,
    time_loop,
)

import symgrad as sg

LR = 0.1

NAMED_CONFIGS = {
    "tiny": "4/2-16-2",
    "small": "64/64-128-10",
    "mnist": "128/784-256-256-10",
    "large": "512/784-1024-1024-10",
}
QUICK_SKIP = {"large"}
FRAMEWORKS = ("torch", "jax")
TITLES = {"numpy": "NumPy", "symgrad": "symgrad", "torch": "PyTorch", "jax": "JAX"}


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

    @property
    def layers(self) -> list[tuple[int, int]]:
        return list(zip(self.sizes[:-1], self.sizes[1:]))

    @property
    def step_flops(self) -> int:
        """Matmul FLOPs of one step: per layer X @ W forward and X^T @ dZ for dW, plus
        dZ @ W^T for the layer's input except at the first layer (2*m*n*k each)."""
        fwd = sum(2 * self.batch * m * n for m, n in self.layers)
        return 2 * fwd + (fwd - 2 * self.batch * self.sizes[0] * self.sizes[1])


def initial_state(cfg: Config, dtype: str, seed: int = 0):
    """He-initialized parameters [W0, b0, W1, b1, ...] and one batch (X, labels)."""
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in cfg.layers:
        params.append((rng.standard_normal((fan_in, fan_out)) * np.sqrt(2 / fan_in)).astype(dtype))
        params.append((0.1 * rng.standard_normal(fan_out)).astype(dtype))
    X = rng.standard_normal((cfg.batch, cfg.sizes[0])).astype(dtype)
    labels = rng.integers(0, cfg.sizes[-1], size=cfg.batch).astype(np.int64)
    return params, X, labels


@dataclass
class Step:
    """One framework's training step on one batch, with access to its parameters."""

    run: Callable[[], object]  # one step on the fixed batch, returns the loss
    get_params: Callable[[], list[np.ndarray]]  # [W0, b0, ...] as NumPy arrays, (in, out)
    set_params: Callable[[list[np.ndarray]], None]
    extra: dict = field(default_factory=dict)


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


def numpy_step(start, X, labels) -> Step:
    params = [p.copy() for p in start]
    step = make_numpy_step(params)

    def set_params(values):
        for p, v in zip(params, values):
            p[...] = v

    return Step(lambda: step(X, labels), lambda: params, set_params)


# ---- the symgrad step --------------------------------------------------------------------


def make_symgrad_step(
    params: list[np.ndarray], cfg: Config, dtype: str, lr: float = LR, activation: str = "relu"
):
    """(compiled step, variables, build+grad+compile seconds) for the same network (hidden
    layers of ``activation``, any sg.<name>)."""
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
            h = getattr(sg, activation)(h)
    loss = sg.cross_entropy(h, y).mean()
    grads = sg.grad(loss, variables)
    step = sg.compile(
        loss, inputs=[X, y], updates={p: p - lr * gp for p, gp in zip(variables, grads)}
    )
    return step, variables, time.perf_counter() - t0


def symgrad_step(start, cfg: Config, dtype: str, X, labels) -> Step:
    fn, variables, build_s = make_symgrad_step(start, cfg, dtype)

    def set_params(values):
        for var, v in zip(variables, values):
            var.value[...] = v

    return Step(
        lambda: fn(X, labels),
        lambda: [v.value for v in variables],
        set_params,
        {"fn": fn, "build_s": build_s},
    )


# ---- PyTorch (eager) and JAX (jit) steps -------------------------------------------------


def load_frameworks(wanted, threads: int) -> dict:
    """The importable frameworks among ``wanted``, set up for CPU and ``threads`` threads."""
    found = {}
    if "torch" in wanted:
        try:
            import torch
        except ImportError:
            pass
        else:
            if threads > 0:
                torch.set_num_threads(threads)
            found["torch"] = torch
    if "jax" in wanted:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        # XLA sizes its CPU thread pool from the affinity mask when the backend starts: start
        # it under a mask of ``threads`` CPUs, then give every thread the full mask back
        mask = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
        narrow = 0 < threads < len(mask) and "jax" not in sys.modules
        if narrow:
            os.sched_setaffinity(0, sorted(mask)[:threads])
        try:
            import jax

            jax.config.update("jax_enable_x64", True)  # float64 columns; float32 stays float32
            jax.devices()
        except ImportError:
            pass
        else:
            found["jax"] = jax
        finally:
            if narrow:
                restore_affinity(mask)
    return found


def restore_affinity(mask: set[int]) -> None:
    """Give this process's threads (those started meanwhile too) the CPU mask ``mask``."""
    os.sched_setaffinity(0, mask)
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: only the calling thread is restored
        return
    for tid in tids:
        try:
            os.sched_setaffinity(tid, mask)
        except OSError:  # the thread has ended
            pass


def framework_threads(frameworks: dict, threads: int):
    """(name, threads) of each loaded framework, for the notes."""
    if "torch" in frameworks:
        yield "torch", frameworks["torch"].get_num_threads()
    if "jax" in frameworks:
        yield "jax", threads if threads > 0 else "default"


def torch_step(torch, start, X, labels, lr: float = LR) -> Step:
    """nn.Sequential of Linear/ReLU, F.cross_entropy, loss.backward(), optim.SGD."""
    nn = torch.nn
    dtype = getattr(torch, str(start[0].dtype))
    mods = []
    for i in range(0, len(start), 2):
        if mods:
            mods.append(nn.ReLU())
        mods.append(nn.Linear(*start[i].shape, dtype=dtype))
    model = nn.Sequential(*mods)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    X_t, labels_t = torch.from_numpy(X), torch.from_numpy(labels)

    def run():
        loss = nn.functional.cross_entropy(model(X_t), labels_t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    def get_params():
        out = []
        for lin in linears:  # nn.Linear keeps W as (out, in)
            out += [lin.weight.detach().numpy().T, lin.bias.detach().numpy()]
        return out

    def set_params(values):
        with torch.no_grad():
            for lin, W, b in zip(linears, values[0::2], values[1::2]):
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                lin.bias.copy_(torch.from_numpy(b))

    set_params(start)
    return Step(run, get_params, set_params)


def jax_step(jax, start, X, labels, lr: float = LR) -> Step:
    """jax.jit of value_and_grad + a functional SGD update, parameter buffers donated."""
    jnp = jax.numpy
    n_layers = len(start) // 2

    def loss_fn(params, X, labels):
        h = X
        for i in range(n_layers):
            h = h @ params[2 * i] + params[2 * i + 1]
            if i < n_layers - 1:
                h = jax.nn.relu(h)
        picked = jnp.take_along_axis(h, labels[:, None], axis=1)[:, 0]
        return jnp.mean(jax.nn.logsumexp(h, axis=1) - picked)

    def update(params, X, labels):
        loss, grads = jax.value_and_grad(loss_fn)(params, X, labels)
        return loss, [p - lr * g for p, g in zip(params, grads)]

    update = jax.jit(update, donate_argnums=0)
    X_d, labels_d = jax.device_put(X), jax.device_put(labels)
    state = {}

    def run():
        loss, state["params"] = update(state["params"], X_d, labels_d)
        return loss.block_until_ready()

    def set_params(values):
        state["params"] = [jax.device_put(np.array(v)) for v in values]

    set_params(start)
    return Step(run, lambda: [np.asarray(p) for p in state["params"]], set_params)


# ---- checking and timing -----------------------------------------------------------------


def check_same_step(loss_np, loss, params_np, params, start, dtype: str, label: str):
    """Both steps started from ``start``: their losses and updated parameters must agree."""
    rtol = 1e-4 if dtype == "float32" else 1e-10
    loss = np.asarray(loss)
    if loss.dtype != dtype:
        raise AssertionError(f"{label}: the loss is {loss.dtype}, not {dtype}")
    np.testing.assert_allclose(
        loss, np.asarray(loss_np), rtol=rtol, err_msg=f"{label}: loss differs"
    )
    for k, (p_np, p, p0) in enumerate(zip(params_np, params, start)):
        what = f"{label}: {'Wb'[k % 2]}{k // 2} (#{k}) after one step"
        p = np.asarray(p)
        if p.shape != p_np.shape or p.dtype != p_np.dtype:
            raise AssertionError(
                f"{what}: got {p.shape} {p.dtype}, expected {p_np.shape} {p_np.dtype}"
            )
        np.testing.assert_allclose(p, p_np, rtol=rtol, atol=rtol, err_msg=what)
        # the update itself (small against the weights) must agree too
        d_np, d = p_np - p0, p - p0
        scale = float(np.max(np.abs(d_np))) or 1.0
        np.testing.assert_allclose(d, d_np, rtol=0, atol=10 * rtol * scale, err_msg=what)
        if not np.any(d_np):
            raise AssertionError(f"{what}: the update is zero, the check would be vacuous")


def matmul_peak(cfg: Config, dtype: str, repeats: int) -> float:
    """Best GFLOP/s of a plain ``X @ W`` of the config's biggest layer."""
    m, n = max(cfg.layers, key=lambda mn: mn[0] * mn[1])
    rng = np.random.default_rng(2)
    X = rng.standard_normal((cfg.batch, m)).astype(dtype)
    W = rng.standard_normal((m, n)).astype(dtype)

    def mm():
        return X @ W

    time_loop(mm, loop_size(mm, 0.02))
    size = loop_size(mm, 0.05)
    best = min(time_loop(mm, size) / size for _ in range(repeats))
    return 2 * cfg.batch * m * n / best / 1e9


def traced_peak(fn: Callable[[], object]) -> int:
    """Peak bytes that tracemalloc sees allocated during one call of ``fn`` (already warm)."""
    fn()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
        del result
        return peak
    finally:
        tracemalloc.stop()


def page_faults(fn: Callable[[], object], target_s: float = 0.1) -> float | None:
    """Minor page faults per call of ``fn`` (already warm): fresh pages the kernel had to map,
    which is what allocating and freeing large temporaries at every call can cost."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    n = loop_size(fn, target_s)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    time_loop(fn, n)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / n


@dataclass
class Result:
    cfg: Config
    dtype: str
    times: dict = field(default_factory=dict)  # name -> seconds per step, or None = failed
    ref: dict = field(default_factory=dict)  # name -> the NumPy time its ratio is taken against
    build_s: float | None = None
    first_call_s: float | None = None
    peak_gflops: float | None = None
    memory: dict = field(default_factory=dict)  # name -> peak bytes
    workspace: int | None = None  # bytes of the buffers symgrad's kernel keeps between calls
    faults: dict = field(default_factory=dict)  # name -> minor page faults per step


def run_config(
    cfg: Config, dtype: str, names, frameworks: dict, quick: bool, show_source: bool = False
):
    """Time NumPy and the steps ``names`` (symgrad and/or loaded frameworks) on ``cfg``;
    returns (Result, number of failures). With symgrad, also the peak and memory columns."""
    label = f"{cfg} {dtype}"
    res = Result(cfg, dtype)
    start, X, labels = initial_state(cfg, dtype)
    ref = numpy_step(start, X, labels)
    loss_np = ref.run()
    params_np = [p.copy() for p in ref.get_params()]
    makers = {}
    if "symgrad" in names:
        makers["symgrad"] = lambda: symgrad_step(start, cfg, dtype, X, labels)
    for name in names:
        if name in frameworks:
            maker = torch_step if name == "torch" else jax_step
            makers[name] = lambda maker=maker, mod=frameworks[name]: maker(mod, start, X, labels)

    steps, failed = {"numpy": ref}, 0
    for name, make in makers.items():
        try:
            step = make()
            t0 = time.perf_counter()
            loss = step.run()
            if name == "symgrad":
                res.build_s = step.extra["build_s"]
                res.first_call_s = time.perf_counter() - t0
                res.workspace = step.extra["fn"].workspace_bytes
                if show_source:
                    source = step.extra["fn"].source
                    print(f"## generated source, {label}\n\n```python\n{source}```\n")
            check_same_step(
                loss_np, loss, params_np, step.get_params(), start, dtype, f"{TITLES[name]} {label}"
            )
        except Exception:  # report it and go on with the other columns
            failed += 1
            traceback.print_exc()
            res.times[name] = None
            continue
        steps[name] = step

    main = "symgrad" in names
    repeats = 3 if quick else (5 if cfg.big else 9)
    # the peak is the best of two measurements, before and after timing the steps
    peak_before = matmul_peak(cfg, dtype, repeats) if main else 0.0
    # time from the same start, on one fixed batch
    for step in steps.values():
        step.set_params(start)
    target = 0.1 if quick else (0.3 if cfg.big else 0.15)
    res.times.update(
        compare(
            {name: step.run for name, step in steps.items()},
            repeats=repeats,
            target_s=target,
            warmup_s=0.05 if quick else 0.1,
        )
    )
    for name, step in steps.items():
        if not all(np.all(np.isfinite(p)) for p in step.get_params()):
            print(f"warning: {TITLES[name]} {label}: parameters became non-finite", file=sys.stderr)
    if main:
        res.peak_gflops = max(peak_before, matmul_peak(cfg, dtype, repeats))
        for name in ("numpy", "symgrad"):
            if name in steps:
                res.memory[name] = traced_peak(steps[name].run)
                res.faults[name] = page_faults(steps[name].run)
    return res, failed


def child_main(name: str, configs, dtypes, quick: bool, threads: int) -> int:
    """The ``--child NAME`` process: NumPy and one framework, as JSON on the last line."""
    frameworks = load_frameworks([name], threads)
    if name not in frameworks:
        print(json.dumps({"missing": True}))
        return 0
    rows, failed = [], 0
    with blas_threads(threads):
        for cfg in configs:
            for dtype in dtypes:
                res, n_failed = run_config(cfg, dtype, [name], frameworks, quick)
                failed += n_failed
                rows.append([str(cfg), dtype, res.times["numpy"], res.times.get(name)])
                print(f"  done {TITLES[name]} {cfg} {dtype}", file=sys.stderr, flush=True)
    info = {
        "version": frameworks[name].__version__,
        "threads": dict(framework_threads(frameworks, threads))[name],
        "rows": rows,
        "failed": failed,
    }
    print(json.dumps(info))
    return 0


def run_child(name: str, configs, dtypes, quick: bool, threads: int) -> dict:
    """Run the ``name`` column in a process of its own; its JSON report, {} if it failed."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--threads"]
    cmd += [str(threads), "--configs", *map(str, configs), "--dtypes", *dtypes]
    if quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        print(f"error: the {TITLES[name]} process failed (exit {proc.returncode})", file=sys.stderr)
        return {}


# ---- tables ------------------------------------------------------------------------------


def fmt_us(t) -> str:
    return "failed" if t is None else f"{t * 1e6:,.1f}"


def fmt_ratio(t, t_ref) -> str:
    return "failed" if t is None else f"{t / t_ref:.2f}"


def time_table(results: list[Result], columns: list[str]) -> str:
    headers = ["config (batch/layers)", "dtype", "NumPy µs/step"]
    for name in columns:
        headers += [f"{TITLES[name]} µs/step", f"{TITLES[name]}/NumPy"]
    headers += ["compile ms", "1st call ms"]
    rows = []
    for r in results:
        t_np = r.times["numpy"]
        row = [str(r.cfg), r.dtype, fmt_us(t_np)]
        for name in columns:
            t = r.times.get(name)
            row += [fmt_us(t), fmt_ratio(t, r.ref.get(name, t_np))]
        row += [
            "failed" if r.build_s is None else f"{r.build_s * 1e3:,.1f}",
            "failed" if r.first_call_s is None else f"{r.first_call_s * 1e3:,.1f}",
        ]
        rows.append(row)
    return markdown_table(headers, rows, "ll" + "r" * (len(headers) - 2))


def peak_table(results: list[Result], columns: list[str]) -> str:
    headers = ["config (batch/layers)", "dtype", "step MFLOP", "X @ W peak GFLOP/s"]
    headers += [f"{TITLES[name]} % of peak" for name in ["numpy"] + columns]
    rows = []
    for r in results:
        flops = r.cfg.step_flops
        row = [str(r.cfg), r.dtype, f"{flops / 1e6:,.4g}", f"{r.peak_gflops:,.1f}"]
        for name in ["numpy"] + columns:
            t = r.times.get(name)
            row.append("failed" if t is None else f"{100 * flops / t / 1e9 / r.peak_gflops:.1f}")
        rows.append(row)
    return markdown_table(headers, rows, "ll" + "r" * (len(headers) - 2))


def memory_table(results: list[Result]) -> str:
    rows = []
    for r in results:
        m_np, m_sg = r.memory.get("numpy"), r.memory.get("symgrad")
        f_np, f_sg = r.faults.get("numpy"), r.faults.get("symgrad")
        rows.append(
            [
                str(r.cfg),
                r.dtype,
                f"{m_np / 1024:,.1f}",
                "failed" if m_sg is None else f"{m_sg / 1024:,.1f}",
                "failed" if m_sg is None else f"{m_sg / m_np:.2f}",
                "n/a" if r.workspace is None else f"{r.workspace / 1024:,.1f}",
                "n/a"
                if m_sg is None or r.workspace is None
                else f"{(m_sg + r.workspace) / m_np:.2f}",
                "n/a" if f_np is None else f"{f_np:,.0f}",
                ("failed" if m_sg is None else "n/a") if f_sg is None else f"{f_sg:,.0f}",
            ]
        )
    headers = ["config (batch/layers)", "dtype", "NumPy peak KiB", "symgrad peak KiB"]
    headers += ["symgrad/NumPy", "symgrad workspace KiB", "(peak + workspace)/NumPy"]
    headers += ["NumPy page faults/step", "symgrad page faults/step"]
    return markdown_table(headers, rows, "llrrrrrrr")


def update_note(frameworks: dict) -> str:
    names = ["NumPy", "symgrad"] + (["PyTorch"] if "torch" in frameworks else [])
    in_place = ", ".join(names[:-1]) + " and " + names[-1]
    note = f"{in_place} update the parameters in place"
    if "torch" in frameworks:
        note += " (PyTorch: nn.Sequential, F.cross_entropy, backward(), optim.SGD)"
    if "jax" in frameworks:
        note += "; JAX returns new ones (jit of value_and_grad + update, buffers donated)"
    return note + "."


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
    parser.add_argument(
        "--without",
        nargs="+",
        choices=FRAMEWORKS,
        default=[],
        help="leave out these columns even when the framework is installed",
    )
    parser.add_argument("--show-source", action="store_true", help="print symgrad's step.source")
    parser.add_argument("--child", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads for every column (default 1: steadier timings on a shared machine; "
        "0 leaves the defaults)",
    )
    args = parser.parse_args(argv)

    if args.configs is not None:
        configs = args.configs
    else:
        configs = [
            Config.parse(name) for name in NAMED_CONFIGS if not (args.quick and name in QUICK_SKIP)
        ]
    if args.child:
        return child_main(args.child, configs, args.dtypes, args.quick, args.threads)

    # the first compile in a process pays one-time setup (imports, caches): measure it apart
    t0 = time.perf_counter()
    warm = Config(2, (2, 2, 2))
    try:
        for dtype in args.dtypes:
            params, X, labels = initial_state(warm, dtype)
            make_symgrad_step(params, warm, dtype)[0](X, labels)
        first_compile_ms = (time.perf_counter() - t0) * 1e3
    except Exception:  # the symgrad column will report it per config
        traceback.print_exc()
        first_compile_ms = None

    results, failed = [], 0
    with blas_threads(args.threads) as threads:
        for cfg in configs:
            for dtype in args.dtypes:
                res, n_failed = run_config(
                    cfg, dtype, ["symgrad"], {}, args.quick, args.show_source
                )
                results.append(res)
                failed += n_failed
                print(f"  done {cfg} {dtype}", file=sys.stderr, flush=True)

    # each framework in a process of its own, timed against NumPy there (see the notes)
    columns, reports, missing = ["symgrad"], {}, []
    for name in FRAMEWORKS:
        if name in args.without:
            continue
        if importlib.util.find_spec(name) is None:
            missing.append(name)
            continue
        report = run_child(name, configs, args.dtypes, args.quick, args.threads)
        if report.get("missing"):
            missing.append(name)
            continue
        columns.append(name)
        reports[name] = report
        failed += report.get("failed", 1)
        by_key = {(c, d): (t_np, t) for c, d, t_np, t in report.get("rows", [])}
        for r in results:
            t_np, t = by_key.get((str(r.cfg), r.dtype), (None, None))
            r.times[name] = t
            if t_np is not None:
                r.ref[name] = t_np

    versions = [f"numpy {np.__version__}"]
    versions += [f"{TITLES[k]} {r.get('version', '?')}" for k, r in reports.items()]
    others = " / ".join(TITLES[c] for c in columns)
    print(f"# MLP train step: {others} vs hand-written NumPy ({', '.join(versions)})\n")
    print(time_table(results, columns))
    notes = [
        f"ReLU MLP, softmax cross-entropy (mean over the batch), SGD lr={LR}; one fixed batch. "
        + update_note(reports),
        "µs/step: median over interleaved repeats of a timed loop; X/NumPy < 1 means X is faster.",
        "compile ms: symgrad's graph build + sg.grad + sg.compile. 1st call ms: symgrad's first "
        "call, which specializes the kernel to the shapes and also pays for cold memory and "
        "caches.",
        f"The first compile in the process also paid {first_compile_ms:.0f} ms of one-time "
        "setup (measured apart, on a warm-up graph)."
        if first_compile_ms is not None
        else "The warm-up compile failed.",
        f"BLAS threads: {threads}"
        + "".join(f"; {TITLES[k]} threads: {r.get('threads', '?')}" for k, r in reports.items())
        + ".",
    ]
    if reports:
        notes.append(
            " and ".join(TITLES[k] for k in reports) + " run in processes of their own, each "
            "timed against NumPy's step there (interleaved): loading them changes the "
            "process's memory allocator (with jaxlib loaded, the large temporaries of NumPy's "
            "and symgrad's steps stop costing page faults), so the NumPy and symgrad columns "
            "are measured in a process that has not loaded them."
        )
    if missing:
        notes.append(
            f"{' and '.join(TITLES[m] for m in missing)} not installed: column(s) omitted "
            "(pip install -e '.[bench]')."
        )
    notes.append(symgrad_origin() + ".")
    print("\n" + "\n".join(f"- {n}" for n in notes))

    print("\n## Fraction of the BLAS matmul peak\n")
    print(peak_table(results, columns))
    print(
        "\n- step MFLOP: the step's matmul FLOPs (2·m·n·k each): forward X @ W and backward "
        "X^T @ dZ per layer, dZ @ W^T for every layer but the first."
    )
    print(
        "- peak: best GFLOP/s of one plain NumPy `X @ W` of the biggest layer "
        "(batch × fan-in @ fan-in × fan-out) in the dtype; % of peak = MFLOP / step time / peak "
        "(PyTorch uses its own BLAS, so it can exceed NumPy's peak)."
    )

    print("\n## Peak memory of one step (tracemalloc, after warm-up)\n")
    print(memory_table(results))
    print(
        "\n- Bytes allocated during one step beyond what was live before it (the parameters and "
        "the batch are not counted); symgrad/NumPy < 1 means symgrad needs less."
    )
    print(
        "- symgrad workspace: the buffers its kernel allocates once per shape and reuses on "
        "every call (live between calls, so not in its per-step peak)."
    )
    print(
        "- page faults/step: minor page faults per step in a loop (getrusage): fresh pages "
        "mapped because large temporaries went back to the OS between steps; each costs "
        "system time that the µs/step columns include."
    )
    if failed:
        print(f"\n{failed} column(s) failed: see the errors above", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
