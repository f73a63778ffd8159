# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Exploring the predictions in 3D
#
# Numbers like "GTE 5 %" say how far off the landmarks are, not *where* or *why*. This notebook puts the
# cascade's 3D landmarks in front of you: interactive plotly point clouds of prediction vs ground truth
# coloured by each landmark's error (hover a point for its index, name and error), the image plane and
# the 3D points side by side, the camera convention that gives $z$ its meaning, a synthetic face turned
# from one profile to the other to show how depth follows the pose, where in the pose range the Z
# regressor errs, a browser (ipywidgets) to step through test faces and landmarks, and at the end the
# shipped model on a photograph, through `fa3d.FaceAligner`.
#
# **You will learn** to
#
# - state fa3d's camera convention ($x$ right, $y$ down, $z$ toward the camera, orthographic, pixels) and
#   why the 3D views must reverse an axis to show it;
# - predict how each landmark's depth changes as the head turns, from the yaw rotation, and check it on renders;
# - read a prediction against its ground truth in interactive 3D, per landmark, and find the landmarks
#   that are hard on average;
# - compare the depth error on frontal and profile faces, for the cascade and for the mean shape;
# - run the whole test-time chain (face detector, crop, cascade, map back) on a photograph with `fa3d.FaceAligner`.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fa3d-course/fa3d/blob/main/notebooks/06_explore_3d.ipynb)
#
# **Quick mode:** about 25 s on a 2-core CPU, on its own on a fresh machine (the quick cascade of notebooks
# 02–04 comes ready-made with fa3d). §7 runs the shipped model on a photo. The 3D figures need no network:
# JupyterLab draws them with the plotly.js its plotly extension brings, and an exported HTML page carries
# plotly.js inside (`viz.use_plotly_renderer`). On GitHub, which runs no JavaScript, each shows a static
# picture instead.

# %%
# Colab / fresh machine: install fa3d if it is missing (the URL lives in fa3d.REPO_URL once installed).
try:
    import fa3d
except ImportError:
    # %pip install -q "fa3d @ git+https://github.com/fa3d-course/fa3d"
    import fa3d
from fa3d import course
device = course.setup(seed=0)   # prints device, memory, versions; seeds everything

# %% tags=["parameters"]
INTERACTIVE = None        # None: live widgets in Jupyter/Colab, a static figure when headless; True/False to force
NUM_FACES = 200           # test faces scored for the pose statistics (the run's num_valid: 200)
BROWSE_FACES = 12         # test faces the browser's slider steps through
SWEEP_FACE = 3            # which synthetic face the yaw sweep turns
SWEEP_YAWS = (-90, -60, -30, 0, 30, 60, 90)   # degrees; any list, e.g. range(-90, 91, 15)
SWEEP_SIZE = 160          # side of the sweep's rendered images (px)
PHOTO = None              # §7: a path to your own photo; None: a rendered face
OUT_DIR = "outputs/notebooks"

# %%
import dataclasses
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
from IPython.display import Image, display
from matplotlib.figure import Figure

from fa3d import metrics

from fa3d.course import viz, widgets
from fa3d.data import SyntheticFaces, get_scheme, render_face
from fa3d.runs import load_run
from fa3d.predict import predict_crops

os.makedirs(OUT_DIR, exist_ok=True)
interactive = widgets.resolve_interactive(INTERACTIVE)
print(f"browser mode: {'live widgets' if interactive else 'static figure'} (INTERACTIVE = {INTERACTIVE})")
plotly_figures = []         # every plotly figure shown, counted in the JSON
facts = {}                  # what this notebook computed; written to OUT_DIR/06_explore_3d.json
t_start = time.perf_counter()

def shown(fig):
    """Count a plotly figure and return it (a cell's last value is displayed)."""
    plotly_figures.append(fig)
    return fig

