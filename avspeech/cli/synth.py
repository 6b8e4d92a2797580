"""``avspeech synth``: write a synthetic talking-face corpus."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = "write a synthetic talking-face corpus with known ground truth"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from avspeech.synth.speech import DEFAULT_VOICES

    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--clips", type=int, default=10, help="number of clips (default 10)")
    p.add_argument("--speakers", type=int, default=1, help="faces (and voices) per clip (default 1)")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same files (default 0)")
    p.add_argument("--width", type=int, default=640, help="frame width, px (default 640)")
    p.add_argument("--height", type=int, default=480, help="frame height, px (default 480)")
    p.add_argument("--gain-db-range", type=float, default=5.0,
                   help="speakers' relative gains are drawn within +-range/2 dB each (default 5)")
    p.add_argument("--voices", default=",".join(DEFAULT_VOICES),
                   help="comma-separated espeak-ng voices (default: %(default)s)")
    p.add_argument("--faces", default="grace_hopper,astronaut", help="comma-separated face sources")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: one per CPU core, at most one per clip)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--overwrite", action="store_true", help="replace the corpus already in --out")
    g.add_argument("--resume", action="store_true", help="finish an interrupted run, keeping complete clips")


def run(args: argparse.Namespace) -> int:
    from avspeech.batch import report_failures, write_failures
    from avspeech.synth.corpus import SynthConfig, synthesize_corpus

    config = SynthConfig(
        speakers=args.speakers, seed=args.seed, width=args.width, height=args.height,
        gain_db_range=args.gain_db_range,
        voices=tuple(v.strip() for v in args.voices.split(",") if v.strip()),
        faces=tuple(f.strip() for f in args.faces.split(",") if f.strip()))
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


