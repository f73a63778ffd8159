"""Peak GPU memory of each training stage, and the largest batch that fits common GPUs, without a GPU.

    python benchmarks/gpu_memory.py                  # the paper preset at its schedule's batch sizes
    python benchmarks/gpu_memory.py --batch 4        # one batch size for every stage
    python benchmarks/gpu_memory.py --json docs/gpu_memory.json   # also the tables as JSON (notebook 07 shows it)

What it measures. For each stage (detection, regression, joint, z) it runs the training step of
fa3d.train (``optimizer_step``: the stage's StageLoss forward, ``backward()``, the gradient check and the
schedule's optimiser step) on the ``meta`` device: tensors with shapes and dtypes but no memory and
no compute. A TorchDispatchMode (:class:`StorageTracker`) adds up the bytes of every live tensor storage
(each storage once, views included; subtracted when the storage is freed) and keeps the peak. The whole
cascade is on the device, as in training; two steps run and the second one's peak is reported, when the
optimiser state (RMSprop: one square_avg per trained weight; Adam: two) and the previous step's
gradients are live. After the steps, validation's forward (batch 64, no grad, as ``fa3d.train.validate``)
is measured the same way.

As on a CUDA GPU: the cascade in channels_last (train.py does that on a GPU), the optimiser's foreach
implementation (PyTorch's default for CUDA weights), and every storage rounded up to 512 bytes, as
PyTorch's CUDA caching allocator does (``torch.cuda.memory_allocated``). bf16 autocast cannot run on
meta tensors, so :class:`CudaAutocast` applies CUDA autocast's casting rules itself (convolutions and
linear layers in bf16, with casts of the trained weights cached for the forward; losses, exp, sum ...
in fp32). ``check_autocast`` compares it, module by module, with real CUDA autocast run on fake CUDA
tensors (forward only: autograd needs a real GPU); the script prints the result. fp16 autocast (the T4)
makes the same casts with the same 2-byte size, so the 16-bit rows hold for it too (its GradScaler
adds a few scalars).

The largest batch. A step's peak grows linearly with the batch (activations, inputs and targets are
per image; weights, gradients and optimiser state are not): the peak is measured at the batch B and at
2B and extrapolated linearly, then checked by one more meta run at the H100's largest batch.
A GPU's usable memory is assumed to be its total (as nvidia-smi reports it) less 1.5 GiB and less
10 %: the CUDA context, cuDNN workspaces and the allocator's fragmentation are not tensors and are
not tracked; this headroom is an assumption, not a measurement.

Limits. The tracker sees each op's outputs, not what a kernel allocates inside it: cuDNN's batch norm
keeps a small reserve buffer, convolutions take workspaces (headroom above). Where a real kernel's
output holds more than the meta kernel's, :func:`real_kernel_bytes` says so (found on the CPU, assumed
for CUDA, whose kernel is the same structured one: ``mse_loss``). DDP's gradient buckets (about one more
copy of the gradients per GPU), the on-GPU augmentation's source images (--device-augment; about
1.7 MB a face at 768 px) and torch.compile are not modelled. Data-dependent reads (``bool`` of a
tensor, e.g. the finite-loss check) answer true on meta: the path of a healthy batch whose faces all
have depths. A real GPU run (benchmarks/train_speed.py, benchmarks/gpu_report.py) has the last word.
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import weakref
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import fa3d.train
from fa3d.models import STAGES, Cascade, StageLoss, get_preset
from fa3d.schedules import get_schedule, make_optimizer

GIB = 2 ** 30
#: Total memory of each card as nvidia-smi reports it, in MiB (public figures, not measured here).
GPUS = {"T4 16 GB": 15360, "L4 24 GB": 23034, "A100 40 GB": 40960, "A100 80 GB": 81920, "H100 80 GB": 81559}
HEADROOM_GIB, HEADROOM_FRACTION = 1.5, 0.10   # assumed: CUDA context, cuDNN workspaces, fragmentation
CUDA_BLOCK = 512                              # the CUDA caching allocator rounds every block up to this
VALIDATION_BATCH = inspect.signature(fa3d.train.validate).parameters["batch_size"].default   # validate's batch
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


# ----------------------------------------------------------------------------- counting storages

class StorageTracker(TorchDispatchMode):
    """Bytes of the live tensor storages made by ops run under it, and their peak.

    Only storages on the device types in ``devices`` count (on meta, the CPU scalars an optimiser keeps
    as step counters stay on the host of a GPU too). Each storage counts once (views share it), rounded
    up to ``block`` bytes, from the op that makes it until it is freed (a weakref finalizer). A storage
    is in the category "other" until :meth:`tag` puts it in another ("weights", "grads", "state");
    ``at_peak`` holds the bytes of each category at the moment of the peak. On meta, a data-dependent
    read (``bool(t)``, ``t.item()``) answers true / 1.
    """

    def __init__(self, devices=("meta",), block: int = 1):
        super().__init__()
        self.devices, self.block = set(devices), block
        self.live = self.peak = 0                    # bytes
        self.live_by: dict[str, int] = {"other": 0}  # category -> bytes
        self.at_peak: dict[str, int] = {}
        self._sizes: dict[int, list] = {}            # id(storage) -> [its counted bytes, its category]

    def reset_peak(self) -> None:
        self.peak, self.at_peak = self.live, dict(self.live_by)

    def count(self, t: torch.Tensor, nbytes: int | None = None) -> None:
        """Count ``t``'s storage if it is new, as ``nbytes`` if given, else as its size (tensors made
        before the tracker started: call it yourself)."""
        if t.device.type not in self.devices:
            return
        storage = t.untyped_storage()
        key = id(storage)
        if key in self._sizes:
            return
        nbytes = storage.nbytes() if nbytes is None else nbytes
        nbytes = -(-nbytes // self.block) * self.block
        self._sizes[key] = [nbytes, "other"]
        self.live += nbytes
        self.live_by["other"] += nbytes
        if self.live > self.peak:
            self.reset_peak()
        weakref.finalize(storage, self._free, key)

    def tag(self, t: torch.Tensor | None, category: str) -> None:
        """Move ``t``'s storage (if counted) to ``category``."""
        record = self._sizes.get(id(t.untyped_storage())) if t is not None else None
        if record is not None and record[1] != category:
            self.live_by[record[1]] -= record[0]
            self.live_by[category] = self.live_by.get(category, 0) + record[0]
            record[1] = category

    def _free(self, key: int) -> None:
        nbytes, category = self._sizes.pop(key)
        self.live -= nbytes
        self.live_by[category] -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default and _no_data(args[0]):
            return True if args[0].dtype == torch.bool else 1
        out = func(*args, **(kwargs or {}))
        tensors = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        sizes = real_kernel_bytes(func, args, tensors) if tensors and _no_data(tensors[0]) else None
        for i, t in enumerate(tensors):
            self.count(t, None if sizes is None else sizes[i])
        return out


