"""How fast the review page lets a person go: a scripted browser session on the samples' queue.

    python benchmarks/review_speed.py                       # the --all queue of samples/ (about 190 fields)
    python benchmarks/review_speed.py --screenshot docs/review.png

Scans ``samples/`` (``formdigits scan``), serves its queue with ``--all`` (the
review fields, then the ok ones) on 127.0.0.1 as ``formdigits review`` does,
and drives headless Chromium (Debian's ``chromium``, through Playwright) with
real key presses: each item is confirmed with Enter, except every fourth, which
is corrected by typing three digits and Enter. Before each key press it waits
until the item's field image is on the screen (what a person waits for). The
figure is the page's own floor - its latency, not a person's reading speed:
items a minute, and the time from Enter to the next field's image (median and
95th percentile). Prints one JSON object. ``--screenshot`` writes a picture of
the page part way through the session (palette PNG, small enough for the README).
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
SHOWN = ("() => { const it = window.formdigitsReview && window.formdigitsReview.current();"
         " return it && document.getElementById('field-image').src.startsWith('data:') ? it.row : null; }")  # fmt: skip


def small_png(src: Path, dst: Path) -> None:
    """A screenshot as a 256-colour PNG (a page of flat colours loses nothing visible)."""
    from PIL import Image

    Image.open(src).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=0, help="Check this many items (default: the whole queue).")
    ap.add_argument("--screenshot", type=Path, help="Write a screenshot of the page here.")
    ap.add_argument("--shot-at", type=int, default=6, help="Take the screenshot at this item.")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from formdigits.review.queue import items, load_state, load_table
    from formdigits.review.server import ReviewApp, start
    from formdigits.review.views import Views

    work = Path(tempfile.mkdtemp(prefix="fd-review-"))
    out = work / "out.csv"
    subprocess.run([sys.executable, "-m", "formdigits", "scan", "samples", "-o", str(out), "-q"], check=True, cwd=ROOT)
    table = load_table(out)
    queue = items(table, include_ok=True)
    app = ReviewApp(load_state(table), queue, Views(ROOT))  # the names: samples/...
    server, _ = start(app)
    n = min(args.items or len(queue), len(queue))
    latencies, corrected = [], 0
    exe = os.environ.get("FORMDIGITS_CHROMIUM") or shutil.which("chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(server.url)
        page.wait_for_function(SHOWN, polling="raf")
        start_s = time.perf_counter()
        for k in range(n):
            row = page.evaluate("window.formdigitsReview.current().row")
            if args.screenshot and k == args.shot_at:
                page.wait_for_function("() => document.getElementById('saved').textContent.startsWith('saved')")
                raw = work / "shot.png"
                page.screenshot(path=raw)
                args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                small_png(raw, args.screenshot)
            if k % 4 == 3:
                page.keyboard.type(f"{k % 1000:03d}")
                corrected += 1
            t = time.perf_counter()
            page.keyboard.press("Enter")
            if k + 1 < n:
                page.wait_for_function(f"() => {{ const r = ({SHOWN})(); return r !== null && r !== {row}; }}",
                                       polling="raf")  # fmt: skip
                latencies.append(time.perf_counter() - t)
        page.wait_for_function("() => !document.getElementById('saved').textContent.startsWith('saving')")
        total = time.perf_counter() - start_s
        browser.close()
    server.shutdown()
    state = load_state(table)
    checked = sum(bool(r.status) for r in state.reviews)
    lat = sorted(latencies)
    print(json.dumps({
        "items": n, "checked_in_the_file": checked, "corrected": corrected, "seconds": round(total, 2),
        "items_per_minute": round(60 * n / total, 1),
        "enter_to_next_image_ms": {"median": round(1000 * statistics.median(lat), 1),
                                   "p95": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1),
                                   "max": round(1000 * lat[-1], 1)},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }, indent=1))  # fmt: skip
    app.views.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
