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
# # 02 · The landmark detection subnetwork (§2.1)
#
# The first of the cascade's three networks turns a face crop into $N$ *part detection maps*, one per
# landmark, each saying "this landmark is here" pixel by pixel. The paper builds it from an ImageNet
# ResNet-152 with three changes: drop the average pooling and the classifier, change the stride of the last
# stage from 2 to 1, and add "a deconvolution [...] followed by a fully convolutional layer" (fa3d: a ×4
# deconvolution and a 1×1 convolution to $N$ maps at stride 4). This notebook builds that
# network from its blocks (torchvision's residual blocks, the stages, the bilinear-initialised deconvolution,
# the zero-initialised head), checks the result against `fa3d.models.DetectionNet` weight for weight,
# counts the paper-sized network without allocating it, explains the binary disk targets and the sigmoid
# cross-entropy, then trains the quick detector and measures what detection alone achieves against the
# mean-shape baseline.
#
# **You will learn** to
#
# - turn an ImageNet ResNet into a fully convolutional landmark detector (no pooling or classifier, the last
#   stage at stride 1, a deconvolution and a 1×1 head) and explain each change;
# - initialise a deconvolution to bilinear upsampling and a head to zero, and say what each buys at step 0;
# - count a paper-sized network's parameters and FLOPs on the `meta` device, without allocating it;
# - build the binary disk targets and the per-pixel sigmoid cross-entropy, and explain why the loss starts at
#   $\ln 2$;
# - train the quick detector and judge it against a mean-shape baseline and against the best its disks can do.
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/fa3d-course/fa3d/blob/main/notebooks/02_detection.ipynb)
#
# **Quick mode:** about 15 s on a 2-core CPU, on its own on a fresh machine: the quick detector of §9 comes
# ready-made with fa3d (`course.ensure_run` installs it); `TRAIN = True` trains it here instead, about a
# minute more.
#
# **Quick preset only.** This notebook builds, trains and shows the quick preset; there is no setting that
# switches it to the paper's networks. The paper preset appears where its shapes, parameters and FLOPs are
# counted at 384 px (§3, §7), without training; notebook 07 shows how to train it.

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
TRAIN = False                # True: train the quick run here (about 1 minute on 2 CPU cores) instead of installing the ready-made one
NUM_EVAL = 200               # test faces for the error numbers (the run's num_valid: 200)
FACE_INDEX = 3               # the test face shown
LANDMARK = 36                # the landmark whose map is shown (36: subject's right outer eye corner)
OUT_DIR = "outputs/notebooks"

# %%
import json
import math
import os
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import resnet as tv_resnet

from fa3d.course import viz
from fa3d.data import SyntheticFaces, get_scheme
from fa3d.data.transforms import CenterCrop3D
from fa3d.runs import load_run, read_log
from fa3d.heatmaps import decode_heatmaps, disk_heatmaps, disk_radius, resize_points
from fa3d.metrics import summarize
from fa3d.models import DetectionNet, detection_loss, get_preset, normalize_images, num_parameters
from fa3d.models.detection import BilinearUpsample
from fa3d.schedules import get_schedule

# The course's runs (`course.ensure_run`) always train the quick preset, so this notebook builds and trains
# "quick". The paper preset appears explicitly, as `get_preset("paper")`, where its shapes and FLOPs are
# counted (§3, §7); notebook 07 trains it.
PRESET = "quick"
preset = get_preset(PRESET)
cfg = preset.detection            # DetectionConfig: block, layers, width, pretrained
S, N = preset.image_size, preset.num_landmarks
scheme = get_scheme("3dfaw66")
os.makedirs(OUT_DIR, exist_ok=True)
facts = {"preset": PRESET}        # what this notebook computed; written to OUT_DIR/02_detection.json
print(preset.name, "preset:", cfg, f"| crops {S}×{S} px")

# %% [markdown]
# ## 1. From a classifier to a fully convolutional network
#
# An ImageNet ResNet maps an image to 1,000 class scores: a stem (7×7 convolution with stride 2, max-pooling
# with stride 2), four *stages* of residual blocks (torchvision calls them `layer1`…`layer4`; He et al. name
# the stem conv1 and the stages conv2_x to conv5_x, so fa3d reads the paper's "5th block" as `layer4`), then
# a global average pooling and a fully connected layer. Each stage after the first halves the resolution, so
# the last feature map is $S/32$ of the input: 12×12 for a 384 px crop. Pooling it to 1×1 throws away
# *where* things are, exactly what a landmark detector needs. The paper therefore
#
# 1. removes the average pooling and the fully connected layer (the net now outputs a feature *map*),
# 2. sets the stride of `layer4` to 1 (features at $S/16$ instead of $S/32$),
# 3. adds "a deconvolution [14] followed by a fully convolutional layer".
#
# The paper gives neither the deconvolution's factor nor the stride of the output maps. fa3d's deconvolution
# upsamples **×4** ($S/16 \to S/4$) and a **1×1 convolution** turns it into $N$ maps, so the maps come out at
# stride 4: the resolution at which Newell et al.'s hourglass works, and the regression subnet's input
# (notebook 03), whose last deconvolution then brings its heatmaps to the crop's resolution.
#
# We build it bottom-up with the quick preset's sizes, then check it against `DetectionNet`.

