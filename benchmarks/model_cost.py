"""Parameters and forward GFLOPs per image of each subnetwork of each preset.

    python benchmarks/model_cost.py                 # Markdown table (meta device: instant, no memory)
    python benchmarks/model_cost.py --time quick    # + measured fwd+bwd ms/image on this CPU

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` on the meta device
(1 multiply-add = 2 FLOPs; convolutions and matmuls only, so BN/ReLU/pooling are
not counted). Times are train-mode forward + backward of a mean-square loss, batch
16 by default; the fastest of the timed repeats is reported, as other processes
on a shared machine only ever make a step slower.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from fa3d.models import DetectionNet, RegressionNet, ZRegressor, get_preset, num_parameters

PAPER_EXPECTED = {"detection": "80.1 / 58.2 M", "regression": "~23 / 3.4 M", "z": "103.5 / 63.0 M"}


def subnets(preset, device="cpu"):
    """name -> (module, example inputs at batch 1) for the three subnetworks of ``preset``."""
    S, N = preset.image_size, preset.num_landmarks
    zs = preset.z.input_size or S    # the Z net may see the crop smaller (the medium preset: 64 px)
    with torch.device(device):
        images = torch.zeros(1, 3, S, S)
        detection = DetectionNet(preset.detection, N)
        features = detection.backbone.stride4_channels
        regression_inputs = (images, torch.zeros(1, N, S // 4, S // 4))
        if preset.regression.detection_features:
            regression_inputs += (torch.zeros(1, features, S // 4, S // 4),)
        return {
            "detection": (detection, (images,)),
            "regression": (RegressionNet(preset.regression, N, features), regression_inputs),
            "z": (ZRegressor(preset.z, N), (torch.zeros(1, 3, zs, zs), torch.zeros(1, N, zs, zs))),
        }


def forward_gflops(model, inputs) -> float:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops() / 1e9


def train_ms_per_image(model, inputs, batch: int = 16, repeats: int = 5, warmup: int = 2) -> float:
    """Fastest train-mode forward+backward time per image, in ms."""
    inputs = [x.expand(batch, *x.shape[1:]).clone().normal_() for x in inputs]
    model.train()
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        model(*inputs).square().mean().backward()
        times.append(time.perf_counter() - start)
    return min(times[warmup:]) / batch * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["paper", "quick"])
    parser.add_argument("--time", nargs="*", default=[], metavar="PRESET",
                        help="presets to time on this CPU (fwd+bwd, ms/image)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print("| preset | subnet | inputs | params (M) | fwd GFLOP/img | expected for the paper preset (our estimate) GFLOP / params"
          + (f" | fwd+bwd ms/img (batch {args.batch}, {args.threads} thr)" if args.time else "") + " |")
    print("|---|---|---|---|---|---" + ("|---" if args.time else "") + "|")
    for name in args.presets:
        preset = get_preset(name)
        for sub, (model, inputs) in subnets(preset, "meta").items():
            params = num_parameters(model) / 1e6
            shape = " + ".join("×".join(str(d) for d in x.shape[1:]) for x in inputs)
            row = (f"| {name} | {sub} | {shape} | {params:.2f} | {forward_gflops(model, inputs):.2f} | "
                   f"{PAPER_EXPECTED[sub] if name == 'paper' else ''}")
            if name in args.time:
                cpu_model, cpu_inputs = subnets(preset, "cpu")[sub]
                row += f" | {train_ms_per_image(cpu_model, cpu_inputs, args.batch):.1f}"
            elif args.time:
                row += " | "
            print(row + " |")


if __name__ == "__main__":
    main()
