"""`LipReader`: a small CNN that reads the 40 lip landmarks off the mouth of a face crop.

It is a differentiable stand-in for MediaPipe's lip landmarks, used as a training loss (`train
--lip-reader`): the distance between the lips it reads on the generated crop and on the target.
The reconstruction loss alone lets the generator copy the input's mouth (close in pixels, wrong
in shape); this loss measures the shape, as LMD does, so copying no longer pays. A small frozen
reader can be fooled, though (measured: README, "The default model"): judge a run by the MediaPipe
LMD that validation logs, not by this loss.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..face import LIP_INDICES
from .hub import HubModelMixin

# Where the mouth is in the 256 canonical crop (face/align.py puts the mouth corners' midpoint at
# (128, 153.6) and 60 px apart); the window also holds a wide-open mouth and the jaw. Rows, columns.
MOUTH_WINDOW = (slice(112, 208), slice(64, 192))
WINDOW_ROWS, WINDOW_COLS = (part.stop - part.start for part in MOUTH_WINDOW)
CROP_SIZE = 256


def mouth_patch(crops: torch.Tensor) -> torch.Tensor:
    """(B, 3, 256, 256) crops in [0, 1] -> (B, 3, WINDOW_ROWS, WINDOW_COLS) mouth windows."""
    if crops.shape[-2:] != (CROP_SIZE, CROP_SIZE):
        raise ValueError(f"the lip reader works on {CROP_SIZE}x{CROP_SIZE} crops, got {tuple(crops.shape[-2:])}")
    return crops[:, :, MOUTH_WINDOW[0], MOUTH_WINDOW[1]]


class LipReader(nn.Module, HubModelMixin, library_name="dck-talking", license="apache-2.0",
                tags=["lip-landmarks", "dck-talking"]):
    """(B, 3, 256, 256) canonical face crops in [0, 1] -> (B, 40, 2) lip landmarks (crop pixels,
    MediaPipe's `LIP_INDICES` order)."""

    def __init__(self, channels: list[int] | None = None) -> None:
        super().__init__()
        channels = list(channels or [16, 32, 64, 128, 128])
        layers: list[nn.Module] = []
        for cin, cout in zip([3, *channels[:-1]], channels):
            layers += [nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        rows, cols = (WINDOW_ROWS >> len(channels)) or 1, (WINDOW_COLS >> len(channels)) or 1
        self.head = nn.Linear(channels[-1] * rows * cols, 2 * len(LIP_INDICES))

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        x = self.features(mouth_patch(crops) * 2 - 1)
        offsets = self.head(x.flatten(1)).view(-1, len(LIP_INDICES), 2)
        # Predicted relative to the window's centre, in units of half its width.
        centre = torch.tensor([MOUTH_WINDOW[1].start + WINDOW_COLS / 2 - 0.5,
                               MOUTH_WINDOW[0].start + WINDOW_ROWS / 2 - 0.5], device=crops.device)
        return centre + offsets * WINDOW_COLS / 2


def load_lip_reader(folder: str | Path) -> LipReader:
    """A trained LipReader from a local folder, frozen and in eval mode (for use as a loss)."""
    folder = Path(folder)
    for name in ("config.json", "model.safetensors"):
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder}: not a LipReader folder (no {name}); make one with dck-talking train-lips")
    return LipReader.from_pretrained(folder).eval().requires_grad_(False)
