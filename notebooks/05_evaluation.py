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
# # 05 · Evaluation: GTE, CVGTCE, the paper's tables and error curves
#
# How good is the cascade of notebooks 02–04? The 3DFAW challenge answered with two numbers: the
# **ground-truth error** (GTE, paper eq. 2), a mean point error normalised by the interocular distance,
# and the **cross-view ground-truth consistency error** (CVGTCE, eq. 3–4), the same after the best
# similarity transform. This notebook builds both from their equations with plain torch on hand-made
# examples and checks them against `fa3d.metrics`; explains the Umeyama alignment behind CVGTCE (and why
# it must not mirror a face); then scores the trained quick cascade against a mean-shape baseline in the
# layout of the paper's Tables 2–3 and Fig. 3, looks at its failures and at how its error grows with the
# head's yaw, and writes a shareable report.
#
# **You will learn** to
#
# - compute GTE (eq. 2) and CVGTCE (eqs. 3–4) from their equations and check a library against them on
#   examples whose answer is known by hand;
# - derive the Umeyama similarity alignment, explain why it must exclude reflections, and say what
#   "cross-view" means and exactly what fa3d's per-image alignment assumes;
# - choose the interocular normaliser (3D, not 2D) and explain what the wrong one does to profile faces;
# - build the analogues of the paper's Tables 2–3 and Fig. 3 (cumulative error curves, their AUC) for a
#   cascade and a mean-shape baseline, on test faces that tuned nothing;
# - find failure cases and read the error against the head's yaw.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fa3d-course/fa3d/blob/main/notebooks/05_evaluation.ipynb)
#
# **Quick mode:** about 25 s on a 2-core CPU, on its own on a fresh machine: it scores the quick cascade of
# notebooks 02–04, which comes ready-made with fa3d (or is the one you trained there with `TRAIN = True`).

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
NUM_EVAL = 200            # test faces to score (the run's num_valid: 200); thousands for a real test set
PER_ROW = 4               # faces per row of the best / median / worst gallery
FAIL_THRESHOLD = 0.25     # an image "fails" when its GTE xyz exceeds this fraction of the IOD (0.10 for the paper preset)
AUC_LIMIT = 0.25          # the AUC's upper limit, the same for every method and axis set (fraction of the IOD)
OUT_DIR = "outputs/notebooks"

# %%
import dataclasses
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from IPython.display import Image, Markdown, display
from matplotlib.figure import Figure

from fa3d import metrics

from fa3d.course import report, viz
from fa3d.data import SyntheticFaces, get_scheme, render_face
from fa3d.data.splits import SYNTHETIC_TEST_SEED_OFFSET, SYNTHETIC_VALID_SEED_OFFSET
from fa3d.evaluate import format_table
from fa3d.runs import load_run
from fa3d.predict import predict_crops

os.makedirs(OUT_DIR, exist_ok=True)
REPORT_DIR = Path(OUT_DIR) / "05_report"
facts = {}                  # what this notebook computed; written to OUT_DIR/05_evaluation.json
t_start = time.perf_counter()

# %% [markdown]
# ## 1. GTE from its equation
#
# For one image with predicted points $X = \{x_n\}$ and ground truth $Y = \{y_n\}$, $n = 1..N$, the paper's
# eq. (2) is
#
# $$E(X, Y) = \frac{1}{N}\sum_{n=1}^{N} \frac{\lVert x_n - y_n \rVert_2}{d_i},$$
#
# the mean Euclidean point error divided by the interocular distance $d_i$ of image $i$, reported in percent
# and averaged over the test images. The paper's Table 3 and Fig. 3 also measure it on subsets of the
# axes: $(x, y)$, $(x, y, z)$, $x$, $y$ and $z$ alone. The paper does not say which $d_i$ those use; fa3d
# changes only the numerator and keeps the same $d_i$.
#
# **Which $d_i$?** The official 3DFAW evaluation code was never published. fa3d's documented convention is
# the **3D distance between the ground-truth outer eye corners** (points 36 and 45 in both schemes),
# whatever axes the error is measured on (§4 shows why 3D and not 2D).
#
# Eq. (2) in four lines of torch, for a batch of faces `(B, N, 3)`:

# %%
AXES = {"xyz": [0, 1, 2], "xy": [0, 1], "x": [0], "y": [1], "z": [2]}

def my_gte(X, Y, axes="xyz"):
    """Paper eq. (2) for (B, N, 3) predictions X and ground truth Y: (B,) fractions."""
    d_i = (Y[:, 36] - Y[:, 45]).norm(dim=-1)                       # 3D interocular distance, (B,)
    cols = AXES[axes]
    return (X[..., cols] - Y[..., cols]).norm(dim=-1).mean(-1) / d_i

# %% [markdown]
# A hand-made example whose answer we know without a computer: take three real faces (float64) and move
# **every** predicted point by the same $(3, 4, 0)$ px. Every point is then exactly 5 px off, so
# $E = 5/d_i$ on $(x, y, z)$ and on $(x, y)$, $3/d_i$ on $x$, $4/d_i$ on $y$ and $0$ on $z$.

# %%
faces = SyntheticFaces(3, image_size=256, seed=0)
Y = torch.stack([faces[i]["landmarks"] for i in range(3)]).double()          # (3, 66, 3) pixels
X = Y + torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)
d_i = (Y[:, 36] - Y[:, 45]).norm(dim=-1)
by_hand = {"xyz": 5 / d_i, "xy": 5 / d_i, "x": 3 / d_i, "y": 4 / d_i, "z": 0 * d_i}
print("interocular distances d_i (px):", [round(v, 2) for v in d_i.tolist()])
print(f"{'axes':5s} {'by hand (%)':>24s} {'my_gte (%)':>24s} {'fa3d.metrics.gte (%)':>24s}")
gte_diff = 0.0
for axes in AXES:
    mine, lib = my_gte(X, Y, axes), metrics.gte(X, Y, axes)
    gte_diff = max(gte_diff, float((mine - by_hand[axes]).abs().max()), float((mine - lib).abs().max()))
    fmt = lambda t: " ".join(f"{100 * v:7.4f}" for v in t.tolist())
    print(f"{axes:5s} {fmt(by_hand[axes]):>24s} {fmt(mine):>24s} {fmt(lib):>24s}")
print(f"largest difference between the three columns: {gte_diff:.1e}")
facts["gte_check_max_abs_diff"] = gte_diff

