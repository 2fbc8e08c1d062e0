"""The adapted U-Net (DESIGN §1): 5 down-sampling layers, DCK middle layers, 5 up-sampling layers.

The network sees the face crop, takes its middle-layer kernels from the audio, and predicts an
attention mask `alpha` and a motion image `motion`; the result is `frame * (1 - alpha) + motion * alpha`.

How the motion image is made (`motion`): `"image"` (the paper) paints it; `"warp"` (DESIGN §6) resamples
the input crop along a predicted flow field and paints only what the input cannot show (mouth
interior, teeth), under a gate: `motion = warp(frame, flow) * (1 - gate) + painted * gate`. A face the
network has never seen then keeps its own skin and lips. Its head's maps are smoothed (`smooth_maps`), and a
fresh "warp" model starts as the identity with its mask open (`init_head`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .dynamic_conv import DynamicConv2d, KernelGenerator


MOTIONS = ("image", "warp")
GATE_BIAS = -10.0  # a fresh "warp" model paints nothing (gate ~ 5e-5; at 0.003 untrained paint grains the skin)
ALPHA_BIAS = 4.0  # ... and its attention mask is open (alpha ~ 0.98): the flow's gradient is not shut off


@dataclass
class TalkerOutput:
    """What the talker returns, all (B, C, S, S): the blended `output` (3 channels), the attention
    mask `alpha` (1 channel) and the motion image `motion` (3 channels), in [0, 1]. With
    `motion="warp"` also the `flow` (2 channels, x and y in crop pixels: motion pixel p shows input
    pixel p + flow) and the `gate` (1 channel in [0, 1], the painted share of the motion image);
    None otherwise."""

    output: torch.Tensor
    alpha: torch.Tensor
    motion: torch.Tensor
    flow: torch.Tensor | None = None
    gate: torch.Tensor | None = None


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def up_bn_relu(cin: int, cout: int) -> nn.Sequential:
    """Doubles the resolution: transposed conv (kernel 4, stride 2) + BatchNorm + ReLU."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DCKMiddle(nn.Module):
    """The middle layers: DCK layers whose kernels come from the audio, each + BatchNorm + ReLU."""

    def __init__(self, channels: int, layers: int, kernel_size: int, feature_dim: int, hidden: int) -> None:
        super().__init__()
        self.generators = nn.ModuleList(
            KernelGenerator(feature_dim, hidden, channels, channels, kernel_size) for _ in range(layers))
        self.convs = nn.ModuleList(DynamicConv2d(channels, channels, kernel_size) for _ in range(layers))
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(layers))

    def forward(self, x: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        for generate, conv, norm in zip(self.generators, self.convs, self.norms):
            weight, bias = generate(audio)
            x = torch.relu(norm(conv(x, weight.to(x.dtype), bias.to(x.dtype))))
        return x


class ConcatMiddle(nn.Module):
    """The "w/o DCK" ablation: the audio feature is projected, tiled and concatenated to the
    bottleneck, followed by ordinary (static) convolutions of the same size."""

    def __init__(self, channels: int, layers: int, kernel_size: int, feature_dim: int) -> None:
        super().__init__()
        self.project = nn.Linear(feature_dim, channels)
        self.convs = nn.Sequential(conv_bn_relu(2 * channels, channels, kernel_size),
                                   *(conv_bn_relu(channels, channels, kernel_size) for _ in range(layers - 1)))

    def forward(self, x: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        tiled = self.project(audio).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return self.convs(torch.cat([x, tiled], dim=1))


def warp(frames: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """`frames` (B, C, H, W) resampled along `flow` (B, 2, H, W) in pixels: out[p] = frames[p + flow[p]]
    (bilinear; outside the frame the border pixels repeat)."""
    _, _, height, width = frames.shape
    ys, xs = torch.meshgrid(torch.arange(height, device=flow.device, dtype=flow.dtype),
                            torch.arange(width, device=flow.device, dtype=flow.dtype), indexing="ij")
    # Pixel centre x sits at (2x + 1) / W - 1 in grid_sample's coordinates (align_corners=False); one
    # multiply-add over the whole grid puts the flow on it.
    centres = torch.stack([(2 * xs + 1) / width - 1, (2 * ys + 1) / height - 1], dim=-1)
    per_pixel = torch.tensor([2 / width, 2 / height], device=flow.device, dtype=flow.dtype)
    grid = torch.addcmul(centres, flow.permute(0, 2, 3, 1), per_pixel)
    return F.grid_sample(frames, grid.to(frames.dtype), mode="bilinear", padding_mode="border", align_corners=False)


def smooth_maps(maps: torch.Tensor) -> torch.Tensor:
    """Each channel of `maps` (B, C, H, W) under a 3x3 binomial filter, which removes the pixel-to-pixel
    checkerboard of the sub-pixel head exactly (its response at that frequency is 0) and keeps smooth maps
    as they are. A "warp" model blends the input with its own warped copy and a painted image: a
    checkerboard in the mask turned a 0.3 px shift of a beard into grain (lower-face sharpness ratio 25),
    and one in the painted image, leaking through the gate, did the same (4.4 with the mask open)."""
    padded = F.pad(maps, (1, 1, 1, 1), mode="replicate")  # separable: (1, 2, 1) across, then down, then / 16
    across = padded[..., 1:-1] * 2  # in place from here: half the time of fresh tensors for every sum
    across += padded[..., :-2]
    across += padded[..., 2:]
    down = across[..., 1:-1, :] * 2
    down += across[..., :-2, :]
    down += across[..., 2:, :]
    return down.mul_(1 / 16)


class DCKUNet(nn.Module):
    """Face crop (B, 3, S, S) in [0, 1] + audio features (B, D) -> `TalkerOutput`.

    Widths: `down_channels` for the first four down layers, `dck_channels` for the fifth and the
    middle. The first four up layers mirror the down path with skip connections; the fifth is a
    sub-pixel convolution (conv at S/2 + pixel shuffle) that predicts the mask and the motion image
    at full resolution, which halves the CPU time of a full-resolution up layer. With `motion="warp"`
    the same head also predicts the flow and the gate (see the module doc); its flow weights start
    at zero, so a fresh model warps nothing.
    """

    def __init__(self, down_channels: list[int], dck_channels: int, dck_layers: int, dck_kernel_size: int,
                 feature_dim: int, kernel_hidden: int, use_dck: bool, use_blending: bool,
                 motion: str = "image", image_size: int = 256) -> None:
        super().__init__()
        if motion not in MOTIONS:
            raise ValueError(f"motion must be one of {', '.join(MOTIONS)}, got {motion!r}")
        widths = [*down_channels, dck_channels]
        self.down = nn.ModuleList(conv_bn_relu(cin, cout, 3, 2) for cin, cout in zip([3, *widths[:-1]], widths))
        if use_dck:
            self.middle: nn.Module = DCKMiddle(dck_channels, dck_layers, dck_kernel_size, feature_dim, kernel_hidden)
        else:
            self.middle = ConcatMiddle(dck_channels, dck_layers, dck_kernel_size, feature_dim)
        # Up layer j doubles the resolution; its output is concatenated with the skip of that size.
        up_ins = [dck_channels, *(2 * c for c in reversed(down_channels[1:]))]
        self.up = nn.ModuleList(up_bn_relu(cin, cout) for cin, cout in zip(up_ins, reversed(down_channels)))
        # Head channels: alpha, motion RGB, then for "warp" flow x, flow y and the gate.
        head = 4 if motion == "image" else 7
        self.up.append(nn.Sequential(nn.Conv2d(2 * down_channels[0], head * 4, 3, 1, 1), nn.PixelShuffle(2)))
        self.use_blending = use_blending
        self.motion = motion
        self.flow_scale = image_size / 32  # crop pixels per unit of the head's flow output

    def init_head(self) -> None:
        """Start the "warp" head as the identity: zero flow, a gate shut by `GATE_BIAS`, and the mask
        open by `ALPHA_BIAS` (the motion image is then the input itself). A shut mask (the paper's
        start, alpha ~ 0.5 falling to ~ 0 while the motion image is still poor) scales the flow's effect
        on the output, and so its gradient, by alpha: measured, a warp arm whose flow had learned 40% of
        the renderer's flow still left the output at the input frame (alpha 0.06 around the lips)."""
        if self.motion != "warp":
            return
        conv = self.up[-1][0]
        with torch.no_grad():  # pixel shuffle: output channel c comes from conv channels 4c .. 4c + 3
            conv.weight[16:].zero_()
            conv.bias[:4].fill_(ALPHA_BIAS)
            conv.bias[16:24].zero_()
            conv.bias[24:].fill_(GATE_BIAS)

    def forward(self, frames: torch.Tensor, audio: torch.Tensor) -> TalkerOutput:
        x = frames * 2 - 1
        skips = []
        for layer in self.down:
            x = layer(x)
            skips.append(x)
        x = self.middle(x, audio)
        skips.pop()  # the bottleneck itself feeds the middle
        for layer in self.up[:-1]:
            x = torch.cat([layer(x), skips.pop()], dim=1)
        head = self.up[-1](x).to(frames.dtype)  # under autocast: the maps and blends in the frames' precision
        if self.motion == "image":
            out = torch.sigmoid(head[:, :4])
            alpha, motion, flow, gate = out[:, :1], out[:, 1:], None, None
        else:
            maps = smooth_maps(torch.cat([torch.sigmoid(head[:, :4]), head[:, 4:6], torch.sigmoid(head[:, 6:7])], 1))
            alpha, flow, gate = maps[:, :1], maps[:, 4:6] * self.flow_scale, maps[:, 6:7]
            motion = torch.lerp(warp(frames, flow), maps[:, 1:4], gate)
        if not self.use_blending:
            return TalkerOutput(output=motion, alpha=torch.ones_like(alpha), motion=motion, flow=flow, gate=gate)
        return TalkerOutput(output=torch.lerp(frames, motion, alpha), alpha=alpha, motion=motion, flow=flow, gate=gate)
