"""Figures: landmarks, heatmaps, training curves, error curves (matplotlib) and 3D views (plotly).

Every function returns the figure it drew and never calls ``plt.show()``: the
notebook (or the caller) decides how to display or save it. Static figures are
``matplotlib.figure.Figure`` objects (no pyplot state, safe in scripts and tests);
interactive ones are ``plotly.graph_objects.Figure``.

Axis convention everywhere (as in fa3d.data): x right, y down, z toward the
viewer, all in pixels. The 3D views look at the face from the front by default,
so a frontal face appears as it does in the image; drag to turn it.

In notebooks, call :func:`setup_notebook` once: returned matplotlib Figures then display
inline, and plotly figures use :func:`use_plotly_renderer`, so that each
figure loads plotly.js from a CDN instead of embedding its ~4.8 MB (a saved
notebook with three 3D figures then stays small). Offline, either write one
self-contained file with ``fig.write_html(path, include_plotlyjs=True)`` or call
``use_plotly_renderer(offline=True)`` (embeds plotly.js once per notebook).

Where the figures are:
  2D landmarks   draw_landmarks, show_face, face_grid, show_prediction, prediction_gallery
  heatmaps       show_heatmap, cascade_stages, stage_grid, draw_stages
  training       training_curves
  errors         image_errors, ced_figure, error_vs_yaw
  notebooks      setup_notebook, use_plotly_renderer
  3D             landmarks_3d_matplotlib, landmarks_3d_plotly, compare_3d_plotly, image_and_3d_plotly
"""
from __future__ import annotations

import base64
import io
import math

import numpy as np
import torch
from matplotlib.figure import Figure

from .data.schemes import LandmarkScheme, get_scheme
from .heatmaps import decode_heatmaps, gaussian_heatmaps, resize_points
from .metrics import auc, ced, cvgtce, gte, yaw_binned_nme

#: One colour per coarse face-part group (colour-blind friendly, Okabe-Ito).
GROUP_COLOURS = {
    "jaw": "#E69F00",
    "brows": "#56B4E9",
    "nose": "#009E73",
    "eyes": "#F0E442",
    "lips": "#D55E00",
}
#: Colours of ground truth, prediction and error segments in comparisons.
GT_COLOUR, PRED_COLOUR, ERROR_COLOUR = "#00C853", "#E040FB", "#FF1744"
#: The axis sets of the paper's Fig. 3 / Table 3, in its order, plus CVGTCE.
ERROR_AXES = ("xy", "xyz", "x", "y", "z")


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _image_hwc(image) -> np.ndarray:
    """uint8 (3, H, W) tensor or (H, W, 3) array -> (H, W, 3) array for imshow."""
    img = _numpy(image)
    return np.moveaxis(img, 0, -1) if img.ndim == 3 and img.shape[0] in (1, 3) else img


def _new_axes(ax, figsize, **kwargs):
    """(figure, axis): the given axis and its figure, or a new one-panel Figure."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot(**kwargs)


# ============================================================================ 2D landmarks

def draw_landmarks(ax, landmarks, scheme: str | LandmarkScheme, *, visible=None, colour=None,
                   marker_size: float = 12.0, line_width: float = 1.2, label: str | None = None) -> None:
    """Draw (N, 2+) landmarks on a 2D matplotlib axis, one polyline per face part.

    Occluded points (``visible`` False) are drawn hollow. ``colour`` overrides the
    per-part colours (useful for prediction vs ground truth).
    """
    scheme = get_scheme(scheme)
    lm = _numpy(landmarks)
    for part, idx in scheme.polylines():
        c = colour or GROUP_COLOURS[scheme.group_of(idx[0])]
        ax.plot(lm[list(idx), 0], lm[list(idx), 1], "-", color=c, lw=line_width, alpha=0.9)
    vis = np.ones(len(lm), bool) if visible is None else _numpy(visible).astype(bool)
    colours = [colour or GROUP_COLOURS[scheme.group_of(i)] for i in range(len(lm))]
    ax.scatter(lm[vis, 0], lm[vis, 1], s=marker_size, c=[c for c, v in zip(colours, vis) if v],
               edgecolors="black", linewidths=0.4, zorder=3, label=label)
    if (~vis).any():
        ax.scatter(lm[~vis, 0], lm[~vis, 1], s=marker_size, facecolors="none",
                   edgecolors=[c for c, v in zip(colours, vis) if not v], linewidths=0.9, zorder=3)


def show_face(item: dict, scheme: str | LandmarkScheme, *, ax=None, title: str | None = None,
              draw_bbox: bool = False) -> Figure:
    """An item's image with its landmarks drawn by face part (hollow = self-occluded)."""
    fig, ax = _new_axes(ax, (4, 4))
    ax.imshow(_image_hwc(item["image"]))
    draw_landmarks(ax, item["landmarks"], scheme, visible=item.get("visible"))
    if draw_bbox and "bbox" in item:
        x1, y1, x2, y2 = _numpy(item["bbox"]).tolist()
        ax.plot([x1, x2, x2, x1, x1], [y1, y1, y2, y2, y1], "w--", lw=0.8)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)
    return fig


