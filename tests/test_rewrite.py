"""Graph rewrites: every rule fires where it should and keeps the values; the pass manager's
contract (names, exclusion, log, errors that surface, the user's graph left alone)."""

import re

import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad.autodiff.sweep import ancestors
from symgrad.rewrite import REWRITES, RewriteError, optimize
from symgrad.rewrite import manager as manager_module
from symgrad.rewrite.cost import flops, graph_flops

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _seeded():
    global RNG
    RNG = np.random.default_rng(0)


def compare(outs, inputs, arrays, rtol=1e-12, atol=1e-14, rewrites=True):
    """Compile with and without rewrites, evaluate the original: the same values, dtypes and
    shapes. Returns the rewritten Function."""
    feed = dict(zip(inputs, arrays))
    want = sg.evaluate(outs, feed)
    plain = sg.compile(outs, inputs, rewrites=False)(*arrays)
    fn = sg.compile(outs, inputs, rewrites=rewrites)
    got = fn(*arrays)
    for t, a, b, c in zip(outs, got, plain, want):
        assert a.dtype == b.dtype == c.dtype == np.dtype(t.dtype)
        assert a.shape == b.shape == c.shape
        np.testing.assert_allclose(a, c, rtol=rtol, atol=atol)
        np.testing.assert_allclose(b, c, rtol=rtol, atol=atol)
    assert_topological(fn)
    return fn


def assert_topological(fn):
    G = fn._prog.graph.nx
    assert all(a < c for c in G.nodes for a in G.pred[c])


# ---- every rule: (name, builder) where builder(g) -> (outputs, inputs, arrays) ----------------
def _x(g, shape=(4, 3), name="x", positive=False):
    x = g.input(name, shape)
    v = RNG.standard_normal(shape)
    return x, (np.abs(v) + 0.5 if positive else v)


def unary_case(fn, shape=(4, 3), positive=False):
    def build(g):
        x, xv = _x(g, shape, positive=positive)
        return [fn(x, g)], [x], [xv]

    return build


def binary_case(fn, positive=False):
    def build(g):
        x, xv = _x(g, (4, 3), "x", positive)
        y, yv = _x(g, (4, 3), "y", positive)
        return [fn(x, y, g)], [x, y], [xv, yv]

    return build


def with_grad(fn, shape=(4, 3), positive=False):
    """fn(x) and the gradient of its weighted sum: rules must hold on derivative graphs."""

    def build(g):
        x, xv = _x(g, shape, positive=positive)
        y = fn(x, g)
        w = g.constant(RNG.standard_normal(y.shape))
        return [y, sg.grad(sg.sum(y * w), x)], [x], [xv]

    return build


def _labels(g):
    y = g.input("labels", (4,), "int64")
    return y, RNG.integers(0, 3, 4)


def xent_case(g):
    z, zv = _x(g, (4, 3))
    y, yv = _labels(g)
    loss = -sg.sum(sg.one_hot(y, 3) * sg.log(sg.softmax(z)), axis=-1)
    return [loss, sg.grad(sg.mean(loss), z)], [z, y], [zv, yv]


def sum_one_hot_case(g):
    # the one_hot is read elsewhere too: computed anyway, it checks the labels' range
    v, vv = _x(g, (4, 1))
    y, yv = _labels(g)
    h = sg.one_hot(y, 3)
    return [sg.sum(h * v, axis=-1), sg.sum(h)], [v, y], [vv, yv]


def xent_gradient_case(g):
    z, zv = _x(g, (4, 3))
    y, yv = _labels(g)
    return [sg.grad(sg.cross_entropy(z, y).mean(), z)], [z, y], [zv, yv]


def xent_hvp_case(g):
    # the HVP reads the softmax again: its gradient keeps the softmax, less the labels' ones
    z, zv = _x(g, (4, 3))
    y, yv = _labels(g)
    v, vv = _x(g, (4, 3), "v")
    (hv,) = sg.hvp(sg.cross_entropy(z, y).mean(), [z], [v])
    return [hv, sg.grad(sg.cross_entropy(z, y).mean(), z)], [z, y, v], [zv, yv, vv]


