"""`dck-talking synth`: synthetic paired videos, made without any other lip-sync model.

A group is one identity with one head motion, rendered with several different speeches (the
paper's V_i^j): every clip of a group shows exactly the same face crops except for the mouth.

- Faces: photos (given natural head motion: smooth random yaw, pitch, roll, shift and scale,
  rendered as a perspective warp of the photo) or silent face videos (their own head motion).
  The frames are tracked and cropped like any video (`FaceTracker` + `warp_to_crop`).
- Speech: real recordings (phones from pocketsphinx: forced alignment to a transcript found
  beside the file, phone recognition otherwise, retimed phrase by phrase to follow the sound) or
  text spoken by espeak-ng (its own phonemes and timings). Recordings that are not speech (a modem
  signal, whose loudness never falls) are listed and left out.
- Mouth: phones -> visemes with coarticulation (`visemes.track`) -> a landmark-driven warp of
  the lips and jaw with a painted mouth interior (`render.MouthRig`).

Output: OUT/groups/<group_id>/<speech_id>/, clip folders in the format `prepare` writes, plus
`visemes.npy` float32 (N, 4): openness, spread, closed (bilabial) and rendered (0 where the source
mouth is hidden, by a hand say, and left as it was in every clip of the group), and `phones.json`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from .. import audio as audio_lib
from ..errors import DCKError, InputError
from ..face import FaceTracker, LandmarkDetector
from ..image import is_image, read_image
from ..metrics import voice_loudness
from ..video import count_frames, iter_frames, probe
from . import phones as phones_lib
from . import store, visemes
from .prepare import (
    MAX_FACELESS,
    VIDEO_SUFFIXES,
    crop_frame,
    default_workers,
    nearest_filled,
    run_tasks,
)
from .render import INNER_LOOP, OUTER_LOOP, MouthRig, lips_of
from .head import head_motion, motion_homography
from .retime import retime

PHOTO_FPS = 25
MIN_SPEECH_RANGE_DB = 6.0  # see speech_problem
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus", ".aac"} | VIDEO_SUFFIXES
VOICES = ("en-us", "en-us+m3", "en-us+f2", "en-gb-x-rp", "en-us+f4", "en-029", "en-gb-x-rp+m7", "en-us+f3",
          "en-gb-scotland", "en-us+m1")

# Built-in sentences for espeak-ng when no speech is given (written for this project; varied vowels
# and plenty of bilabials, so mouths open and close).
SENTENCES = (
    "Maybe we should meet by the big bridge before the market opens.",
    "Please bring a warm blanket and a bottle of water for the boat trip.",
    "The museum opens at nine, but most people arrive much later.",
    "My brother bought a bright blue bicycle from a shop on the harbour.",
    "Every morning she walks along the beach and watches the waves.",
    "Put the maps back in the box when you have finished with them.",
    "A small bird was singing on the window ledge of my room.",
    "We might be able to finish the whole project by Monday afternoon.",
    "Open the door slowly, because the puppy is sleeping behind it.",
    "The food at the party was amazing, especially the apple pie.",
    "I think the problem is simpler than it looks at first sight.",
    "Bob and Pam moved to a farm by the mountains last summer.",
    "Please remember to bring your passport and a pen to the meeting.",
    "How about a walk around the park before it gets too dark?",
    "The old mill by the river was built more than a hundred years ago.",
    "Many people believe that music makes them more productive.",
    "She opened the map and pointed at a tiny village by the bay.",
    "Our team played well, but the other team was simply better.",
    "You can borrow my umbrella if the weather turns bad again.",
    "The baker makes fresh bread and buns every morning at five.",
    "Big waves broke over the pier, and the boats bumped together.",
    "Mum made pancakes with maple syrup for breakfast on Sunday.",
    "Quick, grab your jacket, the bus is about to leave!",
    "What would you do with a million pounds and a month off?",
)


@dataclass
class SpeechSpec:
    """One speech of a group: a recording (`path`, from `offset` seconds) or text for espeak-ng."""

    speech_id: str
    kind: str  # "recording" or "text"
    path: str | None = None
    offset: float = 0.0
    texts: list[str] = field(default_factory=list)
    voice: str = "en-us"
    rate: int = 170
    scale: float = 1.0  # openness multiplier (some speakers open the mouth more)
    seed: int = 0


@dataclass
class GroupTask:
    group_id: str
    face: str
    identity: str
    photo: bool
    start_frame: int
    n_frames: int
    fps: float
    size: int
    out: str
    seed: int
    speeches: list[SpeechSpec]
    motion: float = 1.0
    total_frames: int = 0  # of a video source


@dataclass
class GroupResult:
    group_id: str
    face: str
    status: str  # "done", "exists", "skipped"
    reason: str = ""
    clips: int = 0
    frames: int = 0
    seconds: float = 0.0
    retry: bool = False


@dataclass
class SynthSummary:
    out: Path
    done: list[GroupResult] = field(default_factory=list)
    existing: list[GroupResult] = field(default_factory=list)
    skipped: list[GroupResult] = field(default_factory=list)
    left_out: list[GroupResult] = field(default_factory=list)  # face sources and recordings, not groups
    seconds: float = 0.0

    @property
    def clips(self) -> int:
        return sum(r.clips for r in self.done)

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.done)

    def __str__(self) -> str:
        rate = (f"; {self.clips / self.seconds * 60:.1f} clips/min, {self.frames / self.seconds:.1f} frames/s"
                if self.seconds and self.done else "")
        head = (f"{self.out}: {len(self.done)} groups made ({self.clips} clips, {self.frames} frames), "
                f"{len(self.existing)} already done, {len(self.skipped)} skipped in {self.seconds:.1f} s{rate}")
        lines = [head]
        lines += [f"  left out {r.face}: {r.reason}" for r in self.left_out]
        lines += [f"  incomplete {r.group_id} ({r.face}): {r.reason}" for r in self.done if r.reason]
        lines += [f"  skipped {r.group_id} ({r.face}): {r.reason}" for r in self.skipped]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Head motion for photos

def photo_frames(image: np.ndarray, n: int, fps: float, seed: int, amount: float = 1.0):
    """`n` frames of a photo with natural head motion (a generator of RGB uint8 frames)."""
    with LandmarkDetector(num_faces=1, video=False) as detector:
        faces = detector.detect(image)
    if not faces:
        raise DCKError("no face found in the photo")
    x0, y0, x1, y1 = faces[0].box
    center, width = np.array([(x0 + x1) / 2, (y0 + y1) / 2]), x1 - x0
    motion = head_motion(n, fps, np.random.default_rng(seed), amount)
    h, w = image.shape[:2]
    for params in motion:
        matrix = motion_homography(params, center, width)
        yield cv2.warpPerspective(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


# ---------------------------------------------------------------------------------------------
# Speech

def _phones_cache(out: Path, path: str, transcript: str | None) -> Path:
    st = os.stat(path)
    # "retimed": entries hold the phones after `retime`, so older entries (before it) are not reused.
    key = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime}|{transcript}|retimed"
    return out / "cache" / "phones" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"


def speech_problem(wav: np.ndarray) -> str | None:
    """Why 16 kHz `wav` cannot serve as speech, or None. Speech falls quiet between words: its
    voice-band loudness spans 25 dB or more from its pauses to its vowels (10th to 90th percentile);
    a recording under `MIN_SPEECH_RANGE_DB` is a modem signal, a tone or steady noise, whose phones
    would be the decoder's guesses (codec2-examples' `david4.wav`: 1.9 dB)."""
    if len(wav) == 0 or float(np.abs(wav).max()) < 1e-4:
        return "the recording is silent"
    low, high = np.percentile(voice_loudness(audio_lib.melspectrogram(wav)), [10, 90])
    spread = (high - low) * audio_lib.DB_PER_UNIT
    if spread < MIN_SPEECH_RANGE_DB:
        return (f"the recording does not sound like speech: its loudness never falls between words "
                f"({spread:.1f} dB from quiet to loud; a modem signal, a tone or steady noise?)")
    return None


def recording_phones(path: str, out: Path | None = None) -> tuple[np.ndarray, list[phones_lib.Phone], str, str | None]:
    """(16 kHz audio, phones, method, transcript) of a recording; the decoder's phones are cached
    under OUT/cache. Phones recognised without a transcript are retimed to the sound
    (`dck_talking.data.retime`; method "pocketsphinx-phones-retimed"). A recording that is not
    speech (`speech_problem`) raises `InputError`; a cached one was checked when it was cached."""
    wav = audio_lib.load_audio(path)
    transcript = phones_lib.find_transcript(path)
    cache = _phones_cache(out, path, transcript) if out is not None else None
    if cache is not None and cache.is_file():
        data = json.loads(cache.read_text())
        return wav, [phones_lib.Phone(*p) for p in data["phones"]], data["method"], transcript
    problem = speech_problem(wav)
    if problem:
        raise InputError(path, problem)
    phones, method = phones_lib.align(wav, transcript)
    if method == "pocketsphinx-phones":
        phones, method = retime(phones, wav), "pocketsphinx-phones-retimed"
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"phones": phones_lib.phones_to_json(phones), "method": method}))
        os.replace(tmp, cache)
    return wav, phones, method, transcript


def make_speech(spec: SpeechSpec, seconds: float, out: Path | None = None) -> tuple[np.ndarray, list, dict]:
    """(audio of exactly `seconds`, phones within it, description) for one speech spec. Audio
    shorter than `seconds` is padded with silence; a recording is read from `spec.offset`."""
    n_samples = round(seconds * phones_lib.SAMPLE_RATE)
    info: dict = {}
    if spec.kind == "recording":
        wav, phones, method, transcript = recording_phones(spec.path, out)
        offset = min(spec.offset, max(0.0, len(wav) / phones_lib.SAMPLE_RATE - seconds))
        start = round(offset * phones_lib.SAMPLE_RATE)
        wav = wav[start:start + n_samples]
        phones = [p.shifted(-offset) for p in phones if p.end > offset and p.start < offset + seconds]
        info = {"speech_source": spec.path, "offset": round(offset, 3), "phones_from": method,
                "transcript": transcript}
    else:
        pieces, phones, cursor = [], [], 0.0
        pause = np.zeros(int(0.3 * phones_lib.SAMPLE_RATE), np.float32)
        for text in spec.texts:
            wav, ph = phones_lib.speak(text, spec.voice, spec.rate)
            phones += [p.shifted(cursor) for p in ph]
            pieces += [wav, pause]
            cursor += (len(wav) + len(pause)) / phones_lib.SAMPLE_RATE
            if cursor >= seconds:
                break
        wav = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        wav = wav[:n_samples]
        info = {"speech_source": f"espeak-ng:{spec.voice}", "text": " ".join(spec.texts), "rate": spec.rate,
                "phones_from": "espeak-ng"}
    if len(wav) < n_samples:
        wav = np.pad(wav, (0, n_samples - len(wav)))
    phones = [phones_lib.Phone(max(0.0, p.start), min(seconds, p.end), p.name) for p in phones
              if p.start < seconds and min(seconds, p.end) > max(0.0, p.start)]
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    if peak > 0:
        wav = wav * min(1.0, 0.9 / peak)
    return wav.astype(np.float32), phones, info


# ---------------------------------------------------------------------------------------------
# One group

def _track_source(task: GroupTask) -> tuple[np.ndarray, np.ndarray, int]:
    """(crops (N, S, S, 3) uint8, landmarks (N, 478, 2) float32, faceless count) of a group's frames."""
    if task.photo:
        frames = photo_frames(read_image(task.face), task.n_frames, task.fps, task.seed, task.motion)
    else:
        frames = iter_frames(task.face, Fraction(task.fps).limit_denominator(100000), start=task.start_frame)
    crops = np.zeros((task.n_frames, task.size, task.size, 3), np.uint8)
    marks = np.zeros((task.n_frames, 478, 2), np.float32)
    found = np.zeros(task.n_frames, bool)
    with FaceTracker(task.size, video=True) as tracker:
        for i, frame in enumerate(frames):
            if i >= task.n_frames:
                break
            crop = tracker.track(frame, int(i * 1000 / task.fps))
            if crop is None:
                continue
            found[i] = True
            crops[i] = crop_frame(frame, crop.matrix, task.size)
            marks[i] = crop.landmarks
    faceless = int((~found).sum())
    if not found.any():
        raise DCKError("no face found")
    if faceless > MAX_FACELESS * task.n_frames:
        raise DCKError(f"no face in {faceless} of {task.n_frames} frames")
    if faceless:
        source = nearest_filled(found)
        crops, marks = crops[source], marks[source]
    return crops, marks, faceless


