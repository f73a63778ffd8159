"""3D-aware face crops and augmentation (paper §2.3).

Every geometric step (crop, scale, rotation, flip) is one 2×3 similarity matrix
``A`` that maps *original-image* pixel coordinates to *crop* pixel coordinates,
with pixel centres at integer coordinates (fa3d's convention)::

    [x', y'] = A[:, :2] @ [x, y] + A[:, 2]

The steps are composed into one matrix and the image is resampled once, so the
image and the landmarks can never drift apart. Landmarks follow the same matrix:

- x, y -> A · [x, y, 1];
- z -> z · s with s = sqrt(|det A[:, :2]|), the similarity's scale: a crop that
  makes the face k× bigger makes its depth k× bigger too (z is in pixels);
  rotations leave z alone and z stays zero-mean because it is only scaled;
- a mirror (det < 0) flips x only and re-indexes the points with the scheme's
  flip permutation, so that point 36 is still the subject's right eye corner.

Matrices are float64 torch tensors (numpy arrays are accepted as input);
items store theirs as ``crop_matrix`` (2, 3) float32 so predictions made on the
crop can be mapped back with :func:`unwarp_landmarks`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from .item import landmark_box
from .schemes import LandmarkScheme, get_scheme, scheme_for_points

DEFAULT_EXTEND = 0.225  # the paper extends the face box by 20-25 %; we take the middle
_ANTIALIAS_BELOW = 0.75  # pre-shrink the source with an antialiased resize when s < this


# ----------------------------------------------------------------------------- matrices

def _as_matrix(A, device=None) -> torch.Tensor:
    """A (..., 2, 3) as a float64 tensor (numpy or torch input)."""
    A = torch.as_tensor(A, dtype=torch.float64, device=device)
    if A.shape[-2:] != (2, 3):
        raise ValueError(f"expected a (..., 2, 3) similarity matrix, got shape {tuple(A.shape)}")
    return A


def similarity_matrix(center, side: float, out_size: int, angle_deg: float = 0.0,
                      flip: bool = False) -> torch.Tensor:
    """(2, 3) float64 matrix that maps a square window onto an ``out_size`` crop.

    The window has side ``side`` pixels, is centred on ``center`` = (x, y) in the
    original image and turned by ``angle_deg``: a positive angle turns the image
    content counter-clockwise on screen (y points down). The window's edges land
    on the crop's edges (-0.5 and out_size - 0.5), so the scale is out_size / side.
    ``flip`` then mirrors the crop left-right: x' -> out_size - 1 - x'.
    """
    if side <= 0:
        raise ValueError(f"crop side must be positive, got {side}")
    k = out_size / side
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    M = torch.tensor([[c, s], [-s, c]], dtype=torch.float64) * k
    if flip:
        M[0] = -M[0]
    centre = torch.as_tensor(center, dtype=torch.float64).reshape(2)
    t = torch.full((2,), (out_size - 1) / 2, dtype=torch.float64) - M @ centre
    return torch.cat([M, t[:, None]], dim=1)


def face_crop_matrix(bbox, out_size: int, extend: float = DEFAULT_EXTEND, scale: float = 1.0) -> torch.Tensor:
    """(2, 3) matrix of the square evaluation crop around a face box.

    The crop is centred on the centre of ``bbox`` = (x1, y1, x2, y2) and its side
    is (1 + extend) × max(w, h) of the box: the paper extends the box by 20-25 %,
    we default to 22.5 % of the longer side (a square crop keeps the face's aspect).
    ``scale`` multiplies that side (test-time scales, :data:`fa3d.predict.MULTI_SCALE`).
    """
    centre, size = _centre_size(bbox)
    return similarity_matrix(centre, (1 + extend) * size * scale, out_size)


def _centre_size(bbox) -> tuple[tuple[float, float], float]:
    """Centre (x, y) and longer side of a face box (x1, y1, x2, y2), in pixels; a degenerate box is an error."""
    x1, y1, x2, y2 = (float(v) for v in torch.as_tensor(bbox).reshape(4))
    size = max(x2 - x1, y2 - y1)
    if not size > 0:
        raise ValueError(f"degenerate face box {(x1, y1, x2, y2)}: width and height are not positive")
    return ((x1 + x2) / 2, (y1 + y2) / 2), size


def similarity_scale(A) -> torch.Tensor:
    """s = sqrt(|det A[..., :2]|): how much the matrix magnifies lengths. Shape (...)."""
    return _as_matrix(A).narrow(-1, 0, 2).det().abs().sqrt()


def is_mirrored(A) -> torch.Tensor:
    """True where the matrix flips the image (det < 0). Shape (...), bool."""
    return _as_matrix(A).narrow(-1, 0, 2).det() < 0


def invert_matrix(A) -> torch.Tensor:
    """The inverse similarity (crop pixels -> original pixels), (..., 2, 3) float64."""
    A = _as_matrix(A)
    M_inv = torch.linalg.inv(A[..., :2])
    return torch.cat([M_inv, -(M_inv @ A[..., 2:])], dim=-1)


def compose_matrices(second, first) -> torch.Tensor:
    """The matrix that applies ``first`` and then ``second``, (..., 2, 3) float64."""
    second, first = _as_matrix(second), _as_matrix(first)
    M = second[..., :2] @ first[..., :2]
    return torch.cat([M, second[..., :2] @ first[..., 2:] + second[..., 2:]], dim=-1)


# ----------------------------------------------------------------------------- landmarks

def warp_landmarks(landmarks: torch.Tensor, A, flip_permutation=None) -> torch.Tensor:
    """Map landmarks (..., N, 3) (or (..., N, 2)) through A (2, 3) or (..., 2, 3).

    x, y -> A·[x, y, 1]; z -> z·s. Where A mirrors the image, points are
    re-indexed: output point i is the warped input point ``flip_permutation[i]``
    (pass ``get_scheme(...).flip_permutation``; required for mirroring matrices).
    Returns the same dtype and device as ``landmarks``.
    """
    A = _as_matrix(A, landmarks.device)
    lm = landmarks.to(torch.float64)
    xy = lm[..., :2] @ A[..., :2].transpose(-1, -2) + A[..., None, :, 2]
    det = A[..., :2].det()
    z = lm[..., 2:] * det.abs().sqrt()[..., None, None]
    out = torch.cat([xy, z], dim=-1)
    mirrored = det < 0
    if mirrored.any():
        if flip_permutation is None:
            raise ValueError("the matrix mirrors the image: pass flip_permutation "
                             "(get_scheme(...).flip_permutation) so left/right points are re-indexed")
        perm = torch.as_tensor(flip_permutation, dtype=torch.long, device=out.device)
        if perm.numel() != out.shape[-2]:
            raise ValueError(f"flip_permutation has {perm.numel()} entries for {out.shape[-2]} landmarks")
        out = torch.where(mirrored[..., None, None], out[..., perm, :], out)
    return out.to(landmarks.dtype)


def unwarp_landmarks(landmarks: torch.Tensor, A, flip_permutation=None) -> torch.Tensor:
    """Inverse of :func:`warp_landmarks`: crop pixels -> original pixels, z divided by s.

    For a mirroring A pass the same ``flip_permutation`` used to warp; the
    points are re-indexed back.
    """
    inv_perm = None
    if flip_permutation is not None:
        inv_perm = torch.argsort(torch.as_tensor(flip_permutation, dtype=torch.long))
    return warp_landmarks(landmarks, invert_matrix(A), inv_perm)


# ----------------------------------------------------------------------------- images

def size_hw(size) -> tuple[int, int]:
    """(H, W) from an int side or an (H, W) pair."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def _shrink(image: torch.Tensor, A: torch.Tensor, factor: float):
    """Antialiased resize of (1, C, H, W) by ``factor``; returns the image and the matrix
    that maps the *resized* image's pixels to the crop (pixel centres kept exact)."""
    H, W = image.shape[-2:]
    h, w = max(1, round(H * factor)), max(1, round(W * factor))
    small = F.interpolate(image, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    # small pixel x_s <-> original pixel x = (x_s + 0.5) * W / w - 0.5
    up = torch.tensor([[W / w, 0, 0.5 * W / w - 0.5], [0, H / h, 0.5 * H / h - 0.5]],
                      dtype=torch.float64, device=A.device)
    return small, compose_matrices(A, up)


def _sample(image: torch.Tensor, A: torch.Tensor, out_hw, fill: float) -> torch.Tensor:
    """One grid_sample of float (B, C, H, W) through A (B, 2, 3) -> (B, C, h, w)."""
    B, C, H, W = image.shape
    h, w = out_hw
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64, device=image.device),
                            torch.arange(w, dtype=torch.float64, device=image.device), indexing="ij")
    dst = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(1, -1, 3)
    src = dst @ invert_matrix(A).transpose(-1, -2)  # (B, h*w, 2) source pixel coordinates
    # align_corners=False: pixel centre x sits at (2x + 1) / W - 1 in grid units
    size = torch.tensor([W, H], dtype=torch.float64, device=image.device)
    grid = ((2 * src + 1) / size - 1).reshape(B, h, w, 2).to(image.dtype)
    if fill == 0:
        return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    ones = torch.ones_like(image[:, :1])
    out = F.grid_sample(torch.cat([image, ones], 1), grid, mode="bilinear",
                        padding_mode="zeros", align_corners=False)
    return out[:, :C] + (1 - out[:, C:]) * fill


