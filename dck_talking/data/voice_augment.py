"""Waveform augmentation that turns a corpus voice into voices unlike it: another speaking rate and
pitch, another level, background noise, a room, a telephone line, a low-bitrate codec.

Each function takes 16 kHz mono float32 audio and a `numpy.random.Generator` and keeps the timing of
the speech (so the phones stay valid), except `speed`, which returns its time factor for
`scale_phones`. `augment` chains a random subset. CPU time on one core for 5 s of speech: speed
0.7 ms, pitch 9 ms, level under 0.1 ms, noise 1 ms, reverberation 2 ms, telephone 3 ms, codec 22 ms
(AMR-NB) to 42 ms (Opus); `augment` averages 14 ms, well within a DataLoader worker's budget.
"""

from __future__ import annotations

import functools
import io
from fractions import Fraction

import av
import librosa
import numpy as np
import scipy.signal

from .phones import SAMPLE_RATE, Phone

# (encoder, container, sample rate, bit rates): low-bitrate speech as phones and streams carry it.
# Not every PyAV wheel has every encoder (18.1.1's have no AMR-NB): `available_codecs` is the usable set.
CODECS = (
    ("libopus", "ogg", 16000, (8000, 12000, 16000, 24000)),
    ("libmp3lame", "mp3", 16000, (16000, 24000)),
    ("aac", "adts", 16000, (16000, 24000)),
    ("libopencore_amrnb", "amr", 8000, (7950, 12200)),
)


def scale_phones(phones: list[Phone], factor: float) -> list[Phone]:
    """Phone times multiplied by `factor` (the time factor `speed` returns)."""
    return [Phone(p.start * factor, p.end * factor, p.name) for p in phones]


def speed(wav: np.ndarray, rng: np.random.Generator, low: float = 0.85, high: float = 1.15) -> tuple[np.ndarray, float]:
    """Speak faster or slower by resampling (pitch moves with the rate, as with a tape): returns the
    audio and its time factor (new duration / old duration)."""
    factor = Fraction(float(rng.uniform(low, high))).limit_denominator(40)
    out = scipy.signal.resample_poly(wav, factor.numerator, factor.denominator)
    return out.astype(np.float32), float(factor)


def pitch(wav: np.ndarray, rng: np.random.Generator, semitones: float = 3.0) -> np.ndarray:
    """Shift the pitch by up to +-`semitones`, keeping the timing (librosa's phase vocoder)."""
    steps = float(rng.uniform(-semitones, semitones))
    return librosa.effects.pitch_shift(wav, sr=SAMPLE_RATE, n_steps=steps).astype(np.float32)


