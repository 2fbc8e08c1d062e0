"""Train a `LipReader` on the frames and lip landmarks (`lips.npy`) of prepare/synth folders.

The targets of `PairDataset` items are the frames; their `lips` are MediaPipe's landmarks of that
frame, so any folder `dck-talking train` reads will do. Colour jitter keeps the reader from
keying on one identity's skin tone; there is no mirroring, which would swap the landmarks' sides.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from .augment import color_jitter
from .data import PairDataset
from .errors import DCKError
from .model.lip_reader import LipReader
from .train import forever, save_model


@torch.no_grad()
def landmark_error(reader: LipReader, loader: DataLoader) -> float:
    """Mean distance in pixels between the reader's lip landmarks and the stored ones."""
    was_training = reader.training
    reader.eval()
    errors = [(reader(batch["target"]) - batch["lips"]).norm(dim=-1).mean(1) for batch in loader]
    reader.train(was_training)
    return float(torch.cat(errors).mean())


def train_lip_reader(data: list[str], out: str | Path, val_data: list[str] | None = None, steps: int = 2500,
                     batch_size: int = 32, lr: float = 1e-3, seed: int = 0) -> dict[str, float]:
    """Fit a LipReader, save it to `out` (`save_pretrained`), return its error in pixels on up to 256
    frames of `val_data` (of the training data when there is none)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    dataset = PairDataset(data, seed=seed)
    if len(dataset) == 0:
        raise DCKError(f"{', '.join(data)}: no training frames found")
    held = PairDataset(val_data, seed=seed) if val_data else dataset
    order = np.random.default_rng(seed).permutation(len(held))[:256].tolist()
    val_loader = DataLoader(Subset(held, order), batch_size=64)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=len(dataset) >= batch_size,
                        generator=generator)
    reader = LipReader()
    optimizer = torch.optim.AdamW(reader.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    batches = forever(loader)
    for _ in (bar := tqdm(range(steps), unit="step")):
        batch = next(batches)
        loss = torch.nn.functional.smooth_l1_loss(reader(color_jitter([batch["target"]], generator)[0]), batch["lips"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    metrics = {"lip_error_px": landmark_error(reader, val_loader)}
    save_model(reader.eval(), out)
    return metrics
