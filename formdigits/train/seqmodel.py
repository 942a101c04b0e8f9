"""StripNet: a small CRNN that reads a field's ink strip left to right, trained with a CTC loss.

Four 3x3 conv-BN-ReLU stages (the strip's 32 rows pooled to 1, its width to a
quarter: one frame per 4 columns, five or so per digit), then a bidirectional
LSTM over the frames and a linear layer to the 10 digits and the CTC blank
(the last class). Marks that are no digit (separators, ticks, dashes, box-line
remnants) are read as blank: the reader gives only the digits. Input
normalisation is part of the network, so the exported model takes the [0, 1]
output of :func:`formdigits.preprocess.preprocess_strip` directly.
"""

from dataclasses import dataclass

import torch
from torch import nn

from .model import _block  # 3x3 conv, BatchNorm, ReLU: DigitNet's stage


@dataclass
class StripConfig:
    channels: tuple = (32, 64, 96, 128)
    hidden: int = 96  # LSTM units per direction
    num_classes: int = 11  # digits 0-9 and the blank (last)
    height: int = 32
    mean: float = 0.08
    std: float = 0.25

    def __post_init__(self):
        self.channels = tuple(self.channels)  # (a checkpoint's JSON-like dict holds a list)


class StripNet(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        c = config.channels
        if len(c) != 4 or config.height != 32:
            raise ValueError(f"StripNet has 4 stages over 32 rows, got channels={c}, height={config.height}")
        self.features = nn.Sequential(
            _block(1, c[0]), nn.MaxPool2d(2),  # 16 rows, W/2
            _block(c[0], c[1]), nn.MaxPool2d(2),  # 8 rows, W/4
            _block(c[1], c[2]), nn.MaxPool2d((2, 1)),  # 4 rows
            _block(c[2], c[3]), nn.MaxPool2d((4, 1)),  # 1 row
        )  # fmt: skip
        self.rnn = nn.LSTM(c[3], config.hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * config.hidden, config.num_classes)

    def forward(self, x):
        """Logits ``(N, W // 4, num_classes)`` for inputs ``(N, 1, 32, W)`` in [0, 1]."""
        x = (x - self.config.mean) / self.config.std
        f = self.features(x).squeeze(2).transpose(1, 2)  # (N, T, C)
        return self.head(self.rnn(f)[0])


def frames(widths):
    """The number of output frames for input widths (columns)."""
    return torch.div(torch.as_tensor(widths), 4, rounding_mode="floor")
