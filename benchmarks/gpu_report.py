"""The prepared GPU report: everything to measure the moment a GPU is lent, in one run (<= 8 min on an H100).

    python benchmarks/gpu_report.py --out gpu_report.json            # on the GPU machine
    python benchmarks/gpu_report.py --device cpu --tiny --out r.json # the same code on a CPU, tiny sizes (a test)

Sections (each one a key of the JSON, a block of the printed table; a failing section is reported
with its error and the others still run):
  device      name, compute capability, memory, the precision fa3d picks, the peak used for MFU
  stages      per training stage of the paper preset: images/s, achieved TFLOP/s and MFU (counted
              FLOPs x images/s / the device's peak), peak memory, at the schedule's batch size and at
              the largest power-of-two multiple of it that fits in 90 % of the memory
  input       the input pipeline: images/s of the CPU side per worker (render a synthetic face at 2 S
              or decode a JPEG, then either the whole CPU augmentation or only the device path's draws)
              and of the device side (TrainCrops.finish_batch: warp, colour jitter, degradation), and
              what 16 workers would sustain
  inference   FaceAligner-style prediction: faces/s one face at a time against batches of 32
  ddp         a torchrun smoke run (NCCL on CUDA, gloo on the CPU): 2 steps per stage, exit code
  train       300 steps of the paper preset's detection stage on synthetic faces (20 quick steps with
              --tiny), five epochs of 60 steps: the loss must fall

FLOPs are counted with torch.utils.flop_counter on one forward (convolutions and matmuls; 1 multiply-add
= 2 FLOPs); a training step is taken as 3x the forward of the trained subnets plus 1x the frozen ones.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]
from model_cost import forward_gflops, subnets  # noqa: E402
from train_speed import bench_stage  # noqa: E402

from fa3d.data.synthetic import SyntheticFaces  # noqa: E402
from fa3d.data.transforms import Augment3D  # noqa: E402
from fa3d.models import Cascade, get_preset  # noqa: E402
from fa3d.precision import choose_precision  # noqa: E402
from fa3d.predict import predict_crops  # noqa: E402
from fa3d.models import STAGE_SUBNETS, STAGES  # noqa: E402
from fa3d.schedules import get_schedule  # noqa: E402

#: Dense (no sparsity) peak TFLOP/s of the tensor cores at the precision fa3d picks: vendors' data sheets.
PEAK_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0,
               "L40S": 362.0, "L4": 121.0, "A10G": 125.0, "A10": 125.0, "V100": 125.0, "T4": 65.0,
               "RTX 4090": 165.0, "RTX 3090": 71.0}


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def synced(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def section_device(device, preset) -> dict:
    out = {"device": str(device), "precision": choose_precision("auto", device)[1], "preset": preset.name,
           "image_size": preset.image_size, "torch": torch.__version__, "cpu_cores": os.cpu_count()}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        out.update(name=p.name, capability=f"{p.major}.{p.minor}", memory_gib=round(p.total_memory / 2**30, 1),
                   peak_tflops=peak_tflops(device))
    return out


def stage_gflops(preset) -> dict[str, float]:
    """Counted GFLOP of one training step per image, per stage (3x trained forward + 1x frozen)."""
    fwd = {name: forward_gflops(model, inputs) for name, (model, inputs) in subnets(preset, "meta").items()}
    upto = {"detection": ["detection"], "regression": ["detection", "regression"],
            "joint": ["detection", "regression"], "z": ["detection", "regression", "z"]}
    return {s: sum((3 if n in STAGE_SUBNETS[s] else 1) * fwd[n] for n in upto[s]) for s in STAGES}


def section_stages(device, preset, steps: int, search: bool) -> list[dict]:
    schedule, flops = get_schedule(preset.name), stage_gflops(preset)
    cascade = Cascade.from_preset(preset).to(device)
    if device.type == "cuda":
        cascade.to_channels_last()
    peak, rows = peak_tflops(device), []
    for stage in STAGES:
        batches = [schedule.stage(stage).batch_size]
        while search and device.type == "cuda":
            b = batches[-1] * 2
            try:
                r = bench_stage(cascade, stage, b, preset.image_size, 2, 1, device, schedule.optimizer)
            except torch.cuda.OutOfMemoryError:
                break
            finally:
                cascade.zero_grad(set_to_none=True)
                torch.cuda.empty_cache()
            if r["peak_gpu_mem_gib"] * 2**30 > 0.9 * torch.cuda.get_device_properties(device).total_memory:
                break
            batches.append(b)
        for b in sorted({batches[0], batches[-1]}):
            r = bench_stage(cascade, stage, b, preset.image_size, steps, 2, device, schedule.optimizer)
            tflops = r["images_per_s"] * flops[stage] / 1000
            r.update(gflop_per_image=round(flops[stage], 2), tflops=round(tflops, 2),
                     mfu=round(tflops / peak, 4) if peak else None)
            rows.append(r)
    return rows


def section_input(device, preset, n: int) -> dict:
    """The input pipeline: the CPU side per worker (this process is one worker: render or decode, then
    either the whole CPU augmentation or only the draws of the device path) and the device side
    (TrainCrops.finish_batch: per-sample warp, colour jitter, degradation)."""
    import numpy as np
    from PIL import Image

    from fa3d.data.training import TrainCrops, collate_sources
    S = preset.image_size
    faces = SyntheticFaces(n + 2, image_size=2 * S, scheme="68", seed=0)
    faces[n + 1]                                                          # warm the renderer's caches
    t = time.perf_counter()
    items = [faces[i] for i in range(n)]
    render = n / (time.perf_counter() - t)
    jpegs = []
    for item in items:
        buf = io.BytesIO()
        Image.fromarray(item["image"].permute(1, 2, 0).numpy()).save(buf, format="JPEG", quality=90)
        jpegs.append(buf.getvalue())
    t = time.perf_counter()
    for data in jpegs:
        torch.from_numpy(np.array(Image.open(io.BytesIO(data)).convert("RGB"))).permute(2, 0, 1)
    decode = n / (time.perf_counter() - t)
    rates = {}
    for on_device in (False, True):
        crops = TrainCrops(items, Augment3D(S, scheme="68"), seed=0, on_device=on_device)
        t = time.perf_counter()
        samples = [crops[i] for i in range(n)]
        rates[on_device] = n / (time.perf_counter() - t)
    batch = collate_sources(samples)
    batch = {k: [t.to(device) for t in x] if isinstance(x, list) else x.to(device) for k, x in batch.items()}
    crops.finish_batch(batch)
    synced(device)
    reps = 10 if device.type == "cuda" else 2
    t = time.perf_counter()
    for _ in range(reps):
        crops.finish_batch(batch)
    synced(device)
    device_side = reps * n / (time.perf_counter() - t)
    cores = 16

    def per_worker(a, b):   # one worker does both steps, one after the other
        return 1 / (1 / a + 1 / b)
    return {"source_size": 2 * S, "crop_size": S, "render_per_s": round(render, 1), "jpeg_decode_per_s": round(decode, 1),
            "cpu_augment_per_s": round(rates[False], 1), "device_path_draws_per_s": round(rates[True], 1),
            "device_side_per_s": round(device_side, 1),
            "per_worker_render_then_cpu_augment": round(per_worker(render, rates[False]), 1),
            "per_worker_jpeg_then_cpu_augment": round(per_worker(decode, rates[False]), 1),
            "per_worker_jpeg_then_draws": round(per_worker(decode, rates[True]), 1),
            "per_worker_cached_then_draws": round(rates[True], 1),
            f"estimate_{cores}_workers_cached_then_draws": round(cores * rates[True], 1),
            f"estimate_{cores}_workers_jpeg_then_draws": round(cores * per_worker(decode, rates[True]), 1),
            f"estimate_{cores}_workers_cached_then_cpu_augment": round(cores * rates[False], 1)}


def section_inference(device, preset) -> dict:
    cascade = Cascade.from_preset(preset).to(device).eval()
    precision = choose_precision("auto", device)[0]
    crops = torch.randint(0, 256, (32, 3, preset.image_size, preset.image_size), dtype=torch.uint8)
    out = {}
    for batch in (1, 32):
        predict_crops(cascade, crops[:batch], "z", batch, device, precision)
        synced(device)
        t = time.perf_counter()
        for i in range(0, len(crops), batch):
            predict_crops(cascade, crops[i:i + batch], "z", batch, device, precision)
        synced(device)
        out[f"faces_per_s_batch_{batch}"] = round(len(crops) / (time.perf_counter() - t), 1)
    return out


def _fa3d(args: list[str], torchrun: bool = False, timeout: int = 300) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"] if torchrun \
        else [sys.executable]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run([*launcher, "-m", "fa3d", "train", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def section_ddp(device, tiny: bool, work: Path) -> dict:
    preset = "quick" if tiny else "paper"
    args = ["--preset", preset, "--no-pretrained", "--out", str(work / "ddp"), "--num-train", "16", "--num-valid", "2",
            "--max-steps", "2", "--device", device.type, "--no-progress"] + (["--synthetic-size", "64"] if tiny else [])
    proc = _fa3d(args, torchrun=True)
    return {"backend": "nccl" if device.type == "cuda" else "gloo", "returncode": proc.returncode,
            "tail": (proc.stdout + proc.stderr)[-600:] if proc.returncode else ""}


def section_train(device, tiny: bool, work: Path) -> dict:
    steps = 20 if tiny else 300
    args = ["--preset", "quick" if tiny else "paper", "--no-pretrained", "--stages", "detection",
            "--out", str(work / "train"), "--num-train", str(64 if tiny else 8 * steps // 5), "--num-valid", "8",
            "--max-steps", str(steps), "--device", device.type, "--no-progress"]   # 5 epochs of steps / 5
    t = time.perf_counter()
    proc = _fa3d(args, timeout=600)
    seconds = time.perf_counter() - t
    from fa3d.runs import read_log
    log = read_log(work / "train") if proc.returncode == 0 else []
    losses = [r["train_loss"] for r in log]
    return {"steps": steps, "seconds": round(seconds, 1), "returncode": proc.returncode,
            "first_epoch_loss": losses[0] if losses else None, "last_epoch_loss": losses[-1] if losses else None,
            "loss_fell": bool(len(losses) >= 2 and losses[-1] < losses[0]),
            "tail": (proc.stdout + proc.stderr)[-600:] if proc.returncode else ""}


def run_section(report: dict, name: str, fn, *args) -> None:
    t = time.perf_counter()
    try:
        report[name] = fn(*args)
    except Exception as e:  # a report of the other sections beats none
        report[name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-1500:]}
    print(f"[{name}: {time.perf_counter() - t:.1f} s]", flush=True)


def print_table(report: dict) -> None:
    d = report.get("device", {})
    print(f"\n{d.get('name', d.get('device'))}: {d.get('precision')}; preset {d.get('preset')} ({d.get('image_size')} px)")
    for r in report.get("stages", []) if isinstance(report.get("stages"), list) else []:
        mfu = f"{100 * r['mfu']:.1f} %" if r.get("mfu") is not None else "n/a"
        mem = f"{r['peak_gpu_mem_gib']:.1f} GiB" if "peak_gpu_mem_gib" in r else ""
        print(f"  {r['stage']:>10} batch {r['batch']:>4}: {r['images_per_s']:9.1f} img/s  {r['tflops']:7.2f} TFLOP/s  "
              f"MFU {mfu:>7}  {mem}")
    for name in ("input", "inference", "ddp", "train"):
        if name in report:
            shown = {k: v for k, v in report[name].items() if k not in ("traceback", "tail")}
            print(f"  {name}: {json.dumps(shown)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="quick preset, a few steps: the CPU form the tests run")
    ap.add_argument("--out", type=Path, default=Path("gpu_report.json"))
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            sys.exit("no CUDA device here: run with --device cpu --tiny for the CPU form")
        torch.backends.cudnn.benchmark = True
    preset = get_preset("quick" if args.tiny else "paper")
    report = {"date": time.strftime("%Y-%m-%d"), "tiny": args.tiny}
    with tempfile.TemporaryDirectory(prefix="fa3d-gpu-report-") as tmp:
        work = Path(tmp)
        run_section(report, "device", section_device, device, preset)
        run_section(report, "stages", section_stages, device, preset, 3 if args.tiny else 20, not args.tiny)
        run_section(report, "input", section_input, device, preset, 8 if args.tiny else 64)
        run_section(report, "inference", section_inference, device, preset)
        run_section(report, "ddp", section_ddp, device, args.tiny, work)
        run_section(report, "train", section_train, device, args.tiny, work)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print_table(report)
    print(f"\nwrote {args.out}")
    return 0 if not any(isinstance(v, dict) and "error" in v for v in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
