"""More bad input refused with a symgrad error that names the thing, the shapes and the caller's
file:line, leaving the graph, the variables' values and the op registry as they were.

Each bad call is a one-line lambda, so the line the message must point at is the lambda's own.
"""

import networkx as nx
import numpy as np
import pytest
import sympy as sp

import symgrad as sg
from symgrad import krylov
from symgrad.ops import OPS

HERE = "test_errors_audit.py:"


def site(fn) -> str:
    return f"{__file__}:{fn.__code__.co_firstlineno}"


def refused(error, bad, *words, graph=None):
    """``bad()`` raises ``error`` naming ``words`` and the lambda's line; ``graph`` (if given)
    and the op registry are unchanged. Returns the message."""
    before = (len(graph), graph._next_id) if graph is not None else None
    ops = dict(OPS)
    with pytest.raises(error) as info:
        bad()
    text = str(info.value)
    assert isinstance(info.value, sg.SymgradError)
    assert HERE in text
    for word in [*words, site(bad)]:
        assert word in text, f"{word!r} not in message:\n{text}"
    if graph is not None:
        assert (len(graph), graph._next_id) == before
    assert OPS == ops
    return text


# ---- pprint and to_dot ------------------------------------------------------------------
NOT_GRAPHS = [
    (3, "got int 3"),
    ("abc", "got str 'abc'"),
    (np.ones(3), "got ndarray"),
    (None, "got NoneType None"),
    ([], "got list []"),
    ([1, 2], "got list [1, 2]"),
    (nx.MultiDiGraph(), "from_networkx"),
]


@pytest.mark.parametrize(
    "value, words", NOT_GRAPHS, ids=["int", "str", "array", "None", "empty", "ints", "networkx"]
)
def test_pprint_and_to_dot_refuse_what_is_no_graph(value, words):
    g = sg.Graph()
    sg.tanh(g.input("x", (3,)))
    refused(sg.GraphError, lambda: sg.pprint(value), "pprint needs a Graph", words, graph=g)
    refused(sg.GraphError, lambda: sg.to_dot(value), "to_dot needs a Graph", words, graph=g)


def test_pprint_and_to_dot_refuse_tensors_of_two_graphs():
    x, h = sg.Graph().input("x", (3,)), sg.Graph().input("h", (3,))
    refused(sg.GraphError, lambda: sg.pprint([x, h]), "pprint: the Tensors are of different")
    refused(sg.GraphError, lambda: sg.to_dot([x, h]), "to_dot: the Tensors are of different")


def test_to_dot_refuses_bad_highlights_and_builds_nothing():
    g = sg.Graph()
    x = g.input("x", (3,))
    y = sg.tanh(x)
    h = sg.Graph().input("h", (3,))
    refused(sg.GraphError, lambda: sg.to_dot(y, highlight=[3.5]), "float 3.5", graph=g)
    refused(sg.GraphError, lambda: sg.to_dot(y, highlight="x"), "got str 'x'", graph=g)
    refused(sg.GraphError, lambda: sg.to_dot(y, highlight=[h]), "Tensor of another", graph=g)
    refused(sg.GraphError, lambda: sg.to_dot(y, highlight=[99]), "highlight 99 is no node")
    refused(sg.GraphError, lambda: sg.to_dot(y, highlight=g), "got Graph", graph=g)
    # one Tensor (or id) is highlighted as itself: iterating it would build nodes
    before = len(g)
    one = sg.to_dot(y, highlight=x)
    assert len(g) == before
    assert one == sg.to_dot(y, highlight=[x]) == sg.to_dot(y, highlight=x.node)
    assert "fillcolor" in one


# ---- user-defined elementwise ops ------------------------------------------------------
def _raises(a):
    raise RuntimeError("no symbols here")


def test_an_elementwise_builder_that_raises_names_the_op():
    text = refused(sg.GraphError, lambda: sg.elementwise("boom", _raises), "'boom'", "x0")
    assert "RuntimeError: no symbols here" in text
    assert "boom" not in OPS
    refused(sg.GraphError, lambda: sg.elementwise("npsin", np.sin), "'npsin'", "TypeError")
    # the name is still free
    g = sg.Graph()
    x = g.input("x", (3,))
    boom = sg.elementwise("boom", lambda a: 2 * a)
    np.testing.assert_allclose(sg.evaluate([boom(x)], {x: np.ones(3)})[0], 2.0)


NON_FINITE = [
    ("float", lambda a: a * sp.Float("1e400"), "1.00e+400"),
    ("int", lambda a: a * sp.Integer(10) ** 400, "1.00e+400"),
    ("inf", lambda a: a * sp.oo, "oo"),
    ("-inf", lambda a: sp.exp(a) - sp.oo * a, "-oo"),
    ("nan", lambda a: a + sp.nan, "nan"),
    ("zoo", lambda a: a + sp.S(1) / 0, "zoo"),
    ("float inf", lambda a: a * sp.Float("inf"), "oo"),
    ("in a piecewise", lambda a: sp.Piecewise((a, a > 0), (sp.Float("1e999"), True)), "1.00e+999"),
    ("exp(1000)", lambda a: sp.exp(1000) * a, "exp(1000)"),
    ("E**800", lambda a: a * sp.E**800, "exp(800)"),
]


@pytest.mark.parametrize("kind, builder, shown", NON_FINITE, ids=[c[0] for c in NON_FINITE])
def test_elementwise_refuses_constants_that_are_no_finite_float64(kind, builder, shown):
    name = f"nonfinite_{kind.replace(' ', '_')}"
    refused(
        sg.GraphError,
        lambda: sg.elementwise(name, builder),
        f"elementwise {name!r}",
        f"constant {shown}",
        "no finite float64",
    )
    assert name not in OPS


