"""Example media bundled with the package (licenses in NOTICE): a real face photo and real speech."""

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent / "assets" / "examples"
FACE = EXAMPLES / "face.jpg"  # Grace Hopper, 512x600, public domain (US Navy)
SPEECH = EXAMPLES / "speech.wav"  # 2.99 s of read English (LibriVox, public domain)
