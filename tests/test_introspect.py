"""sg.pprint (one line per node) and sg.to_dot (Graphviz text), names escaped."""

import re

import numpy as np

import symgrad as sg

EVIL = 'x"; import os; os.system("echo pwned") #\n\\'


def small():
    g = sg.Graph()
    x = g.input("x", shape=("batch", 3))
    W = g.variable("W", np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    y = sg.sum(sg.tanh(x @ W) * 2.0)
    return g, x, W, y


def test_pprint_prints_one_line_per_node(capsys):
    g, x, W, y = small()
    sg.pprint(y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(g)  # every node of y's subgraph is an ancestor of y here
    ops = ["input", "variable", "matmul", "tanh", "constant", "mul", "sum"]
    for line, n in zip(lines, sorted(g.nx.nodes)):
        d = g.nx.nodes[n]
        assert line.startswith(f"%{n}:{d['dtype']}[{','.join(map(str, d['shape']))}] = {d['op']}")
    assert [g.nx.nodes[n]["op"] for n in sorted(g.nx.nodes)] == ops
    text = "\n".join(lines)
    assert "float64[batch,3] = input  # x" in text
    assert re.search(r"float64\[batch,2\] = matmul %0 %1\b", text)
    assert "float64[] = sum[axis=(0, 1), keepdims=False]" in text
    assert "W" in lines[1] and "[[1.,2.]," in lines[1]  # a small value, kept on its line


def test_pprint_shows_only_the_tensors_subgraph(capsys):
    g, x, W, y = small()
    other = sg.exp(x)
    sg.pprint(other)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "exp %0" in lines[1]
    sg.pprint(g)  # a whole graph
    assert len(capsys.readouterr().out.splitlines()) == len(g)
    sg.pprint([other, y])
    assert len(capsys.readouterr().out.splitlines()) == len(g)


def test_pprint_keeps_weird_names_on_one_line(capsys):
    g = sg.Graph()
    x = g.input(EVIL, shape=(2,))
    sg.pprint(sg.exp(x))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "\\n" in lines[0]  # the newline is shown, not printed


# ---- DOT ---------------------------------------------------------------------------------------
NODE = re.compile(r'^  n(\d+) \[label="((?:[^"\\]|\\.)*)"(?:, [^\]]*)?\];$')
EDGE = re.compile(r'^  n(\d+) -> n(\d+) \[label="(\d+)"\];$')


def parse_dot(text):
    """Nodes {id: label} and edges [(src, dst, pos)] of the DOT that to_dot writes; every
    line must be a header, a node, an edge or the closing brace."""
    lines = text.splitlines()
    assert lines[0] == "digraph symgrad {" and lines[-1] == "}"
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if m := NODE.match(line):
            nodes[int(m.group(1))] = re.sub(r"\\(.)", r"\1", m.group(2))  # undo DOT escapes
        elif m := EDGE.match(line):
            edges.append(tuple(int(v) for v in m.groups()))
        else:
            assert re.match(r"^  (rankdir=|node \[)", line), line
    return nodes, edges


def test_to_dot_has_a_node_line_per_node_and_an_edge_per_argument():
    g, x, W, y = small()
    sq = x * x
    text = sg.to_dot([y, sq])
    assert text.startswith("digraph")
    nodes, edges = parse_dot(text)
    assert sorted(nodes) == sorted(g.nx.nodes)
    for n, label in nodes.items():
        d = g.nx.nodes[n]
        assert label.startswith(f"%{n} {d['op']}")
        assert label.endswith("n" + f"{d['dtype']}[{','.join(map(str, d['shape']))}]")
    assert sorted(edges) == sorted((a, n, pos) for a, n, pos in g.nx.edges(data="pos"))
    assert (x.node, sq.node, 0) in edges and (x.node, sq.node, 1) in edges  # x * x: two edges


def test_to_dot_highlights():
    g, x, W, y = small()
    text = sg.to_dot(y, highlight=[W, y.node])
    filled = {int(m.group(1)) for m in re.finditer(r"n(\d+) \[.*style=filled", text)}
    assert filled == {W.node, y.node}


def test_to_dot_escapes_names():
    g = sg.Graph()
    x = g.input(EVIL, shape=(2,))
    y = sg.exp(x)
    nodes, edges = parse_dot(sg.to_dot(y))
    assert edges == [(x.node, y.node, 0)]
    label = nodes[x.node]
    # quotes and backslashes come back intact; the newline is shown as an escape on one line
    assert label.startswith('%0 input x"; import os; os.system("echo pwned") #')
    assert "\n" not in label
    # after the "#": the newline shown as backslash-n, the backslash itself, then the DOT
    # line break (which reads back as "n") and the type
    assert label.split("#", 1)[1] == "\\n" + "\\" + "n" + "float64[2]"
