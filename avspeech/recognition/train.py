"""Fine-tuning the recognition head (``avspeech finetune recognition``): one flat loop.

- Data: :class:`~avspeech.recognition.data.RecognitionDataset` (a manifest and its ``.wrd`` transcripts), whole
  utterances in batches of ``batch_size`` in an order drawn from ``(seed, epoch)``; noise (interfering speech,
  babble), silent faces and the mel-axis warp of the audio features (``freq_warp``) as configured there.
- Modality dropout per sample (AV-HuBERT's fine-tuning recipe, so one model serves the three modes): both
  streams with probability ``p_av``, audio only ``p_audio``, video only the rest.
- Model: :class:`~avspeech.recognition.model.AVRecognizer`; the encoder starts from ``init_from`` (a
  pretraining, separation or recognition checkpoint) or at random.
- AdamW (decay on matrices), linear warm-up then decay, gradient clipping; checkpoints every ``save_every``
  steps, at the end and on SIGTERM/Ctrl-C; re-running the same command resumes exactly. ``log.csv`` and
  TensorBoard events under ``tb/``; a progress bar.
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
from avspeech.recognition.data import RecognitionDataset, collate_recognition
from avspeech.recognition.model import AVRecognizer, RecognizerConfig
from avspeech.recognition.tokenizer import CharTokenizer, SentencePieceTokenizer
from avspeech.training import (RunLog, StopOnSignal, adamw, latest_checkpoint, resume_latest, save_step,
                               warmup_then_decay)

log = logging.getLogger(__name__)


@dataclass
class RecognitionTrainConfig:
    manifest: str
    out: str
    labels: str | None = None  # default: the manifest's .wrd
    model: str = "tiny"  # encoder preset without init_from
    init_from: str | None = None
    freeze_encoder: bool = False
    # the encoder held fixed (weights and BatchNorm statistics) for the first N steps while the new heads learn on
    # its features, then trained with them (AV-HuBERT's freeze_finetune_updates); 0: trained from the start
    freeze_steps: int = 0
    tokenizer: str = "char"  # "char" or "sentencepiece"
    sp_vocab: int = 64
    upsample: int = 2
    decoder_layers: int = 2
    ctc_weight: float = 0.3
    steps: int = 2000
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.01
    batch_size: int = 8
    p_av: float = 0.5
    p_audio: float = 0.25
    noise_probs: tuple[float, float, float] = (0.3, 0.5, 0.2)  # clean, interfering speech, babble
    snr_range: tuple[float, float] = (-5.0, 10.0)
    silent_prob: float = 0.05
    freq_warp: float = 0.15  # mel-axis warp of the audio features, factor 1 +- freq_warp per item
    clip: float = 5.0
    save_every: int = 250
    log_every: int = 25
    seed: int = 0
    workers: int = 0
    device: str = "auto"


def build_recognizer(cfg: RecognitionTrainConfig, texts: list[str]) -> tuple[AVRecognizer, dict[str, Any]]:
    """A new recognizer: the encoder from ``init_from`` (any checkpoint with an encoder) or at random, new heads.
    A recognition checkpoint as ``init_from`` continues whole: its heads and tokenizer come with it (a later
    stage of a recipe, or new data)."""
    if cfg.init_from and load_config(cfg.init_from).get("kind") == "recognition":
        model = load_recognizer(cfg.init_from).train()
        if cfg.freeze_encoder:
            model.encoder.requires_grad_(False)
        return model, {"kind": "recognition", "recognizer": model.cfg.to_dict(), "train": dataclasses.asdict(cfg)}
    if cfg.tokenizer == "char":
        tok = CharTokenizer()
    elif cfg.tokenizer == "sentencepiece":
        tok = SentencePieceTokenizer.train(texts, vocab_size=cfg.sp_vocab)
    else:
        raise InputError(f"unknown tokenizer {cfg.tokenizer!r} (char or sentencepiece)")
    enc = encoder_config_of(cfg.init_from) if cfg.init_from else preset(cfg.model)
    rec_cfg = RecognizerConfig(encoder=enc, tokenizer=tok.to_dict(), upsample=cfg.upsample,
                               decoder_layers=cfg.decoder_layers,
                               ctc_weight=cfg.ctc_weight if cfg.decoder_layers else 1.0)
    model = AVRecognizer(rec_cfg)
    if cfg.init_from:
        load_into(model.encoder, load_weights(cfg.init_from), cfg.init_from, prefix="encoder.")
    if cfg.freeze_encoder:
        model.encoder.requires_grad_(False)
    return model, {"kind": "recognition", "recognizer": rec_cfg.to_dict(), "train": dataclasses.asdict(cfg)}


def load_recognizer(path: str | Path) -> AVRecognizer:
    """The :class:`AVRecognizer` of a recognition checkpoint folder (safetensors + JSON; no code runs)."""
    c = load_config(path)
    if c.get("kind") != "recognition" or "recognizer" not in c:
        raise InputError(f"not a recognition checkpoint (kind {c.get('kind')!r}); train one with "
                         "'avspeech finetune recognition'", path)
    try:
        rec_cfg = RecognizerConfig.from_dict(c["recognizer"])
        model = AVRecognizer(rec_cfg)
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        raise InputError(f"bad recognizer config ({e})", Path(path) / "config.json") from e
    load_into(model, load_weights(path), path)
    return model.eval()


def modality_flags(b: int, p_av: float, p_audio: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample (has_audio, has_video) (B,) bool: both with probability p_av, audio only p_audio, else video."""
    r = torch.rand(b, generator=g)
    has_audio = r < p_av + p_audio
    has_video = (r < p_av) | (r >= p_av + p_audio)
    return has_audio, has_video


