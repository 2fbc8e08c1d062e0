"""Mouth motion on a face crop: a landmark-driven piecewise-affine warp of the lips and jaw, and a
painted mouth interior (cavity, upper and lower teeth, tongue).

The 468 MediaPipe mesh points of the crop (plus fixed points on the crop border) are triangulated
once per identity (`MouthRig`). For each frame, `MouthRig.render` moves the lip contours to the
wanted opening (`openness`) and shape (`spread`: rounded .. spread), drops the jaw and chin with
the lower lip, stretches the skin around the mouth with smooth fall-offs, and resamples the crop
backwards through the triangles with one `cv2.remap`. The gap between the inner lip contours is
then filled with a mouth interior whose colours come from the face (lip colour, skin brightness).
Everything happens relative to the source frame's own mouth, so an open or smiling source mouth is
closed (or opened further) as needed: a target openness of 0 makes the inner lips meet.

The renderer knows its own warp: `MouthRig.draw` returns the mesh it moved and the painted share of
each pixel, and `pair_flow` turns two renderings of one source crop into the flow that takes the
first to the second (per triangle, the second's backward affine followed by the first's forward
one), a free label for a model that warps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np
from scipy.spatial import Delaunay

from ..face import LIP_INDICES

UPPER_OUTER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LOWER_OUTER = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291]
UPPER_INNER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LOWER_INNER = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]
INNER_LOOP = UPPER_INNER + LOWER_INNER[-2:0:-1]
OUTER_LOOP = UPPER_OUTER + LOWER_OUTER[-2:0:-1]
MOUTH_CORNERS = (61, 291)
NOSE_BASE = 2
MESH_POINTS = 468  # without the iris points

#: Lip gap (inner lips, centre) at openness 1, as a fraction of the mouth width.
MAX_GAP = 0.45
_LIP_SET = set(UPPER_OUTER + LOWER_OUTER + UPPER_INNER + LOWER_INNER)
_INNER_SET = set(UPPER_INNER + LOWER_INNER)


def lip_gap(landmarks: np.ndarray) -> float:
    """Inner-lip distance (13-14) over mouth width (61-291), as `dck_talking.metrics.lip_gap`."""
    gap = np.linalg.norm(landmarks[13] - landmarks[14])
    width = np.linalg.norm(landmarks[61] - landmarks[291])
    return float(gap / max(width, 1e-6))


@dataclass
class _Frame:
    """Mouth coordinate frame of one set of landmarks."""

    center: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    width: float

    @classmethod
    def of(cls, points: np.ndarray) -> _Frame:
        left, right = points[MOUTH_CORNERS[0]], points[MOUTH_CORNERS[1]]
        width = float(np.linalg.norm(right - left))
        ex = (right - left) / max(width, 1e-6)
        return cls((left + right) / 2, ex, np.array([-ex[1], ex[0]]), max(width, 1e-6))

    def local(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rel = points - self.center
        return rel @ self.ex, rel @ self.ey


@dataclass
class Rendering:
    """One `MouthRig.draw`: the image (S, S, 3) uint8, its landmarks (478, 2), the rig's mesh points
    before (`source`, in the source crop) and after (`target`) the warp, and the painted share of each
    pixel (S, S) float32."""

    image: np.ndarray
    landmarks: np.ndarray
    source: np.ndarray = field(repr=False)
    target: np.ndarray = field(repr=False)
    painted: np.ndarray = field(repr=False)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def move_mouth(landmarks: np.ndarray, openness: float, spread: float) -> np.ndarray:
    """Target positions of the 478 landmarks (crop pixels) for a mouth at `openness` (0 closed .. 1
    wide) and `spread` (-1 rounded .. 1 spread), moved from the source `landmarks`."""
    points = np.asarray(landmarks, np.float64)[:, :2]
    frame = _Frame.of(points)
    u, v = frame.local(points)
    w = frame.width
    du = np.zeros(len(points))
    dv = np.zeros(len(points))
    # Mouth width: spread lips pull the corners out, rounded lips and a wide-open jaw pull them in.
    side = w * (0.07 * spread - 0.05 * openness)
    protrude = 0.05 * w * max(0.0, -spread)
    target_width = w + 2 * side
    gap_center = MAX_GAP * openness * target_width
    inner_half = max(abs(u[LOWER_INNER[-1]] - u[LOWER_INNER[0]]) / 2, 1e-6)
    inner_mid = (u[LOWER_INNER[-1]] + u[LOWER_INNER[0]]) / 2
    deltas = []
    for k in range(1, len(UPPER_INNER) - 1):
        ui, li, uo, lo = UPPER_INNER[k], LOWER_INNER[k], UPPER_OUTER[k], LOWER_OUTER[k]
        a = ((u[ui] + u[li]) / 2 - inner_mid) / inner_half
        profile = np.sqrt(max(0.0, 1.0 - min(abs(a), 1.0) ** 2))
        delta = gap_center * profile - (v[li] - v[ui])
        deltas.append(delta)
        dv[ui] = -0.25 * delta
        dv[li] = 0.75 * delta
        dv[uo] = dv[ui] - protrude * profile
        dv[lo] = dv[li] + protrude * profile
    center_delta = deltas[len(deltas) // 2]
    for corner in (61, 291, 78, 308):
        dv[corner] = 0.1 * center_delta
    lips = np.array(sorted(_LIP_SET))
    du[lips] = side * np.clip(u[lips] / (w / 2), -1.2, 1.2)
    # Skin: the jaw and chin follow the lower lip, the upper lip skin follows the upper lip, the
    # cheeks beside the corners follow the corners; all with smooth fall-offs.
    others = np.array([i for i in range(min(len(points), MESH_POINTS)) if i not in _LIP_SET])
    uo_, vo_ = u[others], v[others]
    jaw = 0.75 * center_delta
    lower_lip = v[17]
    below = np.where(vo_ > lower_lip, np.exp(-0.5 * (uo_ / (1.1 * w)) ** 2),
                     _smoothstep(vo_ / max(lower_lip, 1e-6)) * np.exp(-0.5 * (uo_ / (0.8 * w)) ** 2))
    below[vo_ <= 0] = 0.0
    nose, top_lip = v[NOSE_BASE], v[0]
    above = _smoothstep((vo_ - nose) / min(top_lip - nose, -1e-6)) * np.exp(-0.5 * (uo_ / (0.8 * w)) ** 2)
    above[(vo_ > 0) | (vo_ < nose)] = 0.0
    dv[others] = jaw * below - (0.25 * center_delta + protrude) * above
    # Nothing moves above the base of the nose; below the mouth the pull fades over the chin.
    upper_window = np.where(vo_ < 0, _smoothstep((vo_ - nose) / max(-nose, 1e-6)), 1.0)
    corner_pull = (np.exp(-0.5 * ((np.abs(uo_) - w / 2) / (0.3 * w)) ** 2) * np.exp(-0.5 * (vo_ / (0.5 * w)) ** 2)
                   * upper_window)
    du[others] = side * np.sign(uo_) * corner_pull
    return points + du[:, None] * frame.ex + dv[:, None] * frame.ey


def _border_points(size: int, per_side: int = 5) -> np.ndarray:
    lo, hi = -0.5, size - 0.5
    ticks = np.linspace(lo, hi, per_side)
    top = np.stack([ticks, np.full_like(ticks, lo)], 1)
    bottom = np.stack([ticks, np.full_like(ticks, hi)], 1)
    left = np.stack([np.full_like(ticks[1:-1], lo), ticks[1:-1]], 1)
    right = np.stack([np.full_like(ticks[1:-1], hi), ticks[1:-1]], 1)
    return np.concatenate([top, bottom, left, right])


def _polygon_mask(shape: tuple[int, int], polygon: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Anti-aliased float mask of a polygon (crop pixels), on an ROI starting at `offset`."""
    mask = np.zeros(shape, np.uint8)
    pts = np.round((polygon - offset) * 16).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


