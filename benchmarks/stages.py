"""Where a page's time goes: each stage of the scan timed on its own, one core, in milliseconds per page.

    python benchmarks/stages.py /tmp/fd-bench [--limit 20]

Runs the pipeline's own functions stage by stage over the pages of a folder,
with OpenCV on one thread (as in a worker process): decode, deskew (darkness,
skew angle, rotation), boxes, segmentation, preprocessing (of the crops that
get classified, when they are), inference (ONNX
Runtime, one thread, batches of 256: the first reading of every slot, the
other cuts where needed, the second look, the orientation check), rows
(choosing each slot's reading, making rows) and CSV writing. Prints one JSON
object. For a whole-program view, ``py-spy record -o profile.svg --subprocesses
-- formdigits scan ...`` shows the same split in the workers.
"""

import argparse
import io
import json
import platform
import time
from collections import Counter

import cv2
import numpy as np

from formdigits import orient
from formdigits.classifier import Classifier, reject_index
from formdigits.layout import _skew, darkness, find_boxes
from formdigits.output import RowWriter
from formdigits.pages import count_pages, read_page
from formdigits.pipeline import _PageWork, expand_paths
from formdigits.recognize import (
    Inputs,
    choose_paths,
    classify,
    make_rows,
    read_marks,
    second_look,
)
from formdigits.segment import cut_field, ink_image, line_ink


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder")
    ap.add_argument("--limit", type=int, default=0, help="at most this many pages")
    a = ap.parse_args()
    cv2.setNumThreads(1)
    clf = Classifier(threads=1)
    reject = reject_index(clf.labels)
    tasks = [(f, n) for f in expand_paths([a.folder], recursive=True) for n in range(1, count_pages(f) + 1)]
    tasks = tasks[: a.limit or None]
    ms, crops_total = Counter(), 0

    def timed(stage, fn, *args):
        t, before = time.perf_counter(), ms["preprocessing"]
        out = fn(*args)
        ms[stage] += 1000 * (time.perf_counter() - t) - (ms["preprocessing"] - before)  # (counted on its own)
        return out

    class _TimedInputs(Inputs):
        def __getitem__(self, indices):
            t = time.perf_counter()
            out = super().__getitem__(indices)
            ms["preprocessing"] += 1000 * (time.perf_counter() - t)
            return out

    for f, n in tasks:
        page = timed("decode", read_page, f, n)
        dark = timed("deskew", darkness, page.image)  # as layout._analyze_dark does it, stage by stage
        angle, mask, contours = timed("deskew", _skew, dark)
        matrix = cv2.getRotationMatrix2D((dark.shape[1] / 2, dark.shape[0] / 2), angle, 1.0)
        if abs(angle) >= 0.05:
            dark = timed("deskew", cv2.warpAffine, dark, matrix, dark.shape[::-1], None, cv2.INTER_LINEAR, 0, 0)
            mask = contours = None
        boxes, level = timed("boxes", find_boxes, dark, mask, contours)
        ink = timed("segmentation", ink_image, dark)
        cuts = [timed("segmentation", cut_field, ink, b, line_ink(level)) for b in boxes]
        crops = [c for cut in cuts for c in cut.crops()]
        crops_total += len(crops)
        x = _TimedInputs(clf.params, crops)  # preprocessed when first classified, as in a scan
        work = _PageWork(f, n, [(b.x, b.y, b.w, b.h, b.kind) for b in boxes],
                         [(c.notes, c.shapes()) for c in cuts])  # fmt: skip
        firsts = np.cumsum([0] + [len(s.crops) for c in cuts for s in c.slots])[:-1]
        samples = [firsts[[len(s.crops) > 0 for c in cuts for s in c.slots]][:orient.SAMPLE]]
        probs = timed("inference", classify, clf, x, [work])
        paths, shares = timed("rows", choose_paths, work, probs, reject)
        probs, ((paths, shares),) = timed("marks", read_marks, clf, x, [work], probs, [(paths, shares)])
        final = timed("inference", second_look, clf, x, probs, paths)
        timed("inference", orient.judge, clf, probs, x, samples)
        rows = timed("rows", make_rows, work, final, paths, clf.labels, 0.9, shares)
        writer = RowWriter(io.StringIO(), "csv")
        for r in rows:
            timed("writing", writer.write, r)
    pages = len(tasks)
    per_page = {k: round(v / pages, 1) for k, v in ms.items()}
    print(json.dumps({"pages": pages, "crops_per_page": round(crops_total / pages), "ms_per_page": per_page,
                      "total_ms_per_page": round(sum(ms.values()) / pages, 1),
                      "cpu": platform.processor() or platform.machine()}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
