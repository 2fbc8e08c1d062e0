"""Training data: prepare (real clips -> clip folders), synth (paired synthetic groups), the viseme
mouth renderer, and the pair sampler. Media are made here from the shipped face photo and speech."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import soundfile as sf
import torch

from dck_talking.audio import load_audio
from dck_talking.data import PairDataset, swap_mouth, visemes
from dck_talking.data import phones as phones_lib
from dck_talking.data.phones import Phone
from dck_talking.data.prepare import crop_frame, nearest_filled, prepare
from dck_talking.data.head import motion_homography
from dck_talking.data.render import MouthRig, lip_gap
from dck_talking.data.retime import retime
from dck_talking.cli import build_parser
from dck_talking.data.synth import photo_frames, plan, synth
from dck_talking.errors import DCKError
from dck_talking.examples import FACE, SPEECH
from dck_talking.face import FaceTracker, LandmarkDetector
from dck_talking.image import read_image
from dck_talking.video import VideoWriter

FPS, SIZE = 25, 64

needs_espeak = pytest.mark.skipif(not phones_lib.espeak_available(), reason="espeak-ng is not installed")


def write_video(path: Path, frames: list[np.ndarray], audio: np.ndarray | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    with VideoWriter(path, w, h, FPS, audio=audio, comment="test input") as writer:
        for frame in frames:
            writer.write(frame)
    return path


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    image = read_image(FACE)  # 512 x 600
    return np.ascontiguousarray(image[::2, ::2])  # 256 x 300: fast to track


@pytest.fixture(scope="module")
def videos(tmp_path_factory, photo) -> Path:
    """Two good clips of one speaker (one with 2 faceless frames of 30) and four bad ones."""
    root = tmp_path_factory.mktemp("videos")
    speech = load_audio(SPEECH)
    moving = list(photo_frames(photo, 30, FPS, seed=1))
    blank = np.full_like(photo, 90)
    with_gaps = [blank if i in (10, 11) else f for i, f in enumerate(moving)]
    write_video(root / "speaker1" / "a.mp4", with_gaps, speech[:19200])
    write_video(root / "speaker1" / "b.mp4", moving[::-1], speech[16000:35200])
    write_video(root / "bad" / "no_sound.mp4", moving[:20], None)
    write_video(root / "bad" / "no_face.mp4", [blank] * 20, speech[:12800])
    write_video(root / "bad" / "short.mp4", moving[:5], speech[:3200])
    (root / "bad" / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return root


@pytest.fixture(scope="module")
def prepared(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    return out, prepare(videos, out, size=SIZE, workers=1, progress=False)


def test_prepare_writes_clips_and_lists_bad_ones(prepared):
    out, summary = prepared
    assert sorted(r.clip_id for r in summary.done) == ["speaker1__a", "speaker1__b"]
    reasons = {Path(r.source).stem: r.reason for r in summary.skipped}
    assert set(reasons) == {"no_sound", "no_face", "short", "corrupt"}
    assert "no sound" in reasons["no_sound"] and "no face" in reasons["no_face"]
    assert "too short" in reasons["short"] and reasons["corrupt"]
    clip = out / "clips" / "speaker1__a"
    meta = json.loads((clip / "meta.json").read_text())
    assert meta["fps"] == FPS and meta["frames"] == 30 and meta["size"] == SIZE
    assert meta["identity"] == "speaker1" and meta["group"] is None and meta["filled"] == 2
    frames = np.load(clip / "frames.npy", mmap_mode="r")
    assert frames.dtype == np.uint8 and frames.shape == (30, SIZE, SIZE, 3)
    mel, lips = np.load(clip / "mel.npy"), np.load(clip / "lips.npy")
    assert mel.dtype == np.float32 and mel.shape[0] == 80 and abs(mel.shape[1] - 97) <= 8  # AAC pads a little
    assert lips.dtype == np.float32 and lips.shape == (30, 40, 2)
    assert np.array_equal(frames[10], frames[9]) and np.array_equal(frames[11], frames[12])  # filled
    assert 0.25 * SIZE < lips[:, :, 1].mean() < 0.85 * SIZE  # the mouth sits in the lower crop
    index = json.loads((out / "index.json").read_text())
    assert [c["id"] for c in index["clips"]] == ["speaker1__a", "speaker1__b"]
    assert len(index["skipped"]) == 4 and str(summary).count("\n  skipped ") == 4


def test_prepare_crops_match_inference(videos, prepared):
    """The crops are the tracker's + warp_to_crop's, as the inference pipeline makes them."""
    out, _ = prepared
    from dck_talking.video import iter_frames

    frames = np.load(out / "clips" / "speaker1__b" / "frames.npy")
    with FaceTracker(SIZE, video=True) as tracker:
        for i, frame in enumerate(iter_frames(videos / "speaker1" / "b.mp4")):
            crop = tracker.track(frame, i * 40)
            if i in (0, 7):
                assert np.array_equal(crop_frame(frame, crop.matrix, SIZE), frames[i])
            if i == 7:
                break


def test_prepare_resumes(videos, prepared):
    out, _ = prepared
    stamp = (out / "clips" / "speaker1__a" / "frames.npy").stat().st_mtime_ns
    again = prepare(videos, out, size=SIZE, workers=1, progress=False)
    assert not again.done and len(again.existing) == 2 and len(again.skipped) == 4
    assert (out / "clips" / "speaker1__a" / "frames.npy").stat().st_mtime_ns == stamp
    assert not [p for p in (out / "clips").iterdir() if p.name.startswith(".")]


def test_prepare_paired_videos_become_groups(tmp_path, photo):
    """One's own pairs (same head motion, different speech): VIDEOS/<group>/<speech>.mp4."""
    speech = load_audio(SPEECH)
    moving = list(photo_frames(photo, 20, FPS, seed=2))
    write_video(tmp_path / "pairs" / "take1" / "dub_a.mp4", moving, speech[:12800])
    write_video(tmp_path / "pairs" / "take1" / "dub_b.mp4", moving, speech[16000:28800])
    summary = prepare(tmp_path / "pairs", tmp_path / "out", size=SIZE, workers=1, progress=False, paired=True)
    assert [r.clip_id for r in summary.done] == ["take1"] and summary.done[0].frames == 40
    a, b = (np.load(tmp_path / "out" / "groups" / "take1" / n / "frames.npy") for n in ("dub_a", "dub_b"))
    assert a.shape == b.shape == (20, SIZE, SIZE, 3)
    assert np.abs(a.astype(int) - b).mean() < 2  # the same frames (up to video coding), the same crops
    meta = json.loads((tmp_path / "out" / "groups" / "take1" / "dub_b" / "meta.json").read_text())
    assert meta["group"] == "take1" and meta["speech"] == "dub_b" and meta["identity"] == "take1"
    dataset = PairDataset([tmp_path / "out"], size=SIZE)
    assert len(dataset) == dataset.n_group_pairs == 2 * 20
    again = prepare(tmp_path / "pairs", tmp_path / "out", size=SIZE, workers=1, progress=False, paired=True)
    assert len(again.existing) == 1


