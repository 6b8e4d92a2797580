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

from avspeech.data.dataset import AVDataset, BucketBatchSampler, collate, require_readable
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
    """Pretraining settings; ``avspeech pretrain`` takes each field as an option (``--batch-frames`` etc.)."""

    manifest: str = dataclasses.field(metadata={"help": "manifest TSV (avspeech preprocess output, or AV-HuBERT's)"})
    labels: str = dataclasses.field(metadata={"help": "cluster labels, one line per manifest row (avspeech cluster)"})
    out: str = dataclasses.field(default="avspeech_pretrain", metadata={"help": "run folder"})
    model: str = dataclasses.field(default="tiny", metadata={"help": "encoder preset"})
    fusion: str = dataclasses.field(default="cross", metadata={
        "help": "cross: cross-modal attention blocks; concat: AV-HuBERT's concatenation",
        "choices": ("cross", "concat")})
    steps: int = dataclasses.field(default=300, metadata={"help": "optimiser steps"})
    lr: float | None = dataclasses.field(default=None, metadata={
        "help": "peak learning rate (default: 2e-3 for tiny, 5e-4 for the larger presets)"})
    warmup: int = dataclasses.field(default=30, metadata={"help": "linear warm-up steps"})
    weight_decay: float = dataclasses.field(default=0.01, metadata={"help": "AdamW weight decay"})
    batch_frames: int = dataclasses.field(default=1000, metadata={"help": "padded frames per micro-batch (B x T)"})
    max_frames: int = dataclasses.field(default=200, metadata={"help": "crop utterances to this many frames (25 Hz)"})
    grad_accum: int = dataclasses.field(default=1, metadata={"help": "micro-batches per optimiser step"})
    clip: float = dataclasses.field(default=10.0, metadata={"help": "gradient-norm clip"})
    unmasked_weight: float = dataclasses.field(default=0.0, metadata={"help": "loss weight of the unmasked frames"})
    save_every: int = dataclasses.field(default=100, metadata={"help": "steps between checkpoints"})
    log_every: int = dataclasses.field(default=10, metadata={"help": "steps between log rows"})
    seed: int = dataclasses.field(default=0, metadata={"help": "random seed (initialisation, data order, masks)"})
    workers: int = dataclasses.field(default=0, metadata={"help": "DataLoader worker processes"})
    device: str = dataclasses.field(default="auto", metadata={"help": "auto: cuda when available, else cpu"})
    init_from: str | None = dataclasses.field(default=None, metadata={
        "help": "start the encoder from this checkpoint (a later iteration)"})

    def __post_init__(self) -> None:
        if self.lr is None:  # the preset's learning rate
            self.lr = 2e-3 if self.model == "tiny" else 5e-4


def num_clusters(labels_path: str, manifest: str) -> int:
    labs = read_labels(labels_path, read_manifest(manifest))
    k = max(int(lab.max()) for lab in labs if len(lab)) + 1
    if k < 2:
        raise InputError("labels hold fewer than 2 clusters", labels_path)
    return k


def pretraining_start(path: str) -> tuple[Any, dict[str, torch.Tensor], dict[str, Any], dict[str, torch.Tensor]]:
    """What ``--init-from`` gives a pretraining run: (encoder config, encoder weights, settings, head tensors).

    From an official AV-HuBERT file (:mod:`avspeech.model.avhubert`): its encoder, its masking level and
    settings (``mask_level``, ``mask``, ``temperature``, ``proj_dim``) and its ``mask_emb``, ``final_proj`` and
    ``label_embs_concat`` as ``audio_mask_emb``, ``proj`` and ``cluster_emb``. From a checkpoint folder of ours
    (a pretraining run, a converted AV-HuBERT file, or a fine-tuned head): its encoder and, for a pretraining
    one, its settings and head tensors."""
    from avspeech.model.checkpoint import is_official_file, encoder_init, load_config

    if is_official_file(path):
        from avspeech.model.avhubert import load

        m = load(path)
        p = m.pretraining
        proj_dim = p.proj_weight.shape[0] if p.proj_weight is not None else 256
        settings = {"mask_level": p.mask_level, "mask": p.mask, "temperature": p.temperature, "proj_dim": proj_dim}
        head = p.state_dict()
        head.pop("cluster_emb", None)
        clusters = p.clusters()  # rows in our label order (fairseq's specials dropped)
        if clusters is not None:
            head["cluster_emb"] = clusters
        return m.config, m.encoder.state_dict(), settings, head
    enc_cfg, enc_weights = encoder_init(path)
    c = load_config(path)
    if c.get("kind") != "pretrain":
        return enc_cfg, enc_weights, {}, {}
    settings = {k: c[k] for k in ("mask_level", "mask", "temperature", "proj_dim") if k in c}
    head = {k: v for k, v in load_weights(path).items() if not k.startswith("encoder.")}
    return enc_cfg, enc_weights, settings, head


