"""What each pass of ``fa3d predict`` buys on real faces: the mirror, and the re-crops after a detector's box.

Run: .venv/bin/python benchmarks/predict_passes.py --data 300w:../shared/real-samples/300w-train [--split validation]

For every face of the split, NME (% of the outer-eye-corner distance, 2D) of the shipped model through
``FaceAligner``:
- from the ground-truth landmark box (what ``fa3d predict --bbox`` takes): one pass, and the crop
  averaged with its mirror (2 passes, ``--bbox``'s default);
- from a face detector's box (dlib's HOG detector, fa3d's offline fallback; the detection that overlaps
  the ground truth most, on the faces it finds): 0, 1 and 2 re-crops around the predicted landmarks
  (``--refine``), each with the mirror (2, 4 and 6 passes; 2 re-crops is ``fa3d predict``'s default).
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fa3d.app.aligner import FaceAligner  # noqa: E402
from fa3d.app.face_boxes import get_detector  # noqa: E402
from fa3d.data.item import landmark_box  # noqa: E402
from fa3d.data.splits import test_dataset  # noqa: E402
from fa3d.metrics import nme_eyes  # noqa: E402
from fa3d.runs import load_run, resolve_run  # noqa: E402


def overlap(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union


def nme(aligner: FaceAligner, items, boxes) -> float:
    pred = torch.stack([torch.from_numpy(aligner.landmarks(it["image"], [box])[0][:, :2])
                        for it, box in zip(items, boxes)])
    gt = torch.stack([it["landmarks"][:, :2] for it in items])
    return 100 * float(nme_eyes(pred.double(), gt.double()).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--run", default="pretrained")
    args = parser.parse_args()
    data = test_dataset(args.data, load_run(resolve_run(args.run), "cpu").checkpoint, None, args.split)
    items = [data[i] for i in range(len(data))]
    truth = [landmark_box(it["landmarks"]).tolist() for it in items]
    print(f"{len(items)} faces of {args.data} ({args.split}), model {args.run}")
    print("| box | passes | NME % |\n|---|---|---|")
    for flip in (False, True):
        fa = FaceAligner(args.run, "cpu", flip=flip, refine=0, log=lambda *a: None)
        print(f"| ground truth, {'crop + mirror' if flip else 'one pass'} | {1 + flip} | {nme(fa, items, truth):.2f} |")
    detector = get_detector("dlib", log=lambda *a: None)
    found, boxes = [], []
    for it, box in zip(items, truth):
        detections = detector(it["image"])
        best = max(detections, key=lambda d: overlap(d.box, box), default=None)
        if best is not None and overlap(best.box, box) > 0.2:
            found.append(it)
            boxes.append(list(best.box))
    for refine in (0, 1, 2):
        fa = FaceAligner(args.run, "cpu", flip=True, refine=refine, log=lambda *a: None)
        # a given box is used as it is unless refine says otherwise, which is what a detector's box gets
        print(f"| dlib's detector ({len(found)} of {len(items)} faces found), {refine} re-crop(s) + mirror "
              f"| {2 * (1 + refine)} | {nme(fa, found, boxes):.2f} |")
    fa = FaceAligner(args.run, "cpu", flip=True, refine=0, log=lambda *a: None)
    print(f"| ground truth, crop + mirror, on those {len(found)} faces | 2 | "
          f"{nme(fa, found, [b for it, b in zip(items, truth) if any(it is f for f in found)]):.2f} |")


if __name__ == "__main__":
    main()
