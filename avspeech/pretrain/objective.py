"""The masked-prediction objective and the pretraining model around the encoder.

Logits are cosine similarities between projected encoder features and one embedding per cluster, over a
temperature (0.1); cross-entropy on masked frames (masked in either stream), plus ``unmasked_weight`` times the
loss on the other valid frames (0 for AV-HuBERT Base).

Masks apply at one of two levels (``mask_level``, AV-HuBERT's ``masking_type``): ``"feature"`` (the front-ends'
D-dim outputs: masked audio frames become a learned D-dim embedding, masked lip frames other frames' features)
or ``"input"`` (the model's inputs: masked audio frames become a learned 104-dim filterbank frame, masked lip
frames other frames' crops; AV-HuBERT's official pretraining).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avspeech.model.encoder import AVEncoder
from avspeech.model.modality import modality_dropout
from avspeech.pretrain.masking import MaskConfig, span_mask, substitute_segments
from avspeech.timebase import lengths_to_mask


@dataclass
class PretrainOutput:
    loss: Tensor
    logits: Tensor  # (B, T, K)
    masked: Tensor  # (B, T) bool: frames masked in either stream
    valid: Tensor  # (B, T) bool
    has_audio: Tensor  # (B,)
    has_video: Tensor  # (B,)


class MaskedPredictionModel(nn.Module):
    def __init__(self, encoder: AVEncoder, num_clusters: int, proj_dim: int = 256, temperature: float = 0.1,
                 unmasked_weight: float = 0.0, mask: MaskConfig | None = None, mask_level: str = "feature"):
        super().__init__()
        if mask_level not in ("feature", "input"):
            raise ValueError(f"mask_level must be 'feature' or 'input', got {mask_level!r}")
        self.encoder = encoder
        d = encoder.cfg.dim
        self.mask_cfg = mask or MaskConfig()
        self.mask_level = mask_level
        self.audio_mask_emb = nn.Parameter(torch.empty(d if mask_level == "feature" else encoder.cfg.audio_dim)
                                           .uniform_())
        self.proj = nn.Linear(d, proj_dim)
        self.cluster_emb = nn.Parameter(torch.empty(num_clusters, proj_dim).uniform_(-1, 1))
        self.temperature = temperature
        self.unmasked_weight = unmasked_weight

    def logits(self, features: Tensor) -> Tensor:
        """(B, T, D) -> (B, T, K) cosine similarity / temperature."""
        z = F.normalize(self.proj(features), dim=-1)
        e = F.normalize(self.cluster_emb, dim=-1)
        return z @ e.T / self.temperature

    def forward(self, lips: Tensor, audio: Tensor, lengths: Tensor, targets: Tensor,
                generator: torch.Generator, has_audio: Tensor | None = None,
                has_video: Tensor | None = None, apply_mask: bool = True) -> PretrainOutput:
        """``targets`` (B, T) long cluster ids (-1 where unknown). Training: masks and modality dropout drawn
        from ``generator``; ``has_*`` fix the modalities (evaluation per condition)."""
        b, t = audio.shape[:2]
        valid = lengths_to_mask(lengths, t)
        if has_audio is None or has_video is None:
            has_audio, has_video = modality_dropout(b, self.mask_cfg.p_av, self.mask_cfg.p_audio, generator)
            has_audio, has_video = has_audio.to(lengths.device), has_video.to(lengths.device)
        masked = torch.zeros(b, t, dtype=torch.bool, device=lengths.device)
        if apply_mask:
            cfg = self.mask_cfg
            ma = span_mask(lengths, t, cfg.audio_prob, cfg.audio_span, generator) & has_audio[:, None]
            mv = span_mask(lengths, t, cfg.video_prob, cfg.video_span, generator) & has_video[:, None]
            masked = (ma | mv) & valid
            if self.mask_level == "input":
                audio = torch.where(ma.unsqueeze(-1), self.audio_mask_emb.to(audio.dtype), audio)
                frames = lips.transpose(1, 2).flatten(2)  # (B, T, C*H*W): substitute whole crops
                frames = substitute_segments(frames, mv, lengths, generator)
                lips = frames.unflatten(2, (lips.shape[1], *lips.shape[3:])).transpose(1, 2)
        xa, xv = self.encoder.frontend(lips, audio, lengths, has_audio, has_video)
        if apply_mask and self.mask_level == "feature":
            xa = torch.where(ma.unsqueeze(-1), self.audio_mask_emb.to(xa.dtype), xa)
            xv = substitute_segments(xv, mv, lengths, generator)
        feats = self.encoder.encode(xa, xv, lengths, has_audio, has_video)
        logits = self.logits(feats)
        known = valid & (targets >= 0)
        ce = F.cross_entropy(logits.transpose(1, 2), targets.clamp(min=0), reduction="none")  # (B, T)
        m, u = (masked & known).float(), (~masked & known).float()
        loss = (ce * m).sum() / m.sum().clamp(min=1)
        if self.unmasked_weight > 0:
            loss = loss + self.unmasked_weight * (ce * u).sum() / u.sum().clamp(min=1)
        return PretrainOutput(loss, logits, masked, known, has_audio, has_video)


def accuracies(out: PretrainOutput, targets: Tensor) -> dict[str, float]:
    """Masked and unmasked frame accuracy, overall and per modality condition (av, a, v)."""
    pred = out.logits.argmax(-1)
    hit = (pred == targets) & out.valid
    res: dict[str, float] = {}
    cond = {"av": out.has_audio & out.has_video, "a": out.has_audio & ~out.has_video,
            "v": ~out.has_audio & out.has_video}
    for name, sel in [("masked", out.masked & out.valid), ("unmasked", ~out.masked & out.valid)]:
        n = int(sel.sum())
        res[f"acc_{name}"] = float((hit & sel).sum()) / n if n else float("nan")
        for c, rows in cond.items():
            s = sel & rows[:, None]
            k = int(s.sum())
            if k:
                res[f"acc_{name}_{c}"] = float((hit & s).sum()) / k
    return res
