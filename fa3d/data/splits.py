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
* **300-W** (``300w:DIR``): split once, by photo (:func:`photo_part`): a hash of each face's
  :func:`~fa3d.data.readers.photo_id` puts about 70 % of the photos in **train**, 15 % in
  **validation** (every decision is measured there) and 15 % in **locked** (scored once, at the
  end), whatever the seed or ``num_valid``; all faces of a photo fall on one side. The official
  layout's test folders (``lfpw/testset``, ``helen/testset``, ``ibug``) are **test**, never trained on.
* **a mix** (``synthetic:2000+300w:DIR``, :func:`~fa3d.data.readers.source_specs`): each source
  split as above, its train parts trained on together and its validation parts validated together.

Whatever SPEC names the faces, ``fa3d evaluate`` never scores a face from a photo that the run
trained on (through ``init_from`` too): the checkpoint records those photos (:func:`trained_photos`).
"""
from __future__ import annotations

import bisect
import hashlib
from pathlib import Path

import torch

from .readers import PtsFolder, open_dataset, parse_spec, source_specs
from .schemes import get_scheme
from .training import cheap_landmarks

#: The validation faces of a synthetic run use this offset on the seed, so that
#: train and valid never share a face within one run.
SYNTHETIC_VALID_SEED_OFFSET = 10_000
#: The test faces of a synthetic run (never trained or tuned on) use this one.
SYNTHETIC_TEST_SEED_OFFSET = 20_000


#: The parts of 300-W's training photos (:func:`photo_part`), with the share of photos each gets.
PHOTO_PARTS = {"train": 0.70, "validation": 0.15, "locked": 0.15}
#: What ``fa3d evaluate --split`` can score: a part, the official test folders, or every face not trained on.
EVALUATION_SPLITS = ("validation", "locked", "test", "all")
#: Sources (:func:`~fa3d.data.readers.photo_id`) that are 300-W's official test folders.
TEST_SOURCES = ("lfpw-test", "helen-test", "ibug")


#: The terms each kind of data comes under; a run trained on it (or started from such a run) inherits them.
DATA_TERMS = {
    "synthetic": None,   # fa3d's own procedural faces: MIT, like fa3d
    "3dfaw": "3DFAW: non-commercial research only",
    "aflw2000": "AFLW2000-3D (AFLW): non-commercial research only",
    "300wlp": "300W-LP (300-W's photos, the BFM): non-commercial research only",
    "300w": "300-W annotations: non-commercial research only; the photos belong to their owners",
    "folder": "a folder of images and annotations: its owners' terms",
}


def data_terms(spec: str) -> list[str]:
    """The terms of every source of a SPEC (:data:`DATA_TERMS`); [] for fa3d's synthetic faces alone."""
    terms = [DATA_TERMS[parse_spec(source)[0]] for source in source_specs(spec)]
    return [t for t in terms if t]


def photo_part(photo: str) -> str:
    """"train", "validation" or "locked" for a photo id, from a hash of the id alone (the same on every
    machine, for every seed); "test" for a photo of 300-W's official test folders.

    >>> photo_part("ibug/image_003"), photo_part("afw/1051618982") in PHOTO_PARTS
    ('test', True)
    """
    if photo.split("/")[0] in TEST_SOURCES:
        return "test"
    u = int.from_bytes(hashlib.sha256(photo.encode()).digest()[:8], "big") / 2**64
    edge = 0.0
    for part, share in PHOTO_PARTS.items():
        edge += share
        if u < edge:
            return part
    return part   # u within rounding of 1: the last part


class Subset(torch.utils.data.Subset):
    """torch's Subset that keeps the base dataset's scheme, its image-free ``landmarks(i)`` and its ``photo_id(i)``."""

    def __init__(self, dataset, indices):
        super().__init__(dataset, indices)
        self.scheme = getattr(dataset, "scheme", None)
        if callable(getattr(dataset, "landmarks", None)):
            self.landmarks = lambda i: dataset.landmarks(self.indices[i])
        if callable(getattr(dataset, "photo_id", None)):
            self.photo_id = lambda i: dataset.photo_id(self.indices[i])


