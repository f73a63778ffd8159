"""Helpers the course notebooks share: set-up, batch sizes that fit the GPU, and the quick runs.

Environment report and seeding, source display, measured batch sizes, optional Google
Drive, and the quick runs that notebooks 02-08 train once and reuse.

Nothing here is needed to use fa3d as a library; it keeps the notebooks' first cells short.
"""
from __future__ import annotations

import inspect
import os
import platform
import random
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .checkpoint import load_checkpoint
from .data.splits import test_dataset
from .data.training import center_crops, random_batch
from .demo import QUICK_DEMO
from .env import in_colab
from .losses import StageLoss
from .metrics import summarize
from .models import Cascade, get_preset
from .predict import predict_crops
from .runs import CHECKPOINT_NAME, TrainConfig, made_by_this_fa3d
from .schedules import STAGES, get_schedule, make_optimizer
from .train import optimizer_step, train


def _ram_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        return kib / 2**20
    except (OSError, StopIteration, ValueError):
        return None


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup(seed: int = 0, quiet: bool = False) -> torch.device:
    """Seed everything, set up figures for Jupyter, pick the device (CUDA when present) and print
    what this machine has."""
    from .viz import setup_notebook  # matplotlib and plotly: only in notebooks

    seed_everything(seed)
    setup_notebook()  # inline matplotlib figures, plotly.js from a CDN (no-op outside Jupyter)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not quiet:
        ram = _ram_gib()
        print(f"fa3d {__version__} | Python {platform.python_version()} | torch {torch.__version__}"
              + (" | Colab" if in_colab() else ""))
        print(f"CPU cores: {os.cpu_count()}" + (f" | RAM: {ram:.0f} GiB" if ram else ""))
        if device.type == "cuda":
            props = torch.cuda.get_device_properties(device)
            print(f"device: cuda ({props.name}, {props.total_memory / 2**30:.0f} GiB)")
        else:
            print("device: cpu (quick settings run in minutes; the paper preset needs a GPU)")
    return device


def show_source(obj) -> None:
    """Show a library object's source in the notebook (syntax-highlighted when IPython is there)."""
    source = inspect.getsource(obj)
    try:
        from IPython.display import Code, display
        display(Code(source, language="python"))
    except ImportError:
        print(source)


def largest_batch_that_fits(batch_size: int, fits) -> int:
    """The largest of batch_size, batch_size/2, batch_size/4, ... (at least 1) for which
    ``fits(b)`` is true; 0 when not even 1 fits."""
    b = batch_size
    while b >= 1:
        if fits(b):
            return b
        b //= 2
    return 0


def pick_batch_sizes(preset: str = "paper", device: torch.device | str | None = None, stages=None,
                     headroom: float = 0.9) -> dict[str, int]:
    """The batch size of each training stage: the schedule's (the paper's 8 for the 2D stages,
    16 for Z) when one training step of it fits on this GPU, else the largest half, quarter, ...
    that does. Measured, not guessed: each candidate runs one real optimiser step of
    ``fa3d.train`` (bf16 autocast, channels_last, the schedule's optimiser) on random crops,
    and must peak below ``headroom`` × the GPU's memory. On a CPU the schedule's batches are
    returned unchanged.

    A Colab T4 (15 GiB) typically gets smaller batches than the paper's two 12 GB Titan X
    cards shared; the schedule's learning-rate end points stay the same (the decay is per step).
    """
    schedule = get_schedule(preset)
    stages = tuple(stages or STAGES)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda":
        return {s: schedule.stage(s).batch_size for s in stages}
    p = get_preset(preset)
    cascade = Cascade.from_preset(p).to(device).to_channels_last()
    total = torch.cuda.get_device_properties(device).total_memory

    def fits(stage: str, b: int) -> bool:
        loss_mod = StageLoss(cascade, stage)
        loss_mod.set_mode(True)
        params = [q for m in loss_mod.trainable() for q in m.parameters()]
        opt = make_optimizer(schedule.optimizer, params, 1e-12, 0.0)  # the cascade is thrown away after
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        try:
            optimizer_step(loss_mod, opt, random_batch(b, p.image_size, p.num_landmarks, device))
            torch.cuda.synchronize(device)
            return torch.cuda.max_memory_allocated(device) <= headroom * total
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            cascade.zero_grad(set_to_none=True)
            del opt
            torch.cuda.empty_cache()

    sizes = {s: largest_batch_that_fits(schedule.stage(s).batch_size, lambda b, s=s: fits(s, b)) for s in stages}
    del cascade
    torch.cuda.empty_cache()
    bad = [s for s, b in sizes.items() if b == 0]
    if bad:
        raise RuntimeError(f"the {preset} preset does not fit on this GPU ({total / 2**30:.0f} GiB) even with batch 1 "
                           f"in stage(s) {bad}; use a larger GPU or the quick preset")
    return sizes


