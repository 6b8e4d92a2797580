"""Every file avspeech keeps on disk: names, columns and formats, each reader beside its writer.

Preprocessed data (``avspeech preprocess``) uses AV-HuBERT's layout, so manifests prepared for AV-HuBERT (LRS3,
VoxCeleb2) read unchanged and ours are read by AV-HuBERT::

    OUT/manifest.tsv               root folder line, then ``id, video, audio, frames, samples`` per track
    OUT/manifest_video_only.tsv    the same for tracks of clips without an audio stream (audio column empty)
    OUT/video/<clip>/face<k>.mp4   mouth ROI video
    OUT/audio/<clip>/face<k>.wav   16 kHz mono audio over the track's frames
    OUT/tracks/<clip>/face<k>.json the track's per-frame record (compact JSON)
    OUT/clips/<clip>.json          the clip's record (JSON); written last, it marks the clip as done
    OUT/failures.tsv               file, cause (one row per failed input)

Manifest paths are relative to the root folder (or absolute); a relative root is relative to the manifest's
folder. Track ids are ``<clip>/face<k>``. Files parallel to a manifest, one line per manifest row in its order:

- cluster labels (``*.km``): one integer per 25 Hz frame, separated by spaces;
- transcripts (``MANIFEST.wrd``, AV-HuBERT's fine-tuning labels): one line of text per utterance.

Mixture lists (separation) are TSV files with the header ``id utt_a utt_b gain_db`` and one row per mixture
(``utt_*`` are manifest ids, ``gain_db`` the level of A relative to B, three decimals, or up to five for a
published list's gains that have them).

Every writer is atomic (:mod:`avspeech.io.atomic`); every reader raises :class:`~avspeech.errors.InputError`
naming the file, and the line for a malformed row.
"""
from __future__ import annotations

import csv
import functools
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from avspeech.errors import InputError
from avspeech.io.atomic import atomic_write_text

MANIFEST = "manifest.tsv"
MANIFEST_VIDEO_ONLY = "manifest_video_only.tsv"
FAILURES = "failures.tsv"
MANIFEST_COLUMNS = ("id", "video", "audio", "frames", "samples")
TRANSCRIPT_SUFFIX = ".wrd"
MIXTURE_COLUMNS = ("id", "utt_a", "utt_b", "gain_db")
TRACK_FOLDERS = ("video", "audio", "tracks")  # one sub-folder per clip in each


def _read_text(path: Path, what: str) -> str:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {what} ({e.strerror})", path) from e
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} is not UTF-8 text (byte {e.start})", path) from e


# ---- manifests -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Utterance:
    id: str
    video: Path | None  # mouth ROI video
    audio: Path | None  # 16 kHz wav
    frames: int
    samples: int


def read_manifest(path: str | Path) -> list[Utterance]:
    """The utterances of an AV-HuBERT manifest, paths resolved against its root line. Rows may carry more than
    the five columns (ignored); an empty video or audio column reads as None, an empty samples column as 0. A file
    whose first line is a row (no root line), or that holds one line that is no folder (any text file), is
    refused as not a manifest."""
    path = Path(path)
    lines = _read_text(path, "manifest").splitlines()
    if not lines:
        raise InputError("manifest is empty (its first line must be the root folder)", path)
    if "\t" in lines[0]:
        raise InputError(f"not a manifest: its first line must be the root folder, but it holds "
                         f"{len(lines[0].split(chr(9)))} tab-separated columns (is the root line missing?)", path)
    root = Path(lines[0].strip())
    if not root.is_absolute():
        root = (path.parent / root).resolve()
    utts, seen = [], {}
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 5:
            raise InputError(f"line {n} has {len(cols)} columns, expected 5 ({', '.join(MANIFEST_COLUMNS)})", path)
        uid, video, audio, frames, samples = cols[:5]
        try:
            nf, ns = int(frames), int(samples or 0)
        except ValueError:
            raise InputError(f"line {n}: frames and samples must be integers, got {frames!r}, {samples!r}",
                             path) from None
        if nf < 0 or ns < 0:
            raise InputError(f"line {n}: frames and samples must not be negative, got {nf}, {ns}", path)
        if uid in seen:
            raise InputError(f"line {n}: id {uid!r} already given on line {seen[uid]}", path)
        seen[uid] = n
        utts.append(Utterance(uid, root / video if video else None, root / audio if audio else None, nf, ns))
    if not utts and not root.is_dir():
        first = lines[0].strip()
        raise InputError(f"not a manifest: no rows, and its first line ({first[:60]!r}"
                         f"{'...' if len(first) > 60 else ''}) is no folder (a manifest is the root folder, then "
                         f"one row per utterance: {', '.join(MANIFEST_COLUMNS)}, tab-separated)", path)
    return utts


