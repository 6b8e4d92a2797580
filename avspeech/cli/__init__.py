"""The ``avspeech`` command: a thin layer over library functions.

Each subcommand is a module of this package exposing ``add_arguments(parser)`` and ``run(args) -> int``; its
one-line summary lives in ``COMMANDS`` below. Modules are imported only when their command runs (or its
``--help`` is asked for), so ``avspeech --help`` stays fast and a heavy dependency of one command never slows
down another. Options that are settings of a stage are built from its config dataclass (``config_args``), so
each default lives in one place: the dataclass.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys

from avspeech import __version__
from avspeech.errors import InputError

# name -> (module, one-line help). Add a stage's command here.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("avspeech.cli.demo", "run the main job end to end on the built-in synthetic default"),
    "synth": ("avspeech.cli.synth", "write a synthetic talking-face corpus with known ground truth"),
    "preprocess": ("avspeech.cli.preprocess", "face tracks, 96x96 mouth ROIs and 16 kHz audio (AV-HuBERT layout)"),
    "prepare": ("avspeech.cli.prepare", "a real dataset's folder (LRS3, LRS2, VoxCeleb2) to preprocessed tracks and "
                "AV-HuBERT-layout manifests"),
    "mixtures": ("avspeech.cli.mixtures", "2-speaker mixture lists: published LRS2/LRS3/VoxCeleb2-2Mix lists in and "
                 "out, seeded lists by the same recipe"),
    "noise": ("avspeech.cli.noise", "noise sets for noisy training and evaluation: MUSAN noise/music/babble and a "
              "dataset's own speech and babble (AV-HuBERT's lists)"),
    "cluster": ("avspeech.cli.cluster", "make k-means cluster targets for pretraining"),
    "pretrain": ("avspeech.cli.pretrain", "pretrain the encoder by joint masked cluster prediction"),
    "finetune": ("avspeech.cli.finetune", "fine-tune a head on the encoder (separation, recognition)"),
    "evaluate": ("avspeech.cli.evaluate", "evaluate a head: separation (SI-SDRi, SDRi, PESQ, STOI), recognition "
                 "(WER, CER)"),
    "separate": ("avspeech.cli.separate", "separate the speakers of a clip: one wav, mp4 and thumbnail per face"),
    "recognize": ("avspeech.cli.recognize", "transcribe each visible speaker of a clip (JSON + SRT per face)"),
    "convert": ("avspeech.cli.convert", "convert an official AV-HuBERT checkpoint (.pt) into a checkpoint folder"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; only ``command``'s module (if any) is imported and given its arguments."""
    parser = argparse.ArgumentParser(
        prog="avspeech",
        description="Audio-visual speech: lip ROIs from video, AV-HuBERT-style pretraining, per-face "
        "separation and recognition.",
    )
    parser.add_argument("--version", action="version", version=f"avspeech {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
    return parser


_WRAPPED = re.compile(r"^avspeech\.errors\.\w+: ", re.MULTILINE)


def _message(e: InputError) -> str:
    """The error's message; for one that torch re-raised from a DataLoader worker (its message is then
    "Caught InputError in DataLoader worker process 0." and the worker's whole traceback), the original message,
    which is what follows the traceback's last ``avspeech.errors.<Error>: `` line."""
    text = str(e)
    if "Original Traceback" not in text:
        return text
    last = None
    for last in _WRAPPED.finditer(text):
        pass
    return text[last.end():].strip() if last else text


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    args._argv = list(argv)  # the command as given (e.g. for a job script that repeats it)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args._run(args) or 0)
    except InputError as e:
        print(f"avspeech {args.command}: error: {_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"avspeech {args.command}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
