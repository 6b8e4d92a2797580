"""``avspeech separate CLIP --out DIR``: one waveform (and video) per visible face."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

OUT_HELP = ("output folder; with several clips, one sub-folder per clip named by its file stem (clips whose stems "
            "clash: <stem>-<8 hex digits of a hash of the clip's full path>)")


def clip_folders(clips: Sequence[str], out: str | Path) -> list[tuple[str, Path]]:
    """Each clip with its output folder: ``out`` itself when one clip is given; for several, ``out/<stem>``, and
    for clips whose stem another (different) file of the batch shares, ``out/<stem>-<hash>`` with the first 8 hex
    digits of the SHA-1 of the clip's resolved path, so the folder does not depend on the order of the clips."""
    out = Path(out)
    if len(clips) == 1:
        return [(clips[0], out)]
    import hashlib

    keys = [str(Path(c).resolve()) for c in clips]
    paths_of: dict[str, set[str]] = {}
    for c, k in zip(clips, keys):
        paths_of.setdefault(Path(c).stem, set()).add(k)
    folders = []
    for c, k in zip(clips, keys):
        stem = Path(c).stem
        name = stem if len(paths_of[stem]) == 1 else f"{stem}-{hashlib.sha1(k.encode()).hexdigest()[:8]}"
        folders.append((c, out / name))
    return folders


def print_renamed(folders: Sequence[tuple[str, Path]]) -> None:
    """Say where the clips whose file stems clash go (the others go to ``OUT/<stem>``)."""
    for clip, folder in folders:
        if len(folders) > 1 and folder.name != Path(clip).stem:
            print(f"{clip}: another clip has the same file name; its results go to {folder}")


def missing_outputs(out: Path) -> list[str] | None:
    """None when ``out`` holds no complete result (no readable ``speakers.json``, which is written last); else the
    files it lists (each speaker's wav, video and thumbnail) that are missing or empty: [] for a complete one."""
    import json

    try:
        speakers = json.loads((out / "speakers.json").read_text())["speakers"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    names = [s.get(k) for s in speakers if isinstance(s, dict) for k in ("wav", "video", "thumbnail")]
    return [n for n in names if n and not ((out / n).is_file() and (out / n).stat().st_size > 0)]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("clips", nargs="+", metavar="CLIP", help="video file(s) with audio")
    p.add_argument("--out", required=True, help=OUT_HELP)
    p.add_argument("--checkpoint", help="separation checkpoint (default: the one that ships, trained on "
                   "synthetic data only; real video needs a model trained on real data)")
    p.add_argument("--max-faces", type=int, default=4, help="faces to track per frame (default 4)")
    from avspeech.device import add_device_argument

    add_device_argument(p)
    from avspeech.pipeline.config import SEPARATION_CHUNKS, chunk_arguments

    chunk_arguments(p, SEPARATION_CHUNKS)
    p.add_argument("--overwrite", action="store_true", help="separate again clips whose results are complete "
                   "(by default a re-run finishes only what is missing)")


def run(args: argparse.Namespace) -> int:
    from avspeech.batch import Failure, report_failures
    from avspeech.errors import InputError
    from avspeech.pipeline.provenance import synthetic_note
    from avspeech.separation.separate import default_checkpoint, load_model, separate_clip

    model = load_model(args.checkpoint, args.device)
    note = synthetic_note(args.checkpoint or default_checkpoint(), "separation")
    if note:
        print(note)
    failures = []
    folders = clip_folders(args.clips, args.out)
    print_renamed(folders)
    for clip, out in folders:
        missing = None if args.overwrite else missing_outputs(out)
        if missing == []:
            print(f"{clip}: already separated in {out} (--overwrite to redo)")
            continue
        if missing:
            print(f"{clip}: {out} is incomplete ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''} "
                  "missing or empty); separating again")
        try:
            entries = separate_clip(clip, out, model, checkpoint=args.checkpoint, max_faces=args.max_faces,
                                    chunk_seconds=args.chunk_seconds, overlap_seconds=args.overlap_seconds)
        except InputError as e:
            if len(args.clips) == 1:
                raise
            failures.append(Failure(clip, e.cause))
            continue
        print(f"{clip}: {len(entries)} face(s) -> {out}")
        for e in entries:
            print(f"  speaker_{e['track']}: {e['start_s']:.2f}-{e['end_s']:.2f} s, box {e['box']}, "
                  f"level {e['level_dbfs']} dBFS")
    if failures:
        print(report_failures(failures, len(args.clips), "clips"))
        return 1
    return 0