def bce_case(g):
    # the chain rule of y log s + (1 - y) log(1 - s) through s = sigmoid(z), written by hand:
    # the division by s and 1 - s cancels against s (1 - s), which a second output shares
    z, zv = _x(g, (4, 3))
    v, vv = _x(g, (4, 3), "v")
    y = g.constant(RNG.uniform(0, 1, (4, 3)))
    s = sg.sigmoid(z)
    ds = s * (1.0 - s)
    return [-(y / s - (1.0 - y) / (1.0 - s)) * ds, ds * v], [z, v], [zv, vv]


def xent_gradient_and_value_case(g):
    z, zv = _x(g, (4, 3))
    y, yv = _labels(g)
    loss = sg.cross_entropy(z, y)
    return [loss, sg.grad(loss.mean(), z)], [z, y], [zv * 30, yv]


def xent_weighted_gradient_case(g):
    z, zv = _x(g, (4, 3))
    y, yv = _labels(g)
    w = g.input("w", (4,))
    loss = sg.sum(sg.cross_entropy(z, y) * w)
    return [loss, sg.grad(loss, z)], [z, y, w], [zv, yv, RNG.uniform(0.5, 2.0, 4)]


def scatter_concat_case(g):
    x, xv = _x(g, (10,))
    parts = [x[0:3], x[3:7], x[7:10]]
    f = sum(sg.sum(sg.tanh(p) * (k + 1.0)) for k, p in enumerate(parts))
    return [sg.hessian(f, x)], [x], [xv]


def merge_case(g):
    x, xv = _x(g)
    y, yv = _x(g, name="y")
    return [(x * 1.0) * y + x * y], [x, y], [xv, yv]


def view_noop_case(g):
    x, xv = _x(g)
    return [sg.tanh(g.apply("reshape", [x], {"shape": (4, 3)}))], [x], [xv]


