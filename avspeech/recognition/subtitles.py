"""SRT subtitles from word timestamps: cues of at most ``max_words`` words, split at pauses over ``max_gap`` s."""
from __future__ import annotations

from typing import Sequence


def srt_time(seconds: float) -> str:
    """``HH:MM:SS,mmm`` (SRT's time format)."""
    ms = int(round(max(seconds, 0.0) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def cues(words: Sequence[dict], max_words: int = 7, max_gap: float = 1.0) -> list[tuple[float, float, str]]:
    out: list[list[dict]] = []
    for w in words:
        if out and len(out[-1]) < max_words and w["start"] - out[-1][-1]["end"] <= max_gap:
            out[-1].append(w)
        else:
            out.append([w])
    return [(c[0]["start"], c[-1]["end"], " ".join(w["word"] for w in c)) for c in out]


def to_srt(items: Sequence[tuple[float, float, str]]) -> str:
    """Numbered SRT blocks from (start, end, text) in time order."""
    blocks = []
    for i, (s, e, text) in enumerate(sorted(items, key=lambda x: (x[0], x[1])), start=1):
        blocks.append(f"{i}\n{srt_time(s)} --> {srt_time(e)}\n{text}\n")
    return "\n".join(blocks)
