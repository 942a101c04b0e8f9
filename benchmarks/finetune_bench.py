"""Corrections teach the model (issue 20): a few hundred reviewed fields of one writer, fine-tuned on, read on fresh pages.

    python benchmarks/finetune_bench.py --out /tmp/fd-ft                  # the figure in BENCHMARKS.md
    python benchmarks/finetune_bench.py --out /tmp/fd-ft --tune-pages 8 --fresh-pages 8 --classic-pages 6  # quick

One writer, the same on every page: a backhand (slanted left, shear -0.45), continental
1s (a long flag from the top) and crossed 7s, drawn by a fixed transform of MNIST test
digits on the synthesizer's realistic pages. The shipped model reads most of those 1s
as 7s. The loop, as a user would run it:

1. tuning pages (seed A; digits drawn from MNIST test digits 0-4,999 only) scanned with the
   shipped model;
2. the review simulated from the truth: every field the scan sent to review is checked
   (``verified`` when the scan was right, ``corrected`` with the true value otherwise,
   ``rejected`` for a field on no truth field), written as ``out.reviewed.csv`` in the
   review command's format;
3. ``corrections.export_crops`` writes the crops, ``formdigits train --finetune --extra-data``
   tunes the shipped model (its int8 twin is what the scanner runs on a CPU);
4. FRESH pages of the same writer (seed B; digits from MNIST test 5,000-9,999, which no
   tuning page drew) scanned with the shipped and the tuned int8 models, scored against
   the truth; the same for classic pages (``scan_bench --mix classic``) and MNIST test.

Prints one JSON object (and writes it to OUT/result-RUN.json).
"""

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from formdigits.classifier import Classifier, default_model_path
from formdigits.corrections import export_crops
from formdigits.evaluate import evaluate
from formdigits.mnist import load_mnist
from formdigits.output import COLUMNS
from formdigits.score import read_rows, score
from formdigits.synth import DigitSource, generate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_bench import make as make_classic  # noqa: E402

SHEAR = -0.45  # a backhand


