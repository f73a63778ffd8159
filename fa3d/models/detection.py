"""Landmark detection subnetwork (paper §2.1): a fully convolutional ResNet.

The paper takes an ImageNet ResNet-152 and
  (1) removes the average pooling and the fully connected classifier,
  (2) changes the stride of the last stage ("5th block", torchvision's layer4) from 2 to 1,
  (3) adds a deconvolution followed by a 1×1 convolution to N landmark maps.

So a (B, 3, S, S) crop gives (B, 2048, S/16, S/16) backbone features, which a
learned ×4 deconvolution brings to stride 4 and a 1×1 conv turns into N logit
maps (B, N, S/4, S/4). Each map is trained with a per-pixel sigmoid
cross-entropy against a binary disk around the landmark (paper: radius 7 px for
a face ~220 px high).

The backbone is built from torchvision's residual blocks with torchvision's
parameter names, so its ImageNet weights load unchanged (``pretrained=True``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn as nn
from torchvision.models import resnet as tv_resnet


@dataclass
class DetectionConfig:
    layers: tuple[int, ...] = (3, 8, 36, 3)  # blocks per stage: ResNet-152
    block: str = "bottleneck"                 # "bottleneck" (ResNet-50/101/152) or "basic" (ResNet-18/34)
    width: int = 64                           # channels of the stem; stage i has width·2^i (×4 for bottleneck)
    pretrained: bool = False                  # load torchvision's ImageNet weights (needs them on disk or a network)
    # Start every residual block as the identity (its last BN's scale at zero; Goyal et al. 2017,
    # torchvision's zero_init_residual). Our choice for the paper preset, where it matters only from
    # scratch (ImageNet weights overwrite it): 50 blocks of random residuals stalled at the loss of an
    # all-background map (docs/speed.md). The small presets keep the plain initialisation they were trained with.
    zero_init_residual: bool = False


class PretrainedWeightsUnavailable(RuntimeError):
    """ImageNet weights were asked for but could not be fetched or read."""


# ----------------------------------------------------------------------------- building blocks

class BilinearUpsample(nn.ConvTranspose2d):
    """Learned ×``factor`` upsampling, initialised to bilinear interpolation (paper §2.3).

    One k×k filter per channel (groups=channels, as in FCN's "bilinear" deconvolutions):
    a full C→C deconvolution would cost C²k² weights (268 M for C=2048, k=8) for
    nothing that the following 1×1 conv cannot do. (B, C, H, W) -> (B, C, factor·H, factor·W).
    Kernel 2f - f%2 and padding (k - f)/2 put output pixel centres where
    ``F.interpolate(..., mode="bilinear", align_corners=False)`` puts them; only the
    outermost f/2 pixels differ (they miss a neighbour, so a constant map fades there).
    """

    def __init__(self, channels: int, factor: int):
        kernel = 2 * factor - factor % 2
        super().__init__(channels, channels, kernel, stride=factor, padding=(kernel - factor) // 2,
                         groups=channels, bias=False)

    def reset_parameters(self) -> None:
        k, f = self.kernel_size[0], self.stride[0]
        tent = 1 - (torch.arange(k, dtype=torch.float32) - (k - 1) / 2).abs() / f
        with torch.no_grad():
            self.weight.copy_(torch.outer(tent, tent).expand_as(self.weight))


class ResNetBackbone(nn.Module):
    """torchvision's ResNet without avgpool/fc, with a stride-1 last stage.

    Same modules and parameter names as ``torchvision.models.resnet.ResNet``
    (conv1, bn1, layer1..layer4 made of its BasicBlock/Bottleneck), so a
    torchvision state dict loads once its ``fc.*`` entries are dropped.
    (B, 3, S, S) -> (B, out_channels, S/16, S/16).
    """

    def __init__(self, block: str = "bottleneck", layers=(3, 8, 36, 3), width: int = 64,
                 zero_init_residual: bool = False):
        super().__init__()
        if block not in ("basic", "bottleneck"):
            raise ValueError(f"block must be 'basic' or 'bottleneck', got {block!r}")
        if len(layers) != 4:
            raise ValueError(f"expected 4 stages, got layers={layers}")
        self.block_class = tv_resnet.Bottleneck if block == "bottleneck" else tv_resnet.BasicBlock
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(width, layers[0], stride=1)      # stride 4
        self.stride4_channels = self.inplanes
        self.layer2 = self._make_layer(2 * width, layers[1], stride=2)  # stride 8
        self.layer3 = self._make_layer(4 * width, layers[2], stride=2)  # stride 16
        # Paper §2.1: the last stage keeps stride 1 (torchvision uses 2). Only the stride
        # changes, no dilation is added, so the ImageNet filters keep their shapes.
        self.layer4 = self._make_layer(8 * width, layers[3], stride=1)  # stride 16
        self.out_channels = self.inplanes
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, tv_resnet.Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, tv_resnet.BasicBlock):
                    nn.init.zeros_(m.bn2.weight)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        """One stage: ``blocks`` residual blocks; the first changes stride/channels (as torchvision)."""
        out = planes * self.block_class.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = nn.Sequential(tv_resnet.conv1x1(self.inplanes, out, stride), nn.BatchNorm2d(out))
        stage = [self.block_class(self.inplanes, planes, stride, downsample)]
        self.inplanes = out
        stage += [self.block_class(out, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward(self, x: torch.Tensor, return_stride4: bool = False):
        """The stride-16 features, and with ``return_stride4`` also layer1's (B, stride4_channels, S/4, S/4)."""
        stride4 = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        out = self.layer4(self.layer3(self.layer2(stride4)))
        return (out, stride4) if return_stride4 else out


# ----------------------------------------------------------------------------- the subnetwork

class DetectionNet(nn.Module):
    """(B, 3, S, S) normalised crops -> (B, N, S/4, S/4) landmark logits (S divisible by 16).

    With ``return_features``, also the backbone's stride-4 features (its layer1 output,
    (B, backbone.stride4_channels, S/4, S/4)): the "image features" the regression net can
    stack with the maps (``RegressionConfig.detection_features``)."""

    def __init__(self, config: DetectionConfig, num_landmarks: int):
        super().__init__()
        self.config = config
        self.backbone = ResNetBackbone(config.block, config.layers, config.width, config.zero_init_residual)
        channels = self.backbone.out_channels
        self.upsample = BilinearUpsample(channels, factor=4)          # stride 16 -> 4
        self.head = nn.Conv2d(channels, num_landmarks, kernel_size=1)
        nn.init.zeros_(self.head.weight)  # §2.3: new layers start at zero -> all logits 0
        nn.init.zeros_(self.head.bias)
        if config.pretrained:
            load_imagenet_backbone(self.backbone, config)

    def forward(self, images: torch.Tensor, return_features: bool = False):
        if not return_features:
            return self.head(self.upsample(self.backbone(images)))
        out, stride4 = self.backbone(images, return_stride4=True)
        return self.head(self.upsample(out)), stride4


# ----------------------------------------------------------------------------- ImageNet weights

# (block, layers) -> torchvision weights enum name; only width 64 matches ImageNet models.
IMAGENET_WEIGHTS = {
    ("basic", (2, 2, 2, 2)): "ResNet18_Weights.IMAGENET1K_V1",
    ("basic", (3, 4, 6, 3)): "ResNet34_Weights.IMAGENET1K_V1",
    ("bottleneck", (3, 4, 6, 3)): "ResNet50_Weights.IMAGENET1K_V2",
    ("bottleneck", (3, 4, 23, 3)): "ResNet101_Weights.IMAGENET1K_V2",
    ("bottleneck", (3, 8, 36, 3)): "ResNet152_Weights.IMAGENET1K_V2",
}


def imagenet_weights(config: DetectionConfig):
    """The torchvision weights enum member that fits ``config``'s layout (ValueError if none)."""
    name = IMAGENET_WEIGHTS.get((config.block, tuple(config.layers)))
    if name is None or config.width != 64:
        raise ValueError(f"no torchvision ImageNet weights for block={config.block!r} layers={tuple(config.layers)} "
                         f"width={config.width}; known layouts (width 64): {sorted(IMAGENET_WEIGHTS)}. "
                         "Use pretrained=False.")
    enum_name, member = name.split(".")
    return getattr(getattr(tv_resnet, enum_name), member)


def load_imagenet_backbone(backbone: ResNetBackbone, config: DetectionConfig) -> None:
    """Load torchvision's ImageNet weights into ``backbone`` (fc dropped).

    torch looks for the file in ``torch.hub.get_dir()/checkpoints`` and downloads it
    there when missing. Raises :class:`PretrainedWeightsUnavailable` when it can do
    neither; it never falls back to random weights silently.
    """
    weights = imagenet_weights(config)
    filename = os.path.basename(weights.url)
    where = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
    try:
        state = weights.get_state_dict(progress=False, check_hash=False)
    except Exception as err:  # no network, proxy, corrupt file...: all end the same way
        raise PretrainedWeightsUnavailable(
            f"could not fetch the ImageNet weights {weights} ({type(err).__name__}: {err}).\n"
            f"torch looks for them at {where} (torch.hub.get_dir()/checkpoints; set TORCH_HOME to move it).\n"
            f"To install them by hand, download {weights.url} on a machine with internet access "
            f"and copy the file to that path.\n"
            f"Or set pretrained=False to train the detection network from random initialisation."
        ) from err
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    backbone.load_state_dict(state)
