"""Which source frame each output frame shows: the length policy made explicit.

The output lasts as long as the audio. A longer video is trimmed; a shorter one is extended by
`pingpong` (forward then backward, no jump cut), `loop` (restart) or `freeze` (hold the last frame).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

POLICIES = ("pingpong", "loop", "freeze")


def output_frame_count(audio_samples: int, sample_rate: int, fps: float) -> int:
    """Frames that cover the whole audio: the last frame may outlast it by less than one frame."""
    return max(1, math.ceil(audio_samples * fps / sample_rate - 1e-9))


def source_indices(n_out: int, n_src: int, policy: str = "pingpong") -> Iterator[int]:
    """The source frame index of each of `n_out` output frames, for a source of `n_src` frames."""
    if policy not in POLICIES:
        raise ValueError(f"unknown length policy {policy!r}; choose from {', '.join(POLICIES)}")
    if n_src < 1:
        raise ValueError("the source has no frames")
    period = 2 * (n_src - 1)
    for i in range(n_out):
        if i < n_src:
            yield i
        elif policy == "loop":
            yield i % n_src
        elif policy == "freeze" or period == 0:
            yield n_src - 1
        else:
            phase = i % period
            yield phase if phase < n_src else period - phase
