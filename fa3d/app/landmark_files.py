"""``fa3d predict``: images, folders and lists in; one landmarks JSON (and an overlay picture) per image out.

    image_paths(inputs)              the images named by files, folders (their images, sorted) and
                                     ``.txt`` lists (one path per line, relative to the list's folder)
    predict_files(run, inputs)       ``<stem>.landmarks.json`` per image (``--draw``: ``<stem>.landmarks.jpg``)

Nothing that exists is replaced without ``overwrite``: every output is checked before the first
is written. An image that cannot be read, or whose given box does not fit it, is skipped with a
message naming it and the problem; the others are still done.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..data.readers import DatasetFormatError, read_image
from ..files import atomic_write
from ..runs import PRETRAINED_NAME
from .aligner import BoxError, FaceAligner, check_box

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
OUTPUT_TAG = ".landmarks"   # <stem>.landmarks.json / .jpg: never taken for an input image
UNITS = ("image pixels: x right, y down, pixel centres at integers; z in pixels, larger = closer, "
         "zero mean per face")


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.stem.endswith(OUTPUT_TAG)


def image_paths(inputs) -> list[Path]:
    """Image files named by ``inputs``: files as given, folders' images (not recursive; sorted by
    name; fa3d's own ``*.landmarks.jpg`` overlays left out), ``.txt`` files as lists of paths."""
    paths = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.is_file() and _is_image(p))
            if not found:
                raise FileNotFoundError(f"{item}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            paths += found
        elif item.suffix.lower() == ".txt" and item.is_file():
            lines = [ln.strip() for ln in item.read_text().splitlines()]
            paths += [p if p.is_absolute() else item.parent / p
                      for p in (Path(ln) for ln in lines if ln and not ln.startswith("#"))]
        elif item.is_file():
            paths.append(item)
        else:
            raise FileNotFoundError(f"image not found: {item}")
    return paths


def output_path(image_path, out_dir=None, suffix: str = ".json") -> Path:
    """``<stem>.landmarks.json`` (or ``suffix``) next to the image, or in ``out_dir``."""
    image_path = Path(image_path)
    return Path(out_dir or image_path.parent) / f"{image_path.stem}{OUTPUT_TAG}{suffix}"


def draw_faces(image: torch.Tensor, faces, path) -> Path:
    """An overlay picture: each face's box and its landmarks coloured by depth (yellow = near)."""
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    picture = Image.fromarray(image.permute(1, 2, 0).numpy())
    pen = ImageDraw.Draw(picture)
    width = max(1, round(max(picture.size) / 400))
    for face in faces:
        pen.rectangle(face.box, outline=(0, 220, 0), width=width)
        lm = face.landmarks
        side = float(np.sqrt(np.prod(np.ptp(lm[:, :2], axis=0).clip(1))))
        r = max(1.5, side / 80)
        z = (lm[:, 2] - lm[:, 2].min()) / max(np.ptp(lm[:, 2]), 1e-6)
        for (x, y, _), c in zip(lm, colormaps["viridis"](z)):
            pen.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(255 * v) for v in c[:3]))
    return atomic_write(path, lambda f: picture.save(f, format="JPEG", quality=92))


def _document(path: Path, image: torch.Tensor, faces, aligner: FaceAligner) -> dict:
    return {"image": str(path), "image_size": [int(image.shape[2]), int(image.shape[1])],
            "scheme": aligner.scheme, "run": aligner.run_name, "units": UNITS,
            "pixels": "as viewers show the image: its EXIF orientation, if any, applied",
            "faces": [{"bbox": list(f.box), "bbox_source": f.source, "score": f.score,
                       "refine_steps": f.refine_steps, "flip": aligner.flip,
                       "scales": list(aligner.scales), "landmarks": np.round(f.landmarks.astype(np.float64), 3).tolist()}
                      for f in faces]}


def predict_files(run_dir=PRETRAINED_NAME, images=(), *, bbox=None, out_dir=None, overwrite: bool = False,
                  device: str = "auto", refine: int | None = None, flip: bool = True, scales=(1.0,),
                  detector: str = "auto", backend: str = "auto",
                  draw: bool = False, batch_size: int = 32, log=print) -> dict:
    """``fa3d predict``: landmarks JSON for each image, with the run in RUN_DIR (default: the shipped
    model). Returns {image path: JSON path, or None when no face was found or the image was skipped}.
    ``bbox``: one face box for every image instead of the detector's; see :class:`fa3d.FaceAligner`
    for ``refine``, ``flip``, ``scales``, ``detector``, ``backend``."""
    paths = image_paths(images)
    targets = {p: output_path(p, out_dir) for p in paths}
    clash = {}
    for img, out in targets.items():
        if out in clash:
            raise FileExistsError(f"{clash[out]} and {img} would both write {out}: give them separate runs "
                                  f"or leave out --out")
        clash[out] = img
        for o in [out] + ([output_path(img, out_dir, ".jpg")] if draw else []):
            if o.exists() and not overwrite:
                raise FileExistsError(f"{o} already exists (from {img}); pass --overwrite to replace it")
    aligner = FaceAligner(run_dir, device, detector=detector, flip=flip, scales=scales, refine=refine,
                          batch_size=batch_size, backend=backend, log=log)
    results = {}
    for start in range(0, len(paths), batch_size):
        chunk = []
        for img in paths[start:start + batch_size]:
            try:
                image = read_image(img, exif_transpose=True)  # a phone photo: landmarks on the upright image
                if bbox is not None:
                    check_box(bbox, image.shape[2], image.shape[1], str(img))
                chunk.append((img, image))
            except (DatasetFormatError, BoxError, OSError) as err:
                log(f"skipped: {err}")
                results[img] = None
        boxes = None if bbox is None else [[tuple(map(float, bbox))]] * len(chunk)
        names = [str(img) for img, _ in chunk]
        for (img, _), (image, faces) in zip(chunk, aligner.iter_predict([im for _, im in chunk], boxes, names)):
            if not faces:
                log(f"{img}: no face found by the {aligner.detector.name} detector; pass --bbox x1 y1 x2 y2")
                results[img] = None
                continue
            out = atomic_write(targets[img], json.dumps(_document(img, image, faces, aligner), indent=1) + "\n")
            if draw:
                draw_faces(image, faces, output_path(img, out_dir, ".jpg"))
            log(f"{img}: {len(faces)} face(s) -> {out}")
            results[img] = out
    return results

