"""The graph IR: node attributes, ids, edges, hash-consing, symbolic dims, networkx I/O."""

import sys

import networkx as nx
import numpy as np
import pytest

import symgrad as sg


def here(offset: int = 0) -> str:
    """file:line of the caller's line plus ``offset``, as symgrad records it in ``where``."""
    frame = sys._getframe(1)
    return f"{frame.f_code.co_filename}:{frame.f_lineno + offset}"


def edges_into(g: sg.Graph, t: sg.Tensor) -> list[tuple[int, int]]:
    """(argument node, pos) of every edge into ``t``, sorted by pos."""
    return sorted(
        ((a, d["pos"]) for a, _, d in g.nx.in_edges(t.node, data=True)), key=lambda e: e[1]
    )


# ---- nodes and edges -----------------------------------------------------------------------
def test_node_attributes():
    g = sg.Graph()
    site = here(1)
    x = g.input("x", shape=("batch", 3), dtype="float32")
    W = g.variable("W", np.arange(6, dtype=np.float32).reshape(3, 2))
    c = g.constant(np.array([1.0, 2.0], dtype=np.float32), name="c")
    y_site = here(1)
    y = sg.tanh(x @ W) + c

    nodes = g.nx.nodes
    assert nodes[x.node] == {
        "op": "input",
        "attrs": {},
        "shape": ("batch", 3),
        "dtype": "float32",
        "where": site,
        "name": "x",
    }
    assert nodes[W.node]["op"] == "variable" and nodes[W.node]["name"] == "W"
    assert nodes[W.node]["shape"] == (3, 2) and nodes[W.node]["dtype"] == "float32"
    np.testing.assert_array_equal(nodes[W.node]["attrs"]["value"], np.arange(6).reshape(3, 2))
    assert nodes[c.node]["op"] == "constant" and nodes[c.node]["name"] == "c"
    assert not nodes[c.node]["attrs"]["value"].flags.writeable  # shared constants stay fixed
    assert nodes[y.node]["op"] == "add"
    assert nodes[y.node]["shape"] == ("batch", 2) and nodes[y.node]["dtype"] == "float32"
    assert nodes[y.node]["where"] == y_site
    assert "name" not in nodes[y.node]  # only user-labelled nodes carry a name
    assert (y.op, y.shape, y.dtype, y.ndim) == ("add", ("batch", 2), "float32", 2)
    assert g["x"] == x and g["W"] == W


def test_variable_keeps_its_own_copy():
    g = sg.Graph()
    value = np.ones(3)
    W = g.variable("W", value)
    value[0] = 5.0
    np.testing.assert_array_equal(W.value, np.ones(3))


def test_iterating_a_tensor_gives_its_rows():
    g = sg.Graph()
    x = g.input("x", shape=(3, 2))
    rows = list(x)
    assert [r.shape for r in rows] == [(2,)] * 3
    xv = np.arange(6.0).reshape(3, 2)
    for i, r in enumerate(rows):
        np.testing.assert_array_equal(sg.evaluate(r, {x: xv}), xv[i])
    a, b, c = x  # unpacking works too
    assert c == rows[2]


def test_node_ids_are_handed_out_in_creation_order():
    g = sg.Graph()
    x = g.input("x", shape=(3,))
    t = sg.tanh(x)
    s = sg.sum(t)
    assert [x.node, t.node, s.node] == [0, 1, 2]
    before = max(g.nx.nodes)
    dx = sg.grad(s, x)
    added = [n for n in g.nx.nodes if n > before]
    assert added and dx.node in added
    # every argument was made before its consumer: id order is a topological order
    assert all(a < n for a, n, _ in g.nx.edges)
    assert sorted(g.nx.nodes) == list(range(len(g)))  # no gaps


def test_edges_carry_argument_positions():
    g = sg.Graph()
    x = g.input("x", shape=(3,))
    c = g.constant(np.array([1.0, 2.0, 3.0]))
    sq = x * x
    assert g.nx.number_of_edges(x.node, sq.node) == 2  # one edge per argument, not per pair
    assert edges_into(g, sq) == [(x.node, 0), (x.node, 1)]
    assert edges_into(g, x - c) == [(x.node, 0), (c.node, 1)]
    assert edges_into(g, c - x) == [(c.node, 0), (x.node, 1)]
    assert g.args((c - x).node) == [c.node, x.node]
    assert [a.node for a in (c - x).args] == [c.node, x.node]


# ---- hash-consing --------------------------------------------------------------------------
def _graph():
    g = sg.Graph()
    return g, g.input("x", shape=(2, 3)), g.input("y", shape=(2, 3))