def maybe_mount_drive(enabled: bool = False, folder: str = "fa3d") -> str | None:
    """On Colab with ``enabled=True``: mount Google Drive and return a folder on it for
    checkpoints (so training survives a disconnect). Otherwise return None: Drive is never forced."""
    if not enabled:
        return None
    if not in_colab():
        print("Google Drive is only mounted on Colab; keeping checkpoints on the local disk.")
        return None
    from google.colab import drive  # type: ignore[import-not-found]
    drive.mount("/content/drive")
    path = os.path.join("/content/drive/MyDrive", folder)
    os.makedirs(path, exist_ok=True)
    return path


# ----------------------------------------------------------------------------- quick runs shared by notebooks

#: The course trains the quick cascade one notebook at a time; each run starts from the
#: previous one's weights (``init_from``): name -> (previous run, stages it trains).
COURSE_RUNS = {
    "detection": (None, ("detection",)),             # notebook 02
    "regression": ("detection", ("regression", "joint")),  # notebook 03
    "z": ("regression", ("z",)),                     # notebook 04
}


def course_run_dir(name: str, out_dir="outputs/notebooks") -> Path:
    return Path(out_dir) / "runs" / f"quick_{name}"


def ensure_run(name: str, out_dir="outputs/notebooks", *, seed: int = 0, progress: bool = True,
               epochs_scale: float = 1.0, num_train: int | None = None):
    """The quick run ``name`` ("detection", "regression" or "z") under ``out_dir/runs``:
    reused when an earlier notebook finished it, resumed when it was interrupted, else
    trained now (with the runs it builds on first; a run written by an older fa3d is
    retrained). Returns its RUN_DIR.

    Any notebook can therefore run on its own: it trains what it needs and no more.
    """
    if name not in COURSE_RUNS:
        raise ValueError(f"unknown course run {name!r}; choose one of {list(COURSE_RUNS)}")
    previous, stages = COURSE_RUNS[name]
    run_dir = course_run_dir(name, out_dir)
    ckpt_path = run_dir / CHECKPOINT_NAME
    saved = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    if saved is not None and made_by_this_fa3d(saved):
        if saved.get("finished"):
            print(f"reusing the finished quick run {run_dir}")
            return run_dir
        print(f"resuming the interrupted quick run {run_dir}")
        train(TrainConfig(out=str(run_dir), progress=progress), resume=True)
        return run_dir
    init_from = str(ensure_run(previous, out_dir, seed=seed, progress=progress, epochs_scale=epochs_scale,
                               num_train=num_train)) if previous else None
    cfg = TrainConfig(out=str(run_dir), preset="quick", data="synthetic", stages=stages, seed=seed,
                      num_train=num_train or QUICK_DEMO["num_train"], num_valid=QUICK_DEMO["num_valid"],
                      synthetic_size=QUICK_DEMO["synthetic_size"], epochs_scale=epochs_scale,
                      init_from=init_from, progress=progress)
    train(cfg, overwrite=saved is not None)
    return run_dir


def test_crops(run_dir, num_images: int | None = None) -> dict:
    """The run's synthetic **test** faces (seed + ``SYNTHETIC_TEST_SEED_OFFSET``: never trained on,
    and not the validation faces that tuned the quick schedule) as evaluation crops: ``image`` uint8
    (V, 3, S, S), ``landmarks`` (V, N, 3) in crop pixels, ``crop_matrix`` (V, 2, 3), ``yaw`` (V,) degrees."""
    ckpt = load_checkpoint(Path(run_dir) / CHECKPOINT_NAME)
    dataset = test_dataset("synthetic", ckpt)
    faces = torch.utils.data.Subset(dataset, range(min(num_images or len(dataset), len(dataset))))
    crops = center_crops(faces, ckpt["preset"]["image_size"])
    crops["yaw"] = crops.pop("pose")[:, 0]
    return crops


def score_stage(cascade, crops: dict, stage: str = "z", mean_shape: torch.Tensor | None = None) -> dict:
    """GTE/CVGTCE (percent, :func:`fa3d.metrics.summarize`) of the cascade trained up to
    ``stage`` on evaluation crops, and of the mean-shape baseline when ``mean_shape`` is given."""
    pred = predict_crops(cascade, crops["image"], stage)
    out = {"model": summarize(pred, crops["landmarks"]), "pred": pred}
    if mean_shape is not None:
        base = mean_shape.expand_as(crops["landmarks"])
        out["baseline"] = summarize(base, crops["landmarks"])
    return out
