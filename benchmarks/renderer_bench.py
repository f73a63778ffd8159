"""The real-face bench for the synthetic faces: which renderer levers help on hundreds of real photographs.

Each row trains one fixed small recipe (the quick cascade's 2D stages, detection then regression; 68
points, 64 px crops, ``--num-train`` synthetic faces) with a set of synthetic-face levers and an
augmentation, once per seed, and scores it on the **validation** part of 300-W's training photos
(``fa3d.data.splits.photo_part``: decisions are made there; the locked part is never read here), the
crop around the ground-truth landmark box averaged with its mirror (``fa3d evaluate --flip``):

* NME in % of the outer-eye-corner distance (300-W's unit), all faces and per region;
* the jaw's mean signed error across the outline (+ = outside the face), as ``signed_errors.py``;
* NME per yaw bin, the yaw estimated from the annotation (the best-fitting rotation of the synthetic
  mean head's inner 51 points, orthographic; 300-W has no pose labels);
* NME on the run's own synthetic test faces, all and beyond 60 degrees of yaw (AFLW2000-3D protocol,
  % of sqrt(w h) of the landmark box): what a lever costs on the faces fa3d can score at every pose.

Run:
    .venv/bin/python benchmarks/renderer_bench.py --out runs/bench [--rows base,even_jaw,...] [--seeds 0,1]
    .venv/bin/python benchmarks/renderer_bench.py --shapes      # mean shapes: synthetic vs real, no training
    .venv/bin/python benchmarks/renderer_bench.py --compare pretrained-v1,pretrained   # models on the same faces

Each run trains on one thread; ``--jobs 2`` (the default) trains two at once: about 4 minutes a pair at
1,000 faces on 2 cores, all 16 runs about 35 minutes. A finished run is reused, so an interrupted bench
resumes. The table is printed and written to OUT/bench.json. Needs ``../shared/real-samples/300w-train``.
"""
import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "benchmarks"))  # signed_errors
from fa3d.data.pose import rotation_matrix  # noqa: E402
from fa3d.data.synthetic import DEFAULT_LEVERS, SyntheticFaceParams, SyntheticFaces, render_face  # noqa: E402

REAL = ROOT.parent / "shared" / "real-samples" / "300w-train"
BASE = ",".join(DEFAULT_LEVERS)
#: name -> (levers, augmentation); the rows a bench can train (``--rows`` picks and orders them).
ROWS = {
    "base": (BASE, "photo"),                                  # the first shipped model's faces and augmentation
    "even_jaw": (BASE + ",even_jaw", "photo"),
    "photo_poses": (BASE + ",photo_poses", "photo"),
    "strong": (BASE, "strong"),
    "even_jaw+photo_poses": (BASE + ",even_jaw,photo_poses", "photo"),
    "even_jaw+photo_poses+features": (BASE + ",even_jaw,photo_poses,features", "photo"),
    "even_jaw+photo_poses+hair_styles": (BASE + ",even_jaw,photo_poses,hair_styles", "photo"),
    "even_jaw+photo_poses+strong": (BASE + ",even_jaw,photo_poses", "strong"),
    "even_jaw+photo_poses+narrow_face": (BASE + ",even_jaw,photo_poses,narrow_face", "photo"),
    "even_jaw+photo_poses+narrow_face+hair_styles": (BASE + ",even_jaw,photo_poses,narrow_face,hair_styles", "photo"),
}
YAW_BINS = ((0, 15), (15, 30), (30, 45), (45, 90))


def normalise(lm: np.ndarray) -> np.ndarray:
    """2D landmarks (..., 68, 2) moved so that the outer eye corners are at (-1/2, 0) and (1/2, 0)."""
    a, b = lm[..., 36, :], lm[..., 45, :]
    d = b - a
    s = np.linalg.norm(d, axis=-1)[..., None, None]
    c, sn = d[..., 0:1, None] / s, d[..., 1:2, None] / s
    rel = lm - (a + b)[..., None, :] / 2
    x = rel[..., 0:1] * c[..., 0, :] + rel[..., 1:2] * sn[..., 0, :]
    y = -rel[..., 0:1] * sn[..., 0, :] + rel[..., 1:2] * c[..., 0, :]
    return np.concatenate([x, y], -1) / s


