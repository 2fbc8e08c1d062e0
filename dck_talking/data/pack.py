"""A training pack: everything `RenderedPairs` draws pairs from, small enough to carry to a GPU machine.

    PACK/faces.json      identities: {"id", "split", "source", "derived"?, "frames": [frame numbers]}
    PACK/faces/F.jpg     frame F: the face in the canonical alignment with a margin (`MARGIN` x the crop)
    PACK/landmarks.npy   float32 (F, 478, 2): each frame's landmarks in its image's pixels
    PACK/speech.npz      mel uint8 (80, N) and track uint8 (N, 3) of all utterances end to end,
                         offsets int64 (U + 1,), voice int32 (U,), train bool (U,)
    PACK/speech.json     {"voices": [...], "utterances": [...]}: names for the indices above

Faces: photos and videos (a few frames of each), found with MediaPipe, aligned like the pipeline
aligns them, plus derived identities: landmark-aligned morphs of two real ones. Speech: mel
spectrograms and per-mel-step mouth parameters (`visemes.track` at 80 steps per second: openness,
spread and closed), quantised to a byte each (0.03 mel units, about 0.4 dB; 1/255 of the mouth ranges).
An hour of speech takes 23 MB, a face about 40 kB.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial import Delaunay

from .. import audio as audio_lib
from ..errors import DCKError
from ..face import LandmarkDetector, align_face
from . import visemes
from .phones import Phone

MARGIN = 1.5  # a pack image shows MARGIN x the crop's field, so head motion never reaches its edge
JPEG_QUALITY = 88
MESH = 468  # landmarks used for morphing (the iris points are left out)


@dataclass(frozen=True)
class FaceSource:
    """A face to pack: a photo or a video of one person (the largest face in it)."""

    id: str
    path: str
    split: str = "train"


@dataclass(frozen=True)
class SpeechItem:
    """One utterance to pack: its sound (16 kHz mono) and phones."""

    id: str
    voice: str
    wav: np.ndarray
    phones: list[Phone]
    train: bool = True


def margin_matrix(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(2, 3) frame -> pack-image matrix: the canonical `size` crop sits in the middle of a
    `margin_size(size)` image at the same scale."""
    matrix = align_face(landmarks, size).to_matrix(size)
    matrix[:, 2] += (margin_size(size) - size) / 2
    return matrix


def margin_size(size: int) -> int:
    return int(round(size * MARGIN / 2)) * 2


def face_frames(path: str | Path, size: int, detector: LandmarkDetector, max_frames: int = 8
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, landmarks) of the largest face in a photo, or in up to `max_frames` frames spread over
    a video, in the pack's alignment. Frames without a face are left out."""
    from ..image import is_image, read_image
    from ..video import count_frames, iter_frames_at

    if is_image(path):
        frames: Iterable[np.ndarray] = [read_image(path)]
    else:
        total = count_frames(path)
        frames = iter_frames_at(path, sorted({int(i) for i in np.linspace(0, total - 1, min(max_frames, total))}))
    out = []
    side = margin_size(size)
    for frame in frames:
        faces = detector.detect(frame)
        if not faces:
            continue
        marks = max(faces, key=lambda f: f.area).landmarks[:, :2]
        matrix = margin_matrix(marks, size)
        image = cv2.warpAffine(frame, matrix, (side, side), flags=cv2.INTER_AREA if matrix[0, 0] < 1 else cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT_101)
        out.append((image, (marks @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)))
    return out


