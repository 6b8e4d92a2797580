"""``avspeech noise --musan DIR --manifest M --out DIR``: noise sets (MUSAN noise, music and babble; a dataset's
own speech and babble) as AV-HuBERT's noise lists; see :mod:`avspeech.datasets.noise`."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from avspeech.datasets.noise import NoiseConfig

    d = NoiseConfig()
    p.add_argument("--musan", help="MUSAN folder (noise/, music/, speech/)")
    p.add_argument("--manifest", help="a dataset manifest whose speech becomes speech and babble noise "
                   "(e.g. lrs3/433h_data/train.tsv)")
    p.add_argument("--out", required=True, help="output folder: <set>/{train,valid,test}.tsv and the wavs")
    p.add_argument("--babble-files", type=int, default=d.babble_files, help="MUSAN babble files (default: "
                   "%(default)s; AV-HuBERT: 10000)")
    p.add_argument("--talkers", type=int, default=d.talkers, help="voices per babble file (default: %(default)s)")
    p.add_argument("--speech-seconds", type=float, default=d.speech_seconds,
                   help="dataset speech noise: utterances longer than this, cut to it (default: %(default)s)")
    p.add_argument("--babble-seconds", type=float, default=d.babble_seconds,
                   help="dataset babble: from utterances longer than this (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)


def add_noise_set_arguments(p: argparse.ArgumentParser, items: str) -> None:
    """``--noise DIR --snr LO HI`` of an ``evaluate`` command (the fine-tuning configs carry the same fields)."""
    p.add_argument("--noise", help=f"noise set folder (avspeech noise, e.g. noise/all): its test list is added to "
                   f"every {items}")
    p.add_argument("--snr", type=float, nargs=2, default=(0.0, 0.0), metavar=("LO", "HI"),
                   help="SNR range of --noise, dB (the audio over the noise; LO = HI: fixed) (default: 0 0)")


def run(args: argparse.Namespace) -> int:
    from avspeech.datasets.noise import NoiseConfig, prepare_noise

    counts = prepare_noise(args.out, args.musan, args.manifest,
                           NoiseConfig(args.babble_files, args.talkers, args.speech_seconds, args.babble_seconds,
                                       args.seed))
    for name, splits in counts.items():
        print(f"{name}: " + ", ".join(f"{s} {n}" for s, n in splits.items()))
    print(f"lists: {args.out}/<set>/{{train,valid,test}}.tsv (all/ joins them)")
    return 0
