"""formdigits review without a browser: the queue, the reviewed file (atomic, resumed), apply, the server's safety."""

import csv
import http.client
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from formdigits.cli import main
from formdigits.output import COLUMNS, spreadsheet_safe
from formdigits.review.apply import apply
from formdigits.review.queue import (Review, decide, items, load_state, load_table, reason_kind, record, reviewed_path,
                                     reviewed_text, save, select)  # fmt: skip
from formdigits.review.server import ReviewApp, start
from formdigits.review.views import Views

HEADER = ",".join(COLUMNS)


def write_csv(path, rows, columns=COLUMNS):
    with open(path, "w", newline="", encoding="utf-8", errors="surrogateescape") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(columns)
        w.writerows([spreadsheet_safe(str(c)) for c in r] for r in rows)
    return path


def small_csv(tmp_path, name="out.csv"):
    """Five rows: review 0.5, ok, review 0.2, an error row, empty."""
    return write_csv(tmp_path / name, [
        ["a.png", 1, 1, 10, 20, 100, 30, "123", "0.5000", "0.9 0.5 0.9", "review", "low confidence 0.50"],
        ["a.png", 1, 2, 10, 60, 100, 30, "45", "0.9900", "0.99 0.99", "ok", ""],
        ["a.png", 1, 3, 10, 99, 100, 30, "7", "0.2000", "0.2", "review", "readers disagree: cut 7, sequence 1"],
        ["b.pdf", 1, 0, 0, 0, 0, 0, "", "", "", "error", "b.pdf: cannot read"],
        ["c.png", 1, 1, 5, 5, 50, 20, "", "1.0000", "", "empty", ""],
    ])  # fmt: skip


def test_the_queue_is_the_review_rows_lowest_confidence_first_and_filters(tmp_path):
    table = load_table(small_csv(tmp_path))
    assert [(it.row, it.value) for it in items(table)] == [(2, "7"), (0, "123")]
    assert [it.row for it in items(table, include_ok=True)] == [2, 0, 1]  # ok rows after; no error, no empty row
    assert items(table)[0].box == (10, 99, 100, 30) and items(table)[0].digit_confidences == [0.2]
    assert [it.kind for it in items(table)] == ["readers disagree", "low confidence"]
    assert [it.row for it in select(items(table), reasons=["low confidence"])] == [0]
    assert [it.row for it in select(items(table), fields=["3"])] == [2]
    assert select(items(table), forms=["census"]) == []
    assert reason_kind("digits: 3 digits, want 4 to 6") == "digits"
    assert reason_kind("", "ok") == "accepted" and reason_kind("") == "low confidence"


def test_decisions(tmp_path):
    it = items(load_table(small_csv(tmp_path)))[1]  # read "123"
    assert decide(it, "confirm", "123") == Review("123", "verified")
    assert decide(it, "confirm", "128") == Review("128", "corrected")
    assert decide(it, "confirm", "") == Review("", "corrected")  # the field is blank
    assert decide(it, "illegible", "99") == Review("", "illegible")
    assert decide(it, "reject") == Review("", "rejected") and decide(it, "clear") == Review("", "")
    for bad in ("12a", "<b>", "1" * 65):
        with pytest.raises(ValueError):
            decide(it, "confirm", bad)
    with pytest.raises(ValueError):
        decide(it, "delete")


def test_the_reviewed_file_is_saved_whole_resumed_and_the_scan_never_written(tmp_path):
    path = small_csv(tmp_path)
    before = path.read_bytes()
    state = load_state(load_table(path))
    assert state.path == tmp_path / "out.reviewed.csv" and not state.path.exists()
    q = items(state.table)
    record(state, q[0], "confirm", "1")
    record(state, q[1], "illegible")
    again = load_state(load_table(path))  # a restart
    assert [(r.value, r.status) for r in again.reviews] == [("", "illegible"), ("", ""), ("1", "corrected"),
                                                             ("", ""), ("", "")]  # fmt: skip
    lines = state.path.read_bytes().decode().split("\r\n")
    assert lines[0] == HEADER + ",reviewed_value,reviewed_status" and len(lines) == 7 and lines[-1] == ""
    assert lines[1].endswith(",,illegible") and lines[3].endswith(",1,corrected") and lines[4].endswith(",,")
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.partial"))  # no temporary file left behind
    # a reviewed file of another scan is refused, not overwritten
    other = small_csv(tmp_path, "other.csv")
    shutil.copy(state.path, reviewed_path(other))
    rows = list(csv.reader(open(other, newline="")))
    rows[1][7] = "999"
    write_csv(other, rows[1:], rows[0])
    with pytest.raises(Exception, match="made from another scan"):
        load_state(load_table(other))


