"""AV-HuBERT's manifest: a TSV whose first line is the root folder, then one row per utterance
``id, video, audio, frames, samples`` (paths relative to the root, or absolute). Labels live in a parallel text
file, one line per utterance with one integer per 25 Hz frame. ``avspeech preprocess`` writes this layout, and
manifests prepared for AV-HuBERT (LRS3, VoxCeleb2) read unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from avspeech.errors import InputError
from avspeech.io.atomic import atomic_write_text


@dataclass(frozen=True)
class Utterance:
    id: str
    video: Path | None  # mouth ROI video
    audio: Path | None  # 16 kHz wav
    frames: int
    samples: int


def read_manifest(path: str | Path) -> list[Utterance]:
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise InputError(f"cannot read manifest ({e.strerror})", path) from e
    if not lines:
        raise InputError("manifest is empty (its first line must be the root folder)", path)
    root = Path(lines[0].strip())
    if not root.is_absolute():
        root = (path.parent / root).resolve()
    utts = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.rstrip("\n").split("\t")
        if len(cols) < 5:
            raise InputError(f"line {n} has {len(cols)} columns, expected 5 (id, video, audio, frames, samples)",
                             path)
        uid, video, audio, frames, samples = cols[:5]
        try:
            nf, ns = int(frames), int(samples or 0)
        except ValueError:
            raise InputError(f"line {n}: frames and samples must be integers, got {frames!r}, {samples!r}",
                             path) from None
        utts.append(Utterance(uid, root / video if video else None, root / audio if audio else None, nf, ns))
    return utts


def read_labels(path: str | Path, utterances: Sequence[Utterance]) -> list[np.ndarray]:
    """One int array per utterance, checked against the manifest (same count; frame counts within 1)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise InputError(f"cannot read labels ({e.strerror})", path) from e
    if len(lines) != len(utterances):
        raise InputError(f"{len(lines)} label lines for {len(utterances)} utterances in the manifest", path)
    out = []
    for utt, line in zip(utterances, lines):
        lab = np.array(line.split(), dtype=np.int64)
        if abs(len(lab) - utt.frames) > 1:
            raise InputError(f"{utt.id}: {len(lab)} labels for {utt.frames} frames", path)
        out.append(lab)
    return out


def write_labels(path: str | Path, labels: Sequence[np.ndarray]) -> None:
    atomic_write_text(path, "".join(" ".join(map(str, np.asarray(lab).tolist())) + "\n" for lab in labels))