def test_nearest_filled():
    found = np.array([False, True, False, False, True, False])
    assert nearest_filled(found).tolist() == [1, 1, 1, 4, 4, 4]


def test_pairs_from_single_clips(prepared):
    out, _ = prepared
    dataset = PairDataset([out], size=SIZE, seed=3)
    assert len(dataset) == 60 and dataset.n_group_pairs == 0
    item = dataset[17]
    assert item["input"].shape == item["target"].shape == (3, SIZE, SIZE)
    assert item["mel"].shape == (1, 80, 16) and item["lips"].shape == (40, 2)
    for key in ("input", "target", "mel", "lips"):
        assert item[key].dtype == torch.float32
    assert 0 <= item["input"].min() and item["input"].max() <= 1
    kind, _, i, j, _ = dataset.locate(17)
    assert kind == "single" and abs(i - j) >= 5
    again = PairDataset([str(out)], size=SIZE, seed=3)[17]
    assert all(torch.equal(item[k], again[k]) for k in item)
    other = [PairDataset([out], size=SIZE, seed=s).locate(17)[3] for s in range(6)]
    assert len(set(other)) > 1  # the seed picks the mouth's moment
    # Only the mouth region differs between input and target.
    diff = (item["input"] - item["target"]).abs().sum(0)
    assert diff[: SIZE // 3].max() == 0 and diff.max() > 0
    # A different size resizes crops and scales the landmarks.
    big = PairDataset([out], size=2 * SIZE, seed=3)[17]
    assert big["input"].shape == (3, 2 * SIZE, 2 * SIZE)
    assert torch.allclose(big["lips"], item["lips"] * 2)


def test_swap_mouth_keeps_the_rest():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 255, (2, 128, 128, 3), dtype=np.uint8)
    lips = np.stack([np.linspace(44, 84, 40), np.full(40, 90.0)], 1).astype(np.float32)
    out = swap_mouth(a, b, lips, lips)
    assert np.array_equal(out[:40], a[:40]) and not np.array_equal(out[85:95, 50:80], a[85:95, 50:80])


