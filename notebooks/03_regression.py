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
# # 03 · The landmark regression subnetwork (§2.1)
#
# The detector of notebook 02 says *roughly* where each landmark is: a coarse, flat-topped disk on a map at a
# quarter of the crop's resolution. The second subnetwork refines it. Stacked with the image, the detection
# maps go into an **hourglass**: pre-activation bottleneck units, pooling down several times (four in fa3d's
# paper preset) and learned deconvolutions back up, so that every output pixel sees the whole face and the
# layout of all the other landmarks (the paper: it "plays the role of a graphical model"). A last
# deconvolution brings the maps to the crop's resolution, and a pixel-wise L2 loss makes them Gaussians whose
# peaks decode to a fraction of a pixel. This notebook builds the pieces and checks them against
# `fa3d.models.RegressionNet`, explains the training schedule (regression on a frozen detector, then both
# jointly), trains the quick model on top of notebook 02's detector, and measures the paper's claim:
# regression refines detection.
#
# **You will learn** to
#
# - write a pre-activation bottleneck unit and say why BN-ReLU goes before each convolution;
# - build an hourglass (pooling down, learned deconvolutions up, skip branches) and explain why every output
#   pixel sees the whole face;
# - assemble the regression subnet on top of the detection maps and the image, and check it against
#   `RegressionNet`;
# - train with a pixel-wise L2 loss on Gaussians, first on a frozen detector, then both subnets jointly;
# - measure whether, and on how many faces, regression refines detection.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fa3d-course/fa3d/blob/main/notebooks/03_regression.ipynb)
#
# **Quick mode:** about 20 s on a 2-core CPU, on its own on a fresh machine: the quick regression run of §6
# comes ready-made with fa3d; `TRAIN = True` trains the regression and joint stages here instead, on top of
# notebook 02's detector, about 3.5 minutes more.
#
# **Quick preset only.** This notebook builds, trains and shows the quick preset; there is no setting that
# switches it to the paper's networks. The paper-sized hourglass appears where its shapes and cost are
# counted, without training; notebook 07 shows how to train it.

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
TRAIN = False                # True: train the quick run here (about 4 minutes on 2 CPU cores) instead of installing the ready-made one
NUM_EVAL = 200               # test faces for the error numbers (the run's num_valid: 200)
FACE_INDEX = 3               # the test face shown
LANDMARK = 36                # the landmark whose maps are shown (36: subject's right outer eye corner)
OUT_DIR = "outputs/notebooks"

# %%
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from IPython.display import display
from matplotlib.figure import Figure
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import resnet as tv_resnet

from fa3d.course import viz
from fa3d.data import SyntheticFaces, get_scheme
from fa3d.data.transforms import CenterCrop3D
from fa3d.runs import load_run, read_log
from fa3d.heatmaps import decode_heatmaps, gaussian_heatmaps, resize_points
from fa3d.metrics import gte
from fa3d.models import Cascade, DetectionNet, RegressionNet, get_preset, normalize_images, num_parameters, regression_loss
from fa3d.models.detection import BilinearUpsample
from fa3d.models.regression import Hourglass, PreActBottleneck, residuals
from fa3d.schedules import StageSchedule, TrainSchedule, get_schedule
from fa3d.models.losses import StageLoss

# The course's runs (`course.ensure_run`) always train the quick preset, so this notebook builds and trains
# "quick". The paper preset appears explicitly, as `get_preset("paper")`, where its shapes and FLOPs are
# counted (§3); notebook 07 trains it.
PRESET = "quick"
preset = get_preset(PRESET)
cfg = preset.regression           # RegressionConfig: features, depth, num_blocks
S, N, C = preset.image_size, preset.num_landmarks, cfg.features
scheme = get_scheme("3dfaw66")
os.makedirs(OUT_DIR, exist_ok=True)
facts = {"preset": PRESET}        # what this notebook computed; written to OUT_DIR/03_regression.json
print(preset.name, "preset:", cfg, f"| crops {S}×{S} px, hourglass input {S // 4}×{S // 4}")


# %% [markdown]
# ## 1. The pre-activation bottleneck unit
#
# The hourglass is made of residual units in the *pre-activation* form of He et al. (2016, "Identity
# mappings in deep residual networks"): batch norm and ReLU come **before** each convolution, and nothing
# follows the addition,
#
# $$y = x + F(x), \qquad F = \text{conv}_{1\times1}\circ\text{BN-ReLU}\circ\text{conv}_{3\times3}\circ
#   \text{BN-ReLU}\circ\text{conv}_{1\times1}\circ\text{BN-ReLU},$$
#
# with the bottleneck $C \to C/2 \to C/2 \to C$ inside the hourglass. The identity path is then a clean
# sum from the first unit to the last (torchvision's post-activation `Bottleneck` puts a ReLU after every
# addition). A strided 1×1 projection of the pre-activated input replaces the identity when the shape changes.

