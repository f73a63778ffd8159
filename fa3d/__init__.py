"""fa3d: two-stage convolutional part heatmap regression for 3D face alignment.

A trainable reproduction of Bulat & Tzimiropoulos (ECCV 2016 workshops, 1st in
the 3DFAW challenge) and the small library behind the fa3d course notebooks.
"""
__version__ = "0.1.0"
