"""LRS2 (BBC): ``ROOT/{main,pretrain}/<video>/<utt>.mp4`` beside ``<utt>.txt``, and the split lists
``train.txt``, ``val.txt``, ``test.txt`` (and ``pretrain.txt``) in ROOT or its parent (the download puts them
beside ``mvlrs_v1/``), one ``<video>/<utt>`` per line, possibly followed by flags (only the first field counts).

AV-HuBERT has no LRS2 recipe; the manifests follow its LRS3 one (same ids, normalisation and cutting):

- ``main_data/{train,valid,test}``: ``main/`` per ``train.txt``, ``val.txt``, ``test.txt``;
- ``pretrain_data/{train,valid,test}``: the same with ``pretrain/`` (per ``pretrain.txt``, or every clip of
  ``pretrain/`` without it) cut into sentences added to ``train``.
"""
from __future__ import annotations

from pathlib import Path

from avspeech.datasets.lrs import collect, speaker_videos
from avspeech.datasets.prepare import DatasetPlan
from avspeech.datasets.transcripts import MAX_DURATION, MIN_GAP
from avspeech.errors import InputError

LISTS = {"train": "train.txt", "valid": "val.txt", "test": "test.txt"}
PRETRAIN_LIST = "pretrain.txt"


def find_list(root: Path, name: str) -> Path | None:
    return next((p for p in (root / name, root.parent / name) if p.is_file()), None)


def read_list(path: Path) -> list[str]:
    """The ``<video>/<utt>`` of each line (first field; blank lines skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the split list ({e})", path) from e
    return [ln.split()[0] for ln in lines if ln.strip()]


def plan_lrs2(root: str | Path, max_duration: float = MAX_DURATION, min_gap: float = MIN_GAP) -> DatasetPlan:
    root = Path(root)
    if not (root / "main").is_dir():
        raise InputError("not an LRS2 folder: main/ is not in it (give the folder holding main/ and pretrain/, "
                         "mvlrs_v1/ in the download)", root)
    lists = {}
    for split, name in LISTS.items():
        path = find_list(root, name)
        if path is None:
            raise InputError(f"the split list {name} is neither in the folder nor beside it", root)
        lists[split] = read_list(path)
    notes = []
    items = [("main", root / "main" / f"{u}.mp4", False) for split in LISTS for u in lists[split]]
    pre_list = find_list(root, PRETRAIN_LIST)
    if pre_list is not None:
        items += [("pretrain", root / "pretrain" / f"{u}.mp4", True) for u in read_list(pre_list)]
    elif (root / "pretrain").is_dir():
        items += [("pretrain", v, True) for v in speaker_videos(root / "pretrain")]
        notes.append(f"no {PRETRAIN_LIST}: every clip of pretrain/ is used")
    else:
        notes.append("pretrain/ is missing: pretrain_data/train holds main/'s training clips only")
    clips, cuts, failures = collect(items, max_duration, min_gap)
    ids = {c.id for c in cuts}
    main = {split: [f"main/{u}" for u in lists[split] if f"main/{u}" in ids] for split in LISTS}
    pretrain = [c.id for c in cuts if c.clip.startswith("pretrain/")]
    manifests = {}
    for name, train in (("main_data", main["train"]), ("pretrain_data", main["train"] + pretrain)):
        manifests[f"{name}/train"] = train
        manifests[f"{name}/valid"] = main["valid"]
        manifests[f"{name}/test"] = main["test"]
    return DatasetPlan("lrs2", clips, cuts, manifests, failures, notes)
