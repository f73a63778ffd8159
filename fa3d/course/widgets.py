"""Browse the cascade's work sample by sample, landmark by landmark (ipywidgets).

    from fa3d.course.widgets import browse
    browse(crops, cascade, "3dfaw66", gt=landmarks)        # in Jupyter: sliders + live figure

Pick a sample (slider) and a landmark (dropdown): the figure shows the crop with the
prediction, the detection maps, the regression heatmaps and the Gaussian input to the
Z net (all maps summed, and the chosen landmark's map), and the 3D landmarks with the
chosen one in red.

Headless runs (papermill, nbconvert, CI, a plain script) have no frontend to move a
slider, and a widget saved there shows nothing. ``browse`` then returns the plain static
figure of the first sample instead. It decides with :func:`resolve_interactive`: an
explicit ``interactive=`` wins; else the environment variable ``FA3D_INTERACTIVE``
("0"/"false" for static, "1"/"true" for widgets); else widgets whenever ipywidgets is
installed and the code runs in a Jupyter kernel. A kernel cannot tell whether a person is
watching, so notebooks executed by papermill should pass ``interactive=False`` (a
``parameters`` cell) or set ``FA3D_INTERACTIVE=0``; if they do not, nothing breaks: the
widget's display data also carries a JPEG of its first figure, which static viewers show.
"""
from __future__ import annotations

import base64
import io
import os

import numpy as np
import torch
from matplotlib.figure import Figure

from ..data.schemes import LandmarkScheme, get_scheme
from ..env import in_jupyter_kernel
from . import viz


def resolve_interactive(interactive: bool | None = None) -> bool:
    """Whether to build widgets (True) or a static figure (False); see the module docstring."""
    if interactive is not None:
        return bool(interactive)
    env = os.environ.get("FA3D_INTERACTIVE", "").strip().lower()
    if env:
        return env not in ("0", "false", "no", "off")
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return in_jupyter_kernel()


def sample_figure(stages: dict, scheme: str | LandmarkScheme, landmark: int, *, gt=None,
                  title: str | None = None, panel_size: float = 2.2) -> Figure:
    """One sample at one landmark: the (2, 4) stage grid of :func:`fa3d.course.viz.draw_stages`
    and, on the right, the predicted 3D landmarks with ``landmark`` in red (and the ground
    truth in green when ``gt`` (N, 3) crop pixels is given)."""
    scheme = get_scheme(scheme)
    fig = Figure(figsize=(6.2 * panel_size, 2 * panel_size + 0.4), layout="constrained")
    grid = fig.add_gridspec(2, 6)
    axes = np.array([[fig.add_subplot(grid[r, c]) for c in range(4)] for r in range(2)])
    viz.draw_stages(axes, stages, scheme, landmark=landmark, gt=gt)
    ax3d = fig.add_subplot(grid[:, 4:], projection="3d")
    lm = stages["landmarks"]
    viz.landmarks_3d_matplotlib(lm, scheme, ax=ax3d, title="3D prediction (z toward the camera)",
                                elev=10, azim=-70)
    if gt is not None:
        g = viz._numpy(gt)
        ax3d.scatter(g[:, 0], g[:, 2], -g[:, 1], s=6, c=viz.GT_COLOUR)
    ax3d.scatter([lm[landmark, 0]], [lm[landmark, 2]], [-lm[landmark, 1]], s=60, c="red", depthshade=False)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


class _Browser:
    """Holds the crops, the cascade and a cache of cascade outputs, one per sample."""

    def __init__(self, crops, cascade, scheme, gt=None):
        self.crops, self.cascade, self.scheme, self.gt = crops, cascade, get_scheme(scheme), gt
        self._cache: dict[int, dict] = {}

    def stages(self, i: int) -> dict:
        if i not in self._cache:
            self._cache[i] = viz.cascade_stages(self.cascade, torch.as_tensor(self.crops[i]))
        return self._cache[i]

    def figure(self, i: int, landmark: int) -> Figure:
        gt = None if self.gt is None else self.gt[i]
        return sample_figure(self.stages(i), self.scheme, landmark, gt=gt,
                             title=f"sample {i}, landmark #{landmark} {self.scheme.names[landmark]}")


def _jpeg(fig: Figure) -> bytes:
    """JPEG bytes of a figure: photos and heatmaps compress ~4x better than PNG, which keeps
    saved notebooks (widget state included) small."""
    buf = io.BytesIO()
    fig.savefig(buf, format="jpeg", dpi=80, pil_kwargs={"quality": 85})
    return buf.getvalue()


def _widget_box(children, image_w):
    """A VBox that also carries a static JPEG of its figure in its display data: frontends
    with a widget manager (JupyterLab, Notebook 7, VS Code, Colab) show the live widget;
    static viewers (GitHub, nbviewer, a headless run's saved output) show the picture."""
    import ipywidgets as W

    class BrowserBox(W.VBox):
        def _repr_mimebundle_(self, **kwargs):
            data = super()._repr_mimebundle_(**kwargs)
            if isinstance(data, dict) and image_w.value:
                data["image/jpeg"] = base64.b64encode(image_w.value).decode()
            return data

    return BrowserBox(children)


def browse(crops, cascade, scheme: str | LandmarkScheme, *, gt=None, sample: int = 0, landmark: int = 30,
           interactive: bool | None = None):
    """A sample/landmark browser for a :class:`fa3d.models.Cascade` on uint8 crops (V, 3, S, S)
    (a tensor or a list), with optional ground truth ``gt`` (V, N, 3) in crop pixels.

    Returns an ``ipywidgets.VBox`` (interactive) or the static :func:`sample_figure` of
    ``sample``/``landmark`` (headless, see :func:`resolve_interactive`). The cascade runs once
    per sample shown (cached).
    """
    browser = _Browser(crops, cascade, scheme, gt)
    if not resolve_interactive(interactive):
        return browser.figure(sample, landmark)
    try:
        import ipywidgets as W
    except ImportError:  # resolve_interactive(True) was forced without ipywidgets
        return browser.figure(sample, landmark)

    names = browser.scheme.names
    sample_w = W.IntSlider(value=sample, min=0, max=len(crops) - 1, description="sample",
                           continuous_update=False)
    landmark_w = W.Dropdown(options=[(f"{i} {n}", i) for i, n in enumerate(names)], value=landmark,
                            description="landmark")
    image_w = W.Image(format="jpeg")

    def update(_=None):
        image_w.value = _jpeg(browser.figure(sample_w.value, landmark_w.value))

    sample_w.observe(update, names="value")
    landmark_w.observe(update, names="value")
    update()
    return _widget_box([W.HBox([sample_w, landmark_w]), image_w], image_w)