def warp_image(image: torch.Tensor, A, out_size, fill: float = 0.0,
               antialias: bool = True) -> torch.Tensor:
    """Resample an image through A (original pixels -> crop pixels), bilinear.

    Args:
        image: (3, H, W) or (B, 3, H, W), uint8 or float.
        A: (2, 3) or (B, 2, 3) similarity matrix.
        out_size: int or (h, w) of the output.
        fill: value of pixels that fall outside the source image (in the image's units).
        antialias: when the source is shrunk by more than 25 % (s < 0.75) it is first
            downsized with an antialiased resize, so small crops of big images do not alias.
    Returns the warped image, same dtype, layout and device as ``image``.
    """
    single = image.dim() == 3
    x = image[None] if single else image
    B = x.shape[0]
    A = _as_matrix(A, x.device).expand(B, 2, 3)
    out_hw = size_hw(out_size)
    work = x.float() if x.dtype == torch.uint8 else x
    scale = similarity_scale(A)
    if antialias and (scale < _ANTIALIAS_BELOW).any():
        parts = []
        for i in range(B):
            xi, Ai = work[i:i + 1], A[i:i + 1]
            if scale[i] < _ANTIALIAS_BELOW:
                xi, Ai = _shrink(xi, Ai, float(scale[i]))
            parts.append(_sample(xi, Ai, out_hw, fill))
        out = torch.cat(parts)
    else:
        out = _sample(work, A, out_hw, fill)
    if x.dtype == torch.uint8:
        out = out.round().clamp(0, 255).to(torch.uint8)
    return out[0] if single else out


