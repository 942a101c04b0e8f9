"""Runs: interrupted and resumed, crashing and hanging workers, one writer per output, signals, the Python API's checks."""

import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from formdigits.cli import main
from formdigits.parallel import WorkerFailure, ordered_map


def _sleep_or_die(task):
    if task == "die":
        os._exit(3)  # a worker killed mid-page
    time.sleep(task)
    return task


def test_a_crashed_or_hung_worker_costs_only_its_own_task():
    tasks = [0, 0.01, "die", 0, 30, 0.01, 0]
    results = list(ordered_map(_sleep_or_die, tasks, workers=2, timeout=3))
    assert [t for t, _ in results] == tasks  # every task, in order
    failed = {i: r.message for i, (_, r) in enumerate(results) if isinstance(r, WorkerFailure)}
    assert set(failed) == {2, 4}
    assert "crashed" in failed[2] and "time limit" in failed[4]
    assert [r for i, (_, r) in enumerate(results) if i not in failed] == [0, 0.01, 0, 0.01, 0]


def _pages_in(path):
    try:
        return len({(r["file"], r["page"]) for r in csv.DictReader(path.read_text().splitlines())})
    except (OSError, csv.Error, KeyError):
        return 0


def test_resume_after_a_killed_run_gives_the_same_csv(tmp_path):
    samples = Path(__file__).resolve().parent.parent / "samples"
    files = [str(p) for p in sorted(samples.iterdir()) if p.suffix != ".csv"] * 3  # 21 pages
    listing = "\n".join(files) + "\n"
    full, cut = tmp_path / "full.csv", tmp_path / "cut.csv"
    scan = [sys.executable, "-m", "formdigits", "scan", "-", "--workers", "0", "-q"]
    subprocess.run([*scan, "-o", str(full)], input=listing, text=True, check=True)

    proc = subprocess.Popen([*scan, "-o", str(cut)], stdin=subprocess.PIPE, text=True)
    proc.stdin.write(listing)
    proc.stdin.close()
    partial = tmp_path / "cut.csv.partial"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and _pages_in(partial) < 3:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up of any kind: as a crash or a power cut
    proc.wait()
    assert not cut.exists() and 3 <= _pages_in(partial) < _pages_in(full)

    resumed = subprocess.run([*scan, "-o", str(cut), "--resume"], input=listing, text=True, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr
    assert cut.read_bytes() == full.read_bytes()
    assert not partial.exists()


def test_resume_keeps_whole_pages_only(tmp_path):
    from formdigits.output import Row, open_output

    out = tmp_path / "o.csv"
    with pytest.raises(KeyboardInterrupt), open_output(out) as w:
        for page in (1, 2, 3):
            w.write(Row("a.png", page, 1, value="12", status="ok"))
            w.write(Row("a.png", page, 2, value="34", status="ok"))
            w.flush()
        raise KeyboardInterrupt
    partial = tmp_path / "o.csv.partial"
    partial.write_bytes(partial.read_bytes()[:-7])  # the last row cut short, as by a crash mid-write
    with open_output(out, resume=True) as w:
        assert w.done == {("a.png", 1): 1, ("a.png", 2): 1}  # page 3 is read again
        w.write(Row("a.png", 3, 1, value="99", status="ok"))
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [(r["page"], r["field"], r["value"]) for r in rows] == [
        ("1", "1", "12"), ("1", "2", "34"), ("2", "1", "12"), ("2", "2", "34"), ("3", "1", "99")]  # fmt: skip


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return []


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="finds the worker process through Linux /proc")
def test_killing_a_worker_mid_run_costs_at_most_its_page(tmp_path):
    samples = Path(__file__).resolve().parent.parent / "samples"
    files = [str(p) for p in sorted(samples.iterdir()) if p.suffix != ".csv"] * 2  # 14 pages
    out = tmp_path / "out.csv"
    err = open(tmp_path / "stderr.txt", "w+")  # a file, not a pipe: a full pipe would stall the run
    proc = subprocess.Popen([sys.executable, "-m", "formdigits", "scan", "-", "--workers", "1", "-q", "-o", str(out)],
                            stdin=subprocess.PIPE, stderr=err, text=True)  # fmt: skip
    proc.stdin.write("\n".join(files) + "\n")
    proc.stdin.close()
    partial, deadline, killed = tmp_path / "out.csv.partial", time.time() + 120, None
    while time.time() < deadline and proc.poll() is None and killed is None:
        workers = [c for c in _children(proc.pid) if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()]
        if workers and _pages_in(partial) >= 2:
            killed = workers[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    assert killed, "no worker process to kill before the run ended"
    try:  # a stalled run fails, and does not hang the test run
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"the run did not end within 120 s of its worker's death: {(tmp_path / 'stderr.txt').read_text()}")
    finally:
        err.close()
    stderr = (tmp_path / "stderr.txt").read_text()
    rows = list(csv.DictReader(out.read_text().splitlines()))
    keys = [(r["file"], r["page"]) for r in rows]
    runs = [k for i, k in enumerate(keys) if i == 0 or k != keys[i - 1]]
    assert len(runs) == 14  # every page of every file listed has its rows (a run of them), in order
    errors = [r for r in rows if r["status"] == "error"]
    assert len(errors) <= 1 and all("worker process reading it crashed" in r["error"] for r in errors), errors
    assert proc.returncode == (1 if errors else 0), stderr


