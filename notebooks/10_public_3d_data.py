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
# # 10 · Real 3D faces: the public route, 300W-LP → AFLW2000-3D
#
# The paper trained and tested on 3DFAW, which can no longer be had. This notebook takes the route that
# replaced it: **train on 300W-LP**, whose depth comes from the 3D Morphable Model fitted to every face,
# and **test on AFLW2000-3D** with its own protocol. It derives the 3D landmarks from a 3DMM fit, fixes one
# pose and one pixel convention for every reader, and runs the whole recipe, command by command, on small
# stand-ins of the two downloads that use the real file formats.
#
# **You will learn** to
#
# - explain why 3DFAW is replaced by 300W-LP and AFLW2000-3D, and what each of them holds;
# - compute a face's 68 3D landmarks from its 3DMM parameters and pose, in fa3d's pixels and axes;
# - say which 2D landmarks train (the visible contour or the projected 3D points) and why it matters at large yaw;
# - score a model with the AFLW2000-3D protocol (NME by yaw bin, balanced);
# - run the five steps of the recipe on your own downloads.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fa3d-course/fa3d/blob/main/notebooks/10_public_3d_data.ipynb)
#
# **Quick mode:** under a minute on a 2-core CPU: the recipe's run on the stand-ins takes `RECIPE_MAX_STEPS`
# optimiser steps per stage, enough to test the plumbing, not to learn. It needs a clone of the repository
# (the data scripts are not in the installed package).

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
RECIPE_MAX_STEPS = 3         # optimiser steps per stage of the stand-in run of the recipe (plumbing only)
OUT_DIR = "outputs/notebooks"

# %%
import json
import os
import sys
from pathlib import Path

import numpy as np

import fa3d.data.pose
from fa3d.data import open_dataset, read_300wlp_landmarks
from fa3d.data.morphable import landmarks_from_3dmm
from fa3d.data.pose import face_normal
from fa3d.data.standins import write_standins

os.makedirs(OUT_DIR, exist_ok=True)
facts = {}   # what this notebook computed; written to OUT_DIR/10_public_3d_data.json

# %% [markdown]
# ## 1. Two public datasets instead of 3DFAW
#
# Notebooks 02–08 ran on synthetic faces. The paper trained and tested on **3DFAW**, and 3DFAW can no
# longer be had: its organisers gave it to challenge participants after a signed request, and the request
# form is gone (`data_scripts/README_3dfaw.md`). A reproduction that anyone can run needs public faces with
# 3D landmarks. The field has one standard route, the one the same authors took a year later for 3D-FAN
# (Bulat & Tzimiropoulos, ICCV 2017): **train on 300W-LP, test on AFLW2000-3D**. Both come from the 3DDFA
# project of Zhu et al. (CVPR 2016) and are free for non-commercial research:
#
# * **300W-LP** ("large pose"): about 61,000 faces made from the 300-W images (AFW, HELEN, IBUG, LFPW) by
#   *face profiling*: each face was fitted with a 3D Morphable Model, turned to a larger yaw and rendered
#   back into its photo, and each is also flipped horizontally (the `*_Flip` folders). Beside every image a
#   `.mat` holds 2D landmarks `pt2d` and the 3DMM fit: `Shape_Para` (199 numbers), `Exp_Para` (29) and
#   `Pose_Para` (pitch, yaw, roll, $t_x$, $t_y$, $t_z$, scale). **No z is stored.**
# * **AFLW2000-3D**: the first 2,000 images of AFLW (450 × 450 px, yaw up to ±90°), fitted the same way,
#   with their 68 3D landmarks `pt3d_68`: the test set.
#
# %% [markdown]
# ## 2. Depth from the 3DMM fit
#
# A 3D Morphable Model writes a face as a mean plus a few directions of variation. Restricted to the 68
# landmarks, the Basel Face Model (BFM) has a mean $u$ of 204 numbers (68 × (x, y, z)), shape directions
# $W_\text{shp}$ and expression directions $W_\text{exp}$; 3DDFA keeps the first 40 and 10 of them. A face's
# parameters $a$ (`Shape_Para`), $b$ (`Exp_Para`) and its pose give its 68 points in 3D:
#
# $$v = u + W_\text{shp}\, a_{[:40]} + W_\text{exp}\, b_{[:10]} \quad (\text{read as } 68 \times 3), \qquad
#   p = s\, v R^\top + t,$$
#
# with $R = R_x(\text{pitch})\, R_y(\text{yaw})\, R_z(\text{roll})$ in 3DDFA's signs, $s$ the scale and
# $t = (t_x, t_y, t_z)$. The result is in 3DDFA's pixels, which are MATLAB's (the first pixel is 1) with
# y pointing **up**: the image position is $x = p_x$, $y = H + 1 - p_y$ for an image $H$ pixels high, and
# fa3d, whose pixels start at 0, subtracts 1 from both. $z = p_z$, larger = closer to the camera, as in fa3d.
# The truncation to 40 + 10 directions is why this reproduces AFLW2000-3D's stored `pt3d_68` closely
# but not exactly. The whole computation is one function:

