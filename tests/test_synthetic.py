"""The built-in synthetic 3D face dataset: item format, determinism, geometry and visibility."""
import dataclasses

import numpy as np
import pytest
import torch

from fa3d.data.schemes import flip_landmarks, get_scheme
from fa3d.data.synthetic import OUTLINE_JAW_POINTS, SyntheticFaceParams, SyntheticFaces, render_face, sample_face_params

S = 64  # small images keep the file fast; geometry does not depend on the size


def frontal(**kw) -> SyntheticFaceParams:
    return dataclasses.replace(SyntheticFaceParams(), **kw)


def same_item(a: dict, b: dict) -> bool:
    return (a["id"] == b["id"] and all(torch.equal(a[k], b[k])
                                       for k in ("image", "landmarks", "visible", "bbox", "pose")))


@pytest.mark.parametrize("scheme,n", [("68", 68), ("3dfaw66", 66)])
def test_item_keys_shapes_dtypes(scheme, n):
    ds = SyntheticFaces(5, image_size=S, scheme=scheme, seed=3)
    assert len(ds) == 5
    item = ds[4]
    assert item["image"].shape == (3, S, S) and item["image"].dtype == torch.uint8
    assert item["landmarks"].shape == (n, 3) and item["landmarks"].dtype == torch.float32
    assert item["visible"].shape == (n,) and item["visible"].dtype == torch.bool
    assert item["bbox"].shape == (4,) and item["bbox"].dtype == torch.float32
    assert item["pose"].shape == (3,) and item["pose"].dtype == torch.float32
    assert item["id"] == "synth-s3-000004"
    assert item["image"].float().std() > 10  # not a blank frame


def test_66_is_68_without_inner_mouth_corners_and_with_the_3d_jaw_contour():
    """The same image; the 66 points are the 68 without the inner mouth corners, except the jaw: the
    68 scheme's contour points 0-3 and 13-16 are marched to the outline (300-W's convention), 3DFAW's
    66 keep the 3D contour."""
    p = SyntheticFaces(1, seed=5).params(0)
    a, b = render_face(p, S, "68"), render_face(p, S, "3dfaw66")
    keep = [i for i in range(68) if i not in (60, 64)]
    assert torch.equal(a["image"], b["image"])
    same = [j for j, i in enumerate(keep) if not (i <= 3 or 13 <= i <= 16)]
    assert torch.allclose(a["landmarks"][keep][same, :2], b["landmarks"][same, :2])
    assert torch.equal(a["visible"][keep][same], b["visible"][same])
    assert abs(b["landmarks"][:, 2].mean()) < 1e-3  # re-centred after dropping two points


def test_the_68_point_jaw_lies_on_the_outline_of_the_face():
    """Frontal faces and the far side of turned ones: each marched jaw point is within a pixel or two of
    the head's outline on its image row (the head: the pixels that stay the same when only the
    background changes), and never farther from it than the 3D contour. Marching runs along the
    surface's parallels, as 300W-LP's does, so on a turned face a point can end a few pixels inside
    the row's outline, which the back of the head or the ear may make; 0, 1, 15 and 16 sit at the ear,
    where the outline goes on round it."""
    import dataclasses
    for yaw, tolerance in ((0.0, 1.0), (25.0, 5.0), (-40.0, 5.0)):
        base = dataclasses.replace(SyntheticFaces(1, seed=2).params(0), yaw=yaw, pitch=0.0, roll=0.0, body=False,
                                   glasses=False, occluder=0, blur=0.0, bg_blur=0.0, jpeg_quality=0, noise=0.0,
                                   face_frac=0.5)
        one, other = (render_face(dataclasses.replace(base, background_seed=k), 128, "68") for k in (1, 2))
        head = (one["image"] == other["image"]).all(0)
        three_d = render_face(base, 128, "3dfaw66")["landmarks"]
        for k in (2, 3, 13, 14):
            x, y = one["landmarks"][k, :2].tolist()
            row = head[round(y)].nonzero().ravel().float()
            far_side = (yaw > 0) == (k > 8)     # the side turned away (yaw > 0 turns the nose to image right)
            if yaw == 0 or far_side:
                edge = float(row.min() if k < 8 else row.max())
                x_3d = float(three_d[k if k < 8 else k - 2, 0])     # the 66 points: no 60 and 64, jaw the same
                assert abs(x - edge) <= tolerance + 0.5 and abs(x - edge) <= abs(x_3d - edge) + 0.5, (yaw, k, x, edge)
        if yaw == 0:   # the frontal 3D contour was inside the outline; the marched one is out on it
            assert (one["landmarks"][:4, 0] < three_d[:4, 0] - 1).all()
            assert (one["landmarks"][13:17, 0] > three_d[11:15, 0] + 1).all()


