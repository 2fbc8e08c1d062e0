"""Waveform augmentation (`data.voice_augment`): lengths and timing kept, the speed factor scales
durations and phone times, the telephone band, codec round trips, determinism for a seed."""

from __future__ import annotations

import av
import numpy as np
import pytest
import scipy.signal

from dck_talking.data import voice_augment as va
from dck_talking.data.phones import SAMPLE_RATE, Phone

SECONDS = 2.0


def clicks(seconds: float = SECONDS) -> np.ndarray:
    """Short tone bursts at irregular times: easy to find again in time."""
    wav = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
    burst = np.sin(2 * np.pi * 1000 * np.arange(160) / SAMPLE_RATE) * np.hanning(160)
    for start in (0.1, 0.27, 0.61, 0.83, 1.22, 1.4, 1.77):
        i = int(start * SAMPLE_RATE)
        wav[i:i + 160] += 0.5 * burst.astype(np.float32)
    return wav


def speechlike(seconds: float = SECONDS, seed: int = 0) -> np.ndarray:
    """Noise under a syllable-rate envelope, band-limited like a voice."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    syllables = np.sin(2 * np.pi * 3.1 * t) + np.sin(2 * np.pi * 4.7 * t + 1) + np.sin(2 * np.pi * 6.3 * t)
    envelope = np.clip(syllables, 0, None)  # irregular, so a shift cannot pass for another period
    voice = scipy.signal.sosfilt(scipy.signal.butter(4, (100, 6000), "bandpass", fs=SAMPLE_RATE, output="sos"),
                                 rng.standard_normal(n))
    return (0.2 * envelope * voice / np.abs(voice).max()).astype(np.float32)


def lag(out: np.ndarray, ref: np.ndarray) -> int:
    n = min(len(out), len(ref))
    corr = scipy.signal.correlate(out[:n], ref[:n], mode="full", method="fft")
    return int(np.argmax(corr)) - (n - 1)


def envelope(wav: np.ndarray) -> np.ndarray:
    """Loudness over time (a pitch shift changes the waveform, not where the sound is)."""
    return scipy.signal.sosfiltfilt(scipy.signal.butter(2, 100, fs=SAMPLE_RATE, output="sos"), np.abs(wav))


def band_energy(wav: np.ndarray, low: float, high: float) -> float:
    freqs, power = scipy.signal.welch(wav, fs=SAMPLE_RATE, nperseg=1024)
    return float(power[(freqs >= low) & (freqs < high)].sum())


def test_every_transform_keeps_length_and_type():
    wav, rng = speechlike(), np.random.default_rng(0)
    for transform in (va.pitch, va.level, va.noise, va.reverb, va.telephone, va.codec):
        out = transform(wav, rng)
        assert out.dtype == np.float32 and out.shape == wav.shape, transform.__name__
        assert np.isfinite(out).all() and np.abs(out).max() <= 1.0, transform.__name__


def test_speed_factor_scales_durations_and_phone_times():
    wav, rng = clicks(), np.random.default_rng(1)
    phones = [Phone(0.0, 0.1, ""), Phone(0.1, 0.35, "a"), Phone(0.35, 2.0, "m")]
    for _ in range(5):
        out, factor = va.speed(wav, rng)
        assert 0.85 <= factor <= 1.15
        assert abs(len(out) - len(wav) * factor) <= 1
        # the first burst, at 0.1 s, is now at 0.1 * factor s
        first = np.argmax(np.abs(out) > 0.1) / SAMPLE_RATE
        assert abs(first - 0.1 * factor) < 0.005
        scaled = va.scale_phones(phones, factor)
        assert [p.name for p in scaled] == ["", "a", "m"]
        assert scaled[1].start == pytest.approx(0.1 * factor)
        assert scaled[-1].end == pytest.approx(len(wav) / SAMPLE_RATE * factor)


def test_pitch_reverb_noise_and_telephone_keep_timing():
    wav, rng = speechlike(), np.random.default_rng(2)
    for transform in (va.reverb, va.telephone):
        assert abs(lag(transform(wav, rng), wav)) <= 2, transform.__name__
    for _ in range(4):  # the phase vocoder moves the sound by a few ms at most: well within a mel step
        assert abs(lag(envelope(va.pitch(wav, rng)), envelope(wav))) <= 0.0125 * SAMPLE_RATE
    noisy = va.noise(wav, rng, snr_db=(20.0, 20.0), kind="white")
    snr = 10 * np.log10(np.mean(wav ** 2) / np.mean((noisy - wav) ** 2))
    assert snr == pytest.approx(20.0, abs=0.5)


def test_telephone_band_removes_energy_above_3400_hz():
    wav = (0.1 * np.random.default_rng(3).standard_normal(int(SECONDS * SAMPLE_RATE))).astype(np.float32)
    out = va.telephone(wav)
    assert band_energy(out, 3700, 8000) < 1e-3 * band_energy(wav, 3700, 8000)
    assert band_energy(out, 0, 200) < 0.05 * band_energy(wav, 0, 200)
    assert band_energy(out, 500, 3000) > 0.7 * band_energy(wav, 500, 3000)


@pytest.mark.parametrize("codec", [c[0] for c in va.CODECS])
def test_codec_round_trip_keeps_timing(codec):
    if codec not in [c[0] for c in va.available_codecs()]:
        pytest.skip(f"PyAV {av.__version__}'s FFmpeg has no {codec} encoder")
    wav = clicks() + speechlike()
    out = va.codec(wav, np.random.default_rng(4), codec)
    assert out.shape == wav.shape
    assert abs(lag(out, wav)) <= 2
    assert np.corrcoef(out, wav)[0, 1] > 0.5


def test_augment_is_deterministic_for_a_seed_and_keeps_phones_in_step():
    wav = speechlike()
    phones = [Phone(0.0, 1.0, "a"), Phone(1.0, SECONDS, "m")]
    for seed in range(6):
        a_wav, a_phones = va.augment(wav, phones, np.random.default_rng(seed))
        b_wav, b_phones = va.augment(wav, phones, np.random.default_rng(seed))
        assert np.array_equal(a_wav, b_wav) and a_phones == b_phones
        assert a_wav.dtype == np.float32 and a_wav.ndim == 1
        assert a_phones[-1].end == pytest.approx(len(a_wav) / SAMPLE_RATE, abs=1e-3)


def test_codec_draws_only_encoders_this_build_has(monkeypatch):
    opus = [c for c in va.CODECS if c[0] == "libopus"]
    monkeypatch.setattr(va, "available_codecs", lambda: tuple(opus))
    used, encode = [], va._encode
    monkeypatch.setattr(va, "_encode", lambda wav, name, *args: used.append(name) or encode(wav, name, *args))
    wav = speechlike()
    for seed in range(6):
        assert va.codec(wav, np.random.default_rng(seed)).shape == wav.shape
    assert used == ["libopus"] * 6
    with pytest.raises(ValueError, match="no aac encoder .usable here: libopus."):
        va.codec(wav, np.random.default_rng(0), "aac")
