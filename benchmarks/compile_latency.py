"""Compile latency in a fresh process: import symgrad, then build + differentiate + compile.

    python benchmarks/compile_latency.py            # 7 fresh processes per function
    python benchmarks/compile_latency.py --quick    # 3

Each repeat runs ``sys.executable -c ...`` in a new process, so nothing is cached from an
earlier compile (SymPy's caches, generated kernels, imported modules). In the child:

1. ``import numpy``, then ``import symgrad`` (timed apart: NumPy's import is not symgrad's);
2. for one function, the time to build the graph, differentiate it, ``sg.compile`` it (the
   rewrites and the schedule) and call it once on zeros (the first call generates and
   builds the kernel for the argument shapes).

The functions, for the (batch 128, 784-256-256-10) ReLU MLP with softmax cross-entropy:
``step``: the SGD train step (parameters are variables, updated in place by the call);
``hvp``: the Hessian-vector product (forward-over-reverse) with the parameters as inputs.
Each function is measured in processes of its own. Medians over the repeats.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from _common import markdown_table, symgrad_origin

BATCH, SIZES = 128, (784, 256, 256, 10)
TARGET_MS = {"step": 50.0, "hvp": 50.0}

CHILD = r"""
import sys, time, json
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
import symgrad as sg
t2 = time.perf_counter()

what, batch, sizes = sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3].split("-")]
dtype = "float32"
out = {"import numpy": t1 - t0, "import symgrad": t2 - t1}

t = time.perf_counter()
g = sg.Graph()
X = g.input("X", ("batch", sizes[0]), dtype=dtype)
y = g.input("y", ("batch",), dtype="int64")
params, values = [], []
for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
    for shape in ((m, n), (n,)):
        values.append(np.zeros(shape, dtype))
        if what == "step":
            params.append(g.variable(f"p{len(params)}", values[-1]))
        else:
            params.append(g.input(f"p{len(params)}", shape, dtype=dtype))
h = X
for i in range(0, len(params), 2):
    h = h @ params[i] + params[i + 1]
    if i < len(params) - 2:
        h = sg.relu(h)
loss = sg.cross_entropy(h, y).mean()
if what == "hvp":
    vs = [g.input(f"v{i}", p.shape, dtype=dtype) for i, p in enumerate(params)]
out["build"] = time.perf_counter() - t

t = time.perf_counter()
if what == "step":
    grads = sg.grad(loss, params)
    updates = {p: p - 0.1 * gp for p, gp in zip(params, grads)}
else:
    hv = sg.hvp(loss, params, vs, mode="fwd-rev")
out["differentiate"] = time.perf_counter() - t

t = time.perf_counter()
if what == "step":
    fn = sg.compile(loss, inputs=[X, y], updates=updates)
else:
    fn = sg.compile(hv, inputs=[X, y, *params, *vs])
out["sg.compile"] = time.perf_counter() - t

Xv, yv = np.zeros((batch, sizes[0]), dtype), np.zeros(batch, "int64")
args = [Xv, yv] if what == "step" else [Xv, yv, *values, *values]
t = time.perf_counter()
fn(*args)
out["first call"] = time.perf_counter() - t
print(json.dumps(out))
"""

STAGES = ["build", "differentiate", "sg.compile", "first call"]
STAGE_TEXT = {
    "build": "build the graph",
    "differentiate": "differentiate",
    "sg.compile": "sg.compile",
    "first call": "first call on zeros (kernel for the shapes)",
}


def symgrad_root() -> Path:
    """The folder holding the symgrad package this interpreter would import (not imported
    here): the children run there, so that they import the same one."""
    spec = importlib.util.find_spec("symgrad")
    if spec is None or spec.origin is None:
        raise SystemExit("symgrad is not importable")
    return Path(spec.origin).resolve().parent.parent


def run_child(what: str, env: dict) -> dict[str, float]:
    layers = "-".join(map(str, SIZES))
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, what, str(BATCH), layers],
        capture_output=True,
        text=True,
        env=env,
        cwd=symgrad_root(),
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the {what} child process failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 processes per function, not 7")
    parser.add_argument("--repeats", type=int, help="processes per function")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads in the child processes (default 1; 0 leaves the default)",
    )
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)
    env = dict(os.environ)
    if args.threads > 0:
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.threads)

    samples: dict[str, list[dict]] = {"step": [], "hvp": []}
    for _ in range(repeats):  # interleaved, like the in-process benchmarks
        for what in samples:
            samples[what].append(run_child(what, env))

    def median_ms(what, key):
        return statistics.median(s[key] for s in samples[what]) * 1e3

    every = samples["step"] + samples["hvp"]
    rows = [
        ["import numpy", f"{statistics.median(s['import numpy'] for s in every) * 1e3:,.1f}", ""],
        [
            "import symgrad (after numpy)",
            f"{statistics.median(s['import symgrad'] for s in every) * 1e3:,.1f}",
            "",
        ],
    ]
    title = {"step": "train step", "hvp": "HVP function (fwd-rev)"}
    for what in samples:
        for stage in STAGES:
            ms = median_ms(what, stage)
            rows.append([f"{title[what]}: {STAGE_TEXT[stage]}", f"{ms:,.1f}", ""])
        totals = [sum(s[k] for k in STAGES) for s in samples[what]]
        total = statistics.median(totals) * 1e3
        target = TARGET_MS[what]
        verdict = "met" if total <= target else "missed"
        rows.append(
            [f"**{title[what]}: total**", f"**{total:,.1f}**", f"<= {target:.0f} ({verdict})"]
        )

    layers = "-".join(map(str, SIZES))
    print(f"# Compile latency in a fresh process (batch {BATCH}, {layers}, float32)\n")
    print(markdown_table(["stage", "median ms", "target ms"], rows, "lrr"))
    notes = [
        f"Median over {repeats} fresh processes per function (`{Path(sys.executable).name} -c`), "
        "step and HVP processes interleaved; each function is compiled in processes of its own.",
        "import rows: from all processes; the totals exclude the imports and are the median of "
        "per-process sums (so the stage medians need not add up to them).",
        "The rewrites, scheduling and code generation may run in sg.compile or at the first "
        "call, depending on the symgrad version: compare the totals.",
        "train step: ReLU MLP, softmax cross-entropy (mean), SGD update of the variables. "
        "HVP function: sg.hvp(loss, params, v) with the parameters and v as inputs.",
        f"BLAS threads in the children: {args.threads if args.threads > 0 else 'default'}.",
        symgrad_origin() + ".",
    ]
    print("\n" + "\n".join(f"- {n}" for n in notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
