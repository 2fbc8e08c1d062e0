"""A few training steps on a tiny in-memory dataset: the loss falls, resume continues, checkpoints load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY
from torch.utils.data import Dataset

from dck_talking import DCKTalker
from dck_talking.train import TrainConfig, latest_checkpoint, push_to_hub, save_model, train


class MouthPairs(Dataset):
    """Pairs whose target differs from the input only in a 'mouth' box whose brightness is set by the audio."""

    def __init__(self, n: int = 48) -> None:
        generator = torch.Generator().manual_seed(0)
        self.faces = torch.rand(n, 3, 64, 64, generator=generator) * 0.5 + 0.25
        self.levels = torch.rand(n, generator=generator)

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        target = self.faces[i].clone()
        target[:, 40:52, 20:44] = self.levels[i]
        mel = torch.full((1, 80, 16), float(self.levels[i]) * 8 - 4)
        return {"input": self.faces[i], "target": target, "mel": mel, "lips": torch.zeros(40, 2)}


def config(tmp_path, **changes) -> TrainConfig:
    base = dict(data=["in-memory"], out=str(tmp_path / "run"), model=str(tmp_path / "config.json"), steps=40,
                batch_size=8, lr=3e-3, lr_discriminator=1e-3, warmup=1, disc_channels=8, val_pairs=8, val_every=20,
                save_every=20, log_every=5, workers=0, audio_start=None)
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    return TrainConfig(**{**base, **changes})


def reconstruction_loss(model: DCKTalker, data: MouthPairs) -> float:
    batch = [data[i] for i in range(len(data))]
    stack = {key: torch.stack([item[key] for item in batch]) for key in batch[0]}
    model.eval()
    with torch.no_grad():
        return torch.nn.functional.l1_loss(model(stack["input"], stack["mel"]).output, stack["target"]).item()


def test_training_lowers_the_loss_and_resumes(tmp_path):
    data = MouthPairs()
    torch.manual_seed(0)
    before = reconstruction_loss(DCKTalker(**TINY), data)
    metrics = train(config(tmp_path, steps=20), dataset=data)
    assert set(metrics) == {"psnr", "ssim", "sharpness"}

    checkpoints = tmp_path / "run" / "checkpoints"
    first = latest_checkpoint(checkpoints)
    assert first is not None and first.name == "step-00000020"
    assert not list(checkpoints.glob(".step-*"))  # no partial folders left behind
    after = reconstruction_loss(DCKTalker.from_pretrained(first / "model"), data)
    assert after < 0.85 * before

    train(config(tmp_path, steps=40, resume=True), dataset=data)
    last = latest_checkpoint(checkpoints)
    assert last.name == "step-00000040"
    card = (last / "model" / "README.md").read_text()
    assert "| psnr |" in card and "| ssim |" in card
    assert reconstruction_loss(DCKTalker.from_pretrained(last / "model"), data) < after
    assert (tmp_path / "run" / "dck-talking").is_dir()  # TensorBoard logs


class RecordingApi:
    """Stands in for `huggingface_hub.HfApi`: records the calls and the folder that would be uploaded."""

    def __init__(self) -> None:
        self.calls, self.files = [], {}

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return type("RepoUrl", (), {"repo_id": repo_id})()

    def upload_folder(self, repo_id, folder_path, **kwargs):
        self.calls.append(("upload_folder", repo_id, kwargs))
        self.files = {p.name: p.read_bytes() for p in __import__("pathlib").Path(folder_path).iterdir()}
        return type("CommitInfo", (), {"commit_url": f"https://hub/{repo_id}/commit/1"})()


def test_push_to_hub_uploads_the_model_folder_with_metrics():
    api = RecordingApi()
    url = push_to_hub(DCKTalker(**TINY), "someone/dck-test", {"psnr": 35.0, "lmd": 1.5}, api=api)
    assert url == "https://hub/someone/dck-test/commit/1"
    assert [call[0] for call in api.calls] == ["create_repo", "upload_folder"]
    assert sorted(api.files) == ["README.md", "config.json", "model.safetensors"]
    card = api.files["README.md"].decode()
    assert "| psnr | 35.00 |" in card and "| lmd | 1.500 |" in card  # four digits, trailing zeros kept
    assert json.loads(api.files["config.json"])["dck_channels"] == 16


def write_group(root, n_frames: int = 12, size: int = 64) -> None:
    """A synth-style group: one identity and head pose, two speeches, written in the clip format."""
    from dck_talking.data import ClipWriter

    rng = np.random.default_rng(0)
    face = rng.integers(60, 200, (size, size, 3), dtype=np.uint8)
    for speech in ("s0", "s1"):
        writer = ClipWriter(root / "groups" / "g0" / speech, n_frames, size)
        for i in range(n_frames):
            frame = face.copy()
            frame[40:52, 20:44] = rng.integers(0, 255)
            writer.frames[i] = frame
        mel = rng.uniform(-4, 4, (80, n_frames * 80 // 25 + 20)).astype(np.float32)
        writer.commit(mel, {"fps": 25.0, "frames": n_frames, "size": size, "source": "test", "identity": "x",
                            "group": "g0", "speech": speech})


def test_cli_train_and_evaluate_on_clip_folders(tmp_path, capsys):
    from dck_talking.cli import main

    write_group(tmp_path / "data")
    write_group(tmp_path / "held", n_frames=5)
    (tmp_path / "tiny.json").write_text(json.dumps(TINY))
    code = main(["train", "--data", str(tmp_path / "data"), "--val-data", str(tmp_path / "held"),
                 "--config", str(tmp_path / "tiny.json"), "--out", str(tmp_path / "run"), "--steps", "2",
                 "--batch-size", "4", "--workers", "0", "--val-every", "2", "--save-every", "2",
                 "--augment", "--augment-audio"])
    assert code == 0 and "validation: psnr" in capsys.readouterr().out
    run = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert run["val_data"] == [str(tmp_path / "held")] and run["augment"] and run["augment_audio"]
    model = latest_checkpoint(tmp_path / "run" / "checkpoints") / "model"
    assert main(["evaluate", "--checkpoint", f"mine={model}", "--data", str(tmp_path / "data"), "--pairs", "8"]) == 0
    table = capsys.readouterr().out
    assert "| LMD minus mine (95% interval) |" in table
    # noise faces have no mouth for MediaPipe: no LMD, and no change to report; the input frame is as sharp as itself
    assert "| mine | " in table and table.rstrip().endswith("| nan | 1.00 | n/a |")


def test_paired_difference_is_the_mean_change_with_an_interval_around_it():
    from dck_talking.evaluate import paired_difference

    rng = np.random.default_rng(0)
    a = rng.uniform(1, 3, 200)
    b = a + 0.5 + rng.normal(0, 0.1, 200)
    a[:10] = np.nan  # pairs where one model's mouth was not found are left out
    mean, low, high = paired_difference(a, b)
    assert mean == pytest.approx(np.mean(b[10:] - a[10:])) and 0.45 < low < mean < high < 0.55 and high - low < 0.05
    assert paired_difference(a, a) == (0.0, 0.0, 0.0)
    _, low, high = paired_difference(a, a + rng.normal(0, 1, 200))
    assert low < 0 < high
    assert all(np.isnan(paired_difference(a[:10], b[:10])))


def test_mouth_box_covers_the_lips_and_the_jaws_travel():
    from dck_talking.train import mouth_box

    lips = torch.tensor([[[100.0, 150.0], [156.0, 150.0], [128.0, 140.0], [128.0, 165.0]],
                         [[18.0, 20.0], [22.0, 20.0], [20.0, 19.0], [20.0, 21.0]]])
    boxes = mouth_box(lips, 256)
    assert boxes.shape == (2, 1, 256, 256) and set(boxes.unique().tolist()) == {0.0, 1.0}
    ys, xs = torch.nonzero(boxes[0, 0], as_tuple=True)
    # 56 px wide mouth centred at (128, 152.5): 1.6 x 56 across, 1.2 x 56 down.
    assert (xs.min().item(), xs.max().item(), ys.min().item(), ys.max().item()) == (83, 172, 119, 185)
    ys, xs = torch.nonzero(boxes[1, 0], as_tuple=True)
    # a 4 px wide (closed, far) mouth counts as 8 px wide
    assert (xs.min().item(), xs.max().item(), ys.min().item(), ys.max().item()) == (14, 25, 15, 24)


def test_a_missing_input_folder_stops_before_the_run_folder_is_made(tmp_path, capsys):
    from dck_talking.cli import main

    write_group(tmp_path / "data")
    code = main(["train", "--data", str(tmp_path / "data"), "--val-data", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "run"), "--steps", "1", "--workers", "0"])
    assert code == 2 and f"{tmp_path / 'nope'}: training data folder not found" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    code = main(["train", "--data", str(tmp_path / "data"), "--lip-reader", str(tmp_path / "data"),
                 "--out", str(tmp_path / "run"), "--steps", "1", "--workers", "0"])
    assert code == 2 and f"{tmp_path / 'data'}: not a LipReader folder (no config.json)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_mouth_terms_reach_the_motion_image_while_the_mask_is_shut():
    """With alpha = 0 the paper's loss gives the motion image no gradient; the lip-reader and
    mouth terms do, and only in the box around the target's lips."""
    from dck_talking.model.discriminator import PatchDiscriminator
    from dck_talking.model.lip_reader import LipReader
    from dck_talking.model.unet import TalkerOutput
    from dck_talking.train import generator_loss, mouth_box

    torch.manual_seed(0)
    frames, target = torch.rand(2, 3, 256, 256), torch.rand(2, 3, 256, 256)
    xs = torch.linspace(100, 156, 20)
    lips = torch.cat([torch.stack([xs, torch.full((20,), 150.0)], 1), torch.stack([xs, torch.full((20,), 160.0)], 1)])
    batch = {"target": target, "lips": lips.expand(2, 40, 2)}
    discriminator, reader = PatchDiscriminator(8), LipReader().eval()

    def motion_gradient(mouth_weight: float = 0.0, lips: bool = False) -> torch.Tensor:
        motion = torch.rand(2, 3, 256, 256, requires_grad=True)
        alpha = torch.zeros(2, 1, 256, 256)
        result = TalkerOutput(output=frames * (1 - alpha) + motion * alpha, alpha=alpha, motion=motion)
        config = TrainConfig(data=[], out="", mouth_weight=mouth_weight)
        loss, parts = generator_loss(config, result, batch, discriminator, reader if lips else None)
        assert ("lips" in parts) == lips and ("mouth" in parts) == bool(mouth_weight)
        loss.backward()
        return motion.grad.abs().sum(1)

    box = mouth_box(batch["lips"], 256)[:, 0].bool()
    assert motion_gradient().max() == 0
    for terms in ({"mouth_weight": 20.0}, {"lips": True}):
        gradient = motion_gradient(**terms)
        assert gradient[box].abs().max() > 0 and gradient[~box].max() == 0