# %% [markdown]
# The same check on a less regular prediction: Gaussian noise of 2 px per coordinate on 3 faces.

# %%
gen = torch.Generator().manual_seed(0)
X_noisy = Y + 2.0 * torch.randn(Y.shape, generator=gen, dtype=torch.float64)
for axes in AXES:
    mine, lib = my_gte(X_noisy, Y, axes), metrics.gte(X_noisy, Y, axes)
    gte_diff = max(gte_diff, float((mine - lib).abs().max()))
    print(f"{axes:4s} my_gte {100 * mine.mean():.6f} %   fa3d.metrics.gte {100 * lib.mean():.6f} %")
print(f"max |difference| = {gte_diff:.1e}: the library computes eq. (2) exactly as written")
facts["gte_check_max_abs_diff"] = gte_diff

# %% [markdown]
# ## 2. CVGTCE and the Umeyama alignment
#
# GTE punishes a prediction that has the right *shape* but the wrong pose, position or size. 3DFAW's
# second metric forgives exactly those: it first finds the similarity transform (scale $s$, rotation $R$,
# translation $t$) that best maps the prediction onto the ground truth, eq. (4),
#
# $$\{s, R, t\} = \arg\min_{s, R, t} \sum_{n=1}^{N} \lVert y_n - (sRx_n + t) \rVert_2^2,$$
#
# and then measures GTE after it, eq. (3):
#
# $$E_{vc}(X, Y, T) = \frac{1}{N}\sum_{n=1}^{N} \frac{\lVert sRx_n + t - y_n \rVert_2}{d_i}.$$
#
# (The paper's eq. (3) prints $sRx_n$ without the $+t$; a translation is part of $T$ and of eq. (4), so it
# belongs there.) Eq. (4) has a closed form (Umeyama 1991). With centroids $\mu_x, \mu_y$, the spread
# $\sigma_x^2 = \frac1N\sum_n \lVert x_n - \mu_x\rVert^2$ and the cross-covariance
# $\Sigma_{xy} = \frac1N\sum_n (y_n - \mu_y)(x_n - \mu_x)^\top = U D V^\top$ (an SVD):
#
# $$S = \mathrm{diag}\big(1, 1, \det U \det V\big), \qquad R = U S V^\top, \qquad
#   s = \frac{\mathrm{tr}(DS)}{\sigma_x^2}, \qquad t = \mu_y - sR\mu_x.$$
#
# $S$ is the one subtle part. Without it, $UV^\top$ is the best *orthogonal* matrix, which may have
# determinant $-1$: a **reflection**. A mirrored face is a different face (its left and right, or its
# front and back, are swapped), so a rotation must have $\det R = +1$; $S$ flips the axis of the smallest
# singular value when needed, which gives the best proper rotation.

# %%
def umeyama(X, Y, allow_reflection=False):
    """s, R, t minimising sum_n ||Y_n - (s R X_n + t)||^2, eq. (4), for one face: X, Y (N, 3)."""
    mu_x, mu_y = X.mean(0), Y.mean(0)
    Xc, Yc = X - mu_x, Y - mu_y
    var_x = Xc.square().sum(1).mean()                                # sigma_x^2
    U, D, Vh = torch.linalg.svd(Yc.T @ Xc / len(X))                  # Sigma_xy = U diag(D) V^T
    S = torch.ones(3, dtype=X.dtype)
    if not allow_reflection:
        S[-1] = torch.sign(torch.linalg.det(U) * torch.linalg.det(Vh))
    R = U @ torch.diag(S) @ Vh
    s = (D * S).sum() / var_x
    t = mu_y - s * R @ mu_x
    return s, R, t

def my_cvgtce(X, Y, allow_reflection=False):
    """Paper eq. (3) after eq. (4), for (B, N, 3) X and Y: (B,) fractions."""
    aligned = []
    for x, y in zip(X, Y):
        s, R, t = umeyama(x, y, allow_reflection)
        aligned.append(s * x @ R.T + t)
    return my_gte(torch.stack(aligned), Y)

# %% [markdown]
# **Example: the right shape in the wrong pose.** Turn the ground truth of face 0 by 20° about a tilted
# axis, scale it by 0.8, move it by (15, −10, 5) px and add 1 px of noise. GTE sees a bad prediction;
# CVGTCE sees a good shape, and Umeyama recovers the inverse transform.

# %%
def rotation(axis, degrees):
    """Rodrigues: the rotation matrix (3, 3) of `degrees` about `axis`."""
    k = torch.as_tensor(axis, dtype=torch.float64)
    k = k / k.norm()
    K = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=torch.float64)
    a = torch.deg2rad(torch.tensor(float(degrees), dtype=torch.float64))
    return torch.eye(3, dtype=torch.float64) + torch.sin(a) * K + (1 - torch.cos(a)) * K @ K

R_true, s_true, t_true = rotation([0.3, 1.0, 0.2], 20), 0.8, torch.tensor([15.0, -10.0, 5.0], dtype=torch.float64)
y0 = Y[0]
x0 = s_true * (y0 - y0.mean(0)) @ R_true.T + y0.mean(0) + t_true + torch.randn(y0.shape, generator=gen, dtype=torch.float64)
s, R, t = umeyama(x0, y0)
aligned_lib, s_lib, R_lib, t_lib = metrics.similarity_align(x0, y0)
print(f"GTE    {100 * float(my_gte(x0[None], y0[None])):6.2f} %   (the pose is wrong)")
print(f"CVGTCE {100 * float(my_cvgtce(x0[None], y0[None])):6.2f} %   (the shape is right up to 1 px noise)")
print(f"recovered scale {float(s):.4f} (1/0.8 = {1 / s_true:.4f}); rotation angle "
      f"{float(torch.rad2deg(torch.arccos((torch.trace(R) - 1) / 2))):.2f}° (true 20°); det R = {float(torch.linalg.det(R)):+.3f}")
cv_diff = max(float((s - s_lib).abs()), float((R - R_lib).abs().max()), float((t - t_lib).abs().max()),
              float((s * x0 @ R.T + t - aligned_lib).abs().max()))
print(f"vs fa3d.metrics.similarity_align: max |difference| in s, R, t and the aligned points = {cv_diff:.1e}")

# %%
mine, lib = my_cvgtce(X_noisy, Y), metrics.cvgtce(X_noisy, Y)
cv_diff = max(cv_diff, float((mine - lib).abs().max()))
print(f"noisy example of §1: my_cvgtce {100 * mine.mean():.6f} %   fa3d.metrics.cvgtce {100 * lib.mean():.6f} %"
      f"   (GTE {100 * my_gte(X_noisy, Y).mean():.6f} %)")
