"""Forward time of AV-HuBERT's exact encoder layout (what a converted official checkpoint runs) against this
package's ``concat`` encoder of the same size.

Both encoders are built at AV-HuBERT Base size (12 layers, D 768, FFN 3072, 12 heads, ResNet-18 lip trunk) with
random weights: ``layout="avhubert"`` (PReLU trunk, LayerNorm over the concatenated streams, fairseq's single
encoder LayerNorm) and ``layout="avspeech"`` with ``fusion="concat"`` (today's concat encoder). They run
alternately in one process on the same random inputs (audio and lips, B=1, T=250 frames = 10 s by default), in
eval mode without gradients; the first rounds are warm-ups. Writes ``benchmarks/results/<device>/avhubert_encoder.csv``
and ``.png``.

    python benchmarks/bench_avhubert_encoder.py                     # CPU, 2 threads, B=1, T=250
    python benchmarks/bench_avhubert_encoder.py --device cuda --dtype bfloat16 --batch 8
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

VARIANTS = ("concat encoder (avspeech layout)", "AV-HuBERT layout (converted)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--frames", type=int, default=250, help="25 Hz frames (default 250: 10 s)")
    p.add_argument("--size", choices=("base", "large"), default="base")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds per variant (after 2 warm-ups)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from avspeech.io.atomic import atomic_path, atomic_write_csv
    from avspeech.model.config import preset
    from avspeech.model.encoder import AVEncoder

    dev, dtype = torch.device(args.device), getattr(torch, args.dtype)
    cfgs = {VARIANTS[0]: preset(args.size, fusion="concat"), VARIANTS[1]: preset(f"avhubert_{args.size}")}
    torch.manual_seed(0)
    models = {k: AVEncoder(c).to(dev, dtype).eval() for k, c in cfgs.items()}
    b, t = args.batch, args.frames
    g = torch.Generator().manual_seed(0)
    audio = torch.randn(b, t, 104, generator=g).to(dev, dtype)
    video = torch.randn(b, 1, t, 88, 88, generator=g).to(dev, dtype)
    lengths = torch.full((b,), t, device=dev)

    def run(name: str) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            models[name].extract_features(audio, video, lengths)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {n: [] for n in VARIANTS}
    for i in range(args.rounds + 2):
        for name in VARIANTS:
            dt = run(name)
            if i >= 2:
                times[name].append(dt)
    rows = []
    for name in VARIANTS:
        ts = times[name]
        rows.append({"variant": name, "size": args.size, "batch": b, "frames": t, "rounds": len(ts),
                     "parameters": sum(x.numel() for x in models[name].parameters()),
                     "median_ms": round(1e3 * statistics.median(ts), 1), "min_ms": round(1e3 * min(ts), 1),
                     "max_ms": round(1e3 * max(ts), 1)})
    for r in rows:
        pairs = zip(times[r["variant"]], times[VARIANTS[0]])
        r["ratio_to_concat"] = round(r["median_ms"] / rows[0]["median_ms"], 3)
        r["paired_ratio_to_concat"] = round(statistics.median(a / c for a, c in pairs), 3)
        r.update(device=(torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"), dtype=args.dtype,
                 threads=args.threads, torch=torch.__version__, python=platform.python_version())
    out = Path(args.out) / ("cpu" if dev.type == "cpu" else "gpu")
    atomic_write_csv(out / "avhubert_encoder.csv", rows)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    med = [r["median_ms"] for r in rows]
    err = [[r["median_ms"] - r["min_ms"] for r in rows], [r["max_ms"] - r["median_ms"] for r in rows]]
    ax.bar([v.replace(" (", "\n(") for v in VARIANTS], med, yerr=err, color=["C1", "C0"], capsize=4)
    ax.set_ylabel("ms per forward (median, min-max)")
    ax.set_title(f"{args.size} encoder, B={b}, T={t}, {rows[0]['device']} {args.dtype}, {args.threads} thread(s)\n"
                 f"AV-HuBERT / concat = {rows[1]['ratio_to_concat']:.3f} (paired {rows[1]['paired_ratio_to_concat']:.3f})",
                 fontsize=9)
    fig.tight_layout()
    with atomic_path(out / "avhubert_encoder.png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    for r in rows:
        print(f"{r['variant']:36s} {r['median_ms']:9.1f} ms  ratio {r['ratio_to_concat']:.3f} "
              f"(paired {r['paired_ratio_to_concat']:.3f})")


if __name__ == "__main__":
    main()
