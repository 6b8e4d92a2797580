"""Decoding onto the 25 fps / 16 kHz time base, input discovery and sharding (no face models needed)."""
from __future__ import annotations

import numpy as np
import pytest

from avspeech.errors import InputError
from avspeech.io.media import write_video
from avspeech.preprocess.decode import decode_clip, probe, resample_indices
from avspeech.preprocess.discover import discover, parse_shard, shard
from preprocess_helpers import tone, write_timed_video

STEP = 4  # grey level per source frame index


def _indexed_frames(n: int, h: int = 48, w: int = 64) -> np.ndarray:
    """Frame i is uniformly grey at level STEP * i (+ a corner mark so orientation is visible)."""
    frames = np.repeat((np.arange(n) * STEP).astype(np.uint8)[:, None, None, None], 3, axis=3)
    frames = np.broadcast_to(frames, (n, h, w, 3)).copy()
    return frames


def _decoded_index(frames: np.ndarray) -> np.ndarray:
    return np.round(frames[:, 8:-8, 8:-8].reshape(len(frames), -1).mean(axis=1) / STEP).astype(int)


@pytest.mark.parametrize("fps", [30.0, 30000 / 1001, 60.0, 25.0])
def test_constant_rate_resampled_by_timestamp(tmp_path, fps):
    n = int(round(1.2 * fps)) if fps < 50 else 60
    times = np.arange(n) / fps
    path = tmp_path / "v.mp4"
    write_timed_video(path, _indexed_frames(n), times, crf=0)
    clip = decode_clip(path)
    duration = n / fps
    assert len(clip.frames) == round(duration * 25)
    # Frame k of the output shows the source frame nearest to k / 25 s.
    expected = np.array([np.argmin(np.abs(times - k / 25)) for k in range(len(clip.frames))])
    np.testing.assert_array_equal(_decoded_index(clip.frames), expected)
    np.testing.assert_array_equal(clip.source_index, expected)
    assert clip.audio is None and not clip.info.has_audio


def test_variable_frame_rate(tmp_path):
    rng = np.random.default_rng(3)
    gaps = rng.choice([1 / 50, 1 / 30, 1 / 15, 1 / 24], size=40)
    times = np.concatenate([[0], np.cumsum(gaps)[:-1]])
    path = tmp_path / "vfr.mp4"
    write_timed_video(path, _indexed_frames(40), times, crf=0)
    clip = decode_clip(path)
    idx = _decoded_index(clip.frames)
    for k, i in enumerate(idx):  # nearest source frame in time (ties may go either way by rounding of pts)
        assert abs(times[i] - k / 25) <= np.min(np.abs(times - k / 25)) + 1e-3, (k, i)
    assert np.all(np.diff(idx) >= 0)
    assert abs(len(clip.frames) - round((times[-1] + gaps[-1]) * 25)) <= 1


def test_resample_indices_grid():
    times = np.arange(6) / 50  # 50 fps, 0.12 s
    np.testing.assert_array_equal(resample_indices(times, 0.12, 25), [0, 2, 4])
    times = np.arange(3) / 10  # 10 fps: frames repeat
    np.testing.assert_array_equal(resample_indices(times, 0.3, 25), [0, 0, 1, 1, 2, 2, 2, 2])  # 7.5 -> 8 frames


def test_audio_cut_to_video_and_mono_16k(tmp_path):
    frames = _indexed_frames(25)
    audio = tone(16000, 300)
    path = tmp_path / "av.mp4"
    write_video(path, frames, 25, audio=audio)
    clip = decode_clip(path)
    assert clip.audio.shape == (25 * 640,) and clip.audio.dtype == np.float32
    # AAC is lossy and delayed by its priming samples: compare by correlation at the best small lag.
    mid = slice(2000, 14000)
    best = max(np.corrcoef(clip.audio[mid], audio[slice(mid.start + d, mid.stop + d)])[0, 1] for d in range(-64, 65))
    assert best > 0.98


@pytest.mark.parametrize("rate", [48000, 44100])
def test_audio_resampled_to_16k_like_a_float64_resampler(tmp_path, rate):
    """Phone and camera audio (44.1/48 kHz) comes out as the same AAC stream, decoded at its own rate, then
    resampled in float64 by torchaudio (decord's resampler, used before, departed from it after the first
    AAC frame: relative RMS error ~2)."""
    import av
    import torch
    import torchaudio

    t = np.arange(rate) / rate
    audio = (0.3 * np.sin(2 * np.pi * 300 * t) + 0.1 * np.sin(2 * np.pi * 2100 * t)).astype(np.float32)
    path = tmp_path / "av.mp4"
    write_video(path, _indexed_frames(25), 25, audio=audio, sample_rate=rate)
    with av.open(str(path)) as container:
        native = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    ref = torchaudio.functional.resample(torch.from_numpy(native.astype(np.float64)), rate, 16000).numpy()
    got = decode_clip(path).audio
    mid = slice(800, 15200)  # away from the resamplers' different edge handling
    rel = np.sqrt(np.mean((got[mid] - ref[mid]) ** 2)) / np.sqrt(np.mean(ref[mid] ** 2))
    assert rel < 0.03, rel


def test_display_rotation_applied(tmp_path):
    portrait = np.zeros((64, 48, 3), np.uint8)
    portrait[:16, :, 0] = 255  # red band at the top of the upright picture
    stored = np.rot90(portrait, k=1)  # stored turned a quarter counter-clockwise ...
    path = tmp_path / "rot.mp4"
    write_timed_video(path, np.stack([stored] * 5), np.arange(5) / 25, crf=0, rotation=-90)  # ... shown clockwise
    assert probe(path).rotation == 270
    clip = decode_clip(path)
    assert clip.frames.shape[1:3] == (64, 48)
    assert clip.frames[0, 2:14, 8:40, 0].mean() > 200 and clip.frames[0, 40:, :, 0].mean() < 50


