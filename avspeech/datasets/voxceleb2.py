"""VoxCeleb2: ``ROOT/{dev,test}/mp4/id<NNNNN>/<video>/<utt>.mp4``; no transcripts (the manifests feed
``avspeech cluster`` and ``avspeech pretrain``).

As AV-HuBERT's ``vox_prepare.py`` / ``vox_manifest.py``: ids ``{dev,test}/mp4/<id>/<video>/<utt>``, and

- ``all_data/train``: every clip of ``dev/`` and ``test/``;
- ``en_data/train`` (with ``en_ids``, e.g. AV-HuBERT's ``vox-en.id``): the clips listed there.
"""
from __future__ import annotations

from pathlib import Path

from avspeech.datasets.lrs3 import read_ids
from avspeech.datasets.prepare import Cut, DatasetPlan
from avspeech.errors import InputError
from avspeech.preprocess.discover import ClipInput

SPLITS = ("dev", "test")


def plan_voxceleb2(root: str | Path, en_ids: str | Path | None = None) -> DatasetPlan:
    root = Path(root)
    present = [s for s in SPLITS if (root / s / "mp4").is_dir()]
    if not present:
        raise InputError("not a VoxCeleb2 folder: neither dev/mp4/ nor test/mp4/ is in it", root)
    notes = [f"{s}/mp4/ is missing" for s in SPLITS if s not in present]
    clips, cuts = [], []
    for s in present:
        base = root / s / "mp4"
        for v in sorted(base.glob("*/*/*.mp4")):
            rel = v.relative_to(base)
            if any(p.startswith(".") for p in rel.parts) or not v.is_file():
                continue
            cid = f"{s}/mp4/{rel.with_suffix('').as_posix()}"
            clips.append(ClipInput(str(v.resolve()), cid))
            cuts.append(Cut(cid, cid, None))
    manifests = {"all_data/train": [c.id for c in cuts]}
    if en_ids is not None:
        wanted = read_ids(en_ids)
        manifests["en_data/train"] = [c.id for c in cuts if c.id in wanted]
        notes.append(f"English subset: {len(manifests['en_data/train'])} of the {len(wanted)} ids of {en_ids} found")
    return DatasetPlan("voxceleb2", clips, cuts, manifests, notes=notes, transcribed=False)
