"""Matplotlib figures of fa3d: 2D landmarks, heatmaps and cascade stages, training curves, errors, a static 3D view.

Every function returns the ``matplotlib.figure.Figure`` it drew and never calls
``plt.show()``: the notebook (or the caller) decides how to display or save it. The
figures use no pyplot state, so they are safe in scripts and tests.

Axis convention everywhere (as in fa3d.data): x right, y down, z toward the
viewer, all in pixels.

The small helpers shared with the plotly views (:mod:`fa3d.course.viz.plotly3d`) live here:
``_numpy``, ``_image_hwc`` and the colours.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from ...data.schemes import LandmarkScheme, get_scheme
from ...metrics import ERROR_AXES, auc, ced, face_errors, gte
from ...models.zregressor import ZRegressor


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
                    error_segments: bool = True, zoom: bool = True, legend: bool = True,
                    marker_size: float = 9, line_width: float = 0.9) -> Figure:
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
            ax.plot(segs[:, 0], segs[:, 1], "-", color=ERROR_COLOUR, lw=line_width, label="error")
        draw_landmarks(ax, g, scheme, colour=GT_COLOUR, marker_size=marker_size, line_width=line_width,
                       label="ground truth")
        draw_landmarks(ax, p, scheme, colour=PRED_COLOUR, marker_size=marker_size, line_width=line_width,
                       label="prediction")
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


def cascade_stages(cascade, crop: torch.Tensor) -> dict:
    """``cascade(crop[None])`` kept as numpy: one uint8 crop (3, S, S) through a
    :class:`fa3d.models.Cascade` (in eval mode, no gradients), every stage of its one forward.

    Returns numpy arrays: ``image`` (S, S, 3) uint8; ``detection`` (N, S/4, S/4) sigmoid
    part maps; ``detection_xy`` (N, 2) their peaks in crop pixels; ``regression`` (N, S, S)
    heatmaps; ``z_input`` (N, S, S) the Gaussians rendered at the regressed points that the
    Z net sees (next to the RGB image); ``landmarks`` (N, 3) x, y, z in crop pixels, z centred
    (the same numbers as ``fa3d.predict.predict_crops(cascade, crop[None], "z")[0]``).
    """
    device = next(cascade.parameters()).device
    was_training = cascade.training
    cascade.eval()
    try:
        with torch.no_grad():
            out = cascade(crop[None].to(device))
    finally:
        cascade.train(was_training)

    def first(key: str) -> np.ndarray:
        return _numpy(out[key][0].float())

    return {"image": _image_hwc(crop).copy(), "detection": first("detection_maps"),
            "detection_xy": first("detection_xy"), "regression": first("heatmaps"),
            "z_input": first("z_input"), "landmarks": first("landmarks")}


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
    (:func:`fa3d.runs.read_log`: dicts with stage, epoch, lr, train_loss, valid_loss,
    valid_gte_xy, valid_gte_xyz). Epochs of all stages on one axis, stages shaded. GTE xyz is drawn for
    the Z stage only: the 2D stages predict no depth."""
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
        if stage == "z":    # only the Z stage predicts depth: a 2D stage's xyz error is its z = 0 guess
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

def image_errors(pred, gt) -> dict[str, np.ndarray]:
    """:func:`fa3d.metrics.face_errors` as float64 numpy arrays: per-image GTE on each axis set of
    ``ERROR_AXES``, "cvgtce" and "nme_bbox", fractions. pred, gt: (V, N, 3). Returns {"xy": (V,), ...}."""
    return {k: np.asarray(_numpy(e), np.float64).reshape(-1) for k, e in face_errors(pred, gt).items()}


def _errors_of(run) -> dict[str, np.ndarray]:
    """A run given as (pred, gt) or as an errors dict -> errors dict of numpy arrays."""
    if isinstance(run, dict):
        return {k: np.asarray(_numpy(v), np.float64).reshape(-1) for k, v in run.items()}
    return image_errors(*run)


