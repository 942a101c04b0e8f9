"""Score predictions against the truth: field and digit accuracy, misses, error-reject curve.

Matching is by position: a truth field collects the predicted rows of the same
file and page whose box centre lies inside its box. A truth field with none is
*missed*; a predicted non-empty field inside no truth field is *spurious*.

The error-reject curve rejects the lowest-confidence fields first; at reject
rate r the error is the share of wrong values among the fields still accepted.
Missed fields count as wrong and are never rejected (nobody would know to look).
"""

import csv
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from .errors import DataError

DEFAULT_REJECT_RATES = (0.0, 0.01, 0.02, 0.05, 0.1)


def read_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a scan or truth CSV as dicts; a file whose header lacks the needed columns is refused."""
    try:
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:  # names as scan writes them
            rows = list(csv.DictReader(fh))
            header = set(rows[0]) if rows else set()
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read CSV: {e}") from None
    missing = {"file", "page", "x", "y", "w", "h", "value"} - header
    if rows and missing:
        raise DataError(f"{path}: not a formdigits CSV (missing columns: {', '.join(sorted(missing))})")
    return rows


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _key(row):
    return row["file"], int(row["page"])


def _inside(pred, truth):
    cx = int(pred["x"]) + int(pred["w"]) / 2
    cy = int(pred["y"]) + int(pred["h"]) / 2
    return int(truth["x"]) <= cx <= int(truth["x"]) + int(truth["w"]) and int(truth["y"]) <= cy <= int(truth["y"]) + int(
        truth["h"])  # fmt: skip


def _value(v):
    return (v or "").lstrip("'")  # undo spreadsheet-safe quoting


def score(predictions: list[dict[str, str]], truth: list[dict[str, str]],
          reject_rates: Sequence[float] = DEFAULT_REJECT_RATES) -> dict[str, Any]:  # fmt: skip
    """Compare prediction rows with truth rows (lists of dicts as from :func:`read_rows`)."""
    preds = defaultdict(list)
    for p in predictions:
        if p.get("status") != "error":
            preds[_key(p)].append(p)
    # truth files are usually named relative to their folder, predictions as the user typed them
    alias = {}
    for tf in {t["file"] for t in truth}:
        same = [pf for pf, _ in preds if pf == tf] or [pf for pf, _ in preds if pf.replace("\\", "/").endswith("/" + tf)]
        alias[tf] = same[0] if len(set(same)) == 1 else tf
    used: set[int] = set()
    fields: list[tuple[bool, float | None, int, int, str]] = []  # (correct, confidence or None for missed, edits, truth digits)
    for t in truth:
        matched = [p for p in preds[(alias[t["file"]], int(t["page"]))] if _inside(p, t)]
        used.update(id(p) for p in matched)
        want = _value(t["value"])
        if not matched:
            fields.append((False, None, len(want), len(want), "missed"))
            continue
        matched.sort(key=lambda p: int(p["x"]))
        got = "".join(_value(p["value"]) for p in matched)
        conf = math.prod(float(p.get("confidence") or 0) for p in matched)
        fields.append((got == want, conf, edit_distance(got, want), len(want), matched[0].get("status", "")))
    spurious = sum(1 for rows in preds.values() for p in rows if id(p) not in used and _value(p["value"]))
    n = len(fields)
    digits = sum(f[3] for f in fields)
    edits = sum(f[2] for f in fields)
    correct = sum(f[0] for f in fields)
    at_reject: dict[str, float] = {}
    result: dict[str, Any] = {
        "fields": n,
        "field_accuracy": correct / n if n else 0.0,
        "digits": digits,
        "digit_accuracy": max(0.0, 1 - edits / digits) if digits else 0.0,
        "missed": sum(1 for f in fields if f[1] is None),
        "spurious": spurious,
        "review": sum(1 for f in fields if f[4] == "review"),
        "error_at_reject": at_reject,
    }
    ranked = sorted((f for f in fields if f[1] is not None), key=lambda f: f[1] or 0.0)
    missed_wrong = result["missed"]
    for r in reject_rates:
        k = min(len(ranked), math.ceil(r * n - 1e-9))
        kept = ranked[k:]
        wrong = sum(1 for f in kept if not f[0]) + missed_wrong
        total = len(kept) + missed_wrong
        result["error_at_reject"][f"{r:g}"] = wrong / total if total else 0.0
    ok = [f for f in fields if f[4] in ("ok", "empty")]
    result["accepted"] = len(ok) / n if n else 0.0  # the share a person need not look at
    result["error_of_accepted"] = sum(1 for f in ok if not f[0]) / len(ok) if ok else 0.0
    return result


def curve(predictions: list[dict[str, str]], truth: list[dict[str, str]],
          steps: int = 50) -> tuple[list[tuple[float, float]], tuple[float, float]]:  # fmt: skip
    """``(points, operating point)``: (reject rate, error) points for a plot, and the scan's own
    (share sent to review or missed, error among accepted)."""
    rates = [i / steps * 0.5 for i in range(steps + 1)]
    r = score(predictions, truth, rates)
    return [(float(k), v) for k, v in r["error_at_reject"].items()], (1 - r["accepted"], r["error_of_accepted"])


def plot_curve(points: Sequence[tuple[float, float]], path: str | os.PathLike, title: str = "Error-reject curve",
               operating: tuple[float, float] | None = None) -> None:  # fmt: skip
    """Draw the error-reject curve ``points`` (and the scan's own ``operating`` point) to a PNG file."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DataError("--plot needs matplotlib, in the plot extra: pip install 'formdigits[plot]'") from None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([100 * r for r, _ in points], [100 * e for _, e in points], marker=".", label="rejecting the least confident")
    if operating is not None:
        ax.plot([100 * operating[0]], [100 * operating[1]], "o", color="C3",
                label=f"this scan: {1 - operating[0]:.1%} accepted, {operating[1]:.2%} of them wrong")  # fmt: skip
        ax.legend(fontsize=8)
    ax.set(xlabel="fields rejected for review, %", ylabel="field error among accepted, %", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
