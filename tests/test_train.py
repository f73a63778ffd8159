"""Training: losses, schedules, checkpoints (atomic, safe loading), resume equivalence, DDP."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import fa3d
import fa3d.checkpoint as ckpt_mod
from fa3d.checkpoint import CheckpointError, get_rng_state, load_checkpoint, save_checkpoint, set_rng_state
from fa3d.data.training import center_crops, epoch_order
from fa3d.models.losses import StageLoss
from fa3d.models import Cascade, get_preset, z_loss
from fa3d.runs import RunDirError, TrainConfig, read_log
from fa3d.models import STAGES
from fa3d.schedules import StageSchedule, TrainSchedule, get_schedule, make_lr_scheduler, stage_plan
from fa3d.train import train

REPO = Path(__file__).resolve().parents[1]


def tiny_schedule(epochs: int = 2, batch: int = 4) -> dict:
    s = lambda: StageSchedule(epochs=epochs, lr_start=1e-3, lr_end=1e-4, batch_size=batch)  # noqa: E731
    return TrainSchedule(s(), s(), s(), s(), optimizer="adam").to_dict()


def tiny_config(out, **kw) -> TrainConfig:
    base = dict(out=str(out), preset="quick", num_train=8, num_valid=4, synthetic_size=64,
                schedule=tiny_schedule(), progress=False, device="cpu")
    return TrainConfig(**{**base, **kw})


# ----------------------------------------------------------------------------- schedules

def test_paper_schedule_is_the_papers():
    s = get_schedule("paper")
    assert (s.detection.epochs, s.regression.epochs, s.joint.epochs, s.z.epochs) == (30, 30, 30, 100)
    assert (s.detection.lr_start, s.detection.lr_end) == (1e-3, 2.5e-5)
    assert (s.regression.lr_start, s.regression.lr_end) == (1e-4, 2.5e-5)
    assert (s.z.lr_start, s.z.lr_end) == (1e-2, 2.5e-4)
    assert (s.detection.batch_size, s.regression.batch_size, s.z.batch_size) == (8, 8, 16)
    assert s.optimizer == "rmsprop"
    assert TrainSchedule.from_dict(s.to_dict()) == s


def test_lr_decays_geometrically_between_end_points():
    s = get_schedule("paper")
    plan = stage_plan(s.z, num_train=160, world=2, epochs_scale=0.1)
    epochs, per_epoch, total, per_rank = plan.epochs, plan.steps_per_epoch, plan.total_steps, plan.batch_per_process
    assert (epochs, per_epoch, total, per_rank) == (10, 10, 100, 8)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=s.z.lr_start)
    sched = make_lr_scheduler(opt, s.z, total)
    lrs = []
    for _ in range(total):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-2) and lrs[-1] == pytest.approx(2.5e-4)
    assert np.allclose(np.diff(np.log(lrs)), np.log(2.5e-4 / 1e-2) / 99)  # straight line in log space


def test_epoch_order_is_a_deterministic_permutation():
    a = epoch_order(50, 0, 2, 3)
    assert sorted(a) == list(range(50)) and a == epoch_order(50, 0, 2, 3)
    assert a != epoch_order(50, 0, 2, 4) and a != epoch_order(50, 0, 3, 3) and a != epoch_order(50, 1, 2, 3)


# ----------------------------------------------------------------------------- losses

@pytest.fixture(scope="module")
def four_faces():
    from fa3d.data.synthetic import SyntheticFaces
    return center_crops(SyntheticFaces(4, image_size=64, seed=3), 64)


# the regression loss is small from the start (zero-initialised head, sparse Gaussian targets)
@pytest.mark.parametrize("stage,lr,factor", [("detection", 3e-3, 0.5), ("regression", 1e-3, 0.85),
                                             ("joint", 1e-3, 0.5), ("z", 3e-3, 0.5)])
def test_loss_decreases_on_a_tiny_overfit_batch(stage, lr, factor, four_faces):
    torch.manual_seed(0)
    cascade = Cascade.from_preset(get_preset("quick"))
    images, lm = four_faces["image"], four_faces["landmarks"]
    loss_mod = StageLoss(cascade, stage)
    loss_mod.set_mode(True)
    params = [p for m in loss_mod.trainable() for p in m.parameters()]
    frozen = [p for p in cascade.parameters() if all(p is not q for q in params)]
    before = [p.detach().clone() for p in frozen]
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for _ in range(30):
        loss, _ = loss_mod(images, lm, torch.full((4,), 48.0), torch.tensor([True, False, True, False]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < factor * losses[0], losses
    assert all(torch.equal(a, p) for a, p in zip(before, frozen))  # frozen subnets did not move


def test_z_loss_ignores_missing_depth():
    pred = torch.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    true = torch.tensor([[0.0, float("nan"), 5.0]])
    loss = z_loss(pred, true)
    assert loss.item() == pytest.approx((1 + 4) / 2)
    loss.backward()
    assert pred.grad[0, 1] == 0


# ----------------------------------------------------------------------------- checkpoints

def test_checkpoint_round_trip_with_weights_only(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", {"models": {"a": {"w": torch.arange(3.0)}}, "stage": "z",
                                               "epoch": 2, "config": {"stages": ["z"], "x": (1, 2)}})
    data = load_checkpoint(path)
    assert data["fa3d_version"] == fa3d.__version__ and data["stage"] == "z"
    assert torch.equal(data["models"]["a"]["w"], torch.arange(3.0))
    torch.load(path, weights_only=True)  # plain data only


def test_atomic_save_keeps_the_old_checkpoint_when_saving_fails(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "c.pt", {"epoch": 1})

    def failing_save(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]  # no temp file left behind


def test_corrupt_missing_and_foreign_checkpoints_give_clear_errors(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", {"epoch": 1})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated.pt.*corrupt"):
        load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="missing.pt: no such"):
        load_checkpoint(tmp_path / "missing.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="foreign.pt: not an fa3d checkpoint"):
        load_checkpoint(foreign)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": "fa3d-checkpoint", "obj": Path("x")}, unsafe)  # an arbitrary class: not plain data
    with pytest.raises(CheckpointError, match="unsafe.pt: refusing"):
        load_checkpoint(unsafe)


def test_rng_state_round_trip():
    state = get_rng_state()
    a = (torch.rand(3), np.random.rand(3), __import__("random").random())
    set_rng_state(pickle.loads(pickle.dumps(state)))
    b = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


# ----------------------------------------------------------------------------- runs

def _weights(run_dir) -> dict:
    models = load_checkpoint(Path(run_dir) / "checkpoint.pt")["models"]
    return {f"{m}.{k}": v for m, sd in models.items() for k, v in sd.items()}


def _killed_at(where):
    """An ``on_step`` that kills the run at (stage, epoch, step), as Ctrl-C would."""
    def crash(stage, epoch, step):
        if (stage, epoch, step) == where:
            raise KeyboardInterrupt
    return crash


def _same_run(full, resumed):
    """A resumed run ends as the uninterrupted one: the same epochs logged once, losses and weights
    (bitwise equal on CPU in practice; allclose leaves room for non-deterministic kernels)."""
    a_log, b_log = read_log(full), read_log(resumed)
    assert [(r["stage"], r["epoch"]) for r in b_log] == [(r["stage"], r["epoch"]) for r in a_log]
    assert [r["train_loss"] for r in b_log] == pytest.approx([r["train_loss"] for r in a_log])
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), rtol=1e-5, atol=1e-6), k


def test_killed_and_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path, monkeypatch):
    full = train(tiny_config(tmp_path / "full"))
    log = read_log(tmp_path / "full")
    assert [(r["stage"], r["epoch"]) for r in log] == [(s, e) for s in STAGES for e in (0, 1)]
    # each epoch logs the rate it started at: 1e-3 down to 1e-4 over 4 steps (8 faces, batch 4, 2 epochs),
    # so the second epoch starts after 2 of the 3 decay steps: 1e-3 * 0.1 ** (2 / 3)
    assert [r["lr"] for r in log] == pytest.approx([1e-3, 1e-3 * 0.1 ** (2 / 3)] * len(STAGES), rel=1e-9)
    assert load_checkpoint(full)["finished"]

    with pytest.raises(KeyboardInterrupt):   # killed in the middle of the joint stage's second epoch
        train(tiny_config(tmp_path / "resumed"), on_step=_killed_at(("joint", 1, 3)))
    interrupted = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert (interrupted["stage"], interrupted["epoch"], interrupted["finished"]) == ("joint", 0, False)
    with pytest.raises(RunDirError, match="--resume"):  # never clobber a run by accident
        train(tiny_config(tmp_path / "resumed"))
    train(tiny_config(tmp_path / "resumed"), resume=True)
    _same_run(tmp_path / "full", tmp_path / "resumed")


def test_resume_at_a_stage_boundary_on_a_finished_run_and_past_stray_log_lines(tmp_path):
    """Killed in the first step after a stage ended: resumed, it starts the next stage (not the
    finished one again) and ends as an uninterrupted run; log lines the checkpoint does not hold
    (written after it) are dropped; resuming a finished run changes nothing."""
    cfg = lambda out: tiny_config(out, stages=("detection", "regression"))  # noqa: E731
    train(cfg(tmp_path / "full"))
    with pytest.raises(KeyboardInterrupt):
        train(cfg(tmp_path / "cut"), on_step=_killed_at(("regression", 0, 1)))
    ckpt = load_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert (ckpt["stage"], ckpt["epoch"], ckpt["stage_done"]) == ("detection", 1, True)
    with open(tmp_path / "cut" / "log.jsonl", "a") as f:      # as if killed after a log line, before its checkpoint
        f.write('{"stage": "regression", "epoch": 0, "train_loss": 99.0}\n')
    train(cfg(tmp_path / "cut"), resume=True)
    _same_run(tmp_path / "full", tmp_path / "cut")
    assert [(r["stage"], r["epoch"]) for r in read_log(tmp_path / "cut")] == \
        [("detection", 0), ("detection", 1), ("regression", 0), ("regression", 1)]

    files = {p.name: p.read_bytes() for p in (tmp_path / "full").iterdir()}
    assert train(cfg(tmp_path / "full"), resume=True) == tmp_path / "full" / "checkpoint.pt"
    assert {p.name: p.read_bytes() for p in (tmp_path / "full").iterdir()} == files


def test_a_checkpoint_of_a_newer_format_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt_mod, "FORMAT_VERSION", ckpt_mod.FORMAT_VERSION + 1)
    newer = save_checkpoint(tmp_path / "newer.pt", {"epoch": 1})
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match=r"newer.pt: written by a newer fa3d .*checkpoint format "
                                              rf"{ckpt_mod.FORMAT_VERSION + 1}\)"):
        load_checkpoint(newer)


def test_overwrite_replaces_a_run_and_missing_resume_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(tiny_config(tmp_path / "none"), resume=True)
    cfg = tiny_config(tmp_path / "run", stages=("detection",), max_steps=1)
    train(cfg)
    train(cfg, overwrite=True)
    assert len(read_log(tmp_path / "run")) == 1


def test_init_from_continues_from_another_runs_weights(tmp_path):
    train(tiny_config(tmp_path / "det", stages=("detection",), max_steps=2))
    train(tiny_config(tmp_path / "z", stages=("z",), max_steps=2, init_from=str(tmp_path / "det")))
    det, z = _weights(tmp_path / "det"), _weights(tmp_path / "z")
    for k in det:  # the 2D subnets are frozen in the z stage: carried over unchanged; the Z net trained
        if not k.startswith("z."):
            assert torch.equal(det[k], z[k]), k
    assert not torch.equal(det["z.fc.weight"], z["z.fc.weight"])


def test_init_from_with_an_ablated_z_net_another_crop_size_and_wrong_landmarks(tmp_path):
    train(tiny_config(tmp_path / "det", stages=("detection",), max_steps=1))
    rgb = tiny_config(tmp_path / "rgb", stages=("z",), max_steps=1, init_from=str(tmp_path / "det"),
                      preset_overrides={"heatmap_sigma": 1.5, "z": {"inputs": "rgb"}})
    train(rgb)
    ckpt = load_checkpoint(tmp_path / "rgb" / "checkpoint.pt")
    assert ckpt["preset"]["z"]["inputs"] == "rgb" and ckpt["preset"]["heatmap_sigma"] == 1.5
    assert ckpt["models"]["z"]["conv1.weight"].shape[1] == 3          # RGB only: 3 input channels
    # a differently built subnet that this run would not train cannot be taken over
    with pytest.raises(ValueError, match="detection subnetwork is configured differently"):
        train(tiny_config(tmp_path / "bad", stages=("regression",), max_steps=1, init_from=str(tmp_path / "det"),
                          preset_overrides={"detection": {"width": 16}}))
    # convolutions do not depend on the crop's size: a 128 px run starts from the 64 px run's 2D subnets,
    # and its Z net (seeing 128 px, not 64) trains from scratch
    train(tiny_config(tmp_path / "big", stages=("z",), max_steps=1, init_from=str(tmp_path / "det"),
                      preset_overrides={"image_size": 128}, synthetic_size=128))
    det, big = _weights(tmp_path / "det"), _weights(tmp_path / "big")
    assert all(torch.equal(det[k], big[k]) for k in det if k.startswith(("detection.", "regression.")))
    with pytest.raises(ValueError, match="predicts 66 landmarks"):
        train(tiny_config(tmp_path / "bad2", stages=("z",), max_steps=1, init_from=str(tmp_path / "det"),
                          scheme="68"))


def test_a_subnet_the_run_does_not_train_takes_its_init_runs_configuration(tmp_path):
    """The shipped model's Z net sees 32 px (--z-input-size 32); a quick run started from it that trains only
    the 2D stages keeps that Z net, configuration and weights, and a 128 px run keeps it seeing 32 px."""
    train(tiny_config(tmp_path / "small_z", stages=("z",), max_steps=1, preset_overrides={"z": {"input_size": 32}}))
    train(tiny_config(tmp_path / "twod", stages=("detection",), max_steps=1, init_from=str(tmp_path / "small_z")))
    train(tiny_config(tmp_path / "big", stages=("detection",), max_steps=1, init_from=str(tmp_path / "small_z"),
                      preset_overrides={"image_size": 128}, synthetic_size=128))
    for run, seen in (("twod", 32), ("big", 32)):
        ckpt = load_checkpoint(tmp_path / run / "checkpoint.pt")
        assert ckpt["preset"]["z"]["input_size"] == seen, run
        assert all(torch.equal(v, _weights(tmp_path / "small_z")[k]) for k, v in _weights(tmp_path / run).items()
                   if k.startswith("z.")), run
    # a run that trains the Z net builds its own, as its preset says
    train(tiny_config(tmp_path / "own_z", stages=("z",), max_steps=1, init_from=str(tmp_path / "small_z")))
    assert load_checkpoint(tmp_path / "own_z" / "checkpoint.pt")["preset"]["z"]["input_size"] is None


def test_init_from_a_checkpoint_written_before_a_preset_field_existed(tmp_path):
    train(tiny_config(tmp_path / "det", stages=("detection",), max_steps=1))
    path = tmp_path / "det" / "checkpoint.pt"
    old = load_checkpoint(path)
    del old["preset"]["z"]["inputs"]            # as written by fa3d before ZConfig.inputs
    save_checkpoint(path, old)
    train(tiny_config(tmp_path / "reg", stages=("regression",), max_steps=1, init_from=str(tmp_path / "det")))
    assert torch.equal(_weights(tmp_path / "det")["z.fc.weight"], _weights(tmp_path / "reg")["z.fc.weight"])


def test_preset_overrides_reject_unknown_fields():
    from fa3d.models import override_preset
    quick = get_preset("quick")
    assert override_preset(quick, {"z": {"inputs": "heatmaps"}}).z.in_channels(66) == 66
    assert override_preset(quick, None) == quick
    with pytest.raises(ValueError, match="sigma"):
        override_preset(quick, {"sigma": 2.0})
    with pytest.raises(ValueError, match="z.input"):
        override_preset(quick, {"z": {"input": "rgb"}})
    with pytest.raises(ValueError, match="ZConfig.inputs"):
        override_preset(quick, {"z": {"inputs": "depth"}})


@pytest.mark.slow
def test_ddp_under_torchrun_with_gloo(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "fa3d", "train", "--preset", "quick", "--out", str(out), "--num-train", "32", "--num-valid", "4",
           "--synthetic-size", "64", "--max-steps", "2", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = read_log(out)
    # rank 0 alone writes the log, one line per epoch; each step takes one global batch,
    # half of it on each process
    expected = []
    for stage in STAGES:
        batch = get_schedule("quick").stage(stage).batch_size
        per_epoch = 32 // batch  # steps per epoch of 32 faces
        expected += [(stage, min(2, (e + 1) * per_epoch)) for e in range(-(-2 // per_epoch))]
    assert [(r["stage"], r["step"]) for r in log] == expected
    assert sum(r["images"] for r in log) == sum(2 * get_schedule("quick").stage(s).batch_size for s in STAGES)
    assert load_checkpoint(out / "checkpoint.pt")["finished"]
    assert proc.stdout.count("done:") == 1


def test_a_run_of_fa3d_0_1_names_the_file_and_says_to_retrain(tmp_path):
    from fa3d.runs import load_run, state_dicts
    preset = get_preset("quick")
    models = state_dicts(Cascade.from_preset(preset))
    models["z"] = {k: v for k, v in models["z"].items() if not k.startswith("bn1.")}   # 0.1's stem had no BN
    (tmp_path / "old").mkdir()
    save_checkpoint(tmp_path / "old" / "checkpoint.pt", {"models": models, "preset": preset.to_dict()})
    with pytest.raises(CheckpointError, match=r"old/checkpoint.pt: its z weights do not fit.*trained again"):
        load_run(tmp_path / "old")
