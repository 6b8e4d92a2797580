"""Evidence that pretraining learns something, on the synthetic corpus (CPU, tiny model).

1. Iteration 1: pretrain a ``tiny`` model on MFCC cluster targets; held-out masked accuracy against the
   majority-cluster rate.
2. Linear probe of phone identity (logistic regression, scikit-learn) on frozen encoder features of the
   pretrained model vs the same architecture at random init, trained on training clips, scored on held-out clips.
3. Iteration 2: k-means on the pretrained model's layer features; phone purity against iteration 1's MFCC clusters.

Writes ``benchmarks/results/pretrain_synthetic.json``, ``.md`` and ``.png`` (loss curve, probe, purity).

    python benchmarks/pretrain_synthetic.py --clips 40 --steps 400
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("AVSPEECH_ATTENTION", "reference")


@torch.no_grad()
def layer_features(encoder, ds, layer=None, audio=True):
    """Final-layer (or ``layer``) features per utterance, with both modalities or lips only."""
    from avspeech.data.dataset import collate

    encoder.eval()
    out = []
    for i in range(len(ds)):
        b = collate([ds[i]])
        has_audio = b["has_audio"] if audio else torch.zeros(1, dtype=torch.bool)
        f = encoder(b["lips"], b["audio"] if audio else None, b["lengths"], has_audio=has_audio,
                    output_layer=layer)
        out.append(f[0, : int(b["lengths"][0])].numpy())
    return out


@torch.no_grad()
def masked_accuracy(model, ds, labels, seed=0):
    from avspeech.data.dataset import collate

    model.eval()
    hit = n = 0
    counts = np.zeros(model.cluster_emb.shape[0])
    for i in range(len(ds)):
        b = collate([ds[i]])
        g = torch.Generator().manual_seed(seed + i)
        ones = torch.ones(1, dtype=torch.bool)
        res = model(b["lips"], b["audio"], b["lengths"], b["targets"], g, has_audio=ones, has_video=ones)
        sel = res.masked & res.valid
        hit += int((res.logits.argmax(-1)[sel] == b["targets"][sel]).sum())
        n += int(sel.sum())
        counts += np.bincount(b["targets"][sel].numpy(), minlength=len(counts))
    return hit / max(n, 1), counts.max() / max(counts.sum(), 1)


def probe(train_x, train_y, test_x, test_y, seed=0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(np.concatenate(train_x))
    clf = LogisticRegression(max_iter=2000, random_state=seed)
    clf.fit(sc.transform(np.concatenate(train_x)), np.concatenate(train_y))
    return float(clf.score(sc.transform(np.concatenate(test_x)), np.concatenate(test_y)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="bench_pretrain_work", help="scratch folder (resumable)")
    p.add_argument("--clips", type=int, default=80, help="training clips (voices of TRAIN_VOICES)")
    p.add_argument("--heldout-clips", type=int, default=40, help="held-out clips (HELDOUT_VOICES, another seed)")
    p.add_argument("--train-root", help="synth+preprocess folder of the training split (default WORK/train)")
    p.add_argument("--heldout-root", help="synth+preprocess folder of the held-out split (default WORK/heldout)")
    p.add_argument("--run", help="pretraining run folder (default WORK/iter1; resumes)")
    p.add_argument("--clusters", type=int, default=25)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = p.parse_args()

    from avspeech.data.dataset import AVDataset
    from avspeech.data.layout import read_manifest, write_labels
    from avspeech.model.checkpoint import load_encoder, load_into, load_weights
    from avspeech.model.config import preset
    from avspeech.model.encoder import AVEncoder
    from avspeech.plots import training_curves
    from avspeech.pretrain import cluster as cl
    from avspeech.pretrain.train import TrainConfig, build_model, train
    from avspeech.synth.corpus import SynthConfig
    from avspeech.synth.splits import HELDOUT_VOICES, TRAIN_VOICES, synth_and_preprocess, synthetic_phones

    t0 = time.time()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    # training and held-out splits: held-out clips have voices, sentences and face placements never trained on
    m_tr = synth_and_preprocess(args.train_root or work / "train",
                                SynthConfig(speakers=1, seed=1000, voices=TRAIN_VOICES), args.clips)
    m_te = synth_and_preprocess(args.heldout_root or work / "heldout",
                                SynthConfig(speakers=1, seed=2000, voices=HELDOUT_VOICES), args.heldout_clips)
    u_tr, u_te = read_manifest(m_tr)[: args.clips], read_manifest(m_te)[: args.heldout_clips]
    m_tr, m_te = _subset(m_tr, len(u_tr)), _subset(m_te, len(u_te))
    ph_tr, ph_te = synthetic_phones(m_tr, u_tr), synthetic_phones(m_te, u_te)

    # iteration 1 targets: MFCC k-means fitted on the training split, applied to both
    mf_tr, mf_te = cl.mfcc_features(u_tr), cl.mfcc_features(u_te)
    km1 = cl.fit_kmeans(mf_tr, args.clusters, seed=0)
    lab_tr, lab_te = cl.assign(km1, mf_tr, [u.frames for u in u_tr]), cl.assign(km1, mf_te, [u.frames for u in u_te])
    l_tr, l_te = work / "train.km", work / "heldout.km"
    write_labels(l_tr, lab_tr)
    write_labels(l_te, lab_te)

    run = Path(args.run) if args.run else work / "iter1"
    cfg = TrainConfig(manifest=str(m_tr), labels=str(l_tr), out=str(run), steps=args.steps, lr=args.lr,
                      warmup=max(1, args.steps // 10), save_every=max(50, args.steps // 10), log_every=10)
    summary = train(cfg)
    ck = summary["checkpoint"]
    training_curves(work / "iter1_curves.png", run / "log.csv", "tiny model, iteration 1 (MFCC targets)")

    # 1. masked accuracy vs the majority cluster, held-out clips, both modalities present
    model, _ = build_model(cfg, args.clusters)
    load_into(model, load_weights(ck), ck)
    acc, majority = masked_accuracy(model, AVDataset(m_te, l_te), l_te)

    # 2. linear probe on phones: pretrained vs random init, final-layer features
    ds_tr, ds_te = AVDataset(m_tr), AVDataset(m_te)
    enc = load_encoder(ck)
    torch.manual_seed(0)
    rand = AVEncoder(preset("tiny"))
    probe_pre = probe(layer_features(enc, ds_tr), ph_tr, layer_features(enc, ds_te), ph_te)
    probe_rand = probe(layer_features(rand, ds_tr), ph_tr, layer_features(rand, ds_te), ph_te)
    # lips only: phone identity has to come from learned visual features
    lips_pre = probe(layer_features(enc, ds_tr, audio=False), ph_tr, layer_features(enc, ds_te, audio=False), ph_te)
    lips_rand = probe(layer_features(rand, ds_tr, audio=False), ph_tr, layer_features(rand, ds_te, audio=False),
                      ph_te)

    # 3. iteration-2 clusters: k-means fitted on the training split's layer features; purity of both iterations'
    # clusters on the held-out split (HuBERT's phone purity, cluster purity, PNMI)
    layer = cl.layer_default(enc.cfg.layers)
    f2_tr, f2_te = cl.encoder_features(ck, m_tr, layer), cl.encoder_features(ck, m_te, layer)
    km2 = cl.fit_kmeans(f2_tr, args.clusters, seed=0)
    lab2 = cl.assign(km2, f2_te, [u.frames for u in u_te])
    pur1, pur2 = cl.purity(lab_te, ph_te), cl.purity(lab2, ph_te)
    tr, te = u_tr, u_te

    res = {"clips": args.clips, "heldout_clips": args.heldout_clips, "train_utterances": len(tr), "heldout_utterances": len(te),
           "clusters": args.clusters, "steps": args.steps, "final_train_loss": summary["last"].get("loss"),
           "heldout_masked_accuracy": acc, "majority_cluster_rate": majority,
           "probe_phone_accuracy_pretrained": probe_pre, "probe_phone_accuracy_random_init": probe_rand,
           "probe_lips_only_pretrained": lips_pre, "probe_lips_only_random_init": lips_rand,
           "iter1_mfcc": pur1, "iter2_layer": {"layer": layer, **pur2}, "seconds": round(time.time() - t0, 1),
           "command": f"python benchmarks/pretrain_synthetic.py --clips {args.clips} --heldout-clips {args.heldout_clips} "
                      f"--steps {args.steps} --lr {args.lr} --clusters {args.clusters}"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pretrain_synthetic.json").write_text(json.dumps(res, indent=1) + "\n")
    md = ["# Pretraining on the synthetic corpus (tiny model, CPU)", "", f"`{res['command']}`", "",
          "| measure | value |", "|---|---|",
          f"| held-out masked accuracy (AV) | {acc:.3f} |", f"| majority-cluster rate | {majority:.3f} |",
          f"| phone probe (audio + lips), pretrained | {probe_pre:.3f} |",
          f"| phone probe (audio + lips), random init | {probe_rand:.3f} |",
          f"| phone probe (lips only), pretrained | {lips_pre:.3f} |",
          f"| phone probe (lips only), random init | {lips_rand:.3f} |",
          f"| phone purity, iteration 1 (MFCC) | {pur1['phone_purity']:.3f} |",
          f"| phone purity, iteration 2 (layer {layer}) | {pur2['phone_purity']:.3f} |",
          f"| cluster purity, iteration 1 / 2 | {pur1['cluster_purity']:.3f} / {pur2['cluster_purity']:.3f} |",
          f"| PNMI, iteration 1 / 2 | {pur1['pnmi']:.3f} / {pur2['pnmi']:.3f} |", ""]
    (out / "pretrain_synthetic.md").write_text("\n".join(md))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.image as mpimg

    fig, ax = plt.subplots(1, 3, figsize=(14, 3.6), gridspec_kw={"width_ratios": [2.2, 1, 1]})
    ax[0].imshow(mpimg.imread(work / "iter1_curves.png"))
    ax[0].set_axis_off()
    ax[1].bar(["masked\nacc", "majority", "AV probe\npre", "AV probe\nrand", "lips probe\npre",
               "lips probe\nrand"], [acc, majority, probe_pre, probe_rand, lips_pre, lips_rand],
              color=["C0", "C7", "C2", "C3", "C2", "C3"])
    ax[1].set_ylim(0, 1)
    ax[1].tick_params(axis="x", labelsize=7)
    ax[2].bar(["MFCC (it. 1)", f"layer {layer} (it. 2)"], [pur1["phone_purity"], pur2["phone_purity"]],
              color=["C7", "C0"], label="phone purity")
    ax[2].set_ylim(0, 1)
    ax[2].set_title("phone purity", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "pretrain_synthetic.png", dpi=100)
    print(json.dumps(res, indent=1))


def _subset(manifest: Path, n: int) -> Path:
    """The manifest's root line and first ``n`` rows, written next to it (where the clip records are)."""
    lines = Path(manifest).read_text().splitlines()
    if n == len(lines) - 1:
        return Path(manifest)
    dest = Path(manifest).with_name(f"first{n}.tsv")
    dest.write_text("\n".join(lines[: n + 1]) + "\n")
    return dest


if __name__ == "__main__":
    main()