class MixedFaces(torch.utils.data.ConcatDataset):
    """Faces of several sources as one dataset (a mixed SPEC): each keeps its own items; z is NaN where a
    source has none (the Z loss leaves those faces out). ``landmarks(i)`` and ``photo_id(i)`` as the
    sources give them (``photo_id`` None for synthetic faces)."""

    def __init__(self, datasets):
        super().__init__(datasets)
        schemes = {get_scheme(d.scheme).name for d in datasets}
        if len(schemes) > 1:
            raise ValueError(f"the mixed sources use different landmark schemes ({sorted(schemes)}); give --scheme")
        self.scheme = get_scheme(datasets[0].scheme)

    def _locate(self, index: int):
        k = bisect.bisect_right(self.cumulative_sizes, index)
        return self.datasets[k], index - (self.cumulative_sizes[k - 1] if k else 0)

    def landmarks(self, index: int) -> torch.Tensor:
        dataset, i = self._locate(index)
        return dataset.landmarks(i) if callable(getattr(dataset, "landmarks", None)) else dataset[i]["landmarks"]

    def photo_id(self, index: int) -> str | None:
        dataset, i = self._locate(index)
        return dataset.photo_id(i) if callable(getattr(dataset, "photo_id", None)) else None


def trained_photos(dataset) -> list[str]:
    """The sorted photo ids (:func:`~fa3d.data.readers.photo_id`) of a training set's real faces."""
    if not callable(getattr(dataset, "photo_id", None)):
        return []
    return sorted({p for p in (dataset.photo_id(i) for i in range(len(dataset))) if p is not None})


def default_scheme(spec: str) -> str:
    """The landmark scheme a run on ``spec`` trains by default: 3DFAW's 66 points for 3DFAW and the
    synthetic faces (the paper's), the 68 iBUG points for AFLW2000-3D and 300W-LP (whose test
    protocol needs all 68), and whatever a folder of ``.pts`` files holds."""
    sources = source_specs(spec)
    if len(sources) > 1:   # a mix: the scheme of its first real source
        real = [s for s in sources if parse_spec(s)[0] != "synthetic"]
        return default_scheme(real[0]) if real else "3dfaw66"
    kind, arg = parse_spec(spec)
    if kind in ("aflw2000", "300wlp"):
        return "68"
    if kind in ("folder", "300w") and arg:
        return PtsFolder(arg).scheme.name
    return "3dfaw66"


def _levers(levers) -> dict:
    """SyntheticFaces' keyword for a run's ``synthetic_levers`` (None: the default levers)."""
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


def photo_split(dataset, parts) -> Subset:
    """The faces of ``dataset`` (with ``photo_id(i)``) whose photo is in one of ``parts`` (:func:`photo_part`)."""
    return Subset(dataset, [i for i in range(len(dataset)) if photo_part(dataset.photo_id(i)) in parts])


def open_splits(spec: str, *, scheme: str, seed: int, num_train: int, num_valid: int, synthetic_size: int,
                bases=None, levers=None):
    """(train dataset, valid dataset) for a dataset SPEC (see the module docstring). Synthetic:
    ``num_train`` faces (``synthetic:N`` in a mix: N) and ``num_valid`` rendered at ``synthetic_size`` px.
    ``bases``: the 3DMM bases folder that gives 300W-LP its depth (see :class:`fa3d.data.readers.W300LP`);
    ``levers``: the synthetic faces' levers (None: :data:`fa3d.data.synthetic.DEFAULT_LEVERS`)."""
    sources = source_specs(spec)
    if len(sources) > 1:
        splits = [open_splits(s, scheme=scheme, seed=seed, num_train=num_train, num_valid=num_valid,
                              synthetic_size=synthetic_size, bases=bases, levers=levers) for s in sources]
        return MixedFaces([t for t, _ in splits]), MixedFaces([v for _, v in splits])
    kind, arg = parse_spec(spec)
    if kind == "synthetic":
        return (open_dataset("synthetic", size=int(arg) if arg else num_train, image_size=synthetic_size,
                             scheme=scheme, seed=seed, **_levers(levers)),
                synthetic_valid(num_valid, synthetic_size, scheme, seed, levers))
    if kind == "3dfaw":
        return open_dataset(spec, split="train", scheme=scheme), open_dataset(spec, split="valid", scheme=scheme)
    full = _open(spec, scheme, bases)
    if kind == "300w":
        return photo_split(full, ("train",)), photo_split(full, ("validation",))
    train, valid, _ = held_out(len(full), seed, num_valid)
    return Subset(full, train), Subset(full, valid)


