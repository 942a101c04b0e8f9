"""Training data: MNIST digits redrawn as scanned crops, non-digits, and user crops.

Every sample is made on the fly from a seed derived from (seed, epoch, index),
so an epoch is reproducible and every epoch sees new augmentations.
"""

from pathlib import Path

import cv2
import numpy as np
import torch

from .. import pages
from ..classifier import LABELS, REJECT
from ..errors import DataError
from ..preprocess import DEFAULT_PARAMS, preprocess, preprocess_batch
from . import augment

REJECT_INDEX = LABELS.index(REJECT)
IMAGE_SUFFIXES = pages.IMAGE_SUFFIXES - {".pdf"}  # single-image crops


def load_extra(folder):
    """User-labelled crops from ``folder/<digit>/*.png`` (and ``folder/reject/`` for non-digits).

    ``folder/strips/`` (whole-field strips written by ``--export-crops``) is not read here.
    Returns ``(crops, labels)``: uint8 ink crops (dark ink on light paper is inverted)
    and their class indices.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: --extra-data must be a folder of <digit>/ subfolders")
    crops, labels = [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "strips"):
        if sub.name not in LABELS:
            raise DataError(f"{sub}: folder name must be a digit 0-9 or '{REJECT}'")
        for path in sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if gray is None or gray.size == 0:
                raise DataError(f"{path}: not a readable image")
            crops.append(to_ink(gray))
            labels.append(LABELS.index(sub.name))
    if not crops:
        raise DataError(f"{folder}: no images found in <digit>/ subfolders")
    return crops, np.array(labels, np.int64)


def to_ink(gray):
    """Grayscale crop -> ink image (0 paper, 255 ink), whatever its polarity."""
    ink = 255 - gray if np.median(gray) > 127 else gray.copy()
    paper = np.percentile(ink, 10)
    return cv2.subtract(ink, np.full_like(ink, int(paper)))


class TrainingSet(torch.utils.data.Dataset):
    """MNIST digits (augmented), generated non-digits and optional user crops."""

    def __init__(self, images, labels, seed, nondigits=0, extra=None, extra_repeat=10, augment_prob=0.8):
        self.images, self.labels = images, labels
        self.extra_crops, self.extra_labels = extra if extra is not None else ([], np.zeros(0, np.int64))
        self.extra_repeat = extra_repeat
        self.nondigits = nondigits
        self.seed = seed
        self.augment_prob = augment_prob
        self.epoch = 0

    def __len__(self):
        return len(self.images) + len(self.extra_crops) * self.extra_repeat + self.nondigits

    def __getitem__(self, i):
        rng = np.random.default_rng((self.seed, self.epoch, i))
        n, n_extra = len(self.images), len(self.extra_crops) * self.extra_repeat
        if i < n:
            img, label = self.images[i], int(self.labels[i])
            if rng.random() < self.augment_prob:
                img = augment.scan_like(img, rng, self.images[rng.integers(n)])
        elif i < n + n_extra:
            j = (i - n) % len(self.extra_crops)
            img, label = augment.scan_like(self.extra_crops[j], rng), int(self.extra_labels[j])
        else:
            img, label = augment.nondigit(rng, self.images), REJECT_INDEX
        return torch.from_numpy(preprocess(img, DEFAULT_PARAMS)[None]), label


def as_tensors(crops, labels):
    """Preprocess clean crops into ``(x, y)`` tensors (validation and test sets)."""
    return torch.from_numpy(preprocess_batch(crops, DEFAULT_PARAMS)), torch.tensor(np.asarray(labels), dtype=torch.long)
