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
# # 09 · Real faces: the synthetic model on photographs, and training on real 2D faces
#
# Every model of this course so far learned from fa3d's synthetic faces, and the model that ships with fa3d
# (`"pretrained"`, notebook 00) is one of them: it has never seen a photograph. This notebook takes it to
# **300-W**, the standard set of annotated face photographs (68 points in 2D), in three steps. First the
# data itself: its folders, which photo each face comes from, the split **by photo** into train,
# validation and locked parts, and the terms the annotations come under. Then the shipped model scored
# on 300-W's protocol (NME by the outer-eye-corner distance, failures, AUC), region by region. Finally a
# **fine-tuning run on real 2D faces mixed with synthetic 3D faces**, in which the photos teach $x, y$
# and the synthetic faces keep teaching $z$, and the same faces scored before and after. A run that
# learned from 300-W inherits its non-commercial terms, and fa3d refuses to release it.
#
# **You will learn** to
#
# - read 300-W's layout: name the photo of every face, and split the faces by photo so that no photo is
#   on both sides of a split;
# - score a model with 300-W's protocol (NME, failure rate, AUC to 8 %) and per region of the face;
# - train on a mix of real 2D and synthetic 3D faces: what the Z loss does with a face that has no $z$,
#   and what the augmentation does with a real face;
# - compare two models on the same faces, and check that no scored face comes from a photo that trained;
# - follow the terms of the data through training, and say why such a run cannot be shipped.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fa3d-course/fa3d/blob/main/notebooks/09_real_faces.ipynb)
#
# **Quick mode:** under a minute on a 2-core CPU, on its own on a fresh machine (the fine-tuning run about
# 15 s of it); many times longer while another job competes for the cores, where `OMP_NUM_THREADS=1`
# helps. Without your own 300-W download it runs on **stand-ins**: fa3d's synthetic faces written as
# 300-W's files, in 300-W's folders. They exercise every step, and **their numbers say nothing about real
# photographs** (see the box below).

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
W300_DIR = None              # a prepared 300-W folder (your download, research terms); None: fa3d's stand-ins
W300_ARCHIVES = []           # e.g. ["afw.zip", "helen.zip", "lfpw.zip", "ibug.zip"]: prepared into W300_DIR (or data/300w)
NUM_STANDINS = 180           # stand-in faces written when W300_DIR is None (half in the official test folders)
NUM_SYNTHETIC = 60           # synthetic 3D training faces in the mix; thousands for a real run
NUM_SYNTHETIC_TEST = 150     # synthetic test faces for the error by yaw (the shipped model's test seed)
MAX_STEPS = 20               # optimiser steps per stage of the fine-tuning run; None: the quick schedule's epochs
NUM_VALID = 20               # per-epoch validation faces of the run (synthetic; plus the 300-W validation part)
FLIP = True                  # test-time flip (each crop averaged with its mirror image), as fa3d predict does
OUT_DIR = "outputs/notebooks"

# %%
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import Markdown, display
from matplotlib.figure import Figure

import fa3d.data.splits
from fa3d.app.release import export_release
from fa3d.course import viz
from fa3d.data import open_dataset
from fa3d.data.readers import photo_id, source_specs
from fa3d.data.schemes import get_scheme
from fa3d.data.splits import DATA_TERMS, PHOTO_PARTS, data_terms, open_splits, photo_part
from fa3d.data.standins import write_300w_standins
from fa3d.data.transforms import AUGMENTS, Augment3D
from fa3d.evaluate import evaluate_run
from fa3d.models import get_preset
from fa3d.models.losses import z_loss
from fa3d.runs import PRETRAINED_DIR, TrainConfig, load_run, read_log
from fa3d.train import train

os.makedirs(OUT_DIR, exist_ok=True)
t_start = time.perf_counter()
facts = {}                   # what this notebook computed; written to OUT_DIR/09_real_faces.json
SCHEME = get_scheme("68")
PARTS = ("train", "validation", "locked", "test")
GROUPS = ("jaw", "brows", "nose", "eyes", "lips")

# %% [markdown]
# ### Where the faces come from
#
# **300-W** (Sagonas et al.) re-annotated four public sets of face photographs with the same 68 points:
# AFW, HELEN, LFPW and iBUG. iBUG's "Facial point annotations" page offers them as `afw.zip`, `helen.zip`,
# `lfpw.zip` and `ibug.zip`; you download them yourself, accepting iBUG's terms (**non-commercial research
# only**; the photos stay their owners'). fa3d never ships or fetches them. To use yours:
#
# - **on your machine**, from a clone of the repository:
#   `python data_scripts/prepare_ibug_300w.py afw.zip helen.zip lfpw.zip ibug.zip --out data/300w`
#   (extracts the zips safely, then opens the result as fa3d reads it), then set `W300_DIR = "data/300w"`
#   in the parameters cell;
# - **on Colab**, put the four zips on your Drive and set `W300_ARCHIVES` to their paths: the next cell runs
#   the same script (it needs the repository's `data_scripts/`, so clone it there:
#   `!git clone https://github.com/fa3d-course/fa3d` and run from the clone).
#
# With `W300_DIR = None` (the default, and how this notebook is committed) the next cell writes
# **stand-ins** instead: `write_300w_standins` renders fa3d's synthetic faces and saves them as `.jpg` +
# iBUG `.pts` files in 300-W's official folders, named as 300-W names them (some photos with two faces).
#
# > **The outputs you see were computed on stand-ins.** They are synthetic faces in real-format files:
# > every step below (reading, splitting, scoring, training, the licence check) runs on them exactly as on
# > the real data, but **none of their numbers says anything about real photographs**: the stand-ins come
# > from the same renderer as the shipped model's training faces. The real recipe's figures, measured on the
# > user's side with the real download, are in `docs/training.md` (section "Real faces"); fa3d ships neither
# > 300-W nor any model trained on it. If you run this notebook on your 300-W download, its figures show
# > 300-W photos: keep the executed notebook to yourself (never commit or publish it), as the terms ask.

