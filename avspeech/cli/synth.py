"""``avspeech synth``: write a synthetic talking-face corpus.

Every field of :class:`avspeech.synth.corpus.SynthConfig` is an option (its defaults; the help texts are here
because that dataclass carries none).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from avspeech.cli.config_args import add_config_arguments, config_from_args

HELPS = {
    "speakers": "faces (and voices) per clip",
    "seed": "the same seed gives the same files",
    "width": "frame width, px",
    "height": "frame height, px",
    "gain_db_range": "speakers' relative gains are drawn within +-range/2 dB each",
    "voices": "espeak-ng voices (space- or comma-separated)",
    "faces": "face sources (space- or comma-separated)",
    "rate_wpm": "speaking rate range, words per minute",
    "min_face_height": "smallest face drawn, px (forehead to chin)",
    "max_face_height": "largest face drawn, fraction of the frame height",
    "lead_in": "range of the silence before the first speaker starts, s",
    "tail": "silence after the last speaker ends, s",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from avspeech.synth.corpus import SynthConfig

    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--clips", type=int, default=10, help="number of clips (default: 10)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: one per CPU core, at most one per clip)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--overwrite", action="store_true", help="replace the corpus already in --out")
    g.add_argument("--resume", action="store_true", help="finish an interrupted run, keeping complete clips")
    add_config_arguments(p.add_argument_group("corpus settings"), SynthConfig, helps=HELPS)


def run(args: argparse.Namespace) -> int:
    from avspeech.batch import report_failures, write_failures
    from avspeech.synth.corpus import SynthConfig, synthesize_corpus

    config = config_from_args(SynthConfig, args)
    workers = args.workers or min(os.cpu_count() or 1, max(args.clips, 1))
    made, failures, skipped = synthesize_corpus(args.out, config, args.clips, workers=workers,
                                                overwrite=args.overwrite, resume=args.resume)
    if failures:
        write_failures(Path(args.out) / "failures.tsv", failures)
    print(report_failures(failures, args.clips - skipped, "clips"))
    if skipped:
        print(f"{skipped} clips were already complete (resumed)")
    frames = sum(m["frames"] for m in made)
    print(f"wrote {len(made)} clips ({frames / 25:.1f} s of video) to {args.out}")
    return 1 if failures else 0
