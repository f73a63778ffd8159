"""What is around a synthetic head, and the camera that photographs it.

:mod:`fa3d.data.synthetic` renders the head; this module adds what makes a render read as a
photograph (Wood et al., "Fake It Till You Make It", ICCV 2021, list the same levers):

- **Body** (:func:`body_points`): a neck under the jaw and shoulders in clothes, as 3D points
  splatted into the head's z-buffer, so the chin ends on a neck, not on a background.
- **Glasses** (:func:`glasses_points`): two rims, a bridge and the arms, also 3D points, in
  front of the eyes; they hide what they cover, landmarks included.
- **Occluders** (:func:`occlude`): a hand-like blob or an object over part of the face, in 2D;
  the landmarks it covers are marked hidden and keep their positions (as in 3DFAW).
- **Backgrounds** (:func:`tone_background`): the procedural clutter, desaturated and toned
  toward one colour as rooms and outdoor scenes are, sometimes blurred (depth of field).
- **Camera** (:func:`camera_effects`): blur, colour cast, gamma, greyscale, sensor noise and
  JPEG, in that order, as a camera applies them.

Everything is drawn by the caller from the face's own generator, so an item still depends only on
(seed, index). Head frame as in :mod:`fa3d.data.synthetic`: x right, y down, z toward the
camera, in head units (the head is about 2 units tall).
"""
from __future__ import annotations

import io

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .pose import rotation_matrix

SPACING_PX = 1.2   # on-screen distance between body/glasses points: below sqrt(2), 2x2 splats leave no holes


def to_camera(points: np.ndarray, rot: np.ndarray, scale: float, offset: np.ndarray) -> np.ndarray:
    """Head-frame points (M, 3) -> pixels (M, 3): rotated, scaled to pixels, x, y moved by the frame's
    offset; z in pixels (the one camera of the head, its landmarks, body and glasses)."""
    cam = points @ rot.T * scale
    cam[:, :2] += offset
    return cam


def _lambert(normals: np.ndarray, light, ambient: float, diffuse: float) -> np.ndarray:
    n = normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)
    return ambient + diffuse * np.clip(n @ np.asarray(light), 0, None)