def reference_head() -> np.ndarray:
    """The synthetic mean head's 68 landmarks in 3D, frontal, (68, 3)."""
    lm = render_face(SyntheticFaceParams(), 256, "68")["landmarks"].double().numpy()
    return lm - lm.mean(0)


def estimate_yaw(gt: np.ndarray, head: np.ndarray) -> np.ndarray:
    """|yaw| in degrees (V,) of 2D annotations ``gt`` (V, 68, 2): the rotation (yaw every 3 degrees, pitch
    every 10) of ``head``'s inner 51 points whose orthographic view, aligned by a similarity, fits best."""
    inner = slice(17, 68)
    target = gt[:, inner] - gt[:, inner].mean(1, keepdims=True)                         # (V, 51, 2)
    best, best_yaw = np.full(len(gt), np.inf), np.zeros(len(gt))
    for yaw in range(-90, 91, 3):
        for pitch in (-20, -10, 0, 10, 20):
            view = (head[inner] @ rotation_matrix(yaw, pitch, 0.0).T)[:, :2]
            view = view - view.mean(0)
            # the best similarity (rotation, scale, shift) from view onto each target, as complex numbers
            z, w = view[:, 0] + 1j * view[:, 1], target[..., 0] + 1j * target[..., 1]
            coef = (w * z.conj()).sum(1) / (np.abs(z) ** 2).sum()
            residual = (np.abs(w - coef[:, None] * z) ** 2).sum(1) / (np.abs(w) ** 2).sum(1)
            better = residual < best
            best, best_yaw = np.where(better, residual, best), np.where(better, abs(yaw), best_yaw)
    return best_yaw


def score_real(run: Path, head: np.ndarray) -> dict:
    """300-W's validation part with flip: NME and regions as ``fa3d evaluate`` reports them, the jaw's signed
    error across the outline (``signed_errors.py``'s), and NME per estimated-yaw bin."""
    from fa3d.evaluate import evaluate_run
    from signed_errors import OUTER_EYE_CORNERS, outline_directions
    res = evaluate_run(run, f"300w:{REAL}", split="validation", flip=True, write=False, progress=False)
    model = res["evaluation"]["model"]
    pred, gt = res["evaluation"]["pred"][..., :2].double(), res["evaluation"]["gt"][..., :2].double()
    unit = (gt[:, OUTER_EYE_CORNERS[0]] - gt[:, OUTER_EYE_CORNERS[1]]).norm(dim=-1)[:, None] / 100
    _, outward = outline_directions(gt)
    face_nme = ((pred - gt).norm(dim=-1) / unit).mean(1).numpy()                       # (V,) in %
    yaw = estimate_yaw(gt.numpy(), head)
    bins = {}
    for lo, hi in YAW_BINS:
        inside = (yaw >= lo) & ((yaw < hi) | (hi == 90))
        bins[f"{lo}-{hi}"] = (float(face_nme[inside].mean()) if inside.any() else None, int(inside.sum()))
    return {"faces": len(gt), "nme": model["w300"]["all"]["nme"], "regions": model["regions"],
            "jaw_across": float((((pred[:, :17] - gt[:, :17]) * outward).sum(-1) / unit).mean()),
            "yaw_bins": bins}


def score_synthetic(run: Path) -> dict:
    """The run's own 200 synthetic test faces with flip: NME (AFLW2000-3D protocol), all and beyond 60 degrees."""
    from fa3d.evaluate import evaluate_run
    protocol = evaluate_run(run, "synthetic", flip=True, write=False, progress=False)["evaluation"]["model"]["protocol"]
    return {"nme": protocol["nme"], "beyond_60": protocol["means"][-1], "faces_beyond_60": protocol["counts"][-1]}