# %% [markdown]
# ## 1. The camera convention: what $z$ means
#
# fa3d's landmarks are $(x, y, z)$ in **pixels of the image** they belong to:
#
# - $x$ to the right and $y$ **down**, as image columns and rows (pixel centres at integers);
# - $z$ **toward the viewer** (larger = closer to the camera), in the same pixel units, shifted so that
#   every face's $z$ has zero mean (3DFAW's depth origin is arbitrary, only differences matter).
#
# The projection is orthographic: dropping $z$ gives the point in the image. Since the image is scaled
# when a face is cropped, $z$ scales with it (notebook 01), so depth and image distances stay comparable.
#
# "Right, down, toward me" is a **left-handed** frame ($x \times y$ points *into* the screen, away from
# the viewer). 3D renderers are right-handed, so no camera position alone shows our frame; fa3d's plotly
# views reverse the $y$ axis (a reflection) and put the camera on $+z$ looking back at the face, so a
# frontal face looks as it does in its image:

# %%
scene = viz.front_scene()
print("camera:", scene["camera"])
print("y axis:", {k: v for k, v in scene["yaxis"].items() if k in ("title", "autorange")})

# %% [markdown]
# Take one synthetic face, turned to the front (yaw, pitch and roll set to 0), and read its depths: the
# nose tip should be the closest point, the jaw's ends (near the ears) the farthest.

# %%
ds = SyntheticFaces(SWEEP_FACE + 1, image_size=SWEEP_SIZE, seed=0)
scheme = get_scheme(ds.scheme)
params = dataclasses.replace(ds.params(SWEEP_FACE), pitch=0.0, roll=0.0)
frontal = render_face(dataclasses.replace(params, yaw=0.0), SWEEP_SIZE, scheme.name)
lm0 = frontal["landmarks"]
for i in (30, 36, 45, 0, 16):
    print(f"#{i:2d} {scheme.names[i]:24s} x {lm0[i, 0]:6.1f}  y {lm0[i, 1]:6.1f}  z {lm0[i, 2]:+6.1f} px")
print(f"closest point: #{int(lm0[:, 2].argmax())} {scheme.names[int(lm0[:, 2].argmax())]}; "
      f"farthest: #{int(lm0[:, 2].argmin())} {scheme.names[int(lm0[:, 2].argmin())]}; mean z = {lm0[:, 2].mean():.1e}")
facts["frontal_nose_z_px"] = float(lm0[30, 2])
facts["frontal_closest_point"] = scheme.names[int(lm0[:, 2].argmax())]

# %% [markdown]
# The image and the same landmarks in 3D. Drag the right panel to turn the head; the grey image plane is
# drawn behind the face, so each point's depth is its distance in front of it. Hover a point for its index
# and name.

# %%
shown(viz.image_and_3d_plotly(frontal["image"], lm0, scheme, title=f"synthetic face {SWEEP_FACE}, turned to the front"))

# %% [markdown]
# ## 2. A yaw sweep: depth follows the pose
#
# Turning the head by yaw $\theta$ rotates every head point about the vertical image axis. With our axes,
# the rotation $R_y(\theta)$ maps a point $(x, y, z)$ of the frontal face to
#
# $$x' = x\cos\theta + z\sin\theta, \qquad y' = y, \qquad z' = -x\sin\theta + z\cos\theta,$$
#
# ($\theta > 0$ turns the nose toward the image's right). So the depth of a point is a mix of its frontal
# depth and its frontal $x$: as the head turns right, points on the image's left come toward the camera.
# Re-render the face at each yaw of `SWEEP_YAWS` (everything else fixed) and compare its $z$ with this
# formula applied to the frontal landmarks (centred, since $z$ is zero-mean per face):

# %%
sweep = {float(y): render_face(dataclasses.replace(params, yaw=float(y)), SWEEP_SIZE, scheme.name) for y in SWEEP_YAWS}
xc0, zc0 = lm0[:, 0] - lm0[:, 0].mean(), lm0[:, 2]

def z_after_yaw(theta_deg):
    """z' = -x sin(theta) + z cos(theta) of the frontal face's centred landmarks, (N,) px."""
    th = torch.tensor(np.radians(theta_deg), dtype=torch.float32)
    return -xc0 * torch.sin(th) + zc0 * torch.cos(th)

