"""One direction of the cross-modal attention (``cross_modal_attention_one_way``, ``CrossModalAttention
.forward_audio``): the Triton kernels (interpreter on CPU) against the float64 reference, forward and every
gradient, on the padded cases of test_cross_attention.py in both directions; a length-0 stream gives zeros and
zero gradients, never NaN; only the programs of that direction are launched.

Every kernel output is allocated NaN-filled (the ``poison_outputs`` fixture of test_cross_attention.py), so an
element the one-way launch forgets to write fails the comparison.
"""
from __future__ import annotations

import copy
import zlib

import pytest
import torch
import triton

from avspeech.kernels import (cross_attention as ca, cross_modal_attention_one_way,
                              cross_modal_attention_one_way_reference, cross_modal_attention_reference)
from avspeech.model.cross_attention import CrossModalAttention
from test_cross_attention import CASES, describe, poison_outputs, rel_err  # noqa: F401 (fixture)

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="needs a CUDA GPU"))]


def _needs_kernel(device: str, dtype=torch.float32) -> None:
    if device == "cpu" and not ca.uses_triton(torch.empty(0, dtype=dtype)):
        pytest.skip("TRITON_INTERPRET=1 was not set before triton was imported")


def _run(fn, q, k, v, len_q, len_k, slopes, grad, **kw):
    """Output and gradients (q, k, v, slopes) of ``sum(out * grad)``, in float64 on the CPU."""
    xs = [x.detach().clone().requires_grad_() for x in (q, k, v)]
    s = None if slopes is None else slopes.detach().clone().requires_grad_()
    out = fn(*xs, len_q, len_k, slopes=s, **kw)
    gs = torch.autograd.grad((out * grad.to(out)).sum(), xs + ([s] if s is not None else []))
    res = {"out": out, "dq": gs[0], "dk": gs[1], "dv": gs[2]}
    if s is not None:
        res["dslopes"] = gs[3]
    return {n: t.detach().cpu().double() for n, t in res.items()}


def _case(name: str, direction: str, dtype, device):
    """Inputs of one case of test_cross_attention.py for one direction: audio queries over lip keys, or lip
    queries over audio keys."""
    La, Lv, len_a, len_v, rate_a, rate_v, window, bias, Dh = CASES[name]
    if direction == "lips":
        La, Lv, len_a, len_v, rate_a, rate_v = Lv, La, len_v, len_a, rate_v, rate_a
    g = torch.Generator().manual_seed(zlib.crc32(f"{name}/{direction}".encode()))
    q = torch.randn(2, 2, La, Dh, generator=g).to(dtype)
    k, v = (torch.randn(2, 2, Lv, Dh, generator=g).to(dtype) for _ in range(2))
    grad = torch.randn(2, 2, La, Dh, generator=g).to(dtype)
    slopes = (torch.rand(2, generator=g) * 8 - 2) if bias else None
    kw = dict(rate_q=rate_a, rate_k=rate_v, window=window)
    return (q, k, v), torch.tensor(len_a), torch.tensor(len_v), slopes, grad, kw


@pytest.mark.parametrize("direction", ["audio", "lips"])
@pytest.mark.parametrize("name", list(CASES))
def test_one_way_matches_float64_reference(name, direction):
    _needs_kernel("cpu")
    xs, len_q, len_k, slopes, grad, kw = _case(name, direction, torch.float32, "cpu")
    got = _run(cross_modal_attention_one_way, *xs, len_q, len_k, slopes, grad, **kw)
    ref = _run(cross_modal_attention_one_way_reference, *(x.double() for x in xs), len_q, len_k,
               None if slopes is None else slopes.double(), grad.double(), **kw)
    assert set(got) == set(ref)
    for k in ref:
        err = rel_err(got[k], ref[k])
        assert err <= 1e-5, f"{k}: rel err {err:.3g} ({describe(got[k], ref[k])})"


def test_one_way_fp16_within_the_error_of_torch_fp16():
    _needs_kernel("cpu", torch.float16)
    xs, len_q, len_k, slopes, grad, kw = _case("stft-rates-window", "audio", torch.float16, "cpu")
    got = _run(cross_modal_attention_one_way, *xs, len_q, len_k, slopes, grad, **kw)
    ref = _run(cross_modal_attention_one_way_reference, *(x.double() for x in xs), len_q, len_k, slopes.double(),
               grad.double(), **kw)
    low = _run(cross_modal_attention_one_way_reference, *xs, len_q, len_k, slopes, grad, **kw)
    for k in ref:
        assert rel_err(got[k], ref[k]) <= 2 * rel_err(low[k], ref[k]), k


def test_one_way_reference_is_either_half_of_the_two_way_one():
    g = torch.Generator().manual_seed(3)
    xs = [torch.randn(2, 2, L, 8, generator=g, dtype=torch.float64) for L in (13, 13, 13, 5, 5, 5)]
    len_a, len_v = torch.tensor([13, 6]), torch.tensor([0, 5])
    slopes = torch.tensor([0.5, 2.0], dtype=torch.float64)
    out_a, out_v = cross_modal_attention_reference(*xs, len_a, len_v, rate_a=100.0, window=0.1, slopes=slopes)
    q_a, k_a, v_a, q_v, k_v, v_v = xs
    a = cross_modal_attention_one_way_reference(q_a, k_v, v_v, len_a, len_v, rate_q=100.0, window=0.1, slopes=slopes)
    v = cross_modal_attention_one_way_reference(q_v, k_a, v_a, len_v, len_a, rate_k=100.0, window=0.1, slopes=slopes)
    assert torch.equal(a, out_a) and torch.equal(v, out_v)


