"""Separation losses (torch, batched) and evaluation metrics (well-kept libraries, per utterance).

- :func:`si_sdr`: scale-invariant SDR in dB over each sample's valid part, zero-mean (Le Roux et al. 2019);
  the training loss is its negative.
- :func:`separation_loss`: mode ``av``: -SI-SDR of the one output against the target, and for a target face that
  does not speak the output's energy relative to the mixture in dB (floored at -40 dB), so silence is learned;
  mode ``audio``: permutation-invariant -SI-SDR of two outputs against (target, interferer).
- :func:`score`: one flat dict per utterance: SI-SDR and SDR of the estimate and of the mixture, their
  improvements (SI-SDRi, SDRi), wide-band PESQ and STOI. SDR is BSS-eval's (``fast_bss_eval``, 512-tap
  distortion filter), PESQ from ``pesq`` (ITU-T P.862.2), STOI from ``pystoi``. A signal the PESQ or STOI
  library refuses (no speech found, too short; pystoi's "Returning 1e-5" placeholder counts as a refusal) scores
  NaN there, and a warning names the utterance and the
  library's error. Signals that SDR cannot score (:func:`unscorable`: too short, a silent reference, a mixture
  that is the reference alone) raise an :class:`~avspeech.errors.InputError`; an estimate that is silent or the
  reference itself scores an SDR of -inf or +inf (and a warning names it).
"""
from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import torch
from torch import Tensor

from avspeech.errors import InputError
from avspeech.timebase import SAMPLE_RATE

log = logging.getLogger(__name__)

SILENCE_FLOOR_DB = -40.0
SDR_FILTER_TAPS = 512  # BSS-eval's distortion filter (fast_bss_eval's default)
SILENT_RMS = 1e-8  # below this a reference is silence (as for level_normalise)
MIXTURE_MAX_SDR_DB = 100.0  # a mixture this close to its reference is the reference alone


