"""Preprocessing: face tracks and 96x96 mouth ROIs on a 25 fps grid, 16 kHz mono audio, AV-HuBERT manifests.

In memory (later stages): :class:`Preprocessor`, :func:`preprocess_clip`, :func:`preprocess_file` give
:class:`ClipTracks` of :class:`FaceTrack`. On disk: :func:`preprocess` (the ``avspeech preprocess`` command).
"""
from avspeech.preprocess.config import PreprocessConfig
from avspeech.preprocess.pipeline import ClipTracks, FaceTrack, Preprocessor, preprocess_clip, preprocess_file

__all__ = ["ClipTracks", "FaceTrack", "PreprocessConfig", "Preprocessor", "preprocess_clip", "preprocess_file"]
