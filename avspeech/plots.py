"""Pictures a person looks at: contact sheets of clips (matplotlib, Agg backend, written atomically)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from avspeech.io.atomic import atomic_path
from avspeech.timebase import SAMPLE_RATE


def sheet_frames(num_frames: int, frames_per_clip: int = 6) -> list[int]:
    """The frames of a clip that :func:`contact_sheet` shows: evenly spaced, first and last included."""
    return np.linspace(0, num_frames - 1, frames_per_clip).round().astype(int).tolist()


def contact_sheet(path: str | Path, clips: Sequence[tuple[np.ndarray, dict]], frames_per_clip: int = 6,
                  mouth_box: float = 0.9) -> None:
    """A grid: one row per clip, ``frames_per_clip`` evenly spaced frames, each face's box (green) and mouth
    region (red square of ``mouth_box`` x the mouth width) marked, with the transcripts in the row title.

    ``clips``: (frames, sidecar dict) pairs, as made by ``avspeech synth``; frames (T, H, W, 3) uint8, or only
    the frames shown (``{index: frame}`` for the indices :func:`sheet_frames` gives)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rows = len(clips)
    fig, axes = plt.subplots(rows, frames_per_clip, figsize=(2.4 * frames_per_clip, 2.5 * rows + 0.3),
                             squeeze=False)
    for r, (frames, sc) in enumerate(clips):
        idx = sheet_frames(sc["num_frames"] if isinstance(frames, dict) else len(frames), frames_per_clip)
        for c, f in enumerate(idx):
            ax = axes[r, c]
            ax.imshow(frames[f])
            ax.set_axis_off()
            ax.set_title(f"{sc['id']} t={f / sc['fps']:.2f}s", fontsize=7)
            for spk in sc["speakers"]:
                x0, y0, x1, y1 = spk["box"][f]
                ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="lime", lw=0.8))
                (mx, my), w = spk["mouth"][f], spk["mouth_width"][f] * mouth_box
                ax.add_patch(Rectangle((mx - w / 2, my - w / 2), w, w, fill=False, ec="red", lw=0.8))
                ax.text(x0, y0 - 4, f"{spk['index']}: open {spk['openness'][f]:.2f}", color="yellow",
                        fontsize=6)
        texts = " | ".join(f"{s['index']}: \"{s['text']}\" ({s['voice']})" for s in sc["speakers"])
        axes[r, 0].text(0, -0.03, texts, transform=axes[r, 0].transAxes, fontsize=7, va="top")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.95, bottom=0.04, wspace=0.04, hspace=0.45)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)


def training_curves(path: str | Path, log_csv: str | Path, title: str = "pretraining") -> None:
    """Loss and masked/unmasked accuracy against step, from a run's ``log.csv``."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]

    def col(name):
        return [float(r[name]) if r.get(name) not in (None, "") else float("nan") for r in rows]

    fig, (a0, a1) = plt.subplots(1, 2, figsize=(10, 3.4))
    a0.plot(steps, col("loss"))
    a0.set_xlabel("step")
    a0.set_ylabel("loss (masked frames)")
    a0.grid(alpha=0.3)
    for name, label in [("acc_masked", "masked"), ("acc_unmasked", "unmasked"), ("acc_masked_av", "masked, AV"),
                        ("acc_masked_a", "masked, audio only"), ("acc_masked_v", "masked, lips only")]:
        if any(r.get(name) for r in rows):
            a1.plot(steps, col(name), label=label, lw=1.5 if name in ("acc_masked", "acc_unmasked") else 0.8)
    a1.set_xlabel("step")
    a1.set_ylabel("cluster accuracy")
    a1.legend(fontsize=7)
    a1.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def spectrograms(path: str | Path, signals: Sequence[tuple[str, np.ndarray]], sample_rate: int = SAMPLE_RATE) -> None:
    """One log-power spectrogram per (title, waveform (N,)) row, on one colour scale, time in seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(signals), 1, figsize=(10, 1.9 * len(signals) + 0.4), squeeze=False, sharex=True)
    for ax, (title, x) in zip(axes[:, 0], signals):
        x = np.asarray(x, np.float64)
        if x.size < 512:
            x = np.pad(x, (0, 512 - x.size))
        floor = 1e-6 * np.random.default_rng(0).standard_normal(x.size)  # digital silence: dark, not blank
        ax.specgram(x + floor, NFFT=512, Fs=sample_rate, noverlap=352, cmap="magma", vmin=-130, vmax=-30)
        ax.set_xlim(0, x.size / sample_rate)
        ax.set_ylabel("Hz")
        ax.set_title(title, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
