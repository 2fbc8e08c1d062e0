"""Faces at every scale: MediaPipe's face detector on the whole frame and on overlapping tiles of a
scale pyramid, then the landmark model on a crop around each face found.

The face landmarker's own detector (BlazeFace short range) sees its input shrunk to 128x128 and
finds faces from about a seventh of the input's side up to the whole input: on a whole 1280x720
frame nothing much narrower than 150 px, on a 4K frame nothing narrower than about 500. Tiles of
256 px cut from the frame at a few scales bring every face from ``min_face`` pixels up into that
range; a face is then measured by the landmark model on a crop about twice its size (where it is
large, and any neighbour is off-centre). Both models come from the bundled ``face_landmarker.task``.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from .landmarks import DEFAULT_MODEL_PATH, ClosedOnExit, Face, LandmarkDetector

MIN_FACE = 40  # narrowest face searched for, in frame pixels
TILE = 256  # tile side in pixels of the pyramid level it is cut from
SMALLEST_SHARE = 0.14  # the detector finds faces from about this share of its input's side (0.12 measured)
TILE_OVERLAP = 0.4  # share of a tile's side shared with its neighbour: faces up to that size fit in one tile
CROP_SCALE = 2.0  # side of the crop the landmarks are measured on, in face sizes
CROP_PIXELS = (256, 768)  # that crop is scaled into this range of sides (a small face is enlarged)
SAME_FACE = 0.5  # boxes overlapping by more than this share of the smaller one are one face
# The landmark model's face-presence score a searched face needs. At MediaPipe's default, 0.5, blurred noise
# beside a portrait passed as a face (presence 0.70-0.75); of 305 real faces the weakest scores 0.85-0.9.
PRESENCE = 0.8
BORDER = 2  # a detection this close to a tile's inner edge is a face cut by the edge: left to other tiles

Box = tuple[float, float, float, float]


def box_overlap(a: Box, b: Box) -> float:
    """Area shared by two (x0, y0, x1, y1) boxes, as a share of the smaller one (0..1)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / max(smaller, 1e-9)


def pyramid_scales(height: int, width: int, min_face: float = MIN_FACE) -> list[float]:
    """Scales (level pixels per frame pixel) of the tiled levels, finest first.

    The finest level makes a ``min_face`` face ``SMALLEST_SHARE`` of a tile; each next level halves
    the scale (the detector's range spans more than a factor of 2), until one tile would cover the
    frame's short side and the levels reach the faces the whole-frame pass finds. That pass sees the
    frame shrunk by its long side: in a wide, short picture (a panorama, a row of portraits) it finds
    nothing narrower than ``SMALLEST_SHARE`` of the width, however tall the faces are.
    """
    scales = []
    side = min_face / SMALLEST_SHARE  # a tile's side in frame pixels
    reach = min_face  # the widest face the levels so far find wherever it is (one that fits in a tile)
    while side < min(height, width) or reach < SMALLEST_SHARE * max(height, width):
        scales.append(TILE / side)
        reach = TILE_OVERLAP * side
        side *= 2
    return scales


def tile_starts(length: int, tile: int = TILE, overlap: float = TILE_OVERLAP) -> list[int]:
    """Evenly spread starts of tiles that cover ``length`` pixels, neighbours sharing >= ``overlap``."""
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / (tile * (1 - overlap)))
    return [round(i * (length - tile) / count) for i in range(count + 1)]


def distinct(boxes: list[tuple[Box, float]]) -> list[tuple[Box, float]]:
    """Each face once: of (box, score) pairs that overlap by more than ``SAME_FACE``, the best scored."""
    kept: list[tuple[Box, float]] = []
    for box, score in sorted(boxes, key=lambda item: -item[1]):
        if all(box_overlap(box, other) <= SAME_FACE for other, _ in kept):
            kept.append((box, score))
    return kept


class FaceBoxDetector(ClosedOnExit):
    """MediaPipe Tasks FaceDetector (BlazeFace short range, read out of the bundled landmarker bundle)
    on RGB uint8 images: boxes (x0, y0, x1, y1) in pixels with their scores."""

    def __init__(self, model_path: str | Path | None = None, min_confidence: float = 0.5) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        path = Path(model_path) if model_path is not None else DEFAULT_MODEL_PATH
        try:
            with zipfile.ZipFile(path) as bundle:
                model = bundle.read("face_detector.tflite")
        except (OSError, KeyError, zipfile.BadZipFile) as err:
            raise InputError(path, f"not a face landmarker bundle ({err})") from None
        options = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_buffer=model),
                                             min_detection_confidence=min_confidence)
        self._detector = vision.FaceDetector.create_from_options(options)

    def detect(self, image: np.ndarray) -> list[tuple[Box, float]]:
        """Faces in an RGB uint8 (H, W, 3) image as ((x0, y0, x1, y1), score), in its pixels."""
        import mediapipe as mp

        result = self._detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
        boxes = []
        for detection in result.detections:
            b = detection.bounding_box
            box = (float(b.origin_x), float(b.origin_y), float(b.origin_x + b.width), float(b.origin_y + b.height))
            boxes.append((box, float(detection.categories[0].score)))
        return boxes

    def close(self) -> None:
        """Release the MediaPipe graph; safe to call twice."""
        if self._detector is not None:
            self._detector.close()
            self._detector = None