def _no_data(t: torch.Tensor) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor
    return t.device.type == "meta" or isinstance(t, FakeTensor)


def real_kernel_bytes(func, args, outs: list[torch.Tensor]) -> list[int] | None:
    """Bytes the outputs of ``func`` hold with the real CPU and CUDA kernels where the meta kernel's
    differ (None: as the meta kernel says). Both found on CPU tensors (tests/test_gpu_memory.py):

    - ``mse_loss`` with a reduction returns its 0-dim result in a storage the size of the elementwise
      loss (the structured kernel, one for CPU and CUDA, computes it there): (B,N,S,S) fp32 for the
      regression loss, alive until the loss is.
    - ``native_batch_norm`` in eval mode returns empty saved mean and invstd (meta: one per channel).
    """
    if func is torch.ops.aten.mse_loss.default and (len(args) < 3 or args[2] != 0):
        numel = torch.broadcast_shapes(args[0].shape, args[1].shape).numel()
        return [numel * outs[0].element_size()]
    if func is torch.ops.aten.native_batch_norm.default and not args[5]:
        return [outs[0].untyped_storage().nbytes(), 0, 0]
    return None


# ----------------------------------------------------------------------------- CUDA autocast, emulated

# CUDA autocast's op lists (aten/src/ATen/autocast_mode.h, PyTorch 2.x), by the torch function's name.
LOWER = {"conv1d", "conv2d", "conv3d", "conv_tbc", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
         "convolution", "_convolution", "prelu", "addmm", "addmv", "addr", "matmul", "__matmul__", "__rmatmul__",
         "einsum", "mm", "mv", "linalg_vecdot", "linear", "addbmm", "baddbmm", "bmm", "chain_matmul",
         "linalg_multi_dot", "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell", "scaled_dot_product_attention"}
