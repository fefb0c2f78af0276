CELLS = [
    (
        "md",
        r"""# 01 · Learning XOR

The course notes (chapter 6, *Deep feedforward networks*) train a tiny network on the four
XOR points and compare it with a solution written down by hand:

$$f(x; W, c, w, b) = w^\top \max(0, W^\top x + c) + b, \qquad
J(\theta) = \tfrac14 \sum_{x} \big(f^*(x) - f(x;\theta)\big)^2 .$$

A linear model cannot separate XOR; one hidden layer of two ReLU units can. Here we build
that network as a symgrad graph, look at it, check the textbook solution, train it with
`symgrad.nn`, and put the learned solution beside the textbook one.""",
    ),
    (
        "code",
        r"""%matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
from graph_drawing import draw
from IPython.display import display

import symgrad as sg
from symgrad import nn


def show(fig):
    display(fig)
    plt.close(fig)


X, Y = nn.xor()
print(np.c_[X, Y])""",
    ),
    (
        "md",
        r"""## The network as a graph

`nn.mlp([2, 2, 1], "relu")` is two Dense layers: the hidden layer holds $W$ and $c$, the
output layer $w$ and $b$, all graph *variables* (their values live in the graph and a
compiled training step updates them in place). Applying it to an input node and adding the
loss gives the computational graph below (inputs blue, variables green).""",
    ),
    (
        "code",
        r"""TEXTBOOK = {
    "W": np.array([[1.0, 1.0], [1.0, 1.0]]),
    "c": np.array([0.0, -1.0]),
    "w": np.array([1.0, -2.0]),
    "b": np.array(0.0),
}

net = nn.mlp([2, 2, 1], "relu")
names = dict(zip("Wcwb", net.params))
g = net.graph
x_in = g.input("X", ("batch", 2))
y_in = g.input("y", ("batch", 1))
f = net(x_in)
J = sg.mse(f, y_in)
sg.pprint(J)

fig, ax = plt.subplots(figsize=(5, 6))
draw([J], ax=ax, title="J = mse(w^T relu(W^T x + c) + b, y)")
show(fig)""",
    ),
    (
        "md",
        r"""## The textbook solution, step by step

With $W = \begin{bmatrix}1&1\\1&1\end{bmatrix}$, $c = (0, -1)$, $w = (1, -2)$, $b = 0$ the
notes compute $XW$, add $c$, rectify, and read off exactly $(0, 1, 1, 0)$. The same
intermediate values, evaluated from the graph:""",
    ),
    (
        "code",
        r"""net.set_values([TEXTBOOK[k].reshape(names[k].shape) for k in "Wcwb"])
W, c = names["W"], names["c"]
XW = x_in @ W
steps = sg.evaluate([XW, XW + c, sg.relu(XW + c), f], {x_in: X})
for title, value in zip(["XW", "XW + c", "max(0, XW + c)", "f(X)"], steps):
    print(f"{title}:\n{value}\n")
print("J at the textbook solution:", sg.evaluate(J, {x_in: X, y_in: Y[:, None]}))""",
    ),
    (
        "md",
        r"""## Training

Gradient descent with momentum, full batch, one compiled call per step (forward, backward and
the update of every variable). The notes advise small random weights and small positive
biases; with only two ReLU units a unit can die (stay negative on all four points), and then
we restart from a new random point, as one would in practice.""",
    ),
    (
        "code",
        r"""rng = np.random.default_rng(0)
for start in range(1, 21):
    net.set_values(
        [
            rng.normal(0.0, 1.0, (2, 2)),
            rng.uniform(0.0, 0.1, 2),
            rng.normal(0.0, 1.0, (2, 1)),
            np.zeros(1),
        ]
    )
    history = nn.fit(
        net,
        X,
        Y,
        loss="mse",
        optimizer=nn.Momentum(lr=0.05, momentum=0.9),
        epochs=3000,
        batch_size=None,
        target_loss=1e-10,
        quiet=True,
    )
    if history.stopped == "target":
        break
    print(f"start {start}: stuck at J = {history.loss[-1]:.3g}")
print(f"start {start}: J = {history.loss[-1]:.2e} after {len(history.loss)} steps")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.semilogy(history.epoch, history.loss)
ax.set_xlabel("step")
ax.set_ylabel("J (log scale)")
ax.set_title("XOR training, momentum SGD")
show(fig)""",
    ),
    (
        "md",
        r"""## Learned solution beside the textbook one

The learned parameters are not the textbook's: any solution that maps the four points to
$(0, 1, 1, 0)$ will do, and there are many (rescale a hidden unit by $a > 0$ and its outgoing
weight by $1/a$, swap the two units, ...). Both networks compute XOR on the four points;
between them they draw different functions.""",
    ),
    (
        "code",
        r"""learned = {k: v.value.reshape(np.shape(TEXTBOOK[k])).copy() for k, v in names.items()}
for k in "Wcwb":
    print(f"{k}: learned {np.round(learned[k], 3).tolist()!s:36} textbook {TEXTBOOK[k].tolist()}")
print("f(X) learned :", np.round(nn.predict(net, X).ravel(), 6))


def f_numpy(p, pts):
    return np.maximum(0, pts @ p["W"] + p["c"]) @ p["w"] + p["b"]


print("f(X) textbook:", f_numpy(TEXTBOOK, X))

grid = np.linspace(-0.5, 1.5, 121)
G1, G2 = np.meshgrid(grid, grid)
pts = np.c_[G1.ravel(), G2.ravel()]
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
for ax, (title, p) in zip(axes, [("learned", learned), ("textbook", TEXTBOOK)]):
    im = ax.contourf(
        G1,
        G2,
        f_numpy(p, pts).reshape(G1.shape),
        levels=np.linspace(-1, 2, 31),
        cmap="coolwarm",
        extend="both",
    )
    ax.contour(G1, G2, f_numpy(p, pts).reshape(G1.shape), levels=[0.5], colors="k")
    ax.scatter(X[:, 0], X[:, 1], c=Y, cmap="coolwarm", edgecolors="k", s=120, vmin=-1, vmax=2)
    ax.set_title(f"{title}: f(x), the 0.5 level in black")
    ax.set_xlabel("x1")
axes[0].set_ylabel("x2")
fig.colorbar(im, ax=axes, shrink=0.8)
show(fig)""",
    ),
    (
        "md",
        r"""## What the hidden layer does

In the space of the hidden units $h = \max(0, W^\top x + c)$ the two points of class 1
land on one side of a line and the two of class 0 on the other: the hidden layer has made the
problem linearly separable, which is the point of the example in the notes.""",
    ),
    (
        "code",
        r"""fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, (title, p) in zip(axes, [("learned", learned), ("textbook", TEXTBOOK)]):
    h = np.maximum(0, X @ p["W"] + p["c"])
    ax.scatter(h[:, 0], h[:, 1], c=Y, cmap="coolwarm", edgecolors="k", s=140)
    spots = {}  # points that land on the same hidden vector share one label
    for hv, point in zip(np.round(h, 3), X.astype(int)):
        spots.setdefault(tuple(hv), []).append(f"x={tuple(int(t) for t in point)}")
    for (u, v), texts in spots.items():
        ax.annotate(", ".join(texts), (u, v), textcoords="offset points", xytext=(8, 8))
    # the output unit's decision line w^T h + b = 0.5
    line = np.linspace(h.min() - 0.5, h.max() + 0.5, 10)
    if abs(p["w"][1]) > 1e-9:
        ax.plot(line, (0.5 - p["b"] - p["w"][0] * line) / p["w"][1], "k--", label="w^T h + b = 1/2")
    ax.set_xlabel("h1")
    ax.set_ylabel("h2")
    ax.set_title(f"hidden space, {title}")
    ax.legend(loc="lower right")
    ax.margins(0.25)
show(fig)""",
    ),
]
