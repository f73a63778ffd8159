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
# # 04 · The Z regressor (§2.2, Table 1, Fig. 2)
#
# With $x, y$ from the 2D stage (notebooks 02–03), the third subnetwork predicts the depth $z$ of every
# landmark. Its input is the RGB crop stacked with one Gaussian heatmap per landmark: the heatmaps say
# where the landmarks are, and so carry the head pose, and "guide the network where to look". It is a
# pre-activation ResNet-200 whose first convolution takes $3+N$ channels and whose classifier becomes a
# fully connected layer with $N$ outputs, trained with the L2 loss of eq. (1). This notebook generates the
# paper's Table 1 and draws its Fig. 2 from fa3d's paper preset, shows the $\mathcal{N}(0, 0.01)$ initialisation of the new
# layers, builds the quick Z net and checks it against `fa3d.models.ZRegressor`, explains why it trains on
# heatmaps from the ground truth **and** from the 2D stage, trains it on top of notebook 03's 2D stage,
# and measures the depth error.
#
# **You will learn** to
#
# - read the paper's Table 1 and Fig. 2 (blocks B1–B6 of a pre-activation ResNet-200) off fa3d's own network,
#   with every block's output shape and parameter count, and say where fa3d departs from Table 1 and why;
# - adapt an ImageNet ResNet to regression: a first convolution on $3+N$ channels, an FC layer to $N$
#   depths, both initialised from $\mathcal{N}(0, 0.01)$;
# - write the depth loss of eq. (1);
# - explain why the Z net is trained on heatmaps from the ground truth *and* from the 2D stage;
# - measure the depth error against a mean-shape baseline and split off the share caused by the 2D stage.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fa3d-course/fa3d/blob/main/notebooks/04_z_regressor.ipynb)
#
# **Quick mode:** about 35 s on a 2-core CPU, on its own on a fresh machine: the quick Z run of §7 comes
# ready-made with fa3d; `TRAIN = True` trains the Z net here instead, on top of notebook 03's 2D stage,
# about 8 minutes more.
#
# **Quick preset only.** This notebook builds, trains and shows the quick preset; there is no setting that
# switches it to the paper's networks. The paper's ResNet-200 appears where Table 1 is read off it and its
# cost is counted, without training; notebook 07 shows how to train it.

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
TRAIN = False                # True: train the quick run here (about 8 minutes on 2 CPU cores) instead of installing the ready-made one
NUM_EVAL = 200               # test faces for the error numbers (the run's num_valid: 200)
FACE_INDEX = 3               # the test face shown
LANDMARK = 30                # the landmark whose maps are shown (30: nose tip)
OUT_DIR = "outputs/notebooks"

# %%
import json
import os
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
from IPython.display import display
from matplotlib.figure import Figure
from torch.utils.flop_counter import FlopCounterMode

from fa3d.course import viz
from fa3d.data import SyntheticFaces, get_scheme
from fa3d.data.transforms import Augment3D, AugmentConfig, CenterCrop3D
from fa3d.runs import load_run, read_log
from fa3d.metrics import summarize
from fa3d.models import STAGES, ZRegressor, get_preset, normalize_images, num_parameters, z_loss
from fa3d.models.regression import PreActBottleneck
from fa3d.models.zregressor import PreActBasic
from fa3d.schedules import get_schedule
from fa3d.data.training import TrainCrops
from fa3d.models.losses import StageLoss

# The course's runs (`course.ensure_run`) always train the quick preset, so this notebook builds and trains
# "quick". The paper preset appears explicitly, as `get_preset("paper")`, where its shapes and FLOPs are
# counted (§2, Table 1 and Fig. 2); notebook 07 trains it.
PRESET = "quick"
preset = get_preset(PRESET)
cfg = preset.z                    # ZConfig: block, layers, width, inputs
S, N = preset.image_size, preset.num_landmarks
scheme = get_scheme("3dfaw66")
os.makedirs(OUT_DIR, exist_ok=True)
facts = {"preset": PRESET}        # what this notebook computed; written to OUT_DIR/04_z_regressor.json
print(preset.name, "preset:", cfg, f"| crops {S}×{S} px")


