"""``avspeech finetune separation`` and ``avspeech evaluate separation`` (heavy imports inside ``run_*``).

Fine-tuning takes every field of :class:`avspeech.separation.train.SeparationTrainConfig` as an option; both
commands make their data (the built-in synthetic set, a mixture list) when it is not given.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from avspeech.cli.config_args import add_config_arguments, config_from_args
from avspeech.cli.noise import add_noise_set_arguments
from avspeech.device import add_device_argument

MANIFEST_HELP = ("preprocessed manifest (avspeech preprocess); default: the built-in synthetic set (synth + "
                 "preprocess into OUT/data)")
MIXTURES_HELP = ("mixture list TSV (id, utt_a, utt_b, gain_db); default: drawn from the manifest and saved as "
                 "OUT/mixtures.tsv")
# verb -> (synthetic clips of the built-in set, mixtures drawn, gain range in dB)
DATA_DEFAULTS = {"finetune": (120, 20000, 10.0), "evaluate": (40, 100, 0.0)}


def _drawing_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    _, n, gain = DATA_DEFAULTS[verb]
    g = p.add_argument_group("mixtures drawn when --mixtures is not given")
    g.add_argument("--num-mixtures", type=int, default=n, help=f"mixtures to draw (default: {n})")
    g.add_argument("--gain-db-range", type=float, default=gain, help="relative gains drawn within +-range/2 dB "
                   f"(default: {gain:g})")


def _data(args: argparse.Namespace, out: Path, verb: str) -> tuple[Path, Path]:
    """The manifest and mixture list of the run: the given ones, or made (and said so)."""
    from avspeech.data.layout import read_manifest
    from avspeech.separation.mixtures import make_mixtures, write_mixtures

    manifest = Path(args.manifest) if args.manifest else None
    if manifest is None:
        from avspeech.synth.splits import builtin_split

        train = verb == "finetune"
        print(f"no --manifest: making the built-in synthetic {'training' if train else 'held-out'} set in "
              f"{out / 'data'}")
        manifest = builtin_split(out / "data", train, DATA_DEFAULTS[verb][0])
    if args.mixtures:
        return manifest, Path(args.mixtures)
    mixtures = out / "mixtures.tsv"
    if not mixtures.is_file():
        n, gain = args.num_mixtures, args.gain_db_range
        write_mixtures(mixtures, make_mixtures(read_manifest(manifest), n, seed=args.seed, gain_db_range=gain))
        print(f"mixture list: {mixtures} ({n} mixtures, gains in +-{gain / 2:g} dB)")
    return manifest, mixtures


def add_finetune_arguments(p: argparse.ArgumentParser) -> None:
    from avspeech.model.config import PRESETS
    from avspeech.separation.train import SeparationTrainConfig

    add_config_arguments(p, SeparationTrainConfig, choices={"model": PRESETS},
                         optional={"manifest": MANIFEST_HELP, "mixtures": MIXTURES_HELP})
    _drawing_arguments(p, "finetune")


def run_finetune(args: argparse.Namespace) -> int:
    from avspeech.cli.report import report_run
    from avspeech.separation.train import SeparationTrainConfig, train_separation

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest, mixtures = _data(args, out, "finetune")
    summary = train_separation(config_from_args(SeparationTrainConfig, args, manifest=str(manifest),
                                                mixtures=str(mixtures)))
    last = summary["last"]
    return report_run(summary, out, f"loss {last.get('loss')}, training SI-SDR {last.get('si_sdr')} dB")


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", help=MANIFEST_HELP)
    p.add_argument("--mixtures", help=MIXTURES_HELP)
    p.add_argument("--checkpoint", help="separation checkpoint (default: the one that ships, trained on "
                   "synthetic data)")
    p.add_argument("--out", default="avspeech_separation_eval", help="results folder (default: %(default)s)")
    p.add_argument("--limit", type=int, help="score only the first N targets")
    p.add_argument("--no-perceptual", action="store_true", help="skip PESQ and STOI (faster)")
    add_device_argument(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the mixtures drawn (default: 0)")
    add_noise_set_arguments(p, "mixture")
    _drawing_arguments(p, "evaluate")


def run_evaluate(args: argparse.Namespace) -> int:
    from avspeech.separation.evaluate import evaluate_separation
    from avspeech.separation.separate import default_checkpoint
    from avspeech.batch import read_failures, report_failures
    from avspeech.device import inference_device
    from avspeech.separation.train import load_separator

    device = inference_device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest, mixtures = _data(args, out, "evaluate")
    model = load_separator(args.checkpoint or default_checkpoint()).to(device)
    s = evaluate_separation(model, manifest, mixtures, out, perceptual=not args.no_perceptual, limit=args.limit,
                            noise=args.noise, snr=tuple(args.snr))
    print((out / "summary.md").read_text(), end="")
    print(f"{s['targets']} targets: SI-SDRi {s['si_sdri']:.2f} dB, SDRi {s['sdri']:.2f} dB; per target: "
          f"{out / 'results.csv'}")
    failures = read_failures(out / "failures.tsv")
    if failures:
        print(report_failures(failures, s["targets"] + s["failed"], "targets"))
    return 1 if failures else 0
