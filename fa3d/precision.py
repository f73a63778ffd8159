"""Numeric precision per device: bf16 autocast where the GPU has it, fp16 with loss scaling where not.

    choose_precision("auto", device)   -> "bf16" | "fp16" | "fp32", and why (printed at a run's start)
    autocast(precision, device)        the context manager the forward passes run in
    grad_scaler(precision, device)     a GradScaler, enabled for fp16 only

bf16 keeps fp32's exponent range, so it needs no loss scaling; GPUs have it natively from compute
capability 8.0 (A100, RTX 30xx, H100). Below that (T4: Colab's free GPU, 7.5; V100, 7.0) bf16 is
emulated and cuDNN has no bf16 convolutions, so fp16 autocast with a GradScaler is the fast choice
there (``torch.cuda.is_bf16_supported()`` says True on a T4 because it counts emulation; we ask about
the hardware). On the CPU, ``auto`` trains in fp32; ``bf16`` runs there too (slower on most CPUs), which
is how the test suite exercises the GPU's dtype path without a GPU.
"""
from __future__ import annotations

import contextlib
import warnings

import torch

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}
NATIVE_BF16_CAPABILITY = (8, 0)


def choose_precision(requested: str, device, capability: tuple[int, int] | None = None) -> tuple[str, str]:
    """(precision, reason) for ``requested`` on ``device``. ``capability``: the CUDA compute capability
    (default: asked of the device), given by tests to play a T4 or an H100."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}: choose from {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if device.type != "cuda":
        if requested == "auto":
            return "fp32", f"{device.type}: fp32 (autocast pays off on GPUs; --precision bf16 to try it here)"
        return requested, f"{device.type}: {requested}, as asked"
    cap = capability or torch.cuda.get_device_capability(device)
    native = tuple(cap) >= NATIVE_BF16_CAPABILITY
    where = f"compute capability {cap[0]}.{cap[1]}"
    if requested == "auto":
        return ("bf16", f"{where}: native bf16") if native else \
               ("fp16", f"{where}: no native bf16, so fp16 autocast with a GradScaler")
    if requested == "bf16" and not native:
        warnings.warn(f"bf16 on a GPU of {where} is emulated (no bf16 tensor cores, no cuDNN bf16 convolutions): "
                      f"slow or failing; --precision auto picks fp16 there", stacklevel=2)
    return requested, f"{where}: {requested}, as asked"


def autocast(precision: str, device):
    """Autocast to the precision's dtype on the device's type; a no-op for fp32."""
    dtype = DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


def grad_scaler(precision: str, device) -> torch.amp.GradScaler:
    """Loss scaling for fp16 (its small exponent range underflows small gradients); disabled otherwise."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")
