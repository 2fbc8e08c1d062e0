"""Train the default model and the models it is compared with together, on one GPU, from one training pack.

    python recipes/train_together.py --pack PACK --out OUT --minutes 6 [--audio-minutes 1.5]

1. (`--audio-minutes`) The audio side: a VisemePredictor trained on the pack's speech (mels, level and band
   augmentation; written as OUT/visemes.safetensors, fp16), or `--visemes DIR` to start from one trained
   elsewhere (the bundled one by default).
2. The face side: every variant (`VARIANTS`) takes one step on each batch, so all of them see the same pairs
   in the same order for the same number of steps, from the same audio encoder: same data, same budget, same
   start. Pairs are rendered on the fly by the CPU's DataLoader workers (`RenderedPairs`), once per batch.
3. Each variant is measured on the pack's held-out split (PSNR, SSIM, L1 in the box around the lips) and
   written as a model folder OUT/NAME/ (config.json, fp16 safetensors: `dck-talking evaluate --checkpoint` and
   `--start` of a later run load it), its figures in OUT/configs.json, and the run's log in OUT/log.txt.
   With `--save-minutes` the folders are also written while it trains.

On a CPU (the comparison of motion "warp" with "image", issue 22):

    python recipes/train_together.py --pack .pack --out runs/faces --variants full image --freeze-audio \
        --minutes 105 --batch-size 8 --disc-channels 32 --workers 1 --save-minutes 15 --mouth-weight 1 --lr 5e-4 \
        --seed 1 --start recipes/runs/faces

A run is bounded by wall time: the learning rate's cosine is fitted to the steps the first 100 show will
fit; or by `--steps` too (the cosine spans them), which gives variants trained in separate runs the same budget.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.utils.data import DataLoader

from dck_talking.augment import degrade_audio
from dck_talking.data.rendered import RenderedPairs, worker_init
from dck_talking.metrics import psnr, ssim
from dck_talking.model import DCKTalker
from dck_talking.model.discriminator import PatchDiscriminator
from dck_talking.train import TrainConfig, adversarial_step, build_model, mouth_box, replacing_folder

# The renderer's labels of a "warp" model's flow, gate and mask (a model without blending has no mask to label).
WARP_LOSSES = {"flow_weight": 0.2, "gate_weight": 1.0, "moved_weight": 1.0}
# name -> (preset, config overrides, loss settings, audio encoder frozen)
VARIANTS: dict[str, tuple[str, dict, dict, bool]] = {
    "full": ("compact", {"motion": "warp"}, WARP_LOSSES, False),
    "full-frozen-audio": ("compact", {"motion": "warp"}, WARP_LOSSES, True),
    "image": ("compact", {"motion": "image"}, {}, False),
    "no-dck": ("compact", {"motion": "warp", "use_dck": False}, WARP_LOSSES, False),
    "no-blending": ("compact", {"motion": "warp", "use_blending": False},
                    {k: v for k, v in WARP_LOSSES.items() if k != "moved_weight"}, False),  # --moved-weight skips it
    "paper": ("paper", {}, {}, False),
}
WARMUP = 200
RESERVE = 1.5  # minutes kept for measuring and saving before --deadline


class Log:
    def __init__(self, path: Path) -> None:
        self.file = path.open("a")

    def __call__(self, *parts: object) -> None:
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        self.file.write(line + "\n")
        self.file.flush()


def train_audio(pack: str, work: Path, out: Path, minutes: float, lead: int, device: str, workers: int,
                log: Log) -> Path:
    """A VisemePredictor trained on the pack's speech for `minutes`: its folder (in `work`), and its fp16
    weights in OUT/visemes.safetensors."""
    from dck_talking.train_audio import PackWindows, train_viseme_predictor

    folder = work / "visemes"
    result = train_viseme_predictor(PackWindows(pack, window_lead=lead), folder, steps=int(minutes * 60 * 30),
                                    batch_size=512, lr=2e-3, workers=workers, window_lead=lead, device=device,
                                    minutes=minutes)
    log("audio:", json.dumps(result))
    save_fp16(torch.nn.Module.state_dict(_load_predictor(folder)), out / "visemes.safetensors")
    return folder


def _load_predictor(folder: Path) -> torch.nn.Module:
    from dck_talking.model.viseme_predictor import load_viseme_predictor

    return load_viseme_predictor(folder)


def save_fp16(state: dict[str, torch.Tensor], path: Path) -> None:
    """A state dict as safetensors with its floating tensors in fp16 (counters stay integers)."""
    save_file({k: (v.half() if v.is_floating_point() else v).detach().contiguous().cpu() for k, v in state.items()},
              str(path))


class Run:
    """One variant: its generator, discriminator, optimisers and a cosine whose length is set later."""

    def __init__(self, name: str, visemes: str, lr: float, device: str, seed: int, freeze_audio: bool = False,
                 disc_channels: int = 64, start: Path | None = None, mouth_weight: float = 0.0,
                 moved_weight: float | None = None) -> None:
        preset, overrides, losses, frozen = VARIANTS[name]
        if moved_weight is not None and "moved_weight" in losses:
            losses = {**losses, "moved_weight": moved_weight}
        torch.manual_seed(seed)
        self.name, self.total, self.frozen = name, None, frozen or freeze_audio
        self.config = TrainConfig(data=[], out="", mouth_weight=mouth_weight, **losses)
        self.model = build_model(preset, overrides, visemes)
        if start is not None:
            self.model.load_state_dict(DCKTalker.from_pretrained(start / name).state_dict())
        self.model.to(device).train()
        self.model.audio_encoder.requires_grad_(not self.frozen)
        self.discriminator = PatchDiscriminator(disc_channels).to(device).train()
        self.opt_g = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad], lr=lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.AdamW(self.discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.opt_g, self.factor)
        self.parts: dict[str, float] = {}

    def factor(self, step: int) -> float:
        if step < WARMUP:
            return (step + 1) / WARMUP
        total = self.total or 10**9
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - WARMUP) / max(1, total - WARMUP))))

    def step(self, batch: dict[str, torch.Tensor]) -> None:
        with torch.autocast("cuda", torch.bfloat16, enabled=batch["input"].is_cuda):
            _, loss_g, loss_d, parts = adversarial_step(self.config, self.model, self.discriminator, self.discriminator,
                                                        (self.opt_g, self.opt_d), self.schedule, batch,
                                                        torch.Tensor.backward)
        self.parts = {k: float(v.detach()) if torch.is_tensor(v) else float(v)
                      for k, v in {"g": loss_g, "d": loss_d, **parts}.items()}


def save_variant(run: Run, out: Path) -> None:
    """A variant as a model folder OUT/NAME with fp16 weights (loaded into fp32 parameters), written
    atomically; the paper preset's 130 MB of fp16 weights stay behind (its figures come back)."""
    if run.name != "paper":
        with replacing_folder(out / run.name) as partial:
            copy.deepcopy(run.model).half().save_pretrained(partial)


