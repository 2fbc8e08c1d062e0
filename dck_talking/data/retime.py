"""Put recognised phones back in step with their sound.

pocketsphinx's phone recognition without a transcript can place phones early or late, most of all on
speech its US English model does not know: on Czech voice acting the phones ran up to 190 ms ahead
of the voice, by different amounts along a recording, and the mouths drawn from them led the sound
by up to five video frames. `retime` moves each phrase (speech between pauses) by the shift, within
+-`max_shift`, at which the phones' mouth openness follows the voice-band loudness as it does for
forced-aligned phones (`metrics.sync_score`, the measure `dck-talking data-sync` applies to the
finished clips).
"""

from __future__ import annotations

import numpy as np

from ..audio import MEL_STEPS_PER_SECOND, melspectrogram
from ..metrics import sync_score, voice_loudness
from .phones import SAMPLE_RATE, SILENCE, Phone
from .visemes import track

PAUSE = 0.15  # silences at least this long (seconds) separate phrases
# Where a phrase is put: its mouth openness best matching the loudness 12.5 ms (one mel step) earlier,
# as with the forced-aligned phones of LibriVox readings (4 of 5 clips; the fifth at 0).
LAG_STEPS = 1
MIN_PHRASE = 0.5  # shorter phrases take the recording's own shift: too little sound to fit on


def phrases(phones: list[Phone]) -> list[list[Phone]]:
    """Runs of phones between silences of at least `PAUSE` seconds (shorter silences stay inside)."""
    runs: list[list[Phone]] = [[]]
    for p in phones:
        if p.name == SILENCE and p.end - p.start >= PAUSE:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(p)
    return [r for r in runs if r]


def retime(phones: list[Phone], wav: np.ndarray, max_shift: float = 0.2) -> list[Phone]:
    """`phones` of 16 kHz `wav` with each phrase moved to follow the sound (see the module doc).

    A phrase never moves past its neighbours or outside the recording; the pauses between phrases
    become silence phones again.
    """
    if not phones:
        return phones
    mel = melspectrogram(wav)
    loudness = voice_loudness(mel)
    openness = track(phones, mel.shape[1], MEL_STEPS_PER_SECOND).openness.astype(np.float64)
    max_steps = round(max_shift * MEL_STEPS_PER_SECOND)
    overall = (sync_score(openness, loudness, max_steps).offset + LAG_STEPS) / MEL_STEPS_PER_SECOND
    runs = phrases(phones)
    duration = len(wav) / SAMPLE_RATE
    out: list[Phone] = []
    previous_end = 0.0
    for k, run in enumerate(runs):
        start, end = run[0].start, run[-1].end
        if end - start >= MIN_PHRASE:
            a = max(0, round(start * MEL_STEPS_PER_SECOND) - max_steps)
            b = min(len(openness), round(end * MEL_STEPS_PER_SECOND) + max_steps)
            shift = (sync_score(openness[a:b], loudness[a:b], max_steps).offset + LAG_STEPS) / MEL_STEPS_PER_SECOND
        else:
            shift = overall
        following = runs[k + 1][0].start if k + 1 < len(runs) else duration
        shift = min(max(shift, previous_end - start), following - end)
        if start + shift > previous_end:
            out.append(Phone(previous_end, start + shift, SILENCE))
        out += [p.shifted(shift) for p in run]
        previous_end = end + shift
    if duration > previous_end:
        out.append(Phone(previous_end, duration, SILENCE))
    return [p for p in out if p.end > p.start]
