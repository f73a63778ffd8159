"""The evaluation report: the paper's Tables 2-3 and Fig. 3-4 for our predictions.

:func:`write_report` takes the numbers of each run, computed once by
:func:`fa3d.metrics.score` (``fa3d evaluate`` computes them for a run:
:func:`write_run_report`), and the model's predictions (for the drawn faces), and writes,
into one folder (a run's folder, next to its ``metrics.json``)::

    report.md / report.html   tables laid out like the paper's Tables 2-3, with the
                              paper's own 3DFAW numbers beside ours *for reference*
    report.json               every number in the tables (percent)
    ced.png                   cumulative error curves, the paper's Fig. 3
    gallery.jpg               best / median / worst faces, the paper's Fig. 4 analogue (JPEG: photos)
    error_by_yaw.png          error against |yaw| with the yaw-bin means
    face_3d.html              one test face in 3D, prediction vs ground truth (plotly)
    training_curves.png       loss / GTE / lr per epoch (when a training log is given)

Every number comes from :func:`fa3d.metrics.score`, never recomputed here; the only
hard-coded numbers are the published references below, always labelled as such.
"""
from __future__ import annotations

import html
import json
import math
from pathlib import Path

import numpy as np
import torch

from ..data.readers import parse_spec
from ..data.schemes import get_scheme
from ..evaluate import json_numbers
from ..metrics import PUBLISHED_AFLW2000
from ..runs import read_log
from . import viz

#: Bulat & Tzimiropoulos 2016 on **3DFAW** (their Tables 2 and 3), percent. References, not ours.
PAPER_3DFAW = {
    "test": {"paper (Bulat & Tzimiropoulos)": {"gte": 4.5623, "cvgtce": 3.4767},
             "second best in the challenge": {"gte": 5.8835, "cvgtce": 3.9700}},
    "valid": {"xy": "3.6263", "xyz": "4.9408", "x": "2.12", "y": "2.48", "z": "2.77"},
}
BASELINE_NAME = "mean-shape baseline"  #: the run name of the mean-shape baseline (write_report, report_numbers)
REPORT_FILES = {"markdown": "report.md", "html": "report.html", "json": "report.json", "ced": "ced.png",
                "gallery": "gallery.jpg", "yaw": "error_by_yaw.png", "face_3d": "face_3d.html",
                "training": "training_curves.png"}


