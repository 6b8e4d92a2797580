"""Fine-tuning the separation head (``avspeech finetune separation``): one flat loop.

- Data: (mixture, target) items of a mixture list (:class:`~avspeech.separation.mixtures.MixtureDataset`), cut
  to ``crop_frames`` at seeded random positions, in an order drawn from ``(seed, epoch)``; a fraction
  ``silent_prob`` of targets are faces that do not speak.
- Model: :class:`~avspeech.separation.model.AVSeparator`; the encoder starts from ``init_from`` (a pretraining
  or separation checkpoint) or at random, and is fine-tuned unless ``freeze_encoder``.
- Optimiser: AdamW (decay on matrices), linear warm-up then decay, gradient clipping.
- Checkpoints ``checkpoints/step_NNNNNNN`` (safetensors + config.json + state.pt) every ``save_every`` steps, at
  the end and on SIGTERM/Ctrl-C; re-running the same command resumes exactly (model, optimiser, schedule, RNG,
  data position). ``log.csv`` and TensorBoard events under ``tb/``; a progress bar.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from avspeech.errors import InputError
from avspeech.io.atomic import atomic_write_text
from avspeech.model.checkpoint import encoder_config_of, load_config, load_into, load_weights
from avspeech.model.config import preset
from avspeech.separation.metrics import separation_loss, si_sdr
from avspeech.separation.mixtures import SAMPLES_PER_FRAME, MixtureDataset, collate_mixtures
from avspeech.separation.model import AVSeparator, SeparatorConfig
from avspeech.training import (RunLog, StopOnSignal, adamw, latest_checkpoint, resume_latest, save_step,
                               warmup_then_decay)

log = logging.getLogger(__name__)


@dataclass
class SeparationTrainConfig:
    manifest: str
    mixtures: str
    out: str
    mode: str = "av"  # "av" or "audio" (the audio-only baseline)
    model: str = "tiny"  # encoder preset, when not initialised from a checkpoint
    init_from: str | None = None
    freeze_encoder: bool = False
    lip_attention: bool = True
    hidden: int = 128
    steps: int = 2000
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.01
    batch_size: int = 8
    crop_frames: int = 50  # 2 s
    silent_prob: float = 0.1
    clip: float = 5.0
    save_every: int = 250
    log_every: int = 25
    seed: int = 0
    workers: int = 0
    device: str = "auto"


def build_separator(cfg: SeparationTrainConfig) -> tuple[AVSeparator, dict[str, Any]]:
    enc = encoder_config_of(cfg.init_from) if cfg.init_from else preset(cfg.model)
    sep_cfg = SeparatorConfig(encoder=enc, mode=cfg.mode, hidden=cfg.hidden,
                              lip_attention=cfg.lip_attention)
    model = AVSeparator(sep_cfg)
    if cfg.init_from:  # the encoder only: a pretraining checkpoint, or another separation run
        load_into(model.encoder, load_weights(cfg.init_from), cfg.init_from, prefix="encoder.")
    if cfg.freeze_encoder:
        model.encoder.requires_grad_(False)
    return model, {"kind": "separation", "separator": sep_cfg.to_dict(), "train": dataclasses.asdict(cfg)}


def load_separator(path: str | Path) -> AVSeparator:
    """The :class:`AVSeparator` of a separation checkpoint folder (weights and config only; no code runs)."""
    c = load_config(path)
    if c.get("kind") != "separation" or "separator" not in c:
        raise InputError(f"not a separation checkpoint (kind {c.get('kind')!r}); train one with "
                         "'avspeech finetune separation'", path)
    try:
        sep_cfg = SeparatorConfig.from_dict(c["separator"])
    except (TypeError, ValueError) as e:
        raise InputError(f"bad separator config ({e})", Path(path) / "config.json") from e
    model = AVSeparator(sep_cfg)
    load_into(model, load_weights(path), path)
    return model.eval()


def _run_model(model: AVSeparator, batch: dict, device: torch.device) -> torch.Tensor:
    return model(batch["mixture"].to(device), batch["lips"].to(device), batch["audio"].to(device),
                 batch["lengths"].to(device))


def _nanmean(xs: list[float]) -> float:
    xs = [x for x in xs if not np.isnan(x)]
    return round(float(np.mean(xs)), 3) if xs else float("nan")


def train_separation(cfg: SeparationTrainConfig) -> dict[str, Any]:
    """Run (or resume) fine-tuning; returns the final step, the last logged row and the checkpoint path."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    ds = MixtureDataset(cfg.manifest, cfg.mixtures, train=True, crop_frames=cfg.crop_frames,
                        silent_prob=cfg.silent_prob if cfg.mode == "av" else 0.0, seed=cfg.seed)
    per_epoch = len(ds) // cfg.batch_size
    if per_epoch == 0:
        raise InputError(f"{len(ds)} training items are fewer than one batch of {cfg.batch_size}", cfg.mixtures)

    model, model_config = build_separator(cfg)
    model.to(device)
    opt = adamw(model, cfg.lr, cfg.weight_decay)
    schedule = warmup_then_decay(cfg.warmup, cfg.steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    step, resumed = resume_latest(out, model, opt, sched, schedule)
    if resumed is not None:
        log.info("resumed from %s (step %d)", resumed, step)

    fields = ["step", "epoch", "loss", "si_sdr", "lr", "grad_norm", "sec_per_step"]
    run_log = RunLog(out, fields, step, "separation")
    atomic_write_text(out / "config.json", json.dumps(model_config, indent=1) + "\n")

    last: dict[str, Any] = {}
    window: dict[str, list] = {"loss": [], "si_sdr": [], "grad_norm": [], "sec": []}
    bar = tqdm(total=cfg.steps, initial=step, desc=f"finetune separation ({cfg.mode})", unit="step",
               dynamic_ncols=True)
    stopped = False
    with StopOnSignal() as stop:
        while step < cfg.steps and not stopped:
            epoch, pos = divmod(step, per_epoch)
            ds.set_epoch(epoch)
            order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
            batches = order[: per_epoch * cfg.batch_size].view(per_epoch, cfg.batch_size).tolist()[pos:]
            loader = DataLoader(ds, batch_sampler=batches, collate_fn=collate_mixtures, num_workers=cfg.workers)
            for batch in loader:
                t0 = time.time()
                model.train()
                if cfg.freeze_encoder:
                    model.encoder.eval()
                est = _run_model(model, batch, device)
                n_samples = batch["lengths"].to(device) * SAMPLES_PER_FRAME
                loss = separation_loss(est, batch["target"].to(device), batch["interferer"].to(device),
                                       batch["mixture"].to(device), batch["silent"].to(device), n_samples)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                gn = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                opt.step()
                sched.step()
                step += 1
                bar.update(1)
                with torch.no_grad():
                    speaking = ~batch["silent"]
                    s = si_sdr(est[:, 0].cpu(), batch["target"], n_samples.cpu())[speaking] if cfg.mode == "av" \
                        else -loss.detach().cpu().view(1)
                window["loss"].append(float(loss.detach()))
                window["si_sdr"].append(float(s.mean()) if len(s) else float("nan"))
                window["grad_norm"].append(float(gn))
                window["sec"].append(time.time() - t0)
                if step % cfg.log_every == 0 or step == cfg.steps or step == 1:
                    row = {"step": step, "epoch": epoch, "loss": round(float(np.mean(window["loss"])), 4),
                           "si_sdr": _nanmean(window["si_sdr"]), "lr": sched.get_last_lr()[0],
                           "grad_norm": round(float(np.mean(window["grad_norm"])), 3),
                           "sec_per_step": round(float(np.mean(window["sec"])), 4)}
                    window = {k: [] for k in window}
                    run_log.write(row)
                    bar.set_postfix(loss=f"{row['loss']:.2f}", si_sdr=row["si_sdr"])
                    last = row
                stopped = stop.requested
                if step % cfg.save_every == 0 or step == cfg.steps or stopped:
                    save_step(out, step, model, model_config, opt, sched)
                if step >= cfg.steps or stopped:
                    break
    bar.close()
    run_log.close()
    ck = latest_checkpoint(out)
    return {"step": step, "stopped": stopped, "last": last, "checkpoint": str(ck) if ck else None}
