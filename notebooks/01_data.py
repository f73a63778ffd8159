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
# # 01 · Data: landmarks, schemes, crops, 3D-aware augmentation and heatmaps
#
# Before any network: what a training example is. This notebook goes through the landmark schemes
# (68 vs 66 points, the left/right flip permutation, the eye corners that normalise every error),
# synthetic faces across head poses and which points the head hides, fa3d's coordinate convention,
# the paper's crops around an extended face box (§2.3) and their exact inverse, 3D-aware augmentation
# (what flips, rotations and scaling do to $z$), the two kinds of targets, binary disks for detection
# and Gaussians for regression, with sub-pixel decoding, and finally the real 3DFAW file layout,
# written and read back.
#
# **You will learn** to
#
# - convert the iBUG 68-point markup to 3DFAW's 66 points and mirror a face with the left/right permutation;
# - say which landmarks a turned head hides, and why they are labelled anyway;
# - crop a face around its extended box with one similarity matrix, and map predictions back exactly
#   ($z$ scales with the crop);
# - explain what flips, in-plane rotations and scaling must do to $z$ in 3D-aware augmentation;
# - build the two kinds of targets, binary disks for detection and Gaussians for regression, state the disk
#   radius rule and where fa3d's quick preset departs from it, and decode a Gaussian to a fraction of a pixel;
# - write and read the 3DFAW file layout.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fa3d-course/fa3d/blob/main/notebooks/01_data.ipynb)
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
SCHEME = "3dfaw66"           # "3dfaw66" (3DFAW's 66 points) or "68" (iBUG)
IMAGE_SIZE = 256             # side of the synthetic images in px
FACE_INDEX = 3               # the face used throughout
CROP_SIZE = 384              # the paper's crop side; the quick preset trains on 64 px crops
NUM_OCCLUSION_FACES = 200    # random faces for the visibility statistics; 2000 for tighter numbers
NUM_AUG_SAMPLES = 16         # augmented copies of one face
OUT_DIR = "outputs/notebooks"

# %%
import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from fa3d.course import viz
from fa3d.data import (Augment3D, CenterCrop3D, SyntheticFaces, ThreeDFAW, convert_68_to_66,
                       export_3dfaw_layout, face_crop_matrix, flip_landmarks, get_scheme, open_dataset,
                       render_face, unwarp_landmarks)
from fa3d.data.synthetic import OUTLINE_JAW_POINTS
from fa3d.data.transforms import is_mirrored, similarity_scale
from fa3d.heatmaps import decode_heatmaps, disk_heatmaps, disk_radius, gaussian_heatmaps, resize_points
from fa3d.metrics import interocular_distance
from fa3d.models import get_preset

scheme, s68 = get_scheme(SCHEME), get_scheme("68")
N = scheme.num_points
os.makedirs(OUT_DIR, exist_ok=True)
ds = SyntheticFaces(1000, image_size=IMAGE_SIZE, scheme=SCHEME, seed=0)
params = ds.params(FACE_INDEX)
# the same person, frontal and symmetric: no roll, centred in the frame, eyes looking ahead
frontal = dataclasses.replace(params, yaw=0.0, pitch=0.0, roll=0.0, shift_x=0.0, shift_y=0.0, gaze_x=0.0)
facts = {}   # what this notebook computed; written to OUT_DIR/01_data.json

# %% [markdown]
# ## 1. Landmark schemes: 68 and 66 points
#
# The iBUG/Multi-PIE markup has 68 points (0-based): jaw 0–16, brows 17–26, nose 27–35, eyes 36–47,
# outer lips 48–59, inner lips 60–67. 3DFAW uses 66: the same without the two **inner-mouth corners**
# 60 and 64. "Right" and "left" are the *subject's*: the subject's right eye (36–41) appears on the left
# of a frontal image. The **outer eye corners 36 and 45** (the same indices in both schemes) define the
# interocular distance $d_i$ that normalises every error in fa3d. The paper says only "inter-ocular
# distance" (§3); the two points, and measuring in 3D, are fa3d's choice (notebook 05).

# %%
open_mouth = dataclasses.replace(frontal, mouth_open=0.08)   # so that the inner lips are apart
face68 = render_face(open_mouth, IMAGE_SIZE, "68")
lm68 = face68["landmarks"]
fig = Figure(figsize=(11, 5.5), layout="constrained")
ax1, ax2 = fig.subplots(1, 2)
viz.show_face(face68, s68, ax=ax1, title="68 points (iBUG), 0-based; stars: outer eye corners 36 and 45")
for i, (x, y, _) in enumerate(lm68.tolist()):
    ax1.text(x + 1.2, y - 1.2, str(i), fontsize=5.5, color="white")
eyes = lm68[list(s68.outer_eye_corners)]
ax1.plot(eyes[:, 0], eyes[:, 1], "w--", lw=1)
ax1.scatter(eyes[:, 0], eyes[:, 1], marker="*", s=160, c="red", edgecolors="white", zorder=5)
# the mouth, zoomed: the two points 3DFAW drops
mouth = lm68[48:68, :2]
viz.show_face(face68, s68, ax=ax2, title="mouth: red = 60 and 64, dropped by 3dfaw66")
ax2.scatter(lm68[[60, 64], 0], lm68[[60, 64], 1], s=220, facecolors="none", edgecolors="red", linewidths=2)
for i in range(48, 68):
    ax2.text(lm68[i, 0] + 0.4, lm68[i, 1] - 0.6, str(i), fontsize=8, color="white")
lo, hi = mouth.min(0).values - 6, mouth.max(0).values + 6
ax2.set_xlim(float(lo[0]), float(hi[0])); ax2.set_ylim(float(hi[1]), float(lo[1]))
fig

# %%
s66 = get_scheme("3dfaw66")
print(f"{'part':12s}{'68-point indices':>20s}{'3dfaw66 indices':>20s}")
for part in s68.parts:
    a, b = s68.parts[part], s66.parts[part]
    print(f"{part:12s}{f'{a[0]}–{a[-1]} ({len(a)})':>20s}{f'{b[0]}–{b[-1]} ({len(b)})':>20s}")
face66 = render_face(open_mouth, IMAGE_SIZE, "3dfaw66")
converted = convert_68_to_66(lm68)
cheek = list(OUTLINE_JAW_POINTS)              # the jaw points that follow the outline in the 68 scheme
rest = [i for i in range(66) if i not in cheek]
print("\nconvert_68_to_66(68-point landmarks) vs the 66-point render:")
print(f"  all but the cheek's jaw points: max |Δx|, |Δy| = "
      f"{(converted[rest, :2] - face66['landmarks'][rest, :2]).abs().max():.2e} px")
