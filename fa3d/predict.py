"""Crops in, landmarks out: the one forward that evaluation, the notebooks and ``FaceAligner`` share.

    predict_crops(cascade, crops)          (V, N, 3) in crop pixels, batched, optionally with its mirror

Photos (face boxes, crops, mapping back) are :mod:`fa3d.aligner`'s job; files are :mod:`fa3d.landmark_files`'.
"""
from __future__ import annotations

import torch

from .data.schemes import flip_landmarks, scheme_for_points
from .models import Cascade
from .precision import autocast
from .schedules import STAGE_SUBNETS


@torch.no_grad()
def predict_crops(cascade: Cascade, images: torch.Tensor, stage: str = "z", batch_size: int = 64,
                  device=None, precision: str = "fp32", flip: bool = False) -> torch.Tensor:
    """Landmarks (V, N, 3) in crop pixels (on the CPU) for uint8 crops (V, 3, S, S), with the
    cascade trained up to ``stage`` (a training stage): after "detection" x, y come from the
    detection maps, after "regression"/"joint" from the hourglass, and z (centred to zero mean,
    like the ground truth) only from "z" on; before it z is 0. ``precision``: "fp32", or "bf16" / "fp16"
    autocast on the device (:mod:`fa3d.precision`; the landmarks come back as float32 either way).

    ``flip``: test-time mirroring, our choice (the paper does not say): also predict the mirrored
    crops, mirror those landmarks back (x -> S - 1 - x, left and right points swapped with the
    scheme's flip permutation; z is unchanged by a mirror) and average the two."""
    if flip:
        plain = predict_crops(cascade, images, stage, batch_size, device, precision)
        mirrored = predict_crops(cascade, images.flip(-1), stage, batch_size, device, precision)
        return (plain + flip_landmarks(mirrored, images.shape[-1], scheme_for_points(plain.shape[1]))) / 2
    device = device or next(cascade.parameters()).device
    upto = STAGE_SUBNETS[stage][-1]
    was_training = cascade.training
    cascade.eval()
    outs = []
    for i in range(0, len(images), batch_size):
        with autocast(precision, device):
            outs.append(cascade(images[i:i + batch_size].to(device), upto=upto)["landmarks"].float().cpu())
    cascade.train(was_training)
    return torch.cat(outs) if outs else torch.zeros(0, cascade.num_landmarks, 3)