class MouthRig:
    """Mouth warp + interior for one identity at crop size `size`, set up from one frame's
    landmarks (crop pixels, (478, 2)) and crop (RGB uint8, (size, size, 3)).

    `render(crop, landmarks, openness, spread)` -> (new crop, new landmarks (478, 2)).
    """

    def __init__(self, landmarks: np.ndarray, crop: np.ndarray, size: int | None = None) -> None:
        self.size = size or crop.shape[0]
        points = np.asarray(landmarks, np.float64)[:MESH_POINTS, :2]
        self.border = _border_points(self.size)
        # Mesh points on the body of the lips (between the contours) are left out: the lips are
        # bands triangulated by their contours alone, which move as a whole.
        outer = points[OUTER_LOOP].astype(np.float32).astype(np.float64)
        body = _inside(outer, points) | (_distance(outer, points) <= 1.5)
        self.keep = np.array([i for i in range(MESH_POINTS) if i in _LIP_SET or not body[i]])
        # Triangulate with the mouth open, so the mouth opening has triangles of its own.
        reference = np.concatenate([move_mouth(points, 0.8, 0.0)[self.keep], self.border])
        self.triangles = Delaunay(reference).simplices.astype(np.int64)
        self.reference_sign = np.sign(self._areas(reference))
        inner_polygon = reference[INNER_LOOP].astype(np.float32).astype(np.float64)
        in_inner = _inside(inner_polygon, reference[self.triangles].mean(axis=1).astype(np.float32))
        all_inner = np.isin(self.keep[np.minimum(self.triangles, len(self.keep) - 1)], list(_INNER_SET)).all(axis=1)
        all_inner &= (self.triangles < len(self.keep)).all(axis=1)
        self.interior = in_inner & all_inner
        self.colors = _face_colors(crop, points)
        self._grid = _pixel_grid(self.size)

    def _areas(self, points: np.ndarray) -> np.ndarray:
        p = points[self.triangles]
        return 0.5 * ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                      - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1]))

    def render(self, crop: np.ndarray, landmarks: np.ndarray, openness: float, spread: float = 0.0
               ) -> tuple[np.ndarray, np.ndarray]:
        """The crop with its mouth at `openness`/`spread`, and the moved landmarks (478, 2) float32."""
        drawn = self.draw(crop, landmarks, openness, spread)
        return drawn.image, drawn.landmarks

    def draw(self, crop: np.ndarray, landmarks: np.ndarray, openness: float, spread: float = 0.0) -> Rendering:
        """`render`, keeping what a flow label needs: the mesh before and after and the painted share."""
        full = np.asarray(landmarks, np.float64)[:, :2]
        target_full = move_mouth(full, openness, spread)
        source = np.concatenate([_inset_inner_lips(full[:MESH_POINTS], self.size)[self.keep], self.border])
        target = np.concatenate([target_full[self.keep], self.border])
        warped = self._warp(crop, source, target)
        out, painted = self._paint_interior(warped, target_full)
        return Rendering(out, target_full.astype(np.float32), source, target, painted)

    def _usable(self, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Triangles the warp draws: moved, and neither flipped nor collapsed in `target`."""
        moved = np.abs(target - source).max(axis=1) > 0.01
        active = moved[self.triangles].any(axis=1)
        areas = self._areas(target)
        return active & ((np.sign(areas) == self.reference_sign) & (np.abs(areas) > 0.02))

    def _affines(self, chosen: np.ndarray, frm: np.ndarray, to: np.ndarray) -> np.ndarray:
        """(T, 3, 2) affines mapping triangle k of mesh `frm` onto triangle k of mesh `to`: [x, y, 1] @ A."""
        tri_f = frm[self.triangles[chosen]]
        ones = np.ones((len(chosen), 3, 1))
        return np.linalg.solve(np.concatenate([tri_f, ones], axis=2), to[self.triangles[chosen]])

    def _rasterize(self, chosen: np.ndarray, mesh: np.ndarray) -> np.ndarray:
        """(S, S) int32: which of the `chosen` triangles of `mesh` covers each pixel (-1: none)."""
        index = np.full((self.size, self.size), -1, np.int32)
        for k, tri in enumerate(np.round(mesh[self.triangles[chosen]] * 16).astype(np.int32)):
            cv2.fillConvexPoly(index, tri, k, lineType=cv2.LINE_8, shift=4)
        return index

    def _warp(self, crop: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
        usable = self._usable(source, target)
        if not usable.any():
            return crop.copy()
        chosen = np.flatnonzero(usable)
        affine = self._affines(chosen, target, source)  # backward: target pixel -> source pixel
        index = self._rasterize(chosen, target)
        ys, xs = np.nonzero(index >= 0)
        coeff = affine[index[ys, xs]]  # (P, 3, 2)
        map_x, map_y = self._grid[0].copy(), self._grid[1].copy()
        map_x[ys, xs] = xs * coeff[:, 0, 0] + ys * coeff[:, 1, 0] + coeff[:, 2, 0]
        map_y[ys, xs] = xs * coeff[:, 0, 1] + ys * coeff[:, 1, 1] + coeff[:, 2, 1]
        return cv2.remap(crop, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)

    def pair_flow(self, first: Rendering | None, second: Rendering) -> tuple[np.ndarray, np.ndarray]:
        """Flow (S, S, 2) float32 in pixels such that `second` at pixel p shows `first` at p + flow, and
        where that holds, (S, S) bool: pixels not painted in `second` and either drawn by a triangle
        that keeps its shape in both renderings, or left in place by both. `first=None` stands for the
        unrendered source crop."""
        source = second.source
        first_mesh = source if first is None else first.target
        drawn = self._usable(source, second.target)
        areas = self._areas(first_mesh)
        both = drawn & (np.sign(areas) == self.reference_sign) & (np.abs(areas) > 0.02)
        flow = np.zeros((self.size, self.size, 2), np.float32)
        # Pixels `second` left in place show the source there; `first` shows the same only outside
        # what it moved.
        moved = (np.abs(first_mesh - source).max(axis=1) > 0.01)[self.triangles].any(axis=1)
        valid = (self._rasterize(np.flatnonzero(moved), source) < 0) & (self._rasterize(np.flatnonzero(moved), first_mesh) < 0)
        valid &= self._rasterize(np.flatnonzero(drawn & ~both), second.target) < 0
        chosen = np.flatnonzero(both)
        if len(chosen):
            backward = self._affines(chosen, second.target, source)
            forward = self._affines(chosen, source, first_mesh)
            # [p, 1] @ backward -> source point s; [s, 1] @ forward -> the point of `first` showing it.
            composite = np.concatenate([backward[:, :2] @ forward[:, :2],
                                        backward[:, 2:] @ forward[:, :2] + forward[:, 2:]], axis=1)
            index = self._rasterize(chosen, second.target)
            ys, xs = np.nonzero(index >= 0)
            coeff = composite[index[ys, xs]]
            flow[ys, xs, 0] = xs * coeff[:, 0, 0] + ys * coeff[:, 1, 0] + coeff[:, 2, 0] - xs
            flow[ys, xs, 1] = xs * coeff[:, 0, 1] + ys * coeff[:, 1, 1] + coeff[:, 2, 1] - ys
            valid[ys, xs] = True
        return flow, valid & (second.painted < 0.01)

    def _paint_interior(self, image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The image with the mouth interior painted between the inner lips, and the painted share of
        each pixel (S, S) float32 (0 where the image is the warp; the dark seam of closed lips counts 0)."""
        painted = np.zeros(image.shape[:2], np.float32)
        frame = _Frame.of(points)
        w = frame.width
        u, v = frame.local(points)
        gaps = v[LOWER_INNER[1:-1]] - v[UPPER_INNER[1:-1]]
        outer = points[OUTER_LOOP]
        margin = 0.15 * w + 2
        x0, y0 = np.floor(outer.min(axis=0) - margin).astype(int)
        x1, y1 = np.ceil(outer.max(axis=0) + margin).astype(int)
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, self.size), min(y1, self.size)
        if x1 <= x0 or y1 <= y0:
            return image, painted
        roi = image[y0:y1, x0:x1].astype(np.float32)
        offset = np.array([x0, y0], np.float64)
        lip, teeth = self.colors
        if gaps.max() < 0.6:  # closed: only the dark line where the lips meet
            seam = np.zeros(roi.shape[:2], np.float32)
            line = np.round((points[UPPER_INNER] - offset) * 16).astype(np.int32)
            cv2.polylines(seam, [line], False, 1.0, thickness=1, lineType=cv2.LINE_AA, shift=4)
            seam = 0.45 * np.clip(seam, 0, 1)[..., None]
            roi = roi * (1 - seam) + (lip * 0.45) * seam
            image = image.copy()
            image[y0:y1, x0:x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)
            return image, painted
        mask = _polygon_mask(roi.shape[:2], points[INNER_LOOP], offset)
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
        pix = np.stack([xs.ravel(), ys.ravel()], 1)
        pu, pv = frame.local(pix)
        pu, pv = pu.reshape(xs.shape), pv.reshape(xs.shape)
        # Inner lip contours as functions of the horizontal mouth coordinate.
        order_u = np.argsort(u[UPPER_INNER])
        upper_v = np.interp(pu, u[UPPER_INNER][order_u], v[UPPER_INNER][order_u])
        order_l = np.argsort(u[LOWER_INNER])
        lower_v = np.interp(pu, u[LOWER_INNER][order_l], v[LOWER_INNER][order_l])
        gap = np.maximum(lower_v - upper_v, 0.0)
        inner_half = max((u[308] - u[78]) / 2, 1e-6)
        a = np.clip((pu - (u[308] + u[78]) / 2) / inner_half, -1.5, 1.5)
        depth = np.clip(np.minimum(pv - upper_v, lower_v - pv) / np.maximum(0.5 * gap, 1e-6), 0, 1)
        # Cavity: dark, darkest deep inside and towards the corners.
        cavity = lip * 0.3
        shade = (1.0 - 0.45 * depth) * (1.0 - 0.35 * a**2)
        interior = cavity[None, None, :] * shade[..., None]
        # Tongue: a darker pink mound low in the mouth when it is open enough.
        tongue_top = lower_v - 0.38 * gap
        tongue = _smoothstep((pv - tongue_top) / np.maximum(0.12 * gap, 0.5)) * _smoothstep((0.75 - np.abs(a)) / 0.3)
        tongue *= _smoothstep((gap - 0.1 * w) / (0.1 * w))
        interior = interior * (1 - tongue[..., None]) + (lip * 0.62)[None, None, :] * (1 - 0.3 * a**2)[..., None] * tongue[..., None]
        # Upper teeth hang from the upper lip; lower teeth show behind the lower lip when wide open.
        upper_h = np.minimum(0.5 * gap, 0.11 * w)
        upper = _smoothstep((upper_v + upper_h - pv) / 0.8) * _smoothstep((0.85 - np.abs(a)) / 0.25)
        lower_h = np.clip(0.3 * (gap - 0.2 * w), 0.0, 0.06 * w)
        lower = _smoothstep((pv - (lower_v - lower_h)) / 0.8) * _smoothstep((0.6 - np.abs(a)) / 0.25)
        lower *= lower_h > 0.3
        gaps_between = 1.0 - 0.12 * np.exp(-0.5 * ((np.abs(a) % 0.3 - 0.15) / 0.02) ** 2) * (np.abs(a) > 0.1)
        tooth_shade = ((1.0 - 0.55 * a**2) * gaps_between)[..., None]
        interior = interior * (1 - upper[..., None]) + teeth * tooth_shade * upper[..., None]
        interior = interior * (1 - lower[..., None]) + teeth * 0.8 * tooth_shade * lower[..., None]
        sigma = max(0.5, 0.6 * self.size / 256)
        interior = cv2.GaussianBlur(interior.astype(np.float32), (0, 0), sigma)
        alpha = mask[..., None]
        roi = roi * (1 - alpha) + interior * alpha
        image = image.copy()
        image[y0:y1, x0:x1] = np.clip(roi + 0.5, 0, 255).astype(np.uint8)
        painted[y0:y1, x0:x1] = mask
        return image, painted


