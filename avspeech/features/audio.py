"""Audio features (torchaudio's Kaldi-compatible filterbank and MFCC; no dither, so results are exact).

- :func:`filterbank_104`: 26 log mel energies, 25 ms window, 10 ms hop (100 Hz), four consecutive frames stacked
  into one 104-dim frame at 25 Hz, padded with zeros or cut to the video length, each frame normalised to zero
  mean and unit variance over its 104 values (AV-HuBERT's audio input).
- :func:`warp_mel`: a vocal-tract-length-style warp of the mel axis (training augmentation: a voice with a
  longer or shorter vocal tract has its formants lower or higher), applied by ``filterbank_104(warp=...)``
  before stacking and normalisation.
- :func:`avhubert_filterbank_104`: AV-HuBERT's own audio input (what its official checkpoints were trained on):
  ``python_speech_features.logfbank`` (26 filters, 25 ms / 10 ms, 512-point FFT, pre-emphasis 0.97) of the 16-bit
  samples, stacked, fitted to the video length and normalised the same way. :func:`audio_features` picks the
  function a model's ``EncoderConfig.audio_features`` names.
- :func:`mfcc_39`: 13 MFCCs with deltas and delta-deltas at 100 Hz, averaged over groups of four frames to 25 Hz
  (the features of the first clustering iteration).
"""
from __future__ import annotations

import torch
import torchaudio.compliance.kaldi as kaldi
import torchaudio.functional as AF

import numpy as np

from avspeech.timebase import SAMPLE_RATE, SAMPLES_PER_FRAME

LEVEL_DBFS = -25.0  # the level (RMS, dBFS) speech is normalised to before mixing


def level_normalise(x: np.ndarray, dbfs: float = LEVEL_DBFS) -> np.ndarray:
    """``x`` scaled to an RMS of ``dbfs`` (silence is returned as it is)."""
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return x * (10 ** (dbfs / 20) / rms) if rms > 1e-8 else x
FBANK_BINS = 26
STACK = 4  # 100 Hz audio frames per 25 Hz video frame
AUDIO_DIM = FBANK_BINS * STACK
_KALDI = dict(frame_length=25.0, frame_shift=10.0, sample_frequency=SAMPLE_RATE, dither=0.0)


def _as_batch(audio) -> torch.Tensor:
    x = torch.as_tensor(audio, dtype=torch.float32).reshape(1, -1)
    # Kaldi's energies are on the int16 scale; its log floor then never bites on real audio
    return x * 32768.0


