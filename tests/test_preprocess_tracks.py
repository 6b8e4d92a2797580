"""Face tracks and mouth ROIs on clips composed from real face photos with known geometry (Python API)."""
from __future__ import annotations

import numpy as np
import pytest

from avspeech.preprocess import PreprocessConfig, Preprocessor
from avspeech.preprocess.align import apply
from avspeech.preprocess.track import box_iou
from preprocess_helpers import Placement, compose, tone

SCENES = {
    "one": dict(placements=[Placement("hopper", (120, 120), 110, (2.0, 0.5), angle=8)], n=40),
    "two": dict(placements=[Placement("hopper", (85, 120), 100, (0.6, 0)),
                            Placement("astronaut", (240, 115), 95, (-0.6, 0.3), flip=True)], n=40),
    "three": dict(placements=[Placement("hopper", (85, 135), 90), Placement("astronaut", (240, 130), 85),
                              Placement("hopper", (395, 140), 85, (0, -0.5), angle=-10, flip=True)],
                  n=30, width=480, height=270),
    "portrait": dict(placements=[Placement("astronaut", (120, 150), 120, (0.5, 1.0))], n=30, width=240,
                     height=320),
    "leaves": dict(placements=[Placement("astronaut", (160, 120), 100, (8.0, 0))], n=36),
    "gap": dict(placements=[Placement("hopper", (150, 120), 110, (1.0, 0), frames=(0, 14)),
                            Placement("hopper", (150, 120), 110, (1.0, 0), frames=(18, 40))], n=40),
}


@pytest.fixture(scope="session")
def scenes():
    out = {}
    with Preprocessor(PreprocessConfig()) as pre:
        for name, s in SCENES.items():
            frames, truth = compose(s["placements"], s["n"], s.get("width", 320), s.get("height", 240), seed=1)
            audio = tone(s["n"] * 640)
            out[name] = (frames, truth, audio, pre.process_frames(frames, audio))
    return out


def _match(track, truth):
    """For each frame of ``track``: index of the true face whose box overlaps it most, and that IoU."""
    best, ious = [], []
    for i in range(track.num_frames):
        t = track.start + i
        scores = [box_iou(track.boxes[i], f["box"][t]) if f["visible"][t] else 0.0 for f in truth]
        best.append(int(np.argmax(scores)))
        ious.append(max(scores))
    return np.array(best), np.array(ious)


def _mouth_errors(track, face):
    """Distance (ROI px) from the ROI centre to the true mouth mapped by the track's frame->ROI transform."""
    t = np.arange(track.start, track.end)
    vis = face["visible"][t]
    mapped = np.stack([apply(track.transforms[i], face["mouth"][ti]) for i, ti in enumerate(t)])
    return np.linalg.norm(mapped - 48, axis=1)[vis]


@pytest.mark.parametrize("name", ["one", "two", "three", "portrait"])
def test_each_face_one_track_matched_every_frame(scenes, name):
    frames, truth, audio, result = scenes[name]
    assert len(result.tracks) == len(truth)
    owners = []
    for tr in result.tracks:
        best, ious = _match(tr, truth)
        assert (best == best[0]).all(), f"track {tr.index} switches faces"
        assert ious.min() > 0.5, ious.min()
        assert tr.start == 0 and tr.end == len(frames)  # the whole clip
        owners.append(best[0])
        err = _mouth_errors(tr, truth[best[0]])
        assert err.max() <= 3.0, f"mouth {err.max():.2f} px from the ROI centre"
        assert tr.rois.shape == (len(frames), 96, 96) and tr.rois.dtype == np.uint8
        np.testing.assert_array_equal(tr.audio, audio)  # whole clip: the track's audio is the clip's
    assert sorted(owners) == list(range(len(truth)))


def test_face_leaving_the_frame(scenes):
    frames, truth, _, result = scenes["leaves"]
    w = frames.shape[2]
    inside = np.nonzero(truth[0]["box"][:, 2] <= w)[0]  # frames where the whole face box is in the picture
    assert len(result.tracks) == 1
    tr = result.tracks[0]
    assert tr.start == 0 and tr.end >= inside[-1] + 1, (tr.end, inside[-1])
    assert tr.end < len(frames)  # it ends once the face is mostly gone
    best, ious = _match(tr, truth)
    full = np.arange(tr.start, tr.end) <= inside[-1]
    assert ious[full].min() > 0.5
    assert _mouth_errors(tr, truth[0])[full].max() <= 3.0


def test_short_gap_is_bridged_by_interpolation(scenes):
    frames, truth, _, result = scenes["gap"]
    assert len(result.tracks) == 1
    tr = result.tracks[0]
    assert tr.start == 0 and tr.end == len(frames)
    np.testing.assert_array_equal(np.nonzero(~tr.observed)[0], np.arange(14, 18))
    # Interpolated boxes follow the (linear) motion of the face while it was hidden.
    for t in range(14, 18):
        assert box_iou(tr.boxes[t], truth[0]["box"][t]) > 0.5


def test_max_faces_and_min_track_frames():
    frames, truth = compose(SCENES["two"]["placements"], 20, seed=2)
    with Preprocessor(PreprocessConfig(max_faces=1)) as pre:
        assert len(pre.process_frames(frames).tracks) == 1
    with Preprocessor(PreprocessConfig(min_track_frames=21)) as pre:
        assert pre.process_frames(frames).tracks == []