# ----------------------------------------------------------------------------- items

def face_box(item: dict) -> torch.Tensor:
    """The item's ``bbox``, else the box (x1, y1, x2, y2) of its landmarks."""
    return item["bbox"] if "bbox" in item else landmark_box(item["landmarks"])


def warp_sample(item: dict, A, out_size: int, scheme: str | LandmarkScheme | None = None,
                fill: float = 0.0) -> dict:
    """Apply the similarity A to a dataset item; returns a new dict (the input is untouched).

    image -> (3, out_size, out_size); landmarks via :func:`warp_landmarks`; for a
    mirroring A ``visible`` is re-indexed and yaw and roll change sign; A's in-plane
    rotation is added to the roll (exact in fa3d's pose convention, :mod:`fa3d.data.pose`).
    bbox: its centre is mapped by A and its width and height are scaled by s (with a
    rotation this is the face's box in its own frame, not the hull of the turned box).
    ``crop_matrix`` (2, 3) float32 maps original-image pixels to crop
    pixels; an item that already had one gets the composition.
    ``scheme`` gives the flip permutation; None picks the scheme by landmark count.
    """
    A = _as_matrix(A)
    s = float(similarity_scale(A))
    mirrored = bool(is_mirrored(A))
    perm = None
    if mirrored and "landmarks" in item:
        sch = get_scheme(scheme) if scheme is not None else scheme_for_points(item["landmarks"].shape[-2])
        perm = list(sch.flip_permutation)

    out = dict(item)
    if "image" in item:   # absent: the image is warped elsewhere (on the training device)
        out["image"] = warp_image(item["image"], A, out_size, fill)
    if "landmarks" in item:
        out["landmarks"] = warp_landmarks(item["landmarks"], A, perm)
    if "visible" in item and perm is not None:
        out["visible"] = item["visible"][perm]
    if "bbox" in item:
        x1, y1, x2, y2 = item["bbox"].double()
        centre = A[:, :2] @ torch.stack([(x1 + x2) / 2, (y1 + y2) / 2]) + A[:, 2]
        half = torch.stack([x2 - x1, y2 - y1]).abs() * s / 2
        out["bbox"] = torch.cat([centre - half, centre + half]).to(item["bbox"].dtype)
    if "pose" in item:
        out["pose"] = _warp_pose(item["pose"], A, mirrored)
    prev = item.get("crop_matrix")
    out["crop_matrix"] = (A if prev is None else compose_matrices(A, prev)).float()
    return out