SAME = [  # two ways to build one value: both must give the same node
    ("unary", lambda g, x, y: sg.tanh(x), lambda g, x, y: sg.tanh(x)),
    ("binary", lambda g, x, y: x + y, lambda g, x, y: sg.add(x, y)),
    ("scalar", lambda g, x, y: x * 2.0, lambda g, x, y: x * 2.0),
    ("axis spelling", lambda g, x, y: x.sum(axis=0), lambda g, x, y: sg.sum(x, axis=(0,))),
    ("negative axis", lambda g, x, y: sg.softmax(x), lambda g, x, y: sg.softmax(x, axis=1)),
    ("nested", lambda g, x, y: sg.exp(x * y).sum(), lambda g, x, y: sg.sum(sg.exp(x * y))),
    (
        "constant",
        lambda g, x, y: g.constant([1.0, 2.0]),
        lambda g, x, y: g.constant(np.array([1.0, 2.0])),
    ),
]


@pytest.mark.parametrize("build_a, build_b", [c[1:] for c in SAME], ids=[c[0] for c in SAME])
def test_building_the_same_value_twice_gives_one_node(build_a, build_b):
    g, x, y = _graph()
    a = build_a(g, x, y)
    count = len(g)
    b = build_b(g, x, y)
    assert a == b and a.node == b.node
    assert len(g) == count  # nothing new was added


DIFFERENT = [  # look alike but are different values: must stay different nodes
    ("args order", lambda g, x, y: x - y, lambda g, x, y: y - x),
    ("attrs", lambda g, x, y: x.sum(axis=0), lambda g, x, y: x.sum(axis=1)),
    ("keepdims", lambda g, x, y: x.sum(0), lambda g, x, y: x.sum(0, keepdims=True)),
    ("const dtype", lambda g, x, y: g.constant(1.0), lambda g, x, y: g.constant(1.0, "float32")),
    ("const value", lambda g, x, y: g.constant(0.0), lambda g, x, y: g.constant(-0.0)),
    ("variables", lambda g, x, y: g.variable("a", 1.0), lambda g, x, y: g.variable("b", 1.0)),
]


@pytest.mark.parametrize(
    "build_a, build_b", [c[1:] for c in DIFFERENT], ids=[c[0] for c in DIFFERENT]
)
def test_different_values_stay_different_nodes(build_a, build_b):
    g, x, y = _graph()
    assert build_a(g, x, y).node != build_b(g, x, y).node


def test_derivatives_share_nodes_with_what_is_already_built():
    g = sg.Graph()
    x = g.input("x", shape=(3,))
    v = g.input("v", shape=(3,))
    f = sg.sum(sg.tanh(x) * x)
    dx = sg.grad(f, x)
    hv = sg.hvp(f, x, v)
    count = len(g)
    assert sg.grad(f, x) == dx and sg.hvp(f, x, v) == hv
    assert len(g) == count


# ---- symbolic dims -------------------------------------------------------------------------
def test_symbolic_dims_are_resolved_at_call_time():
    g = sg.Graph()
    rng = np.random.default_rng(0)
    X = g.input("X", shape=("batch", 4))
    W = g.variable("W", rng.normal(size=(4, 3)))
    h = sg.tanh(X @ W)
    loss = sg.mean(h * h)  # the mean divides by a batch-dependent count
    dW = sg.grad(loss, W)
    fn = sg.compile([loss, h, dW], inputs=[X])
    for batch in (3, 7, 3, 7, 1):
        xv = rng.normal(size=(batch, 4))
        got = fn(xv)
        want = sg.evaluate([loss, h, dW], {X: xv})
        assert got[1].shape == (batch, 3)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-12)
        np.testing.assert_allclose(got[0], np.mean(np.tanh(xv @ W.value) ** 2), rtol=1e-12)
    assert len(fn._kernels) == 3  # one specialization per batch size seen


def test_symbolic_dims_propagate_through_shapes():
    g = sg.Graph()
    x = g.input("x", shape=("n", 3))
    y = g.input("y", shape=(3,))
    assert (x + y).shape == ("n", 3)
    assert (x @ g.input("w", shape=(3, "m"))).shape == ("n", "m")
    assert sg.sum(x, axis=1).shape == ("n",)


# ---- networkx import / export -------------------------------------------------------------
def _hand_built():
    """sum(tanh((x * x) @ W), axis=1), built directly in networkx."""
    G = nx.MultiDiGraph()
    G.add_node("x", op="input", name="x", shape=("batch", 2), dtype="float64")
    G.add_node("W", op="constant", attrs={"value": np.array([[1.0, -1.0, 0.5], [2.0, 0.0, 1.0]])})
    G.add_node("sq", op="mul")
    G.add_node("mm", op="matmul", shape=("batch", 3), dtype="float64")
    G.add_node("t", op="tanh", name="hidden")
    G.add_node("s", op="sum", attrs={"axis": (1,), "keepdims": False})
    G.add_edge("x", "sq", pos=0)
    G.add_edge("x", "sq", pos=1)  # x * x: two edges from the same node
    G.add_edge("sq", "mm", pos=0)
    G.add_edge("W", "mm", pos=1)
    G.add_edge("mm", "t", pos=0)
    G.add_edge("t", "s", pos=0)
    return G


