import math
from fractions import Fraction

import av
import numpy as np
import pytest
import soundfile as sf

from dck_talking.audio import frame_windows, load_audio, melspectrogram, window_starts
from dck_talking.errors import InputError

SR, N_FFT = 16000, 800


def slaney_mel_filters(n_mels=80, fmin=55.0, fmax=7600.0):
    """Slaney-style mel filters written from the formula (linear below 1 kHz, log above, area-normalised)."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0

    def hz_to_mel(f):
        return f / f_sp if f < min_log_hz else min_log_mel + math.log(f / min_log_hz) / logstep

    def mel_to_hz(m):
        return m * f_sp if m < min_log_mel else min_log_hz * math.exp(logstep * (m - min_log_mel))

    lo, hi = hz_to_mel(fmin), hz_to_mel(fmax)
    edges = [mel_to_hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    bins = np.arange(N_FFT // 2 + 1) * SR / N_FFT
    filters = np.zeros((n_mels, len(bins)))
    for m in range(n_mels):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        rising = (bins - left) / (centre - left)
        falling = (right - bins) / (right - centre)
        filters[m] = np.maximum(0, np.minimum(rising, falling)) * 2.0 / (right - left)
    return filters


def test_mel_of_a_sine_matches_the_hand_derivation():
    # A sine exactly on FFT bin k: after a periodic Hann window its spectrum is A*g*N/4 at k and
    # A*g*N/8 at k +- 1 (zero elsewhere), where g is the pre-emphasis filter's gain at that frequency.
    k, amplitude = 50, 0.5
    freq = k * SR / N_FFT  # 1000 Hz
    t = np.arange(SR) / SR
    mel = melspectrogram((amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32))
    assert mel.shape == (80, SR // 200 + 1)

    omega = 2 * np.pi * freq / SR
    gain = abs(1 - 0.97 * np.exp(-1j * omega))
    spectrum = np.zeros(N_FFT // 2 + 1)
    spectrum[k] = amplitude * gain * N_FFT / 4
    spectrum[k - 1] = spectrum[k + 1] = amplitude * gain * N_FFT / 8
    db = 20 * np.log10(np.maximum(1e-5, slaney_mel_filters() @ spectrum)) - 20
    expected = np.clip(8 * (db + 100) / 100 - 4, -4, 4)

    middle = mel[:, 10:-10]  # frames whose window lies inside the signal
    np.testing.assert_allclose(middle, np.repeat(expected[:, None], middle.shape[1], 1), atol=2e-3)
    assert expected.max() > 0 and (expected == -4).sum() > 60  # a peak band, and silence elsewhere


def test_silence_and_empty_audio_are_the_floor_value():
    np.testing.assert_array_equal(melspectrogram(np.zeros(1600, np.float32)), -4.0)
    assert melspectrogram(np.zeros(0, np.float32)).shape == (80, 1)


def test_window_starts_at_25_and_30_fps():
    # int(i * 80 / fps): 3.2 steps per frame at 25 fps, 8/3 at 30 fps, computed exactly.
    assert window_starts(6, 25, 1000).tolist() == [0, 3, 6, 9, 12, 16]
    assert window_starts(7, 30, 1000).tolist() == [0, 2, 5, 8, 10, 13, 16]
    ntsc = window_starts(4, Fraction(30000, 1001), 1000).tolist()
    assert ntsc == [math.floor(i * 80 * 1001 / 30000) for i in range(4)]
    assert window_starts(4, 29.97, 1000).tolist() == [0, 2, 5, 8]


def test_frame_windows_slices_and_right_aligns():
    mel = np.tile(np.arange(100, dtype=np.float32), (80, 1))  # each column holds its index
    windows = frame_windows(mel, 35, fps=25)
    assert windows.shape == (35, 1, 80, 16)
    assert windows[5, 0, 0, 0].item() == 16 and windows[5, 0, 3, 15].item() == 31
    # Frame 30 would start at 96 > 100 - 16: the last windows end at the spectrogram's end.
    assert windows[30, 0, 0].tolist() == list(range(84, 100))
    assert frame_windows(mel, 5, fps=25, first=28).tolist() == windows[28:33].tolist()  # in chunks


def test_frame_windows_with_a_lead_hold_sound_before_the_frame():
    mel = np.tile(np.arange(100, dtype=np.float32), (80, 1))
    windows = frame_windows(mel, 35, fps=25, lead=6)
    assert windows[5, 0, 0].tolist() == list(range(10, 26))  # frame 5 is at step 16: 6 steps before it
    assert windows[0, 0, 0, :6].tolist() == [-4.0] * 6 and windows[0, 0, 0, 6:].tolist() == list(range(10))
    assert windows[34, 0, 0].tolist() == list(range(84, 100))  # the end is still the spectrogram's end
    with pytest.raises(ValueError, match="lead must be 0..15 mel steps"):
        frame_windows(mel, 1, fps=25, lead=16)


def test_frame_windows_pads_short_audio_without_nan():
    mel = melspectrogram(np.random.default_rng(0).normal(size=300).astype(np.float32))
    assert mel.shape[1] < 16
    windows = frame_windows(mel, 3, fps=25)
    assert windows.shape == (3, 1, 80, 16)
    assert np.isfinite(windows.numpy()).all()
    assert (windows[:, :, :, mel.shape[1]:] == -4).all()


def write_with_av(path, codec, rate=44100, seconds=1.0, video=False):
    """A 440 Hz stereo tone in `path`, encoded by PyAV with `codec` (and a video track if asked)."""
    with av.open(str(path), "w") as out:
        if video:
            vstream = out.add_stream("libx264", rate=25)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 64, "yuv420p"
        stream = out.add_stream(codec, rate=rate, layout="stereo")
        t = np.arange(int(rate * seconds)) / rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        fmt = stream.codec_context.codec.audio_formats[0].name
        step = stream.codec_context.frame_size or 1024
        for start in range(0, len(tone), step):
            chunk = np.stack([tone[start:start + step]] * 2)
            frame = av.AudioFrame.from_ndarray(chunk if fmt.endswith("p") else chunk.T.reshape(1, -1).copy(),
                                               format="fltp" if fmt.endswith("p") else "flt", layout="stereo")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
            if video and start % 1764 < step:
                image = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
                for packet in vstream.encode(image):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if video:
            for packet in vstream.encode(None):
                out.mux(packet)


@pytest.mark.parametrize("suffix,codec", [(".flac", "flac"), (".mp3", "libmp3lame"), (".ogg", "libopus"), (".webm", "libopus"),
                                          (".m4a", "aac"), (".mkv", "libopus")])
def test_load_audio_formats(tmp_path, suffix, codec):
    if codec not in av.codecs_available:
        pytest.skip(f"PyAV has no {codec} encoder to make the test file")
    path = tmp_path / f"tone{suffix}"
    write_with_av(path, codec, rate=48000 if "opus" in codec else 44100)
    wav = load_audio(path)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert abs(len(wav) - 16000) < 1600  # encoder padding is a few ms
    spectrum = np.abs(np.fft.rfft(wav[2000:10000]))
    assert np.argmax(spectrum) * 16000 / 8000 == pytest.approx(440, abs=4)


def test_load_audio_wav_resamples_and_downmixes(tmp_path):
    t = np.arange(22050) / 22050
    stereo = np.stack([np.sin(2 * np.pi * 300 * t), np.sin(2 * np.pi * 300 * t)], axis=1) * 0.5
    sf.write(tmp_path / "a.wav", stereo, 22050, subtype="PCM_16")
    wav = load_audio(tmp_path / "a.wav")
    assert len(wav) == pytest.approx(16000, abs=20)
    assert np.abs(wav).max() == pytest.approx(0.5, abs=0.02)


def test_load_audio_from_a_video_sound_track(tmp_path):
    write_with_av(tmp_path / "clip.mp4", "aac", video=True)
    assert abs(len(load_audio(tmp_path / "clip.mp4")) - 16000) < 1600


def test_load_audio_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="missing.wav: file not found"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "notes.wav").write_text("not audio at all")
    with pytest.raises(InputError, match="notes.wav: not a readable media file"):
        load_audio(tmp_path / "notes.wav")
    with av.open(str(tmp_path / "silent.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for _ in range(5):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    with pytest.raises(InputError, match="silent.mp4: has no audio stream"):
        load_audio(tmp_path / "silent.mp4")


@pytest.mark.parametrize("n_samples", [300, 401, 16037])
def test_chunked_mel_equals_one_centred_librosa_stft(n_samples):
    import librosa
    import scipy.signal

    from dck_talking.audio import _mel_basis

    wav = np.random.default_rng(1).normal(scale=0.3, size=n_samples).astype(np.float32)
    emphasised = scipy.signal.lfilter([1, -0.97], [1], wav)
    pad_mode = "reflect" if n_samples > 400 else "constant"
    spec = np.abs(librosa.stft(emphasised, n_fft=800, hop_length=200, window="hann", center=True, pad_mode=pad_mode))
    reference = np.clip(8 * (20 * np.log10(np.maximum(1e-5, _mel_basis() @ spec)) - 20 + 100) / 100 - 4, -4, 4)
    np.testing.assert_allclose(melspectrogram(wav, chunk_steps=7), reference, atol=1e-4)
    np.testing.assert_allclose(melspectrogram(wav), reference, atol=1e-4)


def test_sample_buffer_grows_past_its_estimate():
    from dck_talking.audio import _Samples

    chunks = [np.arange(i, i + 5, dtype=np.float32) for i in range(0, 50, 5)]
    samples = _Samples(expected=3)
    for chunk in chunks:
        samples.append(chunk)
    np.testing.assert_array_equal(samples.array(), np.concatenate(chunks))