# %%
course.show_source(landmarks_from_3dmm)

# %% [markdown]
# **Why the bases are fetched, not shipped.** The 68-point bases are derived from the BFM, whose terms
# (University of Basel) allow non-commercial research only; fa3d is MIT-licensed and never contains
# them. `data_scripts/fetch_bfm68.py` downloads the three text files (`u_base.txt`, `w_shp_base.txt`,
# `w_exp_base.txt`) from the 3DDFA repository onto *your* machine, and refuses any file whose SHA-256 is not
# the published one. `prepare_300w_lp.py --bases` then computes the 3D landmarks of every face once and
# writes them beside the data (`landmarks_3d/<subset>/<name>.csv`), so training needs no bases. Without
# them 300W-LP is 2D only, and the Z stage refuses to train on it, with an error that says why.
#
# **Which 2D landmarks train.** At large yaw a 300W-LP face has two different sets of 2D landmarks. `pt2d`
# follows the *visible* jaw contour: as the head turns, the jaw points slide onto the silhouette. The
# projected 3D landmarks keep every point fixed on the face, hidden or not: the convention of 3DFAW and of
# AFLW2000-3D's `pt3d_68`, the test ground truth. fa3d trains the 2D stages on the **projected** landmarks:
# they are what the test measures, and the only 2D points that agree with the z of the same points (a
# point that slides along the silhouette is not one point of the 3D face). The difference is not small: on
# one real 300W-LP face at 44° yaw, the two sets differ by 13 % of $\sqrt{w h}$ of the face's box on average
# over the 17 jaw points (up to 29 % on the side turned away), against 2 % on the 51 inner points. `pt2d`
# still has a use: a face whose fit disagrees with its own `pt2d` on the inner points (a bad fit, or one of
# another image) is left out, and listed with the reason in `landmarks_3d/skipped.tsv`.
#
# **One pose convention, one pixel convention.** Every reader gives `pose = (yaw, pitch, roll)` in degrees
# in fa3d's convention (`fa3d.data.pose`): yaw > 0 turns the nose to the image's right, pitch > 0 lifts
# the nose, roll > 0 turns the face clockwise in the image, $R = R_z(\text{roll})\, R_x(\text{pitch})\,
# R_y(\text{yaw})$. 3DDFA's `Pose_Para` uses another order and frame, in which the yaw has the opposite
# sign (measured on real AFLW2000-3D files); the readers convert it. And every MATLAB-made annotation
# (`pt3d_68`, `pt2d`, iBUG `.pts`) is 1-based; the readers subtract 1.

# %%
course.show_source(fa3d.data.pose.pose_from_3ddfa)