def write_manifest(path: str | Path, root: str | Path, rows: Iterable[Sequence]) -> Path:
    """An AV-HuBERT manifest: ``root`` on the first line, then each row ``(id, video, audio, frames, samples)``
    in the order given (video and audio relative to ``root``, or ``""`` for none)."""
    lines = [str(root)]
    for row in rows:
        if len(row) != 5:
            raise ValueError(f"a manifest row has 5 fields ({', '.join(MANIFEST_COLUMNS)}), got {row!r}")
        fields = [str(x) for x in row]
        if any("\t" in f or "\n" in f for f in fields):
            raise ValueError(f"a manifest field must not contain a tab or a newline: {row!r}")
        lines.append("\t".join(fields))
    path = Path(path)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def manifest_paths(out: str | Path, suffix: str = "") -> tuple[Path, Path]:
    """The audio-visual and the video-only manifest of a preprocessed folder (``suffix`` names a shard's)."""
    out = Path(out)
    return tuple(out / name.replace(".tsv", f"{suffix}.tsv") for name in (MANIFEST, MANIFEST_VIDEO_ONLY))


def failures_path(out: str | Path, suffix: str = "") -> Path:
    return Path(out) / FAILURES.replace(".tsv", f"{suffix}.tsv")


# ---- cluster labels (one integer per frame, one line per utterance) --------------------------------------------

def read_labels(path: str | Path, utterances: Sequence[Utterance]) -> list[np.ndarray]:
    """One int array per utterance, checked against the manifest (same count; frame counts within 1)."""
    path = Path(path)
    lines = _read_text(path, "labels").splitlines()
    if len(lines) != len(utterances):
        raise InputError(f"{len(lines)} label lines for {len(utterances)} utterances in the manifest", path)
    out = []
    for n, (utt, line) in enumerate(zip(utterances, lines), start=1):
        vals = []
        for x in line.split():
            try:
                vals.append(int(x))
            except ValueError:
                raise InputError(f"line {n} ({utt.id}): labels must be integers, got {x!r}", path) from None
        lab = np.array(vals, dtype=np.int64)
        if abs(len(lab) - utt.frames) > 1:
            raise InputError(f"line {n} ({utt.id}): {len(lab)} labels for {utt.frames} frames", path)
        out.append(lab)
    return out


def write_labels(path: str | Path, labels: Sequence[np.ndarray]) -> None:
    atomic_write_text(path, "".join(" ".join(map(str, np.asarray(lab).tolist())) + "\n" for lab in labels))


# ---- transcripts (.wrd) ----------------------------------------------------------------------------------------

def default_labels_path(manifest: str | Path) -> Path:
    """``manifest.tsv`` -> ``manifest.wrd`` (AV-HuBERT's convention for the transcripts of a manifest)."""
    return Path(manifest).with_suffix(TRANSCRIPT_SUFFIX)


def read_transcripts(path: str | Path, utterances: Sequence[Utterance] | None = None) -> list[str]:
    """One transcript per line (``.wrd``), stripped; with ``utterances``, the line count must match the
    manifest."""
    path = Path(path)
    lines = _read_text(path, "transcripts").splitlines()
    if utterances is not None and len(lines) != len(utterances):
        raise InputError(f"{len(lines)} transcript lines for {len(utterances)} utterances in the manifest "
                         "(one line per manifest row, in the same order)", path)
    return [ln.strip() for ln in lines]


def write_transcripts(path: str | Path, texts: Sequence[str]) -> None:
    if any("\n" in t or "\r" in t for t in texts):
        raise ValueError("a transcript must not contain a line break")
    atomic_write_text(path, "".join(t + "\n" for t in texts))


# ---- mixture lists ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mixture:
    id: str
    utt_a: str
    utt_b: str
    gain_db: float  # level of A relative to B


