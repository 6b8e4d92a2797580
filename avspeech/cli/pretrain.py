"""``avspeech pretrain``: joint masked-prediction pretraining (one process, or many under torchrun)."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "pretrain the audio-visual encoder by masked cluster prediction (default: a tiny model on synthetic data)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", help="manifest TSV; without it and --labels, the built-in default: synth, "
                   "preprocess, cluster, then pretrain a tiny model")
    p.add_argument("--labels", help="cluster labels (avspeech cluster)")
    p.add_argument("--out", default="avspeech_pretrain", help="run folder (default ./avspeech_pretrain)")
    p.add_argument("--model", default="tiny", choices=["tiny", "small", "base", "large"])
    p.add_argument("--fusion", default="cross", choices=["cross", "concat"])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 2e-3 for tiny, 5e-4 for "
                   "base and large)")
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--batch-frames", type=int, default=1000, help="padded frames per micro-batch (B x T)")
    p.add_argument("--max-frames", type=int, default=200, help="crop utterances to this many frames")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--clip", type=float, default=10.0, help="gradient-norm clip")
    p.add_argument("--unmasked-weight", type=float, default=0.0)
    p.add_argument("--save-every", type=int, default=100)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--device", default="auto")
    p.add_argument("--init-from", help="start the encoder from this checkpoint (a later iteration)")
    p.add_argument("--clips", type=int, default=24, help="built-in default only: synthetic clips to make")
    p.add_argument("--clusters", type=int, default=25, help="built-in default only: k-means clusters")


def run(args: argparse.Namespace) -> int:
    from avspeech.pretrain.train import TrainConfig, train

    if bool(args.manifest) != bool(args.labels):
        from avspeech.errors import InputError

        raise InputError("give both --manifest and --labels, or neither (the built-in synthetic default)")
    manifest, labels = args.manifest, args.labels
    if manifest is None:
        from avspeech.pretrain.default import prepare_default_data

        manifest, labels = prepare_default_data(Path(args.out) / "data", clips=args.clips,
                                                clusters=args.clusters, seed=args.seed)
    cfg = TrainConfig(manifest=str(manifest), labels=str(labels), out=args.out, model=args.model,
                      fusion=args.fusion, steps=args.steps,
                      lr=args.lr or (2e-3 if args.model == "tiny" else 5e-4), warmup=args.warmup,
                      batch_frames=args.batch_frames, max_frames=args.max_frames, grad_accum=args.grad_accum,
                      clip=args.clip, unmasked_weight=args.unmasked_weight, save_every=args.save_every,
                      log_every=args.log_every, seed=args.seed, workers=args.workers, device=args.device,
                      init_from=args.init_from)
    summary = train(cfg)
    last = summary["last"]
    if summary["stopped"]:
        print(f"stopped at step {summary['step']}; checkpoint {summary['checkpoint']}; re-run the same command "
              "to resume")
        return 130
    if summary["checkpoint"]:
        print(f"done: step {summary['step']}, loss {last.get('loss')}, masked accuracy {last.get('acc_masked')}; "
              f"checkpoint {summary['checkpoint']}; log {Path(args.out) / 'log.csv'}")
    return 0
