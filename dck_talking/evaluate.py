"""`dck-talking evaluate`: the paper's Table I columns (PSNR, SSIM, LMD) on held-out pairs, for one
or more checkpoints and the identity baseline (output = input frame); `dck-talking sync`: the lip-sync
score of rendered videos as the speech is delayed, which peaks at no delay when the model is in sync."""

from __future__ import annotations

import tempfile
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from .audio import SAMPLE_RATE, melspectrogram
from .image import is_image
from .metrics import MouthLandmarks, lip_gap, speech_envelope, sync_score
from .model import DCKTalker, TalkerOutput
from .pipeline import PHOTO_FPS, TalkingFacePipeline, load_speech
from .train import validate
from .video import iter_frames, probe


@dataclass
class Row:
    name: str
    psnr: float
    ssim: float
    lmd: float


class _Identity(torch.nn.Module):
    """The baseline that returns the input frame unchanged."""

    def forward(self, frames: torch.Tensor, mels: torch.Tensor) -> TalkerOutput:
        return TalkerOutput(output=frames, alpha=torch.zeros_like(frames[:, :1]), motion=frames)


def evaluate(models: dict[str, torch.nn.Module], dataset: Dataset, pairs: int = 256, batch_size: int = 16,
             seed: int = 0, device: str = "cpu") -> list[Row]:
    """Metrics of each model, and of the identity baseline, on the same `pairs` random pairs."""
    chosen = np.random.default_rng(seed).permutation(len(dataset))[:pairs].tolist()
    loader = DataLoader(Subset(dataset, chosen), batch_size=batch_size)
    rows = []
    for name, model in {**models, "identity (input frame)": _Identity()}.items():
        metrics = validate(model.to(device), loader, torch.device(device), landmarks=True)
        rows.append(Row(name, metrics["psnr"], metrics["ssim"], metrics.get("lmd", float("nan"))))
    return rows


def format_table(rows: list[Row], pairs: int) -> str:
    lines = [f"{pairs} held-out pairs; LMD in pixels of a 256 crop (lower is better)", "",
             "| model | PSNR | SSIM | LMD |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r.name} | {r.psnr:.2f} | {r.ssim:.3f} | {r.lmd:.2f} |" for r in rows]
    return "\n".join(lines)


def load_checkpoints(specs: list[str]) -> dict[str, DCKTalker]:
    """`name=path` or `path` -> loaded models, keyed by name."""
    models = {}
    for spec in specs:
        name, _, path = spec.rpartition("=")
        models[name or path] = DCKTalker.from_pretrained(path)
    return models


def delay_sweep(pipe: TalkingFacePipeline, face: str | Path, speech: str | Path, max_delay: int = 5) -> dict[int, float]:
    """Render `face` speaking `speech` delayed by d = -max_delay..+max_delay video frames (d > 0: the
    sound comes later) and score each video's lip motion against the speech as given
    (`metrics.sync_score` at offset 0). A model in sync scores best at d = 0."""
    wav = load_speech(speech)
    fps = PHOTO_FPS if is_image(face) else float(probe(face).fps)
    mel = melspectrogram(wav)
    scores = {}
    with closing(MouthLandmarks()) as landmarks, tempfile.TemporaryDirectory(prefix="dck-sync-") as folder:
        shifted, video = Path(folder) / "speech.wav", Path(folder) / "video.mp4"
        for delay in range(-max_delay, max_delay + 1):
            sf.write(shifted, _delayed(wav, round(delay * SAMPLE_RATE / fps)), SAMPLE_RATE)
            pipe.generate(face, shifted, video)
            gaps = np.array([np.nan if (points := landmarks(frame)) is None else lip_gap(points)
                             for frame in iter_frames(video)])
            envelope = speech_envelope(mel, len(gaps), fps)
            scores[delay] = sync_score(gaps, envelope, max_offset=0).score
    return scores


def _delayed(wav: np.ndarray, samples: int) -> np.ndarray:
    """`wav` shifted later by `samples` (earlier when negative), silence-filled, same length."""
    out = np.zeros_like(wav)
    if samples >= 0:
        out[samples:] = wav[:len(wav) - samples]
    else:
        out[:samples] = wav[-samples:]
    return out


def format_sweep(scores: dict[int, float]) -> str:
    best = max(scores, key=lambda d: -np.inf if np.isnan(scores[d]) else scores[d])
    lines = ["| audio delay (frames) | sync score |", "| ---: | ---: |"]
    lines += [f"| {d:+d} | {score:.3f}{' (peak)' if d == best else ''} |" for d, score in scores.items()]
    return "\n".join(lines)
