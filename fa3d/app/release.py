"""The model that ships with fa3d: trained on synthetic faces only, used by name.

``fa3d predict photo.jpg`` (no ``--run``) and ``--run pretrained`` (``predict``, ``evaluate``) use
the run folder ``fa3d/weights/synthetic68/``: 68 iBUG points in 3D, the quick architecture,
trained by ``make pretrained`` on procedural faces (no real face, no data under non-commercial
terms). Its ``MODEL.md`` holds how it was trained and what it scores.

    fa3d.runs.resolve_run("pretrained")   -> the shipped run folder
    export_release(run, out)              a run folder -> a release folder: weights only, config, log (also
                                          the course's ready-made runs: float16 or int8 kernels, a base run's
                                          subnets left out)
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch

from ..checkpoint import load_checkpoint, quantize_int8, save_checkpoint
from ..data.splits import data_terms
from ..runs import CHECKPOINT_NAME, CONFIG_NAME, LOG_NAME, PRETRAINED_DIR

#: What a release checkpoint keeps of a training checkpoint (no optimiser, scheduler or RNG state).
RELEASE_KEYS = ("models", "preset", "scheme", "config", "schedule", "mean_shape", "stage", "epoch", "step",
                "stage_done", "finished", "data_history", "trained_photos")


#: How a release may store its kernels (:func:`is_kernel`); every other tensor stays as trained.
KERNEL_FORMATS = ("float32", "float16", "int8")


def is_kernel(key: str, tensor: torch.Tensor) -> bool:
    """Convolution and linear weights: the tensors a smaller release stores in 16 or 8 bits."""
    return key.endswith("weight") and tensor.is_floating_point() and tensor.dim() > 1


def export_release(run_dir, out_dir, overwrite: bool = False, *, kernels: str = "float32",
                   share_base: bool = False) -> Path:
    """Copy a finished run into ``out_dir`` as a release: a weights-only checkpoint (loads with
    :func:`fa3d.runs.load_run`, like any run), its config.json and log.jsonl. Returns out_dir.
    A release already there is replaced only with ``overwrite``.

    The course's ready-made runs (:func:`fa3d.course.export_ready_runs`, read back by
    :func:`fa3d.course.ready_checkpoint`) are smaller: ``kernels="float16"`` stores the kernels
    (:func:`is_kernel`) in half precision (half the size), ``"int8"`` in 8 bits with one scale per output
    channel (a quarter; :func:`fa3d.checkpoint.load_checkpoint` returns them in float32); ``share_base``
    leaves out each subnet unchanged from the run this one started from (its ``init_from``, a folder next to ``run_dir``) and names that run in ``"base"``."""
    if kernels not in KERNEL_FORMATS:
        raise ValueError(f"kernels={kernels!r}: choose one of {KERNEL_FORMATS}")
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    ckpt = load_checkpoint(run_dir / CHECKPOINT_NAME)
    if not ckpt.get("finished"):
        raise ValueError(f"{run_dir}: the run has not finished all its stages; train it to the end first")
    terms = sorted({t for entry in ckpt.get("data_history") or [] for t in entry["terms"]}
                   | set(data_terms(ckpt["config"]["data"])))   # a run written before data_history: its own data
    if terms:
        raise ValueError(f"{run_dir}: the run learned from data other than fa3d's synthetic faces "
                         f"({'; '.join(terms)}); fa3d ships only models trained on its own synthetic faces (MIT), "
                         "so it cannot be exported as the shipped model or a ready-made run")
    if (out_dir / CHECKPOINT_NAME).exists() and not overwrite:
        raise FileExistsError(f"{out_dir / CHECKPOINT_NAME} already exists; pass --overwrite to replace it")
    release = {k: ckpt[k] for k in RELEASE_KEYS if k in ckpt}
    if share_base:
        init_from = ckpt["config"].get("init_from")
        release["base"] = Path(init_from).name if init_from else None
        base = load_checkpoint(run_dir.parent / release["base"] / CHECKPOINT_NAME)["models"] if init_from else {}
        release["models"] = {name: state for name, state in release["models"].items()
                             if not (name in base and all(torch.equal(v, base[name][k]) for k, v in state.items()))}
    if kernels == "float16":
        release["models"] = {name: {k: v.half() if is_kernel(k, v) else v for k, v in state.items()}
                             for name, state in release["models"].items()}
    elif kernels == "int8":
        quantized = {name: {k: quantize_int8(v) for k, v in state.items() if is_kernel(k, v)}
                     for name, state in release["models"].items()}
        release["models"] = {name: {k: quantized[name][k][0] if k in quantized[name] else v for k, v in state.items()}
                             for name, state in release["models"].items()}
        release["int8_scales"] = {name: {k: q[1] for k, q in qs.items()} for name, qs in quantized.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out_dir / CHECKPOINT_NAME, release)
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
