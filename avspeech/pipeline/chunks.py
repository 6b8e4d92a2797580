"""A track's span cut into overlapping chunks: which frames each chunk covers and which part of time it owns.

Chunks of ``chunk`` frames start every ``chunk - overlap`` frames; the last one ends at the span's end (it may be
shorter). A chunk *owns* the frames from the middle of its overlap with the previous chunk to the middle of its
overlap with the next one, so the owned regions tile the span without gaps or doubles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from avspeech.timebase import SAMPLES_PER_FRAME


def chunk_spans(n_frames: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) frames of the chunks of a span of ``n_frames``; consecutive ones share ``overlap`` frames."""
    if chunk < 1 or overlap < 0 or 2 * overlap > chunk:
        raise ValueError(f"overlap {overlap} must be at most half the chunk {chunk}")
    spans = []
    for s in range(0, max(n_frames - overlap, 1), chunk - overlap):
        spans.append((s, min(s + chunk, n_frames)))
        if spans[-1][1] == n_frames:
            break
    return spans


@dataclass
class Chunk:
    """One chunk of a track's span: frames ``start .. end - 1`` of the span (``offset`` is the span's first frame
    on the clip's grid), its ``rois`` (end - start, 96, 96) and ``audio`` ((end - start) * 640,) or None, and the
    part of the span it owns, ``own_start .. own_end`` in frames (-inf / inf at the span's ends)."""

    index: int
    start: int
    end: int
    offset: int
    own_start: float
    own_end: float
    rois: np.ndarray
    audio: np.ndarray | None

    @property
    def num_frames(self) -> int:
        return self.end - self.start

    def seconds(self, frame: float, fps: float) -> float:
        """Clip time in seconds of a frame position of the span."""
        return (self.offset + frame) / fps


def span_chunks(rois, audio: np.ndarray | None, chunk: int, overlap: int, offset: int = 0) -> Iterator[Chunk]:
    """The chunks of a span whose ROIs are ``rois`` (L, 96, 96) (an array or anything sliced like one, e.g.
    :class:`~avspeech.io.arrayfile.ArrayFile`) and audio ``audio`` (L * 640,) or None; only one chunk's ROIs are
    read at a time."""
    n = len(rois)
    if audio is not None and audio.shape[0] != n * SAMPLES_PER_FRAME:
        raise ValueError(f"{audio.shape[0]} samples for {n} frames; expected {n * SAMPLES_PER_FRAME}")
    spans = chunk_spans(n, chunk, overlap)
    for i, (s, e) in enumerate(spans):
        own0 = -math.inf if i == 0 else (s + spans[i - 1][1]) / 2
        own1 = math.inf if i == len(spans) - 1 else (spans[i + 1][0] + e) / 2
        seg = None if audio is None else audio[s * SAMPLES_PER_FRAME:e * SAMPLES_PER_FRAME]
        yield Chunk(i, s, e, offset, own0, own1, np.asarray(rois[s:e]), seg)
