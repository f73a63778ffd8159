"""Run folders: a training run's configuration, checkpoint and log, and loading a trained run.

    RUN_DIR/checkpoint.pt   weights, optimiser, RNG state, config, preset, schedule, mean shape
    RUN_DIR/log.jsonl       one line per finished epoch (stage, epoch, lr, losses, validation GTE)
    RUN_DIR/config.json     the run's configuration, preset and schedule, for people to read
    RUN_DIR/metrics.json    written by ``fa3d evaluate``

The name ``"pretrained"`` stands for the run folder of the model that ships with fa3d
(``fa3d/weights/synthetic68``: trained on synthetic faces only, see its MODEL.md) wherever a RUN_DIR is
asked for: :func:`resolve_run`.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

import fa3d

from .checkpoint import FORMAT_VERSION, CheckpointError, load_checkpoint
from .data.schemes import SCHEMES
from .data.splits import data_terms
from .data.synthetic import DEFAULT_LEVERS
from .data.transforms import AUGMENTS
from .files import atomic_write
from .models import PRESETS, STAGE_SUBNETS, STAGES, SUBNETS, Cascade, Preset, check_stages
from .models.zregressor import load_pretrained
from .precision import PRECISIONS
from .schedules import TrainSchedule

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "log.jsonl"
CONFIG_NAME = "config.json"
#: The name that means the shipped model wherever a RUN_DIR is asked for (a folder of that
#: name in the working directory is reached as ``./pretrained/``).
PRETRAINED_NAME = "pretrained"
PRETRAINED_DIR = Path(__file__).resolve().parent / "weights" / "synthetic68"
#: Earlier shipped models, still loadable by name (``--run pretrained-v1``): their landmarks are what
#: ``fa3d predict`` gave before (the changelog is in the shipped model's MODEL.md).
PREVIOUS_PRETRAINED = {"pretrained-v1": PRETRAINED_DIR.with_name("synthetic68-v1")}


#: DataLoader workers on a GPU when ``num_workers`` is None (on the CPU: 0, the main process loads).
GPU_WORKERS = 6


def option(default=MISSING, help: str = "", **argparse_settings):
    """A TrainConfig field that is also an option of ``fa3d train`` (fa3d.cli builds them from the fields):
    its help text and any other ``add_argument`` settings (``flag``, ``choices``, ``metavar``, ``action``)."""
    return field(default=default, metadata={"help": help, **argparse_settings})


@dataclass
class TrainConfig:
    """Everything a training run depends on (stored in its checkpoint). A field with a help text is also
    an option of ``fa3d train``: ``--num-train`` for ``num_train`` unless ``flag`` says otherwise."""
    out: str = option(help="RUN_DIR: checkpoint.pt, log.jsonl, config.json")
    preset: str = option("quick", "network sizes and training schedule (default: quick)", choices=PRESETS)
    data: str = option("synthetic", "dataset SPEC (default: synthetic; see fa3d.data.readers.open_dataset), or a "
                                    "mix such as synthetic:2000+300w:DIR (real 2D faces are left out of the Z loss)")
    stages: tuple[str, ...] = option(STAGES, f"comma-separated, in order (default: {','.join(STAGES)})")
    seed: int = option(0, "seed of the data, its order and the initial weights (default: 0)")
    device: str = option("auto", "auto (cuda if available), cpu, cuda, cuda:1, ...")
    deterministic: bool = option(False, "torch.use_deterministic_algorithms (slower on GPU)")
    epochs_scale: float = option(1.0, "multiply every stage's epochs (at least 1)")
    max_steps: int | None = option(None, "at most this many optimiser steps per stage (smoke tests)")
    num_train: int = option(1000, "synthetic training faces")
    num_valid: int = option(200, "validation faces (synthetic, or held out of a folder; as many test faces "
                                 "are held out too)")
    synthetic_size: int | None = option(None, "rendered image side (default 2x crop)")
    synthetic_levers: tuple[str, ...] | None = option(   # None: DEFAULT_LEVERS
        None, f"levers of the synthetic faces, comma-separated, or none (fa3d.data.synthetic.LEVERS; default: "
              f"{','.join(DEFAULT_LEVERS)})", metavar="LIST")
    augment: str = option("paper", "training augmentation: the paper's (§2.3: crop, scale, rotation, flip, "
                                   "colour), photo: that plus random blur, sensor noise and greyscale per "
                                   "epoch, or strong: more of those, wider scale and shift, grey patches "
                                   "(default: paper)", choices=AUGMENTS)
    pretrained: bool | None = option(None, "ImageNet init of the detection backbone (default: on for paper, "
                                           "off for quick)")
    scheme: str = option("3dfaw66", "landmarks to train (default: 68 for aflw2000 and 300wlp, the .pts files' "
                                    "for folder, else 3dfaw66: fa3d.data.splits.default_scheme)", choices=SCHEMES)
    bases: str | None = option(None, "3DMM bases (u_base.txt, w_shp_base.txt, w_exp_base.txt): 300W-LP with "
                                     "depth, see fetch_bfm68.py (fa3d.data.morphable)", metavar="DIR")
    num_workers: int | None = option(None, f"DataLoader workers (default: 0 on CPU, {GPU_WORKERS} on GPU)",
                                     flag="--workers")
    cache: bool | None = None                  # keep the source images in memory; None: synthetic on CPU
    channels_last: bool | None = None          # None: on CUDA only (measured: no gain for small CPU nets)
    progress: bool = option(True, "no progress bars", flag="--no-progress", action="store_false")
    schedule: dict | None = None               # a TrainSchedule.to_dict() overriding the preset's
    init_from: str | None = option(None, "start from the subnets trained in another run (a RUN_DIR, a checkpoint, or "
                                         "pretrained: the shipped model), e.g. to add stages or fine-tune on real "
                                         "faces; each subnet whose configuration matches loads, at any crop size",
                                   metavar="RUN_DIR")
    preset_overrides: dict | None = None       # e.g. {"heatmap_sigma": 6.0, "z": {"inputs": "rgb"}}
    precision: str = option("auto", "autocast precision (default auto: bf16 on GPUs of compute capability 8.0+, "
                                    "fp16 with loss scaling below, e.g. a T4; fp32 on the CPU)", choices=PRECISIONS)
    compile: bool = option(False, "torch.compile each stage's network (off by default)")
    device_augment: bool | None = option(None, "make the training crops on the training device (warp, colour, "
                                               "degradation), the workers only fetching sources and drawing "
                                               "random numbers (default: on CUDA)")
    z_pretrained: str | None = option(None, "state dict of an ImageNet pre-activation ResNet-200 to start the Z "
                                            "net from, as the paper did (fa3d.models.zregressor.load_pretrained)",
                                      metavar="PATH")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["stages"] = list(d["stages"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """The inverse of :meth:`to_dict`; fields added since a run was saved get their defaults and its
        ``schedule`` is read as :meth:`TrainSchedule.from_dict` reads it."""
        schedule = TrainSchedule.from_dict(d["schedule"]).to_dict() if d.get("schedule") else None
        return cls(**{**d, "stages": tuple(d["stages"]), "schedule": schedule})


class RunDirError(FileExistsError):
    """RUN_DIR already holds a run and neither resume nor overwrite was asked for."""


def is_pretrained(run) -> bool:
    """Whether ``run`` names a model shipped with fa3d: ``"pretrained"`` or an earlier one (``"pretrained-v1"``)."""
    return isinstance(run, str) and (run.strip() == PRETRAINED_NAME or run.strip() in PREVIOUS_PRETRAINED)


def resolve_run(run) -> Path:
    """The run folder ``run`` names: the shipped model for ``"pretrained"``, an earlier one for its name in
    :data:`PREVIOUS_PRETRAINED`, else ``Path(run)``."""
    if is_pretrained(run):
        folder = PREVIOUS_PRETRAINED.get(run.strip(), PRETRAINED_DIR)
        if not (folder / CHECKPOINT_NAME).is_file():
            raise FileNotFoundError(f"the shipped model {run.strip()!r} is missing from this install ({folder}); "
                                    f"rebuild it with `make pretrained` or pass --run RUN_DIR")
        return folder
    return Path(run)


def checkpoint_path(run: str | Path) -> Path:
    """RUN_DIR/checkpoint.pt for a run folder; a path to a checkpoint file is returned as is."""
    run = Path(run)
    return run / CHECKPOINT_NAME if run.is_dir() else run


def write_config(run_dir: Path, cfg: TrainConfig, preset: Preset, schedule: TrainSchedule,
                 history: list[dict] | None = None) -> None:
    """RUN_DIR/config.json: the run's config, preset and schedule, and the data it learned from with
    their terms (:func:`data_history`)."""
    text = json.dumps({"config": cfg.to_dict(), "preset": preset.to_dict(), "schedule": schedule.to_dict(),
                       **({"data_history": history} if history is not None else {})}, indent=2)
    atomic_write(Path(run_dir) / CONFIG_NAME, text + "\n")


def read_log(run_dir) -> list[dict]:
    """The per-epoch records of RUN_DIR/log.jsonl."""
    path = Path(run_dir) / LOG_NAME
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def append_log(run_dir, record: dict) -> None:
    with (Path(run_dir) / LOG_NAME).open("a") as f:
        f.write(json.dumps(record) + "\n")


def trim_log(run_dir, stages, start_stage: int, start_epoch: int) -> None:
    """On resume, drop log lines of epochs that the checkpoint does not contain
    (a crash between saving the checkpoint and the log line cannot duplicate lines)."""
    path = Path(run_dir) / LOG_NAME
    if not path.exists():
        return
    position = {name: i for i, name in enumerate(stages)}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    keep = [json.dumps(r) for r in records
            if (position.get(r["stage"], len(stages)), r["epoch"]) < (start_stage, start_epoch)]
    atomic_write(path, "".join(line + "\n" for line in keep))


def load_subnet(cascade: Cascade, name: str, state: dict, path) -> None:
    """Load one subnet's weights; a layout that does not fit is a CheckpointError naming the file."""
    try:
        getattr(cascade, name).load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(path, f"its {name} weights do not fit this fa3d's {name} network "
                                    f"({str(err).splitlines()[0]} ...); a run written by an older fa3d "
                                    f"(e.g. before the Z stem's BN-ReLU) must be trained again") from None


