"""The command line: help, version, and one-line errors (exit 1) for bad input."""

import gzip
import re
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from formdigits import __version__
from formdigits.cli import main
from formdigits.mnist import FILES
from formdigits.train.runs import missing_torch_message, run_folder


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for f in fragments:
        assert str(f) in lines[0]


def test_version_and_help_on_every_command():
    assert run("--version").output.strip() == f"formdigits, version {__version__}"
    for command in ([], ["train"], ["export"], ["evaluate"]):
        r = run(*command, "--help")
        assert r.exit_code == 0 and "Usage: " in r.output


def test_usage_errors_exit_2():
    assert run("train", "--epochs", "0").exit_code == 2
    assert run("evaluate", "--device", "tpu").exit_code == 2
    assert run("nonsense").exit_code == 2


def test_evaluate_refuses_a_non_onnx_model(tmp_path, mnist_dir):
    model = tmp_path / "model.onnx"
    model.write_text("not onnx")
    assert_one_line_error(run("evaluate", "--model", model, "--data-dir", mnist_dir), model, "not a usable ONNX model")


def test_missing_and_corrupt_mnist(tmp_path, mnist_dir):
    pytest.importorskip("torch")  # `train` stops at the missing train extra first
    # every missing file is named, the test set's too (issue 19), and no run folder is made
    assert_one_line_error(run("train", "--data-dir", tmp_path, "--no-download", "-o", tmp_path / "o"),
                          f"MNIST not found in {tmp_path}", *(f"{name}.gz" for name in FILES))  # fmt: skip
    assert not (tmp_path / "o").exists()
    bad = tmp_path / "bad"
    shutil.copytree(mnist_dir, bad)
    labels = bad / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    labels.write_bytes(gzip.compress(bytes(raw)))
    assert_one_line_error(run("evaluate", "--data-dir", bad), labels, "checksum mismatch")


def test_bad_extra_data_and_checkpoints(tmp_path, mnist_dir):
    pytest.importorskip("torch")  # `train` stops at the missing train extra first
    extra = tmp_path / "extra"
    (extra / "x").mkdir(parents=True)
    r = run("train", "--data-dir", mnist_dir, "--no-download", "--extra-data", extra, "-o", tmp_path / "o")
    assert_one_line_error(r, extra / "x", "folder name must be a digit")
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"garbage")
    assert_one_line_error(run("export", ckpt, "-o", tmp_path / "m.onnx"), ckpt, "not a formdigits checkpoint")
    assert not (tmp_path / "m.onnx").exists()


BLOCK_TORCH = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked for this test")
sys.meta_path.insert(0, Block())
"""


def test_scan_side_works_without_torch(tmp_path):
    code = BLOCK_TORCH + """
import formdigits, formdigits.cli, formdigits.classifier, formdigits.evaluate, formdigits.preprocess
from click.testing import CliRunner
r = CliRunner().invoke(formdigits.cli.main, ["--help"])
assert r.exit_code == 0, r.output
r = CliRunner().invoke(formdigits.cli.main, ["train", "--data-dir", "nowhere"])
assert r.exit_code == 1 and "needs PyTorch" in r.output, r.output
import numpy as np
clf = formdigits.classifier.Classifier()
probs = clf.classify([np.zeros((40, 30), np.uint8)] * 3)
assert probs.shape == (3, 11)
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch was imported"
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_scan_options_that_cannot_work_are_refused_before_any_page_is_read(tmp_path):
    """Issue 19: these ran the whole scan and then failed with a traceback, or hung."""
    page = tmp_path / "p.png"  # never read: the options are refused first
    cases = [
        (["-o", tmp_path / "missing" / "out.csv"], "the folder"),
        (["-o", tmp_path], "is a folder"),
        (["--min-confidence", "nan"], "not nan"),
        (["--page-timeout", "inf"], "finite number of seconds"),
    ]
    for options, message in cases:
        r = run("scan", page, *options)
        assert r.exit_code == 2 and message in r.output, (options, r.output)
        assert "Traceback" not in r.output


def test_train_never_overwrites_models_unasked(tmp_path, monkeypatch):
    """Issue 19 item 16: the default -o was export/, the shipped models of a source checkout."""
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    shipped = tmp_path / "export"
    shipped.mkdir()
    (shipped / "strip-reader.onnx").write_bytes(b"shipped")
    r = run("train", "-o", shipped, "--data-dir", tmp_path, "--no-download")
    assert r.exit_code == 2 and "export already holds strip-reader.onnx" in r.output and "--force" in r.output
    assert (shipped / "strip-reader.onnx").read_bytes() == b"shipped"
    r = run("train", "--reader", "digit", "-o", shipped, "--data-dir", tmp_path, "--no-download")
    assert r.exit_code == 1 and "MNIST not found" in r.output  # the digit model's files are not there: may go on
    r = run("train", "--resume")
    assert r.exit_code == 2 and "--resume needs -o" in r.output
    r = run("train", "--data-dir", tmp_path, "--no-download")  # the default: a new folder under runs/
    assert r.exit_code == 1 and "MNIST not found" in r.output
    assert re.fullmatch(r"runs/\d{8}-\d{6}", run_folder(None, "both").as_posix())
    assert (shipped / "strip-reader.onnx").read_bytes() == b"shipped"


def test_missing_torch_says_how_to_install_it_from_a_checkout_or_an_index(tmp_path):
    assert "pip install torch==2.13.0 'formdigits[train]'" in missing_torch_message("train", tmp_path)
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "formdigits").mkdir()
    message = missing_torch_message("export", tmp_path)
    assert message.startswith("`formdigits export` needs PyTorch") and f'cd {tmp_path} && ' in message
    assert 'pip install -e ".[train]"' in message
