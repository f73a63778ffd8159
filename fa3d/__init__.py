"""fa3d: two-stage convolutional part heatmap regression for 3D face alignment.

A trainable reproduction of Bulat & Tzimiropoulos (ECCV 2016 workshops, 1st in
the 3DFAW challenge) and the small library behind the fa3d course notebooks.
"""
__version__ = "0.4.0"

#: Where the course lives; the notebooks' Colab install cell uses the same address.
REPO_URL = "https://github.com/fa3d-course/fa3d"


def __getattr__(name):
    """``fa3d.FaceAligner`` without importing torch at ``import fa3d``."""
    if name == "FaceAligner":
        from .aligner import FaceAligner
        return FaceAligner
    raise AttributeError(f"module 'fa3d' has no attribute {name!r}")
