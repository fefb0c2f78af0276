"""Elementwise fusion: a connected group of elementwise nodes becomes one ``expr`` node whose
attribute is the SymPy expression of the whole group.

Groups grow from consumers to producers: a node joins the group of its consumers only when
all of them are in that one group, so nothing computed inside a group is needed outside it and
nothing is computed twice. Matmuls, reductions and every other op stay boundaries, values of
constants alone form groups of their own (a compiled kernel computes those once, when it is
specialized), and a group has a bounded size and depth. A group's expression is composed
once per distinct group structure (a 20,000-step chain has a handful of them) and emitted with
every repeated subexpression computed once, in a statement of its own.

The members' expressions are put together as written (SymPy does not re-evaluate them), so a
kernel does exactly the arithmetic of its nodes and gives the same numbers to the last bit.
There are two exceptions, where the values then agree to rounding. A big kernel that is a
polynomial in one function of its argument (the k-th derivative of tanh x is a polynomial in
tanh x) is factored when that halves the work. A small kernel that divides by what it also
multiplies by (a log-likelihood's gradient through a sigmoid) is factored when that leaves no
division: the division would give nan where its divisor underflows to 0. A kernel's
derivatives, should the fused graph be differentiated again, come from ``sympy.diff`` like
those of every elementwise node.
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp

from ..ops.elementwise import (
    _frozen,
    _result_dtype,
    beyond_float64,
    kernel_template,
    parts,
    sigmoid,
    subexpressions,
    sym,
)
from .manager import Rewriter, graph_pass
from .match import fit, full, in_condition, piecewise

MAX_GROUP = 512  # nodes in one kernel: SymPy's work per kernel stays small
MAX_DEPTH = 48  # nesting of one kernel: SymPy and the emitter recurse over it


@graph_pass("fuse_elementwise", "fuse")
def fuse_elementwise(rw: Rewriter) -> None:
    """Each connected group of (two or more) elementwise nodes -> one ``expr`` node."""
    if not rw.ordered:
        rw.compact()
    succ = rw.graph.nx._succ
    static = _static(rw, sorted(succ))
    owner: dict[int, int] = {}
    depth: dict[int, int] = {}
    conditioned: dict[int, bool] = {}  # member -> whether its value reaches a condition
    groups: dict[int, list[int]] = {}
    for n in sorted(succ, reverse=True):  # every consumer before its arguments
        if not _fusable(rw, n):
            continue
        root = None
        users = succ[n]
        if users and not rw.is_root(n):
            owners = {owner.get(c) for c in users}
            r = owners.pop() if len(owners) == 1 else None
            # a value of constants alone joins only its like: kernels compute those once
            same = r is not None and (n in static) == (r in static)
            if same and len(groups[r]) < MAX_GROUP and rw.dtype(r) == rw.dtype(n):
                d = 1 + max(depth[c] for c in users)
                into = any(conditioned[c] or in_condition(rw, c, n) for c in users)
                # a piecewise value (relu) in a condition (of another relu): SymPy would
                # rewrite the condition into an if-then-else no kernel can compute
                if d <= MAX_DEPTH and not (into and piecewise(rw.expr(n))):
                    root, depth[n], conditioned[n] = r, d, into
        if root is None:
            root, depth[n], conditioned[n] = n, 0, False
            groups[n] = []
        owner[n] = root
        groups[root].append(n)
    nodes = rw.graph.nx._node
    for root, members in groups.items():
        # a fusion before this one may have merged or freed a member (its readers then
        # became equal to other nodes): that group stays as it is
        if len(members) > 1 and all(m in nodes for m in members):
            mark = rw.graph._next_id
            out = _fused(rw, root, sorted(members))
            if out is not None:
                rw.replace(root, out, "fuse_elementwise", mark)


def _static(rw: Rewriter, order: list[int]) -> set[int]:
    """The nodes computed from constants alone (``order`` topological)."""
    static: set[int] = set()
    for n in order:
        args = rw.args(n)
        if rw.op(n) == "constant" or (args and all(a in static for a in args)):
            static.add(n)
    return static


def _fusable(rw: Rewriter, n: int) -> bool:
    return rw.is_elementwise(n) and np.dtype(rw.dtype(n)).kind == "f"


def _fused(rw: Rewriter, root: int, members: list[int]):
    """The node computing the group ``members`` (topological order, ``root`` last)."""
    return expression_node(rw, root, *group_expression(rw, members))


def group_expression(rw: Rewriter, members: list[int]) -> tuple[sp.Expr, list[int]]:
    """(the expression of the group ``members``, in topological order, over x0..xk; the
    nodes x0..xk stand for)."""
    inside = {m: i for i, m in enumerate(members)}
    leaves: list[int] = []
    index: dict[int, int] = {}
    signature = []
    for m in members:
        refs = []
        for a in rw.args(m):
            if a in inside:
                refs.append(("m", inside[a]))
                continue
            number = _inline(rw, a, m)
            if number is not None:
                refs.append(("c", number))
                continue
            if a not in index:
                index[a] = len(leaves)
                leaves.append(a)
            refs.append(("l", index[a]))
        signature.append((rw.expr(m), tuple(refs)))
    expr, used = compose(tuple(signature))
    return expr, [leaves[k] for k in used]


def expression_node(rw: Rewriter, root: int, expr: sp.Expr, leaves: list[int]):
    """A node computing ``expr`` over ``leaves`` in place of ``root``."""
    args = [rw.t(a) for a in leaves]
    if expr.is_Number or not leaves:  # numbers alone (put together unevaluated: -1 * 3**-1)
        try:
            value = float(expr)
        except TypeError:  # 1/0 is SymPy's complex infinity: left to NumPy, unfused
            return None
        return full(rw, value, rw.shape(root), rw.dtype(root))
    if expr.is_Symbol:
        return fit(rw, args[0], root)
    if beyond_float64(expr) is not None:  # x / (x - x) is SymPy's zoo: left to NumPy, unfused
        return None
    attrs = {"expr": expr}
    dtype = rw.dtype(root)
    if _result_dtype("expr", tuple(a.dtype for a in args), _frozen(attrs)) != dtype:
        attrs["dtype"] = dtype
    return fit(rw, rw.graph.apply("expr", args, attrs), root)


def _inline(rw: Rewriter, a: int, m: int):
    """A scalar constant of m's own dtype, as a number in the expression (None otherwise).
    Only where all of m's arguments have its dtype: NumPy computes a Python number beside a
    narrower array in the array's dtype (uint8 * 2.0 wraps), where m promotes first."""
    if rw.op(a) != "constant" or rw.shape(a) or rw.dtype(a) != rw.dtype(m):
        return None
    if any(rw.dtype(x) != rw.dtype(m) for x in rw.args(m)):
        return None
    v = rw.attrs(a)["value"].item()
    if isinstance(v, bool) or not np.isfinite(v):
        return None
    return int(v) if float(v).is_integer() and abs(v) < 2**53 else float(v)


