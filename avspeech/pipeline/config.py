"""How a track is cut into chunks for a model: length and overlap, in seconds (the commands' flags)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields


@dataclass(frozen=True)
class ChunkConfig:
    chunk_seconds: float = field(default=10.0, metadata={"help": "model chunk length for long tracks (seconds)"})
    overlap_seconds: float = field(default=1.0, metadata={
        "help": "overlap between consecutive chunks (seconds, at most half a chunk); separation cross-fades it, "
                "recognition keeps each word from the chunk that owns its midpoint"})

    def __post_init__(self):
        if not self.chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be positive, got {self.chunk_seconds}")
        if not 0 <= 2 * self.overlap_seconds <= self.chunk_seconds:
            raise ValueError(f"overlap_seconds {self.overlap_seconds} must be between 0 and half the chunk "
                             f"({self.chunk_seconds} s)")

    def frames(self, fps: float) -> tuple[int, int]:
        """(chunk, overlap) in frames at ``fps``."""
        return max(1, int(round(self.chunk_seconds * fps))), int(round(self.overlap_seconds * fps))


# separation: 10 s chunks overlapping by 1 s, cross-faded (the settings the shipped separator was evaluated with)
SEPARATION_CHUNKS = ChunkConfig(chunk_seconds=10.0, overlap_seconds=1.0)
# recognition: 20 s chunks give the encoder whole sentences of context at a small cost per chunk; a 2 s overlap
# means the chunk that owns a word (up to the middle of the overlap) heard at least 1 s past the cut, longer than
# a word lasts, so the word it keeps was heard whole and with context on both sides
RECOGNITION_CHUNKS = ChunkConfig(chunk_seconds=20.0, overlap_seconds=2.0)


def chunk_arguments(parser: argparse.ArgumentParser, defaults: ChunkConfig) -> None:
    """``--chunk-seconds`` and ``--overlap-seconds`` from the fields of :class:`ChunkConfig` (help from their
    metadata, defaults from a command's ``defaults``)."""
    for f in fields(ChunkConfig):
        value = getattr(defaults, f.name)
        parser.add_argument("--" + f.name.replace("_", "-"), type=float, default=value,
                            help=f"{f.metadata['help']} (default {value:g})")
