"""``avspeech prepare DATASET ROOT --out DIR``: a real dataset's folder to AV-HuBERT-layout manifests.

One sub-command per dataset (``lrs3``, ``lrs2``, ``voxceleb2``); each reads the layout
(:mod:`avspeech.datasets`), runs ``avspeech preprocess`` on its videos (every field of
:class:`~avspeech.preprocess.config.PreprocessConfig` is an option) and writes the manifests of its recipe.
"""
from __future__ import annotations

import argparse

from avspeech.cli.config_args import add_config_arguments, config_from_args

DATASETS = {
    "lrs3": "LRS3: pretrain/, trainval/, test/ -> 433h_data/ and 30h_data/ {train,valid,test}.tsv + .wrd",
    "lrs2": "LRS2: main/, pretrain/ and train/val/test.txt -> main_data/ and pretrain_data/ {train,valid,test}",
    "voxceleb2": "VoxCeleb2: dev/mp4/, test/mp4/ -> all_data/train.tsv (and en_data/ with --en-ids); no "
                 "transcripts",
}


def _common(p: argparse.ArgumentParser) -> None:
    from avspeech.datasets.prepare import MIN_COVERAGE
    from avspeech.preprocess.config import PreprocessConfig

    p.add_argument("root", metavar="ROOT", help="the dataset's folder as distributed")
    p.add_argument("--out", required=True, help="output folder (preprocessed tracks, segments, manifests)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    p.add_argument("--shard", default=None, metavar="i/N",
                   help="process only shard i of N of the videos (one cluster job each); run once more without "
                        "--shard to write the manifests")
    p.add_argument("--min-coverage", type=float, default=MIN_COVERAGE,
                   help="least fraction of an utterance's frames its face track must cover (default: %(default)s)")
    g = p.add_argument_group("beyond one machine")
    g.add_argument("--sbatch", type=int, metavar="N", help="print a SLURM job-array script running this command "
                   "as N shards (and how to merge them), and exit")
    g.add_argument("--submitit", type=int, metavar="N", help="run N shards through submitit (SLURM, or local "
                   "processes without it), then merge")
    g.add_argument("--check-shards", type=int, metavar="N", help="before writing the manifests, check that all N "
                   "shards finished and every clip is in exactly one of them")
    add_config_arguments(p.add_argument_group("preprocessing settings"), PreprocessConfig)


def _cutting(p: argparse.ArgumentParser) -> None:
    from avspeech.datasets.transcripts import MAX_DURATION, MIN_GAP

    p.add_argument("--max-duration", type=float, default=MAX_DURATION,
                   help="cut pretrain clips whose last word ends at or after this, s (AV-HuBERT: %(default)s)")
    p.add_argument("--min-gap", type=float, default=MIN_GAP,
                   help="... between words more than this apart, s (AV-HuBERT: %(default)s)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    for name, text in DATASETS.items():
        dp = sub.add_parser(name, help=text, description=text)
        _common(dp)
        if name in ("lrs3", "lrs2"):
            _cutting(dp)
        if name == "lrs3":
            dp.add_argument("--valid-ids", help="validation ids, one per line (AV-HuBERT's lrs3-valid.id); default: "
                            "1200 trainval ids chosen by hash")
        if name == "voxceleb2":
            dp.add_argument("--en-ids", help="ids of the English-only subset (AV-HuBERT's vox-en.id), one per line")


def plan_of(args: argparse.Namespace):
    from avspeech.datasets import lrs2, lrs3, voxceleb2

    if args.dataset == "lrs3":
        return lrs3.plan_lrs3(args.root, args.valid_ids, args.max_duration, args.min_gap)
    if args.dataset == "lrs2":
        return lrs2.plan_lrs2(args.root, args.max_duration, args.min_gap)
    return voxceleb2.plan_voxceleb2(args.root, args.en_ids)


def _without(argv: list[str], *options: str) -> list[str]:
    """``argv`` less ``options`` and their values (``--opt V`` or ``--opt=V``)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in options:
            skip = True
        elif not any(a.startswith(o + "=") for o in options):
            out.append(a)
    return out


def shard_job(args: argparse.Namespace, index: int, count: int) -> int:
    """One shard of the command (a submitit job): the number of failures."""
    from avspeech.datasets.prepare import prepare_dataset
    from avspeech.preprocess.config import PreprocessConfig

    report = prepare_dataset(plan_of(args), args.out, workers=args.workers, shard=(index, count),
                             config=config_from_args(PreprocessConfig, args), min_coverage=args.min_coverage)
    return len(report.failures)


def run(args: argparse.Namespace) -> int:
    import functools

    from avspeech.cli.preprocess import batch_settings
    from avspeech.datasets.prepare import prepare_dataset
    from avspeech.datasets.shards import check_shards, run_submitit, sbatch_script
    from avspeech.errors import InputError

    shard, config = batch_settings(args)
    for name in ("sbatch", "submitit", "check_shards"):
        if getattr(args, name) is not None and (getattr(args, name) < 1 or shard is not None):
            raise InputError(f"--{name.replace('_', '-')} takes a number of shards >= 1 and no --shard")
    if args.sbatch:
        argv = _without(getattr(args, "_argv", []), "--sbatch", "--workers", "--submitit", "--check-shards")
        print(sbatch_script(argv, args.sbatch, args.out, cpus=args.workers), end="")
        return 0
    plan = plan_of(args)
    if args.submitit:
        from pathlib import Path

        try:
            run_submitit(functools.partial(shard_job, args), args.submitit, Path(args.out) / "submitit",
                         cpus_per_task=args.workers, timeout_min=24 * 60)
        except ImportError as e:
            raise InputError(str(e)) from None
        args.check_shards = args.submitit
    if args.check_shards:
        check = check_shards(args.out, plan.clips, args.check_shards)
        print(check.summary())
        if not check.ok:
            return 1
    report = prepare_dataset(plan, args.out, workers=args.workers, shard=shard, config=config,
                             min_coverage=args.min_coverage)
    print(report.summary())
    return 1 if report.failures else 0
