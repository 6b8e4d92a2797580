"""The synthetic corpus: files, ground truth, determinism, mouth motion, bad input, resume.

Ground truth is checked against independent measurements: decord decodes what was written, soundfile reads the
wavs, MediaPipe measures the rendered mouths.
"""
import hashlib
import json
import subprocess

import numpy as np
import pytest
import soundfile as sf

from avspeech.errors import InputError
from avspeech.synth import faces as faces_mod
from avspeech.synth.corpus import SynthConfig, clip_id, prepare_output, synthesize_clip, synthesize_corpus
from avspeech.synth.grammar import SLOTS
from conftest import SYNTH_2SPK


def _sidecars(root):
    return [json.loads((root / f"{clip_id(i)}.json").read_text()) for i in range(SYNTH_2SPK["clips"])]


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_clip_files_decode_and_agree_with_sidecar(synth_corpus_2spk):
    import decord

    for sc in _sidecars(synth_corpus_2spk):
        vr = decord.VideoReader(str(synth_corpus_2spk / sc["video"]))
        assert len(vr) == sc["num_frames"]
        assert vr.get_avg_fps() == pytest.approx(25.0)
        assert vr[0].shape == (sc["height"], sc["width"], 3)
        ar = decord.AudioReader(str(synth_corpus_2spk / sc["video"]), sample_rate=16000, mono=True)
        # AAC pads the end up to one 1024-sample frame; the wavs hold the exact audio
        assert 0 <= ar.shape[1] - sc["num_samples"] < 1024
        for wav in [sc["mixture_wav"]] + [s["wav"] for s in sc["speakers"]]:
            info = sf.info(str(synth_corpus_2spk / wav))
            assert (info.samplerate, info.frames, info.channels) == (16000, sc["num_samples"], 1)
        assert sc["num_samples"] == sc["num_frames"] * 640
        # the mp4's audio is the mixture (lossy AAC: compare loosely)
        mix, _ = sf.read(str(synth_corpus_2spk / sc["mixture_wav"]), dtype="float32")
        dec = ar[:].asnumpy()[0, : sc["num_samples"]]
        assert np.corrcoef(dec, mix)[0, 1] > 0.95


def test_mixture_is_sum_of_gained_clean_tracks(synth_corpus_2spk):
    for sc in _sidecars(synth_corpus_2spk):
        mix, _ = sf.read(str(synth_corpus_2spk / sc["mixture_wav"]), dtype="float64")
        clean = [sf.read(str(synth_corpus_2spk / s["wav"]), dtype="float64")[0] for s in sc["speakers"]]
        expected = sum(s["gain"] * c for s, c in zip(sc["speakers"], clean))
        np.testing.assert_allclose(mix, expected, atol=1e-4, rtol=0)
        assert np.abs(mix).max() <= 1.0
        gains_db = [s["gain_db"] for s in sc["speakers"]]
        assert abs(gains_db[0] - gains_db[1]) <= 5.0 + 1e-9
        for s, c in zip(sc["speakers"], clean):  # each speaker is silent before its onset, speaks after
            onset = int(s["onset"] * 16000)
            assert np.abs(c[:onset]).max() == 0 and np.abs(c[onset:onset + 8000]).max() > 0.01


def test_sidecar_ground_truth_is_consistent(synth_corpus_2spk):
    for sc in _sidecars(synth_corpus_2spk):
        assert len(sc["speakers"]) == 2
        starts = sorted(s["onset"] for s in sc["speakers"])
        ends = sorted(s["phones"][-1]["end"] for s in sc["speakers"])
        assert starts[1] < ends[0], "the two speakers should overlap in time"
        for s in sc["speakers"]:
            words = s["text"].split()
            assert len(words) == 6 and all(w in slot for w, slot in zip(words, SLOTS))
            assert [w["word"] for w in s["words"]] == words
            for key in ("box", "mouth", "mouth_width", "openness"):
                assert len(s[key]) == sc["num_frames"]
            t = [p["start"] for p in s["phones"]]
            assert t == sorted(t) and t[0] >= s["onset"] and s["phones"][-1]["end"] <= sc["num_samples"] / 16000
            for (x0, y0, x1, y1), (mx, my) in zip(s["box"], s["mouth"]):
                assert x0 < mx < x1 and (y0 + y1) / 2 < my < y1  # the mouth is in the lower half of the face
            op = np.array(s["openness"])
            assert op.min() == 0 and op.max() > 0.5


def test_faces_do_not_overlap(synth_corpus_2spk):
    for sc in _sidecars(synth_corpus_2spk):
        a, b = (np.array(s["box"]) for s in sc["speakers"])
        ix = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
        iy = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
        assert np.all((ix <= 0) | (iy <= 0))