print(f"  the cheek's jaw points {cheek}: up to {(converted[cheek, :2] - face66['landmarks'][cheek, :2]).norm(dim=1).max():.1f} px "
      "apart (the 68 scheme puts them on the face's outline)")

# %% [markdown]
# **Where the jaw contour lies is a convention.** 3DFAW labels the jaw's 3D points, hidden or not. 300-W's
# annotators put them on the face's visible outline, and 300W-LP and AFLW2000-3D move the contour of their
# 3D fits there too ("landmark marching", Zhu et al., CVPR 2016). So the renderer's 68-point scheme slides
# the cheek's jaw points (0–3, 13–16) along the head to its outline in the image, and the 66-point scheme
# keeps the 3D contour; both schemes see the same image. The lower jaw and the chin keep the 3D contour in
# both: below the cheek, these heads' ellipsoid goes on into an under-jaw that real heads do not have.
# This is fa3d's choice for its synthetic faces: with the 3D contour everywhere, the shipped model put the
# cheek's jaw points of real frontal faces 4.4 % of the face box too far in, and the lower jaw and chin about
# 2 % (`python benchmarks/jaw_bias.py`, 3 frontal development faces).

# %% [markdown]
# ### The flip permutation
#
# Mirroring an image left-right maps $x \mapsto W - 1 - x$ (pixel centres at integers). But the mirrored
# subject's *right* eye corner is the original's *left* one, so the points must also be re-indexed:
# `flip_permutation[i]` is the index, before the flip, of the point that becomes point $i$. Without it,
# a flipped training image would teach the network to put point 36 on the wrong side.
#
# A test that needs no trust: our synthetic head is left/right symmetric, so mirroring a face turned
# 30° to one side must give *exactly* the face turned 30° to the other side, landmarks and visibility included.

# %%
pairs = [(i, j) for i, j in enumerate(s68.flip_permutation) if i < j]
print(f"{len(pairs)} mirror pairs in the 68 scheme, e.g. {pairs[:3]} … {pairs[-3:]}; "
      f"{sum(i == j for i, j in enumerate(s68.flip_permutation))} points map to themselves (the midline)")
turned = render_face(dataclasses.replace(frontal, yaw=30.0), IMAGE_SIZE, "68")
other_way = render_face(dataclasses.replace(frontal, yaw=-30.0), IMAGE_SIZE, "68")
mirrored = {"image": turned["image"].flip(-1),
            "landmarks": flip_landmarks(turned["landmarks"], IMAGE_SIZE, "68"),
            "visible": turned["visible"][list(s68.flip_permutation)]}
flip_err = float((mirrored["landmarks"] - other_way["landmarks"]).abs().max())
same_vis = bool((mirrored["visible"] == other_way["visible"]).all())
print(f"flip_landmarks(yaw +30°) vs render(yaw −30°): max |Δ| over x, y, z = {flip_err:.1e} px; "
      f"visibility identical: {same_vis}")
facts["flip_vs_mirrored_render_max_px"] = flip_err

fig = Figure(figsize=(10, 3.6), layout="constrained")
axes = fig.subplots(1, 3)
for ax, it, title in zip(axes, (turned, mirrored, other_way),
                         ("yaw +30°", "mirrored + flip permutation", "rendered at yaw −30°")):
    viz.show_face(it, s68, ax=ax, title=title)
    p = it["landmarks"][36]
    ax.scatter([p[0]], [p[1]], marker="*", s=180, c="red", edgecolors="white", zorder=5)
    ax.text(p[0] - 4, p[1] - 8, "36", color="red", fontsize=9, weight="bold", ha="right")
fig

# %% [markdown]
# ## 2. Synthetic faces across yaw
#
# `ds.params(i)` returns the parameters of face $i$; change one field with `dataclasses.replace` and
# re-render to see what that factor does. Here, the same person from −90° (facing image left) to +90°.
# Hollow markers are self-occluded points: they stay labelled, as in 3DFAW.

# %%
yaws = [-90, -60, -30, 0, 30, 60, 90]
sweep = [render_face(dataclasses.replace(params, yaw=float(y)), IMAGE_SIZE, SCHEME) for y in yaws]
viz.face_grid(sweep, scheme, ncols=len(yaws), panel_size=2.0,
              titles=[f"yaw {y:+d}°: {int(f['visible'].sum())}/{N} visible" for y, f in zip(yaws, sweep)])

# %% [markdown]
# ### What makes a render read as a photograph
#
# A network trained only on synthetic faces learns whatever separates a face from its surroundings *in
# the renders*. If every chin ends on a garish background, it learns that, and a real chin, which ends
# on a neck, fools it. So the renderer adds what real photographs have (the levers Wood et al., *Fake It
# Till You Make It*, ICCV 2021, list; `fa3d.data.synthetic.LEVERS`), each randomised per face:
#
# | lever | what it adds | where |
# |---|---|---|
# | `background` | the clutter desaturated, toned toward one colour, sometimes out of focus | `scene.tone_background` |
# | `body` | a neck under the jaw and shoulders in clothes, in the same z-buffer as the head | `scene.body_points` |
# | `glasses` | rims, bridge and arms in front of the eyes (one face in five) | `scene.glasses_points` |
# | `occluders` | a hand-like blob or an object over part of the face; the landmarks under it are marked hidden | `scene.occlude` |
# | `camera` | blur, white-balance cast, gamma, greyscale, JPEG | `scene.camera_effects` |
#
# The head itself follows human proportions (Farkas' anthropometric norms): a mouth as wide as the
# pupils are apart, a nose base about as wide as the gap between the eyes, a jaw nearly as wide at the
# mouth as at the ears. Below, one face with the levers switched on one at a time; the parameters are
# plain fields of `SyntheticFaceParams`, so `dataclasses.replace` shows any one of them.

# %%
plain = dataclasses.replace(params, body=False, glasses=False, occluder=0, bg_saturation=1.0, bg_tone_mix=0.0,
                            bg_blur=0.0, blur=0.0, color_cast=(1.0, 1.0, 1.0), gamma=1.0, grayscale=False,
                            jpeg_quality=0, yaw=25.0)
steps = {"plain head": plain}
steps["+ background"] = dataclasses.replace(plain, bg_saturation=0.4, bg_tone=(0.55, 0.5, 0.45), bg_tone_mix=0.3,
                                            bg_blur=1.5)
steps["+ body"] = dataclasses.replace(steps["+ background"], body=True, cloth_color=(0.2, 0.25, 0.35))
steps["+ glasses"] = dataclasses.replace(steps["+ body"], glasses=True, glasses_color=(0.08, 0.06, 0.05))
steps["+ occluder"] = dataclasses.replace(steps["+ glasses"], occluder=1, occluder_color=params.skin)
steps["+ camera"] = dataclasses.replace(steps["+ occluder"], blur=0.8, color_cast=(1.08, 1.0, 0.9), gamma=0.9,
                                        jpeg_quality=40)
