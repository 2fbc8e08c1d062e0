"""Throughput benchmark of the model alone: ms/frame and frames/s per preset, batch size and dtype."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from .model import PRESETS, DCKTalker

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def default_device() -> str:
    """"cuda" or "mps" when available, else "cpu"."""
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def default_dtypes(device: str) -> list[str]:
    """The precisions worth comparing on a device: bf16 on CPUs, fp16 and bf16 on GPUs."""
    return ["fp32", "bf16"] if device == "cpu" else ["fp32", "fp16", "bf16"]


def precision(device: str, dtype: str) -> contextlib.AbstractContextManager:
    """Autocast to `dtype` (what the pipeline does), or nothing for fp32."""
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device, dtype=DTYPES[dtype])


@dataclass
class Row:
    preset: str
    params_m: float
    gflops: float
    dtype: str
    batch: int
    ms_per_frame: float

    @property
    def fps(self) -> float:
        return 1000.0 / self.ms_per_frame


def gflops_per_frame(model: DCKTalker) -> float:
    """Floating point operations of one frame (audio encoder included), counted by PyTorch."""
    size = model.image_size
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 3, size, size), torch.randn(1, 1, 80, 16))
    return counter.get_total_flops() / 1e9


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_model(model: DCKTalker, device: str, dtype: str, batch: int, seconds: float) -> float:
    """Milliseconds per frame of `model(frames, mels)` at this batch size, after a warm-up call."""
    size = model.image_size
    frames = torch.rand(batch, 3, size, size, device=device)
    mels = torch.randn(batch, 1, 80, 16, device=device)
    with torch.inference_mode(), precision(device, dtype):
        model(frames, mels)
        _synchronize(device)
        calls, start = 0, time.perf_counter()
        while calls < 2 or time.perf_counter() - start < seconds:
            model(frames, mels)
            calls += 1
        _synchronize(device)
        elapsed = time.perf_counter() - start
    return elapsed / (calls * batch) * 1000.0


def run(presets: list[str], batches: list[int], dtypes: list[str], device: str, seconds: float) -> list[Row]:
    """Benchmark every combination; one table row each."""
    rows = []
    for preset in presets:
        model = DCKTalker.from_preset(preset).eval()
        params = sum(p.numel() for p in model.parameters()) / 1e6
        gflops = gflops_per_frame(model)
        model.to(device)
        for dtype in dtypes:
            for batch in batches:
                rows.append(Row(preset, params, gflops, dtype, batch, time_model(model, device, dtype, batch, seconds)))
    return rows


def format_table(rows: list[Row], device: str) -> str:
    """A Markdown table of the results."""
    lines = [f"device: {device_name(device)}, torch {torch.__version__}, {torch.get_num_threads()} threads", "",
             "| preset | params (M) | GFLOP/frame | dtype | batch | ms/frame | frames/s | GFLOP/s |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r.preset} | {r.params_m:.2f} | {r.gflops:.3f} | {r.dtype} | {r.batch} | "
                     f"{r.ms_per_frame:.2f} | {r.fps:.1f} | {r.gflops * r.fps:.1f} |")
    return "\n".join(lines)


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return device