def test_python_api_takes_one_path_whole_and_refuses_options_that_cannot_work(tmp_path):
    """Issue 19: scan(b"/path") read the bytes as 29 paths, scan(..., workers=-1) silently returned nothing."""
    import formdigits
    from formdigits.pipeline import iter_scan

    missing = tmp_path / "no-such-page.png"
    for one in (bytes(missing), str(missing), missing):
        rows = formdigits.scan(one, readers="cut", device="cpu")
        assert [(r.file, r.status) for r in rows] == [(str(missing), "error")], one
    bad = [({"workers": -1}, "workers must be an integer >= 0"), ({"page_timeout": float("inf")}, "page_timeout"),
           ({"min_confidence": float("nan")}, "min_confidence"), ({"pdf_dpi": 10}, "pdf_dpi"),
           ({"readers": "all"}, "readers must be both or cut")]  # fmt: skip
    for options, message in bad:
        with pytest.raises(ValueError, match=message):
            formdigits.scan([missing], **options)
        with pytest.raises(ValueError, match=message):
            iter_scan([missing], **options)  # at the call, not at the first page
    for paths in ([1, 2], 7, [None]):
        with pytest.raises(TypeError, match="paths must be"):
            iter_scan(paths)


def test_paths_from_stdin_are_expanded_like_arguments(tmp_path):
    """`echo dir | formdigits scan - -r` said "is a directory"."""
    from formdigits.pipeline import expand_paths

    for name in ("a.png", "sub/b.tif", "sub/notes.txt"):
        (tmp_path / "dir" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "dir" / name).write_bytes(b"")
    stdin = io.StringIO(f"{tmp_path / 'dir'}\n{tmp_path / 'one.png'}\n")
    got = expand_paths(["-"], recursive=True, stdin=stdin)
    assert got == [str(tmp_path / "dir" / "a.png"), str(tmp_path / "dir" / "sub" / "b.tif"), str(tmp_path / "one.png")]


def _write_form_page(path, text="4"):
    """A small page with one open box holding ``text``."""
    page = np.full((400, 600), 250, np.uint8)
    cv2.rectangle(page, (100, 100), (400, 180), 0, 3)
    cv2.putText(page, text, (200, 165), cv2.FONT_HERSHEY_SIMPLEX, 2.0, 0, 5)
    Path(path).write_bytes(cv2.imencode(".png", page)[1].tobytes())  # (cv2.imwrite crashes on a non-UTF-8 name)
    return path