formula_err = max(float((it["landmarks"][:, 2] - z_after_yaw(y)).abs().max()) for y, it in sweep.items())
print(f"rendered z vs the rotation formula: max |difference| over {len(sweep)} yaws = {formula_err:.1e} px")
iod = float(metrics.interocular_distance(lm0, scheme))
for y, it in sweep.items():
    z = it["landmarks"][:, 2]
    print(f"yaw {y:+5.0f}°: depth range {float(z.max() - z.min()):5.1f} px = {float(z.max() - z.min()) / iod:4.2f} IOD | "
          f"nose tip z {float(z[30]):+6.1f} | #36 {float(z[36]):+6.1f} | #45 {float(z[45]):+6.1f} | "
          f"visible {int(it['visible'].sum())}/{scheme.num_points}")
facts["sweep_formula_max_error_px"] = formula_err
facts["sweep"] = {f"{y:+.0f}": {"nose_z_px": float(it["landmarks"][30, 2]),
                                "depth_range_px": float(it["landmarks"][:, 2].max() - it["landmarks"][:, 2].min()),
                                "visible": int(it["visible"].sum())} for y, it in sweep.items()}

# %%
def as_jpeg(fig):
    """Photos compress ~10x better as JPEG than as PNG: keeps the saved notebook small."""
    buf = io.BytesIO()
    fig.savefig(buf, format="jpeg", dpi=72, pil_kwargs={"quality": 85})
    return Image(buf.getvalue())

fig = Figure(figsize=(1.75 * len(sweep), 2.0), layout="constrained")
for ax, (y, it) in zip(np.atleast_1d(fig.subplots(1, len(sweep))), sweep.items()):
    viz.show_face(it, scheme, ax=ax, title=f"yaw {y:+.0f}°")
display(as_jpeg(fig))
fig = Figure(figsize=(12, 3.2), layout="constrained")
ax = fig.add_subplot()
fine = np.linspace(min(SWEEP_YAWS), max(SWEEP_YAWS), 121)
for i, c in ((30, "#009E73"), (36, "#0072B2"), (45, "#D55E00"), (0, "#CC79A7"), (16, "#E69F00")):
    ax.plot(fine, [float(z_after_yaw(t)[i]) for t in fine], "--", c=c, lw=1)
    ax.plot(list(sweep), [float(it["landmarks"][i, 2]) for it in sweep.values()], "o", c=c,
            label=f"#{i} {scheme.names[i]}")
ax.set(xlabel="yaw (degrees)", ylabel="z (px, toward the camera)",
       title="z of five landmarks: rendered (dots) and the rotation formula (dashed)")
ax.grid(alpha=0.3)
ax.legend(fontsize=7, ncol=5, loc="lower center")
fig

# %% [markdown]
# Read it: the nose tip is the closest point near the front, but its lead shrinks like $\cos\theta$ and at
# ±90° it sits at the face's mean depth. Turning right (+) brings the image-left side (jaw #0, eye corner
# #36) toward the camera and sends the right side back, and the other way round for −. In profile, much of
# what was $x$ in the frontal face has become $z$ and vice versa, which is why a good Z regressor
# must know the pose. Hollow markers in the images are self-occluded points: still labelled, as in 3DFAW.
#
# The same sweep in 3D with a plotly slider (it works in a saved notebook too, no kernel needed). The
# view is fixed, so you see the points move:

# %%
pts = torch.cat([it["landmarks"] for it in sweep.values()])
centre = (pts.amax(0) + pts.amin(0)) / 2
half = float((pts.amax(0) - pts.amin(0)).max()) / 2 * 1.05
sweep_fig = go.Figure()
trace_ranges = []
for y, it in sweep.items():
    f = viz.landmarks_3d_plotly(it["landmarks"], scheme, name=f"yaw {y:+.0f}°")
    start = len(sweep_fig.data)
    for tr in f.data:
        tr.visible = y == 0.0 or (0.0 not in sweep and y == list(sweep)[0])
        sweep_fig.add_trace(tr)
    trace_ranges.append((start, len(sweep_fig.data)))
n_traces = len(sweep_fig.data)
steps = [dict(method="update", label=f"{y:+.0f}°",
              args=[{"visible": [a <= j < b for j in range(n_traces)]}, {"title": f"yaw {y:+.0f}°"}])
         for y, (a, b) in zip(sweep, trace_ranges)]
