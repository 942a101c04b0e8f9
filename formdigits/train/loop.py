"""Train DigitNet on MNIST redrawn as scanned form crops; read it top to bottom.

``train()`` writes into ``out_dir``: ``checkpoint.pt`` (after every epoch, so a
run can ``resume``), ``formdigits.onnx``, ``metrics.json``, ``curves.png`` and
``confusion.png``.
"""

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .. import __version__
from ..classifier import LABELS
from ..errors import DataError, ModelError
from ..mnist import load_mnist, require_mnist
from ..preprocess import DEFAULT_PARAMS
from . import augment
from .data import REJECT_INDEX, TrainingSet, as_tensors, load_extra
from .model import DigitNet, ModelConfig
from .runs import default_out_dir



@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 128
    lr: float = 3e-3  # peak of the one-cycle schedule (AdamW)
    weight_decay: float = 5e-4
    label_smoothing: float = 0.05
    ema_decay: float = 0.999  # the shipped weights are an exponential moving average of the trained ones
    nondigit_fraction: float = 0.2  # non-digit samples per epoch, as a fraction of the digits
    augment_prob: float = 0.7  # share of digits redrawn as scanned crops (the rest stay clean MNIST)
    val_size: int = 1000  # last N training digits, held out for the curves and the calibration
    limit: int = 0  # train on the first N digits only (0: all), for quick runs
    test_limit: int = 0  # measure on the first N test digits only (0: all)
    seed: int = 0
    device: str = "auto"
    workers: int = -1  # data-loading processes (-1: choose from the machine)
    extra_repeat: int = 10  # each user crop (extra_data) is seen this many times per epoch
    finetune: str = ""  # start from this exported float ONNX model's weights, BatchNorm frozen (see finetune.py)


def _ema(decay):
    """Exponential moving average, with a short warm-up so that brief runs average recent weights."""

    def average(averaged, current, n):
        d = min(decay, (1 + float(n)) / (10 + float(n)))
        return averaged * d + current * (1 - d)

    return average


def pick_device(name):
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelError("--device cuda: PyTorch sees no CUDA GPU here")
    return torch.device("cuda" if name != "cpu" and torch.cuda.is_available() else "cpu")


def open_run(out_dir, checkpoint, resume, config, model_config, config_cls, model_config_cls):
    """Where a run writes and what it runs with: ``(out_dir, ckpt_path, state, config, model_config, device)``.

    A resumed run takes its settings from its checkpoint (``state``; None for a new
    run); the defaults are the two dataclasses' own. Torch's seed is set. With no
    ``out_dir``, a new folder ``runs/<date>-<time>``.
    """
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = out_dir / checkpoint
    state = resume_state(ckpt_path) if resume else None
    if state is not None:
        config, model_config = config_cls(**state["train_config"]), model_config_cls(**state["model_config"])
    config, model_config = config or config_cls(), model_config or model_config_cls()
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    return out_dir, ckpt_path, state, config, model_config, device


def resume_state(ckpt_path):
    """The saved state of an interrupted run, to go on from."""
    if not ckpt_path.is_file():
        raise ModelError(f"{ckpt_path}: no checkpoint to resume from")
    return torch.load(ckpt_path, map_location="cpu", weights_only=True)


