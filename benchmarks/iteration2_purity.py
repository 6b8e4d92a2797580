"""Iteration-2 targets against iteration 1: phone purity of k-means clusters of a pretrained encoder's layer
features vs of MFCCs, on held-out synthetic clips.

Both k-means models (scikit-learn MiniBatchKMeans, the same ``k``) are fitted on the training split's frames
(MFCCs at 100 Hz for iteration 1, as ``avspeech cluster`` makes them; a layer's features at 25 Hz for iteration
2) and applied to the held-out split (voices, sentences and faces never trained on), where HuBERT's measures are
computed against the synthetic phone labels: phone purity E_z[max_y p(y|z)], cluster purity and PNMI.

Writes ``benchmarks/results/iteration2_purity.{csv,md,png}``.

    python benchmarks/iteration2_purity.py --checkpoint RUN/checkpoints/latest \\
        --train-manifest TRAIN/prep/manifest.tsv --heldout-manifest HELDOUT/prep/manifest.tsv --clusters 100
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import torch

os.environ.setdefault("AVSPEECH_ATTENTION", "reference")
RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="pretraining checkpoint (iteration 1)")
    p.add_argument("--train-manifest", required=True, help="k-means is fitted on these clips")
    p.add_argument("--heldout-manifest", required=True, help="purity is measured on these clips")
    p.add_argument("--clusters", type=int, default=100)
    p.add_argument("--layers", help="comma-separated encoder layers (default: all)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("AVSPEECH_THREADS", "1")))

    from avspeech.data.manifest import read_manifest
    from avspeech.model.checkpoint import encoder_config_of, load_config
    from avspeech.pretrain import cluster as cl

    t0 = time.time()
    u_tr, u_te = read_manifest(args.train_manifest), read_manifest(args.heldout_manifest)
    ph_te = cl.synthetic_phones(args.heldout_manifest, u_te)
    if ph_te is None:
        raise SystemExit(f"{args.heldout_manifest}: no synthetic phone sidecars; purity needs a synthetic corpus")
    frames_te = [u.frames for u in u_te]
    n_layers = encoder_config_of(args.checkpoint).layers
    layers = [int(x) for x in args.layers.split(",")] if args.layers else list(range(1, n_layers + 1))

    rows = []
    km = cl.fit_kmeans(cl.mfcc_features(u_tr), args.clusters, seed=0)
    rows.append({"features": "MFCC (iteration 1)", "layer": 0,
                 **cl.purity(cl.assign(km, cl.mfcc_features(u_te), frames_te), ph_te)})
    for layer in layers:
        km = cl.fit_kmeans(cl.encoder_features(args.checkpoint, args.train_manifest, layer), args.clusters, seed=0)
        lab = cl.assign(km, cl.encoder_features(args.checkpoint, args.heldout_manifest, layer), frames_te)
        rows.append({"features": f"layer {layer} (iteration 2)", "layer": layer, **cl.purity(lab, ph_te)})
        print(rows[-1], flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    keys = ["features", "layer", "phone_purity", "cluster_purity", "pnmi", "frames", "clusters_used", "phones"]
    with open(args.out / "iteration2_purity.csv", "w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows({k: (round(r[k], 4) if isinstance(r[k], float) else r[k]) for k in keys} for r in rows)
    mfcc = rows[0]["phone_purity"]
    best = max(rows[1:], key=lambda r: r["phone_purity"])
    train_cfg = load_config(args.checkpoint).get("train", {})
    cmd = (f"python benchmarks/iteration2_purity.py --checkpoint {args.checkpoint} --train-manifest "
           f"{args.train_manifest} --heldout-manifest {args.heldout_manifest} --clusters {args.clusters}")
    md = ["# Iteration-2 cluster targets vs MFCC (iteration 1)", "", f"`{cmd}`", "",
          f"Checkpoint: encoder `{train_cfg.get('model', '?')}`, pretrained {train_cfg.get('steps', '?')} steps on "
          f"MFCC targets; k-means (k = {args.clusters}) fitted on {len(u_tr)} training clips, scored on "
          f"{len(u_te)} held-out clips ({rows[0]['frames']} frames; voices never trained on). "
          f"{round(time.time() - t0)} s on the CPU.", "",
          "| features | phone purity | cluster purity | PNMI | clusters used |", "|---|---:|---:|---:|---:|"]
    md += [f"| {r['features']} | {r['phone_purity']:.3f} | {r['cluster_purity']:.3f} | {r['pnmi']:.3f} | "
           f"{r['clusters_used']} |" for r in rows]
    md += ["", f"Best layer: {best['layer']}, phone purity {best['phone_purity']:.3f} vs MFCC {mfcc:.3f}: "
           f"iteration-2 clusters are {'purer' if best['phone_purity'] > mfcc else 'not purer'} than MFCC clusters.",
           ""]
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
