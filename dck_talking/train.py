"""Training loop: the paper's objective (L1 reconstruction x 10 + LSGAN with a PatchGAN), on pairs
from stored clips (`dck_talking.data.PairDataset`) or rendered on the fly from a training pack
(`dck_talking.data.rendered.RenderedPairs`), with Hugging Face `accelerate` (devices, mixed precision,
gradient accumulation, several GPUs: `accelerate launch -m dck_talking.cli train ...` works like a
plain run). Checkpoints hold the model (`save_pretrained`) and the whole training state, are
written atomically, and `resume` continues from the last one with the same step and schedule.

A fresh model's audio encoder starts from the bundled `VisemePredictor` (pretrained on many voices
to tell what the mouth does), unless a Wav2Lip/SyncNet checkpoint or another predictor is given.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from .augment import augment_pairs, degrade_audio
from .errors import DCKError
from .face import to_uint8
from .metrics import MouthLandmarks, lmd, lower_face_sharpness, psnr, ssim
from .model import PRESETS, DCKTalker
from .model.discriminator import PatchDiscriminator
from .model.lip_reader import LipReader, load_lip_reader
from .model.unet import TalkerOutput


@dataclass
class TrainConfig:
    """Everything a run depends on; saved as `train_config.json` beside the checkpoints."""

    data: list[str]  # prepare/synth folders; may be empty when `pack` is given
    out: str
    pack: str | None = None  # a training pack: pairs rendered on the fly (its eval split validates)
    model: str = "compact"  # a preset name, a config.json, or a checkpoint folder to fine-tune
    steps: int = 20000
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 2e-4
    lr_discriminator: float = 2e-4
    warmup: int = 200
    rec_weight: float = 10.0  # the paper's L_adv + 10 * L_rec
    adv_weight: float = 1.0
    mouth_weight: float = 0.0  # extra L1 of output and motion image around the target's lips (off: not the paper's)
    mask_weight: float = 0.0  # extra L1 pull of the attention mask towards 0 (off)
    augment: bool = False  # mirror half of the pairs and jitter their colours (more identities from few faces)
    augment_audio: bool = False  # random recording level and band limit of the mel windows (other microphones)
    lip_reader: str | None = None  # a LipReader folder: adds the lip-shape loss (not the paper's)
    lip_weight: float = 0.3  # per pixel of lip landmark distance, when `lip_reader` is given
    flow_weight: float = 0.0  # L1 (px) of a "warp" model's flow against the renderer's, near the lips + overall (pack)
    gate_weight: float = 0.0  # cross-entropy of a "warp" model's gate against the painted mouth interior (pack only)
    moved_weight: float = 0.0  # cross-entropy of a "warp" model's mask against where the renderer moved the face (pack)
    disc_channels: int = 64
    mixed_precision: str = "no"  # "no", "fp16" or "bf16"
    val_data: list[str] = field(default_factory=list)  # held-out folders; empty: hold out pairs of `data`
    val_pairs: int = 64
    val_every: int = 500
    val_lmd: bool = True  # LMD in validation (MediaPipe on the CPU); off: PSNR and SSIM only
    save_every: int = 1000
    log_every: int = 25
    workers: int = 2
    seed: int = 0
    wav2lip: str | None = None  # a Wav2Lip/SyncNet checkpoint to start the audio encoder from
    audio_start: str | None = "bundled"  # a VisemePredictor folder for a fresh model's encoder; None: random
    freeze_audio: bool = False
    push_to_hub: str | None = None
    resume: bool = False
    model_overrides: dict[str, Any] = field(default_factory=dict)


def build_model(spec: str, overrides: dict[str, Any], audio_start: str | None = None) -> DCKTalker:
    """A preset name, a `config.json` (fresh weights) or a checkpoint folder (fine-tuning). A fresh
    model's audio encoder starts from the VisemePredictor `audio_start` ("bundled": the package's),
    whose window lead it takes over."""
    path = Path(spec)
    if spec not in PRESETS and not path.is_file():
        return DCKTalker.from_pretrained(spec)
    predictor = None
    if audio_start:
        from .model.viseme_predictor import load_viseme_predictor

        predictor = load_viseme_predictor(None if audio_start == "bundled" else audio_start)
        overrides = {**overrides, "window_lead": predictor.window_lead}
    if spec in PRESETS:
        model = DCKTalker.from_preset(spec, **overrides)
    else:
        model = DCKTalker(**{**json.loads(path.read_text()), **overrides})
    if predictor is not None:
        model.audio_encoder.load_state_dict(predictor.audio_encoder.state_dict())
    return model


def training_sets(config: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """The training pairs and, when they come from elsewhere, the held-out ones: a pack's items
    (as many as the run draws) and its eval split, or stored clips and `val_data`."""
    from .data import PairDataset

    if not config.pack and not config.data:
        raise DCKError("no training data: give prepare/synth folders (--data) or a training pack (--pack)")
    window_lead = config.model_overrides.get("window_lead", 0)
    if config.pack:
        from .data.rendered import RenderedPairs

        draws = config.steps * config.batch_size * config.grad_accum
        return (RenderedPairs(config.pack, "train", draws, config.seed, window_lead=window_lead),
                RenderedPairs(config.pack, "eval", config.val_pairs, config.seed, degrade=False, window_lead=window_lead))
    window_lead = config.model_overrides.get("window_lead", 0)
    held_out = PairDataset(config.val_data, seed=config.seed, window_lead=window_lead) if config.val_data else None
    return PairDataset(config.data, seed=config.seed, window_lead=window_lead), held_out


class TrainingState:
    """The step counter, saved and restored by `accelerator.save_state` / `load_state`."""

    def __init__(self) -> None:
        self.step = 0

    def state_dict(self) -> dict[str, int]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step = int(state["step"])


def lsgan(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss: scores pulled to 1 (real) or 0 (fake)."""
    return F.mse_loss(scores, torch.full_like(scores, 1.0 if real else 0.0))


