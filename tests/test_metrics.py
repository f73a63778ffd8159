import math

import pytest
import torch

from fa3d.metrics import (W300_AUC_LIMIT, auc, ced, cvgtce, failure_rate, gte, interocular_distance, nme_bbox,
                          nme_eyes, score, similarity_align, summarize, w300_groups, w300_protocol, yaw_binned_nme)


def _face(seed=0, n=68):
    """Random (n, 3) float64 'face' with outer eye corners 36 = (0,0,0), 45 = (6,0,8): 10 px apart in 3D, 6 in 2D."""
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(n, 3, generator=g, dtype=torch.float64) * 40 - 20
    pts[36] = torch.tensor([0.0, 0.0, 0.0])
    pts[45] = torch.tensor([6.0, 0.0, 8.0])
    return pts


def _rotation(axis, angle_deg):
    """Rodrigues: rotation matrix about `axis` by `angle_deg`."""
    k = torch.tensor(axis, dtype=torch.float64)
    k = k / k.norm()
    K = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=torch.float64)
    a = math.radians(angle_deg)
    return torch.eye(3, dtype=torch.float64) + math.sin(a) * K + (1 - math.cos(a)) * K @ K


def test_gte_per_axis_hand_computed():
    gt = _face()
    pred = gt + torch.tensor([3.0, 4.0, 12.0])  # |xy| = 5, |xyz| = 13
    assert float(interocular_distance(gt)) == pytest.approx(10.0)
    assert float(interocular_distance(gt, "3dfaw66", axes="xy")) == pytest.approx(6.0)
    expected = {"xyz": 1.3, "xy": 0.5, "x": 0.3, "y": 0.4, "z": 1.2}  # always divided by the 3D distance 10
    for axes, value in expected.items():
        out = gte(pred, gt, axes)
        assert out.shape == ()
        assert float(out) == pytest.approx(value)
    # numpy in, same answer
    assert float(gte(pred.numpy(), gt.numpy(), "xy")) == pytest.approx(0.5)


def test_nan_z_ground_truth_uses_2d_interocular():
    gt = _face()
    pred = gt + torch.tensor([3.0, 4.0, 12.0])
    gt[:, 2] = float("nan")
    assert float(interocular_distance(gt)) == pytest.approx(6.0)
    assert float(gte(pred, gt, "xy")) == pytest.approx(5 / 6)
    assert math.isnan(float(gte(pred, gt, "z")))
    assert math.isnan(float(cvgtce(pred, gt)))  # no crash, NaN marks the missing z


def test_similarity_transform_gives_zero_cvgtce():
    gt = _face(1)
    R = _rotation([1.0, 2.0, -0.5], 40.0)
    t = torch.tensor([5.0, -7.0, 3.0], dtype=torch.float64)
    pred = 1.3 * gt @ R.T + t
    assert float(gte(pred, gt)) > 0.1
    assert float(cvgtce(pred, gt)) < 1e-5
    aligned, s, R_hat, t_hat = similarity_align(gt, pred)  # recover the transform itself
    assert float(s) == pytest.approx(1.3)
    assert torch.allclose(R_hat, R, atol=1e-8) and torch.allclose(t_hat, t, atol=1e-8)
    assert torch.allclose(aligned, pred, atol=1e-8)
    # float32 input works too
    assert float(cvgtce(pred.float(), gt.float())) < 1e-5


def test_reflection_is_excluded():
    gt = _face(2)
    pred = gt * torch.tensor([-1.0, 1.0, 1.0])  # mirror image: not a proper similarity
    _, _, R, _ = similarity_align(pred, gt)
    assert float(torch.linalg.det(R)) == pytest.approx(1.0)
    assert float(cvgtce(pred, gt)) > 0.05


def test_similarity_align_2d():
    gt = _face(3)[:, :2]
    a = math.radians(25.0)
    R = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64)
    src = 0.7 * gt @ R.T + torch.tensor([10.0, 2.0])
    aligned, s, R_hat, _ = similarity_align(src, gt)
    assert torch.allclose(aligned, gt, atol=1e-8)
    assert float(s) == pytest.approx(1 / 0.7)
    assert torch.allclose(R_hat, R.T, atol=1e-8)


