"""The DCK network: audio encoder, dynamic convolution, U-Net and the Hub model class."""

from .audio_encoder import AudioEncoder
from .dynamic_conv import DynamicConv2d, KernelGenerator
from .talker import PRESETS, DCKTalker
from .unet import DCKUNet, TalkerOutput

__all__ = ["AudioEncoder", "DCKTalker", "DCKUNet", "DynamicConv2d", "KernelGenerator", "PRESETS", "TalkerOutput"]
