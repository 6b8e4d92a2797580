"""Peak memory of ``avspeech separate`` and ``avspeech recognize`` on long two-face clips (CPU).

Both commands go through ``avspeech.pipeline`` (streamed frames, ROIs on disk, one chunk in memory), so their peak
resident memory should hardly grow with the clip: the target is a 600 s run within 0.5 GB of the 60 s run and
below 4 GB on 2 cores. The clips (640x480, 25 fps, both faces tracked throughout) are the ones of
``bench_separate.py``; each command runs in a child process under ``/usr/bin/time -v`` with the shipped
checkpoint. Writes ``benchmarks/results/pipeline_memory.{csv,png}``.

    python benchmarks/bench_pipeline_memory.py --seconds 60 600
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_separate import long_clip  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
COMMANDS = ("separate", "recognize")
OUTPUT = {"separate": "speakers.json", "recognize": "transcripts.json"}


def run_one(command: str, clip: Path, out: Path) -> dict:
    """One command on one clip under ``/usr/bin/time -v``: wall time, peak RSS and the command's stage times."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "avspeech", command, str(clip), "--out", str(out)]
    if command == "separate":
        cmd.append("--overwrite")
    env = dict(os.environ, AVSPEECH_ATTENTION=os.environ.get("AVSPEECH_ATTENTION", "reference"))
    t0 = time.time()
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.time() - t0
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stderr[-3000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr).group(1))
    info = json.loads((out / OUTPUT[command]).read_text())
    return {"command": command, "clip_seconds": round(info["frames"] / info["fps"], 2),
            "faces_tracked": len(info["speakers"]), "cores": os.cpu_count(), "wall_seconds": round(wall, 1),
            "peak_rss_gb": round(peak_kb / 2**20, 3)}


def write_results(rows: list[dict]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "pipeline_memory.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for j, command in enumerate(COMMANDS):
        r = sorted((x for x in rows if x["command"] == command), key=lambda x: x["clip_seconds"])
        if r:
            ax.plot([x["clip_seconds"] for x in r], [x["peak_rss_gb"] for x in r], "o-", color=f"C{j}",
                    label=f"avspeech {command}")
    ax.axhline(4.0, color="k", ls=":", lw=1, label="4 GB target")
    ax.set_xscale("log")
    ax.set_xlabel("clip length (s), two faces, 640x480")
    ax.set_ylabel("peak resident memory (GB)")
    ax.set_ylim(0, 4.5)
    ax.set_title(f"peak memory vs clip length, {os.cpu_count()} CPU cores", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "pipeline_memory.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, nargs="+", default=[60.0, 600.0], help="clip lengths to measure")
    ap.add_argument("--commands", nargs="+", choices=COMMANDS, default=list(COMMANDS))
    ap.add_argument("--work", default="bench_separate_work", help="clips and outputs (shared with bench_separate)")
    args = ap.parse_args()
    work = Path(args.work)
    rows = []
    if (RESULTS / "pipeline_memory.csv").is_file():  # keep earlier rows of other (command, length) pairs
        with open(RESULTS / "pipeline_memory.csv") as f:
            rows = [{k: (v if k == "command" else json.loads(v)) for k, v in r.items()} for r in csv.DictReader(f)]
    for sec in args.seconds:
        clip = long_clip(work, sec)
        for command in args.commands:
            row = run_one(command, clip, work / f"{command}_{int(sec)}s")
            rows = [r for r in rows if (r["command"], r["clip_seconds"]) != (command, row["clip_seconds"])] + [row]
            print(json.dumps(rows[-1]), flush=True)
            write_results(rows)


if __name__ == "__main__":
    main()
