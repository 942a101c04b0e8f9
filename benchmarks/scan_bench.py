"""End-to-end scan benchmark on freshly generated realistic pages: accuracy, speed, memory, a peer.

    python benchmarks/scan_bench.py --pages 60 --seed 8000 --out /tmp/fd-bench
    python benchmarks/scan_bench.py --out /tmp/fd-bench --repeat 2000      # memory: 2,000 pages
    python benchmarks/scan_bench.py --out /tmp/fd-bench --peer tesseract   # plus Tesseract 5
    python benchmarks/scan_bench.py --mix held-out --pages 100 --seed 9400 --out /tmp/fd-held  # the held-out family

Generates (or reuses) a mixed set of pages with the synthesizer - realistic
colour scans (PNG, JPEG, TIFF, PDF), skewed scans (up to 5 degrees) and bitonal
fax TIFFs, 300 and 200 dpi - and runs ``formdigits scan`` on them in a
subprocess with the tool's own defaults. In the same run it times a decode-only
pass over the same files (the floor: reading pages, nothing else) with as many
processes as the scan uses, samples the resident memory of the scan's whole
process tree, and scores the CSV against the truth. ``--repeat N`` feeds the
file list round and round until N pages went through (memory stays flat or it
does not). ``--peer tesseract`` runs Tesseract on the same pages (digits
whitelist, sparse-text mode) and scores it the same way. Prints one JSON object.
"""

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import cv2

from formdigits.pages import count_pages, read_page
from formdigits.parallel import available_cores, ordered_map
from formdigits.pipeline import expand_paths
from formdigits.score import read_rows, score
from formdigits.synth import HELD_OUT, STYLE_PRESETS, generate

MIXES = {  # (subfolder, share of pages, style, formats, pages per file)
    "classic": (
        ("real", 0.6, "realistic", ("png", "jpg", "tif", "pdf"), 2),
        ("skew", 0.25, "skewed", ("jpg", "png"), 1),
        ("fax", 0.15, "fax", ("tif",), 3),
    ),
    # every style family drawn per field, resolution and scan kind per page; the held-out kinds left out
    "varied": (("varied", 1.0, "varied", ("png", "jpg", "tif", "pdf"), 2),),
    # the held-out family (synth.HELD_OUT) on every field it can be: never used while tuning
    "held-out": (("held-out", 1.0, replace(STYLE_PRESETS["varied"], **HELD_OUT), ("png", "jpg", "tif", "pdf"), 2),),
}


