"""``python -m symgrad demo``: train the XOR network of the course notes and an MLP on digits,
then compute a Hessian-vector product of the digits loss and check it numerically."""

from __future__ import annotations

import time

import numpy as np

import symgrad as sg

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
XOR_Y = np.array([0, 1, 1, 0], dtype=np.float64)
# the hand-made solution of the course notes: f(x) = w^T max(0, W^T x + c) + b
TEXTBOOK = {
    "W": np.array([[1.0, 1.0], [1.0, 1.0]]),
    "c": np.array([0.0, -1.0]),
    "w": np.array([1.0, -2.0]),
    "b": np.array(0.0),
}


def _progress(iterable, total, desc, quiet):
    if quiet:
        return iterable
    try:
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, leave=False)
    except ImportError:  # tqdm is optional: fall back to plain output
        print(f"{desc} ...")
        return iterable


def momentum_updates(params, grads, lr: float, mu: float, graph: sg.Graph) -> dict:
    """SGD with momentum as graph updates: v <- mu v - lr g; p <- p + v."""
    updates = {}
    for p, gp in zip(params, grads):
        v = graph.variable(f"velocity_{p.name}", np.zeros(p.shape, dtype=p.dtype))
        new_v = mu * v - lr * gp
        updates[v] = new_v
        updates[p] = p + new_v
    return updates


def xor_network(params: dict):
    """The XOR network, its MSE loss and one compiled training step (momentum SGD)."""
    g = sg.Graph()
    X = g.input("X", (4, 2))
    Y = g.input("Y", (4,))
    p = {k: g.variable(k, v) for k, v in params.items()}
    out = sg.relu(X @ p["W"] + p["c"]) @ p["w"] + p["b"]
    loss = sg.mse(out, Y)
    order = [p[k] for k in ("W", "c", "w", "b")]
    step = sg.compile(
        loss, [X, Y], updates=momentum_updates(order, sg.grad(loss, order), 0.05, 0.9, g)
    )
    predict = sg.compile(out, [X])
    return p, step, predict


def train_xor(seed: int = 0, target: float = 1e-6, max_steps: int = 3000, quiet: bool = False):
    """Train from random starts (a fresh one whenever a ReLU unit dies) until loss < target."""
    rng = np.random.default_rng(seed)
    for start in range(1, 51):
        init = {
            "W": rng.normal(0.0, 1.0, (2, 2)),
            "c": rng.uniform(0.0, 0.1, 2),  # small positive biases, as the notes advise
            "w": rng.normal(0.0, 1.0, 2),
            "b": np.array(0.0),
        }
        p, step, predict = xor_network(init)
        for i in range(1, max_steps + 1):
            loss = float(step(XOR_X, XOR_Y))
            if loss < target:
                learned = {k: v.value.copy() for k, v in p.items()}
                return {
                    "starts": start,
                    "steps": i,
                    "loss": loss,
                    "params": learned,
                    "outputs": predict(XOR_X),
                }
        if not quiet:
            print(f"  start {start}: stuck at loss {loss:.3g} (a dead ReLU unit); new random start")
    raise RuntimeError("XOR did not train from 50 random starts")


def load_digits_split(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float64)
    return train_test_split(X, y.astype(np.int64), test_size=0.25, random_state=seed, stratify=y)


def digits_model(sizes=(64, 128, 10), seed: int = 0, dtype="float64"):
    """MLP logits and per-batch mean cross-entropy as a graph (He-initialized ReLU layers)."""
    rng = np.random.default_rng(seed)
    g = sg.Graph()
    X = g.input("X", ("batch", sizes[0]), dtype)
    y = g.input("y", ("batch",), "int64")
    params, h = [], X
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = g.variable(f"W{i}", rng.normal(0.0, np.sqrt(2.0 / m), (m, n)).astype(dtype))
        b = g.variable(f"b{i}", np.zeros(n, dtype))
        params += [W, b]
        h = h @ W + b
        if i < len(sizes) - 2:
            h = sg.relu(h)
    loss = sg.cross_entropy(h, y).mean()
    return g, X, y, params, h, loss


