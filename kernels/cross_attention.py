"""Fused cross-modal attention in Triton: audio attends to lips and lips attend to audio in one launch.

:func:`cross_modal_attention` runs both directions; :func:`cross_modal_attention_one_way` runs one (queries of one
stream over keys and values of the other) and launches only that direction's programs, forward and backward.

Axes: B batch, H heads, La audio tokens, Lv lip tokens, Dh head dim; Lq / Lk the query / key stream of one
direction. The function is that of :mod:`.reference` (read its docstring): per-sample lengths, an optional
time window in seconds, an optional per-head distance bias ``-slopes[h] * |t_q - t_k|``.

How the kernels work
- Forward: one program per (query block, batch x head), both directions in one grid (program ids below
  ``cdiv(La, BLOCK_M)`` are audio queries over lip keys, the rest lip queries over audio keys). Online softmax
  in base 2 with fp32 accumulators. Key blocks outside the window or beyond the key length are never visited:
  the visited range comes from per-query window bounds (``(2, Lq)`` int32, first and last key in the window,
  computed once on the host side by :func:`.reference.window_bounds`, O(L) memory). Only the edge blocks of
  that range are masked; interior blocks run without masks. Stores the log-sum-exp per query (``+inf`` for a
  query without a valid key or beyond its length, which makes every probability of that row 0 in backward).
- Backward: a preprocess kernel (``delta = rowsum(dO * O)``), a dq kernel (per query block, also writes one
  partial sum of the slope gradient per program) and a dk/dv kernel (per key block, loops over the query
  blocks that see it, using the transposed window bounds). Each covers both directions in one launch; no
  atomics, so gradients are deterministic. ``deterministic=False`` drops the dq kernel: the dk/dv kernel also
  adds each tile's ``dS k`` (and the slope gradient's per-query terms) to zeroed fp32 buffers with atomics, 5
  matrix products per tile instead of 7, as FlashAttention-2/3 do.
- Backends: :func:`cross_modal_attention` runs these kernels, :mod:`.flex` (FlexAttention) or :mod:`.reference`
  by its ``backend`` argument; ``$AVSPEECH_ATTENTION`` only sets the default. :mod:`.launch_capture` builds the
  kernels exactly as the launchers would launch them, for a GPU this machine does not have.

One direction runs the same kernels with the query stream in the audio slots and the key stream in the lip slots,
on a grid of the audio-query programs only (forward, delta, dq) and of the lip-key programs only (dk/dv); the
other slots are never read.

Layouts: q, k, v of one stream must share strides with unit stride on Dh (else they are made contiguous).
Outputs and gradients are allocated as ``(B, L, H, Dh)`` memory seen as ``(B, H, L, Dh)``, so merging heads
back to ``(B, L, H * Dh)`` is a free view.
"""
from __future__ import annotations

import functools
import math
import os

import torch
import triton
import triton.language as tl
from torch import Tensor

from .flex import flex_available, flex_cross_modal, flex_one_way
from .reference import (check_inputs, check_one_way_inputs, cross_modal_attention_one_way_reference,
                        cross_modal_attention_reference, window_bounds)

LOG2E = 1.4426950408889634

# Whether the @triton.jit functions below were built for the interpreter (TRITON_INTERPRET=1 before import).
INTERPRET = bool(triton.knobs.runtime.interpret)


def _empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """Allocation of every kernel output; tests replace it with a NaN fill so an unwritten element fails."""
    return torch.empty(shape, dtype=dtype, device=device)


# ----------------------------------------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------------------------------------


@triton.jit
def _load_rows(ptr, offs_l, stride_l, n_valid, offs_d, ROW_MASK: tl.constexpr, HEAD_DIM: tl.constexpr,
               BLOCK_D: tl.constexpr):
    """Load rows ``offs_l`` (x Dh) of one (batch, head) slice; rows >= n_valid read as 0 when ROW_MASK."""
    ptrs = ptr + offs_l[:, None] * stride_l + offs_d[None, :]
    if ROW_MASK:
        if BLOCK_D == HEAD_DIM:
            x = tl.load(ptrs, mask=(offs_l < n_valid)[:, None], other=0.0)
        else:
            x = tl.load(ptrs, mask=(offs_l < n_valid)[:, None] & (offs_d < HEAD_DIM)[None, :], other=0.0)
    else:
        if BLOCK_D == HEAD_DIM:
            x = tl.load(ptrs)
        else:
            x = tl.load(ptrs, mask=(offs_d < HEAD_DIM)[None, :], other=0.0)
    return x


@triton.jit
def _store_rows(ptr, x, offs_l, stride_l, n_rows, offs_d, HEAD_DIM: tl.constexpr, BLOCK_D: tl.constexpr):
    """Store ``x`` (BLOCK, BLOCK_D) into rows ``offs_l < n_rows`` of one (batch, head) slice."""
    ptrs = ptr + offs_l[:, None] * stride_l + offs_d[None, :]
    tl.store(ptrs, x, mask=(offs_l < n_rows)[:, None] & (offs_d < HEAD_DIM)[None, :])


@triton.jit
def _visit_range(Win, start, n_q, Lq, len_k, BLOCK: tl.constexpr, HAS_WINDOW: tl.constexpr):
    """Keys to visit for queries ``[start, start + BLOCK)``: ``[lo, hi)`` all visited, ``[full_lo, full_hi)``
    valid for every query of the block below ``len_q`` (no mask needed there).

    ``Win`` holds ``(2, Lq)`` int32: first and last key in the window per query (non-decreasing).
    Works the same for the transposed problem (keys of a block -> queries that see them).
    """
    if HAS_WINDOW:
        last = tl.maximum(tl.minimum(start + BLOCK, n_q) - 1, start)  # last query of the block below len_q
        lo = tl.load(Win + start)
        hi = tl.load(Win + Lq + last) + 1
        full_lo = tl.load(Win + last)
        full_hi = tl.load(Win + Lq + start) + 1
    else:
        lo = tl.full([], 0, tl.int32)
        hi = len_k
        full_lo = tl.full([], 0, tl.int32)
        full_hi = len_k
    hi = tl.where(start < n_q, tl.minimum(hi, len_k), 0)  # no query of the block is valid: visit nothing
    full_hi = tl.where(start < n_q, tl.minimum(full_hi, len_k), 0)
    return lo, hi, full_lo, full_hi


@triton.jit
def _block_starts(lo, hi, full_lo, full_hi, BLOCK_N: tl.constexpr):
    """Split the visited keys into masked head ``[a, f0)``, unmasked body ``[f0, f1)``, masked tail ``[f1, hi)``.

    Block starts are multiples of BLOCK_N; the body holds only blocks entirely inside ``[full_lo, full_hi)``.
    """
    a = (lo // BLOCK_N) * BLOCK_N
    f0 = tl.maximum(tl.cdiv(full_lo, BLOCK_N) * BLOCK_N, a)
    f1 = tl.maximum((full_hi // BLOCK_N) * BLOCK_N, f0)
    return a, tl.minimum(f0, hi), f0, f1


@triton.jit
def _scores(q, k, offs_m, offs_n, row_lo, row_hi, len_k, qk_scale, slope2, rate_q, rate_k,
            MASKED: tl.constexpr, HAS_WINDOW: tl.constexpr, HAS_BIAS: tl.constexpr, DOT_PREC: tl.constexpr):
    """Base-2 logits of a (BLOCK_M, BLOCK_N) tile; -inf where masked. Also returns ``|i*rate_k - j*rate_q|``
    (the time distance times ``rate_q * rate_k``, exact for integer rates) when HAS_BIAS, else 0."""
    s = tl.dot(q, tl.trans(k), input_precision=DOT_PREC) * qk_scale  # (BLOCK_M, BLOCK_N)
    dist = 0.0
    if HAS_BIAS:
        dist = tl.abs(offs_m.to(tl.float32)[:, None] * rate_k - offs_n.to(tl.float32)[None, :] * rate_q)
        s = s - slope2 * dist
    if MASKED:
        valid = (offs_n < len_k)[None, :]
        if HAS_WINDOW:
            valid = valid & (offs_n[None, :] >= row_lo[:, None]) & (offs_n[None, :] <= row_hi[:, None])
        s = tl.where(valid, s, float("-inf"))
    return s, dist


@triton.jit
def _fwd_inner(acc, l_i, m_i, q, K, stride_kl, V, start, end, offs_m, row_lo, row_hi, len_k, qk_scale, slope2,
               rate_q, rate_k, MASKED: tl.constexpr, HAS_WINDOW: tl.constexpr, HAS_BIAS: tl.constexpr,
               HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PREC: tl.constexpr):
    """Online softmax over the key blocks starting in ``[start, end)``."""
    offs_d = tl.arange(0, BLOCK_D)
    for start_n in tl.range(start, end, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k = _load_rows(K, offs_n, stride_kl, len_k, offs_d, MASKED, HEAD_DIM, BLOCK_D)  # (BLOCK_N, BLOCK_D)
        v = _load_rows(V, offs_n, stride_kl, len_k, offs_d, MASKED, HEAD_DIM, BLOCK_D)
        s, dist = _scores(q, k, offs_m, offs_n, row_lo, row_hi, len_k, qk_scale, slope2, rate_q, rate_k,
                          MASKED, HAS_WINDOW, HAS_BIAS, DOT_PREC)
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_sub = tl.where(m_new == float("-inf"), 0.0, m_new)  # a row with no valid key yet: p = 0, not NaN
        p = tl.math.exp2(s - m_sub[:, None])
        alpha = tl.math.exp2(m_i - m_sub)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PREC)
        m_i = m_new
    return acc, l_i, m_i


@triton.jit
def _fwd_block(O, stride_ol, Lse, Q, stride_ql, K, V, stride_kl, Win, pid_m, Lq, Lk, len_q, len_k, qk_scale, slope2,
               rate_q, rate_k, HAS_WINDOW: tl.constexpr, HAS_BIAS: tl.constexpr, HEAD_DIM: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PREC: tl.constexpr):
    """One query block of one direction; pointers are already at this (batch, head)."""
    start_m = pid_m * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    q = _load_rows(Q, offs_m, stride_ql, len_q, offs_d, True, HEAD_DIM, BLOCK_D)  # (BLOCK_M, BLOCK_D)
    lo, hi, full_lo, full_hi = _visit_range(Win, start_m, len_q, Lq, len_k, BLOCK_M, HAS_WINDOW)
    if HAS_WINDOW:
        row_lo = tl.load(Win + offs_m, mask=offs_m < Lq, other=0)
        row_hi = tl.load(Win + Lq + offs_m, mask=offs_m < Lq, other=-1)
    else:
        row_lo = offs_m
        row_hi = offs_m
    a, a_end, f0, f1 = _block_starts(lo, hi, full_lo, full_hi, BLOCK_N)

    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, K, stride_kl, V, a, a_end, offs_m, row_lo, row_hi, len_k,
                               qk_scale, slope2, rate_q, rate_k, True, HAS_WINDOW, HAS_BIAS, HEAD_DIM, BLOCK_N,
                               BLOCK_D, DOT_PREC)
    acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, K, stride_kl, V, f0, f1, offs_m, row_lo, row_hi, len_k,
                               qk_scale, slope2, rate_q, rate_k, False, HAS_WINDOW, HAS_BIAS, HEAD_DIM, BLOCK_N,
                               BLOCK_D, DOT_PREC)
    acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, K, stride_kl, V, f1, hi, offs_m, row_lo, row_hi, len_k,
                               qk_scale, slope2, rate_q, rate_k, True, HAS_WINDOW, HAS_BIAS, HEAD_DIM, BLOCK_N,
                               BLOCK_D, DOT_PREC)

    ok = (offs_m < len_q) & (l_i > 0.0)  # valid query with at least one valid key
    l_safe = tl.where(ok, l_i, 1.0)
    out = tl.where(ok[:, None], acc / l_safe[:, None], 0.0)
    lse = tl.where(ok, m_i + tl.math.log2(l_safe), float("inf"))
    _store_rows(O, out.to(O.dtype.element_ty), offs_m, stride_ol, Lq, offs_d, HEAD_DIM, BLOCK_D)
    tl.store(Lse + offs_m, lse, mask=offs_m < Lq)