CASES = {
    "mul_one": unary_case(lambda x, g: sg.tanh(x) * 1.0),
    "mul_zero": unary_case(lambda x, g: sg.tanh(x) * 0.0),
    "mul_minus_one": unary_case(lambda x, g: sg.tanh(x) * -1.0),
    "add_zero": unary_case(lambda x, g: sg.tanh(x) + g.constant(np.zeros(3))),
    "sub_zero": unary_case(lambda x, g: sg.tanh(x) - 0.0),
    "zero_sub": unary_case(lambda x, g: 0.0 - sg.tanh(x)),
    "div_one": unary_case(lambda x, g: sg.tanh(x) / 1.0),
    "pow_one": unary_case(lambda x, g: sg.tanh(x) ** 1.0),
    "pow_zero": unary_case(lambda x, g: sg.tanh(x) ** 0.0),
    "pow_two": with_grad(lambda x, g: sg.tanh(x) ** 2 + x ** g.constant(np.full(3, 2.0))),
    "neg_neg": unary_case(lambda x, g: sg.neg(sg.neg(sg.tanh(x)))),
    "neg_sub": binary_case(lambda x, y, g: -(x - y)),
    "sub_neg": binary_case(lambda x, y, g: x - (-y)),
    "add_neg": binary_case(lambda x, y, g: x + (-y)),
    "mul_neg": binary_case(lambda x, y, g: (-x) * (-y) + sg.exp(-x * y)),
    "div_neg": binary_case(lambda x, y, g: (-x) / (-y), positive=True),
    "div_recip": binary_case(lambda x, y, g: x * (1.0 / y), positive=True),
    "view_noop": view_noop_case,
    "stop_gradient": unary_case(lambda x, g: sg.tanh(sg.stop_gradient(x) * x)),
    "transpose_transpose": unary_case(lambda x, g: sg.tanh(x.T.T)),
    "reshape_reshape": unary_case(lambda x, g: x.reshape(12).reshape(6, 2)),
    "broadcast_broadcast": unary_case(
        lambda x, g: sg.broadcast_to(sg.broadcast_to(x, (2, 4, 3)), (5, 2, 4, 3))
    ),
    "reduce_keepdims": unary_case(lambda x, g: sg.reshape(sg.max(x, 1), (4, 1)) - x),
    "reshape_elementwise": unary_case(lambda x, g: sg.sum(sg.reshape(sg.exp(x), (2, 6)), 1)),
    "elementwise_broadcast": unary_case(
        lambda x, g: sg.exp(x) * sg.broadcast_to(g.variable("b", RNG.standard_normal(3)), (4, 3))
    ),
    "reduce_broadcast": unary_case(lambda x, g: sg.sum(sg.broadcast_to(x, (5, 4, 3)), (0, 2))),
    "sum_neg": unary_case(lambda x, g: sg.sum(-sg.exp(x), 0)),
    "fold_constant": unary_case(lambda x, g: x * sg.tanh(g.constant(np.arange(3.0)))),
    "fold_uniform": unary_case(
        lambda x, g: x * sg.tanh(sg.broadcast_to(g.constant(0.5), (4000, 3)))[:4]
    ),
    "log_softmax": with_grad(lambda x, g: sg.log(sg.softmax(x))),
    "logsumexp": with_grad(lambda x, g: sg.log(sg.sum(sg.exp(x), axis=1))),
    "softplus": with_grad(lambda x, g: sg.log(1.0 + sg.exp(x))),
    "log_sigmoid": with_grad(lambda x, g: sg.log(sg.sigmoid(x))),
    "log1m_sigmoid": with_grad(lambda x, g: sg.log(1.0 - sg.sigmoid(x))),
    "log_exp": with_grad(lambda x, g: sg.log(sg.exp(x))),
    "logaddexp": with_grad(lambda x, g: sg.log(sg.exp(x) + sg.exp(sg.tanh(x)))),
    "log_scaled": with_grad(lambda x, g: sg.log(sg.softmax(x) * 0.5)),
    "exp_log": with_grad(lambda x, g: sg.exp(sg.log(sg.exp(x) + x * x))),
    "softmax": with_grad(lambda x, g: sg.exp(x) / sg.sum(sg.exp(x), 1, keepdims=True)),
    "sigmoid": with_grad(lambda x, g: sg.exp(x) / (1.0 + sg.exp(x))),
    "div_cancel": binary_case(lambda x, y, g: (x / y) * y + (x * y) / y, positive=True),
    "softmax_cross_entropy": xent_case,
    "sum_one_hot": sum_one_hot_case,
    "softmax_minus_one_hot": xent_gradient_case,
    "minus_one_hot": xent_hvp_case,
    "cancel_division": bce_case,
    "scatter_concat": scatter_concat_case,
    "share_logsumexp": xent_gradient_and_value_case,
    "scale_softmax_minus_one_hot": xent_weighted_gradient_case,
    "fuse_elementwise": with_grad(lambda x, g: sg.tanh(x * x + 1.0) * sg.sigmoid(x)),
    "merge": merge_case,
    "dead_code": unary_case(lambda x, g: sg.tanh(x) * 1.0),
}


