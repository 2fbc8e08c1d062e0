"""Pretrain the audio side: a `VisemePredictor` learns what the mouth does from many voices, no images.

Each drawn utterance of a speech corpus (`data.corpus`) is made into a voice unlike the training ones
(`data.voice_augment`: speed, pitch, level, noise, room, telephone band, codec), turned into mel
spectrogram and mouth track (`data.visemes` at every mel step), and gives a few random windows with
the mouth at their frame. A training pack's speech (`data.pack`, already mels) works too, for a GPU
machine that has no audio libraries' codecs: there only the recording level and band limits of
`augment.degrade_audio` vary.

Loss: L1 on openness and spread, binary cross-entropy on closed lips (bilabials are few, so they
weigh `CLOSED_WEIGHT` times more), the last weighted `closed_weight` in the total.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm.auto import tqdm

from . import audio as audio_lib
from .augment import degrade_audio
from .data.pack import Pack, dequantise_mel, dequantise_track, step_track
from .model.viseme_predictor import VisemePredictor
from .train import forever, save_model

CLOSED_WEIGHT = 4.0
PER_UTTERANCE = 24  # windows drawn from each augmented utterance


def mouth_loss(raw: torch.Tensor, target: torch.Tensor,
               closed_weight: float = 0.5) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss of (B, 3) raw predictions against (B, 3) targets (openness, spread, closed 0/1)."""
    parts = {"open": F.l1_loss(raw[:, 0], target[:, 0]), "spread": F.l1_loss(raw[:, 1], target[:, 1]),
             "closed": F.binary_cross_entropy_with_logits(
                 raw[:, 2], target[:, 2], pos_weight=torch.tensor(CLOSED_WEIGHT, device=raw.device))}
    total = parts["open"] + 0.5 * parts["spread"] + closed_weight * parts["closed"]
    return total, parts


def windows_at(mel: np.ndarray, steps: np.ndarray, lead: int) -> np.ndarray:
    """(len(steps), 1, 80, 16) windows whose frame is at mel step `steps`, `lead` steps into the window."""
    padded = np.pad(mel, ((0, 0), (lead, audio_lib.WINDOW)), constant_values=audio_lib.SILENCE)
    index = steps[:, None] + np.arange(audio_lib.WINDOW)[None, :]
    return np.ascontiguousarray(padded[:, index].transpose(1, 0, 2)[:, None], dtype=np.float32)


class CorpusWindows(IterableDataset):
    """Endless (mel window, mouth) pairs from a corpus split, each utterance freshly augmented."""

    def __init__(self, root: str | Path, split: str = "train", seed: int = 0, augment: bool = True,
                 window_lead: int = 0) -> None:
        from .data.corpus import load_corpus

        self.corpus = load_corpus(root)
        self.utterances = [u for u in self.corpus.utterances if u.split == split]
        if not self.utterances:
            raise ValueError(f"{root}: no {split} utterances")
        seconds = np.array([u.seconds for u in self.utterances])
        self.weights = seconds / seconds.sum()
        self.seed, self.augment, self.window_lead = seed, augment, window_lead

    def __iter__(self):
        from .data import voice_augment

        info = get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        while True:
            utterance = self.utterances[int(rng.choice(len(self.utterances), p=self.weights))]
            wav, phones = self.corpus.audio(utterance), self.corpus.phones(utterance)
            if self.augment:
                wav, phones = voice_augment.augment(wav, phones, rng)
            mel = audio_lib.melspectrogram(wav)
            track = step_track(phones, mel.shape[1])
            steps = rng.integers(0, mel.shape[1], PER_UTTERANCE)
            windows = windows_at(mel, steps, self.window_lead)
            for window, mouth in zip(windows, track[steps]):
                yield torch.from_numpy(window), torch.from_numpy(mouth)