def _same_folder(a: str, b: str) -> bool:
    (ka, da), (kb, db) = parse_spec(a), parse_spec(b)
    return ka == kb and bool(da) and Path(da).expanduser().resolve() == Path(db).expanduser().resolve()


def test_dataset(spec: str, ckpt: dict, bases=None, split: str | None = None):
    """The faces ``fa3d evaluate --data SPEC`` scores for a run's checkpoint dict: ``synthetic[:N]``
    the run's test faces (N of them, default its ``num_valid``); ``3dfaw:DIR`` its valid split; the
    folder the run trained on, its held-out test part (an error if the folder was too small to
    hold one out); any other folder, every face. ``split`` (faces with photo ids: ``300w:``,
    ``folder:``): only the faces of one :func:`photo_part` ("validation", "locked", "test") or
    "all"; None: "all", except the held-out test part of the folder a run trained on by a seeded shuffle.
    Faces from photos the run trained on (``ckpt["trained_photos"]``) are left out in every case."""
    cfg, scheme = ckpt["config"], ckpt["scheme"]
    if len(source_specs(spec)) > 1:
        raise ValueError(f"evaluate one dataset at a time, not the mix {spec!r}")
    kind, arg = parse_spec(spec)
    if split is not None and (split not in EVALUATION_SPLITS or kind not in ("300w", "folder")):
        raise ValueError(f"--split {split}: " + (f"choose from {', '.join(EVALUATION_SPLITS)}"
                         if split not in EVALUATION_SPLITS else "only 300w: and folder: data are split by photo"))
    if kind == "synthetic":
        image_size = cfg.get("synthetic_size") or 2 * ckpt["preset"]["image_size"]
        return synthetic_test(int(arg) if arg else cfg["num_valid"], image_size, scheme, cfg["seed"],
                              cfg.get("synthetic_levers"))
    if kind == "3dfaw":
        return open_dataset(spec, split="valid", scheme=scheme)
    full = _open(spec, scheme, bases if bases is not None else cfg.get("bases"))
    keep = list(range(len(full)))
    if split is None and any(_same_folder(spec, s) and parse_spec(s)[0] != "300w" for s in source_specs(cfg["data"])):
        _, _, keep = held_out(len(full), cfg["seed"], cfg["num_valid"])
        if not keep:
            raise ValueError(f"the run trained on every face of {spec} ({len(full)} faces: too few to hold out test "
                             "faces, which needs at least 5); evaluate it on another folder")
    trained = set(ckpt.get("trained_photos") or ())
    if split not in (None, "all") or trained:
        keep = [i for i in keep if full.photo_id(i) not in trained
                and split in (None, "all", photo_part(full.photo_id(i)))]
        if not keep:
            raise ValueError(f"no face of {spec} is left to score" + (f" in its {split} part" if split else "")
                             + (f" ({len(trained)} photos the run trained on are left out)" if trained else ""))
    return full if len(keep) == len(full) else Subset(full, keep)


def require_depth(dataset, spec: str) -> None:
    """The Z stage needs z: a ValueError naming the data when no source's first face has any (2D-only data)."""
    sources = dataset.datasets if isinstance(dataset, MixedFaces) else [dataset]
    firsts = [d.landmarks(0) if cheap_landmarks(d) else d[0]["landmarks"] for d in sources if len(d)]
    if all(torch.isnan(lm[:, 2]).any() for lm in firsts):
        raise ValueError(f"{spec} has no depth (z is unknown), so the Z stage cannot train on it. For 300W-LP "
                         "give the 3DMM bases (--bases DIR, or prepare it with data_scripts/prepare_300w_lp.py "
                         "--bases DIR); or train only the 2D stages with --stages detection,regression,joint")
