"""Preprocessing throughput: input frames/s per worker on 640x480 synthetic clips, one and two faces.

    python benchmarks/bench_preprocess.py [--clips 6] [--workers 1 2] [--data DIR]
    python benchmarks/bench_preprocess.py --against DIR [--rounds 4]   # side by side with another checkout

1. Stage split (one process pinned to one core): decode, detection, landmarks, alignment, writing, in ms per
   input frame, from the pipeline's own timers, over every clip.
2. Worker scaling: the whole ``preprocess`` batch (as the command runs it) with N worker processes, wall time.

3. With ``--against DIR`` (a checkout of another commit, e.g. ``git worktree add DIR COMMIT``): only the stage
   split, of this checkout and of that one alternately in child processes (``PYTHONPATH=DIR`` for the other),
   ``--rounds`` times on the same clips, so both see the same machine; the median of the paired ratios of frames
   per CPU-second goes to benchmarks/results/preprocess_side_by_side.{csv,png}.

Appends rows to benchmarks/results/preprocess.csv and draws benchmarks/results/preprocess.png. Clips come from
``avspeech.synth`` (25 fps, 640x480 by default), made once into --data (a temporary folder if not given).
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("decode", "detection", "landmarks", "alignment", "writing")
FIELDS = ["date", "host", "cpus", "loadavg", "faces", "clips", "frames", "workers", "wall_s", "frames_per_s",
          "frames_per_s_per_worker", "cpu_s", "frames_per_cpu_s", *[f"{s}_ms_per_frame" for s in STAGES]]


def make_clips(data: Path, speakers: int, clips: int, seed: int) -> Path:
    from avspeech.synth import SynthConfig, synthesize_corpus

    out = data / f"synth_{speakers}spk_{clips}clips_seed{seed}"
    if not (out / "corpus.json").exists() or len(list(out.glob("clip_*.mp4"))) < clips:
        _, failures, _ = synthesize_corpus(out, SynthConfig(speakers=speakers, seed=seed), clips,
                                           workers=min(2, os.cpu_count() or 1), resume=True)
        if failures:
            raise SystemExit(f"synth failed: {failures}")
    return out


def stage_split(folder: Path) -> tuple[int, dict[str, float], float]:
    """(input frames, wall seconds per stage, CPU seconds in all) over every clip of ``folder``, one process on one
    core. On a shared machine the CPU time is the fairer per-core figure (wall time includes waiting)."""
    pinned = hasattr(os, "sched_setaffinity")
    if pinned:
        cores = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {sorted(cores)[0]})
    try:
        return _stage_split(folder)
    finally:  # the worker-scaling runs spawn processes that inherit this process' affinity: give it back
        if pinned:
            os.sched_setaffinity(0, cores)


def _stage_split(folder: Path) -> tuple[int, dict[str, float], float]:
    import cv2

    from avspeech.preprocess.config import PreprocessConfig
    from avspeech.preprocess.discover import discover
    from avspeech.preprocess.pipeline import Preprocessor
    from avspeech.preprocess.write import write_clip

    cv2.setNumThreads(1)
    config = PreprocessConfig()
    total = {s: 0.0 for s in STAGES}
    frames = 0
    with tempfile.TemporaryDirectory() as tmp, Preprocessor(config) as pre:
        clips = discover([folder])
        pre.process_file(clips[0].path)  # warm-up (model load, first-call costs)
        cpu0 = time.process_time()
        for c in clips:
            clip, result = pre.process_file(c.path)
            t0 = time.perf_counter()
            write_clip(tmp, c.clip_id, c.path, clip, result, config)
            result.timings["writing"] = time.perf_counter() - t0
            frames += len(clip.source_times)
            for s in STAGES:
                total[s] += result.timings.get(s, 0.0)
        cpu = time.process_time() - cpu0
    return frames, total, cpu


def batch_wall(folder: Path, workers: int) -> tuple[int, float]:
    from avspeech.preprocess.batch import preprocess

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        report = preprocess([folder], tmp, workers=workers)
        wall = time.perf_counter() - t0
    if report.failures:
        raise SystemExit(f"preprocess failed: {report.failures}")
    return sum(r["source_frames"] for r in report.records), wall


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    split = [r for r in rows if r["workers"] == "split"]
    for i, r in enumerate(split):
        left = 0.0
        for k, s in enumerate(STAGES):
            v = float(r[f"{s}_ms_per_frame"])
            a.barh(i, v, left=left, color=f"C{k}", label=s if i == 0 else None)  # one colour per stage
            left += v
        a.text(left, i, f" {float(r['frames_per_s']):.0f} frames/s", va="center")
    a.set_yticks(range(len(split)), [f"{r['faces']} face(s)" for r in split])
    a.set_xlabel("ms per input frame, one core")
    a.set_title("Stage split (640x480, 25 fps)")
    a.legend(loc="lower right", fontsize=8)
    for faces in sorted({r["faces"] for r in rows}):
        sc = sorted((int(r["workers"]), float(r["frames_per_s"])) for r in rows
                    if r["faces"] == faces and r["workers"] != "split")
        if sc:
            b.plot([w for w, _ in sc], [f for _, f in sc], "o-", label=f"{faces} face(s)")
            b.plot([w for w, _ in sc], [sc[0][1] * w / sc[0][0] for w, _ in sc], ":", color="gray")
    b.set_xlabel("worker processes")
    b.set_ylabel("input frames/s")
    b.set_title(f"Scaling ({rows[0]['cpus']} CPUs; dotted: linear)")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _split_child(folder: Path, tree: str | None) -> dict:
    """The stage split of ``folder`` in a child process importing avspeech from ``tree`` (None: this checkout)."""
    import json
    import subprocess
    import sys

    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if tree:
        env["PYTHONPATH"] = str(Path(tree).resolve())
    out = subprocess.run([sys.executable, __file__, "--split-only", str(folder)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def side_by_side(data: Path, args) -> None:
    import statistics

    rows = []
    for faces in args.faces:
        folder = make_clips(data, faces, args.clips, args.seed)
        for r in range(1, args.rounds + 1):
            for code, tree in (("against", args.against), ("this", None)):
                res = _split_child(folder, tree)
                rows.append({"round": r, "faces": faces, "code": code, "tree": tree or str(Path(__file__).parents[1]),
                             "loadavg": f"{os.getloadavg()[0]:.2f}", "frames": res["frames"],
                             "frames_per_cpu_s": f"{res['frames'] / res['cpu']:.1f}",
                             **{f"{s}_ms_per_frame": f"{1e3 * res['split'][s] / res['frames']:.3f}" for s in STAGES}})
                print(f"{faces} face(s) round {r} {code}: {rows[-1]['frames_per_cpu_s']} frames/CPU-s", flush=True)
    path = RESULTS / "preprocess_side_by_side.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, faces in enumerate(args.faces):
        pairs = [(float(a["frames_per_cpu_s"]), float(b["frames_per_cpu_s"]))
                 for a, b in zip(rows[::2], rows[1::2]) if a["faces"] == faces]
        ratio = statistics.median(b / a for a, b in pairs)
        print(f"{faces} face(s): this / against = {ratio:.3f} (median of {len(pairs)} paired rounds)")
        ax.scatter([a for a, _ in pairs], [b for _, b in pairs], color=f"C{k}",
                   label=f"{faces} face(s): median ratio {ratio:.2f}")
    lo, hi = ax.get_xlim()
    ax.plot([lo, hi], [lo, hi], ":", color="gray")
    ax.set_xlabel(f"against ({Path(args.against).name}): frames per CPU-s")
    ax.set_ylabel("this checkout: frames per CPU-s")
    ax.set_title("Preprocessing, one core, paired rounds (640x480)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=110)
    print(f"wrote {path} and {path.with_suffix('.png')}")


def main() -> None:
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--split-only":  # the child of --against
        import json

        frames, split, cpu = stage_split(Path(sys.argv[2]))
        print(json.dumps({"frames": frames, "split": split, "cpu": cpu}))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=6, help="clips per face count")
    ap.add_argument("--faces", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=None, help="folder to keep the synthetic clips in (default: temporary)")
    ap.add_argument("--csv", default=str(RESULTS / "preprocess.csv"))
    ap.add_argument("--against", default=None, help="another checkout: stage splits side by side (item 3)")
    ap.add_argument("--rounds", type=int, default=4, help="paired rounds with --against")
    args = ap.parse_args()
    if args.against and not (Path(args.against) / "avspeech" / "__init__.py").is_file():
        ap.error(f"--against {args.against}: not a checkout of this project (no avspeech/__init__.py there); make "
                 "one with: git worktree add DIR COMMIT")
    if args.against:
        data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="bench_preprocess_"))
        try:
            return side_by_side(data, args)
        finally:
            if not args.data:
                shutil.rmtree(data, ignore_errors=True)

    data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="bench_preprocess_"))
    common = dict(date=time.strftime("%Y-%m-%d %H:%M"), host=platform.node(), cpus=os.cpu_count(),
                  clips=args.clips)
    rows = []
    try:
        for faces in args.faces:
            folder = make_clips(data, faces, args.clips, args.seed)
            load = f"{os.getloadavg()[0]:.2f}"
            frames, split, cpu = stage_split(folder)
            total = sum(split.values())
            rows.append(dict(common, loadavg=load, faces=faces, frames=frames, workers="split",
                             wall_s=f"{total:.3f}", frames_per_s=f"{frames / total:.1f}",
                             frames_per_s_per_worker=f"{frames / total:.1f}", cpu_s=f"{cpu:.3f}",
                             frames_per_cpu_s=f"{frames / cpu:.1f}",
                             **{f"{s}_ms_per_frame": f"{1e3 * split[s] / frames:.3f}" for s in STAGES}))
            print(f"{faces} face(s), one core: {frames / total:.1f} frames/s wall, {frames / cpu:.1f} per CPU-s; ms/frame: "
                  + ", ".join(f"{s} {1e3 * split[s] / frames:.2f}" for s in STAGES), flush=True)
            for w in args.workers:
                load = f"{os.getloadavg()[0]:.2f}"
                frames, wall = batch_wall(folder, w)
                rows.append(dict(common, loadavg=load, faces=faces, frames=frames, workers=w, wall_s=f"{wall:.3f}",
                                 frames_per_s=f"{frames / wall:.1f}", frames_per_s_per_worker=f"{frames / wall / w:.1f}",
                                 cpu_s="", frames_per_cpu_s="", **{f"{s}_ms_per_frame": "" for s in STAGES}))
                print(f"{faces} face(s), {w} workers: {frames / wall:.1f} frames/s ({frames / wall / w:.1f} per worker, "
                      f"wall {wall:.1f} s incl. process start)", flush=True)
    finally:
        if not args.data:
            shutil.rmtree(data, ignore_errors=True)
    csv_path = Path(args.csv)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    new = not csv_path.exists()
    with open(csv_path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerows(rows)
    png = csv_path.with_suffix(".png")
    plot(rows, png)
    print(f"wrote {csv_path} and {png}")


if __name__ == "__main__":
    main()
