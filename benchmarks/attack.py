"""Attack the scanner with issue 19's list of bad inputs and misuse, in one go, and print a table.

    python benchmarks/attack.py            # a Markdown table: case, rows kept, exit code, peak MB, seconds, verdict
    python benchmarks/attack.py --keep D   # leave the hostile inputs in D

Every hostile input is made here, in a temporary folder, beside good pages
(``samples/census.jpg``, 33 fields) that must still be read. Each case runs
the installed ``formdigits`` in a subprocess, samples the resident memory of
its process tree, and checks what a user must see: the good pages' rows, an
``error`` row or a review reason naming the file, the exit code, no hang.
"""

import argparse
import csv
import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from scan_bench import run_sampled

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
FD = [sys.executable, "-m", "formdigits"]
GOOD_FIELDS = 33  # census.jpg


def rows_of(text):
    return list(csv.DictReader(io.StringIO(text)))


def scan(d, *paths, extra=()):
    """Scan ``paths`` (with census.jpg) to d/out.csv; returns (seconds, MB, exit code, stderr's last line, rows)."""
    out = d / "out.csv"
    out.unlink(missing_ok=True)
    took, mb, code, err = run_sampled([*FD, "scan", str(SAMPLES / "census.jpg"), *map(str, paths), "-o", str(out),
                                       "-q", *extra])  # fmt: skip
    rows = rows_of(out.read_text(errors="surrogateescape")) if out.exists() else []
    return took, mb, code, (err.strip().splitlines() or [""])[-1], rows


