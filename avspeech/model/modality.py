"""Modality dropout, shared by pretraining and fine-tuning: per sample, which streams the encoder sees.

AV-HuBERT's recipe keeps both streams for half the samples, audio only for a quarter and lips only for the rest;
a dropped stream is zeros (the front-ends' ``has_audio``/``has_video`` flags).
"""
from __future__ import annotations

import torch
from torch import Tensor


def modality_dropout(b: int, p_av: float, p_audio: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """(has_audio, has_video) (B,) bool: both with probability ``p_av``, audio only ``p_audio``, lips only the
    rest (``1 - p_av - p_audio``). One uniform draw per sample from ``generator``."""
    if not (0 <= p_av and 0 <= p_audio and p_av + p_audio <= 1):
        raise ValueError(f"modality probabilities p_av={p_av}, p_audio={p_audio} must be >= 0 and sum to <= 1")
    u = torch.rand(b, generator=generator)
    has_audio = u < p_av + p_audio
    has_video = (u < p_av) | (u >= p_av + p_audio)
    return has_audio, has_video
