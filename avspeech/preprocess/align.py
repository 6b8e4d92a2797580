"""From a face's landmarks to its mouth ROI: fill gaps, smooth, similarity-align onto a mean face, crop the mouth.

The field's convention (AV-HuBERT, shared/DESIGN.md): a similarity transform of stable landmarks (eye corners,
nose) onto a mean face in a 256x256 frame, then a 96x96 crop centred on the mouth. The transform is fitted to
landmarks smoothed over ``smooth_window`` frames (steady scale and rotation); the crop centre is the current
frame's mouth (mean of the 40 FaceMesh lip points) mapped by that transform, so the mouth sits at the ROI centre.
Both steps are one affine map from frame pixels to ROI pixels, applied with a single ``cv2.warpAffine``.

Mean face: the five stable FaceMesh points averaged over two frontal faces (the sample photos of matplotlib and
scikit-image), made left-right symmetric, scaled so that the outer eye corners are 100 px apart (a 96x96 crop then
spans from just below the nose tip to the chin), placed in the 256x256 frame with the eyes' midpoint at (128, 100).

``geometry="avhubert"``: AV-HuBERT's convention (its ``preparation/align_mouth.py``, on dlib's 68 points), with
FaceMesh points for dlib's: the stable points 36, 39, 42, 45 (eye corners) and 33 (below the nose) onto those of
the mean face AV-HuBERT uses (``20words_mean_face.npy`` of mpc001's lip-reading preprocessing); the transform of
frame i fitted to the landmarks averaged over frames i .. i + window - 1 (a forward window; the last
window - 1 frames keep the last full window's transform); the ROI an integer-aligned crop of the 256x256 aligned
frame centred on the mean of the 20 mouth points (dlib 48-67), its centre clamped to keep the crop inside the
frame. One affine warp computes that crop directly (an integer shift of the warped frame). Pixels may differ by
interpolation rounding from AV-HuBERT's (skimage, float, truncated to uint8) and outside the frame (border
repeated here, black there).
"""
from __future__ import annotations

from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from avspeech.preprocess.config import ROI_GEOMETRIES

# FaceMesh indices (468-point topology).
STABLE_POINTS = np.array([33, 133, 362, 263, 4])  # right eye outer/inner, left eye inner/outer, nose tip
LIP_POINTS = np.array([0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185,
                       191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409,
                       415])  # outer and inner lip contours (mediapipe FACEMESH_LIPS)
MEAN_FACE = np.array([[78.0, 100.0], [108.8, 101.8], [147.2, 101.8], [178.0, 100.0], [128.0, 138.2]])
MEAN_FACE_SIZE = 256

# AV-HuBERT's geometry: FaceMesh stand-ins for dlib's stable points 36, 39, 42, 45, 33 (right eye outer, right eye
# inner, left eye inner, left eye outer, subnasale) and mouth points 48-67, and the mean face's stable points
# (20words_mean_face.npy, rows 36, 39, 42, 45, 33). dlib 33 is the base of the nose between the nostrils, not
# its tip (dlib 30): FaceMesh 2 ("noseBottom"); with the eye corners fitted, FaceMesh 2 lands about 6 px above the
# mean face's point 33 on both shipped photos, the tip (1) about 10 px and point 4 about 15 px above it.
AVHUBERT_STABLE_POINTS = np.array([33, 133, 362, 263, 2])
AVHUBERT_MOUTH_POINTS = np.array([
    61, 40, 37, 0, 267, 270, 291,  # dlib 48-54: outer lip, right corner over the upper lip to the left corner
    321, 314, 17, 84, 91,  # 55-59: outer lower lip back to the right
    78, 81, 13, 311, 308,  # 60-64: inner upper lip, corner to corner
    402, 14, 178])  # 65-67: inner lower lip back
AVHUBERT_MEAN_FACE = np.array([[92.52245552947952, 94.36876013925871], [112.7724172413806, 94.94360869870115],
                               [145.52511509158018, 94.5349986248377], [166.67710071343456, 93.56562295717796],
                               [128.87017960974802, 137.30253355584708]])  # the file's float64 values


def iter_filled(frames: Sequence[int], landmark: Callable[[int], np.ndarray]) -> Iterator[np.ndarray]:
    """Landmarks on every frame from the first to the last of ``frames`` (observed frame numbers, increasing), a
    frame at a time: ``landmark(k)`` gives the k-th observed frame's (N, 2) (called once each, in order); a
    frame between two observed ones is linearly interpolated (the values of ``np.interp``). Only the two
    observed frames around a gap are held, so a long track's landmarks need not be in memory at once."""
    prev_t, prev = None, None
    for k, t in enumerate(frames):
        cur = np.asarray(landmark(k), np.float64)
        if prev_t is not None and t - prev_t > 1:
            slope = (cur - prev) / float(t - prev_t)
            for step in range(1, t - prev_t):
                yield slope * float(step) + prev
        yield cur
        prev_t, prev = t, cur


def smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` frames along axis 0 (fewer frames at the ends)."""
    if window <= 1 or len(x) <= 1:
        return x.copy()
    before, after = window // 2, window - window // 2 - 1  # e.g. 12: 6 before, 5 after
    c = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)])
    idx = np.arange(len(x))
    lo = np.clip(idx - before, 0, len(x))
    hi = np.clip(idx + after + 1, 0, len(x))
    shape = (-1,) + (1,) * (x.ndim - 1)
    return (c[hi] - c[lo]) / (hi - lo).reshape(shape)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; no reflection) mapping points src (N, 2)
    onto dst (N, 2), as a (2, 3) matrix."""
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - ms, dst - md
    # Closed form for 2-D: z = a + ib minimises sum |d - z s| over complex numbers.
    denom = (s ** 2).sum()
    a = (s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]).sum() / denom
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum() / denom
    r = np.array([[a, -b], [b, a]])
    return np.hstack([r, (md - r @ ms)[:, None]])


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points (..., 2) through an affine (2, 3)."""
    return pts @ m[:, :2].T + m[:, 2]


def forward_smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Frame i: the mean of frames i .. i + window - 1 along axis 0; frames whose window would run past the end
    take the last full window's mean (AV-HuBERT's smoothing)."""
    n = len(x)
    w = max(1, min(window, n))
    c = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)])
    lo = np.minimum(np.arange(n), n - w)
    shape = (-1,) + (1,) * (x.ndim - 1)
    return (c[lo + w] - c[lo]) / np.full(n, w).reshape(shape)


def _avhubert_transforms(landmarks: np.ndarray, window: int, roi_size: int, pick) -> np.ndarray:
    stable = forward_smooth(pick(AVHUBERT_STABLE_POINTS), window)
    mouth = pick(AVHUBERT_MOUTH_POINTS).mean(axis=1)
    half = roi_size // 2
    out = np.empty((len(landmarks), 2, 3))
    for i in range(len(landmarks)):
        m = similarity(stable[i], AVHUBERT_MEAN_FACE)
        centre = np.clip(apply(m, mouth[i]), half, MEAN_FACE_SIZE - half)
        m[:, 2] -= np.round(centre) - half  # the crop's corner in the aligned frame, whole pixels
        out[i] = m
    return out


def roi_points(geometry: str = "avspeech") -> np.ndarray:
    """The FaceMesh indices (sorted) that :func:`roi_transforms` reads in ``geometry``."""
    if geometry == "avhubert":
        return np.union1d(AVHUBERT_STABLE_POINTS, AVHUBERT_MOUTH_POINTS)
    if geometry != "avspeech":
        raise ValueError(f"unknown ROI geometry {geometry!r} (choices: {', '.join(ROI_GEOMETRIES)})")
    return np.union1d(STABLE_POINTS, LIP_POINTS)


def roi_transforms(landmarks: np.ndarray, smooth_window: int = 12, roi_size: int = 96,
                   geometry: str = "avspeech", columns: np.ndarray | None = None) -> np.ndarray:
    """Affine maps (L, 2, 3) from frame pixels to ROI pixels for landmarks (L, 468, 2) on consecutive frames,
    in this package's ``geometry`` or AV-HuBERT's ("avhubert"). ``columns``: the FaceMesh indices of the
    points that ``landmarks`` holds when it holds only some, increasing, (L, len(columns), 2), e.g.
    ``roi_points(geometry)`` (a long track's landmarks without the other 400-odd points)."""
    need = roi_points(geometry)
    if columns is None:
        pick = lambda idx: landmarks[:, idx]  # noqa: E731
    else:
        columns = np.asarray(columns)
        if np.any(np.diff(columns) <= 0):
            raise ValueError("landmark columns must be increasing FaceMesh indices (as roi_points gives them)")
        if not np.isin(need, columns).all():
            raise ValueError(f"landmark columns lack the points {geometry!r} needs: "
                             f"{sorted(set(need.tolist()) - set(columns.tolist()))}")
        pick = lambda idx: landmarks[:, np.searchsorted(columns, idx)]  # noqa: E731
    if geometry == "avhubert":
        return _avhubert_transforms(landmarks, smooth_window, roi_size, pick)
    stable = smooth(pick(STABLE_POINTS), smooth_window)  # (L, 5, 2)
    mouth = pick(LIP_POINTS).mean(axis=1)  # (L, 2), current frame
    out = np.empty((len(landmarks), 2, 3))
    for i in range(len(landmarks)):
        m = similarity(stable[i], MEAN_FACE)
        centre = apply(m, mouth[i])
        m[:, 2] += roi_size / 2 - centre
        out[i] = m
    return out


def crop_rois(frames: np.ndarray, transforms: np.ndarray, roi_size: int = 96) -> np.ndarray:
    """Grayscale ROIs (L, roi_size, roi_size) uint8 from RGB frames (L, H, W, 3) and maps (L, 2, 3); pixels
    outside the frame repeat the border."""
    out = np.empty((len(frames), roi_size, roi_size), np.uint8)
    for i in range(len(frames)):
        rgb = cv2.warpAffine(frames[i], transforms[i], (roi_size, roi_size), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
        out[i] = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return out
