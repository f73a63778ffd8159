"""Z regression subnetwork (paper §2.2, Fig. 2, Table 1): depth of every landmark.

A pre-activation ResNet-200 (He et al. 2016, "Identity mappings in deep residual
networks") whose first convolution takes 3+N channels (the RGB crop and one
Gaussian heatmap per landmark, std 6 px at 384 px) and whose classifier is
replaced by a fully connected layer with N outputs: z of each landmark, in pixels
of the crop. Trained with eq. (1), the mean squared error on z.

Table 1, with Torch notation (channels, kernel, stride):
    B1  conv (64, 7×7, 2), BN, ReLU       -> S/2
    B2  max-pool (3×3, 2)                 -> S/4
    B3  3× bottleneck (64, 64, 256)       -> S/4
    B4  24× bottleneck (128, 128, 512)    -> S/8
    B5  36× bottleneck (256, 256, 1024)   -> S/16
    B6  3× bottleneck (512, 512, 2048)    -> S/32, then BN-ReLU, global average pool, FC (N)

The stem is the pre-activation ResNet's (He et al.; fb.resnet.torch's ``preresnet.lua``, the Torch7
pre-activation ResNet of the time; the paper does not say whose ImageNet ResNet-200 it fine-tuned):
conv -> BN -> ReLU -> max-pool. Only the residual units
are pre-activated; the first conv still needs its own BN-ReLU before pooling.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .regression import PreActBottleneck


@dataclass
class ZConfig:
    # Table 1 prints 38 blocks for B5; the standard pre-activation ResNet-200 (and its
    # ImageNet weights) has 3-24-36-3 = 66 blocks × 3 convs + 2 = 200 layers, so 36.
    layers: tuple[int, ...] = (3, 24, 36, 3)
    block: str = "bottleneck"  # "bottleneck" or "basic" (two 3×3 convs, for small presets)
    width: int = 64            # stem channels; stage i has width·2^i (×4 at the output for bottleneck)
    pretrained_path: str | None = None  # optional state dict to fine-tune from (see load_pretrained)
    # What the first convolution sees. The paper: the RGB crop stacked with the N heatmaps.
    # "rgb" and "heatmaps" are its ablations (notebook 08): the other input is not used at all.
    inputs: str = "rgb+heatmaps"
    # The side (px) of the crop and heatmaps the Z net sees; None: the crop's own side (the paper).
    # Smaller (a divisor of the crop's side, e.g. 64 at 128 px): the crop is box-averaged down and the
    # Gaussians rendered there, and z comes back in crop pixels. Our choice for the medium preset: depth
    # needs far less detail than x, y do, and at full size the Z net would take most of a face's time.
    input_size: int | None = None
    # Start every residual unit as the identity (its last convolution at zero, as Fixup and SkipInit do for
    # nets without a closing BN). Our choice for the paper preset trained from scratch, as for its detection
    # net; pretrained weights overwrite it. It does not make the paper's 1e-2 (meant for an ImageNet
    # ResNet-200) safe from scratch: that still blew up, 1e-3 trained (docs/speed.md, paper_schedule).
    zero_init_residual: bool = False

    def __post_init__(self):
        if self.inputs not in Z_INPUTS:
            raise ValueError(f"ZConfig.inputs must be one of {Z_INPUTS}, got {self.inputs!r}")

    def in_channels(self, num_landmarks: int) -> int:
        """Channels of the first convolution: 3 (RGB) and/or N (heatmaps)."""
        return 3 * ("rgb" in self.inputs) + num_landmarks * ("heatmaps" in self.inputs)


Z_INPUTS = ("rgb+heatmaps", "rgb", "heatmaps")


class PreActBasic(nn.Module):
    """Pre-activation basic unit: BN-ReLU-conv3×3(stride) - BN-ReLU-conv3×3, plus identity or projection.

    (B, in_ch, H, W) -> (B, out_ch, H/stride, W/stride).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        return self.conv2(F.relu(self.bn2(out))) + skip


