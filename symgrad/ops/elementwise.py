"""The elementwise op family: every op is a SymPy expression over its scalar arguments.

A named op (``tanh``, ``mul``, ``leaky_relu`` ...) holds a builder ``(x0, x1, ..., **attrs) ->
expression``; the anonymous op ``expr`` holds the expression itself in ``attrs["expr"]``.
Derivatives come from ``sympy.diff`` and become ``expr`` nodes, so every order of every
elementwise op, user-defined ones included, needs no hand-written rule. Where a derivative is
cheaper on the op's own output (tanh' = 1 - y**2, sigmoid' = y sigmoid(-x), exp' = y) it is
written on the output. Translating expressions to NumPy is ``sympy_numpy``'s job.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable

import numpy as np
import sympy as sp

from ..errors import DifferentiationError, GraphError, ShapeError, show, user_site
from ..graph import Tensor, atomic
from .registry import OPS, Op, register
from .shapes import broadcast_shapes, is_float
from .sympy_numpy import (  # noqa: F401  (re-exported: the elementwise vocabulary)
    emit_expression,
    emit_into_expression,
    index_of,
    indicator,
    into_steps,
    kernel_template,
    logaddexp,
    parts,
    sigmoid,
    softplus,
    source_template,
    subexpressions,
    sym,
    syms,
    to_source,
    to_values,
)


# ---- derivatives ------------------------------------------------------------------------
@functools.lru_cache(maxsize=4096)
def derivative(expr: sp.Expr, i: int, nargs: int) -> sp.Expr:
    """d expr / d x_i over x_0..x_{nargs-1}; where cheaper, written with x_nargs = expr itself."""
    d = sp.diff(expr, sym(i))
    d = d.replace(sp.DiracDelta, lambda *a: sp.S.Zero)  # derivatives hold almost everywhere
    # sign' = 0 too; SymPy leaves it unevaluated where the argument may be zoo (sign(a / b))
    d = d.replace(
        lambda e: isinstance(e, sp.Derivative) and isinstance(e.expr, sp.sign),
        lambda e: sp.S.Zero,
    )
    d = d.replace(sp.Heaviside, lambda *a: sp.Piecewise((1, a[0] > 0), (0, True)))
    d = sp.powsimp(d)
    if not expr.is_Symbol and not expr.is_Number:
        on_out = d.subs(expr, sym(nargs))
        if sp.count_ops(on_out) < sp.count_ops(d) and not _adds_pole(on_out, d, expr, nargs):
            return on_out
    return d


def _adds_pole(on_out: sp.Expr, d: sp.Expr, expr: sp.Expr, nargs: int) -> bool:
    """Whether ``on_out`` divides by something ``d`` does not (x**n -> n*out/x is nan at 0)."""
    back = sp.denom(on_out).xreplace({sym(nargs): expr})
    return not sp.denom(sp.cancel(sp.denom(d) / back)).is_number


@functools.lru_cache(maxsize=4096)
def beyond_float64(expr: sp.Expr) -> sp.Expr | None:
    """A constant part of ``expr`` that float64 cannot hold (inf, nan, 1e400, 10**400,
    exp(1000)), or None."""
    for e in subexpressions(expr):
        if not (isinstance(e, sp.Expr) and e.is_number):
            continue
        try:  # NumPy computes a constant part as its float64 value
            value = complex(e)
        except (OverflowError, TypeError):
            return e
        if not (math.isfinite(value.real) and math.isfinite(value.imag)):
            return e
    return None


def _short(c: sp.Expr) -> str:
    """The constant ``c`` for an error message (1e400 in 3 digits, not 401)."""
    return str(sp.N(c, 3)) if c.is_Number else str(c)


def expression(node: Tensor) -> sp.Expr:
    """The SymPy expression of an elementwise node over x0..x{n-1}."""
    nargs = len(node.graph.args(node.node))
    return _named_expression(node.op, nargs, _frozen(node.attrs))


def _frozen(attrs: dict) -> tuple:
    return tuple(sorted(attrs.items()))


@functools.lru_cache(maxsize=4096)
def _named_expression(op: str, nargs: int, attrs: tuple) -> sp.Expr:
    a = dict(attrs)
    if op == "expr":
        return a["expr"]
    return OPS[op].extra["builder"](*syms(nargs), **a)


def build(expr: sp.Expr, tensors: list[Tensor], like: Tensor):
    """A node computing ``expr`` with x_j bound to tensors[j]; a plain number if constant."""
    free = sorted(expr.free_symbols, key=index_of)
    if not free:
        return float(expr)
    if len(free) == 1 and expr == free[0]:
        return tensors[index_of(free[0])]
    used = [tensors[index_of(s)] for s in free]
    attrs = {"expr": expr.xreplace({s: sym(k) for k, s in enumerate(free)})}
    # keep the dtype of the op being differentiated (where(c, 1, 0) alone would give int64)
    if _result_dtype("expr", tuple(t.dtype for t in used), _frozen(attrs)) != like.dtype:
        attrs["dtype"] = like.dtype
    return like.graph.apply("expr", used, attrs)


def partial(node: Tensor, i: int):
    """d node / d (argument i), as a Tensor (or a number when constant)."""
    args = node.args
    d = _known_integers(derivative(expression(node), i, len(args)), args)
    bad = beyond_float64(d)
    if bad is not None:  # 1e308 * x**10 has the derivative 1e309 * x**9
        raise DifferentiationError(
            f"the derivative of {node.graph.describe(node.node)} in its argument {i} has the "
            f"constant {_short(bad)}, which is no finite float64 ({user_site()})"
        )
    return build(d, args + [node], node)


def _known_integers(d: sp.Expr, args: list[Tensor]) -> sp.Expr:
    """``d`` with each argument that is a whole-number scalar constant written in: the third
    derivative of x ** 2, 2 (2 - 1) (2 - 2) x ** (2 - 3), is then 0, not 0 * inf = nan at 0."""
    known = {}
    for j, a in enumerate(args):
        value = a.graph.nx.nodes[a.node]["attrs"].get("value") if a.op == "constant" else None
        if value is not None and value.ndim == 0 and value.dtype.kind in "iuf":
            v = value.item()
            if math.isfinite(v) and v == int(v) and abs(v) < 2**53:
                known[sym(j)] = sp.Integer(int(v))
    return d.xreplace(known) if known else d


def scale(g: Tensor, d):
    """g * d where d may be a plain number (0 -> None, 1 -> g)."""
    if isinstance(d, float):
        if d == 0.0:
            return None
        if d == 1.0:
            return g
        if d == -1.0:
            return -g
    return g * d


def _refuse_non_float(node, i: int, x) -> None:
    # a comparison's bool (or an int cast) reached from the wrt nodes, used as a number here
    if not is_float(x.dtype):
        raise DifferentiationError(
            f"cannot differentiate {node.graph.describe(node.node)} through its {x.dtype} "
            f"argument {i} ({node.graph.describe(x.node)}): it has no derivative; "
            f"requested at {user_site()}"
        )


def _vjp(node, g, needed):
    for i, x in enumerate(node.args):
        if needed[i]:
            _refuse_non_float(node, i, x)
    return [scale(g, partial(node, i)) if needed[i] else None for i in range(len(needed))]


def _jvp(node, tangents):
    from .structural import expand_tangent

    total = None
    for i, (t, x) in enumerate(zip(tangents, node.args)):
        if t is None:
            continue
        _refuse_non_float(node, i, x)
        c = scale(expand_tangent(t, x, node), partial(node, i))
        if c is not None:
            total = c if total is None else total + c
    return total  # the forward sweep broadcasts it to the full output shape


# ---- registration -----------------------------------------------------------------------
def _infer_for(op_name: str):
    def infer(types, attrs):
        shape = broadcast_shapes(*[t.shape for t in types])
        if op_name == "expr":
            _check_expression(attrs["expr"], len(types))
        # run even where a dtype is given: it checks the expression computes on these dtypes
        dtype = _result_dtype(op_name, tuple(t.dtype for t in types), _frozen(attrs))
        return shape, attrs.get("dtype", dtype)

    return infer


@functools.lru_cache(maxsize=4096)
def _check_expression(expr: sp.Expr, nargs: int) -> None:
    """Refuse an anonymous op's expression that reads symbols other than its arguments or
    holds a constant float64 cannot (the source would say inf)."""
    foreign = expr.free_symbols - set(syms(nargs))
    if foreign:
        raise GraphError(
            f"the expression {_short(expr)} reads {sorted(map(str, foreign))}, which are not "
            f"among its {nargs} arguments {[str(x) for x in syms(nargs)]}"
        )
    bad = beyond_float64(expr)
    if bad is not None:
        raise GraphError(f"the expression has the constant {_short(bad)}, no finite float64")
    if _open_pieces(expr):
        raise GraphError(f"the expression {_short(expr)} has a Piecewise with no (x, True) piece")


def _open_pieces(expr: sp.Expr) -> bool:
    """Whether a Piecewise of ``expr`` has no final (value, True) piece: SymPy leaves it
    undefined where no condition holds, which a kernel cannot say."""
    return any(p.args[-1].cond is not sp.true for p in parts(expr, sp.Piecewise))


@functools.lru_cache(maxsize=4096)
def _result_dtype(op_name: str, dtypes: tuple, attrs: tuple) -> str:
    # exactly what NumPy gives: run the reference implementation on one element of each dtype
    probes = [np.ones((1,), dtype=d) for d in dtypes]
    expr = _named_expression(op_name, len(dtypes), attrs)
    with np.errstate(all="ignore"):
        return to_values(expr, probes).dtype.name


def _impl_for(op_name: str):
    def impl(arrays, attrs):
        expr = _named_expression(op_name, len(arrays), _frozen(attrs))
        out = to_values(expr, list(arrays))
        return out.astype(attrs["dtype"], copy=False) if "dtype" in attrs else out

    return impl


def _emit_for(op_name: str, template: str | None):
    def emit(ctx, args, attrs):
        if template is not None:
            return template.format(*args, **{k: ctx.literal(v) for k, v in attrs.items()})
        expr = _named_expression(op_name, len(args), _frozen(attrs))
        cond = indicator(expr)
        if cond is not None and "dtype" in attrs:  # a mask: cast the bool, not an int64 where
            expr = cond
        # named ops are one head each; the anonymous op may be a whole fused kernel
        src = emit_expression(ctx, expr, args) if op_name == "expr" else to_source(expr, args)
        if "dtype" in attrs:
            return f"np.asarray({src}, dtype={ctx.literal(attrs['dtype'])})"
        return src

    return emit


def _parameters(builder) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(builder).parameters.values())
    except (TypeError, ValueError):  # a builtin without a signature: its arguments only
        return []


def define(
    name: str,
    builder: Callable[..., sp.Expr],
    nargs: int | None = None,
    template: str | None = None,
) -> Op:
    """Register the elementwise op ``name`` whose value is ``builder(x0, x1, ..., **attrs)``.

    ``template`` is an optional faster NumPy source form (``{0}`` = first argument).
    """
    if nargs is None and isinstance(builder, sp.FunctionClass):
        # a SymPy function class declares its arities (log: 1 or 2); its signature is (*args)
        nargs = min(builder.nargs)
    params = [] if isinstance(builder, sp.FunctionClass) else _parameters(builder)
    if nargs is None:
        nargs = sum(1 for p in params if p.kind == p.POSITIONAL_OR_KEYWORD and p.default is p.empty)
    # the builder's parameters after its arguments are numeric attributes (leaky_relu's alpha)
    numbers = {p.name: "number" for p in params[nargs:]}
    return register(
        Op(
            name,
            attrs={**numbers, "dtype": "dtype"},
            infer=_infer_for(name),
            impl=_impl_for(name),
            emit=_emit_for(name, template),
            arity=(nargs, nargs),
            vjp=_vjp,
            jvp=_jvp,
            extra={"builder": builder, "elementwise": True},
        )
    )


def is_elementwise(op: str) -> bool:
    return OPS[op].extra.get("elementwise", False)


# the anonymous op: attrs["expr"] is the expression itself
register(
    Op(
        "expr",
        attrs={"expr": "expr", "dtype": "dtype"},
        infer=_infer_for("expr"),
        impl=_impl_for("expr"),
        emit=_emit_for("expr", None),
        arity=(1, None),
        vjp=_vjp,
        jvp=_jvp,
        extra={"elementwise": True},
    )
)


def lift(*args) -> list[Tensor]:
    """Turn Python scalars and arrays among ``args`` into constants of the Tensors' graph.

    A Python scalar takes the dtype NumPy would give it beside the Tensors (weak typing), so
    ``x32 * 2.0`` stays float32.
    """
    tensors = [a for a in args if isinstance(a, Tensor)]
    if not tensors:
        got = ", ".join(type(a).__name__ for a in args) or "no arguments"
        raise GraphError(
            f"at least one argument must be a symgrad Tensor, got {got} ({user_site()})"
        )
    graph = tensors[0].graph
    like = np.result_type(*[np.dtype(t.dtype) for t in tensors])
    out = []
    for a in args:
        if isinstance(a, Tensor):
            out.append(a)
        elif isinstance(a, (bool, int, float)):
            try:
                value = np.array(a, dtype=np.result_type(like, a))
            except OverflowError:
                raise ShapeError(
                    f"{show(a)} does not fit in {like} or any NumPy number ({user_site()})"
                ) from None
            out.append(graph.constant(value))
        else:
            try:
                out.append(graph.constant(np.asarray(a)))
            except Exception:
                raise ShapeError(
                    f"cannot use {type(a).__name__} {show(a)} as a tensor ({user_site()})"
                ) from None
    return out


def apply_elementwise(name: str, *args, **attrs) -> Tensor:
    tensors = lift(*args)
    return tensors[0].graph.apply(name, tensors, attrs)


def user_elementwise(name: str, fn: Callable[..., sp.Expr]) -> Callable[..., Tensor]:
    """Define a new elementwise op from a SymPy expression builder; returns the op function.

    ``fn`` takes one SymPy symbol per argument and returns an expression in them. All its
    derivatives come from SymPy.
    """
    if not isinstance(name, str) or not name or name in OPS:
        raise GraphError(
            f"elementwise: the name must be a new non-empty string, got {name!r} ({user_site()})"
        )
    name = str.__str__(name)  # a subclass's __format__ could write the source's comments
    if not callable(fn):
        raise GraphError(f"elementwise {name!r}: the builder must be callable ({user_site()})")
    try:
        nargs = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        raise GraphError(
            f"elementwise {name!r}: cannot read the builder's arguments from its signature; "
            f"pass a function or lambda of one SymPy symbol per argument ({user_site()})"
        ) from None
    try:
        expr = fn(*syms(nargs))
    except Exception as e:
        raise GraphError(
            f"elementwise {name!r}: the builder raised {type(e).__name__}: {e} when called "
            f"with the SymPy symbols {', '.join(map(str, syms(nargs)))} ({user_site()})"
        ) from e
    if not isinstance(expr, sp.Expr):
        raise GraphError(
            f"elementwise {name!r}: builder must return a SymPy expression ({user_site()})"
        )
    bad = beyond_float64(expr)
    if bad is not None:  # NumPy would compute with inf or nan, the source would say inf
        raise GraphError(
            f"elementwise {name!r}: the builder's expression has the constant {_short(bad)}, "
            f"which is no finite float64 ({user_site()})"
        )
    foreign = expr.free_symbols - set(syms(nargs))
    if foreign:  # a symbol of the user's own, not one of those it was called with
        raise GraphError(
            f"elementwise {name!r}: the builder's expression reads {sorted(map(str, foreign))}, "
            f"which are not its arguments {', '.join(map(str, syms(nargs)))} ({user_site()})"
        )
    if _open_pieces(expr):
        raise GraphError(
            f"elementwise {name!r}: a Piecewise of the builder's expression has no final "
            f"(value, True) piece, so it is undefined where no condition holds ({user_site()})"
        )
    if not expr.free_symbols:  # a kernel computing a number would not have its shape
        raise GraphError(
            f"elementwise {name!r}: the builder's expression {expr} reads none of its "
            f"arguments ({user_site()})"
        )
    try:  # rejects heads with no NumPy form now
        to_source(expr, [f"a{i}" for i in range(nargs)])
    except GraphError as e:
        raise GraphError(f"elementwise {name!r}: {e} ({user_site()})") from None
    define(name, lambda *xs: expr.xreplace(dict(zip(syms(nargs), xs))), nargs=nargs)

    def op(*args) -> Tensor:
        return apply_elementwise(name, *args)

    op.__name__ = name
    op.__doc__ = f"Elementwise {name}: {expr}"
    return atomic(op)


OPS["expr"].emit_into = lambda ctx, out, args, attrs: emit_into_expression(
    ctx, out, attrs["expr"], args
)
OPS["expr"].extra["into_ok"] = lambda attrs: into_steps(attrs["expr"]) is not None
OPS["expr"].extra["reads_args_first"] = lambda attrs: _reads_args_first(attrs["expr"])


def _reads_args_first(expr: sp.Expr) -> bool:
    """Whether the chain computing ``expr`` into its output reads the arguments only in its
    first call: that call reads them before the output exists (NumPy resolves any overlap),
    so the output may be an argument's memory; a later call would read it overwritten."""
    steps = into_steps(expr) or ()
    return all(o is None or not o.free_symbols for _, ops in steps[1:] for o in ops)