# %% [markdown]
# %% [markdown]
# ## 3. The AFLW2000-3D protocol
#
# AFLW2000-3D is scored differently from 3DFAW: the error of a face is its mean 2D
# distance over the 68 points divided by $\sqrt{w h}$ of the ground-truth landmarks' box (NME, in %),
# averaged per |yaw| bin $[0, 30]$, $(30, 60]$, $(60, 90]$. Most faces are near frontal, so the headline
# number is the **balanced** NME, the mean of the three bin means, in which profiles count as much as
# frontal faces; the mean over all faces is reported beside it. For 68-point data `fa3d evaluate` prints this
# table under the GTE/CVGTCE one, with the published balanced NMEs of 3D-FAN (3.76 %), 3DDFA-V2 (3.51 %)
# and SynergyNet (3.41 %) as rows labelled "(published)": their numbers, on the full AFLW2000-3D, not ours.
#
# %% [markdown]
# ## 4. The recipe, for your downloads
#
# Download `300W-LP.zip` and `AFLW2000-3D.zip` from the 3DDFA project page (you accept their terms), then,
# from a clone of the repository, one command per step:
#
# 1. `python data_scripts/fetch_bfm68.py --out data/bfm68`: the BFM's 68-landmark bases, checked
#    against their SHA-256;
# 2. `python data_scripts/prepare_300w_lp.py ~/Downloads/300W-LP.zip --out data/300wlp --bases data/bfm68`:
#    extract 300W-LP safely and write the 3D landmarks of every face once
#    (`data/300wlp/300W_LP/landmarks_3d/<subset>/<name>.csv`; the faces left out are in
#    `landmarks_3d/skipped.tsv`);
# 3. `python data_scripts/prepare_aflw2000_3d.py ~/Downloads/AFLW2000-3D.zip --out data/aflw2000`: the test set;
# 4. `fa3d train --preset paper --data 300wlp:data/300wlp/300W_LP --out runs/300wlp-paper`: all four stages
#    on 300W-LP (68 points by default for 300wlp data, `--scheme 68`), on a GPU (notebook 07 §6);
# 5. `fa3d evaluate --run runs/300wlp-paper --data aflw2000:data/aflw2000/AFLW2000`: the GTE/CVGTCE table
#    and the AFLW2000-3D protocol table on all 2,000 faces.
#
# %% [markdown]
# ## 5. The same recipe on stand-ins
#
# The cells below run steps 2–5 on stand-ins of the two downloads, with the quick preset and
# `RECIPE_MAX_STEPS` optimiser steps per stage. `fa3d.data.standins.write_standins` writes
# `300W-LP.zip` (24 faces) and `AFLW2000-3D.zip` (8 faces) in the real file formats (the folders, the `.mat`
# variables, MATLAB's 1-based pixels, 3DDFA's rotation and y-up frame), made from synthetic faces, and
# stand-in bases built from the same faces, so that every `.mat`'s fit reproduces its face exactly: a wrong
# sign or a forgotten −1 anywhere on the way would show up as wrong landmarks. They replace step 1; being
# fakes, their checksums are not 3DDFA's, hence `--no-verify-bases` in step 2 (never pass it for bases you
# fetched). The steps run as separate processes, as from a terminal; the data scripts live in the repository,
# not in the installed package (`course.run_step` runs each). Everything goes into this notebook's own
# folder, emptied on every run.

# %%
SCRIPTS = Path(fa3d.__file__).resolve().parents[1] / "data_scripts"
have_scripts = (SCRIPTS / "prepare_300w_lp.py").is_file()
RECIPE_DIR = Path(OUT_DIR) / "10_recipe"                 # this notebook's own folder (course.own_folder)
LP_DIR, AFLW_DIR = RECIPE_DIR / "data" / "300wlp", RECIPE_DIR / "data" / "aflw2000"
RECIPE_RUN = RECIPE_DIR / "runs" / "300wlp-quick"
if not have_scripts:
    print(f"{SCRIPTS} is missing: fa3d is installed without a checkout. Clone the repository for the data "
          f"scripts (git clone {fa3d.REPO_URL}) and run this notebook from it; the stand-in run is skipped.")
else:
    course.own_folder(RECIPE_DIR, "10")                   # emptied on every run, and only if this notebook made it
    standins = write_standins(RECIPE_DIR / "standins")   # 24 + 8 synthetic faces, 128 px, seed 0
    for name, path in standins.items():
        print(f"{name:>16}: {path}")


# %% [markdown]
# Steps 2 and 3 (add `--force` to prepare into a folder that is not empty):

# %%
if have_scripts:
    course.run_step([sys.executable, SCRIPTS / "prepare_300w_lp.py", standins["300W-LP.zip"], "--out", LP_DIR,
              "--bases", standins["bases"], "--no-verify-bases"])
    course.run_step([sys.executable, SCRIPTS / "prepare_aflw2000_3d.py", standins["AFLW2000-3D.zip"], "--out", AFLW_DIR])

# %% [markdown]
# Two checks of the conventions on the prepared 300W-LP faces. First, the prepared landmarks' x, y against
# the file's own `pt2d`: the stand-ins' `pt2d` *is* the projection of their 3D landmarks (the synthetic
# faces label the jaw on the face), so the two must agree to rounding here, which they can only do if the
# rotation, the y flip, the −1 and the truncation are all right. On the real files they differ, most on the
# jaw at large yaw (exercise 1). Second, the yaw sign, from geometry alone: `face_normal` points out of
# the face, so its x must have the sign of the reader's yaw (exercise 2 does it on AFLW2000-3D).

