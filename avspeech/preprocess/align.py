"""From a face's landmarks to its mouth ROI: fill gaps, smooth, similarity-align onto a mean face, crop the mouth.

The field's convention (AV-HuBERT, shared/DESIGN.md): a similarity transform of stable landmarks (eye corners,
nose) onto a mean face in a 256x256 frame, then a 96x96 crop centred on the mouth. The transform is fitted to
landmarks smoothed over ``smooth_window`` frames (steady scale and rotation); the crop centre is the current
frame's mouth (mean of the 40 FaceMesh lip points) mapped by that transform, so the mouth sits at the ROI centre.
Both steps are one affine map from frame pixels to ROI pixels, applied with a single ``cv2.warpAffine``.

Mean face: the five stable FaceMesh points averaged over two frontal faces (the sample photos of matplotlib and
scikit-image), made left-right symmetric, scaled so that the outer eye corners are 100 px apart (a 96x96 crop then
spans from just below the nose tip to the chin), placed in the 256x256 frame with the eyes' midpoint at (128, 100).
"""
from __future__ import annotations

import cv2
import numpy as np

# FaceMesh indices (468-point topology).
STABLE_POINTS = np.array([33, 133, 362, 263, 4])  # right eye outer/inner, left eye inner/outer, nose tip
LIP_POINTS = np.array([0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185,
                       191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409,
                       415])  # outer and inner lip contours (mediapipe FACEMESH_LIPS)
MEAN_FACE = np.array([[78.0, 100.0], [108.8, 101.8], [147.2, 101.8], [178.0, 100.0], [128.0, 138.2]])
MEAN_FACE_SIZE = 256


def fill_gaps(frames: list[int] | np.ndarray, landmarks: list[np.ndarray] | np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks on every frame from the first to the last observed one: (L, N, 2) with missing frames linearly
    interpolated, and ``observed`` (L,) bool."""
    frames = np.asarray(frames, np.int64)
    lm = np.asarray(landmarks, np.float64)  # (F, N, 2)
    span = np.arange(frames[0], frames[-1] + 1)
    observed = np.isin(span, frames)
    if observed.all():
        return lm.copy(), observed
    flat = lm.reshape(len(frames), -1)  # (F, N*2)
    filled = np.empty((len(span), flat.shape[1]))
    for j in range(flat.shape[1]):
        filled[:, j] = np.interp(span, frames, flat[:, j])
    return filled.reshape(len(span), *lm.shape[1:]), observed


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


def roi_transforms(landmarks: np.ndarray, smooth_window: int = 12, roi_size: int = 96) -> np.ndarray:
    """Affine maps (L, 2, 3) from frame pixels to ROI pixels for landmarks (L, 468, 2) on consecutive frames."""
    stable = smooth(landmarks[:, STABLE_POINTS], smooth_window)  # (L, 5, 2)
    mouth = landmarks[:, LIP_POINTS].mean(axis=1)  # (L, 2), current frame
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
