"""Data loading throughput: utterance frames per second per DataLoader worker, and whether that keeps a GPU fed.

    python benchmarks/bench_loader.py [--utterances 48] [--workers 0 1 2] [--budget 1000] [--data DIR]
    python benchmarks/bench_loader.py --step-time 0.35 --step-frames 8000   # a GPU step, once measured

The data are preprocessed-layout utterances (96x96 gray ROI video, lossless H.264, and 16 kHz PCM-16 wav, 50 to
150 frames, LRS3-like lengths) with cluster labels, written once into --data. Two measurements, side by side:

1. Stage split (this process, one torch thread like a worker): per 25 Hz frame, the ROI decode, the lip transform (88x88 crop, normalisation),
   the 104-dim filterbank and the labels, each timed over every utterance; frames/s for each and for all.
2. The loader as pretraining runs it: :class:`avspeech.data.dataset.AVDataset` (no in-memory cache), batches
   from :class:`~avspeech.data.dataset.BucketBatchSampler` (length-bucketed, padded size within ``--budget``
   frames: AV-HuBERT's ``max_tokens``), ``torch.utils.data.DataLoader`` with N workers, pinned memory and
   persistent workers; two epochs, the first one's start-up excluded; frames/s and frames/s per worker.

With ``--step-time`` (s) and ``--step-frames`` (frames in one training step, e.g. a Base step on one H100) the
rows also give the frames/s the GPU consumes and the workers needed at the measured per-worker rate.
Appends rows to benchmarks/results/loader.csv and draws benchmarks/results/loader.png.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
GOAL = 2000.0  # frames/s per worker
STAGES = ("decode", "lips", "fbank", "labels")


def make_data(root: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    """``n`` utterances in the preprocessed layout, a manifest and .km labels (made once)."""
    from avspeech.data.layout import write_labels, write_manifest
    from avspeech.io.media import write_video, write_wav

    root.mkdir(parents=True, exist_ok=True)
    manifest, labels = root / "manifest.tsv", root / "labels.km"
    if manifest.is_file() and labels.is_file() and len(manifest.read_text().splitlines()) == n + 1:
        return manifest, labels
    rng = np.random.default_rng(seed)
    rows, labs = [], []
    yy, xx = np.mgrid[0:96, 0:96]
    for i in range(n):
        t = int(rng.integers(50, 151))
        phase = rng.uniform(0, 6, size=t).cumsum() * 0.05
        rois = np.stack([(128 + 50 * np.sin(xx / 7 + p) * np.cos(yy / 9 - p) + rng.normal(0, 4, (96, 96)))
                         .clip(0, 255).astype(np.uint8) for p in phase])
        audio = (0.1 * np.sin(2 * np.pi * 180 * np.arange(t * 640) / 16000) + rng.normal(0, 0.02, t * 640))
        uid = f"utt{i:04d}"
        write_video(root / f"{uid}.mp4", rois, 25, gray=True, crf=0)
        write_wav(root / f"{uid}.wav", audio.astype(np.float32), 16000, subtype="PCM_16")
        rows.append((uid, f"{uid}.mp4", f"{uid}.wav", t, t * 640))
        labs.append(rng.integers(0, 100, size=t))
    write_labels(labels, labs)
    write_manifest(manifest, root.resolve(), rows)
    return manifest, labels


def stage_split(manifest: Path, labels: Path) -> dict[str, float]:
    """Seconds per stage over every utterance, and the frame count."""
    import torch

    from avspeech.data.layout import read_labels, read_manifest
    from avspeech.features import LipTransform, audio_features
    from avspeech.io.media import read_gray_video, read_wav

    utts = read_manifest(manifest)
    lips, fbank = LipTransform(train=True), audio_features("avspeech")
    g = torch.Generator().manual_seed(0)
    out = {s: 0.0 for s in STAGES}
    for u in utts:
        t0 = time.perf_counter()
        rois = read_gray_video(u.video)
        audio = read_wav(u.audio, 16000)[0]
        t1 = time.perf_counter()
        lips(rois, g)
        t2 = time.perf_counter()
        fbank(audio, len(rois))
        t3 = time.perf_counter()
        out["decode"] += t1 - t0
        out["lips"] += t2 - t1
        out["fbank"] += t3 - t2
    t0 = time.perf_counter()
    read_labels(labels, utts)
    out["labels"] = time.perf_counter() - t0
    out["frames"] = float(sum(u.frames for u in utts))
    return out


def loader_rate(manifest: Path, labels: Path, workers: int, budget: int, epochs: int = 2) -> tuple[float, float, int]:
    """(frames/s after the first batch, wall seconds, frames) of the pretraining loader with ``workers``."""
    import torch
    from torch.utils.data import DataLoader

    from avspeech.data.dataset import AVDataset, BucketBatchSampler, collate

    ds = AVDataset(manifest, labels, train=True, cache_frames=0)
    sampler = BucketBatchSampler(ds.lengths(), budget, seed=0)
    kw = dict(num_workers=workers, pin_memory=torch.cuda.is_available(), collate_fn=collate,
              batch_sampler=sampler)
    if workers > 0:
        kw.update(persistent_workers=True, prefetch_factor=4)
    loader = DataLoader(ds, **kw)
    frames, t_start, first = 0, None, 0
    t_all = time.perf_counter()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        ds.set_epoch(epoch)
        for batch in loader:
            n = int(batch["lengths"].sum())
            if t_start is None:  # start-up (worker spawn, first decode) is not throughput
                t_start, first = time.perf_counter(), n
            frames += n
    wall = time.perf_counter() - t_start
    del loader
    return (frames - first) / wall, time.perf_counter() - t_all, frames - first


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    last = [r for r in rows if r["date"] == rows[-1]["date"]]
    loader = [r for r in last if r["kind"] == "loader"]
    stages = [r for r in last if r["kind"] == "stage"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.bar([s["name"] for s in stages], [float(s["frames_per_s"]) for s in stages], color="tab:blue")
    a.set_ylabel("frames/s (one process)")
    a.set_title("stages, per 25 Hz frame")
    a.set_yscale("log")
    w = [int(r["workers"]) for r in loader]
    b.bar([str(x) for x in w], [float(r["frames_per_s_per_worker"]) for r in loader], color="tab:green",
          label="per worker")
    b.plot([str(x) for x in w], [float(r["frames_per_s"]) for r in loader], "ko-", label="all workers")
    b.axhline(GOAL, color="tab:red", ls="--", label=f"goal {GOAL:.0f}/worker")
    b.set_xlabel("DataLoader workers (0: in the main process)")
    b.set_ylabel("frames/s")
    b.set_title(f"AVDataset + bucketed batches ({loader[0]['budget']} frames)")
    b.legend()
    fig.suptitle(f"{last[0]['host']}, {last[0]['cpus']} CPUs, load {last[0]['loadavg']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--utterances", type=int, default=48)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budget", type=int, default=1000, help="frames per padded batch (max_tokens)")
    p.add_argument("--data", help="data folder (made once; default: a temporary folder)")
    p.add_argument("--step-time", type=float, help="seconds per training step on the GPU, once measured")
    p.add_argument("--step-frames", type=int, help="frames in that step")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()

    import torch

    from avspeech.io.atomic import atomic_write_csv

    # DataLoader workers run torch on one thread each; so does this process, for the stage split and for
    # "0 workers", so all rows measure one core's work
    torch.set_num_threads(1)
    data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="bench_loader_"))
    manifest, labels = make_data(data, args.utterances)
    date = time.strftime("%Y-%m-%d %H:%M:%S")
    common = {"date": date, "host": platform.node(), "cpus": os.cpu_count(),
              "loadavg": f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""}
    need = (args.step_frames / args.step_time) if args.step_time and args.step_frames else None
    rows = []
    st = stage_split(manifest, labels)
    total = sum(st[s] for s in STAGES)
    for name in (*STAGES, "all"):
        sec = total if name == "all" else st[name]
        rows.append({**common, "kind": "stage", "name": name, "workers": 1, "budget": args.budget,
                     "frames": int(st["frames"]), "seconds": round(sec, 4),
                     "frames_per_s": round(st["frames"] / max(sec, 1e-9), 1), "frames_per_s_per_worker": "",
                     "gpu_frames_per_s": "", "workers_needed": ""})
        print(f"stage {name:7s} {rows[-1]['frames_per_s']:>10.0f} frames/s")
    for w in args.workers:
        rate, wall, frames = loader_rate(manifest, labels, w, args.budget)
        per = rate / max(w, 1)
        rows.append({**common, "kind": "loader", "name": f"{w} workers", "workers": w, "budget": args.budget,
                     "frames": frames, "seconds": round(wall, 3), "frames_per_s": round(rate, 1),
                     "frames_per_s_per_worker": round(per, 1),
                     "gpu_frames_per_s": "" if need is None else round(need, 1),
                     "workers_needed": "" if need is None else math.ceil(need / per)})
        print(f"loader {w} workers: {rate:.0f} frames/s, {per:.0f} per worker"
              + ("" if need is None else f"; the GPU takes {need:.0f}/s: {math.ceil(need / per)} workers"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "loader.csv"
    old = list(csv.DictReader(path.open())) if path.is_file() else []
    atomic_write_csv(path, old + rows)
    plot(old + rows, out / "loader.png")
    print(f"wrote {path} and {out / 'loader.png'}")


if __name__ == "__main__":
    main()
