"""Fake LRS3, LRS2 and VoxCeleb2 folders made of synthetic clips, in the real datasets' file and folder names.

Each clip is an ``avspeech synth`` clip (one speaker, 224x224 like LRS3's face crops); its ``.txt`` is written in
the datasets' format (``Text:`` upper case, ``Conf:``, the ``WORD START END ASDSCORE`` table, two decimals) from
the synthetic ground truth (the sidecar's words and their times). A long ``pretrain`` clip is one synthetic clip
played twice in a row (frames and audio), its word table the sentence twice, shifted by the clip's
duration each time: the pauses between the copies (the clip's silent tail and lead-in) are the only gaps between
words longer than 0.4 s, so AV-HuBERT's rule cuts it into the two copies. Every tree has one bad clip (bytes
that are not a video). The builders return what the tree holds: per utterance its expected id, transcript and
frame count, computed from the ground truth, never by the code under test.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from avspeech.datasets.transcripts import Transcript, Word, format_transcript
from avspeech.synth.corpus import SynthConfig, clip_id, synthesize_corpus

FPS = 25
CLIPS = 3  # synthetic clips made once, copied (under other names) into every tree
SYNTH = SynthConfig(speakers=1, seed=11, width=224, height=224)
PRETRAIN_COPIES = 2
MAX_DURATION = 3.0  # the cutting threshold the tests use (the looped clip is about 4 s; AV-HuBERT's is 15 s)
BAD_BYTES = b"this is not an mp4 file\n" * 40


def make_sources(out: Path) -> list[dict]:
    """Synthesize the clips; return their sidecars (with ``path`` added)."""
    _, failures, _ = synthesize_corpus(out, SYNTH, CLIPS, workers=2, resume=True)
    assert not failures, failures
    sidecars = []
    for i in range(CLIPS):
        sc = json.loads((out / f"{clip_id(i)}.json").read_text())
        sc["path"] = out / sc["video"]
        sidecars.append(sc)
    return sidecars


def words_of(sc: dict, offset: float = 0.0) -> list[Word]:
    """The speaker's words with times as a ``.txt`` holds them (two decimals), shifted by ``offset`` s."""
    return [Word(w["word"].upper(), round(w["start"] + offset, 2), round(w["end"] + offset, 2), 5.0)
            for w in sc["speakers"][0]["words"]]


def write_txt(path: Path, sc: dict, table: bool = True) -> None:
    words = words_of(sc)
    tr = Transcript(sc["speakers"][0]["text"].upper(), "3", tuple(words) if table else ())
    path.write_text(format_transcript(tr))


def _decode_rgb(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@dataclass
class Expected:
    text: str | None  # the .wrd line
    frames: int


@dataclass
class FakeTree:
    root: Path
    utterances: dict[str, Expected] = field(default_factory=dict)  # manifest id -> expected row
    manifests: dict[str, list[str]] = field(default_factory=dict)  # manifest name -> sorted ids
    bad: str = ""  # the bad clip's path
    lists: dict[str, Path] = field(default_factory=dict)  # id lists to pass (valid ids, English ids)


def write_looped(path: Path, sc: dict, copies: int = PRETRAIN_COPIES) -> tuple[list[Word], int]:
    """The clip ``copies`` times in a row (mp4 with audio) and its ``.txt``; returns (words, frames)."""
    from avspeech.io.media import read_wav, write_video

    frames = _decode_rgb(sc["path"])
    n = len(frames)
    assert n == sc["num_frames"], (n, sc["num_frames"])
    mix = read_wav(sc["path"].with_name(sc["mixture_wav"]))[0]
    write_video(path, np.concatenate([frames] * copies), FPS, np.concatenate([mix] * copies), crf=18)
    words = [w for k in range(copies) for w in words_of(sc, k * n / FPS)]
    gaps = np.array([b.start - a.end for a, b in zip(words, words[1:])])
    per = len(words) // copies
    between = gaps[per - 1::per]
    assert between.min() > 0.45 and np.delete(gaps, np.arange(per - 1, len(gaps), per)).max() < 0.35, gaps
    text = " ".join(w.word for w in words)
    path.with_suffix(".txt").write_text(format_transcript(Transcript(text, "4", tuple(words))))
    return words, n * copies


def expected_pieces(words: list[Word], copies: int, frames: int) -> list[tuple[str, int]]:
    """The sentences of a looped clip (the copies) and their frame counts: boundaries halfway between the last
    word of one copy and the first of the next (three decimals), frames ``int(t * 25)``."""
    per = len(words) // copies
    bounds = [0] + [int(round((words[k * per - 1].end + words[k * per].start) / 2, 3) * FPS)
                    for k in range(1, copies)] + [frames]
    texts = [" ".join(w.word for w in words[k * per:(k + 1) * per]).lower() for k in range(copies)]
    return [(texts[k], bounds[k + 1] - bounds[k]) for k in range(copies)]


def _copy(sc: dict, dst: Path, txt: bool | str = True) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sc["path"], dst)
    if txt:
        write_txt(dst.with_suffix(".txt"), sc, table=txt != "no-table")


def _bad(dst: Path, txt_from: dict | None) -> str:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(BAD_BYTES)
    if txt_from is not None:
        write_txt(dst.with_suffix(".txt"), txt_from)
    return str(dst.resolve())


def _text(sc: dict) -> str:
    return sc["speakers"][0]["text"].lower()


