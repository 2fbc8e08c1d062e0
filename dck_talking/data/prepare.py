"""`dck-talking prepare VIDEOS_DIR OUT_DIR`: talking-face videos with sound -> clip folders.

Every video under VIDEOS_DIR (any depth: LRS2 `ID/00001.mp4`, VoxCeleb `idXXXXX/VIDEO/00001.mp4`,
HDTF-style flat folders, or one's own footage) becomes OUT_DIR/clips/<clip_id>/ with face crops
made exactly as inference makes them (`FaceTracker` in video mode + `warp_to_crop`), the mel
spectrogram, the lip landmarks and metadata (see `dck_talking.data.store`). Clip ids are the
relative path with "/" replaced by "__"; the identity is the first folder of the relative path
(the file name for files directly in VIDEOS_DIR).

Bad clips (unreadable, no sound track, silent, too short, no face in more than 10% of the
frames) are skipped and listed in OUT_DIR/index.json, never abort the run. Clip folders are
written under a temporary name and renamed when complete, so re-running resumes: finished clips
and sources skipped before (unchanged since) are not redone.
"""

from __future__ import annotations

import math
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import audio as audio_lib
from ..errors import DCKError, InputError
from ..face import FaceTracker, warp_to_crop
from ..video import count_frames, iter_frames, probe
from . import store

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".flv", ".mpg", ".mpeg", ".ts", ".mts", ".3gp"}
SILENCE_PEAK = 1e-4  # as the pipeline: a peak below this (about -80 dBFS) is silence
MAX_FACELESS = 0.10


class Skip(Exception):
    """A clip that cannot be used; the message says why."""


@dataclass
class ClipTask:
    video: str
    clip_id: str
    identity: str
    out: str
    size: int
    min_seconds: float
    max_faceless: float
    group: list[str] | None = None  # paired mode: all videos of the group (`video` is the first)


@dataclass
class ClipResult:
    source: str
    clip_id: str
    status: str  # "done", "exists" or "skipped"
    reason: str = ""
    frames: int = 0
    filled: int = 0
    seconds: float = 0.0
    retry: bool = False  # skipped for a reason that may not happen again (a crash)


@dataclass
class PrepareSummary:
    out: Path
    done: list[ClipResult] = field(default_factory=list)
    existing: list[ClipResult] = field(default_factory=list)
    skipped: list[ClipResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.done)

    def __str__(self) -> str:
        rate = (f"; {len(self.done) / self.seconds * 60:.1f} clips/min, {self.frames / self.seconds:.1f} frames/s"
                if self.seconds and self.done else "")
        head = (f"{self.out}: {len(self.done)} clips prepared ({self.frames} frames), {len(self.existing)} already "
                f"done, {len(self.skipped)} skipped in {self.seconds:.1f} s{rate}")
        lines = [head]
        lines += [f"  skipped {r.source}: {r.reason}" for r in self.skipped]
        return "\n".join(lines)


def find_videos(root: str | Path) -> list[Path]:
    """Video files under `root` (by extension, hidden files and folders left out), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "not a folder of videos")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath) / f for f in filenames if not f.startswith(".") and Path(f).suffix.lower() in VIDEO_SUFFIXES]
    return sorted(found)


def clip_identity(relative: Path) -> tuple[str, str]:
    """(clip id, identity) of a video from its path relative to VIDEOS_DIR."""
    parts = relative.with_suffix("").parts
    clip_id = re.sub(r"[^A-Za-z0-9._-]+", "_", "__".join(parts)).strip("._") or "clip"
    identity = parts[0] if len(parts) > 1 else parts[-1]
    return clip_id, identity


def crop_frame(frame: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The (size, size, 3) uint8 crop of an RGB uint8 frame, by `warp_to_crop` (as inference), reading
    only the part of the frame under the crop."""
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))
    corners = np.array([[-0.5, -0.5, 1], [size - 0.5, -0.5, 1], [-0.5, size - 0.5, 1], [size - 0.5, size - 0.5, 1]])
    pts = (inverse @ corners.T)[:2]
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    margin = 2 * max(1, min(16, math.floor(1 / max(scale, 1e-6)))) + 2  # warp_to_crop reads k + 1 around
    h, w = frame.shape[:2]
    x0 = min(max(math.floor(pts[0].min()) - margin, 0), w - 1)
    y0 = min(max(math.floor(pts[1].min()) - margin, 0), h - 1)
    x1 = max(min(math.ceil(pts[0].max()) + margin + 1, w), x0 + 1)
    y1 = max(min(math.ceil(pts[1].max()) + margin + 1, h), y0 + 1)
    region = torch.from_numpy(np.ascontiguousarray(frame[y0:y1, x0:x1])).permute(2, 0, 1)[None].float()
    shifted = np.array(matrix, np.float64).copy()
    shifted[:, 2] += shifted[:, :2] @ np.array([x0, y0], np.float64)
    crop = warp_to_crop(region, shifted[None], size)[0]
    return crop.round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def nearest_filled(found: np.ndarray) -> np.ndarray:
    """For each frame, the index of the nearest frame with a face (ties: the earlier one)."""
    idx = np.flatnonzero(found)
    positions = np.arange(len(found))
    right = np.clip(np.searchsorted(idx, positions), 0, len(idx) - 1)
    left = np.clip(right - 1, 0, len(idx) - 1)
    use_left = np.abs(positions - idx[left]) <= np.abs(idx[right] - positions)
    return np.where(use_left, idx[left], idx[right])


