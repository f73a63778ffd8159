"""fa3d's one pose convention (fa3d.data.pose): the synthetic faces follow it, 3DDFA's converts exactly."""
from __future__ import annotations

import numpy as np
import pytest

from fa3d.data.pose import (FLIP_Y, face_normal, pose_from_3ddfa, pose_from_rotation, pose_to_3ddfa,
                            rotation_3ddfa, rotation_matrix)
from fa3d.data.synthetic import SyntheticFaces


@pytest.mark.parametrize("pose", [(0, 0, 0), (10, -20, 30), (80, 35, -25), (-60, 5, 12), (-89, -40, 29)])
def test_rotation_and_its_angles_round_trip(pose):
    assert pose_from_rotation(rotation_matrix(*pose)) == pytest.approx(pose, abs=1e-9)
    assert pose_from_3ddfa([*pose_to_3ddfa(*pose), 0, 0, 0, 1]) == pytest.approx(pose, abs=1e-9)


def test_one_3ddfa_angle_at_a_time_flips_only_the_yaw():
    assert pose_from_3ddfa([0, np.radians(20), 0, 0, 0, 0, 1]) == pytest.approx((-20, 0, 0), abs=1e-9)
    assert pose_from_3ddfa([np.radians(20), 0, 0, 0, 0, 0, 1]) == pytest.approx((0, 20, 0), abs=1e-9)
    assert pose_from_3ddfa([0, 0, np.radians(20), 0, 0, 0, 1]) == pytest.approx((0, 0, 20), abs=1e-9)
    R = rotation_3ddfa(0.3, -0.5, 0.2)
    assert np.allclose(R @ R.T, np.eye(3)) and np.isclose(np.linalg.det(R), 1)
    assert np.allclose(FLIP_Y @ R @ FLIP_Y, rotation_matrix(*pose_from_3ddfa([0.3, -0.5, 0.2, 0, 0, 0, 1])))


def test_synthetic_faces_turn_as_the_convention_says():
    """From the landmarks' geometry, never the stored numbers: the face normal points to the image's
    right for yaw > 0, and the eye line goes down to the right for roll > 0 on near-frontal faces."""
    ds = SyntheticFaces(40, image_size=128, scheme="68", seed=11)
    checked_yaw = checked_roll = 0
    for i in range(len(ds)):
        item = ds[i]
        lm = item["landmarks"].double().numpy()
        yaw, pitch, roll = item["pose"].tolist()
        if abs(yaw) > 10:
            assert np.sign(face_normal(lm)[0]) == np.sign(yaw), (i, yaw)
            checked_yaw += 1
        if abs(roll) > 5 and abs(yaw) < 30 and abs(pitch) < 20:
            d = lm[45, :2] - lm[36, :2]
            assert np.sign(d[1]) == np.sign(roll), (i, roll)
            checked_roll += 1
    assert checked_yaw >= 20 and checked_roll >= 2