def mesh_warp(image: np.ndarray, source: np.ndarray, target: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """`image` warped piecewise-affinely so that each triangle of `source` points lands on the same
    triangle of `target` points; pixels outside every triangle keep their place."""
    h, w = image.shape[:2]
    index = np.full((h, w), -1, np.int32)
    for k, tri in enumerate(target[triangles]):
        cv2.fillConvexPoly(index, np.round(tri * 16).astype(np.int32), k, lineType=cv2.LINE_8, shift=4)
    ones = np.ones((len(triangles), 3, 1))
    affine = np.linalg.solve(np.concatenate([target[triangles], ones], axis=2), source[triangles])
    map_y, map_x = np.mgrid[0:h, 0:w].astype(np.float32)
    ys, xs = np.nonzero(index >= 0)
    coeff = affine[index[ys, xs]]
    map_x[ys, xs] = xs * coeff[:, 0, 0] + ys * coeff[:, 1, 0] + coeff[:, 2, 0]
    map_y[ys, xs] = xs * coeff[:, 0, 1] + ys * coeff[:, 1, 1] + coeff[:, 2, 1]
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def morph(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray], weight: float
          ) -> tuple[np.ndarray, np.ndarray]:
    """A new face between two aligned ones: both warped onto their landmarks' weighted mean shape,
    then cross-dissolved with `weight` (0 = the first face)."""
    (a, marks_a), (b, marks_b) = first, second
    side = a.shape[0]
    border = np.array([[x, y] for x in (0, side / 2, side - 1) for y in (0, side / 2, side - 1) if (x, y) != (side / 2, side / 2)])
    mean = (1 - weight) * marks_a + weight * marks_b
    points = np.concatenate([mean[:MESH], border])
    triangles = Delaunay(points).simplices
    warped_a = mesh_warp(a, np.concatenate([marks_a[:MESH], border]), points, triangles)
    warped_b = mesh_warp(b, np.concatenate([marks_b[:MESH], border]), points, triangles)
    blend = cv2.addWeighted(warped_a, 1 - weight, warped_b, weight, 0.0)
    return blend, mean.astype(np.float32)


def quantise_mel(mel: np.ndarray) -> np.ndarray:
    return np.round((np.clip(mel, -audio_lib.MAX_ABS, audio_lib.MAX_ABS) + audio_lib.MAX_ABS)
                    * (255 / (2 * audio_lib.MAX_ABS))).astype(np.uint8)


def dequantise_mel(mel: np.ndarray) -> np.ndarray:
    return mel.astype(np.float32) * (2 * audio_lib.MAX_ABS / 255) - audio_lib.MAX_ABS


def step_track(phones: list[Phone], n_steps: int) -> np.ndarray:
    """(n_steps, 3) float32 mouth parameters at each mel step's time: openness, spread, closed."""
    track = visemes.track(phones, n_steps, audio_lib.MEL_STEPS_PER_SECOND)
    return track.as_array()