def train_digits(
    epochs: int = 30, batch: int = 64, lr: float = 0.05, seed: int = 0, quiet: bool = False
):
    Xtr, Xte, ytr, yte = load_digits_split(seed)
    g, X, y, params, logits, loss = digits_model(seed=seed)
    t0 = time.perf_counter()
    step = sg.compile(
        loss, [X, y], updates=momentum_updates(params, sg.grad(loss, params), lr, 0.9, g)
    )
    compile_s = time.perf_counter() - t0
    predict = sg.compile(logits, [X])
    rng = np.random.default_rng(seed)
    history = []
    for _ in _progress(range(epochs), epochs, "digits epochs", quiet):
        order = rng.permutation(len(Xtr))
        losses = [
            float(step(Xtr[idx], ytr[idx])) for idx in np.array_split(order, len(Xtr) // batch)
        ]
        history.append(float(np.mean(losses)))
    accuracy = float(np.mean(np.argmax(predict(Xte), axis=1) == yte))
    return {
        "accuracy": accuracy,
        "history": history,
        "compile_s": compile_s,
        "graph": g,
        "X": X,
        "y": y,
        "params": params,
        "loss": loss,
        "data": (Xtr, Xte, ytr, yte),
    }


def hvp_check(result: dict, eps: float = 1e-5, seed: int = 1) -> dict:
    """One HVP of the digits loss at the trained parameters vs a central difference of gradients."""
    g, X, y, params, loss = (result[k] for k in ("graph", "X", "y", "params", "loss"))
    Xtr, _, ytr, _ = result["data"]
    Xb, yb = Xtr[:256], ytr[:256]
    vs = [g.input(f"v_{p.name}", p.shape) for p in params]
    hv = sg.compile(sg.hvp(loss, params, vs), [X, y, *vs])
    grad_fn = sg.compile(sg.grad(loss, params), [X, y])
    rng = np.random.default_rng(seed)
    v = [rng.standard_normal(p.shape) for p in params]
    symbolic = np.concatenate([h.ravel() for h in hv(Xb, yb, *v)])
    base = [p.value.copy() for p in params]

    def grads_at(sign):
        for p, b0, vi in zip(params, base, v):
            p.value[...] = b0 + sign * eps * vi
        return np.concatenate([gi.ravel() for gi in grad_fn(Xb, yb)])

    numeric = (grads_at(+1) - grads_at(-1)) / (2 * eps)
    for p, b0 in zip(params, base):
        p.value[...] = b0
    rel = float(np.linalg.norm(symbolic - numeric) / np.linalg.norm(numeric))
    return {"relative_error": rel, "norm": float(np.linalg.norm(symbolic)), "n": symbolic.size}


def _show_matrix(name, a):
    text = np.array2string(np.asarray(a), precision=3, suppress_small=True, separator=", ")
    return f"{name} = {' '.join(text.split())}"


def run(quiet: bool = False) -> dict:
    t_start = time.perf_counter()
    print("(a) XOR, the network of the course notes: 2 inputs, 2 ReLU units, linear output, MSE")
    xor = train_xor(quiet=quiet)
    print(
        f"    loss {xor['loss']:.2e} < 1e-6 after {xor['steps']} steps "
        f"(random start #{xor['starts']})"
    )
    _, _, textbook_predict = xor_network(TEXTBOOK)
    print(f"    {'learned':42s} textbook (course notes)")
    for k in ("W", "c", "w", "b"):
        print(f"    {_show_matrix(k, xor['params'][k]):42s} {_show_matrix(k, TEXTBOOK[k])}")
    print(
        f"    {_show_matrix('f(X)', xor['outputs']):42s} "
        f"{_show_matrix('f(X)', textbook_predict(XOR_X))}"
    )

    print("(b) MLP 64-128-10 (ReLU, softmax cross-entropy) on scikit-learn digits, SGD + momentum")
    digits = train_digits(quiet=quiet)
    print(
        f"    train step compiled in {1e3 * digits['compile_s']:.1f} ms; loss per epoch "
        f"{digits['history'][0]:.3f} -> {digits['history'][-1]:.4f}"
    )
    print(f"    held-out accuracy {100 * digits['accuracy']:.2f}%")

    print("(c) Hessian-vector product of the digits loss (forward-over-reverse)")
    hv = hvp_check(digits)
    print(
        f"    |Hv| = {hv['norm']:.4g} over {hv['n']} parameters; relative error vs central "
        f"difference of gradients: {hv['relative_error']:.2e}"
    )
    print(f"done in {time.perf_counter() - t_start:.1f} s")
    return {"xor": xor, "digits": digits, "hvp": hv}
