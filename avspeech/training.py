"""The one training engine of the package: pretraining and both heads give it a :class:`Task` (their data and a
step function) and :func:`fit` does the rest: order, accumulation, clipping, schedule, AMP, logging, exact resume,
SIGTERM/Ctrl-C and DDP.

- :func:`fit`, :class:`Task`, :class:`StepContext`, :data:`ENGINE_FIELDS`, :func:`shuffled_batches`.
- :class:`StopOnSignal`: SIGTERM or Ctrl-C asks the loop to finish its step, save a checkpoint and stop.
- :func:`adamw`: AdamW with weight decay on matrices only.
- :func:`warmup_then_decay`: linear warm-up, then linear decay to 0 at the last step (a ``LambdaLR`` factor).
- :func:`latest_checkpoint`: the checkpoint ``checkpoints/latest`` names in a run folder, if any.
- :func:`distributed_env`: rank, world size and local rank under ``torchrun`` (0, 1, 0 otherwise).
- :func:`resume_latest`: exact resume from a run folder's newest checkpoint.
- :class:`RunLog`: the run's CSV log and TensorBoard events, truncated to the resumed step.
"""
from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from avspeech.data.dataset import order_generator
from avspeech.errors import InputError
from avspeech.io.atomic import atomic_write_text

log = logging.getLogger(__name__)

DROPOUT_SALT = 9_999_991  # a micro-batch's global RNG is seeded by seed * DROPOUT_SALT + its global index


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
    """The checkpoint of run folder ``out`` that ``checkpoints/latest`` names, or None for a new run.

    Checkpoint folders appear whole (written under a temporary name, then renamed) and ``latest`` is written
    after its folder, so it names a complete one unless something outside removed it. Then, or without
    ``latest``, the newest ``step_*`` folder is taken (with a warning); a ``latest`` naming a missing folder
    with none left raises :class:`InputError`: starting over would overwrite the run's log."""
    ckpts = Path(out) / "checkpoints"
    p = ckpts / "latest"
    steps = sorted((d for d in ckpts.glob("step_*") if d.is_dir() and d.name[5:].isdigit()),
                   key=lambda d: int(d.name[5:])) if ckpts.is_dir() else []
    name = p.read_text().strip() if p.is_file() else None
    if name and (ckpts / name).is_dir():
        return ckpts / name
    if steps:
        log.warning("%s %s; resuming from the newest checkpoint there, %s", p,
                    f"names {name!r}, which is missing" if name is not None else "is missing", steps[-1].name)
        return steps[-1]
    if name is not None:
        raise InputError(f"names the checkpoint {name!r}, which is missing, and no other checkpoint is left: this "
                         "run cannot resume; move its folder away (or pass another --out) to start over", p)
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


# ---------------------------------------------------------------------------------------------------------------
# The engine


# The fields of a head's training config that the engine reads (each head's dataclass declares them, with its
# own defaults): run folder, optimiser steps, peak learning rate, warm-up steps, AdamW weight decay, micro-batches
# per step and rank, gradient clipping norm, checkpoint and log intervals, seed, data-loader workers, device.
ENGINE_FIELDS = ("out", "steps", "lr", "warmup", "weight_decay", "grad_accum", "clip", "save_every", "log_every",
                 "seed", "workers", "device")


@dataclass
class StepContext:
    """What a step function is told: the optimiser step being taken (0-based), the global index of this
    micro-batch (the same on 1 rank with G accumulation steps as on G ranks: ``step * G + a * world + rank``),
    the run's seed and the device."""

    step: int
    micro_index: int
    seed: int
    device: torch.device

    def generator(self, salt: int) -> torch.Generator:
        """A CPU generator seeded by (seed, salt, micro-batch): random draws of a step that do not depend on the
        number of ranks, nor on where a run was resumed."""
        return torch.Generator().manual_seed(self.seed * salt + self.micro_index)