# %%
NB_DIR = course.own_folder(Path(OUT_DIR) / "09_real_faces", "09")   # this notebook's own folder, emptied on every run

SCRIPTS = Path(fa3d.__file__).resolve().parents[1] / "data_scripts"
if W300_ARCHIVES:            # your zips: prepared once with the repository's data script
    target = Path(W300_DIR or "data/300w")
    if target.is_dir() and any(target.iterdir()):
        print(f"{target} already holds a prepared 300-W: using it (empty it to prepare again)")
    elif not (SCRIPTS / "prepare_ibug_300w.py").is_file():
        raise FileNotFoundError(f"{SCRIPTS} is missing: fa3d is installed without a checkout. Clone the repository "
                                f"(git clone {fa3d.REPO_URL}) and run this notebook from it")
    else:
        cmd = [sys.executable, str(SCRIPTS / "prepare_ibug_300w.py"), *map(str, W300_ARCHIVES), "--out", str(target)]
        print("$ " + shlex.join(["python", *cmd[1:]]))
        proc = subprocess.run(cmd, capture_output=True, text=True)
        print(proc.stdout[-3000:])
        if proc.returncode != 0:
            raise RuntimeError(f"preparing 300-W failed (exit status {proc.returncode}):\n{proc.stderr[-3000:]}")
    W300_DIR = str(target)

STANDINS = W300_DIR is None
if STANDINS:
    W300 = write_300w_standins(NB_DIR / "300w-standins", NUM_STANDINS, image_size=128, seed=0)
    print(f"wrote {NUM_STANDINS} stand-in faces (synthetic, 128 px, seed 0) in 300-W's layout: {W300}")
else:
    W300 = Path(W300_DIR)
    print(f"your 300-W: {W300} (research terms: keep what this notebook shows to yourself)")
DATA = f"300w:{W300}"
facts["standins"] = STANDINS

# %% [markdown]
# ## 1. 300-W: folders, photos, parts and terms
#
# The official layout keeps each source in its own folder: `afw/`, `helen/trainset/`, `helen/testset/`,
# `lfpw/trainset/`, `lfpw/testset/` and `ibug/`, each image beside a `.pts` file of 68 points. Two facts of
# this layout matter for an honest split:
#
# - **a photo can hold several faces**, each annotated separately: HELEN's `100040721_1.jpg` and
#   `100040721_2.jpg` are two faces of one photo (the same scene, light and camera, often the same event);
# - **file names repeat across folders**: `lfpw/trainset/image_0001.png` and `lfpw/testset/image_0001.png`
#   are different photos.
#
# `photo_id(image_path)` names the photo a face comes from, `<source>/<photo>`, with the folder in it and the
# face's index `_<k>` dropped. `photo_part(photo_id)` then decides the part of the **photo**, so all faces
# of a photo fall on the same side. For the training folders the decision is a hash of the photo id alone:
# the same on every machine, for every seed and whatever else is in the folder, with the shares of
# `PHOTO_PARTS`. **validation** is where every decision is measured (the runs' per-epoch curves, the
# comparisons of §4); **locked** is scored once, at the very end; 300-W's official **test** folders
# (`lfpw/testset`, `helen/testset`, `ibug`: the "common" and "challenging" subsets of the 300-W
# benchmark) are never trained on.

# %%
course.show_source(photo_id)

# %%
print(f"PHOTO_PARTS = {PHOTO_PARTS}; the official test folders: {fa3d.data.splits.TEST_SOURCES}\n")
for path in ("lfpw/trainset/image_0001.png", "lfpw/testset/image_0001.png", "helen/trainset/100040721_1.jpg",
             "helen/trainset/100040721_2.jpg", "afw/1051618982_1.jpg", "ibug/image_003_1.jpg"):
    pid = photo_id(path)
    print(f"{path:34s} -> photo {pid:26s} part {photo_part(pid)}")

# %% [markdown]
# The dataset spec `300w:DIR` opens such a folder (a `PtsFolder`, searched recursively). Each item is a face:
# the image as uint8 `(3, H, W)`, the 68 landmarks `(68, 3)` in image pixels with $z$ = NaN (300-W is 2D), and
# an id `<folder>/<name>`; `ds.photo_id(i)` names its photo.

# %%
ds = open_dataset(DATA)
item = ds[0]
print(ds)
print(f"face 0: id {item['id']!r}, photo {ds.photo_id(0)!r}, image {tuple(item['image'].shape)} {item['image'].dtype}, "
      f"landmarks {tuple(item['landmarks'].shape)}, z all NaN: {bool(torch.isnan(item['landmarks'][:, 2]).all())}")

# %% [markdown]
# How the faces of this folder fall into the parts, counted face by face and photo by photo. A photo
# "straddles" when its faces fall into more than one part, which the split by photo must never allow:

# %%
photos = [ds.photo_id(i) for i in range(len(ds))]
face_part = [photo_part(p) for p in photos]
parts_of_photo = defaultdict(set)
for p, part in zip(photos, face_part):
    parts_of_photo[p].add(part)