# %% [markdown]
# ## 2. The residual blocks
#
# A residual block computes $y = \mathrm{ReLU}(x + F(x))$: the convolutions $F$ learn a *correction* to
# the identity, which is what lets 152 layers train. torchvision has two kinds, and fa3d uses them
# unchanged so that ImageNet weights load by name:
#
# - `BasicBlock` (ResNet-18/34): two 3×3 convolutions, $C \to C$;
# - `Bottleneck` (ResNet-50/101/152): 1×1 ($4C \to C$), 3×3 ($C \to C$), 1×1 ($C \to 4C$): the expensive
#   3×3 runs on a quarter of the channels (`expansion = 4`).
#
# When a block changes the resolution or the channel count, the identity is replaced by a strided 1×1
# convolution + BN (`downsample`). The quick preset uses `BasicBlock`s, the paper's ResNet-152 `Bottleneck`s.

# %%
course.show_source(tv_resnet.Bottleneck.forward)

# %%
for name, block in [("BasicBlock(256, 256)", tv_resnet.BasicBlock(256, 256)),
                    ("Bottleneck(1024, 256) -> 1024 channels", tv_resnet.Bottleneck(1024, 256))]:
    x = torch.randn(1, 256 if "Basic" in name else 1024, 8, 8)
    print(f"{name:40s} {num_parameters(block):>9,} parameters, {tuple(x.shape)} -> {tuple(block(x).shape)}")
print("a bottleneck has 4× the channels of a basic block for fewer weights: that is why deep ResNets use it")

# %% [markdown]
# ## 3. The backbone: stem and four stages
#
# A stage is a list of blocks; its first block may change the stride and the channels (with a `downsample`
# branch), the others keep the shape. Stage $i$ has `width`·$2^i$ channels (×4 for bottlenecks). Here is the
# quick backbone, built by hand from torchvision's blocks, with `layer4`'s stride **1**:

# %%
def stage(Block, in_ch: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """One ResNet stage of torchvision blocks: in_ch -> planes·expansion channels, /stride."""
    out_ch = planes * Block.expansion
    down = None
    if stride != 1 or in_ch != out_ch:
        down = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))
    return nn.Sequential(Block(in_ch, planes, stride, down), *[Block(out_ch, planes) for _ in range(blocks - 1)])


def resnet_fcn(config, layer4_stride: int = 1) -> nn.Sequential:
    """torchvision's ResNet layout without avgpool/fc: stem + 4 stages, the given layer4 stride."""
    B = tv_resnet.Bottleneck if config.block == "bottleneck" else tv_resnet.BasicBlock
    w, L, e = config.width, config.layers, B.expansion
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False), bn1=nn.BatchNorm2d(w),
        relu=nn.ReLU(inplace=True), maxpool=nn.MaxPool2d(3, stride=2, padding=1),   # stem: /4
        layer1=stage(B, w, w, L[0], stride=1),                                     # /4
        layer2=stage(B, w * e, 2 * w, L[1], stride=2),                             # /8
        layer3=stage(B, 2 * w * e, 4 * w, L[2], stride=2),                         # /16
        layer4=stage(B, 4 * w * e, 8 * w, L[3], stride=layer4_stride),             # /16 (paper) or /32
    ))


backbone = resnet_fcn(cfg, layer4_stride=1)           # the paper's change: torchvision uses 2
expansion = tv_resnet.Bottleneck.expansion if cfg.block == "bottleneck" else tv_resnet.BasicBlock.expansion
out_channels = 8 * cfg.width * expansion


def feature_sizes(layers: nn.Sequential, size: int) -> list[tuple[str, tuple]]:
    """(name, output shape) after each child of a Sequential, for one size×size image."""
    x, rows = torch.zeros(1, 3, size, size, device=next(layers.parameters()).device), []
    with torch.no_grad():
        for name, layer in layers.named_children():
            x = layer(x)
            rows.append((name, tuple(x.shape[1:])))
    return rows


print(f"quick backbone: {num_parameters(backbone):,} parameters; feature maps for a {S} px crop:")
for name, shape in feature_sizes(backbone, S):
    print(f"  {name:8s} {shape}  stride {S // shape[-1]}")

# %% [markdown]
# ### Why layer4's stride goes from 2 to 1
#
# The same backbone with torchvision's stride 2 in `layer4` ends at $S/32$. Compare the paper's 384 px
# crop: the last feature map is 12×12 with stride 2 and **24×24** with stride 1. On 12×12 each feature
# pixel covers 32 crop pixels, more than the 7 px disk radius the paper targets: landmarks a few pixels
# apart would share a cell. Stride 16 doubles the resolution at no cost in parameters (the filters keep
# their shapes: only the stride changes, so the ImageNet weights still load), at the price of 4× the
# compute in `layer4`. fa3d's deconvolution then has a ×4 job (to stride 4) instead of a ×8 one.
# (We count the paper-sized nets on the `meta` device, which tracks shapes without allocating memory.)

