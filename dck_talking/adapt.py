"""`dck-talking adapt`: fit a model to one face, in minutes on a CPU.

A model trained on few identities lip-syncs those faces and barely moves the lips of others. A few
hundred fine-tuning steps on synthetic pairs of the new face (`synth`: its photo or video given head
motion, speaking espeak-ng sentences) teach it that face; the speech it is then given can be anything.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import DataLoader

from .data import PairDataset
from .data.synth import synth
from .errors import DCKError, InputError
from .model import DCKTalker
from .model.talker import DEFAULT_CHECKPOINT, checkpoint_source
from .train import TrainConfig, check_replaceable, latest_checkpoint, save_model, split, train, validate

# The recipe measured in the README: batch 8, half the base learning rate, the mouth term, mirrored
# and colour-jittered pairs, and the 4x cheaper discriminator (it starts from scratch here).
STEPS = 600
BATCH_SIZE = 8
LR = 1e-4
MOUTH_WEIGHT = 20.0
DISC_CHANNELS = 32
VAL_PAIRS = 64


@dataclass
class AdaptSummary:
    out: Path
    face: str
    steps: int
    seconds: float
    pairs: int  # held-out pairs of the face that `before` and `after` were measured on
    before: dict[str, float]
    after: dict[str, float]

    def __str__(self) -> str:
        def row(metrics: dict[str, float]) -> str:
            lmd = f", LMD {metrics['lmd']:.2f} px" if "lmd" in metrics else ""
            return f"PSNR {metrics['psnr']:.2f}, SSIM {metrics['ssim']:.3f}{lmd}"

        return (f"{self.out}: the model adapted to {self.face} in {self.seconds / 60:.1f} min ({self.steps} steps)\n"
                f"  {self.pairs} held-out pairs of this face: before {row(self.before)}; after {row(self.after)}\n"
                f"  use it: dck-talking generate --face {self.face} --audio speech.wav --checkpoint {self.out}")


def adapt(face: str | Path, out: str | Path, checkpoint: str | Path | None = None, steps: int = STEPS,
          groups: int = 2, seconds: float = 4.0, seed: int = 0, work: str | Path | None = None,
          progress: bool = True) -> AdaptSummary:
    """Fine-tune `checkpoint` (default: `$DCK_CHECKPOINT`, else the bundled model) on `groups` head
    motions of `face` x 4 espeak-ng speeches of `seconds`, and save the result to `out` as a
    checkpoint folder with its own model card. `work` keeps the pairs and the run (default: a
    temporary folder, removed at the end)."""
    start = time.perf_counter()
    if steps < 1:
        raise DCKError(f"adapt needs at least 1 step, got {steps}")
    check_replaceable(out)
    base = checkpoint_source(checkpoint)
    base_model = DCKTalker.from_pretrained(base)
    with tempfile.TemporaryDirectory(prefix="dck-adapt-") as scratch:
        folder = Path(work or scratch)
        made = synth([face], folder / "pairs", groups=groups, seconds=seconds, size=base_model.image_size, seed=seed,
                     progress=progress)
        if not (made.done or made.existing):
            reasons = "; ".join(sorted({r.reason for r in made.skipped + made.left_out})) or "no clip could be made"
            raise InputError(face, reasons)
        config = TrainConfig(data=[str(folder / "pairs")], out=str(folder / "run"), model=base, steps=steps,
                             batch_size=BATCH_SIZE, lr=LR, mouth_weight=MOUTH_WEIGHT, augment=True,
                             disc_channels=DISC_CHANNELS, val_pairs=VAL_PAIRS, val_every=steps, save_every=steps,
                             workers=1, seed=seed)
        pairs = PairDataset(config.data, seed=seed, window_lead=base_model.window_lead)  # the windows it was trained on
        after = train(config, dataset=pairs)
        model = DCKTalker.from_pretrained(latest_checkpoint(folder / "run" / "checkpoints") / "model")
        _, held = split(pairs, VAL_PAIRS, seed)  # the pairs `train` validated on
        before = validate(base_model, DataLoader(held, batch_size=BATCH_SIZE), "cpu", landmarks=True)
    started = "dck-talking's bundled default model" if base == str(DEFAULT_CHECKPOINT) else f"the checkpoint `{base}`"
    training = (f"Adapted to one face, `{Path(face).name}`, with `dck-talking adapt`: {started} "
                f"fine-tuned for {steps} steps (batch {BATCH_SIZE}, learning rate {LR}, L1 x 10 + LSGAN + "
                f"{MOUTH_WEIGHT:g} x L1 around the lips, mirrored and colour-jittered pairs) on synthetic pairs of "
                f"that face: {groups} head motions x 4 espeak-ng speeches of {seconds:g} s. It is meant for that "
                f"face only. Metrics: {len(held)} held-out pairs of the same synthetic data.")
    save_model(model, out, model_card_kwargs={"metrics": after, "training": training})
    return AdaptSummary(Path(out), str(face), steps, time.perf_counter() - start, len(held), before, after)
