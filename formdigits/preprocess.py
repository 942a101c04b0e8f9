"""Digit crop -> network input: the ONE function shared by training and scanning.

A crop is a 2-D ``uint8`` *ink* image: 0 is paper, 255 is full ink (MNIST's
convention; the scanner inverts and cleans its page images into this form).
:func:`preprocess` normalises it the way MNIST was built: contrast stretched,
cut to the ink's bounding box, scaled (aspect kept) so that its longer side is
``box`` pixels, and placed in a ``size`` x ``size`` square with its centre of
mass at the centre. The parameters travel in the ONNX model's metadata, so the
scanner always prepares crops exactly as the model was trained.
"""

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class PreprocessParams:
    size: int = 28  # side of the square network input, pixels
    box: int = 20  # longer side of the ink's bounding box after scaling
    threshold: int = 64  # ink level (0-255, after contrast stretch) that counts as ink
    min_ink: int = 32  # a crop whose darkest ink is fainter than this is blank

    def to_dict(self):
        return asdict(self)


DEFAULT_PARAMS = PreprocessParams()


def preprocess(crop, params=DEFAULT_PARAMS):
    """Return the ``(size, size)`` float32 network input in [0, 1] for one ink crop.

    A blank crop (no pixel reaches ``params.min_ink``) gives an all-zero input.
    """
    if not isinstance(crop, np.ndarray) or crop.ndim != 2:
        raise ValueError(f"crop must be a 2-D array, got {getattr(crop, 'shape', type(crop))}")
    if crop.dtype != np.uint8:
        raise ValueError(f"crop must be uint8 ink (0 paper, 255 ink), got dtype {crop.dtype}")
    size, box = params.size, params.box
    out = np.zeros((size, size), np.float32)
    peak = int(crop.max()) if crop.size else 0
    if peak < params.min_ink:
        return out
    if peak < 255:
        crop = cv2.convertScaleAbs(crop, alpha=255.0 / peak)
    x, y, w, h = cv2.boundingRect((crop >= params.threshold).view(np.uint8))
    if w == 0 or h == 0:
        return out
    scale = box / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    digit = cv2.resize(crop[y : y + h, x : x + w], (nw, nh), interpolation=interp)
    m = cv2.moments(digit)
    if m["m00"] <= 0:
        return out
    cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
    # Put the centre of mass at the centre, as MNIST does; clamp so the box stays inside.
    dx = min(max(round(size / 2 - cx), 0), size - nw)
    dy = min(max(round(size / 2 - cy), 0), size - nh)
    out[dy : dy + nh, dx : dx + nw] = digit * np.float32(1 / 255)
    return out


# small changes a writer's hand or a scanner makes: (dx, dy) pixels, degrees turned, scale
JITTER = ((1, 0, 0, 1.0), (-1, 0, 0, 1.0), (0, 1, 0, 1.0), (0, -1, 0, 1.0),
          (0, 0, 10, 1.0), (0, 0, -10, 1.0), (0, 0, 0, 0.85), (0, 0, 0, 1.12))  # fmt: skip


