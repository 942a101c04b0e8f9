"""Measure an exported ONNX model through ONNX Runtime: MNIST test set and non-digits.

This is what the shipped figures are measured with; it needs no torch.
"""

import time

import numpy as np

from .classifier import DIGITS, REJECT, Classifier
from .mnist import load_mnist
from .preprocess import preprocess_batch
from .train.augment import NONDIGIT_TEST_SEED, nondigit_set


def evaluate(model_path=None, data_dir=None, limit=0, nondigits=2000, device="auto", batch_size=256):
    """Return a dict of figures; ``accuracy`` is strict (a "reject" answer counts as wrong)."""
    clf = Classifier(model_path, device=device, batch_size=batch_size)
    images, labels = load_mnist("test", data_dir)
    if limit:
        images, labels = images[:limit], labels[:limit]
    t0 = time.perf_counter()
    batch = preprocess_batch(list(images), clf.params)
    t1 = time.perf_counter()
    probs = clf.predict(batch)
    t2 = time.perf_counter()
    pred = probs.argmax(1)
    n_classes = len(clf.labels)
    confusion = np.zeros((10, n_classes), np.int64)
    np.add.at(confusion, (labels, pred), 1)
    per_class = {d: float(confusion[i, i] / max(1, confusion[i].sum())) for i, d in enumerate(DIGITS)}
    result = {
        "model": str(clf.path),
        "device": clf.device,
        "n": int(len(labels)),
        "accuracy": float((pred == labels).mean()),
        "errors": int((pred != labels).sum()),
        "per_class_accuracy": per_class,
        "confusion": confusion.tolist(),
        "labels": list(clf.labels),
        "preprocess_digits_per_s": len(labels) / max(t1 - t0, 1e-9),
        "inference_digits_per_s": len(labels) / max(t2 - t1, 1e-9),
    }
    if REJECT in clf.labels:
        result["rejected_digits"] = int((pred == clf.labels.index(REJECT)).sum())
    if nondigits:
        q = clf.classify(nondigit_set(nondigits, NONDIGIT_TEST_SEED, images))
        digit_conf = q[:, :10].max(1)
        result["nondigit"] = {
            "n": nondigits,
            "rejected": float((q.argmax(1) >= 10).mean()),
            "digit_confidence_ge_0.5": float((digit_conf >= 0.5).mean()),
            "digit_confidence_ge_0.9": float((digit_conf >= 0.9).mean()),
        }
    return result


def report_lines(r):
    """The figures of :func:`evaluate` as lines of text for a person."""
    lines = [f"model     {r['model']} ({r['device']})",
             f"accuracy  {r['accuracy']:.2%}  ({r['errors']} errors in {r['n']} MNIST test digits"
             f", {r.get('rejected_digits', 0)} of them answered 'reject')",
             "per class " + "  ".join(f"{d}:{a:.2%}" for d, a in r["per_class_accuracy"].items()),
             "confusion (rows: true digit, columns: " + " ".join(r["labels"]) + ")"]  # fmt: skip
    lines += [f"  {d}  " + " ".join(f"{v:5d}" for v in row) for d, row in enumerate(r["confusion"])]
    if nd := r.get("nondigit"):
        lines.append(f"non-digits {nd['n']} crops: {nd['rejected']:.1%} rejected, "
                     f"{nd['digit_confidence_ge_0.9']:.2%} read as a digit with confidence >= 0.9")  # fmt: skip
    lines.append(f"speed     {r['inference_digits_per_s']:.0f} digits/s inference, "
                 f"{r['preprocess_digits_per_s']:.0f} digits/s preprocessing")  # fmt: skip
    return lines
