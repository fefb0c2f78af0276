"""The op registry: one `Op` per op name, holding its rules.

An op has, at most:
- ``infer(arg_types, attrs) -> (shape, dtype)``: shape/dtype rule; raises ShapeError.
- ``impl(arrays, attrs) -> ndarray``: the reference NumPy implementation (sg.evaluate).
- ``emit(ctx, argnames, attrs) -> str``: the NumPy source expression for one application.
- ``emit_into(ctx, out, argnames, attrs) -> str``: optional, a statement computing it into
  the preallocated array ``out``.
- ``vjp(node, cotangent, needed) -> [Tensor | None per argument]``, built from graph ops.
- ``jvp(node, tangents) -> Tensor | None``, built from graph ops.
Attributes listed in ``shape_attrs`` may hold symbolic dims; the evaluator and the compiler
resolve them before calling ``impl``/``emit``. ``attrs``, where given, names every attribute
the op takes and its kind (a key of ``ATTR_KINDS``): ``Graph.apply`` refuses others, so an
emitter that writes an attribute into source only ever meets the kinds it expects.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..errors import GraphError, show, user_site


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_dim(v, least: int = 0) -> bool:
    return (_is_int(v) and v >= least) or (isinstance(v, str) and v != "")


def _is_numeric_dtype(v) -> bool:
    try:
        return isinstance(v, str) and np.dtype(v).kind in "biufc"
    except TypeError:
        return False


def _is_index(v) -> bool:
    """A getitem index: entries such as ("int", 2), ("slice", None, "n", 1), ("newaxis",)."""
    return isinstance(v, tuple) and all(
        isinstance(e, tuple)
        and e
        and isinstance(e[0], str)
        and all(x is None or _is_int(x) or isinstance(x, str) for x in e[1:])
        for e in v
    )


# what each kind of attribute may hold, checked after ``graph._plain`` made it built-in data
ATTR_KINDS: dict[str, Callable[[object], bool]] = {
    "int": _is_int,
    "ints": lambda v: isinstance(v, tuple) and all(map(_is_int, v)),
    "bool": lambda v: isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
    "shape": lambda v: isinstance(v, tuple) and all(_is_dim(d) for d in v),
    "newshape": lambda v: isinstance(v, tuple) and all(_is_dim(d, -1) for d in v),
    "dtype": _is_numeric_dtype,
    "index": _is_index,
    "expr": lambda v: isinstance(v, sp.Expr),
}

VjpRule = Callable[..., object]


@dataclass
class Op:
    name: str
    infer: Callable
    impl: Callable
    emit: Callable
    arity: tuple[int, int | None] = (1, 1)  # (min, max); max None = any number
    vjp: Callable | None = None
    jvp: Callable | None = None
    differentiable: bool = True
    shape_attrs: tuple[str, ...] = ()
    is_view: bool = False  # the emitted NumPy may return a view of its first argument
    # emit_into(ctx, out, argnames, attrs) -> a statement writing the value into the existing
    # array ``out`` (same shape and dtype); lets the compiler reuse buffers across calls
    emit_into: Callable | None = None
    doc: str = ""
    extra: dict = field(default_factory=dict)
    attrs: dict[str, str] | None = None  # attribute name -> kind in ATTR_KINDS; None: unchecked

    def check_attrs(self, attrs: dict, describe: Callable[[], str]) -> None:
        if self.attrs is None:  # a user's op with its own emitter: it checks its attributes
            return
        for key, value in attrs.items():
            kind = self.attrs.get(key) if isinstance(key, str) else None
            if kind is None:
                known = ", ".join(sorted(self.attrs)) or "none"
                raise GraphError(
                    f"{self.name} has no attribute {key!r} (it takes: {known})\n  in {describe()}"
                )
            if not ATTR_KINDS[kind](value):
                raise GraphError(
                    f"{self.name}: attribute {key!r} must be {_KIND_TEXT[kind]}, got "
                    f"{show(value)}\n  in {describe()}"
                )

    def check_arity(self, n: int, describe: Callable[[], str]) -> None:
        lo, hi = self.arity
        if n < lo or (hi is not None and n > hi):
            want = str(lo) if lo == hi else f"{lo}..{'' if hi is None else hi}"
            raise GraphError(f"{self.name} takes {want} arguments, got {n}\n  in {describe()}")


_KIND_TEXT = {
    "int": "an int",
    "ints": "a tuple of ints",
    "bool": "True or False",
    "number": "a finite number",
    "shape": "a tuple of dims (ints >= 0 or names)",
    "newshape": "a tuple of dims (ints >= -1 or names)",
    "dtype": "the name of a numeric dtype",
    "index": "a getitem index (a tuple of tagged entries)",
    "expr": "a SymPy expression",
}
assert set(_KIND_TEXT) == set(ATTR_KINDS)

OPS: dict[str, Op] = {}


def register(op: Op) -> Op:
    """Add ``op`` to the registry under its name (taken names are refused); returns it."""
    if op.name in OPS:
        raise GraphError(f"op {op.name!r} is already registered")
    OPS[op.name] = op
    return op


def get_op(name: str) -> Op:
    """The registered Op called ``name`` (GraphError if there is none)."""
    try:
        return OPS[name]
    except (KeyError, TypeError):
        raise GraphError(f"unknown op {name!r} at {user_site()}") from None


def defvjp(name: str, *rules: VjpRule | None) -> None:
    """Give op ``name`` one reverse rule per argument, autograd style.

    Each rule is ``rule(g, ans, *args, **attrs) -> Tensor | None``: the contribution of
    cotangent ``g`` (of the output ``ans``) to that argument; None means zero.
    """

    def vjp(node, g, needed):
        args = node.args
        out = []
        for i, rule in enumerate(rules):
            out.append(rule(g, node, *args, **node.attrs) if needed[i] and rule else None)
        out += [None] * (len(args) - len(rules))
        return out

    OPS[name].vjp = vjp


def defjvp(name: str, *rules: VjpRule | None) -> None:
    """Give op ``name`` one forward rule per argument: ``rule(t, ans, *args, **attrs)``.

    The tangent of the output is the sum of the rules applied to the arguments' tangents
    (rules for arguments whose tangent is zero are skipped).
    """

    def jvp(node, tangents):
        args = node.args
        total = None
        for t, rule in zip(tangents, rules):
            if t is None or rule is None:
                continue
            c = rule(t, node, *args, **node.attrs)
            if c is not None:
                total = c if total is None else total + c
        return total

    OPS[name].jvp = jvp
