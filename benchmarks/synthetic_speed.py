"""Images per second of the synthetic face dataset on one CPU core.

Run: .venv/bin/python benchmarks/synthetic_speed.py [--n 200] [--sizes 128 256]
"""
import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fa3d.data.synthetic import SyntheticFaces  # noqa: E402


def images_per_second(image_size: int, n: int, warmup: int = 50) -> float:
    ds = SyntheticFaces(n + warmup, image_size=image_size, seed=0)
    for i in range(warmup):  # builds the cached grids (a few per image size, once per process)
        ds[n + i]
    start = time.perf_counter()
    for i in range(n):
        ds[i]
    return n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images per size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    args = parser.parse_args()
    torch.set_num_threads(1)
    for size in args.sizes:
        print(f"{size:4d} px: {images_per_second(size, args.n):7.1f} images/s (1 thread, {args.n} images)")


if __name__ == "__main__":
    main()