lever_faces = [render_face(p, IMAGE_SIZE, SCHEME) for p in steps.values()]
viz.face_grid(lever_faces, scheme, ncols=len(steps), panel_size=2.0, titles=list(steps))

# %% [markdown]
# ## 3. Visibility and self-occlusion
#
# A landmark is *visible* when it is inside the image, its surface faces the camera and nothing is in
# front of it: the head itself, glasses or an occluder (a z-buffer test in the renderer). How much of the face does a turned head hide?
# Statistics over random faces (yaw uniform in ±90°):

# %%
stats = SyntheticFaces(NUM_OCCLUSION_FACES, image_size=96, scheme=SCHEME, seed=2)
items = [stats[i] for i in range(len(stats))]
vis = torch.stack([it["visible"] for it in items]).numpy()            # (F, N)
abs_yaw = np.abs([float(it["pose"][0]) for it in items])
occluded = 1 - vis.mean(1)
edges = np.arange(0, 91, 15)
which = np.clip(np.digitize(abs_yaw, edges) - 1, 0, len(edges) - 2)
bin_means = [occluded[which == b].mean() if (which == b).any() else np.nan for b in range(len(edges) - 1)]
groups = list(scheme.groups)
group_of = np.array([groups.index(scheme.group_of(i)) for i in range(N)])
side = abs_yaw > 60
group_occ = [1 - vis[side][:, group_of == g].mean() for g in range(len(groups))]

fig = Figure(figsize=(10, 3.4), layout="constrained")
ax1, ax2 = fig.subplots(1, 2)
ax1.scatter(abs_yaw, 100 * occluded, s=8, alpha=0.4, label="one face")
ax1.plot((edges[:-1] + edges[1:]) / 2, 100 * np.array(bin_means), "o-", c="black", label="mean per 15° bin")
ax1.set_xlabel("|yaw| (degrees)"); ax1.set_ylabel("occluded landmarks (%)"); ax1.legend(fontsize=8)
ax2.bar(groups, 100 * np.array(group_occ), color=[viz.GROUP_COLOURS[g] for g in groups], edgecolor="black")
ax2.set_ylabel("occluded (%)"); ax2.set_title(f"by face part, |yaw| > 60° ({side.sum()} faces)", fontsize=9)
fig

# %%
occ_side, occ_front = float(occluded[side].mean()), float(occluded[abs_yaw < 30].mean())
print(f"occluded landmarks: {100 * occ_front:.1f} % at |yaw| < 30°, {100 * occ_side:.1f} % at |yaw| > 60°")
facts.update(occluded_fraction_yaw_gt60=round(occ_side, 4), occluded_fraction_yaw_lt30=round(occ_front, 4))

# %% [markdown]
# Near-frontal faces lose only a few points; a face beyond 60° hides about 40 % of them, the far side of
# the jaw, eyes and brows first (the yaw sweep above shows which). The network must still place those
# points: that is where the layout of the visible points and a learned 3D face prior matter.

# %% [markdown]
# ## 4. The coordinate convention
#
# Everywhere in fa3d: $x$ right, $y$ down, in pixels; **pixel centres at integer coordinates** (the pixel
# in row $i$, column $j$ has its centre at $x=j, y=i$, so a $W$-pixel-wide image spans $[-0.5, W-0.5]$);
# $z$ in the same pixel units, **larger = closer to the camera**, zero mean per face.
#
# Pixel centres: a Gaussian placed at $(x, y) = (3, 1)$ on a 6×4 map peaks at exactly 1 in column 3, row 1.
# Matplotlib's `imshow` uses the same convention, so the marker sits on the pixel's centre.

# %%
tiny = gaussian_heatmaps(torch.tensor([[3.0, 1.0]]), (4, 6), sigma=0.8)[0]
row, col = divmod(int(tiny.argmax()), 6)
print(f"peak value {tiny.max():.3f} at row {row}, column {col}; image spans x in [-0.5, 5.5]")
print("resize_points maps the image edge onto the edge: x = -0.5 at 64 px ->",
      float(resize_points(torch.tensor([[-0.5, -0.5]]), 64, 16)[0, 0]), "at 16 px")

# %%
fine_yaws = np.arange(-90, 91, 15)
depth = torch.stack([render_face(dataclasses.replace(frontal, yaw=float(y)), 96, "68")["landmarks"][:, 2]
                     for y in fine_yaws])                                     # (Y, 68) in 96 px units
fig = Figure(figsize=(10, 3.4), layout="constrained")
ax1, ax2 = fig.subplots(1, 2)
ax1.imshow(tiny, cmap="magma")
ax1.scatter([3], [1], marker="x", c="cyan", s=60)
ax1.set_title("Gaussian at (3, 1): pixel centres are integers", fontsize=9)
for i, name in ((30, "30 nose tip"), (0, "0 jaw end, subject's right"), (16, "16 jaw end, subject's left")):
    ax2.plot(fine_yaws, depth[:, i], "o-", ms=3, label=name)
ax2.axhline(0, c="grey", lw=0.5); ax2.set_xlabel("yaw (degrees; > 0 turns the nose toward image right)")
ax2.set_ylabel("z (px at 96 px, larger = closer)"); ax2.legend(fontsize=7)
fig

# %%
y0 = list(fine_yaws).index(0)
print(f"frontal: the nose tip is the closest point (z = {depth[y0, 30]:.1f} px, max over the face "
      f"{depth[y0].max():.1f}); at yaw +60° the subject's right jaw end (0) has z = "
      f"{depth[list(fine_yaws).index(60), 0]:+.1f} px, the left one (16) {depth[list(fine_yaws).index(60), 16]:+.1f} px")

# %% [markdown]
# ## 5. Crops around the extended face box (§2.3)
#
# The paper crops every image "around an extended (by 20–25 %) bounding box" and resizes it to 384×384.
# fa3d's crop is one **similarity transform**: a square window of side $(1+e)\max(w, h)$ centred on the
# face box ($e = 0.225$, the middle of the paper's range), mapped onto the $S\times S$ crop. As a 2×3
# matrix $A = [\,kR \mid t\,]$ with scale $k = S / \text{side}$:
#
# $$\begin{pmatrix}x'\\y'\end{pmatrix} = kR\begin{pmatrix}x\\y\end{pmatrix} + t, \qquad z' = k\,z .$$
#
# $z$ is in pixels, so it scales with the image. The window's edges land on the crop's edges
# ($-0.5$ and $S-0.5$), so pixel centres stay exact.

