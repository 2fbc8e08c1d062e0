"""Streaming face tracker: a search over the whole frame, then landmarks on a region around the
face -> canonical alignment -> smoothed crop transform."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .align import CropTransform, align_face
from .landmarks import ClosedOnExit, Face, select_face
from .search import MIN_FACE, SAME_FACE, Box, FaceFinder, box_overlap
from .smoothing import TransformSmoother

SEARCH_INTERVAL_MS = 2000  # while a face is followed, the whole frame is searched again this often
ROI_DRIFT = 0.1  # the region is moved once the face's centre or size strays this share of the face size


class FaceTracker(ClosedOnExit):
    """Turns a stream of RGB frames into per-frame ``CropTransform`` (or None without a face).

    Until a face is found, every frame is searched whole (``FaceFinder``: faces from ``min_face``
    pixels wide); the face is chosen by size (``face_index`` 0 = largest, the order of
    ``FaceFinder.find``) and then followed on a region around it (landmarks on a crop of about twice
    its size: faster than a whole-frame search, and a small face stays as visible as a large one).
    Every ``search_interval_ms`` the whole frame is searched again and the face nearest the followed
    one is taken, so the crop never jumps to another person whose size happens to overtake. Where the
    region loses the face, that frame is searched whole; where no face is found, the choice and the
    smoothing start over. ``video=False`` treats every frame as an unrelated photo (a whole search,
    no smoothing). Memory is constant.
    """

    def __init__(
        self,
        size: int = 256,
        *,
        face_index: int = 0,
        video: bool = True,
        model_path: str | Path | None = None,
        smoother: TransformSmoother | None = None,
        min_face: float = MIN_FACE,
        search_interval_ms: float = SEARCH_INTERVAL_MS,
    ) -> None:
        if face_index < 0:
            raise ValueError(f"face_index must be >= 0, got {face_index}")
        self.size = size
        self.face_index = face_index
        self.video = video
        self.search_interval_ms = search_interval_ms
        self.finder = FaceFinder(model_path, min_face=min_face)
        self.smoother = smoother if smoother is not None else TransformSmoother(size)
        self.face: Face | None = None  # the face of the last frame tracked
        self._last: Face | None = None  # the followed face in the previous frame
        self._region: Box | None = None  # where its landmarks are measured
        self._searched_ms = -float("inf")
        self.searches = 0  # whole-frame searches so far (for measurement)
        self.most_faces = 0  # the most faces one search found

    def find(self, frame: np.ndarray, timestamp_ms: float = 0.0) -> Face | None:
        """The followed face in an RGB uint8 (H, W, 3) frame (its landmarks), or None."""
        if not self.video or self._last is None:
            return self._choose(self._search(frame, timestamp_ms))
        searched = timestamp_ms - self._searched_ms >= self.search_interval_ms
        faces = self._search(frame, timestamp_ms) if searched else []
        face = self._choose(faces) or self._follow(frame)
        if face is None:  # lost on its region: this frame is searched whole
            faces = faces if searched else self._search(frame, timestamp_ms)
            face = self._choose(faces)
        if face is None:  # gone: the choice starts over among the faces there are
            self.reset()
            face = select_face(faces, self.face_index)
        return face

    def track(self, frame: np.ndarray, timestamp_ms: float) -> CropTransform | None:
        """Crop transform for an RGB uint8 (H, W, 3) frame; None when no face is found.

        In video mode ``timestamp_ms`` must strictly increase from call to call.
        """
        face = self.face = self.find(frame, timestamp_ms)
        if face is None:
            self.reset()
            return None
        similarity = align_face(face.landmarks, self.size)
        if self.video:
            similarity = self.smoother(similarity, timestamp_ms)
            self._last = face
        return CropTransform.from_similarity(similarity, face.landmarks, self.size)

    def reset(self) -> None:
        """Forget the followed face and the smoothing history."""
        self.smoother.reset()
        self._last = None
        self._region = None

    def close(self) -> None:
        """Release the face models."""
        self.finder.close()

    def _search(self, frame: np.ndarray, timestamp_ms: float) -> list[Face]:
        self._searched_ms = timestamp_ms
        self.searches += 1
        faces = self.finder.find(frame)
        self.most_faces = max(self.most_faces, len(faces))
        return faces

    def _follow(self, frame: np.ndarray) -> Face | None:
        """Landmarks on the region around the followed face; None if it is not there."""
        last = self._last
        face = self.finder.landmarks_near(frame, self._region_for(last))
        return face if face is not None and box_overlap(face.box, last.box) > SAME_FACE else None

    def _choose(self, faces: list[Face]) -> Face | None:
        """By size when no face is followed; else the face that overlaps the followed one, nearest first."""
        if self._last is None:
            return select_face(faces, self.face_index)
        last = self._last
        same = [f for f in faces if box_overlap(f.box, last.box) > SAME_FACE]
        return min(same, key=lambda f: float(np.linalg.norm(f.center - last.center)), default=None)

    def _region_for(self, face: Face) -> Box:
        """The face's box, kept from frame to frame (so a still face is measured on the very same
        pixels) until the face strays ``ROI_DRIFT`` of its size from it."""
        box = face.box
        side = max(box[2] - box[0], box[3] - box[1])
        region = self._region
        if region is not None:
            region_side = max(region[2] - region[0], region[3] - region[1])
            centre_shift = np.abs(face.center - np.array([(region[0] + region[2]) / 2, (region[1] + region[3]) / 2]))
            if centre_shift.max() <= ROI_DRIFT * side and abs(side / region_side - 1) <= ROI_DRIFT:
                return region
        cx, cy = face.center
        self._region = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        return self._region
