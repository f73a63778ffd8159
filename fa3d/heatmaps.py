"""Landmark heatmaps: Gaussian targets, binary disk targets, and sub-pixel decoding.

All coordinates are in pixels *of the heatmap* (pixel centres at integer
coordinates, the map spans [-0.5, W - 0.5]). Heatmaps at a different resolution
than the image they come from: convert with :func:`resize_points`.
Everything is batched, vectorised, and runs on the device of its input.
"""
from __future__ import annotations

import math

import torch

from .data.transforms import size_hw


def _axes(points: torch.Tensor, size):
    """Per-axis offsets of pixel centres from the points: dx (..., N, W), dy (..., N, H)."""
    H, W = size_hw(size)
    pts = points[..., :2].float()
    xs = torch.arange(W, dtype=torch.float32, device=points.device)
    ys = torch.arange(H, dtype=torch.float32, device=points.device)
    return xs - pts[..., 0:1], ys - pts[..., 1:2]


def gaussian_heatmaps(points: torch.Tensor, size, sigma: float) -> torch.Tensor:
    """Gaussian heatmaps with peak value 1 at each point.

    Args:
        points: (..., N, 2) x, y (extra columns such as z are ignored), heatmap pixels.
        size: int or (H, W) of the maps.
        sigma: standard deviation in heatmap pixels (paper: 6 px at 384 px).
    Returns:
        (..., N, H, W) float32, exp(-((x - px)² + (y - py)²) / 2σ²) at each pixel centre;
        all zeros for points with NaN coordinates. Built as an outer product of
        two 1D Gaussians, so it costs one multiply per pixel.
    """
    dx, dy = _axes(points, size)
    gx = torch.exp(-dx.square() / (2 * sigma ** 2))
    gy = torch.exp(-dy.square() / (2 * sigma ** 2))
    return torch.nan_to_num(gy[..., :, None] * gx[..., None, :], nan=0.0)


def disk_radius(face_height_px, base_radius: float = 7.0, base_height: float = 220.0,
                min_radius: float = 1.0):
    """Disk radius for detection targets: 7 px for a face ~220 px high (paper §2.1),
    proportional to the face height, and at least ``min_radius`` (a disk narrower than
    0.71 px can fall between pixel centres and be empty). Float or tensor in, same out."""
    r = base_radius * face_height_px / base_height
    return r.clamp(min=min_radius) if torch.is_tensor(r) else max(r, min_radius)


def disk_heatmaps(points: torch.Tensor, size, radius) -> torch.Tensor:
    """Binary disk maps: 1 where the pixel centre lies within ``radius`` of the point.

    Args:
        points: (..., N, 2) x, y in heatmap pixels (extra columns ignored).
        size: int or (H, W).
        radius: float, or a tensor broadcastable to points' leading shape (...) or
            (..., N) (e.g. one radius per face from :func:`disk_radius`).
    Returns:
        (..., N, H, W) float32 in {0, 1}; all zeros for NaN points.
    """
    dx, dy = _axes(points, size)
    r = torch.as_tensor(radius, dtype=torch.float32, device=points.device)
    if r.dim() > 0 and r.dim() == points.dim() - 2:  # one radius per item: add the N axis
        r = r[..., None]
    r2 = r.square()[..., None, None]
    return (dy.square()[..., :, None] + dx.square()[..., None, :] <= r2).float()


