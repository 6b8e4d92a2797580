"""Pieces every training loop of the package shares (pretraining, fine-tuning the heads).

- :class:`StopOnSignal`: SIGTERM or Ctrl-C asks the loop to finish its step, save a checkpoint and stop.
- :func:`adamw`: AdamW with weight decay on matrices only.
- :func:`warmup_then_decay`: linear warm-up, then linear decay to 0 at the last step (a ``LambdaLR`` factor).
- :func:`latest_checkpoint`: the checkpoint ``checkpoints/latest`` names in a run folder, if any.
- :func:`distributed_env`: rank, world size and local rank under ``torchrun`` (0, 1, 0 otherwise).
- :func:`resume_latest`: exact resume from a run folder's newest checkpoint.
- :class:`RunLog`: the run's CSV log and TensorBoard events, truncated to the resumed step.
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


def resume_latest(out: str | Path, model: torch.nn.Module, opt: torch.optim.Optimizer,
                  sched: torch.optim.lr_scheduler.LambdaLR, schedule: Callable[[int], float]) -> tuple[int, Path | None]:
    """Load the newest checkpoint of run folder ``out`` (weights, optimiser, scheduler, CPU RNG) if there is one;
    returns (its step, its path) or (0, None). The learning rate is set from ``schedule`` (this run's), so a
    resumed run may raise its total steps to train longer."""
    from avspeech.model.checkpoint import load_into, load_state, load_weights

    ck = latest_checkpoint(out)
    if ck is None:
        return 0, None
    load_into(model, load_weights(ck), ck)
    st = load_state(ck)
    opt.load_state_dict(st["optimizer"])
    sched.load_state_dict(st["scheduler"])
    step = int(st["step"])
    torch.set_rng_state(st["rng_cpu"])
    for group, base in zip(opt.param_groups, sched.base_lrs):
        group["lr"] = base * schedule(step)
    return step, ck


class RunLog:
    """``out/log.csv`` (rows past ``step``, the resumed step, are dropped: they were never checkpointed) and
    TensorBoard events under ``out/tb`` (scalars named ``<prefix>/<field>``)."""

    def __init__(self, out: str | Path, fields: list[str], step: int, prefix: str):
        import csv

        self.path, self.fields, self.prefix = Path(out) / "log.csv", fields, prefix
        rows = []
        if self.path.is_file():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
        self._file = open(self.path, "a", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=fields)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(out) / "tb"), purge_step=step + 1 if step else None)
        except ImportError:  # pragma: no cover - tensorboard is a dependency; keep going without it
            self._tb = None

    def write(self, row: dict[str, Any]) -> None:
        self._csv.writerow(row)
        self._file.flush()
        if self._tb is not None:
            for key, v in row.items():
                if key not in ("step", "epoch") and v != "" and v is not None:
                    self._tb.add_scalar(f"{self.prefix}/{key}", float(v), int(row["step"]))

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def save_step(out: str | Path, step: int, model: torch.nn.Module, config: dict[str, Any],
              opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LambdaLR, **extra: Any) -> Path:
    """Checkpoint ``out/checkpoints/step_NNNNNNN`` (weights, config, and the training state: optimiser,
    scheduler, step, CPU RNG, plus ``extra``), then point ``checkpoints/latest`` at it; both atomic."""
    from avspeech.io.atomic import atomic_write_text
    from avspeech.model.checkpoint import save_checkpoint

    name = f"step_{step:07d}"
    state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step,
             "rng_cpu": torch.get_rng_state(), **extra}
    path = save_checkpoint(Path(out) / "checkpoints" / name, model, config, state)
    atomic_write_text(Path(out) / "checkpoints" / "latest", name + "\n")
    return path
