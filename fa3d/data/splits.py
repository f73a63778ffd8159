"""Which faces train, validate and test: synthetic seeds, 3DFAW's folders, a seeded three-way hold-out.

Honest splits (no face is both tuned on and scored):

* **synthetic**: training faces from ``seed``, validation faces (per-epoch curves, the quick
  schedule was tuned on them) from ``seed + SYNTHETIC_VALID_SEED_OFFSET``, and **test** faces
  (``fa3d evaluate``, notebooks 05 and 08) from ``seed + SYNTHETIC_TEST_SEED_OFFSET``, used for
  nothing else.
* **3dfaw**: its ``train`` and ``valid`` folders (the paper's protocol: its Table 3 is on valid).
* **one folder** (aflw2000, 300wlp, folder): a seeded shuffle holds out ``num_valid`` faces for
  validation and as many again for test (each at most a fifth of the folder). ``fa3d evaluate``
  on the folder a run trained on scores only that test part; on any other folder, every face.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .readers import PtsFolder, open_dataset, parse_spec
from .training import cheap_landmarks

#: The validation faces of a synthetic run use this offset on the seed, so that
#: train and valid never share a face within one run.
SYNTHETIC_VALID_SEED_OFFSET = 10_000
#: The test faces of a synthetic run (never trained or tuned on) use this one.
SYNTHETIC_TEST_SEED_OFFSET = 20_000


class Subset(torch.utils.data.Subset):
    """torch's Subset that keeps the base dataset's scheme and its image-free ``landmarks(i)``."""

    def __init__(self, dataset, indices):
        super().__init__(dataset, indices)
        self.scheme = getattr(dataset, "scheme", None)
        if callable(getattr(dataset, "landmarks", None)):
            self.landmarks = lambda i: dataset.landmarks(self.indices[i])


def default_scheme(spec: str) -> str:
    """The landmark scheme a run on ``spec`` trains by default: 3DFAW's 66 points for 3DFAW and the
    synthetic faces (the paper's), the 68 iBUG points for AFLW2000-3D and 300W-LP (whose test
    protocol needs all 68), and whatever a folder of ``.pts`` files holds."""
    kind, arg = parse_spec(spec)
    if kind in ("aflw2000", "300wlp"):
        return "68"
    if kind == "folder" and arg:
        return PtsFolder(arg).scheme.name
    return "3dfaw66"


def _levers(levers) -> dict:
    """SyntheticFaces' keyword for a run's ``synthetic_levers`` (None: the default, every lever)."""
    return {} if levers is None else {"levers": tuple(levers)}


def synthetic_valid(size: int, image_size: int, scheme: str, seed: int, levers=None):
    """The validation faces of the synthetic run with ``seed`` (never its training faces)."""
    return open_dataset("synthetic", size=size, image_size=image_size, scheme=scheme,
                        seed=seed + SYNTHETIC_VALID_SEED_OFFSET, **_levers(levers))


def synthetic_test(size: int, image_size: int, scheme: str, seed: int, levers=None):
    """The test faces of the synthetic run with ``seed``: neither trained nor tuned on."""
    return open_dataset("synthetic", size=size, image_size=image_size, scheme=scheme,
                        seed=seed + SYNTHETIC_TEST_SEED_OFFSET, **_levers(levers))


def _open(spec: str, scheme: str, bases):
    kw = {"bases": bases} if bases is not None and parse_spec(spec)[0] == "300wlp" else {}
    return open_dataset(spec, scheme=scheme, **kw)


def held_out(n: int, seed: int, num_valid: int) -> tuple[list[int], list[int], list[int]]:
    """(train, valid, test) indices of a folder of ``n`` faces: a seeded shuffle; valid and test
    get ``num_valid`` faces each, at most a fifth of the folder each (none below 5 faces)."""
    k = min(num_valid, n // 5)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[2 * k:]), sorted(order[:k]), sorted(order[k:2 * k])


def open_splits(spec: str, *, scheme: str, seed: int, num_train: int, num_valid: int, synthetic_size: int,
                bases=None, levers=None):
    """(train dataset, valid dataset) for a dataset SPEC (see the module docstring). Synthetic:
    ``num_train`` and ``num_valid`` faces rendered at ``synthetic_size`` px. ``bases``: the 3DMM
    bases folder that gives 300W-LP its depth (see :class:`fa3d.data.readers.W300LP`); ``levers``:
    the synthetic faces' scene and camera levers (None: all, see :data:`fa3d.data.synthetic.LEVERS`)."""
    kind, _ = parse_spec(spec)
    if kind == "synthetic":
        return (open_dataset("synthetic", size=num_train, image_size=synthetic_size, scheme=scheme, seed=seed,
                             **_levers(levers)),
                synthetic_valid(num_valid, synthetic_size, scheme, seed, levers))
    if kind == "3dfaw":
        return open_dataset(spec, split="train", scheme=scheme), open_dataset(spec, split="valid", scheme=scheme)
    full = _open(spec, scheme, bases)
    train, valid, _ = held_out(len(full), seed, num_valid)
    return Subset(full, train), Subset(full, valid)


def _same_folder(a: str, b: str) -> bool:
    (ka, da), (kb, db) = parse_spec(a), parse_spec(b)
    return ka == kb and bool(da) and Path(da).expanduser().resolve() == Path(db).expanduser().resolve()


def test_dataset(spec: str, ckpt: dict, bases=None):
    """The faces ``fa3d evaluate --data SPEC`` scores for a run's checkpoint dict: ``synthetic[:N]``
    the run's test faces (N of them, default its ``num_valid``); ``3dfaw:DIR`` its valid split; the
    folder the run trained on, its held-out test part (an error if the folder was too small to
    hold one out); any other folder, every face."""
    cfg, scheme = ckpt["config"], ckpt["scheme"]
    kind, arg = parse_spec(spec)
    if kind == "synthetic":
        image_size = cfg.get("synthetic_size") or 2 * ckpt["preset"]["image_size"]
        return synthetic_test(int(arg) if arg else cfg["num_valid"], image_size, scheme, cfg["seed"],
                              cfg.get("synthetic_levers"))
    if kind == "3dfaw":
        return open_dataset(spec, split="valid", scheme=scheme)
    full = _open(spec, scheme, bases if bases is not None else cfg.get("bases"))
    if not _same_folder(spec, cfg["data"]):
        return full
    _, _, test = held_out(len(full), cfg["seed"], cfg["num_valid"])
    if not test:
        raise ValueError(f"the run trained on every face of {spec} ({len(full)} faces: too few to hold out test "
                         "faces, which needs at least 5); evaluate it on another folder")
    return Subset(full, test)


def require_depth(dataset, spec: str) -> None:
    """The Z stage needs z: a ValueError naming the data when its first face has none (2D-only data)."""
    lm = dataset.landmarks(0) if cheap_landmarks(dataset) else dataset[0]["landmarks"]
    if torch.isnan(lm[:, 2]).any():
        raise ValueError(f"{spec} has no depth (z is unknown), so the Z stage cannot train on it. For 300W-LP "
                         "give the 3DMM bases (--bases DIR, or prepare it with data_scripts/prepare_300w_lp.py "
                         "--bases DIR); or train only the 2D stages with --stages detection,regression,joint")