FP32 = {"acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p", "reciprocal", "rsqrt",
        "sinh", "tan", "pow", "__pow__", "__rpow__", "softplus", "layer_norm", "group_norm", "rms_norm",
        "frobenius_norm", "nuclear_norm", "cosine_similarity", "poisson_nll_loss", "cosine_embedding_loss",
        "nll_loss", "hinge_embedding_loss", "kl_div", "l1_loss", "smooth_l1_loss", "huber_loss", "mse_loss",
        "margin_ranking_loss", "multilabel_margin_loss", "soft_margin_loss", "triplet_margin_loss",
        "multi_margin_loss", "binary_cross_entropy_with_logits", "dist", "pdist", "cdist", "renorm", "logsumexp",
        "interpolate", "upsample", "upsample_nearest", "upsample_bilinear"}
FP32_OUTPUT = {"prod", "softmax", "log_softmax", "cumprod", "cumsum", "linalg_vector_norm", "linalg_matrix_norm",
               "vector_norm", "matrix_norm", "sum", "norm"}   # computed in fp32 via dtype=, the input is not copied
PROMOTE = {"addcdiv", "addcmul", "atan2", "bilinear", "cross", "dot", "vdot", "grid_sample", "index_put",
           "scatter_add", "tensordot"}


class CudaAutocast(TorchFunctionMode):
    """CUDA autocast's casts, applied above autograd (as autocast is) so that they work on any device.

    LOWER ops get their floating-point tensors (not float64) cast to ``dtype``; the casts of leaf
    tensors that require grad (the trained weights) are cached until the context exits, as autocast
    caches them. FP32 ops get theirs cast to float32, FP32_OUTPUT ops compute in float32, PROMOTE ops
    cast to the widest dtype among their arguments. Everything else runs in its inputs' dtype.
    """

    def __init__(self, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.dtype, self._cache = dtype, {}

    def __exit__(self, *exc):
        self._cache.clear()
        return super().__exit__(*exc)

    def _cast(self, x, dtype):
        if isinstance(x, (list, tuple)):
            return type(x)(self._cast(v, dtype) for v in x)
        if not (isinstance(x, torch.Tensor) and x.is_floating_point()) or x.dtype in (dtype, torch.float64):
            return x
        if dtype == self.dtype and x.is_leaf and x.requires_grad:
            if id(x) not in self._cache:
                self._cache[id(x)] = (x, x.to(dtype))   # x kept: its id stays unique while cached
            return self._cache[id(x)][1]
        return x.to(dtype)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in LOWER or name in FP32:
            dtype = self.dtype if name in LOWER else torch.float32
            args, kwargs = self._cast(args, dtype), {k: self._cast(v, dtype) for k, v in kwargs.items()}
        elif name in FP32_OUTPUT and "dtype" not in kwargs and _floats(args) and \
                any(t.dtype in (torch.float16, torch.bfloat16) for t in _floats(args)):
            kwargs = {**kwargs, "dtype": torch.float32}
        elif name in PROMOTE and len({t.dtype for t in _floats(args)}) > 1:
            widest = max((t.dtype for t in _floats(args)), key=lambda d: torch.finfo(d).bits)
            args = self._cast(args, widest)
        return func(*args, **kwargs)


def _floats(args) -> list[torch.Tensor]:
    return [t for t in tree_flatten(args)[0] if isinstance(t, torch.Tensor) and t.is_floating_point()]


def _autocast_for(precision: str, device):
    """What ``fa3d.train.optimizer_step`` gets as ``autocast`` here: the emulation for 16-bit precisions."""
    return contextlib.nullcontext() if PRECISIONS[precision] is None else CudaAutocast(PRECISIONS[precision])


# ----------------------------------------------------------------------------- one stage

@dataclass
class StageMemory:
    """Bytes of one stage's training step at one batch size."""
    stage: str
    batch: int
    precision: str
    weights: int        # parameters and buffers of the whole cascade
    grads: int          # all gradients of the trained parameters (after the backward pass)
    state: int          # optimiser state (on the device)
    peak: int           # the step's peak of all live storages
    at_peak: dict       # category ("weights", "grads", "state", "other") -> bytes live at the peak
    validation: int     # the peak of validation's forward (after the step, its gradients still live)

    @property
    def activations(self) -> int:
        """What else was live at the peak: saved activations, their gradients, temporaries, the batch
        and its targets."""
        return self.at_peak.get("other", 0)


def example_batch(preset, batch: int) -> dict:
    """A training batch as ``optimizer_step`` takes it, on the default device: image (B,3,S,S) uint8,
    landmarks (B,N,3) crop px (inside the crop, z finite), face_height (B,) px, z_gt_heatmap (B,) bool."""
    S, N = preset.image_size, preset.num_landmarks
    g = torch.Generator().manual_seed(0)
    scale, offset = torch.tensor([0.6 * S, 0.6 * S, 0.2 * S], device="cpu"), 0.2 * S
    landmarks = torch.rand(batch, N, 3, generator=g, device="cpu") * scale + offset
    image = torch.randint(0, 256, (batch, 3, S, S), dtype=torch.uint8, generator=g, device="cpu")
    device = torch.get_default_device()
    return {"image": image.to(device), "landmarks": landmarks.to(device),
            "face_height": torch.full((batch,), 0.6 * S, device=device),
            "z_gt_heatmap": (torch.arange(batch, device=device) % 2 == 0)}


def measure_stage(preset, schedule, stage: str, batch: int, precision: str = "fp32", device="meta",
                  devices=("meta",), block: int = CUDA_BLOCK, channels_last: bool = True,
                  validation_batch: int = VALIDATION_BATCH) -> StageMemory:
    """Two training steps of ``stage`` at ``batch`` (``fa3d.train.optimizer_step``), then validation's forward,
    all under a :class:`StorageTracker` counting ``devices`` with ``block``-byte rounding.

    On CPU tensors (device "cpu", devices ("cpu",)) the same code really computes, for the tests.
    """
    with StorageTracker(devices, block) as tracker, torch.device(device), \
            mock.patch.object(fa3d.train, "autocast", _autocast_for):
        cascade = Cascade.from_preset(preset)
        if channels_last:
            cascade.to_channels_last()
        for t in [*cascade.parameters(), *cascade.buffers()]:
            tracker.tag(t, "weights")
        loss_mod = StageLoss(cascade, stage)
        loss_mod.set_mode(True)
        trained = [p for m in loss_mod.trainable() for p in m.parameters()]
        for p in trained:
            p.register_post_accumulate_grad_hook(lambda p: tracker.tag(p.grad, "grads"))
        opt = make_optimizer(schedule.optimizer, trained, schedule.stage(stage).lr_start)
        opt.param_groups[0]["foreach"] = True     # PyTorch's default for CUDA weights
        data = example_batch(preset, batch)
        for step in range(2):
            tracker.reset_peak()
            if fa3d.train.optimizer_step(loss_mod, opt, data, precision) is None:
                raise ArithmeticError(f"{stage}: the loss or its gradients were not finite")
            for t in [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]:
                tracker.tag(t, "state")
        peak, at_peak = tracker.peak, dict(tracker.at_peak)
        del data
        tracker.reset_peak()
        validation_forward(loss_mod, example_batch(preset, validation_batch), precision)
        live = tracker.live_by
        return StageMemory(stage, batch, precision, live["weights"], live["grads"], live.get("state", 0), peak,
                           at_peak, tracker.peak)


def validation_forward(loss_mod: StageLoss, data: dict, precision: str) -> None:
    """The body of ``fa3d.train.validate`` for one batch: the frozen cascade's loss, no gradients."""
    loss_mod.set_mode(False)
    with torch.no_grad(), _autocast_for(precision, None):
        loss, out = loss_mod(data["image"], data["landmarks"], data["face_height"],
                             torch.zeros_like(data["z_gt_heatmap"]))
        out["landmarks"].float()
    loss_mod.set_mode(True)


# ----------------------------------------------------------------------------- the largest batch

def usable_bytes(total_mib: int) -> float:
    """A card's memory left for tensors: its total less the assumed headroom (1.5 GiB + 10 %)."""
    total = total_mib * 2 ** 20
    return total * (1 - HEADROOM_FRACTION) - HEADROOM_GIB * GIB


def linear_fit(a: StageMemory, b: StageMemory) -> tuple[float, float]:
    """(bytes at batch 0, bytes per image) of the peak, from two measurements at different batches."""
    per_image = (b.peak - a.peak) / (b.batch - a.batch)
    return a.peak - per_image * a.batch, per_image


def largest_batch(fixed: float, per_image: float, usable: float) -> int:
    """The largest batch whose extrapolated peak fits in ``usable`` bytes (0: not even one image)."""
    return max(0, math.floor((usable - fixed) / per_image))


# ----------------------------------------------------------------------------- the emulation, checked

@contextlib.contextmanager
def real_cuda_autocast(dtype: torch.dtype):
    """CUDA autocast switched on by hand: ``torch.autocast("cuda")`` disables itself without a GPU."""
    torch.set_autocast_enabled("cuda", True)
    torch.set_autocast_dtype("cuda", dtype)
    torch.autocast_increment_nesting()
    try:
        yield
    finally:
        if torch.autocast_decrement_nesting() == 0:
            torch.clear_autocast_cache()
        torch.set_autocast_enabled("cuda", False)


def forward_dtypes(preset, stage: str, batch: int, real: bool, dtype=torch.bfloat16) -> tuple[list, int]:
    """The stage's training forward: ([(module name, output dtype)] for every module, in call order;
    bytes live at its end). ``real``: on fake CUDA tensors under CUDA autocast; else on meta under
    :class:`CudaAutocast`."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    fake = FakeTensorMode() if real else contextlib.nullcontext()
    with fake, torch.device("cuda" if real else "meta"):
        loss_mod = StageLoss(Cascade.from_preset(preset), stage)   # contiguous: fake weights cannot be swapped
        loss_mod.set_mode(True)
        data = example_batch(preset, batch)
        seen = []
        hooks = [m.register_forward_hook(lambda m, i, o, name=name: seen.append(
                 (name, tuple(t.dtype for t in tree_flatten(o)[0] if isinstance(t, torch.Tensor)))))
                 for name, m in loss_mod.named_modules()]
        with StorageTracker(("cuda", "meta"), CUDA_BLOCK) as tracker:
            with real_cuda_autocast(dtype) if real else CudaAutocast(dtype):
                out = loss_mod(data["image"], data["landmarks"], data["face_height"], data["z_gt_heatmap"])
            live = tracker.live
        for h in hooks:
            h.remove()
        del out
    return seen, live


def check_autocast(preset, stage: str, batch: int = 2) -> str:
    """Whether :class:`CudaAutocast` gives every module of the stage's forward the dtype real CUDA autocast
    gives it, and the same bytes at the forward's end: "same", a difference, or why it could not check."""
    try:
        real, real_live = forward_dtypes(preset, stage, batch, real=True)
    except Exception as e:   # CUDA autocast on fake tensors needs a CUDA build of PyTorch
        return f"not checked ({type(e).__name__}: {str(e).splitlines()[0][:80]})"
    emulated, emulated_live = forward_dtypes(preset, stage, batch, real=False)
    if real != emulated:
        diff = next((r, e) for r, e in zip(real + [None], emulated + [None]) if r != e)
        return f"differs at {diff}"
    return "same" if real_live == emulated_live else f"dtypes same, bytes {real_live} (real) vs {emulated_live}"


# ----------------------------------------------------------------------------- the report

def gib(n: float) -> str:
    return f"{n / GIB:.2f}"


@dataclass
class Fit:
    """One stage at one precision: its measurement at the batch B, and the line through the peaks at B and 2B."""
    at_b: StageMemory
    fixed: float        # bytes at batch 0 (extrapolated)
    per_image: float    # bytes per image

    def largest_batch(self, usable: float) -> int:
        return largest_batch(self.fixed, self.per_image, usable)


def measure_all(preset, schedule, stages, precisions, batch: int | None) -> dict[tuple[str, str], Fit]:
    """(stage, precision) -> its :class:`Fit`, measured at the schedule's batch (or ``batch``) and twice it."""
    fits = {}
    for precision in precisions:
        for stage in stages:
            b = batch or schedule.stage(stage).batch_size
            at_b = measure_stage(preset, schedule, stage, b, precision)
            at_2b = measure_stage(preset, schedule, stage, 2 * b, precision)
            fits[stage, precision] = Fit(at_b, *linear_fit(at_b, at_2b))
    return fits


def print_stage_table(fits: dict) -> None:
    print("| stage | precision | batch | weights | grads live at the peak (all) | optimiser state | activations etc. "
          "| step peak | + per image | validation peak (batch 64, no grad) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for fit in fits.values():
        m, p = fit.at_b, fit.at_b.at_peak
        print(f"| {m.stage} | {m.precision} | {m.batch} | {gib(p.get('weights', 0))} | {gib(p.get('grads', 0))} "
              f"({gib(m.grads)}) | {gib(p.get('state', 0))} | {gib(m.activations)} | {gib(m.peak)} "
              f"| {gib(fit.per_image)} | {gib(m.validation)} |")
    print("\nAt the step's peak: weights + grads + optimiser state + activations etc. = step peak (activations etc.: "
          "saved activations, their gradients, temporaries, the batch and its targets).")


def print_gpu_table(fits: dict, stages, precisions) -> None:
    print(f"\nLargest training batch per GPU (usable = nvidia-smi total x {1 - HEADROOM_FRACTION:.2f} "
          f"- {HEADROOM_GIB} GiB: an assumed headroom), extrapolated linearly from the peaks at the batches above "
          f"and twice them; {' / '.join(precisions)} (16-bit autocast: bf16, or fp16 on the T4, same bytes). "
          f"'!': validation's batch-64 forward would not fit.\n")
    headers = [f"{name} ({usable_bytes(mib) / GIB:.1f} GiB usable)" for name, mib in GPUS.items()]
    print("| stage | " + " | ".join(headers) + " |")
    print("|---|" + "---|" * len(GPUS))
    for stage in stages:
        cells = []
        for mib in GPUS.values():
            usable = usable_bytes(mib)
            fits_here = [fits[stage, p] for p in precisions]
            cells.append(" / ".join(f"{f.largest_batch(usable)}{'!' if f.at_b.validation > usable else ''}"
                                    for f in fits_here))
        print(f"| {stage} | " + " | ".join(cells) + " |")


def print_checks(preset, schedule, fits: dict, stages, precisions) -> None:
    """The linear fit against one more meta run at the H100's largest batch; the bf16 emulation against
    real CUDA autocast."""
    print("\nChecks (meta runs):")
    h100 = usable_bytes(GPUS["H100 80 GB"])
    for stage in stages:
        for precision in precisions:
            fit = fits[stage, precision]
            n = fit.largest_batch(h100)
            if n > 0:
                m = measure_stage(preset, schedule, stage, n, precision)
                print(f"- linearity, {stage} {precision}: at batch {n} the measured peak is {gib(m.peak)} GiB, "
                      f"the extrapolation {gib(fit.fixed + fit.per_image * n)} GiB")
        if "bf16" in precisions:
            print(f"- bf16 emulation vs real CUDA autocast (fake CUDA tensors, forward, batch 2), {stage}: "
                  f"{check_autocast(preset, stage)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch", type=int, default=None,
                        help="one batch size for every stage (default: the schedule's)")
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--json", type=Path, default=None, help="also write the tables to this JSON file")
    args = parser.parse_args()
    preset, schedule = get_preset(args.preset), get_schedule(args.preset)

    fits = measure_all(preset, schedule, args.stages, args.precisions, args.batch)
    print(f"Preset {args.preset!r} ({preset.image_size} px crops, {preset.num_landmarks} landmarks), "
          f"optimiser {schedule.optimizer}; one training step on the meta device, GiB (2^30 bytes).\n")
    print_stage_table(fits)
    print_gpu_table(fits, args.stages, args.precisions)
    print_checks(preset, schedule, fits, args.stages, args.precisions)
    if args.json:
        args.json.write_text(json.dumps(as_json(args, preset, fits), indent=1) + "\n")


def as_json(args, preset, fits: dict) -> dict:
    """The two tables as data: per stage and precision the step's peak, what each image adds and the
    largest batch per GPU (validation's batch-64 peak beside it)."""
    return {"command": "python benchmarks/gpu_memory.py" + "".join(
                f" --{k} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in vars(args).items() if v is not None and k != "json"),
            "preset": preset.name, "image_size": preset.image_size, "headroom": {
                "fraction": HEADROOM_FRACTION, "gib": HEADROOM_GIB},
            "gpus_usable_gib": {name: round(usable_bytes(mib) / GIB, 2) for name, mib in GPUS.items()},
            "stages": {stage: {precision: {
                "batch": fit.at_b.batch, "step_peak_gib": round(fit.at_b.peak / GIB, 3),
                "per_image_gib": round(fit.per_image / GIB, 4), "validation_peak_gib": round(fit.at_b.validation / GIB, 3),
                "largest_batch": {name: fit.largest_batch(usable_bytes(mib)) for name, mib in GPUS.items()}}
                for (s, precision), fit in fits.items() if s == stage} for stage, _ in fits}}


if __name__ == "__main__":
    main()
