"""The built-in default for pretraining: a synthetic single-speaker corpus, preprocessed and clustered.

Each step resumes: clips, preprocessed clips and labels already made are kept.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from avspeech.errors import InputError

log = logging.getLogger(__name__)


def prepare_default_data(root: str | Path, clips: int = 24, clusters: int = 25, seed: int = 0,
                         workers: int | None = None) -> tuple[Path, Path]:
    """``root/synth`` (``avspeech synth``), ``root/prep`` (``avspeech preprocess``), ``root/prep/mfcc.km``
    (``avspeech cluster``, iteration 1); returns (manifest, labels)."""
    from avspeech.data.manifest import read_manifest, write_labels
    from avspeech.io.atomic import atomic_write_json
    from avspeech.preprocess.batch import preprocess
    from avspeech.pretrain import cluster as cl
    from avspeech.synth.corpus import SynthConfig, synthesize_corpus

    root = Path(root)
    workers = workers or min(os.cpu_count() or 1, 4)
    _, failures, _ = synthesize_corpus(root / "synth", SynthConfig(speakers=1, seed=seed), clips,
                                       workers=workers, resume=True)
    if failures:
        raise InputError(f"synthesis failed for {len(failures)} clips: {failures[0].item}: {failures[0].cause}")
    report = preprocess([root / "synth"], root / "prep", workers=workers)
    if report.failures:
        raise InputError(f"preprocessing failed for {len(report.failures)} clips "
                         f"({report.failures[0].item}: {report.failures[0].cause})", report.failures_path)
    manifest = report.manifest
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