def si_sdr(est: Tensor, ref: Tensor, lengths: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """(B, N) estimate and reference -> (B,) SI-SDR in dB; ``lengths`` (B,) samples limits each row."""
    if est.shape != ref.shape:
        raise ValueError(f"estimate {tuple(est.shape)} and reference {tuple(ref.shape)} differ in shape")
    if lengths is None:
        valid = torch.ones_like(est, dtype=torch.bool)
    else:
        valid = torch.arange(est.shape[-1], device=est.device) < lengths[:, None]
    w = valid.to(est.dtype)
    count = w.sum(-1, keepdim=True).clamp(min=1)
    est = (est - (est * w).sum(-1, keepdim=True) / count) * w
    ref = (ref - (ref * w).sum(-1, keepdim=True) / count) * w
    alpha = (est * ref).sum(-1, keepdim=True) / ((ref * ref).sum(-1, keepdim=True) + eps)
    proj = alpha * ref
    noise = est - proj
    return 10 * torch.log10(((proj * proj).sum(-1) + eps) / ((noise * noise).sum(-1) + eps))


def energy_db(est: Tensor, mixture: Tensor, lengths: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """(B, N) -> (B,) energy of ``est`` relative to ``mixture`` in dB."""
    if lengths is not None:
        w = (torch.arange(est.shape[-1], device=est.device) < lengths[:, None]).to(est.dtype)
        est, mixture = est * w, mixture * w
    return 10 * torch.log10(((est * est).sum(-1) + eps) / ((mixture * mixture).sum(-1) + eps))


def separation_loss(est: Tensor, target: Tensor, interferer: Tensor, mixture: Tensor, silent: Tensor,
                    lengths: Tensor) -> Tensor:
    """Mean loss over the batch; ``est`` (B, K, N) with K = 1 (target) or 2 (PIT); ``lengths`` in samples."""
    if est.shape[1] == 1:
        e = est[:, 0]
        loss = -si_sdr(e, target, lengths)
        quiet = energy_db(e, mixture, lengths).clamp(min=SILENCE_FLOOR_DB)
        return torch.where(silent, quiet, loss).mean()
    if est.shape[1] != 2:
        raise ValueError(f"expected 1 or 2 outputs, got {est.shape[1]}")
    keep = si_sdr(est[:, 0], target, lengths) + si_sdr(est[:, 1], interferer, lengths)
    swap = si_sdr(est[:, 0], interferer, lengths) + si_sdr(est[:, 1], target, lengths)
    return -(torch.maximum(keep, swap) / 2).mean()


def _np_si_sdr(est: np.ndarray, ref: np.ndarray) -> float:
    return float(si_sdr(torch.from_numpy(est.astype(np.float64))[None],
                        torch.from_numpy(ref.astype(np.float64))[None])[0])


def unscorable(ref: np.ndarray, mixture: np.ndarray) -> str | None:
    """Why a reference (N,) in its mixture (N,) cannot be scored (None when it can): no samples or fewer than
    BSS-eval's distortion filter, non-finite samples, a silent reference (SDR is undefined), or a mixture that
    is the reference alone, scaled (the interferer, ``mixture - ref``, is silent or the reference's own audio;
    the mixture's SDR, the baseline of SDRi, would be infinite)."""
    ref, mixture = np.asarray(ref, np.float64), np.asarray(mixture, np.float64)
    if len(ref) != len(mixture):
        return f"reference and mixture differ in length ({len(ref)} and {len(mixture)} samples)"
    if len(ref) <= SDR_FILTER_TAPS:
        return (f"only {len(ref)} samples to score; SDR needs more than {SDR_FILTER_TAPS} (its distortion "
                "filter's length)")
    if not (np.isfinite(ref).all() and np.isfinite(mixture).all()):
        return "the reference or the mixture holds NaN or infinite samples"
    e_ref = float(ref @ ref)
    if math.sqrt(e_ref / len(ref)) <= SILENT_RMS:
        return "the reference is silent (SDR needs a reference with sound)"
    interferer = mixture - ref
    if math.sqrt(float(interferer @ interferer) / len(ref)) <= SILENT_RMS:
        return "the interferer is silent (the mixture is the reference alone)"
    rest = mixture - (float(mixture @ ref) / e_ref) * ref
    if float(rest @ rest) <= float(mixture @ mixture) * 10 ** (-MIXTURE_MAX_SDR_DB / 10):
        return "the interferer is the reference's own audio, scaled (the mixture is the reference alone)"
    return None


def _bss_sdr(est: np.ndarray, ref: np.ndarray) -> float:
    """BSS-eval SDR of one estimate against one reference (no permutation to solve: fast_bss_eval's ``sdr``
    fails on an infinite value, where this gives +-inf)."""
    import fast_bss_eval

    with np.errstate(divide="ignore"):
        return float(-fast_bss_eval.sdr_loss(est[None], ref[None])[0])


def score(est: np.ndarray, ref: np.ndarray, mixture: np.ndarray, sample_rate: int = SAMPLE_RATE,
          perceptual: bool = True, utterance: str | None = None) -> dict[str, float]:
    """Metrics of one estimate (N,) against its reference (N,), the mixture (N,) as the baseline. PESQ and
    STOI are NaN when ``perceptual`` is False or the library refuses the signal (e.g. no speech found); a
    refusal is logged as a warning naming ``utterance`` and the library's error. A reference and mixture that
    cannot be scored (:func:`unscorable`) raise an :class:`~avspeech.errors.InputError` naming ``utterance``."""
    est, ref, mixture = (np.asarray(x, np.float64) for x in (est, ref, mixture))
    name = utterance if utterance is not None else "an estimate"
    cause = unscorable(ref, mixture)
    if cause:
        raise InputError(f"cannot score {name}: {cause}")
    if est.shape != ref.shape:
        raise ValueError(f"the estimate of {name} has shape {est.shape}, its reference {ref.shape}")
    if not np.isfinite(est).all():
        raise ValueError(f"the estimate of {name} holds NaN or infinite samples")
    out = {"si_sdr": _np_si_sdr(est, ref), "si_sdr_mix": _np_si_sdr(mixture, ref)}
    out["sdr"] = _bss_sdr(est, ref)
    out["sdr_mix"] = _bss_sdr(mixture, ref)
    if math.isinf(out["sdr"]):
        log.warning("SDR of %s is %s: the estimate is %s", name, out["sdr"],
                    "silent" if out["sdr"] < 0 else "the reference itself, scaled")
    out["si_sdri"] = out["si_sdr"] - out["si_sdr_mix"]
    out["sdri"] = out["sdr"] - out["sdr_mix"]
    out["pesq"] = out["stoi"] = math.nan
    if perceptual:
        from pesq import pesq
        from pystoi import stoi

        try:
            out["pesq"] = float(pesq(sample_rate, ref, est, "wb"))
        except Exception as e:  # noqa: BLE001 - any refusal of the library is reported, and scores NaN
            log.warning("PESQ failed on %s (%d samples): %s: %s; its PESQ is NaN", name, len(ref),
                        type(e).__name__, e)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                value = float(stoi(ref, est, sample_rate, extended=False))
            # pystoi's answer when too few frames are left after removing silence is a placeholder, not a score
            refused = [w for w in caught if "Returning 1e-5" in str(w.message)]
            if refused:
                raise RuntimeError(str(refused[0].message))
            out["stoi"] = value
        except Exception as e:  # noqa: BLE001
            log.warning("STOI failed on %s (%d samples): %s: %s; its STOI is NaN", name, len(ref),
                        type(e).__name__, e)
    return out