def _warp_pose(pose: torch.Tensor, A: torch.Tensor, mirrored: bool) -> torch.Tensor:
    """(yaw, pitch, roll) degrees after the similarity A: a mirror maps them to (-yaw, pitch, -roll),
    then A's rotation (clockwise in the image for a positive angle, y being down) adds to the roll."""
    yaw, pitch, roll = (float(v) for v in pose)
    L = A[:, :2].double()
    if mirrored:
        yaw, roll = -yaw, -roll
        L = L @ torch.diag(torch.tensor([-1.0, 1.0], dtype=L.dtype))  # A = R diag(-1, 1) s -> R s
    angle = math.degrees(math.atan2(float(L[1, 0]), float(L[0, 0])))
    roll = (roll + angle + 180.0) % 360.0 - 180.0
    return torch.tensor([yaw, pitch, roll], dtype=pose.dtype)


def crop_sample(item: dict, out_size: int, extend: float = DEFAULT_EXTEND) -> dict:
    """Square crop around the face box (see :func:`face_crop_matrix`), resized to out_size."""
    return warp_sample(item, face_crop_matrix(face_box(item), out_size, extend), out_size)


@dataclass
class AugmentConfig:
    """Random augmentation of the paper (§2.3), all drawn per sample."""
    flip_prob: float = 0.5
    max_rotation_deg: float = 35.0          # uniform in [-35, 35]
    scale_range: tuple[float, float] = (0.85, 1.15)   # >1 zooms in (face looks bigger)
    extend_range: tuple[float, float] = (0.20, 0.25)  # box extension before scaling
    translate_frac: float = 0.05            # centre shift, uniform ±frac × box size, per axis
    brightness: float = 0.3                 # factor uniform in [1 - b, 1 + b]
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.03                       # shift uniform in [-h, h] (fraction of the hue circle)
    # Image degradation after the colour jitter: not in the paper, off here; PHOTO_AUGMENT turns it on.
    blur_prob: float = 0.0                  # Gaussian blur, sigma uniform in (0, blur_sigma] x crop size
    blur_sigma: float = 0.0
    noise_prob: float = 0.0                 # additive Gaussian noise, std uniform in (0, noise_std] (of 255)
    noise_std: float = 0.0
    grayscale_prob: float = 0.0
    erase_prob: float = 0.0                 # a flat grey rectangle over part of the crop (an occluder)
    erase_max: float = 0.4                  # its sides uniform in [0.1, erase_max] x crop size