# %% [markdown]
# ## 1. Pre-activation ResNet blocks
#
# The Z net is a ResNet-200 "with preactivation modules" (He et al. 2016): BN and ReLU before each
# convolution, nothing after the sum, $y = x + F(x)$. The paper preset uses the **bottleneck** unit
# (1×1 → 3×3 → 1×1, the one the hourglass of notebook 03 uses); the quick preset the **basic** unit
# (two 3×3 convolutions), cheaper for a tiny network:

# %%
course.show_source(PreActBasic)

# %% [markdown]
# ## 2. Table 1, generated from the paper preset
#
# The paper specifies the network as blocks B1–B6 (Table 1, Torch notation: channels, kernel, stride).
# Below, the same table read off fa3d's paper-preset `ZRegressor`, built on the `meta` device (shapes, no
# memory) and run on a 384 px input to get each block's output size. One discrepancy: Table 1 prints
# **38** bottlenecks for B5; the standard pre-activation ResNet-200 (and its ImageNet weights) has
# 3-24-36-3 blocks, $66 \times 3 + 2 = 200$ layers, so fa3d uses 36. Table 1 does not list B1's batch
# norm and ReLU either: the residual units of a pre-activation ResNet start with their own BN-ReLU, but its
# first convolution is followed by one before the max-pool (He et al. 2016b; fb.resnet.torch's
# `preresnet.lua`, the Torch7 pre-activation ResNet of the time; the paper does not say whose ImageNet
# ResNet-200 it fine-tuned), so fa3d has it too and an ImageNet pre-activation ResNet-200 in this layout
# loads into it (`ZConfig.pretrained_path`).

# %%
paper = get_preset("paper")
with torch.device("meta"):
    paper_net = ZRegressor(paper.z, paper.num_landmarks)
    x = torch.zeros(1, 3 + paper.num_landmarks, paper.image_size, paper.image_size)
    shapes = {}
    for name in ("conv1", "maxpool", "layer1", "layer2", "layer3", "layer4"):
        getattr(paper_net, name).register_forward_hook(lambda m, i, o, name=name: shapes.__setitem__(name, o.shape))
    with FlopCounterMode(display=False) as flops:
        z_meta = paper_net(x[:, :3], x[:, 3:])


def unit_spec(unit) -> str:
    convs = [m for m in unit.modules() if isinstance(m, nn.Conv2d) and m is not unit.shortcut]
    return "[" + ", ".join(f"({c.out_channels},{c.kernel_size[0]}×{c.kernel_size[1]})" for c in convs) + "]"


rows = [("B1", "conv, BN, ReLU", f"({paper_net.conv1.out_channels},7×7,2×2), in: 3+N = {paper_net.conv1.in_channels} channels",
         shapes["conv1"], num_parameters(paper_net.conv1) + num_parameters(paper_net.bn1)),
        ("B2", "1× pooling", "(3×3, 2×2) max", shapes["maxpool"], 0)]
for b, name in zip(("B3", "B4", "B5", "B6"), ("layer1", "layer2", "layer3", "layer4")):
    layer = getattr(paper_net, name)
    rows.append((b, f"{len(layer)}× bottleneck", unit_spec(layer[0]), shapes[name], num_parameters(layer)))
rows.append(("", "BN-ReLU, avg pool, FC", f"{paper_net.fc.in_features} -> N = {paper_net.fc.out_features}",
             tuple(z_meta.shape), num_parameters(paper_net.fc) + num_parameters(paper_net.norm)))
print(f"{'block':6s}{'layers':22s}{'spec (channels, kernel, stride)':48s}{'output':>20s}{'params':>12s}")
for b, kind, spec, shape, p in rows:
    print(f"{b:6s}{kind:22s}{spec:48s}{str(tuple(shape[1:])):>20s}{p:>12,}")
depth = 2 + 3 * sum(len(getattr(paper_net, n)) for n in ("layer1", "layer2", "layer3", "layer4"))
print(f"\n{num_parameters(paper_net) / 1e6:.1f} M parameters, {depth} weight layers on the main path "
      f"(1 conv + 3 per bottleneck + 1 FC), {flops.get_total_flops() / 1e9:.1f} GFLOP per 384 px image")
facts.update(paper_params_millions=round(num_parameters(paper_net) / 1e6, 2), paper_depth=depth,
             paper_gflop=round(flops.get_total_flops() / 1e9, 1))

