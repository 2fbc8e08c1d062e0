"""Example media bundled with the package (licenses in NOTICE): a real face photo and real speech, both
held out of every training set, so the demo shows what a user's own face and voice will get."""

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent / "assets" / "examples"
FACE = EXAMPLES / "face.jpg"  # Joe Biden, 512x600, public domain (US government)
SPEECH = EXAMPLES / "speech.wav"  # 3.5 s of spoken English, "eight of spades four of clubs seven of hearts"
