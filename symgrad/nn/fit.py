"""``fit``: minibatch training with validation, early stopping and a history for plots."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..compile.function import Function, compile
from ..errors import InputError, format_shape, user_site
from ..graph import Graph, Tensor
from ..validate import choice, count, generator, number, refuse
from .losses import Loss, accuracy, get_loss
from .optim import OPTIMIZERS, Momentum
from .problem import Problem, Step, fresh_name


class Model(Protocol):
    """What ``fit`` trains: a callable from an input Tensor to outputs, with variables."""

    graph: Graph

    @property
    def params(self) -> list[Tensor]: ...

    def __call__(self, x: Tensor) -> Tensor: ...


class StepMaker(Protocol):
    def make_step(self, problem: Problem) -> Step: ...


@dataclass
class History:
    """Per-epoch records of a ``fit`` run, ready to plot: one entry per epoch in every list,
    except ``val_loss`` (empty without validation data) and ``val_accuracy`` (empty too
    unless the loss takes class labels)."""

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)  # mean training batch loss
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    time: list[float] = field(default_factory=list)  # training seconds so far
    passes: list[int] = field(default_factory=list)  # gradient-equivalent passes so far
    best_epoch: int | None = None  # by validation loss, when there is validation data
    stopped: str = "epochs"  # why training ended: epochs, patience, target, passes, callback
    compile_time: float = 0.0  # seconds spent building and compiling the step
    problem: Problem | None = field(default=None, repr=False)
    step: Step | None = field(default=None, repr=False)  # the optimizer's step (its state)

    def plot(self, ax=None, x: str = "epoch", label: str | None = None):
        """Training (and validation) loss against ``x`` ("epoch", "time" or "passes")."""
        import matplotlib.pyplot as plt

        ax = plt.gca() if ax is None else ax
        xs = getattr(self, x)
        (line,) = ax.plot(xs, self.loss, label=label or "train")
        if self.val_loss:
            val = f"{label} val" if label else "validation"
            ax.plot(xs, self.val_loss, "--", color=line.get_color(), label=val)
        ax.set_xlabel({"time": "seconds", "passes": "gradient-equivalent passes"}.get(x, x))
        ax.set_ylabel("loss")
        return ax


def supervised_problem(model: Model, X: np.ndarray, loss: str | Loss) -> Problem:
    """Declare inputs for a batch of ``X`` and its targets and build ``loss(model(X), y)``."""
    loss = get_loss(loss)
    graph = model.graph
    dtype = getattr(model, "dtype", None) or model.params[0].dtype
    x_in = graph.input(fresh_name(graph, "X"), ("batch",) + tuple(X.shape[1:]), dtype)
    outputs = model(x_in)
    shape, y_dtype = loss.target_spec(outputs)
    y_in = graph.input(fresh_name(graph, "y"), shape, y_dtype)
    return Problem(loss(outputs, y_in), list(model.params), [x_in, y_in], outputs)


def batches(n: int, batch_size: int | None, rng: np.random.Generator) -> list[np.ndarray]:
    """Index arrays of one shuffled epoch in the fewest near-equal minibatches of at most
    ``batch_size`` rows (all rows if None): 63 rows by 32 give 32 + 31, and 100 by 30 give
    4 x 25 rather than a last batch of 10 whose gradient would be much noisier."""
    if batch_size is None or batch_size >= n:
        return [np.arange(n)]
    return np.array_split(rng.permutation(n), -(-n // batch_size))


def _progress(epochs: int, desc: str, quiet: bool):
    if quiet:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is optional
        return None
    return tqdm(total=epochs, desc=desc, leave=False)


def fit(
    model: Model,
    X: np.ndarray,
    y: np.ndarray,
    *,
    loss: str | Loss = "cross_entropy",
    optimizer: StepMaker | None = None,
    epochs: int = 20,
    batch_size: int | None = 32,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    patience: int | None = None,
    restore_best: bool = True,
    target_loss: float | None = None,
    max_passes: int | None = None,
    callback: Callable[[int, History], Any] | None = None,
    seed: int = 0,
    quiet: bool = False,
    desc: str = "fit",
) -> History:
    """Train ``model`` on (X, y) and return the History.

    Each minibatch is one call of the optimizer's compiled step (forward, backward and update;
    for ``krylov.HessianFree`` one truncated-Newton iteration). An epoch shuffles the rows
    (``seed``) into the fewest near-equal batches of at most ``batch_size`` rows;
    ``batch_size=None`` trains full-batch. ``optimizer`` is an optimizer object or a name
    from ``OPTIMIZERS`` with its default settings; None means ``Momentum(lr=0.05)``.
    Training stops after ``epochs``, after ``patience`` epochs without a better validation
    loss (restoring the best parameters if ``restore_best``), once the epoch's training loss
    is below ``target_loss``, once ``max_passes`` gradient-equivalent passes are spent, or
    when ``callback(epoch, history)`` returns True. ``quiet`` hides the progress bar.

    Every argument, and every class label, is checked before the first update.
    """
    loss = get_loss(loss)
    if optimizer is None:
        optimizer = Momentum(lr=0.05)
    elif isinstance(optimizer, str):
        choice("fit", "optimizer", optimizer, OPTIMIZERS)
        optimizer = OPTIMIZERS[optimizer]()
    elif not callable(getattr(optimizer, "make_step", None)):
        refuse(
            "fit",
            f"optimizer must be an optimizer (with make_step) or one of {sorted(OPTIMIZERS)}, "
            f"got {type(optimizer).__name__}",
        )
    count("fit", "epochs", epochs, least=0)
    count("fit", "patience", patience, optional=True)
    count("fit", "batch_size", batch_size, optional=True)
    count("fit", "max_passes", max_passes, optional=True)
    number("fit", "target_loss", target_loss, optional=True)
    rng = generator("fit", seed)
    if validation is not None and not (
        isinstance(validation, tuple | list) and len(validation) == 2
    ):
        refuse("fit", f"validation must be a pair (X, y), got {type(validation).__name__}")
    if patience is not None and validation is None:
        refuse("fit", "patience counts epochs without a better validation loss: give validation")
    with model.graph.transaction():  # a bad argument found while compiling leaves no nodes
        t0 = time.perf_counter()
        problem = supervised_problem(model, X, loss)
        step = optimizer.make_step(problem)
        compile_time = time.perf_counter() - t0
        try:
            Xd = np.asarray(X, dtype=problem.inputs[0].dtype)
        except (TypeError, ValueError):
            refuse("fit", f"X must hold numbers, got {type(X).__name__}")
        yd = loss.targets(y, problem.outputs)
        if len(Xd) != len(yd):
            raise InputError(
                f"fit: {len(Xd)} examples in X but {len(yd)} targets in y ({user_site()})"
            )
        check = _validator(problem, loss, validation) if validation is not None else None
    history = History(problem=problem, step=step, compile_time=compile_time)
    best, best_values, waited = np.inf, None, 0
    bar = _progress(epochs, desc, quiet)
    elapsed = 0.0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        losses = []
        for idx in batches(len(Xd), batch_size, rng):
            losses.append(step(Xd[idx], yd[idx]))
            if max_passes is not None and step.passes >= max_passes:
                history.stopped = "passes"
                break
        elapsed += time.perf_counter() - t0
        _record(history, epoch, float(np.mean(losses)), elapsed, step.passes)
        if check is not None:
            vl, va = check()
            history.val_loss.append(vl)
            if loss.labels:
                history.val_accuracy.append(va)
            if vl < best:
                best, history.best_epoch, waited = vl, epoch, 0
                best_values = [p.value.copy() for p in problem.params] if patience else None
            else:
                waited += 1
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{history.loss[-1]:.4g}")
        if history.stopped == "passes":
            break
        if target_loss is not None and history.loss[-1] < target_loss:
            history.stopped = "target"
            break
        if patience is not None and check is not None and waited >= patience:
            history.stopped = "patience"
            break
        if callback is not None and callback(epoch, history):
            history.stopped = "callback"
            break
    if bar is not None:
        bar.close()
    if history.stopped == "patience" and restore_best and best_values is not None:
        for p, v in zip(problem.params, best_values):
            p.value[...] = v
    return history


def _record(history: History, epoch: int, loss: float, elapsed: float, passes: int) -> None:
    history.epoch.append(epoch)
    history.loss.append(loss)
    history.time.append(elapsed)
    history.passes.append(passes)


def _validator(problem: Problem, loss: Loss, validation) -> Callable[[], tuple[float, float]]:
    """() -> (validation loss, accuracy or nan) at the current parameters."""
    fn = compile([problem.loss, problem.outputs], problem.inputs)
    try:
        Xv = np.asarray(validation[0], dtype=problem.inputs[0].dtype)
    except (TypeError, ValueError):
        refuse("fit", f"validation X must hold numbers, got {type(validation[0]).__name__}")
    yv = loss.targets(validation[1], problem.outputs)
    # checked now, not when the first epoch's updates are done
    row = tuple(problem.inputs[0].shape[1:])
    if Xv.ndim != len(row) + 1 or tuple(Xv.shape[1:]) != row or len(Xv) != len(yv):
        refuse(
            "fit",
            f"validation X of shape {format_shape(Xv.shape)} and {len(yv)} targets do not fit "
            f"the training rows of shape {format_shape(row)}",
        )

    def check():
        value, outputs = fn(Xv, yv)
        return float(value), accuracy(outputs, yv) if loss.labels else float("nan")

    return check


_PREDICTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def predict(model: Model, X: np.ndarray) -> np.ndarray:
    """The model's outputs on the rows of ``X`` at the current parameters (compiled once)."""
    dtype = getattr(model, "dtype", None) or model.params[0].dtype
    key = (tuple(np.shape(X)[1:]), dtype)
    cache: dict[tuple, Function] = _PREDICTORS.setdefault(model, {})
    if key not in cache:
        g = model.graph
        x_in = g.input(fresh_name(g, "X"), ("batch",) + key[0], dtype)
        cache[key] = compile(model(x_in), [x_in])
    return cache[key](np.asarray(X, dtype=dtype))
