"""The face's own mouth closed before the network sees it.

The network learned from inputs whose mouths `MouthRig` placed (closed, or at another moment of some
speech) and from photos' own, mostly closed, mouths. A talking video's real open mouth, with real
teeth and a dark interior, is outside that: the network leaves it partly open on m/b/p and it shows
through under the soft edge of the attention mask (held-out talking clips, m/b/p lip gap over
open-vowel gap: 0.71 -> 0.49 and 0.50 -> 0.39 with the mouth closed first; docs/face-side.md).

`close_mouth` moves the inner lips together with the renderer's warp (openness 0, the warp that made
the training inputs) and says which pixels it changed, so the pipeline pastes those back too and the
original open mouth cannot show around the new one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .data.render import MouthRig, lip_gap

#: Lip gap (inner lips over mouth width) below which a mouth counts as closed and is left as it is.
CLOSED_GAP = 0.03
#: Grey levels a pixel must change by to count as changed.
CHANGE_LEVEL = 3


@dataclass(frozen=True)
class MouthInput:
    """A face crop as the network gets it: `image` (S, S, 3) uint8, and `changed` (S, S) float32 in
    [0, 1], where `image` differs from the crop it came from (soft-edged), or None if it does not."""

    image: np.ndarray
    changed: np.ndarray | None = None


def close_mouth(crop: np.ndarray, landmarks: np.ndarray, closed_gap: float = CLOSED_GAP) -> MouthInput:
    """`crop` (RGB uint8, (S, S, 3)) with its mouth closed, given its landmarks in crop pixels
    ((478, 2) or (468, 2)); a mouth already closed (lip gap under `closed_gap`) is left unchanged."""
    if lip_gap(landmarks) < closed_gap:
        return MouthInput(crop)
    closed, _ = MouthRig(landmarks, crop).render(crop, landmarks, 0.0, 0.0)
    diff = cv2.absdiff(closed, crop)
    moved = (np.maximum.reduce([diff[..., 0], diff[..., 1], diff[..., 2]]) > CHANGE_LEVEL).astype(np.uint8)
    if not moved.any():
        return MouthInput(crop)
    scale = crop.shape[0] / 256
    # Grown and softened, so nothing of the open mouth is left at the edge of what moved.
    grown = cv2.dilate(moved, np.ones((9, 9), np.uint8), iterations=max(1, round(scale))).astype(np.float32)
    changed = np.clip(2 * cv2.GaussianBlur(grown, (0, 0), 4 * scale), 0, 1)
    return MouthInput(closed, changed)
