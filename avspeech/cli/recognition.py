"""``avspeech finetune recognition`` and ``avspeech evaluate recognition`` (heavy imports inside ``run_*``).

Fine-tuning takes every field of :class:`avspeech.recognition.train.RecognitionTrainConfig` as an option; both
commands make the built-in synthetic set and its transcripts when no manifest is given.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from avspeech.cli.config_args import add_config_arguments, config_from_args
from avspeech.cli.decoding import add_decode_arguments, decode_options
from avspeech.cli.noise import add_noise_set_arguments
from avspeech.device import add_device_argument

MANIFEST_HELP = ("preprocessed manifest (avspeech preprocess); default: the built-in synthetic set (synth + "
                 "preprocess into OUT/data)")
LABELS_HELP = ("transcripts, one line per manifest row (AV-HuBERT's .wrd); default: MANIFEST with the suffix .wrd, "
               "made from the synthetic sidecars when missing")
BUILTIN_CLIPS = {"finetune": 300, "evaluate": 60}  # synthetic clips of the built-in set


def _data(args: argparse.Namespace, out: Path, verb: str) -> tuple[Path, Path]:
    """The manifest and transcripts of the run: the given ones, or made (and said so)."""
    from avspeech.data.layout import default_labels_path
    from avspeech.synth.splits import write_synthetic_labels

    manifest = Path(args.manifest) if args.manifest else None
    if manifest is None:
        from avspeech.synth.splits import builtin_split

        train = verb == "finetune"
        print(f"no --manifest: making the built-in synthetic {'training' if train else 'held-out'} set in "
              f"{out / 'data'}")
        manifest = builtin_split(out / "data", train, BUILTIN_CLIPS[verb])
    if args.labels:
        return manifest, Path(args.labels)
    labels = default_labels_path(manifest)
    if not labels.is_file():
        labels = write_synthetic_labels(manifest, out / "labels.wrd")
        print(f"transcripts from the synthetic sidecars: {labels}")
    return manifest, labels


def add_finetune_arguments(p: argparse.ArgumentParser) -> None:
    from avspeech.model.config import PRESETS
    from avspeech.recognition.train import RecognitionTrainConfig

    add_config_arguments(p, RecognitionTrainConfig, choices={"model": PRESETS}, optional={"manifest": MANIFEST_HELP},
                         helps={"labels": LABELS_HELP})


def run_finetune(args: argparse.Namespace) -> int:
    from avspeech.cli.report import report_run
    from avspeech.recognition.train import RecognitionTrainConfig, train_recognition

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest, labels = _data(args, out, "finetune")
    summary = train_recognition(config_from_args(RecognitionTrainConfig, args, manifest=str(manifest),
                                                 labels=str(labels)))
    last = summary["last"]
    return report_run(summary, out, f"loss {last.get('loss')} (CTC {last.get('ctc')}, attention {last.get('att')})")


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--manifest", help=MANIFEST_HELP)
    p.add_argument("--labels", help=LABELS_HELP)
    p.add_argument("--checkpoint", help="recognition checkpoint: ours, or an official AV-HuBERT fine-tuned seq2seq "
                   ".pt / its converted folder (default: the one that ships, trained on synthetic data)")
    p.add_argument("--spm", help="SentencePiece model for an AV-HuBERT checkpoint that carries none")
    p.add_argument("--out", default="avspeech_recognition_eval", help="results folder (default: %(default)s)")
    p.add_argument("--modes", help="comma-separated modes (audio, video, av) (default: audio,video,av; for an "
                   "AV-HuBERT model the modes it allows, e.g. video for a lip-reading model)")
    p.add_argument("--snrs", default="-5,0,5", help="comma-separated SNRs (dB) for interfering speech and babble "
                   "(default: %(default)s)")
    p.add_argument("--clean-only", action="store_true", help="skip the interfering speech and babble conditions")
    add_noise_set_arguments(p, "condition")
    p.add_argument("--limit", type=int, help="score only the first N utterances")
    add_device_argument(p)
    add_decode_arguments(p)


def run_evaluate(args: argparse.Namespace) -> int:
    from avspeech.batch import read_failures, report_failures
    from avspeech.errors import InputError
    from avspeech.recognition.data import Condition
    from avspeech.recognition.evaluate import conditions, evaluate_recognition
    from avspeech.recognition.recognize import load_model
    from avspeech.recognition.seq2seq import is_seq2seq

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.checkpoint, args.spm, args.device)
    default = ",".join(model.modes) if is_seq2seq(model) else "audio,video,av"
    modes = [m.strip() for m in (args.modes or default).split(",") if m.strip()]
    bad = [m for m in modes if m not in ("audio", "video", "av")]
    if bad or not modes:
        raise InputError(f"--modes must list audio, video or av, got {args.modes!r}")
    if is_seq2seq(model):
        for m in modes:
            model.check_mode(m)
    try:
        snrs = [float(s) for s in args.snrs.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--snrs must be comma-separated numbers, got {args.snrs!r}") from None
    manifest, labels = _data(args, out, "evaluate")
    conds = [Condition()] if args.clean_only else conditions(snrs)
    s = evaluate_recognition(model, manifest, labels, out, modes=modes, conds=conds,
                             options=decode_options(args, model), limit=args.limit, noise=args.noise,
                             snr=tuple(args.snr))
    print((out / "summary.md").read_text(), end="")
    print(f"{s['utterances']} utterances; per utterance: {out / 'results.csv'}")
    failures = read_failures(out / "failures.tsv")
    if failures:
        print(report_failures(failures, s["utterances"] + s["failed"], "utterances"))
    return 1 if failures else 0
