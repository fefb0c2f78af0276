"""SymPy expressions as NumPy: the one translator of elementwise math.

Expressions are over the argument symbols x0, x1, ... (``sym(i)``). One walker turns an
expression into NumPy: into source text for the compiler and into values for the reference
evaluator. Only the heads in its tables are accepted, so no text from a user's expression
ever reaches generated source. Source is translated once per expression and kept as a
template; an expression that reads a subexpression more than once (a fused kernel) computes
it once, in a statement of its own. ``into_steps`` writes an expression as a chain of ufunc
calls into one existing array, for the compiler's buffer reuse.
"""

from __future__ import annotations

import functools
import re

import numpy as np
import sympy as sp

from .. import runtime
from ..errors import GraphError
from .shapes import is_float


@functools.cache
def sym(i: int) -> sp.Symbol:
    """The i-th argument symbol of an elementwise expression."""
    return sp.Symbol(f"x{i}", real=True)


def syms(n: int) -> list[sp.Symbol]:
    return [sym(i) for i in range(n)]


class sigmoid(sp.Function):  # noqa: N801  (SymPy function names are lower case)
    """Logistic sigmoid, kept as one head so its derivatives stay polynomials in s(x), s(-x)."""

    nargs = 1

    def fdiff(self, argindex=1):
        # s(x) s(-x), not s (1 - s): 1 - s(x) is 0 in floating point where s(-x) is still
        # accurate (x > 37 in float64), and the second derivative of softplus(-x) lives there
        x = self.args[0]
        return sigmoid(x) * sigmoid(-x)

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return True if self.args[0].is_real else None


class softplus(sp.Function):  # noqa: N801
    """log(1 + exp(x)), kept as one head so it is computed stably."""

    nargs = 1

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    def _eval_is_real(self):
        return self.args[0].is_real

    def _eval_is_positive(self):
        return True if self.args[0].is_real else None


class logaddexp(sp.Function):  # noqa: N801
    """log(exp(a) + exp(b)), kept as one head: NumPy computes it stably (infinities too), and
    its derivatives are sigmoids of the difference, accurate in both tails."""

    nargs = 2

    def fdiff(self, argindex=1):
        a, b = self.args
        return sigmoid(a - b) if argindex == 1 else sigmoid(b - a)

    def _eval_is_real(self):
        return all(x.is_real for x in self.args) or None


# ---- expression -> NumPy --------------------------------------------------------------
# head -> (name in generated source, NumPy callable)
FUNCTIONS: dict = {
    sp.exp: ("np.exp", np.exp),
    sp.log: ("np.log", np.log),
    sp.sin: ("np.sin", np.sin),
    sp.cos: ("np.cos", np.cos),
    sp.tan: ("np.tan", np.tan),
    sp.tanh: ("np.tanh", np.tanh),
    sp.sinh: ("np.sinh", np.sinh),
    sp.cosh: ("np.cosh", np.cosh),
    sp.atan: ("np.arctan", np.arctan),
    sp.asin: ("np.arcsin", np.arcsin),
    sp.acos: ("np.arccos", np.arccos),
    sp.asinh: ("np.arcsinh", np.arcsinh),
    sp.Abs: ("np.abs", np.abs),
    sp.sign: ("np.sign", np.sign),
    sigmoid: ("rt.sigmoid", runtime.sigmoid),
    softplus: ("rt.softplus", runtime.softplus),
    logaddexp: ("np.logaddexp", np.logaddexp),
}
FOLDS = {sp.Max: ("np.maximum", np.maximum), sp.Min: ("np.minimum", np.minimum)}
RELATIONS = {
    sp.StrictGreaterThan: (">", np.greater),
    sp.GreaterThan: (">=", np.greater_equal),
    sp.StrictLessThan: ("<", np.less),
    sp.LessThan: ("<=", np.less_equal),
    sp.Equality: ("==", np.equal),
    sp.Unequality: ("!=", np.not_equal),
}
LOGIC = {sp.And: ("np.logical_and", np.logical_and), sp.Or: ("np.logical_or", np.logical_or)}


