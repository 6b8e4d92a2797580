"""The pretraining loop: one flat loop in clear sections.

- Data: the epoch's length-bucketed batches (one list for the whole job); optimiser step s consumes global
  micro-batches ``s*G .. s*G+G-1`` with ``G = grad_accum * world``; rank r takes every world-th. Masks and
  modality dropout come from a generator seeded by the global micro-batch index, so 2 ranks and 1 rank with 2
  accumulation steps compute the same thing.
- Optimiser: AdamW (weight decay on matrices only), linear warm-up then linear decay to 0, gradient clipping,
  bf16 autocast on CUDA.
- Checkpoints: every ``save_every`` steps, at the end, and on SIGTERM/Ctrl-C (then the run stops); each is a
  folder ``checkpoints/step_NNNNNNN`` (safetensors + config.json + state.pt), ``checkpoints/latest`` names the
  newest. Re-running the same command resumes exactly (model, optimiser, scheduler, RNG, data position).
- Logs: ``log.csv`` (step, loss, accuracies, lr, ...: means over the steps since the previous row),
  TensorBoard events under ``tb/``, a progress bar.
- DDP: under ``torchrun`` (gloo on CPU, NCCL on GPU); only rank 0 writes.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from avspeech.data.dataset import AVDataset, BucketBatchSampler, collate
from avspeech.data.manifest import read_labels, read_manifest
from avspeech.errors import InputError
from avspeech.io.atomic import atomic_write_text
from avspeech.model.checkpoint import load_into, load_weights
from avspeech.model.config import preset
from avspeech.model.encoder import AVEncoder
from avspeech.pretrain.masking import MaskConfig
from avspeech.pretrain.objective import MaskedPredictionModel, accuracies
from avspeech.training import (RunLog, StopOnSignal, adamw, distributed_env, latest_checkpoint, resume_latest,
                               save_step, warmup_then_decay)

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    manifest: str
    labels: str
    out: str
    model: str = "tiny"  # preset name
    fusion: str = "cross"
    steps: int = 200
    lr: float = 5e-4
    warmup: int = 20
    weight_decay: float = 0.01
    batch_frames: int = 1000  # per micro-batch, padded B x T
    max_frames: int = 200  # crop longer utterances (frames at 25 Hz)
    grad_accum: int = 1
    clip: float = 10.0
    unmasked_weight: float = 0.0
    save_every: int = 100
    log_every: int = 10
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    init_from: str | None = None  # a checkpoint whose encoder starts the run (next iteration)


def num_clusters(labels_path: str, manifest: str) -> int:
    labs = read_labels(labels_path, read_manifest(manifest))
    k = max(int(lab.max()) for lab in labs if len(lab)) + 1
    if k < 2:
        raise InputError("labels hold fewer than 2 clusters", labels_path)
    return k


def build_model(cfg: TrainConfig, k: int) -> tuple[MaskedPredictionModel, dict[str, Any]]:
    enc_cfg = preset(cfg.model, fusion=cfg.fusion)
    model = MaskedPredictionModel(AVEncoder(enc_cfg), k, unmasked_weight=cfg.unmasked_weight, mask=MaskConfig())
    if cfg.init_from:
        load_into(model.encoder, load_weights(cfg.init_from), cfg.init_from, prefix="encoder.")
    config = {"kind": "pretrain", "encoder": enc_cfg.to_dict(), "num_clusters": k,
              "train": dataclasses.asdict(cfg)}
    return model, config


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) pretraining; returns a summary (final step, last logged metrics, checkpoint path)."""
    rank, world, local = distributed_env()
    is_main = rank == 0
    if cfg.device == "auto":
        device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    out = Path(cfg.out)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)

    # ---- data
    missing = [str(p) for u in read_manifest(cfg.manifest) for p in (u.video, u.audio)
               if p is not None and not p.is_file()]
    if missing:
        raise InputError(f"{len(missing)} files named in the manifest are missing, e.g. {missing[:3]}", cfg.manifest)
    k = num_clusters(cfg.labels, cfg.manifest)
    ds = AVDataset(cfg.manifest, cfg.labels, train=True, max_frames=cfg.max_frames, seed=cfg.seed)
    all_batches = BucketBatchSampler(ds.lengths(), max(cfg.batch_frames, cfg.max_frames), seed=cfg.seed)
    group = cfg.grad_accum * world
    per_epoch = len(all_batches.batches()) // group
    if per_epoch == 0:
        raise InputError(f"{len(ds)} utterances make {len(all_batches.batches())} batches, fewer than the "
                         f"{group} one optimiser step needs (grad_accum x world); lower --batch-frames",
                         cfg.manifest)

    # ---- model, optimiser, schedule
    model, model_config = build_model(cfg, k)
    model.to(device)
    opt = adamw(model, cfg.lr, cfg.weight_decay)
    schedule = warmup_then_decay(cfg.warmup, cfg.steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    step, resumed = resume_latest(out, model, opt, sched, schedule)
    if resumed is not None and is_main:
        log.info("resumed from %s (step %d)", resumed, step)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast(
        "cpu", enabled=False)

    # ---- logs (rank 0): CSV rows past the resumed step are dropped (they were never checkpointed)
    fields = ["step", "epoch", "loss", "lr", "grad_norm", "acc_masked", "acc_unmasked", "acc_masked_av",
              "acc_masked_a", "acc_masked_v", "frames", "sec_per_step"]
    run_log = None
    if is_main:
        run_log = RunLog(out, fields, step, "pretrain")
        atomic_write_text(out / "config.json", json.dumps(model_config, indent=1) + "\n")

    last: dict[str, Any] = {}
    bar = tqdm(total=cfg.steps, initial=step, desc="pretrain", unit="step", disable=not is_main,
               dynamic_ncols=True)
    stopped = False
    window: dict[str, list] = {"loss": [], "grad_norm": [], "frames": [], "sec": [], "accs": []}
    with StopOnSignal() as stop:
        while step < cfg.steps and not stopped:
            epoch, pos = divmod(step, per_epoch)
            all_batches.set_epoch(epoch)
            ds.set_epoch(epoch)
            batches = all_batches.batches()[: per_epoch * group]
            mine = batches[pos * group:]  # global micro-batches from this step on
            mine = [b for j, b in enumerate(mine) if j % world == rank]
            loader = DataLoader(ds, batch_sampler=mine, collate_fn=collate, num_workers=cfg.workers)
            it = iter(loader)
            for s in range(pos, per_epoch):
                t0 = time.time()
                model.train()
                opt.zero_grad(set_to_none=True)
                stats = {"loss": 0.0, "frames": 0}
                accs: list[dict] = []
                for a in range(cfg.grad_accum):
                    batch = next(it)
                    g_index = epoch * per_epoch * group + s * group + a * world + rank
                    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + g_index)
                    sync = a == cfg.grad_accum - 1 or world == 1
                    ctx = ddp.no_sync() if (world > 1 and not sync) else nullcontext()
                    with ctx, autocast:
                        res = ddp(batch["lips"].to(device), batch["audio"].to(device), batch["lengths"].to(device),
                                  batch["targets"].to(device), gen)
                        loss = res.loss / cfg.grad_accum
                    loss.backward()
                    stats["loss"] += float(loss.detach())
                    stats["frames"] += int(batch["lengths"].sum())
                    accs.append(accuracies(res, batch["targets"].to(device)))
                gn = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                opt.step()
                sched.step()
                step += 1
                if world > 1:
                    t = torch.tensor([stats["loss"]], device=device)
                    dist.all_reduce(t)
                    stats["loss"] = float(t) / world
                bar.update(1)
                window["loss"].append(stats["loss"])
                window["grad_norm"].append(float(gn))
                window["frames"].append(stats["frames"])
                window["sec"].append(time.time() - t0)
                window["accs"].extend(accs)
                if is_main and (step % cfg.log_every == 0 or step == cfg.steps or step == 1):
                    # each row averages the steps since the previous row
                    row = {"step": step, "epoch": epoch, "loss": round(float(np.mean(window["loss"])), 6),
                           "lr": sched.get_last_lr()[0], "grad_norm": round(float(np.mean(window["grad_norm"])), 4),
                           "frames": int(np.sum(window["frames"])),
                           "sec_per_step": round(float(np.mean(window["sec"])), 4)}
                    for key in fields[5:10]:
                        vals = [x[key] for x in window["accs"] if key in x and not math.isnan(x[key])]
                        row[key] = round(float(np.mean(vals)), 4) if vals else ""
                    window = {k: [] for k in window}
                    run_log.write(row)
                    bar.set_postfix(loss=f"{stats['loss']:.3f}", acc=row["acc_masked"])
                    last = row
                stopped = stop.requested
                if is_main and (step % cfg.save_every == 0 or step == cfg.steps or stopped):
                    save_step(out, step, model, model_config, opt, sched, epoch=step // per_epoch,
                              batch_in_epoch=(step % per_epoch) * group)
                if world > 1:  # every rank stops together if any was signalled
                    flag = torch.tensor([int(stopped)], device=device)
                    dist.all_reduce(flag)
                    stopped = bool(flag)
                if step >= cfg.steps or stopped:
                    break
    bar.close()
    if run_log is not None:
        run_log.close()
    if world > 1:
        dist.barrier()
    ck = latest_checkpoint(out) if is_main else None
    return {"step": step, "stopped": stopped, "last": last, "checkpoint": str(ck) if ck else None}

