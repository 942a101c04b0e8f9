"""Corrections teach the model: a reviewed scan CSV -> labelled crops for ``train --extra-data``.

A person checks a scan's fields (``formdigits review``) and writes the reviewed CSV:
the scan CSV's columns plus ``reviewed_value`` and ``reviewed_status`` (``verified``,
``corrected``, ``illegible``, ``rejected``, or empty for a field nobody checked).
:func:`export_crops` reads each checked page again exactly as the scan read it
(:mod:`formdigits.fieldview`) and writes the digit crops the digit CNN classified,
labelled with the person's value, in the layout ``train --extra-data`` reads::

    DIR/<digit>/<name>.png     a digit crop (dark ink on light paper)
    DIR/reject/<name>.png      a mark the person's value shows is no digit
    DIR/strips/<value>/<name>.png   the field's strip as the sequence reader sees it (ink dark:
                                    invert for the reader's input), labelled with the whole value

The labelling rule trusts a field's cut only where the person's value leaves no
doubt which crop is which digit:

* as many crops as digits in the value: each crop, left to right, is that digit
  (whatever the model read it as);
* otherwise, when the crops the model read as digits are exactly as many as the
  value's digits: those crops get the digits in order, and the crops it read as
  "reject" go to ``reject/`` (the value shows they are no digit);
* a field verified empty: its marks, if any, are no digits (``reject/``);
* anything else (a digit cut in two, two digits in one crop, a mark misread as a
  digit): the field's crops are skipped (counted under ``cut_mismatch``), its
  strip is still written with its value.

Illegible and rejected fields ("not a digit field") and unchecked ones give no
crops. A file's name is a hash of (file, page, box, crop index), so exporting the
same review again rewrites the same files (a crop whose label changed moves to
its new folder); files are written atomically.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import DataError
from .output import COLUMNS, unquote

REVIEW_COLUMNS = ("reviewed_value", "reviewed_status")
STATUSES = ("verified", "corrected", "illegible", "rejected", "")
REJECT = "reject"
STRIPS = "strips"  # DIR/strips/<value>/: the sequence reader's field strips (train --extra-data skips it)
_NEEDED = tuple(c for c in COLUMNS if c not in ("confidence", "digit_confidences", "error")) + REVIEW_COLUMNS


def read_reviewed(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a reviewed CSV, cells unquoted; DataError (naming the file and line) for a file
    that is not one: missing columns, an unknown ``reviewed_status``, a bad number or value."""
    try:
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:  # names as scan writes them
            reader = csv.DictReader(fh)
            missing = [c for c in _NEEDED if c not in (reader.fieldnames or ())]
            if missing:
                raise DataError(f"{path}: not a reviewed formdigits CSV (missing columns: {', '.join(missing)})")
            rows = []
            for line, raw in enumerate(reader, 2):
                row = {k: unquote(v or "") for k, v in raw.items() if k is not None}
                _check(row, path, line)
                rows.append(row)
    except (OSError, csv.Error) as e:
        raise DataError(f"{path}: cannot read CSV: {e}") from None
    return rows


def _check(row: dict[str, str], path: Any, line: int) -> None:
    status = row["reviewed_status"].strip()
    if status not in STATUSES:
        raise DataError(f"{path}, line {line}: unknown reviewed_status {status!r} "
                        f"(expected one of {', '.join(s for s in STATUSES if s)} or empty)")  # fmt: skip
    row["reviewed_status"] = status
    try:
        row["page"] = str(int(row["page"]))
        for k in ("x", "y", "w", "h"):
            row[k] = str(int(row[k] or 0))
    except ValueError:
        raise DataError(f"{path}, line {line}: page, x, y, w and h must be whole numbers") from None
    value = row["reviewed_value"].strip()
    if status in ("verified", "corrected") and not (value == "" or value.isascii() and value.isdigit()):
        raise DataError(f"{path}, line {line}: reviewed_value {value!r} of a {status} field must be digits 0-9")
    row["reviewed_value"] = value


def crop_labels(value: str, read: list[str]) -> tuple[list[str] | None, str]:
    """Labels for a field's crops, left to right, given the person's ``value`` and what the model
    ``read`` in each crop (a digit or "reject"); ``(None, reason)`` when the cut cannot be trusted."""
    if not value:
        return [REJECT] * len(read), ""
    if len(read) == len(value):
        return list(value), ""
    digits = [i for i, label in enumerate(read) if label != REJECT]
    if len(digits) == len(value):
        labels = [REJECT] * len(read)
        for i, d in zip(digits, value):
            labels[i] = d
        return labels, ""
    return None, "cut_mismatch"