class _Source:
    """Walker backend that writes NumPy source text."""

    def __init__(self, argnames):
        self.argnames = argnames
        self.memo: dict = {}  # subexpression -> its source (or the name of its statement)

    def symbol(self, s):
        return self.argnames[index_of(s)]

    def number(self, v):
        return f"({v!r})" if v < 0 else repr(v)

    def add(self, xs, negs):
        text = " + ".join(xs) if xs else f"-{negs.pop(0)}"
        return "(" + text + "".join(f" - {n}" for n in negs) + ")"

    def mul(self, xs):
        return "(" + " * ".join(xs) + ")"

    def div(self, a, b):
        return f"({a} / {b})"

    def neg(self, a):
        return f"(-{a})"

    def pow(self, a, e):
        return f"({a} ** {e})"

    def sqrt(self, a):
        return f"np.sqrt({a})"

    def call(self, head, xs):
        return f"{head[0]}({', '.join(xs)})"

    def relation(self, head, a, b):
        return f"({a} {head[0]} {b})"

    def where(self, c, a, b):
        return f"np.where({c}, {a}, {b})"

    def true(self):
        return "True"


class _Values:
    """Walker backend that computes NumPy values (the reference evaluator)."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.memo: dict = {}

    def symbol(self, s):
        return self.arrays[index_of(s)]

    def number(self, v):
        return v

    def add(self, xs, negs):
        total = functools.reduce(lambda a, b: a + b, xs) if xs else -negs.pop(0)
        return functools.reduce(lambda a, b: a - b, negs, total)

    def mul(self, xs):
        return functools.reduce(lambda a, b: a * b, xs)

    def div(self, a, b):
        return a / b

    def neg(self, a):
        return -a

    def pow(self, a, e):
        return a**e

    def sqrt(self, a):
        return np.sqrt(a)

    def call(self, head, xs):
        return head[1](*xs)

    def relation(self, head, a, b):
        return head[1](a, b)

    def where(self, c, a, b):
        return np.where(c, a, b)

    def true(self):
        return True


def _walk(e, b):
    """Translate expression ``e`` with backend ``b``; a subexpression met again is translated
    once (expressions are DAGs, and fused ones share a lot)."""
    hit = b.memo.get(e)
    if hit is None:
        hit = b.memo[e] = _translate(e, b)
    return hit


def _translate(e, b):
    if isinstance(e, sp.Symbol):
        return b.symbol(e)
    if e is sp.true:
        return b.true()
    if isinstance(e, sp.Integer):
        return b.number(int(e))
    if isinstance(e, sp.Number):
        if not e.is_finite:
            raise GraphError(f"elementwise expression has a non-finite constant {e}")
        return b.number(float(e))
    if isinstance(e, sp.NumberSymbol):  # pi, E, ...: their float64 values
        return b.number(float(e))
    if isinstance(e, sp.Add):
        pos = [a for a in e.args if not a.could_extract_minus_sign()]
        neg = [_negated(a) for a in e.args if a.could_extract_minus_sign()]
        return b.add([_walk(a, b) for a in pos], [_walk(a, b) for a in neg])
    if isinstance(e, sp.Mul):
        num, den = [], []
        for f in e.args:
            if isinstance(f, sp.Pow) and f.exp.is_Number and f.exp < 0:
                den.append(f.base if f.exp == -1 else sp.Pow(f.base, -f.exp, evaluate=False))
            else:
                num.append(f)
        if num and num[0] == -1:
            rest = num[1:] or [sp.Integer(1)]
            # (1 / d evaluated would move into d: a product of reciprocals, 1/0 in a piece)
            inverses = [sp.Pow(d, -1, evaluate=False) for d in den]
            return b.neg(_walk(sp.Mul(*rest, *inverses, evaluate=False), b))
        top = b.mul([_factor(a, b, num) for a in num]) if len(num) > 1 else _walk(num[0], b)
        if not den:
            return top
        bottom = b.mul([_walk(a, b) for a in den]) if len(den) > 1 else _walk(den[0], b)
        return b.div(top, bottom)
    if isinstance(e, sp.Pow):
        base, ex = e.args
        if ex == sp.Rational(1, 2):
            return b.sqrt(_walk(base, b))
        if ex.is_Number and ex < 0:
            inverse = base if ex == -1 else sp.Pow(base, -ex, evaluate=False)
            return b.div(b.number(1.0), _walk(inverse, b))
        return b.pow(_walk(base, b), _walk(ex, b))
    if isinstance(e, sp.Piecewise):
        # Piecewise((a, a > b), (b, True)) is np.maximum(a, b): a nan argument gives nan
        fold = _max_min(e)
        if fold is not None:
            return b.call(FOLDS[fold[0]], [_walk(fold[1], b), _walk(fold[2], b)])
        (last, _), rest = e.args[-1], e.args[:-1]
        out = _walk(last, b)
        for value, cond in reversed(rest):
            out = b.where(_walk(cond, b), _walk(value, b), out)
        return out
    head = type(e)
    if head in FUNCTIONS:
        return b.call(FUNCTIONS[head], [_walk(a, b) for a in e.args])
    if head in FOLDS:
        xs = [_walk(a, b) for a in e.args]
        return functools.reduce(lambda x, y: b.call(FOLDS[head], [x, y]), xs)
    if head in RELATIONS:
        return b.relation(RELATIONS[head], _walk(e.args[0], b), _walk(e.args[1], b))
    if head in LOGIC:
        xs = [_walk(a, b) for a in e.args]
        return functools.reduce(lambda x, y: b.call(LOGIC[head], [x, y]), xs)
    raise GraphError(f"elementwise expressions cannot use {head.__name__} (in {e})")


def indicator(e) -> sp.Basic | None:
    """The condition c of Piecewise((1, c), (0, True)) (a ReLU-like derivative), else None."""
    if isinstance(e, sp.Piecewise) and len(e.args) == 2 and e.args[1][1] is sp.true:
        (one, cond), (zero, _) = e.args
        if one == 1 and zero == 0:
            return cond
    return None


def _factor(f, b, factors):
    """A product's factor; an indicator beside a non-indicator factor is written as its bool
    condition: x * (c) keeps x's dtype, where np.where(c, 1, 0) would be int64."""
    cond = indicator(f)
    if cond is not None and any(indicator(g) is None and not g.is_Number for g in factors):
        return _walk(cond, b)
    return _walk(f, b)