def test_rendered_mouth_opening_follows_driving_openness(synth_corpus_2spk):
    """MediaPipe FaceMesh on each face (cropped by its ground-truth box) of the decoded video: the inner-lip
    gap over the eye distance correlates >= 0.8 with the openness that drove the render."""
    import mediapipe as mp

    from avspeech.io.media import read_video_frames

    for sc in _sidecars(synth_corpus_2spk):
        frames, _ = read_video_frames(synth_corpus_2spk / sc["video"])
        for spk in sc["speakers"]:
            gaps, driving = [], []
            with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1) as mesh:
                for f, frame in enumerate(frames):
                    x0, y0, x1, y1 = spk["box"][f]
                    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.8 * max(x1 - x0, y1 - y0)
                    crop = np.ascontiguousarray(frame[int(max(cy - half, 0)):int(cy + half),
                                                      int(max(cx - half, 0)):int(cx + half)])
                    res = mesh.process(crop)
                    if not res.multi_face_landmarks:
                        continue
                    lm = np.array([[p.x * crop.shape[1], p.y * crop.shape[0]]
                                   for p in res.multi_face_landmarks[0].landmark])
                    gaps.append(np.linalg.norm(lm[13] - lm[14]) / np.linalg.norm(lm[33] - lm[263]))
                    driving.append(spk["openness"][f])
            assert len(gaps) >= 0.9 * len(frames), f"{sc['id']} face {spk['index']}: face lost"
            r = np.corrcoef(gaps, driving)[0, 1]
            assert r >= 0.8, f"{sc['id']} face {spk['index']} ({spk['face_source']}): r={r:.3f}"


def test_same_seed_same_files(synth_corpus_2spk, tmp_path):
    config = SynthConfig(speakers=SYNTH_2SPK["speakers"], seed=SYNTH_2SPK["seed"])
    sc = synthesize_clip(config, 1, tmp_path)
    names = [sc["video"], sc["mixture_wav"], f"{sc['id']}.json"] + [s["wav"] for s in sc["speakers"]]
    for name in names:
        assert _digest(tmp_path / name) == _digest(synth_corpus_2spk / name), name
    other = synthesize_clip(SynthConfig(speakers=2, seed=SYNTH_2SPK["seed"] + 1), 1, tmp_path / "other")
    assert _digest(tmp_path / "other" / other["mixture_wav"]) != _digest(tmp_path / sc["mixture_wav"])


def test_unknown_voice_is_named(tmp_path):
    with pytest.raises(InputError, match="no-such-voice"):
        synthesize_corpus(tmp_path / "out", SynthConfig(voices=("en+m3", "no-such-voice")), 1)


def test_missing_face_photo_is_named(tmp_path, monkeypatch):
    missing = tmp_path / "gone" / "grace_hopper.jpg"
    monkeypatch.setattr(faces_mod, "face_photo_paths", lambda: {"grace_hopper": missing})
    faces_mod.load_face.cache_clear()
    try:
        with pytest.raises(InputError) as err:
            faces_mod.load_face("grace_hopper")
        assert str(missing) in str(err.value) and "missing" in str(err.value)
        with pytest.raises(InputError, match="unknown face source"):
            faces_mod.load_face("mona_lisa")
    finally:
        faces_mod.load_face.cache_clear()


def test_too_many_faces_for_the_frame():
    with pytest.raises(InputError, match="do not fit"):
        SynthConfig(speakers=6, width=640)
    SynthConfig(speakers=5, width=640)  # 5 x 120 px columns fit


def test_non_empty_output_refused_then_resume_and_overwrite(tmp_path):
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    config = SynthConfig(seed=3)
    with pytest.raises(InputError, match="--resume"):
        prepare_output(out, config, 2)
    assert prepare_output(out, config, 2, resume=True) == [0, 1]
    # clip 0 complete, clip 1 interrupted (a partial temp file and no sidecar)
    synthesize_clip(config, 0, out)
    (out / ".clip_00001.partial-123.mp4").write_bytes(b"half")
    before = (out / "clip_00000.mp4").stat().st_mtime_ns
    made, failures, skipped = synthesize_corpus(out, config, 2, resume=True)
    assert (len(made), failures, skipped) == (1, [], 1)
    assert (out / "clip_00000.mp4").stat().st_mtime_ns == before
    assert (out / "clip_00001.json").is_file()
    with pytest.raises(InputError, match="other settings"):
        prepare_output(out, SynthConfig(seed=4), 2, resume=True)
    assert prepare_output(out, SynthConfig(seed=4), 1, overwrite=True) == [0]
    assert not (out / "clip_00001.json").exists() and (out / "notes.txt").read_text() == "mine"


def test_cli_reports_bad_voice(tmp_path):
    res = subprocess.run(["avspeech", "synth", "--out", str(tmp_path / "x"), "--clips", "1", "--voices", "zz+q9"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "unknown espeak-ng voice 'zz+q9'" in res.stderr, res.stderr


def test_demo_writes_contact_sheet(tmp_path):
    from PIL import Image

    res = subprocess.run(["avspeech", "demo", "--out", str(tmp_path), "--clips", "1", "--pretrain-clips", "2",
                          "--pretrain-steps", "2"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert "clip_00000" in res.stdout and "says" in res.stdout and "step 2: loss" in res.stdout
    assert res.stdout.count("SI-SDRi") == 2  # the separation stage scores both faces of the clip
    assert (tmp_path / "separated" / "speakers.json").is_file()
    assert (tmp_path / "pretrain_curves.png").is_file()
    with Image.open(tmp_path / "contact_sheet.png") as im:
        assert im.size[0] > 800 and im.size[1] > 200
        assert np.asarray(im.convert("L")).std() > 20  # a picture, not a blank canvas
