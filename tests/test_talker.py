import json

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY
from safetensors.torch import load_file

from dck_talking import CheckpointError, DCKTalker
from dck_talking.model.audio_encoder import LAYERS
from dck_talking.model.unet import ConcatMiddle, DCKMiddle, smooth_maps


def inputs(batch=2, size=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=generator), torch.randn(batch, 1, 80, 16, generator=generator)


def test_paper_preset_has_the_papers_sizes():
    model = DCKTalker.from_preset("paper")
    assert model.image_size == 256
    assert len(model.unet.down) == 5 and len(model.unet.up) == 5
    middle = model.unet.middle
    assert isinstance(middle, DCKMiddle) and len(middle.convs) == 4
    for conv in middle.convs:
        assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (256, 256, 1)
    for generator in middle.generators:  # l x c_out x (c_in * ks * ks + 1) per frame
        assert generator.net[-1].out_features == 256 * (256 * 1 * 1 + 1)


def test_outputs_blend_mask_and_motion():
    model = DCKTalker(**TINY).eval()
    frames, mels = inputs()
    with torch.no_grad():
        result = model(frames, mels)
    assert result.output.shape == frames.shape
    assert result.alpha.shape == (2, 1, 64, 64) and result.motion.shape == (2, 3, 64, 64)
    for tensor in (result.output, result.alpha, result.motion):
        assert tensor.min() >= 0 and tensor.max() <= 1
    torch.testing.assert_close(result.output, frames * (1 - result.alpha) + result.motion * result.alpha)


@pytest.mark.parametrize("motion", ["image", "warp"])
def test_under_bf16_autocast_the_outputs_come_in_the_frames_precision(motion):
    """The pipeline runs the model under bf16 autocast on CPUs with bf16 instructions: the convolutions in
    bf16, the maps and blends in the frames' fp32, close to the fp32 result."""
    model = DCKTalker(**TINY, motion=motion).eval()
    frames, mels = inputs()
    with torch.no_grad():
        reference = model(frames, mels)
        with torch.autocast("cpu", torch.bfloat16):
            result = model(frames, mels)
    for name in ("output", "alpha", "motion"):
        assert getattr(result, name).dtype == torch.float32
        torch.testing.assert_close(getattr(result, name), getattr(reference, name), atol=0.02, rtol=0)


def test_audio_changes_the_output():
    model = DCKTalker(**TINY).eval()
    frames, mels = inputs()
    with torch.no_grad():
        first = model(frames, mels).output
        second = model(frames, torch.randn_like(mels)).output
        from_features = model(frames, audio_features=model.encode_audio(mels)).output
    assert (first - second).abs().max() > 1e-4
    torch.testing.assert_close(first, from_features)
    with pytest.raises(ValueError, match="exactly one"):
        model(frames)


def test_ablations():
    frames, mels = inputs()
    no_dck = DCKTalker(**TINY, use_dck=False).eval()
    assert isinstance(no_dck.unet.middle, ConcatMiddle)
    no_blend = DCKTalker(**TINY, use_blending=False).eval()
    with torch.no_grad():
        assert no_dck(frames, mels).output.shape == frames.shape
        result = no_blend(frames, mels)
    torch.testing.assert_close(result.output, result.motion)
    assert (result.alpha == 1).all()


def test_config_errors():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        DCKTalker.from_preset("huge")
    with pytest.raises(ValueError, match="multiple of 32"):
        DCKTalker(**{**TINY, "image_size": 100})


def test_hub_round_trip_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = DCKTalker(**TINY, use_blending=True).eval()
    frames, mels = inputs()
    model.save_pretrained(tmp_path / "ckpt")
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["dck_layers"] == 2 and config["down_channels"] == [4, 8, 8, 16]
    assert load_file(tmp_path / "ckpt" / "model.safetensors").keys() == model.state_dict().keys()
    card = (tmp_path / "ckpt" / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: dck-talking" in card and "| `dck_channels` | `16` |" in card

    capsys.readouterr()
    loaded = DCKTalker.from_pretrained(tmp_path / "ckpt")
    assert capsys.readouterr().out == ""  # huggingface_hub's mixin prints a line on local loads; ours does not
    assert not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(frames, mels).output, model(frames, mels).output, rtol=0, atol=0)


def test_model_card_carries_metrics(tmp_path):
    DCKTalker(**TINY).save_pretrained(tmp_path, model_card_kwargs={"metrics": {"PSNR": 31.5, "LMD": 1.44}})
    card = (tmp_path / "README.md").read_text()
    assert "| PSNR | 31.50 |" in card and "| LMD | 1.440 |" in card