def _inside(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N,) bool: which `points` (N, 2) lie inside the closed `polygon` (V, 2) (even-odd rule)."""
    a, b = polygon, np.roll(polygon, -1, axis=0)
    x, y = points[:, :1], points[:, 1:2]
    crosses = (a[:, 1] > y) != (b[:, 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        at = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    return (crosses & (x < at)).sum(axis=1) % 2 == 1


def _distance(polygon: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N,) distance of each of `points` (N, 2) from the edges of the closed `polygon` (V, 2)."""
    a, edge = polygon, np.roll(polygon, -1, axis=0) - polygon
    rel = points[:, None, :] - a[None]
    t = np.clip((rel * edge).sum(axis=2) / np.maximum((edge * edge).sum(axis=1), 1e-12), 0.0, 1.0)
    return np.linalg.norm(rel - t[..., None] * edge, axis=2).min(axis=1)


@lru_cache(maxsize=4)
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) float32 coordinates of every pixel of a size x size image (read-only; copy to change)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    xx.flags.writeable = yy.flags.writeable = False
    return xx, yy


def _inset_inner_lips(points: np.ndarray, size: int) -> np.ndarray:
    """Source points with the inner lip contours moved a pixel into the lips, so the warped lip
    edges sample lip, not the teeth or the dark of an open source mouth."""
    points = points.copy()
    step = 1.2 * size / 256
    for inner, outer in ((UPPER_INNER, UPPER_OUTER), (LOWER_INNER, LOWER_OUTER)):
        for k in range(1, len(inner) - 1):
            direction = points[outer[k]] - points[inner[k]]
            length = float(np.linalg.norm(direction))
            if length > 1e-6:
                points[inner[k]] += direction / length * min(step, 0.35 * length)
    return points


