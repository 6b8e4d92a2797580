"""``avspeech pretrain``: joint masked-prediction pretraining (one process, or many under torchrun).

Every field of :class:`avspeech.pretrain.train.TrainConfig` is an option; ``--clips`` and ``--clusters`` shape
the built-in synthetic data used when no ``--manifest`` is given.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from avspeech.cli.config_args import add_config_arguments, config_from_args
from avspeech.cli.report import report_run


def add_arguments(p: argparse.ArgumentParser) -> None:
    from avspeech.model.config import PRESETS
    from avspeech.pretrain.train import TrainConfig

    add_config_arguments(p, TrainConfig, choices={"model": PRESETS}, optional={
        "manifest": "manifest TSV; without it and --labels, the built-in default: synth, preprocess, cluster, "
                    "then pretrain a tiny model",
        "labels": "cluster labels (avspeech cluster)"})
    g = p.add_argument_group("built-in default only (no --manifest)")
    g.add_argument("--clips", type=int, default=24, help="synthetic clips to make (default: 24)")
    g.add_argument("--clusters", type=int, default=25, help="k-means clusters (default: 25)")


def run(args: argparse.Namespace) -> int:
    from avspeech.pretrain.train import TrainConfig, train

    if bool(args.manifest) != bool(args.labels):
        from avspeech.errors import InputError

        raise InputError("give both --manifest and --labels, or neither (the built-in synthetic default)")
    manifest, labels = args.manifest, args.labels
    if manifest is None:
        from avspeech.synth.splits import prepare_default_data

        manifest, labels = prepare_default_data(Path(args.out) / "data", clips=args.clips,
                                                clusters=args.clusters, seed=args.seed)
    summary = train(config_from_args(TrainConfig, args, manifest=str(manifest), labels=str(labels)))
    last = summary["last"]
    return report_run(summary, args.out, f"loss {last.get('loss')}, masked accuracy {last.get('acc_masked')}")
