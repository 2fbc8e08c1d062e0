"""`dck-talking evaluate`: the paper's Table I columns (PSNR, SSIM, LMD) on held-out pairs, for one
or more checkpoints and the identity baseline (output = input frame)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from .model import DCKTalker, TalkerOutput
from .train import validate


@dataclass
class Row:
    name: str
    psnr: float
    ssim: float
    lmd: float


class _Identity(torch.nn.Module):
    """The baseline that returns the input frame unchanged."""

    def forward(self, frames: torch.Tensor, mels: torch.Tensor) -> TalkerOutput:
        return TalkerOutput(output=frames, alpha=torch.zeros_like(frames[:, :1]), motion=frames)


def evaluate(models: dict[str, torch.nn.Module], dataset: Dataset, pairs: int = 256, batch_size: int = 16,
             seed: int = 0, device: str = "cpu") -> list[Row]:
    """Metrics of each model, and of the identity baseline, on the same `pairs` random pairs."""
    chosen = np.random.default_rng(seed).permutation(len(dataset))[:pairs].tolist()
    loader = DataLoader(Subset(dataset, chosen), batch_size=batch_size)
    rows = []
    for name, model in {**models, "identity (input frame)": _Identity()}.items():
        metrics = validate(model.to(device), loader, torch.device(device), landmarks=True)
        rows.append(Row(name, metrics["psnr"], metrics["ssim"], metrics.get("lmd", float("nan"))))
    return rows


def format_table(rows: list[Row], pairs: int) -> str:
    lines = [f"{pairs} held-out pairs; LMD in pixels of a 256 crop (lower is better)", "",
             "| model | PSNR | SSIM | LMD |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {r.name} | {r.psnr:.2f} | {r.ssim:.3f} | {r.lmd:.2f} |" for r in rows]
    return "\n".join(lines)


def load_checkpoints(specs: list[str]) -> dict[str, DCKTalker]:
    """`name=path` or `path` -> loaded models, keyed by name."""
    models = {}
    for spec in specs:
        name, _, path = spec.rpartition("=")
        models[name or path] = DCKTalker.from_pretrained(path)
    return models
