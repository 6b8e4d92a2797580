"""The FlexAttention backend (``backend="flex"``) against the float64 reference, and backend selection.

On the CPU FlexAttention runs eagerly (PyTorch's unfused implementation), in float64 too, so its forward is
checked at float64 precision on every padded case of test_cross_attention.py (lengths, absent streams, windows
that cut all but the neighbours, 100/25 Hz rates, exact window ties). torch 2.11 refuses FlexAttention's backward
on the CPU; its eager autograd is there behind that check, so the gradient test lifts the check (``CPU_BACKWARD``)
to compare every gradient, ``slopes`` included, with the reference's. On CUDA the same cases run compiled.
"""
from __future__ import annotations

import zlib
from types import SimpleNamespace

import pytest
import torch
import torch.nn.attention.flex_attention as torch_flex

from avspeech.kernels import cross_attention as ca
from avspeech.kernels import cross_modal_attention, cross_modal_attention_one_way, cross_modal_attention_reference
from avspeech.kernels import flex
from avspeech.kernels.reference import cross_modal_attention_one_way_reference
from avspeech.model.cross_attention import CrossModalAttention
from test_cross_attention import CASES, make_case, rel_err, run

HAS_CUDA = torch.cuda.is_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU"))]


@pytest.fixture
def cpu_backward(monkeypatch):
    """Lift torch's CPU-backward refusal (and ours) for this test."""
    monkeypatch.setattr(flex, "CPU_BACKWARD", True)
    monkeypatch.setattr(torch_flex, "_validate_device", lambda *a: None)


def _inputs(name, dtype, device, bias_seed=""):
    La, Lv, len_a, len_v, rate_a, rate_v, window, bias, Dh = CASES[name]
    xs, xs64, slopes, grads = make_case(2, 2, La, Lv, Dh, dtype, "cpu", bias, seed=zlib.crc32(name.encode()))
    kw = dict(rate_a=rate_a, rate_v=rate_v, window=window)
    return xs, xs64, slopes, grads, torch.tensor(len_a), torch.tensor(len_v), kw


@pytest.mark.parametrize("name", list(CASES))
def test_flex_forward_is_the_reference_in_float64(name):
    _, xs64, slopes, _, la, lv, kw = _inputs(name, torch.float64, "cpu")
    s = None if slopes is None else slopes.double()
    got = cross_modal_attention(*xs64, la, lv, slopes=s, backend="flex", **kw)
    ref = cross_modal_attention_reference(*xs64, la, lv, slopes=s, **kw)
    for g, r in zip(got, ref):
        assert g.dtype == torch.float64
        assert rel_err(g, r) < 1e-12, rel_err(g, r)
        assert torch.equal(g == 0, r == 0)  # the same rows are exactly zero (invalid queries, no key)


@pytest.mark.parametrize("name", ["dense-bias-lips-absent", "stft-rates-window", "window-cuts-all-but-neighbours"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_flex_gradients_match_float64(name, dtype, cpu_backward):
    xs, xs64, slopes, grads, la, lv, kw = _inputs(name, dtype, "cpu")
    s = None if slopes is None else slopes.to(dtype)
    got = run(lambda *a, **k: cross_modal_attention(*a, backend="flex", **k), xs, la, lv, s, grads, **kw)
    ref = run(cross_modal_attention_reference, xs64, la, lv, None if slopes is None else slopes.double(),
              [g.double() for g in grads], **kw)
    bound = 1e-5 if dtype == torch.float32 else 1e-12
    assert set(got) == set(ref)
    for k in ref:
        assert rel_err(got[k], ref[k]) <= bound, (k, rel_err(got[k], ref[k]))


def test_flex_one_way_and_empty_streams(cpu_backward):
    """One direction; a stream of length 0 in the shape (not only in the lengths) gives zeros, never NaN."""
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 2, L, 16, generator=g, dtype=torch.float64) for L in (45, 13, 13))
    lq, lk = torch.tensor([45, 30]), torch.tensor([13, 0])
    kw = dict(rate_q=100.0, rate_k=25.0, window=0.1, slopes=torch.tensor([0.5, 3.0], dtype=torch.float64))
    got = cross_modal_attention_one_way(q, k, v, lq, lk, backend="flex", **kw)
    ref = cross_modal_attention_one_way_reference(q, k, v, lq, lk, **kw)
    assert rel_err(got, ref) < 1e-12
    empty = torch.zeros(2, 2, 0, 16, dtype=torch.float64)
    out_a, out_v = cross_modal_attention(q, q, q, empty, empty, empty, lq, torch.zeros(2, dtype=torch.long),
                                         backend="flex")
    assert out_a.shape == q.shape and (out_a == 0).all() and out_v.shape == empty.shape