def test_visemes_coarticulation_and_bilabial_closure():
    assert visemes.symbols("aɪ") == ["a", "ɪ"] and visemes.symbols("AY") == ["a", "ɪ"]
    assert visemes.symbols("tʃ") == ["tʃ"] and visemes.symbols("ɜː") == ["ɜ"] and visemes.symbols("") == []
    phones = [Phone(0.0, 0.2, ""), Phone(0.2, 0.4, "ɑ"), Phone(0.4, 0.45, "m"), Phone(0.45, 0.7, "ɑ"),
              Phone(0.7, 0.72, "P"), Phone(0.72, 0.9, "IY"), Phone(0.9, 1.2, "")]
    track = visemes.track(phones, 30, 25.0)
    assert track.openness[track.closed].max() == 0.0
    assert track.closed[10] and track.closed[round(0.71 * 25)]  # inside "m", nearest frame to the short "P"
    assert track.openness[7] > 0.6 and track.openness[1] < 0.1  # open vowel, silence
    assert track.spread[21] > 0.3  # /i/ spreads the lips
    assert track.as_array().shape == (30, 3)


@pytest.fixture(scope="module")
def rig_face():
    image = read_image(FACE)
    with FaceTracker(256, video=False) as tracker:
        crop = tracker.track(image, 0)
    return crop_frame(image, crop.matrix, 256), crop.landmarks


def test_mouth_openness_drives_the_measured_lip_gap(rig_face):
    """MediaPipe, run on the rendered crops, sees the mouth open as far as the viseme asked
    (Pearson r >= 0.8), and closed lips at openness 0 (bilabials)."""
    crop, landmarks = rig_face
    rig = MouthRig(landmarks, crop)
    wanted, measured = [], []
    with LandmarkDetector(num_faces=1, video=False) as detector:
        for openness, spread in [(0.0, 0.0), (0.1, 0.4), (0.25, -0.8), (0.4, 0.0), (0.55, 0.5), (0.7, -0.4),
                                 (0.85, 0.0), (1.0, 0.2)]:
            image, moved = rig.render(crop, landmarks, openness, spread)
            assert abs(lip_gap(moved) - 0.45 * openness) < 0.02  # the driven landmarks
            faces = detector.detect(image)
            wanted.append(openness)
            measured.append(lip_gap(faces[0].landmarks[:, :2]))
    assert np.corrcoef(wanted, measured)[0, 1] >= 0.8
    assert measured[0] < 0.05 and measured[-1] > 0.25


def test_head_turns_about_its_own_centre():
    """A head turned by yaw, pitch and roll keeps its centre where it was (the camera does not pan),
    while points beside it move; so a tightly framed portrait's face stays in the picture."""
    center = np.array([300.0, 340.0])
    matrix = motion_homography(np.array([12.0, -6.0, 3.0, 0.0, 0.0, 0.0]), center, face_width=240.0)
    moved = cv2.perspectiveTransform(np.array([[center, center + [120, 120]]]), matrix)[0]
    np.testing.assert_allclose(moved[0], center, atol=1e-6)
    assert np.abs(moved[1] - center - [120, 120]).max() > 5
    shifted = cv2.perspectiveTransform(center[None, None], motion_homography(np.array([0, 0, 0, 0.1, -0.05, 0.0]),
                                                                             center, face_width=240.0))[0, 0]
    np.testing.assert_allclose(shifted - center, [24.0, -12.0], atol=1e-6)  # shifts are fractions of the width


def test_photo_motion_keeps_a_tightly_framed_face_in_every_frame(photo):
    """The bundled portrait leaves 70 px beside a 245 px face: every frame of its head motion has the face
    (when the camera panned instead, 9 of these 25 frames lost it and `adapt` stopped)."""
    frames = list(photo_frames(photo, 25, FPS, seed=1826701615))
    with FaceTracker(SIZE, video=True) as tracker:
        assert all(tracker.track(frame, i * 40) is not None for i, frame in enumerate(frames))


