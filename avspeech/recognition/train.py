"""Fine-tuning the recognition head (``avspeech finetune recognition``): the data and the step; the engine
(:func:`avspeech.training.fit`) runs them.

- Data: :class:`~avspeech.recognition.data.RecognitionDataset` (a manifest and its ``.wrd`` transcripts), whole
  utterances in batches of ``batch_size`` in an order drawn from ``(seed, epoch)``; noise (interfering speech,
  babble, a noise set's files with ``noise``/``snr``), silent faces and the mel-axis warp of the audio features
  (``freq_warp``) as configured there.
- Modality dropout per sample (AV-HuBERT's fine-tuning recipe, so one model serves the three modes): both
  streams with probability ``p_av``, audio only ``p_audio``, video only the rest.
- Model: :class:`~avspeech.recognition.model.AVRecognizer`; the encoder starts from ``init_from`` (a
  pretraining, separation or recognition checkpoint) or at random.
- The engine: AdamW (decay on matrices), linear warm-up then decay, gradient clipping, checkpoints every
  ``save_every`` steps, at the end and on SIGTERM/Ctrl-C (re-running the same command resumes exactly),
  ``log.csv`` + TensorBoard + a progress bar, DDP under torchrun.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from avspeech.data.dataset import require_readable
from avspeech.errors import InputError
from avspeech.model.checkpoint import encoder_init, head_config, load_config, load_head, load_into
from avspeech.model.config import preset
from avspeech.model.modality import modality_dropout
from avspeech.recognition.data import RecognitionDataset, collate_recognition
from avspeech.recognition.model import AVRecognizer, RecognizerConfig
from avspeech.recognition.tokenizer import CharTokenizer, SentencePieceTokenizer
from avspeech.training import StepContext, Task, fit, latest_checkpoint, shuffled_batches

log = logging.getLogger(__name__)


@dataclass
class RecognitionTrainConfig:
    """Recognition fine-tuning settings; ``avspeech finetune recognition`` takes each field as an option."""

    manifest: str = dataclasses.field(metadata={"help": "preprocessed manifest (avspeech preprocess)"})
    out: str = dataclasses.field(default="avspeech_recognition", metadata={"help": "run folder"})
    labels: str | None = dataclasses.field(default=None, metadata={
        "help": "transcripts, one line per manifest row (AV-HuBERT's .wrd); default: MANIFEST with the suffix .wrd"})
    model: str = dataclasses.field(default="tiny", metadata={"help": "encoder preset without --init-from"})
    init_from: str | None = dataclasses.field(default=None, metadata={
        "help": "checkpoint whose encoder starts the model (avspeech pretrain output; a recognition checkpoint "
        "continues whole, heads and tokenizer included)"})
    freeze_encoder: bool = dataclasses.field(default=False, metadata={"help": "train the heads only"})
    # AV-HuBERT's freeze_finetune_updates: the encoder's weights and BatchNorm statistics held fixed
    freeze_steps: int = dataclasses.field(default=0, metadata={
        "help": "hold the encoder fixed for the first N steps while the heads learn, then train it too"})
    tokenizer: str = dataclasses.field(default="char", metadata={
        "help": "characters or a SentencePiece model trained on the transcripts", "choices": ("char", "sentencepiece")})
    sp_vocab: int = dataclasses.field(default=64, metadata={"help": "SentencePiece vocabulary size"})
    upsample: int = dataclasses.field(default=2, metadata={"help": "CTC sub-frames per 25 Hz encoder frame"})
    decoder_layers: int = dataclasses.field(default=2, metadata={"help": "attention decoder layers (0: CTC only)"})
    ctc_weight: float = dataclasses.field(default=0.3, metadata={"help": "weight of the CTC loss (hybrid objective)"})
    steps: int = dataclasses.field(default=2000, metadata={"help": "optimiser steps"})
    lr: float = dataclasses.field(default=2e-3, metadata={"help": "peak learning rate"})
    warmup: int = dataclasses.field(default=100, metadata={"help": "linear warm-up steps"})
    weight_decay: float = dataclasses.field(default=0.01, metadata={"help": "AdamW weight decay"})
    batch_size: int = dataclasses.field(default=8, metadata={"help": "faces per step"})
    grad_accum: int = dataclasses.field(default=1, metadata={"help": "micro-batches per optimiser step (per rank)"})
    p_av: float = dataclasses.field(default=0.5, metadata={"help": "modality dropout: fraction of items with both"})
    p_audio: float = dataclasses.field(default=0.25, metadata={
        "help": "modality dropout: fraction of items with audio only (the rest: lips only)"})
    noise_probs: tuple[float, float, float] = dataclasses.field(default=(0.3, 0.5, 0.2), metadata={
        "help": "probabilities of clean audio, interfering speech and babble"})
    snr_range: tuple[float, float] = dataclasses.field(default=(-5.0, 10.0), metadata={
        "help": "SNR range (dB) of interfering speech and babble"})
    noise: str | None = dataclasses.field(default=None, metadata={
        "help": "noise set folder (avspeech noise, e.g. noise/all): its train list is added to every item, last"})
    snr: tuple[float, float] = dataclasses.field(default=(0.0, 0.0), metadata={
        "help": "SNR range of --noise, dB (the audio over the noise; LO = HI for a fixed SNR)"})
    silent_prob: float = dataclasses.field(default=0.05, metadata={
        "help": "fraction of training faces that do not speak (empty transcript, interfering audio)"})
    freq_warp: float = dataclasses.field(default=0.15, metadata={
        "help": "audio augmentation: the mel axis scaled by a factor in 1 +- this per item (0: off)"})
    clip: float = dataclasses.field(default=5.0, metadata={"help": "gradient-norm clip"})
    save_every: int = dataclasses.field(default=250, metadata={"help": "steps between checkpoints"})
    log_every: int = dataclasses.field(default=25, metadata={"help": "steps between log rows"})
    seed: int = dataclasses.field(default=0, metadata={
        "help": "random seed (heads' initialisation, data order, augmentation)"})
    workers: int = dataclasses.field(default=0, metadata={"help": "DataLoader worker processes"})
    device: str = dataclasses.field(default="auto", metadata={"help": "auto: cuda when available, else cpu"})


def build_recognizer(cfg: RecognitionTrainConfig, texts: list[str]) -> tuple[AVRecognizer, dict[str, Any]]:
    """A new recognizer: the encoder from ``init_from`` (any checkpoint with an encoder) or at random, new heads.
    A recognition checkpoint as ``init_from`` continues whole: its heads and tokenizer come with it (a later
    stage of a recipe, or new data)."""
    if cfg.init_from and Path(cfg.init_from).is_dir() and load_config(cfg.init_from).get("kind") == "recognition":
        model = load_recognizer(cfg.init_from).train()
        if cfg.freeze_encoder:
            model.encoder.requires_grad_(False)
        return model, {"kind": "recognition", "recognizer": model.cfg.to_dict(), "train": dataclasses.asdict(cfg)}
    # the encoder's source first: a bad --init-from is reported before a tokenizer is trained
    enc, enc_weights = encoder_init(cfg.init_from) if cfg.init_from else (preset(cfg.model), None)
    if cfg.tokenizer == "char":
        tok = CharTokenizer()
    elif cfg.tokenizer == "sentencepiece":
        tok = SentencePieceTokenizer.train(texts, vocab_size=cfg.sp_vocab)
    else:
        raise InputError(f"unknown tokenizer {cfg.tokenizer!r} (char or sentencepiece)")
    rec_cfg = RecognizerConfig(encoder=enc, tokenizer=tok.to_dict(), upsample=cfg.upsample,
                               decoder_layers=cfg.decoder_layers,
                               ctc_weight=cfg.ctc_weight if cfg.decoder_layers else 1.0)
    model = AVRecognizer(rec_cfg)
    if cfg.init_from:
        load_into(model.encoder, enc_weights, cfg.init_from)
    if cfg.freeze_encoder:
        model.encoder.requires_grad_(False)
    return model, {"kind": "recognition", "recognizer": rec_cfg.to_dict(), "train": dataclasses.asdict(cfg)}


def load_recognizer(path: str | Path) -> AVRecognizer:
    """The :class:`AVRecognizer` of a recognition checkpoint folder (safetensors + JSON; no code runs)."""
    return load_head(path, "recognition", "recognizer", RecognizerConfig, AVRecognizer)


class RecognitionTask(Task):
    """Whole utterances with their token sequences; the loss is the recognizer's (CTC, plus attention when it
    has a decoder), with per-sample modality dropout drawn from the micro-batch's generator."""

    name = "recognition"
    metrics = ["loss", "ctc", "att", "att_acc"]
    collate = staticmethod(collate_recognition)
    unused_parameters = True  # a video-only or audio-only batch leaves a front-end without gradient

    def __init__(self, cfg: RecognitionTrainConfig, tokenizer, features: str = "avspeech"):
        self.cfg = cfg
        self.dataset = RecognitionDataset(cfg.manifest, cfg.labels, tokenizer, train=True,
                                          noise_probs=cfg.noise_probs, snr_range=cfg.snr_range,
                                          silent_prob=cfg.silent_prob, freq_warp=cfg.freq_warp, seed=cfg.seed,
                                          features=features, noise=cfg.noise, snr=cfg.snr)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        return shuffled_batches(len(self.dataset), self.cfg.batch_size, self.cfg.seed, epoch)

    def train_mode(self, model: AVRecognizer, step: int) -> None:
        cfg = self.cfg
        model.train()
        frozen = cfg.freeze_encoder or step < cfg.freeze_steps
        if frozen:
            model.encoder.eval()
        if not cfg.freeze_encoder and cfg.freeze_steps:  # AdamW skips parameters without a gradient
            model.encoder.requires_grad_(not frozen)

    def step(self, model: AVRecognizer, batch, ctx: StepContext):
        dev = ctx.device
        has_audio, has_video = modality_dropout(len(batch["ids"]), self.cfg.p_av, self.cfg.p_audio,
                                              ctx.generator(7919))
        lengths = batch["lengths"].to(dev)
        # a batch without video (always, with p_av = 0 and p_audio = 1) skips the lip front-end
        lips = batch["lips"].to(dev) if bool(has_video.any()) else None
        feats, logp, ctc_len = model.encode(lips, batch["audio"].to(dev), lengths, has_audio.to(dev),
                                            has_video.to(dev))
        losses = model.loss(feats, logp, ctc_len, lengths, batch["tokens"])
        return losses["loss"], {k: float(losses[k].detach()) for k in ("ctc", "att", "att_acc") if k in losses}


