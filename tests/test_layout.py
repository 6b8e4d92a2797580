"""The one module for files on disk (avspeech.data.layout): round trips against hand-written files, errors that
name the file and the line, and the synthetic ground truth kept out of the heads' import path."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avspeech.data import layout
from avspeech.errors import InputError

# AV-HuBERT's manifest as its own preparation scripts write it: root line, then id, video, audio, frames, samples.
MANIFEST = ("/data/lrs3\n"
            "trainval/00j9bKdiOjk/50001\ttrainval/00j9bKdiOjk/50001.mp4\ttrainval/00j9bKdiOjk/50001.wav\t93\t59520\n"
            "clip_0001/face0\tvideo/clip_0001/face0.mp4\taudio/clip_0001/face0.wav\t50\t32000\n")


def test_manifest_round_trip_against_a_hand_written_file(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes(MANIFEST.encode())
    utts = layout.read_manifest(path)
    assert utts == [
        layout.Utterance("trainval/00j9bKdiOjk/50001", Path("/data/lrs3/trainval/00j9bKdiOjk/50001.mp4"),
                         Path("/data/lrs3/trainval/00j9bKdiOjk/50001.wav"), 93, 59520),
        layout.Utterance("clip_0001/face0", Path("/data/lrs3/video/clip_0001/face0.mp4"),
                         Path("/data/lrs3/audio/clip_0001/face0.wav"), 50, 32000)]
    rows = [(u.id, str(u.video.relative_to("/data/lrs3")), str(u.audio.relative_to("/data/lrs3")), u.frames,
             u.samples) for u in utts]
    out = tmp_path / "again.tsv"
    layout.write_manifest(out, "/data/lrs3", rows)
    assert out.read_bytes() == MANIFEST.encode()


def test_manifest_relative_root_and_video_only_rows(tmp_path):
    (tmp_path / "prep").mkdir()
    path = tmp_path / "prep" / "m.tsv"
    path.write_text("..\nu1\tv/u1.mp4\t\t7\t\n")
    (u,) = layout.read_manifest(path)
    assert u == layout.Utterance("u1", tmp_path.resolve() / "v/u1.mp4", None, 7, 0)


@pytest.mark.parametrize("body, line, cause", [
    ("a\tv.mp4\ta.wav\t10\t6400\nb\tv.mp4\ta.wav\t10\n", 3, "has 4 columns, expected 5"),
    ("a\tv.mp4\ta.wav\tten\t6400\n", 2, "must be integers"),
    ("a\tv.mp4\ta.wav\t-1\t6400\n", 2, "must not be negative"),
    ("a\tv.mp4\ta.wav\t10\t6400\n\na\tw.mp4\tb.wav\t10\t6400\n", 4, "already given on line 2"),
])
def test_malformed_manifest_row_names_file_and_line(tmp_path, body, line, cause):
    path = tmp_path / "bad.tsv"
    path.write_text("/root\n" + body)
    with pytest.raises(InputError) as e:
        layout.read_manifest(path)
    assert e.value.path == str(path) and f"line {line}" in e.value.cause and cause in e.value.cause


def test_unreadable_manifests_name_the_file(tmp_path):
    for content, cause in ((b"", "empty"), (b"/root\n\xff\xfe\n", "not UTF-8")):
        path = tmp_path / "m.tsv"
        path.write_bytes(content)
        with pytest.raises(InputError, match=cause) as e:
            layout.read_manifest(path)
        assert e.value.path == str(path)
    with pytest.raises(InputError, match="cannot read manifest"):
        layout.read_manifest(tmp_path / "missing.tsv")


def test_labels_round_trip_and_bad_line(tmp_path):
    manifest = tmp_path / "m.tsv"
    manifest.write_text("/r\na\tv\tw\t3\t1920\nb\tv\tw\t2\t1280\n")
    utts = layout.read_manifest(manifest)
    km = tmp_path / "m.km"
    km.write_text("4 4 17\n0 -1\n")
    labs = layout.read_labels(km, utts)
    assert [lab.tolist() for lab in labs] == [[4, 4, 17], [0, -1]] and labs[0].dtype == np.int64
    layout.write_labels(tmp_path / "again.km", labs)
    assert (tmp_path / "again.km").read_bytes() == b"4 4 17\n0 -1\n"
    km.write_text("4 4 17\n0 x\n")
    with pytest.raises(InputError) as e:
        layout.read_labels(km, utts)
    assert e.value.path == str(km) and "line 2 (b)" in e.value.cause and "'x'" in e.value.cause
    km.write_text("4 4 17\n0 1 2 3 4\n")
    with pytest.raises(InputError, match="line 2 \\(b\\): 5 labels for 2 frames"):
        layout.read_labels(km, utts)
    km.write_text("4 4 17\n")
    with pytest.raises(InputError, match="1 label lines for 2 utterances"):
        layout.read_labels(km, utts)


def test_transcripts_round_trip(tmp_path):
    wrd = tmp_path / "train.wrd"
    wrd.write_bytes("place blue at f two now\n\nlay red by a nine soon\n".encode())
    assert layout.default_labels_path(tmp_path / "train.tsv") == wrd
    texts = layout.read_transcripts(wrd)
    assert texts == ["place blue at f two now", "", "lay red by a nine soon"]
    layout.write_transcripts(tmp_path / "again.wrd", texts)
    assert (tmp_path / "again.wrd").read_bytes() == wrd.read_bytes()
    with pytest.raises(ValueError, match="line break"):
        layout.write_transcripts(tmp_path / "x.wrd", ["two\nlines"])
    manifest = tmp_path / "train.tsv"
    manifest.write_text("/r\na\tv\tw\t3\t1920\n")
    with pytest.raises(InputError, match="3 transcript lines for 1 utterances") as e:
        layout.read_transcripts(wrd, layout.read_manifest(manifest))
    assert e.value.path == str(wrd)


MIXTURES = "id\tutt_a\tutt_b\tgain_db\nmix000000\tclip_0003/face0\tclip_0007/face0\t-2.125\nmix000001\ta\tb\t0.000\n"


def test_mixture_list_round_trip_and_bad_line(tmp_path):
    path = tmp_path / "mix.tsv"
    path.write_text(MIXTURES)
    mixes = layout.read_mixtures(path)
    assert mixes == [layout.Mixture("mix000000", "clip_0003/face0", "clip_0007/face0", -2.125),
                     layout.Mixture("mix000001", "a", "b", 0.0)]
    layout.write_mixtures(tmp_path / "again.tsv", mixes)
    assert (tmp_path / "again.tsv").read_text() == MIXTURES
    path.write_text(MIXTURES + "mix000002\ta\tb\tloud\n")
    with pytest.raises(InputError, match="line 4: gain_db must be a number") as e:
        layout.read_mixtures(path)
    assert e.value.path == str(path)
    path.write_text(MIXTURES + "mix000002\ta\tb\n")
    with pytest.raises(InputError, match="line 4 has 3 columns"):
        layout.read_mixtures(path)
    path.write_text("mix000000\ta\tb\t0.0\n")
    with pytest.raises(InputError, match="not a mixture list"):
        layout.read_mixtures(path)


def test_records_and_manifests_of_a_preprocessed_folder(tmp_path):
    """The files ``preprocess`` writes, byte for byte: records (indented and compact JSON), and both manifests
    sorted by track id with paths relative to the resolved root."""
    from avspeech.preprocess.write import write_manifests

    tid = layout.track_id("clip_b", 1)
    files = layout.track_files(tid)
    assert files == {"video": "video/clip_b/face1.mp4", "audio": "audio/clip_b/face1.wav",
                     "json": "tracks/clip_b/face1.json"}
    layout.write_track_record(tmp_path, files["json"], {"id": tid, "start": 3, "boxes": [[1.5, 2.0, 3.0, 4.0]]})
    assert (tmp_path / files["json"]).read_text() == '{"id":"clip_b/face1","start":3,"boxes":[[1.5,2.0,3.0,4.0]]}\n'
    assert layout.read_track_record(tmp_path, files["json"])["start"] == 3
    rec_b = {"id": "clip_b", "source": "/in/clip_b.mp4", "tracks": [
        {"id": "clip_b/face1", "video": files["video"], "audio": files["audio"], "frames": 12, "samples": 7680},
        {"id": "clip_b/face0", "video": "video/clip_b/face0.mp4", "audio": "audio/clip_b/face0.wav", "frames": 9,
         "samples": 5760}]}
    rec_a = {"id": "clip_a", "source": "/in/clip_a.mp4", "tracks": [
        {"id": "clip_a/face0", "video": "video/clip_a/face0.mp4", "audio": "", "frames": 4, "samples": 0}]}
    path = layout.write_clip_record(tmp_path, rec_a)
    assert path == tmp_path / "clips" / "clip_a.json"
    assert path.read_text() == ('{\n "id": "clip_a",\n "source": "/in/clip_a.mp4",\n "tracks": [\n  {\n'
                                '   "id": "clip_a/face0",\n   "video": "video/clip_a/face0.mp4",\n   "audio": "",\n'
                                '   "frames": 4,\n   "samples": 0\n  }\n ]\n}\n')
    assert layout.load_record(tmp_path, "clip_a") == rec_a and layout.load_record(tmp_path, "clip_b") is None
    (tmp_path / "clips" / "clip_c.json").write_text('{"id": "clip_c", "tra')  # an interrupted write
    assert layout.load_record(tmp_path, "clip_c") is None

    av, video_only = write_manifests(tmp_path, [rec_b, rec_a], ".shard-0-of-2")
    root = str(tmp_path.resolve())
    assert av == tmp_path / "manifest.shard-0-of-2.tsv" and video_only == tmp_path / "manifest_video_only.shard-0-of-2.tsv"
    assert av.read_text() == (f"{root}\n"
                              "clip_b/face0\tvideo/clip_b/face0.mp4\taudio/clip_b/face0.wav\t9\t5760\n"
                              "clip_b/face1\tvideo/clip_b/face1.mp4\taudio/clip_b/face1.wav\t12\t7680\n")
    assert video_only.read_text() == f"{root}\nclip_a/face0\tvideo/clip_a/face0.mp4\t\t4\t0\n"
    assert [u.audio for u in layout.read_manifest(video_only)] == [None]
    assert layout.failures_path(tmp_path, ".shard-0-of-2") == tmp_path / "failures.shard-0-of-2.tsv"


def test_heads_read_and_write_through_the_layout_functions():
    from avspeech.recognition import data as rdata
    from avspeech.separation import mixtures

    assert mixtures.read_mixtures is layout.read_mixtures and mixtures.Mixture is layout.Mixture
    assert rdata.read_transcripts is layout.read_transcripts
    assert rdata.default_labels_path is layout.default_labels_path


def test_heads_do_not_import_the_synthetic_corpus():
    """Importing the library (pretraining, both heads, their data, preprocessing) loads nothing of avspeech.synth:
    the synthetic ground truth is for benchmarks, the demo and tests."""
    heads = ["avspeech.data", "avspeech.data.layout", "avspeech.preprocess.batch", "avspeech.pretrain.cluster",
             "avspeech.pretrain.train", "avspeech.separation.mixtures",
             "avspeech.separation.train", "avspeech.separation.evaluate", "avspeech.recognition.data",
             "avspeech.recognition.train", "avspeech.recognition.evaluate", "avspeech.pretrained"]
    code = ("import importlib, sys\n"
            f"for m in {heads!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m.startswith('avspeech.synth')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_synthetic_ground_truth_reads_the_preprocessed_layout(tmp_path):
    """A hand-made preprocessed folder of one synthetic clip with two speakers: each track gets the speaker
    whose boxes it overlaps, its sentence in the .wrd, and its phones at each frame's centre."""
    from avspeech.synth.splits import synthetic_phones, synthetic_speakers, write_synthetic_labels

    synth, prep = tmp_path / "synth", tmp_path / "prep"
    synth.mkdir()
    left, right = [0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]
    speakers = [{"voice": "en+m1", "text": "bin blue", "box": [left] * 6,
                 "phones": [{"phone": "b", "start": 0.0, "end": 0.1}, {"phone": "'u:", "start": 0.1, "end": 0.2}]},
                {"voice": "en+f2", "text": "set red", "box": [right] * 6,
                 "phones": [{"phone": "s", "start": 0.04, "end": 0.2}]}]
    (synth / "clip_0000.json").write_text(json.dumps({"fps": 25, "speakers": speakers}))
    tracks = []
    for k, (box, start) in enumerate(((right, 1), (left, 0))):  # face0 follows speaker 1, face1 speaker 0
        tid = layout.track_id("clip_0000", k)
        files = layout.track_files(tid)
        layout.write_track_record(prep, files["json"], {"start": start, "boxes": [box] * 4})
        tracks.append({"id": tid, **files, "frames": 4, "samples": 2560})
    layout.write_clip_record(prep, {"id": "clip_0000", "source": str(synth / "clip_0000.mp4"), "tracks": tracks})
    manifest = prep / "manifest.tsv"
    layout.write_manifest(manifest, prep, [(t["id"], t["video"], t["audio"], 4, 2560) for t in tracks])
    utts = layout.read_manifest(manifest)

    got = synthetic_speakers(manifest, [u.id for u in utts] + ["clip_9999/face0"])
    assert [g["voice"] for g in got[:2]] == ["en+f2", "en+m1"] and got[2] is None
    assert [g["track_start"] for g in got[:2]] == [1, 0]
    wrd = write_synthetic_labels(manifest)
    assert wrd == prep / "manifest.wrd" and wrd.read_text() == "set red\nbin blue\n"
    phones = synthetic_phones(manifest, utts)
    # frame centres: face0 from frame 1 -> 0.06, 0.10, 0.14, 0.18 s; face1 from frame 0 -> 0.02 ... 0.14 s
    assert [p.tolist() for p in phones] == [["s", "s", "s", "s"], ["b", "b", "u:", "u:"]]