straddling = sum(len(parts) > 1 for parts in parts_of_photo.values())
faces_per_photo = Counter(photos)
rows = ["| part | share of the training folders' photos | photos | faces | photos with 2+ faces | folders |",
        "|---|---|---:|---:|---:|---|"]
for part in PARTS:
    members = sorted({p for p, q in zip(photos, face_part) if q == part})
    folders = sorted({ds[i]["id"].rpartition("/")[0] for i in range(len(ds)) if face_part[i] == part}) if members else []
    share = f"{100 * PHOTO_PARTS[part]:.0f} % (by hash)" if part in PHOTO_PARTS else "the official test folders"
    rows.append(f"| {part} | {share} | {len(members)} | {face_part.count(part)} | "
                f"{sum(faces_per_photo[p] > 1 for p in members)} | {', '.join(folders)} |")
rows.append(f"\n{len(ds)} faces from {len(parts_of_photo)} photos; photos whose faces straddle two parts: "
            f"**{straddling}**.")
display(Markdown("\n".join(rows)))
part_counts = {part: face_part.count(part) for part in PARTS}
facts.update(num_faces=len(ds), num_photos=len(parts_of_photo), faces_per_part=part_counts,
             straddling_photos=straddling)

# %% [markdown]
# With a few dozen photos in the training folders, the counts follow the hash's shares only roughly: each
# photo is a throw of a three-sided coin, and only thousands of throws (the real training folders hold
# about 3,100 faces) bring the counts close to the shares.
# Some faces of each part, with their annotation (colours: the face parts of the 68-point scheme):

# %%
shown = [i for part in PARTS for i in [k for k, q in enumerate(face_part) if q == part][:2]]
viz.face_grid([ds[i] for i in shown], SCHEME, ncols=len(shown),
              titles=[f"{ds[i]['id']}\n{face_part[i]}" for i in shown], panel_size=1.9)

# %% [markdown]
# **The terms.** fa3d records the terms of every kind of data it reads (`DATA_TERMS`), and a run inherits the
# terms of everything it learned from (§3, §5):

# %%
for kind in ("synthetic", "300w"):
    print(f"{kind:10s} {DATA_TERMS[kind] or 'fa3d own faces: MIT, like fa3d'}")
print(f"\nthe terms of {DATA!r}: {data_terms(DATA)}")

# %% [markdown]
# ## 2. The shipped model on these faces
#
# `evaluate_run("pretrained", "300w:DIR", split="validation")` scores the shipped model on the faces of the
# validation part only: each face cropped around its ground-truth box as in training, the prediction mapped
# back to the image, next to the **mean-shape baseline** (the mean training shape placed in every crop).
# For 68-point `.pts` faces it prints, after the course's GTE table and the AFLW2000-3D protocol's table
# (both computed in 2D here: the files have no $z$ and no pose), **300-W's protocol**: the NME is the mean
# 2D point error divided by the distance between the outer eye corners (points 36 and 45), a face **fails**
# above 10 %, and the **AUC** is the area under the cumulative error curve up to 8 % (1 = every face perfect).
# The last line says **where** the error lies: the same NME for each group of points.

# %%
def w300_row(result, who="model"):
    """One method's 300-W numbers of an evaluate_run result: NME, failures (%), AUC and the regions' NME."""
    ev = result["evaluation"][who]
    return {"nme": ev["w300"]["all"]["nme"], "failures": ev["w300"]["all"]["failure_rate"],
            "auc": ev["w300"]["all"]["auc"], "faces": ev["w300"]["all"]["num_images"],
            "regions": {g: ev["regions"][g] for g in GROUPS}}


shipped = evaluate_run("pretrained", DATA, split="validation", flip=FLIP, write=False, progress=False,
                       device=str(device))
print(shipped["table"])
val = shipped["dataset"]                                   # the scored faces, in the order of the predictions
before, base = w300_row(shipped), w300_row(shipped, "baseline")

# %%
worst_region = max(GROUPS, key=lambda g: before["regions"][g])
best_region = min(GROUPS, key=lambda g: before["regions"][g])
display(Markdown(
    f"On the {before['faces']} validation faces the shipped model's NME is **{before['nme']:.2f} %** "
    f"({before['failures']:.0f} % failures, AUC {before['auc']:.3f}), the mean shape's {base['nme']:.2f} % "
    f"({base['failures']:.0f} % failures). By region, its largest error is on the **{worst_region}** "
    f"({before['regions'][worst_region]:.2f} %) and its smallest on the **{best_region}** "
    f"({before['regions'][best_region]:.2f} %)."))
facts["shipped_validation"] = before
facts["mean_shape_validation"] = base

# %%
fig = Figure(figsize=(7, 3), layout="constrained")
ax = fig.subplots()
x, w = np.arange(len(GROUPS)), 0.38
for k, (row, name, colour) in enumerate(((before, "shipped model", viz.PRED_COLOUR),
                                         (base, "mean-shape baseline", "#999999"))):
    ax.bar(x + (k - 0.5) * w, [row["regions"][g] for g in GROUPS], w, label=name, color=colour)
ax.set_xticks(x, GROUPS)
ax.set(yscale="log", ylabel="NME (% of outer-eye-corner distance)",
       title=f"where the error lies: {before['faces']} validation faces of {'the stand-ins' if STANDINS else '300-W'}")
ax.grid(alpha=0.3, axis="y")
ax.legend(fontsize=8)
fig

# %% [markdown]
# Averages hide the faces that go wrong. The validation faces by the shipped model's error, worst first
# (green: the annotation, magenta: the prediction, red: each point's error). §4 shows the same faces again
# after fine-tuning.