def body_points(p, rot: np.ndarray, scale: float, offset: np.ndarray, image_size: int):
    """Neck and shoulders as camera-space points (M, 3) in pixels and their colours (M, 3) in [0, 1].

    The neck (an elliptic cylinder under the jaw) turns with the head; the torso turns with a
    fraction of the head's yaw and roll about the neck's base, as a body does when the head turns.
    ``p`` is a :class:`~fa3d.data.synthetic.SyntheticFaceParams`; ``rot`` the head rotation;
    ``scale``, ``offset``: the head's pixels per unit and 2D offset in an image ``image_size`` px wide.
    """
    skin, cloth = np.asarray(p.skin, np.float32), np.asarray(p.cloth_color, np.float32)
    # Neck: radii rx, rz around (0, y, -0.2), from inside the head (y 0.2) to the shoulders (y 1.9).
    rx, rz = 0.40 * p.neck_width, 0.42 * p.neck_width
    n_phi = max(16, int(2 * np.pi * rx * scale / SPACING_PX))
    n_y = max(4, int(1.7 * scale / SPACING_PX))
    phi = np.linspace(-np.pi, np.pi, n_phi, endpoint=False)
    ys = np.linspace(0.2, 1.9, n_y)
    PH, Y = np.meshgrid(phi, ys)
    neck = np.stack([rx * np.sin(PH), Y, rz * np.cos(PH) - 0.2], -1).reshape(-1, 3)
    neck_n = np.stack([np.sin(PH) / rx, 0 * PH, np.cos(PH) / rz], -1).reshape(-1, 3)
    shadow = np.clip((Y.ravel() - 0.9) / 0.5, 0, 1) * 0.45 + 0.55       # the jaw shades the upper neck
    neck_col = skin[None] * (0.93 * shadow)[:, None]

    # Torso: an elliptic cylinder whose top closes in rounded shoulders onto the neck's base.
    # Only its front half (as the camera sees it) is made: the back is always hidden.
    base = np.array([0.0, 1.55, -0.25])
    ax, az = 1.75 * p.shoulder_width, 0.8
    turn = np.radians(p.body_turn * p.yaw)
    n_phi = max(24, int(np.pi * 1.2 * ax * scale / SPACING_PX))
    n_h = max(6, int(2.0 * scale / SPACING_PX))
    phi = np.linspace(-0.6 * np.pi, 0.6 * np.pi, n_phi) - turn
    h = np.linspace(0, 1, n_h)
    body_rot = rotation_matrix(p.body_turn * p.yaw, 0.0, p.body_turn * p.roll)
    # ... and only the rows that can reach the image (most of a torso is below the frame).
    row_y = scale * ((rot @ base)[1] + body_rot[1, 1] * (0.1 + 2.0 * h)) + offset[1]
    reach = scale * ax * abs(body_rot[1, 0]) + 2
    h = h[(row_y - reach < image_size) & (row_y + reach > 0)]
    PH, H = np.meshgrid(phi, h)
    width = np.sqrt(np.clip(H / 0.18, 0.05, 1.0))                       # shoulders: round from the neck out
    torso = np.stack([ax * width * np.sin(PH), 0.1 + 2.0 * H, az * width * np.cos(PH)], -1).reshape(-1, 3)
    torso_n = np.stack([np.sin(PH) / ax, -0.6 * (H < 0.18), np.cos(PH) / az], -1).reshape(-1, 3)
    torso = torso @ body_rot.T + rot @ base
    torso_n = torso_n @ body_rot.T
    stripes = 1 + p.cloth_pattern * np.sin(40 * H.ravel() + 3 * np.sin(5 * PH.ravel()))
    torso_col = cloth[None] * stripes[:, None].astype(np.float32)

    pts = np.concatenate([to_camera(neck, rot, scale, offset), to_camera(torso, np.eye(3), scale, offset)])
    normals = np.concatenate([neck_n @ rot.T, torso_n])
    col = np.concatenate([neck_col, torso_col]) * _lambert(normals, p.light_dir, p.ambient, p.diffuse)[:, None]
    return pts.astype(np.float32), np.clip(col, 0, 1).astype(np.float32)


def glasses_points(p, eye_centres: np.ndarray, eye_half_width: float, rot: np.ndarray, scale: float,
                   offset: np.ndarray, arm_end_x: float):
    """Glasses as camera-space points (M, 3) and colours (M, 3): rims, bridge and arms.

    eye_centres: (2, 3) head-frame centres of the two eyes (image-left first); eye_half_width:
    head units. The lenses sit 0.12 units in front of the eyes; the arms run back to the ears, at
    |x| = ``arm_end_x`` (head units: where the head's sides are).
    """
    a = 1.35 * eye_half_width * p.glasses_size
    b = 0.75 * a
    z_lens = eye_centres[:, 2].max() + 0.12
    thick = 0.012 + 0.02 * p.glasses_frame
    step = SPACING_PX / scale
    parts = []
    n_t = max(24, int(2 * np.pi * a / step))
    t = np.linspace(0, 2 * np.pi, n_t, endpoint=False)
    for k, centre in enumerate(eye_centres):
        for d in np.arange(0, thick + 1e-9, step * 0.8):
            parts.append(np.stack([centre[0] + (a + d) * np.cos(t), centre[1] - 0.02 + (b + d) * np.sin(t),
                                   np.full_like(t, z_lens)], 1))
    inner = eye_centres[:, 0] + np.array([a, -a])
    n_b = max(4, int(abs(inner[1] - inner[0]) / step) + 1)
    xb = np.linspace(inner[0], inner[1], n_b)
    for d in np.arange(0, thick + 1e-9, step * 0.8):
        parts.append(np.stack([xb, np.full_like(xb, eye_centres[0, 1] - 0.04 - d), np.full_like(xb, z_lens)], 1))
    for side, centre in ((-1, eye_centres[0]), (1, eye_centres[1])):
        x0 = centre[0] + side * a
        n_a = max(6, int(0.9 / step))
        s = np.linspace(0, 1, n_a)
        parts.append(np.stack([x0 + side * (arm_end_x - abs(x0)) * s, np.full_like(s, centre[1] - 0.03),
                               z_lens - 1.0 * s], 1))
    pts = to_camera(np.concatenate(parts), rot, scale, offset)
    col = np.broadcast_to(np.asarray(p.glasses_color, np.float32), (len(pts), 3))
    return pts.astype(np.float32), (col * np.float32(0.5 + 0.5 * p.ambient)).astype(np.float32)


