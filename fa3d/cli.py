"""The ``fa3d`` command line (also ``python -m fa3d``): argument parsing, one function per command.

    fa3d synth --out DIR --num-train N --num-valid M   write synthetic faces in the 3DFAW layout
    fa3d demo  --out DIR                               the main job of `make demo`
    fa3d train --preset quick --data SPEC --out RUN_DIR train the cascade (all stages; --resume)
    fa3d evaluate --run RUN_DIR --data SPEC            GTE/CVGTCE table + RUN_DIR/metrics.json
    fa3d predict [--run RUN_DIR] IMAGE|DIR... [--bbox ...] [--draw]
                                                     landmarks JSON (N x 3, image pixels) per image
                                                     (no --run: the model shipped with fa3d)
    fa3d export [--run RUN_DIR] --onnx PATH            the cascade as an ONNX graph (uint8 crops -> N x 3),
                                                     checked against torch with onnxruntime

Dataset SPECs: synthetic, 3dfaw:DIR, aflw2000:DIR, 300wlp:DIR, folder:DIR.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import MISSING, fields
from pathlib import Path


def _cmd_synth(args) -> int:
    from .data.splits import SYNTHETIC_VALID_SEED_OFFSET
    from .data.synthetic import SyntheticFaces
    from .data.writers import export_3dfaw_layout

    out = Path(args.out)
    for split, n, seed in (("train", args.num_train, args.seed),
                           ("valid", args.num_valid, args.seed + SYNTHETIC_VALID_SEED_OFFSET)):
        if n <= 0:
            continue
        img_dir = out / f"{split}_img"
        if img_dir.is_dir() and any(img_dir.iterdir()) and not args.overwrite:
            raise FileExistsError(f"{img_dir} already holds files; choose another --out or pass --overwrite")
        ds = SyntheticFaces(n, image_size=args.image_size, scheme="3dfaw66", seed=seed)
        export_3dfaw_layout(ds, out, split, overwrite=args.overwrite)
        print(f"wrote {n} {split} faces to {out / (split + '_img')} and {out / (split + '_lm')}")
    return 0


def _cmd_demo(args) -> int:
    from .course.demo import run_demo

    run_demo(Path(args.out), seed=args.seed, train=not args.no_train)
    return 0


def _cmd_train(args) -> int:
    from .data.splits import default_scheme
    from .data.synthetic import LEVERS
    from .models import STAGES, PretrainedWeightsUnavailable, check_stages
    from .runs import TrainConfig
    from .schedules import get_schedule
    from .train import train

    # the options given (the others are not set: argparse.SUPPRESS), so TrainConfig's defaults stand for the rest
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if "stages" in given:
        given["stages"] = check_stages((s.strip() for s in given["stages"].split(",") if s.strip()), "--stages")
    if "synthetic_levers" in given:
        given["synthetic_levers"] = tuple(x.strip() for x in given["synthetic_levers"].split(",")
                                          if x.strip() not in ("", "none"))
        bad = sorted(set(given["synthetic_levers"]) - set(LEVERS))
        if bad:
            raise ValueError(f"unknown lever(s) {bad} in --synthetic-levers; choose from {','.join(LEVERS)} or none")
    cfg = TrainConfig(**given)
    if "scheme" not in given:
        cfg.scheme = default_scheme(cfg.data)
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
        schedule = get_schedule(cfg.preset)
        for name in STAGES:
            schedule.stage(name).batch_size = args.batch_size
        cfg.schedule = schedule.to_dict()
    z = {k: v for k, v in (("inputs", args.z_inputs), ("input_size", args.z_input_size)) if v is not None}
    overrides = {"heatmap_sigma": args.heatmap_sigma, "z": z or None,
                 "regression": ({"detection_features": args.regression_features == "detection"}
                                if args.regression_features else None)}
    cfg.preset_overrides = {k: v for k, v in overrides.items() if v is not None} or None
    try:
        path = train(cfg, resume=args.resume, overwrite=args.overwrite)
    except PretrainedWeightsUnavailable as err:
        raise ValueError(f"{err}\nOr pass --no-pretrained to train from random initialisation.") from err
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: {path} (log: {Path(cfg.out) / 'log.jsonl'}); "
              f"next: fa3d evaluate --run {cfg.out} --data {cfg.data}")
    return 0


def _cmd_evaluate(args) -> int:
    from .course.report import write_run_report
    from .evaluate import evaluate_run
    from .runs import is_pretrained

    out = args.out or ("pretrained-evaluation" if is_pretrained(args.run) else None)
    result = evaluate_run(args.run, args.data, device=args.device, max_images=args.max_images,
                          batch_size=args.batch_size, progress=not args.no_progress, bases=args.bases, out_dir=out,
                          flip=args.flip, scales=args.scales, split=args.split)
    report = write_run_report(result)
    print(result["table"])
    print(f"wrote {result['metrics_path']}")
    print(f"report: {report['html']} (+ {len(report) - 1} files)")
    return 0


def _cmd_predict(args) -> int:
    from .app.landmark_files import predict_files

    results = predict_files(args.run, args.images, bbox=args.bbox, out_dir=args.out, overwrite=args.overwrite,
                            device=args.device, refine=args.refine, flip=args.flip, scales=args.scales,
                            detector=args.detector, backend=args.backend,
                            draw=args.draw, batch_size=args.batch_size)
    missing = sum(v is None for v in results.values())
    if len(results) > 1:
        print(f"{len(results) - missing} of {len(results)} images done" + (f", {missing} without landmarks" if missing else ""))
    return 0 if not missing else 1


def _cmd_export(args) -> int:
    from .app.export import ExportUnavailable, check_onnx, export_onnx, sample_crops
    from .runs import load_run, resolve_run

    if args.check < 1:
        raise ValueError(f"--check must be 1 or more crops, got {args.check}")
    try:
        path = export_onnx(args.run, args.onnx, overwrite=args.overwrite, opset=args.opset)
        run = load_run(resolve_run(args.run), "cpu")
        crops = sample_crops(args.check, run.image_size, run.scheme)
        diff = check_onnx(path, run.cascade, crops)
    except ExportUnavailable as err:
        print(f"fa3d export: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB): uint8 crops (B, 3, {crops.shape[-1]}, "
          f"{crops.shape[-1]}) -> landmarks (B, {run.cascade.num_landmarks}, 3) in crop pixels")
    print(f"onnxruntime vs torch on {len(crops)} synthetic face crops: max |difference| {diff:.2e} px")
    return 0


def _scales(text: str) -> tuple[float, ...]:
    """``--scales 0.9,1,1.1`` -> (0.9, 1.0, 1.1): positive factors on the crop's side."""
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        values = ()
    if not values or not all(0 < v < float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive numbers separated by commas, e.g. 0.9,1,1.1")
    return values


def _add_train_options(p: argparse.ArgumentParser) -> None:
    """``fa3d train``'s options: one per TrainConfig field with a help text (fa3d.runs.option; an option
    not given leaves the field's default), then those that change the schedule or the preset."""
    from .models.zregressor import Z_INPUTS
    from .runs import TrainConfig

    for f in fields(TrainConfig):
        if "help" not in f.metadata:
            continue
        settings = {k: v for k, v in f.metadata.items() if k != "flag"}
        kind = f.type.split(" |")[0]   # the annotation as written: "int | None" -> "int"; lists stay str
        if kind == "bool":
            settings.setdefault("action", argparse.BooleanOptionalAction if f.default is None else "store_true")
        elif kind in ("int", "float"):
            settings["type"] = int if kind == "int" else float
        p.add_argument(f.metadata.get("flag", "--" + f.name.replace("_", "-")), dest=f.name,
                       default=argparse.SUPPRESS, required=f.default is MISSING, **settings)
    p.add_argument("--batch-size", type=int, default=None,
                   help="global batch of every stage (default: the preset's schedule; paper: 8 for the 2D stages, 16 for Z)")
    p.add_argument("--heatmap-sigma", type=float, default=None,
                   help="std of the Gaussian heatmaps in crop px (default: the preset's, 6 paper / 3 quick)")
    p.add_argument("--z-inputs", default=None, choices=Z_INPUTS,
                   help="what the Z regressor sees (default rgb+heatmaps, the paper's; the others are ablations)")
    p.add_argument("--z-input-size", type=int, default=None,
                   help="side (px) of the crop and heatmaps the Z regressor sees, a divisor of the crop's side "
                        "(default: the preset's: the crop's own in paper and quick, 32 in medium)")
    p.add_argument("--regression-features", default=None, choices=("detection", "none"),
                   help="what the regression net stacks with the detection maps besides the pooled crop: the detection "
                        "net's stride-4 features (the paper's 'image features'; default of the paper and medium presets) "
                        "or none (the quick preset; the real-data recipe's first steps)")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN_DIR from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if RUN_DIR holds a run")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command. The options that name registries importing torch (train's, predict's
    --detector) are built only for ``command``, the one being run, so that ``fa3d --help`` stays fast."""
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
    p.add_argument("--no-train", action="store_true", help="only the data pipeline and its figures (~1 minute)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("train", help="train the cascade: detection, regression, joint, z (paper §2.3)")
    if command == "train":   # TrainConfig and the registries its options name import torch
        _add_train_options(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("evaluate", help="GTE / CVGTCE table with a mean-shape baseline; writes metrics.json")
    p.add_argument("--run", required=True, help="RUN_DIR of fa3d train, or pretrained: the model shipped with fa3d "
                   "(pretrained-v1: the one before it)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="where metrics.json and the report go (default: RUN_DIR; for pretrained: pretrained-evaluation)")
    p.add_argument("--data", default="synthetic",
                   help="synthetic[:N] (the run's test faces), 3dfaw:DIR (valid split), aflw2000:DIR, folder:DIR, ... "
                        "(the folder a run trained on: its held-out test faces), 300w:DIR (300-W, split by photo)")
    p.add_argument("--split", default=None,   # checked by fa3d.data.splits.test_dataset (EVALUATION_SPLITS)
                   help="300w: and folder: data: score one part of the split by photo (validation: for decisions; "
                        "locked: read once, at the end; test: 300-W's official test folders) or all (default); "
                        "faces from photos the run trained on are never scored")
    p.add_argument("--device", default="auto")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--bases", default=None, metavar="DIR", help="3DMM bases for 300wlp data (default: the run's)")
    p.add_argument("--flip", action="store_true",
                   help="test-time mirroring: average with the mirrored crops (fa3d predict's default)")
    p.add_argument("--scales", type=_scales, default=(1.0,), metavar="LIST",
                   help="test-time crop scales, comma-separated factors on the crop's side, averaged "
                        "(default: 1, one crop; e.g. 0.9,1,1.1, fa3d.predict.MULTI_SCALE)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="landmarks (JSON, N x 3 in image pixels) for images")
    p.add_argument("--run", default="pretrained",
                   help="RUN_DIR of fa3d train, or pretrained (the default): the model shipped with fa3d "
                        "(pretrained-v1: the one before it)")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files, folders (their images) or .txt files listing images, one per line")
    p.add_argument("--bbox", type=float, nargs=4, metavar=("X1", "Y1", "X2", "Y2"), default=None,
                   help="face box (pixels) for every image; default: the face detector's boxes")
    if command == "predict":
        from .app.face_boxes import DETECTORS
        p.add_argument("--detector", default="auto", choices=DETECTORS,
                       help="face detector (default auto: YuNet, fetched once and cached; else dlib's HOG if "
                            "installed; else OpenCV's Haar cascade)")
    p.add_argument("--draw", action="store_true",
                   help="also write <stem>.landmarks.jpg: the boxes and landmarks drawn on the image")
    p.add_argument("--batch-size", type=int, default=32, help="faces per cascade batch (default: 32)")
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                   help="average with the mirrored face (default on; --no-flip: one pass)")
    p.add_argument("--scales", type=_scales, default=(1.0,), metavar="LIST",
                   help="crop scales to average in the last crop, comma-separated factors on the crop's side "
                        "(default: 1, one crop; 0.9,1,1.1: three, 3x the time)")
    p.add_argument("--refine", type=int, default=None, metavar="K",
                   help="crop again K times around the predicted landmarks (default: 2 for the detector's "
                        "boxes, 0 for --bbox)")
    p.add_argument("--out", default=None, help="folder for the JSON files (default: next to each image)")
    p.add_argument("--overwrite", action="store_true", help="replace existing JSON (and --draw) files")
    p.add_argument("--device", default="auto")
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnxruntime"),
                   help="what runs the cascade (default auto: onnxruntime on the CPU when installed, else torch)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("export", help="the cascade as an ONNX file (uint8 crops -> landmarks in crop pixels)")
    p.add_argument("--run", default="pretrained",
                   help="RUN_DIR of fa3d train, or pretrained (the default): the model shipped with fa3d "
                        "(pretrained-v1: the one before it)")
    p.add_argument("--onnx", required=True, metavar="PATH", help="the .onnx file to write")
    p.add_argument("--overwrite", action="store_true", help="replace PATH if it exists")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version (default: 17)")
    p.add_argument("--check", type=int, default=8, metavar="K",
                   help="synthetic face crops to compare onnxruntime with torch on (default: 8)")
    p.set_defaults(func=_cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(next((a for a in argv if not a.startswith("-")), None)).parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        print(f"fa3d {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ArithmeticError as err:
        from .train import NonFiniteLossError   # lazy: `fa3d --help` does not import torch
        if not isinstance(err, NonFiniteLossError):
            raise
        print(f"fa3d {args.command}: stopped: {err}", file=sys.stderr)
        return 3
