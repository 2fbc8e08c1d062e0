"""dck-talking: real-time audio-driven talking-face video with dynamic convolution kernels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import CheckpointError, DCKError, InputError
from .model import DCKTalker, TalkerOutput

if TYPE_CHECKING:
    from .pipeline import TalkingFacePipeline

__all__ = ["CheckpointError", "DCKError", "DCKTalker", "InputError", "TalkerOutput", "TalkingFacePipeline"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The pipeline pulls in media I/O (PyAV) and face tracking: loaded when first asked for, so the
    # model and training code import without them.
    if name == "TalkingFacePipeline":
        from .pipeline import TalkingFacePipeline

        return TalkingFacePipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
