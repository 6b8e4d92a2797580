"""The prepared kernel variants against the float64 reference, under the interpreter on the CPU: every tile table
of ``TILE_VARIANTS`` with its real tile sizes (the Hopper tables, and the sm80 and sm100 ones of the head dims
tested), and the backward with atomic fp32 dq (``deterministic=False``), outputs and every gradient (``slopes``
included), both directions and one. On a CUDA GPU (``test_variants_match_float64_cuda``) every variant runs
compiled, in bf16, at head dims 64 and 128, with its real atomics.

Lengths cross several tiles of 128 and end mid-tile; every kernel output is allocated NaN-filled
(``poison_outputs``), so an unwritten element fails.
"""
from __future__ import annotations

import zlib

import pytest
import torch

from avspeech.kernels import (cross_attention as ca, cross_modal_attention, cross_modal_attention_one_way,
                              cross_modal_attention_one_way_reference, cross_modal_attention_reference)
from test_cross_attention import CASES, describe, make_case, poison_outputs, rel_err, run  # noqa: F401 (fixture)

# (La, Lv, len_a, len_v, rate_a, rate_v, window, bias, Dh): long enough for 128-row tiles
LONG_CASES = {
    "stft-window-bias": (300, 75, [300, 170], [75, 40], 100.0, 25.0, 0.3, True, 16),
    "dense-bias-absent": (150, 140, [150, 77], [140, 0], 25.0, 25.0, None, True, 16),
    "narrow-window-ties": (140, 140, [140, 129], [131, 140], 25.0, 25.0, 0.04, False, 16),
}
ALL_CASES = {**CASES, **LONG_CASES}


def _needs_kernel(dtype=torch.float32):
    if not ca.uses_triton(torch.empty(0, dtype=dtype), "triton"):
        pytest.skip("TRITON_INTERPRET=1 was not set before triton was imported")


def _check(name, dtype, **variant):
    La, Lv, len_a, len_v, rate_a, rate_v, window, bias, Dh = ALL_CASES[name]
    xs, xs64, slopes, grads = make_case(2, 1, La, Lv, Dh, dtype, "cpu", bias, seed=zlib.crc32(name.encode()))
    kw = dict(rate_a=rate_a, rate_v=rate_v, window=window)
    la, lv = torch.tensor(len_a), torch.tensor(len_v)
    got = run(lambda *a, **k: cross_modal_attention(*a, backend="triton", **variant, **k), xs, la, lv, slopes,
              grads, **kw)
    ref = run(cross_modal_attention_reference, xs64, la, lv, None if slopes is None else slopes.double(),
              [g.double() for g in grads], **kw)
    if dtype == torch.float32:
        bound = {k: 1e-5 for k in ref}
    else:
        low = run(cross_modal_attention_reference, xs, la, lv, slopes, grads, **kw)
        bound = {k: 2 * rel_err(low[k], ref[k]) for k in ref}
    for k in ref:
        err = rel_err(got[k], ref[k])
        assert err <= bound[k], f"{k}: rel err {err:.3g} > {bound[k]:.3g} ({describe(got[k], ref[k])})"


@pytest.mark.parametrize("name, tiles", [("stft-window-bias", t) for t in sorted(ca.TILE_VARIANTS)]
                         + [("narrow-window-ties", "narrow")])
def test_tile_variants_match_float64(name, tiles):
    _needs_kernel()
    _check(name, torch.float16, tiles=tiles)


@pytest.mark.parametrize("name", ["dense-bias-lips-absent", "stft-window-bias"])
def test_atomic_dq_backward_matches_float64(name):
    _needs_kernel()
    _check(name, torch.float32, deterministic=False)


@pytest.mark.parametrize("arch, tiles, deterministic", [("sm80", "shipped", True), ("sm80", "shipped", False),
                                                         ("sm80", "narrow", True), ("sm100", "shipped", True),
                                                         ("sm100", "large", False)])
