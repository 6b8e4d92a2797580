"""The audio-visual encoder: front-ends, fusion, pre-LN transformer with a convolutional positional embedding.

Axes: B batch, T frames at 25 Hz, D model dim. Both streams share the 25 Hz time base; ``lengths`` (B,) gives
the valid frames of each sample. ``has_audio``/``has_video`` (B,) bool say which modalities a sample has: an
absent modality's features are zeros and its length is 0 for cross-modal attention (modality dropout, a clip
without audio, a track without a face).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from avspeech.model.config import EncoderConfig
from avspeech.model.cross_attention import CrossModalAttention
from avspeech.model.frontends import AudioFrontend, LipFrontend
from avspeech.timebase import lengths_to_mask


class ConvPositionalEmbedding(nn.Module):
    """x + GELU(grouped Conv1d over time (weight-normalised)); an even kernel is trimmed back to T frames."""

    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.trim = kernel % 2 == 0

    def forward(self, x: Tensor, valid: Tensor) -> Tensor:
        y = self.conv((x * valid.unsqueeze(-1)).transpose(1, 2))  # (B, D, T[+1])
        if self.trim:
            y = y[..., :-1]
        return x + nn.functional.gelu(y.transpose(1, 2))


class CrossModalFusion(nn.Module):
    """``layers`` pre-LN residual blocks of cross-modal attention (audio reads lips, lips read audio) and a
    feed-forward per stream, then the two streams concatenated and projected to D."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        d = cfg.dim
        self.blocks = nn.ModuleList()
        for _ in range(cfg.fusion_layers):
            self.blocks.append(nn.ModuleDict({
                "norm_a": nn.LayerNorm(d), "norm_v": nn.LayerNorm(d),
                "attn": CrossModalAttention(d, cfg.heads, rate_a=cfg.rate, rate_v=cfg.rate,
                                            window=cfg.fusion_window, dropout=cfg.dropout),
                "ffn_a": _ffn(d, cfg.ffn, cfg.dropout), "ffn_v": _ffn(d, cfg.ffn, cfg.dropout)}))
        self.out = nn.Linear(2 * d, d)

    def forward(self, xa: Tensor, xv: Tensor, len_a: Tensor, len_v: Tensor) -> Tensor:
        keep_a = lengths_to_mask(len_a, xa.shape[1]).unsqueeze(-1)  # (B, T, 1): absent audio -> all False
        keep_v = lengths_to_mask(len_v, xv.shape[1]).unsqueeze(-1)
        for blk in self.blocks:
            ya, yv = blk["attn"](blk["norm_a"](xa), blk["norm_v"](xv), len_a, len_v)
            xa = xa + ya
            xv = xv + yv
            xa = (xa + blk["ffn_a"](xa)) * keep_a
            xv = (xv + blk["ffn_v"](xv)) * keep_v
        return self.out(torch.cat([xa, xv], dim=-1))  # (B, T, D)


