import math

import pytest
import torch

from fa3d.data.schemes import get_scheme
from fa3d.data.transforms import (AugmentConfig, Augment3D, CenterCrop3D, crop_sample,
                                  face_crop_matrix, invert_matrix, similarity_matrix,
                                  similarity_scale, unwarp_landmarks, warp_image,
                                  warp_landmarks, warp_sample)

PERM68 = get_scheme("68").flip_permutation


def make_item(H=160, W=200, n=68, seed=0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * torch.tensor([0.5 * W, 0.5 * H]) + torch.tensor([0.25 * W, 0.2 * H])
    z = torch.randn(n, 1, generator=g) * 20
    lm = torch.cat([xy, z - z.mean()], 1).float()
    return {
        "image": torch.randint(0, 256, (3, H, W), generator=g, dtype=torch.uint8),
        "landmarks": lm,
        "visible": torch.rand(n, generator=g) > 0.3,
        "bbox": torch.cat([lm[:, :2].amin(0), lm[:, :2].amax(0)]),
        "pose": torch.tensor([30.0, -10.0, 5.0]),
        "id": f"face{seed}",
    }


def blob_image(H, W, x0, y0, sigma=2.0):
    ys, xs = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    blob = torch.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * sigma ** 2))
    return blob.expand(3, H, W).contiguous()


def centroid(image):
    """Intensity-weighted centroid (x, y) of a (C, H, W) image, background removed."""
    w = image.float().mean(0)
    w = w - w.min()
    H, W = w.shape
    ys, xs = torch.meshgrid(torch.arange(H).float(), torch.arange(W).float(), indexing="ij")
    return torch.stack([(w * xs).sum(), (w * ys).sum()]) / w.sum()


def test_face_crop_matrix_by_hand():
    # box 100 px wide, 80 high, centre (150, 90); side = 1.25 * 100 = 125 -> scale 64/125
    A = face_crop_matrix([100.0, 50.0, 200.0, 130.0], 64, extend=0.25)
    k = 64 / 125
    expected = torch.tensor([[k, 0, 31.5 - k * 150], [0, k, 31.5 - k * 90]], dtype=torch.float64)
    assert torch.allclose(A, expected)
    # the crop's left edge (x = 150 - 62.5) lands on the image edge -0.5
    x_left = warp_landmarks(torch.tensor([[87.5, 90.0, 0.0]]), A)[0, 0]
    assert x_left.item() == pytest.approx(-0.5, abs=1e-5)


def test_identity_warp_is_exact():
    item = make_item(64, 64)
    A = similarity_matrix((31.5, 31.5), 64, 64)
    assert torch.allclose(A, torch.tensor([[1.0, 0, 0], [0, 1, 0]], dtype=torch.float64))
    assert torch.equal(warp_image(item["image"], A, 64), item["image"])


@pytest.mark.parametrize("angle,flip", [(0.0, False), (23.0, True), (-35.0, False), (170.0, True)])
def test_crop_uncrop_round_trip(angle, flip):
    item = make_item()
    A = similarity_matrix((95.3, 77.1), 131.7, 96, angle, flip)
    warped = warp_landmarks(item["landmarks"], A, PERM68)
    back = unwarp_landmarks(warped, A, PERM68)
    assert torch.allclose(back, item["landmarks"], atol=1e-4)
    # through an item and its stored float32 crop_matrix
    out = warp_sample(item, A, 96)
    back = unwarp_landmarks(out["landmarks"], out["crop_matrix"], PERM68)
    assert torch.allclose(back, item["landmarks"], atol=1e-4)


