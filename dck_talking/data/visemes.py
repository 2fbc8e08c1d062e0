"""Phones -> visemes -> mouth parameters per video frame, with coarticulation.

Every phone symbol (IPA from espeak-ng, ARPAbet from pocketsphinx) has a viseme target: how far
the mouth is open (`openness`, 0 closed .. 1 wide, for /ɑ/) and how the lips are shaped
(`spread`, -1 rounded and protruded, for /u/ .. +1 spread, for /i/). Coarticulation follows the
dominance model of Cohen & Massaro (1993): each phone pulls the trajectory towards its target with
a weight `alpha * exp(-theta * tau)` (`tau`: time outside the phone), and the value at time `t` is
the dominance-weighted mean of the targets. Bilabials (p, b, m) dominate strongly and briefly;
tongue consonants (t, k, n, ...) barely constrain the lips and take their shape from neighbouring
vowels. On top, a hard constraint: every frame inside a bilabial (or the frame nearest to a
bilabial shorter than a frame) has the lips closed.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np

from .phones import SILENCE, Phone

# kind -> (alpha, theta in 1/s): how strongly and how far a phone of that kind pulls the mouth.
DOMINANCE = {
    "bilabial": (1.0, 30.0),
    "labiodental": (0.9, 25.0),
    "vowel": (0.8, 18.0),
    "rounded": (0.7, 18.0),  # w, r, sh: lip rounding consonants
    "consonant": (0.3, 15.0),
    "weak": (0.08, 15.0),  # h, glottal stop: the mouth follows the next vowel
    "pause": (0.8, 8.0),
}

# Phone symbol -> (openness, spread, kind). Openness 1 is a wide /ɑ/; lip gap about 0.45 x mouth width.
SYMBOLS: dict[str, tuple[float, float, str]] = {
    # bilabials: lips closed
    "p": (0.0, 0.0, "bilabial"), "b": (0.0, 0.0, "bilabial"), "m": (0.0, 0.0, "bilabial"),
    # labiodentals: lower lip under the upper teeth
    "f": (0.07, 0.05, "labiodental"), "v": (0.07, 0.05, "labiodental"), "ɱ": (0.05, 0.0, "labiodental"),
    "ʋ": (0.1, 0.0, "labiodental"),
    # dental / alveolar / retroflex
    "θ": (0.16, 0.05, "consonant"), "ð": (0.16, 0.05, "consonant"),
    "t": (0.14, 0.1, "consonant"), "d": (0.14, 0.1, "consonant"), "n": (0.14, 0.1, "consonant"),
    "ɾ": (0.18, 0.1, "consonant"), "ʈ": (0.14, 0.0, "consonant"), "ɖ": (0.14, 0.0, "consonant"),
    "ɳ": (0.14, 0.0, "consonant"), "l": (0.22, 0.05, "consonant"), "ɫ": (0.22, 0.0, "consonant"),
    "ɭ": (0.2, 0.0, "consonant"), "ʎ": (0.18, 0.1, "consonant"), "ɬ": (0.18, 0.1, "consonant"),
    "s": (0.08, 0.35, "consonant"), "z": (0.08, 0.35, "consonant"), "ts": (0.1, 0.3, "consonant"),
    "dz": (0.1, 0.3, "consonant"), "ɕ": (0.1, 0.2, "consonant"), "ʑ": (0.1, 0.2, "consonant"),
    # postalveolar: rounded, slightly protruded
    "ʃ": (0.14, -0.45, "rounded"), "ʒ": (0.14, -0.45, "rounded"), "tʃ": (0.14, -0.45, "rounded"),
    "dʒ": (0.14, -0.45, "rounded"), "ʂ": (0.12, -0.3, "rounded"), "ʐ": (0.12, -0.3, "rounded"),
    "tɕ": (0.12, -0.1, "consonant"), "dʑ": (0.12, -0.1, "consonant"),
    # velar / palatal / uvular
    "k": (0.22, 0.05, "consonant"), "g": (0.22, 0.05, "consonant"), "ɡ": (0.22, 0.05, "consonant"),
    "ŋ": (0.2, 0.05, "consonant"), "q": (0.25, 0.0, "consonant"), "ɢ": (0.25, 0.0, "consonant"),
    "x": (0.22, 0.0, "consonant"), "ɣ": (0.22, 0.0, "consonant"), "χ": (0.25, 0.0, "consonant"),
    "ʁ": (0.25, 0.0, "consonant"), "ç": (0.15, 0.3, "consonant"), "ʝ": (0.15, 0.3, "consonant"),
    "ɲ": (0.15, 0.2, "consonant"), "j": (0.15, 0.45, "consonant"),
    # weak: the mouth takes the neighbouring vowels' shape
    "h": (0.3, 0.0, "weak"), "ɦ": (0.3, 0.0, "weak"), "ʔ": (0.15, 0.0, "weak"), "ħ": (0.3, 0.0, "weak"),
    "ʕ": (0.3, 0.0, "weak"),
    # rhotics and labial approximants: rounded
    "r": (0.2, -0.35, "rounded"), "ɹ": (0.2, -0.45, "rounded"), "ɻ": (0.2, -0.35, "rounded"),
    "ʀ": (0.25, -0.2, "rounded"), "w": (0.12, -0.9, "rounded"), "ʍ": (0.12, -0.9, "rounded"),
    "ɥ": (0.12, -0.8, "rounded"),
    # vowels
    "i": (0.2, 0.65, "vowel"), "y": (0.18, -0.75, "vowel"), "ɪ": (0.28, 0.45, "vowel"),
    "ʏ": (0.25, -0.6, "vowel"), "ᵻ": (0.28, 0.35, "vowel"), "ɨ": (0.25, 0.3, "vowel"), "ʉ": (0.2, -0.6, "vowel"),
    "e": (0.4, 0.5, "vowel"), "ø": (0.38, -0.6, "vowel"), "ɛ": (0.52, 0.4, "vowel"), "œ": (0.5, -0.5, "vowel"),
    "æ": (0.75, 0.35, "vowel"), "a": (0.9, 0.15, "vowel"), "ä": (0.9, 0.1, "vowel"), "ɶ": (0.85, -0.3, "vowel"),
    "ɑ": (1.0, 0.0, "vowel"), "ɒ": (0.9, -0.35, "vowel"), "ʌ": (0.62, 0.05, "vowel"), "ɐ": (0.6, 0.05, "vowel"),
    "ə": (0.4, 0.0, "vowel"), "ɘ": (0.38, 0.0, "vowel"), "ɵ": (0.36, -0.4, "vowel"), "ɜ": (0.45, 0.05, "vowel"),
    "ɞ": (0.45, -0.3, "vowel"), "ɚ": (0.35, -0.35, "vowel"), "ɝ": (0.35, -0.35, "vowel"),
    "ɔ": (0.65, -0.55, "vowel"), "o": (0.5, -0.7, "vowel"), "ɤ": (0.4, 0.1, "vowel"),
    "ʊ": (0.3, -0.7, "vowel"), "u": (0.22, -0.9, "vowel"), "ɯ": (0.22, 0.2, "vowel"),
}  # fmt: skip

_TWO_LETTER = ("tʃ", "dʒ", "ts", "dz", "tɕ", "dʑ")
_PAUSE_TARGET = (0.0, 0.0, "pause")
_UNKNOWN_TARGET = (0.3, 0.0, "consonant")

# ARPAbet (pocketsphinx, CMU dictionary) -> IPA
ARPABET = {
    "AA": "ɑ", "AE": "æ", "AH": "ʌ", "AO": "ɔ", "AW": "aʊ", "AY": "aɪ", "B": "b", "CH": "tʃ", "D": "d",
    "DH": "ð", "EH": "ɛ", "ER": "ɚ", "EY": "eɪ", "F": "f", "G": "ɡ", "HH": "h", "IH": "ɪ", "IY": "i",
    "JH": "dʒ", "K": "k", "L": "l", "M": "m", "N": "n", "NG": "ŋ", "OW": "oʊ", "OY": "ɔɪ", "P": "p",
    "R": "ɹ", "S": "s", "SH": "ʃ", "T": "t", "TH": "θ", "UH": "ʊ", "UW": "u", "V": "v", "W": "w",
    "Y": "j", "Z": "z", "ZH": "ʒ",
}  # fmt: skip

BILABIAL_IPA = {"p", "b", "m"}


def symbols(name: str) -> list[str]:
    """A phone name (IPA or ARPAbet) as the IPA symbols of `SYMBOLS`, in order (diphthongs and
    syllabic consonants give two); stress, length and diacritics are dropped. [] for silence."""
    if name == SILENCE:
        return []
    if name.isascii() and name.isupper():
        name = ARPABET.get(name, "")
    clean = "".join(c for c in unicodedata.normalize("NFD", name)
                    if unicodedata.category(c) not in ("Mn", "Lm", "Sk") and c not in "ˈˌːˑ|_-")
    out: list[str] = []
    i = 0
    while i < len(clean):
        pair = clean[i:i + 2]
        if pair in _TWO_LETTER:
            out.append(pair)
            i += 2
            continue
        if clean[i] in SYMBOLS:
            out.append(clean[i])
        i += 1
    return out


@dataclass(frozen=True)
class Target:
    start: float
    end: float
    openness: float
    spread: float
    kind: str


def targets(phones: list[Phone]) -> list[Target]:
    """Phones -> viseme targets; a phone with several symbols (a diphthong) is split evenly in time."""
    out: list[Target] = []
    for phone in phones:
        if phone.name == SILENCE:
            out.append(Target(phone.start, phone.end, *_PAUSE_TARGET))
            continue
        parts = symbols(phone.name)
        specs = [SYMBOLS[s] for s in parts] or [_UNKNOWN_TARGET]
        step = (phone.end - phone.start) / len(specs)
        for k, (openness, spread, kind) in enumerate(specs):
            out.append(Target(phone.start + k * step, phone.start + (k + 1) * step, openness, spread, kind))
    return out


@dataclass
class VisemeTrack:
    """Mouth parameters per video frame: `openness` (N,) in [0, 1], `spread` (N,) in [-1, 1],
    `closed` (N,) bool: frames inside a bilabial, whose lips must touch."""

    openness: np.ndarray
    spread: np.ndarray
    closed: np.ndarray

    def as_array(self) -> np.ndarray:
        """(N, 3) float32: openness, spread, closed (0/1); `visemes.npy` adds a 4th column, rendered."""
        return np.stack([self.openness, self.spread, self.closed.astype(np.float32)], axis=1).astype(np.float32)

    def __len__(self) -> int:
        return len(self.openness)


def track(phones: list[Phone], n_frames: int, fps: float, scale: float = 1.0, subsamples: int = 5,
          rng: np.random.Generator | None = None) -> VisemeTrack:
    """Per-frame mouth parameters for `n_frames` frames at `fps` (frame `k` shows time `k / fps`).

    `scale` multiplies the openness (a speaker who opens the mouth more or less); `rng` adds a
    little per-phone variation of the targets (+-10% openness). Each frame averages the trajectory
    over its own duration (`subsamples` points) so phones shorter than a frame still count.
    """
    items = targets(phones)
    times = (np.arange(n_frames)[:, None] + (np.arange(subsamples)[None, :] + 0.5) / subsamples - 0.5) / fps
    times = times.ravel()
    if not items:
        zeros = np.zeros(n_frames, np.float32)
        return VisemeTrack(zeros, zeros.copy(), np.zeros(n_frames, bool))
    start = np.array([t.start for t in items])
    end = np.array([t.end for t in items])
    jitter = rng.uniform(0.9, 1.1, len(items)) if rng is not None else np.ones(len(items))
    openness = np.clip(np.array([t.openness for t in items]) * jitter * scale, 0.0, 1.0)
    spread = np.array([t.spread for t in items])
    alpha = np.array([DOMINANCE[t.kind][0] for t in items])
    theta = np.array([DOMINANCE[t.kind][1] for t in items])
    # Time outside each target's interval (0 inside), (n_times, n_targets).
    tau = np.maximum(0.0, np.maximum(start[None, :] - times[:, None], times[:, None] - end[None, :]))
    weight = alpha[None, :] * np.exp(-theta[None, :] * tau) + 1e-12
    o = (weight @ openness) / weight.sum(axis=1)
    s = (weight @ spread) / weight.sum(axis=1)
    o = o.reshape(n_frames, subsamples).mean(axis=1)
    s = s.reshape(n_frames, subsamples).mean(axis=1)
    closed = np.zeros(n_frames, bool)
    frame_times = np.arange(n_frames) / fps
    for t in items:
        if t.kind != "bilabial":
            continue
        inside = (frame_times >= t.start) & (frame_times < t.end)
        if not inside.any():
            nearest = round((t.start + t.end) / 2 * fps)
            if 0 <= nearest < n_frames:
                inside[nearest] = True
        closed |= inside
    o[closed] = 0.0
    return VisemeTrack(o.astype(np.float32), np.clip(s, -1, 1).astype(np.float32), closed)
