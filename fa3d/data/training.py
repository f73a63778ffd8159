"""Training data: seeded crops (made on the CPU or the device), cached sources, evaluation crops, mean shape.

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

from .item import landmark_box
from .transforms import (Augment3D, AugmentDraws, CenterCrop3D, face_box, face_crop_matrix, warp_image,
                         warp_landmarks, warp_sample)


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from integer keys, e.g. (seed, stage, epoch, index): independent streams."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def epoch_order(n: int, seed: int, stage_index: int, epoch: int) -> list[int]:
    """The shuffled order of the n training samples for one epoch of one stage (its index in
    :data:`fa3d.models.STAGES`)."""
    g = torch.Generator().manual_seed(derive_seed(seed, stage_index, epoch))
    return torch.randperm(n, generator=g).tolist()


class CachedDataset(Dataset):
    """The items of ``base`` kept (rendered or decoded once, not per epoch), with only what training
    needs: ``image``, ``landmarks``, ``bbox`` (ids and poses do not collate cleanly). Images beyond
    ``max_memory_gib`` (same-size images only, e.g. synthetic faces) go to a memory-mapped file in a
    temporary folder instead of RAM, removed with the dataset: 10,000 paper-size renders are 17.7 GB."""

    def __init__(self, base: Dataset, desc: str = "caching", progress: bool = True, num_workers: int = 0,
                 max_memory_gib: float = 8.0):
        loader = DataLoader(base, batch_size=None, num_workers=num_workers)
        self.items, self.spilled = [], None
        for k, item in enumerate(tqdm(loader, total=len(base), desc=desc, disable=not progress, leave=False)):
            entry = {key: item[key] for key in ("image", "landmarks", "bbox")}
            if k == 0 and entry["image"].numel() * len(base) > max_memory_gib * 2**30:
                self.spilled = _spill_file((len(base), *entry["image"].shape))
            if self.spilled is not None and tuple(entry["image"].shape) == self.spilled.shape[1:]:
                self.spilled[k] = entry.pop("image").numpy()
            self.items.append(entry)
        self.scheme = getattr(base, "scheme", None)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        if "image" not in item:
            item = {**item, "image": torch.from_numpy(np.array(self.spilled[index]))}
        return item

    def landmarks(self, index: int) -> torch.Tensor:
        return self.items[index]["landmarks"]


def _spill_file(shape) -> np.memmap:
    """A uint8 memory-mapped array in a fresh temporary folder, deleted when the array is (by the
    process that made it, not by DataLoader workers forked from it)."""
    import os
    import tempfile
    import weakref
    folder = tempfile.mkdtemp(prefix="fa3d-cache-")
    array = np.lib.format.open_memmap(f"{folder}/images.npy", mode="w+", dtype=np.uint8, shape=shape)
    weakref.finalize(array, _remove_folder, folder, os.getpid())
    return array


def _remove_folder(folder: str, owner: int) -> None:
    import os
    import shutil
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


class TrainCrops(Dataset):
    """Augmented training crops (paper §2.3) with randomness from (seed, stage, epoch, index).

    Item: ``image`` uint8 (3, S, S), ``landmarks`` (N, 3) crop pixels, ``face_height``
    (crop pixels, :func:`face_height`), ``z_gt_heatmap`` bool (Z stage: heatmaps from the
    ground truth, else from the 2D stage's prediction; true with probability ``z_gt_heatmap_prob``).

    ``on_device=True`` (GPU runs): the workers only fetch the source image and draw the random
    numbers; the item holds ``source`` (the uncropped uint8 image) and the draws instead of
    ``image``, and :meth:`finish_batch` makes the crops on the training device (the warp, the
    colour jitter, the degradation), with the same numbers, so both paths give the same crops.
    """

    def __init__(self, base: Dataset, augment: Augment3D, seed: int, z_gt_heatmap_prob: float = 0.5,
                 on_device: bool = False):
        self.base, self.augment, self.seed, self.z_gt_heatmap_prob = base, augment, seed, z_gt_heatmap_prob
        self.on_device = on_device
        self.stage_index, self.epoch = 0, 0

    def set_epoch(self, stage_index: int, epoch: int) -> None:
        """Draw the crops of ``epoch`` of the stage at ``stage_index`` in :data:`fa3d.models.STAGES`."""
        self.stage_index, self.epoch = stage_index, epoch

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict:
        g = torch.Generator().manual_seed(derive_seed(self.seed, self.stage_index, self.epoch, index))
        source = self.base[index]
        if self.on_device:
            draws = self.augment.draw(face_box(source), g)
            item = warp_sample({k: v for k, v in source.items() if k != "image"}, draws.matrix,
                               self.augment.out_size, self.augment.scheme)
            sample = {"source": source["image"], "matrix": draws.matrix,
                      "colour": torch.tensor(draws.colour, dtype=torch.float64), "order": torch.tensor(draws.order)}
            if self.augment.degrades:   # then draws.degrade is always drawn; the noise only when applied
                sample["degrade"] = torch.tensor(draws.degrade, dtype=torch.float64)
                sample["noise"] = draws.noise if draws.noise is not None else torch.zeros(0)
        else:
            item = self.augment(source, g)
            sample = {"image": item["image"]}
        return {**sample, "landmarks": item["landmarks"], "face_height": face_height(item["bbox"]),
                "z_gt_heatmap": bool(torch.rand((), generator=g) < self.z_gt_heatmap_prob)}

    def finish_batch(self, batch: dict) -> dict:
        """The device half of ``on_device``: a batch on the training device with ``source`` and the
        draws -> the same batch with ``image`` (B, 3, S, S) uint8 crops made there."""
        batch = dict(batch)
        sources, S = batch.pop("source"), self.augment.out_size
        crops = []
        for i in range(len(batch["matrix"])):
            u = batch["degrade"][i].tolist() if "degrade" in batch else None
            noise = batch["noise"][i] if "noise" in batch and batch["noise"][i].numel() else None
            draws = AugmentDraws(batch["matrix"][i], batch["colour"][i].tolist(), batch["order"][i].tolist(), u, noise)
            crops.append(self.augment.finish(warp_image(sources[i], draws.matrix, S), draws))
        for key in ("matrix", "colour", "order", "degrade", "noise"):
            batch.pop(key, None)
        batch["image"] = torch.stack(crops)
        return batch


def face_height(bbox: torch.Tensor) -> torch.Tensor:
    """The height (float32, crop pixels) of face boxes (..., 4) x1, y1, x2, y2 warped into the crop:
    what sets the detection targets' disk radius (:func:`fa3d.heatmaps.disk_radius`), in training and
    in validation alike."""
    return (bbox[..., 3].double() - bbox[..., 1].double()).float()   # in float64, then rounded once


def collate_sources(samples: list[dict]) -> dict:
    """DataLoader collate for TrainCrops: like the default, except that uncropped ``source`` images of
    different sizes (real photos) stay a list, and empty noise images stay empty."""
    from torch.utils.data import default_collate
    rest = default_collate([{k: v for k, v in s.items() if k not in ("source", "noise")} for s in samples])
    if "source" in samples[0]:
        shapes = {tuple(s["source"].shape) for s in samples}
        rest["source"] = torch.stack([s["source"] for s in samples]) if len(shapes) == 1 else [s["source"] for s in samples]
    if "noise" in samples[0]:
        rest["noise"] = [s["noise"] for s in samples]
    return rest


def center_crops(dataset: Dataset, size: int, progress: bool = False, desc: str = "crops") -> dict:
    """Evaluation crops of a whole dataset: ``image`` uint8 (V,3,S,S), ``landmarks`` (V,N,3)
    crop pixels, ``face_height`` (V,) crop pixels, ``crop_matrix`` (V,2,3) image -> crop, and ``pose``
    (V,3) when every item has one."""
    crop = CenterCrop3D(size)
    items = [crop(dataset[i]) for i in tqdm(range(len(dataset)), desc=desc, disable=not progress, leave=False)]
    keys = ["image", "landmarks", "crop_matrix"] + (["pose"] if items and all("pose" in it for it in items) else [])
    crops = {k: torch.stack([it[k] for it in items]) for k in keys}
    if items:
        crops["face_height"] = face_height(torch.stack([it["bbox"] for it in items]))
    return crops


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
        shapes.append(warp_landmarks(lm, face_crop_matrix(landmark_box(lm), size)))
    return torch.stack(shapes).nanmean(0).nan_to_num(0.0)


def random_batch(batch_size: int, size: int, num_landmarks: int, device, seed: int = 0) -> dict:
    """A training batch of random crops and plausible landmarks, for benchmarks and memory probes:
    ``image`` uint8 (B,3,S,S), ``landmarks`` (B,N,3) crop px, ``face_height`` (B,), ``z_gt_heatmap`` (B,)."""
    g = torch.Generator().manual_seed(seed)
    landmarks = (torch.rand(batch_size, num_landmarks, 3, generator=g) * 0.6 + 0.2) * size
    landmarks[..., 2] -= landmarks[..., 2].mean(-1, keepdim=True)
    batch = {"image": torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8, generator=g),
             "landmarks": landmarks, "face_height": torch.full((batch_size,), 0.8 * size),
             "z_gt_heatmap": torch.arange(batch_size) % 2 == 0}
    return {k: v.to(device) for k, v in batch.items()}