def split(dataset: Dataset, val_pairs: int, seed: int) -> tuple[Subset, Subset]:
    """Deterministic held-out validation pairs, the rest for training."""
    order = np.random.default_rng(seed).permutation(len(dataset)).tolist()
    n_val = min(val_pairs, len(dataset) // 5)
    return Subset(dataset, order[n_val:]), Subset(dataset, order[:n_val])


def forever(loader: DataLoader):
    while True:
        yield from loader


def train(config: TrainConfig, dataset: Dataset | None = None) -> dict[str, float]:
    """Run (or resume) a training run; returns the last validation metrics."""
    from .data import PairDataset
    from .data.rendered import worker_init

    # The inputs first: a wrong folder stops the run before anything is written.
    set_seed(config.seed)
    model = build_model(config.model, config.model_overrides, None if config.wav2lip else config.audio_start)
    config.model_overrides = {**config.model_overrides, "window_lead": model.window_lead}
    if dataset is None:
        dataset, held_out = training_sets(config)
    else:
        held_out = PairDataset(config.val_data, seed=config.seed, window_lead=model.window_lead) if config.val_data else None
    lip_reader = load_lip_reader(config.lip_reader) if config.lip_reader else None
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.grad_accum,
                              log_with="tensorboard", project_dir=str(out))
    if config.wav2lip:
        model.load_wav2lip_audio_encoder(config.wav2lip)
    model.audio_encoder.requires_grad_(not config.freeze_audio)
    model.train()
    discriminator = PatchDiscriminator(config.disc_channels)
    if lip_reader is not None:
        lip_reader.to(accelerator.device)
    if held_out is not None:
        order = np.random.default_rng(config.seed).permutation(len(held_out))[:config.val_pairs].tolist()
        train_set, val_set = dataset, Subset(held_out, order)
    else:
        train_set, val_set = split(dataset, config.val_pairs, config.seed)
    if len(train_set) == 0:
        raise DCKError(f"{', '.join(config.data)}: no training pairs found")
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, drop_last=len(train_set) >= config.batch_size,
                        num_workers=config.workers, persistent_workers=config.workers > 0,
                        worker_init_fn=worker_init if config.pack else None)
    val_loader = DataLoader(val_set, batch_size=config.batch_size, num_workers=0)
    opt_g = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.AdamW(discriminator.parameters(), lr=config.lr_discriminator, betas=(0.5, 0.999))
    schedule = torch.optim.lr_scheduler.LambdaLR(opt_g, lambda step: _warmup_cosine(step, config.warmup, config.steps))
    model, discriminator, opt_g, opt_d, schedule, loader = accelerator.prepare(
        model, discriminator, opt_g, opt_d, schedule, loader)
    state = TrainingState()
    accelerator.register_for_checkpointing(state)
    checkpoints = out / "checkpoints"
    if config.resume and (last := latest_checkpoint(checkpoints)) is not None:
        accelerator.load_state(str(last / "state"))
        accelerator.print(f"resumed from {last} at step {state.step}")
    (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2))
    accelerator.init_trackers("dck-talking", config={k: str(v) for k, v in asdict(config).items()})

    metrics: dict[str, float] = {}
    batches = forever(loader)
    augmenter = torch.Generator().manual_seed(config.seed + state.step)
    bar = tqdm(total=config.steps, initial=state.step, disable=not accelerator.is_local_main_process, unit="step")
    while state.step < config.steps:
        batch = next(batches)
        if config.augment:
            batch = augment_pairs(batch, augmenter)
        if config.augment_audio:
            batch = {**batch, "mel": degrade_audio(batch["mel"], augmenter)}
        with accelerator.accumulate(model, discriminator):
            result, loss_g, loss_d, parts = adversarial_step(
                config, model, discriminator, accelerator.unwrap_model(discriminator), (opt_g, opt_d), schedule, batch,
                accelerator.backward, lip_reader)
        if not accelerator.sync_gradients:
            continue
        state.step += 1
        bar.update(1)
        if state.step % config.log_every == 0 or state.step == config.steps:
            logs = {"loss/generator": loss_g.item(), "loss/discriminator": loss_d.item(),
                    "lr": schedule.get_last_lr()[0], **{f"loss/{k}": v.item() for k, v in parts.items()}}
            accelerator.log(logs, step=state.step)
            bar.set_postfix(rec=f"{logs['loss/reconstruction']:.4f}", d=f"{loss_d.item():.3f}")
        if len(val_set) and (state.step % config.val_every == 0 or state.step == config.steps):
            metrics = validate(accelerator.unwrap_model(model), val_loader, accelerator.device, landmarks=config.val_lmd)
            accelerator.log({f"val/{k}": v for k, v in metrics.items()}, step=state.step)
            log_samples(accelerator, result, batch, state.step)
        if state.step % config.save_every == 0 or state.step == config.steps:
            save_checkpoint(accelerator, model, checkpoints, state.step, metrics)
    bar.close()
    accelerator.end_training()
    if config.push_to_hub and accelerator.is_main_process:
        push_to_hub(accelerator.unwrap_model(model), config.push_to_hub, metrics)
    return metrics


