"""Separator training step: the STFT->lip attention in one direction (now) vs both directions, one thrown away
(before).

The shipped separator (avspeech/pretrained/separation_synth: its config and weights) takes forward + backward +
AdamW steps on random inputs of the training shapes, with the lip front-end's output given (its recipe's
``--freeze-lip-frontend``). "both directions" is the previous code path: the layer's two-way ``forward`` with
its lip->STFT output discarded; "one direction" is ``forward_audio``. The two are measured alternately in one
run, each with its own copy of the model and optimizer, so load changes hit both alike; the attention layer
alone (forward + backward) is timed the same way. Writes ``benchmarks/results/separator_step.csv`` and ``.png``.

    python benchmarks/bench_separator_step.py                      # CPU, reference attention, B=8, 2 s crops
    python benchmarks/bench_separator_step.py --steps 20 --threads 2
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from pathlib import Path

import torch

VARIANTS = ("both directions (before)", "one direction (now)")


def _two_way(attn):
    """The previous separator's call: both directions, the lip->STFT one discarded."""
    from avspeech.model.cross_attention import CrossModalAttention

    return lambda x_a, x_v, len_a, len_v: CrossModalAttention.forward(attn, x_a, x_v, len_a, len_v)[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--frames", type=int, default=50, help="crop length in 25 Hz frames (default 50: 2 s)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant (after 2 warm-ups)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--padded", action="store_true", help="all but the first crop 80%% long (default: full crops, "
                   "as fine-tuning's fixed-length crops are)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = p.parse_args()
    os.environ.setdefault("AVSPEECH_ATTENTION", "reference")
    torch.set_num_threads(args.threads)

    from avspeech.io.atomic import atomic_path, atomic_write_csv
    from avspeech.separation.metrics import separation_loss
    from avspeech.separation.separate import default_checkpoint
    from avspeech.separation.train import load_separator

    torch.manual_seed(0)
    base = load_separator(default_checkpoint()).train()
    b, t = args.batch, args.frames
    n = t * 640
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([t] + [int(t * 0.8) if args.padded else t] * (b - 1))
    target, interferer = 0.1 * torch.randn(b, n, generator=g), 0.1 * torch.randn(b, n, generator=g)
    mixture = target + interferer
    audio = torch.randn(b, t, 104, generator=g)
    lip_features = torch.randn(b, t, base.cfg.encoder.dim, generator=g)
    silent = torch.zeros(b, dtype=torch.bool)
    runs = {}
    for name in VARIANTS:
        m = copy.deepcopy(base)
        if name.startswith("both"):
            m.attn.forward_audio = _two_way(m.attn)
        runs[name] = (m, torch.optim.AdamW(m.parameters(), lr=1e-4))
    s = 4 * t + 1
    x_a = torch.randn(b, s, base.cfg.hidden, generator=g)
    x_v = torch.randn(b, t, base.cfg.hidden, generator=g)
    len_s = lengths * 4 + 1

    def step(name: str) -> float:
        m, opt = runs[name]
        t0 = time.perf_counter()
        est = m(mixture, None, audio, lengths, lip_features=lip_features)
        separation_loss(est, target, interferer, mixture, silent, lengths * 640).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    def attention(name: str) -> float:
        attn = runs[name][0].attn
        xa, xv = x_a.clone().requires_grad_(), x_v.clone().requires_grad_()
        t0 = time.perf_counter()
        attn.forward_audio(xa, xv, len_s, lengths).square().sum().backward()
        return time.perf_counter() - t0

    times = {(what, name): [] for what in ("training step", "attention layer") for name in VARIANTS}
    for i in range(args.steps + 2):  # alternate, the first two rounds are warm-ups
        for name in VARIANTS:
            for what, fn in (("training step", step), ("attention layer", attention)):
                dt = fn(name)
                if i >= 2:
                    times[(what, name)].append(dt)
    rows = []
    for (what, name), ts in times.items():
        q = statistics.quantiles(ts, n=4)
        rows.append({"measure": what, "variant": name, "batch": b, "frames": t, "padded": args.padded,
                     "stft_frames": s,
                     "steps": len(ts), "median_ms": round(1e3 * statistics.median(ts), 2),
                     "q1_ms": round(1e3 * q[0], 2), "q3_ms": round(1e3 * q[2], 2)})
    for r in rows:
        before = next(x for x in rows if x["measure"] == r["measure"] and x["variant"] == VARIANTS[0])
        r["ratio_to_before"] = round(r["median_ms"] / before["median_ms"], 3)
        # the median of the per-round ratios: each round times both variants back to back, so a load change
        # between rounds cancels out
        pairs = zip(times[(r["measure"], r["variant"])], times[(r["measure"], VARIANTS[0])])
        r["paired_ratio_to_before"] = round(statistics.median(a / b for a, b in pairs), 3)
        r.update(device="cpu", attention=os.environ["AVSPEECH_ATTENTION"], threads=args.threads,
                 torch=torch.__version__, python=platform.python_version())
    out = Path(args.out)
    atomic_write_csv(out / "separator_step.csv", rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, what in zip(axes, ("training step", "attention layer")):
        sel = [r for r in rows if r["measure"] == what]
        med = [r["median_ms"] for r in sel]
        err = [[r["median_ms"] - r["q1_ms"] for r in sel], [r["q3_ms"] - r["median_ms"] for r in sel]]
        ax.bar([r["variant"].replace(" (", "\n(") for r in sel], med, yerr=err, color=["C1", "C0"], capsize=4)
        ax.set_ylabel("ms (median, quartiles)")
        ax.set_title(f"{what}: now / before = {sel[1]['ratio_to_before']:.3f} "
                     f"(paired {sel[1]['paired_ratio_to_before']:.3f})", fontsize=9)
    fig.suptitle(f"separator (shipped config), B={b}, {t} frames, CPU {args.threads} thread(s), reference attention",
                 fontsize=9)
    fig.tight_layout()
    with atomic_path(out / "separator_step.png") as tmp:
        fig.savefig(tmp, dpi=100)
    for r in rows:
        print({k: r[k] for k in ("measure", "variant", "median_ms", "q1_ms", "q3_ms", "ratio_to_before",
                                   "paired_ratio_to_before")})
    print(f"wrote {out / 'separator_step.csv'} and .png")


if __name__ == "__main__":
    main()