# %%
paper = get_preset("paper")
print(f"{'':10s}{'quick, stride 2':>18s}{'quick, stride 1':>18s}{'paper, stride 2':>20s}{'paper, stride 1':>20s}")
quick_rows = {s: dict(feature_sizes(resnet_fcn(cfg, s), S)) for s in (2, 1)}
with torch.device("meta"):
    paper_rows = {s: dict(feature_sizes(resnet_fcn(paper.detection, s), paper.image_size)) for s in (2, 1)}
for name in ("maxpool", "layer1", "layer2", "layer3", "layer4"):
    cells = [f"{quick_rows[s][name][-1]}×{quick_rows[s][name][-1]}" for s in (2, 1)]
    cells += [f"{paper_rows[s][name][0]}×{paper_rows[s][name][-1]}²" for s in (2, 1)]
    print(f"{name:10s}{cells[0]:>18s}{cells[1]:>18s}{cells[2]:>20s}{cells[3]:>20s}")
facts["paper_layer4_size_stride1"] = paper_rows[1]["layer4"][-1]
facts["paper_layer4_size_stride2"] = paper_rows[2]["layer4"][-1]

# %% [markdown]
# (The paper columns read channels × side².) Same parameters, twice the resolution: 24×24 instead of 12×12.

# %% [markdown]
# ## 4. The deconvolution, initialised to bilinear upsampling
#
# A transposed convolution ("deconvolution") with stride $f$ spreads each input pixel over an output window
# through a learned $k\times k$ filter. The paper initialises the new deconvolutions with **bilinear
# upsampling filters** (as FCN did): for factor $f$ the filter is the outer product of a tent,
#
# $$K(u, v) = t(u)\,t(v), \qquad t(u) = 1 - \frac{\lvert u - \frac{k-1}{2}\rvert}{f}, \qquad k = 2f - f \bmod 2,$$
#
# so at the start it *is* bilinear interpolation, and training may improve on it. fa3d's
# `BilinearUpsample` uses one filter per channel (`groups = channels`): a full $C\to C$ deconvolution would
# cost $C^2k^2$ weights (268 M for the paper's 2048 channels and $k=8$) for nothing the following 1×1
# convolution cannot do.

# %%
up = BilinearUpsample(1, factor=4).requires_grad_(False)
print("the 8×8 filter for ×4 (×16):\n", (16 * up.weight[0, 0]).round().int().numpy())
const = torch.full((1, 1, 6, 6), 3.0)
with torch.no_grad():
    up_const = up(const)[0, 0]
interior = up_const[2:-2, 2:-2]                      # all but the outer f/2 = 2 pixels
print(f"a constant 3 upsampled 6×6 -> {tuple(up_const.shape)}: interior min {interior.min():.6f}, "
      f"max {interior.max():.6f}; border row {up_const[0, :4].numpy().round(3)} (misses a neighbour)")
