"""Benchmark the fused cross-modal attention against what a user would otherwise write.

Providers (all compute both directions, audio -> lips and lips -> audio, with the per-head distance bias):
  triton       our fused kernel (on CPU only under TRITON_INTERPRET=1 and only for small L: the interpreter
               measures Python, not the kernel)
  sdpa_mask    torch SDPA with a materialized (B, H, Lq, Lk) mask + bias, rebuilt each step from the slopes
  sdpa_flash   torch SDPA's flash backend without any mask or bias: the unmasked ceiling
  flex         FlexAttention under torch.compile with the same mask (block mask) and bias (score_mod); the block
               mask is built outside the timed region. No backward on CPU.
  reference    the eager PyTorch reference (materialized)

Patterns: ``dense`` (all samples full length), ``padded`` (a quarter of the samples padded to 60% length),
``window`` (padded, plus a +-1 s window); ``sdpa_flash`` ignores masks and is run once per L as ``unmasked``.
Rates are 25/25 Hz (inside the encoder), so La = Lv = L.

Reported per row: median ms (``triton.testing.do_bench`` on GPU, a perf_counter median on CPU), TFLOP/s on the
unmasked FLOPs (forward 8 B H L^2 Dh for both directions, forward+backward 3.5x that), % of this device's
measured matmul peak in the benchmark dtype (bf16 on GPU), and the peak memory one step allocates beyond its
inputs (CUDA allocator on GPU, profiler allocation events on CPU). Rows go to
``benchmarks/results/<device>/cross_attention.csv`` and the plot to ``cross_attention.png`` beside it.

    python benchmarks/bench_cross_attention.py            # GPU if present (full matrix), else CPU mode
    python benchmarks/bench_cross_attention.py --device cpu --lengths 128 256
"""
from __future__ import annotations

import argparse
import csv
import math
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F

from avspeech.kernels import cross_modal_attention, cross_modal_attention_reference
from avspeech.kernels.cross_attention import uses_triton
from avspeech.kernels.reference import in_window, token_times

RESULTS = Path(__file__).resolve().parent / "results"
PROVIDERS = ("triton", "sdpa_mask", "sdpa_flash", "flex", "reference")
PATTERNS = ("dense", "padded", "window")
MODES = ("fwd", "fwd+bwd")
RATE = 25.0
WINDOW_S = 1.0

GPU_DEFAULTS = dict(batch=8, heads=12, head_dim=64, lengths=[128, 512, 2048, 8192, 32768], dtype="bfloat16")
CPU_DEFAULTS = dict(batch=2, heads=4, head_dim=64, lengths=[128, 256, 512], dtype="float32")


@dataclass
class Row:
    device: str
    provider: str
    mode: str
    pattern: str
    B: int
    H: int
    Dh: int
    L: int
    dtype: str
    ms: float
    tflops: float
    pct_peak: float
    peak_mem_mb: float
    peak_tflops: float
    status: str


# ----------------------------------------------------------------------------------------------------------
# timing and memory
# ----------------------------------------------------------------------------------------------------------