# %%
nme_before = shipped["evaluation"]["model"]["errors"]["nme_eyes"].numpy()
SHOW = [int(i) for i in np.argsort(-nme_before)[:4]]          # the (up to) 4 worst validation faces
ids_val = shipped["evaluation"]["ids"]
fig = Figure(figsize=(2.8 * len(SHOW), 3), layout="constrained")
for ax, i in zip(np.atleast_1d(fig.subplots(1, len(SHOW))), SHOW):
    viz.show_prediction(val[i]["image"], shipped["evaluation"]["pred"][i], shipped["evaluation"]["gt"][i], SCHEME,
                        ax=ax, title=f"{ids_val[i]}\nNME {100 * nme_before[i]:.1f} %", legend=False)
fig

# %% [markdown]
# ### Error against the head's yaw
#
# The `.pts` files carry no head pose, so the 300-W faces cannot be binned by yaw. The synthetic test faces
# can: their heads turn uniformly over ±90°, and `evaluate_run("pretrained", "synthetic:N")` scores the
# shipped model's own test faces (its seed + 20000, never trained or tuned on) with the AFLW2000-3D protocol,
# NME in % of $\sqrt{w h}$ of the face box per |yaw| bin. 300-W's photos are mostly near-frontal (the
# challenging iBUG subset holds most of its larger poses), so the first bin is the one most like them.

# %%
syn_before = evaluate_run("pretrained", f"synthetic:{NUM_SYNTHETIC_TEST}", flip=FLIP, write=False, progress=False,
                          device=str(device))
proto_before = syn_before["evaluation"]["model"]["protocol"]
proto_base = syn_before["evaluation"]["baseline"]["protocol"]
bin_names = [f"{'[' if k == 0 else '('}{lo}, {hi}]°" for k, (lo, hi) in enumerate(proto_before["bins"])]


def yaw_bars(ax, rows: dict, counts):
    """Grouped bars of per-bin NME, one group per |yaw| bin, each annotated with its value."""
    w = 0.8 / len(rows)
    for k, (name, (means, colour)) in enumerate(rows.items()):
        xs = np.arange(len(means)) + (k - (len(rows) - 1) / 2) * w
        bars = ax.bar(xs, means, w, label=name, color=colour)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    ax.set_xticks(range(len(counts)), [f"|yaw| {b}\n{c} faces" for b, c in zip(bin_names, counts)])
    ax.set(ylabel="NME (% of sqrt(w h))")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)


fig = Figure(figsize=(7, 3.2), layout="constrained")
ax = fig.subplots()
yaw_bars(ax, {"shipped model": (proto_before["means"], viz.PRED_COLOUR)}, proto_before["counts"])
ax.set_title(f"the shipped model on {proto_before['num_images']} synthetic test faces, by |yaw|")
fig

# %%
display(Markdown(
    f"On the synthetic test faces the shipped model's NME grows from **{proto_before['means'][0]:.2f} %** "
    f"(|yaw| {bin_names[0]}) to **{proto_before['means'][-1]:.2f} %** ({bin_names[-1]}), "
    f"balanced {proto_before['balanced']:.2f} %; the mean shape's balanced NME is {proto_base['balanced']:.2f} %."))
facts["synthetic_yaw_before"] = {"means": proto_before["means"], "counts": proto_before["counts"],
                                 "balanced": proto_before["balanced"]}

# %% [markdown]
# ## 3. Training on real 2D faces mixed with synthetic 3D faces
#
# A photograph's annotation is 2D; the cascade has a Z stage. fa3d trains on both kinds at once with a
# **mixed spec**, `synthetic:N+300w:DIR`: `source_specs` splits it into its sources, each source is split
# on its own (the synthetic faces by seed, 300-W by photo as in §1), the train parts are trained on
# together and the validation parts validated together. Only the 300-W faces of the **train** part are
# ever trained on.

# %%
TRAIN_DATA = f"synthetic:{NUM_SYNTHETIC}+{DATA}"
print(f"{TRAIN_DATA!r}\n  -> sources {source_specs(TRAIN_DATA)}")
preset = get_preset("quick", SCHEME.num_points)
train_set, valid_set = open_splits(TRAIN_DATA, scheme="68", seed=0, num_train=NUM_SYNTHETIC, num_valid=NUM_VALID,
                                   synthetic_size=2 * preset.image_size)
rows = ["| source | training faces | with $z$ | with a photo id | validation faces |", "|---|---:|---:|---:|---:|"]
offset = 0
for spec, tr, va in zip(source_specs(TRAIN_DATA), train_set.datasets, valid_set.datasets):
    idx = range(offset, offset + len(tr))
    with_z = sum(bool(torch.isfinite(train_set.landmarks(i)[:, 2]).all()) for i in idx)
    with_photo = sum(train_set.photo_id(i) is not None for i in idx)
    rows.append(f"| `{spec.split(':')[0]}` | {len(tr)} | {with_z} | {with_photo} | {len(va)} |")
    offset += len(tr)
display(Markdown("\n".join(rows)))

# %% [markdown]
# ### What the Z loss does with a face that has no $z$
#
# The real faces' $z$ is NaN. The Z loss (the paper's eq. 1, the mean of $(\tilde z - z)^2$) takes its mean
# over the landmarks whose true $z$ is known only, so a real face adds nothing to it and gets no gradient:

# %%
course.show_source(z_loss)

# %% [markdown]
# A check on a made-up batch: four faces, the last two without $z$ (as photographs). The loss must equal the
# plain mean squared error of the first two, and the gradient on the last two must be exactly zero:

# %%
g = torch.Generator().manual_seed(0)
z_true = 10 * torch.randn(4, 68, generator=g, dtype=torch.float64)
z_true[2:] = float("nan")                                   # faces 3 and 4: photographs, z unknown
z_pred = (z_true.nan_to_num(0.0) + torch.randn(4, 68, generator=g, dtype=torch.float64)).requires_grad_()
loss = z_loss(z_pred, z_true)
loss.backward()
known_only = F.mse_loss(z_pred[:2].detach(), z_true[:2])
print(f"z_loss on the 4 faces {loss.item():.6f}; MSE of the 2 faces with z {float(known_only):.6f}; "
      f"largest gradient on the 2 faces without z: {float(z_pred.grad[2:].abs().max()):.1f}")
facts["z_loss_vs_known_mse"] = abs(loss.item() - known_only.item())
facts["z_loss_grad_without_z"] = float(z_pred.grad[2:].abs().max())

# %% [markdown]
# The run below trains the **2D stages** only (detection, regression, joint). It starts from the shipped
# model (`init_from="pretrained"` loads all its subnets, the Z network included, which it keeps as it is). With
# `"z"` among the stages, the Z stage would train on the mix too, its loss fed by the synthetic faces alone.
#
# ### The augmentation on a real face
#
# Every augmentation of the paper's (crop, scale, rotation up to ±35°, colour) and `augment="photo"`'s
# (blur, sensor noise, greyscale) applies to the real faces as to the synthetic ones. A horizontal flip
# is the one that needs care: a mirrored left eye is a right eye, so the flip re-indexes the points with
# the scheme's **mirror permutation** (point 36, the outer corner of the eye on the image's left, takes the
# place of point 45, and so on). Eight augmented training crops of one face of the train part (the white
# star: point 36):

# %%
print("68-point mirror permutation (after a flip, point i is the old point perm[i]):\n", SCHEME.flip_permutation)
face = ds[next(i for i, q in enumerate(face_part) if q == "train")]
augment = Augment3D(preset.image_size, AUGMENTS["photo"], SCHEME)
crops = [augment(face, torch.Generator().manual_seed(s)) for s in range(8)]
flipped = [bool(torch.linalg.det(c["crop_matrix"][:, :2].double()) < 0) for c in crops]
eye_order = [bool(c["landmarks"][36, 0] < c["landmarks"][45, 0]) for c in crops]
fig = Figure(figsize=(13, 2.1), layout="constrained")
for ax, c, f in zip(fig.subplots(1, len(crops)), crops, flipped):
    viz.show_face(c, SCHEME, ax=ax, title="flipped" if f else "not flipped")
    ax.scatter(*c["landmarks"][36, :2].tolist(), marker="*", s=90, c="white", edgecolors="black", zorder=4)
fig

# %%
print(f"{sum(flipped)} of {len(crops)} crops flipped; point 36 left of point 45 in {sum(eye_order)} of {len(crops)} "
      f"crops; z of the crops' landmarks still unknown: {all(bool(torch.isnan(c['landmarks'][:, 2]).all()) for c in crops)}")
facts.update(augment_flipped=sum(flipped), augment_eye_order_kept=sum(eye_order), augment_crops=len(crops))

# %% [markdown]
# ### The run
#
# One call of `train`: the quick preset, the 68 points, the three 2D stages, starting from the shipped model,
# with the photo augmentation and the shipped model's synthetic-face levers (`synthetic_levers`, read from its
# checkpoint: the synthetic faces of the mix are drawn as its were), cut to `MAX_STEPS` optimiser steps per
# stage (a demonstration, not a training budget: a real run takes the quick or paper schedule's epochs on
# thousands of faces).

# %%
RUN = NB_DIR / "runs" / "finetuned"
shipped_levers = load_run(PRETRAINED_DIR).checkpoint["config"]["synthetic_levers"]
print(f"the shipped model's synthetic levers: {shipped_levers}")
cfg = TrainConfig(out=str(RUN), preset="quick", data=TRAIN_DATA, scheme="68", stages=("detection", "regression", "joint"),
                  init_from="pretrained", augment="photo", synthetic_levers=shipped_levers, max_steps=MAX_STEPS,
                  num_train=NUM_SYNTHETIC, num_valid=NUM_VALID, seed=0, progress=False, device=str(device))
t0 = time.perf_counter()
train(cfg, overwrite=True)
train_seconds = time.perf_counter() - t0
log = read_log(RUN)
print(f"\n{len(log)} epochs in {train_seconds:.0f} s")
facts["train_seconds"] = round(train_seconds, 1)

# %% [markdown]
# The run's curves: its loss per stage, and the validation error of each epoch on the validation parts of
# both sources together. During the 2D stages the validation runs the cascade only up to the stage being
# trained, with $z$ = 0, so only the GTE $xy$ line measures this run (the $xyz$ line adds the missing depth
# of the synthetic validation faces):

# %%
viz.training_curves(log, title=f"fine-tuning the shipped model on {TRAIN_DATA.split(':')[0]} + 300w")

# %% [markdown]
# What the checkpoint remembers. `trained_photos` lists every photo whose faces trained the run (its
# `init_from` run's included), so that no evaluation ever scores them; `data_history` lists everything it
# learned from, oldest first, with the terms (the shipped model's entry comes first: it learned from
# synthetic faces alone, with no terms).

