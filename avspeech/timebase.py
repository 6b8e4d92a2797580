"""The package's one time base: 25 fps video, 16 kHz mono audio, 640 samples per video frame.

Every stage (preprocessing, features, the heads, the per-face pipeline) counts time in video frames of this grid
and converts with the functions here, so no other module spells 16000, 25 or 640.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

FPS = 25  # video frames per second (inputs at other rates are resampled by timestamp)
SAMPLE_RATE = 16000  # audio samples per second, mono
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
FRAME_SECONDS = 1.0 / FPS  # 0.04 s


def frames_to_samples(frames: int) -> int:
    """Audio samples spanned by ``frames`` video frames."""
    return int(frames) * SAMPLES_PER_FRAME


def samples_to_frames(samples: int) -> int:
    """Whole video frames in ``samples`` audio samples (a partial last frame is dropped)."""
    return int(samples) // SAMPLES_PER_FRAME


def frames_to_seconds(frames: float) -> float:
    return float(frames) / FPS


def seconds_to_frames(seconds: float) -> int:
    """The nearest frame of the grid to ``seconds``."""
    return int(round(float(seconds) * FPS))


def lengths_to_mask(lengths: Tensor, t: int) -> Tensor:
    """(B,) lengths -> (B, t) bool, True on valid positions."""
    import torch

    return torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]
