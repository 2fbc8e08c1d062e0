"""`dck-talking adapt`: synthetic pairs of one face, a short fine-tune, a checkpoint with its own card."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY
from PIL import Image
from safetensors.torch import load_file

from dck_talking import DCKTalker
from dck_talking.cli import main
from dck_talking.data import phones as phones_lib
from dck_talking.examples import FACE

pytestmark = pytest.mark.skipif(not phones_lib.espeak_available(), reason="espeak-ng is not installed")


@pytest.fixture
def tiny_base(tmp_path):
    torch.manual_seed(0)
    DCKTalker(**TINY).save_pretrained(tmp_path / "base")
    return tmp_path / "base"


def test_adapt_fine_tunes_a_checkpoint_on_one_face(tmp_path, tiny_base, capsys):
    out = tmp_path / "hopper"
    code = main(["adapt", "--face", str(FACE), "--out", str(out), "--checkpoint", str(tiny_base), "--steps", "2",
                 "--groups", "1", "--seconds", "1", "--work", str(tmp_path / "work")])
    printed = capsys.readouterr().out
    assert code == 0 and f"{out}: the model adapted to {FACE} in " in printed and "(2 steps)" in printed
    # 4 clips of 25 frames: 12 ordered pairs of clips x 25 frames, a fifth of them held out.
    assert "60 held-out pairs of this face: before PSNR" in printed and f"--checkpoint {out}" in printed
    # Four espeak-ng speeches of the one face, 25 frames each, and a 2-step run that started from the base.
    clips = sorted((tmp_path / "work" / "pairs" / "groups").glob("*/s*"))
    assert len(clips) == 4 and all(np.load(c / "frames.npy").shape == (25, 64, 64, 3) for c in clips)
    assert json.loads((tmp_path / "work" / "run" / "train_config.json").read_text())["model"] == str(tiny_base)
    adapted, base = load_file(out / "model.safetensors"), load_file(tiny_base / "model.safetensors")
    assert adapted.keys() == base.keys() and any(not torch.equal(adapted[k], base[k]) for k in base)
    assert DCKTalker.from_pretrained(out).image_size == 64
    card = (out / "README.md").read_text()
    assert "`face.jpg`" in card and "fine-tuned for 2 steps" in card and "meant for that face only" in card


def test_adapt_a_photo_without_a_face_stops_with_one_line(tmp_path, tiny_base, capsys):
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((200, 200, 3), 120, np.uint8)).save(blank)
    code = main(["adapt", "--face", str(blank), "--out", str(tmp_path / "out"), "--checkpoint", str(tiny_base)])
    err = capsys.readouterr().err
    assert code == 2 and err.endswith(f"dck-talking: error: {blank}: no face found in the photo\n")
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_adapt_stops_before_any_work_on_bad_arguments(tmp_path, tiny_base, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    code = main(["adapt", "--face", str(FACE), "--out", str(tmp_path / "notes"), "--checkpoint", str(tiny_base)])
    assert code == 2 and capsys.readouterr().err == (
        f"dck-talking: error: {tmp_path / 'notes'}: exists and is not a model folder; not overwriting it\n")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    code = main(["adapt", "--face", str(FACE), "--out", str(tmp_path / "out"), "--steps", "0"])
    assert code == 2 and capsys.readouterr().err == "dck-talking: error: adapt needs at least 1 step, got 0\n"
    assert not (tmp_path / "out").exists()


def test_adapt_gives_the_model_the_sound_windows_it_was_trained_on(tmp_path, monkeypatch, capsys):
    """A model whose windows lead its frames (the bundled one: 8 mel steps) fine-tuned on windows that
    do not learns to move its mouth 2 frames early: measured, `sync` peaked at -2 after adapting."""
    import dck_talking.adapt as adapt_module

    torch.manual_seed(0)
    DCKTalker(**TINY, window_lead=8).save_pretrained(tmp_path / "base")
    leads, real = [], adapt_module.PairDataset

    def recording(*args, **kwargs):
        leads.append(kwargs.get("window_lead", 0))
        return real(*args, **kwargs)

    monkeypatch.setattr(adapt_module, "PairDataset", recording)
    assert main(["adapt", "--face", str(FACE), "--out", str(tmp_path / "out"), "--checkpoint", str(tmp_path / "base"),
                 "--steps", "1", "--groups", "1", "--seconds", "1"]) == 0, capsys.readouterr().err
    assert leads == [8]