def test_save_model_replaces_a_model_folder_and_leaves_nothing_beside_it(tmp_path):
    torch.manual_seed(0)
    first, second = DCKTalker(**TINY), DCKTalker(**TINY)
    save_model(first, tmp_path / "model")
    save_model(second, tmp_path / "model")
    assert list(tmp_path.iterdir()) == [tmp_path / "model"]
    loaded = DCKTalker.from_pretrained(tmp_path / "model").state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in second.state_dict().items())


def test_save_model_that_fails_leaves_the_old_folder_and_nothing_else(tmp_path, monkeypatch):
    model = DCKTalker(**TINY)
    save_model(model, tmp_path / "model")
    before = (tmp_path / "model" / "model.safetensors").read_bytes()

    def broken(folder, **kwargs):
        (folder / "config.json").write_text("{")
        raise OSError("disk full")

    monkeypatch.setattr(model, "save_pretrained", broken)
    with pytest.raises(OSError, match="disk full"):
        save_model(model, tmp_path / "model")
    assert list(tmp_path.iterdir()) == [tmp_path / "model"]
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == before


def test_the_generators_objective_does_not_train_the_discriminator():
    """After a step the discriminator holds no gradient: its update came from its own loss alone."""
    from dck_talking.model.discriminator import PatchDiscriminator
    from dck_talking.train import adversarial_step

    torch.manual_seed(0)
    model, discriminator = DCKTalker(**TINY), PatchDiscriminator(8)
    data = MouthPairs(4)
    batch = {key: torch.stack([data[i][key] for i in range(4)]) for key in data[0]}
    steps = {}

    class Recording(torch.optim.SGD):
        def step(self, closure=None):
            steps["grads"] = [p.grad.clone() for p in discriminator.parameters()]
            return super().step(closure)

    opt_d = Recording(discriminator.parameters(), lr=0.0)
    opt_g = torch.optim.SGD(model.parameters(), lr=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt_g, lambda step: 1.0)
    result, *_ = adversarial_step(TrainConfig(data=[], out=""), model, discriminator, discriminator,
                                  (opt_g, opt_d), schedule, batch, torch.Tensor.backward)
    assert all(p.grad is None for p in discriminator.parameters())
    assert all(p.requires_grad for p in discriminator.parameters())
    # What the discriminator stepped with is the gradient of its own loss.
    from dck_talking.train import lsgan

    loss_d = 0.5 * (lsgan(discriminator(batch["target"]), True) + lsgan(discriminator(result.output.detach()), False))
    for recorded, expected in zip(steps["grads"], torch.autograd.grad(loss_d, list(discriminator.parameters()))):
        torch.testing.assert_close(recorded, expected)