def train_recognition(cfg: RecognitionTrainConfig) -> dict[str, Any]:
    """Run (or resume) fine-tuning; returns the final step, the last logged row and the checkpoint path."""
    torch.manual_seed(cfg.seed)
    resume = latest_checkpoint(cfg.out)
    if resume is not None:  # the tokenizer (a trained SentencePiece model) comes from the run itself
        model, model_config = _resumed_model(resume, cfg)
    else:
        from avspeech.recognition.data import default_labels_path, read_transcripts

        texts = read_transcripts(cfg.labels or default_labels_path(cfg.manifest))
        model, model_config = build_recognizer(cfg, texts)
    task = RecognitionTask(cfg, model.tokenizer, model.encoder.cfg.audio_features)
    require_readable(task.dataset.utts, cfg.manifest, cfg.out)
    if len(task.dataset) < cfg.batch_size:
        raise InputError(f"{len(task.dataset)} utterances are fewer than one batch of {cfg.batch_size}",
                         cfg.manifest)
    return fit(task, model, model_config, cfg)


def _resumed_model(resume: Path, cfg: RecognitionTrainConfig) -> tuple[AVRecognizer, dict[str, Any]]:
    rc, c = head_config(resume, "recognition", "recognizer", RecognizerConfig)
    model = AVRecognizer(rc)
    if cfg.freeze_encoder:
        model.encoder.requires_grad_(False)
    return model, {**c, "train": dataclasses.asdict(cfg)}
