"""``avspeech preprocess`` end to end on a folder of good and bad inputs: outputs, failures, resume, shards."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from avspeech.cli import main
from avspeech.io.media import read_gray_video, read_wav, write_video, write_wav
from avspeech.preprocess.align import apply
from avspeech.preprocess.track import box_iou
from preprocess_helpers import Placement, compose, tone

FACE = [Placement("hopper", (150, 120), 110, (1.0, 0.3))]
THREE = [Placement("hopper", (85, 135), 90), Placement("astronaut", (240, 130), 85),
         Placement("hopper", (395, 140), 85, angle=-10, flip=True)]

# name -> expected cause (a substring) for the files that must fail
EXPECTED_FAILURES = {
    "truncated.mp4": "not a readable media file",
    "empty.mp4": "empty file",
    "text.mp4": "not a readable media file",
    "speech.wav": "no video stream",
    "noface.mp4": "no face found",
    "three_frames.mp4": "clip too short",
    "missing.mp4": "file not found",
}


def _run(*argv: str) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["preprocess", *argv])
    return rc, buf.getvalue()


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("pp_inputs")
    src = root / "clips"
    src.mkdir()
    truth = {}
    frames, truth["good"] = compose(FACE, 30, seed=4)
    write_video(src / "good.mp4", frames, 25, audio=tone(30 * 640))
    frames, truth["noaudio"] = compose(FACE, 25, seed=5)
    write_video(src / "noaudio.mp4", frames, 25)
    frames, _ = compose([], 25, seed=6)
    write_video(src / "noface.mp4", frames, 25, audio=tone(25 * 640))
    frames, _ = compose(FACE, 3, seed=7)
    write_video(src / "three_frames.mp4", frames, 25, audio=tone(3 * 640))
    frames, truth["portrait"] = compose([Placement("astronaut", (120, 150), 120, (0.5, 1.0))], 25, 240, 320, seed=8)
    write_video(src / "portrait.mp4", frames, 25, audio=tone(25 * 640))
    frames, truth["leaves"] = compose([Placement("astronaut", (160, 120), 100, (8.0, 0))], 36, seed=9)
    write_video(src / "leaves.mp4", frames, 25, audio=tone(36 * 640))
    frames, truth["three_faces"] = compose(THREE, 25, 480, 270, seed=10)
    write_video(src / "three_faces.mp4", frames, 25, audio=tone(25 * 640))
    data = (src / "good.mp4").read_bytes()
    (src / "truncated.mp4").write_bytes(data[: len(data) * 6 // 10])
    (src / "empty.mp4").write_bytes(b"")
    (src / "text.mp4").write_text("not a video at all\n" * 50)
    write_wav(root / "speech.wav", tone(16000))
    (root / "more.txt").write_text("speech.wav\nmissing.mp4\nclips/good.mp4\n")  # good.mp4 twice: once only
    return root, truth


@pytest.fixture(scope="session")
def run1(corpus, tmp_path_factory):
    root, truth = corpus
    out = tmp_path_factory.mktemp("pp_out")
    rc, text = _run(str(root / "clips"), str(root / "more.txt"), "--out", str(out), "--workers", "2")
    return out, rc, text


def _manifest(path: Path) -> tuple[str, list[list[str]]]:
    lines = path.read_text().splitlines()
    return lines[0], [line.split("\t") for line in lines[1:]]


def test_failures_listed_with_causes_and_exit_code(run1, corpus):
    out, rc, text = run1
    assert rc == 1
    rows = [line.split("\t") for line in (out / "failures.tsv").read_text().splitlines()]
    assert rows[0] == ["file", "cause"]
    got = {Path(f).name: cause for f, cause in rows[1:]}
    assert set(got) == set(EXPECTED_FAILURES)
    for name, cause in EXPECTED_FAILURES.items():
        assert cause in got[name], (name, got[name])
    assert "5/12 clips done, 7 failed" in text
    assert "NO AUDIO" in text and "noaudio.mp4" in text
    for name in EXPECTED_FAILURES:
        assert f"FAILED {corpus[0]}" in text and name in text


def test_manifest_layout_and_files(run1, corpus):
    out, _, _ = run1
    root, rows = _manifest(out / "manifest.tsv")
    assert root == str(out.resolve())
    ids = sorted(r[0] for r in rows)
    assert ids == ["good/face0", "leaves/face0", "portrait/face0", "three_faces/face0", "three_faces/face1",
                   "three_faces/face2"]
    for tid, video, audio, frames, samples in rows:
        rois = read_gray_video(Path(root) / video)
        wav, sr = read_wav(Path(root) / audio)
        assert rois.shape == (int(frames), 96, 96) and sr == 16000
        assert wav.size == int(samples) == int(frames) * 640
        meta = json.loads((out / "tracks" / f"{tid}.json").read_text())
        assert len(meta["boxes"]) == len(meta["landmarks"]) == len(meta["transforms"]) == int(frames)
        assert len(meta["landmarks"][0]) == 468
    _, vrows = _manifest(out / "manifest_video_only.tsv")
    assert [r[0] for r in vrows] == ["noaudio/face0"] and vrows[0][2] == "" and vrows[0][4] == "0"
    rec = json.loads((out / "clips" / "noaudio.json").read_text())
    assert rec["flags"] == ["no_audio"] and rec["tracks"][0]["frames"] == 25


def test_written_rois_follow_the_true_mouth(run1, corpus):
    out, _, _ = run1
    _, truth = corpus
    for clip, faces in truth.items():
        rec = json.loads((out / "clips" / f"{clip}.json").read_text())
        assert len(rec["tracks"]) == len(faces)
        owners = set()
        for tr in rec["tracks"]:
            meta = json.loads((out / tr["json"]).read_text())
            boxes, tfs = np.array(meta["boxes"]), np.array(meta["transforms"])
            frames = np.arange(meta["start"], meta["start"] + meta["num_frames"])
            best = {int(np.argmax([box_iou(b, f["box"][t]) for f in faces])) for b, t in zip(boxes, frames)}
            assert len(best) == 1
            k = best.pop()
            owners.add(k)
            w = rec["width"]
            full = faces[k]["box"][frames, 2] <= w  # face wholly in the picture
            assert min(box_iou(b, faces[k]["box"][t]) for b, t in zip(boxes[full], frames[full])) > 0.5
            err = [np.linalg.norm(apply(m, faces[k]["mouth"][t]) - 48) for m, t in zip(tfs[full], frames[full])]
            assert max(err) <= 3.0, (clip, max(err))
        assert owners == set(range(len(faces)))


def test_track_audio_is_the_clip_audio(run1):
    out, _, _ = run1
    wav, _ = read_wav(out / "audio" / "good" / "face0.wav")
    ref = tone(30 * 640)
    mid = slice(2000, 17000)
    best = max(np.corrcoef(wav[mid], ref[mid.start + d:mid.stop + d])[0, 1] for d in range(-64, 65))
    assert best > 0.98


def test_rerun_finishes_only_what_is_missing(run1, corpus):
    out, _, _ = run1
    root, _ = corpus
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.suffix in (".mp4", ".wav")}
    manifest = (out / "manifest.tsv").read_text()
    (out / "clips" / "portrait.json").unlink()  # as if interrupted before the portrait clip finished
    shutil.rmtree(out / "video" / "portrait")
    rc, text = _run(str(root / "clips"), str(root / "more.txt"), "--out", str(out))
    assert rc == 1 and "4 already done (skipped)" in text
    for p, m in mtimes.items():
        if "portrait" not in str(p):
            assert p.stat().st_mtime_ns == m, f"{p} was rewritten"
    assert (out / "clips" / "portrait.json").exists() and (out / "video" / "portrait" / "face0.mp4").exists()
    assert (out / "manifest.tsv").read_text() == manifest
    # Shards of the same input split it: their manifests together are the whole manifest.
    rows = []
    for i in range(2):
        rc, _ = _run(str(root / "clips"), str(root / "more.txt"), "--out", str(out), "--shard", f"{i}/2")
        rows += _manifest(out / f"manifest.shard-{i}-of-2.tsv")[1]
        assert (out / f"failures.shard-{i}-of-2.tsv").exists()
    assert sorted(rows) == sorted(_manifest(out / "manifest.tsv")[1])


def test_help_and_usage_errors(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main(["preprocess", "--help"])
    assert e.value.code == 0 and "--shard" in capsys.readouterr().out
    assert main(["preprocess", str(tmp_path), "--out", str(tmp_path / "o"), "--shard", "2/2"]) == 2
