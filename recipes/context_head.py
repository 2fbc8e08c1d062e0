"""Does a viseme head that hears the neighbouring windows close the lips on more bilabials?

An experiment of docs/audio-side.md (session 19), not a shipped model. The bundled predictor's audio
encoder stays frozen; a new head (the bundled head's shape, its input widened) reads the encoder's
features of the frame's window and of `--context` windows each side, `STRIDE` mel steps apart (50 ms).
`--context 0` is the control: the same head retrained on the same features without neighbours.

    python recipes/context_head.py --pack /tmp/data/speech4h --corpus /tmp/data/corpus-all --context 2

Features of the pack's training utterances are computed once on a grid of every `STRIDE`-th mel step
(`--cache`); the head trains on them (no further augmentation than the pack's own) and is scored on
the corpus's held-out voices like `dck-talking evaluate-visemes`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dck_talking import audio as audio_lib
from dck_talking.data.corpus import load_corpus
from dck_talking.data.pack import Pack, dequantise_mel, dequantise_track
from dck_talking.evaluate_visemes import FPS, format_viseme_table, score_voice
from dck_talking.model.audio_encoder import FEATURE_DIM
from dck_talking.model.viseme_predictor import load_viseme_predictor, mouth_from_raw
from dck_talking.train_audio import mouth_loss, windows_at

STRIDE = 4  # mel steps between neighbouring windows (50 ms)


@torch.no_grad()
def encode(encoder: nn.Module, windows: np.ndarray) -> torch.Tensor:
    """(N, 512) features of (N, 1, 80, 16) windows, in bf16 autocast as the pipeline runs on this CPU."""
    windows = torch.from_numpy(windows)
    with torch.autocast("cpu", torch.bfloat16):
        return torch.cat([encoder(windows[i:i + 512]).float() for i in range(0, len(windows), 512)])


def grid_features(pack: Pack, encoder: nn.Module, lead: int) -> dict[str, np.ndarray]:
    """Features and mouth targets at every STRIDE-th mel step of each training utterance."""
    feats, targets, utterance = [], [], []
    for u, (a, b) in enumerate(pack.utterance_spans()):
        steps = np.arange(0, b - a, STRIDE)
        feats.append(encode(encoder, windows_at(dequantise_mel(pack.mel[:, a:b]), steps, lead)).half().numpy())
        targets.append(dequantise_track(pack.track[a:b])[steps])
        utterance.append(np.full(len(steps), u))
    return {"feats": np.concatenate(feats), "targets": np.concatenate(targets), "utterance": np.concatenate(utterance)}


def neighbours(utterance: np.ndarray, context: int) -> np.ndarray:
    """(N, 2C+1) grid indices of each point's neighbours; N (the silence row) where one leaves the utterance."""
    n = len(utterance)
    index = np.arange(n)[:, None] + np.arange(-context, context + 1)[None, :]
    inside = (index >= 0) & (index < n)
    inside[inside] &= utterance[index[inside]] == np.repeat(utterance[:, None], 2 * context + 1, 1)[inside]
    return np.where(inside, index, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pack", required=True)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--context", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default="/tmp/context_head_features.npz")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    predictor = load_viseme_predictor()
    encoder, lead, c = predictor.audio_encoder, predictor.window_lead, args.context
    if not Path(args.cache).is_file():
        np.savez(args.cache, **grid_features(Pack.load(args.pack), encoder, lead))
    grid = np.load(args.cache)
    silence = encode(encoder, np.full((1, 1, 80, audio_lib.WINDOW), audio_lib.SILENCE, np.float32))
    feats = torch.cat([torch.from_numpy(grid["feats"].astype(np.float32)), silence])
    targets = torch.from_numpy(grid["targets"])
    table = torch.from_numpy(neighbours(grid["utterance"], c))

    head = nn.Sequential(nn.Linear((2 * c + 1) * FEATURE_DIM, 256), nn.ReLU(), nn.Linear(256, 3))
    optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, args.steps)
    for step in range(args.steps):
        batch = torch.from_numpy(rng.integers(0, len(table), 512))
        x = feats[table[batch]].flatten(1)
        x = x * (torch.rand_like(x) > 0.1) / 0.9  # feature dropout
        loss, parts = mouth_loss(head(x), targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 1000 == 0:
            print(step, ", ".join(f"{k} {float(v.detach()):.3f}" for k, v in parts.items()), flush=True)
    head.eval()

    @torch.no_grad()
    def predict(wav: np.ndarray, n: int) -> np.ndarray:
        mel = audio_lib.melspectrogram(wav)
        frame_steps = audio_lib.window_starts(n, FPS, mel.shape[1] + lead)
        columns = []
        for j in range(-c, c + 1):
            steps = frame_steps + STRIDE * j
            f = encode(encoder, windows_at(mel, np.clip(steps, 0, None), lead))
            f[(steps < 0) | (steps >= mel.shape[1])] = silence
            columns.append(f)
        return mouth_from_raw(head(torch.cat(columns, 1))).numpy()

    corpus = load_corpus(args.corpus)
    rows = []
    for voice in sorted({u.voice for u in corpus.utterances if u.split == "eval"}):
        recordings = [(corpus.audio(u), corpus.phones(u)) for u in corpus.utterances if u.voice == voice and u.split == "eval"]
        rows.append(score_voice(voice, f"context {c}", recordings, predict))
    print(format_viseme_table(rows))


if __name__ == "__main__":
    main()
