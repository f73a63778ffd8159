"""Which faces train, validate and test: synthetic seeds, 3DFAW's folders, a seeded hold-out."""
from __future__ import annotations

import torch

from .readers import open_dataset, parse_spec

#: The validation faces of a synthetic run use this offset on the seed, so that
#: train and valid never share a face within one run.
SYNTHETIC_VALID_SEED_OFFSET = 10_000


class Subset(torch.utils.data.Subset):
    """torch's Subset that keeps the base dataset's scheme and its image-free ``landmarks(i)``."""

    def __init__(self, dataset, indices):
        super().__init__(dataset, indices)
        self.scheme = getattr(dataset, "scheme", None)
        if callable(getattr(dataset, "landmarks", None)):
            self.landmarks = lambda i: dataset.landmarks(self.indices[i])


def synthetic_valid(size: int, image_size: int, scheme: str, seed: int):
    """The validation faces of the synthetic run with ``seed`` (never its training faces)."""
    return open_dataset("synthetic", size=size, image_size=image_size, scheme=scheme,
                        seed=seed + SYNTHETIC_VALID_SEED_OFFSET)


def open_splits(spec: str, *, scheme: str, seed: int, num_train: int, num_valid: int, synthetic_size: int):
    """(train dataset, valid dataset) for a dataset SPEC. Synthetic: ``num_train`` and
    ``num_valid`` faces of two disjoint seeds (valid uses seed + SYNTHETIC_VALID_SEED_OFFSET),
    rendered at ``synthetic_size`` px. 3DFAW: its train/valid folders. A single folder
    (aflw2000, 300wlp, folder): ``num_valid`` faces (at most a fifth) held out by a seeded shuffle."""
    kind, _ = parse_spec(spec)
    if kind == "synthetic":
        return (open_dataset("synthetic", size=num_train, image_size=synthetic_size, scheme=scheme, seed=seed),
                synthetic_valid(num_valid, synthetic_size, scheme, seed))
    if kind == "3dfaw":
        return open_dataset(spec, split="train", scheme=scheme), open_dataset(spec, split="valid", scheme=scheme)
    full = open_dataset(spec, scheme=scheme)
    n_valid = min(num_valid, len(full) // 5)
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(full, sorted(order[n_valid:])), Subset(full, sorted(order[:n_valid]))


def test_dataset(spec: str, ckpt: dict):
    """The dataset ``fa3d evaluate --data SPEC`` scores for a run's checkpoint dict: for
    ``synthetic[:N]`` the run's own validation faces (never seen in training), for
    ``3dfaw:DIR`` its valid split, otherwise every face of the folder."""
    cfg, scheme = ckpt["config"], ckpt["scheme"]
    kind, arg = parse_spec(spec)
    if kind == "synthetic":
        image_size = cfg.get("synthetic_size") or 2 * ckpt["preset"]["image_size"]
        return synthetic_valid(int(arg) if arg else cfg["num_valid"], image_size, scheme, cfg["seed"])
    if kind == "3dfaw":
        return open_dataset(spec, split="valid", scheme=scheme)
    return open_dataset(spec, scheme=scheme)
