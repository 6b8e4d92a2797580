"""Pieces every training loop of the package shares (pretraining, fine-tuning the heads).

- :class:`StopOnSignal`: SIGTERM or Ctrl-C asks the loop to finish its step, save a checkpoint and stop.
- :func:`adamw`: AdamW with weight decay on matrices only.
- :func:`warmup_then_decay`: linear warm-up, then linear decay to 0 at the last step (a ``LambdaLR`` factor).
- :func:`latest_checkpoint`: the checkpoint ``checkpoints/latest`` names in a run folder, if any.
- :func:`distributed_env`: rank, world size and local rank under ``torchrun`` (0, 1, 0 otherwise).
"""
from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Callable

import torch


class StopOnSignal:
    """Context manager; ``requested`` turns True on SIGTERM or Ctrl-C (a second Ctrl-C raises at once)."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "StopOnSignal":
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def distributed_env() -> tuple[int, int, int]:
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    return 0, 1, 0


def adamw(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98))


def warmup_then_decay(warmup: int, steps: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(warmup, 1)
        return max(0.0, (steps - step) / max(steps - warmup, 1))
    return f


def latest_checkpoint(out: str | Path) -> Path | None:
    out = Path(out)
    p = out / "checkpoints" / "latest"
    if p.is_file():
        ck = out / "checkpoints" / p.read_text().strip()
        if ck.is_dir():
            return ck
    return None
