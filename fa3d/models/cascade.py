"""The whole system (paper Fig. 1) in one forward: detection -> regression -> Z, on face crops.

    images (B,3,S,S) --normalise--> x
    x --DetectionNet--> logits (B,N,S/4,S/4) --sigmoid--> detection maps --decode--> detection_xy
    (x, maps[, its stride-4 features]) --RegressionNet--> heatmaps (B,N,S,S) --decode--> xy
    (x, Gaussians re-rendered at xy) --ZRegressor--> z
    landmarks = (xy, z - mean z)

This forward is the only place the chain is written: training losses (fa3d.models.losses),
prediction (fa3d.predict), evaluation, the figures and the notebooks all call it, with
``upto`` to stop after a subnet and ``z_xy`` to render the Z input at given points.

The paper feeds the Z regressor the stacked regression heatmaps and trains it on
heatmaps made from the ground truth *and* from the 2D stage. Here the Z input is
always Gaussians (std ``heatmap_sigma``) rendered at points: at test time at the
decoded points, in training at ground-truth or predicted points. The test input is
then the same kind of image as the training input, whatever the regression heatmaps
look like (blurred, two-peaked, scaled). This is our choice; the paper is not specific.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..heatmaps import decode_heatmaps, gaussian_heatmaps, resize_points
from .detection import DetectionNet
from .presets import Preset
from .regression import RegressionNet
from .zregressor import ZRegressor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The subnetworks in the order of the chain; ``upto`` names the last one to run.
SUBNETS = ("detection", "regression", "z")


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
    """The three subnetworks of one preset; :meth:`forward` works in crop pixels."""

    def __init__(self, detection: DetectionNet, regression: RegressionNet, z: ZRegressor,
                 heatmap_sigma: float, num_landmarks: int, decode_smoothing: float = 0.0):
        super().__init__()
        self.detection, self.regression, self.z = detection, regression, z
        self.heatmap_sigma, self.num_landmarks = heatmap_sigma, num_landmarks
        self.decode_smoothing = decode_smoothing
        self.channels_last = False

    @classmethod
    def from_preset(cls, preset: Preset, pretrained: bool = False) -> "Cascade":
        """A fresh cascade for ``preset`` (ImageNet detection backbone if ``pretrained``)."""
        N = preset.num_landmarks
        detection = dataclasses.replace(preset.detection, pretrained=pretrained or preset.detection.pretrained)
        detection = DetectionNet(detection, N)
        regression = RegressionNet(preset.regression, N, detection.backbone.stride4_channels)
        return cls(detection, regression, ZRegressor(preset.z, N), preset.heatmap_sigma, N, preset.decode_smoothing)

    def to_channels_last(self) -> "Cascade":
        """Weights and every input in channels_last layout (faster convolutions on GPUs)."""
        self.to(memory_format=torch.channels_last)
        self.channels_last = True
        return self

    def forward(self, images: torch.Tensor, upto: str = "z", z_xy: torch.Tensor | None = None,
                z_gt_heatmap: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Run the chain on crops and return every intermediate.

        images: (B,3,S,S) uint8 (0-255) or float (0-1), not normalised.
        upto: the last subnet to run, "detection", "regression" or "z".
        z_xy: (B,N,2+) crop pixels at which the Z input is rendered instead of the decoded
            ``xy`` (training on ground-truth heatmaps); z_gt_heatmap (B,) bool: only for those samples.
        Returns a dict (crop pixels, pixel centres at integers):
            detection_logits, detection_maps (B,N,S/4,S/4) (maps = sigmoid of the logits),
            detection_xy (B,N,2) their decoded peaks;
            heatmaps (B,N,S,S) [upto >= regression];
            xy (B,N,2) from the last 2D subnet run (argmax decoding: no gradient);
            z_input (B,N,s,s) (s: ``ZConfig.input_size``, default S) and z (B,N) the Z net's raw
            output in crop pixels [upto == z];
            landmarks (B,N,3): xy and z centred to zero mean per face (like the ground
            truth; 0 before the Z net runs).
        """
        if upto not in SUBNETS:
            raise ValueError(f"upto must be one of {SUBNETS}, got {upto!r}")
        x = normalize_images(images)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        S = int(x.shape[-1])   # int: a constant, not a tensor, when traced (ONNX export)
        features = None
        if self.regression.feature_stem is not None and upto != "detection":
            logits, features = self.detection(x, return_features=True)
        else:
            logits = self.detection(x)
        maps = torch.sigmoid(logits.float())
        out = {"detection_logits": logits, "detection_maps": maps,
               "detection_xy": resize_points(decode_heatmaps(maps.detach()), int(maps.shape[-1]), S)}
        out["xy"] = out["detection_xy"]
        if upto != "detection":
            out["heatmaps"] = self.regression(x, maps, features)
            out["xy"] = decode_heatmaps(out["heatmaps"].detach().float(), smoothing=self.decode_smoothing)
        if upto != "z":
            out["landmarks"] = torch.cat([out["xy"], torch.zeros_like(out["xy"][..., :1])], -1)
            return out
        at = out["xy"]
        if z_xy is not None:
            at = z_xy[..., :2] if z_gt_heatmap is None else torch.where(z_gt_heatmap[:, None, None], z_xy[..., :2], at)
        zs = self.z.config.input_size or S            # ZConfig.input_size: the Z net may see a smaller crop
        if S % zs:
            raise ValueError(f"the Z net's input size {zs} must divide the crop's side {S}")
        if zs == S:
            x_z, z_input = x, gaussian_heatmaps(at, S, self.heatmap_sigma)
        else:   # a box average (exact for the crop's pixel grid) and the Gaussians at the same scale
            x_z = F.avg_pool2d(x, S // zs)
            z_input = gaussian_heatmaps(resize_points(at, S, zs), zs, self.heatmap_sigma * zs / S)
        z_input = z_input.to(x.dtype)
        if self.channels_last:
            z_input = z_input.contiguous(memory_format=torch.channels_last)
        z = self.z(x_z, z_input).float()
        if zs != S:
            z = z * (S / zs)   # the Z net's pixels -> crop pixels
        out.update(z_input=z_input, z=z,
                   landmarks=torch.cat([out["xy"], (z - z.mean(-1, keepdim=True))[..., None]], -1))
        return out


def num_parameters(module: nn.Module) -> int:
    """The number of parameters (weights and biases) of ``module``; works on the ``meta`` device."""
    return sum(p.numel() for p in module.parameters())
