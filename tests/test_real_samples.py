"""Conventions checked on REAL files: ../shared/real-samples (AFLW2000-3D and 300W-LP .mat files, the BFM
68-landmark bases, photographs with .pts). Skipped where that folder is absent (a user's fresh clone);
CI has it, and fails if it is not there. The folder is read-only: anything that writes works on a copy in tmp_path."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import scipy.io
import torch

from fa3d.data.morphable import load_bases
from fa3d.data.pose import FLIP_Y, face_normal, pose_from_rotation
from fa3d.data.readers import AFLW2000_3D, W300LP, PtsFolder, image_size, landmarks_from_mat
from fa3d.metrics import similarity_align

from needs import REAL_SAMPLES as SAMPLES, needs_path
AFLW = SAMPLES / "aflw2000-3d"
BASES = SAMPLES / "bfm68"


@pytest.fixture(autouse=True, scope="module")   # before the module's other fixtures, which read it
def _real_samples_here():
    needs_path(SAMPLES, "../shared/real-samples")


@pytest.fixture(scope="module")
def bases():
    return load_bases(BASES)  # verify=True: the shared copies must carry 3DDFA's published SHA-256


def test_landmarks_from_3dmm_reproduce_the_stored_pt3d_68(bases):
    """Each AFLW2000-3D file's own fit, through our bases, gives back its pt3d_68 (x, y, z; z centred)."""
    ds = AFLW2000_3D(AFLW)
    errors = []
    for i, (sid, image_path, mat_path) in enumerate(ds.samples):
        stored = ds.landmarks(i).double().numpy()          # pt3d_68 in fa3d's pixels, z centred
        ours = landmarks_from_mat(mat_path, bases, image_size(image_path)[1])
        ours[:, 2] -= ours[:, 2].mean()
        iod = np.linalg.norm(stored[36] - stored[45])
        errors.append(np.linalg.norm(ours - stored, axis=1).mean() / iod)
    errors = np.array(errors)
    assert len(errors) >= 3
    assert errors.mean() < 0.015 and errors.max() < 0.025, errors


def test_real_300wlp_sample_reads_with_finite_z_and_agrees_with_its_pt2d(bases):
    ds = W300LP(SAMPLES / "300w-lp", bases=bases)
    assert ds.depth == "bases" and len(ds) == 1
    item = ds[0]
    assert torch.isfinite(item["landmarks"]).all() and item["landmarks"][:, 2].std() > 10
    flat = W300LP(SAMPLES / "300w-lp")[0]                 # the stored pt2d, 2D
    assert flat["landmarks"][:, 2].isnan().all()
    inner = (item["landmarks"][17:, :2] - flat["landmarks"][17:, :2]).norm(dim=1).mean()
    box = flat["landmarks"][:, :2].amax(0) - flat["landmarks"][:, :2].amin(0)
    assert inner / box.prod().sqrt() < 0.10  # the same face: the inner points agree (the jaw differs by design)


def test_prepared_300wlp_depth_is_read_back_without_bases(tmp_path, bases):
    from fa3d.data.writers import prepare_300wlp_depth

    root = tmp_path / "300W_LP"
    shutil.copytree(SAMPLES / "300w-lp", root / "IBUG")
    written, skipped = prepare_300wlp_depth(root, bases, progress=False)
    assert (written, skipped) == (1, [])
    prepared = W300LP(root)
    assert prepared.depth == "prepared"
    np.testing.assert_allclose(prepared[0]["landmarks"], W300LP(root, bases=bases)[0]["landmarks"], atol=1e-4)


def _pose_from_geometry(landmarks: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) of the rotation that best maps a frontal reference shape onto the landmarks."""
    _, _, R, _ = similarity_align(torch.as_tensor(reference), torch.as_tensor(landmarks, dtype=torch.float64))
    return pose_from_rotation(R.numpy())


def test_aflw2000_pose_is_converted_to_fa3d_convention_as_the_landmarks_show(bases):
    """Not from the stored numbers: the rotation of the BFM's frontal mean onto each file's pt3d_68, in
    fa3d's frame, must give the pose the reader reports (all three angles), and the face's normal
    points to the image's right exactly when the reported yaw is positive, as on synthetic faces."""
    reference = bases.mean.reshape(68, 3) @ FLIP_Y       # frontal, y down
    ds = AFLW2000_3D(AFLW)
    yaws = []
    for i in range(len(ds)):
        item = ds[i]
        lm = item["landmarks"].double().numpy()
        reported = item["pose"].double().numpy()
        assert np.allclose(_pose_from_geometry(lm, reference), reported, atol=3.0), (item["id"], reported)
        if abs(reported[0]) > 10:
            assert np.sign(face_normal(lm)[0]) == np.sign(reported[0]), item["id"]
        yaws.append(reported[0])
    assert min(yaws) < -10 and max(yaws) > 10  # the samples turn both ways, so the sign test means something


def test_photos_with_pts_read_in_fa3d_pixels():
    ds = PtsFolder(SAMPLES / "photos-68")
    assert len(ds) == 4 and ds.scheme.name == "68"
    for i in range(len(ds)):
        item = ds[i]
        h, w = item["image"].shape[1:]
        lm = item["landmarks"]
        assert lm[:, 2].isnan().all() and (lm[:, 0] > -1).all() and (lm[:, 0] < w).all() and (lm[:, 1] < h).all()


def test_mat_files_are_as_the_issue_measured():
    mat = scipy.io.loadmat(str(next(AFLW.glob("*.mat"))))
    assert mat["Shape_Para"].shape == (199, 1) and mat["Exp_Para"].shape == (29, 1) and mat["Pose_Para"].shape == (1, 7)
