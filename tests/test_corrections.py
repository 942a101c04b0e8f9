"""corrections.export_crops: a reviewed scan CSV -> labelled crops for ``train --extra-data``."""

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from formdigits.corrections import crop_labels, crop_name, export_crops, read_reviewed, summary
from formdigits.errors import DataError
from formdigits.output import COLUMNS
from formdigits.pipeline import scan
from formdigits.train.data import load_extra

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
PAGE = str(SAMPLES / "marks.png")


@pytest.fixture(scope="module")
def scanned():
    return [r for r in scan(PAGE)]


def _box(row):
    return (row.x, row.y, row.w, row.h)


def write_reviewed(path, rows, reviews):
    """The scan rows as the scan CSV has them, plus the review columns (``reviews``: field -> (status, value))."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([*COLUMNS, "reviewed_value", "reviewed_status"])
        for r in rows:
            status, value = reviews.get(r.field, ("", ""))
            w.writerow([*r.csv_cells(), value, status])
    return path


def _by_value(rows):
    return {r.value: r for r in rows}


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*.png"))


def test_crop_labels_trust_only_a_cut_the_value_explains():
    assert crop_labels("29", ["2", "7"]) == (["2", "9"], "")  # as many crops as digits: corrected
    assert crop_labels("29", ["2", "reject"]) == (["2", "9"], "")
    assert crop_labels("29", ["2", "reject", "9"]) == (["2", "reject", "9"], "")  # a mark between two digits
    assert crop_labels("", ["reject", "1"]) == (["reject", "reject"], "")  # verified empty: no digits there
    assert crop_labels("295", ["2", "9"]) == (None, "cut_mismatch")  # a digit missed or merged
    assert crop_labels("2", ["2", "1", "reject"]) == (None, "cut_mismatch")  # a mark misread as a digit
    assert crop_labels("7", []) == (None, "cut_mismatch")


def test_export_writes_the_reviewed_crops_with_their_labels(tmp_path, review_readers, scanned):
    clf, strips = review_readers
    by = _by_value(scanned)
    a, b, c, d, e, f = by["29"], by["16"], by["7955"], by["49"], by["20"], by["610"]
    reviews = {
        a.field: ("verified", "29"),
        b.field: ("corrected", "76"),  # two crops, two digits: the person's digits win
        c.field: ("corrected", "795"),  # four crops for three digits: which is which is unknown
        d.field: ("illegible", ""),
        e.field: ("rejected", ""),
        f.field: ("verified", "'610"),  # spreadsheet-safe quoting is undone
    }
    csv_path = write_reviewed(tmp_path / "out.reviewed.csv", scanned, reviews)
    out = tmp_path / "crops"
    result = export_crops(csv_path, out, clf, strips)
    assert result["crops"] == {"0": 1, "1": 1, "2": 1, "6": 2, "7": 1, "9": 1}
    assert result["fields"] == 3 and result["strips"] == 4
    assert result["skipped"] == {"cut_mismatch": 1, "illegible": 1, "rejected": 1}
    assert result["unchecked"] == len(scanned) - 6
    expected = [f"{lab}/{crop_name(PAGE, 1, _box(r), i)}" for r, v in ((a, "29"), (b, "76"), (f, "610"))
                for i, lab in enumerate(v)]  # fmt: skip
    strips_written = [f"strips/{v}/{crop_name(PAGE, 1, _box(r), 'strip')}" for r, v in
                      ((a, "29"), (b, "76"), (c, "795"), (f, "610"))]  # fmt: skip
    assert _files(out) == sorted(expected + strips_written)
    # the crops are the very crops the scan's digit CNN read, dark ink on light paper
    img = cv2.imread(str(out / expected[0]), cv2.IMREAD_GRAYSCALE)
    assert img.dtype == np.uint8 and np.median(img) > 127
    crops, labels = load_extra(out)  # train --extra-data reads it, the strips folder aside
    assert len(crops) == 7 and sorted(labels.tolist()) == [0, 1, 2, 6, 6, 7, 9]
    assert "7 crops from 3 fields" in summary(result)

    # again: the same files, none added; a label changed since moves its crop
    again = export_crops(csv_path, out, clf, strips)
    assert again == result and _files(out) == sorted(expected + strips_written)
    reviews[a.field] = ("corrected", "28")
    export_crops(write_reviewed(csv_path, scanned, reviews), out, clf, strips)
    moved = crop_name(PAGE, 1, _box(a), 1)
    assert (out / "8" / moved).is_file() and not (out / "9" / moved).exists()
    assert not list(out.rglob("*.partial"))


def test_export_without_strip_reader_writes_no_strips(tmp_path, review_readers, scanned):
    clf, _ = review_readers
    a = _by_value(scanned)["29"]
    csv_path = write_reviewed(tmp_path / "r.csv", scanned, {a.field: ("verified", "29")})
    result = export_crops(csv_path, tmp_path / "crops", clf)
    assert result["strips"] == 0 and result["crops"] == {"2": 1, "9": 1}


def test_unreadable_page_and_unknown_field_are_counted(tmp_path, review_readers, scanned):
    clf, strips = review_readers
    a = _by_value(scanned)["29"]
    rows = [r for r in scanned if r.field == a.field]
    moved = type(a)(**{**vars(a), "x": a.x + 40})  # a box the page does not have
    gone = type(a)(**{**vars(a), "file": str(tmp_path / "gone.png")})
    csv_path = write_reviewed(tmp_path / "r.csv", [*rows, moved, gone], {a.field: ("verified", "29")})
    result = export_crops(csv_path, tmp_path / "crops", clf, strips)
    assert result["skipped"] == {"field_not_found": 1, "page_unreadable": 1} and result["fields"] == 1


def test_bad_reviewed_csv_is_refused_naming_the_file(tmp_path, scanned):
    missing = tmp_path / "missing.csv"
    missing.write_text("file,page,field,x,y,w,h,value,status\nsamples/marks.png,1,1,0,0,1,1,2,ok\n")
    with pytest.raises(DataError, match=r"missing\.csv.*missing columns: reviewed_value, reviewed_status"):
        read_reviewed(missing)
    unknown = write_reviewed(tmp_path / "unknown.csv", scanned, {scanned[0].field: ("maybe", "29")})
    with pytest.raises(DataError, match=r"unknown\.csv, line 2: unknown reviewed_status 'maybe'"):
        read_reviewed(unknown)
    letters = write_reviewed(tmp_path / "letters.csv", scanned, {scanned[1].field: ("corrected", "2O")})
    with pytest.raises(DataError, match=r"letters\.csv, line 3: .*must be digits"):
        read_reviewed(letters)
    with pytest.raises(DataError, match="nothere.csv"):
        read_reviewed(tmp_path / "nothere.csv")
