"""Pairs rendered on the fly: the renderer's flow labels, the training pack and `RenderedPairs`."""

import cv2
import numpy as np
import pytest
import torch

from dck_talking import DCKError
from dck_talking.data.pack import (
    Pack,
    dequantise_mel,
    dequantise_track,
)
from dck_talking.data.render import MouthRig, _distance, _inside
from dck_talking.data.rendered import RenderedPairs
from dck_talking.examples import FACE as EXAMPLE_FACE
from dck_talking.face import LandmarkDetector, align_face
from dck_talking.image import read_image
from dck_talking.model.unet import warp

MOUTH = (slice(140, 230), slice(70, 190))  # rows, columns around the mouth of a canonical 256 crop


@pytest.fixture(scope="module")
def face():
    image = read_image(EXAMPLE_FACE)
    with LandmarkDetector(video=False) as detector:
        marks = detector.detect(image)[0].landmarks[:, :2]
    matrix = align_face(marks, 256).to_matrix(256)
    crop = cv2.warpAffine(image, matrix, (256, 256), flags=cv2.INTER_AREA)
    return crop, marks @ matrix[:, :2].T + matrix[:, 2]


def _warped(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    moved = warp(torch.from_numpy(image).permute(2, 0, 1)[None].float(), torch.from_numpy(flow).permute(2, 0, 1)[None])
    return moved[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("first_openness", [None, 0.0, 0.9])
def test_pair_flow_takes_the_first_rendering_to_the_second(face, first_openness):
    crop, marks = face
    rig = MouthRig(marks, crop)
    first = None if first_openness is None else rig.draw(crop, marks, first_openness, -0.3)
    second = rig.draw(crop, marks, 0.6, 0.4)
    flow, valid = rig.pair_flow(first, second)
    source = crop if first is None else first.image
    target = second.image.astype(np.float32)
    check = np.zeros_like(valid)
    check[MOUTH] = valid[MOUTH]
    error = np.abs(_warped(source, flow) - target).mean(axis=-1)[check].mean()
    unmoved = np.abs(source.astype(np.float32) - target).mean(axis=-1)[check].mean()
    assert error < 3.0 and unmoved > 4 * error  # what is left: resampling twice (render, then warp)
    assert not valid[second.painted > 0.5].any()  # the painted interior has no flow label
    assert second.painted.max() > 0.9 and second.painted[:100].max() == 0  # painted only in the mouth
    assert np.abs(flow[:100]).max() == 0 and valid[:100].all()  # nothing above the nose moves


def test_polygon_tests_agree_with_opencv():
    """The rig's vectorised point-in-polygon and edge distance against cv2.pointPolygonTest, point by point."""
    rng = np.random.default_rng(0)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 20))
    radii = rng.uniform(30, 60, (20, 1))
    polygon = (np.stack([np.cos(angles), 0.5 * np.sin(angles)], 1) * radii + 128).astype(np.float32)
    points = rng.uniform(60, 196, (2000, 2)).astype(np.float32)
    signed = np.array([cv2.pointPolygonTest(polygon, (float(x), float(y)), True) for x, y in points])
    polygon64 = polygon.astype(np.float64)
    assert np.array_equal(_inside(polygon64, points)[np.abs(signed) > 1e-3], signed[np.abs(signed) > 1e-3] > 0)
    np.testing.assert_allclose(_distance(polygon64, points.astype(np.float64)), np.abs(signed), atol=1e-3)


