"""The training loss of each stage (paper §2.3): targets built on the device, one cascade forward.

    detection   sigmoid cross-entropy of the detection logits against binary disks
                (radius 7 px for a 220 px face, scaled; at the logits' stride 4)
    regression  pixel-wise L2 of the regression heatmaps against Gaussians (std
                ``heatmap_sigma``) at crop resolution; detection frozen
    joint       both, summed
    z           eq. (1) on z. Per sample a coin (``gt_heatmaps``) says whether the Z input is
                rendered at the ground-truth x, y or at the 2D stage's prediction: the paper
                trains on "both", and the predicted ones teach the Z net to live with the 2D
                stage's errors it will see at test time.

Targets are made here, on the device that trains, from landmark coordinates: 66 maps at
384 px are ~39 MB per image, far too much to build on CPU workers and copy.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .heatmaps import disk_heatmaps, disk_radius, gaussian_heatmaps, resize_points
from .models import SUBNETS, Cascade, detection_loss, regression_loss, z_loss
from .schedules import STAGE_SUBNETS


class StageLoss(nn.Module):
    """The loss of one training stage, as a module (so DDP can wrap it).

    forward(images uint8 (B,3,S,S), landmarks (B,N,3) crop px, face_height (B,) crop px,
    gt_heatmaps (B,) bool) -> (loss, the cascade's outputs). Frozen subnets run in eval mode
    and without gradients (:meth:`set_mode`).
    """

    def __init__(self, cascade: Cascade, stage: str):
        super().__init__()
        if stage not in STAGE_SUBNETS:
            raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGE_SUBNETS)}")
        self.cascade, self.stage = cascade, stage
        self.subnets = STAGE_SUBNETS[stage]

    def trainable(self) -> list[nn.Module]:
        return [getattr(self.cascade, name) for name in self.subnets]

    def set_mode(self, train: bool) -> None:
        """Train mode and gradients for this stage's subnets; the others frozen, in eval mode."""
        for name in SUBNETS:
            on = name in self.subnets
            getattr(self.cascade, name).train(train and on).requires_grad_(on)

    def forward(self, images, landmarks, face_height, gt_heatmaps):
        out = self.cascade(images, upto=self.subnets[-1], z_xy=landmarks, z_xy_mask=gt_heatmaps)
        if self.stage == "z":
            return z_loss(out["z"], landmarks[..., 2]), out
        S, loss = images.shape[-1], 0.0
        if "detection" in self.subnets:
            logits = out["detection_logits"]
            h = logits.shape[-1]
            radius = disk_radius(face_height * h / S)            # in map pixels, like the points
            loss = loss + detection_loss(logits.float(), disk_heatmaps(resize_points(landmarks, S, h), h, radius))
        if "regression" in self.subnets:
            target = gaussian_heatmaps(landmarks, S, self.cascade.heatmap_sigma)
            loss = loss + regression_loss(out["heatmaps"].float(), target)
        return loss, out