# %% [markdown]
# ### Fig. 2, drawn from the same network
#
# The paper's Fig. 2 draws the Z network as a chain of the blocks of Table 1: the $3+N$-channel input, B1–B6
# and a fully connected layer with $N$ outputs. `viz.z_network_figure` draws that chain from the model's own
# modules; the shapes under the boxes come from a forward pass of a `meta`-device twin at 384 px, so the
# figure cannot disagree with the code. How the paper's blocks map to `ZRegressor`:
#
# | paper | `ZRegressor` | what it is |
# |---|---|---|
# | input | `torch.cat([images, heatmaps], 1)` | the RGB crop and one Gaussian per landmark, $3+N$ channels |
# | B1 | `conv1`, `bn1`, ReLU | conv (64, 7×7, 2): $S \to S/2$ |
# | B2 | `maxpool` | max-pool (3×3, 2): $S/2 \to S/4$ |
# | B3 | `layer1` | bottleneck units (64, 64, 256), stride 1 |
# | B4 | `layer2` | bottleneck units (128, 128, 512); the first has stride 2: $S/8$ |
# | B5 | `layer3` | bottleneck units (256, 256, 1024), $S/16$ (36 units in fa3d, 38 in Table 1) |
# | B6 | `layer4` | bottleneck units (512, 512, 2048), $S/32$ |
# | FC | `norm`, ReLU, mean over $(H, W)$, `fc` | the closing BN-ReLU of a pre-activation net, global average pooling and Table 1's "1× fully connected layer (66)" |
#
# The unit counts in the figure are read from the stages (`len(layer1)`, …), not typed in.

# %%
viz.z_network_figure(paper_net, paper.image_size)

# %% [markdown]
# ## 3. The new layers: 3+N input channels, N outputs, initialised from $\mathcal{N}(0, 0.01)$
#
# Two layers differ from an ImageNet ResNet-200: the first convolution takes $3+N$ channels (69 for 66
# landmarks) instead of 3, and the classifier becomes `nn.Linear(2048, N)`. §2.3: "the newly introduced
# filters in the first convolutional layer were initialized from a Gaussian distribution with std = 0.01.
# The same applied for the fully connected layer". (fa3d has no ImageNet pre-activation ResNet-200 to
# download; `ZConfig.pretrained_path` loads one you bring, and then only these layers keep this init.) The
# other convolutions get He (Kaiming) initialisation, whose std depends on the layer's size:

# %%
torch.manual_seed(0)
quick_net = ZRegressor(cfg, N)
stats = {"conv1 (new, 3+N in)": quick_net.conv1.weight.detach(), "fc (new, N out)": quick_net.fc.weight.detach(),
         "layer2.0.conv1 (He init)": quick_net.layer2[0].conv1.weight.detach()}
for name, wgt in stats.items():
    print(f"{name:26s} shape {str(tuple(wgt.shape)):18s} mean {wgt.mean():+.5f}  std {wgt.std():.5f}")
facts.update(conv1_init_std=float(stats["conv1 (new, 3+N in)"].std()), fc_init_std=float(stats["fc (new, N out)"].std()))
with torch.no_grad():
    z0 = quick_net.eval()(torch.randn(8, 3, S, S), torch.rand(8, N, S, S))
z_true = CenterCrop3D(S)(SyntheticFaces(1, image_size=2 * S, seed=0)[0])["landmarks"][:, 2]
print(f"before training the predicted z are tiny: std {z0.std():.4f} px (a face's true z in a {S} px crop: "
      f"std {z_true.std():.1f} px)")

fig = Figure(figsize=(10, 2.8), layout="constrained")
for ax, (name, wgt) in zip(fig.subplots(1, 3), stats.items()):
    ax.hist(wgt.flatten().numpy(), bins=60, color="#0072B2")
    ax.set_title(f"{name}\nstd {wgt.std():.4f}", fontsize=9)
fig