def test_synth_groups_share_head_motion(tmp_path):
    pytest.importorskip("pocketsphinx")  # phones of the recording
    out = tmp_path / "synth"
    summary = synth([FACE], out, speech=[SPEECH], groups=1, speeches_per_group=2, seconds=1.2, size=SIZE,
                    workers=1, progress=False)
    assert len(summary.done) == 1 and summary.clips == 2
    group = next((out / "groups").iterdir())
    clips = sorted(p for p in group.iterdir())
    assert [c.name for c in clips] == ["s00", "s01"]
    metas = [json.loads((c / "meta.json").read_text()) for c in clips]
    assert {m["frames"] for m in metas} == {30} and {m["group"] for m in metas} == {group.name}
    assert metas[0]["identity"] == metas[1]["identity"] == "face" and metas[0]["size"] == SIZE
    a, b = (np.load(c / "frames.npy") for c in clips)
    assert a.shape == b.shape == (30, SIZE, SIZE, 3)
    # Same crops (identity, head motion) except around the mouth; the mouths differ.
    assert np.array_equal(a[:, : int(0.4 * SIZE)], b[:, : int(0.4 * SIZE)])
    assert not np.array_equal(a, b)
    assert not np.array_equal(a[0], a[-1])  # the head moves
    for c in clips:
        v = np.load(c / "visemes.npy")
        assert v.shape == (30, 4) and v[:, 3].all() and np.load(c / "lips.npy").shape == (30, 40, 2)
        assert np.load(c / "mel.npy").shape == (80, 1.2 * 16000 // 200 + 1)
        assert json.loads((c / "phones.json").read_text())
    index = json.loads((out / "index.json").read_text())
    assert index["groups"][0]["speeches"] == ["s00", "s01"] and index["groups"][0]["complete"]
    assert [p.name for p in (out / "cache" / "phones").iterdir()] != []
    # Re-running resumes; an unreadable recording given beside is left out, not counted as a group,
    # and listed in the index as not worth retrying. The sampler pairs the two clips both ways.
    (tmp_path / "broken.wav").write_bytes(b"not a wave file")
    again = synth([FACE], out, speech=[SPEECH, tmp_path / "broken.wav"], groups=1, speeches_per_group=2,
                  seconds=1.2, size=SIZE, workers=1, progress=False)
    assert len(again.existing) == 1 and not again.skipped and [Path(r.face).name for r in again.left_out] == ["broken.wav"]
    assert "0 skipped" in str(again) and f"\n  left out {tmp_path / 'broken.wav'}: " in str(again)
    index = json.loads((out / "index.json").read_text())
    assert [(Path(s["source"]).name, s["retry"]) for s in index["skipped"]] == [("broken.wav", False)]
    dataset = PairDataset([out], size=SIZE)
    assert len(dataset) == dataset.n_group_pairs == 2 * 30
    item = dataset[33]
    kind, _, x, y, frame = dataset.locate(33)
    assert (kind, x, y, frame) == ("group", 1, 0, 3)
    assert torch.equal(item["input"], torch.from_numpy(b[3]).permute(2, 0, 1).float() / 255)
    assert torch.equal(item["target"], torch.from_numpy(a[3]).permute(2, 0, 1).float() / 255)
    assert torch.equal(item["lips"], torch.from_numpy(np.load(clips[0] / "lips.npy")[3]))


@needs_espeak
def test_espeak_phones_and_text_groups(tmp_path):
    wav, phones = phones_lib.speak("Bob made a map.")
    assert wav.dtype == np.float32 and 0.5 < len(wav) / 16000 < 3
    names = [p.name for p in phones]
    assert "b" in names and "m" in names and "p" in names
    assert all(p.end > p.start for p in phones) and phones[-1].end <= len(wav) / 16000 + 1e-6
    summary = synth([FACE], tmp_path, text=["Bob made a map.", "Please pass the bread."], groups=1,
                    speeches_per_group=2, seconds=1.0, size=SIZE, workers=1, progress=False)
    assert summary.clips == 2
    meta = json.loads((tmp_path / "groups" / summary.done[0].group_id / "s00" / "meta.json").read_text())
    assert meta["phones_from"] == "espeak-ng" and meta["speech_source"].startswith("espeak-ng:")


def test_pocketsphinx_phones_of_a_recording():
    pytest.importorskip("pocketsphinx")
    wav = load_audio(SPEECH)
    phones, method = phones_lib.align(wav)
    assert method == "pocketsphinx-phones" and len(phones) > 10
    assert phones[0].start == 0 and phones[-1].end <= len(wav) / 16000 + 1e-6


def syllables(start: float, count: int, length: float = 0.15) -> list[Phone]:
    """An open vowel and a closed /m/ by turns, `count` of each, from `start`."""
    return [Phone(start + k * length, start + (k + 1) * length, "AA" if k % 2 == 0 else "M") for k in range(2 * count)]


def test_retime_puts_each_phrase_back_on_its_sound():
    """Voiced sound only during the vowels of two phrases; the phones of the first phrase are 100 ms
    early, those of the second 60 ms late: each phrase lands where the in-step phones land (within
    a mel step), names and order kept, with silences filling the pauses. The in-step phones move
    less than a video frame (40 ms): later, as this sound starts and stops at once, where the mouth
    drawn from phones opens a little before the vowel sounds."""
    rate, seconds = 16000, 4.0
    truth = ([Phone(0.0, 0.5, "")] + syllables(0.5, 4) + [Phone(1.7, 2.3, "")] + syllables(2.3, 4)
             + [Phone(3.5, 4.0, "")])
    t = np.arange(int(rate * seconds)) / rate
    voiced = np.zeros_like(t)
    for p in truth:
        if p.name == "AA":
            voiced[(t >= p.start) & (t < p.end)] = 1.0
    wav = (voiced * sum(np.sin(2 * np.pi * 150 * h * t) for h in range(1, 20)) / 20).astype(np.float32)
    heard = [p.shifted(-0.1) if 0.4 < p.start < 1.7 else p.shifted(0.06) if 2.2 < p.start < 3.5 else p for p in truth]
    fixed, kept = retime(heard, wav), retime(truth, wav)
    speech_fixed, speech_kept, speech_truth = ([p for p in x if p.name] for x in (fixed, kept, truth))
    assert [p.name for p in speech_fixed] == [p.name for p in speech_truth]
    assert max(abs(a.start - b.start) for a, b in zip(speech_fixed, speech_kept)) <= 0.0125 + 1e-9
    assert max(abs(a.start - b.start) for a, b in zip(speech_kept, speech_truth)) < 0.04
    assert fixed[0].start == 0 and fixed[-1].end == seconds
    assert all(abs(a.end - b.start) < 1e-9 for a, b in zip(fixed, fixed[1:]))  # contiguous, no overlap


def test_synth_leaves_out_recordings_that_are_not_speech(tmp_path):
    """A steady band of noise (a modem signal's loudness never falls) is listed with the reason and
    never drawn; given only such recordings, synth refuses with each one's reason."""
    noise = np.random.default_rng(0).standard_normal(16000 * 5)
    band = (np.fft.rfftfreq(len(noise), 1 / 16000) // 750) == 1  # 750-1500 Hz
    modem = np.fft.irfft(np.fft.rfft(noise) * band)
    sf.write(tmp_path / "modem.wav", (0.3 * modem / np.abs(modem).max()).astype(np.float32), 16000)
    tasks, bad = plan([FACE], speech=[SPEECH, tmp_path / "modem.wav"], groups=2, speeches_per_group=2)
    assert {s.path for t in tasks for s in t.speeches} == {str(SPEECH)}
    assert [Path(r.face).name for r in bad] == ["modem.wav"] and "does not sound like speech" in bad[0].reason
    with pytest.raises(DCKError, match=r"none of the recordings can be used as speech\n.*modem.wav: .* dB from quiet"):
        plan([FACE], speech=[tmp_path / "modem.wav"])


def test_synth_says_why_no_face_source_can_be_read(tmp_path):
    (tmp_path / "notes.txt").write_text("not a face")
    with pytest.raises(DCKError, match=r"face sources can be read\n  .*notes\.txt: not a readable media file"):
        plan([tmp_path / "notes.txt"], speech=[SPEECH])


def test_synth_options_given_twice_add_up():
    args = build_parser().parse_args(["synth", "--faces", "a.jpg", "--faces", "b.jpg", "--speech", "x.wav",
                                      "--speech", "y.wav", "z.wav", "--out", "o"])
    assert args.faces == ["a.jpg", "b.jpg"] and args.speech == ["x.wav", "y.wav", "z.wav"]
