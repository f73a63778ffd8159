"""Readers of the real face-alignment datasets' file formats, and the torch Datasets built on them.

Formats (what is on disk):

* **3DFAW** (request-only): ``<split>_img/<id>.jpg`` and ``<split>_lm/<id>_lm.csv``
  with 66 rows ``x,y,z`` (no header).
* **AFLW2000-3D**: ``<name>.jpg`` + ``<name>.mat`` holding ``pt3d_68`` (3, 68) and
  ``Pose_Para`` (1, 7) = pitch, yaw, roll (radians), tdx, tdy, tdz, scale.
* **300W-LP**: ``<subset>/<name>.jpg`` + ``<subset>/<name>.mat`` holding ``pt2d``
  (2, 68), ``Pose_Para`` and the 3DMM fit (``Shape_Para``, ``Exp_Para``); also
  ``landmarks/<subset>/<name>_pts.mat`` with ``pts_2d`` (68, 2). 2D as stored; with the
  3DMM bases (``W300LP(root, bases=DIR)``) or landmarks prepared from them
  (``landmarks_3d/<subset>/<name>.csv``, 68 rows ``x,y,z`` in fa3d's pixels), 3D.
* **iBUG .pts**: ``version: 1`` / ``n_points: N`` / ``{`` / N rows ``x y`` / ``}``,
  1-based (MATLAB) pixel coordinates.
* **300-W**: ``.pts`` pairs in the official download's layout (``lfpw/trainset``, ``lfpw/testset``,
  ``helen/trainset``, ``helen/testset``, ``afw/``, ``ibug/``) or in folders named per source
  (``lfpw-train/``, ``helen-train/``, ``afw/``); a photo with several faces has one pair per face,
  ``<photo>_<k>``. :func:`photo_id` names the photo a face comes from, the same in either layout.

Pixels: every MATLAB-made annotation (``.pts``, ``pt3d_68``, ``pt2d``, ``pts_2d``) is 1-based
(the top-left pixel's centre is (1, 1)); fa3d's pixels are 0-based, so readers subtract 1
from x and y, and the writers add it back. Pose: each reader converts the stored angles to
fa3d's one convention (:mod:`fa3d.data.pose`). Images: EXIF orientation is ignored (with a
warning), because the annotations of these datasets refer to the stored pixel grid (MATLAB's
``imread`` ignores it too); grey, palette, CMYK and 16-bit images are converted to 8-bit RGB.
Faults: a face with most landmarks outside its image or too small to crop (:func:`face_fault`)
is an error naming its file; two images with one id are an error; 300W-LP faces that preparing
depth left out are skipped, counted and listed (``landmarks_3d/skipped.tsv``).

Every dataset returns a :class:`~fa3d.data.item.FaceItem` with every point visible (none of these
datasets has occlusion flags), z NaN for 2D-only data and ``bbox`` the landmark box.

``open_dataset`` opens any of them (or the synthetic faces) from a SPEC string
``KIND[:ARG]`` (see ``DATASET_SPECS``); ``parse_spec`` is the one parser of those strings.
``_FaceFolder.landmarks(i)`` gives an item's landmarks without decoding its image.

This module only reads. The writers of the same formats live in ``fa3d.data.writers``
(which imports from here, never the other way round).
"""
from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import scipy.io
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from .item import face_item
from .morphable import MorphableBases, landmarks_from_3dmm, load_bases
from .pose import pose_from_3ddfa
from .schemes import LandmarkScheme, convert_68_to_66, get_scheme

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_IGNORED_DIRS = {"__MACOSX"}  # resource-fork folders that macOS adds to zips


