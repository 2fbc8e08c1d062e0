"""Training-time augmentation: more identities out of few faces (mirror images, other skin tones and
lighting; each sample's input and target get the same change, so a pair stays a pair), and sound as
other microphones and lines give it (recording level, telephone and codec band limits)."""

from __future__ import annotations

import torch

from . import audio as audio_lib

_UNITS_PER_DB = 2 * audio_lib.MAX_ABS / -audio_lib.MIN_LEVEL_DB


def color_jitter(images: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """The same random brightness, contrast and colour balance per sample for every (B, 3, H, W)
    tensor of `images` (values in [0, 1])."""
    batch, device = images[0].shape[0], images[0].device
    gain = 1 + 0.25 * (torch.rand(batch, 3, 1, 1, generator=generator).to(device) - 0.5)
    contrast = 1 + 0.4 * (torch.rand(batch, 1, 1, 1, generator=generator).to(device) - 0.5)
    shift = 0.1 * (torch.rand(batch, 1, 1, 1, generator=generator).to(device) - 0.5)
    mean = images[0].mean((1, 2, 3), keepdim=True)
    return [((image - mean) * contrast + mean + shift).mul(gain).clamp(0, 1) for image in images]


def augment_pairs(batch: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A `PairDataset` batch with half of its samples mirrored left-right and every sample's input
    and target given the same colour jitter. Mirrored lips move to their mirrored positions; their
    order is kept (good for boxes around them and for losses that compare two readings)."""
    flip = (torch.rand(batch["input"].shape[0], generator=generator) < 0.5).to(batch["input"].device)
    out = dict(batch)
    size = batch["input"].shape[-1]
    for key in ("input", "target"):
        out[key] = torch.where(flip[:, None, None, None], batch[key].flip(-1), batch[key])
    mirrored = batch["lips"].clone()
    mirrored[..., 0] = size - 1 - mirrored[..., 0]  # pixel centres: column i <-> column size - 1 - i
    out["lips"] = torch.where(flip[:, None, None], mirrored, batch["lips"])
    out["input"], out["target"] = color_jitter([out["input"], out["target"]], generator)
    return out


def degrade_audio(mel: torch.Tensor, generator: torch.Generator, max_gain_db: float = 10.0,
                  band_limit_p: float = 0.5, cutoff_hz: tuple[float, float] = (3000.0, 6500.0)) -> torch.Tensor:
    """Mel windows (B, 1, N_MELS, T) as another recording chain would give them: each sample's level
    moved by up to `max_gain_db` (silence stays silence), and `band_limit_p` of them cut off above a
    random frequency in `cutoff_hz` (8 kHz telephone and codec recordings have nothing above 4 kHz),
    so that the model follows the lips in the low bands every recording has."""
    batch, device = mel.shape[0], mel.device
    gain = (2 * torch.rand(batch, generator=generator) - 1) * max_gain_db * _UNITS_PER_DB
    louder = torch.where(mel > audio_lib.SILENCE, mel + gain.to(device)[:, None, None, None], mel)
    out = louder.clamp(-audio_lib.MAX_ABS, audio_lib.MAX_ABS)
    cut = torch.empty(batch).uniform_(*cutoff_hz, generator=generator)
    limited = torch.rand(batch, generator=generator) < band_limit_p
    bands = torch.from_numpy(audio_lib.mel_band_hz()).float()
    above = (bands[None, :] > cut[:, None]) & limited[:, None]  # (B, N_MELS)
    return out.masked_fill(above.to(device)[:, None, :, None], audio_lib.SILENCE)
