"""Disk and time of each step from a dataset folder to a trained recognizer and separator, measured on the fake
LRS3, LRS2 and VoxCeleb2 trees of the tests and extrapolated linearly to 100 h of input video.

    python benchmarks/bench_real_data.py [--work DIR] [--workers 1]

Runs the README's "Real data" commands in order through ``avspeech.cli.main`` (the trees: ``tests/dataset_helpers``,
synthetic 224x224 clips, one bad clip each, so ``prepare`` exits 1 by design), and for each step records the
wall time, the bytes it added on disk, the hours of video it read, and those two scaled to 100 h. The data steps
(``prepare``, ``cluster``, ``noise``, ``mixtures draw``, ``evaluate``) grow with the hours they read, so their
extrapolation is what a run would cost on one core of this machine. The training steps run a few steps of the
tiny preset to show that they work on the result; their cost is set by the steps and the GPU, not by the hours,
so their rows give seconds per step here and no extrapolation. The load average is recorded.
Writes benchmarks/results/real_data.csv and real_data.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
FRAMES_PER_HOUR = 25 * 3600


def disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def hours(manifest: Path) -> float:
    from avspeech.data.layout import read_manifest

    return sum(u.frames for u in read_manifest(manifest)) / FRAMES_PER_HOUR


def mixture_hours(manifest: Path, mixtures: Path) -> float:
    """Hours of mixture audio scored: each mixture (cut to the shorter utterance) once per target face."""
    from avspeech.data.layout import read_manifest, read_mixtures

    frames = {u.id: u.frames for u in read_manifest(manifest)}
    return sum(2 * min(frames[m.utt_a], frames[m.utt_b]) for m in read_mixtures(mixtures)) / FRAMES_PER_HOUR


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/bench_real_data", help="work folder (trees and outputs; made anew)")
    p.add_argument("--workers", type=int, default=1, help="preprocessing workers (1: one core)")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "tests"))
    import shutil

    import dataset_helpers as H
    from avspeech.cli import main as cli
    from avspeech.io.atomic import atomic_write_csv, atomic_write_text

    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)
    src = H.make_sources(work / "sources")
    lrs3 = H.make_lrs3(work / "LRS3", src)
    lrs2 = H.make_lrs2(work / "lrs2", src)
    vox = H.make_voxceleb2(work / "vox2", src)
    o = work / "out"
    o.mkdir()
    w = ["--workers", str(args.workers)]
    md = ["--max-duration", str(H.MAX_DURATION)]  # the fake trees' cutting threshold (AV-HuBERT: 15 s)
    tiny = ["--model", "tiny", "--steps", "2", "--warmup", "1", "--log-every", "1"]
    ck = lambda run: str(o / run / "checkpoints" / (o / run / "checkpoints" / "latest").read_text().strip())  # noqa: E731
    l3, l2, v2 = o / "lrs3", o / "lrs2", o / "vox2"
    steps = [  # (name, argv (a callable: it may read earlier outputs), output, what it reads (a tree or a manifest),
        # training steps)
        ("prepare lrs3", lambda: ["prepare", "lrs3", str(lrs3.root), "--out", str(l3), "--valid-ids",
                                  str(lrs3.lists["valid"]), *w, *md], l3, lrs3, 0),
        ("prepare lrs2", lambda: ["prepare", "lrs2", str(lrs2.root), "--out", str(l2), *w, *md], l2, lrs2, 0),
        ("prepare voxceleb2", lambda: ["prepare", "voxceleb2", str(vox.root), "--out", str(v2), "--en-ids",
                                       str(vox.lists["en"]), *w], v2, vox, 0),
        ("cluster", lambda: ["cluster", str(l3 / "433h_data/train.tsv"), "--out", str(o / "train.km"),
                             "--clusters", "8"], o / "train.km", l3 / "433h_data/train.tsv", 0),
        ("noise", lambda: ["noise", "--manifest", str(l3 / "433h_data/train.tsv"), "--out", str(o / "noise"),
                           "--speech-seconds", "1", "--babble-seconds", "1"],  # the fake clips are 2-4 s long
         o / "noise", l3 / "433h_data/train.tsv", 0),
        ("pretrain", lambda: ["pretrain", "--manifest", str(l3 / "433h_data/train.tsv"), "--labels",
                              str(o / "train.km"), "--out", str(o / "pt"), "--clusters", "8",
                              "--batch-frames", "200", *tiny], o / "pt", None, 2),
        ("finetune recognition", lambda: ["finetune", "recognition", "--manifest", str(l3 / "30h_data/train.tsv"),
                                          "--init-from", ck("pt"), "--out", str(o / "asr"), "--batch-size", "1",
                                          "--decoder-layers", "1", "--noise-probs", "1", "0", "0",
                                          "--silent-prob", "0", "--noise", str(o / "noise/speech"), "--snr", "0",
                                          "10", *tiny[2:]], o / "asr", None, 2),
        ("evaluate recognition", lambda: ["evaluate", "recognition", "--manifest", str(l3 / "433h_data/test.tsv"),
                                          "--checkpoint", ck("asr"), "--out", str(o / "asr_eval"), "--greedy",
                                          "--snrs", "0", "--noise", str(o / "noise/babble-dataset"), "--snr",
                                          "5", "5"], o / "asr_eval", l3 / "433h_data/test.tsv", 0),
        ("mixtures draw", lambda: ["mixtures", "draw", "--manifest", str(l3 / "433h_data/train.tsv"), "--num", "4",
                                   "--min-seconds", "0", "--out", str(o / "mix/train.tsv")], o / "mix",
         l3 / "433h_data/train.tsv", 0),
        ("finetune separation", lambda: ["finetune", "separation", "--manifest", str(l3 / "433h_data/train.tsv"),
                                         "--mixtures", str(o / "mix/train.tsv"), "--init-from", ck("pt"), "--out",
                                         str(o / "sep"), "--batch-size", "2", "--crop-frames", "25", "--hidden",
                                         "16", *tiny[2:]], o / "sep", None, 2),
        # the fake test set has one speaker, so the separator is scored on the training mixtures (a cost measure)
        ("evaluate separation", lambda: ["evaluate", "separation", "--manifest", str(l3 / "433h_data/train.tsv"),
                                         "--mixtures", str(o / "mix/train.tsv"), "--checkpoint", ck("sep"),
                                         "--out", str(o / "sep_eval"), "--noise", str(o / "noise/babble-dataset"),
                                         "--snr", "5", "5"], o / "sep_eval",
         lambda: mixture_hours(l3 / "433h_data/train.tsv", o / "mix/train.tsv"), 0),
    ]
    rows = []
    for name, argv, out, manifest, n_steps in steps:
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        rc = cli(argv())
        sec = time.perf_counter() - t0
        if rc not in (0, 1) or (rc == 1 and not name.startswith("prepare")):
            raise SystemExit(f"{name} failed with exit code {rc}")
        if isinstance(manifest, H.FakeTree):  # the hours of video in the tree's utterances
            h = sum(e.frames for e in manifest.utterances.values()) / FRAMES_PER_HOUR
        elif callable(manifest):
            h = manifest()
        else:
            h = hours(manifest) if manifest is not None else 0.0
        size = disk(out)
        scale = 100.0 / h if h else None
        rows.append({"step": name, "loadavg": f"{load:.1f}", "input_hours": round(h, 5), "seconds": round(sec, 2),
                     "bytes": size, "seconds_per_step": round(sec / n_steps, 2) if n_steps else "",
                     "core_hours_per_100h": round(sec * scale / 3600 * args.workers, 1) if scale else "",
                     "gb_per_100h": round(size * scale / 1e9, 1) if scale else ""})
        print(rows[-1])
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_csv(out_dir / "real_data.csv", rows)
    loads = [float(r["loadavg"]) for r in rows]
    lines = ["Measured on the fake trees of `tests/dataset_helpers.py` (synthetic 224x224 clips; "
             f"{args.workers} preprocessing worker(s); load {min(loads)}-{max(loads)}) and "
             "**extrapolated** linearly to 100 h of input video. Training rows: a few tiny-preset steps on the CPU, "
             "not extrapolated (their cost is steps x GPU step time). The small steps' times include their fixed "
             "start-up (imports, model load), so their extrapolation overstates them; `noise` ran with "
             "`--speech-seconds 1 --babble-seconds 1` (the fake clips are 2-4 s), and both `evaluate` rows decode "
             "with the tiny model on the CPU.", "",
             "step | input (h) | seconds | disk (MB) | core-hours / 100 h | GB / 100 h | s / step",
             "---|---:|---:|---:|---:|---:|---:"]
    for r in rows:
        rest = [str(r[k]) if r[k] != "" else "-" for k in ("core_hours_per_100h", "gb_per_100h", "seconds_per_step")]
        lines.append(" | ".join([r["step"], str(r["input_hours"]), str(r["seconds"]), f"{r['bytes'] / 1e6:.1f}",
                                 *rest]))
    atomic_write_text(out_dir / "real_data.md", "\n".join(lines) + "\n")
    print(f"wrote {out_dir / 'real_data.csv'} and {out_dir / 'real_data.md'}")


if __name__ == "__main__":
    main()
