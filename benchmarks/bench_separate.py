"""Real-time factor and peak memory of ``avspeech separate`` on a long two-face clip (CPU).

The clip is made by concatenating two-speaker synthetic clips (``avspeech synth``, 640x480, 25 fps) up to
``--seconds``; faces jump at each cut, so the clip has several tracks per face position. ``avspeech separate``
runs in a child process under ``/usr/bin/time -v`` (peak resident memory) with the shipped checkpoint; its
``speakers.json`` gives the seconds per stage. Writes ``benchmarks/results/separate.{csv,png}``.

    python benchmarks/bench_separate.py --seconds 60
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def long_clip(work: Path, seconds: float) -> Path:
    from avspeech.io.media import read_video_frames, write_video
    from avspeech.io.media import read_wav
    from avspeech.synth.corpus import SynthConfig, clip_id, synthesize_corpus

    out = work / f"long_{int(seconds)}s.mp4"
    if out.is_file():
        return out
    n = int(np.ceil(seconds / 2.5)) + 2
    synthesize_corpus(work / "synth", SynthConfig(speakers=2, seed=5), n, workers=min(os.cpu_count() or 1, 4),
                      resume=True)
    frames, audio, total = [], [], 0
    for i in range(n):
        f, _ = read_video_frames(work / "synth" / f"{clip_id(i)}.mp4")
        a = read_wav(work / "synth" / f"{clip_id(i)}.mix.wav", 16000)[0]
        k = min(len(f), int(round((seconds - total / 25) * 25)))
        if k <= 0:
            break
        frames.append(f[:k])
        audio.append(np.pad(a, (0, max(0, len(f) * 640 - len(a))))[: k * 640])
        total += k
    write_video(out, np.concatenate(frames), 25, audio=np.concatenate(audio), sample_rate=16000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--work", default="bench_separate_work")
    ap.add_argument("--checkpoint", default=None)
    args = ap.parse_args()
    work = Path(args.work)
    clip = long_clip(work, args.seconds)
    out = work / "separated"
    cmd = ["/usr/bin/time", "-v", "avspeech", "separate", str(clip), "--out", str(out)]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    env = dict(os.environ, AVSPEECH_ATTENTION=os.environ.get("AVSPEECH_ATTENTION", "reference"))
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.time() - t0
    if res.returncode:
        raise SystemExit(res.stderr[-3000:])
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr).group(1))
    info = json.loads((out / "speakers.json").read_text())
    duration = info["frames"] / info["fps"]
    row = {"clip_seconds": round(duration, 2), "faces_tracked": len(info["speakers"]), "threads": os.cpu_count(),
           "wall_seconds": round(wall, 2), "rtf": round(wall / duration, 3),
           "peak_rss_gb": round(peak_kb / 2**20, 3),
           **{f"{k}_s": v for k, v in info["seconds"].items()}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "separate.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        w.writeheader()
        w.writerow(row)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = list(info["seconds"])
    fig, ax = plt.subplots(figsize=(8, 2.6))
    left = 0.0
    for k in stages:
        v = info["seconds"][k] / duration
        ax.barh([0], [v], left=left, label=k)
        left += v
    ax.axvline(1.0, color="k", ls=":", lw=1)
    ax.set_yticks([])
    ax.set_xlabel("seconds of processing per second of video (real-time factor)")
    ax.set_title(f"avspeech separate, {duration:.0f} s two-face 640x480 clip, {os.cpu_count()} CPU cores: "
                 f"RTF {row['rtf']:.2f}, peak RSS {row['peak_rss_gb']:.2f} GB", fontsize=9)
    ax.legend(ncol=len(stages), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.35))
    fig.tight_layout()
    fig.savefig(RESULTS / "separate.png", dpi=110)
    print(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