class LoadedRun(NamedTuple):
    """A trained run, loaded: its ``cascade`` (eval mode) and its ``checkpoint`` dict, with what callers
    read from it as typed properties. Unpacks as ``cascade, checkpoint = load_run(...)``."""
    cascade: Cascade
    checkpoint: dict

    @property
    def preset(self) -> Preset:
        return Preset.from_dict(self.checkpoint["preset"])

    @property
    def config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.checkpoint["config"])

    @property
    def image_size(self) -> int:
        """The side of the face crops the cascade takes, px."""
        return int(self.checkpoint["preset"]["image_size"])

    @property
    def scheme(self) -> str:
        """The landmark scheme's name ("3dfaw66" or "68")."""
        return str(self.checkpoint["scheme"])

    @property
    def mean_shape(self) -> torch.Tensor:
        """The mean training shape (N, 3) in evaluation-crop pixels (the mean-shape baseline)."""
        return self.checkpoint["mean_shape"]

    @property
    def finished(self) -> bool:
        """Whether the run trained all its stages to the end."""
        return bool(self.checkpoint.get("finished"))


def load_run(run_dir, device="cpu") -> LoadedRun:
    """The trained cascade of RUN_DIR (eval mode, on ``device``) and its checkpoint."""
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    path = Path(run_dir) / CHECKPOINT_NAME
    ckpt = load_checkpoint(path)
    cascade = Cascade.from_preset(Preset.from_dict(ckpt["preset"]))
    for name, state in ckpt["models"].items():
        load_subnet(cascade, name, state, path)
    return LoadedRun(cascade.to(device).eval(), ckpt)


