"""The GPU's code paths without a GPU: precision chosen per device, training and evaluation under
CPU autocast and channels_last, a NaN loss stopping the run cleanly, --compile's plumbing."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from fa3d.checkpoint import load_checkpoint
from fa3d.cli import main
from fa3d.models.losses import StageLoss
from fa3d.precision import autocast, choose_precision, grad_scaler
from fa3d.predict import predict_crops
from fa3d.runs import PRETRAINED_DIR
from fa3d.runs import load_run, read_log, validation_warning
from fa3d.train import NonFiniteLossError, train
from test_train import tiny_config


@pytest.mark.parametrize("capability, expected", [((7, 5), "fp16"), ((7, 0), "fp16"), ((8, 0), "bf16"),
                                                  ((8, 9), "bf16"), ((9, 0), "bf16")])
def test_auto_precision_follows_the_compute_capability(capability, expected):
    precision, why = choose_precision("auto", "cuda", capability)
    assert precision == expected and f"{capability[0]}.{capability[1]}" in why


def test_explicit_precisions_and_the_cpu():
    assert choose_precision("auto", "cpu")[0] == "fp32"
    assert choose_precision("bf16", "cpu")[0] == "bf16" and choose_precision("fp32", "cuda", (9, 0))[0] == "fp32"
    with pytest.warns(UserWarning, match="emulated"):
        assert choose_precision("bf16", "cuda", (7, 5))[0] == "bf16"        # a T4: allowed, with a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        choose_precision("fp16", "cuda", (7, 5))
    with pytest.raises(ValueError, match="unknown precision"):
        choose_precision("tf32", "cpu")
    assert grad_scaler("fp16", "cpu").is_enabled() and not grad_scaler("bf16", "cpu").is_enabled()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_training_and_evaluation_under_cpu_autocast_and_channels_last(tmp_path, precision):
    cfg = tiny_config(tmp_path / precision, precision=precision, channels_last=True, max_steps=2)
    path = train(cfg)
    ckpt = load_checkpoint(path)
    assert ckpt["precision"] == precision and ckpt["config"]["precision"] == precision
    log = read_log(tmp_path / precision)
    assert len(log) == 4 and all(torch.isfinite(torch.tensor(r["train_loss"])) for r in log)
    cascade, _ = load_run(tmp_path / precision)
    crops = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8)
    low = predict_crops(cascade.to_channels_last(), crops, "z", precision=precision)
    assert low.dtype == torch.float32 and torch.isfinite(low).all()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_inference_under_cpu_autocast_agrees_with_fp32(precision):
    """A trained cascade's peaks are sharp: low precision moves them by a fraction of a pixel."""
    from fa3d.app.export import sample_crops
    cascade, ckpt = load_run(PRETRAINED_DIR)
    crops = sample_crops(8, ckpt["preset"]["image_size"], ckpt["scheme"])
    full = predict_crops(cascade, crops, "z")
    low = predict_crops(cascade.to_channels_last(), crops, "z", precision=precision)
    assert (low - full)[..., :2].norm(dim=-1).mean() < 0.5                 # px, of a 64 px crop


def test_a_nan_loss_stops_the_run_naming_where_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    real_forward = StageLoss.forward

    def poisoned(self, *args, **kw):
        loss, out = real_forward(self, *args, **kw)
        calls["n"] += torch.is_grad_enabled()                               # training steps, not validation
        return (loss * float("nan") if calls["n"] == 3 else loss), out   # the first step of epoch 2

    monkeypatch.setattr(StageLoss, "forward", poisoned)
    cfg = tiny_config(tmp_path / "nan", stages=("detection",))           # 8 faces, batch 4: 2 steps an epoch
    with pytest.raises(NonFiniteLossError, match=r"stage detection, epoch 2/2, step 3") as err:
        train(cfg)
    assert "last finished epoch" in str(err.value)
    ckpt = load_checkpoint(tmp_path / "nan" / "checkpoint.pt")
    assert (ckpt["stage"], ckpt["epoch"], ckpt["step"], ckpt["finished"]) == ("detection", 0, 2, False)
    calls["n"] = 0
    argv = ["train", "--out", str(tmp_path / "nan_cli"), "--preset", "quick", "--num-train", "8", "--num-valid",
            "4", "--synthetic-size", "64", "--device", "cpu", "--no-progress", "--stages", "detection",
            "--batch-size", "4", "--epochs-scale", "0.25"]
    assert main(argv) == 3
    assert "stopped: training loss or its gradients not finite" in capsys.readouterr().err


class _NaNGradient(torch.autograd.Function):
    """The identity forward, NaN backward: a finite loss whose gradients are not."""
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class _Linear(torch.nn.Module):
    """StageLoss's call signature on one weight: loss = mean(w * image)."""
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))

    def forward(self, image, landmarks, face_height, z_gt_heatmap):
        loss = (self.w * image).mean()
        return (_NaNGradient.apply(loss) if landmarks.isnan().any() else loss), {}