# %% tags=["nbval-check-output"]
unit = PreActBottleneck(C, C // 2, C).requires_grad_(False)
x = torch.randn(2, C, 16, 16)
print(f"PreActBottleneck({C}, {C // 2}, {C}): {num_parameters(unit):,} parameters, {tuple(x.shape)} -> {tuple(unit(x).shape)}")
nn.init.zeros_(unit.conv3.weight)          # F(x) = 0: the unit is exactly the identity
ident = float((unit(x) - x).abs().max())
post = tv_resnet.Bottleneck(C, C // 4).requires_grad_(False)
nn.init.zeros_(post.bn3.weight)            # the same trick on torchvision's post-activation unit
post_diff = float((post(x) - x).abs().max())
print(f"last conv zeroed: pre-activation |y − x| max = {ident:.1e}; post-activation |y − x| max = {post_diff:.2f} "
      "(the ReLU after the sum clips the negative inputs)")
facts["preact_identity_max_error"] = ident

# %% [markdown]
# ### Your turn: the unit's forward pass
#
# Write the unit's forward from the equation, with its layers. `preact_forward_exercise(unit, x)` takes a
# `PreActBottleneck` (its layers are `unit.bn1`, `unit.conv1`, `unit.bn2`, `unit.conv2`, `unit.bn3`,
# `unit.conv3`, and `unit.shortcut`, a strided 1×1 convolution or `None` for the identity) and an input
# `(B, in_ch, H, W)`, and returns `(B, out_ch, H/stride, W/stride)`: BN-ReLU before each convolution, the skip
# added at the end, nothing after the sum; where there is a projection, it takes the **pre-activated** input.
# The check compares with `unit(x)` in eval mode, with random weights and batch-norm statistics, for an
# identity unit and for a strided unit that changes the channels.

# %% nbgrader={"grade": false, "grade_id": "preact_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def preact_forward_exercise(unit, x):
    """y = x + F(x) of a PreActBottleneck, from its layers (bn1, conv1, bn2, conv2, bn3, conv3, shortcut)."""
    ### BEGIN SOLUTION
    out = F.relu(unit.bn1(x))                                       # pre-activation
    skip = x if unit.shortcut is None else unit.shortcut(out)       # a projection sees the pre-activated input
    out = unit.conv1(out)
    out = unit.conv2(F.relu(unit.bn2(out)))
    out = unit.conv3(F.relu(unit.bn3(out)))
    return out + skip                                               # nothing after the sum
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "preact_forward_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from fa3d.course import exercises    # the checks of the course's code exercises
facts["exercise_preact_forward_max_diff"] = exercises.check_preact_forward(preact_forward_exercise)

# %% [markdown]
# Compare your answer with fa3d's `PreActBottleneck`, whose layers you used:

# %%
course.show_source(PreActBottleneck)

# %% [markdown]
# ## 2. The hourglass: pooling down, learned deconvolutions up
#
# One hourglass level, recursively: a skip branch `up1` at the current resolution, and a low branch that
# max-pools by 2, runs residual units, the next (smaller) hourglass, more units, and comes back up by 2.
# The two branches are summed:
#
# $$\text{HG}_d(x) = \text{up1}(x) + \text{up2}\Big(\text{low3}\big(\text{HG}_{d-1}(\text{low1}(\text{pool}(x)))\big)\Big),
#   \qquad \text{HG}_0 = \text{residual units}.$$
#
# Two changes from Newell et al.'s original follow the paper (and Bulat & Tzimiropoulos 2016): `up2` is a
# **learned deconvolution** (×2, initialised to bilinear, notebook 02 §4) instead of nearest-neighbour
# upsampling, and the whole network ends with another deconvolution back to the input resolution. The
# paper does not say how many times its hourglass pools. fa3d's paper preset pools 4 times (96 → 48 → 24 →
# 12 → 6 at 384 px crops), as Newell et al.'s hourglass does; the quick one 3 times (16 → 8 → 4 → 2: a fourth
# pooling would leave 1×1 maps).

# %% [markdown]
# ### Your turn: one hourglass level's forward
#
# Write $\text{HG}_d$ from the equation. `hourglass_forward_exercise(level, x)` takes an `Hourglass` (fa3d's,
# with the modules named as in the equation: `level.up1`, `level.pool`, `level.low1`, `level.low2`,
# `level.low3`, `level.up2`) and a `(B, C, H, W)` tensor, and returns $\text{HG}_d(x)$, `(B, C, H, W)`.
# `level.low2` is $\text{HG}_{d-1}$, another `Hourglass`, except at the bottom, where it is plain residual
# units: recurse with your own function on an `Hourglass` (calling `level.low2(...)` on one would run
# fa3d's forward, which the check refuses), and call the residual units. The check runs hourglasses of depth
# 1, 3 and 2 (on non-square maps) with random statistics and learned, non-bilinear `up2` filters.

# %% nbgrader={"grade": false, "grade_id": "hourglass_forward", "locked": false, "schema_version": 3, "solution": true, "task": false}
def hourglass_forward_exercise(level, x):
    """HG_d(x) = up1(x) + up2(low3(HG_{d-1}(low1(pool(x))))), from the level's modules: (B, C, H, W) -> same."""
    ### BEGIN SOLUTION
    low = level.low1(level.pool(x))                                  # (B, C, H/2, W/2)
    if isinstance(level.low2, Hourglass):
        low = hourglass_forward_exercise(level.low2, low)            # HG_{d-1}, recursively
    else:
        low = level.low2(low)                                        # HG_0: residual units
    return level.up1(x) + level.up2(level.low3(low))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "hourglass_forward_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from fa3d.course import exercises
facts["exercise_hourglass_forward_max_diff"] = exercises.check_hourglass_forward(hourglass_forward_exercise)

# %% [markdown]
# Compare your answer with the module below: the same level with the library's attribute names, whose
# weights load into fa3d's `Hourglass` unchanged.

# %%
class MyHourglass(nn.Module):
    def __init__(self, depth: int, channels: int, num_blocks: int = 1):
        super().__init__()
        self.up1 = residuals(channels, num_blocks)
        self.pool = nn.MaxPool2d(2)
        self.low1 = residuals(channels, num_blocks)
        self.low2 = MyHourglass(depth - 1, channels, num_blocks) if depth > 1 else residuals(channels, num_blocks)
        self.low3 = residuals(channels, num_blocks)
        self.up2 = BilinearUpsample(channels, factor=2)

    def forward(self, x):
        return self.up1(x) + self.up2(self.low3(self.low2(self.low1(self.pool(x)))))


mine_hg, lib_hg = MyHourglass(cfg.depth, C), Hourglass(cfg.depth, C)
mine_hg.load_state_dict(lib_hg.state_dict())            # strict: same names and shapes
mine_hg.eval()
lib_hg.eval()
x = torch.randn(2, C, S // 4, S // 4)
sizes = []
lib_hg.pool.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[-2:])))
sub = lib_hg.low2
while isinstance(sub, Hourglass):
    sub.pool.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[-2:])))
    sub = sub.low2
