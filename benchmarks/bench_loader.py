"""Data loading throughput: utterance frames per second per DataLoader worker, and whether that keeps a GPU fed.

    python benchmarks/bench_loader.py [--utterances 48] [--workers 0 1 2] [--budget 1000] [--repeat 3] [--data DIR]
    python benchmarks/bench_loader.py --step-time 0.35 --step-frames 8000   # a GPU step, once measured

The data are preprocessed-layout utterances (96x96 gray ROI video, lossless H.264, and 16 kHz PCM-16 wav, 50 to
150 frames, LRS3-like lengths) with cluster labels, written once into --data. Two measurements, side by side:

1. Stage split (this process, one torch thread like a worker): per 25 Hz frame, the ROI decode, the wav read,
   the lip transform (88x88 crop, normalisation), the 104-dim filterbank and the labels, each timed over every
   utterance; frames/s and ms/frame for each and for all. ``roi (before)`` is the ROI reader as it was before
   it copied the decoder's luma plane (``to_ndarray(format="yuv420p")`` per frame), timed on the same files
   and checked to give the same arrays.
2. The loader as pretraining runs it: :class:`avspeech.data.dataset.AVDataset` (no in-memory cache), batches
   from :class:`~avspeech.data.dataset.BucketBatchSampler` (length-bucketed, padded size within ``--budget``
   frames: AV-HuBERT's ``max_tokens``), ``torch.utils.data.DataLoader`` with N workers, pinned memory and
   persistent workers; two epochs, the first one's start-up excluded; frames/s and frames/s per worker, with the
   ROI reader of today and (``(before)`` rows) the one before.

Each row is the median of ``--repeat`` runs, each ``(before)`` row measured next to its pair; the 1-minute load
average (other processes on the machine) is recorded in every row.

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
STAGES = ("roi", "wav", "lips", "fbank", "labels")


def read_gray_video_before(path) -> np.ndarray:
    """The ROI reader before it copied the luma plane: each frame converted by ``to_ndarray`` (the baseline)."""
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="yuv420p")[: f.height] for f in container.decode(video=0)])


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
    out = {s: 0.0 for s in (*STAGES, "roi (before)")}
    for u in utts:
        t0 = time.perf_counter()
        before = read_gray_video_before(u.video)
        t1 = time.perf_counter()
        rois = read_gray_video(u.video)
        t2 = time.perf_counter()
        audio = read_wav(u.audio, 16000)[0]
        t3 = time.perf_counter()
        lips(rois, g)
        t4 = time.perf_counter()
        fbank(audio, len(rois))
        t5 = time.perf_counter()
        if not np.array_equal(before, rois):
            raise SystemExit(f"{u.video}: the two ROI readers disagree")
        for name, dt in zip(("roi (before)", "roi", "wav", "lips", "fbank"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3,
                                                                               t5 - t4)):
            out[name] += dt
    t0 = time.perf_counter()
    read_labels(labels, utts)
    out["labels"] = time.perf_counter() - t0
    out["frames"] = float(sum(u.frames for u in utts))
    return out


def loader_rate(manifest: Path, labels: Path, workers: int, budget: int, epochs: int = 2,
                before: bool = False) -> tuple[float, float, int]:
    """(frames/s after the first batch, wall seconds, frames) of the pretraining loader with ``workers``
    (``before``: with the ROI reader before, in this process and the workers it forks)."""
    import torch
    from torch.utils.data import DataLoader

    from avspeech.data import dataset as dataset_module
    from avspeech.data.dataset import AVDataset, BucketBatchSampler, collate

    reader = dataset_module.read_gray_video
    dataset_module.read_gray_video = read_gray_video_before if before else reader
    try:
        return _loader_rate(manifest, labels, workers, budget, epochs)
    finally:
        dataset_module.read_gray_video = reader


def _loader_rate(manifest: Path, labels: Path, workers: int, budget: int, epochs: int) -> tuple[float, float, int]:
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
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    a.bar([s["name"] for s in stages], [float(s["frames_per_s"]) for s in stages],
          color=["tab:gray" if "before" in s["name"] else "tab:blue" for s in stages])
    a.set_ylabel("frames/s (one process)")
    a.set_title("stages, per 25 Hz frame (gray: ROI reader before)")
    a.set_yscale("log")
    a.tick_params(axis="x", labelrotation=30)
    ws = sorted({int(r["workers"]) for r in loader})
    for k, (tag, colour) in enumerate(((" (before)", "tab:gray"), ("", "tab:green"))):
        sel = {int(r["workers"]): r for r in loader if r["name"].endswith(tag) and (tag or "before" not in r["name"])}
        x = [i + (k - 0.5) * 0.4 for i, wk in enumerate(ws) if wk in sel]
        b.bar(x, [float(sel[wk]["frames_per_s_per_worker"]) for wk in ws if wk in sel], width=0.4, color=colour,
              label="per worker" + (tag or " (now)"))
        b.plot(x, [float(sel[wk]["frames_per_s"]) for wk in ws if wk in sel], "o-", color="k" if not tag else "0.5",
               label="all workers" + (tag or " (now)"))
    b.set_xticks(range(len(ws)), [str(wk) for wk in ws])
    b.axhline(GOAL, color="tab:red", ls="--", label=f"goal {GOAL:.0f}/worker")
    b.set_xlabel("DataLoader workers (0: in the main process)")
    b.set_ylabel("frames/s")
    b.set_title(f"AVDataset + bucketed batches ({loader[0]['budget']} frames)")
    b.legend(fontsize=8)
    loads = sorted(float(r["loadavg"]) for r in last if r["loadavg"])
    span = f"{loads[0]:.1f}" if loads[0] == loads[-1] else f"{loads[0]:.1f}-{loads[-1]:.1f}"
    fig.suptitle(f"{last[0]['host']}, {last[0]['cpus']} CPUs, load {span}; medians of repeated runs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--utterances", type=int, default=48)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--budget", type=int, default=1000, help="frames per padded batch (max_tokens)")
    p.add_argument("--data", help="data folder (made once; default: a temporary folder)")
    p.add_argument("--repeat", type=int, default=3, help="runs of every measurement; rows give the median")
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
    loads = []

    def load() -> float:
        loads.append(os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"))
        return loads[-1]

    runs = []
    for _ in range(args.repeat):
        load()
        runs.append(stage_split(manifest, labels))
    st = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    totals = {"all": float(np.median([sum(r[s] for s in STAGES) for r in runs])),
              "all (before)": float(np.median([sum(r[s] for s in STAGES if s != "roi") + r["roi (before)"]
                                               for r in runs]))}
    for name in (*STAGES, "roi (before)", "all", "all (before)"):
        sec = totals.get(name, st.get(name))
        rows.append({**common, "loadavg": f"{loads[-1]:.1f}", "kind": "stage", "name": name, "workers": 1,
                     "budget": args.budget, "frames": int(st["frames"]), "seconds": round(sec, 4),
                     "frames_per_s": round(st["frames"] / max(sec, 1e-9), 1), "frames_per_s_per_worker": "",
                     "gpu_frames_per_s": "", "workers_needed": ""})
        print(f"stage {name:13s} {rows[-1]['frames_per_s']:>10.0f} frames/s  "
              f"{1e3 * sec / st['frames']:.4f} ms/frame")
    for w in args.workers:
        for before in (True, False):
            res = []
            for _ in range(args.repeat):
                load()
                res.append(loader_rate(manifest, labels, w, args.budget, before=before))
            rate, wall, frames = sorted(res)[len(res) // 2]  # the median run by rate
            per = rate / max(w, 1)
            name = f"{w} workers" + (" (before)" if before else "")
            rows.append({**common, "loadavg": f"{loads[-1]:.1f}", "kind": "loader", "name": name, "workers": w,
                         "budget": args.budget, "frames": frames, "seconds": round(wall, 3),
                         "frames_per_s": round(rate, 1), "frames_per_s_per_worker": round(per, 1),
                         "gpu_frames_per_s": "" if need is None else round(need, 1),
                         "workers_needed": "" if need is None else math.ceil(need / per)})
            print(f"loader {name}: {rate:.0f} frames/s, {per:.0f} per worker (runs: "
                  f"{', '.join(f'{r[0]:.0f}' for r in res)}; load {loads[-1]:.1f})"
                  + ("" if need is None else f"; the GPU takes {need:.0f}/s: {math.ceil(need / per)} workers"))
    print(f"load average during the runs: {min(loads):.1f} to {max(loads):.1f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "loader.csv"
    old = list(csv.DictReader(path.open())) if path.is_file() else []
    atomic_write_csv(path, old + rows)
    plot(old + rows, out / "loader.png")
    print(f"wrote {path} and {out / 'loader.png'}")


if __name__ == "__main__":
    main()