def test_per_target_tile_tables_match_float64(monkeypatch, arch, tiles, deterministic):
    """The tables a non-Hopper GPU gets, picked as a launch there would pick them: sm80 (16-query dk/dv steps,
    32-key dq steps; "large" has the tiles of "shipped" there at these head dims), sm100 (32-key forward steps,
    "large" 128 x 128 over two stages)."""
    _needs_kernel(torch.float16)
    assert ca._gpu_config(16, torch.float16, "large", "sm80") == ca._gpu_config(16, torch.float16, "shipped", "sm80")
    monkeypatch.setattr(ca, "arch_class", lambda t: arch)
    _check("stft-window-bias", torch.float16, tiles=tiles, deterministic=deterministic)


def test_atomic_dq_with_large_tiles_in_fp16():
    _needs_kernel(torch.float16)
    _check("stft-window-bias", torch.float16, deterministic=False, tiles="large")


@pytest.mark.parametrize("deterministic", [True, False])
def test_one_way_variants_match_float64(deterministic):
    _needs_kernel()
    g = torch.Generator().manual_seed(11)
    q, k, v = (torch.randn(2, 2, L, 16, generator=g) for L in (45, 13, 13))
    grad = torch.randn(2, 2, 45, 16, generator=g)
    lq, lk = torch.tensor([45, 30]), torch.tensor([13, 0])
    slopes = torch.tensor([0.5, -1.0])
    kw = dict(rate_q=100.0, rate_k=25.0, window=0.1)
    res = []
    for fn, dt, extra in ((cross_modal_attention_one_way, torch.float32,
                           dict(backend="triton", deterministic=deterministic, tiles="narrow")),
                          (cross_modal_attention_one_way_reference, torch.float64, {})):
        xs = [x.to(dt).requires_grad_() for x in (q, k, v)]
        s = slopes.to(dt).requires_grad_()
        out = fn(*xs, lq, lk, slopes=s, **kw, **extra)
        res.append([out.detach()] + list(torch.autograd.grad((out * grad.to(dt)).sum(), xs + [s])))
    for got, ref in zip(*res):
        assert rel_err(got.double(), ref) < 1e-5


def test_unknown_tile_variant_is_refused():
    xs = [torch.randn(1, 1, 5, 16) for _ in range(6)]
    lens = (torch.tensor([5]), torch.tensor([5]))
    if not ca.uses_triton(xs[0], "triton"):
        pytest.skip("TRITON_INTERPRET=1 was not set before triton was imported")
    with pytest.raises(ValueError, match="unknown tile variant 'huge'"):
        cross_modal_attention(*xs, *lens, backend="triton", tiles="huge")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("tiles, deterministic, head_dim",
                         [(t, d, 64) for t in sorted(ca.TILE_VARIANTS) for d in (True, False)]
                         + [("shipped", True, 128), ("shipped", False, 128), ("large", False, 128)])
def test_variants_match_float64_cuda(tiles, deterministic, head_dim):
    """Compiled for this GPU's class: bf16, 100/25 Hz with a 1 s window and the bias, padded, several tiles long;
    within twice the error of the reference computed in bf16 on the same GPU."""
    La, Lv, len_a, len_v = 600, 150, [600, 333], [150, 83]
    xs, xs64, slopes, grads = make_case(2, 2, La, Lv, head_dim, torch.bfloat16, "cuda", True,
                                        seed=zlib.crc32(f"{tiles}{deterministic}{head_dim}".encode()))
    kw = dict(rate_a=100.0, rate_v=25.0, window=1.0)
    la, lv = torch.tensor(len_a), torch.tensor(len_v)
    cuda_grads = [g.cuda() for g in grads]
    got = run(lambda *a, **k: cross_modal_attention(*a, backend="triton", tiles=tiles, deterministic=deterministic,
                                                    **k), xs, la.cuda(), lv.cuda(), slopes.cuda(), cuda_grads, **kw)
    ref = run(cross_modal_attention_reference, xs64, la, lv, slopes.double(), [g.double() for g in grads], **kw)
    low = run(cross_modal_attention_reference, xs, la.cuda(), lv.cuda(), slopes.cuda(), cuda_grads, **kw)
    for k in ref:
        err, bound = rel_err(got[k], ref[k]), 2 * rel_err(low[k], ref[k]) + 1e-3
        assert err <= bound, f"{k}: rel err {err:.3g} > {bound:.3g} ({describe(got[k], ref[k])})"
