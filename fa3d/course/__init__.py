"""Helpers the course notebooks share: set-up, batch sizes that fit the GPU, and the quick runs.

Environment report and seeding, source display, measured batch sizes, optional Google
Drive, and the quick runs that notebooks 02-08 train once and reuse.

Nothing here is needed to use fa3d as a library; it keeps the notebooks' first cells short.
"""
from __future__ import annotations

import inspect
import json
import os
import platform
import random
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..app.release import export_release, is_kernel
from ..checkpoint import load_checkpoint, save_checkpoint
from ..data.splits import test_dataset
from ..data.training import center_crops, random_batch
from ..env import in_colab, resolve_device
from ..files import atomic_write
from ..metrics import summarize
from ..models import STAGES, Cascade, StageLoss, get_preset
from ..predict import predict_crops
from ..runs import CHECKPOINT_NAME, CONFIG_NAME, LOG_NAME, TrainConfig, load_run, made_by_this_fa3d, same_settings
from ..schedules import get_schedule, make_optimizer
from ..train import optimizer_step, train as train_run
from .demo import QUICK_DEMO


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
    setup_notebook()  # inline JPEG figures, plotly figures that work offline (no-op outside Jupyter)
    device = resolve_device("auto")
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


def _fact_text(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple, dict)):
        return f"({len(value)} values: see the JSON file)"
    return str(value)


def save_facts(facts: dict, out_dir, notebook: str, shown=None) -> Path:
    """Write what a notebook computed to ``out_dir/<notebook>.json`` (the tests and reports read it) and show
    the keys in ``shown`` (default: all) as a two-column table. The shown values travel in the output's
    metadata (``fa3d_facts``), where the solution keys (``make solutions``) read them."""
    path = atomic_write(Path(out_dir) / f"{notebook}.json", json.dumps(facts, indent=2) + "\n")
    shown = {k: facts[k] for k in (shown or facts)}
    rows = "\n".join(f"| `{k}` | {_fact_text(v)} |" for k, v in shown.items())
    text = f"What this notebook computed (saved to `{notebook}.json` in `OUT_DIR`):\n\n| fact | value |\n|---|---|\n{rows}"
    try:
        from IPython.display import Markdown, display
        display(Markdown(text), metadata={"fa3d_facts": shown})
    except ImportError:
        print(text)
    return path


