"""Tests for fa3d.models: architecture facts of the paper preset, shapes, inits, losses, weights."""
import math
import os
import urllib.error

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import Bottleneck

from fa3d.heatmaps import decode_heatmaps, disk_heatmaps, gaussian_heatmaps
from fa3d.data.transforms import unwarp_landmarks
from fa3d.heatmaps import resize_points
from fa3d.models import (PRESETS, Cascade, DetectionConfig, DetectionNet, Preset, PretrainedWeightsUnavailable,
                         RegressionNet, ZConfig, ZRegressor, detection_loss, get_preset, override_preset,
                         normalize_images, regression_loss, z_loss)
from fa3d.models.detection import BilinearUpsample, ResNetBackbone
from fa3d.models.regression import Hourglass, PreActBottleneck
from fa3d.models.zregressor import load_pretrained

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def paper_meta():
    """The paper preset's three nets on the meta device: structure and shapes, no memory, no compute."""
    preset = get_preset("paper")
    with torch.device("meta"):
        N = preset.num_landmarks
        detection = DetectionNet(preset.detection, N)
        regression = RegressionNet(preset.regression, N, detection.backbone.stride4_channels)
        return preset, detection, regression, ZRegressor(preset.z, N)


@pytest.fixture(scope="module")
def quick():
    torch.manual_seed(0)
    return get_preset("quick"), Cascade.from_preset(get_preset("quick"))


# ----------------------------------------------------------------------------- paper architecture

