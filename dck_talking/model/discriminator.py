"""PatchGAN discriminator for the LSGAN term of the paper's objective (DESIGN §1)."""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """(B, 3, S, S) image in [0, 1] -> (B, 1, S/8 - 2, S/8 - 2) realness scores, one per overlapping patch.

    Three stride-2 convs and two stride-1 convs, kernel 4, LeakyReLU, instance norm after the first
    layer (the classic 70x70 PatchGAN receptive field at `layers=3`).
    """

    def __init__(self, channels: int = 64, layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        width = channels
        for i in range(1, layers + 1):
            out = channels * min(2 ** i, 8)
            stride = 2 if i < layers else 1
            blocks += [nn.Conv2d(width, out, 4, stride, 1, bias=False), nn.InstanceNorm2d(out, affine=True),
                       nn.LeakyReLU(0.2, inplace=True)]
            width = out
        blocks.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images * 2 - 1)