class DatasetFormatError(ValueError):
    """A dataset file is malformed. The message names the file and what is wrong."""

    def __init__(self, path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


# ----------------------------------------------------------------------------- text formats

def _text_lines(path) -> list[tuple[int, str]]:
    """(1-based line number, stripped text) of the non-blank lines of a text file."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # -sig: tolerate a BOM
    except UnicodeDecodeError as e:
        raise DatasetFormatError(path, f"not a UTF-8 text file ({e.reason})") from None
    return [(i + 1, line.strip()) for i, line in enumerate(text.splitlines()) if line.strip()]


def _parse_rows(path, rows: list[tuple[int, str]], ncols: int, sep: str | None) -> np.ndarray:
    """Parse numeric rows into a float64 (len(rows), ncols) array; reject non-finite values."""
    out = np.empty((len(rows), ncols), np.float64)
    for r, (lineno, line) in enumerate(rows):
        values = line.split(sep)
        if len(values) != ncols:
            raise DatasetFormatError(path, f"line {lineno} has {len(values)} values, expected {ncols}: {line!r}")
        try:
            out[r] = [float(v) for v in values]
        except ValueError:
            raise DatasetFormatError(path, f"line {lineno} is not numeric: {line!r}") from None
        if not np.isfinite(out[r]).all():
            raise DatasetFormatError(path, f"line {lineno} holds NaN or inf: {line!r}")
    return out


def read_3dfaw_landmarks(path) -> np.ndarray:
    """Read a 3DFAW ``<id>_lm.csv``: 66 rows ``x,y,z`` -> float32 (66, 3), as stored.

    Blank lines, spaces and a single ``x,y,z`` header line are tolerated.
    We assume 3DFAW's z already follows fa3d's convention (larger z = closer to the camera).
    """
    return read_landmarks_csv(path, 66).astype(np.float32)


def read_pts(path) -> np.ndarray:
    """Read an iBUG ``.pts`` file -> float32 (N, 2) in fa3d pixel coordinates.

    iBUG coordinates are 1-based (MATLAB: the top-left pixel centre is (1, 1)); fa3d's
    are 0-based, so 1 is subtracted (the usual 300-W convention). ``fa3d.data.writers.write_pts``
    adds it back.
    """
    lines = _text_lines(path)
    header = {}
    for k, (lineno, line) in enumerate(lines):
        if line == "{":
            body = lines[k + 1:]
            break
        if ":" not in line:
            raise DatasetFormatError(path, f"line {lineno}: expected 'key: value' or '{{', got {line!r}")
        key, value = line.split(":", 1)
        header[key.strip().lower()] = value.strip()
    else:
        raise DatasetFormatError(path, "no '{' line: not an iBUG .pts file")
    try:
        n = int(header["n_points"])
    except (KeyError, ValueError):
        raise DatasetFormatError(path, f"missing or invalid 'n_points' in the header {header}") from None
    if len(body) < n + 1 or body[n][1] != "}":
        found = next((i for i, (_, line) in enumerate(body) if line == "}"), len(body))
        raise DatasetFormatError(path, f"n_points is {n} but {found} point rows were found before '}}'")
    return (_parse_rows(path, body[:n], 2, None) - 1.0).astype(np.float32)


def read_landmarks_csv(path, num_points: int) -> np.ndarray:
    """Read ``num_points`` rows ``x,y,z`` (blank lines and one ``x,y,z`` header tolerated) -> float64,
    as stored. The format of 3DFAW's ``_lm.csv`` and of fa3d's prepared 300W-LP landmarks."""
    rows = _text_lines(path)
    if rows and rows[0][1].replace(" ", "").lower() == "x,y,z":
        rows = rows[1:]
    if len(rows) != num_points:
        raise DatasetFormatError(path, f"expected {num_points} rows of x,y,z, found {len(rows)}")
    return _parse_rows(path, rows, 3, ",")


# ----------------------------------------------------------------------------- .mat formats

def _loadmat(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return scipy.io.loadmat(str(path))
    except Exception as e:  # scipy raises ValueError, TypeError, NotImplementedError (v7.3 files), ...
        raise DatasetFormatError(path, f"cannot read as a MATLAB .mat file ({type(e).__name__}: {e})") from None


def _mat_array(path, mat: dict, key: str, shape: tuple[int, int]) -> np.ndarray:
    if key not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetFormatError(path, f"no variable {key!r} (found {keys})")
    a = np.asarray(mat[key])
    if a.shape != shape:
        raise DatasetFormatError(path, f"{key!r} has shape {a.shape}, expected {shape}")
    try:
        a = a.astype(np.float64)
    except (TypeError, ValueError):
        raise DatasetFormatError(path, f"{key!r} is not numeric (dtype {a.dtype})") from None
    return a


def _check_finite(path, a: np.ndarray, what: str) -> None:
    if not np.isfinite(a).all():
        raise DatasetFormatError(path, f"{what} holds NaN or inf")


def _from_matlab(a: np.ndarray) -> np.ndarray:
    """(N, 2|3) MATLAB 1-based pixels -> fa3d's 0-based ones (x and y minus 1; z unchanged)."""
    a = np.array(a, np.float64)
    a[:, :2] -= 1.0
    return a


def _aflw2000_landmarks(path, mat: dict) -> np.ndarray:
    a = _mat_array(path, mat, "pt3d_68", (3, 68)).T
    _check_finite(path, a, "pt3d_68")
    return _from_matlab(a)


def read_aflw2000_3d(mat_path) -> np.ndarray:
    """AFLW2000-3D landmarks: ``pt3d_68`` (3, 68) -> float32 (68, 3) in fa3d's pixels (not centred).

    x and y are MATLAB's 1-based pixels minus 1; z is as stored. Measured on real files:
    AFLW2000-3D's z is larger toward the camera, as in fa3d. The 1-pixel shift does not change
    the protocol's NME as long as predictions and ground truth are in the same pixels.
    """
    return _aflw2000_landmarks(mat_path, _loadmat(mat_path)).astype(np.float32)


def _pose_para(path, mat: dict) -> np.ndarray:
    if "Pose_Para" not in mat:
        raise DatasetFormatError(path, "no variable 'Pose_Para'")
    p = np.asarray(mat["Pose_Para"], np.float64).reshape(-1)
    if p.size != 7:
        raise DatasetFormatError(path, f"'Pose_Para' has {p.size} values, expected 7")
    return p


def _pose_from_mat(path, mat: dict) -> tuple[float, float, float]:
    p = _pose_para(path, mat)
    return pose_from_3ddfa(p) if np.isfinite(p[:3]).all() else (math.nan,) * 3  # NaN: pose unknown


def landmarks_from_mat(mat_path, bases, image_height: int, mat: dict | None = None) -> np.ndarray:
    """3D landmarks (68, 3) float64 of a 300W-LP or AFLW2000-3D ``.mat`` from its 3DMM fit
    (``Shape_Para``, ``Exp_Para``, ``Pose_Para``) and the bases (see :func:`fa3d.data.landmarks_from_3dmm`);
    ``image_height``: H of the face's image in pixels (:func:`image_size` reads it from the header)."""
    mat = _loadmat(mat_path) if mat is None else mat
    shape = _mat_array(mat_path, mat, "Shape_Para", (199, 1))
    expression = _mat_array(mat_path, mat, "Exp_Para", (29, 1))
    pose = _pose_para(mat_path, mat)
    lm = landmarks_from_3dmm(shape, expression, pose, bases, image_height)
    _check_finite(mat_path, lm, "the 3D landmarks from the 3DMM fit")
    return lm


def read_300wlp_landmarks(mat_path, mat: dict | None = None) -> np.ndarray:
    """300W-LP 2D landmarks -> float32 (68, 2) in fa3d's 0-based pixels (MATLAB's minus 1).

    Accepts an image's ``<name>.mat`` (``pt2d``, (2, 68)) or a
    ``landmarks/<subset>/<name>_pts.mat`` (``pts_2d``, (68, 2)).
    """
    mat = _loadmat(mat_path) if mat is None else mat
    if "pt2d" in mat:
        a = _mat_array(mat_path, mat, "pt2d", (2, 68)).T
    elif "pts_2d" in mat:
        a = _mat_array(mat_path, mat, "pts_2d", (68, 2))
    else:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetFormatError(mat_path, f"neither 'pt2d' nor 'pts_2d' found (found {keys})")
    _check_finite(mat_path, a, "the 2D landmarks")
    return _from_matlab(a).astype(np.float32)


# ----------------------------------------------------------------------------- images

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _to_rgb8(path, im: Image.Image) -> np.ndarray:
    """A decoded PIL image -> uint8 (H, W, 3). 16-bit grey is scaled to 8 bits (PIL's own
    ``convert`` would clip every value above 255 to white); float images are refused."""
    if im.mode in _SIXTEEN_BIT_MODES:
        grey = np.asarray(im, np.float64)
        if grey.min() < 0 or grey.max() > 65535:
            raise DatasetFormatError(path, f"{im.mode} image with values outside 0..65535")
        grey = np.rint(grey / 257.0).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if im.mode == "F":
        raise DatasetFormatError(path, "floating-point images are not supported; save it as 8-bit PNG or JPEG")
    return np.asarray(im.convert("RGB"))  # grey, palette, CMYK (naively), RGBA (alpha dropped)


EXIF_ORIENTATION_TAG = 0x0112


def read_image(path, exif_transpose: bool = False) -> torch.Tensor:
    """Decode a JPEG/PNG with PIL -> uint8 (3, H, W) RGB; grey, palette, CMYK and 16-bit are converted.

    Truncated or corrupt files raise DatasetFormatError, never a half-decoded image
    (unless other code set ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``). EXIF orientation: by default
    ignored, with a warning when it is not "upright", because the annotations of datasets refer to
    the stored pixel grid; ``exif_transpose=True`` turns the pixels upright as viewers show them
    (``fa3d predict`` does, for photos without annotations).
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise DatasetFormatError(path, "empty image file")
    try:
        with Image.open(path) as im:
            im.load()
            orientation = im.getexif().get(EXIF_ORIENTATION_TAG, 1)
            if exif_transpose:
                im = ImageOps.exif_transpose(im)
            elif orientation != 1:
                warnings.warn(f"{path}: EXIF orientation {orientation} ignored: its annotations are taken on the "
                              "stored pixels, as MATLAB and the datasets' tools read them", stacklevel=2)
            rgb = _to_rgb8(path, im)
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError) as e:  # PIL's UnidentifiedImageError is an OSError
        if isinstance(e, DatasetFormatError):
            raise
        raise DatasetFormatError(path, f"cannot decode image ({e})") from None
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous()


def image_size(path) -> tuple[int, int]:
    """(width, height) of an image from its header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        raise DatasetFormatError(path, f"cannot read the image header ({e})") from None


# ----------------------------------------------------------------------------- items

def _item_landmarks(landmarks: np.ndarray, where) -> torch.Tensor:
    """(N, 2) or (N, 3) pixels -> the item's float32 (N, 3) landmarks: z centred (NaN if absent).

    The one place where the readers' landmarks are made (``_FaceFolder.__getitem__`` and ``.landmarks``).
    ``where`` (a path or an id) names the source in the error for NaN or inf values.
    """
    lm = np.asarray(landmarks, np.float64)
    if lm.shape[1] == 2:
        lm = np.concatenate([lm, np.full((len(lm), 1), np.nan)], axis=1)
    if not np.isfinite(lm[:, :2]).all() or not (np.isfinite(lm[:, 2]).all() or np.isnan(lm[:, 2]).all()):
        raise DatasetFormatError(where, "landmarks hold NaN or inf")
    lm[:, 2] -= lm[:, 2].mean()  # datasets' z origins are arbitrary
    return torch.from_numpy(lm.astype(np.float32))


#: Smallest face fa3d crops: the longer side of the landmarks' box, in pixels.
MIN_FACE_PX = 8.0


def face_fault(landmarks: np.ndarray, width: int, height: int) -> str | None:
    """What is wrong with a face's (N, 2|3) pixel landmarks on a width x height image, or None.

    Landmarks may lie outside the image (a profile's hidden jaw, a face at the border: the crop
    pads), but not most of them: fewer than half inside means the annotation does not belong to
    the image (or its coordinates are off). A box under :data:`MIN_FACE_PX` is too small to crop.
    """
    xy = np.asarray(landmarks, np.float64)[:, :2]
    inside = ((xy[:, 0] >= -0.5) & (xy[:, 0] <= width - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] <= height - 0.5))
    if inside.mean() < 0.5:
        return (f"only {int(inside.sum())} of {len(xy)} landmarks lie inside the {width}x{height} image "
                "(wrong image, or coordinates in another convention?)")
    side = float((xy.max(0) - xy.min(0)).max())
    if side < MIN_FACE_PX:
        return f"face too small to crop: its landmarks span {side:.1f} px (at least {MIN_FACE_PX:g})"
    return None


