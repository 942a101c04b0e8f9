"""ONNX Runtime inference speed of a formdigits model: digits/s at a given batch size.

    python benchmarks/inference.py [--model export/formdigits.onnx] [--batch 256] [--threads 2]

Times ``Classifier.predict`` on preprocessed MNIST test digits (preprocessing
timed separately), best of several rounds, and prints one JSON line.
"""

import argparse
import json
import os
import platform
import time

import numpy as np

from formdigits.classifier import Classifier
from formdigits.mnist import load_mnist
from formdigits.preprocess import preprocess_batch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--data-dir", default=None)
    a = ap.parse_args()

    images, _ = load_mnist("test", a.data_dir)
    t = time.perf_counter()
    batch = preprocess_batch(list(images))
    pre = len(images) / (time.perf_counter() - t)
    clf = Classifier(a.model, device=a.device, threads=a.threads, batch_size=a.batch)
    clf.predict(batch[: a.batch * 2])  # warm-up
    best = 0.0
    for _ in range(a.rounds):
        t = time.perf_counter()
        clf.predict(batch)
        best = max(best, len(batch) / (time.perf_counter() - t))
    print(json.dumps({
        "model": str(clf.path), "model_bytes": os.path.getsize(clf.path), "provider": clf.provider,
        "batch": a.batch, "threads": a.threads, "inference_digits_per_s": round(best),
        "preprocess_digits_per_s": round(pre), "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }))  # fmt: skip
    return 0 if np.isfinite(best) else 1


if __name__ == "__main__":
    raise SystemExit(main())