with torch.no_grad():
    hg_diff = float((mine_hg(x) - lib_hg(x)).abs().max())
print(f"hourglass depth {cfg.depth}, {C} channels: ours {num_parameters(mine_hg):,} | library {num_parameters(lib_hg):,} "
      f"parameters; max |difference| {hg_diff:.1e}")
print(f"resolutions: input {tuple(x.shape[-2:])} -> pooled " + " -> ".join(str(s) for s in sizes)
      + f" -> back to {tuple(lib_hg(x).shape[-2:])}")
facts["hourglass_built_vs_library_max_diff"] = hg_diff

# %% [markdown]
# ### Learned deconvolution vs nearest-neighbour upsampling
#
# At initialisation the ×2 deconvolution is bilinear: a coarse map comes back smooth rather than blocky,
# and training can then change the 4×4 filter of each channel. It costs 16 weights per channel.

# %%
coarse = gaussian_heatmaps(torch.tensor([[3.3, 4.6]]), 8, 1.2)[None]       # (1, 1, 8, 8)
with torch.no_grad():
    deconv = BilinearUpsample(1, 2)(coarse)[0, 0]
nearest = F.interpolate(coarse, scale_factor=2, mode="nearest")[0, 0]
fig = Figure(figsize=(8, 2.8), layout="constrained")
axes = fig.subplots(1, 3)
for ax, m, t in zip(axes, (coarse[0, 0], nearest, deconv),
                    ("8×8 map", "nearest ×2 (Newell et al.)", "deconvolution ×2, bilinear init")):
    ax.imshow(m, cmap="magma"); ax.set_title(t, fontsize=9); ax.set_axis_off()
print(f"learned ×2 upsampling in one quick hourglass: {sum(num_parameters(m) for m in lib_hg.modules() if isinstance(m, BilinearUpsample)):,} "
      "parameters")
fig

