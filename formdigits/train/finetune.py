"""Fine-tuning: the digit CNN read back from an exported ONNX model, to train on from there.

The shipped model's one source of truth is ``export/formdigits.onnx``: no PyTorch
checkpoint of it is shipped. The export folds each BatchNorm into the convolution
before it (weight scaled, a bias added), so :func:`model_from_onnx` loads the
folded weights into the convolutions and sets each BatchNorm to the identity
plus that bias (gamma 1, beta = bias, mean 0, variance 1 - eps). In eval mode the
network then computes what the ONNX model computes, and exporting it again folds
to the same weights. A fine-tune keeps the BatchNorm layers in eval mode (their
statistics frozen, their scale and shift still learnt): a few hundred user crops
are too few to re-estimate them, and the folded statistics are not there anyway.
"""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..errors import ModelError
from .model import DigitNet, ModelConfig

# a fine-tune's defaults (train --finetune): a few epochs over the user's crops (each seen EXTRA_REPEAT
# times an epoch) mixed with a replay sample of MNIST (REPLAY digits) against forgetting, at a low rate
FINETUNE_EPOCHS = 3
FINETUNE_LR = 3e-4
REPLAY = 6000
EXTRA_REPEAT = 5


def train_config(finetune, epochs=None, lr=None, limit=None, **given):
    """The digit CNN's ``TrainConfig`` from the train command's options (None: the default; a fine-tune's
    defaults with ``finetune``, starting from the shipped float model)."""
    from ..classifier import default_model_path
    from .loop import TrainConfig

    config = TrainConfig(**given)
    if finetune:
        config = replace(config, epochs=FINETUNE_EPOCHS, lr=FINETUNE_LR, limit=REPLAY, extra_repeat=EXTRA_REPEAT,
                         finetune=str(default_model_path()))  # fmt: skip
    config.epochs, config.lr = epochs or config.epochs, lr or config.lr
    config.limit = config.limit if limit is None else limit
    return config


def model_from_onnx(path):
    """``(model, temperature)``: a DigitNet (eval mode) with the weights of an exported ONNX model."""
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    try:
        proto = onnx.load(str(path))
    except Exception as e:  # protobuf and OS errors alike
        raise ModelError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    if "model_config" not in meta or meta.get("formdigits.quantized"):
        raise ModelError(f"{path}: not a float formdigits digit model (fine-tune from formdigits.onnx, not its int8 twin)")
    config = ModelConfig(**json.loads(meta["model_config"]))
    config.channels = tuple(config.channels)
    model = DigitNet(config)
    state = model.state_dict()
    weights = {i.name.removeprefix("model."): torch.from_numpy(numpy_helper.to_array(i).copy())
               for i in proto.graph.initializer}  # fmt: skip
    new = {}
    for name, value in weights.items():
        if name.endswith(".weight_bias"):  # a BatchNorm folded into the convolution: conv bias
            conv = name.removesuffix(".weight_bias")  # features.K.0
            bn = conv.rsplit(".", 1)[0] + ".1"
            eps = _bn_eps(model, bn)
            new.update({f"{bn}.weight": torch.ones_like(value), f"{bn}.bias": value,
                        f"{bn}.running_mean": torch.zeros_like(value),
                        f"{bn}.running_var": torch.full_like(value, 1 - eps)})  # fmt: skip
        elif name in state:
            new[name] = value
    for key in state:
        if key.endswith("num_batches_tracked"):
            new[key] = state[key]
    missing = sorted(set(state) - set(new))
    if missing:
        raise ModelError(f"{path}: its weights do not fill a DigitNet ({', '.join(missing[:3])} missing)")
    try:
        model.load_state_dict(new)
    except RuntimeError as e:
        raise ModelError(f"{path}: weights do not match the DigitNet architecture: {str(e).splitlines()[0]}") from None
    return model.eval(), float(meta.get("temperature", 1.0))


def _bn_eps(model, name):
    module = model.get_submodule(name)
    if not isinstance(module, torch.nn.BatchNorm2d):
        raise ModelError(f"{name}: expected a BatchNorm layer after the convolution")
    return module.eps


def freeze_batchnorm(model):
    """Put every BatchNorm layer in eval mode (statistics frozen), the rest left as it is."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
    return model


@torch.no_grad()
def onnx_outputs(path, x):
    """Probabilities of an ONNX model for inputs ``x`` (N, 1, S, S) float32, by ONNX Runtime on the CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x, np.float32)})[0]
