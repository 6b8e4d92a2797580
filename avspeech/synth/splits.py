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


def builtin_split(root: str | Path, train: bool, clips: int) -> Path:
    """The built-in synthetic data of the heads' commands when no manifest is given: single-speaker clips with
    the training voices (seed 1000) or the held-out voices (seed 2000), synthesized and preprocessed into
    ``root`` (resumable); returns the manifest."""
    from avspeech.synth.corpus import SynthConfig

    return synth_and_preprocess(root, SynthConfig(speakers=1, seed=1000 if train else 2000,
                                                  voices=TRAIN_VOICES if train else HELDOUT_VOICES), clips)


def synthetic_speakers(manifest: str | Path, uids) -> list[dict | None]:
    """Per manifest id, the synthetic speaker (its sidecar entry: voice, text, phones, box...) whose face the
    track follows, when the manifest was made by ``avspeech preprocess`` from an ``avspeech synth`` corpus;
    None for an id whose clip has no synthetic sidecar. The track is matched to the speaker by box overlap; the
    entry gains ``track_start`` (the track's first frame in the clip) and ``fps``."""
    import json

    root = Path(manifest).parent
    sidecars: dict[str, dict | None] = {}
    out: list[dict | None] = []
    for uid in uids:
        clip = uid.partition("/")[0]
        if clip not in sidecars:
            rec_path = root / "clips" / f"{clip}.json"
            sc = None
            if rec_path.is_file():
                rec = json.loads(rec_path.read_text())
                sc_path = Path(rec["source"]).with_suffix(".json")
                if sc_path.is_file():
                    sc = json.loads(sc_path.read_text())
                    sc["_record"] = rec
            sidecars[clip] = sc if sc and "speakers" in sc else None
        sc = sidecars[clip]
        if sc is None:
            out.append(None)
            continue
        track = next((t for t in sc["_record"]["tracks"] if t["id"] == uid), None)
        if track is None:
            out.append(None)
            continue
        tj = json.loads((root / track["json"]).read_text())
        best = sc["speakers"][speaker_of_track(tj["boxes"], tj["start"], sc)]
        out.append({**best, "track_start": int(tj["start"]), "fps": sc["fps"]})
    return out


def speaker_of_track(boxes, start: int, sidecar: dict) -> int:
    """Index of the synthetic speaker (in ``sidecar["speakers"]``) whose face boxes overlap most with a face
    track's ``boxes`` (L, 4) from frame ``start``."""
    import numpy as np

    boxes = np.asarray(boxes, np.float64)
    frames = np.arange(start, start + len(boxes))
    return int(np.argmax([_iou(boxes, np.asarray(s["box"], np.float64)[frames]).mean() for s in sidecar["speakers"]]))


def _iou(a, b):
    import numpy as np

    ix = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = ix * iy
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)
