"""`dck-talking scorecard`: a model measured on faces and voices its training saw and on ones it did not.

Two grids of seen/unseen faces x seen/unseen voices (seen voices: the espeak-ng voices every face-side run
trains on; unseen: the held-out human recordings of the corpus):

- pairs rendered from the training pack (`RenderedPairs`): LMD, its change from the identity baseline with a
  95% interval, and the lower-face sharpness;
- videos rendered by the pipeline from the pack's real faces: the lip gap's correlation with the speech's
  loudness (`sync`) and with its phones' openness at each audio offset (value at 0 and the peak), and the gap at
  m/b/p over the gap at open vowels.

Then the paper's Table I on unseen faces speaking the unseen human voices, every model against the first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import melspectrogram
from .data.pack import Pack
from .data.rendered import RenderedPairs
from .errors import DCKError
from .evaluate import (IDENTITY, LipPhones, Row, compare, format_table, held_out_recordings, human_voices,
                       pair_results, phone_measures, pooled, rendered_lip_gaps)
from .image import is_image
from .metrics import speech_envelope, sync_score
from .pipeline import TalkingFacePipeline, load_speech

SPLITS = ("train", "eval")
SEEN_VOICES = ["espeak-ng/*"]
NAMES = {"train": "seen", "eval": "unseen"}


@dataclass
class Spoken:
    """Rendered videos of one grid cell, pooled over faces and recordings."""

    sync: float  # correlation of lip gap and loudness at offset 0
    sync_peak: int  # the audio offset (frames) where it peaks: d > 0, the mouth comes d frames late
    phones: LipPhones


@dataclass
class Scorecard:
    pairs: dict[tuple[str, str], list[Row]]  # (faces, voices) -> rows, each model against identity
    spoken: dict[tuple[str, str], dict[str, Spoken]]  # (faces, voices) -> model -> pooled scores
    table_one: list[Row]  # unseen faces, unseen human voices; against the first model
    pair_count: int
    faces: dict[str, list[str]]  # split -> rendered face files
    recordings: dict[str, list[str]]  # split -> rendered recordings


def real_faces(pack: Pack, split: str, count: int) -> list[str]:
    """Up to `count` face files of the pack's real people in `split` (videos first, then photos by name)."""
    sources = [Path(i["source"]) for i in pack.identities
               if i["split"] == split and "derived" not in i and Path(i["source"]).is_file()]
    ordered = sorted(sources, key=lambda p: (is_image(p), p.name))
    return [str(p) for p in ordered[:count]]


def recordings(corpus, split: str, count: int, seed: int = 0) -> list[tuple[str, Path, list]]:
    """(voice, audio, phones) to speak: for "train", an English espeak-ng training utterance of each of `count`
    voices drawn by seed (the one nearest 5 s long); for "eval", the longest forced-aligned recording of each
    held-out human voice (up to `count`)."""
    if split == "eval":
        return held_out_recordings(corpus.root, per_voice=1)[:count]
    by_voice: dict[str, list] = {}
    for u in corpus.utterances:
        if u.split == "train" and u.voice.startswith("espeak-ng/en"):
            by_voice.setdefault(u.voice, []).append(u)
    if not by_voice:
        raise DCKError(f"{corpus.root}: no English espeak-ng training voice to speak")
    voices = sorted(by_voice)
    chosen = [voices[k] for k in np.random.default_rng(seed).permutation(len(voices))[:count]]
    picked = [min(by_voice[v], key=lambda u: abs(u.seconds - 5.0)) for v in chosen]
    return [(u.voice, u.audio_path, corpus.phones(u)) for u in picked]


def spoken_scores(pipe: TalkingFacePipeline, faces: list[str], spoken: list[tuple[str, Path, list]],
                  max_offset: int = 5, videos: Path | None = None) -> Spoken:
    """Every face speaking every recording, once each: loudness and phone measures pooled by mean. With
    `videos`, the rendered videos are kept there as FACE--RECORDING.mp4."""
    loud_curves, measures = [], []
    mels = {audio: melspectrogram(load_speech(audio)) for _, audio, _ in spoken}
    for face in faces:
        for _, audio, phones in spoken:
            keep = None if videos is None else videos / f"{Path(face).stem}--{Path(audio).stem}.mp4"
            gaps, fps = rendered_lip_gaps(pipe, face, audio, keep)
            envelope = speech_envelope(mels[audio], len(gaps), fps)
            loud_curves.append(sync_score(gaps, envelope, max_offset).curve)
            measures.append(phone_measures(gaps, phones, fps, max_offset))
    # sync_score's offset d pairs gap i with loudness i + d: a mouth d frames late peaks at -d.
    curve = {-d: float(np.nanmean([c[d] for c in loud_curves])) for d in loud_curves[0]}
    return Spoken(curve[0], max(curve, key=lambda d: -np.inf if np.isnan(curve[d]) else curve[d]), pooled(measures))


