"""AV-HuBERT's inputs: its audio features (python_speech_features' log filterbank, stacked and normalised as its
data loader does) and its mouth-ROI geometry (align_mouth.py's mean face, forward smoothing, integer crop),
each against a reference written here from the official description."""
import cv2
import numpy as np
import pytest
import torch

from avspeech.features import audio_features, avhubert_filterbank_104, filterbank_104
from avspeech.preprocess.align import (AVHUBERT_MEAN_FACE, AVHUBERT_MOUTH_POINTS, AVHUBERT_STABLE_POINTS,
                                       crop_rois, roi_transforms)
from avspeech.preprocess.config import PreprocessConfig


def _reference_audio(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """hubert_dataset.load_feature + __getitem__: int16 wav -> logfbank -> stack 4 (zero-pad to a multiple)
    -> zero-pad or cut to the video length -> layer norm per frame, in float64."""
    from python_speech_features import logfbank

    pcm = np.clip(np.round(audio.astype(np.float64) * 32768), -32768, 32767).astype(np.int16)
    fb = logfbank(pcm, samplerate=16000).astype(np.float32).astype(np.float64)
    if len(fb) % 4:
        fb = np.concatenate([fb, np.zeros((4 - len(fb) % 4, fb.shape[1]))])
    feats = fb.reshape(-1, 104)
    if len(feats) < num_frames:
        feats = np.concatenate([feats, np.zeros((num_frames - len(feats), 104))])
    feats = feats[:num_frames]
    mean = feats.mean(axis=1, keepdims=True)
    var = feats.var(axis=1, keepdims=True)
    return (feats - mean) / np.sqrt(var + 1e-5)


@pytest.mark.parametrize("samples,frames", [(16000 + 333, 25), (16000 + 333, 40), (16000 + 333, 12),
                                            (6400, 10), (640 * 7 + 100, 7)])
def test_audio_features_match_the_official_recipe(samples, frames):
    rng = np.random.default_rng(samples + frames)
    t = np.arange(samples) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) + rng.normal(0, 0.05, samples)).astype(np.float32)
    audio = np.round(audio * 32768) / 32768  # as read from a 16-bit wav
    got = avhubert_filterbank_104(audio, frames)
    assert got.shape == (frames, 104) and got.dtype == torch.float32
    want = _reference_audio(audio, frames)
    np.testing.assert_allclose(got.double().numpy(), want, atol=2e-5)
    assert not torch.allclose(got, filterbank_104(audio, frames), atol=1e-2)  # not the package's own features


def test_audio_features_of_silence_and_padding_are_finite():
    got = avhubert_filterbank_104(np.zeros(6400, np.float32), 12)
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.double().numpy(), _reference_audio(np.zeros(6400, np.float32), 12), atol=2e-5)


@pytest.mark.parametrize("samples,frames,gain", [(300, 2, 0.5), (399, 1, 0.5), (401, 3, 0.5),
                                                 (640 * 5 + 17, 5, 1.8)])
