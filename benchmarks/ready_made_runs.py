"""How much the course's ready-made runs (float16 or int8 kernels) differ from the runs as trained.

    python benchmarks/ready_made_runs.py [RUNS_DIR]   (default: outputs/course-runs/runs, made by `make course-runs`)

For every trained run in RUNS_DIR that has a current ready-made run in fa3d/weights/course (the quick runs of
notebooks 02-04, float16 kernels; notebook 08's ablation runs, int8 kernels): installs the ready-made run,
predicts the run's synthetic test faces (up to 200: as many as the run validates on) with it and with
the trained run, and prints the largest landmark
difference and both runs' GTE xy and z (percent): what storing the kernels in 16 or 8 bits moves.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from fa3d import course
from fa3d.checkpoint import load_checkpoint
from fa3d.metrics import summarize
from fa3d.predict import predict_crops
from fa3d.runs import CHECKPOINT_NAME, TrainConfig, load_run

STAGES = {"quick_detection": "detection", "quick_regression": "joint"}     # every other run: its Z stage


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    trained_root = Path(argv[0] if argv else "outputs/course-runs/runs")
    scratch = Path(tempfile.mkdtemp())
    compared = 0
    for trained in sorted(p for p in trained_root.iterdir() if (p / CHECKPOINT_NAME).is_file()):
        saved = load_checkpoint(trained / CHECKPOINT_NAME)
        if saved.get("ready_made"):
            continue                          # installed, not trained here: nothing to compare it with
        config = saved["config"]
        cfg = TrainConfig.from_dict({**config, "out": str(scratch / trained.name)})
        if not course.install_ready_run(cfg):
            print(f"{trained.name}: no current ready-made run with its settings (`make course-runs`)")
            continue
        stage = STAGES.get(trained.name, "z")
        crops = course.test_crops(trained, 200)
        pa = predict_crops(load_run(trained)[0], crops["image"], stage)
        pb = predict_crops(load_run(cfg.out)[0], crops["image"], stage)
        sa, sb = summarize(pa, crops["landmarks"]), summarize(pb, crops["landmarks"])
        print(f"{trained.name:22s} {course.ready_run_kernels(trained.name):7s} {len(pa):3d} faces, largest landmark difference "
              f"{float((pa - pb).abs().max()):.2f} px; GTE xy {sa['gte_xy']:.3f} (trained) vs {sb['gte_xy']:.3f} "
              f"(ready-made), z {sa['gte_z']:.3f} vs {sb['gte_z']:.3f}")
        compared += 1
    return 0 if compared else 1


if __name__ == "__main__":
    sys.exit(main())
