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
resolve them before calling ``impl``/``emit``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import GraphError, user_site

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

    def check_arity(self, n: int, describe: Callable[[], str]) -> None:
        lo, hi = self.arity
        if n < lo or (hi is not None and n > hi):
            want = str(lo) if lo == hi else f"{lo}..{'' if hi is None else hi}"
            raise GraphError(f"{self.name} takes {want} arguments, got {n}\n  in {describe()}")


OPS: dict[str, Op] = {}


def register(op: Op) -> Op:
    if op.name in OPS:
        raise GraphError(f"op {op.name!r} is already registered")
    OPS[op.name] = op
    return op


def get_op(name: str) -> Op:
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
