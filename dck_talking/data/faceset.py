"""`dck-talking faceset`: the real training and evaluation faces, built from a manifest.

Every face comes from a file inside a package of a public registry (PyPI, npm, Debian) or from the
shared media folder, so the set can be rebuilt anywhere those registries are reachable. The manifest
(``recipes/faces.csv``) holds one identity, one distinct real person, per row:

``id, source, file, box, kind, split, licence, notes``

- ``source``: ``pypi:NAME==VERSION`` (the source distribution), ``npm:NAME@VERSION``,
  ``debian:NAME=VERSION`` or ``shared:RELATIVE/PATH`` (a file of the shared media folder).
- ``file``: the path inside the unpacked package, without the archive's top folder
  (``name-version/`` of an sdist, ``package/`` of an npm tarball); ignored for ``shared:``.
- ``box``: ``x0 y0 x1 y1`` in pixels of the upright picture (EXIF orientation applied), about
  2.4 times the extent of the face's landmarks, so a face crop of any margin can be cut from it.

Output: ``OUT/<split>/<id>.png`` (photos, long side at most 512 px) or ``OUT/<split>/<id>.mp4``
(videos: at most 10 s, cropped to the box, with their sound if they have any) and ``OUT/index.json``
(the manifest rows plus each source file's SHA-256). Each source is fetched once into the cache.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DCKError
from ..image import read_image

#: The manifest shipped with the project, and the shared media folder beside the project.
DEFAULT_MANIFEST = Path(__file__).resolve().parents[2] / "recipes" / "faces.csv"
DEFAULT_SHARED = Path(__file__).resolve().parents[3] / "shared" / "media"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "dck-faceset-cache"

COLUMNS = ("id", "source", "file", "box", "kind", "split", "licence", "notes")
PHOTO_MAX_SIDE = 512
VIDEO_MAX_SECONDS = 10.0

_SOURCE = re.compile(
    r"^(?:pypi:(?P<pypi>[A-Za-z0-9._-]+==[A-Za-z0-9.+!_-]+)"
    r"|npm:(?P<npm>(?:@[a-z0-9._-]+/)?[a-z0-9._-]+@[A-Za-z0-9.+_-]+)"
    r"|debian:(?P<debian>[a-z0-9.+-]+=[A-Za-z0-9.+:~-]+)"
    r"|shared:(?P<shared>[^/].*))$"
)
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class FaceRow:
    """One manifest row: one person, where their picture is and which part of it to keep."""

    id: str
    source: str
    file: str
    box: tuple[int, int, int, int]
    kind: str
    split: str
    licence: str
    notes: str

    @property
    def source_kind(self) -> str:
        """``pypi``, ``npm``, ``debian`` or ``shared``."""
        return self.source.split(":", 1)[0]


def read_manifest(path: str | Path) -> list[FaceRow]:
    """Parse and check the manifest; a malformed row raises DCKError naming its line and id."""
    path = Path(path)
    if not path.is_file():
        raise DCKError(f"{path}: manifest not found")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise DCKError(f"{path}: expected the columns {','.join(COLUMNS)}, got {','.join(reader.fieldnames or ())}")
        rows = [_parse_row(path, reader.line_num, record) for record in reader]
    repeated = [name for name, n in Counter(row.id for row in rows).items() if n > 1]
    if repeated:
        raise DCKError(f"{path}: ids used more than once: {', '.join(sorted(repeated))}")
    return rows


def _parse_row(path: Path, line: int, record: dict[str, str]) -> FaceRow:
    """Check one CSV record and turn it into a FaceRow."""
    where = f"{path}:{line} ({record.get('id') or 'no id'})"
    if not _ID.match(record["id"] or ""):
        raise DCKError(f"{where}: id must be a short lower-case slug")
    if not _SOURCE.match(record["source"] or ""):
        raise DCKError(f"{where}: source {record['source']!r} is not pypi:NAME==VERSION, npm:NAME@VERSION, "
                       "debian:NAME=VERSION or shared:PATH")
    if record["kind"] not in ("photo", "video"):
        raise DCKError(f"{where}: kind must be photo or video, not {record['kind']!r}")
    if record["split"] not in ("train", "eval"):
        raise DCKError(f"{where}: split must be train or eval, not {record['split']!r}")
    try:
        box = tuple(int(v) for v in record["box"].split())
    except ValueError:
        box = ()
    if len(box) != 4 or box[0] < 0 or box[1] < 0 or box[2] <= box[0] or box[3] <= box[1]:
        raise DCKError(f"{where}: box {record['box']!r} is not 'x0 y0 x1 y1' with 0 <= x0 < x1 and 0 <= y0 < y1")
    if not record["source"].startswith("shared:") and not record["file"]:
        raise DCKError(f"{where}: file is empty")
    return FaceRow(record["id"], record["source"], record["file"], box, record["kind"], record["split"],
                   record["licence"], record["notes"])


def fetch(source: str, cache: Path) -> Path:
    """The folder holding the unpacked package of ``source``, downloaded and unpacked on first use.

    The package lands in a temporary folder first and is renamed into place, so an interrupted
    download never looks complete.
    """
    kind, spec = source.split(":", 1)
    folder = cache / kind / spec
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        download, unpacked = Path(tmp) / "download", Path(tmp) / "unpacked"
        download.mkdir()
        archive = _download(kind, spec, download)
        _unpack(archive, unpacked).rename(folder)
    return folder


def _download(kind: str, spec: str, into: Path) -> Path:
    """Run the registry's own client to fetch one package file into ``into``; return its path."""
    if kind == "pypi":
        name = spec.split("==", 1)[0]
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", name,
                   "--dest", str(into), spec]
    elif kind == "npm":
        command = ["npm", "pack", "--silent", "--pack-destination", str(into), spec]
    else:
        command = ["apt-get", "download", spec]
    try:
        done = subprocess.run(command, cwd=into, capture_output=True, text=True, timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DCKError(f"{kind}:{spec}: cannot run {command[0]} ({err})") from None
    files = sorted(into.iterdir())
    if done.returncode != 0 or len(files) != 1:
        reason = (done.stderr.strip().splitlines() or ["no package file"])[-1]
        raise DCKError(f"{kind}:{spec}: download failed ({reason})")
    return files[0]


def _unpack(archive: Path, into: Path) -> Path:
    """Unpack an sdist (.tar.gz or .zip), npm tarball or .deb into ``into``; return the package's root.

    The root is the archive's single top folder (``name-version/``, ``package/``) when it has one.
    """
    if archive.suffix == ".deb":
        done = subprocess.run(["dpkg-deb", "-x", str(archive), str(into)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DCKError(f"{archive.name}: cannot unpack ({done.stderr.strip()})")
        return into
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(into)
    else:
        with tarfile.open(archive) as tarred:
            tarred.extractall(into, filter="data")
    entries = list(into.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else into


def locate(row: FaceRow, cache: Path, shared: Path) -> Path:
    """The local path of a row's source file, fetching its package if needed."""
    if row.source_kind == "shared":
        path = shared / row.source.split(":", 1)[1]
    else:
        path = fetch(row.source, cache) / row.file
    if not path.is_file():
        raise DCKError(f"row {row.id}: {row.file or row.source} not found in {row.source} ({path})")
    return path


def cut_photo(row: FaceRow, path: Path, out: Path) -> Path:
    """Crop the box out of the upright photo, scale its long side to at most 512 px, save a PNG."""
    image = read_image(path)
    _check_box(row, image.shape[1], image.shape[0])
    x0, y0, x1, y1 = row.box
    crop = Image.fromarray(image[y0:y1, x0:x1])
    scale = PHOTO_MAX_SIDE / max(crop.size)
    if scale < 1:
        crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))),
                           Image.Resampling.LANCZOS)
    target = out / row.split / f"{row.id}.png"
    partial = target.with_name(f".{target.name}.partial")
    crop.save(partial, format="PNG")
    os.replace(partial, target)
    return target


