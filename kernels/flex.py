"""Cross-modal attention through PyTorch's FlexAttention: the GPU baseline of the Triton kernel and a fallback.

The function is that of :mod:`.reference` (per-sample lengths, an optional window in seconds with ties in, the
per-head distance bias ``-slopes[h] * |t_q - t_k|``), expressed for ``torch.nn.attention.flex_attention``:

- the bias is a ``score_mod`` (``score - slopes[h] * |i * rate_k - j * rate_q| / (rate_q * rate_k)``, the same
  exact-for-integer-rates distance as the kernel), differentiable in ``slopes``;
- lengths and the window are a ``mask_mod`` (``i < len_q[b]``, ``j < len_k[b]``, and with a window
  ``lo[i] <= j <= hi[i]`` from :func:`.reference.window_bounds`, so ties agree with the reference and the kernel),
  turned into a block mask that skips blocks with no valid pair.

A fully masked row (a query beyond its length, or with no valid key) gives 0 and zero gradients, as FlexAttention
defines it. On CUDA ``flex_attention`` runs compiled (``torch.compile``: fused, nothing materialized); on the CPU
it runs eagerly (PyTorch's unfused implementation, forward only: torch 2.11 refuses its backward on the CPU, so a
CPU input that requires grad raises :class:`NotImplementedError`).
"""
from __future__ import annotations

import functools
import math
import warnings

import torch
from torch import Tensor

from .reference import window_bounds


# torch 2.11 refuses FlexAttention's backward on the CPU (its eager, unfused autograd exists behind that check).
# Tests lift both checks to compare those gradients with the float64 reference; nothing else should.
CPU_BACKWARD = False


@functools.lru_cache(maxsize=1)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention)


def flex_available() -> bool:
    """Whether this torch has FlexAttention."""
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def flex_block_mask(len_q: Tensor, len_k: Tensor, Lq: int, Lk: int, rate_q: float, rate_k: float,
                    window: float | None, device: torch.device):
    """The block mask of one direction: ``i < len_q[b]``, ``j < len_k[b]`` and, with a window, ``lo[i] <= j <=
    hi[i]``. It depends on the lengths, not on q, k, v: a caller attending many times to equal lengths (a
    benchmark) may build it once and pass it to :func:`flex_one_way`."""
    from torch.nn.attention.flex_attention import create_block_mask

    nq = len_q.to(device=device, dtype=torch.int64).clamp(0, Lq)  # (B,)
    nk = len_k.to(device=device, dtype=torch.int64).clamp(0, Lk)
    if window is None:
        def mask_mod(b, h, q_idx, kv_idx):
            return (q_idx < nq[b]) & (kv_idx < nk[b])
    else:
        lo, hi = window_bounds(Lq, Lk, rate_q, rate_k, window, device=device).to(torch.int64)  # (Lq,) each

        def mask_mod(b, h, q_idx, kv_idx):
            return (q_idx < nq[b]) & (kv_idx < nk[b]) & (kv_idx >= lo[q_idx]) & (kv_idx <= hi[q_idx])

    return create_block_mask(mask_mod, len(nq), None, Lq, Lk, device=device, _compile=device.type != "cpu")


def flex_one_way(q: Tensor, k: Tensor, v: Tensor, len_q: Tensor, len_k: Tensor, rate_q: float, rate_k: float,
                 window: float | None, slopes: Tensor | None, scale: float, block_mask=None) -> Tensor:
    """One direction: queries ``q (B, H, Lq, Dh)`` over keys ``k`` and values ``v (B, H, Lk, Dh)``.

    Inputs are checked by the caller (:func:`.cross_attention.cross_modal_attention` and its one-way form).
    ``block_mask``: :func:`flex_block_mask` of these lengths, built once by the caller (default: built here).
    Returns ``out (B, H, Lq, Dh)`` in the dtype of ``q``.
    """
    from torch.nn.attention.flex_attention import flex_attention

    B, H, Lq, Dh = q.shape
    Lk = k.shape[2]
    device = q.device
    if Lq == 0 or Lk == 0:  # no query, or no key for any: zeros (that still carry the graph)
        return q * 0.0
    on_cpu = device.type == "cpu"
    if on_cpu and not CPU_BACKWARD:
        if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (q, k, v, slopes)):
            raise NotImplementedError("the flex backend has no backward on the CPU (torch 2.11's FlexAttention "
                                      "refuses it); use backend='reference' or 'triton' there, or run under "
                                      "torch.no_grad()")
        q, k, v = q.detach(), k.detach(), v.detach()  # no graph is built: torch's check looks at requires_grad
    if block_mask is None:
        block_mask = flex_block_mask(len_q, len_k, Lq, Lk, rate_q, rate_k, window, device)
    score_mod = None
    if slopes is not None:
        acc = torch.float64 if q.dtype == torch.float64 else torch.float32  # FlexAttention's score dtype
        per_unit = slopes.to(acc) / (float(rate_q) * float(rate_k))  # (H,) per unit of |i*rate_k - j*rate_q|
        # the rates as tensors: Python floats captured by score_mod become unbacked symbols under its tracing
        rq, rk = (torch.tensor(float(r), dtype=acc, device=device) for r in (rate_q, rate_k))

        def score_mod(score, b, h, q_idx, kv_idx):
            dist = (q_idx.to(acc) * rk - kv_idx.to(acc) * rq).abs()
            return score - per_unit[h] * dist

    if not on_cpu:
        return _compiled_flex()(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale)
    with warnings.catch_warnings():  # "called without torch.compile": on the CPU that is the point
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        return flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask, scale=scale)


def flex_cross_modal(q_a: Tensor, k_a: Tensor, v_a: Tensor, q_v: Tensor, k_v: Tensor, v_v: Tensor, len_a: Tensor,
                     len_v: Tensor, rate_a: float, rate_v: float, window: float | None, slopes: Tensor | None,
                     scale: float | None) -> tuple[Tensor, Tensor]:
    """Both directions: ``out_a (B, H, La, Dh)`` (audio over lips), ``out_v (B, H, Lv, Dh)`` (lips over audio)."""
    scale = 1.0 / math.sqrt(q_a.shape[-1]) if scale is None else float(scale)
    out_a = flex_one_way(q_a, k_v, v_v, len_a, len_v, rate_a, rate_v, window, slopes, scale)
    out_v = flex_one_way(q_v, k_a, v_a, len_v, len_a, rate_v, rate_a, window, slopes, scale)
    return out_a, out_v