def build_model(cfg: TrainConfig, k: int) -> tuple[MaskedPredictionModel, dict[str, Any]]:
    """The pretraining model: a new encoder of preset ``cfg.model``, or (``init_from``) the encoder of a
    checkpoint with its config, masking settings and, where their shapes fit the new labels, its mask
    embedding, projection and cluster embeddings (a further iteration, e.g. of official AV-HuBERT)."""
    settings: dict[str, Any] = {}
    head: dict[str, torch.Tensor] = {}
    if cfg.init_from:
        enc_cfg, enc_weights, settings, head = pretraining_start(cfg.init_from)
        log.info("encoder from %s (its config; --model and --fusion do not apply)", cfg.init_from)
    else:
        enc_cfg, enc_weights = preset(cfg.model, fusion=cfg.fusion), None
    mask = MaskConfig(**settings.get("mask", {}))
    level = settings.get("mask_level", "feature")
    proj_dim = int(settings.get("proj_dim", 256))
    temperature = float(settings.get("temperature", 0.1))
    model = MaskedPredictionModel(AVEncoder(enc_cfg), k, proj_dim=proj_dim, temperature=temperature,
                                  unmasked_weight=cfg.unmasked_weight, mask=mask, mask_level=level)
    if enc_weights is not None:
        load_into(model.encoder, enc_weights, cfg.init_from)
        own = model.state_dict()
        kept = {n: t for n, t in head.items() if n in own and own[n].shape == t.shape}
        model.load_state_dict(kept, strict=False)
        dropped = sorted(set(head) - set(kept))
        if kept or dropped:
            log.info("from %s also: %s%s", cfg.init_from, ", ".join(sorted(kept)) or "nothing else",
                     f"; new (shapes differ: {k} clusters here): {', '.join(dropped)}" if dropped else "")
    config = {"kind": "pretrain", "encoder": enc_cfg.to_dict(), "num_clusters": k, "mask_level": level,
              "mask": dataclasses.asdict(mask), "proj_dim": proj_dim, "temperature": temperature,
              "train": dataclasses.asdict(cfg)}
    return model, config


class PretrainTask(Task):
    """Masked cluster prediction on length-bucketed batches. Masks and modality dropout come from a generator
    seeded by the global micro-batch index, so 2 ranks and 1 rank with 2 accumulation steps compute the same."""

    name = "pretrain"
    metrics = ["loss", "acc_masked", "acc_unmasked", "acc_masked_av", "acc_masked_a", "acc_masked_v", "frames"]
    amp = True
    collate = staticmethod(collate)

    def __init__(self, cfg: TrainConfig, features: str = "avspeech"):
        self.dataset = AVDataset(cfg.manifest, cfg.labels, train=True, max_frames=cfg.max_frames, seed=cfg.seed,
                                 features=features)
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
    require_readable(read_manifest(cfg.manifest), cfg.manifest, cfg.out)
    k = num_clusters(cfg.labels, cfg.manifest)
    torch.manual_seed(cfg.seed)
    model, model_config = build_model(cfg, k)
    task = PretrainTask(cfg, model.encoder.cfg.audio_features)
    return fit(task, model, model_config, cfg)
