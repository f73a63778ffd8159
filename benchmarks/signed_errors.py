"""Signed errors by region on 2D-annotated faces: where a model's points sit against the annotation.

Run: .venv/bin/python benchmarks/signed_errors.py --run RUN --data 300w:DIR --split validation --flip

Prints, in % of the outer-eye-corner distance (300-W's unit), for each region (jaw, brows, nose, eyes,
lips): the mean signed error in x and y (prediction minus annotation: negative x = the model's points lie
to the left of the annotated ones); for the jaw's 17 points the error across the outline (positive =
outside the face) and along it; and the NME with the predictions shifted by the mean x offset *of the same
faces*: an oracle that sizes what a horizontal labelling offset costs, not a score. Two more oracles split
the error the same way: each point shifted by its mean error *in the face's own frame* (the eye line as x, the
eye-corner distance as unit) over these faces, which removes what the model gets wrong on every face alike
(a labelling convention, the synthetic faces' proportions); and the prediction moved by the similarity
transform that best fits it to the annotation, face by face, which removes a wrong box, scale or roll and
leaves the errors of shape.

Why x and y are told apart: training mirrors faces horizontally (their x offset changes sign), so a model
cannot learn a dataset's constant horizontal offset; a vertical one it learns, so it does not show here.
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fa3d.data.schemes import get_scheme  # noqa: E402
from fa3d.evaluate import evaluate_run  # noqa: E402

OUTER_EYE_CORNERS = (36, 45)


def outline_directions(gt: torch.Tensor):
    """Unit tangents and outward normals (V, 17, 2) of the jaw outline of annotations ``gt`` (V, 68, 2)."""
    jaw = gt[:, :17]
    ahead, behind = jaw[:, [*range(1, 17), 16]], jaw[:, [0, *range(0, 16)]]
    tangent = ahead - behind
    tangent = tangent / tangent.norm(dim=-1, keepdim=True)
    normal = torch.stack([tangent[..., 1], -tangent[..., 0]], -1)
    centre = gt[:, 27:48].mean(1, keepdim=True)           # nose and eyes: inside the outline
    outward = torch.sign(((jaw - centre) * normal).sum(-1, keepdim=True))
    return tangent, normal * outward


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--data", required=True, help="a 2D 68-point SPEC, e.g. 300w:DIR")
    parser.add_argument("--split", default=None, help="validation, locked, test or all (300w: and folder: data)")
    parser.add_argument("--flip", action="store_true")
    args = parser.parse_args()
    result = evaluate_run(args.run, args.data, split=args.split, flip=args.flip, write=False, progress=False)
    pred, gt = result["evaluation"]["pred"][..., :2].double(), result["evaluation"]["gt"][..., :2].double()
    unit = (gt[:, OUTER_EYE_CORNERS[0]] - gt[:, OUTER_EYE_CORNERS[1]]).norm(dim=-1)[:, None] / 100
    error = (pred - gt) / unit[..., None]                                  # (V, 68, 2) in % of the unit
    nme = lambda e: float(e.norm(dim=-1).mean())  # noqa: E731
    print(f"{result['name']} on {len(gt)} faces of {args.data} ({args.split or 'all'}); % of the outer-eye-corner distance")
    print(f"{'region':8s} {'mean x':>8s} {'mean y':>8s} {'NME':>6s}")
    for region, points in [("all", list(range(68))), *get_scheme("68").group_points().items()]:
        e = error[:, points]
        print(f"{region:8s} {float(e[..., 0].mean()):8.2f} {float(e[..., 1].mean()):8.2f} {nme(e):6.2f}")
    tangent, outward = outline_directions(gt)
    across = (error[:, :17] * outward).sum(-1).mean(0)
    along = (error[:, :17] * tangent).sum(-1).abs().mean(0)
    print("jaw point   " + " ".join(f"{k:5d}" for k in range(17)))
    print("across (+ out) " + " ".join(f"{float(v):5.2f}" for v in across))
    print("|along|        " + " ".join(f"{float(v):5.2f}" for v in along))
    shifted = error.clone()
    shifted[..., 0] -= error[..., 0].mean()
    print(f"NME {nme(error):.2f}; with the mean x offset of these same faces removed (oracle): {nme(shifted):.2f}")
    eye_line = gt[:, OUTER_EYE_CORNERS[1]] - gt[:, OUTER_EYE_CORNERS[0]]
    x_axis = eye_line / eye_line.norm(dim=-1, keepdim=True)
    frame = torch.stack([x_axis, torch.stack([-x_axis[:, 1], x_axis[:, 0]], -1)], 1)   # (V, 2, 2): rows x, y
    in_frame = torch.einsum("vij,vnj->vni", frame, error)
    print(f"with each point's mean error in the face's frame removed (oracle): {nme(in_frame - in_frame.mean(0)):.2f}")
    print(f"with the best similarity transform of each prediction to its annotation (oracle): "
          f"{nme((fit_similarity(pred, gt) - gt) / unit[..., None]):.2f}")
    spread = lambda lm: (lm - lm.mean(1, keepdim=True)).std(1)               # noqa: E731  (V, 2) per axis
    ratio = (spread(gt) / spread(pred)).mean(0)
    scale = (spread(fit_similarity(pred, gt)) / spread(pred)).norm(dim=-1).mean() / 2 ** 0.5
    print(f"the annotations' spread over the predictions' (mean over faces): across {float(ratio[0]):.3f}, "
          f"down {float(ratio[1]):.3f}; the best similarity scales a prediction by {float(scale):.3f}")


def fit_similarity(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """``src`` (V, N, 2) moved by the least-squares similarity (scale, rotation, shift) onto ``dst``, per face."""
    ms, md = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    a, b = src - ms, dst - md
    za, zb = torch.complex(a[..., 0], a[..., 1]), torch.complex(b[..., 0], b[..., 1])
    k = (za.conj() * zb).sum(1, keepdim=True) / (za.abs() ** 2).sum(1, keepdim=True)   # scale * rotation
    moved = k * za
    return torch.stack([moved.real, moved.imag], -1) + md


if __name__ == "__main__":
    main()
