"""Checkpoint -> ONNX model whose metadata carries labels, preprocessing and metrics."""

import json
import logging
import os
import warnings
from pathlib import Path

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
    import onnx

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    size = model.config.input_size
    example = torch.zeros(2, 1, size, size)
    tmp = out_path.with_name(out_path.name + ".tmp")
    wrapped = _WithSoftmax(model.cpu(), float(temperature)).eval()
    batch = torch.export.Dim("batch", min=1)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # quiet "torchvision is not installed"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapped, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes={"image": {0: batch}}, dynamo=True, optimize=True, verbose=False,
        )  # fmt: skip
    program.save(str(tmp))
    proto = onnx.load(str(tmp))
    summary = {k: v for k, v in (metrics or {}).items() if k not in ("history", "confusion")}
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(model.config).items()}
    meta = {
        "formdigits.format": MODEL_FORMAT,
        "formdigits.version": __version__,
        "labels": json.dumps(list(labels)),
        "preprocess": json.dumps(params.to_dict()),
        "metrics": json.dumps(summary),
        "model_config": json.dumps(config),
        "temperature": repr(float(temperature)),
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    proto.doc_string = "formdigits handwritten digit classifier (digits 0-9 and 'reject')"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    os.replace(tmp, out_path)
    return out_path


def export_checkpoint(checkpoint, out_path, metrics=None):
    """Export a training checkpoint; metrics default to the ``metrics.json`` beside it."""
    model, ckpt = load_checkpoint(checkpoint)
    if metrics is None:
        beside = Path(checkpoint).with_name("metrics.json")
        metrics = json.loads(beside.read_text()) if beside.is_file() else {}
    params = PreprocessParams(**ckpt.get("preprocess", {}))
    labels = tuple(ckpt.get("labels", LABELS))
    return export_model(model, out_path, labels, params, metrics, ckpt.get("temperature", 1.0))