def _negated(a: sp.Expr) -> sp.Expr:
    """-a, written without evaluating a again (that could regroup a fused kernel's sums)."""
    if isinstance(a, sp.Mul) and a.args[0].is_Number and a.args[0].is_negative:
        c, rest = -a.args[0], a.args[1:]
        if c == 1:
            return rest[0] if len(rest) == 1 else sp.Mul(*rest, evaluate=False)
        return sp.Mul(c, *rest, evaluate=False)
    if isinstance(a, sp.Add):  # -a would distribute and let SymPy cancel a fused kernel's sums
        return sp.Add(*map(_negated, a.args), evaluate=False)
    return -a


def _max_min(e: sp.Piecewise):
    """(Max or Min, a, b) when ``e`` picks the larger or smaller of a and b, else None."""
    if len(e.args) != 2 or e.args[1][1] is not sp.true:
        return None
    (a, cond), (b, _) = e.args
    orders = (sp.StrictGreaterThan, sp.GreaterThan, sp.StrictLessThan, sp.LessThan)
    if not isinstance(cond, orders) or {cond.lhs, cond.rhs} != {a, b}:
        return None
    bigger = isinstance(cond, (sp.StrictGreaterThan, sp.GreaterThan)) == (cond.lhs == a)
    return (sp.Max if bigger else sp.Min), a, b


def index_of(s: sp.Symbol) -> int:
    name = s.name
    if not (name.startswith("x") and name[1:].isdigit()) or s != sym(int(name[1:])):
        raise GraphError(f"elementwise expression uses foreign symbol {s}")
    return int(name[1:])


def to_source(expr: sp.Expr, argnames: list[str]) -> str:
    return fill(source_template(expr), argnames, ())


# A template is a tuple of parts: text, an argument index i >= 0, or -(j + 1) for statement j.
_HOLE = re.compile("\x00(-?\\d+)\x00")


def _holes(i: int) -> str:
    return f"\x00{i}\x00"


def _parts(text: str) -> tuple:
    pieces = _HOLE.split(text)  # text, index, text, index, ..., text
    return tuple(int(p) if k % 2 else p for k, p in enumerate(pieces) if p)


