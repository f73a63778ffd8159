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
# # 00 · Overview and setup: 3D face alignment with two-stage part heatmap regression
#
# This course rebuilds, trains and evaluates the system that won the 1st 3D Face Alignment in the
# Wild challenge (3DFAW, ECCV 2016): Bulat & Tzimiropoulos, *Two-Stage Convolutional Part Heatmap
# Regression*. This first notebook checks your environment, says what 3D face alignment is and why the
# paper splits it into "2D first, then depth", draws the paper's Fig. 1 with the real tensor shapes of
# our two presets, takes a first look at a synthetic face in 2D and 3D, lists where data comes from,
# and maps the rest of the course.
#
# **You will learn** to
#
# - check that your machine is ready for the course (device, threads, library versions);
# - describe a 3D face alignment target: an $(N, 3)$ tensor in pixels, $x$ right, $y$ down, $z$ toward the camera;
# - explain why the paper predicts the 2D landmarks first and the depth second, and measure how much of the
#   depth the 2D layout alone explains;
# - name the three subnetworks of the paper's Fig. 1 and read their tensor shapes and parameter counts for the
#   quick and the paper preset, without allocating the paper-sized model (the `meta` device);
# - open any supported dataset with `open_dataset`, and say where each one comes from and under which licence.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fa3d-course/fa3d/blob/main/notebooks/00_overview.ipynb)
#
# **Quick mode:** about 15 s on a 2-core CPU (no training in this notebook).

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
SCHEME = "3dfaw66"        # "3dfaw66" (the challenge's 66 points) or "68" (iBUG)
IMAGE_SIZE = 256          # side of the synthetic images in px, 64 or more
FACE_INDEX = 3            # which synthetic face to look at (3: turned 36°, nothing in front of it)
NUM_PROBE_FACES = 300     # faces for the "is z predictable from 2D?" probe; 2000 for a tighter estimate
OUT_DIR = "outputs/notebooks"

# %%
import dataclasses
import json
import os
import time

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch

from fa3d.course import viz
from fa3d.data import SyntheticFaces, get_scheme, open_dataset, render_face
from fa3d.data.readers import DATASET_SPECS
from fa3d.models import Cascade, get_preset, num_parameters

scheme = get_scheme(SCHEME)
N = scheme.num_points
os.makedirs(OUT_DIR, exist_ok=True)
facts = {}                  # what this notebook computed; written to OUT_DIR/00_overview.json

# %% [markdown]
# ## 1. Your environment
#
# The cell above printed fa3d's version, Python, torch, the CPU cores and memory, and the **device**
# (`cuda` on a GPU, else `cpu`). Everything in notebooks 00–06 and 08 runs on a CPU in minutes with the
# `quick` preset; notebook 07 trains the quick preset too, and shows how to train the paper-sized networks
# on a GPU (`PRESET = "paper"`). Below: the numbers that
# matter for speed.

# %%
print(f"device: {device}, torch threads: {torch.get_num_threads()}, "
      f"CUDA available: {torch.cuda.is_available()}, MPS available: {torch.backends.mps.is_available()}")
facts["device"] = device.type
facts["torch_version"] = torch.__version__

# %% [markdown]
# ## 2. What 3D face alignment is
#
# **Face alignment** finds a fixed set of *landmarks* on a face: the corners of the eyes, the tip of the
# nose, the outline of the lips and the jaw. **3D** face alignment gives each landmark three coordinates.
# In fa3d a face's landmarks are a float32 tensor of shape $(N, 3)$:
#
# - $x$ to the right and $y$ down, in pixels of the image (pixel centres sit at integer coordinates);
# - $z$ in the same pixel units, **larger = closer to the camera**, shifted to zero mean per face.
#
# The 3DFAW challenge used $N = 66$ points: the iBUG 68-point markup without the two inner-mouth corners.
# Points that the head itself hides (the far jaw of a turned face) are still labelled: the task is to
# find the whole 3D shape, not only what is visible. Here is one built-in synthetic face; hollow markers
# are self-occluded points.

