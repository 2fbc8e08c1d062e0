"""The speech corpus (`dck-talking corpus`): a tiny one from espeak-ng sentences and a recording made
here, read back through `load_corpus`; resuming, whole-voice splits, CMU ARCTIC refused."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from dck_talking.cli import build_parser
from dck_talking.data import corpus as corpus_lib
from dck_talking.data import phones as phones_lib
from dck_talking.data import visemes
from dck_talking.data.corpus import Item, Voice, VoiceTask, build, load_corpus
from dck_talking.data.phones import SAMPLE_RATE, SILENCE, Phone
from dck_talking.data.synth import SENTENCES
from dck_talking.errors import DCKError

needs_espeak = pytest.mark.skipif(not phones_lib.espeak_available(), reason="espeak-ng is not installed")
SPOKEN = "Please bring a warm blanket and a bottle of water for the boat trip."


def espeak_task(name: str = "en-us+f3", split: str = "train") -> VoiceTask:
    voice = Voice(f"espeak-ng/{name}", "espeak-ng", name, "en-us", "GPL-3.0-or-later", split, "tts", "full")
    items = [Item(f"{k:05d}", text=text) for k, text in enumerate(SENTENCES[:2])]
    return VoiceTask(voice, items, options={"voice": name})


def recording_task(folder: Path, split: str = "eval") -> VoiceTask:
    """A 'human' recording made here: espeak-ng speech at 8 kHz with its transcript beside it, and a
    steady tone, which is not speech."""
    wav, _ = phones_lib.speak(SPOKEN, "en-us+f2")  # a voice pocketsphinx aligns
    speech = folder / "speaker" / "hello.wav"
    speech.parent.mkdir(parents=True)
    sf.write(speech, scipy.signal.resample_poly(wav, 1, 2), SAMPLE_RATE // 2)
    speech.with_suffix(".txt").write_text(SPOKEN)
    tone = folder / "speaker" / "tone.wav"
    sf.write(tone, 0.3 * np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE) / SAMPLE_RATE), SAMPLE_RATE)
    voice = Voice("test/speaker", "test", "speaker", "en", "made by the test", split, "human", "telephone")
    items = [Item(p.stem, text=phones_lib.find_transcript(p), path=str(p)) for p in (speech, tone)]
    return VoiceTask(voice, items)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    pytest.importorskip("pocketsphinx")  # phones of the recording
    if not phones_lib.espeak_available():
        pytest.skip("espeak-ng is not installed")
    root = tmp_path_factory.mktemp("corpus")
    summary = build(root / "corpus", [espeak_task(), recording_task(root / "recordings")])
    assert "2 voices, 3 utterances" in str(summary)
    assert [r for _, r in summary.left_out["test/speaker"]][0].startswith("the recording does not sound like speech")
    return root / "corpus"


def test_tiny_corpus_round_trip(tiny):
    index = json.loads((tiny / "index.json").read_text())
    assert index["version"] == 1
    assert index["voices"]["espeak-ng/en-us+f3"] == {"engine": "espeak-ng", "name": "en-us+f3", "language": "en-us",
                                                     "licence": "GPL-3.0-or-later", "split": "train", "kind": "tts",
                                                     "band": "full"}
    corpus = load_corpus(tiny)
    assert sorted(u.phone_source for u in corpus.utterances) == ["forced-alignment", "synthesiser", "synthesiser"]
    for utt in corpus.utterances:
        info = sf.info(utt.audio_path)
        assert (info.format, info.samplerate, info.channels) == ("FLAC", SAMPLE_RATE, 1)
        wav = corpus.audio(utt)
        assert wav.dtype == np.float32 and len(wav) == pytest.approx(utt.seconds * SAMPLE_RATE, abs=SAMPLE_RATE / 1000)
        phones = corpus.phones(utt)
        assert all(isinstance(p, Phone) and p.end > p.start for p in phones)
        assert phones[0].start == 0.0 and phones[-1].end == pytest.approx(utt.seconds, abs=0.01)
        named = [p for p in phones if p.name != SILENCE]
        assert named and all(visemes.symbols(p.name) for p in named)
        assert any(p.name in ("m", "b", "p", "M", "B", "P") for p in named)  # bilabials survive the round trip
        assert utt.text
    recording = next(u for u in corpus.utterances if u.voice == "test/speaker")
    assert recording.text == SPOKEN and recording.split == "eval"


def test_splits_hold_whole_voices(tiny):
    corpus = load_corpus(tiny)
    for utt in corpus.utterances:
        assert utt.split == corpus.voices[utt.voice]["split"]
    train, held = corpus.split("train"), corpus.split("eval")
    assert set(train.voices) == {"espeak-ng/en-us+f3"} and set(held.voices) == {"test/speaker"}
    assert len(train.utterances) == 2 and len(held.utterances) == 1
    assert train.hours() + held.hours() == pytest.approx(corpus.hours())


def test_resume_skips_finished_utterances(tiny, tmp_path, monkeypatch):
    stamps = {p: p.stat().st_mtime_ns for p in (tiny / "audio").iterdir()}
    removed = next(p for p in stamps if "espeak" in p.name)
    removed.unlink()
    calls = []
    speak = corpus_lib.ENGINES["espeak-ng"]
    monkeypatch.setitem(corpus_lib.ENGINES, "espeak-ng", lambda *a: calls.append(a[0].key) or speak(*a))
    summary = build(tiny, [espeak_task(), recording_task(tmp_path)])
    assert len(calls) == 1 and removed.is_file()  # only the missing one was spoken again
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != removed)
    assert len(summary.utterances) == 3 and len(load_corpus(tiny).utterances) == 3


@needs_espeak
def test_interrupted_run_resumes_utterance_by_utterance(tmp_path, monkeypatch):
    speak, calls = corpus_lib.ENGINES["espeak-ng"], []

    def stop_after_first(item, voice, options):
        if calls:
            raise KeyboardInterrupt
        calls.append(item.key)
        return speak(item, voice, options)

    monkeypatch.setitem(corpus_lib.ENGINES, "espeak-ng", stop_after_first)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path, [espeak_task()])
    assert not (tmp_path / "index.json").exists() and calls == ["00000"]
    monkeypatch.setitem(corpus_lib.ENGINES, "espeak-ng", lambda *a: calls.append(a[0].key) or speak(*a))
    summary = build(tmp_path, [espeak_task()])
    assert calls == ["00000", "00001"] and len(summary.utterances) == 2
    assert not list((tmp_path / ".journal").iterdir())  # index.json holds them now


def test_synthesiser_budget_and_deterministic_texts(tmp_path):
    task = espeak_task("en-us")
    task.items = [Item(f"{k:05d}", text=t) for k, t in enumerate(SENTENCES)]
    task.seconds = 5.0
    if not phones_lib.espeak_available():
        pytest.skip("espeak-ng is not installed")
    summary = build(tmp_path, [task])
    seconds = [u["seconds"] for u in summary.utterances]
    assert sum(seconds) >= 5.0 and sum(seconds[:-1]) < 5.0
    pool = [f"Sentence number {k} is here." for k in range(50)]
    first = corpus_lib._text_items(pool, np.random.default_rng([0, 3]), (0.9, 1.1))
    again = corpus_lib._text_items(pool, np.random.default_rng([0, 3]), (0.9, 1.1))
    assert [(i.text, i.rate) for i in first] == [(i.text, i.rate) for i in again]


def test_cmu_arctic_voices_are_refused(tmp_path):
    for name in ("slt", "cmu_us_slt_arctic_hts", "awb_time", "us-rms", "bdl", "arctic_a0001"):
        assert corpus_lib.reserved(name), name
    for name in ("kal16", "kal_diphone", "en-us+m3", "font_small", "sense-and-sensibility-reader"):
        assert not corpus_lib.reserved(name), name
    slt = Voice("flite/slt", "flite", "slt", "en-us", "CMU", "train", "tts", "full")
    with pytest.raises(DCKError, match="reserved"):
        build(tmp_path, [VoiceTask(slt, [Item("0", text="hello")], options={"voice": "slt"})])
    recording = Voice("test/someone", "test", "someone", "en", "-", "eval", "human", "full")
    with pytest.raises(DCKError, match="reserved"):
        build(tmp_path, [VoiceTask(recording, [Item("a", path="/data/cmu_us_bdl_arctic/wav/arctic_a0001.wav")])])
    assert not (tmp_path / "index.json").exists()


def test_default_plan_splits_and_sources():
    tasks, notes = corpus_lib.plan(hours=1.0, seed=0)
    corpus_lib.check_tasks(tasks)  # no reserved voice, no duplicate, known splits
    voices = {t.voice.id: t.voice for t in tasks}
    train_names = {v.name for v in voices.values() if v.split == "train"}
    for voice in voices.values():
        if voice.split == "eval" and voice.kind == "tts":
            assert voice.name not in train_names and voice.name.split("+")[0] not in train_names
    if corpus_lib.CODEC2.is_dir():
        harvard = voices["codec2-examples/harvard"]
        assert harvard.split == "eval" and harvard.band == "telephone"
        assert any(v.split == "train" for k, v in voices.items() if k.startswith("codec2-examples/"))
    for task in tasks:
        if task.voice.engine.startswith("fillets-ng-data") or task.voice.engine == "asterisk":
            assert task.voice.split == "train"
    synthesised = [t for t in tasks if t.seconds is not None and t.voice.split == "train"]
    if synthesised:
        assert sum(t.seconds for t in synthesised) == pytest.approx(3600.0)


def test_asterisk_prompt_list(tmp_path):
    listing = tmp_path / "core-sounds-en.txt.gz"
    with gzip.open(listing, "wt", encoding="utf-8") as f:
        f.write("; Core Asterisk Sounds in English\n\nactivated: Activated.\nbeep: [this is a simple beep tone]\n"
                "digits/1: One.\nconf-menu: Press 1 to mute, or # to exit.\nyear: The year 2010.\n")
    english = corpus_lib.asterisk_prompts(listing, "en")
    assert english == {"activated": "Activated.", "digits/1": "One.",
                       "conf-menu": "Press one to mute, or pound to exit."}
    assert corpus_lib.asterisk_prompts(listing, "fr")["year"] == "The year 2010."  # espeak-ng reads numbers
    assert corpus_lib.asterisk_prompts(tmp_path / "missing.txt.gz", "en") == {}


def test_festival_phones_map_to_viseme_symbols():
    assert corpus_lib.festival_phone("pau", "radio") == SILENCE
    assert corpus_lib.festival_phone("ax", "radio") == "ə" and corpus_lib.festival_phone("m", "radio") == "M"
    assert corpus_lib.festival_phone("c~", "czech") == "tʃ" and corpus_lib.festival_phone("a:", "czech") == "aː"
    assert corpus_lib.festival_phone("a1", "italian") == "a" and corpus_lib.festival_phone("pp", "msu_ru") == "p"
    for phoneset, table in corpus_lib._FESTIVAL_IPA.items():
        for name in table:
            assert visemes.symbols(corpus_lib.festival_phone(name, phoneset)), (phoneset, name)


def test_fortune_cleaning_keeps_prose_only():
    assert corpus_lib._clean("A penny saved is a penny earned.\n\t\t-- Benjamin Franklin") == \
        "A penny saved is a penny earned."
    assert corpus_lib._clean("int main() { return 0; }") is None
    assert corpus_lib._clean("Short.") is None


def test_cli_corpus_options():
    args = build_parser().parse_args(["corpus", "--out", "x", "--hours", "0.5", "--workers", "2"])
    assert (args.out, args.hours, args.seed, args.workers) == ("x", 0.5, 0, 2)


def test_pack_speech_from_a_corpus(tiny, tmp_path):
    """Training speech drawn voice by voice, one unheard utterance of each training voice and every
    eval utterance held out."""
    from dck_talking.data.pack import Pack, corpus_speech, write_speech

    items = list(corpus_speech(tiny, hours=1.0, seed=0, augmented=1.0))
    assert [(i.voice, i.train) for i in items] == [("espeak-ng/en-us+f3", True), ("espeak-ng/en-us+f3", False),
                                                   ("test/speaker", False)]
    corpus = load_corpus(tiny)
    untouched = {u.id: corpus.audio(u) for u in corpus.utterances}
    assert not np.array_equal(items[0].wav, untouched[items[0].id])  # made into another voice
    assert np.array_equal(items[2].wav, untouched[items[2].id])  # held-out speech stays as recorded
    chosen = list(corpus_speech(tiny, hours=1.0, seed=0, augmented=1.0, sources=["espeak-*"]))
    assert [(i.id, i.train) for i in chosen] == [(i.id, i.train) for i in items[:2]]
    assert np.array_equal(chosen[0].wav, items[0].wav)  # the same draw as without the other voices
    with pytest.raises(DCKError, match="no voice of flite"):
        corpus_speech(tiny, hours=1.0, sources=["flite"])  # at the call, before anything is written
    write_speech(items, tmp_path / "pack")
    pack = Pack.load(tmp_path / "pack")
    assert list(pack.train) == [True, False, False] and pack.voice_names == ["espeak-ng/en-us+f3", "test/speaker"]


def test_cli_pack_refuses_sources_the_corpus_lacks(tiny, tmp_path, capsys):
    from dck_talking.cli import main

    out = tmp_path / "pack"
    assert main(["pack", "--corpus", str(tiny), "--sources", "flite", "--out", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"dck-talking: error: {tiny}: no voice of flite"]
    assert not out.exists()


def test_corpus_windows_and_the_viseme_table(tiny):
    import torch

    from dck_talking.evaluate_visemes import evaluate_visemes, format_viseme_table
    from dck_talking.model.viseme_predictor import VisemePredictor
    from dck_talking.train_audio import CorpusWindows

    windows = iter(CorpusWindows(tiny, window_lead=8))
    for _ in range(30):
        mel, mouth = next(windows)
        assert mel.shape == (1, 80, 16) and mouth.shape == (3,) and mouth[2] in (0, 1)
    torch.manual_seed(0)
    rows = evaluate_visemes(VisemePredictor(window_lead=8).eval(), tiny)
    assert [(r.voice, r.method) for r in rows] == [("test/speaker", "model"), ("test/speaker", "loudness")]
    assert rows[0].n_bilabials == rows[1].n_bilabials > 0 and rows[0].n_open_vowels > 0
    assert rows[1].correlation > 0.3  # loudness follows the openness of this speech
    table = format_viseme_table(rows)
    assert table.splitlines()[0].startswith("| voice |") and "| test/speaker  | loudness |" in table


def test_plan_sources_keep_texts_and_share_hours():
    if not corpus_lib.phones_lib.espeak_available():
        pytest.skip("espeak-ng is not installed")
    every, _ = corpus_lib.plan(hours=1.0, seed=0)
    only, _ = corpus_lib.plan(hours=1.0, seed=0, sources=["espeak-*"])
    assert only and {t.voice.engine for t in only} == {"espeak-ng"}
    # The same texts for a voice whatever else is chosen; the hours shared among the chosen voices only.
    texts = {t.voice.id: [i.text for i in t.items[:5]] for t in every}
    assert all(texts[t.voice.id] == [i.text for i in t.items[:5]] for t in only)
    assert sum(t.seconds for t in only if t.voice.split == "train") == pytest.approx(3600.0)
    with pytest.raises(DCKError, match="no installed source matches nothing"):
        corpus_lib.plan(hours=1.0, seed=0, sources=["nothing"])


def test_scorecard_grids_on_a_tiny_pack(tiny, tmp_path):
    """Both grids and Table I on the example face (seen) and its mirror image (unseen), speaking the corpus's
    espeak-ng voice (seen) and its held-out recording (unseen); the drawn-visemes baseline's mouth follows the
    phones of speech it has never heard."""
    import cv2

    from dck_talking.baseline import DrawnVisemes
    from dck_talking.data.pack import FaceSource, corpus_speech, write_faces, write_speech
    from dck_talking.evaluate import IDENTITY
    from dck_talking.examples import FACE
    from dck_talking.image import read_image
    from dck_talking.scorecard import format_scorecard, scorecard

    image = read_image(FACE)
    cv2.imwrite(str(tmp_path / "mirror.png"), cv2.cvtColor(np.ascontiguousarray(image[:, ::-1]), cv2.COLOR_RGB2BGR))
    write_faces([FaceSource("a", str(FACE)), FaceSource("b", str(tmp_path / "mirror.png"), "eval")], tmp_path / "pack")
    write_speech(corpus_speech(tiny, hours=1.0, augmented=0.0), tmp_path / "pack")
    card = scorecard({"drawn (no network)": DrawnVisemes()}, tmp_path / "pack", tiny, pairs=4, faces=1, spoken=1,
                     videos=tmp_path / "videos")
    cells = [("train", "train"), ("train", "eval"), ("eval", "train"), ("eval", "eval")]
    assert list(card.pairs) == list(card.spoken) == cells
    for rows in card.pairs.values():
        assert [r.name for r in rows] == ["drawn (no network)", IDENTITY]
        assert rows[1].lmd_change is None and rows[0].lmd_change is not None  # judged against identity
    assert card.faces == {"train": [str(FACE)], "eval": [str(tmp_path / "mirror.png")]}
    assert card.recordings["eval"] == ["test/speaker test-speaker-hello.flac"]
    unseen = card.spoken[("eval", "eval")]["drawn (no network)"]
    assert unseen.phones.correlation > 0.3 and abs(unseen.phones.peak) <= 1
    assert [r.name for r in card.table_one] == ["drawn (no network)", IDENTITY]
    assert card.table_one[0].lmd_change is None
    text = format_scorecard(card)
    assert "| drawn (no network) | unseen | unseen |" in text and "Table I: unseen faces, unseen human voices." in text
    kept = sorted(p.name for p in (tmp_path / "videos" / "drawn-no-network").iterdir())
    assert len(kept) == 4 and "mirror--test-speaker-hello.mp4" in kept
    alone = scorecard({"drawn (no network)": DrawnVisemes()}, tmp_path / "pack", tiny, pairs=4, table_one_only=True)
    assert alone.pairs == alone.spoken == {} and alone.table_one == card.table_one  # the same pairs, the same rows
    assert format_scorecard(alone).startswith("Table I: unseen faces, unseen human voices.")
    with pytest.raises(DCKError, match="not a folder"):  # before any pair or video is rendered
        scorecard({"drawn": DrawnVisemes()}, tmp_path / "pack", tiny, pairs=4, faces=1, spoken=1,
                  videos=tmp_path / "mirror.png")
