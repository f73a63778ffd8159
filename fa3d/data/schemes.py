"""Landmark schemes: the 68-point iBUG/Multi-PIE markup and 3DFAW's 66 points.

Index conventions are 0-based throughout fa3d. "Right" and "left" are the
*subject's* sides, as in the iBUG annotation guide: the subject's right eye
(points 36-41) appears on the left of a frontal image.

3DFAW's 66-point scheme is the 68-point scheme without the two inner-mouth
corners (0-based 60 and 64). The outer eye corners, used to normalise every
error in the paper (GTE, CVGTCE), are 36 and 45 in both schemes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Face parts of the 68-point scheme as polylines (0-based indices), in drawing order.
_PARTS_68: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(0, 17)),
    "right_brow": tuple(range(17, 22)),
    "left_brow": tuple(range(22, 27)),
    "nose_bridge": tuple(range(27, 31)),
    "nose_lower": tuple(range(31, 36)),
    "right_eye": tuple(range(36, 42)),
    "left_eye": tuple(range(42, 48)),
    "outer_lips": tuple(range(48, 60)),
    "inner_lips": tuple(range(60, 68)),
}
_CLOSED_PARTS = frozenset({"right_eye", "left_eye", "outer_lips", "inner_lips"})
# Coarse groups used for colours and legends.
_GROUPS = {
    "jaw": ("jaw",),
    "brows": ("right_brow", "left_brow"),
    "nose": ("nose_bridge", "nose_lower"),
    "eyes": ("right_eye", "left_eye"),
    "lips": ("outer_lips", "inner_lips"),
}

# Left/right mirror pairs of the 68-point scheme; points not listed map to themselves.
_MIRROR_PAIRS_68 = (
    [(i, 16 - i) for i in range(8)]                      # jaw
    + [(17 + i, 26 - i) for i in range(5)]               # brows
    + [(31, 35), (32, 34)]                               # nostrils
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips
    + [(60, 64), (61, 63), (65, 67)]                      # inner lips
)

#: 0-based indices of the 68 points kept by 3DFAW's 66-point scheme.
INDICES_68_TO_66: tuple[int, ...] = tuple(i for i in range(68) if i not in (60, 64))

_NAMED_POINTS_68 = {
    8: "chin",
    30: "nose_tip",
    36: "right_eye_outer_corner",
    39: "right_eye_inner_corner",
    42: "left_eye_inner_corner",
    45: "left_eye_outer_corner",
    48: "right_mouth_corner",
    54: "left_mouth_corner",
    60: "right_inner_mouth_corner",
    64: "left_inner_mouth_corner",
}


def _flip_permutation_68() -> tuple[int, ...]:
    perm = list(range(68))
    for a, b in _MIRROR_PAIRS_68:
        perm[a], perm[b] = b, a
    return tuple(perm)


def _names_68() -> tuple[str, ...]:
    names = []
    for i in range(68):
        if i in _NAMED_POINTS_68:
            names.append(_NAMED_POINTS_68[i])
            continue
        part = next(p for p, idx in _PARTS_68.items() if i in idx)
        names.append(f"{part}_{_PARTS_68[part].index(i)}")
    return tuple(names)


@dataclass(frozen=True)
class LandmarkScheme:
    """A landmark markup: how many points, their names, parts and mirror symmetry.

    Attributes:
        name: "68" or "3dfaw66".
        num_points: N.
        names: N human-readable point names (for hover text and tables).
        flip_permutation: after mirroring an image horizontally, the point that
            was at index ``flip_permutation[i]`` becomes point ``i``.
        outer_eye_corners: the two indices whose 3D distance normalises errors.
        parts: part name -> polyline of point indices (drawing order).
        closed_parts: the parts whose polyline closes on itself (eyes, lips).
        groups: coarse group (jaw, brows, nose, eyes, lips) -> part names.
    """

    name: str
    num_points: int
    names: tuple[str, ...]
    flip_permutation: tuple[int, ...]
    outer_eye_corners: tuple[int, int]
    parts: dict[str, tuple[int, ...]] = field(hash=False)
    closed_parts: frozenset[str] = _CLOSED_PARTS
    groups: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(_GROUPS), hash=False)

    def part_of(self, index: int) -> str:
        """Name of the part that point ``index`` belongs to."""
        return next(p for p, idx in self.parts.items() if index in idx)

    def group_of(self, index: int) -> str:
        part = self.part_of(index)
        return next(g for g, parts in self.groups.items() if part in parts)

    def group_points(self) -> dict[str, list[int]]:
        """Coarse group -> the sorted indices of its points, e.g. {"jaw": [0, ..., 16], ...}."""
        return {g: sorted({i for part in parts for i in self.parts[part]}) for g, parts in self.groups.items()}

    def polylines(self) -> list[tuple[str, tuple[int, ...]]]:
        """(part, indices) for drawing; closed parts repeat their first index at the end."""
        lines = []
        for part, idx in self.parts.items():
            lines.append((part, idx + (idx[0],) if part in self.closed_parts else idx))
        return lines


def _make_68() -> LandmarkScheme:
    return LandmarkScheme(
        name="68",
        num_points=68,
        names=_names_68(),
        flip_permutation=_flip_permutation_68(),
        outer_eye_corners=(36, 45),
        parts=dict(_PARTS_68),
    )


def _make_66() -> LandmarkScheme:
    old_to_new = {old: new for new, old in enumerate(INDICES_68_TO_66)}
    perm68 = _flip_permutation_68()
    names68 = _names_68()
    return LandmarkScheme(
        name="3dfaw66",
        num_points=66,
        names=tuple(names68[i] for i in INDICES_68_TO_66),
        flip_permutation=tuple(old_to_new[perm68[i]] for i in INDICES_68_TO_66),
        outer_eye_corners=(36, 45),
        parts={p: tuple(old_to_new[i] for i in idx if i in old_to_new) for p, idx in _PARTS_68.items()},
    )


SCHEMES: dict[str, LandmarkScheme] = {"68": _make_68(), "3dfaw66": _make_66()}


def get_scheme(scheme: str | LandmarkScheme) -> LandmarkScheme:
    """Look a scheme up by name ("68" or "3dfaw66"); a LandmarkScheme passes through."""
    if isinstance(scheme, LandmarkScheme):
        return scheme
    if scheme not in SCHEMES:
        raise ValueError(f"unknown landmark scheme {scheme!r}; choose one of {sorted(SCHEMES)}")
    return SCHEMES[scheme]


def scheme_for_points(num_points: int) -> LandmarkScheme:
    """The scheme with ``num_points`` points (68 or 66); a ValueError for any other count."""
    for scheme in SCHEMES.values():
        if scheme.num_points == num_points:
            return scheme
    raise ValueError(f"no landmark scheme has {num_points} points; pass the scheme explicitly")


def convert_68_to_66(landmarks):
    """Drop the two inner-mouth corners: (..., 68, D) -> (..., 66, D). numpy or torch."""
    if landmarks.shape[-2] != 68:
        raise ValueError(f"expected 68 landmarks on axis -2, got shape {tuple(landmarks.shape)}")
    return landmarks[..., list(INDICES_68_TO_66), :]


def flip_landmarks(landmarks, width: float, scheme: str | LandmarkScheme):
    """Mirror landmarks of an image ``width`` pixels wide left-right.

    x -> width - 1 - x (pixel centres at integer coordinates), y and z unchanged,
    and points re-indexed with the scheme's flip permutation so that point 36
    is still the subject's right outer eye corner. numpy or torch, (..., N, D).
    """
    perm = list(get_scheme(scheme).flip_permutation)
    flipped = landmarks[..., perm, :]
    flipped = flipped.copy() if isinstance(flipped, np.ndarray) else flipped.clone()
    flipped[..., 0] = (width - 1) - flipped[..., 0]
    return flipped