def test_flex_refuses_cpu_backward_clearly():
    q = torch.randn(1, 1, 8, 16, requires_grad=True)
    lens = torch.tensor([8])
    with pytest.raises(NotImplementedError, match="no backward on the CPU"):
        cross_modal_attention_one_way(q, q, q, lens, lens, backend="flex")
    with torch.no_grad():  # the forward alone runs
        assert cross_modal_attention_one_way(q, q, q, lens, lens, backend="flex").shape == q.shape


# ----------------------------------------------------------------------------------------------------------
# selection: argument, environment default, errors
# ----------------------------------------------------------------------------------------------------------


def test_backend_argument_and_environment_default(monkeypatch):
    x = torch.randn(1, 1, 4, 16, dtype=torch.float64)
    monkeypatch.delenv(ca.BACKEND_ENV, raising=False)
    assert ca.resolve_backend(None, x) == "reference"  # auto: float64 never runs the kernels
    assert ca.resolve_backend("flex", x) == "flex"
    monkeypatch.setenv(ca.BACKEND_ENV, "flex")
    assert ca.resolve_backend(None, x) == "flex"  # the variable sets the default ...
    assert ca.resolve_backend("reference", x) == "reference"  # ... an argument overrides it
    calls = []
    monkeypatch.setattr(ca, "flex_cross_modal", lambda *a: calls.append(1) or (a[0] * 0, a[3] * 0))
    m = CrossModalAttention(32, 2).double()  # backend None: follows the variable
    m(torch.randn(1, 4, 32, dtype=torch.float64), torch.randn(1, 3, 32, dtype=torch.float64),
      torch.tensor([4]), torch.tensor([3]))
    assert calls == [1]
    monkeypatch.setenv(ca.BACKEND_ENV, "nonsense")
    with pytest.raises(ValueError, match=r"'nonsense' \(from \$AVSPEECH_ATTENTION\)"):
        ca.resolve_backend(None, x)


def test_unknown_or_unavailable_backends_raise():
    xs = [torch.randn(1, 1, 5, 16, dtype=torch.float64) for _ in range(6)]
    lens = (torch.tensor([5]), torch.tensor([5]))
    with pytest.raises(ValueError, match="unknown attention backend 'cuda'"):
        cross_modal_attention(*xs, *lens, backend="cuda")
    with pytest.raises(ca.BackendUnavailableError, match="float32, float16 or bfloat16"):
        cross_modal_attention(*xs, *lens, backend="triton")
    with pytest.raises(ValueError, match="unknown attention backend"):
        CrossModalAttention(32, 2, backend="fast")
    if not ca.INTERPRET:
        with pytest.raises(ca.BackendUnavailableError, match="TRITON_INTERPRET"):
            cross_modal_attention(*[x.float() for x in xs], *lens, backend="triton")