def fill(template: tuple, args, temps) -> str:
    """The source text of a template with argument and statement names put in."""
    return "".join(
        p if isinstance(p, str) else (args[p] if p >= 0 else temps[-p - 1]) for p in template
    )


@functools.lru_cache(maxsize=16384)
def source_template(expr: sp.Expr) -> tuple:
    """``expr`` as NumPy source with holes for its arguments (translated once per expression)."""
    names = _ArgNames()
    return _parts(_walk(expr, _Source(names)))


class _ArgNames:
    """Stands for the argument list while a template is written: argument i is hole i."""

    def __getitem__(self, i: int) -> str:
        return _holes(i)


@functools.lru_cache(maxsize=4096)
def kernel_template(expr: sp.Expr) -> tuple[tuple, tuple]:
    """(statements, result) templates computing ``expr`` with each repeated subexpression
    computed once, in a statement of its own.

    Only identical subexpressions are shared: ``sympy.cse`` would also regroup sums and
    products, which changes the rounding of a fused kernel against its unfused graph.
    """
    shared = _repeated(expr)
    if not shared:
        return (), source_template(expr)
    b = _Source(_ArgNames())
    statements = []
    for j, sub in enumerate(shared):
        statements.append(_parts(_walk(sub, b)))
        b.memo[sub] = _holes(-(j + 1))
    result = _parts(_walk(expr, b))
    return _drop_unused(statements, result)


def subexpressions(expr: sp.Basic) -> set:
    """The distinct subexpressions of ``expr``, itself included. A derivative's expression
    shares its parts many times over: SymPy's tree walks (``atoms``, ``count_ops``,
    ``preorder_traversal``) visit every use, exponentially many in the derivative's order."""
    seen = {expr}
    stack = [expr]
    while stack:
        for a in stack.pop().args:
            if a not in seen:
                seen.add(a)
                stack.append(a)
    return seen


def parts(expr: sp.Basic, kind) -> set:
    """The distinct subexpressions of ``expr`` of type ``kind``: ``atoms`` over the DAG."""
    return {e for e in subexpressions(expr) if isinstance(e, kind)}


def _repeated(expr: sp.Expr) -> list:
    """The subexpressions read more than once, each after the ones it reads."""
    reads: dict = {}
    order: list = []
    stack = [(expr, False)]
    while stack:  # iterative post-order over the distinct subexpressions
        e, done = stack.pop()
        if done:
            order.append(e)
            continue
        if e in reads:
            continue
        reads[e] = 0
        stack.append((e, True))
        stack.extend((a, False) for a in reversed(e.args) if a not in reads)
    for e in order:
        for a in e.args:
            reads[a] += 1
    return [
        e
        for e in order
        if reads[e] > 1
        and e.args
        and isinstance(e, sp.Expr)
        and not (e.is_Mul and e.args[0] == -1)  # written as a subtraction where it is read
    ]


def _drop_unused(statements: list, result: tuple) -> tuple[tuple, tuple]:
    """Remove statements nothing reads (a shared factor may be written into a division)."""
    read = {p for p in result if isinstance(p, int) and p < 0}
    for j in range(len(statements) - 1, -1, -1):
        if -(j + 1) in read:
            read.update(p for p in statements[j] if isinstance(p, int) and p < 0)
    renumber: dict[int, int] = {}
    kept = []
    for j, t in enumerate(statements):
        if -(j + 1) in read:
            renumber[-(j + 1)] = -(len(kept) + 1)
            kept.append(t)

    def rename(t):
        return tuple(renumber.get(p, p) if isinstance(p, int) and p < 0 else p for p in t)

    return tuple(rename(t) for t in kept), rename(result)


def emit_expression(ctx, expr: sp.Expr, args: list[str]) -> str:
    """Source of ``expr`` on ``args``; shared subexpressions become ``ctx.statement``s first."""
    statements, result = kernel_template(expr)
    temps: list[str] = []
    for s in statements:
        temps.append(ctx.statement(fill(s, args, temps)))
    return fill(result, args, temps)


def to_values(expr: sp.Expr, arrays: list) -> np.ndarray:
    return np.asarray(_walk(expr, _Values(arrays)))