def test_flow_and_gate_terms_follow_the_renderers_labels():
    from dck_talking.model.discriminator import PatchDiscriminator
    from dck_talking.model.unet import TalkerOutput
    from dck_talking.train import generator_loss

    torch.manual_seed(0)
    size = 64
    frames = torch.rand(2, 3, size, size)
    flow = torch.zeros(2, 2, size, size)
    flow[:, 1, 30:40, 20:44] = 3.0
    painted = torch.zeros(2, 1, size, size)
    painted[:, :, 32:36, 26:38] = 1.0
    lips = torch.tensor([[24.0, 32.0], [40.0, 36.0]]).repeat(20, 1).expand(2, 40, 2)
    batch = {"target": frames, "lips": lips, "flow": flow, "flow_valid": 1 - painted, "painted": painted}
    config = TrainConfig(data=[], out="", flow_weight=1.0, gate_weight=1.0)

    def parts(predicted_flow, gate):
        result = TalkerOutput(frames, torch.zeros(2, 1, size, size), frames, predicted_flow, gate)
        return generator_loss(config, result, batch, PatchDiscriminator(8))[1]

    right = parts(flow.clone(), painted.clamp(0.01, 0.99))
    wrong = parts(torch.zeros_like(flow), 1 - painted.clamp(0.01, 0.99))
    assert right["flow"] == 0 and wrong["flow"] > 0.1
    strayed = flow.clone()  # right near the lips, 2 px off in a corner far from them: penalised too,
    strayed[:, :, :8, :8] = 2.0  # as the mean over the pixels with a label (all but the 48 painted)
    assert parts(strayed, painted.clamp(0.01, 0.99))["flow"] == pytest.approx(2.0 * 64 / (size * size - 48))
    assert right["gate"] < 0.02 < 1 < wrong["gate"]
    image = TalkerOutput(frames, torch.zeros(2, 1, size, size), frames)  # an "image" model has neither term
    assert not {"flow", "gate"} & set(generator_loss(config, image, batch, PatchDiscriminator(8))[1])


