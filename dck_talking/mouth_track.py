"""Mouth shapes from speech alone, one per video frame: `dck-talking visemes` and its Python API.

    from dck_talking.mouth_track import mouth_track
    track = mouth_track("speech.wav", fps=25)   # {"fps": 25.0, "frames": [{"t", "open", "spread", "closed"}, ...]}

`open` 0 (lips together) .. 1 (wide), `spread` 0 (rounded, as for "oo") .. 0.5 (neutral) .. 1 (spread,
as for "ee"), `closed` the probability that the lips touch (m, b, p). Useful on its own (2D
animation) and the audio half of the lip-sync model made measurable.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from . import audio as audio_lib
from .model.viseme_predictor import VisemePredictor, load_viseme_predictor


@torch.no_grad()
def predict_mouth(model: VisemePredictor, wav: np.ndarray, fps: float | Fraction, batch_size: int = 256
                  ) -> np.ndarray:
    """(N, 3) open, spread, closed in [0, 1] for every frame of a video at `fps` as long as `wav`
    (16 kHz mono), N = ceil(seconds * fps)."""
    mel = audio_lib.melspectrogram(wav)
    n_frames = max(1, int(np.ceil(len(wav) / audio_lib.SAMPLE_RATE * float(fps) - 1e-9)))
    windows = audio_lib.frame_windows(mel, n_frames, fps, lead=model.window_lead)
    device = next(model.parameters()).device
    return torch.cat([model.mouth(windows[i:i + batch_size].to(device)).cpu()
                      for i in range(0, n_frames, batch_size)]).numpy()


def mouth_track(audio: str | Path | np.ndarray, fps: float = 25.0, model: VisemePredictor | None = None) -> dict:
    """The mouth at every video frame of `audio` (a file any FFmpeg build reads, or 16 kHz mono samples),
    as `{"fps": fps, "frames": [{"t": seconds, "open": ..., "spread": ..., "closed": ...}, ...]}`."""
    from .pipeline import load_speech

    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    wav = load_speech(audio) if isinstance(audio, (str, Path)) else np.asarray(audio, np.float32)
    mouth = predict_mouth(model or load_viseme_predictor(), wav, fps)
    frames = [{"t": round(k / fps, 4), "open": round(float(o), 3), "spread": round(float(s), 3),
               "closed": round(float(c), 3)} for k, (o, s, c) in enumerate(mouth)]
    return {"fps": float(fps), "frames": frames}


def format_track(track: dict) -> str:
    """A fixed-width table of a `mouth_track` result, a frame a line."""
    lines = [f"{'frame':>6} {'t (s)':>8} {'open':>6} {'spread':>7} {'closed':>7}"]
    lines += [f"{k:>6} {f['t']:>8.3f} {f['open']:>6.2f} {f['spread']:>7.2f} {f['closed']:>7.2f}"
              for k, f in enumerate(track["frames"])]
    return "\n".join(lines)
