"""Cross-modal attention layer: audio tokens attend to lip tokens and lip tokens attend to audio tokens
(``forward``), or only the first (``forward_audio``, which computes nothing of the other direction).

Axes: B batch, La audio tokens, Lv lip tokens, D model dim, H heads, Dh = D / H.

The attention itself is :func:`avspeech.kernels.cross_modal_attention` (one direction:
``cross_modal_attention_one_way``) on the module's ``backend``: ``None`` follows ``$AVSPEECH_ATTENTION``, else
``"auto"`` (the fused Triton kernel on CUDA, its PyTorch reference on CPU); ``"triton"``, ``"flex"`` and
``"reference"`` force one. This module owns the projections, the head split and merge, the learnable
per-head distance slopes and the output projections.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from avspeech.kernels import cross_modal_attention, cross_modal_attention_one_way
from avspeech.kernels.cross_attention import BACKENDS


def default_slopes(heads: int, rate: float) -> Tensor:
    """ALiBi-like geometric slopes in 1/s: head h costs ``2**(-8 (h+1) / H)`` logits per frame at ``rate``."""
    return torch.tensor([2.0 ** (-8.0 * (h + 1) / heads) * rate for h in range(heads)])


class CrossModalAttention(nn.Module):
    """Both directions of cross-modal attention with per-stream projections.

    Args:
        dim: model dim D (both streams), divisible by ``heads``.
        heads: attention heads H.
        rate_a, rate_v: token rates of the audio and lip streams in Hz.
        window: attend only to tokens within this many seconds (None: the whole clip).
        learn_slopes: learn a per-head distance bias ``-s_h |t_q - t_k|`` (ALiBi-like start); False: no bias.
        dropout: dropout on the attended values before the output projections (the fused kernel has no
            attention-probability dropout).
        backend: the attention backend (:func:`avspeech.kernels.cross_modal_attention`'s ``backend``); None
            (default) follows ``$AVSPEECH_ATTENTION``, else ``"auto"``. Not part of the weights: set it per run
            (``module.backend = "flex"``).

    ``forward(x_a (B, La, D), x_v (B, Lv, D), len_a (B,), len_v (B,)) -> (y_a (B, La, D), y_v (B, Lv, D))``:
    ``y_a`` is what the audio tokens read from the lips, ``y_v`` what the lip tokens read from the audio.
    Positions at or beyond their length are 0, and so are tokens with nothing to attend to (length 0 of the
    other stream, or nothing inside the window) before the output projection's bias.

    ``forward_audio(x_a, x_v, len_a, len_v) -> y_a``: ``forward``'s ``y_a`` alone, projecting only the audio
    queries and the lip keys and values and running only that direction of the kernel.
    """

    def __init__(self, dim: int, heads: int, *, rate_a: float = 25.0, rate_v: float = 25.0,
                 window: float | None = None, learn_slopes: bool = True, dropout: float = 0.0,
                 backend: str | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim must be divisible by heads; got dim={dim}, heads={heads}")
        self.dim, self.heads = dim, heads
        self.rate_a, self.rate_v, self.window = float(rate_a), float(rate_v), window
        if backend is not None and backend not in BACKENDS:
            raise ValueError(f"unknown attention backend {backend!r}; choose from {BACKENDS}")
        self.backend = backend
        self.qkv_a = nn.Linear(dim, 3 * dim)
        self.qkv_v = nn.Linear(dim, 3 * dim)
        self.out_a = nn.Linear(dim, dim)
        self.out_v = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.slopes = nn.Parameter(default_slopes(heads, min(rate_a, rate_v))) if learn_slopes else None

    def _heads(self, x: Tensor, proj: nn.Linear) -> tuple[Tensor, Tensor, Tensor]:
        """(B, L, D) -> q, k, v (B, H, L, Dh), views of one projection (shared strides, as the kernel wants)."""
        qkv = proj(x)  # (B, L, 3 D)
        q, k, v = rearrange(qkv, "b l (three h d) -> three b h l d", three=3, h=self.heads)
        return q, k, v

    def _check(self, x_a: Tensor, x_v: Tensor) -> None:
        if x_a.shape[-1] != self.dim or x_v.shape[-1] != self.dim or x_a.shape[0] != x_v.shape[0]:
            raise ValueError(f"expected x_a (B, La, {self.dim}) and x_v (B, Lv, {self.dim}); "
                             f"got {tuple(x_a.shape)} and {tuple(x_v.shape)}")

    def forward(self, x_a: Tensor, x_v: Tensor, len_a: Tensor, len_v: Tensor) -> tuple[Tensor, Tensor]:
        self._check(x_a, x_v)
        q_a, k_a, v_a = self._heads(x_a, self.qkv_a)  # (B, H, La, Dh)
        q_v, k_v, v_v = self._heads(x_v, self.qkv_v)  # (B, H, Lv, Dh)
        o_a, o_v = cross_modal_attention(q_a, k_a, v_a, q_v, k_v, v_v, len_a, len_v, rate_a=self.rate_a,
                                         rate_v=self.rate_v, window=self.window, slopes=self.slopes,
                                         backend=self.backend)
        o_a = rearrange(o_a, "b h l d -> b l (h d)")  # (B, La, D)
        o_v = rearrange(o_v, "b h l d -> b l (h d)")  # (B, Lv, D)
        y_a = self.out_a(self.dropout(o_a))
        y_v = self.out_v(self.dropout(o_v))
        keep_a = (torch.arange(x_a.shape[1], device=x_a.device) < len_a[:, None]).unsqueeze(-1)  # (B, La, 1)
        keep_v = (torch.arange(x_v.shape[1], device=x_v.device) < len_v[:, None]).unsqueeze(-1)  # (B, Lv, 1)
        return y_a * keep_a, y_v * keep_v

    def forward_audio(self, x_a: Tensor, x_v: Tensor, len_a: Tensor, len_v: Tensor) -> Tensor:
        """``forward(...)[0]`` without the lip->audio direction: ``y_a (B, La, D)``."""
        self._check(x_a, x_v)
        d = self.dim
        q_a = F.linear(x_a, self.qkv_a.weight[:d], self.qkv_a.bias[:d])  # (B, La, D): the q rows of qkv_a
        kv_v = F.linear(x_v, self.qkv_v.weight[d:], self.qkv_v.bias[d:])  # (B, Lv, 2 D): the k, v rows of qkv_v
        q_a = rearrange(q_a, "b l (h d) -> b h l d", h=self.heads)  # (B, H, La, Dh)
        k_v, v_v = rearrange(kv_v, "b l (two h d) -> two b h l d", two=2, h=self.heads)  # (B, H, Lv, Dh)
        o_a = cross_modal_attention_one_way(q_a, k_v, v_v, len_a, len_v, rate_q=self.rate_a, rate_k=self.rate_v,
                                            window=self.window, slopes=self.slopes, backend=self.backend)
        y_a = self.out_a(self.dropout(rearrange(o_a, "b h l d -> b l (h d)")))  # (B, La, D)
        keep_a = (torch.arange(x_a.shape[1], device=x_a.device) < len_a[:, None]).unsqueeze(-1)  # (B, La, 1)
        return y_a * keep_a