def scorecard(models: dict[str, torch.nn.Module], pack: str | Path, corpus: str | Path, pairs: int = 256,
              faces: int = 3, spoken: int = 3, seed: int = 0, device: str = "cpu",
              videos: str | Path | None = None, table_one_only: bool = False) -> Scorecard:
    """The two grids and Table I (see the module's docstring) for `models` (the first is the one judged);
    with `videos`, every rendered video is kept in videos/MODEL/. `table_one_only` skips the grids and the
    videos (minutes instead of a quarter hour on a 2-core CPU)."""
    from .data.corpus import load_corpus

    data, speech = Pack.load(pack), load_corpus(corpus)
    voices = {"train": SEEN_VOICES, "eval": human_voices(speech)}
    if not voices["eval"]:
        raise DCKError(f"{corpus}: no held-out human voices")
    lead = next(iter(models.values())).window_lead
    grid, said, table_one = {}, {}, []
    chosen_faces = {split: real_faces(data, split, faces) for split in SPLITS}
    chosen_speech = {split: recordings(speech, split, spoken, seed) for split in SPLITS}
    pipes = {} if table_one_only else {name: TalkingFacePipeline(model, device=device) for name, model in models.items()}
    folders = {name: _folder(videos, name) for name in pipes}  # a bad --videos stops it before any work
    cells = [("eval", "eval")] if table_one_only else [(f, v) for f in SPLITS for v in SPLITS]
    for face_split, voice_split in cells:
        cell = (face_split, voice_split)
        dataset = RenderedPairs(data, face_split, pairs, seed, degrade=False, window_lead=lead,
                                speech_split=voice_split, voices=voices[voice_split])
        results = pair_results(models, dataset, pairs, seed=seed, device=device)
        if cell == ("eval", "eval"):  # Table I: the same pairs, every model against the first
            table_one = compare(results, seed=seed)
        if not table_one_only:
            grid[cell] = compare(results, IDENTITY, seed)
            said[cell] = {name: spoken_scores(pipe, chosen_faces[face_split], chosen_speech[voice_split],
                                              videos=folders[name]) for name, pipe in pipes.items()}
    return Scorecard(grid, said, table_one, pairs, chosen_faces,
                     {split: [f"{v} {Path(a).name}" for v, a, _ in chosen_speech[split]] for split in SPLITS})


def _folder(videos: str | Path | None, model: str) -> Path | None:
    if videos is None:
        return None
    if Path(videos).exists() and not Path(videos).is_dir():
        raise DCKError(f"{videos}: not a folder (--videos keeps the rendered videos in a folder)")
    folder = Path(videos) / re.sub(r"[^\w.-]+", "-", model).strip("-")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def format_scorecard(card: Scorecard) -> str:
    """Three markdown tables: the pair grid, the spoken grid, Table I (only Table I when the grids were skipped)."""
    table_one = ["Table I: unseen faces, unseen human voices.", "", format_table(card.table_one, card.pair_count)]
    if not card.pairs:
        return "\n".join(table_one)
    lines = [f"Pairs: {card.pair_count} per cell, rendered from the pack (LMD in pixels of a 256 crop, lower is "
             "better; sharpness: the lower face's variance of the Laplacian, output over input).", "",
             "| model | faces | voices | LMD | LMD minus identity (95% interval) | sharpness |",
             "| --- | --- | --- | ---: | ---: | ---: |"]
    for (faces, voices), rows in card.pairs.items():
        for r in rows:
            change = "" if r.lmd_change is None else "{:+.2f} ({:+.2f} to {:+.2f})".format(*r.lmd_change)
            lines.append(f"| {r.name} | {NAMES[faces]} | {NAMES[voices]} | {r.lmd:.2f} | {change} | "
                         f"{r.sharpness:.2f} |")
    lines += ["", "Rendered videos: " + "; ".join(
        f"{NAMES[s]} faces {', '.join(Path(f).name for f in card.faces[s])}" for s in SPLITS) + "; " + "; ".join(
        f"{NAMES[s]} voices {', '.join(card.recordings[s])}" for s in SPLITS) + ". Correlations of the lip gap "
        "with the loudness (sync) and with the phones' openness, at audio offset 0 and where they peak (d > 0: "
        "the mouth comes d frames late); m/b/p: the gap at bilabial mid-frames over the gap at open vowels "
        "(well under 1 when the lips close).", "",
        "| model | faces | voices | sync at 0 | sync peak | r phones at 0 | r phones peak | m/b/p / open |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for (faces, voices), by_model in card.spoken.items():
        for name, s in by_model.items():
            lines.append(f"| {name} | {NAMES[faces]} | {NAMES[voices]} | {s.sync:.2f} | {s.sync_peak:+d} | "
                         f"{s.phones.correlation:.2f} | {s.phones.peak:+d} | {s.phones.ratio:.2f} |")
    return "\n".join(lines + [""] + table_one)
