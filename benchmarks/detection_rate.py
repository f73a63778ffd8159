"""How often each face detector finds the face, per yaw bin: synthetic test faces and the real dev files.

A face counts as found when one detection's centre lies inside the face's ground-truth landmark box
and its side, sqrt(w h), is within 0.5-2x the landmark box's (detectors frame faces differently;
this asks only "is the face there"). Detections that match no face are counted as false alarms.
Detectors that cannot run here (YuNet without its cached model, dlib not installed) are skipped
with the reason.

Run: .venv/bin/python benchmarks/detection_rate.py [--num 300] [--out detection_rate.json]
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fa3d.data.readers import open_dataset  # noqa: E402
from fa3d.data.synthetic import SyntheticFaces  # noqa: E402
from fa3d.app.face_boxes import DlibHogDetector, FaceDetectorUnavailable, HaarDetector, YuNetDetector  # noqa: E402

SAMPLES = ROOT.parent / "shared" / "real-samples"
from fa3d.metrics import YAW_BINS  # noqa: E402


def found(detections, landmarks) -> tuple[bool, int]:
    """(the face is found, number of detections that are not it)."""
    lo, hi = landmarks[:, :2].min(0), landmarks[:, :2].max(0)
    side = float(np.sqrt(np.prod(hi - lo)))
    hits = 0
    for d in detections:
        x1, y1, x2, y2 = d.box
        c = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
        s = np.sqrt(max(x2 - x1, 0) * max(y2 - y1, 0))
        hits += bool((c >= lo).all() and (c <= hi).all() and 0.5 * side <= s <= 2 * side)
    return hits > 0, len(detections) - min(hits, 1)


def detectors():
    out = {}
    for name, make in (("haar", HaarDetector), ("dlib", DlibHogDetector),
                       ("yunet", lambda: YuNetDetector(download=False))):
        try:
            out[name] = make()
        except FaceDetectorUnavailable as e:
            print(f"skipping {name}: {e}")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=300, help="synthetic test faces (256 px images)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    dets = detectors()
    faces = [("synthetic", SyntheticFaces(args.num, image_size=256, scheme="68", seed=20000))]
    if SAMPLES.is_dir():
        faces += [("real " + kind, open_dataset(f"{kind}:{SAMPLES / folder}", scheme="68"))
                  for kind, folder in (("folder", "photos-68"), ("aflw2000", "aflw2000-3d"), ("300wlp", "300w-lp"))]
    table = {name: {} for name in dets}
    for source, ds in faces:
        for i in range(len(ds)):
            item = ds[i]
            yaw = abs(float(item["pose"][0])) if "pose" in item and np.isfinite(float(item["pose"][0])) else None
            key = source if not source == "synthetic" else \
                next(f"synthetic |yaw| {a}-{b}" for a, b in YAW_BINS if yaw < b or b == 90)
            lm = item["landmarks"].numpy()
            for name, det in dets.items():
                ok, false = found(det(item["image"]), lm)
                row = table[name].setdefault(key, {"faces": 0, "found": 0, "false alarms": 0, "missed": []})
                row["faces"] += 1
                row["found"] += ok
                row["false alarms"] += false
                if not ok and not source == "synthetic":
                    row["missed"].append(str(item.get("id", i)))
    keys = sorted({k for t in table.values() for k in t}, key=lambda k: (not k.startswith("synthetic"), k))
    print(f"\n{'faces':28s}" + "".join(f"{n:>22s}" for n in dets))
    for k in keys:
        cells = []
        for n in dets:
            r = table[n][k]
            cells.append(f"{r['found']}/{r['faces']} ({100 * r['found'] / r['faces']:.0f} %), {r['false alarms']} fa")
        print(f"{k:28s}" + "".join(f"{c:>22s}" for c in cells))
    for n in dets:
        missed = [m for k in keys for m in table[n][k]["missed"]]
        print(f"{n} missed (real): {', '.join(missed) or 'none'}")
    if args.out:
        args.out.write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()
