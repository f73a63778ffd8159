"""Conventions measured on real files: 3DMM landmarks vs stored pt3d_68, pose vs landmark geometry.

    python benchmarks/real_conventions.py [--samples ../shared/real-samples] [--bases DIR]

For each AFLW2000-3D file: the error of ``landmarks_from_3dmm`` (its own Shape/Exp/Pose_Para through
the bases) against its stored ``pt3d_68``, in % of the 3D interocular distance (x, y and x, y, z with
z centred); the stored 3DDFA angles, the fa3d pose the reader reports, and the pose of the rotation
that maps the BFM's frontal mean onto the file's landmarks (geometry, independent of the stored
angles). For each 300W-LP file: how far its projected fit is from its own ``pt2d`` on the 51 inner
points, in % of sqrt(w h) of the pt2d box (what ``prepare_300wlp_depth`` compares with its limit).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from fa3d.data.morphable import load_bases
from fa3d.data.pose import FLIP_Y, pose_from_rotation
from fa3d.data.readers import AFLW2000_3D, W300LP, _loadmat, image_size, landmarks_from_mat
from fa3d.data.writers import MAX_FIT_DISAGREEMENT
from fa3d.metrics import similarity_align


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "real-samples")
    p.add_argument("--bases", type=Path, default=None, help="default: SAMPLES/bfm68")
    args = p.parse_args(argv)
    bases = load_bases(args.bases or args.samples / "bfm68")
    reference = bases.mean.reshape(68, 3) @ FLIP_Y
    ds = AFLW2000_3D(args.samples / "aflw2000-3d")
    print("| AFLW2000-3D file | 3DMM vs pt3d_68: xy % IOD | xyz % IOD | stored 3DDFA (pitch, yaw, roll) ° "
          "| fa3d pose (yaw, pitch, roll) ° | from geometry ° |")
    print("|---|---:|---:|---|---|---|")
    xyz_errors = []
    for i, (sid, image_path, mat_path) in enumerate(ds.samples):
        stored = ds.landmarks(i).double().numpy()
        ours = landmarks_from_mat(mat_path, bases, image_size(image_path)[1])
        ours[:, 2] -= ours[:, 2].mean()
        iod = np.linalg.norm(stored[36] - stored[45])
        e_xy = np.linalg.norm(ours[:, :2] - stored[:, :2], axis=1).mean() / iod
        e_xyz = np.linalg.norm(ours - stored, axis=1).mean() / iod
        xyz_errors.append(e_xyz)
        raw = np.degrees(np.asarray(_loadmat(mat_path)["Pose_Para"]).reshape(-1)[:3])
        pose = ds[i]["pose"].tolist()
        _, _, R, _ = similarity_align(torch.as_tensor(reference), torch.as_tensor(stored))
        geo = pose_from_rotation(R.numpy())
        fmt = lambda v: "(" + ", ".join(f"{x:.1f}" for x in v) + ")"  # noqa: E731
        print(f"| {sid} | {100 * e_xy:.2f} | {100 * e_xyz:.2f} | {fmt(raw)} | {fmt(pose)} | {fmt(geo)} |")
    print(f"\nxyz error: mean {100 * np.mean(xyz_errors):.2f} %, worst {100 * np.max(xyz_errors):.2f} % of the IOD "
          f"({len(xyz_errors)} files)")
    lp = W300LP(args.samples / "300w-lp", bases=bases)
    flat = W300LP(args.samples / "300w-lp")
    for i in range(len(lp)):
        a, b = lp[i]["landmarks"].double(), flat[i]["landmarks"].double()
        box = b[:, :2].amax(0) - b[:, :2].amin(0)
        d = float((a[17:, :2] - b[17:, :2]).norm(dim=1).mean() / box.prod().sqrt())
        print(f"300W-LP {lp.samples[i][0]}: z range {float(a[:, 2].max() - a[:, 2].min()):.1f} px; projected fit vs "
              f"pt2d on the inner points {100 * d:.2f} % of sqrt(w h) (limit {100 * MAX_FIT_DISAGREEMENT:g} %); "
              f"fa3d pose {[round(v, 1) for v in lp[i]['pose'].tolist()]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