def test_every_rewrite_has_a_case():
    assert set(CASES) == set(REWRITES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_rewrite_fires_and_keeps_values(name):
    g = sg.Graph()
    outs, inputs, arrays = CASES[name](g)
    fn = compare(outs, inputs, arrays)
    assert fn.rewrite_log.get(name, 0) >= 1, fn.rewrite_log
    # switched off by name, it does not fire and the values stay
    off = compare(outs, inputs, arrays, rewrites={"exclude": [name]})
    assert name not in off.rewrite_log


def test_symbolic_zeros_stay_broadcast_scalars():
    g = sg.Graph()
    x = g.input("x", ("batch", 300))
    fn = sg.compile(sg.tanh(x) * 0.0 + 0.0 * x, [x])
    xv = RNG.standard_normal((5, 300))
    out = fn(xv)
    assert out.shape == (5, 300) and not out.any()
    ops = {d["op"] for d in fn._prog.graph.nx.nodes.values()}
    assert ops <= {"input", "constant", "broadcast_to"}
    assert all(d["attrs"]["value"].shape == () for d in fn._prog.graph.nx.nodes.values()
               if d["op"] == "constant")  # fmt: skip


def test_fold_constant_respects_its_size_cap_and_never_folds_variables():
    g = sg.Graph()
    x = g.input("x", (3,))
    W = g.variable("W", np.ones(3))
    big = g.constant(np.arange(10_000.0) / 1e4)
    small = g.constant(np.arange(3.0))
    y = x * sg.exp(W) + sg.sum(sg.exp(big)) + sg.tanh(small)
    fn = compare([y], [x], [RNG.standard_normal(3)])
    assert fn.rewrite_log["fold_constant"] == 1  # tanh(small), not exp(big)
    values = [d["attrs"]["value"] for d in fn._prog.graph.nx.nodes.values()
              if d["op"] == "constant"]  # fmt: skip
    assert sorted(v.size for v in values) == [3, 10_000]
    assert any(np.array_equal(v, np.tanh(np.arange(3.0))) for v in values)
    assert "variable" in [d["op"] for d in fn._prog.graph.nx.nodes.values()]
    W.value[...] = 2.0  # a variable is state: the compiled function sees the new value
    np.testing.assert_allclose(fn(np.ones(3))[0], sg.evaluate(y, {x: np.ones(3)}))


def test_dtypes_and_symbolic_dims_are_kept():
    g = sg.Graph()
    x = g.input("x", ("batch", 3), "float32")
    b = g.variable("b", np.ones(3, dtype=np.float32))
    y = sg.log(1 + sg.exp(x * 1.0 + b)) - (-x)
    dx = sg.grad(sg.sum(y), x)
    fn = compare([y, dx], [x], [RNG.standard_normal((7, 3)).astype(np.float32)], rtol=1e-6)
    assert fn.rewrite_log["softplus"] == 1
    for n in fn._prog.graph.nx.nodes.values():
        if n["op"] not in ("input", "constant", "variable"):
            assert n["dtype"] == "float32"
    assert fn(np.ones((2, 3), np.float32))[0].shape == (2, 3)


# ---- the pass manager ------------------------------------------------------------------------
def mlp_hvp(layers=3, width=5):
    g = sg.Graph()
    X = g.input("X", ("batch", width))
    y = g.input("y", ("batch",), "int64")
    params, h = [], X
    for i in range(layers):
        W = g.variable(f"W{i}", RNG.standard_normal((width, width)) / width)
        b = g.variable(f"b{i}", np.zeros(width))
        params += [W, b]
        h = sg.tanh(h @ W + b)
    loss = sg.mean(sg.cross_entropy(h, y))
    vs = [g.input(f"v{i}", p.shape) for i, p in enumerate(params)]
    hv = sg.hvp(loss, params, vs)
    return g, [X, y, *vs], [loss, *sg.grad(loss, params), *hv]


def test_user_graph_is_never_changed():
    g, inputs, outs = mlp_hvp()
    before = g.to_networkx()
    attrs = {n: dict(d["attrs"]) for n, d in g.nx.nodes.items()}
    fn = sg.compile(outs, inputs)
    assert sum(fn.rewrite_log.values()) > 10
    after = g.to_networkx()
    assert sorted(before.nodes) == sorted(after.nodes)
    assert sorted(before.edges(data="pos")) == sorted(after.edges(data="pos"))
    for n, d in g.nx.nodes.items():
        assert d["op"] == before.nodes[n]["op"] and d["shape"] == before.nodes[n]["shape"]
        assert d["attrs"].keys() == attrs[n].keys()


def test_mapping_covers_every_root_and_ids_are_topological():
    g, inputs, outs = mlp_hvp()
    W = g["W0"]
    roots = [o.node for o in outs] + [x.node for x in inputs] + [W.node]
    out = optimize(g, roots)
    assert set(roots) <= set(out.mapping)
    G = out.graph.nx
    assert all(a < c for c in G.nodes for a in G.pred[c])
    assert G.nodes[out.mapping[W.node]]["op"] == "variable"  # shares the user's array
    assert G.nodes[out.mapping[W.node]]["attrs"]["value"] is W.value


def test_exclude_and_false_and_unknown_names():
    g, inputs, outs = mlp_hvp()
    full = sg.compile(outs, inputs)
    assert full.rewrite_log["fuse_elementwise"] > 0
    assert sg.compile(outs, inputs, rewrites=False).rewrite_log == {}
    some = sg.compile(outs, inputs, rewrites={"exclude": ["fuse_elementwise", "merge"]})
    assert "fuse_elementwise" not in some.rewrite_log and "merge" not in some.rewrite_log
    assert all(d["op"] != "expr" or d["attrs"]["expr"] for d in some._prog.graph.nx.nodes.values())
    with pytest.raises(sg.GraphError, match="unknown rewrite 'fuse'"):
        sg.compile(outs, inputs, rewrites={"exclude": ["fuse"]})
    with pytest.raises(sg.GraphError, match="rewrites must be"):
        sg.compile(outs, inputs, rewrites={"only": ["merge"]})


def test_updates_still_write_through_after_rewrites():
    g = sg.Graph()
    x = g.input("x", (3,))
    W = g.variable("W", np.ones(3))
    loss = sg.sum(sg.log(1 + sg.exp(W * x)) * 1.0)
    dW = sg.grad(loss, W)
    step = sg.compile(loss, [x], updates={W: W - 0.5 * dW})
    array = W.value
    want = sg.evaluate([loss, dW], {x: np.arange(3.0)})
    got = step(np.arange(3.0))
    np.testing.assert_allclose(got, want[0], rtol=1e-12)
    assert W.value is array
    np.testing.assert_allclose(W.value, 1 - 0.5 * want[1], rtol=1e-12)
    assert step.rewrite_log["softplus"] == 1


def test_a_rewrite_that_raises_surfaces(monkeypatch):
    def broken(rw, n):
        raise ZeroDivisionError("bug in a rule")

    monkeypatch.setattr(REWRITES["mul_one"], "fn", broken)
    g = sg.Graph()
    x = g.input("x", (3,))
    with pytest.raises(ZeroDivisionError, match="bug in a rule"):
        sg.compile(x * 2.0, [x])


def test_a_replacement_of_another_shape_is_an_error(monkeypatch):
    monkeypatch.setattr(REWRITES["neg_neg"], "fn", lambda rw, n: rw.t(rw.args(n)[0])[0])
    g = sg.Graph()
    x = g.input("x", (3,))
    with pytest.raises(RewriteError, match="neg_neg.*shape/dtype"):
        sg.compile(sg.neg(sg.neg(x)), [x])


def test_rules_that_undo_each_other_are_stopped(monkeypatch):
    def times_one(rw, n):  # tanh(x) -> tanh(x * 1), which mul_one turns back
        return sg.tanh(rw.t(rw.args(n)[0]) * 1.0)

    rule = manager_module.Rewrite("times_one", "canonicalize", times_one, ("tanh",))
    monkeypatch.setitem(REWRITES, "times_one", rule)
    monkeypatch.setattr(manager_module, "_TABLES", {})
    g = sg.Graph()
    x = g.input("x", (3,))
    with pytest.raises(RewriteError, match="fixed point"):
        sg.compile(sg.tanh(x), [x])


def test_a_replacement_that_reads_the_replaced_node_is_an_error(monkeypatch):
    monkeypatch.setattr(REWRITES["neg_neg"], "fn", lambda rw, n: rw.t(n) * 1.0)
    g = sg.Graph()
    x = g.input("x", (3,))
    with pytest.raises(RewriteError, match="neg_neg.*reads the node it replaces"):
        sg.compile(-x, [x])


def test_fixed_point_merges_and_counts():
    g = sg.Graph()
    x = g.input("x", (3,))
    a = sg.exp(x * 1.0) + sg.exp(x)  # two exp nodes become one after mul_one
    fn = compare([a], [x], [RNG.standard_normal(3)])
    assert fn.rewrite_log["mul_one"] == 1 and fn.rewrite_log["merge"] >= 1
    assert fn.source.count("np.exp(") == 1


def test_rewrite_work_is_linear_in_graph_size(monkeypatch):
    """Rule applications per node do not grow with the graph (the time per node is measured
    by benchmarks/graph_size.py; here the work is counted, which a busy machine cannot skew)."""
    calls = [0]
    for rw in REWRITES.values():
        if rw.fn is not None:

            def counted(*args, _fn=rw.fn):
                calls[0] += 1
                return _fn(*args)

            monkeypatch.setattr(rw, "fn", counted)
    per_node = []
    for layers in (4, 32):
        g, inputs, outs = mlp_hvp(layers)
        roots = [o.node for o in outs] + [x.node for x in inputs]
        n = len(ancestors(g, roots))
        calls[0] = 0
        optimize(g, roots)
        per_node.append(calls[0] / n)
    assert 0 < per_node[1] < 1.5 * per_node[0]


def test_source_lines_name_the_nodes_of_the_compiled_graph():
    g, inputs, outs = mlp_hvp()
    fn = sg.compile(outs, inputs)
    G = fn._prog.graph
    for line in fn.source.splitlines():
        m = re.fullmatch(r"\s+[vt]\d+ = .*  # %(\d+) (\w+)", line)
        if m:
            op = G.nx.nodes[int(m.group(1))]["op"]
            assert m.group(2) == (op if op.isidentifier() else "op")


# ---- FLOP counting ---------------------------------------------------------------------------
def test_flop_rules():
    g = sg.Graph()
    A = g.input("A", ("batch", 4, 5))
    B = g.input("B", (5, 6))
    C = A @ B
    e = sg.tanh(C) * 2.0 + 1.0
    s = sg.sum(e, axis=-1)
    dims = {"batch": 3}
    assert flops(g, C.node, dims) == 2 * 3 * 4 * 5 * 6
    assert flops(g, s.node, dims) == 3 * 4 * 6
    assert flops(g, sg.transpose(C).node, dims) == 0
    fused = sg.compile(e, [A, B])
    (kernel,) = [n for n, d in fused._prog.graph.nx.nodes.items() if d["op"] == "expr"]
    assert flops(fused._prog.graph, kernel, dims) == 3 * 3 * 4 * 6  # tanh, *, +
    assert graph_flops(fused._prog.graph, dims=dims) == 2 * 3 * 4 * 5 * 6 + 3 * 3 * 4 * 6


def test_expressions_are_translated_once():
    from symgrad.ops.elementwise import source_template

    x0 = sp.Symbol("x0", real=True)
    source_template.cache_clear()
    g = sg.Graph()
    x = g.input("x", (3,))
    h = x
    for _ in range(50):
        h = sg.sigmoid(h)  # no ufunc form, so each node is emitted from its expression
    sg.compile(h, [x], rewrites=False)(np.ones(3))
    info = source_template.cache_info()
    assert info.misses <= 2 and info.hits >= 49
    assert source_template(sp.tanh(x0)) == ("np.tanh(", 0, ")")


# ---- random graphs ---------------------------------------------------------------------------
UNARY = [
    sg.tanh,
    sg.exp,
    sg.sigmoid,
    sg.softplus,
    sg.neg,
    sg.sin,
    sg.square,
    sg.relu,
    sg.stop_gradient,
    lambda a: sg.log(sg.exp(a) + 1.0),
    lambda a: sg.log(sg.sigmoid(a)),
    lambda a: sg.exp(sg.log(a * a + 1.0)),
    lambda a: a * 1.0 + 0.0 * a,
    lambda a: -(-a),  # noqa: B002
]
BINARY = [
    sg.add,
    sg.sub,
    sg.mul,
    sg.maximum,
    lambda a, b: a / (sg.exp(b) + 1.0),
    lambda a, b: (a / (b * b + 1.0)) * (b * b + 1.0),
]
MATRIX = [
    lambda a: a.T.T,
    lambda a: sg.log(sg.softmax(a)),
    lambda a: sg.log(sg.sum(sg.exp(a), axis=1, keepdims=True)) - a,
    lambda a: sg.broadcast_to(sg.sum(a, 0), a.shape),
    lambda a: sg.sum(a, axis=1, keepdims=True) * a,
    lambda a: (a.T @ a)[:1] + a,
]


def random_graph(rng, dtype, rows):
    g = sg.Graph()
    ins = [
        g.input("x", (rows, 4), dtype),
        g.input("y", (4,), dtype),
        g.input("z", (rows, 4), dtype),
    ]
    pool = ins + [g.constant(rng.standard_normal(4).astype(dtype))]
    pool += [g.constant(np.array(v, dtype=dtype)) for v in (0.0, 1.0, 2.0)]
    for _ in range(rng.integers(3, 12)):
        a, b = (pool[i] for i in rng.integers(len(pool), size=2))
        kind = rng.integers(3)
        if kind == 2 and a.ndim == 2:
            pool.append(MATRIX[rng.integers(len(MATRIX))](a))
        elif kind == 1:
            pool.append(BINARY[rng.integers(len(BINARY))](a, b))
        else:
            pool.append(UNARY[rng.integers(len(UNARY))](a))
    out = pool[-1]
    cost = sg.sum(out * out)
    return [out, cost, *sg.grad(cost, ins)], ins


@pytest.mark.parametrize(
    "dtype, rows, rtol", [("float64", 3, 1e-9), ("float32", "batch", 2e-4)], ids=["f64", "f32"]
)
def test_random_graphs_keep_their_values(dtype, rows, rtol):
    for seed in range(40):
        rng = np.random.default_rng(seed)
        outs, ins = random_graph(rng, dtype, rows)
        vals = [rng.standard_normal((3, 4) if t.ndim == 2 else (4,)).astype(dtype) for t in ins]
        with np.errstate(all="ignore"):
            want = sg.evaluate(outs, dict(zip(ins, vals)))
            fn = sg.compile(outs, ins)
            got = fn(*vals)
        assert_topological(fn)
        for t, a, b in zip(outs, got, want):
            assert a.shape == b.shape and a.dtype == b.dtype == np.dtype(t.dtype)
            finite = np.isfinite(b)
            np.testing.assert_allclose(a[finite], b[finite], rtol=rtol, atol=rtol / 10)


def test_fused_cross_entropy_gradient_with_extra_batch_axes():
    g = sg.Graph()
    z = g.input("z", (2, 4, 3))
    y = g.input("y", (2, 4), "int64")
    dz = sg.grad(sg.cross_entropy(z, y).sum(), z)
    zv, yv = RNG.standard_normal((2, 4, 3)) * 50, RNG.integers(0, 3, (2, 4))
    fn = compare([dz], [z, y], [zv, yv])
    assert fn.rewrite_log.get("softmax_minus_one_hot") == 1
    e = np.exp(zv - zv.max(-1, keepdims=True))
    want = e / e.sum(-1, keepdims=True) - np.eye(3)[yv]
    (got,) = fn(zv, yv)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("classes", [3, 1000])
def test_hvp_of_cross_entropy_builds_no_one_hot_matrix(classes):
    """The HVP keeps the softmax for its tangent, so its gradient is the softmax with 1/batch
    taken off at each label: no one-hot matrix, and the scale folded into that one pass."""
    g = sg.Graph()
    z, v = g.input("z", (5, classes)), g.input("v", (5, classes))
    y = g.input("y", (5,), "int64")
    loss = sg.cross_entropy(z, y).mean()
    (hv,) = sg.hvp(loss, [z], [v])
    zv, vv = RNG.standard_normal((5, classes)) * 10, RNG.standard_normal((5, classes))
    yv = RNG.integers(0, classes, 5)
    fn = compare([hv, sg.grad(loss, z)], [z, y, v], [zv, yv, vv])
    assert "rt.one_hot(" not in fn.source and "rt.minus_one_hot(" in fn.source
    assert "scale=" in fn.source.split("rt.minus_one_hot(")[1].split("\n")[0]
    # by hand: H v = (diag(p) - p p^T) v / batch, row by row; the gradient (p - e_y) / batch
    e = np.exp(zv - zv.max(-1, keepdims=True))
    p = e / e.sum(-1, keepdims=True)
    want_hv = (p * vv - p * (p * vv).sum(-1, keepdims=True)) / 5
    want_grad = (p - np.eye(classes)[yv]) / 5
    got_hv, got_grad = fn(zv, yv, vv)
    np.testing.assert_allclose(got_hv, want_hv, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-10, atol=1e-15)


def test_minus_one_hot_keeps_the_values_of_any_minuend():
    g = sg.Graph()
    x = g.input("x", (2, 4, 3))
    y = g.input("y", (2, 4), "int64")
    t = sg.tanh(x)
    outs = [t - sg.one_hot(y, 3), (t - sg.one_hot(y, 3)) * 0.5, t * 2.0]
    xv, yv = RNG.standard_normal((2, 4, 3)), RNG.integers(0, 3, (2, 4))
    fn = compare(outs, [x, y], [xv, yv])
    assert fn.rewrite_log.get("minus_one_hot", 0) >= 1 and "rt.one_hot(" not in fn.source
    got = fn(xv, yv)
    np.testing.assert_allclose(got[0], np.tanh(xv) - np.eye(3)[yv], rtol=1e-14)
    np.testing.assert_allclose(got[1], (np.tanh(xv) - np.eye(3)[yv]) * 0.5, rtol=1e-14)


def test_a_node_replaced_by_a_newer_equal_one_keeps_the_order():
    # folding makes the forward and reverse Jacobians share a node made after some readers of
    # what it replaces: ids are renumbered into a topological order again
    g = sg.Graph()
    x = g.input("x", ())
    y = sg.tanh(sg.broadcast_to(x, (1,))[:])
    outs = [sg.jacobian(y, x, mode="fwd"), sg.jacobian(y, x, mode="rev")]
    fn = sg.compile(outs, [x])
    assert_topological(fn)
    for a in fn(np.array(0.5)):
        np.testing.assert_allclose(a, [1 - np.tanh(0.5) ** 2], rtol=1e-15)


def test_integer_sums_keep_numpys_wraparound():
    g = sg.Graph()
    u, i8 = g.input("u", (3,), "uint8"), g.input("i8", (200,), "int8")
    uv, iv = np.array([1, 2, 128], np.uint8), np.zeros(200, np.int8)
    three = sg.broadcast_to(g.constant(np.uint8(3)), (3, 100))
    outs = [sg.sum(-u), sg.sum(three, 1), sg.sum(sg.ones_like(i8))]
    want = [np.sum(-uv), np.sum(np.full((3, 100), 3, np.uint8), 1), np.sum(np.ones(200, np.int8))]
    for got in (sg.compile(outs, [u, i8])(uv, iv), sg.evaluate(outs, {u: uv, i8: iv})):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
            assert np.asarray(a).dtype == b.dtype


def test_a_one_hot_read_only_by_its_class_sum_still_checks_the_labels():
    g = sg.Graph()
    y, v = g.input("y", (2,), "int64"), g.input("v", (2, 1))
    fn = sg.compile(sg.sum(sg.one_hot(y, 3) * v, -1), [y, v])
    np.testing.assert_array_equal(fn(np.array([0, 2]), np.array([[2.0], [3.0]])), [2.0, 3.0])
    with pytest.raises(sg.InputError, match="labels"):
        fn(np.array([0, 7]), np.ones((2, 1)))


def test_log_softmax_is_exact_for_the_largest_of_huge_logits():
    g = sg.Graph()
    z = g.input("z", (1, 4), "float32")
    zv = np.array([[1e10, 1e10, 1e10, 0.0]], np.float32)
    for out in (sg.log_softmax(z, -1), sg.log(sg.softmax(z, -1))):
        got = sg.compile(out, [z])(zv)
        np.testing.assert_allclose(got[0, :3], -np.log(3.0), rtol=1e-6)
        assert got[0, 3] == -1e10


def test_malformed_exclusions_are_refused():
    g = sg.Graph()
    x = g.input("x", (3,))
    for bad in (None, 5, [["merge"]]):
        with pytest.raises(sg.GraphError, match="test_rewrite.py"):
            sg.compile(sg.tanh(x), [x], rewrites={"exclude": bad})
