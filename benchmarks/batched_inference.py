"""Faces/s of the paper-size cascade one face at a time against in batches, beside face-alignment's 3D nets.

Run: .venv/bin/python benchmarks/batched_inference.py [--faces 8] [--threads 2] [--preset paper]
(random weights: the networks' cost, not their accuracy; nothing is downloaded). fa3d: the cascade's
forward (detection, regression, Z) on 384 px crops through ``predict_crops``, one pass. face-alignment
(Bulat's ``face_alignment`` package, if installed; only its model files are imported): FAN-4 on 256 px
crops run twice (its default flip) and ResNetDepth, as its 3D pipeline does per face. Repeat with
``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 MALLOC_TOP_PAD_=1073741824`` in the environment
to see glibc's page-fault cost on large batches (issue 12's measurement).
"""
import argparse
import importlib.util
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fa3d.models import Cascade, get_preset  # noqa: E402
from fa3d.predict import predict_crops  # noqa: E402


def faces_per_s(fn, n: int, repeats: int = 2) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def face_alignment_nets():
    """FAN-4 and ResNetDepth from an installed face_alignment, without its package __init__ (which needs
    scikit-image and its detectors), or None."""
    spec = importlib.util.find_spec("face_alignment")
    if spec is None:
        return None
    folder = Path(spec.submodule_search_locations[0]) / "models"
    nets = []
    for name, cls, kw in (("fan", "FAN", {"num_modules": 4}), ("resnet", "ResNetDepth", {})):
        s = importlib.util.spec_from_file_location(f"fa_models_{name}", folder / f"{name}.py")
        module = importlib.util.module_from_spec(s)
        s.loader.exec_module(module)
        nets.append(getattr(module, cls)(**kw).eval())
    return nets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="paper")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    preset = get_preset(args.preset, 68)
    cascade = Cascade.from_preset(preset).eval()
    S, n = preset.image_size, args.faces
    crops = torch.randint(0, 256, (n, 3, S, S), dtype=torch.uint8)
    print(f"{args.threads} thread(s), {n} faces, random weights")
    for channels_last in (False, True):
        if channels_last:
            cascade.to_channels_last()
        one = faces_per_s(lambda: [predict_crops(cascade, crops[i:i + 1], "z", 1) for i in range(n)], n)
        batched = faces_per_s(lambda: predict_crops(cascade, crops, "z", n), n)
        print(f"  fa3d {args.preset} cascade ({S} px), channels_last {channels_last!s:5s}: "
              f"{one:.2f} faces/s one at a time, {batched:.2f} in one batch of {n}")
    nets = face_alignment_nets()
    if nets is None:
        print("  face-alignment: not installed (pip install face-alignment --no-deps is enough here)")
        return
    fan, depth = nets
    x = torch.rand(n, 3, 256, 256)

    @torch.no_grad()
    def fa_pipeline(batch: int):
        for i in range(0, n, batch):
            xi = x[i:i + batch]
            heat = fan(xi)[-1]
            fan(xi.flip(-1))
            up = torch.nn.functional.interpolate(heat, size=256)
            depth(torch.cat([xi, up], 1))

    print(f"  face-alignment FAN-4 + flip + ResNetDepth (256 px): {faces_per_s(lambda: fa_pipeline(1), n):.2f} faces/s "
          f"one at a time, {faces_per_s(lambda: fa_pipeline(n), n):.2f} in one batch of {n}")


if __name__ == "__main__":
    main()
