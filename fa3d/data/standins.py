"""Stand-ins for 300W-LP, AFLW2000-3D and the 3DMM bases, in their exact file formats, made from
synthetic faces: the public reproduction recipe runs end to end on them with no download.

The trick that makes them more than plumbing: the stand-in bases are built from the very faces
written, so each ``.mat``'s 3DMM fit reproduces its face's landmarks exactly. Every convention
on the way (3DDFA's rotation and signs, its y-up model frame, MATLAB's 1-based pixels, the
truncation to 40 shape and 10 expression components) must be right for the reader to give back
the synthetic face's own landmarks and pose:

* head shape of face i in 3DDFA's model frame: ``v_i = FLIP_Y R_i^T (l_i - c_i) / s``
  (l_i its 68 pixel landmarks, c_i their mean, R_i its fa3d rotation, s = 0.001);
* bases: ``u`` = the mean of the v_i, ``W_shp`` = the first 40 principal directions of
  v_i - u (at most 40 faces in all, so this is exact), ``W_exp`` random (its 10 coefficients are
  0; the stored 29 hold noise beyond them, as do the 199 shape ones beyond 40: a reader that
  does not truncate fails);
* ``Pose_Para`` = (3DDFA's pitch, yaw, roll of R_i, t) with t placing the face back in the image.

The bases are fakes of the right shapes, not the BFM's, so their checksums differ: pass
``--no-verify-bases`` to the data script (or ``verify=False`` to ``load_bases``).
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .pose import FLIP_Y, pose_to_3ddfa, rotation_matrix
from .synthetic import SyntheticFaces
from .writers import write_300wlp_mat, write_aflw2000_3d_mat, write_image

MODEL_SCALE = 1e-3  # 3DDFA's scale is about 0.001 pixels per model unit on 450-px images
MAX_FACES = 41      # 40 principal directions represent 41 faces exactly


def _head_shapes(items) -> np.ndarray:
    """(F, 68, 3) head shapes in 3DDFA's model frame (y up), pose removed, in model units."""
    shapes = []
    for it in items:
        lm = it["landmarks"].double().numpy()
        R = rotation_matrix(*it["pose"].double().tolist())
        shapes.append((lm - lm.mean(0)) @ R @ FLIP_Y / MODEL_SCALE)  # rows: FLIP_Y R^T (l - c)
    return np.stack(shapes)


def write_standin_bases(folder, shapes: np.ndarray, seed: int = 0) -> tuple[np.ndarray, Path]:
    """Write u_base.txt, w_shp_base.txt (204 x 40) and w_exp_base.txt (204 x 10) that represent
    ``shapes`` (F, 68, 3) exactly; returns the (F, 40) shape coefficients and the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    flat = shapes.reshape(len(shapes), 204)
    mean = flat.mean(0)
    _, _, vt = np.linalg.svd(flat - mean, full_matrices=False)
    basis = np.zeros((204, 40))
    k = min(40, vt.shape[0])
    basis[:, :k] = vt[:k].T
    coefficients = (flat - mean) @ basis
    rng = np.random.default_rng(seed)
    np.savetxt(folder / "u_base.txt", mean, fmt="%.10f")
    np.savetxt(folder / "w_shp_base.txt", basis, fmt="%.10f")
    np.savetxt(folder / "w_exp_base.txt", rng.normal(0, 1e-3, (204, 10)), fmt="%.10f")
    return coefficients, folder


def _fit(item, coefficients: np.ndarray, rng) -> dict:
    """The 3DMM variables of one face's ``.mat``: Shape_Para, Exp_Para, Pose_Para."""
    lm = item["landmarks"].double().numpy()
    height = item["image"].shape[1]
    c = lm.mean(0)
    shape = np.concatenate([coefficients, rng.normal(0, 1e3, 199 - len(coefficients))])
    expression = np.concatenate([np.zeros(10), rng.normal(0, 1.0, 19)])
    # 1-based x = x + 1; 3DDFA's y = H + 1 - (y + 1) = H - y, so t_y = H - c_y (see the module docstring).
    pose = [*pose_to_3ddfa(*item["pose"].double().tolist()), c[0] + 1.0, height - c[1], c[2], MODEL_SCALE]
    return {"Shape_Para": shape[:, None], "Exp_Para": expression[:, None], "Pose_Para": np.array([pose])}


