"""Typed text to speech with espeak-ng, a small system program (`apt-get install espeak-ng`).

Used by the web app so a visitor can type what the face should say. Nothing is downloaded:
without espeak-ng on the PATH, `available()` is False and `synthesize` raises `DCKError`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .errors import DCKError

ESPEAK = "espeak-ng"
DEFAULT_VOICE = "en-us"
TIMEOUT = 60  # seconds for one call


def available() -> bool:
    """True when espeak-ng is installed."""
    return shutil.which(ESPEAK) is not None


def voices() -> list[tuple[str, str]]:
    """The installed voices as (name, code) pairs, e.g. ("English (America)", "en-us"), sorted by
    name; one per code (the first espeak-ng lists)."""
    listing = subprocess.run([ESPEAK, "--voices"], capture_output=True, text=True, check=True,
                             timeout=TIMEOUT).stdout
    # Columns: Pty Language Age/Gender VoiceName File Other-Languages; names use "_" for spaces.
    by_code: dict[str, str] = {}
    for row in (line.split() for line in listing.splitlines()[1:]):
        if len(row) >= 5:
            by_code.setdefault(row[1], row[3].replace("_", " "))
    return sorted((name, code) for code, name in by_code.items())


def synthesize(text: str, path: str | Path, voice: str = DEFAULT_VOICE) -> Path:
    """Speak `text` (UTF-8) with `voice` into the WAV file `path` and return the path."""
    if not available():
        raise DCKError(f"{ESPEAK} is not installed, so typed text cannot be spoken")
    if not text.strip():
        raise DCKError("there is no text to speak")
    path = Path(path)
    # The text goes through stdin, so it can never be read as a command-line option.
    result = subprocess.run([ESPEAK, "-v", voice, "-b", "1", "-w", str(path), "--stdin"], input=text,
                            capture_output=True, text=True, encoding="utf-8", timeout=TIMEOUT)
    if result.returncode != 0 or not path.is_file():
        detail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit code {result.returncode}"
        raise DCKError(f"{ESPEAK} could not speak this text with voice {voice!r}: {detail}")
    return path
