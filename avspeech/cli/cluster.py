"""``avspeech cluster``: k-means targets for masked-prediction pretraining."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", help="manifest TSV (avspeech preprocess output, or AV-HuBERT's)")
    p.add_argument("--out", required=True, help="label file to write (one line per utterance, 25 Hz)")
    p.add_argument("--clusters", type=int, default=100, help="k (default 100)")
    p.add_argument("--checkpoint", help="cluster this checkpoint's layer features (iteration >= 2); "
                   "without it, 39-dim MFCCs (iteration 1)")
    p.add_argument("--layer", type=int, help="encoder layer for --checkpoint (default: two thirds up)")
    p.add_argument("--fraction", type=float, default=1.0, help="fraction of frames k-means is fitted on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="device for --checkpoint features (default cpu)")


def run(args: argparse.Namespace) -> int:
    from avspeech.data.layout import read_manifest, write_labels
    from avspeech.io.atomic import atomic_write_json
    from avspeech.batch import report_failures
    from avspeech.errors import InputError
    from avspeech.pretrain import cluster as cl
    from avspeech.synth.splits import synthetic_phones

    utts = read_manifest(args.manifest)
    failures: list = []
    if args.checkpoint:
        from avspeech.model.checkpoint import encoder_config_of

        layers = encoder_config_of(args.checkpoint).layers
        layer = args.layer or cl.layer_default(layers)
        feats = cl.encoder_features(args.checkpoint, args.manifest, layer, args.device)
        source = f"{args.checkpoint} layer {layer}"
    else:
        feats = cl.mfcc_features(utts, failures)
        source = "mfcc39"
    if not any(f is not None and len(f) for f in feats):
        if failures:
            print(report_failures(failures, len(utts), "utterances"))
        raise InputError(cl.no_usable_utterance(utts, failures), args.manifest)
    km = cl.fit_kmeans(feats, args.clusters, args.fraction, args.seed)
    labels = cl.assign(km, feats, [u.frames for u in utts])
    write_labels(args.out, labels)
    report = {"source": source, "clusters": args.clusters, "utterances": len(utts),
              "without_features": sum(f is None for f in feats),
              "failures": [{"utterance": f.item, "cause": f.cause} for f in failures]}
    phones = synthetic_phones(args.manifest, utts)
    if phones is not None:
        report.update(cl.purity(labels, phones))
    atomic_write_json(Path(str(args.out) + ".json"), report)
    print(f"wrote {args.out}: {len(utts)} utterances, {args.clusters} clusters from {source}")
    if phones is not None:
        print(f"against synthetic phone labels: cluster purity {report['cluster_purity']:.3f}, phone purity "
              f"{report['phone_purity']:.3f}, PNMI {report['pnmi']:.3f}")
    if failures:
        print(report_failures(failures, len(utts), "utterances") + "\n(their frames are labelled -1 and ignored "
              "by the loss)")
        return 1
    return 0