def face_grid(items: list[dict], scheme: str | LandmarkScheme, *, ncols: int = 6,
              titles: list[str] | None = None, panel_size: float = 2.2) -> Figure:
    """A grid of faces with their landmarks; one panel per item."""
    nrows = (len(items) + ncols - 1) // ncols
    fig = Figure(figsize=(panel_size * ncols, panel_size * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < len(items):
            show_face(items[k], scheme, ax=ax, title=titles[k] if titles else None)
        else:
            ax.set_axis_off()
    return fig


def show_prediction(image, pred, gt, scheme: str | LandmarkScheme, *, ax=None, title: str | None = None,
                    error_segments: bool = True, zoom: bool = True, legend: bool = True) -> Figure:
    """An image with the predicted (magenta) and ground-truth (green) landmarks, (N, 2+) in
    image pixels, and a red segment from each ground-truth point to its prediction.
    ``gt=None`` draws the prediction alone, by face part. ``zoom`` frames the face."""
    fig, ax = _new_axes(ax, (4, 4))
    img = _image_hwc(image) if image is not None else None
    if img is not None:
        ax.imshow(img)
    p = _numpy(pred)
    if gt is None:
        draw_landmarks(ax, p, scheme)
    else:
        g = _numpy(gt)
        if error_segments:
            segs = np.stack([g[:, :2], p[:, :2], np.full_like(g[:, :2], np.nan)], 1).reshape(-1, 2)
            ax.plot(segs[:, 0], segs[:, 1], "-", color=ERROR_COLOUR, lw=0.9, label="error")
        draw_landmarks(ax, g, scheme, colour=GT_COLOUR, marker_size=9, line_width=0.9, label="ground truth")
        draw_landmarks(ax, p, scheme, colour=PRED_COLOUR, marker_size=9, line_width=0.9, label="prediction")
        if legend:
            ax.legend(loc="lower left", fontsize=6, framealpha=0.6, markerscale=0.8)
    pts = p if gt is None else np.concatenate([p, _numpy(gt)])
    if zoom or img is None:
        lo, hi = np.nanmin(pts[:, :2], 0), np.nanmax(pts[:, :2], 0)
        half = 0.65 * (hi - lo).max() + 1
        cx, cy = (lo + hi) / 2
        ax.set_xlim(cx - half, cx + half)
        ax.set_ylim(cy + half, cy - half)  # y down, as in the image
    ax.set_aspect("equal")
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)
    return fig


# ============================================================================ heatmaps

def show_heatmap(heatmaps, index: int | None = None, *, image=None, ax=None, title: str | None = None,
                 cmap: str = "magma", alpha: float = 0.6) -> Figure:
    """One landmark's map (``index``) or all maps summed (``index=None``) of (N, h, w) heatmaps.

    With ``image`` (3, S, S) the map is drawn over it, stretched to the image's extent
    (a map pixel i covers image pixels [i·S/h - 0.5, (i+1)·S/h - 0.5], the convention of
    :func:`fa3d.heatmaps.resize_points`), so a map at 1/4 resolution lines up with the face.
    """
    fig, ax = _new_axes(ax, (3, 3))
    maps = _numpy(heatmaps).astype(np.float32)
    m = maps[index] if index is not None else maps.sum(0)
    if image is not None:
        img = _image_hwc(image)
        H, W = img.shape[:2]
        ax.imshow(img)
        ax.imshow(m, cmap=cmap, alpha=alpha, extent=(-0.5, W - 0.5, H - 0.5, -0.5), interpolation="nearest")
    else:
        ax.imshow(m, cmap=cmap, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title if title is not None else ("Σ all maps" if index is None else f"map {index}"), fontsize=8)
    return fig


@torch.no_grad()
def cascade_stages(cascade, crop: torch.Tensor) -> dict:
    """Run a :class:`fa3d.models.Cascade` on one uint8 crop (3, S, S), keeping every stage.

    Returns numpy arrays: ``image`` (S, S, 3) uint8; ``detection`` (N, S/4, S/4) sigmoid
    part maps; ``detection_xy`` (N, 2) their peaks in crop pixels; ``regression`` (N, S, S)
    heatmaps; ``z_input`` (N, S, S) the Gaussians rendered at the regressed points that the
    Z net sees (next to the RGB image); ``landmarks`` (N, 3) x, y, z in crop pixels, z centred
    (the same numbers as ``fa3d.train.predict_crops(cascade, crop[None], "z")[0]``).
    """
    from .models import normalize_images

    device = next(cascade.parameters()).device
    was_training = cascade.training
    cascade.eval()
    x = normalize_images(crop[None].to(device))
    S = x.shape[-1]
    detection = torch.sigmoid(cascade.detection(x).float())
    regression = cascade.regression(x, detection).float()
    xy = decode_heatmaps(regression)
    z_input = gaussian_heatmaps(xy, S, cascade.heatmap_sigma)
    z = cascade.z(x, z_input).float()
    z = z - z.mean(-1, keepdim=True)
    cascade.train(was_training)
    det_xy = resize_points(decode_heatmaps(detection), detection.shape[-1], S)
    return {"image": _image_hwc(crop).copy(), "detection": _numpy(detection[0]),
            "detection_xy": _numpy(det_xy[0]), "regression": _numpy(regression[0]),
            "z_input": _numpy(z_input[0]), "landmarks": _numpy(torch.cat([xy, z[..., None]], -1)[0])}


def stage_grid(cascade, crop: torch.Tensor, scheme: str | LandmarkScheme, *, landmark: int | None = 30,
               gt=None, stages: dict | None = None, panel_size: float = 2.3) -> Figure:
    """The cascade at work on one crop: image | detection maps | regression maps | Gaussian
    input to the Z net. Row 1: all N maps summed; row 2 (unless ``landmark`` is None): the
    maps of that one landmark (30 = nose tip), with its decoded position (cyan cross) and,
    if ``gt`` (N, 3) crop pixels is given, its ground truth (green circle).
    ``stages``: the output of :func:`cascade_stages`, to skip running the cascade again.
    """
    st = stages if stages is not None else cascade_stages(cascade, crop)
    rows = 1 if landmark is None else 2
    fig = Figure(figsize=(4 * panel_size, rows * panel_size + 0.3), layout="constrained")
    draw_stages(fig.subplots(rows, 4, squeeze=False), st, scheme, landmark=landmark, gt=gt)
    return fig


def draw_stages(axes, stages: dict, scheme: str | LandmarkScheme, *, landmark: int | None = 30, gt=None) -> None:
    """Draw :func:`cascade_stages` output on a (1 or 2, 4) array of axes (see :func:`stage_grid`)."""
    scheme = get_scheme(scheme)
    st, pred = stages, stages["landmarks"]
    show_prediction(st["image"], pred, gt, scheme, ax=axes[0, 0], zoom=False, legend=False,
                    title="image + prediction" + ("" if gt is None else " (green: truth)"))
    columns = [("detection", "detection maps (sigmoid)"), ("regression", "regression heatmaps"),
               ("z_input", "Gaussian input to the Z net")]
    for col, (key, name) in enumerate(columns, start=1):
        show_heatmap(st[key], None, image=st["image"], ax=axes[0, col], title=f"{name}, Σ")
    if landmark is None or len(axes) < 2:
        return
    name = scheme.names[landmark]
    axes[1, 0].imshow(st["image"])
    axes[1, 0].plot(*pred[landmark, :2], "c+", ms=10, mew=1.5)
    axes[1, 0].set_title(f"#{landmark} {name}: z = {pred[landmark, 2]:+.1f} px", fontsize=8)
    axes[1, 0].set_axis_off()
    peaks = {"detection": st["detection_xy"][landmark], "regression": pred[landmark, :2],
             "z_input": pred[landmark, :2]}
    for col, (key, title) in enumerate(columns, start=1):
        ax = axes[1, col]
        show_heatmap(st[key], landmark, image=st["image"], ax=ax, alpha=0.75,
                     title=f"{title.split(' (')[0]}, #{landmark}")
        ax.plot(*peaks[key], "c+", ms=10, mew=1.5)
        if gt is not None:
            ax.plot(*_numpy(gt)[landmark, :2], "o", mfc="none", mec=GT_COLOUR, ms=8)


# ============================================================================ training curves

def training_curves(log: list[dict], *, title: str | None = None) -> Figure:
    """Loss, validation GTE and learning rate per epoch from a run's log
    (:func:`fa3d.train.read_log`: dicts with stage, epoch, lr, train_loss, valid_loss,
    valid_gte_xy, valid_gte_xyz). Epochs of all stages on one axis, stages shaded."""
    fig = Figure(figsize=(11, 3.2), layout="constrained")
    ax_loss, ax_gte, ax_lr = fig.subplots(1, 3)
    stages = list(dict.fromkeys(r["stage"] for r in log))
    colours = dict(zip(stages, ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]))
    x = np.arange(1, len(log) + 1)
    for stage in stages:
        idx = [i for i, r in enumerate(log) if r["stage"] == stage]
        xs, c = x[idx], colours[stage]
        ax_loss.plot(xs, [log[i].get("train_loss", np.nan) for i in idx], "o-", ms=3, color=c, label=f"{stage} train")
        ax_loss.plot(xs, [log[i].get("valid_loss", np.nan) for i in idx], "s--", ms=3, color=c, label=f"{stage} valid")
        ax_gte.plot(xs, [log[i].get("valid_gte_xy", np.nan) for i in idx], "o-", ms=3, color=c, label=f"{stage} xy")
        ax_gte.plot(xs, [log[i].get("valid_gte_xyz", np.nan) for i in idx], "s--", ms=3, color=c, label=f"{stage} xyz")
        ax_lr.plot(xs, [log[i].get("lr", np.nan) for i in idx], "o-", ms=3, color=c, label=stage)
        for ax in (ax_loss, ax_gte, ax_lr):
            ax.axvspan(xs.min() - 0.5, xs.max() + 0.5, color=c, alpha=0.06, lw=0)
    ax_loss.set(title="loss (each stage has its own)", xlabel="epoch (all stages)", yscale="log")
    ax_gte.set(title="validation GTE (%)", xlabel="epoch (all stages)")
    ax_lr.set(title="learning rate (epoch start)", xlabel="epoch (all stages)", yscale="log")
    for ax in (ax_loss, ax_gte, ax_lr):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ============================================================================ errors