def test_the_warp_mask_learns_where_the_renderer_moved_the_face():
    from dck_talking.model.discriminator import PatchDiscriminator
    from dck_talking.model.unet import TalkerOutput
    from dck_talking.train import generator_loss, moved_region

    size = 64
    frames = torch.rand(2, 3, size, size)
    flow = torch.zeros(2, 2, size, size)
    flow[:, 1, 30:40, 20:44] = 3.0
    flow[:, 0, 0:2, 0:2] = 0.05  # below the threshold: not moved
    painted = torch.zeros(2, 1, size, size)
    painted[:, :, 32:36, 26:38] = 1.0
    lips = torch.tensor([[24.0, 32.0], [40.0, 36.0]]).repeat(20, 1).expand(2, 40, 2)
    batch = {"target": frames, "lips": lips, "flow": flow, "flow_valid": 1 - painted, "painted": painted}
    moved = moved_region(batch)
    expected = torch.zeros(size, size)
    expected[26:44, 16:48] = 1.0  # the moving block widened by 4 px on every side
    torch.testing.assert_close(moved, expected.expand(2, 1, size, size))

    config = TrainConfig(data=[], out="", moved_weight=1.0)

    def parts(alpha):
        result = TalkerOutput(frames, alpha, frames, torch.zeros_like(flow), torch.zeros_like(painted))
        return generator_loss(config, result, batch, PatchDiscriminator(8))[1]

    assert parts(moved.clamp(0.01, 0.99))["moved"] < 0.02 < 1 < parts(1 - moved.clamp(0.01, 0.99))["moved"]
    image = TalkerOutput(frames, moved, frames)  # an "image" model's mask is its own
    assert "moved" not in generator_loss(config, image, batch, PatchDiscriminator(8))[1]


