"""Fine-tuning the separation head (``avspeech finetune separation``): the data and the step; the engine
(:func:`avspeech.training.fit`) runs them.

- Data: (mixture, target) items of a mixture list (:class:`~avspeech.separation.mixtures.MixtureDataset`), cut
  to ``crop_frames`` at seeded random positions, in an order drawn from ``(seed, epoch)``; a fraction
  ``silent_prob`` of targets are faces that do not speak.
- Model: :class:`~avspeech.separation.model.AVSeparator`; the encoder starts from ``init_from`` (a pretraining
  or separation checkpoint) or at random, and is fine-tuned unless ``freeze_encoder``; ``continue_from`` starts
  the whole separator (its config and all its weights) from a separation checkpoint instead, e.g. to train a
  shipped model further (with a larger ``lstm_hidden``, its BLSTM is first widened without changing its output:
  :func:`~avspeech.separation.model.widen_lstm`). ``freeze_lip_frontend`` holds the lip front-end fixed
  (weights and BatchNorm statistics) and computes its output for every training clip once, before the first step
  (centre crop, no flip), so a step pays only for the rest of the model; targets that do not speak get their
  still frame's features computed in the step.
- The engine: AdamW (decay on matrices), linear warm-up then decay, gradient clipping, checkpoints
  ``checkpoints/step_NNNNNNN`` (re-running the same command resumes exactly), ``log.csv`` + TensorBoard + a
  progress bar, DDP under torchrun.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from avspeech.data.dataset import require_readable
from avspeech.errors import InputError
from avspeech.features.lips import LipTransform
from avspeech.model.checkpoint import encoder_init, load_head, load_into
from avspeech.model.config import preset
from avspeech.separation.metrics import separation_loss, si_sdr
from avspeech.separation.mixtures import MixtureDataset, collate_mixtures
from avspeech.separation.model import AVSeparator, SeparatorConfig, widen_lstm
from avspeech.training import StepContext, Task, fit, shuffled_batches
from avspeech.timebase import SAMPLES_PER_FRAME, lengths_to_mask

log = logging.getLogger(__name__)


@dataclass
class SeparationTrainConfig:
    """Separation fine-tuning settings; ``avspeech finetune separation`` takes each field as an option."""

    manifest: str = dataclasses.field(metadata={"help": "preprocessed manifest (avspeech preprocess)"})
    mixtures: str = dataclasses.field(metadata={"help": "mixture list TSV (id, utt_a, utt_b, gain_db)"})
    out: str = dataclasses.field(default="avspeech_separation", metadata={"help": "run folder"})
    mode: str = dataclasses.field(default="av", metadata={
        "help": "av: the target face's lips select the voice; audio: the audio-only baseline (2 outputs, PIT)",
        "choices": ("av", "audio")})
    model: str = dataclasses.field(default="tiny", metadata={"help": "encoder preset without --init-from"})
    init_from: str | None = dataclasses.field(default=None, metadata={
        "help": "checkpoint whose encoder starts the model (avspeech pretrain output)"})
    freeze_encoder: bool = dataclasses.field(default=False, metadata={"help": "train the head only"})
    continue_from: str | None = dataclasses.field(default=None, metadata={
        "help": "separation checkpoint whose whole separator (config and weights) starts the run, e.g. the shipped "
        "one trained further"})
    freeze_lip_frontend: bool = dataclasses.field(default=False, metadata={
        "help": "hold the lip front-end fixed and compute its output for each training clip once (several times "
        "faster steps on CPU)"})
    lip_attention: bool = dataclasses.field(default=True, metadata={
        "help": "cross-modal attention from the STFT frames to the encoder features (--no-lip-attention: condition "
        "on the held encoder features only)"})
    hidden: int = dataclasses.field(default=128, metadata={"help": "width of the mask network's input projection"})
    lstm_hidden: int | None = dataclasses.field(default=None, metadata={
        "help": "BLSTM units each way (default: --hidden); with --continue-from, a wider BLSTM is grown from the "
        "checkpoint's without changing its output"})
    steps: int = dataclasses.field(default=2000, metadata={"help": "optimiser steps"})
    lr: float = dataclasses.field(default=2e-3, metadata={"help": "peak learning rate"})
    warmup: int = dataclasses.field(default=100, metadata={"help": "linear warm-up steps"})
    weight_decay: float = dataclasses.field(default=0.01, metadata={"help": "AdamW weight decay"})
    batch_size: int = dataclasses.field(default=8, metadata={"help": "mixtures per step"})
    grad_accum: int = dataclasses.field(default=1, metadata={"help": "micro-batches per optimiser step (per rank)"})
    crop_frames: int = dataclasses.field(default=50, metadata={
        "help": "training crop length in 25 Hz video frames (50: 2 s)"})
    silent_prob: float = dataclasses.field(default=0.1, metadata={
        "help": "fraction of targets that are faces that do not speak (their reference is silence)"})
    noise: str | None = dataclasses.field(default=None, metadata={
        "help": "noise set folder (avspeech noise, e.g. noise/all): its train list is added to every mixture"})
    snr: tuple[float, float] = dataclasses.field(default=(0.0, 0.0), metadata={
        "help": "SNR range of --noise, dB (speech over noise; LO = HI for a fixed SNR)"})
    clip: float = dataclasses.field(default=5.0, metadata={"help": "gradient-norm clip"})
    save_every: int = dataclasses.field(default=250, metadata={"help": "steps between checkpoints"})
    log_every: int = dataclasses.field(default=25, metadata={"help": "steps between log rows"})
    seed: int = dataclasses.field(default=0, metadata={"help": "random seed (initialisation, data order, crops)"})
    workers: int = dataclasses.field(default=0, metadata={"help": "DataLoader worker processes"})
    device: str = dataclasses.field(default="auto", metadata={"help": "auto: cuda when available, else cpu"})


def build_separator(cfg: SeparationTrainConfig) -> tuple[AVSeparator, dict[str, Any]]:
    if cfg.continue_from and cfg.init_from:
        raise InputError("give either init_from (the encoder) or continue_from (the whole separator), not both",
                         cfg.continue_from)
    if cfg.continue_from:
        model = load_separator(cfg.continue_from).train()
        if model.cfg.mode != cfg.mode:
            raise InputError(f"the checkpoint is a mode {model.cfg.mode!r} separator; this run is mode "
                             f"{cfg.mode!r}", cfg.continue_from)
        if cfg.lstm_hidden is not None and cfg.lstm_hidden != model.cfg.lstm_width:
            try:
                model = widen_lstm(model, cfg.lstm_hidden)
            except ValueError as e:
                raise InputError(f"{e}; give --lstm-hidden >= {model.cfg.lstm_width} or leave it out",
                                 cfg.continue_from) from e
        sep_cfg = model.cfg
        enc_weights = None
    else:
        enc, enc_weights = encoder_init(cfg.init_from) if cfg.init_from else (preset(cfg.model), None)
        sep_cfg = SeparatorConfig(encoder=enc, mode=cfg.mode, hidden=cfg.hidden, lstm_hidden=cfg.lstm_hidden,
                                  lip_attention=cfg.lip_attention)
        model = AVSeparator(sep_cfg)
    if enc_weights is not None:  # the encoder only: a pretraining checkpoint, another run, official AV-HuBERT
        load_into(model.encoder, enc_weights, cfg.init_from)
    if cfg.freeze_encoder:
        model.encoder.requires_grad_(False)
    if cfg.freeze_lip_frontend:
        model.encoder.lip_frontend.requires_grad_(False)
    return model, {"kind": "separation", "separator": sep_cfg.to_dict(), "train": dataclasses.asdict(cfg)}


def load_separator(path: str | Path) -> AVSeparator:
    """The :class:`AVSeparator` of a separation checkpoint folder (weights and config only; no code runs)."""
    return load_head(path, "separation", "separator", SeparatorConfig, AVSeparator)


def cached_lip_features(model: AVSeparator, batch: dict, lip_cache: dict[str, torch.Tensor],
                        device: torch.device) -> torch.Tensor:
    """(B, T, D) lip front-end output of a batch: each target clip's cached features cut to the item's crop
    (the front-end saw the whole clip, so the crop's edge frames have their real neighbours), zero past each
    length; a target that does not speak (a still frame) gets its own features, computed now."""
    b, t = batch["lengths"].shape[0], batch["audio"].shape[1]
    feats = torch.zeros(b, t, model.cfg.encoder.dim, device=device)
    for i, (uid, start, k) in enumerate(zip(batch["target_utts"], batch["starts"], batch["lengths"].tolist())):
        if not batch["silent"][i]:
            feats[i, :k] = lip_cache[uid][start:start + k]
    if bool(batch["silent"].any()):
        with torch.no_grad():
            still = batch["silent"].to(device)
            feats[still] = model.encoder.lip_frontend(batch["lips"][still].to(device))
    return feats * lengths_to_mask(batch["lengths"].to(device), t).unsqueeze(-1)


def _run_model(model: AVSeparator, batch: dict, device: torch.device,
               lip_cache: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    feats = cached_lip_features(model, batch, lip_cache, device) if lip_cache is not None else None
    return model(batch["mixture"].to(device), batch["lips"].to(device), batch["audio"].to(device),
                 batch["lengths"].to(device), lip_features=feats)


@torch.no_grad()
def lip_feature_cache(model: AVSeparator, ds: MixtureDataset, device: torch.device) -> dict[str, torch.Tensor]:
    """The lip front-end's output (T, D) for every target utterance of ``ds`` (eval mode, centre crop)."""
    model.encoder.lip_frontend.eval()
    transform = LipTransform(train=False)
    uids = sorted({u for m in ds.mixtures for u in (m.utt_a, m.utt_b)})
    cache = {}
    for uid in tqdm(uids, desc="lip features (frozen front-end)", unit="clip", dynamic_ncols=True):
        rois, _ = ds.load(uid)
        cache[uid] = model.encoder.lip_frontend(transform(rois)[None].to(device))[0]
    return cache


class SeparationTask(Task):
    """(mixture, target face) items cut to ``crop_frames``; the loss is :func:`separation_loss`, the logged
    SI-SDR that of the speaking targets (of the estimate against the target)."""

    name = "separation"
    metrics = ["loss", "si_sdr"]
    collate = staticmethod(collate_mixtures)
    unused_parameters = True  # e.g. the lip->audio direction of the fusion, whose output the head does not use

    def __init__(self, cfg: SeparationTrainConfig, features: str = "avspeech"):
        self.cfg = cfg
        self.dataset = MixtureDataset(cfg.manifest, cfg.mixtures, train=True, crop_frames=cfg.crop_frames,
                                      silent_prob=cfg.silent_prob if cfg.mode == "av" else 0.0, seed=cfg.seed,
                                      features=features, noise=cfg.noise, snr=cfg.snr)
        self.lip_cache: dict[str, torch.Tensor] | None = None

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        return shuffled_batches(len(self.dataset), self.cfg.batch_size, self.cfg.seed, epoch)

    def start(self, model: AVSeparator, step: int, device: torch.device) -> None:
        if self.cfg.freeze_lip_frontend and self.cfg.mode == "av":
            self.lip_cache = lip_feature_cache(model, self.dataset, device)

    def train_mode(self, model: AVSeparator, step: int) -> None:
        model.train()
        if self.cfg.freeze_encoder:
            model.encoder.eval()
        if self.cfg.freeze_lip_frontend:
            model.encoder.lip_frontend.eval()

    def step(self, model: AVSeparator, batch, ctx: StepContext):
        dev = ctx.device
        est = _run_model(model, batch, dev, self.lip_cache)
        n_samples = batch["lengths"].to(dev) * SAMPLES_PER_FRAME
        loss = separation_loss(est, batch["target"].to(dev), batch["interferer"].to(dev), batch["mixture"].to(dev),
                               batch["silent"].to(dev), n_samples)
        with torch.no_grad():
            if self.cfg.mode == "av":
                s = si_sdr(est[:, 0].detach().cpu(), batch["target"], n_samples.cpu())[~batch["silent"]]
                value = float(s.mean()) if len(s) else float("nan")
            else:
                value = -float(loss.detach())
        return loss, {"si_sdr": value}


def train_separation(cfg: SeparationTrainConfig) -> dict[str, Any]:
    """Run (or resume) fine-tuning; returns the final step, the last logged row and the checkpoint path."""
    torch.manual_seed(cfg.seed)
    model, model_config = build_separator(cfg)  # first: its encoder decides the audio features
    task = SeparationTask(cfg, model.encoder.cfg.audio_features)
    ds = task.dataset
    used = dict.fromkeys(u for m in ds.mixtures for u in (m.utt_a, m.utt_b))  # the utterances the mixtures name
    require_readable([ds.utts[u] for u in used], cfg.manifest, cfg.out)
    if len(task.dataset) < cfg.batch_size:
        raise InputError(f"{len(task.dataset)} training items are fewer than one batch of {cfg.batch_size}",
                         cfg.mixtures)
    return fit(task, model, model_config, cfg)
