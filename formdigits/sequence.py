"""The sequence reader: a CRNN (ONNX) that reads a field's whole ink strip, with no cutting.

The model carries its contract in its ONNX metadata, as the digit classifier
does: its labels (the digits, then the CTC blank), the strip preprocessing
parameters and its metrics. :class:`StripReader` runs strips of many fields in
batches of similar width, decodes the best reading (greedy CTC), and gives the
probability the model puts on any reading (:func:`label_probability`, the CTC
forward sum over every alignment): the second opinion the decision needs.
ONNX Runtime is imported lazily; torch is never imported here.
"""

import json
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .classifier import DIGITS, _providers
from .errors import ModelError
from .preprocess import StripParams, preprocess_strip, strip_batch

STRIP_FORMAT = "strip-1"
INPUT_NAME = "strip"
OUTPUT_NAME = "probabilities"
BLANK = "blank"
LABELS = DIGITS + (BLANK,)
DOWNSAMPLE = 4  # input columns per output frame


def default_strip_model_path():
    """The sequence reader shipped with the package (``export/strip-reader.onnx`` in the repository)."""
    try:
        folder = Path(str(resources.files("formdigits._export")))
    except ModuleNotFoundError:  # a source checkout that is not installed
        folder = Path(__file__).resolve().parent.parent / "export"
    return folder / "strip-reader.onnx"


class Reading(NamedTuple):
    """The sequence reader's answer for one strip."""

    text: str  # its digits
    probability: float  # the model's probability of ``text`` (every alignment summed)
    char_probs: tuple  # per digit, its best frame's probability
    frames: np.ndarray  # (T, classes) per-frame probabilities, to score other readings


def greedy(frames):
    """Best-path decoding: each frame's likeliest class, repeats merged, blanks dropped.

    Returns ``(text, per-character probability)`` (each character's best frame).
    """
    blank = frames.shape[1] - 1
    best = frames.argmax(1)
    text, probs, prev = [], [], blank
    for t, k in enumerate(best.tolist()):
        if k != blank and k != prev:
            text.append(DIGITS[k])
            probs.append(float(frames[t, k]))
        elif k != blank and k == prev:
            probs[-1] = max(probs[-1], float(frames[t, k]))
        prev = k
    return "".join(text), tuple(probs)


def label_probability(frames, text):
    """P(``text`` | strip) under the model: the CTC forward sum over all its alignments to the frames."""
    return label_probabilities([frames], [text])[0]


def label_probabilities(frames, texts):
    """:func:`label_probability` for many ``(T_i, classes)`` frame arrays and readings at once.

    The CTC forward recursion runs over all of them together, one step per
    frame (padded positions never feed real ones: paths only move forward).
    """
    n = len(frames)
    out = np.zeros(n)
    ok = [i for i in range(n) if all(c in DIGITS for c in texts[i]) and len(texts[i]) <= len(frames[i])]
    if not ok:
        return out.tolist()
    blank = frames[ok[0]].shape[1] - 1
    lengths = np.array([len(frames[i]) for i in ok])
    sizes = np.array([2 * len(texts[i]) + 1 for i in ok])
    T, S = int(lengths.max()), int(sizes.max())
    ext = np.full((len(ok), S), blank)  # each reading with blanks around and between its digits
    skip = np.zeros((len(ok), S), bool)  # a digit may skip the blank before it unless it repeats the one before
    logp = np.zeros((len(ok), T, S))
    for row, i in enumerate(ok):
        labels = [DIGITS.index(c) for c in texts[i]]
        ext[row, 1 : 2 * len(labels) : 2] = labels
        skip[row, 3 : 2 * len(labels) : 2] = [a != b for a, b in zip(labels[1:], labels[:-1])]
        logp[row, : lengths[row]] = np.log(np.maximum(frames[i][:, ext[row]], 1e-30))
    alpha = np.full((len(ok), S), -np.inf)
    alpha[:, 0] = logp[:, 0, 0]
    if S > 1:
        alpha[:, 1] = np.where(sizes > 1, logp[:, 0, 1], -np.inf)
    minus = np.full((len(ok), 2), -np.inf)
    for t in range(1, T):
        prev1 = np.concatenate([minus[:, :1], alpha], 1)[:, :S]
        prev2 = np.where(skip, np.concatenate([minus, alpha], 1)[:, :S], -np.inf)
        step = np.logaddexp(np.logaddexp(alpha, prev1), prev2) + logp[:, t]
        alpha = np.where((t < lengths)[:, None], step, alpha)  # a shorter strip's sum is final
    rows = np.arange(len(ok))
    last = alpha[rows, sizes - 1]
    total = np.where(sizes > 1, np.logaddexp(last, alpha[rows, np.maximum(sizes - 2, 0)]), last)
    with np.errstate(over="ignore"):
        out[ok] = np.where(np.isfinite(total), np.exp(total), 0.0)
    return out.tolist()


