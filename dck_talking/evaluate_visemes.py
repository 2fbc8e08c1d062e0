"""`dck-talking evaluate-visemes`: the audio side measured on held-out voices, against their phones.

For every voice of a corpus's eval split (`data.corpus`), the predicted mouth at each frame of 25 fps
video is compared with the mouth the phones call for (`data.visemes.track` of the synthesiser's or
the forced-aligned phones):
- openness: Pearson correlation with the phone track at lag 0, and the lag (in frames, -5..+5) where
  it peaks (positive: the prediction comes late);
- bilabials: the share of m/b/p mid-frames predicted closed (closed > 0.5);
- false closures: the share of open-vowel mid-frames predicted at all closed (closed > 0.2).
Beside each model, the loudness baseline (mouth open = voice loud, closed = quiet), which a mouth
that only follows loudness matches: a model must beat it on every column to be using the phones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import audio as audio_lib
from .data import visemes
from .metrics import phone_frames, speech_envelope, sync_score
from .model.viseme_predictor import VisemePredictor
from .mouth_track import predict_mouth

FPS = 25
MAX_LAG = 5


@dataclass
class VoiceScore:
    voice: str
    method: str
    seconds: float
    correlation: float
    peak_lag: int
    bilabials: float  # share closed, of how many
    n_bilabials: int
    false_closures: float
    n_open_vowels: int


def loudness_mouth(wav: np.ndarray, n_frames: int) -> np.ndarray:
    """The baseline's (N, 3) open, spread, closed: openness is the voice band's loudness scaled to
    0..1 between its 5th and 95th percentile; closed is its complement; spread is neutral."""
    envelope = speech_envelope(audio_lib.melspectrogram(wav), n_frames, FPS)
    low, high = np.percentile(envelope, [5, 95])
    openness = np.clip((envelope - low) / max(high - low, 1e-6), 0, 1)
    return np.stack([openness, np.full_like(openness, 0.5), 1 - openness], axis=1)


def score_voice(voice: str, method: str, recordings: list[tuple[np.ndarray, list]], predict) -> VoiceScore:
    """Pool every recording of one voice: `predict(wav, n_frames)` -> (N, 3) open, spread, closed."""
    predicted, reference, closed_bilabial, closed_vowel = [], [], [], []
    seconds = 0.0
    for wav, phones in recordings:
        n = max(1, int(np.ceil(len(wav) / audio_lib.SAMPLE_RATE * FPS - 1e-9)))
        mouth = predict(wav, n)[:n]
        predicted.append(mouth[:, 0])
        reference.append(visemes.track(phones, n, FPS).openness)
        frames = phone_frames(phones, n, FPS)
        closed_bilabial.append(mouth[frames.bilabial, 2] > 0.5)
        closed_vowel.append(mouth[frames.open_vowel, 2] > 0.2)
        seconds += len(wav) / audio_lib.SAMPLE_RATE
    sync = sync_score(np.concatenate(predicted), np.concatenate(reference), MAX_LAG)
    bilabial, vowel = np.concatenate(closed_bilabial), np.concatenate(closed_vowel)
    # sync_score's offset d pairs prediction i with reference i + d: a late prediction peaks below 0.
    return VoiceScore(voice, method, seconds, sync.score, -sync.offset, float(bilabial.mean()) if len(bilabial) else
                      float("nan"), len(bilabial), float(vowel.mean()) if len(vowel) else float("nan"), len(vowel))


def evaluate_visemes(model: VisemePredictor, corpus_root: str | Path, split: str = "eval") -> list[VoiceScore]:
    """Rows for the model and the loudness baseline on every voice of a corpus split."""
    from .data.corpus import load_corpus

    corpus = load_corpus(corpus_root)
    rows = []
    for voice in sorted({u.voice for u in corpus.utterances if u.split == split}):
        recordings = [(corpus.audio(u), corpus.phones(u)) for u in corpus.utterances
                      if u.voice == voice and u.split == split]
        rows.append(score_voice(voice, "model", recordings, lambda wav, n: predict_mouth(model, wav, FPS)))
        rows.append(score_voice(voice, "loudness", recordings, loudness_mouth))
    return rows


def format_viseme_table(rows: list[VoiceScore], describe: dict[str, str] | None = None) -> str:
    """A Markdown table: a row per voice and method."""
    describe = describe or {}
    lines = ["| voice | | seconds | openness r (lag 0) | peak lag | m/b/p closed | open vowels closed |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r.voice} {describe.get(r.voice, '')} | {r.method} | {r.seconds:.0f} | {r.correlation:.2f} | "
                     f"{r.peak_lag:+d} | {r.bilabials:.0%} of {r.n_bilabials} | {r.false_closures:.0%} of {r.n_open_vowels} |")
    return "\n".join(lines)