def test_even_jaw_spreads_the_jaw_evenly_along_the_outline_and_changes_nothing_else():
    """300-W's annotators spread the 17 jaw points about evenly from ear to ear; the contour's own
    parametrisation crowds them near the chin (gaps differ threefold on a frontal face)."""
    import dataclasses
    for yaw in (0.0, 30.0, -60.0):
        base = dataclasses.replace(SyntheticFaces(1, seed=2).params(0), yaw=yaw, pitch=0.0, roll=0.0, occluder=0)
        contour, even = render_face(base, 128, "68"), render_face(dataclasses.replace(base, even_jaw=True), 128, "68")
        assert torch.equal(contour["image"], even["image"])
        assert torch.allclose(contour["landmarks"][17:, :2], even["landmarks"][17:, :2])
        for half in (even["landmarks"][:9, :2], even["landmarks"][8:17, :2]):
            gaps = (half[1:] - half[:-1]).norm(dim=-1)
            assert gaps.max() / gaps.min() < 1.5, (yaw, gaps)
        assert torch.allclose(even["landmarks"][[0, 8, 16], :2], contour["landmarks"][[0, 8, 16], :2], atol=0.05)
        if yaw == 0:
            gaps = (contour["landmarks"][1:17, :2] - contour["landmarks"][:16, :2]).norm(dim=-1)
            assert gaps.max() / gaps.min() > 2.5
            assert even["visible"][:17].all()


def test_deterministic_per_seed_and_index_in_any_order():
    a = SyntheticFaces(6, image_size=S, seed=7)
    b = SyntheticFaces(6, image_size=S, seed=7)
    first = [a[i] for i in range(6)]
    backwards = [b[i] for i in reversed(range(6))][::-1]
    assert all(same_item(x, y) for x, y in zip(first, backwards))
    assert same_item(a[2], first[2])  # repeated access
    other = SyntheticFaces(6, image_size=S, seed=8)[2]
    assert not torch.equal(other["image"], first[2]["image"])
    assert not torch.allclose(other["landmarks"], first[2]["landmarks"])
    assert not torch.equal(first[0]["image"], first[1]["image"])


def test_independent_of_global_rng_and_threads():
    ds = SyntheticFaces(2, image_size=S, seed=1)
    ref = ds[1]
    np.random.seed(123)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert same_item(ds[1], ref)
    finally:
        torch.set_num_threads(threads)


def test_dataloader_workers_give_identical_items():
    ds = SyntheticFaces(4, image_size=32, seed=11)
    serial = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=0))
    parallel = list(torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2))
    assert all(same_item(a, b) for a, b in zip(serial, parallel))


def test_landmarks_inside_image_bbox_and_zero_mean_z():
    ds = SyntheticFaces(24, image_size=S, scheme="68", seed=2)
    inside = []
    for i in range(len(ds)):
        item = ds[i]
        lm = item["landmarks"]
        inside.append(bool(((lm[:, :2] >= -0.5) & (lm[:, :2] <= S - 0.5)).all()))
        expected = torch.stack([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()])
        assert torch.equal(item["bbox"], expected)
        assert abs(lm[:, 2].mean()) < 1e-3
        # face height between ~35 % and ~75 % of the frame (measured frontally; pitch shrinks it)
        assert 0.15 * S < lm[:, 1].max() - lm[:, 1].min() < 0.85 * S
    assert np.mean(inside) >= 0.9


def test_frontal_layout_is_ibug():
    lm = render_face(frontal(), 128, "68")["landmarks"].numpy()
    x, y = lm[:, 0], lm[:, 1]
    assert x[36] < x[39] < x[42] < x[45]                  # subject's right eye on the image left
    assert np.all(np.diff(x[0:17]) > 0)                    # jaw: right ear -> chin -> left ear
    assert y[8] == y[0:17].max() and y[8] > y[57] > y[51] > y[33] > y[30] > y[27]  # chin, lips, nose, bridge
    assert np.all(np.diff(x[17:27]) > 0) and y[17:27].max() < y[36:48].min()       # brows above the eyes
    assert x[31] < x[33] < x[35] and x[48] < x[51] < x[54]
    assert y[37] < y[41] and y[44] < y[46] and y[62] <= y[66]                       # lids and inner lips
    # a symmetric frontal face is its own mirror image under the scheme's flip permutation
    for scheme in ("68", "3dfaw66"):
        lm = render_face(frontal(), 128, scheme)["landmarks"]
        assert torch.allclose(flip_landmarks(lm, 128, scheme), lm, atol=1e-3)


