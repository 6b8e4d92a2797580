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
    over the whole span, but only one chunk's float64 sums are held at a time. ``out``: where the waveform goes,
    anything that takes ``out[a:b] = samples`` (e.g. a 1-D :class:`~avspeech.io.arrayfile.ArrayFile`, so a long
    span's waveform is on disk); default a float32 array in memory."""

    def __init__(self, n_frames: int, overlap: int, out=None):
        self.n_frames, self.ramp = n_frames, overlap * SAMPLES_PER_FRAME
        self.out = np.zeros(n_frames * SAMPLES_PER_FRAME, np.float32) if out is None else out
        if len(self.out) != n_frames * SAMPLES_PER_FRAME:
            raise ValueError(f"out holds {len(self.out)} samples for a span of {n_frames * SAMPLES_PER_FRAME}")
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
        self.out[a:a + keep] = (total[:keep] / np.maximum(weight[:keep], 1e-8)).astype(np.float32)
        self._pending = None if keep == b - a else (total[keep:], weight[keep:])


class OnTimeline:
    """A span's samples ``span`` (an array, or anything read by slices such as an
    :class:`~avspeech.io.arrayfile.ArrayFile`) placed at sample ``offset`` of a timeline of ``total`` samples,
    silence elsewhere. Read by slices (``x[a:b]``: float32), never built whole, so the writers can put a long
    clip's per-face waveform into its files a block at a time."""

    def __init__(self, span, offset: int, total: int):
        if offset < 0 or offset + len(span) > total:
            raise ValueError(f"a span of {len(span)} samples at {offset} does not fit a timeline of {total}")
        self.span, self.offset, self.total = span, int(offset), int(total)

    @property
    def shape(self) -> tuple[int]:
        return (self.total,)

    @property
    def ndim(self) -> int:
        return 1

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("OnTimeline is read by contiguous slices")
        a, b, _ = index.indices(self.total)
        b = max(a, b)
        out = np.zeros(b - a, np.float32)
        lo, hi = max(a, self.offset), min(b, self.offset + len(self.span))
        if lo < hi:
            out[lo - a:hi - a] = np.asarray(self.span[lo - self.offset:hi - self.offset], np.float32)
        return out

    def __array__(self, dtype=None, copy=None):
        return self[:] if dtype is None else self[:].astype(dtype)


def merge_words(chunks: Iterable[tuple[float, float, Sequence[dict]]]) -> list[dict]:
    """Words of overlapping chunks on one timeline: from each ``(own_start, own_end, words)`` (seconds; words
    ``{"word", "start", "end"}`` in clip seconds) the words whose midpoint falls in ``[own_start, own_end)``, in
    time order. Owned regions that tile the timeline lose no word and double none that the chunks agree on."""
    out = []
    for own0, own1, words in chunks:
        out += [w for w in words if own0 <= (w["start"] + w["end"]) / 2 < own1]
    return sorted(out, key=lambda w: (w["start"], w["end"]))