class ConcatFusion(nn.Module):
    """AV-HuBERT's fusion: concatenate the two streams' features (audio first) and project to D; the
    ``"avhubert"`` layout layer-normalises the 2D concatenation first, as AV-HuBERT does."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.norm = nn.LayerNorm(2 * cfg.dim) if cfg.layout == "avhubert" else nn.Identity()
        self.out = nn.Linear(2 * cfg.dim, cfg.dim)

    def forward(self, xa: Tensor, xv: Tensor, len_a: Tensor, len_v: Tensor) -> Tensor:
        return self.out(self.norm(torch.cat([xa, xv], dim=-1)))


def _ffn(d: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(d), nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, d), nn.Dropout(dropout))


class AVEncoder(nn.Module):
    """Lips (B, 1, T, 88, 88) and/or audio features (B, T, 104) -> features (B, T, D).

    Use :meth:`frontend` then :meth:`encode` when something happens between them (masking in pretraining),
    :meth:`forward` for both, or :meth:`extract_features` (AV-HuBERT's argument order and conventions).

    Norms of the transformer stack by layout: ``"avspeech"`` has a LayerNorm after the positional convolution
    (``norm_in``) and one after the last layer (``norm_out``); ``"avhubert"`` has fairseq's single LayerNorm,
    after the positional convolution for post-LN layers (``norm_first=False``) or after the last layer for
    pre-LN ones, and not when an intermediate layer's output is asked for.
    """

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.lip_frontend = LipFrontend(cfg.dim, cfg.lip_widths, cfg.layout)
        self.audio_frontend = AudioFrontend(cfg.dim, cfg.audio_dim)
        self.fusion = CrossModalFusion(cfg) if cfg.fusion == "cross" else ConcatFusion(cfg)
        self.pos = ConvPositionalEmbedding(cfg.dim, cfg.pos_conv_kernel, cfg.pos_conv_groups)
        own = cfg.layout == "avspeech"
        self.norm_in = nn.LayerNorm(cfg.dim) if own or not cfg.norm_first else nn.Identity()
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(cfg.dim, cfg.heads, cfg.ffn, cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=cfg.norm_first)
        self.layers = nn.ModuleList([_clone(layer) for _ in range(cfg.layers)])
        self.norm_out = nn.LayerNorm(cfg.dim) if own or cfg.norm_first else nn.Identity()

    def frontend(self, lips: Tensor | None, audio: Tensor | None, lengths: Tensor,
                 has_audio: Tensor | None = None, has_video: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per-stream features (B, T, D) each; an absent modality (None, or False in ``has_*``) is zeros."""
        if lips is None and audio is None:
            raise ValueError("need lips, audio or both")
        b = lengths.shape[0]
        t = audio.shape[1] if audio is not None else lips.shape[2]
        ref = self.audio_frontend.proj.weight
        xa = self.audio_frontend(audio) if audio is not None else ref.new_zeros(b, t, self.cfg.dim)
        hv = has_video.bool() if has_video is not None else None
        if lips is None:
            xv = ref.new_zeros(b, t, self.cfg.dim)
        elif hv is not None and bool(hv.any()) and not bool(hv.all()):
            # the lip front-end is most of the compute: run it only on the samples that have video. A batch
            # where no sample has video takes the branch below (times zero later), so every parameter still
            # takes part, as DDP requires; a caller without DDP can pass lips=None instead.
            xv = ref.new_zeros(b, lips.shape[2], self.cfg.dim)
            xv = xv.index_put((hv.nonzero()[:, 0],), self.lip_frontend(lips[hv]))
        else:
            xv = self.lip_frontend(lips)
        if xa.shape[1] != xv.shape[1]:
            raise ValueError(f"audio has {xa.shape[1]} frames and lips {xv.shape[1]}; both must be at 25 Hz "
                             "with the same padded length")
        if has_audio is not None:
            xa = xa * has_audio.to(xa.dtype)[:, None, None]
        if has_video is not None:
            xv = xv * has_video.to(xv.dtype)[:, None, None]
        return xa, xv

    def encode(self, xa: Tensor, xv: Tensor, lengths: Tensor, has_audio: Tensor | None = None,
               has_video: Tensor | None = None, output_layer: int | None = None) -> Tensor:
        """Fuse and run the transformer; ``output_layer`` (1-based) returns that layer's output instead."""
        b = lengths.shape[0]
        ones = torch.ones(b, dtype=torch.bool, device=lengths.device)
        has_audio = ones if has_audio is None else has_audio.bool()
        has_video = ones if has_video is None else has_video.bool()
        len_a = torch.where(has_audio, lengths, torch.zeros_like(lengths))
        len_v = torch.where(has_video, lengths, torch.zeros_like(lengths))
        valid = lengths_to_mask(lengths, xa.shape[1])  # (B, T)
        x = self.fusion(xa, xv, len_a, len_v)
        x = self.dropout(self.norm_in(self.pos(x, valid)))
        pad = ~valid
        for i, layer in enumerate(self.layers, start=1):
            x = layer(x, src_key_padding_mask=pad)
            if output_layer == i:
                return x * valid.unsqueeze(-1)
        return self.norm_out(x) * valid.unsqueeze(-1)

    def extract_features(self, audio: Tensor | None, video: Tensor | None, lengths: Tensor,
                         layer: int | None = None) -> Tensor:
        """Features (B, T, D) as AV-HuBERT's ``extract_finetune`` returns them.

        ``audio`` (B, T, 104): stacked, per-frame layer-normed filterbanks (the model's ``audio_features``);
        ``video`` (B, 1, T, 88, 88): normalised lip crops; either may be None (that modality's features are
        zeros). ``lengths`` (B,) valid frames; padded input frames are zeroed first, as AV-HuBERT's collater
        pads, so what the padding holds does not matter. ``layer`` is 1-based (AV-HuBERT's ``output_layer``),
        None for the final output. Padded output frames are zero.
        """
        if audio is None and video is None:
            raise ValueError("extract_features needs audio, video or both")
        t = audio.shape[1] if audio is not None else video.shape[2]
        if layer is not None and not 1 <= layer <= self.cfg.layers:
            raise ValueError(f"layer must be between 1 and {self.cfg.layers} (1-based) or None, got {layer}")
        valid = lengths_to_mask(lengths, t)
        if audio is not None:
            audio = audio * valid.unsqueeze(-1).to(audio.dtype)
        if video is not None:
            video = video * valid[:, None, :, None, None].to(video.dtype)
        return self.forward(video, audio, lengths, output_layer=layer)

    def forward(self, lips: Tensor | None, audio: Tensor | None, lengths: Tensor,
                has_audio: Tensor | None = None, has_video: Tensor | None = None,
                output_layer: int | None = None) -> Tensor:
        if audio is None and has_audio is None:
            has_audio = torch.zeros_like(lengths, dtype=torch.bool)
        if lips is None and has_video is None:
            has_video = torch.zeros_like(lengths, dtype=torch.bool)
        xa, xv = self.frontend(lips, audio, lengths, has_audio, has_video)
        return self.encode(xa, xv, lengths, has_audio, has_video, output_layer)


def _clone(layer: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(layer)
