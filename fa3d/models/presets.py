"""Presets: the same three networks at two sizes. Presets are data, not code forks.

- ``paper``: exactly the paper's system at 384 px: ResNet-152 detection
  (3-8-36-3, layer4 stride 1), a 256-channel 4-level hourglass, a pre-activation
  ResNet-200 Z regressor (3-24-36-3), Gaussian heatmaps with std 6 px. GPU only.
- ``quick``: the same classes made shallow and narrow with 64 px crops, sized so
  that the whole training demo runs on a 2-core laptop CPU in minutes.
- ``medium``: the quick networks on 128 px crops, for real photographs (the real-data
  recipe, docs/training.md): twice the pixels per landmark, Gaussians of the same size
  relative to the face (sigma 6 px), and a Z net that sees the crop at 32 px (``ZConfig.input_size``),
  exactly what the shipped model's Z net sees, so its weights all start a medium run
  (``--init-from pretrained``). About 45-50 ms a face and its mirror on one CPU thread (docs/training.md).

Add a field here (e.g. a training schedule) rather than branching in code.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from .detection import DetectionConfig
from .regression import RegressionConfig
from .zregressor import ZConfig


@dataclass
class Preset:
    name: str
    image_size: int          # side of the square face crop, px (divisible by 64)
    heatmap_sigma: float     # std of the Gaussian heatmaps, px at image_size
    num_landmarks: int = 66  # N: from the landmark scheme (66 for 3DFAW, 68 for iBUG); every subnet uses it
    # std (px at image_size) of the blur before the regression heatmaps are decoded (fa3d's choice, after
    # DARK; heatmaps.decode_heatmaps): half of heatmap_sigma in the paper and medium presets; 0 in quick
    # and for runs saved before the field existed.
    decode_smoothing: float = 0.0
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    regression: RegressionConfig = field(default_factory=RegressionConfig)
    z: ZConfig = field(default_factory=ZConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Preset":
        """The inverse of :meth:`to_dict`. Fields added since a checkpoint was written get their
        defaults; checkpoints of fa3d before 0.2 kept ``num_landmarks`` in each sub-config."""
        d = {k: dict(v) if isinstance(v, dict) else v for k, v in d.items()}
        for sub in ("detection", "regression", "z"):
            n = d[sub].pop("num_landmarks", None)
            d.setdefault("num_landmarks", n)
        subs = {"detection": DetectionConfig, "regression": RegressionConfig, "z": ZConfig}
        return cls(**{k: subs[k](**_tuples(v)) if k in subs else v for k, v in d.items()})


def _tuples(d: dict) -> dict:
    """JSON and checkpoints give lists where the configs hold tuples (``layers``)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


PRESETS = {
    "paper": Preset(
        name="paper", image_size=384, heatmap_sigma=6.0, decode_smoothing=3.0,
        detection=DetectionConfig(layers=(3, 8, 36, 3), block="bottleneck", width=64, zero_init_residual=True),
        regression=RegressionConfig(features=256, depth=4, num_blocks=1, detection_features=True),
        z=ZConfig(layers=(3, 24, 36, 3), block="bottleneck", width=64, zero_init_residual=True),
    ),
    "quick": Preset(
        # sigma 3 px (0.75 px of the stride-4 maps the hourglass works on): with 1.5 px the
        # regression stage learned slower than the detection maps it refines (measured)
        # no decode smoothing: the shipped model and the course's ready-made runs were measured without
        # it, and a fresh quick run must decode as they do (the blur is measured in docs/training.md)
        name="quick", image_size=64, heatmap_sigma=3.0, decode_smoothing=0.0,
        detection=DetectionConfig(layers=(1, 1, 1, 1), block="basic", width=32),
        regression=RegressionConfig(features=64, depth=3, num_blocks=1),
        z=ZConfig(layers=(1, 1, 1, 1), block="basic", width=32),
    ),
    "medium": Preset(
        name="medium", image_size=128, heatmap_sigma=6.0, decode_smoothing=3.0,
        detection=DetectionConfig(layers=(1, 1, 1, 1), block="basic", width=32),
        regression=RegressionConfig(features=64, depth=3, num_blocks=1, detection_features=True),
        # the Z net sees 32 px, as the shipped quick model's does (--z-input-size 32 at 64 px; docs/speed.md)
        z=ZConfig(layers=(1, 1, 1, 1), block="basic", width=32, input_size=32),
    ),
}


def get_preset(name: str, num_landmarks: int = 66) -> Preset:
    """A fresh copy of preset ``name`` ("paper", "quick" or "medium") for ``num_landmarks`` points (66 or 68)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    p = PRESETS[name]
    return replace(p, num_landmarks=num_landmarks, detection=replace(p.detection),
                   regression=replace(p.regression), z=replace(p.z))


def override_preset(preset: Preset, overrides: dict | None) -> Preset:
    """A copy of ``preset`` with some fields replaced, nested for the subnetworks, e.g.
    ``{"heatmap_sigma": 6.0, "z": {"inputs": "rgb"}}`` (notebook 08's ablations).

    Unknown fields are a ValueError; ``num_landmarks`` comes from the scheme and cannot be set.
    """
    changes = {}
    for key, value in (overrides or {}).items():
        if key not in {f.name for f in fields(preset)} or key in ("name", "num_landmarks"):
            raise ValueError(f"preset override {key!r}: not a field of Preset that can be changed "
                             f"(choose from image_size, heatmap_sigma, detection, regression, z)")
        if key in ("detection", "regression", "z"):
            sub = getattr(preset, key)
            names = {f.name for f in fields(sub)}
            bad = sorted(set(value) - names)
            if bad:
                raise ValueError(f"preset override {key}.{bad[0]}: not a field of {type(sub).__name__} "
                                 f"(choose from {', '.join(sorted(names))})")
            value = replace(sub, **_tuples(value))
        changes[key] = value
    return replace(preset, **changes)