def prepare_clip(task: ClipTask) -> ClipResult:
    """Make one clip folder; never raises for a bad clip (the result says why it was skipped)."""
    start = time.perf_counter()
    final = Path(task.out) / "clips" / task.clip_id
    result = ClipResult(task.video, task.clip_id, "done")
    if store.is_clip(final):
        result.status = "exists"
        return result
    try:
        info = probe(task.video)
        if not info.has_audio:
            raise Skip("no sound track")
        wav = audio_lib.load_audio(task.video)
        if len(wav) == 0 or float(np.abs(wav).max()) < SILENCE_PEAK:
            raise Skip("the sound track is silent")
        fps = info.fps
        n = count_frames(task.video, fps)
        min_frames = max(12, math.ceil(task.min_seconds * float(fps)))
        if n < min_frames:
            raise Skip(f"too short ({n} frames, at least {min_frames} needed)")
        with store.ClipWriter(final, n, task.size) as writer, FaceTracker(task.size, video=True) as tracker:
            found = np.zeros(n, bool)
            for i, frame in enumerate(iter_frames(task.video, fps)):
                if i >= n:
                    break
                crop = tracker.track(frame, int(i * 1000 / fps))
                if crop is None:
                    continue
                found[i] = True
                writer.frames[i] = crop_frame(frame, crop.matrix, task.size)
                writer.lips[i] = crop.lips
            faceless = int((~found).sum())
            if not found.any():
                raise Skip("no face found")
            if faceless > task.max_faceless * n:
                raise Skip(f"no face in {faceless} of {n} frames (more than {task.max_faceless:.0%})")
            if faceless:
                source = nearest_filled(found)
                for i in np.flatnonzero(~found):
                    writer.frames[i] = writer.frames[source[i]]
                    writer.lips[i] = writer.lips[source[i]]
            meta = {"fps": float(fps), "frames": n, "size": task.size, "source": task.video,
                    "identity": task.identity, "group": None, "speech": task.clip_id, "filled": faceless,
                    "fps_fraction": str(Fraction(fps)), "source_size": [info.width, info.height],
                    "audio_seconds": round(len(wav) / audio_lib.SAMPLE_RATE, 3), "kind": "real"}
            writer.commit(audio_lib.melspectrogram(wav), meta, audio=wav)
        result.frames, result.filled = n, faceless
    except Skip as exc:
        result.status, result.reason = "skipped", str(exc)
    except InputError as exc:
        result.status, result.reason = "skipped", exc.problem
    except DCKError as exc:
        result.status, result.reason = "skipped", str(exc)
    except Exception as exc:  # noqa: BLE001 (a clip must never abort the run)
        result.status, result.reason, result.retry = "skipped", f"{type(exc).__name__}: {exc}", True
    result.seconds = time.perf_counter() - start
    return result


def _audio_of(video: str) -> np.ndarray:
    if not probe(video).has_audio:
        raise Skip(f"{Path(video).name}: no sound track")
    wav = audio_lib.load_audio(video)
    if len(wav) == 0 or float(np.abs(wav).max()) < SILENCE_PEAK:
        raise Skip(f"{Path(video).name}: the sound track is silent")
    return wav