def pdf_bad_page_tree(d):
    body = [b"%PDF-1.4\n", b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n",
            b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n", b"3 0 obj (not a page) endobj\n"]  # fmt: skip
    (d / "tree.pdf").write_bytes(b"".join(body) + b"trailer << /Root 1 0 R >>\n%%EOF\n")
    return d / "tree.pdf"


def non_utf8_name(d):
    name = os.fsencode(d) + b"/bad\xff.jpg"
    shutil.copy(SAMPLES / "census.jpg", name)
    return os.fsdecode(name)


def float_bomb(d):
    import tifffile

    tiles = (np.zeros((256, 256)) for _ in range(59 * 59))
    tifffile.imwrite(d / "bomb.tif", tiles, shape=(15000, 15000), dtype="float64", tile=(256, 256), compression="zlib")
    return d / "bomb.tif"


def fifo(d):
    os.mkfifo(d / "pipe.png")
    return d / "pipe.png"


def page_image():
    return cv2.imread(str(SAMPLES / "census.jpg"), cv2.IMREAD_GRAYSCALE)


def tiff_page2_overwritten(d):
    import tifffile

    path = d / "three.tif"
    with tifffile.TiffWriter(path) as tif:
        for _ in range(3):
            tif.write(page_image(), photometric="minisblack", compression="zlib", rowsperstrip=64)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[1]
        spans = list(zip(page.dataoffsets, page.databytecounts))
    data = bytearray(path.read_bytes())
    for offset, count in spans:
        data[offset : offset + count] = bytes(np.random.default_rng(0).integers(0, 256, count, np.uint8))
    path.write_bytes(bytes(data))
    return path


def jpeg_zeroed(d):
    data = bytearray((SAMPLES / "census.jpg").read_bytes())
    mid = len(data) // 2
    data[mid : mid + 2000] = bytes(2000)
    (d / "zeroed.jpg").write_bytes(bytes(data))
    return d / "zeroed.jpg"


def float_nan(d):
    import tifffile

    img = page_image().astype(np.float32) / 255
    img[100:400, 100:900] = np.nan
    img[500, 500] = np.inf
    tifffile.imwrite(d / "nan.tif", img)
    return d / "nan.tif"


def multipage(d, n=1000):
    import tifffile

    small = cv2.resize(page_image(), None, fx=0.1, fy=0.1)
    with tifffile.TiffWriter(d / "many.tif") as tif:
        for _ in range(n):
            tif.write(small, photometric="minisblack", compression="zlib")
    return d / "many.tif"


def tiny_page(d):
    cv2.imwrite(str(d / "tiny.png"), np.full((1, 4), 255, np.uint8))
    return d / "tiny.png"


def write_json(d, name, obj):
    (d / name).write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return d / name


def template_case(d, name, obj):
    return run_sampled([*FD, "scan", str(SAMPLES / "census.jpg"), "--template", str(write_json(d, name, obj)), "-q"])


def field(name, x, **more):
    return {"name": name, "box": [x, 10, 40, 40], **more}


def concurrent_outputs(d):
    """Two runs writing the same -o at once."""
    out = d / "same.csv"
    cmd = [*FD, "scan", *[str(SAMPLES / "census.jpg")] * 20, "-o", str(out), "-q", "-j", "1"]
    t = time.perf_counter()
    a = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    b = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    a.wait()
    rows = rows_of(out.read_text()) if out.exists() else []
    line = (b.stderr.strip().splitlines() or [""])[-1]
    ok = a.returncode == 0 and b.returncode != 0 and len(rows) == 20 * GOOD_FIELDS and b"\0" not in out.read_bytes()
    return time.perf_counter() - t, 0.0, f"{a.returncode}/{b.returncode}", line, rows, ok


def sigterm(d):
    """SIGTERM mid-run: exit 143, partial kept, no worker left behind."""
    out = d / "term.csv"
    proc = subprocess.Popen([*FD, "scan", *[str(SAMPLES / "census.jpg")] * 200, "-o", str(out), "-j", "2", "-q"],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(6)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    time.sleep(2)
    alive = [c for c in children if Path(f"/proc/{c}").exists()]
    partial = Path(str(out) + ".partial")
    rows = rows_of(partial.read_text()) if partial.exists() else []
    ok = proc.returncode == 143 and partial.exists() and not alive
    line = (err.strip().splitlines() or [""])[-1] + f" ({len(alive)} of {len(children)} children left)"
    return 0.0, 0.0, proc.returncode, line, rows, ok


def resume_case(d, bad_name):
    """A run's partial with an error row, resumed: the error still counts, names survive the round trip."""
    src = d / "resume"
    src.mkdir()
    shutil.copy(SAMPLES / "census.jpg", src / bad_name)
    shutil.copy(SAMPLES / "census.jpg", src / "b.jpg")
    (src / "c.jpg").write_bytes(b"not an image")
    full = d / "full.csv"
    subprocess.run([*FD, "scan", str(src), "-o", str(full), "-q"], capture_output=True)
    lines = full.read_bytes().splitlines(keepends=True)  # CRLF line ends, as written
    cut = d / "cut.csv"
    Path(str(cut) + ".partial").write_bytes(b"".join(lines[: 1 + GOOD_FIELDS]))  # the first file's rows only
    t = time.perf_counter()
    r = subprocess.run([*FD, "scan", str(src), "-o", str(cut), "-q", "--resume"], capture_output=True, text=True)
    rows = rows_of(cut.read_text()) if cut.exists() else []
    ok = r.returncode == 1 and cut.exists() and cut.read_bytes() == full.read_bytes()
    return time.perf_counter() - t, 0.0, r.returncode, (r.stderr.strip().splitlines() or [""])[-1], rows, ok


def table(d):
    cases = []

    def add(name, expect, result, ok=None):
        took, mb, code, line, rows, *verdict = result if len(result) == 6 else (*result, None)
        if ok is None:
            ok = verdict[0] if verdict else False
        errors = sum(r.get("status") == "error" for r in rows)
        cases.append((name, expect, len(rows), errors, code, mb, took, line[:90], "pass" if ok else "FAIL"))
        print(f"{cases[-1][-1]:4} {name}", file=sys.stderr)

    def scanned(name, path, expect, check, extra=()):
        r = scan(d, path, extra=extra)
        add(name, expect, r, check(*r))

    good = lambda rows: sum(r["file"].endswith("census.jpg") and r["status"] != "error" for r in rows) == GOOD_FIELDS  # noqa: E731
    err_row = lambda name: lambda t, mb, code, line, rows: code == 1 and good(rows) and any(  # noqa: E731
        r["status"] == "error" and name in r["file"] for r in rows)
    scanned("1 PDF page tree pointing at a string", pdf_bad_page_tree(d), "error row, exit 1", err_row("tree.pdf"))
    scanned("2 file name not UTF-8", non_utf8_name(d), "66 rows, exit 0",
            lambda t, mb, code, line, rows: code == 0 and len(rows) == 2 * GOOD_FIELDS)
    scanned("3 15000x15000 float64 tiled TIFF (4.6 MB)", float_bomb(d), "error row, exit 1, < 1 GB",
            lambda t, mb, code, line, rows: err_row("bomb.tif")(t, mb, code, line, rows) and mb < 1000)
    scanned("4 FIFO as a page", fifo(d), "error row, exit 1, no hang", err_row("pipe.png"))
    scanned("5 3-page TIFF, page 2's strips overwritten", tiff_page2_overwritten(d), "page 2: error row or review",
            lambda t, mb, code, line, rows: code == 1 and any(r["page"] == "2" and r["status"] == "error" for r in rows)
            or all(r["status"] == "review" and "damaged" in r["error"] for r in rows if r["page"] == "2"))  # fmt: skip
    scanned("5 census.jpg with 2,000 zero bytes", jpeg_zeroed(d), "no ok row from it",
            lambda t, mb, code, line, rows: not any(r["file"].endswith("zeroed.jpg") and r["status"] == "ok"
                                                    for r in rows))  # fmt: skip
    scanned("5 float TIFF with NaN and inf", float_nan(d), "error row or review",
            lambda t, mb, code, line, rows: not any(r["file"].endswith("nan.tif") and r["status"] == "ok" for r in rows)
            and any(r["file"].endswith("nan.tif") for r in rows))  # fmt: skip
    add("6 two runs writing the same -o", "one runs, the other stops at once", concurrent_outputs(d))
    add("7 SIGTERM mid-run (2 workers)", "exit 143, partial kept, no orphans", sigterm(d))
    digits = {"digits": [1, 4]}
    for label, obj in [("8 template rule with catastrophic backtracking",
                        {"name": "f", "fields": [field("a", 10, pattern="(\\d+)+$")]}),
                       ("8 template with cells 1,000,000", {"name": "f", "fields": [field("a", 10, cells=1000000)]}),
                       ("8 template with 10,000 fields", {"name": "f", "fields": [field(f"a{i}", 10 + 50 * i, **digits)
                                                                                for i in range(10000)]}),
                       ("clear: template nested 100,000 deep", "[" * 100000 + "]" * 100000),
                       ("clear: template field named f4_confidence", {"name": "f", "fields": [field("f4_confidence", 10)]})]:  # fmt: skip
        took, mb, code, err = template_case(d, "t.json", obj)
        add(label, "refused, exit 2, at once", (took, mb, code, (err.strip().splitlines() or [""])[-1], []),
            code == 2 and took < 10)
    many = multipage(d)
    took, mb, code, line, rows = scan(d, many, extra=("-j", "0"))
    add("9 multi-page TIFF, 1,000 small pages", "linear time", (took, mb, code, line, rows), code in (0, 1))
    add("10 --resume with an error row kept", "exit 1, same bytes as one run", resume_case(d, "a.jpg"))
    shutil.rmtree(d / "resume")
    for f in ("full.csv", "cut.csv"):
        (d / f).unlink(missing_ok=True)
    add("11 --resume with a file named '=a.jpg", "exit 1, same bytes as one run", resume_case(d, "'=a.jpg"))
    turned = d / "marks180.png"
    cv2.imwrite(str(turned), cv2.rotate(cv2.imread(str(SAMPLES / "marks.png")), cv2.ROTATE_180))
    upright = run_sampled([*FD, "scan", str(SAMPLES / "marks.png"), "-q"])
    took, mb, code, line, rows = scan(d, turned)
    want = [r["value"] for r in rows_of(subprocess.run([*FD, "scan", str(SAMPLES / "marks.png"), "-q"],
                                                         capture_output=True, text=True).stdout)]  # fmt: skip
    got = [r for r in rows if r["file"].endswith("marks180.png")]
    wrong_ok = sum(r["value"] != v and r["status"] == "ok" for r, v in zip(got, want))
    add("12 marks.png upside down", "values as upright, no wrong ok", (took, mb, code, line, rows),
        [r["value"] for r in got] == want and not wrong_ok and upright[2] == 0)
    scanned("17 a 4x1-pixel page", tiny_page(d), "no row, exit 0",
            lambda t, mb, code, line, rows: code == 0 and len(rows) == GOOD_FIELDS)
    for label, argv, want_code in [
        ("clear: -o into a missing folder", ["scan", str(SAMPLES / "census.jpg"), "-o", str(d / "no" / "x.csv")], 2),
        ("clear: --page-timeout nan", ["scan", str(SAMPLES / "census.jpg"), "--page-timeout", "nan"], 2),
        ("clear: -o /dev/full (disk full; the device is kept)", ["scan", str(SAMPLES / "census.jpg"), "-o", "/dev/full"], 1),
        ("15 score with its arguments swapped", ["score", str(SAMPLES / "truth.csv"), str(SAMPLES / "truth.csv")], 2),
    ]:
        took, mb, code, err = run_sampled([*FD, *argv, "-q"] if argv[0] == "scan" else [*FD, *argv])
        line = (err.strip().splitlines() or [""])[-1]
        ok = code == want_code and "Traceback" not in err and (not os.path.exists("/dev/full")
                                                               or stat.S_ISCHR(os.stat("/dev/full").st_mode))
        add(label, f"one line, exit {want_code}", (took, mb, code, line, []), ok)
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", type=Path, help="make the inputs here and keep them")
    a = ap.parse_args()
    d = a.keep or Path(tempfile.mkdtemp(prefix="fd-attack-"))
    d.mkdir(parents=True, exist_ok=True)
    try:
        cases = table(d)
    finally:
        if not a.keep:
            shutil.rmtree(d, ignore_errors=True)
    print("| case | expected | rows kept | error rows | exit | peak MB | s | last line of stderr | verdict |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, expect, n, errors, code, mb, took, line, verdict in cases:
        line = line.replace("|", "\\|").replace(str(d), "D")
        print(f"| {name} | {expect} | {n} | {errors} | {code} | {mb:.0f} | {took:.1f} | {line} | {verdict} |")


if __name__ == "__main__":
    main()
