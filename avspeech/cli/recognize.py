"""``avspeech recognize CLIP --out DIR``: one transcript (with word timestamps) per visible face."""
from __future__ import annotations

import argparse



def add_arguments(p: argparse.ArgumentParser) -> None:
    from avspeech.cli.decoding import add_decode_arguments
    from avspeech.device import add_device_argument
    from avspeech.cli.separate import OUT_HELP

    p.add_argument("clips", nargs="+", metavar="CLIP", help="video file(s), with or without audio")
    p.add_argument("--out", required=True, help=OUT_HELP)
    p.add_argument("--checkpoint", help="recognition checkpoint: a folder of ours, or an official AV-HuBERT "
                   "fine-tuned seq2seq file (VSR/AVSR .pt) or its 'avspeech convert avhubert' folder (default: the "
                   "one that ships, trained on synthetic data only; real video needs a model trained on real data)")
    p.add_argument("--spm", help="SentencePiece model for an AV-HuBERT checkpoint that carries none (only needed to "
                   "encode text, e.g. for evaluation references)")
    p.add_argument("--mode", choices=["av", "audio", "video"],
                   help="default: av when the clip has audio, video (lip reading) when it has none")
    p.add_argument("--max-faces", type=int, default=4, help="faces to track per frame (default 4)")
    from avspeech.pipeline.config import RECOGNITION_CHUNKS, chunk_arguments

    chunk_arguments(p, RECOGNITION_CHUNKS)
    add_device_argument(p)
    add_decode_arguments(p)


def run(args: argparse.Namespace) -> int:
    from avspeech.batch import Failure, report_failures
    from avspeech.errors import InputError
    from avspeech.cli.decoding import decode_options
    from avspeech.cli.separate import clip_folders, print_renamed
    from avspeech.pipeline.provenance import synthetic_note
    from avspeech.recognition.recognize import default_checkpoint, load_model, recognize_clip

    model = load_model(args.checkpoint, args.spm, args.device)
    note = synthetic_note(args.checkpoint or default_checkpoint(), "recognition")
    if note:
        print(note)
    options = decode_options(args, model)
    failures = []
    folders = clip_folders(args.clips, args.out)
    print_renamed(folders)
    for clip, out in folders:
        try:
            entries = recognize_clip(clip, out, model, checkpoint=args.checkpoint, max_faces=args.max_faces,
                                     mode=args.mode, options=options, chunk_seconds=args.chunk_seconds,
                                     overlap_seconds=args.overlap_seconds)
        except InputError as e:
            if len(args.clips) == 1:
                raise
            failures.append(Failure(clip, e.cause))
            continue
        print(f"{clip}: {len(entries)} face(s) -> {out / 'transcripts.json'}")
        for e in entries:
            text = e["text"] or "(silent)"
            print(f"  speaker_{e['track']} ({e['start_s']:.2f}-{e['end_s']:.2f} s, {e['mode']}): {text}")
            if e["words"]:
                print("    " + " ".join(f"{w['word']}[{w['start']:.2f}-{w['end']:.2f}]" for w in e["words"]))
            for g in e.get("segments", []):
                print(f"    [{g['start']:.2f}-{g['end']:.2f}] {g['text']}")
    if failures:
        print(report_failures(failures, len(args.clips), "clips"))
        return 1
    return 0
