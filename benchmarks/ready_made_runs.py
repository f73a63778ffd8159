"""How much the course's ready-made runs (float16 kernels) differ from the runs as trained.

    python benchmarks/ready_made_runs.py [RUNS_DIR]   (default: outputs/course-runs/runs, made by `make course-runs`)

For the quick runs of notebooks 02, 03 and 04: installs the ready-made run from fa3d/weights/course,
predicts the 200 synthetic test faces with it and with the trained run in RUNS_DIR, and prints the
largest landmark difference and both runs' GTE xy / xyz (percent).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from fa3d import course
from fa3d.metrics import summarize
from fa3d.predict import predict_crops
from fa3d.runs import load_run


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    trained_root = Path(argv[0] if argv else "outputs/course-runs/runs")
    for name, stage in (("detection", "detection"), ("regression", "joint"), ("z", "z")):
        trained = trained_root / f"quick_{name}"
        cfg = course.course_config(name, tempfile.mkdtemp())
        if not course.install_ready_run(cfg):
            print(f"no current ready-made run for quick_{name}: run `make course-runs`")
            return 1
        crops = course.test_crops(trained, 200)
        pa = predict_crops(load_run(trained)[0], crops["image"], stage)
        pb = predict_crops(load_run(cfg.out)[0], crops["image"], stage)
        sa, sb = summarize(pa, crops["landmarks"]), summarize(pb, crops["landmarks"])
        print(f"quick_{name:10s} largest landmark difference {float((pa - pb).abs().max()):.2f} px; "
              f"GTE xy {sa['gte_xy']:.3f} (trained) vs {sb['gte_xy']:.3f} (ready-made), "
              f"xyz {sa['gte_xyz']:.3f} vs {sb['gte_xyz']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