class Task:
    """One head's part of training: its data and its step; the engine does the rest.

    Subclasses set ``name`` (TensorBoard prefix, progress text), ``metrics`` (logged means, in CSV order) and
    ``dataset``/``collate``, and implement :meth:`epoch_batches` and :meth:`step`."""

    name = "train"
    metrics: list[str] = ["loss"]
    amp = False  # bf16 autocast on CUDA
    # DDP: some parameters may get no gradient in a step (a head's unused branch, a frozen-then-trained part)
    unused_parameters = False
    dataset: Any = None
    collate: Callable | None = None

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The epoch's micro-batches (lists of dataset indices) in order, the same on every rank."""
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Called before an epoch's batches are drawn (datasets reseed their random crops, noise, ...)."""
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def start(self, model: torch.nn.Module, step: int, device: torch.device) -> None:
        """Called once the model is on ``device`` and resumed to ``step``, before the first step."""

    def train_mode(self, model: torch.nn.Module, step: int) -> None:
        """Put ``model`` in the state for optimiser step ``step`` (train mode; frozen parts in eval mode)."""
        model.train()

    def step(self, model: torch.nn.Module, batch: Any, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        """One micro-batch: (loss to minimise, metrics of this micro-batch; NaN where undefined)."""
        raise NotImplementedError

    def checkpoint_extra(self, step: int, per_epoch: int, group: int) -> dict[str, Any]:
        """Extra entries of the training state (informative; resume uses the step alone)."""
        return {"epoch": step // per_epoch, "batch_in_epoch": (step % per_epoch) * group}


class _StepModule(torch.nn.Module):
    """The model with the task's step as its forward, so that DDP sees the whole step (a head may call methods
    other than ``forward``)."""

    def __init__(self, model: torch.nn.Module, task: Task):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, batch: Any, ctx: StepContext):
        return self.task.step(self.model, batch, ctx)


def shuffled_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """``n // batch_size`` batches of ``batch_size`` indices of ``range(n)`` in an order drawn from (seed, epoch);
    the remainder is left out."""
    per_epoch = n // batch_size
    order = torch.randperm(n, generator=order_generator(seed, epoch))
    return order[: per_epoch * batch_size].view(per_epoch, batch_size).tolist()


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


def _nanmean(xs: list[float]) -> float | str:
    xs = [x for x in xs if not math.isnan(x)]
    return round(float(sum(xs) / len(xs)), 6) if xs else ""


def fit(task: Task, model: torch.nn.Module, model_config: dict[str, Any], opts: Any) -> dict[str, Any]:
    """Train ``model`` on ``task`` (or resume the run in ``opts.out``; ``opts`` is the head's training config, with the
    :data:`ENGINE_FIELDS`); returns the final step, whether a signal
    stopped it, the last logged row and the newest checkpoint.

    - Order: optimiser step s of epoch e consumes global micro-batches ``s*G .. s*G+G-1`` of
      ``task.epoch_batches(e)`` with ``G = grad_accum * world``; rank r takes every world-th.
    - AdamW (decay on matrices), linear warm-up then linear decay, gradient clipping, bf16 autocast on CUDA when
      ``task.amp``.
    - Checkpoints every ``save_every`` steps, at the end, and when any rank got SIGTERM/Ctrl-C (the ranks agree on
      stopping before the save is decided, so the last checkpoint is the step every rank stopped at); re-running
      resumes exactly (weights, optimiser, schedule, RNG, data position).
    - ``log.csv`` (means over the steps since the previous row), TensorBoard, a progress bar; only rank 0 writes.
    - Under ``torchrun``: DistributedDataParallel (gloo on CPU, NCCL on CUDA).
    """
    missing = [k for k in ENGINE_FIELDS if not hasattr(opts, k)]
    if missing:
        raise TypeError(f"the training config {type(opts).__name__} lacks the engine's fields {missing}")
    rank, world, local = distributed_env()
    is_main = rank == 0
    device = resolve_device(opts.device, local)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    out = Path(opts.out)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)

    group = opts.grad_accum * world
    per_epoch = len(task.epoch_batches(0)) // group
    if per_epoch == 0:
        raise InputError(f"the data make {len(task.epoch_batches(0))} batches, fewer than the {group} one "
                         f"optimiser step needs (grad_accum {opts.grad_accum} x {world} ranks); use a smaller "
                         "batch or more data")

    model.to(device)
    opt = adamw(model, opts.lr, opts.weight_decay)
    schedule = warmup_then_decay(opts.warmup, opts.steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    step, resumed = resume_latest(out, model, opt, sched, schedule)
    if resumed is not None and is_main:
        log.info("resumed from %s (step %d)", resumed, step)
    if step < opts.steps:
        task.start(model, step, device)
    stepper: torch.nn.Module = _StepModule(model, task)
    if world > 1:
        stepper = torch.nn.parallel.DistributedDataParallel(stepper, find_unused_parameters=task.unused_parameters)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" and task.amp
                else nullcontext())

    fields = ["step", "epoch", *task.metrics, "lr", "grad_norm", "sec_per_step"]
    run_log = None
    if is_main:
        run_log = RunLog(out, fields, step, task.name)
        atomic_write_text(out / "config.json", json.dumps(model_config, indent=1) + "\n")
    window: dict[str, list[float]] = {k: [] for k in [*task.metrics, "grad_norm", "sec"]}
    last: dict[str, Any] = {}
    bar = tqdm(total=opts.steps, initial=step, desc=task.name, unit="step", disable=not is_main, dynamic_ncols=True)
    stopped = False
    with StopOnSignal() as stop:
        while step < opts.steps and not stopped:
            epoch, pos = divmod(step, per_epoch)
            task.set_epoch(epoch)
            batches = task.epoch_batches(epoch)[: per_epoch * group]
            mine = [b for j, b in enumerate(batches[pos * group:]) if j % world == rank]
            loader = DataLoader(task.dataset, batch_sampler=mine, collate_fn=task.collate, num_workers=opts.workers)
            it = iter(loader)
            for s in range(pos, per_epoch):
                t0 = time.time()
                task.train_mode(model, step)
                opt.zero_grad(set_to_none=True)
                loss_sum = 0.0
                micro: list[dict[str, float]] = []
                for a in range(opts.grad_accum):
                    batch = next(it)
                    ctx = StepContext(step, step * group + a * world + rank, opts.seed, device)
                    sync = a == opts.grad_accum - 1 or world == 1
                    no_sync = stepper.no_sync() if (world > 1 and not sync) else nullcontext()
                    with no_sync:
                        # the global RNG (dropout) is drawn from (seed, micro-batch) too, so that G ranks and 1
                        # rank with G accumulation steps draw the same masks
                        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                            torch.manual_seed(opts.seed * DROPOUT_SALT + ctx.micro_index)
                            with autocast:
                                loss, metrics = stepper(batch, ctx)
                                loss = loss / opts.grad_accum
                        loss.backward()
                    loss_sum += float(loss.detach())
                    micro.append(metrics)
                gn = torch.nn.utils.clip_grad_norm_(model.parameters(), opts.clip)
                opt.step()
                sched.step()
                step += 1
                if world > 1:  # the logged loss is the mean over ranks
                    t = torch.tensor([loss_sum], device=device)
                    dist.all_reduce(t)
                    loss_sum = float(t) / world
                bar.update(1)
                for key in task.metrics:
                    if key == "loss":
                        window[key].append(loss_sum)
                    else:
                        window[key].extend(float(m.get(key, math.nan)) for m in micro)
                window["grad_norm"].append(float(gn))
                window["sec"].append(time.time() - t0)
                if is_main and (step % opts.log_every == 0 or step == opts.steps or step == 1):
                    row = {"step": step, "epoch": epoch, **{k: _nanmean(window[k]) for k in task.metrics},
                           "lr": sched.get_last_lr()[0], "grad_norm": _nanmean(window["grad_norm"]),
                           "sec_per_step": _nanmean(window["sec"])}
                    window = {k: [] for k in window}
                    run_log.write(row)
                    bar.set_postfix({k: row[k] for k in task.metrics[:2]})
                    last = row
                # every rank learns whether any was signalled *before* deciding to save, so a signal that
                # reached one rank only still ends the run with a checkpoint of the step all ranks stop at
                stopped = stop.requested
                if world > 1:
                    flag = torch.tensor([int(stopped)], device=device)
                    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                    stopped = bool(flag)
                if is_main and (step % opts.save_every == 0 or step == opts.steps or stopped):
                    save_step(out, step, model, model_config, opt, sched,
                              **task.checkpoint_extra(step, per_epoch, group))
                if step >= opts.steps or stopped:
                    break
    bar.close()
    if run_log is not None:
        run_log.close()
    if world > 1:
        dist.barrier()
    ck = latest_checkpoint(out) if is_main else None
    return {"step": step, "stopped": stopped, "last": last, "checkpoint": str(ck) if ck else None}