def test_crop_sample_leaves_input_untouched_and_maps_back():
    item = make_item()
    copy = {k: v.clone() if torch.is_tensor(v) else v for k, v in item.items()}
    out = crop_sample(item, 128)
    for k, v in copy.items():
        assert torch.equal(item[k], v) if torch.is_tensor(v) else item[k] == v
    assert out["image"].shape == (3, 128, 128) and out["image"].dtype == torch.uint8
    assert out["crop_matrix"].shape == (2, 3) and out["crop_matrix"].dtype == torch.float32
    assert torch.equal(out["visible"], item["visible"]) and out["id"] == item["id"]
    assert torch.allclose(unwarp_landmarks(out["landmarks"], out["crop_matrix"]), item["landmarks"], atol=1e-4)
    # the face box fills 1 / 1.225 of the crop, centred
    x1, y1, x2, y2 = out["bbox"].tolist()
    assert max(x2 - x1, y2 - y1) == pytest.approx(128 / 1.225, rel=1e-5)
    assert (x1 + x2) / 2 == pytest.approx(63.5, abs=1e-4) and (y1 + y2) / 2 == pytest.approx(63.5, abs=1e-4)
    # cropping a crop composes the matrices: one unwarp goes all the way back
    out2 = crop_sample(out, 64)
    assert torch.allclose(unwarp_landmarks(out2["landmarks"], out2["crop_matrix"]), item["landmarks"], atol=1e-4)


def test_flip_reindexes_left_and_right_by_hand():
    lm = torch.zeros(68, 3)
    lm[36] = torch.tensor([40.0, 30.0, -3.0])   # subject's right outer eye corner
    lm[45] = torch.tensor([60.0, 30.0, 5.0])    # subject's left outer eye corner
    lm[30] = torch.tensor([50.0, 45.0, 9.0])    # nose tip (its own mirror point)
    # window centred (50, 40), side = out = 64: scale 1, x' = 81.5 - x, y' = y - 8.5
    A = similarity_matrix((50.0, 40.0), 64, 64, flip=True)
    out = warp_landmarks(lm, A, PERM68)
    assert out[36].tolist() == pytest.approx([21.5, 21.5, 5.0])   # where 45 went, relabelled 36
    assert out[45].tolist() == pytest.approx([41.5, 21.5, -3.0])
    assert out[30].tolist() == pytest.approx([31.5, 36.5, 9.0])
    # same as W' - 1 - x of the unflipped crop
    plain = warp_landmarks(lm, similarity_matrix((50.0, 40.0), 64, 64))
    assert out[36, 0].item() == pytest.approx(63 - plain[45, 0].item())
    assert out[36, 1].item() == pytest.approx(plain[45, 1].item())
    with pytest.raises(ValueError, match="flip_permutation"):
        warp_landmarks(lm, A)


def test_flip_twice_is_identity():
    item = make_item(64, 64)
    A = similarity_matrix((31.5, 31.5), 64, 64, flip=True)
    once = warp_sample(item, A, 64)
    assert torch.equal(once["image"], item["image"].flip(-1))
    assert torch.equal(once["visible"], item["visible"][list(PERM68)])
    assert once["pose"].tolist() == [-30.0, -10.0, -5.0]
    twice = warp_sample(once, A, 64)
    assert torch.equal(twice["image"], item["image"])
    assert torch.allclose(twice["landmarks"], item["landmarks"], atol=1e-5)
    assert torch.equal(twice["visible"], item["visible"])
    assert torch.allclose(twice["crop_matrix"].double(), torch.tensor([[1.0, 0, 0], [0, 1, 0]], dtype=torch.float64))


def test_z_scales_with_zoom_and_not_with_rotation():
    lm = make_item()["landmarks"]
    bbox = torch.cat([lm[:, :2].amin(0), lm[:, :2].amax(0)])
    small = warp_landmarks(lm, face_crop_matrix(bbox, 64))
    big = warp_landmarks(lm, face_crop_matrix(bbox, 192))
    assert torch.allclose(big[:, 2], 3 * small[:, 2], atol=1e-4)
    assert torch.allclose(big[:, :2] + 0.5, 3 * (small[:, :2] + 0.5), atol=1e-4)
    s = similarity_scale(face_crop_matrix(bbox, 64)).item()
    assert torch.allclose(small[:, 2], lm[:, 2] * s, atol=1e-5)
    assert small[:, 2].mean().abs() < 1e-4  # still zero-mean
    turned = warp_landmarks(lm, similarity_matrix((100.0, 80.0), 96, 96, angle_deg=30.0))
    assert torch.allclose(turned[:, 2], lm[:, 2], atol=1e-5)
    dist = lambda p: (p[:, None, :2] - p[None, :, :2]).norm(dim=-1)  # noqa: E731
    assert torch.allclose(dist(turned), dist(lm), atol=1e-4)


