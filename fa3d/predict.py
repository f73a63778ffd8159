"""Crops in, landmarks out: the one forward that evaluation, the notebooks and ``FaceAligner`` share.

    predict_crops(cascade, crops)                      (V, N, 3) in crop pixels, batched, optionally with its mirror
    predict_faces(cascade, images, boxes, size)        (V, N, 3) in image pixels: crop, predict, map back,
                                                       optionally averaged over several crop scales

Finding faces and re-cropping around them are :mod:`fa3d.app.aligner`'s job; files are :mod:`fa3d.app.landmark_files`'.
"""
from __future__ import annotations

import torch

from .data.schemes import flip_landmarks, scheme_for_points
from .data.transforms import face_crop_matrix, unwarp_landmarks, warp_image
from .models import STAGE_SUBNETS, Cascade
from .precision import autocast

#: Optional test-time crop scales (fa3d's; the paper uses one crop per face): the evaluation crop, and
#: crops with a 10 % smaller and a 10 % larger side, inside the training augmentation's scale range
#: (0.85-1.15). Each sees the face at another size on the heatmap grid, so their average cancels part
#: of the sub-pixel decoding error. Off by default: on fa3d 0.4's shipped model with flip it lowered the
#: 200 synthetic test faces' NME from 3.11 to 2.93 % (±3 %: 3.04, ±6 %: 2.98) but not the 8 real
#: development faces' (5.79 -> 5.83 % on average), at 3x the time.
MULTI_SCALE = (0.9, 1.0, 1.1)


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
    device = device or next(cascade.parameters()).device
    upto = STAGE_SUBNETS[stage][-1]

    def one_pass(crops):
        outs = []
        for i in range(0, len(crops), batch_size):
            with autocast(precision, device):
                outs.append(cascade(crops[i:i + batch_size].to(device), upto=upto)["landmarks"].float().cpu())
        return torch.cat(outs) if outs else torch.zeros(0, cascade.num_landmarks, 3)

    was_training = cascade.training
    if was_training:   # .train()/.eval() walk every module: ~5 ms a call for the quick cascade
        cascade.eval()
    pred = one_pass(images)
    if flip:
        mirrored = one_pass(images.flip(-1))
        pred = (pred + flip_landmarks(mirrored, images.shape[-1], scheme_for_points(pred.shape[1]))) / 2
    if was_training:
        cascade.train()
    return pred


@torch.no_grad()
def predict_faces(cascade: Cascade, images, boxes, image_size: int, *, scales=(1.0,), flip: bool = False,
                  batch_size: int = 64, device=None, precision: str = "fp32") -> torch.Tensor:
    """Landmarks (V, N, 3) float64 in image pixels for V faces.

    ``images``: V uint8 (3, H, W) images, one per face (the same tensor may repeat); ``boxes``: V face
    boxes (x1, y1, x2, y2). Each face is cropped as in evaluation (:func:`face_crop_matrix`, the
    ``image_size`` crop), once per entry of ``scales`` (factors on the crop's side, e.g.
    :data:`MULTI_SCALE`); each crop's landmarks are mapped back to the image (z scaled like x and y)
    and the crops' landmarks averaged. ``flip``: also average each crop with its mirror image."""
    if not scales:
        raise ValueError("scales: at least one crop scale is needed, e.g. (1.0,)")
    if len(boxes) == 0:
        return torch.zeros(0, cascade.num_landmarks, 3, dtype=torch.float64)
    total = None
    for scale in scales:
        A = torch.stack([face_crop_matrix(box, image_size, scale=float(scale)) for box in boxes])
        crops = torch.stack([warp_image(image, A[k].to(image.device), image_size) for k, image in enumerate(images)])
        pred = unwarp_landmarks(predict_crops(cascade, crops, "z", batch_size, device, precision, flip).double(), A)
        total = pred if total is None else total + pred
    return total / len(scales)
