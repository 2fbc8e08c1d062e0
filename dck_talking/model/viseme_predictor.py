"""`VisemePredictor`: what the mouth does at a video frame, from the sound around it.

Wav2Lip's audio encoder (the layer table of `audio_encoder`, so Wav2Lip and SyncNet weights still
load into it and its weights load into `DCKTalker`) plus a small head predicting the frame's mouth
parameters (`data.visemes`): openness, spread and whether the lips are closed. Trained on many
voices with `dck-talking train-audio`; the bundled one is where `dck-talking train` starts its audio
encoder from, and `dck-talking visemes` prints its predictions.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from .audio_encoder import FEATURE_DIM, AudioEncoder
from .hub import HubModelMixin

DEFAULT_VISEMES = Path(__file__).resolve().parent.parent / "weights" / "visemes"


class VisemePredictor(nn.Module, HubModelMixin, library_name="dck-talking", license="apache-2.0",
                      tags=["visemes", "lip-sync", "dck-talking"]):
    """(B, 1, 80, 16) mel windows -> (B, 3) raw outputs: openness and spread (regressions, in the units
    of `data.visemes.track`: openness 0..1, spread -1..1) and the closed-lips logit. `mouth()` gives them
    as 0..1 values. `window_lead`: how many mel steps of sound before the frame's time its window
    holds (0: the window starts at the frame, as `audio.window_starts` cuts it)."""

    def __init__(self, hidden: int = 256, window_lead: int = 0) -> None:
        super().__init__()
        self.window_lead = window_lead
        self.audio_encoder = AudioEncoder()
        self.head = nn.Sequential(nn.Linear(FEATURE_DIM, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 3))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        return self.head(self.audio_encoder(mels))

    @torch.no_grad()
    def mouth(self, mels: torch.Tensor) -> torch.Tensor:
        """(B, 3) open, spread and closed, each in [0, 1] (spread 0 = rounded, 0.5 = neutral, 1 = spread)."""
        return mouth_from_raw(self(mels))


def mouth_from_raw(raw: torch.Tensor) -> torch.Tensor:
    """A head's (B, 3) raw outputs (openness, spread -1..1, closed logit) as open, spread, closed in [0, 1]."""
    return torch.stack([raw[:, 0].clamp(0, 1), (raw[:, 1].clamp(-1, 1) + 1) / 2, torch.sigmoid(raw[:, 2])], 1)


def load_viseme_predictor(folder: str | Path | None = None) -> VisemePredictor:
    """A VisemePredictor from a local folder (default: the bundled one), in eval mode."""
    folder = Path(folder or DEFAULT_VISEMES)
    for name in ("config.json", "model.safetensors"):
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder}: not a VisemePredictor folder (no {name}); "
                                  "make one with dck-talking train-audio")
    return VisemePredictor.from_pretrained(folder).eval()