def test_names_that_are_not_utf8_do_not_stop_the_batch(tmp_path):
    """Issue 19 item 2: `formdigits scan d -o out.csv` with d/bad\xff.jpg ended in a UnicodeEncodeError (and a
    TIFF or a debug picture so named crashed OpenCV)."""
    folder = tmp_path / "d"
    folder.mkdir()
    bad = [os.fsdecode(os.fsencode(folder) + name) for name in (b"/bad\xff.png", b"/odd\xfe.tif")]
    _write_form_page(bad[0])
    _write_form_page(folder / "good.png")
    cv2.imencode(".tif", cv2.imread(str(folder / "good.png"), cv2.IMREAD_GRAYSCALE))[1].tofile(bad[1])
    out = tmp_path / "out.csv"
    proc = subprocess.run([sys.executable, "-m", "formdigits", "scan", str(folder), "-o", str(out), "-j", "0",
                           "--debug-dir", str(tmp_path / "debug")], capture_output=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    keys = [line.split(b",")[0] for line in out.read_bytes().splitlines()[1:]]
    assert keys == [os.fsencode(bad[0]), os.fsencode(folder / "good.png"), os.fsencode(bad[1])]
    assert len(list((tmp_path / "debug").iterdir())) == 3
    result = CliRunner().invoke(main, ["scan", str(folder), "-o", str(tmp_path / "o.jsonl"), "--format", "jsonl",
                                       "-j", "0", "--readers", "cut"])  # fmt: skip
    assert result.exit_code == 0 and os.fsencode(bad[0]) in (tmp_path / "o.jsonl").read_bytes()
    # paths on stdin are bytes too
    result = CliRunner().invoke(main, ["scan", "-", "-j", "0", "-q", "--readers", "cut"], input=os.fsencode(bad[0]) + b"\n")
    assert result.exit_code == 0 and result.stdout_bytes.splitlines()[1].startswith(os.fsencode(bad[0]) + b",1,1,")


def test_resume_exits_1_when_the_kept_pages_hold_an_error(tmp_path):
    """Issue 19 item 10: the kept part's error rows were not counted: '0 errors', exit 0."""
    from formdigits.output import Row, open_output

    good, out = _write_form_page(tmp_path / "good.png"), tmp_path / "out.csv"
    missing = str(tmp_path / "missing.png")
    with pytest.raises(KeyboardInterrupt), open_output(out) as w:
        w.write(Row(missing, 1, error=f"{missing}: no such file"))
        w.write(Row(str(good), 1, 1, status="empty"))  # the last page: read again
        w.flush()
        raise KeyboardInterrupt
    result = CliRunner().invoke(main, ["scan", missing, str(good), "-o", str(out), "--resume", "-j", "0"])
    assert result.exit_code == 1, result.output
    assert "formdigits: 1 page, 1 field (1 ok, 0 review, 0 empty), 0 errors in" in result.stderr
    assert f"and 1 page kept from the interrupted run, 1 error\n  failed: {missing}: no such file" in result.stderr
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert [(r["file"], r["status"]) for r in rows] == [(missing, "error"), (str(good), "ok")]


def test_a_second_run_on_the_same_output_stops_before_reading_a_page(tmp_path, monkeypatch):
    """Issue 19 item 6: two runs writing one -o left NUL bytes and mixed rows in it."""
    import formdigits.pipeline
    from formdigits.output import Row, open_output

    good, out = _write_form_page(tmp_path / "good.png"), tmp_path / "out.csv"
    monkeypatch.setattr(formdigits.pipeline, "plan_pages", lambda *a, **k: pytest.fail("a page was read"))
    with open_output(out) as first:
        first.write(Row("a.png", 1, status="empty"))
        first.flush()
        for extra in ([], ["--resume"]):
            result = CliRunner().invoke(main, ["scan", str(good), "-o", str(out), "-j", "0", *extra])
            assert result.exit_code == 1 and "Traceback" not in result.output
            assert result.output.splitlines()[-1] == (f"Error: {out}.partial: another formdigits run is writing it "
                                                      "(it is locked): wait for that run to end, or give another -o")
    assert out.read_text().splitlines()[1:] == ["a.png,1,0,0,0,0,0,,0.0000,,empty,"]


def test_a_full_disk_keeps_the_partial_and_says_so(tmp_path, monkeypatch):
    """ENOSPC while writing: one line naming the problem, exit 1, the finished pages kept for --resume."""
    import errno

    from formdigits import output

    pages = [str(_write_form_page(tmp_path / f"p{i}.png", str(i))) for i in range(3)]
    out, full = tmp_path / "out.csv", tmp_path / "full.csv"
    scan = ["scan", *pages, "-j", "0", "-q", "--readers", "cut"]
    assert CliRunner().invoke(main, [*scan, "-o", str(full)]).exit_code == 0
    room = len(full.read_bytes()) - 30  # the last page does not fit

    def write(self, text, real=output._Utf8Out.write):
        nonlocal room
        room -= len(text)
        if room < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, text)

    monkeypatch.setattr(output._Utf8Out, "write", write)
    result = CliRunner().invoke(main, [*scan, "-o", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines() == [f"Error: {out}.partial: cannot write: No space left on device; the pages "
                                          "finished before are kept in it: run again with --resume once it can be "
                                          "written"]  # fmt: skip
    assert not out.exists() and "p1.png" in (tmp_path / "out.csv.partial").read_text()
    monkeypatch.undo()
    assert CliRunner().invoke(main, [*scan, "-o", str(out), "--resume"]).exit_code == 0
    assert out.read_bytes() == full.read_bytes()


def test_a_damaged_partial_is_one_line_not_a_traceback(tmp_path):
    good, out = _write_form_page(tmp_path / "good.png"), tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl.partial").write_text('{"file": ["x"], "page": 1, "status": "ok", "error": ""}\n')
    result = CliRunner().invoke(main, ["scan", str(good), "-o", str(out), "--format", "jsonl", "--resume", "-j", "0"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.splitlines()[-1].startswith(f"Error: {out}.partial: line 1 is not a formdigits JSON Lines")


def test_the_progress_total_counts_pages_not_names():
    """A path listed twice is read twice: one page each, not one more page each time it comes again."""
    from collections import Counter

    from formdigits.batch import _Progress

    p = _Progress(["a.png", "a.png", "b.tif"], Counter(), quiet=True)
    for page in [("a.png", 1), ("a.png", 1), ("b.tif", 1), ("b.tif", 2), ("b.tif", 3)]:
        p.page(*page)
    assert p.bar.total == 5
    resumed = _Progress(["a.png", "a.png", "b.tif"], Counter({("a.png", 1): 2, ("b.tif", 1): 1, ("b.tif", 2): 1}), True)
    resumed.page("b.tif", 3)
    assert resumed.bar.total == 5 and resumed.bar.n == 4  # n: updates while disabled are not counted


def _tree(pid):
    """``pid``'s descendants (Linux /proc)."""
    out, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return False


def _start_run(tmp_path, copies=6):
    """A scan with two workers, once its workers are up and (to stop it mid-run) before it is done."""
    samples = Path(__file__).resolve().parent.parent / "samples"
    files = [str(p) for p in sorted(samples.iterdir()) if p.suffix != ".csv"] * copies
    out = tmp_path / "out.csv"
    proc = subprocess.Popen([sys.executable, "-m", "formdigits", "scan", "-", "-j", "2", "-q", "-o", str(out)],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    proc.stdin.write("\n".join(files) + "\n")
    proc.stdin.close()
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        workers = [c for c in _children(proc.pid) if "spawn_main" in _cmdline(c)]
        if len(workers) == 2:
            return proc, out
        time.sleep(0.01)
    pytest.fail(f"the run never had two workers: {proc.poll()}")


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:  # gone already
        return ""


def _gone(pids, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="finds the worker processes through Linux /proc")
def test_workers_and_resource_tracker_exit_when_the_scan_is_killed(tmp_path):
    """Issue 19 item 7: after `kill -9` two workers (~140 MB each) and the resource tracker lived on for good."""
    proc, out = _start_run(tmp_path)
    while proc.poll() is None and _pages_in(out.with_name("out.csv.partial")) < 1:  # the workers are at work
        time.sleep(0.02)
    children = _tree(proc.pid)
    assert len(children) >= 3  # two workers and the resource tracker
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _gone(children) == []


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="finds the worker processes through Linux /proc")
def test_sigterm_stops_a_scan_as_ctrl_c_does(tmp_path):
    proc, out = _start_run(tmp_path)
    partial = out.with_name("out.csv.partial")
    while proc.poll() is None and _pages_in(partial) < 2:
        time.sleep(0.02)
    children = _tree(proc.pid)
    proc.terminate()
    assert proc.wait(60) == 143
    stderr = proc.stderr.read()
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1].startswith("formdigits: terminated after ")
    assert stderr.splitlines()[-1].endswith(f"the finished pages are in {out}.partial: run again with --resume to go on")
    assert not out.exists() and _pages_in(partial) >= 2
    assert _gone(children) == []


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="finds the worker processes through Linux /proc")
def test_ctrl_c_while_the_workers_start_prints_no_worker_traceback(tmp_path):
    """The terminal sends SIGINT to the whole process group, workers included, even while they import."""
    proc, out = _start_run(tmp_path)
    children = _tree(proc.pid)
    deadline = time.time() + 60
    while time.time() < deadline and not all(_handles_sigint(c) for c in children):
        time.sleep(0.01)  # until Python runs in every worker (before, SIGINT would end it silently)
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(60) == 130
    stderr = proc.stderr.read()
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.splitlines()[-1].startswith("formdigits: interrupted after ")
    assert _gone(children) == []


def _handles_sigint(pid):
    """Whether ``pid`` ignores or catches SIGINT (Linux /proc): Python in it is up, or it was told to ignore it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True  # gone
    masks = dict(line.split(":\t") for line in status.splitlines() if line.startswith(("SigIgn", "SigCgt")))
    return bool((int(masks["SigIgn"], 16) | int(masks["SigCgt"], 16)) & (1 << (signal.SIGINT - 1)))


def _report_worker(task):
    return os.getpid(), signal.getsignal(signal.SIGINT) == signal.SIG_IGN


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="finds the worker processes through Linux /proc")
def test_workers_ignore_ctrl_c_and_go_when_the_caller_stops():
    results = ordered_map(_report_worker, range(20), workers=2)
    _, (pid, ignores) = next(results)
    assert ignores  # Ctrl-C is the parent's to handle
    results.close()  # the caller stopped early: the workers are killed, not left to finish their tasks
    assert _gone([pid], seconds=5) == []
