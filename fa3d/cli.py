"""The ``fa3d`` command line (also ``python -m fa3d``).

    fa3d synth --out DIR --num-train N --num-valid M   write synthetic faces in the 3DFAW layout
    fa3d demo  --out DIR                               the main job of `make demo`
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: The validation faces of a synthetic run use this offset on the seed, so that
#: train and valid never share a face within one run.
SYNTHETIC_VALID_SEED_OFFSET = 10_000


def _cmd_synth(args) -> int:
    from .data.readers import export_3dfaw_layout
    from .data.synthetic import SyntheticFaces

    out = Path(args.out)
    for split, n, seed in (("train", args.num_train, args.seed),
                           ("valid", args.num_valid, args.seed + SYNTHETIC_VALID_SEED_OFFSET)):
        if n <= 0:
            continue
        ds = SyntheticFaces(n, image_size=args.image_size, scheme="3dfaw66", seed=seed)
        export_3dfaw_layout(ds, out, split, overwrite=args.overwrite)
        print(f"wrote {n} {split} faces to {out / (split + '_img')} and {out / (split + '_lm')}")
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(Path(args.out), seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fa3d", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write a synthetic face set to disk in the 3DFAW layout")
    p.add_argument("--out", required=True, help="output folder (train_img/, train_lm/, valid_img/, valid_lm/)")
    p.add_argument("--num-train", type=int, default=1000)
    p.add_argument("--num-valid", type=int, default=200)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace files that already exist")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("demo", help="the main job: synthetic data end to end, figures")
    p.add_argument("--out", default="outputs/demo")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"fa3d {args.command}: error: {err}", file=sys.stderr)
        return 2
