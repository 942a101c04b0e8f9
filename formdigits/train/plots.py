"""Training-curve and confusion-matrix pictures (matplotlib, drawn off-screen)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..classifier import LABELS  # noqa: E402


def plot_curves(history, path):
    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(epochs, [h["train_loss"] for h in history], marker="o")
    a.set(xlabel="epoch", ylabel="training loss", title="Loss")
    b.plot(epochs, [100 * h["train_accuracy"] for h in history], marker="o", label="train (augmented)")
    b.plot(epochs, [100 * h["val_accuracy"] for h in history], marker="o", label="validation (clean)")
    b.set(xlabel="epoch", ylabel="accuracy %", title="Accuracy")
    b.legend()
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_confusion(confusion, path):
    m = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(7, 6))
    shown = np.where(np.eye(*m.shape, dtype=bool), 0, m)  # colour the errors, not the diagonal
    ax.imshow(shown, cmap="Reds")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=7)
    ax.set_xticks(range(m.shape[1]), LABELS[: m.shape[1]], rotation=45)
    ax.set_yticks(range(m.shape[0]), LABELS[: m.shape[0]])
    ax.set(xlabel="predicted", ylabel="true", title=f"MNIST test confusion ({m.sum()} digits)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