sweep_scene = viz.front_scene(aspectmode="cube")
for k, axis in enumerate("xyz"):
    lo, hi = float(centre[k]) - half, float(centre[k]) + half
    sweep_scene[f"{axis}axis"].update(range=[hi, lo] if axis == "y" else [lo, hi], autorange=False)
sweep_fig.update_layout(scene=sweep_scene, height=480, margin=dict(l=0, r=0, t=40, b=0), showlegend=False,
                        title="yaw 0°" if 0.0 in sweep else f"yaw {list(sweep)[0]:+.0f}°",
                        sliders=[dict(active=list(sweep).index(0.0) if 0.0 in sweep else 0, steps=steps,
                                      currentvalue=dict(prefix="yaw "), pad=dict(t=10))], **viz.PLOTLY_LAYOUT)
shown(sweep_fig)

# %% [markdown]
# ## 3. The trained cascade's 3D predictions
#
# Now the quick cascade of notebooks 02–04 (`course.ensure_run("z", OUT_DIR)` reuses it; run on its own, this
# notebook installs the ready-made run of the same settings, or trains it with `TRAIN = True`), on its test faces. We pick the test
# face with the **median** error, so what you see is typical:

# %%
run_dir = course.ensure_run("z", OUT_DIR)
cascade, ckpt = load_run(run_dir, device)
crops = course.test_crops(run_dir, NUM_FACES)
gt, yaw = crops["landmarks"], crops["yaw"]
with torch.no_grad():
    pred = predict_crops(cascade, crops["image"], "z")