def test_positive_angle_turns_counter_clockwise():
    A = similarity_matrix((0.0, 0.0), 65, 65, angle_deg=90.0)  # centre -> (32, 32)
    p = warp_landmarks(torch.tensor([[10.0, 0.0, 0.0]]), A)[0]  # a point right of the centre ...
    assert p.tolist() == pytest.approx([32.0, 22.0, 0.0], abs=1e-5)  # ... goes up


@pytest.mark.parametrize("side,angle,flip", [
    (60.0, 33.0, True),     # zoom in 1.6x
    (110.0, -20.0, True),   # shrink 0.87 (plain bilinear)
    (300.0, 12.0, True),    # shrink 0.32 (antialiased path)
    (150.0, 0.0, False),
])
def test_bright_dot_lands_on_the_warped_landmark(side, angle, flip):
    x0, y0 = 117.3, 88.6
    image = blob_image(180, 240, x0, y0)
    A = similarity_matrix((105.2, 96.9), side, 96, angle, flip)
    out = warp_image(image, A, 96)
    expected = warp_landmarks(torch.tensor([[x0, y0, 0.0]]), A, [0])[0, :2]
    assert (centroid(out) - expected).abs().max() < 0.1  # brief: 0.5 px
    # same with uint8 images
    out8 = warp_image((image * 255).round().to(torch.uint8), A, 96)
    assert (centroid(out8) - expected).abs().max() < 0.2


def test_single_bright_pixel():
    image = torch.zeros(3, 50, 70)
    image[:, 21, 40] = 1.0
    A = similarity_matrix((37.0, 24.0), 32.0, 48, angle_deg=-28.0, flip=True)  # 1.5x zoom
    out = warp_image(image, A, 48)
    expected = warp_landmarks(torch.tensor([[40.0, 21.0, 0.0]]), A, [0])[0, :2]
    assert (centroid(out) - expected).abs().max() < 0.05


def test_warp_image_batched_and_fill():
    g = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 40, 50, generator=g)
    As = torch.stack([similarity_matrix((25.0, 20.0), s, 32, a, f)
                      for s, a, f in [(40.0, 10.0, False), (100.0, -5.0, True), (20.0, 90.0, True)]])
    batched = warp_image(images, As, 32)
    for i in range(3):
        assert torch.allclose(batched[i], warp_image(images[i], As[i], 32), atol=1e-6)
    A = similarity_matrix((25.0, 20.0), 200.0, 32)  # mostly outside the image
    out = warp_image(torch.zeros(3, 40, 50, dtype=torch.uint8), A, 32, fill=255)
    assert out[:, 0, 0].tolist() == [255] * 3 and out[:, 16, 16].tolist() == [0] * 3


def _eye_line_deg(lm: torch.Tensor) -> float:
    """Angle of the outer-eye-corner line in the image, degrees; > 0 when it goes down to the right."""
    d = lm[45, :2] - lm[36, :2]
    return math.degrees(math.atan2(float(d[1]), float(d[0])))


@pytest.mark.parametrize("angle,mirror", [(10.0, False), (-25.0, False), (15.0, True)])
def test_rotation_adds_to_roll_like_the_landmarks_turn(angle, mirror):
    from fa3d.data.synthetic import SyntheticFaces

    item = SyntheticFaces(1, image_size=128, seed=5)[0]
    A = similarity_matrix((64.0, 64.0), 128.0, 128, angle_deg=angle, flip=mirror)
    out = warp_sample(item, A, 128)
    yaw, pitch, roll = item["pose"].tolist()
    sign = -1.0 if mirror else 1.0
    # The roll turns with the landmarks: by the angle the eye line turns (mirrored: after both flip).
    # (similarity_matrix's positive angle turns the content counter-clockwise: the roll decreases.)
    turned = _eye_line_deg(out["landmarks"]) - sign * _eye_line_deg(item["landmarks"])
    assert abs(turned) == pytest.approx(abs(angle), abs=1e-3)
    assert out["pose"].tolist() == pytest.approx([sign * yaw, pitch, sign * roll + turned], abs=1e-3)
    if not mirror:
        assert turned == pytest.approx(-angle, abs=1e-3)


