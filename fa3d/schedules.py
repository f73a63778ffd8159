"""Training schedules (paper §2.3) as data, one per preset, and the optimiser and step plan they make.

The cascade is trained in four stages, each with its own epochs, batch size and
a learning rate that decays from ``lr_start`` to ``lr_end``:

    detection   the detection subnet alone (sigmoid cross-entropy on disk maps)
    regression  the hourglass, detection frozen (L2 on Gaussian heatmaps)
    joint       both 2D subnets together (sum of the two losses)
    z           the Z regressor on RGB + Gaussian heatmaps (L2 on z, eq. 1)

The paper says the rate went "progressively" from one end point to the other. We
decay it geometrically *per step*: lr_t = lr_start · (lr_end / lr_start)^(t / (T - 1))
for steps t = 0..T-1, a straight line on a log scale that hits both end points
exactly (``torch.optim.lr_scheduler.ExponentialLR`` stepped after every batch).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from .models import STAGES, check_stages


@dataclass
class StageSchedule:
    epochs: int
    lr_start: float
    lr_end: float
    batch_size: int       # global batch: split over the processes of a multi-GPU run


@dataclass
class TrainSchedule:
    detection: StageSchedule
    regression: StageSchedule
    joint: StageSchedule
    z: StageSchedule
    # The paper does not name its optimiser. The authors' Torch7 code of that time
    # (Bulat & Tzimiropoulos 2016, and the hourglass code it builds on) used
    # optim.rmsprop, so the paper preset uses RMSprop (alpha 0.99, eps 1e-8, Torch7's defaults).
    optimizer: str = "rmsprop"            # "rmsprop" or "adam"
    # Z stage input: each sample's heatmaps are rendered at the ground-truth x, y with this
    # probability, else at the x, y predicted by the trained 2D stage (paper: "both").
    z_gt_heatmap_prob: float = 0.5

    def stage(self, name: str) -> StageSchedule:
        return getattr(self, check_stages([name], "the schedule")[0])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainSchedule":
        d = dict(d)
        if d.pop("weight_decay", 0.0):   # schedules of fa3d 0.4 hold it, always 0.0 (no preset used it)
            raise ValueError("the schedule's weight_decay is no longer supported: no preset used it")
        for name in STAGES:
            d[name] = StageSchedule(**d[name])
        return cls(**d)


def paper_schedule() -> TrainSchedule:
    """§2.3: 30/30/30/~100 epochs, batches 8 (2D) and 16 (Z), the paper's end points.
    Joint fine-tuning: the paper gives no rate; we reuse the regression stage's 1e-4 -> 2.5e-5.
    Z's 1e-2 is for the paper's ImageNet ResNet-200. From scratch (128 px, benchmarks/paper_cpu_training.py,
    docs/speed.md) it blew up in the first 20 steps, even with the preset's identity-initialised units; at
    1e-3 -> 2.5e-5 (the same decay shape) it trained from the first step. Without ImageNet Z weights, start
    the Z stage there: ``s = paper_schedule(); s.z.lr_start, s.z.lr_end = 1e-3, 2.5e-5``."""
    return TrainSchedule(
        detection=StageSchedule(epochs=30, lr_start=1e-3, lr_end=2.5e-5, batch_size=8),
        regression=StageSchedule(epochs=30, lr_start=1e-4, lr_end=2.5e-5, batch_size=8),
        joint=StageSchedule(epochs=30, lr_start=1e-4, lr_end=2.5e-5, batch_size=8),
        z=StageSchedule(epochs=100, lr_start=1e-2, lr_end=2.5e-4, batch_size=16),
        optimizer="rmsprop",
    )


def quick_schedule() -> TrainSchedule:
    """A few epochs on a 2-core CPU (``make demo``). The quick preset uses Adam (our choice for so few
    steps; notebook 07's exercise 2 compares RMSprop), with rates tuned on synthetic faces (higher
    starting rates than the paper's: the small nets take 500-750 steps per stage, not ~50,000).
    Measured on 1,000 synthetic faces (make demo, seed 0): GTE xy 8.4 %, xyz 11.7 %."""
    return TrainSchedule(
        detection=StageSchedule(epochs=8, lr_start=6e-3, lr_end=3e-4, batch_size=16),
        regression=StageSchedule(epochs=12, lr_start=3e-3, lr_end=2e-4, batch_size=16),
        joint=StageSchedule(epochs=6, lr_start=1e-3, lr_end=1e-4, batch_size=16),
        z=StageSchedule(epochs=12, lr_start=5e-3, lr_end=1e-4, batch_size=16),
        optimizer="adam",
    )


#: The medium preset (128 px, the quick networks) keeps the quick schedule: the real-data recipe starts it
#: from the shipped quick model's weights (docs/training.md).
SCHEDULES = {"paper": paper_schedule, "quick": quick_schedule, "medium": quick_schedule}


def get_schedule(preset_name: str) -> TrainSchedule:
    """A fresh :class:`TrainSchedule` for a preset name ("paper" or "quick")."""
    if preset_name not in SCHEDULES:
        raise ValueError(f"no training schedule for preset {preset_name!r}; known: {sorted(SCHEDULES)}")
    return SCHEDULES[preset_name]()


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    """The schedule's optimiser: "rmsprop" (Torch7's optim.rmsprop defaults: alpha 0.99,
    epsilon 1e-8) or "adam"."""
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.99, eps=1e-8)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; use 'rmsprop' or 'adam'")


def make_lr_scheduler(optimizer: torch.optim.Optimizer, stage: StageSchedule, total_steps: int):
    """Geometric decay per step from ``lr_start`` (step 0) to ``lr_end`` (step total_steps - 1)."""
    gamma = (stage.lr_end / stage.lr_start) ** (1 / (total_steps - 1)) if total_steps > 1 else 1.0
    return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma)


@dataclass
class StagePlan:
    """How one stage runs: ``epochs``, ``steps_per_epoch``, ``total_steps`` (all epochs, capped
    by max_steps) and ``batch_per_process`` (the global batch split over the processes)."""
    epochs: int
    steps_per_epoch: int
    total_steps: int
    batch_per_process: int


def stage_plan(stage: StageSchedule, num_train: int, world: int = 1, epochs_scale: float = 1.0,
               max_steps: int | None = None) -> StagePlan:
    """The step plan of one stage for ``num_train`` training faces on ``world`` processes."""
    per_rank = max(1, min(stage.batch_size, num_train) // world)  # a set smaller than a batch: one batch of it
    steps_per_epoch = max(1, num_train // (per_rank * world))
    epochs = max(1, round(stage.epochs * epochs_scale))
    total = epochs * steps_per_epoch
    if max_steps is not None:
        total = min(total, max_steps)
        epochs = math.ceil(total / steps_per_epoch)
    return StagePlan(epochs, steps_per_epoch, total, per_rank)
