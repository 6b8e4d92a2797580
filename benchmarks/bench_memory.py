"""Peak memory of every command that reads video, against clip length and resolution (CPU).

Each command (``preprocess``, ``separate``, ``recognize``) runs in a child process; its peak resident set size
is that child's ``ru_maxrss`` (``resource.getrusage(RUSAGE_CHILDREN)`` read after it exits, one child per
measurement, so the figure is that child's own). Targets (issue 21): below 2.5 GB for a 600 s 1920x1080 two-face
clip and for a 60 s 3840x2160 clip; for every command the 600 s run within 0.3 GB of the 10 s run.

The clips are built here, cheaply: the two face photos of the synthetic corpus (``avspeech.synth.faces``) pasted
side by side into a large grey frame, the mouths opening and closing over a 2 s cycle that is encoded once
(H.264, a closed group of pictures) and then repeated by remuxing its packets with shifted timestamps, so a 600 s
4K clip costs one 2 s encode; the audio is synthetic speech (the mixtures of a small two-speaker corpus) looped
to the clip's length, AAC. Writes ``benchmarks/results/memory.{csv,png}`` (rows of earlier runs of other points
are kept).

    python benchmarks/bench_memory.py --seconds 10 60 600 --sizes 640x480 1920x1080 3840x2160
    python benchmarks/bench_memory.py --grid reduced   # the points of benchmarks/results/memory.md
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
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
COMMANDS = ("preprocess", "separate", "recognize")
OUTPUT = {"separate": "speakers.json", "recognize": "transcripts.json"}
CYCLE_FRAMES = 50  # the encoded segment: 2 s at 25 fps
FPS = 25
# the reduced grid (a shared 2-core machine; separate runs its model at about 10x real time there), in order:
# (command, seconds, width, height)
REDUCED = [("preprocess", s, 1920, 1080) for s in (10, 60, 600)] + [("preprocess", s, 3840, 2160) for s in (10, 60)] \
    + [("recognize", 10, 1920, 1080), ("recognize", 60, 1920, 1080), ("recognize", 60, 3840, 2160),
       ("separate", 10, 1920, 1080), ("separate", 10, 3840, 2160)] \
    + [("preprocess", s, 640, 480) for s in (10, 60)]


def _faces(height: int) -> list[tuple[np.ndarray, np.ndarray, list]]:
    """Per face photo: (image, alpha) scaled so the face is a quarter of the frame's height, and its mouth
    renderings (a few openings) as (image, alpha) pairs."""
    import cv2

    from avspeech.synth.faces import load_face, render_mouth

    out = []
    for name in ("grace_hopper", "astronaut"):
        asset = load_face(name)
        scale = height / 4 / 256  # FACE_HEIGHT px in the asset -> a quarter of the frame
        side = int(round(asset.image.shape[0] * scale))
        alpha = cv2.resize(asset.alpha, (side, side), interpolation=cv2.INTER_AREA)
        mouths = []
        for opening in np.linspace(0, 0.8, 5):
            img = render_mouth(asset, float(opening))[0]
            mouths.append(cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA))
        out.append((alpha, mouths))
    return out


def _segment(width: int, height: int) -> list[np.ndarray]:
    """The 2 s cycle of frames (CYCLE_FRAMES, height, width, 3): two faces side by side, mouths moving."""
    faces = _faces(height)
    base = np.full((height, width, 3), 118, np.uint8)
    frames = []
    for t in range(CYCLE_FRAMES):
        frame = base.copy()
        for k, (alpha, mouths) in enumerate(faces):
            side = alpha.shape[0]
            x0 = int(width * (0.3 + 0.4 * k) - side / 2)
            y0 = int(height * 0.45 - side / 2)
            img = mouths[(t // 3 + 2 * k) % len(mouths)].astype(np.float32)
            region = frame[y0:y0 + side, x0:x0 + side].astype(np.float32)
            a = alpha[..., None]
            frame[y0:y0 + side, x0:x0 + side] = (a * img + (1 - a) * region + 0.5).astype(np.uint8)
        frames.append(frame)
    return frames


def _speech(work: Path, samples: int) -> np.ndarray:
    """``samples`` of synthetic two-speaker speech at 16 kHz (a small corpus' mixtures, looped)."""
    from avspeech.io.media import read_wav
    from avspeech.synth.corpus import SynthConfig, clip_id, synthesize_corpus

    n = 4
    synthesize_corpus(work / "synth", SynthConfig(speakers=2, seed=5), n, workers=1, resume=True)
    mixes = np.concatenate([read_wav(work / "synth" / f"{clip_id(i)}.mix.wav", 16000)[0] for i in range(n)])
    return np.resize(mixes, samples).astype(np.float32)


def make_clip(work: Path, seconds: float, width: int, height: int) -> Path:
    """A two-face clip of ``seconds`` at ``width`` x ``height``, 25 fps, with AAC speech (made once)."""
    import av

    path = work / f"clip_{width}x{height}_{int(seconds)}s.mp4"
    if path.is_file():
        return path
    work.mkdir(parents=True, exist_ok=True)
    seg = work / f"segment_{width}x{height}.mp4"
    if not seg.is_file():  # the 2 s cycle, every frame of it encoded once
        tmp = seg.with_suffix(".tmp.mp4")
        with av.open(str(tmp), "w") as out:
            vs = out.add_stream("libx264", rate=FPS)
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
            vs.options = {"preset": "ultrafast", "crf": "23", "g": str(CYCLE_FRAMES), "threads": "2"}
            for i, frame in enumerate(_segment(width, height)):
                vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
                vf.pts = i
                for p in vs.encode(vf):
                    out.mux(p)
            for p in vs.encode():
                out.mux(p)
        tmp.rename(seg)
    audio = _speech(work, int(round(seconds * 16000)))
    cycles = int(np.ceil(seconds * FPS / CYCLE_FRAMES))
    tmp = path.with_suffix(".tmp.mp4")
    with av.open(str(seg)) as src, av.open(str(tmp), "w") as out:
        packets = [p for p in src.demux(src.streams.video[0]) if p.size]
        vin = src.streams.video[0]
        vs = out.add_stream_from_template(vin)
        aus = out.add_stream("aac", rate=16000, layout="mono")
        step = int(round(1 / (FPS * vin.time_base)))  # pts per frame
        for c in range(cycles):  # one cycle of video packets, then its audio (interleaved as it goes)
            shift = c * CYCLE_FRAMES * step
            for p in packets:
                q = av.Packet(bytes(p))
                q.pts, q.dts, q.time_base = p.pts + shift, p.dts + shift, vin.time_base
                q.is_keyframe = p.is_keyframe
                q.stream = vs
                out.mux(q)
            a0, a1 = c * CYCLE_FRAMES * 640, min((c + 1) * CYCLE_FRAMES * 640, audio.size)
            for s in range(a0, a1, 1024):
                af = av.AudioFrame.from_ndarray(audio[None, s:min(s + 1024, a1)], format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = 16000, s, Fraction(1, 16000)
                for p in aus.encode(af):
                    out.mux(p)
        for p in aus.encode():
            out.mux(p)
    tmp.rename(path)
    return path


def run_one(command: str, clip: Path, out: Path, extra: list[str] | None = None) -> dict:
    """``avspeech COMMAND clip`` in a child process: wall time and that child's peak resident memory."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "avspeech", command, str(clip), "--out", str(out), *(extra or [])]
    env = dict(os.environ, AVSPEECH_ATTENTION=os.environ.get("AVSPEECH_ATTENTION", "reference"))
    script = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")
    t0 = time.time()
    # a fresh parent per measurement: RUSAGE_CHILDREN is then the one command's own peak (Linux: kB)
    res = subprocess.run([sys.executable, "-c", script, *cmd], capture_output=True, text=True, env=env)
    wall = time.time() - t0
    lines = res.stderr.strip().splitlines()
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    peak_kb = int(lines[-1])
    if command == "preprocess":  # faces found: tracks in the manifest, speakers in the heads' JSON
        faces = len((out / "manifest.tsv").read_text().splitlines()) - 1
    else:
        faces = len(json.loads((out / OUTPUT[command]).read_text())["speakers"])
    return {"command": command, "faces_tracked": faces, "wall_seconds": round(wall, 1),
            "peak_rss_gb": round(peak_kb / 2**20, 3)}


def write_results(rows: list[dict]) -> None:
    from avspeech.io.atomic import atomic_write_csv

    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(RESULTS / "memory.csv", rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["size"] for r in rows}, key=lambda s: int(s.split("x")[0]))
    fig, axes = plt.subplots(1, len(COMMANDS), figsize=(4 * len(COMMANDS), 3.4), sharey=True)
    for ax, command in zip(np.atleast_1d(axes), COMMANDS):
        for j, size in enumerate(sizes):
            r = sorted((x for x in rows if x["command"] == command and x["size"] == size),
                       key=lambda x: x["clip_seconds"])
            if r:
                ax.plot([x["clip_seconds"] for x in r], [x["peak_rss_gb"] for x in r], "o-", color=f"C{j}",
                        label=size)
        ax.axhline(2.5, color="k", ls=":", lw=1, label="2.5 GB target")
        ax.set_xscale("log")
        ax.set_xticks([10, 60, 600], ["10", "60", "600"])
        ax.set_xlabel("clip length (s), two faces")
        ax.set_title(f"avspeech {command}", fontsize=9)
        ax.set_ylim(0, 3.0)
        ax.legend(fontsize=7)
    np.atleast_1d(axes)[0].set_ylabel("peak resident memory (GB)")
    fig.suptitle(f"peak memory vs clip length and resolution, {os.cpu_count()} CPU cores", fontsize=9)
    fig.tight_layout()
    fig.savefig(RESULTS / "memory.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, nargs="+", default=[10.0, 60.0, 600.0])
    ap.add_argument("--sizes", nargs="+", default=["640x480", "1920x1080", "3840x2160"])
    ap.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS))
    ap.add_argument("--grid", choices=("full", "reduced"), default="full",
                    help="reduced: the points of benchmarks/results/memory.md (overrides the three above)")
    ap.add_argument("--work", default="bench_memory_work", help="clips and outputs")
    ap.add_argument("--plot-only", action="store_true", help="redraw memory.png from memory.csv, run nothing")
    args = ap.parse_args()
    work = Path(args.work)
    if args.grid == "reduced":
        points = REDUCED
    else:
        points = [(c, s, *map(int, size.split("x"))) for size in args.sizes for s in args.seconds
                  for c in args.commands]
    rows = []
    if (RESULTS / "memory.csv").is_file():  # keep earlier rows of other points
        with open(RESULTS / "memory.csv") as f:
            rows = [{k: (v if k in ("command", "size") else json.loads(v)) for k, v in r.items()}
                    for r in csv.DictReader(f)]
    if args.plot_only:
        return write_results(rows)
    for command, seconds, w, h in points:
        clip = make_clip(work, seconds, w, h)
        extra = ["--overwrite"] if command == "separate" else []
        row = {"command": command, "size": f"{w}x{h}", "clip_seconds": seconds, "cores": os.cpu_count(),
               **{k: v for k, v in run_one(command, clip, work / f"out_{command}", extra).items() if k != "command"}}
        key = (command, row["size"], seconds)
        rows = [r for r in rows if (r["command"], r["size"], r["clip_seconds"]) != key] + [row]
        print(json.dumps(row), flush=True)
        write_results(rows)


if __name__ == "__main__":
    main()
