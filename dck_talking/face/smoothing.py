"""Temporal smoothing of the crop transform with the One-Euro filter.

One-Euro (Casiez et al., CHI 2012) is a first-order low-pass whose cutoff rises with the
signal's speed: a still head is filtered hard (no jitter), a moving head barely (no lag).
The transform is smoothed as (centre x, centre y, log scale, angle). Speeds are measured
in crop pixels per second for every channel (how fast the crop content moves), so one
set of parameters works for any frame resolution, face size and crop size.
"""

from __future__ import annotations

import math

import numpy as np

from .align import Similarity


class OneEuroFilter:
    """Vector One-Euro filter; ``min_cutoff`` and ``d_cutoff`` in Hz, ``beta`` in 1/(unit)."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError("min_cutoff and d_cutoff must be > 0 and beta >= 0")
        self.min_cutoff = min_cutoff
        self.beta = beta
        self.d_cutoff = d_cutoff
        self.reset()

    def reset(self) -> None:
        """Forget the history: the next sample passes through unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float, rate_scale: np.ndarray | float = 1.0) -> np.ndarray:
        """Filter sample ``x`` taken at time ``t`` (seconds, strictly increasing).

        ``rate_scale`` converts each channel's rate of change into the unit that ``beta``
        refers to (the derivative itself is filtered in the channel's own unit).
        """
        x = np.asarray(x, np.float64)
        if self._x is None or self._t is None or self._dx is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = t - self._t
        if dt <= 0:
            raise ValueError(f"time must strictly increase: {t} s after {self._t} s")
        dx = (x - self._x) / dt
        self._dx = self._dx + self._alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx * rate_scale)
        self._x = self._x + self._alpha(cutoff, dt) * (x - self._x)
        self._t = t
        return self._x.copy()


class TransformSmoother:
    """Smooths a stream of ``Similarity`` transforms for a ``size`` crop.

    Defaults: ``min_cutoff`` 0.5 Hz (heavy smoothing when still), ``beta`` 0.1 per crop
    pixel/s (at 100 crop px/s the cutoff is 10.5 Hz, a 15 ms time constant), ``d_cutoff`` 2 Hz.
    """

    def __init__(self, size: int = 256, min_cutoff: float = 0.5, beta: float = 0.1, d_cutoff: float = 2.0) -> None:
        self.size = size
        self.filter = OneEuroFilter(min_cutoff, beta, d_cutoff)
        self._angle: float | None = None

    def reset(self) -> None:
        """Start over (after the face was lost): the next transform passes through unchanged."""
        self.filter.reset()
        self._angle = None

    def __call__(self, similarity: Similarity, timestamp_ms: float) -> Similarity:
        """Smoothed version of ``similarity`` observed at ``timestamp_ms``."""
        angle = similarity.angle
        if self._angle is not None:  # unwrap so the filter never averages across +-pi
            angle = self._angle + math.remainder(angle - self._angle, 2 * math.pi)
        x = np.array([*similarity.center, math.log(similarity.scale), angle])
        half = self.size / 2  # a change of 1 in log-scale or angle moves the crop border ~size/2 px
        rate_scale = np.array([similarity.scale, similarity.scale, half, half])
        cx, cy, log_scale, angle = self.filter(x, timestamp_ms / 1000.0, rate_scale)
        self._angle = float(angle)
        return Similarity((float(cx), float(cy)), math.exp(log_scale), float(angle))
