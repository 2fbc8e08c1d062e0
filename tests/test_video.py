"""Tests for dck_talking.video and dck_talking.image, on small clips and photos made here."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from dck_talking.errors import InputError
from dck_talking.image import is_image, read_image
from dck_talking.video import SYNTHETIC_COMMENT, VideoWriter, count_frames, iter_frames, iter_frames_at, probe

W, H = 64, 48


def pattern(i: int, width: int = W, height: int = H) -> np.ndarray:
    """Frame ``i``: brightness encodes the index, a red ramp fixes orientation, a square moves."""
    frame = np.full((height, width, 3), 30 + 5 * (i % 30), np.int32)
    frame[..., 0] += np.arange(width) * 60 // width
    x = (3 * i) % (width - 8)
    frame[height // 4 : height // 4 + 8, x : x + 8] = 250
    return frame.astype(np.uint8)


def close_to(decoded: np.ndarray, expected: np.ndarray, tolerance: float = 6.0) -> bool:
    """Equal up to codec noise: small mean absolute difference."""
    return decoded.shape == expected.shape and np.abs(decoded.astype(int) - expected).mean() < tolerance


def make_clip(
    path: Path,
    n: int = 30,
    fps: int = 25,
    size: tuple[int, int] = (W, H),
    times_ms: list[int] | None = None,
    rotation: float | None = None,
    tags: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    codec: str = "libx264",
    gop: int = 250,
) -> Path:
    """Encode ``pattern`` frames with PyAV directly; ``times_ms`` gives irregular timestamps."""
    width, height = size
    with av.open(str(path), "w", container_options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=fps, options={"bf": "0", "g": str(gop)} if codec == "libx264" else {})
        stream.width, stream.height = width, height
        stream.pix_fmt = "rgb24" if codec == "png" else "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        stream.metadata.update(tags or {})
        if times_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
            n = len(times_ms)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(pattern(i, width, height), format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[i], Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


def write_video(path: Path, n: int = 30, fps=25, size=(W, H), **kwargs) -> Path:
    width, height = size
    with VideoWriter(path, width, height, fps, **kwargs) as writer:
        writer.write_batch(pattern(i, width, height) for i in range(n))
    return path


def tone(seconds: float, sample_rate: int = 16000) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


# --- reading -------------------------------------------------------------------------------


def test_probe_and_frames_round_trip(clip):
    info = probe(clip)
    assert (info.width, info.height, info.fps, info.frames) == (W, H, Fraction(25), 30)
    assert info.duration == pytest.approx(1.2)
    assert info.rotation == 0 and not info.has_audio
    frames = list(iter_frames(clip))
    assert len(frames) == 30
    assert all(f.dtype == np.uint8 and f.shape == (H, W, 3) for f in frames)
    assert all(close_to(f, pattern(i)) for i, f in enumerate(frames))


@pytest.mark.parametrize("fps, source_index", [(50, lambda n: n // 2), (12.5, lambda n: 2 * n)])
def test_iter_frames_resamples_to_requested_fps(clip, fps, source_index):
    frames = list(iter_frames(clip, fps=fps))
    assert len(frames) == round(1.2 * fps)
    assert all(close_to(f, pattern(source_index(n))) for n, f in enumerate(frames))


def test_duplicated_frames_are_independent_arrays(tmp_path):
    # PNG-coded video decodes straight to RGB, the case where PyAV returns a view of its buffer.
    path = make_clip(tmp_path / "rgb.mov", n=3, codec="png")
    frames = list(iter_frames(path, fps=50))
    assert len(frames) == 6 and (frames[0] == pattern(0)).all()
    frames[0][:] = 0
    assert (frames[1] == pattern(0)).all()


def test_variable_frame_rate_becomes_constant(tmp_path):
    # Frame k shows at times_ms[k]: a gap after 80 ms, dense frames around 200 ms.
    path = make_clip(tmp_path / "vfr.mp4", times_ms=[0, 40, 80, 200, 210, 230, 310, 400])
    # At 25 fps slot n covers n*40 ms; it shows the latest frame whose time rounds to <= n.
    frames = list(iter_frames(path, fps=25))
    assert len(frames) == 11  # the last frame (400 ms) is held for its 40 ms duration
    assert count_frames(path, fps=25) == 11
    expected = [0, 1, 2, 2, 2, 4, 5, 5, 6, 6, 7]
    assert all(close_to(f, pattern(k)) for f, k in zip(frames, expected))
    info = probe(path)
    with av.open(str(path)) as container:
        assert info.fps == container.streams.video[0].average_rate
    assert len(list(iter_frames(path))) == info.frames


@pytest.mark.parametrize("ccw, clockwise", [(90, 270), (-90, 90), (180, 180)])
def test_display_matrix_rotation_is_applied(tmp_path, ccw, clockwise):
    path = make_clip(tmp_path / "rot.mp4", n=5, rotation=ccw)
    info = probe(path)
    assert info.rotation == clockwise
    assert (info.width, info.height) == ((H, W) if ccw % 180 else (W, H))
    frames = list(iter_frames(path))
    assert len(frames) == 5
    assert all(close_to(f, np.rot90(pattern(i), k=ccw // 90)) for i, f in enumerate(frames))


def test_rotate_tag_is_applied(tmp_path):
    # Legacy convention: "rotate" is the clockwise angle the player applies.
    path = make_clip(tmp_path / "tag.mkv", n=5, tags={"rotate": "90"})
    info = probe(path)
    assert (info.rotation, info.width, info.height) == (90, H, W)
    assert all(close_to(f, np.rot90(pattern(i), k=-1)) for i, f in enumerate(iter_frames(path)))


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc to read RSS")
def test_memory_does_not_grow_with_length(tmp_path):
    # Decoded frames live in FFmpeg buffers that tracemalloc cannot see, so watch the process RSS.
    def rss_growth_while_iterating(path: Path) -> int:
        base = peak = rss_bytes()
        for _ in iter_frames(path):
            peak = max(peak, rss_bytes())
        return peak - base

    short = make_clip(tmp_path / "short.mp4", n=30, size=(320, 240))
    long = make_clip(tmp_path / "long.mp4", n=300, size=(320, 240))  # 300 frames hold 69 MB
    rss_growth_while_iterating(short)  # warm up decoder libraries and allocator pools
    assert rss_growth_while_iterating(long) < rss_growth_while_iterating(short) + 20_000_000


# --- writing -------------------------------------------------------------------------------


@pytest.mark.parametrize("audio_seconds", [None, 0.5, 2.0])
def test_writer_round_trip(tmp_path, audio_seconds):
    audio = None if audio_seconds is None else tone(audio_seconds)
    path = write_video(tmp_path / "out.mp4", audio=audio)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary file left
    info = probe(path)
    assert (info.width, info.height, info.fps, info.frames) == (W, H, Fraction(25), 30)
    assert info.has_audio == (audio is not None)
    assert all(close_to(f, pattern(i)) for i, f in enumerate(iter_frames(path)))
    with av.open(str(path)) as container:
        assert container.metadata["comment"] == SYNTHETIC_COMMENT
        video = container.streams.video[0]
        assert (video.codec_context.name, video.codec_context.pix_fmt) == ("h264", "yuv420p")
        if audio is not None:  # trimmed or padded with silence to the video's 1.2 s
            stream = container.streams.audio[0]
            assert (stream.codec_context.name, stream.sample_rate) == ("aac", 16000)
            assert float(stream.duration * stream.time_base) == pytest.approx(1.2, abs=1 / 25)
            samples = sum(frame.samples for frame in container.decode(stream))
            assert samples / 16000 == pytest.approx(1.2, abs=1 / 25)


def test_writer_custom_comment_and_fractional_fps(tmp_path):
    path = write_video(tmp_path / "ntsc.mp4", n=10, fps=Fraction(30000, 1001), comment="made by a test")
    assert probe(path).fps == Fraction(30000, 1001)
    with av.open(str(path)) as container:
        assert container.metadata["comment"] == "made by a test"


def test_writer_pads_odd_sizes_by_repeating_the_edge(tmp_path):
    path = write_video(tmp_path / "odd.mp4", n=5, size=(63, 47))
    info = probe(path)
    assert (info.width, info.height) == (64, 48)
    for i, frame in enumerate(iter_frames(path)):
        assert close_to(frame[:47, :63], pattern(i, 63, 47))
        assert close_to(frame[:, 63], frame[:, 62]) and close_to(frame[47], frame[46])


def test_writer_exception_leaves_nothing(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(path, W, H, 25, audio=tone(1.0)) as writer:
            writer.write(pattern(0))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_without_frames_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="no frames"):
        with VideoWriter(tmp_path / "out.mp4", W, H, 25):
            pass
    assert list(tmp_path.iterdir()) == []


def test_writer_rejects_wrong_frames(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        with VideoWriter(tmp_path / "out.mp4", W, H, 25) as writer:
            writer.write(np.zeros((W, H, 3), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_writer_missing_output_folder(tmp_path):
    path = tmp_path / "missing" / "out.mp4"
    with pytest.raises(InputError, match="output folder") as raised:
        VideoWriter(path, W, H, 25)
    assert str(raised.value).startswith(str(path))
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize(("name", "problem"), [
    ("out.gif", "cannot write H.264 video to a .gif file: name it .mp4, .mov, .mkv, .m4v"),
    ("out.nosuchformat", "cannot write H.264 video to a .nosuchformat file: name it .mp4, .mov, .mkv, .m4v"),
    ("out", "cannot write H.264 video to a file without an extension: name it .mp4, .mov, .mkv, .m4v"),
    (".", "is a folder; give the video's file name, such as out.mp4"),
    ("folder", "is a folder; give the video's file name, such as out.mp4"),
])
def test_writer_refuses_an_output_it_cannot_write(tmp_path, monkeypatch, name, problem):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    with pytest.raises(InputError) as raised:
        VideoWriter(Path(name), W, H, 25)
    assert str(raised.value) == f"{name}: {problem}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]
    with VideoWriter(tmp_path / "OUT.MKV", W, H, 25) as writer:  # any case; Matroska holds H.264 too
        writer.write(pattern(0))
    assert count_frames(tmp_path / "OUT.MKV") == 1


# --- bad input -----------------------------------------------------------------------------


def read_everything(path: Path) -> int:
    """Probe and decode a whole file; InputError is the only exception allowed out."""
    probe(path)
    return sum(1 for _ in iter_frames(path))


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.mp4"
    for read in (probe, lambda p: next(iter_frames(p)), read_image, is_image):
        with pytest.raises(InputError, match="file not found") as raised:
            read(missing)
        assert str(raised.value) == f"{missing}: file not found"


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(InputError, match="not a file"):
        probe(tmp_path)


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(InputError, match="not a readable media file"):
        probe(path)
    with pytest.raises(InputError, match="not a readable media file"):
        list(iter_frames(path))
    assert not is_image(path)
    with pytest.raises(InputError, match="not a readable image"):
        read_image(path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "speech.wav"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), format="s16", layout="mono")
        frame.sample_rate = 16000
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    with pytest.raises(InputError, match="no video stream"):
        probe(path)
    with pytest.raises(InputError, match="no video stream"):
        list(iter_frames(path))


def test_truncated_mp4_with_index_at_end(tmp_path):
    path = write_video(tmp_path / "full.mp4", audio=tone(1.2))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the moov index at the end is gone
    with pytest.raises(InputError):
        read_everything(path)


@pytest.mark.parametrize("damage", ["truncate", "garble"])
def test_damaged_mp4_with_index_first(tmp_path, damage):
    path = make_clip(tmp_path / "fast.mp4", n=60, container_options={"movflags": "faststart"})
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3 : len(data) // 3 + 2000] = np.random.default_rng(0).bytes(2000)
    path.write_bytes(bytes(data))
    try:
        frames = read_everything(path)
    except InputError:
        return
    assert 0 < frames <= 60


# --- photos --------------------------------------------------------------------------------


def halves(width: int, height: int, left, right, mode: str = "RGB") -> Image.Image:
    image = Image.new(mode, (width, height), left)
    image.paste(right, (width // 2, 0, width, height))
    return image


def test_read_image_applies_exif_orientation(tmp_path):
    path = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display after turning 90 degrees clockwise
    halves(40, 20, (255, 0, 0), (0, 0, 255)).save(path, exif=exif, quality=95)
    rgb = read_image(path)
    assert rgb.shape == (40, 20, 3) and rgb.dtype == np.uint8
    # The left (red) half is now on top; rows near the JPEG colour boundary are left out.
    assert np.allclose(rgb[:16].mean(axis=(0, 1)), [255, 0, 0], atol=10)
    assert np.allclose(rgb[24:].mean(axis=(0, 1)), [0, 0, 255], atol=10)


@pytest.mark.parametrize("suffix, options", [(".png", {}), (".webp", {"lossless": True})])
def test_read_image_composites_alpha_on_white(tmp_path, suffix, options):
    path = tmp_path / f"cutout{suffix}"
    halves(20, 10, (255, 0, 0, 0), (0, 0, 255, 255), "RGBA").save(path, **options)
    rgb = read_image(path)
    assert rgb.shape == (10, 20, 3)
    assert (rgb[:, :10] == 255).all() and (rgb[:, 10:] == [0, 0, 255]).all()


def test_read_image_converts_grayscale_and_palette(tmp_path):
    ramp = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (4, 1))
    Image.fromarray(ramp, "L").save(tmp_path / "gray.png")
    Image.fromarray(ramp.astype(np.uint16) * 257).save(tmp_path / "gray16.png")
    Image.fromarray(ramp, "L").convert("P").save(tmp_path / "palette.bmp")
    for name in ("gray.png", "gray16.png", "palette.bmp"):
        rgb = read_image(tmp_path / name)
        assert rgb.dtype == np.uint8 and rgb.shape == (4, 16, 3)
        assert (rgb == ramp[..., None]).all(), name


def test_is_image_reads_content_not_extension(tmp_path, clip):
    halves(8, 8, (255, 0, 0), (0, 255, 0)).save(tmp_path / "photo.png")
    (tmp_path / "photo.mp4").write_bytes((tmp_path / "photo.png").read_bytes())
    (tmp_path / "video.jpg").write_bytes(clip.read_bytes())
    frames = [halves(8, 8, (i * 80, 0, 0), (0, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "animated.gif", save_all=True, append_images=frames[1:])
    assert is_image(tmp_path / "photo.png") and is_image(tmp_path / "photo.mp4")
    assert not is_image(clip) and not is_image(tmp_path / "video.jpg")
    assert not is_image(tmp_path / "animated.gif")
    assert read_image(tmp_path / "photo.mp4").shape == (8, 8, 3)


def test_a_photo_too_large_to_read_is_a_photo_and_a_one_line_error(tmp_path, monkeypatch):
    """Pillow refuses pictures over twice `MAX_IMAGE_PIXELS` (179 M by default) as possible decompression bombs; a
    192 MP photo was then taken for a video, decoded at full size for every frame, and the process ran out of
    memory. Here the limit is lowered to 32 pixels instead of writing 192 MP."""
    halves(8, 16, (255, 0, 0), (0, 255, 0)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 32)
    assert is_image(tmp_path / "big.png")
    with pytest.raises(InputError, match=r"big\.png: not a readable image \(Image size \(128 pixels\) exceeds limit"):
        read_image(tmp_path / "big.png", max_side=1920)


def test_start_seeks_to_the_same_frames(tmp_path):
    path = make_clip(tmp_path / "gop.mp4", n=60, gop=12)
    frames = list(iter_frames(path))
    assert count_frames(path) == len(frames) == 60
    for start in (0, 1, 13, 37, 59):
        assert all(np.array_equal(a, b) for a, b in zip(iter_frames(path, start=start), frames[start:]))
        assert len(list(iter_frames(path, start=start))) == 60 - start
    assert list(iter_frames(path, start=70)) == []


def test_frames_at_any_order_match_sequential_decoding(tmp_path):
    path = make_clip(tmp_path / "gop.mp4", n=40, gop=10)
    frames = list(iter_frames(path))
    order = [0, 1, 2, 39, 38, 37, 20, 19, 5, 6, 50, 0, 39, 0]  # 50 is past the end: the last frame
    got = list(iter_frames_at(path, order, window=8))
    assert all(np.array_equal(g, frames[min(i, 39)]) for g, i in zip(got, order))
