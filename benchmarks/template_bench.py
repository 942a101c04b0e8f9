"""Templates on synthetic scans of two known forms: accuracy with and without, form assignment, wide CSV.

    python benchmarks/template_bench.py --pages 40 --seed 500 --out /tmp/fd-template

Draws two different forms (layout seeds ``seed`` and ``seed + 1``), makes a
template of each from a blank 300 dpi scan with ``formdigits template``, then
fills each form in on ``pages / 2`` pages scanned at 300 and 200 dpi, turned up
to 5 degrees, scaled +-3 %, shifted up to 6 mm, JPEG, with 15 % of the box
outlines printed faint and broken. Scans the lot without templates and with both,
scores both against the truth, counts the pages given the right form, and reads
the wide CSV back. Prints one JSON object.
"""

import argparse
import csv
import json
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from formdigits.mnist import load_mnist
from formdigits.score import read_rows, score
from formdigits.synth import STYLE_PRESETS, DigitSource, make_page, save_pages, truth_rows, write_truth


def scan(folder, out, *extra):
    t = time.perf_counter()
    subprocess.run(["formdigits", "scan", str(folder), "-o", str(out), "-q", *extra], check=False)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=40)
    ap.add_argument("--seed", type=int, default=500)
    ap.add_argument("--out", type=Path, default=Path("/tmp/formdigits-template-bench"))
    a = ap.parse_args()
    digits = DigitSource(*load_mnist("test"))
    scans = a.out / "scans"
    scans.mkdir(parents=True, exist_ok=True)
    style = replace(STYLE_PRESETS["realistic"], rotation_max=5, scale_max=0.03, shift_max_mm=6, faint_line_prob=0.15)
    forms, truth, templates = {}, [], []
    for k, form in enumerate(("form-a", "form-b")):
        layout_seed = a.seed + k
        blank = make_page(digits, np.random.default_rng(0), replace(STYLE_PRESETS["clean"], empty_prob=1.0),
                          layout_seed=layout_seed)  # fmt: skip
        save_pages([blank], a.out / f"{form}-blank.png")
        subprocess.run(["formdigits", "template", str(a.out / f"{form}-blank.png"), "-o", str(a.out / f"{form}.json"),
                        "--preview", str(a.out / f"{form}-preview.png")], check=True)  # fmt: skip
        templates += ["--template", str(a.out / f"{form}.json")]
        rng = np.random.default_rng(a.seed + 100 + k)
        for i in range(a.pages // 2):
            page = make_page(digits, rng, replace(style, dpi=(300, 200)[i % 2]), layout_seed=layout_seed)
            name = f"{form}-{i:03d}.jpg"
            save_pages([page], scans / name)
            truth += truth_rows(name, [page])
            forms[name] = form
    write_truth(truth, a.out / "truth.csv")
    truth = read_rows(a.out / "truth.csv")

    plain_s = scan(scans, a.out / "plain.csv")
    tmpl_s = scan(scans, a.out / "template.csv", *templates)
    wide_s = scan(scans, a.out / "wide.csv", "--format", "wide", *templates)
    plain, tmpl = score(read_rows(a.out / "plain.csv"), truth, [0.05]), score(read_rows(a.out / "template.csv"), truth, [0.05])
    got = {}
    for r in read_rows(a.out / "template.csv"):
        got[Path(r["file"]).name] = r.get("form", "")
    with open(a.out / "wide.csv", newline="", encoding="utf-8") as fh:
        table = list(csv.reader(fh))
    keep = ("field_accuracy", "digit_accuracy", "error_at_reject", "missed", "spurious", "review")
    print(json.dumps({
        "pages": len(forms), "fields": plain["fields"],
        "without_template": {k: plain[k] for k in keep} | {"pages_per_s": round(len(forms) / plain_s, 2)},
        "with_templates": {k: tmpl[k] for k in keep} | {"pages_per_s": round(len(forms) / tmpl_s, 2)},
        "right_form": sum(got.get(n) == f for n, f in forms.items()), "wrong_or_no_form": sum(
            got.get(n) != f for n, f in forms.items()),
        "wide_rows": len(table) - 1, "wide_columns": sorted({len(r) for r in table}),
        "wide_pages_per_s": round(len(forms) / wide_s, 2),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