def image_errors(pred, gt, eye_corners=(36, 45)) -> dict[str, np.ndarray]:
    """Per-image errors as fractions of the interocular distance: GTE on each axis set of
    ``ERROR_AXES`` and CVGTCE. pred, gt: (V, N, 3). Returns {"xy": (V,), ..., "cvgtce": (V,)}.
    100 × their means are exactly :func:`fa3d.metrics.summarize`'s numbers."""
    out = {a: _numpy(gte(pred, gt, a, eye_corners)).astype(np.float64).reshape(-1) for a in ERROR_AXES}
    out["cvgtce"] = _numpy(cvgtce(pred, gt, eye_corners)).astype(np.float64).reshape(-1)
    return out


def _errors_of(run, eye_corners) -> dict[str, np.ndarray]:
    """A run given as (pred, gt) or as an errors dict -> errors dict."""
    if isinstance(run, dict):
        return {k: np.asarray(_numpy(v), np.float64).reshape(-1) for k, v in run.items()}
    pred, gt = run
    return image_errors(pred, gt, eye_corners)


def _nice_ceiling(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is >= x."""
    if not x > 0 or not math.isfinite(x):
        return 0.1
    k = math.floor(math.log10(x))
    return next(m * 10 ** k for m in (1, 2, 2.5, 5, 10) if m * 10 ** k >= x * (1 - 1e-9))


def ced_figure(runs: dict, *, axes=ERROR_AXES, max_error: float | dict | None = None,
               eye_corners=(36, 45), panel_size: float = 3.0, title: str | None = None) -> Figure:
    """Cumulative error distributions in the style of the paper's Fig. 3: fraction of test
    images whose GTE is below a threshold, one panel per axis set (xy, xyz, x, y, z; "cvgtce"
    also allowed), every run on each panel with its AUC in the legend.

    runs: {label: (pred, gt)} with (V, N, 3) landmarks, or {label: :func:`image_errors` dict}.
    max_error: the x range (fraction, e.g. 0.1 = 10 %) and AUC limit, one number or one per
    axis set; by default 1.5 × the 95th percentile of the best run's errors on that panel,
    rounded up (the best run reaches the top; a weak baseline may not).
    AUC is the exact area under the CED on [0, max_error] divided by max_error (0..1).
    """
    errors = {label: _errors_of(run, eye_corners) for label, run in runs.items()}
    n = len(axes)
    fig = Figure(figsize=(panel_size * n, panel_size + 0.4), layout="constrained")
    panels = fig.subplots(1, n, squeeze=False)[0]
    palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]
    for k, (ax, axis) in enumerate(zip(panels, axes)):
        if isinstance(max_error, dict):
            top = max_error[axis]
        elif max_error is not None:
            top = float(max_error)
        else:
            q95 = [np.quantile(e[axis][np.isfinite(e[axis])], 0.95) for e in errors.values()
                   if np.isfinite(e[axis]).any()]
            top = _nice_ceiling(1.5 * min(q95)) if q95 else 0.1
        t = np.linspace(0, top, 201)
        for j, (label, e) in enumerate(errors.items()):
            err = e[axis][np.isfinite(e[axis])]
            if err.size == 0:
                continue
            ax.plot(100 * t, _numpy(ced(err, t)), color=palette[j % len(palette)], lw=1.6,
                    label=f"{label} (AUC {auc(err, top):.3f})")
        ax.set(xlim=(0, 100 * top), ylim=(0, 1.0), xlabel=f"GTE {axis} (%)" if axis != "cvgtce" else "CVGTCE (%)",
               title=f"{'abcdefg'[k]}) {axis}")
        if k == 0:
            ax.set_ylabel("fraction of test images")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right", title=f"AUC on [0, {100 * top:g} %]", title_fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def prediction_gallery(images, pred, gt, scheme: str | LandmarkScheme, *, errors=None, per_row: int = 4,
                       ids: list[str] | None = None, panel_size: float = 2.2, title: str | None = None) -> Figure:
    """The paper's Fig. 4 analogue: the ``per_row`` best, median and worst test faces (one row
    each) by ``errors`` (V,) (default GTE xyz), prediction (magenta) vs truth (green).

    images: V uint8 (3, H, W) images (a list, or a (V, 3, H, W) tensor), or None to draw
    the landmarks on blank panels. pred, gt: (V, N, 3) in the images' pixels.
    """
    pred_np, gt_np = _numpy(pred), _numpy(gt)
    V = len(pred_np)
    e = np.asarray(_numpy(errors if errors is not None else gte(pred, gt, "xyz")), np.float64).reshape(-1)
    order = np.argsort(np.where(np.isfinite(e), e, np.inf), kind="stable")
    k = min(per_row, V)
    mid = max(0, (V - k) // 2)
    rows = {"best": order[:k], "median": order[mid:mid + k], "worst": order[V - k:]}
    fig = Figure(figsize=(panel_size * k, panel_size * 3 + 0.3), layout="constrained")
    axes = fig.subplots(3, k, squeeze=False)
    for r, (name, idx) in enumerate(rows.items()):
        for c, i in enumerate(idx):
            i = int(i)
            label = ids[i] if ids is not None else f"#{i}"
            show_prediction(images[i] if images is not None else None, pred_np[i], gt_np[i], scheme,
                            ax=axes[r, c], legend=False, title=f"{name}: {label}\n{100 * e[i]:.2f} %")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def error_vs_yaw(errors, yaw, *, bins=((0, 30), (30, 60), (60, 90)), ylabel: str = "GTE xyz (%)",
                 title: str | None = None) -> Figure:
    """Per-image error (fractions, shown in %) against |yaw| (degrees), with the mean of each
    yaw bin (the AFLW2000-3D protocol's bins by default) drawn as a step and printed.

    errors: (V,) array, or {label: (V,)} to compare runs on the same images.
    """
    runs = errors if isinstance(errors, dict) else {"": errors}
    yaw_abs = np.abs(np.asarray(_numpy(yaw), np.float64).reshape(-1))
    fig, ax = _new_axes(None, (5.5, 3.4))
    palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00"]
    for j, (label, e) in enumerate(runs.items()):
        e = np.asarray(_numpy(e), np.float64).reshape(-1)
        c = palette[j % len(palette)]
        ax.scatter(yaw_abs, 100 * e, s=7, alpha=0.35, color=c, lw=0)
        binned = yaw_binned_nme(e, yaw_abs, bins)
        for (lo, hi), m, n in zip(binned["bins"], binned["means"], binned["counts"]):
            if n:
                ax.plot([lo, hi], [100 * m, 100 * m], "-", color=c, lw=2.5)
                ax.annotate(f"{100 * m:.2f}\n(n={n})", ((lo + hi) / 2, 100 * m), fontsize=6, ha="center",
                            va="bottom", color=c)
        ax.plot([], [], "-", color=c, lw=2.5,
                label=f"{label + ': ' if label else ''}bin means, balanced {100 * binned['balanced']:.2f} %")
    ax.set(xlabel="|yaw| (degrees)", ylabel=ylabel, xlim=(0, max(90, float(yaw_abs.max(initial=0)) + 1)))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


# ============================================================================ 3D: matplotlib

def landmarks_3d_matplotlib(landmarks, scheme: str | LandmarkScheme, *, ax=None,
                            title: str | None = None, elev: float = 15.0, azim: float = -60.0) -> Figure:
    """A static 3D view of (N, 3) landmarks with face-part lines.

    Plotted as (x, z, -y) so that matplotlib's vertical axis points up the face
    and z is depth. The depth axis is inverted so that larger z (closer to the
    camera) is nearer to the viewer: ``azim=-90, elev=0`` looks from the front,
    as the image does; ``elev``/``azim`` turn the view.
    """
    scheme = get_scheme(scheme)
    lm = _numpy(landmarks)
    if ax is None:
        fig = Figure(figsize=(4.5, 4.5))
        ax = fig.add_subplot(projection="3d")
    else:
        fig = ax.figure
    for part, idx in scheme.polylines():
        p = lm[list(idx)]
        ax.plot(p[:, 0], p[:, 2], -p[:, 1], color=GROUP_COLOURS[scheme.group_of(idx[0])], lw=1.5)
    ax.scatter(lm[:, 0], lm[:, 2], -lm[:, 1], s=8, c="black")
    ax.set_xlabel("x (px)")
    ax.set_ylabel("z (px, toward camera)")
    ax.set_zlabel("-y (px)")
    span = (lm.max(0) - lm.min(0)).max() / 2
    centre = (lm.max(0) + lm.min(0)) / 2
    ax.set_xlim(centre[0] - span, centre[0] + span)
    ax.set_ylim(centre[2] + span, centre[2] - span)  # inverted: +z toward the viewer
    ax.set_zlim(-centre[1] - span, -centre[1] + span)
    ax.view_init(elev=elev, azim=azim)
    if title:
        ax.set_title(title, fontsize=9)
    return fig


# ============================================================================ 3D: plotly

def use_plotly_renderer(offline: bool = False) -> str:
    """Make plotly figures in notebooks small: load plotly.js from a CDN (renderer
    ``notebook_connected``) instead of embedding ~4.8 MB in every figure's output.

    ``offline=True`` picks ``notebook`` instead: plotly.js is embedded once per notebook
    (works without internet; the saved notebook is ~5 MB bigger). Outside Jupyter nothing
    is changed. For files: ``fig.write_html(path, include_plotlyjs="cdn")`` (small, needs
    internet to view) or ``include_plotlyjs=True`` (one self-contained offline file).
    Returns the renderer now in use.
    """
    import plotly.io as pio

    try:
        from IPython import get_ipython
        in_kernel = get_ipython() is not None and "IPKernelApp" in get_ipython().config
    except ImportError:
        in_kernel = False
    if in_kernel:
        pio.renderers.default = "notebook" if offline else "notebook_connected"
    return pio.renderers.default


def setup_notebook(offline: bool = False) -> None:
    """Call once at the top of a notebook: returned matplotlib Figures display inline
    (a pyplot-free ``Figure`` needs the inline backend's display hook, which ipykernel only
    installs after ``%matplotlib inline``), and plotly figures load plotly.js from a CDN
    (:func:`use_plotly_renderer`). Does nothing outside Jupyter."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or "IPKernelApp" not in shell.config:
        return
    shell.run_line_magic("matplotlib", "inline")
    use_plotly_renderer(offline)


def front_scene(**overrides) -> dict:
    """A plotly ``scene`` layout in fa3d's convention, looking at the face from the front.

    x right, y down, z toward the viewer is a left-handed frame, which no rotation of a
    3D renderer's right-handed one can show: the y axis is reversed (plotly reflects a
    reversed axis), so scene-up (+y of the scene cube) is data -y, i.e. y runs down the
    screen, and the camera sits on +z looking back at the face: x right, z toward the viewer.
    """
    style = dict(showbackground=True, backgroundcolor="#eef0f4", gridcolor="white", zerolinecolor="white")
    scene = dict(xaxis=dict(title="x (px, right)", **style),
                 yaxis=dict(title="y (px, down)", autorange="reversed", **style),
                 zaxis=dict(title="z (px, toward camera)", **style), aspectmode="data",
                 camera=dict(eye=dict(x=0.0, y=0.0, z=2.0), up=dict(x=0.0, y=1.0, z=0.0),
                             center=dict(x=0.0, y=0.0, z=0.0)))
    scene.update(overrides)
    return scene


#: Layout shared by the plotly figures. The "none" template saves ~7 KB of styling per
#: figure in a saved notebook; the scene style of front_scene replaces what matters of it.
PLOTLY_LAYOUT = dict(template="none", font=dict(size=11), hoverlabel=dict(font=dict(size=11)))


def _part_lines(lm: np.ndarray, scheme: LandmarkScheme):
    """Face-part polylines of (N, 3) as one NaN-separated (M, 3) array per colour group."""
    groups: dict[str, list] = {}
    for part, idx in scheme.polylines():
        groups.setdefault(scheme.group_of(idx[0]), []).append(np.vstack([lm[list(idx)], np.full((1, 3), np.nan)]))
    return {g: np.concatenate(chunks) for g, chunks in groups.items()}


def _lines_trace(lm, scheme, colour=None, name="", width=4, scene="scene", opacity=1.0):
    import plotly.graph_objects as go

    traces = []
    for group, p in _part_lines(lm, scheme).items():
        traces.append(go.Scatter3d(x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="lines", showlegend=False,
                                   hoverinfo="skip", name=f"{name} {group}".strip(), scene=scene, opacity=opacity,
                                   line=dict(color=colour or GROUP_COLOURS[group], width=width)))
    return traces


def landmarks_3d_plotly(landmarks, scheme: str | LandmarkScheme, *, name: str = "landmarks",
                        fig=None, colour: str | None = None, errors=None, error_unit: str = "px"):
    """An interactive plotly 3D point cloud of (N, 3) landmarks with face-part lines
    (one line trace per part group, then one marker trace).

    The camera looks from the front (:func:`front_scene`): x right, y down, z toward the
    viewer, as in the image. Hover shows each landmark's index and name (and its error).
    ``errors`` (N,) colours the markers by per-landmark error, with a colour bar.
    """
    import plotly.graph_objects as go

    scheme = get_scheme(scheme)
    lm = _numpy(landmarks).astype(np.float64)
    fig = fig if fig is not None else go.Figure()
    fig.add_traces(_lines_trace(lm, scheme, colour))
    text = [f"#{i} {n}" for i, n in enumerate(scheme.names)]
    marker = dict(size=3.5, color=colour or "black")
    if errors is not None:
        err = _numpy(errors).astype(np.float64).reshape(-1)
        text = [f"{t}<br>error {e:.2f} {error_unit}" for t, e in zip(text, err)]
        marker = dict(size=4.5, color=err, colorscale="Viridis", cmin=0, showscale=True,
                      colorbar=dict(title=f"error ({error_unit})", thickness=12, len=0.6))
    fig.add_trace(go.Scatter3d(x=lm[:, 0], y=lm[:, 1], z=lm[:, 2], mode="markers", name=name, marker=marker,
                               text=text, hovertemplate="%{text}<br>x=%{x:.1f} y=%{y:.1f} z=%{z:.1f}<extra></extra>"))
    fig.update_layout(scene=front_scene(), margin=dict(l=0, r=0, t=30, b=0), height=480, **PLOTLY_LAYOUT)
    return fig


def _point_errors(pred: np.ndarray, gt: np.ndarray, eye_corners) -> tuple[np.ndarray, np.ndarray]:
    """Per-landmark 3D error in pixels and in percent of the 3D interocular distance."""
    err = np.linalg.norm(pred - gt, axis=-1)
    iod = np.linalg.norm(gt[eye_corners[0]] - gt[eye_corners[1]])
    return err, 100 * err / iod if iod > 0 else np.full_like(err, np.nan)


def _compare_traces(pred, gt, scheme, eye_corners, scene="scene", colorbar_x=None):
    """Traces for prediction vs ground truth: GT lines + points, error segments, prediction
    lines + points coloured by per-landmark error (% interocular)."""
    import plotly.graph_objects as go

    err_px, err_pct = _point_errors(pred, gt, eye_corners)
    traces = _lines_trace(gt, scheme, GT_COLOUR, "ground truth", width=3, scene=scene, opacity=0.6)
    traces.append(go.Scatter3d(
        x=gt[:, 0], y=gt[:, 1], z=gt[:, 2], mode="markers", name="ground truth", scene=scene,
        marker=dict(size=3, color=GT_COLOUR), text=[f"#{i} {n} (truth)" for i, n in enumerate(scheme.names)],
        hovertemplate="%{text}<br>x=%{x:.1f} y=%{y:.1f} z=%{z:.1f}<extra></extra>"))
    segs = np.stack([gt, pred, np.full_like(gt, np.nan)], 1).reshape(-1, 3)
    traces.append(go.Scatter3d(x=segs[:, 0], y=segs[:, 1], z=segs[:, 2], mode="lines", name="error",
                               scene=scene, hoverinfo="skip", line=dict(color=ERROR_COLOUR, width=3)))
    traces += _lines_trace(pred, scheme, PRED_COLOUR, "prediction", width=3, scene=scene, opacity=0.6)
    colorbar = dict(title="error (% IOD)", thickness=12, len=0.6)
    if colorbar_x is not None:
        colorbar["x"] = colorbar_x
    traces.append(go.Scatter3d(
        x=pred[:, 0], y=pred[:, 1], z=pred[:, 2], mode="markers", name="prediction", scene=scene,
        marker=dict(size=5, color=err_pct, colorscale="Plasma", cmin=0, showscale=True, colorbar=colorbar,
                    line=dict(color="black", width=0.5)),
        customdata=np.stack([err_px, err_pct], -1),
        text=[f"#{i} {n}" for i, n in enumerate(scheme.names)],
        hovertemplate="%{text}<br>error %{customdata[0]:.2f} px = %{customdata[1]:.2f} % IOD"
                      "<br>x=%{x:.1f} y=%{y:.1f} z=%{z:.1f}<extra>prediction</extra>"))
    return traces


def compare_3d_plotly(pred, gt, scheme: str | LandmarkScheme, *, title: str | None = None,
                      eye_corners=(36, 45), height: int = 520):
    """Prediction vs ground truth, (N, 3) each, as one interactive 3D point cloud: ground
    truth in green, prediction coloured by its per-landmark 3D error (% of the interocular
    distance), a red segment from each truth to its prediction. Hover: index, name, error."""
    import plotly.graph_objects as go

    scheme = get_scheme(scheme)
    p, g = _numpy(pred).astype(np.float64), _numpy(gt).astype(np.float64)
    fig = go.Figure(_compare_traces(p, g, scheme, eye_corners))
    fig.update_layout(scene=front_scene(), margin=dict(l=0, r=0, t=40 if title else 10, b=0), height=height,
                      title=title, legend=dict(x=0, y=1, font=dict(size=10)), **PLOTLY_LAYOUT)
    return fig


def _png_data_uri(img: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _face_window(img: np.ndarray, pts: np.ndarray, extend: float = 0.3):
    """Integer pixel window (x0, y0, x1, y1) around the points, extended and clipped to the image."""
    H, W = img.shape[:2]
    lo, hi = np.nanmin(pts[:, :2], 0), np.nanmax(pts[:, :2], 0)
    pad = extend * (hi - lo).max()
    x0, y0 = (max(0, int(np.floor(v - pad))) for v in lo)
    x1, y1 = min(W, int(np.ceil(hi[0] + pad)) + 1), min(H, int(np.ceil(hi[1] + pad)) + 1)
    return x0, y0, x1, y1


def image_and_3d_plotly(image, landmarks, scheme: str | LandmarkScheme, *, gt=None, image_plane: bool = True,
                        plane_side: int = 64, title: str | None = None, eye_corners=(36, 45), height: int = 460):
    """The image plane and the 3D points side by side, so that z is understandable.

    Left: the image (around the face) with the landmarks (x, y). Right: the same landmarks in
    3D, seen from the front like the image, in front of a grey copy of the image placed at
    the back of the face (``image_plane``; subsampled to ``plane_side`` px to stay small):
    turn it to see each point's depth. With ``gt`` (N, 3) both show prediction vs truth,
    coloured by per-landmark error. image: uint8 (3, H, W); landmarks in its pixels.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    scheme = get_scheme(scheme)
    img = _image_hwc(image)
    lm = _numpy(landmarks).astype(np.float64)
    g = None if gt is None else _numpy(gt).astype(np.float64)
    pts = lm if g is None else np.concatenate([lm, g])
    x0, y0, x1, y1 = _face_window(img, pts)
    window = np.ascontiguousarray(img[y0:y1, x0:x1, :3]).astype(np.uint8)
    fig = make_subplots(rows=1, cols=2, specs=[[{"type": "xy"}, {"type": "scene"}]], column_widths=[0.42, 0.58],
                        subplot_titles=("image (x right, y down)", "3D (z toward you; drag to turn)"),
                        horizontal_spacing=0.02)
    fig.add_trace(go.Image(source=_png_data_uri(window), x0=x0, y0=y0, dx=1, dy=1, hoverinfo="skip"), 1, 1)
    names = [f"#{i} {n}" for i, n in enumerate(scheme.names)]
    if g is not None:
        fig.add_trace(go.Scatter(x=g[:, 0], y=g[:, 1], mode="markers", marker=dict(size=5, color=GT_COLOUR),
                                 name="ground truth (2D)", text=names, showlegend=False,
                                 hovertemplate="%{text}<br>x=%{x:.1f} y=%{y:.1f}<extra>truth</extra>"), 1, 1)
    fig.add_trace(go.Scatter(x=lm[:, 0], y=lm[:, 1], mode="markers",
                             marker=dict(size=5, color=PRED_COLOUR if g is not None else "white",
                                         line=dict(color="black", width=0.5)),
                             name="landmarks (2D)", text=names, showlegend=False,
                             hovertemplate="%{text}<br>x=%{x:.1f} y=%{y:.1f}<extra></extra>"), 1, 1)
    if image_plane:
        step = max(1, int(math.ceil(max(window.shape[:2]) / plane_side)))
        sub = window[::step, ::step].astype(np.float32)
        grey = (sub @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
        xs, ys = x0 + np.arange(grey.shape[1]) * step, y0 + np.arange(grey.shape[0]) * step
        depth = pts[:, 2]
        z_back = float(np.nanmin(depth) - 0.15 * (np.nanmax(depth) - np.nanmin(depth)) - 1.0)
        fig.add_trace(go.Surface(x=xs, y=ys, z=np.full(grey.shape, z_back, np.float32), surfacecolor=grey,
                                 colorscale="gray", cmin=0, cmax=255, showscale=False, hoverinfo="skip",
                                 name="image plane", opacity=0.9, lighting=dict(ambient=1.0, diffuse=0.0,
                                                                                 specular=0.0)), 1, 2)
    if g is None:
        for tr in _lines_trace(lm, scheme):
            fig.add_trace(tr, 1, 2)
        fig.add_trace(go.Scatter3d(x=lm[:, 0], y=lm[:, 1], z=lm[:, 2], mode="markers", name="landmarks",
                                   marker=dict(size=3.5, color="black"), text=names,
                                   hovertemplate="%{text}<br>x=%{x:.1f} y=%{y:.1f} z=%{z:.1f}<extra></extra>"),
                      1, 2)
    else:
        for tr in _compare_traces(lm, g, scheme, eye_corners, colorbar_x=1.0):
            fig.add_trace(tr, 1, 2)
    fig.update_xaxes(visible=False, row=1, col=1)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", row=1, col=1)
    fig.update_layout(scene=front_scene(), height=height, margin=dict(l=0, r=0, t=50 if title else 30, b=0),
                      title=title, legend=dict(x=0.45, y=1, font=dict(size=10)), **PLOTLY_LAYOUT)
    return fig