# %%
ckpt = load_run(RUN).checkpoint
shipped_ckpt = load_run(PRETRAINED_DIR).checkpoint
z_kept = all(torch.equal(v, shipped_ckpt["models"]["z"][k]) for k, v in ckpt["models"]["z"].items())
print(f"the Z net's weights are the shipped model's, unchanged: {z_kept}")
trained = list(ckpt["trained_photos"])
train_part_photos = {p for p, q in zip(photos, face_part) if q == "train"}
outside = [p for p in trained if photo_part(p) != "train"]
print(f"trained_photos: {len(trained)} photos, e.g. {trained[:4]}")
print(f"  in the train part: {len(trained) - len(outside)}; outside it: {len(outside)}; "
      f"the same set as the folder's train part: {set(trained) == train_part_photos}")
print("data_history:")
for entry in ckpt["data_history"]:
    print(f"  {entry['data']!r:60s} terms: {entry['terms'] or 'none'}")
facts.update(trained_photos=len(trained), trained_photos_outside_train=len(outside), z_net_kept=z_kept,
             trained_photos_are_train_part=set(trained) == train_part_photos,
             data_history_terms=sorted({t for e in ckpt["data_history"] for t in e["terms"]}))

# %% [markdown]
# ## 4. The same faces before and after
#
# The fine-tuned run is scored on the **same validation faces** as the shipped model in §2. Scoring never
# includes a face of a photo the run trained on, whatever spec names the data: the validation part holds
# none by construction, and the check below also scores *every* face of the folder (`split="all"`) to see
# which faces are left out.

# %%
after = evaluate_run(RUN, DATA, split="validation", flip=FLIP, write=False, progress=False, device=str(device))
assert after["evaluation"]["ids"] == ids_val, "not the same validation faces"
tuned, tuned_base = w300_row(after), w300_row(after, "baseline")
rows = ["| method | NME (%) | failures (%) | AUC 8 % | " + " | ".join(GROUPS) + " |", "|---|---:|---:|---:|" + "---:|" * len(GROUPS)]
for name, r in (("shipped model (synthetic faces only)", before), ("fine-tuned on the mix", tuned),
                ("mean shape (shipped model's)", base), ("mean shape (fine-tuned run's)", tuned_base)):
    rows.append(f"| {name} | {r['nme']:.2f} | {r['failures']:.1f} | {r['auc']:.3f} | "
                + " | ".join(f"{r['regions'][g]:.2f}" for g in GROUPS) + " |")
change = tuned["nme"] - before["nme"]
moved = [g for g in GROUPS if tuned["regions"][g] < before["regions"][g]]
rows.append(f"\n{before['faces']} validation faces, the same for every row; NME and regions in % of the "
            f"outer-eye-corner distance. Fine-tuning moved the NME by **{change:+.2f}** points "
            f"({before['nme']:.2f} → {tuned['nme']:.2f} %): "
            f"{'lower' if change < 0 else 'higher' if change > 0 else 'unchanged'}; the regions with a lower error after "
            f"it: {', '.join(moved) if moved else 'none'}.")
display(Markdown("\n".join(rows)))
facts["finetuned_validation"] = tuned
facts["nme_change"] = change

# %% [markdown]
# The faces of §2, before (top) and after (bottom):

# %%
nme_after = after["evaluation"]["model"]["errors"]["nme_eyes"].numpy()
fig = Figure(figsize=(2.8 * len(SHOW), 5.6), layout="constrained")
axes = np.array(fig.subplots(2, len(SHOW))).reshape(2, len(SHOW))
for row, (name, res, nme) in enumerate((("shipped", shipped, nme_before), ("fine-tuned", after, nme_after))):
    for ax, i in zip(axes[row], SHOW):
        viz.show_prediction(val[i]["image"], res["evaluation"]["pred"][i], res["evaluation"]["gt"][i], SCHEME, ax=ax,
                            title=f"{name}: {ids_val[i]}\nNME {100 * nme[i]:.1f} %", legend=False)
fig

# %% [markdown]
# Every face of the folder (`split="all"`): the spec names all of them, the fine-tuned run's trained photos
# included, and the evaluation leaves those out (the shipped model, which trained on no photo, would score
# all of them):

# %%
def scored_photos(result) -> set:
    """The photo ids of the faces an evaluate_run result scored."""
    return {result["dataset"].photo_id(i) for i in range(len(result["dataset"]))}


every = evaluate_run(RUN, DATA, split="all", write=False, progress=False, device=str(device))
overlap = len((scored_photos(every) | scored_photos(after)) & set(trained))   # split "all" and "validation"
train_faces = face_part.count("train")
print(f"split='all': the fine-tuned run scores {len(every['dataset'])} of the folder's {len(ds)} faces; "
      f"the train part holds {train_faces} faces; scored faces (all + validation) from a photo it trained on: {overlap}")
facts.update(all_split_scored=len(every["dataset"]), train_part_faces=train_faces, scored_trained_overlap=overlap)

# %% [markdown]
# ### The synthetic test faces, before and after
#
# Did the photos cost anything on the faces the shipped model was made for? `evaluate_run(RUN, "synthetic:N")`
# scores a run's **own** synthetic test faces: drawn from its seed + 20000 at its synthetic image size. They
# are the shipped model's test faces only if all three match: the shipped model was trained with seed 0 at
# 64 px crops with the default synthetic size (2 × 64 = 128 px) and its own synthetic levers, and so is this
# run. The check compares the two evaluations' ground truth, face by face.

# %%
syn_after = evaluate_run(RUN, f"synthetic:{NUM_SYNTHETIC_TEST}", flip=FLIP, write=False, progress=False,
                         device=str(device))