def adversarial_step(config: TrainConfig, model: torch.nn.Module, discriminator: torch.nn.Module,
                     critic: torch.nn.Module, optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
                     schedule: Any, batch: dict[str, torch.Tensor], backward: Callable[[torch.Tensor], None],
                     lip_reader: LipReader | None = None) -> tuple[TalkerOutput, torch.Tensor, torch.Tensor, dict]:
    """One step of both players: the discriminator learns real targets -> 1 and generated frames -> 0,
    then the generator learns to fool it and to reconstruct the target. `critic` is the discriminator
    itself (unwrapped from any data-parallel wrapper): it judges the generator with its weights frozen,
    so the generator's objective never trains it. Returns (result, generator loss, discriminator loss,
    the generator loss's parts)."""
    opt_g, opt_d = optimizers
    result = model(batch["input"], batch["mel"])
    loss_d = 0.5 * (lsgan(discriminator(batch["target"]), True) + lsgan(discriminator(result.output.detach()), False))
    backward(loss_d)
    opt_d.step()
    opt_d.zero_grad(set_to_none=True)
    critic.requires_grad_(False)
    try:
        loss_g, parts = generator_loss(config, result, batch, critic, lip_reader)
        backward(loss_g)
    finally:
        critic.requires_grad_(True)
    opt_g.step()
    schedule.step()
    opt_g.zero_grad(set_to_none=True)
    return result, loss_g, loss_d, parts


