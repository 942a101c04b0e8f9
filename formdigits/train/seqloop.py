"""Train StripNet, the sequence reader, on composed digit strings; read it top to bottom.

``train_strips()`` writes into ``out_dir``: ``strip-checkpoint.pt`` (every
``save_every`` steps, so a run can ``resume``), ``strip-reader.onnx`` and
``strip-metrics.json``. Strings are composed on the fly from MNIST **train**
digits (:mod:`.strings`); the figures are measured on strings composed from
MNIST **test** digits, which training never sees.
"""

import json
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from .. import __version__
from ..mnist import load_mnist, require_mnist
from ..preprocess import DEFAULT_STRIP, preprocess_strip, strip_batch
from ..sequence import LABELS, greedy
from .loop import _ema, _save, open_run
from .seqmodel import StripConfig, StripNet, frames
from .strings import by_digit, compose

HELD_BACK_SEED = 20261206  # the held-back strings that figures are measured on; training never draws it


@dataclass
class StripTrainConfig:
    steps: int = 6000
    batch_size: int = 64
    lr: float = 2e-3  # peak of the one-cycle schedule (AdamW)
    weight_decay: float = 1e-4
    ema_decay: float = 0.998
    val_size: int = 2000  # held-back strings composed from MNIST test digits
    save_every: int = 250
    seed: int = 0
    device: str = "auto"
    workers: int = -1  # data-loading processes (-1: choose from the machine)
    init: str = ""  # start from this sequence reader checkpoint's weights (a new schedule: fine-tuning)


class Strings(torch.utils.data.Dataset):
    """Composed strings, each made from a seed derived from (seed, index): reproducible, never repeated."""

    def __init__(self, images_by_digit, seed, length):
        self.images_by_digit, self.seed, self.length = images_by_digit, seed, length

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        ink, text = compose(np.random.default_rng((self.seed, i)), self.images_by_digit)
        return preprocess_strip(ink, DEFAULT_STRIP), text


def collate(samples):
    """Strips padded to one width, plus what the CTC loss needs."""
    x, widths = strip_batch([s for s, _ in samples], DEFAULT_STRIP)
    targets = torch.tensor([int(c) for _, t in samples for c in t], dtype=torch.long)
    lengths = torch.tensor([len(t) for _, t in samples], dtype=torch.long)
    return torch.from_numpy(x), torch.from_numpy(widths), targets, lengths, [t for _, t in samples]


def held_back(images_by_digit, n):
    """The ``n`` held-back strings (fixed seed), as ``(inputs, texts)``."""
    rng = np.random.default_rng(HELD_BACK_SEED)
    samples = [compose(rng, images_by_digit) for _ in range(n)]
    return [preprocess_strip(ink, DEFAULT_STRIP) for ink, _ in samples], [t for _, t in samples]


def _edit(a, b):
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


@torch.no_grad()
def read_strips(model, inputs, device, batch_size=128):
    """Greedy readings of preprocessed strips, batched by width."""
    model.eval()
    order = sorted(range(len(inputs)), key=lambda i: inputs[i].shape[1])
    out = [None] * len(inputs)
    for k in range(0, len(order), batch_size):
        chunk = order[k : k + batch_size]
        x, widths = strip_batch([inputs[i] for i in chunk], DEFAULT_STRIP)
        probs = model(torch.from_numpy(x).to(device)).float().softmax(-1).cpu().numpy()
        for i, p, t in zip(chunk, probs, frames(widths).tolist()):
            out[i] = greedy(p[:t])[0]
    return out


def measure(model, device, inputs, texts):
    """String accuracy (exact), digit accuracy (1 - edit distance / digits) on held-back strings."""
    got = read_strips(model, inputs, device)
    exact = float(np.mean([g == t for g, t in zip(got, texts)]))
    digits = sum(len(t) for t in texts)
    return {"string_accuracy": exact, "digit_accuracy": 1 - sum(_edit(g, t) for g, t in zip(got, texts)) / max(1, digits),
            "strings": len(texts)}  # fmt: skip


