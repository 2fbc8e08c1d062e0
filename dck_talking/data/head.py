"""Natural head motion for a photo: smooth random turns, shifts and scale, as a perspective warp."""

from __future__ import annotations

import math

import numpy as np
import scipy.signal


def head_motion(n: int, fps: float, rng: np.random.Generator, amount: float = 1.0) -> np.ndarray:
    """(n, 6) smooth head motion: yaw, pitch, roll (degrees), shift x, y (fractions of the face
    width) and log scale. Low-pass filtered noise (below about 0.6 Hz) plus a slow sway, with
    standard deviations typical of a speaker facing a camera (yaw 4, pitch 2.5, roll 2 degrees)."""
    std = np.array([4.0, 2.5, 2.0, 0.05, 0.04, 0.025]) * amount
    pad = int(3 * fps)
    noise = rng.standard_normal((n + 2 * pad, 6))
    b, a = scipy.signal.butter(2, min(0.6 / (fps / 2), 0.99))
    smooth = scipy.signal.filtfilt(b, a, noise, axis=0)[pad:pad + n]
    smooth /= np.maximum(smooth.std(axis=0), 1e-6) if n > 1 else 1.0
    t = np.arange(n) / fps
    sway = np.sin(2 * np.pi * rng.uniform(0.08, 0.2, 6) * t[:, None] + rng.uniform(0, 2 * np.pi, 6))
    motion = (0.8 * smooth + 0.6 * sway) * std
    return motion - motion[:1] * 0.5  # start near the photo's own pose


def motion_homography(params: np.ndarray, center: np.ndarray, face_width: float) -> np.ndarray:
    """3x3 homography that turns a photo's head by `params` (see `head_motion`) about `center`."""
    yaw, pitch, roll = np.radians(params[:3])
    f = 3.0 * face_width  # a head about a third of the focal length wide: mild perspective
    k = np.array([[f, 0, center[0]], [0, f, center[1]], [0, 0, 1.0]])
    ry = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
    rz = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]])
    rotation = rz @ rx @ ry
    # The face as a plane at the focal distance, turned about its own centre (not the camera's, which
    # would pan the whole picture by f * tan(yaw) and carry a tightly framed face out of it).
    e3 = np.array([[0.0], [0.0], [1.0]])
    h = k @ (rotation + (np.eye(3) - rotation) @ e3 @ e3.T) @ np.linalg.inv(k)
    s = math.exp(params[5])
    shift = np.array([[s, 0, (1 - s) * center[0] + params[3] * face_width],
                      [0, s, (1 - s) * center[1] + params[4] * face_width], [0, 0, 1]])
    return shift @ h