def load_init_from(cascade: Cascade, init_from: str, preset: Preset, stages) -> list[str]:
    """Start ``cascade`` from another run's weights (``TrainConfig.init_from``); returns the
    subnets loaded. A subnet whose configuration differs from that run's (an ablation, e.g.
    ``z.inputs``) keeps its fresh initialisation, which is only allowed when this run trains it."""
    path = checkpoint_path(resolve_run(init_from))
    init = load_checkpoint(path)
    theirs = Preset.from_dict(init["preset"])   # fields added to the configs since that run get their defaults
    if theirs.num_landmarks != preset.num_landmarks:
        raise ValueError(f"--init-from {init_from}: that run predicts {theirs.num_landmarks} landmarks "
                         f"({theirs.name} preset), this one {preset.num_landmarks} ({preset.name})")
    trained = {name for stage in stages for name in STAGE_SUBNETS[stage]}
    loaded = []
    for name, state in init["models"].items():
        # Convolutions do not depend on the crop's size: a quick run starts a medium one (the Z nets
        # compared by the size they see, ZConfig.input_size)
        if _same_subnet(theirs, preset, name):
            load_subnet(cascade, name, state, path)
            loaded.append(name)
        elif _adds_detection_features(theirs, preset, name):
            # the feature stem is new and starts at zero: the regression net computes what theirs did
            torch.nn.init.zeros_(cascade.regression.feature_stem.weight)
            missing, unexpected = cascade.regression.load_state_dict(state, strict=False)
            if unexpected or set(missing) != {"feature_stem.weight"}:
                raise CheckpointError(path, f"its regression weights do not fit this run's regression network "
                                            f"(missing {missing}, unexpected {unexpected})")
            loaded.append(name)
        elif name not in trained:
            raise ValueError(f"--init-from {init_from}: its {name} subnetwork is configured differently from "
                             f"this run's ({getattr(theirs, name)} vs {getattr(preset, name)}), "
                             f"and this run does not train it")
    return loaded


