"""Evaluation (paper §3, Tables 2-3): a run scored on test faces against the mean-shape baseline.

Protocol: every test face is cropped around its ground-truth box exactly as in
training (:class:`~fa3d.data.transforms.CenterCrop3D`), the cascade predicts
(x, y, z) in crop pixels, the prediction is mapped back to the original image
(z divided by the crop's scale) and compared with the ground truth there with
GTE and CVGTCE (fa3d.metrics; percent, normalised by the 3D interocular distance).
Every number is computed once, here (:func:`fa3d.metrics.score`): metrics.json and the
report (:mod:`fa3d.course.report`, written by the callers that want one) read them.

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
from .data.splits import default_scheme, test_dataset
from .data.transforms import face_box, face_crop_matrix, unwarp_landmarks
from .env import resolve_device
from .files import atomic_write
from .metrics import METRIC_KEYS, PUBLISHED_300W, PUBLISHED_AFLW2000, score
from .models import Cascade
from .precision import choose_precision
from .predict import predict_faces
from .runs import is_pretrained, load_run, resolve_run

METRICS_NAME = "metrics.json"


@torch.no_grad()
def evaluate_dataset(cascade: Cascade, dataset, mean_shape: torch.Tensor, image_size: int, *, batch_size: int = 32,
                     max_images: int | None = None, device="cpu", progress: bool = True, flip: bool = False,
                     scales=(1.0,)) -> dict:
    """Score the cascade and the mean-shape baseline on ``dataset`` (items with ground truth).

    ``image_size``: the preset's crop side. Returns {"model": score, "baseline": score,
    "pred": (V,N,3), "gt": (V,N,3), "baseline_pred": (V,N,3), "yaw": (V,) degrees, "ids"}: every
    number of each, computed once, by :func:`fa3d.metrics.score` (per-face errors, the summary in
    percent, the yaw bins, with 68 points the AFLW2000-3D and 300-W protocols); landmarks in image pixels. Test-time
    augmentation, off by default as in the paper's tables: ``flip`` (mirroring) and ``scales`` (crop
    scales, e.g. :data:`fa3d.predict.MULTI_SCALE`), see :func:`fa3d.predict.predict_faces`.
    The crop is the evaluation crop of :class:`~fa3d.data.transforms.CenterCrop3D`, around each face's
    ground-truth landmark box (:func:`~fa3d.data.transforms.face_box`).
    """
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    preds, bases, gts, yaws, ids = [], [], [], [], []
    precision = choose_precision("auto", device)[0]
    for start in tqdm(range(0, n, batch_size), desc="evaluating", disable=not progress, leave=False):
        items = [dataset[i] for i in range(start, min(n, start + batch_size))]
        boxes = [face_box(it) for it in items]
        preds.append(predict_faces(cascade, [it["image"] for it in items], boxes, image_size, scales=scales,
                                   flip=flip, device=device, precision=precision))
        A = torch.stack([face_crop_matrix(box, image_size) for box in boxes])
        bases.append(unwarp_landmarks(mean_shape.double().expand(len(items), -1, -1), A))
        gts.append(torch.stack([it["landmarks"] for it in items]).double())
        yaws += [float(it["pose"][0]) for it in items]
        ids += [it.get("id", str(start + k)) for k, it in enumerate(items)]
    if not preds:
        raise ValueError("evaluation dataset is empty")
    pred, base, gt, yaw = torch.cat(preds), torch.cat(bases), torch.cat(gts), torch.tensor(yaws)
    return {"model": score(pred, gt, yaw, ids=ids), "baseline": score(base, gt, yaw, ids=ids), "pred": pred.float(),
            "gt": gt.float(),
            "baseline_pred": base.float(), "yaw": yaw, "ids": ids}


def _cell(v) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.2f}"


def format_table(rows: dict[str, dict]) -> str:
    """A table in the shape of the paper's Tables 2-3: one row per method, errors in %
    ("n/a" where a metric cannot be computed: z and CVGTCE on 2D-only data)."""
    head = f"{'method':<24}{'GTE xy':>9}{'GTE xyz':>9}{'x':>8}{'y':>8}{'z':>8}{'CVGTCE':>9}"
    lines = [head, "-" * len(head)]
    widths = (9, 9, 8, 8, 8, 9)
    for name, m in rows.items():
        lines.append(f"{name:<24}" + "".join(f"{_cell(m[k]):>{w}}" for k, w in zip(METRIC_KEYS, widths)))
    first = next(iter(rows.values()), {"num_images": 0, "gte_z": None})
    three_d = first["gte_z"] is not None and not math.isnan(first["gte_z"])
    lines.append(f"(percent of the {'3D' if three_d else '2D'} interocular distance; {first['num_images']} test faces"
                 + ("" if three_d else "; the data has no z") + ")")
    return "\n".join(lines)


def format_protocol_table(rows: dict[str, dict], published: dict[str, float] | None = None) -> str:
    """The AFLW2000-3D protocol table: NME (%, 2D error / sqrt(w h) of the ground-truth box, 68 points)
    per |yaw| bin, their balanced mean and the mean over all faces; ``rows``: {name:
    :func:`fa3d.metrics.score`'s "protocol"}. ``published``: {method: balanced NME} shown below, as theirs."""
    first = next(iter(rows.values()))
    bins = [f"{'[' if i == 0 else '('}{lo},{hi}]" for i, (lo, hi) in enumerate(first["bins"])]
    head = f"{'method':<32}" + "".join(f"{b:>9}" for b in bins) + f"{'balanced':>10}{'all':>8}"
    lines = ["AFLW2000-3D protocol: NME in % of sqrt(w*h) of the ground-truth box (68 points)", head, "-" * len(head)]
    for name, m in rows.items():
        lines.append(f"{name:<32}" + "".join(f"{_cell(v):>9}" for v in m["means"])
                     + f"{_cell(m['balanced']):>10}{_cell(m['nme']):>8}")
    for name, value in (published or {}).items():
        lines.append(f"{name + ' (published)':<32}" + " " * 9 * len(bins) + f"{value:>10.2f}")
    counts = ", ".join(f"{b} {c}" for b, c in zip(bins, first["counts"]))
    lines.append(f"(faces per |yaw| bin: {counts}; {first['num_images'] - first['yaw_known']} of "
                 f"{first['num_images']} without a known yaw count in 'all' only"
                 + ("; published rows are other authors' numbers on the full AFLW2000-3D" if published else "") + ")")
    return "\n".join(lines)


def format_w300_table(rows: dict[str, dict], published: dict[str, dict] | None = None) -> str:
    """The 300-W table: per group of faces (:func:`fa3d.metrics.w300_groups`) and method, NME (% of the 2D
    outer-eye-corner distance), failure rate (% of faces above 10 %) and AUC up to 8 %. ``rows``: {method:
    score's "w300"}; ``published``: {method: {group: NME}}, shown below as others' numbers."""
    head = f"{'faces':<16}{'method':<32}{'NME':>8}{'failures':>10}{'AUC 8%':>8}{'faces':>7}"
    lines = ["300-W protocol: NME in % of the outer-eye-corner distance (2D, 68 points)", head, "-" * len(head)]
    for group in next(iter(rows.values())):
        for name, w300 in rows.items():
            m = w300[group]
            lines.append(f"{group:<16}{name:<32}{_cell(m['nme']):>8}{_cell(m['failure_rate']):>10}"
                         f"{m['auc']:>8.3f}{m['num_images']:>7}")
        for name, by_group in (published or {}).items():
            if group in by_group:
                lines.append(f"{group:<16}{name + ' (published)':<32}{by_group[group]:>8.2f}")
    return "\n".join(lines)


def format_regions(rows: dict[str, dict]) -> str:
    """Where the error lies: per method, the NME of each group of points (:func:`fa3d.metrics.region_errors`)."""
    groups = list(next(iter(rows.values())))
    head = f"{'by region (all faces)':<48}" + "".join(f"{g:>8}" for g in groups)
    return "\n".join([head] + [f"{name:<48}" + "".join(f"{_cell(m[g]):>8}" for g in groups) for name, m in rows.items()])


def evaluate_run(run_dir, data: str = "synthetic", *, device: str = "auto", max_images: int | None = None,
                 batch_size: int = 32, progress: bool = True, write: bool = True,
                 bases=None, out_dir=None, flip: bool = False, scales=(1.0,), split: str | None = None) -> dict:
    """``fa3d evaluate``: score RUN_DIR (or ``"pretrained"``, the shipped model) on ``data`` (see
    :func:`fa3d.data.splits.test_dataset`), with the mean-shape baseline; writes metrics.json into
    ``out_dir`` (default RUN_DIR; the shipped model needs one). Returns {"metrics", "baseline",
    "table", "metrics_path", "name" (the model's row), "evaluation" (:func:`evaluate_dataset`'s
    result), "dataset", "data", "run_dir", "scheme"}: what :func:`fa3d.course.report.write_run_report`
    needs for the report; metrics in percent with keys gte_xy, gte_xyz, gte_x, gte_y, gte_z, cvgtce
    (None where not computable), num_images; with 68 points also the AFLW2000-3D protocol
    (metrics.json "protocol"). ``bases``: 3DMM bases for 300W-LP.
    ``flip``, ``scales``: test-time augmentation, see :func:`evaluate_dataset`. ``split``: which part of
    data split by photo to score ("validation", "locked", "test", "all"; see :func:`fa3d.data.splits.test_dataset`:
    faces from photos the run trained on are never scored)."""
    dev = resolve_device(device)
    if write and out_dir is None and is_pretrained(run_dir):
        raise ValueError("the shipped model's folder is part of fa3d: pass an output folder for its metrics "
                         "(fa3d evaluate --run pretrained --out DIR)")
    run_dir = resolve_run(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir
    run = load_run(run_dir, dev)
    dataset = test_dataset(data, run.checkpoint, bases, split)
    res = evaluate_dataset(run.cascade, dataset, run.mean_shape, run.image_size, batch_size=batch_size,
                           max_images=max_images, device=dev, progress=progress, flip=flip, scales=scales)
    model, baseline = json_numbers(res["model"]["summary"]), json_numbers(res["baseline"]["summary"])
    scales = [float(x) for x in scales]
    name = (f"fa3d {run.preset.name}" + (" + flip" if flip else "")
            + (f" + {len(scales)} scales" if scales != [1.0] else "") + ("" if run.finished else " (unfinished)"))
    table = format_table({name: model, "mean-shape baseline": baseline})
    metrics = {**model, "baseline": baseline, "data": data, "split": split, "preset": run.preset.name,
               "stages": list(run.config.stages), "finished": run.finished, "flip": flip, "scales": scales}
    if "protocol" in res["model"] and not (parse_spec(data)[0] == "300w" and not res["model"]["yaw_known"]):
        published = PUBLISHED_AFLW2000 if parse_spec(data)[0] == "aflw2000" else None
        protocol = {k: json_numbers(res[k]["protocol"]) for k in ("model", "baseline")}
        table += "\n\n" + format_protocol_table({name: protocol["model"], "mean-shape baseline": protocol["baseline"]},
                                                published)
        metrics["protocol"] = protocol
    if "w300" in res["model"] and parse_spec(data)[0] in ("folder", "300w"):   # 2D .pts faces: 300-W's own protocol
        rows = {name: res["model"]["w300"], "mean-shape baseline": res["baseline"]["w300"]}
        table += "\n\n" + format_w300_table(rows, PUBLISHED_300W)
        table += "\n" + format_regions({name: res["model"]["regions"], "mean-shape baseline": res["baseline"]["regions"]})
        metrics["w300"] = {k: json_numbers(res[k]["w300"]) for k in ("model", "baseline")}
        metrics["regions"] = {k: json_numbers(res[k]["regions"]) for k in ("model", "baseline")}
    if "protocol" not in res["model"] and default_scheme(data) == "68":  # the files hold 68 points, the model fewer
        table += (f"\n(no AFLW2000-3D protocol table: the model predicts {run.preset.num_landmarks} points "
                  "and the protocol needs 68; train with --scheme 68)")
    path = out_dir / METRICS_NAME
    if write:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(metrics, indent=2) + "\n")
    return {"metrics": model, "baseline": baseline, "table": table, "metrics_path": path, "name": name,
            "evaluation": res, "dataset": dataset, "data": data, "run_dir": run_dir, "scheme": run.scheme}


def json_numbers(numbers, digits: int | None = 4):
    """A (nested) dict or list of numbers for JSON: NaN -> None (JSON has no NaN), floats rounded to ``digits``
    decimals (None: kept), so that metrics.json and the printed tables agree to the digits shown."""
    if isinstance(numbers, dict):
        return {k: json_numbers(v, digits) for k, v in numbers.items()}
    if isinstance(numbers, (list, tuple)):
        return [json_numbers(v, digits) for v in numbers]
    if not isinstance(numbers, float):
        return numbers
    return None if math.isnan(numbers) else numbers if digits is None else round(numbers, digits)
