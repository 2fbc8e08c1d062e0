"""Face landmarks with the bundled MediaPipe Tasks FaceLandmarker (478 points per face).

The model file ships in ``dck_talking/assets`` and is never downloaded at run time.
Landmarks are returned in pixel coordinates with OpenCV's pixel-centre convention
(pixel ``(i, j)`` has its centre at ``x = i, y = j``), the convention used by the
alignment and warping code in this package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import numpy as np

from ..errors import InputError

DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[1] / "assets" / "face_landmarker.task"

# Unique landmark indices of the outer and inner lip contours (MediaPipe's FACE_LANDMARKS_LIPS).
LIP_INDICES: tuple[int, ...] = (
    0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181,
    185, 191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375,
    402, 405, 409, 415,
)  # fmt: skip


_Closeable = TypeVar("_Closeable", bound="ClosedOnExit")


class ClosedOnExit:
    """Mixin for holders of a native resource: `with holder:` calls `holder.close()` on the way out."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Closeable) -> _Closeable:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face: ``landmarks`` is float32 (478, 3) = pixel x, y and depth z.

    ``z`` is MediaPipe's relative depth scaled by the image width (same scale as x),
    smaller values are closer to the camera.
    """

    landmarks: np.ndarray

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Bounding box ``(x0, y0, x1, y1)`` of the landmarks in pixels."""
        xy = self.landmarks[:, :2]
        x0, y0 = xy.min(axis=0)
        x1, y1 = xy.max(axis=0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def area(self) -> float:
        """Area of the landmark bounding box, used to rank faces by size."""
        x0, y0, x1, y1 = self.box
        return (x1 - x0) * (y1 - y0)

    @property
    def center(self) -> np.ndarray:
        """Centre of the landmark bounding box, float64 (2,)."""
        x0, y0, x1, y1 = self.box
        return np.array([(x0 + x1) / 2, (y0 + y1) / 2])


def select_face(faces: Sequence[Face], face_index: int = 0) -> Face | None:
    """Pick the ``face_index``-th largest face (0 = largest); None if there are not that many.

    ``faces`` need not be sorted; ties keep their input order.
    """
    if face_index < 0:
        raise ValueError(f"face_index must be >= 0, got {face_index}")
    ranked = sorted(faces, key=lambda f: f.area, reverse=True)
    return ranked[face_index] if face_index < len(ranked) else None


class LandmarkDetector(ClosedOnExit):
    """MediaPipe FaceLandmarker on RGB uint8 frames.

    ``video=True`` uses the VIDEO running mode (faces are tracked between frames, which is
    faster and steadier; timestamps must strictly increase); ``video=False`` uses IMAGE
    mode, where every call is independent (photos). Release the native graph with
    ``close()`` or a ``with`` block.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        num_faces: int = 4,
        video: bool = True,
        min_detection_confidence: float = 0.5,
        min_presence_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        # Imported here: mediapipe takes ~0.6 s to import and only face code needs it.
        from mediapipe.tasks.python import BaseOptions, vision

        path = Path(model_path) if model_path is not None else DEFAULT_MODEL_PATH
        if not path.is_file():
            raise InputError(path, "face landmarker model file not found")
        if num_faces < 1:
            raise ValueError(f"num_faces must be >= 1, got {num_faces}")
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.VIDEO if video else vision.RunningMode.IMAGE,
            num_faces=num_faces,
            min_face_detection_confidence=min_detection_confidence,
            min_face_presence_confidence=min_presence_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
        self.video = video
        self.num_faces = num_faces
        self._landmarker = vision.FaceLandmarker.create_from_options(options)
        self._last_timestamp_ms: int | None = None

    def detect(self, frame: np.ndarray, timestamp_ms: int | None = None) -> list[Face]:
        """Detect faces in an RGB uint8 (H, W, 3) frame, largest face first.

        ``timestamp_ms`` is required in video mode and must strictly increase from call to
        call (MediaPipe's tracker relies on it); it is ignored in image mode.
        """
        import mediapipe as mp

        if self._landmarker is None:
            raise RuntimeError("LandmarkDetector is closed")
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an RGB uint8 (H, W, 3) frame, got {frame.dtype} {frame.shape}")
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
        if self.video:
            if timestamp_ms is None:
                raise ValueError("video mode needs timestamp_ms")
            timestamp_ms = int(timestamp_ms)
            if self._last_timestamp_ms is not None and timestamp_ms <= self._last_timestamp_ms:
                raise ValueError(
                    f"timestamps must strictly increase: {timestamp_ms} ms after {self._last_timestamp_ms} ms"
                )
            self._last_timestamp_ms = timestamp_ms
            result = self._landmarker.detect_for_video(image, timestamp_ms)
        else:
            result = self._landmarker.detect(image)

        height, width = frame.shape[:2]
        # MediaPipe normalises by the image size with 0 at the image edge; subtracting
        # half a pixel moves x, y to the pixel-centre convention.
        scale = np.array([width, height, width], np.float32)
        offset = np.array([0.5, 0.5, 0.0], np.float32)
        faces = [
            Face(np.array([(p.x, p.y, p.z) for p in points], np.float32) * scale - offset)
            for points in result.face_landmarks
        ]
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def close(self) -> None:
        """Release the MediaPipe graph; safe to call twice."""
        if self._landmarker is not None:
            self._landmarker.close()
            self._landmarker = None

