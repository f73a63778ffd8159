"""Head pose in ONE convention for every dataset, and the conversion from 3DDFA's ``Pose_Para``.

fa3d's convention (the synthetic faces', used by every reader's ``pose`` field):

* Frame: x right, y down (image axes), z toward the camera, in the head as in the image.
* ``pose = (yaw, pitch, roll)`` in degrees, with head-to-camera rotation
  ``R = Rz(roll) @ Rx(pitch) @ Ry(yaw)``:

  - **yaw > 0 turns the nose toward the image's right** (about y),
  - **pitch > 0 lifts the nose** (toward the top of the image, about x),
  - **roll > 0 turns the face clockwise in the image** (about the view axis).

  Because roll is the outermost rotation, rotating an image by an angle adds that angle to
  the roll exactly, and mirroring it maps (yaw, pitch, roll) to (-yaw, pitch, -roll).

3DDFA (AFLW2000-3D and 300W-LP ``.mat`` files) stores ``Pose_Para`` = pitch, yaw, roll
(radians), tx, ty, tz, scale for ``p = s R v + t`` with ``R = Rx(pitch) Ry(yaw) Rz(roll)``
in a frame with y **up** (see :func:`rotation_3ddfa`). :func:`pose_from_3ddfa` flips y,
which turns that rotation into fa3d's frame, and decomposes it in fa3d's order. The result
is not a mere sign change. One angle at a time, yaw changes sign (measured on real AFLW2000-3D
files, where the stored yaw is positive when the nose points to the image's left) and pitch and
roll keep theirs; together, the other order of the rotations moves the angles, by many degrees
at large poses: AFLW2000-3D's image00251 stores (pitch, yaw, roll) = (7.0, -54.7, -14.6) degrees,
which is fa3d's (yaw, pitch, roll) = (54.8, -4.9, -8.4), and the rotation that maps the BFM's
frontal mean onto its landmarks gives (55.1, -5.6, -8.2) (``benchmarks/real_conventions.py``).
"""
from __future__ import annotations

import numpy as np


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """fa3d's head-to-camera rotation (3, 3) ``Rz(roll) @ Rx(pitch) @ Ry(yaw)``; angles in degrees."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def pose_from_rotation(R: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a rotation in fa3d's order; inverse of :func:`rotation_matrix`.

    Pitch is in [-90, 90]; yaw and roll in (-180, 180]. With R = Rz Rx Ry, the last row
    of R is (-cos p sin y, sin p, cos p cos y) and its second column is (-sin r cos p, cos r cos p, sin p).
    """
    R = np.asarray(R, np.float64)
    pitch = np.arcsin(np.clip(R[2, 1], -1.0, 1.0))
    yaw = np.arctan2(-R[2, 0], R[2, 2])
    roll = np.arctan2(-R[0, 1], R[1, 1])
    return tuple(float(a) for a in np.degrees([yaw, pitch, roll]))


def rotation_3ddfa(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """3DDFA's rotation (3, 3) ``Rx(pitch) @ Ry(yaw) @ Rz(roll)`` (radians), in its own sign convention:
    Rx = [[1,0,0],[0,c,s],[0,-s,c]], Ry = [[c,0,-s],[0,1,0],[s,0,c]], Rz = [[c,s,0],[-s,c,0],[0,0,1]]."""
    cp, sp, cy, sy, cr, sr = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw), np.cos(roll), np.sin(roll)
    rx = np.array([[1, 0, 0], [0, cp, sp], [0, -sp, cp]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rz = np.array([[cr, sr, 0], [-sr, cr, 0], [0, 0, 1]])
    return rx @ ry @ rz


#: y up (3DDFA's model frame) <-> y down (image and fa3d frame); x and z are shared.
FLIP_Y = np.diag([1.0, -1.0, 1.0])


def pose_from_3ddfa(pose_para) -> tuple[float, float, float]:
    """fa3d (yaw, pitch, roll) in degrees from a 3DDFA ``Pose_Para`` (7 values, the first three
    pitch, yaw, roll in radians). The rotation seen in fa3d's y-down frame is FLIP_Y R FLIP_Y."""
    p = np.asarray(pose_para, np.float64).reshape(-1)
    return pose_from_rotation(FLIP_Y @ rotation_3ddfa(p[0], p[1], p[2]) @ FLIP_Y)


def pose_to_3ddfa(yaw: float, pitch: float, roll: float) -> tuple[float, float, float]:
    """3DDFA's (pitch, yaw, roll) in radians for a fa3d pose in degrees; inverse of :func:`pose_from_3ddfa`.

    With R = Rx(a) Ry(b) Rz(c) in 3DDFA's signs, the first row of R is (cos b cos c, cos b sin c,
    -sin b) and its last column is (-sin b, sin a cos b, cos a cos b).
    """
    R = FLIP_Y @ rotation_matrix(yaw, pitch, roll) @ FLIP_Y
    b = np.arcsin(np.clip(-R[0, 2], -1.0, 1.0))
    a = np.arctan2(R[1, 2], R[2, 2])
    c = np.arctan2(R[0, 1], R[0, 0])
    return float(a), float(b), float(c)


def face_normal(landmarks) -> np.ndarray:
    """Unit vector (3,) out of the face, from 68-point 3D landmarks in fa3d's frame (x right, y down, z
    toward the camera): the cross product of the eye line (outer corners 36 -> 45) and the line from
    the mouth corners' midpoint up to the eyes' midpoint. For a frontal face it is (0, 0, 1); the
    pose rotates it to R @ (0, 0, 1) = (cos r sin y + ..., ..., cos p cos y), so its x has the sign
    of the yaw and its -y the sign of the pitch (at small roll). A check of conventions that uses
    the landmarks' geometry only, never a stored angle."""
    lm = np.asarray(landmarks, np.float64)
    across = lm[45] - lm[36]
    up = (lm[36] + lm[45]) / 2 - (lm[48] + lm[54]) / 2
    n = np.cross(up, across)  # frontal: up = (0,-1,0), across = (1,0,0) -> (0,0,1)
    return n / np.linalg.norm(n)
