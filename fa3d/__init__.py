"""fa3d: two-stage convolutional part heatmap regression for 3D face alignment.

A trainable reproduction of Bulat & Tzimiropoulos (ECCV 2016 workshops, 1st in
the 3DFAW challenge) and the small library behind the fa3d course notebooks.

The layers, from the bottom (each imports only from those below it; tests/test_layout.py):
    conventions and helpers   files, env, precision, checkpoint, distributed, data.schemes, data.pose, data.item
    data                      data/: crops and augmentation, synthetic faces, real datasets, training crops
    heatmaps                  heatmaps: Gaussian and disk targets, sub-pixel decoding
    models                    models/: the three subnets, presets, the cascade, the stages and their losses
    training and evaluation   schedules, runs, train, metrics, predict, evaluate
    app                       app/: FaceAligner, face boxes, landmark files, ONNX export, releases
    course                    course/: notebook helpers, exercises, figures, the report, widgets, the demo
    command line              cli
"""
import importlib.abc
import sys

__version__ = "0.4.0"

#: Where the course lives; the notebooks' Colab install cell uses the same address.
REPO_URL = "https://github.com/fa3d-course/fa3d"

#: Modules that moved when fa3d was put in layers (after 0.4.0): importing the old name says where to.
MOVED = {"fa3d.aligner": "fa3d.app.aligner", "fa3d.detect": "fa3d.app.face_boxes",
         "fa3d.landmark_files": "fa3d.app.landmark_files", "fa3d.export": "fa3d.app.export",
         "fa3d.pretrained": "fa3d.app.release (resolve_run, is_pretrained: fa3d.runs)",
         "fa3d.losses": "fa3d.models.losses (also importable from fa3d.models)",
         "fa3d.viz": "fa3d.course.viz", "fa3d.report": "fa3d.course.report", "fa3d.widgets": "fa3d.course.widgets",
         "fa3d.exercises": "fa3d.course.exercises", "fa3d.demo": "fa3d.course.demo"}


class _MovedModules(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        old = next((m for m in MOVED if fullname == m or fullname.startswith(m + ".")), None)
        if old:
            raise ImportError(f"{old} has moved: import {MOVED[old]} instead", name=fullname)
        return None


sys.meta_path.insert(0, _MovedModules())


def __getattr__(name):
    """``fa3d.FaceAligner`` without importing torch at ``import fa3d``."""
    if name == "FaceAligner":
        from .app.aligner import FaceAligner
        return FaceAligner
    raise AttributeError(f"module 'fa3d' has no attribute {name!r}")
