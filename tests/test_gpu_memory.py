"""benchmarks/gpu_memory.py counts right: exact on hand-worked cases, and the same peak on the meta
device as on real CPU tensors for the quick preset's training steps (so its paper-preset GPU table,
computed on meta, counts what a real run would allocate)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fa3d.models import STAGE_SUBNETS, Cascade, get_preset
from fa3d.schedules import get_schedule

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_memory", ROOT / "benchmarks" / "gpu_memory.py")
gpu_memory = importlib.util.module_from_spec(_spec)
sys.modules["gpu_memory"] = gpu_memory   # dataclasses look their module up there
_spec.loader.exec_module(gpu_memory)


# tiny convolutions on a shared 2-core machine: one thread (conftest.py) is far faster than two fighting
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_tracker_counts_a_storage_once_until_it_is_freed(device):
    with gpu_memory.StorageTracker((device,)) as tracker:
        x = torch.empty(1000, dtype=torch.float32, device=device)
        assert tracker.live == tracker.peak == 4000
        view = x.view(10, 100)[2:]          # a view: the same storage, not counted again
        y = torch.empty(250, dtype=torch.float64, device=device)
        assert tracker.live == tracker.peak == 6000
        del x, view
        assert tracker.live == 2000
        del y
        assert tracker.live == 0 and tracker.peak == 6000


def test_tracker_rounds_as_the_cuda_allocator_and_sorts_by_category():
    with gpu_memory.StorageTracker(("meta",), block=512) as tracker:
        x = torch.empty(1000, device="meta")      # 4000 bytes -> 8 blocks of 512
        s = torch.empty((), device="meta")        # 4 bytes -> one block
        assert tracker.live == 4096 + 512
        tracker.tag(x, "weights")
        assert tracker.live_by == {"other": 512, "weights": 4096}
        del x
        assert tracker.live_by == {"other": 512, "weights": 0}
        assert tracker.at_peak == {"other": 4608}     # as they were at the peak
        del s


def test_mse_loss_keeps_its_elementwise_buffer_on_real_kernels():
    """Why real_kernel_bytes exists: if PyTorch changes this kernel, update it (and this test)."""
    a, b = torch.randn(2, 5, 8, 8), torch.randn(2, 5, 8, 8)
    assert F.mse_loss(a, b).untyped_storage().nbytes() == a.numel() * 4
    with gpu_memory.StorageTracker(("meta",)) as tracker:
        loss = F.mse_loss(a.to("meta"), b.to("meta"))
        assert tracker.live == a.numel() * 4        # the inputs' meta copies are freed, the loss is not
        del loss


@pytest.mark.parametrize("stage, precision", [("detection", "fp32"), ("regression", "fp32"), ("joint", "fp32"),
                                              ("z", "fp32"), ("joint", "bf16")])
def test_meta_step_counts_what_the_real_cpu_step_allocates(stage, precision):
    """The quick preset's two training steps and validation forward, really computed on the CPU and
    on meta: the same bytes at every peak. The meta run also counts CPU storages (the optimiser's step
    counters), as the CPU run does."""
    preset, schedule = get_preset("quick"), get_schedule("quick")
    kw = dict(block=1, channels_last=False, validation_batch=4)
    cpu = gpu_memory.measure_stage(preset, schedule, stage, 2, precision, device="cpu", devices=("cpu",), **kw)
    meta = gpu_memory.measure_stage(preset, schedule, stage, 2, precision, device="meta", devices=("meta", "cpu"), **kw)
    assert cpu == meta
    assert cpu.peak == sum(cpu.at_peak.values()) and cpu.activations > 0
    with torch.device("meta"):
        cascade = Cascade.from_preset(preset)
    n_trained = sum(p.numel() for name in STAGE_SUBNETS[stage] for p in getattr(cascade, name).parameters())
    assert meta.grads == 4 * n_trained                   # one fp32 gradient per trained weight
    assert meta.state >= 2 * 4 * n_trained               # Adam (the quick schedule): two per weight


def test_bf16_emulation_matches_real_cuda_autocast():
    verdict = gpu_memory.check_autocast(get_preset("quick"), "joint")
    if verdict.startswith("not checked"):
        pytest.skip(verdict)    # needs a CUDA build of PyTorch (no GPU)
    assert verdict == "same"


def test_largest_batch_arithmetic():
    gib = gpu_memory.GIB
    assert gpu_memory.usable_bytes(16 * 1024) == pytest.approx(16 * gib * 0.9 - 1.5 * gib)
    at = lambda b, peak: gpu_memory.StageMemory("z", b, "fp32", 0, 0, 0, peak, {}, 0)   # noqa: E731
    fixed, per_image = gpu_memory.linear_fit(at(8, 5 * gib), at(16, 9 * gib))
    assert (fixed, per_image) == (1 * gib, 0.5 * gib)
    assert gpu_memory.largest_batch(fixed, per_image, 10.9 * gib) == 19
    assert gpu_memory.largest_batch(fixed, per_image, 0.5 * gib) == 0
