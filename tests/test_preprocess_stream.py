"""Memory-bounded preprocessing (issue 21): the streamed path writes the same bytes as the in-memory one, large
frames are tracked on a downscaled copy with boxes in full-resolution pixels, oversized frames fail early."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from avspeech.errors import InputError
from avspeech.io.media import write_video


def _outputs(out) -> dict[str, bytes]:
    """Every file of a preprocess output folder; clip records without their timings, manifests without the root
    line (both differ between runs by design)."""
    files = {}
    for p in sorted(out.rglob("*")):
        if not p.is_file():
            continue
        rel = str(p.relative_to(out))
        data = p.read_bytes()
        if rel.startswith("clips/"):
            rec = json.loads(data)
            rec.pop("timings")
            data = json.dumps(rec).encode()
        elif rel.endswith(".tsv"):
            data = b"\n".join(data.splitlines()[1:])
        files[rel] = data
    return files


def test_streamed_batch_writes_the_same_bytes_as_in_memory(synth_corpus_2spk, tmp_path):
    """ROI videos, audio, track records, clip records and manifests of ``preprocess`` on a two-face synthetic
    clip: streamed (two decoding passes, ROIs in temporary files) == held in memory."""
    from avspeech.preprocess.batch import preprocess
    from avspeech.preprocess.config import PreprocessConfig

    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(synth_corpus_2spk / "clip_00001.mp4", src)
    results = {}
    for name, mb in (("memory", 1e6), ("stream", 0.0)):
        rep = preprocess([src], tmp_path / name, config=PreprocessConfig(in_memory_mb=mb))
        assert not rep.failures and rep.num_tracks == 2
        results[name] = _outputs(tmp_path / name)
    assert sorted(results["memory"]) == sorted(results["stream"])
    assert len([k for k in results["memory"] if k.startswith("video/")]) == 2
    for k, data in results["memory"].items():
        assert results["stream"][k] == data, k


def test_track_record_written_by_rows_equals_json_dumps(tmp_path):
    from avspeech.data.layout import write_track_record

    rng = np.random.default_rng(0)
    boxes, lm = rng.normal(300, 100, (7, 4)), rng.normal(300, 100, (7, 468, 2))
    record = {"id": "c/face0", "start": 3, "observed": [1, 0, 1], "boxes": boxes, "landmarks": lm}
    write_track_record(tmp_path, "t.json", record, decimals={"boxes": 1, "landmarks": 1})
    expected = json.dumps({**record, "boxes": np.round(boxes, 1).tolist(), "landmarks": np.round(lm, 1).tolist()},
                          separators=(",", ":")) + "\n"
    assert (tmp_path / "t.json").read_text() == expected


def test_downscaled_stream_frames_and_full_pass(tmp_path):
    from avspeech.preprocess.decode import FrameStream, decode_video

    frames = np.random.default_rng(1).integers(0, 255, (6, 96, 160, 3), dtype=np.uint8)
    path = tmp_path / "v.mp4"
    write_video(path, frames, 25, crf=0)
    whole = decode_video(path)[0]
    s = FrameStream(path, max_side=80)
    assert s.frame_size == (160, 96) and s.shape == (6, 48, 80, 3)
    for t, f in enumerate(s):
        np.testing.assert_array_equal(f, cv2.resize(whole[t], (80, 48), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(np.stack(list(s.full())), whole)


def test_tracking_on_a_downscaled_copy_gives_full_resolution_boxes(synth_corpus_2spk):
    """A 640x480 clip tracked on 320x240 copies: boxes and landmarks in 640x480 pixels, within a few pixels of
    tracking at full resolution; ROIs (cut from full-resolution frames) close to the full-resolution ones."""
    from avspeech.preprocess.config import PreprocessConfig
    from avspeech.preprocess.pipeline import Preprocessor

    clip = synth_corpus_2spk / "clip_00001.mp4"
    with Preprocessor(PreprocessConfig(max_faces=2)) as pre:
        full = pre.process_file(clip)[1]
    with Preprocessor(PreprocessConfig(max_faces=2, track_max_side=320)) as pre:
        small = pre.process_file(clip, stream=True)[1]
    assert (small.width, small.height) == (full.width, full.height) == (640, 480)
    assert len(small.tracks) == len(full.tracks) == 2
    for a, b in zip(full.tracks, small.tracks):
        lo, hi = max(a.start, b.start), min(a.end, b.end)
        assert hi - lo >= 0.9 * a.num_frames
        side = np.median(a.boxes[:, 2] - a.boxes[:, 0])
        err = np.abs(a.boxes[lo - a.start:hi - a.start] - b.boxes[lo - b.start:hi - b.start])
        assert np.median(err) < 0.03 * side, (np.median(err), side)  # half-scale landmarks: about a pixel off
        diff = np.abs(a.rois[lo - a.start:hi - a.start].astype(int) - b.rois[lo - b.start:hi - b.start]).mean()
        assert diff < 12, diff


def test_oversized_frames_fail_early_naming_the_file(tmp_path):
    from avspeech.preprocess.decode import MAX_FRAME_SIDE, decode_clip

    path = tmp_path / "wide.mp4"
    write_video(path, np.zeros((2, 16, MAX_FRAME_SIDE + 8, 3), np.uint8), 25)
    with pytest.raises(InputError, match=f"{MAX_FRAME_SIDE + 8}x16.*downscale") as e:
        decode_clip(path, stream=None)
    assert e.value.path == str(path)
