"""scan for scripts (issue 22): the summary as JSON, logging, other inputs, providers, completion, the review list."""

import csv
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import onnxruntime
import pytest
from click.testing import CliRunner

import formdigits.batch
from formdigits.batch import REVIEW_LIST, run_scan
from formdigits.classifier import _providers
from formdigits.cli import main
from formdigits.inputs import split_names
from formdigits.output import Row

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def run(*args, input=None, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, **kw)


def box_page(path):
    """A small page with two empty boxes: two `empty` rows, read in a fraction of a second."""
    page = np.full((200, 400), 235, np.uint8)
    cv2.rectangle(page, (40, 40), (189, 99), 20, 2)
    cv2.rectangle(page, (230, 40), (359, 99), 20, 2)
    path.write_bytes(cv2.imencode(".png", page)[1].tobytes())
    return path


def rows_of(text):
    return list(csv.DictReader(io.StringIO(text)))


SCHEMA = {"version": str, "output": str, "complete": bool, "stopped": type(None), "exit_code": int, "pages": int,
          "fields": dict, "errors": int, "error_messages": list, "kept_pages": int, "kept_error_messages": list,
          "seconds": float, "pages_per_second": float, "models": list, "device": str, "provider": str}  # fmt: skip


def test_summary_json_on_stdout_while_rows_go_to_a_file(tmp_path):
    page, broken = box_page(tmp_path / "p.png"), tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out.csv"
    r = run("scan", page, broken, "-o", out, "--summary-json", "-", "-j", 0, "-q")
    assert r.exit_code == 1, r.output
    summary = json.loads(r.stdout)  # one object, nothing else on stdout
    assert {k: type(v) for k, v in summary.items()} == SCHEMA
    assert summary["fields"] == {"ok": 0, "review": 0, "empty": 2}
    assert all(type(v) is int for v in summary["fields"].values())
    assert summary["pages"] == 2 and summary["errors"] == 1 and summary["exit_code"] == 1 and summary["complete"]
    assert summary["error_messages"][0].startswith(f"{broken}: ") and summary["output"] == str(out)
    assert [Path(m).name for m in summary["models"]] == ["formdigits-int8.onnx", "strip-reader.onnx"]
    assert summary["device"] == "cpu" and summary["provider"] == "CPUExecutionProvider"
    assert summary["kept_pages"] == 0 and summary["kept_error_messages"] == []
    assert len(rows_of(out.read_text(encoding="utf-8"))) == 3