# %% [markdown]
# ### Your turn: what the first convolution sees
#
# §2.2: the Z net's input is the RGB crop **stacked** with the $N$ heatmaps. Write
# `z_input_exercise(images, heatmaps, inputs)`: `images` is `(B, 3, S, S)` (normalised RGB), `heatmaps` is
# `(B, N, S, S)` (one Gaussian per landmark), and `inputs` is one of `ZConfig`'s choices. Return the tensor
# the first convolution gets: `(B, 3+N, S, S)` with the RGB channels first for `"rgb+heatmaps"` (the order
# matters: channel $c$ of the input meets the filters `conv1.weight[:, c]`), the images alone for `"rgb"`
# and the heatmaps alone for `"heatmaps"` (notebook 08's ablations). The check captures what
# `ZRegressor`'s `conv1` receives in each case and compares.

# %% nbgrader={"grade": false, "grade_id": "z_input", "locked": false, "schema_version": 3, "solution": true, "task": false}
def z_input_exercise(images, heatmaps, inputs="rgb+heatmaps"):
    """The Z net's first-conv input: (B, 3, S, S) images and (B, N, S, S) heatmaps -> (B, C_in, S, S)."""
    ### BEGIN SOLUTION
    if inputs == "rgb":
        return images
    if inputs == "heatmaps":
        return heatmaps
    return torch.cat([images, heatmaps], dim=1)                    # (B, 3+N, S, S): RGB first
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "z_input_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from fa3d.course import exercises    # the checks of the course's code exercises
facts["exercise_z_input_max_diff"] = exercises.check_z_input(z_input_exercise)

# %% [markdown]
# ## 4. The quick Z net, built and checked against `ZRegressor`
#
# Same layout as Table 1 at a small scale: conv 7×7/2 on $3+N$ channels with its BN-ReLU (B1), max-pool
# 3×3/2 (B2), four
# stages of pre-activation units (one basic unit each, widths 32-64-128-256, stride 2 from the second
# stage: B3–B6), a closing BN-ReLU (pre-activation nets end with one), global average pooling and the FC
# to $N$. We build it from the library's `PreActBasic` unit with the library's attribute names.

# %%
def preact_stage(in_ch: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    return nn.Sequential(*[PreActBasic(in_ch if i == 0 else width, width, stride if i == 0 else 1)
                           for i in range(blocks)])


class MyZNet(nn.Module):
    def __init__(self, N: int, w: int, layers):
        super().__init__()
        self.conv1 = nn.Conv2d(3 + N, w, 7, stride=2, padding=3, bias=False)     # B1
        self.bn1 = nn.BatchNorm2d(w)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)                       # B2
        self.layer1 = preact_stage(w, w, layers[0], 1)                            # B3
        self.layer2 = preact_stage(w, 2 * w, layers[1], 2)                        # B4
        self.layer3 = preact_stage(2 * w, 4 * w, layers[2], 2)                    # B5
        self.layer4 = preact_stage(4 * w, 8 * w, layers[3], 2)                    # B6
        self.norm = nn.BatchNorm2d(8 * w)
        self.fc = nn.Linear(8 * w, N)

    def forward(self, images, heatmaps):
        x = torch.relu(self.bn1(self.conv1(torch.cat([images, heatmaps], 1))))   # (B, w, S/2, S/2)
        x = self.maxpool(x)                                                       # (B, w, S/4, S/4)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))                # (B, 8w, S/32, S/32)
        return self.fc(torch.relu(self.norm(x)).mean(dim=(2, 3)))                # (B, N)


assert cfg.block == "basic", "this step-by-step build follows the quick preset's basic units"
mine = MyZNet(N, cfg.width, cfg.layers)
mine.load_state_dict(quick_net.state_dict())           # strict: same names and shapes
mine.eval()
quick_net.eval()
img = normalize_images(SyntheticFaces(2, image_size=S, seed=5)[0]["image"][None])
heat = torch.rand(1, N, S, S)
with torch.no_grad():
    out_mine, out_lib = mine(img, heat), quick_net(img, heat)
diff = float((out_mine - out_lib).abs().max())
print(f"parameters: ours {num_parameters(mine):,} | ZRegressor {num_parameters(quick_net):,}; output {tuple(out_lib.shape)}; "
      f"max |difference| {diff:.1e}")
assert num_parameters(mine) == num_parameters(quick_net) and out_mine.shape == out_lib.shape and diff < 1e-5
facts.update(quick_params=num_parameters(quick_net), built_vs_library_max_diff=diff)