def test_elementwise_heads_with_no_numpy_form_name_the_op():
    refused(sg.GraphError, lambda: sg.elementwise("zeta1", lambda a: sp.zeta(a)), "'zeta1'", "zeta")
    assert "zeta1" not in OPS


def test_large_finite_constants_still_work():
    g = sg.Graph()
    x = g.input("x", (3,))
    big = sg.elementwise("times_1e300", lambda a: a * sp.Float("1e300"))
    y = big(x)
    fn = sg.compile([y, sg.grad(sg.sum(y), x)], [x])
    got, dx = fn(np.array([1.0, 2.0, -1.0]))
    np.testing.assert_allclose(got, [1e300, 2e300, -1e300])
    np.testing.assert_allclose(dx, 1e300)


def test_a_derivative_constant_beyond_float64_is_refused():
    g = sg.Graph()
    x = g.input("x", (3,))
    steep = sg.elementwise("steep", lambda a: sp.Float("1e308") * a**10)
    f = sg.sum(steep(x))
    v = g.input("v", (3,))
    words = ("steep", "argument 0", "constant 1.00e+309", "no finite float64")
    refused(sg.DifferentiationError, lambda: sg.grad(f, x), *words, graph=g)
    refused(sg.DifferentiationError, lambda: sg.jvp(f, x, v), *words, graph=g)
    np.testing.assert_allclose(sg.compile(f, [x])(np.full(3, 0.5)), 3 * (1e308 * 0.5**10))


# ---- krylov.get_flat / set_flat and nn.split_flat ----------------------------------------
def test_get_flat_and_set_flat_refuse_what_holds_no_value():
    g = sg.Graph()
    W, x = g.variable("W", np.ones(3)), g.input("x", (2,))
    c = g.constant(np.arange(2.0))
    words = ("'x':input(2,)", "no variable")
    refused(sg.GraphError, lambda: krylov.get_flat([W, x]), "get_flat", *words, graph=g)
    refused(sg.GraphError, lambda: krylov.set_flat([W, x], np.zeros(5)), *words, graph=g)
    refused(sg.GraphError, lambda: krylov.set_flat([c], np.zeros(2)), "constant cannot be set")
    refused(sg.GraphError, lambda: krylov.get_flat(W), "list of variables", graph=g)
    refused(sg.GraphError, lambda: krylov.get_flat([np.ones(3)]), "got ndarray", graph=g)
    refused(sg.ShapeError, lambda: krylov.set_flat([W], np.zeros(4)), "hold 3 numbers", "(4,)")
    refused(sg.ShapeError, lambda: krylov.set_flat([W], ["a", "b", "c"]), "hold 3 numbers")
    refused(sg.ShapeError, lambda: krylov.set_flat([W], np.ones(3) * 1j), "complex128")
    np.testing.assert_array_equal(W.value, np.ones(3))  # nothing was written
    krylov.set_flat([W], np.arange(3.0))
    np.testing.assert_array_equal(krylov.get_flat([W, c]), [0.0, 1.0, 2.0, 0.0, 1.0])


def test_split_flat_checks_the_shapes_before_building_anything():
    g = sg.Graph()
    theta = g.input("theta", (5,))
    bad_sum = lambda: sg.nn.split_flat(theta, [(2,), (2,)])  # noqa: E731
    refused(sg.ShapeError, bad_sum, "shapes hold 4 values", "'theta'", graph=g)
    refused(sg.ShapeError, lambda: sg.nn.split_flat(theta, [(2, "a")]), "(2, 'a')", graph=g)
    refused(sg.ShapeError, lambda: sg.nn.split_flat(np.ones(5), [(5,)]), "1-D Tensor", graph=g)
    with pytest.raises(ValueError):  # still a ValueError for code that caught it
        sg.nn.split_flat(theta, [(6,)])
    a, b = sg.nn.split_flat(theta, [(2,), [1, 3]])
    assert a.shape == (2,) and b.shape == (1, 3)


# ---- truth value and length of a Tensor ---------------------------------------------------
def test_bool_and_len_of_a_tensor_name_the_call_site():
    g = sg.Graph()
    x, b = g.input("x", (3,)), g.input("b", ("batch", 3))
    s = sg.sum(x)
    refused(sg.SymgradError, lambda: bool(x), "truth value of symbolic", "'x'", graph=g)
    positive = x > 0
    refused(sg.SymgradError, lambda: positive and 1, "truth value", graph=g)
    refused(sg.ShapeError, lambda: len(b), "'b'", "first dim 'batch' is symbolic", graph=g)
    refused(sg.ShapeError, lambda: len(s), "0-d tensor", "shape=()", graph=g)
    assert len(x) == 3 and len(list(x)) == 3


def test_elementwise_constants_pi_and_e_are_their_float_values():
    f = sg.elementwise("pi_e_shift", lambda a: sp.pi * a + sp.E + sp.exp(-1000) * a)
    g = sg.Graph()
    x = g.input("x", (3,))
    y = f(x)
    fn = sg.compile([y, sg.grad(sg.sum(y * y), x)], [x])
    xv = np.array([-1.0, 0.5, 2.0])
    got_y, got_dx = fn(xv)
    np.testing.assert_allclose(got_y, np.pi * xv + np.e, rtol=1e-15)
    np.testing.assert_allclose(got_dx, 2 * (np.pi * xv + np.e) * np.pi, rtol=1e-14)
    np.testing.assert_allclose(sg.evaluate(y, {x: xv}), got_y, rtol=1e-15)
