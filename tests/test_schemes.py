import numpy as np
import pytest
import torch

from fa3d.data import INDICES_68_TO_66, convert_68_to_66, flip_landmarks, get_scheme


@pytest.mark.parametrize("name,n", [("68", 68), ("3dfaw66", 66)])
def test_scheme_sizes_and_permutation_is_an_involution(name, n):
    s = get_scheme(name)
    assert s.num_points == n == len(s.names) == len(s.flip_permutation)
    perm = np.array(s.flip_permutation)
    assert sorted(perm) == list(range(n))
    assert (perm[perm] == np.arange(n)).all()
    assert sorted(i for idx in s.parts.values() for i in idx) == list(range(n))


def test_hand_checked_mirror_pairs_68():
    perm = get_scheme("68").flip_permutation
    assert perm[0] == 16 and perm[8] == 8          # jaw ends swap, chin stays
    assert perm[36] == 45 and perm[39] == 42       # eye corners
    assert perm[48] == 54 and perm[51] == 51       # mouth corners, upper lip centre
    assert perm[60] == 64 and perm[66] == 66       # inner mouth
    assert perm[30] == 30                          # nose tip


def test_66_is_68_without_inner_mouth_corners():
    assert len(INDICES_68_TO_66) == 66 and 60 not in INDICES_68_TO_66 and 64 not in INDICES_68_TO_66
    s66, s68 = get_scheme("3dfaw66"), get_scheme("68")
    lm68 = np.random.default_rng(0).normal(size=(2, 68, 3))
    lm66 = convert_68_to_66(lm68)
    assert lm66.shape == (2, 66, 3)
    np.testing.assert_array_equal(lm66[:, 60], lm68[:, 61])
    np.testing.assert_array_equal(lm66[:, 63], lm68[:, 65])
    # flipping commutes with the conversion
    np.testing.assert_allclose(convert_68_to_66(flip_landmarks(lm68, 100, s68)),
                               flip_landmarks(lm66, 100, s66))
    assert s66.names[36] == "right_eye_outer_corner" and s66.names[45] == "left_eye_outer_corner"
    assert s66.outer_eye_corners == (36, 45)


def test_convert_rejects_wrong_count():
    with pytest.raises(ValueError, match="68"):
        convert_68_to_66(np.zeros((66, 3)))


def test_flip_twice_is_identity_and_mirrors_x_only():
    lm = torch.randn(3, 66, 3) * 20 + 50
    once = flip_landmarks(lm, 128, "3dfaw66")
    torch.testing.assert_close(flip_landmarks(once, 128, "3dfaw66"), lm)
    # the subject's right outer eye corner (36) after the flip is the mirror of the left one (45)
    torch.testing.assert_close(once[:, 36, 0], 127 - lm[:, 45, 0])
    torch.testing.assert_close(once[:, 36, 1:], lm[:, 45, 1:])


def test_polylines_close_eyes_and_lips():
    lines = dict(get_scheme("68").polylines())
    assert lines["right_eye"][0] == lines["right_eye"][-1] == 36
    assert lines["jaw"][0] == 0 and lines["jaw"][-1] == 16
    assert get_scheme("68").group_of(45) == "eyes"


def test_unknown_scheme():
    with pytest.raises(ValueError, match="unknown landmark scheme"):
        get_scheme("98")
