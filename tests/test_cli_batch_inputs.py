"""Batch commands and their inputs: clips that share a file name get their own output folders (separate,
recognize), and an INPUT in which nothing is found is an error naming it (preprocess, noise, mixtures import)."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avspeech.cli import main
from avspeech.cli.separate import clip_folders


def _short_hash(path: Path) -> str:
    return hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]


@pytest.fixture
def same_name_clips(tmp_path):
    """Two different files both called x.mp4 (contents 'clip A', 'clip B') and one y.mp4."""
    a, b, y = tmp_path / "dupA" / "x.mp4", tmp_path / "dupB" / "x.mp4", tmp_path / "other" / "y.mp4"
    for p, text in ((a, "clip A"), (b, "clip B"), (y, "clip Y")):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return a, b, y


def test_clip_folders_give_same_stem_clips_distinct_folders(same_name_clips, tmp_path, monkeypatch):
    a, b, y = same_name_clips
    out = tmp_path / "out"
    expected = {str(a): out / f"x-{_short_hash(a)}", str(b): out / f"x-{_short_hash(b)}", str(y): out / "y"}
    assert dict(clip_folders([str(a), str(b), str(y)], out)) == expected
    assert dict(clip_folders([str(y), str(b), str(a)], out)) == expected  # order does not matter
    assert expected[str(a)] != expected[str(b)]
    assert clip_folders([str(a)], out) == [(str(a), out)]  # one clip: --out is its folder
    assert dict(clip_folders([str(a), str(y)], out)) == {str(a): out / "x", str(y): out / "y"}
    # the same file given twice (once by a relative path) is one clip: its plain stem
    monkeypatch.chdir(tmp_path)
    assert clip_folders([str(a), "dupA/x.mp4"], out) == [(str(a), out / "x"), ("dupA/x.mp4", out / "x")]


def test_separate_writes_each_same_stem_clip_to_its_own_folder_and_resumes(same_name_clips, tmp_path, monkeypatch,
                                                                            capsys):
    import avspeech.separation.separate as sep

    calls = []

    def fake_separate(clip, out, model, **kw):  # writes the clip's own content where its results go
        calls.append(str(clip))
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "speakers.json").write_text(json.dumps({"source": Path(clip).read_text(), "speakers": []}))
        return []

    monkeypatch.setattr(sep, "load_model", lambda *a, **k: None)
    monkeypatch.setattr(sep, "separate_clip", fake_separate)
    a, b, _ = same_name_clips
    out = tmp_path / "sep"
    assert main(["separate", "--out", str(out), str(a), str(b)]) == 0
    printed = capsys.readouterr().out
    for clip, text in ((a, "clip A"), (b, "clip B")):
        folder = out / f"x-{_short_hash(clip)}"
        assert json.loads((folder / "speakers.json").read_text()) == {"source": text, "speakers": []}
        assert f"{clip}: 0 face(s) -> {folder}" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted(f"x-{_short_hash(c)}" for c in (a, b))
    assert sorted(calls) == sorted([str(a), str(b)])
    calls.clear()
    assert main(["separate", "--out", str(out), str(b), str(a)]) == 0  # resume: both complete, in any order
    printed = capsys.readouterr().out
    assert calls == []
    for clip in (a, b):
        assert f"{clip}: already separated in {out / f'x-{_short_hash(clip)}'}" in printed


def test_recognize_keeps_each_same_stem_clips_transcripts(same_name_clips, tmp_path, monkeypatch, capsys):
    import avspeech.cli.decoding as decoding
    import avspeech.recognition.recognize as rec

    def fake_recognize(clip, out, model, **kw):
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "transcripts.json").write_text(json.dumps({"text": Path(clip).read_text()}))
        return []

    monkeypatch.setattr(rec, "load_model", lambda *a, **k: None)
    monkeypatch.setattr(rec, "recognize_clip", fake_recognize)
    monkeypatch.setattr(decoding, "decode_options", lambda args, model: None)
    a, b, y = same_name_clips
    out = tmp_path / "rec"
    assert main(["recognize", "--out", str(out), str(a), str(b), str(y)]) == 0
    printed = capsys.readouterr().out
    assert json.loads((out / f"x-{_short_hash(a)}" / "transcripts.json").read_text()) == {"text": "clip A"}
    assert json.loads((out / f"x-{_short_hash(b)}" / "transcripts.json").read_text()) == {"text": "clip B"}
    assert json.loads((out / "y" / "transcripts.json").read_text()) == {"text": "clip Y"}
    assert not (out / "x").exists()
    assert f"{a}: another clip has the same file name; its results go to {out / f'x-{_short_hash(a)}'}" in printed


def test_separate_cli_names_the_folders_of_same_stem_clips_that_fail(tmp_path):
    """The real command on two faceless clips both named x.mp4: each fails on its own, and the run says which
    folder each one's results would go to."""
    from avspeech.io.media import write_video
    from avspeech.model.checkpoint import save_checkpoint
    from avspeech.separation.model import AVSeparator, SeparatorConfig

    cfg = SeparatorConfig(hidden=16, lstm_layers=1)
    ck = tmp_path / "ck"
    save_checkpoint(ck, AVSeparator(cfg), {"kind": "separation", "separator": cfg.to_dict()})
    clips = []
    for d in ("dupA", "dupB"):
        (tmp_path / d).mkdir()
        clips.append(tmp_path / d / "x.mp4")
        write_video(clips[-1], np.full((10, 64, 64, 3), 100, np.uint8), 25)
    out = tmp_path / "o"
    res = subprocess.run([sys.executable, "-m", "avspeech", "separate", *map(str, clips), "--out", str(out),
                          "--checkpoint", str(ck)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr[-2000:]
    assert "0/2 clips done, 2 failed" in res.stdout and "Traceback" not in res.stderr
    for c in clips:
        assert f"{c}: another clip has the same file name; its results go to {out / f'x-{_short_hash(c)}'}" \
            in res.stdout
        assert f"FAILED {c}:" in res.stdout


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_preprocess_refuses_inputs_with_nothing_in_them(tmp_path, capsys):
    folder = tmp_path / "adir.mp4"  # a folder named like a clip, with no video in it
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "notes.txt").write_text("not a clip\n")
    lst = tmp_path / "clips.txt"
    lst.write_text("# no clips yet\n\n")
    out = tmp_path / "prep"
    assert main(["preprocess", str(folder), "--out", str(out)]) == 2
    err = _error_line(capsys)
    assert err.startswith(f"avspeech preprocess: error: {folder}: no video files (") and "found in this folder" in err
    assert main(["preprocess", str(lst), "--out", str(out)]) == 2
    assert _error_line(capsys) == f"avspeech preprocess: error: {lst}: no paths listed in this file"
    assert main(["preprocess", str(lst), str(folder), "--out", str(out)]) == 2
    err = _error_line(capsys)
    assert "no clips found in any INPUT" in err and str(lst) in err and str(folder) in err
    assert not out.exists()  # nothing written
    # clips only inside --out are not inputs either
    (out / "x.mp4").parent.mkdir()
    (out / "x.mp4").write_bytes(b"0")
    assert main(["preprocess", str(tmp_path), "--out", str(out)]) == 2
    assert f"outside --out {out}" in _error_line(capsys)


def _manifest(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([str(path.parent)] + rows) + "\n")
    return path


def test_noise_refuses_a_manifest_without_speech(tmp_path, capsys):
    """A manifest with no rows, or with video-only rows, has no speech to make noise of."""
    for name, rows in (("empty.tsv", []), ("video_only.tsv", ["s/u1\tu1.mp4\t\t50\t0"])):
        path = _manifest(tmp_path / name, rows)
        out = tmp_path / f"noise_{path.stem}"
        assert main(["noise", "--manifest", str(path), "--out", str(out)]) == 2
        assert _error_line(capsys) == f"avspeech noise: error: {path}: no utterances with audio found in this manifest"
        assert not out.exists()


def test_mixtures_import_refuses_an_empty_list(tmp_path, capsys):
    manifest = _manifest(tmp_path / "m.tsv", ["trainval/spk1/00001\ta.mp4\ta.wav\t50\t32000",
                                              "trainval/spk2/00002\tb.mp4\tb.wav\t50\t32000"])
    empty, blank = tmp_path / "empty.csv", tmp_path / "blank.txt"
    empty.write_bytes(b"")
    blank.write_text("\n\n")
    for lst, fmt in ((empty, "pan"), (blank, "pan"), (blank, "wsj0")):
        out = tmp_path / f"mix_{lst.stem}_{fmt}"
        assert main(["mixtures", "import", str(lst), "--format", fmt, "--manifest", str(manifest),
                     "--out", str(out)]) == 2
        assert _error_line(capsys) == (f"avspeech mixtures: error: {lst}: no mixtures found in this list "
                                       f"(--format {fmt})")
        assert not out.exists()
    # rows that are there but do not match are still reported as failures, not as an empty list
    bad = tmp_path / "bad.csv"
    bad.write_text("test,trainval,spk9,00009,0,trainval,spk8,00008,-2.5,1.5\n")
    out = tmp_path / "mix_bad"
    assert main(["mixtures", "import", str(bad), "--manifest", str(manifest), "--out", str(out)]) == 1
    assert "0/1 mixtures done, 1 failed" in capsys.readouterr().out
    assert (out / "import_failures.tsv").read_text().splitlines()[0] == "file\tcause"
    # and a good row still imports
    good = tmp_path / "good.csv"
    good.write_text("test,trainval,spk1,00001,0,trainval,spk2,00002,-2.5,1.5\n")
    assert main(["mixtures", "import", str(good), "--manifest", str(manifest), "--out", str(out)]) == 0
    assert (out / "test.tsv").is_file()


def test_separate_redoes_a_result_whose_files_are_missing(same_name_clips, tmp_path, monkeypatch, capsys):
    """speakers.json is written last, but a file it lists may be removed afterwards: a re-run redoes that clip."""
    import avspeech.separation.separate as sep

    calls = []

    def fake_separate(clip, out, model, **kw):
        calls.append(str(clip))
        Path(out).mkdir(parents=True, exist_ok=True)
        names = {"wav": "speaker_0.wav", "video": "speaker_0.mp4", "thumbnail": "speaker_0.jpg"}
        for name in names.values():
            (Path(out) / name).write_bytes(b"data")
        (Path(out) / "speakers.json").write_text(json.dumps({"speakers": [{"track": 0, **names}]}))
        return []

    monkeypatch.setattr(sep, "load_model", lambda *a, **k: None)
    monkeypatch.setattr(sep, "separate_clip", fake_separate)
    a = same_name_clips[0]
    out = tmp_path / "one"
    assert main(["separate", "--out", str(out), str(a)]) == 0 and len(calls) == 1
    assert main(["separate", "--out", str(out), str(a)]) == 0 and len(calls) == 1  # complete: skipped
    (out / "speaker_0.wav").write_bytes(b"")  # emptied
    (out / "speaker_0.jpg").unlink()
    capsys.readouterr()
    assert main(["separate", "--out", str(out), str(a)]) == 0 and len(calls) == 2
    assert (f"{a}: {out} is incomplete (speaker_0.wav, speaker_0.jpg missing or empty); separating again"
            in capsys.readouterr().out)