def train_recognition(cfg: RecognitionTrainConfig) -> dict[str, Any]:
    """Run (or resume) fine-tuning; returns the final step, the last logged row and the checkpoint path."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    resume = latest_checkpoint(out)
    if resume is not None:  # the tokenizer (a trained SentencePiece model) comes from the run itself
        model, model_config = _resumed_model(resume, cfg)
    else:
        from avspeech.recognition.data import default_labels_path, read_transcripts

        texts = read_transcripts(cfg.labels or default_labels_path(cfg.manifest))
        model, model_config = build_recognizer(cfg, texts)
    ds = RecognitionDataset(cfg.manifest, cfg.labels, model.tokenizer, train=True, noise_probs=cfg.noise_probs,
                            snr_range=cfg.snr_range, silent_prob=cfg.silent_prob, freq_warp=cfg.freq_warp,
                            seed=cfg.seed)
    per_epoch = len(ds) // cfg.batch_size
    if per_epoch == 0:
        raise InputError(f"{len(ds)} utterances are fewer than one batch of {cfg.batch_size}", cfg.manifest)
    model.to(device)
    opt = adamw(model, cfg.lr, cfg.weight_decay)
    factor = warmup_then_decay(cfg.warmup, cfg.steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    step, resumed = resume_latest(out, model, opt, sched, factor)
    if resumed is not None:
        log.info("resumed from %s (step %d)", resumed, step)

    fields = ["step", "epoch", "loss", "ctc", "att", "att_acc", "lr", "grad_norm", "sec_per_step"]
    atomic_write_text(out / "config.json", json.dumps(model_config, indent=1) + "\n")
    run_log = RunLog(out, fields, step, prefix="recognition")
    last: dict[str, Any] = {}
    window: dict[str, list] = {k: [] for k in ("loss", "ctc", "att", "att_acc", "grad_norm", "sec")}
    bar = tqdm(total=cfg.steps, initial=step, desc="finetune recognition", unit="step", dynamic_ncols=True)
    stopped = False
    with StopOnSignal() as stop:
        while step < cfg.steps and not stopped:
            epoch, pos = divmod(step, per_epoch)
            ds.set_epoch(epoch)
            order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
            batches = order[: per_epoch * cfg.batch_size].view(per_epoch, cfg.batch_size).tolist()[pos:]
            loader = DataLoader(ds, batch_sampler=batches, collate_fn=collate_recognition, num_workers=cfg.workers)
            for batch in loader:
                t0 = time.time()
                model.train()
                frozen = cfg.freeze_encoder or step < cfg.freeze_steps
                if frozen:
                    model.encoder.eval()
                if not cfg.freeze_encoder and cfg.freeze_steps:  # AdamW skips parameters without a gradient
                    model.encoder.requires_grad_(not frozen)
                g = torch.Generator().manual_seed(cfg.seed * 7919 + step)
                has_audio, has_video = modality_flags(len(batch["ids"]), cfg.p_av, cfg.p_audio, g)
                lengths = batch["lengths"].to(device)
                # a batch without video (always, with p_av = 0 and p_audio = 1) skips the lip front-end
                lips = batch["lips"].to(device) if bool(has_video.any()) else None
                feats, logp, ctc_len = model.encode(lips, batch["audio"].to(device), lengths, has_audio.to(device),
                                                    has_video.to(device))
                losses = model.loss(feats, logp, ctc_len, lengths, batch["tokens"])
                opt.zero_grad(set_to_none=True)
                losses["loss"].backward()
                gn = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
                opt.step()
                sched.step()
                step += 1
                bar.update(1)
                for k in ("loss", "ctc", "att", "att_acc"):
                    window[k].append(float(losses[k].detach()) if k in losses else float("nan"))
                window["grad_norm"].append(float(gn))
                window["sec"].append(time.time() - t0)
                if step % cfg.log_every == 0 or step == cfg.steps or step == 1:
                    row = {"step": step, "epoch": epoch, "lr": sched.get_last_lr()[0],
                           "sec_per_step": round(float(np.mean(window["sec"])), 4),
                           **{k: round(float(np.mean(window[k])), 4) for k in ("loss", "ctc", "att", "att_acc",
                                                                               "grad_norm")}}
                    window = {k: [] for k in window}
                    run_log.write(row)
                    bar.set_postfix(loss=f"{row['loss']:.2f}", ctc=f"{row['ctc']:.2f}")
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


def _resumed_model(resume: Path, cfg: RecognitionTrainConfig) -> tuple[AVRecognizer, dict[str, Any]]:
    c = load_config(resume)
    model = AVRecognizer(RecognizerConfig.from_dict(c["recognizer"]))
    if cfg.freeze_encoder:
        model.encoder.requires_grad_(False)
    return model, {**c, "train": dataclasses.asdict(cfg)}