def _face_colors(crop: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lip colour, teeth colour) as float32 RGB, from the lips and the skin of one crop."""
    h, w = crop.shape[:2]
    outer = np.zeros((h, w), np.uint8)
    cv2.fillPoly(outer, [np.round(points[OUTER_LOOP]).astype(np.int32)], 1)
    inner = np.zeros((h, w), np.uint8)
    cv2.fillPoly(inner, [np.round(points[INNER_LOOP]).astype(np.int32)], 1)
    lips = crop[(outer > 0) & (inner == 0)]
    lip = np.median(lips, axis=0) if len(lips) else np.array([150.0, 80.0, 80.0])
    # Skin: a patch on each cheek and the chin.
    skin_idx = [50, 280, 199]
    samples = [crop[int(np.clip(points[i, 1], 0, h - 1)), int(np.clip(points[i, 0], 0, w - 1))] for i in skin_idx]
    luma = float(np.mean([0.299 * s[0] + 0.587 * s[1] + 0.114 * s[2] for s in samples]))
    brightness = float(np.clip(luma / 160.0, 0.55, 1.05))
    teeth = np.array([232.0, 226.0, 210.0]) * brightness
    return lip.astype(np.float32), teeth.astype(np.float32)


def lips_of(landmarks: np.ndarray) -> np.ndarray:
    """The 40 lip landmarks (order of `LIP_INDICES`), float32 (40, 2)."""
    return np.asarray(landmarks, np.float32)[list(LIP_INDICES), :2]