@pytest.mark.parametrize("device", DEVICES)
def test_one_way_length_zero_streams_give_zeros_and_zero_grads(device):
    """Sample 0: no keys (the other modality absent); sample 1: no queries; sample 2: both present. The first
    two give exact zeros and zero gradients, the third matches the float64 reference."""
    _needs_kernel(device)
    g = torch.Generator().manual_seed(5)
    q = torch.randn(3, 2, 21, 16, generator=g).to(device)
    k, v = (torch.randn(3, 2, 7, 16, generator=g).to(device) for _ in range(2))
    len_q, len_k = torch.tensor([21, 0, 17], device=device), torch.tensor([0, 7, 5], device=device)
    slopes = torch.tensor([1.0, 3.0], device=device)
    grad = torch.randn(3, 2, 21, 16, generator=g).to(device)
    kw = dict(rate_q=100.0, rate_k=25.0, window=0.2)
    got = _run(cross_modal_attention_one_way, q, k, v, len_q, len_k, slopes, grad, **kw)
    assert all(torch.isfinite(t).all() for t in got.values())
    for n in ("out", "dq", "dk", "dv"):
        assert (got[n][:2] == 0).all(), n
    assert (got["out"][2, :, 17:] == 0).all() and (got["dk"][2, :, 5:] == 0).all()
    ref = _run(cross_modal_attention_one_way_reference, q.double(), k.double(), v.double(), len_q, len_k,
               slopes.double(), grad.double(), **kw)
    for n in ref:
        assert rel_err(got[n], ref[n]) <= 1e-5, n


class _GridRecorder:
    """Stands in for a ``@triton.jit`` kernel: records the grid of each launch, then launches the kernel."""

    def __init__(self, kernel, grids: list):
        self.kernel, self.grids = kernel, grids

    def __getitem__(self, grid):
        self.grids.append(grid)
        return self.kernel[grid]


def test_one_way_launches_only_its_direction(monkeypatch):
    _needs_kernel("cpu")
    grids: dict[str, list] = {}
    for name in ("fwd", "bwd_delta", "bwd_dq", "bwd_dkdv"):
        attr = f"_cross_attn_{name}_kernel"
        monkeypatch.setattr(ca, attr, _GridRecorder(getattr(ca, attr), grids.setdefault(name, [])))
    Lq, Lk = 45, 13  # 3 query blocks, 1 key block of 16
    q = torch.randn(1, 2, Lq, 16, requires_grad=True)
    k, v = (torch.randn(1, 2, Lk, 16, requires_grad=True) for _ in range(2))
    out = cross_modal_attention_one_way(q, k, v, torch.tensor([Lq]), torch.tensor([Lk]), rate_q=100.0,
                                        window=0.1, slopes=torch.ones(2, requires_grad=True))
    out.sum().backward()
    nq, nk = triton.cdiv(Lq, 16), triton.cdiv(Lk, 16)
    assert [g[0] for g in grids["fwd"]] == [nq] and [g[0] for g in grids["bwd_delta"]] == [nq]
    assert [g[0] for g in grids["bwd_dq"]] == [nq] and [g[0] for g in grids["bwd_dkdv"]] == [nk]
    assert all(g[1] == 2 for gs in grids.values() for g in gs)  # B * H


@pytest.mark.parametrize("device", DEVICES)
def test_module_forward_audio_matches_float64(device):
    """``forward_audio`` on the kernel against the float64 module (reference): y_a, and every parameter gradient,
    which is zero or None exactly where the lip->audio direction would have contributed."""
    _needs_kernel(device)
    torch.manual_seed(0)
    m = CrossModalAttention(32, 2, rate_a=100.0, rate_v=25.0, window=0.2).to(device)
    m64 = copy.deepcopy(m).double()
    x_a, x_v = torch.randn(3, 41, 32, device=device), torch.randn(3, 11, 32, device=device)
    len_a, len_v = torch.tensor([41, 20, 0], device=device), torch.tensor([0, 5, 11], device=device)
    y = m.forward_audio(x_a, x_v, len_a, len_v)
    y64 = m64.forward_audio(x_a.double(), x_v.double(), len_a, len_v)
    full64 = m64(x_a.double(), x_v.double(), len_a, len_v)[0]
    torch.testing.assert_close(y64, full64, rtol=1e-12, atol=1e-12)  # the audio half of forward
    torch.testing.assert_close(y.double(), y64, rtol=1e-5, atol=1e-5)
    assert (y[1, 20:] == 0).all() and (y[2] == 0).all()  # beyond len_a
    assert torch.equal(y[0], m.out_a.bias.detach().expand(41, 32))  # no lips to read: the output bias alone
    g = torch.randn_like(y)
    (y * g).sum().backward()
    (y64 * g.double()).sum().backward()
    for (name, p), p64 in zip(m.named_parameters(), m64.parameters()):
        if name.startswith("out_v."):
            assert p.grad is None and p64.grad is None, name
            continue
        err = (p.grad.double() - p64.grad).norm() / p64.grad.norm().clamp_min(1e-300)
        assert err < 1e-5, f"{name}: relative gradient error {err:.3g}"
    d = 32
    assert (m.qkv_a.weight.grad[d:] == 0).all() and (m.qkv_v.weight.grad[:d] == 0).all()  # k_a, v_a, q_v unused