print(f"max |difference| over both examples = {cv_diff:.1e}")
facts["cvgtce_check_max_abs_diff"] = cv_diff
facts["pose_example"] = {"gte": 100 * float(my_gte(x0[None], y0[None])), "cvgtce": 100 * float(my_cvgtce(x0[None], y0[None]))}

# %% [markdown]
# Why is CVGTCE (almost) never above GTE? The identity ($s = 1$, $R = I$, $t = 0$) is one candidate of
# eq. (4), so the alignment can only lower the *squared* point error. GTE averages unsquared distances, so
# it may in rare cases rise a little; on real predictions CVGTCE is clearly lower (Table 2: 3.48 vs 4.56 %).

# %% [markdown]
# ### What "cross-view" means, and what fa3d computes
#
# Many 3DFAW subjects appear in several images, seen from different viewpoints. CVGTCE "evaluates the
# cross-view consistency of the predicted landmarks of the same subject" (paper, §3): the views of one head
# show the same 3D shape in different poses, at different scales and positions in the image, so what can
# be *consistent* across them is the shape, not the coordinates. Eq. (4) removes exactly those differences,
# a similarity (scale, rotation, translation), before eq. (3) measures what is left; after it, the errors of
# the different views of a subject are all errors of one shape, and can be compared and averaged.
#
# As the paper writes them, eqs. (3)–(4) involve one prediction $X$ and one ground truth $Y$: the
# transform $T = \{s, R, t\}$ is fitted over the $N$ landmarks of that pair. `fa3d.metrics.cvgtce` (its
# source follows this section's last exercise) computes exactly that, **one similarity per image**: for
# image $i$, $(s_i, R_i, t_i)$ by Umeyama from $X_i$ onto $Y_i$ with $\det R_i = +1$, then eq. (2) in
# $x, y, z$ on the aligned points with that image's $d_i$, averaged over the images. It never uses which
# images show the same subject.
#
# The assumption is that the challenge, too, solved eq. (4) once per image. With one view per subject there
# is nothing else to do, so the two definitions coincide; with several views they coincide as long as each
# view is aligned on its own. The official evaluation code was never published, so a variant that ties the views of a
# subject together (one transform per subject, after registering its views) cannot be ruled out; a
# per-image fit has more freedom than any shared one, so its least-squares residual could only be lower or
# equal, and fa3d's CVGTCE would then be on the optimistic side. On our synthetic test faces the question
# does not arise: every face is a new random head rendered once, one view per subject.

# %% [markdown]
# ### Why reflections are excluded: a face with its depth flipped
#
# Monocular depth has a famous ambiguity: from the front, a face and its **depth-inverted** copy
# ($z \mapsto -z$, the hollow-mask illusion) look the same. A Z regressor with a sign error makes exactly
# this prediction: perfect $x, y$, every depth on the wrong side (below: face 1, turned to 15° yaw, mirrored
# in depth). It is a mirror image (a reflection through the image plane), so an alignment that allows
# reflections "fixes" it completely:

# %%
face = render_face(dataclasses.replace(faces.params(1), yaw=15.0, pitch=0.0, roll=0.0), 256)["landmarks"].double()
flipped = face * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)      # depth inverted
ref = {
    "gte_xy": 100 * float(my_gte(flipped[None], face[None], "xy")),
    "gte_z": 100 * float(my_gte(flipped[None], face[None], "z")),
    "gte_xyz": 100 * float(my_gte(flipped[None], face[None])),
    "cvgtce": 100 * float(metrics.cvgtce(flipped, face)),
    "cvgtce_if_reflections_allowed": 100 * float(my_cvgtce(flipped[None], face[None], allow_reflection=True)),
}
for key, value in ref.items():
    print(f"{key:32s} {value:7.3f} %")
facts["reflection_example"] = ref

# %%
s_r, R_r, t_r = umeyama(flipped, face, allow_reflection=True)
s_p, R_p, t_p = umeyama(flipped, face)
views = {"ground truth": face, "depth-flipped\nprediction": flipped,
         f"aligned, reflections allowed\n(det R = {float(torch.linalg.det(R_r)):+.0f})": s_r * flipped @ R_r.T + t_r,
         f"aligned, rotations only\n(det R = {float(torch.linalg.det(R_p)):+.0f})": s_p * flipped @ R_p.T + t_p}
fig = Figure(figsize=(12, 3.3), layout="constrained")
axes = fig.subplots(1, 4, sharey=True)
for ax, (name, pts) in zip(axes, views.items()):
    ax.scatter(face[:, 0], face[:, 2], s=8, c=viz.GT_COLOUR, label="truth")
    if name != "ground truth":
        ax.scatter(pts[:, 0], pts[:, 2], s=8, c=viz.PRED_COLOUR, label="prediction")
    ax.scatter(pts[30, 0], pts[30, 2], s=40, marker="*", c="black", label="nose tip (30)")
    ax.set_title(name, fontsize=9)
    ax.set(xlabel="x (px)", aspect="equal")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("z (px, toward the camera)")
axes[0].legend(fontsize=7)
fig.suptitle("seen from above: x across, depth up (the nose tip should point toward the camera)", fontsize=9)
fig

# %% [markdown]
# With reflections allowed the inside-out face scores a perfect 0 %; with proper rotations only, the best
# the alignment can do leaves a large error. Excluding reflections is what makes CVGTCE measure the
# *shape*, chirality included.

# %% [markdown]
# ### Your turn: the alignment for a batch, in 2D or 3D
#
# `umeyama` above aligns one 3D face in a Python loop. Write the batched version, the one
# `metrics.similarity_align` computes: `similarity_align_exercise(src, dst)` takes `(B, N, D)` tensors with
# $D$ = 2 or 3 and returns `src` aligned onto `dst`, $sRx_n + t$ for every point, `(B, N, D)`, with the
# $s, R, t$ of eq. (4) and **no reflection** ($S = \mathrm{diag}(1, \dots, 1, \det U \det V)$). `torch.linalg.svd`
# and `torch.linalg.det` work on batches of matrices (`@` too), and `torch.diag_embed` makes a batch of
# diagonal matrices. The check compares with `similarity_align` on 3D and 2D faces and on depth-flipped faces,
# whose best orthogonal fit is a reflection.