class PackWindows(IterableDataset):
    """Endless (mel window, mouth) pairs from a training pack's speech (`train` or eval utterances)."""

    def __init__(self, pack: Pack | str, train: bool = True, seed: int = 0, window_lead: int = 0) -> None:
        self.pack = pack if isinstance(pack, Pack) else Pack.load(pack)
        spans = self.pack.utterance_spans(train)
        if not spans:
            raise ValueError(f"{self.pack.root}: no {'training' if train else 'held-out'} speech")
        self.steps = np.concatenate([np.arange(a, b) for a, b in spans])
        self.starts = np.concatenate([np.full(b - a, a) for a, b in spans])
        self.stops = np.concatenate([np.full(b - a, b) for a, b in spans])
        self.seed, self.window_lead = seed, window_lead

    def __iter__(self):
        info = get_worker_info()
        rng = np.random.default_rng([self.seed, info.id if info else 0])
        while True:
            k = int(rng.integers(len(self.steps)))
            step, start, stop = self.steps[k], self.starts[k], self.stops[k]
            lo = step - self.window_lead
            mel = dequantise_mel(self.pack.mel[:, max(lo, start):min(lo + audio_lib.WINDOW, stop)])
            window = np.pad(mel, ((0, 0), (max(start - lo, 0), audio_lib.WINDOW - mel.shape[1] - max(start - lo, 0))),
                            constant_values=audio_lib.SILENCE)
            yield torch.from_numpy(window[None]), torch.from_numpy(dequantise_track(self.pack.track[step:step + 1])[0])


class MixedWindows(IterableDataset):
    """Windows from several sources in equal shares, one from each in turn (a small set of human
    speech beside many synthesised hours weighs as much as all of them)."""

    def __init__(self, sources: list[IterableDataset]) -> None:
        leads = {source.window_lead for source in sources}
        if len(leads) != 1:
            raise ValueError(f"the sources cut their windows at different leads: {sorted(leads)}")
        self.sources, self.window_lead = sources, leads.pop()

    def __iter__(self):
        streams = [iter(source) for source in self.sources]
        while True:
            for stream in streams:
                yield next(stream)


def train_viseme_predictor(data: IterableDataset, out: str | Path, steps: int = 20000, batch_size: int = 128,
                           lr: float = 1e-3, workers: int = 2, window_lead: int = 0, device: str | None = None,
                           start: str | Path | None = None, degrade: bool = True, seed: int = 0,
                           log_every: int = 100, minutes: float | None = None,
                           closed_weight: float = 0.5) -> dict[str, float]:
    """Fit a VisemePredictor on `data` (CorpusWindows, PackWindows or a MixedWindows of them, cut at the
    model's window lead: `window_lead` for a fresh one, the `start` model's own otherwise) for `steps`
    steps or `minutes`, whichever ends first; save it to `out`; return the last losses, the steps taken
    and the wall time.
    `closed_weight`: the closed-lips term's weight in the loss (openness weighs 1, spread 0.5)."""
    torch.manual_seed(seed)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = VisemePredictor.from_pretrained(start) if start else VisemePredictor(window_lead=window_lead)
    if data.window_lead != model.window_lead:
        raise ValueError(f"the windows are cut at lead {data.window_lead}, the model expects {model.window_lead}")
    model.to(device).train()
    loader = DataLoader(data, batch_size=batch_size, num_workers=workers, persistent_workers=workers > 0,
                        pin_memory=device.type == "cuda")
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda k: min(1.0, (k + 1) / 500) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * k / steps))))
    generator = torch.Generator().manual_seed(seed)
    batches = forever(loader)
    began, losses = time.time(), {}
    for step in (bar := tqdm(range(steps), unit="step", mininterval=10)):
        if minutes is not None and time.time() - began > minutes * 60:
            break
        mels, target = next(batches)
        if degrade:
            mels = degrade_audio(mels, generator)
        mels, target = mels.to(device, non_blocking=True), target.to(device, non_blocking=True)
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            raw = model(mels)
        loss, parts = mouth_loss(raw.float(), target, closed_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % log_every == 0 or step == steps - 1:
            losses = {k: float(v.detach()) for k, v in parts.items()}
            bar.set_postfix({k: f"{v:.3f}" for k, v in parts.items()})
    save_model(model.cpu().eval(), out)
    return {**losses, "minutes": (time.time() - began) / 60, "steps": step + 1}
