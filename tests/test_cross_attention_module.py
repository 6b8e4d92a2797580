"""CrossModalAttention (the nn.Module): the Triton path against the same module run in float64.

float64 inputs always take the PyTorch reference, so ``module.double()`` is an independent oracle of the
whole layer (projections, head split, slopes, output projections) including every parameter gradient.
"""
from __future__ import annotations

import copy

import pytest
import torch

from avspeech.kernels import cross_attention as ca
from avspeech.model.cross_attention import CrossModalAttention

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="needs a CUDA GPU"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("window, learn_slopes, rate_a", [(None, True, 25.0), (0.2, False, 100.0)])
def test_module_matches_float64(device, window, learn_slopes, rate_a, monkeypatch):
    if device == "cpu" and not ca.uses_triton(torch.empty(0)):
        pytest.skip("TRITON_INTERPRET=1 was not set before triton was imported")
    calls = []
    forward = ca._forward
    monkeypatch.setattr(ca, "_forward", lambda *a: calls.append(1) or forward(*a))
    torch.manual_seed(0)
    m = CrossModalAttention(64, 2, rate_a=rate_a, rate_v=25.0, window=window, learn_slopes=learn_slopes).to(device)
    m64 = copy.deepcopy(m).double()
    B, La, Lv = 2, 29 if rate_a == 25.0 else 47, 21
    x_a, x_v = torch.randn(B, La, 64, device=device), torch.randn(B, Lv, 64, device=device)
    len_a, len_v = torch.tensor([La, 13], device=device), torch.tensor([9, 0], device=device)
    y_a, y_v = m(x_a, x_v, len_a, len_v)
    assert calls, "the fused kernel was not used"
    y_a64, y_v64 = m64(x_a.double(), x_v.double(), len_a, len_v)
    torch.testing.assert_close(y_a.double(), y_a64, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y_v.double(), y_v64, rtol=1e-5, atol=1e-5)
    assert (y_a[1, 13:] == 0).all() and (y_v[0, 9:] == 0).all() and (y_v[1] == 0).all()
    g_a, g_v = torch.randn_like(y_a), torch.randn_like(y_v)
    ((y_a * g_a).sum() + (y_v * g_v).sum()).backward()
    ((y_a64 * g_a.double()).sum() + (y_v64 * g_v.double()).sum()).backward()
    names = [n for n, _ in m.named_parameters()]
    assert ("slopes" in names) == learn_slopes
    for (name, p), p64 in zip(m.named_parameters(), m64.parameters()):
        err = (p.grad.double() - p64.grad).norm() / p64.grad.norm()
        assert err < 1e-5, f"{name}: relative gradient error {err:.3g}"


def test_module_rejects_bad_shapes():
    with pytest.raises(ValueError, match="divisible"):
        CrossModalAttention(30, 4)
    m = CrossModalAttention(32, 2)
    with pytest.raises(ValueError, match="x_a"):
        m(torch.randn(2, 5, 16), torch.randn(2, 5, 32), torch.tensor([5, 5]), torch.tensor([5, 5]))


@pytest.mark.parametrize("window", [None, 0.2])
def test_encoder_with_the_triton_backend_matches_the_reference_backend(window, monkeypatch):
    """The model-with-kernel path: a tiny encoder (cross fusion, one audio-only and one padded sample) run with
    ``backend="triton"`` (the interpreter here) against the same weights with ``backend="reference"``: output and
    every parameter gradient, fp32."""
    if not ca.uses_triton(torch.empty(0), "triton"):
        pytest.skip("TRITON_INTERPRET=1 was not set before triton was imported")
    from dataclasses import replace

    from avspeech.model.config import preset
    from avspeech.model.encoder import AVEncoder

    torch.manual_seed(0)
    enc = AVEncoder(replace(preset("tiny"), fusion_window=window))
    B, T, D = 2, 23, enc.cfg.dim
    xa, xv = torch.randn(B, T, D), torch.randn(B, T, D)
    lengths, has_audio, has_video = torch.tensor([23, 14]), torch.tensor([True, True]), torch.tensor([True, False])
    grads, calls = [], []
    forward = ca._forward
    monkeypatch.setattr(ca, "_forward", lambda *a: calls.append(1) or forward(*a))
    for backend in ("triton", "reference"):
        layers = [m for m in enc.modules() if isinstance(m, CrossModalAttention)]
        assert layers
        for m in layers:
            m.backend = backend
        enc.zero_grad()
        out = enc.encode(xa, xv, lengths, has_audio, has_video)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads.append((out.detach(), {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}))
        assert bool(calls) == (backend == "triton"), f"backend {backend!r} was not the one that ran"
        calls.clear()
    (out_t, g_t), (out_r, g_r) = grads
    torch.testing.assert_close(out_t, out_r, rtol=1e-5, atol=1e-5)
    assert g_t.keys() == g_r.keys() and any("slopes" in n for n in g_t)
    for n in g_r:
        err = (g_t[n] - g_r[n]).norm() / g_r[n].norm().clamp_min(1e-30)
        assert err < 1e-4, f"{n}: relative gradient error {err:.3g}"