def prepare_group(task: ClipTask) -> ClipResult:
    """Paired mode: the videos of one group (same identity and head motion, different speech, e.g.
    re-dubbed versions of one recording) -> OUT/groups/<group>/<video stem>/. All are cropped with
    the first video's crop transforms, so their crops line up pixel for pixel; each keeps its own
    lip landmarks (tracked in its own frames, mapped into the shared crop). Lengths are cut to the
    shortest video."""
    start = time.perf_counter()
    group_dir = Path(task.out) / "groups" / task.clip_id
    videos = task.group or [task.video]
    names = [Path(v).stem for v in videos]
    result = ClipResult(task.video, task.clip_id, "done")
    if all(store.is_clip(group_dir / name) for name in names):
        result.status = "exists"
        return result
    try:
        if len(videos) < 2:
            raise Skip("a group needs at least 2 videos")
        wavs = [_audio_of(v) for v in videos]
        fps = probe(videos[0]).fps
        n = min(count_frames(v, fps) for v in videos)
        min_frames = max(12, math.ceil(task.min_seconds * float(fps)))
        if n < min_frames:
            raise Skip(f"too short ({n} frames, at least {min_frames} needed)")
        matrices = np.zeros((n, 2, 3))
        found = np.zeros(n, bool)
        with FaceTracker(task.size, video=True) as tracker:
            for i, frame in enumerate(iter_frames(videos[0], fps)):
                if i >= n:
                    break
                crop = tracker.track(frame, int(i * 1000 / fps))
                if crop is not None:
                    matrices[i], found[i] = crop.matrix, True
        faceless = int((~found).sum())
        if not found.any():
            raise Skip("no face found")
        if faceless > task.max_faceless * n:
            raise Skip(f"no face in {faceless} of {n} frames (more than {task.max_faceless:.0%})")
        source = nearest_filled(found)
        for video, name, wav in zip(videos, names, wavs):
            if store.is_clip(group_dir / name):
                continue
            with store.ClipWriter(group_dir / name, n, task.size) as writer, \
                    FaceTracker(task.size, video=True) as tracker:
                own = np.zeros(n, bool)
                for i, frame in enumerate(iter_frames(video, fps)):
                    if i >= n:
                        break
                    writer.frames[i] = crop_frame(frame, matrices[source[i]], task.size)
                    crop = tracker.track(frame, int(i * 1000 / fps))
                    if crop is not None:
                        frame_lips = crop.lips.astype(np.float64) @ crop.inverse[:, :2].T + crop.inverse[:, 2]
                        m = matrices[source[i]]
                        writer.lips[i] = frame_lips @ m[:, :2].T + m[:, 2]
                        own[i] = True
                if own.any() and not own.all():
                    fill = nearest_filled(own)
                    writer.lips[~own] = writer.lips[fill[~own]]
                meta = {"fps": float(fps), "frames": n, "size": task.size, "source": video,
                        "identity": task.identity, "group": task.clip_id, "speech": name, "filled": faceless,
                        "fps_fraction": str(Fraction(fps)), "kind": "paired",
                        "audio_seconds": round(len(wav) / audio_lib.SAMPLE_RATE, 3)}
                writer.commit(audio_lib.melspectrogram(wav), meta, audio=wav)
            result.frames += n
    except Skip as exc:
        result.status, result.reason = "skipped", str(exc)
    except DCKError as exc:
        result.status, result.reason = "skipped", str(exc)
    except Exception as exc:  # noqa: BLE001 (a group must never abort the run)
        result.status, result.reason, result.retry = "skipped", f"{type(exc).__name__}: {exc}", True
    result.seconds = time.perf_counter() - start
    return result


