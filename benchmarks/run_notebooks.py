"""Execute the course notebooks in quick mode (papermill, kernel "fa3d"), time each one and
export HTML a teacher can post. `make notebooks` runs this with --commit.

    python benchmarks/run_notebooks.py [--out outputs/notebooks] [--commit] [--alone] [--train] [NAME ...]

Writes OUT/executed/NN_name.ipynb, OUT/html/NN_name.html (works offline: plotly.js is embedded
once per page), the notebooks' own metrics JSON files in OUT/, and OUT/timings.json (seconds
per notebook). ``--alone`` runs each notebook in a fresh folder of its own, as on a new Colab
machine, instead of all in order in OUT. ``--commit`` writes the outputs into the committed
notebooks/NN_name.ipynb, as GitHub shows them (:func:`committed_copy`).
"""
from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def execute(notebook: Path, out_dir: Path, kernel: str = "fa3d", parameters: dict | None = None,
            cell_timeout: int = 900) -> tuple[Path, float]:
    """Run one notebook with papermill; returns (executed path, seconds)."""
    import papermill as pm

    # nobody moves a slider in a headless run: fa3d.course.widgets shows static figures (notebook 06)
    os.environ.setdefault("FA3D_INTERACTIVE", "0")
    out_dir = out_dir.resolve()
    executed = out_dir / "executed" / notebook.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # inside the checkout, OUT_DIR is given relative to it (the kernel's working folder), so that the committed
    # outputs show the paths a student's clone has, not this machine's
    shown_out = os.path.relpath(out_dir, ROOT) if out_dir.is_relative_to(ROOT) else str(out_dir)
    pm.execute_notebook(str(notebook), str(executed), kernel_name=kernel, cwd=str(ROOT),
                        parameters={"OUT_DIR": shown_out, **(parameters or {})},
                        execution_timeout=cell_timeout, progress_bar=False)
    return executed, time.perf_counter() - t0


def export_html(executed: Path, out_dir: Path) -> Path:
    from nbconvert import HTMLExporter
    import nbformat

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    html = out_dir / "html" / executed.with_suffix(".html").name
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(body)
    return html


#: The kernel the committed notebooks name: what Colab and a plain Jupyter have. The tests and
#: this script run them with the project's own kernel, "fa3d", by name.
PYTHON3_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
PLOTLY_MIME = "application/vnd.plotly.v1+json"
#: A committed notebook's budget: GitHub shows notebooks up to a few MB, and a repository of
#: nine course notebooks should stay small to clone.
MAX_COMMITTED_BYTES = 1_500_000


def _array(value) -> np.ndarray:
    """A plotly JSON array: a list, or plotly's typed array {"dtype", "bdata" (base64), "shape"}."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return arr.reshape([int(n) for n in str(value["shape"]).split(",")]) if value.get("shape") else arr
    return np.asarray(value if value is not None else [], dtype=float)


def _colour(trace: dict, part: str) -> str | None:
    """A trace's single marker or line colour; None when it is per point (a colour scale)."""
    colour = (trace.get(part) or {}).get("color")
    return colour if isinstance(colour, str) else None


def _title(layout: dict) -> str:
    title = layout.get("title") or ""
    return (title.get("text") or "") if isinstance(title, dict) else str(title)


def _draw_flat_panel(ax, traces: list[dict]) -> None:
    """Image traces (a PNG data URI, as fa3d's figures embed them) and the 2D scatters over them."""
    from PIL import Image

    for t in traces:
        if t.get("type") == "image" and str(t.get("source", "")).startswith("data:image"):
            img = Image.open(io.BytesIO(base64.b64decode(t["source"].split(",", 1)[1]))).convert("RGB")
            x0, y0 = float(t.get("x0", 0)), float(t.get("y0", 0))
            ax.imshow(img, extent=(x0 - 0.5, x0 + img.width - 0.5, y0 + img.height - 0.5, y0 - 0.5))
        elif t.get("type") == "scatter":
            ax.plot(_array(t.get("x")), _array(t.get("y")), ".", ms=3, color=_colour(t, "marker"))
    ax.set_axis_off()