def tone_background(image: np.ndarray, saturation: float, tone, tone_mix: float, blur: float) -> np.ndarray:
    """Rooms and streets are less garish than random colours: scale the saturation, blend toward
    one ``tone`` (3,), and blur by ``blur`` px (depth of field). image (S, S, 3) in [0, 1]."""
    grey = image.mean(2, keepdims=True)
    out = grey + saturation * (image - grey)
    out = out + tone_mix * (np.asarray(tone, np.float32) - out)
    return _gaussian_blur(out, blur) if blur > 0.3 else out


def _gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of an (S, S, 3) float image, edges replicated."""
    r = max(1, int(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2).astype(np.float32)
    k = torch.from_numpy(k / k.sum())
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))[:, None]  # (3, 1, S, S)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return x[:, 0].permute(1, 2, 0).numpy()


def occlude(image: np.ndarray, landmarks_xy: np.ndarray, visible: np.ndarray, p, rng: np.random.Generator):
    """Paint one occluder over part of the face: ``p.occluder`` 1 = a hand-like skin blob from the
    image edge, 2 = an object (flat or striped). Landmarks under it become hidden.

    image (S, S, 3) float, landmarks_xy (N, 2) pixels, visible (N,) bool; returns both updated.
    """
    S = image.shape[0]
    lo, hi = landmarks_xy.min(0), landmarks_xy.max(0)
    size = (hi - lo).mean()
    target = lo + rng.uniform(0.1, 0.9, 2) * (hi - lo)            # a point of the face it covers
    ang = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(ang), np.sin(ang)])                # it comes in from this side
    ax = size * rng.uniform(0.1, 0.22)                              # half-width across
    length = size * rng.uniform(0.6, 1.4)
    y, x = np.mgrid[0:S, 0:S].astype(np.float32)
    d = np.stack([x - target[0], y - target[1]], -1)
    along = d @ direction                                           # > 0: toward the edge it comes from
    across = d @ np.array([-direction[1], direction[0]])
    mask = (along > -ax) & (along < length) & (np.abs(across) < ax)
    mask |= ((along / ax) ** 2 + (across / ax) ** 2) < 1             # rounded tip
    if p.occluder == 1:
        colour = np.asarray(p.occluder_color, np.float32)
        shade = 0.8 + 0.2 * np.cos(np.clip(across / ax, -1, 1) * np.pi / 2)      # a rounded limb
        fingers = 1 - 0.25 * (np.cos(across / ax * 2.5 * np.pi) > 0.92) * (along < 0.5 * ax)
        fill = colour[None, None] * (shade * fingers)[..., None]
    else:
        colour = np.asarray(p.occluder_color, np.float32)
        stripes = 0.5 + 0.5 * np.sign(np.sin(across / ax * rng.uniform(2, 8)))
        fill = colour[None, None] * (1 - 0.35 * stripes * (rng.uniform() < 0.5))[..., None]
    image = np.where(mask[..., None], fill, image)
    ix = np.clip(np.rint(landmarks_xy).astype(int), 0, S - 1)
    covered = mask[ix[:, 1], ix[:, 0]]
    return image, visible & ~covered


def camera_effects(image: np.ndarray, p) -> np.ndarray:
    """A camera's look on an (S, S, 3) float image in [0, 1]: optical blur (``p.blur`` px),
    white-balance cast (``p.color_cast``, per-channel gains), gamma, greyscale; uint8 (S, S, 3)
    out, JPEG-compressed at ``p.jpeg_quality`` when it is > 0. Sensor noise is the renderer's."""
    if p.blur > 0.3:
        image = _gaussian_blur(image, p.blur)
    image = np.clip(image * np.asarray(p.color_cast, np.float32), 0, 1) ** np.float32(p.gamma)
    if p.grayscale:
        image = np.repeat(image @ np.array([0.299, 0.587, 0.114], np.float32), 3).reshape(image.shape)
    out = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    if p.jpeg_quality > 0:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(p.jpeg_quality))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return out