def test_a_failed_save_leaves_the_old_file_and_the_state(tmp_path, monkeypatch):
    path = small_csv(tmp_path)
    state = load_state(load_table(path))
    q = items(state.table)
    record(state, q[0], "confirm", "7")
    good = state.path.read_bytes()

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("formdigits.review.queue.os.replace", full)
    with pytest.raises(Exception, match="No space left"):
        record(state, q[1], "confirm", "5")
    assert state.path.read_bytes() == good and state.reviews[0].status == ""
    assert not list(tmp_path.glob("*.partial"))


def test_load_table_refuses_what_is_not_a_scan_csv(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(Exception, match="not a formdigits scan CSV"):
        load_table(bad)
    state = load_state(load_table(small_csv(tmp_path)))
    save(state)
    with pytest.raises(Exception, match="this is a reviewed file"):
        load_table(state.path)


def test_apply_without_reviews_gives_back_the_scan_byte_for_byte(samples_scan, tmp_path):
    path = tmp_path / "out.csv"
    shutil.copy(samples_scan, path)
    save(load_state(load_table(path)))
    apply(path, reviewed_path(path), tmp_path / "final.csv")
    assert (tmp_path / "final.csv").read_bytes() == path.read_bytes()


def test_apply_writes_the_people_s_readings(tmp_path):
    path = small_csv(tmp_path)
    state = load_state(load_table(path))
    q = items(state.table, include_ok=True)  # rows 2, 0, 1
    record(state, q[0], "confirm", "1")  # corrected
    record(state, q[1], "illegible")
    record(state, q[2], "reject")
    counts = apply(path, state.path, tmp_path / "final.csv")
    rows = list(csv.DictReader(open(tmp_path / "final.csv", newline="")))
    assert counts == {"review": 1, "empty": 2, "ok": 1, "error": 1}
    assert [(r["value"], r["confidence"], r["digit_confidences"], r["status"], r["error"]) for r in rows] == [
        ("", "0.0000", "", "review", "illegible (checked in review)"),
        ("", "0.0000", "", "empty", "not a digit field (checked in review)"),
        ("1", "1.0000", "1.0000", "ok", ""),
        ("", "", "", "error", "b.pdf: cannot read"),
        ("", "1.0000", "", "empty", ""),
    ]  # fmt: skip
    r = CliRunner().invoke(main, ["review", str(path), "--apply", str(state.path), "--format", "jsonl"])
    assert r.exit_code == 0, r.output
    assert [json.loads(line)["status"] for line in r.stdout.splitlines()] == ["review", "empty", "ok", "error", "empty"]


def test_apply_wide_with_template_names(tmp_path):
    rows = [["a.png", 1, "amount", 1, 2, 30, 10, "12", "0.4000", "0.4 0.9", "review", "low confidence 0.40", "bill"],
            ["a.png", 1, "zip", 1, 22, 30, 10, "99", "0.9900", "0.99 0.99", "ok", "", "bill"]]  # fmt: skip
    path = write_csv(tmp_path / "t.csv", rows, (*COLUMNS, "form"))
    state = load_state(load_table(path))
    [it] = items(state.table)
    assert it.form == "bill" and it.field == "amount"
    record(state, it, "confirm", "42")
    apply(path, state.path, tmp_path / "wide.csv", "wide")
    assert (tmp_path / "wide.csv").read_text().splitlines() == [
        "file,page,form,amount,amount_confidence,zip,zip_confidence,status,error", "a.png,1,bill,42,1.0000,99,0.9900,ok,"]
    with pytest.raises(Exception, match="needs a scan made with --template"):
        apply(small_csv(tmp_path), reviewed_path(small_csv(tmp_path)), tmp_path / "w.csv", "wide")


def test_non_utf8_and_formula_file_names_go_through_unchanged(tmp_path):
    name = b"scan-\xff.png".decode("utf-8", "surrogateescape")
    path = write_csv(tmp_path / "out.csv", [[name, 1, 1, 1, 2, 3, 4, "5", "0.1000", "0.1", "review", ""],
                                             ["=cmd|' /C calc'!A0", 1, 1, 1, 2, 3, 4, "6", "0.2000", "0.2", "review", ""]])
    state = load_state(load_table(path))
    q = items(state.table)
    assert [it.file for it in q] == [name, "=cmd|' /C calc'!A0"]
    record(state, q[0], "confirm", "8")
    raw = state.path.read_bytes()
    assert b"scan-\xff.png" in raw and b"'=cmd|' /C calc'!A0" in raw
    apply(path, state.path, tmp_path / "final.csv")
    assert b"scan-\xff.png,1,1,1,2,3,4,8," in (tmp_path / "final.csv").read_bytes()
    assert reviewed_text(state.table, state.reviews).encode("utf-8", "surrogateescape") == raw


def test_cli_usage_and_errors(tmp_path):
    path = small_csv(tmp_path)
    run = CliRunner().invoke
    assert run(main, ["review", "--help"]).exit_code == 0
    assert run(main, ["review", str(path), "-o", "x.csv"]).exit_code == 2  # -o needs --apply
    r = run(main, ["review", str(path), "--export-crops", str(tmp_path / "crops")])
    assert r.exit_code == 1 and "no reviewed file" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n")
    r = run(main, ["review", str(bad), "--no-browser"])
    assert r.exit_code == 1 and "not a formdigits scan CSV" in r.output and "Traceback" not in r.output
    r = run(main, ["review", str(path), "--field", "nope"])
    assert r.exit_code == 0 and "nothing to review" in r.stderr


def test_export_crops_is_wired_to_corrections(tmp_path, monkeypatch):
    corrections = pytest.importorskip("formdigits.corrections")
    path = small_csv(tmp_path)
    save(load_state(load_table(path)))
    seen = {}

    def fake(reviewed_csv, out_dir, classifier=None, strips=None):
        seen.update(reviewed=Path(reviewed_csv), out=Path(out_dir), classifier=classifier)
        return {"crops": {"1": 2}, "strips": 1, "fields": 1, "skipped": {}, "unchecked": 4}

    monkeypatch.setattr(corrections, "export_crops", fake)
    r = CliRunner().invoke(main, ["review", str(path), "--export-crops", str(tmp_path / "crops")])
    assert r.exit_code == 0, r.output
    assert seen["reviewed"] == reviewed_path(path) and seen["out"] == tmp_path / "crops" and seen["classifier"]


# ---- the server: 127.0.0.1, the token, CSRF, only the CSV's pages


@pytest.fixture
def served(samples_scan, tmp_path, review_readers):
    path = tmp_path / "out.csv"
    shutil.copy(samples_scan, path)
    table = load_table(path)
    app = ReviewApp(load_state(table), items(table), Views(tmp_path, review_readers))
    server, thread = start(app)
    yield app, server
    server.shutdown()
    server.server_close()
    app.views.close()


def request(server, method, path, body=None, headers=None, token=None):
    c = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    sep = "&" if "?" in path else "?"
    url = path + (f"{sep}token={token}" if token else "")
    c.request(method, url, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def test_the_server_binds_127_0_0_1_and_wants_the_token(served):
    app, server = served
    assert server.server_address[0] == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
    assert request(server, "GET", "/")[0] == 403
    assert request(server, "GET", "/", token="wrong")[0] == 403
    assert request(server, "GET", "/api/item?row=0")[0] == 403
    status, headers, body = request(server, "GET", "/", token=app.token)
    assert status == 200 and "script-src 'nonce-" in headers["Content-Security-Policy"]
    assert app.csrf.encode() in body and b"formdigits review" in body
    # another Host (a DNS-rebinding page) is refused even with the token
    assert request(server, "GET", "/", token=app.token, headers={"Host": "evil.example:80"})[0] == 403


def test_writes_need_the_csrf_token(served):
    app, server = served
    row = app.queue[0].row
    body = json.dumps({"row": row, "action": "confirm", "value": "12"})
    json_type = {"Content-Type": "application/json"}
    assert request(server, "POST", "/api/review", body, json_type, token=app.token)[0] == 403
    assert request(server, "POST", "/api/review", body, {**json_type, "X-CSRF-Token": "x"}, token=app.token)[0] == 403
    good = {**json_type, "X-CSRF-Token": app.csrf}
    assert request(server, "POST", "/api/review", body, good)[0] == 403  # no token
    assert request(server, "POST", "/api/review", body, {**good, "Origin": "http://evil.example"}, token=app.token)[0] == 403
    assert not app.state.path.exists()
    assert request(server, "POST", "/api/review", json.dumps({"row": row, "action": "confirm", "value": "<b>"}), good,
                   token=app.token)[0] == 400  # fmt: skip
    assert request(server, "POST", "/api/review", json.dumps({"row": 10**6, "action": "confirm"}), good,
                   token=app.token)[0] == 400  # fmt: skip
    status, _, data = request(server, "POST", "/api/review", body, good, token=app.token)
    assert status == 200 and json.loads(data)["status"] == "corrected"
    assert load_state(app.state.table).reviews[row] == Review("12", "corrected")


def test_only_the_pages_the_csv_names_are_served(served):
    app, server = served
    it = app.queue[0]
    from urllib.parse import quote

    ok = request(server, "GET", f"/page?file={quote(it.file)}&page={it.page}", token=app.token)
    assert ok[0] == 200 and ok[1]["Content-Type"] == "image/jpeg" and ok[2].startswith(b"\xff\xd8")
    boxed = request(server, "GET", f"/page?file={quote(it.file)}&page={it.page}&box=1,2,30,40", token=app.token)
    assert boxed[0] == 200 and boxed[2] != ok[2]  # the field outlined
    assert request(server, "GET", f"/page?file={quote(it.file)}&page={it.page}&box=1,x", token=app.token)[0] == 400
    here = Path(it.file)
    for file in ("../../../../etc/passwd", "/etc/passwd", str(here.parent / ".." / "samples" / here.name),
                 str(here.parent / "truth.csv"), str(Path(__file__)), it.file + "%00"):  # fmt: skip
        assert request(server, "GET", f"/page?file={quote(file)}&page=1", token=app.token)[0] == 404, file
    assert request(server, "GET", f"/page?file={quote(it.file)}&page=99", token=app.token)[0] == 404
    for path in ("/../../etc/passwd", "/static/../../pyproject.toml", "/%2e%2e/%2e%2e/etc/passwd", "/review.js"):
        assert request(server, "GET", path, token=app.token)[0] == 404, path
    status, _, data = request(server, "GET", f"/api/item?row={it.row}", token=app.token)
    payload = json.loads(data)
    assert status == 200 and payload["image"].startswith("data:image/png;base64,") and payload["crops"]
    assert request(server, "GET", "/api/item?row=999999", token=app.token)[0] == 404


def test_the_command_serves_until_interrupted(samples_scan, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from urllib.parse import urlsplit

    path = tmp_path / "out.csv"
    shutil.copy(samples_scan, path)
    proc = subprocess.Popen([sys.executable, "-m", "formdigits", "review", str(path), "--no-browser"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    try:
        lines = [proc.stderr.readline(), proc.stderr.readline()]
        url = lines[1].split()[2]
        assert "fields" in lines[0] and url.startswith("http://127.0.0.1:") and "token=" in url, lines
        parts = urlsplit(url)
        c = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        c.request("GET", "/?" + parts.query)
        assert c.getresponse().status == 200
        c.close()
        second = subprocess.run([sys.executable, "-m", "formdigits", "review", str(path), "--no-browser"],
                                capture_output=True, text=True, timeout=60)  # fmt: skip
        assert second.returncode == 1 and "another `formdigits review` is serving it" in second.stderr
        other = tmp_path / "other.csv"
        shutil.copy(samples_scan, other)
        taken = subprocess.run([sys.executable, "-m", "formdigits", "review", str(other), "--no-browser", "--port",
                                str(parts.port)], capture_output=True, text=True, timeout=60)  # fmt: skip
        assert taken.returncode == 1 and "cannot listen there" in taken.stderr and "Traceback" not in taken.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0 and "stopped" in rest, rest
