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
# # 07 · Full training: the paper's hyperparameters on a GPU, resumable
#
# Notebooks 02–04 trained the cascade one stage at a time with tiny budgets. This notebook is the one to
# open on a GPU (Colab or a rented machine) to train **all four stages in one run** with the paper's
# hyperparameters (§2.3): the schedule as a table (epochs, learning-rate end points, batch sizes, the
# optimiser and why RMSprop), a batch size that fits *your* GPU, the equivalent `fa3d train` and
# `torchrun` command lines, optional checkpoints on Google Drive, and training that **survives a
# disconnect**. In quick mode (the default, for a CPU) it trains a small cascade, cuts it off on purpose
# half-way, resumes it from its checkpoint in a *new process*, and evaluates it against the mean-shape
# baseline, and estimates what the paper-sized run costs. Real 3D faces (3DFAW is no longer available; the
# public route is 300W-LP → AFLW2000-3D) have their own notebook, 10.
#
# **You will learn** to
#
# - read the paper's training schedule (four stages, learning-rate end points, batch sizes) as data, and turn
#   it into optimiser steps and a per-step decay;
# - pick a batch size that fits your GPU by measuring, and run the same training from a terminal or with
#   `torchrun`;
# - make a long run survive a disconnect: what a checkpoint must hold for a resumed run to continue exactly;
# - estimate the paper preset's compute from its counted FLOPs, and say which assumptions the hours rest on.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fa3d-course/fa3d/blob/main/notebooks/07_full_training.ipynb)
#
# **Quick mode:** about 2 minutes on a 2-core CPU: this notebook is about training, so it trains its quick
# run itself (nothing ready-made).
# **Paper preset:** of the order of an hour of pure compute on an H100 and many hours on a T4,
# under stated assumptions, plus data loading and evaluation (§6 computes it).

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
PRESET = "quick"             # "paper" on a GPU: ResNet-152 + hourglass + ResNet-200 at 384 px
DATA = "synthetic"           # or "3dfaw:/path/3DFAW", "300wlp:/path/300W_LP" (with depth, notebook 10), "folder:/path"
STAGES = "detection,regression,joint,z"   # all four stages of §2.3, in order
EPOCHS_SCALE = 0.25          # quick: a quarter of each stage's epochs (about a minute on 2 CPU cores); 1.0: the preset's full epochs (paper: 30/30/30/100)
NUM_TRAIN = 400              # synthetic training faces (ignored for real data); 20000+ for the paper preset
NUM_VALID = 100              # validation faces (synthetic, or held out of a single folder); 1000 on a GPU
SYNTHETIC_SIZE = 96          # rendered image side for synthetic data; None: 2 x the crop (768 for paper)
PRETRAINED = None            # ImageNet init of the detection net; None: yes for paper, no for quick
USE_DRIVE = False            # Colab: keep the run on Google Drive so that it survives a disconnect
RESUME = True                # continue the run in RUN_DIR if one is there (after a disconnect)
SIMULATE_DISCONNECT = True   # quick demo: cut the fresh run off half-way, then resume it; False for a real run
OUT_DIR = "outputs/notebooks"

# %%
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from IPython.display import Markdown, display
from matplotlib.figure import Figure

import fa3d.runs
import fa3d.schedules
from fa3d.course import viz
from fa3d.course.report import write_run_report
from fa3d.checkpoint import load_checkpoint
from fa3d.data.splits import SYNTHETIC_TEST_SEED_OFFSET, SYNTHETIC_VALID_SEED_OFFSET
from fa3d.evaluate import evaluate_run
from fa3d.runs import TrainConfig, load_run, read_log
from fa3d.models import STAGES as ALL_STAGES
from fa3d.schedules import get_schedule
from fa3d.train import train

os.makedirs(OUT_DIR, exist_ok=True)
stages = tuple(s.strip() for s in STAGES.split(",") if s.strip())
data_kind = DATA.partition(":")[0].strip().lower()
drive_dir = course.maybe_mount_drive(USE_DRIVE)          # None unless asked for, and on Colab
runs_root = Path(drive_dir or os.path.join(OUT_DIR, "runs"))
RUN_DIR = runs_root / f"full_{PRESET}_{data_kind}"
progress = PRESET == "paper"                             # progress bars for long runs; epoch lines always
print(f"run folder: {RUN_DIR}\nstages: {', '.join(stages)}  |  device: {device}")
facts = {"preset": PRESET, "data": DATA, "stages": list(stages), "epochs_scale": EPOCHS_SCALE}

