"""dck-talking: real-time audio-driven talking-face video with dynamic convolution kernels."""

from .errors import CheckpointError, DCKError, InputError
from .model import DCKTalker, TalkerOutput
from .pipeline import TalkingFacePipeline

__all__ = ["CheckpointError", "DCKError", "DCKTalker", "InputError", "TalkerOutput", "TalkingFacePipeline"]
__version__ = "0.1.0"