# %% [markdown]
# ## 5. The loss, eq. (1)
#
# $$l_2 = \frac{1}{N}\sum_{n=1}^{N}(\tilde z_n - z_n)^2,$$
#
# with $\tilde z_n$, $z_n$ the predicted and true depths **in pixels** of the crop (fa3d: larger $z$ =
# closer, zero mean per face; augmentation scales $z$ with the crop, notebook 01 §6). `z_loss` averages
# over the batch too; training masks landmarks without a ground-truth $z$.

# %%
zt = torch.randn(4, N, generator=torch.Generator().manual_seed(0)) * 5
zp = zt + torch.randn(4, N, generator=torch.Generator().manual_seed(1))
print(f"by eq. (1): {((zp - zt) ** 2).mean(1).mean():.6f} | z_loss: {z_loss(zp, zt):.6f}")

# %% [markdown]
# ### Your turn: eq. (1) with missing depths
#
# Write `z_loss_exercise(z_pred, z_true)`: both `(B, N)` in crop pixels; return a 0-d tensor, the mean of
# $(\tilde z_n - z_n)^2$ over the landmarks and the batch. 2D-only training data (300W-LP without its 3DMM
# fits) has no $z$: those entries of `z_true` are NaN, and they must be **left out** of the mean (not
# counted as zero errors); with no known $z$ at all the loss is 0. One trap: computing the squared error with
# the NaN and masking it afterwards gives the right value but a NaN *gradient* (the mask multiplies a NaN
# by 0), so replace the NaN first. The check compares the value and the gradient with `z_loss`.