def test_checkpoint_errors_are_clear(tmp_path):
    folder = tmp_path / "ckpt"
    DCKTalker(**TINY).save_pretrained(folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()

    weights.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt"):
        DCKTalker.from_pretrained(folder)

    weights.unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        DCKTalker.from_pretrained(folder)

    weights.write_bytes(data)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "dck_channels": 32, "down_channels": [4, 8, 8, 32]}))
    with pytest.raises(CheckpointError, match="weights do not match config.json"):
        DCKTalker.from_pretrained(folder)

    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        DCKTalker.from_pretrained(folder)


def test_unreachable_sources_are_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="checkpoint folder not found"):
        DCKTalker.from_pretrained(str(tmp_path / "nothing-here"))
    with pytest.raises(CheckpointError, match="not in the local Hub cache, and the Hub cannot be reached"):
        DCKTalker.from_pretrained("someone/dck-talker", cache_dir=tmp_path / "cache")


def wav2lip_state_dict(prefix="module."):
    """A state dict laid out like a Wav2Lip checkpoint: audio encoder blocks plus unrelated face encoder keys."""
    generator = torch.Generator().manual_seed(1)
    state = {f"{prefix}face_encoder_blocks.0.0.conv_block.0.weight": torch.zeros(16, 6, 7, 7)}
    for i, (cin, cout, kernel, *_rest) in enumerate(LAYERS):
        base = f"{prefix}audio_encoder.{i}.conv_block"
        state[f"{base}.0.weight"] = torch.randn(cout, cin, kernel, kernel, generator=generator)
        state[f"{base}.0.bias"] = torch.randn(cout, generator=generator)
        state[f"{base}.1.weight"] = torch.rand(cout, generator=generator) + 0.5
        state[f"{base}.1.bias"] = torch.randn(cout, generator=generator)
        state[f"{base}.1.running_mean"] = torch.randn(cout, generator=generator)
        state[f"{base}.1.running_var"] = torch.rand(cout, generator=generator) + 0.5
        state[f"{base}.1.num_batches_tracked"] = torch.tensor(1000)
    return state


@pytest.mark.parametrize("prefix", ["module.", ""])
def test_wav2lip_audio_encoder_import(tmp_path, prefix):
    state = wav2lip_state_dict(prefix)
    torch.save({"state_dict": state, "global_step": 10, "global_epoch": 2}, tmp_path / "wav2lip.pth")
    model = DCKTalker(**TINY)
    model.load_wav2lip_audio_encoder(tmp_path / "wav2lip.pth")
    loaded = model.audio_encoder.state_dict()
    for i in range(len(LAYERS)):
        key = f"{i}.conv_block.0.weight"
        torch.testing.assert_close(loaded[key], state[f"{prefix}audio_encoder.{key}"])
        key = f"{i}.conv_block.1.running_var"
        torch.testing.assert_close(loaded[key], state[f"{prefix}audio_encoder.{key}"])


def test_wav2lip_import_errors(tmp_path):
    model = DCKTalker(**TINY)
    state = wav2lip_state_dict()
    state["module.audio_encoder.3.conv_block.0.weight"] = torch.zeros(64, 32, 5, 5)
    torch.save({"state_dict": state}, tmp_path / "bad_shape.pth")
    with pytest.raises(CheckpointError, match=r"audio_encoder.3.conv_block.0.weight has shape \(64, 32, 5, 5\)"):
        model.load_wav2lip_audio_encoder(tmp_path / "bad_shape.pth")

    state = wav2lip_state_dict()
    del state["module.audio_encoder.12.conv_block.1.bias"]
    torch.save({"state_dict": state}, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match="keys do not match.*12.conv_block.1.bias"):
        model.load_wav2lip_audio_encoder(tmp_path / "missing.pth")

    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pth: not a loadable PyTorch checkpoint"):
        model.load_wav2lip_audio_encoder(tmp_path / "junk.pth")