def cut_video(row: FaceRow, path: Path, out: Path) -> Path:
    """Crop the box out of the first 10 s of a video (sound kept if it has any), as H.264 MP4."""
    from ..audio import load_audio
    from ..video import VideoWriter, iter_frames, probe

    info = probe(path)
    _check_box(row, info.width, info.height)
    x0, y0, x1, y1 = row.box
    frames = int(VIDEO_MAX_SECONDS * info.fps)
    audio = load_audio(path) if info.has_audio else None
    target = out / row.split / f"{row.id}.mp4"
    comment = f"dck-talking faceset: {row.source} {row.file}, box {x0} {y0} {x1} {y1}"
    with VideoWriter(target, x1 - x0, y1 - y0, info.fps, audio=audio, comment=comment) as writer:
        for index, frame in enumerate(iter_frames(path)):
            if index == frames:
                break
            writer.write(np.ascontiguousarray(frame[y0:y1, x0:x1]))
    return target


def _check_box(row: FaceRow, width: int, height: int) -> None:
    """Refuse a box that reaches past the picture (a box for another file or version)."""
    if row.box[2] > width or row.box[3] > height:
        raise DCKError(f"row {row.id}: box {' '.join(map(str, row.box))} lies outside the {width}x{height} "
                       f"picture of {row.file or row.source}")


def first_frame(path: Path) -> np.ndarray:
    """The first RGB frame of a written crop (photo or video), for the face check."""
    if path.suffix == ".png":
        return read_image(path)
    from ..video import iter_frames

    return next(iter(iter_frames(path)))


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_faceset(out: str | Path, manifest: str | Path | None = None, cache: str | Path | None = None,
                  shared: str | Path | None = None, progress: bool = False) -> dict:
    """Fetch, crop and check every manifest row; return counts and the rows whose crop shows no face.

    Rows are handled in manifest order and every output depends only on its source file and box,
    so a rebuild gives the same files. ``None`` picks the defaults: the project's manifest, a cache
    folder in the temporary directory and the shared media folder beside the project (the folder
    that ``shared:`` sources point into).
    """
    from tqdm import tqdm

    from ..face import LandmarkDetector

    rows = read_manifest(manifest or DEFAULT_MANIFEST)
    out, cache, shared = Path(out), Path(cache or DEFAULT_CACHE), Path(shared or DEFAULT_SHARED)
    for split in ("train", "eval"):
        (out / split).mkdir(parents=True, exist_ok=True)
    index, failures = [], []
    with LandmarkDetector(video=False, num_faces=1) as detector:
        for row in tqdm(rows, desc="faces", unit="face", disable=not progress):
            path = locate(row, cache, shared)
            written = cut_photo(row, path, out) if row.kind == "photo" else cut_video(row, path, out)
            if not detector.detect(first_frame(written)):
                failures.append(f"{row.id}: no face found in {written}")
            record = asdict(row)
            record["box"] = " ".join(map(str, row.box))
            index.append(record | {"sha256": sha256(path), "output": str(written.relative_to(out))})
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return {
        "identities": len(rows),
        "splits": dict(Counter(row.split for row in rows)),
        "kinds": dict(Counter(row.kind for row in rows)),
        "sources": dict(Counter(row.source_kind for row in rows)),
        "failures": failures,
        "out": str(out),
    }
