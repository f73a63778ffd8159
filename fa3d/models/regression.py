"""Landmark regression subnetwork (paper §2.1): an hourglass that refines the detections.

An hourglass (Newell et al. 2016) as modified by Bulat & Tzimiropoulos 2016:
pre-activation bottleneck residual units, max-pooling down to 1/16 of its input
(4 levels), **learned deconvolutions** instead of nearest-neighbour upsampling on
the way back up, and a last learned deconvolution that brings the output to the
input crop's resolution.

Input: the N detection maps (sigmoid of the detection logits, stride 4) stacked
with the RGB crop average-pooled to stride 4, i.e. 3+N channels at S/4, and (with
``detection_features``) the detection net's own stride-4 image features.
Output: N heatmaps (B, N, S, S), trained with a pixel-wise L2 loss against
Gaussians centred on the landmarks.

    images (B,3,S,S) --avgpool 4--┐
    maps   (B,N,S/4,S/4) ---------┴ cat -> conv3×3 -+-> residual -> hourglass -> residual
    features (B,F,S/4,S/4) [optional] -> conv1×1 ---┘
        -> BN-ReLU -> conv1×1 to N (S/4) -> deconv ×4 -> heatmaps (B,N,S,S)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .detection import BilinearUpsample


@dataclass
class RegressionConfig:
    features: int = 256   # channels inside the hourglass
    depth: int = 4        # pooling levels: the lowest resolution is S/4 / 2^depth
    num_blocks: int = 1   # residual units per hourglass branch
    # Stack the detection net's stride-4 features (its layer1 output) with the maps, as the paper's
    # "detection heatmaps stacked with image features" (§1); off: the RGB crop average-pooled to S/4
    # stands for them (the quick preset and the shipped model). They enter through their own 1×1 conv, zero at first
    # (§2.3's new layers), so a run without them starts one with them unchanged (--init-from).
    detection_features: bool = False


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck residual unit (He et al. 2016, "Identity mappings").

    BN-ReLU-conv1×1(mid) - BN-ReLU-conv3×3(mid, stride) - BN-ReLU-conv1×1(out), plus the
    input (identity), or a strided 1×1 projection of the pre-activated input when the
    shape changes. (B, in_ch, H, W) -> (B, out_ch, H/stride, W/stride).
    The Z regressor (zregressor.py) stacks the same unit into a ResNet-200.
    """

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, mid_ch, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid_ch)
        self.conv2 = nn.Conv2d(mid_ch, mid_ch, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid_ch)
        self.conv3 = nn.Conv2d(mid_ch, out_ch, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + skip


def residuals(channels: int, num_blocks: int) -> nn.Sequential:
    """``num_blocks`` shape-preserving residual units with the usual C -> C/2 -> C bottleneck."""
    return nn.Sequential(*[PreActBottleneck(channels, channels // 2, channels) for _ in range(num_blocks)])


class Hourglass(nn.Module):
    """One hourglass level, recursive: (B, C, H, W) -> (B, C, H, W), H and W divisible by 2^depth.

    out = up1(x) + upsample(low3(inner(low1(maxpool(x))))), where ``inner`` is the
    hourglass of depth-1 (or plain residual units at the bottom).
    """

    def __init__(self, depth: int, channels: int, num_blocks: int = 1):
        super().__init__()
        self.up1 = residuals(channels, num_blocks)              # skip branch at this resolution
        self.pool = nn.MaxPool2d(2)
        self.low1 = residuals(channels, num_blocks)
        self.low2 = Hourglass(depth - 1, channels, num_blocks) if depth > 1 else residuals(channels, num_blocks)
        self.low3 = residuals(channels, num_blocks)
        self.up2 = BilinearUpsample(channels, factor=2)         # learned, not nearest-neighbour

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.low3(self.low2(self.low1(self.pool(x))))
        return self.up1(x) + self.up2(low)


class RegressionNet(nn.Module):
    """(images (B,3,S,S) normalised, detection maps (B,N,S/4,S/4) in [0,1][, detection features
    (B,feature_channels,S/4,S/4)]) -> heatmaps (B,N,S,S).

    S must be divisible by 4 · 2^depth (64 for the paper's depth 4).
    """

    def __init__(self, config: RegressionConfig, num_landmarks: int, feature_channels: int = 0):
        super().__init__()
        self.config = config
        C, N = config.features, num_landmarks
        self.stem = nn.Conv2d(3 + N, C, kernel_size=3, padding=1)
        self.feature_stem = None
        if config.detection_features:
            if feature_channels < 1:
                raise ValueError("RegressionConfig.detection_features needs the detection features' channels")
            self.feature_stem = nn.Conv2d(feature_channels, C, kernel_size=1, bias=False)
            nn.init.zeros_(self.feature_stem.weight)
        self.pre = residuals(C, config.num_blocks)
        self.hourglass = Hourglass(config.depth, C, config.num_blocks)
        self.post = residuals(C, config.num_blocks)
        self.norm = nn.BatchNorm2d(C)                      # the units are pre-activated: close with BN-ReLU
        self.head = nn.Conv2d(C, N, kernel_size=1)         # N heatmaps at stride 4
        nn.init.zeros_(self.head.weight)  # §2.3: new 2D layers start at zero -> empty heatmaps at first
        nn.init.zeros_(self.head.bias)
        self.upsample = BilinearUpsample(N, factor=4)      # back to the crop's resolution

    def forward(self, images: torch.Tensor, detection_maps: torch.Tensor,
                features: torch.Tensor | None = None) -> torch.Tensor:
        x = self.stem(torch.cat([F.avg_pool2d(images, 4), detection_maps], dim=1))  # (B, C, S/4, S/4)
        if self.feature_stem is not None:
            if features is None:
                raise ValueError("this regression net stacks the detection features: pass them")
            x = x + self.feature_stem(features)
        x = self.post(self.hourglass(self.pre(x)))
        return self.upsample(self.head(F.relu(self.norm(x))))