def test_warp_moves_pixels_along_the_flow():
    from dck_talking.model.unet import warp

    pattern = torch.rand(2, 3, 24, 32, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(warp(pattern, torch.zeros(2, 2, 24, 32)), pattern)
    flow = torch.zeros(2, 2, 24, 32)
    flow[:, 0], flow[:, 1] = 3.0, -2.0  # every pixel shows the one 3 to the right and 2 above
    moved = warp(pattern, flow)
    torch.testing.assert_close(moved[:, :, 2:, :-3], pattern[:, :, :-2, 3:])
    torch.testing.assert_close(moved[:, :, :2, :-3], pattern[:, :, :1, 3:].expand(-1, -1, 2, -1))  # border repeats
    half = flow / 2  # half a pixel between two: their mean
    half[:, 1] = 0
    torch.testing.assert_close(warp(pattern, half)[..., :-2], (pattern[..., 1:-1] + pattern[..., 2:]) / 2)


@pytest.mark.parametrize("blending", [True, False])
@pytest.mark.parametrize("dck", [True, False])
def test_warp_motion(dck, blending):
    model = DCKTalker(**TINY, motion="warp", use_dck=dck, use_blending=blending).eval()
    frames, mels = inputs(batch=3)
    with torch.no_grad():
        result = model(frames, mels)
        assert result.flow.shape == (3, 2, 64, 64) and result.gate.shape == (3, 1, 64, 64)
        assert (result.flow == 0).all()  # a fresh model warps nothing...
        assert result.gate.max() < 0.05  # ...and paints little...
        assert result.alpha.mean() > 0.9  # ...under an open mask, so the flow's gradient is not shut off
        model.unet.up[-1][0].bias[24:] = -100.0  # nothing painted: the input comes back
        torch.testing.assert_close(model(frames, mels).output, frames)
        alone = model(frames[1:2], mels[1:2])
        together = model(frames, mels)
    for name in ("output", "alpha", "motion", "flow", "gate"):  # each sample is computed on its own
        torch.testing.assert_close(getattr(alone, name), getattr(together, name)[1:2])
    image = DCKTalker(**TINY).eval()
    assert image(frames, mels).flow is None and image(frames, mels).gate is None


def test_smooth_maps_removes_the_checkerboard_and_keeps_smooth_maps():
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]).remainder(2).float()[None, None]
    torch.testing.assert_close(smooth_maps(checker)[..., 1:-1, 1:-1], torch.full((1, 1, 6, 6), 0.5))
    ramp = torch.linspace(0, 1, 8)[None, None, None].expand(1, 1, 8, 8)
    torch.testing.assert_close(smooth_maps(ramp)[..., 1:-1], ramp[..., 1:-1])
    both = smooth_maps(torch.cat([checker, ramp], 1))  # each channel on its own
    maps = torch.rand(2, 3, 9, 7)  # the same as a 3x3 binomial convolution of each channel
    kernel = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    reference = F.conv2d(F.pad(maps, (1, 1, 1, 1), mode="replicate"), kernel.expand(3, 1, 3, 3), groups=3)
    torch.testing.assert_close(smooth_maps(maps), reference)
    torch.testing.assert_close(both, torch.cat([smooth_maps(checker), smooth_maps(ramp)], 1))
    model = DCKTalker(**TINY, motion="warp").eval()  # the blend uses the mask it returns, smoothed
    frames, mels = inputs()
    with torch.no_grad():
        model.unet.up[-1][0].bias[:4] = torch.tensor([3.0, -3.0, 3.0, -3.0])  # sub-pixel phases: a checkerboard
        result = model(frames, mels)
    torch.testing.assert_close(result.output, frames * (1 - result.alpha) + result.motion * result.alpha)
    assert (result.alpha[..., 1:] - result.alpha[..., :-1]).abs().mean() < 0.1  # unsmoothed: 0.85


def test_gradients_reach_the_flow():
    model = DCKTalker(**TINY, motion="warp")
    frames, mels = inputs()
    target = torch.roll(frames, 2, dims=-1)
    model(frames, mels).output.sub(target).abs().mean().backward()
    head = model.unet.up[-1][0]
    assert head.weight.grad[16:24].abs().sum() > 0 and head.bias.grad[16:24].abs().sum() > 0
    assert head.weight.grad[24:].abs().sum() > 0


def test_motion_is_saved_and_old_checkpoints_load_as_image(tmp_path):
    DCKTalker(**TINY, motion="warp").save_pretrained(tmp_path / "warp")
    assert json.loads((tmp_path / "warp" / "config.json").read_text())["motion"] == "warp"
    assert DCKTalker.from_pretrained(tmp_path / "warp").unet.motion == "warp"
    DCKTalker(**TINY).save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    del config["motion"]
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    assert DCKTalker.from_pretrained(tmp_path / "old").unet.motion == "image"
    with pytest.raises(ValueError, match="motion must be one of image, warp"):
        DCKTalker(**TINY, motion="flow")
