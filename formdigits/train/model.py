"""DigitNet: a small CNN for 28x28 digit crops, chosen for accuracy per FLOP.

Four 3x3 conv-BN-ReLU stages, max-pooling after the first three
(28 -> 14 -> 7 -> 3), then dropout and one linear layer on the 3x3 map.
About 10 M multiply-adds per digit and 0.33 M parameters with the default
widths (multiples of 32 suit ONNX Runtime's CPU kernels best). Input normalisation is part of the network, so the exported ONNX model
takes the [0, 1] output of :func:`formdigits.preprocess.preprocess` directly.
"""

from dataclasses import dataclass

from torch import nn


@dataclass
class ModelConfig:
    channels: tuple = (32, 64, 128, 192)
    num_classes: int = 11  # digits 0-9 and "reject" (not a digit)
    input_size: int = 28
    dropout: float = 0.3
    mean: float = 0.13  # input normalisation, applied inside the network
    std: float = 0.31


def _block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DigitNet(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        c = config.channels
        if len(c) != 4:
            raise ValueError(f"DigitNet has 4 stages, got channels={c}")
        self.features = nn.Sequential(
            _block(1, c[0]), nn.MaxPool2d(2),
            _block(c[0], c[1]), nn.MaxPool2d(2),
            _block(c[1], c[2]), nn.MaxPool2d(2),
            _block(c[2], c[3]),
        )  # fmt: skip
        side = config.input_size // 8
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(c[3] * side * side, config.num_classes))

    def forward(self, x):
        """Logits ``(N, num_classes)`` for inputs ``(N, 1, S, S)`` in [0, 1]."""
        x = (x - self.config.mean) / self.config.std
        return self.head(self.features(x))