base = ckpt["mean_shape"].expand_as(gt)
iods = metrics.interocular_distance(gt, scheme)                       # (V,) px, 3D
e_xyz = metrics.gte(pred, gt, "xyz")
median = int(torch.argsort(e_xyz)[len(e_xyz) // 2])
point_err = 100 * (pred[median] - gt[median]).norm(dim=-1) / iods[median]     # (N,) % of the IOD
print(f"{len(gt)} test faces of {crops['image'].shape[-1]} px; GTE xyz {100 * e_xyz.mean():.2f} % "
      f"(mean-shape baseline {100 * metrics.gte(base, gt).mean():.2f} %)")
print(f"median face #{median}: yaw {yaw[median]:+.0f}°, GTE xyz {100 * e_xyz[median]:.2f} %; its worst landmarks:")
for i in torch.argsort(point_err, descending=True)[:5].tolist():
    d = pred[median, i] - gt[median, i]
    print(f"   #{i:2d} {scheme.names[i]:24s} {point_err[i]:5.2f} % IOD  (dx {d[0]:+.1f}, dy {d[1]:+.1f}, dz {d[2]:+.1f} px)")
facts.update(model_gte=100 * float(e_xyz.mean()), baseline_gte=100 * float(metrics.gte(base, gt).mean()),
             median_face={"index": median, "yaw": float(yaw[median]), "gte_xyz": 100 * float(e_xyz[median]),
                          "worst_landmark": scheme.names[int(point_err.argmax())]})

# %% [markdown]
# Prediction (points coloured by their 3D error in % of the interocular distance) against the ground truth
# (green), with a red segment from each true point to its prediction. Hover a prediction for its index,
# name and error: the landmarks listed above are the bright ones. Turn the head to the side to see the
# depth errors, which the front view hides.

# %%
shown(viz.compare_3d_plotly(pred[median], gt[median], scheme,
                            title=f"test face #{median} (median GTE {100 * e_xyz[median]:.1f} %), yaw {yaw[median]:+.0f}°"))

# %% [markdown]
# Which landmarks are hard **on average**? The mean shape, coloured by each landmark's mean 3D error over
# all test faces (hover for the numbers):

# %%
mean_point_err = (100 * (pred - gt).norm(dim=-1) / iods[:, None]).mean(0)          # (N,) % IOD
hardest = torch.argsort(mean_point_err, descending=True)[:3].tolist()
print("hardest on average: " + ", ".join(f"#{i} {scheme.names[i]} ({mean_point_err[i]:.1f} %)" for i in hardest)
      + f"; easiest: #{int(mean_point_err.argmin())} {scheme.names[int(mean_point_err.argmin())]} "
        f"({mean_point_err.min():.1f} %)")
facts["hardest_landmarks"] = [scheme.names[i] for i in hardest]
shown(viz.landmarks_3d_plotly(ckpt["mean_shape"], scheme, name="mean shape", errors=mean_point_err,
                              error_unit="% IOD").update_layout(title="mean 3D error per landmark over the test faces"))

# %% [markdown]
# ## 4. Image plane and 3D side by side
#
# The view that makes $z$ tangible: left, the crop with the predicted (magenta) and true (green)
# points in $x, y$; right, the same points in 3D in front of a grey copy of the image. A strongly turned
# test face shows the most depth:

# %%
turned = int(torch.argsort(yaw.abs(), descending=True)[len(yaw) // 20])    # among the most turned faces
shown(viz.image_and_3d_plotly(crops["image"][turned], pred[turned], scheme, gt=gt[turned],
                              title=f"test face #{turned}: yaw {yaw[turned]:+.0f}°, GTE xyz {100 * e_xyz[turned]:.1f} %"))

# %% [markdown]
# ## 5. Where does the Z regressor err? Frontal vs profile faces
#
# §2 showed that a turned head's depths depend strongly on its yaw. Is the depth harder to predict there?
# Mean $|z_{\rm pred} - z_{\rm true}|$ per face, against $|{\rm yaw}|$, for the cascade and the mean shape;
# then frontal ($|{\rm yaw}| \le 30°$) vs profile ($|{\rm yaw}| > 60°$) faces, in crop pixels and in % of
# the interocular distance:

# %%
ya = yaw.abs()
z_err = {"full cascade": (pred[..., 2] - gt[..., 2]).abs().mean(-1),
         "mean-shape baseline": (base[..., 2] - gt[..., 2]).abs().mean(-1)}
xy_err = (pred[..., :2] - gt[..., :2]).norm(dim=-1).mean(-1)
frontal_sel, profile_sel = ya <= 30, ya > 60
fig = Figure(figsize=(11, 3.4), layout="constrained")
ax1, ax2 = fig.subplots(1, 2)
for (name, e), c in zip(z_err.items(), ("#0072B2", "#D55E00")):
    ax1.scatter(ya, 100 * e / iods, s=8, alpha=0.6, c=c, label=name)
ax1.set(xlabel="|yaw| (degrees)", ylabel="mean |z error| (% IOD)", title="depth error against pose")
ax2.scatter(ya, 100 * xy_err / iods, s=8, alpha=0.6, c="#009E73", label="full cascade, (x, y) error")
ax2.scatter(ya, 100 * z_err["full cascade"] / iods, s=8, alpha=0.6, c="#0072B2", label="full cascade, |z| error")
ax2.set(xlabel="|yaw| (degrees)", ylabel="% IOD", title="image-plane vs depth error (cascade)")
for ax in (ax1, ax2):
    ax.axvspan(0, 30, color="grey", alpha=0.08, lw=0)
    ax.axvspan(60, 90, color="grey", alpha=0.08, lw=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
fig

# %%
stats = {}
for name, e in z_err.items():
    stats[name] = {sel_name: {"px": float(e[sel].mean()), "pct_iod": 100 * float((e / iods)[sel].mean()), "n": int(sel.sum())}
                   for sel_name, sel in (("frontal", frontal_sel), ("profile", profile_sel))}
    f, p = stats[name]["frontal"], stats[name]["profile"]
    print(f"{name:20s} mean |z error|: frontal {f['px']:.2f} px ({f['pct_iod']:.2f} % IOD, n={f['n']}) | "
          f"profile {p['px']:.2f} px ({p['pct_iod']:.2f} % IOD, n={p['n']})")
xy_f, xy_p = (100 * float((xy_err / iods)[s].mean()) for s in (frontal_sel, profile_sel))
print(f"full cascade (x, y) error: frontal {xy_f:.2f} % IOD | profile {xy_p:.2f} % IOD")
facts.update(mean_abs_z_error_frontal_px=stats["full cascade"]["frontal"]["px"],
             mean_abs_z_error_profile_px=stats["full cascade"]["profile"]["px"],
             mean_abs_z_error_frontal_pct=stats["full cascade"]["frontal"]["pct_iod"],
             mean_abs_z_error_profile_pct=stats["full cascade"]["profile"]["pct_iod"],
             baseline_abs_z_error_frontal_pct=stats["mean-shape baseline"]["frontal"]["pct_iod"],
             baseline_abs_z_error_profile_pct=stats["mean-shape baseline"]["profile"]["pct_iod"],
             xy_error_frontal_pct=xy_f, xy_error_profile_pct=xy_p)

# %%
grow = {name: st["profile"]["pct_iod"] / st["frontal"]["pct_iod"] for name, st in stats.items()}
print("depth error, profile / frontal: " + ", ".join(f"{k} ×{v:.2f}" for k, v in grow.items()))
facts["z_error_growth_profile_over_frontal"] = grow
# the sentence below is written from the numbers: "close" only within 25 % of each other (our rule)
for pose in ("frontal", "profile"):
    ratio = stats["mean-shape baseline"][pose]["pct_iod"] / stats["full cascade"][pose]["pct_iod"]
    verdict = "close to each other" if 1 / 1.25 < ratio < 1.25 else f"apart: the mean shape's is ×{ratio:.1f} the cascade's"
    print(f"{pose}: the two depth errors are {verdict}")

# %% [markdown]
# The mean shape is an average, roughly frontal face, so its depth error grows with yaw (the ratios printed
# above); the cascade's Z regressor reads the pose from the image and the heatmaps. A frontal face's depths
# are the closest to the mean face's, so the mean shape does best there; the lines above say, by a stated
# rule, whether the two errors are close at each pose. Use the scatter plots to find the faces worth a
# closer look, then open them in the browser below.

# %% [markdown]
# ## 6. Browse the cascade, face by face, landmark by landmark
#
# `fa3d.course.widgets.browse` shows one test face at a time: the crop with the prediction (and the truth), the
# detection maps, the regression heatmaps and the Gaussians that feed the Z net (all landmarks summed in the
# top row, the chosen landmark below, its decoded position as a cyan cross and its truth as a green
# circle), and the 3D landmarks with the chosen one in red.
#
# In a live Jupyter/Colab session you get a **sample slider** and a **landmark dropdown** above the figure.
# Executed headless (papermill, nbconvert, CI) there is nobody to move a slider, so with
# `INTERACTIVE = None` a saved notebook still shows a static picture of the first face (set
# `INTERACTIVE = False` to get a plain figure, `True` to force the widgets).

# %%
widgets.browse(crops["image"][:BROWSE_FACES], cascade, scheme, gt=gt[:BROWSE_FACES], sample=0, landmark=30,
               interactive=INTERACTIVE)

# %% [markdown]
# ## 7. Your own photo: `fa3d.FaceAligner`
#
# Everything above fed the cascade crops cut around known landmarks. On a photograph nobody annotated, the
# face must be found first. `fa3d.FaceAligner` runs the whole test-time chain for any image:
#
# 1. a face detector gives a box (`fa3d.app.face_boxes`: YuNet, a small CNN for frontal to profile faces, fetched once
#    and cached; dlib's HOG detector or OpenCV's Haar cascade when it cannot be had, with a message saying so);
# 2. the face is cropped as in evaluation, the cascade predicts, and the points are mapped back to image
#    pixels through the inverse of the crop's similarity matrix;
# 3. the face is cropped again around its own landmarks, `REFINE_STEPS` times (our choice, not the paper's:
#    a detector frames a face unlike the landmark boxes the cascade learned), and each crop is averaged with
#    its mirror image (`flip=True`). `scales=fa3d.predict.MULTI_SCALE` also makes the last crop three times,
#    its side ×0.9, ×1 and ×1.1, and averages the answers in the image (off by default; see Exercise 5).
#
# All faces of all the images it is given go through the cascade in batches (`batch_size`), so a folder of
# photos costs a few large forward passes, not one per face. `"pretrained"` is the model that ships inside
# fa3d, trained on synthetic faces only (its `MODEL.md` says what it scores on real photos); a run folder
# works too. `fa3d predict photo.jpg --draw` does the same from the command line. Set `PHOTO` to try yours.

# %%
from fa3d import FaceAligner
from fa3d.app.aligner import REFINE_STEPS, as_image

aligner = FaceAligner("pretrained", device=device)
if PHOTO:
    photo_name = photo = str(PHOTO)
    photo_faces = aligner.predict(photo)
else:   # no photo given: a rendered face (fa3d ships no photographs), with its own box if the detector misses it
    item = SyntheticFaces(1, image_size=256, scheme=aligner.scheme, seed=7)[0]
    photo_name, photo = "a synthetic face (set PHOTO to try a photograph)", item["image"]
    photo_faces = aligner.predict(photo) or aligner.predict(photo, [tuple(item["bbox"].tolist())])
photo_image = as_image(photo)
print(f"{photo_name}: {len(photo_faces)} face(s)")
for f in photo_faces:
    score = "" if f.score is None else f", score {f.score:.2f}"
    print(f"  box {tuple(round(v) for v in f.box)} from {f.source}{score}, re-cropped {f.refine_steps} times, "
          f"landmarks {f.landmarks.shape}")

# %%
fig = Figure(figsize=(5, 5))
ax = fig.subplots()
ax.imshow(photo_image.permute(1, 2, 0).numpy())
for f in photo_faces:
    x1, y1, x2, y2 = f.box
    ax.plot([x1, x2, x2, x1, x1], [y1, y1, y2, y2, y1], color="lime", lw=1)
    points = ax.scatter(f.landmarks[:, 0], f.landmarks[:, 1], c=f.landmarks[:, 2], s=6, cmap="viridis")
if photo_faces:
    fig.colorbar(points, ax=ax, shrink=0.7, label="z (px, larger = closer)")
ax.set_title("the face box and the 3D landmarks", fontsize=10)
ax.axis("off")
fig

# %%
print(f"REFINE_STEPS = {REFINE_STEPS}")
shown(viz.landmarks_3d_plotly(photo_faces[0].landmarks, aligner.scheme, name="your photo")) if photo_faces else None

# %%
facts.update(photo_faces=len(photo_faces))
facts.update(interactive=bool(interactive), num_plotly_figures=len(plotly_figures), num_faces=len(gt),
             seconds=round(time.perf_counter() - t_start, 1))
course.save_facts(facts, OUT_DIR, "06_explore_3d", shown=[k for k in facts if k not in ("sweep", "median_face")])

# %% [markdown]
# ## Summary
#
# - fa3d's $z$ is in image pixels, toward the camera, zero mean per face; the yaw sweep showed it following
#   $z' = -x\sin\theta + z\cos\theta$: in profile, much of what was $x$ has become depth.
# - The quick cascade's median test face and its worst landmarks, and the landmarks that are hard on average,
#   are printed in §3; the 3D views show where the errors are, the depth errors best from the side.
# - The depth error grows from frontal to profile faces much more for the mean shape than for the cascade
#   (the profile/frontal ratios printed in §5): the Z regressor reads the pose.
# - `fa3d.FaceAligner` ran the shipped model on a photograph (§7).
# - Next: notebook 07 trains the paper-sized cascade on a GPU; notebook 08 tests the Z regressor's design.

# %% [markdown]
# ## The paper and fa3d
#
# What the paper says about depth and about running the system on a face, and what fa3d chose where it
# says nothing.
#
# | what | the paper says (quoted, with its section) | fa3d chooses (and why) |
# |---|---|---|
# | what $z$ is | eq. (1): "the predicted and ground truth Z values (in pixels)" (§2.2); its direction, its origin and the projection: silent | $z$ toward the camera (larger = closer), zero mean per face, in the pixel units of $x, y$, with an orthographic projection: dropping $z$ gives the point in the image (§1 above). |
# | hidden points | "All images were annotated in a consistent way with 66 3D fiducial points." (§3, Dataset); points the head hides: silent | fa3d's synthetic faces label every point, hidden or not, and flag which are visible: the task is the whole 3D shape (§2 above). |
# | depth and pose | the heatmaps "provide pose-related information (encoded by the X,Y location of all the landmarks)" (§2.2); no error is reported by pose | fa3d measures the depth error against the head's yaw, for the cascade and the mean shape (§5 above). |
# | a photograph | "all images were cropped around an extended (by 20–25 %) bounding box" (§2.3); where the box comes from on a new photo: silent | `FaceAligner`: a face detector's box, then re-crops around the cascade's own landmarks, since a detector frames a face unlike the boxes the cascade learned from; each crop is averaged with its mirror image (`flip=True`). Both are fa3d's choices (§7 above). |

# %% [markdown]
# ## Exercises
#
# 1. **Pitch.** Repeat the sweep of §2 for pitch ($-40°$ to $+40°$, yaw 0). Derive the formula for $z'$ from
#    the rotation about the $x$ axis (`fa3d.data.synthetic._rotation` shows the matrix) and check it against
#    the renders. Which landmarks' depth changes most, and why less than with yaw?
#    *Hint:* $R_x(p)$ maps $(y, z) \mapsto (y\cos p - z\sin p,\; y\sin p + z\cos p)$; centre $y$ like $x$.
# 2. **The hollow face.** Negate the $z$ of the median face's prediction and open it with
#    `viz.compare_3d_plotly`. What does the front view show? Which view reveals the mistake at once, and
#    what do GTE $z$ and CVGTCE (notebook 05) say?
#    *Hint:* `pred[median] * torch.tensor([1., 1., -1.])`; turn the head by 90° with the mouse.
# 3. **Profile vs frontal landmarks.** Colour the mean shape by the mean $|z|$ error of each landmark,
#    once over frontal faces and once over profile faces (§5's selections). Which part of the face carries
#    the depth error in profile?
#    *Hint:* `viz.landmarks_3d_plotly(..., errors=...)`; index `pred[profile_sel]`.
# 4. **Turn the test face yourself.** Build a yaw slider (`ipywidgets.interact`, or a loop over yaws when
#    headless) that re-renders face `SWEEP_FACE` at the chosen yaw, crops it like the test faces, runs the
#    cascade and plots predicted vs true $z$ of landmarks 30, 36 and 45. Where does the prediction follow the
#    rotation formula, and where does it break?
#    *Hint:* `fa3d.data.CenterCrop3D(ckpt["preset"]["image_size"])(item)` then
#    `predict_crops(cascade, crop["image"][None], "z")`.
# 5. **Re-crops, the mirror and the scales.** On the photo of §7, compare
#    `FaceAligner("pretrained", refine=0, flip=False)` with the default (`REFINE_STEPS` re-crops, `flip=True`)
#    and with `scales=fa3d.predict.MULTI_SCALE`: plot the landmarks on the image. Where do they differ most,
#    and why would the detector's box matter more without re-crops?
#    *Hint:* `aligner.predict(photo)[0].landmarks`; on the rendered face, `item["landmarks"]` is the truth.

# %% [markdown]
# ## References
#
# - Bulat, A. & Tzimiropoulos, G. (2016). *Two-stage convolutional part heatmap regression for the 1st 3D face
#   alignment in the wild (3DFAW) challenge.* ECCV 2016 Workshops.
#   [arXiv:1609.09545](https://arxiv.org/abs/1609.09545),
#   [doi:10.1007/978-3-319-48881-3_43](https://doi.org/10.1007/978-3-319-48881-3_43). The cascade whose
#   predictions this notebook shows.
# - Jeni, L. A., Tulyakov, S., Yin, L., Sebe, N. & Cohn, J. F. (2016). *The first 3D face alignment in the wild
#   (3DFAW) challenge.* ECCV 2016 Workshops.
#   [doi:10.1007/978-3-319-48881-3_35](https://doi.org/10.1007/978-3-319-48881-3_35). The 66 landmarks and the
#   depth convention (self-occluded points labelled too).
