"""Span masks (and the modality dropout settings of pretraining). All randomness comes from the ``torch.Generator`` passed in.

AV-HuBERT's values: audio spans start at a fraction 0.8 of frames, 10 frames long, replaced by a learned
embedding; lip spans start at 0.3 of frames, 5 long, replaced by other segments of the same clip. Modality
dropout keeps both modalities for half the samples, lips only for a quarter, audio only for a quarter.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class MaskConfig:
    audio_prob: float = 0.8
    audio_span: int = 10
    video_prob: float = 0.3
    video_span: int = 5
    p_av: float = 0.5  # modality dropout (avspeech.model.modality): keep both
    p_audio: float = 0.25  # drop the lips; the rest (0.25) drops the audio


def span_mask(lengths: Tensor, t: int, prob: float, span: int, generator: torch.Generator) -> Tensor:
    """(B, T) bool: in each sample, ``round(prob * L / span)`` spans (at least one if prob > 0 and L > 0) of
    ``span`` frames start at uniform positions within its length L (spans may overlap and are cut at L)."""
    b = lengths.shape[0]
    mask = torch.zeros(b, t, dtype=torch.bool)
    for i in range(b):
        n = int(lengths[i])
        if n <= 0 or prob <= 0:
            continue
        k = max(1, int(prob * n / span + float(torch.rand((), generator=generator))))
        s = min(span, n)
        starts = torch.randint(0, n - s + 1, (k,), generator=generator)
        idx = (starts[:, None] + torch.arange(s)).flatten()
        mask[i, idx] = True
    return mask.to(lengths.device)


def substitute_segments(x: Tensor, mask: Tensor, lengths: Tensor, generator: torch.Generator) -> Tensor:
    """Replace each masked run of frames of ``x`` (B, T, D) by a run of the same length taken from another
    position of the same sample (AV-HuBERT's lip masking)."""
    out = x.clone()
    for i in range(x.shape[0]):
        n = int(lengths[i])
        m = mask[i, :n].cpu()
        if n < 2 or not m.any():
            continue
        # runs of consecutive masked frames
        d = torch.diff(torch.cat([torch.zeros(1, dtype=torch.int8), m.to(torch.int8), torch.zeros(1, dtype=torch.int8)]))
        starts, ends = torch.nonzero(d == 1).flatten(), torch.nonzero(d == -1).flatten()
        for s, e in zip(starts.tolist(), ends.tolist()):
            length = e - s
            if length >= n:
                continue
            src = int(torch.randint(0, n - length + 1, (1,), generator=generator))
            if src == s:  # never the segment itself
                src = (s + length) % (n - length + 1)
            out[i, s:e] = x[i, src:src + length]
    return out
