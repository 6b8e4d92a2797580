"""Alignment maths against known transforms: similarity fit, gap filling, smoothing, ROI crop geometry."""
from __future__ import annotations

import numpy as np
import pytest

from avspeech.preprocess.align import (LIP_POINTS, MEAN_FACE, STABLE_POINTS, apply, crop_rois, iter_filled,
                                       roi_points, roi_transforms, similarity, smooth)


def _sim(scale, angle, tx, ty):
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty]])


def test_similarity_recovers_known_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (5, 2))
    m = _sim(1.7, 0.4, -30, 12)
    np.testing.assert_allclose(similarity(src, apply(m, src)), m, atol=1e-9)


def test_fill_gaps_interpolates_linearly():
    lm = np.array([[[0.0, 0.0]], [[10.0, 20.0]], [[40.0, 20.0]]])
    filled = np.stack(list(iter_filled([5, 7, 10], lambda k: lm[k])))
    assert filled.shape == (6, 1, 2)
    np.testing.assert_allclose(filled[:, 0, 0], [0, 5, 10, 20, 30, 40])


def test_filled_landmarks_equal_np_interp_a_frame_at_a_time():
    """Bit for bit what np.interp gives per coordinate; ``iter_filled`` asks for each observed frame once, in
    order, and hands out one frame at a time (a long track is never held whole)."""
    rng = np.random.default_rng(3)
    frames = np.sort(rng.choice(np.arange(100, 160), 25, replace=False))
    lm = rng.normal(900, 300, (25, 468, 2))
    span = np.arange(frames[0], frames[-1] + 1)
    flat = lm.reshape(25, -1)
    ref = np.stack([np.interp(span, frames, flat[:, j]) for j in range(flat.shape[1])], 1).reshape(-1, 468, 2)
    asked = []

    def landmark(k):
        asked.append(k)
        return lm[k]

    rows = iter_filled(list(frames), landmark)
    first = next(rows)
    assert asked == [0]  # nothing read ahead
    np.testing.assert_array_equal(np.stack([first, *rows]), ref)
    assert asked == list(range(25))


@pytest.mark.parametrize("geometry", ["avspeech", "avhubert"])
def test_roi_transforms_from_the_roi_points_alone_equal_those_from_all_468(geometry):
    """A long track keeps only the points the ROI reads (``roi_points``): same maps, bit for bit."""
    rng = np.random.default_rng(5)
    lm = rng.normal(0, 3, (40, 468, 2)) + _face_landmarks(_sim(2.0, 0.1, 300, 200), (128, 180))
    cols = roi_points(geometry)
    assert len(cols) < 70
    want = roi_transforms(lm, 12, 96, geometry)
    np.testing.assert_array_equal(roi_transforms(lm[:, cols], 12, 96, geometry, cols), want)
    shuffled = rng.permutation(cols)
    with pytest.raises(ValueError, match="increasing"):
        roi_transforms(lm[:, shuffled], 12, 96, geometry, shuffled)
    with pytest.raises(ValueError, match="lack the points"):
        roi_transforms(lm[:, cols[1:]], 12, 96, geometry, cols[1:])


def test_smooth_keeps_linear_motion_and_averages_noise():
    t = np.arange(50, dtype=float)[:, None]
    np.testing.assert_allclose(smooth(3 * t + 1, 11)[5:-5], (3 * t + 1)[5:-5])
    noise = np.random.default_rng(1).normal(0, 1, (400, 1))
    assert smooth(noise, 12).std() < 0.45


def _face_landmarks(m: np.ndarray, mouth: tuple[float, float]) -> np.ndarray:
    """468 points: stable points = the mean face mapped by m, lips spread around ``mouth`` (in mean-face px)."""
    lm = np.zeros((468, 2))
    lm[STABLE_POINTS] = MEAN_FACE
    ang = np.linspace(0, 2 * np.pi, len(LIP_POINTS), endpoint=False)
    lm[LIP_POINTS] = np.array(mouth) + np.stack([20 * np.cos(ang), 8 * np.sin(ang)], axis=1)
    return apply(m, lm)


def test_roi_centred_on_mouth_with_mean_face_scale():
    # A face at scale 0.5, rotated 20 degrees: the ROI map must undo both and put the mouth at the centre.
    m = _sim(0.5, np.deg2rad(20), 300, 100)
    lm = np.stack([_face_landmarks(m, (128, 168))] * 4)
    tf = roi_transforms(lm, smooth_window=12, roi_size=96)
    mouth_frame = apply(m, np.array([128.0, 168.0]))
    np.testing.assert_allclose(apply(tf[0], mouth_frame), [48, 48], atol=1e-6)
    # The outer eye corners end 100 px apart and level (mean-face scale, rotation removed).
    eyes = apply(tf[0], lm[0, [33, 263]])
    np.testing.assert_allclose(eyes[1] - eyes[0], [100, 0], atol=1e-6)


def test_roi_centre_follows_the_current_mouth():
    # Head still, mouth centre jumping from frame to frame: smoothing must not make the ROI centre lag.
    m = _sim(0.8, 0.1, 200, 50)
    mouths = [(128, 168), (128, 180), (131, 162), (128, 175), (126, 168)] * 3
    lm = np.stack([_face_landmarks(m, mo) for mo in mouths])
    tf = roi_transforms(lm, smooth_window=12, roi_size=96)
    for i, mo in enumerate(mouths):
        np.testing.assert_allclose(apply(tf[i], apply(m, np.array(mo, float))), [48, 48], atol=1e-6)


def test_crop_rois_samples_the_right_pixels():
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[118:123, 178:183] = 255  # a white dot at (180, 120)
    m = _sim(2.0, 0.0, 0, 0)
    m[:, 2] = np.array([48, 48]) - m[:, :2] @ [180, 120]  # dot -> ROI centre, scaled 2x
    roi = crop_rois(frame[None], m[None], 96)[0]
    ys, xs = np.nonzero(roi > 128)
    assert abs(xs.mean() - 48) < 1 and abs(ys.mean() - 48) < 1 and 60 < len(xs) < 140