# fa3d's choice for synthetic training faces (the paper trained on photographs and needed none of
# it): each epoch sees a face blurred, noisy or grey by chance, so the net cannot lean on the
# renderer's crisp edges and clean colours. Sigma up to 2.5 % of the crop (1.6 px at 64 px) and
# noise up to 8/255 span what downscaled web photos show.
PHOTO_AUGMENT = AugmentConfig(blur_prob=0.3, blur_sigma=0.025, noise_prob=0.3, noise_std=8.0,
                              grayscale_prob=0.1)
# fa3d's choice after the real-face bench (benchmarks/renderer_bench.py), after Wood et al. (ICCV 2021), who
# found strong augmentation indispensable for training on synthetic faces alone: the photo degradation
# more often, wider scale and shift (a detector's box is not the landmark box), and random occluding patches.
STRONG_AUGMENT = AugmentConfig(scale_range=(0.8, 1.25), translate_frac=0.08, blur_prob=0.4, blur_sigma=0.03,
                               noise_prob=0.4, noise_std=10.0, grayscale_prob=0.15, erase_prob=0.3)
AUGMENTS = {"paper": AugmentConfig(), "photo": PHOTO_AUGMENT, "strong": STRONG_AUGMENT}


@dataclass
class AugmentDraws:
    """The random numbers of one augmented sample (:meth:`Augment3D.draw`): ``matrix`` (2, 3) float64,
    the colour jitter's ``colour`` strengths (4 uniforms) and ``order``, the degradation's ``degrade``
    (6 uniforms, None when off) and ``noise`` ((3, S, S) standard normal, None when not applied)."""
    matrix: torch.Tensor
    colour: list[float]
    order: list[int]
    degrade: list[float] | None = None
    noise: torch.Tensor | None = None


class CenterCrop3D:
    """Deterministic evaluation crop: ``CenterCrop3D(256)(item) -> cropped item``."""

    def __init__(self, out_size: int, extend: float = DEFAULT_EXTEND):
        self.out_size, self.extend = out_size, extend

    def __call__(self, item: dict, generator: torch.Generator | None = None) -> dict:
        return crop_sample(item, self.out_size, self.extend)


