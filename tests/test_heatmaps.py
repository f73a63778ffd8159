import math

import pytest
import torch

from fa3d.heatmaps import decode_heatmaps, disk_heatmaps, disk_radius, gaussian_heatmaps, resize_points


def random_points(size, b=4, n=40, seed=0):
    """Sub-pixel points inside the map, a quarter of them within 2 px of a border."""
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(b, n, 2, generator=g) * (size - 1)
    near = torch.rand(b, n // 4, 2, generator=g) * 2
    far_side = torch.rand(b, n // 4, 2, generator=g) < 0.5
    pts[:, : n // 4] = torch.where(far_side, size - 1 - near, near)
    return pts


def test_gaussian_by_hand():
    h = gaussian_heatmaps(torch.tensor([[3.0, 2.0]]), (5, 7), sigma=2.0)
    assert h.shape == (1, 5, 7) and h.dtype == torch.float32
    assert h[0, 2, 3] == 1.0                                            # row y=2, column x=3
    assert h[0, 2, 5].item() == pytest.approx(math.exp(-4 / 8))        # 2 px right
    assert h[0, 0, 4].item() == pytest.approx(math.exp(-(1 + 4) / 8))  # 1 right, 2 up
    # a half-pixel centre splits the peak between two pixels
    h = gaussian_heatmaps(torch.tensor([[3.5, 2.0, 7.0]]), (5, 7), sigma=1.0)  # z column ignored
    assert h[0, 2, 3] == h[0, 2, 4]


@pytest.mark.parametrize("size", [64, 96])
@pytest.mark.parametrize("sigma", [1.5, 3.0, 6.0])
def test_gaussian_round_trip_sub_pixel(size, sigma):
    pts = random_points(size)
    decoded = decode_heatmaps(gaussian_heatmaps(pts, size, sigma))
    err = (decoded - pts).norm(dim=-1)
    assert decoded.shape == pts.shape
    assert err.mean() < 0.05 and err.max() < 0.1


def test_decode_noisy_map_stays_near_peak():
    g = torch.Generator().manual_seed(0)
    pts = random_points(64, seed=1)
    h = gaussian_heatmaps(pts, 64, 2.0) + 0.05 * torch.randn(4, 40, 64, 64, generator=g)
    err = (decode_heatmaps(h) - pts).norm(dim=-1)
    idx = h.flatten(-2).argmax(-1)
    argmax_err = (torch.stack([idx % 64, idx // 64], -1) - pts).norm(dim=-1)
    assert torch.isfinite(err).all() and err.mean() < 0.3 and err.mean() < 0.7 * argmax_err.mean()
    assert err[:, 10:].max() < 1.0  # away from the borders (at a border the fit extrapolates)


def _blurred_everywhere(h, sigma):
    """The reference for the smoothing: the whole map blurred (edges repeated), by convolution."""
    radius = math.ceil(3 * sigma)
    x = torch.arange(-radius, radius + 1).float()
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    t = h.reshape(-1, 1, *h.shape[-2:])
    t = torch.nn.functional.conv2d(torch.nn.functional.pad(t, (radius, radius, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    t = torch.nn.functional.conv2d(torch.nn.functional.pad(t, (0, 0, radius, radius), mode="replicate"), k.view(1, 1, -1, 1))
    return t.reshape(h.shape)


@pytest.mark.parametrize("sigma", [1.0, 3.0])
def test_smoothing_blurs_only_around_the_peak_what_a_whole_map_blur_gives(sigma):
    g = torch.Generator().manual_seed(2)
    pts = random_points(48, seed=3)
    h = gaussian_heatmaps(pts, 48, 2.0) + 0.05 * torch.randn(4, 40, 48, 48, generator=g)
    local = decode_heatmaps(h, smoothing=sigma)
    everywhere = decode_heatmaps(_blurred_everywhere(h, sigma))
    # the same peak wherever the blurred map's maximum lies within 2 px of the raw argmax (nearly always)
    assert (local - everywhere).norm(dim=-1).median() < 1e-3
    assert ((local - everywhere).norm(dim=-1) < 1e-3).float().mean() > 0.95


@pytest.mark.parametrize("sigma", [1.5, 3.0, 6.0])
def test_smoothing_keeps_clean_gaussians_exact_and_helps_on_noisy_maps(sigma):
    pts = 12 + torch.rand(4, 30, 2, generator=torch.Generator().manual_seed(4)) * 39   # 12 px from the borders:
    # nearer, the blur sees the map's repeated edge pixels and pulls a peak towards the border
    clean = gaussian_heatmaps(pts, 64, sigma)
    assert (decode_heatmaps(clean, smoothing=sigma / 2) - pts).norm(dim=-1).max() < 0.02
    g = torch.Generator().manual_seed(5)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=g)
    raw = (decode_heatmaps(noisy) - pts).norm(dim=-1).mean()
    smoothed = (decode_heatmaps(noisy, smoothing=sigma / 2) - pts).norm(dim=-1).mean()
    assert smoothed < 0.8 * raw


def test_smoothing_near_and_beyond_the_border_stays_on_the_map():
    pts = torch.tensor([[[-3.0, 10.0], [0.2, 0.4], [31.0, 31.3], [40.0, -6.0]]])
    xy = decode_heatmaps(gaussian_heatmaps(pts, 32, 2.0), smoothing=1.0)
    assert torch.isfinite(xy).all()
    assert xy.min() >= -0.5 and xy.max() <= 31.5
    # within 3 sigma of the border the repeated edge pixels pull a peak outwards, by under a pixel
    assert (xy[0, 1] - pts[0, 1]).norm() < 1.0 and (xy[0, 2] - pts[0, 2]).norm() < 1.0


def test_decode_flat_and_zero_maps_are_finite():
    h = torch.zeros(2, 3, 16, 16)
    h[0, 1] = -1.0
    h[1, 2] = 0.5
    xy = decode_heatmaps(h)
    assert torch.isfinite(xy).all() and xy.shape == (2, 3, 2)
    assert torch.isfinite(decode_heatmaps(h, smoothing=2.0)).all()
    with pytest.raises(ValueError):
        decode_heatmaps(torch.zeros(1, 2, 2))


def test_nan_point_gives_zero_maps():
    pts = torch.tensor([[[10.0, 12.0], [float("nan"), float("nan")], [5.0, float("nan")]]])
    for h in (gaussian_heatmaps(pts, 32, 3.0), disk_heatmaps(pts, 32, 4.0)):
        assert h.shape == (1, 3, 32, 32)
        assert h[0, 0].max() == 1 and h[0, 1:].abs().sum() == 0


def test_batched_equals_per_item():
    pts = random_points(48, b=3, n=8)
    batched = gaussian_heatmaps(pts, (40, 48), 2.5)
    assert batched.shape == (3, 8, 40, 48)
    for i in range(3):
        assert torch.equal(batched[i], gaussian_heatmaps(pts[i], (40, 48), 2.5))
    radii = torch.tensor([2.0, 3.5, 5.0])
    disks = disk_heatmaps(pts, 48, radii)
    for i in range(3):
        assert torch.equal(disks[i], disk_heatmaps(pts[i], 48, radii[i].item()))
    assert torch.equal(decode_heatmaps(batched)[1], decode_heatmaps(batched[1]))


def test_disk_pixel_count_and_membership():
    pts = torch.tensor([[40.3, 41.7], [50.0, 50.0]])
    for r in (3.0, 7.0, 12.5):
        disks = disk_heatmaps(pts, 100, r)
        counts = disks.sum((-1, -2))
        assert ((counts - math.pi * r * r).abs() < 2 * math.pi * r).all()  # area ± perimeter
    d = disk_heatmaps(torch.tensor([[50.0, 50.0]]), 100, 3.0)[0]
    assert d.sum() == 29  # by hand: rows -3..3 of i² + j² <= 9 hold 1, 5, 5, 7, 5, 5, 1 pixels
    assert d[50, 53] == 1 and d[52, 52] == 1 and d[52, 53] == 0 and d[53, 51] == 0
    assert set(d.unique().tolist()) == {0.0, 1.0}


def test_disk_radius_scales_with_face():
    assert disk_radius(220.0) == pytest.approx(7.0)
    assert disk_radius(110.0) == pytest.approx(3.5)
    assert disk_radius(10.0) == 1.0  # floor keeps the disk from vanishing
    assert torch.allclose(disk_radius(torch.tensor([440.0, 22.0])), torch.tensor([14.0, 1.0]))


def test_resize_points():
    p = torch.tensor([[-0.5, -0.5, 2.0], [63.5, 63.5, -4.0], [10.0, 20.0, 0.0]])
    q = resize_points(p, 64, 256)
    assert q[0].tolist() == [-0.5, -0.5, 8.0]          # image edges map onto each other
    assert q[1].tolist() == [255.5, 255.5, -16.0]
    assert q[2].tolist() == [41.5, 81.5, 0.0]           # (10.5 * 4 - 0.5, 20.5 * 4 - 0.5)
    assert torch.allclose(resize_points(q, 256, 64), p)
    r = resize_points(p[:, :2], (64, 32), (96, 128))    # (H, W): x by 4, y by 1.5
    assert r[2].tolist() == [41.5, 30.25]
    with pytest.raises(ValueError):
        resize_points(p, (64, 32), (96, 128))
    # a Gaussian drawn at 64 px and decoded there agrees with one drawn at 256 px
    pts = torch.tensor([[[20.3, 33.8]]])
    lo = decode_heatmaps(gaussian_heatmaps(pts, 64, 1.5))
    hi = decode_heatmaps(gaussian_heatmaps(resize_points(pts, 64, 256), 256, 6.0))
    assert torch.allclose(resize_points(hi, 256, 64), lo, atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda():
    pts = random_points(64).cuda()
    h = gaussian_heatmaps(pts, 64, 2.0)
    d = disk_heatmaps(pts, 64, torch.full((4,), 3.0, device="cuda"))
    xy = decode_heatmaps(h)
    assert h.device.type == d.device.type == xy.device.type == "cuda"
    assert (xy - pts).norm(dim=-1).max() < 0.1
    assert torch.allclose(h.cpu(), gaussian_heatmaps(pts.cpu(), 64, 2.0), atol=1e-6)
    smoothed = decode_heatmaps(h, smoothing=1.0)
    assert smoothed.device.type == "cuda"
    assert torch.allclose(smoothed.cpu(), decode_heatmaps(h.cpu(), smoothing=1.0), atol=1e-4)