def test_augment_is_reproducible_and_varies():
    item = make_item()
    aug = Augment3D(64)
    a = aug(item, torch.Generator().manual_seed(7))
    b = aug(item, torch.Generator().manual_seed(7))
    c = aug(item, torch.Generator().manual_seed(8))
    for k in ("image", "landmarks", "visible", "bbox", "crop_matrix"):
        assert torch.equal(a[k], b[k])
    assert not torch.equal(a["landmarks"], c["landmarks"])
    assert a["image"].shape == (3, 64, 64) and a["image"].dtype == torch.uint8
    assert torch.allclose(unwarp_landmarks(a["landmarks"], a["crop_matrix"], PERM68), item["landmarks"], atol=1e-4)


def test_augment_draws_within_ranges():
    cfg = AugmentConfig()
    aug = Augment3D(100, cfg)
    bbox = torch.tensor([50.0, 40.0, 150.0, 120.0])
    g = torch.Generator().manual_seed(0)
    flips = 0
    for _ in range(200):
        A = aug.sample_matrix(bbox, g)
        s = similarity_scale(A).item()  # = 100 * scale / ((1 + extend) * 100)
        assert 0.85 / 1.25 - 1e-9 <= s <= 1.15 / 1.2 + 1e-9
        M = A[:, :2] / s
        flipped = torch.det(M).item() < 0
        flips += flipped
        angle = math.degrees(math.atan2(-M[1, 0].item(), M[1, 1].item()))
        assert abs(angle) <= 35 + 1e-6
        centre = invert_matrix(A)[:, :2] @ torch.tensor([49.5, 49.5], dtype=torch.float64) + invert_matrix(A)[:, 2]
        assert (centre - torch.tensor([100.0, 80.0], dtype=torch.float64)).abs().max() <= 5 + 1e-6
    assert 70 < flips < 130


def test_augmented_landmarks_match_the_image():
    item = make_item(160, 200)
    x0, y0 = item["landmarks"][45, :2].tolist()
    item["image"] = (blob_image(160, 200, x0, y0, sigma=3.0) * 200).round().to(torch.uint8)
    aug = Augment3D(96, AugmentConfig(flip_prob=0.5))
    g = torch.Generator().manual_seed(3)
    seen_flip = seen_plain = False
    for _ in range(8):
        out = aug(item, g)
        flipped = torch.det(out["crop_matrix"][:, :2].double()).item() < 0
        # the physical point labelled 45 becomes point 36 after a mirror
        expected = out["landmarks"][36 if flipped else 45, :2]
        assert (centroid(out["image"]) - expected).abs().max() < 0.5
        seen_flip |= flipped
        seen_plain |= not flipped
    assert seen_flip and seen_plain


def test_colour_jitter_changes_colours_only():
    item = make_item(64, 64)
    aug = Augment3D(64, AugmentConfig(flip_prob=0.0, max_rotation_deg=0.0, scale_range=(1.0, 1.0),
                                      extend_range=(0.0, 0.0), translate_frac=0.0))
    no_jitter = Augment3D(64, AugmentConfig(flip_prob=0.0, max_rotation_deg=0.0, scale_range=(1.0, 1.0),
                                            extend_range=(0.0, 0.0), translate_frac=0.0, brightness=0.0,
                                            contrast=0.0, saturation=0.0, hue=0.0))
    a = aug(item, torch.Generator().manual_seed(0))
    b = no_jitter(item, torch.Generator().manual_seed(0))
    assert torch.equal(a["landmarks"], b["landmarks"])
    assert not torch.equal(a["image"], b["image"])


def test_center_crop_3d_matches_crop_sample():
    item = make_item()
    a, b = CenterCrop3D(80)(item), crop_sample(item, 80)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["landmarks"], b["landmarks"])


def test_degenerate_box_is_rejected():
    with pytest.raises(ValueError, match="degenerate"):
        face_crop_matrix([10.0, 10.0, 10.0, 10.0], 64)


