"""Iteration-2 targets against iteration 1: phone purity of k-means clusters of a pretrained encoder's layer
features vs of MFCCs, on held-out synthetic clips.

Both k-means models (scikit-learn MiniBatchKMeans, the same ``k``) are fitted on the training split's frames
(MFCCs at 100 Hz for iteration 1, as ``avspeech cluster`` makes them; a layer's features at 25 Hz for iteration
2) and applied to the held-out split (voices, sentences and faces never trained on), where HuBERT's measures are
computed against the synthetic phone labels: phone purity E_z[max_y p(y|z)], cluster purity and PNMI.

Writes ``benchmarks/results/iteration2_purity.{csv,md,png}``, and adds the checkpoint's row (MFCC and best-layer
purity against its pretraining steps in all, following ``--init-from`` back to the first run) to
``iteration2_purity_history.csv`` and its plot, so runs of growing length can be compared.

    python benchmarks/iteration2_purity.py --checkpoint RUN/checkpoints/latest \\
        --train-manifest TRAIN/prep/manifest.tsv --heldout-manifest HELDOUT/prep/manifest.tsv --clusters 100
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import time
from pathlib import Path

import torch

os.environ.setdefault("AVSPEECH_ATTENTION", "reference")
RESULTS = Path(__file__).resolve().parent / "results"


def pretraining_steps(checkpoint: str | Path) -> tuple[int, list[str]]:
    """Steps of masked prediction behind ``checkpoint``: its own, plus those of the run it was started from
    (``init_from``, followed back while it resolves; a relative one is taken from where that run was launched).
    Returns the total and the chain of checkpoints."""
    import re

    from avspeech.model.checkpoint import load_config

    total, chain, ck = 0, [], Path(checkpoint).resolve()
    while ck.is_dir() and len(chain) < 20:
        m = re.fullmatch(r"step_(\d+)", ck.name)
        cfg = load_config(ck)
        if m is None or cfg.get("kind") != "pretrain":
            break
        total += int(m.group(1))
        chain.append(str(ck))
        train = cfg.get("train", {})
        nxt = train.get("init_from")
        if not nxt:
            break
        run = ck.parent.parent  # RUN/checkpoints/step_N, where RUN was train["out"] from the launch folder
        out = Path(train.get("out") or run.name)
        launch = run if out.is_absolute() else run.parents[len(out.parts) - 1]
        ck = Path(nxt) if Path(nxt).is_absolute() else launch / nxt
    return total, chain


def write_history(out: Path, checkpoint: str, steps: int, clusters: int, rows: list[dict]) -> list[dict]:
    """Add (or replace) this checkpoint's row in ``iteration2_purity_history.csv``; plot best-layer purity against
    pretraining steps with the MFCC level."""
    from avspeech.io.atomic import atomic_write_text

    path = out / "iteration2_purity_history.csv"
    keys = ["checkpoint", "pretrain_steps", "clusters", "mfcc_phone_purity", "best_layer", "best_phone_purity"]
    old = list(csv.DictReader(open(path))) if path.is_file() else []
    best = max(rows[1:], key=lambda r: r["phone_purity"])
    row = {"checkpoint": checkpoint, "pretrain_steps": steps, "clusters": clusters,
           "mfcc_phone_purity": round(rows[0]["phone_purity"], 4), "best_layer": best["layer"],
           "best_phone_purity": round(best["phone_purity"], 4)}
    hist = [r for r in old if not (r["checkpoint"] == checkpoint and int(r["clusters"]) == clusters)] + [row]
    hist.sort(key=lambda r: (int(r["clusters"]), int(r["pretrain_steps"])))
    buf = io.StringIO()
    w = csv.DictWriter(buf, keys)
    w.writeheader()
    w.writerows(hist)
    atomic_write_text(path, buf.getvalue())

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for i, k in enumerate(sorted({int(r["clusters"]) for r in hist})):
        hs = [r for r in hist if int(r["clusters"]) == k]
        x = [int(r["pretrain_steps"]) for r in hs]
        ax.plot(x, [float(r["best_phone_purity"]) for r in hs], "o-", color=f"C{i}", label=f"best layer, k = {k}")
        ax.plot(x, [float(r["mfcc_phone_purity"]) for r in hs], "--", color=f"C{i}", alpha=0.6, label=f"MFCC, k = {k}")
    ax.set_xlabel("pretraining steps (iteration 1)")
    ax.set_ylabel("held-out phone purity")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "iteration2_purity_history.png", dpi=110)
    plt.close(fig)
    return hist


def clip_bootstrap(a: list, b: list, phones: list, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95 % interval of phone purity(b) - purity(a), held-out clips resampled with replacement (paired)."""
    import numpy as np

    from avspeech.pretrain.cluster import purity

    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n):
        idx = rng.integers(0, len(phones), len(phones))
        diffs.append(purity([b[i] for i in idx], [phones[i] for i in idx])["phone_purity"]
                     - purity([a[i] for i in idx], [phones[i] for i in idx])["phone_purity"])
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(lo), float(hi)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="pretraining checkpoint (iteration 1)")
    p.add_argument("--train-manifest", required=True, help="k-means is fitted on these clips")
    p.add_argument("--heldout-manifest", required=True, help="purity is measured on these clips")
    p.add_argument("--clusters", type=int, default=100)
    p.add_argument("--layers", help="comma-separated encoder layers (default: all)")
    p.add_argument("--kmeans-seeds", type=int, default=1,
                   help="fit k-means with this many seeds per feature set: mean and spread, and a bootstrap over "
                        "held-out clips of best layer minus MFCC")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("AVSPEECH_THREADS", "1")))

    from avspeech.data.layout import read_manifest
    from avspeech.model.checkpoint import encoder_config_of, load_config
    from avspeech.pretrain import cluster as cl
    from avspeech.synth.splits import synthetic_phones

    t0 = time.time()
    u_tr, u_te = read_manifest(args.train_manifest), read_manifest(args.heldout_manifest)
    ph_te = synthetic_phones(args.heldout_manifest, u_te)
    if ph_te is None:
        raise SystemExit(f"{args.heldout_manifest}: no synthetic phone sidecars; purity needs a synthetic corpus")
    frames_te = [u.frames for u in u_te]
    n_layers = encoder_config_of(args.checkpoint).layers
    layers = [int(x) for x in args.layers.split(",")] if args.layers else list(range(1, n_layers + 1))

    rows, labels = [], []

    def score(name: str, layer: int, f_tr, f_te) -> None:
        """k-means per seed; the row holds seed 0's measures (and with several seeds, every seed's purity)."""
        per_seed = []
        for seed in range(args.kmeans_seeds):
            lab = cl.assign(cl.fit_kmeans(f_tr, args.clusters, seed=seed), f_te, frames_te)
            per_seed.append(cl.purity(lab, ph_te))
            if seed == 0:
                labels.append(lab)
        row = {"features": name, "layer": layer, **per_seed[0]}
        if args.kmeans_seeds > 1:
            row["phone_purity_seeds"] = [round(r["phone_purity"], 4) for r in per_seed]
        rows.append(row)
        print(row, flush=True)

    score("MFCC (iteration 1)", 0, cl.mfcc_features(u_tr), cl.mfcc_features(u_te))
    for layer in layers:
        score(f"layer {layer} (iteration 2)", layer, cl.encoder_features(args.checkpoint, args.train_manifest, layer),
              cl.encoder_features(args.checkpoint, args.heldout_manifest, layer))

    args.out.mkdir(parents=True, exist_ok=True)
    keys = ["features", "layer", "phone_purity", "cluster_purity", "pnmi", "frames", "clusters_used", "phones"]
    with open(args.out / "iteration2_purity.csv", "w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows({k: (round(r[k], 4) if isinstance(r[k], float) else r[k]) for k in keys} for r in rows)
    mfcc = rows[0]["phone_purity"]
    best = max(rows[1:], key=lambda r: r["phone_purity"])
    gap = clip_bootstrap(labels[0], labels[rows.index(best)], ph_te) if args.kmeans_seeds > 1 else None
    steps, chain = pretraining_steps(args.checkpoint)
    hist = write_history(args.out, str(args.checkpoint), steps, args.clusters, rows)
    train_cfg = load_config(args.checkpoint).get("train", {})
    cmd = (f"python benchmarks/iteration2_purity.py --checkpoint {args.checkpoint} --train-manifest "
           f"{args.train_manifest} --heldout-manifest {args.heldout_manifest} --clusters {args.clusters}")
    md = ["# Iteration-2 cluster targets vs MFCC (iteration 1)", "", f"`{cmd}`", "",
          f"Checkpoint: encoder `{train_cfg.get('model', '?')}`, pretrained {steps} steps in all"
          + (f" (continuing {' -> '.join(Path(c).parent.parent.name + '/' + Path(c).name for c in chain[::-1])})"
             if len(chain) > 1 else "") + " on "
          f"MFCC targets; k-means (k = {args.clusters}) fitted on {len(u_tr)} training clips, scored on "
          f"{len(u_te)} held-out clips ({rows[0]['frames']} frames; voices never trained on). "
          f"{round(time.time() - t0)} s on the CPU.", "",
          "| features | phone purity | cluster purity | PNMI | clusters used |", "|---|---:|---:|---:|---:|"]
    md += [f"| {r['features']} | {r['phone_purity']:.3f} | {r['cluster_purity']:.3f} | {r['pnmi']:.3f} | "
           f"{r['clusters_used']} |" for r in rows]
    md += ["", f"Best layer: {best['layer']}, phone purity {best['phone_purity']:.3f} vs MFCC {mfcc:.3f}: "
           f"iteration-2 clusters are {'purer' if best['phone_purity'] > mfcc else 'not purer'} than MFCC clusters.",
           ""]
    if gap is not None:
        import numpy as np

        seeds = {r["features"]: r["phone_purity_seeds"] for r in (rows[0], best)}
        md += [f"Over {args.kmeans_seeds} k-means seeds, phone purity " + "; ".join(
            f"{k}: {np.mean(v):.3f} +- {np.std(v):.3f} ({', '.join(f'{x:.3f}' for x in v)})" for k, v in seeds.items())
            + f". Layer {best['layer']} minus MFCC (seed 0), 95 % interval from resampling held-out clips: "
            f"{gap[0]:+.3f} to {gap[1]:+.3f}.", ""]
    md += ["By pretraining length (`iteration2_purity_history.csv`, `.png`):", "",
           "| pretraining steps | k | MFCC | best layer | its purity |", "|---:|---:|---:|---:|---:|"]
    md += [f"| {r['pretrain_steps']} | {r['clusters']} | {float(r['mfcc_phone_purity']):.3f} | {r['best_layer']} | "
           f"{float(r['best_phone_purity']):.3f} |" for r in hist] + [""]
    (args.out / "iteration2_purity.md").write_text("\n".join(md))
    (args.out / "iteration2_purity.json").write_text(json.dumps({"command": cmd, "rows": rows}, indent=1) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    names = ["MFCC"] + [f"layer {r['layer']}" for r in rows[1:]]
    for off, key, color in ((-0.2, "phone_purity", "C0"), (0.2, "pnmi", "C1")):
        ax.bar([i + off for i in range(len(rows))], [r[key] for r in rows], 0.4, color=color,
               label=key.replace("_", " "))
    ax.set_xticks(range(len(rows)), names)
    ax.set_ylim(0, 1)
    ax.axhline(mfcc, color="C7", lw=0.8, ls="--")
    ax.set_title(f"held-out clusters, k = {args.clusters}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "iteration2_purity.png", dpi=110)
    print("\n".join(md))


if __name__ == "__main__":
    from avspeech.errors import InputError

    try:
        main()
    except InputError as e:  # a missing or bad manifest / checkpoint: the file and the cause, no traceback
        raise SystemExit(f"error: {e}")
