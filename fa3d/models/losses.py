"""The four training stages of §2.3 and their losses: which subnets each trains, the targets built on
the device that trains, one cascade forward.

    detection   sigmoid cross-entropy of the detection logits against binary disks
                (fa3d.heatmaps.disk_radius: 7 px for a 220 px face, scaled; at the logits' stride 4)
    regression  pixel-wise L2 of the regression heatmaps against Gaussians (std
                ``heatmap_sigma``) at crop resolution; detection frozen
    joint       both, summed (our choice: the paper fine-tunes both subnets jointly without
                naming the joint objective)
    z           eq. (1) on z. Per sample a coin (``z_gt_heatmap``, true with the schedule's
                ``z_gt_heatmap_prob``) says whether the Z input is rendered at the ground-truth x, y
                or at the 2D stage's prediction: the paper trains on "both", and the predicted ones
                teach the Z net to live with the 2D stage's errors it will see at test time.

Targets are made here, on the device that trains, from landmark coordinates: 66 maps at
384 px are ~39 MB per image, far too much to build on CPU workers and copy.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..heatmaps import disk_heatmaps, disk_radius, gaussian_heatmaps, resize_points
from .cascade import SUBNETS, Cascade

#: The stages in training order and the subnets each trains (the others are frozen), in the
#: cascade's order: the last one is where the stage's forward can stop.
STAGE_SUBNETS = {"detection": ("detection",), "regression": ("regression",),
                 "joint": ("detection", "regression"), "z": ("z",)}
STAGES = tuple(STAGE_SUBNETS)


def check_stages(stages, what: str = "stages") -> tuple[str, ...]:
    """``stages`` as a tuple, or a ValueError naming the first unknown one."""
    stages = tuple(stages)
    unknown = [s for s in stages if s not in STAGE_SUBNETS]
    if unknown:
        raise ValueError(f"unknown stage {unknown[0]!r} in {what}; stages are {', '.join(STAGES)}")
    return stages


def detection_loss(logits: torch.Tensor, target_maps: torch.Tensor) -> torch.Tensor:
    """Per-pixel sigmoid cross-entropy, averaged over all pixels and maps.

    logits (B, N, h, w); target_maps (B, N, h, w) binary disks (0/1, any float dtype).
    """
    return F.binary_cross_entropy_with_logits(logits, target_maps.to(logits.dtype))


def regression_loss(heatmaps: torch.Tensor, target_heatmaps: torch.Tensor) -> torch.Tensor:
    """Pixel-wise L2: mean squared error over all pixels and maps. Both (B, N, S, S)."""
    return F.mse_loss(heatmaps, target_heatmaps)


def z_loss(z_pred: torch.Tensor, z_true: torch.Tensor) -> torch.Tensor:
    """Eq. (1): mean over landmarks (and the batch) of (z̃ - z)², z in pixels. Both (B, N).

    Landmarks whose true z is NaN (2D-only datasets) are left out of the mean."""
    known = torch.isfinite(z_true)
    if bool(known.all()):
        return F.mse_loss(z_pred, z_true)
    diff = torch.where(known, z_pred - z_true.nan_to_num(0.0), torch.zeros_like(z_pred))
    return diff.square().sum() / known.sum().clamp(min=1)


class StageLoss(nn.Module):
    """The loss of one training stage, as a module (so DDP can wrap it).

    forward(images uint8 (B,3,S,S), landmarks (B,N,3) crop px, face_height (B,) crop px (the
    face box's height, which sets the disk radius), z_gt_heatmap (B,) bool) -> (loss, the cascade's
    outputs). Frozen subnets run in eval mode and without gradients (:meth:`set_mode`).
    """

    def __init__(self, cascade: Cascade, stage: str):
        super().__init__()
        check_stages([stage], "StageLoss")
        self.cascade, self.stage = cascade, stage
        self.subnets = STAGE_SUBNETS[stage]

    def trainable(self) -> list[nn.Module]:
        return [getattr(self.cascade, name) for name in self.subnets]

    def set_mode(self, train: bool) -> None:
        """Train mode and gradients for this stage's subnets; the others frozen, in eval mode."""
        for name in SUBNETS:
            on = name in self.subnets
            getattr(self.cascade, name).train(train and on).requires_grad_(on)

    def forward(self, images, landmarks, face_height, z_gt_heatmap):
        out = self.cascade(images, upto=self.subnets[-1], z_xy=landmarks, z_gt_heatmap=z_gt_heatmap)
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