# %% [markdown]
# ### Your turn: the crop matrix and the landmarks in the crop
#
# Write the crop yourself, without rotation ($R = I$). `crop_exercise(landmarks, box, size, extend)` takes
# the `(N, 3)` landmarks in image pixels, the face box $(x_1, y_1, x_2, y_2)$ (a tuple or a tensor), the crop's
# side `size` and the extension $e$, and returns the pair `(A, crop_landmarks)`: the `(2, 3)` matrix (float64)
# and the `(N, 3)` landmarks in crop pixels, in the landmarks' dtype. The window's side is
# $(1+e)\max(w, h)$, $k = S/\text{side}$, and $t$ puts the box's centre on the crop's centre pixel,
# $\big(\frac{S-1}{2}, \frac{S-1}{2}\big)$ (pixel centres are integers, §4). Then $x, y$ go through $A$ and $z$ is
# multiplied by $k$. The check compares with fa3d's crop on a wide box, a tall box and a box with $e = 0$.

# %% nbgrader={"grade": false, "grade_id": "crop", "locked": false, "schema_version": 3, "solution": true, "task": false}
def crop_exercise(landmarks, box, size, extend=0.225):
    """(A (2, 3) float64, landmarks (N, 3) in crop px): the crop of the extended face box, z scaled by k."""
    ### BEGIN SOLUTION
    x1, y1, x2, y2 = (float(v) for v in box)
    k = size / ((1 + extend) * max(x2 - x1, y2 - y1))
    centre = (size - 1) / 2
    A = torch.tensor([[k, 0.0, centre - k * (x1 + x2) / 2],
                      [0.0, k, centre - k * (y1 + y2) / 2]], dtype=torch.float64)
    lm = landmarks.double()
    xy = lm[:, :2] @ A[:, :2].T + A[:, 2]                  # x, y through A
    return A, torch.cat([xy, k * lm[:, 2:]], dim=1).to(landmarks.dtype)   # z only scaled
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "crop_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from fa3d.course import exercises    # the checks of the course's code exercises
facts["exercise_crop_max_diff"] = exercises.check_crop(crop_exercise)

# %% [markdown]
# Compare your answer with fa3d's `face_crop_matrix` (its `similarity_matrix` also turns and mirrors, for
# augmentation, §6):

# %%
course.show_source(face_crop_matrix)

# %%
item = ds[FACE_INDEX]
A = face_crop_matrix(item["bbox"], CROP_SIZE)
crop = CenterCrop3D(CROP_SIZE)(item)
S = CROP_SIZE
corners = torch.tensor([[-0.5, -0.5, 0], [S - 0.5, -0.5, 0], [S - 0.5, S - 0.5, 0], [-0.5, S - 0.5, 0],
                        [-0.5, -0.5, 0]])
window = unwarp_landmarks(corners, A)          # the crop's edges in the original image
fig = Figure(figsize=(9, 4.5), layout="constrained")
ax1, ax2 = fig.subplots(1, 2)
viz.show_face(item, scheme, ax=ax1, draw_bbox=True, title=f"original {IMAGE_SIZE} px: face box (white) "
              "and crop window (cyan)")
ax1.plot(window[:, 0], window[:, 1], c="cyan", lw=1.2)
ax1.set_xlim(-0.5, IMAGE_SIZE - 0.5); ax1.set_ylim(IMAGE_SIZE - 0.5, -0.5)
viz.show_face(crop, scheme, ax=ax2, title=f"crop {S}×{S}")
fig

# %%
print("crop_matrix (original px -> crop px):\n", crop["crop_matrix"].numpy().round(4))
k = float(similarity_scale(crop["crop_matrix"]))
back = unwarp_landmarks(crop["landmarks"], crop["crop_matrix"])
roundtrip = float((back - item["landmarks"]).abs().max())
z_ratio = float(crop["landmarks"][:, 2].std() / item["landmarks"][:, 2].std())
print(f"scale k = {k:.4f}; z in the crop / z in the original (std ratio) = {z_ratio:.4f}")
print(f"round trip original -> crop -> original: max error {roundtrip:.2e} px (float32 rounding)")
facts.update(crop_roundtrip_max_px=roundtrip, crop_scale=round(k, 4))

# %% [markdown]
# The inverse matters at test time: the network predicts in crop pixels, `unwarp_landmarks` (through
# `fa3d.data.transforms.unwarp_landmarks`) brings $x, y$ back and divides $z$ by $k$, and the error is float
# rounding.

# %% [markdown]
# ## 6. 3D-aware augmentation
#
# §2.3: random **flips**, **in-plane rotations** in $[-35°, 35°]$, **scaling** in $[0.85, 1.15]$ and colour
# jitter. `Augment3D` draws all geometric factors, builds *one* similarity matrix (crop ∘ scale ∘ rotation
# ∘ flip) and resamples the image once, so image and landmarks cannot drift apart. Its effect on the
# landmarks, from the module docstring:
#
# - $x, y \mapsto A\,[x, y, 1]^\top$;
# - $z \mapsto s\,z$ with $s = \sqrt{|\det A_{:,:2}|}$: a crop that makes the face $s$ times bigger makes its
#   depth (in pixels) $s$ times bigger too; a rotation about the view axis leaves $z$ alone;
# - a mirror ($\det < 0$) flips $x$ only and re-indexes points (and visibility) with the flip permutation.

# %%
aug = Augment3D(CROP_SIZE, scheme=SCHEME)
print(aug.config)
gen = torch.Generator().manual_seed(0)        # a seeded generator reproduces the same samples
samples = [aug(item, gen) for _ in range(NUM_AUG_SAMPLES)]

def describe(A):
    """(scale s, rotation in degrees, mirrored?) of a crop matrix."""
    A = A.double()
    return float(similarity_scale(A)), math.degrees(math.atan2(-A[1, 0], A[1, 1])), bool(is_mirrored(A))

shown = samples[:8]
titles = []
for smp in shown:
    s, angle, flip = describe(smp["crop_matrix"])
    titles.append(f"×{s / k:.2f} of the centre crop, {angle:+.0f}°" + (", flipped" if flip else ""))
viz.face_grid(shown, scheme, ncols=4, titles=titles, panel_size=2.6)

# %% [markdown]
# Now check, on every sample, that $z$ followed the crop's scale exactly: $z_{\text{aug}} = s\,z_{\text{orig}}$
# (with the permutation for flipped samples), that the 3D shape is unchanged (depth range over the 3D
# interocular distance, a scale-free number), and that unwarping recovers the original landmarks.

