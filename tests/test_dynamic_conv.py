import math

import pytest
import torch
import torch.nn.functional as F

from dck_talking.model import DCKTalker, DynamicConv2d, KernelGenerator


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_dynamic_conv_equals_per_sample_conv2d(kernel_size):
    torch.manual_seed(0)
    b, cin, cout, size = 5, 16, 24, 9
    x = torch.randn(b, cin, size, size)
    weight = torch.randn(b, cout, cin, kernel_size, kernel_size)
    bias = torch.randn(b, cout)
    out = DynamicConv2d(cin, cout, kernel_size)(x, weight, bias)
    reference = torch.cat([F.conv2d(x[i:i + 1], weight[i], bias[i], padding=kernel_size // 2) for i in range(b)])
    assert out.shape == (b, cout, size, size)
    assert ((out - reference).norm() / reference.norm()).item() < 1e-5


def test_dynamic_conv_rejects_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        DynamicConv2d(4, 4, 2)


@pytest.mark.parametrize("kernel_size,channels", [(1, 256), (3, 32)])
def test_generated_kernels_have_he_init_scale(kernel_size, channels):
    torch.manual_seed(0)
    generator = KernelGenerator(512, 256, channels, channels, kernel_size)
    # Audio features of arbitrary offset and scale: the LayerNorm makes the kernel scale independent of them.
    weight, bias = generator(torch.randn(64, 512) * 5 + 2)
    assert weight.shape == (64, channels, channels, kernel_size, kernel_size)
    assert bias.shape == (64, channels)
    default_std = math.sqrt(2 / (channels * kernel_size ** 2))  # He init
    assert weight.std().item() == pytest.approx(default_std, rel=0.2)
    assert bias.abs().mean().item() < weight.abs().mean().item()
    # Different audio gives different kernels.
    assert weight.std(dim=0).mean().item() > 0.3 * default_std


def tiny(**overrides):
    config = dict(image_size=64, down_channels=[4, 8, 8, 16], dck_channels=16, dck_layers=2, kernel_hidden=16)
    return DCKTalker(**{**config, **overrides}).eval()


@pytest.mark.parametrize("kernel_size", [1, 3])
def test_each_sample_is_independent_of_its_batch(kernel_size):
    torch.manual_seed(0)
    model = tiny(dck_kernel_size=kernel_size)
    frames, mels = torch.rand(6, 3, 64, 64), torch.randn(6, 1, 80, 16)
    with torch.no_grad():
        together = model(frames, mels).output
        alone = torch.cat([model(frames[i:i + 1], mels[i:i + 1]).output for i in range(6)])
        shuffled = model(frames.flip(0), mels.flip(0)).output.flip(0)
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(together, shuffled, rtol=1e-5, atol=1e-5)