# %%
if have_scripts:
    lp = open_dataset(f"300wlp:{LP_DIR / '300W_LP'}")
    fit_px, yaw_agrees = 0.0, []
    for sid, image_path, mat_path in lp.samples:
        lm3d, (yaw, pitch, roll) = lp.read_annotation(mat_path)
        lm3d = np.asarray(lm3d, np.float64)
        fit_px = max(fit_px, float(np.abs(lm3d[:, :2] - read_300wlp_landmarks(mat_path)).max()))
        if abs(yaw) > 10:                                 # near 0 the sign of a normal means little
            yaw_agrees.append(bool(np.sign(face_normal(lm3d)[0]) == np.sign(yaw)))
    print(f"{len(lp)} faces, depth {lp.depth!r}: prepared x, y vs pt2d, max difference {fit_px:.2g} px; "
          f"sign of the face normal's x = sign of the yaw on {sum(yaw_agrees)} of {len(yaw_agrees)} faces "
          "with |yaw| > 10°")
    assert fit_px < 0.01 and all(yaw_agrees), "a convention is broken on the way from the .mat to the landmarks"
    facts.update(max_steps=RECIPE_MAX_STEPS, standin_fit_vs_pt2d_max_px=fit_px,
                 standin_yaw_sign_agreement=sum(yaw_agrees) / max(1, len(yaw_agrees)))

# %% [markdown]
# Step 4, training on the prepared 300W-LP stand-in: the quick preset, 68 points (the default for `300wlp`
# data), all four stages including Z, which trains on the depth prepared in step 2. Of the 24 faces a
# seeded shuffle holds out 4 for validation and 4 for test (at most a fifth each, notebook 07 §5), so 16 train.

# %%
if have_scripts:
    course.run_step([sys.executable, "-m", "fa3d", "train", "--preset", "quick", "--data", f"300wlp:{LP_DIR / '300W_LP'}",
              "--out", RECIPE_RUN, "--max-steps", RECIPE_MAX_STEPS, "--device", device, "--no-progress",
              "--overwrite"])

# %% [markdown]
# Step 5, the test on another dataset: every face of the AFLW2000-3D stand-in, and both tables.

# %%
if have_scripts:
    course.run_step([sys.executable, "-m", "fa3d", "evaluate", "--run", RECIPE_RUN, "--data",
              f"aflw2000:{AFLW_DIR / 'AFLW2000'}", "--device", device, "--no-progress"])
    recipe_metrics = json.loads((RECIPE_RUN / "metrics.json").read_text())
    protocol = recipe_metrics.get("protocol", {})
    facts.update(test_faces=recipe_metrics["num_images"], gte_xyz=recipe_metrics["gte_xyz"],
                 balanced_nme=protocol.get("model", {}).get("balanced"),
                 baseline_balanced_nme=protocol.get("baseline", {}).get("balanced"))

# %% [markdown]
# **These numbers measure nothing about real faces.** They come from a few optimiser steps per stage on 16
# synthetic training faces at 64 px, scored on 8 synthetic faces; the published rows are other methods on
# the real 2,000 AFLW2000-3D faces, and no comparison with them is meant. What the cells prove is the
# plumbing: the archives extract safely, the 3DMM fits become 3D landmarks with the right signs and pixels,
# a 68-point cascade trains all four stages on 300W-LP's depth, and a run trained on one dataset is scored
# on another with both protocols. Real numbers need the real downloads and a GPU (the paper preset, notebook 07 §6);
# none has been measured for fa3d yet.

# %%
course.save_facts(facts, OUT_DIR, "10_public_3d_data")

# %% [markdown]
# ## Summary
#
# - 3DFAW is request-only and the request form is gone; 300W-LP (training, depth from 3DMM fits) and
#   AFLW2000-3D (testing) are the public route, the one 3D-FAN took (§1).
# - A face's 68 3D landmarks are the 3DMM's mean plus its shape and expression directions, posed and moved
#   into fa3d's 0-based, y-down pixels (§2); the readers convert 3DDFA's pose to fa3d's convention.
# - AFLW2000-3D is scored by NME over $\sqrt{w h}$, per |yaw| bin and balanced over the bins (§3).
# - The recipe's five steps ran on stand-ins in the real formats: the conventions checked out exactly, and a
#   68-point cascade trained on 300W-LP's depth and was scored on AFLW2000-3D (§4–5). The numbers printed
#   there measure the plumbing, not real faces.
# - Real numbers need the real downloads and a GPU: notebook 07 §6 says how long the paper preset trains.