def test_audio_features_of_short_and_clipped_audio(samples, frames, gain):
    """Under one 25 ms window (logfbank zero-pads it to one frame), and audio beyond full scale (clipped to
    int16 as a 16-bit wav would hold it)."""
    rng = np.random.default_rng(samples)
    audio = (gain * np.sin(np.arange(samples) / 7.0) + rng.normal(0, 0.02, samples)).astype(np.float32)
    got = avhubert_filterbank_104(audio, frames)
    assert got.shape == (frames, 104)
    np.testing.assert_allclose(got.double().numpy(), _reference_audio(audio, frames), atol=2e-5)
    assert avhubert_filterbank_104(audio).shape == (samples // 640, 104)


def test_audio_features_by_name():
    assert audio_features("avspeech") is filterbank_104
    assert audio_features("avhubert") is avhubert_filterbank_104
    with pytest.raises(ValueError, match="avspeech, avhubert"):
        audio_features("mfcc")


def _similarity_skimage(src, dst):
    from skimage.transform import SimilarityTransform

    tf = SimilarityTransform.from_estimate(src, dst)
    assert tf
    return tf.params[:2]


def _reference_rois(frames, landmarks, window=12, size=96):
    """align_mouth.crop_patch, written from its description: per frame the forward-window mean of the
    landmarks, a similarity of its stable points onto the mean face, a 256x256 warp, then cut_patch (centre of
    the current mouth points, clamped, rounded, sliced)."""
    n = len(frames)
    margin = min(n, window)
    out = []
    for i in range(n):
        j = min(i, n - margin)
        smoothed = landmarks[j:j + margin].mean(axis=0)
        m = _similarity_skimage(smoothed[AVHUBERT_STABLE_POINTS], AVHUBERT_MEAN_FACE)
        warped = cv2.warpAffine(frames[i], m, (256, 256), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mouth = landmarks[i][AVHUBERT_MOUTH_POINTS] @ m[:, :2].T + m[:, 2]
        cx, cy = mouth.mean(axis=0)
        h = size // 2
        cx, cy = min(max(cx, h), 256 - h), min(max(cy, h), 256 - h)
        y0, x0 = int(round(cy) - h), int(round(cx) - h)
        out.append(cv2.cvtColor(warped[y0:y0 + size, x0:x0 + size], cv2.COLOR_RGB2GRAY))
    return np.stack(out)


def _moving_face(n=16, seed=0):
    """Frames of a textured image and 468 landmarks that move with it (a drifting, rotating similarity)."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (0, 0), 2.0)
    pts0 = rng.uniform([100, 60], [220, 200], size=(468, 2))
    frames, lms = [], []
    for i in range(n):
        a, s = np.deg2rad(3 * np.sin(i / 3)), 1 + 0.05 * np.cos(i / 4)
        m = np.array([[s * np.cos(a), -s * np.sin(a), 4 * np.sin(i / 5)],
                      [s * np.sin(a), s * np.cos(a), 2 * i / n]])
        frames.append(cv2.warpAffine(base, m, (320, 240), borderMode=cv2.BORDER_REFLECT))
        lms.append(pts0 @ m[:, :2].T + m[:, 2] + rng.normal(0, 0.3, pts0.shape))
    return np.stack(frames), np.stack(lms)


def test_avhubert_rois_equal_the_two_step_reference():
    frames, lm = _moving_face()
    got = crop_rois(frames, roi_transforms(lm, 12, 96, geometry="avhubert"), 96)
    want = _reference_rois(frames, lm)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.02, (diff.max(), diff.mean())  # fixed-point rounding only
    assert np.abs(crop_rois(frames, roi_transforms(lm, 12, 96), 96).astype(int) - want).mean() > 5


def test_avhubert_rois_clamped_at_the_aligned_frame_edge():
    """cut_patch's clamping: a mouth centre mapped closer than 48 px to the 256x256 frame's edge is moved
    to 48 px from it (the crop stays inside the aligned frame); the mouth is then off the ROI centre."""
    frames, lm = _moving_face(n=6, seed=1)
    lm = lm.copy()
    a = roi_transforms(lm, 12, 96, geometry="avhubert")[0][:, :2]  # frame -> aligned frame, linear part
    lm[:3, AVHUBERT_MOUTH_POINTS] += np.linalg.solve(a, [-95.0, 0.0])  # left edge: centre x ~ 30
    lm[3:, AVHUBERT_MOUTH_POINTS] += np.linalg.solve(a, [0.0, 120.0])  # bottom edge: centre y ~ 210
    tf = roi_transforms(lm, 12, 96, geometry="avhubert")
    mouth = np.stack([lm[i, AVHUBERT_MOUTH_POINTS].mean(axis=0) @ tf[i, :, :2].T + tf[i, :, 2]
                      for i in range(len(lm))])
    assert (mouth[:3, 0] < 40).all() and (mouth[3:, 1] > 52).all(), mouth  # clamped, not centred
    got = crop_rois(frames, tf, 96)
    want = _reference_rois(frames, lm)
    diff = np.abs(got.astype(int) - want.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.02, (diff.max(), diff.mean())


def test_avhubert_mean_face_is_the_official_one():
    """Rows 36, 39, 42, 45, 33 of 20words_mean_face.npy (mpc001's lip-reading preprocessing, which AV-HuBERT's
    align_mouth.py loads)."""
    official = [[92.5225, 94.3688], [112.7724, 94.9436], [145.5251, 94.5350], [166.6771, 93.5656],
                [128.8702, 137.3025]]
    np.testing.assert_allclose(AVHUBERT_MEAN_FACE, official, atol=1e-4)
    assert len(set(AVHUBERT_MOUTH_POINTS.tolist())) == 20 and len(AVHUBERT_STABLE_POINTS) == 5


def test_avhubert_geometry_on_a_real_face():
    from avspeech.preprocess.detect import FaceDetector, FaceMeshPool
    from preprocess_helpers import load_photo

    img = load_photo("hopper")
    boxes, _ = FaceDetector()(img)
    pool = FaceMeshPool()
    lm = pool.acquire()(img, boxes[0])
    assert lm is not None
    tf = roi_transforms(np.stack([lm] * 3), 12, 96, geometry="avhubert")[0]
    mouth = (lm[AVHUBERT_MOUTH_POINTS] @ tf[:, :2].T + tf[:, 2]).mean(axis=0)
    np.testing.assert_allclose(mouth, [48, 48], atol=0.5 + 1e-9)  # integer crop: within half a pixel
    # the eye corners land where the mean face has them (up to the whole-pixel crop shift)
    eyes = lm[AVHUBERT_STABLE_POINTS[[0, 3]]] @ tf[:, :2].T
    want = AVHUBERT_MEAN_FACE[3] - AVHUBERT_MEAN_FACE[0]
    assert abs(np.linalg.norm(eyes[1] - eyes[0]) / np.linalg.norm(want) - 1) < 0.1


def test_geometry_is_validated():
    assert PreprocessConfig().roi_geometry == "avspeech"
    with pytest.raises(ValueError, match="roi_geometry"):
        PreprocessConfig(roi_geometry="dlib")
    with pytest.raises(ValueError, match="avspeech, avhubert"):
        roi_transforms(np.zeros((2, 468, 2)), geometry="dlib")
