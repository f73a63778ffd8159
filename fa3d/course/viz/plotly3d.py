"""Interactive plotly 3D views of fa3d landmarks, and the notebook setup that keeps them small.

The 3D views look at the face from the front by default (:func:`front_scene`), so a
frontal face appears as it does in the image (x right, y down, z toward the viewer,
in pixels); drag to turn it. They return ``plotly.graph_objects.Figure`` objects.

In notebooks, call :func:`setup_notebook` once: returned matplotlib Figures then display
inline (as JPEG), and plotly figures work with no network (:func:`use_plotly_renderer`).
Pages for a browser: :func:`write_offline_html` (plotly.js in a file beside the page).
"""
from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np

from ...data.schemes import LandmarkScheme, get_scheme
from ...env import in_colab, in_jupyter_kernel, jupyter_shell
from .figures import ERROR_COLOUR, GROUP_COLOURS, GT_COLOUR, PRED_COLOUR, _image_hwc, _numpy


def use_plotly_renderer(offline: bool = True) -> str:
    """Pick how plotly figures show in this notebook; returns the renderer now in use.

    ``offline=True`` (the default): ``plotly_mimetype+notebook``. JupyterLab draws the figure
    data (``application/vnd.plotly.v1+json``) with the plotly.js that its plotly extension
    bundles; the classic notebook and an exported HTML page use plotly.js embedded once per
    notebook (~4.8 MB). Both work with no network: on a cluster node, on a train.
    ``offline=False``: ``notebook_connected`` loads plotly.js from a CDN (small outputs, needs
    internet). On Colab plotly's own ``colab`` renderer is kept (every output there is its own
    frame). Outside Jupyter nothing is changed. For files, see :func:`write_offline_html`.
    """
    import plotly.io as pio

    if in_jupyter_kernel() and not in_colab():
        pio.renderers.default = "plotly_mimetype+notebook" if offline else "notebook_connected"
    return pio.renderers.default


def write_offline_html(fig, path) -> Path:
    """Write a plotly figure as an HTML page that works offline: the page loads ``plotly.min.js``
    from its own folder, where it is written once (~4.8 MB) and shared by every page there (the
    report's, the demo's). Returns the page's path. Copy the folder, not only the page."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(path, include_plotlyjs="directory")
    return path


def setup_notebook(offline: bool = True) -> None:
    """Call once at the top of a notebook: returned matplotlib Figures display inline
    (a pyplot-free ``Figure`` needs the inline backend's display hook, which ipykernel only
    installs after ``%matplotlib inline``), as JPEG (smaller than PNG for the course's
    photographs and heatmaps, so saved notebooks stay small), and plotly figures work offline
    (:func:`use_plotly_renderer`). Does nothing outside Jupyter."""
    shell = jupyter_shell()
    if shell is None:
        return
    shell.run_line_magic("matplotlib", "inline")
    from matplotlib_inline.backend_inline import set_matplotlib_formats
    set_matplotlib_formats("jpeg", pil_kwargs={"quality": 85})
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


def _point_errors(pred: np.ndarray, gt: np.ndarray, scheme: LandmarkScheme) -> tuple[np.ndarray, np.ndarray]:
    """Per-landmark 3D error in pixels and in percent of the 3D interocular distance."""
    err = np.linalg.norm(pred - gt, axis=-1)
    i, j = scheme.outer_eye_corners
    iod = np.linalg.norm(gt[i] - gt[j])
    return err, 100 * err / iod if iod > 0 else np.full_like(err, np.nan)


def _compare_traces(pred, gt, scheme, scene="scene", colorbar_x=None):
    """Traces for prediction vs ground truth: GT lines + points, error segments, prediction
    lines + points coloured by per-landmark error (% interocular)."""
    import plotly.graph_objects as go

    err_px, err_pct = _point_errors(pred, gt, scheme)
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


def compare_3d_plotly(pred, gt, scheme: str | LandmarkScheme, *, title: str | None = None, height: int = 520):
    """Prediction vs ground truth, (N, 3) each, as one interactive 3D point cloud: ground
    truth in green, prediction coloured by its per-landmark 3D error (% of the interocular
    distance), a red segment from each truth to its prediction. Hover: index, name, error."""
    import plotly.graph_objects as go

    scheme = get_scheme(scheme)
    p, g = _numpy(pred).astype(np.float64), _numpy(gt).astype(np.float64)
    fig = go.Figure(_compare_traces(p, g, scheme))
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
                        plane_side: int = 64, title: str | None = None, height: int = 460):
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
        for tr in _compare_traces(lm, g, scheme, colorbar_x=1.0):
            fig.add_trace(tr, 1, 2)
    fig.update_xaxes(visible=False, row=1, col=1)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", row=1, col=1)
    fig.update_layout(scene=front_scene(), height=height, margin=dict(l=0, r=0, t=50 if title else 30, b=0),
                      title=title, legend=dict(x=0.45, y=1, font=dict(size=10)), **PLOTLY_LAYOUT)
    return fig
