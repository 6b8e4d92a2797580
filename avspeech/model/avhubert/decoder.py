"""The transformer decoder of AV-HuBERT's fine-tuned seq2seq models (``av_hubert_seq2seq``), computed exactly.

Facts it follows (avhubert/decoder.py and hubert_asr.py at 258fb50; fairseq's transformer_layer.py,
multihead_attention.py, sinusoidal/learned positional embeddings and make_positions at afc77bdf):

- The config is ``AVHubertSeq2SeqConfig``: its defaults are 6 layers, width 768, FFN 3072, **4 heads**
  (the released base configs set none of these; the large ones set 9 layers, 1024, 4096, 8 heads),
  post-LN, sinusoidal positions, no embedding scale (``no_scale_embedding`` True), untied output projection,
  2048 target positions. The released configs set ``decoder_normalize_before`` and
  ``share_decoder_input_output_embed`` to true. The config has no ``activation_fn`` field, so fairseq's
  decoder layer falls back to **ReLU**.
- Input: ``embed_scale * embed_tokens(prev) + positions``; a final LayerNorm only when pre-LN; logits are
  ``x @ W^T`` with ``W`` the token embedding (tied) or ``embed_out`` (untied), no bias.
- Positions count non-padding tokens from ``padding_idx + 1`` (fairseq's ``make_positions``); the
  sinusoidal table is fairseq's (float32, sin then cos halves, frequency ``exp(-i log(10000) / (half - 1))``,
  the padding row zero); a learned table has ``max_target_positions + padding_idx + 1`` rows.
- Each layer: self-attention (causal), encoder-decoder attention over the encoder output with its padding
  mask, FFN; pre- or post-LN residual blocks. Attention scales q by ``head_dim ** -0.5`` after the projection
  (with its bias). The encoder output has the encoder's width (``kdim``/``vdim`` are unset, so the decoder
  width must equal it).

Our module names are the file's names after ``decoder.`` (``layers.N.self_attn.q_proj`` ...), so the state dict
loads unchanged; the sinusoidal table's ``_float_tensor`` placeholder is not a weight and is not stored.

Incremental decoding (:meth:`Seq2SeqDecoder.step`) caches each layer's self-attention keys/values and the
encoder-decoder keys/values computed once; :meth:`DecoderCache.reorder` follows beam search's reordering.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avspeech.errors import InputError

#: AVHubertSeq2SeqConfig's defaults (avhubert/hubert_asr.py), for fields a file's cfg does not hold
SEQ2SEQ_DEFAULTS = {
    "decoder_embed_dim": 768, "decoder_ffn_embed_dim": 3072, "decoder_layers": 6, "decoder_attention_heads": 4,
    "decoder_learned_pos": False, "decoder_normalize_before": False, "no_token_positional_embeddings": False,
    "max_target_positions": 2048, "share_decoder_input_output_embed": False, "no_scale_embedding": True,
}
#: fairseq's activation functions (utils.get_activation_fn) by name
ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "gelu_accurate": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "tanh": torch.tanh,
    "linear": lambda x: x,
    "swish": F.silu,
}


@dataclass(frozen=True)
class DecoderConfig:
    """The decoder's layout, under our names (AV-HuBERT's field in the comment)."""

    vocab: int  # len(target dictionary)
    padding_idx: int  # the target dictionary's pad index
    encoder_dim: int  # encoder_embed_dim of the pretrained model
    dim: int = 768  # decoder_embed_dim
    ffn: int = 3072  # decoder_ffn_embed_dim
    layers: int = 6  # decoder_layers
    heads: int = 4  # decoder_attention_heads
    normalize_before: bool = False  # decoder_normalize_before
    activation: str = "relu"  # activation_fn (absent in the seq2seq config: fairseq's relu)
    positions: str = "sinusoidal"  # decoder_learned_pos -> "learned"; no_token_positional_embeddings -> "none"
    max_positions: int = 2048  # max_target_positions
    tied: bool = False  # share_decoder_input_output_embed
    scale_embedding: bool = False  # not no_scale_embedding: multiply token embeddings by sqrt(dim)

    def __post_init__(self) -> None:
        from avspeech.model import validate as v

        v.positive_int("vocab", self.vocab, maximum=1_000_000)
        v.positive_int("padding_idx", self.padding_idx, minimum=0, maximum=self.vocab - 1)
        v.positive_int("dim", self.dim, maximum=v.MAX_WIDTH)
        v.positive_int("ffn", self.ffn, maximum=4 * v.MAX_WIDTH)
        v.positive_int("layers", self.layers, maximum=v.MAX_LAYERS)
        v.positive_int("heads", self.heads, maximum=self.dim)
        v.divisible("dim", self.dim, "heads", self.heads)
        v.positive_int("max_positions", self.max_positions, maximum=1_000_000)
        v.choice("activation", self.activation, tuple(ACTIVATIONS))
        v.choice("positions", self.positions, ("sinusoidal", "learned", "none"))
        for name in ("normalize_before", "tied", "scale_embedding"):
            v.boolean(name, getattr(self, name))
        if self.dim != self.encoder_dim:
            raise ValueError(f"decoder width {self.dim} differs from the encoder's {self.encoder_dim} (AV-HuBERT's "
                             "encoder-decoder attention has no kdim/vdim: the widths must be equal)")
        per_layer = 8 * self.dim ** 2 + 2 * self.dim * self.ffn
        v.within_budget("decoder", self.layers * per_layer + (1 if self.tied else 2) * self.vocab * self.dim)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DecoderConfig":
        from avspeech.model.config import config_from_dict

        return config_from_dict(cls, d, "decoder")


def decoder_config(model_cfg: dict[str, Any], vocab: int, padding_idx: int, encoder_dim: int,
                   path=None) -> DecoderConfig:
    """:class:`DecoderConfig` of a fine-tuned file's ``cfg["model"]`` (AVHubertSeq2SeqConfig's defaults for
    fields it lacks). A bad value is an :class:`InputError` naming AV-HuBERT's field."""
    m = {**SEQ2SEQ_DEFAULTS, **{k: v for k, v in model_cfg.items() if v is not None}}
    positions = ("none" if m["no_token_positional_embeddings"] else
                 "learned" if m["decoder_learned_pos"] else "sinusoidal")
    names = {"dim": "decoder_embed_dim", "ffn": "decoder_ffn_embed_dim", "layers": "decoder_layers",
             "heads": "decoder_attention_heads", "max_positions": "max_target_positions",
             "activation": "activation_fn", "tied": "share_decoder_input_output_embed",
             "normalize_before": "decoder_normalize_before"}
    # fields that become other values here are checked under their own names; the rest by DecoderConfig
    for theirs in ("no_scale_embedding", "decoder_learned_pos", "no_token_positional_embeddings"):
        if not isinstance(m[theirs], bool):
            raise InputError(f"bad AV-HuBERT decoder config: {theirs}={m[theirs]!r} is not a boolean", path)
    try:
        return DecoderConfig(
            vocab=vocab, padding_idx=padding_idx, encoder_dim=encoder_dim, dim=m["decoder_embed_dim"],
            ffn=m["decoder_ffn_embed_dim"], layers=m["decoder_layers"], heads=m["decoder_attention_heads"],
            normalize_before=m["decoder_normalize_before"], activation=str(m.get("activation_fn") or "relu"),
            positions=positions, max_positions=m["max_target_positions"],
            tied=m["share_decoder_input_output_embed"], scale_embedding=not m["no_scale_embedding"])
    except ValueError as e:
        raise InputError(f"bad AV-HuBERT decoder config ({', '.join(f'{b} as {a}' for a, b in names.items())}): "
                         f"{e}", path) from None