def test_a_finite_loss_with_nan_gradients_changes_no_weight(tmp_path, monkeypatch):
    from fa3d.train import optimizer_step
    model = _Linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = {"image": torch.ones(2, 3), "landmarks": torch.zeros(2, 1), "face_height": torch.ones(2),
             "z_gt_heatmap": torch.zeros(2, dtype=torch.bool)}
    assert optimizer_step(model, opt, batch, "fp32") is not None and not torch.equal(model.w, torch.ones(3))
    before = model.w.detach().clone()
    poisoned = {**batch, "landmarks": torch.full((2, 1), float("nan"))}
    assert optimizer_step(model, opt, poisoned, "fp32") is None
    assert torch.equal(model.w, before) and model.w.grad is None

    # in a run: it stops there, naming the step, and the checkpoint is the last finished epoch's
    real_forward, calls = StageLoss.forward, {"n": 0}

    def nan_gradients(self, *args, **kw):
        loss, out = real_forward(self, *args, **kw)
        calls["n"] += torch.is_grad_enabled()
        return (_NaNGradient.apply(loss) if calls["n"] == 3 else loss), out

    monkeypatch.setattr(StageLoss, "forward", nan_gradients)
    with pytest.raises(NonFiniteLossError, match=r"gradients not finite at stage detection, epoch 2/2, step 3"):
        train(tiny_config(tmp_path / "nan", stages=("detection",)))
    ckpt = load_checkpoint(tmp_path / "nan" / "checkpoint.pt")
    assert (ckpt["stage"], ckpt["epoch"], ckpt["step"]) == ("detection", 0, 2)
    assert all(torch.isfinite(v).all() for v in ckpt["models"]["detection"].values() if v.is_floating_point())


def test_validation_that_is_not_finite_is_said_plainly():
    assert validation_warning({"valid_loss": 0.1, "valid_gte_xy": 5.0, "valid_gte_xyz": 9.0}) == ""
    assert "batch norm" in validation_warning({"valid_loss": float("nan"), "valid_gte_xy": 5.0, "valid_gte_xyz": 9.0})
    assert "batch norm" in validation_warning({"valid_loss": 0.1, "valid_gte_xy": 1.9e7, "valid_gte_xyz": 1.9e7})


def test_compile_wraps_each_stage_when_asked(tmp_path, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: compiled.append(type(model).__name__) or model)
    train(tiny_config(tmp_path / "c", stages=("detection", "regression"), max_steps=1, compile=True))
    assert compiled == ["StageLoss", "StageLoss"]
    compiled.clear()
    train(tiny_config(tmp_path / "plain", stages=("detection",), max_steps=1))
    assert compiled == []


def test_autocast_is_a_no_op_for_fp32():
    x = torch.randn(2, 2)
    with autocast("fp32", "cpu"):
        assert (x @ x).dtype == torch.float32
    with autocast("bf16", "cpu"):
        assert (x @ x).dtype == torch.bfloat16


# ----------------------------------------------------------------------------- the device-side input pipeline

def test_crops_made_on_the_device_are_the_cpu_crops(tmp_path):
    """TrainCrops(on_device=True) + finish_batch (what a GPU run does) gives the very crops of the CPU
    path, for the paper's augmentation and the photo one, and a whole run trains identically."""
    from fa3d.data.synthetic import SyntheticFaces
    from fa3d.data.training import TrainCrops, collate_sources
    from fa3d.data.transforms import AUGMENTS, Augment3D
    faces = SyntheticFaces(6, image_size=96, scheme="68", seed=2)
    for name in ("paper", "photo"):
        cpu = TrainCrops(faces, Augment3D(48, AUGMENTS[name], "68"), seed=1)
        dev = TrainCrops(faces, Augment3D(48, AUGMENTS[name], "68"), seed=1, on_device=True)
        for t in (cpu, dev):
            t.set_epoch(2, 3)
        a = collate_sources([cpu[i] for i in range(6)])
        b = dev.finish_batch(collate_sources([dev[i] for i in range(6)]))
        assert set(a) == set(b)
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    runs = {}
    for flag in (False, True):
        path = train(tiny_config(tmp_path / str(flag), stages=("detection", "z"), max_steps=2, device_augment=flag,
                                 augment="photo"))
        runs[flag] = load_checkpoint(path)["models"]
    for subnet, state in runs[False].items():
        assert all(torch.equal(v, runs[True][subnet][k]) for k, v in state.items()), subnet


def test_sources_of_different_sizes_collate_as_a_list():
    from fa3d.data.training import collate_sources
    samples = [{"source": torch.zeros(3, h, 40, dtype=torch.uint8), "matrix": torch.eye(2, 3)} for h in (30, 50)]
    batch = collate_sources(samples)
    assert isinstance(batch["source"], list) and batch["matrix"].shape == (2, 2, 3)


def test_a_large_cache_spills_to_disk_and_reads_back_the_same(tmp_path):
    from fa3d.data.synthetic import SyntheticFaces
    from fa3d.data.training import CachedDataset
    faces = SyntheticFaces(4, image_size=64, scheme="68", seed=5)
    memory, disk = CachedDataset(faces, progress=False), CachedDataset(faces, progress=False, max_memory_gib=1e-6)
    assert memory.spilled is None and disk.spilled is not None
    folder = Path(disk.spilled.filename).parent
    for i in range(4):
        assert all(torch.equal(memory[i][k], disk[i][k]) for k in ("image", "landmarks", "bbox"))
    del disk
    import gc
    gc.collect()
    assert not folder.exists()