# %% nbgrader={"grade": false, "grade_id": "similarity_align", "locked": false, "schema_version": 3, "solution": true, "task": false}
def similarity_align_exercise(src, dst):
    """src (B, N, D) aligned onto dst by the least-squares similarity without reflections, (B, N, D)."""
    ### BEGIN SOLUTION
    n = src.shape[1]
    mu_s, mu_d = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    xs, xd = src - mu_s, dst - mu_d
    var_s = xs.square().sum((1, 2)) / n                             # sigma_x^2, (B,)
    U, D, Vh = torch.linalg.svd(xd.transpose(1, 2) @ xs / n)        # Sigma_xy = U diag(D) V^T, (B, D, D)
    S = torch.ones_like(D)
    S[:, -1] = torch.sign(torch.linalg.det(U) * torch.linalg.det(Vh))
    R = U @ torch.diag_embed(S) @ Vh
    s = (D * S).sum(-1) / var_s
    t = mu_d[:, 0] - s[:, None] * (R @ mu_s[:, 0, :, None])[..., 0]
    return s[:, None, None] * src @ R.transpose(1, 2) + t[:, None]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "similarity_align_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from fa3d.course import exercises    # the checks of the course's code exercises
facts["exercise_similarity_align_max_diff"] = exercises.check_similarity_align(similarity_align_exercise)

# %% [markdown]
# ### Your turn: CVGTCE for a test set
#
# Now eq. (3) for a batch, as a test set needs it: `cvgtce_exercise(pred, gt)` takes `(B, N, 3)` predictions
# and ground truths (pixels) and returns the `(B,)` CVGTCE fractions: align each prediction onto its ground
# truth (use the library's `metrics.similarity_align(pred, gt)[0]`), then the mean point distance divided by
# the **3D** distance between the ground truth's outer eye corners 36 and 45. A face with any non-finite
# coordinate (a 2D-only ground truth has NaN $z$) gets NaN, and must not spoil the others: set it aside
# before aligning. The check compares with `metrics.cvgtce`.

# %% nbgrader={"grade": false, "grade_id": "cvgtce", "locked": false, "schema_version": 3, "solution": true, "task": false}
def cvgtce_exercise(pred, gt):
    """Eq. (3) after eq. (4) for (B, N, 3) pred and gt: (B,) fractions, NaN for faces with a NaN."""
    ### BEGIN SOLUTION
    ok = torch.isfinite(pred).all(-1).all(-1) & torch.isfinite(gt).all(-1).all(-1)    # (B,)
    out = torch.full(ok.shape, float("nan"), dtype=gt.dtype)
    if ok.any():
        p, y = pred[ok], gt[ok]
        aligned = metrics.similarity_align(p, y)[0]
        d_i = (y[:, 36] - y[:, 45]).norm(dim=-1)                     # 3D interocular distance
        out[ok] = (aligned - y).norm(dim=-1).mean(-1) / d_i
    return out
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "cvgtce_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from fa3d.course import exercises
facts["exercise_cvgtce_max_diff"] = exercises.check_cvgtce(cvgtce_exercise)

# %% [markdown]
# Compare your answer with `fa3d.metrics.cvgtce`: it sets a face with a NaN aside by aligning zeros in its
# place (a similarity of scale 0), then gives that face NaN:

# %%
course.show_source(metrics.cvgtce)

# %% [markdown]
# ## 3. The model and its test faces
#
# The quick cascade trained in notebooks 02–04 (`course.ensure_run("z", OUT_DIR)` reuses it; run on its own,
# this notebook installs the ready-made run of the same settings, or trains it with `TRAIN = True`). Its test faces are
# synthetic faces from a seed of their own (the run's seed + `SYNTHETIC_TEST_SEED_OFFSET`, printed below),
# used neither for training nor for the per-epoch validation faces that tuned the quick schedule (seed +
# `SYNTHETIC_VALID_SEED_OFFSET`), cropped around their box as at test time.
#
# Four "methods" on the same faces. This comparison of stages is fa3d's own: the paper reports only its full
# system (Table 2 beside the second-best entry, Table 3 by axes), and fa3d adds the rows that show what each
# stage brings:
#
# | row | $x, y$ from | $z$ from |
# |---|---|---|
# | **detection only** | the detection subnet's maps (§2.1, first half) | the mean training face (no Z net) |
# | **2D cascade + mean depth** | the regression subnet (§2.1) | the mean training face (no Z net) |
# | **full cascade** | the regression subnet | the Z regressor (§2.2) |
# | **mean-shape baseline** | the mean training face | the mean training face |
#
# `predict_crops(cascade, images, stage)` gives the cascade trained up to `stage`: with `"detection"` the
# points are decoded from the detection maps and $z$ is 0 (no Z net yet), with `"regression"` from the
# hourglass, with `"z"` from the hourglass and the Z net. Both 2D rows take their depth from the mean
# shape, stored in the checkpoint in crop pixels, so that they differ from each other in $x, y$ only.

# %%
run_dir = course.ensure_run("z", OUT_DIR)
cascade, ckpt = load_run(run_dir, device)
scheme = get_scheme(ckpt["scheme"])
mean_shape = ckpt["mean_shape"]                                   # (N, 3) crop pixels
crops = course.test_crops(run_dir, NUM_EVAL)
gt, yaw = crops["landmarks"], crops["yaw"]
print(f"run: {run_dir} (stages {ckpt['config']['stages']}, preset {ckpt['preset']['name']}, "
      f"{ckpt['preset']['image_size']} px crops, scheme {scheme.name})")
print(f"test faces: {tuple(crops['image'].shape)} uint8 crops, |yaw| from {yaw.abs().min():.0f}° to {yaw.abs().max():.0f}°")
run_seed = ckpt["config"]["seed"]
print(f"seeds: training faces {run_seed}, validation faces {run_seed + SYNTHETIC_VALID_SEED_OFFSET}, "
      f"test faces (these) {run_seed + SYNTHETIC_TEST_SEED_OFFSET}")
facts["test_faces_seed"] = run_seed + SYNTHETIC_TEST_SEED_OFFSET

t0 = time.perf_counter()
with torch.no_grad():
    preds = {
        "detection only": predict_crops(cascade, crops["image"], "detection"),
        "full cascade": predict_crops(cascade, crops["image"], "z"),
    }
    same = torch.equal(predict_crops(cascade, crops["image"][:16], "regression")[..., :2],
                       preds["full cascade"][:16, :, :2])
