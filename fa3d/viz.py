"""Figures: landmarks drawn by face part in 2D (matplotlib) and 3D (matplotlib, plotly).

Every function returns the figure it drew and never calls ``plt.show()``: the
notebook (or the caller) decides how to display or save it.

Axis convention everywhere (as in fa3d.data): x right, y down, z toward the
viewer. The 3D views look at the face from the front by default, so a frontal
face appears as it does in the image.
"""
from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from .data.schemes import LandmarkScheme, get_scheme

#: One colour per coarse face-part group (colour-blind friendly, Okabe-Ito).
GROUP_COLOURS = {
    "jaw": "#E69F00",
    "brows": "#56B4E9",
    "nose": "#009E73",
    "eyes": "#F0E442",
    "lips": "#D55E00",
}


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _image_hwc(image) -> np.ndarray:
    """uint8 (3, H, W) tensor or (H, W, 3) array -> (H, W, 3) array for imshow."""
    img = _numpy(image)
    return np.moveaxis(img, 0, -1) if img.ndim == 3 and img.shape[0] in (1, 3) else img


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
    if ax is None:
        fig = Figure(figsize=(4, 4))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
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


def landmarks_3d_plotly(landmarks, scheme: str | LandmarkScheme, *, name: str = "landmarks",
                        fig=None, colour: str | None = None):
    """An interactive plotly 3D point cloud of (N, 3) landmarks with face-part lines.

    The camera looks from the front (from +z toward the face) with y pointing down,
    matching the image. Hover shows each landmark's index and name.
    """
    import plotly.graph_objects as go

    scheme = get_scheme(scheme)
    lm = _numpy(landmarks)
    fig = fig or go.Figure()
    for part, idx in scheme.polylines():
        p = lm[list(idx)]
        fig.add_trace(go.Scatter3d(
            x=p[:, 0], y=p[:, 1], z=p[:, 2], mode="lines", showlegend=False, hoverinfo="skip",
            line=dict(color=colour or GROUP_COLOURS[scheme.group_of(idx[0])], width=4)))
    fig.add_trace(go.Scatter3d(
        x=lm[:, 0], y=lm[:, 1], z=lm[:, 2], mode="markers", name=name,
        marker=dict(size=3, color=colour or "black"),
        text=[f"#{i} {n}" for i, n in enumerate(scheme.names)],
        hovertemplate="%{text}<br>x=%{x:.1f} y=%{y:.1f} z=%{z:.1f}<extra></extra>"))
    fig.update_layout(
        scene=dict(xaxis_title="x (px)", yaxis_title="y (px, down)", zaxis_title="z (px, toward camera)",
                   yaxis=dict(autorange="reversed"), aspectmode="data",
                   # y reversed + camera on +z with scene-up +y: x right, y down, z toward the viewer.
                   camera=dict(eye=dict(x=0.0, y=0.0, z=2.0), up=dict(x=0.0, y=1.0, z=0.0))),
        margin=dict(l=0, r=0, t=30, b=0), height=480)
    return fig
