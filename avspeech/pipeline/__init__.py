"""The one path from a clip to per-face outputs, shared by ``avspeech separate`` and ``avspeech recognize``.

``tracks``: the clip's face tracks, streamed (ROIs on disk, no landmarks) -> ``chunks``: each track's span cut
into overlapping chunks (:class:`ChunkConfig`), each owning the middle of its overlaps -> a head's step on each
chunk (``avspeech.separation.separate``, ``avspeech.recognition.recognize``) -> ``stitch``: chunk outputs joined
by time (waveforms cross-faded, words kept from the chunk that owns their midpoint) -> ``writers``.
"""
from avspeech.pipeline.chunks import Chunk, chunk_spans, span_chunks
from avspeech.pipeline.config import ChunkConfig
from avspeech.pipeline.provenance import synthetic_note, synthetic_only
from avspeech.pipeline.stitch import CrossFade, merge_words
from avspeech.pipeline.tracks import clip_tracks

__all__ = ["Chunk", "ChunkConfig", "CrossFade", "chunk_spans", "clip_tracks", "merge_words",
           "span_chunks", "synthetic_note", "synthetic_only"]
