"""The separation model: the audio-visual encoder for the target face, and a complex mask on the mixture STFT.

Axes: B batch, N samples (16 kHz), T video frames (25 Hz), S STFT frames (100 Hz, S = 4 T + 1), F frequency
bins (257), D encoder dim, H head width, K outputs.

1. The encoder (:class:`~avspeech.model.encoder.AVEncoder`) reads the mixture's filterbank features and the
   target face's lips -> (B, T, D) at 25 Hz.
2. STFT of the mixture (25 ms Hann window, 10 ms hop, 512 points, zero-padded ends): log magnitude, layer
   norm over frequency, linear -> (B, S, H).
3. Conditioning: the encoder features projected to H and held for the 4 STFT frames of each video frame; with
   ``lip_attention`` the STFT frames also attend to the encoder features through the cross-modal attention
   kernel (``avspeech.kernels``, rates 100 and 25 Hz, a window of ``attention_window`` seconds), in that one
   direction only (the encoder features do not read the STFT frames).
4. A bidirectional LSTM over the STFT frames (``lstm_hidden`` units each way) -> a bounded complex mask per
   output (K), applied to the mixture STFT, inverse STFT to N samples.

:func:`widen_lstm` gives a trained separator a wider BLSTM that computes the same output, so training can go
on with more capacity from where it stopped.

``mode="av"`` has one output: the target face's voice. ``mode="audio"`` is the audio-only baseline: lips are
absent, so nothing says which speaker is wanted; it has two outputs trained with permutation-invariant SI-SDR
(the usual audio-only separator), and is scored with the best assignment of outputs to speakers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from avspeech.model.config import EncoderConfig, config_from_dict, config_to_dict, preset
from avspeech.model.cross_attention import CrossModalAttention
from avspeech.model.encoder import AVEncoder
from avspeech.timebase import SAMPLES_PER_FRAME, lengths_to_mask

HOP = 160
STFT_PER_FRAME = SAMPLES_PER_FRAME // HOP  # 4


@dataclass(frozen=True)
class SeparatorConfig:
    encoder: EncoderConfig = field(default_factory=lambda: preset("tiny"))
    mode: str = "av"  # "av" (lips select the target) or "audio" (no lips, 2 outputs, PIT)
    n_fft: int = 512
    win: int = 400
    hidden: int = 128  # H
    lstm_layers: int = 2
    lstm_hidden: int | None = None  # width of each BLSTM direction; None: hidden
    lip_attention: bool = True
    attention_window: float = 0.2  # seconds
    attention_heads: int = 4
    mask_bound: float = 2.0  # |real|, |imag| of the complex mask stay below this

    def __post_init__(self) -> None:
        from avspeech.model import validate as v

        if not isinstance(self.encoder, EncoderConfig):
            raise ValueError(f"encoder must be an encoder config, got {type(self.encoder).__name__}")
        v.choice("mode", self.mode, ("av", "audio"))
        v.positive_int("n_fft", self.n_fft, minimum=HOP, maximum=8192)
        v.positive_int("win", self.win, maximum=self.n_fft if isinstance(self.n_fft, int) else 8192)
        v.positive_int("hidden", self.hidden)
        v.positive_int("lstm_layers", self.lstm_layers, maximum=v.MAX_LAYERS)
        if self.lstm_hidden is not None:
            v.positive_int("lstm_hidden", self.lstm_hidden)
        if not isinstance(self.lip_attention, bool):
            raise ValueError(f"lip_attention must be true or false, got {self.lip_attention!r}")
        v.finite_float("attention_window", self.attention_window, minimum=0.0, maximum=3600.0, open_minimum=True)
        v.positive_int("attention_heads", self.attention_heads, maximum=self.hidden)
        v.finite_float("mask_bound", self.mask_bound, minimum=0.0, maximum=1e6, open_minimum=True)
        v.divisible("hidden", self.hidden, "attention_heads", self.attention_heads)
        bins, width = self.n_fft // 2 + 1, self.lstm_width
        lstm = self.lstm_layers * 2 * 4 * width * (max(width * 2, self.hidden) + width + 2)
        head = 4 * bins * self.hidden + 2 * self.hidden * self.hidden + 2 * width * 4 * bins
        v.within_budget("separator", v.encoder_parameters(self.encoder) + lstm + head)

    @property
    def lstm_width(self) -> int:
        return self.hidden if self.lstm_hidden is None else self.lstm_hidden

    @property
    def outputs(self) -> int:
        return 1 if self.mode == "av" else 2

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SeparatorConfig":
        return config_from_dict(cls, d, "separator")


class AVSeparator(nn.Module):
    """``forward(mixture (B, N), lips (B, 1, T, 88, 88) or None, audio (B, T, 104), lengths (B,) frames)
    -> (B, K, N)`` estimated sources (zero beyond each sample's N = 640 * length)."""

    def __init__(self, cfg: SeparatorConfig, encoder: AVEncoder | None = None):
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder if encoder is not None else AVEncoder(cfg.encoder)
        f = cfg.n_fft // 2 + 1
        h = cfg.hidden
        self.register_buffer("window", torch.hann_window(cfg.win), persistent=False)
        self.spec_norm = nn.LayerNorm(f)
        self.spec_in = nn.Linear(f, h)
        self.cond = nn.Linear(cfg.encoder.dim, h)
        self.attn = None
        if cfg.lip_attention:
            self.attn_norm = nn.LayerNorm(h)
            self.attn = CrossModalAttention(h, cfg.attention_heads, rate_a=100.0, rate_v=25.0,
                                            window=cfg.attention_window)
        w = cfg.lstm_width
        self.lstm = nn.LSTM(h, w, cfg.lstm_layers, batch_first=True, bidirectional=True)
        self.mask = nn.Linear(2 * w, 2 * f * cfg.outputs)

    def stft(self, x: Tensor) -> Tensor:
        """(B, N) -> (B, F, S) complex."""
        # zero padding at the ends (not reflection), so a sample's frames are the same alone or padded in a batch
        return torch.stft(x, self.cfg.n_fft, HOP, self.cfg.win, self.window, center=True, pad_mode="constant",
                          return_complex=True)

    def istft(self, spec: Tensor, n: int) -> Tensor:
        return torch.istft(spec, self.cfg.n_fft, HOP, self.cfg.win, self.window, center=True, length=n)

    def features(self, lips: Tensor | None, audio: Tensor, lengths: Tensor,
                 lip_features: Tensor | None = None) -> Tensor:
        """Encoder features (B, T, D) of the mixture audio with the target's lips (lips absent in mode audio).
        ``lip_features`` (B, T, D): the lip front-end's output computed beforehand (a frozen front-end), in place
        of ``lips``."""
        if self.cfg.mode == "audio":
            return self.encoder(None, audio, lengths)
        if lip_features is None:
            return self.encoder(lips, audio, lengths)
        xa, _ = self.encoder.frontend(None, audio, lengths)
        if lip_features.shape != xa.shape:
            raise ValueError(f"lip features {tuple(lip_features.shape)} do not match the audio's {tuple(xa.shape)}")
        return self.encoder.encode(xa, lip_features, lengths)

    def forward(self, mixture: Tensor, lips: Tensor | None, audio: Tensor, lengths: Tensor,
                lip_features: Tensor | None = None) -> Tensor:
        b, n = mixture.shape
        t = audio.shape[1]
        if n != t * SAMPLES_PER_FRAME:
            raise ValueError(f"mixture has {n} samples for {t} frames; expected {t * SAMPLES_PER_FRAME} "
                             f"({SAMPLES_PER_FRAME} per 25 Hz frame)")
        if self.cfg.mode == "av" and lips is None and lip_features is None:
            raise ValueError("the audio-visual separator needs the target face's lips")
        feats = self.features(lips, audio, lengths, lip_features)  # (B, T, D)
        spec = self.stft(mixture)  # (B, F, S)
        s = spec.shape[-1]
        len_s = lengths * STFT_PER_FRAME + 1
        valid_s = lengths_to_mask(len_s, s)  # (B, S)
        logmag = torch.log(spec.abs().clamp(min=1e-5)).transpose(1, 2)  # (B, S, F)
        x = self.spec_in(self.spec_norm(logmag))  # (B, S, H)
        c = self.cond(feats)  # (B, T, H)
        # STFT frame j reads video frame j // 4 (the last one past a sample's end): (B, S) indices
        last = (lengths - 1).clamp(min=0)[:, None]
        src = torch.minimum(torch.arange(s, device=c.device)[None] // STFT_PER_FRAME, last)
        x = x + torch.gather(c, 1, src.unsqueeze(-1).expand(-1, -1, c.shape[-1]))  # (B, S, H)
        if self.attn is not None:
            len_v = lengths if self.cfg.mode == "av" else torch.zeros_like(lengths)
            x = x + self.attn.forward_audio(self.attn_norm(x), c, len_s, len_v)  # STFT frames read the lips
        x = x * valid_s.unsqueeze(-1)
        full = bool((lengths == t).all())
        if full:  # no padding: the plain tensor takes the fused (oneDNN on CPU) LSTM, several times faster
            y, _ = self.lstm(x)  # (B, S, 2H)
        else:  # padding: packed, so the backward direction of each sample starts at its own end
            packed = nn.utils.rnn.pack_padded_sequence(x, len_s.cpu(), batch_first=True, enforce_sorted=False)
            y, _ = self.lstm(packed)
            y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=s)  # (B, S, 2H)
        m = self.cfg.mask_bound * torch.tanh(self.mask(y))  # (B, S, 2 F K)
        m = m.view(b, s, self.cfg.outputs, 2, -1).permute(0, 2, 4, 1, 3)  # (B, K, F, S, 2)
        est = torch.view_as_complex(m.contiguous()) * spec.unsqueeze(1)  # (B, K, F, S)
        k = self.cfg.outputs
        if full:
            return self.istft(est.reshape(b * k, *est.shape[2:]), n).view(b, k, n)
        # padded batch: each sample's inverse STFT over its own frames, as if it were alone
        wav = mixture.new_zeros(b, k, n)
        for i in range(b):
            ni, si = int(lengths[i]) * SAMPLES_PER_FRAME, int(len_s[i])
            if ni:
                wav[i, :, :ni] = self.istft(est[i, :, :, :si], ni)
        return wav


def widen_lstm(model: AVSeparator, width: int) -> AVSeparator:
    """A copy of ``model`` whose BLSTM has ``width`` units each way and the same output.

    The old units keep their weights; the new units get the fresh LSTM's random input and recurrent weights, and
    everything they feed (the gates of the old units, the next layer, the mask layer) reads them with weight
    zero, so they change nothing until training moves those weights."""
    old_w = model.cfg.lstm_width
    if width < old_w:
        raise ValueError(f"cannot narrow the BLSTM from {old_w} to {width} units")
    from dataclasses import replace
    ref = next(model.parameters())
    new = AVSeparator(replace(model.cfg, lstm_hidden=width)).to(ref.device, ref.dtype)
    new.load_state_dict({k: v for k, v in model.state_dict().items()
                         if not k.startswith(("lstm.", "mask."))}, strict=False)

    def rows(w: int) -> Tensor:  # the old units' rows in the (4 w) gate blocks i, f, g, o
        return torch.cat([torch.arange(g * w, g * w + old_w) for g in range(4)])

    def cols(w: int) -> Tensor:  # the old units' columns in a (forward w, backward w) input
        return torch.cat([torch.arange(old_w), torch.arange(w, w + old_w)])

    r_new = rows(width)
    with torch.no_grad():
        for name, p in new.lstm.named_parameters():
            q = getattr(model.lstm, name)
            if name.startswith("weight_"):
                first_ih = name.startswith("weight_ih_l0")
                c_new = torch.arange(q.shape[1]) if first_ih else (
                    torch.arange(old_w) if name.startswith("weight_hh") else cols(width))
                p[r_new[:, None], c_new[None, :]] = q
                others = torch.ones(p.shape[1], dtype=torch.bool)
                others[c_new] = False
                p[r_new[:, None], others.nonzero().squeeze(1)[None, :]] = 0.0  # old units ignore the new
            else:
                p[r_new] = q
        new.mask.weight.zero_()
        new.mask.weight[:, cols(width)] = model.mask.weight
        new.mask.bias.copy_(model.mask.bias)
    new.lstm.flatten_parameters()
    return new.train(model.training)
