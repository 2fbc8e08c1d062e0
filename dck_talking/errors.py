"""Errors that reach the user as one line (the CLI prints them without a traceback)."""

from __future__ import annotations

from pathlib import Path


class DCKError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class InputError(DCKError, ValueError):
    """An input file is missing, unreadable or unsuitable."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class CheckpointError(DCKError, OSError):
    """A checkpoint folder or Hub repo cannot be loaded."""
