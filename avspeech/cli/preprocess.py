"""``avspeech preprocess``: face tracks, 96x96 mouth ROIs and 16 kHz audio in AV-HuBERT's layout.

Every field of :class:`avspeech.preprocess.config.PreprocessConfig` is an option.
"""
from __future__ import annotations

import argparse

from avspeech.cli.config_args import add_config_arguments, config_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    from avspeech.preprocess.config import PreprocessConfig

    p.description = (
        "Detect every face (MediaPipe full-range detector + FaceMesh per face), track it, align it to a mean face "
        "and write per track a 96x96 grayscale mouth ROI video at 25 fps and a 16 kHz mono wav, with a per-track "
        "JSON (boxes, landmarks), manifest.tsv (AV-HuBERT layout) and failures.tsv. Re-running finishes only what "
        "is missing.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video files, folders (searched recursively) or text files (.txt/.lst/.list) listing paths")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    p.add_argument("--shard", default=None, metavar="i/N", help="process only shard i of N of the input list")
    add_config_arguments(p.add_argument_group("preprocessing settings"), PreprocessConfig)


def batch_settings(args: argparse.Namespace):
    """(shard or None, PreprocessConfig) of a command with ``--shard``, ``--workers`` and the preprocessing
    options; bad values raise InputError."""
    from avspeech.errors import InputError
    from avspeech.preprocess.config import PreprocessConfig
    from avspeech.preprocess.discover import parse_shard

    try:
        shard = parse_shard(args.shard) if args.shard else None
        config = config_from_args(PreprocessConfig, args)
    except ValueError as e:
        raise InputError(str(e)) from None
    if args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}")
    return shard, config


def nothing_found(inputs, out) -> InputError:
    """The error for INPUTs that name no clip at all: each is an empty folder (or one with no video files outside
    ``--out``) or a list file with no paths in it."""
    from pathlib import Path

    from avspeech.errors import InputError
    from avspeech.preprocess.discover import VIDEO_SUFFIXES

    def why(raw) -> str:
        p = Path(raw).expanduser()
        if p.is_dir():
            return (f"no video files ({', '.join(sorted(VIDEO_SUFFIXES))}) found in this folder"
                    + (f" outside --out {out}" if Path(out).resolve().is_relative_to(p.resolve()) else ""))
        return "no paths listed in this file"

    if len(inputs) == 1:
        return InputError(why(inputs[0]), inputs[0])
    return InputError("no clips found in any INPUT: " + "; ".join(f"{i}: {why(i)}" for i in inputs))


def run(args: argparse.Namespace) -> int:
    from avspeech.preprocess.batch import preprocess
    from avspeech.preprocess.discover import discover

    shard, config = batch_settings(args)
    clips = discover(args.inputs, exclude=args.out)
    if not clips:
        raise nothing_found(args.inputs, args.out)
    report = preprocess(args.inputs, args.out, workers=args.workers, shard=shard, config=config, clips=clips)
    print(report.summary())
    return 1 if report.failures else 0
