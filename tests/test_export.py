"""Model export: ONNX Runtime must agree with PyTorch; bad models are refused clearly."""

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")  # the train extra
torch = pytest.importorskip("torch")

from formdigits.classifier import LABELS, Classifier
from formdigits.errors import ModelError
from formdigits.train.export import export_model, load_checkpoint
from formdigits.train.model import DigitNet, ModelConfig


@pytest.fixture(scope="module")
def model_and_onnx(tmp_path_factory):
    torch.manual_seed(0)
    model = DigitNet(ModelConfig())
    # non-trivial BatchNorm statistics, as after training
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    model.eval()
    path = tmp_path_factory.mktemp("model") / "m.onnx"
    export_model(model, path, metrics={"test_accuracy": 0.5, "history": [1, 2]})
    return model, path


@pytest.mark.parametrize("n", [1, 7, 256])
def test_onnx_runtime_matches_pytorch(model_and_onnx, n):
    model, path = model_and_onnx
    x = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(n))
    with torch.no_grad():
        expected = model(x).softmax(1).numpy()
    got = Classifier(path, device="cpu").predict(x.numpy())
    assert got.shape == (n, len(LABELS))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))


def test_steady_prediction_is_the_mean_over_jittered_copies(model_and_onnx):
    from formdigits.preprocess import JITTER, jitter

    model, path = model_and_onnx
    clf = Classifier(path, device="cpu")
    x = np.random.default_rng(3).random((5, 1, 28, 28), dtype=np.float32)
    views = np.concatenate([x[None, :, 0], jitter(x[:, 0])])  # (1 + len(JITTER), 5, 28, 28)
    with torch.no_grad():
        each = model(torch.from_numpy(views.reshape(-1, 1, 28, 28))).softmax(1).numpy()
    expected = each.reshape(len(JITTER) + 1, 5, -1).mean(0)
    np.testing.assert_allclose(clf.predict_steady(x), expected, atol=1e-5)
    np.testing.assert_allclose(clf.predict_steady(x, clf.predict(x)), expected, atol=1e-5)


def test_metadata_carries_the_contract(model_and_onnx):
    _, path = model_and_onnx
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["labels"]) == list(LABELS)
    assert json.loads(meta["preprocess"]) == {"size": 28, "box": 20, "threshold": 64, "min_ink": 32}
    assert json.loads(meta["metrics"]) == {"test_accuracy": 0.5}  # history/confusion left out
    assert json.loads(meta["model_config"])["channels"] == [32, 64, 128, 192]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch axis
    clf = Classifier(path, device="cpu")
    assert clf.labels == LABELS and clf.params.box == 20 and clf.metrics["test_accuracy"] == 0.5


def test_model_without_formdigits_metadata_is_refused(model_and_onnx, tmp_path):
    _, path = model_and_onnx
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(ModelError, match="bare.onnx: not a formdigits model"):
        Classifier(bare)


def test_model_with_the_wrong_output_shape_is_refused(tmp_path):
    model = DigitNet(ModelConfig(num_classes=10)).eval()
    path = tmp_path / "ten.onnx"
    export_model(model, path)  # claims 11 labels but has 10 outputs
    with pytest.raises(ModelError, match=r"ten.onnx: expected one output 'probabilities' of shape \[N, 11\]"):
        Classifier(path)


def test_non_onnx_file_is_refused(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_text("this is not a model")
    with pytest.raises(ModelError, match="junk.onnx: not a usable ONNX model"):
        Classifier(junk)
    with pytest.raises(ModelError, match="nope.onnx: model file not found"):
        Classifier(tmp_path / "nope.onnx")


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    other = tmp_path / "other.pt"
    torch.save({"model_config": {"channels": [8, 8, 8, 8]}, "model": DigitNet(ModelConfig()).state_dict()}, other)
    with pytest.raises(ModelError, match="other.pt: checkpoint does not match the DigitNet architecture"):
        load_checkpoint(other)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ModelError, match="foreign.pt: not a formdigits checkpoint"):
        load_checkpoint(foreign)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelError, match="garbage.pt: not a formdigits checkpoint"):
        load_checkpoint(garbage)


