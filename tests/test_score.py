"""Scoring against hand-made CSVs whose scores are known exactly."""

import csv
import json
import sys

import pytest
from click.testing import CliRunner

from formdigits.cli import main
from formdigits.errors import DataError
from formdigits.score import edit_distance, plot_curve, read_rows, score

TRUTH = [  # file, page, x, y, w, h, value
    ("a.png", 1, 0, 0, 100, 50, "123"),
    ("a.png", 1, 200, 0, 100, 50, "45"),
    ("a.png", 1, 0, 100, 100, 50, ""),
    ("a.png", 2, 0, 0, 100, 50, "7"),
    ("b.png", 1, 0, 0, 100, 50, "9000"),
]
PRED = [  # file, page, x, y, w, h, value, confidence, status
    ("scans/a.png", 1, 2, 1, 98, 48, "123", 0.99, "ok"),  # right
    ("scans/a.png", 1, 203, 2, 95, 47, "46", 0.60, "review"),  # one digit wrong
    ("scans/a.png", 1, 1, 101, 99, 49, "", 1.0, "empty"),  # right (empty)
    ("scans/a.png", 1, 500, 500, 50, 50, "3", 0.97, "ok"),  # spurious
    ("scans/a.png", 1, 600, 500, 50, 50, "", 1.0, "empty"),  # an extra empty box: not spurious
    # a.png page 2: missed
    ("scans/b.png", 1, 0, 0, 100, 50, "900", 0.95, "ok"),  # one digit dropped
]


def write(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def files(tmp_path):
    truth = write(tmp_path / "truth.csv", ["file", "page", "x", "y", "w", "h", "value"], TRUTH)
    pred = write(tmp_path / "pred.csv", ["file", "page", "x", "y", "w", "h", "value", "confidence", "status"], PRED)
    return pred, truth


def test_exact_scores(files):
    pred, truth = files
    r = score(read_rows(pred), read_rows(truth), [0, 0.2, 0.4, 0.6])
    assert r["fields"] == 5 and r["missed"] == 1 and r["spurious"] == 1 and r["review"] == 1
    assert r["field_accuracy"] == pytest.approx(2 / 5)
    # digits: 3 + 2 + 0 + 1 + 4 = 10; edits: 0 + 1 + 0 + 1 (missed) + 1 = 3
    assert r["digits"] == 10 and r["digit_accuracy"] == pytest.approx(0.7)
    # ranked by confidence: 46 (0.60, wrong), 900 (0.95, wrong), 123 (0.99), "" (1.0); the miss always counts
    e = r["error_at_reject"]
    assert e["0"] == pytest.approx(3 / 5)
    assert e["0.2"] == pytest.approx(2 / 4)  # 1 field rejected: the 0.60 one
    assert e["0.4"] == pytest.approx(1 / 3)  # 2 rejected
    assert e["0.6"] == pytest.approx(1 / 2)  # 3 rejected: the miss and "" remain
    # accepted (ok/empty) fields: 123 right, "" right, 900 wrong; 46 went to review; the miss is no one's
    assert r["accepted"] == pytest.approx(3 / 5)
    assert r["error_of_accepted"] == pytest.approx(1 / 3)


def test_cli_text_json_and_plot(files, tmp_path):
    pytest.importorskip("matplotlib")  # the plot extra
    pred, truth = files
    r = CliRunner().invoke(main, ["score", str(pred), str(truth), "--json", "--plot", str(tmp_path / "c.png")])
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["field_accuracy"] == pytest.approx(0.4) and report["accepted"] == pytest.approx(0.6)
    assert report["error_of_accepted"] == pytest.approx(1 / 3) and report["missed"] == 1
    assert (tmp_path / "c.png").stat().st_size > 1000
    r = CliRunner().invoke(main, ["score", str(pred), str(truth), "--reject", "0,0.2"])
    assert "field accuracy 40.00%" in r.output and "20%: 50.00%" in r.output
    assert "accepted without review 60.00% of fields, wrong among accepted 33.33%, missed 1" in r.output
    assert CliRunner().invoke(main, ["score", str(pred), str(truth), "--reject", "x"]).exit_code == 2


def test_edit_distance_and_bad_csv(tmp_path):
    assert edit_distance("1234", "1234") == 0
    assert edit_distance("1234", "124") == 1
    assert edit_distance("", "99") == 2
    assert edit_distance("12", "21") == 2
    bad = write(tmp_path / "bad.csv", ["name", "value"], [("x", "1")])
    with pytest.raises(DataError, match="bad.csv: not a formdigits CSV"):
        read_rows(bad)


def test_truth_and_predictions_swapped_is_a_usage_error(files):
    pred, truth = files
    r = CliRunner().invoke(main, ["score", str(truth), str(pred)])
    assert r.exit_code == 2 and "looks like a truth file" in r.output


def test_plot_without_matplotlib_names_the_extra_to_install(files, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    with pytest.raises(DataError, match=r"^--plot needs matplotlib, in the plot extra: pip install 'formdigits\[plot\]'"):
        plot_curve([(0.0, 0.0)], tmp_path / "c.png")
    pred, truth = files
    r = CliRunner().invoke(main, ["score", str(pred), str(truth), "--plot", str(tmp_path / "c.png")])
    assert r.exit_code == 1 and "formdigits[plot]" in r.output and not (tmp_path / "c.png").exists()
