"""Score several ``scan_bench.py`` sets as one: the pooled headline in BENCHMARKS.md.

    python benchmarks/pool.py /tmp/fd-bench9 /tmp/fd-bench91 /tmp/fd-bench92

Each argument is a set's ``--out`` folder (its pages and ``truth.csv``) whose scan
``scan_bench.py`` wrote beside it (``FOLDER.csv``). Rows are renamed so that files of
different sets never meet, then scored together: one reject threshold for the pool.
Prints one JSON object, with the figures by field kind and by kind of scan.
"""

import argparse
import json
from pathlib import Path

from formdigits.score import read_rows, score


def pooled(folders):
    preds, truth = [], []
    for n, folder in enumerate(folders):
        prefix = str(folder.resolve()) + "/"
        for r in read_rows(folder.with_suffix(".csv")):
            preds.append({**r, "file": f"{n}/{r['file'].removeprefix(prefix)}"})
        truth += [{**t, "file": f"{n}/{t['file']}"} for t in read_rows(folder / "truth.csv")]
    return preds, truth


def figures(s):
    return {"fields": s["fields"], "field_accuracy": round(s["field_accuracy"], 4),
            "digits": s["digits"], "digit_accuracy": round(s["digit_accuracy"], 5),
            "error_at_reject": {k: round(v, 4) for k, v in s["error_at_reject"].items()}}  # fmt: skip


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="+", type=Path)
    a = ap.parse_args()
    preds, truth = pooled(a.folders)
    reject = [0, 0.01, 0.02, 0.05, 0.1]
    s = score(preds, truth, reject)
    result = {**figures(s), "missed": s["missed"], "spurious": s["spurious"], "review": s["review"],
              "error_of_accepted": round(s["error_of_accepted"], 4)}  # fmt: skip
    for kind in ("comb", "open"):  # spurious and missed are whole-page figures: only above
        result[kind] = figures(score(preds, [t for t in truth if t["kind"] == kind and t["value"]], reject))
    for sub in sorted({t["file"].split("/")[1] for t in truth}):
        result[sub] = figures(score(preds, [t for t in truth if t["file"].split("/")[1] == sub], reject))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
