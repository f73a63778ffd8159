"""Training the cascade (paper §2.3): four stages, one plain PyTorch loop.

    detection   DetectionNet alone: per-pixel sigmoid cross-entropy against binary disks
                at the detection output (stride 4), radius 7 px for a 220 px face, scaled.
    regression  RegressionNet on (image, sigmoid(detection logits)), detection frozen:
                pixel-wise L2 against Gaussians (std preset.heatmap_sigma) at crop resolution.
    joint       both 2D subnets trained together, the two losses summed.
    z           ZRegressor on RGB + Gaussian heatmaps, L2 on z (eq. 1). Per sample, a coin
                (probability schedule.z_gt_heatmap_prob) picks whether the heatmaps are
                rendered at the ground-truth x, y or at the x, y that the trained 2D stage
                predicts: the paper trains on "both", and the predicted ones teach the Z
                net to live with the 2D stage's errors it will see at test time.

Every stage is the same loop: augmented crops -> targets built *on the training
device* from landmark coordinates (66 maps at 384 px are ~39 MB per image: never on
CPU workers) -> loss -> optimiser step -> learning rate step (geometric decay per
step, see fa3d/schedules.py). After each epoch: validation, a checkpoint
(RUN_DIR/checkpoint.pt, atomic) and one line in RUN_DIR/log.jsonl.

Reproducibility: the data order and every random number of the augmentation come
from (seed, stage, epoch, index), never from global RNG state, so results do not
depend on the number of DataLoader workers or processes, and a run resumed from a
checkpoint ends where an uninterrupted run would.

Multi-GPU: run under ``torchrun --nproc_per_node K -m fa3d train ...``. Each process
takes every K-th sample of the same order (batch_size is the *global* batch), DDP
averages gradients, rank 0 alone validates, logs and writes checkpoints.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .checkpoint import get_rng_state, load_checkpoint, save_checkpoint, set_rng_state
from .data.schemes import get_scheme
from .data.transforms import Augment3D, AugmentConfig, face_crop_matrix, warp_landmarks, CenterCrop3D
from .heatmaps import decode_heatmaps, disk_heatmaps, disk_radius, gaussian_heatmaps, resize_points
from .metrics import gte
from .models import (Cascade, DetectionConfig, Preset, RegressionConfig, ZConfig, detection_loss,
                     get_preset, normalize_images, override_preset, regression_loss)
from .schedules import STAGES, TrainSchedule, get_schedule

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "log.jsonl"


@dataclass
class TrainConfig:
    """Everything a training run depends on (stored in its checkpoint)."""
    out: str                                   # RUN_DIR
    preset: str = "quick"                      # "quick" or "paper"
    data: str = "synthetic"                    # dataset SPEC (see fa3d.data.readers.open_dataset)
    stages: tuple[str, ...] = STAGES
    seed: int = 0
    device: str = "auto"                       # "auto" (cuda if available), "cpu", "cuda", "cuda:1"...
    deterministic: bool = False                # torch.use_deterministic_algorithms (slower on GPU)
    epochs_scale: float = 1.0                  # multiply every stage's epochs (at least 1)
    max_steps: int | None = None               # cap on optimiser steps per stage (smoke tests)
    num_train: int = 1000                      # synthetic faces for training (synthetic data only)
    num_valid: int = 200                       # validation faces (synthetic; or held out from one folder)
    synthetic_size: int | None = None          # rendered image side; default 2 x the crop size
    pretrained: bool | None = None             # ImageNet init of the detection net; None: paper yes, quick no
    scheme: str = "3dfaw66"
    num_workers: int | None = None             # DataLoader workers; None: 0 on CPU, 6 on GPU
    cache: bool | None = None                  # keep the source images in memory; None: synthetic on CPU
    channels_last: bool | None = None          # None: on CUDA only (measured: no gain for small CPU nets)
    progress: bool = True                      # tqdm bars
    schedule: dict | None = None               # a TrainSchedule.to_dict() overriding the preset's
    init_from: str | None = None               # RUN_DIR (or checkpoint) whose trained subnets start this run
    preset_overrides: dict | None = None       # e.g. {"heatmap_sigma": 6.0, "z": {"inputs": "rgb"}}


# ----------------------------------------------------------------------------- seeds and order

STAGE_IDS = {name: i for i, name in enumerate(STAGES)}


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from integer keys, e.g. (seed, stage, epoch, index): independent streams."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def epoch_order(n: int, seed: int, stage: str, epoch: int) -> list[int]:
    """The shuffled order of the n training samples for one epoch of one stage."""
    g = torch.Generator().manual_seed(derive_seed(seed, STAGE_IDS[stage], epoch))
    return torch.randperm(n, generator=g).tolist()


# ----------------------------------------------------------------------------- data

class CachedDataset(Dataset):
    """All items of ``base`` kept in memory (rendered or decoded once)."""

    def __init__(self, base: Dataset, desc: str = "caching", progress: bool = True, num_workers: int = 0):
        loader = DataLoader(base, batch_size=None, num_workers=num_workers)
        self.items = [_slim(item) for item in tqdm(loader, total=len(base), desc=desc, disable=not progress,
                                                   leave=False)]
        self.scheme = getattr(base, "scheme", None)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def _slim(item: dict) -> dict:
    """Only what training needs (no ids, poses: they do not collate cleanly or matter)."""
    return {"image": item["image"], "landmarks": item["landmarks"], "bbox": item["bbox"]}


class TrainCrops(Dataset):
    """Augmented training crops (paper §2.3) with randomness from (seed, stage, epoch, index).

    Item: ``image`` uint8 (3, S, S), ``landmarks`` (N, 3) crop pixels, ``face_height``
    (crop pixels, for the disk radius), ``gt_heatmaps`` bool (Z stage: heatmaps from the
    ground truth, else from the 2D stage's prediction).
    """

    def __init__(self, base: Dataset, augment: Augment3D, seed: int, z_gt_prob: float = 0.5):
        self.base, self.augment, self.seed, self.z_gt_prob = base, augment, seed, z_gt_prob
        self.stage, self.epoch = STAGES[0], 0

    def set_epoch(self, stage: str, epoch: int) -> None:
        self.stage, self.epoch = stage, epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        g = torch.Generator().manual_seed(derive_seed(self.seed, STAGE_IDS[self.stage], self.epoch, index))
        item = self.augment(self.base[index], g)
        x1, y1, x2, y2 = item["bbox"].tolist()
        return {"image": item["image"], "landmarks": item["landmarks"],
                "face_height": torch.tensor(y2 - y1, dtype=torch.float32),
                "gt_heatmaps": bool(torch.rand((), generator=g) < self.z_gt_prob)}


def center_crops(dataset: Dataset, size: int, progress: bool = False, desc: str = "crops") -> dict:
    """Evaluation crops of a whole dataset: ``image`` uint8 (V,3,S,S), ``landmarks`` (V,N,3)
    crop pixels, ``crop_matrix`` (V,2,3) image -> crop."""
    crop = CenterCrop3D(size)
    items = [crop(dataset[i]) for i in tqdm(range(len(dataset)), desc=desc, disable=not progress, leave=False)]
    return {k: torch.stack([it[k] for it in items]) for k in ("image", "landmarks", "crop_matrix")}


def mean_shape(dataset: Dataset, size: int, max_items: int = 1000) -> torch.Tensor:
    """Mean training shape (N, 3) in evaluation-crop pixels: every face cropped as
    :class:`CenterCrop3D` would, from its landmark box. The mean-shape baseline places
    it in each test crop. Uses at most ``max_items`` faces (evenly spaced)."""
    n = len(dataset)
    idx = np.linspace(0, n - 1, min(n, max_items)).round().astype(int) if n else []
    shapes = []
    for i in idx:
        lm = _landmarks_only(dataset, int(i))
        bbox = torch.cat([lm[:, :2].amin(0), lm[:, :2].amax(0)])
        shapes.append(warp_landmarks(lm, face_crop_matrix(bbox, size)))
    return torch.stack(shapes).nanmean(0).nan_to_num(0.0)


def _landmarks_only(dataset, i: int) -> torch.Tensor:
    """Landmarks of item i without decoding its image where the dataset allows it."""
    if isinstance(dataset, CachedDataset):
        return dataset.items[i]["landmarks"]
    if hasattr(dataset, "read_annotation") and hasattr(dataset, "samples"):
        from .data.readers import _to_scheme  # annotations only: no JPEG decoding
        path = dataset.samples[i][2]
        lm = np.asarray(_to_scheme(dataset.read_annotation(path)[0], dataset.scheme, path), np.float64)
        if lm.shape[1] == 2:
            lm = np.concatenate([lm, np.full((len(lm), 1), np.nan)], 1)
        lm[:, 2] -= lm[:, 2].mean()
        return torch.from_numpy(lm.astype(np.float32))
    return dataset[i]["landmarks"]


def open_splits(cfg: TrainConfig, preset: Preset):
    """(train dataset, valid dataset) for cfg.data. Synthetic: two disjoint seeds
    (valid uses seed + SYNTHETIC_VALID_SEED_OFFSET). 3DFAW: its train/valid folders. A
    single folder (aflw2000, 300wlp, folder): ``num_valid`` faces held out by a seeded shuffle."""
    from .cli import SYNTHETIC_VALID_SEED_OFFSET
    from .data.readers import open_dataset

    kind = cfg.data.partition(":")[0].strip().lower()
    if kind == "synthetic":
        size = cfg.synthetic_size or 2 * preset.image_size
        return (open_dataset("synthetic", size=cfg.num_train, image_size=size, scheme=cfg.scheme, seed=cfg.seed),
                open_dataset("synthetic", size=cfg.num_valid, image_size=size, scheme=cfg.scheme,
                             seed=cfg.seed + SYNTHETIC_VALID_SEED_OFFSET))
    if kind == "3dfaw":
        return (open_dataset(cfg.data, split="train", scheme=cfg.scheme),
                open_dataset(cfg.data, split="valid", scheme=cfg.scheme))
    full = open_dataset(cfg.data, scheme=cfg.scheme)
    n_valid = min(cfg.num_valid, len(full) // 5)
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    return Subset(full, sorted(order[n_valid:])), Subset(full, sorted(order[:n_valid]))


class Subset(torch.utils.data.Subset):
    """torch's Subset that keeps the base dataset's scheme/annotation access (for mean_shape)."""

    def __init__(self, dataset, indices):
        super().__init__(dataset, indices)
        self.scheme = getattr(dataset, "scheme", None)
        if hasattr(dataset, "samples") and hasattr(dataset, "read_annotation"):
            self.samples = [dataset.samples[i] for i in indices]
            self.read_annotation = dataset.read_annotation


# ----------------------------------------------------------------------------- presets <-> dicts

def preset_to_dict(preset: Preset) -> dict:
    return asdict(preset)


def preset_from_dict(d: dict) -> Preset:
    d = dict(d)
    return Preset(name=d["name"], image_size=d["image_size"], heatmap_sigma=d["heatmap_sigma"],
                  detection=DetectionConfig(**d["detection"]), regression=RegressionConfig(**d["regression"]),
                  z=ZConfig(**d["z"]))


def build_cascade(preset: Preset, pretrained: bool = False) -> Cascade:
    """A fresh cascade for ``preset`` (ImageNet detection backbone if ``pretrained``)."""
    p = dataclasses.replace(preset, detection=dataclasses.replace(preset.detection, pretrained=pretrained))
    return Cascade.from_preset(p)


# ----------------------------------------------------------------------------- losses

def _z_loss_masked(z_pred: torch.Tensor, z_true: torch.Tensor) -> torch.Tensor:
    """Eq. (1), ignoring landmarks without ground-truth z (NaN, e.g. 2D-only datasets)."""
    ok = torch.isfinite(z_true)
    if bool(ok.all()):
        return F.mse_loss(z_pred, z_true)
    diff = torch.where(ok, z_pred - z_true.nan_to_num(0.0), torch.zeros_like(z_pred))
    return diff.square().sum() / ok.sum().clamp(min=1)


class StageLoss(nn.Module):
    """The loss of one training stage, as a module (so DDP can wrap it).

    forward(images uint8 (B,3,S,S), landmarks (B,N,3) crop px, face_height (B,), gt_heatmaps (B,) bool)
    -> (loss, predictions dict). Frozen subnets run in eval mode under no_grad.
    """

    def __init__(self, cascade: Cascade, stage: str, channels_last: bool = False):
        super().__init__()
        self.cascade, self.stage, self.channels_last = cascade, stage, channels_last

    def trainable(self) -> list[nn.Module]:
        c = self.cascade
        return {"detection": [c.detection], "regression": [c.regression],
                "joint": [c.detection, c.regression], "z": [c.z]}[self.stage]

    def set_mode(self, train: bool) -> None:
        """requires_grad and train/eval for the subnets of this stage; the rest frozen in eval mode."""
        active = self.trainable()
        for m in (self.cascade.detection, self.cascade.regression, self.cascade.z):
            on = any(m is a for a in active)
            m.train(train and on)
            m.requires_grad_(on)

    def forward(self, images, landmarks, face_height, gt_heatmaps):
        c, S = self.cascade, images.shape[-1]
        x = normalize_images(images)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out, loss = {}, x.new_zeros(())
        if self.stage in ("detection", "regression", "joint"):
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.stage != "regression"):
                logits = c.detection(x)
            out["detection_logits"] = logits
            if self.stage != "regression":
                h = logits.shape[-1]
                pts = resize_points(landmarks, S, h)
                radius = disk_radius(face_height * h / S)           # same units as the face height
                loss = loss + detection_loss(logits.float(), disk_heatmaps(pts, h, radius))
            if self.stage != "detection":
                heat = c.regression(x, torch.sigmoid(logits))
                out["heatmaps"] = heat
                target = gaussian_heatmaps(landmarks, S, c.heatmap_sigma)
                loss = loss + regression_loss(heat.float(), target)
            return loss, out
        # z stage: heatmaps at ground-truth or predicted x, y
        with torch.no_grad():
            xy_pred = decode_heatmaps(c.regression(x, torch.sigmoid(c.detection(x))).float())
        xy = torch.where(gt_heatmaps[:, None, None], landmarks[..., :2], xy_pred)
        heat = gaussian_heatmaps(xy, S, c.heatmap_sigma).to(x.dtype)
        if self.channels_last:
            heat = heat.contiguous(memory_format=torch.channels_last)
        z = c.z(x, heat).float()
        out["z"] = z
        return _z_loss_masked(z, landmarks[..., 2]), out


# ----------------------------------------------------------------------------- prediction

@torch.no_grad()
def predict_crops(cascade: Cascade, images: torch.Tensor, stage: str = "z", batch_size: int = 64,
                  device=None, autocast: bool = False) -> torch.Tensor:
    """Landmarks (V, N, 3) in crop pixels for uint8 crops (V, 3, S, S), with the subnets
    trained up to ``stage``: after "detection" x, y come from the detection maps, after
    "regression"/"joint" from the hourglass; z from the Z net (centred to zero mean, like
    the ground truth: a projection that can only bring the prediction closer to it)."""
    device = device or next(cascade.parameters()).device
    was_training = cascade.training
    cascade.eval()
    outs = []
    for i in range(0, len(images), batch_size):
        x = normalize_images(images[i:i + batch_size].to(device))
        S = x.shape[-1]
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
            logits = cascade.detection(x)
            if stage == "detection":
                h = logits.shape[-1]
                xy = resize_points(decode_heatmaps(torch.sigmoid(logits.float())), h, S)
            else:
                xy = decode_heatmaps(cascade.regression(x, torch.sigmoid(logits)).float())
            z = cascade.z(x, gaussian_heatmaps(xy, S, cascade.heatmap_sigma).to(x.dtype)).float()
        z = z - z.mean(-1, keepdim=True)
        outs.append(torch.cat([xy, z[..., None]], -1).cpu())
    cascade.train(was_training)
    return torch.cat(outs) if outs else torch.zeros(0, cascade.z.config.num_landmarks, 3)


# ----------------------------------------------------------------------------- distributed

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> Dist:
    """Join the process group when launched by torchrun (env WORLD_SIZE > 1): nccl on CUDA, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return Dist(rank, world, local)


def resolve_device(name: str, d: Dist) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", d.local_rank if d.world > 1 else torch.cuda.current_device())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dev


# ----------------------------------------------------------------------------- the run

class RunDirError(FileExistsError):
    """RUN_DIR already holds a run and neither resume nor overwrite was asked for."""


def _make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "rmsprop":  # Torch7 optim.rmsprop defaults: alpha 0.99, epsilon 1e-8
        return torch.optim.RMSprop(params, lr=lr, alpha=0.99, eps=1e-8, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; use 'rmsprop', 'adam' or 'sgd'")


def _stage_plan(cfg: TrainConfig, schedule: TrainSchedule, stage: str, n_train: int, world: int):
    """(epochs, steps per epoch, total steps, per-process batch) of one stage."""
    s = schedule.stage(stage)
    per_rank = max(1, min(s.batch_size, n_train) // world)  # a set smaller than a batch: one batch of it
    steps_per_epoch = max(1, n_train // (per_rank * world))
    epochs = max(1, round(s.epochs * cfg.epochs_scale))
    total = epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
        epochs = math.ceil(total / steps_per_epoch)
    return epochs, steps_per_epoch, total, per_rank


def _config_dict(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["stages"] = list(d["stages"])
    return d


def _trim_log(path: Path, stages, start_stage: int, start_epoch: int) -> None:
    """On resume, drop log lines of epochs that the checkpoint does not contain
    (a crash between saving the checkpoint and the log line cannot duplicate lines)."""
    if not path.exists():
        return
    position = {name: i for i, name in enumerate(stages)}
    keep = []
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            if (position.get(r["stage"], len(stages)), r["epoch"]) < (start_stage, start_epoch):
                keep.append(line)
    path.write_text("".join(line + "\n" for line in keep))


def optimizer_step(model: nn.Module, opt: torch.optim.Optimizer, batch: dict) -> torch.Tensor:
    """One training step of a :class:`StageLoss` (or its DDP wrapper) on a batch already on
    its device, in bf16 autocast on CUDA; returns the loss."""
    on_gpu = batch["image"].is_cuda
    with torch.autocast(device_type="cuda" if on_gpu else "cpu", dtype=torch.bfloat16, enabled=on_gpu):
        loss, _ = model(batch["image"], batch["landmarks"], batch["face_height"], batch["gt_heatmaps"])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def random_batch(batch_size: int, size: int, num_landmarks: int, device, seed: int = 0) -> dict:
    """A training batch of random crops and plausible landmarks, for benchmarks and memory probes:
    ``image`` uint8 (B,3,S,S), ``landmarks`` (B,N,3) crop px, ``face_height`` (B,), ``gt_heatmaps`` (B,)."""
    g = torch.Generator().manual_seed(seed)
    landmarks = (torch.rand(batch_size, num_landmarks, 3, generator=g) * 0.6 + 0.2) * size
    landmarks[..., 2] -= landmarks[..., 2].mean(-1, keepdim=True)
    batch = {"image": torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, generator=g),
             "landmarks": landmarks, "face_height": torch.full((batch_size,), 0.8 * size),
             "gt_heatmaps": torch.arange(batch_size) % 2 == 0}
    return {k: v.to(device) for k, v in batch.items()}


#: which stages train each subnetwork
TRAINED_BY = {"detection": ("detection", "joint"), "regression": ("regression", "joint"), "z": ("z",)}


def load_init_from(cascade: Cascade, init_from: str, preset: Preset, stages) -> list[str]:
    """Start ``cascade`` from another run's weights (``TrainConfig.init_from``); returns the
    subnets loaded. A subnet whose configuration differs from that run's (an ablation, e.g.
    ``z.inputs``) keeps its fresh initialisation, which is only allowed when this run trains it."""
    path = Path(init_from)
    init = load_checkpoint(path / CHECKPOINT_NAME if path.is_dir() else path)
    theirs = preset_from_dict(init["preset"])   # fields added to the configs since that run get their defaults
    if (theirs.image_size, theirs.num_landmarks) != (preset.image_size, preset.num_landmarks):
        raise ValueError(f"--init-from {init_from}: that run used {theirs.image_size} px crops and "
                         f"{theirs.num_landmarks} landmarks ({theirs.name} preset), "
                         f"this one {preset.image_size} px and {preset.num_landmarks} ({preset.name})")
    loaded = []
    for name, sd in init["models"].items():
        if getattr(theirs, name) == getattr(preset, name):
            getattr(cascade, name).load_state_dict(sd)
            loaded.append(name)
        elif not set(TRAINED_BY[name]) & set(stages):
            raise ValueError(f"--init-from {init_from}: its {name} subnetwork is configured differently from "
                             f"this run's ({getattr(theirs, name)} vs {getattr(preset, name)}), "
                             f"and this run does not train it")
    return loaded


def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, on_step=None) -> Path:
    """Train (or resume) a run; returns RUN_DIR/checkpoint.pt. See the module docstring.

    A fresh run refuses a RUN_DIR that already holds a checkpoint unless ``overwrite``.
    ``resume`` continues from RUN_DIR/checkpoint.pt with the configuration stored there
    (only ``device``, ``num_workers`` and ``progress`` are taken from ``cfg``).
    ``on_step(stage, epoch, step)`` is called after every optimiser step; an exception it
    raises stops the run like a crash would (the last finished epoch's checkpoint stays).
    """
    run_dir = Path(cfg.out)
    ckpt_path, log_path = run_dir / CHECKPOINT_NAME, run_dir / LOG_NAME
    ckpt = None
    if resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint to resume from at {ckpt_path}")
        ckpt = load_checkpoint(ckpt_path)
        if ckpt.get("finished"):
            return ckpt_path
        saved = dict(ckpt["config"])
        saved.update(out=str(run_dir), device=cfg.device, num_workers=cfg.num_workers, progress=cfg.progress)
        saved["stages"] = tuple(saved["stages"])
        cfg = TrainConfig(**saved)
    elif ckpt_path.exists() and not overwrite:
        raise RunDirError(f"{run_dir} already holds a training run ({ckpt_path}); "
                          f"pass --resume to continue it, --overwrite to replace it, or choose another --out")
    for s in cfg.stages:
        if s not in STAGES:
            raise ValueError(f"unknown stage {s!r}; stages are {', '.join(STAGES)}")

    d = init_distributed(cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    device = resolve_device(cfg.device, d)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: a few CUDA kernels (e.g. max-pool backward) have no deterministic version
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    on_gpu = device.type == "cuda"
    channels_last = on_gpu if cfg.channels_last is None else cfg.channels_last
    workers = cfg.num_workers if cfg.num_workers is not None else (6 if on_gpu else 0)
    progress = cfg.progress and d.main

    preset = (preset_from_dict(ckpt["preset"]) if ckpt else
              override_preset(get_preset(cfg.preset, get_scheme(cfg.scheme).num_points), cfg.preset_overrides))
    if ckpt:  # the run's own schedule, even if the preset's default changed since
        schedule = TrainSchedule.from_dict(ckpt["schedule"])
    else:
        schedule = TrainSchedule.from_dict(cfg.schedule) if cfg.schedule else get_schedule(cfg.preset)
    pretrained = (cfg.preset == "paper") if cfg.pretrained is None else cfg.pretrained
    torch.manual_seed(cfg.seed)
    cascade = build_cascade(preset, pretrained=pretrained and ckpt is None).to(device)
    if ckpt:
        for name, sd in ckpt["models"].items():
            getattr(cascade, name).load_state_dict(sd)
    elif cfg.init_from:
        # Continue from an earlier run's weights, e.g. train regression on top of a finished
        # detection run (the course trains the cascade one notebook, one stage at a time).
        load_init_from(cascade, cfg.init_from, preset, cfg.stages)
    if channels_last:
        cascade = cascade.to(memory_format=torch.channels_last)

    train_set, valid_set = open_splits(cfg, preset)
    kind = cfg.data.partition(":")[0].strip().lower()
    if cfg.cache if cfg.cache is not None else (kind == "synthetic" and not on_gpu):
        train_set = CachedDataset(train_set, "rendering train faces", progress, workers)
    if len(valid_set) > cfg.num_valid:  # per-epoch validation on at most num_valid faces, evenly spaced
        valid_set = torch.utils.data.Subset(
            valid_set, np.linspace(0, len(valid_set) - 1, cfg.num_valid).round().astype(int).tolist())
    valid = center_crops(valid_set, preset.image_size, progress, "validation crops") if d.main else None
    cheap = isinstance(train_set, CachedDataset) or hasattr(train_set, "read_annotation")
    mshape = ckpt["mean_shape"] if ckpt else mean_shape(train_set, preset.image_size, 1000 if cheap else 200)
    augment = Augment3D(preset.image_size, AugmentConfig(), get_scheme(cfg.scheme))
    crops = TrainCrops(train_set, augment, cfg.seed, schedule.z_gt_heatmap_prob)

    if d.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if ckpt is None:  # a fresh run (with overwrite=True if there was one: the user asked to replace it)
            ckpt_path.unlink(missing_ok=True)
            log_path.write_text("")
        (run_dir / "config.json").write_text(json.dumps(
            {"config": _config_dict(cfg), "preset": preset_to_dict(preset), "schedule": schedule.to_dict()},
            indent=2) + "\n")

    def checkpoint(stage, epoch, step, opt, sched, done, finished=False):
        if not d.main:
            return
        save_checkpoint(ckpt_path, {
            "models": {n: getattr(cascade, n).state_dict() for n in ("detection", "regression", "z")},
            "optimizer": opt.state_dict() if opt else None, "scheduler": sched.state_dict() if sched else None,
            "stage": stage, "epoch": epoch, "step": step, "stage_done": done, "finished": finished,
            "rng": get_rng_state(), "config": _config_dict(cfg), "preset": preset_to_dict(preset),
            "schedule": schedule.to_dict(), "scheme": cfg.scheme, "mean_shape": mshape,
        })

    # where to start: (stage index, epoch) after the checkpoint
    start_stage, start_epoch = 0, 0
    if ckpt:
        set_rng_state(ckpt["rng"])
        start_stage = list(cfg.stages).index(ckpt["stage"])
        start_epoch = ckpt["epoch"] + 1
        if ckpt["stage_done"]:
            start_stage, start_epoch = start_stage + 1, 0
        if d.main:
            _trim_log(log_path, cfg.stages, start_stage, start_epoch)

    for si in range(start_stage, len(cfg.stages)):
        stage = cfg.stages[si]
        s = schedule.stage(stage)
        epochs, steps_per_epoch, total, per_rank = _stage_plan(cfg, schedule, stage, len(crops), d.world)
        loss_mod = StageLoss(cascade, stage, channels_last)
        loss_mod.set_mode(True)
        params = [p for m in loss_mod.trainable() for p in m.parameters()]
        opt = _make_optimizer(schedule.optimizer, params, s.lr_start, schedule.weight_decay)
        gamma = (s.lr_end / s.lr_start) ** (1 / (total - 1)) if total > 1 else 1.0
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)
        step = 0
        if ckpt and si == start_stage and start_epoch > 0:
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            step = ckpt["step"]
        model = loss_mod
        if d.world > 1:
            model = nn.parallel.DistributedDataParallel(loss_mod, device_ids=[device.index] if on_gpu else None)

        for epoch in range(start_epoch if si == start_stage else 0, epochs):
            t0 = time.time()
            loss_mod.set_mode(True)
            crops.set_epoch(stage, epoch)
            order = epoch_order(len(crops), cfg.seed, stage, epoch)[: steps_per_epoch * per_rank * d.world]
            loader = DataLoader(crops, batch_size=per_rank, sampler=order[d.rank::d.world], num_workers=workers,
                                pin_memory=on_gpu, drop_last=True)
            n_steps = min(steps_per_epoch, total - step)
            losses, lr = [], sched.get_last_lr()[0]
            bar = tqdm(loader, total=n_steps, desc=f"{stage} {epoch + 1}/{epochs}", disable=not progress,
                       leave=False)
            for batch in bar:
                if step >= total:
                    break
                loss = optimizer_step(model, opt, {k: v.to(device, non_blocking=True) for k, v in batch.items()})
                sched.step()
                step += 1
                losses.append(loss.item())
                bar.set_postfix(loss=f"{losses[-1]:.4g}")
                if on_step is not None:
                    on_step(stage, epoch, step)
            bar.close()
            train_loss = float(np.mean(losses)) if losses else float("nan")
            if d.world > 1:  # mean over processes, for the log
                t = torch.tensor([train_loss], dtype=torch.float64, device=device)
                dist.all_reduce(t)
                train_loss = float(t) / d.world
            stage_done = step >= total or epoch == epochs - 1
            if d.main:
                record = {"stage": stage, "epoch": epoch, "step": step, "lr": lr, "train_loss": train_loss,
                          **validate(cascade, loss_mod, valid, stage, device, on_gpu),
                          "seconds": round(time.time() - t0, 3), "images": n_steps * per_rank * d.world}
                checkpoint(stage, epoch, step, opt, sched, stage_done)
                with log_path.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                tqdm.write(f"{stage:>10} epoch {epoch + 1:>3}/{epochs}  lr {lr:.2e}  train {train_loss:.4g}  "
                           f"valid {record['valid_loss']:.4g}  GTE xy {record['valid_gte_xy']:.2f} %  "
                           f"xyz {record['valid_gte_xyz']:.2f} %  {record['seconds']:.1f} s")
            if d.world > 1:
                dist.barrier()
            if stage_done:
                break
        loss_mod.set_mode(False)
    if d.main:
        checkpoint(cfg.stages[-1] if cfg.stages else None, -1, 0, None, None, True, finished=True)
    if d.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return ckpt_path


@torch.no_grad()
def validate(cascade: Cascade, loss_mod: StageLoss, valid: dict, stage: str, device, autocast: bool) -> dict:
    """Loss and GTE (percent) on the validation crops, with the subnets trained so far."""
    if valid is None or len(valid["image"]) == 0:
        return {"valid_loss": float("nan"), "valid_gte_xy": float("nan"), "valid_gte_xyz": float("nan")}
    loss_mod.set_mode(False)
    losses, n = 0.0, len(valid["image"])
    for i in range(0, n, 64):
        img = valid["image"][i:i + 64].to(device)
        lm = valid["landmarks"][i:i + 64].to(device)
        height = lm[..., 1].amax(-1) - lm[..., 1].amin(-1)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            # the Z stage is validated on predicted heatmaps only (what it sees at test time)
            loss, _ = loss_mod(img, lm, height, torch.zeros(len(img), dtype=torch.bool, device=device))
        losses += float(loss) * len(img)
    pred = predict_crops(cascade, valid["image"], stage, device=device, autocast=autocast)
    gt = valid["landmarks"]
    loss_mod.set_mode(True)
    return {"valid_loss": losses / n,
            "valid_gte_xy": 100 * float(gte(pred, gt, "xy").nanmean()),
            "valid_gte_xyz": 100 * float(gte(pred, gt, "xyz").nanmean())}


def read_log(run_dir) -> list[dict]:
    """The per-epoch records of RUN_DIR/log.jsonl."""
    path = Path(run_dir) / LOG_NAME
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


# ----------------------------------------------------------------------------- the demo pipeline

def run_quick_pipeline(out_dir, *, seed: int = 0, num_train: int | None = None, num_valid: int | None = None,
                       epochs_scale: float = 1.0, progress: bool = True) -> dict:
    """``make demo``'s training part: synthetic faces -> quick preset, all four stages ->
    evaluation on the synthetic validation faces with the mean-shape baseline.

    Trains into ``out_dir/run`` (resumed if an identical run is there, replaced if the
    settings differ: the folder belongs to the demo). Returns {"metrics", "baseline",
    "table", "run_dir", "metrics_path", "log_path", "seconds"}.
    """
    from .evaluate import evaluate_run

    t0 = time.time()
    run_dir = Path(out_dir) / "run"
    defaults = QUICK_DEMO
    cfg = TrainConfig(out=str(run_dir), preset="quick", data="synthetic", seed=seed,
                      num_train=num_train or defaults["num_train"], num_valid=num_valid or defaults["num_valid"],
                      synthetic_size=defaults["synthetic_size"], epochs_scale=epochs_scale, progress=progress)
    resume = False
    ckpt_path = run_dir / CHECKPOINT_NAME
    if ckpt_path.exists():
        try:  # same settings, schedule and preset as this code would use: continue (or reuse) it
            saved = load_checkpoint(ckpt_path)
            resume = ({**saved["config"], "progress": None, "num_workers": None} ==
                      {**_config_dict(cfg), "progress": None, "num_workers": None}
                      and saved["schedule"] == get_schedule("quick").to_dict()
                      and preset_from_dict(saved["preset"]) == get_preset("quick"))
        except (ValueError, KeyError):
            resume = False
    train(cfg, resume=resume, overwrite=not resume)
    result = evaluate_run(run_dir, "synthetic", progress=progress)
    return {**result, "run_dir": run_dir, "log_path": run_dir / LOG_NAME, "seconds": time.time() - t0}


#: The demo's data: 1,000 training faces rendered once at 96 px (the 64 px crops then
#: resample them near 1:1; 128 px renders would cost 2.5x the time), 200 validation faces.
QUICK_DEMO = {"num_train": 1000, "num_valid": 200, "synthetic_size": 96}