def test_paper_detection_is_resnet152_with_stride16(paper_meta):
    _, det, _, _ = paper_meta
    bb = det.backbone
    assert [len(s) for s in (bb.layer1, bb.layer2, bb.layer3, bb.layer4)] == [3, 8, 36, 3]
    assert all(isinstance(b, Bottleneck) for b in bb.layer3)
    assert bb.layer3[0].conv2.stride == (2, 2) and bb.layer3[0].downsample[0].stride == (2, 2)
    # paper §2.1: the last stage's stride goes from 2 to 1, and nothing else changes (no dilation)
    assert bb.layer4[0].conv2.stride == (1, 1) and bb.layer4[0].downsample[0].stride == (1, 1)
    assert all(b.conv2.dilation == (1, 1) for b in bb.layer4)
    assert bb.out_channels == 2048 and det.head.in_channels == 2048 and det.head.out_channels == 66
    assert not hasattr(bb, "fc") and not hasattr(bb, "avgpool")
    x = torch.zeros(1, 3, 384, 384, device="meta")
    assert bb(x).shape == (1, 2048, 384 // 16, 384 // 16)
    assert det(x).shape == (1, 66, 96, 96)


@pytest.mark.parametrize("block,layers,tv_model", [("bottleneck", (3, 8, 36, 3), "resnet152"),
                                                  ("basic", (2, 2, 2, 2), "resnet18")])
def test_backbone_state_dict_matches_torchvision(block, layers, tv_model):
    with torch.device("meta"):
        ours = ResNetBackbone(block, layers, 64).state_dict()
        theirs = getattr(torchvision.models, tv_model)().state_dict()
    theirs = {k: v.shape for k, v in theirs.items() if not k.startswith("fc.")}
    assert {k: v.shape for k, v in ours.items()} == theirs


def test_paper_z_is_preact_resnet200(paper_meta):
    _, _, _, z = paper_meta
    assert [len(s) for s in (z.layer1, z.layer2, z.layer3, z.layer4)] == [3, 24, 36, 3]
    assert all(isinstance(b, PreActBottleneck) for s in (z.layer1, z.layer2, z.layer3, z.layer4) for b in s)
    assert 3 * sum(len(s) for s in (z.layer1, z.layer2, z.layer3, z.layer4)) + 2 == 200  # + conv1 + fc
    # the pre-activation ResNet stem: conv -> BN -> ReLU -> max-pool (fb.resnet.torch preresnet)
    assert isinstance(z.bn1, nn.BatchNorm2d) and z.bn1.num_features == z.conv1.out_channels == 64
    assert z.conv1.in_channels == 3 + 66 and z.conv1.kernel_size == (7, 7) and z.conv1.stride == (2, 2)
    widths = [(s[0].conv1.out_channels, s[0].conv2.out_channels, s[0].conv3.out_channels)
              for s in (z.layer1, z.layer2, z.layer3, z.layer4)]
    assert widths == [(64, 64, 256), (128, 128, 512), (256, 256, 1024), (512, 512, 2048)]
    assert [s[0].conv2.stride for s in (z.layer1, z.layer2, z.layer3, z.layer4)] == [(1, 1)] + [(2, 2)] * 3
    assert z.fc.in_features == 2048 and z.fc.out_features == 66
    x = torch.zeros(1, 3, 384, 384, device="meta")
    assert z(x, torch.zeros(1, 66, 384, 384, device="meta")).shape == (1, 66)


def test_paper_regression_hourglass(paper_meta):
    _, _, reg, _ = paper_meta
    assert sum(isinstance(m, Hourglass) for m in reg.modules()) == 4  # 4 pooling levels
    assert reg.stem.in_channels == 3 + 66
    # §1: "detection heatmaps stacked with image features": ResNet-152's layer1 output, 256 channels at stride 4
    assert reg.feature_stem.in_channels == 256 and reg.feature_stem.kernel_size == (1, 1)
    ups = [m for m in reg.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(ups) == 5 and all(isinstance(m, BilinearUpsample) for m in ups)  # 4 in the hourglass + final ×4
    assert not any(isinstance(m, nn.Upsample) for m in reg.modules())
    x = torch.zeros(1, 3, 384, 384, device="meta")
    features = torch.zeros(1, 256, 96, 96, device="meta")
    assert reg(x, torch.zeros(1, 66, 96, 96, device="meta"), features).shape == (1, 66, 384, 384)
    assert 3.0e6 < sum(p.numel() for p in reg.parameters()) < 3.8e6  # ~3.4 M: the paper-size one-stack hourglass net


def test_paper_cascade_shapes_on_meta():
    with torch.device("meta"):
        out = Cascade.from_preset(get_preset("paper"))(torch.zeros(1, 3, 384, 384))
    assert out["detection_logits"].shape == (1, 66, 96, 96)
    assert out["heatmaps"].shape == (1, 66, 384, 384)
    assert out["landmarks"].shape == (1, 66, 3)


def test_the_medium_and_paper_presets_decode_with_half_the_targets_sigma_and_old_runs_without():
    for name in ("medium", "paper"):
        preset = get_preset(name, 68)
        assert preset.decode_smoothing == preset.heatmap_sigma / 2
    assert get_preset("quick").decode_smoothing == 0.0   # as the shipped model and the ready-made runs
    old = get_preset("medium", 68).to_dict()
    del old["decode_smoothing"]                           # a run saved before the field existed
    assert Preset.from_dict(old).decode_smoothing == 0.0
    torch.manual_seed(0)
    cascade = Cascade.from_preset(get_preset("medium", 68)).eval()
    with torch.no_grad():
        out = cascade(torch.randint(0, 256, (1, 3, 128, 128), dtype=torch.uint8), upto="regression")
    assert torch.equal(out["xy"], decode_heatmaps(out["heatmaps"], smoothing=3.0))


# ----------------------------------------------------------------------------- quick preset, real forward

def test_quick_cascade_forward(quick):
    preset, cascade = quick
    S, N = preset.image_size, 66
    cascade.eval()
    images = torch.randint(0, 256, (2, 3, S, S), dtype=torch.uint8)
    with torch.no_grad():
        out = cascade(images)
        feats = cascade.detection.backbone(normalize_images(images))
    assert feats.shape[-1] == S // 16  # output stride 16 in the quick layout too
    assert out["detection_logits"].shape == (2, N, S // 4, S // 4)
    assert out["heatmaps"].shape == (2, N, S, S)
    lm = out["landmarks"]
    assert lm.shape == (2, N, 3) and lm.dtype == torch.float32 and torch.isfinite(lm).all()
    assert cascade.decode_smoothing == preset.decode_smoothing
    assert torch.equal(lm[..., :2], decode_heatmaps(out["heatmaps"], smoothing=preset.decode_smoothing))
    assert lm[..., :2].min() >= -0.5 and lm[..., :2].max() <= S - 0.5
    torch.testing.assert_close(lm[..., 2].mean(-1), torch.zeros(2), atol=1e-5, rtol=0)


class _OnePixelPeaks(nn.Module):
    """A subnet stand-in whose maps (B, N, s, s) are +10 at one pixel per landmark and -10 elsewhere
    (as logits) or 1 and 0 (as heatmaps); it records what it was given."""
    def __init__(self, size, peaks, logits):
        super().__init__()
        self.size, self.peaks, self.logits, self.seen = size, peaks, logits, []
        self.feature_stem = None   # as a regression net: it takes no detection features

    def forward(self, *inputs):
        self.seen.append(inputs)
        B = inputs[0].shape[0]
        low, high = (-10.0, 10.0) if self.logits else (0.0, 1.0)
        maps = torch.full((B, len(self.peaks), self.size, self.size), low)
        for n, (col, row) in enumerate(self.peaks):
            maps[:, n, row, col] = high
        return maps


class _ConstantZ(nn.Module):
    def __init__(self, z, input_size=None):
        super().__init__()
        self.config, self.z, self.seen = ZConfig(input_size=input_size), torch.tensor(z), []

    def forward(self, x, heatmaps):
        self.seen.append((x, heatmaps))
        return self.z.expand(x.shape[0], -1)


def test_the_cascade_chain_on_stand_in_subnets_gives_hand_worked_landmarks():
    """S = 64: the detection maps are 16 x 16, so the peak at column 3, row 5 is at crop pixel
    ((3 + 0.5) * 4 - 0.5, (5 + 0.5) * 4 - 0.5) = (13.5, 21.5); the regression's peaks are the
    landmarks' x, y; z (4, -2) is centred to (3, -3); the Z input is the Gaussians at x, y (1 at the peak)."""
    detection = _OnePixelPeaks(16, [(3, 5), (10, 2)], logits=True)
    regression = _OnePixelPeaks(64, [(20, 30), (50, 7)], logits=False)
    z = _ConstantZ([4.0, -2.0])
    cascade = Cascade(detection, regression, z, heatmap_sigma=2.0, num_landmarks=2)
    images = torch.zeros(1, 3, 64, 64, dtype=torch.uint8)
    out = cascade(images)
    assert out["detection_xy"].tolist() == [[[13.5, 21.5], [41.5, 9.5]]]
    (x, maps, features), = regression.seen                    # the regression net sees the image and sigmoid(logits)
    assert x.shape == (1, 3, 64, 64) and maps[0, 0, 5, 3] == pytest.approx(1 / (1 + math.exp(-10)))
    assert features is None
    assert out["landmarks"].tolist() == [[[20.0, 30.0, 3.0], [50.0, 7.0, -3.0]]]
    (_, heat), = z.seen
    assert heat[0, 0, 30, 20] == 1.0 and heat[0, 1, 7, 50] == 1.0
    assert heat[0, 0, 30, 22] == pytest.approx(math.exp(-4 / (2 * 2.0 ** 2)))   # 2 px away at sigma 2
    # a Z net that sees the crop at 32 px answers in its own pixels: twice that in crop pixels
    half = Cascade(detection, regression, _ConstantZ([4.0, -2.0], input_size=32), 2.0, 2)(images)
    assert half["landmarks"][0, :, 2].tolist() == [6.0, -6.0] and half["z_input"].shape == (1, 2, 32, 32)


def test_cascade_forward_stops_early_and_renders_z_input_at_given_points(quick):
    preset, cascade = quick
    S = preset.image_size
    cascade.eval()
    images = torch.randint(0, 256, (2, 3, S, S), dtype=torch.uint8)
    given = torch.rand(2, 66, 2) * (S - 1)
    with torch.no_grad():
        full = cascade(images)
        det = cascade(images, upto="detection")
        mixed = cascade(images, z_xy=given, z_gt_heatmap=torch.tensor([True, False]))
        z_only = cascade.z(normalize_images(images), gaussian_heatmaps(given, S, preset.heatmap_sigma))
    assert "heatmaps" not in det and "z" not in det
    assert torch.equal(det["xy"], full["detection_xy"]) and torch.equal(det["landmarks"][..., 2], torch.zeros(2, 66))
    assert torch.equal(mixed["xy"], full["xy"])                       # x, y never come from z_xy
    torch.testing.assert_close(mixed["z"][0], z_only[0])              # sample 0: Z input at the given points
    torch.testing.assert_close(mixed["z"][1], full["z"][1])           # sample 1: at the decoded points
    with pytest.raises(ValueError, match="upto"):
        cascade(images, upto="joint")


def test_channels_last_cascade_gives_the_same_landmarks(quick):
    preset, _ = quick
    torch.manual_seed(0)
    a = Cascade.from_preset(preset).eval()
    b = Cascade.from_preset(preset).eval()
    b.load_state_dict(a.state_dict())
    b.to_channels_last()
    images = torch.randint(0, 256, (2, 3, preset.image_size, preset.image_size), dtype=torch.uint8)
    with torch.no_grad():
        out_a, out_b = a(images), b(images)
    assert out_b["z_input"].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out_a["landmarks"], out_b["landmarks"], atol=1e-3, rtol=1e-4)


def test_cascade_under_cpu_bf16_autocast(quick):
    preset, cascade = quick
    cascade.eval()
    images = torch.randint(0, 256, (2, 3, preset.image_size, preset.image_size), dtype=torch.uint8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = cascade(images)
    assert out["landmarks"].dtype == torch.float32 and torch.isfinite(out["landmarks"]).all()


def test_presets_are_data():
    p68 = get_preset("quick", num_landmarks=68)
    c68 = Cascade.from_preset(p68)
    assert (p68.num_landmarks, c68.num_landmarks, c68.detection.head.out_channels, c68.z.fc.out_features) == (68,) * 4
    assert PRESETS["quick"].num_landmarks == 66  # get_preset returns a copy
    assert Preset.from_dict(p68.to_dict()) == p68
    paper = get_preset("paper")
    assert (paper.image_size, paper.heatmap_sigma) == (384, 6.0)
    assert paper.image_size % 64 == 0 and get_preset("quick").image_size % 64 == 0
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("huge")


def test_preset_from_a_checkpoint_of_fa3d_0_1():
    old = get_preset("quick", num_landmarks=68).to_dict()
    del old["num_landmarks"]
    for sub in ("detection", "regression", "z"):   # fa3d 0.1 kept N in every sub-config
        old[sub]["num_landmarks"] = 68
    old["z"]["layers"] = list(old["z"]["layers"])  # as JSON gives it back
    assert Preset.from_dict(old) == get_preset("quick", num_landmarks=68)


# ----------------------------------------------------------------------------- initialisation

def test_bilinear_upsample_matches_interpolation():
    torch.manual_seed(0)
    for factor in (2, 3, 4):
        up = BilinearUpsample(5, factor)
        x = torch.rand(2, 5, 6, 7)
        y = up(x)
        assert y.shape == (2, 5, 6 * factor, 7 * factor)
        ref = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        b = factor // 2 + 1  # border pixels miss a neighbour
        torch.testing.assert_close(y[..., b:-b, b:-b], ref[..., b:-b, b:-b])
        const = up(torch.full((1, 5, 6, 7), 3.0))
        torch.testing.assert_close(const[..., b:-b, b:-b], torch.full_like(const[..., b:-b, b:-b], 3.0))


def test_all_deconvs_start_bilinear(quick):
    _, cascade = quick
    ups = [m for m in cascade.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(ups) == 1 + 3 + 1  # detection ×4, hourglass levels, regression ×4
    for m in ups:
        fresh = BilinearUpsample(m.in_channels, m.stride[0])
        torch.testing.assert_close(m.weight, fresh.weight)
    # the ×4 tent filter by hand: 1 - |i - 3.5| / 4
    tent = torch.tensor([0.125, 0.375, 0.625, 0.875, 0.875, 0.625, 0.375, 0.125])
    torch.testing.assert_close(BilinearUpsample(1, 4).weight[0, 0], torch.outer(tent, tent))


def test_detection_head_starts_at_zero(quick):
    _, cascade = quick
    logits = cascade.detection(torch.randn(2, 3, 64, 64))
    assert torch.equal(logits, torch.zeros_like(logits))
    assert detection_loss(logits, torch.zeros_like(logits)).item() == pytest.approx(math.log(2))


def test_z_new_layers_are_gaussian_001():
    torch.manual_seed(0)
    z = ZRegressor(ZConfig(layers=(1, 1, 1, 1), block="bottleneck", width=64), 66)
    for w in (z.conv1.weight, z.fc.weight):
        assert abs(w.mean().item()) < 1e-3
        assert w.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.equal(z.fc.bias, torch.zeros_like(z.fc.bias))
    assert z.layer1[0].conv2.weight.std().item() > 0.03  # the other convs keep He init



@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_zero_init_residual_starts_every_block_as_the_identity_and_each_learns(block):
    """The paper preset's from-scratch start: each residual block of the detection backbone and of the
    Z net returns its input (plus its projection where the shape changes), and one step moves every block."""
    torch.manual_seed(0)
    backbone = ResNetBackbone(block, (2, 1, 1, 1), width=8, zero_init_residual=True).train()
    identity_block = backbone.layer1[1]
    assert identity_block.downsample is None
    x = torch.randn(2, identity_block.conv1.in_channels, 8, 8).relu()   # a block's input has passed a ReLU
    assert torch.equal(identity_block(x), x)                            # the block ends in ReLU(out + x)
    z = ZRegressor(ZConfig(layers=(2, 1, 1, 1), block=block, width=8, zero_init_residual=True), 5).train()
    unit = z.layer1[1]
    y = torch.randn(2, unit.bn1.num_features, 8, 8)
    assert torch.equal(unit(y), y)
    plain = ResNetBackbone(block, (2, 1, 1, 1), width=8).train()
    assert not torch.allclose(plain.layer1[1](x), x)
    # every block gets a gradient at once, so none stays the identity after a step (64 px and 4 faces: the
    # last stage's BN then normalises more than two values, which would leave it no gradient to pass on)
    images = torch.randn(4, 3, 64, 64)
    (backbone(images).square().mean() + z(images, torch.randn(4, 5, 64, 64)).square().mean()).backward()
    last = "bn3" if block == "bottleneck" else "bn2"
    for stage in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4):
        for b in stage:
            assert getattr(b, last).weight.grad.abs().sum() > 0
    last_conv = "conv3" if block == "bottleneck" else "conv2"
    for stage in (z.layer1, z.layer2, z.layer3, z.layer4):
        for u in stage:
            assert getattr(u, last_conv).weight.grad.abs().sum() > 0


def test_only_the_paper_preset_starts_its_blocks_at_the_identity():
    for name, preset in PRESETS.items():
        assert preset.detection.zero_init_residual == (name == "paper")
        assert preset.z.zero_init_residual == (name == "paper")


# ----------------------------------------------------------------------------- losses and learning

def test_losses_by_hand():
    a, b = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 4.0]])
    assert z_loss(a, b).item() == pytest.approx((1 + 4) / 2)
    assert regression_loss(a[None, None], b[None, None]).item() == pytest.approx(2.5)
    logit, target = torch.tensor([[[[2.0]]]]), torch.tensor([[[[1.0]]]])
    assert detection_loss(logit, target).item() == pytest.approx(math.log(1 + math.exp(-2.0)))


