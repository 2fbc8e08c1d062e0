"""The Gradio app, served on 127.0.0.1 with a tiny random-weight model: `gradio_client` calls its
API, and a headless Chromium driven by Playwright uses the page like a visitor."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import gradio
import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import TINY
from faces_made import example_face_box, group
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from huggingface_hub import SpaceCard
from PIL import Image

from dck_talking import CheckpointError, DCKTalker
from dck_talking.examples import FACE, SPEECH
from dck_talking.model import load_model
from dck_talking.video import VideoWriter, iter_frames, probe
from dck_talking.webapp import build_demo, launch

ROOT = Path(__file__).resolve().parents[1]
SPEECH_SECONDS, FPS = 3.50, 25
MAX_SECONDS = 4.0
NOTE = "Model: a tiny one with random weights."
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    demo = build_demo(DCKTalker(**TINY), NOTE, device="cpu", max_seconds=MAX_SECONDS)
    _, local_url, _ = launch(demo, server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield local_url
    demo.close()


@pytest.fixture(scope="module")
def client(url, tmp_path_factory) -> Client:
    return Client(url, verbose=False, download_files=tmp_path_factory.mktemp("downloads"))


def generate(client: Client, **inputs) -> tuple[str, str]:
    """Call the `/generate` endpoint (every input is optional); returns (video path, summary)."""
    return client.predict(**inputs, api_name="/generate")


def work_folders() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("dck-talking-*"))


def test_load_model_bundled_by_default_else_the_checkpoint(tmp_path, monkeypatch):
    monkeypatch.delenv("DCK_CHECKPOINT", raising=False)
    model, note = load_model()
    bundled = DCKTalker.from_pretrained()
    assert "bundled" in note and model.image_size == 256
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), bundled.state_dict().values()))
    DCKTalker(**TINY).save_pretrained(tmp_path / "ckpt")
    monkeypatch.setenv("DCK_CHECKPOINT", str(tmp_path / "ckpt"))
    model, note = load_model()
    assert model.image_size == 64 and str(tmp_path / "ckpt") in note
    monkeypatch.setenv("DCK_CHECKPOINT", str(tmp_path / "missing"))
    with pytest.raises(CheckpointError, match="missing: checkpoint folder not found"):
        load_model()


def test_api_names_are_stable(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert list(api["named_endpoints"]) == ["/generate"] and not api["unnamed_endpoints"]  # helpers are private
    endpoint = api["named_endpoints"]["/generate"]
    names = [p["parameter_name"] for p in endpoint["parameters"]]
    assert names == ["photo", "video", "speech", "text", "voice", "length", "face_index", "show_mask"]
    assert all(p["parameter_has_default"] for p in endpoint["parameters"])
    assert [r["label"] for r in endpoint["returns"]] == ["Lip-synced video", "Summary"]


def test_photo_and_speech_give_a_video_as_long_as_the_speech(client):
    before = work_folders()
    video, summary = generate(client, photo=handle_file(FACE), speech=handle_file(SPEECH))
    info = probe(video)
    assert (info.width, info.height, info.fps) == (512, 600, FPS)
    assert abs(info.duration - SPEECH_SECONDS) <= 1 / FPS + 1e-6 and info.has_audio
    assert summary.startswith("88 frames at 25 fps, face found in 88;")
    assert work_folders() <= before  # the working folder is gone once the video was handed over


def test_attention_mask_side_by_side(client):
    video, _ = generate(client, photo=handle_file(FACE), speech=handle_file(SPEECH), show_mask=True)
    info = probe(video)
    assert (info.width, info.height) == (2 * 512, 600)
    frame = next(iter_frames(video)).astype(float)
    left, right = frame[:, :512], frame[:, 512:]
    mask = right - left / 4  # right: the result darkened to a quarter, plus 0.75 * 255 * the pasted mask
    assert np.abs(mask[:40, :40]).max() < 12  # no mask in the corner, outside the face crop (codec error only)
    assert mask.max() > 60  # the (random-weight) mask, in white, over the face crop


def test_big_photos_are_scaled_down(client, tmp_path):
    big, short = tmp_path / "big.png", tmp_path / "short.wav"
    Image.open(FACE).resize((1600, 1875)).save(big)
    sf.write(short, sf.read(SPEECH)[0][:16000], 16000)
    video, summary = generate(client, photo=handle_file(big), speech=handle_file(short))
    info = probe(video)
    assert (info.width, info.height) == (1092, 1280) and summary.startswith("25 frames")  # long side 1280


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_typed_text_is_spoken(client):
    video, summary = generate(client, photo=handle_file(FACE), text="Hello, I am a talking face.")
    info = probe(video)
    assert info.has_audio and 1.0 < info.duration < 4.0
    assert "face found in" in summary


def test_errors_reach_the_client_as_one_line(client, tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (320, 240), (90, 90, 90)).save(blank)
    long_speech = tmp_path / "long.wav"
    sf.write(long_speech, np.tile(sf.read(SPEECH)[0], 2)[: int(5 * 16000)], 16000)
    wide = tmp_path / "wide.mp4"
    with VideoWriter(wide, 2000, 120, FPS) as writer:
        writer.write(np.zeros((120, 2000, 3), np.uint8))
    fake = tmp_path / "notes.jpg"  # not what its name says
    fake.write_text("this is not a picture")
    cases = [
        (dict(photo=handle_file(fake), speech=handle_file(SPEECH)),
         "Face photo: not a readable image (unknown format)"),
        (dict(video=handle_file(fake), speech=handle_file(SPEECH)),
         "Face video: not a readable photo or video (Invalid data found when processing input)"),
        (dict(photo=handle_file(FACE), speech=handle_file(fake)), "Speech: has no audio stream"),
        (dict(photo=handle_file(FACE), speech=handle_file(SPEECH), face_index=3),
         "Face photo: only 1 face found, so there is no face 3 (faces are numbered from 0, largest first)"),
        (dict(photo=handle_file(blank), speech=handle_file(SPEECH)), "Face photo: no face found in the photo"),
        (dict(video=handle_file(wide), speech=handle_file(SPEECH)),
         "Face video: 2000x120 pixels; this demo takes videos up to 1920 pixels on the long side"),
        (dict(photo=handle_file(FACE), video=handle_file(wide), speech=handle_file(SPEECH)),
         "Face: give a photo or a video, not both"),
        (dict(photo=handle_file(FACE), speech=handle_file(long_speech)),
         "Speech: lasts 5.0 s; this demo lip-syncs at most 4 s"),
        (dict(photo=handle_file(FACE)), "Speech: upload or record speech, or type text"),
        (dict(speech=handle_file(SPEECH)), "Face: upload or record a face photo or video"),
    ]
    for inputs, message in cases:
        with pytest.raises(AppError) as caught:
            generate(client, **inputs)
        assert str(caught.value) == message


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_browser_uploads_generates_and_plays(url, tmp_path):
    from playwright.sync_api import sync_playwright

    clip = tmp_path / "face.mp4"  # a smaller face video, given first and then replaced by the photo
    with VideoWriter(clip, 256, 300, FPS) as writer:
        for _ in range(10):
            writer.write(np.asarray(Image.open(FACE).convert("RGB").resize((256, 300))))
    two = tmp_path / "two.png"  # a group photo: a large face (0) on the left, a smaller one (1) on the right
    Image.fromarray(group(example_face_box(), 360, 640, [(150, 180, 180), (80, 470, 180)])).save(two)
    screenshot = Path(os.environ.get("DCK_SCREENSHOT_DIR", tmp_path)) / "app_screenshot.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            page.get_by_text(NOTE).first.wait_for()  # the page says which model it runs
            page.locator("#face-photo input[type=file]").set_input_files(str(two))
            page.locator("#faces-note", has_text="2 faces found").wait_for()  # the faces, numbered
            picture = page.locator("#faces img")
            # The note can come before the picture has loaded (naturalWidth 0, and its box not yet laid out).
            page.wait_for_function("() => { const img = document.querySelector('#faces img');"
                                   " return img !== null && img.complete && img.naturalWidth > 0; }")
            shown = picture.bounding_box()
            natural = picture.evaluate("img => [img.naturalWidth, img.naturalHeight]")
            scale = min(shown["width"] / natural[0], shown["height"] / natural[1])  # drawn to fit, centred
            picture.click(position={"x": shown["width"] / 2 + (470 - 320) * scale,
                                    "y": shown["height"] / 2 + (180 - 180) * scale})
            page.wait_for_function("() => document.querySelector('#face-index input').value === '1'")
            page.get_by_role("tab", name="Face video").click()
            page.locator("#face-video input[type=file]").set_input_files(str(clip))
            page.locator("#face-video video").wait_for()
            page.get_by_role("tab", name="Face photo").click()
            page.locator("#face-photo input[type=file]").set_input_files(str(FACE))  # clears the video
            page.locator("#face-photo img").wait_for()
            page.locator("#face-video video").wait_for(state="detached")  # the clear is a round trip of its own
            page.locator("#faces-note", has_text="One face found").wait_for()
            assert page.locator("#face-index input").input_value() == "0"  # a new face: the choice starts over
            page.get_by_role("button", name="Generate").click()
            toast = page.get_by_test_id("toast-body")  # the error, as a toast
            toast.wait_for()
            assert toast.inner_text().splitlines()[-1] == "Speech: upload or record speech, or type text"
            page.locator("#speech input[type=file]").set_input_files(str(SPEECH))
            page.locator("#speech audio").first.wait_for(state="attached")
            page.get_by_role("button", name="Generate").click()
            page.wait_for_function("""() => { const v = document.querySelector('#result video');
                                              return v && v.readyState >= 2 && v.duration > 0; }""", timeout=60_000)
            width, duration, played = page.evaluate("""async () => {
                const v = document.querySelector('#result video');
                v.muted = true;
                await v.play();
                await new Promise(resolve => setTimeout(resolve, 500));
                return [v.videoWidth, v.duration, v.currentTime]; }""")
            page.locator("#summary", has_text="88 frames").wait_for()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert width == 512  # made from the photo, not the cleared video
    assert abs(duration - SPEECH_SECONDS) <= 1 / FPS + 0.03 and played > 0  # it plays
    assert screenshot.stat().st_size > 10_000


def test_space_card_points_at_this_app():
    card = SpaceCard.load(ROOT / "hub_card" / "space_card.md").data
    assert (card.sdk, card.app_file, card.license) == ("gradio", "app.py", "apache-2.0")
    assert card.sdk_version.split(".")[0] == gradio.__version__.split(".")[0] and (ROOT / card.app_file).is_file()
