"""The face's own mouth closed before the network: the warp, what it reports as changed, the paste."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY
from PIL import Image

from dck_talking import DCKTalker
from dck_talking.audio import load_audio
from dck_talking.closed_mouth import CHANGE_LEVEL, close_mouth
from dck_talking.data.render import MouthRig
from dck_talking.examples import FACE, SPEECH
from dck_talking.face import FaceTracker, LandmarkDetector, crop_image
from dck_talking.metrics import MouthLandmarks, lip_gap
from dck_talking.pipeline import TalkingFacePipeline, pasted
from dck_talking.video import iter_frames


def square_face() -> np.ndarray:
    image = np.asarray(Image.open(FACE).convert("RGB"))
    side = min(image.shape[:2])
    return np.ascontiguousarray(image[:side, :side])


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, np.ndarray]:
    """The example face (mouth closed) and the same face with its mouth opened wide by the renderer."""
    closed = square_face()
    with LandmarkDetector(num_faces=1, video=False) as detector:
        marks = detector.detect(closed)[0].landmarks[:, :2]
    opened, _ = MouthRig(marks, closed).render(closed, marks, 0.8, 0.0)
    return {"closed": closed, "open": opened}


def crop_and_landmarks(photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with FaceTracker(256, video=False) as tracker:
        transform = tracker.track(photo, 0)
    return crop_image(photo, transform.matrix, 256), transform.landmarks


def gap(image: np.ndarray, landmarks: MouthLandmarks) -> float:
    points = landmarks(image)
    assert points is not None
    return lip_gap(points)


def test_an_open_mouth_is_closed_and_only_around_it(photos):
    crop, marks = crop_and_landmarks(photos["open"])
    result = close_mouth(crop, marks)
    assert result.changed is not None and result.changed.shape == crop.shape[:2]
    with MouthLandmarks() as landmarks:
        assert gap(crop, landmarks) > 0.2
        assert gap(result.image, landmarks) < 0.05
    centre = np.round((marks[13] + marks[14]) / 2).astype(int)
    assert result.changed[centre[1], centre[0]] == pytest.approx(1.0)
    assert result.changed[: 256 // 3].max() == 0  # eyes and forehead untouched
    untouched = result.changed == 0
    assert np.abs(result.image[untouched].astype(int) - crop[untouched]).max() <= CHANGE_LEVEL


def test_a_closed_mouth_is_left_as_it_is(photos):
    crop, marks = crop_and_landmarks(photos["closed"])
    result = close_mouth(crop, marks)
    assert result.image is crop and result.changed is None


def test_paste_weights():
    generator = torch.Generator().manual_seed(0)
    motion, crops = torch.rand(2, 3, 8, 8, generator=generator), torch.rand(2, 3, 8, 8, generator=generator)
    alpha = torch.rand(2, 1, 8, 8, generator=generator)
    image, weight = pasted(motion, alpha, crops, None)
    assert image is motion and weight is alpha
    # No pixel changed: the same paste as without.
    image, weight = pasted(motion, alpha, crops, torch.zeros_like(alpha))
    torch.testing.assert_close(weight, alpha)
    torch.testing.assert_close(image, motion)
    # Where the mask is off and the input changed, the input itself goes in.
    changed = torch.zeros_like(alpha)
    changed[:, :, 2:5, 2:5] = 1
    alpha[:, :, 2:5, 2:5] = 0
    image, weight = pasted(motion, alpha, crops, changed)
    torch.testing.assert_close(image[:, :, 2:5, 2:5], crops[:, :, 2:5, 2:5])
    assert (weight[:, :, 2:5, 2:5] == 1).all()
    # The frame's share: alpha * motion + (weight - alpha) * crops, whatever the mix.
    changed = torch.rand(2, 1, 8, 8, generator=generator)
    image, weight = pasted(motion, alpha, crops, changed)
    torch.testing.assert_close(image * weight, alpha * motion + (weight - alpha) * crops)


@pytest.mark.parametrize("close", [True, False])
def test_the_pipeline_feeds_and_pastes_a_closed_mouth(photos, tmp_path, close):
    """A fresh warp model shows its input: the face's open mouth comes out closed, or open with
    `close_mouth=False`."""
    photo, audio, out = tmp_path / "open.png", tmp_path / "speech.wav", tmp_path / "out.mp4"
    Image.fromarray(photos["open"]).save(photo)
    sf.write(audio, load_audio(SPEECH)[:8000], 16000)
    model = DCKTalker(**{**TINY, "image_size": 256}, motion="warp")
    TalkingFacePipeline(model, device="cpu", close_mouth=close).generate(photo, audio, out)
    frame = next(iter(iter_frames(out)))
    with MouthLandmarks() as landmarks:
        crop, _ = crop_and_landmarks(frame)
        assert (gap(crop, landmarks) < 0.05) if close else (gap(crop, landmarks) > 0.2)
