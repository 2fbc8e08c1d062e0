"""End to end: clips made here from a real face photo, real speech, a tiny random-weight model."""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from conftest import TINY
from PIL import Image

from dck_talking import DCKTalker
from dck_talking.audio import load_audio
from dck_talking.cli import main
from dck_talking.errors import InputError
from dck_talking.examples import FACE, SPEECH
from dck_talking.face import FaceTracker
from dck_talking.image import read_image
from dck_talking.pipeline import TalkingFacePipeline
from dck_talking.video import SYNTHETIC_COMMENT, VideoWriter, iter_frames, probe

WIDTH, HEIGHT, N_FRAMES, BLANK = 320, 240, 40, range(18, 23)


def scene(i: int) -> np.ndarray:
    """Frame i: the face photo, scaled and moved a little each frame, on a flat background;
    frames in BLANK show no face."""
    canvas = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    if i in BLANK:
        return canvas
    size = 150 + i
    face = np.asarray(Image.open(FACE).convert("RGB").resize((size, size * 600 // 512)))[:HEIGHT - 10]
    x, y = 40 + 2 * i, 5
    canvas[y:y + face.shape[0], x:x + size] = face[:, : WIDTH - x]
    return canvas


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("media") / "face.mp4"
    with VideoWriter(path, WIDTH, HEIGHT, 25, comment="test input") as writer:
        for i in range(N_FRAMES):
            writer.write(scene(i))
    return path


@pytest.fixture(scope="module")
def pipe() -> TalkingFacePipeline:
    return TalkingFacePipeline(DCKTalker(**TINY), device="cpu", batch_size=8)


def outside_crop(frame: np.ndarray, margin: float = 6.0) -> np.ndarray:
    """Mask of the pixels outside the face crop's footprint (plus a margin for the smoothing)."""
    with FaceTracker(TINY["image_size"], video=False) as tracker:
        crop = tracker.track(frame, 0)
    ys, xs = np.mgrid[:HEIGHT, :WIDTH]
    u, v = np.tensordot(crop.matrix, np.stack([xs, ys, np.ones_like(xs)]), axes=1)
    size, pad = TINY["image_size"], margin * TINY["image_size"] / 256
    return (u < -pad) | (v < -pad) | (u > size + pad) | (v > size + pad)


def test_video_end_to_end(pipe, clip, tmp_path):
    out = tmp_path / "out.mp4"
    summary = pipe.generate(clip, SPEECH, out)
    assert out.is_file() and summary.output == out

    info = probe(out)
    audio_seconds = len(load_audio(SPEECH)) / 16000
    assert (info.width, info.height, info.fps) == (WIDTH, HEIGHT, 25)
    assert abs(info.duration - audio_seconds) <= 1 / 25 + 1e-6  # as long as the audio, within a frame
    assert summary.frames == info.frames == 88  # 40 source frames, extended by ping-pong
    with av.open(str(out)) as container:
        assert container.metadata["comment"] == SYNTHETIC_COMMENT
        assert container.streams.audio and container.streams.audio[0].codec_context.name == "aac"
        assert container.streams.video[0].codec_context.name == "h264"
    # Ping-pong: output frames 40.. show source frames 38, 37, ...; blank frames 18-22 come twice.
    assert summary.passed_through == 10 and summary.faces == 78

    source = list(iter_frames(clip))
    output = list(iter_frames(out))
    for i in (0, 5, 39):  # outside the crop nothing changes (within codec noise)
        outside = outside_crop(source[i])
        assert outside.mean() > 0.3
        assert np.abs(output[i].astype(int) - source[i])[outside].mean() < 2.0
    for i in BLANK:  # faceless frames pass through (within codec noise)
        assert np.abs(output[i].astype(int) - source[i]).mean() < 2.0
    changed = np.abs(output[10].astype(int) - source[10]).max(axis=2) > 60  # well above codec noise
    assert changed.any()  # the random model did paint something, inside the crop only
    assert not (changed & outside_crop(source[10])).any()


def test_photo_becomes_a_still_video(pipe, tmp_path):
    out = pipe(FACE, SPEECH, tmp_path / "photo.mp4", fps=30)
    info = probe(out)
    assert (info.width, info.height, info.fps) == (512, 600, 30)
    assert abs(info.duration - len(load_audio(SPEECH)) / 16000) <= 1 / 30 + 1e-6


def test_a_photo_larger_than_photo_size_is_scaled_down(pipe, tmp_path):
    short = write_wav(tmp_path / "short.wav", load_audio(SPEECH)[:8000])
    assert (probe(pipe(FACE, short, tmp_path / "small.mp4", photo_size=300)).width,
            probe(tmp_path / "small.mp4").height) == (256, 300)
    assert read_image(FACE, max_side=300).shape == (300, 256, 3) and read_image(FACE, max_side=300).flags.writeable
    assert read_image(FACE, max_side=600).shape == read_image(FACE).shape == (600, 512, 3)
    with pytest.raises(ValueError, match="max_side must be at least 1 pixel, got 0"):
        read_image(FACE, max_side=0)


def test_negative_photo_size_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--face", str(FACE), "--audio", str(SPEECH), "--out", "x.mp4", "--photo-size", "-5"])
    assert exit_info.value.code == 2
    assert "argument --photo-size: must be 0 or a positive number of pixels, got -5" in capsys.readouterr().err


def test_audio_from_a_video_sound_track(pipe, clip, tmp_path):
    speech = pipe(FACE, SPEECH, tmp_path / "speech.mp4")
    out = pipe(clip, speech, tmp_path / "redub.mp4", length="loop")
    assert probe(out).has_audio and abs(probe(out).duration - probe(speech).duration) < 0.05


def test_stream_yields_every_frame_and_passes_faceless_frames(pipe):
    frames = [scene(i) for i in range(12)] + [scene(BLANK[0])] * 3
    out = list(pipe.stream(iter(frames), SPEECH, fps=25))
    assert len(out) == len(frames)
    assert all(np.array_equal(a, b) for a, b in zip(out[12:], frames[12:]))
    assert not np.array_equal(out[0], frames[0])


def test_stream_stopped_early_or_failing_midway_leaves_no_thread_behind(pipe):
    """Tracking and closing run in threads of their own: a consumer that stops early stops them, and
    an error in the frames reaches the consumer; either way the threads are gone afterwards."""
    before = set(threading.enumerate())
    frames = (scene(i % 12) for i in range(200))
    stream = pipe.stream(frames, SPEECH, fps=25)
    assert next(stream).shape == (HEIGHT, WIDTH, 3)
    stream.close()
    assert set(threading.enumerate()) == before

    def broken() -> Iterator[np.ndarray]:
        yield from (scene(i) for i in range(10))
        raise OSError("camera unplugged")

    with pytest.raises(OSError, match="camera unplugged"):
        list(pipe.stream(broken(), SPEECH, fps=25))
    assert set(threading.enumerate()) == before


def write_wav(path: Path, samples: np.ndarray) -> Path:
    sf.write(path, samples.astype(np.float32), 16000)
    return path


@pytest.fixture
def bad_inputs(tmp_path, clip):
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    notes = tmp_path / "notes.mp4"
    notes.write_text("this is not a video")
    broken = np.sin(np.arange(16000) / 10).astype(np.float32)
    broken[8000:8100] = np.nan
    sf.write(tmp_path / "nan.wav", broken, 16000, subtype="FLOAT")  # float WAV: NaN stays NaN
    with VideoWriter(tmp_path / "nobody.mp4", 160, 120, 25) as writer:
        for _ in range(10):
            writer.write(np.full((120, 160, 3), 90, np.uint8))
    return {
        "missing face": (tmp_path / "nope.mp4", SPEECH, "nope.mp4: file not found"),
        "not media": (notes, SPEECH, "notes.mp4: not a readable media file"),
        "corrupt midway": (truncated, SPEECH, "truncated.mp4: "),
        "no face anywhere": (tmp_path / "nobody.mp4", SPEECH, "nobody.mp4: no face found in any frame"),
        "empty audio": (clip, write_wav(tmp_path / "empty.wav", np.zeros(0)), "empty.wav: audio stream is empty"),
        "silent audio": (clip, write_wav(tmp_path / "silent.wav", np.zeros(16000)), "silent.wav: audio is silent"),
        "audio shorter than a frame": (clip, write_wav(tmp_path / "blip.wav", np.full(300, 0.5)),
                                       "blip.wav: audio lasts 19 ms, shorter than one video frame"),
        "audio not media": (clip, notes, "notes.mp4: not a readable media file"),
        "audio not numbers": (clip, tmp_path / "nan.wav",
                              "nan.wav: audio holds samples that are not numbers (NaN or infinite)"),
    }


@pytest.mark.parametrize("case", ["missing face", "not media", "corrupt midway", "no face anywhere", "empty audio",
                                  "silent audio", "audio shorter than a frame", "audio not media",
                                  "audio not numbers"])
def test_bad_input_is_one_line_and_leaves_no_output(pipe, bad_inputs, tmp_path, case, capsys):
    face, audio, message = bad_inputs[case]
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError, match=re.escape(message)):
        pipe(face, audio, out)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_cli_reports_errors_without_traceback(clip, tmp_path, capsys):
    out = tmp_path / "missing-folder" / "out.mp4"
    assert main(["generate", "--face", str(clip), "--audio", str(SPEECH), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"dck-talking: error: {out}: output folder {out.parent} does not exist"
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(("option", "message"), [
    (["--device", "cuda:99"], "argument --device: cuda:99: no such CUDA GPU here"),
    (["--device", "gpu"], "argument --device: gpu: not a device (cpu, cuda, cuda:N or mps)"),
    (["--batch-size", "0"], "argument --batch-size: must be a positive whole number, got 0"),
    (["--fps", "0"], "argument --fps: must be a positive number, got 0"),
])
def test_cli_refuses_options_it_cannot_use_before_any_work(clip, tmp_path, capsys, option, message):
    """--device cuda on a CPU build was an AssertionError from torch; --batch-size 0 said "no face found"."""
    out = tmp_path / "out.mp4"
    with pytest.raises(SystemExit) as exited:
        main(["generate", "--face", str(clip), "--audio", str(SPEECH), "--out", str(out), *option])
    assert exited.value.code == 2 and not out.exists()
    assert message in capsys.readouterr().err


def test_cli_app_refuses_a_port_out_of_range(capsys):
    with pytest.raises(SystemExit):
        main(["app", "--port", "99999"])  # was socket's OverflowError traceback
    assert "argument --port: must be a port number, 1 to 65535, got 99999" in capsys.readouterr().err


def test_pipeline_refuses_a_device_it_does_not_have_and_an_empty_batch():
    with pytest.raises(ValueError, match=r"^cuda:99: no such CUDA GPU here"):
        TalkingFacePipeline(device="cuda:99")
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        TalkingFacePipeline(batch_size=0)


def test_cli_error_midway_starts_a_line_of_its_own(clip, tmp_path, capsys, monkeypatch):
    """The progress bar is closed before the error is printed, not run into it."""
    write = VideoWriter.write

    def full_disk(writer: VideoWriter, frame: np.ndarray) -> None:
        if writer.frames_written == 20:
            raise InputError(writer.path, "cannot write video (No space left on device)")
        write(writer, frame)

    monkeypatch.setattr(VideoWriter, "write", full_disk)
    DCKTalker(**TINY).save_pretrained(tmp_path / "ckpt")
    out = tmp_path / "out.mp4"
    assert main(["generate", "--face", str(clip), "--audio", str(SPEECH), "--out", str(out),
                 "--checkpoint", str(tmp_path / "ckpt")]) == 2
    err = capsys.readouterr().err
    assert "lip-sync:" in err  # the bar had started
    assert err.endswith(f"\ndck-talking: error: {out}: cannot write video (No space left on device)\n")
    assert not out.exists()


def test_a_face_index_past_the_faces_found_says_so(pipe, tmp_path):
    with pytest.raises(InputError, match=r"face\.jpg: only 1 face found, so there is no face 2 \(faces are numbered"):
        pipe(FACE, SPEECH, tmp_path / "out.mp4", face_index=2)
    assert not (tmp_path / "out.mp4").exists()


def test_cli_generate_with_a_checkpoint(clip, tmp_path, capsys):
    DCKTalker(**TINY).save_pretrained(tmp_path / "ckpt")
    out = tmp_path / "cli.mp4"
    code = main(["generate", "--face", str(clip), "--audio", str(SPEECH), "--out", str(out),
                 "--checkpoint", str(tmp_path / "ckpt"), "--length", "freeze", "--batch-size", "4"])
    assert code == 0 and out.is_file()
    summary = capsys.readouterr().out
    assert "88 frames at 25.00 fps" in summary and "passed through unchanged" in summary


def test_rotated_variable_frame_rate_phone_video(pipe, tmp_path):
    """A clip stored sideways with a display rotation (as phones record) and irregular timestamps:
    the output is upright, at the probed constant rate, and the face is found."""
    path = tmp_path / "phone.mp4"
    times_ms = [0, 40, 80, 150, 170, 200, 280, 320, 360, 400, 440, 480]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"bf": "0"})
        stream.width, stream.height, stream.pix_fmt = HEIGHT, WIDTH, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.set_display_rotation(90)  # shown turned 90 degrees counter-clockwise
        for i, t in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(scene(i), k=-1)), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    speech = tmp_path / "short.wav"
    sf.write(speech, load_audio(SPEECH)[:8000], 16000)  # 0.5 s
    summary = pipe.generate(path, speech, tmp_path / "upright.mp4")
    info = probe(tmp_path / "upright.mp4")
    assert (info.width, info.height, info.rotation) == (WIDTH, HEIGHT, 0)
    assert summary.frames == math.ceil(0.5 * info.fps) and summary.faces == summary.frames
    first = next(iter_frames(tmp_path / "upright.mp4"))
    assert np.abs(first[-20:, :30].astype(int) - 90).mean() < 4  # the flat background corner, upright


@pytest.mark.parametrize(("capabilities", "expected"), [
    ({"avx512_bf16": True, "amx_bf16": False}, "bfloat16"),
    ({"avx512_bf16": False, "amx_bf16": True}, "bfloat16"),
    ({"avx512_bf16": False, "amx_bf16": False, "avx2": True}, "float32"),
    ({}, "float32"),
])
def test_on_a_cpu_the_model_runs_in_bf16_only_with_bf16_instructions(monkeypatch, capabilities, expected):
    import torch

    from dck_talking.pipeline import default_dtype

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert default_dtype(torch.device("cpu")) == getattr(torch, expected)
