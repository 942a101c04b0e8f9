"""Output rows: RFC 4180 CSV, JSON Lines, spreadsheet-safe cells, never a half-written file."""

import csv
import io
import json

import pytest

from formdigits.output import COLUMNS, Row, RowWriter, open_output, spreadsheet_safe


def test_spreadsheet_formula_cells_are_neutralised():
    for risky in ("=1+2", "+3", "-4", "@SUM(A1)", "\tx", "\rx"):
        assert spreadsheet_safe(risky) == "'" + risky
    for fine in ("scan 1.png", "007", "", "a=b"):
        assert spreadsheet_safe(fine) == fine


def test_csv_row_layout_and_quoting():
    buf = io.StringIO(newline="")
    w = RowWriter(buf, "csv")
    w.write(Row("=evil,name.png", 2, 3, 1, 2, 30, 40, "007", 0.9, [0.95, 0.99, 0.96], "review", "low confidence 0.90"))
    w.write(Row("gone.png", 1, error="gone.png: no such file"))
    text = buf.getvalue()
    assert text.startswith(",".join(COLUMNS) + "\r\n")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[1] == ["'=evil,name.png", "2", "3", "1", "2", "30", "40", "007", "0.9000", "0.9500 0.9900 0.9600",
                       "review", "low confidence 0.90"]  # fmt: skip
    assert rows[2][:3] == ["gone.png", "1", "0"] and rows[2][8] == "" and rows[2][10:] == ["error", "gone.png: no such file"]


def test_jsonl_rows():
    buf = io.StringIO()
    RowWriter(buf, "jsonl").write(Row("a.png", 1, 1, 0, 0, 5, 5, "12", 0.5, [0.5, 1.0], "review", "", "open"))
    obj = json.loads(buf.getvalue())
    assert obj["value"] == "12" and obj["digit_confidences"] == [0.5, 1.0] and obj["kind"] == "open"
    with pytest.raises(ValueError, match="format"):
        RowWriter(buf, "xml")


def test_file_appears_only_when_the_run_completes(tmp_path):
    out = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt):
        with open_output(out) as w:
            w.write(Row("a.png", 1, status="empty"))
            w.flush()
            raise KeyboardInterrupt
    assert not out.exists()
    assert "a.png" in (tmp_path / "out.csv.partial").read_text()  # what was done is kept aside
    with open_output(out) as w:
        w.write(Row("b.png", 1, status="empty"))
    assert out.exists() and not (tmp_path / "out.csv.partial").exists()
    assert "b.png" in out.read_text()
