"""Face side of the pipeline: landmarks (MediaPipe Tasks), canonical alignment, temporal
smoothing, streaming tracking, and batched torch crop / paste-back.

Importing this package does not import mediapipe; the detector loads it on first use.
"""

from .align import CropTransform, Similarity, align_face, canonical_points, invert_affine, umeyama
from .landmarks import DEFAULT_MODEL_PATH, LIP_INDICES, Face, LandmarkDetector, select_face
from .smoothing import OneEuroFilter, TransformSmoother
from .tracker import FaceTracker
from .warp import (affine_grid_theta, crop_footprint, feather_mask, paste_back, pixel_to_normalized, to_uint8,
                   warp_to_crop)

__all__ = [
    "DEFAULT_MODEL_PATH",
    "LIP_INDICES",
    "CropTransform",
    "Face",
    "FaceTracker",
    "LandmarkDetector",
    "OneEuroFilter",
    "Similarity",
    "TransformSmoother",
    "affine_grid_theta",
    "align_face",
    "canonical_points",
    "crop_footprint",
    "feather_mask",
    "invert_affine",
    "paste_back",
    "pixel_to_normalized",
    "select_face",
    "to_uint8",
    "umeyama",
    "warp_to_crop",
]
