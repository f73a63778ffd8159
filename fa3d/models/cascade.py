"""The whole system (paper Fig. 1): detection -> regression -> Z, on one face crop.

    images (B,3,S,S) --DetectionNet--> logits (B,N,S/4,S/4) --sigmoid--> maps
    (images, maps) --RegressionNet--> heatmaps (B,N,S,S) --decode--> x, y
    (images, Gaussians re-rendered at x, y) --ZRegressor--> z

The paper feeds the Z regressor the stacked regression heatmaps and trains it on
heatmaps made from the ground truth *and* from the 2D stage. Here the Z input is
always Gaussians (std ``heatmap_sigma``) rendered at points: at test time at the
decoded points, in training at ground-truth or predicted points. The test input
is then the same kind of image as the training input, whatever the regression
heatmaps look like (blurred, two-peaked, scaled).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ..data.transforms import unwarp_landmarks
from ..heatmaps import decode_heatmaps, gaussian_heatmaps
from .detection import DetectionNet
from .presets import Preset
from .regression import RegressionNet
from .zregressor import ZRegressor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 (0-255) or float (0-1) images (..., 3, H, W) -> float32 normalised with ImageNet mean/std."""
    if images.shape[-3:-2] != (3,):
        raise ValueError(f"expected images of shape (..., 3, H, W), got {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        images = images.float() / 255
    elif not images.is_floating_point():
        raise TypeError(f"expected uint8 or float images, got {images.dtype}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device).view(3, 1, 1)
    return (images - mean) / std


class Cascade(nn.Module):
    """The three subnetworks of one preset. ``forward`` works in crop pixels."""

    def __init__(self, detection: DetectionNet, regression: RegressionNet, z: ZRegressor,
                 heatmap_sigma: float):
        super().__init__()
        self.detection, self.regression, self.z = detection, regression, z
        self.heatmap_sigma = heatmap_sigma

    @classmethod
    def from_preset(cls, preset: Preset) -> "Cascade":
        return cls(DetectionNet(preset.detection), RegressionNet(preset.regression),
                   ZRegressor(preset.z), preset.heatmap_sigma)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images (B,3,S,S) from :func:`normalize_images` -> dict of
        ``detection_logits`` (B,N,S/4,S/4), ``heatmaps`` (B,N,S,S) and
        ``landmarks`` (B,N,3): x, y, z in crop pixels (pixel centres at integers)."""
        logits = self.detection(images)
        heatmaps = self.regression(images, torch.sigmoid(logits))
        xy = decode_heatmaps(heatmaps.detach())  # argmax decoding: no gradient
        z = self.z(images, gaussian_heatmaps(xy, images.shape[-1], self.heatmap_sigma))
        return {"detection_logits": logits, "heatmaps": heatmaps,
                "landmarks": torch.cat([xy, z[..., None]], dim=-1)}


def num_parameters(module: nn.Module) -> int:
    """The number of parameters (weights and biases) of ``module``; works on the ``meta`` device."""
    return sum(p.numel() for p in module.parameters())


def landmarks_to_image(landmarks: torch.Tensor, crop_matrix: torch.Tensor) -> torch.Tensor:
    """Map landmarks (B,N,3) from crop pixels back to the original image.

    ``crop_matrix`` (B,2,3) (or (2,3)) is the similarity image -> crop stored by the
    data pipeline; x, y go through its inverse and z is divided by its scale
    s = sqrt(|det A|). Crops are never mirrored at test time (a mirroring matrix
    raises: use ``fa3d.data.transforms.unwarp_landmarks`` with the flip permutation).
    """
    return unwarp_landmarks(landmarks, crop_matrix)
