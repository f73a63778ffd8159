"""Training checkpoints: written atomically, loaded safely (plain data only), with RNG states.

A checkpoint is one ``torch.save`` file holding only plain data (dicts, lists,
numbers, strings, tensors), so it loads with ``torch.load(..., weights_only=True)``,
which cannot run code hidden in a malicious file::

    {"format": "fa3d-checkpoint", "format_version": 1, "fa3d_version": "0.1.0",
     "models": {"detection": state_dict, "regression": ..., "z": ...},
     "optimizer": state_dict | None, "scheduler": state_dict | None,
     "stage": "regression", "epoch": 3,          # the last *finished* epoch of that stage
     "rng": {"torch": ByteTensor, "cuda": [...], "numpy": ..., "python": ...},
     "config": {...}, "preset": {...}, "scheme": "3dfaw66", ...}

Writes go through :func:`fa3d.files.atomic_write`: a crash or a full disk during
saving leaves the previous checkpoint intact, never a half-written one.

Format versions: 1 (fa3d 0.1); 2 (fa3d 0.2): the Z network's stem has BN-ReLU, as a
pre-activation ResNet's, so version-1 Z weights do not load (its 2D subnets still do).
"""
from __future__ import annotations

import pickle
import random
import zipfile
from pathlib import Path

import numpy as np
import torch

import fa3d

from .files import atomic_write

FORMAT = "fa3d-checkpoint"
FORMAT_VERSION = 2


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or not an fa3d checkpoint. The message names the file."""

    def __init__(self, path, problem: str):
        self.path = Path(path)
        super().__init__(f"{path}: {problem}")


def save_checkpoint(path, checkpoint: dict) -> Path:
    """Write ``checkpoint`` (plain data and tensors) to ``path`` atomically; adds the format
    fields and ``fa3d_version``. Returns the path. On any error the old file is untouched."""
    data = {"format": FORMAT, "format_version": FORMAT_VERSION, "fa3d_version": fa3d.__version__, **checkpoint}
    return atomic_write(path, lambda f: torch.save(data, f))


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load an fa3d checkpoint with ``weights_only=True``.

    Raises :class:`CheckpointError` (a ValueError) naming the file when it does not
    exist, cannot be read (truncated, corrupt, not a torch file), holds anything
    but plain data, or is not an fa3d checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such checkpoint file")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(path, f"refusing to load: the file holds objects that are not plain data "
                                    f"(weights_only=True loading failed: {str(err).splitlines()[0]})") from err
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError) as err:
        raise CheckpointError(path, f"cannot read the checkpoint (corrupt or truncated file?): "
                                    f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(path, "not an fa3d checkpoint (no 'format': 'fa3d-checkpoint' entry); "
                                    "was it written by another program?")
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(path, f"written by a newer fa3d ({data.get('fa3d_version')}, checkpoint format "
                                    f"{data['format_version']}); this is fa3d {fa3d.__version__}")
    scales = data.pop("int8_scales", None)
    if scales:   # a release with 8-bit kernels (fa3d.app.release): every reader gets float32 kernels back
        data["models"] = {name: {k: dequantize_int8(v, scales[name][k]) if k in scales.get(name, {}) else v
                                 for k, v in state.items()} for name, state in data["models"].items()}
    return data


def quantize_int8(kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric 8-bit kernel, one scale per output channel: ``(int8 values, float32 scales (C_out,))``,
    with ``values * scale`` (:func:`dequantize_int8`) within half a step (max |w| / 254) of each weight."""
    scale = kernel.detach().float().flatten(1).abs().amax(1).clamp_min(1e-12) / 127
    values = torch.round(kernel.float() / scale.view(-1, *[1] * (kernel.dim() - 1))).to(torch.int8)
    return values, scale


def dequantize_int8(values: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return values.float() * scale.view(-1, *[1] * (values.dim() - 1))


# ----------------------------------------------------------------------------- RNG states

def get_rng_state() -> dict:
    """The torch, CUDA, numpy and python RNG states, as tensors (weights_only-safe)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, mt, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos_gauss": torch.tensor([pos, has_gauss], dtype=torch.int64),
                  "cached": torch.tensor(cached, dtype=torch.float64)},
        "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64),
                   "gauss_next": torch.tensor(float("nan") if gauss_next is None else gauss_next,
                                              dtype=torch.float64)},
    }


def set_rng_state(state: dict) -> None:
    """Restore the states saved by :func:`get_rng_state` (CUDA only where devices match)."""
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
    n = state["numpy"]
    pos, has_gauss = (int(v) for v in n["pos_gauss"])
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), pos, has_gauss, float(n["cached"])))
    p = state["python"]
    gauss = float(p["gauss_next"])
    random.setstate((int(p["version"]), tuple(int(v) for v in p["state"]), None if gauss != gauss else gauss))
