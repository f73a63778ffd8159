"""Which synthetic-face levers help on real faces: one short 2D training run per row, scored on real dev faces.

Each row trains the quick cascade's 2D stages (detection, regression; 68 points, 64 px crops) on
synthetic faces only, with one more scene/camera lever turned on than the row before, and scores
it with the AFLW2000-3D protocol (NME in % of sqrt(w h) of the ground-truth box, all faces) on
real faces: the photographs of ``../shared/real-samples/photos-68`` and its AFLW2000-3D files.
The first row is the renderer of another checkout (``--before DIR``, e.g. a ``git worktree`` of
the commit before the new faces), run with that checkout's code.

Run: .venv/bin/python benchmarks/renderer_ablation.py --out /tmp/ablation [--before /tmp/oldtree]
(about 4 minutes a row on 2 CPU cores; the rows are cumulative, so the table reads top to bottom).
These few real faces are development data: a row that wins by a point on 7 faces is noise (a second
seed moves the photos' NME by about 0.7 points and AFLW2000-3D's by about 0.5: ``--seed 1``).
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "real-samples"
ROWS = [  # (name, levers): cumulative
    ("geometry (anthropometric layout), no scene levers", "none"),
    ("+ muted backgrounds", "background"),
    ("+ neck and shoulders", "background,body"),
    ("+ glasses and occluders", "background,body,glasses,occluders"),
    ("+ camera effects (blur, cast, gamma, grey, JPEG)", "background,body,glasses,occluders,camera"),
]


def fa3d(args, code_dir: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(code_dir))
    subprocess.run([sys.executable, "-m", "fa3d", *args], check=True, env=env, cwd=code_dir,
                   stdout=subprocess.DEVNULL)


def nme_all(run: Path, spec: str, code_dir: Path) -> float:
    fa3d(["evaluate", "--run", str(run), "--data", spec, "--no-progress"], code_dir)
    metrics = json.loads((run / "metrics.json").read_text())
    return metrics["protocol"]["model"]["nme"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--before", type=Path, default=None, help="a checkout with the renderer to compare against")
    parser.add_argument("--num-train", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="training seed (repeat with another to see the noise)")
    args = parser.parse_args()
    if not SAMPLES.is_dir():
        sys.exit(f"needs the real dev faces in {SAMPLES}")
    rows = ([("before (the checkout in --before)", None, args.before)] if args.before else []) + \
        [(name, levers, ROOT) for name, levers in ROWS]
    args.out.mkdir(parents=True, exist_ok=True)
    table = []
    for k, (name, levers, code) in enumerate(rows):
        run = args.out / f"row{k}"
        train = ["train", "--preset", "quick", "--scheme", "68", "--stages", "detection,regression",
                 "--num-train", str(args.num_train), "--seed", str(args.seed), "--out", str(run), "--overwrite",
                 "--no-progress"]
        if levers is not None:
            train += ["--synthetic-levers", levers]
        fa3d(train, code)
        row = {"row": name, "levers": levers,
               "synthetic test": nme_all(run, "synthetic", code),
               "photos-68": nme_all(run, f"folder:{SAMPLES / 'photos-68'}", code),
               "aflw2000 dev": nme_all(run, f"aflw2000:{SAMPLES / 'aflw2000-3d'}", code)}
        table.append(row)
        print(json.dumps(row), flush=True)
    (args.out / "ablation.json").write_text(json.dumps(table, indent=1) + "\n")
    print(f"\n{'row':52s} {'synthetic':>9s} {'photos':>7s} {'aflw2000':>8s}")
    for r in table:
        print(f"{r['row']:52s} {r['synthetic test']:9.2f} {r['photos-68']:7.2f} {r['aflw2000 dev']:8.2f}")


if __name__ == "__main__":
    main()