def generator_loss(config: TrainConfig, result: TalkerOutput, batch: dict[str, torch.Tensor],
                   discriminator: torch.nn.Module, lip_reader: LipReader | None = None
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The generator's objective, `adv_weight * L_adv + rec_weight * L_rec` as in the paper, plus
    the switchable terms; returns the total and its (unweighted) parts."""
    parts = {"adversarial": lsgan(discriminator(result.output), True),
             "reconstruction": F.l1_loss(result.output, batch["target"])}
    total = config.adv_weight * parts["adversarial"] + config.rec_weight * parts["reconstruction"]
    # While the mask is still shut (alpha ~ 0) the output passes no gradient to the motion image,
    # and the model stays at the input frame: the mouth terms also judge the motion image, in a
    # box around the target's lips.
    if config.mouth_weight or lip_reader is not None:
        box = mouth_box(batch["lips"], result.output.shape[-1])
    if config.mouth_weight:
        error = ((result.output - batch["target"]).abs() + (result.motion - batch["target"]).abs()) / 2 * box
        parts["mouth"] = error.sum() / (3 * box.sum()).clamp(min=1)
        total = total + config.mouth_weight * parts["mouth"]
    if lip_reader is not None:
        # The lips read off the output (and off the output with the motion image in the box)
        # against those read off the target: the mouth's shape, which the pixel loss barely sees.
        # (The reader is not prepared by accelerate: it runs in float32 under mixed precision too.)
        opened = result.output * (1 - box) + result.motion * box
        lips_target = lip_reader(batch["target"].float())
        parts["lips"] = sum((lip_reader(image.float()) - lips_target).norm(dim=-1).mean()
                            for image in (result.output, opened)) / 2
        total = total + config.lip_weight * parts["lips"]
    if config.mask_weight:
        parts["mask"] = result.alpha.mean()
        total = total + config.mask_weight * parts["mask"]
    if config.flow_weight and result.flow is not None:
        # Wherever the renderer's flow holds (not the painted interior): its mean near the lips, where
        # the mouth moves, plus its mean over the whole crop, where it is mostly 0. Without the second,
        # the flow away from the lips was free, grained the motion image, and the mask shut against it.
        valid, near = batch["flow_valid"], batch["flow_valid"] * mouth_box(batch["lips"], result.output.shape[-1])
        error = (result.flow.float() - batch["flow"]).abs().mean(1, keepdim=True)
        parts["flow"] = sum((error * w).sum() / w.sum().clamp(min=1) for w in (near, valid))
        total = total + config.flow_weight * parts["flow"]
    if config.gate_weight and result.gate is not None:
        parts["gate"] = _cross_entropy(result.gate, batch["painted"])
        total = total + config.gate_weight * parts["gate"]
    if config.moved_weight and result.flow is not None:
        # The mask left to itself shut (alpha 0.98 -> 0.17 around the lips) while its motion image was
        # already better than the input there, and hid a flow that beats the identity by 0.3 px LMD
        # with the mask open: it learns where the renderer moved or painted the face instead.
        parts["moved"] = _cross_entropy(result.alpha, moved_region(batch))
        total = total + config.moved_weight * parts["moved"]
    return total, parts


def _cross_entropy(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of a map in (0, 1) against a 0/1 label, in float32 and kept finite."""
    p = predicted.float().clamp(1e-5, 1 - 1e-5)
    return -(target * p.log() + (1 - target) * (1 - p).log()).mean()


def moved_region(batch: dict[str, torch.Tensor], threshold: float = 0.1, margin: int = 4) -> torch.Tensor:
    """(B, 1, S, S): 1 where the renderer's target differs from the input (its flow moves the pixel by more
    than `threshold` px, or it paints the mouth interior), widened by `margin` pixels: where the mask must
    let the motion image through."""
    moving = (batch["flow"].abs().amax(1, keepdim=True) > threshold) & (batch["flow_valid"] > 0)
    moved = (moving | (batch["painted"] > 0)).float()
    return F.max_pool2d(moved, 2 * margin + 1, stride=1, padding=margin)


def mouth_box(lips: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 1, S, S) masks of a box around each sample's (40, 2) lip landmarks, widened to where the
    lips and jaw of another frame may be: 1.6 x the mouth width across, 1.2 x down and up."""
    low, high = lips.amin(1), lips.amax(1)
    width = (high[:, 0] - low[:, 0]).clamp(min=8.0)
    centre = (low + high) / 2
    pixels = torch.arange(size, device=lips.device, dtype=lips.dtype) + 0.5
    across = (pixels - centre[:, :1]).abs() <= 0.8 * width[:, None]
    down = (pixels - centre[:, 1:]).abs() <= 0.6 * width[:, None]
    return (down[:, :, None] & across[:, None, :]).unsqueeze(1).to(lips.dtype)


def _warmup_cosine(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@torch.no_grad()
def pair_metrics(model: DCKTalker, loader: DataLoader, device: torch.device,
                 landmarks: bool = False) -> dict[str, np.ndarray]:
    """PSNR / SSIM / lower-face sharpness against the input (and LMD when `landmarks`) of every held-out
    pair, in the loader's order. LMD is
    NaN where MediaPipe finds no mouth in the output or the target, so the arrays of two models run on
    the same loader stay aligned pair by pair."""
    was_training = model.training
    model.eval()
    totals: dict[str, list[float]] = {"psnr": [], "ssim": [], "sharpness": []}
    detector = MouthLandmarks() if landmarks else None
    try:
        for batch in loader:
            output = model(batch["input"].to(device), batch["mel"].to(device)).output.float().clamp(0, 1)
            target = batch["target"].to(device)
            totals["psnr"] += psnr(output, target).tolist()
            totals["ssim"] += ssim(output, target).tolist()
            totals["sharpness"] += lower_face_sharpness(output, batch["input"].to(device), batch["lips"].to(device)).tolist()
            if detector is not None:
                totals.setdefault("lmd", []).extend(_lmd_batch(detector, output, target))
    finally:
        if detector is not None:
            detector.close()
    model.train(was_training)
    return {name: np.array(values) for name, values in totals.items()}


def mean_metrics(per_pair: dict[str, np.ndarray]) -> dict[str, float]:
    """Each metric's mean over the pairs where it was measured; a metric measured on none is left out."""
    return {name: float(np.nanmean(values)) for name, values in per_pair.items() if not np.isnan(values).all()}


def validate(model: DCKTalker, loader: DataLoader, device: torch.device, landmarks: bool = False) -> dict[str, float]:
    """Mean PSNR / SSIM (and LMD when `landmarks`) of the model on held-out pairs."""
    return mean_metrics(pair_metrics(model, loader, device, landmarks))


def _lmd_batch(detector: MouthLandmarks, output: torch.Tensor, target: torch.Tensor) -> list[float]:
    distances = []
    for generated, real in zip(to_uint8(output), to_uint8(target)):
        a, b = detector(generated), detector(real)
        distances.append(np.nan if a is None or b is None else lmd(a, b))
    return distances


def log_samples(accelerator: Accelerator, result, batch: dict[str, torch.Tensor], step: int) -> None:
    """A grid per sample row: input, attention mask, motion, output, target."""
    for tracker in accelerator.trackers:
        if tracker.name != "tensorboard":
            continue
        n = min(4, batch["input"].shape[0])
        columns = [batch["input"][:n], result.alpha[:n].expand(-1, 3, -1, -1), result.motion[:n],
                   result.output[:n], batch["target"][:n]]
        rows = torch.cat([torch.cat(list(c.detach().float().clamp(0, 1).cpu()), dim=1) for c in columns], dim=2)
        tracker.writer.add_image("samples/input-mask-motion-output-target", rows, step)


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint (`step-NNNNNNNN`), or None."""
    done = sorted(p for p in folder.glob("step-*") if (p / "model" / "model.safetensors").is_file())
    return done[-1] if done else None


def check_replaceable(folder: str | Path) -> None:
    """Stop unless `folder` is missing, empty or a model folder (config.json): the only folders
    `save_model` may replace."""
    folder = Path(folder)
    if folder.exists() and not (folder / "config.json").is_file() and (folder.is_file() or any(folder.iterdir())):
        raise DCKError(f"{folder}: exists and is not a model folder; not overwriting it")


@contextmanager
def replacing_folder(target: Path) -> Iterator[Path]:
    """A temporary folder beside `target` to write into: renamed over `target` when the block ends,
    removed when it raises, so readers see the old folder or the new one, never half of one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    os.replace(partial, target)


def save_model(model: DCKTalker | LipReader, folder: str | Path, **kwargs: Any) -> Path:
    """`model.save_pretrained(folder, **kwargs)`, atomically (`replacing_folder`), and only over a
    folder `check_replaceable` allows."""
    folder = Path(folder)
    check_replaceable(folder)
    with replacing_folder(folder) as partial:
        model.save_pretrained(partial, **kwargs)
    return folder


def save_checkpoint(accelerator: Accelerator, model: torch.nn.Module, folder: Path, step: int,
                    metrics: dict[str, float], keep: int = 3) -> Path:
    """Write `folder/step-NNNNNNNN/{model,state}` atomically (`replacing_folder`); keep the last `keep`."""
    target = folder / f"step-{step:08d}"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with replacing_folder(target) as partial:
            accelerator.unwrap_model(model).save_pretrained(partial / "model", model_card_kwargs={"metrics": metrics})
            accelerator.save_state(str(partial / "state"), safe_serialization=True)
        for old in sorted(folder.glob("step-*"))[:-keep]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return target


def push_to_hub(model: DCKTalker, repo_id: str, metrics: dict[str, float], api=None) -> str:
    """Upload the model folder (config, safetensors, a card carrying `metrics`) to a Hub repo."""
    from huggingface_hub import HfApi

    api = api or HfApi()
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder, model_card_kwargs={"metrics": metrics})
        repo = api.create_repo(repo_id, exist_ok=True, repo_type="model")
        info = api.upload_folder(repo_id=getattr(repo, "repo_id", repo_id), folder_path=folder, repo_type="model",
                                 commit_message="Upload DCKTalker checkpoint")
    return str(getattr(info, "commit_url", info))