# ---- computing an expression into an existing array (the compiler's buffer reuse) ---------
_INTO_UNARY = {
    sp.exp: "np.exp",
    sp.log: "np.log",
    sp.tanh: "np.tanh",
    sp.sin: "np.sin",
    sp.cos: "np.cos",
    sp.Abs: "np.absolute",
}
_CHAIN = (sp.Add, sp.Mul)


def _is_spine(e) -> bool:
    return (
        isinstance(e, _CHAIN)
        or type(e) in _INTO_UNARY
        or (isinstance(e, sp.Pow) and e.exp == 2)
        or relu_argument(e) is not None
    )


def relu_argument(e):
    """a when ``e`` is relu(a) = max(a, 0), Piecewise((a, a > 0), (0, True)); else None."""
    if isinstance(e, sp.Piecewise) and len(e.args) == 2 and e.args[1] == (0, sp.true):
        (a, cond) = e.args[0]
        if cond == (a > 0):
            return a
    return None


@functools.lru_cache(maxsize=4096)
def into_steps(expr: sp.Expr) -> tuple | None:
    """Steps ``(ufunc, operands)`` computing ``expr`` into one output array, each operand a
    subexpression or None for the output so far; None when ``expr`` is not such a chain (each
    step may build on the previous one only through the output; a bare 0/1 mask is one
    ``np.copyto`` step)."""
    if _comparison(indicator(expr)):
        return (("np.copyto", (expr,)),)
    if not _is_spine(expr):
        return None
    relu = relu_argument(expr)
    if relu is not None:  # max(a, 0) over the output so far
        inner = into_steps(relu) if _is_spine(relu) else None
        return (inner or ()) + (("np.maximum", (None if inner else relu, sp.S.Zero)),)
    if type(expr) in _INTO_UNARY or isinstance(expr, sp.Pow):
        (arg,) = expr.args[:1]
        ufunc = "np.square" if isinstance(expr, sp.Pow) else _INTO_UNARY[type(expr)]
        inner = into_steps(arg) if _is_spine(arg) else None
        return (inner or ()) + ((ufunc, (None if inner else arg,)),)
    add = isinstance(expr, sp.Add)
    terms = list(expr.args)
    if not add and any(isinstance(t, sp.Pow) and t.exp.is_negative for t in terms):
        return None  # quotients stay plain expressions

    def fold(t):  # the ufunc and operand that fold term t into the output
        if add and t.could_extract_minus_sign():
            return "np.subtract", _negated(t)
        return ("np.add" if add else "np.multiply"), t

    # the biggest term that is itself a chain (-x is a Mul, but x alone is no chain)
    chains = [(t, _chain_steps(t, add)) for t in terms]
    spine, steps = max(
        ((t, c) for t, c in chains if c),
        key=lambda tc: len(subexpressions(tc[0])),
        default=(None, None),
    )
    if spine is not None:
        terms.remove(spine)
        negative = add and spine.could_extract_minus_sign()
        if negative:  # p - f(x): f(x) into the output, then p minus it
            p = next((t for t in terms if not t.could_extract_minus_sign()), None)
            if p is None:
                steps += (("np.negative", (None,)),)
            else:
                terms.remove(p)
                steps += (("np.subtract", (p, None)),)
    else:  # all operands are plain expressions: the first two make the first step
        first = terms.pop(0)
        if add and first.could_extract_minus_sign():
            return None
        ufunc, operand = fold(terms.pop(0))
        steps = ((ufunc, (first, operand)),)
    for t in terms:
        ufunc, operand = fold(t)
        steps += ((ufunc, (None, operand)),)
    return steps


def _chain_steps(t, add: bool) -> tuple | None:
    """The steps of term t of a sum (``add``) or product, negated first in a sum when it
    carries a minus sign; None when that is no chain."""
    core = _negated(t) if add and t.could_extract_minus_sign() else t
    return into_steps(core) if _is_spine(core) else None


def _operand_source(ufunc: str, o, args: list[str]) -> str:
    cond = indicator(o) if ufunc == "np.multiply" else None
    # a 0/1 mask multiplies as its bool condition (np.where(c, 1, 0) would be int64)
    return to_source(o if cond is None else cond, args)


