"""Audio front end, compatible with Wav2Lip so its pretrained audio encoder can be imported.

`load_audio` decodes the sound of any file FFmpeg reads (through PyAV, no system ffmpeg),
`melspectrogram` is the Wav2Lip recipe (DESIGN §2) and `frame_windows` cuts the 16-step
mel window that belongs to each video frame.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .errors import InputError

if TYPE_CHECKING:
    import av

SAMPLE_RATE = 16000
N_FFT = 800
HOP = 200
N_MELS = 80
FMIN = 55.0
FMAX = 7600.0
PREEMPHASIS = 0.97
REF_LEVEL_DB = 20.0
MIN_LEVEL_DB = -100.0
MAX_ABS = 4.0
MEL_STEPS_PER_SECOND = SAMPLE_RATE // HOP  # 80
WINDOW = 16  # mel steps per frame window (0.2 s)
SILENCE = -MAX_ABS  # the normalised value of silence (and of padding)
DB_PER_UNIT = -MIN_LEVEL_DB / (2 * MAX_ABS)  # 12.5 dB per unit of the normalised mel



@functools.cache
def _mel_basis() -> np.ndarray:
    import librosa  # loaded on first use: training from stored mels needs no audio library

    return librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX)


@functools.cache
def mel_band_hz() -> np.ndarray:
    """(80,) centre frequency of each mel band, in Hz: points evenly spaced on the Slaney mel scale
    (linear below 1 kHz, logarithmic above, as librosa's filters use), without the two edges. Plain
    arithmetic, so code that only reads stored mels needs no audio library."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, log_step = min_log_hz / f_sp, np.log(6.4) / 27.0

    def to_mel(hz: float) -> float:
        return hz / f_sp if hz < min_log_hz else min_log_mel + np.log(hz / min_log_hz) / log_step

    mels = np.linspace(to_mel(FMIN), to_mel(FMAX), N_MELS + 2)[1:-1]
    return np.where(mels < min_log_mel, mels * f_sp, min_log_hz * np.exp(log_step * (mels - min_log_mel)))


def load_audio(path: str | Path, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode the first audio stream of `path` to mono float32 at `sr` Hz.

    Works for audio files (wav, flac, mp3, ogg, m4a, ...) and the sound track of video
    containers (mp4, mov, mkv, webm). Raises `InputError` naming the file otherwise.
    """
    import av  # media decoding only here: the rest of the front end (training) runs without PyAV

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        container = av.open(str(path))
    except av.FFmpegError as exc:
        raise InputError(path, f"not a readable media file ({exc.strerror or exc})") from None
    with container:
        if not container.streams.audio:
            raise InputError(path, "has no audio stream")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        # Resample in planar float, then average the channels (FFmpeg's own downmix scales by 1/sqrt(2)).
        resampler = av.AudioResampler(format="fltp", rate=sr)
        samples = _Samples(_expected_samples(container, stream, sr))
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    samples.append(out.to_ndarray().mean(axis=0))
            for out in resampler.resample(None):
                samples.append(out.to_ndarray().mean(axis=0))
        except av.FFmpegError as exc:
            raise InputError(path, f"audio stream cannot be decoded ({exc.strerror or exc})") from None
    return samples.array()


class _Samples:
    """A growing float32 buffer, sized up front from the container's duration, so decoding a long
    recording does not hold it twice (a list of chunks plus their concatenation)."""

    def __init__(self, expected: int) -> None:
        self.buffer = np.empty(max(expected, 1), dtype=np.float32)
        self.size = 0

    def append(self, chunk: np.ndarray) -> None:
        if self.size + len(chunk) > len(self.buffer):
            self.buffer = np.resize(self.buffer, max(2 * len(self.buffer), self.size + len(chunk)))
        self.buffer[self.size: self.size + len(chunk)] = chunk
        self.size += len(chunk)

    def array(self) -> np.ndarray:
        return self.buffer[: self.size]


def _expected_samples(container: av.container.InputContainer, stream: av.AudioStream, sr: int) -> int:
    """Samples the decoded stream should have at `sr` Hz, plus a second of slack; 0 when unknown."""
    import av

    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / av.time_base
    else:
        return 0
    return int((seconds + 1) * sr)


def melspectrogram(wav: np.ndarray, chunk_steps: int = 4096) -> np.ndarray:
    """Normalised log-mel spectrogram, shape (80, T) with T = len(wav) // 200 + 1, values in [-4, 4].

    Computed `chunk_steps` columns at a time (the same numbers as one centred STFT), so hours of
    audio need little more memory than the waveform itself.
    """
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n,), got {wav.shape}")
    if len(wav) == 0:
        return np.full((N_MELS, 1), SILENCE, dtype=np.float32)
    from librosa import stft

    n_steps = len(wav) // HOP + 1
    mel = np.empty((N_MELS, n_steps), dtype=np.float32)
    for first in range(0, n_steps, chunk_steps):
        last = min(first + chunk_steps, n_steps)
        segment = _emphasised(wav, first * HOP - N_FFT // 2, (last - 1) * HOP + N_FFT // 2)
        spec = np.abs(stft(segment, n_fft=N_FFT, hop_length=HOP, win_length=N_FFT, window="hann",
                                   center=False))
        db = 20.0 * np.log10(np.maximum(1e-5, _mel_basis() @ spec)) - REF_LEVEL_DB
        mel[:, first:last] = np.clip(2 * MAX_ABS * (db - MIN_LEVEL_DB) / -MIN_LEVEL_DB - MAX_ABS, -MAX_ABS, MAX_ABS)
    return mel


def _emphasised(wav: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Samples `start .. stop - 1` of the pre-emphasised signal, padded past its ends as a centred
    STFT pads: reflected (Wav2Lip's librosa 0.7; librosa >= 0.10 would pad with zeros), or zeros for
    a signal shorter than half a window, which cannot be reflected."""
    n = len(wav)
    index = np.arange(start, stop)
    inside = (index >= 0) & (index < n)
    if n > N_FFT // 2:
        index = np.abs(index)
        index = np.where(index > n - 1, 2 * (n - 1) - index, index)
        inside[:] = True
    index = np.clip(index, 0, n - 1)
    previous = np.where(index > 0, wav[np.maximum(index - 1, 0)], 0.0)
    return np.where(inside, wav[index] - PREEMPHASIS * previous, 0.0).astype(np.float32)


def window_starts(n_frames: int, fps: float | Fraction, n_steps: int, first: int = 0) -> np.ndarray:
    """Start index of the 16-step window of frames `first .. first + n_frames - 1`:
    `int(i * 80 / fps)`, right-aligned at the end of the spectrogram.

    Integer and `Fraction` rates are computed exactly (no float rounding at 25 or 30 fps).
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    rate = Fraction(fps) if isinstance(fps, (int, Fraction)) else Fraction(fps).limit_denominator(100000)
    frames = range(first, first + n_frames)
    starts = np.array([math.floor(i * MEL_STEPS_PER_SECOND / rate) for i in frames], dtype=np.int64)
    return np.minimum(starts, max(n_steps - WINDOW, 0))


def frame_windows(mel: np.ndarray, n_frames: int, fps: float | Fraction, first: int = 0, lead: int = 0) -> torch.Tensor:
    """The mel windows of video frames `first .. first + n_frames - 1`, shape (n_frames, 1, 80, 16).

    A frame's window starts `lead` mel steps before its time (0: at it; sound before the start is
    silence). Audio shorter than one window is padded with silence, so the result is always finite.
    """
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 2 or mel.shape[0] != N_MELS:
        raise ValueError(f"expected a mel spectrogram of shape (80, T), got {mel.shape}")
    if not 0 <= lead < WINDOW:
        raise ValueError(f"lead must be 0..{WINDOW - 1} mel steps, got {lead}")
    mel = np.pad(mel, ((0, 0), (lead, max(0, WINDOW - lead - mel.shape[1]))), constant_values=SILENCE)
    mel = np.nan_to_num(mel, nan=SILENCE, posinf=MAX_ABS, neginf=-MAX_ABS)
    starts = window_starts(n_frames, fps, mel.shape[1], first)
    index = starts[:, None] + np.arange(WINDOW)[None, :]  # (n_frames, 16)
    windows = mel[:, index].transpose(1, 0, 2)  # (n_frames, 80, 16)
    return torch.from_numpy(np.ascontiguousarray(windows)).unsqueeze(1)
