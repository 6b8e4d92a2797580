"""``avspeech mixtures``: 2-speaker mixture lists (LRS2-2Mix, LRS3-2Mix, VoxCeleb2-2Mix) in and out.

- ``import LIST --manifest M --out DIR``: a published list (``--format pan`` or ``wsj0``) to our mixture lists,
  ``DIR/<partition>.tsv`` (for ``finetune separation`` / ``evaluate separation --mixtures``);
- ``export MIXTURES --manifest M --out FILE``: our list back to a ``pan`` CSV;
- ``draw --manifest M --out FILE.tsv``: a seeded list by the same recipe, written as ours and as ``FILE.csv``.

The formats and the recipe: :mod:`avspeech.datasets.mixlists`.
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="a published list to our mixture lists (one per partition)")
    imp.add_argument("list", metavar="LIST", help="the published list file")
    imp.add_argument("--format", choices=("pan", "wsj0"), default="pan",
                     help="pan: mixture_data_list_2mix.csv rows; wsj0: 'path_a snr_a path_b snr_b' lines "
                          "(default: %(default)s)")
    imp.add_argument("--manifest", required=True, help="the manifest whose ids the sources are matched to")
    imp.add_argument("--out", required=True, help="folder for <partition>.tsv")
    exp = sub.add_parser("export", help="our mixture list to a pan CSV")
    exp.add_argument("mixtures", metavar="MIXTURES", help="our mixture list (id utt_a utt_b gain_db)")
    exp.add_argument("--manifest", required=True, help="the manifest of its utterances (for the lengths)")
    exp.add_argument("--partition", default="test", help="the partition column (default: %(default)s)")
    exp.add_argument("--out", required=True, help="CSV file to write")
    drw = sub.add_parser("draw", help="a seeded list by the pan recipe (different speakers, the second at "
                         "U(-mix_db, mix_db) dB, cut to the shorter)")
    drw.add_argument("--manifest", required=True)
    drw.add_argument("--out", required=True, help="our list (.tsv); the pan CSV goes beside it (.csv)")
    drw.add_argument("--num", type=int, required=True, help="mixtures to draw")
    drw.add_argument("--seed", type=int, default=0)
    drw.add_argument("--mix-db", type=float, default=10.0, help="(default: %(default)s, as LRS2-2Mix)")
    drw.add_argument("--min-seconds", type=float, default=0.0, help="leave out shorter utterances")
    drw.add_argument("--partition", default="test", help="the partition column (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from avspeech.batch import report_failures, write_failures
    from avspeech.data.layout import read_manifest, read_mixtures, write_mixtures
    from avspeech.datasets import mixlists

    utts = read_manifest(args.manifest)
    if args.action == "import":
        listed = mixlists.read_list(args.list, args.format)
        if not listed:
            from avspeech.errors import InputError

            raise InputError(f"no mixtures found in this list (--format {args.format})", args.list)
        parts, failures = mixlists.import_list(listed, utts)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, mixtures in sorted(parts.items()):
            write_mixtures(out / f"{name}.tsv", mixtures)
            print(f"{out / f'{name}.tsv'}: {len(mixtures)} mixtures")
        write_failures(out / "import_failures.tsv", failures)
        print(report_failures(failures, len(listed), "mixtures"))
        return 1 if failures else 0
    if args.action == "export":
        frames = {u.id: u.frames for u in utts}
        mixtures = read_mixtures(args.mixtures)
        missing = sorted({i for m in mixtures for i in (m.utt_a, m.utt_b) if i not in frames})
        if missing:
            from avspeech.errors import InputError

            raise InputError(f"{len(missing)} utterances of the list are not in {args.manifest}, e.g. {missing[:3]}",
                             args.mixtures)
        mixlists.write_pan(args.out, [(args.partition, m, min(frames[m.utt_a], frames[m.utt_b]) / mixlists.FPS)
                                      for m in mixtures])
        print(f"{args.out}: {len(mixtures)} mixtures")
        return 0
    rows = mixlists.draw_mixtures(utts, args.num, seed=args.seed, mix_db=args.mix_db, min_seconds=args.min_seconds,
                                  partition=args.partition)
    out = Path(args.out)
    write_mixtures(out, [m for _, m, _ in rows])
    mixlists.write_pan(out.with_suffix(".csv"), rows)
    print(f"{out} and {out.with_suffix('.csv')}: {len(rows)} mixtures")
    return 0