def _colour_scale(trace: dict):
    """(values, matplotlib colour map name, vmin, colour bar title) of a trace's per-point marker colours,
    or None when its markers have one colour."""
    marker = trace.get("marker") or {}
    values = marker.get("color")
    if values is None or isinstance(values, str):
        return None
    title = (marker.get("colorbar") or {}).get("title") or ""
    title = (title.get("text") or "") if isinstance(title, dict) else str(title)
    scale = marker.get("colorscale")
    if isinstance(scale, str):
        cmap = scale.lower()
    elif scale:     # plotly's [[position, colour], ...], as its JSON spells out a named scale
        from matplotlib.colors import LinearSegmentedColormap, to_rgb

        def rgb(colour: str):
            if colour.startswith("rgb"):
                return tuple(float(v) / 255 for v in colour[colour.index("(") + 1:-1].split(",")[:3])
            return to_rgb(colour)

        cmap = LinearSegmentedColormap.from_list("plotly", [(float(p), rgb(c)) for p, c in scale])
    else:
        cmap = "viridis"
    return _array(values), cmap, marker.get("cmin"), title


def _draw_scene(ax, traces: list[dict]) -> None:
    """The scatter3d traces of one scene. fa3d's (x, y, z) are drawn as matplotlib's (x, -z, -y):
    its vertical axis up the face, and z toward a viewer in front, turned by 30 degrees. The axes keep
    their ticks (pixels; the vertical one shows y, which runs down the face), and per-point colours get
    their colour bar, as in the interactive figure."""
    points = []
    for t in traces:
        x, y, z = (_array(t.get(k)) for k in "xyz")
        points.append(np.stack([x, -z, -y], 1))
        mode = t.get("mode", "markers")
        if "lines" in mode:
            ax.plot(x, -z, -y, lw=1, color=_colour(t, "line"))
        if "markers" in mode:
            scale = _colour_scale(t)
            if scale is None:
                ax.scatter(x, -z, -y, s=6, depthshade=False, c=_colour(t, "marker"))
            else:
                values, cmap, vmin, title = scale
                dots = ax.scatter(x, -z, -y, s=9, depthshade=False, c=values, cmap=cmap, vmin=vmin)
                ax.figure.colorbar(dots, ax=ax, shrink=0.6, pad=0.12, label=title)
    ax.view_init(elev=10, azim=-60)
    ax.set_xlabel("x (px)", fontsize=7), ax.set_ylabel("z (px, toward you)", fontsize=7)
    ax.set_zlabel("y (px, down)", fontsize=7)
    ax.zaxis.set_major_formatter(lambda value, _: f"{-value:g}")     # drawn as -y: label with y itself
    ax.tick_params(labelsize=6, pad=0)
    extent = np.ptp(np.nan_to_num(np.concatenate(points)), axis=0) if points else np.ones(3)
    ax.set_box_aspect(np.maximum(extent, 1e-3 * extent.max() + 1e-9), zoom=0.85)   # equal scales


def static_picture(figure: dict) -> bytes:
    """A JPEG of a plotly figure's first frame, drawn with matplotlib, for the readers whose viewer
    runs no JavaScript (GitHub): one panel for the images and 2D scatters, if any, then one per
    3D scene. Hidden traces (the other steps of a slider) are left out."""
    from matplotlib.figure import Figure

    data = [t for t in figure.get("data", []) if t.get("visible", True) is True]
    scenes = list(dict.fromkeys(t.get("scene", "scene") for t in data if t.get("type") == "scatter3d"))
    has_image = any(t.get("type") == "image" for t in data)
    panels = (["flat"] if has_image else []) + scenes
    fig = Figure(figsize=(4.6 * max(len(panels), 1), 4.6), dpi=90)
    fig.suptitle(_title(figure.get("layout", {})) + "\n(static view: open in JupyterLab or Colab to turn it)",
                 fontsize=9)
    for i, panel in enumerate(panels):
        if panel == "flat":
            _draw_flat_panel(fig.add_subplot(1, len(panels), i + 1), data)
        else:
            _draw_scene(fig.add_subplot(1, len(panels), i + 1, projection="3d"),
                        [t for t in data if t.get("type") == "scatter3d" and t.get("scene", "scene") == panel])
    buf = io.BytesIO()
    fig.savefig(buf, format="jpeg", pil_kwargs={"quality": 80})
    return buf.getvalue()


