"""Evaluation (paper §3, Tables 2-3), the mean-shape baseline, and landmarks for new images.

Protocol: every test face is cropped around its ground-truth box exactly as in
training (:class:`~fa3d.data.transforms.CenterCrop3D`), the cascade predicts
(x, y, z) in crop pixels, the prediction is mapped back to the original image
(z divided by the crop's scale) and compared with the ground truth there with
GTE and CVGTCE (fa3d.metrics; percent, normalised by the 3D interocular distance).

The **mean-shape baseline** puts the mean training shape (in crop coordinates,
stored in the checkpoint) into every test crop: what a model that ignores the
image scores. A trained model must beat it by a wide margin.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint
from .data.transforms import CenterCrop3D, face_crop_matrix, unwarp_landmarks, warp_image
from .metrics import summarize
from .models import Cascade
from .train import CHECKPOINT_NAME, build_cascade, predict_crops, preset_from_dict

METRIC_KEYS = ("gte_xy", "gte_xyz", "gte_x", "gte_y", "gte_z", "cvgtce")
METRICS_NAME = "metrics.json"


def load_run(run_dir, device="cpu") -> tuple[Cascade, dict]:
    """The trained cascade of RUN_DIR (eval mode, on ``device``) and its checkpoint dict."""
    path = Path(run_dir) / CHECKPOINT_NAME
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    ckpt = load_checkpoint(path)
    cascade = build_cascade(preset_from_dict(ckpt["preset"]), pretrained=False)
    for name, state in ckpt["models"].items():
        getattr(cascade, name).load_state_dict(state)
    return cascade.to(device).eval(), ckpt


def _device(name: str) -> torch.device:
    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else
                        "cpu" if name == "auto" else name)


# ----------------------------------------------------------------------------- evaluation

def test_dataset(spec: str, ckpt: dict):
    """The dataset ``fa3d evaluate --data SPEC`` scores: for ``synthetic`` the run's own
    validation faces (seed + SYNTHETIC_VALID_SEED_OFFSET, never seen in training), for
    ``3dfaw:DIR`` its valid split, otherwise every face of the folder."""
    from .cli import SYNTHETIC_VALID_SEED_OFFSET
    from .data.readers import open_dataset

    cfg, scheme = ckpt["config"], ckpt["scheme"]
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "synthetic":
        size = int(arg) if arg else cfg["num_valid"]
        image_size = cfg.get("synthetic_size") or 2 * ckpt["preset"]["image_size"]
        return open_dataset("synthetic", size=size, image_size=image_size, scheme=scheme,
                            seed=cfg["seed"] + SYNTHETIC_VALID_SEED_OFFSET)
    if kind == "3dfaw":
        return open_dataset(spec, split="valid", scheme=scheme)
    return open_dataset(spec, scheme=scheme)


@torch.no_grad()
def evaluate_dataset(cascade: Cascade, dataset, mean_shape: torch.Tensor, image_size: int, *, batch_size: int = 32,
                     max_images: int | None = None, device="cpu", progress: bool = True) -> dict:
    """Score the cascade and the mean-shape baseline on ``dataset`` (items with ground truth).

    ``image_size``: the preset's crop side. Returns {"model": summary, "baseline": summary,
    "pred": (V,N,3), "gt": (V,N,3), "baseline_pred": (V,N,3), "yaw": (V,) degrees, "ids"},
    summaries as :func:`fa3d.metrics.summarize` (percent), landmarks in image pixels.
    """
    crop = CenterCrop3D(image_size)
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    preds, bases, gts, yaws, ids = [], [], [], [], []
    autocast = torch.device(device).type == "cuda"
    for start in tqdm(range(0, n, batch_size), desc="evaluating", disable=not progress, leave=False):
        items = [crop(dataset[i]) for i in range(start, min(n, start + batch_size))]
        images = torch.stack([it["image"] for it in items])
        A = torch.stack([it["crop_matrix"] for it in items]).double()
        pred_crop = predict_crops(cascade, images, "z", device=device, autocast=autocast).double()
        preds.append(unwarp_landmarks(pred_crop, A))
        bases.append(unwarp_landmarks(mean_shape.double().expand(len(items), -1, -1), A))
        gts.append(unwarp_landmarks(torch.stack([it["landmarks"] for it in items]).double(), A))
        yaws += [float(it["pose"][0]) for it in items]
        ids += [it.get("id", str(start + k)) for k, it in enumerate(items)]
    if not preds:
        raise ValueError("evaluation dataset is empty")
    pred, base, gt = torch.cat(preds), torch.cat(bases), torch.cat(gts)
    return {"model": summarize(pred, gt), "baseline": summarize(base, gt), "pred": pred.float(), "gt": gt.float(),
            "baseline_pred": base.float(), "yaw": torch.tensor(yaws), "ids": ids}


def format_table(rows: dict[str, dict]) -> str:
    """A table in the shape of the paper's Tables 2-3: one row per method, errors in %."""
    head = f"{'method':<24}{'GTE xy':>9}{'GTE xyz':>9}{'x':>8}{'y':>8}{'z':>8}{'CVGTCE':>9}"
    lines = [head, "-" * len(head)]
    for name, m in rows.items():
        vals = [m[k] for k in METRIC_KEYS]
        widths = (9, 9, 8, 8, 8, 9)
        lines.append(f"{name:<24}" + "".join(f"{v:>{w}.2f}" for v, w in zip(vals, widths)))
    n = next(iter(rows.values()))["num_images"] if rows else 0
    lines.append(f"(percent of the 3D interocular distance; {n} test faces)")
    return "\n".join(lines)


