import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

# A DCKTalker small enough to train for a few steps in a test.
TINY = dict(image_size=64, down_channels=[4, 8, 8, 16], dck_channels=16, dck_layers=2, kernel_hidden=16)


@pytest.fixture(scope="session")
def pack(tmp_path_factory):
    """A training pack: the example face (train), its mirror image (train, and eval as another person),
    one morph, a grey square with no face (left out), and three utterances of noise with phones."""
    import cv2
    import numpy as np

    from dck_talking.data.pack import (
        FaceSource,
        Pack,
        SpeechItem,
        write_faces,
        write_speech,
    )
    from dck_talking.data.phones import Phone
    from dck_talking.examples import FACE
    from dck_talking.image import read_image

    root = tmp_path_factory.mktemp("pack")
    image = read_image(FACE)
    cv2.imwrite(str(root / "a.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(root / "b.png"), cv2.cvtColor(np.ascontiguousarray(image[:, ::-1]), cv2.COLOR_RGB2BGR))
    (root / "not-a-face.png").write_bytes(cv2.imencode(".png", np.full((64, 64, 3), 128, np.uint8))[1].tobytes())
    faces = [FaceSource("a", str(root / "a.png")), FaceSource("c", str(root / "b.png")),
             FaceSource("b", str(root / "b.png"), "eval"), FaceSource("x", str(root / "not-a-face.png"))]
    summary = write_faces(faces, root / "pack", morphs=1)
    assert summary["identities"] == 4 and summary["frames"] == 4
    assert summary["left_out"] == [f"{root / 'not-a-face.png'}: no face found"]
    rng = np.random.default_rng(0)
    items = []
    for k in range(3):
        wav = (rng.standard_normal(16000) * np.repeat(rng.uniform(0, 0.3, 10), 1600)).astype(np.float32)
        phones = [Phone(0.0, 0.3, ""), Phone(0.3, 0.5, "m"), Phone(0.5, 0.8, "ɑ"), Phone(0.8, 1.0, "")]
        items.append(SpeechItem(f"u{k}", f"voice{k % 2}", wav, phones, train=k < 2))
    summary = write_speech(items, root / "pack")
    assert summary["utterances"] == 3 and summary["voices"] == 2
    return Pack.load(root / "pack")
