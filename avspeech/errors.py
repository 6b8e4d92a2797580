"""Errors a user can act on.

An :class:`InputError` names the offending file (or value) and the cause; the command line prints it without a
traceback and batch commands record it in their failure list and keep going.
"""
from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input that the user must fix: ``path`` names the file (or None), ``cause`` says what is wrong."""

    def __init__(self, cause: str, path: str | Path | None = None):
        self.path = None if path is None else str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}" if self.path else cause)


class UnsafeCheckpointError(InputError):
    """A checkpoint file that pickles a global outside the allowed data types; it was refused before anything
    of it ran. ``refused`` lists the global names (``module.name``) as the file spells them."""

    def __init__(self, cause: str, path: str | Path | None = None, refused: list[str] | tuple[str, ...] = ()):
        self.refused = list(refused)
        super().__init__(cause, path)