def _pretrain(tree: FakeTree, sc: dict, folder: Path, speaker: str, utt: str) -> list[str]:
    path = folder / speaker / f"{utt}.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    words, frames = write_looped(path, sc)
    ids = []
    for k, (text, nf) in enumerate(expected_pieces(words, PRETRAIN_COPIES, frames)):
        uid = f"short-pretrain/{speaker}/{utt}_{k}"
        tree.utterances[uid] = Expected(text, nf)
        ids.append(uid)
    return ids


def make_lrs3(root: Path, src: list[dict]) -> FakeTree:
    """pretrain/: a long clip (cut in two) and a short one (kept whole); trainval/: two clips and the bad one;
    test/: two clips; the validation list names one trainval clip and the bad one."""
    tree = FakeTree(root)
    pre = _pretrain(tree, src[0], root / "pretrain", "0akiEFwtkyA", "00010")
    _copy(src[1], root / "pretrain" / "1B3fhN8kP0s" / "00003.mp4")
    tree.utterances["short-pretrain/1B3fhN8kP0s/00003"] = Expected(_text(src[1]), src[1]["num_frames"])
    for sc, uid in ((src[2], "trainval/0akiEFwtkyA/50001"), (src[1], "trainval/Zx9_Qw-ty7U/50007"),
                    (src[2], "test/kLm0pQ2rS4t/00001"), (src[1], "test/kLm0pQ2rS4t/00002")):
        _copy(sc, root / f"{uid}.mp4")
        tree.utterances[uid] = Expected(_text(sc), sc["num_frames"])
    tree.bad = _bad(root / "trainval" / "Zx9_Qw-ty7U" / "50009.mp4", src[1])
    valid = root.parent / "lrs3-valid.id"
    valid.write_text("trainval/Zx9_Qw-ty7U/50007\ntrainval/Zx9_Qw-ty7U/50009\n")
    tree.lists["valid"] = valid
    train30 = ["trainval/0akiEFwtkyA/50001"]
    for name, train in (("30h_data", train30), ("433h_data", train30 + pre + ["short-pretrain/1B3fhN8kP0s/00003"])):
        tree.manifests[f"{name}/train"] = sorted(train)
        tree.manifests[f"{name}/valid"] = ["trainval/Zx9_Qw-ty7U/50007"]
        tree.manifests[f"{name}/test"] = ["test/kLm0pQ2rS4t/00001", "test/kLm0pQ2rS4t/00002"]
    return tree


def make_lrs2(top: Path, src: list[dict]) -> FakeTree:
    """``top/mvlrs_v1/{main,pretrain}`` and the lists beside ``mvlrs_v1/``; main/ ``.txt`` files without the
    word table (as distributed); test.txt lines carry a second field."""
    root = top / "mvlrs_v1"
    tree = FakeTree(root)
    pre = _pretrain(tree, src[0], root / "pretrain", "5535415699068794046", "00001")
    items = {"train": [(src[1], "6330311066473698535/00011"), (src[2], "6330311066473698535/00012")],
             "val": [(src[1], "6331559613336179781/00001")], "test": [(src[2], "6336277218512587289/00004")]}
    for split, rows in items.items():
        for sc, u in rows:
            _copy(sc, root / "main" / f"{u}.mp4", txt="no-table")
            tree.utterances[f"main/{u}"] = Expected(_text(sc), sc["num_frames"])
    tree.bad = _bad(root / "main" / "6330311066473698535" / "00013.mp4", src[1])
    top.joinpath("train.txt").write_text("".join(f"{u}\n" for _, u in items["train"]) + "6330311066473698535/00013\n")
    top.joinpath("val.txt").write_text("".join(f"{u}\n" for _, u in items["val"]))
    top.joinpath("test.txt").write_text("".join(f"{u} NF\n" for _, u in items["test"]))
    top.joinpath("pretrain.txt").write_text("5535415699068794046/00001\n")
    main_train = sorted(f"main/{u}" for _, u in items["train"])
    for name, train in (("main_data", main_train), ("pretrain_data", main_train + pre)):
        tree.manifests[f"{name}/train"] = sorted(train)
        tree.manifests[f"{name}/valid"] = [f"main/{u}" for _, u in items["val"]]
        tree.manifests[f"{name}/test"] = [f"main/{u}" for _, u in items["test"]]
    return tree


def make_voxceleb2(root: Path, src: list[dict]) -> FakeTree:
    """dev/mp4/: two clips of one speaker and the bad one; test/mp4/: one clip; the English list names two."""
    tree = FakeTree(root)
    ids = {"dev/mp4/id00012/21Uxsk56VDQ/00001": src[1], "dev/mp4/id00012/21Uxsk56VDQ/00002": src[2],
           "test/mp4/id00017/01dfn2spqyE/00001": src[0]}
    for uid, sc in ids.items():
        _copy(sc, root / f"{uid}.mp4", txt=False)
        tree.utterances[uid] = Expected(None, sc["num_frames"])
    tree.bad = _bad(root / "dev" / "mp4" / "id00015" / "0fijmz4vTVU" / "00001.mp4", None)
    en = root.parent / "vox-en.id"
    en.write_text("dev/mp4/id00012/21Uxsk56VDQ/00002\ntest/mp4/id00017/01dfn2spqyE/00001\n")
    tree.lists["en"] = en
    tree.manifests["all_data/train"] = sorted(ids)
    tree.manifests["en_data/train"] = ["dev/mp4/id00012/21Uxsk56VDQ/00002", "test/mp4/id00017/01dfn2spqyE/00001"]
    return tree
