"""Audio features against an independent float64 NumPy computation; lip transforms against closed forms."""
import numpy as np
import torch

from avspeech.features import LIP_MEAN, LIP_STD, LipTransform, filterbank_104, mfcc_39
from avspeech.features.audio import log_filterbank, warp_mel


def _kaldi_fbank_numpy(x, bins=26, sr=16000):
    """Kaldi's fbank (povey window, DC removal, pre-emphasis 0.97, 512-point power spectrum, mel triangles
    20 Hz..Nyquist, natural log), written from its definition in float64."""
    x = np.asarray(x, np.float64) * 32768
    n_win, hop, n_fft = 400, 160, 512
    n = 1 + (len(x) - n_win) // hop
    frames = np.stack([x[i * hop:i * hop + n_win] for i in range(n)])
    frames = frames - frames.mean(1, keepdims=True)
    frames = np.concatenate([frames[:, :1] * (1 - 0.97), frames[:, 1:] - 0.97 * frames[:, :-1]], axis=1)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_win) / (n_win - 1))) ** 0.85
    power = np.abs(np.fft.rfft(frames * window, n_fft)) ** 2  # (n, 257)
    mel = lambda f: 1127.0 * np.log(1 + f / 700.0)  # noqa: E731
    lo, hi = mel(20.0), mel(sr / 2)
    delta = (hi - lo) / (bins + 1)
    m = mel(np.arange(n_fft // 2) * sr / n_fft)
    fb = np.zeros((bins, n_fft // 2 + 1))
    for b in range(bins):
        left, center, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
        up = (m - left) / (center - left)
        down = (right - m) / (right - center)
        fb[b, : n_fft // 2] = np.maximum(0, np.minimum(up, down))
    return np.log(np.maximum(power @ fb.T, np.finfo(np.float32).eps))


def test_log_filterbank_matches_numpy_definition():
    rng = np.random.default_rng(1)
    t = np.arange(16000) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=t.size)).astype(np.float32)
    ours = log_filterbank(x).numpy()
    ref = _kaldi_fbank_numpy(x)
    assert ours.shape == ref.shape == (98, 26)
    np.testing.assert_allclose(ours, ref, atol=2e-3, rtol=1e-4)


def test_filterbank_104_stacks_pads_and_normalises():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 0.1, 640 * 20).astype(np.float32)
    raw = _kaldi_fbank_numpy(x)  # (78, 26): 4*20 - 2 frames
    feats = filterbank_104(x, num_frames=21, normalize=False).numpy()
    assert feats.shape == (21, 104)
    # frame t holds 100 Hz frames 4t..4t+3 side by side; rows past the audio are zeros
    np.testing.assert_allclose(feats[3], raw[12:16].reshape(-1), atol=2e-3)
    np.testing.assert_allclose(feats[19, :52], raw[76:78].reshape(-1), atol=2e-3)
    assert np.all(feats[19, 52:] == 0) and np.all(feats[20] == 0)
    norm = filterbank_104(x, num_frames=10).numpy()
    ref = raw[:40].reshape(10, 104)
    ref = (ref - ref.mean(1, keepdims=True)) / np.sqrt(ref.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(norm, ref, atol=2e-3)


def test_warp_mel_against_numpy_interp_and_moves_a_peak():
    rng = np.random.default_rng(3)
    fb = rng.normal(size=(7, 26))
    for alpha in (0.85, 1.0, 1.13):
        ours = warp_mel(torch.tensor(fb, dtype=torch.float64), alpha).numpy()
        pos = np.clip(np.arange(26) / alpha, 0, 25)
        ref = np.stack([np.interp(pos, np.arange(26), row) for row in fb])
        np.testing.assert_allclose(ours, ref, atol=1e-12)
    peak = np.zeros((1, 26))
    peak[0, 10] = 1.0
    assert int(warp_mel(torch.tensor(peak), 1.2).argmax()) == 12  # 12 / 1.2 = 10
    assert int(warp_mel(torch.tensor(peak), 0.8).argmax()) == 8
    x = rng.normal(0, 0.1, 640 * 10).astype(np.float32)
    warped = filterbank_104(x, 10, normalize=False, warp=1.1).numpy()
    np.testing.assert_allclose(warped[:9], warp_mel(log_filterbank(x), 1.1)[:36].reshape(9, 104).numpy(), atol=1e-6)


def test_mfcc_39_rate_and_deltas():
    t = np.arange(640 * 25) / 16000
    x = (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    feats = mfcc_39(x).numpy()
    assert feats.shape == (25, 39)
    # a stationary tone: deltas vanish away from the edges, statics are constant
    assert np.abs(feats[3:-3, 13:]).max() < 1e-2 * np.abs(feats[3:-3, :13]).max()
    np.testing.assert_allclose(feats[3:-3, :13], np.broadcast_to(feats[5, :13], feats[3:-3, :13].shape),
                               rtol=1e-3, atol=1e-2)


def test_lip_transform_eval_crop_and_normalisation():
    rois = np.arange(96 * 96, dtype=np.int64).reshape(1, 96, 96) % 251
    rois = np.repeat(rois, 3, 0).astype(np.uint8)
    out = LipTransform(train=False)(rois).numpy()
    assert out.shape == (1, 3, 88, 88)
    expected = (rois[:, 4:92, 4:92] / 255.0 - LIP_MEAN) / LIP_STD
    np.testing.assert_allclose(out[0], expected, rtol=1e-6, atol=1e-6)


def test_lip_transform_train_is_seeded_and_consistent_over_time():
    rois = np.random.default_rng(0).integers(0, 255, (4, 96, 96), dtype=np.uint8)
    tf = LipTransform(train=True)
    a = tf(rois, torch.Generator().manual_seed(3))
    b = tf(rois, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    # every output frame is the same 88x88 window (possibly flipped) of its input frame
    x = (rois / 255.0 - LIP_MEAN) / LIP_STD
    found = [(top, left, flip) for top in range(9) for left in range(9) for flip in (False, True)
             if np.allclose((x[:, top:top + 88, left:left + 88][..., ::-1] if flip else
                             x[:, top:top + 88, left:left + 88]), a[0].numpy(), atol=1e-5)]
    assert len(found) == 1
    crops = {tuple(LipTransform(train=True)(rois, torch.Generator().manual_seed(s)).flatten()[:50].tolist())
             for s in range(8)}
    assert len(crops) > 1