def sinusoidal_table(rows: int, dim: int, padding_idx: int) -> Tensor:
    """fairseq's sinusoidal position table (float32): row p holds sin(p f_i) then cos(p f_i), with
    f_i = exp(-i log(10000) / (dim/2 - 1)); an odd ``dim`` ends in a zero column; row ``padding_idx`` is zero."""
    half = dim // 2
    step = math.log(10000) / (half - 1)
    freq = torch.exp(torch.arange(half, dtype=torch.float32) * -step)
    angle = torch.arange(rows, dtype=torch.float32)[:, None] * freq[None]
    table = torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)
    if dim % 2:
        table = torch.cat([table, torch.zeros(rows, 1)], dim=1)
    table[padding_idx] = 0
    return table


def positions_of(tokens: Tensor, padding_idx: int) -> Tensor:
    """fairseq's ``make_positions``: non-padding tokens numbered from padding_idx + 1, padding at padding_idx."""
    keep = tokens.ne(padding_idx).long()
    return torch.cumsum(keep, dim=1) * keep + padding_idx


class Attention(nn.Module):
    """fairseq's MultiheadAttention (no bias_kv, no zero_attn): q, k, v, out projections with biases."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.scaling = self.head_dim ** -0.5
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def split(self, x: Tensor) -> Tensor:  # (N, L, D) -> (N, H, L, Dh)
        return x.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.split(self.k_proj(x)), self.split(self.v_proj(x))

    def forward(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """x (N, U, D) queries; k, v (N, H, S, Dh); mask broadcastable to (N, H, U, S), True = not attended."""
        q = self.split(self.q_proj(x) * self.scaling)
        w = q @ k.transpose(-1, -2)
        if mask is not None:
            w = w.masked_fill(mask, float("-inf"))
        half = w.dtype in (torch.float16, torch.bfloat16)
        p = torch.softmax(w.float() if half else w, dim=-1).to(v.dtype)  # fairseq: softmax in float32
        return self.out_proj((p @ v).transpose(1, 2).flatten(2))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        d = cfg.dim
        self.normalize_before = cfg.normalize_before
        self.act = ACTIVATIONS[cfg.activation]
        self.self_attn = Attention(d, cfg.heads)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.encoder_attn = Attention(d, cfg.heads)
        self.encoder_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, cfg.ffn)
        self.fc2 = nn.Linear(cfg.ffn, d)
        self.final_layer_norm = nn.LayerNorm(d)

    def _residual(self, x: Tensor, y: Tensor, norm: nn.LayerNorm) -> Tensor:
        return x + y if self.normalize_before else norm(x + y)

    def forward(self, x: Tensor, self_mask: Tensor | None, enc_kv: tuple[Tensor, Tensor], enc_mask: Tensor | None,
                past: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x (N, U, D) -> (x, the self-attention keys/values including ``past``, the cached ones)."""
        pre = self.normalize_before
        h = self.self_attn_layer_norm(x) if pre else x
        k, v = self.self_attn.keys_values(h)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        x = self._residual(x, self.self_attn(h, k, v, self_mask), self.self_attn_layer_norm)
        h = self.encoder_attn_layer_norm(x) if pre else x
        x = self._residual(x, self.encoder_attn(h, *enc_kv, enc_mask), self.encoder_attn_layer_norm)
        h = self.final_layer_norm(x) if pre else x
        x = self._residual(x, self.fc2(self.act(self.fc1(h))), self.final_layer_norm)
        return x, (k, v)


