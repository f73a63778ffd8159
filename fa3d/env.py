"""Where the code runs: the device to use, and whether we are inside Jupyter or on Colab."""
from __future__ import annotations

import os
import sys

import torch


def jupyter_shell():
    """The IPython shell of the Jupyter kernel we run in (JupyterLab, Notebook, Colab, VS Code,
    papermill), or None outside one (a script, plain IPython, pytest)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if shell is not None and "IPKernelApp" in shell.config else None


def in_jupyter_kernel() -> bool:
    return jupyter_shell() is not None


def in_colab() -> bool:
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when present, else the CPU; ``"cuda"`` -> this process's GPU
    (``LOCAL_RANK`` under torchrun, else the current one), which becomes the current device."""
    if str(name) == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
        torch.cuda.set_device(device)
    return device
