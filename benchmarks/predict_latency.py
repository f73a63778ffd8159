"""CPU latency and throughput of the cascade on photos' faces (crop, detection, regression, Z, map back).

Run: .venv/bin/python benchmarks/predict_latency.py [--run pretrained] [--threads 1 2] [--repeats 30]
Prints the median milliseconds per face through ``FaceAligner`` for one pass, for ``fa3d predict``'s
default with a given box (the crop averaged with its mirror image) and with a detector's box
(REFINE_STEPS re-crops first), and with three test-time crop scales, on a synthetic 256 px image with its face box (the face
detector's time is not included); then faces/s for 32 faces given one at a time
against all in one call (batches of 1, 8 and 32), with channels_last off and on.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fa3d.app.aligner import REFINE_STEPS, FaceAligner  # noqa: E402
from fa3d.data.synthetic import SyntheticFaces  # noqa: E402
from fa3d.predict import MULTI_SCALE  # noqa: E402


def median_s(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="pretrained")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    probe = FaceAligner(args.run, "cpu")
    items = [SyntheticFaces(32, image_size=256, scheme=probe.scheme, seed=3)[i] for i in range(32)]
    one, box = items[0]["image"], [tuple(items[0]["bbox"].tolist())]
    print(f"{args.run}: {probe.image_size} px crops, {probe.num_landmarks} points")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for refine, flip, scales, what in (
                (0, False, (1.0,), "one pass"),
                (0, True, (1.0,), "flip (fa3d predict --bbox's default)"),
                (REFINE_STEPS, True, (1.0,), f"{REFINE_STEPS} re-crops + flip (fa3d predict's default with a detector)"),
                (0, True, MULTI_SCALE, f"flip + {len(MULTI_SCALE)} scales (--scales)")):
            fa = FaceAligner(args.run, "cpu", refine=refine, flip=flip, scales=scales)
            ms = 1000 * median_s(lambda: fa.predict(one, box), args.repeats)
            print(f"  {threads} thread(s), {what}: {ms:6.1f} ms per face (median of {args.repeats})")
        images = [it["image"] for it in items]
        boxes = [[tuple(it["bbox"].tolist())] for it in items]
        for channels_last in (False, True):
            for batch in (1, 8, 32):
                fa = FaceAligner(args.run, "cpu", refine=0, flip=False, scales=(1.0,), batch_size=batch,
                                 channels_last=channels_last)
                s = median_s(lambda: fa.predict(images, boxes), max(3, args.repeats // 10))
                print(f"  {threads} thread(s), one pass, batch {batch:2d}, channels_last {channels_last!s:5s}: "
                      f"{len(images) / s:6.1f} faces/s")


if __name__ == "__main__":
    main()