# %%
ds = SyntheticFaces(1000, image_size=IMAGE_SIZE, scheme=SCHEME, seed=0)
item = ds[FACE_INDEX]
for key, value in item.items():
    desc = f"{tuple(value.shape)} {value.dtype}" if torch.is_tensor(value) else repr(value)
    print(f"{key:10s} {desc}")
yaw, pitch, roll = item["pose"].tolist()
print(f"pose: yaw {yaw:.1f}°, pitch {pitch:.1f}°, roll {roll:.1f}°; "
      f"{int(item['visible'].sum())} of {N} landmarks visible")

# %%
fig = Figure(figsize=(11, 3.8), layout="constrained")
ax_img = fig.add_subplot(1, 3, 1)
viz.show_face(item, scheme, ax=ax_img, title="image with landmarks (x, y)", draw_bbox=True)
ax_front = fig.add_subplot(1, 3, 2, projection="3d")
viz.landmarks_3d_matplotlib(item["landmarks"], scheme, ax=ax_front, elev=8, azim=-80, title="3D, nearly from the front")
ax_side = fig.add_subplot(1, 3, 3, projection="3d")
viz.landmarks_3d_matplotlib(item["landmarks"], scheme, ax=ax_side, elev=10, azim=-10, title="3D, turned: z is depth")
fig

# %% [markdown]
# ### The 3DFAW challenge
#
# 3DFAW (ECCV 2016 workshops) collected 13,672 training, 4,725 validation and 4,912 test images from
# Multi-PIE, BP4D and the internet, all annotated with 66 points in 3D. Entries were ranked by the
# **ground-truth error**, the mean point-to-point distance normalised by the interocular distance $d_i$
# (paper eq. 2):
#
# $$\mathrm{GTE}(X, Y) = \frac{1}{N}\sum_{n=1}^{N} \frac{\lVert x_n - y_n \rVert_2}{d_i},$$
#
# and by CVGTCE, the same after the best similarity transform (notebook 05). The paper's system scored
# GTE 4.5623 % and CVGTCE 3.4767 % on the test set; the second best had 5.8835 % and 3.9700 %.

# %% [markdown]
# ### Why 2D first, then depth
#
# $x$ and $y$ can be *seen*: a landmark is a local image pattern, and a fully convolutional network that
# outputs one heatmap per landmark localises it well (that is what the first two subnetworks do). $z$
# cannot be seen at a pixel; it follows from the head's pose and shape. The paper's bet is that the 2D
# layout of all landmarks already tells most of that story, so the Z network is *given* the 2D
# heatmaps and learns "where to look".
#
# A quick check on synthetic faces: normalise each face's 2D landmarks (centre, unit scale), fit a
# **linear** ridge regression from the $2N$ numbers to the $N$ depths on some faces, and test it on others.

# %%
probe = SyntheticFaces(NUM_PROBE_FACES, image_size=64, scheme=SCHEME, seed=1)  # small images: only landmarks are used
t0 = time.perf_counter()
L = torch.stack([probe[i]["landmarks"] for i in range(len(probe))]).double()
render_ms = 1000 * (time.perf_counter() - t0) / len(probe)
xy = L[..., :2] - L[..., :2].mean(1, keepdim=True)
scale = xy.norm(dim=(1, 2), keepdim=True) / N ** 0.5          # rms distance from the centre
X = torch.cat([(xy / scale).flatten(1), torch.ones(len(L), 1, dtype=L.dtype)], 1)  # (F, 2N+1)
Z = L[..., 2] / scale[..., 0]                                  # depths in the same units, (F, N)
n_train = int(0.75 * len(L))
A, B = X[:n_train], Z[:n_train]
W = torch.linalg.solve(A.T @ A + 0.1 * torch.eye(A.shape[1], dtype=A.dtype), A.T @ B)
mse_linear = ((X[n_train:] @ W - Z[n_train:]) ** 2).mean()
mse_mean = ((B.mean(0) - Z[n_train:]) ** 2).mean()                # predict the mean depth of each point
r2 = float(1 - mse_linear / mse_mean)
print(f"{len(L) - n_train} held-out faces: the mean-depth baseline has rms z error {mse_mean.sqrt():.3f}, "
      f"a linear map from the 2D layout {mse_linear.sqrt():.3f} (face-scale units)")