mean_depth = mean_shape[:, 2:].expand(len(gt), -1, -1)
preds["detection only"] = torch.cat([preds["detection only"][..., :2], mean_depth], -1)
preds["2D cascade + mean depth"] = torch.cat([preds["full cascade"][..., :2], mean_shape[:, 2:].expand(len(gt), -1, -1)], -1)
preds["mean-shape baseline"] = mean_shape.expand_as(gt).clone()
preds = {k: preds[k] for k in ("detection only", "2D cascade + mean depth", "full cascade", "mean-shape baseline")}
print(f"predicted {len(gt)} faces × 2 stages in {time.perf_counter() - t0:.1f} s; "
      f"stage 'regression' gives the same x, y as 'z' (16 faces checked): {same}")

# %% [markdown]
# ## 4. The interocular distance: why 3D
#
# The normaliser makes errors comparable across face sizes. It should not depend on the head's pose. The
# **2D** distance between the eye corners does: it shrinks like $\cos(\text{yaw})$ as the head turns,
# and vanishes in profile, where a 2D-normalised error explodes. The **3D** distance is a property of
# the face alone (in pixels of the crop). On the test faces:

# %%
d3 = metrics.interocular_distance(gt, scheme, axes="xyz")
d2 = metrics.interocular_distance(gt, scheme, axes="xy")
e3 = metrics.gte(preds["full cascade"], gt, "xyz")                # normalised by the 3D distance
e2 = e3 * d3 / d2                                                 # the same errors over the 2D distance
ya = yaw.abs().numpy()
fig = Figure(figsize=(10, 3.2), layout="constrained")
ax1, ax2 = fig.subplots(1, 2)
ax1.scatter(ya, (d2 / d3).numpy(), s=8, label="2D / 3D interocular distance")
grid = np.linspace(0, 90, 91)
ax1.plot(grid, np.cos(np.radians(grid)), "k--", lw=1, label="cos(yaw)")
ax1.set(xlabel="|yaw| (degrees)", ylabel="ratio", title="the 2D distance shrinks with yaw")
ax2.scatter(ya, 100 * e2.numpy(), s=8, c="#D55E00", label="normalised by the 2D distance")
ax2.scatter(ya, 100 * e3.numpy(), s=8, c="#0072B2", label="normalised by the 3D distance (ours)")
ax2.set(xlabel="|yaw| (degrees)", ylabel="GTE xyz (%)", yscale="log", title="same predictions, two normalisers")
for ax in (ax1, ax2):
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
fig

# %%
profile = ya > 60
print(f"2D/3D ratio: median {float((d2 / d3).median()):.2f}; below 0.5 on {int((d2 / d3 < 0.5).sum())} of {len(gt)} faces")
print(f"faces with |yaw| > 60°: GTE {100 * e3[profile].mean():.2f} % with the 3D normaliser, "
      f"{100 * e2[profile].mean():.2f} % with the 2D one")
facts["interocular_2d_over_3d_median"] = float((d2 / d3).median())
facts["profile_gte_2d_normaliser"] = 100 * float(e2[profile].mean())
facts["profile_gte_3d_normaliser"] = 100 * float(e3[profile].mean())

# %% [markdown]
# A different 2D convention (the AFLW2000-3D protocol, `metrics.nme_bbox`) normalises by
# $\sqrt{w\,h}$ of the landmarks' box instead: stable under yaw, but not comparable with 3DFAW numbers.
# Whichever convention, a number is only comparable with numbers computed the same way; that is why the
# tables below label the paper's numbers as *theirs*.

# %% [markdown]
# ## 5. Tables 2 and 3, our analogues
#
# The paper's Table 2 gives GTE and CVGTCE on the 3DFAW test set; Table 3 gives GTE by axes on the 3DFAW
# validation set. Here are ours, on synthetic test faces: every number computed once by `fa3d.metrics.score`
# (as `fa3d evaluate` does) and laid out by `fa3d.course.report`, with the paper's 3DFAW numbers beside them
# **for reference only**: different data (real photos vs synthetic faces), different networks (the paper
# preset vs the quick one) and an unpublished interocular convention, so no row here is a reproduction of
# theirs. Notebook 07 trains the paper preset.

# %%
scores = {name: metrics.score(preds[name].double(), gt.double(), yaw)      # the model first, then the others
          for name in ("full cascade", "mean-shape baseline", "detection only", "2D cascade + mean depth")}
numbers = report.report_numbers(scores)

def md_table(t):
    """One of report.tables(...) as a Markdown table."""
    lines = ["| " + " | ".join(t["header"]) + " |", "|" + "---|" * len(t["header"])]
    lines += ["| " + " | ".join(row) + " |" for row in t["rows"]]
    return f"**{t['title']}**\n\n" + "\n".join(lines) + f"\n\n*{t['note']}*"

table2, table3, *yaw_tables = report.tables(numbers)
display(Markdown(md_table(table2)))
display(Markdown(md_table(table3)))

# %% [markdown]
# The same numbers as `fa3d evaluate` prints them (`format_table`), and checked against `my_gte` /
# `my_cvgtce` of §1–2:

# %%
runs = numbers["runs"]
print(format_table(runs))
mine = {"gte_xyz": 100 * float(my_gte(preds["full cascade"].double(), gt.double()).mean()),
        "cvgtce": 100 * float(my_cvgtce(preds["full cascade"].double(), gt.double()).mean())}
print(f"\nfull cascade by our own eq. (2)–(4): GTE xyz {mine['gte_xyz']:.4f} %, CVGTCE {mine['cvgtce']:.4f} %  "
      f"(fa3d.metrics: {runs['full cascade']['gte_xyz']:.4f} %, {runs['full cascade']['cvgtce']:.4f} %)")
model, base = runs["full cascade"], runs["mean-shape baseline"]
print(f"the full cascade's GTE xyz is {model['gte_xyz'] / base['gte_xyz']:.2f}× the mean-shape baseline's")
facts.update(model_gte=model["gte_xyz"], baseline_gte=base["gte_xyz"], cvgtce=model["cvgtce"],
             baseline_cvgtce=base["cvgtce"], num_images=model["num_images"],
             model=model, baseline=base, detection_only=runs["detection only"],
             mean_depth=runs["2D cascade + mean depth"],
             own_equations={"gte_xyz": mine["gte_xyz"], "cvgtce": mine["cvgtce"]},
             paper_3dfaw_reference={"test": report.PAPER_3DFAW["test"], "valid": report.PAPER_3DFAW["valid"]})

