"""Lip ROI transforms: (T, 96, 96) uint8 mouth crops -> (1, T, 88, 88) float model input.

Grayscale / 255, an 88 x 88 crop (centred at evaluation; random position and a horizontal flip with probability
0.5 when training, the same for every frame of the clip), normalised with mean 0.421 and std 0.165 (AV-HuBERT).
Randomness comes from the ``torch.Generator`` the caller passes, never from global state.
"""
from __future__ import annotations

import numpy as np
import torch

LIP_MEAN = 0.421
LIP_STD = 0.165
CROP = 88


class LipTransform:
    def __init__(self, train: bool = False, crop: int = CROP, mean: float = LIP_MEAN, std: float = LIP_STD):
        self.train, self.crop, self.mean, self.std = train, crop, mean, std

    def __call__(self, rois, generator: torch.Generator | None = None) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(rois)).float() / 255.0  # (T, H, W)
        if x.ndim != 3:
            raise ValueError(f"expected ROIs (T, H, W), got {tuple(x.shape)}")
        h, w = x.shape[1:]
        if h < self.crop or w < self.crop:
            raise ValueError(f"ROIs of {h}x{w} are smaller than the {self.crop}x{self.crop} crop")
        if self.train:
            top = int(torch.randint(0, h - self.crop + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - self.crop + 1, (1,), generator=generator))
            flip = bool(torch.rand((), generator=generator) < 0.5)
        else:
            top, left, flip = (h - self.crop) // 2, (w - self.crop) // 2, False
        x = x[:, top:top + self.crop, left:left + self.crop]
        if flip:
            x = x.flip(-1)
        return ((x - self.mean) / self.std).unsqueeze(0)  # (1, T, 88, 88)
