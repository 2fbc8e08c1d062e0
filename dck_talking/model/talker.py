"""`DCKTalker`: the Hub-loadable talking-face model (config.json + model.safetensors + model card)."""

from __future__ import annotations

import json
import math
import os
import string
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard
from huggingface_hub.errors import (EntryNotFoundError, HFValidationError, LocalEntryNotFoundError,
                                    RepositoryNotFoundError)
from safetensors import SafetensorError
from torch import nn

from ..audio import WINDOW
from ..errors import CheckpointError
from .audio_encoder import FEATURE_DIM, AudioEncoder
from .hub import HubModelMixin
from .unet import DCKUNet, TalkerOutput

PAPER_URL = "https://arxiv.org/abs/2201.05986"
# The default checkpoint shipped inside the package (fp16 weights; loaded into fp32 parameters).
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "weights" / "default"

PRESETS: dict[str, dict[str, Any]] = {
    # The paper's network: 256 crop, 5 down / 4 DCK middle / 5 up, DCK layers 256 -> 256 with kernel 1.
    "paper": dict(image_size=256, down_channels=[32, 64, 128, 256], dck_channels=256, dck_layers=4,
                  dck_kernel_size=1, kernel_hidden=256),
    # Sized for real time on a laptop CPU: same topology, narrower layers and a smaller middle.
    "compact": dict(image_size=256, down_channels=[8, 16, 32, 64], dck_channels=64, dck_layers=4,
                    dck_kernel_size=1, kernel_hidden=128),
}


class DCKTalker(
    nn.Module,
    HubModelMixin,
    library_name="dck-talking",
    license="apache-2.0",
    pipeline_tag="video-to-video",
    paper_url=PAPER_URL,
    tags=["talking-face", "lip-sync", "dynamic-convolution", "audio-driven"],
):
    """Audio-driven talking face with dynamic convolution kernels.

    `model(frames, mels)`: frames (B, 3, S, S) RGB in [0, 1], mels (B, 1, 80, 16) normalised mel
    windows -> `TalkerOutput(output, alpha, motion, flow, gate)`. `motion` is how the motion image is
    made: `"image"` (painted, the paper) or `"warp"` (the input's own pixels moved along a predicted
    flow, painted only under a gate); checkpoints saved before it existed load as `"image"`.
    `window_lead`: how many mel steps of sound before a frame's time its window holds (the pipeline
    cuts the windows so; 0, Wav2Lip's way, starts the window at the frame). All arguments are JSON
    values, so `config.json` describes the model completely.
    """

    def __init__(
        self,
        image_size: int = 256,
        down_channels: list[int] | None = None,
        dck_channels: int = 256,
        dck_layers: int = 4,
        dck_kernel_size: int = 1,
        kernel_hidden: int = 256,
        use_dck: bool = True,
        use_blending: bool = True,
        motion: str = "image",
        window_lead: int = 0,
    ) -> None:
        super().__init__()
        down_channels = list(down_channels or PRESETS["paper"]["down_channels"])
        if len(down_channels) != 4:
            raise ValueError(f"down_channels lists the first 4 of 5 down layers, got {down_channels}")
        if image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32 (5 halvings), got {image_size}")
        if dck_layers < 1:
            raise ValueError(f"dck_layers must be at least 1, got {dck_layers}")
        if not 0 <= window_lead < WINDOW:
            raise ValueError(f"window_lead must be 0..{WINDOW - 1} mel steps, got {window_lead}")
        self.image_size = image_size
        self.window_lead = window_lead
        self.audio_encoder = AudioEncoder()
        self.unet = DCKUNet(down_channels, dck_channels, dck_layers, dck_kernel_size, FEATURE_DIM,
                            kernel_hidden, use_dck, use_blending, motion, image_size)
        self.apply(_he_init)
        self.unet.init_head()

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "DCKTalker":
        """A fresh model with a named configuration (`"paper"` or `"compact"`), optionally modified."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def encode_audio(self, mels: torch.Tensor) -> torch.Tensor:
        """(B, 1, 80, 16) mel windows -> (B, 512) audio features (compute once, reuse per frame)."""
        return self.audio_encoder(mels)

    def forward(self, frames: torch.Tensor, mels: torch.Tensor | None = None, *,
                audio_features: torch.Tensor | None = None) -> TalkerOutput:
        if (mels is None) == (audio_features is None):
            raise ValueError("pass exactly one of mels or audio_features")
        if audio_features is None:
            audio_features = self.encode_audio(mels)
        return self.unet(frames, audio_features)

    def load_wav2lip_audio_encoder(self, path: str | Path) -> None:
        """Import the audio encoder of a Wav2Lip or SyncNet checkpoint (a pickled dict with a
        `state_dict` whose keys are `[module.]audio_encoder.{i}.conv_block.{0,1}.*`)."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: file not found")
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for a bad pickle
            raise CheckpointError(f"{path}: not a loadable PyTorch checkpoint ({type(exc).__name__})") from None
        state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: expected a dict with a 'state_dict'")
        prefix = "audio_encoder."
        encoder_state = {}
        for key, value in state.items():
            key = key.removeprefix("module.")
            if key.startswith(prefix):
                encoder_state[key[len(prefix):]] = value
        expected = self.audio_encoder.state_dict()
        missing = sorted(set(expected) - set(encoder_state), key=_natural)
        unexpected = sorted(set(encoder_state) - set(expected), key=_natural)
        if missing or unexpected:
            detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
            raise CheckpointError(f"{path}: audio encoder keys do not match Wav2Lip's ({detail})")
        for key, value in encoder_state.items():
            if value.shape != expected[key].shape:
                raise CheckpointError(f"{path}: {prefix}{key} has shape {tuple(value.shape)}, "
                                      f"expected {tuple(expected[key].shape)}")
        self.audio_encoder.load_state_dict(encoder_state)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path | None = None, **kwargs: Any) -> "DCKTalker":
        """Load from a local folder or a Hub repo id (config.json + model.safetensors), strictly;
        without an argument, the default checkpoint bundled with the package."""
        source = str(pretrained_model_name_or_path or DEFAULT_CHECKPOINT)
        folder = Path(source)
        if folder.is_dir():
            for name in ("config.json", "model.safetensors"):
                if not (folder / name).is_file():
                    raise CheckpointError(f"{folder}: no {name} in this checkpoint folder")
        elif source.startswith((".", "/", "~")) or source.count("/") > 1:  # a path, not a repo id
            raise CheckpointError(f"{source}: checkpoint folder not found")
        kwargs.setdefault("strict", True)
        try:
            return super().from_pretrained(source, **kwargs)
        except HFValidationError:
            raise CheckpointError(f"{source}: neither a checkpoint folder nor a Hub repo id") from None
        except LocalEntryNotFoundError:
            raise CheckpointError(f"{source}: not in the local Hub cache, and the Hub cannot be reached "
                                  "(offline, or HF_HUB_OFFLINE is set)") from None
        except (RepositoryNotFoundError, EntryNotFoundError) as exc:
            raise CheckpointError(f"{source}: no such model on the Hub ({type(exc).__name__})") from None
        except SafetensorError as exc:
            raise CheckpointError(f"{source}: model.safetensors is corrupt ({exc})") from None
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{source}: config.json is not valid JSON ({exc})") from None
        except TypeError as exc:  # an unknown key in config.json
            raise CheckpointError(f"{source}: config.json does not describe a DCKTalker ({exc})") from None
        except RuntimeError as exc:  # state dict keys or shapes that do not fit the config
            first = str(exc).strip().splitlines()[0]
            raise CheckpointError(f"{source}: weights do not match config.json ({first})") from None

    def generate_model_card(self, *args: Any, metrics: dict[str, float] | None = None, training: str | None = None,
                            **kwargs: Any) -> ModelCard:
        """The model card from `hub_card/model_card.md` (the package's `hub_card` links to it), filled in
        with this model's config, metrics and (Markdown) description of its training data."""
        template = resources.files("dck_talking").joinpath("hub_card/model_card.md").read_text(encoding="utf-8")
        config = self._hub_mixin_config or {}
        rows = "\n".join(f"| `{key}` | `{json.dumps(value)}` |" for key, value in sorted(config.items()))
        if metrics:
            metric_rows = "\n".join(f"| {name} | {value:#.4g} |" for name, value in metrics.items())
            metrics_text = f"| metric | value |\n| --- | --- |\n{metric_rows}"
        else:
            metrics_text = "No evaluation has been recorded for this checkpoint."
        content = string.Template(template).substitute(
            parameters=f"{sum(p.numel() for p in self.parameters()) / 1e6:.2f}M",
            config_rows=rows,
            metrics=metrics_text,
            paper_url=PAPER_URL,
            training=training or UNDESCRIBED_TRAINING,
        )
        return ModelCard(content)


