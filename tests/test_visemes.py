"""The audio side: VisemePredictor, its training on a pack's speech, `dck-talking visemes`, and the
training of a DCKTalker starting from it."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import TINY

from dck_talking import CheckpointError
from dck_talking.cli import main
from dck_talking.examples import SPEECH
from dck_talking.model.viseme_predictor import VisemePredictor, load_viseme_predictor
from dck_talking.mouth_track import mouth_track
from dck_talking.train import build_model
from dck_talking.train_audio import MixedWindows, PackWindows, train_viseme_predictor


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    folder = tmp_path_factory.mktemp("visemes") / "model"
    torch.manual_seed(0)
    VisemePredictor(window_lead=4).eval().save_pretrained(folder)
    return folder


def test_mouth_values_are_in_range_and_the_folder_round_trips(predictor):
    model = load_viseme_predictor(predictor)
    assert model.window_lead == 4 and not model.training
    mouth = model.mouth(torch.randn(8, 1, 80, 16) * 2)
    assert mouth.shape == (8, 3) and mouth.min() >= 0 and mouth.max() <= 1
    with pytest.raises(CheckpointError, match="not a VisemePredictor folder"):
        load_viseme_predictor(predictor.parent)


def test_pack_windows_hold_the_mouth_at_their_frame(pack):
    windows = iter(PackWindows(pack, window_lead=4))
    for _ in range(20):
        mel, mouth = next(windows)
        assert mel.shape == (1, 80, 16) and mouth.shape == (3,)
        assert 0 <= mouth[0] <= 1 and -1 <= mouth[1] <= 1 and mouth[2] in (0, 1)
    everything_trains = replace(pack, train=np.ones_like(pack.train))
    with pytest.raises(ValueError, match="no held-out speech"):
        PackWindows(everything_trains, train=False)


class Constant(torch.utils.data.IterableDataset):
    def __init__(self, value: float, window_lead: int = 8) -> None:
        self.value, self.window_lead = value, window_lead

    def __iter__(self):
        while True:
            yield torch.full((1, 80, 16), self.value), torch.full((3,), self.value)


def test_mixed_windows_take_each_source_in_turn(pack):
    drawn = iter(MixedWindows([Constant(0.0), Constant(1.0), Constant(2.0)]))
    assert [next(drawn)[1][0].item() for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    mixed = MixedWindows([PackWindows(pack, window_lead=4), PackWindows(pack, train=False, window_lead=4)])
    assert mixed.window_lead == 4 and next(iter(mixed))[0].shape == (1, 80, 16)
    with pytest.raises(ValueError, match=r"different leads: \[0, 8\]"):
        MixedWindows([Constant(0.0), Constant(1.0, window_lead=0)])


def test_training_on_a_pack_lowers_the_loss(pack, tmp_path):
    from dck_talking.train_audio import mouth_loss

    data = PackWindows(pack)
    windows = iter(data)
    batch = [next(windows) for _ in range(64)]
    mels, target = torch.stack([m for m, _ in batch]), torch.stack([t for _, t in batch])
    torch.manual_seed(0)
    before = mouth_loss(VisemePredictor().eval()(mels), target)[0].item()
    result = train_viseme_predictor(data, tmp_path / "model", steps=60, batch_size=16, lr=2e-3, workers=0)
    assert result["steps"] == 60
    model = load_viseme_predictor(tmp_path / "model")
    with torch.no_grad():
        after = mouth_loss(model(mels), target)[0].item()
    assert after < 0.9 * before


def test_training_refuses_windows_cut_for_another_lead(pack, predictor, tmp_path):
    with pytest.raises(ValueError, match="cut at lead 0, the model expects 4"):
        train_viseme_predictor(PackWindows(pack), tmp_path / "model", steps=1, workers=0, start=predictor)
    assert not (tmp_path / "model").exists()


def test_cli_train_audio_continues_with_the_start_models_window_lead(predictor, pack, tmp_path, capsys):
    out = tmp_path / "continued"
    assert main(["train-audio", "--pack", str(pack.root), str(pack.root), "--start", str(predictor), "--out", str(out),
                 "--steps", "2", "--batch-size", "4", "--workers", "0", "--closed-weight", "1"]) == 0
    assert load_viseme_predictor(out).window_lead == 4
    capsys.readouterr()
    assert main(["train-audio", "--pack", str(pack.root), "--start", str(predictor), "--out", str(tmp_path / "x"),
                 "--window-lead", "8", "--steps", "2", "--workers", "0"]) == 2
    assert "has window lead 4; --window-lead 8 does not match it" in capsys.readouterr().err


def test_cli_visemes_table_and_json(predictor, capsys):
    assert main(["visemes", "--audio", str(SPEECH), "--model", str(predictor)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["frame", "t", "(s)", "open", "spread", "closed"]
    assert len(table) == 1 + 88  # 3.50 s at 25 frames/s
    assert main(["visemes", "--audio", str(SPEECH), "--model", str(predictor), "--json", "--fps", "10"]) == 0
    track = json.loads(capsys.readouterr().out)
    assert set(track) == {"fps", "frames"} and track["fps"] == 10.0 and len(track["frames"]) == 36
    assert all(set(f) == {"t", "open", "spread", "closed"} for f in track["frames"])
    assert [f["t"] for f in track["frames"][:3]] == [0.0, 0.1, 0.2]
    assert all(0 <= f[k] <= 1 for f in track["frames"] for k in ("open", "spread", "closed"))
    # The Python API gives the same.
    assert mouth_track(SPEECH, fps=10, model=load_viseme_predictor(predictor)) == track


def test_cli_visemes_bad_input(predictor, tmp_path, capsys):
    assert main(["visemes", "--audio", str(tmp_path / "missing.wav"), "--model", str(predictor)]) == 2
    assert capsys.readouterr().err.strip() == f"dck-talking: error: {tmp_path / 'missing.wav'}: file not found"
    (tmp_path / "text.wav").write_text("not sound")
    assert main(["visemes", "--audio", str(tmp_path / "text.wav"), "--model", str(predictor)]) == 2
    assert f"{tmp_path / 'text.wav'}: " in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["visemes", "--audio", str(SPEECH), "--fps", "0"])
    assert "must be a positive number, got 0" in capsys.readouterr().err


def test_a_fresh_talker_starts_from_the_predictors_encoder(predictor, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    model = build_model(str(tmp_path / "config.json"), {}, str(predictor))
    source = load_viseme_predictor(predictor)
    assert model.window_lead == 4
    for key, value in source.audio_encoder.state_dict().items():
        torch.testing.assert_close(model.audio_encoder.state_dict()[key], value)
    random = build_model(str(tmp_path / "config.json"), {}, None)
    assert random.window_lead == 0
    assert not torch.equal(random.audio_encoder[0].conv_block[0].weight, source.audio_encoder[0].conv_block[0].weight)