def _peak_offset(left: torch.Tensor, mid: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Vertex of the parabola through (-1, left), (0, mid), (1, right); 0 where it is not a peak."""
    curvature = left - 2 * mid + right
    ok = curvature < 0
    return torch.where(ok, (left - right) / (2 * torch.where(ok, curvature, -1.0)), 0.0)


def decode_heatmaps(heatmaps: torch.Tensor, floor: float = 1e-3, smoothing: float = 0.0) -> torch.Tensor:
    """Sub-pixel peak locations of heatmaps.

    Takes the argmax, then fits a parabola to the *log* of the map through three
    pixels along x (in the peak's row) and along y (in its column): exact for a
    Gaussian of any width, wherever its centre. At the border the three pixels
    shift inwards (still exact for Gaussians); values below ``floor`` × peak are
    clamped before the log so noise in the tails cannot blow up the fit, and the
    result stays within ±0.5 px of the argmax (the pixel nearest to a sampled
    peak is its argmax), so a peak centred outside the map decodes to its edge.
    Flat, zero or negative maps return the argmax (their peak value,
    ``heatmaps.flatten(-2).amax(-1)``, spots them).

    ``smoothing`` > 0 (std in heatmap pixels) first blurs each map with a Gaussian, as DARK does
    (Zhang et al., CVPR 2020, "distribution modulation"): a network's map is a noisy Gaussian, and three
    pixels of it are a noisy fit, while a blurred Gaussian is still a Gaussian with the same centre.
    Only the 5x5 pixels around the argmax are blurred (:func:`_smoothed_windows`), so it costs
    almost nothing; the peak is then found in that window as above. Within about 3·smoothing px of the
    map's border the blur sees the edge pixels repeated, which pulls a peak there outwards by up to
    about half a pixel (face crops keep landmarks away from their borders). Not in the paper (our choice).

    Args:
        heatmaps: (..., H, W) with H, W >= 3, e.g. (B, N, H, W).
        smoothing: std of the blur in heatmap pixels; 0 decodes the map as it is.
    Returns:
        (..., 2) float32 x, y in heatmap pixels.
    """
    H, W = heatmaps.shape[-2:]
    if H < 3 or W < 3:
        raise ValueError(f"heatmaps must be at least 3x3 to decode, got {H}x{W}")
    if smoothing > 0:
        windows, corner = _smoothed_windows(heatmaps, smoothing)
        xy = decode_heatmaps(windows, floor) + corner
        return torch.stack([xy[..., 0].clamp(-0.5, W - 0.5), xy[..., 1].clamp(-0.5, H - 0.5)], -1)
    flat = heatmaps.reshape(-1, H * W).float()
    peak, idx = flat.max(-1)
    iy, ix = idx // W, idx % W
    # the three-pixel windows, shifted inwards at the borders
    cx, cy = ix.clamp(1, W - 2), iy.clamp(1, H - 2)
    d = torch.arange(-1, 2, device=flat.device)
    row = torch.gather(flat, 1, iy[:, None] * W + cx[:, None] + d)          # (M, 3) along x
    col = torch.gather(flat, 1, (cy[:, None] + d) * W + ix[:, None])        # (M, 3) along y
    tiny = (peak * floor).clamp(min=torch.finfo(torch.float32).tiny)[:, None]
    lrow, lcol = row.clamp(min=tiny).log(), col.clamp(min=tiny).log()
    x = cx + _peak_offset(*lrow.unbind(-1))
    y = cy + _peak_offset(*lcol.unbind(-1))
    # a sampled peak's centre is always nearer to its argmax pixel than to any other
    valid = peak > 0
    x = torch.where(valid, torch.minimum(torch.maximum(x, ix - 0.5), ix + 0.5), ix.float())
    y = torch.where(valid, torch.minimum(torch.maximum(y, iy - 0.5), iy + 0.5), iy.float())
    return torch.stack([x, y], -1).reshape(*heatmaps.shape[:-2], 2)


def _smoothed_windows(heatmaps: torch.Tensor, sigma: float):
    """The 5x5 pixels around each map's argmax (moved inwards at the borders, so that every one is on
    the map; 3x3 on maps smaller than 5 px), blurred with a Gaussian of std ``sigma`` px (the map extended
    by repeating its edge pixels), and each window's top-left pixel (x, y) in the map. A window is a small
    matrix product: kernel^T · patch · kernel, with the patch the window widened by the kernel's radius
    (ceil(3 sigma)). (..., H, W) -> (..., 5, 5), (..., 2)."""
    H, W = heatmaps.shape[-2:]
    half = min(2, (min(H, W) - 1) // 2)
    flat = heatmaps.reshape(-1, H * W).float()
    idx = flat.argmax(-1)
    iy, ix = (idx // W).clamp(half, H - 1 - half), (idx % W).clamp(half, W - 1 - half)
    radius = math.ceil(3 * sigma)
    offsets = torch.arange(-radius - half, radius + half + 1, device=flat.device)
    rows = (iy[:, None] + offsets).clamp(0, H - 1)
    cols = (ix[:, None] + offsets).clamp(0, W - 1)
    patch = torch.gather(flat, 1, (rows[:, :, None] * W + cols[:, None, :]).flatten(1))
    patch = patch.reshape(-1, len(offsets), len(offsets))
    centres = torch.arange(-half, half + 1, device=flat.device)
    distance = (offsets[:, None] - centres[None, :]).float()            # (L, 2h+1)
    kernel = torch.exp(-distance.square() / (2 * sigma ** 2)) * (distance.abs() <= radius)
    kernel = kernel / kernel.sum(0, keepdim=True)                        # each column: one truncated Gaussian
    windows = kernel.T @ patch @ kernel
    corner = torch.stack([ix - half, iy - half], -1).float()
    lead = heatmaps.shape[:-2]
    return windows.reshape(*lead, 2 * half + 1, 2 * half + 1), corner.reshape(*lead, 2)


def resize_points(points: torch.Tensor, from_size, to_size) -> torch.Tensor:
    """Map pixel coordinates between two resolutions of the same image, exactly.

    x' = (x + 0.5)·(W'/W) − 0.5 and y' likewise (the image edges -0.5 and W - 0.5
    map onto each other). A third column (z, in pixels) is scaled by W'/W, which
    needs an isotropic resize. Sizes are int or (H, W). points: (..., 2 or 3).
    """
    H, W = size_hw(from_size)
    H2, W2 = size_hw(to_size)
    fx, fy = W2 / W, H2 / H
    out = points.clone()
    out[..., 0] = (points[..., 0] + 0.5) * fx - 0.5
    out[..., 1] = (points[..., 1] + 0.5) * fy - 0.5
    if points.shape[-1] > 2:
        if abs(fx - fy) > 1e-12:
            raise ValueError(f"cannot scale z for an anisotropic resize {W}x{H} -> {W2}x{H2}")
        out[..., 2] = points[..., 2] * fx
    return out
