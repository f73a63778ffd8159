"""The dataset item that every fa3d dataset returns, and the landmark box."""
from __future__ import annotations

import math
from typing import TypedDict

import torch


class FaceItem(TypedDict):
    """One face, a plain dict at runtime (DataLoader collates it). Make one with :func:`face_item`.

    image: uint8 (3, H, W) RGB. landmarks: float32 (N, 3): x right, y down, in pixels with pixel
    centres at integer coordinates; z in pixels, larger = closer to the camera, zero mean (NaN for
    2D-only data). visible: bool (N,). bbox: float32 (4,) x1, y1, x2, y2. pose: float32 (3,) yaw,
    pitch, roll in degrees (:mod:`fa3d.data.pose`), NaN where unknown. id: str.
    """
    image: torch.Tensor
    landmarks: torch.Tensor
    visible: torch.Tensor
    bbox: torch.Tensor
    pose: torch.Tensor
    id: str


def landmark_box(landmarks) -> torch.Tensor:
    """The tight box (..., 4) x1, y1, x2, y2 of landmarks (..., N, 2|3) (a tensor or an array), in their
    pixels; z is ignored, a NaN x or y makes its side NaN."""
    xy = torch.as_tensor(landmarks)[..., :2]
    return torch.cat([xy.amin(-2), xy.amax(-2)], -1)


def face_item(image: torch.Tensor, landmarks: torch.Tensor, visible: torch.Tensor | None = None, pose=None,
              id: str = "", bbox: torch.Tensor | None = None) -> FaceItem:
    """A :class:`FaceItem`, checked. Defaults: every point visible, pose unknown (NaN), bbox the
    :func:`landmark_box`. ``pose``: any (yaw, pitch, roll) sequence in degrees."""
    n = len(landmarks)
    visible = torch.ones(n, dtype=torch.bool) if visible is None else visible
    pose = torch.full((3,), math.nan) if pose is None else torch.as_tensor(pose, dtype=torch.float32)
    bbox = landmark_box(landmarks) if bbox is None else bbox
    expected = {"image": (image, torch.uint8, "(3, H, W)", image.ndim == 3 and image.shape[0] == 3),
                "landmarks": (landmarks, torch.float32, f"({n}, 3)", landmarks.shape == (n, 3)),
                "visible": (visible, torch.bool, f"({n},)", visible.shape == (n,)),
                "bbox": (bbox, torch.float32, "(4,)", bbox.shape == (4,)),
                "pose": (pose, torch.float32, "(3,)", pose.shape == (3,))}
    for name, (t, dtype, shape, ok) in expected.items():
        if t.dtype != dtype or not ok:
            raise ValueError(f"item {id!r}: {name} must be {dtype} {shape}, got {t.dtype} {tuple(t.shape)}")
    return FaceItem(image=image, landmarks=landmarks, visible=visible, bbox=bbox, pose=pose, id=id)