def train(run: Path, levers: str, augment: str, seed: int, num_train: int) -> None:
    if (run / "bench.done").exists():   # written after the run finished: an interrupted bench resumes here
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "fa3d", "train", "--preset", "quick", "--scheme", "68",
           "--stages", "detection,regression", "--num-train", str(num_train), "--num-valid", "100",
           "--seed", str(seed), "--synthetic-levers", levers, "--augment", augment, "--out", str(run),
           "--overwrite", "--no-progress"]
    with open(run.parent / f"{run.name}.log", "w") as log:
        subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    (run / "bench.done").write_text("")


def shapes() -> None:
    """Mean shapes (outer eye corners at +-1/2) of near-frontal faces: synthetic with and without
    even_jaw (and narrow_face), and 300-W's training part; the outline's width and the landmark box's
    height / width (measuring only: nothing here feeds the renderer)."""
    from fa3d.data.readers import photo_id, read_pts
    from fa3d.data.splits import photo_part
    real = [normalise(read_pts(f)[:, :2]) for f in sorted(REAL.glob("*/*.pts"))
            if photo_part(photo_id(f.with_suffix(".jpg"))) == "train"]
    real = np.array([n for n in real if min(n[27, 0] - n[0, 0], n[16, 0] - n[27, 0])
                     / max(n[27, 0] - n[0, 0], n[16, 0] - n[27, 0]) > 0.8])
    rows = {"300-W train part": real}
    for name, levers in (("synthetic", DEFAULT_LEVERS), ("synthetic + even_jaw", (*DEFAULT_LEVERS, "even_jaw")),
                         ("+ even_jaw + narrow_face", (*DEFAULT_LEVERS, "even_jaw", "narrow_face"))):
        ds = SyntheticFaces(600, image_size=128, scheme="68", seed=5, levers=levers)
        keep = [i for i in range(len(ds)) if abs(ds.params(i).yaw) < 15 and abs(ds.params(i).pitch) < 10]
        rows[name] = np.array([normalise(ds[i]["landmarks"][:, :2].double().numpy()) for i in keep])
    print("near-frontal faces: " + ", ".join(f"{k} {len(v)}" for k, v in rows.items()))
    print("jaw points (x, y), outer-eye-corner distance 1, y down:")
    print("point " + "".join(f"{k:>22s}" for k in rows))
    for p in range(17):
        print(f"{p:5d} " + "".join(f"        {v[:, p, 0].mean():6.3f} {v[:, p, 1].mean():6.3f}" for v in rows.values()))
    for k, v in rows.items():
        gaps = np.linalg.norm(np.diff(v.mean(0)[:17], axis=0), axis=1)
        width, height = np.ptp(v[..., 0], axis=1), np.ptp(v[..., 1], axis=1)
        print(f"{k}: gaps between jaw neighbours {gaps.min():.3f}-{gaps.max():.3f} (max/min {gaps.max() / gaps.min():.2f}); "
              f"outline 0-16 {np.linalg.norm(v[:, 16] - v[:, 0], axis=1).mean():.2f} wide; landmark box height/width "
              f"{(height / width).mean():.2f}")


