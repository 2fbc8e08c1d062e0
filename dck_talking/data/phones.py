"""Phone timings of speech: espeak-ng's own phonemes where it made the audio, pocketsphinx phone
alignment for real recordings.

- `speak(text)` synthesises text with the espeak-ng library (`libespeak-ng.so.1`, Debian package
  `espeak-ng`) through ctypes and records its phoneme events, so the timings are exactly those the
  synthesiser used (IPA names, any of its 100+ languages).
- `align(wav, transcript)` runs pocketsphinx 5.x (PyPI `pocketsphinx`, bundled US English model):
  forced alignment to a transcript when there is one, phone recognition with its phone language
  model otherwise (ARPAbet names, about 10-40 ms from reference labels on read speech).

A phone is `Phone(start, end, name)` in seconds; `name` is IPA (espeak) or ARPAbet (pocketsphinx),
or "" for silence; `dck_talking.data.visemes` maps both.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal

from ..errors import DCKError

SAMPLE_RATE = 16000
SILENCE = ""


@dataclass(frozen=True)
class Phone:
    start: float
    end: float
    name: str  # IPA (espeak-ng), ARPAbet (pocketsphinx) or "" for silence

    def shifted(self, offset: float) -> Phone:
        return Phone(self.start + offset, self.end + offset, self.name)


# ---------------------------------------------------------------------------------------------
# espeak-ng (library API with phoneme events; the command line only gives timings with mbrola)

_EVENT_PHONEME = 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS_IPA = 0x0001 | 0x0002
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_ESPEAK_RATE = 1


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT from speak_lib.h
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class _Espeak:
    """The espeak-ng library, initialised once per process (it keeps global state)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError:
            raise DCKError("espeak-ng is not installed (apt-get install espeak-ng), so text cannot be spoken") from None
        self.rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INIT_PHONEME_EVENTS_IPA)
        if self.rate <= 0:
            raise DCKError("espeak-ng could not be initialised (is espeak-ng-data installed?)")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._collect)  # kept referenced: the library calls it
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    def _collect(self, wav, n, events) -> int:
        if wav and n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != 0:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                name = bytes(event.id.string).split(b"\0")[0].decode("utf-8", "ignore")
                self._events.append((event.sample, name))
            i += 1
        return 0

    def speak(self, text: str, voice: str, rate: int | None) -> tuple[np.ndarray, list[tuple[int, str]]]:
        with self.lock:
            self._chunks, self._events = [], []
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise DCKError(f"espeak-ng has no voice {voice!r}")
            if rate is not None:
                self.lib.espeak_SetParameter(_ESPEAK_RATE, int(rate), 0)
            data = text.encode("utf-8") + b"\0"
            if self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
                raise DCKError(f"espeak-ng could not speak {text[:40]!r}")
            self.lib.espeak_Synchronize()
            wav = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return wav, self._events


_espeak: _Espeak | None = None


def espeak_available() -> bool:
    """True when the espeak-ng library can be loaded."""
    try:
        _get_espeak()
    except DCKError:
        return False
    return True


def _get_espeak() -> _Espeak:
    global _espeak
    if _espeak is None:
        _espeak = _Espeak()
    return _espeak


def speak(text: str, voice: str = "en-us", rate: int | None = None) -> tuple[np.ndarray, list[Phone]]:
    """Synthesise `text` with espeak-ng: (16 kHz mono float32 audio, its phones with timings).

    `voice` is any espeak-ng voice name, optionally with a variant (`"en-us+f3"`); `rate` is in
    words per minute (80-450, default 175). Pauses come out as silence phones ("").
    """
    engine = _get_espeak()
    pcm, events = engine.speak(text, voice, rate)
    wav = scipy.signal.resample_poly(pcm.astype(np.float32) / 32768.0, SAMPLE_RATE, engine.rate).astype(np.float32)
    duration = len(pcm) / engine.rate
    phones: list[Phone] = []
    for k, (sample, name) in enumerate(events):
        start = sample / engine.rate
        end = events[k + 1][0] / engine.rate if k + 1 < len(events) else duration
        if end <= start:
            continue
        name = name.strip()
        if name.startswith("_"):  # pause mnemonics in non-IPA mode
            name = SILENCE
        phones.append(Phone(start, min(end, duration), name))
    if phones and phones[0].start > 0:
        phones.insert(0, Phone(0.0, phones[0].start, SILENCE))
    return wav, _merge_silence(phones)


# ---------------------------------------------------------------------------------------------
# pocketsphinx

_NOISE = {"SIL", "+NSN+", "+SPN+", "+BREATH+", "+COUGH+", "+SMACK+", "+UM+", "+UH+", "NSN", "SPN"}
_decoders: dict[str, object] = {}