rand = torch.randn(1, 1, 6, 6, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    ours = up(rand)[0, 0]
ref = F.interpolate(rand, scale_factor=4, mode="bilinear", align_corners=False)[0, 0]
bil_err = float((ours - ref)[2:-2, 2:-2].abs().max())
print(f"random map: max |deconv − F.interpolate(bilinear)| in the interior = {bil_err:.1e}")
facts.update(bilinear_constant_interior_max_error=float((interior - 3).abs().max()), bilinear_vs_interpolate=bil_err)

fig = Figure(figsize=(11, 3), layout="constrained")
axes = fig.subplots(1, 4)
axes[0].imshow(up.weight[0, 0], cmap="viridis"); axes[0].set_title("bilinear filter (k = 8, f = 4)", fontsize=9)
axes[1].imshow(up_const, cmap="viridis", vmin=0, vmax=3); axes[1].set_title("constant 3, upsampled", fontsize=9)
axes[2].imshow(rand[0, 0], cmap="coolwarm"); axes[2].set_title("random 6×6 map", fontsize=9)
axes[3].imshow(ours, cmap="coolwarm"); axes[3].set_title("deconvolution ×4 = bilinear", fontsize=9)
for ax in axes:
    ax.set_axis_off()
fig

# %% [markdown]
# The constant comes out exactly constant except in the outermost 2 pixels, which miss a neighbour; in the
# interior the deconvolution equals `F.interpolate(mode="bilinear")` to float rounding.

# %% [markdown]
# ### Your turn: the bilinear filter
#
# Write the filter of the equation above. `bilinear_kernel_exercise(factor)` takes the upsampling factor $f$
# (an int $\ge 2$) and returns the $k \times k$ float32 tensor $K(u, v) = t(u)\,t(v)$ with $k = 2f - f \bmod 2$
# and $t(u) = 1 - \lvert u - \frac{k-1}{2}\rvert / f$ for $u = 0, \dots, k-1$. The check compares it with the
# initial weight of `BilinearUpsample(1, f)` for $f$ = 2, 4 and 8, and for an odd factor, 3, whose kernel
# has an odd size, 5.

# %% nbgrader={"grade": false, "grade_id": "bilinear_kernel", "locked": false, "schema_version": 3, "solution": true, "task": false}
def bilinear_kernel_exercise(factor):
    """The bilinear upsampling filter for an integer factor f: (k, k) float32, k = 2f - f % 2."""
    ### BEGIN SOLUTION
    k = 2 * factor - factor % 2
    u = torch.arange(k, dtype=torch.float32)
    t = 1 - (u - (k - 1) / 2).abs() / factor                       # the tent: 1/(2f) at both ends
    return torch.outer(t, t)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "bilinear_kernel_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from fa3d.course import exercises    # the checks of the course's code exercises
facts["exercise_bilinear_kernel_max_diff"] = exercises.check_bilinear_kernel(bilinear_kernel_exercise)

# %% [markdown]
# Compare your answer with fa3d's `BilinearUpsample`: its `reset_parameters` writes the same filter into
# every channel's weight, and its padding $(k - f)/2$ puts the output pixel centres where bilinear
# interpolation puts them:

# %%
course.show_source(BilinearUpsample)

# %% [markdown]
# ## 5. The zero-initialised 1×1 head
#
# The head is a 1×1 convolution from the backbone's channels to $N$ logit maps. The paper initialises the
# new layers **with zeros**: every logit starts at 0 and every map at $\sigma(0) = 0.5$, whatever the image.
# The first step then moves only the head: its weights' gradients differ per landmark (each map's error
# against its own target times the shared features), while the backbone gets no gradient at step 0, since
# it reaches the loss only through the zero head weights; from step 2 on it does. (The deconvolution before
# it keeps its bilinear init: were it zero too, the head would see all-zero features, its weights and the
# deconvolution's would keep zero gradients, and no gradient would ever reach the backbone.)

# %%
head = nn.Conv2d(out_channels, N, kernel_size=1)
nn.init.zeros_(head.weight)
nn.init.zeros_(head.bias)
upsample = BilinearUpsample(out_channels, factor=4)
mine = nn.Sequential(OrderedDict(backbone=backbone, upsample=upsample, head=head))
print(f"head: {tuple(head.weight.shape)} weights + {N} biases = {num_parameters(head):,} parameters; "
      f"deconvolution: {num_parameters(upsample):,} parameters (vs {out_channels ** 2 * 64:,} for a full one)")

# %% [markdown]
# ## 6. The whole detector, checked against `DetectionNet`
#
# Named like the library (`backbone.conv1`, `backbone.layer1.0.conv1`, …, `upsample`, `head`), our
# hand-built network must have the same parameter count, accept the library's weights with a strict
# `load_state_dict`, and then compute exactly the same maps.

# %%
torch.manual_seed(0)
lib = DetectionNet(cfg, N)
x = normalize_images(SyntheticFaces(2, image_size=S, seed=5)[0]["image"][None])   # any image will do
mine.load_state_dict(lib.state_dict())                   # strict: every name and shape must match
for p in lib.head.parameters():                          # make the head non-zero so the outputs say something
    nn.init.normal_(p, std=0.01)
mine.head.load_state_dict(lib.head.state_dict())
mine.eval()
lib.eval()
with torch.no_grad():
    out_mine, out_lib = mine(x), lib(x)
same = float((out_mine - out_lib).abs().max())
print(f"parameters: ours {num_parameters(mine):,} | DetectionNet {num_parameters(lib):,}")
print(f"output: ours {tuple(out_mine.shape)} | DetectionNet {tuple(out_lib.shape)}  (B, N, S/4, S/4)")
print(f"max |difference| with the same weights: {same:.1e}")
assert num_parameters(mine) == num_parameters(lib) and out_mine.shape == out_lib.shape and same < 1e-5
facts.update(quick_params=num_parameters(lib), quick_output_shape=list(out_lib.shape), built_vs_library_max_diff=same)

# %% [markdown]
# ## 7. The paper's detector, counted on the meta device
#
# The paper preset is ResNet-152 (`Bottleneck`, 3-8-36-3 blocks, width 64) at 384 px: too big to build
# casually on a laptop, but on the `meta` device a module has shapes and no memory, so we can count its
# parameters, run its forward for shapes, and count its multiply-adds (`FlopCounterMode`) in seconds.

# %%
with torch.device("meta"):
    paper_net = DetectionNet(paper.detection, paper.num_landmarks)
    x_meta = torch.zeros(1, 3, paper.image_size, paper.image_size)
    with FlopCounterMode(display=False) as flops:
        y_meta = paper_net(x_meta)
    tv152 = tv_resnet.resnet152()
paper_params, gflop = num_parameters(paper_net), flops.get_total_flops() / 1e9
print(f"paper DetectionNet: {paper_params / 1e6:.1f} M parameters (torchvision ResNet-152 with its fc: "
      f"{num_parameters(tv152) / 1e6:.1f} M), input {tuple(x_meta.shape)} -> {tuple(y_meta.shape)}")
print(f"forward: {gflop:.1f} GFLOP per 384 px image (2 × multiply-adds) vs quick "
      f"{num_parameters(lib) / 1e6:.2f} M parameters at {S} px")
facts.update(paper_params_millions=round(paper_params / 1e6, 2), paper_gflop=round(gflop, 1),
             paper_output_shape=list(y_meta.shape))

# %% [markdown]
# ## 8. Targets: binary disks, loss: per-pixel sigmoid cross-entropy
#
# Notebook 01 built the targets: for landmark $n$ at $\mathbf{x}_n$ (in detection-map pixels) the map
# $D_n(\mathbf{p}) = [\lVert\mathbf{p}-\mathbf{x}_n\rVert \le r]$, radius $r = 7\,\text{px}\cdot h/220$ for a
# face $h$ px high, but never below 1 map pixel (`disk_radius`): at the quick preset's 64 px the rule gives
# less than that, so the quick disks are larger, relative to the face, than the paper's (both radii are
# printed below; notebook 01 §7). Each pixel of each map is an independent yes/no question, scored by the sigmoid
# cross-entropy of its logit $\ell_n(\mathbf{p})$:
#
# $$\mathcal{L}_\text{det} = -\frac{1}{N\,h\,w}\sum_{n=1}^{N}\sum_{\mathbf{p}}
#   \Big[D_n(\mathbf{p})\log\sigma(\ell_n(\mathbf{p})) + \big(1 - D_n(\mathbf{p})\big)\log\big(1-\sigma(\ell_n(\mathbf{p}))\big)\Big].$$
#
# `detection_loss` is `F.binary_cross_entropy_with_logits` (numerically stable for large $|\ell|$). With the
# zero head every $\sigma(\ell) = 0.5$, so the loss starts at exactly $\ln 2$. Most pixels are background:

# %%
face = CenterCrop3D(S)(SyntheticFaces(4, image_size=2 * S, seed=11)[0])
h_map = S // 4
face_h = float(face["bbox"][3] - face["bbox"][1])
radius = disk_radius(face_h * h_map / S)
targets = disk_heatmaps(resize_points(face["landmarks"], S, h_map), h_map, radius)[None]   # (1, N, S/4, S/4)
logits = torch.randn(targets.shape, generator=torch.Generator().manual_seed(1))
p = torch.sigmoid(logits)
by_hand = -(targets * p.log() + (1 - targets) * (1 - p).log()).mean()
rule_radius = 7.0 * (face_h * h_map / S) / 220.0                # the paper's rule, before the clamp
print(f"disk radius: the rule 7·h/220 gives {rule_radius:.2f} map px for this {face_h:.0f} px high face; "
      f"disk_radius makes it {radius:.2f} px on the {h_map}×{h_map} maps ({radius / rule_radius:.1f}× the paper's "
      f"proportion; {int(targets[0, 0].sum())} pixels per disk)")
print(f"loss of random logits: by the equation {by_hand:.6f}, detection_loss {detection_loss(logits, targets):.6f}")
print(f"zero logits: {detection_loss(torch.zeros_like(targets), targets):.6f} = ln 2 = {math.log(2):.6f}")
pos = float(targets.mean())
print(f"positive pixels: {100 * pos:.1f} % — a net predicting 'background everywhere' already gets "
      f"{100 * (1 - pos):.1f} % of pixels right")
facts.update(disk_radius_rule_map_px=round(rule_radius, 3), disk_radius_map_px=float(radius))
facts.update(positive_pixel_fraction=round(pos, 4), initial_loss=float(detection_loss(torch.zeros_like(targets), targets)))

fig = Figure(figsize=(7, 3.2), layout="constrained")
axes = fig.subplots(1, 2)
viz.show_heatmap(targets[0], LANDMARK, image=face["image"], ax=axes[0], alpha=0.5,
                 title=f"target disk, landmark {LANDMARK}")
viz.show_heatmap(targets[0], None, image=face["image"], ax=axes[1], alpha=0.5, title="Σ all N disks")
fig

# %% [markdown]
# ### Your turn: the sigmoid cross-entropy
#
# Write $\mathcal{L}_\text{det}$ from its equation. `detection_loss_exercise(logits, targets)` takes the logits
# $\ell$ and the binary disks $D$, both `(B, N, h, w)`, and returns a 0-d tensor: the cross-entropy averaged
# over every pixel of every map of every image. Do not compute $\log\sigma(\ell)$ as
# `torch.sigmoid(ell).log()`: for $\ell = 60$, $1 - \sigma(\ell)$ is exactly 0 in float32 and its log is
# $-\infty$. Use $\log\sigma(\ell)$ = `F.logsigmoid(ell)` and $\log(1 - \sigma(\ell)) = \log\sigma(-\ell)$,
# which stay finite. The check compares with `detection_loss` on random logits, on the zero head's logits
# ($\ln 2$), and on logits of $\pm 60$, right and wrong.

# %% nbgrader={"grade": false, "grade_id": "detection_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def detection_loss_exercise(logits, targets):
    """Per-pixel sigmoid cross-entropy of (B, N, h, w) logits against 0/1 targets, averaged: a 0-d tensor."""
    ### BEGIN SOLUTION
    D = targets.to(logits.dtype)
    return -(D * F.logsigmoid(logits) + (1 - D) * F.logsigmoid(-logits)).mean()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "detection_loss_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from fa3d.course import exercises
facts["exercise_detection_loss_max_diff"] = exercises.check_detection_loss(detection_loss_exercise)

# %% [markdown]
# ## 9. Training the quick detector
#
# `course.ensure_run("detection", OUT_DIR, train=TRAIN)` gives the quick run of the detection stage: 1,000
# synthetic faces (rendered at 96 px, cropped to 64 px with the paper's augmentation), validated on 200
# others after each epoch. fa3d ships this run ready-made (`fa3d/weights/course`, made by `make course-runs`
# with exactly these settings), so by default it is installed in a second; with `TRAIN = True` it is trained
# here, about a minute on 2 CPU cores, and the curves below are your own. Either way it is reused by later
# notebooks and resumed if interrupted. Notebook 03 continues from these weights.
#
# The schedule is data (`fa3d.schedules`): the paper trains this stage 30 epochs with the learning rate going
# from $10^{-3}$ to $2.5\times10^{-5}$ at batch 8, starting from ImageNet weights. The quick run has neither
# ImageNet weights nor time: Adam, a few epochs, higher rates (a geometric decay per step in both).

# %% [markdown]
# ### Your turn: one training step
#
# Everything a training loop does once per batch, for this stage. `detection_step_exercise(net, optimizer,
# images, landmarks, face_height)` takes a `DetectionNet` in training mode, its optimiser, a batch of
# normalised crops `(B, 3, S, S)`, their landmarks `(B, N, 3)` in crop pixels and the faces' box heights `(B,)`
# in crop pixels, and takes one step: the logits, the disk targets at the logits' resolution $h = S/4$ (the
# points mapped with `resize_points(landmarks, S, h)`, the radius `disk_radius(face_height * h / S)`, §8), the
# sigmoid cross-entropy (your function from §8 or `detection_loss`), then the update. It returns the loss.
# The optimiser may hold gradients from an earlier step. The check runs SGD with momentum and RMSprop on a
# tiny detector and compares the loss and every weight and batch-norm statistic after the step with the step
# fa3d's training takes.

# %% nbgrader={"grade": false, "grade_id": "detection_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def detection_step_exercise(net, optimizer, images, landmarks, face_height):
    """One optimiser step of the detection stage on a batch; returns the loss (a number or a 0-d tensor)."""
    ### BEGIN SOLUTION
    logits = net(images)                                            # (B, N, h, h)
    S, h = images.shape[-1], logits.shape[-1]
    radius = disk_radius(face_height * h / S)                       # (B,) map px
    targets = disk_heatmaps(resize_points(landmarks, S, h), h, radius)
    loss = detection_loss(logits, targets)
    optimizer.zero_grad()                                           # drop the previous step's gradients
    loss.backward()
    optimizer.step()
    return loss.item()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "detection_step_check", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
from fa3d.course import exercises
facts["exercise_detection_step_max_diff"] = exercises.check_detection_step(detection_step_exercise)

# %%
for name in ("paper", "quick"):
    s = get_schedule(name)
    print(f"{name:6s} detection stage: {s.detection}, optimiser {s.optimizer}")

# %%
RUN_DIR = course.ensure_run("detection", OUT_DIR, train=TRAIN)
log = read_log(RUN_DIR)
print(f"{len(log)} epochs, {sum(r['seconds'] for r in log):.0f} s of training; last epoch: "
      f"valid GTE xy {log[-1]['valid_gte_xy']:.2f} %")
viz.training_curves(log, title="quick detection stage")

# %% [markdown]
# The loss falls far below $\ln 2 \approx 0.69$ within the first epoch (mostly by learning "background"),
# then keeps falling as the disks sharpen; the validation GTE (computed from the detection maps alone) falls
# with it.

# %% [markdown]
# ## 10. Detection maps of a test face
#
# The test faces were never seen in training, nor used to tune anything. The sigmoid of the logits is the detector's per-pixel
# probability that the landmark is within $r$; its argmax, mapped from the $S/4$ map back to crop pixels
# (`resize_points`), is the detection-only estimate.

# %%
cascade, ckpt = load_run(RUN_DIR)
crops = course.test_crops(RUN_DIR, NUM_EVAL)
img, gt = crops["image"][FACE_INDEX], crops["landmarks"][FACE_INDEX]
with torch.no_grad():
    out = cascade(img[None], upto="detection")     # the cascade's forward, stopped after this subnet
maps, det_xy = out["detection_maps"][0], out["detection_xy"][0]   # (N, S/4, S/4) sigmoid maps; (N, 2) crop px

fig = Figure(figsize=(12, 3.3), layout="constrained")
axes = fig.subplots(1, 4)
viz.show_prediction(img, det_xy, gt[:, :2], scheme, ax=axes[0], zoom=False, legend=False,
                    title="detection-only estimate (magenta) vs truth (green)")
viz.show_heatmap(maps, None, image=img, ax=axes[1], alpha=0.6, title="Σ of the N detection maps")
viz.show_heatmap(maps, LANDMARK, image=img, ax=axes[2], alpha=0.7, title=f"map {LANDMARK} (sigmoid)")
axes[2].plot(*gt[LANDMARK, :2], "o", mfc="none", mec=viz.GT_COLOUR, ms=9)
axes[2].plot(*det_xy[LANDMARK], "c+", ms=10, mew=1.5)
axes[3].imshow(maps[LANDMARK], cmap="magma", vmin=0, vmax=1)
axes[3].set_title(f"map {LANDMARK} at its own {h_map}×{h_map} resolution", fontsize=8)
axes[3].set_axis_off()
fig

# %% [markdown]
# ## 11. How good is detection alone?
#
# `course.score_stage(cascade, crops, "detection", mean_shape)` decodes the detection maps of every
# test crop and computes the GTE in $x, y$ (percent of the interocular distance), next to the
# **mean-shape baseline**: the mean training shape placed in every crop, what a model that ignores the
# image scores. $z$ is meaningless here (the Z net is untrained), so only $xy$ counts. As a floor, the
# ground-truth disks decoded the same way show what this representation can give at best: a flat disk
# on a coarse $S/4$ grid has no sub-pixel peak.

# %%
score = course.score_stage(cascade, crops, "detection", ckpt["mean_shape"])
model_gte, baseline_gte = score["model"]["gte_xy"], score["baseline"]["gte_xy"]
gt_lm = crops["landmarks"]
heights = gt_lm[..., 1].amax(-1) - gt_lm[..., 1].amin(-1)
gt_disks = disk_heatmaps(resize_points(gt_lm, S, h_map), h_map, disk_radius(heights * h_map / S))
oracle_xy = resize_points(decode_heatmaps(gt_disks), h_map, S)
oracle = torch.cat([oracle_xy, gt_lm[..., 2:]], -1)
oracle_gte = summarize(oracle, gt_lm)["gte_xy"]
print(f"GTE xy on {len(gt_lm)} test faces: detection-only {model_gte:.2f} % | mean shape "
      f"{baseline_gte:.2f} % | ground-truth disks decoded {oracle_gte:.2f} %")
print(f"detection-only / baseline = {model_gte / baseline_gte:.2f}")
facts.update(model_gte=model_gte, baseline_gte=baseline_gte, disk_decoding_floor_gte=oracle_gte,
             num_eval=len(gt_lm))

base = ckpt["mean_shape"].expand_as(gt_lm)
viz.ced_figure({"detection only": (score["pred"], gt_lm), "mean shape": (base, gt_lm),
                "ground-truth disks": (oracle, gt_lm)}, axes=("xy",), max_error=0.7, panel_size=4.0)

# %% [markdown]
# The detector beats the mean shape by a wide margin: it really looks at the image. But its maps are
# coarse (stride 4) and flat-topped, so even perfect disks decode only to within a few percent. That is the
# regression subnetwork's job (notebook 03): turn detection maps into Gaussians whose peaks can be read to a
# fraction of a pixel.

# %%
course.save_facts(facts, OUT_DIR, "02_detection")

# %% [markdown]
# ## Summary
#
# - The detector is a ResNet made fully convolutional: `layer4` at stride 1 ($S/16$ features), a deconvolution
#   initialised to bilinear ×4 and a zero-initialised 1×1 head to $N$ maps at $S/4$; the step-by-step build
#   matched `DetectionNet` weight for weight (the difference printed in §6).
# - The paper's ResNet-152 detector, counted on the `meta` device: its parameters and GFLOP per 384 px image
#   are printed in §7.
# - Targets are binary disks (at the quick scale clamped to 1 map pixel, §8) scored by a per-pixel sigmoid
#   cross-entropy that starts at $\ln 2$ with the zero head.
# - On the test faces, detection alone beats the mean-shape baseline (the GTE xy of both, and the floor of
#   decoded ground-truth disks, are printed in §11), but coarse flat-topped maps limit it.
# - Next: notebook 03 adds the regression subnet, whose Gaussian heatmaps decode to a fraction of a pixel.

# %% [markdown]
# ## The paper and fa3d
#
# What the paper says about the detection subnetwork, where it contradicts itself, and what fa3d chose
# where it says nothing.
#
# | what | the paper says (quoted, with its section) | fa3d chooses (and why) |
# |---|---|---|
# | the loss | "a part detection network trained to detect the individual facial landmarks using a per-pixel softmax loss" (§1), but "The network was trained using the pixel wise sigmoid cross entropy loss function." (§2.1) | The sigmoid cross-entropy of §2.1, the section that describes the network in detail. Its targets are $N$ independent binary maps whose disks may overlap (neighbouring landmarks); a softmax across the maps would force each pixel to belong to one landmark (§8 above). |
# | the backbone | "(1) removing the fully connected layer alongside the preceding average pooling layer, (2) changing the stride of the 5th block from 2 to 1 pixels" (§2.1) | torchvision's ResNet-152 without `avgpool` and `fc`, with `layer4` (conv5_x) at stride 1. Only the stride changes, so the ImageNet weights load by name (§3 above). |
# | the new layers | "(3) adding at the end a deconvolution [14] followed by a fully convolutional layer" (§2.1); the factor, the kernel and the output's stride are not given (§2.1 refers to [13] for "the exact network architecture") | fa3d's choice: a ×4 deconvolution ($S/16 \to S/4$) with one filter per channel, then a 1×1 convolution to $N$ maps at stride 4, where the hourglass works. A full 2048 → 2048 deconvolution would cost 268 M weights for nothing the 1×1 convolution cannot do (§4 above). |
# | initialisation | "with the newly introduced layers initialized with zeros" and "All the newly introduced deconvolutional layers were initialised using the bilinear upsampling filters" (§2.3) | The 1×1 head starts at zero and the deconvolution at bilinear upsampling. A zero deconvolution as well would leave the head's and its own weights with zero gradients for ever (§5 above). |
# | the targets | "The radius defining the “correct location” was empirically set to 7 pixels, for a face with a bounding box height equal to approximately 220 pixels." (§2.1) | The radius scaled with the face's height, drawn on the stride-4 maps, never below 1 map pixel; the quick preset's disks hit that floor (notebook 01 §7). |
# | ImageNet weights | "the network was fine-tuned from a pretrained model on the large ImageNet [17] dataset" (§2.3) | torchvision's ImageNet ResNet-152, on by default for the paper preset, with a clear error when it cannot be fetched. The quick detector (basic blocks, width 32) has no ImageNet model, so it starts from random weights. The paper preset without ImageNet weights starts every residual block as the identity (the last batch norm's scale at zero, `DetectionConfig.zero_init_residual`), fa3d's choice: from kaiming-random blocks, the 50 bottlenecks of ResNet-152 trained on a CPU stayed at the loss of an all-background map (docs/speed.md). |
# | the schedule | "The detection component was then trained for 30 epochs with a learning rate progressively decreasing from 1e − 3 to 2.5e − 5." (§2.3) | Those end points, with a geometric decay per step (the shape of the decay is not given) and RMSprop (the optimiser is not named; notebook 07 says why). The quick run uses Adam and a few epochs (§9 above). |

# %% [markdown]
# ## Exercises
#
# 1. **Keep stride 2.** Build the quick detector with torchvision's stride 2 in `layer4` (`resnet_fcn(cfg, 2)`
#    above) and an ×8 `BilinearUpsample`. Compare the parameter count, the feature map side and the output
#    shape with `DetectionNet`. For the paper preset (meta device), how many GFLOP does stride 1 cost over
#    stride 2? *Hint:* `FlopCounterMode` as in §7; the head is a 1×1 `nn.Conv2d(out_channels, N, 1)`.
# 2. **Bilinear vs random deconvolution.** Replace the weights of a `BilinearUpsample(1, 4)` by
#    `torch.randn` and upsample the constant map of §4. Why would a randomly initialised deconvolution be a
#    poor start for a network whose head is zero? *Hint:* compare `up_const.std()` in the interior for both.
# 3. **A random head.** Initialise the quick detector's head with `nn.init.kaiming_normal_` instead of zeros
#    and compute the loss on the face of §8 before any training. How far is it from $\ln 2$?
#    *Hint:* `detection_loss(net(normalize_images(face["image"][None])), targets)`.
# 4. **Class imbalance.** Only a few percent of the pixels are positive. Compute the loss of a constant
#    logit $c$ on the targets of §8 for $c \in [-6, 2]$ and find the best constant; what fraction does
#    $\sigma(c^\*)$ equal? Try `pos_weight` in `F.binary_cross_entropy_with_logits`. *Hint:* the best
#    constant prediction of a cross-entropy is the base rate.

# %% [markdown]
# ## References
#
# - Bulat, A. & Tzimiropoulos, G. (2016). *Two-stage convolutional part heatmap regression for the 1st 3D face
#   alignment in the wild (3DFAW) challenge.* ECCV 2016 Workshops.
#   [arXiv:1609.09545](https://arxiv.org/abs/1609.09545),
#   [doi:10.1007/978-3-319-48881-3_43](https://doi.org/10.1007/978-3-319-48881-3_43). §2.1: the detection
#   subnet, its disk targets and loss.
# - He, K., Zhang, X., Ren, S. & Sun, J. (2016a). *Deep residual learning for image recognition.* CVPR.
#   [arXiv:1512.03385](https://arxiv.org/abs/1512.03385). ResNet-152 and the residual blocks of §2–3.
# - Long, J., Shelhamer, E. & Darrell, T. (2015). *Fully convolutional networks for semantic segmentation.*
#   CVPR. [arXiv:1411.4038](https://arxiv.org/abs/1411.4038). Fully convolutional networks with a learned
#   (bilinear-initialised) deconvolution, as in §1 and §4.
# - Bulat, A. & Tzimiropoulos, G. (2016). *Human pose estimation via convolutional part heatmap regression.*
#   ECCV. [arXiv:1609.01743](https://arxiv.org/abs/1609.01743). The part detection network that §2.1 reuses.
