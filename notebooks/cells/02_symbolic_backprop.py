CELLS = [
    (
        "md",
        r"""# 02 · Symbol-to-symbol backprop

The course notes distinguish *symbol-to-number* differentiation (Torch, Caffe: numbers in,
gradient numbers out) from *symbol-to-symbol* differentiation (Theano, TensorFlow): the
derivatives are **new nodes added to the same graph**, so they can be inspected, optimized,
compiled, and differentiated again. symgrad works the second way. This notebook shows the
derivative nodes appear, takes derivatives of derivatives, prints the NumPy code the compiler
generates, and watches the rewriter make `log(softmax(z))` numerically safe.""",
    ),
    (
        "code",
        r"""%matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
from graph_drawing import draw
from IPython.display import display

import symgrad as sg


def show(fig):
    display(fig)
    plt.close(fig)""",
    ),
    (
        "md",
        r"""## Before and after `grad`

A one-layer network with a tanh unit and a squared-error cost. `sg.grad(J, [W, b])` walks the
graph backward from $J$ (the notes' `grad_table` algorithm) and, for each node, calls its
op's `bprop` rule, which *builds* the cotangent out of ordinary ops. Orange nodes below are
the ones `grad` added; the forward nodes are reused, never recomputed.""",
    ),
    (
        "code",
        r"""rng = np.random.default_rng(0)
g = sg.Graph()
x = g.input("x", (4, 3))
t = g.input("t", (4, 2))
W = g.variable("W", rng.normal(size=(3, 2)))
b = g.variable("b", np.zeros(2))
y = sg.tanh(x @ W + b)
J = sg.mse(y, t)

before = set(g.nx.nodes)
grad_w, grad_b = sg.grad(J, [W, b])
added = sorted(set(g.nx.nodes) - before)
print(f"forward graph: {len(before)} nodes; grad added {len(added)} nodes")

fig, axes = plt.subplots(1, 2, figsize=(13, 7), gridspec_kw={"width_ratios": [1, 1.6]})
draw([J], ax=axes[0], title="before: J")
title = "after: J, dJ/dW, dJ/db (added nodes orange)"
draw([J, grad_w, grad_b], highlight=added, ax=axes[1], title=title)
show(fig)""",
    ),
    ("code", r"""sg.pprint([grad_w, grad_b])"""),
    ("md", r"""The gradient nodes evaluate to the same numbers as central differences of $J$:"""),
    (
        "code",
        r"""feed = {x: rng.normal(size=(4, 3)), t: rng.normal(size=(4, 2))}
fn = sg.compile([J, grad_w], [x, t])
_, gw = fn(feed[x], feed[t])
numeric, eps = np.zeros_like(gw), 1e-6
for idx in np.ndindex(gw.shape):
    W.value[idx] += eps
    up = fn(feed[x], feed[t])[0]
    W.value[idx] -= 2 * eps
    down = fn(feed[x], feed[t])[0]
    W.value[idx] += eps
    numeric[idx] = (up - down) / (2 * eps)
print("dJ/dW symbolic:\n", gw)
print("max |symbolic - central difference| =", np.abs(gw - numeric).max())""",
    ),
    (
        "md",
        r"""## Grad of grad

Because a derivative is a graph, `grad` applies to it again. For the scalar function
$f(x) = \tanh(x)$ summed over a vector, three applications give $f'$, $f''$, $f'''$;
the elementwise family takes its derivatives from SymPy, so each one stays a single compact
node. Compare with the closed forms $1 - \tanh^2$, $-2\tanh(1-\tanh^2)$ and
$(1-\tanh^2)(6\tanh^2 - 2)$.""",
    ),
    (
        "code",
        r"""h = sg.Graph()
u = h.input("u", (200,))
f = sg.sum(sg.tanh(u))
d1 = sg.grad(f, u)
d2 = sg.grad(sg.sum(d1), u)
d3 = sg.grad(sg.sum(d2), u)
grid = np.linspace(-3, 3, 200)
values = sg.compile([sg.tanh(u), d1, d2, d3], [u])(grid)
th = np.tanh(grid)
closed = [th, 1 - th**2, -2 * th * (1 - th**2), (1 - th**2) * (6 * th**2 - 2)]
for k, (v, c) in enumerate(zip(values, closed)):
    print(f"order {k}: max |symgrad - closed form| = {np.abs(v - c).max():.1e}")

fig, ax = plt.subplots(figsize=(7, 4))
for k, v in enumerate(values):
    ax.plot(grid, v, label=["tanh", "tanh'", "tanh''", "tanh'''"][k])
ax.legend()
ax.set_xlabel("u")
ax.set_title("derivatives of tanh by repeated symbolic grad")
show(fig)
sg.pprint(d2)""",
    ),
    (
        "md",
        r"""The same machinery gives Hessians. A Hessian-vector product is one more sweep:
forward-over-reverse $\mathrm{jvp}(\nabla f, v)$ (the default) or the textbook
reverse-over-reverse $\nabla_x[(\nabla_x f)^\top v]$ of the notes. Both are graph nodes; on
this function they agree with the full Hessian, which `sg.hessian` builds in one vectorized
graph.""",
    ),
    (
        "code",
        r"""k = h.input("k", (3,))
v = h.input("v", (3,))
F = sg.sum(sg.tanh(k) ** 2) + sg.logsumexp(k)
Hv_fr = sg.hvp(F, k, v)
Hv_rr = sg.hvp(F, k, v, mode="rev-rev")
H = sg.hessian(F, k)
point, direction = np.array([0.3, -1.2, 0.8]), np.array([1.0, 2.0, -1.0])
a, b_, Hm = sg.compile([Hv_fr, Hv_rr, H], [k, v])(point, direction)
print("H v, forward-over-reverse:", a)
print("H v, reverse-over-reverse:", b_)
print("H @ v from the Hessian   :", Hm @ direction)""",
    ),
    (
        "md",
        r"""## The generated NumPy source

`sg.compile` orders the needed nodes, frees buffers as soon as they are dead, and emits one
plain Python function of NumPy calls. Every line names the graph node it computes. With
`updates=`, the same function also writes new values into the variables: a whole training
step is one call.""",
    ),
    (
        "code",
        r"""step = sg.compile(J, [x, t], updates={W: W - 0.1 * grad_w, b: b - 0.1 * grad_b})
print(step.source)
before = W.value.copy()
print("J =", step(feed[x], feed[t]), "; W changed by", np.abs(W.value - before).max())""",
    ),
    (
        "md",
        r"""## Rewrites: keeping `log(softmax(z))` finite

Written naively, $\log \mathrm{softmax}(z)_i = \log\big(e^{z_i} / \sum_j e^{z_j}\big)$ underflows
to $\log 0 = -\infty$ as soon as one logit is far below another. The stable form is
$z_i - \mathrm{logsumexp}(z)$, which `sg.log_softmax` computes. The compiler's rewriter (its
*stabilize* phase) is where such patterns are recognized and replaced in the compiled
function, while the reference interpreter `sg.evaluate` runs the graph exactly as written.
The rewrite log of a compiled function names every rewrite that fired.""",
    ),
    (
        "code",
        r"""r = sg.Graph()
z = r.input("z", (2, 3))
naive = sg.log(sg.softmax(z))
logits = np.array([[0.0, 1.0, 2.0], [800.0, 0.0, -800.0]])

with np.errstate(all="ignore"):
    rows = {
        "sg.evaluate (as written)": sg.evaluate(naive, {z: logits}),
        "compile(rewrites=False)": sg.compile(naive, [z], rewrites=False)(logits),
    }
    rewritten = sg.compile(naive, [z])
    rows["compile (rewrites on)"] = rewritten(logits)
rows["sg.log_softmax"] = sg.compile(sg.log_softmax(z), [z])(logits)
for name, value in rows.items():
    print(
        f"{name:26s} row 1: {np.array2string(value[0], precision=4):28s} "
        f"row 2: {np.array2string(value[1], precision=4)}"
    )
print("\nrewrites that fired:", rewritten.rewrite_log or "none")
print(rewritten.source)""",
    ),
    (
        "md",
        r"""Gradients need the same care. The derivative rule of `log_softmax` is written on the
stable form, $\partial/\partial z = g - \mathrm{softmax}(z) \sum g$, so it stays finite
where the chain rule through `log` and `softmax` divides by a probability that rounded
to 0:""",
    ),
    (
        "code",
        r"""weights = r.constant(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
grad_naive = sg.grad(sg.sum(naive * weights), z)
grad_stable = sg.grad(sg.sum(sg.log_softmax(z) * weights), z)
with np.errstate(all="ignore"):
    gn, gs = sg.evaluate([grad_naive, grad_stable], {z: logits})
print("through log(softmax):", gn[1])
print("through log_softmax :", gs[1])""",
    ),
]