# %% nbgrader={"grade": false, "grade_id": "z_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def z_loss_exercise(z_pred, z_true):
    """Eq. (1): mean over the known (finite) z_true of (z_pred - z_true)^2, both (B, N); 0 if none is known."""
    ### BEGIN SOLUTION
    known = torch.isfinite(z_true)
    diff = torch.where(known, z_pred - z_true.nan_to_num(0.0), torch.zeros_like(z_pred))
    return diff.square().sum() / known.sum().clamp(min=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "z_loss_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from fa3d.course import exercises
facts["exercise_z_loss_max_diff"] = exercises.check_z_loss(z_loss_exercise)

# %% [markdown]
# ## 6. Heatmaps from the ground truth *and* from the 2D stage
#
# §2.3: "we used as input to the Z regression network both the heatmaps generated from the ground truth
# landmark locations and the ones estimated by the first task". Ground-truth heatmaps give the cleanest
# signal; the 2D stage's heatmaps are what the Z net gets at test time, with their errors, so training on
# them teaches it not to trust a misplaced point blindly. fa3d tosses a coin per training sample: with
# probability `z_gt_heatmap_prob` (0.5 in both presets) the Gaussians are rendered at the true $x, y$,
# otherwise at the $x, y$ decoded from the frozen 2D stage. In both cases the input is Gaussians of std
# `heatmap_sigma` rendered at points, so training and test inputs look alike.

# %%
for name in ("paper", "quick"):
    s = get_schedule(name)
    print(f"{name:6s} z stage: {s.z}, optimiser {s.optimizer}, z_gt_heatmap_prob {s.z_gt_heatmap_prob}")
course.show_source(StageLoss.forward)

# %% [markdown]
# The coin is part of each training sample (`TrainCrops`), seeded by (seed, stage, epoch, index) like the
# augmentation, so a resumed run sees the same coins. Over an epoch of the quick run:

# %%
small = SyntheticFaces(200, image_size=2 * S, seed=0)
crops_train = TrainCrops(small, Augment3D(S, AugmentConfig(), scheme), seed=0,
                         z_gt_heatmap_prob=get_schedule(PRESET).z_gt_heatmap_prob)
crops_train.set_epoch(STAGES.index("z"), 0)
coins = [crops_train[i]["z_gt_heatmap"] for i in range(len(small))]
print(f"{sum(coins)} of {len(coins)} samples use ground-truth heatmaps ({100 * np.mean(coins):.0f} %); "
      f"the first 16: {''.join('G' if c else 'P' for c in coins[:16])} (G: ground truth, P: predicted)")
facts["gt_coin_fraction_epoch0"] = float(np.mean(coins))

# %% [markdown]
# ## 7. Training the Z net on top of notebook 03's 2D stage
#
# `course.ensure_run("z", OUT_DIR, train=TRAIN)` gives the quick run of the Z stage only, the 2D subnets of
# notebook 03's run frozen: installed ready-made by default, or trained here with `TRAIN = True` (about
# 8 minutes on 2 CPU cores). The paper: ~100 epochs, learning rate
# $10^{-2} \to 2.5\times10^{-4}$, batch 16, from ImageNet weights; the quick run: a few epochs of Adam.
# The validation loss is measured on predicted heatmaps only (what the net sees at test time).

# %%
RUN_DIR = course.ensure_run("z", OUT_DIR, train=TRAIN)
log = read_log(RUN_DIR)
print(f"{len(log)} epochs, {sum(r['seconds'] for r in log):.0f} s of training; last epoch: valid loss "
      f"{log[-1]['valid_loss']:.3f} px², GTE xyz {log[-1]['valid_gte_xyz']:.2f} %")
viz.training_curves(log, title="quick Z stage (2D subnets frozen)")

# %% [markdown]
# ## 8. The whole cascade on a test face
#
# Image, detection maps, regression heatmaps and the Gaussians rendered at the regressed points that the Z
# net sees next to the RGB image; below, one landmark with its predicted $z$.

# %%
cascade, ckpt = load_run(RUN_DIR)
crops = course.test_crops(RUN_DIR, NUM_EVAL)
gt = crops["landmarks"]
viz.stage_grid(cascade, crops["image"][FACE_INDEX], scheme, landmark=LANDMARK, gt=gt[FACE_INDEX])

# %% [markdown]
# ## 9. How good is the depth?
#
# GTE (eq. 2 of the paper, percent of the 3D interocular distance) on the test faces, for the full
# cascade and the mean-shape baseline, in $z$ alone and in $x, y, z$. The scatter compares predicted and
# true $z$ of every landmark of every face (both zero-mean per face, in crop pixels). As a check of §6's
# argument, the same Z net is also fed Gaussians at the **true** $x, y$: the gap is the depth error that the
# 2D stage's mistakes cost.

# %%
score = course.score_stage(cascade, crops, "z", ckpt["mean_shape"])
pred = score["pred"]
model, base = score["model"], score["baseline"]
with torch.no_grad():   # the Z input rendered at the true x, y instead of the decoded ones (z centred)
    z_oracle = cascade(crops["image"], z_xy=gt)["landmarks"][..., 2]
oracle = summarize(torch.cat([gt[..., :2], z_oracle[..., None]], -1), gt)
print(f"{'':28s}{'GTE xy':>9s}{'GTE z':>9s}{'GTE xyz':>9s}{'CVGTCE':>9s}")
for name, m in (("cascade", model), ("mean shape", base), ("Z net on true x, y", oracle)):
    print(f"{name:28s}{m['gte_xy']:9.2f}{m['gte_z']:9.2f}{m['gte_xyz']:9.2f}{m['cvgtce']:9.2f}")
r = float(np.corrcoef(pred[..., 2].flatten(), gt[..., 2].flatten())[0, 1])
print(f"correlation of predicted and true z over all points: {r:.3f}")
print(f"GTE z: cascade {model['gte_z']:.2f} % vs mean shape {base['gte_z']:.2f} % "
      f"({model['gte_z'] / base['gte_z']:.2f}×); with true x, y as input: {oracle['gte_z']:.2f} %")
facts.update(model_gte=model["gte_xyz"], baseline_gte=base["gte_xyz"], gte_z=model["gte_z"],
             baseline_gte_z=base["gte_z"], model_gte_xy=model["gte_xy"], model_cvgtce=model["cvgtce"],
             gte_z_true_xy_input=oracle["gte_z"], z_correlation=round(r, 4), num_eval=len(gt))

fig = Figure(figsize=(10, 4), layout="constrained")
ax1, ax2 = fig.subplots(1, 2)
lim = float(gt[..., 2].abs().max()) * 1.1
ax1.scatter(gt[..., 2].flatten(), pred[..., 2].flatten(), s=2, alpha=0.2)
ax1.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
ax1.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="true z (crop px)", ylabel="predicted z (crop px)",
        title=f"every landmark of {len(gt)} faces (r = {r:.2f})")