def _overfit(model, inputs, target, loss_fn, steps=15, lr=1e-2):
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(*inputs), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_each_quick_subnet_overfits_a_tiny_batch():
    """Each subnet must beat the best *constant* prediction on a fixed batch, i.e. use its input."""
    torch.manual_seed(0)  # passes for seeds 0-9
    preset = get_preset("quick", num_landmarks=8)
    S, N = preset.image_size, 8
    images = torch.randn(4, 3, S, S)
    points = torch.rand(4, N, 2) * (S - 16) + 8
    disks = disk_heatmaps(points / 4, S // 4, radius=1.5)   # detection targets at stride 4
    gauss = gaussian_heatmaps(points, S, preset.heatmap_sigma)
    z_true = 5 * torch.randn(4, N)

    p = disks.mean()
    best_constant = -(p * p.log() + (1 - p) * (1 - p).log()).item()
    losses = _overfit(DetectionNet(preset.detection, N), (images,), disks, detection_loss, steps=30, lr=1e-2)
    assert losses[0] == pytest.approx(math.log(2)) and losses[-1] < 0.8 * best_constant

    losses = _overfit(RegressionNet(preset.regression, N), (images, disks), gauss, regression_loss, steps=30, lr=1e-3)
    assert losses[0] == pytest.approx(gauss.square().mean().item())  # zero head: empty maps at first
    assert losses[-1] < 0.6 * gauss.var(unbiased=False).item()

    losses = _overfit(ZRegressor(preset.z, N), (images, gauss), z_true, z_loss, steps=20, lr=1e-2)
    assert losses[-1] < 0.1 * z_true.var(unbiased=False).item()


# ----------------------------------------------------------------------------- images and coordinates

def test_normalize_images():
    white = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    expected = torch.tensor([(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225])
    torch.testing.assert_close(normalize_images(white)[0, :, 0, 0], expected)
    torch.testing.assert_close(normalize_images(torch.ones(3, 2, 2))[:, 1, 1], expected)
    with pytest.raises(ValueError, match="3, H, W"):
        normalize_images(torch.zeros(1, 4, 2, 2))
    with pytest.raises(TypeError):
        normalize_images(torch.zeros(1, 3, 2, 2, dtype=torch.int32))


def test_crop_landmarks_back_to_the_image_by_hand():
    # crop = rotate by 90°, scale 2, shift (10, 5): (x, y) -> (-2y + 10, 2x + 5), z -> 2z
    A = torch.tensor([[[0.0, -2.0, 10.0], [2.0, 0.0, 5.0]],
                      [[0.5, 0.0, -1.0], [0.0, 0.5, 3.0]]])
    crop = torch.tensor([[[6.0, 7.0, 6.0]], [[1.0, 4.0, -1.0]]])
    image = unwarp_landmarks(crop, A)
    torch.testing.assert_close(image, torch.tensor([[[1.0, 2.0, 3.0]], [[4.0, 2.0, -2.0]]]))


# ----------------------------------------------------------------------------- pretrained weights

def _no_download(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    calls = []

    def refuse(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("no network in tests")
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return calls


def test_pretrained_missing_raises_clear_error(monkeypatch, tmp_path):
    calls = _no_download(monkeypatch, tmp_path)
    with pytest.raises(PretrainedWeightsUnavailable) as err:
        DetectionNet(DetectionConfig(layers=(2, 2, 2, 2), block="basic", pretrained=True), 4)
    msg = str(err.value)
    assert os.path.join(str(tmp_path), "hub", "checkpoints", "resnet18-f37072fd.pth") in msg
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    assert "pretrained=False" in msg
    assert len(calls) == 1  # the (refused) download was the only way out: nothing reached the network
    with pytest.raises(ValueError, match="no torchvision ImageNet weights"):
        DetectionNet(DetectionConfig(layers=(1, 1, 1, 1), block="basic", pretrained=True), 66)


def test_pretrained_loads_from_torch_cache(monkeypatch, tmp_path):
    calls = _no_download(monkeypatch, tmp_path)
    torch.manual_seed(1)
    reference = torchvision.models.resnet18()
    os.makedirs(tmp_path / "hub" / "checkpoints")
    torch.save(reference.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    det = DetectionNet(DetectionConfig(layers=(2, 2, 2, 2), block="basic", pretrained=True), 4)
    assert not calls
    torch.testing.assert_close(det.backbone.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    torch.testing.assert_close(det.backbone.bn1.running_var, reference.bn1.running_var)


def test_z_load_pretrained_reuses_rgb_filters(tmp_path):
    torch.manual_seed(0)
    cfg = ZConfig(layers=(1, 1, 1, 1), block="basic", width=8)
    source = ZRegressor(cfg, 4).state_dict()
    source["conv1.weight"] = torch.randn(8, 3, 7, 7)   # an "ImageNet" RGB stem
    source["fc.weight"] = torch.randn(1000, 64)         # and classifier
    source["fc.bias"] = torch.randn(1000)
    path = tmp_path / "imagenet_z.pth"
    torch.save(source, path)
    model = ZRegressor(ZConfig(**{**cfg.__dict__, "pretrained_path": str(path)}), 4)
    torch.testing.assert_close(model.conv1.weight[:, :3], source["conv1.weight"])
    assert model.conv1.weight[:, 3:].std().item() < 0.05            # heatmap channels: N(0, 0.01)
    assert model.fc.weight.shape == (4, 64) and model.fc.weight.std().item() < 0.05
    torch.testing.assert_close(model.layer2[0].conv1.weight, source["layer2.0.conv1.weight"])

    bad = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(8, 3, 7, 7)}, bad)
    with pytest.raises(ValueError, match="other.pth"):
        load_pretrained(ZRegressor(cfg, 4), str(bad))


def test_fa3d_train_starts_the_z_net_from_z_pretrained_and_names_a_missing_file(tmp_path, capsys):
    from fa3d.cli import main
    from fa3d.runs import TrainConfig, build_cascade
    preset = get_preset("quick")
    torch.manual_seed(1)
    source = ZRegressor(preset.z, preset.num_landmarks).state_dict()
    torch.save(source, tmp_path / "z.pth")
    cascade = build_cascade(TrainConfig(out=str(tmp_path / "run"), z_pretrained=str(tmp_path / "z.pth")), preset, None)
    torch.testing.assert_close(cascade.z.layer2[0].conv1.weight, source["layer2.0.conv1.weight"])

    missing = tmp_path / "no_such_z.pth"
    assert main(["train", "--out", str(tmp_path / "run"), "--device", "cpu", "--no-progress",
                 "--z-pretrained", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "Traceback" not in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("inputs, channels", [("rgb+heatmaps", 3 + 66), ("rgb", 3), ("heatmaps", 66)])
def test_z_inputs_ablations_use_only_their_input(inputs, channels):
    torch.manual_seed(0)
    z = ZRegressor(ZConfig(layers=(1, 1, 1, 1), block="basic", width=8, inputs=inputs), 66).eval()
    assert z.conv1.in_channels == channels
    images, heat = torch.randn(2, 3, 64, 64), torch.rand(2, 66, 64, 64)
    with torch.no_grad():
        out = z(images, heat)
        other_images, other_heat = z(torch.randn_like(images), heat), z(images, torch.rand_like(heat))
    assert out.shape == (2, 66)
    assert torch.equal(out, other_heat) == (inputs == "rgb")          # heatmaps ignored only by "rgb"
    assert torch.equal(out, other_images) == (inputs == "heatmaps")   # images ignored only by "heatmaps"


def test_z_loads_a_preact_resnet_state_dict_with_its_stem_bn(tmp_path):
    """An ImageNet pre-activation ResNet in this layout (RGB stem conv -> BN -> ReLU -> max-pool,
    1000 classes) fine-tunes into the 3+N-channel Z net: every layer but the new ones is taken over."""
    torch.manual_seed(0)
    cfg = ZConfig(layers=(1, 1, 1, 1), block="bottleneck", width=8)
    imagenet = ZRegressor(ZConfig(**{**cfg.__dict__, "inputs": "rgb"}), 1000)
    with torch.no_grad():
        imagenet.bn1.weight.uniform_(0.5, 1.5)
        imagenet.bn1.running_mean.uniform_(-1, 1)
    state = imagenet.state_dict()
    assert [k for k in state if not k.startswith(("layer", "norm", "fc"))] == [
        "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked"]
    path = tmp_path / "preresnet_imagenet.pth"
    torch.save(state, path)
    model = ZRegressor(ZConfig(**{**cfg.__dict__, "pretrained_path": str(path)}), 66)
    assert model.conv1.in_channels == 3 + 66
    torch.testing.assert_close(model.conv1.weight[:, :3], state["conv1.weight"])
    torch.testing.assert_close(model.bn1.weight, state["bn1.weight"])
    torch.testing.assert_close(model.bn1.running_mean, state["bn1.running_mean"])
    torch.testing.assert_close(model.layer3[0].conv2.weight, state["layer3.0.conv2.weight"])
    assert model.fc.out_features == 66 and model.fc.weight.std().item() < 0.05   # new layer: N(0, 0.01)
    # the stem's BN-ReLU is in the forward: with bn1's scale and shift at 0, whatever comes in, the
    # stem gives zeros, so two different inputs give one answer (without them in the forward they would not)
    model.eval()
    x, heat = torch.randn(2, 3, 64, 64), torch.rand(2, 66, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(*model(x, heat))
        model.bn1.weight.zero_()
        model.bn1.bias.zero_()
        torch.testing.assert_close(*model(x, heat))
    del state["bn1.weight"]                                     # a stem without BN (fa3d 0.1's layout)
    torch.save(state, path)
    with pytest.raises(ValueError, match="bn1.weight"):
        load_pretrained(ZRegressor(cfg, 66), str(path))


def test_a_medium_z_net_sees_the_crop_at_its_input_size_and_answers_in_crop_pixels():
    """medium's Z net (ZConfig.input_size 32 at 128 px) given the weights of a quick Z net that sees 32 px
    (the shipped model's, --z-input-size 32) answers, on a 128 px crop, exactly twice what the quick one
    answers on the same crop box-averaged to 64 px."""
    torch.manual_seed(0)
    shipped_like = override_preset(get_preset("quick", 68), {"z": {"input_size": 32}})
    quick, medium = Cascade.from_preset(shipped_like).eval(), Cascade.from_preset(get_preset("medium", 68)).eval()
    medium.z.load_state_dict(quick.z.state_dict())
    images = torch.randint(0, 256, (2, 3, 128, 128), dtype=torch.uint8)
    at = torch.rand(2, 68, 2) * 100 + 14
    with torch.no_grad():
        out = medium(images, z_xy=at)
        small = quick(F.avg_pool2d(images.float(), 2) / 255.0, z_xy=resize_points(at, 128, 64))
    assert out["z_input"].shape == (2, 68, 32, 32)
    torch.testing.assert_close(out["z_input"], small["z_input"])
    torch.testing.assert_close(out["z"], 2 * small["z"], rtol=1e-4, atol=1e-4)


def test_init_from_starts_a_medium_run_from_every_subnet_of_a_quick_one():
    """The shipped quick model has no detection features; the medium preset's regression net stacks them
    through a 1x1 conv that starts at zero, so the grown net computes what the medium net without them does."""
    from fa3d.runs import load_init_from
    medium = Cascade.from_preset(get_preset("medium", 68))
    assert medium.regression.feature_stem is not None
    torch.nn.init.normal_(medium.regression.feature_stem.weight)   # loading must zero it again
    assert load_init_from(medium, "pretrained", get_preset("medium", 68), ["detection"]) == ["detection", "regression", "z"]
    plain_preset = override_preset(get_preset("medium", 68), {"regression": {"detection_features": False}})
    plain = Cascade.from_preset(plain_preset)
    assert plain.regression.feature_stem is None
    load_init_from(plain, "pretrained", plain_preset, ["detection"])
    assert not medium.regression.feature_stem.weight.any()
    images = torch.randint(0, 256, (2, 3, 128, 128), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(medium.eval()(images)["heatmaps"], plain.eval()(images)["heatmaps"])
    with pytest.raises(ValueError, match="predicts 68 landmarks"):
        load_init_from(Cascade.from_preset(get_preset("medium", 66)), "pretrained", get_preset("medium", 66), ["z"])


def test_regression_net_stacks_the_detection_nets_stride4_features():
    """RegressionConfig.detection_features: the backbone's layer1 output (B, C1, S/4, S/4) enters the
    hourglass through its own 1x1 conv, which starts at zero and learns (it gets a gradient)."""
    torch.manual_seed(0)
    cascade = Cascade.from_preset(get_preset("medium", 68)).eval()
    images = torch.rand(2, 3, 128, 128)
    x = normalize_images(images)
    logits, features = cascade.detection(x, return_features=True)
    torch.testing.assert_close(logits, cascade.detection(x))
    assert features.shape == (2, cascade.detection.backbone.stride4_channels, 32, 32)
    assert cascade.detection.backbone.stride4_channels == 32
    maps = torch.sigmoid(logits)
    cascade.regression.head.weight.data.normal_(std=0.1)       # a head at zero hides every input
    with torch.no_grad():
        before = cascade.regression(x, maps, features)
        torch.nn.init.normal_(cascade.regression.feature_stem.weight, std=0.1)
        after = cascade.regression(x, maps, features)
    assert torch.isfinite(after).all() and not torch.allclose(before, after)
    torch.nn.init.zeros_(cascade.regression.feature_stem.weight)
    cascade.regression(x, maps, features).square().mean().backward()
    assert cascade.regression.feature_stem.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="detection features"):
        cascade.regression(x, maps)
    with pytest.raises(ValueError, match="channels"):
        RegressionNet(get_preset("medium").regression, 68)
