"""train --finetune: the shipped digit CNN read back from its ONNX file and tuned on a user's crops (CPU, seconds)."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")  # the train extra

from formdigits.classifier import Classifier, default_model_path
from formdigits.cli import main
from formdigits.errors import ModelError
from formdigits.mnist import load_mnist
from formdigits.pipeline import scan
from formdigits.train.data import as_tensors
from formdigits.train.export import export_model
from formdigits.train.finetune import model_from_onnx, onnx_outputs, train_config

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def digits(mnist_dir):
    images, labels = load_mnist("test", mnist_dir)
    return images[:200], labels[:200]


def test_the_shipped_weights_read_back_from_onnx(tmp_path, digits):
    shipped = default_model_path()
    model, temperature = model_from_onnx(shipped)
    x, _ = as_tensors(*digits)
    want = onnx_outputs(shipped, x.numpy())
    with torch.no_grad():
        got = (model(x) / temperature).softmax(1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    again = export_model(model, tmp_path / "again.onnx", temperature=temperature)  # exported again: the same model
    np.testing.assert_allclose(onnx_outputs(again, x.numpy()), want, atol=1e-6)
    with pytest.raises(ModelError, match="int8 twin"):
        model_from_onnx(shipped.with_name("formdigits-int8.onnx"))


def test_finetune_defaults():
    c = train_config(True, workers=0)
    assert (c.epochs, c.lr, c.limit, c.extra_repeat) == (3, 3e-4, 6000, 5) and c.finetune == str(default_model_path())
    c = train_config(True, epochs=1, limit=0)
    assert (c.epochs, c.limit) == (1, 0)
    c = train_config(False)
    assert (c.epochs, c.lr, c.limit, c.finetune) == (40, 3e-3, 0, "")


def test_train_finetune_smoke(tmp_path, mnist_dir, digits):
    extra = tmp_path / "crops"
    images, labels = digits
    for i, (img, label) in enumerate(zip(images[:30], labels[:30])):
        (extra / str(label)).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(extra / str(label) / f"{i}.png"), 255 - img)  # dark ink on paper, as the export writes
    out = tmp_path / "ft"
    r = run("train", "--finetune", "--extra-data", extra, "--data-dir", mnist_dir, "--no-download", "-o", out,
            "--epochs", 1, "--limit", 300, "--val-size", 100, "--test-limit", 200, "--workers", 0, "--quiet")  # fmt: skip
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["finetune_from"] == "formdigits.onnx" and metrics["extra_crops"] == 30
    # from the shipped weights, a short low-rate tune: still the shipped model's answers (from scratch: ~50 %)
    assert metrics["test_accuracy"] > 0.97
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["train_config"]["finetune"] and ckpt["train_config"]["epochs"] == 1
    x, _ = as_tensors(*digits)
    tuned, shipped = onnx_outputs(out / "formdigits.onnx", x.numpy()), onnx_outputs(default_model_path(), x.numpy())
    assert (tuned.argmax(1) == shipped.argmax(1)).mean() > 0.97 and not np.allclose(tuned, shipped)
    # the scanner runs it (and its int8 twin)
    for name in ("formdigits.onnx", "formdigits-int8.onnx"):
        assert Classifier(out / name).labels[-1] == "reject"
    rows = scan(SAMPLES / "marks.png", model=str(out / "formdigits-int8.onnx"))
    assert sum(r.status == "ok" for r in rows) > len(rows) / 2


def test_finetune_needs_extra_data_and_the_digit_reader(tmp_path):
    r = run("train", "--finetune", "-o", tmp_path / "x")
    assert r.exit_code == 2 and "--extra-data" in r.output
    (tmp_path / "c" / "1").mkdir(parents=True)
    r = run("train", "--finetune", "--reader", "strip", "--extra-data", tmp_path / "c", "-o", tmp_path / "x")
    assert r.exit_code == 2 and "--reader strip" in r.output