def _save(obj, path):
    tmp = Path(f"{path}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def predict(model, x, device, temperature=1.0, batch_size=1024):
    """Softmax probabilities for a tensor of preprocessed inputs."""
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out.append((model(xb).float() / temperature).softmax(1).cpu())
    return torch.cat(out)


def measure(model, device, test_x, test_y, nondigit_x, temperature=1.0):
    """Test accuracy (strict: "reject" counts as wrong) and non-digit rejection."""
    p = predict(model, test_x, device, temperature)
    pred = p.argmax(1)
    q = predict(model, nondigit_x, device, temperature)
    digit_conf = q[:, :REJECT_INDEX].max(1).values
    confusion = torch.zeros(10, len(LABELS), dtype=torch.long)
    confusion.index_put_((test_y, pred), torch.ones_like(pred), accumulate=True)
    return {
        "test_accuracy": (pred == test_y).float().mean().item(),
        "test_n": len(test_y),
        "test_rejected": int((pred == REJECT_INDEX).sum()),
        "nondigit_n": len(nondigit_x),
        "nondigit_rejected": (q.argmax(1) == REJECT_INDEX).float().mean().item(),
        "nondigit_confident_digit": (digit_conf >= 0.9).float().mean().item(),
        "temperature": temperature,
        "confusion": confusion.tolist(),
    }


def fit_temperature(logits, labels):
    """The temperature T that makes softmax(logits / T) calibrated (least NLL), by golden-section search.

    Label smoothing caps the network's top probability near 0.95; dividing the
    logits by T (found on held-out crops) restores probabilities that mean what
    they say, without changing any answer.
    """
    logits, labels = logits.double(), labels.long()
    nll = lambda t: nn.functional.cross_entropy(logits / t, labels).item()  # noqa: E731
    lo, hi = 0.05, 5.0
    g = (5**0.5 - 1) / 2
    for _ in range(60):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if nll(a) < nll(b):
            hi = b
        else:
            lo = a
    return (lo + hi) / 2


@torch.no_grad()
def calibration_set(model, device, images, labels, seed):
    """Logits and labels of held-out crops as the scanner sees them: clean, scan-like and non-digits."""
    crops, n_nondigits = augment.scanner_view(images, seed)
    ys = np.concatenate([labels, labels, np.full(n_nondigits, REJECT_INDEX)])
    x, y = as_tensors(crops, ys)
    model.eval()
    out = [model(x[i : i + 1024].to(device)).float().cpu() for i in range(0, len(x), 1024)]
    return torch.cat(out), y


def train(out_dir=None, data_dir=None, extra_data=None, config=None, model_config=None, resume=False,
          download=True, progress=True):
    """Train, then export ONNX and write metrics and plots. Returns the metrics dict.

    With ``resume`` it continues the run saved in ``out_dir/checkpoint.pt`` with that
    run's settings, and ends with the same weights as an uninterrupted run.
    """
    require_mnist(data_dir, download)  # before any folder is made
    out_dir, ckpt_path, state, config, model_config, device = open_run(
        out_dir, "checkpoint.pt", resume, config, model_config, TrainConfig, ModelConfig)  # fmt: skip

    images, labels = load_mnist("train", data_dir)
    if config.val_size >= len(images):
        raise DataError(f"val_size {config.val_size} leaves no training digits")
    val_images, val_labels = images[-config.val_size :], labels[-config.val_size :]
    val_x, val_y = as_tensors(val_images, val_labels)
    images, labels = images[: -config.val_size], labels[: -config.val_size]
    if config.limit:
        images, labels = images[: config.limit], labels[: config.limit]
    test_images, test_labels = load_mnist("test", data_dir)
    if config.test_limit:
        test_images, test_labels = test_images[: config.test_limit], test_labels[: config.test_limit]
    test_x, test_y = as_tensors(test_images, test_labels)
    nondigit_x, _ = as_tensors(augment.nondigit_set(2000, augment.NONDIGIT_TEST_SEED, test_images), np.zeros(2000))
    extra = load_extra(extra_data) if extra_data else None
    if config.finetune and extra is None:
        raise DataError("a fine-tune needs the user's crops (extra_data: DIR/<digit>/*.png)")
    dataset = TrainingSet(images, labels, config.seed, int(config.nondigit_fraction * len(images)), extra,
                          extra_repeat=config.extra_repeat, augment_prob=config.augment_prob)  # fmt: skip

    workers = config.workers if config.workers >= 0 else min(8, os.cpu_count() or 1) if device.type == "cuda" else 1
    cuda = device.type == "cuda"
    if config.finetune:  # the exported model's weights (its own architecture), BatchNorm frozen below
        from .finetune import freeze_batchnorm, model_from_onnx

        model = model_from_onnx(config.finetune)[0].to(device)
        model_config = model.config
    else:
        model = DigitNet(model_config).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    ema = torch.optim.swa_utils.AveragedModel(model, avg_fn=_ema(config.ema_decay), use_buffers=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * ((len(dataset) + config.batch_size - 1) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=steps, pct_start=0.2)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    history, start = [], 0
    if state is not None:
        model.load_state_dict(state["train_model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, start = state["history"], state["epoch"]
        torch.set_rng_state(state["rng"])

    for epoch in range(start, config.epochs):
        dataset.epoch = epoch
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=config.batch_size, shuffle=True, drop_last=True, num_workers=workers,
            pin_memory=cuda, generator=torch.Generator().manual_seed(config.seed * 1000 + epoch),
        )  # fmt: skip
        model.train()
        if config.finetune:
            freeze_batchnorm(model)
        t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=True)
        for xb, yb in bar:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            if cuda:
                xb = xb.to(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                logits = model(xb)
                loss = loss_fn(logits.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            ema.update_parameters(model)
            seen += len(yb)
            loss_sum += loss.item() * len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
        val_acc = (predict(ema.module, val_x, device).argmax(1) == val_y).float().mean().item()
        history.append({
            "epoch": epoch + 1, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
            "val_accuracy": val_acc, "seconds": time.perf_counter() - t0,
        })  # fmt: skip
        if progress:
            tqdm.write(f"epoch {epoch + 1}: loss {loss_sum / seen:.4f}  val accuracy {val_acc:.4%}  ({history[-1]['seconds']:.0f} s)")
        _save({
            "model_config": asdict(model_config), "train_config": asdict(config),
            "model": ema.module.state_dict(), "train_model": model.state_dict(), "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "epoch": epoch + 1, "history": history, "labels": list(LABELS), "rng": torch.get_rng_state(),
            "preprocess": DEFAULT_PARAMS.to_dict(), "formdigits_version": __version__,
        }, ckpt_path)  # fmt: skip

    model = ema.module
    logits, ys = calibration_set(model, device, val_images, val_labels, config.seed + 7)
    temperature = fit_temperature(logits, ys)
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    ckpt["temperature"] = temperature
    _save(ckpt, ckpt_path)
    metrics = measure(model, device, test_x, test_y, nondigit_x, temperature)
    metrics.update({
        "val_accuracy": history[-1]["val_accuracy"] if history else None,
        "epochs": config.epochs, "device": str(device), "history": history,
        "train_seconds": sum(h["seconds"] for h in history), "train_digits": len(images),
        "extra_crops": len(extra[0]) if extra else 0,
        "finetune_from": Path(config.finetune).name if config.finetune else "",
    })  # fmt: skip
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    from .export import calibration_inputs, export_checkpoint, quantize_model
    from .plots import plot_confusion, plot_curves

    export_checkpoint(ckpt_path, out_dir / "formdigits.onnx", metrics)
    quantize_model(out_dir / "formdigits.onnx", calibration_inputs(val_images, config.seed))
    plot_curves(history, out_dir / "curves.png")
    plot_confusion(metrics["confusion"], out_dir / "confusion.png")
    return metrics