class Augment3D:
    """Random crop + scale + rotation + flip (one warp) and colour jitter.

    ``aug(item, generator)`` draws every random number from ``generator`` (a CPU
    ``torch.Generator``; None uses torch's global one), so a seeded generator
    reproduces the same sample. Colour jitter runs on the uint8 crop in a random
    order (like torchvision's ColorJitter): brightness, contrast, saturation, hue.
    """

    def __init__(self, out_size: int, config: AugmentConfig | None = None,
                 scheme: str | LandmarkScheme | None = None):
        self.out_size = out_size
        self.config = config or AugmentConfig()
        self.scheme = scheme

    def sample_matrix(self, bbox, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw one random (2, 3) crop matrix for a face box (x1, y1, x2, y2)."""
        cfg, g = self.config, generator

        def uniform(lo, hi):
            return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))

        flip = uniform(0, 1) < cfg.flip_prob
        angle = uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg)
        scale = uniform(*cfg.scale_range)
        extend = uniform(*cfg.extend_range)
        tx = uniform(-cfg.translate_frac, cfg.translate_frac)
        ty = uniform(-cfg.translate_frac, cfg.translate_frac)
        (cx, cy), size = _centre_size(bbox)
        centre = (cx + tx * size, cy + ty * size)
        return similarity_matrix(centre, (1 + extend) * size / scale, self.out_size, angle, flip)

    @property
    def degrades(self) -> bool:
        """Whether any degradation (blur, noise, greyscale) is on."""
        cfg = self.config
        return max(cfg.blur_prob, cfg.noise_prob, cfg.grayscale_prob, cfg.erase_prob) > 0

    def draw(self, bbox, generator: torch.Generator | None = None) -> AugmentDraws:
        """Every random number of one sample, in the order they are always drawn: the crop matrix,
        the colour jitter's four strengths and its order, then (when on) the degradation's six
        uniforms and its noise image. The crop is then made on the CPU (``__call__``) or on the
        training device (:meth:`finish`), from the same numbers."""
        cfg, g = self.config, generator
        A = self.sample_matrix(bbox, g)
        colour = torch.rand(4, generator=g, dtype=torch.float64).tolist()
        order = torch.randperm(4, generator=g).tolist()
        degrade = noise = None
        if self.degrades:   # off: nothing drawn, so the paper's augmentation keeps its random stream
            # six uniforms for blur, noise and grey; six more for the patch only when it is on (so that
            # "photo" keeps its random stream)
            degrade = torch.rand(12 if cfg.erase_prob > 0 else 6, generator=g, dtype=torch.float64).tolist()
            if degrade[2] < cfg.noise_prob:
                noise = torch.randn((3, self.out_size, self.out_size), generator=g)
        return AugmentDraws(A, colour, order, degrade, noise)

    def _jitter(self, image: torch.Tensor, rand: list[float], order: list[int]) -> torch.Tensor:
        """Brightness, contrast, saturation and hue in ``order``, of strengths ``rand``, on a (3, H, W) image."""
        cfg = self.config
        ops = [
            (cfg.brightness, lambda im, u: TF.adjust_brightness(im, 1 + cfg.brightness * (2 * u - 1))),
            (cfg.contrast, lambda im, u: TF.adjust_contrast(im, 1 + cfg.contrast * (2 * u - 1))),
            (cfg.saturation, lambda im, u: TF.adjust_saturation(im, 1 + cfg.saturation * (2 * u - 1))),
            (cfg.hue, lambda im, u: TF.adjust_hue(im, cfg.hue * (2 * u - 1))),
        ]
        for i in order:
            strength, op = ops[i]
            if strength > 0:
                image = op(image, rand[i])
        return image

    def _degrade(self, image: torch.Tensor, u: list[float] | None, noise: torch.Tensor | None) -> torch.Tensor:
        """Blur, sensor noise and greyscale on a (3, H, W) uint8 crop, as drawn (u None: off)."""
        cfg = self.config
        if u is None:
            return image
        if u[0] < cfg.blur_prob and cfg.blur_sigma > 0:
            sigma = max(0.1, u[1] * cfg.blur_sigma * max(image.shape[-2:]))
            radius = max(1, int(3 * sigma))
            image = TF.gaussian_blur(image, [2 * radius + 1] * 2, [sigma, sigma])
        if noise is not None:
            noise = noise.to(image.device)
            image = (image.float() + noise * (u[3] * cfg.noise_std)).round().clamp(0, 255).to(torch.uint8)
        if u[4] < cfg.grayscale_prob:
            image = TF.rgb_to_grayscale(image, num_output_channels=3)
        if len(u) > 6 and u[6] < cfg.erase_prob:
            H, W = image.shape[-2:]
            h, w = (int(round((0.1 + t * (cfg.erase_max - 0.1)) * n)) for t, n in ((u[7], H), (u[8], W)))
            y0, x0 = int(u[9] * (H - h)), int(u[10] * (W - w))
            image = image.clone()
            image[:, y0:y0 + h, x0:x0 + w] = int(255 * u[11])
        return image

    def finish(self, crop: torch.Tensor, draws: AugmentDraws) -> torch.Tensor:
        """Colour jitter, then the degradation, on a warped (3, S, S) uint8 crop, on its device."""
        return self._degrade(self._jitter(crop, draws.colour, draws.order), draws.degrade, draws.noise)

    def __call__(self, item: dict, generator: torch.Generator | None = None) -> dict:
        draws = self.draw(face_box(item), generator)
        out = warp_sample(item, draws.matrix, self.out_size, self.scheme)
        out["image"] = self.finish(out["image"], draws)
        return out
