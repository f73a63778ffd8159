"""Landmarks for images: crops in, landmarks out; face boxes from OpenCV; ``fa3d predict``'s JSON files.

    predict_crops(cascade, crops)          (V, N, 3) in crop pixels, batched
    predict_image(cascade, image, box)     (N, 3) in image pixels for one face box (optionally re-cropped)
    predict_files(run_dir, paths)          ``fa3d predict``: one ``<stem>.landmarks.json`` per image
                                           (run_dir "pretrained": the model shipped with fa3d)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .data.readers import read_image
from .data.schemes import flip_landmarks, scheme_for_points
from .data.transforms import face_crop_matrix, unwarp_landmarks, warp_image
from .env import resolve_device
from .files import atomic_write
from .models import Cascade
from .pretrained import PRETRAINED_NAME, resolve_run
from .runs import load_run
from .schedules import STAGE_SUBNETS

HAAR_FILE = "haarcascade_frontalface_default.xml"


@torch.no_grad()
def predict_crops(cascade: Cascade, images: torch.Tensor, stage: str = "z", batch_size: int = 64,
                  device=None, autocast: bool = False, flip: bool = False) -> torch.Tensor:
    """Landmarks (V, N, 3) in crop pixels (on the CPU) for uint8 crops (V, 3, S, S), with the
    cascade trained up to ``stage`` (a training stage): after "detection" x, y come from the
    detection maps, after "regression"/"joint" from the hourglass, and z (centred to zero mean,
    like the ground truth) only from "z" on; before it z is 0. ``autocast``: bf16 on the device.

    ``flip``: test-time mirroring, our choice (the paper does not say): also predict the mirrored
    crops, mirror those landmarks back (x -> S - 1 - x, left and right points swapped with the
    scheme's flip permutation; z is unchanged by a mirror) and average the two."""
    if flip:
        plain = predict_crops(cascade, images, stage, batch_size, device, autocast)
        mirrored = predict_crops(cascade, images.flip(-1), stage, batch_size, device, autocast)
        return (plain + flip_landmarks(mirrored, images.shape[-1], scheme_for_points(plain.shape[1]))) / 2
    device = device or next(cascade.parameters()).device
    upto = STAGE_SUBNETS[stage][-1]
    was_training = cascade.training
    cascade.eval()
    outs = []
    for i in range(0, len(images), batch_size):
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
            outs.append(cascade(images[i:i + batch_size].to(device), upto=upto)["landmarks"].float().cpu())
    cascade.train(was_training)
    return torch.cat(outs) if outs else torch.zeros(0, cascade.num_landmarks, 3)


#: ``fa3d predict``'s re-crops of a detector's box: it is framed unlike the landmark boxes the cascade
#: was trained on (OpenCV's Haar box holds the forehead and cuts the jaw), so the face is cropped again
#: around the landmarks just predicted. Measured on the dev photos: from a box moved up by a fifth of
#: the face, NME 7.8 -> 4.7 % (lenna), 8.0 -> 4.3 % (takeo) after two; it can also drift on a face the
#: model fits badly (einstein), so a box the user gives is used as it is.
REFINE_STEPS = 2


@torch.no_grad()
def predict_image(cascade: Cascade, image: torch.Tensor, bbox, image_size: int, device="cpu",
                  refine: int = 0, flip: bool = False) -> torch.Tensor:
    """Landmarks (N, 3) in image pixels for the face in ``bbox`` (x1, y1, x2, y2) of an
    uint8 (3, H, W) image: crop as in evaluation, predict, map back (z divided by the crop scale).
    ``refine``: crop again ``refine`` times around the landmarks' own box (x1, y1, x2, y2 of the
    predicted x, y), as evaluation crops around the ground truth's. ``flip``: see :func:`predict_crops`."""
    box = torch.as_tensor(bbox, dtype=torch.float64)
    for _ in range(refine + 1):
        A = face_crop_matrix(box, image_size)
        crop = warp_image(image, A, image_size)
        pred = unwarp_landmarks(predict_crops(cascade, crop[None], "z", device=device, flip=flip)[0].double(), A)
        box = torch.cat([pred[:, :2].min(0).values, pred[:, :2].max(0).values])
        if not (box[2:] - box[:2]).max() >= 2:   # all points in one spot (an untrained net): nothing to crop
            break
    return pred.float()


class FaceDetectorUnavailable(FileNotFoundError):
    """This OpenCV build has no Haar face detector (OpenCV 5 removed it): pass a box instead."""


def detect_faces(image: torch.Tensor, min_size: int = 24) -> list[tuple[float, float, float, float]]:
    """Face boxes (x1, y1, x2, y2) in an uint8 (3, H, W) image with OpenCV's bundled Haar
    cascade (frontal faces only, works offline). Largest first; empty when none is found."""
    import cv2

    path = Path(getattr(getattr(cv2, "data", None), "haarcascades", "")) / HAAR_FILE
    if not hasattr(cv2, "CascadeClassifier") or not path.is_file():
        raise FaceDetectorUnavailable(
            f"OpenCV {cv2.__version__} has no Haar face detector ({path} / cv2.CascadeClassifier missing; "
            f"OpenCV 5 dropped them): pass the face box with --bbox x1 y1 x2 y2, "
            f"or install opencv-python-headless<5")
    detector = cv2.CascadeClassifier(str(path))
    if detector.empty():
        raise FaceDetectorUnavailable(f"OpenCV's Haar cascade could not be loaded from {path}")
    gray = cv2.cvtColor(np.ascontiguousarray(image.permute(1, 2, 0).numpy()), cv2.COLOR_RGB2GRAY)
    found = detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    boxes = [(float(x), float(y), float(x + w), float(y + h)) for x, y, w, h in (found if len(found) else [])]
    return sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))


