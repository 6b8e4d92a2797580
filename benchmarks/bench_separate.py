"""Real-time factor and peak memory of ``avspeech separate`` on a long two-face clip.

The clip (640x480, 25 fps) loops one two-speaker synthetic clip's frames forwards and backwards up to
``--seconds`` so both faces stay tracked throughout, with speech from many synthetic mixtures as its audio.
``avspeech separate`` runs in a child process (its peak resident memory from the kernel's accounting of the
child) with the shipped checkpoint; its ``speakers.json`` gives the seconds per stage. Writes
``benchmarks/results/separate.{csv,png}`` (or ``--out``).

``--model-only`` times only the separation of two face tracks (the model over overlapping chunks, as
``separate`` runs it: fp32, the attention backend ``auto`` picks) on each of ``--devices`` side by side, from
made-up mouth ROIs and audio: no video, face tracker or media package is needed (the GPU image has none), and
the model's speed does not depend on what the pixels show. Writes ``separate_model.csv``.

    python benchmarks/bench_separate.py --seconds 60 600
    python benchmarks/bench_separate.py --model-only --seconds 60 --devices cpu cuda
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def long_clip(work: Path, seconds: float, n_audio: int = 12) -> Path:
    """A two-face clip of ``seconds``: one synthetic two-speaker clip's frames played forwards and backwards in
    turn (so both faces stay tracked for the whole clip, as in an interview), with the mixtures of many
    synthetic clips back to back as its audio (speech throughout; the lips do not match it, which does not
    matter for speed and memory). Written frame by frame, so making it needs little memory."""
    from avspeech.io.media import VideoWriter, read_video_frames, read_wav
    from avspeech.synth.corpus import SynthConfig, clip_id, synthesize_corpus

    out = work / f"long_{int(seconds)}s.mp4"
    if out.is_file():
        return out
    synthesize_corpus(work / "synth", SynthConfig(speakers=2, seed=5), n_audio,
                      workers=min(os.cpu_count() or 1, 4), resume=True)
    want = int(round(seconds * 25))
    mixes = [read_wav(work / "synth" / f"{clip_id(i)}.mix.wav", 16000)[0] for i in range(n_audio)]
    audio = np.concatenate(mixes * (want * 640 // sum(len(m) for m in mixes) + 1))[: want * 640]
    frames, _ = read_video_frames(work / "synth" / f"{clip_id(0)}.mp4")
    cycle = np.concatenate([np.arange(len(frames)), np.arange(len(frames) - 2, 0, -1)])
    with VideoWriter(out, frames.shape[2], frames.shape[1], 25, audio=audio) as w:
        for t in range(want):
            w.write(frames[cycle[t % len(cycle)]])
    return out


def run_one(clip: Path, out: Path, checkpoint: str | None) -> dict:
    cmd = [sys.executable, "-m", "avspeech.cli", "separate", str(clip), "--out", str(out)]
    if checkpoint:
        cmd += ["--checkpoint", checkpoint]
    env = dict(os.environ, AVSPEECH_ATTENTION=os.environ.get("AVSPEECH_ATTENTION", "reference"))
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.time() - t0
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child so far: this one
    info = json.loads((out / "speakers.json").read_text())
    duration = info["frames"] / info["fps"]
    return {"clip_seconds": round(duration, 2), "faces_tracked": len(info["speakers"]), "cores": os.cpu_count(),
            "wall_seconds": round(wall, 2), "rtf": round(wall / duration, 3), "peak_rss_gb": round(peak_kb / 2**20, 3),
            **{f"{k}_s": v for k, v in info["seconds"].items()}}


def model_only(seconds: float, device: str, checkpoint: str | None, faces: int = 2) -> dict:
    """Seconds to separate ``faces`` tracks of ``seconds`` on ``device`` (after a 2 s warm-up that compiles)."""
    from types import SimpleNamespace

    import torch

    from avspeech.kernels.cross_attention import resolve_backend
    from avspeech.separation.separate import load_model, separate_tracks

    model = load_model(checkpoint, device)
    n = int(round(seconds * 25))
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(n * 640)).astype(np.float32)
    tracks = [SimpleNamespace(index=k, start=0, end=n, boxes=np.zeros((n, 4)),
                              rois=rng.integers(0, 256, (n, 96, 96), dtype=np.uint8)) for k in range(faces)]
    warm = [SimpleNamespace(index=0, start=0, end=50, boxes=np.zeros((50, 4)), rois=tracks[0].rois[:50])]
    dev = next(model.parameters()).device
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    separate_tracks(model, audio[:50 * 640], warm, 50)
    sync()
    t0 = time.perf_counter()
    voices = separate_tracks(model, audio, tracks, n)
    sync()
    wall = time.perf_counter() - t0
    assert all(np.isfinite(v.audio).all() and len(v.audio) == n * 640 for v in voices)
    return {"device": str(dev), "name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{os.cpu_count()} "
            "CPU cores", "attention": resolve_backend("auto", torch.empty(0, device=dev)), "clip_seconds": seconds,
            "faces": faces, "wall_seconds": round(wall, 3), "rtf": round(wall / seconds, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, nargs="+", default=[60.0], help="clip lengths to measure")
    ap.add_argument("--model-only", action="store_true", help="time the model on made-up tracks, per device")
    ap.add_argument("--devices", nargs="+", default=["cpu"], help="with --model-only: devices side by side")
    ap.add_argument("--work", default="bench_separate_work")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--audio-clips", type=int, default=12, help="synthetic mixtures looped as the audio")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    args = ap.parse_args()
    if args.model_only:  # the CSV is rewritten after each row: a run stopped by a time limit keeps what it has
        from avspeech.io.atomic import atomic_write_csv

        args.out.mkdir(parents=True, exist_ok=True)
        rows = []
        for sec in args.seconds:
            for dev in args.devices:
                rows.append(model_only(sec, dev, args.checkpoint))
                print(json.dumps(rows[-1]))
                base = {r["clip_seconds"]: r["wall_seconds"] for r in rows if r["device"] == "cpu"}
                for r in rows:  # the speed-up over the CPU, measured in the same run
                    r["vs_cpu"] = round(base[r["clip_seconds"]] / r["wall_seconds"], 2) \
                        if r["clip_seconds"] in base else ""
                atomic_write_csv(args.out / "separate_model.csv", rows)
        print(f"wrote {args.out / 'separate_model.csv'}")
        return
    work = Path(args.work)
    rows = []
    for sec in args.seconds:
        clip = long_clip(work, sec, args.audio_clips)
        rows.append(run_one(clip, work / f"separated_{int(sec)}s", args.checkpoint))
        print(json.dumps(rows[-1]))
    args.out.mkdir(parents=True, exist_ok=True)
    fields = sorted({k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k) if k in rows[0] else 99)
    with open(args.out / "separate.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [k for k in rows[0] if k.endswith("_s") and k != "wall_seconds"]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.6 * len(rows)))
    for y, r in enumerate(rows):
        left = 0.0
        for j, k in enumerate(stages):
            v = r.get(k, 0.0) / r["clip_seconds"]
            ax.barh([y], [v], left=left, color=f"C{j}", label=k[:-2] if y == 0 else None)
            left += v
    ax.set_yticks(range(len(rows)), [f"{r['clip_seconds']:.0f} s clip\n{r['peak_rss_gb']:.2f} GB peak" for r in rows])
    ax.axvline(1.0, color="k", ls=":", lw=1)
    ax.set_xlabel("seconds of processing per second of video (real-time factor; decoding is inside the stages)")
    ax.set_title(f"avspeech separate, two-face 640x480 video, {os.cpu_count()} CPU cores", fontsize=9)
    ax.legend(ncol=len(stages), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.5))
    fig.tight_layout()
    fig.savefig(args.out / "separate.png", dpi=110)


if __name__ == "__main__":
    main()
