"""Streaming face tracker: landmarks -> canonical alignment -> smoothed crop transform."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .align import CropTransform, align_face
from .landmarks import ClosedOnExit, Face, LandmarkDetector, select_face
from .smoothing import TransformSmoother


class FaceTracker(ClosedOnExit):
    """Turns a stream of RGB frames into per-frame ``CropTransform`` (or None without a face).

    The face is chosen once by size (``face_index`` 0 = largest) and then followed: in
    later frames the face nearest to the previous one is taken, so the crop never jumps
    to another person whose size happens to overtake. After a frame without a face the
    choice and the smoothing start over. ``video=False`` treats every frame as an
    unrelated photo (IMAGE mode, no smoothing). Memory is constant.
    """

    def __init__(
        self,
        size: int = 256,
        *,
        face_index: int = 0,
        num_faces: int = 4,
        video: bool = True,
        model_path: str | Path | None = None,
        smoother: TransformSmoother | None = None,
    ) -> None:
        if face_index >= num_faces:
            raise ValueError(f"face_index {face_index} needs num_faces > {face_index}")
        self.size = size
        self.face_index = face_index
        self.video = video
        self.detector = LandmarkDetector(model_path, num_faces=num_faces, video=video)
        self.smoother = smoother if smoother is not None else TransformSmoother(size)
        self._last_center: np.ndarray | None = None

    def _choose(self, faces: list[Face]) -> Face | None:
        if self._last_center is None or not faces:
            return select_face(faces, self.face_index)
        return min(faces, key=lambda f: float(np.linalg.norm(f.center - self._last_center)))

    def track(self, frame: np.ndarray, timestamp_ms: int) -> CropTransform | None:
        """Crop transform for an RGB uint8 (H, W, 3) frame; None when no face is found.

        In video mode ``timestamp_ms`` must strictly increase from call to call.
        """
        face = self._choose(self.detector.detect(frame, timestamp_ms))
        if face is None:
            self.reset()
            return None
        similarity = align_face(face.landmarks, self.size)
        if self.video:
            similarity = self.smoother(similarity, timestamp_ms)
            self._last_center = face.center
        return CropTransform.from_similarity(similarity, face.landmarks, self.size)

    def reset(self) -> None:
        """Forget the followed face and the smoothing history."""
        self.smoother.reset()
        self._last_center = None

    def close(self) -> None:
        """Release the landmark model."""
        self.detector.close()
