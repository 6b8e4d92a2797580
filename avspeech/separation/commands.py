"""Command-line arguments of ``avspeech finetune separation`` and ``avspeech evaluate separation`` (heavy
imports happen inside the ``run_*`` functions)."""
from __future__ import annotations

import argparse
from pathlib import Path


def _mixture_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", help="preprocessed manifest (avspeech preprocess); default: the built-in "
                   "synthetic set (synth + preprocess into OUT/data)")
    p.add_argument("--mixtures", help="mixture list TSV (id, utt_a, utt_b, gain_db); default: drawn from the "
                   "manifest and saved as OUT/mixtures.tsv")
    p.add_argument("--num-mixtures", type=int, default=None, help="mixtures to draw when --mixtures is not "
                   "given (default 20000 for finetune, 100 for evaluate)")
    p.add_argument("--gain-db-range", type=float, default=None, help="relative gain range in dB when drawing "
                   "mixtures (default 10, i.e. +-5 dB, for finetune; 0 for evaluate)")
    p.add_argument("--seed", type=int, default=0)


def _data(args: argparse.Namespace, out: Path, verb: str) -> tuple[Path, Path]:
    from avspeech.data.manifest import read_manifest
    from avspeech.separation.mixtures import make_mixtures, write_mixtures

    manifest = Path(args.manifest) if args.manifest else None
    if manifest is None:
        from avspeech.synth.splits import builtin_split

        train = verb == "finetune"
        print(f"no --manifest: making the built-in synthetic {'training' if train else 'held-out'} set in "
              f"{out / 'data'}")
        manifest = builtin_split(out / "data", train, 120 if train else 40)
    if args.mixtures:
        return manifest, Path(args.mixtures)
    mixtures = out / "mixtures.tsv"
    if not mixtures.is_file():
        n = args.num_mixtures or (20000 if verb == "finetune" else 100)
        gain = args.gain_db_range if args.gain_db_range is not None else (10.0 if verb == "finetune" else 0.0)
        write_mixtures(mixtures, make_mixtures(read_manifest(manifest), n, seed=args.seed, gain_db_range=gain))
        print(f"mixture list: {mixtures} ({n} mixtures, gains in +-{gain / 2:g} dB)")
    return manifest, mixtures


def add_finetune_arguments(p: argparse.ArgumentParser) -> None:
    _mixture_arguments(p)
    p.add_argument("--out", default="avspeech_separation", help="run folder (default ./avspeech_separation)")
    p.add_argument("--mode", default="av", choices=["av", "audio"],
                   help="av: the target face's lips select the voice; audio: the audio-only baseline (2 outputs, PIT)")
    p.add_argument("--init-from", help="checkpoint whose encoder starts the model (avspeech pretrain output)")
    p.add_argument("--model", default="tiny", choices=["tiny", "small", "base", "large"],
                   help="encoder preset without --init-from")
    p.add_argument("--freeze-encoder", action="store_true", help="train the head only")
    p.add_argument("--continue-from", help="separation checkpoint whose whole separator (config and weights) "
                   "starts the run, e.g. the shipped one trained further")
    p.add_argument("--freeze-lip-frontend", action="store_true",
                   help="hold the lip front-end fixed and compute its output for each training clip once "
                   "(several times faster steps on CPU)")
    p.add_argument("--lstm-hidden", type=int, default=None,
                   help="BLSTM units each way (default 128); with --continue-from, a wider BLSTM is grown from the "
                   "checkpoint's without changing its output")
    p.add_argument("--no-lip-attention", action="store_true",
                   help="condition on the held encoder features only (no cross-modal attention from the STFT frames)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop-seconds", type=float, default=2.0, help="training crop length (default 2 s)")
    p.add_argument("--silent-prob", type=float, default=0.1,
                   help="fraction of targets that are faces that do not speak (their reference is silence)")
    p.add_argument("--save-every", type=int, default=250)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--device", default="auto")


def run_finetune(args: argparse.Namespace) -> int:
    from avspeech.separation.train import SeparationTrainConfig, train_separation

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest, mixtures = _data(args, out, "finetune")
    cfg = SeparationTrainConfig(
        manifest=str(manifest), mixtures=str(mixtures), out=str(out), mode=args.mode, model=args.model,
        init_from=args.init_from, freeze_encoder=args.freeze_encoder, continue_from=args.continue_from,
        freeze_lip_frontend=args.freeze_lip_frontend, lip_attention=not args.no_lip_attention,
        lstm_hidden=args.lstm_hidden, steps=args.steps, lr=args.lr, warmup=args.warmup, batch_size=args.batch_size,
        crop_frames=int(round(args.crop_seconds * 25)), silent_prob=args.silent_prob, save_every=args.save_every,
        log_every=args.log_every, seed=args.seed, workers=args.workers, device=args.device)
    summary = train_separation(cfg)
    if summary["stopped"]:
        print(f"stopped at step {summary['step']}; checkpoint {summary['checkpoint']}; re-run the same command "
              "to resume")
        return 130
    last = summary["last"]
    print(f"done: step {summary['step']}, loss {last.get('loss')}, training SI-SDR {last.get('si_sdr')} dB; "
          f"checkpoint {summary['checkpoint']}; log {out / 'log.csv'}")
    return 0


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    _mixture_arguments(p)
    p.add_argument("--checkpoint", help="separation checkpoint (default: the one that ships, trained on "
                   "synthetic data)")
    p.add_argument("--out", default="avspeech_separation_eval", help="results folder")
    p.add_argument("--limit", type=int, help="score only the first N targets")
    p.add_argument("--no-perceptual", action="store_true", help="skip PESQ and STOI (faster)")


def run_evaluate(args: argparse.Namespace) -> int:
    from avspeech.separation.evaluate import evaluate_separation
    from avspeech.separation.separate import default_checkpoint
    from avspeech.separation.train import load_separator

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest, mixtures = _data(args, out, "evaluate")
    model = load_separator(args.checkpoint or default_checkpoint())
    s = evaluate_separation(model, manifest, mixtures, out, perceptual=not args.no_perceptual, limit=args.limit)
    print((out / "summary.md").read_text(), end="")
    print(f"{s['targets']} targets: SI-SDRi {s['si_sdri']:.2f} dB, SDRi {s['sdri']:.2f} dB; per target: "
          f"{out / 'results.csv'}")
    return 0
