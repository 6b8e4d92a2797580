"""Train / held-out splits of the synthetic corpus, and "synthesize then preprocess" in one resumable call.

Held-out sets for the heads use voices (espeak-ng variants ``m3`` and ``f3``) never heard in training, another
seed (so other sentences, face placements, scales, shades and motions), and are preprocessed by the same
pipeline users run on real video.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from avspeech.errors import InputError
from avspeech.synth.speech import DEFAULT_VOICES

log = logging.getLogger(__name__)

HELDOUT_VOICES: tuple[str, ...] = ("en+m3", "en-us+m3", "en+f3")
TRAIN_VOICES: tuple[str, ...] = tuple(v for v in DEFAULT_VOICES if v not in HELDOUT_VOICES)


def synth_and_preprocess(root: str | Path, config, clips: int, workers: int | None = None) -> Path:
    """``root/synth`` (``avspeech synth`` with ``config``) then ``root/prep`` (``avspeech preprocess``);
    returns the manifest. Both steps resume: what is already made is kept."""
    from avspeech.preprocess.batch import preprocess
    from avspeech.synth.corpus import synthesize_corpus

    root = Path(root)
    workers = workers or min(os.cpu_count() or 1, 4)
    _, failures, _ = synthesize_corpus(root / "synth", config, clips, workers=workers, resume=True)
    if failures:
        raise InputError(f"synthesis failed for {len(failures)} clips: {failures[0].item}: {failures[0].cause}")
    report = preprocess([root / "synth"], root / "prep", workers=workers)
    if report.failures:
        raise InputError(f"preprocessing failed for {len(report.failures)} clips "
                         f"({report.failures[0].item}: {report.failures[0].cause})", report.failures_path)
    return Path(report.manifest)