def adopt_untrained_subnets(preset: Preset, init_from: str, stages, overrides: dict | None = None) -> Preset:
    """The preset of a fresh run that starts from ``init_from``: each subnet the run does not train (and
    whose configuration it does not override) takes that run's configuration, so that its weights load
    as they are; e.g. the shipped model's Z net, which sees 32 px crops, in a quick run that trains only
    the 2D stages. A Z net keeps the size it sees (``ZConfig.input_size``) where this run's crop allows."""
    theirs = Preset.from_dict(load_checkpoint(checkpoint_path(resolve_run(init_from)))["preset"])
    trained = {name for stage in stages for name in STAGE_SUBNETS[stage]}
    changes = {}
    for name in SUBNETS:
        if name in trained or name in (overrides or {}) or _same_subnet(theirs, preset, name):
            continue
        config = getattr(theirs, name)
        if name == "z":
            seen = theirs.z.input_size or theirs.image_size
            if preset.image_size % seen:
                continue   # this crop cannot be box-averaged to that size: load_init_from says so
            config = dataclasses.replace(config, input_size=None if seen == preset.image_size else seen)
        changes[name] = config
    return dataclasses.replace(preset, **changes)


def _adds_detection_features(a: Preset, b: Preset, name: str) -> bool:
    """Whether subnet ``name`` of ``b`` is ``a``'s regression net with the detection features added."""
    return (name == "regression" and not a.regression.detection_features and b.regression.detection_features
            and dataclasses.replace(a.regression, detection_features=True) == b.regression)


def _same_subnet(a: Preset, b: Preset, name: str) -> bool:
    if name != "z":
        return getattr(a, name) == getattr(b, name)
    return (dataclasses.replace(a.z, input_size=a.z.input_size or a.image_size)
            == dataclasses.replace(b.z, input_size=b.z.input_size or b.image_size))


def data_history(cfg: TrainConfig) -> tuple[list[dict], list[str]]:
    """What a run learned from, through ``init_from`` too: ([{"data": SPEC, "terms": [...]}, ...] oldest
    first, the sorted photo ids its ``init_from`` run trained on). Every checkpoint and config.json
    carries the history, so a run trained on research-terms data says so, and
    :func:`fa3d.app.release.export_release` refuses it."""
    history, photos = [], []
    if cfg.init_from:
        init = load_checkpoint(checkpoint_path(resolve_run(cfg.init_from)))
        history = init.get("data_history") or [{"data": init["config"]["data"],
                                                 "terms": data_terms(init["config"]["data"])}]
        photos = list(init.get("trained_photos") or [])
    return history + [{"data": cfg.data, "terms": data_terms(cfg.data)}], photos


def made_by_this_fa3d(saved: dict) -> bool:
    """Whether a checkpoint dict was written by this fa3d version: only then may the demo and the
    course reuse it, since a new version may render different synthetic faces (0.4 did)."""
    return saved.get("format_version") == FORMAT_VERSION and saved.get("fa3d_version") == fa3d.__version__