@functools.lru_cache(maxsize=1024)
def compose(signature: tuple) -> tuple[sp.Expr, tuple[int, ...]]:
    """The expression of a group from its structure: (expression over x0..xk, which leaf each
    xk is). ``signature`` lists each member's expression and where its arguments come from.

    The members' expressions are put together as they are, never re-evaluated, so the kernel
    does exactly the arithmetic of the unfused nodes, rounding included (``simplify`` may then
    factor a big one-argument polynomial).
    """
    values: list[sp.Expr] = []
    with sp.evaluate(False):
        for expr, refs in signature:
            subs, numbers = {}, {}
            for i, (kind, ref) in enumerate(refs):
                if kind == "m":
                    subs[sym(i)] = values[ref]
                elif kind == "l":
                    subs[sym(i)] = sym(ref)
                else:
                    numbers[sym(i)] = sp.Integer(ref) if isinstance(ref, int) else sp.Float(ref)
            if numbers:  # folded in the member's own (small) expression
                expr = _fold_integers(expr.xreplace(numbers), {})
            value = expr.xreplace(subs)
            if value.is_Pow and value.exp.is_Number and value.exp < 0:
                # 1/b stays a value of its own: read by a product it would become a division
                value = sp.Mul(1, value)
            values.append(value)
    expr = simplify(values[-1])
    used = sorted(expr.free_symbols, key=lambda s: int(s.name[1:]))
    with sp.evaluate(False):
        expr = expr.xreplace({s: sym(k) for k, s in enumerate(used)})
    return expr, tuple(int(s.name[1:]) for s in used)


