"""Honest splits (fa3d.data.splits) and real data's own faults (fa3d.data.readers)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fa3d.data.readers import (DatasetFormatError, PtsFolder, W300LP, face_fault, open_dataset, read_image,
                               read_skip_list)
from fa3d.data.splits import held_out, synthetic_test, synthetic_valid, test_dataset as scored_faces
from fa3d.data.writers import write_300wlp_mat, write_image, write_landmarks_csv, write_pts


def _face(n=68, size=64, seed=0):
    return np.random.default_rng(seed).uniform(8, size - 8, (n, 2)).astype(np.float32)


def _pts_folder(root, n):
    for i in range(n):
        write_image(root / f"f{i:02d}.png", torch.zeros(3, 64, 64, dtype=torch.uint8))
        write_pts(root / f"f{i:02d}.pts", _face(seed=i))
    return root


@pytest.mark.parametrize("n,num_valid", [(100, 10), (12, 10), (4, 10)])
def test_held_out_splits_are_disjoint_and_bounded(n, num_valid):
    train, valid, test = held_out(n, seed=3, num_valid=num_valid)
    assert sorted(train + valid + test) == list(range(n))
    assert len(valid) == len(test) == min(num_valid, n // 5)
    assert held_out(n, 3, num_valid) == (train, valid, test)


def test_synthetic_test_faces_are_neither_training_nor_validation_faces():
    valid, test = synthetic_valid(3, 64, "68", seed=0), synthetic_test(3, 64, "68", seed=0)
    train = open_dataset("synthetic", size=3, image_size=64, scheme="68", seed=0)  # a run's training faces
    for a, b in ((valid, test), (train, test)):
        assert not any(torch.equal(a[i]["landmarks"], b[j]["landmarks"]) for i in range(3) for j in range(3))


def test_evaluate_scores_only_the_held_out_faces_of_the_training_folder(tmp_path):
    folder = _pts_folder(tmp_path / "mine", 20)
    ckpt = {"config": {"data": f"folder:{folder}", "seed": 0, "num_valid": 3}, "scheme": "68",
            "preset": {"image_size": 64}}
    scored = scored_faces(f"folder:{folder}/", ckpt)  # the same folder, spelled differently
    assert len(scored) == 3 and sorted(scored.indices) == held_out(20, 0, 3)[2]
    other = _pts_folder(tmp_path / "other", 2)
    assert len(scored_faces(f"folder:{other}", ckpt)) == 2  # another folder: every face
    small = {**ckpt, "config": {**ckpt["config"], "data": f"folder:{other}"}}
    with pytest.raises(ValueError, match="too few to hold out"):
        scored_faces(f"folder:{other}", small)


def test_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    grey = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "g16.png")
    img = read_image(tmp_path / "g16.png")
    assert img.dtype == torch.uint8 and img.shape == (3, 64, 64)
    np.testing.assert_array_equal(img[0].numpy(), np.rint(grey / 257.0).astype(np.uint8))
    assert 100 < img.float().mean() < 155  # PIL's own convert would make most of it 255


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    Image.new("CMYK", (16, 12), (0, 255, 255, 0)).save(tmp_path / "c.jpg")  # pure red in CMYK
    img = read_image(tmp_path / "c.jpg")
    assert img.shape == (3, 12, 16) and img[0].float().mean() > 200 and img[1:].float().mean() < 60


def test_face_faults_are_named(tmp_path):
    assert face_fault(_face(), 64, 64) is None
    assert "inside" in face_fault(_face() + 100, 64, 64)
    assert "too small" in face_fault(np.full((68, 2), 30.0) + np.random.default_rng(0).uniform(0, 3, (68, 2)), 64, 64)
    folder = tmp_path / "bad"
    write_image(folder / "a.png", torch.zeros(3, 64, 64, dtype=torch.uint8))
    write_pts(folder / "a.pts", _face() + 200)
    with pytest.raises(DatasetFormatError, match=r"a\.pts.*inside the 64x64 image"):
        PtsFolder(folder)[0]


def test_prepared_300wlp_skips_the_listed_faces_and_says_how_many(tmp_path):
    root = tmp_path / "300W_LP"
    for i in range(3):
        write_image(root / "AFW" / f"a{i}.jpg", torch.zeros(3, 64, 64, dtype=torch.uint8))
        write_300wlp_mat(root / "AFW" / f"a{i}.mat", _face(seed=i), (10.0, 0.0, 0.0))
        if i != 1:
            write_landmarks_csv(root / "landmarks_3d" / "AFW" / f"a{i}.csv",
                                np.concatenate([_face(seed=i), np.zeros((68, 1), np.float32)], axis=1))
    (root / "landmarks_3d" / "skipped.tsv").write_text("AFW/a1\tthe 3DMM fit disagrees with pt2d\n")
    assert read_skip_list(root / "landmarks_3d" / "skipped.tsv") == [("AFW/a1", "the 3DMM fit disagrees with pt2d")]
    with pytest.warns(UserWarning, match="1 faces skipped"):
        ds = W300LP(root)
    assert ds.depth == "prepared" and [s[0] for s in ds.samples] == ["AFW/a0", "AFW/a2"]
    (root / "landmarks_3d" / "skipped.tsv").write_text("")
    with pytest.raises(DatasetFormatError, match="1 of 3 images have no prepared"):
        W300LP(root)


def test_exif_orientation_is_ignored_with_a_warning_for_datasets_and_applied_for_predict(tmp_path):
    img = Image.new("RGB", (20, 10), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    img.save(tmp_path / "phone.jpg", exif=exif)
    with pytest.warns(UserWarning, match="EXIF orientation 6 ignored"):
        stored = read_image(tmp_path / "phone.jpg")
    assert stored.shape == (3, 10, 20)
    assert read_image(tmp_path / "phone.jpg", exif_transpose=True).shape == (3, 20, 10)


def _non_utf8_pts(folder):
    write_image(folder / "a.png", torch.zeros(3, 64, 64, dtype=torch.uint8))
    (folder / "a.pts").write_bytes(b"version: 1\nn_points: 68\n{\n\xff\xfe 1 2\n}\n")
    return lambda: PtsFolder(folder)[0], folder / "a.pts", "not a UTF-8 text file"


def _two_images_one_id(folder):
    for suffix in (".png", ".jpg"):
        write_image(folder / f"a{suffix}", torch.zeros(3, 64, 64, dtype=torch.uint8))
    write_pts(folder / "a.pts", _face())
    return lambda: PtsFolder(folder), folder / "a", "two images share the id 'a'"


def _float_image(folder):
    folder.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.float32)).save(folder / "f.tif")
    return lambda: read_image(folder / "f.tif"), folder / "f.tif", "floating-point images are not supported"


def _sixteen_bit_out_of_range(folder):
    folder.mkdir(parents=True)
    Image.fromarray(np.full((8, 8), 70000, np.int32)).save(folder / "i.tif")   # mode "I": 32-bit integers
    return lambda: read_image(folder / "i.tif"), folder / "i.tif", "values outside 0..65535"


def _pose_para_of_the_wrong_size(folder):
    from fa3d.data.readers import AFLW2000_3D
    from fa3d.data.writers import write_aflw2000_3d_mat
    write_image(folder / "image00001.jpg", torch.zeros(3, 64, 64, dtype=torch.uint8))
    lm = np.concatenate([_face(), np.zeros((68, 1), np.float32)], 1)
    write_aflw2000_3d_mat(folder / "image00001.mat", lm, extra={"Pose_Para": np.zeros((1, 6))})
    return lambda: AFLW2000_3D(folder)[0], folder / "image00001.mat", "'Pose_Para' has 6 values, expected 7"


def _unreadable_image_header(folder):
    from fa3d.data.readers import image_size
    folder.mkdir(parents=True)
    (folder / "x.jpg").write_bytes(b"this is not a JPEG header at all")
    return lambda: image_size(folder / "x.jpg"), folder / "x.jpg", "cannot read the image header"


@pytest.mark.parametrize("make", [_non_utf8_pts, _two_images_one_id, _float_image, _sixteen_bit_out_of_range,
                                  _pose_para_of_the_wrong_size, _unreadable_image_header],
                         ids=lambda f: f.__name__.strip("_"))
def test_reader_faults_name_the_file_and_the_problem(tmp_path, make):
    read, path, problem = make(tmp_path / "data")
    before = sorted((p.name, p.read_bytes()) for p in (tmp_path / "data").iterdir())
    with pytest.raises(DatasetFormatError) as e:
        read()
    assert problem in str(e.value) and str(path) in str(e.value), str(e.value)
    assert sorted((p.name, p.read_bytes()) for p in (tmp_path / "data").iterdir()) == before   # nothing touched