@triton.jit
def _cross_attn_fwd_kernel(
    O_a, O_v, Lse_a, Lse_v,  # outputs: (B, H, L, Dh) with strides below; lse (B, H, L) contiguous fp32
    Q_a, K_a, V_a, Q_v, K_v, V_v,  # inputs: (B, H, L, Dh); q, k, v of a stream share strides, unit on Dh
    Len_a, Len_v, Slopes, Win_a, Win_v,  # (B,) int, (H,) fp32, (2, La) / (2, Lv) int32 window bounds
    so_ab, so_ah, so_al, so_vb, so_vh, so_vl,  # output strides (batch, head, token) of each stream
    s_ab, s_ah, s_al, s_vb, s_vh, s_vl,  # input strides
    H, La, Lv, qk_scale, rate_a, rate_v, bias_scale,
    HAS_WINDOW: tl.constexpr, HAS_BIAS: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PREC: tl.constexpr,
):
    pid = tl.program_id(0)
    pid_bh = tl.program_id(1).to(tl.int64)
    b = pid_bh // H
    h = pid_bh % H
    len_a = tl.minimum(tl.maximum(tl.load(Len_a + b).to(tl.int32), 0), La)
    len_v = tl.minimum(tl.maximum(tl.load(Len_v + b).to(tl.int32), 0), Lv)
    slope2 = 0.0
    if HAS_BIAS:  # base-2 slope per unit of |i*rate_k - j*rate_q|
        slope2 = tl.load(Slopes + h) * bias_scale
    n_blocks_a = tl.cdiv(La, BLOCK_M)
    if pid < n_blocks_a:  # audio queries attend to lip keys
        _fwd_block(O_a + b * so_ab + h * so_ah, so_al, Lse_a + pid_bh * La,
                   Q_a + b * s_ab + h * s_ah, s_al, K_v + b * s_vb + h * s_vh, V_v + b * s_vb + h * s_vh, s_vl,
                   Win_a, pid, La, Lv, len_a, len_v, qk_scale, slope2, rate_a, rate_v,
                   HAS_WINDOW, HAS_BIAS, HEAD_DIM, BLOCK_M, BLOCK_N, BLOCK_D, DOT_PREC)
    else:  # lip queries attend to audio keys
        _fwd_block(O_v + b * so_vb + h * so_vh, so_vl, Lse_v + pid_bh * Lv,
                   Q_v + b * s_vb + h * s_vh, s_vl, K_a + b * s_ab + h * s_ah, V_a + b * s_ab + h * s_ah, s_al,
                   Win_v, pid - n_blocks_a, Lv, La, len_v, len_a, qk_scale, slope2, rate_v, rate_a,
                   HAS_WINDOW, HAS_BIAS, HEAD_DIM, BLOCK_M, BLOCK_N, BLOCK_D, DOT_PREC)


@triton.jit
def _bwd_delta_block(Delta, O, dO, stride_ol, pid_m, Lq, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr,
                     BLOCK_D: tl.constexpr):
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    o = _load_rows(O, offs_m, stride_ol, Lq, offs_d, True, HEAD_DIM, BLOCK_D).to(tl.float32)
    do = _load_rows(dO, offs_m, stride_ol, Lq, offs_d, True, HEAD_DIM, BLOCK_D).to(tl.float32)
    tl.store(Delta + offs_m, tl.sum(o * do, 1), mask=offs_m < Lq)


@triton.jit
def _cross_attn_bwd_delta_kernel(
    Delta_a, Delta_v,  # outputs: (B, H, L) contiguous fp32, rowsum(dO * O)
    O_a, O_v, dO_a, dO_v,  # inputs: (B, H, L, Dh), dO in the layout of O
    so_ab, so_ah, so_al, so_vb, so_vh, so_vl,
    H, La, Lv,
    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)
    pid_bh = tl.program_id(1).to(tl.int64)
    b = pid_bh // H
    h = pid_bh % H
    n_blocks_a = tl.cdiv(La, BLOCK_M)
    if pid < n_blocks_a:
        _bwd_delta_block(Delta_a + pid_bh * La, O_a + b * so_ab + h * so_ah, dO_a + b * so_ab + h * so_ah, so_al,
                         pid, La, HEAD_DIM, BLOCK_M, BLOCK_D)
    else:
        _bwd_delta_block(Delta_v + pid_bh * Lv, O_v + b * so_vb + h * so_vh, dO_v + b * so_vb + h * so_vh, so_vl,
                         pid - n_blocks_a, Lv, HEAD_DIM, BLOCK_M, BLOCK_D)


