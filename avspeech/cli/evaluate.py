"""``avspeech evaluate TASK``: score a fine-tuned head on a held-out set (CSV per utterance plus a markdown table)."""
from __future__ import annotations

import argparse

from avspeech.cli.finetune import add_task_parsers


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_task_parsers(p, "evaluate")


def run(args: argparse.Namespace) -> int:
    return int(args._task_run(args) or 0)