def test_yaw_mirrors_and_depth_order():
    p = frontal(pitch=12.0, face_frac=0.6)
    left = render_face(dataclasses.replace(p, yaw=-35.0), 128, "68")["landmarks"]
    right = render_face(dataclasses.replace(p, yaw=35.0), 128, "68")["landmarks"]
    assert torch.allclose(flip_landmarks(left, 128, "68"), right, atol=1e-2)

    lm = render_face(frontal(), 128, "68")["landmarks"]
    assert lm[30, 2] > lm[0, 2] + 10 and lm[30, 2] > lm[16, 2] + 10   # nose tip closer than the jaw's ends
    assert lm[30, 2] == lm[:, 2].max()
    # yaw > 0 turns the nose toward image right and the subject's right side toward the camera
    assert right[30, 0] > right[[0, 16], 0].mean()
    assert all(right[i, 2] > right[16 - i, 2] for i in range(8))
    assert all(left[i, 2] < left[16 - i, 2] for i in range(8))


def test_visibility_self_occlusion():
    item = render_face(frontal(), 128, "68")
    assert item["visible"][[36, 39, 42, 45, 30, 48, 54]].all()
    assert item["visible"].float().mean() > 0.9
    for yaw, near, far in ((80.0, range(0, 7), range(10, 17)), (-80.0, range(10, 17), range(0, 7))):
        vis = render_face(frontal(yaw=yaw), 128, "68")["visible"]
        assert vis[list(near)].float().mean() >= 0.8
        marched = OUTLINE_JAW_POINTS   # on the outline (300-W's convention): seen from any side
        assert (~vis[[k for k in far if k not in marched]]).sum() >= 3 and vis[[k for k in far if k in marched]].all()
        far_eye = range(42, 48) if yaw > 0 else range(36, 42)
        assert not vis[list(far_eye)].any()


def test_visibility_mirrors_with_yaw():
    p = SyntheticFaces(1, seed=4).params(0)
    p = dataclasses.replace(p, roll=0.0, shift_x=0.0)
    a = render_face(dataclasses.replace(p, yaw=50.0), 96, "68")["visible"]
    b = render_face(dataclasses.replace(p, yaw=-50.0), 96, "68")["visible"]
    flipped = b[list(get_scheme("68").flip_permutation)]
    assert (a == flipped).float().mean() >= 0.95


def test_pose_ranges_and_pose_in_items():
    params = [sample_face_params(np.random.Generator(np.random.PCG64([0, i]))) for i in range(600)]
    yaw = np.array([p.yaw for p in params])
    pitch = np.array([p.pitch for p in params])
    roll = np.array([p.roll for p in params])
    assert yaw.min() >= -90 and yaw.max() <= 90 and yaw.min() < -85 and yaw.max() > 85
    assert pitch.min() >= -40 and pitch.max() <= 40 and pitch.min() < -37 and pitch.max() > 37
    assert np.abs(roll).max() <= 30 and 7 < roll.std() < 13
    assert abs(np.mean(np.abs(yaw) > 45) - 0.5) < 0.1  # uniform: half the faces beyond 45 degrees
    ds = SyntheticFaces(3, image_size=S, seed=0)
    p = ds.params(2)
    assert torch.allclose(ds[2]["pose"], torch.tensor([p.yaw, p.pitch, p.roll]))
    turned = render_face(dataclasses.replace(p, yaw=30.0), S)
    assert turned["pose"][0] == 30.0 and turned["id"] == "synth-custom"


def test_mean_shape_is_a_poor_predictor():
    """Pose and framing vary enough that the mean shape is far from most faces."""
    ds = SyntheticFaces(40, image_size=S, scheme="68", seed=9)
    lms = np.stack([ds[i]["landmarks"].numpy() for i in range(len(ds))])
    mean = lms.mean(0)
    iod = np.linalg.norm(lms[:, 36] - lms[:, 45], axis=1)
    err = np.linalg.norm(lms[:, :, :2] - mean[None, :, :2], axis=2).mean(1) / np.maximum(iod, 1.0)
    assert np.median(err) > 0.4   # 0.47 with fa3d 0.4's faces (eyes at human spacing: a larger IOD), 0.5+ before


def test_bad_arguments():
    with pytest.raises(ValueError):
        SyntheticFaces(-1)
    with pytest.raises(ValueError):
        SyntheticFaces(3, scheme="5")
    with pytest.raises(IndexError):
        SyntheticFaces(3).params(3)