def _fold_integers(e: sp.Expr, done: dict) -> sp.Expr:
    """``e`` with its sums, products and powers of integers evaluated when they give an
    integer, and x**1 as x: exact, so the arithmetic stays that of the nodes. (A constant
    exponent k is inlined after the derivative k * x**(k - 1) was built.)"""
    if not e.args:
        return e
    if e in done:
        return done[e]
    args = tuple(_fold_integers(a, done) for a in e.args)
    with sp.evaluate(False):
        out = e.func(*args) if args != e.args else e
    if (e.is_Add or e.is_Mul or e.is_Pow) and all(a.is_Integer for a in args):
        with sp.evaluate(True):
            value = e.func(*args)
        out = value if value.is_Integer else out
    elif e.is_Pow and args[1] == 1:
        out = args[0]
    done[e] = out
    return out


SIMPLIFY_MIN_OPS = 32  # smaller kernels keep the exact arithmetic of their nodes
SIMPLIFY_LIMIT = 5000  # distinct subexpressions; bigger kernels are left as they are
CANCEL_MAX_OPS = 64  # operations (``cost``); bigger kernels keep their divisions
CANCEL_MAX_DIVISORS = 3  # distinct divisors
CANCEL_MAX_GENERATORS = 8  # arguments and function values (sigmoid(x0) ...) to factor over


def simplify(expr: sp.Expr) -> sp.Expr:
    """A kernel whose divisions cancel against its factors -> the kernel without them; a big
    kernel that is a polynomial in one function of its argument (the k-th derivative of tanh
    is a polynomial in tanh x) -> the factored polynomial, when that needs at most half the
    operations; every other kernel as it is."""
    ops = cost(expr)
    cancelled = _cancelled(expr) if ops <= CANCEL_MAX_OPS else None
    if cancelled is not None:
        return cancelled
    if ops < SIMPLIFY_MIN_OPS:
        return expr
    factored = _factored(expr)
    return factored if factored is not None and 2 * cost(factored) <= ops else expr


def _cancelled(expr: sp.Expr) -> sp.Expr | None:
    """``expr`` factored over one denominator, when its divisions cancel against its factors
    and none but divisions by numbers are left; else None. The gradient of a log-likelihood
    through a sigmoid, (y / s - (1 - y) / (1 - s)) * s * (1 - s), divides by s and 1 - s,
    which underflow to 0 for logits past +-40 (nan there); factored, it is s - y. sigmoid's
    own derivative is s(x) s(-x): against a division by 1 - s(x), s(-x) is taken as that
    factor (which loses s(-x)'s precision where s(x) rounds to 1, but divides by 0 nowhere)."""
    complemented = _sigmoid_complements(expr)
    if complemented is not None:
        out = _factored_over_divisors(complemented)
        if out is not None:
            return out
    return _factored_over_divisors(expr)


def _sigmoid_complements(expr: sp.Expr) -> sp.Expr | None:
    """``expr`` with sigmoid(-u) written 1 - sigmoid(u) where it divides by 1 - sigmoid(u);
    None where it does not."""
    divisors = denominators(expr)
    swaps = {
        f: 1 - sigmoid(-f.args[0])
        for f in parts(expr, sigmoid)
        if any(d.has(1 - sigmoid(-f.args[0])) for d in divisors)
    }
    return expr.xreplace(swaps) if swaps else None