for name, c in (("shipped", shipped_ckpt["config"]), ("fine-tuned", ckpt["config"])):
    print(f"{name:10s} seed {c['seed']}, synthetic size {c['synthetic_size'] or 2 * preset.image_size} px")
same_faces = torch.equal(syn_before["evaluation"]["gt"], syn_after["evaluation"]["gt"])
print(f"the same {NUM_SYNTHETIC_TEST} synthetic test faces (ground truth identical): {same_faces}")
proto_after = syn_after["evaluation"]["model"]["protocol"]
facts["same_synthetic_test_faces"] = same_faces
facts["synthetic_yaw_after"] = {"means": proto_after["means"], "counts": proto_after["counts"],
                                "balanced": proto_after["balanced"]}

# %%
fig = Figure(figsize=(7, 3.2), layout="constrained")
ax = fig.subplots()
yaw_bars(ax, {"shipped": (proto_before["means"], viz.PRED_COLOUR), "fine-tuned": (proto_after["means"], "#0072B2")},
         proto_before["counts"])
ax.set_title(f"the same {proto_before['num_images']} synthetic test faces, by |yaw|, before and after")
fig

# %%
deltas = [a - b for a, b in zip(proto_after["means"], proto_before["means"])]
display(Markdown(
    f"Balanced NME on the synthetic test faces: {proto_before['balanced']:.2f} % before, "
    f"{proto_after['balanced']:.2f} % after ({proto_after['balanced'] - proto_before['balanced']:+.2f} points); "
    "per |yaw| bin the change is " + ", ".join(f"{d:+.2f} ({b})" for d, b in zip(deltas, bin_names)) + "."))

# %% [markdown]
# What these cells show is the procedure, not a result about photographs: the same faces, scored the same
# way, before and after; the faces of trained photos never scored; the synthetic faces checked for what the
# mix may have cost. On the stand-ins both models see synthetic faces on either side, and a few dozen
# optimiser steps move the numbers in whatever direction the cells above print. On the real 300-W the
# question is how much of the gap between synthetic and real faces the real 2D annotations close, and at
# what cost in depth and in profile faces (exercise 2); the figures measured that way are in
# `docs/training.md`.

# %% [markdown]
# ## 5. The licence stays with the weights
#
# fa3d is MIT-licensed, and so are the models it ships: they learned from fa3d's own synthetic faces only.
# Weights fine-tuned on 300-W learned from annotations under non-commercial research terms, and the run's
# `data_history` says so. `export_release`, the function that makes a shipped model or a course run out of
# a run folder, reads that history and refuses:

# %%
course.show_source(export_release)

# %%
with tempfile.TemporaryDirectory() as tmp:
    try:
        export_release(RUN, Path(tmp) / "release")
        refused, message = False, "exported (it should not have been)"
    except ValueError as err:
        refused, message = True, str(err)
    written = sorted(p.name for p in Path(tmp).rglob("*"))
    shipped_export = export_release(PRETRAINED_DIR, Path(tmp) / "shipped")
    shipped_ok = (shipped_export / "checkpoint.pt").is_file()
print(f"the fine-tuned run refused: {refused}\n  {message}\n  files written for it: {written or 'none'}")
print(f"the shipped model itself exports: {shipped_ok}")
facts.update(export_refused=refused, export_message_names_research="non-commercial research" in message,
             shipped_exports=shipped_ok)

# %% [markdown]
# The same rule keeps 300-W out of the repository: no 300-W image or annotation, no figure drawn from one and
# no model trained on it is committed. The committed outputs of this notebook were computed on stand-ins;
# the real recipe was measured on the user's side (`docs/training.md`, "Real faces", says how).

# %%
facts["seconds"] = round(time.perf_counter() - t_start, 1)
course.save_facts(facts, OUT_DIR, "09_real_faces")

# %% [markdown]
# ## Summary
#
# - 300-W's faces were named by photo (`photo_id`) and split by photo (`photo_part`): train, validation and
#   locked parts by a hash of the photo id, the official test folders apart; the table of §1 counted the
#   photos that straddle two parts.
# - The shipped synthetic-only model was scored with 300-W's protocol (NME by the outer-eye-corner distance,
#   failures above 10 %, AUC to 8 %) and region by region (§2), and by |yaw| on synthetic test faces, since
#   the `.pts` files have no pose.
# - A mixed spec `synthetic:N+300w:DIR` trained the 2D stages on real 2D and synthetic 3D faces together; the
#   Z loss leaves out faces without $z$, and the flip re-indexes the points by the mirror permutation (§3).
#   The checkpoint records the photos it trained on and the terms of its data.
# - The same faces were scored before and after (§4), with the faces of trained photos left out, and the
#   synthetic test faces were checked to be the same faces before comparing them. On the stand-ins these
#   numbers test the procedure, not photographs.
# - A run that learned from 300-W cannot be exported as a release (§5): the terms travel with the weights.