def evaluate_run(run_dir, data: str = "synthetic", *, device: str = "auto", max_images: int | None = None,
                 batch_size: int = 32, progress: bool = True, write: bool = True,
                 with_report: bool = True) -> dict:
    """``fa3d evaluate``: score RUN_DIR on ``data`` (see :func:`test_dataset`), with the
    mean-shape baseline; writes RUN_DIR/metrics.json. Returns {"metrics", "baseline",
    "table", "metrics_path", "report"}; metrics in percent with keys gte_xy, gte_xyz, gte_x, gte_y,
    gte_z, cvgtce, num_images."""
    dev = _device(device)
    cascade, ckpt = load_run(run_dir, dev)
    dataset = test_dataset(data, ckpt)
    res = evaluate_dataset(cascade, dataset, ckpt["mean_shape"], ckpt["preset"]["image_size"], batch_size=batch_size, max_images=max_images,
                           device=dev, progress=progress)
    model, baseline = _rounded(res["model"]), _rounded(res["baseline"])
    stages = ckpt["config"]["stages"]
    name = f"fa3d {ckpt['preset']['name']}" + ("" if ckpt.get("finished") else " (unfinished)")
    table = format_table({name: model, "mean-shape baseline": baseline})
    metrics = {**model, "baseline": baseline, "data": data, "preset": ckpt["preset"]["name"],
               "stages": list(stages), "finished": bool(ckpt.get("finished"))}
    path = Path(run_dir) / METRICS_NAME
    if write:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(metrics, indent=2) + "\n")
        tmp.replace(path)
    report = {}
    if write and with_report:
        from .report import write_report
        from .train import read_log

        kind = data.partition(":")[0].strip().lower()
        report = write_report(Path(run_dir), pred=res["pred"], gt=res["gt"], scheme=ckpt["scheme"],
                              images=dataset, yaw=res["yaw"], baseline_pred=res["baseline_pred"], ids=res["ids"],
                              data_name="aflw2000" if kind == "aflw2000" else kind, metrics=metrics,
                              log=read_log(run_dir), model_name=name)
    return {"metrics": model, "baseline": baseline, "table": table, "metrics_path": path, "report": report}


def _rounded(summary: dict) -> dict:
    """Metrics rounded to 4 decimals (the JSON and the printed table agree to the digits shown)."""
    out = {k: (round(float(summary[k]), 4) if not math.isnan(float(summary[k])) else None) for k in METRIC_KEYS}
    out["num_images"] = int(summary["num_images"])
    return out


# ----------------------------------------------------------------------------- prediction on images

HAAR_FILE = "haarcascade_frontalface_default.xml"


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


@torch.no_grad()
def predict_image(cascade: Cascade, image: torch.Tensor, bbox, image_size: int, device="cpu") -> torch.Tensor:
    """Landmarks (N, 3) in image pixels for the face in ``bbox`` (x1, y1, x2, y2) of an
    uint8 (3, H, W) image: crop as in evaluation, predict, map back (z divided by the crop scale)."""
    A = face_crop_matrix(torch.as_tensor(bbox, dtype=torch.float64), image_size)
    crop = warp_image(image, A, image_size)
    pred = predict_crops(cascade, crop[None], "z", device=device)[0].double()
    return unwarp_landmarks(pred, A).float()


def output_path(image_path, out_dir=None) -> Path:
    """Where ``fa3d predict`` writes an image's landmarks: ``<stem>.landmarks.json`` next to it (or in out_dir)."""
    image_path = Path(image_path)
    return Path(out_dir or image_path.parent) / f"{image_path.stem}.landmarks.json"


def predict_files(run_dir, images, *, bbox=None, out_dir=None, overwrite: bool = False, device: str = "auto",
                  log=print) -> dict:
    """``fa3d predict``: landmarks JSON for each image. Returns {image path: JSON path or None
    (no face found)}. An existing JSON is never replaced unless ``overwrite``."""
    from .data.readers import read_image

    dev = _device(device)
    targets = {Path(p): output_path(p, out_dir) for p in images}
    for img, out in targets.items():
        if not img.is_file():
            raise FileNotFoundError(f"image not found: {img}")
        if out.exists() and not overwrite:
            raise FileExistsError(f"{out} already exists (landmarks of {img}); pass --overwrite to replace it")
    cascade, ckpt = load_run(run_dir, dev)
    size = ckpt["preset"]["image_size"]
    results = {}
    for img, out in targets.items():
        image = read_image(img)
        boxes, source = ([tuple(map(float, bbox))], "given") if bbox is not None else (detect_faces(image), "haar")
        if not boxes:
            log(f"{img}: no face found by the Haar detector (frontal faces only); pass --bbox x1 y1 x2 y2")
            results[img] = None
            continue
        faces = [{"bbox": list(b), "bbox_source": source,
                  "landmarks": predict_image(cascade, image, b, size, dev).tolist()} for b in boxes]
        doc = {"image": str(img), "image_size": [int(image.shape[2]), int(image.shape[1])],
               "scheme": ckpt["scheme"], "run": str(run_dir),
               "units": "image pixels: x right, y down, pixel centres at integers; z in pixels, larger = closer, "
                        "zero mean per face",
               "faces": faces}
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(out)
        log(f"{img}: {len(faces)} face(s) -> {out}")
        results[img] = out
    return results
