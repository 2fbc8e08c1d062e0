"""`TalkingFacePipeline`: face video or photo + speech -> lip-synced video, streaming end to end.

reader (frames at a constant rate) -> face tracker (crop transforms) -> crop to the model size, the
face's own open mouth closed (`closed_mouth`) -> batch on the device -> DCKTalker -> paste the motion
image back under its attention mask (and the closed lips where the mask leaves them) -> writer
(H.264 + AAC). The audio is turned into mel windows once up front; frames flow through in
batches, so memory does not grow with the length of the video. Crops are cut and pasted on the CPU
with OpenCV, so only 256x256 crops travel to the model's device and back.

Media I/O (PyAV) is imported on first use: this module also serves the model-only benchmark.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import islice, repeat
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import audio as audio_lib
from .closed_mouth import MouthInput, close_mouth
from .errors import InputError
from .face import (CropTransform, Face, FaceFinder, FaceTracker, crop_image, crop_to_frame, feather_mask, paste_image,
                   to_uint8)
from .model import DCKTalker
from .timeline import POLICIES, output_frame_count, source_indices

PHOTO_FPS = 25
BATCH_SIZE = 8  # frames per model call: on a CPU the model stage costs about 40% less a frame than at 1
# Long side of the video made from a photo: a 12 MP phone photo at full size makes an H.264 level-6
# video that phones and many browsers cannot play, and renders at a quarter of the speed.
PHOTO_SIZE = 1920
SILENCE_PEAK = 1e-4  # a peak below this (about -80 dBFS) counts as silent audio

Progress = Callable[[int, int], None]


class StageTimes(dict):
    """Seconds spent per pipeline stage; `with times("model"): ...` adds to a stage."""

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self[stage] = self.get(stage, 0.0) + time.perf_counter() - start

    def call(self, stage: str, function: Callable, *args: object) -> object:
        """`function(*args)`, timed as `stage`."""
        with self(stage):
            return function(*args)

    def timed(self, items: Iterable, stage: str) -> Iterator:
        """`items`, with the time taken to produce each one added to `stage`."""
        iterator, end = iter(items), object()
        while True:
            with self(stage):
                item = next(iterator, end)
            if item is end:
                return
            yield item


@dataclass
class Summary:
    """What one generation did."""

    output: Path
    frames: int = 0
    faces: int = 0
    passed_through: int = 0
    most_faces: int = 0  # the most faces found in one frame (all of them, not only the one lip-synced)
    seconds: float = 0.0
    fps_source: float = 0.0
    stage_seconds: StageTimes = field(default_factory=StageTimes)

    @property
    def fps_achieved(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return (f"{self.output}: {self.frames} frames at {self.fps_source:.2f} fps, face found in {self.faces}, "
                f"{self.passed_through} passed through unchanged; {self.fps_achieved:.1f} frames/s")


def check_device(device: str | torch.device) -> torch.device:
    """`device` as a torch.device this machine has, else a ValueError saying what is missing."""
    try:
        checked = torch.device(device)
    except RuntimeError:
        raise ValueError(f"{device}: not a device (cpu, cuda, cuda:N or mps)") from None
    if checked.type == "cuda" and not (torch.cuda.is_available() and (checked.index or 0) < torch.cuda.device_count()):
        build = "" if torch.version.cuda else " (this PyTorch is a CPU build)"
        raise ValueError(f"{device}: no such CUDA GPU here{build}")
    if checked.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{device}: Apple's MPS is not available here")
    return checked


def default_device() -> torch.device:
    """CUDA, then Apple MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """Autocast precision: bf16 on GPUs that support it, fp16 on other GPUs; on the CPU bf16 where it
    has bf16 instructions (AVX512-BF16 or AMX; measured on a 2-core one: the model 1.3-1.5 times faster,
    the whole pipeline 10% faster alone and 1.7 times beside a training run, its pasted pixels within 3
    grey levels of fp32's, 62 dB apart), else fp32 (without them bf16 is emulated and slower)."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_has_bf16() else torch.float32


def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX512-BF16 or AMX-BF16)."""
    capabilities = torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def precision(device_type: str, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` on `device_type`, or nothing for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, dtype=dtype)


class TalkingFacePipeline:
    """Detection, crop, inference and blending around a `DCKTalker`.

    `pipe(face, audio, output)` renders a file and returns the output path; `pipe.stream(frames,
    audio, fps)` yields frames as they are ready, `batch_size` frames behind its input.
    `close_mouth`: the face's own open mouth is closed before the network sees it (`closed_mouth`);
    False feeds the crop as it is.
    """

    def __init__(self, model: DCKTalker | None = None, device: str | torch.device | None = None,
                 batch_size: int = BATCH_SIZE, dtype: torch.dtype | None = None, feather: float = 8.0,
                 close_mouth: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.device = check_device(device) if device is not None else default_device()
        self.dtype = dtype or default_dtype(self.device)
        model = model if model is not None else DCKTalker.from_pretrained()  # the bundled default
        self.model = model.eval().to(self.device)
        self.size = model.image_size
        self.batch_size = batch_size
        self.feather = feather
        self._feather = feather_mask(self.size, feather, self.device)
        self.threads = model_threads(self.device)
        self.close_mouth = close_mouth

    def __call__(self, face: str | Path, audio: str | Path, output: str | Path, **options) -> Path:
        """Render `face` (video or photo) speaking `audio` to `output`; returns the output path."""
        return self.generate(face, audio, output, **options).output

    def generate(self, face: str | Path, audio: str | Path, output: str | Path, *, length: str = "pingpong",
                 face_index: int = 0, fps: float = PHOTO_FPS, photo_size: int | None = PHOTO_SIZE,
                 progress: bool | Progress = False, show_mask: bool = False) -> Summary:
        """Like `__call__`, returning a `Summary`. `length` extends a video shorter than the audio
        (`pingpong`, `loop` or `freeze`); `fps` is the frame rate of a photo's video and `photo_size`
        the most pixels on its long side (a larger photo is scaled down; None keeps its size);
        `show_mask` puts the attention mask, as pasted, to the right of each frame (the video is
        twice as wide)."""
        from .image import is_image, read_image
        from .video import VideoWriter, check_output, count_frames, iter_frames, iter_frames_at, probe

        if length not in POLICIES:
            raise ValueError(f"unknown length policy {length!r}; choose from {', '.join(POLICIES)}")
        face, audio, output = Path(face), Path(audio), Path(output)
        check_output(output)  # before any work
        wav = load_speech(audio)
        photo = is_image(face)
        if photo:
            still = read_image(face, max_side=photo_size)
            rate = Fraction(fps).limit_denominator(1001)
            height, width = still.shape[:2]
        else:
            info = probe(face)
            rate, height, width = info.fps, info.height, info.width
        n_out = output_frame_count(len(wav), audio_lib.SAMPLE_RATE, rate)
        if len(wav) * rate < audio_lib.SAMPLE_RATE:
            raise InputError(audio, f"audio lasts {len(wav) / audio_lib.SAMPLE_RATE * 1000:.0f} ms, "
                                    f"shorter than one video frame at {float(rate):.2f} fps")
        if photo:
            frames: Iterator[np.ndarray] = repeat(still, n_out)
            source: list[int] | None = [0] * n_out
        else:
            n_src = count_frames(face, rate)
            if n_out <= n_src:  # trimmed: every frame is shown once, in order
                source, frames = None, islice(iter_frames(face, rate), n_out)
            else:
                source = list(source_indices(n_out, n_src, length))
                frames = iter_frames_at(face, source, rate)
        summary = Summary(output=output, fps_source=float(rate))
        start = time.perf_counter()
        times = summary.stage_seconds
        # Decoded video frames are new arrays, lip-synced in place; a photo's one array is copied.
        with _progress(progress, n_out) as report, \
                VideoWriter(output, 2 * width if show_mask else width, height, rate, audio=wav) as writer, \
                _InThread(lambda frame: times.call("encode", writer.write, frame), 2 * self.batch_size) as write:
            mel = audio_lib.melspectrogram(wav)
            # Closed here, error or not: its tracking thread stops before the tracker and the writer close.
            with contextlib.closing(self._render(frames, source, mel, rate, face_index, photo, summary, show_mask,
                                                 owned=not photo)) as rendered:
                for frame in rendered:
                    write(frame)
                    report(summary.frames, n_out)
                    if photo and not summary.faces:
                        break
            if summary.faces == 0:
                raise InputError(face, _no_face(photo, face_index, summary.most_faces))
        summary.seconds = time.perf_counter() - start
        return summary

    def stream(self, frames: Iterable[np.ndarray], audio: str | Path | np.ndarray, fps: float = 25.0,
               face_index: int = 0) -> Iterator[np.ndarray]:
        """Yield lip-synced frames for `frames` (RGB uint8, at `fps`) speaking `audio` (a file, or
        mono float32 samples at 16 kHz). Lookahead: an output frame comes out once its batch of
        `batch_size` input frames is complete (or the input ends); frames past the end of the
        audio reuse its last window. Faceless frames pass through unchanged."""
        wav = load_speech(audio) if not isinstance(audio, np.ndarray) else np.asarray(audio, np.float32)
        mel = audio_lib.melspectrogram(wav)
        rate = Fraction(fps).limit_denominator(1001)
        yield from self._render(iter(frames), None, mel, rate, face_index, False, Summary(Path()))

    def _render(self, frames: Iterator[np.ndarray], source: list[int] | None, mel: np.ndarray, rate: Fraction,
                face_index: int, photo: bool, summary: Summary, show_mask: bool = False, owned: bool = False
                ) -> Iterator[np.ndarray]:
        """The shared core: frames -> tracked (in a background thread, with decoding) -> cropped and
        the mouth closed (in another) -> batches lip-synced on the device and pasted back. `owned`: the
        frames are new arrays that may be changed in place (else each frame with a face is copied first).
        With closing apart, the longest thread is tracking (about 25 ms a 720p frame, 33 with closing)."""
        times = summary.stage_seconds
        depth = 2 * self.batch_size
        # Closed in reverse: the closing thread stops, then the tracking thread, then the tracker they use.
        with FaceTracker(self.size, face_index=face_index, video=not photo) as tracker, \
                contextlib.closing(_prefetch(_track(frames, source, rate, tracker, times), depth)) as faces, \
                contextlib.closing(_prefetch(_face_inputs(faces, self.size, self.close_mouth, times),
                                             depth)) as tracked:
            index = 0
            for batch in _batches(tracked, self.batch_size):
                with _torch_threads(self.threads):  # per batch: a paused generator leaves torch as it was
                    mels = audio_lib.frame_windows(mel, len(batch), rate, first=index, lead=self.model.window_lead)
                    done = self._lip_sync([frame for frame, _ in batch], [f for _, f in batch], mels, summary,
                                          show_mask, owned)
                index += len(batch)
                summary.frames = index
                summary.most_faces = tracker.most_faces
                yield from done

    @torch.inference_mode()
    def _lip_sync(self, batch: list[np.ndarray], faces: list[_FaceInput | None], mels: torch.Tensor,
                  summary: Summary, show_mask: bool = False, owned: bool = False) -> list[np.ndarray]:
        """Run the model on the frames of `batch` that have a face and paste the result back;
        with `show_mask`, each frame gets, on its right, itself darkened with the pasted mask in white."""
        with_face = [i for i, f in enumerate(faces) if f is not None]
        summary.faces += len(with_face)
        summary.passed_through += len(batch) - len(with_face)
        if show_mask:  # a frame without a face has no mask
            batch = [np.concatenate([f, f // 4], axis=1) if face is None else f for f, face in zip(batch, faces)]
        if not with_face:
            return batch
        times = summary.stage_seconds
        chosen = [faces[i] for i in with_face]
        crops = torch.from_numpy(np.stack([face.crop.image for face in chosen])).to(self.device)
        crops = crops.permute(0, 3, 1, 2).float().div_(255)
        with times("model"), precision(self.device.type, self.dtype):
            result = self.model(crops, mels[with_face].to(self.device))
            image, weight = pasted(result.motion.float(), result.alpha.float(), crops, _changed(chosen, self.device))
            image = to_uint8(image)
            weights = (weight[:, 0] * self._feather).cpu().numpy()
        with times("paste"):
            for j, (i, face) in enumerate(zip(with_face, chosen)):
                frame = batch[i] if owned else batch[i].copy()
                paste_image(frame, image[j], weights[j], face.matrix)
                if show_mask:
                    frame = np.concatenate([frame, _mask_view(frame, weights[j], face.matrix)], axis=1)
                batch[i] = frame
        return batch


@dataclass(frozen=True)
class _FaceInput:
    """One frame's face as the network gets it: the frame -> crop `matrix` and the crop (`closed_mouth`)."""

    matrix: np.ndarray
    crop: MouthInput


def pasted(motion: torch.Tensor, alpha: torch.Tensor, crops: torch.Tensor, changed: torch.Tensor | None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """What to paste onto the frame and under which weight, (B, 3, S, S) and (B, 1, S, S): the motion
    image under the attention mask `alpha`; where the network's input `crops` differ from the frame
    (`changed`, (B, 1, S, S) in [0, 1]) and the mask is weaker, the input itself. Without `changed`
    that is (motion, alpha); with it the frame becomes alpha * motion + (weight - alpha) * crops +
    (1 - weight) * frame, weight = max(alpha, changed)."""
    if changed is None:
        return motion, alpha
    weight = torch.maximum(alpha, changed)
    image = (alpha * motion + (weight - alpha) * crops) / weight.clamp_min(1e-6)
    return image, weight


def _changed(faces: list[_FaceInput], device: torch.device) -> torch.Tensor | None:
    """(B, 1, S, S) `changed` weights of a batch's crops (zeros for unchanged ones), None if none changed."""
    if all(face.crop.changed is None for face in faces):
        return None
    size = faces[0].crop.image.shape[0]
    zeros = np.zeros((size, size), np.float32)
    stacked = np.stack([zeros if face.crop.changed is None else face.crop.changed for face in faces])
    return torch.from_numpy(stacked)[:, None].to(device)


def _no_face(photo: bool, face_index: int, most_faces: int) -> str:
    """Why no frame was lip-synced: no face at all, or fewer faces than `face_index` needs."""
    if most_faces and face_index >= most_faces:
        return (f"only {most_faces} face{'s' * (most_faces != 1)} found, so there is no face {face_index} "
                "(faces are numbered from 0, largest first)")
    return "no face found in the photo" if photo else "no face found in any frame"


def _mask_view(frame: np.ndarray, weight: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """`frame` darkened to a quarter, with the pasted `weight` (crop space) added in white."""
    view = frame // 4
    alpha, (x0, y0, x1, y1) = crop_to_frame(weight, matrix, *frame.shape[:2])
    view[y0:y1, x0:x1] += np.rint(alpha * 191.25).astype(np.uint8)[..., None]
    return view


def model_threads(device: torch.device) -> int | None:
    """Threads for the model on a CPU: half the cores, at least one (decoding, tracking and encoding
    run on the others at the same time; two PyTorch threads beside them on a 2-core CPU wait on each
    other: the model ran 1.2 times slower on an idle machine, 12 times beside other work); None on
    other devices (left as they are)."""
    return max(1, (os.cpu_count() or 2) // 2) if device.type == "cpu" else None


@contextlib.contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """PyTorch's intra-op threads set to `count` inside the block (nothing when None)."""
    before = torch.get_num_threads()
    if count is None or count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class FacesFound:
    """The faces `generate` chooses among with `face_index`, largest first, and the picture they are in:
    a photo as `generate` sees it (scaled down to `photo_size`), or a video's first frame with a face
    (`frame`, the one that sets the choice; None if no frame has one)."""

    path: Path
    image: np.ndarray
    faces: list[Face]
    frame: int | None = None
    fps: float = 0.0

    def __str__(self) -> str:
        height, width = self.image.shape[:2]
        if not self.fps:
            where = f"{self.path} (photo, as lip-synced: {width}x{height})"
        elif self.frame is None:
            return f"{self.path} (video, {width}x{height}): no face found in any frame"
        else:
            where = (f"{self.path} (video, {width}x{height}), frame {self.frame} ({self.frame / self.fps:.2f} s), "
                     "the first with a face, which sets --face-index")
        if not self.faces:
            return f"{where}: no face found"
        lines = [f"{where}: {len(self.faces)} face{'s' * (len(self.faces) != 1)}, largest first"]
        for index, face in enumerate(self.faces):
            x0, y0, x1, y1 = face.box
            lines.append(f"  {index}: box ({x0:.0f}, {y0:.0f})-({x1:.0f}, {y1:.0f}), {x1 - x0:.0f} px wide")
        return "\n".join(lines)


def find_faces(face: str | Path, photo_size: int | None = PHOTO_SIZE) -> FacesFound:
    """Every face `generate(face, ..., photo_size=photo_size)` chooses among, in the order of its
    `face_index`: found the same way, in the same picture (for a video, frames are searched from the
    start until one has a face, as the tracker does)."""
    from .image import is_image, read_image
    from .video import iter_frames, probe

    face = Path(face)
    with FaceFinder() as finder:
        if is_image(face):
            image = read_image(face, max_side=photo_size)
            return FacesFound(face, image, finder.find(image))
        rate = probe(face).fps
        first = None
        for index, frame in enumerate(iter_frames(face, rate)):
            first = frame if first is None else first
            if faces := finder.find(frame):
                return FacesFound(face, frame, faces, index, float(rate))
    return FacesFound(face, first, [], None, float(rate))


def load_speech(path: str | Path) -> np.ndarray:
    """Load audio for lip sync: 16 kHz mono, and an `InputError` for empty, broken or silent sound."""
    wav = audio_lib.load_audio(path)
    if len(wav) == 0:
        raise InputError(path, "audio stream is empty")
    if not np.isfinite(wav).all():  # a float WAV can hold them; every later step would fail on them
        raise InputError(path, "audio holds samples that are not numbers (NaN or infinite)")
    if float(np.abs(wav).max()) < SILENCE_PEAK:
        raise InputError(path, "audio is silent")
    return wav


def _track(frames: Iterator[np.ndarray], source: list[int] | None, rate: Fraction, tracker: FaceTracker,
           times: StageTimes) -> Iterator[tuple[np.ndarray, CropTransform | None]]:
    """Each frame with its crop transform (None without a face). `source[i]` names the source frame
    that output frame `i` shows; a source frame shown again (a photo, a looped video) reuses its
    transform instead of being tracked again."""
    cache: dict[int, CropTransform | None] = {}
    for i, frame in enumerate(times.timed(frames, "decode")):
        key = source[i] if source is not None else None
        if key is not None and key in cache:
            yield frame, cache[key]
            continue
        with times("track"):
            crop = tracker.track(frame, int(i * 1000 / rate))
        if key is not None:
            cache[key] = crop
        yield frame, crop


def _face_inputs(tracked: Iterator[tuple[np.ndarray, CropTransform | None]], size: int, close: bool,
                 times: StageTimes) -> Iterator[tuple[np.ndarray, _FaceInput | None]]:
    """Each tracked frame with its crop as the network gets it, the mouth closed if `close`; a frame
    that repeats the transform before it (a photo) reuses its crop."""
    last: tuple[CropTransform | None, _FaceInput | None] = (None, None)
    for frame, transform in tracked:
        if transform is None:
            yield frame, None
            continue
        if transform is not last[0]:
            with times("crop"):
                crop = crop_image(frame, transform.matrix, size)
            with times("close"):
                mouth = close_mouth(crop, transform.landmarks) if close else MouthInput(crop)
            last = (transform, _FaceInput(transform.matrix, mouth))
        yield frame, last[1]


def _batches(items: Iterator, size: int) -> Iterator[list]:
    while batch := list(islice(items, size)):
        yield batch


def _prefetch(items: Generator, depth: int) -> Iterator:
    """Produce `items` in a background thread (decoding and tracking overlap the model), `depth` ahead.
    An error in the producer is raised in the consumer; a consumer that stops early stops it, and the
    thread closes `items` (a generator is closed by the thread that runs it)."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                buffer.put(item, timeout=0.1)
                return True
        return False

    def produce() -> None:
        try:
            with contextlib.closing(items):
                for item in items:
                    if not put(item):
                        return
                put(done)
        except BaseException as exc:  # handed to the consumer
            put(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


class _InThread:
    """Calls `consume` on each item in a worker thread (encoding overlaps the rendering), with at
    most `depth` items queued. An error in the worker is raised in the caller."""

    def __init__(self, consume: Callable[[object], object], depth: int) -> None:
        self._consume = consume
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, daemon=True)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._consume(item)
                except BaseException as exc:  # handed to the caller
                    self._error = exc

    def __call__(self, item: object) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def __enter__(self) -> _InThread:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if exc_type is None and self._error is not None:
            raise self._error


@contextlib.contextmanager
def _progress(progress: bool | Progress, total: int) -> Iterator[Progress]:
    """`progress` itself if it is a callback, else a tqdm bar's (or nothing's) `update(done, total)`;
    the bar is closed on the way out, error or not, so an error message gets a line of its own."""
    if callable(progress):
        yield progress
    elif not progress:
        yield lambda done, total: None
    else:
        with tqdm(total=total, unit="frame", desc="lip-sync") as bar:
            yield lambda done, _total: bar.update(done - bar.n)