def test_photo_degradation_is_off_for_the_paper_and_leaves_the_random_stream_alone():
    """AugmentConfig() (the paper's) must not draw extra random numbers: the course's runs stay
    reproducible. PHOTO_AUGMENT blurs, adds noise or greys some crops, reproducibly per generator,
    and never moves the landmarks."""
    from fa3d.data.transforms import AUGMENTS, PHOTO_AUGMENT
    item = make_item(96, 96)
    paper, photo = Augment3D(64, AUGMENTS["paper"]), Augment3D(64, PHOTO_AUGMENT)
    g = torch.Generator().manual_seed(4)
    paper(item, g)
    after_paper = torch.rand(1, generator=g)
    g = torch.Generator().manual_seed(4)
    paper.sample_matrix(item["bbox"], g)
    torch.rand(4, generator=g, dtype=torch.float64), torch.randperm(4, generator=g)   # the colour jitter's
    assert torch.equal(torch.rand(1, generator=g), after_paper)
    changed = 0
    for seed in range(40):
        a, b = paper(item, torch.Generator().manual_seed(seed)), photo(item, torch.Generator().manual_seed(seed))
        assert torch.equal(a["landmarks"], b["landmarks"]) and a["image"].dtype == b["image"].dtype == torch.uint8
        changed += not torch.equal(a["image"], b["image"])
        again = photo(item, torch.Generator().manual_seed(seed))
        assert torch.equal(again["image"], b["image"])
    assert 10 <= changed <= 35     # P(any of blur, noise, grey) = 1 - 0.7 * 0.7 * 0.9 = 0.56
    grey = Augment3D(64, AugmentConfig(grayscale_prob=1.0))(item, torch.Generator().manual_seed(0))["image"]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    blurred = Augment3D(64, AugmentConfig(brightness=0, contrast=0, saturation=0, hue=0, blur_prob=1.0,
                                          blur_sigma=0.05))(item, torch.Generator().manual_seed(0))["image"]
    sharp = Augment3D(64, AugmentConfig(brightness=0, contrast=0, saturation=0, hue=0))(
        item, torch.Generator().manual_seed(0))["image"]
    edges = lambda im: (im.float().diff(dim=-1).abs().mean() + im.float().diff(dim=-2).abs().mean())  # noqa: E731
    assert edges(blurred) < 0.8 * edges(sharp)


def test_the_erased_patch_is_one_flat_rectangle_and_photo_keeps_its_random_stream():
    """erase_prob paints a flat grey rectangle (an occluder) and never moves the landmarks; "photo"
    (no patch) draws no more random numbers than before the patch existed."""
    from fa3d.data.transforms import AUGMENTS
    item = make_item(96, 96)
    plain = dict(brightness=0, contrast=0, saturation=0, hue=0)
    erase = Augment3D(64, AugmentConfig(**plain, erase_prob=1.0, erase_max=0.3))
    for seed in range(5):
        a = Augment3D(64, AugmentConfig(**plain, grayscale_prob=1e-9))(item, torch.Generator().manual_seed(seed))
        b = erase(item, torch.Generator().manual_seed(seed))
        assert torch.equal(a["landmarks"], b["landmarks"])
        differ = (a["image"] != b["image"]).any(0)
        rows, cols = differ.any(1).nonzero().ravel(), differ.any(0).nonzero().ravel()
        h, w = int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)
        assert 0.1 * 64 - 1 <= h <= 0.3 * 64 + 1 and 0.1 * 64 - 1 <= w <= 0.3 * 64 + 1
        patch = b["image"][:, rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert (patch == patch[0, 0, 0]).all()
    photo = Augment3D(64, AUGMENTS["photo"])
    g = torch.Generator().manual_seed(9)
    photo.draw(item["bbox"], g)
    after = torch.rand(1, generator=g)
    g = torch.Generator().manual_seed(9)
    photo.sample_matrix(item["bbox"], g)
    torch.rand(4, generator=g, dtype=torch.float64), torch.randperm(4, generator=g)
    u = torch.rand(6, generator=g, dtype=torch.float64)
    if u[2] < AUGMENTS["photo"].noise_prob:
        torch.randn((3, 64, 64), generator=g)
    assert torch.equal(torch.rand(1, generator=g), after)