print(f"share of the depth variance explained by the 2D layout alone: R² = {r2:.2f}")
facts["z_from_2d_linear_r2"] = round(r2, 4)

# %% [markdown]
# Even a linear map explains most of the depth from the 2D layout. What it misses is partly
# non-linearity (depth varies with the cosine and sine of the head's angles: exercise 4) and partly the
# individual face's shape, which only the image shows. The Z regressor, a deep non-linear network, sees
# both the layout (as heatmaps) and the image.

# %% [markdown]
# ## 3. The system: the paper's Fig. 1 with real shapes
#
# Three subnetworks, each trained with its own loss and then chained:
#
# 1. **Detection** (§2.1): a ResNet-152 made fully convolutional (no pooling/classifier, last stage at
#    stride 1, a deconvolution and a last convolution) turns the $S\times S$ crop into $N$ maps, trained
#    against *binary disks* around the landmarks. (In fa3d: a ×4 deconvolution and a 1×1 conv, maps at $S/4$.)
# 2. **Regression** (§2.1): an hourglass takes the detection maps stacked with "image features" and outputs
#    $N$ *heatmaps* at full resolution (in fa3d: Gaussians). Their peaks give $x, y$.
# 3. **Z regressor** (§2.2): a pre-activation ResNet-200 takes the RGB crop stacked with the $N$ heatmaps
#    ($3+N$ channels) and regresses the $N$ depths with an L2 loss (eq. 1).
#
# The shapes below are not typed in: they come from running both presets on the `meta` device, where
# tensors have shapes but no memory, so even the paper-sized cascade "runs" here in seconds.

# %%
def describe(preset):
    """Shapes of every stage (from a forward pass on the meta device) and parameter counts."""
    with torch.device("meta"):
        cascade = Cascade.from_preset(preset).eval()
        with torch.no_grad():
            out = cascade(torch.empty(1, 3, preset.image_size, preset.image_size))
    params = {name: num_parameters(getattr(cascade, name)) for name in ("detection", "regression", "z")}
    shapes = {k: tuple(v.shape[1:]) for k, v in out.items()}
    shapes["image"] = (3, preset.image_size, preset.image_size)
    shapes["z_net_input"] = (3 + preset.num_landmarks, preset.image_size, preset.image_size)  # RGB stacked on z_input
    return {"image_size": preset.image_size, "heatmap_sigma": preset.heatmap_sigma,
            "shapes": shapes, "params": {**params, "total": sum(params.values())}}

t0 = time.perf_counter()
presets = {name: get_preset(name, num_landmarks=N) for name in ("quick", "paper")}
info = {name: describe(p) for name, p in presets.items()}
print(f"(both presets described in {time.perf_counter() - t0:.1f} s)\n")
print(f"{'':28s}{'quick':>22s}{'paper':>22s}")
for key in ("image", "detection_logits", "heatmaps", "z_net_input", "landmarks"):
    print(f"{key:28s}" + "".join(f"{str(info[n]['shapes'][key]):>22s}" for n in info))
for key in ("detection", "regression", "z", "total"):
    print(f"{'params: ' + key:28s}" + "".join(f"{info[n]['params'][key] / 1e6:>20.2f} M" for n in info))

# %%
def shape_text(key):
    fmt = lambda s: "×".join(map(str, s))
    return f"paper {fmt(info['paper']['shapes'][key])}\nquick {fmt(info['quick']['shapes'][key])}"

def net_text(name, paper_desc):
    q, p = info["quick"]["params"][name], info["paper"]["params"][name]
    return f"paper: {paper_desc}, {p / 1e6:.1f} M\nquick: same class, {q / 1e6:.2f} M"

