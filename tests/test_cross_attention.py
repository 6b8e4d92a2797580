"""Cross-modal attention: the Triton kernel against the float64 reference and against closed forms.

On a machine without CUDA, tests/conftest.py sets TRITON_INTERPRET=1, so the Triton kernels run on the CPU
(fp32 and fp16; the interpreter cannot do bf16). The ``cuda`` cases run the same matrix plus bf16 and
GPU-sized tiles, and are skipped without a GPU.

Errors are relative norms ``|x - ref| / |ref|`` against the float64 reference fed with the very same (rounded)
inputs: fp32 within 1e-5; fp16/bf16 within 2x the error of the reference computed by PyTorch in that dtype.
Every kernel output (outputs, log-sum-exp, gradients, partial sums) is allocated NaN-filled, so an element
the kernel forgets to write fails the comparison.
"""
from __future__ import annotations

import math
import zlib

import pytest
import torch

from avspeech.kernels import cross_attention as ca
from avspeech.kernels import cross_modal_attention, cross_modal_attention_reference
from avspeech.kernels.reference import in_window, token_times, window_bounds

HAS_CUDA = torch.cuda.is_available()
cuda_only = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def poison_outputs(monkeypatch):
    """Every buffer the kernels write starts as NaN."""
    def nan_empty(shape, dtype, device):
        return torch.full(shape, float("nan"), dtype=dtype, device=device)

    monkeypatch.setattr(ca, "_empty", nan_empty)


# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------

NAMES = ("q_a", "k_a", "v_a", "q_v", "k_v", "v_v")


def make_case(B, H, La, Lv, Dh, dtype, device, bias, seed):
    """Inputs rounded to ``dtype``; returns (tensors in dtype, the same values in float64, slopes, grads)."""
    g = torch.Generator().manual_seed(seed)
    xs = [torch.randn(B, H, L, Dh, generator=g) for L in (La, La, La, Lv, Lv, Lv)]
    xs = [x.to(dtype) for x in xs]
    outs_grad = [torch.randn(B, H, L, Dh, generator=g).to(dtype) for L in (La, Lv)]
    slopes = (torch.rand(H, generator=g) * 8 - 2) if bias else None  # per second; one may be negative
    to = dict(device=device)
    return ([x.to(**to) for x in xs], [x.double() for x in xs], slopes, outs_grad)


def run(fn, xs, len_a, len_v, slopes, grads, **kw):
    """Outputs and gradients (of q/k/v of both streams, and of slopes) of ``sum(out * grad)``."""
    xs = [x.detach().clone().requires_grad_() for x in xs]
    s = None if slopes is None else slopes.detach().clone().requires_grad_()
    out_a, out_v = fn(*xs, len_a, len_v, slopes=s, **kw)
    loss = (out_a * grads[0].to(out_a)).sum() + (out_v * grads[1].to(out_v)).sum()
    inputs = xs + ([s] if s is not None else [])
    gs = torch.autograd.grad(loss, inputs)
    res = {"out_a": out_a, "out_v": out_v, **{f"d{n}": gx for n, gx in zip(NAMES, gs)}}
    if s is not None:
        res["dslopes"] = gs[-1]
    return {k: v.detach().cpu().double() for k, v in res.items()}