def crop_name(file: str, page: int, box: Iterable[int], index: int | str) -> str:
    """A file name that is the same each time the same crop is exported."""
    key = f"{file}\0{page}\0{','.join(str(int(v)) for v in box)}\0{index}"
    return hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()[:16] + ".png"


def write_png(path: Path, image: np.ndarray) -> None:
    """Write ``image`` as PNG atomically (a temporary file renamed into place)."""
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise DataError(f"{path}: could not encode the image")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, path)


def export_crops(reviewed_csv: str | os.PathLike, out_dir: str | os.PathLike, classifier: Any = None,
                 strips: Any = None) -> dict[str, Any]:  # fmt: skip
    """Write the verified and corrected fields of ``reviewed_csv`` as labelled crops into ``out_dir``.

    ``classifier``/``strips``: the models the scan ran (a ``Classifier`` and a ``StripReader``);
    with no classifier, the shipped ones (both readers, as a default scan). With a classifier
    but no strip reader, pages are read by the cutting reader alone and no strips are written.
    Page files are looked for as the CSV names them (relative to the current folder), then
    beside the CSV. Returns counts: ``crops`` per label, ``strips``, ``fields`` (exported
    ones), ``skipped`` (fields, per reason) and ``unchecked`` (rows nobody checked).
    """
    rows = read_reviewed(reviewed_csv)
    out = Path(out_dir)
    if classifier is None:
        from .batch import load_readers

        classifier, strips, _, _ = load_readers(workers=0)
    from .fieldview import page_views
    from .pages import PageError

    crops: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    result: dict[str, Any] = {"crops": crops, "strips": 0, "fields": 0, "skipped": skipped, "unchecked": 0}
    pages: dict[tuple[str, int], list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        status = row["reviewed_status"]
        if not status:
            result["unchecked"] += 1
        elif status in ("illegible", "rejected"):
            skipped[status] += 1
        elif row["status"] == "error":
            skipped["scan_error"] += 1
        else:
            pages[(row["file"], int(row["page"]))].append(row)
    here = Path(reviewed_csv).parent
    labels = [str(d) for d in range(10)] + [REJECT]
    for (file, page), checked in pages.items():
        path = file if Path(file).exists() or not (here / file).exists() else str(here / file)
        boxes = [tuple(int(r[k]) for k in "xywh") for r in checked]
        try:
            views = {v.box: v for v in page_views(path, page, classifier, strips, boxes=boxes)}
        except (PageError, OSError):
            skipped["page_unreadable"] += len(checked)
            continue
        for row, box in zip(checked, boxes):
            view = views.get(box)
            if view is None:
                skipped["field_not_found"] += 1
                continue
            value = row["reviewed_value"]
            if strips is not None and view.strip is not None and value:
                write_png(out / STRIPS / value / crop_name(file, page, box, "strip"), 255 - view.strip)
                result["strips"] += 1
            given, reason = crop_labels(value, list(view.labels))
            if given is None:
                skipped[reason] += 1
                continue
            result["fields"] += 1
            for i, (crop, label) in enumerate(zip(view.digits, given)):
                name = crop_name(file, page, box, i)
                for other in labels:  # a crop whose label changed since the last export moves
                    if other != label:
                        (out / other / name).unlink(missing_ok=True)
                write_png(out / label / name, 255 - np.asarray(crop, np.uint8))
                crops[label] += 1
    result["crops"], result["skipped"] = dict(sorted(crops.items())), dict(sorted(skipped.items()))
    return result


def summary(result: dict[str, Any]) -> str:
    """One line for the terminal: what :func:`export_crops` wrote and skipped."""
    n = sum(result["crops"].values())
    per = ", ".join(f"{k}: {v}" for k, v in result["crops"].items()) or "none"
    skip = ", ".join(f"{k} {v}" for k, v in result["skipped"].items()) or "none"
    return (f"{n} crops from {result['fields']} fields ({per}), {result['strips']} strips; "
            f"fields skipped: {skip}; {result['unchecked']} rows not checked")  # fmt: skip