def make(out, pages, seed, mix="classic"):
    out.mkdir(parents=True, exist_ok=True)
    truth = []
    for i, (sub, share, style, formats, per_file) in enumerate(MIXES[mix]):
        n = max(1, round(pages * share))
        rows = generate(out / sub, n, seed + i, None, style, formats, per_file)
        truth += [{**r, "file": f"{sub}/{r['file']}"} for r in rows]
    with open(out / "truth.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, list(truth[0]))
        w.writeheader()
        w.writerows(truth)


def _tree_rss_mb(pid):
    """Resident memory of a process and all its descendants, MB (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo += [int(c) for c in fh.read().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def run_sampled(cmd, stdin_text=None):
    """Run a command; returns (seconds, peak RSS of its process tree in MB, CompletedProcess-like)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0.0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate(stdin_text)
    took = time.perf_counter() - t
    sampler.join()
    return took, peak[0], proc.returncode, err


def _decode(task):
    path, number = task
    return read_page(path, number).image.shape


def decode_floor(files, workers):
    """Seconds to read every page of ``files`` (nothing else), with ``workers`` processes (0: here)."""
    tasks = [(f, n) for f in files for n in range(1, count_pages(f) + 1)]
    t = time.perf_counter()
    for _ in ordered_map(_decode, tasks, workers):
        pass
    return time.perf_counter() - t, len(tasks)


def _tesseract_page(task):
    """Run Tesseract on one page; returns its words with boxes as (x, y, w, h, text)."""
    path, number, psm = task
    image = read_page(path, number).image
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "page.png"
        cv2.imwrite(str(png), image)
        out = subprocess.run(["tesseract", str(png), "stdout", "--psm", str(psm), "-c",
                              "tessedit_char_whitelist=0123456789", "tsv"],
                             capture_output=True, text=True, env={**os.environ, "OMP_THREAD_LIMIT": "1"}).stdout  # fmt: skip
    words = []
    for line in out.splitlines()[1:]:
        f = line.split("\t")
        if len(f) == 12 and f[0] == "5" and f[11].strip():
            words.append((int(f[6]), int(f[7]), int(f[8]), int(f[9]), f[11].strip()))
    return words


def tesseract_rows(files, workers, psm):
    """Tesseract's words as prediction rows (one per word), in the scan's CSV shape."""
    tasks = [(f, n, psm) for f in files for n in range(1, count_pages(f) + 1)]
    rows = []
    for (f, n, _), words in ordered_map(_tesseract_page, tasks, workers):
        for x, y, w, h, text in words:
            rows.append({"file": f, "page": str(n), "x": str(x), "y": str(y), "w": str(w), "h": str(h),
                         "value": text, "confidence": "1", "status": "ok"})  # fmt: skip
    return rows, len(tasks)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7000)
    ap.add_argument("--out", type=Path, default=Path("/tmp/formdigits-bench"))
    ap.add_argument("--mix", choices=sorted(MIXES), default="classic", help="which pages to make (see MIXES)")
    ap.add_argument("--readers", choices=["both", "cut"], default="both", help="passed to scan")
    ap.add_argument("--model", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=None, help="passed to scan [default: the tool's default]")
    ap.add_argument("--repeat", type=int, default=0, help="feed the files round and round until N pages")
    ap.add_argument("--peer", choices=["tesseract"], help="also run this OCR engine on the same pages")
    ap.add_argument("--peer-psm", type=int, default=11, help="Tesseract page segmentation mode (11: sparse text)")
    a = ap.parse_args()

    if not (a.out / "truth.csv").is_file():
        t = time.perf_counter()
        make(a.out, a.pages, a.seed, a.mix)
        print(f"generated pages in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    files = expand_paths([str(a.out)], recursive=True)
    workers = available_cores() if a.workers is None else a.workers
    pages_per_file = {f: count_pages(f) for f in files}
    n_pages = sum(pages_per_file.values())

    listing = files
    if a.repeat:
        listing, n = [], 0
        while n < a.repeat:
            for f in files:
                listing.append(f)
                n += pages_per_file[f]
                if n >= a.repeat:
                    break
    csv_out = a.out.with_suffix(".csv")
    cmd = ["formdigits", "scan", "-", "-o", str(csv_out), "-q", "--device", a.device, "--readers", a.readers]
    if a.workers is not None:
        cmd += ["--workers", str(a.workers)]
    if a.model:
        cmd += ["--model", a.model]
    took, rss_mb, rc, err = run_sampled(cmd, "\n".join(listing) + "\n")
    if rc not in (0, 1):
        sys.exit(f"scan failed: {err}")
    preds = read_rows(csv_out)
    scanned_pages = sum(pages_per_file[f] for f in listing)
    # every generated page has fields, so each page is one run of rows: count them (lost pages show)
    runs = sum(1 for i, r in enumerate(preds) if i == 0 or (r["file"], r["page"]) != (preds[i - 1]["file"],
                                                                                     preds[i - 1]["page"]))  # fmt: skip
    decode, _ = decode_floor(files, workers)
    decode_1, _ = decode_floor(files, 0)
    result = {
        "pages": scanned_pages, "pages_in_output": runs, "error_rows": sum(r["status"] == "error" for r in preds),
        "files": len(listing), "workers": workers,
        "scan_seconds": round(took, 2), "pages_per_s": round(scanned_pages / took, 2),
        "digits_per_s": round(sum(len(r["value"]) for r in preds) / took),
        "decode_seconds_same_processes": round(decode * scanned_pages / n_pages, 2),
        "decode_seconds_one_process": round(decode_1 * scanned_pages / n_pages, 2),
        "scan_to_decode_ratio": round(took / (decode * scanned_pages / n_pages), 2),
        "peak_rss_mb_process_tree": round(rss_mb),
    }
    if not a.repeat:
        s = score(preds, read_rows(a.out / "truth.csv"), [0, 0.01, 0.02, 0.05])
        result.update({
            "fields": s["fields"], "truth_digits": s["digits"],
            "field_accuracy": round(s["field_accuracy"], 4), "digit_accuracy": round(s["digit_accuracy"], 4),
            "error_at_reject": {k: round(v, 4) for k, v in s["error_at_reject"].items()},
            "accepted": round(s["accepted"], 4), "error_of_accepted": round(s["error_of_accepted"], 4),
            "missed": s["missed"], "spurious": s["spurious"], "review": s["review"],
        })  # fmt: skip
    if a.peer == "tesseract":
        if shutil.which("tesseract") is None:
            result["peer"] = "tesseract not installed (apt-get install tesseract-ocr): skipped"
        else:
            version = subprocess.run(["tesseract", "--version"], capture_output=True, text=True).stdout.split()[1]
            t = time.perf_counter()
            rows, n = tesseract_rows(files, workers, a.peer_psm)
            peer_took = time.perf_counter() - t
            s = score(rows, read_rows(a.out / "truth.csv"), [0])
            result["peer"] = {
                "engine": f"tesseract {version}", "psm": a.peer_psm, "processes": workers,
                "pages_per_s": round(n / peer_took, 3), "field_accuracy": round(s["field_accuracy"], 4),
                "digit_accuracy": round(s["digit_accuracy"], 4), "spurious": s["spurious"],
            }  # fmt: skip
    result.update({"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()})
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
