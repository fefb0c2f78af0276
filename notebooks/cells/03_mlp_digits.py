CELLS = [
    (
        "md",
        r"""# 03 · An MLP on handwritten digits

scikit-learn's digits: 1797 images of 8×8 pixels, ten classes. A 64-128-10 network with
ReLU hidden units and a softmax cross-entropy output (the maximum-likelihood cost of the
course notes), trained with minibatch momentum SGD through `sg.nn.fit`: each minibatch is
one call of a compiled function that runs forward, backward and the parameter update.""",
    ),
    (
        "code",
        r"""%matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from symgrad import nn


def show(fig):
    display(fig)
    plt.close(fig)


Xtr, Xte, ytr, yte = nn.digits(test_size=0.25, seed=0)
print("train", Xtr.shape, "test", Xte.shape, "classes", np.bincount(ytr))
fig, axes = plt.subplots(2, 10, figsize=(10, 2.4))
for ax, image, label in zip(axes.ravel(), Xtr, ytr):
    ax.imshow(image.reshape(8, 8), cmap="gray_r")
    ax.set_title(str(label))
    ax.set_axis_off()
show(fig)""",
    ),
    (
        "md",
        r"""## Training with validation and early stopping

The held-out quarter doubles as validation data here (there is no separate test set in this
small demo). `patience=5` stops once the validation loss has not improved for five epochs
and restores the best parameters; `history` keeps per-epoch curves for plotting.""",
    ),
    (
        "code",
        r"""net = nn.mlp([64, 128, 10], "relu", seed=0)
print(net)
history = nn.fit(
    net,
    Xtr,
    ytr,
    optimizer=nn.Momentum(lr=0.05, momentum=0.9),
    epochs=60,
    batch_size=64,
    validation=(Xte, yte),
    patience=5,
    seed=0,
    quiet=True,
)
print(
    f"stopped: {history.stopped} after {len(history.epoch)} epochs, best epoch "
    f"{history.best_epoch}; step compiled in {1e3 * history.compile_time:.1f} ms, "
    f"{history.time[-1]:.2f} s of training"
)
accuracy = nn.accuracy(nn.predict(net, Xte), yte)
print(f"held-out accuracy {100 * accuracy:.2f}%")

fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
history.plot(ax=a)
a.set_yscale("log")
a.axvline(history.best_epoch, color="gray", ls=":", label="best epoch")
a.legend()
a.set_title("cross-entropy")
b.plot(history.epoch, 100 * np.array(history.val_accuracy))
b.set_xlabel("epoch")
b.set_ylabel("held-out accuracy (%)")
b.set_title("accuracy")
show(fig)""",
    ),
    (
        "md",
        r"""## Where it errs

The confusion matrix counts (true class, predicted class) pairs on the held-out set.""",
    ),
    (
        "code",
        r"""pred = nn.predict(net, Xte).argmax(1)
confusion = np.zeros((10, 10), int)
np.add.at(confusion, (yte, pred), 1)
fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.2, 1]})
im = a.imshow(confusion, cmap="Blues")
for i, j in zip(*np.nonzero(confusion)):
    a.text(
        j,
        i,
        confusion[i, j],
        ha="center",
        va="center",
        color="white" if confusion[i, j] > 20 else "black",
        fontsize=8,
    )
a.set_xlabel("predicted")
a.set_ylabel("true")
a.set_xticks(range(10))
a.set_yticks(range(10))
a.set_title("confusion matrix")
wrong = np.flatnonzero(pred != yte)[:8]
b.set_axis_off()
for k, i in enumerate(wrong):
    ax = fig.add_axes([0.58 + 0.1 * (k % 4), 0.5 - 0.4 * (k // 4), 0.08, 0.32])
    ax.imshow(Xte[i].reshape(8, 8), cmap="gray_r")
    ax.set_title(f"{yte[i]} → {pred[i]}", fontsize=9)
    ax.set_axis_off()
show(fig)""",
    ),
    (
        "md",
        r"""## Comparing optimizers

Every optimizer is written as graph `updates` (velocities and moments are graph variables
beside the parameters), so each one's step is still a single compiled call. Same network,
same initialization, same minibatches; curves against epochs and against wall time.
Weight decay is an L2 penalty for the SGD family and decoupled (AdamW) for Adam.""",
    ),
    (
        "code",
        r"""optimizers = {
    "SGD lr=0.1": nn.SGD(lr=0.1),
    "momentum 0.9": nn.Momentum(lr=0.05, momentum=0.9),
    "Nesterov 0.9": nn.Nesterov(lr=0.05, momentum=0.9),
    "Adam 1e-3": nn.Adam(lr=1e-3),
    "AdamW 1e-3, wd=1e-2": nn.Adam(lr=1e-3, weight_decay=1e-2),
}
runs = {}
for name, opt in optimizers.items():
    model = nn.mlp([64, 128, 10], "relu", seed=0)
    runs[name] = nn.fit(
        model,
        Xtr,
        ytr,
        optimizer=opt,
        epochs=20,
        batch_size=64,
        validation=(Xte, yte),
        seed=0,
        quiet=True,
    )

fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for name, h in runs.items():
    axes[0].semilogy(h.epoch, h.loss, label=name)
    axes[1].semilogy(h.time, h.val_loss, label=name)
    axes[2].plot(h.epoch, 100 * np.array(h.val_accuracy), label=name)
axes[0].set(xlabel="epoch", ylabel="training loss", title="training loss")
axes[1].set(xlabel="seconds", ylabel="held-out loss", title="held-out loss vs wall time")
axes[2].set(xlabel="epoch", ylabel="%", title="held-out accuracy", ylim=(85, 100))
axes[0].legend()
show(fig)
print(f"{'optimizer':22s} {'final loss':>10s} {'held-out acc':>12s} {'seconds':>8s}")
for name, h in runs.items():
    print(f"{name:22s} {h.loss[-1]:10.4f} {100 * h.val_accuracy[-1]:11.2f}% {h.time[-1]:8.2f}")""",
    ),
    (
        "md",
        r"""## One step, one call

The momentum step, as generated: the forward pass, the backward pass and the update of
every parameter and velocity are one NumPy function (the beginning is shown).""",
    ),
    (
        "code",
        r"""step = runs["momentum 0.9"].step
source = step.function.source
print("\n".join(source.splitlines()[:25]))
print(f"... {len(source.splitlines())} lines in all")""",
    ),
]
