"""Writers of the real datasets' file formats (for ``fa3d synth`` and tests): atomic, never overwriting unless asked.

Each writer produces exactly the format that the matching reader in ``fa3d.data.readers``
parses (see its module docstring for the formats): 3DFAW ``<id>_lm.csv``, iBUG ``.pts``,
AFLW2000-3D and 300W-LP ``.mat`` files, JPEG/PNG images, and a whole dataset in the 3DFAW
folder layout (``export_3dfaw_layout``). Landmarks are written as float32 values, so that
reading them back gives the very same numbers.

Every file goes through ``fa3d.files.atomic_write``: a crash leaves no half-written file,
and an existing file is a FileExistsError naming it unless ``overwrite=True``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import scipy.io
import torch
from PIL import Image

from ..files import atomic_write
from .pose import pose_to_3ddfa
from .readers import IMAGE_SUFFIXES
from .schemes import convert_68_to_66


def _fmt(v: float) -> str:
    """Shortest text that parses back to exactly the same float."""
    return repr(float(v))


def _write_text(path, text: str, overwrite: bool) -> Path:
    return atomic_write(path, text, overwrite=overwrite)


def _write_mat(path, variables: dict, overwrite: bool) -> Path:
    return atomic_write(path, lambda f: scipy.io.savemat(f, variables), overwrite=overwrite)


def _as_array(lm, shape: tuple[int, int], what: str) -> np.ndarray:
    a = lm.detach().cpu().numpy() if isinstance(lm, torch.Tensor) else np.asarray(lm)
    if a.shape != shape:
        raise ValueError(f"{what}: expected landmarks of shape {shape}, got {a.shape}")
    a = a.astype(np.float32).astype(np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{what}: landmarks hold NaN or inf")
    return a


def write_3dfaw_landmarks(path, lm, *, overwrite: bool = False) -> Path:
    """Write (66, 3) landmarks as a 3DFAW ``<id>_lm.csv`` (66 rows ``x,y,z``)."""
    return write_landmarks_csv(path, _as_array(lm, (66, 3), str(path)), overwrite=overwrite)


def write_pts(path, lm, *, overwrite: bool = False) -> Path:
    """Write (N, 2) fa3d (0-based) landmarks as an iBUG ``.pts`` file (1-based, see ``read_pts``)."""
    a = np.asarray(lm.detach().cpu() if isinstance(lm, torch.Tensor) else lm)
    if a.ndim != 2 or a.shape[1] != 2:
        raise ValueError(f"{path}: expected landmarks of shape (N, 2), got {a.shape}")
    a = _as_array(a, a.shape, str(path)) + 1.0
    rows = "".join(f"{_fmt(x)} {_fmt(y)}\n" for x, y in a)
    return _write_text(path, f"version: 1\nn_points: {len(a)}\n{{\n{rows}}}\n", overwrite)


def _pose_para(pose_deg) -> np.ndarray:
    """fa3d (yaw, pitch, roll) degrees -> 3DDFA's Pose_Para (1, 7); translation 0 and scale 1."""
    if pose_deg is None:
        return np.array([[math.nan] * 6 + [1.0]])
    return np.array([[*pose_to_3ddfa(*(float(v) for v in pose_deg)), 0.0, 0.0, 0.0, 1.0]])


def _to_matlab(a: np.ndarray) -> np.ndarray:
    """fa3d's 0-based pixels -> MATLAB's 1-based ones (x and y plus 1), as the readers expect."""
    a = a.copy()
    a[:, :2] += 1.0
    return a


def write_aflw2000_3d_mat(path, lm, pose_deg=None, *, extra: dict | None = None, overwrite: bool = False) -> Path:
    """Write an AFLW2000-3D style ``.mat``: ``pt3d_68`` (3, 68) and ``Pose_Para`` (1, 7).

    ``lm``: (68, 3) fa3d pixels (0-based; stored 1-based), z larger = closer; ``pose_deg``: fa3d
    (yaw, pitch, roll) in degrees, stored in 3DDFA's convention (NaN if None). ``extra``: more
    variables as stored (e.g. a 3DMM fit: ``Shape_Para``, ``Exp_Para``; a ``Pose_Para`` there wins).
    """
    a = _to_matlab(_as_array(lm, (68, 3), str(path)))
    return _write_mat(path, {"pt3d_68": a.T, "Pose_Para": _pose_para(pose_deg), **(extra or {})}, overwrite)


def write_300wlp_mat(path, lm2d, pose_deg=None, *, extra: dict | None = None, overwrite: bool = False) -> Path:
    """Write a 300W-LP image ``.mat``: ``pt2d`` (2, 68) (fa3d pixels, stored 1-based) and, if a pose is
    given, ``Pose_Para`` (1, 7) in 3DDFA's convention; ``extra`` as for :func:`write_aflw2000_3d_mat`."""
    variables = {"pt2d": _to_matlab(_as_array(lm2d, (68, 2), str(path))).T}
    if pose_deg is not None:
        variables["Pose_Para"] = _pose_para(pose_deg)
    return _write_mat(path, {**variables, **(extra or {})}, overwrite)


def write_landmarks_csv(path, lm, *, overwrite: bool = False) -> Path:
    """Write (N, 3) landmarks as N rows ``x,y,z`` (read back by ``fa3d.data.readers.read_landmarks_csv``)."""
    a = np.asarray(lm.detach().cpu() if isinstance(lm, torch.Tensor) else lm)
    a = _as_array(a, (len(a), 3), str(path))
    return _write_text(path, "".join(",".join(map(_fmt, row)) + "\n" for row in a), overwrite)


