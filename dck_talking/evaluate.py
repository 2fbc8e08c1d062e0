"""`dck-talking evaluate`: the paper's Table I columns (PSNR, SSIM, LMD) on held-out pairs, for one
or more checkpoints and the identity baseline (output = input frame); `dck-talking sync`: the lip-sync
score of rendered videos as the speech is delayed, which peaks at no delay when the model is in sync;
`dck-talking data-sync`: the same score for the stored clips of training or held-out data against their
own sound, which finds footage whose sound is out of step with the picture.

Every model runs on the same pairs, so each one's LMD is also compared with the first model's pair by
pair, with a bootstrap interval: a difference whose interval holds 0 may be the luck of the draw."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from .audio import SAMPLE_RATE, melspectrogram
from .data.pairs import discover
from .errors import DCKError
from .image import is_image
from .metrics import MouthLandmarks, lip_gap, speech_envelope, stored_lip_gaps, sync_score
from .model import DCKTalker, TalkerOutput
from .pipeline import PHOTO_FPS, TalkingFacePipeline, load_speech
from .train import mean_metrics, pair_metrics
from .video import iter_frames, probe


@dataclass
class Row:
    name: str
    psnr: float
    ssim: float
    lmd: float
    lmd_change: tuple[float, float, float] | None = None  # LMD minus the first row's: mean, 95% interval
    sharpness: float = float("nan")  # lower-face sharpness, output over input


class _Identity(torch.nn.Module):
    """The baseline that returns the input frame unchanged."""

    def forward(self, frames: torch.Tensor, mels: torch.Tensor) -> TalkerOutput:
        return TalkerOutput(output=frames, alpha=torch.zeros_like(frames[:, :1]), motion=frames)


IDENTITY = "identity (input frame)"


def evaluate(models: dict[str, torch.nn.Module], dataset: Dataset, pairs: int = 256, batch_size: int = 16,
             seed: int = 0, device: str = "cpu", against: str | None = None) -> list[Row]:
    """Metrics of each model, and of the identity baseline (`IDENTITY`), on the same `pairs` random pairs;
    every row but `against`'s (the first model's by default) carries its LMD change from it
    (`paired_difference`)."""
    return compare(pair_results(models, dataset, pairs, batch_size, seed, device), against, seed)


def pair_results(models: dict[str, torch.nn.Module], dataset: Dataset, pairs: int = 256, batch_size: int = 16,
                 seed: int = 0, device: str = "cpu") -> dict[str, dict[str, np.ndarray]]:
    """Per-pair metrics (`train.pair_metrics`) of each model and of `IDENTITY` on the same `pairs` random pairs."""
    lead = getattr(dataset, "window_lead", 0)
    others = {name: m.window_lead for name, m in models.items() if m.window_lead != lead}
    if others:
        raise DCKError(f"the pairs' sound windows lead their frames by {lead} mel steps, but "
                       + ", ".join(f"{name}'s by {value}" for name, value in others.items())
                       + ": evaluate models of different window leads separately")
    chosen = np.random.default_rng(seed).permutation(len(dataset))[:pairs].tolist()
    loader = DataLoader(Subset(dataset, chosen), batch_size=batch_size)
    return {name: pair_metrics(model.to(device), loader, torch.device(device), landmarks=True)
            for name, model in {**models, IDENTITY: _Identity()}.items()}


def compare(results: dict[str, dict[str, np.ndarray]], against: str | None = None, seed: int = 0) -> list[Row]:
    """A row of mean metrics per model of `pair_results`; every row but `against`'s (the first's by default)
    carries its LMD change from it."""
    against = against or next(iter(results))
    rows = []
    for name, per_pair in results.items():
        means = mean_metrics(per_pair)
        change = None if name == against else paired_difference(results[against]["lmd"], per_pair["lmd"], seed=seed)
        rows.append(Row(name, means["psnr"], means["ssim"], means.get("lmd", float("nan")), change,
                        means["sharpness"]))
    return rows


def paired_difference(a: np.ndarray, b: np.ndarray, resamples: int = 10_000,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean of `b - a` over the pairs where both are measured, and the 2.5th and 97.5th percentiles of
    that mean over `resamples` bootstrap draws of those pairs (NaN when no pair has both)."""
    diff = (b - a)[np.isfinite(a) & np.isfinite(b)]
    if not len(diff):
        return (float("nan"),) * 3
    draws = np.random.default_rng(seed).integers(0, len(diff), (resamples, len(diff)))
    low, high = np.percentile(diff[draws].mean(axis=1), [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def format_table(rows: list[Row], pairs: int) -> str:
    versus = f"LMD minus {next(r.name for r in rows if r.lmd_change is None)} (95% interval)"
    lines = [f"{pairs} held-out pairs; LMD in pixels of a 256 crop (lower is better); sharpness: the lower face's "
             "variance of the Laplacian, output over input (1 = as sharp)", "",
             f"| model | PSNR | SSIM | LMD | sharpness | {versus} |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        change = ("" if r.lmd_change is None else "n/a" if np.isnan(r.lmd_change[0])
                  else "{:+.2f} ({:+.2f} to {:+.2f})".format(*r.lmd_change))
        lines.append(f"| {r.name} | {r.psnr:.2f} | {r.ssim:.3f} | {r.lmd:.2f} | {r.sharpness:.2f} | {change} |")
    return "\n".join(lines)


def load_checkpoints(specs: list[str]) -> dict[str, DCKTalker]:
    """`name=path` or `path` -> loaded models, keyed by name."""
    models = {}
    for spec in specs:
        name, _, path = spec.rpartition("=")
        models[name or path] = DCKTalker.from_pretrained(path)
    return models


def delay_sweep(pipe: TalkingFacePipeline, face: str | Path, speech: str | Path, max_delay: int = 5) -> dict[int, float]:
    """Render `face` speaking `speech` delayed by d = -max_delay..+max_delay video frames (d > 0: the
    sound comes later) and score each video's lip motion against the speech as given
    (`metrics.sync_score` at offset 0). A model in sync scores best at d = 0."""
    wav = load_speech(speech)
    fps = PHOTO_FPS if is_image(face) else float(probe(face).fps)
    mel = melspectrogram(wav)
    scores = {}
    with MouthLandmarks() as landmarks, tempfile.TemporaryDirectory(prefix="dck-sync-") as folder:
        shifted, video = Path(folder) / "speech.wav", Path(folder) / "video.mp4"
        for delay in range(-max_delay, max_delay + 1):
            sf.write(shifted, _delayed(wav, round(delay * SAMPLE_RATE / fps)), SAMPLE_RATE)
            pipe.generate(face, shifted, video)
            gaps = np.array([np.nan if (points := landmarks(frame)) is None else lip_gap(points)
                             for frame in iter_frames(video)])
            envelope = speech_envelope(mel, len(gaps), fps)
            scores[delay] = sync_score(gaps, envelope, max_offset=0).score
    return scores


@dataclass
class LipPhones:
    """A rendered video's lips against the speech's phones: `ratio`, the mean lip gap at m/b/p
    mid-frames over that at open vowels (lips that close for bilabials: well under 1); `correlation`
    of the lip gap with the phones' openness track (`data.visemes.track`) at each audio offset in
    `curve` (d > 0: the mouth comes d frames late), `peak` where it is highest."""

    ratio: float
    correlation: float
    peak: int
    curve: dict[int, float]


def rendered_lip_gaps(pipe: TalkingFacePipeline, face: str | Path, speech: str | Path,
                      keep: str | Path | None = None) -> tuple[np.ndarray, float]:
    """Render `face` speaking `speech` once: the lip gap of every frame (MediaPipe; NaN where no mouth is
    found) and the video's frame rate. The video is written to `keep` if given, else thrown away."""
    fps = PHOTO_FPS if is_image(face) else float(probe(face).fps)
    with MouthLandmarks() as landmarks, tempfile.TemporaryDirectory(prefix="dck-lips-") as folder:
        video = Path(keep) if keep is not None else Path(folder) / "video.mp4"
        pipe.generate(face, speech, video)
        gaps = np.array([np.nan if (points := landmarks(frame)) is None else lip_gap(points)
                         for frame in iter_frames(video)])
    return gaps, fps


def phone_measures(gaps: np.ndarray, phones: list, fps: float, max_offset: int = 5) -> LipPhones:
    """Lip gaps of a rendered video against `phones`, the speech's phone timings."""
    from .data.visemes import track
    from .metrics import phone_frames

    reference = track(phones, len(gaps), fps).openness
    # sync_score's offset d pairs gap i with reference i + d: a mouth d frames late peaks at -d.
    result = sync_score(gaps, reference, max_offset)
    moments = phone_frames(phones, len(gaps), fps)
    closed, opened = np.nanmean(gaps[moments.bilabial]), np.nanmean(gaps[moments.open_vowel])
    return LipPhones(float(closed / opened) if opened > 0 else float("nan"), result.score, -result.offset,
                     {-d: c for d, c in sorted(result.curve.items(), reverse=True)})


def lip_phone_measures(pipe: TalkingFacePipeline, face: str | Path, speech: str | Path, phones: list,
                       max_offset: int = 5) -> LipPhones:
    """Render `face` speaking `speech` once and measure its lips against `phones` (forced-aligned for a
    recording)."""
    gaps, fps = rendered_lip_gaps(pipe, face, speech)
    return phone_measures(gaps, phones, fps, max_offset)


def human_voices(corpus) -> list[str]:
    """The held-out human voices of a loaded corpus (`data.corpus.load_corpus`), by name."""
    return sorted(v for v, info in corpus.voices.items() if info["split"] == "eval" and info["kind"] == "human")


def held_out_recordings(corpus: str | Path, per_voice: int = 2, min_seconds: float = 3.0) -> list[tuple[str, Path, list]]:
    """Human recordings of a corpus's eval split whose phones are forced-aligned to a transcript:
    (voice, audio file, phones), the `per_voice` longest of each voice that last `min_seconds` or more."""
    from .data.corpus import load_corpus

    data = load_corpus(corpus)
    chosen = []
    for voice in human_voices(data):
        aligned = sorted((u for u in data.utterances if u.voice == voice and u.phone_source == "forced-alignment"
                          and u.seconds >= min_seconds), key=lambda u: -u.seconds)
        chosen += [(voice, u.audio_path, data.phones(u)) for u in aligned[:per_voice]]
    if not chosen:
        raise DCKError(f"{corpus}: no held-out human recordings with forced-aligned phones")
    return chosen


def format_lip_phones(results: dict[str, dict[str, LipPhones]]) -> str:
    """A table of `lip_phone_measures`: a row per face and model, each recording's figures pooled by mean."""
    lines = ["| face | model | m/b/p gap / open-vowel gap | r with phone openness (offset 0) | peak offset |",
             "| --- | --- | ---: | ---: | ---: |"]
    for face, by_model in results.items():
        for model, measures in by_model.items():
            lines.append(f"| {face} | {model} | {measures.ratio:.2f} | {measures.correlation:.2f} | {measures.peak:+d} |")
    return "\n".join(lines)


def pooled(measures: list[LipPhones]) -> LipPhones:
    """The mean of several recordings' measures; the peak of the mean curve."""
    curve = {d: float(np.nanmean([m.curve[d] for m in measures])) for d in measures[0].curve}
    return LipPhones(float(np.nanmean([m.ratio for m in measures])), curve[0], max(curve, key=curve.get), curve)


def _delayed(wav: np.ndarray, samples: int) -> np.ndarray:
    """`wav` shifted later by `samples` (earlier when negative), silence-filled, same length."""
    out = np.zeros_like(wav)
    if samples >= 0:
        out[samples:] = wav[:len(wav) - samples]
    else:
        out[:samples] = wav[-samples:]
    return out


def format_sweep(sweeps: dict[str, dict[int, float]]) -> str:
    """A table of `delay_sweep` results, one column per recording (all swept over the same delays),
    plus their mean when there are several: one recording's peak can be the luck of that speech."""
    columns = dict(sweeps)
    if len(sweeps) > 1:
        columns["mean"] = {d: float(np.nanmean([s[d] for s in sweeps.values()])) for d in next(iter(sweeps.values()))}
    peaks = {name: max(scores, key=lambda d: -np.inf if np.isnan(scores[d]) else scores[d])
             for name, scores in columns.items()}
    lines = ["| audio delay (frames) | " + " | ".join(columns) + " |", "| ---: |" + " ---: |" * len(columns)]
    for d in next(iter(columns.values())):
        cells = [f"{scores[d]:.3f}{' (peak)' if peaks[name] == d else ''}" for name, scores in columns.items()]
        lines.append(f"| {d:+d} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass
class ClipSync:
    clip: Path
    score: float  # correlation of lip gap and loudness at offset 0
    offset: int  # the audio shift (frames) where it peaks: d > 0, frame i shows the mouth of audio frame i + d


def clip_sync(root: str | Path, max_offset: int = 5) -> list[ClipSync]:
    """`metrics.sync_score` of every stored clip under `root` (prepare or synth output): its lips
    (`lips.npy`, the lip landmarks stored with each frame) against its own sound (`mel.npy`). No model runs,
    so this measures the data: real footage in sync and synthetic mouths that follow their speech peak at
    offset 0 with a high score."""
    singles, groups = discover(root)
    results = []
    for clip in [*singles, *(c for group in groups for c in group.clips)]:
        gaps = stored_lip_gaps(np.load(clip.path / "lips.npy")[:clip.frames])
        envelope = speech_envelope(np.load(clip.path / "mel.npy"), len(gaps), clip.fps)
        result = sync_score(gaps, envelope, max_offset)
        results.append(ClipSync(clip.path, result.score, result.offset))
    if not results:
        raise DCKError(f"{root}: no clips found (expected prepare or synth output)")
    return results


def format_clip_sync(root: str | Path, results: list[ClipSync], max_offset: int, worst: int = 10) -> str:
    """A summary line, the clips per peak offset, and the `worst` clips peaking furthest from 0."""
    scores = np.array([r.score for r in results])
    offsets = np.array([r.offset for r in results])
    lines = [f"{root}: {len(results)} clips; sync score at offset 0: mean {np.nanmean(scores):.2f}, median "
             f"{np.nanmedian(scores):.2f}; peak at 0 in {np.mean(offsets == 0):.0%}, within 1 frame in "
             f"{np.mean(np.abs(offsets) <= 1):.0%} (offset d > 0: frame i shows the mouth of audio frame i + d)", "",
             "| peak offset (frames) | clips |", "| ---: | ---: |"]
    lines += [f"| {d:+d} | {int(np.sum(offsets == d))} |" for d in range(-max_offset, max_offset + 1)]
    far = sorted((r for r in results if abs(r.offset) >= 2), key=lambda r: (-abs(r.offset), r.score))[:worst]
    if far:
        lines += ["", "Clips peaking 2 or more frames away (sound and picture may be out of step):"]
        lines += [f"  {r.clip}: peak at {r.offset:+d}, score {r.score:.2f} at 0" for r in far]
    return "\n".join(lines)