# %%
perm = list(scheme.flip_permutation)
z0 = item["landmarks"][:, 2]
shape0 = float((z0.max() - z0.min()) / interocular_distance(item["landmarks"], scheme))
rows, z_err, aug_rt, shape_err = [], 0.0, 0.0, 0.0
for smp in samples:
    s, angle, flip = describe(smp["crop_matrix"])
    z_expected = s * (z0[perm] if flip else z0)
    z_err = max(z_err, float((smp["landmarks"][:, 2] - z_expected).abs().max()))
    back = unwarp_landmarks(smp["landmarks"], smp["crop_matrix"], perm if flip else None)
    aug_rt = max(aug_rt, float((back - item["landmarks"]).abs().max()))
    za = smp["landmarks"][:, 2]
    shape = float((za.max() - za.min()) / interocular_distance(smp["landmarks"], scheme))
    shape_err = max(shape_err, abs(shape - shape0))
    rows.append((s, float(za.std() / z0.std())))
print(f"max |z_aug − s·z_orig| = {z_err:.2e} px over {len(samples)} samples")
print(f"depth range / interocular distance: {shape0:.4f} before, max change {shape_err:.1e} after augmentation")
print(f"max unwarp error: {aug_rt:.2e} px")
facts.update(aug_z_scale_max_error_px=z_err, aug_shape_ratio_max_change=shape_err, aug_roundtrip_max_px=aug_rt)

rows = np.array(rows)
fig = Figure(figsize=(4, 3.4), layout="constrained")
ax = fig.add_subplot()
ax.plot(rows[:, 0], rows[:, 1], "o", label="augmented samples")
lim = [rows.min() * 0.97, rows.max() * 1.03]
ax.plot(lim, lim, "k--", lw=0.8, label="z ratio = s")
ax.set_xlabel("crop scale s (crop px per original px)"); ax.set_ylabel("std(z_aug) / std(z_orig)")
ax.legend(fontsize=8); ax.set_title("z scales with the crop", fontsize=9)
fig

# %% [markdown]
# Had $z$ been left in the original's pixels, a zoomed crop would show a face that is bigger in $x, y$ but
# not deeper: a flattened or stretched 3D shape, a different target for the same kind of face.

# %% [markdown]
# ## 7. Targets: binary disks (detection) vs Gaussians (regression)
#
# **Detection** (§2.1) is trained with a per-pixel sigmoid cross-entropy against binary maps: for landmark
# $n$ at $\mathbf{x}_n$ and pixel $\mathbf{p}$,
#
# $$D_n(\mathbf{p}) = \big[\,\lVert \mathbf{p} - \mathbf{x}_n \rVert_2 \le r\,\big], \qquad r = 7\,\text{px}\cdot\frac{h}{220\,\text{px}},$$
#
# 7 px "for a face with a bounding box height equal to approximately 220 pixels". The paper gives this one
# size; fa3d scales the radius with the face height $h$. fa3d's detection maps live at stride 4 ($S/4$), so
# the points and $h$ are converted to map pixels first. (fa3d
# never lets $r$ fall below 1 map pixel, which matters at the quick preset's scale: see the end of this
# section.)
#
# **Regression** (§2.1) is trained with "a pixel wise L2 loss". The paper gives the width of a Gaussian only
# for the Z regressor's input (§2.2): "a 2D Gaussian with std = 6 pixels", at its 384 px crops. It does not
# say what the regression targets are. fa3d makes them the same Gaussians, because the Z net's input is the
# regression net's output (§2.2); the quick preset uses 3 px at 64 px (printed below):
#
# $$G_n(\mathbf{p}) = \exp\!\Big(-\frac{\lVert \mathbf{p} - \mathbf{x}_n \rVert_2^2}{2\sigma^2}\Big).$$

# %%
h_map = S // 4
lm_crop = crop["landmarks"]
face_h = float(crop["bbox"][3] - crop["bbox"][1])
radius = disk_radius(face_h * h_map / S)                     # in map pixels
disks = disk_heatmaps(resize_points(lm_crop, S, h_map), h_map, radius)     # (N, S/4, S/4)
sigma = 6.0 * S / 384
gauss = gaussian_heatmaps(lm_crop, S, sigma)                                 # (N, S, S)
print(f"face height in the {S} px crop: {face_h:.0f} px -> disk radius {radius * S / h_map:.1f} crop px "
      f"= {radius:.2f} px on the {h_map}×{h_map} detection maps ({int(disks[30].sum())} pixels per disk)")
print(f"Gaussian σ = {sigma:.1f} px on {S}×{S} maps; disks {tuple(disks.shape)}, Gaussians {tuple(gauss.shape)}")
print("radius for faces 110 / 220 / 440 px high:", [round(disk_radius(h), 1) for h in (110, 220, 440)], "px")
quick = get_preset("quick", num_landmarks=N)
print(f"quick preset: {quick.image_size} px crops, maps at {quick.image_size // 4} px, σ = {quick.heatmap_sigma} px")
facts.update(disk_radius_crop_px=round(radius * S / h_map, 3), gaussian_sigma_px=sigma)

fig = Figure(figsize=(12, 3.3), layout="constrained")
axes = fig.subplots(1, 4)
nose = 30   # the nose tip, index 30 in both schemes
viz.show_heatmap(disks, nose, image=crop["image"], alpha=0.5, ax=axes[0], title=f"disk, landmark {nose} (S/4 map)")
viz.show_heatmap(disks, None, image=crop["image"], alpha=0.5, ax=axes[1], title="Σ all disks")
viz.show_heatmap(gauss, nose, image=crop["image"], alpha=0.5, ax=axes[2], title=f"Gaussian σ={sigma:.0f}, landmark {nose}")
viz.show_heatmap(gauss, None, image=crop["image"], alpha=0.5, ax=axes[3], title="Σ all Gaussians")
fig

# %% [markdown]
# The disk says *where the landmark may be* (a yes/no per pixel, a classification); the Gaussian says
# *how close* each pixel is, and its peak can be located to a fraction of a pixel (next section), which is
# why the regression subnet, not the detector, gives the final $x, y$.

# %% [markdown]
# ### At the quick preset's scale the radius rule is clamped
#
# The rule is a proportion: $r/h = 7/220$ of the face height, whatever the crop size. On the 96×96 maps of
# a 384 px crop that is a couple of map pixels (printed above). The quick preset's 64 px crops have 16×16
# detection maps, on which a face is only about a dozen map pixels high, and $7\,h/220$ comes out **below one
# map pixel**. A disk that thin can fall between pixel centres and be empty, so `disk_radius` never returns
# less than `min_radius` = 1 map pixel:

# %%
course.show_source(disk_radius)