def test_from_networkx_computes_the_right_values():
    G = _hand_built()
    g = sg.Graph.from_networkx(G)
    x, s = g.imported["x"], g.imported["s"]
    assert s.shape == ("batch",) and g.imported["mm"].shape == ("batch", 3)
    xv = np.array([[0.1, -0.2], [0.3, 0.4], [1.0, 2.0]])
    want = np.tanh((xv * xv) @ G.nodes["W"]["attrs"]["value"]).sum(axis=1)
    np.testing.assert_allclose(sg.evaluate(s, {x: xv}), want, rtol=1e-12)
    np.testing.assert_allclose(sg.compile(s, [x])(xv), want, rtol=1e-12)
    # the imported graph is differentiable like any other
    dx = sg.grad(sg.sum(s), x)
    np.testing.assert_allclose(sg.compile(dx, [x])(xv), _numeric_grad(G, xv), rtol=1e-6)


def _numeric_grad(G, xv, eps=1e-6):
    W = G.nodes["W"]["attrs"]["value"]

    def f(v):
        return np.tanh((v * v) @ W).sum()

    out = np.zeros_like(xv)
    for i in np.ndindex(xv.shape):
        d = np.zeros_like(xv)
        d[i] = eps
        out[i] = (f(xv + d) - f(xv - d)) / (2 * eps)
    return out


def test_from_networkx_keeps_the_graph_consistent():
    site = here(1)
    g = sg.Graph.from_networkx(_hand_built())
    assert len(g) == 6 and g.nx.number_of_edges() == 6
    t = g.imported["t"]
    assert t.name == "hidden" and g.nx.nodes[t.node]["where"] == site
    mul = g.imported["sq"]
    assert g.args(mul.node) == [g.imported["x"].node] * 2
    # it hash-conses like the Tensor API: the same op on the same node is the same node
    assert sg.tanh(g.imported["mm"]) == t


def test_from_networkx_accepts_a_digraph_and_int_ids():
    G = nx.DiGraph()
    G.add_node(10, op="input", name="a", shape=(3,), dtype="float64")
    G.add_node(2, op="exp")
    G.add_edge(10, 2, pos=0)
    g = sg.Graph.from_networkx(G)
    xv = np.array([0.0, 1.0, -1.0])
    np.testing.assert_allclose(sg.evaluate(g.imported[2], {g.imported[10]: xv}), np.exp(xv))


def _mlp_graph():
    g = sg.Graph()
    x = g.input("x", shape=("batch", 3))
    labels = g.input("labels", shape=("batch",), dtype="int64")
    W = g.variable("W", np.linspace(-1, 1, 12).reshape(3, 4))
    b = g.constant(np.array([0.1, 0.2, -0.1, 0.0]), name="bias")
    logits = sg.relu(x @ W + b) * 2.0
    loss = sg.mean(sg.cross_entropy(logits, labels))
    dW = sg.grad(loss, W)
    return g, [x, labels], [loss, dW]


def test_to_networkx_round_trip():
    g, ins, outs = _mlp_graph()
    G = g.to_networkx()
    assert isinstance(G, nx.MultiDiGraph)
    assert sorted(G.nodes) == sorted(g.nx.nodes)
    g2 = sg.Graph.from_networkx(G)
    # same ids, same attributes, same edges with the same positions
    assert all(g2.imported[n].node == n for n in G.nodes)
    for n, d in g.nx.nodes(data=True):
        d2 = g2.nx.nodes[n]
        assert {k: v for k, v in d2.items() if k != "attrs"} == {
            k: v for k, v in d.items() if k != "attrs"
        }
        assert d2["attrs"].keys() == d["attrs"].keys()
    assert sorted(g2.nx.edges(data="pos")) == sorted(g.nx.edges(data="pos"))
    # and the same values
    xv = np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]])
    yv = np.array([1, 3])
    want = sg.compile(outs, ins)(xv, yv)
    outs2 = [g2.imported[o.node] for o in outs]
    ins2 = [g2.imported[i.node] for i in ins]
    got = sg.compile(outs2, ins2)(xv, yv)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_editing_an_export_leaves_the_graph_alone():
    g, ins, outs = _mlp_graph()
    W = g["W"]
    before = W.value.copy()
    G = g.to_networkx()
    G.nodes[W.node]["attrs"]["value"][...] = 0.0
    G.nodes[W.node]["attrs"]["extra"] = 1
    G.nodes[W.node]["shape"] = (9,)
    G.remove_node(outs[1].node)
    np.testing.assert_array_equal(W.value, before)
    assert "extra" not in W.attrs and W.shape == (3, 4)
    assert outs[1].node in g.nx


def test_a_deep_graph_exports_imports_and_prints_without_recursion():
    g = sg.Graph()
    x = g.input("x", shape=(2,))
    h = x
    for _ in range(5_000):  # deeper than Python's default recursion limit
        h = sg.sin(h)
    g2 = sg.Graph.from_networkx(g.to_networkx())
    assert len(g2) == len(g)
    xv = np.array([0.5, -1.0])
    want = xv
    for _ in range(5_000):
        want = np.sin(want)
    got = sg.compile(g2.imported[h.node], [g2.imported[x.node]])(xv)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert sg.to_dot(h).count(" -> ") == 5_000
