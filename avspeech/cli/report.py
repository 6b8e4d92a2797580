"""What a training command prints when its run ends (the library returns the summary; the command reports it)."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def report_run(summary: dict[str, Any], out: str | Path, metrics: str) -> int:
    """Print how ``avspeech.training.fit``'s run ended; returns the exit status (130 when a signal stopped it).
    ``metrics`` describes the last logged row; under torchrun only rank 0 (which holds the checkpoint) prints."""
    if summary["stopped"]:
        print(f"stopped at step {summary['step']}; checkpoint {summary['checkpoint']}; re-run the same command "
              "to resume")
        return 130
    if summary["checkpoint"]:
        print(f"done: step {summary['step']}, {metrics}; checkpoint {summary['checkpoint']}; "
              f"log {Path(out) / 'log.csv'}")
    return 0