@pytest.mark.parametrize("make, cause", [
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_text("this is not a video\n" * 20), "not a readable media file"),
])
def test_probe_names_the_cause(tmp_path, make, cause):
    p = tmp_path / "bad.mp4"
    make(p)
    with pytest.raises(InputError, match=cause) as e:
        probe(p)
    assert e.value.path == str(p)


def test_discover_files_folders_lists(tmp_path):
    (tmp_path / "a" / "sub").mkdir(parents=True)
    for rel in ["a/x.mp4", "a/sub/x.mp4", "a/notes.txt", "a/.hidden/y.mp4", "b.mov"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"0")
    lst = tmp_path / "list.txt"
    lst.write_text("# clips\nb.mov\n\na/x.mp4\nmissing.mp4\n")
    clips = discover([tmp_path / "a", lst, tmp_path / "b.mov"])
    paths = [c.path for c in clips]
    assert paths == sorted(paths) and len(set(paths)) == len(paths) == 4  # x, sub/x, b.mov, missing
    ids = {c.clip_id for c in clips}
    assert len(ids) == 4 and "sub/x" in ids and "b" in ids and "missing" in ids
    assert not any("hidden" in p or p.endswith(".txt") for p in paths)


def test_shards_partition_deterministically(tmp_path):
    for i in range(40):
        (tmp_path / f"c{i:02d}.mp4").write_bytes(b"0")
    clips = discover([tmp_path])
    parts = [shard(clips, i, 3) for i in range(3)]
    assert sorted(c.path for p in parts for c in p) == sorted(c.path for c in clips)
    assert all(len(p) >= 5 for p in parts)
    assert shard(discover([tmp_path]), 1, 3) == parts[1] == shard(list(reversed(clips)), 1, 3)[::-1]
    assert parse_shard("2/3") == (2, 3)
    for bad in ["3/3", "a/b", "1", "-1/2"]:
        with pytest.raises(ValueError):
            parse_shard(bad)


def test_frame_stream_matches_whole_decode(tmp_path):
    """FrameStream gives the same frames as decoding the whole clip, keeps a bounded window, restarts on iter."""
    from avspeech.preprocess.decode import FrameStream, decode_video

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (40, 48, 64, 3), dtype=np.uint8)
    path = tmp_path / "v30.mp4"
    write_video(path, frames, 30)  # 30 fps source: the 25 fps grid skips source frames
    whole = decode_video(path, 25.0)[0]
    s = FrameStream(path, 25.0, keep=4)
    assert len(s) == len(whole) and s.shape == whole.shape
    np.testing.assert_array_equal(s[0], whole[0])
    np.testing.assert_array_equal(s[10], whole[10])
    np.testing.assert_array_equal(s[8], whole[8])  # within the kept window
    with pytest.raises(IndexError, match="no longer buffered"):
        s[2]
    np.testing.assert_array_equal(np.stack(list(s)), whole)  # a fresh pass from the start


def test_streamed_preprocessing_equals_in_memory(synth_corpus_2spk):
    from avspeech.preprocess.config import PreprocessConfig
    from avspeech.preprocess.pipeline import Preprocessor

    clip = synth_corpus_2spk / "clip_00001.mp4"
    with Preprocessor(PreprocessConfig(max_faces=2)) as pre:
        a = pre.process_file(clip)[1]
    with Preprocessor(PreprocessConfig(max_faces=2)) as pre:
        b = pre.process_file(clip, stream=True)[1]
    assert len(a.tracks) == len(b.tracks) == 2
    for ta, tb in zip(a.tracks, b.tracks):
        assert (ta.start, ta.num_frames) == (tb.start, tb.num_frames)
        np.testing.assert_array_equal(ta.boxes, tb.boxes)
        np.testing.assert_array_equal(ta.rois, tb.rois)
    np.testing.assert_array_equal(a.audio, b.audio)


@pytest.mark.parametrize("h, w", [(96, 96), (72, 88)])  # 88 wide: the decoder's rows are padded past the width
def test_gray_roi_video_reads_back_exactly(tmp_path, h, w):
    from avspeech.io.media import read_gray_video

    frames = np.random.default_rng(h).integers(0, 256, size=(9, h, w), dtype=np.uint8)
    write_video(tmp_path / "roi.mp4", frames, 25, gray=True, crf=0)
    got = read_gray_video(tmp_path / "roi.mp4")
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, frames)


def test_read_video_frames_of_given_indices(tmp_path):
    """Only the frames asked for (the demo's contact sheet): each equal to that frame of the whole decode (and
    near its known grey level); indices outside the video are named in the error."""
    from avspeech.io.media import read_video_frames

    levels = np.arange(12) * 20
    path = tmp_path / "ramp.mp4"
    write_video(path, np.stack([np.full((64, 64, 3), v, np.uint8) for v in levels]), 25)
    whole, times = read_video_frames(path)
    pick = [0, 5, 11, 5]
    some, some_times = read_video_frames(path, pick)
    np.testing.assert_array_equal(some, whole[pick])
    np.testing.assert_array_equal(some_times, times[pick])
    assert np.abs(some.mean(axis=(1, 2, 3)) - levels[pick]).max() < 3
    with pytest.raises(InputError, match="frames 0..12 asked of a video of 12"):
        read_video_frames(path, [0, 12])
