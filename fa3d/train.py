"""Training the cascade (paper §2.3): the four stages of fa3d.models.losses, one plain PyTorch loop.

    train(cfg)            resolve the run folder, build the cascade and the data, train each stage
    train_stage           one stage: its optimiser, learning-rate decay and epochs
    train_one_epoch       augmented crops -> StageLoss (targets built on the device) -> optimiser step
    validate              loss and GTE on the validation crops after each epoch

After every epoch: validation, a checkpoint (RUN_DIR/checkpoint.pt, atomic) and one line in
RUN_DIR/log.jsonl. A run resumed from its checkpoint ends bit-identical to an uninterrupted
one (the data's randomness comes from fa3d.data.training, the RNG state from the checkpoint).
Multi-GPU under torchrun: see fa3d.distributed.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import get_rng_state, save_checkpoint, set_rng_state
from .data.readers import parse_spec, source_specs
from .data.schemes import get_scheme
from .data.splits import open_splits, require_depth, trained_photos
from .data.training import (CachedDataset, TrainCrops, center_crops, cheap_landmarks, collate_sources, epoch_order,
                            mean_shape)
from .data.transforms import AUGMENTS, Augment3D
from .env import resolve_device
from .metrics import gte
from .models import STAGES, Cascade, Preset, StageLoss, get_preset, override_preset
from .precision import autocast, choose_precision, grad_scaler
from .runs import (CHECKPOINT_NAME, GPU_WORKERS, LOG_NAME, TrainConfig, adopt_untrained_subnets, append_log,
                   build_cascade, data_history, resolve_train_run, state_dicts, trim_log, validation_warning,
                   write_config)
from .schedules import TrainSchedule, get_schedule, make_lr_scheduler, make_optimizer, stage_plan


@dataclass
class Run:
    """What one training process holds: its configuration, device, cascade and data."""
    cfg: TrainConfig
    dist: distributed.Dist
    device: torch.device
    preset: Preset
    schedule: TrainSchedule
    cascade: Cascade
    crops: TrainCrops
    valid: dict | None          # validation crops (rank 0 only)
    mean_shape: torch.Tensor
    workers: int
    progress: bool
    precision: str = "fp32"     # what cfg.precision resolved to on this device (fa3d.precision)
    history: list = None        # the data it learned from and their terms (fa3d.runs.data_history)
    trained_photos: list = None  # photo ids of its real training faces, its init_from run's included

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.out)

    def save(self, stage, epoch, step, opt=None, sched=None, done=True, finished=False, scaler=None) -> None:
        if self.dist.main:
            save_checkpoint(self.run_dir / CHECKPOINT_NAME, {
                "models": state_dicts(self.cascade),
                "optimizer": opt.state_dict() if opt else None, "scheduler": sched.state_dict() if sched else None,
                "stage": stage, "epoch": epoch, "step": step, "stage_done": done, "finished": finished,
                "rng": get_rng_state(), "config": self.cfg.to_dict(), "preset": self.preset.to_dict(),
                "schedule": self.schedule.to_dict(), "scheme": self.cfg.scheme, "mean_shape": self.mean_shape,
                "precision": self.precision, "scaler": scaler.state_dict() if scaler is not None else None,
                "data_history": self.history, "trained_photos": self.trained_photos})


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, on_step=None) -> Path:
    """Train (or resume) a run; returns RUN_DIR/checkpoint.pt. See the module docstring.

    A fresh run refuses a RUN_DIR that already holds a checkpoint unless ``overwrite``.
    ``resume`` continues from RUN_DIR/checkpoint.pt with the configuration stored there
    (only ``device``, ``num_workers`` and ``progress`` are taken from ``cfg``).
    ``on_step(stage, epoch, step)`` is called after every optimiser step; an exception it
    raises stops the run like a crash would (the last finished epoch's checkpoint stays).
    """
    cfg, ckpt = resolve_train_run(cfg, resume, overwrite)
    ckpt_path = Path(cfg.out) / CHECKPOINT_NAME
    if ckpt is not None and ckpt.get("finished"):
        return ckpt_path
    run = build_run(cfg, ckpt)
    start_stage, start_epoch = 0, 0
    if ckpt:  # continue after the checkpoint's last finished epoch
        set_rng_state(ckpt["rng"])
        start_stage, start_epoch = cfg.stages.index(ckpt["stage"]), ckpt["epoch"] + 1
        if ckpt["stage_done"]:
            start_stage, start_epoch = start_stage + 1, 0
        if run.dist.main:
            trim_log(run.run_dir, cfg.stages, start_stage, start_epoch)
    for si in range(start_stage, len(cfg.stages)):
        resume_from = ckpt if (ckpt and si == start_stage and start_epoch > 0) else None
        train_stage(run, cfg.stages[si], start_epoch if si == start_stage else 0, resume_from, on_step)
    run.save(cfg.stages[-1] if cfg.stages else None, -1, 0, finished=True)
    distributed.finish(run.dist)
    return ckpt_path


def build_run(cfg: TrainConfig, ckpt: dict | None) -> Run:
    """Device, cascade (fresh, from ``init_from`` or from the checkpoint) and data of a run."""
    device = resolve_device(cfg.device)   # before joining the process group, which needs its type
    d = distributed.init_distributed(device.type)
    on_gpu = device.type == "cuda"
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: a few CUDA kernels (e.g. max-pool backward) have no deterministic version
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif on_gpu:
        torch.backends.cudnn.benchmark = True
    workers = cfg.num_workers if cfg.num_workers is not None else (GPU_WORKERS if on_gpu else 0)
    progress = cfg.progress and d.main
    if ckpt:  # the run's own preset and schedule, even if the defaults changed since
        preset, schedule = Preset.from_dict(ckpt["preset"]), TrainSchedule.from_dict(ckpt["schedule"])
    else:
        preset = override_preset(get_preset(cfg.preset, get_scheme(cfg.scheme).num_points), cfg.preset_overrides)
        if cfg.init_from:
            preset = adopt_untrained_subnets(preset, cfg.init_from, cfg.stages, cfg.preset_overrides)
        schedule = TrainSchedule.from_dict(cfg.schedule) if cfg.schedule else get_schedule(cfg.preset)
    cascade = build_cascade(cfg, preset, ckpt).to(device)
    if on_gpu if cfg.channels_last is None else cfg.channels_last:
        cascade.to_channels_last()

    synthetic_size = cfg.synthetic_size or 2 * preset.image_size
    train_set, valid_set = open_splits(cfg.data, scheme=cfg.scheme, seed=cfg.seed, num_train=cfg.num_train,
                                       num_valid=cfg.num_valid, synthetic_size=synthetic_size, bases=cfg.bases,
                                       levers=cfg.synthetic_levers)
    if "z" in cfg.stages:
        require_depth(train_set, cfg.data)
    if ckpt and "data_history" in ckpt:   # resuming: as recorded when the run began
        history, photos = ckpt["data_history"], ckpt["trained_photos"]
    else:
        history, photos = data_history(cfg)
        photos = sorted(set(photos) | set(trained_photos(train_set)))
    if cfg.cache if cfg.cache is not None else any(parse_spec(s)[0] == "synthetic" for s in source_specs(cfg.data)):
        # rendered once, not per epoch
        train_set = CachedDataset(train_set, "rendering train faces", progress, workers)
    if len(valid_set) > cfg.num_valid:  # per-epoch validation on at most num_valid faces, evenly spaced
        valid_set = torch.utils.data.Subset(
            valid_set, np.linspace(0, len(valid_set) - 1, cfg.num_valid).round().astype(int).tolist())
    valid = center_crops(valid_set, preset.image_size, progress, "validation crops") if d.main else None
    mshape = ckpt["mean_shape"] if ckpt else mean_shape(train_set, preset.image_size,
                                                         1000 if cheap_landmarks(train_set) else 200)
    if cfg.augment not in AUGMENTS:
        raise ValueError(f"unknown augment {cfg.augment!r}: choose from {', '.join(AUGMENTS)}")
    augment = Augment3D(preset.image_size, AUGMENTS[cfg.augment], get_scheme(cfg.scheme))
    on_device = cfg.device_augment if cfg.device_augment is not None else on_gpu
    crops = TrainCrops(train_set, augment, cfg.seed, schedule.z_gt_heatmap_prob, on_device=on_device)
    precision, why = choose_precision(cfg.precision, device)
    run = Run(cfg, d, device, preset, schedule, cascade, crops, valid, mshape, workers, progress, precision,
              history, photos)
    if d.main:
        print(f"precision: {precision} ({why})", flush=True)
        run.run_dir.mkdir(parents=True, exist_ok=True)
        if ckpt is None:  # a fresh run (with overwrite=True if there was one: the user asked to replace it)
            (run.run_dir / CHECKPOINT_NAME).unlink(missing_ok=True)
            (run.run_dir / LOG_NAME).write_text("")
        write_config(run.run_dir, cfg, preset, schedule, history)
    return run


def train_stage(run: Run, stage: str, start_epoch: int = 0, ckpt: dict | None = None, on_step=None) -> None:
    """Train one stage from ``start_epoch`` (with the optimiser state of ``ckpt`` when resuming mid-stage)."""
    d, cfg = run.dist, run.cfg
    plan = stage_plan(run.schedule.stage(stage), len(run.crops), d.world, cfg.epochs_scale, cfg.max_steps)
    loss_mod = StageLoss(run.cascade, stage)
    loss_mod.set_mode(True)
    s = run.schedule.stage(stage)
    opt = make_optimizer(run.schedule.optimizer, [p for m in loss_mod.trainable() for p in m.parameters()], s.lr_start)
    sched = make_lr_scheduler(opt, s, plan.total_steps)
    scaler = grad_scaler(run.precision, run.device)
    step = 0
    if ckpt:
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        step = ckpt["step"]
    model = distributed.wrap(loss_mod, d, run.device)
    if cfg.compile:
        model = torch.compile(model)
    for epoch in range(start_epoch, plan.epochs):
        t0, lr = time.time(), sched.get_last_lr()[0]
        loss_mod.set_mode(True)
        run.crops.set_epoch(STAGES.index(stage), epoch)
        order = epoch_order(len(run.crops), cfg.seed, STAGES.index(stage), epoch)[: plan.steps_per_epoch * plan.batch_per_process * d.world]
        loader = DataLoader(run.crops, batch_size=plan.batch_per_process, sampler=order[d.rank::d.world],
                            num_workers=run.workers, pin_memory=run.device.type == "cuda", drop_last=True,
                            collate_fn=collate_sources)
        n_steps = min(plan.steps_per_epoch, plan.total_steps - step)
        bar = f"{stage} {epoch + 1}/{plan.epochs}" if run.progress else None
        losses = train_one_epoch(model, opt, sched, loader, run.device, n_steps, bar,
                                 (lambda k: on_step(stage, epoch, step + k)) if on_step else None,
                                 run.precision, scaler, where=(stage, epoch + 1, plan.epochs, step),
                                 prepare=run.crops.finish_batch if run.crops.on_device else None)
        step += len(losses)
        train_loss = distributed.mean_over_processes(float(np.mean(losses)) if losses else float("nan"), d, run.device)
        stage_done = step >= plan.total_steps or epoch == plan.epochs - 1
        if d.main:
            record = {"stage": stage, "epoch": epoch, "step": step, "lr": lr, "train_loss": train_loss,
                      **validate(run.cascade, loss_mod, run.valid, stage, run.device, precision=run.precision),
                      "seconds": round(time.time() - t0, 3), "images": n_steps * plan.batch_per_process * d.world}
            run.save(stage, epoch, step, opt, sched, stage_done, scaler=scaler)
            append_log(run.run_dir, record)
            tqdm.write(f"{stage:>10} epoch {epoch + 1:>3}/{plan.epochs}  lr {lr:.2e}  train {train_loss:.4g}  "
                       f"valid {record['valid_loss']:.4g}  GTE xy {record['valid_gte_xy']:.2f} %  "
                       f"xyz {record['valid_gte_xyz']:.2f} %  {record['seconds']:.1f} s{validation_warning(record)}")
        distributed.barrier(d)
        if stage_done:
            break
    loss_mod.set_mode(False)


class NonFiniteLossError(ArithmeticError):
    """The training loss or its gradients became NaN or inf; the message names the stage, epoch and step."""


NON_FINITE_ADVICE = ("the run stopped before this step changed the weights, and its folder keeps the checkpoint of "
                     "the last finished epoch. Try a lower learning rate, --precision fp32, or check the data")


def train_one_epoch(model: nn.Module, opt, sched, loader, device, max_steps: int, bar: str | None = None,
                    on_step=None, precision: str = "fp32", scaler=None, where=None, prepare=None) -> list[float]:
    """Up to ``max_steps`` optimiser steps over ``loader``'s batches; the learning rate decays
    every step. ``bar``: the progress bar's label (None: no bar). ``on_step(k)`` after the
    k-th step. ``where`` = (stage, epoch, epochs, steps before this epoch) names the place in
    the NonFiniteLossError raised for a NaN/inf loss: the run stops there, before that step
    changes the weights, and RUN_DIR keeps the checkpoint of the last finished epoch. ``prepare``:
    makes the crops of a batch on the device (:meth:`TrainCrops.finish_batch`). Returns the losses."""
    losses = []
    batches = tqdm(loader, total=max_steps, desc=bar, disable=bar is None, leave=False)
    for batch in batches:
        if len(losses) >= max_steps:
            break
        batch = {k: [t.to(device, non_blocking=True) for t in v] if isinstance(v, list) else
                 v.to(device, non_blocking=True) for k, v in batch.items()}
        loss = optimizer_step(model, opt, prepare(batch) if prepare else batch, precision, scaler)
        if loss is None:
            stage, epoch, epochs, before = where or ("?", "?", "?", 0)
            raise NonFiniteLossError(f"training loss or its gradients not finite at stage {stage}, epoch {epoch}/{epochs}, step "
                                     f"{before + len(losses) + 1} (precision {precision}); {NON_FINITE_ADVICE}")
        sched.step()
        losses.append(loss.item())
        batches.set_postfix(loss=f"{losses[-1]:.4g}")
        if on_step is not None:
            on_step(len(losses))
    batches.close()
    return losses


def optimizer_step(model: nn.Module, opt: torch.optim.Optimizer, batch: dict, precision: str | None = None,
                   scaler=None) -> torch.Tensor | None:
    """One training step of a :class:`~fa3d.models.StageLoss` (or its DDP wrapper) on a batch
    already on its device, under ``precision``'s autocast (None: what "auto" picks for the device),
    with ``scaler`` (a GradScaler; fp16) scaling the loss. Returns the loss, or None when it is
    NaN or inf, or the gradients are (then nothing is stepped)."""
    device = batch["image"].device
    precision = precision or choose_precision("auto", device)[0]
    with autocast(precision, device):
        loss, _ = model(batch["image"], batch["landmarks"], batch["face_height"], batch["z_gt_heatmap"])
    if not _everywhere(torch.isfinite(loss.detach())):
        return None
    opt.zero_grad(set_to_none=True)
    if scaler is not None and scaler.is_enabled():
        scaler.scale(loss).backward()
        scaler.step(opt)      # skipped (and the scale lowered) when the fp16 gradients overflowed
        scaler.update()
        return loss
    loss.backward()
    grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
    # a finite loss can still have NaN/inf gradients (e.g. a sqrt at 0): never step on them
    if grads and not _everywhere(torch.isfinite(torch.nn.utils.get_total_norm(grads))):
        opt.zero_grad(set_to_none=True)
        return None
    opt.step()
    return loss


def _everywhere(flag: torch.Tensor) -> bool:
    """``flag`` (a bool scalar) holds on every process (under DDP, all stop together)."""
    flag = flag.float()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag)


@torch.no_grad()
def validate(cascade: Cascade, loss_mod: StageLoss, valid: dict | None, stage: str, device,
             batch_size: int = 64, precision: str = "fp32") -> dict:
    """Loss and GTE (percent) on the validation crops, with the subnets trained so far. The Z
    stage is validated on heatmaps at the predicted x, y only (what it sees at test time)."""
    if valid is None or len(valid["image"]) == 0:
        return {"valid_loss": float("nan"), "valid_gte_xy": float("nan"), "valid_gte_xyz": float("nan")}
    loss_mod.set_mode(False)
    losses, preds, n = 0.0, [], len(valid["image"])
    for i in range(0, n, batch_size):
        img, lm = valid["image"][i:i + batch_size].to(device), valid["landmarks"][i:i + batch_size].to(device)
        height = valid["face_height"][i:i + batch_size].to(device)
        with autocast(precision, device):
            loss, out = loss_mod(img, lm, height, torch.zeros(len(img), dtype=torch.bool, device=device))
        losses += float(loss) * len(img)
        preds.append(out["landmarks"].float().cpu())
    pred, gt = torch.cat(preds), valid["landmarks"]
    loss_mod.set_mode(True)
    return {"valid_loss": losses / n, "valid_gte_xy": 100 * float(gte(pred, gt, "xy").nanmean()),
            "valid_gte_xyz": 100 * float(gte(pred, gt, "xyz").nanmean())}
