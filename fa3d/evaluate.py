"""Evaluation (paper §3, Tables 2-3): a run scored on test faces against the mean-shape baseline.

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

import torch
from tqdm.auto import tqdm

from .data.readers import parse_spec
from .data.splits import test_dataset
from .data.transforms import CenterCrop3D, unwarp_landmarks
from .env import resolve_device
from .files import atomic_write
from .metrics import METRIC_KEYS, summarize
from .models import Cascade
from .predict import predict_crops
from .runs import load_run, read_log

METRICS_NAME = "metrics.json"


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
    """A table in the shape of the paper's Tables 2-3: one row per method, errors in %
    ("–" where a metric cannot be computed, e.g. z on 2D-only data)."""
    head = f"{'method':<24}{'GTE xy':>9}{'GTE xyz':>9}{'x':>8}{'y':>8}{'z':>8}{'CVGTCE':>9}"
    lines = [head, "-" * len(head)]
    widths = (9, 9, 8, 8, 8, 9)
    for name, m in rows.items():
        cells = ["–" if m[k] is None or math.isnan(m[k]) else f"{m[k]:.2f}" for k in METRIC_KEYS]
        lines.append(f"{name:<24}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths)))
    n = next(iter(rows.values()))["num_images"] if rows else 0
    lines.append(f"(percent of the 3D interocular distance; {n} test faces)")
    return "\n".join(lines)


def evaluate_run(run_dir, data: str = "synthetic", *, device: str = "auto", max_images: int | None = None,
                 batch_size: int = 32, progress: bool = True, write: bool = True,
                 with_report: bool = True) -> dict:
    """``fa3d evaluate``: score RUN_DIR on ``data`` (see :func:`fa3d.data.splits.test_dataset`),
    with the mean-shape baseline; writes RUN_DIR/metrics.json and the report. Returns
    {"metrics", "baseline", "table", "metrics_path", "report"}; metrics in percent with keys
    gte_xy, gte_xyz, gte_x, gte_y, gte_z, cvgtce (None where not computable), num_images."""
    dev = resolve_device(device)
    cascade, ckpt = load_run(run_dir, dev)
    dataset = test_dataset(data, ckpt)
    res = evaluate_dataset(cascade, dataset, ckpt["mean_shape"], ckpt["preset"]["image_size"], batch_size=batch_size,
                           max_images=max_images, device=dev, progress=progress)
    model, baseline = _rounded(res["model"]), _rounded(res["baseline"])
    name = f"fa3d {ckpt['preset']['name']}" + ("" if ckpt.get("finished") else " (unfinished)")
    table = format_table({name: model, "mean-shape baseline": baseline})
    metrics = {**model, "baseline": baseline, "data": data, "preset": ckpt["preset"]["name"],
               "stages": list(ckpt["config"]["stages"]), "finished": bool(ckpt.get("finished"))}
    path = Path(run_dir) / METRICS_NAME
    report = {}
    if write:
        atomic_write(path, json.dumps(metrics, indent=2) + "\n")
        if with_report:
            from .report import write_report  # matplotlib and plotly: only when a report is asked for

            report = write_report(Path(run_dir), pred=res["pred"], gt=res["gt"], scheme=ckpt["scheme"],
                                  images=dataset, yaw=res["yaw"], baseline_pred=res["baseline_pred"],
                                  ids=res["ids"], data_name=parse_spec(data)[0], metrics=metrics,
                                  log=read_log(run_dir), model_name=name)
    return {"metrics": model, "baseline": baseline, "table": table, "metrics_path": path, "report": report}


def _rounded(summary: dict) -> dict:
    """Metrics rounded to 4 decimals (the JSON and the printed table agree to the digits shown)."""
    out = {k: (round(float(summary[k]), 4) if not math.isnan(float(summary[k])) else None) for k in METRIC_KEYS}
    out["num_images"] = int(summary["num_images"])
    return out
