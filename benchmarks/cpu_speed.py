"""CPU speed of fa3d beside dlib's and face-alignment's landmarkers: one table, milliseconds per face.

Run: .venv/bin/python benchmarks/cpu_speed.py [--threads 1 2] [--repeats 30] [--out speed.json]
     (about 10 minutes on 2 cores; time nothing else meanwhile)

Every row is measured in a fresh Python process (glibc's allocator settings and thread pools
start clean), on the same synthetic 160 px images with a given face box, median of ``--repeats``:

- the one-thread fp32 matmul rate (1024 x 1024), the yardstick: "% of matmul" is a net's counted
  FLOPs per face divided by its time, over that rate;
- fa3d's shipped model, the network alone (uint8 crops in, landmarks out) at batch 1 and batch 32,
  with torch and with ONNX Runtime; then through ``FaceAligner`` with a given box (crop, the
  network, map back): one pass, and the crop averaged with its mirror (``fa3d predict --bbox``'s default);
- the paper-size cascade (384 px, random weights: its cost, not its accuracy) one face at a time
  against a batch of 4, with glibc's default allocator and with fa3d's ``keep_freed_memory``;
- dlib's 68-point shape predictor (``pip install dlib-bin`` and the model file of the
  ``face-recognition-models`` package), 2D only; face-alignment's 3D path (``pip install
  face-alignment --no-deps``: FAN-4 run on the crop and its mirror, then ResNetDepth, 256 px;
  random weights, which cannot be downloaded here: cost only).

With ``--data 300w:DIR`` the table gains each method's NME (% of the outer-eye-corner distance)
on that folder's ``--split`` (default: validation) faces: fa3d with the ground-truth landmark box;
dlib with its own HOG detector's box that overlaps the ground truth most (the box its predictor was
trained with), on the faces it finds. dlib's model was trained on 300-W's training faces, these
included, so its NME here is not a held-out figure.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "benchmarks"))


def median_ms(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def matmul_gflops(repeats: int) -> float:
    a = torch.randn(1024, 1024)
    return 2 * 1024**3 / median_ms(lambda: a @ a, repeats) / 1e6


def faces_and_boxes(n: int):
    from fa3d.data.synthetic import SyntheticFaces

    faces = SyntheticFaces(n, image_size=160, scheme="68", seed=3)
    items = [faces[i] for i in range(n)]
    return [it["image"] for it in items], [tuple(it["bbox"].tolist()) for it in items]


def shipped_rows(repeats: int, run_name: str = "pretrained") -> list[dict]:
    from model_cost import forward_gflops
    from fa3d.app.aligner import FaceAligner
    from fa3d.app.export import OnnxCascade
    from fa3d.predict import predict_crops
    from fa3d.runs import CHECKPOINT_NAME, load_run, resolve_run

    run = load_run(resolve_run(run_name), "cpu")
    label = "shipped model" if run_name == "pretrained" else Path(run_name).name
    S = run.image_size
    crops = torch.randint(0, 256, (32, 3, S, S), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    gflop = forward_gflops(run.cascade, (crops[:1].float() / 255,))
    nets = {"torch": run.cascade,
            "onnxruntime": OnnxCascade(run.cascade, S, checkpoint=resolve_run(run_name) / CHECKPOINT_NAME,
                                       threads=torch.get_num_threads())}
    rows = []
    for backend, net in nets.items():
        for batch in (1, 32):
            ms = median_ms(lambda: predict_crops(net, crops[:batch], "z", batch, device="cpu"), repeats) / batch
            rows.append({"what": f"fa3d {label}, network alone, batch {batch}", "backend": backend,
                         "ms": ms, "gflop": gflop})
    images, boxes = faces_and_boxes(32)
    for backend in nets:
        for flip in (False, True):
            fa = FaceAligner(run_name, "cpu", backend=backend, flip=flip)
            ms = median_ms(lambda: fa.predict(images[0], [boxes[0]]), repeats)
            rows.append({"what": "fa3d FaceAligner, given box, " + ("crop + mirror" if flip else "one pass"),
                         "backend": backend, "ms": ms, "gflop": gflop * (1 + flip)})
        for batch in (1, 32):
            fa = FaceAligner(run_name, "cpu", backend=backend, flip=False, batch_size=batch)
            ms = median_ms(lambda: fa.predict(images, [[b] for b in boxes]), max(5, repeats // 6)) / len(images)
            rows.append({"what": f"fa3d FaceAligner, given box, one pass, 32 faces in batches of {batch}",
                         "backend": backend, "ms": ms, "gflop": gflop})
    return rows


def paper_rows(repeats: int, kept: bool, faces: int = 4) -> list[dict]:
    from fa3d.env import keep_freed_memory
    from fa3d.models import Cascade, get_preset
    from fa3d.predict import predict_crops

    if kept:
        keep_freed_memory(True)
    torch.manual_seed(0)
    preset = get_preset("paper", 68)
    cascade = Cascade.from_preset(preset).eval()
    crops = torch.randint(0, 256, (faces, 3, preset.image_size, preset.image_size), dtype=torch.uint8)
    allocator = "keep_freed_memory" if kept else "glibc default"
    rows = []
    for batch in (1, faces):
        ms = median_ms(lambda: predict_crops(cascade, crops, "z", batch, device="cpu"), repeats, warmup=1) / faces
        rows.append({"what": f"fa3d paper cascade (384 px, random weights), {faces} faces in batches of {batch}",
                     "backend": f"torch, {allocator}", "ms": ms})
    return rows


def dlib_model_file() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("face_recognition_models")   # not imported: it needs pkg_resources
    if spec is None or importlib.util.find_spec("dlib") is None:
        return None
    path = Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    return path if path.is_file() else None


def dlib_rows(repeats: int) -> list[dict]:
    model = dlib_model_file()
    if model is None:
        return [{"what": "dlib 68-point shape predictor", "backend": "not installed (pip install dlib-bin "
                 "face-recognition-models)", "ms": None}]
    import dlib

    predictor = dlib.shape_predictor(str(model))
    images, boxes = faces_and_boxes(1)
    image = np.ascontiguousarray(images[0].permute(1, 2, 0).numpy())
    rect = dlib.rectangle(*(int(round(v)) for v in boxes[0]))
    return [{"what": "dlib 68-point shape predictor (2D), given box", "backend": "dlib",
             "ms": median_ms(lambda: predictor(image, rect), repeats * 10)}]


def face_alignment_rows(repeats: int) -> list[dict]:
    from batched_inference import face_alignment_nets

    nets = face_alignment_nets()
    if nets is None:
        return [{"what": "face-alignment 3D (FAN-4 + flip + ResNetDepth)",
                 "backend": "not installed (pip install face-alignment --no-deps)", "ms": None}]
    fan, depth = nets
    x = torch.rand(1, 3, 256, 256)

    @torch.no_grad()
    def pipeline():
        heat = fan(x)[-1]
        fan(x.flip(-1))
        depth(torch.cat([x, torch.nn.functional.interpolate(heat, size=256)], 1))

    return [{"what": "face-alignment 3D (FAN-4 on the crop and its mirror + ResNetDepth, 256 px, random weights)",
             "backend": "torch", "ms": median_ms(pipeline, max(3, repeats // 6), warmup=1)}]


def accuracy_rows(spec: str, split: str) -> list[dict]:
    """NME (% of the outer-eye-corner distance) of fa3d (one pass, and with its mirror) and dlib on the real faces."""
    from fa3d.app.aligner import FaceAligner
    from fa3d.data.item import landmark_box
    from fa3d.data.splits import test_dataset
    from fa3d.metrics import nme_eyes
    from fa3d.runs import load_run, resolve_run
    from predict_passes import overlap

    data = test_dataset(spec, load_run(resolve_run("pretrained"), "cpu").checkpoint, None, split)
    items = [data[i] for i in range(len(data))]
    gt = torch.stack([it["landmarks"][:, :2] for it in items]).double()
    rows = []
    for flip in (False, True):
        fa = FaceAligner("pretrained", "cpu", flip=flip)
        pred = torch.stack([torch.from_numpy(fa.landmarks(it["image"], [landmark_box(it["landmarks"]).tolist()])[0])
                            for it in items])[..., :2].double()
        rows.append({"method": "fa3d shipped model" + (" + mirror" if flip else ""), "faces": len(items),
                     "nme": 100 * float(nme_eyes(pred, gt).mean())})
    model = dlib_model_file()
    if model is not None:
        import dlib

        detector, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model))
        errors = []
        for it, g in zip(items, gt):
            image = np.ascontiguousarray(it["image"].permute(1, 2, 0).numpy())
            x1, y1, x2, y2 = landmark_box(it["landmarks"]).tolist()
            found = [(overlap((r.left(), r.top(), r.right(), r.bottom()), (x1, y1, x2, y2)), r)
                     for r in detector(image, 1)]
            best_iou, best = max(found, key=lambda f: f[0], default=(0.0, None))
            if best is None or best_iou == 0:
                continue
            shape = predictor(image, best)
            p = torch.tensor([[shape.part(k).x, shape.part(k).y] for k in range(68)], dtype=torch.float64)
            errors.append(float(nme_eyes(p[None], g[None])[0]))
        rows.append({"method": "dlib (its HOG detector's box; trained on 300-W's training faces, these included)",
                     "faces": len(errors), "nme": 100 * float(np.mean(errors)) if errors else None})
    return rows


PARTS = ("matmul", "shipped", "paper", "paper-kept", "dlib", "face-alignment")


def run_part(part: str, threads: int, repeats: int, run_name: str = "pretrained") -> list[dict]:
    torch.set_num_threads(threads)
    if part == "matmul":
        return [{"what": "fp32 matmul 1024 x 1024", "backend": "torch", "gflops": matmul_gflops(repeats)}]
    if part == "shipped":
        return shipped_rows(repeats, run_name)
    if part in ("paper", "paper-kept"):
        return paper_rows(max(5, repeats // 6), kept=part == "paper-kept")
    return dlib_rows(repeats) if part == "dlib" else face_alignment_rows(repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--data", default=None, help="300w:DIR for the accuracy column")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--run", default="pretrained", help="the 64 px model of the fa3d rows (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=None, help="write every row as JSON here")
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)   # one part, in a child process
    args = parser.parse_args()
    if args.part:
        print(json.dumps(run_part(args.part, args.threads[0], args.repeats, args.run)))
        return
    rows = []
    for threads in args.threads:
        for part in args.parts.split(","):
            out = subprocess.run([sys.executable, __file__, "--part", part, "--threads", str(threads),
                                  "--repeats", str(args.repeats), "--run", args.run], check=True, capture_output=True,
                                 text=True).stdout
            rows += [dict(r, threads=threads) for r in json.loads(out.strip().splitlines()[-1])]
    rate = {r["threads"]: r["gflops"] for r in rows if "gflops" in r}
    print("| what | backend | threads | ms per face | % of the matmul rate |\n|---|---|---|---|---|")
    for r in rows:
        if "gflops" in r:
            print(f"| {r['what']} | {r['backend']} | {r['threads']} | {r['gflops']:.0f} GFLOP/s | 100 |")
        elif r["ms"] is None:
            print(f"| {r['what']} | {r['backend']} | {r['threads']} | - | - |")
        else:
            share = f"{100 * r['gflop'] / (r['ms'] / 1000) / rate[r['threads']]:.0f}" if r.get("gflop") else "-"
            print(f"| {r['what']} | {r['backend']} | {r['threads']} | {r['ms']:.2f} | {share} |")
    accuracy = accuracy_rows(args.data, args.split) if args.data else []
    if accuracy:
        print(f"\n| method | {args.split} faces scored | NME % (outer eye corners) |\n|---|---|---|")
        for r in accuracy:
            print(f"| {r['method']} | {r['faces']} | {r['nme']:.2f} |")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "accuracy": accuracy}, indent=1) + "\n")


if __name__ == "__main__":
    main()
