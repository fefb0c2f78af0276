"""Timing and table helpers shared by the benchmark scripts.

Timing follows the usual recipe: warm up, size a loop of ``n`` calls so that one repeat takes
roughly ``target_s`` seconds, run several repeats with the garbage collector off, and report
the median time per call. When several functions are compared, their repeats are interleaved
(A B A B ...) so that a slow spell on a shared machine hits all of them alike.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# The scripts measure the symgrad of the checkout they belong to, even when the installed
# symgrad (an editable install of another checkout, say) lives elsewhere.
_ROOT = Path(__file__).resolve().parent.parent
if (_ROOT / "symgrad" / "__init__.py").is_file() and str(_ROOT) not in sys.path:
    sys.path.insert(1, str(_ROOT))


def time_loop(fn: Callable[[], object], n: int) -> float:
    """Seconds taken by ``n`` back-to-back calls of ``fn``, with the garbage collector off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return time.perf_counter() - t0
    finally:
        if enabled:
            gc.enable()


def loop_size(fn: Callable[[], object], target_s: float, max_n: int = 1_000_000) -> int:
    """Number of calls of ``fn`` that take about ``target_s`` seconds (at least 1)."""
    n = 1
    while True:
        elapsed = time_loop(fn, n)
        if elapsed >= target_s / 4 or n >= max_n:
            break
        n *= 4 if elapsed < target_s / 40 else 2
    return max(1, min(max_n, round(n * target_s / max(elapsed, 1e-9))))


def compare(
    fns: dict[str, Callable[[], object]],
    *,
    repeats: int = 7,
    target_s: float = 0.15,
    warmup_s: float = 0.05,
) -> dict[str, float]:
    """Median seconds per call of each function in ``fns``, with interleaved repeats."""
    sizes = {}
    for name, fn in fns.items():
        time_loop(fn, max(1, loop_size(fn, warmup_s)))  # warm-up: caches, allocator, BLAS
        sizes[name] = loop_size(fn, target_s)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(time_loop(fn, sizes[name]) / sizes[name])
    return {name: statistics.median(s) for name, s in samples.items()}


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A markdown table; ``align`` has one letter per column, ``l`` or ``r`` (default ``l``)."""
    align = align.ljust(len(headers), "l")
    cells = [list(headers)] + [list(map(str, r)) for r in rows]
    widths = [max(3, *(len(r[i]) for r in cells)) for i in range(len(headers))]

    def line(r):
        parts = [c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(r, widths, align)]
        return "| " + " | ".join(parts) + " |"

    rule = ["-" * (w - 1) + ":" if a == "r" else "-" * w for w, a in zip(widths, align)]
    return "\n".join([line(cells[0]), line(rule)] + [line(r) for r in cells[1:]])


@contextlib.contextmanager
def blas_threads(n: int):
    """Limit BLAS to ``n`` threads (0: leave it); yields a description of the setting."""
    info = [f"{i['internal_api']} {i['num_threads']}" for i in _threadpool_info() or []]
    default = ", ".join(info) or "default"
    if n <= 0:
        yield default
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        print(
            "warning: threadpoolctl is not installed, BLAS threads left as they are",
            file=sys.stderr,
        )
        yield default
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield str(n)


def _threadpool_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [i for i in threadpool_info() if i.get("user_api") == "blas"]


def symgrad_origin() -> str:
    """Where the symgrad being measured comes from: its folder and, in a git checkout, the
    commit (with ``+ changes`` when its files differ from the commit)."""
    import importlib.util

    spec = importlib.util.find_spec("symgrad")
    if spec is None or spec.origin is None:
        return "symgrad: not importable"
    pkg = Path(spec.origin).resolve().parent

    def git(*args):
        out = subprocess.run(
            ["git", "-C", str(pkg.parent), *args], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() if out.returncode == 0 else None

    try:
        commit = git("rev-parse", "--short", "HEAD")
        changed = commit and git("status", "--porcelain", "--", str(pkg))
    except (OSError, subprocess.SubprocessError):
        commit = changed = None
    where = f"symgrad from {pkg.parent}"
    if commit:
        where += f" (commit {commit}{' + changes' if changed else ''})"
    return where