def _fmt(v, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


# ----------------------------------------------------------------------------- numbers

def report_numbers(runs: dict[str, dict], data_name: str = "synthetic") -> dict:
    """Every number of the report, in percent: the :func:`fa3d.metrics.score` of each run (the
    first is the model, the mean-shape baseline is named :data:`BASELINE_NAME`), arranged, not recomputed.

    Returns {"data", "model", "baseline" (names or None), "num_images", "axes", "runs": {name:
    summary}, "protocol": {name: protocol} (68 points), "yaw": {name: {"gte_<axes>", "nme_bbox"}}
    and "yaw_known" (when some yaw is known), "aflw2000": {"balanced_nme", "bins", "published"}
    (data_name "aflw2000" with 68 points and yaw)}.
    """
    model, first = next(iter(runs.items()))
    out = {"data": data_name, "model": model, "baseline": BASELINE_NAME if BASELINE_NAME in runs else None,
           "num_images": first["summary"]["num_images"], "axes": first["axes"],
           "runs": {name: s["summary"] for name, s in runs.items()}}
    for key in ("protocol", "yaw"):
        if key in first:
            out[key] = {name: s[key] for name, s in runs.items()}
    if "yaw" in first:
        out["yaw_known"] = first["yaw_known"]
        if data_name.lower().startswith("aflw2000") and "protocol" in first:
            mine = out["yaw"][model]["nme_bbox"]
            out["aflw2000"] = {"balanced_nme": mine["balanced"], "bins": mine, "published": dict(PUBLISHED_AFLW2000)}
    return out


# ----------------------------------------------------------------------------- tables

def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def tables(numbers: dict) -> list[dict]:
    """The report's tables as {"title", "header", "rows", "note"} (cells are strings)."""
    runs, data, n = numbers["runs"], numbers["data"], numbers["num_images"]
    out = []
    rows = [[name, f"ours, {data} ({n} faces)", _fmt(m["gte_xyz"]), _fmt(m["cvgtce"])] for name, m in runs.items()]
    rows += [[name, "**paper's 3DFAW test set**", f"{v['gte']:.4f}", f"{v['cvgtce']:.4f}"]
             for name, v in PAPER_3DFAW["test"].items()]
    out.append({"title": "Table 2 analogue: GTE and CVGTCE (%)", "header": ["method", "data", "GTE (%)", "CVGTCE (%)"],
                "rows": rows,
                "note": "GTE here is on (x, y, z). The last two rows are the numbers published in the paper "
                        "(3DFAW test set, scored by the challenge organisers), shown for reference: they are not ours "
                        "and not on the same data."})
    names = list(runs)
    header = ["axes"] + [f"{name} ({data})" for name in names] + ["paper, 3DFAW validation (reference)"]
    rows = [[axis] + [_fmt(runs[name][f"gte_{axis}"]) for name in names] + [PAPER_3DFAW["valid"][axis]]
            for axis in viz.ERROR_AXES]
    out.append({"title": "Table 3 analogue: GTE (%) by axes", "header": header, "rows": rows,
                "note": "Errors normalised by the 3D interocular distance (outer eye corners 36, 45). The last column "
                        "is the paper's Table 3 (3DFAW validation set, model trained on the training set only)."})
    if "yaw" in numbers:
        axes = numbers.get("axes", "xyz")
        for key, label in ((f"gte_{axes}", f"GTE {axes} (%)"), ("nme_bbox", "NME, 2D / sqrt(w·h) of the box (%)")):
            first = next(iter(numbers["yaw"].values()))[key]
            bins = [f"{'[' if i == 0 else '('}{lo}, {hi}] (n={c})"
                    for i, ((lo, hi), c) in enumerate(zip(first["bins"], first["counts"]))]
            rows = [[name] + [_fmt(m) for m in y[key]["means"]] + [_fmt(y[key]["balanced"]), _fmt(y[key]["mean"])]
                    for name, y in numbers["yaw"].items()]
            note = "|yaw| bins in degrees; balanced = mean of the bin means; all = mean over all faces."
            if key == "nme_bbox" and "aflw2000" in numbers:
                rows += [[f"{name} (published)", "", "", "", f"{v:.2f}", ""] for name, v in PUBLISHED_AFLW2000.items()]
                note += (" AFLW2000-3D protocol (68 points, 2D NME normalised by sqrt(w·h) of the ground-truth box); the "
                         "published rows are from the literature (fa3d.metrics.PUBLISHED_AFLW2000 names the papers), not computed here.")
            out.append({"title": f"Error by yaw bin: {label}", "header": ["method"] + bins + ["balanced", "all"],
                        "rows": rows, "note": note})
    elif "protocol" in numbers:
        rows = [[name, _fmt(m["nme"]), str(m["num_images"])] for name, m in numbers["protocol"].items()]
        out.append({"title": "AFLW2000-3D protocol: NME (%)", "header": ["method", "NME, all faces", "faces"],
                    "rows": rows, "note": "68 points, 2D error normalised by sqrt(w·h) of the ground-truth box. "
                                          "No face has a known yaw, so there are no yaw bins and no balanced mean."})
    return out


def markdown_report(numbers: dict, figures: dict[str, str], title: str, notes: list[str]) -> str:
    parts = [f"# {title}", ""]
    parts += [f"> {line}" for line in notes] + [""]
    for t in tables(numbers):
        parts += [f"## {t['title']}", "", _md_table(t["header"], t["rows"]), "", f"*{t['note']}*", ""]
    for key, caption in _CAPTIONS.items():
        if key in figures:
            link = f"[{figures[key]}]({figures[key]})" if figures[key].endswith(".html") else f"![{caption}]({figures[key]})"
            parts += [f"## {caption}", "", link, ""]
    return "\n".join(parts)


_CAPTIONS = {"ced": "Cumulative error curves (the paper's Fig. 3)",
             "gallery": "Best, median and worst faces (the paper's Fig. 4 analogue)",
             "yaw": "Error against yaw", "training": "Training curves",
             "face_3d": "One test face in 3D (interactive; drag to turn)"}

_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.25em .6em}"
        "td:not(:first-child){text-align:right}th{background:#f3f3f3}img{max-width:100%}"
        ".note{color:#555;font-size:.9em}.ref{color:#7a4b00}blockquote{color:#555}"
        "iframe{width:100%;height:560px;border:1px solid #ccc}")