def test_the_shipped_int8_twin_carries_the_same_contract():
    from formdigits.classifier import default_model_path

    fp32, int8 = default_model_path(), default_model_path(int8=True)
    assert int8.name == "formdigits-int8.onnx" and int8.is_file()
    meta = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    meta8 = {p.key: p.value for p in onnx.load(str(int8)).metadata_props}
    assert meta8.pop("formdigits.quantized") == "int8"
    assert meta8 == meta  # labels, preprocessing, temperature, metrics: one contract for both
    assert Classifier(device="cpu").path == int8  # the CPU runs the int8 twin by default


def test_the_model_is_picked_for_the_provider_onnx_runtime_really_got(monkeypatch):
    """Issue 19: with onnxruntime-gpu and no working GPU, ONNX Runtime falls back to the CPU after the float
    model was picked for CUDA. Here CUDA is offered to an ONNX Runtime that has none: the same fallback."""
    import warnings

    import formdigits.classifier
    from formdigits.classifier import default_model_path

    monkeypatch.setattr(formdigits.classifier, "_providers", lambda device: ["CUDAExecutionProvider",
                                                                             "CPUExecutionProvider"])  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Specified provider 'CUDAExecutionProvider' is not in available ..."
        clf = Classifier()
    assert clf.provider == "CPUExecutionProvider" and clf.path == default_model_path(int8=True)


def test_the_int8_twin_reads_digits_as_the_float_model_does(mnist_dir):
    from formdigits.classifier import default_model_path
    from formdigits.mnist import load_mnist
    from formdigits.preprocess import preprocess_batch

    images, labels = load_mnist("test", mnist_dir)
    x = preprocess_batch(list(images[:2000]))
    p32 = Classifier(default_model_path(), device="cpu").predict(x)
    p8 = Classifier(default_model_path(int8=True), device="cpu").predict(x)
    assert (p32.argmax(1) == p8.argmax(1)).mean() >= 0.995
    acc32, acc8 = (p32.argmax(1) == labels[:2000]).mean(), (p8.argmax(1) == labels[:2000]).mean()
    assert acc8 >= acc32 - 0.002
    assert np.abs(p32 - p8).max(1).mean() < 0.02  # probabilities too, not just the winner
    # the head stays in float: quantized, scores came in steps of 1/256 and none passed 0.9961,
    # so a field of 27 sure digits could never reach the default 0.9
    assert p8.max() > 0.9999 and len(np.unique(p8.max(1))) > 1000
    tail = [n.op_type for n in onnx.load(str(default_model_path(int8=True))).graph.node[-3:]]
    assert tail == ["Gemm", "Div", "Softmax"]


def test_the_shipped_sequence_reader_reads_digits_set_side_by_side(mnist_dir):
    """MNIST test digits (never trained on) placed side by side as a person writes a number."""
    from formdigits.mnist import load_mnist
    from formdigits.sequence import StripReader, default_strip_model_path

    reader = StripReader(threads=1)
    assert reader.path == default_strip_model_path() and reader.metrics["string_accuracy"] > 0.5
    images, labels = load_mnist("test", mnist_dir)
    rng = np.random.default_rng(0)
    strips, texts = [], []
    for _ in range(40):
        pick = rng.integers(len(images), size=int(rng.integers(2, 7)))
        gap = np.zeros((28, int(rng.integers(0, 8))), np.uint8)
        strips.append(np.hstack([np.hstack([images[i], gap]) for i in pick]))
        texts.append("".join(str(labels[i]) for i in pick))
    readings = reader.read(strips)
    exact = np.mean([r.text == t for r, t in zip(readings, texts)])
    assert exact >= 0.85, [(r.text, t) for r, t in zip(readings, texts) if r.text != t]
    assert all(0 <= r.probability <= 1 for r in readings)


def test_a_model_that_is_not_a_sequence_reader_is_refused(tmp_path):
    from formdigits.classifier import default_model_path
    from formdigits.sequence import StripReader

    with pytest.raises(ModelError, match="not a formdigits sequence reader"):
        StripReader(default_model_path())
    with pytest.raises(ModelError, match="sequence reader not found"):
        StripReader(tmp_path / "none.onnx")