def writer(digit_img, d, shear=SHEAR):
    """One writer's hand: MNIST digit ``d`` (ink bright) slanted, with a continental 1 and a crossed 7."""
    ys, xs = np.nonzero(digit_img > 30)
    img = cv2.resize(digit_img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1], None, fx=3, fy=3,
                     interpolation=cv2.INTER_CUBIC)  # fmt: skip
    h = img.shape[0]
    pad = int(abs(shear) * h) + 10
    c = cv2.copyMakeBorder(img, 10, 10, pad, pad, cv2.BORDER_CONSTANT, value=0)
    height, width = c.shape
    t = max(3, h // 9)
    rows = np.nonzero(c.max(1) > 127)[0]
    if d == 1:  # continental 1: a long flag from the top, down to the left
        top = rows[0] + 2
        x0 = int(np.nonzero(c[top] > 127)[0].mean()) if (c[top] > 127).any() else width // 2
        cv2.line(c, (x0, top), (x0 - int(0.45 * h), top + int(0.35 * h)), 255, t)
    elif d == 7:  # crossed 7: a bar through the middle of the stem
        y = (rows[0] + rows[-1]) // 2 + 5
        xs = np.nonzero(c[y] > 127)[0]
        x0 = int(xs.mean()) if len(xs) else width // 2
        cv2.line(c, (x0 - int(0.3 * h), y), (x0 + int(0.3 * h), y), 255, t)
    c = cv2.warpAffine(c, np.float32([[1, shear, -shear * height / 2], [0, 1, 0]]), (width, height),
                       flags=cv2.INTER_LINEAR)  # fmt: skip
    ys, xs = np.nonzero(c > 30)
    c = c[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return cv2.resize(c, (max(2, c.shape[1] // 3), max(2, c.shape[0] // 3)), interpolation=cv2.INTER_AREA)


class Writer(DigitSource):
    """The synthesizer's digit source, every digit drawn in the writer's hand."""

    def draw(self, digit, rng):
        return writer(super().draw(digit, rng), digit)


def scan(paths, csv_path, model):
    t = time.perf_counter()
    cmd = ["formdigits", "scan", *map(str, paths), "-r", "-q", "-o", str(csv_path), "--model", str(model)]
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def figures(csv_path, truth_path):
    s = score(read_rows(csv_path), read_rows(truth_path))
    keys = ("fields", "field_accuracy", "digit_accuracy", "accepted", "error_of_accepted", "missed", "review")
    return {k: s[k] for k in keys}


def _inside(row, t):
    cx, cy = int(row["x"]) + int(row["w"]) / 2, int(row["y"]) + int(row["h"]) / 2
    return int(t["x"]) <= cx <= int(t["x"]) + int(t["w"]) and int(t["y"]) <= cy <= int(t["y"]) + int(t["h"])


def simulate_review(scan_csv, truth_csv, reviewed_csv, folder):
    """The person's review, from the truth: every ``review`` row checked. Returns counts per reviewed_status."""
    truth: dict = {}
    for t in read_rows(truth_csv):
        truth.setdefault((str(Path(folder) / t["file"]), t["page"]), []).append(t)
    rows = read_rows(scan_csv)
    counts: dict = {}
    with open(reviewed_csv, "w", newline="", encoding="utf-8", errors="surrogateescape") as fh:
        w = csv.writer(fh)
        w.writerow([*COLUMNS, "reviewed_value", "reviewed_status"])
        for r in rows:
            value, status = "", ""
            if r["status"] == "review":
                hits = [t for t in truth.get((r["file"], r["page"]), []) if _inside(r, t)]
                value = hits[0]["value"] if hits else ""
                status = "rejected" if not hits else "verified" if value == r["value"].lstrip("'") else "corrected"
                counts[status] = counts.get(status, 0) + 1
            w.writerow([r[c] for c in COLUMNS] + [value, status])
    return counts


def mnist_figures(model, data_dir):
    r = evaluate(str(model), data_dir)
    images, labels = load_mnist("test", data_dir)
    pred = Classifier(str(model)).classify(list(images[5000:])).argmax(1)
    return {"mnist_test_accuracy": r["accuracy"], "mnist_test_5000_9999": float((pred == labels[5000:]).mean()),
            "nondigits_rejected": r["nondigit"]["rejected"]}  # fmt: skip


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return {"machine": platform.machine(), "nproc": os.cpu_count(), "cpu": cpu}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tune-pages", type=int, default=24)
    ap.add_argument("--fresh-pages", type=int, default=24)
    ap.add_argument("--classic-pages", type=int, default=30)
    ap.add_argument("--tune-seed", type=int, default=20100)
    ap.add_argument("--fresh-seed", type=int, default=20200)
    ap.add_argument("--classic-seed", type=int, default=20300)
    ap.add_argument("--epochs", type=int, default=0, help="fine-tune epochs [default: train --finetune's]")
    ap.add_argument("--lr", type=float, default=0, help="fine-tune peak learning rate [default: train --finetune's]")
    ap.add_argument("--limit", type=int, default=0, help="MNIST replay digits [default: train --finetune's]")
    ap.add_argument("--run", default="ft", help="fine-tune folder inside OUT (to compare settings on the same pages)")
    ap.add_argument("--data-dir", default=os.environ.get("FORMDIGITS_MNIST_DIR"))
    a = ap.parse_args()
    out, times = a.out, {}
    out.mkdir(parents=True, exist_ok=True)
    images, labels = load_mnist("test", a.data_dir)
    shipped = default_model_path(int8=True)
    t = time.perf_counter()
    if not (out / "tune" / "truth.csv").is_file():
        generate(out / "tune", a.tune_pages, a.tune_seed, Writer(images[:5000], labels[:5000]))
    if not (out / "fresh" / "truth.csv").is_file():
        generate(out / "fresh", a.fresh_pages, a.fresh_seed, Writer(images[5000:], labels[5000:]))
    if not (out / "classic" / "truth.csv").is_file():
        make_classic(out / "classic", a.classic_pages, a.classic_seed, "classic")
    times["make_pages"] = time.perf_counter() - t

    times["scan_tune"] = scan([out / "tune"], out / "tune.csv", shipped)
    reviewed = simulate_review(out / "tune.csv", out / "tune" / "truth.csv", out / "tune.reviewed.csv", out / "tune")
    t = time.perf_counter()
    exported = export_crops(out / "tune.reviewed.csv", out / "crops")
    times["export_crops"] = time.perf_counter() - t

    run = out / a.run
    t = time.perf_counter()
    cmd = ["formdigits", "train", "--finetune", "--extra-data", str(out / "crops"), "-o", str(run), "--force", "-q"]
    cmd += ["--data-dir", a.data_dir] if a.data_dir else []
    cmd += ["--epochs", str(a.epochs)] if a.epochs else []
    cmd += ["--limit", str(a.limit)] if a.limit else []
    cmd += ["--lr", str(a.lr)] if a.lr else []
    subprocess.run(cmd, check=True)
    times["finetune"] = time.perf_counter() - t
    tuned = run / "formdigits-int8.onnx"

    result = {"writer": f"backhand (shear {SHEAR}), continental 1s, crossed 7s", **machine(),
              "tune": {"pages": a.tune_pages, "seed": a.tune_seed, "scan": figures(out / "tune.csv", out / "tune" / "truth.csv"),
                       "reviewed": reviewed, "export": exported},  # fmt: skip
              "finetune": json.loads((run / "metrics.json").read_text()), "sets": {}}
    for k in ("history", "confusion"):
        result["finetune"].pop(k, None)
    for name, pages in (("fresh", a.fresh_pages), ("classic", a.classic_pages)):
        for label, model in (("shipped", shipped), ("tuned", tuned)):
            csv_path = out / f"{name}-{label if label == 'shipped' else a.run}.csv"
            times[f"scan_{name}_{label}"] = scan([out / name], csv_path, model)
            result["sets"].setdefault(name, {"pages": pages})[label] = figures(csv_path, out / name / "truth.csv")
    result["mnist"] = {"shipped": mnist_figures(shipped, a.data_dir), "tuned": mnist_figures(tuned, a.data_dir)}
    result["seconds"] = {k: round(v, 1) for k, v in times.items()}
    result["command"] = " ".join(sys.argv)
    (out / f"result-{a.run}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