# %% [markdown]
# What do the tables say? Four comparisons, each computed from the numbers above:

# %%
det, mean_z = runs["detection only"], runs["2D cascade + mean depth"]
wins = [a for a in viz.ERROR_AXES if model[f"gte_{a}"] < base[f"gte_{a}"]]
print(f"1. cascade vs mean shape: lower GTE on {len(wins)} of 5 axis sets ({', '.join(wins)}); "
      f"GTE xyz {model['gte_xyz']:.2f} vs {base['gte_xyz']:.2f} %")
print(f"2. regression vs detection only, GTE xy: {model['gte_xy']:.2f} vs {det['gte_xy']:.2f} % "
      f"({100 * (1 - model['gte_xy'] / det['gte_xy']):.0f} % lower)")
print(f"3. Z net vs the mean face's depth, GTE z: {model['gte_z']:.2f} vs {mean_z['gte_z']:.2f} %")
print(f"4. CVGTCE: cascade {model['cvgtce']:.2f} %, mean shape {base['cvgtce']:.2f} % "
      f"(GTE → CVGTCE: cascade −{model['gte_xyz'] - model['cvgtce']:.1f} points, mean shape −{base['gte_xyz'] - base['cvgtce']:.1f})")
facts["cascade_wins_axes"] = wins

# %% [markdown]
# 1. The cascade looks at the image: it is below the mean shape on the axes that the pose moves ($x$, $z$)
#    and on the combined sets.
#    On $y$ alone the mean shape does better than on its other axes, though still worse than the cascade
#    (the table above): every crop is centred on its face box, so the rows of the eyes, nose and mouth barely
#    move; only the yaw moves points sideways ($x$) and in depth ($z$).
# 2. The regression subnet refines the detection maps' points: the paper's reason for the second half of §2.1
#    (notebook 03 trains it).
# 3. The Z regressor beats the mean face's depth: the synthetic heads turn up to ±90°, and a turned head's
#    depths are nothing like a frontal mean face's (notebook 06 shows the geometry).
# 4. CVGTCE forgives pose and scale, which is most of what the **mean shape** gets wrong: after the alignment
#    it is a plausible face, so its CVGTCE drops far more than its GTE and can come close to (or below) a weak
#    model's. CVGTCE alone cannot tell a model that reads the image from one that outputs an average face;
#    that is why the paper reports GTE too.

# %% [markdown]
# ## 6. Fig. 3: cumulative error curves
#
# The paper's Fig. 3 plots, for each axis set, the fraction of test images whose GTE is below a threshold
# $e$: the **cumulative error distribution** $\mathrm{CED}(e) = \frac{1}{V}\sum_i [E_i \le e]$. One number
# summarises a curve: the **area under it** up to a limit $e_{\max}$, divided by $e_{\max}$
# (1 = every image perfect, 0 = every image beyond the limit). Since the CED is a step function, the area
# has a closed form, which `fa3d.metrics.auc` uses:
#
# $$\mathrm{AUC}_{e_{\max}} = \frac{1}{e_{\max}}\int_0^{e_{\max}} \mathrm{CED}(e)\,de
#   = \frac{1}{V}\sum_{i=1}^{V} \frac{\max(0,\; e_{\max} - E_i)}{e_{\max}}.$$
#
# The limit is fixed before looking at any model: `AUC_LIMIT` = 25 % of the interocular distance, the failure
# threshold above, for every method and every axis set (our choice; the paper's Fig. 3 gives no AUC, and 300-W's
# table uses 8 % of its 2D eye distance). A limit set from a model's own errors, e.g. twice its mean, would
# give that model an AUC near 0.5 by construction and make AUCs of different runs incomparable.

# %%
errors = {name: {k: e.numpy() for k, e in scores[name]["errors"].items()} for name in preds}  # per face, fractions
limits = {a: AUC_LIMIT for a in viz.ERROR_AXES}
fig = viz.ced_figure(errors, max_error=limits, title="GTE vs fraction of test images (the paper's Fig. 3, our data)")
fig

# %%
auc_table = {name: {a: metrics.auc(e[a], limits[a]) for a in viz.ERROR_AXES} for name, e in errors.items()}
e_xyz = errors["full cascade"]["xyz"]
t = torch.linspace(0, limits["xyz"], 2001, dtype=torch.float64)
trapz = float(torch.trapezoid(metrics.ced(e_xyz, t), t) / limits["xyz"])
print(f"{'AUC':26s}" + "".join(f"{a + ' [0,' + format(100 * limits[a], 'g') + '%]':>16s}" for a in viz.ERROR_AXES))
for name, row in auc_table.items():
    print(f"{name:26s}" + "".join(f"{row[a]:>16.3f}" for a in viz.ERROR_AXES))
print(f"\nclosed form vs a trapezoid over 2,001 thresholds (xyz, full cascade): {auc_table['full cascade']['xyz']:.5f} vs {trapz:.5f}")
fail = {name: metrics.failure_rate(e["xyz"], FAIL_THRESHOLD) for name, e in errors.items()}
print(f"failure rate (GTE xyz > {100 * FAIL_THRESHOLD:g} %): " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in fail.items()))
facts.update(auc_limits=limits, auc=auc_table, auc_xyz=auc_table["full cascade"]["xyz"],
             baseline_auc_xyz=auc_table["mean-shape baseline"]["xyz"],
             failure_threshold=FAIL_THRESHOLD, failure_rate=fail["full cascade"],
             baseline_failure_rate=fail["mean-shape baseline"])

# %% [markdown]
# ### Your turn: the area under the curve
#
# Write the closed form above. `auc_exercise(errors, max_error)` takes the `(V,)` per-image errors (fractions,
# a tensor) and the limit $e_{\max}$, and returns a float in $[0, 1]$. An image beyond the limit adds nothing
# (not a negative area). The check compares with `metrics.auc`, including errors of exactly 0, exactly
# $e_{\max}$ and beyond it.

# %% nbgrader={"grade": false, "grade_id": "auc", "locked": false, "schema_version": 3, "solution": true, "task": false}
def auc_exercise(errors, max_error):
    """Area under the CED curve on [0, max_error] / max_error, from (V,) errors: a float."""
    ### BEGIN SOLUTION
    e = torch.as_tensor(errors, dtype=torch.float64)
    return float((max_error - e).clamp(min=0).mean() / max_error)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "auc_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from fa3d.course import exercises
facts["exercise_auc_max_diff"] = exercises.check_auc(auc_exercise)

