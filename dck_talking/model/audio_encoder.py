"""Wav2Lip's audio encoder: a mel window (B, 1, 80, 16) -> an audio feature (B, 512).

The layer table and the parameter names (`{i}.conv_block.{0,1}.*`) follow Wav2Lip and its SyncNet,
so their pretrained encoders load without renaming (DESIGN §2).
"""

from __future__ import annotations

import torch
from torch import nn

# (in, out, kernel, stride, padding, residual)
LAYERS: tuple[tuple[int, int, int, int | tuple[int, int], int, bool], ...] = (
    (1, 32, 3, 1, 1, False),
    (32, 32, 3, 1, 1, True),
    (32, 32, 3, 1, 1, True),
    (32, 64, 3, (3, 1), 1, False),
    (64, 64, 3, 1, 1, True),
    (64, 64, 3, 1, 1, True),
    (64, 128, 3, 3, 1, False),
    (128, 128, 3, 1, 1, True),
    (128, 128, 3, 1, 1, True),
    (128, 256, 3, (3, 2), 1, False),
    (256, 256, 3, 1, 1, True),
    (256, 512, 3, 1, 0, False),
    (512, 512, 1, 1, 0, False),
)
FEATURE_DIM = 512


class ConvBlock(nn.Module):
    """Conv2d + BatchNorm + ReLU, with an optional residual add before the ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int | tuple[int, int], padding: int,
                 residual: bool = False) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding), nn.BatchNorm2d(cout))
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        return torch.relu(out + x if self.residual else out)


class AudioEncoder(nn.Sequential):
    """(B, 1, 80, 16) normalised mel windows -> (B, 512) audio features."""

    def __init__(self) -> None:
        super().__init__(*(ConvBlock(*layer) for layer in LAYERS))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        return super().forward(mels).flatten(1)
