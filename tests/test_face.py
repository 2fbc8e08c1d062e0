"""Face detection, alignment, smoothing, tracking and torch crop/paste-back."""

from __future__ import annotations

import math
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dck_talking.face import (
    CropTransform,
    FaceTracker,
    LandmarkDetector,
    Similarity,
    TransformSmoother,
    affine_grid_theta,
    align_face,
    canonical_points,
    feather_mask,
    invert_affine,
    paste_back,
    pixel_to_normalized,
    select_face,
    umeyama,
    warp_to_crop,
)
from dck_talking.face.align import ALIGN_INDICES, EYE_Y, FACE_UNIT, transform_points

SHARED = Path(__file__).parents[2] / "shared"
FACES = SHARED / "media" / "faces"
VIDEO = SHARED / "media" / "video" / "WolfgangLanger_Pexels.mp4"
EYES = [33, 133, 362, 263]
MOUTH = [61, 291]


def load_rgb(name: str) -> np.ndarray:
    path = FACES / name
    if not path.is_file():
        pytest.skip(f"shared test media not found: {path}")
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def to_tensor(*images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()


def to_image(t: torch.Tensor) -> np.ndarray:
    return t.permute(1, 2, 0).numpy()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


@pytest.fixture(scope="module")
def detector():
    with LandmarkDetector(video=False) as det:
        yield det


# --- landmarks ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["astronaut.png", "obama.jpg"])
def test_landmarks_on_photos(detector: LandmarkDetector, name: str) -> None:
    img = load_rgb(name)
    faces = detector.detect(img)
    assert len(faces) == 1
    lm = faces[0].landmarks
    assert lm.shape == (478, 3) and lm.dtype == np.float32
    h, w = img.shape[:2]
    assert (lm[:, 0] >= 0).all() and (lm[:, 0] < w).all() and (lm[:, 1] >= 0).all() and (lm[:, 1] < h).all()
    eyes_y, mouth_y, chin_y = lm[EYES, 1].mean(), lm[MOUTH, 1].mean(), lm[152, 1]
    assert eyes_y < mouth_y < chin_y
    assert lm[33, 0] < lm[263, 0]  # image-left eye corner is left of the image-right one
    assert mouth_y - eyes_y > 0.05 * h  # a real face size, not a degenerate fit


def test_no_face_on_blank_or_noise(detector: LandmarkDetector) -> None:
    assert detector.detect(np.full((360, 640, 3), 128, np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    assert detector.detect(noise) == []


@pytest.mark.parametrize(("left_size", "right_size"), [((440, 550), (256, 300)), ((320, 400), (400, 469))])
def test_largest_face_first(
    detector: LandmarkDetector, left_size: tuple[int, int], right_size: tuple[int, int]
) -> None:
    left = cv2.resize(load_rgb("obama.jpg"), left_size)
    right = cv2.resize(load_rgb("grace_hopper.jpg"), right_size)
    canvas = np.full((max(left_size[1], right_size[1]), left_size[0] + right_size[0], 3), 200, np.uint8)
    canvas[: left_size[1], : left_size[0]] = left
    canvas[: right_size[1], left_size[0] :] = right
    faces = detector.detect(canvas)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area
    big_on_left = left_size[0] > right_size[0]
    assert (faces[0].center[0] < left_size[0]) == big_on_left
    assert (faces[1].center[0] < left_size[0]) != big_on_left
    assert select_face(faces[::-1]) is faces[0]
    assert select_face(faces, 1) is faces[1]
    assert select_face(faces, 2) is None


def test_bad_frame_and_timestamps() -> None:
    with LandmarkDetector(video=True, num_faces=1) as det:
        with pytest.raises(ValueError, match="uint8"):
            det.detect(np.zeros((64, 64, 3), np.float32), 0)
        det.detect(np.zeros((64, 64, 3), np.uint8), 10)
        with pytest.raises(ValueError, match="increase"):
            det.detect(np.zeros((64, 64, 3), np.uint8), 10)


# --- alignment ---------------------------------------------------------------------------


def test_umeyama_and_similarity_roundtrip() -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 500, (7, 2))
    truth = Similarity((200.0, 150.0), 0.7, 0.4).to_matrix(256)
    assert np.allclose(umeyama(src, transform_points(truth, src)), truth, atol=1e-9)
    back = Similarity.from_matrix(truth, 256)
    assert np.allclose(back.center, (200.0, 150.0)) and math.isclose(back.scale, 0.7) and math.isclose(back.angle, 0.4)
    assert np.allclose(transform_points(invert_affine(truth), transform_points(truth, src)), src)


def test_canonical_crop_layout(detector: LandmarkDetector) -> None:
    lm = detector.detect(load_rgb("obama.jpg"))[0].landmarks
    ct = CropTransform.from_similarity(align_face(lm, 256), lm, 256)
    eyes, mouth = ct.landmarks[EYES].mean(0), ct.landmarks[MOUTH].mean(0)
    assert np.allclose(eyes, (128, EYE_Y * 256), atol=6)
    assert np.allclose(mouth, (128, (EYE_Y + FACE_UNIT) * 256), atol=6)
    assert abs(ct.landmarks[33, 1] - ct.landmarks[263, 1]) < 3  # eyes level
    inside = (ct.landmarks[:, :2] > 8) & (ct.landmarks[:, :2] < 248)
    assert inside.all()  # the whole face mesh, jaw included, is well inside the crop
    assert ct.lips.shape == (40, 2)
    assert np.allclose(canonical_points(512), (canonical_points(256) + 0.5) * 2 - 0.5)


def test_alignment_recovers_known_similarity(detector: LandmarkDetector) -> None:
    img = load_rgb("astronaut.png")
    known = Similarity((230.0, 170.0), 0.75, math.radians(20)).to_matrix(512)  # frame -> moved frame
    moved = cv2.warpAffine(img, known, (512, 512), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    m_orig = align_face(detector.detect(img)[0].landmarks).to_matrix(256)
    m_moved = align_face(detector.detect(moved)[0].landmarks).to_matrix(256)

    recovered = Similarity.from_matrix(invert_affine(m_moved) @ np.vstack([m_orig, [0, 0, 1]]), 512)
    expected = Similarity.from_matrix(known, 512)
    assert recovered.scale == pytest.approx(expected.scale, rel=0.03)
    assert recovered.angle == pytest.approx(expected.angle, abs=math.radians(1.5))
    face_pts = detector.detect(img)[0].landmarks[ALIGN_INDICES, :2]
    err = transform_points(recovered.to_matrix(512), face_pts) - transform_points(known, face_pts)
    assert np.abs(err).max() < 4  # pixels, on a face ~150 px wide

    crops = warp_to_crop(to_tensor(img, moved), np.stack([m_orig, m_moved]))
    assert correlation(crops[0].numpy(), crops[1].numpy()) > 0.9


# --- torch warping -----------------------------------------------------------------------


def test_normalized_coordinates() -> None:
    n = pixel_to_normalized(4, 8)
    ends = n @ torch.tensor([[0.0, 7.0], [0.0, 3.0], [1.0, 1.0]], dtype=torch.float64)
    assert torch.allclose(
        ends[:2], torch.tensor([[-1 + 1 / 8, 1 - 1 / 8], [-1 + 1 / 4, 1 - 1 / 4]], dtype=torch.float64)
    )
    eye = np.eye(3)[None, :2]
    assert torch.allclose(affine_grid_theta(eye, (10, 20), (10, 20)), torch.tensor(eye))


@pytest.mark.parametrize(("padding", "border"), [("zeros", cv2.BORDER_CONSTANT), ("border", cv2.BORDER_REPLICATE)])
def test_warp_to_crop_matches_cv2(padding: str, border: int) -> None:
    imgs = [load_rgb("grace_hopper.jpg"), cv2.flip(load_rgb("grace_hopper.jpg"), 0)]
    matrices = np.stack(
        [
            Similarity((250.0, 230.0), 0.9, math.radians(12)).to_matrix(192),
            Similarity((60.0, 500.0), 0.6, math.radians(-30)).to_matrix(192),  # runs off the frame
        ]
    )
    crops = warp_to_crop(to_tensor(*imgs), matrices, 192, padding_mode=padding, antialias=False)
    assert crops.shape == (2, 3, 192, 192)
    for img, m, crop in zip(imgs, matrices, crops, strict=True):
        ref = cv2.warpAffine(img.astype(np.float32), m, (192, 192), flags=cv2.INTER_LINEAR, borderMode=border)
        diff = np.abs(to_image(crop) - ref)
        assert diff.mean() < 0.05 and diff.max() < 1.0


def test_warp_antialias_close_to_area_filter() -> None:
    img = load_rgb("obama3.jpg")[:2332, :1432]  # multiples of 4
    small = img.reshape(583, 4, 358, 4, 3).mean(axis=(1, 3)).astype(np.float32)  # exact 4x4 block means
    m_small = Similarity((180.0, 250.0), 0.9, math.radians(5)).to_matrix(128)
    blocks = np.array([[4.0, 0, 1.5], [0, 4.0, 1.5], [0, 0, 1]])  # small pixel -> full-size pixel
    m_full = m_small @ np.linalg.inv(blocks)  # same crop from the full image, scale 0.225
    ref = cv2.warpAffine(small, m_small, (128, 128), flags=cv2.INTER_LINEAR)
    plain, smooth = (to_image(warp_to_crop(to_tensor(img), m_full[None], 128, antialias=aa)[0]) for aa in (False, True))
    assert np.abs(smooth - ref).mean() < 1.0 < np.abs(plain - ref).mean()


def test_paste_back_roundtrip_and_untouched_outside() -> None:
    img = load_rgb("grace_hopper.jpg")
    frames = to_tensor(img, img[:, ::-1].copy())
    matrices = np.stack(
        [
            Similarity((300.0, 250.0), 1.05, math.radians(8)).to_matrix(256),
            Similarity((200.0, 300.0), 0.95, -0.3).to_matrix(256),
        ]
    )
    crops = warp_to_crop(frames, matrices)
    out = paste_back(frames, crops, matrices, feather=8.0)
    assert out.shape == frames.shape and out.dtype == frames.dtype

    ys, xs = np.mgrid[0 : img.shape[0], 0 : img.shape[1]]
    pix = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    for b in range(2):
        in_crop = transform_points(matrices[b], pix).reshape(*img.shape[:2], 2)
        footprint = ((in_crop > -0.5) & (in_crop < 255.5)).all(-1)
        changed = (out[b] != frames[b]).any(0).numpy()
        assert not (changed & ~footprint).any()  # outside the crop: bit-identical
        core = ((in_crop > 12) & (in_crop < 243)).all(-1)  # past the feathered edge
        diff = (out[b] - frames[b]).abs().amax(0).numpy()[core]
        assert diff.mean() < 5.0  # two bilinear resamplings of a sharp photo, 0..255 scale

    # a crop that differs by a constant blends in smoothly: no seam at the edge
    flat = torch.zeros(1, 3, 300, 300)
    m = Similarity((150.0, 150.0), 1.0, 0.2).to_matrix(128)[None]
    soft = paste_back(flat, torch.full((1, 3, 128, 128), 100.0), m, feather=10.0)
    step = max(soft.diff(dim=-1).abs().max().item(), soft.diff(dim=-2).abs().max().item())
    assert soft.max().item() == pytest.approx(100.0) and step < 100.0 / 10 * 1.5

    zero_mask = paste_back(frames, crops + 50, matrices, mask=torch.zeros(2, 1, 256, 256))
    assert torch.equal(zero_mask, frames)
    same = frames.clone()
    assert paste_back(same, crops, matrices, inplace=True) is same


def test_warp_and_paste_keep_dtype() -> None:
    frames = torch.rand(2, 3, 120, 160, dtype=torch.float64)
    m = np.stack([Similarity((80.0, 60.0), 1.2, 0.1).to_matrix(64)] * 2)
    crops = warp_to_crop(frames.half(), m, 64)
    assert crops.dtype == torch.float16
    ref = warp_to_crop(frames, m, 64)
    assert ref.dtype == torch.float64 and (crops.double() - ref).abs().max() < 2e-3
    assert paste_back(frames.bfloat16(), crops.bfloat16(), m).dtype == torch.bfloat16
    assert feather_mask(64, 4)[0].sum() == 0 and feather_mask(64, 4)[32, 32] == 1


# --- smoothing ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def photo_landmarks(detector: LandmarkDetector) -> np.ndarray:
    return detector.detect(load_rgb("obama.jpg"))[0].landmarks[:, :2].astype(np.float64)


def _crop_positions(sim: Similarity, points: np.ndarray) -> np.ndarray:
    return transform_points(sim.to_matrix(256), points)


def test_smoothing_removes_jitter_on_still_head(photo_landmarks: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    smoother = TransformSmoother(256)
    probe = photo_landmarks[[33, 263, 61, 291, 152]]
    raw, smooth = [], []
    for i in range(120):
        sim = align_face(photo_landmarks + rng.normal(0, 1.0, photo_landmarks.shape))
        raw.append(_crop_positions(sim, probe))
        smooth.append(_crop_positions(smoother(sim, i * 1000 / 30), probe))
    jitter_raw = np.linalg.norm(np.diff(raw[20:], axis=0), axis=-1).mean()
    jitter_smooth = np.linalg.norm(np.diff(smooth[20:], axis=0), axis=-1).mean()
    assert jitter_raw > 0.3  # crop pixels per frame: the noise is visible
    assert jitter_smooth < 0.25 * jitter_raw


@pytest.mark.parametrize("speed", [3.0, 10.0])  # frame pixels per frame at 30 fps
def test_smoothing_follows_fast_motion(photo_landmarks: np.ndarray, speed: float) -> None:
    rng = np.random.default_rng(0)
    smoother = TransformSmoother(256)
    lags = []
    for i in range(60):
        moved = photo_landmarks + np.array([speed * i, 0.5 * speed * i])
        out = smoother(align_face(moved + rng.normal(0, 0.5, moved.shape)), i * 1000 / 30)
        truth = align_face(moved)
        lags.append(np.linalg.norm(np.subtract(truth.center, out.center)) / (speed * math.hypot(1, 0.5)))
    assert np.mean(lags[20:]) < 1.0  # frames behind, once the filter has settled


def test_smoothing_step_and_reset(photo_landmarks: np.ndarray) -> None:
    smoother = TransformSmoother(256)
    still = align_face(photo_landmarks)
    jumped = align_face(photo_landmarks + np.array([60.0, 0.0]))
    for i in range(30):
        smoother(still, i * 40)
    errors = [abs(smoother(jumped, (30 + i) * 40).center[0] - jumped.center[0]) * jumped.scale for i in range(5)]
    assert errors[2] < 1.0  # crop pixels, two frames after the jump
    smoother.reset()
    passed = smoother(still, 10_000)  # after a reset the first sample passes through
    assert np.allclose(passed.center, still.center) and passed.scale == pytest.approx(still.scale)


def test_smoothing_angle_wraps() -> None:
    smoother = TransformSmoother(256)
    for i, angle in enumerate([math.pi - 0.01, -math.pi + 0.01, math.pi - 0.01]):
        out = smoother(Similarity((0.0, 0.0), 1.0, angle), i * 40)
        assert abs(math.remainder(out.angle - math.pi, 2 * math.pi)) < 0.02


# --- tracking ----------------------------------------------------------------------------


def test_tracker_on_video_with_gap() -> None:
    av = pytest.importorskip("av")
    if not VIDEO.is_file():
        pytest.skip(f"shared test media not found: {VIDEO}")
    with av.open(str(VIDEO)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in islice(container.decode(video=0), 36)]
    blank = np.zeros_like(frames[0])
    stream = frames[:12] + [blank] * 3 + frames[12:]
    gap = range(12, 15)

    with FaceTracker(256) as tracker:
        results = [tracker.track(frame, int(i * 1000 / 24)) for i, frame in enumerate(stream)]
    for i, ct in enumerate(results):
        assert (ct is None) == (i in gap)
    for ct in (results[0], results[15]):  # first frame and first frame after the gap: unsmoothed
        direct = align_face(ct.landmarks, 256)
        assert direct.scale == pytest.approx(1.0, abs=1e-4) and abs(direct.angle) < 1e-4
        assert np.allclose(direct.center, (127.5, 127.5), atol=1e-2)
    for ct in results[15:]:
        assert ct.matrix.shape == (2, 3) and np.allclose(ct.matrix @ np.vstack([ct.inverse, [0, 0, 1]]), np.eye(2, 3))
        assert np.allclose(ct.landmarks[EYES].mean(0), (128, EYE_Y * 256), atol=12)
        assert np.allclose(ct.landmarks[MOUTH].mean(0), (128, (EYE_Y + FACE_UNIT) * 256), atol=12)
    crops = warp_to_crop(to_tensor(*stream[16:24]), np.stack([ct.matrix for ct in results[16:24]]))
    assert min(correlation(crops[i].numpy(), crops[i + 1].numpy()) for i in range(7)) > 0.9