def compare(runs: list[str], num_synthetic: int) -> None:
    """Models side by side (e.g. ``pretrained-v1,pretrained``), each on the same faces: 300-W's validation
    part, the first ``num_synthetic`` synthetic test faces at the default poses (yaw uniform up to profile)
    labelled both ways (the jaw's contour parametrisation and ``even_jaw``), and the AFLW2000-3D dev
    samples; synthetic and AFLW2000-3D NME in % of sqrt(w h) of the box, flip."""
    from fa3d.data.splits import SYNTHETIC_TEST_SEED_OFFSET
    from fa3d.evaluate import evaluate_dataset, evaluate_run
    from fa3d.runs import load_run, resolve_run
    head = reference_head()
    faces = {"contour jaw": SyntheticFaces(num_synthetic, image_size=128, scheme="68", seed=SYNTHETIC_TEST_SEED_OFFSET),
             "even jaw": SyntheticFaces(num_synthetic, image_size=128, scheme="68", seed=SYNTHETIC_TEST_SEED_OFFSET,
                                        levers=(*DEFAULT_LEVERS, "even_jaw"))}
    print(f"{'run':16s} {'300-W valid':>11s} {'0-15':>6s} {'15-30':>6s} {'30-45':>6s} {'45-90':>6s}   "
          + "   ".join(f"synthetic, {k}: all / >60 (faces)" for k in faces))
    for run in runs:
        real = score_real(run, head)
        loaded = load_run(resolve_run(run))
        synthetic = []
        for ds in faces.values():
            res = evaluate_dataset(loaded.cascade, ds, loaded.mean_shape, loaded.image_size, flip=True, progress=False)
            p = res["model"]["protocol"]
            synthetic.append(f"{p['nme']:6.2f} / {p['means'][-1]:5.2f} ({p['counts'][-1]})")
        aflw = evaluate_run(run, f"aflw2000:{REAL.parent / 'aflw2000-3d'}", flip=True, write=False, progress=False)
        print(f"{run:16s} {real['nme']:11.2f} " + " ".join(f"{v[0]:6.2f}" for v in real["yaw_bins"].values())
              + "   " + "   ".join(synthetic) + f"   AFLW2000-3D dev {aflw['evaluation']['model']['protocol']['nme']:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {','.join(ROWS)} (default: all)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--num-train", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once, one thread each")
    parser.add_argument("--shapes", action="store_true", help="only compare mean shapes (no training)")
    parser.add_argument("--compare", default=None, metavar="RUNS",
                        help="only score these runs side by side, e.g. pretrained-v1,pretrained (no training)")
    parser.add_argument("--num-synthetic", type=int, default=1600, help="--compare's synthetic test faces")
    args = parser.parse_args()
    if not REAL.is_dir():
        sys.exit(f"needs the real faces in {REAL}")
    if args.shapes:
        return shapes()
    if args.compare:
        return compare(args.compare.split(","), args.num_synthetic)
    if args.out is None:
        parser.error("--out is required")
    names, seeds = args.rows.split(","), [int(s) for s in args.seeds.split(",")]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    runs = [(n, s, args.out / f"{n}-seed{s}") for n in names for s in seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda r: train(r[2], *ROWS[r[0]], r[1], args.num_train), runs))
    torch.set_num_threads(2)
    head = reference_head()
    table = []
    for name, seed, run in runs:
        row = {"row": name, "levers": ROWS[name][0], "augment": ROWS[name][1], "seed": seed,
               "real": score_real(run, head), "synthetic": score_synthetic(run)}
        table.append(row)
    (args.out / "bench.json").write_text(json.dumps(table, indent=1) + "\n")
    regions = list(table[0]["real"]["regions"])
    bins = list(table[0]["real"]["yaw_bins"])
    print(f"300-W validation part ({table[0]['real']['faces']} faces, flip), NME % of the outer-eye-corner distance; "
          f"yaw bins (faces): " + ", ".join(f"{b} ({table[0]['real']['yaw_bins'][b][1]})" for b in bins))
    print(f"{'row':30s} {'seed':>4s} {'NME':>6s} " + " ".join(f"{r:>6s}" for r in regions) + f" {'jaw+out':>7s} "
          + " ".join(f"{b:>6s}" for b in bins) + f" {'synth':>6s} {'>60':>6s}")
    for row in table:
        r, s = row["real"], row["synthetic"]
        print(f"{row['row']:30s} {row['seed']:4d} {r['nme']:6.2f} " + " ".join(f"{r['regions'][g]:6.2f}" for g in regions)
              + f" {r['jaw_across']:7.2f} " + " ".join(f"{r['yaw_bins'][b][0] or float('nan'):6.2f}" for b in bins)
              + f" {s['nme']:6.2f} {s['beyond_60']:6.2f}")


if __name__ == "__main__":
    main()