def test_pack_round_trip(pack):
    assert [i["id"] for i in pack.identities] == ["a", "c", "b", "morph-0"]
    assert pack.identities[-1]["derived"] == "morph" and pack.identities[-1]["split"] == "train"
    assert pack.image(0).shape == (384, 384, 3) and pack.landmarks.shape == (4, 478, 2)
    # The canonical crop sits in the middle of the pack image: the mouth corners at (0.5 +- 0.1175, 0.6) of it.
    corners = pack.landmarks[0, [61, 291]]
    np.testing.assert_allclose(corners.mean(axis=0), [64 + 0.5 * 256 - 0.5, 64 + 0.6 * 256 - 0.5], atol=4)
    assert pack.mel.dtype == np.uint8 and pack.mel.shape == (80, 3 * 81) and list(pack.offsets) == [0, 81, 162, 243]
    assert list(pack.train) == [True, True, False]
    # The /m/ (0.3-0.5 s) is closed and the /ɑ/ open in the stored track.
    track = pack.track[:81].astype(np.float32) / 255
    assert track[int(0.4 * 80), 2] == 1 and track[int(0.4 * 80), 0] == 0 and track[int(0.65 * 80), 0] > 0.6


def test_rendered_pairs(pack):
    pairs = RenderedPairs(pack, length=10, seed=1)
    item = pairs[3]
    assert item["input"].shape == item["target"].shape == (3, 256, 256) and item["mel"].shape == (1, 80, 16)
    assert item["flow"].shape == (2, 256, 256) and item["flow_valid"].shape == item["painted"].shape == (1, 256, 256)
    assert item["lips"].shape == (40, 2) and item["visemes"].shape == (3,)
    again = RenderedPairs(pack, length=10, seed=1)[3]
    for key, value in item.items():  # item k is always the same pair
        torch.testing.assert_close(value, again[key], rtol=0, atol=0)
    assert (RenderedPairs(pack, length=10, seed=2)[3]["target"] != item["target"]).any()
    with pytest.raises(IndexError):
        pairs[10]
    # Each mel window is a stored one, starting `window_lead` steps before the moment of the target mouth.
    windows = {dequantise_mel(pack.mel[:, s:s + 16]).tobytes(): s for s in range(pack.mel.shape[1] - 15)}
    for lead in (0, 4):
        for k in range(10):
            item = RenderedPairs(pack, length=10, seed=1, window_lead=lead)[k]
            start = windows[item["mel"][0].numpy().tobytes()]
            torch.testing.assert_close(item["visemes"], torch.from_numpy(dequantise_track(pack.track[start + lead:][:1])[0]))


def test_rendered_flow_labels_hold_for_the_pairs(pack):
    pairs = RenderedPairs(pack, length=8, seed=0, degrade=False)
    errors, unmoved = [], []
    for k in range(8):
        item = pairs[k]
        valid = item["flow_valid"][0] > 0
        moved = warp(item["input"][None], item["flow"][None])[0]
        errors.append((moved - item["target"]).abs().mean(0)[valid].mean().item())
        unmoved.append((item["input"] - item["target"]).abs().mean(0)[valid].mean().item())
    assert np.mean(errors) < 0.5 * np.mean(unmoved) and np.mean(errors) < 1 / 255


def test_splits_and_errors(pack, tmp_path):
    evaluation = RenderedPairs(pack, split="eval", length=4, degrade=False)
    assert [i["id"] for i in evaluation.identities] == ["b"] and list(evaluation.utterances) == [2]
    with pytest.raises(DCKError, match=r"not a training pack \(no speech.npz\)"):
        Pack.load(tmp_path)
    with pytest.raises(ValueError, match="no test identities or speech"):
        RenderedPairs(pack, split="test")


def test_faces_and_speech_are_chosen_apart(pack):
    seen_faces_new_voice = RenderedPairs(pack, split="train", speech_split="eval", length=2)
    assert {i["id"] for i in seen_faces_new_voice.identities} == {"a", "c", "morph-0"}
    assert list(seen_faces_new_voice.utterances) == [2]
    assert list(RenderedPairs(pack, voices=["voice1"], length=2).utterances) == [1]
    assert list(RenderedPairs(pack, voices=["voice*"], length=2).utterances) == [0, 1]
    with pytest.raises(ValueError, match="no train identities or speech"):
        RenderedPairs(pack, voices=["nobody"])
