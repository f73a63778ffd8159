"""How much the decoder's blur changes a run's error: the same run scored with several ``decode_smoothing`` values.

Run: .venv/bin/python benchmarks/decode_smoothing.py --run RUN --data 300w:DIR --split validation --flip
     .venv/bin/python benchmarks/decode_smoothing.py --run pretrained --data synthetic:600 --flip

The network runs as trained; only the decoding of its regression heatmaps changes (the Z net then sees
Gaussians re-rendered at the decoded points, so z moves a little too). Values are fractions of the
preset's ``heatmap_sigma``: 0 is the plain three-pixel decoder, 0.5 the presets' choice
(:attr:`fa3d.models.presets.Preset.decode_smoothing`). Prints the main error (300-W NME by the
outer-eye-corner distance on 2D faces, GTE xy otherwise), in %.
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fa3d.data.splits import test_dataset  # noqa: E402
from fa3d.evaluate import evaluate_dataset  # noqa: E402
from fa3d.runs import load_run, resolve_run  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run folder, or 'pretrained' for the shipped model")
    parser.add_argument("--data", required=True, help="a data spec, as for fa3d evaluate")
    parser.add_argument("--split", default=None, help="validation|locked|test|all, as for fa3d evaluate")
    parser.add_argument("--flip", action="store_true", help="test-time mirroring, as for fa3d evaluate")
    parser.add_argument("--fractions", default="0,0.25,0.5,0.75,1", help="blur std / heatmap_sigma, comma-separated")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        run = load_run(resolve_run(args.run), "cpu")
        dataset = test_dataset(args.data, run.checkpoint, None, args.split)
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"decode_smoothing: {err}")
    sigma = run.preset.heatmap_sigma
    print(f"{args.run}: {len(dataset)} faces of {args.data} ({args.split or 'default'} split), "
          f"flip {args.flip}; trained with decode_smoothing {run.preset.decode_smoothing} px")
    print(f"{'blur std / sigma':>17}{'blur px':>9}{'error %':>9}")
    for fraction in (float(f) for f in args.fractions.split(",")):
        run.cascade.decode_smoothing = fraction * sigma
        res = evaluate_dataset(run.cascade, dataset, run.mean_shape, run.image_size, flip=args.flip, progress=False)
        model = res["model"]
        error = model["w300"]["all"]["nme"] if "w300" in model else model["summary"]["gte_xy"]
        print(f"{fraction:>17.2f}{fraction * sigma:>9.2f}{error:>9.3f}")


if __name__ == "__main__":
    main()
