"""Training augmentation keeps pairs paired: the same mirror and colour change for input and target."""

import torch

from dck_talking.augment import augment_pairs


def test_pairs_get_the_same_mirror_and_colour_change():
    generator = torch.Generator().manual_seed(0)
    frames = torch.rand(16, 3, 32, 32, generator=generator)
    frames[:, :, :, :16] = 0.2  # left half flat, right half noise: shows which samples are mirrored
    lips = torch.rand(16, 40, 2, generator=generator) * 31
    batch = {"input": frames, "target": frames.clone(), "lips": lips, "mel": torch.rand(16, 1, 80, 16)}
    out = augment_pairs(batch, torch.Generator().manual_seed(1))

    torch.testing.assert_close(out["input"], out["target"])  # identical pairs stay identical
    assert out["mel"] is batch["mel"] and out["input"].min() >= 0 and out["input"].max() <= 1
    flat_left = out["input"][:, :, :, :16].std((2, 3)).amax(1) < 1e-6
    flipped = ~flat_left
    assert 0 < flipped.sum() < 16
    torch.testing.assert_close(out["lips"][flipped, :, 0], 31 - lips[flipped, :, 0])
    torch.testing.assert_close(out["lips"][~flipped], lips[~flipped])
    torch.testing.assert_close(out["lips"][..., 1], lips[..., 1])
    assert (out["input"] - batch["input"]).abs().amax((1, 2, 3)).min() > 1e-3  # every sample's colours changed