def output_path(image_path, out_dir=None) -> Path:
    """Where ``fa3d predict`` writes an image's landmarks: ``<stem>.landmarks.json`` next to it (or in out_dir)."""
    image_path = Path(image_path)
    return Path(out_dir or image_path.parent) / f"{image_path.stem}.landmarks.json"


def predict_files(run_dir=PRETRAINED_NAME, images=(), *, bbox=None, out_dir=None, overwrite: bool = False,
                  device: str = "auto", refine: int | None = None, flip: bool = True, log=print) -> dict:
    """``fa3d predict``: landmarks JSON for each image, with the run in RUN_DIR (default: the shipped
    model). Returns {image path: JSON path or None (no face found)}. An existing JSON is never
    replaced unless ``overwrite``. ``refine``: re-crops around the predicted landmarks (default:
    REFINE_STEPS for the detector's boxes, 0 for a given ``bbox``, taken to be the face's landmark box);
    ``flip``: average with the mirrored face (:func:`predict_crops`; on by default here)."""
    if refine is None:
        refine = REFINE_STEPS if bbox is None else 0
    if refine < 0:
        raise ValueError(f"--refine must be 0 or more re-crops, got {refine}")
    dev = resolve_device(device)
    targets = {Path(p): output_path(p, out_dir) for p in images}
    for img, out in targets.items():
        if not img.is_file():
            raise FileNotFoundError(f"image not found: {img}")
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} already exists (landmarks of {img}); pass --overwrite to replace it")
    run_name = str(run_dir)   # "pretrained" stays a name in the JSON, not a path inside fa3d
    cascade, ckpt = load_run(resolve_run(run_dir), dev)
    size = ckpt["preset"]["image_size"]
    results = {}
    for img, out in targets.items():
        image = read_image(img, exif_transpose=True)  # a phone photo: landmarks on the upright image
        boxes, source = ([tuple(map(float, bbox))], "given") if bbox is not None else (detect_faces(image), "haar")
        if not boxes:
            log(f"{img}: no face found by the Haar detector (frontal faces only); pass --bbox x1 y1 x2 y2")
            results[img] = None
            continue
        faces = [{"bbox": list(b), "bbox_source": source, "refine_steps": refine, "flip": flip,
                  "landmarks": predict_image(cascade, image, b, size, dev, refine, flip).tolist()} for b in boxes]
        doc = {"image": str(img), "image_size": [int(image.shape[2]), int(image.shape[1])],
               "scheme": ckpt["scheme"], "run": run_name,
               "units": "image pixels: x right, y down, pixel centres at integers; z in pixels, larger = closer, "
                        "zero mean per face",
               "pixels": "as viewers show the image: its EXIF orientation, if any, applied",
               "faces": faces}
        atomic_write(out, json.dumps(doc, indent=1) + "\n")
        log(f"{img}: {len(faces)} face(s) -> {out}")
        results[img] = out
    return results
