"""``avspeech preprocess``: face tracks, 96x96 mouth ROIs and 16 kHz audio in AV-HuBERT's layout."""
from __future__ import annotations

import argparse

HELP = "lip ROIs (25 fps, 96x96) and 16 kHz audio per face track, with an AV-HuBERT manifest"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from avspeech.preprocess.config import PreprocessConfig

    d = PreprocessConfig()
    p.description = (
        "Detect every face (MediaPipe full-range detector + FaceMesh per face), track it, align it to a mean face "
        "and write per track a 96x96 grayscale mouth ROI video at 25 fps and a 16 kHz mono wav, with a per-track "
        "JSON (boxes, landmarks), manifest.tsv (AV-HuBERT layout) and failures.tsv. Re-running finishes only what "
        "is missing.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video files, folders (searched recursively) or text files (.txt/.lst/.list) listing paths")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--shard", default=None, metavar="i/N", help="process only shard i of N of the input list")
    p.add_argument("--max-faces", type=int, default=None, metavar="K", help="track at most K faces at once")
    p.add_argument("--min-track-frames", type=int, default=d.min_track_frames,
                   help=f"drop tracks shorter than this many frames (default {d.min_track_frames})")
    p.add_argument("--detect-every", type=int, default=d.detect_every,
                   help=f"run the face detector every N frames (default {d.detect_every})")


def run(args: argparse.Namespace) -> int:
    from avspeech.errors import InputError
    from avspeech.preprocess.batch import preprocess
    from avspeech.preprocess.config import PreprocessConfig
    from avspeech.preprocess.discover import parse_shard

    try:
        shard = parse_shard(args.shard) if args.shard else None
        config = PreprocessConfig(max_faces=args.max_faces, min_track_frames=args.min_track_frames,
                                  detect_every=args.detect_every)
    except ValueError as e:
        raise InputError(str(e)) from None
    if args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}")
    report = preprocess(args.inputs, args.out, workers=args.workers, shard=shard, config=config)
    print(report.summary())
    return 1 if report.failures else 0
