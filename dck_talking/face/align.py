"""Similarity alignment of a face to the canonical square crop the model works on.

Canonical crop (fractions of the crop side, origin at the crop's top-left corner):
the midpoint of the four eye corners lands at (0.50, 0.35) and the midpoint of the mouth
corners at (0.50, 0.60), with the eye line level. One "face unit" (eye midpoint to mouth
midpoint) is 0.25 of the crop side, so the chin (about 1.8 units below the eyes, 2.1 with
the mouth wide open) stays at <= 0.89 of the crop height and the whole jaw is inside.
The template was the Procrustes mean of MediaPipe landmarks on real photos and video
frames, made left-right symmetric. Only points that speech barely moves are fitted:
eye corners, the base of the nose and the mouth corners (not the lips or the jaw), so the
crop does not breathe with the lip motion.

All pixel coordinates use OpenCV's pixel-centre convention; a matrix maps frame pixels to
crop pixels exactly as ``cv2.warpAffine(frame, matrix, (size, size))`` uses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .landmarks import LIP_INDICES

EYE_Y = 0.35
FACE_UNIT = 0.25

# Landmark index -> (x, y) in face units, origin at the eye midpoint, y down.
CANONICAL_TEMPLATE: dict[int, tuple[float, float]] = {
    33: (-0.73, 0.0),  # eye outer corner (image left)
    133: (-0.28, 0.0),  # eye inner corner
    362: (0.28, 0.0),  # eye inner corner
    263: (0.73, 0.0),  # eye outer corner (image right)
    2: (0.0, 0.66),  # base of the nose (subnasale)
    61: (-0.47, 1.0),  # mouth corner
    291: (0.47, 1.0),  # mouth corner
}
ALIGN_INDICES = np.array(list(CANONICAL_TEMPLATE), dtype=np.int64)


def canonical_points(size: int) -> np.ndarray:
    """Template points of ``ALIGN_INDICES`` in pixel coordinates of a ``size`` crop, (K, 2)."""
    unit = np.array(list(CANONICAL_TEMPLATE.values()), np.float64)
    frac = np.array([0.5, EYE_Y]) + FACE_UNIT * unit
    return frac * size - 0.5


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) with dst ~ M @ [src, 1].

    Umeyama (1991): closed form, no reflection. Returns a float64 (2, 3) matrix.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(d) @ vt
    var = (src_c**2).sum() / len(src)
    scale = float((sig * d).sum() / var)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine matrix, float64."""
    a = np.asarray(matrix, np.float64)[:, :2]
    inv = np.linalg.inv(a)
    return np.concatenate([inv, -inv @ np.asarray(matrix, np.float64)[:, 2:]], axis=1)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to (N, 2+) points (extra columns are ignored)."""
    pts = np.asarray(points, np.float64)[:, :2]
    return pts @ matrix[:, :2].T + matrix[:, 2]


@dataclass(frozen=True)
class Similarity:
    """A frame-to-crop similarity as smoothable parameters.

    ``center`` is the frame point (pixels) shown at the crop centre, ``scale`` is crop pixels
    per frame pixel and ``angle`` (radians) is the rotation applied to the frame.
    """

    center: tuple[float, float]
    scale: float
    angle: float

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, size: int) -> Similarity:
        """Read the parameters from a (2, 3) similarity matrix for a ``size`` crop."""
        a, b = float(matrix[0, 0]), float(matrix[1, 0])
        mid = (size - 1) / 2
        cx, cy = transform_points(invert_affine(matrix), np.array([[mid, mid]]))[0]
        return cls((float(cx), float(cy)), math.hypot(a, b), math.atan2(b, a))

    def to_matrix(self, size: int) -> np.ndarray:
        """The (2, 3) frame -> crop matrix for a ``size`` crop, float64."""
        cos, sin = self.scale * math.cos(self.angle), self.scale * math.sin(self.angle)
        linear = np.array([[cos, -sin], [sin, cos]])
        mid = (size - 1) / 2
        shift = np.array([mid, mid]) - linear @ np.asarray(self.center, np.float64)
        return np.concatenate([linear, shift[:, None]], axis=1)


def align_face(landmarks: np.ndarray, size: int = 256) -> Similarity:
    """Similarity that maps a face's (478, 2+) pixel landmarks onto the canonical crop."""
    matrix = umeyama(np.asarray(landmarks)[ALIGN_INDICES, :2], canonical_points(size))
    return Similarity.from_matrix(matrix, size)


@dataclass(frozen=True, eq=False)
class CropTransform:
    """Where one frame's face crop comes from.

    ``matrix`` (2, 3) maps frame pixels to crop pixels (feed it to ``warp_to_crop`` or
    ``cv2.warpAffine``), ``inverse`` maps crop pixels back to the frame; ``landmarks``
    are the frame's 478 landmarks in crop pixels, float32 (478, 2).
    """

    matrix: np.ndarray
    inverse: np.ndarray
    size: int
    landmarks: np.ndarray

    @classmethod
    def from_similarity(cls, similarity: Similarity, landmarks: np.ndarray, size: int) -> CropTransform:
        """Build the matrices for ``similarity`` and map ``landmarks`` (frame pixels) into the crop."""
        matrix = similarity.to_matrix(size)
        crop_landmarks = transform_points(matrix, landmarks).astype(np.float32)
        return cls(matrix, invert_affine(matrix), size, crop_landmarks)

    @property
    def lips(self) -> np.ndarray:
        """Lip contour landmarks in crop pixels, float32 (40, 2) (order of ``LIP_INDICES``)."""
        return self.landmarks[list(LIP_INDICES)]
