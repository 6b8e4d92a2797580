"""Command-line arguments of ``avspeech finetune recognition`` and ``avspeech evaluate recognition`` (heavy
imports happen inside the ``run_*`` functions)."""
from __future__ import annotations

import argparse
from pathlib import Path


def _data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", help="preprocessed manifest (avspeech preprocess); default: the built-in "
                   "synthetic set (synth + preprocess into OUT/data)")
    p.add_argument("--labels", help="transcripts, one line per manifest row (AV-HuBERT's .wrd); default: "
                   "MANIFEST with the suffix .wrd, made from the synthetic sidecars when missing")
    p.add_argument("--seed", type=int, default=0)


def _data(args: argparse.Namespace, out: Path, verb: str) -> tuple[Path, Path]:
    from avspeech.recognition.data import default_labels_path, write_synthetic_labels

    manifest = Path(args.manifest) if args.manifest else None
    if manifest is None:
        from avspeech.synth.splits import builtin_split

        train = verb == "finetune"
        print(f"no --manifest: making the built-in synthetic {'training' if train else 'held-out'} set in "
              f"{out / 'data'}")
        manifest = builtin_split(out / "data", train, 300 if train else 60)
    if args.labels:
        return manifest, Path(args.labels)
    labels = default_labels_path(manifest)
    if not labels.is_file():
        labels = write_synthetic_labels(manifest, out / "labels.wrd")
        print(f"transcripts from the synthetic sidecars: {labels}")
    return manifest, labels


def _decode_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--beam", type=int, default=8, help="CTC prefix beam width (default 8)")
    p.add_argument("--ctc-weight", type=float, default=0.5,
                   help="joint decoding: weight of CTC against the attention decoder (1 = CTC only)")
    p.add_argument("--lexicon", help="word list (one word per line): decode only sequences of these words")
    p.add_argument("--greedy", action="store_true", help="best-path decoding (fastest, no decoder rescoring)")


def decode_options(args: argparse.Namespace, model):
    from avspeech.recognition.decode import Lexicon
    from avspeech.recognition.transcribe import DecodeOptions

    if not 0.0 <= args.ctc_weight <= 1.0:
        from avspeech.errors import InputError

        raise InputError(f"--ctc-weight must be in [0, 1], got {args.ctc_weight}")
    lex = Lexicon.from_file(args.lexicon, model.tokenizer) if args.lexicon else None
    return DecodeOptions(beam=args.beam, nbest=args.beam, ctc_weight=args.ctc_weight, lexicon=lex,
                         greedy=args.greedy)


def add_finetune_arguments(p: argparse.ArgumentParser) -> None:
    _data_arguments(p)
    p.add_argument("--out", default="avspeech_recognition", help="run folder (default ./avspeech_recognition)")
    p.add_argument("--init-from", help="checkpoint whose encoder starts the model (avspeech pretrain output; a "
                   "recognition checkpoint continues whole, heads and tokenizer included)")
    p.add_argument("--model", default="tiny", choices=["tiny", "small", "base", "large"],
                   help="encoder preset without --init-from")
    p.add_argument("--freeze-encoder", action="store_true", help="train the heads only")
    p.add_argument("--freeze-steps", type=int, default=0,
                   help="hold the encoder fixed for the first N steps while the heads learn, then train it too")
    p.add_argument("--tokenizer", default="char", choices=["char", "sentencepiece"],
                   help="characters (default) or a SentencePiece model trained on the transcripts")
    p.add_argument("--sp-vocab", type=int, default=64, help="SentencePiece vocabulary size")
    p.add_argument("--decoder-layers", type=int, default=2, help="attention decoder layers (0: CTC only)")
    p.add_argument("--ctc-weight", type=float, default=0.3, help="weight of the CTC loss (hybrid objective)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--silent-prob", type=float, default=0.05,
                   help="fraction of training faces that do not speak (empty transcript, interfering audio)")
    p.add_argument("--freq-warp", type=float, default=0.15,
                   help="audio augmentation: the mel axis scaled by a factor in 1 +- this per item (0: off)")
    p.add_argument("--save-every", type=int, default=250)
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--device", default="auto")


def run_finetune(args: argparse.Namespace) -> int:
    from avspeech.recognition.train import RecognitionTrainConfig, train_recognition

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest, labels = _data(args, out, "finetune")
    cfg = RecognitionTrainConfig(
        manifest=str(manifest), labels=str(labels), out=str(out), model=args.model, init_from=args.init_from,
        freeze_encoder=args.freeze_encoder, freeze_steps=args.freeze_steps, tokenizer=args.tokenizer,
        sp_vocab=args.sp_vocab,
        decoder_layers=args.decoder_layers, ctc_weight=args.ctc_weight, steps=args.steps, lr=args.lr,
        warmup=args.warmup, batch_size=args.batch_size, silent_prob=args.silent_prob, freq_warp=args.freq_warp,
        save_every=args.save_every, log_every=args.log_every, seed=args.seed, workers=args.workers,
        device=args.device)
    summary = train_recognition(cfg)
    if summary["stopped"]:
        print(f"stopped at step {summary['step']}; checkpoint {summary['checkpoint']}; re-run the same command "
              "to resume")
        return 130
    last = summary["last"]
    print(f"done: step {summary['step']}, loss {last.get('loss')} (CTC {last.get('ctc')}, attention "
          f"{last.get('att')}); checkpoint {summary['checkpoint']}; log {out / 'log.csv'}")
    return 0


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    _data_arguments(p)
    p.add_argument("--checkpoint", help="recognition checkpoint (default: the one that ships, trained on "
                   "synthetic data)")
    p.add_argument("--out", default="avspeech_recognition_eval", help="results folder")
    p.add_argument("--modes", default="audio,video,av", help="comma-separated modes (audio, video, av)")
    p.add_argument("--snrs", default="-5,0,5", help="comma-separated SNRs (dB) for interfering speech and babble")
    p.add_argument("--clean-only", action="store_true", help="skip the noisy conditions")
    p.add_argument("--limit", type=int, help="score only the first N utterances")
    _decode_arguments(p)


def run_evaluate(args: argparse.Namespace) -> int:
    from avspeech.errors import InputError
    from avspeech.recognition.data import Condition
    from avspeech.recognition.evaluate import conditions, evaluate_recognition
    from avspeech.recognition.recognize import default_checkpoint
    from avspeech.recognition.train import load_recognizer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in ("audio", "video", "av")]
    if bad or not modes:
        raise InputError(f"--modes must list audio, video or av, got {args.modes!r}")
    try:
        snrs = [float(s) for s in args.snrs.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--snrs must be comma-separated numbers, got {args.snrs!r}") from None
    model = load_recognizer(args.checkpoint or default_checkpoint())
    manifest, labels = _data(args, out, "evaluate")
    conds = [Condition()] if args.clean_only else conditions(snrs)
    s = evaluate_recognition(model, manifest, labels, out, modes=modes, conds=conds,
                             options=decode_options(args, model), limit=args.limit)
    print((out / "summary.md").read_text(), end="")
    print(f"{s['utterances']} utterances; per utterance: {out / 'results.csv'}")
    return 0