def quantise_track(track: np.ndarray) -> np.ndarray:
    scaled = np.stack([track[:, 0], (track[:, 1] + 1) / 2, track[:, 2]], axis=1)
    return np.round(np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def dequantise_track(track: np.ndarray) -> np.ndarray:
    scaled = track.astype(np.float32) / 255
    return np.stack([scaled[:, 0], scaled[:, 1] * 2 - 1, scaled[:, 2]], axis=1)


def write_faces(sources: Sequence[FaceSource], out: Path, size: int = 256, morphs: int = 0, seed: int = 0,
                max_frames: int = 8) -> dict:
    """Find, align and store the faces of `sources` (+ `morphs` morphs of random pairs of training
    faces) under `out`; returns a summary (counts, and the sources left out with the reason)."""
    (out / "faces").mkdir(parents=True, exist_ok=True)
    identities, landmarks, left_out = [], [], []
    with LandmarkDetector(num_faces=4, video=False) as detector:
        for source in sources:
            try:
                frames = face_frames(source.path, size, detector, max_frames)
            except DCKError as exc:
                frames, reason = [], str(exc)
            else:
                reason = "no face found"
            if not frames:
                left_out.append(f"{source.path}: {reason}")
                continue
            numbers = []
            for image, marks in frames:
                numbers.append(len(landmarks))
                _write_jpeg(out / "faces" / f"{len(landmarks)}.jpg", image)
                landmarks.append(marks)
            identities.append({"id": source.id, "split": source.split, "source": source.path, "frames": numbers})
    rng = np.random.default_rng(seed)
    train = [i for i in identities if i["split"] == "train"]
    for k in range(morphs if len(train) >= 2 else 0):
        a, b = rng.choice(len(train), 2, replace=False)
        first, second = (train[i]["frames"][0] for i in (a, b))
        image, marks = morph(_read_jpeg(out / "faces" / f"{first}.jpg", landmarks[first]),
                             _read_jpeg(out / "faces" / f"{second}.jpg", landmarks[second]), float(rng.uniform(0.3, 0.7)))
        _write_jpeg(out / "faces" / f"{len(landmarks)}.jpg", image)
        identities.append({"id": f"morph-{k}", "split": "train", "source": f"{train[a]['id']} + {train[b]['id']}",
                           "derived": "morph", "frames": [len(landmarks)]})
        landmarks.append(marks)
    np.save(out / "landmarks.npy", np.asarray(landmarks, np.float32).reshape(-1, 478, 2))
    (out / "faces.json").write_text(json.dumps({"size": size, "identities": identities}, indent=1))
    return {"identities": len(identities), "frames": len(landmarks), "left_out": left_out}


def write_speech(items: Iterable[SpeechItem], out: Path) -> dict:
    """Store the utterances' quantised mels and mouth tracks in `out/speech.npz` (+ names in speech.json)."""
    mels, tracks, offsets, voices, train, names, voice_names = [], [], [0], [], [], [], []
    for item in items:
        mel = audio_lib.melspectrogram(item.wav)
        mels.append(quantise_mel(mel))
        tracks.append(quantise_track(step_track(item.phones, mel.shape[1])))
        offsets.append(offsets[-1] + mel.shape[1])
        if item.voice not in voice_names:
            voice_names.append(item.voice)
        voices.append(voice_names.index(item.voice))
        train.append(item.train)
        names.append(item.id)
    if not names:
        raise DCKError(f"{out}: no speech to pack")
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "speech.npz", mel=np.concatenate(mels, axis=1), track=np.concatenate(tracks),
                        offsets=np.asarray(offsets, np.int64), voice=np.asarray(voices, np.int32),
                        train=np.asarray(train, bool))
    (out / "speech.json").write_text(json.dumps({"voices": voice_names, "utterances": names}))
    seconds = offsets[-1] / audio_lib.MEL_STEPS_PER_SECOND
    return {"utterances": len(names), "voices": len(voice_names), "hours": seconds / 3600}


def faceset_sources(faceset: str | Path) -> list[FaceSource]:
    """The faces of a face set (`dck-talking faceset` output: `<split>/<id>.png|.mp4`), by split."""
    faceset = Path(faceset)
    if not (faceset / "index.json").is_file():
        raise DCKError(f"{faceset}: not a face set (no index.json; build one with dck-talking faceset)")
    rows = json.loads((faceset / "index.json").read_text())
    rows = rows["faces"] if isinstance(rows, dict) else rows
    sources = []
    for row in rows:
        found = sorted((faceset / row["split"]).glob(f"{row['id']}.*"))
        if found:
            sources.append(FaceSource(row["id"], str(found[0]), row["split"]))
    return sources