def run_step(cmd) -> str:
    """Run one command in a new process, shown as you would type it (``python`` for the interpreter);
    print its output and return it; a failure raises RuntimeError with the end of its error output."""
    cmd = [str(c) for c in cmd]
    here = os.getcwd() + os.sep      # a file under the working folder is shown relative to it, as you would type it
    shown = [os.path.relpath(c) if os.path.isabs(c) and c.startswith(here) else c for c in cmd[1:]]
    print("$ " + shlex.join(["python", *shown]))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    print(proc.stdout.strip() + "\n")
    if proc.returncode != 0:
        raise RuntimeError(f"the command failed (exit status {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def own_folder(folder, notebook: str) -> Path:
    """A fresh, empty ``folder`` for one notebook's files, emptied on every run: only a folder that carries
    this notebook's marker file (``.made-by-notebook-<notebook>``) is ever deleted, never a user's."""
    folder = Path(folder)
    mark = folder / f".made-by-notebook-{notebook}"
    if folder.exists():
        if not mark.is_file():
            raise FileExistsError(f"{folder} exists but was not made by notebook {notebook}; move it or change OUT_DIR")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    mark.touch()
    return folder


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
    device = resolve_device(device or "auto")
    if device.type != "cuda":
        return {s: schedule.stage(s).batch_size for s in stages}
    p = get_preset(preset)
    cascade = Cascade.from_preset(p).to(device).to_channels_last()
    total = torch.cuda.get_device_properties(device).total_memory

    def fits(stage: str, b: int) -> bool:
        loss_mod = StageLoss(cascade, stage)
        loss_mod.set_mode(True)
        params = [q for m in loss_mod.trainable() for q in m.parameters()]
        opt = make_optimizer(schedule.optimizer, params, 1e-12)  # the cascade is thrown away after
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

#: The course's quick runs, trained once by ``make course-runs`` and shipped inside fa3d (so that
#: ``pip install`` on Colab brings them), so that each notebook alone starts in seconds on a fresh
#: machine (Colab starts every notebook on one): a notebook that builds on a run installs it into
#: OUT_DIR/runs instead of training it for minutes; ``TRAIN = True`` in the notebook trains it.
READY_RUNS_DIR = Path(__file__).resolve().parents[1] / "weights" / "course"


def course_run_dir(name: str, out_dir="outputs/notebooks") -> Path:
    return Path(out_dir) / "runs" / f"quick_{name}"


def course_config(name: str, out_dir="outputs/notebooks", *, seed: int = 0, progress: bool = True,
                  epochs_scale: float = 1.0, num_train: int | None = None) -> TrainConfig:
    """The TrainConfig of the quick course run ``name``: the demo's data sizes, started from the
    previous course run's folder in the same ``out_dir``."""
    if name not in COURSE_RUNS:
        raise ValueError(f"unknown course run {name!r}; choose one of {list(COURSE_RUNS)}")
    previous, stages = COURSE_RUNS[name]
    return TrainConfig(out=str(course_run_dir(name, out_dir)), preset="quick", data="synthetic", stages=stages,
                       seed=seed, num_train=num_train or QUICK_DEMO["num_train"], num_valid=QUICK_DEMO["num_valid"],
                       synthetic_size=QUICK_DEMO["synthetic_size"], epochs_scale=epochs_scale,
                       init_from=str(course_run_dir(previous, out_dir)) if previous else None, progress=progress)


def ensure_run(name: str, out_dir="outputs/notebooks", *, train: bool = False, seed: int = 0,
               progress: bool = True, epochs_scale: float = 1.0, num_train: int | None = None):
    """The quick run ``name`` ("detection", "regression" or "z") under ``out_dir/runs``; returns
    its RUN_DIR. In order of preference:

    1. a finished run already there, made by this fa3d (with ``train=True``: one trained there,
       not a ready-made one); an interrupted one is resumed;
    2. unless ``train``, the ready-made run (:func:`install_ready_run`) when it has these settings;
    3. trained now, from the previous course run (itself found the same way, never retrained).

    Any notebook can therefore run on its own, in seconds, or train what it teaches with ``train``.
    """
    cfg = course_config(name, out_dir, seed=seed, progress=progress, epochs_scale=epochs_scale, num_train=num_train)
    run_dir = Path(cfg.out)
    ckpt_path = run_dir / CHECKPOINT_NAME
    saved = load_checkpoint(ckpt_path) if ckpt_path.exists() else None
    if saved is not None and made_by_this_fa3d(saved) and not (train and saved.get("ready_made")):
        if saved.get("finished"):
            print(f"reusing the finished quick run {run_dir}")
            return run_dir
        print(f"resuming the interrupted quick run {run_dir}")
        train_run(TrainConfig(out=str(run_dir), progress=progress), resume=True)
        return run_dir
    if not train and install_ready_run(cfg):
        print(f"installed the ready-made quick {name} run in {run_dir} (TRAIN = True trains it here instead)")
        return run_dir
    previous = COURSE_RUNS[name][0]
    if previous:
        ensure_run(previous, out_dir, seed=seed, progress=progress, epochs_scale=epochs_scale, num_train=num_train)
    train_run(cfg, overwrite=saved is not None)
    return run_dir


# ----------------------------------------------------------------------------- ready-made runs

def ready_run_kernels(name: str) -> str:
    """How the ready-made run ``name`` stores its kernels: ``"float16"`` for the quick runs that every
    notebook builds on; ``"int8"`` for notebook 08's ablation runs (``08_*``: six variants x three seeds),
    so that all of them fit in the package. docs/course.md gives what the 8 bits move in 08's table."""
    return "int8" if name.startswith("08_") else "float16"


def export_ready_runs(runs_dir, out_root=None, names=None) -> list[Path]:
    """Write the finished runs in ``runs_dir`` (every folder, or ``names``) as ready-made runs under
    ``out_root``: releases (:func:`fa3d.app.release.export_release`) with 16- or 8-bit kernels
    (:func:`ready_run_kernels`), each subnet unchanged from the run it started from (``init_from``, also in
    ``runs_dir``) left out and taken from there (``"base"``). Returns the folders written.
    ``make course-runs`` calls this after training the runs."""
    runs_dir, out_root = Path(runs_dir), Path(out_root or READY_RUNS_DIR)
    return [export_release(run_dir, out_root / run_dir.name, overwrite=True, kernels=ready_run_kernels(run_dir.name),
                           share_base=True)
            for run_dir in sorted(runs_dir.iterdir())
            if (run_dir / CHECKPOINT_NAME).is_file() and (names is None or run_dir.name in names)]


def ready_checkpoint(name: str, root=None) -> dict | None:
    """The ready-made run ``name`` as a release checkpoint dict (float32 weights, every subnet,
    the base runs' filled in); None when there is none, or when another fa3d made it (it may
    have rendered other faces)."""
    root = Path(root or READY_RUNS_DIR)
    path = root / name / CHECKPOINT_NAME
    if not path.is_file():
        return None
    ckpt = load_checkpoint(path)
    if not made_by_this_fa3d(ckpt):
        print(f"the ready-made run {path} was made by fa3d {ckpt.get('fa3d_version')}; "
              f"this is fa3d {__version__}, so it is trained instead (`make course-runs` refreshes it)")
        return None
    models = {}
    if ckpt.get("base"):
        base = ready_checkpoint(ckpt["base"], root)
        if base is None:
            return None
        models.update(base["models"])
    models.update(ckpt["models"])
    ckpt["models"] = {name: {k: v.float() if is_kernel(k, v) else v for k, v in state.items()}
                      for name, state in models.items()}
    ckpt.pop("base", None)
    return ckpt


def install_ready_run(cfg: TrainConfig, root=None) -> bool:
    """Install the ready-made run named like ``cfg.out``'s folder into ``cfg.out`` when it was
    trained with the same settings (:func:`fa3d.runs.same_settings`) by this fa3d; returns whether it did.
    The installed checkpoint says ``ready_made: True`` and loads like any finished run."""
    ckpt = ready_checkpoint(Path(cfg.out).name, root)
    if ckpt is None or not same_settings(ckpt["config"], cfg.to_dict()):
        return False
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    config = {**ckpt["config"], "out": str(out)}
    keep = {k: v for k, v in ckpt.items() if k not in ("format", "format_version", "fa3d_version")}
    save_checkpoint(out / CHECKPOINT_NAME, {**keep, "config": config, "ready_made": True})
    source = Path(root or READY_RUNS_DIR) / out.name
    if (source / CONFIG_NAME).is_file():
        saved_config = json.loads((source / CONFIG_NAME).read_text())
        atomic_write(out / CONFIG_NAME, json.dumps({**saved_config, "config": config}, indent=2) + "\n")
    if (source / LOG_NAME).is_file():
        shutil.copyfile(source / LOG_NAME, out / LOG_NAME)
    return True


def test_crops(run_dir, num_images: int | None = None) -> dict:
    """The run's synthetic **test** faces (seed + ``SYNTHETIC_TEST_SEED_OFFSET``: never trained on,
    and not the validation faces that tuned the quick schedule) as evaluation crops: ``image`` uint8
    (V, 3, S, S), ``landmarks`` (V, N, 3) in crop pixels, ``crop_matrix`` (V, 2, 3), ``yaw`` (V,) degrees."""
    run = load_run(run_dir)
    dataset = test_dataset("synthetic", run.checkpoint)
    faces = torch.utils.data.Subset(dataset, range(min(num_images or len(dataset), len(dataset))))
    crops = center_crops(faces, run.image_size)
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


def main(argv=None) -> int:
    """``python -m fa3d.course export RUNS_DIR [--out DIR] [NAME ...]``: write finished runs as
    the course's ready-made runs (``make course-runs`` trains them first)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m fa3d.course", description=main.__doc__)
    parser.add_argument("command", choices=["export"])
    parser.add_argument("runs_dir")
    parser.add_argument("names", nargs="*")
    parser.add_argument("--out", default=str(READY_RUNS_DIR))
    args = parser.parse_args(argv)
    try:
        written = export_ready_runs(args.runs_dir, args.out, args.names or None)
    except (FileNotFoundError, ValueError) as err:
        print(f"fa3d.course: error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"exported {path} ({(path / CHECKPOINT_NAME).stat().st_size / 2**20:.1f} MiB)")
    return 0