def box(ax, x, y, title, body, colour, w=2.5, h=1.35):
    """A rounded box centred on (x, y); returns its (left, right, bottom, top) edges."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05",
                                fc=colour, ec="black", lw=0.8))
    ax.text(x, y + h / 2 - 0.22, title, ha="center", va="top", fontsize=8.5, weight="bold")
    ax.text(x, y - 0.12, body, ha="center", va="center", fontsize=7, family="monospace")
    return x - w / 2 - 0.05, x + w / 2 + 0.05, y - h / 2 - 0.05, y + h / 2 + 0.05

def arrow(ax, points, text="", colour="#333333", ls="-", text_at=None, **text_kw):
    """A polyline through ``points`` with an arrow head at the last one."""
    (xs, ys) = zip(*points)
    ax.plot(xs[:-1] + (xs[-1],), ys, ls=ls, color=colour, lw=1.1)
    ax.annotate("", xy=points[-1], xytext=points[-2],
                arrowprops=dict(arrowstyle="-|>", lw=1.1, ls=ls, color=colour, shrinkA=0, shrinkB=0))
    if text:
        tx, ty = text_at or ((points[0][0] + points[-1][0]) / 2, (points[0][1] + points[-1][1]) / 2 + 0.1)
        ax.text(tx, ty, text, fontsize=7, color=colour, **{"ha": "center", "va": "bottom", **text_kw})

NET, DATA, OUT = "#cfe2f3", "#fff2cc", "#d9ead3"
fig = Figure(figsize=(13, 5.4), layout="constrained")
ax = fig.add_subplot()
ax.set_xlim(0, 16.2); ax.set_ylim(0, 6.4); ax.set_axis_off()
top, bottom, xs = 4.3, 1.7, (1.5, 4.75, 8.0, 11.25, 14.5)
img = box(ax, xs[0], top, "RGB crop", shape_text("image"), DATA)
det = box(ax, xs[1], top, "detection subnet", net_text("detection", "ResNet-152 FCN"), NET, w=2.8)
dmap = box(ax, xs[2], top, "N detection maps", shape_text("detection_logits") + "\n(binary disks)", DATA)
reg = box(ax, xs[3], top, "regression subnet", net_text("regression", "hourglass"), NET, w=2.8)
hmap = box(ax, xs[4], top, "N heatmaps", shape_text("heatmaps") + "\n(Gaussians)", DATA)
stack = box(ax, xs[4], bottom, "RGB + N heatmaps", shape_text("z_net_input"), DATA)
znet = box(ax, xs[3], bottom, "Z regressor", net_text("z", "pre-act ResNet-200"), NET, w=2.8)
zout = box(ax, xs[2], bottom, "z of each landmark", f"paper {N}\nquick {N}", DATA)
lm3d = box(ax, xs[1], bottom, "3D landmarks", shape_text("landmarks") + "\n= (x, y, z)", OUT, w=2.8)
for a, b, text in ((img, det, ""), (det, dmap, "sigmoid"), (dmap, reg, ""), (reg, hmap, "")):
    arrow(ax, [(a[1], top), (b[0], top)], text)
for a, b in ((stack, znet), (znet, zout), (zout, lm3d)):
    arrow(ax, [(a[0], bottom), (b[1], bottom)])
arrow(ax, [(xs[4], hmap[2]), (xs[4], stack[3])], "decode x, y;\nre-render Gaussians",
      text_at=(xs[4] + 0.12, (top + bottom) / 2), ha="left", va="center")
# the RGB crop also feeds the regression subnet (pooled to S/4) and the Z regressor
grey = "#777777"
arrow(ax, [(xs[0], img[3]), (xs[0], 5.65), (xs[3], 5.65), (xs[3], reg[3])],
      "RGB crop, average-pooled to S/4 (regression input)", grey, "--", text_at=(xs[2], 5.7))
arrow(ax, [(xs[0], img[2]), (xs[0], 0.45), (16.0, 0.45), (16.0, bottom), (stack[1], bottom)],
      "RGB crop (Z regressor input)", grey, "--", text_at=(xs[3], 0.5))
arrow(ax, [(hmap[0] + 0.3, hmap[2]), (lm3d[1] - 0.3, lm3d[3])], "x, y: sub-pixel peaks", grey, ":",
      text_at=(9.4, 3.0), rotation=14)
ax.set_title("Two-stage part heatmap regression (paper Fig. 1), with this notebook's tensor shapes", fontsize=10)
fig

# %% [markdown]
# Two details of fa3d's cascade, both visible in its `forward` below: the $x, y$ come from the heatmaps
# by a sub-pixel peak search (notebook 01), and the Z regressor is fed Gaussians *re-rendered* at the
# decoded points, so at test time it sees the same kind of input as in training (the paper trains it on
# heatmaps from both the ground truth and the 2D stage).

# %%
course.show_source(Cascade.forward)

# %% [markdown]
# The quick preset is the same three classes, shallow and narrow, on 64 px crops. Run it for real on one
# face crop (untrained, so the landmarks are meaningless) and check that the shapes are those of the diagram:

# %% tags=["nbval-check-output"]
from fa3d.data import CenterCrop3D

quick = Cascade.from_preset(presets["quick"]).eval()
crop = CenterCrop3D(presets["quick"].image_size)(item)
with torch.no_grad():
    out = quick(crop["image"][None])          # uint8 crops: the forward normalises them
for key, value in out.items():
    assert tuple(value.shape[1:]) == info["quick"]["shapes"][key], key
    print(f"{key:18s} {tuple(value.shape)}")
print("shapes match the meta-device pass")

# %% [markdown]
# ## 4. A first look at a synthetic face in 3D
#
# Drag to turn the head. The grey image plane sits behind the face, so each landmark's depth is its
# distance in front of it. Hover a point for its index and name.

# %%
viz.image_and_3d_plotly(item["image"], item["landmarks"], scheme,
                        title=f"synthetic face {FACE_INDEX}: yaw {yaw:.0f}°, pitch {pitch:.0f}°")

# %% [markdown]
# ## 5. Where the data comes from
#
# | dataset | what it has | how to get it | licence |
# |---|---|---|---|
# | **synthetic** (built in) | any number of rendered faces, 66/68 points in 3D, pose, visibility | nothing to download | MIT, as fa3d |
# | **3DFAW** (2016 challenge) | 13,672 / 4,725 / 4,912 images, 66 points in 3D | request-only; the form is gone (see `data_scripts/README_3dfaw.md`) | research only |
# | **AFLW2000-3D** | 2,000 images, 68 points in 3D, pose | 3DDFA project page; `python data_scripts/prepare_aflw2000_3d.py` | non-commercial research |
# | **300W-LP** | 61k images, 68 points in 2D, pose | 3DDFA project page; `python data_scripts/prepare_300w_lp.py` | non-commercial research |
# | **your own folder** | images with iBUG `.pts` files (2D) | `folder:DIR` | yours |
#
# Every reader returns the same item dict as the synthetic set, so everything downstream is the same
# code. `open_dataset` opens any of them from a short spec string:

# %%
for spec in DATASET_SPECS.values():
    print(spec)
print()
opened = open_dataset("synthetic:12", image_size=IMAGE_SIZE)
print(f"open_dataset('synthetic:12') -> {type(opened).__name__} with {len(opened)} faces of {opened.image_size} px")

# %% [markdown]
# The synthetic faces are procedural heads rendered with a z-buffer: yaw uniform over ±90°, pitch ±40°,
# random shape, expression, skin tone and lighting, a neck and shoulders, sometimes glasses or a hand in
# front of the face, muted backgrounds and camera effects (blur, JPEG, greyscale), with exact 3D landmarks.
# An item depends only on `(seed, index)`, so your faces are the same as everyone else's. Twelve of them:

# %%
faces = [ds[i] for i in range(12)]
viz.face_grid(faces, scheme, ncols=6,
              titles=[f"#{i} yaw {f['pose'][0]:.0f}° pitch {f['pose'][1]:.0f}°" for i, f in enumerate(faces)])

# %%
print(f"rendering cost: {render_ms:.0f} ms per 64 px face on this machine "
      "(cheap enough to generate training data on the fly)")
facts["render_ms_per_face_64px"] = round(render_ms, 1)

# %% [markdown]
# ## 6. The course map
#
# | notebook | what you do |
# |---|---|
# | **00 overview** | this notebook: environment, the task, the system, the data |
# | **01 data** | landmark schemes, coordinates, crops, 3D-aware augmentation, disk vs Gaussian heatmaps |
# | **02 detection** | build the detection subnet from its blocks, train it, look at its maps |
# | **03 regression** | the hourglass on top of a frozen detector, then jointly; detection-only vs regression error |
# | **04 Z regressor** | Table 1's blocks; train on heatmaps from the ground truth and from the 2D stage |
# | **05 evaluation** | GTE and CVGTCE from their equations, Tables 2–3 and Fig. 3 analogues, failure cases |
# | **06 explore in 3D** | interactive 3D views of predictions, pose sliders |
# | **07 full training** | the paper's hyperparameters on a GPU (Colab or rented), synthetic or real data, resumable |
# | **08 ablations** | test the paper's claims: Z from RGB alone vs RGB + heatmaps, GT vs predicted heatmaps, heatmap width |

# %%
facts.update({
    "scheme": scheme.name,
    "num_landmarks": N,
    "presets": {name: {"image_size": d["image_size"], "heatmap_sigma": d["heatmap_sigma"],
                       "params": d["params"], "shapes": {k: list(v) for k, v in d["shapes"].items()}}
                for name, d in info.items()},
    "quick_cascade_params": info["quick"]["params"]["total"],
    "paper_cascade_params": info["paper"]["params"]["total"],
})
course.save_facts(facts, OUT_DIR, "00_overview", shown=[k for k in facts if k not in ("presets",)])

# %% [markdown]
# ## Summary
#
# - A face's 3D landmarks are an $(N, 3)$ float tensor in pixels of its image, $z$ toward the camera and zero
#   mean per face; 3DFAW scores them by GTE (eq. 2) and CVGTCE (notebook 05).
# - The linear probe printed its $R^2$ above: the 2D layout alone explains most of the depth variance of the
#   synthetic faces, the reason to give the Z network the 2D heatmaps.
# - Fig. 1 was drawn from a `meta`-device pass of both presets; their shapes and parameter counts are printed
#   above, and the quick cascade, run for real on one crop, gave the same shapes.
# - Next: notebook 01 builds the training examples and targets; 02–04 build and train the three subnetworks;
#   05 scores them.

# %% [markdown]
# ## The paper and fa3d
#
# The paper is short, and leaves much unsaid. Where it is silent, fa3d had to choose; each notebook ends
# with a table like this one for its own topic, and docs/training.md lists every choice in one place.
#
# | what | the paper says (quoted, with its section) | fa3d chooses (and why) |
# |---|---|---|
# | the system | "a CNN cascade consisting of three connected subnetworks, all learned via residual learning" (§1) | The same three subnetworks, one class each (`DetectionNet`, `RegressionNet`, `ZRegressor`), chained in one place, `Cascade.forward`. |
# | sizes | ResNet-152 (§2.1), a modified "hourglass network" (§2.1), ResNet-200 (§2.2), crops of "384× 384 pixels" (§2.3) | The `paper` preset has these sizes. The `quick` preset (the same classes, shallow and narrow, 64 px crops) is fa3d's own, so that the course runs on a laptop CPU in minutes. |
# | regression input | "the landmark detection heatmaps stacked with image features" (§1); which features: silent | fa3d's choice: the RGB crop pooled to stride 4, and in the paper and medium presets also the detector's own stride-4 features (notebook 03). |
# | Z input | "the stacked regression heatmaps produced by the regression subnetwork alongside the input RGB image" (§2.2), each landmark "a 2D Gaussian with std = 6 pixels" (§2.2) | Gaussians re-rendered at the decoded $x, y$, not the raw regression maps: at test time the Z net then sees the same kind of input as in training (notebook 04). |
# | training | "in order to accelerate convergence we trained each task independently" (§2.3) | The same: detection, regression, joint, then Z, one stage after the other in one run (notebook 07). |
# | data | "We trained and tested our model on the 3D Face Alignment in the Wild (3DFAW) dataset." (§3) | 3DFAW was request-only and the form is gone, so fa3d renders its own 3D faces by default, and reads 3DFAW, AFLW2000-3D, 300W-LP and 300-W where you have them (§5 above). |
# | GTE's normaliser | "normalized by the inter-ocular distance, as in [4]" (§3, Metrics); which points, 2D or 3D: silent | fa3d's choice: the 3D distance between the ground-truth outer eye corners, which does not shrink as the head turns (notebook 05). The official 3DFAW evaluation code is not public. |

# %% [markdown]
# ## Exercises
#
# 1. **68 points.** Re-run the notebook with `SCHEME = "68"`. Which shapes in the diagram change, and by
#    how many parameters does each subnetwork grow? Explain the Z regressor's change from its first layer.
#    *Hint:* `get_preset("paper", num_landmarks=68)`; look at `cascade.z` with `named_parameters()` and the
#    shape of the first convolution's weight.
# 2. **Memory of the targets.** At the paper's size, how many megabytes do the Gaussian target heatmaps of
#    one image take in float32, and of a batch of 8? Compare with the image itself.
#    *Hint:* the `heatmaps` row of the shape table; 4 bytes per value.
# 3. **Turn the head.** Render face `FACE_INDEX` at yaw −60°, 0° and +60° and count the visible landmarks.
#    Which part of the face disappears first?
#    *Hint:* `render_face(dataclasses.replace(ds.params(FACE_INDEX), yaw=...), IMAGE_SIZE, SCHEME)` and the
#    `visible` flag; `scheme.group_of(i)` names a point's group.
# 4. **Pose explains depth.** The probe above used only the 2D layout, linearly. Add the true yaw and
#    pitch (`probe[i]["pose"]`) as features, then try the pose alone: what happens to R²? What does that
#    say about the synthetic faces, and about what a Z network must extract from its inputs?
#    *Hint:* append `cos` and `sin` of the angles (in radians) to the features before fitting.

# %% [markdown]
# ## References
#
# - Bulat, A. & Tzimiropoulos, G. (2016). *Two-stage convolutional part heatmap regression for the 1st 3D face
#   alignment in the wild (3DFAW) challenge.* ECCV 2016 Workshops.
#   [arXiv:1609.09545](https://arxiv.org/abs/1609.09545),
#   [doi:10.1007/978-3-319-48881-3_43](https://doi.org/10.1007/978-3-319-48881-3_43). The system this course
#   rebuilds (Fig. 1, the GTE of eq. 2, Table 2).
# - Jeni, L. A., Tulyakov, S., Yin, L., Sebe, N. & Cohn, J. F. (2016). *The first 3D face alignment in the wild
#   (3DFAW) challenge.* ECCV 2016 Workshops.
#   [doi:10.1007/978-3-319-48881-3_35](https://doi.org/10.1007/978-3-319-48881-3_35). The challenge: its data,
#   66 points and metrics.
# - He, K., Zhang, X., Ren, S. & Sun, J. (2016a). *Deep residual learning for image recognition.* CVPR.
#   [arXiv:1512.03385](https://arxiv.org/abs/1512.03385). ResNet-152, the detection subnet's backbone.
# - He, K., Zhang, X., Ren, S. & Sun, J. (2016b). *Identity mappings in deep residual networks.* ECCV.
#   [arXiv:1603.05027](https://arxiv.org/abs/1603.05027). The pre-activation units of the hourglass and of the
#   ResNet-200 Z regressor.
# - Newell, A., Yang, K. & Deng, J. (2016). *Stacked hourglass networks for human pose estimation.* ECCV.
#   [arXiv:1603.06937](https://arxiv.org/abs/1603.06937). The hourglass of the regression subnet.
# - Bulat, A. & Tzimiropoulos, G. (2016). *Human pose estimation via convolutional part heatmap regression.*
#   ECCV. [arXiv:1609.01743](https://arxiv.org/abs/1609.01743). Part heatmap regression, the detection +
#   regression design of §2.1.
# - Long, J., Shelhamer, E. & Darrell, T. (2015). *Fully convolutional networks for semantic segmentation.*
#   CVPR. [arXiv:1411.4038](https://arxiv.org/abs/1411.4038). Fully convolutional networks, how the detector
#   keeps *where*.
# - Zhu, X., Lei, Z., Liu, X., Shi, H. & Li, S. Z. (2016). *Face alignment across large poses: a 3D solution*
#   (3DDFA, 300W-LP, AFLW2000-3D). CVPR. [arXiv:1511.07212](https://arxiv.org/abs/1511.07212). Where AFLW2000-3D
#   and 300W-LP come from (§5).
