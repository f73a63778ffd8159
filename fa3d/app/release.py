"""The model that ships with fa3d: trained on synthetic faces only, used by name.

``fa3d predict photo.jpg`` (no ``--run``) and ``--run pretrained`` (``predict``, ``evaluate``) use
the run folder ``fa3d/weights/synthetic68/``: 68 iBUG points in 3D, the quick architecture,
trained by ``make pretrained`` on procedural faces (no real face, no data under non-commercial
terms). Its ``MODEL.md`` holds how it was trained and what it scores.

    resolve_run("pretrained")   -> the shipped run folder; any other value is returned as a Path
    export_release(run, out)    a run folder -> a release folder: weights only, config, log
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..checkpoint import load_checkpoint, save_checkpoint
from ..runs import CHECKPOINT_NAME, CONFIG_NAME, LOG_NAME, PRETRAINED_DIR

#: What a release checkpoint keeps of a training checkpoint (no optimiser, scheduler or RNG state).
RELEASE_KEYS = ("models", "preset", "scheme", "config", "schedule", "mean_shape", "stage", "epoch", "step",
                "stage_done", "finished")


def export_release(run_dir, out_dir, overwrite: bool = False) -> Path:
    """Copy a finished run into ``out_dir`` as a release: a weights-only checkpoint (loads with
    :func:`fa3d.runs.load_run`, like any run), its config.json and log.jsonl. Returns out_dir.
    A release already there is replaced only with ``overwrite``."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    ckpt = load_checkpoint(run_dir / CHECKPOINT_NAME)
    if not ckpt.get("finished"):
        raise ValueError(f"{run_dir}: the run has not finished all its stages; train it to the end first")
    if (out_dir / CHECKPOINT_NAME).exists() and not overwrite:
        raise FileExistsError(f"{out_dir / CHECKPOINT_NAME} already exists; pass --overwrite to replace it")
    out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out_dir / CHECKPOINT_NAME, {k: ckpt[k] for k in RELEASE_KEYS if k in ckpt})
    for name in (CONFIG_NAME, LOG_NAME):
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, out_dir / name)
    return out_dir


def main(argv=None) -> int:
    """``python -m fa3d.app.release RUN_DIR [OUT_DIR] [--overwrite]``: export a run as a release
    (default OUT_DIR: the shipped model's folder; ``make pretrained`` trains and exports it)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m fa3d.app.release", description=main.__doc__)
    parser.add_argument("run_dir")
    parser.add_argument("out_dir", nargs="?", default=str(PRETRAINED_DIR))
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        out = export_release(args.run_dir, args.out_dir, args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"fa3d.app.release: error: {err}", file=sys.stderr)
        return 2
    print(f"exported {args.run_dir} -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