def train_strips(out_dir=None, data_dir=None, config=None, model_config=None, resume=False, download=True,
                 progress=True):  # fmt: skip
    """Train the sequence reader, export ONNX, write its metrics. Returns the metrics dict."""
    require_mnist(data_dir, download)  # before any folder is made
    out_dir, ckpt_path, state, config, model_config, device = open_run(
        out_dir, "strip-checkpoint.pt", resume, config, model_config, StripTrainConfig, StripConfig)  # fmt: skip

    train_by_digit = by_digit(*load_mnist("train", data_dir))
    val_inputs, val_texts = held_back(by_digit(*load_mnist("test", data_dir)), config.val_size)
    data = Strings(train_by_digit, config.seed, config.steps * config.batch_size)
    cuda = device.type == "cuda"
    workers = config.workers if config.workers >= 0 else min(8, os.cpu_count() or 1) if cuda else 1

    model = StripNet(model_config)
    if config.init and state is None:
        model.load_state_dict(torch.load(config.init, map_location="cpu", weights_only=True)["model"])
    model = model.to(device)
    ema = torch.optim.swa_utils.AveragedModel(model, avg_fn=_ema(config.ema_decay), use_buffers=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.steps, pct_start=0.1)
    ctc = torch.nn.CTCLoss(blank=len(LABELS) - 1, zero_infinity=True)
    history, start, seconds = [], 0, 0.0
    if state is not None:
        model.load_state_dict(state["train_model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, start, seconds = state["history"], state["step"], state["seconds"]

    def save(step):
        _save({
            "model_config": asdict(model_config), "train_config": asdict(config), "model": ema.module.state_dict(),
            "train_model": model.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "step": step, "seconds": seconds, "history": history,
            "labels": list(LABELS), "preprocess": DEFAULT_STRIP.to_dict(), "formdigits_version": __version__,
        }, ckpt_path)  # fmt: skip

    # sampled in order from ``start``: a resumed run sees the strings an uninterrupted one would
    sampler = range(start * config.batch_size, len(data))
    loader = torch.utils.data.DataLoader(data, batch_size=config.batch_size, sampler=sampler, collate_fn=collate,
                                         num_workers=workers, pin_memory=cuda, persistent_workers=False)  # fmt: skip
    bar = tqdm(loader, total=config.steps - start, desc="sequence reader", disable=not progress)
    step, t0, loss_sum, seen = start, time.perf_counter(), 0.0, 0
    model.train()
    for x, widths, targets, lengths, _ in bar:
        x = x.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = model(x)
        logp = logits.float().log_softmax(-1).transpose(0, 1)  # (T, N, C)
        loss = ctc(logp, targets, frames(widths), lengths)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        scheduler.step()
        ema.update_parameters(model)
        step += 1
        loss_sum, seen = loss_sum + loss.item(), seen + 1
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
        if step % config.save_every == 0 or step == config.steps:
            seconds += time.perf_counter() - t0
            t0 = time.perf_counter()
            val = measure(ema.module, device, val_inputs[:500], val_texts[:500])
            history.append({"step": step, "loss": loss_sum / seen, "seconds": seconds, **val})
            if progress:
                tqdm.write(f"step {step}: loss {loss_sum / seen:.3f}  held-back strings {val['string_accuracy']:.2%}")
            loss_sum, seen = 0.0, 0
            save(step)
            model.train()

    metrics = measure(ema.module, device, val_inputs, val_texts)
    metrics.update({"steps": config.steps, "device": str(device), "train_seconds": seconds, "history": history,
                    "parameters": sum(p.numel() for p in model.parameters())})  # fmt: skip
    from .export import export_strip_checkpoint

    onnx_path = export_strip_checkpoint(ckpt_path, out_dir / "strip-reader.onnx", metrics)
    metrics["onnx_bytes"] = onnx_path.stat().st_size
    (out_dir / "strip-metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