def make_stage(block: str, in_ch: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    """``blocks`` pre-activation units; the first one changes stride and channels."""
    if block == "bottleneck":
        out_ch = 4 * width
        units = [PreActBottleneck(in_ch if i == 0 else out_ch, width, out_ch, stride if i == 0 else 1)
                 for i in range(blocks)]
    elif block == "basic":
        units = [PreActBasic(in_ch if i == 0 else width, width, stride if i == 0 else 1) for i in range(blocks)]
    else:
        raise ValueError(f"block must be 'basic' or 'bottleneck', got {block!r}")
    return nn.Sequential(*units)


class ZRegressor(nn.Module):
    """(images (B,3,S,S) normalised, heatmaps (B,N,S,S)) -> z (B, N) in crop pixels.

    With ``config.inputs`` "rgb" or "heatmaps" the other argument is ignored (ablations)."""

    def __init__(self, config: ZConfig, num_landmarks: int):
        super().__init__()
        self.config = config
        N, w = num_landmarks, config.width
        expansion = 4 if config.block == "bottleneck" else 1
        self.conv1 = nn.Conv2d(config.in_channels(N), w, kernel_size=7, stride=2, padding=3, bias=False)  # B1
        self.bn1 = nn.BatchNorm2d(w)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)                   # B2
        stages, in_ch = [], w
        for i, blocks in enumerate(config.layers):                                        # B3-B6
            stages.append(make_stage(config.block, in_ch, w * 2 ** i, blocks, stride=1 if i == 0 else 2))
            in_ch = w * 2 ** i * expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.norm = nn.BatchNorm2d(in_ch)   # pre-activation nets end with BN-ReLU
        self.fc = nn.Linear(in_ch, N)
        self._init_weights()
        if config.pretrained_path:
            load_pretrained(self, config.pretrained_path)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        # §2.3: the newly introduced filters (first conv, final FC) ~ N(0, 0.01).
        nn.init.normal_(self.conv1.weight, std=0.01)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)
        if self.config.zero_init_residual:
            for m in self.modules():
                if isinstance(m, PreActBottleneck):
                    nn.init.zeros_(m.conv3.weight)
                elif isinstance(m, PreActBasic):
                    nn.init.zeros_(m.conv2.weight)

    def forward(self, images: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        if self.config.inputs == "rgb":
            x = images
        elif self.config.inputs == "heatmaps":
            x = heatmaps
        else:
            x = torch.cat([images, heatmaps], dim=1)                         # (B, 3+N, S, S)
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))                    # (B, w, S/4, S/4)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))            # (B, C, S/32, S/32)
        x = F.relu(self.norm(x)).mean(dim=(2, 3))                            # (B, C)
        return self.fc(x)




def load_pretrained(model: ZRegressor, path: str) -> None:
    """Initialise ``model`` from a state dict at ``path`` (e.g. ImageNet pre-act ResNet-200).

    torchvision has no pre-activation ResNet-200, so fa3d cannot download one: bring a
    state dict whose keys follow this module's names (conv1, bn1, layer1..4, norm, fc),
    loaded with ``weights_only=True``. Entries whose shape differs are the "newly
    introduced" layers and keep their N(0, 0.01) init: the classifier ``fc`` (1000
    ImageNet classes vs N landmarks) and the first conv (3 vs 3+N input channels),
    except that an RGB first conv (w, 3, 7, 7) is copied into the RGB input channels
    so only the heatmap channels start from the Gaussian init.
    Any other missing or unexpected key is a ValueError naming the file; no file, a FileNotFoundError.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Z net weights not found: {path} (a state dict of a pre-activation ResNet-200)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    own = model.state_dict()
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    unexpected = sorted(set(state) - set(own))
    new_layers = {"conv1.weight", "fc.weight", "fc.bias"}
    wrong_shape = sorted(k for k in set(own) & set(state) - new_layers if state[k].shape != own[k].shape)
    if missing or unexpected or wrong_shape:
        raise ValueError(f"{path}: not a state dict of this Z network's layout: missing keys {missing[:3]}, "
                         f"unexpected keys {unexpected[:3]}, wrong shapes {wrong_shape[:3]}")
    first_conv, own_first = state["conv1.weight"], own["conv1.weight"]
    state = {k: v for k, v in state.items() if v.shape == own[k].shape}
    if "rgb" in model.config.inputs and first_conv.shape == own_first[:, :3].shape:
        conv = own_first.clone()  # an RGB first conv: reuse it for the RGB input channels
        conv[:, :3] = first_conv  # the N heatmap channels keep N(0, 0.01)
        state["conv1.weight"] = conv
    model.load_state_dict(state, strict=False)
