"""``python -m symgrad demo``: train the XOR network of the course notes and an MLP on digits
with ``symgrad.nn``, then look at the digits loss's curvature with ``symgrad.krylov``: one
Hessian-vector product checked numerically, and the top Hessian eigenvalues by Lanczos."""

from __future__ import annotations

import time

import numpy as np

import symgrad as sg
from symgrad import krylov, nn

XOR_X, XOR_Y = nn.xor()
# the hand-made solution of the course notes: f(x) = w^T max(0, W^T x + c) + b
TEXTBOOK = {
    "W": np.array([[1.0, 1.0], [1.0, 1.0]]),
    "c": np.array([0.0, -1.0]),
    "w": np.array([1.0, -2.0]),
    "b": np.array(0.0),
}


def xor_network(params: dict):
    """The XOR network as a 2-2-1 ReLU MLP holding ``params`` (course notes' names W, c, w,
    b); returns (net, its parameters by those names, predict: X -> f(X))."""
    net = nn.mlp([2, 2, 1], "relu")
    named = dict(zip(("W", "c", "w", "b"), net.params))
    net.set_values([np.reshape(params[k], named[k].shape) for k in ("W", "c", "w", "b")])

    def predict(X):
        return nn.predict(net, X)[:, 0]

    return net, named, predict


def _textbook_form(named: dict) -> dict:
    return {k: v.value.reshape(TEXTBOOK[k].shape).copy() for k, v in named.items()}


def train_xor(seed: int = 0, target: float = 1e-6, max_steps: int = 3000, quiet: bool = False):
    """Train with momentum SGD on the four points until the MSE is below ``target``, from
    random starts (a fresh one whenever a ReLU unit dies and the loss gets stuck)."""
    rng = np.random.default_rng(seed)
    for start in range(1, 51):
        init = {
            "W": rng.normal(0.0, 1.0, (2, 2)),
            "c": rng.uniform(0.0, 0.1, 2),  # small positive biases, as the notes advise
            "w": rng.normal(0.0, 1.0, 2),
            "b": np.array(0.0),
        }
        net, named, predict = xor_network(init)
        history = nn.fit(
            net,
            XOR_X,
            XOR_Y,
            loss="mse",
            optimizer=nn.Momentum(lr=0.05, momentum=0.9),
            epochs=max_steps,
            batch_size=None,
            target_loss=target,
            quiet=quiet,
            desc=f"XOR start {start}",
        )
        if history.stopped == "target":
            return {
                "starts": start,
                "steps": len(history.loss),
                "loss": history.loss[-1],
                "params": _textbook_form(named),
                "outputs": predict(XOR_X),
                "history": history,
            }
        if not quiet:
            print(f"  start {start}: stuck at loss {history.loss[-1]:.3g} (a dead ReLU unit)")
    raise RuntimeError("XOR did not train from 50 random starts")


def train_digits(
    epochs: int = 30, batch: int = 64, lr: float = 0.05, seed: int = 0, quiet: bool = False
):
    """A 64-128-10 ReLU MLP on scikit-learn digits, momentum SGD, one compiled call a step."""
    Xtr, Xte, ytr, yte = nn.digits(seed=seed)
    net = nn.mlp([64, 128, 10], "relu", init="he", seed=seed)
    history = nn.fit(
        net,
        Xtr,
        ytr,
        optimizer=nn.Momentum(lr=lr, momentum=0.9),
        epochs=epochs,
        batch_size=batch,
        validation=(Xte, yte),
        seed=seed,
        quiet=quiet,
        desc="digits epochs",
    )
    return {
        "accuracy": nn.accuracy(nn.predict(net, Xte), yte),
        "history": history.loss,
        "compile_s": history.compile_time,
        "fit": history,
        "net": net,
        "problem": history.problem,
        "data": (Xtr, Xte, ytr, yte),
    }


def _curvature_batch(result: dict, rows: int = 256) -> dict:
    problem = result["problem"]
    Xtr, _, ytr, _ = result["data"]
    X, y = problem.inputs
    return {X: Xtr[:rows], y: ytr[:rows]}


def hvp_check(result: dict, eps: float = 1e-6, seed: int = 1) -> dict:
    """One HVP of the digits loss at the trained parameters vs a central difference of
    gradients along the same vector."""
    # The gradient of a ReLU net jumps where a unit's input changes sign: a step small enough
    # to cross no such kink, yet far above float64 rounding (1e-5 crossed one here)
    problem = result["problem"]
    feed = _curvature_batch(result)
    op = krylov.hvp_operator(problem.loss, problem.params, feed)
    grad_fn = sg.compile(sg.grad(problem.loss, problem.params), problem.inputs)
    v = np.random.default_rng(seed).standard_normal(op.shape[0])
    symbolic = op.matvec(v)
    base = krylov.get_flat(problem.params)

    def grads_at(sign):
        krylov.set_flat(problem.params, base + sign * eps * v)
        return krylov.flatten(grad_fn(*feed.values()))

    numeric = (grads_at(+1) - grads_at(-1)) / (2 * eps)
    krylov.set_flat(problem.params, base)
    rel = float(np.linalg.norm(symbolic - numeric) / np.linalg.norm(numeric))
    return {"relative_error": rel, "norm": float(np.linalg.norm(symbolic)), "n": symbolic.size}


def top_hessian_eigenvalues(result: dict, k: int = 3) -> dict:
    """The largest Hessian eigenvalues of the digits loss by Lanczos on compiled HVPs."""
    problem = result["problem"]
    op = krylov.hvp_operator(problem.loss, problem.params, _curvature_batch(result))
    values = krylov.top_eigenvalues(op, k, tol=1e-8)
    return {"values": values, "products": op.n_products, "n": op.shape[0]}


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
        f"    training step (one compiled call) built in "
        f"{1e3 * digits['compile_s']:.1f} ms; loss per epoch "
        f"{digits['history'][0]:.3f} -> {digits['history'][-1]:.4f}"
    )
    print(f"    held-out accuracy {100 * digits['accuracy']:.2f}%")

    print("(c) Hessian-vector product of the digits loss (forward-over-reverse), 256 examples")
    hv = hvp_check(digits)
    print(
        f"    |Hv| = {hv['norm']:.4g} over {hv['n']} parameters; relative error vs central "
        f"difference of gradients: {hv['relative_error']:.2e}"
    )
    print("(d) Largest Hessian eigenvalues of the digits loss, Lanczos on compiled HVPs")
    top = top_hessian_eigenvalues(digits)
    values = ", ".join(f"{v:.4g}" for v in top["values"])
    print(f"    {values}  ({top['products']} HVPs for a {top['n']} x {top['n']} Hessian)")
    print(f"done in {time.perf_counter() - t_start:.1f} s")
    return {"xor": xor, "digits": digits, "hvp": hv, "eigenvalues": top}
