"""Where the code runs: the device to use, and whether we are inside Jupyter or on Colab."""
from __future__ import annotations

import ctypes
import ctypes.util
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


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}


def keep_freed_memory(keep: bool = True) -> bool:
    """Let glibc keep the memory a forward frees for the next forward, instead of handing it back
    to the system after every operation. Returns whether the setting was applied (glibc only).

    By default glibc serves each large block (an activation of a batch) with its own ``mmap`` and
    unmaps it when freed, so the next operation faults its pages in again, zeroed; on a CPU that
    costs more than the arithmetic of a large batch, which then ran slower per face than one face
    at a time. ``keep=True`` serves them from the heap and never trims it (``mallopt``:
    M_MMAP_MAX 0, M_TRIM_THRESHOLD 2 GiB), the same as the environment variables MALLOC_MMAP_MAX_=0
    and MALLOC_TRIM_THRESHOLD_ but set from inside the process. The cost: the process keeps its
    peak memory until it exits. :class:`fa3d.FaceAligner` calls it on the CPU unless given
    ``keep_freed_memory=False``; ``keep_freed_memory(False)`` restores glibc's defaults (without its
    adaptive mmap threshold, which a mallopt call turns off for good).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # glibc only: musl and macOS have no such mallopt
    except (OSError, AttributeError):
        return False
    settings = {_M_MMAP_MAX: 0, _M_TRIM_THRESHOLD: 2**31 - 1} if keep else _GLIBC_DEFAULTS
    return all(libc.mallopt(param, value) == 1 for param, value in settings.items())
