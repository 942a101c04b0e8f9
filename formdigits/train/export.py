"""Checkpoint -> ONNX model whose metadata carries labels, preprocessing and metrics."""

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..classifier import INPUT_NAME, LABELS, MODEL_FORMAT, OUTPUT_NAME
from ..errors import ModelError
from ..preprocess import PreprocessParams
from .model import DigitNet, ModelConfig


def load_checkpoint(path):
    """Rebuild the model from a training checkpoint; returns ``(model, checkpoint)``."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and torch errors alike
        raise ModelError(f"{path}: not a formdigits checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or "model_config" not in ckpt or "model" not in ckpt:
        raise ModelError(f"{path}: not a formdigits checkpoint (no model_config/model entries)")
    try:
        config = ModelConfig(**ckpt["model_config"])
        config.channels = tuple(config.channels)
        model = DigitNet(config)
        model.load_state_dict(ckpt["model"])
    except (TypeError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0]
        raise ModelError(f"{path}: checkpoint does not match the DigitNet architecture: {first}") from None
    return model.eval(), ckpt


class _WithSoftmax(torch.nn.Module):
    """The exported graph: calibrated probabilities, softmax(logits / temperature)."""

    def __init__(self, model, temperature):
        super().__init__()
        self.model = model
        self.temperature = temperature

    def forward(self, image):
        return (self.model(image) / self.temperature).softmax(dim=1)


def export_model(model, out_path, labels=LABELS, params=PreprocessParams(), metrics=None, temperature=1.0):
    """Write ``model`` as ONNX: input ``image`` (N,1,S,S) in [0,1], output ``probabilities`` (N,C)."""
    size = model.config.input_size
    meta = {
        "formdigits.format": MODEL_FORMAT,
        "labels": json.dumps(list(labels)),
        "preprocess": json.dumps(params.to_dict()),
        "temperature": repr(float(temperature)),
    }
    wrapped = _WithSoftmax(model.cpu(), float(temperature)).eval()
    return _write_onnx(wrapped, torch.zeros(2, 1, size, size), INPUT_NAME, {0: torch.export.Dim("batch", min=1)},
                       out_path, meta, metrics, "formdigits handwritten digit classifier (digits 0-9 and 'reject')")


def _write_onnx(wrapped, example, input_name, dims, out_path, meta, metrics, doc):
    """Export ``wrapped`` (input ``input_name``, output ``probabilities``, dynamic ``dims``) with ``meta``
    plus the version, model config and metrics summary in its metadata; written atomically."""
    import onnx

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # quiet "torchvision is not installed"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapped, (example,), input_names=[input_name], output_names=[OUTPUT_NAME],
            dynamic_shapes={input_name: dims}, dynamo=True, optimize=True, verbose=False,
        )  # fmt: skip
    program.save(str(tmp))
    proto = onnx.load(str(tmp))
    summary = {k: v for k, v in (metrics or {}).items() if k not in ("history", "confusion")}
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(wrapped.model.config).items()}
    meta = {**meta, "formdigits.version": __version__, "metrics": json.dumps(summary), "model_config": json.dumps(config)}
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = doc
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    os.replace(tmp, out_path)
    return out_path


class _StripSoftmax(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, strip):
        return self.model(strip).softmax(dim=-1)


def export_strip_checkpoint(checkpoint, out_path, metrics=None):
    """Export a sequence reader checkpoint: input ``strip`` (N,1,32,W), output ``probabilities`` (N,W//4,11)."""
    from ..preprocess import StripParams
    from ..sequence import INPUT_NAME as STRIP_INPUT
    from ..sequence import LABELS as STRIP_LABELS
    from ..sequence import STRIP_FORMAT
    from .seqmodel import StripConfig, StripNet

    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
        config = StripConfig(**ckpt["model_config"])
        model = StripNet(config)
        model.load_state_dict(ckpt["model"])
    except (OSError, KeyError, TypeError, ValueError, RuntimeError) as e:
        raise ModelError(f"{checkpoint}: not a sequence reader checkpoint ({type(e).__name__}: {e})") from None
    meta = {
        "formdigits.format": STRIP_FORMAT,
        "labels": json.dumps(list(STRIP_LABELS)),
        "preprocess": json.dumps(StripParams(**ckpt.get("preprocess", {})).to_dict()),
    }
    dims = {0: torch.export.Dim("batch", min=1), 3: 4 * torch.export.Dim("quarter", min=8, max=1024)}
    return _write_onnx(_StripSoftmax(model.eval()).eval(), torch.zeros(2, 1, config.height, 160), STRIP_INPUT, dims,
                       out_path, meta, metrics, "formdigits sequence reader (CRNN, CTC: digits 0-9 and blank)")


def export_checkpoint(checkpoint, out_path, metrics=None):
    """Export a training checkpoint; metrics default to the ``metrics.json`` beside it."""
    model, ckpt = load_checkpoint(checkpoint)
    if metrics is None:
        beside = Path(checkpoint).with_name("metrics.json")
        metrics = json.loads(beside.read_text()) if beside.is_file() else {}
    params = PreprocessParams(**ckpt.get("preprocess", {}))
    labels = tuple(ckpt.get("labels", LABELS))
    return export_model(model, out_path, labels, params, metrics, ckpt.get("temperature", 1.0))


def int8_path(fp32_path):
    """Where the int8 twin of a model goes: ``formdigits.onnx`` -> ``formdigits-int8.onnx``."""
    p = Path(fp32_path)
    return p.with_name(p.stem + "-int8" + p.suffix)


def quantize_model(fp32_path, calibration, out_path=None):
    """Write an int8 copy of an exported model (ONNX Runtime static quantization, QDQ, per channel).

    ``calibration``: network inputs (N, 1, S, S) float32 whose activations set the
    int8 ranges; use crops like those the scanner sees. The copy keeps the
    original's metadata (labels, preprocessing, metrics) and notes
    ``formdigits.quantized = int8``. On a CPU it runs about twice as fast (see
    export/MODEL.md); GPUs run the float model. The head (the last matrix product, the
    temperature and the softmax) stays in float: quantized, the probabilities came in steps
    of 1/256 and no digit could score above 0.9961.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32_path = Path(fp32_path)
    out_path = Path(out_path) if out_path is not None else int8_path(fp32_path)
    batches = [{INPUT_NAME: np.ascontiguousarray(calibration[i : i + 128], np.float32)}
               for i in range(0, len(calibration), 128)]  # fmt: skip

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter(batches)

        def get_next(self):
            return next(self.batches, None)

    pre = out_path.with_name(out_path.name + ".pre.tmp")
    tmp = out_path.with_name(out_path.name + ".tmp")
    try:
        quant_pre_process(str(fp32_path), str(pre))
        quantize_static(str(pre), str(tmp), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=float_head(onnx.load(str(pre))))  # fmt: skip
        proto, original = onnx.load(str(tmp)), onnx.load(str(fp32_path))
        del proto.metadata_props[:]
        proto.metadata_props.extend(original.metadata_props)
        proto.metadata_props.add(key="formdigits.quantized", value="int8")
        proto.doc_string = original.doc_string + " (int8)"
        onnx.save(proto, str(tmp))
        os.replace(tmp, out_path)
    finally:
        for leftover in (pre, tmp):
            leftover.unlink(missing_ok=True)
    return out_path


def float_head(proto):
    """Names of the graph's last matrix product and every node after it (temperature, softmax)."""
    nodes = list(proto.graph.node)
    last = max(i for i, n in enumerate(nodes) if n.op_type in ("Gemm", "MatMul"))
    return [n.name for n in nodes[last:]]


def calibration_inputs(held_out, train_seed):
    """Network inputs for :func:`quantize_model`: a training run's held-out digits as the
    scanner sees them (clean, redrawn as scans, and non-digits; seed = the run's seed + 11)."""
    from ..preprocess import preprocess_batch
    from .augment import scanner_view

    crops, _ = scanner_view(held_out, train_seed + 11)
    return preprocess_batch(crops)


def quantize_export(checkpoint, fp32_path, data_dir=None):
    """The int8 twin of a checkpoint's exported model, calibrated exactly as training does it
    (on its held-out MNIST training digits); needs MNIST in ``data_dir``."""
    from ..mnist import load_mnist

    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    config = ckpt.get("train_config", {})
    images, _ = load_mnist("train", data_dir)
    held_out = images[-int(config.get("val_size", 1000)) :]
    return quantize_model(fp32_path, calibration_inputs(held_out, int(config.get("seed", 0))))
