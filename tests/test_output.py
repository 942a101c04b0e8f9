"""Output rows: RFC 4180 CSV, JSON Lines, spreadsheet-safe cells, never a half-written file."""

import csv
import io
import json
import os
import stat

import pytest

from formdigits.errors import DataError
from formdigits.output import COLUMNS, Row, RowWriter, open_output, spreadsheet_safe, unquote


def test_spreadsheet_formula_cells_are_neutralised():
    for risky in ("=1+2", "+3", "-4", "@SUM(A1)", "\tx", "\rx"):
        assert spreadsheet_safe(risky) == "'" + risky
    for fine in ("scan 1.png", "007", "", "a=b"):
        assert spreadsheet_safe(fine) == fine


def test_the_quote_prefix_is_reversible():
    """Issue 19 item 11: '=a and =a were both written '=a."""
    cells = ["=a", "'=a", "''=a", "'", "''", "a'", "'plain", "plain", ""]
    written = [spreadsheet_safe(c) for c in cells]
    assert len(set(written)) == len(cells)
    assert [unquote(w) for w in written] == cells
    assert spreadsheet_safe("'=a") == "''=a"


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


def _interrupted(out, rows, fmt="csv", extra=0):
    """Write ``rows`` (one page each, then ``extra`` more) into ``out``'s partial as a run that is then killed."""
    with pytest.raises(KeyboardInterrupt), open_output(out, fmt) as w:
        for row in rows + [Row("last.png", 1, status="empty")] * extra:
            w.write(row)
            w.flush()
        raise KeyboardInterrupt
    return out.with_name(out.name + ".partial")


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_resume_matches_every_name_exactly(tmp_path, fmt):
    """Issue 19 items 2 and 11: names that needed a quote, and names that are not UTF-8, are read back as written."""
    names = ["'=a.jpg", "=a.jpg", "''b.png", "+c.png", "bad\udcff.jpg", "new\u2028line\x85.png", "plain.png"]
    out = tmp_path / f"out.{fmt}"
    partial = _interrupted(out, [Row(n, 1, status="empty") for n in names], fmt, extra=1)
    assert b"bad\xff.jpg" in partial.read_bytes()  # the name's own bytes
    with open_output(out, fmt, resume=True) as w:
        assert w.done == {(n, 1): 1 for n in names}


def test_a_name_that_is_not_utf8_is_written_as_its_bytes_to_a_file_and_to_stdout(tmp_path, monkeypatch):
    out = tmp_path / "out.csv"
    with open_output(out) as w:
        w.write(Row("bad\udcff.jpg", 1, status="empty"))
    assert out.read_bytes().splitlines()[1].startswith(b"bad\xff.jpg,1,")
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # strict, as a terminal's is
    monkeypatch.setattr("sys.stdout", stdout)
    with open_output("-", "jsonl") as w:
        w.write(Row("bad\udcff.jpg", 1, status="empty"))
    assert b'"file": "bad\xff.jpg"' in stdout.buffer.getvalue()


def test_stdout_gets_crlf_not_cr_crlf_where_text_mode_translates_newlines(monkeypatch):
    """On Windows, sys.stdout turns "\n" into "\r\n": the CSV's "\r\n" became "\r\r\n". Simulated here."""
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="\r\n")
    monkeypatch.setattr("sys.stdout", stdout)
    with open_output("-") as w:
        w.write(Row("a.png", 1, status="empty"))
    data = stdout.buffer.getvalue()
    assert data.count(b"\r\n") == 2 and b"\r\r" not in data


def test_resume_counts_the_error_pages_it_keeps(tmp_path):
    out = tmp_path / "out.csv"
    _interrupted(out, [Row("gone.png", 1, error="gone.png: no such file"), Row("a.png", 1, status="empty")], extra=1)
    with open_output(out, resume=True) as w:
        assert w.done.total() == 2 and w.failed == ["gone.png: no such file"]