def corpus_speech(corpus: str | Path, hours: float, seed: int = 0, augmented: float = 0.5,
                  held_per_voice: int = 1, sources: list[str] | None = None) -> Iterator[SpeechItem]:
    """Utterances of a speech corpus (`dck-talking corpus`) for a pack: about `hours` of its training
    voices, drawn in turn from every voice so that each one is heard, `augmented` of them made into
    other voices first (`voice_augment`); then, held out of training (`train=False`), every utterance
    of its eval voices and `held_per_voice` unheard utterances of each training voice (a voice the
    model knows saying something new). `sources` (engine names or shell patterns, as for `corpus`)
    keeps only those engines' voices. The corpus is read and the utterances chosen at the call (a bad
    corpus or `sources` fails before anything is written); their audio as they are iterated."""
    from .corpus import engine_chosen, load_corpus

    data = load_corpus(corpus)
    utterances = [u for u in data.utterances if engine_chosen(data.voices[u.voice]["engine"], sources)]
    if sources is not None and not utterances:
        raise DCKError(f"{corpus}: no voice of {' '.join(sources)}")
    rng = np.random.default_rng(seed)
    queues: dict[str, list] = {}
    for utterance in utterances:
        if utterance.split == "train":
            queues.setdefault(utterance.voice, []).append(utterance)
    queues = {voice: [items[i] for i in rng.permutation(len(items))] for voice, items in sorted(queues.items())}
    held = [u for queue in queues.values() for u in queue[:held_per_voice]]
    queues = {voice: queue[held_per_voice:] for voice, queue in queues.items()}
    chosen, seconds = [], 0.0
    while seconds < hours * 3600 and any(queues.values()):
        for queue in queues.values():
            if queue and seconds < hours * 3600:
                chosen.append(queue.pop(0))
                seconds += chosen[-1].seconds
    return _speech_items(data, chosen, held + [u for u in utterances if u.split != "train"], augmented, rng)


def _speech_items(data, chosen: list, held: list, augmented: float,
                  rng: np.random.Generator) -> Iterator[SpeechItem]:
    """The `chosen` training utterances of corpus `data` (`augmented` of them made into other voices),
    then the `held` ones as recorded."""
    from .voice_augment import augment

    for utterance in chosen:
        wav, phones = data.audio(utterance), data.phones(utterance)
        if rng.random() < augmented:
            wav, phones = augment(wav, phones, rng)
        yield SpeechItem(utterance.id, utterance.voice, wav, phones, True)
    for utterance in held:
        yield SpeechItem(utterance.id, utterance.voice, data.audio(utterance), data.phones(utterance), False)


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])


def _read_jpeg(path: Path, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), landmarks


@dataclass
class Pack:
    """A pack read back: identities, their frames' landmarks, and the speech arrays (mel and track
    dequantised on access by `RenderedPairs`)."""

    root: Path
    size: int
    identities: list[dict]
    landmarks: np.ndarray
    mel: np.ndarray
    track: np.ndarray
    offsets: np.ndarray
    voice: np.ndarray
    train: np.ndarray
    voice_names: list[str]

    @classmethod
    def load(cls, root: str | Path) -> Pack:
        """Read a pack; one with speech only (no faces.json) has no identities."""
        root = Path(root)
        if not (root / "speech.npz").is_file():
            raise DCKError(f"{root}: not a training pack (no speech.npz)")
        faces = json.loads((root / "faces.json").read_text()) if (root / "faces.json").is_file() else {}
        landmarks = np.load(root / "landmarks.npy") if faces else np.zeros((0, 478, 2), np.float32)
        with np.load(root / "speech.npz") as speech:
            arrays = {key: speech[key] for key in ("mel", "track", "offsets", "voice", "train")}
        names = json.loads((root / "speech.json").read_text())["voices"]
        return cls(root, int(faces.get("size", 256)), faces.get("identities", []), landmarks, **arrays, voice_names=names)

    def utterance_spans(self, train: bool = True) -> list[tuple[int, int]]:
        """(first, end) mel steps of each non-empty training (or held-out) utterance in `mel` and `track`."""
        return [(int(a), int(b)) for a, b, keep in zip(self.offsets[:-1], self.offsets[1:], self.train)
                if keep == train and b > a]

    def image(self, frame: int) -> np.ndarray:
        """Pack image of frame `frame`, RGB uint8."""
        return cv2.cvtColor(cv2.imread(str(self.root / "faces" / f"{frame}.jpg")), cv2.COLOR_BGR2RGB)