# %% [markdown]
# ## 7. Failure cases
#
# Averages hide the faces a system gets wrong. The paper's Fig. 4 shows successes; here are the best,
# the median and the **worst** test faces by GTE $xyz$ (magenta: ours, green: truth, red: the error of each
# point in the image plane; the depth error is in the title's number, not visible here).

# %%
def as_jpeg(fig):
    """Photos compress ~10x better as JPEG than as PNG: keeps the executed notebook small."""
    buf = io.BytesIO()
    fig.savefig(buf, format="jpeg", dpi=110, pil_kwargs={"quality": 85})
    return Image(buf.getvalue())

as_jpeg(viz.prediction_gallery(crops["image"], preds["full cascade"], gt, scheme, errors=e_xyz, per_row=PER_ROW,
                               title="best / median / worst test faces by GTE xyz"))

# %% [markdown]
# What do the worst faces have in common? Their pose, and which axis and which face part carry the error:

# %%
order = np.argsort(e_xyz)
worst = order[-max(PER_ROW, 10):][::-1]
print(f"the {len(worst)} worst faces: |yaw| " + ", ".join(f"{ya[i]:.0f}°" for i in worst))
print(f"median |yaw|: worst {np.median(ya[worst]):.0f}°, all faces {np.median(ya):.0f}°")
err_pt = ((preds["full cascade"] - gt).norm(dim=-1) / metrics.interocular_distance(gt, scheme)[:, None]).numpy()
err_z = ((preds["full cascade"][..., 2] - gt[..., 2]).abs() / metrics.interocular_distance(gt, scheme)[:, None]).numpy()
groups = ["jaw", "brows", "nose", "eyes", "lips"]
idx = {g: [i for i in range(scheme.num_points) if scheme.group_of(i) == g] for g in groups}
fig = Figure(figsize=(10, 3), layout="constrained")
ax1, ax2 = fig.subplots(1, 2)
w = 0.38
for k, (sel, name) in enumerate(((order[: len(order) // 2], "better half"), (worst, f"{len(worst)} worst"))):
    ax1.bar(np.arange(5) + (k - 0.5) * w, [100 * err_pt[sel][:, idx[g]].mean() for g in groups], w, label=name)
    ax2.bar(np.arange(5) + (k - 0.5) * w, [100 * err_z[sel][:, idx[g]].mean() for g in groups], w, label=name)
for ax, title in ((ax1, "3D point error by face part"), (ax2, "|z| error by face part")):
    ax.set_xticks(range(5), groups)
    ax.set(ylabel="% of interocular distance", title=title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7)
fig

# %%
share_z = float((errors["full cascade"]["z"][worst] / errors["full cascade"]["xyz"][worst]).mean())
facts.update(worst_median_abs_yaw=float(np.median(ya[worst])), all_median_abs_yaw=float(np.median(ya)),
             worst_gte=[100 * float(e_xyz[i]) for i in worst[:PER_ROW]])
print(f"on the worst faces the z-only GTE is {100 * share_z:.0f} % of the xyz GTE (on average)")

# %% [markdown]
# ## 8. Error against yaw
#
# The synthetic heads turn uniformly over ±90°, so we can ask how the error grows with the pose. The
# AFLW2000-3D protocol's bins, $|{\rm yaw}| \in [0, 30], (30, 60], (60, 90]$ degrees, with each bin's mean
# (the step) and the "balanced" mean of the three:

# %%
viz.error_vs_yaw({name: scores[name] for name in ("full cascade", "mean-shape baseline")}, yaw,
                 title="GTE xyz against |yaw| (each point is a test face)")

# %%
display(Markdown(md_table(yaw_tables[0])))
bins = numbers["yaw"]["full cascade"]["gte_xyz"]
facts["yaw_bins_gte_xyz"] = {"bins": bins["bins"], "means": bins["means"], "counts": bins["counts"],
                             "balanced": bins["balanced"]}

# %% [markdown]
# ## 9. The report
#
# `fa3d.course.report.write_report` writes all of this into one folder a student can share: the tables as
# Markdown and HTML (paper numbers marked as references), the numbers as JSON, the CED curves, the
# gallery, the error-vs-yaw plot and one test face in interactive 3D. `fa3d evaluate RUN_DIR` writes the
# same report next to a run's `metrics.json`.

# %%
paths = report.write_report(REPORT_DIR, scores, pred=preds["full cascade"], gt=gt, scheme=scheme,
                            images=crops["image"], yaw=yaw, title="fa3d quick cascade on synthetic test faces")
for kind, path in paths.items():
    print(f"{kind:9s} {path}  ({path.stat().st_size / 1024:.0f} KB)")
saved = json.loads(paths["json"].read_text())
assert abs(saved["runs"]["full cascade"]["gte_xyz"] - model["gte_xyz"]) < 1e-9
facts["report_files"] = sorted(p.name for p in paths.values())

# %%
facts["seconds"] = round(time.perf_counter() - t_start, 1)
course.save_facts(facts, OUT_DIR, "05_evaluation", shown=("model_gte", "baseline_gte", "cvgtce", "baseline_cvgtce",
                                                          "auc_xyz", "failure_rate", "num_images", "seconds"))

# %% [markdown]
# ## Summary
#
# - GTE (eq. 2) and CVGTCE (eqs. 3–4) were written from their equations in a few lines of torch and agree
#   with `fa3d.metrics` to float rounding (the differences printed in §1–2); CVGTCE aligns each prediction
#   onto its ground truth with a proper similarity (no reflection), one per image.
# - The 3D interocular distance keeps profile faces comparable; the 2D one inflates their error (both printed
#   in §4).
# - On the synthetic test faces (never trained on, not the validation faces that tuned the quick schedule),
#   the quick cascade is scored against the mean shape and the 2D-only rows in the layout of Tables 2–3 and
#   Fig. 3: GTE, CVGTCE, AUC and failure rates are printed in §5–6. The paper's 3DFAW numbers sit beside
#   them for reference only.
# - The worst faces and the yaw bins (§7–8) show where the error comes from; §9 wrote it all into a report.
# - Next: notebook 06 looks at the same predictions in 3D; notebook 08 tests the Z regressor's design.

# %% [markdown]
# ## The paper and fa3d
#
# What the paper says about its metrics, where its equations are incomplete, and what fa3d chose where it
# says nothing. The official 3DFAW evaluation code was never published, so each choice below is fa3d's
# documented convention, not a copy.
#
# | what | the paper says (quoted, with its section) | fa3d chooses (and why) |
# |---|---|---|
# | GTE's normaliser | "GTE measures the average point-to-point Euclidean error normalized by the inter-ocular distance, as in [4]." (§3, Metrics). §1 cites [4] among the datasets and challenges that "have focused on frontal images", before it turns to 3D: a 2D benchmark. Which points, and whether in 2D or 3D: silent | The **3D** distance between the ground-truth outer eye corners (points 36 and 45), or the 2D one where the ground truth has no $z$. A 2D interocular distance shrinks as the head turns and vanishes in profile, which fa3d's synthetic faces reach (§4 above). |
# | GTE by axes | Table 3 and Fig. 3: "(X,Y), (X,Y,Z), X alone, Y alone and Z alone" (§3, Results); the normaliser of each: silent | The same 3D $d_i$ for every axis set; only the numerator changes (§1 above). |
# | CVGTCE, eq. (3) | it prints $\lVert sRx_n - y_n \rVert_2 / d_i$, with no translation, although eq. (4) fits "scale, rotation and translation" (§3, Metrics) | $sRx_n + t$: the translation that eq. (4) fits belongs in eq. (3) too (§2 above). |
# | the alignment, eq. (4) | "{s,R, t} = argmin" of the squared point distances, $R$ a "rotation" (§3, Metrics); how it is solved: silent | Umeyama's closed form, with $\det R = +1$: a reflection would turn a depth-inverted face into a perfect one (§2 above). |
# | "cross-view" | CVGTCE "evaluates the cross-view consistency of the predicted landmarks of the same subject" (§3, Metrics), yet eqs. (3)–(4) hold one prediction and one ground truth | One similarity per image; fa3d never uses which images show the same subject. With one view per subject, as on fa3d's synthetic faces, the two readings agree (§2 above). |
# | the comparison | Table 2: "Ours" and "Second best" on the 3DFAW test set; Table 3: the validation set by axes (§3, Results) | fa3d's own rows beside its full cascade: detection only, the 2D cascade with the mean depth and the mean-shape baseline, on synthetic test faces that tuned nothing (§3 above). The paper's numbers are shown for reference only. |
# | the curves | Fig. 3: "GTE vs fraction of test images" (§3, Results); no area under them | The AUC of each curve up to 25 % of $d_i$, a limit fixed before looking at any model (§6 above). |

# %% [markdown]
# ## Exercises
#
# 1. **A 2D normaliser everywhere.** Recompute the Table 3 analogue with the *2D* interocular distance and
#    with the AFLW2000-3D normaliser $\sqrt{w h}$ of the box (`metrics.nme_bbox` for $x, y$). How do the
#    three yaw bins of §8 change under each? Which convention would make a method that is bad at profiles
#    look best?
#    *Hint:* divide `(pred - gt)[..., cols].norm(dim=-1).mean(-1)` by
#    `metrics.interocular_distance(gt, scheme, axes="xy")`; `metrics.yaw_binned_nme(errors, yaw)`.
# 2. **How much of GTE is pose?** Split the gap between GTE and CVGTCE of the full cascade: align with a
#    translation only, then translation + scale, then the full similarity. Which part removes most of the
#    error, and on which faces (frontal or profile) does the rotation matter?
#    *Hint:* translation only = match the centroids; for scale, $s = \mathrm{tr}(D)/\sigma_x^2$ with
#    $R = I$ is not optimal — use the least-squares $s$ for fixed $R = I$:
#    $s = \sum_n \langle y_n - \mu_y, x_n - \mu_x\rangle / \sum_n \lVert x_n - \mu_x\rVert^2$.
# 3. **A sign error in z.** Evaluate the full cascade with its $z$ negated, as if the Z net's convention
#    were "larger = farther". What happens to GTE $z$, GTE $xyz$ and CVGTCE, and would CVGTCE with
#    reflections allowed have caught the bug?
#    *Hint:* `pred * torch.tensor([1., 1., -1.])`, `my_cvgtce(..., allow_reflection=True)`.
# 4. **The AUC limit.** The AUC depends on $e_{\max}$. Compute the full cascade's and the baseline's
#    AUC (xyz) for $e_{\max}$ = 5, 10, 20, 50 %. Can the ranking of two methods change with the limit?
#    Build two made-up error lists where it does.
#    *Hint:* `metrics.auc(errors, e_max)`; a method with many perfect faces and a few disasters vs one that
#    is mediocre everywhere.

# %% [markdown]
# ## References
#
# - Bulat, A. & Tzimiropoulos, G. (2016). *Two-stage convolutional part heatmap regression for the 1st 3D face
#   alignment in the wild (3DFAW) challenge.* ECCV 2016 Workshops.
#   [arXiv:1609.09545](https://arxiv.org/abs/1609.09545),
#   [doi:10.1007/978-3-319-48881-3_43](https://doi.org/10.1007/978-3-319-48881-3_43). Eqs. (2)–(4), Tables 2–3
#   and Fig. 3.
# - Jeni, L. A., Tulyakov, S., Yin, L., Sebe, N. & Cohn, J. F. (2016). *The first 3D face alignment in the wild
#   (3DFAW) challenge.* ECCV 2016 Workshops.
#   [doi:10.1007/978-3-319-48881-3_35](https://doi.org/10.1007/978-3-319-48881-3_35). The challenge that defined
#   GTE and CVGTCE.
# - Umeyama, S. (1991). *Least-squares estimation of transformation parameters between two point patterns.* IEEE
#   TPAMI 13(4). [doi:10.1109/34.88573](https://doi.org/10.1109/34.88573). The closed-form similarity alignment
#   of §2.
# - Zhu, X., Lei, Z., Liu, X., Shi, H. & Li, S. Z. (2016). *Face alignment across large poses: a 3D solution*
#   (3DDFA, 300W-LP, AFLW2000-3D). CVPR. [arXiv:1511.07212](https://arxiv.org/abs/1511.07212). AFLW2000-3D,
#   whose protocol (yaw bins, box normaliser) §4 and §8 borrow.
# - Bulat, A. & Tzimiropoulos, G. (2017). *How far are we from solving the 2D & 3D face alignment problem? (and
#   a dataset of 230,000 3D facial landmarks).* ICCV. [arXiv:1703.07332](https://arxiv.org/abs/1703.07332). The
#   AFLW2000-3D evaluation with the $\sqrt{w h}$ box normaliser (`metrics.nme_bbox`).
