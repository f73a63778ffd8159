"""Figures of fa3d: matplotlib figures (figures.py) and interactive plotly 3D views (plotly3d.py).

Every function returns the figure it drew and never calls ``plt.show()``: the
notebook (or the caller) decides how to display or save it. Static figures are
``matplotlib.figure.Figure`` objects (no pyplot state, safe in scripts and tests);
interactive ones are ``plotly.graph_objects.Figure``.

Axis convention everywhere (as in fa3d.data): x right, y down, z toward the
viewer, all in pixels. The 3D views look at the face from the front by default,
so a frontal face appears as it does in the image; drag to turn it.

In notebooks, call :func:`setup_notebook` once (see :mod:`fa3d.course.viz.plotly3d`).

Where the figures are:
  2D landmarks   draw_landmarks, show_face, face_grid, show_prediction, prediction_gallery
  heatmaps       show_heatmap, cascade_stages, stage_grid, draw_stages
  training       training_curves
  errors         image_errors, ced_figure, error_vs_yaw
  networks       z_network_blocks, z_network_figure (the paper's Fig. 2)
  notebooks      setup_notebook, use_plotly_renderer
  HTML pages     write_offline_html (works with no network)
  3D             landmarks_3d_matplotlib, landmarks_3d_plotly, compare_3d_plotly, image_and_3d_plotly
All matplotlib figures are in :mod:`fa3d.course.viz.figures`, the plotly views and the notebook
setup in :mod:`fa3d.course.viz.plotly3d`; every name is importable from ``fa3d.course.viz``.
"""
from .figures import (ERROR_AXES, ERROR_COLOUR, GROUP_COLOURS, GT_COLOUR, PRED_COLOUR, _nice_ceiling, _numpy,
                      cascade_stages, ced_figure, draw_landmarks, draw_stages, error_vs_yaw, face_grid,
                      image_errors, landmarks_3d_matplotlib, prediction_gallery, show_face, show_heatmap,
                      show_prediction, stage_grid, training_curves, z_network_blocks, z_network_figure)
from .plotly3d import (PLOTLY_LAYOUT, compare_3d_plotly, front_scene, image_and_3d_plotly, landmarks_3d_plotly,
                       setup_notebook, use_plotly_renderer, write_offline_html)
