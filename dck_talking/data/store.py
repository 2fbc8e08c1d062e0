"""Clip folders on disk: written atomically, read back memory-mapped, listed in `index.json`.

A clip folder holds `frames.npy` uint8 (N, S, S, 3) RGB face crops, `mel.npy` float32 (80, T),
`lips.npy` float32 (N, 40, 2) lip landmarks in crop pixels and `meta.json`; synthetic clips add
`visemes.npy` float32 (N, 4) (openness, spread, closed, rendered) and `phones.json`, and every clip keeps its
16 kHz sound as `audio.wav` (small, and lets other features be computed later).

Why plain `.npy` files: `np.load(mmap_mode="r")` gives zero-copy random access to any frame, the
operating system's page cache is shared by all DataLoader workers, nothing has to be decoded
(a JPEG or video decode per sample costs more CPU than the training step's data needs), and
the format needs no extra library. The price is disk space: 192 KiB per 256x256 frame, about
17 GiB per hour of 25 fps video, which is what fast random access costs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import scipy.io.wavfile

from ..audio import SAMPLE_RATE

CLIP_FILES = ("frames.npy", "mel.npy", "lips.npy", "meta.json")
INDEX = "index.json"
PARTIAL = ".partial"


def is_clip(folder: Path) -> bool:
    """A finished clip folder (all contract files present)."""
    return all((folder / name).is_file() for name in CLIP_FILES)


class ClipWriter:
    """Write one clip folder: into `.NAME.partial-PID` beside `final`, renamed to `final` by
    `commit()`; `discard()` (or leaving a `with` block by an exception) deletes it.

    `frames` is a writable memory-mapped (N, S, S, 3) uint8 array and `lips` an (N, 40, 2) array,
    so a long clip never has to fit in memory.
    """

    def __init__(self, final: str | Path, n_frames: int, size: int) -> None:
        self.final = Path(final)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.final.parent / f".{self.final.name}{PARTIAL}-{os.getpid()}"
        if self.partial.exists():
            shutil.rmtree(self.partial)
        self.partial.mkdir()
        self.frames = np.lib.format.open_memmap(self.partial / "frames.npy", mode="w+", dtype=np.uint8,
                                                shape=(n_frames, size, size, 3))
        self.lips = np.zeros((n_frames, 40, 2), np.float32)

    def commit(self, mel: np.ndarray, meta: dict, audio: np.ndarray | None = None,
               extra: dict[str, np.ndarray] | None = None, files: dict[str, object] | None = None) -> Path:
        """Finish the folder (mel, lips, meta, optional audio, extra arrays and JSON files) and rename it."""
        self.frames.flush()
        del self.frames
        np.save(self.partial / "lips.npy", self.lips.astype(np.float32))
        np.save(self.partial / "mel.npy", np.asarray(mel, np.float32))
        for name, array in (extra or {}).items():
            np.save(self.partial / f"{name}.npy", array)
        for name, value in (files or {}).items():
            (self.partial / name).write_text(json.dumps(value))
        if audio is not None:
            pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
            scipy.io.wavfile.write(self.partial / "audio.wav", SAMPLE_RATE, pcm)
        (self.partial / "meta.json").write_text(json.dumps(meta, indent=1))  # last: marks it complete
        if self.final.exists():  # a finished folder from a concurrent run wins
            shutil.rmtree(self.partial)
            return self.final
        os.replace(self.partial, self.final)
        return self.final

    def discard(self) -> None:
        with contextlib.suppress(AttributeError):
            del self.frames
        shutil.rmtree(self.partial, ignore_errors=True)

    def __enter__(self) -> ClipWriter:  # noqa: PYI034
        return self

    def __exit__(self, exc_type, *_: object) -> None:
        if self.partial.exists() and exc_type is not None:
            self.discard()


def remove_partials(folder: Path, max_depth: int = 2) -> int:
    """Delete `.NAME.partial-PID` folders left by interrupted runs (up to `max_depth` levels down)."""
    removed = 0
    if not folder.is_dir():
        return 0
    for path in folder.iterdir():
        if path.is_dir() and path.name.startswith(".") and PARTIAL in path.name:
            if _alive(path.name.rpartition("-")[2]):
                continue  # another run on the same folder is writing it
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        elif path.is_dir() and max_depth > 1:
            removed += remove_partials(path, max_depth - 1)
    return removed


def _alive(pid: str) -> bool:
    """Whether process `pid` (a partial folder's writer) still runs; never true for this process."""
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_meta(folder: Path) -> dict:
    return json.loads((folder / "meta.json").read_text())


def iter_clips(out: Path) -> Iterator[Path]:
    """Finished single clips of a prepare folder: OUT/clips/<id>/."""
    root = out / "clips"
    if root.is_dir():
        for folder in sorted(root.iterdir()):
            if not folder.name.startswith(".") and is_clip(folder):
                yield folder


def iter_groups(out: Path) -> Iterator[tuple[Path, list[Path]]]:
    """Groups of a synth folder: (OUT/groups/<gid>, its finished clip folders)."""
    root = out / "groups"
    if root.is_dir():
        for group in sorted(root.iterdir()):
            if group.is_dir() and not group.name.startswith("."):
                clips = [c for c in sorted(group.iterdir()) if not c.name.startswith(".") and is_clip(c)]
                yield group, clips


def load_index(out: Path) -> dict:
    path = Path(out) / INDEX
    if path.is_file():
        with contextlib.suppress(ValueError, OSError):
            return json.loads(path.read_text())
    return {}


def write_index(out: Path, skipped: list[dict] | None = None, expected_groups: dict[str, list[str]] | None = None
                ) -> dict:
    """Rewrite OUT/index.json from what is on disk: every finished clip and group, plus `skipped`
    (sources that were left out, with the reason) merged with the previous index's list."""
    out = Path(out)
    previous = load_index(out)
    clips = []
    for folder in iter_clips(out):
        meta = read_meta(folder)
        clips.append({"id": folder.name, "path": f"clips/{folder.name}", "frames": meta["frames"],
                      "fps": meta["fps"], "identity": meta.get("identity"), "source": meta.get("source")})
    groups = []
    done_sources = {c["source"] for c in clips}
    for group, members in iter_groups(out):
        if not members:
            continue
        metas = [read_meta(m) for m in members]
        done_sources |= {m.get("source") for m in metas} | {f"{m.get('source')}#{group.name}" for m in metas}
        entry = {"id": group.name, "path": f"groups/{group.name}", "identity": metas[0].get("identity"),
                 "frames": min(m["frames"] for m in metas), "fps": metas[0]["fps"],
                 "speeches": [m.name for m in members]}
        if expected_groups is not None and group.name in expected_groups:
            entry["complete"] = set(expected_groups[group.name]) <= set(entry["speeches"])
        groups.append(entry)
    merged = {s["source"]: s for s in previous.get("skipped", []) if s.get("source") not in done_sources}
    for item in skipped or []:
        merged[item["source"]] = item
    for source in done_sources:
        merged.pop(source, None)
    index = {"version": 1, "updated": time.strftime("%Y-%m-%dT%H:%M:%S"), "clips": clips, "groups": groups,
             "skipped": sorted(merged.values(), key=lambda s: s["source"])}
    tmp = out / f".{INDEX}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, out / INDEX)
    return index