# %%
quick_map = quick.image_size // 4
quick_crops = [CenterCrop3D(quick.image_size)(ds[i]) for i in range(32)]
quick_face_h = float(np.median([float(c["bbox"][3] - c["bbox"][1]) for c in quick_crops]))  # crop px, as in training
quick_face_h_map = quick_face_h * quick_map / quick.image_size                   # the same height in map px
rule_radius = 7.0 * quick_face_h_map / 220.0        # r = 7 px · h / 220 px, the paper's rule as stated
used_radius = disk_radius(quick_face_h_map)         # what fa3d trains the quick detector with
print(f"quick preset, {quick.image_size} px crops and {quick_map}×{quick_map} maps: median face height "
      f"{quick_face_h_map:.1f} map px")
print(f"  the rule gives r = {rule_radius:.2f} map px; disk_radius clamps it to {used_radius:.2f} px, "
      f"{used_radius / rule_radius:.1f}× the paper's proportion (r/h = {used_radius / quick_face_h_map:.3f} "
      f"instead of 7/220 = {7 / 220:.3f})")
print(f"  the {S} px crop above: r = {radius:.2f} map px, "
      + ("the rule as stated (not clamped)" if 7.0 * face_h * h_map / S / 220.0 >= 1.0 else "clamped as well"))
facts.update(quick_disk_radius_rule_map_px=round(rule_radius, 3), quick_disk_radius_map_px=float(used_radius),
             quick_disk_over_paper_proportion=round(used_radius / rule_radius, 2))

# %% [markdown]
# So the quick detector is trained on disks that cover a larger share of the face than the paper's (by the
# factor printed above): a coarser yes/no target, which asks less precision of the detector and leaves more
# for the regression subnet to refine. The paper preset, at 384 px, uses the rule as written.

# %% [markdown]
# ### Your turn: the disk targets
#
# Write the detection target $D_n(\mathbf{p}) = [\lVert \mathbf{p} - \mathbf{x}_n \rVert_2 \le r]$ yourself.
# `disk_targets_exercise(points, size, radius)` takes `points`, an `(N, 2)` tensor of $x, y$ in pixels of the
# map, `size`, an int or `(H, W)`, and `radius`, a float in map pixels, and returns the `(N, H, W)` float32
# maps, 1 where the pixel centre is within the radius and 0 elsewhere. Pixel centres are at integers (§4):
# row $i$, column $j$ is the point $(x, y) = (j, i)$. A NaN point needs no special case (every comparison
# with NaN is false, so its map is empty). The check compares your maps with `disk_heatmaps` on random
# points, a non-square map, and points whose disk passes exactly through pixel centres.

# %% nbgrader={"grade": false, "grade_id": "disk_targets", "locked": false, "schema_version": 3, "solution": true, "task": false}
def disk_targets_exercise(points, size, radius):
    """Binary disks: points (N, 2) x, y in map px, size int or (H, W), radius in map px -> (N, H, W) float32."""
    ### BEGIN SOLUTION
    H, W = (size, size) if isinstance(size, int) else size
    xs = torch.arange(W, dtype=torch.float32)                      # pixel centres: columns
    ys = torch.arange(H, dtype=torch.float32)                      # and rows
    dx = xs[None, None, :] - points[:, 0, None, None].float()      # (N, 1, W)
    dy = ys[None, :, None] - points[:, 1, None, None].float()      # (N, H, 1)
    return (dx ** 2 + dy ** 2 <= radius ** 2).float()              # (N, H, W), broadcast
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "disk_targets_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from fa3d.course import exercises    # the checks of the course's code exercises
facts["exercise_disk_targets_max_diff"] = exercises.check_disk_targets(disk_targets_exercise)

# %% [markdown]
# ## 8. Sub-pixel decoding
#
# The argmax of a map is a whole pixel: up to 0.5 px off per axis. The log of a Gaussian is a parabola, so
# three samples around the argmax, $L_{-1}, L_0, L_{+1}$ of $L = \log G$ along $x$ (then along $y$), give
# its vertex exactly:
#
# $$\hat{x} = x_{\arg\max} + \frac{L_{-1} - L_{+1}}{2\,(L_{-1} - 2L_0 + L_{+1})}.$$

# %%
gen = torch.Generator().manual_seed(0)