def same_settings(a: dict, b: dict) -> bool:
    """Whether two runs' configs (``TrainConfig.to_dict()``) train the same thing: equal in all
    but the run's folder, progress bars, worker count and where its ``init_from`` run lives
    (that run's folder name must match: the same course run in another OUT_DIR). Both are read with
    :meth:`TrainConfig.from_dict`, as a run saved by an earlier fa3d is."""
    def essentials(config: dict) -> dict:
        config = TrainConfig.from_dict(config).to_dict()
        init_from = config["init_from"]
        return {**config, "out": None, "progress": None, "num_workers": None,
                "init_from": Path(init_from).name if init_from else None}
    return essentials(a) == essentials(b)


def is_reusable(ckpt_path: Path, cfg: TrainConfig, schedule: TrainSchedule, preset: Preset) -> bool:
    """Whether the run at ``ckpt_path`` was made by this fa3d with the same settings
    (:func:`same_settings`): then it can be resumed or reused instead of retrained."""
    if not ckpt_path.exists():
        return False
    try:
        saved = load_checkpoint(ckpt_path)
        return (made_by_this_fa3d(saved) and same_settings(saved["config"], cfg.to_dict())
                and TrainSchedule.from_dict(saved["schedule"]) == schedule
                and Preset.from_dict(saved["preset"]) == preset)
    except (ValueError, KeyError, TypeError):
        return False


def state_dicts(cascade: Cascade) -> dict:
    return {name: getattr(cascade, name).state_dict() for name in SUBNETS}


def resolve_train_run(cfg: TrainConfig, resume: bool, overwrite: bool) -> tuple[TrainConfig, dict | None]:
    """The configuration to train with and the checkpoint to continue from (None: a fresh run)."""
    ckpt_path = Path(cfg.out) / CHECKPOINT_NAME
    ckpt = None
    if resume:
        if not ckpt_path.exists():
            raise FileNotFoundError(f"--resume: no checkpoint to resume from at {ckpt_path}")
        ckpt = load_checkpoint(ckpt_path)
        cfg = TrainConfig.from_dict({**ckpt["config"], "out": cfg.out, "device": cfg.device,
                                     "num_workers": cfg.num_workers, "progress": cfg.progress})
    elif ckpt_path.exists() and not overwrite:
        raise RunDirError(f"{cfg.out} already holds a training run ({ckpt_path}); "
                          f"pass --resume to continue it, --overwrite to replace it, or choose another --out")
    check_stages(cfg.stages, "the run's stages")
    return cfg, ckpt


def build_cascade(cfg: TrainConfig, preset: Preset, ckpt: dict | None) -> Cascade:
    """The run's cascade: from its checkpoint, else fresh (ImageNet detection backbone when
    ``pretrained``, Z net from ``z_pretrained``) and started from ``init_from``'s subnets when given."""
    pretrained = (cfg.preset == "paper") if cfg.pretrained is None else cfg.pretrained
    torch.manual_seed(cfg.seed)
    cascade = Cascade.from_preset(preset, pretrained=pretrained and ckpt is None)
    if ckpt:
        for name, state in ckpt["models"].items():
            load_subnet(cascade, name, state, Path(cfg.out) / CHECKPOINT_NAME)
        return cascade
    if cfg.z_pretrained:
        load_pretrained(cascade.z, cfg.z_pretrained)
    if cfg.init_from:
        # e.g. train regression on top of a finished detection run (the course trains the
        # cascade one notebook, one stage at a time)
        loaded = load_init_from(cascade, cfg.init_from, preset, cfg.stages)
        fresh = [name for name in SUBNETS if name not in loaded]
        if fresh:   # allowed (this run trains them), but easy to miss: e.g. a Z net that sees another size
            print(f"--init-from {cfg.init_from}: the {' and '.join(fresh)} network is configured differently "
                  "there (the presets in the two runs' config.json), so this run trains it from a fresh "
                  "initialisation, not from that run's weights")
    return cascade


def validation_warning(record: dict) -> str:
    """A plain note for the epoch's log line when validation is not finite or absurdly large."""
    values = [record.get(k) for k in ("valid_loss", "valid_gte_xy", "valid_gte_xyz")]
    if any(v is not None and not math.isfinite(v) for v in values[:1]) or any(
            v is not None and math.isfinite(v) and v > 1000 for v in values[1:]):
        return ("  [validation not finite or > 1000 %: in eval mode batch norm uses its running statistics, "
                "which a few steps have barely updated; expected in a smoke run, a problem in a long one]")
    return ""