def write_mixtures(path: str | Path, mixtures: Sequence[Mixture]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(MIXTURE_COLUMNS)
    for m in mixtures:
        g = m.gain_db
        w.writerow((m.id, m.utt_a, m.utt_b, f"{g:.3f}" if round(g, 3) == g else f"{g:.5f}".rstrip("0")))
    atomic_write_text(path, buf.getvalue())


def read_mixtures(path: str | Path) -> list[Mixture]:
    path = Path(path)
    rows = list(csv.reader(_read_text(path, "mixture list").splitlines(), delimiter="\t"))
    if not rows or tuple(rows[0]) != MIXTURE_COLUMNS:
        raise InputError(f"not a mixture list: the first line must be {' '.join(MIXTURE_COLUMNS)!r}", path)
    out = []
    for n, r in enumerate(rows[1:], start=2):
        if len(r) != 4:
            raise InputError(f"line {n} has {len(r)} columns, expected 4 ({', '.join(MIXTURE_COLUMNS)})", path)
        try:
            out.append(Mixture(r[0], r[1], r[2], float(r[3])))
        except ValueError:
            raise InputError(f"line {n}: gain_db must be a number, got {r[3]!r}", path) from None
    return out


# ---- clip and track records of a preprocessed folder -----------------------------------------------------------

def track_id(clip_id: str, index: int) -> str:
    return f"{clip_id}/face{index}"


def clip_of(utt_id: str) -> str:
    """The source clip of a manifest id: a track id ``<clip>/face<k>`` gives ``<clip>`` (which may hold slashes:
    ``trainval/spk/00001/face0`` -> ``trainval/spk/00001``); any other id (AV-HuBERT's ``trainval/spk/00001``)
    is its own clip."""
    head, sep, tail = utt_id.rpartition("/")
    return head if sep and re.fullmatch(r"face\d+", tail) else utt_id


def track_files(tid: str) -> dict[str, str]:
    """The files of one track, relative to the preprocessed folder: ``video``, ``audio``, ``json``."""
    return {"video": f"video/{tid}.mp4", "audio": f"audio/{tid}.wav", "json": f"tracks/{tid}.json"}


def clip_folders(out: str | Path, clip_id: str) -> list[Path]:
    """The per-clip folders holding its tracks' files (removed before a clip is written again)."""
    return [Path(out) / sub / clip_id for sub in TRACK_FOLDERS]


def clip_record_path(out: str | Path, clip_id: str) -> Path:
    return Path(out) / "clips" / f"{clip_id}.json"


def write_clip_record(out: str | Path, record: dict) -> Path:
    """``clips/<record["id"]>.json``; write it after the clip's tracks, since it marks the clip as done."""
    path = clip_record_path(out, record["id"])
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path


def load_record(out: str | Path, clip_id: str) -> dict | None:
    """The record of a finished clip, or None if it is not (completely) done."""
    p = clip_record_path(out, clip_id)
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_track_record(out: str | Path, relpath: str, record: dict, decimals: dict[str, int] | None = None) -> None:
    """A track's per-frame record at ``relpath`` (its ``json`` in :func:`track_files`), compact JSON.

    Array values (numpy arrays, or :class:`~avspeech.io.arrayfile.ArrayFile`) are written a frame (row) at a
    time, each rounded to ``decimals[key]`` places if given, so a long track's landmarks never exist as one list
    of Python floats (nor, from a file, as one array); the bytes are those of ``json.dumps`` of
    the record with every array rounded and turned into lists."""
    from avspeech.io.atomic import atomic_path

    decimals = decimals or {}
    dump = functools.partial(json.dumps, separators=(",", ":"))
    with atomic_path(Path(out) / relpath) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for i, (key, value) in enumerate(record.items()):
            f.write(("{" if i == 0 else ",") + dump(key) + ":")
            if getattr(value, "ndim", 0) < 1:  # not an array (nor an ArrayFile)
                f.write(dump(value))
                continue
            f.write("[")
            for s in range(0, len(value), 256):  # an array, or an ArrayFile read a block of rows at a time
                block = np.asarray(value[s:s + 256])
                block = np.round(block, decimals[key]) if key in decimals else block
                for j, row in enumerate(block):
                    f.write(("," if s + j else "") + dump(row.tolist()))
            f.write("]")
        f.write("}\n" if record else "{}\n")


def read_track_record(out: str | Path, relpath: str) -> dict:
    path = Path(out) / relpath
    try:
        return json.loads(_read_text(path, "track record"))
    except ValueError as e:
        raise InputError(f"track record is not JSON ({e})", path) from e
