"""3D landmarks from 3DMM parameters: how 300W-LP gets depth (the route 3D-FAN took).

300W-LP's and AFLW2000-3D's ``.mat`` files carry the 3D Morphable Model fit of every face:
``Shape_Para`` (199, 1), ``Exp_Para`` (29, 1) and ``Pose_Para`` (1, 7) = pitch, yaw, roll
(radians), tx, ty, tz, scale. With the Basel Face Model's bases restricted to the 68
landmarks, the 3D landmarks follow (:func:`landmarks_from_3dmm`)::

    v = u + W_shp a[:40] + W_exp b[:10]        204 values, read as 68 rows of (x, y, z)
    p = s v R^T + t                            R = Rx(pitch) Ry(yaw) Rz(roll), 3DDFA's signs
    image x = p_x,  image y = H + 1 - p_y      3DDFA's pixels: MATLAB, 1-based, y up in the model

fa3d's pixels are 0-based (the top-left pixel's centre is (0, 0)), so 1 is subtracted from
x and y, exactly as for every other MATLAB-made annotation fa3d reads (AFLW2000-3D's
``pt3d_68``, 300W-LP's ``pt2d``, iBUG ``.pts``). z is ``p_z`` (larger = closer to the
camera, as in fa3d); items centre it.

The bases are 3DDFA's (``u_base.txt`` 204 values, ``w_shp_base.txt`` 204 x 40,
``w_exp_base.txt`` 204 x 10), truncated to 40 shape and 10 expression components, which is
why they reproduce AFLW2000-3D's stored ``pt3d_68`` to about 1 % of the interocular distance
rather than exactly. They are derived from the BFM, whose terms are non-commercial research
only, so **they never ship inside fa3d**: the user brings them, or
``data_scripts/fetch_bfm68.py`` downloads them on the user's machine and checks
:data:`BASES_SHA256`.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .pose import rotation_3ddfa

#: SHA-256 of the three files as published in the 3DDFA repository (cleardusk/3DDFA, c++/weights/).
BASES_SHA256 = {
    "u_base.txt": "1ea7c3116070aeee720605a4a44ca9db582ac550095c321c3cf65ec925fe43cf",
    "w_shp_base.txt": "bec9a2189eb77c61ff940c801dcd9e5cd7f1973b6d91949494d9cd7ac121b7f6",
    "w_exp_base.txt": "4dc637c92c34bfd69faab74cafce23913f2b6181ff00c57a7ab69c1204d20b18",
}
BASES_URL = "https://raw.githubusercontent.com/cleardusk/3DDFA/master/c%2B%2B/weights/"
_SHAPES = {"u_base.txt": (204,), "w_shp_base.txt": (204, 40), "w_exp_base.txt": (204, 10)}


class BasesError(ValueError):
    """The 3DMM bases folder is missing a file, or a file has the wrong shape or checksum."""


@dataclass(frozen=True)
class MorphableBases:
    """The BFM's 68-landmark model: ``mean`` (204,), ``shape`` (204, 40), ``expression`` (204, 10),
    rows ordered x0, y0, z0, x1, ... in the model's units (3DDFA's scale turns them into pixels)."""
    mean: np.ndarray
    shape: np.ndarray
    expression: np.ndarray
    folder: str = ""


def load_bases(folder, verify: bool = True) -> MorphableBases:
    """Read ``u_base.txt``, ``w_shp_base.txt`` and ``w_exp_base.txt`` from ``folder``.

    ``verify``: the files must have 3DDFA's published SHA-256 (:data:`BASES_SHA256`); pass False
    for bases of your own (same shapes), e.g. the tests' stand-ins. Raises BasesError naming the file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise BasesError(f"3DMM bases folder not found: {folder} (fetch it with data_scripts/fetch_bfm68.py)")
    arrays = {}
    for name, shape in _SHAPES.items():
        path = folder / name
        if not path.is_file():
            raise BasesError(f"{path}: missing (the bases folder needs {', '.join(_SHAPES)})")
        data = path.read_bytes()
        if verify and hashlib.sha256(data).hexdigest() != BASES_SHA256[name]:
            raise BasesError(f"{path}: SHA-256 {hashlib.sha256(data).hexdigest()} is not 3DDFA's published "
                             f"{BASES_SHA256[name]} (a damaged or different file; fetch it again)")
        try:
            a = np.loadtxt(path, dtype=np.float64).reshape(shape)
        except ValueError as e:
            raise BasesError(f"{path}: expected {shape} numbers ({e})") from None
        if not np.isfinite(a).all():
            raise BasesError(f"{path}: holds NaN or inf")
        arrays[name] = a
    return MorphableBases(arrays["u_base.txt"], arrays["w_shp_base.txt"], arrays["w_exp_base.txt"], str(folder))


def landmarks_from_3dmm(shape_para, exp_para, pose_para, bases, image_height: int) -> np.ndarray:
    """The 68 3D landmarks (68, 3) float64 of a 3DMM fit, in fa3d's convention.

    shape_para: ``Shape_Para`` as stored ((199, 1) or at least 40 values; the first 40 are used);
    exp_para: ``Exp_Para`` ((29, 1), the first 10 used); pose_para: ``Pose_Para`` (7 values);
    bases: a :class:`MorphableBases` or the folder holding the three files (checked, see
    :func:`load_bases`); image_height: H of the image in pixels (3DDFA's y axis points up).
    Returns pixels, x right, y down, 0-based, z toward the camera (not centred).
    """
    if not isinstance(bases, MorphableBases):
        bases = load_bases(bases)
    a = np.asarray(shape_para, np.float64).reshape(-1)
    b = np.asarray(exp_para, np.float64).reshape(-1)
    pose = np.asarray(pose_para, np.float64).reshape(-1)
    k_shp, k_exp = bases.shape.shape[1], bases.expression.shape[1]
    if a.size < k_shp or b.size < k_exp or pose.size != 7:
        raise ValueError(f"need >= {k_shp} shape, >= {k_exp} expression and 7 pose parameters, "
                         f"got {a.size}, {b.size}, {pose.size}")
    v = (bases.mean + bases.shape @ a[:k_shp] + bases.expression @ b[:k_exp]).reshape(68, 3)
    p = pose[6] * v @ rotation_3ddfa(*pose[:3]).T + pose[3:6]
    # MATLAB 1-based with y up -> 0-based with y down: x - 1, (H + 1 - y) - 1.
    return np.stack([p[:, 0] - 1.0, image_height - p[:, 1], p[:, 2]], axis=1)