def test_cli_trains_a_warp_model_on_pairs_rendered_from_a_pack(pack, tmp_path, capsys):
    from dck_talking.cli import main

    (tmp_path / "config.json").write_text(json.dumps({**TINY, "image_size": 256}))
    code = main(["train", "--pack", str(pack.root), "--config", str(tmp_path / "config.json"), "--motion", "warp",
                 "--flow-weight", "1", "--gate-weight", "1", "--out", str(tmp_path / "run"), "--steps", "2",
                 "--batch-size", "2", "--workers", "0", "--val-every", "2", "--no-val-lmd"])
    assert code == 0, capsys.readouterr().err
    assert "validation: psnr" in capsys.readouterr().out
    model = DCKTalker.from_pretrained(latest_checkpoint(tmp_path / "run" / "checkpoints") / "model")
    assert model.unet.motion == "warp" and model.image_size == 256
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["pack"] == str(pack.root) and saved["model_overrides"]["motion"] == "warp"
    code = main(["train", "--out", str(tmp_path / "run2"), "--steps", "1"])
    assert code == 2 and "no training data" in capsys.readouterr().err


def test_evaluate_refuses_models_of_another_window_lead(tmp_path):
    """Pairs carry sound windows for one window lead: a model that expects another would be judged out of step."""
    from dck_talking.data import PairDataset
    from dck_talking.errors import DCKError
    from dck_talking.evaluate import evaluate

    write_group(tmp_path / "data")
    models = {"ahead": DCKTalker(**TINY, window_lead=4), "plain": DCKTalker(**TINY)}
    with pytest.raises(DCKError, match="lead their frames by 4 mel steps, but plain's by 0: evaluate models of "
                                       "different window leads separately"):
        evaluate(models, PairDataset(tmp_path / "data", size=64, window_lead=4), pairs=2)
