"""The synthetic corpus as datasets: train / held-out splits, "synthesize then preprocess" in one resumable
call, the commands' built-in data, and the ground truth of preprocessed synthetic tracks.

Held-out sets for the heads use voices (espeak-ng variants ``m3`` and ``f3``) never heard in training, another
seed (so other sentences, face placements, scales, shades and motions), and are preprocessed by the same
pipeline users run on real video.

Ground truth (for benchmarks, the demo, tests and the built-in defaults; the heads never import this module): a
preprocessed track is matched to the synthetic speaker whose face it follows (:func:`synthetic_speakers`), which
gives its sentence (:func:`write_synthetic_labels`, a ``.wrd``) and its phones per frame
(:func:`synthetic_phones`). Preprocessed files are found through :mod:`avspeech.data.layout`.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from avspeech.data import layout
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


def prepare_default_data(root: str | Path, clips: int = 24, clusters: int = 25, seed: int = 0,
                         workers: int | None = None) -> tuple[Path, Path]:
    """The built-in data of ``avspeech pretrain`` (and the demo): ``root/synth`` (``avspeech synth``, single
    speaker, ``seed``), ``root/prep`` (``avspeech preprocess``), ``root/prep/mfcc.km`` (``avspeech cluster``,
    iteration 1, with the clusters' purity against the synthetic phones in ``mfcc.km.json``); returns
    (manifest, labels). Each step resumes: clips, preprocessed clips and labels already made are kept."""
    from avspeech.io.atomic import atomic_write_json
    from avspeech.pretrain import cluster as cl
    from avspeech.synth.corpus import SynthConfig

    root = Path(root)
    manifest = synth_and_preprocess(root, SynthConfig(speakers=1, seed=seed), clips, workers=workers)
    labels = root / "prep" / "mfcc.km"
    utts = layout.read_manifest(manifest)
    if not labels.is_file() or len(labels.read_text().splitlines()) != len(utts):
        feats = cl.mfcc_features(utts)
        km = cl.fit_kmeans(feats, clusters, seed=seed)
        labs = cl.assign(km, feats, [u.frames for u in utts])
        layout.write_labels(labels, labs)
        phones = synthetic_phones(manifest, utts)
        info = {"source": "mfcc39", "clusters": clusters}
        if phones is not None:
            info.update(cl.purity(labs, phones))
        atomic_write_json(Path(str(labels) + ".json"), info)
    return manifest, labels


# ---- ground truth of preprocessed synthetic tracks -------------------------------------------------------------

def sidecar_path(video: str | Path) -> Path:
    """The ground-truth sidecar of a synthetic clip (``clip_0000.mp4`` -> ``clip_0000.json``)."""
    return Path(video).with_suffix(".json")


def synthetic_speakers(manifest: str | Path, uids) -> list[dict | None]:
    """Per manifest id, the synthetic speaker (its sidecar entry: voice, text, phones, box...) whose face the
    track follows, when the manifest was made by ``avspeech preprocess`` from an ``avspeech synth`` corpus;
    None for an id whose clip has no synthetic sidecar. The track is matched to the speaker by box overlap; the
    entry gains ``track_start`` (the track's first frame in the clip) and ``fps``."""
    root = Path(manifest).parent
    sidecars: dict[str, dict | None] = {}
    out: list[dict | None] = []
    for uid in uids:
        clip = layout.clip_of(uid)
        if clip not in sidecars:
            rec = layout.load_record(root, clip)
            sc = None
            if rec is not None:
                sc_path = sidecar_path(rec["source"])
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
        tj = layout.read_track_record(root, track["json"])
        best = sc["speakers"][speaker_of_track(tj["boxes"], tj["start"], sc)]
        out.append({**best, "track_start": int(tj["start"]), "fps": sc["fps"]})
    return out


def speaker_of_track(boxes, start: int, sidecar: dict) -> int:
    """Index of the synthetic speaker (in ``sidecar["speakers"]``) whose face boxes overlap most with a face
    track's ``boxes`` (L, 4) from frame ``start``."""
    boxes = np.asarray(boxes, np.float64)
    frames = np.arange(start, start + len(boxes))
    return int(np.argmax([_iou(boxes, np.asarray(s["box"], np.float64)[frames]).mean() for s in sidecar["speakers"]]))


def _iou(a, b):
    ix = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = ix * iy
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def write_synthetic_labels(manifest: str | Path, out: str | Path | None = None) -> Path:
    """The ``.wrd`` of a manifest preprocessed from an ``avspeech synth`` corpus (each track's speaker's
    sentence; default: beside the manifest)."""
    utts = layout.read_manifest(manifest)
    speakers = synthetic_speakers(manifest, [u.id for u in utts])
    missing = [u.id for u, s in zip(utts, speakers) if s is None]
    if missing:
        raise InputError(f"{len(missing)} utterances have no synthetic sidecar (e.g. {missing[:3]}); give "
                         "transcripts with --labels", manifest)
    out = Path(out) if out else layout.default_labels_path(manifest)
    layout.write_transcripts(out, [s["text"] for s in speakers])
    return out


def synthetic_phones(manifest: str | Path, utts: Sequence[layout.Utterance]) -> list[np.ndarray] | None:
    """Per utterance, the phone (stress marks stripped; "sil" between words) at each 25 Hz frame's centre,
    when the manifest was made by ``avspeech preprocess`` from an ``avspeech synth`` corpus; else None."""
    speakers = synthetic_speakers(manifest, [u.id for u in utts])
    if any(s is None for s in speakers):
        return None
    out = []
    for u, spk in zip(utts, speakers):
        times = (np.arange(spk["track_start"], spk["track_start"] + u.frames) + 0.5) / spk["fps"]
        lab = np.array(["sil"] * u.frames, dtype=object)
        for p in spk["phones"]:
            name = p["phone"].lstrip("',%=")
            if name.startswith("_"):
                continue
            lab[(times >= p["start"]) & (times < p["end"])] = name
        out.append(lab)
    return out
