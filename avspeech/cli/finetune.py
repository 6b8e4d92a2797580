"""``avspeech finetune TASK``: train a head (separation, recognition) on top of the audio-visual encoder.

Each task's commands live in a module of this package exposing ``add_{verb}_arguments(parser)`` and
``run_{verb}(args)`` for ``verb`` in ``finetune``, ``evaluate`` (heavy imports happen inside ``run_*``).
"""
from __future__ import annotations

import argparse
import importlib

TASKS: dict[str, tuple[str, str]] = {
    "separation": ("avspeech.cli.separation", "one waveform per face: mixture audio + that face's lips"),
    "recognition": ("avspeech.cli.recognition", "one transcript per face: CTC + attention decoder, A/V/AV"),
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
