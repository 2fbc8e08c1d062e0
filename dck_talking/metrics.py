"""Quality and lip-sync metrics: PSNR, SSIM, LMD (the paper's Table I columns) and a sync score.

The sync score needs no SyncNet weights: it correlates how far the mouth is open (MediaPipe lip
landmarks) with how loud the speech is (mel energy in the voice band), frame by frame, and finds
the audio offset where that correlation peaks. Well-synced video peaks at offset 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from .audio import MEL_STEPS_PER_SECOND
from .face import LIP_INDICES, LandmarkDetector
from .face.landmarks import ClosedOnExit

UPPER_INNER_LIP, LOWER_INNER_LIP, MOUTH_LEFT, MOUTH_RIGHT = 13, 14, 61, 291
GAP_POINTS = (UPPER_INNER_LIP, LOWER_INNER_LIP, MOUTH_LEFT, MOUTH_RIGHT)
VOICE_BANDS = slice(5, 50)  # mel bands of roughly 150 Hz - 3 kHz, where speech energy lies


def psnr(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of (B, 3, H, W) images in [0, 1]. It is capped at the PSNR of the smallest
    error 8-bit images can hold (one level in one value), so an exact copy, such as the identity baseline
    on a pair whose target is its input, scores that ceiling instead of infinity and means stay numbers."""
    ceiling = 10 * math.log10(255**2 * output[0].numel())
    values = peak_signal_noise_ratio(output, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return values.clamp(max=ceiling)


def ssim(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (Gaussian window 11, sigma 1.5) of (B, 3, H, W) images in [0, 1]."""
    return structural_similarity_index_measure(output, target, data_range=1.0, reduction="none")


class MouthLandmarks(ClosedOnExit):
    """MediaPipe lip landmarks of face crops (IMAGE mode), in pixels of a 256 crop."""

    def __init__(self) -> None:
        self.detector = LandmarkDetector(num_faces=1, video=False)

    def __call__(self, crop: np.ndarray) -> np.ndarray | None:
        """(478, 2) landmarks of an RGB uint8 crop, scaled to a 256 crop; None if no face is found."""
        faces = self.detector.detect(np.ascontiguousarray(crop))
        if not faces:
            return None
        return faces[0].landmarks[:, :2] * (256.0 / crop.shape[1])

    def close(self) -> None:
        self.detector.close()


def lmd(output_landmarks: np.ndarray, target_landmarks: np.ndarray) -> float:
    """Landmark distance of the mouth: mean Euclidean distance of the 40 lip points (256 crop pixels)."""
    lips = list(LIP_INDICES)
    return float(np.linalg.norm(output_landmarks[lips] - target_landmarks[lips], axis=1).mean())


def lip_gap(landmarks: np.ndarray) -> float:
    """How far the mouth is open: inner-lip distance over mouth width (0 = closed, ~0.5 = wide)."""
    return float(_gaps(landmarks[None, list(GAP_POINTS)])[0])


def stored_lip_gaps(lips: np.ndarray) -> np.ndarray:
    """`lip_gap` of every frame of a clip's stored lips, (N, 40, 2) in `LIP_INDICES` order -> (N,)."""
    return _gaps(lips[:, [LIP_INDICES.index(point) for point in GAP_POINTS]])


def _gaps(points: np.ndarray) -> np.ndarray:
    """(N, 4, 2) upper inner lip, lower inner lip, left and right corner -> (N,) gap over width."""
    gap = np.linalg.norm(points[:, 0] - points[:, 1], axis=-1)
    width = np.linalg.norm(points[:, 2] - points[:, 3], axis=-1)
    return gap / np.maximum(width, 1e-6)


def voice_loudness(mel: np.ndarray) -> np.ndarray:
    """(T,) loudness of the voice band at each step of a (80, T) normalised mel (12.5 dB per unit)."""
    return mel[VOICE_BANDS].mean(axis=0)


def speech_envelope(mel: np.ndarray, n_frames: int, fps: float | Fraction) -> np.ndarray:
    """Loudness of the voice band around each video frame's time (+-40 ms), from a (80, T) mel."""
    loudness = voice_loudness(mel)
    steps = np.floor(np.arange(n_frames) * MEL_STEPS_PER_SECOND / float(fps)).astype(int)
    return np.array([loudness[max(0, s - 3):s + 4].mean() if s < len(loudness) else loudness[-1] for s in steps])


@dataclass
class SyncResult:
    """`score`: correlation at offset 0; `offset`: the audio shift (frames) where it peaks;
    `curve`: offset -> correlation for every tested offset."""

    score: float
    offset: int
    curve: dict[int, float]


def sync_score(gaps: np.ndarray, envelope: np.ndarray, max_offset: int = 5) -> SyncResult:
    """Pearson correlation of lip gap and speech loudness for audio shifted by -max..+max frames.

    A positive offset d pairs frame i with the audio of frame i + d (the audio leads).
    Frames without landmarks are NaN in `gaps` and left out.
    """
    curve = {}
    for d in range(-max_offset, max_offset + 1):
        g = gaps[max(0, -d): len(gaps) - max(0, d)]
        e = envelope[max(0, d): len(envelope) - max(0, -d)][: len(g)]
        keep = ~np.isnan(g)
        if keep.sum() < 3 or np.std(g[keep]) == 0 or np.std(e[keep]) == 0:
            curve[d] = float("nan")
            continue
        curve[d] = float(np.corrcoef(g[keep], e[keep])[0, 1])
    valid = {d: c for d, c in curve.items() if not np.isnan(c)}
    best = max(valid, key=valid.get) if valid else 0
    return SyncResult(score=curve[0], offset=best, curve=curve)


@dataclass
class PhoneFrames:
    """Video frames at the middle of phones that fix the lips: `bilabial` (p, b, m: lips closed) and
    `open_vowel` (vowels whose viseme openness is at least 0.5: lips apart)."""

    bilabial: np.ndarray
    open_vowel: np.ndarray


def phone_frames(phones: list, n_frames: int, fps: float | Fraction) -> PhoneFrames:
    """Which frames (k shows time k / fps) sit at the middle of a bilabial or of an open vowel."""
    from .data.visemes import BILABIAL_IPA, SYMBOLS, symbols

    bilabial, open_vowel = [], []
    for phone in phones:
        parts = symbols(phone.name)
        if not parts:
            continue
        frame = round((phone.start + phone.end) / 2 * float(fps))
        if not 0 <= frame < n_frames:
            continue
        openness, _, kind = SYMBOLS[parts[0]]
        if len(parts) == 1 and parts[0] in BILABIAL_IPA:
            bilabial.append(frame)
        elif kind == "vowel" and openness >= 0.5:
            open_vowel.append(frame)
    return PhoneFrames(np.array(bilabial, int), np.array(open_vowel, int))


def lower_face_sharpness(output: torch.Tensor, reference: torch.Tensor, lips: torch.Tensor) -> torch.Tensor:
    """Per-image sharpness of the lower face, output over reference (1 = as sharp; a blurred chin
    scores well below): the variance of the Laplacian of the grey image in the box from just below
    the lower lip down to the chin (0.87 of a canonical crop's height), between the mouth corners.
    (B, 3, S, S) images in [0, 1] and (B, 40, 2) lip landmarks in pixels -> (B,)."""
    size = output.shape[-1]
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], device=output.device)[None, None]
    weights = torch.tensor([0.299, 0.587, 0.114], device=output.device)[None, :, None, None]
    ratios = []
    for out, ref, points in zip(output.float(), reference.float(), lips.float()):
        top = min(int(points[:, 1].max().item() + 0.04 * size), size - 4)
        bottom = max(int(0.87 * size), top + 4)
        left = min(max(int(points[:, 0].min().item()), 0), size - 4)
        right = max(int(points[:, 0].max().item()) + 1, left + 4)
        variances = []
        for image in (out, ref):
            grey = (image[None] * weights).sum(1, keepdim=True)[:, :, top:bottom, left:right]
            variances.append(torch.nn.functional.conv2d(grey, kernel).var())
        ratios.append(variances[0] / variances[1].clamp(min=1e-8))
    return torch.stack(ratios)
