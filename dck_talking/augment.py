"""Training-time augmentation: more identities out of few faces (mirror images, other skin tones and
lighting). Each sample's input and target get the same change, so a pair stays a pair."""

from __future__ import annotations

import torch


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
