"""``avspeech finetune TASK``: train a head (separation, recognition) on top of the audio-visual encoder.

Each task lives in its own package and exposes ``add_finetune_arguments(parser)`` and ``run_finetune(args)``
from a light ``commands`` module (heavy imports happen inside ``run_finetune``).
"""
from __future__ import annotations

import argparse
import importlib

HELP = "fine-tune a head on the encoder (separation, recognition)"

TASKS: dict[str, tuple[str, str]] = {
    "separation": ("avspeech.separation.commands", "one waveform per face: mixture audio + that face's lips"),
    "recognition": ("avspeech.recognition.commands", "one transcript per face: CTC + attention decoder, A/V/AV"),
}


def add_task_parsers(p: argparse.ArgumentParser, verb: str) -> None:
    """One sub-command per task; ``verb`` is ``finetune`` or ``evaluate``."""
    sub = p.add_subparsers(dest="task", metavar="TASK", required=True)
    for name, (module_name, help_text) in TASKS.items():
        module = importlib.import_module(module_name)
        tp = sub.add_parser(name, help=help_text, description=f"{verb} {name}: {help_text}")
        getattr(module, f"add_{verb}_arguments")(tp)
        tp.set_defaults(_task_run=getattr(module, f"run_{verb}"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_task_parsers(p, "finetune")


def run(args: argparse.Namespace) -> int:
    return int(args._task_run(args) or 0)
