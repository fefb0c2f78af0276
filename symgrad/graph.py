"""The expression graph (a networkx.MultiDiGraph) and the Tensor handle users build it with.

One node is one value. Node attributes: ``op``, ``attrs``, ``shape``, ``dtype``, ``where``
(file:line of the user code that made it) and optionally ``name``. Edges run argument ->
consumer and carry ``pos``. Node ids are ints handed out in creation order, so increasing id
order is always a topological order. Building an ``(op, attrs, args)`` that already exists
returns the existing node (hash-consing).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import networkx as nx
import numpy as np
import sympy as sp

from .errors import (
    GraphError,
    InputError,
    ShapeError,
    SymgradError,
    format_shape,
    show,
    user_site,
)
from .storage import VariableStorage

Dim = int | str
Shape = tuple[Dim, ...]

# Ops whose nodes are leaves: they never take arguments and are never merged with each other.
LEAF_OPS = ("input", "variable")


class ArgType(NamedTuple):
    """What shape inference sees of one argument."""

    shape: Shape
    dtype: str


def freeze(value: Any) -> Any:
    """A hashable, comparable stand-in for an attribute value (for hash-consing)."""
    if isinstance(value, dict):
        return tuple(sorted((k, freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__,) + tuple(freeze(v) for v in value)
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, slice):
        return ("slice", value.start, value.stop, value.step)
    if isinstance(value, np.generic):
        return ("scalar", value.dtype.str, value.item())
    if isinstance(value, float) and value != value:
        return ("nan",)
    if isinstance(value, (bool, float)):  # True == 1 == 1.0, but they are different attributes
        return (type(value).__name__, value)
    return value


def _plain(value: Any, key: str) -> Any:
    """``value`` as exact built-in data (None, bool, int, float, str, tuples of them, SymPy
    expressions; lists become tuples, NumPy scalars and dtypes numbers and names), else
    GraphError. Generated source shows attributes by repr, which a subclass or any other
    object could make any code at all."""
    kind = type(value)
    if kind is int:
        if not -_MAX_DIM - 1 <= value <= _MAX_DIM:
            raise GraphError(
                f"attribute {key!r} holds {show(value)}, beyond int64 (axes, sizes and indices "
                f"all fit in it) ({user_site()})"
            )
        return value
    if value is None or kind is bool or kind is float or kind is str:
        return value
    if kind is tuple:
        return tuple([_plain(v, key) for v in value])
    if isinstance(value, np.generic):  # through a plain array: a subclass's item() is not run
        return _plain(np.asarray(value).item(), key)
    if isinstance(value, str):  # the base class's own methods copy a subclass's value out
        return str.__str__(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _plain(int.__int__(value), key)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, (tuple, list)):
        return tuple(_plain(v, key) for v in value)
    if isinstance(value, sp.Basic):  # an elementwise expression: translated, never printed
        return value
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return np.dtype(value).name
    raise GraphError(
        f"attribute {key!r} is a {type(value).__name__}; attributes are plain data: None, "
        f"bool, int, float, str, tuples of them and SymPy expressions ({user_site()})"
    )


def normalize_shape(shape: Any) -> Shape:
    if isinstance(shape, (int, np.integer, str)):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise ShapeError(
            f"a shape is a tuple of ints >= 0 and names, got {show(shape)}; at {user_site()}"
        )
    out = []
    for d in shape:
        if isinstance(d, (int, np.integer)) and not isinstance(d, bool) and 0 <= d <= _MAX_DIM:
            out.append(int(d))
        elif isinstance(d, str) and d:
            out.append(str.__str__(d))
        else:
            raise ShapeError(
                f"bad dimension {show(d)} in shape {show(shape)}: use an int in "
                f"[0, 2**63) or a name; at {user_site()}"
            )
    return tuple(out)


_MAX_DIM = int(np.iinfo(np.int64).max)  # NumPy's sizes are int64
_CHECKED_ATTRS: set = set()  # (op, frozen attributes) that passed Op.check_attrs


class Graph:
    """An expression graph. ``g.nx`` is the networkx.MultiDiGraph that holds it."""

    def __init__(self) -> None:
        self.nx = nx.MultiDiGraph()
        self._cons: dict[Any, int] = {}
        self._constant_keys: dict[int, Any] = {}  # constant node -> its key (freeze copies)
        self._next_id = 0
        self._names: dict[str, int] = {}
        self._storage = VariableStorage()

    # ---- leaves -----------------------------------------------------------------------
    def input(self, name: str, shape: Any = (), dtype: str = "float64") -> Tensor:
        """A value supplied at call time. Dims are ints or symbolic names such as "batch"."""
        dtype = numeric_dtype(_dtype(dtype), f"input {name!r}")
        return self._leaf("input", name, normalize_shape(shape), dtype, {})

    def variable(self, name: str, value: Any, dtype: str | None = None) -> Tensor:
        """A value held by the graph between calls and updatable by a compiled Function."""
        value = _array(value, dtype, f"variable {name!r}", copy=False)
        value = self._storage.place(value)  # a copy, next to the variable made before it
        return self._leaf("variable", name, value.shape, value.dtype.name, {"value": value})

    def constant(self, value: Any, dtype: str | None = None, name: str | None = None) -> Tensor:
        """A fixed value. Equal constants are one node."""
        if name is not None and (not isinstance(name, str) or not name):
            raise GraphError(
                f"constant: a name is a non-empty string or None, got {show(name)} at {user_site()}"
            )
        value = _array(value, dtype, "constant" if name is None else f"constant {name!r}")
        value.flags.writeable = False
        attrs = {"value": value}
        key = ("constant", freeze(attrs))
        hit = self._cons.get(key)
        if hit is not None:
            return Tensor(self, hit)
        n = self._add_node("constant", attrs, value.shape, value.dtype.name, (), name)
        self._cons[key] = n
        self._constant_keys[n] = key
        return Tensor(self, n)

    def _leaf(self, op: str, name: str, shape: Shape, dtype: str, attrs: dict) -> Tensor:
        if not isinstance(name, str) or not name:
            raise GraphError(f"{op} needs a non-empty string name, got {name!r} at {user_site()}")
        if name in self._names:
            other = self.nx.nodes[self._names[name]]
            raise GraphError(
                f"{op} {name!r}: the name is taken by node {self._names[name]} "
                f"({other['op']}, made at {other['where']}); at {user_site()}"
            )
        n = self._add_node(op, attrs, shape, dtype, (), name)
        self._names[name] = n
        return Tensor(self, n)

    # ---- applying ops -----------------------------------------------------------------
    def apply(self, op: str, args: Sequence[Tensor], attrs: dict | None = None) -> Tensor:
        """The node ``op(*args)`` with static parameters ``attrs``; an existing one if equal."""
        from .ops.registry import OPS

        if not isinstance(attrs, (dict, type(None))) or not isinstance(args, (list, tuple)):
            raise GraphError(
                f"{op!r}: apply takes a list of Tensors and a dict of attributes, got "
                f"{type(args).__name__} and {type(attrs).__name__} ({user_site()})"
            )
        if isinstance(op, str):
            op = str.__str__(op)  # a subclass's __format__ could write the source's comments
        attrs = {_plain(k, "name"): _plain(v, k) for k, v in (attrs or {}).items()}
        for a in args:
            if not isinstance(a, Tensor) or a.graph is not self:
                raise GraphError(
                    f"{op}: argument {a!r} is not a Tensor of this graph; at {user_site()}"
                )
        arg_ids = tuple(a.node for a in args)
        spec = OPS.get(op) if isinstance(op, str) else None
        if spec is None or spec.infer is None:  # leaves are made by input/variable/constant
            what = "unknown op" if spec is None else "leaf op"
            raise GraphError(f"{what} {op!r} in {self._describe_call(op, arg_ids)}")
        key = (op, freeze(attrs), arg_ids)
        hit = self._cons.get(key)
        if hit is not None:
            return Tensor(self, hit)
        types = [self.type_of(i) for i in arg_ids]
        spec.check_arity(len(types), lambda: self._describe_call(op, arg_ids))
        if (op, key[1]) not in _CHECKED_ATTRS:  # the same attributes recur on every layer
            spec.check_attrs(attrs, lambda: self._describe_call(op, arg_ids))
            if len(_CHECKED_ATTRS) > 1 << 16:
                _CHECKED_ATTRS.clear()
            _CHECKED_ATTRS.add((op, key[1]))
        try:
            shape, dtype = spec.infer(types, attrs)
        except SymgradError as e:
            raise type(e)(f"{e}\n  in {self._describe_call(op, arg_ids)}") from None
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as e:
            # attributes missing (a malformed node) or of the wrong kind, or a dtype NumPy has
            # no such op for
            raise (GraphError if isinstance(e, KeyError) else ShapeError)(
                f"{op} with attributes {show(attrs)} does not apply to these arguments "
                f"({type(e).__name__}: {e})\n  in {self._describe_call(op, arg_ids)}"
            ) from None
        n = self._add_node(op, attrs, tuple(shape), _dtype_name(dtype), arg_ids, None)
        self._cons[key] = n
        return Tensor(self, n)

    def _add_node(self, op, attrs, shape, dtype, arg_ids, name) -> int:
        n = self._next_id
        self._next_id += 1
        data = {"op": op, "attrs": attrs, "shape": shape, "dtype": dtype, "where": user_site()}
        if name is not None:
            data["name"] = name
        self.nx.add_node(n, **data)
        for pos, a in enumerate(arg_ids):
            self.nx.add_edge(a, n, pos=pos)
        return n

    def _describe_call(self, op: str, arg_ids: Sequence[int]) -> str:
        parts = [self.describe(a) for a in arg_ids]
        return f"{op}({', '.join(parts)}) at {user_site()}"

    # ---- reading ----------------------------------------------------------------------
    def args(self, n: int) -> list[int]:
        """Argument node ids of node ``n``, in position order."""
        # straight from the adjacency dicts: every pass over the graph calls this per node
        edges = [(d["pos"], a) for a, keyed in self.nx._pred[n].items() for d in keyed.values()]
        edges.sort()
        return [a for _, a in edges]

    def type_of(self, n: int) -> ArgType:
        d = self.nx._node[n]  # the attribute dict itself, without building a view
        return ArgType(d["shape"], d["dtype"])

    def tensor(self, n: int) -> Tensor:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n not in self.nx:
            raise GraphError(f"no node {n!r} in this graph of {len(self)} nodes ({user_site()})")
        return Tensor(self, n)

    def __getitem__(self, name: str) -> Tensor:
        """The input or variable called ``name``."""
        if not isinstance(name, str) or name not in self._names:
            known = ", ".join(repr(k) for k in list(self._names)[:10]) or "none"
            raise GraphError(
                f"no input or variable named {show(name)} (known: {known}) at {user_site()}"
            )
        return Tensor(self, self._names[name])

    def describe(self, n: int) -> str:
        """One-line description of a node for error messages."""
        d = self.nx.nodes[n]
        label = f" {d['name']!r}" if "name" in d else ""
        return f"%{n}{label}:{d['op']}{format_shape(d['shape'])}{d['dtype']} (made at {d['where']})"

    def __len__(self) -> int:
        return self.nx.number_of_nodes()

    # ---- transactions -----------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Undo every node added inside the block if it raises, so errors lose nothing."""
        start = self._next_id
        try:
            yield
        except BaseException:
            self.rollback(start)
            raise

    def rollback(self, start: int) -> None:
        """Remove every node with id >= start."""
        doomed = [n for n in self.nx.nodes if n >= start]
        self.nx.remove_nodes_from(doomed)
        self._cons = {k: v for k, v in self._cons.items() if v < start}
        self._constant_keys = {n: k for n, k in self._constant_keys.items() if n < start}
        self._names = {k: v for k, v in self._names.items() if v < start}
        self._next_id = start

    # ---- networkx import / export -----------------------------------------------------
    def to_networkx(self) -> nx.MultiDiGraph:
        """A copy of the graph as a networkx.MultiDiGraph (same node ids and attributes).

        Editing the copy never changes this graph: ``attrs`` dicts are copied and so are the
        variables' arrays (a snapshot of their current values).
        """
        G = self.nx.copy()
        for d in G.nodes.values():
            d["attrs"] = dict(d["attrs"])
            if d["op"] == "variable":
                d["attrs"]["value"] = d["attrs"]["value"].copy()
        return G

    @classmethod
    def from_networkx(cls, G: nx.MultiDiGraph) -> Graph:
        """Validate a graph built directly in networkx and return it as a Graph.

        Nodes need ``op`` (and ``attrs`` where the op has parameters); ``input`` nodes need
        ``name``, ``shape`` and ``dtype``; edges need ``pos``. Shapes given on other nodes are
        checked against inference. ``graph.imported[original_id]`` maps to the new Tensor.
        """
        from .imports import import_networkx

        return import_networkx(cls(), G)