class StripReader:
    """Load an exported sequence reader and read ink strips in batches.

    ``device``, ``threads``, ``providers``: as for :class:`~formdigits.classifier.Classifier`.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, device: str = "auto", threads: int | None = None,
                 batch_size: int = 64, providers: Sequence[str] = ()) -> None:  # fmt: skip
        import onnxruntime as ort

        self.path = Path(model_path) if model_path is not None else default_strip_model_path()
        if not self.path.is_file():
            hint = "" if model_path is not None else " (the shipped sequence reader is missing: reinstall formdigits)"
            raise ModelError(f"{self.path}: sequence reader not found{hint}")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=_providers(device, providers))
        except Exception as e:  # onnxruntime raises its own exception types
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"{self.path}: not a usable ONNX model: {first}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("formdigits.format") != STRIP_FORMAT:
            raise ModelError(f"{self.path}: not a formdigits sequence reader (metadata lacks "
                             f"formdigits.format={STRIP_FORMAT})")  # fmt: skip
        try:
            labels = tuple(json.loads(meta["labels"]))
            self.params = StripParams(**json.loads(meta["preprocess"]))
            self.metrics = json.loads(meta.get("metrics", "{}"))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{self.path}: malformed sequence reader metadata: {e}") from None
        if labels != LABELS:
            raise ModelError(f"{self.path}: labels must be 0-9 and {BLANK!r}, got {list(labels)}")
        self.batch_size = batch_size

    def frames(self, batch, widths):
        """Per-frame probabilities for a ``(N, 1, H, W)`` batch: a list of ``(T_i, classes)`` arrays."""
        out = self.session.run(None, {INPUT_NAME: np.ascontiguousarray(batch, np.float32)})[0]
        return [out[i, : max(1, w // DOWNSAMPLE)] for i, w in enumerate(widths)]

    def read(self, strips):
        """A :class:`Reading` for each uint8 ink strip (preprocessed here), in order."""
        return self.read_inputs([preprocess_strip(s, self.params) for s in strips])

    def read_inputs(self, inputs):
        """A :class:`Reading` for each preprocessed strip (float in [0, 1], or uint8 scaled by 255).

        Strips are batched with others of the same padded width only: the LSTM
        reads the padding too, so a strip's reading never depends on which
        other strips share its batch (a resumed scan writes the same bytes).
        """
        inputs = [s if s.dtype == np.float32 else s.astype(np.float32) * np.float32(1 / 255) for s in inputs]
        groups = {}
        for i, s in enumerate(inputs):
            groups.setdefault(-(-s.shape[1] // DOWNSAMPLE), []).append(i)
        chunks = [g[k : k + self.batch_size] for _, g in sorted(groups.items()) for k in range(0, len(g), self.batch_size)]
        out = [None] * len(inputs)
        for chunk in chunks:
            batch, widths = strip_batch([inputs[i] for i in chunk], self.params)
            found = self.frames(batch, widths)
            texts, chars = zip(*(greedy(f) for f in found))
            for i, f, text, c, p in zip(chunk, found, texts, chars, label_probabilities(found, texts)):
                out[i] = Reading(text, p, c, f)
        return out