# %% [markdown]
# ### Your turn: the learned ×2 upsampling
#
# Build `up2` yourself. `upsample2_exercise(channels)` returns a module that maps `(B, C, H, W)` to
# `(B, C, 2H, 2W)`: a transposed convolution with stride 2, one 4×4 filter per channel (`groups=channels`, no
# bias), and the padding that puts the output pixel centres where bilinear interpolation puts them (notebook
# 02 §4: $k = 2f - f \bmod 2 = 4$, padding $(k - f)/2 = 1$); initialise its weight to the bilinear filter
# $t(u)\,t(v)$, $t = (0.25, 0.75, 0.75, 0.25)$. The check compares the weight shape, the parameter count and
# the output with `BilinearUpsample(channels, 2)`, also on a non-square input.

# %% nbgrader={"grade": false, "grade_id": "upsample2", "locked": false, "schema_version": 3, "solution": true, "task": false}
def upsample2_exercise(channels):
    """A learned x2 upsampling of `channels` maps, initialised to bilinear: (B, C, H, W) -> (B, C, 2H, 2W)."""
    ### BEGIN SOLUTION
    layer = nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=2, padding=1, groups=channels, bias=False)
    t = 1 - (torch.arange(4.0) - 1.5).abs() / 2                   # (0.25, 0.75, 0.75, 0.25)
    with torch.no_grad():
        layer.weight.copy_(torch.outer(t, t).expand_as(layer.weight))   # weight (C, 1, 4, 4)
    return layer
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "upsample2_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from fa3d.course import exercises
facts["exercise_upsample2_max_diff"] = exercises.check_upsample2(upsample2_exercise)

# %% [markdown]
# ## 3. The regression subnetwork, assembled
#
# Input: the $N$ detection maps (the sigmoid of the detector's logits, at $S/4$) **stacked with the RGB
# image**, average-pooled to the same $S/4$: $3+N$ channels. Then a 3×3 convolution to $C$ channels, a
# residual unit, the hourglass, a residual unit, BN-ReLU (the units are pre-activated, so the network
# closes with one), a **zero-initialised** 1×1 convolution to $N$ maps, and the final ×4 deconvolution back
# to $S\times S$.
#
# **Which image features?** The paper says the regression subnetwork takes "the landmark detection
# heatmaps stacked with image features" (§1) and does not say which features. The quick preset (this
# notebook's networks and the shipped model) stacks the RGB crop pooled to $S/4$, the cheapest stand-in;
# it is our choice. The paper and medium presets (`RegressionConfig.detection_features`) also add the
# detection network's own image features at stride 4 (its `layer1` output: 256 channels for
# ResNet-152) through a 1×1 convolution that starts at zero, so that a run trained without them can be
# continued with them and computes the same thing at first. The next cell counts what they cost in
# the paper-sized net; docs/training.md measures what they bought on real faces.