# %% [markdown]
# ## The paper and fa3d
#
# | what | the paper says (quoted, with its section) | fa3d chooses (and why) |
# |---|---|---|
# | data | "The final model was trained on the training set (13672 images) and the validation set (4725 images), and tested on the test set" (§3, Dataset) | 3DFAW where you have it. Without it, the public route of this notebook: 300W-LP with depth from its 3DMM fits for training, AFLW2000-3D for testing, as the same authors did a year later for 3D-FAN (§1). |
# | the error measure | "Evaluation was performed using two different metrics: Ground Truth Error(GTE) and Cross View Ground Truth Consistency Error(CVGTCE)." (§3, Metrics) | On 3DFAW, the paper's two measures (notebook 05). On AFLW2000-3D, that dataset's own protocol beside them: NME over $\sqrt{w h}$ by yaw bin, balanced (§3), since the published rows use it. |
# | depth | "All images were annotated in a consistent way with 66 3D fiducial points." (§3, Dataset) | 300W-LP stores no z: fa3d computes it from each face's 3DMM fit with the BFM's 68-landmark bases, which you fetch (non-commercial terms; never shipped with fa3d) (§2). |
# | 2D landmarks at large yaw | silent (3DFAW labels the 3D points, hidden or not) | The projected 3D landmarks, not 300-W's visible contour `pt2d`: they are what AFLW2000-3D's `pt3d_68` measures and the only ones that agree with their own z (§2). |

# %% [markdown]
# ## Exercises
#
# 1. **pt2d or the projected landmarks?** On your real 300W-LP (prepared with `--bases`), compare each
#    face's `pt2d` with its projected 3D landmarks: the mean distance in % of $\sqrt{w h}$ of the box, for the
#    17 jaw points and for the 51 inner points separately, per |yaw| bin of the protocol. Which group grows
#    with the yaw, and why? Why are the two equal on the stand-ins of §5? On which points, and at which
#    poses, would a model trained on `pt2d` be scored as wrong against AFLW2000-3D's `pt3d_68`?
#    *Hint:* `lp = open_dataset("300wlp:...")`; for `sid, image, mat in lp.samples`: `lp.read_annotation(mat)`
#    gives the 3D landmarks and the pose, `read_300wlp_landmarks(mat)` the `pt2d`; points 0–16 are the jaw.
# 2. **Which way is yaw?** For the AFLW2000-3D stand-in of §5 (and the real files, if you have them),
#    compare three signs per face with |yaw| > 10°: the x of `fa3d.data.pose.face_normal(landmarks)`, the
#    reader's yaw, and the raw yaw stored in the file (`scipy.io.loadmat(mat)["Pose_Para"][0, 1]`,
#    radians). Which two agree? Then show a face with its normal drawn from the nose tip (point 30) and
#    say in words which way it looks.
#    *Hint:* `ds = open_dataset("aflw2000:...")`, `ds.samples`, `ds.read_annotation(mat)`; the normal is a
#    unit vector in fa3d's frame (x right, y down, z toward the camera).

# %% [markdown]
# ## References
#
# - Zhu, X., Lei, Z., Liu, X., Shi, H. & Li, S. Z. (2016). *Face alignment across large poses: a 3D solution*
#   (3DDFA, 300W-LP, AFLW2000-3D). CVPR. [arXiv:1511.07212](https://arxiv.org/abs/1511.07212). 300W-LP, its 3DMM
#   fits and AFLW2000-3D.
# - Bulat, A. & Tzimiropoulos, G. (2017). *How far are we from solving the 2D & 3D face alignment problem? (and
#   a dataset of 230,000 3D facial landmarks).* ICCV. [arXiv:1703.07332](https://arxiv.org/abs/1703.07332).
#   3D-FAN: the same authors' train-on-300W-LP, test-on-AFLW2000-3D protocol.
# - Jeni, L. A., Tulyakov, S., Yin, L., Sebe, N. & Cohn, J. F. (2016). *The first 3D face alignment in the wild
#   (3DFAW) challenge.* ECCV 2016 Workshops.
#   [doi:10.1007/978-3-319-48881-3_35](https://doi.org/10.1007/978-3-319-48881-3_35). The paper's data,
#   request-only today.
# - Paysan, P., Knothe, R., Amberg, B., Romdhani, S. & Vetter, T. (2009). *A 3D face model for pose and
#   illumination invariant face recognition.* AVSS. The Basel Face Model, whose 68-landmark bases give the depth.