def _zip_folder(folder: Path, zip_path: Path) -> Path:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder.parent).as_posix())
    return zip_path


def write_standins(out_dir, *, num_300wlp: int = 24, num_aflw2000: int = 8, image_size: int = 128,
                   seed: int = 0) -> dict[str, Path]:
    """Write ``out_dir/300W-LP.zip`` (``300W_LP/AFW`` and ``300W_LP/HELEN``, a ``.jpg`` and a ``.mat`` per
    face with ``pt2d``, ``Pose_Para``, ``Shape_Para``, ``Exp_Para``), ``out_dir/AFLW2000-3D.zip``
    (``AFLW2000/``, with ``pt3d_68`` too) and the stand-in bases in ``out_dir/bases``. Returns their paths
    (and "faces": the staging folder of the unzipped files). Faces: synthetic, 68 points."""
    out = Path(out_dir)
    total = num_300wlp + num_aflw2000
    if not 0 < total <= MAX_FACES:
        raise ValueError(f"the stand-in bases represent at most {MAX_FACES} faces exactly, asked for {total}")
    faces = SyntheticFaces(total, image_size=image_size, scheme="68", seed=seed)
    items = [faces[i] for i in range(total)]
    coefficients, bases = write_standin_bases(out / "bases", _head_shapes(items), seed)
    rng = np.random.default_rng(seed)
    staging = out / "faces"
    for i, it in enumerate(items):
        fit = _fit(it, coefficients[i], rng)
        if i < num_300wlp:
            subset = "AFW" if i < num_300wlp // 2 else "HELEN"
            stem = staging / "300W_LP" / subset / f"{subset}_{i:04d}_0"
            write_300wlp_mat(stem.with_suffix(".mat"), it["landmarks"][:, :2], extra=fit)
        else:
            stem = staging / "AFLW2000" / f"image{i:05d}"
            write_aflw2000_3d_mat(stem.with_suffix(".mat"), it["landmarks"], extra=fit)
        write_image(stem.with_suffix(".jpg"), it["image"])
    return {"300W-LP.zip": _zip_folder(staging / "300W_LP", out / "300W-LP.zip"),
            "AFLW2000-3D.zip": _zip_folder(staging / "AFLW2000", out / "AFLW2000-3D.zip"),
            "bases": bases, "faces": staging}


#: The official 300-W download's folders (``data_scripts/prepare_ibug_300w.py``): training folders, then the test ones.
W300_FOLDERS = ("afw", "helen/trainset", "lfpw/trainset", "helen/testset", "lfpw/testset", "ibug")


def write_300w_standins(out_dir, num_faces: int = 60, *, image_size: int = 128, seed: int = 0,
                        folders=W300_FOLDERS) -> Path:
    """A 300-W stand-in in the official layout: synthetic faces (68 points, 2D) as ``.jpg`` + iBUG ``.pts``
    pairs spread over ``folders``, named as 300-W names them: every third photo holds two faces
    (``<photo>_1``, ``<photo>_2``: one photo, two faces); LFPW's ``image_NNNN`` one face each, the same
    names in its trainset and testset (different photos). Returns ``out_dir``. No 300-W file is used."""
    from .writers import write_pts
    out = Path(out_dir)
    faces = SyntheticFaces(num_faces, image_size=image_size, scheme="68", seed=seed)
    where = [folders[i * len(folders) // num_faces] for i in range(num_faces)]
    photo, second = 0, False
    for i, folder in enumerate(where):
        if folder.startswith("lfpw"):
            name = f"image_{i:04d}"
        else:
            name = f"{1000 + photo}_{2 if second else 1}"
            # the next face is this photo's second when the photo is every third one and the folder goes on
            second = not second and photo % 3 == 0 and i + 1 < num_faces and where[i + 1] == folder
            photo += not second
        item = faces[i]
        write_image(out / folder / f"{name}.jpg", item["image"])
        write_pts(out / folder / f"{name}.pts", item["landmarks"][:, :2])
    return out
