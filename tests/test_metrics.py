import numpy as np
import pytest
import torch

from dck_talking.face import LIP_INDICES
from dck_talking.cli import main
from dck_talking.data import ClipWriter
from dck_talking.errors import DCKError
from dck_talking.evaluate import clip_sync, format_clip_sync
from dck_talking.metrics import lip_gap, lmd, psnr, speech_envelope, ssim, stored_lip_gaps, sync_score


def test_psnr_of_a_known_error():
    target = torch.zeros(2, 3, 16, 16)
    output = torch.full_like(target, 0.1)  # MSE 0.01 -> 20 dB
    torch.testing.assert_close(psnr(output, target), torch.tensor([20.0, 20.0]))


def test_psnr_of_a_copy_is_the_8_bit_ceiling_not_infinity():
    target = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    one_level = target.clone()
    one_level[:, 0, 0, 0] += 1 / 255  # the smallest error an 8-bit image can hold
    ceiling = psnr(target, target)
    torch.testing.assert_close(ceiling, psnr(one_level, target))
    torch.testing.assert_close(ceiling, torch.full((2,), 10 * np.log10(255**2 * 3 * 16 * 16), dtype=torch.float32))


def test_ssim_is_one_for_identical_images_and_falls_with_noise():
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ssim(images, images), torch.ones(2))
    noisy = (images + 0.2 * torch.randn_like(images)).clamp(0, 1)
    assert (ssim(noisy, images) < 0.9).all()


def test_lmd_is_the_mean_lip_distance():
    landmarks = np.random.default_rng(0).uniform(0, 256, (478, 2))
    moved = landmarks.copy()
    moved[list(LIP_INDICES)] += [3.0, 4.0]
    assert lmd(landmarks, landmarks) == 0
    assert lmd(moved, landmarks) == pytest.approx(5.0)


def test_lip_gap_is_relative_to_mouth_width():
    landmarks = np.zeros((478, 2))
    landmarks[61], landmarks[291] = (100, 200), (160, 200)  # mouth corners, 60 px apart
    landmarks[13], landmarks[14] = (130, 195), (130, 210)  # inner lips 15 px apart
    assert lip_gap(landmarks) == pytest.approx(0.25)


def test_stored_lip_gaps_match_lip_gap_of_the_full_landmarks():
    landmarks = np.random.default_rng(0).uniform(0, 256, (3, 478, 2))
    expected = [lip_gap(frame) for frame in landmarks]
    np.testing.assert_allclose(stored_lip_gaps(landmarks[:, list(LIP_INDICES)]), expected, rtol=1e-6)


def _write_clip(folder, loudness, gaps, fps=25):
    """A stored clip whose voice-band level follows `loudness` and whose mouth opens by `gaps` per frame."""
    steps = int(len(loudness) * 80 / fps) + 16
    frame_of_step = np.minimum(np.rint(np.arange(steps) * fps / 80).astype(int), len(loudness) - 1)
    mel = np.repeat(loudness[frame_of_step][None], 80, axis=0)
    writer = ClipWriter(folder, len(gaps), 8)
    corners, inner = [LIP_INDICES.index(i) for i in (61, 291)], [LIP_INDICES.index(i) for i in (13, 14)]
    writer.lips[:, corners] = [(100, 200), (160, 200)]
    writer.lips[:, inner[0]] = 130, 200
    writer.lips[:, inner[1], 0], writer.lips[:, inner[1], 1] = 130, 200 + 60 * gaps
    writer.commit(mel, {"fps": fps, "frames": len(gaps)})


def test_clip_sync_finds_stored_clips_out_of_step(tmp_path, capsys):
    rng = np.random.default_rng(0)
    loudness = np.convolve(rng.uniform(-4, 2, 80), np.ones(3) / 3, mode="same").astype(np.float32)
    opening = (loudness + 4) / 12  # 0 .. 0.5 of the mouth width
    _write_clip(tmp_path / "data" / "clips" / "in-step", loudness, opening)
    _write_clip(tmp_path / "data" / "clips" / "late", loudness, np.roll(opening, 2))  # mouth 2 frames late
    results = {r.clip.name: r for r in clip_sync(tmp_path / "data")}
    assert results["in-step"].offset == 0 and results["in-step"].score > 0.9
    assert results["late"].offset == -2 and results["late"].score < results["in-step"].score - 0.2
    report = format_clip_sync("data", list(results.values()), max_offset=5)
    assert "2 clips" in report and "peak at 0 in 50%" in report and "late: peak at -2" in report
    assert "in-step:" not in report  # only clips out of step are listed
    assert main(["data-sync", "--data", str(tmp_path / "data"), "--max-offset", "3"]) == 0
    assert "| -2 | 1 |" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    with pytest.raises(DCKError, match="no clips found"):
        clip_sync(tmp_path / "empty")


def test_sync_score_finds_the_offset():
    rng = np.random.default_rng(0)
    envelope = np.convolve(rng.normal(size=200), np.ones(4) / 4, mode="same")
    aligned = sync_score(envelope.copy(), envelope)
    assert aligned.score == pytest.approx(1.0) and aligned.offset == 0
    shifted = sync_score(envelope[3:], envelope[:-3])  # frame i shows the mouth for audio frame i + 3
    assert shifted.offset == 3 and shifted.score < 0.9
    with_gaps = envelope.copy()
    with_gaps[::7] = np.nan  # frames without landmarks are left out
    assert sync_score(with_gaps, envelope).offset == 0


def test_speech_envelope_follows_loudness():
    mel = np.full((80, 400), -4.0, np.float32)
    mel[:, 100:200] = 1.0  # loud from 1.25 s to 2.5 s
    envelope = speech_envelope(mel, 125, fps=25)  # 5 s of video
    assert envelope[40:60].min() > envelope[:25].max()
    assert len(envelope) == 125 and np.isfinite(envelope).all()


def test_lower_face_sharpness_falls_for_a_blurred_chin():
    from dck_talking.metrics import lower_face_sharpness

    images = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    lips = torch.tensor([[100.0, 140.0], [156.0, 165.0]]).repeat(20, 1).expand(2, 40, 2)
    torch.testing.assert_close(lower_face_sharpness(images, images, lips), torch.ones(2))
    blurred = images.clone()
    blurred[:, :, 160:] = torch.nn.functional.avg_pool2d(images, 5, 1, 2)[:, :, 160:]
    assert (lower_face_sharpness(blurred, images, lips) < 0.3).all()
    upper = images.clone()
    upper[:, :, :150] = 0.5  # above the lower lip: not counted
    torch.testing.assert_close(lower_face_sharpness(upper, images, lips), torch.ones(2))


def test_phone_frames_find_bilabials_and_open_vowels():
    from dck_talking.data.phones import Phone
    from dck_talking.metrics import phone_frames

    phones = [Phone(0.0, 0.2, ""), Phone(0.2, 0.28, "m"), Phone(0.28, 0.4, "AA"), Phone(0.4, 0.5, "B"),
              Phone(0.5, 0.6, "iː"), Phone(0.6, 0.7, "aɪ"), Phone(0.7, 0.8, "t"), Phone(0.9, 4.0, "p")]
    frames = phone_frames(phones, 40, 25)
    assert frames.bilabial.tolist() == [6, 11]  # m at 0.24 s, B at 0.45 s; the p past the last frame is left out
    assert frames.open_vowel.tolist() == [8, 16]  # AA (0.34 s) and the diphthong aɪ opening on a (0.65 s); not iː