def test_a_second_writer_of_the_same_output_is_refused(tmp_path):
    """Issue 19 item 6: two runs on one -o wrote NUL bytes and mixed rows into it."""
    out = tmp_path / "out.csv"
    partial = tmp_path / "out.csv.partial"
    with open_output(out) as first:
        first.write(Row("a.png", 1, status="empty"))
        first.flush()
        before = partial.read_bytes()
        for resume in (False, True):
            with pytest.raises(DataError, match=r"out.csv.partial: another formdigits run is writing it"):
                with open_output(out, resume=resume):
                    pytest.fail("a second writer got in")
        assert partial.read_bytes() == before  # not truncated, not rewritten
        first.write(Row("b.png", 1, status="empty"))
    assert [line.split(",")[0] for line in out.read_text().splitlines()] == ["file", "a.png", "b.png"]
    with open_output(out) as again:  # the lock went with the run
        again.write(Row("c.png", 1, status="empty"))


@pytest.mark.parametrize("fmt, text, message", [
    ("csv", "\0" * 300, "its first line is not the header this run writes"),
    ("csv", 'file,page,"x\r\n', "its first line is not the header this run writes"),
    ("csv", "a,b\r\n", "its first line is not the header this run writes"),
    ("jsonl", '{"file": ["x"], "page": 1, "status": "ok", "error": ""}\n', "line 1 is not a formdigits JSON Lines"),
    ("jsonl", '{"file": "x", "page": "1", "status": "ok", "error": ""}\n', "line 1 is not a formdigits JSON Lines"),
    ("jsonl", "[1, 2]\n", "line 1 is not a formdigits JSON Lines"),
    ("jsonl", ",".join(COLUMNS) + "\r\n", "line 1 is not a formdigits JSON Lines"),
])  # fmt: skip
def test_a_partial_damaged_from_its_first_record_is_refused_clearly(tmp_path, fmt, text, message):
    out = tmp_path / "out"
    partial = tmp_path / "out.partial"
    partial.write_bytes(text.encode())
    with pytest.raises(DataError, match=f"out.partial: {message}.*cannot resume from it"):
        with open_output(out, fmt, resume=True):
            pass
    assert partial.read_bytes() == text.encode()  # left as it was


def test_a_damaged_record_later_on_ends_what_is_kept(tmp_path):
    out = tmp_path / "out.jsonl"
    partial = _interrupted(out, [Row(f"{i}.png", 1, status="empty") for i in range(4)], "jsonl")
    lines = partial.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace('"2.png"', '["x"]')
    partial.write_text("".join(lines))
    with open_output(out, "jsonl", resume=True) as w:
        assert w.done == {("0.png", 1): 1}  # page 1 may be cut short: read again, like 2 and 3
    for cut in ("file,page,fi", ""):  # a run killed while writing its header left no page
        (tmp_path / "o.csv.partial").write_text(cut)
        with open_output(tmp_path / "o.csv", resume=True) as w:
            assert not w.done


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_one_error_naming_the_output():
    from formdigits.output import _Utf8Out

    with open("/dev/full", "wb", buffering=0) as fh:
        with pytest.raises(DataError, match=r"^out.csv.partial: cannot write: No space left on device; the pages "
                                            r"finished before are kept in it: run again with --resume"):  # fmt: skip
            RowWriter(_Utf8Out(fh), "csv", where="out.csv.partial").write(Row("a.png", 1, status="empty"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_or_device_given_as_output_is_written_into_never_replaced(tmp_path):
    """-o /dev/full wrote /dev/full.partial and renamed it over the device: a root user's /dev/null or
    /dev/full became a plain file. A device or a pipe is written straight into."""
    import threading

    pipe = tmp_path / "rows"
    os.mkfifo(pipe)
    got = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_bytes()))
    reader.start()
    with open_output(pipe) as w:
        w.write(Row("a.png", 1, status="empty"))
    reader.join(5)
    assert got and got[0].startswith(b"file,page,field") and b"a.png,1,0" in got[0]
    assert stat.S_ISFIFO(os.stat(pipe).st_mode) and not (tmp_path / "rows.partial").exists()
    with pytest.raises(DataError, match="--resume needs a regular output file"):
        with open_output(pipe, resume=True):
            pass