face_z = gt[FACE_INDEX, :, 2]
order = torch.argsort(face_z)
ax2.plot(face_z[order], "o-", ms=3, label="true")
ax2.plot(pred[FACE_INDEX, order, 2], "s", ms=3, label="cascade")
ax2.plot(ckpt["mean_shape"][order, 2], "x", ms=3, label="mean shape")
ax2.set(xlabel="landmarks of one face, sorted by true z", ylabel="z (crop px)", title=f"test face {FACE_INDEX}")
ax2.legend(fontsize=8)
fig

# %%
base_pts = ckpt["mean_shape"].expand_as(gt)
viz.ced_figure({"cascade": (pred, gt), "Z on true x, y": (torch.cat([gt[..., :2], z_oracle[..., None]], -1), gt),
                "mean shape": (base_pts, gt)}, axes=("z", "xyz"), max_error=0.7, panel_size=3.6)

# %% [markdown]
# The Z net beats the mean shape, whose depth profile is the same for every face whatever its pose: the
# heatmaps and the image tell the network how the head is turned. The difference between the cascade and
# "Z on true x, y" is the share of the depth error that comes from the 2D stage's mistakes. A 2D stage as
# accurate as the paper's should leave less of it, but fa3d has not measured that (it needs the paper preset
# trained, notebook 07). Notebook 08 tests the paper's claims about the input: RGB alone vs RGB + heatmaps,
# and training on ground-truth vs predicted heatmaps.

# %%
course.save_facts(facts, OUT_DIR, "04_z_regressor")

# %% [markdown]
# ## Summary
#
# - The paper's Z network is a pre-activation ResNet-200 (blocks B1–B6 of Table 1 and Fig. 2, both generated
#   above from fa3d's paper preset, with its parameters and GFLOP per 384 px image printed in §2); fa3d uses
#   the standard 3-24-36-3 units where Table 1 prints 38 for B5.
# - Its only new layers, the $3+N$-channel first convolution and the FC to $N$, start from $\mathcal{N}(0, 0.01)$,
#   so the first predictions are nearly zero (§3).
# - It is trained with eq. (1) on heatmaps rendered at the true $x, y$ or at the 2D stage's, a coin per sample.
# - On the test faces the quick cascade's GTE z beats the mean shape's, and feeding Gaussians at the true
#   $x, y$ shows the share of the depth error that the 2D stage's mistakes cost (all printed in §9).
# - Next: notebook 05 evaluates the whole cascade with GTE and CVGTCE; notebook 08 tests the input choices.

# %% [markdown]
# ## The paper and fa3d
#
# What the paper says about the Z regressor, where its Table 1 and its text disagree, and what fa3d chose
# where it says nothing.
#
# | what | the paper says (quoted, with its section) | fa3d chooses (and why) |
# |---|---|---|
# | B5's depth | Table 1 prints "38x bottleneck modules [(256,1× 1), (256,3× 3), (1024,1× 1)]", but the text says "based on the latest ResNet-200 network with preactivation modules [12]" (§2.2) | 36, the standard pre-activation ResNet-200 (3-24-36-3 units, $66 \times 3 + 2 = 200$ layers), so that its ImageNet weights fit. 38 would make 206 layers (§2 above). |
# | B1 | Table 1: "1x conv layer (64,7× 7,2× 2)", with no batch norm or ReLU | The conv followed by BN-ReLU before the max-pool, as in the pre-activation ResNet (§2 above): only its residual units start with their own BN-ReLU. |
# | the input | "the stacked regression heatmaps produced by the regression subnetwork alongside the input RGB image" (§2.2); "We encode each landmark as a heatmap using a 2D Gaussian with std = 6 pixels centered at the X,Y coordinates of that landmark." (§2.2) | fa3d's reading of the two sentences: Gaussians of the preset's width rendered at points, at the decoded $x, y$ at test time, not the regression net's raw maps. Training and test inputs then look alike, whatever the regression maps look like. The paper preset and this notebook's quick runs feed the whole crop, as the paper does; the shipped model's Z net sees its 64 px crop at 32 px (`ZConfig.input_size`), since depth needs less detail (docs/training.md). |
# | the new layers | "All newly introduced filters were initialized randomly using a Gaussian distribution." (§2.2), "with std = 0.01. The same applied for the fully connected layer" (§2.3) | $\mathcal{N}(0, 0.01)$ for the first convolution and the FC weights (§3 above); the FC's bias, which the paper does not mention, starts at zero. |
# | ImageNet weights | "we again fine-tuned from a model previously trained on ImageNet [17]; this time we used a ResNet-200 network [12]" (§2.3) | torchvision has no pre-activation ResNet-200, so fa3d cannot download one: `ZConfig.pretrained_path` loads one you bring; without it, the whole net starts from random weights. The paper preset then starts every residual unit as the identity (its last convolution at zero, `ZConfig.zero_init_residual`), fa3d's choice for deep nets trained from scratch (it let the ResNet-152 learn on a CPU). The paper's $10^{-2}$ still blew this ResNet-200 up in its first steps; $10^{-3}$ trains it (docs/speed.md, notebook 07 §1). |
# | GT and predicted heatmaps | "we used as input to the Z regression network both the heatmaps generated from the ground truth landmark locations and the ones estimated by the first task" (§2.3); in what proportion: silent | A coin per training sample, ground truth with probability 0.5 (`z_gt_heatmap_prob`), fa3d's choice (§6 above); notebook 08 tries 0 and 1. |
# | the loss | eq. (1), "where z̃n and zn are the predicted and ground truth Z values (in pixels) for the nth landmark" (§2.2); the origin and direction of $z$: silent | $z$ in crop pixels, larger = closer, zero mean per face; landmarks without a true $z$ (2D-only data) are left out of the mean (§5 above). |