def test_summary_json_file_is_written_when_the_run_is_interrupted(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(formdigits.batch, "iter_scan", interrupted)
    r = run("scan", box_page(tmp_path / "p.png"), "-o", tmp_path / "out.csv", "--summary-json", tmp_path / "s.json",
            "-j", 0, "--readers", "cut")  # fmt: skip
    assert r.exit_code == 130, r.output
    summary = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert summary["complete"] is False and summary["stopped"] == "interrupted" and summary["exit_code"] == 130


def test_summary_json_usage_errors(tmp_path):
    page = box_page(tmp_path / "p.png")
    r = run("scan", page, "--summary-json", "-")  # rows to stdout too
    assert r.exit_code == 2 and "--summary-json - and -o - cannot both write to stdout" in r.output
    r = run("scan", page, "-o", tmp_path / "o.csv", "--summary-json", tmp_path / "no" / "s.json")
    assert r.exit_code == 2 and "does not exist" in r.output and not (tmp_path / "o.csv").exists()


def test_verbose_logs_pages_and_vv_the_decisions_to_stderr(tmp_path):
    page = box_page(tmp_path / "p.png")
    quiet = run("scan", page, "-j", 0, "-q")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    one = run("scan", page, "-j", 0, "-q", "-v")
    assert f"formdigits.pipeline: INFO: {page}: page 1: 2 fields (0 ok, 0 review, 2 empty)" in one.stderr
    assert "DEBUG" not in one.stderr and one.stdout == quiet.stdout
    two = run("scan", page, "-j", 0, "-q", "-vv")
    assert f"formdigits.pipeline: DEBUG: {page}: page 1: orientation upright" in two.stderr
    assert "INFO" in two.stderr and two.stdout == quiet.stdout
    assert run("scan", page, "-j", 0, "-q").stderr == ""  # the handler went with the run


def test_jobs_is_the_name_and_workers_an_alias(tmp_path):
    page = box_page(tmp_path / "p.png")
    assert "-j, --jobs, --workers" in run("scan", "--help").output
    outputs = {run("scan", page, flag, 0, "-q", "--readers", "cut").stdout for flag in ("-j", "--jobs", "--workers")}
    assert len(outputs) == 1 and "empty" in outputs.pop()


def test_files_from_with_a_name_holding_a_newline(tmp_path):
    odd = box_page(tmp_path / "two\nlines.png")
    plain = box_page(tmp_path / "plain.png")
    listing = tmp_path / "list"
    listing.write_bytes(os.fsencode(odd) + b"\0" + os.fsencode(plain) + b"\0")
    r = run("scan", "--files-from", listing, "-0", "-j", 0, "-q", "--readers", "cut")
    assert r.exit_code == 0, r.output
    assert [row["file"] for row in rows_of(r.stdout)] == [str(odd)] * 2 + [str(plain)] * 2
    r = run("scan", "-0", "-", "-j", 0, "-q", "--readers", "cut", input=listing.read_bytes())  # stdin, NUL-separated
    assert [row["file"] for row in rows_of(r.stdout)] == [str(odd)] * 2 + [str(plain)] * 2
    listing.write_text(f"{plain}\n\n{plain}\r\n")  # one per line without -0; added to PATHS
    r = run("scan", plain, "--files-from", listing, "-j", 0, "-q", "--readers", "cut")
    assert [row["file"] for row in rows_of(r.stdout)] == [str(plain)] * 6
    r = run("scan", "--files-from", tmp_path / "none.txt")
    assert r.exit_code == 2 and f"--files-from {tmp_path / 'none.txt'}: No such file" in r.output
    assert run("scan").exit_code == 2  # no PATHS and no --files-from


def test_listed_names_keep_bytes_that_are_not_utf8():
    assert split_names(b"a\xff.png\0b\nc.png\0", null=True) == [os.fsdecode(b"a\xff.png"), "b\nc.png"]
    assert split_names(b"a.png\r\n\n  \nb.png") == ["a.png", "b.png"]


def test_stdin_image_one_page_and_a_multipage_tiff(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    page = box_page(tmp_path / "p.png")
    r = run("scan", "--stdin-image", "-", "-j", 0, "-q", "--readers", "cut", input=page.read_bytes())
    assert r.exit_code == 0, r.output
    by_path = rows_of(run("scan", page, "-j", 0, "-q", "--readers", "cut").stdout)
    assert rows_of(r.stdout) == [dict(row, file="<stdin>") for row in by_path] and len(by_path) == 2
    tif = SAMPLES / "meters-fax.tif"
    r = run("scan", "--stdin-image", "-", "-j", 0, "-q", "--readers", "cut", input=tif.read_bytes())
    assert {(row["file"], row["page"]) for row in rows_of(r.stdout)} == {("<stdin>", "1"), ("<stdin>", "2")}
    r = run("scan", "--stdin-image", "-", "-j", 0, "-q", input=b"no image")
    assert r.exit_code == 1 and [(row["file"], row["status"]) for row in rows_of(r.stdout)] == [("<stdin>", "error")]
    assert rows_of(r.stdout)[0]["error"].startswith("<stdin>: ") and "formdigits-stdin" not in r.output
    assert list((tmp_path / "tmp").iterdir()) == []  # the temporary file went with the run
    assert run("scan", "--stdin-image", page).exit_code == 2  # no - to read
    assert run("scan", "--stdin-image", "-", "--resume", "-o", tmp_path / "o.csv", input=b"").exit_code == 2


def test_device_cuda_n_picks_the_gpu_by_index(monkeypatch, tmp_path):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider",
                                                                         "CPUExecutionProvider"])  # fmt: skip
    assert _providers("cuda:1") == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert _providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.undo()
    page = box_page(tmp_path / "p.png")
    for bad in ("cuda:", "cuda:x", "gpu", "cuda:-1"):
        r = run("scan", page, "--device", bad)
        assert r.exit_code == 2 and "is not auto, cpu, cuda or cuda:N" in r.output
    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        r = run("scan", page, "--device", "cuda:1")
        assert r.exit_code == 1 and "Error: --device cuda:1: ONNX Runtime has no CUDA provider here" in r.output