def decode_errors(size, sigma, n):
    """Errors (px) of sub-pixel decoding and of the plain argmax for n random points on size×size maps."""
    pts = 3 + (size - 7) * torch.rand(n, 1, 2, generator=gen)       # anywhere, away from the border
    maps = gaussian_heatmaps(pts, size, sigma)
    sub = (decode_heatmaps(maps) - pts).norm(dim=-1)
    idx = maps.flatten(-2).argmax(-1)
    argmax = torch.stack([idx % size, idx // size], -1).float()
    return sub, (argmax - pts).norm(dim=-1)

results = {"quick (64 px, σ=%g)" % quick.heatmap_sigma: decode_errors(64, quick.heatmap_sigma, 1000),
           "paper (384 px, σ=6)": decode_errors(384, 6.0, 100)}
for name, (sub, am) in results.items():
    print(f"{name:22s} sub-pixel: max {sub.max():.1e} px | argmax: mean {am.mean():.3f}, max {am.max():.3f} px")
own = (decode_heatmaps(gauss) - lm_crop[:, :2]).norm(dim=-1)
disk_dec = (resize_points(decode_heatmaps(disks), h_map, S) - lm_crop[:, :2]).norm(dim=-1)
print(f"this face's {N} Gaussian targets decode to within {own.max():.1e} px; "
      f"its disks (argmax of a flat top) only to {disk_dec.mean():.2f} px on average (crop px)")
decode_max = max(float(sub.max()) for sub, _ in results.values())
facts.update(heatmap_decode_error_px=max(decode_max, float(own.max())),
             argmax_error_px_mean=round(float(np.mean([am.mean() for _, am in results.values()])), 4),
             disk_decode_error_crop_px_mean=round(float(disk_dec.mean()), 3))

# %%
true_x, sig = 10.3, 1.5
xs = np.arange(6, 16)
logs = -(xs - true_x) ** 2 / (2 * sig ** 2)
i0 = int(np.argmax(logs))
l_m, l_0, l_p = logs[i0 - 1:i0 + 2]
vertex = xs[i0] + (l_m - l_p) / (2 * (l_m - 2 * l_0 + l_p))
fine = np.linspace(6, 15, 200)
fig = Figure(figsize=(5, 3), layout="constrained")
ax = fig.add_subplot()
ax.plot(fine, -(fine - true_x) ** 2 / (2 * sig ** 2), c="lightgrey", label="log of the Gaussian")
ax.plot(xs, logs, "o", c="black", label="pixel samples")
ax.plot(xs[i0 - 1:i0 + 2], logs[i0 - 1:i0 + 2], "o", c="red", label="3 samples used")
ax.axvline(xs[i0], c="grey", ls=":", label=f"argmax {xs[i0]}")
ax.axvline(vertex, c="red", ls="--", label=f"vertex {vertex:.3f}")
ax.set_xlabel("x (px)"); ax.set_ylabel("log value"); ax.legend(fontsize=7)
fig

# %% [markdown]
# **Decoding a network's map.** A trained network's map is a *noisy* Gaussian, and three raw pixels of it give a
# noisy vertex. The paper and medium presets therefore first blur the few pixels around the argmax with a
# Gaussian of half the target's width (`decode_heatmaps(maps, smoothing=σ/2)`, `Preset.decode_smoothing`;
# DARK, Zhang et al. 2020, does the same to the whole map). A blurred Gaussian is still a Gaussian with the
# same centre, so the decoder stays exact on clean maps. The quick preset of this course decodes without
# it, as its ready-made runs and the shipped model were measured. The paper does not say how it decodes;
# this is fa3d's choice (see "The paper and fa3d" below), and docs/training.md measures what it changes on
# real faces.

# %% [markdown]
# ### Your turn: the sub-pixel decoder
#
# Write the decoder of the equation above for maps whose peak is not on the border.
# `decode_exercise(heatmaps)` takes `(N, H, W)` maps and returns an `(N, 2)` float32 tensor of $x, y$ (map
# pixels): the argmax pixel (column $j$ is $x$, row $i$ is $y$), plus the vertex offset of the parabola through
# the **log** of the map at columns $j-1, j, j+1$ of the peak's row, and likewise along $y$ in its column.
# (`decode_heatmaps` also handles peaks on the border, flat maps and noisy tails; you need not.) The check
# compares with `decode_heatmaps` to $10^{-3}$ px on Gaussians of several widths, a non-square map, peaks
# lower than 1 and peaks exactly on pixel centres.

# %% nbgrader={"grade": false, "grade_id": "decode", "locked": false, "schema_version": 3, "solution": true, "task": false}
def decode_exercise(heatmaps):
    """Sub-pixel peaks of (N, H, W) maps (peak away from the border) -> (N, 2) float32 x, y in map px."""
    ### BEGIN SOLUTION
    N, H, W = heatmaps.shape
    idx = heatmaps.reshape(N, H * W).argmax(-1)
    iy, ix, n = idx // W, idx % W, torch.arange(N)
    L = heatmaps.float().clamp(min=1e-30).log()
    lx = [L[n, iy, ix + d] for d in (-1, 0, 1)]                    # along x, in the peak's row
    ly = [L[n, iy + d, ix] for d in (-1, 0, 1)]                    # along y, in its column
    x = ix + (lx[0] - lx[2]) / (2 * (lx[0] - 2 * lx[1] + lx[2]))
    y = iy + (ly[0] - ly[2]) / (2 * (ly[0] - 2 * ly[1] + ly[2]))
    return torch.stack([x, y], -1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "decode_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from fa3d.course import exercises
facts["exercise_decode_max_diff_px"] = exercises.check_decode(decode_exercise)

# %% [markdown]
# Compare your answer with fa3d's: `decode_heatmaps` takes each axis's offset from `_peak_offset`, which
# also returns 0 where the three samples do not curve down (there is no peak to fit):

# %%
course.show_source(fa3d.heatmaps._peak_offset)

# %% [markdown]
# ## 9. Reading the real formats
#
# The real datasets cannot be downloaded here (3DFAW is request-only, AFLW2000-3D and 300W-LP come from
# the 3DDFA page under non-commercial licences; see notebook 00), but their formats are simple and fa3d
# reads them. 3DFAW's layout is `<split>_img/<id>.jpg` plus `<split>_lm/<id>_lm.csv` with 66 rows `x,y,z`.
# `export_3dfaw_layout` writes any fa3d dataset in that layout (useful to hand synthetic data to other
# code); `ThreeDFAW` reads it back. Both in a temporary folder:

# %%
with tempfile.TemporaryDirectory() as tmp:
    small = SyntheticFaces(4, image_size=128, scheme="3dfaw66", seed=0)
    n_written = export_3dfaw_layout(small, tmp)
    for folder in sorted(Path(tmp).iterdir()):
        files = sorted(folder.iterdir())
        print(f"{folder.name}/  {len(files)} files: {files[0].name}, {files[1].name}, ...")
    first_csv = sorted(Path(tmp, "train_lm").glob("*.csv"))[0]
    print(f"... {n_written} faces written; {first_csv.name} starts with:")
    print("".join(first_csv.read_text().splitlines(keepends=True)[:3]))
    read = ThreeDFAW(tmp, split="train")
    print(read, "| via open_dataset:", len(open_dataset(f"3dfaw:{tmp}")), "faces")
    by_id = {read[i]["id"]: read[i] for i in range(len(read))}
    lm_diff = max(float((by_id[small[i]["id"]]["landmarks"] - small[i]["landmarks"]).abs().max())
                  for i in range(len(small)))
    img_diff = float(np.mean([(by_id[small[i]["id"]]["image"].float() - small[i]["image"].float()).abs().mean()
                              for i in range(len(small))]))
    print(f"landmarks read back: max |Δ| = {lm_diff:.1e} px; JPEG (quality 95) images: mean |Δ| = "
          f"{img_diff:.2f} grey levels of 255")
    try:
        export_3dfaw_layout(small, tmp)        # fa3d never overwrites files unless asked to
    except FileExistsError as err:
        print("second export refused:", err)
facts.update(export_landmarks_max_diff_px=lm_diff, export_image_mean_abs_diff=round(img_diff, 3))

# %% [markdown]
# The other readers follow the same pattern and return the same item dict:
# `AFLW2000_3D(root)` (`<name>.jpg` + `<name>.mat` with `pt3d_68` (3, 68) and `Pose_Para`),
# `W300LP(root)` (`<subset>/<name>.jpg` + `.mat` with `pt2d`: 2D, $z$ is NaN; with the 3DMM bases,
# `W300LP(root, bases=DIR)`, every face gets its depth from its 3DMM fit, see notebook 07) and
# `PtsFolder(root)` (images with iBUG `.pts` files, for your own annotations). Every reader speaks fa3d's
# conventions whatever the file's: 0-based pixels (MATLAB's 1-based annotations lose 1) and one pose
# convention (`fa3d.data.pose`: yaw > 0 turns the nose to the image's right; AFLW2000-3D stores the
# opposite sign, and the reader converts). A malformed file raises an error that names the file and the
# problem.

# %%
course.save_facts(facts, OUT_DIR, "01_data")

# %% [markdown]
# ## Summary
#
# - A training example is an item dict (image, $(N, 3)$ landmarks in pixels, visibility, pose, box); every
#   reader, synthetic or real, returns the same dict.
# - The crop is one similarity matrix; the round trip crop → original printed above is exact to float
#   rounding, and $z$ scales with $x, y$ (the std ratio printed above equals the crop's scale $k$).
# - Augmentation changes $z$ with the geometry: a flip re-indexes and mirrors, a scaling scales $z$ too.
# - Targets: disks of radius $7\,h/220$ for detection (clamped to 1 map pixel at the quick scale, the factor
#   printed in §7) and Gaussians for regression; sub-pixel decoding recovers a Gaussian's centre to the
#   float error printed in §8, where a plain argmax is off by a fraction of a pixel.
# - Next: notebook 02 builds and trains the detection subnet on these disks.

# %% [markdown]
# ## The paper and fa3d
#
# What the paper says about the data and the targets, and what fa3d chose where it says nothing.
#
# | what | the paper says (quoted, with its section) | fa3d chooses (and why) |
# |---|---|---|
# | crop | "all images were cropped around an extended (by 20–25 %) bounding box, and then resized so that the final cropped image had a resolution of 384× 384 pixels" (§2.3); which box, and how the extension is measured: silent | A square window of side $1.225 \times$ the longer side of the face box (the middle of the range), centred on the box: a square keeps the face's aspect ratio (§5 above). |
# | augmentation | "flipping, in-plane rotation [...], scaling (between 0.85 and 1.15) and colour jittering" (§2.3); what they do to $z$: silent | One similarity matrix per sample. $z$ scales with the crop, and a flip mirrors $x$ and re-indexes the points; otherwise a zoomed face would get a flattened depth (§6 above). |
# | disk radius | "The radius defining the “correct location” was empirically set to 7 pixels, for a face with a bounding box height equal to approximately 220 pixels." (§2.1) | $r = 7\,\text{px} \cdot h / 220\,\text{px}$, scaled with the face height $h$, on fa3d's stride-4 detection maps, and never below 1 map pixel: a thinner disk can be empty. The quick preset hits that floor (§7 above). |
# | Gaussian width | For the Z input: "a 2D Gaussian with std = 6 pixels" (§2.2). For the regression targets: silent (§2.1 gives only "a pixel wise L2 loss") | The same Gaussians for both, since the Z net's input is the regression net's output. σ = 6 px in the paper preset (384 px) and the medium one (128 px); 3 px at the quick preset's 64 px: with 1.5 px its regression stage learned slower than the detection maps it refines (measured). |
# | decoding | silent | The argmax, refined by a parabola through the log of three pixels per axis, exact for a Gaussian (§8 above). The paper and medium presets first blur the pixels around the argmax (σ/2, after DARK), which steadies it on a network's noisy maps; the quick preset decodes as its ready-made runs were measured. |
# | depth | $z$ "in pixels" (eq. 1, §2.2); its direction and origin: silent | Larger $z$ = closer to the camera, zero mean per face (a dataset's depth origin is arbitrary), in pixels of the crop (§4 above). |
# | interocular distance | "normalized by the inter-ocular distance, as in [4]" (§3, Metrics); which points: silent | The distance between the ground-truth outer eye corners 36 and 45, in 3D (§1 above; notebook 05 says why). |

# %% [markdown]
# ## Exercises
#
# 1. **How much to extend the box?** A face detector's box is not the tight landmark box. For 50 random
#    faces, jitter the box (move its centre by up to ±10 % of its width/height, shrink it by up to 10 %),
#    crop with `extend` = 0, 0.225 and 0.5, and count the landmarks that fall outside the crop. Which parts
#    go first? What does a large extension cost at a fixed crop size?
#    *Hint:* `face_crop_matrix(box, S, extend=e)` and `warp_landmarks` from `fa3d.data`; a point is inside
#    when both coordinates are in $[-0.5, S-0.5]$; compare the interocular distance in crop pixels.
# 2. **Forget the permutation.** Flip the yaw +30° face of §1 with $x \mapsto W-1-x$ only (no re-indexing)
#    and compare with the yaw −30° render. Which points are wrong and by how much (in % of the interocular
#    distance)? What would a network trained on half such images learn for point 36?
#    *Hint:* `fa3d.metrics.gte(pred, gt, axes="xy")` per point, or the norm of the difference divided by
#    `interocular_distance`.
# 3. **Decoding real maps.** Network outputs are not clean Gaussians. Add noise (`0.02`, `0.05`, `0.1` ×
#    `torch.randn`) or a small blur to the maps of §8 and measure the mean error of the sub-pixel decoder
#    and of the plain argmax, for σ = 1.5 and σ = 0.5 px. How much does the parabola still help?
#    *Hint:* reuse `decode_errors`' body; pass a `torch.Generator` to `torch.randn` for repeatable noise.
# 4. **Scale without z.** Write a "broken" augmentation that scales $x, y$ by $s$ but leaves $z$ alone
#    (start from a sample of `Augment3D` and divide its $z$ by $s$). Plot depth range / interocular
#    distance against $s$ for 50 samples. Why would this bias a Z regressor trained with eq. (1)?
#    *Hint:* `similarity_scale(sample["crop_matrix"])` gives $s$.

# %% [markdown]
# ## References
#
# - Bulat, A. & Tzimiropoulos, G. (2016). *Two-stage convolutional part heatmap regression for the 1st 3D face
#   alignment in the wild (3DFAW) challenge.* ECCV 2016 Workshops.
#   [arXiv:1609.09545](https://arxiv.org/abs/1609.09545),
#   [doi:10.1007/978-3-319-48881-3_43](https://doi.org/10.1007/978-3-319-48881-3_43). The crops (§2.3), the disk
#   radius and the Gaussian width (§2.1–2.2).
# - Jeni, L. A., Tulyakov, S., Yin, L., Sebe, N. & Cohn, J. F. (2016). *The first 3D face alignment in the wild
#   (3DFAW) challenge.* ECCV 2016 Workshops.
#   [doi:10.1007/978-3-319-48881-3_35](https://doi.org/10.1007/978-3-319-48881-3_35). The 66-point markup and
#   the file layout of §9.
# - Bulat, A. & Tzimiropoulos, G. (2016). *Human pose estimation via convolutional part heatmap regression.*
#   ECCV. [arXiv:1609.01743](https://arxiv.org/abs/1609.01743). Part detection with binary disks and heatmap
#   regression, which §2.1 follows.
# - Zhu, X., Lei, Z., Liu, X., Shi, H. & Li, S. Z. (2016). *Face alignment across large poses: a 3D solution*
#   (3DDFA, 300W-LP, AFLW2000-3D). CVPR. [arXiv:1511.07212](https://arxiv.org/abs/1511.07212). AFLW2000-3D and
#   300W-LP, read in §9.