@torch.no_grad()
def measure(model: torch.nn.Module, loader: DataLoader, device: str) -> dict[str, float]:
    """PSNR, SSIM and the mean L1 in the box around the target's lips, on held-out pairs."""
    model.eval()
    scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "mouth_l1": []}
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        output = model(batch["input"], batch["mel"]).output.float().clamp(0, 1)
        box = mouth_box(batch["lips"], output.shape[-1])
        scores["psnr"] += psnr(output, batch["target"]).tolist()
        scores["ssim"] += ssim(output, batch["target"]).tolist()
        scores["mouth_l1"] += (((output - batch["target"]).abs() * box).sum((1, 2, 3)) / (3 * box.sum((1, 2, 3)))).tolist()
    model.train()
    return {k: sum(v) / len(v) for k, v in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, default=6.0, help="wall time of the face side")
    parser.add_argument("--deadline", type=float, help="minutes from the start by which everything must be written: "
                                                       "the face side stops early enough (RESERVE) to measure and save")
    parser.add_argument("--audio-minutes", type=float, default=0.0, help="train the audio side first, this long")
    parser.add_argument("--visemes", default="bundled", help="VisemePredictor to start from when not trained here")
    parser.add_argument("--window-lead", type=int, default=8, help="the window lead of a predictor trained here")
    parser.add_argument("--work", default="/tmp/dck-work", help="folder for what does not come back")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--freeze-audio", action="store_true", help="every variant's audio encoder frozen")
    parser.add_argument("--start", help="an earlier run's OUT: each variant continues from its folder there")
    parser.add_argument("--disc-channels", type=int, default=64, help="width of the discriminator")
    parser.add_argument("--save-minutes", type=float, help="also write the variants' folders this often")
    parser.add_argument("--mouth-weight", type=float, default=0.0,
                        help="every variant: L1 of output and motion image in the box around the lips (not the paper's)")
    parser.add_argument("--moved-weight", type=float,
                        help="every warp variant's mask label (default: the variant's own; the default model's first "
                             "stage had 0)")
    parser.add_argument("--steps", type=int, help="stop after this many steps (the cosine spans them), or at --minutes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--val-pairs", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    started = time.time()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "log.txt")
    torch.backends.cudnn.benchmark = True
    visemes = args.visemes
    if args.audio_minutes:
        visemes = str(train_audio(args.pack, Path(args.work), out, args.audio_minutes, args.window_lead, args.device,
                                  args.workers, log))
    start = Path(args.start) if args.start else None
    runs = [Run(name, visemes, args.lr, args.device, args.seed, args.freeze_audio, args.disc_channels, start,
                args.mouth_weight, args.moved_weight) for name in args.variants]
    if args.steps:
        for run in runs:
            run.total = args.steps
    for run in runs:
        log(run.name, f"{sum(p.numel() for p in run.model.parameters()) / 1e6:.2f}M parameters")
    pairs = RenderedPairs(args.pack, "train", 10**8, args.seed, window_lead=runs[0].model.window_lead)
    loader = DataLoader(pairs, batch_size=args.batch_size, num_workers=args.workers, pin_memory=args.device == "cuda",
                        persistent_workers=True, prefetch_factor=4, drop_last=True, worker_init_fn=worker_init)
    held = DataLoader(RenderedPairs(args.pack, "eval", args.val_pairs, args.seed, degrade=False,
                                    window_lead=runs[0].model.window_lead), batch_size=args.batch_size, num_workers=2)
    generator = torch.Generator().manual_seed(args.seed)
    began = time.time()
    if args.deadline:
        args.minutes = min(args.minutes, args.deadline - RESERVE - (began - started) / 60)
        log(f"face side: {args.minutes:.2f} min")
    waited = stepped = 0.0
    step = 0
    saved = time.time()
    batches = iter(loader)
    while time.time() - began < args.minutes * 60 and step != args.steps:
        tick = time.time()
        batch = next(batches)
        batch["mel"] = degrade_audio(batch["mel"], generator)
        batch = {k: v.to(args.device, non_blocking=True) for k, v in batch.items()}
        tock = time.time()
        for run in runs:
            run.step(batch)
        if args.device == "cuda":
            torch.cuda.synchronize()
        waited, stepped = waited + tock - tick, stepped + time.time() - tock
        step += 1
        if not args.steps and (step == 100 or (step > 100 and runs[0].total is None and time.time() - began > 60)):
            rate = step / (time.time() - began)
            for run in runs:
                run.total = int(rate * args.minutes * 60)
            log(f"step {step}: {rate:.2f} steps/s, cosine over {runs[0].total} steps")
        if step % 100 == 0:
            log(f"step {step} {time.time() - began:.0f}s data {waited / step * 1000:.0f} ms/step, "
                f"models {stepped / step * 1000:.0f} ms/step | " + " | ".join(
                    f"{r.name} " + " ".join(f"{k} {v:.3f}" for k, v in r.parts.items()) for r in runs))
        if args.save_minutes and time.time() - saved > args.save_minutes * 60:
            for run in runs:
                save_variant(run, out)
            saved = time.time()
            log(f"step {step}: saved")
    log(f"trained {step} steps of {args.batch_size} pairs in {(time.time() - began) / 60:.1f} min")
    configs = {}
    for run in runs:
        metrics = measure(run.model, held, args.device)
        log(run.name, json.dumps({k: round(v, 4) for k, v in metrics.items()}))
        configs[run.name] = {"config": run.model._hub_mixin_config, "metrics": metrics, "steps": step,
                             "batch_size": args.batch_size, "frozen_audio": run.frozen, "start": args.start,
                             "losses": {k: getattr(run.config, k) for k in ("flow_weight", "gate_weight", "moved_weight",
                                                                            "mouth_weight")}}
        save_variant(run, out)
    (out / "configs.json").write_text(json.dumps(configs, indent=1, default=str))


if __name__ == "__main__":
    main()