@pytest.mark.parametrize("name", ["OpenVINOExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider"])
def test_a_provider_that_is_not_installed_is_refused_in_one_line(name, tmp_path):
    if name in onnxruntime.get_available_providers():
        pytest.skip(f"{name} is installed here")
    r = run("scan", box_page(tmp_path / "p.png"), "--providers", f"CPUExecutionProvider,{name}")
    assert r.exit_code == 2
    assert f"Error: --providers: {name} is not available in this onnxruntime (available: " in r.output
    assert "CPUExecutionProvider" in r.output.splitlines()[-1] and "Traceback" not in r.output


def test_providers_by_name(tmp_path):
    r = run("scan", box_page(tmp_path / "p.png"), "--providers", "CPUExecutionProvider", "-j", 0)
    assert r.exit_code == 0 and "(CPUExecutionProvider)" in r.stderr and "empty" in r.stdout


@pytest.mark.parametrize("shell, mark", [("bash", "_formdigits_completion()"), ("zsh", "#compdef formdigits"),
                                         ("fish", "complete --no-files --command formdigits")])  # fmt: skip
def test_shell_completion_script(shell, mark):
    if shell == "bash" and not shutil.which("bash"):
        pytest.skip("no bash to ask its version")
    r = CliRunner().invoke(main, [], env={"_FORMDIGITS_COMPLETE": f"{shell}_source"}, prog_name="formdigits")
    assert r.exit_code == 0 and mark in r.output and "_FORMDIGITS_COMPLETE" in r.output


def test_list_review_names_the_fields_sent_to_review(tmp_path):
    page = SAMPLES / "census.jpg"
    r = run("scan", page, "-j", 0, "-q", "--list-review")
    assert r.exit_code == 0, r.output
    review = [row for row in rows_of(r.stdout) if row["status"] == "review"]
    assert review, "the sample page has fields to review"
    listed = [line for line in r.stderr.splitlines() if line.startswith("review: ")]
    why = lambda row: row["error"] or "low confidence"  # noqa: E731
    assert listed == [f"review: {page}: page 1: field {row['field']}: {row['value'] or '-'}: {why(row)}"
                      for row in review]  # fmt: skip
    assert "review: " not in run("scan", page, "-j", 0, "-q").stderr  # only when asked


def test_review_list_is_capped(tmp_path, monkeypatch):
    works = [SimpleNamespace(file="f.png", page=p, error="", rows=[Row("f.png", p, k, value="7", status="review",
             error="why") for k in range(1, 31)]) for p in (1, 2, 3)]  # fmt: skip
    monkeypatch.setattr(formdigits.batch, "iter_scan", lambda paths, **options: iter(works))
    summary = run_scan(["f.png"], str(tmp_path / "out.csv"), quiet=True)
    assert summary.counts["review"] == 90 and len(summary.review) == REVIEW_LIST
    lines = summary.review_lines()
    assert len(lines) == REVIEW_LIST + 1 and lines[0] == "review: f.png: page 1: field 1: 7: why"
    assert lines[-2] == "review: f.png: page 2: field 20: 7: why" and lines[-1] == "review: ... and 40 more"