def _nice_ceiling(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is >= x."""
    if not x > 0 or not math.isfinite(x):
        return 0.1
    k = math.floor(math.log10(x))
    return next(m * 10 ** k for m in (1, 2, 2.5, 5, 10) if m * 10 ** k >= x * (1 - 1e-9))


def ced_figure(runs: dict, *, axes=ERROR_AXES, max_error: float | dict | None = None,
               panel_size: float = 3.0, title: str | None = None) -> Figure:
    """Cumulative error distributions in the style of the paper's Fig. 3: fraction of test
    images whose GTE is below a threshold, one panel per axis set (xy, xyz, x, y, z; "cvgtce"
    also allowed), every run on each panel with its AUC in the legend.

    runs: {label: (pred, gt)} with (V, N, 3) landmarks, or {label: per-image errors} (the "errors" of
    :func:`fa3d.metrics.score`, or :func:`image_errors`).
    max_error: the x range (fraction, e.g. 0.1 = 10 %) and AUC limit, one number or one per
    axis set; by default 1.5 × the 95th percentile of the best run's errors on that panel,
    rounded up (the best run reaches the top; a weak baseline may not).
    AUC is the exact area under the CED on [0, max_error] divided by max_error (0..1).
    """
    errors = {label: _errors_of(run) for label, run in runs.items()}
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
                       ids: list[str] | None = None, panel_size: float = 3.0, title: str | None = None) -> Figure:
    """The paper's Fig. 4 analogue: the ``per_row`` best, median and worst test faces (one row
    each) by ``errors`` (V,) (default GTE xyz), prediction (magenta) vs truth (green).

    images: V uint8 (3, H, W) images (a list, or a (V, 3, H, W) tensor), or None to draw
    the landmarks on blank panels. pred, gt: (V, N, 3) in the images' pixels.
    """
    pred_np, gt_np = _numpy(pred), _numpy(gt)
    V = len(pred_np)
    e = np.asarray(_numpy(errors if errors is not None else gte(pred, gt, "xyz", scheme)), np.float64).reshape(-1)
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
            # small markers, thin lines: 2N points on a small crop stay apart
            show_prediction(images[i] if images is not None else None, pred_np[i], gt_np[i], scheme,
                            ax=axes[r, c], legend=r == c == 0, marker_size=4, line_width=0.6,
                            title=f"{name}: {label}\n{100 * e[i]:.2f} %")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def error_vs_yaw(runs: dict[str, dict], yaw, *, title: str | None = None) -> Figure:
    """Per-image GTE (%) against |yaw| (degrees) of each run, with the mean of each yaw bin (the
    AFLW2000-3D protocol's) drawn as a step and printed.

    runs: {label: :func:`fa3d.metrics.score`} on the same faces, scored with their yaw: the plot draws
    its per-image errors and its yaw-bin means, on its "axes". yaw: (V,) degrees; NaN (unknown) faces are left out.
    """
    yaw_abs = np.abs(np.asarray(_numpy(yaw), np.float64).reshape(-1))
    known = np.isfinite(yaw_abs)
    fig, ax = _new_axes(None, (5.5, 3.4))
    palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00"]
    for j, (label, run) in enumerate(runs.items()):
        axes, c = run["axes"], palette[j % len(palette)]
        e = np.asarray(_numpy(run["errors"][axes]), np.float64).reshape(-1)
        ax.scatter(yaw_abs[known], 100 * e[known], s=7, alpha=0.35, color=c, lw=0)
        binned = run["yaw"][f"gte_{axes}"]
        for (lo, hi), m, n in zip(binned["bins"], binned["means"], binned["counts"]):
            if n:
                ax.plot([lo, hi], [m, m], "-", color=c, lw=2.5)
                ax.annotate(f"{m:.2f}\n(n={n})", ((lo + hi) / 2, m), fontsize=6, ha="center", va="bottom", color=c)
        ax.plot([], [], "-", color=c, lw=2.5, label=f"{label}: bin means, balanced {binned['balanced']:.2f} %")
    ax.set(xlabel="|yaw| (degrees)", ylabel=f"GTE {axes} (%)",
           xlim=(0, max(90, float(yaw_abs[known].max(initial=0)) + 1)))
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



# ============================================================================ networks

def z_network_blocks(z_regressor, image_size: int) -> list[dict]:
    """The blocks of a :class:`fa3d.models.ZRegressor`, named as in the paper's Fig. 2 / Table 1.

    Returns one dict per block, in order: ``name`` ("input", "B1" … "B6", "FC"), ``layers``
    (what it is, e.g. "24× bottleneck"), ``units`` (residual units; 1 for B1, B2 and FC, 0 for
    the input) and
    ``shape`` (its output shape without the batch axis, from a forward pass at
    ``image_size`` px). The pass runs on a twin of the model built on the ``meta`` device
    from the model's own config, so even the paper's ResNet-200 at 384 px costs no memory
    and the model itself is neither moved nor run.

    Code -> paper: ``conv1`` + ``bn1`` + ReLU is B1, ``maxpool`` B2, ``layer1`` … ``layer4``
    B3 … B6, and ``norm`` + ReLU + global average pooling + ``fc`` the final FC (N).
    """
    config = dataclasses.replace(z_regressor.config, pretrained_path=None)   # a twin loads no weights
    num_landmarks = z_regressor.fc.out_features
    stage_names = ("conv1", "maxpool", "layer1", "layer2", "layer3", "layer4", "fc")
    with torch.device("meta"):
        twin = ZRegressor(config, num_landmarks).eval()
        shapes = {}
        hooks = [getattr(twin, name).register_forward_hook(
                 lambda module, inputs, output, name=name: shapes.__setitem__(name, tuple(output.shape[1:])))
                 for name in stage_names]
        with torch.no_grad():
            twin(torch.zeros(1, 3, image_size, image_size), torch.zeros(1, num_landmarks, image_size, image_size))
        for hook in hooks:
            hook.remove()
    inputs = {"rgb+heatmaps": "RGB + N heatmaps", "rgb": "RGB", "heatmaps": "N heatmaps"}[config.inputs]
    conv = twin.conv1
    blocks = [
        {"name": "input", "layers": inputs, "units": 0,
         "shape": (config.in_channels(num_landmarks), image_size, image_size)},
        {"name": "B1", "layers": f"conv ({conv.out_channels}, {conv.kernel_size[0]}×{conv.kernel_size[1]}, "
                                 f"{conv.stride[0]}), BN, ReLU", "units": 1, "shape": shapes["conv1"]},
        {"name": "B2", "layers": f"max-pool ({twin.maxpool.kernel_size}×{twin.maxpool.kernel_size}, "
                                 f"{twin.maxpool.stride})", "units": 1, "shape": shapes["maxpool"]},
    ]
    for paper_name, name in zip(("B3", "B4", "B5", "B6"), ("layer1", "layer2", "layer3", "layer4")):
        stage = getattr(twin, name)
        blocks.append({"name": paper_name, "layers": f"{len(stage)}× {config.block}", "units": len(stage),
                       "shape": shapes[name]})
    blocks.append({"name": "FC", "layers": f"BN-ReLU, avg pool,\nFC ({num_landmarks})", "units": 1,
                   "shape": shapes["fc"]})
    return blocks


def z_network_figure(z_regressor, image_size: int, *, title: str | None = None) -> Figure:
    """The Z regression network drawn like the paper's Fig. 2: one box per block of
    :func:`z_network_blocks` (the input, B1 … B6, the FC), left to right, each named inside
    (B1 … B6 as in the paper) and labelled below with its layers (the unit count for B3 … B6)
    and its output shape at ``image_size`` px. Box heights follow the feature maps' side (log
    scale), so each stride-2 step shows. Each box patch and its label carry ``gid="block:<name>"``."""
    blocks = z_network_blocks(z_regressor, image_size)
    fig = Figure(figsize=(1.55 * len(blocks) + 0.5, 3.3), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(-0.1, 1.6 * len(blocks) - 0.3)
    ax.set_ylim(-1.3, 1.0)
    ax.set_axis_off()
    sides = [b["shape"][-1] if len(b["shape"]) == 3 else 1 for b in blocks]
    biggest = math.log2(max(sides))
    colours = {"input": "#fff2cc", "FC": "#d9ead3"}
    for i, (block, side) in enumerate(zip(blocks, sides)):
        x = 1.6 * i
        h = 0.3 + 1.3 * math.log2(side) / biggest                   # taller = larger feature maps
        patch = FancyBboxPatch((x, 0.15 - h / 2), 1.2, h, boxstyle="round,pad=0.03",
                               fc=colours.get(block["name"], "#cfe2f3"), ec="black", lw=0.8)
        patch.set_gid(f"block:{block['name']}")
        ax.add_patch(patch)
        ax.text(x + 0.6, 0.15, block["name"], ha="center", va="center", fontsize=10, weight="bold")
        shape = "×".join(map(str, block["shape"]))
        label = ax.text(x + 0.6, -0.78, f"{block['layers']}\n{shape}", ha="center", va="top", fontsize=7.5,
                        linespacing=1.3)
        label.set_gid(f"block:{block['name']}")
        if i:
            ax.annotate("", xy=(x - 0.04, 0.15), xytext=(x - 0.36, 0.15),
                        arrowprops=dict(arrowstyle="-|>", lw=1.0, color="#333333", shrinkA=0, shrinkB=0))
    ax.set_title(title or f"Z regression network (paper Fig. 2), output shapes at {image_size} px "
                          "(channels×height×width)", fontsize=9)
    return fig