# %% [markdown]
# ## Exercises
#
# 1. **Which stage is B5?** Count the bottleneck units, the convolutions and the parameters of each stage
#    of the paper preset's Z net, and the parameters Table 1's 38 blocks would add. Where do most of the
#    63 M parameters live? *Hint:* `len(paper_net.layer3)`, `num_parameters(paper_net.layer3[1])`.
# 2. **Without the heatmaps.** Feed the trained Z net *zero* heatmaps (the RGB image alone) on the
#    test crops and measure GTE z. Why is this unfair to an RGB-only network, and how would you make
#    it fair? *Hint:* `cascade.z(normalize_images(crops["image"]), torch.zeros(V, N, S, S))`; notebook 08
#    trains the fair version.
# 3. **The initialisation.** Re-initialise `conv1` and `fc` of a fresh quick `ZRegressor` with He
#    initialisation (`nn.init.kaiming_normal_`) and compare the std of its outputs on random inputs with
#    the $\mathcal{N}(0, 0.01)$ version. What would a large initial output do to the first steps of an L2
#    loss in pixels? *Hint:* the targets' std is a few pixels; the loss gradient is $2(\tilde z - z)/N$.
# 4. **Ground truth only.** How often does the 2D stage misplace a landmark by more than 2 px on the
#    test crops? Train a short Z run with `schedule` overridden to `z_gt_heatmap_prob=1.0`
#    (`TrainConfig(..., stages=("z",), init_from=<03's run>, schedule=...)`, `epochs_scale=0.5` for both
#    runs) and compare GTE z on predicted heatmaps. *Hint:* `get_schedule("quick")`, `dataclasses.replace`,
#    `.to_dict()`.

# %% [markdown]
# ## References
#
# - Bulat, A. & Tzimiropoulos, G. (2016). *Two-stage convolutional part heatmap regression for the 1st 3D face
#   alignment in the wild (3DFAW) challenge.* ECCV 2016 Workshops.
#   [arXiv:1609.09545](https://arxiv.org/abs/1609.09545),
#   [doi:10.1007/978-3-319-48881-3_43](https://doi.org/10.1007/978-3-319-48881-3_43). §2.2: the Z regressor,
#   Fig. 2, Table 1 and eq. (1); §2.3: its initialisation and inputs.
# - He, K., Zhang, X., Ren, S. & Sun, J. (2016a). *Deep residual learning for image recognition.* CVPR.
#   [arXiv:1512.03385](https://arxiv.org/abs/1512.03385). The ResNet family and its bottleneck unit.
# - He, K., Zhang, X., Ren, S. & Sun, J. (2016b). *Identity mappings in deep residual networks.* ECCV.
#   [arXiv:1603.05027](https://arxiv.org/abs/1603.05027). The pre-activation ResNet-200 that the Z network is.
