"""Where a model puts the jaw on real faces: the signed error of the jaw points, out from the face.

Run: .venv/bin/python benchmarks/jaw_bias.py [--run pretrained] [--flip]
For each real development face of ``../shared/real-samples`` (the 4 photos-68 photographs, the 3
AFLW2000-3D files, the 300W-LP file), cropped around its ground-truth box as in evaluation, prints the
mean error of the jaw points along the outward direction (from the nose's centre to the true point), in
% of sqrt(w h) of the box (the AFLW2000-3D protocol's unit): negative = the predicted jaw lies inside the
true outline. The cheek's points (0-3, 13-16), the lower jaw (4-7, 9-12) and the chin (8) separately,
then the mean over the frontal faces (|yaw| < 10 degrees, or the photographs takeo and einstein, whose
annotation carries no pose). These 8 faces are development samples: a systematic sign over them says
where to look, the sizes are not a benchmark.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fa3d.data.splits import test_dataset  # noqa: E402
from fa3d.data.synthetic import OUTLINE_JAW_POINTS  # noqa: E402
from fa3d.evaluate import evaluate_dataset  # noqa: E402
from fa3d.app.release import resolve_run  # noqa: E402
from fa3d.runs import load_run  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "real-samples"
PARTS = {"cheek 0-3,13-16": list(OUTLINE_JAW_POINTS), "lower jaw 4-7,9-12": [4, 5, 6, 7, 9, 10, 11, 12],
         "chin 8": [8]}
FRONTAL_PHOTOS = ("takeo", "einstein")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="pretrained")
    parser.add_argument("--flip", action="store_true", help="test-time mirroring, as fa3d predict does")
    args = parser.parse_args()
    if not SAMPLES.is_dir():
        sys.exit(f"needs the real dev faces in {SAMPLES}")
    cascade, ckpt = load_run(resolve_run(args.run), "cpu")
    if ckpt["scheme"] != "68":
        sys.exit(f"{args.run} predicts the {ckpt['scheme']} scheme; the real samples have 68 points")
    frontal = []
    print(f"{'face':28s} {'yaw':>5s} " + " ".join(f"{k:>19s}" for k in PARTS))
    for spec in (f"folder:{SAMPLES / 'photos-68'}", f"aflw2000:{SAMPLES / 'aflw2000-3d'}",
                 f"300wlp:{SAMPLES / '300w-lp'}"):
        res = evaluate_dataset(cascade, test_dataset(spec, ckpt, SAMPLES / "bfm68"), ckpt["mean_shape"],
                               ckpt["preset"]["image_size"], progress=False, flip=args.flip)
        pred, gt = res["pred"][..., :2].double(), res["gt"][..., :2].double()
        wh = gt.amax(1) - gt.amin(1)
        unit = (wh[:, 0] * wh[:, 1]).sqrt()[:, None] / 100
        outward = gt - gt[:, 27:36].mean(1, keepdim=True)
        outward = outward / outward.norm(dim=-1, keepdim=True)
        signed = ((pred - gt) * outward).sum(-1) / unit          # (V, 68), % of sqrt(w h)
        for k, name in enumerate(res["ids"]):
            yaw = float(res["yaw"][k])
            row = [float(signed[k, idx].mean()) for idx in PARTS.values()]
            if abs(yaw) < 10 or any(p in name for p in FRONTAL_PHOTOS):
                frontal.append(row)
            print(f"{Path(name).name[-28:]:28s} {yaw:5.0f} " + " ".join(f"{v:+19.2f}" for v in row))
    if frontal:
        means = [sum(r[i] for r in frontal) / len(frontal) for i in range(len(PARTS))]
        print(f"{f'mean of {len(frontal)} frontal faces':28s} {'':5s} " + " ".join(f"{v:+19.2f}" for v in means))


if __name__ == "__main__":
    main()
