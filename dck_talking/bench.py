"""Throughput benchmarks, printed as tables: the model alone (ms/frame and frames/s per preset,
batch size and dtype) and the whole pipeline (frames/s and the time of each stage).

The model benchmark needs only torch and the model's own packages (a GPU machine without PyAV,
soundfile, librosa or mediapipe runs it): media and face code load inside the pipeline benchmark.
"""

from __future__ import annotations

import functools
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from .examples import FACE, SPEECH
from .model import DCKTalker
from .pipeline import precision


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def default_dtypes(device: str) -> list[str]:
    """The precisions worth comparing on a device: bf16 on CPUs, fp16 and bf16 on GPUs."""
    return ["fp32", "bf16"] if device == "cpu" else ["fp32", "fp16", "bf16"]


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
    with torch.inference_mode(), precision(device, DTYPES[dtype]):
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


@dataclass
class PipelineRow:
    resolution: str
    call: str  # "first": a fresh process (a command line); "again": the same pipeline's next call (a server)
    frames: int
    fps: float
    stage_ms: dict[str, float]
    output_kb: float


STAGES = ("decode", "track", "crop", "close", "model", "paste", "encode")
RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080)}
BATCH_SIZES = (1, 8, 32)  # the model table's, by default


def make_talking_head_video(path: Path, width: int, height: int, n_frames: int, fps: int = 25) -> Path:
    """A test input: the bundled example face (head and shoulders, the head about 40% of the frame
    high, like a typical talking-head shot), drifting and zooming slowly, its mouth opening and
    closing about three times a second as in speech (so the pipeline closes it, as on a real talking
    video)."""
    from PIL import Image

    from .data.render import MouthRig
    from .face import LandmarkDetector
    from .video import VideoWriter

    photo = Image.open(FACE).convert("RGB")
    with LandmarkDetector(num_faces=1, video=False) as detector:
        x0, y0, x1, y1 = detector.detect(np.asarray(photo))[0].box
        side = int(2.2 * max(x1 - x0, y1 - y0))
        left, top = int((x0 + x1 - side) / 2), int((y0 + y1) / 2 + 0.15 * side - side / 2)
        head = np.asarray(photo.crop((left, top, left + side, top + side)))
        marks = detector.detect(head)[0].landmarks[:, :2]
    rig = MouthRig(marks, head)
    base = int(height * 0.85)
    with VideoWriter(path, width, height, fps, comment="dck-talking benchmark input") as writer:
        for i in range(n_frames):
            talking = Image.fromarray(rig.render(head, marks, 0.35 * (1 - math.cos(i * 0.75)), 0.0)[0])
            size = int(base * (1 + 0.05 * math.sin(i / 20)))
            picture = np.asarray(talking.resize((size, size)))[: height]
            canvas = np.full((height, width, 3), 70, np.uint8)
            x = (width - size) // 2 + int(width * 0.05 * math.sin(i / 30))
            y = max(0, (height - size) // 2)
            canvas[y:y + picture.shape[0], x:x + size] = picture
            writer.write(canvas)
    return path


@functools.cache
def pipeline_model(preset: str) -> tuple[DCKTalker, str]:
    """The model the pipeline benchmark runs, and its name: the bundled default model where it has
    the preset's shape, with its own motion (its trained attention mask decides how much of each frame
    is pasted), else the preset with fresh weights."""
    bundled = DCKTalker.from_pretrained()
    fresh = DCKTalker.from_preset(preset, motion=bundled._hub_mixin_config.get("motion", "image"))
    shapes = [p.shape for p in fresh.state_dict().values()]
    if shapes == [p.shape for p in bundled.state_dict().values()]:
        return bundled, f"the bundled default model ({preset})"
    return fresh, f"{preset}, random weights"


def run_pipeline(resolutions: list[str], seconds: float, preset: str, device: str, batch: int,
                 dtype: str | None = None, close_mouth: bool = True) -> list[PipelineRow]:
    """End-to-end frames/s of `TalkingFacePipeline` on made-up talking-head videos, with the time of
    each stage (stages overlap: they run in threads of their own); the model in `dtype` (None: the
    pipeline's default for the device); `close_mouth` as the pipeline's. Each video is rendered twice:
    the first call pays for loading the face models and preparing the network's kernels (about a
    second), which a command line pays every time and a server once."""
    import soundfile as sf

    from .audio import load_audio
    from .pipeline import TalkingFacePipeline

    pipe = TalkingFacePipeline(pipeline_model(preset)[0], device=device, batch_size=batch,
                               dtype=DTYPES[dtype] if dtype else None, close_mouth=close_mouth)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        speech = load_audio(SPEECH)
        n_frames = int(seconds * 25)
        audio = Path(folder) / "speech.wav"
        sf.write(audio, np.resize(speech, int(seconds * 16000)), 16000)
        for name in resolutions:
            width, height = RESOLUTIONS[name]
            video = make_talking_head_video(Path(folder) / f"{name}.mp4", width, height, n_frames)
            output = Path(folder) / f"out-{name}.mp4"
            for call in ("first", "again"):
                summary = pipe.generate(video, audio, output)
                stage_ms = {stage: summary.stage_seconds.get(stage, 0.0) * 1000 / summary.frames for stage in STAGES}
                rows.append(PipelineRow(f"{name} ({width}x{height})", call, summary.frames, summary.fps_achieved,
                                        stage_ms, output.stat().st_size / 1000))
    return rows


def format_pipeline_table(rows: list[PipelineRow], preset: str, device: str, batch: int,
                          dtype: str | None = None) -> str:
    """A Markdown table: end-to-end frames/s, ms/frame per stage and the output's size."""
    from .pipeline import default_dtype
    from .video import VideoWriter

    dtype = dtype or {v: k for k, v in DTYPES.items()}[default_dtype(torch.device(device))]
    lines = [f"pipeline, model: {pipeline_model(preset)[1]} in {dtype}, device: {device_name(device)}, "
             f"batch {batch}, {torch.get_num_threads()} threads, "
             f"x264 preset {VideoWriter.PRESET} crf {VideoWriter.CRF} "
             "(ms/frame per stage; decoding + tracking, cropping + closing and encoding run in threads of their own, "
             "so stages overlap)", "",
             "| input | call | frames | frames/s | " + " | ".join(f"{s} ms" for s in STAGES) + " | output kB |",
             "| --- | --- | ---: | ---: | " + " | ".join("---:" for _ in STAGES) + " | ---: |"]
    for r in rows:
        lines.append(f"| {r.resolution} | {r.call} | {r.frames} | {r.fps:.1f} | "
                     + " | ".join(f"{r.stage_ms[s]:.1f}" for s in STAGES) + f" | {r.output_kb:.0f} |")
    return "\n".join(lines)