def level(wav: np.ndarray, rng: np.random.Generator, low_db: float = -20.0, high_db: float = 6.0) -> np.ndarray:
    """Louder or quieter by a random gain in dB, clipped at full scale as a recorder would."""
    gain = 10 ** (rng.uniform(low_db, high_db) / 20)
    return np.clip(wav * gain, -1.0, 1.0).astype(np.float32)


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    spectrum /= np.sqrt(np.maximum(np.arange(n // 2 + 1), 1.0))  # power falls as 1/f
    return np.fft.irfft(spectrum, n)


def _babble(wav: np.ndarray, rng: np.random.Generator, talkers: int = 5) -> np.ndarray:
    """Speech-shaped, speech-modulated noise: the utterance itself, reversed and shifted, several times over."""
    return sum(np.roll(wav[::-1] if k % 2 else wav, int(rng.integers(len(wav)))) for k in range(talkers))


def noise(wav: np.ndarray, rng: np.random.Generator, snr_db: tuple[float, float] = (5.0, 30.0),
          kind: str | None = None) -> np.ndarray:
    """Add white, pink or babble-like noise at a random signal-to-noise ratio (speech power over
    the whole utterance)."""
    kind = kind or str(rng.choice(["white", "pink", "babble"]))
    if kind == "white":
        n = rng.standard_normal(len(wav))
    elif kind == "pink":
        n = _pink(len(wav), rng)
    else:
        n = _babble(wav, rng)
    power = float(np.mean(wav ** 2)) or 1e-10
    n = n * np.sqrt(power / (float(np.mean(n ** 2)) or 1e-10) / 10 ** (rng.uniform(*snr_db) / 10))
    return np.clip(wav + n, -1.0, 1.0).astype(np.float32)


def room_impulse(rng: np.random.Generator, rt60: tuple[float, float] = (0.15, 0.8)) -> np.ndarray:
    """A synthetic room impulse response: the direct sound, then noise decaying by 60 dB in a random
    RT60, darker as it decays (walls absorb the highs)."""
    t60 = float(rng.uniform(*rt60))
    n = int(t60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / t60)
    tail = scipy.signal.sosfilt(scipy.signal.butter(1, float(rng.uniform(2000, 6000)), fs=SAMPLE_RATE, output="sos"),
                                tail)
    tail[: int(0.002 * SAMPLE_RATE)] = 0.0  # the first reflections come a little after the direct sound
    impulse = tail * float(rng.uniform(0.2, 0.8)) / np.sqrt(np.sum(tail ** 2))
    impulse[0] = 1.0
    return impulse


def reverb(wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Speech in a room (`room_impulse`); the direct sound stays at its time, so phones stay put."""
    out = scipy.signal.fftconvolve(wav, room_impulse(rng))[: len(wav)]
    peak = float(np.abs(out).max()) or 1.0
    return (out * min(1.0, float(np.abs(wav).max()) / peak)).astype(np.float32)


def telephone(wav: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """A telephone line: down to 8 kHz, 300-3400 Hz band (zero-phase, so nothing moves in time), back
    to 16 kHz."""
    narrow = scipy.signal.resample_poly(wav, 1, 2)
    band = scipy.signal.butter(6, (300, 3400), btype="bandpass", fs=8000, output="sos")
    narrow = scipy.signal.sosfiltfilt(band, narrow)
    return scipy.signal.resample_poly(narrow, 2, 1)[: len(wav)].astype(np.float32)


def _encode(wav: np.ndarray, codec: str, container: str, rate: int, bit_rate: int) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        stream.bit_rate = bit_rate
        frame = av.AudioFrame.from_ndarray((np.clip(wav, -1, 1) * 32767).astype(np.int16)[None, :], format="s16",
                                           layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buffer.getvalue()


def _decode(data: bytes) -> np.ndarray:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks = []
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().ravel() for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().ravel() for f in resampler.resample(None)]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def _delay(out: np.ndarray, ref: np.ndarray, max_lag: int) -> int:
    """Samples by which `out` lags `ref` (0..max_lag), from their cross-correlation."""
    n = min(len(out), len(ref))
    corr = scipy.signal.correlate(out[:n], ref[:n], mode="full", method="fft")[n - 1: n + max_lag]
    return int(np.argmax(corr))


@functools.cache
def available_codecs() -> tuple[tuple[str, str, int, tuple[int, ...]], ...]:
    """The entries of `CODECS` whose encoder this PyAV build's FFmpeg has."""
    usable = []
    for entry in CODECS:
        try:
            av.codec.Codec(entry[0], "w")
        except (ValueError, av.FFmpegError):  # UnknownCodecError is a ValueError
            continue
        usable.append(entry)
    return tuple(usable)


def codec(wav: np.ndarray, rng: np.random.Generator, name: str | None = None) -> np.ndarray:
    """A round trip through a low-bitrate codec (Opus, MP3, AAC or AMR-NB at 8-24 kbit/s, those of
    `CODECS` this PyAV build has); the codec's delay is measured and taken out, so the speech keeps its
    timing. `name` picks one encoder; ValueError if this build lacks it."""
    choices = [c for c in available_codecs() if name is None or c[0] == name]
    if not choices:
        raise ValueError(f"PyAV's FFmpeg has no {name or 'speech codec'} encoder "
                         f"(usable here: {', '.join(c[0] for c in available_codecs()) or 'none'})")
    encoder, container, rate, bit_rates = choices[int(rng.integers(len(choices)))]
    decoded = _decode(_encode(wav, encoder, container, rate, int(rng.choice(bit_rates))))
    decoded = decoded[_delay(decoded, wav, SAMPLE_RATE // 10):]
    if len(decoded) < len(wav):
        decoded = np.pad(decoded, (0, len(wav) - len(decoded)))
    return decoded[: len(wav)].astype(np.float32)


def augment(wav: np.ndarray, phones: list[Phone], rng: np.random.Generator) -> tuple[np.ndarray, list[Phone]]:
    """Another voice and recording chain for (16 kHz audio, phones): a random subset of speed, pitch,
    reverberation, noise, a telephone line or a codec, and a level change."""
    wav = np.asarray(wav, np.float32)
    if rng.random() < 0.5:
        wav, factor = speed(wav, rng)
        phones = scale_phones(phones, factor)
    if rng.random() < 0.4:
        wav = pitch(wav, rng)
    if rng.random() < 0.3:
        wav = reverb(wav, rng)
    if rng.random() < 0.4:
        wav = noise(wav, rng)
    line = rng.random()
    if line < 0.15:
        wav = telephone(wav)
    elif line < 0.4:
        wav = codec(wav, rng)
    return level(wav, rng), phones
