"""Turn the command's INPUT arguments into a sorted, de-duplicated list of clips with stable ids, and shard it.

An INPUT is a media file, a folder (searched recursively for video files) or a text file (``.txt``, ``.lst``,
``.list``) with one path per line (``#`` comments and blank lines skipped; relative paths are relative to the
list's folder). A path that does not exist is kept: processing it fails with a cause, like any bad file.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".flv", ".wmv",
                            ".ts", ".3gp"})
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})


@dataclass(frozen=True)
class ClipInput:
    """One input file and the id its outputs are named by (``/`` separated, no suffix)."""

    path: str
    clip_id: str

    def __str__(self) -> str:  # failures.tsv names the file
        return self.path


def _safe_id(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_./" else "_" for c in text)
    parts = [p for p in keep.split("/") if p not in ("", ".", "..")]
    return "/".join(parts) or "clip"


def _expand(inputs: Iterable[str | Path], exclude: Path | None) -> list[tuple[Path, str]]:
    """(path, proposed id) for every file named by ``inputs``."""
    found: list[tuple[Path, str]] = []
    for raw in inputs:
        p = Path(raw).expanduser()
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if (f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES
                        and not any(part.startswith(".") for part in f.relative_to(p).parts)
                        and not (exclude is not None and exclude in f.resolve().parents)):
                    found.append((f, f.relative_to(p).with_suffix("").as_posix()))
        elif p.suffix.lower() in LIST_SUFFIXES and p.is_file():
            for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                q = Path(line).expanduser()
                q = q if q.is_absolute() else p.parent / q
                found.append((q, q.stem))
        else:
            found.append((p, p.stem))
    return found


def discover(inputs: Sequence[str | Path], exclude: str | Path | None = None) -> list[ClipInput]:
    """All clips named by ``inputs``, sorted by path, each file once, ids unique.

    Ids are the path relative to the folder INPUT (or the file's stem); ids that collide get a short hash of the
    absolute path appended, so they do not depend on which other files are in the batch order.
    ``exclude`` (the output folder) is never searched.
    """
    excl = Path(exclude).resolve() if exclude is not None else None
    by_path: dict[str, str] = {}
    for path, cid in _expand(inputs, excl):
        key = str(path.resolve()) if path.exists() else str(path.absolute())
        by_path.setdefault(key, _safe_id(cid))
    counts: dict[str, int] = {}
    for cid in by_path.values():
        counts[cid] = counts.get(cid, 0) + 1
    clips = []
    for key in sorted(by_path):
        cid = by_path[key]
        if counts[cid] > 1:
            cid = f"{cid}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"
        clips.append(ClipInput(key, cid))
    return clips


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> (i, N) with 0 <= i < N."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard i/N needs 0 <= i < N, got {text!r}")
    return i, n


def shard(clips: Sequence[ClipInput], index: int, count: int) -> list[ClipInput]:
    """The clips of shard ``index`` of ``count``: chosen by a hash of the clip id, so the split does not depend on
    the order of the inputs or on the host, and adding files does not move existing ones between shards."""
    return [c for c in clips
            if int.from_bytes(hashlib.sha1(c.clip_id.encode()).digest()[:8], "big") % count == index]
