"""Per-chunk outputs joined back on the span's timeline: waveforms cross-faded, words merged by time."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from avspeech.pipeline.chunks import Chunk
from avspeech.timebase import SAMPLES_PER_FRAME


class CrossFade:
    """A span's waveform (n_frames * 640,) float32 from chunk estimates added in order (:meth:`add`).

    Each estimate is weighted by a window that ramps linearly over the overlaps with its neighbours (1 elsewhere);
    the result is the weighted sum normalised by the summed weights, in float64, as if both were accumulated
    over the whole span, but only one chunk's float64 sums are held at a time."""

    def __init__(self, n_frames: int, overlap: int):
        self.n_frames, self.ramp = n_frames, overlap * SAMPLES_PER_FRAME
        self.out = np.zeros(n_frames * SAMPLES_PER_FRAME, np.float32)
        self._pending: tuple[np.ndarray, np.ndarray] | None = None  # sums over the overlap with the next chunk

    def add(self, chunk: Chunk, estimate: np.ndarray) -> None:
        a, b, ramp = chunk.start * SAMPLES_PER_FRAME, chunk.end * SAMPLES_PER_FRAME, self.ramp
        if estimate.shape != (b - a,):
            raise ValueError(f"estimate of {estimate.shape} for a chunk of {b - a} samples")
        w = np.ones(b - a)
        if ramp and chunk.start > 0:
            w[:ramp] = np.linspace(0, 1, ramp + 2)[1:-1]
        last = chunk.end == self.n_frames
        if ramp and not last:
            w[-ramp:] = np.linspace(1, 0, ramp + 2)[1:-1]
        total, weight = w * estimate, w
        if self._pending is not None:
            p_total, p_weight = self._pending
            total[:ramp] += p_total
            weight[:ramp] += p_weight
        keep = b - a if last or not ramp else b - a - ramp
        self.out[a:a + keep] = total[:keep] / np.maximum(weight[:keep], 1e-8)
        self._pending = None if keep == b - a else (total[keep:], weight[keep:])


def merge_words(chunks: Iterable[tuple[float, float, Sequence[dict]]]) -> list[dict]:
    """Words of overlapping chunks on one timeline: from each ``(own_start, own_end, words)`` (seconds; words
    ``{"word", "start", "end"}`` in clip seconds) the words whose midpoint falls in ``[own_start, own_end)``, in
    time order. Owned regions that tile the timeline lose no word and double none that the chunks agree on."""
    out = []
    for own0, own1, words in chunks:
        out += [w for w in words if own0 <= (w["start"] + w["end"]) / 2 < own1]
    return sorted(out, key=lambda w: (w["start"], w["end"]))