# %% [markdown]
# ## The paper and fa3d
#
# The paper trained and tested on one dataset with 3D labels. Everything in this notebook goes beyond it, so
# most of fa3d's choices here answer questions the paper never had to ask.
#
# | what | the paper says (quoted, with its section) | fa3d chooses (and why) |
# |---|---|---|
# | training data | "We trained and tested our model on the 3D Face Alignment in the Wild (3DFAW) dataset." (§3, Dataset) | The shipped model learned from fa3d's synthetic faces alone; this notebook fine-tunes it on real 2D faces (300-W) mixed with synthetic 3D faces: the photos teach $x, y$, and the synthetic faces keep teaching $z$, which 300-W's 2D labels lack (§3 above). |
# | faces without $z$ | "All images were annotated in a consistent way with 66 3D fiducial points." (§3, Dataset); eq. (1) averages over all $N$ landmarks (§2.2) | The Z loss leaves out the landmarks whose true $z$ is unknown (NaN): a photo adds nothing to it and gets no gradient from it (§3 above). |
# | augmentation | "flipping, in-plane rotation [...], scaling (between 0.85 and 1.15) and colour jittering" (§2.3) | The same, with the flip re-indexing the points by the mirror permutation (the paper does not say how it flips); `augment="photo"` adds blur, sensor noise and greyscale, fa3d's choice for a model that learned from renders (§3 above). |
# | splits | 3DFAW's own "training set", "validation set" and "test set" (§3, Dataset) | 300-W has several faces per photo, so fa3d splits its training photos by photo, by a hash of the photo's name, and never trains on the official test folders: no photo is both trained on and scored (§1 above). |
# | the metric | GTE "normalized by the inter-ocular distance, as in [4]" (§3, Metrics) | For 300-W, its own protocol: the 2D NME by the outer-eye-corner distance, failures above 10 % and the AUC to 8 %, so that the numbers can be compared with published 300-W results (§2 above). |
# | test-time flip | silent | Each face is also predicted mirrored and the two answers averaged (`flip=True`), fa3d's choice (§2 above; exercise 3). |

# %% [markdown]
# ## Exercises
#
# 1. **A face split instead of a photo split.** Split the faces of the folder at random, face by face, 70/15/15
#    (seeded), and count the photos whose faces land in two parts. Why does a face split leak, although each
#    face is scored only once? Then name each photo by its file name alone, without the folder: which faces
#    would be taken for one photo on the real 300-W, and what would that do to the split?
#    *Hint:* `photos`, `face_part` and `faces_per_photo` of §1; `torch.randperm(len(ds), generator=...)`;
#    `ds.samples[i][1]` is face `i`'s image path.
# 2. **What does the synthetic half of the mix do?** Train the same run on `300w:DIR` alone (no synthetic
#    faces) and compare with the mix on the validation faces and on the synthetic test faces by |yaw|. Which
#    bins does the run without synthetic faces lose, and why would the loss be larger on the real 300-W,
#    whose photos are mostly frontal? Could that run train the Z stage?
#    *Hint:* `dataclasses.replace(cfg, out=..., data=DATA)`; `evaluate_run(..., "synthetic:150")`;
#    `fa3d.data.splits.require_depth`.
# 3. **Test-time flip.** Score both models on the validation faces with `flip=False` and compare with
#    `FLIP = True` above, per region. Which regions does the flip help most, and why would it be the ones it
#    is?
#    *Hint:* `evaluate_run(..., flip=False)`, `w300_row`.
# 4. **Add the Z stage.** Add `"z"` to the run's stages (`init_from=str(RUN)`, `stages=("z",)`) and check in
#    one training batch how many faces feed the Z loss: count the faces of the training set whose $z$ is
#    known, and the share of Z-loss terms per batch of the quick schedule's batch size. What would happen
#    to the Z net if the loss took NaN as 0 instead of leaving those faces out?
#    *Hint:* `train_set.landmarks(i)` of §3; `get_schedule("quick").stage("z").batch_size`.
# 5. **Locked is locked.** Score the shipped and the fine-tuned model on `split="locked"` and on
#    `split="test"`. When in a real project may you look at these numbers, and what must you not do after
#    looking at them?
#    *Hint:* `evaluate_run(..., split="locked")`; the module docstring of `fa3d.data.splits`.

# %% [markdown]
# ## References
#
# - Sagonas, C., Tzimiropoulos, G., Zafeiriou, S. & Pantic, M. (2013). *300 Faces in-the-Wild Challenge: the first
#   facial landmark localization challenge.* ICCV Workshops.
#   [doi:10.1109/ICCVW.2013.59](https://doi.org/10.1109/ICCVW.2013.59). 300-W: the 68-point re-annotation of
#   AFW, HELEN, LFPW and iBUG, and its protocol.
# - Sagonas, C., Antonakos, E., Tzimiropoulos, G., Zafeiriou, S. & Pantic, M. (2016). *300 Faces In-the-Wild
#   Challenge: database and results.* Image and Vision Computing 47.
#   [doi:10.1016/j.imavis.2016.01.002](https://doi.org/10.1016/j.imavis.2016.01.002). NME by the outer-eye-corner
#   distance, failures and the cumulative error curves.
# - Bulat, A. & Tzimiropoulos, G. (2016). *Two-stage convolutional part heatmap regression for the 1st 3D face
#   alignment in the wild (3DFAW) challenge.* ECCV 2016 Workshops.
#   [arXiv:1609.09545](https://arxiv.org/abs/1609.09545). The cascade and its Z loss, eq. (1).
# - Bulat, A. & Tzimiropoulos, G. (2017). *How far are we from solving the 2D & 3D face alignment problem? (and
#   a dataset of 230,000 3D facial landmarks).* ICCV. [arXiv:1703.07332](https://arxiv.org/abs/1703.07332).
#   Training on 300-W's 2D faces and 3D landmarks from fits; the protocols side by side.
# - Wood, E., Baltrušaitis, T., Hewitt, C., Dziadzio, S., Cashman, T. J. & Shotton, J. (2021). *Fake it till you
#   make it: face analysis in the wild using synthetic data alone.* ICCV.
#   [arXiv:2109.15102](https://arxiv.org/abs/2109.15102). How far synthetic faces alone go on 300-W.