def _init_worker() -> None:
    """Each worker process uses one thread (the processes are the parallelism)."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's start-up chatter would break the progress bar
    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(1)


def default_workers() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus)


def run_tasks(function, tasks: list, workers: int, progress: bool, desc: str, unit: str, on_result) -> None:
    """Run `function` over `tasks` in `workers` processes (in this process when 1), calling
    `on_result(task, result)` as results come; a crashed worker process fails only its tasks."""
    bar = tqdm(total=len(tasks), desc=desc, unit=unit, disable=not progress, dynamic_ncols=True)
    try:
        if workers <= 1 or len(tasks) <= 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # small per-frame work: thread start-up costs more than it saves
            try:
                for task in tasks:
                    on_result(task, function(task))
                    bar.update(1)
            finally:
                torch.set_num_threads(threads)
            return
        pending = list(tasks)
        while pending:
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
                futures = {pool.submit(function, task): task for task in pending}
                pending = []
                try:
                    for future in as_completed(futures):
                        task = futures.pop(future)
                        try:
                            on_result(task, future.result())
                        except BrokenProcessPool:
                            on_result(task, None)
                        bar.update(1)
                except BrokenProcessPool:
                    for future, task in futures.items():
                        on_result(task, None)
                        bar.update(1)
    finally:
        bar.close()


def prepare(videos_dir: str | Path, out_dir: str | Path, size: int = 256, workers: int | None = None,
            min_seconds: float = 0.5, max_faceless: float = MAX_FACELESS, progress: bool = True,
            retry_skipped: bool = False, paired: bool = False) -> PrepareSummary:
    """Prepare every video under `videos_dir` into `out_dir` (see the module doc); returns a summary.

    `workers` processes (default: one per CPU); clips shorter than `min_seconds` are skipped (at
    least 12 frames are needed anyway: the single-clip sampler takes a mouth from a moment at least
    5 frames away); `retry_skipped` also retries sources skipped by an earlier run.

    `paired`: `videos_dir/<group>/<speech>.mp4` are groups of videos with the same identity and
    head motion but different speech (one's own re-dubbed pairs); each group becomes
    `out_dir/groups/<group>/<speech>/` (see `prepare_group`), read by the sampler like synth groups.
    """
    start = time.perf_counter()
    videos_dir, out = Path(videos_dir), Path(out_dir)
    videos = find_videos(videos_dir)
    out.mkdir(parents=True, exist_ok=True)
    store.remove_partials(out / ("groups" if paired else "clips"), max_depth=2 if paired else 1)
    previous = {s["source"]: s for s in store.load_index(out).get("skipped", [])}
    summary = PrepareSummary(out)
    tasks, seen = [], set()
    if paired:
        by_group: dict[Path, list[Path]] = {}
        for video in videos:
            by_group.setdefault(video.parent, []).append(video)
        for folder, members in sorted(by_group.items()):
            parts = folder.relative_to(videos_dir).parts or (videos_dir.name,)
            group_id = re.sub(r"[^A-Za-z0-9._-]+", "_", "__".join(parts)).strip("._") or "group"
            identity = parts[0]
            tasks.append(ClipTask(str(members[0]), group_id, identity, str(out), size, min_seconds, max_faceless,
                                  group=[str(m) for m in members]))
        videos = []
    for video in videos:
        clip_id, identity = clip_identity(video.relative_to(videos_dir))
        while clip_id in seen:
            clip_id += "_"
        seen.add(clip_id)
        old = previous.get(str(video))
        if (old and not retry_skipped and not old.get("retry")
                and old.get("stamp") == _stamp(video) and not store.is_clip(out / "clips" / clip_id)):
            summary.skipped.append(ClipResult(str(video), clip_id, "skipped", old.get("reason", "skipped before")))
            continue
        tasks.append(ClipTask(str(video), clip_id, identity, str(out), size, min_seconds, max_faceless))

    def collect(task: ClipTask, result: ClipResult | None) -> None:
        if result is None:
            result = ClipResult(task.video, task.clip_id, "skipped", "the worker process crashed", retry=True)
        {"done": summary.done, "exists": summary.existing, "skipped": summary.skipped}[result.status].append(result)

    run_tasks(prepare_group if paired else prepare_clip, tasks, workers or default_workers(), progress, "prepare",
              "group" if paired else "clip", collect)
    skipped = [{"source": r.source, "clip_id": r.clip_id, "reason": r.reason, "retry": r.retry,
                "stamp": _stamp(Path(r.source))} for r in summary.skipped]
    store.write_index(out, skipped)
    summary.seconds = time.perf_counter() - start
    return summary


def _stamp(path: Path) -> list[float] | None:
    """Size and modification time: a skipped source that changed is tried again."""
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime]
