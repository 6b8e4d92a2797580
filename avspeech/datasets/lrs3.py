"""LRS3 (TED talks): ``ROOT/{pretrain,trainval,test}/<speaker>/<utt>.mp4`` beside ``<utt>.txt``.

The manifests are AV-HuBERT's (``avhubert/preparation/lrs3_manifest.py``), with its ids:

- ``30h_data/train``: ``trainval/`` less the validation utterances;
- ``433h_data/train``: the same plus ``pretrain/`` cut into sentences (``short-pretrain/...``);
- ``{30h,433h}_data/valid``: the validation utterances, taken from ``trainval/``: the ids listed in
  ``valid_ids`` (AV-HuBERT's is ``avhubert/preparation/data/lrs3-valid.id``, 1200 ids; pass it for results
  comparable with theirs), or by default the 1200 ``trainval`` ids with the smallest SHA-1 (at most one in 20 of
  them, at least one);
- ``{30h,433h}_data/test``: ``test/``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from avspeech.datasets.lrs import collect, speaker_videos
from avspeech.datasets.prepare import DatasetPlan
from avspeech.datasets.transcripts import MAX_DURATION, MIN_GAP
from avspeech.errors import InputError

SPLITS = ("pretrain", "trainval", "test")
VALID_COUNT = 1200


def read_ids(path: str | Path) -> set[str]:
    """One id per line (blank lines and ``#`` comments skipped)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the id list ({e})", path) from e
    return {ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")}


def default_valid(trainval: list[str], count: int = VALID_COUNT) -> set[str]:
    """``count`` ids with the smallest SHA-1 (at most len/20, at least 1 when there are two or more)."""
    k = min(count, max(1, len(trainval) // 20)) if len(trainval) >= 2 else 0
    return set(sorted(trainval, key=lambda i: hashlib.sha1(i.encode()).hexdigest())[:k])


def plan_lrs3(root: str | Path, valid_ids: str | Path | None = None, max_duration: float = MAX_DURATION,
              min_gap: float = MIN_GAP) -> DatasetPlan:
    root = Path(root)
    present = [s for s in SPLITS if (root / s).is_dir()]
    if not present:
        raise InputError(f"not an LRS3 folder: none of {', '.join(s + '/' for s in SPLITS)} is in it", root)
    notes = [f"{s}/ is missing: its manifests are empty" for s in SPLITS if s not in present]
    items = [(s, v, s == "pretrain") for s in present for v in speaker_videos(root / s)]
    clips, cuts, failures = collect(items, max_duration, min_gap)
    by_split = {s: [c.id for c in cuts if c.clip.startswith(s + "/")] for s in SPLITS}
    trainval = by_split["trainval"]
    if valid_ids is not None:
        wanted = read_ids(valid_ids)
        valid = wanted & set(trainval)
        notes.append(f"validation: {len(valid)} of the {len(wanted)} ids of {valid_ids} are in trainval/")
    else:
        valid = default_valid(trainval)
        notes.append(f"validation: {len(valid)} trainval/ utterances chosen by id hash (pass --valid-ids "
                     "AV-HuBERT's lrs3-valid.id for their split)")
    train30 = [i for i in trainval if i not in valid]
    manifests = {}
    for name, train in (("30h_data", train30), ("433h_data", train30 + by_split["pretrain"])):
        manifests[f"{name}/train"] = train
        manifests[f"{name}/valid"] = sorted(valid)
        manifests[f"{name}/test"] = by_split["test"]
    return DatasetPlan("lrs3", clips, cuts, manifests, failures, notes)