def test_module_backend_option_reaches_the_function(monkeypatch):
    seen = []
    real = ca.resolve_backend
    monkeypatch.setattr(ca, "resolve_backend", lambda b, t: seen.append(b) or real(b, t))
    m = CrossModalAttention(32, 2, backend="reference")
    x_a, x_v = torch.randn(1, 4, 32), torch.randn(1, 3, 32)
    m(x_a, x_v, torch.tensor([4]), torch.tensor([3]))
    m.forward_audio(x_a, x_v, torch.tensor([4]), torch.tensor([3]))
    assert seen == ["reference", "reference"]


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", ["dense-bias-lips-absent", "stft-rates-window", "window-cuts-late-queries"])
def test_flex_matches_reference_cuda(name, dtype):  # a few cases: each compiles FlexAttention anew
    xs, xs64, slopes, grads, la, lv, kw = _inputs(name, dtype, "cuda")
    cuda = [x.cuda() for x in xs]
    s = None if slopes is None else slopes.cuda()
    got = run(lambda *a, **k: cross_modal_attention(*a, backend="flex", **k), cuda, la.cuda(), lv.cuda(), s,
              [g.cuda() for g in grads], **kw)
    ref = run(cross_modal_attention_reference, xs64, la, lv, None if slopes is None else slopes.double(),
              [g.double() for g in grads], **kw)
    low = run(cross_modal_attention_reference, cuda, la.cuda(), lv.cuda(), s, [g.cuda() for g in grads], **kw)
    for k in ref:
        assert rel_err(got[k], ref[k]) <= 2 * rel_err(low[k], ref[k]) + 1e-3, k


@pytest.mark.parametrize("capability, name, runs", [((7, 5), "Tesla T4", False),
                                                    ((7, 0), "Tesla V100-SXM2-32GB", False),
                                                    ((8, 0), "NVIDIA A100-SXM4-80GB", True),
                                                    ((8, 6), "NVIDIA A10", True), ((9, 0), "NVIDIA H100", True),
                                                    ((12, 0), "NVIDIA GeForce RTX 5090", True)])
def test_gpus_older_than_ampere_get_the_reference(monkeypatch, capability, name, runs):
    """On a CUDA GPU below compute capability 8.0 "auto" runs the reference and "triton" names the GPU and the
    cause (the kernels build there without tensor cores and beyond its shared memory); 8.0 and newer run them.
    A stand-in for a CUDA tensor: the dispatcher reads only dtype, device and is_cuda."""
    monkeypatch.setattr(ca, "INTERPRET", False)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.delenv(ca.BACKEND_ENV, raising=False)
    t = SimpleNamespace(dtype=torch.bfloat16, device=torch.device("cuda", 0), is_cuda=True, shape=(2, 12, 500, 64))
    assert ca.resolve_backend("auto", t) == ("triton" if runs else "reference")
    if runs:
        assert ca.resolve_backend("triton", t) == "triton"
    else:
        with pytest.raises(ca.BackendUnavailableError, match=rf"compute capability 8\.0 or newer .*; {name} is "
                                                             rf"{capability[0]}\.{capability[1]}"):
            ca.resolve_backend("triton", t)
    monkeypatch.setattr(torch.version, "hip", "6.2")  # ROCm: not built or checked there
    assert ca.resolve_backend("auto", t) == "reference"
    with pytest.raises(ca.BackendUnavailableError, match="NVIDIA GPUs only"):
        ca.resolve_backend("triton", t)


@pytest.mark.parametrize("head_dim, runs", [(16, True), (64, True), (96, True), (128, True), (160, False),
                                            (256, False)])
def test_head_dims_beyond_the_tile_tables_get_the_reference(monkeypatch, head_dim, runs):
    """The tile tables stop at head dim 128 (built and checked statically for 64 and 128; at 256 the forward needs
    256 KB of shared memory on sm_90a, 227 KB allowed): beyond it "auto" runs the reference, "triton" says why."""
    monkeypatch.setattr(ca, "INTERPRET", False)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    t = SimpleNamespace(dtype=torch.bfloat16, device=torch.device("cuda", 0), is_cuda=True,
                        shape=(2, 4, 500, head_dim))
    assert ca.resolve_backend("auto", t) == ("triton" if runs else "reference")
    if not runs:
        with pytest.raises(ca.BackendUnavailableError, match=rf"head dims up to 128 .*; got {head_dim}"):
            ca.resolve_backend("triton", t)
