"""Real-dataset readers (fa3d.data.readers) and writers (fa3d.data.writers), on files of the real formats
written here (no downloads)."""
import numpy as np
import pytest
import scipy.io
import torch

from fa3d.data.item import face_item
from fa3d.data.readers import (AFLW2000_3D, DATASET_SPECS, DatasetFormatError, PtsFolder, ThreeDFAW, W300LP,
                               open_dataset, parse_spec, read_300wlp_landmarks, read_3dfaw_landmarks,
                               read_aflw2000_3d, read_image, read_pts)
from fa3d.data.writers import (export_3dfaw_layout, write_300wlp_mat, write_3dfaw_landmarks, write_aflw2000_3d_mat,
                               write_image, write_pts)
from fa3d.data.schemes import INDICES_68_TO_66
from fa3d.data.pose import pose_to_3ddfa

H, W = 24, 32


def _lm(n, d=3, seed=0):
    """Landmarks with awkward float32 values (round trips must be exact, not approximate)."""
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.5, 22, (n, d)) + rng.uniform(0, 1e-3, (n, d))).astype(np.float32)


def _img(seed=0):
    return torch.randint(0, 256, (3, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _smooth(seed=0):
    """A smooth image, which JPEG keeps within a few grey levels."""
    ramp = torch.linspace(0, 200, W) + 5 * seed
    return ramp.round().to(torch.uint8).expand(3, H, W).contiguous()


# ----------------------------------------------------------------------------- round trips

def test_3dfaw_csv_round_trip_exact(tmp_path):
    lm = _lm(66)
    write_3dfaw_landmarks(tmp_path / "a_lm.csv", lm)
    back = read_3dfaw_landmarks(tmp_path / "a_lm.csv")
    assert back.dtype == np.float32 and back.shape == (66, 3)
    np.testing.assert_array_equal(back, lm)


def test_3dfaw_csv_tolerates_spaces_header_blank_lines(tmp_path):
    rows = "\n".join(f" {i}, {i + 0.5} ,{-i}" for i in range(66))
    p = tmp_path / "b_lm.csv"
    p.write_text("x, y, z\n" + rows + "\n\n\n")
    lm = read_3dfaw_landmarks(p)
    np.testing.assert_array_equal(lm[10], [10, 10.5, -10])


def test_pts_round_trip_and_one_based(tmp_path):
    lm = _lm(68, 2)
    write_pts(tmp_path / "a.pts", lm)
    np.testing.assert_array_equal(read_pts(tmp_path / "a.pts"), lm)
    # The file is 1-based: a point at fa3d pixel (0, 0) is stored as "1.0 1.0".
    write_pts(tmp_path / "z.pts", np.zeros((3, 2)))
    assert (tmp_path / "z.pts").read_text() == "version: 1\nn_points: 3\n{\n1.0 1.0\n1.0 1.0\n1.0 1.0\n}\n"
    (tmp_path / "h.pts").write_text("version: 1\nn_points:  2\n{\n11 21.5\n1 1\n}\n")
    np.testing.assert_array_equal(read_pts(tmp_path / "h.pts"), [[10, 20.5], [0, 0]])


def test_aflw2000_mat_round_trip_and_pose_order(tmp_path):
    lm = _lm(68)
    write_aflw2000_3d_mat(tmp_path / "a.mat", lm, pose_deg=(10.0, -20.0, 30.0))
    np.testing.assert_allclose(read_aflw2000_3d(tmp_path / "a.mat"), lm, atol=2e-5)
    mat = scipy.io.loadmat(tmp_path / "a.mat")
    assert mat["pt3d_68"].shape == (3, 68) and mat["Pose_Para"].shape == (1, 7)
    # Stored: MATLAB's 1-based pixels, and pitch, yaw, roll in radians in 3DDFA's convention.
    np.testing.assert_allclose(mat["pt3d_68"].T[:, :2] - 1, lm[:, :2], atol=2e-5)
    np.testing.assert_allclose(mat["pt3d_68"].T[:, 2], lm[:, 2])
    np.testing.assert_allclose(mat["Pose_Para"][0, :3], pose_to_3ddfa(10.0, -20.0, 30.0))
    scipy.io.savemat(tmp_path / "h.mat", {"pt3d_68": lm.T.astype(np.float64)})   # as MATLAB stores it: 1-based
    np.testing.assert_allclose(read_aflw2000_3d(tmp_path / "h.mat")[:, :2], lm[:, :2] - 1, atol=2e-5)


def test_300wlp_mats_round_trip(tmp_path):
    lm = _lm(68, 2)
    write_300wlp_mat(tmp_path / "a.mat", lm, (1.0, 2.0, 3.0))
    assert scipy.io.loadmat(tmp_path / "a.mat")["pt2d"].shape == (2, 68)
    np.testing.assert_allclose(read_300wlp_landmarks(tmp_path / "a.mat"), lm, atol=2e-5)
    np.testing.assert_allclose(scipy.io.loadmat(tmp_path / "a.mat")["pt2d"].T - 1, lm, atol=2e-5)
    scipy.io.savemat(tmp_path / "a_pts.mat", {"pts_2d": lm.astype(np.float64) + 1})   # landmarks/<subset>/*_pts.mat
    np.testing.assert_allclose(read_300wlp_landmarks(tmp_path / "a_pts.mat"), lm, atol=2e-5)


def test_image_round_trip_png_exact_jpg_close_gray_to_rgb(tmp_path):
    img = _img()
    write_image(tmp_path / "a.png", img)
    assert torch.equal(read_image(tmp_path / "a.png"), img)
    smooth = _smooth()
    write_image(tmp_path / "a.jpg", smooth)
    assert (read_image(tmp_path / "a.jpg").float() - smooth.float()).abs().mean() < 3
    from PIL import Image
    Image.fromarray(np.full((H, W), 77, np.uint8)).save(tmp_path / "g.png")
    g = read_image(tmp_path / "g.png")
    assert g.shape == (3, H, W) and g.dtype == torch.uint8 and (g == 77).all()


# ----------------------------------------------------------------------------- parse errors

@pytest.mark.parametrize("content, problem", [
    ("1,2,3\n" * 65, "found 65"),
    ("1,2,3\n" * 67, "found 67"),
    ("1,2\n" * 66, "2 values"),
    ("1,2,3\n" * 10 + "1,a,3\n" + "1,2,3\n" * 55, "line 11 is not numeric"),
    ("1,2,3\n" * 65 + "1,nan,3\n", "NaN"),
    ("1,2,3\n" * 65 + "1,inf,3\n", "inf"),
])
def test_3dfaw_csv_errors_name_file(tmp_path, content, problem):
    p = tmp_path / "bad_face_lm.csv"
    p.write_text(content)
    with pytest.raises(DatasetFormatError, match=problem) as e:
        read_3dfaw_landmarks(p)
    assert "bad_face_lm.csv" in str(e.value)


@pytest.mark.parametrize("content, problem", [
    ("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n", "2 point rows"),
    ("version: 1\nn_points: 2\n{\n1 2\n3 4\n5 6\n}\n", "3 point rows"),
    ("version: 1\nn_points: 2\n{\n1 2\n3 4\n", "0 point rows|2 point rows"),
    ("version: 1\n1 2\n", "expected 'key: value'"),
    ("n_points: x\n{\n}\n", "n_points"),
    ("version: 1\nn_points: 1\n{\n1 nan\n}\n", "NaN"),
])
def test_pts_errors_name_file(tmp_path, content, problem):
    p = tmp_path / "bad.pts"
    p.write_text(content)
    with pytest.raises(DatasetFormatError, match=problem) as e:
        read_pts(p)
    assert "bad.pts" in str(e.value)


def test_mat_errors_name_file(tmp_path):
    scipy.io.savemat(tmp_path / "nokey.mat", {"other": np.zeros(3)})
    with pytest.raises(DatasetFormatError, match="pt3d_68") as e:
        read_aflw2000_3d(tmp_path / "nokey.mat")
    assert "nokey.mat" in str(e.value)
    scipy.io.savemat(tmp_path / "shape.mat", {"pt3d_68": np.zeros((3, 21))})
    with pytest.raises(DatasetFormatError, match=r"\(3, 21\)") as e:
        read_aflw2000_3d(tmp_path / "shape.mat")
    assert "shape.mat" in str(e.value)
    scipy.io.savemat(tmp_path / "nan.mat", {"pt2d": np.full((2, 68), np.nan)})
    with pytest.raises(DatasetFormatError, match="NaN") as e:
        read_300wlp_landmarks(tmp_path / "nan.mat")
    assert "nan.mat" in str(e.value)
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DatasetFormatError) as e:
        read_aflw2000_3d(tmp_path / "junk.mat")
    assert "junk.mat" in str(e.value)


def test_truncated_and_empty_images_raise(tmp_path):
    write_image(tmp_path / "ok.jpg", _img())
    data = (tmp_path / "ok.jpg").read_bytes()
    for cut in (2, len(data) // 2):
        (tmp_path / "cut.jpg").write_bytes(data[:-cut])
        with pytest.raises(DatasetFormatError, match="cut.jpg"):
            read_image(tmp_path / "cut.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DatasetFormatError, match="empty.png"):
        read_image(tmp_path / "empty.png")


# ----------------------------------------------------------------------------- writers refuse to overwrite

@pytest.mark.parametrize("name, write, value", [
    ("a_lm.csv", write_3dfaw_landmarks, _lm(66)),
    ("a.pts", write_pts, _lm(68, 2)),
    ("a.mat", write_aflw2000_3d_mat, _lm(68)),
    ("b.mat", write_300wlp_mat, _lm(68, 2)),
    ("a.jpg", write_image, _img()),
])
def test_writers_refuse_to_overwrite(tmp_path, name, write, value):
    p = tmp_path / name
    p.write_bytes(b"user data")
    with pytest.raises(FileExistsError, match=name):
        write(p, value)
    assert p.read_bytes() == b"user data"
    write(p, value, overwrite=True)
    assert p.read_bytes() != b"user data"
    assert sorted(x.name for x in tmp_path.iterdir()) == [name]  # no temp file left behind


def test_writers_reject_bad_landmarks(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        write_3dfaw_landmarks(tmp_path / "a_lm.csv", _lm(68))
    bad = _lm(68, 2)
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_pts(tmp_path / "a.pts", bad)
    assert not any(tmp_path.iterdir())


# ----------------------------------------------------------------------------- datasets

def _make_3dfaw(root, n=3, split="train"):
    lms = {}
    for i in range(n):
        fid = f"face{i:03d}"
        lms[fid] = _lm(66, seed=i) + np.float32([0, 0, 100])
        write_image(root / f"{split}_img" / f"{fid}.jpg", _img(i))
        write_3dfaw_landmarks(root / f"{split}_lm" / f"{fid}_lm.csv", lms[fid])
    return lms


def _check_item(item, n, has_z):
    assert set(item) == {"image", "landmarks", "visible", "bbox", "pose", "id"}
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, H, W)
    assert item["landmarks"].dtype == torch.float32 and item["landmarks"].shape == (n, 3)
    assert item["visible"].dtype == torch.bool and item["visible"].all() and item["visible"].shape == (n,)
    assert item["bbox"].dtype == torch.float32 and item["pose"].dtype == torch.float32
    lm = item["landmarks"]
    assert torch.equal(item["bbox"], torch.stack([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()]))
    if has_z:
        assert abs(lm[:, 2].mean().item()) < 1e-4
    else:
        assert torch.isnan(lm[:, 2]).all()


def test_face_item_fills_the_defaults_and_checks_types():
    item = face_item(_img(), torch.zeros(68, 3))
    _check_item(item, 68, has_z=True)
    assert torch.isnan(item["pose"]).all() and item["id"] == ""
    with pytest.raises(ValueError, match="landmarks must be torch.float32"):
        face_item(_img(), torch.zeros(68, 3, dtype=torch.float64))


def test_3dfaw_dataset(tmp_path):
    lms = _make_3dfaw(tmp_path)
    ds = ThreeDFAW(tmp_path, split="train")
    assert len(ds) == 3 and ds.scheme.name == "3dfaw66"
    item = ds[1]
    _check_item(item, 66, has_z=True)
    assert item["id"] == "face001" and torch.isnan(item["pose"]).all()
    ref = lms["face001"]
    np.testing.assert_array_equal(item["landmarks"][:, :2].numpy(), ref[:, :2])
    np.testing.assert_allclose(item["landmarks"][:, 2].numpy(), ref[:, 2] - ref[:, 2].mean(), atol=1e-4)
    with pytest.raises(FileNotFoundError, match="valid_img"):
        ThreeDFAW(tmp_path, split="valid")


def test_dataset_construction_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        ThreeDFAW(tmp_path / "nowhere")
    _make_3dfaw(tmp_path)
    (tmp_path / "train_lm" / "face001_lm.csv").unlink()
    write_3dfaw_landmarks(tmp_path / "train_lm" / "orphan_lm.csv", _lm(66))
    with pytest.raises(DatasetFormatError) as e:
        ThreeDFAW(tmp_path)
    msg = str(e.value)
    assert "face001" in msg and "orphan" in msg and "train_img" in msg and "train_lm" in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetFormatError, match="empty"):
        AFLW2000_3D(tmp_path / "empty")


def test_item_load_errors_name_file(tmp_path):
    _make_3dfaw(tmp_path)
    lm = _lm(66)
    lm[5, 0] = 1e4  # far outside the image: allowed (faces at the border)
    write_3dfaw_landmarks(tmp_path / "train_lm" / "face000_lm.csv", lm, overwrite=True)
    (tmp_path / "train_lm" / "face001_lm.csv").write_text("1,2,3\n" * 65 + "1,NaN,3\n")
    data = (tmp_path / "train_img" / "face002.jpg").read_bytes()
    (tmp_path / "train_img" / "face002.jpg").write_bytes(data[: len(data) // 2])
    ds = ThreeDFAW(tmp_path)
    assert ds[0]["landmarks"][5, 0] == 1e4
    with pytest.raises(DatasetFormatError, match="face001_lm.csv"):
        ds[1]
    with pytest.raises(DatasetFormatError, match="face002.jpg"):
        ds[2]


def test_aflw2000_dataset_and_schemes(tmp_path):
    lm = _lm(68)
    write_image(tmp_path / "image00002.jpg", _img())
    write_aflw2000_3d_mat(tmp_path / "image00002.mat", lm, (45.0, 5.0, -3.0))
    (tmp_path / "readme.txt").write_text("ignored")
    item = AFLW2000_3D(tmp_path)[0]
    _check_item(item, 68, has_z=True)
    assert item["id"] == "image00002"
    np.testing.assert_allclose(item["pose"].numpy(), [45, 5, -3], atol=1e-5)
    item66 = AFLW2000_3D(tmp_path, scheme="3dfaw66")[0]
    _check_item(item66, 66, has_z=True)
    # z is centred over the points of the item's scheme, so over the 66 points here.
    sub = item["landmarks"][list(INDICES_68_TO_66)]
    assert torch.equal(item66["landmarks"][:, :2], sub[:, :2])
    torch.testing.assert_close(item66["landmarks"][:, 2], sub[:, 2] - sub[:, 2].mean(), atol=1e-4, rtol=0)


def test_300wlp_dataset(tmp_path):
    lm = _lm(68, 2)
    for subset in ("AFW", "AFW_Flip"):
        write_image(tmp_path / subset / "AFW_1_1_0.jpg", _img())
        write_300wlp_mat(tmp_path / subset / "AFW_1_1_0.mat", lm, (60.0, 0.0, 0.0))
    (tmp_path / "landmarks" / "AFW").mkdir(parents=True)
    scipy.io.savemat(tmp_path / "landmarks" / "AFW" / "AFW_1_1_0_pts.mat", {"pts_2d": lm.astype(np.float64) + 1})
    ds = W300LP(tmp_path)
    assert ds.subsets == ["AFW", "AFW_Flip"] and [s[0] for s in ds.samples] == ["AFW/AFW_1_1_0", "AFW_Flip/AFW_1_1_0"]
    item = ds[1]
    _check_item(item, 68, has_z=False)
    np.testing.assert_array_equal(item["landmarks"][:, :2].numpy(), lm)
    np.testing.assert_allclose(item["pose"].numpy(), [60, 0, 0], atol=1e-5)
    assert len(W300LP(tmp_path, subsets=["AFW"])) == 1
    with pytest.raises(FileNotFoundError, match="HELEN"):
        W300LP(tmp_path, subsets=["HELEN"])


def test_pts_folder_infers_scheme(tmp_path):
    write_image(tmp_path / "a" / "x.png", _img())
    write_pts(tmp_path / "a" / "x.pts", _lm(68, 2))
    ds = PtsFolder(tmp_path)
    assert ds.scheme.name == "68" and ds[0]["id"] == "a/x"
    _check_item(ds[0], 68, has_z=False)
    assert PtsFolder(tmp_path, scheme="3dfaw66")[0]["landmarks"].shape == (66, 3)
    write_pts(tmp_path / "a" / "x.pts", _lm(66, 2), overwrite=True)
    assert PtsFolder(tmp_path).scheme.name == "3dfaw66"
    write_pts(tmp_path / "a" / "x.pts", _lm(5, 2), overwrite=True)
    with pytest.raises(DatasetFormatError, match="x.pts"):
        PtsFolder(tmp_path)


def test_export_3dfaw_layout_round_trip(tmp_path):
    src = tmp_path / "aflw"
    lms = [_lm(68, seed=s) for s in range(2)]
    for s, lm in enumerate(lms):
        write_image(src / f"im{s}.png", _smooth(s))
        write_aflw2000_3d_mat(src / f"im{s}.mat", lm)
    ds = AFLW2000_3D(src)
    assert export_3dfaw_layout(ds, tmp_path / "out", "valid") == 2
    back = ThreeDFAW(tmp_path / "out", split="valid")
    assert len(back) == 2 and back[1]["id"] == "im1"
    sub = lms[1][list(INDICES_68_TO_66)]
    np.testing.assert_array_equal(back[1]["landmarks"][:, :2].numpy(), sub[:, :2])
    np.testing.assert_allclose(back[1]["landmarks"][:, 2].numpy(), sub[:, 2] - sub[:, 2].mean(), atol=1e-4)
    assert (back[1]["image"].float() - ds[1]["image"].float()).abs().max() <= 4  # through JPEG
    with pytest.raises(FileExistsError, match="im0"):
        export_3dfaw_layout(ds, tmp_path / "out", "valid")
    write_image(tmp_path / "lp" / "S" / "a.jpg", _img())
    write_300wlp_mat(tmp_path / "lp" / "S" / "a.mat", _lm(68, 2))
    with pytest.raises(ValueError, match="without z"):
        export_3dfaw_layout(W300LP(tmp_path / "lp"), tmp_path / "out2", "train")


def test_open_dataset_specs(tmp_path):
    _make_3dfaw(tmp_path, n=2, split="valid")
    ds = open_dataset(f"3dfaw:{tmp_path}", split="valid")
    assert isinstance(ds, ThreeDFAW) and len(ds) == 2
    with pytest.raises(ValueError, match="imagenet:x") as e:
        open_dataset("imagenet:x")
    assert "aflw2000:DIR" in str(e.value)
    with pytest.raises(ValueError, match="needs a folder"):
        open_dataset("aflw2000")
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        open_dataset(f"300wlp:{tmp_path / 'missing_dir'}")


def test_open_dataset_synthetic_and_export(tmp_path):
    pytest.importorskip("fa3d.data.synthetic")
    ds = open_dataset("synthetic:1", image_size=64)
    assert len(ds) == 1
    assert export_3dfaw_layout(ds, tmp_path, "train") == 1
    a, b = ds[0], ThreeDFAW(tmp_path)[0]
    assert b["id"] == str(a["id"]).replace("/", "__") and b["image"].shape == a["image"].shape
    torch.testing.assert_close(b["landmarks"], a["landmarks"], atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------- landmarks without images

def _same(a, b):
    """Equal tensors, NaN equal to NaN (2D data has NaN z)."""
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(torch.nan_to_num(a, 1234.5),
                                                                    torch.nan_to_num(b, 1234.5)) \
        and torch.equal(torch.isnan(a), torch.isnan(b))


def _dataset_of_each_class(root):
    _make_3dfaw(root / "3dfaw")
    for i in range(2):
        write_image(root / "aflw" / f"im{i}.jpg", _img(i))
        write_aflw2000_3d_mat(root / "aflw" / f"im{i}.mat", _lm(68, seed=i), (10.0 * i, 0.0, 0.0))
        write_image(root / "lp" / "AFW" / f"a{i}.jpg", _img(i))
        write_300wlp_mat(root / "lp" / "AFW" / f"a{i}.mat", _lm(68, 2, seed=i), (0.0, 5.0, 0.0))
        write_image(root / "pts" / "s" / f"p{i}.png", _img(i))
        write_pts(root / "pts" / "s" / f"p{i}.pts", _lm(68, 2, seed=i))
    return [ThreeDFAW(root / "3dfaw"), AFLW2000_3D(root / "aflw"), AFLW2000_3D(root / "aflw", scheme="3dfaw66"),
            W300LP(root / "lp"), PtsFolder(root / "pts"), PtsFolder(root / "pts", scheme="3dfaw66")]


def test_landmarks_equal_items_landmarks_for_each_dataset_class(tmp_path):
    datasets = _dataset_of_each_class(tmp_path)
    assert {type(ds) for ds in datasets} == {ThreeDFAW, AFLW2000_3D, W300LP, PtsFolder}
    for ds in datasets:
        for i in range(len(ds)):
            lm, item_lm = ds.landmarks(i), ds[i]["landmarks"]
            assert lm.dtype == torch.float32 and lm.shape == (ds.scheme.num_points, 3)
            assert _same(lm, item_lm), (ds, i)
            assert torch.isnan(lm[:, 2]).all() == isinstance(ds, (W300LP, PtsFolder))


def test_landmarks_do_not_decode_the_image(tmp_path):
    _make_3dfaw(tmp_path, n=2)
    ds = ThreeDFAW(tmp_path)
    expected = ds[0]["landmarks"]
    (tmp_path / "train_img" / "face000.jpg").write_bytes(b"")  # an image that cannot be decoded
    assert _same(ds.landmarks(0), expected)
    with pytest.raises(DatasetFormatError, match="face000.jpg"):
        ds[0]
    (tmp_path / "train_lm" / "face001_lm.csv").write_text("1,2,3\n" * 65)  # the annotation is still read
    with pytest.raises(DatasetFormatError, match="face001_lm.csv"):
        ds.landmarks(1)


# ----------------------------------------------------------------------------- spec parser

def test_parse_spec():
    assert parse_spec("3dfaw:/data/3dfaw") == ("3dfaw", "/data/3dfaw")
    assert parse_spec(" AFLW2000 :C:/data") == ("aflw2000", "C:/data")  # only the first ":" splits
    assert parse_spec("synthetic") == ("synthetic", "")
    assert {parse_spec(f"{k}:x")[0] for k in DATASET_SPECS} == {"synthetic", "3dfaw", "aflw2000", "300wlp", "folder", "300w"}
    with pytest.raises(ValueError, match="imagenet:x") as e:
        parse_spec("imagenet:x")
    assert all(line in str(e.value) for line in DATASET_SPECS.values())
