"""The training path end to end on a small subset, so it cannot rot (CPU, well under a minute)."""

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")  # the train extra

from formdigits.cli import main
from formdigits.train import loop


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_train_export_evaluate(tmp_path, mnist_dir):
    out = tmp_path / "run"
    r = run("train", "--reader", "digit", "--data-dir", mnist_dir, "--no-download", "-o", out, "--epochs", 1,
            "--limit", 5000, "--test-limit", 1000, "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    for name in ("checkpoint.pt", "formdigits.onnx", "metrics.json", "curves.png", "confusion.png"):
        assert (out / name).stat().st_size > 0, name
    assert cv2.imread(str(out / "curves.png")).shape[2] == 3
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_n"] == 1000 and metrics["test_accuracy"] > 0.8  # one epoch on 5,000 digits

    assert (out / "formdigits-int8.onnx").stat().st_size > 0  # the int8 twin, for CPUs
    again = tmp_path / "again.onnx"
    assert run("export", out / "checkpoint.pt", "-o", again, "--data-dir", mnist_dir).exit_code == 0
    assert (tmp_path / "again-int8.onnx").is_file()
    r8 = run("evaluate", "--model", tmp_path / "again-int8.onnx", "--data-dir", mnist_dir, "--limit", 1000, "--json")
    assert json.loads(r8.stdout)["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=0.01)

    r = run("evaluate", "--model", again, "--data-dir", mnist_dir, "--limit", 1000, "--json")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["n"] == 1000
    # ONNX Runtime reproduces what PyTorch measured on the same digits
    assert report["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=0.002)
    assert len(report["confusion"]) == 10 and len(report["confusion"][0]) == 11
    assert 0 <= report["nondigit"]["rejected"] <= 1


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path, mnist_dir, monkeypatch):
    cfg = loop.TrainConfig(epochs=2, limit=1000, test_limit=200, val_size=500, workers=0)
    whole = tmp_path / "whole"
    loop.train(whole, mnist_dir, config=cfg, download=False, progress=False)

    real_save, saves = loop._save, []

    def save_then_die(obj, path):
        real_save(obj, path)
        saves.append(path)
        raise KeyboardInterrupt  # interrupted right after the first epoch's checkpoint

    cut = tmp_path / "cut"
    monkeypatch.setattr(loop, "_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        loop.train(cut, mnist_dir, config=cfg, download=False, progress=False)
    monkeypatch.setattr(loop, "_save", real_save)
    assert len(saves) == 1 and not (cut / "formdigits.onnx").exists()
    loop.train(cut, mnist_dir, resume=True, download=False, progress=False)

    a = torch.load(whole / "checkpoint.pt", weights_only=True)
    b = torch.load(cut / "checkpoint.pt", weights_only=True)
    assert b["epoch"] == 2 and len(b["history"]) == 2
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=1e-6)


def test_extra_data_is_read_and_checked(tmp_path):
    from formdigits.errors import DataError
    from formdigits.train.data import load_extra

    good = tmp_path / "good"
    for label in ("3", "reject"):
        (good / label).mkdir(parents=True)
        img = np.full((40, 30), 240, np.uint8)
        cv2.line(img, (15, 5), (15, 35), 20, 3)
        cv2.imwrite(str(good / label / "a.png"), img)
    crops, labels = load_extra(good)
    assert labels.tolist() == [3, 10]
    assert crops[0].dtype == np.uint8 and crops[0][20, 15] > 200 and crops[0][2, 2] == 0  # dark ink -> bright ink

    bad_name = tmp_path / "bad"
    (bad_name / "seven").mkdir(parents=True)
    with pytest.raises(DataError, match="seven: folder name must be a digit 0-9 or 'reject'"):
        load_extra(bad_name)

    broken = tmp_path / "broken"
    (broken / "1").mkdir(parents=True)
    (broken / "1" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"x.png: not a readable image"):
        load_extra(broken)


def test_train_the_sequence_reader_from_the_cli(tmp_path, mnist_dir):
    out = tmp_path / "strip"
    r = run("train", "--reader", "strip", "--steps", 2, "--data-dir", mnist_dir, "--no-download", "-o", out, "--quiet")
    assert r.exit_code == 0, r.output
    assert "held-back strings read exactly" in r.output
    metrics = json.loads((out / "strip-metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["strings"] == 2000 and metrics["onnx_bytes"] > 100_000
    assert not (out / "formdigits.onnx").exists()  # the digit model was not asked for
    r = run("train", "--reader", "strip", "--steps", 2, "--data-dir", mnist_dir, "--no-download", "-o", out, "--resume",
            "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output  # a finished run resumes to the same end
    tuned = tmp_path / "tuned"
    r = run("train", "--reader", "strip", "--steps", 1, "--init", out / "strip-checkpoint.pt", "--lr", 1e-4,
            "--data-dir", mnist_dir, "--no-download", "-o", tuned, "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert json.loads((tuned / "strip-metrics.json").read_text())["steps"] == 1
