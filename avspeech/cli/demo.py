"""``avspeech demo``: the main job end to end on the built-in default (a small synthetic two-speaker set).

Each stage of the package extends it; today: synthesize, then draw a contact sheet.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = "run the main job end to end on the built-in synthetic default"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="avspeech_demo", help="output folder (default ./avspeech_demo)")
    p.add_argument("--clips", type=int, default=4, help="clips to synthesize (default 4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args: argparse.Namespace) -> int:
    from avspeech.batch import report_failures
    from avspeech.io.media import read_video_frames
    from avspeech.plots import contact_sheet
    from avspeech.synth.corpus import SynthConfig, clip_id, synthesize_corpus

    out = Path(args.out)
    corpus = out / "synth"
    print(f"[1/2] synthesizing {args.clips} two-speaker clips into {corpus}")
    config = SynthConfig(speakers=2, seed=args.seed)
    made, failures, skipped = synthesize_corpus(corpus, config, args.clips, resume=True,
                                                workers=min(os.cpu_count() or 1, args.clips))
    if failures:
        print(report_failures(failures, args.clips - skipped, "clips"))
        return 1
    import json

    clips = []
    for i in range(args.clips):
        sc = json.loads((corpus / f"{clip_id(i)}.json").read_text())
        frames, _ = read_video_frames(corpus / sc["video"])
        clips.append((frames, sc))
        spk = "; ".join(f"face {s['index']} ({s['face_source']}{', flipped' if s['flip'] else ''}, {s['voice']}, "
                        f"{s['gain_db']:+.1f} dB) says \"{s['text']}\"" for s in sc["speakers"])
        print(f"  {sc['id']}: {sc['num_frames']} frames ({sc['num_frames'] / sc['fps']:.2f} s) at {sc['fps']} fps, "
              f"{sc['num_samples']} samples at {sc['sample_rate']} Hz; {spk}")
    sheet = out / "contact_sheet.png"
    print(f"[2/2] contact sheet (face boxes green, mouth regions red): {sheet}")
    contact_sheet(sheet, clips)
    print(f"done: {out}")
    return 0
