"""Plot the cross-attention benchmark CSV: time per step vs L (per mode and pattern) and peak memory vs L.

    python benchmarks/plot_cross_attention.py benchmarks/results/cpu/cross_attention.csv
"""
from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

STYLE = {"triton": ("C3", "o"), "sdpa_mask": ("C0", "s"), "sdpa_flash": ("C7", "--"), "flex": ("C2", "^"),
         "reference": ("C1", "x")}


def read_rows(csv_path: Path) -> list[dict]:
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("L", "B", "H", "Dh"):
            r[k] = int(r[k])
        for k in ("ms", "tflops", "pct_peak", "peak_mem_mb"):
            r[k] = float(r[k])
    return rows


def plot(csv_path: Path, png_path: Path) -> Path:
    """Write a (3 x patterns) grid: fwd ms, fwd+bwd ms, fwd+bwd peak memory; one line per provider."""
    from matplotlib.figure import Figure  # no pyplot: leaves the caller's backend (e.g. a notebook's) alone

    rows = [r for r in read_rows(Path(csv_path)) if r["status"] == "ok"]
    patterns = [p for p in ("dense", "padded", "window") if any(r["pattern"] == p for r in rows)]
    cpu = bool(rows) and rows[0]["device"] == "cpu"  # on CPU the Triton kernel runs in the interpreter
    panels = [("fwd", "ms"), ("fwd+bwd", "ms"), ("fwd+bwd", "peak_mem_mb")]
    fig = Figure(figsize=(4.2 * max(1, len(patterns)), 10))
    axes = fig.subplots(len(panels), max(1, len(patterns)), squeeze=False)
    for i, (mode, key) in enumerate(panels):
        for j, pattern in enumerate(patterns):
            ax = axes[i][j]
            for provider, (color, marker) in STYLE.items():
                pat = "unmasked" if provider == "sdpa_flash" else pattern
                pts = sorted((r["L"], r[key]) for r in rows if r["provider"] == provider and r["mode"] == mode
                             and r["pattern"] == pat and not math.isnan(r[key]))
                if not pts:
                    continue
                style = dict(color=color, linestyle=marker) if marker == "--" else dict(color=color, marker=marker)
                label = provider + {"sdpa_flash": " (no mask)", "triton": " (interpreter)" if cpu else ""}.get(
                    provider, "")
                ax.plot(*zip(*pts), label=label, **style)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{mode} {pattern}" + (" peak memory" if key != "ms" else ""), fontsize=10)
            ax.set_xlabel("L (tokens per stream)")
            ax.set_ylabel("MiB" if key != "ms" else "ms")
            ax.grid(True, which="both", alpha=0.3)
    if rows:
        r0 = rows[0]
        fig.suptitle(f"cross-modal attention, both directions: {r0['device']}, B={r0['B']} H={r0['H']} "
                     f"Dh={r0['Dh']} {r0['dtype']}", fontsize=11)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes.flat:  # gather every provider that appears anywhere
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=110)
    return png_path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    src = Path(sys.argv[1])
    print(plot(src, src.with_suffix(".png")))
