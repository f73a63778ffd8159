"""Small helpers the course notebooks share: environment report, seeding, source display,
batch sizes that fit the GPU, optional Google Drive, and reusing quick runs between notebooks.

Nothing here is needed to use fa3d as a library; it keeps the notebooks' first cells short.
"""
from __future__ import annotations

import inspect
import os
import platform
import random
import sys

import numpy as np
import torch

from . import __version__


def in_colab() -> bool:
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


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
    from .viz import setup_notebook

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


#: Paper-preset GPU memory per image (GiB) by stage, fp32 activations with bf16 autocast
#: where the GPU supports it. These are planning figures for choosing a batch size, refine
#: them with `python benchmarks/train_speed.py --preset paper` on your GPU.
_PAPER_GIB_PER_IMAGE = {"detection": 1.6, "regression": 1.6, "joint": 2.2, "z": 1.4}


def pick_batch_size(stage: str, paper_batch: int, device: torch.device | str | None = None,
                    gib_per_image: float | None = None, reserve_gib: float = 2.0) -> int:
    """The paper's batch size for ``stage`` if it fits the GPU, else the largest that does
    (at least 1). On a CPU the paper batch is returned unchanged.

    A T4 (15 GiB) gets a smaller batch than the paper's two 12 GB Titan X cards shared;
    lower batches train more slowly per epoch but the schedule stays the same.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda":
        return paper_batch
    total = torch.cuda.get_device_properties(device).total_memory / 2**30
    per_image = gib_per_image or _PAPER_GIB_PER_IMAGE.get(stage, 2.0)
    return max(1, min(paper_batch, int((total - reserve_gib) // per_image)))


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