def _factored_over_divisors(expr: sp.Expr) -> sp.Expr | None:
    """``expr`` factored, when that leaves no division but by numbers; else None."""
    if piecewise(expr) or beyond_float64(expr) is not None:
        return None  # pieces do not factor (and SymPy cannot order zoo in their conditions)
    divisors = denominators(expr)
    # a divisor read by anything but a division by it (Basic.count would pattern-match every
    # subtree: seconds on a kernel of a third derivative)
    elsewhere = any(
        a in divisors and not (e.is_Pow and e.exp.is_negative and e.base == a)
        for e in subexpressions(expr)
        for a in e.args
    )
    if not elsewhere:
        return None  # no divisor is also a factor elsewhere: nothing to cancel
    if len(divisors) > CANCEL_MAX_DIVISORS:
        return None  # factoring time grows fast with them
    if len(expr.free_symbols) + len(parts(expr, sp.Function)) > CANCEL_MAX_GENERATORS:
        return None
    # floats that are short binary fractions (1.0, 0.25, 1/batch) as those fractions: SymPy
    # factors over the rationals (with floats it leaves products by 1.0); others, such as
    # 0.3, stay floats (as fractions they carry 17-digit numerators into the kernel)
    ratios = {f: float(f).as_integer_ratio() for f in parts(expr, sp.Float)}
    exact = {f: sp.Rational(p, q) for f, (p, q) in ratios.items() if q <= 1 << 16}
    out = sp.factor(expr.xreplace(exact))
    whole = {f: sp.Integer(int(f)) for f in parts(out, sp.Float) if float(f).is_integer()}
    out = out.xreplace(whole)
    return None if denominators(out) else out


def denominators(expr: sp.Expr) -> set:
    """What ``expr`` divides by, numbers aside."""
    return {
        e.base
        for e in subexpressions(expr)
        if e.is_Pow and e.exp.is_negative and not e.base.is_Number
    }


def _factored(expr: sp.Expr) -> sp.Expr | None:
    """``expr`` as a factored polynomial in its one generator, or None if it is not one."""
    t = sp.Dummy("t")
    gen = None
    value: dict = {}
    for e in _postorder(expr, SIMPLIFY_LIMIT):
        if e.is_Number:
            value[e] = sp.Poly(e, t)
        elif e.is_Add or e.is_Mul:
            parts = [value[a] for a in e.args]
            if any(p is None for p in parts):
                return None
            total = parts[0]
            for p in parts[1:]:
                total = total + p if e.is_Add else total * p
            value[e] = total
        elif e.is_Pow and e.exp.is_Integer and e.exp >= 0 and value[e.base] is not None:
            value[e] = value[e.base] ** int(e.exp)
        elif gen is None or e == gen:  # the generator: tanh(x0), exp(x0), x0 ...
            if gen is None and not e.free_symbols:
                return None
            gen = e
            value[e] = sp.Poly(t, t)
        else:
            value[e] = None
    if gen is None or value.get(expr) is None:
        return None
    coefficient, factors = value[expr].factor_list()
    with sp.evaluate(False):
        out = sp.Mul(coefficient, *[f.as_expr() ** k if k > 1 else f.as_expr() for f, k in factors])
    return out.xreplace({t: gen}).doit()


def _postorder(expr: sp.Expr, limit: int):
    """The distinct subexpressions of ``expr``, arguments first (at most ``limit``)."""
    seen: set = set()
    stack = [(expr, False)]
    while stack:
        e, done = stack.pop()
        if done:
            yield e
            continue
        if e in seen:
            continue
        seen.add(e)
        if len(seen) > limit:
            return
        stack.append((e, True))
        if e.is_Add or e.is_Mul or e.is_Pow:
            stack.extend((a, False) for a in e.args if a not in seen)


def cost(expr: sp.Expr) -> int:
    """Operations the emitted kernel does (each shared subexpression counted once)."""
    statements, result = kernel_template(expr)
    text = "".join(p for t in (*statements, result) for p in t if isinstance(p, str))
    return sum(text.count(c) for c in "+-*/") + text.count("np.")