# %% [markdown]
# ## 1. The paper's schedule
#
# §2.3 trains "each task independently" to speed up convergence, then fine-tunes the 2D part jointly. The
# losses are §2.1's and §2.2's, except the joint stage's, which the paper does not name:
#
# | stage | what trains | loss |
# |---|---|---|
# | detection | ResNet-152 FCN (ImageNet init) | per-pixel sigmoid cross-entropy vs binary disks |
# | regression | hourglass, detection frozen | pixel-wise L2 vs Gaussians |
# | joint | both 2D subnets | the two losses summed (fa3d's choice) |
# | z | pre-activation ResNet-200 on RGB + heatmaps | eq. (1), L2 on $z$ |
#
# Each stage's learning rate goes "progressively" from $\eta_\text{start}$ to $\eta_\text{end}$. fa3d decays it
# geometrically **per optimiser step** $t = 0, \dots, T-1$ (a straight line on a log scale that hits both end
# points exactly, $T$ = the stage's total steps):
#
# $$\eta_t = \eta_\text{start}\left(\frac{\eta_\text{end}}{\eta_\text{start}}\right)^{t/(T-1)}.$$
#
# `get_schedule("paper")` holds the numbers; the table also counts the steps they mean on 3DFAW's 13,672
# training images (a smaller batch than the paper's means more, smaller steps per epoch).

# %%
paper, quick = get_schedule("paper"), get_schedule("quick")
N_3DFAW = 13_672
rows = ["| stage | epochs | lr start → end | batch | steps / epoch (3DFAW) | total steps | quick preset |",
        "|---|---|---|---|---|---|---|"]
for name in ALL_STAGES:
    s, q = paper.stage(name), quick.stage(name)
    spe = N_3DFAW // s.batch_size
    rows.append(f"| {name} | {s.epochs} | {s.lr_start:.1e} → {s.lr_end:.1e} | {s.batch_size} | {spe:,} | "
                f"{s.epochs * spe:,} | {q.epochs} ep, {q.lr_start:.0e} → {q.lr_end:.0e}, batch {q.batch_size} |")
rows.append(f"\noptimiser: paper preset **{paper.optimizer}**, quick preset **{quick.optimizer}**; "
            f"no weight decay; Z stage on ground-truth heatmaps with probability "
            f"{paper.z_gt_heatmap_prob}, else on the 2D stage's predictions")
display(Markdown("\n".join(rows)))

# %% [markdown]
# The joint stage's rate is not in the paper (it says only "30 more epochs"); fa3d reuses the regression
# stage's end points. The learning rate of each stage over its epochs, on a log scale:

# %%
fig = Figure(figsize=(10, 3), layout="constrained")
ax_p, ax_q = fig.subplots(1, 2)
for ax, sched, title in ((ax_p, paper, "paper schedule"), (ax_q, quick, "quick schedule")):
    for name in ALL_STAGES:
        s = sched.stage(name)
        t = np.linspace(0, 1, 200)
        ax.plot(t * s.epochs, s.lr_start * (s.lr_end / s.lr_start) ** t, label=name)
    ax.set(yscale="log", xlabel="epoch within the stage", ylabel="learning rate", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
fig

# %% [markdown]
# ### Why RMSprop
#
# The paper does not name its optimiser. The authors' Torch7 code of that period (their 2016 part-heatmap
# code and the hourglass code it builds on) used `optim.rmsprop`, so the paper preset uses RMSprop with
# Torch7's defaults ($\alpha = 0.99$, $\epsilon = 10^{-8}$): per parameter,
#
# $$v_t = \alpha\, v_{t-1} + (1-\alpha)\, g_t^2, \qquad \theta_t = \theta_{t-1} - \eta_t\, \frac{g_t}{\sqrt{v_t} + \epsilon}.$$
#
# Dividing by the running RMS of the gradient makes the step size roughly independent of the gradient's
# scale, which matters when one network mixes a classification-like loss (detection), a tiny pixel-wise L2
# (regression heatmaps are mostly zero) and an L2 on $z$ in pixels. The quick preset uses Adam instead
# (RMSprop plus momentum and bias correction), our choice for runs of only a few hundred steps per stage,
# with rates tuned for it on synthetic faces (`fa3d/schedules.py`). This notebook does not compare the two:
# the optimiser is one field of the schedule, and exercise 2 measures RMSprop against Adam:

# %%
course.show_source(fa3d.schedules.make_optimizer)

# %% [markdown]
# **Without ImageNet weights, start the Z stage at $10^{-3}$.** The paper fine-tuned an ImageNet pre-activation
# ResNet-200 from $10^{-2}$; fa3d cannot download one (`ZConfig.pretrained_path` loads one you bring). Trained
# from scratch on a CPU at 128 px (`python benchmarks/paper_cpu_training.py`, docs/speed.md), RMSprop at
# $10^{-2}$ blew up in the Z net's first 20 steps (validation loss 23,970), even with the preset's residual units
# starting as the identity (`ZConfig.zero_init_residual`, fa3d's choice for training from scratch). At
# $10^{-3}$, decayed to $2.5\times10^{-5}$ in the same shape, it trained from the first step and ended 200 steps
# at 0.64× the mean shape's depth error, while the detection, regression and joint stages, 300 steps each at
# the paper's rates, brought the 2D error to 0.58× the mean shape's. The preset keeps the paper's rates; set
# `schedule.z.lr_start` and `lr_end` for a run without ImageNet weights.

# %% [markdown]
# ## 2. A batch size that fits your GPU
#
# The paper trained on two 12 GB Titan X cards with batches of 8 (2D stages) and 16 (Z). A Colab T4 has
# 15 GiB, an A100 40 or 80 GiB. Rather than guess how much memory an image costs, `course.pick_batch_sizes`
# **measures** it: for each stage it runs one real training step (the same loss, optimiser, bf16 autocast
# and memory layout as `train`) on random crops at the schedule's batch, and halves the batch until the
# step fits with 10 % to spare. On a CPU it returns the schedule's batches unchanged. A smaller batch means
# more steps per epoch with the same learning-rate end points; the schedule's decay is per step, so it
# still ends at $\eta_\text{end}$.

# %%
course.show_source(course.pick_batch_sizes)

# %%
schedule = get_schedule(PRESET)
for name, batch in course.pick_batch_sizes(PRESET, device, stages).items():
    schedule.stage(name).batch_size = batch
print("batch sizes for this run:", {name: schedule.stage(name).batch_size for name in ALL_STAGES},
      f"(on {device}{', ' + torch.cuda.get_device_name(device) if device.type == 'cuda' else ''})")
facts["batch_sizes"] = {name: schedule.stage(name).batch_size for name in ALL_STAGES}

# %% [markdown]
# ### Before renting a GPU: the memory each stage needs
#
# `pick_batch_sizes` needs the GPU in hand. To choose a GPU before renting one, fa3d's benchmark
# `benchmarks/gpu_memory.py` runs each stage's real training step (loss, backward, RMSprop) on PyTorch's
# `meta` device, where tensors have shapes but no memory, and adds up the bytes of every live tensor. It
# needs no GPU (about 90 s on one CPU core). Its table for the paper preset, as its last run wrote it
# (`python benchmarks/gpu_memory.py --json docs/gpu_memory.json`; the method and its assumptions are in
# `docs/gpu.md`): the step's peak at the paper's batch sizes, and the largest training batch that fits
# each GPU, in fp32 and in 16-bit autocast.

# %%
memory_file = Path(fa3d.runs.__file__).resolve().parents[1] / "docs" / "gpu_memory.json"
if memory_file.is_file():
    memory = json.loads(memory_file.read_text())
    gpus = list(memory["gpus_usable_gib"])
    rows = ["| stage | batch | step peak fp32 / 16-bit (GiB) | " + " | ".join(gpus) + " |",
            "|---|---|---|" + "---|" * len(gpus)]
    for stage, by_precision in memory["stages"].items():
        fp32, half = by_precision["fp32"], by_precision["bf16"]
        rows.append(f"| {stage} | {fp32['batch']} | {fp32['step_peak_gib']:.2f} / {half['step_peak_gib']:.2f} | "
                    + " | ".join(f"{fp32['largest_batch'][g]} / {half['largest_batch'][g]}" for g in gpus) + " |")
    display(Markdown("\n".join(rows)))
    print(f"{memory['preset']} preset at {memory['image_size']} px; usable memory assumed: the card's total × "
          f"{1 - memory['headroom']['fraction']:.2f} − {memory['headroom']['gib']} GiB; written by: {memory['command']}")
else:
    print(f"no {memory_file}: clone fa3d ({fa3d.REPO_URL}) for its docs, or run benchmarks/gpu_memory.py")

# %% [markdown]
# ## 3. The same run from a terminal
#
# Everything this notebook does is one call of `fa3d.train.train(TrainConfig(...))`, which is also what
# the command line runs. On a rented GPU a terminal (inside `tmux`, so that closing the laptop does not
# kill it) is often better than a notebook. The paper used **two GPUs**. With fa3d, `torchrun` starts one
# process per GPU, each takes every second sample of the same shuffled order, DDP averages the gradients,
# and rank 0 alone validates, logs and writes checkpoints. `batch_size` is the *global* batch, so on two GPUs
# fa3d splits the paper's 8 into 4 per GPU. The paper trained "on two Titan X 12Gb GPUs using a batch of 8
# and 16 images" but does not say how it split a batch between them; this split is fa3d's. On the command
# line, `--batch-size B` sets one batch for every stage; for different batches per stage (as picked above)
# use the Python API as below.

# %%
args = ["--preset", PRESET, "--data", DATA, "--stages", ",".join(stages), "--out", str(RUN_DIR),
        "--epochs-scale", f"{EPOCHS_SCALE:g}", "--num-valid", str(NUM_VALID)]
if data_kind == "synthetic":
    args += ["--num-train", str(NUM_TRAIN)] + (["--synthetic-size", str(SYNTHETIC_SIZE)] if SYNTHETIC_SIZE else [])
if PRETRAINED is not None:
    args += ["--pretrained" if PRETRAINED else "--no-pretrained"]
one_gpu = shlex.join(["fa3d", "train", *args])
two_gpus = shlex.join(["torchrun", "--nproc_per_node", "2", "-m", "fa3d", "train", *args])
print("one GPU (or CPU):\n  " + one_gpu)
print("after a disconnect, the same line plus:\n  --resume")
print("two GPUs, as in the paper:\n  " + two_gpus)
print("then:\n  " + shlex.join(["fa3d", "evaluate", "--run", str(RUN_DIR), "--data", DATA]))

# %% [markdown]
# ## 4. What makes a run resumable
#
# After **every epoch** `train` writes `RUN_DIR/checkpoint.pt` *atomically* (to a temporary file, then
# `os.replace`: a crash while saving leaves the previous checkpoint intact) and appends one line to
# `RUN_DIR/log.jsonl`. The checkpoint holds the weights of all three subnets, the optimiser and
# learning-rate scheduler states, the stage and the last finished epoch, the RNG states, and the run's
# configuration, preset and schedule. `train(cfg, resume=True)` (or `fa3d train ... --resume`) reloads all of
# it and continues with the *next* epoch; an interrupted epoch is redone from its start. Because the data
# order and every augmentation draw come from `(seed, stage, epoch, index)` and not from a global random
# state, the resumed run sees exactly the samples an uninterrupted run would.
#
# On Colab a disconnect kills the Python process: with `USE_DRIVE = True` the run lives on your Drive, and
# running this notebook again with `RESUME = True` picks it up. Here we **simulate** the disconnect:
# `train(cfg, on_step=...)` calls a function of ours after every optimiser step, and ours raises an
# exception in the middle of the run, exactly where a dying kernel would stop it. The run is then resumed
# by a fresh `python -m fa3d train --resume` process that shares nothing with this one except the files
# on disk.

# %%
cfg = TrainConfig(out=str(RUN_DIR), preset=PRESET, data=DATA, stages=stages, seed=0, epochs_scale=EPOCHS_SCALE,
                  num_train=NUM_TRAIN, num_valid=NUM_VALID, synthetic_size=SYNTHETIC_SIZE, pretrained=PRETRAINED,
                  schedule=schedule.to_dict(), progress=progress)
cut_stage = stages[1] if len(stages) > 1 else stages[0]     # cut off in the second stage, its second epoch


class SimulatedDisconnect(RuntimeError):
    """Raised from inside the training loop, where a lost Colab runtime would stop it."""


def disconnect(stage, epoch, step):
    if stage == cut_stage and epoch == 1:
        raise SimulatedDisconnect(f"simulated disconnect in the {stage} stage, epoch 2, after step {step}")


ckpt_path = RUN_DIR / fa3d.runs.CHECKPOINT_NAME
resumed, cut_log = False, []
t0 = time.time()
if SIMULATE_DISCONNECT:        # the demonstration: a fresh run (this folder belongs to the notebook), cut off
    try:
        train(cfg, overwrite=True, on_step=disconnect)
        print("the run finished before the planned cut (too few epochs in the second stage)")
    except SimulatedDisconnect as err:
        print(f"\n*** {err} ***")
    cut_log = read_log(RUN_DIR)
elif RESUME and ckpt_path.exists():
    print(f"resuming {RUN_DIR}")
    train(cfg, resume=True)
    resumed = True
else:
    train(cfg)                 # refuses to replace an existing run: set RESUME = True or change RUN_DIR
train_seconds = time.time() - t0

# %% [markdown]
# What survived the "disconnect": the checkpoint's position and the log. The stage that was cut off has
# its finished epochs on disk; the epoch that was in progress is gone (it will be redone).

# %%
if SIMULATE_DISCONNECT:
    saved = load_checkpoint(ckpt_path)
    print(f"checkpoint: stage {saved['stage']!r}, last finished epoch {saved['epoch'] + 1}, "
          f"step {saved['step']}, finished: {saved['finished']}")
    print(f"log.jsonl: {len(cut_log)} epochs: " + ", ".join(f"{r['stage']} {r['epoch'] + 1}" for r in cut_log))

# %% [markdown]
# Now the resume, as you would type it after reconnecting: a new process, only the run folder in common.

# %%
if SIMULATE_DISCONNECT and not load_checkpoint(ckpt_path)["finished"]:
    t1 = time.time()
    course.run_step([sys.executable, "-m", "fa3d", "train", "--out", RUN_DIR, "--resume", "--no-progress"])
    resumed = True
    train_seconds += time.time() - t1
log = read_log(RUN_DIR)
keys = [(r["stage"], r["epoch"]) for r in log]
assert len(keys) == len(set(keys)), "an epoch was logged twice"
assert load_checkpoint(ckpt_path)["finished"], "the run did not finish"
print(f"\nthe finished log: {len(log)} epochs, each once; training took {train_seconds:.0f} s in this notebook")

# %% [markdown]
# The log is continuous across the cut (the dotted line): the resumed stage carries on with the optimiser
# state and the learning rate where they were. The right panel checks the logged learning rate at the start
# of every epoch against the formula of §1, $\eta_t$ with $t$ = the steps done before that epoch.

# %%
fig = viz.training_curves(log, title=f"{PRESET} preset, {DATA}: {len(log)} epochs")
if cut_log:
    for ax in fig.axes:
        ax.axvline(len(cut_log) + 0.5, color="black", ls=":", lw=1.2)
    fig.axes[1].text(len(cut_log) + 0.7, fig.axes[1].get_ylim()[1] * 0.9, "disconnect\n+ resume", fontsize=7)
lr_err = 0.0
for name in stages:
    recs = [r for r in log if r["stage"] == name]
    s = schedule.stage(name)
    per_epoch, total = recs[0]["step"], recs[-1]["step"]      # steps of one epoch, of the whole stage
    for r in recs:
        t = r["epoch"] * per_epoch                             # steps done before this epoch
        expected = s.lr_start * (s.lr_end / s.lr_start) ** (t / (total - 1)) if total > 1 else s.lr_start
        lr_err = max(lr_err, abs(r["lr"] / expected - 1))
print(f"logged learning rates vs the formula: max relative difference {lr_err:.1e}")
facts["lr_formula_max_rel_diff"] = lr_err
fig

# %% [markdown]
# ## 5. Evaluation
#
# `evaluate_run` scores the finished run as notebook 05 does: every test face cropped around its ground-truth
# box, predictions mapped back to the image, GTE (eq. 2) and CVGTCE (eq. 3–4) in percent of the 3D
# interocular distance, next to the **mean-shape baseline** (the mean training shape placed in every test
# crop: what a model that ignores the image scores). It computes every number once and writes
# `RUN_DIR/metrics.json`; `write_run_report` draws the report from the same numbers (`RUN_DIR/report.html`).
#
# Which faces are the test faces matters as much as the metric. fa3d's splits (`fa3d.data.splits`) keep
# them honest: **no face is both tuned on and scored.**
#
# * **Synthetic data** has three disjoint sets, each from its own seed: training faces from `seed`,
#   validation faces from `seed + 10000` (`SYNTHETIC_VALID_SEED_OFFSET`: the per-epoch curves of §4, and the
#   faces the quick schedule was tuned on, so they are no longer unseen), and **test faces** from
#   `seed + 20000` (`SYNTHETIC_TEST_SEED_OFFSET`), used for nothing but this score. `evaluate_run(run,
#   "synthetic")` and `fa3d evaluate --data synthetic` score the test faces (as many as the run validated on).
# * **3DFAW** keeps its own folders: train on `train`, score on `valid`, the paper's Table 3 protocol (the
#   challenge's test landmarks were never released).
# * **A single folder** (`aflw2000:`, `300wlp:`, `folder:`): a seeded shuffle holds out `NUM_VALID`
#   validation faces and as many test faces (each at most a fifth of the folder), and trains on the rest.
#   Evaluated on the folder it trained on, a run scores only those held-out test faces; on any other folder,
#   every face. That is how notebook 10 trains on 300W-LP and tests on all of AFLW2000-3D.

# %%
result = evaluate_run(RUN_DIR, DATA, progress=False)
write_run_report(result)
print(result["table"])
scored = {"synthetic": f"the synthetic test faces of seed {cfg.seed} + {SYNTHETIC_TEST_SEED_OFFSET:,} "
                       f"(validation: seed + {SYNTHETIC_VALID_SEED_OFFSET:,}; training: seed {cfg.seed})",
          "3dfaw": "3DFAW's valid split (the paper's protocol)"}
print(f"scored {result['metrics']['num_images']} faces: "
      + scored.get(data_kind, f"the test faces held out of {DATA} (neither trained nor validated on)"))

# %% [markdown]
# One column deserves a second look: **CVGTCE** first fits the rotation, scale and translation that best
# map the prediction onto the ground truth (eq. 3–4), which undoes the head pose. The mean shape rotated
# onto each face is already a plausible 3D face, so the baseline's CVGTCE is low, and a briefly trained
# model can be *worse* on it while being far better on GTE: it gets the pose right before it gets the
# shape right. The paper reports no mean-shape baseline; its own CVGTCE is below its GTE on the test set
# (3.48 against 4.56 %, its Table 2).
#
# The cumulative error curves (the paper's Fig. 3): the fraction of test faces whose GTE is below a
# threshold, model vs baseline, per axis set.

# %%
scores = result["evaluation"]                       # evaluate_run's numbers: no second pass over the test faces
viz.ced_figure({"fa3d": scores["model"]["errors"], "mean-shape baseline": scores["baseline"]["errors"]},
               axes=("xy", "xyz", "z"), title=f"{PRESET} preset on {DATA}")

# %% [markdown]
# ## 6. Scaling up
#
# In quick mode, with a quarter of the epochs, the cascade above is not yet better than the mean shape on every
# measure (§5's table), and far from the paper's 4.94 % GTE xyz on the 3DFAW validation set: the networks are shallow and narrow, the crops 64 px, the
# data a few hundred synthetic faces, the epochs cut to a quarter. To train the real thing, set in the
# parameters cell (or with papermill's `-p`):
#
# ```
# PRESET = "paper"; DATA = "3dfaw:/content/drive/MyDrive/3DFAW"; EPOCHS_SCALE = 1.0
# NUM_VALID = 1000; USE_DRIVE = True; RESUME = True; SIMULATE_DISCONNECT = False
# ```
#
# and run all cells; after a disconnect, run them again. The compute this takes is estimated below; try
# `EPOCHS_SCALE = 0.1` first.
#
# Without 3DFAW, take the public route of notebook 10: run its steps 1–3 on your downloads, then set
# `DATA = "300wlp:/content/data/300wlp/300W_LP"` (§5 then scores the 300W-LP faces held out for test) and,
# once the run has finished, `fa3d evaluate --run RUN_DIR --data aflw2000:/content/data/aflw2000/AFLW2000`
# for the AFLW2000-3D tables. 300W-LP, flipped copies included, holds several times as many images as
# 3DFAW's 13,672 (count yours: `len(open_dataset(DATA))`), and an epoch costs that many times more: scale
# `EPOCHS_SCALE` down to match your budget. fa3d has no measured result on this route yet.

# %% [markdown]
# ### The compute budget, from counted FLOPs
#
# How long does the paper preset train? Count the FLOPs of one forward pass of each subnet at 384 px on the
# `meta` device (shapes, no memory: notebooks 02–04 count the same networks one by one), multiply by what
# each stage runs per training image (a training step of a network costs about 3 forward passes, forward
# and backward; a frozen network only its forward), by the paper's epochs and by 3DFAW's training images:
#
# | stage | per training image |
# |---|---|
# | detection | 3 × detection |
# | regression | detection (frozen) + 3 × regression |
# | joint | 3 × (detection + regression) |
# | z | detection + regression (frozen, counted for every sample) + 3 × Z |
#
# FLOPs become hours only through two numbers, both stated in the code: the GPU's peak rate (the
# vendor's data-sheet figure, dense mixed precision: bf16 on an H100 SXM, fp16 on Colab's T4, the precision
# fa3d picks on each) and an **assumption**, the share of that peak a training loop of convolutional nets
# really sustains (35 % here, a typical value; data loading, evaluation and checkpoints come on top).

# %%
from torch.utils.flop_counter import FlopCounterMode

from fa3d.models import Cascade, get_preset

H100_BF16_TFLOPS = 989     # NVIDIA's H100 data sheet: dense bf16 (no sparsity), SXM (the PCIe card: 756)
T4_FP16_TFLOPS = 65        # NVIDIA's T4 data sheet: mixed-precision fp16 tensor cores
UTILISATION = 0.35         # assumption: share of the peak that conv-net training sustains
TRAIN_STEP_FORWARDS = 3    # forward + backward ≈ 3 forward passes

paper_preset = get_preset("paper")
S_paper = paper_preset.image_size
with torch.device("meta"):
    paper_cascade = Cascade.from_preset(paper_preset)
    image = torch.zeros(1, 3, S_paper, S_paper)
    cumulative = {}
    for upto in ("detection", "regression", "z"):
        with FlopCounterMode(display=False) as counter:
            paper_cascade(image, upto=upto)
        cumulative[upto] = counter.get_total_flops()
forward_gflop = {"detection": cumulative["detection"] / 1e9,
                 "regression": (cumulative["regression"] - cumulative["detection"]) / 1e9,
                 "z": (cumulative["z"] - cumulative["regression"]) / 1e9}
det, reg, z_net = (forward_gflop[k] for k in ("detection", "regression", "z"))
per_image_gflop = {"detection": TRAIN_STEP_FORWARDS * det,
                   "regression": det + TRAIN_STEP_FORWARDS * reg,
                   "joint": TRAIN_STEP_FORWARDS * (det + reg),
                   "z": det + reg + TRAIN_STEP_FORWARDS * z_net}
paper_schedule = get_schedule("paper")
stage_flop = {name: per_image_gflop[name] * 1e9 * paper_schedule.stage(name).epochs * N_3DFAW for name in ALL_STAGES}
total_flop = sum(stage_flop.values())
print("forward pass at 384 px: " + ", ".join(f"{k} {v:.1f} GFLOP" for k, v in forward_gflop.items()))
for name in ALL_STAGES:
    print(f"  {name:10s} {paper_schedule.stage(name).epochs:3d} epochs × {N_3DFAW:,} images × "
          f"{per_image_gflop[name]:6.1f} GFLOP = {stage_flop[name]:.2e} FLOP")
hours = {gpu: total_flop / (UTILISATION * tflops * 1e12) / 3600
         for gpu, tflops in (("H100 (bf16)", H100_BF16_TFLOPS), ("T4 (fp16)", T4_FP16_TFLOPS))}
print(f"total {total_flop:.2e} FLOP; at {100 * UTILISATION:.0f} % of the peak: "
      + ", ".join(f"{gpu} {h:.1f} h" for gpu, h in hours.items()))
facts.update(paper_forward_gflop={k: round(v, 1) for k, v in forward_gflop.items()},
             paper_training_flop=total_flop, utilisation_assumed=UTILISATION,
             paper_training_hours_estimate={gpu: round(h, 2) for gpu, h in hours.items()})

# %% [markdown]
# The data come on top. On a GPU, fa3d renders each synthetic training face once, at twice the crop's side
# (768 px for the paper preset), in the DataLoader's worker processes (docs/gpu.md). How long one face takes
# here, measured on four faces:

# %%
from fa3d.data.synthetic import SyntheticFaces
from fa3d.runs import GPU_WORKERS

render_faces = SyntheticFaces(4, image_size=2 * S_paper, seed=0)
t0 = time.perf_counter()
for i in range(len(render_faces)):
    render_faces[i]
seconds_per_face = (time.perf_counter() - t0) / len(render_faces)
print(f"one synthetic face at {2 * S_paper} px: {seconds_per_face:.2f} s in one process on this CPU; "
      f"{N_3DFAW:,} faces (3DFAW's count): {seconds_per_face * N_3DFAW / 3600:.1f} h in one process, "
      f"{seconds_per_face * N_3DFAW / 3600 / GPU_WORKERS:.1f} h in fa3d's {GPU_WORKERS} GPU-side workers on "
      f"{GPU_WORKERS} free cores")
facts["synthetic_render_seconds_paper_size"] = round(seconds_per_face, 3)

# %% [markdown]
# The paper's schedule is about $10^{18}$ FLOP (printed above), most of it the Z stage's 100 epochs of a
# ResNet-200. At the assumed 35 % of an H100's dense bf16 peak that is under an hour of pure compute; on a T4
# it is many hours (both printed above). Rendering the synthetic faces adds the time printed just above,
# before the first step (photos are read, not rendered, and cost far less). Treat the sum as a lower bound:
# a real run also augments every image, evaluates after each epoch and writes checkpoints, and a small batch
# (§2) keeps the GPU further from its peak. Exercise 4 measures the real cost per image from this run's log.

# %%
facts.update(model_gte=result["metrics"]["gte_xyz"], baseline_gte=result["baseline"]["gte_xyz"],
             model_gte_xy=result["metrics"]["gte_xy"], baseline_gte_xy=result["baseline"]["gte_xy"],
             model_cvgtce=result["metrics"]["cvgtce"], resumed=resumed, seconds=round(train_seconds, 1),
             epochs_logged=len(log), num_test_faces=result["metrics"]["num_images"])
course.save_facts(facts, OUT_DIR, "07_full_training")

# %% [markdown]
# ## Summary
#
# - The paper's schedule is data (`get_schedule("paper")`): four stages, geometric learning-rate decay per
#   step, RMSprop; the table in §1 turned it into steps on 3DFAW.
# - `course.pick_batch_sizes` measured what fits this device (§2), and the same run is one `fa3d train` or
#   `torchrun` command (§3).
# - The quick run was cut off half-way and resumed in a new process from its checkpoint (§4), then scored
#   against the mean shape on its test faces (§5; the numbers are printed there).
# - §6 estimated the paper preset's compute from counted FLOPs, with its peak-rate and utilisation
#   assumptions stated (the FLOP total and hours are printed there).
# - Next: notebook 08 tests the paper's claims about the Z regressor with controlled ablations; notebook 10
#   takes the public route to real 3D faces.

# %% [markdown]
# ## The paper and fa3d
#
# What the paper says about training, and what fa3d chose where it says nothing.
#
# | what | the paper says (quoted, with its section) | fa3d chooses (and why) |
# |---|---|---|
# | stages | "While the entire system, shown in Fig. 1, can be trained jointly from the beginning, in order to accelerate convergence we trained each task independently." (§2.3) | The same four stages in order (detection, regression, joint, Z), all in one resumable run (§1, §4 above). |
# | learning rates | detection "from 1e − 3 to 2.5e − 5", regression "from 1e − 4 to 2.5e − 5", Z "from 1e − 2 to 2.5e − 4" (§2.3); the shape of the decay: silent beyond "progressively" | Those end points, with a geometric decay per optimiser step that hits both exactly; a smaller batch then still ends at the paper's last rate (§1 above). |
# | the joint stage | "Finally, the subnetworks were trained jointly for 30 more epochs." (§2.3); its loss and learning rate: silent | fa3d's choice: the sum of the detection and regression losses, with the regression stage's rates (§1 above). |
# | the optimiser | silent | RMSprop with Torch7's defaults for the paper preset, as the authors' Torch7 code of the time used; Adam for the quick preset, our choice for a few hundred steps, with its rates tuned for it (not compared here: exercise 2). |
# | batches and GPUs | "on two Titan X 12Gb GPUs using a batch of 8 and 16 images for X,Y landmark heatmap regression and Z regression, respectively" (§2.3); how the batch was split: silent | The batch is global: `torchrun` on two GPUs gives 4 (2D) and 8 (Z) per GPU. `pick_batch_sizes` halves a batch that does not fit your GPU (§2–3 above). |
# | ImageNet weights | the detector "fine-tuned from a pretrained model on the large ImageNet [17] dataset"; the Z net "fine-tuned from a model previously trained on ImageNet [17]; this time we used a ResNet-200 network [12]" (§2.3) | torchvision's ResNet-152 for the detector. There is no ImageNet pre-activation ResNet-200 to download, so the Z net starts from scratch unless you bring one; from scratch, at the paper's $10^{-2}$, it blew up in its first steps, and $10^{-3}$ trains (§1 above). |
# | data | "The final model was trained on the training set (13672 images) and the validation set (4725 images), and tested on the test set" (§3, Dataset) | 3DFAW where you have it, scored on its validation folder (the protocol of Table 3). Without it, synthetic faces, or the public route: 300W-LP with depth from its 3DMM fits, tested on AFLW2000-3D, as the same authors did a year later for 3D-FAN (notebook 10). |

# %% [markdown]
# ## Exercises
#
# 1. **Is the resumed run the same run?** Train the quick run twice into two folders, once straight through
#    and once cut off and resumed as above, and compare the two `log.jsonl` files and final weights. Which
#    numbers agree exactly, and which only closely? Why can they differ at all on a CPU?
#    *Hint:* `read_log(dir)`; `load_run(dir)[0].state_dict()`; think about what is and is not in the
#    checkpoint (e.g. BatchNorm statistics are, the order of floating-point sums in multithreaded kernels
#    is not).
# 2. **RMSprop vs Adam on the quick preset.** Train the quick cascade with the paper's optimiser by passing a
#    modified schedule (`sched = get_schedule("quick"); sched.optimizer = "rmsprop"`,
#    `TrainConfig(schedule=sched.to_dict(), ...)`) and compare validation GTE with the Adam run above at the
#    same number of steps. Does RMSprop need a different learning rate?
#    *Hint:* `viz.training_curves` on both logs; try the quick rates and the same rates ÷ 3.
# 3. **Batch size and steps.** Suppose `pick_batch_sizes` gives batch 4 for the 2D stages and 8 for Z on
#    your GPU. How many optimiser steps does the paper schedule then take on 3DFAW, and what is the per-step
#    decay factor of the detection stage? What would you change if you kept the paper's effective batch
#    with gradient accumulation instead?
#    *Hint:* steps per epoch = ⌊13,672 / batch⌋; $\gamma = (\eta_\text{end}/\eta_\text{start})^{1/(T-1)}$.
# 4. **Where does the time go?** From this run's `log.jsonl`, compute seconds per training image for each
#    stage, and extrapolate the paper preset's cost using the GFLOP figures of §6 (quick preset:
#    `fa3d.models.get_preset("quick")`; count its FLOPs with `torch.utils.flop_counter.FlopCounterMode`).
#    *Hint:* each record has `seconds` and `images`.

# %% [markdown]
# ## References
#
# - Bulat, A. & Tzimiropoulos, G. (2016). *Two-stage convolutional part heatmap regression for the 1st 3D face
#   alignment in the wild (3DFAW) challenge.* ECCV 2016 Workshops.
#   [arXiv:1609.09545](https://arxiv.org/abs/1609.09545),
#   [doi:10.1007/978-3-319-48881-3_43](https://doi.org/10.1007/978-3-319-48881-3_43). §2.3: the training
#   schedule and its hyperparameters; Table 3: the validation numbers of §6.
# - He, K., Zhang, X., Ren, S. & Sun, J. (2016a). *Deep residual learning for image recognition.* CVPR.
#   [arXiv:1512.03385](https://arxiv.org/abs/1512.03385). ResNet-152, the paper preset's detection backbone.
# - He, K., Zhang, X., Ren, S. & Sun, J. (2016b). *Identity mappings in deep residual networks.* ECCV.
#   [arXiv:1603.05027](https://arxiv.org/abs/1603.05027). The pre-activation units of the hourglass and of the
#   ResNet-200 Z regressor.
# - Newell, A., Yang, K. & Deng, J. (2016). *Stacked hourglass networks for human pose estimation.* ECCV.
#   [arXiv:1603.06937](https://arxiv.org/abs/1603.06937). The regression subnet's hourglass.
# - Jeni, L. A., Tulyakov, S., Yin, L., Sebe, N. & Cohn, J. F. (2016). *The first 3D face alignment in the wild
#   (3DFAW) challenge.* ECCV 2016 Workshops.
#   [doi:10.1007/978-3-319-48881-3_35](https://doi.org/10.1007/978-3-319-48881-3_35). The paper's data,
#   request-only today.
# - Zhu, X., Lei, Z., Liu, X., Shi, H. & Li, S. Z. (2016). *Face alignment across large poses: a 3D solution*
#   (3DDFA, 300W-LP, AFLW2000-3D). CVPR. [arXiv:1511.07212](https://arxiv.org/abs/1511.07212). 300W-LP, its 3DMM
#   fits and AFLW2000-3D: the public route (notebook 10).
# - Bulat, A. & Tzimiropoulos, G. (2017). *How far are we from solving the 2D & 3D face alignment problem? (and
#   a dataset of 230,000 3D facial landmarks).* ICCV. [arXiv:1703.07332](https://arxiv.org/abs/1703.07332).
#   3D-FAN: the same authors' train-on-300W-LP, test-on-AFLW2000-3D protocol.
