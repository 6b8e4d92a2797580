"""Pretraining by joint masked cluster prediction: the data and the step; :func:`avspeech.training.fit` runs them.

- Data: the epoch's length-bucketed batches (:class:`~avspeech.data.dataset.BucketBatchSampler`), utterances
  cropped to ``max_frames``. Masks and modality dropout come from a generator seeded by the global micro-batch
  index, so 2 ranks and 1 rank with 2 accumulation steps compute the same thing.
- The engine: AdamW, warm-up then decay, clipping, bf16 autocast on CUDA, checkpoints ``checkpoints/step_NNNNNNN``
  (re-running the same command resumes exactly), ``log.csv`` + TensorBoard + a progress bar, DDP under torchrun.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import torch

from avspeech.data.dataset import AVDataset, BucketBatchSampler, collate
from avspeech.data.layout import read_labels, read_manifest
from avspeech.errors import InputError
from avspeech.model.checkpoint import load_into, load_weights
from avspeech.model.config import preset
from avspeech.model.encoder import AVEncoder
from avspeech.pretrain.masking import MaskConfig
from avspeech.pretrain.objective import MaskedPredictionModel, accuracies
from avspeech.training import StepContext, Task, fit

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


class PretrainTask(Task):
    """Masked cluster prediction on length-bucketed batches. Masks and modality dropout come from a generator
    seeded by the global micro-batch index, so 2 ranks and 1 rank with 2 accumulation steps compute the same."""

    name = "pretrain"
    metrics = ["loss", "acc_masked", "acc_unmasked", "acc_masked_av", "acc_masked_a", "acc_masked_v", "frames"]
    amp = True
    collate = staticmethod(collate)

    def __init__(self, cfg: TrainConfig):
        self.dataset = AVDataset(cfg.manifest, cfg.labels, train=True, max_frames=cfg.max_frames, seed=cfg.seed)
        self.sampler = BucketBatchSampler(self.dataset.lengths(), max(cfg.batch_frames, cfg.max_frames),
                                          seed=cfg.seed)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        self.sampler.set_epoch(epoch)
        return self.sampler.batches()

    def step(self, model, batch, ctx: StepContext):
        dev = ctx.device
        targets = batch["targets"].to(dev)
        res = model(batch["lips"].to(dev), batch["audio"].to(dev), batch["lengths"].to(dev), targets,
                    ctx.generator(1_000_003))
        return res.loss, {**accuracies(res, targets), "frames": float(batch["lengths"].sum())}


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) pretraining; returns a summary (final step, last logged metrics, checkpoint path)."""
    missing = [str(p) for u in read_manifest(cfg.manifest) for p in (u.video, u.audio)
               if p is not None and not p.is_file()]
    if missing:
        raise InputError(f"{len(missing)} files named in the manifest are missing, e.g. {missing[:3]}", cfg.manifest)
    k = num_clusters(cfg.labels, cfg.manifest)
    torch.manual_seed(cfg.seed)
    task = PretrainTask(cfg)
    model, model_config = build_model(cfg, k)
    return fit(task, model, model_config, cfg)