def _fit(frames: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad or cut (L, F) to ``length`` rows."""
    if frames.shape[0] >= length:
        return frames[:length]
    return torch.cat([frames, frames.new_zeros(length - frames.shape[0], frames.shape[1])])


def log_filterbank(audio) -> torch.Tensor:
    """(N,) float audio in [-1, 1] at 16 kHz -> (L, 26) log mel energies at 100 Hz (L = 1 + (N - 400) // 160)."""
    x = _as_batch(audio)
    if x.shape[1] < 400:
        return torch.zeros(0, FBANK_BINS)
    return kaldi.fbank(x, num_mel_bins=FBANK_BINS, energy_floor=0.0, **_KALDI)


def warp_mel(fbank: torch.Tensor, alpha: float) -> torch.Tensor:
    """(L, F) log mel energies -> the same with the mel axis scaled by ``alpha``: bin j takes the value at
    position j / alpha (linear interpolation, clamped to the first and last bins), so alpha > 1 moves spectral
    peaks up (a shorter vocal tract) and alpha < 1 down. alpha = 1 is the identity."""
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    f = fbank.shape[-1]
    pos = (torch.arange(f, dtype=torch.float64) / alpha).clamp(0, f - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=f - 1)
    frac = (pos - lo).to(fbank.dtype)
    return fbank[..., lo] * (1 - frac) + fbank[..., hi] * frac


def filterbank_104(audio, num_frames: int | None = None, normalize: bool = True,
                   warp: float | None = None) -> torch.Tensor:
    """(N,) audio at 16 kHz -> (T, 104) at 25 Hz; T = ``num_frames`` (the video length) or N // 640.
    ``warp``: scale the mel axis by this factor first (:func:`warp_mel`; training augmentation)."""
    t = len(audio) // SAMPLES_PER_FRAME if num_frames is None else num_frames
    fb = log_filterbank(audio)
    if warp is not None and warp != 1.0:
        fb = warp_mel(fb, warp)
    return _stack(fb, t, normalize)


def _stack(fb: torch.Tensor, t: int, normalize: bool) -> torch.Tensor:
    """(L, 26) at 100 Hz -> (T, 104) at 25 Hz: fitted to 4T rows, stacked, each row layer-normed."""
    fb = _fit(fb, t * STACK)  # (4T, 26)
    feats = fb.reshape(t, AUDIO_DIM)  # (T, 104): frames 4t..4t+3 side by side
    if normalize and t:
        feats = torch.nn.functional.layer_norm(feats, (AUDIO_DIM,))
    return feats


def avhubert_filterbank_104(audio, num_frames: int | None = None, normalize: bool = True,
                            warp: float | None = None) -> torch.Tensor:
    """(N,) audio in [-1, 1] at 16 kHz -> (T, 104) float32 at 25 Hz as AV-HuBERT's data loader computes it: the
    samples as a 16-bit wav holds them (x 32768, rounded, clipped), ``logfbank`` of python_speech_features with
    its defaults, four 100 Hz frames stacked per video frame (zero frames fill the last group and any frames up to
    the video length; extra groups are cut), then each frame layer-normed over its 104 values. T = ``num_frames``
    or N // 640; ``warp`` as in :func:`filterbank_104`."""
    from python_speech_features import logfbank

    t = len(audio) // SAMPLES_PER_FRAME if num_frames is None else num_frames
    x = np.clip(np.round(np.asarray(audio, np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    if x.size == 0:
        fb = torch.zeros(0, FBANK_BINS)
    else:
        fb = torch.from_numpy(logfbank(x, samplerate=SAMPLE_RATE).astype(np.float32))
    if warp is not None and warp != 1.0:
        fb = warp_mel(fb, warp)
    return _stack(fb, t, normalize)


AUDIO_FEATURES = {"avspeech": filterbank_104, "avhubert": avhubert_filterbank_104}


def audio_features(name: str):
    """The feature function ``(audio, num_frames=None, normalize=True, warp=None) -> (T, 104)`` of a model whose
    ``EncoderConfig.audio_features`` is ``name``: "avspeech" (:func:`filterbank_104`) or "avhubert"
    (:func:`avhubert_filterbank_104`)."""
    try:
        return AUDIO_FEATURES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown audio features {name!r} (choices: {', '.join(AUDIO_FEATURES)})") from None


def encoder_setting(model, name: str, default: str = "avspeech") -> str:
    """``model.encoder.cfg.<name>`` (``audio_features``, ``roi_geometry``) of a head or encoder, else ``default``
    (models without an encoder config, e.g. test stand-ins, read this package's inputs)."""
    enc = getattr(model, "encoder", model)
    return getattr(getattr(enc, "cfg", None), name, default)


def mfcc_39(audio, num_frames: int | None = None) -> torch.Tensor:
    """(N,) audio at 16 kHz -> (T, 39) at 25 Hz: MFCC (13) + deltas + delta-deltas, mean of 4 frames at 100 Hz."""
    t = len(audio) // SAMPLES_PER_FRAME if num_frames is None else num_frames
    x = _as_batch(audio)
    if x.shape[1] < 400:
        return torch.zeros(t, 39)
    m = kaldi.mfcc(x, num_ceps=13, num_mel_bins=23, **_KALDI)  # (L, 13)
    d1 = AF.compute_deltas(m.T.unsqueeze(0)).squeeze(0).T
    d2 = AF.compute_deltas(d1.T.unsqueeze(0)).squeeze(0).T
    feats = torch.cat([m, d1, d2], dim=1)  # (L, 39)
    feats = _fit(feats, t * STACK).reshape(t, STACK, 39)
    # rows past the end of the audio are padding: average only real ones
    valid = (torch.arange(t * STACK) < m.shape[0]).reshape(t, STACK, 1).float()
    return (feats * valid).sum(1) / valid.sum(1).clamp(min=1)
