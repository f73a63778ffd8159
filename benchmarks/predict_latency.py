"""CPU latency of one face through a trained cascade (crop, detection, regression, Z, map back).

Run: .venv/bin/python benchmarks/predict_latency.py [--run pretrained] [--threads 1 2] [--repeats 30]
Prints the median milliseconds per face for one pass, and for ``fa3d predict``'s default (REFINE_STEPS
re-crops, each averaged with its mirror image), on a synthetic 256 px image with its face box (the
face detector's time is not included).
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fa3d.data.synthetic import SyntheticFaces  # noqa: E402
from fa3d.predict import REFINE_STEPS, predict_image  # noqa: E402
from fa3d.pretrained import resolve_run  # noqa: E402
from fa3d.runs import load_run  # noqa: E402


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="pretrained")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    cascade, ckpt = load_run(resolve_run(args.run), "cpu")
    size = ckpt["preset"]["image_size"]
    item = SyntheticFaces(1, image_size=256, scheme=ckpt["scheme"], seed=3)[0]
    print(f"{args.run}: {ckpt['preset']['name']} preset, {size} px crops, {ckpt['preset']['num_landmarks']} points")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for refine, flip in ((0, False), (REFINE_STEPS, True)):
            ms = median_ms(lambda: predict_image(cascade, item["image"], item["bbox"], size, refine=refine, flip=flip),
                           args.repeats)
            what = "one pass" if not refine else f"{refine} re-crops + flip (fa3d predict's default)"
            print(f"  {threads} thread(s), {what}: {ms:6.1f} ms per face (median of {args.repeats})")


if __name__ == "__main__":
    main()
