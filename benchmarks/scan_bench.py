"""End-to-end scan benchmark on freshly generated realistic pages: accuracy, speed, memory.

    python benchmarks/scan_bench.py --pages 60 --seed 7000 --out /tmp/fd-bench

Generates (or reuses) a mixed set of pages with the synthesizer - realistic
colour scans (PNG, JPEG, TIFF, PDF), skewed scans (up to 5 degrees) and bitonal
fax TIFFs, 300 and 200 dpi - runs ``formdigits scan`` on them in a subprocess,
times a decode-only pass over the same files as the floor, and scores the CSV
against the truth. Prints one JSON object.
"""

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from formdigits.pages import read_pages
from formdigits.pipeline import expand_paths
from formdigits.score import read_rows, score
from formdigits.synth import generate

MIX = (  # (subfolder, share of pages, style, formats, pages per file)
    ("real", 0.6, "realistic", ("png", "jpg", "tif", "pdf"), 2),
    ("skew", 0.25, "skewed", ("jpg", "png"), 1),
    ("fax", 0.15, "fax", ("tif",), 3),
)


def make(out, pages, seed):
    out.mkdir(parents=True, exist_ok=True)
    truth = []
    for i, (sub, share, style, formats, per_file) in enumerate(MIX):
        n = max(1, round(pages * share))
        rows = generate(out / sub, n, seed + i, None, style, formats, per_file)
        truth += [{**r, "file": f"{sub}/{r['file']}"} for r in rows]
    with open(out / "truth.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, list(truth[0]))
        w.writeheader()
        w.writerows(truth)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7000)
    ap.add_argument("--out", type=Path, default=Path("/tmp/formdigits-bench"))
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()

    if not (a.out / "truth.csv").is_file():
        t = time.perf_counter()
        make(a.out, a.pages, a.seed)
        print(f"generated pages in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    files = expand_paths([str(a.out)], recursive=True)

    t = time.perf_counter()
    n_pages = sum(1 for f in files for _ in read_pages(f))
    decode = time.perf_counter() - t

    csv_out = a.out.with_suffix(".csv")
    cmd = ["formdigits", "scan", str(a.out), "-r", "-o", str(csv_out), "-q", "--device", a.device]
    if a.model:
        cmd += ["--model", a.model]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        sys.exit(f"scan failed: {proc.stderr}")
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    preds, truth = read_rows(csv_out), read_rows(a.out / "truth.csv")
    s = score(preds, truth, [0, 0.01, 0.02, 0.05])
    digits = sum(len(r["value"]) for r in preds)
    print(json.dumps({
        "pages": n_pages, "files": len(files), "fields": s["fields"], "truth_digits": s["digits"],
        "field_accuracy": round(s["field_accuracy"], 4), "digit_accuracy": round(s["digit_accuracy"], 4),
        "error_at_reject": {k: round(v, 4) for k, v in s["error_at_reject"].items()},
        "missed": s["missed"], "spurious": s["spurious"], "review": s["review"],
        "error_of_accepted": round(s["error_of_accepted"], 4),
        "scan_seconds": round(took, 2), "pages_per_s": round(n_pages / took, 2),
        "digits_per_s": round(digits / took), "decode_seconds": round(decode, 2),
        "scan_to_decode_ratio": round(took / decode, 2), "peak_rss_mb": round(rss_mb),
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
