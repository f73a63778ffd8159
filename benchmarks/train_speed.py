"""Training speed of each stage: images/s (and peak GPU memory on CUDA) for a preset.

    python benchmarks/train_speed.py --preset quick --steps 20
    python benchmarks/train_speed.py --preset paper --steps 50 --device cuda

Random crops and landmarks of the preset's size, the preset's batch sizes, the
stage losses of fa3d.models.losses (targets built on the device), bf16 autocast and
channels_last on CUDA as in training. Data loading is not included.
"""
from __future__ import annotations

import argparse
import time

import torch

from fa3d.data.training import random_batch
from fa3d.models.losses import StageLoss
from fa3d.models import Cascade, get_preset
from fa3d.models import STAGES
from fa3d.schedules import get_schedule, make_optimizer
from fa3d.train import optimizer_step


def bench_stage(cascade, stage: str, batch: int, size: int, steps: int, warmup: int, device, optimizer: str) -> dict:
    loss_mod = StageLoss(cascade, stage)
    loss_mod.set_mode(True)
    params = [p for m in loss_mod.trainable() for p in m.parameters()]
    opt = make_optimizer(optimizer, params, 1e-5)
    data = random_batch(batch, size, cascade.num_landmarks, device)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup + steps):
        if i == warmup:
            if cuda:
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
        optimizer_step(loss_mod, opt, data)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    out = {"stage": stage, "batch": batch, "images_per_s": steps * batch / seconds,
           "ms_per_image": 1000 * seconds / (steps * batch)}
    if cuda:
        out["peak_gpu_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="quick", choices=["quick", "paper"])
    ap.add_argument("--stages", default=",".join(STAGES))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=None, help="override the schedule's batch sizes")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads)")
    ap.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                    help="default: on CUDA only")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    channels_last = device.type == "cuda" if args.channels_last is None else args.channels_last
    preset, schedule = get_preset(args.preset), get_schedule(args.preset)
    torch.manual_seed(0)
    cascade = Cascade.from_preset(preset).to(device)
    if channels_last:
        cascade.to_channels_last()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"preset {args.preset} ({preset.image_size} px), {name}, channels_last={channels_last}, "
          f"{args.steps} steps after {args.warmup} warm-up")
    for stage in args.stages.split(","):
        batch = args.batch or schedule.stage(stage).batch_size
        r = bench_stage(cascade, stage, batch, preset.image_size, args.steps, args.warmup, device, schedule.optimizer)
        mem = f"  peak GPU memory {r['peak_gpu_mem_gib']:.2f} GiB" if "peak_gpu_mem_gib" in r else ""
        print(f"{stage:>10}: batch {batch:>3}  {r['images_per_s']:8.1f} images/s  "
              f"({r['ms_per_image']:.2f} ms/image){mem}", flush=True)


if __name__ == "__main__":
    main()
