"""The network-free baseline: predicted visemes drawn onto the face by the synthetic renderer."""

import torch

from dck_talking.baseline import DrawnVisemes
from dck_talking.data.rendered import RenderedPairs
from dck_talking.metrics import MouthLandmarks, lip_gap
from dck_talking.face.warp import to_uint8


class FixedMouth(torch.nn.Module):
    """A stand-in predictor: the same (open, spread, closed) for every window."""

    window_lead = 0

    def __init__(self, openness: float, closed: float) -> None:
        super().__init__()
        self.values = torch.tensor([openness, 0.5, closed])

    def mouth(self, mels: torch.Tensor) -> torch.Tensor:
        return self.values.expand(len(mels), 3)


def test_drawn_mouth_opens_and_closes_and_a_crop_without_a_face_comes_back(pack):
    item = RenderedPairs(pack, length=1, seed=0, degrade=False)[0]
    face = item["input"][None]
    grey = torch.full_like(face, 0.5)
    frames, mels = torch.cat([face, grey]), torch.zeros(2, 1, 80, 16)
    opened = DrawnVisemes(FixedMouth(0.9, 0.0))(frames, mels)
    closed = DrawnVisemes(FixedMouth(0.9, 1.0))(frames, mels)  # closed > 0.5 wins over openness
    assert opened.output.shape == frames.shape and opened.alpha.shape == (2, 1, *frames.shape[-2:])
    torch.testing.assert_close(opened.output[1], grey[0])
    assert opened.alpha[1].max() == 0
    # Only around the mouth: the top third of the face crop is untouched.
    third = frames.shape[-1] // 3
    assert opened.alpha[0, :, :third].max() < 1e-3 and opened.alpha[0].max() > 0.5
    with MouthLandmarks() as landmarks:
        gaps = [lip_gap(landmarks(to_uint8(result.output)[0])) for result in (opened, closed)]
    assert gaps[0] > gaps[1] + 0.1 and gaps[1] < 0.05
