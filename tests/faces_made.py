"""Pictures of faces made from one portrait (Grace Hopper, US Navy photograph, public domain; the package's
example face until it became a held-out one): scaled, turned, mirrored, colour-shifted, pasted at known
places on a textured background (no downloads)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from dck_talking.face import LandmarkDetector
from dck_talking.image import read_image

PHOTO = read_image(Path(__file__).parent / "data" / "grace_hopper.jpg")


def example_face_box(photo: np.ndarray = PHOTO) -> tuple[float, float, float, float]:
    """The landmark box of the face in `photo` (the example photo by default)."""
    with LandmarkDetector(video=False, num_faces=1) as detector:
        return detector.detect(photo)[0].box


def background(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Blurred colour noise: texture for the detector to ignore."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(40, 216, (height, width, 3), dtype=np.uint8), (0, 0), 4)


def paste_face(canvas: np.ndarray, box: tuple, width: float, centre: tuple[float, float], angle: float = 0.0,
               mirror: bool = False, tint: tuple[float, float, float] = (1.0, 1.0, 1.0),
               photo: np.ndarray = PHOTO) -> np.ndarray:
    """Paste the face of `photo` (landmark box `box`) into `canvas` (in place) so its landmark box is
    about `width` pixels wide and centred on `centre`, turned `angle` degrees, mirrored, colour-scaled
    by `tint`; the head is cut out with a soft oval."""
    x0, y0, x1, y1 = box
    source = np.ascontiguousarray(photo[:, ::-1]) if mirror else photo
    cx = (photo.shape[1] - 1 - (x0 + x1) / 2) if mirror else (x0 + x1) / 2
    cy = (y0 + y1) / 2
    scale = width / (x1 - x0)
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    matrix[:, 2] += np.asarray(centre) - (cx, cy)
    oval = np.zeros(photo.shape[:2], np.float32)
    cv2.ellipse(oval, (round(cx), round(cy + 0.1 * (y1 - y0))), (round(0.8 * (x1 - x0)), round(0.95 * (y1 - y0))),
                0, 0, 360, 1.0, -1)
    oval = cv2.GaussianBlur(oval, (0, 0), 6)
    height, width_px = canvas.shape[:2]
    flags = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    face = cv2.warpAffine(source, matrix, (width_px, height), flags=flags).astype(np.float32) * np.float32(tint)
    alpha = cv2.warpAffine(oval, matrix, (width_px, height), flags=cv2.INTER_LINEAR)[..., None]
    canvas[:] = np.clip(canvas * (1 - alpha) + face * alpha, 0, 255).astype(np.uint8)
    return canvas


def group(box: tuple, height: int, width: int, faces: list[tuple[float, float, float]], seed: int = 0,
          **options) -> np.ndarray:
    """A picture of faces (width, centre x, centre y) on a textured background; every other face is
    mirrored and each is tinted differently."""
    canvas = background(height, width, seed)
    tints = [(1.0, 1.0, 1.0), (1.1, 0.95, 0.85), (0.85, 0.95, 1.1), (0.9, 1.05, 0.9)]
    for k, (w, x, y) in enumerate(faces):
        paste_face(canvas, box, w, (x, y), mirror=k % 2 == 1, tint=tints[k % len(tints)], **options)
    return canvas


def turned_photo(degrees: float, focal: float = 1500.0) -> np.ndarray:
    """The example photo as a camera sees it after the print is turned `degrees` about its vertical
    centre line (foreshortened with perspective, a stand-in for a head turned that far)."""
    height, width = PHOTO.shape[:2]
    turn = math.radians(degrees)
    rotation = np.array([[math.cos(turn), 0, math.sin(turn)], [0, 1, 0], [-math.sin(turn), 0, math.cos(turn)]])
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    seen = []
    for u, v in corners:
        x, y, z = rotation @ (u - width / 2, v - height / 2, 0.0) + (0.0, 0.0, focal)
        seen.append((focal * x / z + width / 2, focal * y / z + height / 2))
    matrix = cv2.getPerspectiveTransform(corners, np.float32(seen))
    return cv2.warpPerspective(PHOTO, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)
