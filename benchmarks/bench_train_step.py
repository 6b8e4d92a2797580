"""Pretraining step time and tokens/s: cross-modal attention fusion vs AV-HuBERT's concat fusion.

Forward + backward + AdamW step of the masked-prediction model on random inputs of the right shapes, both
fusions measured alternately in one run (ratios are what to compare; absolute times only mean something on a
GPU). Writes ``benchmarks/results/<device>/train_step.csv`` and ``.png``.

    python benchmarks/bench_train_step.py                    # CPU: base, B=2, T=50
    python benchmarks/bench_train_step.py --batch 8 --frames 250 --steps 20   # a GPU
"""
from __future__ import annotations

import argparse
import csv
import platform
import time
from pathlib import Path

import torch


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device).replace(" ", "_")
    return "cpu"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="base", choices=["tiny", "base", "large"])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--frames", type=int, default=50, help="frames per utterance (25 Hz)")
    p.add_argument("--steps", type=int, default=3, help="timed steps per fusion (after one warm-up)")
    p.add_argument("--clusters", type=int, default=500)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = p.parse_args()

    from avspeech.model.config import preset
    from avspeech.model.encoder import AVEncoder
    from avspeech.pretrain.objective import MaskedPredictionModel

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    b, t = args.batch, args.frames
    lips = torch.randn(b, 1, t, 88, 88, device=device)
    audio = torch.randn(b, t, 104, device=device)
    lengths = torch.tensor([t] + [int(t * 0.6)] * (b - 1), device=device)
    targets = torch.randint(0, args.clusters, (b, t), device=device)
    models = {}
    for fusion in ("cross", "concat"):
        m = MaskedPredictionModel(AVEncoder(preset(args.model, fusion=fusion)), args.clusters).to(device)
        models[fusion] = (m, torch.optim.AdamW(m.parameters(), lr=1e-4))
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))

    def step(fusion: str, i: int) -> float:
        m, opt = models[fusion]
        g = torch.Generator().manual_seed(i)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast:
            loss = m(lips, audio, lengths, targets, g).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    times = {f: [] for f in models}
    for f in models:
        step(f, 0)  # warm-up
    for i in range(args.steps):  # alternate, so load changes hit both alike
        for f in models:
            times[f].append(step(f, i + 1))
    dev = device_name(device)
    out = Path(args.out) / dev
    out.mkdir(parents=True, exist_ok=True)
    tokens = int(lengths.sum())
    rows = []
    for f, ts in times.items():
        med = sorted(ts)[len(ts) // 2]
        params = sum(p.numel() for p in models[f][0].parameters())
        rows.append({"device": dev, "model": args.model, "fusion": f, "batch": b, "frames": t,
                     "valid_tokens": tokens, "params_M": round(params / 1e6, 2), "step_s_median": round(med, 4),
                     "tokens_per_s": round(tokens / med, 1), "torch": torch.__version__,
                     "python": platform.python_version()})
    base = rows[1]["step_s_median"]
    for r in rows:
        r["time_vs_concat"] = round(r["step_s_median"] / base, 3)
    with open(out / "train_step.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(8, 3))
    ax[0].bar([r["fusion"] for r in rows], [r["step_s_median"] for r in rows], color=["C0", "C1"])
    ax[0].set_ylabel("s / step (median)")
    ax[1].bar([r["fusion"] for r in rows], [r["tokens_per_s"] for r in rows], color=["C0", "C1"])
    ax[1].set_ylabel("tokens / s")
    fig.suptitle(f"{args.model} pretraining step, B={b}, T={t}, {dev}")
    fig.tight_layout()
    fig.savefig(out / "train_step.png", dpi=100)
    for r in rows:
        print(r)
    print(f"wrote {out / 'train_step.csv'} and .png")


if __name__ == "__main__":
    main()