def _is_plotly_library(output) -> bool:
    """The output in which plotly's notebook renderer embeds plotly.js itself (~4.8 MB)."""
    html = output.get("data", {}).get("text/html", "")
    return len(html) > 1_000_000 and "plotly" in html[:5000].lower()


def committed_copy(executed: Path, target: Path) -> int:
    """Write an executed notebook as it is committed: papermill's injected parameters and
    bookkeeping removed, kernelspec python3, and each plotly figure's output as its data (which
    JupyterLab draws, offline) plus a static JPEG (what GitHub shows) instead of HTML that embeds
    plotly.js. Returns the file's size in bytes."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    nb.metadata.pop("papermill", None)
    nb.metadata["kernelspec"] = dict(PYTHON3_KERNELSPEC)
    for cell in nb.cells:
        for key in ("papermill", "execution"):
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.outputs:
            if _is_plotly_library(out):
                continue
            data = out.get("data", {})
            if PLOTLY_MIME in data:
                out["data"] = {PLOTLY_MIME: data[PLOTLY_MIME],
                               "image/jpeg": base64.b64encode(static_picture(data[PLOTLY_MIME])).decode(),
                               "text/plain": "<a plotly 3D figure: interactive in JupyterLab, static view here>"}
            outputs.append(out)
        cell.outputs = outputs
    nbformat.write(nb, target)
    return target.stat().st_size


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="notebook names or prefixes (default: all)")
    parser.add_argument("--out", default="outputs/notebooks")
    parser.add_argument("--no-html", action="store_true")
    parser.add_argument("--commit", action="store_true", help="write the outputs into notebooks/NN_name.ipynb")
    parser.add_argument("--alone", action="store_true", help="each notebook in a fresh folder OUT/alone/NN_name")
    parser.add_argument("--train", action="store_true",
                        help="TRAIN = True: train the quick runs instead of installing the ready-made ones")
    args = parser.parse_args(argv)
    out = Path(args.out)
    notebooks = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.names:
        notebooks = [nb for nb in notebooks if any(nb.stem.startswith(n) for n in args.names)]
    timings, too_big = {}, []
    for nb in notebooks:
        nb_out = out / "alone" / nb.stem if args.alone else out
        if args.alone and nb_out.exists():
            shutil.rmtree(nb_out)
        # --train: 08 trains its 18 variants in one cell (about 8 minutes on 2 quiet cores, past 15 on a busy CPU)
        executed, seconds = execute(nb, nb_out, parameters={"TRAIN": True} if args.train else None,
                                    cell_timeout=3600 if args.train else 900)
        timings[nb.stem] = round(seconds, 1)
        line = f"{nb.stem:28s} {seconds:7.1f} s"
        if not args.no_html:
            export_html(executed, nb_out)
        if args.commit:
            size = committed_copy(executed, nb)
            line += f"   committed: {size / 1e6:.2f} MB"
            too_big += [nb.name] if size > MAX_COMMITTED_BYTES else []
        print(line, flush=True)
    print(f"{'total':28s} {sum(timings.values()):7.1f} s")
    out.mkdir(parents=True, exist_ok=True)
    (out / ("timings_alone.json" if args.alone else "timings.json")).write_text(json.dumps(timings, indent=2) + "\n")
    if too_big:
        print(f"over the {MAX_COMMITTED_BYTES / 1e6:.1f} MB budget of a committed notebook: {', '.join(too_big)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