UNDESCRIBED_TRAINING = (
    "Not described for this checkpoint. A model card should say what the model was trained on: identities,\n"
    "languages, amount of footage, and whether the pairs were real re-dubbed videos or synthetic pairs made\n"
    "with `dck-talking synth`.")


def checkpoint_source(checkpoint: str | Path | None = None) -> str:
    """Which checkpoint to use: `checkpoint` (a folder or Hub repo id), else `$DCK_CHECKPOINT`,
    else the bundled default checkpoint's folder."""
    return str(checkpoint or os.environ.get("DCK_CHECKPOINT") or DEFAULT_CHECKPOINT)


def load_model(checkpoint: str | Path | None = None) -> tuple[DCKTalker, str]:
    """The model to use (see `checkpoint_source`) and what it is."""
    source = checkpoint_source(checkpoint)
    if source != str(DEFAULT_CHECKPOINT):
        return DCKTalker.from_pretrained(source), f"`{source}`"
    return DCKTalker.from_pretrained(), ("the default model bundled with dck-talking (small, trained on synthetic "
                                         "pairs; its model card says what it is not good for)")


def _he_init(module: nn.Module) -> None:
    """He (Kaiming) init for the static convolutions, so signals keep their scale through the
    network in eval mode too (PyTorch's default shrinks them layer by layer)."""
    if isinstance(module, nn.ConvTranspose2d):
        cin, _, kh, kw = module.weight.shape
        stride = module.stride[0] * module.stride[1]
        nn.init.normal_(module.weight, std=math.sqrt(2.0 / (cin * kh * kw / stride)))
    elif isinstance(module, nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    else:
        return
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def _natural(key: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in key.split("."))
