"""Dense layers, activations by name, and ``mlp``: a stack of Dense layers on one graph.

Parameters are graph variables, so a compiled training step updates them in place and
``layer.W.value`` is always the live array.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .. import ops
from ..errors import GraphError, InputError, format_shape, user_site
from ..graph import Graph, Tensor
from .init import Initializer, get_initializer

Activation = Callable[[Tensor], Tensor]


def _identity(x: Tensor) -> Tensor:
    return x


ACTIVATIONS: dict[str, Activation] = {
    "linear": _identity,
    "relu": ops.relu,
    "leaky_relu": ops.leaky_relu,
    "abs": ops.abs,
    "tanh": ops.tanh,
    "sigmoid": ops.sigmoid,
    "softplus": ops.softplus,
    "hard_tanh": ops.hard_tanh,
}

# rectifiers keep half the variance (He init); saturating units want Glorot's balance
DEFAULT_INIT: dict[str, str] = {
    "relu": "he",
    "leaky_relu": "he",
    "abs": "he",
    "linear": "glorot",
    "tanh": "glorot",
    "sigmoid": "glorot",
    "softplus": "glorot",
    "hard_tanh": "glorot",
}


def get_activation(activation: str | Activation | None) -> Activation:
    """An activation by name (see ``ACTIVATIONS``), a callable on Tensors, or None (linear)."""
    if activation is None:
        return _identity
    if callable(activation):
        return activation
    try:
        return ACTIVATIONS[activation]
    except KeyError:
        known = sorted(ACTIVATIONS)
        raise GraphError(
            f"unknown activation {activation!r}; known: {known} ({user_site()})"
        ) from None


class Dense:
    """``activation(x @ W + b)`` with ``W`` (n_in, n_out) and ``b`` (n_out,) graph variables."""

    def __init__(
        self,
        graph: Graph,
        n_in: int,
        n_out: int,
        activation: str | Activation | None = "linear",
        *,
        init: str | Initializer | None = None,
        rng: np.random.Generator | None = None,
        name: str = "dense",
        dtype: str = "float64",
    ) -> None:
        if np.dtype(dtype).kind != "f":  # an integer weight has no gradient to follow
            raise GraphError(
                f"{name}: parameters need a float dtype, got {dtype!r} ({user_site()})"
            )
        rng = np.random.default_rng(0) if rng is None else rng
        activation = "linear" if activation is None else activation  # as get_activation reads it
        if init is None:
            init = DEFAULT_INIT.get(activation, "glorot") if isinstance(activation, str) else "he"
        self.activation = get_activation(activation)
        self.activation_name = activation if isinstance(activation, str) else "custom"
        self.W = graph.variable(f"{name}.W", get_initializer(init)(rng, (n_in, n_out), dtype))
        self.b = graph.variable(f"{name}.b", np.zeros(n_out, dtype))

    @property
    def params(self) -> list[Tensor]:
        return [self.W, self.b]

    def __call__(self, x: Tensor) -> Tensor:
        return self.activation(x @ self.W + self.b)


class MLP:
    """A feedforward network: Dense layers applied in order. Call it on an input Tensor of
    shape (batch, sizes[0]) to get the outputs (batch, sizes[-1]) as graph nodes."""

    def __init__(self, graph: Graph, layers: Sequence[Dense], sizes: Sequence[int], dtype: str):
        self.graph = graph
        self.layers = list(layers)
        self.sizes = tuple(sizes)
        self.dtype = dtype

    def __call__(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    @property
    def params(self) -> list[Tensor]:
        """The variables W0, b0, W1, b1, ... in layer order."""
        return [p for layer in self.layers for p in layer.params]

    @property
    def n_params(self) -> int:
        return int(sum(np.prod(p.shape) for p in self.params))

    def get_values(self) -> list[np.ndarray]:
        """A copy of every parameter's current value."""
        return [p.value.copy() for p in self.params]

    def set_values(self, values: Sequence[np.ndarray]) -> None:
        """Write ``values`` (one array per parameter, of its shape) into the parameters in
        place (compiled steps see them). Everything is checked before anything is written."""
        values = list(values)
        if len(values) != len(self.params):
            raise InputError(
                f"set_values needs {len(self.params)} arrays, one per parameter, got "
                f"{len(values)} ({user_site()})"
            )
        for p, v in zip(self.params, values):
            if np.shape(v) != p.value.shape:  # no broadcasting: a scalar would fill a matrix
                raise InputError(
                    f"set_values: {p.graph.describe(p.node)} needs shape "
                    f"{format_shape(p.value.shape)}, got {format_shape(np.shape(v))} "
                    f"({user_site()})"
                )
        for p, v in zip(self.params, values):
            p.value[...] = v

    def __repr__(self) -> str:
        acts = ", ".join(layer.activation_name for layer in self.layers)
        return f"MLP(sizes={self.sizes}, activations=[{acts}], params={self.n_params})"


def mlp(
    sizes: Sequence[int],
    activation: str | Activation = "relu",
    *,
    output_activation: str | Activation | None = "linear",
    init: str | Initializer | None = None,
    seed: int | np.random.Generator = 0,
    graph: Graph | None = None,
    dtype: str = "float64",
    name: str = "layer",
) -> MLP:
    """A multilayer perceptron ``sizes[0] -> ... -> sizes[-1]``.

    Hidden layers use ``activation``, the last one ``output_activation`` (linear: logits for
    ``cross_entropy``). Weights come from ``init`` (default: Glorot for the named saturating
    activations such as tanh and sigmoid, He for rectifiers and for callables) drawn from
    ``numpy.random.default_rng(seed)``; biases start at zero. Variables are named
    ``{name}{i}.W`` and ``{name}{i}.b`` in ``graph`` (a new Graph by default).
    """
    if len(sizes) < 2 or not all(
        isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0 for s in sizes
    ):
        raise GraphError(
            f"mlp needs positive int sizes, an input and an output at least, got {sizes!r} "
            f"({user_site()})"
        )
    get_activation(activation)  # a misspelt name fails here even for a single layer
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    graph = Graph() if graph is None else graph
    last = len(sizes) - 2
    layers = [
        Dense(
            graph,
            n_in,
            n_out,
            output_activation if i == last else activation,
            init=init,
            rng=rng,
            name=f"{name}{i}",
            dtype=dtype,
        )
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]))
    ]
    return MLP(graph, layers, sizes, dtype)
