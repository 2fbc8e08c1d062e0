"""`RenderedPairs`: training pairs rendered when they are drawn, from a pack's faces and speech.

Item `k` (always the same for a given seed) is one moment of one face: an identity and a frame of
it, a random head pose (perspective turn, shift, scale and face shape, then aligned the way the
pipeline aligns a tracked face), and two mouths rendered onto that one crop by `MouthRig`: the
input's from another moment of some speech (or the face's own mouth), the target's from the speech
whose mel window the item carries. The two frames differ only in the mouth, as the paper's pairs,
and since both are warps of one crop the flow from input to target and the painted mouth interior
come as labels (`MouthRig.pair_flow`). Then what real inputs look like, applied alike to both:
colour and lighting, mirroring, a low-resolution face scaled up, blur, noise and JPEG artefacts.

No pair is stored, so the combinations are unlimited; DataLoader workers render in parallel.
Items: `input`, `target` (3, S, S) float32 in [0, 1]; `mel` (1, 80, 16); `lips` (40, 2) the
target's lip landmarks; `visemes` (3,) the target mouth (openness, spread, closed); `flow` (2, S, S)
in pixels (target pixel p shows input pixel p + flow); `flow_valid` and `painted` (1, S, S).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from fnmatch import fnmatch

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..audio import WINDOW
from ..face import align_face
from .head import motion_homography
from .pack import Pack, dequantise_mel, dequantise_track, margin_size
from .render import MouthRig, lips_of

POSE_STD = np.array([7.0, 5.0, 3.0, 0.02, 0.02, 0.04])  # yaw, pitch, roll (degrees), shift, log scale (see synth)
SOURCE_MOUTH = 0.25  # share of items whose input shows the face's own mouth (as a photo does)
RIGS_PER_WORKER = 256


class RenderedPairs(Dataset):
    """Pairs of a pack's `split` ("train" or "eval": its identities and its voices; `speech_split` and
    `voices`, names or shell patterns such as "espeak-ng/*", choose the speech apart from the faces), `length` items long (any number: items are
    drawn, not stored). `window_lead` is how many mel steps of sound before the frame its window holds
    (0: the window starts at the frame, as `audio.window_starts`); `degrade=False` leaves out the
    colour, mirroring and degradations (for measurements)."""

    def __init__(self, pack: Pack | str, split: str = "train", length: int = 1_000_000, seed: int = 0,
                 degrade: bool = True, window_lead: int = 0, speech_split: str | None = None,
                 voices: list[str] | None = None) -> None:
        self.pack = pack if isinstance(pack, Pack) else Pack.load(pack)
        self.size = self.pack.size
        self.split, self.length, self.seed, self.degrade, self.window_lead = split, length, seed, degrade, window_lead
        self.identities = [i for i in self.pack.identities if i["split"] == split]
        keep = self.pack.train == ((speech_split or split) == "train")
        if voices is not None:  # names or shell patterns ("espeak-ng/*")
            chosen = [k for k, name in enumerate(self.pack.voice_names) if any(fnmatch(name, v) for v in voices)]
            keep &= np.isin(self.pack.voice, chosen)
        self.utterances = np.flatnonzero(keep)
        lengths = np.diff(self.pack.offsets)[self.utterances] - WINDOW
        if not self.identities or not len(self.utterances) or (lengths <= 0).all():
            raise ValueError(f"{self.pack.root}: the pack has no {split} identities or speech")
        self.weights = np.maximum(lengths, 0) / np.maximum(lengths, 0).sum()
        self._rigs: OrderedDict[int, tuple[np.ndarray, np.ndarray, MouthRig]] = OrderedDict()

    def __len__(self) -> int:
        return self.length

    def __getstate__(self) -> dict:  # workers build their own rigs
        return {**self.__dict__, "_rigs": OrderedDict()}

    def _face(self, frame: int) -> tuple[np.ndarray, np.ndarray, MouthRig]:
        """Pack image, landmarks and mouth rig of a frame (the rig is set up on its canonical crop)."""
        if frame not in self._rigs:
            image, marks = self.pack.image(frame), self.pack.landmarks[frame]
            offset = (margin_size(self.size) - self.size) / 2
            crop = image[int(offset):int(offset) + self.size, int(offset):int(offset) + self.size]
            self._rigs[frame] = (image, marks, MouthRig(marks - offset, crop, self.size))
            if len(self._rigs) > RIGS_PER_WORKER:
                self._rigs.popitem(last=False)
        self._rigs.move_to_end(frame)
        return self._rigs[frame]

    def _moment(self, rng: np.random.Generator) -> tuple[int, int]:
        """A random (utterance, mel step) with a whole window around it."""
        u = int(rng.choice(self.utterances, p=self.weights))
        start, stop = int(self.pack.offsets[u]), int(self.pack.offsets[u + 1])
        step = int(rng.integers(start + self.window_lead, stop - WINDOW + self.window_lead + 1))
        return u, step

    def _mouth(self, step: int) -> np.ndarray:
        return dequantise_track(self.pack.track[step:step + 1])[0]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index])
        identity = self.identities[int(rng.integers(len(self.identities)))]
        image, marks, rig = self._face(int(rng.choice(identity["frames"])))
        crop, landmarks = posed_crop(image, marks, self.size, rng)
        _, step = self._moment(rng)
        target_mouth = self._mouth(step)
        first = None
        if rng.random() >= SOURCE_MOUTH:
            mouth = self._mouth(self._moment(rng)[1])
            first = rig.draw(crop, landmarks, float(mouth[0]), float(mouth[1]))
        second = rig.draw(crop, landmarks, float(target_mouth[0]), float(target_mouth[1]))
        flow, valid = rig.pair_flow(first, second)
        valid &= np.abs(flow).max(axis=-1) < self.size / 6  # a near-collapsed triangle's extremes
        source = crop if first is None else first.image
        images = [source, second.image]
        lips = lips_of(second.landmarks)
        painted = second.painted
        if self.degrade:
            images = looks(images, rng)
            if rng.random() < 0.5:  # mirrored: a mirror image's flow points the other way
                images = [im[:, ::-1] for im in images]
                flow, valid, painted = flow[:, ::-1] * np.array([-1, 1], np.float32), valid[:, ::-1], painted[:, ::-1]
                lips = lips * np.array([-1, 1], np.float32) + np.array([self.size - 1, 0], np.float32)
        first_step = step - self.window_lead
        mel = dequantise_mel(self.pack.mel[:, first_step:first_step + WINDOW])
        return {"input": _tensor(images[0]), "target": _tensor(images[1]), "mel": torch.from_numpy(mel)[None],
                "lips": torch.from_numpy(np.ascontiguousarray(lips, np.float32)),
                "visemes": torch.from_numpy(target_mouth),
                "flow": torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1))),
                "flow_valid": torch.from_numpy(np.ascontiguousarray(valid))[None].float(),
                "painted": torch.from_numpy(np.ascontiguousarray(painted))[None]}


def worker_init(_: int) -> None:
    """For DataLoader workers: one OpenCV thread each (the workers are the parallelism)."""
    cv2.setNumThreads(1)


def posed_crop(image: np.ndarray, landmarks: np.ndarray, size: int, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
    """The face of a pack image turned to a random head pose and a slightly different face shape
    (wider or longer), then aligned to the canonical `size` crop as the pipeline aligns it:
    (crop, its landmarks (478, 2))."""
    points = landmarks[:, :2].astype(np.float64)
    x0, y0 = points.min(axis=0)
    x1, y1 = points.max(axis=0)
    center, width = np.array([(x0 + x1) / 2, (y0 + y1) / 2]), float(x1 - x0)
    pose = motion_homography(rng.standard_normal(6) * POSE_STD, center, width)
    aspect = math.exp(rng.normal(0, 0.05))
    shape = np.array([[aspect, 0, (1 - aspect) * center[0]], [0, 1 / aspect, (1 - 1 / aspect) * center[1]], [0, 0, 1]])
    moved = cv2.perspectiveTransform(points[None], pose @ shape)[0]
    align = np.vstack([align_face(moved, size).to_matrix(size), [0, 0, 1]]) @ pose @ shape
    crop = cv2.warpPerspective(image, align, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return crop, cv2.perspectiveTransform(points[None], align)[0].astype(np.float32)


def looks(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The same random colour, lighting and degradation applied to every image of a pair: skin tone
    and white balance, a light from one side, then maybe a low-resolution face (60-120 px wide in the
    source) scaled up, blur, sensor noise and JPEG compression."""
    size = images[0].shape[0]
    gains = np.exp(rng.normal(0, 0.08, 3)).astype(np.float32)
    gamma = float(np.exp(rng.normal(0, 0.15)))
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.linspace(-1, 1, size, dtype=np.float32)
    light = 1 + rng.uniform(0, 0.25) * (math.cos(angle) * ramp[None, :] + math.sin(angle) * ramp[:, None])
    low = size * rng.uniform(0.4, 0.8) if rng.random() < 0.35 else None  # the crop's face is about 150 px wide
    blur = rng.uniform(0.3, 1.2) if rng.random() < 0.2 else 0.0
    noise = rng.normal(0, rng.uniform(1, 5), (size, size, 1)).astype(np.float32) if rng.random() < 0.25 else None
    quality = int(rng.integers(35, 90)) if rng.random() < 0.4 else None
    out = []
    for image in images:
        x = (image.astype(np.float32) / 255) ** gamma * gains * light[..., None]
        x = np.clip(x * 255, 0, 255)
        if low is not None:
            small = cv2.resize(x, (int(low), int(low)), interpolation=cv2.INTER_AREA)
            x = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
        if blur:
            x = cv2.GaussianBlur(x, (0, 0), blur)
        if noise is not None:
            x = x + noise
        x = np.clip(x + 0.5, 0, 255).astype(np.uint8)
        if quality is not None:
            encoded = cv2.imencode(".jpg", cv2.cvtColor(x, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
            x = cv2.cvtColor(cv2.imdecode(encoded, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        out.append(x)
    return out


def _tensor(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32) / 255)