def html_report(numbers: dict, figures: dict[str, str], title: str, notes: list[str]) -> str:
    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>"] + [f"<blockquote>{esc(line)}</blockquote>" for line in notes]
    for t in tables(numbers):
        head = "".join(f"<th>{esc(h)}</th>" for h in t["header"])
        rows = []
        for r in t["rows"]:
            cls = ' class="ref"' if any("paper" in c or "published" in c for c in r) else ""
            rows.append(f"<tr{cls}>" + "".join(f"<td>{esc(c.replace('**', ''))}</td>" for c in r) + "</tr>")
        body += [f"<h2>{esc(t['title'])}</h2>", f"<table><tr>{head}</tr>{''.join(rows)}</table>",
                 f"<p class='note'>{esc(t['note'])}</p>"]
    for key, caption in _CAPTIONS.items():
        if key in figures:
            src = esc(figures[key])
            tag = f"<iframe src='{src}'></iframe><p><a href='{src}'>open {src}</a></p>" if src.endswith(".html") \
                else f"<img src='{src}' alt='{esc(caption)}'>"
            body += [f"<h2>{esc(caption)}</h2>", tag]
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


# ----------------------------------------------------------------------------- the report

def _image(images, i: int):
    if images is None:
        return None
    item = images[i]
    return item["image"] if isinstance(item, dict) else item