class DecoderCache:
    """Incremental state of :meth:`Seq2SeqDecoder.step` for N rows (utterances x beams): per layer the
    self-attention keys/values so far and the encoder-decoder keys/values; the encoder padding mask; the
    number of tokens consumed."""

    def __init__(self, self_kv: list[tuple[Tensor, Tensor] | None], enc_kv: list[tuple[Tensor, Tensor]],
                 enc_mask: Tensor, steps: int = 0):
        self.self_kv, self.enc_kv, self.enc_mask, self.steps = self_kv, enc_kv, enc_mask, steps

    def reorder(self, order: Tensor) -> "DecoderCache":
        """Keep rows ``order`` (beam search's survivors and their parents), in place; returns self."""
        def pick(kv):
            return None if kv is None else (kv[0].index_select(0, order), kv[1].index_select(0, order))
        self.self_kv = [pick(kv) for kv in self.self_kv]
        self.enc_kv = [pick(kv) for kv in self.enc_kv]
        self.enc_mask = self.enc_mask.index_select(0, order)
        return self


class Seq2SeqDecoder(nn.Module):
    """``forward(prev_tokens (B, U) starting with eos, encoder_out (B, T, D), encoder_lengths (B,))`` ->
    logits (B, U, V) in the target dictionary's order (teacher forcing, causal)."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab, cfg.dim, padding_idx=cfg.padding_idx)
        self.embed_scale = math.sqrt(cfg.dim) if cfg.scale_embedding else 1.0
        if cfg.positions == "learned":
            self.embed_positions = nn.Embedding(cfg.max_positions + cfg.padding_idx + 1, cfg.dim,
                                                padding_idx=cfg.padding_idx)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.layers))
        if not cfg.tied:
            self.embed_out = nn.Parameter(torch.empty(cfg.vocab, cfg.dim))
            nn.init.normal_(self.embed_out, std=cfg.dim ** -0.5)
        self.layer_norm = nn.LayerNorm(cfg.dim) if cfg.normalize_before else None
        self._table = torch.empty(0)

    @property
    def max_positions(self) -> int:
        """The longest token sequence (with the leading eos) that has positions."""
        return self.cfg.max_positions if self.cfg.positions != "sinusoidal" else min(self.cfg.max_positions, 100_000)

    def _positions(self, pos: Tensor, like: Tensor) -> Tensor:
        cfg = self.cfg
        if cfg.positions == "learned":
            return self.embed_positions(pos)
        need = int(pos.max()) + 1
        if self._table.shape[0] < need:
            self._table = sinusoidal_table(max(need, cfg.max_positions + cfg.padding_idx + 1), cfg.dim,
                                           cfg.padding_idx)
        if self._table.dtype != like.dtype or self._table.device != like.device:
            self._table = self._table.to(like)  # fairseq's float32 values, held in the model's dtype
        return self._table[pos]

    def _embed(self, tokens: Tensor, pos: Tensor, dtype: torch.dtype) -> Tensor:
        x = self.embed_scale * self.embed_tokens(tokens)
        if self.cfg.positions != "none":
            x = x + self._positions(pos, x)
        return x.to(dtype)

    def _out(self, x: Tensor) -> Tensor:
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        w = self.embed_tokens.weight if self.cfg.tied else self.embed_out
        return x @ w.t()

    @staticmethod
    def encoder_mask(encoder_lengths: Tensor, t: int) -> Tensor:
        """(B, 1, 1, T) True at the encoder's padded frames."""
        return (torch.arange(t, device=encoder_lengths.device)[None] >= encoder_lengths[:, None])[:, None, None]

    def forward(self, prev_tokens: Tensor, encoder_out: Tensor, encoder_lengths: Tensor) -> Tensor:
        u = prev_tokens.shape[1]
        x = self._embed(prev_tokens, positions_of(prev_tokens, self.cfg.padding_idx), encoder_out.dtype)
        causal = torch.ones(u, u, dtype=torch.bool, device=x.device).triu(1)
        enc_mask = self.encoder_mask(encoder_lengths.to(x.device), encoder_out.shape[1])
        for layer in self.layers:
            x, _ = layer(x, causal, layer.encoder_attn.keys_values(encoder_out), enc_mask)
        return self._out(x)

    def start(self, encoder_out: Tensor, encoder_lengths: Tensor) -> DecoderCache:
        """A cache for incremental decoding over ``encoder_out`` (N, T, D) (the encoder-decoder keys and values
        are computed here, once)."""
        enc_kv = [layer.encoder_attn.keys_values(encoder_out) for layer in self.layers]
        return DecoderCache([None] * len(self.layers), enc_kv,
                            self.encoder_mask(encoder_lengths.to(encoder_out.device), encoder_out.shape[1]))

    def step(self, tokens: Tensor, cache: DecoderCache) -> Tensor:
        """Logits (N, V) of the next token after the newest tokens ``tokens`` (N,), updating ``cache`` (the
        position is the cache's count of consumed tokens + 1, fairseq's incremental position for a prefix
        without padding)."""
        dtype = cache.enc_kv[0][0].dtype if cache.enc_kv else self.embed_tokens.weight.dtype
        pos = torch.full_like(tokens, self.cfg.padding_idx + cache.steps + 1)[:, None]
        x = self._embed(tokens[:, None], pos, dtype)
        for i, layer in enumerate(self.layers):
            x, cache.self_kv[i] = layer(x, None, cache.enc_kv[i], cache.enc_mask, cache.self_kv[i])
        cache.steps += 1
        return self._out(x[:, 0])
