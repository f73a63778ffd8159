"""Images per second of the synthetic face dataset on one CPU core, per set of levers, back to back.

Run: .venv/bin/python benchmarks/synthetic_speed.py [--n 200] [--sizes 128 256] [--levers default shipped]

``--levers`` names sets: ``default`` (the five levers a run gets when it names none), ``shipped`` (the
shipped model's, ``make pretrained``'s PRETRAINED_LEVERS), ``all``, or a comma-separated list. The sets are
timed in turns (``--rounds``, the median kept), so a machine that slows down mid-run slows each alike.
The faces are scheme 68 (the shipped model's), so ``even_jaw`` does its work.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fa3d.data.synthetic import DEFAULT_LEVERS, LEVERS, SyntheticFaces  # noqa: E402

SETS = {"default": DEFAULT_LEVERS, "shipped": (*DEFAULT_LEVERS, "even_jaw", "photo_poses"), "all": LEVERS}


def images_per_second(ds: SyntheticFaces, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        ds[i]
    return n / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images per size and set")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--levers", nargs="+", default=["default", "shipped"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for size in args.sizes:
        sets = {name: SETS.get(name) or tuple(x for x in name.split(",") if x) for name in args.levers}
        data = {name: SyntheticFaces(args.n + 50, image_size=size, scheme="68", seed=0, levers=levers)
                for name, levers in sets.items()}
        for ds in data.values():   # builds the cached grids (a few per image size, once per process)
            for i in range(50):
                ds[args.n + i]
        rates = {name: [] for name in data}
        for _ in range(args.rounds):
            for name, ds in data.items():
                rates[name].append(images_per_second(ds, args.n))
        first = statistics.median(rates[args.levers[0]])
        for name in data:
            rate = statistics.median(rates[name])
            print(f"{size:4d} px, {name:10s}: {rate:7.1f} images/s, {1000 / rate:6.2f} ms a face "
                  f"({first / rate - 1:+.0%} time against {args.levers[0]}; 1 thread, {args.n} images, "
                  f"median of {args.rounds})")


if __name__ == "__main__":
    main()
