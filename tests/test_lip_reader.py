"""LipReader: shapes, Hub round trip, and `dck-talking train-lips` learning a mouth opening."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from dck_talking.cli import main
from dck_talking.model.lip_reader import LipReader
from dck_talking.train_lips import landmark_error


def mouth_frame(rng: np.random.Generator, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """A 256 crop of noise with a dark mouth `gap` pixels tall at the canonical mouth position, and
    its 40 'lip landmarks': 20 on the upper edge, 20 on the lower edge of the mouth."""
    frame = rng.integers(120, 200, (256, 256, 3), dtype=np.uint8)
    top = 150
    frame[top:top + max(1, round(gap)), 98:158] = 30
    xs = np.linspace(98, 157, 20)
    lips = np.concatenate([np.stack([xs, np.full(20, top)], 1), np.stack([xs, np.full(20, top + gap)], 1)])
    return frame, lips.astype(np.float32)


def write_mouths(root, n_frames: int, seed: int) -> None:
    from dck_talking.data import ClipWriter

    rng = np.random.default_rng(seed)
    for speech in ("s0", "s1"):
        writer = ClipWriter(root / "groups" / "g0" / speech, n_frames, 256)
        for i in range(n_frames):
            writer.frames[i], writer.lips[i] = mouth_frame(rng, rng.uniform(0, 24))
        writer.commit(np.zeros((80, n_frames * 80 // 25 + 20), np.float32),
                      {"fps": 25.0, "frames": n_frames, "size": 256, "source": "test", "identity": "x",
                       "group": "g0", "speech": speech})


def test_lip_reader_shapes_and_round_trip(tmp_path):
    reader = LipReader().eval()
    crops = torch.rand(2, 3, 256, 256)
    with torch.no_grad():
        lips = reader(crops)
    assert lips.shape == (2, 40, 2)
    reader.save_pretrained(tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(LipReader.from_pretrained(tmp_path)(crops), lips, rtol=0, atol=0)
    with pytest.raises(ValueError, match="256x256 crops, got \\(64, 64\\)"):
        reader(torch.rand(1, 3, 64, 64))


def test_train_lips_learns_the_mouth_opening(tmp_path, capsys):
    write_mouths(tmp_path / "data", 48, seed=0)
    write_mouths(tmp_path / "held", 16, seed=1)
    out = tmp_path / "reader"
    assert main(["train-lips", "--data", str(tmp_path / "data"), "--val-data", str(tmp_path / "held"),
                 "--out", str(out), "--steps", "150"]) == 0
    error = float(re.search(r"error ([\d.]+) px", capsys.readouterr().out).group(1))

    from torch.utils.data import DataLoader

    from dck_talking.data import PairDataset
    held = DataLoader(PairDataset(tmp_path / "held"), batch_size=16)
    assert error == pytest.approx(landmark_error(LipReader.from_pretrained(out), held), abs=0.01)
    torch.manual_seed(0)
    assert error < 3.0 < landmark_error(LipReader(), held)
    # It reads the opening, not just an average mouth: the gaps it reads follow the true ones.
    reader = LipReader.from_pretrained(out).eval()
    batch = next(iter(held))
    with torch.no_grad():
        read = reader(batch["target"])
    gaps = (read[:, 20:, 1] - read[:, :20, 1]).mean(1).numpy()
    true = (batch["lips"][:, 20:, 1] - batch["lips"][:, :20, 1]).mean(1).numpy()
    assert np.corrcoef(gaps, true)[0, 1] > 0.9
