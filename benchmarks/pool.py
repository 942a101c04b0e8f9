"""Score several ``scan_bench.py`` sets as one: the pooled headline in BENCHMARKS.md.

    python benchmarks/pool.py /tmp/fd-bench9 /tmp/fd-bench91 /tmp/fd-bench92

Each argument is a set's ``--out`` folder (its pages and ``truth.csv``) whose scan
``scan_bench.py`` wrote beside it (``FOLDER.csv``; a ``--repeat`` run overwrites it).
Rows are renamed so that files of different sets never meet, then scored together: one
reject threshold for the pool. Prints one JSON object, with the figures by field kind
and by kind of scan.
"""

import argparse
import json
import os
from pathlib import Path

from formdigits.score import read_rows, score


def pooled(folders):
    preds, truth = [], []
    for n, folder in enumerate(folders):
        for r in read_rows(folder.with_suffix(".csv")):  # files as scan_bench gave them: under the folder
            preds.append({**r, "file": f"{n}/{os.path.relpath(r['file'], folder)}"})
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
    result = {**figures(s), "accepted": round(s["accepted"], 4), "error_of_accepted": round(s["error_of_accepted"], 4),
              "missed": s["missed"], "spurious": s["spurious"], "review": s["review"]}  # fmt: skip
    for kind in ("comb", "open"):  # spurious and missed are whole-page figures: only above
        result[kind] = figures(score(preds, [t for t in truth if t["kind"] == kind and t["value"]], reject))
    scan_kind = {id(t): t["file"].split("/")[1] for t in truth}  # the set's subfolder: real, skew, fax
    for sub in sorted(set(scan_kind.values())):
        result[sub] = figures(score(preds, [t for t in truth if scan_kind[id(t)] == sub], reject))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
