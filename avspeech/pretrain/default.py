"""The built-in default for pretraining: a synthetic single-speaker corpus, preprocessed and clustered.

Each step resumes: clips, preprocessed clips and labels already made are kept.
"""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def prepare_default_data(root: str | Path, clips: int = 24, clusters: int = 25, seed: int = 0,
                         workers: int | None = None) -> tuple[Path, Path]:
    """``root/synth`` (``avspeech synth``), ``root/prep`` (``avspeech preprocess``), ``root/prep/mfcc.km``
    (``avspeech cluster``, iteration 1); returns (manifest, labels)."""
    from avspeech.data.manifest import read_manifest, write_labels
    from avspeech.io.atomic import atomic_write_json
    from avspeech.pretrain import cluster as cl
    from avspeech.synth.corpus import SynthConfig
    from avspeech.synth.splits import synth_and_preprocess

    root = Path(root)
    manifest = synth_and_preprocess(root, SynthConfig(speakers=1, seed=seed), clips, workers=workers)
    labels = root / "prep" / "mfcc.km"
    utts = read_manifest(manifest)
    if not labels.is_file() or len(labels.read_text().splitlines()) != len(utts):
        feats = cl.mfcc_features(utts)
        km = cl.fit_kmeans(feats, clusters, seed=seed)
        labs = cl.assign(km, feats, [u.frames for u in utts])
        write_labels(labels, labs)
        phones = cl.synthetic_phones(manifest, utts)
        info = {"source": "mfcc39", "clusters": clusters}
        if phones is not None:
            info.update(cl.purity(labs, phones))
        atomic_write_json(Path(str(labels) + ".json"), info)
    return manifest, labels
