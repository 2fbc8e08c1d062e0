"""Dynamic convolution: every sample in the batch is convolved with its own kernel (DESIGN §1).

`KernelGenerator` is the paper's `h2` for one DCK layer: a small fully connected network that maps
a frame's audio feature to that layer's weights and bias. `DynamicConv2d` applies them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class DynamicConv2d(nn.Module):
    """Convolution with per-sample kernels; a batched matmul for 1x1 kernels, a grouped conv otherwise.

    `forward(x, weight, bias)`: x (B, Cin, H, W), weight (B, Cout, Cin, k, k), bias (B, Cout) ->
    (B, Cout, H, W), "same" padding, stride 1.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, cin, h, w = x.shape
        k = self.kernel_size
        if k == 1:
            out = torch.baddbmm(bias.unsqueeze(-1), weight.reshape(b, self.out_channels, cin), x.reshape(b, cin, h * w))
            return out.reshape(b, self.out_channels, h, w)
        out = F.conv2d(x.reshape(1, b * cin, h, w), weight.reshape(b * self.out_channels, cin, k, k),
                       bias.reshape(-1), padding=k // 2, groups=b)
        return out.reshape(b, self.out_channels, h, w)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"


class KernelGenerator(nn.Module):
    """Audio feature (B, D) -> one DCK layer's kernel: weight (B, Cout, Cin, k, k) and bias (B, Cout).

    LayerNorm -> Linear -> ReLU -> Linear. The last layer is initialised so that, for any audio
    feature, the generated weights have the standard deviation of a He-initialised conv
    (sqrt(2 / fan_in), as the static convs of the U-Net) and the biases are small: training starts
    from a well-scaled conv whose kernel already varies with the audio.
    """

    def __init__(self, feature_dim: int, hidden: int, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.shape = (out_channels, in_channels, kernel_size, kernel_size)
        self.n_weight = out_channels * in_channels * kernel_size * kernel_size
        self.net = nn.Sequential(
            nn.LayerNorm(feature_dim),
            nn.Linear(feature_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, self.n_weight + out_channels),
        )
        fan_in = in_channels * kernel_size * kernel_size
        conv_std = math.sqrt(2.0 / fan_in)
        last = self.net[-1]
        # After LayerNorm + a default-initialised Linear + ReLU, E[h^2] = hidden-independent 1/6
        # (pre-activations have variance 1/3 of unit-variance inputs, ReLU halves it).
        nn.init.normal_(last.weight, std=conv_std / math.sqrt(hidden / 6.0))
        nn.init.zeros_(last.bias)
        with torch.no_grad():
            last.weight[self.n_weight:] *= 0.1

    def forward(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        params = self.net(feature)
        weight = params[:, : self.n_weight].reshape(-1, *self.shape)
        return weight, params[:, self.n_weight :]
