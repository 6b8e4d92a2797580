"""The recognition model: the audio-visual encoder, a CTC head and an attention decoder.

Axes: B batch, T encoder frames (25 Hz), S = ``upsample`` x T CTC frames, U tokens, D encoder dim, V vocabulary
(id 0 = CTC blank = decoder start/end, see :mod:`avspeech.recognition.tokenizer`).

- Mode follows the inputs: lips only (video, lip reading), audio only (ASR) or both (AVSR); a missing modality is
  zeros with length 0 in the encoder's cross-modal fusion (``has_audio`` / ``has_video``).
- CTC head: at 25 Hz a character sequence can be longer than the frames (a GRID sentence is ~15 characters/s
  plus a blank between repeated letters), so the head lifts each frame to ``upsample`` sub-frames: Linear
  D -> upsample x D, GELU, split into sub-frames, LayerNorm, Linear D -> V. S = upsample x T.
- Attention decoder: a pre-LN transformer decoder over token embeddings with learned positions, reading the
  encoder features (key padding from the lengths), Linear -> V. Trained with label smoothing on ``<s> y`` ->
  ``y </s>``; used to rescore CTC hypotheses (joint CTC/attention decoding, :mod:`avspeech.recognition.decode`).
- Loss: ``ctc_weight`` x CTC + (1 - ctc_weight) x attention cross-entropy (ESPnet's hybrid objective).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from avspeech.model.config import EncoderConfig, config_from_dict, config_to_dict, preset
from avspeech.model.encoder import AVEncoder
from avspeech.recognition.tokenizer import BLANK, CharTokenizer, Tokenizer, tokenizer_from_dict
from avspeech.timebase import lengths_to_mask


@dataclass(frozen=True)
class RecognizerConfig:
    encoder: EncoderConfig = field(default_factory=lambda: preset("tiny"))
    tokenizer: dict = field(default_factory=lambda: CharTokenizer().to_dict())
    upsample: int = 2
    decoder_layers: int = 2  # 0: CTC only
    decoder_dim: int = 128
    decoder_heads: int = 4
    decoder_ffn: int = 256
    max_tokens: int = 256  # longest transcript the decoder's positions cover
    dropout: float = 0.1
    ctc_weight: float = 0.3
    label_smoothing: float = 0.1

    def __post_init__(self) -> None:
        from avspeech.model import validate as v

        if not isinstance(self.encoder, EncoderConfig):
            raise ValueError(f"encoder must be an encoder config, got {type(self.encoder).__name__}")
        if not isinstance(self.tokenizer, dict) or self.tokenizer.get("kind") not in ("char", "sentencepiece"):
            raise ValueError("tokenizer must be an object with kind 'char' or 'sentencepiece', got "
                             f"{str(self.tokenizer)[:80]!r}")
        v.positive_int("upsample", self.upsample, maximum=16)
        v.positive_int("decoder_layers", self.decoder_layers, minimum=0, maximum=v.MAX_LAYERS)
        v.positive_int("decoder_dim", self.decoder_dim)
        v.positive_int("decoder_heads", self.decoder_heads, maximum=v.MAX_WIDTH)
        v.positive_int("decoder_ffn", self.decoder_ffn)
        v.positive_int("max_tokens", self.max_tokens, maximum=100_000)
        v.probability("dropout", self.dropout)
        v.probability("ctc_weight", self.ctc_weight)
        v.probability("label_smoothing", self.label_smoothing)
        if self.decoder_layers == 0 and self.ctc_weight != 1.0:
            raise ValueError("a model without a decoder needs ctc_weight 1.0")
        if self.decoder_layers:
            v.divisible("decoder_dim", self.decoder_dim, "decoder_heads", self.decoder_heads)
        head = self.encoder.dim * self.upsample * self.encoder.dim + self.max_tokens * self.decoder_dim
        decoder = self.decoder_layers * (8 * self.decoder_dim ** 2 + 2 * self.decoder_dim * self.decoder_ffn)
        v.within_budget("recognizer", v.encoder_parameters(self.encoder) + head + decoder)

    def make_tokenizer(self) -> Tokenizer:
        return tokenizer_from_dict(self.tokenizer)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RecognizerConfig":
        return config_from_dict(cls, d, "recognizer")


class CTCHead(nn.Module):
    """(B, T, D) -> log-probabilities (B, S = upsample x T, V)."""

    def __init__(self, dim: int, vocab: int, upsample: int):
        super().__init__()
        self.upsample = upsample
        self.lift = nn.Linear(dim, upsample * dim)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, vocab)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        h = nn.functional.gelu(self.lift(x)).view(b, t * self.upsample, d)  # (B, S, D)
        return self.out(self.norm(h)).log_softmax(-1)


class AttentionDecoder(nn.Module):
    """``forward(tokens (B, U) with <s>=0 first, memory (B, T, D), memory_lengths (B,)) -> log-probs (B, U, V)``."""

    def __init__(self, cfg: RecognizerConfig, vocab: int):
        super().__init__()
        h = cfg.decoder_dim
        self.embed = nn.Embedding(vocab, h)
        self.pos = nn.Embedding(cfg.max_tokens + 1, h)
        self.memory_proj = nn.Linear(cfg.encoder.dim, h)
        layer = nn.TransformerDecoderLayer(h, cfg.decoder_heads, cfg.decoder_ffn, cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.layers = nn.TransformerDecoder(layer, cfg.decoder_layers)
        self.norm = nn.LayerNorm(h)
        self.out = nn.Linear(h, vocab)
        self.max_tokens = cfg.max_tokens

    def forward(self, tokens: Tensor, memory: Tensor, memory_lengths: Tensor) -> Tensor:
        u = tokens.shape[1]
        if u > self.max_tokens + 1:
            raise ValueError(f"{u} decoder steps exceed max_tokens {self.max_tokens} + 1")
        pos = torch.arange(u, device=tokens.device)
        x = self.embed(tokens) + self.pos(pos)[None]  # (B, U, H)
        causal = torch.triu(torch.ones(u, u, dtype=torch.bool, device=tokens.device), 1)
        pad = ~lengths_to_mask(memory_lengths, memory.shape[1])
        # a sample without valid memory (length 0) would give NaN attention: let it see its first frame
        pad[:, 0] &= memory_lengths > 0
        y = self.layers(x, self.memory_proj(memory), tgt_mask=causal, memory_key_padding_mask=pad)
        return self.out(self.norm(y)).log_softmax(-1)


class AVRecognizer(nn.Module):
    """Encoder + CTC head (+ attention decoder when ``decoder_layers > 0``)."""

    def __init__(self, cfg: RecognizerConfig, encoder: AVEncoder | None = None):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = cfg.make_tokenizer()
        v = self.tokenizer.vocab_size
        self.encoder = encoder if encoder is not None else AVEncoder(cfg.encoder)
        self.ctc = CTCHead(cfg.encoder.dim, v, cfg.upsample)
        self.decoder = AttentionDecoder(cfg, v) if cfg.decoder_layers else None

    def encode(self, lips: Tensor | None, audio: Tensor | None, lengths: Tensor, has_audio: Tensor | None = None,
               has_video: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """-> encoder features (B, T, D), CTC log-probs (B, S, V), CTC lengths (B,) = upsample x lengths."""
        feats = self.encoder(lips, audio, lengths, has_audio, has_video)
        return feats, self.ctc(feats), lengths * self.cfg.upsample

    def loss(self, feats: Tensor, ctc_logp: Tensor, ctc_lengths: Tensor, lengths: Tensor,
             targets: list[list[int]]) -> dict[str, Tensor]:
        """Hybrid loss for token sequences ``targets`` (ids >= 1); both terms are per-utterance sums (over frames
        for CTC, over tokens and the end symbol for attention) averaged over the batch, so they share a scale."""
        dev = ctc_logp.device
        flat = torch.tensor([i for t in targets for i in t], dtype=torch.long, device=dev)
        tlen = torch.tensor([len(t) for t in targets], dtype=torch.long, device=dev)
        ctc = nn.functional.ctc_loss(ctc_logp.transpose(0, 1), flat, ctc_lengths, tlen, blank=BLANK,
                                     reduction="sum", zero_infinity=True) / len(targets)
        out = {"ctc": ctc}
        if self.decoder is not None:
            u = max(len(t) for t in targets) + 1
            ys_in = torch.zeros(len(targets), u, dtype=torch.long, device=dev)  # <s> y, padded with 0
            ys_out = torch.full((len(targets), u), -100, dtype=torch.long, device=dev)  # y </s>, padded ignore
            for i, t in enumerate(targets):
                ys_in[i, 1:len(t) + 1] = torch.tensor(t, dtype=torch.long)
                ys_out[i, :len(t)] = torch.tensor(t, dtype=torch.long)
                ys_out[i, len(t)] = 0
            logp = self.decoder(ys_in, feats, lengths)
            att = nn.functional.nll_loss(logp.flatten(0, 1), ys_out.flatten(), ignore_index=-100,
                                         reduction="sum")
            if self.cfg.label_smoothing > 0:
                valid = ys_out.flatten() != -100
                smooth = -logp.flatten(0, 1)[valid].mean(-1).sum()
                att = (1 - self.cfg.label_smoothing) * att + self.cfg.label_smoothing * smooth
            att = att / len(targets)
            out["att"] = att
            with torch.no_grad():
                out["att_acc"] = (logp.argmax(-1) == ys_out).float().sum() / (ys_out != -100).sum()
        w = self.cfg.ctc_weight
        out["loss"] = w * ctc + (1 - w) * out["att"] if self.decoder is not None else ctc
        return out

    @torch.no_grad()
    def sequence_logprob(self, feats: Tensor, length: int, hyps: list[list[int]]) -> list[float]:
        """Attention decoder log P(y </s> | x) of each token sequence in ``hyps`` for one sample's features
        ``feats`` (T, D) with ``length`` valid frames (teacher forcing, all hypotheses in one batch)."""
        if self.decoder is None:
            raise ValueError("this model has no attention decoder")
        n = len(hyps)
        u = max(len(h) for h in hyps) + 1
        ys_in = torch.zeros(n, u, dtype=torch.long, device=feats.device)
        ys_out = torch.full((n, u), -100, dtype=torch.long, device=feats.device)
        for i, h in enumerate(hyps):
            ys_in[i, 1:len(h) + 1] = torch.tensor(h, dtype=torch.long)
            ys_out[i, :len(h)] = torch.tensor(h, dtype=torch.long)
            ys_out[i, len(h)] = 0
        logp = self.decoder(ys_in, feats[None].expand(n, -1, -1),
                            torch.full((n,), int(length), dtype=torch.long, device=feats.device))
        tok = logp.gather(-1, ys_out.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (ys_out != -100)
        return tok.sum(-1).tolist()
