"""PyTorch reference of the cross-modal attention: the oracle of the Triton kernel.

Axes: B batch, H heads, La audio tokens, Lv lip tokens, Dh head dim. Token ``i`` of a stream sampled at
``rate`` Hz sits at time ``i / rate`` seconds (frame start).

Two directions share one call (:func:`cross_modal_attention_one_way_reference` is either one alone):

    out_a = softmax(q_a k_v^T * scale + bias) v_v   audio queries attend to lip keys
    out_v = softmax(q_v k_a^T * scale + bias) v_a   lip queries attend to audio keys

with ``bias[h, i, j] = -slopes[h] * |t_q(i) - t_k(j)|``. A key is valid when its index is below its sample's
length and, with a window, when ``|t_q - t_k| <= window`` (ties included, up to ``WINDOW_TOL`` seconds).
Queries at or beyond their length give 0; a query with no valid key gives 0 (never NaN) and zero gradients.

Everything is materialized (``(B, H, Lq, Lk)`` scores), so this is for tests, CPUs and small inputs; it runs
in the dtype of its inputs (float64 for the oracle) and is differentiable in every tensor argument.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

# Slack on the window test, in seconds: ``|t_q - t_k| <= window`` holds for ties despite rounding of i / rate.
# Far below any frame period (10 ms at 100 Hz), so it never admits a key that is truly outside.
WINDOW_TOL = 1e-9


def token_times(length: int, rate: float, device=None) -> Tensor:
    """Times in seconds of tokens ``0..length-1`` of a stream at ``rate`` Hz: ``(length,)`` float64."""
    return torch.arange(length, dtype=torch.float64, device=device) / float(rate)


def in_window(t_q: Tensor, t_k: Tensor, window: float) -> Tensor:
    """The window test, elementwise over broadcast float64 times: ``|t_q - t_k| <= window`` (ties in)."""
    return (t_q - t_k).abs() <= window + WINDOW_TOL


def window_bounds(len_q: int, len_k: int, rate_q: float, rate_k: float, window: float,
                  device=None) -> Tensor:
    """For each query, the first and last key inside the window: ``(2, len_q)`` int32 (``[lo, hi]``).

    ``lo`` is clamped to ``[0, len_k]`` and ``hi`` to ``[-1, len_k - 1]``; ``hi < lo`` means no key in the
    window. Both are non-decreasing in the query index. Computed in O(len_q) from a closed-form candidate,
    then corrected with :func:`in_window` itself, so the kernel's ranges and the reference's mask agree on
    every tie. The keys of query ``i`` are exactly ``lo[i] <= j <= hi[i]`` because the window is an interval.
    """
    t_q = token_times(len_q, rate_q, device)  # (Lq,)
    rk = float(rate_k)

    def ok(j: Tensor) -> Tensor:  # j: (Lq,) float64 key indices, any value
        return in_window(t_q, j / rk, window) & (j >= 0) & (j <= len_k - 1)

    lo = torch.ceil((t_q - window) * rk).clamp(0, len_k)  # (Lq,) first key at or after t_q - window
    hi = torch.floor((t_q + window) * rk).clamp(-1, len_k - 1)  # (Lq,) last key at or before t_q + window
    for _ in range(2):  # the candidates are off by at most one near a tie
        lo = torch.where(ok(lo - 1), lo - 1, lo)
        lo = torch.where(~ok(lo) & (lo / rk < t_q) & (lo < len_k), lo + 1, lo)
        hi = torch.where(ok(hi + 1), hi + 1, hi)
        hi = torch.where(~ok(hi) & (hi / rk > t_q) & (hi >= 0), hi - 1, hi)
    return torch.stack([lo, hi]).to(torch.int32)


def key_mask(len_q: Tensor, len_k: Tensor, Lq: int, Lk: int, rate_q: float, rate_k: float,
             window: float | None) -> tuple[Tensor, Tensor]:
    """Masks of one direction: valid keys ``(B, 1, Lq, Lk)`` and valid queries ``(B, 1, Lq, 1)``, bool.

    Lengths are clamped to ``[0, L]``. A key is valid for a query when its index is below its length and (with
    a window) it lies within ``window`` seconds of the query.
    """
    device = len_q.device
    nq = len_q.to(torch.int64).clamp(0, Lq).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
    nk = len_k.to(torch.int64).clamp(0, Lk).view(-1, 1, 1, 1)
    i = torch.arange(Lq, device=device).view(1, 1, Lq, 1)
    j = torch.arange(Lk, device=device).view(1, 1, 1, Lk)
    keys = j < nk  # (B, 1, 1, Lk)
    if window is not None:
        t_q = token_times(Lq, rate_q, device).view(1, 1, Lq, 1)
        t_k = token_times(Lk, rate_k, device).view(1, 1, 1, Lk)
        keys = keys & in_window(t_q, t_k, float(window))  # (B, 1, Lq, Lk)
    keys = keys.expand(-1, 1, Lq, Lk)
    return keys, i < nq


def _weights(q: Tensor, k: Tensor, len_q: Tensor, len_k: Tensor, rate_q: float, rate_k: float,
             window: float | None, slopes: Tensor | None, scale: float) -> Tensor:
    """Attention probabilities ``(B, H, Lq, Lk)`` of one direction; rows of invalid queries are all 0."""
    Lq, Lk = q.shape[2], k.shape[2]
    keys, queries = key_mask(len_q, len_k, Lq, Lk, rate_q, rate_k, window)  # (B,1,Lq,Lk), (B,1,Lq,1)
    s = torch.matmul(q, k.transpose(-1, -2)) * scale  # (B, H, Lq, Lk)
    if slopes is not None:
        t_q = token_times(Lq, rate_q, q.device).view(Lq, 1)
        t_k = token_times(Lk, rate_k, q.device).view(1, Lk)
        dist = (t_q - t_k).abs().to(q.dtype)  # (Lq, Lk) seconds
        s = s - slopes.to(q.dtype).view(1, -1, 1, 1) * dist  # (B, H, Lq, Lk)
    valid = keys & queries  # (B, 1, Lq, Lk)
    s = s.masked_fill(~valid, float("-inf"))
    s_max = s.amax(dim=-1, keepdim=True).detach()  # (B, H, Lq, 1); -inf on rows without a valid key
    s_max = torch.where(torch.isfinite(s_max), s_max, torch.zeros_like(s_max))
    e = torch.exp(s - s_max)  # exactly 0 on invalid pairs
    denom = e.sum(dim=-1, keepdim=True)
    return e / torch.where(denom > 0, denom, torch.ones_like(denom))  # rows without a valid key: all 0


def _one_direction(q: Tensor, k: Tensor, v: Tensor, len_q: Tensor, len_k: Tensor, rate_q: float,
                   rate_k: float, window: float | None, slopes: Tensor | None, scale: float) -> Tensor:
    """``softmax(q k^T * scale + bias) v`` over valid keys; zeros for invalid queries. Shapes (B, H, L, Dh)."""
    p = _weights(q, k, len_q, len_k, rate_q, rate_k, window, slopes, scale)  # (B, H, Lq, Lk)
    return torch.matmul(p, v)  # (B, H, Lq, Dh); rows with p == 0 are exactly 0


def check_inputs(q_a: Tensor, k_a: Tensor, v_a: Tensor, q_v: Tensor, k_v: Tensor, v_v: Tensor,
                 len_a: Tensor, len_v: Tensor, slopes: Tensor | None) -> None:
    """Raise ``ValueError`` naming the offending shapes when the arguments do not fit together."""
    shapes = dict(q_a=q_a.shape, k_a=k_a.shape, v_a=v_a.shape, q_v=q_v.shape, k_v=k_v.shape, v_v=v_v.shape)
    if any(len(s) != 4 for s in shapes.values()):
        raise ValueError(f"q/k/v must be (B, H, L, Dh); got {shapes}")
    if not (q_a.shape == k_a.shape == v_a.shape and q_v.shape == k_v.shape == v_v.shape
            and q_a.shape[:2] == q_v.shape[:2] and q_a.shape[3] == q_v.shape[3]):
        raise ValueError(f"q/k/v must be (B, H, La, Dh) for audio and (B, H, Lv, Dh) for lips; got {shapes}")
    B, H = q_a.shape[:2]
    if tuple(len_a.shape) != (B,) or tuple(len_v.shape) != (B,):
        raise ValueError(f"len_a and len_v must be ({B},); got {tuple(len_a.shape)} and {tuple(len_v.shape)}")
    if len_a.is_floating_point() or len_v.is_floating_point():
        raise ValueError(f"len_a and len_v must be integer tensors; got {len_a.dtype} and {len_v.dtype}")
    if slopes is not None and tuple(slopes.shape) != (H,):
        raise ValueError(f"slopes must be ({H},) (one per head); got {tuple(slopes.shape)}")
    dtypes = {t.dtype for t in (q_a, k_a, v_a, q_v, k_v, v_v)}
    if len(dtypes) != 1:
        raise ValueError(f"q/k/v of both streams must share one dtype; got {sorted(map(str, dtypes))}")


def check_one_way_inputs(q: Tensor, k: Tensor, v: Tensor, len_q: Tensor, len_k: Tensor,
                         slopes: Tensor | None) -> None:
    """:func:`check_inputs` for one direction: queries ``q (B, H, Lq, Dh)``, keys and values ``(B, H, Lk, Dh)``."""
    shapes = dict(q=q.shape, k=k.shape, v=v.shape)
    if any(len(s) != 4 for s in shapes.values()):
        raise ValueError(f"q/k/v must be (B, H, L, Dh); got {shapes}")
    if not (k.shape == v.shape and q.shape[:2] == k.shape[:2] and q.shape[3] == k.shape[3]):
        raise ValueError(f"q must be (B, H, Lq, Dh) and k, v (B, H, Lk, Dh); got {shapes}")
    B, H = q.shape[:2]
    if tuple(len_q.shape) != (B,) or tuple(len_k.shape) != (B,):
        raise ValueError(f"len_q and len_k must be ({B},); got {tuple(len_q.shape)} and {tuple(len_k.shape)}")
    if len_q.is_floating_point() or len_k.is_floating_point():
        raise ValueError(f"len_q and len_k must be integer tensors; got {len_q.dtype} and {len_k.dtype}")
    if slopes is not None and tuple(slopes.shape) != (H,):
        raise ValueError(f"slopes must be ({H},) (one per head); got {tuple(slopes.shape)}")
    dtypes = {t.dtype for t in (q, k, v)}
    if len(dtypes) != 1:
        raise ValueError(f"q/k/v must share one dtype; got {sorted(map(str, dtypes))}")


def cross_modal_attention_one_way_reference(q: Tensor, k: Tensor, v: Tensor, len_q: Tensor, len_k: Tensor, *,
                                            rate_q: float = 25.0, rate_k: float = 25.0,
                                            window: float | None = None, slopes: Tensor | None = None,
                                            scale: float | None = None) -> Tensor:
    """One direction, materialized: queries ``q (B, H, Lq, Dh)`` attend to keys ``k`` and values
    ``v (B, H, Lk, Dh)`` of the other stream; ``len_q, len_k (B,)`` and ``rate_q, rate_k`` are theirs, the other
    arguments those of :func:`cross_modal_attention_reference`, whose ``out_a`` is this with
    ``(q_a, k_v, v_v, len_a, len_v, rate_a, rate_v)``. Returns ``out (B, H, Lq, Dh)``."""
    check_one_way_inputs(q, k, v, len_q, len_k, slopes)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    return _one_direction(q, k, v, len_q, len_k, rate_q, rate_k, window, slopes, scale)


def cross_modal_attention_reference(q_a: Tensor, k_a: Tensor, v_a: Tensor, q_v: Tensor, k_v: Tensor,
                                    v_v: Tensor, len_a: Tensor, len_v: Tensor, *, rate_a: float = 25.0,
                                    rate_v: float = 25.0, window: float | None = None,
                                    slopes: Tensor | None = None,
                                    scale: float | None = None) -> tuple[Tensor, Tensor]:
    """Cross-modal attention in both directions, materialized.

    Args:
        q_a, k_a, v_a: audio projections ``(B, H, La, Dh)``.
        q_v, k_v, v_v: lip projections ``(B, H, Lv, Dh)``.
        len_a, len_v: valid tokens per sample ``(B,)`` int; 0 means the modality is absent.
        rate_a, rate_v: frame rates in Hz (token ``i`` at ``i / rate`` s).
        window: keys farther than this many seconds from the query are masked; None for no window.
        slopes: ``(H,)`` per-head slope (1/s) of the bias ``-slopes[h] * |t_q - t_k|``; None for no bias.
        scale: multiplies ``q k^T``; default ``1 / sqrt(Dh)``.

    Returns:
        ``out_a (B, H, La, Dh)`` (audio attends to lips) and ``out_v (B, H, Lv, Dh)`` (lips attend to audio).
    """
    check_inputs(q_a, k_a, v_a, q_v, k_v, v_v, len_a, len_v, slopes)
    scale = 1.0 / math.sqrt(q_a.shape[-1]) if scale is None else float(scale)
    out_a = _one_direction(q_a, k_v, v_v, len_a, len_v, rate_a, rate_v, window, slopes, scale)
    out_v = _one_direction(q_v, k_a, v_a, len_v, len_a, rate_v, rate_a, window, slopes, scale)
    return out_a, out_v


def cross_modal_attention_weights(q_a: Tensor, k_a: Tensor, q_v: Tensor, k_v: Tensor, len_a: Tensor,
                                  len_v: Tensor, *, rate_a: float = 25.0, rate_v: float = 25.0,
                                  window: float | None = None, slopes: Tensor | None = None,
                                  scale: float | None = None) -> tuple[Tensor, Tensor]:
    """The attention probabilities of both directions, for inspection and plots (materialized).

    Returns ``p_a (B, H, La, Lv)`` (audio queries over lip keys) and ``p_v (B, H, Lv, La)``; each row sums to 1
    over its valid keys, or is all 0 for a query beyond its length or without a valid key.
    """
    check_inputs(q_a, k_a, k_a, q_v, k_v, k_v, len_a, len_v, slopes)
    scale = 1.0 / math.sqrt(q_a.shape[-1]) if scale is None else float(scale)
    p_a = _weights(q_a, k_v, len_a, len_v, rate_a, rate_v, window, slopes, scale)
    p_v = _weights(q_v, k_a, len_v, len_a, rate_v, rate_a, window, slopes, scale)
    return p_a, p_v
