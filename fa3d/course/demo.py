"""The main job of ``make demo``: the whole pipeline end to end on synthetic faces.

1. render synthetic faces and draw them sorted by yaw, landmarks by face part;
2. a 3D view of one face (static PNG and interactive plotly HTML);
3. the training-time pipeline on a few faces: 3D-aware augmentation -> crop ->
   Gaussian and disk heatmaps -> sub-pixel decoding, with its round-trip error;
4. the real-data path: write faces in the 3DFAW layout and read them back;
5. train the quick cascade (all four stages) on synthetic faces, evaluate it against
   the mean-shape baseline and write the report (tables, CED curves, gallery, 3D HTML).

Every number printed here is computed by this run.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure

from .. import heatmaps as hm
from ..data.readers import ThreeDFAW
from ..data.synthetic import SyntheticFaces
from ..data.transforms import Augment3D
from ..data.writers import export_3dfaw_layout
from ..evaluate import evaluate_run
from ..models import get_preset
from ..runs import CHECKPOINT_NAME, LOG_NAME, TrainConfig, is_reusable
from ..schedules import get_schedule
from ..train import train as train_run
from . import viz
from .report import write_run_report


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def synthetic_yaw_grid(num_faces: int = 24, image_size: int = 256, seed: int = 0,
                       scheme: str = "3dfaw66", ncols: int = 6) -> Figure:
    """A grid of random synthetic faces sorted by yaw, landmarks drawn by part (hollow = occluded)."""
    ds = SyntheticFaces(num_faces, image_size=image_size, scheme=scheme, seed=seed)
    items = sorted((ds[i] for i in range(len(ds))), key=lambda it: float(it["pose"][0]))
    titles = ["yaw {:+.0f}° pitch {:+.0f}° roll {:+.0f}°".format(*it["pose"].tolist()) for it in items]
    return viz.face_grid(items, scheme, ncols=ncols, titles=titles)


def pipeline_figure(items: list[dict], crop_size: int, sigma: float, scheme: str) -> tuple[Figure, float]:
    """Augmented crops with their summed Gaussian maps, and the encode->decode round-trip error (px)."""
    lm = torch.stack([it["landmarks"] for it in items])
    maps = hm.gaussian_heatmaps(lm[..., :2], crop_size, sigma)
    decoded = hm.decode_heatmaps(maps)
    inside = ((lm[..., :2] >= 0) & (lm[..., :2] <= crop_size - 1)).all(-1)
    error = (decoded - lm[..., :2]).norm(dim=-1)[inside].mean().item()
    fig = Figure(figsize=(2.2 * len(items), 4.6), layout="constrained")
    axes = fig.subplots(2, len(items), squeeze=False)
    for k, it in enumerate(items):
        viz.show_face(it, scheme, ax=axes[0, k], title=f"augmented crop {k}")
        axes[1, k].imshow(maps[k].sum(0).clamp(max=1), cmap="magma")
        axes[1, k].set_axis_off()
        axes[1, k].set_title(f"Σ Gaussian maps (σ={sigma:g})", fontsize=8)
    return fig, error


#: The demo's data: 1,000 training faces rendered once at 96 px (the 64 px crops then
#: resample them near 1:1; 128 px renders would cost 2.5x the time), 200 validation faces and
#: (fa3d evaluate) as many test faces of their own seed.
QUICK_DEMO = {"num_train": 1000, "num_valid": 200, "synthetic_size": 96}


def run_quick_pipeline(out_dir, *, seed: int = 0, num_train: int | None = None, num_valid: int | None = None,
                       epochs_scale: float = 1.0, progress: bool = True) -> dict:
    """``make demo``'s training part: synthetic faces -> quick preset, all four stages ->
    evaluation on the synthetic test faces (never trained or tuned on) with the mean-shape baseline.

    Trains into ``out_dir/run`` (resumed if a run with the same settings made by this fa3d is
    there, replaced otherwise: the folder belongs to the demo) and writes the report beside its metrics.json.
    Returns evaluate_run's result with "report" ({kind: path}), "log_path" and "seconds".
    """
    t0 = time.time()
    run_dir = Path(out_dir) / "run"
    cfg = TrainConfig(out=str(run_dir), preset="quick", data="synthetic", seed=seed,
                      num_train=num_train or QUICK_DEMO["num_train"], num_valid=num_valid or QUICK_DEMO["num_valid"],
                      synthetic_size=QUICK_DEMO["synthetic_size"], epochs_scale=epochs_scale, progress=progress)
    resume = is_reusable(run_dir / CHECKPOINT_NAME, cfg, get_schedule("quick"), get_preset("quick"))
    train_run(cfg, resume=resume, overwrite=not resume)
    result = evaluate_run(run_dir, "synthetic", progress=progress)
    return {**result, "report": write_run_report(result), "log_path": run_dir / LOG_NAME, "seconds": time.time() - t0}


def run_demo(out_dir: Path, seed: int = 0, scheme: str = "3dfaw66", train: bool = True) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    paths, numbers = {}, {}

    paths["grid"] = _save(synthetic_yaw_grid(24, 256, seed, scheme), out_dir / "synthetic_faces_by_yaw.png")

    face = SyntheticFaces(1, image_size=256, scheme=scheme, seed=seed + 1)[0]
    fig = Figure(figsize=(9, 4.5), layout="constrained")
    viz.show_face(face, scheme, ax=fig.add_subplot(1, 2, 1), title="image (x right, y down)")
    viz.landmarks_3d_matplotlib(face["landmarks"], scheme, ax=fig.add_subplot(1, 2, 2, projection="3d"),
                                title="3D landmarks (z toward the camera)")
    paths["view3d_png"] = _save(fig, out_dir / "face_3d.png")
    paths["view3d_html"] = out_dir / "face_3d.html"
    viz.write_offline_html(viz.landmarks_3d_plotly(face["landmarks"], scheme), paths["view3d_html"])

    crop_size, sigma = 128, 2.0
    augment = Augment3D(crop_size, scheme=scheme)
    gen = torch.Generator().manual_seed(seed)
    ds = SyntheticFaces(6, image_size=256, scheme=scheme, seed=seed + 2)
    crops = [augment(ds[i], gen) for i in range(len(ds))]
    fig, numbers["heatmap_roundtrip_px"] = pipeline_figure(crops, crop_size, sigma, scheme)
    paths["pipeline"] = _save(fig, out_dir / "augmentation_and_heatmaps.png")

    with tempfile.TemporaryDirectory() as tmp:
        written = SyntheticFaces(8, image_size=128, scheme=scheme, seed=seed + 3)
        export_3dfaw_layout(written, tmp, "valid")
        read = ThreeDFAW(tmp, split="valid")
        # JPEG is lossy; landmarks are written as text and must come back to within print precision.
        numbers["3dfaw_roundtrip_max_abs_px"] = max(
            (read[i]["landmarks"] - written[i]["landmarks"]).abs().max().item() for i in range(len(read)))
        numbers["3dfaw_roundtrip_images"] = len(read)

    numbers["data_seconds"] = round(time.perf_counter() - t0, 1)
    print("fa3d demo: data pipeline on synthetic faces")
    for key, value in numbers.items():
        print(f"  {key:28s} {value:.4g}" if isinstance(value, float) else f"  {key:28s} {value}")

    result = None
    if train:
        print("\nfa3d demo: training the quick cascade on synthetic faces (all four stages)")
        result = run_quick_pipeline(out_dir, seed=seed)
        numbers["model"], numbers["baseline"] = result["metrics"], result["baseline"]
        numbers["train_and_evaluate_seconds"] = round(result["seconds"], 1)
        paths.update({f"report_{k}": v for k, v in result["report"].items()})
        print("\n" + result["table"])
    numbers["seconds"] = round(time.perf_counter() - t0, 1)
    (out_dir / "demo_numbers.json").write_text(json.dumps(numbers, indent=2) + "\n")
    print(f"\nfigures in {out_dir.resolve()}:")
    for path in paths.values():
        print(f"  {Path(path).resolve().relative_to(out_dir.resolve())}")
    if result is not None:
        print(f"report: {Path(result['report']['html']).resolve()}")
    print(f"demo took {numbers['seconds']:.0f} s")
    return {"paths": paths, "numbers": numbers, "result": result}