def test_degenerate_source_has_no_nan():
    gt = _face(4)
    src = torch.ones_like(gt) * 3.0
    aligned, s, R, t = similarity_align(src, gt)
    assert float(s) == 0.0
    assert torch.isfinite(R).all() and torch.isfinite(t).all()
    assert torch.allclose(aligned, gt.mean(0).expand_as(gt))
    assert math.isfinite(float(cvgtce(src, gt)))


def test_batched_equals_per_item():
    gt = torch.stack([_face(s) for s in range(4)])
    pred = gt + torch.randn(gt.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    for fn in (lambda p, g: gte(p, g, "xy"), cvgtce, nme_bbox, interocular_distance):
        args = (gt,) if fn is interocular_distance else (pred, gt)
        batched = fn(*args)
        assert batched.shape == (4,)
        single = torch.stack([fn(*(a[i] for a in args)) for i in range(4)])
        assert torch.allclose(batched, single, atol=1e-10)


def test_nme_bbox_hand_made_box():
    gt = torch.tensor([[0.0, 0.0, 5.0], [8.0, 0.0, -3.0], [0.0, 2.0, 1.0], [8.0, 2.0, 0.0]])  # w 8, h 2 -> 4
    pred = gt + torch.tensor([0.0, 2.0, 100.0])  # z is ignored
    assert float(nme_bbox(pred, gt)) == pytest.approx(0.5)


def test_yaw_binned_nme():
    out = yaw_binned_nme([1.0, 2.0, 3.0, 10.0, 4.0], [0.0, -30.0, 45.0, 95.0, 30.001])
    assert out["counts"] == [2, 2, 1]  # 95 deg lands in the last bin
    assert out["means"] == pytest.approx([1.5, 3.5, 10.0])
    assert out["balanced"] == pytest.approx((1.5 + 3.5 + 10.0) / 3)
    assert out["mean"] == pytest.approx(4.0)
    assert out["balanced"] != pytest.approx(out["mean"])
    with pytest.raises(ValueError):
        yaw_binned_nme([1.0], [float("nan")])


def test_ced_auc_failure_rate():
    errors = [0.1, 0.2, 0.4]
    assert ced(errors, [0.0, 0.1, 0.15, 0.4, 0.5]).tolist() == pytest.approx([0, 1 / 3, 1 / 3, 1, 1])
    # area under the step CED on [0, 0.5]: (0.4 + 0.3 + 0.1) / 3, divided by 0.5
    assert auc(errors, 0.5) == pytest.approx(8 / 15)
    assert auc(errors, 0.5, num_steps=20001) == pytest.approx(8 / 15, abs=1e-4)
    assert auc(errors, 0.05) == 0.0
    assert failure_rate(errors, 0.2) == pytest.approx(1 / 3)


def test_summarize_percent():
    gt = torch.stack([_face(0), _face(1)])
    pred = gt + torch.tensor([3.0, 4.0, 12.0], dtype=torch.float64)
    out = summarize(pred, gt)
    assert set(out) == {"gte_xy", "gte_xyz", "gte_x", "gte_y", "gte_z", "cvgtce", "num_images"}
    assert out["num_images"] == 2
    assert out["gte_xyz"] == pytest.approx(130.0)
    assert out["gte_xy"] == pytest.approx(50.0)
    assert out["gte_z"] == pytest.approx(120.0)
    assert out["cvgtce"] == pytest.approx(0.0, abs=1e-6)  # a pure translation aligns away


def test_score_computes_every_number_once():
    gt = torch.stack([_face(s) for s in range(4)])
    pred = gt + torch.randn(gt.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    yaw = torch.tensor([10.0, -40.0, 80.0, float("nan")])  # one face per bin, the last one unknown
    s = score(pred, gt, yaw)
    assert s["summary"] == summarize(pred, gt) and s["axes"] == "xyz" and s["yaw_known"] == 3
    assert torch.equal(s["errors"]["cvgtce"], cvgtce(pred, gt)) and torch.equal(s["errors"]["z"], gte(pred, gt, "z"))
    nme = nme_bbox(pred, gt)
    assert s["yaw"]["nme_bbox"]["means"] == pytest.approx([100 * float(e) for e in nme[:3]])
    assert s["yaw"]["gte_xyz"]["means"] == pytest.approx([100 * float(e) for e in gte(pred, gt)[:3]])
    protocol = s["protocol"]  # 68 points: the AFLW2000-3D protocol, every face in "nme"
    assert protocol["nme"] == pytest.approx(100 * float(nme.mean())) and protocol["counts"] == [1, 1, 1]
    assert protocol["means"] == s["yaw"]["nme_bbox"]["means"] and protocol["num_images"] == 4
    no_yaw = score(pred, gt)
    assert "yaw" not in no_yaw and math.isnan(no_yaw["protocol"]["balanced"]) and no_yaw["yaw_known"] == 0
    assert "protocol" not in score(pred[:, :66], gt[:, :66])  # the 66-point scheme: no protocol
    with pytest.raises(ValueError, match="scheme"):  # the eye corners come from the scheme of N points
        interocular_distance(gt[:, :10])


def test_300w_nme_is_2d_by_the_outer_eye_corners():
    gt = torch.zeros(68, 3)
    gt[36, :2], gt[45, :2] = torch.tensor([0.0, 0.0]), torch.tensor([40.0, 0.0])
    gt[45, 2] = 30.0   # a z on the eye corner: the 300-W normaliser stays 2D (40 px), GTE's is 3D (50 px)
    pred = gt.clone()
    pred[:, 0] += 2.0  # every point 2 px off in x: NME 2 / 40
    pred[:, 2] += 100.0  # z is not part of 300-W's error
    assert float(nme_eyes(pred, gt)) == pytest.approx(2 / 40)
    assert float(gte(pred, gt, "xy")) == pytest.approx(2 / 50)


def test_300w_table_rows_name_the_official_subsets_only():
    official = ["lfpw/testset/a", "helen/testset/b", "ibug/c", "afw/d", "lfpw/trainset/e"]
    assert w300_groups(official) == {"all": [0, 1, 2, 3, 4], "common": [0, 1], "challenging": [2], "full": [0, 1, 2]}
    # a validation split of the training folders is never labelled "common": one row per folder instead
    assert w300_groups(["lfpw-train/a", "afw/b", "helen-train/c", "afw/d"]) == {
        "all": [0, 1, 2, 3], "afw": [1, 3], "helen-train": [2], "lfpw-train": [0]}
    assert w300_groups(["a", "b"]) == {"all": [0, 1]}


def test_300w_protocol_hand_computed():
    errors = torch.tensor([0.02, 0.04, 0.12, 0.06])
    table = w300_protocol(errors, {"all": [0, 1, 2, 3], "two": [0, 2]})
    assert table["all"]["nme"] == pytest.approx(6.0) and table["all"]["failure_rate"] == pytest.approx(25.0)
    # AUC to 8 %: the mean of max(0, 0.08 - e) / 0.08 = (0.06 + 0.04 + 0 + 0.02) / 4 / 0.08
    assert table["all"]["auc"] == pytest.approx(0.12 / 4 / W300_AUC_LIMIT)
    assert table["two"] == {"nme": pytest.approx(7.0), "failure_rate": pytest.approx(50.0),
                            "auc": pytest.approx(0.06 / 2 / 0.08), "num_images": 2}


def test_score_carries_the_300w_table_with_ids():
    gt = torch.rand(3, 68, 3) * 100
    out = score(gt + 1.0, gt, ids=["ibug/a", "lfpw/testset/b", "helen/testset/c"])
    assert set(out["w300"]) == {"all", "common", "challenging", "full"}
    assert out["w300"]["common"]["num_images"] == 2
    assert torch.allclose(out["errors"]["nme_eyes"], nme_eyes(gt + 1.0, gt).to(out["errors"]["nme_eyes"].dtype))
    assert "w300" not in score(gt + 1.0, gt)