class FaceFinder(ClosedOnExit):
    """Every face in a frame, from ``min_face`` pixels wide to the whole frame, largest first.

    ``find(frame)`` searches the whole frame (detector on the frame and on the tiles of a scale
    pyramid, duplicates merged, landmarks on a crop around each face); ``landmarks_near(frame, box)``
    measures only the face nearest the centre of a box (what a tracker does between searches).
    """

    def __init__(self, model_path: str | Path | None = None, *, min_face: float = MIN_FACE) -> None:
        if min_face < 8:
            raise ValueError(f"min_face must be at least 8 pixels, got {min_face}")
        self.min_face = min_face
        self.detector = FaceBoxDetector(model_path)
        self.landmarker = LandmarkDetector(model_path, num_faces=2, video=False, min_presence_confidence=PRESENCE)

    def find(self, frame: np.ndarray) -> list[Face]:
        """All faces in an RGB uint8 (H, W, 3) frame, largest first (the order of ``--face-index``)."""
        faces: list[Face] = []
        for box, _ in distinct(self.boxes(frame)):
            face = self.landmarks_near(frame, box)
            if face is not None and all(box_overlap(face.box, other.box) <= SAME_FACE for other in faces):
                faces.append(face)
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def boxes(self, frame: np.ndarray) -> list[tuple[Box, float]]:
        """Detector boxes in frame pixels, from the whole frame and every tile (duplicates included)."""
        _check_frame(frame)
        height, width = frame.shape[:2]
        found = self.detector.detect(frame)
        for scale in pyramid_scales(height, width, self.min_face):
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            level = cv2.resize(frame, size, interpolation=_interpolation(scale))
            sx, sy = size[0] / width, size[1] / height
            for y in tile_starts(size[1]):
                for x in tile_starts(size[0]):
                    tile = level[y:y + TILE, x:x + TILE]
                    for (x0, y0, x1, y1), score in self.detector.detect(tile):
                        if _cut_by_inner_edge((x0, y0, x1, y1), x, y, tile.shape, size):
                            continue
                        box = ((x + x0) / sx, (y + y0) / sy, (x + x1) / sx, (y + y1) / sy)
                        found.append((box, score))
        return found

    def landmarks_near(self, frame: np.ndarray, box: Box) -> Face | None:
        """Landmarks of the face nearest the centre of ``box`` (frame pixels), measured on a crop
        ``CROP_SCALE`` times the box's size around it; None if the landmark model finds no face there."""
        _check_frame(frame)
        region, origin, scale = crop_around(frame, box, CROP_SCALE)
        faces = self.landmarker.detect(region)
        if not faces:
            return None
        # Crop pixel p (pixel-centre convention) shows frame point origin + (p + 0.5) / scale - 0.5.
        centre = (np.array([box[0] + box[2], box[1] + box[3]]) / 2 - origin + 0.5) * scale - 0.5
        nearest = min(faces, key=lambda f: float(np.linalg.norm(f.center - centre)))
        points = nearest.landmarks.copy()
        points[:, :2] = origin + (points[:, :2] + 0.5) / scale - 0.5
        points[:, 2] /= scale[0]
        return Face(points)

    def close(self) -> None:
        """Release both MediaPipe graphs."""
        self.detector.close()
        self.landmarker.close()


def crop_around(frame: np.ndarray, box: Box, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A square crop ``factor`` times the larger side of ``box`` around its centre, clipped to the
    frame and scaled so its side lies in ``CROP_PIXELS``: (crop, its top-left frame pixel, its scale
    in x and y, crop pixels per frame pixel)."""
    height, width = frame.shape[:2]
    side = factor * max(box[2] - box[0], box[3] - box[1], 1.0)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0 = max(0, round(cx - side / 2)), max(0, round(cy - side / 2))
    x1, y1 = min(width, round(cx + side / 2)), min(height, round(cy + side / 2))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    region = frame[y0:y1, x0:x1]
    scale = min(max(1.0, CROP_PIXELS[0] / side), CROP_PIXELS[1] / side)
    if scale == 1.0:
        return np.ascontiguousarray(region), np.array([x0, y0], np.float32), np.ones(2, np.float32)
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    region = cv2.resize(region, size, interpolation=_interpolation(scale))
    return region, np.array([x0, y0], np.float32), np.array([size[0] / (x1 - x0), size[1] / (y1 - y0)], np.float32)


def _cut_by_inner_edge(box: Box, x: int, y: int, shape: tuple[int, ...], level: tuple[int, int]) -> bool:
    """True if a box (tile pixels) of the tile at (x, y) touches a tile edge inside the level image:
    a face cut there is whole in a neighbouring tile or at a coarser level."""
    h, w = shape[:2]
    return ((box[0] < BORDER and x > 0) or (box[1] < BORDER and y > 0)
            or (box[2] > w - BORDER and x + w < level[0]) or (box[3] > h - BORDER and y + h < level[1]))


def _interpolation(scale: float) -> int:
    """Pixel averaging where an image shrinks to less than half (it would alias), else bilinear (4x faster)."""
    return cv2.INTER_AREA if scale < 0.5 else cv2.INTER_LINEAR


def _check_frame(frame: np.ndarray) -> None:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}")