def write_report(out_dir, runs: dict[str, dict], *, pred, gt, scheme, images=None, yaw=None, ids=None,
                 data_name: str = "synthetic", log: list[dict] | None = None, title: str | None = None,
                 per_row: int = 4) -> dict[str, Path]:
    """Write the evaluation report into ``out_dir`` (created if needed). Returns {kind: path}
    for the files in :data:`REPORT_FILES` that were written.

    runs: {name: :func:`fa3d.metrics.score`} on the same faces: the model first, then the mean-shape
    baseline (named :data:`BASELINE_NAME`) and any others (e.g. stages), the tables' rows and curves.
    pred, gt: (V, N, 3) the model's landmarks and the ground truth in image pixels (x, y, z; as
    ``evaluate_dataset`` returns them), for the faces drawn.
    scheme: "68" or "3dfaw66". images: anything indexable by image index giving an uint8
    (3, H, W) image (a list, a tensor, or a dataset whose items are dicts); only the few
    drawn faces are read. yaw: (V,) degrees (NaN = unknown), for the error-by-yaw figure.
    log: :func:`fa3d.runs.read_log` records for the training curves. ``data_name="aflw2000"``
    (68 points, yaw given) adds the yaw-binned balanced NME next to published numbers.
    face_3d.html works offline: it loads the plotly.min.js written beside it (~4.8 MB).
    """
    out = _ReportFolder(out_dir)
    scheme = get_scheme(scheme)
    pred_t, gt_t = _checked_landmarks(pred, gt, scheme)
    numbers = report_numbers(runs, data_name)
    model, axes = numbers["model"], numbers["axes"]
    notes = [f"Our numbers: {numbers['num_images']} {data_name} test faces, computed by fa3d.metrics from the "
             "predictions. Rows and columns marked paper / published are other people's numbers on other data, "
             "for reference only."]

    errors = {name: s["errors"] for name, s in runs.items()}
    model_err = errors[model][axes].double().numpy()
    order = np.argsort(np.where(np.isfinite(model_err), model_err, np.inf), kind="stable")  # best first
    panels = viz.ERROR_AXES if axes == "xyz" else tuple(a for a in viz.ERROR_AXES if "z" not in a)
    out.save("ced", viz.ced_figure(errors, axes=panels, title=f"GTE vs fraction of {data_name} test images"))
    out.save("gallery", _gallery_figure(images, pred_t, gt_t, scheme, model_err, order, per_row=per_row, ids=ids,
                                        axes=axes))
    if "yaw" in numbers and yaw is not None:
        out.save("yaw", viz.error_vs_yaw(runs, yaw, title=f"GTE {axes} against |yaw| "
                                                          f"({numbers['yaw_known']} faces with known yaw)"))
    if log:
        out.save("training", viz.training_curves(log))
    median = int(order[(len(model_err) - 1) // 2])
    _write_face_3d(out, images, pred_t, gt_t, scheme, median, model_err, ids=ids, axes=axes)

    _write_text_files(out, numbers, title or f"fa3d evaluation report: {model} on {data_name}", notes)
    return out.paths


def write_run_report(result: dict) -> dict[str, Path]:
    """The report of :func:`fa3d.evaluate.evaluate_run`'s ``result`` beside its metrics.json: the model
    and the mean-shape baseline on the run's test faces, and the run's training curves."""
    ev = result["evaluation"]
    return write_report(result["metrics_path"].parent, {result["name"]: ev["model"], BASELINE_NAME: ev["baseline"]},
                        pred=ev["pred"], gt=ev["gt"], scheme=result["scheme"], images=result["dataset"],
                        yaw=ev["yaw"], ids=ev["ids"], data_name=parse_spec(result["data"])[0],
                        log=read_log(result["run_dir"]))


class _ReportFolder:
    """The report's folder: paths = {kind: path} of the files written so far, figures =
    {kind: file name} of the figures among them (what the markdown and HTML pages link)."""

    def __init__(self, out_dir):
        self.dir = Path(out_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.paths: dict[str, Path] = {}
        self.figures: dict[str, str] = {}

    def path(self, key: str) -> Path:
        return self.dir / REPORT_FILES[key]

    def save(self, key: str, fig) -> None:
        """Save a matplotlib figure as the report's ``key`` file (JPEG quality 88 for .jpg)."""
        path = self.path(key)
        jpeg = {"pil_kwargs": {"quality": 88}} if path.suffix == ".jpg" else {}
        fig.savefig(path, dpi=110, bbox_inches="tight", **jpeg)
        self.paths[key], self.figures[key] = path, path.name


def _checked_landmarks(pred, gt, scheme) -> tuple[torch.Tensor, torch.Tensor]:
    """pred and gt as float64 tensors, after checking they are both (V, N, 3) with the scheme's N."""
    pred_t, gt_t = (torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).detach().cpu().double()
                    for x in (pred, gt))
    if pred_t.shape != gt_t.shape or pred_t.dim() != 3:
        raise ValueError(f"pred and gt must both be (V, N, 3); got {tuple(pred_t.shape)} and {tuple(gt_t.shape)}")
    if pred_t.shape[1] != scheme.num_points:
        raise ValueError(f"landmarks have {pred_t.shape[1]} points but scheme {scheme.name!r} has {scheme.num_points}")
    return pred_t, gt_t


def _gallery_figure(images, pred, gt, scheme, model_err: np.ndarray, order: np.ndarray, *, per_row: int, ids,
                    axes: str = "xyz"):
    """The best, median and worst ``per_row`` faces by GTE on ``axes`` (order: image indices, best first);
    only their images are read."""
    V = len(model_err)
    k = min(per_row, V)
    shown = set(order[:k]) | set(order[max(0, (V - k) // 2):max(0, (V - k) // 2) + k]) | set(order[V - k:])
    gallery_images = None if images is None else {int(i): _image(images, int(i)) for i in shown}
    return viz.prediction_gallery(gallery_images, pred, gt, scheme, errors=model_err, per_row=per_row,
                                  ids=list(ids) if ids is not None else None,
                                  title=f"best / median / worst by GTE {axes} (magenta: ours, green: truth)")


def _write_face_3d(out: _ReportFolder, images, pred, gt, scheme, face: int, model_err: np.ndarray, *, ids,
                   axes: str = "xyz") -> None:
    """face_3d.html: test face ``face`` in 3D, prediction vs ground truth, beside its image when there is one."""
    face_title = f"test face {ids[face] if ids is not None else face} (median GTE {axes} {100 * model_err[face]:.2f} %)"
    image = _image(images, face)
    fig3d = (viz.image_and_3d_plotly(image, pred[face], scheme, gt=gt[face], title=face_title)
             if image is not None else viz.compare_3d_plotly(pred[face], gt[face], scheme, title=face_title))
    path = out.path("face_3d")
    out.paths["face_3d"] = path
    viz.write_offline_html(fig3d, path)
    out.figures["face_3d"] = path.name


def _write_text_files(out: _ReportFolder, numbers: dict, title: str, notes: list[str]) -> None:
    """report.md and report.html (linking the figures written so far), and report.json."""
    for key, writer in (("markdown", markdown_report), ("html", html_report)):
        out.paths[key] = out.path(key)
        out.paths[key].write_text(writer(numbers, out.figures, title, notes))
    out.paths["json"] = out.path("json")
    out.paths["json"].write_text(json.dumps(json_numbers(numbers, digits=None), indent=2) + "\n")