def _decoder(kind: str):
    """A pocketsphinx decoder per kind ("align" or "phones"), created once per process."""
    if kind not in _decoders:
        try:
            from pocketsphinx import Decoder, get_model_path
        except ImportError:
            raise DCKError("pocketsphinx is not installed (pip install pocketsphinx)") from None
        model = Path(get_model_path()) / "en-us"
        if kind == "align":
            _decoders[kind] = Decoder(hmm=str(model / "en-us"), dict=str(model / "cmudict-en-us.dict"), lm=None,
                                      loglevel="FATAL")
        else:
            _decoders[kind] = Decoder(hmm=str(model / "en-us"), allphone=str(model / "en-us-phone.lm.bin"), lm=None,
                                      loglevel="FATAL", beam=1e-20, pbeam=1e-20, lw=2.0)
    return _decoders[kind]


def _pcm(wav: np.ndarray) -> bytes:
    return (np.clip(np.asarray(wav, np.float32), -1.0, 1.0) * 32767).astype("<i2").tobytes()


def _words(transcript: str, decoder) -> list[str]:
    """Transcript -> dictionary words (lower case, punctuation dropped, unknown words left out)."""
    words = re.findall(r"[a-z']+", transcript.lower().replace("</s>", " ").replace("<s>", " "))
    return [w for w in words if decoder.lookup_word(w) is not None]


def align(wav: np.ndarray, transcript: str | None = None) -> tuple[list[Phone], str]:
    """Phones of 16 kHz mono speech with pocketsphinx (US English acoustic model).

    With a transcript: forced alignment of its words (words missing from the CMU dictionary are
    dropped; if the alignment fails or is partial, phone recognition is used instead). Without:
    phone recognition with the bundled phone language model. Times have the decoder's 10 ms
    resolution. Returns (phones, method): "pocketsphinx-align" or "pocketsphinx-phones".
    """
    pcm = _pcm(wav)
    duration = len(wav) / SAMPLE_RATE
    phones: list[Phone] | None = None
    if transcript:
        decoder = _decoder("align")
        words = _words(transcript, decoder)
        if words:
            try:
                decoder.set_align_text(" ".join(words))
                for _ in range(2):  # word alignment, then the phone-level second pass
                    decoder.start_utt()
                    decoder.process_raw(pcm, full_utt=True)
                    decoder.end_utt()
                    if _ == 0:
                        decoder.set_alignment()
                alignment = decoder.get_alignment()
                aligned = [w for w in alignment if not w.name.startswith("<")] if alignment is not None else []
                if len(aligned) == len(words):  # a partial alignment (decoder gave up) is not used
                    phones = [Phone(p.start / 100, (p.start + p.duration) / 100, _arpabet(p.name))
                              for word in alignment for p in word]
            except RuntimeError:
                phones = None
    method = "pocketsphinx-align"
    if not phones:
        method = "pocketsphinx-phones"
        decoder = _decoder("phones")
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        phones = [Phone(s.start_frame / 100, (s.end_frame + 1) / 100, _arpabet(s.word)) for s in decoder.seg()]
    phones = [Phone(p.start, min(p.end, duration), p.name) for p in phones if p.start < duration]
    return _merge_silence([p for p in phones if p.end > p.start]), method


def _arpabet(name: str) -> str:
    name = name.upper().rstrip("0123456789")
    return SILENCE if name in _NOISE or name.startswith("+") else name


def _merge_silence(phones: list[Phone]) -> list[Phone]:
    merged: list[Phone] = []
    for p in phones:
        if merged and p.name == SILENCE and merged[-1].name == SILENCE:
            merged[-1] = Phone(merged[-1].start, p.end, SILENCE)
        else:
            merged.append(p)
    return merged


# ---------------------------------------------------------------------------------------------
# transcripts next to recordings

def find_transcript(path: str | Path) -> str | None:
    """The transcript of a recording: `NAME.txt` or `NAME.lab` beside it, or its line in a
    `transcription` / `*.transcription` file in the same folder (CMU Sphinx test-data format:
    `<s> words </s> (NAME)`)."""
    path = Path(path)
    for suffix in (".txt", ".lab"):
        sidecar = path.with_suffix(suffix)
        if sidecar.is_file():
            return sidecar.read_text(encoding="utf-8", errors="ignore").strip() or None
    for listing in [path.parent / "transcription", *path.parent.glob("*.transcription")]:
        if listing.is_file():
            for line in listing.read_text(encoding="utf-8", errors="ignore").splitlines():
                match = re.match(r"\s*(.*?)\s*\(([^()]+)\)\s*$", line)
                if match and match.group(2) == path.stem:
                    return match.group(1).replace("<s>", "").replace("</s>", "").strip() or None
    return None


def phones_to_json(phones: list[Phone]) -> list[list]:
    return [[round(p.start, 4), round(p.end, 4), p.name] for p in phones]
