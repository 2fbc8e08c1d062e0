"""A picture of the faces found: numbered boxes, the numbers ``--face-index`` takes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import InputError
from .landmarks import Face

COLOURS = ((255, 196, 0), (0, 200, 255), (255, 64, 160), (96, 255, 96), (255, 128, 0), (160, 120, 255))


def draw_faces(image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
    """A copy of an RGB uint8 image with a box around each face and its index (0 = first) on a
    label above it (below it at the top edge); lines and labels grow with the image."""
    out = image.copy()
    height, width = out.shape[:2]
    thickness = max(2, round(max(height, width) / 400))
    font_scale = max(0.8, max(height, width) / 700)
    for index, face in enumerate(faces):
        colour = COLOURS[index % len(COLOURS)]
        x0, y0, x1, y1 = (round(v) for v in face.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), colour, thickness)
        label = str(index)
        (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        top = y0 - h - base - 2 * thickness if y0 - h - base - 2 * thickness >= 0 else y1
        cv2.rectangle(out, (x0, top), (x0 + w + 2 * thickness, top + h + base + 2 * thickness), colour, -1)
        cv2.putText(out, label, (x0 + thickness, top + h + thickness), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                    (0, 0, 0), thickness, cv2.LINE_AA)
    return out


def save_picture(path: str | Path, image: np.ndarray) -> Path:
    """Write an RGB uint8 image in the format its name says (.png, .jpg, .webp, ...)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(path, f"output folder {path.parent} does not exist")
    try:
        Image.fromarray(image).save(path)
    except (ValueError, OSError) as err:  # Pillow: an unknown extension, a failed write
        raise InputError(path, f"cannot write the picture ({err})") from None
    return path