@triton.jit
def _bwd_dq_inner(dq, pdp_dist, p_dist, pdp, q, do, lse, delta, K, V, stride_kl, start, end, offs_m, row_lo, row_hi, len_k,
                  qk_scale, slope2, rate_q, rate_k, MASKED: tl.constexpr, HAS_WINDOW: tl.constexpr,
                  HAS_BIAS: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                  DOT_PREC: tl.constexpr):
    offs_d = tl.arange(0, BLOCK_D)
    for start_n in tl.range(start, end, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        k = _load_rows(K, offs_n, stride_kl, len_k, offs_d, MASKED, HEAD_DIM, BLOCK_D)  # (BLOCK_N, BLOCK_D)
        v = _load_rows(V, offs_n, stride_kl, len_k, offs_d, MASKED, HEAD_DIM, BLOCK_D)
        s, dist = _scores(q, k, offs_m, offs_n, row_lo, row_hi, len_k, qk_scale, slope2, rate_q, rate_k,
                          MASKED, HAS_WINDOW, HAS_BIAS, DOT_PREC)
        p = tl.math.exp2(s - lse[:, None])  # (BLOCK_M, BLOCK_N); 0 on rows with lse = +inf
        dp = tl.dot(do, tl.trans(v), input_precision=DOT_PREC)
        ds = p * (dp - delta[:, None])  # d loss / d logit (natural units)
        dq += tl.dot(ds.to(k.dtype), k, input_precision=DOT_PREC)
        if HAS_BIAS:  # sum_j ds * dist, with delta recomputed from P and dP (see _bwd_dq_block)
            p_dp = p * dp
            pdp_dist += tl.sum(p_dp * dist, 1)
            p_dist += tl.sum(p * dist, 1)
            pdp += tl.sum(p_dp, 1)
    return dq, pdp_dist, p_dist, pdp


@triton.jit
def _bwd_dq_block(dQ, stride_ol, dSlope, Q, stride_ql, K, V, stride_kl, dO, Lse, Delta, Win, pid_m, Lq, Lk, len_q, len_k,
                  qk_scale, sm_scale, slope2, rate_q, rate_k, dslope_scale, HAS_WINDOW: tl.constexpr,
                  HAS_BIAS: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                  BLOCK_D: tl.constexpr, DOT_PREC: tl.constexpr):
    start_m = pid_m * BLOCK_M
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    q = _load_rows(Q, offs_m, stride_ql, len_q, offs_d, True, HEAD_DIM, BLOCK_D)
    do = _load_rows(dO, offs_m, stride_ol, len_q, offs_d, True, HEAD_DIM, BLOCK_D)
    lse = tl.load(Lse + offs_m, mask=offs_m < Lq, other=float("inf"))
    delta = tl.load(Delta + offs_m, mask=offs_m < Lq, other=0.0)
    lo, hi, full_lo, full_hi = _visit_range(Win, start_m, len_q, Lq, len_k, BLOCK_M, HAS_WINDOW)
    if HAS_WINDOW:
        row_lo = tl.load(Win + offs_m, mask=offs_m < Lq, other=0)
        row_hi = tl.load(Win + Lq + offs_m, mask=offs_m < Lq, other=-1)
    else:
        row_lo = offs_m
        row_hi = offs_m
    a, a_end, f0, f1 = _block_starts(lo, hi, full_lo, full_hi, BLOCK_N)

    dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    pdp_dist = tl.zeros([BLOCK_M], dtype=tl.float32)  # sum_j P dP dist
    p_dist = tl.zeros([BLOCK_M], dtype=tl.float32)  # sum_j P dist
    pdp = tl.zeros([BLOCK_M], dtype=tl.float32)  # sum_j P dP
    dq, pdp_dist, p_dist, pdp = _bwd_dq_inner(dq, pdp_dist, p_dist, pdp, q, do, lse, delta, K, V, stride_kl, a, a_end, offs_m, row_lo, row_hi,
                                len_k, qk_scale, slope2, rate_q, rate_k, True, HAS_WINDOW, HAS_BIAS, HEAD_DIM,
                                BLOCK_N, BLOCK_D, DOT_PREC)
    dq, pdp_dist, p_dist, pdp = _bwd_dq_inner(dq, pdp_dist, p_dist, pdp, q, do, lse, delta, K, V, stride_kl, f0, f1, offs_m, row_lo, row_hi,
                                len_k, qk_scale, slope2, rate_q, rate_k, False, HAS_WINDOW, HAS_BIAS, HEAD_DIM,
                                BLOCK_N, BLOCK_D, DOT_PREC)
    dq, pdp_dist, p_dist, pdp = _bwd_dq_inner(dq, pdp_dist, p_dist, pdp, q, do, lse, delta, K, V, stride_kl, f1, hi, offs_m, row_lo, row_hi,
                                len_k, qk_scale, slope2, rate_q, rate_k, True, HAS_WINDOW, HAS_BIAS, HEAD_DIM,
                                BLOCK_N, BLOCK_D, DOT_PREC)
    _store_rows(dQ, (dq * sm_scale).to(dQ.dtype.element_ty), offs_m, stride_ol, Lq, offs_d, HEAD_DIM, BLOCK_D)
    if HAS_BIAS:
        # d loss / d slope = sum_ij dS_ij * (d logit / d slope = -|t_q - t_k| = dist * dslope_scale), with
        # sum_j dS_ij dist_ij = sum_j P dP dist - delta_i sum_j P dist. Here delta_i = sum_j P dP rather than
        # rowsum(dO * O): O was rounded to the output dtype, and the terms cancel (sum_j dS_ij = 0), so that
        # rounding would dominate the slope gradient in fp16/bf16.
        ds_dist = pdp_dist - pdp * p_dist
        tl.store(dSlope, tl.sum(ds_dist, 0) * dslope_scale)


@triton.jit
def _cross_attn_bwd_dq_kernel(
    dQ_a, dQ_v, dSlope,  # outputs: dq (B, H, L, Dh) in the output layout; dSlope (B, H, n_programs) fp32
    Q_a, K_a, V_a, Q_v, K_v, V_v, dO_a, dO_v, Lse_a, Lse_v, Delta_a, Delta_v,  # inputs
    Len_a, Len_v, Slopes, Win_a, Win_v,
    so_ab, so_ah, so_al, so_vb, so_vh, so_vl,  # output strides (also of dO)
    s_ab, s_ah, s_al, s_vb, s_vh, s_vl,  # input strides
    H, La, Lv, qk_scale, sm_scale, rate_a, rate_v, bias_scale, dslope_scale,
    HAS_WINDOW: tl.constexpr, HAS_BIAS: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PREC: tl.constexpr,
):
    pid = tl.program_id(0)
    pid_bh = tl.program_id(1).to(tl.int64)
    b = pid_bh // H
    h = pid_bh % H
    len_a = tl.minimum(tl.maximum(tl.load(Len_a + b).to(tl.int32), 0), La)
    len_v = tl.minimum(tl.maximum(tl.load(Len_v + b).to(tl.int32), 0), Lv)
    slope2 = 0.0
    if HAS_BIAS:
        slope2 = tl.load(Slopes + h) * bias_scale
    n_blocks_a = tl.cdiv(La, BLOCK_M)
    dslope = dSlope + pid_bh * tl.num_programs(0) + pid
    if pid < n_blocks_a:
        _bwd_dq_block(dQ_a + b * so_ab + h * so_ah, so_al, dslope, Q_a + b * s_ab + h * s_ah, s_al,
                      K_v + b * s_vb + h * s_vh, V_v + b * s_vb + h * s_vh, s_vl, dO_a + b * so_ab + h * so_ah,
                      Lse_a + pid_bh * La, Delta_a + pid_bh * La, Win_a, pid, La, Lv, len_a, len_v, qk_scale,
                      sm_scale, slope2, rate_a, rate_v, dslope_scale,
                      HAS_WINDOW, HAS_BIAS, HEAD_DIM, BLOCK_M, BLOCK_N, BLOCK_D, DOT_PREC)
    else:
        _bwd_dq_block(dQ_v + b * so_vb + h * so_vh, so_vl, dslope, Q_v + b * s_vb + h * s_vh, s_vl,
                      K_a + b * s_ab + h * s_ah, V_a + b * s_ab + h * s_ah, s_al, dO_v + b * so_vb + h * so_vh,
                      Lse_v + pid_bh * Lv, Delta_v + pid_bh * Lv, Win_v, pid - n_blocks_a, Lv, La, len_v, len_a,
                      qk_scale, sm_scale, slope2, rate_v, rate_a, dslope_scale,
                      HAS_WINDOW, HAS_BIAS, HEAD_DIM, BLOCK_M, BLOCK_N, BLOCK_D, DOT_PREC)


@triton.jit
def _bwd_dkdv_inner(dk, dv, k, v, Q, dO, stride_ql, stride_ol, Lse, Delta, DQacc, Rows, rows_stride, start, end,
                    offs_n, col_lo, col_hi, len_q, len_k, qk_scale, slope2, rate_q, rate_k, MASKED: tl.constexpr,
                    HAS_WINDOW: tl.constexpr, HAS_BIAS: tl.constexpr, ATOMIC_DQ: tl.constexpr,
                    HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PREC: tl.constexpr):
    """Accumulate dk, dv of one key block over the query blocks starting in ``[start, end)``.

    Works on transposed tiles (keys x queries); ``col_lo/col_hi`` are the first and last query that sees
    each key. Rows of keys beyond their length are garbage here and zeroed by the caller, except with
    ATOMIC_DQ: then their probabilities are zeroed, and each tile also adds its ``dS k`` to the fp32 dq
    accumulator ``DQacc`` (rows of HEAD_DIM) and, with a bias, its per-query sums of P dP dist, P dist and P dP
    to ``Rows`` (three planes ``rows_stride`` apart), the terms of the slope gradient (see _bwd_dq_block).
    """
    offs_d = tl.arange(0, BLOCK_D)
    for start_m in tl.range(start, end, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        q = _load_rows(Q, offs_m, stride_ql, len_q, offs_d, MASKED, HEAD_DIM, BLOCK_D)  # (BLOCK_M, BLOCK_D)
        do = _load_rows(dO, offs_m, stride_ol, len_q, offs_d, MASKED, HEAD_DIM, BLOCK_D)
        if MASKED:
            lse = tl.load(Lse + offs_m, mask=offs_m < len_q, other=float("inf"))
            delta = tl.load(Delta + offs_m, mask=offs_m < len_q, other=0.0)
        else:
            lse = tl.load(Lse + offs_m)
            delta = tl.load(Delta + offs_m)
        # transposed scores: the roles of (queries, keys) in _scores are played by (keys, queries)
        s_t, dist_t = _scores(k, q, offs_n, offs_m, col_lo, col_hi, len_q, qk_scale, slope2, rate_k, rate_q,
                              MASKED, HAS_WINDOW, HAS_BIAS, DOT_PREC)  # (BLOCK_N, BLOCK_M)
        p_t = tl.math.exp2(s_t - lse[None, :])
        if ATOMIC_DQ:
            p_t = tl.where((offs_n < len_k)[:, None], p_t, 0.0)
        dv += tl.dot(p_t.to(do.dtype), do, input_precision=DOT_PREC)
        dp_t = tl.dot(v, tl.trans(do), input_precision=DOT_PREC)
        ds_t = p_t * (dp_t - delta[None, :])
        dk += tl.dot(ds_t.to(q.dtype), q, input_precision=DOT_PREC)
        if ATOMIC_DQ:
            q_ok = offs_m < len_q
            dq = tl.dot(tl.trans(ds_t.to(k.dtype)), k, input_precision=DOT_PREC)  # (BLOCK_M, BLOCK_D)
            tl.atomic_add(DQacc + offs_m[:, None] * HEAD_DIM + offs_d[None, :], dq,
                          mask=q_ok[:, None] & (offs_d < HEAD_DIM)[None, :])
            if HAS_BIAS:
                p_dp = p_t * dp_t
                tl.atomic_add(Rows + offs_m, tl.sum(p_dp * dist_t, 0), mask=q_ok)
                tl.atomic_add(Rows + rows_stride + offs_m, tl.sum(p_t * dist_t, 0), mask=q_ok)
                tl.atomic_add(Rows + 2 * rows_stride + offs_m, tl.sum(p_dp, 0), mask=q_ok)
    return dk, dv


@triton.jit
def _bwd_dkdv_block(dK, dV, stride_ol, K, V, stride_kl, Q, stride_ql, dO, stride_dol, Lse, Delta, DQacc, Rows,
                    rows_stride, WinT, pid_n, Lq, Lk, len_q, len_k, qk_scale, sm_scale, slope2, rate_q, rate_k,
                    HAS_WINDOW: tl.constexpr, HAS_BIAS: tl.constexpr, ATOMIC_DQ: tl.constexpr,
                    HEAD_DIM: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PREC: tl.constexpr):
    start_n = pid_n * BLOCK_N
    offs_n = start_n + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    k = _load_rows(K, offs_n, stride_kl, len_k, offs_d, True, HEAD_DIM, BLOCK_D)  # (BLOCK_N, BLOCK_D)
    v = _load_rows(V, offs_n, stride_kl, len_k, offs_d, True, HEAD_DIM, BLOCK_D)
    # queries that see the keys of this block (WinT: first and last query per key)
    lo, hi, full_lo, full_hi = _visit_range(WinT, start_n, len_k, Lk, len_q, BLOCK_N, HAS_WINDOW)
    if HAS_WINDOW:
        col_lo = tl.load(WinT + offs_n, mask=offs_n < Lk, other=0)
        col_hi = tl.load(WinT + Lk + offs_n, mask=offs_n < Lk, other=-1)
    else:
        col_lo = offs_n
        col_hi = offs_n
    a, a_end, f0, f1 = _block_starts(lo, hi, full_lo, full_hi, BLOCK_M)

    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dk, dv = _bwd_dkdv_inner(dk, dv, k, v, Q, dO, stride_ql, stride_dol, Lse, Delta, DQacc, Rows, rows_stride,
                             a, a_end, offs_n, col_lo, col_hi, len_q, len_k, qk_scale, slope2, rate_q, rate_k,
                             True, HAS_WINDOW, HAS_BIAS, ATOMIC_DQ, HEAD_DIM, BLOCK_M, BLOCK_D, DOT_PREC)
    dk, dv = _bwd_dkdv_inner(dk, dv, k, v, Q, dO, stride_ql, stride_dol, Lse, Delta, DQacc, Rows, rows_stride,
                             f0, f1, offs_n, col_lo, col_hi, len_q, len_k, qk_scale, slope2, rate_q, rate_k,
                             False, HAS_WINDOW, HAS_BIAS, ATOMIC_DQ, HEAD_DIM, BLOCK_M, BLOCK_D, DOT_PREC)
    dk, dv = _bwd_dkdv_inner(dk, dv, k, v, Q, dO, stride_ql, stride_dol, Lse, Delta, DQacc, Rows, rows_stride,
                             f1, hi, offs_n, col_lo, col_hi, len_q, len_k, qk_scale, slope2, rate_q, rate_k,
                             True, HAS_WINDOW, HAS_BIAS, ATOMIC_DQ, HEAD_DIM, BLOCK_M, BLOCK_D, DOT_PREC)
    key_ok = (offs_n < len_k)[:, None]
    dk = tl.where(key_ok, dk * sm_scale, 0.0)
    dv = tl.where(key_ok, dv, 0.0)
    _store_rows(dK, dk.to(dK.dtype.element_ty), offs_n, stride_ol, Lk, offs_d, HEAD_DIM, BLOCK_D)
    _store_rows(dV, dv.to(dV.dtype.element_ty), offs_n, stride_ol, Lk, offs_d, HEAD_DIM, BLOCK_D)


@triton.jit
def _cross_attn_bwd_dkdv_kernel(
    dK_a, dV_a, dK_v, dV_v,  # outputs: (B, H, L, Dh) in the output layout
    DQ_a, DQ_v, Rows_a, Rows_v,  # ATOMIC_DQ: fp32 dq sums (B, H, L, Dh) and slope terms (3, B, H, L), zeroed
    Q_a, K_a, V_a, Q_v, K_v, V_v, dO_a, dO_v, Lse_a, Lse_v, Delta_a, Delta_v,  # inputs
    Len_a, Len_v, Slopes, WinT_a, WinT_v,  # WinT_v: (2, Lv) first/last audio query per lip key; WinT_a likewise
    so_ab, so_ah, so_al, so_vb, so_vh, so_vl,
    s_ab, s_ah, s_al, s_vb, s_vh, s_vl,
    H, La, Lv, qk_scale, sm_scale, rate_a, rate_v, bias_scale,
    HAS_WINDOW: tl.constexpr, HAS_BIAS: tl.constexpr, ATOMIC_DQ: tl.constexpr, HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_PREC: tl.constexpr,
):
    pid = tl.program_id(0)
    pid_bh = tl.program_id(1).to(tl.int64)
    b = pid_bh // H
    h = pid_bh % H
    len_a = tl.minimum(tl.maximum(tl.load(Len_a + b).to(tl.int32), 0), La)
    len_v = tl.minimum(tl.maximum(tl.load(Len_v + b).to(tl.int32), 0), Lv)
    slope2 = 0.0
    if HAS_BIAS:
        slope2 = tl.load(Slopes + h) * bias_scale
    n_bh = tl.num_programs(1)
    n_blocks_v = tl.cdiv(Lv, BLOCK_N)
    if pid < n_blocks_v:  # lip keys, seen by audio queries
        _bwd_dkdv_block(dK_v + b * so_vb + h * so_vh, dV_v + b * so_vb + h * so_vh, so_vl,
                        K_v + b * s_vb + h * s_vh, V_v + b * s_vb + h * s_vh, s_vl,
                        Q_a + b * s_ab + h * s_ah, s_al, dO_a + b * so_ab + h * so_ah, so_al,
                        Lse_a + pid_bh * La, Delta_a + pid_bh * La, DQ_a + pid_bh * La * HEAD_DIM,
                        Rows_a + pid_bh * La, n_bh * La, WinT_v, pid, La, Lv, len_a, len_v,
                        qk_scale, sm_scale, slope2, rate_a, rate_v,
                        HAS_WINDOW, HAS_BIAS, ATOMIC_DQ, HEAD_DIM, BLOCK_M, BLOCK_N, BLOCK_D, DOT_PREC)
    else:  # audio keys, seen by lip queries
        _bwd_dkdv_block(dK_a + b * so_ab + h * so_ah, dV_a + b * so_ab + h * so_ah, so_al,
                        K_a + b * s_ab + h * s_ah, V_a + b * s_ab + h * s_ah, s_al,
                        Q_v + b * s_vb + h * s_vh, s_vl, dO_v + b * so_vb + h * so_vh, so_vl,
                        Lse_v + pid_bh * Lv, Delta_v + pid_bh * Lv, DQ_v + pid_bh * Lv * HEAD_DIM,
                        Rows_v + pid_bh * Lv, n_bh * Lv, WinT_a, pid - n_blocks_v, Lv, La, len_v,
                        len_a, qk_scale, sm_scale, slope2, rate_v, rate_a,
                        HAS_WINDOW, HAS_BIAS, ATOMIC_DQ, HEAD_DIM, BLOCK_M, BLOCK_N, BLOCK_D, DOT_PREC)


# ----------------------------------------------------------------------------------------------------------
# Launchers
# ----------------------------------------------------------------------------------------------------------

# Tile sizes, warps and pipeline stages per pass: ``pass -> (BLOCK_M, BLOCK_N, num_warps, num_stages)``, delta ->
# (BLOCK_M, num_warps); ``dkdv_atomic`` is the dk/dv pass of the atomic-dq backward (``deterministic=False``),
# which holds more per program than ``dkdv``. BLOCK_M tiles queries, BLOCK_N keys (dk/dv: one program per key
# block). The named sets below are the variants to time on the first GPU (benchmarks/gpu_session.sh), one table per
# GPU class (:func:`arch_class`: "sm90" Hopper, "sm100" datacenter Blackwell, "sm80" every other GPU of compute
# capability 8.0 or newer), then per largest head dim. None is tuned yet: "shipped" is the table chosen without a
# GPU; "large" larger tiles (more work per program, fewer n32 wgmmas in the backward); "narrow" 64-row tiles, which
# waste less of each tile on narrow windows (a 1 s window at 25 Hz is 51 keys). fp32 (IEEE dots, a correctness
# path) has one table whatever the name. The interpreter gets 16 x 16 tiles unless a variant is named, so small
# test shapes still cross several blocks.
#
# Every entry builds as launched with 0 spills, shared memory within one block's limit and the target's
# tensor-core MMA, in every configuration the dispatcher can pick, on every target of its class: sm_90a; sm_80,
# sm_86 (99 KB of shared memory, as sm_89) and sm_120a for "sm80"; sm_100a for "sm100"
# (benchmarks/static_cross_attention.py; the table is benchmarks/results/static/). Window + bias is usually the
# costliest configuration (per-row window bounds and the distance tile stay live) and the atomic-dq dk/dv pass holds
# a fifth product and its dq tile, so where the first choice spilled, the entry is the closest one that builds
# clean in all configurations:
# - "shipped" sm90 is the original table (clean); its dk/dv of the atomic backward is the same tiles.
# - sm80 (mma.sync keeps operands and accumulators in registers, so tiles that fit on sm90 spill): dk/dv at Dh 64
#   needs 16-query steps (32 x 128 and 32 x 64 spilled 24-68 B with window + bias); the atomic dk/dv 16 x 64
#   (16 x 128 spilled 396 B). "large" loses the 128 x 128 forward (64 B; at Dh 128 128 x 64 24 B), the 128 x 64
#   dq (16 B; at Dh 128 128 x 32 92 B and 64 x 64 112 B) and the 64 x 128 dk/dv: on sm80 it equals "shipped" at
#   Dh 64 and differs at Dh 128 only by 32 x 64 dk/dv. "narrow" keeps its 64-row forward and dq programs (dq with
#   32-key steps) and 64-key dk/dv programs (16-query steps at Dh 64); it takes 8 warps where 4 spilled: at Dh 128
#   (32-392 B), and at Dh 64 on sm_120a (forward 16-32 B, dq 8 B, dk/dv 24 B with dense + bias; the dk/dv then
#   with 2 stages, as 3 used 254-255 of the 255 registers).
# - sm90 "large" keeps 128-key dk/dv programs but with 32-query steps (64 x 128 spilled 120-3224 B at Dh 128 and
#   with atomic dq); its atomic dk/dv at Dh 128 is 16 x 64 (32 x 128, 64 x 64, 32 x 64 and 16 x 128 all spilled
#   48-2080 B), as is "narrow"'s (32 x 64 spilled 48 B); "narrow"'s atomic dk/dv at Dh 64 takes 32-query steps
#   (64 x 64 spilled 56-1260 B) and its dk/dv at Dh 128 8 warps (4 spilled 12 B).
# - sm100 (tcgen05.mma, accumulators in tensor memory; Triton 3.6's Blackwell ptxas spills where the others do
#   not, and not always in window + bias: the sm80 table spilled 4-252 B in 104 of 672 builds there, the sm90 one
#   in 120) starts from sm80's and changes what spilled: the 128 x 64 forward at Dh 64 (16-32 B) takes 32-key
#   steps; the delta pass at Dh 128 8 warps (4 spilled 252 B, at 72 registers); at Dh 128 dq 64 x 32 with 4 warps
#   (8 B with 8), dk/dv 16 x 64 with 1 stage (8 B with 2), the atomic dk/dv 16 x 64 with 4 warps and 3 stages (40 B
#   with 8/2, 12 B with 4/2). Its "large" is 64 x 128 forward (128 x 128 spilled 48-220 B with 2 or 3 stages),
#   128 x 32 dq at Dh 128, and 128-key dk/dv programs at Dh 128 (32 x 128; atomic 16 x 128; 32 x 64 spilled 16-80 B).
# In the atomic backward's dk/dv pass the dq product (dS K) has the query step as its M (16 or 32), below wgmma's 64
# rows, so on sm_90a and sm_100a that one product runs on mma.sync (m16n8k16) beside wgmma / tcgen05 for the
# other four: 96 of the 672 builds on each (the static table's mma column). 64-query steps, where it could use
# wgmma, spilled (above); whether the atomic variant still wins is for the GPU session's timings to say.
_INTERPRET_CONFIG = dict(fwd=(16, 16, 1, 1), dq=(16, 16, 1, 1), dkdv=(16, 16, 1, 1), dkdv_atomic=(16, 16, 1, 1),
                         delta=(16, 1))
# fp32 is outside the static check: its IEEE dots run on FMA units and spill where the 16-bit ones do not (built as
# launched, the forward spills 32-80 B at Dh 64 on four of the five targets, none on sm_86, and 52-308 B at Dh 128;
# the backward 20 B to 4 KB on sm_90a). It is what inference on a GPU runs (the models are fp32 there; training
# uses bf16 autocast), so the GPU session's `separate` stage times it; among the tiles tried, only the Dh 64
# forward and dq have spill-free ones (32 x 32 / 4 warps and 64 x 16; 32 x 16 for dq), none at Dh 128 (down to
# 16 x 16), and smaller tiles are not taken blind.
_FP32_CONFIG = {64: dict(fwd=(64, 32, 8, 2), dq=(64, 32, 8, 2), dkdv=(32, 64, 8, 2), dkdv_atomic=(32, 64, 8, 2),
                         delta=(64, 4)),
                128: dict(fwd=(32, 32, 8, 1), dq=(32, 32, 8, 1), dkdv=(32, 32, 8, 1), dkdv_atomic=(32, 32, 8, 1),
                          delta=(64, 4))}
TileTable = dict[int, dict[str, tuple[int, ...]]]  # largest head dim (64, 128) -> pass -> tiles
TILE_VARIANTS: dict[str, dict[str, TileTable]] = {  # name -> target class -> table
    "shipped": {
        "sm90": {64: dict(fwd=(128, 64, 8, 3), dq=(128, 32, 8, 3), dkdv=(32, 128, 8, 3), dkdv_atomic=(32, 128, 8, 3),
                          delta=(128, 4)),
                 128: dict(fwd=(128, 32, 8, 3), dq=(64, 32, 8, 2), dkdv=(16, 64, 8, 2), dkdv_atomic=(16, 64, 8, 2),
                           delta=(128, 4))},
        "sm80": {64: dict(fwd=(128, 64, 8, 3), dq=(128, 32, 8, 3), dkdv=(16, 128, 8, 3), dkdv_atomic=(16, 64, 8, 2),
                          delta=(128, 4)),
                 128: dict(fwd=(128, 32, 8, 3), dq=(64, 32, 8, 2), dkdv=(16, 64, 8, 2), dkdv_atomic=(16, 64, 8, 2),
                           delta=(128, 4))},
        "sm100": {64: dict(fwd=(128, 32, 8, 3), dq=(128, 32, 8, 3), dkdv=(16, 128, 8, 3), dkdv_atomic=(16, 64, 8, 2),
                           delta=(128, 4)),
                  128: dict(fwd=(128, 32, 8, 3), dq=(64, 32, 4, 2), dkdv=(16, 64, 8, 1), dkdv_atomic=(16, 64, 4, 3),
                            delta=(128, 8))},
    },
    "large": {
        "sm90": {64: dict(fwd=(128, 128, 8, 3), dq=(128, 64, 8, 3), dkdv=(64, 128, 8, 3), dkdv_atomic=(32, 128, 8, 3),
                          delta=(128, 4)),
                 128: dict(fwd=(128, 64, 8, 3), dq=(128, 64, 8, 2), dkdv=(32, 128, 8, 2), dkdv_atomic=(16, 64, 8, 2),
                           delta=(128, 4))},
        "sm80": {64: dict(fwd=(128, 64, 8, 3), dq=(128, 32, 8, 3), dkdv=(16, 128, 8, 3), dkdv_atomic=(16, 64, 8, 2),
                          delta=(128, 4)),
                 128: dict(fwd=(128, 32, 8, 3), dq=(64, 32, 8, 2), dkdv=(32, 64, 8, 2), dkdv_atomic=(32, 64, 8, 2),
                           delta=(128, 4))},
        "sm100": {64: dict(fwd=(64, 128, 8, 3), dq=(128, 32, 8, 3), dkdv=(16, 128, 8, 3), dkdv_atomic=(16, 64, 8, 2),
                           delta=(128, 4)),
                  128: dict(fwd=(128, 32, 8, 3), dq=(128, 32, 8, 2), dkdv=(32, 128, 8, 2), dkdv_atomic=(16, 128, 8, 2),
                            delta=(128, 8))},
    },
    "narrow": {
        "sm90": {64: dict(fwd=(64, 64, 4, 3), dq=(64, 64, 4, 3), dkdv=(64, 64, 4, 3), dkdv_atomic=(32, 64, 4, 3),
                          delta=(64, 4)),
                 128: dict(fwd=(64, 64, 4, 2), dq=(64, 32, 4, 2), dkdv=(32, 64, 8, 2), dkdv_atomic=(16, 64, 8, 2),
                           delta=(64, 4))},
        "sm80": {64: dict(fwd=(64, 64, 8, 3), dq=(64, 32, 8, 3), dkdv=(16, 64, 8, 2), dkdv_atomic=(16, 64, 4, 3),
                          delta=(64, 4)),
                 128: dict(fwd=(64, 64, 8, 2), dq=(64, 32, 8, 2), dkdv=(32, 64, 8, 2), dkdv_atomic=(32, 64, 8, 2),
                           delta=(64, 4))},
        "sm100": {64: dict(fwd=(64, 64, 4, 3), dq=(64, 32, 8, 3), dkdv=(16, 64, 4, 3), dkdv_atomic=(16, 64, 4, 3),
                           delta=(64, 4)),
                  128: dict(fwd=(64, 64, 8, 2), dq=(64, 32, 4, 2), dkdv=(16, 64, 8, 1), dkdv_atomic=(16, 64, 4, 3),
                            delta=(64, 4))},
    },
}
DEFAULT_TILES = "shipped"
ARCH_CLASSES = ("sm90", "sm80", "sm100")


def arch_class(t: Tensor) -> str:
    """The tile table's target class for a launch on inputs like ``t``: ``"sm90"`` on compute capability 9.x
    (Hopper), ``"sm100"`` on 10.x (datacenter Blackwell, tcgen05), ``"sm80"`` on any other GPU (8.x Ampere and
    Ada, 12.x consumer Blackwell: mma.sync and 99-163 KB of shared memory). A CUDA tensor asks its own device; a CPU
    tensor (a launch under :mod:`.launch_capture`) the target of Triton's active driver; under the interpreter
    ``"sm90"`` (tile sizes there only decide how many blocks the tests cross)."""
    if t.is_cuda:
        major = torch.cuda.get_device_capability(t.device)[0]
    elif INTERPRET:
        return "sm90"
    else:
        major = triton.runtime.driver.active.get_current_target().arch // 10
    return {9: "sm90", 10: "sm100"}.get(major, "sm80")


def _by_head_dim(table: TileTable, head_dim: int) -> dict[str, tuple[int, ...]]:
    return next(cfg for limit, cfg in sorted(table.items()) if head_dim <= limit)


def _gpu_config(head_dim: int, dtype: torch.dtype, tiles: str | None = None,
                arch: str = "sm90") -> dict[str, tuple[int, ...]]:
    """The tile table of variant ``tiles`` (default :data:`DEFAULT_TILES`) for target class ``arch`` (see
    :func:`arch_class`), this head dim and dtype."""
    name = DEFAULT_TILES if tiles is None else tiles
    if name not in TILE_VARIANTS:
        raise ValueError(f"unknown tile variant {name!r}; choose from {sorted(TILE_VARIANTS)}")
    if dtype == torch.float32:
        return _by_head_dim(_FP32_CONFIG, head_dim)
    return _by_head_dim(TILE_VARIANTS[name][arch], head_dim)


def _config(q: Tensor, tiles: str | None = None) -> dict[str, tuple[int, ...]]:
    """The launch table for ``q``: the interpreter's small tiles unless a variant is named, else the GPU's for
    ``q``'s target class (also for CPU tensors when the real compiler runs, as in :mod:`.launch_capture`)."""
    if INTERPRET and tiles is None:
        return _INTERPRET_CONFIG
    return _gpu_config(q.shape[-1], q.dtype, tiles, arch_class(q))


@functools.lru_cache(maxsize=64)
def _bounds(Lq: int, Lk: int, rate_q: float, rate_k: float, window: float, device: torch.device) -> Tensor:
    """Cached :func:`window_bounds` on ``device``: ``(2, Lq)`` int32."""
    return window_bounds(Lq, Lk, rate_q, rate_k, window, device=device).contiguous()


def _stream_layout(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """q, k, v sharing strides with unit stride on Dh (views of one projection already do)."""
    if q.stride() == k.stride() == v.stride() and q.stride(-1) == 1:
        return q, k, v
    return q.contiguous(), k.contiguous(), v.contiguous()


def _new_output(like: Tensor) -> Tensor:
    """An output or gradient for ``like`` (B, H, L, Dh): ``(B, L, H, Dh)`` memory seen as (B, H, L, Dh)."""
    B, H, L, Dh = like.shape
    return _empty((B, L, H, Dh), like.dtype, like.device).permute(0, 2, 1, 3)


def _as_output_layout(t: Tensor) -> Tensor:
    """``t`` (B, H, L, Dh) in the output layout (upstream gradients arrive in any layout)."""
    B, H, L, Dh = t.shape
    if t.stride() == (L * H * Dh, Dh, H * Dh, 1):
        return t
    out = torch.empty((B, L, H, Dh), dtype=t.dtype, device=t.device).permute(0, 2, 1, 3)
    return out.copy_(t)


def _strides(t: Tensor) -> tuple[int, int, int]:
    return t.stride(0), t.stride(1), t.stride(2)


def _block_d(head_dim: int) -> int:
    return max(16, triton.next_power_of_2(head_dim))


def _output_strides(B: int, H: int, L: int, Dh: int) -> tuple[int, int, int]:
    """Strides (batch, head, token) of :func:`_new_output`'s layout for a (B, H, L, Dh) tensor."""
    return L * H * Dh, Dh, H * Dh


def _forward(q_a, k_a, v_a, q_v, k_v, v_v, len_a, len_v, slopes, rate_a, rate_v, window, scale, both=True,
             tiles=None):
    """Launch the forward kernel: returns ``out_a, out_v, lse_a, lse_v, win_a, win_v``.

    ``both=False``: only audio queries over lip keys (``k_a, v_a, q_v`` may be None; ``out_v, lse_v`` are None).
    """
    B, H, La, Dh = q_a.shape
    Lv = k_v.shape[2]
    cfg = _config(q_a, tiles)
    block_m, block_n, warps, stages = cfg["fwd"]
    out_a = _new_output(q_a)
    out_v = _new_output(k_v) if both else None
    lse_a = _empty((B, H, La), torch.float32, q_a.device)
    lse_v = _empty((B, H, Lv), torch.float32, q_a.device) if both else None
    if window is None:
        win_a = win_v = len_a  # never read
    else:
        win_a = _bounds(La, Lv, rate_a, rate_v, window, q_a.device)  # lip keys per audio query
        win_v = _bounds(Lv, La, rate_v, rate_a, window, q_a.device)  # audio keys per lip query
    n_prog = triton.cdiv(La, block_m) + (triton.cdiv(Lv, block_m) if both else 0)
    _cross_attn_fwd_kernel[(n_prog, B * H)](
        out_a, _or(out_v, out_a), lse_a, _or(lse_v, lse_a),
        q_a, _or(k_a, q_a), _or(v_a, q_a), _or(q_v, k_v), k_v, v_v,
        len_a, len_v, slopes if slopes is not None else len_a, win_a, win_v,
        *_strides(out_a), *_output_strides(B, H, Lv, Dh), *_strides(q_a), *_strides(k_v),
        H, La, Lv, scale * LOG2E, float(rate_a), float(rate_v), LOG2E / (rate_a * rate_v),
        HAS_WINDOW=window is not None, HAS_BIAS=slopes is not None, HEAD_DIM=Dh, BLOCK_M=block_m,
        BLOCK_N=block_n, BLOCK_D=_block_d(Dh), DOT_PREC=_dot_precision(q_a.dtype),
        num_warps=warps, num_stages=stages,
    )
    return out_a, out_v, lse_a, lse_v, win_a, win_v


def _or(t: Tensor | None, placeholder: Tensor) -> Tensor:
    """``t``, or for a slot of the direction that does not run, a tensor the kernel never reads or writes."""
    return placeholder if t is None else t


def _backward(do_a, do_v, q_a, k_a, v_a, q_v, k_v, v_v, out_a, out_v, lse_a, lse_v, len_a, len_v, slopes,
              rate_a, rate_v, window, scale, win_a, win_v, both=True, tiles=None, deterministic=True):
    """Launch the three backward kernels: returns ``dq_a, dk_a, dv_a, dq_v, dk_v, dv_v, dslopes``.

    ``both=False``: only audio queries over lip keys (the lip->audio arguments may be None); returns None for
    ``dk_a, dv_a, dq_v``.
    """
    B, H, La, Dh = q_a.shape
    Lv = k_v.shape[2]
    dev = q_a.device
    cfg = _config(q_a, tiles)
    do_a = _as_output_layout(do_a)
    do_v = _as_output_layout(do_v) if both else None
    has_window, has_bias = window is not None, slopes is not None
    common = dict(HEAD_DIM=Dh, BLOCK_D=_block_d(Dh))
    strides = (*_strides(out_a), *_output_strides(B, H, Lv, Dh), *_strides(q_a), *_strides(k_v))
    slopes_arg = slopes if has_bias else len_a
    bias_scale = LOG2E / (rate_a * rate_v)
    # the lip->audio slots of a one-way call: placeholders the kernels never read or write
    k_a, v_a, q_v = _or(k_a, q_a), _or(v_a, q_a), _or(q_v, k_v)
    out_v, do_v, lse_v = _or(out_v, out_a), _or(do_v, do_a), _or(lse_v, lse_a)

    block, warps = cfg["delta"]
    delta_a = _empty((B, H, La), torch.float32, dev)
    delta_v = _empty((B, H, Lv), torch.float32, dev) if both else delta_a
    n_prog = triton.cdiv(La, block) + (triton.cdiv(Lv, block) if both else 0)
    _cross_attn_bwd_delta_kernel[(n_prog, B * H)](
        delta_a, delta_v, out_a, out_v, do_a, do_v, *strides[:6], H, La, Lv,
        BLOCK_M=block, num_warps=warps, **common)

    if deterministic:  # dq per query block, as dk/dv per key block: 7 matrix products per tile in all
        block_m, block_n, warps, stages = cfg["dq"]
        n_prog = triton.cdiv(La, block_m) + (triton.cdiv(Lv, block_m) if both else 0)
        dq_a = _new_output(q_a)
        dq_v = _new_output(q_v) if both else None
        dslope_part = _empty((B, H, n_prog), torch.float32, dev) if has_bias else lse_a
        _cross_attn_bwd_dq_kernel[(n_prog, B * H)](
            dq_a, _or(dq_v, dq_a), dslope_part,
            q_a, k_a, v_a, q_v, k_v, v_v, do_a, do_v, lse_a, lse_v, delta_a, delta_v,
            len_a, len_v, slopes_arg, win_a, win_v, *strides,
            H, La, Lv, scale * LOG2E, scale, float(rate_a), float(rate_v), bias_scale, -1.0 / (rate_a * rate_v),
            HAS_WINDOW=has_window, HAS_BIAS=has_bias, BLOCK_M=block_m, BLOCK_N=block_n,
            DOT_PREC=_dot_precision(q_a.dtype), num_warps=warps, num_stages=stages, **common)
        acc_a = acc_v = rows_a = rows_v = lse_a  # never read
    else:  # the dk/dv pass also adds each tile's dq to fp32 sums with atomics: 5 matrix products per tile
        acc_a = torch.zeros((B, H, La, Dh), dtype=torch.float32, device=dev)
        acc_v = torch.zeros((B, H, Lv, Dh), dtype=torch.float32, device=dev) if both else acc_a
        rows_a = torch.zeros((3, B, H, La), dtype=torch.float32, device=dev) if has_bias else lse_a
        rows_v = (torch.zeros((3, B, H, Lv), dtype=torch.float32, device=dev) if has_bias and both
                  else rows_a)

    block_m, block_n, warps, stages = cfg["dkdv" if deterministic else "dkdv_atomic"]
    dk_v, dv_v = _new_output(k_v), _new_output(k_v)
    dk_a, dv_a = (_new_output(q_a), _new_output(q_a)) if both else (None, None)
    # the window relation is symmetric: the lip queries of an audio key are the lip keys of that audio query
    wint_a, wint_v = win_a, win_v
    n_prog = triton.cdiv(Lv, block_n) + (triton.cdiv(La, block_n) if both else 0)
    _cross_attn_bwd_dkdv_kernel[(n_prog, B * H)](
        _or(dk_a, dk_v), _or(dv_a, dv_v), dk_v, dv_v, acc_a, acc_v, rows_a, rows_v,
        q_a, k_a, v_a, q_v, k_v, v_v, do_a, do_v, lse_a, lse_v, delta_a, delta_v,
        len_a, len_v, slopes_arg, wint_a, wint_v, *strides,
        H, La, Lv, scale * LOG2E, scale, float(rate_a), float(rate_v), bias_scale,
        HAS_WINDOW=has_window, HAS_BIAS=has_bias, ATOMIC_DQ=not deterministic, BLOCK_M=block_m, BLOCK_N=block_n,
        DOT_PREC=_dot_precision(q_a.dtype), num_warps=warps, num_stages=stages, **common)

    if deterministic:
        dslopes = dslope_part.sum(dim=(0, 2)).to(slopes.dtype) if has_bias else None  # (H,)
        return dq_a, dk_a, dv_a, dq_v, dk_v, dv_v, dslopes
    dq_a = _new_output(q_a).copy_(acc_a.mul_(scale))
    dq_v = _new_output(q_v).copy_(acc_v.mul_(scale)) if both else None
    dslopes = None
    if has_bias:  # sum over queries of (sum P dP dist - sum P dP * sum P dist), as in _bwd_dq_block
        dslopes = sum((r[0] - r[2] * r[1]).sum(dim=(0, 2)) for r in ((rows_a, rows_v) if both else (rows_a,)))
        dslopes = (dslopes * (-1.0 / (rate_a * rate_v))).to(slopes.dtype)  # (H,)
    return dq_a, dk_a, dv_a, dq_v, dk_v, dv_v, dslopes


def _dot_precision(dtype: torch.dtype) -> str:
    """fp32 inputs multiply in IEEE fp32 (tf32 would cost ~1e-3 relative error); 16-bit inputs are exact."""
    return "ieee" if dtype == torch.float32 else "tf32"


class CrossModalAttentionFunction(torch.autograd.Function):
    """Autograd of the fused kernel. Tensor arguments first; ``backward`` returns one None per other one."""

    @staticmethod
    def forward(ctx, q_a: Tensor, k_a: Tensor, v_a: Tensor, q_v: Tensor, k_v: Tensor, v_v: Tensor,
                len_a: Tensor, len_v: Tensor, slopes: Tensor | None, rate_a: float, rate_v: float,
                window: float | None, scale: float, tiles: str | None = None,
                deterministic: bool = True) -> tuple[Tensor, Tensor]:
        q_a, k_a, v_a = _stream_layout(q_a, k_a, v_a)
        q_v, k_v, v_v = _stream_layout(q_v, k_v, v_v)
        len_a, len_v = len_a.contiguous(), len_v.contiguous()
        slopes_f = None if slopes is None else slopes.detach().to(torch.float32).contiguous()
        out_a, out_v, lse_a, lse_v, win_a, win_v = _forward(q_a, k_a, v_a, q_v, k_v, v_v, len_a, len_v,
                                                            slopes_f, rate_a, rate_v, window, scale, True,
                                                            tiles)
        ctx.save_for_backward(q_a, k_a, v_a, q_v, k_v, v_v, out_a, out_v, lse_a, lse_v, len_a, len_v,
                              slopes_f if slopes_f is not None else len_a)
        ctx.has_bias = slopes is not None
        ctx.slopes_dtype = None if slopes is None else slopes.dtype
        ctx.args = (rate_a, rate_v, window, scale, win_a, win_v)
        ctx.variant = dict(tiles=tiles, deterministic=deterministic)
        return out_a, out_v

    @staticmethod
    def backward(ctx, do_a: Tensor, do_v: Tensor):
        q_a, k_a, v_a, q_v, k_v, v_v, out_a, out_v, lse_a, lse_v, len_a, len_v, slopes = ctx.saved_tensors
        rate_a, rate_v, window, scale, win_a, win_v = ctx.args
        dq_a, dk_a, dv_a, dq_v, dk_v, dv_v, dslopes = _backward(
            do_a, do_v, q_a, k_a, v_a, q_v, k_v, v_v, out_a, out_v, lse_a, lse_v, len_a, len_v,
            slopes if ctx.has_bias else None, rate_a, rate_v, window, scale, win_a, win_v, **ctx.variant)
        if dslopes is not None:
            dslopes = dslopes.to(ctx.slopes_dtype)
        return dq_a, dk_a, dv_a, dq_v, dk_v, dv_v, None, None, dslopes, None, None, None, None, None, None


class OneWayAttentionFunction(torch.autograd.Function):
    """Autograd of one direction: queries ``q`` over keys ``k`` and values ``v`` of the other stream, run as the
    audio->lip half of the fused kernels (q in the audio slots, k and v in the lip slots)."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, len_q: Tensor, len_k: Tensor, slopes: Tensor | None,
                rate_q: float, rate_k: float, window: float | None, scale: float, tiles: str | None = None,
                deterministic: bool = True) -> Tensor:
        q = q if q.stride(-1) == 1 else q.contiguous()
        k, v, _ = _stream_layout(k, v, v)
        len_q, len_k = len_q.contiguous(), len_k.contiguous()
        slopes_f = None if slopes is None else slopes.detach().to(torch.float32).contiguous()
        out, _, lse, _, win_q, win_k = _forward(q, None, None, None, k, v, len_q, len_k, slopes_f, rate_q, rate_k,
                                                window, scale, False, tiles)
        ctx.save_for_backward(q, k, v, out, lse, len_q, len_k, slopes_f if slopes_f is not None else len_q)
        ctx.has_bias = slopes is not None
        ctx.slopes_dtype = None if slopes is None else slopes.dtype
        ctx.args = (rate_q, rate_k, window, scale, win_q, win_k)
        ctx.variant = dict(tiles=tiles, deterministic=deterministic)
        return out

    @staticmethod
    def backward(ctx, do: Tensor):
        q, k, v, out, lse, len_q, len_k, slopes = ctx.saved_tensors
        rate_q, rate_k, window, scale, win_q, win_k = ctx.args
        dq, _, _, _, dk, dv, dslopes = _backward(
            do, None, q, None, None, None, k, v, out, None, lse, None, len_q, len_k,
            slopes if ctx.has_bias else None, rate_q, rate_k, window, scale, win_q, win_k, False, **ctx.variant)
        if dslopes is not None:
            dslopes = dslopes.to(ctx.slopes_dtype)
        return dq, dk, dv, None, None, dslopes, None, None, None, None, None, None


def _check_scalars(rate_a: float, rate_v: float, window: float | None, names: str = "rate_a, rate_v") -> None:
    if not (rate_a > 0 and rate_v > 0):
        raise ValueError(f"rates must be positive (Hz); got {names} = {rate_a}, {rate_v}")
    if window is not None and not window >= 0:
        raise ValueError(f"window must be None or >= 0 seconds; got {window}")


BACKENDS = ("auto", "triton", "flex", "reference")
BACKEND_ENV = "AVSPEECH_ATTENTION"  # sets the default backend (``backend=None``); read at every call


class BackendUnavailableError(RuntimeError):
    """The backend asked for cannot run on these inputs (device, dtype, or this machine's torch/Triton)."""


# The oldest GPU the kernels run on: compute capability 8.0 (Ampere). Built as launched for 7.5 (T4, RTX 20xx),
# Triton 3.6 emits no tensor-core MMA for these kernels, in fp16 as in bf16: the forward spills 22-24 KB and the dq
# pass asks for 80 KB of shared memory against the 64 KB a block may use there, so its launch fails
# (`benchmarks/static_cross_attention.py --targets 75 --sample`: benchmarks/results/static/sm_75/, bf16). Older
# GPUs get the reference under "auto".
MIN_CAPABILITY = (8, 0)
MAX_HEAD_DIM = 128  # the tile tables' largest; the static check builds 64 and 128


def _cuda_problem(device: torch.device) -> str | None:
    """Why the compiled kernels cannot run on CUDA ``device`` (None: they can)."""
    if torch.version.hip is not None:
        return "they are built and checked for NVIDIA GPUs only (this torch runs on ROCm)"
    capability = torch.cuda.get_device_capability(device)
    if tuple(capability) < MIN_CAPABILITY:
        return (f"they need a GPU of compute capability {MIN_CAPABILITY[0]}.{MIN_CAPABILITY[1]} or newer (Ampere, "
                f"Ada, Hopper, Blackwell: bf16 tensor cores, 99 KB of shared memory per block); "
                f"{torch.cuda.get_device_name(device)} is {capability[0]}.{capability[1]}")
    return None


def triton_problem(t: Tensor) -> str | None:
    """Why the Triton kernels cannot run on inputs like ``t``, or None where they can: CUDA (not interpreted) on
    a GPU of compute capability 8.0 or newer, or the CPU when ``TRITON_INTERPRET=1`` was set before ``triton``
    was imported; fp32, fp16 or bf16."""
    if t.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return "the Triton kernels take float32, float16 or bfloat16"
    if t.shape and t.shape[-1] > MAX_HEAD_DIM:
        return (f"the Triton kernels are built and checked for head dims up to {MAX_HEAD_DIM} (at 256 the forward "
                f"needs more shared memory than a block has); got {t.shape[-1]}")
    if t.device.type == "cpu":
        return None if INTERPRET else "on the CPU they run only under TRITON_INTERPRET=1 set before triton is imported"
    if not t.is_cuda or INTERPRET:
        return "a CUDA device is needed (and no TRITON_INTERPRET)"
    return _cuda_problem(t.device)


def triton_runs(t: Tensor) -> bool:
    """Whether the Triton kernels can run on inputs like ``t`` (:func:`triton_problem` has no objection)."""
    return triton_problem(t) is None


def default_backend() -> str:
    """The backend of ``backend=None``: ``$AVSPEECH_ATTENTION`` if set, else ``"auto"``."""
    return os.environ.get(BACKEND_ENV, "auto") or "auto"


def resolve_backend(backend: str | None, t: Tensor) -> str:
    """``"triton"``, ``"flex"`` or ``"reference"``: what a call with ``backend`` runs for inputs like ``t``.

    ``None`` takes :func:`default_backend`; ``"auto"`` is the Triton kernels where they run, else the reference.
    Raises ``ValueError`` for an unknown name and :class:`BackendUnavailableError` for one that cannot run here.
    """
    name = default_backend() if backend is None else backend
    if name not in BACKENDS:
        src = f" (from ${BACKEND_ENV})" if backend is None else ""
        raise ValueError(f"unknown attention backend {name!r}{src}; choose from {BACKENDS}")
    if name == "auto":
        return "triton" if triton_runs(t) else "reference"
    if name == "triton" and (why := triton_problem(t)) is not None:
        raise BackendUnavailableError(f"backend 'triton' cannot run on {t.device.type} {t.dtype} inputs: {why}")
    if name == "flex" and not flex_available():
        raise BackendUnavailableError(f"backend 'flex' needs torch.nn.attention.flex_attention (torch "
                                      f"{torch.__version__} has none)")
    return name


def uses_triton(t: Tensor, backend: str | None = None) -> bool:
    """Whether :func:`cross_modal_attention` with ``backend`` runs the Triton kernels for inputs like ``t``
    (False also where the named backend cannot run at all)."""
    try:
        return resolve_backend(backend, t) == "triton"
    except (ValueError, BackendUnavailableError):
        return False


def cross_modal_attention(q_a: Tensor, k_a: Tensor, v_a: Tensor, q_v: Tensor, k_v: Tensor, v_v: Tensor,
                          len_a: Tensor, len_v: Tensor, *, rate_a: float = 25.0, rate_v: float = 25.0,
                          window: float | None = None, slopes: Tensor | None = None,
                          scale: float | None = None, backend: str | None = None, tiles: str | None = None,
                          deterministic: bool = True) -> tuple[Tensor, Tensor]:
    """Cross-modal attention in both directions (see :func:`cross_modal_attention_reference`).

    ``backend``: ``"triton"`` the fused kernels (CUDA on a GPU of compute capability 8.0 or newer, or the CPU
    under ``TRITON_INTERPRET=1`` set before ``triton`` is imported), ``"flex"`` PyTorch's FlexAttention
    (:mod:`.flex`; compiled on CUDA, forward only on the CPU), ``"reference"`` the materialized PyTorch reference,
    ``"auto"`` the Triton kernels where they run and the reference elsewhere (CPU, float64, GPUs older than
    Ampere: :func:`triton_problem` says why). ``None`` (default) takes ``$AVSPEECH_ATTENTION`` if set, else
    ``"auto"``. A backend that cannot run on these inputs raises :class:`BackendUnavailableError`. Same
    arguments, same results, differentiable in q, k, v of both streams and in ``slopes``.

    Triton only: ``tiles`` names a tile table of :data:`TILE_VARIANTS` (default :data:`DEFAULT_TILES`);
    ``deterministic=False`` runs the backward with atomic fp32 dq accumulation (5 matrix products per tile instead
    of 7, gradients exact up to the order of fp32 additions), ``True`` (default) the atomic-free dq pass.

    Returns ``out_a (B, H, La, Dh)`` and ``out_v (B, H, Lv, Dh)``.
    """
    check_inputs(q_a, k_a, v_a, q_v, k_v, v_v, len_a, len_v, slopes)
    _check_scalars(rate_a, rate_v, window)
    kw = dict(rate_a=float(rate_a), rate_v=float(rate_v), window=None if window is None else float(window))
    name = resolve_backend(backend, q_a)
    if name == "reference":
        return cross_modal_attention_reference(q_a, k_a, v_a, q_v, k_v, v_v, len_a, len_v, slopes=slopes,
                                               scale=scale, **kw)
    _check_one_device((q_a, k_a, v_a, q_v, k_v, v_v, len_a, len_v, slopes))
    if name == "flex":
        return flex_cross_modal(q_a, k_a, v_a, q_v, k_v, v_v, len_a, len_v, kw["rate_a"], kw["rate_v"],
                                kw["window"], slopes, scale)
    _check_head_dim(q_a.shape[-1])
    _gpu_config(q_a.shape[-1], q_a.dtype, tiles)  # an unknown variant fails here, not in the backward
    scale = 1.0 / math.sqrt(q_a.shape[-1]) if scale is None else float(scale)
    return CrossModalAttentionFunction.apply(q_a, k_a, v_a, q_v, k_v, v_v, len_a, len_v, slopes,
                                             kw["rate_a"], kw["rate_v"], kw["window"], scale, tiles, deterministic)


def cross_modal_attention_one_way(q: Tensor, k: Tensor, v: Tensor, len_q: Tensor, len_k: Tensor, *,
                                  rate_q: float = 25.0, rate_k: float = 25.0, window: float | None = None,
                                  slopes: Tensor | None = None, scale: float | None = None,
                                  backend: str | None = None, tiles: str | None = None,
                                  deterministic: bool = True) -> Tensor:
    """One direction of :func:`cross_modal_attention`: queries ``q (B, H, Lq, Dh)`` of one stream attend to keys
    ``k`` and values ``v (B, H, Lk, Dh)`` of the other; ``len_q, len_k (B,)``, ``rate_q, rate_k`` their lengths
    and rates. Returns ``out (B, H, Lq, Dh)``: ``cross_modal_attention(...)[0]`` is
    ``cross_modal_attention_one_way(q_a, k_v, v_v, len_a, len_v, rate_q=rate_a, rate_k=rate_v, ...)``.

    Only that direction is computed (forward and backward), on the same backends as
    :func:`cross_modal_attention` (``backend``, ``tiles``, ``deterministic`` likewise); see
    :func:`.reference.cross_modal_attention_one_way_reference`.
    """
    check_one_way_inputs(q, k, v, len_q, len_k, slopes)
    _check_scalars(rate_q, rate_k, window, "rate_q, rate_k")
    kw = dict(rate_q=float(rate_q), rate_k=float(rate_k), window=None if window is None else float(window))
    name = resolve_backend(backend, q)
    if name == "reference":
        return cross_modal_attention_one_way_reference(q, k, v, len_q, len_k, slopes=slopes, scale=scale, **kw)
    _check_one_device((q, k, v, len_q, len_k, slopes))
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if name == "flex":
        return flex_one_way(q, k, v, len_q, len_k, kw["rate_q"], kw["rate_k"], kw["window"], slopes, scale)
    _check_head_dim(q.shape[-1])
    _gpu_config(q.shape[-1], q.dtype, tiles)
    return OneWayAttentionFunction.apply(q, k, v, len_q, len_k, slopes, kw["rate_q"], kw["rate_k"], kw["window"],
                                         scale, tiles, deterministic)


def _check_head_dim(head_dim: int) -> None:
    """What the Triton path needs beyond :func:`.reference.check_inputs`: a head dim it supports."""
    if head_dim > MAX_HEAD_DIM:
        raise ValueError(f"the Triton kernels support head dims up to {MAX_HEAD_DIM}; got {head_dim}")


def _check_one_device(tensors: tuple[Tensor | None, ...]) -> None:
    devices = {t.device for t in tensors if t is not None}
    if len(devices) != 1:
        raise ValueError(f"all tensors must be on one device; got {sorted(map(str, devices))}")