def emit_into_expression(ctx, out: str, expr: sp.Expr, args: list[str]) -> str:
    """Statements computing ``expr`` on ``args`` into the array ``out`` (see into_steps)."""
    return emit_steps(ctx, out, into_steps(expr), args)


def emit_steps(ctx, out: str, steps: tuple, args: list[str], start: str | None = None) -> str:
    """Statements running ``steps`` (of ``into_steps``) on ``args`` into the array ``out``; the
    value so far is in ``start`` (default ``out``) before the first step."""
    parts = []
    for i, (ufunc, operands) in enumerate(steps):
        if ufunc == "np.copyto":  # a bare mask (the only copy step into_steps makes)
            parts.append(_mask_into(ctx, out, operands[0], args))
            continue
        so_far = start if i == 0 and start is not None else out
        srcs = []
        for slot, o in enumerate(operands):
            mask = _mask_into_scratch(ctx, ufunc, o, args, slot)
            if mask is not None:
                parts.append(mask[0])
                srcs.append(mask[1])
            elif o is None:
                srcs.append(so_far)
            elif ufunc == "np.maximum" and o == 0:
                srcs.append(relu_zero(ctx))
            else:
                srcs.append(_operand_source(ufunc, o, args))
        parts.append(f"{ufunc}({', '.join(srcs)}, out={out})")
    return "; ".join(parts)


# np.maximum against a scalar 0 runs about half as fast as against an array of zeros, which
# pays for its memory on arrays up to this many elements
ZEROS_OPERAND_LIMIT = 1 << 14


def relu_zero(ctx) -> str:
    """The 0 of a ReLU's np.maximum into the current node's array: an array of zeros of the
    node's shape, kept by the kernel, where that is faster; else the scalar."""
    shape = ctx.node_shape
    if shape is None or not 0 < int(np.prod(shape)) <= ZEROS_OPERAND_LIMIT:
        return "0"
    return ctx.filled(0, shape, ctx.node_dtype)


FLOAT_MASK_LIMIT = 1 << 16  # elements


def _comparison(cond) -> bool:
    return cond is not None and type(cond) in RELATIONS


def _compare(cond, args: list[str], out: str) -> str:
    """A statement writing the bools of comparison ``cond`` into ``out``."""
    compare = f"np.{RELATIONS[type(cond)][1].__name__}"
    return f"{compare}({to_source(cond.lhs, args)}, {to_source(cond.rhs, args)}, out={out})"


def _mask_into(ctx, out: str, mask, args: list[str]) -> str:
    """Statements writing a 0/1 ``mask`` into the array ``out``: the bools into a scratch array
    the kernel keeps, then cast into ``out``, where a comparison cast on the fly would allocate
    both its bools and NumPy's casting buffer on every call."""
    cond = indicator(mask)
    if ctx.node_shape is None:
        return f"np.copyto({out}, {to_source(cond, args)})"
    name = ctx.scratch(ctx.node_shape, np.bool_, 0)
    return f"{_compare(cond, args, name)}; np.copyto({out}, {name})"


def _mask_into_scratch(ctx, ufunc: str, o, args: list[str], slot: int) -> tuple | None:
    """(the statement, the name) computing a comparison operand (a ReLU mask) into a bool
    scratch array the kernel keeps, instead of a fresh array on every call; operands of one
    call (``slot``) take different arrays. A float product gets the mask as floats: a float
    times a bool is cast through a buffer NumPy allocates on every call (up to 8192 elements),
    while copying the bools into floats first costs the same time and allocates nothing. Past
    FLOAT_MASK_LIMIT elements the kept floats would outweigh that buffer many times over."""
    cond = indicator(o) if ufunc == "np.multiply" and o is not None else None
    if not _comparison(cond) or ctx.node_shape is None:
        return None
    name = ctx.scratch(ctx.node_shape, np.bool_, slot)
    statement = _compare(cond, args, name)
    if not is_float(ctx.node_dtype) or int(np.prod(ctx.node_shape)) > FLOAT_MASK_LIMIT:
        return statement, name
    floats = ctx.scratch(ctx.node_shape, ctx.node_dtype, f"mask{slot}")
    return f"{statement}; np.copyto({floats}, {name})", floats
