"""`PairDataset`: training pairs from prepared clips and synthetic (or user-supplied) groups.

Two kinds of items, both a dict of float32 tensors `input` (3, S, S) and `target` (3, S, S) in
[0, 1], `mel` (1, 80, 16) (the target's audio window for the frame) and `lips` (40, 2) (the
target's lip landmarks in pixels of the S crop):

- Group pairs (synth groups, or paired folders laid out like them): clips V1, V2 of one group
  share identity and head motion; input = V1 frame i, target = V2 frame i, mel = A2 window i,
  for every ordered pair (both directions) and every frame.
- Single ordinary clips (prepare output): input = frame i with its mouth region replaced by the
  mouth of frame j of the same clip (|i - j| >= 5, chosen by the seed), aligned on the mouth
  corners and blended with a soft mask around both mouths; target = frame i; mel = window i.
  The model must then redraw the mouth for the audio, as with real pairs.

Indexing is deterministic for a given seed (item k is always the same pair). Arrays are read with
`np.load(mmap_mode="r")`: DataLoader workers share the operating system's page cache and only the
frames an item needs are read.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..audio import frame_windows
from ..errors import DCKError
from . import store

MIN_OFFSET = 5  # frames between the target frame and the moment its input's mouth comes from
OPEN_FILES = 64  # clips kept memory-mapped per worker


@dataclass(frozen=True)
class _Clip:
    path: Path
    frames: int
    fps: float
    size: int


@dataclass(frozen=True)
class _Group:
    clips: tuple[_Clip, ...]
    frames: int  # common length

    @property
    def count(self) -> int:
        k = len(self.clips)
        return k * (k - 1) * self.frames


def _load_clip(folder: Path) -> _Clip | None:
    if not store.is_clip(folder):
        return None
    meta = json.loads((folder / "meta.json").read_text())
    frames = np.load(folder / "frames.npy", mmap_mode="r")
    return _Clip(folder, int(min(meta.get("frames", len(frames)), len(frames))), float(meta["fps"]),
                 int(frames.shape[1]))


def _children(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def discover(root: str | Path) -> tuple[list[_Clip], list[_Group]]:
    """Single clips and groups under a root: a prepare/synth OUT folder (clips/, groups/), a folder
    of groups (<group>/<speech>/ clip folders), a single group folder, or a clip folder."""
    root = Path(root)
    if not root.is_dir():
        raise DCKError(f"{root}: training data folder not found")
    singles: list[_Clip] = []
    groups: list[_Group] = []

    def add_group(folder: Path) -> None:
        clips = [c for c in (_load_clip(p) for p in _children(folder)) if c is not None]
        if len(clips) >= 2:
            groups.append(_Group(tuple(clips), min(c.frames for c in clips)))
        else:
            singles.extend(clips)

    if store.is_clip(root):
        clip = _load_clip(root)
        return ([clip] if clip else []), []
    structured = False
    if (root / "clips").is_dir():
        structured = True
        singles += [c for c in (_load_clip(p) for p in _children(root / "clips")) if c is not None]
    if (root / "groups").is_dir():
        structured = True
        for group in _children(root / "groups"):
            add_group(group)
    if not structured:
        children = _children(root)
        if sum(store.is_clip(c) for c in children) >= 2 and all(store.is_clip(c) for c in children):
            add_group(root)  # the root is one group
        else:
            for child in children:
                if store.is_clip(child):
                    clip = _load_clip(child)
                    if clip:
                        singles.append(clip)
                else:
                    add_group(child)
    return singles, groups


class PairDataset(Dataset):
    """Training pairs over one or more roots (see the module doc). `size` resizes crops stored at
    another size; `window` is the mel window length in steps (16 for the Wav2Lip front end), starting
    `window_lead` steps before the frame (the model's `window_lead`)."""

    def __init__(self, roots: list[str | Path] | str | Path, size: int = 256, window: int = 16, seed: int = 0,
                 window_lead: int = 0) -> None:
        if isinstance(roots, (str, Path)):
            roots = [roots]
        if window != 16:
            raise ValueError("the audio front end uses 16-step mel windows (window=16)")
        self.size, self.window, self.seed, self.window_lead = size, window, seed, window_lead
        self.singles: list[_Clip] = []
        self.groups: list[_Group] = []
        for root in roots:
            singles, groups = discover(root)
            self.singles += [c for c in singles if c.frames > 2 * MIN_OFFSET]
            self.groups += [g for g in groups if g.frames > 0]
        counts = [g.count for g in self.groups] + [c.frames for c in self.singles]
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._cache: OrderedDict[Path, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def n_group_pairs(self) -> int:
        return int(self._offsets[len(self.groups)])

    def __getstate__(self) -> dict:  # workers open their own memory maps
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        return state

    def _arrays(self, clip: _Clip) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        arrays = self._cache.get(clip.path)
        if arrays is None:
            arrays = tuple(np.load(clip.path / name, mmap_mode="r") for name in ("frames.npy", "mel.npy", "lips.npy"))
            self._cache[clip.path] = arrays
            if len(self._cache) > OPEN_FILES:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(clip.path)
        return arrays

    def locate(self, index: int) -> tuple[str, object, int, int, int]:
        """What item `index` is: ("group", group, input clip, target clip, frame) or
        ("single", clip, frame i, mouth frame j, 0)."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        part = int(np.searchsorted(self._offsets, index, side="right") - 1)
        local = index - int(self._offsets[part])
        if part < len(self.groups):
            group = self.groups[part]
            k = len(group.clips)
            pair, frame = divmod(local, group.frames)
            a, b = divmod(pair, k - 1)
            b += b >= a
            return "group", group, a, b, frame
        clip = self.singles[part - len(self.groups)]
        i = local
        rng = np.random.default_rng([self.seed, index])
        choices = clip.frames - (min(i + MIN_OFFSET, clip.frames) - max(i - MIN_OFFSET + 1, 0))
        j = int(rng.integers(choices))
        j = j if j <= i - MIN_OFFSET else j + (min(i + MIN_OFFSET, clip.frames) - max(i - MIN_OFFSET + 1, 0))
        return "single", clip, i, j, 0

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        kind, where, x, y, frame = self.locate(int(index))
        if kind == "group":
            source, target_clip = where.clips[x], where.clips[y]
            src_frames = self._arrays(source)[0]
            frames, mel, lips = self._arrays(target_clip)
            image_in = np.array(src_frames[frame])
            image_out = np.array(frames[frame])
            target_lips = np.array(lips[frame], np.float32)
            fps, scale_from, i = target_clip.fps, target_clip.size, frame
        else:
            clip, i, j = where, x, y
            frames, mel, lips = self._arrays(clip)
            image_out = np.array(frames[i])
            target_lips = np.array(lips[i], np.float32)
            image_in = swap_mouth(image_out, np.asarray(frames[j]), target_lips, np.asarray(lips[j], np.float32))
            fps, scale_from = clip.fps, clip.size
        window = frame_windows(np.asarray(mel), 1, fps, first=i, lead=self.window_lead)[0]
        if scale_from != self.size:
            image_in, image_out = (cv2.resize(im, (self.size, self.size), interpolation=cv2.INTER_AREA
                                              if scale_from > self.size else cv2.INTER_LINEAR)
                                   for im in (image_in, image_out))
            target_lips = target_lips * (self.size / scale_from)
        return {"input": _to_tensor(image_in), "target": _to_tensor(image_out), "mel": window,
                "lips": torch.from_numpy(np.ascontiguousarray(target_lips, np.float32))}


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    chw = np.ascontiguousarray(np.transpose(image, (2, 0, 1)), dtype=np.float32)
    chw /= 255.0
    return torch.from_numpy(chw)


# Positions of the mouth corners (61, 291) in `LIP_INDICES` order.
_CORNERS = (7, 25)


def mouth_mask(shape: tuple[int, int], lips: list[np.ndarray], size: int, grow: float = 0.18, soft: float = 0.05,
               offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Soft float32 mask of `shape` (an ROI whose top-left corner is `offset` in the crop) around the
    mouths given by (40, 2) lip landmarks: their hull grown by `grow` x mouth width (twice that
    downwards, where the jaw moves), feathered by `soft` x crop `size`."""
    mask = np.zeros(shape, np.float32)
    for points in lips:
        points = points - np.asarray(offset, np.float32)
        width = float(np.linalg.norm(points[_CORNERS[1]] - points[_CORNERS[0]]))
        center = points.mean(axis=0)
        hull = cv2.convexHull(points.astype(np.float32)).reshape(-1, 2)
        direction = hull - center
        norm = np.linalg.norm(direction, axis=1, keepdims=True) + 1e-6
        down = np.clip(direction[:, 1:2] / norm, 0, 1)  # points below the centre grow more
        grown = hull + direction / norm * width * grow * (1 + down)
        cv2.fillConvexPoly(mask, np.round(grown * 16).astype(np.int32), 1.0, lineType=cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(mask, (0, 0), max(0.5, soft * size))


def swap_mouth(target: np.ndarray, other: np.ndarray, target_lips: np.ndarray, other_lips: np.ndarray,
               grow: float = 0.18, soft: float = 0.05) -> np.ndarray:
    """`target` (S, S, 3) uint8 with its mouth region taken from `other` (another moment of the same
    clip), shifted so the mouth corners' midpoints match, blended with a soft mask around both mouths.
    Only a box around the mouths is touched."""
    size = target.shape[0]
    shift = (target_lips[list(_CORNERS)].mean(axis=0) - other_lips[list(_CORNERS)].mean(axis=0)).astype(np.float64)
    moved_lips = other_lips + shift.astype(np.float32)
    points = np.concatenate([target_lips, moved_lips])
    width = float(np.linalg.norm(target_lips[_CORNERS[1]] - target_lips[_CORNERS[0]]))
    margin = 2 * grow * width + 3 * soft * size + 2
    x0, y0 = np.floor(points.min(axis=0) - margin).astype(int)
    x1, y1 = np.ceil(points.max(axis=0) + margin).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
    if x1 <= x0 or y1 <= y0:
        return target.copy()
    roi = (y1 - y0, x1 - x0)
    translate = np.array([[1, 0, shift[0] - x0], [0, 1, shift[1] - y0]])
    moved = cv2.warpAffine(other, translate, (roi[1], roi[0]), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT_101)
    mask = mouth_mask(roi, [target_lips, moved_lips], size, grow, soft, (x0, y0))[..., None]
    out = target.copy()
    patch = target[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(patch + (moved.astype(np.float32) - patch) * mask + 0.5, 0, 255).astype(np.uint8)
    return out