def to_scheme(lm: np.ndarray, scheme: LandmarkScheme, path) -> np.ndarray:
    """Landmarks (N, 2|3) as stored -> the points of ``scheme`` (68 points can become "3dfaw66").

    ``path`` (the annotation file) names the source if the count cannot be converted.
    """
    if len(lm) == scheme.num_points:
        return lm
    if len(lm) == 68 and scheme.name == "3dfaw66":
        return convert_68_to_66(lm)
    raise DatasetFormatError(path, f"has {len(lm)} landmarks, cannot convert to scheme {scheme.name!r}")


# ----------------------------------------------------------------------------- datasets

#: Folders of 300-W's official layout that name a part of a source, not the source: lfpw/trainset -> lfpw-train.
_PART_FOLDERS = {"trainset": "train", "testset": "test"}


def photo_id(image_path) -> str:
    """``<source>/<photo>``: which photo a face's image comes from, so that all faces of one photo can be
    kept on one side of a split and a run's training photos recognised under any dataset spec.

    ``<source>`` is the image's folder, lower-cased, with 300-W's ``<name>/trainset`` and
    ``<name>/testset`` read as ``<name>-train`` and ``<name>-test`` (their file names repeat:
    ``lfpw/trainset/image_0001`` and ``lfpw/testset/image_0001`` are different photos).
    ``<photo>`` is the file's stem without a face index ``_<k>`` where the rest still holds a digit
    (HELEN's ``100032540_1``, AFW's ``1051618982_1``, iBUG's ``image_003_1``), else the stem
    (LFPW's ``image_0001`` is a photo, not face 1 of ``image``).

    >>> photo_id("300w/lfpw/testset/image_0001.png"), photo_id("300w-train/helen-train/100040721_2.jpg")
    ('lfpw-test/image_0001', 'helen-train/100040721')
    """
    path = Path(image_path)
    source = path.parent.name.lower()
    if source in _PART_FOLDERS:
        source = f"{path.parent.parent.name.lower()}-{_PART_FOLDERS[source]}"
    stem, sep, last = path.stem.rpartition("_")
    photo = stem if sep and last.isdigit() and any(c.isdigit() for c in stem) else path.stem
    return f"{source}/{photo}"


