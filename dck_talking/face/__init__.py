"""Face side of the pipeline: landmarks (MediaPipe Tasks), a search at every scale, canonical
alignment, temporal smoothing, streaming tracking, crop / paste-back (batched torch, per frame OpenCV)
and a numbered preview of the faces found.

Importing this package does not import mediapipe; the detector loads it on first use.
"""

from .align import CropTransform, Similarity, align_face, canonical_points, invert_affine, umeyama
from .landmarks import DEFAULT_MODEL_PATH, LIP_INDICES, Face, LandmarkDetector, select_face
from .preview import draw_faces, save_picture
from .search import MIN_FACE, FaceBoxDetector, FaceFinder, box_overlap
from .smoothing import OneEuroFilter, TransformSmoother
from .tracker import FaceTracker
from .warp import (affine_grid_theta, crop_footprint, crop_image, crop_to_frame, feather_mask, paste_back,
                   paste_image, pixel_to_normalized, to_uint8, warp_to_crop)

__all__ = [
    "DEFAULT_MODEL_PATH",
    "LIP_INDICES",
    "MIN_FACE",
    "CropTransform",
    "Face",
    "FaceBoxDetector",
    "FaceFinder",
    "FaceTracker",
    "LandmarkDetector",
    "OneEuroFilter",
    "Similarity",
    "TransformSmoother",
    "affine_grid_theta",
    "align_face",
    "box_overlap",
    "canonical_points",
    "crop_footprint",
    "crop_image",
    "crop_to_frame",
    "draw_faces",
    "feather_mask",
    "invert_affine",
    "paste_back",
    "paste_image",
    "pixel_to_normalized",
    "save_picture",
    "select_face",
    "to_uint8",
    "umeyama",
    "warp_to_crop",
]