def lip_contrast(crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """How much redder the lips are than the skin around them (Lab a*), in 4 slices across the mouth
    (corner to corner), shape (4,): low where something (fingers, a microphone) covers the lips."""
    lab = cv2.cvtColor(crop, cv2.COLOR_RGB2LAB)[..., 1].astype(np.float32)
    outer = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(outer, [np.round(landmarks[OUTER_LOOP]).astype(np.int32)], 1)
    inner = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(inner, [np.round(landmarks[INNER_LOOP]).astype(np.int32)], 1)
    band = (outer > 0) & (inner == 0)
    k = max(3, crop.shape[0] // 16) | 1
    ring = (cv2.dilate(outer, np.ones((k, k), np.uint8)) > 0) & ~(cv2.dilate(outer, np.ones((5, 5), np.uint8)) > 0)
    left, right = landmarks[61, 0], landmarks[291, 0]
    edges = left + (right - left) * np.arange(5) / 4
    columns = np.arange(crop.shape[1])[None, :]
    out = np.zeros(4, np.float32)
    for q in range(4):
        part = (columns >= edges[q]) & (columns < edges[q + 1])
        lips, skin = band & part, ring & part
        out[q] = lab[lips].mean() - lab[skin].mean() if lips.any() and skin.any() else 0.0
    return out


def mouth_visible(crops: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """Per frame: is the mouth visible? A frame where any slice of the lips (`lip_contrast`) loses
    more than 60% of its usual lip/skin contrast (the slice's 90th percentile over the clip) counts
    as covered. Slices whose lips barely differ from the skin (usual contrast below 2.5: dark or
    grey-scale faces, some lighting) cannot tell and are not used; with none usable every frame
    counts as visible."""
    contrast = np.stack([lip_contrast(c, m) for c, m in zip(crops, marks)])
    usual = np.percentile(contrast, 90, axis=0)
    usable = usual >= 2.5
    if not usable.any():
        return np.ones(len(crops), bool)
    return (contrast[:, usable] >= 0.4 * usual[usable]).all(axis=1)


def _render_speech(task: GroupTask, spec: SpeechSpec, rig: MouthRig, crops: np.ndarray, marks: np.ndarray,
                   visible: np.ndarray, faceless: int) -> None:
    """Write one clip of a group: `spec`'s speech on the group's crops."""
    group_dir = Path(task.out) / "groups" / task.group_id
    wav, phones, info = make_speech(spec, task.n_frames / task.fps, Path(task.out))
    track = visemes.track(phones, task.n_frames, task.fps, scale=spec.scale, rng=np.random.default_rng(spec.seed))
    with store.ClipWriter(group_dir / spec.speech_id, task.n_frames, task.size) as writer:
        for i in range(task.n_frames):
            if visible[i]:
                image, moved = rig.render(crops[i], marks[i], float(track.openness[i]), float(track.spread[i]))
            else:  # a hidden mouth is left as it is, the same in every clip of the group
                image, moved = crops[i], marks[i]
            writer.frames[i] = image
            writer.lips[i] = lips_of(moved)
        meta = {"fps": float(task.fps), "frames": task.n_frames, "size": task.size, "source": task.face,
                "identity": task.identity, "group": task.group_id, "speech": spec.speech_id, "filled": faceless,
                "hidden_mouth": int((~visible).sum()), "kind": "synthetic", "lips": "driven",
                "start_frame": task.start_frame, "seed": task.seed,
                "voice": spec.voice if spec.kind == "text" else None, **info}
        drive = np.concatenate([track.as_array(), visible[:, None].astype(np.float32)], axis=1)
        writer.commit(audio_lib.melspectrogram(wav), meta, audio=wav, extra={"visemes": drive},
                      files={"phones.json": phones_lib.phones_to_json(phones)})


def synth_group(task: GroupTask) -> GroupResult:
    """Render one group (the speeches not yet on disk); never raises for a bad source."""
    start = time.perf_counter()
    result = GroupResult(task.group_id, task.face, "done")
    group_dir = Path(task.out) / "groups" / task.group_id
    todo = [s for s in task.speeches if not store.is_clip(group_dir / s.speech_id)]
    if not todo:
        result.status = "exists"
        return result
    try:
        # A video segment where the mouth is mostly hidden is replaced by a later one (4 tries).
        starts = [task.start_frame]
        if not task.photo and task.total_frames > task.n_frames:
            slots = task.total_frames - task.n_frames + 1
            starts += [(task.start_frame + k * task.n_frames) % slots for k in range(1, 4)]
        for first in dict.fromkeys(starts):
            task.start_frame = first
            crops, marks, faceless = _track_source(task)
            visible = mouth_visible(crops, marks)
            if (~visible).sum() <= 0.5 * task.n_frames:
                break
        else:
            raise DCKError(f"the mouth is hidden (a hand, an object) in {int((~visible).sum())} of "
                           f"{task.n_frames} frames")
        contrast = [float(lip_contrast(c, m).min()) for c, m in zip(crops, marks)]
        reference = int(np.argmax(np.where(visible, contrast, -np.inf)))
        rig = MouthRig(marks[reference], crops[reference], task.size)
        problems = []
        for spec in todo:
            try:
                _render_speech(task, spec, rig, crops, marks, visible, faceless)
            except DCKError as exc:  # one bad recording leaves the group's other speeches
                problems.append(f"{spec.speech_id}: {exc}")
                continue
            result.clips += 1
            result.frames += task.n_frames
        if problems:
            result.reason = "; ".join(problems)
            if not result.clips:
                result.status = "skipped"
    except DCKError as exc:
        result.status, result.reason = "skipped", str(exc)
    except Exception as exc:  # noqa: BLE001 (one group must never abort the run)
        result.status, result.reason, result.retry = "skipped", f"{type(exc).__name__}: {exc}", True
    result.seconds = time.perf_counter() - start
    return result


# ---------------------------------------------------------------------------------------------
# Planning and the whole run

def _expand(paths, suffixes: set[str]) -> list[Path]:
    found: list[Path] = []
    for p in paths or []:
        p = Path(p)
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes
                            and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.is_file():
            found.append(p)
        else:
            raise InputError(p, "file or folder not found")
    return found


def _read_texts(texts) -> list[str]:
    """`--text` values: a file of sentences (one per line) or a sentence itself."""
    sentences: list[str] = []
    for t in texts or []:
        path = Path(t)
        if len(t) < 4096 and path.is_file():
            sentences += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        elif t.strip():
            sentences.append(t.strip())
    return sentences


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-")[:40] or "face"


def plan(faces, speech=None, text=None, groups: int = 8, speeches_per_group: int = 4, seconds: float = 8.0,
         size: int = 256, out: str | Path = ".", seed: int = 0, voices=VOICES, motion: float = 1.0
         ) -> tuple[list[GroupTask], list[GroupResult]]:
    """The group tasks of a run (deterministic for a given seed) and the face sources and recordings
    left out (unreadable, or not speech: `speech_problem`)."""
    face_files = _expand(faces, PHOTO_SUFFIXES | VIDEO_SUFFIXES)
    if not face_files:
        raise DCKError("no face photos or videos given (--faces)")
    sources, bad = [], []
    recordings, recording_lengths = [], {}
    for path in _expand(speech, AUDIO_SUFFIXES):
        try:
            wav = audio_lib.load_audio(path)
            problem = speech_problem(wav)
        except DCKError as exc:
            problem = str(exc)
        if problem:
            bad.append(GroupResult("-", str(path), "skipped", problem))
        else:
            recordings.append(path)
            recording_lengths[str(path)] = len(wav) / audio_lib.SAMPLE_RATE
    if speech and not recordings:
        reasons = "".join(f"\n  {r.face}: {r.reason}" for r in bad)
        raise DCKError(f"none of the recordings can be used as speech{reasons}" if reasons
                       else "no recordings found (--speech)")
    sentences = _read_texts(text)
    if not recordings and not sentences:
        sentences = list(SENTENCES)
    if sentences and not phones_lib.espeak_available():
        if not recordings:
            raise DCKError("espeak-ng is not installed (apt-get install espeak-ng); give recordings with --speech")
        sentences = []
    rng = np.random.default_rng(seed)
    for face in face_files:
        try:
            if is_image(face):
                sources.append((face, True, None))
            else:
                info = probe(face)
                sources.append((face, False, (info.fps, count_frames(face, info.fps))))
        except DCKError as exc:
            bad.append(GroupResult("-", str(face), "skipped", str(exc)))
    if not sources:
        raise DCKError("none of the face sources can be read" + "".join(f"\n  {r.reason}" for r in bad))
    tasks = []
    uses: dict[str, int] = {}
    for g in range(groups):
        face, photo, video_info = sources[g % len(sources)]
        k = uses.get(str(face), 0)
        uses[str(face)] = k + 1
        if photo:
            fps, n = float(PHOTO_FPS), max(1, round(seconds * PHOTO_FPS))
            start = 0
        else:
            rate, total = video_info
            fps = float(rate)
            n = max(1, min(round(seconds * fps), total))
            slots = max(1, total - n + 1)
            start = (k * n) % slots if total > n else 0
        group_seed = int(rng.integers(2**31))
        group_rng = np.random.default_rng(group_seed)
        specs = []
        pool = [("recording", r) for r in recordings] + [("text", None)] * (speeches_per_group if sentences else 0)
        order = group_rng.permutation(len(pool))
        picks = [pool[i] for i in order][:speeches_per_group]
        while len(picks) < speeches_per_group:  # fewer recordings than speeches: reuse from other offsets
            picks.append(pool[len(picks) % len(pool)])
        for j, (kind, rec) in enumerate(picks):
            spec = SpeechSpec(f"s{j:02d}", kind, seed=int(group_rng.integers(2**31)),
                              scale=float(group_rng.uniform(0.85, 1.1)))
            if kind == "recording":
                spec.path = str(rec)
                spare = max(0.0, recording_lengths[spec.path] - n / fps)
                spec.offset = float(group_rng.uniform(0, spare)) if spare else 0.0
            else:
                picked = group_rng.permutation(len(sentences))
                spec.texts = [sentences[i] for i in picked[:12]]
                spec.voice = voices[int(group_rng.integers(len(voices)))]
                spec.rate = int(group_rng.integers(140, 200))
            specs.append(spec)
        identity = _slug(Path(face).stem)
        tasks.append(GroupTask(f"g{g:05d}-{identity}", str(face), identity, photo, start, n, fps, size, str(out),
                               group_seed, specs, motion, 0 if photo else video_info[1]))
    return tasks, bad


def synth(faces, out: str | Path, speech=None, text=None, groups: int = 8, speeches_per_group: int = 4,
          seconds: float = 8.0, size: int = 256, workers: int | None = None, seed: int = 0, voices=VOICES,
          motion: float = 1.0, progress: bool = True) -> SynthSummary:
    """Make `groups` groups of `speeches_per_group` clips of `seconds` each in `out` (see the module
    doc). `faces`: photos/videos or folders of them; `speech`: recordings or folders; `text`:
    sentences or files of sentences for espeak-ng (the built-in sentences when neither is given).
    Re-running with the same arguments resumes: finished clips are kept."""
    start = time.perf_counter()
    if speeches_per_group < 2:
        raise DCKError("a group needs at least 2 speeches (--speeches-per-group)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store.remove_partials(out / "groups", max_depth=2)
    tasks, bad = plan(faces, speech, text, groups, speeches_per_group, seconds, size, out, seed, voices, motion)
    summary = SynthSummary(out, left_out=bad)

    def collect(task: GroupTask, result: GroupResult | None) -> None:
        if result is None:
            result = GroupResult(task.group_id, task.face, "skipped", "the worker process crashed", retry=True)
        {"done": summary.done, "exists": summary.existing, "skipped": summary.skipped}[result.status].append(result)

    run_tasks(synth_group, tasks, workers or default_workers(), progress, "synth", "group", collect)
    (out / "synth_plan.json").write_text(json.dumps([asdict(t) for t in tasks], indent=1))
    skipped = [{"source": f"{r.face}#{r.group_id}", "reason": r.reason, "retry": r.retry} for r in summary.skipped]
    skipped += [{"source": r.face, "reason": r.reason, "retry": False} for r in summary.left_out]
    store.write_index(out, skipped, expected_groups={t.group_id: [s.speech_id for s in t.speeches] for t in tasks})
    summary.seconds = time.perf_counter() - start
    return summary


# ---------------------------------------------------------------------------------------------
# Looking at the result

def contact_sheet(out: str | Path, path: str | Path, groups: int = 3, columns: int = 8, tile: int = 128) -> Path:
    """A PNG of synthetic frames: for each of the first `groups` groups, one row per clip, `columns`
    frames spread over the clip (the same frame indices in every row of a group, so rows differ
    only by the mouth), each labelled with the openness that drove it."""
    rows = []
    for group, clips in list(store.iter_groups(Path(out)))[:groups]:
        if not clips:
            continue
        n = min(store.read_meta(c)["frames"] for c in clips)
        # Frames where the speeches of the group differ most in openness show the most.
        opens = np.stack([np.load(c / "visemes.npy")[:n, 0] for c in clips]) if all(
            (c / "visemes.npy").is_file() for c in clips) else np.zeros((len(clips), n))
        spread = opens.max(axis=0) - opens.min(axis=0)
        if all((c / "visemes.npy").is_file() for c in clips):
            rendered = np.load(clips[0] / "visemes.npy")[:n]
            if rendered.shape[1] > 3:
                spread = np.where(rendered[:, 3] > 0, spread, -1.0)
        candidates = np.argsort(-spread)
        chosen: list[int] = []
        for i in candidates:
            if all(abs(int(i) - j) >= max(1, n // (3 * columns)) for j in chosen):
                chosen.append(int(i))
            if len(chosen) == columns:
                break
        chosen.sort()
        for c, clip in enumerate(clips):
            frames = np.load(clip / "frames.npy", mmap_mode="r")
            tiles = []
            for i in chosen:
                img = cv2.resize(np.asarray(frames[i]), (tile, tile), interpolation=cv2.INTER_AREA)
                label = f"{group.name[:10]}/{clip.name} f{i} o={opens[c, i]:.2f}"
                cv2.putText(img, label, (2, tile - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.28, (255, 255, 0), 1, cv2.LINE_AA)
                tiles.append(img)
            rows.append(np.concatenate(tiles, axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    if not rows:
        raise DCKError(f"{out}: no synthetic groups to show")
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    path = Path(path)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def openness_check(out: str | Path, every: int = 2, max_clips: int | None = None) -> dict:
    """How well the rendered mouths follow the visemes: MediaPipe (IMAGE mode, on the stored crops,
    upscaled to 256 if smaller) measures the lip gap (inner-lip distance / mouth width) on every
    `every`-th frame of the synthetic clips. Returns the Pearson r between the openness that drove
    a frame and the measured gap, and the measured gap at bilabial frames (lips should touch)."""
    from .render import lip_gap

    wanted, measured, closed = [], [], []
    clips = [c for _, members in store.iter_groups(Path(out)) for c in members if (c / "visemes.npy").is_file()]
    with LandmarkDetector(num_faces=1, video=False) as detector:
        for clip in clips[:max_clips]:
            frames = np.load(clip / "frames.npy", mmap_mode="r")
            drive = np.load(clip / "visemes.npy")
            for i in range(0, len(frames), every):
                if drive.shape[1] > 3 and not drive[i, 3]:
                    continue  # mouth hidden in the source: not rendered
                image = np.asarray(frames[i])
                if image.shape[0] < 256:
                    image = cv2.resize(image, (256, 256), interpolation=cv2.INTER_CUBIC)
                faces = detector.detect(np.ascontiguousarray(image))
                if not faces:
                    continue
                wanted.append(float(drive[i, 0]))
                measured.append(lip_gap(faces[0].landmarks[:, :2]))
                closed.append(bool(drive[i, 2]))
    wanted, measured, closed = np.array(wanted), np.array(measured), np.array(closed, bool)
    r = float(np.corrcoef(wanted, measured)[0, 1]) if len(wanted) > 2 and wanted.std() > 0 else float("nan")
    return {"clips": len(clips[:max_clips]), "frames": len(wanted), "pearson_r": r,
            "gap_at_bilabials_mean": float(measured[closed].mean()) if closed.any() else float("nan"),
            "gap_at_bilabials_p95": float(np.percentile(measured[closed], 95)) if closed.any() else float("nan"),
            "bilabial_frames": int(closed.sum()),
            "gap_when_open_mean": float(measured[wanted > 0.4].mean()) if (wanted > 0.4).any() else float("nan")}
