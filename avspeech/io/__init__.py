"""File input/output: atomic writes, audio (soundfile) and video (PyAV to write, decord to read)."""
from avspeech.io.atomic import atomic_path, atomic_write_json, atomic_write_text

__all__ = ["atomic_path", "atomic_write_json", "atomic_write_text"]
