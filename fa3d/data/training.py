"""Training data: seeded augmented crops, cached source faces, evaluation crops and the mean shape.

Reproducibility: the data order and every random number of the augmentation come from
(seed, stage, epoch, index), never from global RNG state, so results do not depend on the
number of DataLoader workers or processes, and a run resumed from a checkpoint ends where an
uninterrupted run would.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..schedules import STAGES
from .transforms import Augment3D, CenterCrop3D, face_crop_matrix, warp_landmarks

STAGE_IDS = {name: i for i, name in enumerate(STAGES)}


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from integer keys, e.g. (seed, stage, epoch, index): independent streams."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def epoch_order(n: int, seed: int, stage: str, epoch: int) -> list[int]:
    """The shuffled order of the n training samples for one epoch of one stage."""
    g = torch.Generator().manual_seed(derive_seed(seed, STAGE_IDS[stage], epoch))
    return torch.randperm(n, generator=g).tolist()


class CachedDataset(Dataset):
    """The items of ``base`` kept in memory (rendered or decoded once), with only what training
    needs: ``image``, ``landmarks``, ``bbox`` (ids and poses do not collate cleanly)."""

    def __init__(self, base: Dataset, desc: str = "caching", progress: bool = True, num_workers: int = 0):
        loader = DataLoader(base, batch_size=None, num_workers=num_workers)
        self.items = [{k: item[k] for k in ("image", "landmarks", "bbox")}
                      for item in tqdm(loader, total=len(base), desc=desc, disable=not progress, leave=False)]
        self.scheme = getattr(base, "scheme", None)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]

    def landmarks(self, index: int) -> torch.Tensor:
        return self.items[index]["landmarks"]


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
    crop pixels, ``crop_matrix`` (V,2,3) image -> crop, and ``pose`` (V,3) when every item has one."""
    crop = CenterCrop3D(size)
    items = [crop(dataset[i]) for i in tqdm(range(len(dataset)), desc=desc, disable=not progress, leave=False)]
    keys = ["image", "landmarks", "crop_matrix"] + (["pose"] if items and all("pose" in it for it in items) else [])
    return {k: torch.stack([it[k] for it in items]) for k in keys}


def cheap_landmarks(dataset: Dataset) -> bool:
    """Whether ``dataset.landmarks(i)`` gives an item's landmarks without decoding its image."""
    return callable(getattr(dataset, "landmarks", None))


def mean_shape(dataset: Dataset, size: int, max_items: int = 1000) -> torch.Tensor:
    """Mean training shape (N, 3) in evaluation-crop pixels: every face cropped as
    :class:`CenterCrop3D` would, from its landmark box. The mean-shape baseline places
    it in each test crop. Uses at most ``max_items`` faces (evenly spaced)."""
    n = len(dataset)
    idx = np.linspace(0, n - 1, min(n, max_items)).round().astype(int) if n else []
    shapes = []
    for i in idx:
        lm = dataset.landmarks(int(i)) if cheap_landmarks(dataset) else dataset[int(i)]["landmarks"]
        bbox = torch.cat([lm[:, :2].amin(0), lm[:, :2].amax(0)])
        shapes.append(warp_landmarks(lm, face_crop_matrix(bbox, size)))
    return torch.stack(shapes).nanmean(0).nan_to_num(0.0)


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