def _require_dir(path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {path}")
    return path


def _visible_files(folder: Path, recursive: bool = False) -> Iterable[Path]:
    """Files of ``folder`` (or its tree), skipping hidden files/folders and __MACOSX."""
    paths = folder.rglob("*") if recursive else folder.iterdir()
    for p in paths:
        parts = p.relative_to(folder).parts
        if p.is_file() and not any(s.startswith(".") or s in _IGNORED_DIRS for s in parts):
            yield p


def _key(folder: Path, path: Path, suffix_len: int) -> str:
    rel = path.relative_to(folder).as_posix()
    return rel[: len(rel) - suffix_len]


def _pair_files(img_dir: Path, ann_dir: Path, ann_suffix: str, recursive: bool = False,
                id_prefix: str = "") -> list[tuple[str, Path, Path]]:
    """Match images ``<key>.jpg|.jpeg|.png`` in img_dir with ``<key><ann_suffix>`` in ann_dir.

    Returns sorted (id, image_path, annotation_path); raises on any mismatch.
    """
    images, anns = {}, {}
    for p in _visible_files(img_dir, recursive):
        if p.suffix.lower() in IMAGE_SUFFIXES:
            key = _key(img_dir, p, len(p.suffix))
            if key in images:
                raise DatasetFormatError(p, f"two images share the id {key!r}: {images[key].name} and {p.name}")
            images[key] = p
    for p in _visible_files(ann_dir, recursive):
        if p.name.lower().endswith(ann_suffix):
            anns[_key(ann_dir, p, len(ann_suffix))] = p
    no_ann = sorted(images.keys() - anns.keys())
    no_img = sorted(anns.keys() - images.keys())
    if no_ann or no_img:
        msg = []
        if no_ann:
            msg.append(f"{len(no_ann)} image(s) in {img_dir} have no '{ann_suffix}' file in {ann_dir}, "
                       f"e.g. {no_ann[:5]}")
        if no_img:
            msg.append(f"{len(no_img)} '{ann_suffix}' file(s) in {ann_dir} have no image in {img_dir}, "
                       f"e.g. {no_img[:5]}")
        raise DatasetFormatError(img_dir, "mismatched ids: " + "; ".join(msg))
    return [(id_prefix + k, images[k], anns[k]) for k in sorted(images)]


class _FaceFolder(Dataset):
    """Base class: a sorted list of (id, image path, annotation path); subclasses parse annotations."""

    def __init__(self, samples: list[tuple[str, Path, Path]], scheme, where, transform=None):
        if not samples:
            raise DatasetFormatError(where, "no images with annotations found (empty dataset)")
        self.samples = samples
        self.scheme = get_scheme(scheme)
        self.transform = transform

    def read_annotation(self, path: Path) -> tuple[np.ndarray, tuple | None]:
        """-> landmarks (N, 2|3) as stored, pose (yaw, pitch, roll) degrees or None."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.samples)

    def _annotation(self, index: int) -> tuple[str, Path, Path, np.ndarray, tuple | None]:
        """-> id, image path, annotation path, landmarks in ``self.scheme`` (as stored), pose."""
        sid, image_path, ann_path = self.samples[index]
        lm, pose = self.read_annotation(ann_path)
        return sid, image_path, ann_path, to_scheme(lm, self.scheme, ann_path), pose

    def landmarks(self, index: int) -> torch.Tensor:
        """``self[index]["landmarks"]`` without decoding the image: float32 (N, 3), same values.

        In the dataset's scheme, z centred to zero mean (NaN for 2D data), as ``self[index]`` has
        them; ``transform`` (if any) is not applied. Annotation errors are raised as by ``self[index]``.
        """
        sid, _, ann_path, lm, _ = self._annotation(index)
        return _item_landmarks(lm, ann_path)

    def __getitem__(self, index: int) -> dict:
        sid, image_path, ann_path, lm, pose = self._annotation(index)
        image = read_image(image_path)
        fault = face_fault(lm, image.shape[2], image.shape[1])
        if fault:
            raise DatasetFormatError(ann_path, fault)
        item = face_item(image, _item_landmarks(lm, ann_path), pose=pose, id=sid)
        return self.transform(item) if self.transform is not None else item

    def photo_id(self, index: int) -> str:
        """The photo face ``index`` comes from (:func:`photo_id` of its image path)."""
        return photo_id(self.samples[index][1])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} faces, scheme={self.scheme.name!r}, root={str(self.root)!r})"


class ThreeDFAW(_FaceFolder):
    """3DFAW: ``root/<split>_img/<id>.jpg`` + ``root/<split>_lm/<id>_lm.csv`` (66 x,y,z)."""

    def __init__(self, root, split: str = "train", scheme: str = "3dfaw66", transform=None):
        if get_scheme(scheme).name != "3dfaw66":
            raise ValueError("3DFAW has 66 landmarks; only scheme='3dfaw66' is possible")
        self.root = _require_dir(root, "3DFAW root")
        img_dir = _require_dir(self.root / f"{split}_img", f"3DFAW {split!r} image")
        lm_dir = _require_dir(self.root / f"{split}_lm", f"3DFAW {split!r} landmark")
        super().__init__(_pair_files(img_dir, lm_dir, "_lm.csv"), scheme, img_dir, transform)

    def read_annotation(self, path):
        return read_3dfaw_landmarks(path), None


class AFLW2000_3D(_FaceFolder):
    """AFLW2000-3D: ``root/<name>.jpg`` + ``root/<name>.mat`` (``pt3d_68``, ``Pose_Para``)."""

    def __init__(self, root, scheme: str = "68", transform=None):
        self.root = _require_dir(root, "AFLW2000-3D")
        super().__init__(_pair_files(self.root, self.root, ".mat"), scheme, self.root, transform)

    def read_annotation(self, path):
        mat = _loadmat(path)
        return _aflw2000_landmarks(path, mat), _pose_from_mat(path, mat)


#: The folder under a 300W-LP root that ``data_scripts/prepare_300w_lp.py --bases`` fills with one
#: ``<subset>/<name>.csv`` per image: 68 rows ``x,y,z`` in fa3d's pixels (0-based, z not centred).
PREPARED_3D_DIR = "landmarks_3d"


#: The faces that preparing 300W-LP's depth left out, one ``<id>\t<reason>`` line each.
SKIP_LIST_NAME = "skipped.tsv"


def read_skip_list(path) -> list[tuple[str, str]]:
    """(id, reason) of every line of a skip list; [] if there is no such file."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for lineno, line in _text_lines(path):
        sid, sep, reason = line.partition("\t")
        if not sep:
            raise DatasetFormatError(path, f"line {lineno}: expected '<id><TAB><reason>', got {line!r}")
        out.append((sid, reason))
    return out


class W300LP(_FaceFolder):
    """300W-LP: ``root/<subset>/<name>.jpg`` + same-stem ``.mat`` (``pt2d``, ``Pose_Para``, 3DMM fit).

    ``subsets``: e.g. ["AFW", "HELEN_Flip"]; None = every sub-folder holding images (or root
    itself when the images lie right in it).
    Ids are ``<subset>/<name>`` (flipped subsets reuse the names of the originals).

    Depth (``self.depth``): with ``bases`` (a folder of the BFM's 68-landmark bases, or a
    :class:`~fa3d.data.morphable.MorphableBases`) every face gets (x, y, z) from its 3DMM fit
    ("bases"); without, the landmarks prepared from them under ``root/landmarks_3d`` are read
    when that folder exists ("prepared"); otherwise the stored 2D ``pt2d``, z NaN ("2d").

    Which 2D points: with depth, x and y are the **projected 3D landmarks**, whose jaw points
    stay fixed on the face (as in 3DFAW and in AFLW2000-3D's ``pt3d_68``, the test set's ground
    truth); ``pt2d`` instead follows the visible jaw contour at large yaw, a different target
    that would also disagree with the z of the same points. Without depth, ``pt2d`` it is.
    """

    def __init__(self, root, subsets: list[str] | None = None, scheme: str = "68", bases=None,
                 transform=None):
        self.root = _require_dir(root, "300W-LP root")
        if subsets is None and any(p.suffix.lower() in IMAGE_SUFFIXES for p in _visible_files(self.root)):
            subsets = [""]  # images right in root: a single subset, e.g. a few files of the download
        if subsets is None:
            subsets = sorted(d.name for d in self.root.iterdir()
                             if d.is_dir() and d.name not in ("landmarks", PREPARED_3D_DIR, *_IGNORED_DIRS)
                             and not d.name.startswith(".")
                             and any(p.suffix.lower() in IMAGE_SUFFIXES for p in d.iterdir()))
        samples = []
        for s in subsets:
            d = _require_dir(self.root / s, "300W-LP subset")
            samples += _pair_files(d, d, ".mat", id_prefix=f"{s}/" if s else "")
        self.subsets = list(subsets)
        self._faces = {ann: (sid, image) for sid, image, ann in samples}  # annotation path -> (id, image path)
        self.bases = None if bases is None else (bases if isinstance(bases, MorphableBases) else load_bases(bases))
        prepared = self.root / PREPARED_3D_DIR
        self.depth = "bases" if self.bases is not None else ("prepared" if prepared.is_dir() else "2d")
        self.skipped: list[tuple[str, str]] = []
        if self.depth == "prepared":
            self.skipped = read_skip_list(prepared / SKIP_LIST_NAME)
            if self.skipped:
                drop = {sid for sid, _ in self.skipped}
                samples = [s for s in samples if s[0] not in drop]
                warnings.warn(f"300W-LP: {len(self.skipped)} faces skipped, each with its reason in "
                              f"{prepared / SKIP_LIST_NAME}", stacklevel=2)
            missing = [sid for sid, _, _ in samples if not (prepared / f"{sid}.csv").is_file()]
            if missing:
                raise DatasetFormatError(prepared, f"{len(missing)} of {len(samples)} images have no prepared "
                                         f"3D landmarks, e.g. {missing[:3]}; run data_scripts/prepare_300w_lp.py "
                                         "with --bases again, or delete the folder to read 2D")
        super().__init__(samples, scheme, self.root, transform)

    def read_annotation(self, path):
        mat = _loadmat(path)
        pose = _pose_from_mat(path, mat) if "Pose_Para" in mat else None
        if Path(path) not in self._faces:
            raise DatasetFormatError(path, f"not an annotation of this 300W-LP dataset ({self.root})")
        sid, image_path = self._faces[Path(path)]
        if self.depth == "bases":
            return landmarks_from_mat(path, self.bases, image_size(image_path)[1], mat), pose
        if self.depth == "prepared":
            return read_landmarks_csv(self.root / PREPARED_3D_DIR / f"{sid}.csv", 68), pose
        return read_300wlp_landmarks(path, mat), pose


class PtsFolder(_FaceFolder):
    """A folder (searched recursively) of images with same-stem iBUG ``.pts`` files. 2D only: z is NaN.

    ``scheme``: None infers it from the first file (68 -> "68", 66 -> "3dfaw66");
    "3dfaw66" also accepts 68-point files (the two inner-mouth corners are dropped).
    """

    def __init__(self, root, scheme: str | None = None, recursive: bool = True, transform=None):
        self.root = _require_dir(root, "image/.pts")
        samples = _pair_files(self.root, self.root, ".pts", recursive=recursive)
        if scheme is None and samples:
            n = len(read_pts(samples[0][2]))
            if n not in (66, 68):
                raise DatasetFormatError(samples[0][2], f"has {n} points; only 68 (iBUG) or 66 (3DFAW) are known")
            scheme = "68" if n == 68 else "3dfaw66"
        super().__init__(samples, scheme or "68", self.root, transform)

    def read_annotation(self, path):
        return read_pts(path), None


# ----------------------------------------------------------------------------- specs

DATASET_SPECS = {
    "synthetic": "synthetic[:SIZE]  procedurally rendered 3D faces (no download)",
    "3dfaw": "3dfaw:DIR         3DFAW (DIR/<split>_img, DIR/<split>_lm); keyword split='train'|'valid'",
    "aflw2000": "aflw2000:DIR      AFLW2000-3D (DIR/*.jpg + *.mat)",
    "300wlp": "300wlp:DIR        300W-LP (DIR/<subset>/*.jpg + *.mat); 3D with prepared landmarks or bases=DIR",
    "folder": "folder:DIR        images + iBUG .pts files",
    "300w": "300w:DIR          300-W (.pts pairs; official layout or per-source folders): split by photo",
}


def source_specs(spec: str) -> list[str]:
    """The sources of a mixed SPEC, ``SOURCE+SOURCE+...`` (e.g. ``synthetic:2000+300w:data/300w``),
    each a SPEC of one dataset; a plain SPEC is its own single source. A ``+`` splits only where a
    known kind follows it, so folder names may hold one.

    >>> source_specs("synthetic:2000+300w:data/300w+plus")
    ['synthetic:2000', '300w:data/300w+plus']
    """
    parts = _split_sources(spec)
    for part in parts:
        parse_spec(part)
    return parts


def _split_sources(spec: str) -> list[str]:
    kinds = "|".join(sorted(DATASET_SPECS, key=len, reverse=True))
    return [p.strip() for p in re.split(rf"\+(?=\s*(?:{kinds})\s*(?::|\+|$))", spec, flags=re.IGNORECASE)]


def parse_spec(spec: str) -> tuple[str, str]:
    """Split a dataset SPEC ``KIND[:ARG]`` -> (kind lower-cased and stripped, ARG as given or "").

    The one parser of SPEC strings. An unknown kind is a ValueError listing ``DATASET_SPECS``.

    >>> parse_spec(" AFLW2000:data/AFLW2000")
    ('aflw2000', 'data/AFLW2000')
    """
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if len(_split_sources(spec)) > 1:
        raise ValueError(f"{spec!r} mixes several datasets; here one dataset SPEC is needed "
                         "(fa3d.data.readers.source_specs splits a mix)")
    if kind not in DATASET_SPECS:
        known = "\n  ".join(DATASET_SPECS.values())
        raise ValueError(f"unknown dataset spec {spec!r}; expected one of:\n  {known}")
    return kind, arg


def open_dataset(spec: str, **kw) -> Dataset:
    """Open a dataset from a SPEC string (see ``DATASET_SPECS``); ``kw`` go to the class.

    >>> open_dataset("aflw2000:data/AFLW2000", scheme="3dfaw66")  # doctest: +SKIP
    """
    kind, arg = parse_spec(spec)
    if kind == "synthetic":
        from .synthetic import SyntheticFaces  # lazy: rendering code is only needed here
        size = int(arg) if arg else kw.pop("size", 1000)
        return SyntheticFaces(size, **kw)
    classes = {"3dfaw": ThreeDFAW, "aflw2000": AFLW2000_3D, "300wlp": W300LP, "folder": PtsFolder, "300w": PtsFolder}
    if not arg:
        raise ValueError(f"dataset spec {spec!r} needs a folder: {DATASET_SPECS[kind]}")
    return classes[kind](arg, **kw)