class Tensor:
    """An immutable handle on one node of a Graph, with NumPy-like operators."""

    __slots__ = ("graph", "node")
    __array_priority__ = 1000  # so ndarray + Tensor defers to Tensor.__radd__

    def __init__(self, graph: Graph, node: int) -> None:
        self.graph = graph
        self.node = node

    # identity, not elementwise comparison: Tensors are dict keys (feeds, known_grads)
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tensor) and other.graph is self.graph and other.node == self.node

    def __hash__(self) -> int:
        return hash((id(self.graph), self.node))

    @property
    def _data(self) -> dict:
        return self.graph.nx._node[self.node]

    @property
    def shape(self) -> Shape:
        """The shape: a tuple of ints and symbolic dim names."""
        return self._data["shape"]

    @property
    def dtype(self) -> str:
        """The NumPy dtype name, such as "float64"."""
        return self._data["dtype"]

    @property
    def ndim(self) -> int:
        """The number of axes."""
        return len(self.shape)

    @property
    def op(self) -> str:
        """The name of the op that computes this node."""
        return self._data["op"]

    @property
    def attrs(self) -> dict:
        """The op's static parameters (axis, constant value, expression, ...)."""
        return self._data["attrs"]

    @property
    def name(self) -> str | None:
        """The user's label of an input, variable or named constant; else None."""
        return self._data.get("name")

    @property
    def args(self) -> list[Tensor]:
        """The argument nodes, in position order."""
        return [Tensor(self.graph, a) for a in self.graph.args(self.node)]

    @property
    def value(self) -> np.ndarray:
        """The current array of a constant or variable."""
        if self.op not in ("constant", "variable"):
            raise SymgradError(f"{self.graph.describe(self.node)} holds no value; evaluate it")
        return self.attrs["value"]

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"Tensor(%{self.node}{label}: {self.op}, shape={self.shape}, dtype={self.dtype})"

    def __bool__(self) -> bool:
        raise SymgradError(
            f"the truth value of symbolic {self!r} is unknown until it is evaluated; "
            f"use sg.where for data-dependent choices ({user_site()})"
        )

    def __array__(self, dtype=None, copy=None):
        # NumPy would otherwise read a Tensor as a sequence of its rows, building a node each
        raise InputError(
            f"{self!r} is a symbolic Tensor, not an array: pass its value where an array is "
            f"expected (compile it, or sg.evaluate it) ({user_site()})"
        )

    def __iter__(self) -> Iterator[Tensor]:
        """The slices along the first axis (which must be concrete)."""
        for i in range(len(self)):
            yield self[i]

    def __len__(self) -> int:
        if not self.shape:
            raise ShapeError(f"len() of a 0-d tensor {self!r} ({user_site()})")
        if isinstance(self.shape[0], str):
            raise ShapeError(
                f"len() of {self!r}: its first dim {self.shape[0]!r} is symbolic ({user_site()})"
            )
        return self.shape[0]

    # ---- operators (definitions live in symgrad.ops) ---------------------------------
    def _op(self, name: str, *args) -> Tensor:
        return getattr(_ops(), name)(*args)

    def __add__(self, o):
        return self._op("add", self, o)

    def __radd__(self, o):
        return self._op("add", o, self)

    def __sub__(self, o):
        return self._op("sub", self, o)

    def __rsub__(self, o):
        return self._op("sub", o, self)

    def __mul__(self, o):
        return self._op("mul", self, o)

    def __rmul__(self, o):
        return self._op("mul", o, self)

    def __truediv__(self, o):
        return self._op("div", self, o)

    def __rtruediv__(self, o):
        return self._op("div", o, self)

    def __pow__(self, o):
        return self._op("pow", self, o)

    def __rpow__(self, o):
        return self._op("pow", o, self)

    def __matmul__(self, o):
        return self._op("matmul", self, o)

    def __rmatmul__(self, o):
        return self._op("matmul", o, self)

    def __neg__(self):
        return self._op("neg", self)

    def __pos__(self):
        return self

    def __abs__(self):
        return self._op("abs", self)

    def __lt__(self, o):
        return self._op("less", self, o)

    def __le__(self, o):
        return self._op("less_equal", self, o)

    def __gt__(self, o):
        return self._op("greater", self, o)

    def __ge__(self, o):
        return self._op("greater_equal", self, o)

    def __getitem__(self, index):
        return self._op("getitem", self, index)

    @property
    def T(self) -> Tensor:
        """The transpose (axes reversed)."""
        return self._op("transpose", self)

    def sum(self, axis=None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (all axes by default), as ndarray.sum."""
        return self._op("sum", self, axis, keepdims)

    def mean(self, axis=None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis`` (all axes by default), as ndarray.mean."""
        return self._op("mean", self, axis, keepdims)

    def max(self, axis=None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis`` (all axes by default), as ndarray.max."""
        return self._op("max", self, axis, keepdims)

    def min(self, axis=None, keepdims: bool = False) -> Tensor:
        """Minimum over ``axis`` (all axes by default), as ndarray.min."""
        return self._op("min", self, axis, keepdims)

    def reshape(self, *shape) -> Tensor:
        """The same values in ``shape`` (symbolic dims allowed), as ndarray.reshape."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return self._op("reshape", self, shape)

    def transpose(self, *axes) -> Tensor:
        """Axes permuted (reversed by default), as ndarray.transpose."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return self._op("transpose", self, axes or None)

    def astype(self, dtype: str) -> Tensor:
        """The values converted to ``dtype``, as ndarray.astype."""
        return self._op("cast", self, dtype)


def _arg_text(a, graph: Graph) -> str:
    """An operator's argument, shortly, for an error message."""
    if isinstance(a, Tensor) and a.graph is graph:
        return graph.describe(a.node)
    if isinstance(a, np.ndarray):
        return f"array{format_shape(a.shape)}{a.dtype}"
    return show(a, limit=60)


def _ops():
    from . import ops

    return ops


def _graphs_of(args, out: list | None = None) -> list[Graph]:
    """The graphs of the Tensors among ``args`` (in lists too), first seen first."""
    out = [] if out is None else out
    for a in args:
        if isinstance(a, Tensor):
            if not any(a.graph is g for g in out):
                out.append(a.graph)
        elif isinstance(a, (list, tuple)):
            _graphs_of(a, out)
    return out


def tensor_list(value: Any, what: str) -> tuple[list, bool]:
    """(items, was_single) of a Tensor or a list or tuple of them; anything else (a string, a
    number, an array) is refused naming ``what``."""
    if isinstance(value, Tensor):
        return [value], True
    if isinstance(value, (list, tuple)):
        return list(value), False
    raise GraphError(
        f"{what} must be a Tensor or a list of Tensors, got {type(value).__name__} ({user_site()})"
    )


def mapping(value: Any, what: str, error: type = GraphError) -> dict:
    """``value``, a dict or other mapping, as a dict (None as an empty one)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise error(f"{what} must be a dict, got {type(value).__name__} ({user_site()})")
    return dict(value)


def atomic(fn: Callable) -> Callable:
    """Make the op function ``fn`` all-or-nothing: if it raises, the nodes it built are
    removed again, and a symgrad error names the call, its arguments' shapes and file:line."""

    @functools.wraps(fn)
    def op(*args, **kwargs):
        graphs = _graphs_of(args)
        if not graphs:  # every op reads a Tensor: a Python value alone names no graph
            got = ", ".join(type(a).__name__ for a in args) or "no arguments"
            raise GraphError(f"{fn.__name__} needs a symgrad Tensor, got {got} ({user_site()})")
        graph = graphs[0]
        if len(graphs) > 1:  # before the op lifts or reshapes an argument in either graph
            shown = ", ".join(
                _arg_text(a, a.graph) if isinstance(a, Tensor) else "..." for a in args
            )
            raise GraphError(
                f"{fn.__name__}: the arguments are Tensors of different graphs\n  in "
                f"{fn.__name__}({shown}) at {user_site()}"
            )
        start = graph._next_id
        try:
            return fn(*args, **kwargs)
        except SymgradError as e:
            graph.rollback(start)
            site = user_site()
            if site in str(e):
                raise
            shown = ", ".join(_arg_text(a, graph) for a in args)
            raise type(e)(f"{e}\n  in {fn.__name__}({shown}) at {site}") from None
        except (TypeError, ValueError, AttributeError, IndexError, KeyError) as e:
            # an argument of a kind the op cannot use (a list where a Tensor goes, a ragged
            # index): what Python or NumPy said, with the call
            graph.rollback(start)
            shown = ", ".join(_arg_text(a, graph) for a in args)
            raise GraphError(
                f"{fn.__name__} cannot use these arguments ({type(e).__name__}: {e})\n  in "
                f"{fn.__name__}({shown}) at {user_site()}"
            ) from e
        except BaseException:
            graph.rollback(start)
            raise

    return op


def _array(value: Any, dtype, what: str, copy: bool = True) -> np.ndarray:
    """A numeric array of ``value`` for a constant or variable (fresh unless ``copy`` is off:
    the caller copies it anyway)."""
    if isinstance(value, Tensor):
        raise GraphError(f"{what}: the value is a symbolic Tensor, not an array; at {user_site()}")
    try:
        value = np.array(value, dtype=dtype, copy=True) if copy else np.asarray(value, dtype)
    except InputError:  # Tensor.__array__: symbolic Tensors inside a list
        raise ShapeError(
            f"{what}: the value holds symbolic Tensors, which make no array of numbers (an "
            f"object array); at {user_site()}"
        ) from None
    except (TypeError, ValueError, OverflowError) as e:
        raise GraphError(f"{what}: cannot make an array of it ({e}); at {user_site()}") from None
    numeric_dtype(value.dtype, what)
    return value


def numeric_dtype(dtype, what: str) -> str:
    """The name of ``dtype``, which must be a number or bool type (what the ops compute on)."""
    dtype = _dtype(dtype)
    if dtype.kind not in "biufc":
        raise ShapeError(f"{what}: dtype {dtype} is not a number or bool type; at {user_site()}")
    return dtype.name


_DTYPE_NAMES: dict[str, str] = {}


def _dtype(dtype: Any) -> np.dtype:
    try:
        return np.dtype(dtype)
    except (TypeError, ValueError):  # np.dtype of a Tensor raises ValueError
        raise ShapeError(f"unknown dtype {dtype!r}; at {user_site()}") from None


def _dtype_name(dtype: Any) -> str:
    # np.dtype(...).name is slow enough to matter when every node asks: cache by string
    if isinstance(dtype, str) and dtype in _DTYPE_NAMES:
        return _DTYPE_NAMES[dtype]
    name = _dtype(dtype).name
    if isinstance(dtype, str):
        _DTYPE_NAMES[dtype] = name
    return name
