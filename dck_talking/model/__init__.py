"""The DCK network: audio encoder, dynamic convolution, U-Net and the Hub model class."""

from .audio_encoder import AudioEncoder
from .dynamic_conv import DynamicConv2d, KernelGenerator
from .talker import DEFAULT_CHECKPOINT, PRESETS, DCKTalker, load_model
from .unet import DCKUNet, TalkerOutput

__all__ = ["AudioEncoder", "DCKTalker", "DEFAULT_CHECKPOINT", "DCKUNet", "DynamicConv2d", "KernelGenerator", "PRESETS",
           "TalkerOutput", "load_model"]
