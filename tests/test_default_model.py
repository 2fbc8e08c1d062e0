"""The default checkpoint bundled in the package, and `dck-talking demo` / `dck-talking sync` that use it."""

from __future__ import annotations

import numpy as np
import torch
from safetensors import safe_open

from dck_talking import DCKTalker
from dck_talking.cli import main
from dck_talking.evaluate import _delayed, format_sweep
from dck_talking.examples import FACE, SPEECH
from dck_talking.model import DEFAULT_CHECKPOINT
from dck_talking.pipeline import TalkingFacePipeline
from dck_talking.video import probe


def test_from_pretrained_without_arguments_loads_the_bundled_fp16_checkpoint():
    weights = DEFAULT_CHECKPOINT / "model.safetensors"
    assert weights.stat().st_size < 40e6
    with safe_open(weights, "pt") as f:
        assert {f.get_tensor(key).dtype for key in f.keys()} == {torch.float16, torch.int64}  # int: BatchNorm counts
    model = DCKTalker.from_pretrained()
    assert model._hub_mixin_config["use_dck"] and model._hub_mixin_config["use_blending"]
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    with safe_open(weights, "pt") as f:
        assert all(torch.equal(value.to(f.get_tensor(key).dtype), f.get_tensor(key))
                   for key, value in model.state_dict().items())
    card = (DEFAULT_CHECKPOINT / "README.md").read_text()
    assert "## Training data" in card and "Not described" not in card and "| lmd |" in card.lower()


def test_pipeline_without_a_model_uses_the_bundled_one():
    bundled = DCKTalker.from_pretrained()
    pipe = TalkingFacePipeline(device="cpu")
    assert all(torch.equal(a, b) for a, b in zip(pipe.model.state_dict().values(), bundled.state_dict().values()))


def test_demo_writes_demo_mp4_and_says_where(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DCK_CHECKPOINT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"demo: {tmp_path / 'demo.mp4'}" in out and "bundled" in out
    info = probe(tmp_path / "demo.mp4")
    assert (info.width, info.height) == (512, 600) and abs(info.duration - 3.50) < 0.05


def test_delayed_shifts_later_and_earlier_with_silence():
    wav = np.arange(1, 7, dtype=np.float32)
    assert _delayed(wav, 2).tolist() == [0, 0, 1, 2, 3, 4]
    assert _delayed(wav, -2).tolist() == [3, 4, 5, 6, 0, 0]
    assert _delayed(wav, 0).tolist() == wav.tolist()


def test_sync_prints_a_score_for_every_delay_and_recording(capsys, monkeypatch, tmp_path):
    # The bundled model keeps a real face in every frame (a random model may garble it so that
    # MediaPipe finds no lips and every score is NaN).
    monkeypatch.delenv("DCK_CHECKPOINT", raising=False)
    other = tmp_path / "other.wav"
    other.write_bytes(SPEECH.read_bytes())
    assert main(["sync", "--face", str(FACE), "--audio", str(SPEECH), str(other), "--max-delay", "1",
                 "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"| audio delay (frames) | {SPEECH.name} | other.wav | mean |" in lines
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines
            if line.startswith(("| -1 |", "| +0 |", "| +1 |"))]
    assert [row[0] for row in rows] == ["-1", "+0", "+1"]
    for column in (1, 2, 3):  # one peak per column, scores in [-1, 1]
        assert sum("(peak)" in row[column] for row in rows) == 1
        assert all(-1 <= float(row[column].split()[0]) <= 1 for row in rows)
    # The same sound gives the same scores; the mean of two equal columns is that column.
    assert all(row[1] == row[2] == row[3] for row in rows)


def test_format_sweep_marks_each_recordings_peak_and_that_of_the_mean():
    table = format_sweep({"a.wav": {-1: 0.5, 0: 0.1, 1: 0.0}, "b.wav": {-1: -0.1, 0: 0.3, 1: float("nan")}})
    assert table.splitlines()[2:] == ["| -1 | 0.500 (peak) | -0.100 | 0.200 (peak) |",
                                      "| +0 | 0.100 | 0.300 (peak) | 0.200 |",
                                      "| +1 | 0.000 | nan | 0.000 |"]


def test_sync_refuses_a_bad_recording_before_rendering(capsys, monkeypatch, tmp_path):
    def no_render(*args, **kwargs):
        raise AssertionError("rendered before checking every recording")

    monkeypatch.setattr("dck_talking.evaluate.delay_sweep", no_render)
    missing = tmp_path / "missing.wav"
    assert main(["sync", "--face", str(FACE), "--audio", str(SPEECH), str(missing), "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip() == f"dck-talking: error: {missing}: file not found"
