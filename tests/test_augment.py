"""Training augmentation keeps pairs paired (the same mirror and colour change for input and target)
and changes sound only as a recording chain would (level, band limit)."""

import torch

from dck_talking import audio
from dck_talking.augment import augment_pairs, degrade_audio


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


def test_degraded_audio_keeps_silence_moves_level_and_cuts_high_bands():
    mel = torch.rand(64, 1, audio.N_MELS, 16, generator=torch.Generator().manual_seed(0)) * 4 - 2  # no clipping
    mel[:, :, :, :3] = audio.SILENCE
    out = degrade_audio(mel, torch.Generator().manual_seed(1), max_gain_db=10.0, band_limit_p=0.5,
                        cutoff_hz=(3000.0, 3000.0))
    assert out.shape == mel.shape
    assert (out[:, :, :, :3] == audio.SILENCE).all()  # silence stays silence at any level
    high = torch.from_numpy(audio.mel_band_hz() > 3000.0)
    cut = (out[:, 0, high, 3:] == audio.SILENCE).flatten(1).all(1)
    assert 16 < cut.sum() < 48  # about half of the sounds lose everything above the cut-off
    assert not (out[cut][:, 0, ~high, 3:] == audio.SILENCE).any()  # and keep the bands below it
    shift = (out - mel)[:, 0, ~high, 3:].flatten(1)
    torch.testing.assert_close(shift, shift[:, :1].expand_as(shift))  # one level change per sound
    max_shift = 10.0 * 2 * audio.MAX_ABS / -audio.MIN_LEVEL_DB
    assert shift.abs().max() <= max_shift + 1e-6 and shift[:, 0].std() > max_shift / 4