def jitter(inputs):
    """Copies of network inputs ``(N, S, S)``, each moved as in :data:`JITTER`: ``(len(JITTER), N, S, S)``.

    A clear digit reads the same in every copy; an ambiguous one often does not
    (used to take a second look at doubtful digits, see ``Classifier.predict_steady``).
    """
    inputs = np.asarray(inputs, np.float32)
    if inputs.ndim != 3 or inputs.shape[1] != inputs.shape[2]:
        raise ValueError(f"inputs must have shape (N, S, S), got {inputs.shape}")
    size = inputs.shape[1]
    out = np.empty((len(JITTER), *inputs.shape), np.float32)
    for k, (dx, dy, degrees, scale) in enumerate(JITTER):
        m = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), degrees, scale)
        m[:, 2] += (dx, dy)
        for i, x in enumerate(inputs):
            out[k, i] = cv2.warpAffine(x, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    return out


def preprocess_batch(crops, params=DEFAULT_PARAMS):
    """Stack crops into the ``(N, 1, size, size)`` float32 batch the network takes."""
    batch = np.zeros((len(crops), 1, params.size, params.size), np.float32)
    for i, crop in enumerate(crops):
        batch[i, 0] = preprocess(crop, params)
    return batch


@dataclass(frozen=True)
class StripParams:
    """How a field's ink strip becomes the sequence reader's input (travels in its ONNX metadata)."""

    height: int = 32  # rows of the network input
    pad: int = 2  # paper rows above and below the ink (and columns left and right)
    max_width: int = 512  # wider strips are squeezed to this many columns
    threshold: int = 64  # ink level (0-255, after contrast stretch) that counts for the bounding box
    min_ink: int = 32  # a strip whose darkest ink is fainter than this is blank
    max_gap: float = 0.6  # a gap between inks wider than this x the ink's height is closed up to it (empty comb cells)

    def to_dict(self):
        return asdict(self)


DEFAULT_STRIP = StripParams()


def preprocess_strip(strip, params=DEFAULT_STRIP):
    """Return the ``(height, W)`` float32 input in [0, 1] of the sequence reader for one ink strip.

    The ONE strip function shared by training and scanning. The strip (2-D
    ``uint8`` ink, as :func:`preprocess` takes) is contrast stretched, cut to its
    ink's bounding box, its gaps closed up to ``max_gap`` x its height (the
    empty cells of a comb), scaled (aspect kept) so that the box is ``height - 2 pad``
    rows tall, and padded with paper: ``W`` is at least ``height`` and at most
    ``max_width`` (a longer strip is squeezed). A blank strip gives ``(height, height)`` zeros.
    """
    if not isinstance(strip, np.ndarray) or strip.ndim != 2:
        raise ValueError(f"strip must be a 2-D array, got {getattr(strip, 'shape', type(strip))}")
    if strip.dtype != np.uint8:
        raise ValueError(f"strip must be uint8 ink (0 paper, 255 ink), got dtype {strip.dtype}")
    h, pad = params.height, params.pad
    peak = int(strip.max()) if strip.size else 0
    if peak < params.min_ink:
        return np.zeros((h, h), np.float32)
    if peak < 255:
        strip = cv2.convertScaleAbs(strip, alpha=255.0 / peak)
    x, y, w, bh = cv2.boundingRect((strip >= params.threshold).view(np.uint8))
    if w == 0 or bh == 0:
        return np.zeros((h, h), np.float32)
    ink = _close_gaps(strip[y : y + bh, x : x + w], max(1, round(params.max_gap * bh)))
    inner = h - 2 * pad
    scale = inner / bh
    nw = min(max(1, round(ink.shape[1] * scale)), params.max_width - 2 * pad)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    ink = cv2.resize(ink, (nw, inner), interpolation=interp)
    out = np.zeros((h, max(h, nw + 2 * pad)), np.float32)
    out[pad : pad + inner, pad : pad + nw] = ink * np.float32(1 / 255)
    return out


def _close_gaps(ink, gap):
    """``ink`` with every run of empty columns longer than ``gap`` shortened to ``gap``."""
    empty = ~ink.any(0)
    if empty.sum() <= gap:
        return ink
    i = np.arange(len(empty))
    run_start = np.maximum.accumulate(np.where(empty, 0, i + 1))  # the column after the last inked one
    return ink[:, ~empty | (i - run_start < gap)]


def strip_batch(strips, params=DEFAULT_STRIP, multiple=4):
    """Stack preprocessed strips ``(height, W_i)`` into ``(N, 1, height, W)`` (W: the widest, rounded up
    to ``multiple``; the rest padded with paper on the right) and their widths."""
    widths = np.array([s.shape[1] for s in strips], np.int64)
    width = -(-int(widths.max(initial=params.height)) // multiple) * multiple
    batch = np.zeros((len(strips), 1, params.height, width), np.float32)
    for i, s in enumerate(strips):
        batch[i, 0, :, : s.shape[1]] = s
    return batch, widths