# %%
class MyRegressionNet(nn.Module):
    def __init__(self, N: int, C: int, depth: int):
        super().__init__()
        self.stem = nn.Conv2d(3 + N, C, kernel_size=3, padding=1)
        self.pre = residuals(C, 1)
        self.hourglass = MyHourglass(depth, C)
        self.post = residuals(C, 1)
        self.norm = nn.BatchNorm2d(C)
        self.head = nn.Conv2d(C, N, kernel_size=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.upsample = BilinearUpsample(N, factor=4)

    def forward(self, images, detection_maps):
        x = torch.cat([F.avg_pool2d(images, 4), detection_maps], dim=1)       # (B, 3+N, S/4, S/4)
        x = self.post(self.hourglass(self.pre(self.stem(x))))
        return self.upsample(self.head(F.relu(self.norm(x))))                  # (B, N, S, S)


torch.manual_seed(0)
lib = RegressionNet(cfg, N)
mine = MyRegressionNet(N, C, cfg.depth)
nn.init.normal_(lib.head.weight, std=0.01)             # a non-zero head, so the comparison says something
mine.load_state_dict(lib.state_dict())
mine.eval()
lib.eval()
images = normalize_images(SyntheticFaces(2, image_size=S, seed=5)[0]["image"][None])
det_maps = torch.rand(1, N, S // 4, S // 4)
with torch.no_grad():
    out_mine, out_lib = mine(images, det_maps), lib(images, det_maps)
diff = float((out_mine - out_lib).abs().max())
print(f"parameters: ours {num_parameters(mine):,} | RegressionNet {num_parameters(lib):,}")
print(f"input: image {tuple(images.shape)} + detection maps {tuple(det_maps.shape)} -> stem sees "
      f"{3 + N} channels at {S // 4}×{S // 4}; output {tuple(out_lib.shape)}; max |difference| {diff:.1e}")
assert num_parameters(mine) == num_parameters(lib) and out_mine.shape == out_lib.shape and diff < 1e-5
facts.update(quick_params=num_parameters(lib), quick_output_shape=list(out_lib.shape), built_vs_library_max_diff=diff)

# %%
paper = get_preset("paper")
with torch.device("meta"):
    feature_channels = DetectionNet(paper.detection, paper.num_landmarks).backbone.stride4_channels
    paper_net = RegressionNet(paper.regression, paper.num_landmarks, feature_channels)
    xi = torch.zeros(1, 3, paper.image_size, paper.image_size)
    xd = torch.zeros(1, paper.num_landmarks, paper.image_size // 4, paper.image_size // 4)
    xf = torch.zeros(1, feature_channels, paper.image_size // 4, paper.image_size // 4)
    with FlopCounterMode(display=False) as flops:
        y = paper_net(xi, xd, xf)
print(f"paper RegressionNet: {num_parameters(paper_net) / 1e6:.2f} M parameters, depth {paper.regression.depth}, "
      f"{paper.regression.features} channels; {tuple(xi.shape)} + {tuple(xd.shape)} + detection features "
      f"{tuple(xf.shape)} -> {tuple(y.shape)}; {flops.get_total_flops() / 1e9:.1f} GFLOP per image "
      f"(the features' 1×1 convolution: {num_parameters(paper_net.feature_stem) / 1e3:.0f} k parameters)")
facts.update(paper_params_millions=round(num_parameters(paper_net) / 1e6, 2),
             paper_gflop=round(flops.get_total_flops() / 1e9, 1))

# %% [markdown]
# The regression net is small next to the 58 M-parameter detector: it does not need to recognise faces,
# only to reason about maps that already say roughly where each part is.

# %% [markdown]
# ## 4. The loss: pixel-wise L2 on Gaussian heatmaps
#
# The paper gives the loss, "a pixel wise L2 loss function" (§2.1), but not the targets. fa3d's targets are
# Gaussians at the landmarks, at the crop's full resolution, with the width the paper gives for the Z net's
# input heatmaps (std 6 px at 384 px, §2.2), since those heatmaps are this network's output; the quick preset
# uses 3 px at 64 px (notebook 01). The loss is the mean squared difference:
#
# $$\mathcal{L}_\text{reg} = \frac{1}{N S^2}\sum_{n=1}^{N}\sum_{\mathbf{p}}\big(H_n(\mathbf{p}) - G_n(\mathbf{p})\big)^2,
#   \qquad G_n(\mathbf{p}) = \exp\Big(-\frac{\lVert\mathbf{p}-\mathbf{x}_n\rVert^2}{2\sigma^2}\Big).$$
#
# Unlike the detector's yes/no disks, the Gaussian says *how far* each pixel is from the landmark, and its
# peak can be located to a fraction of a pixel (notebook 01 §8). With the zero head the network starts by
# predicting empty maps, a loss of $\overline{G^2}$.

# %%
face = CenterCrop3D(S)(SyntheticFaces(4, image_size=2 * S, seed=11)[0])
target = gaussian_heatmaps(face["landmarks"], S, preset.heatmap_sigma)[None]       # (1, N, S, S)
noisy = target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
print(f"σ = {preset.heatmap_sigma} px; loss of a noisy prediction: by the equation "
      f"{(noisy - target).square().mean():.6f}, regression_loss {regression_loss(noisy, target):.6f}")
print(f"empty maps (the zero head at step 0): {regression_loss(torch.zeros_like(target), target):.6f} "
      f"= mean(G²) = {target.square().mean():.6f}")

# %% [markdown]
# ## 5. The schedule: regression on a frozen detector, then both jointly
#
# §2.3: the detector trains first (notebook 02); then the hourglass trains 30 epochs with the learning rate
# going from $10^{-4}$ to $2.5\times10^{-5}$ while "the learning rate for the detection subnetwork was
# frozen"; then "the subnetworks were trained jointly for 30 more epochs". The paper does not name the joint
# loss. fa3d sums the two, $\mathcal{L} = \mathcal{L}_\text{det} + \mathcal{L}_\text{reg}$: each subnet keeps
# the loss it was trained with, and the detector also gets the regression loss's gradient through its maps.
# fa3d writes a schedule as data: a `StageSchedule` (epochs, end points of the learning rate, batch) per stage
# inside a `TrainSchedule` (with the optimiser and the Z stage's coin, notebook 04). The rate decays
# geometrically **per step**,
#
# $$\text{lr}_t = \text{lr}_\text{start}\Big(\frac{\text{lr}_\text{end}}{\text{lr}_\text{start}}\Big)^{t/(T-1)}, \quad t = 0,\dots,T-1,$$
#
# a straight line on a log scale through both end points. The paper gives no rate for the joint stage; fa3d
# reuses the regression stage's. The quick schedule uses Adam, few epochs and higher rates: its small nets
# get ~750 steps per stage instead of ~51,000 (13,672 images / batch 8 × 30 epochs).

# %%
course.show_source(StageSchedule)
sched = {name: get_schedule(name) for name in ("paper", "quick")}
print(f"{'stage':12s}{'paper':>42s}{'quick':>42s}")
for stage in ("detection", "regression", "joint"):
    cells = [f"{st.epochs} ep, {st.lr_start:.1e} -> {st.lr_end:.1e}, batch {st.batch_size}"
             for st in (s.stage(stage) for s in sched.values())]
    print(f"{stage:12s}{cells[0]:>42s}{cells[1]:>42s}")
print(f"optimiser: paper {sched['paper'].optimizer} (the authors' Torch7 code of that time), quick {sched['quick'].optimizer}")

fig = Figure(figsize=(10, 3), layout="constrained")
axes = fig.subplots(1, 2)
for ax, (name, s), n_train in zip(axes, sched.items(), (13672, 1000)):
    t0 = 0
    for stage in ("detection", "regression", "joint"):
        st = s.stage(stage)
        T = st.epochs * (n_train // st.batch_size)
        t = np.arange(T)
        ax.plot(t0 + t, st.lr_start * (st.lr_end / st.lr_start) ** (t / (T - 1)), label=stage)
        t0 += T
    ax.set(yscale="log", xlabel="optimiser step", ylabel="learning rate", title=f"{name} schedule ({n_train:,} images)")
    ax.legend(fontsize=8); ax.grid(alpha=0.3)
fig

# %% [markdown]
# "Frozen" in code: `StageLoss(cascade, "regression")` lists only the regression net as trainable; the
# detector runs in eval mode (batch-norm statistics fixed) without gradients. In the joint stage both train.

# %%
demo = Cascade.from_preset(preset)
for stage in ("regression", "joint"):
    loss_mod = StageLoss(demo, stage)
    loss_mod.set_mode(True)
    print(f"{stage:10s}: detection requires_grad={next(demo.detection.parameters()).requires_grad}, "
          f"training mode={demo.detection.training} | regression requires_grad="
          f"{next(demo.regression.parameters()).requires_grad}")

# %% [markdown]
# ## 6. Training on top of notebook 02's detector
#
# `course.ensure_run("regression", OUT_DIR, train=TRAIN)` gives the quick run of the regression and joint
# stages, started from notebook 02's detection run: installed ready-made by default, or trained here with
# `TRAIN = True` (about 3.5 minutes on 2 CPU cores; on top of the detection run already in `OUT_DIR`,
# yours or the ready-made one). The curves below show all
# three stages; the validation GTE of the detection stage is decoded from the detection maps, the later
# ones from the regression heatmaps.

# %%
RUN_DIR = course.ensure_run("regression", OUT_DIR, train=TRAIN)
DET_DIR = course.ensure_run("detection", OUT_DIR)   # its curves come first
log = read_log(DET_DIR) + read_log(RUN_DIR)
by_stage = {r["stage"]: r for r in log}          # last epoch of each stage
for stage, r in by_stage.items():
    print(f"end of {stage:10s}: valid GTE xy {r['valid_gte_xy']:.2f} %")
facts.update({f"log_{s}_gte_xy": r["valid_gte_xy"] for s, r in by_stage.items()})
viz.training_curves(log, title="quick detection → regression → joint")

# %% [markdown]
# ## 7. Detection maps vs regression heatmaps
#
# For a test face: the detector's sigmoid maps (coarse, $S/4$, flat-topped) and the hourglass's
# heatmaps ($S\times S$, peaked), summed over all landmarks and for one landmark, with each decoded position
# (cyan) and the truth (green).

# %%
cascade, ckpt = load_run(RUN_DIR)
crops = course.test_crops(RUN_DIR, NUM_EVAL)
img, gt = crops["image"][FACE_INDEX], crops["landmarks"][FACE_INDEX]
st = viz.cascade_stages(cascade, img)
fig = Figure(figsize=(12, 6.2), layout="constrained")
axes = fig.subplots(2, 3)
viz.show_prediction(img, st["detection_xy"], gt[:, :2], scheme, ax=axes[0, 0], zoom=False, legend=False,
                    title="detection-only (magenta) vs truth")
viz.show_prediction(img, st["landmarks"][:, :2], gt[:, :2], scheme, ax=axes[1, 0], zoom=False, legend=False,
                    title="regression (magenta) vs truth")
for row, (key, xy, name) in enumerate((("detection", st["detection_xy"], "detection maps"),
                                       ("regression", st["landmarks"][:, :2], "regression heatmaps"))):
    viz.show_heatmap(st[key], None, image=img, ax=axes[row, 1], alpha=0.6, title=f"{name}, Σ")
    viz.show_heatmap(st[key], LANDMARK, image=img, ax=axes[row, 2], alpha=0.75, title=f"{name}, #{LANDMARK}")
    axes[row, 2].plot(*xy[LANDMARK], "c+", ms=12, mew=1.5)
    axes[row, 2].plot(*gt[LANDMARK, :2], "o", mfc="none", mec=viz.GT_COLOUR, ms=9)
fig

# %% [markdown]
# ## 8. Does regression refine detection?
#
# The same test faces, the same final (jointly trained) cascade, decoded two ways: from the detection
# maps alone and from the regression heatmaps; the mean shape as the baseline. GTE in $x, y$ only (the Z net
# is still untrained: notebook 04). The detection-only error here is not notebook 02's: the joint stage
# trains the detector too, through the regression net's loss, so the cell also scores notebook 02's
# detector, before the joint stage, on the same faces.

# %%
det = course.score_stage(cascade, crops, "detection", ckpt["mean_shape"])
reg = course.score_stage(cascade, crops, "joint")
gt_lm = crops["landmarks"]
det_only, model_gte, baseline_gte = det["model"]["gte_xy"], reg["model"]["gte_xy"], det["baseline"]["gte_xy"]
per_det = 100 * gte(det["pred"], gt_lm, "xy")
per_reg = 100 * gte(reg["pred"], gt_lm, "xy")
improved = float((per_reg < per_det).float().mean())
print(f"GTE xy on {len(gt_lm)} test faces: detection-only {det_only:.2f} % -> regression {model_gte:.2f} % "
      f"(mean shape {baseline_gte:.2f} %)")
print(f"regression is better on {100 * improved:.0f} % of the faces; error ratio {model_gte / det_only:.2f}")
det_cascade, det_ckpt = load_run(DET_DIR)        # notebook 02's detector, before the joint stage trained it
det_before = course.score_stage(det_cascade, crops, "detection", det_ckpt["mean_shape"])["model"]["gte_xy"]
print(f"detection only, on the same faces: {det_before:.2f} % with notebook 02's detector -> {det_only:.2f} % "
      "after the joint stage")
facts.update(model_gte=model_gte, baseline_gte=baseline_gte, detection_only_gte=det_only,
             detection_only_gte_before_joint=det_before,
             fraction_faces_improved=round(improved, 3), num_eval=len(gt_lm))

base = ckpt["mean_shape"].expand_as(gt_lm)
display(viz.ced_figure({"regression (joint)": (reg["pred"], gt_lm), "detection only": (det["pred"], gt_lm),
                        "mean shape": (base, gt_lm)}, axes=("xy",), max_error=0.7, panel_size=4.0))
fig = Figure(figsize=(4, 3.6), layout="constrained")
ax = fig.add_subplot()
top = float(max(per_det.max(), per_reg.max()))
ax.scatter(per_det, per_reg, s=8, alpha=0.5)
ax.plot([0, top], [0, top], "k--", lw=0.8)
ax.set_xlabel("detection-only GTE xy (%)"); ax.set_ylabel("regression GTE xy (%)")
ax.set_title("one dot per face (below the line: refined)", fontsize=9)
fig

# %% [markdown]
# Regression wins on most faces (the share is printed above): the Gaussians decode to sub-pixel positions at the crop's resolution, and
# the hourglass, seeing all maps and the image at once, moves points that the detector placed badly. The
# remaining error is what notebooks 05 and 08 study.

# %%
course.save_facts(facts, OUT_DIR, "03_regression")

# %% [markdown]
# ## Summary
#
# - The regression subnet is an hourglass of pre-activation bottlenecks with learned, bilinear-initialised
#   deconvolutions, on the detection maps stacked with the (pooled) image; the step-by-step build matched
#   `RegressionNet` (§3), and the paper-sized one was counted on the `meta` device (parameters and GFLOP
#   printed in §3).
# - It is trained with a pixel-wise L2 loss against Gaussians: on a frozen detector, then jointly.
# - On the test faces, regression beats detection alone (both GTE xy, the mean shape's and the share of faces
#   improved are printed in §8): sub-pixel peaks at full resolution, and a network that sees every map at once.
# - Next: notebook 04 adds the Z regressor, which reads these heatmaps to predict the depth.

# %% [markdown]
# ## The paper and fa3d
#
# What the paper says about the regression subnetwork, where its wording is loose, and what fa3d chose
# where it says nothing.
#
# | what | the paper says (quoted, with its section) | fa3d chooses (and why) |
# |---|---|---|
# | the input | "a regression subnetwork that jointly regresses the landmark detection heatmaps stacked with image features to confidence maps" (§1); which image features: silent | Every preset stacks the detection maps with the RGB crop average-pooled to stride 4. The paper and medium presets also add the detector's stride-4 features (its `layer1` output) through a 1×1 convolution that starts at zero (`RegressionConfig.detection_features`): a run without them can be continued with them, unchanged at first. The quick preset and the shipped model were trained without them (§3 above). |
# | the hourglass | "based on a modified version of the “hourglass network” [15]"; "we replaced the original nearest neighbour upsampling of [15] by learnable deconvolutional layers, and added another deconvolutional layer in the end that brings the output to the input resolution" (§2.1) | Learned ×2 deconvolutions, one filter per channel, initialised to bilinear upsampling as §2.3 asks, and a final ×4 deconvolution from stride 4 to the crop's resolution (§2 above). |
# | its size | not given: "the exact network architecture and layer specification for each of them are described in detail in [13]" (§2.1) | fa3d's paper preset: one hourglass with 4 poolings and 256 channels, as Newell et al.'s; the quick preset: 3 poolings and 64 channels, so that it trains on a CPU. |
# | the targets | "The network was then trained using a pixel wise L2 loss function." (§2.1); the targets: silent | Gaussians at the landmarks, with the width that §2.2 gives the Z net's input heatmaps ("std = 6 pixels"), since those heatmaps are this network's output; 3 px at the quick preset's 64 px (§4 above, notebook 01). |
# | the regression stage | "trained for 30 epochs using a learning rate that varied from 1e − 4 to 2.5e − 5. During this, the learning rate for the detection subnetwork was frozen." (§2.3) | The detector runs in eval mode without gradients: its weights and its batch-norm statistics stay as they were (§5 above). |
# | the joint stage | "Finally, the subnetworks were trained jointly for 30 more epochs." (§2.3); its loss and learning rate: silent | fa3d's choice: the sum of the two losses with equal weights, so each subnet keeps the loss it was trained with, and the regression stage's learning rates, 1e-4 to 2.5e-5 (§5 above). |

# %% [markdown]
# ## Exercises
#
# 1. **Nearest-neighbour upsampling.** Write `NearestHourglass`, a copy of `MyHourglass` whose `up2` is
#    `nn.Upsample(scale_factor=2, mode="nearest")`. How many parameters does it save in the quick and in the
#    paper configuration? Upsample the 8×8 map of §2 both ways and compare the decoded peak with the truth
#    (3.3, 4.6) mapped to 16×16. *Hint:* `resize_points(pt, 8, 16)`; `decode_heatmaps`.
# 2. **What do the detection maps contribute?** Feed the trained regression net the image with *zero*
#    detection maps (and, separately, a grey image with the true detection maps) and measure GTE xy on the
#    test crops. Which input carries more of the answer? *Hint:* call `cascade.regression(x, maps)`
#    directly, decode with `decode_heatmaps`, score with `fa3d.metrics.gte`.
# 3. **The paper's schedule in steps.** With 13,672 training images, batch 8 and 30 epochs, what is the
#    per-step decay factor $\gamma$ of the regression stage, and the learning rate after 10 epochs? Check
#    against `torch.optim.lr_scheduler.ExponentialLR`. *Hint:* $\gamma = (\text{lr}_\text{end}/\text{lr}_\text{start})^{1/(T-1)}$.
# 4. **Argmax vs sub-pixel decoding.** Decode the regression heatmaps of the test crops with a plain
#    argmax and compare GTE xy with `decode_heatmaps`. Do the same for the detection maps. Where does
#    sub-pixel decoding help, and why? *Hint:* `idx = maps.flatten(-2).argmax(-1)`; x = idx % W, y = idx // W.

# %% [markdown]
# ## References
#
# - Bulat, A. & Tzimiropoulos, G. (2016). *Two-stage convolutional part heatmap regression for the 1st 3D face
#   alignment in the wild (3DFAW) challenge.* ECCV 2016 Workshops.
#   [arXiv:1609.09545](https://arxiv.org/abs/1609.09545),
#   [doi:10.1007/978-3-319-48881-3_43](https://doi.org/10.1007/978-3-319-48881-3_43). §2.1: the regression
#   subnet, its loss and the training schedule (§2.3).
# - He, K., Zhang, X., Ren, S. & Sun, J. (2016b). *Identity mappings in deep residual networks.* ECCV.
#   [arXiv:1603.05027](https://arxiv.org/abs/1603.05027). The pre-activation residual unit of §1.
# - Newell, A., Yang, K. & Deng, J. (2016). *Stacked hourglass networks for human pose estimation.* ECCV.
#   [arXiv:1603.06937](https://arxiv.org/abs/1603.06937). The hourglass of §2, with nearest-neighbour
#   upsampling.
# - Bulat, A. & Tzimiropoulos, G. (2016). *Human pose estimation via convolutional part heatmap regression.*
#   ECCV. [arXiv:1609.01743](https://arxiv.org/abs/1609.01743). Part heatmap regression with learned
#   deconvolutions, which §2.1 follows.
