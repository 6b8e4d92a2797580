"""Front-ends: lips (3D conv + per-frame ResNet-18 trunk) and audio (linear), each to (B, T, D).

Axes: B batch, T frames (25 Hz), C channels, H/W height/width, D model dim.

Two trunk layouts (``EncoderConfig.layout``): ``"avspeech"`` (torchvision's basic block, ReLU; the shipped
checkpoints) and ``"avhubert"`` (AV-HuBERT's: the same convolutions and norms with a per-channel PReLU after
each of the block's two convolutions), so official AV-HuBERT weights compute what they compute there.
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock


INFERENCE_BLOCK = 64  # frames through the lip front-end at a time when no gradient is taken


class PReLUBlock(nn.Module):
    """AV-HuBERT's basic block: conv3x3 (stride) + BN + PReLU, conv3x3 + BN, plus the (1x1 conv + BN when the
    shape changes) shortcut, then PReLU. Each PReLU has one slope per channel."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = nn.PReLU(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act2 = nn.PReLU(c_out)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(y + (x if self.downsample is None else self.downsample(x)))


def _stage(c_in: int, c_out: int, stride: int, layout: str = "avspeech") -> nn.Sequential:
    block = BasicBlock if layout == "avspeech" else PReLUBlock
    down = None
    if stride != 1 or c_in != c_out:
        down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
    return nn.Sequential(block(c_in, c_out, stride, down), block(c_out, c_out))


class LipFrontend(nn.Module):
    """(B, 1, T, 88, 88) grayscale crops -> (B, T, D).

    Conv3d(1 -> w0, kernel 5x7x7, stride 1x2x2) + BN + PReLU + max-pool 1x3x3/1x2x2, then a 2D ResNet-18 trunk
    (four stages of two basic blocks, widths ``widths``; ReLU blocks for ``layout="avspeech"``, PReLU blocks for
    ``"avhubert"``) on every frame, global average pool, linear to D.
    """

    def __init__(self, dim: int, widths: tuple[int, ...] = (64, 128, 256, 512), layout: str = "avspeech"):
        super().__init__()
        w0 = widths[0]
        self.stem = nn.Sequential(
            nn.Conv3d(1, w0, (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False),
            nn.BatchNorm3d(w0), nn.PReLU(w0), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        stages, c = [], w0
        for i, w in enumerate(widths):
            stages.append(_stage(c, w, 1 if i == 0 else 2, layout))
            c = w
        self.trunk = nn.Sequential(*stages, nn.AdaptiveAvgPool2d(1))
        self.proj = nn.Linear(c, dim)

    def forward(self, lips: Tensor) -> Tensor:
        t = lips.shape[2]
        if self.training or torch.is_grad_enabled() or t <= INFERENCE_BLOCK:
            return self.proj(self._features(lips))  # (B, T, D)
        # Inference on a long chunk: the stem's and trunk's activations (about 1 MB per frame at width 64) are
        # made a block of frames at a time, each block with the stem's temporal context (2 frames each side).
        # The same numbers (bit for bit on the CPU; GPU kernels may pick other algorithms per shape): eval-mode
        # norms act per frame, and the only temporal kernel is the stem's (stride 1, padding = context).
        ctx = self.stem[0].padding[0]
        parts = []
        for a in range(0, t, INFERENCE_BLOCK):
            e = min(t, a + INFERENCE_BLOCK)
            lo, hi = max(0, a - ctx), min(t, e + ctx)
            parts.append(self._features(lips[:, :, lo:hi], (a - lo, e - a)))
        return self.proj(torch.cat(parts, 1))  # (B, T, D)

    def _features(self, lips: Tensor, keep: tuple[int, int] | None = None) -> Tensor:
        """(B, 1, T, 88, 88) -> (B, T, C) trunk features; ``keep=(first, n)``: only frames first .. first+n-1."""
        b = lips.shape[0]
        x = self.stem(lips)  # (B, C, T, 22, 22)
        if keep is not None:
            x = x[:, :, keep[0]:keep[0] + keep[1]]
        x = rearrange(x, "b c t h w -> (b t) c h w")
        x = self.trunk(x).flatten(1)  # (B*T, C)
        return rearrange(x, "(b t) c -> b t c", b=b)


class AudioFrontend(nn.Module):
    """(B, T, 104) stacked filterbanks -> (B, T, D)."""

    def __init__(self, dim: int, audio_dim: int = 104):
        super().__init__()
        self.proj = nn.Linear(audio_dim, dim)

    def forward(self, audio: Tensor) -> Tensor:
        return self.proj(audio)