def rel_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Relative norm error; NaN/inf anywhere in ``x`` counts as infinite error."""
    if not torch.isfinite(x).all():
        return math.inf
    den = ref.norm().item()
    return (x - ref).norm().item() / den if den > 0 else (0.0 if (x == 0).all() else math.inf)


def describe(x: torch.Tensor, ref: torch.Tensor) -> str:
    bad = (x - ref).abs() > 1e-3 * ref.abs().max().clamp_min(1e-30)
    return (f"{int(bad.sum())}/{x.numel()} mismatched, {int(torch.isnan(x).sum())} NaN, "
            f"{int(torch.isinf(x).sum())} inf")


# ----------------------------------------------------------------------------------------------------------
# the matrix: kernel vs float64 reference
# ----------------------------------------------------------------------------------------------------------

# (La, Lv, len_a, len_v, rate_a, rate_v, window, bias, Dh)
CASES = {
    "dense-odd": (37, 29, [37, 20], [29, 13], 25.0, 25.0, None, False, 16),
    "dense-bias-lips-absent": (33, 40, [33, 17], [40, 0], 25.0, 25.0, None, True, 32),
    "audio-absent-window": (23, 23, [0, 23], [23, 19], 25.0, 25.0, 0.2, True, 16),
    "stft-rates-window": (45, 13, [45, 30], [13, 7], 100.0, 25.0, 0.1, True, 16),
    "stft-rates-dense-bias": (41, 11, [41, 27], [11, 11], 100.0, 25.0, None, True, 24),
    "window-cuts-all-but-neighbours": (35, 35, [35, 21], [35, 30], 25.0, 25.0, 0.04, True, 16),
    "window-cuts-late-queries": (39, 39, [39, 12], [5, 39], 25.0, 25.0, 0.05, False, 16),
    "window-cuts-nothing": (31, 18, [31, 9], [18, 18], 25.0, 25.0, 100.0, True, 16),
}
CPU_DTYPES = [torch.float32, torch.float16]
GPU_DTYPES = [torch.float32, torch.float16, torch.bfloat16]

# GPU tiles are 32..128 wide: lengths that cross several of them and end mid-tile.
GPU_CASES = {
    "gpu-dense-d64": (333, 271, [333, 100], [271, 0], 25.0, 25.0, None, True, 64),
    "gpu-window-d128": (517, 130, [517, 300], [130, 77], 100.0, 25.0, 0.5, True, 128),
    "gpu-window-d32": (400, 400, [400, 129], [257, 400], 25.0, 25.0, 1.0, False, 32),
}


def check_case(name, dtype, device):
    case = {**CASES, **GPU_CASES}[name]
    La, Lv, len_a, len_v, rate_a, rate_v, window, bias, Dh = case
    xs, xs64, slopes, grads = make_case(2, 2, La, Lv, Dh, dtype, device, bias, seed=zlib.crc32(name.encode()))
    kw = dict(rate_a=rate_a, rate_v=rate_v, window=window)
    la, lv = torch.tensor(len_a), torch.tensor(len_v)
    got = run(cross_modal_attention, xs, la.to(device), lv.to(device),
              None if slopes is None else slopes.to(device), grads, **kw)
    ref = run(cross_modal_attention_reference, xs64, la, lv,
              None if slopes is None else slopes.double(), [g.double() for g in grads], **kw)
    if dtype == torch.float32:
        bound = {k: 1e-5 for k in ref}
    else:  # the same computation done by PyTorch in this dtype, on the same device
        low = run(cross_modal_attention_reference, xs, la.to(device), lv.to(device),
                  None if slopes is None else slopes.to(device), grads, **kw)
        bound = {k: 2 * rel_err(low[k], ref[k]) for k in ref}
    assert set(got) == set(ref)
    for k in ref:
        err = rel_err(got[k], ref[k])
        assert err <= bound[k], f"{k}: rel err {err:.3g} > {bound[k]:.3g} ({describe(got[k], ref[k])})"


@pytest.mark.parametrize("dtype", CPU_DTYPES, ids=str)
@pytest.mark.parametrize("name", list(CASES))
def test_matches_reference_cpu(name, dtype):
    if not ca.uses_triton(torch.empty(0, dtype=dtype)):
        pytest.skip("TRITON_INTERPRET=1 was not set before triton was imported")
    check_case(name, dtype, "cpu")


@cuda_only
@pytest.mark.parametrize("dtype", GPU_DTYPES, ids=str)
@pytest.mark.parametrize("name", list(CASES) + list(GPU_CASES))
def test_matches_reference_cuda(name, dtype):
    check_case(name, dtype, "cuda")


# ----------------------------------------------------------------------------------------------------------
# closed forms (no reference involved)
# ----------------------------------------------------------------------------------------------------------

DEVICES = ["cpu", pytest.param("cuda", marks=cuda_only)]


@pytest.mark.parametrize("device", DEVICES)
def test_no_valid_key_gives_exact_zeros_and_zero_grads(device):
    """Queries with no key (absent modality, key length 0, or nothing in the window) give exactly 0, and
    nothing flows back through them: their dq is 0 and keys seen by nobody get dk = dv = 0."""
    B, H, La, Lv, Dh = 3, 2, 21, 19, 16
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(B, H, L, Dh, generator=g).to(device).requires_grad_() for L in (La,) * 3 + (Lv,) * 3]
    slopes = torch.tensor([1.0, 3.0], device=device, requires_grad=True)
    # sample 0: lips absent; sample 1: audio absent; sample 2: lips only in the first 0.12 s, window 0.1 s,
    # so audio queries from 0.24 s (index 6) on see no key
    len_a = torch.tensor([21, 0, 21], device=device)
    len_v = torch.tensor([0, 19, 4], device=device)
    out_a, out_v = cross_modal_attention(*xs, len_a, len_v, window=0.1, slopes=slopes)
    zero_a = torch.zeros(B, La, dtype=torch.bool)
    zero_a[0] = zero_a[1] = True
    zero_a[2, 6:] = True  # t = 0.20 s sees the lip at 0.12 s; 0.24 s does not
    zero_v = torch.zeros(B, Lv, dtype=torch.bool)
    zero_v[0] = zero_v[1] = True
    zero_v[2, 4:] = True  # beyond len_v
    assert torch.isfinite(out_a).all() and torch.isfinite(out_v).all()
    assert (out_a.cpu()[zero_a.unsqueeze(1).expand(B, H, La)] == 0).all()
    assert (out_v.cpu()[zero_v.unsqueeze(1).expand(B, H, Lv)] == 0).all()
    assert (out_a.cpu()[~zero_a.unsqueeze(1).expand(B, H, La)] != 0).all()
    ga, gv = torch.randn_like(out_a), torch.randn_like(out_v)
    grads = torch.autograd.grad((out_a * ga).sum() + (out_v * gv).sum(), xs + [slopes])
    dq_a, dk_a, dv_a, dq_v, dk_v, dv_v, dslopes = [x.cpu() for x in grads]
    assert all(torch.isfinite(x).all() for x in grads)
    for d in (dq_a, dk_a, dv_a):  # samples 0, 1: audio neither attends nor is attended to
        assert (d[:2] == 0).all()
    for d in (dq_v, dk_v, dv_v):
        assert (d[:2] == 0).all()
    assert (dq_a[2, :, 6:] == 0).all()  # audio queries without a key
    assert (dk_v[2, :, 4:] == 0).all() and (dv_v[2, :, 4:] == 0).all()  # padded lips
    assert (dq_v[2, :, 4:] == 0).all()
    assert (dk_a[2, :, 6:] == 0).all() and (dv_a[2, :, 6:] == 0).all()  # audio beyond any lip's window
    assert dslopes.abs().sum() > 0


@pytest.mark.parametrize("device", DEVICES)
def test_all_lengths_zero(device):
    xs = [torch.randn(2, 1, L, 16, device=device, requires_grad=True) for L in (9, 9, 9, 5, 5, 5)]
    zero = torch.zeros(2, dtype=torch.long, device=device)
    slopes = torch.ones(1, device=device, requires_grad=True)
    out_a, out_v = cross_modal_attention(*xs, zero, zero, slopes=slopes)
    assert (out_a == 0).all() and (out_v == 0).all()
    grads = torch.autograd.grad(out_a.sum() + out_v.sum(), xs + [slopes])
    assert all((gx == 0).all() for gx in grads)


@pytest.mark.parametrize("device", DEVICES)
def test_uniform_attention_is_the_mean_of_valid_values(device):
    """q = 0 and no bias: every valid key gets the same weight, so out = mean of the valid values."""
    B, H, La, Lv, Dh = 2, 2, 26, 35, 32
    v_a = torch.randn(B, H, La, Dh, device=device)
    v_v = torch.randn(B, H, Lv, Dh, device=device)
    z_a, z_v = torch.zeros_like(v_a), torch.zeros_like(v_v)
    k_a, k_v = torch.randn_like(v_a), torch.randn_like(v_v)
    len_a, len_v = torch.tensor([26, 11], device=device), torch.tensor([3, 35], device=device)
    out_a, out_v = cross_modal_attention(z_a, k_a, v_a, z_v, k_v, v_v, len_a, len_v)
    for b in range(B):
        na, nv = int(len_a[b]), int(len_v[b])
        mean_v = v_v[b, :, :nv].mean(1, keepdim=True).expand(H, na, Dh)
        mean_a = v_a[b, :, :na].mean(1, keepdim=True).expand(H, nv, Dh)
        torch.testing.assert_close(out_a[b, :, :na], mean_v, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out_v[b, :, :nv], mean_a, rtol=1e-5, atol=1e-6)
        assert (out_a[b, :, na:] == 0).all() and (out_v[b, :, nv:] == 0).all()


@pytest.mark.parametrize("device", DEVICES)
def test_zero_window_at_equal_rates_copies_the_simultaneous_value(device):
    """window = 0 and equal rates: query i sees only key i, so out = v there, dv = dout, dq = dk = 0 and the
    slope gradient is 0 (the only distance is 0)."""
    B, H, L, Dh = 2, 2, 27, 16
    xs = [torch.randn(B, H, L, Dh, device=device, requires_grad=True) for _ in range(6)]
    slopes = torch.tensor([0.5, 4.0], device=device, requires_grad=True)
    lens = torch.tensor([27, 14], device=device)
    out_a, out_v = cross_modal_attention(*xs, lens, lens, window=0.0, slopes=slopes)
    valid = (torch.arange(L, device=device) < lens[:, None]).view(B, 1, L, 1)
    assert torch.equal(out_a, torch.where(valid, xs[5], 0.0).detach())
    assert torch.equal(out_v, torch.where(valid, xs[2], 0.0).detach())
    ga, gv = torch.randn_like(out_a), torch.randn_like(out_v)
    dq_a, dk_a, dv_a, dq_v, dk_v, dv_v, ds = torch.autograd.grad((out_a * ga).sum() + (out_v * gv).sum(),
                                                                 xs + [slopes])
    # zero in exact arithmetic; in fp32 what is left is the rounding of length-Dh dot products (dO . v) times k
    bound = 8 * torch.finfo(torch.float32).eps * Dh * max(float(ga.abs().max()), float(gv.abs().max())) * max(
        float(x.abs().max()) for x in xs) ** 2
    for d in (dq_a, dk_a, dq_v, dk_v, ds):
        assert d.abs().max() < bound
    torch.testing.assert_close(dv_v, torch.where(valid, ga, 0.0))
    torch.testing.assert_close(dv_a, torch.where(valid, gv, 0.0))


# ----------------------------------------------------------------------------------------------------------
# window bounds, dispatch, inputs
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("Lq, Lk, rq, rk, w", [(60, 60, 25.0, 25.0, 1.0), (90, 23, 100.0, 25.0, 0.1),
                                               (23, 90, 25.0, 100.0, 0.03), (50, 40, 25.0, 25.0, 0.0),
                                               (31, 17, 29.97, 25.0, 0.2), (40, 10, 100.0, 25.0, 0.005)])
def test_window_bounds_match_the_window_test(Lq, Lk, rq, rk, w):
    lo, hi = window_bounds(Lq, Lk, rq, rk, w).long()
    inside = in_window(token_times(Lq, rq)[:, None], token_times(Lk, rk)[None, :], w)  # (Lq, Lk)
    j = torch.arange(Lk)
    assert torch.equal((j >= lo[:, None]) & (j <= hi[:, None]), inside)
    assert (lo.diff() >= 0).all() and (hi.diff() >= 0).all()


def test_window_keeps_ties_in_closed_form():
    """25 Hz both, window 1 s: query i sees exactly the keys with |i - j| <= 25, ties included."""
    lo, hi = window_bounds(100, 100, 25.0, 25.0, 1.0).long()
    i = torch.arange(100)
    assert torch.equal(lo, (i - 25).clamp(min=0)) and torch.equal(hi, (i + 25).clamp(max=99))
    lo, hi = window_bounds(40, 10, 100.0, 25.0, 0.0).long()  # 100 Hz queries, 25 Hz keys, no slack
    has = i[:40] % 4 == 0
    assert torch.equal(lo[has], i[:40][has] // 4) and torch.equal(hi[has], i[:40][has] // 4)
    assert (hi[~has] < lo[~has]).all()


def test_float64_runs_the_reference_exactly():
    xs = [torch.randn(1, 2, L, 16, dtype=torch.float64) for L in (7, 7, 7, 5, 5, 5)]
    lens = (torch.tensor([6]), torch.tensor([4]))
    kw = dict(rate_a=100.0, window=0.3, slopes=torch.ones(2, dtype=torch.float64))
    got = cross_modal_attention(*xs, *lens, **kw)
    ref = cross_modal_attention_reference(*xs, *lens, **kw)
    assert all(torch.equal(a, b) for a, b in zip(got, ref))


def test_bad_inputs_raise_value_errors():
    xs = [torch.randn(2, 2, 7, 16) for _ in range(3)] + [torch.randn(2, 2, 5, 16) for _ in range(3)]
    lens = (torch.tensor([7, 7]), torch.tensor([5, 5]))
    with pytest.raises(ValueError, match="len_a and len_v"):
        cross_modal_attention(*xs, torch.tensor([7]), lens[1])
    with pytest.raises(ValueError, match="slopes"):
        cross_modal_attention(*xs, *lens, slopes=torch.ones(3))
    with pytest.raises(ValueError, match="rates"):
        cross_modal_attention(*xs, *lens, rate_v=0.0)
    with pytest.raises(ValueError, match="window"):
        cross_modal_attention(*xs, *lens, window=-1.0)
    with pytest.raises(ValueError, match=r"\(B, H, La, Dh\)"):
        cross_modal_attention(*xs[:5], torch.randn(2, 2, 5, 8), *lens)