def write_image(path, image: torch.Tensor, *, overwrite: bool = False, quality: int = 95) -> Path:
    """Write a uint8 (3, H, W) image as JPEG (``.jpg``/``.jpeg``) or PNG (``.png``)."""
    image = image.detach().cpu().contiguous()
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"{path}: expected a uint8 (3, H, W) image, got {image.dtype} {tuple(image.shape)}")
    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValueError(f"{path}: unsupported image suffix {suffix!r}; use one of {IMAGE_SUFFIXES}")
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    if suffix == ".png":
        return atomic_write(path, lambda f: pil.save(f, format="PNG"), overwrite=overwrite)
    # no chroma subsampling: landmark datasets want detail
    return atomic_write(path, lambda f: pil.save(f, format="JPEG", quality=quality, subsampling=0),
                        overwrite=overwrite)


def export_3dfaw_layout(dataset, out_dir, split: str = "train", *, overwrite: bool = False,
                        quality: int = 95) -> int:
    """Write every item of a fa3d dataset as ``out_dir/<split>_img/<id>.jpg`` + ``<split>_lm/<id>_lm.csv``.

    68-point items are reduced to 3DFAW's 66 points; items without z (2D data) are
    refused. A "/" in an id becomes "__". Returns the number of items written.
    """
    out_dir = Path(out_dir)
    seen = set()
    for i in range(len(dataset)):
        item = dataset[i]
        name = str(item["id"]).replace("/", "__").replace("\\", "__")
        if not name or name in seen:
            raise ValueError(f"item {i}: id {item['id']!r} is empty or not unique; cannot name its files")
        seen.add(name)
        lm = item["landmarks"]
        if lm.shape[0] == 68:
            lm = convert_68_to_66(lm)
        if lm.shape != (66, 3) or torch.isnan(lm[:, 2]).any():
            raise ValueError(f"item {item['id']!r}: 3DFAW needs 66 (or 68) points with x,y,z, "
                             f"got shape {tuple(lm.shape)}{' without z' if lm.shape[-1] == 3 else ''}")
        write_image(out_dir / f"{split}_img" / f"{name}.jpg", item["image"], overwrite=overwrite, quality=quality)
        write_3dfaw_landmarks(out_dir / f"{split}_lm" / f"{name}_lm.csv", lm, overwrite=overwrite)
    return len(seen)


#: Largest disagreement (fraction of sqrt(w h) of the ``pt2d`` box) between a 300W-LP face's stored
#: ``pt2d`` and its 3DMM fit projected, over the 51 inner points (17..67, whose definitions agree;
#: the jaw differs by design). Measured on the real 300W-LP sample: about 0.03. A fit far beyond this
#: belongs to another image (or to the image before flipping) and would teach wrong landmarks.
MAX_FIT_DISAGREEMENT = 0.10


def prepare_300wlp_depth(root, bases, *, progress: bool = True) -> tuple[int, list[tuple[str, str]]]:
    """Write the 3D landmarks of every 300W-LP face from its 3DMM fit: ``root/landmarks_3d/<id>.csv``
    (68 rows ``x,y,z``, fa3d's pixels), read by :class:`~fa3d.data.readers.W300LP` from then on
    without the bases. ``bases``: a folder or :class:`~fa3d.data.morphable.MorphableBases`.

    A face whose files are faulty, or whose fit disagrees with its own ``pt2d`` (see
    :data:`MAX_FIT_DISAGREEMENT`), or whose landmarks do not fit its image, is not written but listed
    with its reason in ``root/landmarks_3d/skipped.tsv``. Returns (faces written, [(id, reason)])."""
    from tqdm.auto import tqdm

    from .readers import (PREPARED_3D_DIR, SKIP_LIST_NAME, W300LP, DatasetFormatError, _loadmat, face_fault,
                          image_size, landmarks_from_mat, read_300wlp_landmarks)

    ds = W300LP(root, bases=bases)
    out = Path(root) / PREPARED_3D_DIR
    written, skipped = 0, []
    for sid, image_path, mat_path in tqdm(ds.samples, desc="3D landmarks", disable=not progress):
        try:
            mat = _loadmat(mat_path)
            width, height = image_size(image_path)
            lm3d = landmarks_from_mat(mat_path, ds.bases, height, mat)
            pt2d = read_300wlp_landmarks(mat_path, mat).astype(np.float64)
            fault = face_fault(lm3d, width, height)
        except DatasetFormatError as e:
            skipped.append((sid, e.problem))
            continue
        box = pt2d.max(0) - pt2d.min(0)
        disagreement = np.linalg.norm(lm3d[17:, :2] - pt2d[17:], axis=1).mean() / math.sqrt(max(box[0] * box[1], 1e-9))
        if disagreement > MAX_FIT_DISAGREEMENT:
            fault = (f"the 3DMM fit disagrees with pt2d by {100 * disagreement:.1f} % of the box "
                     f"(inner points; at most {100 * MAX_FIT_DISAGREEMENT:g} %)")
        if fault:
            skipped.append((sid, fault))
            continue
        write_landmarks_csv(out / f"{sid}.csv", lm3d, overwrite=True)
        written += 1
    text = "".join(f"{sid}\t{reason}\n" for sid, reason in skipped)
    atomic_write(out / SKIP_LIST_NAME, text, overwrite=True)
    return written, skipped