def bench_ms(fn, grad_to_none: list[torch.Tensor], device: torch.device, budget_s: float = 0.5) -> float:
    """Median milliseconds of ``fn()``; gradients of ``grad_to_none`` are cleared outside the timed region."""
    if device.type == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(fn, grad_to_none=grad_to_none, return_mode="median"))
    times: list[float] = []
    start = time.perf_counter()
    while not times or (time.perf_counter() - start < budget_s and len(times) < 50):  # >= 1 run, ~budget_s
        for t in grad_to_none:
            t.grad = None
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def peak_memory_mb(fn, device: torch.device) -> float:
    """Peak bytes one call of ``fn`` allocates beyond what is already live, in MiB."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events() if e.self_cpu_memory_usage)
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak / 2**20


def matmul_peak_tflops(device: torch.device, dtype: torch.dtype) -> float:
    """Measured dense matmul throughput of this device in ``dtype`` (the % of peak column's denominator)."""
    n = 8192 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    ms = bench_ms(lambda: torch.matmul(a, b), [], device)
    return 2 * n**3 / (ms * 1e-3) / 1e12


def attention_flops(B: int, H: int, L: int, Dh: int, mode: str) -> float:
    """Unmasked FLOPs of both directions (La = Lv = L): QK^T and PV, 2 FLOPs per MAC; backward 2.5x."""
    fwd = 2 * 2 * 2 * B * H * L * L * Dh
    return fwd * (3.5 if mode == "fwd+bwd" else 1.0)


# ----------------------------------------------------------------------------------------------------------
# problem and providers
# ----------------------------------------------------------------------------------------------------------


@dataclass
class Problem:
    xs: list[torch.Tensor]  # q_a, k_a, v_a, q_v, k_v, v_v: (B, H, L, Dh)
    slopes: torch.Tensor  # (H,) fp32
    len_a: torch.Tensor  # (B,)
    len_v: torch.Tensor
    window: float | None
    grads: list[torch.Tensor]  # upstream gradients of out_a, out_v


def make_problem(B, H, L, Dh, dtype, device, pattern, grad: bool) -> Problem:
    g = torch.Generator(device=device).manual_seed(0)
    xs = [torch.randn(B, H, L, Dh, generator=g, device=device, dtype=dtype).requires_grad_(grad)
          for _ in range(6)]
    slopes = torch.linspace(0.1, 4.0, H, device=device).requires_grad_(grad)
    lens = torch.full((B,), L, dtype=torch.long)
    if pattern != "dense":
        lens[: max(1, B // 4)] = int(0.6 * L)  # a quarter of the samples padded to 60%
    lens = lens.to(device)
    grads = [torch.randn(B, H, L, Dh, generator=g, device=device, dtype=dtype) for _ in range(2)]
    return Problem(xs, slopes, lens, lens.clone(), WINDOW_S if pattern == "window" else None, grads)


def additive_mask(len_q, len_k, L, window, dtype, device) -> torch.Tensor:
    """(B, 1, L, L): 0 where the key is valid, -inf elsewhere (lengths and window)."""
    t = token_times(L, RATE, device)
    keys = torch.arange(L, device=device).view(1, 1, 1, L) < len_k.view(-1, 1, 1, 1)
    if window is not None:
        keys = keys & in_window(t.view(1, 1, L, 1), t.view(1, 1, 1, L), window)
    zero = torch.zeros((), dtype=dtype, device=device)
    return torch.where(keys, zero, torch.full((), float("-inf"), dtype=dtype, device=device))


def build_step(provider: str, p: Problem, mode: str):
    """A closure computing both directions (and the backward for fwd+bwd), or raise NotImplementedError."""
    q_a, k_a, v_a, q_v, k_v, v_v = p.xs
    device, dtype = q_a.device, q_a.dtype
    B, H, L, Dh = q_a.shape
    kw = dict(rate_a=RATE, rate_v=RATE, window=p.window, slopes=p.slopes)

    if provider == "triton":
        if not uses_triton(q_a):
            raise NotImplementedError("needs CUDA or TRITON_INTERPRET=1")
        def attend():
            return cross_modal_attention(*p.xs, p.len_a, p.len_v, **kw)
    elif provider == "reference":
        def attend():
            return cross_modal_attention_reference(*p.xs, p.len_a, p.len_v, **kw)
    elif provider == "sdpa_flash":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        def attend():
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                return (F.scaled_dot_product_attention(q_a, k_v, v_v),
                        F.scaled_dot_product_attention(q_v, k_a, v_a))
    elif provider == "sdpa_mask":
        mask_a = additive_mask(p.len_a, p.len_v, L, p.window, dtype, device)  # (B, 1, L, L)
        mask_v = additive_mask(p.len_v, p.len_a, L, p.window, dtype, device)
        t = token_times(L, RATE, device)
        dist = (t.view(L, 1) - t.view(1, L)).abs().to(dtype)  # (L, L)

        def attend():  # the bias depends on the learnable slopes, so it is rebuilt every step
            bias = -p.slopes.to(dtype).view(1, H, 1, 1) * dist  # (1, H, L, L)
            return (F.scaled_dot_product_attention(q_a, k_v, v_v, attn_mask=mask_a + bias),
                    F.scaled_dot_product_attention(q_v, k_a, v_a, attn_mask=mask_v + bias))
    elif provider == "flex":
        if mode == "fwd+bwd" and device.type == "cpu":
            raise NotImplementedError("FlexAttention has no backward on CPU")
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)  # one per shape
        flex = torch.compile(flex_attention, dynamic=False)
        win = torch.tensor(math.inf if p.window is None else p.window * RATE, device=device)  # in frames
        slopes = p.slopes

        def block_mask(len_q, len_k):
            def mask_mod(b, h, q_idx, kv_idx):
                return (q_idx < len_q[b]) & (kv_idx < len_k[b]) & ((q_idx - kv_idx).abs() <= win)
            return create_block_mask(mask_mod, B, None, L, L, device=device)

        def score_mod(score, b, h, q_idx, kv_idx):
            return score - slopes[h] * (q_idx - kv_idx).abs().to(torch.float32) / RATE

        bm_a, bm_v = block_mask(p.len_a, p.len_v), block_mask(p.len_v, p.len_a)

        def attend():
            return (flex(q_a, k_v, v_v, score_mod=score_mod, block_mask=bm_a),
                    flex(q_v, k_a, v_a, score_mod=score_mod, block_mask=bm_v))
    else:
        raise ValueError(f"unknown provider {provider!r}; choose from {PROVIDERS}")
    return as_step(attend, mode, p.grads)


def as_step(attend, mode: str, grads: list[torch.Tensor]):
    """The timed step of ``attend() -> (out_a, out_v)``: under no_grad for ``fwd``; for ``fwd+bwd`` also the
    backward of both outputs with the upstream gradients ``grads``."""
    if mode == "fwd":
        def step():
            with torch.no_grad():
                return attend()
        return step

    def step():
        out_a, out_v = attend()
        torch.autograd.backward([out_a, out_v], grads)
    return step


def estimated_bytes(provider: str, B: int, H: int, L: int, itemsize: int) -> float:
    """Rough bytes of the materialized (B, H, L, L) intermediates (both directions), to skip hopeless runs."""
    per = {"sdpa_mask": 2, "reference": 8}.get(provider, 0)  # mask + bias (and its gradient); ~8 for eager
    return 2 * per * B * H * L * L * itemsize


# ----------------------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------------------


def device_slug(device: torch.device) -> str:
    if device.type == "cpu":
        return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(device).lower()).strip("-")


def run(device: torch.device, batch: int, heads: int, head_dim: int, lengths: list[int], dtype: torch.dtype,
        providers: list[str], patterns: list[str], modes: list[str], interpret_max_len: int = 128,
        log=print) -> list[Row]:
    """Every (mode, pattern, L, provider) of the matrix; rows with status != 'ok' carry NaN numbers."""
    name = "cpu" if device.type == "cpu" else torch.cuda.get_device_name(device)
    peak = matmul_peak_tflops(device, dtype)
    log(f"{name}: measured {dtype} matmul peak {peak:.3g} TFLOP/s")
    total_mem = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else math.inf
    rows = []
    for mode in modes:
        for L in lengths:
            for pattern in patterns + ["unmasked"]:
                for provider in providers:
                    if (provider == "sdpa_flash") != (pattern == "unmasked"):
                        continue
                    status = "ok"
                    ms = mem = math.nan
                    need = estimated_bytes(provider, batch, heads, L, torch.tensor([], dtype=dtype).element_size())
                    if provider == "triton" and device.type == "cpu" and L > interpret_max_len:
                        status = f"skipped (interpreter, L > {interpret_max_len})"
                    elif need > 0.9 * total_mem:
                        status = f"skipped (needs ~{need / 2**30:.0f} GiB)"
                    else:
                        p = make_problem(batch, heads, L, head_dim, dtype, device,
                                         "dense" if pattern == "unmasked" else pattern, mode == "fwd+bwd")
                        try:
                            step = build_step(provider, p, mode)
                            if device.type == "cpu":  # the warm-up call is the memory probe (saves a slow call)
                                mem = peak_memory_mb(step, device)
                                ms = bench_ms(step, p.xs + [p.slopes], device)
                            else:
                                step()  # compile / autotune outside the timing
                                ms = bench_ms(step, p.xs + [p.slopes], device)
                                for t in p.xs + [p.slopes]:
                                    t.grad = None
                                mem = peak_memory_mb(step, device)
                        except NotImplementedError as e:
                            status = f"unsupported ({e})"
                        except torch.OutOfMemoryError:
                            status = "oom"
                        del p
                        if device.type == "cuda":
                            torch.cuda.empty_cache()
                    tflops = attention_flops(batch, heads, L, head_dim, mode) / (ms * 1e-3) / 1e12
                    row = Row(name, provider, mode, pattern, batch, heads, head_dim, L, str(dtype).split(".")[-1],
                              round(ms, 4), round(tflops, 4), round(100 * tflops / peak, 3), round(mem, 2),
                              round(peak, 3), status)
                    log(f"{mode:8s} {pattern:8s} L={L:<6d} {provider:10s} "
                        + (f"{ms:10.3f} ms {tflops:8.3f} TFLOP/s {row.pct_peak:6.2f}% peak {mem:10.1f} MiB"
                           if status == "ok" else status))
                    rows.append(row)
    return rows


def ratios(rows: list[Row]) -> list[str]:
    """A side-by-side table: ms per provider and, where ours ran, its ms divided by ours (our speedup)."""
    ok = {(r.provider, r.mode, r.pattern, r.L): r.ms for r in rows if r.status == "ok"}
    lines = [f"{'mode':8s} {'pattern':8s} {'L':>6s} " + " ".join(f"{p:>24s}" for p in PROVIDERS)]
    for mode, pattern, L in dict.fromkeys((r.mode, r.pattern, r.L) for r in rows if r.pattern != "unmasked"):
        ours = ok.get(("triton", mode, pattern, L))
        cells = []
        for p in PROVIDERS:
            ms = ok.get((p, mode, "unmasked" if p == "sdpa_flash" else pattern, L))
            cell = "-" if ms is None else f"{ms:.4g} ms" + (f" ({ms / ours:.3g}x)" if ours and p != "triton" else "")
            cells.append(f"{cell:>24s}")
        lines.append(f"{mode:8s} {pattern:8s} {L:6d} " + " ".join(cells))
    return lines


def targets(rows: list[Row]) -> list[tuple[str, str, bool | None]]:
    """The issue's GPU targets (bf16, Dh=64) as (target, measured, met); met is None when not measured."""
    ok = {(r.provider, r.mode, r.pattern, r.L): r for r in rows if r.status == "ok"}
    out: list[tuple[str, str, bool | None]] = []
    for mode, need in (("fwd", 300.0), ("fwd+bwd", 200.0)):
        r = ok.get(("triton", mode, "dense", 8192))
        out.append((f"dense L=8192 {mode} >= {need:.0f} TFLOP/s", f"{r.tflops:.1f}" if r else "not run",
                    None if r is None else r.tflops >= need))
    for mode in MODES:
        pairs = [(L, ok[("sdpa_mask", mode, "padded", L)].ms / ok[("triton", mode, "padded", L)].ms)
                 for L in sorted({r.L for r in rows}) if ("sdpa_mask", mode, "padded", L) in ok
                 and ("triton", mode, "padded", L) in ok]
        worst = min(pairs, key=lambda x: x[1]) if pairs else None
        out.append((f"padded {mode}: >= 2x faster than sdpa_mask (every L measured)",
                    f"min {worst[1]:.2f}x at L={worst[0]}" if worst else "not run",
                    None if worst is None else worst[1] >= 2.0))
        ours = ok.get(("triton", mode, "window", 32768))
        dense = ok.get(("sdpa_mask", mode, "dense", 32768))
        out.append((f"window L=32768 {mode}: >= 20x faster than dense sdpa_mask",
                    f"{dense.ms / ours.ms:.1f}x" if ours and dense else "not measurable (sdpa_mask did not run)",
                    None if not (ours and dense) else dense.ms / ours.ms >= 20))
        flex = ok.get(("flex", mode, "window", 32768))
        out.append((f"window L=32768 {mode}: no slower than flex",
                    f"{flex.ms / ours.ms:.2f}x" if ours and flex else "not run",
                    None if not (ours and flex) else ours.ms <= flex.ms))
    mem = sorted((r.L, r.peak_mem_mb) for r in rows if r.provider == "triton" and r.mode == "fwd+bwd"
                 and r.pattern == "window" and r.status == "ok")
    if len(mem) >= 2:
        (l0, m0), (l1, m1) = mem[-2], mem[-1]
        out.append(("memory linear in L (window, fwd+bwd)", f"x{m1 / m0:.2f} for L x{l1 / l0:.0f}",
                    m1 / m0 <= 1.25 * l1 / l0))
    return out


def write_csv(rows: list[Row], path: Path, append: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not (append and path.exists())
    with open(path, "w" if new else "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[fl.name for fl in fields(Row)])
        if new:
            w.writeheader()
        w.writerows(asdict(r) for r in rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="GPU defaults: " + str(GPU_DEFAULTS) + "\nCPU defaults: " + str(CPU_DEFAULTS))
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="auto: cuda when available, else cpu (default)")
    ap.add_argument("--batch", type=int, help="B")
    ap.add_argument("--heads", type=int, help="H")
    ap.add_argument("--head-dim", type=int, help="Dh")
    ap.add_argument("--lengths", type=int, nargs="+", help="L values (La = Lv = L)")
    ap.add_argument("--dtype", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--providers", nargs="+", choices=PROVIDERS, default=list(PROVIDERS))
    ap.add_argument("--patterns", nargs="+", choices=PATTERNS, default=list(PATTERNS))
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--interpret-max-len", type=int, default=128,
                    help="on CPU, run the interpreted Triton kernel only up to this L (default 128)")
    ap.add_argument("--out", type=Path, help="results folder (default benchmarks/results/<device>/)")
    ap.add_argument("--append", action="store_true", help="append to the CSV instead of replacing it")
    ap.add_argument("--no-plot", action="store_true", help="write the CSV only")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    want_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if want_cuda and not torch.cuda.is_available():
        print("bench_cross_attention: error: --device cuda but no CUDA device", file=sys.stderr)
        return 2
    device = torch.device("cuda" if want_cuda else "cpu")
    defaults = GPU_DEFAULTS if want_cuda else CPU_DEFAULTS
    cfg = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in defaults.items()}
    out = args.out or RESULTS / device_slug(device)
    rows = run(device, cfg["batch"], cfg["heads"], cfg["head_dim"], cfg["lengths"], getattr(torch, cfg["dtype"]),
               args.providers, args.patterns, args.modes, args.interpret_max_len)
    summary = ratios(rows)
    if device.type == "cuda":
        summary += [f"target {name}: {value} -> {'met' if met else 'NOT met' if met is False else 'n/a'}"
                    for name, value, met in targets(rows)]
    print("\n".join(summary))
    out.mkdir(parents=True, exist_ok=True)
    (out / "cross_attention_summary.txt").write_text("\n".join(summary) + "\n")
    csv_path = out / "cross_attention.csv"
    write_csv(rows, csv_path, append=args.append)
    print(f"wrote {csv_path}")
    if not args.no_plot:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from plot_cross_attention import plot

        png = plot(csv_path, out / "cross_attention.png")
        print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
