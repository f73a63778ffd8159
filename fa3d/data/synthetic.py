"""Procedural 3D faces: the built-in dataset that every fa3d notebook runs on.

Each item is a parametric head rendered with a z-buffer, with exact 3D landmarks:

1. **Surface.** A head is an ellipsoid in spherical parameters (u, v): u is the
   longitude (0 = facing the camera, u > 0 toward the subject's left, which a
   frontal image shows on the right), v the latitude (v > 0 up). Its radius is
   multiplied by ``1 + d(u, v)`` where ``d`` is a sum of axis-aligned Gaussian
   bumps and dents (nose, brows, eye sockets, cheeks, lips, chin, ears). Being
   separable, the bumps cost one small matrix product on the (v, u) grid.
2. **Landmarks** are fixed (u, v) points of the same surface (the 68 iBUG
   points; the jaw contour lies on the lower head and stays labelled when it is
   hidden, as in 3DFAW). Shape/expression parameters move them and the texture
   together, so the eye-corner landmark is always where the drawn eye ends.
   The 68-point scheme follows 300-W's convention for the cheek part of the jaw
   instead: those contour points slide along the surface to the face's outline in
   the image (:func:`_march_jaw`, the "landmark marching" of 300W-LP and AFLW2000-3D).
3. **Camera.** Head frame: x right, y down, z toward the camera. The head is
   rotated by yaw (about y: yaw > 0 turns the nose toward image right), then
   pitch (about x: pitch > 0 lifts the nose), then roll (about the view axis:
   roll > 0 turns the face clockwise in the image; :mod:`fa3d.data.pose`, the one
   convention of every dataset), scaled to pixels and
   projected orthographically. z is in the same pixel units (larger = closer).
4. **Render.** Every grid point is splatted into a 2x2 pixel footprint with
   ``scatter_reduce("amax")`` over int64 keys (quantised depth in the high
   bits, point index in the low bits), which gives both the z-buffer and the
   surface point each pixel sees; rare 1-pixel gaps are filled from their
   neighbours. Only the seen points are shaded: textured albedo (skin, eyes,
   brows, lips, hair, ears) times Lambertian + ambient light from a random
   direction, over a procedural cluttered background. The grid density is
   chosen per face from its scale (cached levels), about 1.35 px between points.
5. **Visibility.** A landmark is visible iff it is inside the image, its surface
   faces the camera, and its depth is within a small tolerance (growing with the
   surface slope) of the z-buffer at its pixel.
6. **Scene and camera** (:mod:`fa3d.data.scene`, the ``LEVERS``): a neck and shoulders
   and glasses share the z-buffer; occluders, muted backgrounds and the camera's blur,
   colour cast, gamma, greyscale and JPEG make the render read as a photograph.

Everything random is drawn from ``numpy.random.Generator(PCG64([seed, index]))``,
so an item depends only on (seed, index), never on global RNG state, access
order or DataLoader workers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import scene
from .item import FaceItem, face_item
from .pose import rotation_matrix
from .schemes import INDICES_68_TO_66, convert_68_to_66, get_scheme

# Ellipsoid half-axes of the mean head, in head units (the head is ~2 units tall).
_HEAD_A, _HEAD_B_UP, _HEAD_B_LOW, _HEAD_C = 0.7, 1.0, 1.0, 0.88
_SPLAT_SPACING_PX = 1.35  # max grid spacing on screen: below sqrt(2), a 2x2 footprint leaves no holes
_DEPTH_STEPS = 64         # z-buffer depth quantisation: 1/64 pixel
_JAW_SQUARENESS = 0.45    # < 1 moves the jaw contour's lower points outward: a square jaw, not an egg
_INDEX_BITS = 24          # low bits of a z-buffer key hold the point index (< 16.7 M points)
# Jaw points that follow the outline (68 scheme): the cheek's, down to about the mouth corners. Below, the
# head's ellipsoid goes on past the jawline into an under-jaw that real heads do not have (the neck is set
# back), so its outline there is not a face's; 4-12, the lower jaw and chin, keep the 3D contour.
OUTLINE_JAW_POINTS = (0, 1, 2, 3, 13, 14, 15, 16)
_MARCH_MAX_U = 1.45       # |u| where marching stops: in front of the ear, whose bump starts at about 1.47


# --------------------------------------------------------------------------- parameters

@dataclass(frozen=True)
class SyntheticFaceParams:
    """Everything that defines one synthetic face. Angles in degrees, (u, v) offsets in radians.

    Pose and framing:
        yaw, pitch, roll: head pose (see the module docstring for the signs).
        face_frac: height of the frontal landmark box as a fraction of the image height.
        shift_x, shift_y: in [-1, 1], where the landmark box sits within the slack the
            frame leaves (0 = centred, +-1 = touching the right/left, bottom/top edge).
    Shape (1.0 = average unless noted):
        head_width, head_height, head_depth: ellipsoid scale factors.
        jaw_width: width of the lower face; jaw_length: stretch of the lower face.
        chin: chin protrusion; cheeks: cheek fullness.
        nose_length, nose_width, nose_height: nose size (height = how far it sticks out).
        eye_size, eye_spacing: eye width/height and distance between the eyes.
        mouth_width, lip_thickness.
    Expression:
        mouth_open: lip gap in radians of latitude (0 = closed, ~0.12 = wide open).
        smile: -1..1, raises (or lowers) the mouth corners.
        brow_raise: -1..1; eye_open: 0.4..1.2 lid opening; gaze_x, gaze_y: iris offset, -1..1.
    Appearance (RGB in [0, 1]):
        skin, lips, iris, hair_color, brow_color; hair: 0 = bald, else the hairline height.
        light_dir: unit vector in camera coordinates pointing toward the light.
        ambient, diffuse, specular: light intensities. noise: pixel noise std (0..255 scale).
        texture_seed, background_seed: seeds of the skin texture offsets and the background.
    """

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    face_frac: float = 0.55
    shift_x: float = 0.0
    shift_y: float = 0.0
    head_width: float = 1.0
    head_height: float = 1.0
    head_depth: float = 1.0
    jaw_width: float = 1.0
    jaw_length: float = 1.0
    chin: float = 1.0
    cheeks: float = 1.0
    nose_length: float = 1.0
    nose_width: float = 1.0
    nose_height: float = 1.0
    eye_size: float = 1.0
    eye_spacing: float = 1.0
    mouth_width: float = 1.0
    lip_thickness: float = 1.0
    mouth_open: float = 0.0
    smile: float = 0.0
    brow_raise: float = 0.0
    eye_open: float = 1.0
    gaze_x: float = 0.0
    gaze_y: float = 0.0
    skin: tuple[float, float, float] = (0.85, 0.66, 0.55)
    lips: tuple[float, float, float] = (0.70, 0.35, 0.35)
    iris: tuple[float, float, float] = (0.30, 0.20, 0.10)
    hair_color: tuple[float, float, float] = (0.15, 0.10, 0.07)
    brow_color: tuple[float, float, float] = (0.15, 0.10, 0.07)
    hair: float = 0.62
    light_dir: tuple[float, float, float] = (0.3, -0.4, 0.866)
    ambient: float = 0.45
    diffuse: float = 0.65
    specular: float = 0.1
    noise: float = 2.0
    texture_seed: int = 0
    background_seed: int = 0
    # Scene and camera (fa3d.data.scene):
    body: bool = True                      # neck and shoulders
    neck_width: float = 1.0
    shoulder_width: float = 1.0
    body_turn: float = 0.5                 # fraction of the head's yaw and roll the torso follows
    cloth_color: tuple[float, float, float] = (0.25, 0.3, 0.4)
    cloth_pattern: float = 0.0             # stripe contrast, 0 = plain
    even_jaw: bool = False                 # 68 points: the jaw's points evenly spread along its outline
    front_flatness: float = 0.0            # "narrow_face": > 0 flattens the face's front and narrows its sides
    # Feature contrast (the "features" lever) and hair styles ("hair_styles"); the defaults are the plain head's.
    brow_thickness: float = 1.0
    brow_strength: float = 0.9             # opacity of the brows' paint
    lash_strength: float = 0.85            # opacity of the upper lash line
    lower_lash: float = 0.0                # opacity of the lower one
    eye_shade: float = 0.18                # how much darker the skin around the eyes is
    hair_sides: float = 0.3                # hairline latitude above the ears (radians); low = long hair
    glasses: bool = False
    glasses_size: float = 1.0
    glasses_frame: float = 0.5             # 0 thin wire .. 1 thick frame
    glasses_color: tuple[float, float, float] = (0.05, 0.05, 0.05)
    occluder: int = 0                      # 0 none, 1 a hand-like blob, 2 an object
    occluder_color: tuple[float, float, float] = (0.8, 0.6, 0.5)
    bg_saturation: float = 1.0             # background: 1 = the raw clutter, 0 = grey
    bg_tone: tuple[float, float, float] = (0.5, 0.5, 0.5)
    bg_tone_mix: float = 0.0
    bg_blur: float = 0.0                   # px, depth of field
    blur: float = 0.0                      # px, the whole image (focus, motion)
    color_cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gamma: float = 1.0
    grayscale: bool = False
    jpeg_quality: int = 0                  # 0 = no JPEG


#: The levers that :func:`sample_face_params` can turn on (``SyntheticFaces(levers=...)``; each is measured
#: on real faces by ``benchmarks/renderer_bench.py``). Scene and camera: muted backgrounds, neck and
#: shoulders, glasses, occluders, camera effects. Labels and poses: ``even_jaw`` spreads the 68 scheme's
#: jaw points evenly along the outline (:func:`_even_jaw`); ``photo_poses`` draws half the heads at the
#: near-frontal poses most photographs show. Appearance: ``features`` draws bolder brows, lashes, eye
#: sockets and lips; ``hair_styles`` adds fringes and long hair down the sides. Shape: ``narrow_face``
#: narrows the head's sides, the features where they were (:func:`_cross_section`). A lever that is off keeps
#: its parameters' defaults and draws no random number, so the faces of the other levers stay the same.
LEVERS = ("background", "body", "glasses", "occluders", "camera", "even_jaw", "photo_poses", "features", "hair_styles",
          "narrow_face")
#: The levers of a run that names none (``synthetic_levers`` None): every run before the real-face bench.
DEFAULT_LEVERS = ("background", "body", "glasses", "occluders", "camera")


def _skin_tone(u) -> np.ndarray:
    tone = u(0.0, 1.0)  # 0 = very dark, 1 = very light skin
    skin = np.array([0.36, 0.22, 0.15]) + tone * np.array([0.60, 0.58, 0.55])
    return np.clip(skin * u(0.92, 1.08, 3), 0.05, 1.0)


def _scene_params(rng: np.random.Generator, head: dict, levers) -> dict:
    """The levers' part of a face's parameters (see LEVERS), drawn after the ``head``'s, which some replace."""
    u, out, skin = rng.uniform, {}, np.asarray(head["skin"])
    if "background" in levers:
        out.update(bg_saturation=float(u(0.15, 0.8)), bg_tone=tuple(map(float, u(0.1, 0.9) * u(0.7, 1.1, 3))),
                   bg_tone_mix=float(u(0.0, 0.5)), bg_blur=float(u(0.0, 2.5) if u() < 0.5 else 0.0))
    if "body" in levers:
        cloth = u(0.05, 0.9) * u(0.6, 1.2, 3)
        out.update(body=bool(u() < 0.9), neck_width=float(u(0.85, 1.15)), shoulder_width=float(u(0.85, 1.15)),
                   body_turn=float(u(0.2, 0.8)), cloth_color=tuple(map(float, np.clip(cloth, 0, 1))),
                   cloth_pattern=float(u(0.0, 0.3) if u() < 0.3 else 0.0))
    else:
        out.update(body=False)
    if "glasses" in levers and u() < 0.2:
        metal = u() < 0.3
        out.update(glasses=True, glasses_size=float(u(0.85, 1.2)), glasses_frame=float(u(0.0, 1.0)),
                   glasses_color=tuple(map(float, u(0.5, 0.8, 3) if metal else u(0.02, 0.3) * u(0.8, 1.2, 3))))
    if "occluders" in levers and u() < 0.15:
        kind = int(rng.integers(1, 3))
        colour = np.clip(skin * u(0.85, 1.1, 3), 0, 1) if kind == 1 else u(0, 1, 3)
        out.update(occluder=kind, occluder_color=tuple(map(float, colour)))
    if "camera" in levers:
        out.update(blur=float(u(0.3, 1.5) if u() < 0.3 else 0.0), color_cast=tuple(map(float, u(0.85, 1.15, 3))),
                   gamma=float(u(0.75, 1.3)), grayscale=bool(u() < 0.1),
                   jpeg_quality=int(rng.integers(25, 90) if u() < 0.4 else 0))
    if "even_jaw" in levers:
        out.update(even_jaw=True)
    if "features" in levers:
        # photographs show brows, lashes, eye sockets and lips darker and bolder than the plain head's
        out.update(brow_thickness=float(u(0.8, 1.7)), brow_strength=float(u(0.7, 1.0)),
                   lash_strength=float(u(0.85, 1.0)), lower_lash=float(u(0.2, 0.6)), eye_shade=float(u(0.1, 0.4)),
                   lips=tuple(map(float, np.asarray(head["lips"]) * u(0.65, 1.0))))
    if "hair_styles" in levers and head["hair"] > 0:
        # a fringe down toward the brows, and long hair down the sides of the face to the jaw
        fringe, long_hair = u() < 0.35, u() < 0.4
        if fringe:
            out.update(hair=float(u(0.33, 0.45)))
        if long_hair:
            out.update(hair_sides=float(u(-0.9, -0.2)))
    if "photo_poses" in levers and u() < 0.5:
        # fa3d's choice, round numbers (not fitted to any dataset): most photographs show a face within
        # about 20 degrees of frontal and little tilt, while the default draws every yaw up to profile alike
        out.update(yaw=float(np.clip(rng.normal(0.0, 20.0), -90, 90)),
                   pitch=float(np.clip(rng.normal(0.0, 12.0), -40, 40)))
    if "narrow_face" in levers:   # drawn last: the other levers' draws stay as they were
        # the head's outline at the eyes is 1.79 outer-eye-corner distances wide by default (renderer_bench.py
        # --shapes); adult faces are about 1.36 across the cheekbones (zy-zy 133.8 mm / ex-ex 98.2 mm, Korean
        # adult men, J Korean Assoc Maxillofac Plast Reconstr Surg 2019, Table 9). fa3d's choice: narrower by
        # 10-20 %, 1.61-1.43, not all the way, since the 68 scheme's jaw points lie on the visible outline,
        # outside the cheekbones
        out.update(front_flatness=float(u(0.17, 0.38)))
    return out


def sample_face_params(rng: np.random.Generator, levers=DEFAULT_LEVERS) -> SyntheticFaceParams:
    """Draw one random face: yaw U(-90, 90), pitch U(-40, 40), roll N(0, 10) clipped to +-30, ...;
    then the scene and camera levers in ``levers`` (a subset of LEVERS)."""
    unknown = set(levers) - set(LEVERS)
    if unknown:
        raise ValueError(f"unknown synthetic levers {sorted(unknown)}; choose from {', '.join(LEVERS)}")
    u = rng.uniform

    def jitter(spread):
        return float(1.0 + u(-spread, spread))

    skin = _skin_tone(u)
    if u() < 0.05:  # rare unnatural tint (painted faces, coloured light) keeps colour from being a shortcut
        skin = np.clip(skin * u(0.5, 1.3, 3), 0.05, 1.0)
    lips = np.clip(skin * np.array([0.85, 0.55, 0.55]) * u(0.8, 1.1) + np.array([0.05, 0, 0.02]), 0, 1)
    hair_palette = np.array([[0.06, 0.05, 0.05], [0.22, 0.13, 0.07], [0.45, 0.30, 0.15],
                             [0.80, 0.65, 0.40], [0.55, 0.25, 0.10], [0.62, 0.62, 0.62]])
    hair_color = np.clip(hair_palette[rng.integers(len(hair_palette))] * u(0.8, 1.2, 3), 0, 1)
    brow_color = np.clip(0.5 * hair_color + 0.5 * skin * 0.3, 0, 1)
    iris_palette = np.array([[0.30, 0.18, 0.08], [0.15, 0.10, 0.06], [0.25, 0.40, 0.55], [0.35, 0.45, 0.25]])
    iris = np.clip(iris_palette[rng.integers(len(iris_palette))] * u(0.8, 1.2, 3), 0, 1)
    # Light from anywhere in front of the face plane, mostly from above.
    light = np.array([u(-1, 1), u(-1, 0.5), u(0.15, 1.0)])
    light = light / np.linalg.norm(light)
    head = dict(
        yaw=float(u(-90, 90)), pitch=float(u(-40, 40)), roll=float(np.clip(rng.normal(0, 10), -30, 30)),
        face_frac=float(u(0.35, 0.75)), shift_x=float(u(-1, 1)), shift_y=float(u(-1, 1)),
        head_width=jitter(0.08), head_height=jitter(0.06), head_depth=jitter(0.08),
        jaw_width=jitter(0.15), jaw_length=jitter(0.12), chin=jitter(0.5), cheeks=jitter(0.6),
        nose_length=jitter(0.2), nose_width=jitter(0.25), nose_height=jitter(0.3),
        eye_size=jitter(0.15), eye_spacing=jitter(0.1), mouth_width=jitter(0.15), lip_thickness=jitter(0.35),
        mouth_open=float(u(0.0, 0.12) if u() < 0.4 else 0.0), smile=float(u(-0.5, 1.0)),
        brow_raise=float(u(-1, 1)), eye_open=float(u(0.5, 1.15)),
        gaze_x=float(u(-1, 1)), gaze_y=float(u(-0.6, 0.6)),
        skin=tuple(map(float, skin)), lips=tuple(map(float, lips)), iris=tuple(map(float, iris)),
        hair_color=tuple(map(float, hair_color)), brow_color=tuple(map(float, brow_color)),
        hair=float(0.0 if u() < 0.15 else u(0.5, 0.75)),
        light_dir=tuple(map(float, light)), ambient=float(u(0.2, 0.6)), diffuse=float(u(0.5, 0.9)),
        specular=float(u(0.0, 0.25)), noise=float(u(0.0, 6.0)),
        texture_seed=int(rng.integers(2**31)), background_seed=int(rng.integers(2**31)),
    )
    return SyntheticFaceParams(**{**head, **_scene_params(rng, head, levers)})


# --------------------------------------------------------------------------- face layout in (u, v)

@dataclass(frozen=True)
class _Layout:
    """Positions (radians) of the facial features of one face, shared by geometry, texture and landmarks."""

    eye_u: float      # |u| of the eye centres
    eye_v: float
    eye_w: float      # eye half-width in u
    eye_up: float     # upper-lid height above eye_v
    eye_lo: float     # lower-lid depth below eye_v
    brow_u: float     # |u| of the brow centres
    brow_v: float
    brow_w: float
    nose_root_v: float
    nose_tip_v: float
    nose_base_v: float
    nostril_u: float
    mouth_v: float    # mouth centre line at the middle of the mouth
    mouth_w: float    # mouth half-width in u
    smile_dv: float   # how much higher the corners are than the middle
    gap: float        # half the lip gap
    upper_lip: float  # upper-lip thickness
    lower_lip: float
    chin_v: float
    jaw_u: float      # |u| of the jaw contour's ends (near the ears)
    jaw_top_v: float


def _layout(p: SyntheticFaceParams) -> _Layout:
    """The features of an average face follow Farkas' adult anthropometric norms (Farkas, *Anthropometry
    of the Head and Face*, 1994), measured against the outer-eye-corner distance ex-ex (~90 mm): mouth
    width ch-ch ~0.58 ex-ex, nasion-chin height ~1.34, nose base about the inner-eye gap (the neoclassical
    canon); brows from above the inner eye corner to beyond the outer one; the jaw contour's ends at the
    face's outline near the ears and, below, a square jaw (``_JAW_SQUARENESS``). fa3d 0.3's layout had a
    mouth of 0.40 ex-ex and a nose base of 0.21 ex-ex (``tests/test_scene.py`` checks the ratios)."""
    eye_v = 0.13
    nose_tip_v = eye_v - 0.30 * p.nose_length
    nose_base_v = nose_tip_v - 0.1
    gap = 0.5 * p.mouth_open
    mouth_v = nose_base_v - 0.2 - 0.5 * gap
    return _Layout(
        eye_u=0.45 * p.eye_spacing, eye_v=eye_v, eye_w=0.175 * p.eye_size,
        eye_up=0.06 * p.eye_size * p.eye_open, eye_lo=0.04 * p.eye_size * min(1.0, p.eye_open + 0.2),
        brow_v=eye_v + 0.16 + 0.04 * p.brow_raise, brow_u=0.45 * p.eye_spacing + 0.05, brow_w=0.29,
        nose_root_v=eye_v - 0.01, nose_tip_v=nose_tip_v, nose_base_v=nose_base_v,
        nostril_u=0.175 * p.nose_width,
        mouth_v=mouth_v, mouth_w=0.36 * p.mouth_width * (1 + 0.08 * p.smile), smile_dv=0.05 * p.smile,
        gap=gap, upper_lip=0.055 * p.lip_thickness, lower_lip=0.065 * p.lip_thickness,
        chin_v=-1.12 - 1.3 * gap, jaw_u=1.25, jaw_top_v=0.1,
    )


def _lip_curves(L: _Layout, t: np.ndarray):
    """Lip contours at normalised mouth positions t in [-1, 1] (u = t * mouth_w).

    Returns the latitudes (outer upper, inner upper, inner lower, outer lower); the inner
    lips meet at |t| = 0.88, the inner mouth corners.
    """
    mid = L.mouth_v + L.smile_dv * t**2
    arc = np.sqrt(np.clip(1 - t**2, 0, None))
    inner = np.sqrt(np.clip(1 - (t / 0.88) ** 2, 0, None))
    bow = 0.012 * np.exp(-(((np.abs(t) - 0.22) / 0.12) ** 2))          # Cupid's bow
    upper_in, lower_in = mid + L.gap * inner, mid - L.gap * inner
    upper_out = upper_in + (L.upper_lip * arc**0.7 + bow) * (arc > 0)
    lower_out = lower_in - L.lower_lip * arc**0.8
    return upper_out, upper_in, lower_in, lower_out


def _eye_curves(L: _Layout, t: np.ndarray):
    """Upper and lower lid latitudes at normalised eye positions t in [-1, 1] (0 = eye centre)."""
    s = np.clip(1 - t**2, 0, None)
    return L.eye_v + L.eye_up * s**0.75, L.eye_v - L.eye_lo * s**0.9


def _landmarks_uv(p: SyntheticFaceParams) -> np.ndarray:
    """The 68 iBUG landmarks as (u, v) surface parameters, (68, 2) float64."""
    L = _layout(p)
    pts = np.zeros((68, 2))
    # Jaw 0..16: from the subject's right ear (image left) along the lower head via the chin.
    c = np.cos(np.linspace(0, np.pi, 17))
    pts[0:17, 0] = -L.jaw_u * np.sign(c) * np.abs(c) ** _JAW_SQUARENESS
    pts[0:17, 1] = _jaw_v(L, pts[0:17, 0] / L.jaw_u)
    # Brows 17..26, image left to right; 5 points along each brow's centre line.
    tb = np.array([-1.0, -0.5, 0.0, 0.5, 0.95])
    for k, side in ((17, -1), (22, 1)):
        t = tb if side < 0 else -tb[::-1]
        pts[k:k + 5, 0] = side * L.brow_u + t * L.brow_w
        pts[k:k + 5, 1] = _brow_center(L, t * side)
    # Nose bridge 27..30 (30 = tip) and lower nose 31..35 (33 = below the tip).
    pts[27:31, 0] = 0.0
    pts[27:31, 1] = np.linspace(L.nose_root_v, L.nose_tip_v, 4)
    pts[31:36, 0] = np.array([-1.0, -0.5, 0.0, 0.5, 1.0]) * L.nostril_u
    pts[31:36, 1] = L.nose_base_v + np.array([0.025, 0.008, 0.0, 0.008, 0.025])
    # Eyes 36..41 (subject's right, image left) and 42..47, each clockwise in the image from its left corner.
    te = np.array([-1.0, -0.4, 0.4, 1.0, 0.4, -0.4])
    for k, side in ((36, -1), (42, 1)):
        up, lo = _eye_curves(L, te)
        pts[k:k + 6, 0] = side * L.eye_u + te * L.eye_w
        pts[k:k + 6, 1] = np.where(np.arange(6) < 4, up, lo)
        pts[k, 1] = pts[k + 3, 1] = L.eye_v
    # Outer lips 48..59 and inner lips 60..67, clockwise in the image from the image-left corner.
    to = np.array([-1.0, -0.62, -0.25, 0.0, 0.25, 0.62, 1.0, 0.62, 0.25, 0.0, -0.25, -0.62])
    uo, _, _, lo = _lip_curves(L, to)
    pts[48:60, 0] = to * L.mouth_w
    pts[48:60, 1] = np.where(np.arange(12) <= 6, uo, lo)
    ti = np.array([-0.88, -0.45, 0.0, 0.45, 0.88, 0.45, 0.0, -0.45])
    _, ui, li, _ = _lip_curves(L, ti)
    pts[60:68, 0] = ti * L.mouth_w
    pts[60:68, 1] = np.where(np.arange(8) <= 4, ui, li)
    return pts


def _jaw_v(L: _Layout, t):
    """Latitude of the jaw contour at t = u / jaw_u in [-1, 1]: the contour is
    u = jaw_u sign(c) |c|**_JAW_SQUARENESS, v = top + (chin - top) sin(theta)**0.9 with c = cos(theta)."""
    sin = np.sqrt(np.clip(1 - np.abs(t) ** (2 / _JAW_SQUARENESS), 0, 1))
    return L.jaw_top_v + (L.chin_v - L.jaw_top_v) * sin ** 0.9


def _brow_center(L: _Layout, t_out):
    """Brow centre-line latitude; t_out in [-1, 1] runs from the inner (nose) end to the outer end."""
    x = (t_out + 1) / 2  # 0 at the inner end, 1 at the outer end
    return L.brow_v + 0.035 * np.sin(np.pi * np.clip(x * 0.9 + 0.05, 0, 1)) - 0.03 * x**2


# --------------------------------------------------------------------------- surface

def _bumps(p: SyntheticFaceParams, L: _Layout) -> np.ndarray:
    """Radial Gaussian bumps (K, 5) = u centre, v centre, u sigma, v sigma, height (fraction of radius)."""
    nh, nw = p.nose_height, p.nose_width
    rows = [
        (0.0, 0.5 * (L.nose_root_v + L.nose_tip_v), 0.045 * nw, 0.11 * p.nose_length, 0.09 * nh),  # bridge
        (0.0, L.nose_tip_v - 0.01, 0.06 * nw, 0.055, 0.12 * nh),                                     # tip
        (0.0, L.nose_tip_v + 0.03, 0.06 * nw, 0.12, 0.04 * nh),
        (0.0, L.nose_root_v + 0.06, 0.08, 0.05, 0.02),                                               # glabella
        (0.0, L.nose_base_v - 0.07, 0.13 * p.mouth_width, 0.09, 0.05),                               # muzzle
        (0.0, L.mouth_v + L.gap + 0.02, 0.65 * L.mouth_w, 0.02 + 0.5 * L.upper_lip, 0.025 * p.lip_thickness),
        (0.0, L.mouth_v - L.gap - 0.03, 0.55 * L.mouth_w, 0.02 + 0.5 * L.lower_lip, 0.03 * p.lip_thickness),
        (0.0, L.mouth_v, 0.6 * L.mouth_w, max(L.gap, 0.01), -0.6 * L.gap),                           # open mouth
        (0.0, L.chin_v + 0.15, 0.17, 0.1, 0.06 * p.chin),                                            # chin
        (0.0, L.chin_v + 0.33, 0.18, 0.06, -0.02),                                                   # chin crease
    ]
    for s in (-1.0, 1.0):
        rows += [
            (s * (L.nostril_u * 0.85), L.nose_base_v + 0.03, 0.045 * nw, 0.035, 0.05 * nh),          # alae
            (s * L.eye_u, L.eye_v + 0.01, 0.17, 0.085, -0.07),                                        # eye socket
            (s * L.eye_u, L.eye_v, 0.09 * p.eye_size, 0.045 * p.eye_size, 0.035),                     # eyeball
            (s * (L.brow_u - 0.03), L.brow_v + 0.03, 0.2, 0.05, 0.035),                         # brow ridge
            (s * 0.52, L.nose_tip_v - 0.03, 0.17, 0.13, 0.045 * p.cheeks),                            # cheek
            (s * 1.0, L.eye_v + 0.22, 0.2, 0.2, -0.03),                                               # temple
            (s * 1.62, 0.05, 0.075, 0.15, 0.16),                                                      # ear
            (s * 1.6, 0.02, 0.035, 0.06, -0.06),                                                      # ear hollow
            (s * 0.95, L.chin_v + 0.35, 0.25, 0.2, -0.03 * p.jaw_width),                              # below cheekbone
        ]
    return np.asarray(rows, dtype=np.float64)


def _row_profile(p: SyntheticFaceParams, v: np.ndarray):
    """Per-latitude multipliers (rx, ry, rz) of the head: x = rx sin(u) r, y = ry r, z = rz cos(u) r.

    An ellipsoid above the eyes; below them a squarer superellipse (cos(v)**0.55) so that
    the chin sits forward under the mouth, with a jaw that narrows toward the chin.
    """
    low = 1 / (1 + np.exp(v / 0.12))                            # ~1 below the eyes, ~0 above
    cos = np.cos(v) ** (1 - 0.7 * low)
    taper = 0.1 * np.log1p(np.exp((-v - 0.25) / 0.1))          # smooth ramp: 0 above the nose base, then -v - 0.25
    rx = _HEAD_A * p.head_width * (1 - 0.05 * taper / p.jaw_width) * cos
    ry = -(_HEAD_B_UP * (1 - low) + _HEAD_B_LOW * p.jaw_length * low) * p.head_height * np.sin(v)
    rz = _HEAD_C * p.head_depth * cos
    return rx, ry, rz


_EYE_CORNER_COS2 = float(np.cos(0.625) ** 2)   # cos(u)^2 at the average face's outer eye corners (u = 0.625)


def _cross_section(p: SyntheticFaceParams, sin_u: np.ndarray, cos_u: np.ndarray) -> np.ndarray:
    """x of the head's horizontal cross-section per unit rx at longitudes with these sin, cos: sin(u), or
    with ``front_flatness`` k, sin(u) (1 + k cos^2 u) / (1 + k cos^2 u_ex): the outer eye corners (u_ex) stay
    where they were, the front between them flatter, the sides and the outline narrower by 1 + k cos^2 u_ex
    (smooth and monotonic for k < 0.5)."""
    k = p.front_flatness
    if not k:
        return sin_u
    return sin_u * ((1 + k * cos_u ** 2) / (1 + k * _EYE_CORNER_COS2)).astype(sin_u.dtype)


def _surface_points(p: SyntheticFaceParams, L: _Layout, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """3D head-frame points (M, 3) of surface parameters u, v (M,) each; float64."""
    b = _bumps(p, L)
    r = 1 + (b[:, 4:5] * np.exp(-0.5 * (((u[None] - b[:, 0:1]) / b[:, 2:3]) ** 2
                                        + ((v[None] - b[:, 1:2]) / b[:, 3:4]) ** 2))).sum(0)
    rx, ry, rz = _row_profile(p, v)
    return np.stack([rx * _cross_section(p, np.sin(u), np.cos(u)) * r, ry * r, rz * np.cos(u) * r], axis=1)


def _surface_radius(p: SyntheticFaceParams, L: _Layout, grid: "_Grid") -> np.ndarray:
    """Radius factor r = 1 + d(u, v) on the whole grid, (Nv, Nu) float32.

    The bumps are separable, so d = Gv^T diag(h) Gu is one (Nv, K) @ (K, Nu) product.
    """
    b = _bumps(p, L)
    gu = np.exp(-0.5 * ((grid.u[None] - b[:, 0:1]) / b[:, 2:3]) ** 2).astype(np.float32)   # (K, Nu)
    gv = (b[:, 4:5] * np.exp(-0.5 * ((grid.v[None] - b[:, 1:2]) / b[:, 3:4]) ** 2)).astype(np.float32)
    return 1 + (torch.from_numpy(gv.T.copy()) @ torch.from_numpy(gu)).numpy()   # torch: thread-safe BLAS


# --------------------------------------------------------------------------- grid cache

@dataclass
class _Grid:
    """A (Nv, Nu) parameter grid with cached trigonometry and texture banks (float32 numpy)."""

    u: np.ndarray        # (Nu,) longitudes in [-pi, pi), float64
    v: np.ndarray        # (Nv,) latitudes in (-pi/2, pi/2), cell centres, float64
    sin_u: np.ndarray    # (Nu,) float32
    cos_u: np.ndarray
    index: np.ndarray    # (Nv * Nu,) int64 point indices
    noise: np.ndarray    # (Nv, Nu) smooth skin texture, zero mean
    strands: np.ndarray  # (Nv, Nu) hair texture around 1


_GRIDS: dict[tuple[int, int], _Grid] = {}


def _get_grid(nu: int, nv: int) -> _Grid:
    key = (nu, nv)
    if key not in _GRIDS:
        u = np.arange(nu) * (2 * np.pi / nu) - np.pi
        v = (np.arange(nv) + 0.5) * (np.pi / nv) - np.pi / 2
        g = torch.Generator().manual_seed(1234)
        fine = torch.randn(1, 1, nv, nu, generator=g)
        coarse = F.interpolate(torch.randn(1, 1, nv // 16 + 2, nu // 16 + 2, generator=g), size=(nv, nu),
                               mode="bilinear", align_corners=False)
        noise = (0.1 * fine + 0.5 * F.avg_pool2d(fine, 3, 1, 1, count_include_pad=False) + 0.6 * coarse)[0, 0]
        noise = noise.numpy()
        strands = 1 + 0.18 * np.sin(u[None] * 90 + 6 * v[:, None] + 3 * noise)
        _GRIDS[key] = _Grid(u=u, v=v, sin_u=np.sin(u).astype(np.float32), cos_u=np.cos(u).astype(np.float32),
                            index=np.arange(nu * nv, dtype=np.int64), noise=noise.astype(np.float32),
                            strands=strands.astype(np.float32))
    return _GRIDS[key]


def _grid_for_scale(scale_px: float) -> _Grid:
    """A cached grid whose on-screen spacing is at most _SPLAT_SPACING_PX at this scale.

    Grids come in levels 15 % apart in scale, so only a handful are ever built.
    """
    level = max(0, math.ceil(math.log(scale_px / 16) / math.log(1.15)))
    s = 16 * 1.15**level
    nu = 32 * math.ceil(2 * math.pi * 0.8 * s / _SPLAT_SPACING_PX / 32)
    nv = 16 * math.ceil(math.pi * 1.0 * s / _SPLAT_SPACING_PX / 16)
    return _get_grid(nu, nv)


# --------------------------------------------------------------------------- texture

def _soft(x, width):
    """1 where x > 0, 0 where x < 0, with a linear ramp `width` wide."""
    return np.clip(x / width + 0.5, 0.0, 1.0)


def _albedo(p: SyntheticFaceParams, L: _Layout, grid: _Grid, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Surface colour (M, 3) in [0, 1] of grid cells (rows, cols), each (M,).

    Textured skin, an under-jaw shadow, hair, ears, brows, eyes, lips and nostrils, all
    defined in (u, v). Only the cells that some pixel shows are evaluated; each feature
    only on the cells inside its (u, v) box. The features are painted in this order, each
    blending over the ones before.
    """
    alb, shift = _textured_skin(p, grid, rows, cols)
    canvas = _Canvas(alb, grid.u[cols], grid.v[rows], rows, cols)
    _paint_jaw_shadow(canvas, L)
    if p.hair > 0:
        _paint_hair(canvas, p, grid, shift)
    for side in (-1.0, 1.0):
        _paint_ear(canvas, p, side)
        _paint_brow(canvas, p, L, side)
        _paint_eye(canvas, p, L, side)
        _paint_nostril(canvas, p, L, side)
    _paint_lips(canvas, p, L)
    return canvas.alb


class _Canvas:
    """The albedo being painted, alb (M, 3) float32, and the grid cells it covers:
    their longitudes U, latitudes V (M,) and grid rows, cols (M,)."""

    __slots__ = ("alb", "U", "V", "rows", "cols")

    def __init__(self, alb: np.ndarray, U: np.ndarray, V: np.ndarray, rows: np.ndarray, cols: np.ndarray):
        self.alb, self.U, self.V, self.rows, self.cols = alb, U, V, rows, cols

    def box(self, u0, u1, v0, v1):
        """Indices of the cells inside [u0, u1] x [v0, v1], and their U, V."""
        U_all, V_all = self.U, self.V
        i = np.flatnonzero((U_all >= u0) & (U_all <= u1) & (V_all >= v0) & (V_all <= v1))
        return i, U_all[i], V_all[i]

    def paint(self, i, mask, color):
        """Blend colour (3,) or (len(i), 3) into alb[i] with a soft mask (len(i),) in [0, 1]."""
        self.alb[i] += (np.asarray(color, dtype=np.float32) - self.alb[i]) * mask[:, None]


def _textured_skin(p: SyntheticFaceParams, grid: _Grid, rows: np.ndarray, cols: np.ndarray):
    """The skin colour times (1 + amp * the grid's noise bank), (M, 3) float32, and the face's
    texture shift (an int, also used by the hair). The bank is shifted in u and scaled by amp,
    both drawn from (texture_seed, 1), so faces sharing a grid still differ."""
    rng = np.random.Generator(np.random.PCG64([p.texture_seed, 1]))
    nu = grid.noise.shape[1]
    shift = int(rng.integers(nu))
    amp = float(rng.uniform(0.02, 0.07))
    skin = np.asarray(p.skin, dtype=np.float32)
    return (1 + amp * grid.noise[rows, (cols - shift) % nu])[:, None] * skin, shift


def _paint_jaw_shadow(c: _Canvas, L: _Layout) -> None:
    """Under-jaw shadow: makes the jaw line an edge even in flat light."""
    i, U, V = c.box(-np.pi, np.pi, -np.pi / 2, L.jaw_top_v)
    jaw_v = _jaw_v(L, np.clip(U / L.jaw_u, -1, 1))
    jaw_v = jaw_v - 3.0 * np.clip(np.abs(U) - L.jaw_u, 0, None)  # behind the ears: drop steeply
    c.alb[i] *= (1 - 0.25 * _soft(jaw_v - V, 0.05))[:, None]


def _paint_hair(c: _Canvas, p: SyntheticFaceParams, grid: _Grid, shift: int) -> None:
    """Hair: above a hairline that is high on the forehead and drops toward the nape."""
    nu = grid.noise.shape[1]
    i, U, V = c.box(-np.pi, np.pi, min(-0.4, p.hair_sides - 0.1), np.pi / 2)
    # forehead (|u| small) -> above the ears (|u| ~ 1.6) -> nape (|u| = pi)
    knots = np.interp(np.abs(U), (0, 0.9, 1.3, 1.62, 1.95, 2.4, np.pi),
                      (p.hair, p.hair - 0.05, p.hair_sides, p.hair_sides + 0.03, min(0.2, p.hair_sides), -0.35, -0.45))
    hairline = knots + 0.05 * np.cos(5 * U + shift)
    strands = grid.strands[c.rows[i], (c.cols[i] - shift // 2) % nu]
    c.paint(i, _soft(V - hairline, 0.03), strands[:, None] * np.asarray(p.hair_color, np.float32))


def _paint_ear(c: _Canvas, p: SyntheticFaceParams, side: float) -> None:
    """Ear on one side (-1 = subject's right): a slightly redder, darker oval with a dark canal."""
    skin = np.asarray(p.skin, dtype=np.float32)
    i, U, V = c.box(side * 1.62 - 0.2, side * 1.62 + 0.2, -0.3, 0.4)
    e = ((U - side * 1.62) / 0.1) ** 2 + ((V - 0.05) / 0.2) ** 2
    c.paint(i, 0.5 * _soft(1 - e, 0.3), skin * (0.85, 0.62, 0.6))
    e = ((U - side * 1.6) / 0.03) ** 2 + ((V - 0.02) / 0.05) ** 2
    c.paint(i, 0.8 * _soft(1 - e, 0.6), 0.3 * skin)


def _paint_brow(c: _Canvas, p: SyntheticFaceParams, L: _Layout, side: float) -> None:
    """Brow on one side: a band around the brow centre line, thinning toward the outer end."""
    uc = side * L.brow_u
    i, U, V = c.box(uc - L.brow_w - 0.03, uc + L.brow_w + 0.03, L.brow_v - 0.06, L.brow_v + 0.08)
    t_out = np.clip((U - uc) / L.brow_w * side, -1.2, 1.2)      # -1 inner end, +1 outer end
    half = 0.028 * p.brow_thickness * (1.2 - 0.5 * np.clip((t_out + 1) / 2, 0, 1))
    m = _soft(half - np.abs(V - _brow_center(L, t_out)), 0.012) * _soft(1.05 - np.abs(t_out), 0.1)
    c.paint(i, p.brow_strength * m, p.brow_color)


def _paint_eye(c: _Canvas, p: SyntheticFaceParams, L: _Layout, side: float) -> None:
    """Eye on one side: darker surrounding skin, eye white, iris, pupil, lash line."""
    uc = side * L.eye_u
    i, U, V = c.box(uc - L.eye_w - 0.1, uc + L.eye_w + 0.1, L.eye_v - 0.12, L.eye_v + 0.13)
    t = (U - uc) / L.eye_w
    up, lo = _eye_curves(L, t)
    c.alb[i] *= (1 - p.eye_shade * np.exp(-((t / 1.5) ** 2 + ((V - L.eye_v - 0.02) / 0.08) ** 2)))[:, None]
    iris_r = 0.43 * L.eye_w
    iu = uc + 0.35 * L.eye_w * p.gaze_x
    iv = L.eye_v + 0.3 * (L.eye_up - L.eye_lo) + 0.2 * L.eye_up * p.gaze_y
    dist = np.sqrt(((U - iu) * 0.75) ** 2 + (V - iv) ** 2)
    eye = (0.85 + 0.15 * (1 - np.abs(t)))[:, None] * np.array([0.92, 0.9, 0.85], np.float32)
    eye = np.where((dist < iris_r)[:, None], 0.9 * np.asarray(p.iris, np.float32), eye)
    eye = np.where((dist < 0.45 * iris_r)[:, None], np.float32(0.04), eye)
    c.paint(i, _soft(np.minimum(up - V, V - lo), 0.006) * _soft(1 - np.abs(t), 0.04), eye)
    c.paint(i, p.lash_strength * _soft(0.009 - np.abs(V - up), 0.006) * _soft(1.05 - np.abs(t), 0.05),
            (0.05, 0.04, 0.04))
    if p.lower_lash > 0:
        c.paint(i, p.lower_lash * _soft(0.006 - np.abs(V - lo), 0.005) * _soft(0.95 - np.abs(t), 0.05),
                (0.1, 0.08, 0.07))


def _paint_nostril(c: _Canvas, p: SyntheticFaceParams, L: _Layout, side: float) -> None:
    """Nostril on one side: a small dark oval under the nose tip."""
    skin = np.asarray(p.skin, dtype=np.float32)
    uc, vc = side * 0.55 * L.nostril_u, L.nose_base_v + 0.02
    i, U, V = c.box(uc - 0.06, uc + 0.06, vc - 0.03, vc + 0.03)
    e = ((U - uc) / (0.038 * p.nose_width)) ** 2 + ((V - vc) / 0.014) ** 2
    c.paint(i, 0.8 * _soft(1 - e, 0.5), 0.25 * skin)


def _paint_lips(c: _Canvas, p: SyntheticFaceParams, L: _Layout) -> None:
    """Lips, the line between them, and an open mouth's dark cavity with upper teeth."""
    i, U, V = c.box(-L.mouth_w - 0.03, L.mouth_w + 0.03,
                    L.mouth_v - L.gap - L.lower_lip - 0.04, L.mouth_v + L.gap + L.upper_lip + 0.06)
    t = U / L.mouth_w
    uo, ui, li, lo = _lip_curves(L, np.clip(t, -1, 1))
    c.paint(i, _soft(np.minimum(uo - V, V - lo), 0.01) * _soft(1 - np.abs(t), 0.04), p.lips)
    line = _soft(0.006 - np.abs(V - 0.5 * (ui + li)), 0.004) * _soft(0.92 - np.abs(t), 0.05)
    c.paint(i, 0.7 * line, 0.35 * np.asarray(p.lips))
    if L.gap > 0.004:
        teeth = (_soft(V - (ui - 0.35 * (ui - li)), 0.008) * _soft(0.55 - np.abs(t), 0.08))[:, None]
        inside = (1 - teeth) * np.array([0.12, 0.03, 0.03], np.float32) + teeth * np.array([0.85, 0.82, 0.75], np.float32)
        c.paint(i, _soft(np.minimum(ui - V, V - li), 0.006) * _soft(0.88 - np.abs(t), 0.04), inside)


# --------------------------------------------------------------------------- background

_COORDS: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates x (1, size), y (size, 1) in [0, 1]."""
    if size not in _COORDS:
        c = np.linspace(0, 1, size, dtype=np.float32)
        _COORDS[size] = (c[None, :], c[:, None])
    return _COORDS[size]


def _background(p: SyntheticFaceParams, out_size: int) -> np.ndarray:
    """Procedural clutter (out_size, out_size, 3) in [0, 1]: a gradient, then shapes (ellipses,
    rectangles, bands, triangles) filled with flat colours, stripes or checks, then blotches,
    then toned down (:func:`fa3d.data.scene.tone_background`), all from ``p.background_seed``.

    Drawn at half resolution and upsampled: 4x cheaper, and the slight blur reads as depth of field.
    """
    rng = np.random.Generator(np.random.PCG64([p.background_seed, 2]))
    size = max(16, out_size // 2)
    x, y = _coords(size)

    def colour():
        return rng.uniform(0, 1, 3).astype(np.float32)

    def fill(mask):
        """A flat colour, or stripes/checks of two colours, where mask (size, size) is true."""
        c = colour()
        kind = rng.integers(3)
        if kind > 0:
            ang, freq = rng.uniform(0, np.pi), rng.uniform(4, 40)
            ca, sa = np.float32(np.cos(ang)), np.float32(np.sin(ang))
            s = np.sin(freq * (x * ca + y * sa) + np.float32(rng.uniform(0, 6.3)))
            if kind == 2:
                s = s * np.sin(freq * (y * ca - x * sa))
            w = (s > 0).astype(np.float32) if rng.uniform() < 0.5 else 0.5 + 0.5 * s
            c = c + (colour() - c) * w[:, :, None]
        np.copyto(img, c, where=mask[:, :, None])

    ang = rng.uniform(0, 2 * np.pi)
    g = x * np.float32(np.cos(ang)) + y * np.float32(np.sin(ang))
    g = (g - g.min()) / (g.max() - g.min() + 1e-6)
    c0, c1 = colour(), colour()
    img = c0 + (c1 - c0) * g[:, :, None]
    for _ in range(int(rng.integers(2, 9))):
        kind = rng.integers(4)
        cx, cy = rng.uniform(-0.1, 1.1, 2).astype(np.float32)
        a, b = rng.uniform(0.05, 0.5, 2).astype(np.float32)
        th = rng.uniform(0, np.pi)
        ct, st = np.float32(np.cos(th)), np.float32(np.sin(th))
        xr = (x - cx) * ct + (y - cy) * st
        yr = (y - cy) * ct - (x - cx) * st
        if kind == 0:     # ellipse
            mask = (xr / a) ** 2 + (yr / b) ** 2 < 1
        elif kind == 1:   # rotated rectangle
            mask = (np.abs(xr) < a) & (np.abs(yr) < b)
        elif kind == 2:   # band across the image
            mask = np.broadcast_to(np.abs(yr) < 0.3 * b, (size, size))
        else:             # triangle: three half-planes
            mask = np.ones((size, size), bool)
            for t in th + np.array([0, 2.1, 4.2]) + rng.uniform(-0.3, 0.3, 3):
                mask &= (x - cx) * np.float32(np.cos(t)) + (y - cy) * np.float32(np.sin(t)) < a
        fill(mask)
    # Low-frequency blotches so that no region is perfectly flat.
    blob = torch.from_numpy(rng.normal(0, 1, (1, 3, 6, 6)).astype(np.float32))
    blob = F.interpolate(blob, size=(size, size), mode="bilinear", align_corners=False)
    img = (torch.from_numpy(img).permute(2, 0, 1)[None] * (1 + 0.12 * blob))[0].permute(1, 2, 0).numpy()
    img = scene.tone_background(img, p.bg_saturation, p.bg_tone, p.bg_tone_mix, p.bg_blur * size / out_size)
    img = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None]
    img = F.interpolate(img, size=(out_size, out_size), mode="bilinear", align_corners=False)
    return img[0].permute(1, 2, 0).contiguous().numpy()


# --------------------------------------------------------------------------- rendering

def _camera(p: SyntheticFaceParams, L: _Layout, image_size: int):
    """Scale (pixels per head unit), rotation (3, 3) and 2D offset (2,) that frame the face,
    and the 68 landmarks in the head frame (68, 3)."""
    lm_uv = _landmarks_uv(p)
    lm_head = _surface_points(p, L, lm_uv[:, 0], lm_uv[:, 1])
    scale = p.face_frac * image_size / np.ptp(lm_head[:, 1])
    rot = rotation_matrix(p.yaw, p.pitch, p.roll)
    xy = (lm_head @ rot.T)[:, :2] * scale
    lo, hi = xy.min(0), xy.max(0)
    slack = np.maximum(0.0, (image_size - 1 - (hi - lo)) / 2 - 0.02 * image_size)
    centre = (image_size - 1) / 2 + np.array([p.shift_x, p.shift_y]) * slack
    return scale, rot, centre - (lo + hi) / 2, lm_head


def _march(p: SyntheticFaceParams, L: _Layout, uv: np.ndarray, rot: np.ndarray, scale: float,
           offset: np.ndarray) -> np.ndarray:
    """Head-frame points (M, 3): each surface point ``uv`` (M, 2) slid along its parallel (constant v, its
    own side, |u| up to ``_MARCH_MAX_U``) to the point farthest out along the image direction of the
    head's x axis, i.e. onto the face's outline in this view."""
    x_axis = rot[:2, 0] / max(np.linalg.norm(rot[:2, 0]), 1e-9)   # the head's x axis on the screen
    t = np.linspace(0.0, _MARCH_MAX_U, 117)
    side = np.where(uv[:, 0] < 0, -1.0, 1.0)
    u = (side[:, None] * t[None]).ravel()
    v = np.repeat(uv[:, 1], len(t))
    candidates = _surface_points(p, L, u, v)
    reach = (scene.to_camera(candidates, rot, scale, offset)[:, :2] @ x_axis).reshape(len(uv), len(t))
    best = np.argmax(side[:, None] * reach, axis=1)
    return candidates.reshape(len(uv), len(t), 3)[np.arange(len(uv)), best]


def _march_jaw(p: SyntheticFaceParams, L: _Layout, lm_head: np.ndarray, rot: np.ndarray, scale: float,
               offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 68-point scheme's jaw contour, on the face's outline in this view.

    300-W's annotators put the jaw points 0-16 on the visible outline of the face, and 300W-LP and
    AFLW2000-3D move the contour points of their 3D fits there too ("landmark marching", Zhu et al.,
    CVPR 2016): for a frontal face that is the cheek's silhouette, for a turned face the near side's
    jaw line and the far side's outline. The 3D jaw contour of these heads lies well inside that
    outline (about 5 % of the face's width for a frontal face), so a net trained on it places real
    faces' jaws too far in. Here each point of ``OUTLINE_JAW_POINTS`` (the cheek's, 0-3 and 13-16)
    slides along its parallel to the outline (:func:`_march`); the lower jaw and chin stay. With
    ``p.even_jaw`` the 17 points are then spread evenly along that outline (:func:`_even_jaw`).
    Returns the head-frame landmarks (68, 3) with the marched points replaced, and which points are
    on the outline, (68,) bool.
    """
    out, marched = lm_head.copy(), np.zeros(len(lm_head), bool)
    if p.even_jaw:
        out[:17], marched[:17] = _even_jaw(p, L, rot, scale, offset)
        return out, marched
    points = list(OUTLINE_JAW_POINTS)
    out[points] = _march(p, L, _landmarks_uv(p)[points], rot, scale, offset)
    marched[points] = True
    return out, marched


_JAW_SAMPLES = 4    # samples of the jaw curve between two of its default points (enough for the arc length)


def _even_jaw(p: SyntheticFaceParams, L: _Layout, rot: np.ndarray, scale: float,
              offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 17 jaw points (17, 3, head frame) spread evenly along the jaw's outline in the image, and which
    of them lie on the marched (cheek) part of it, (17,) bool.

    300-W's annotators spread the jaw's points about evenly along the outline, from the ear (0) down
    to the chin (8) and up to the other ear (16): on frontal faces of its training part, the gaps
    between neighbours differ by under 10 % (``benchmarks/renderer_bench.py --shapes`` measures it).
    The default labels keep the contour's parametrisation instead, whose gaps near the ears are three
    times those near the chin. Here the jaw curve is sampled densely (the cheek's part marched to the
    outline, the lower jaw and chin on the 3D contour, as :func:`_march_jaw`), projected, and each
    half (0-8 and 8-16, so 8 stays at the chin) resampled at equal steps of image arc length.
    """
    c = np.cos(np.linspace(0.0, np.pi, 16 * _JAW_SAMPLES + 1))
    u = -L.jaw_u * np.sign(c) * np.abs(c) ** _JAW_SQUARENESS
    uv = np.stack([u, _jaw_v(L, u / L.jaw_u)], 1)
    head = _surface_points(p, L, uv[:, 0], uv[:, 1])
    index = np.arange(len(uv))
    cheek = (index <= 3 * _JAW_SAMPLES) | (index >= 13 * _JAW_SAMPLES)   # from each ear to point 3 or 13
    head[cheek] = _march(p, L, uv[cheek], rot, scale, offset)
    xy = scene.to_camera(head, rot, scale, offset)[:, :2]
    out, on_cheek = np.empty((17, 3)), np.empty(17, bool)
    middle = 8 * _JAW_SAMPLES
    for half, ks in ((slice(0, middle + 1), list(range(0, 9))), (slice(middle, None), list(range(8, 17)))):
        arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(xy[half], axis=0), axis=1))])
        at = np.linspace(0.0, arc[-1], 9)
        for j in range(3):
            out[ks, j] = np.interp(at, arc, head[half, j])
        on_cheek[ks] = np.interp(at, arc, cheek[half].astype(float)) == 1.0
    return out, on_cheek


def _project_grid(grid: _Grid, prof, r: np.ndarray, rot: np.ndarray, scale: float,
                  offset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel x, y and depth z (each (Nv, Nu) float32) of every grid point.

    A point is r * (rx s(u), ry, rz cos u) with per-row rx, ry, rz and per-column s(u) (sin u, or
    :func:`_cross_section`), so each camera coordinate is r times a sum of three outer products.
    """
    rx, ry, rz, side = prof
    m = (rot * scale).astype(np.float32)
    out = []
    for i, off in enumerate((offset[0], offset[1], 0.0)):
        c = np.multiply.outer(m[i, 0] * rx, side)
        c += np.multiply.outer(m[i, 2] * rz, grid.cos_u)
        c += (m[i, 1] * ry)[:, None]
        c *= r
        c += np.float32(off)
        out.append(c)
    return out[0], out[1], out[2]


def _points_at(grid: _Grid, prof, r: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Head-frame points (M, 3) of grid cells (rows, cols); prof = _row_profile on grid.v and the cross-section."""
    rx, ry, rz, side = prof
    rr = r[rows, cols]
    return np.stack([rx[rows] * side[cols] * rr, ry[rows] * rr, rz[rows] * grid.cos_u[cols] * rr], axis=1)


def _zbuffer(x: np.ndarray, y: np.ndarray, z: np.ndarray, index: np.ndarray, S: int) -> np.ndarray:
    """Splat points into an (S, S) int64 key buffer: quantised depth << _INDEX_BITS | point index.

    -1 marks empty pixels. Each point covers the 2x2 pixels whose centres surround it; one
    scatter_reduce("amax") keeps the closest point per pixel (ties: the larger index). A
    2-pixel ring around the image catches off-screen points, clamped into it.
    """
    key = (((z.ravel() + 4 * S) * _DEPTH_STEPS).astype(np.int64) << _INDEX_BITS) | index
    W = S + 4
    xi = np.clip(x.ravel() + 2, 0, S + 2).astype(np.int64)    # floor(x) + 2 for on-screen x
    yi = np.clip(y.ravel() + 2, 0, S + 2).astype(np.int64)
    pix = torch.from_numpy(yi * W + xi)
    key_t = torch.from_numpy(key)
    buf = torch.full((W * W,), -1, dtype=torch.int64)
    for off in (0, 1, W, W + 1):
        buf.scatter_reduce_(0, pix + off, key_t, "amax")
    return buf.numpy().reshape(W, W)[2:-2, 2:-2]


def _fill_holes(keys: np.ndarray, depth_gap: float) -> np.ndarray:
    """Fill 1-pixel holes: where both opposite neighbours of a pixel are closer by more than
    depth_gap pixels, the pixel shows a surface behind through a gap between splats."""
    d = keys >> _INDEX_BITS
    dc = d[1:-1, 1:-1] + int(depth_gap * _DEPTH_STEPS)
    lr = (d[1:-1, :-2] > dc) & (d[1:-1, 2:] > dc)
    ud = (d[:-2, 1:-1] > dc) & (d[2:, 1:-1] > dc)
    out = keys.copy()
    out[1:-1, 1:-1] = np.where(lr, np.maximum(keys[1:-1, :-2], keys[1:-1, 2:]),
                               np.where(ud, np.maximum(keys[:-2, 1:-1], keys[2:, 1:-1]), keys[1:-1, 1:-1]))
    return out


def _shade(p: SyntheticFaceParams, L: _Layout, grid: _Grid, prof, r: np.ndarray, idx: np.ndarray,
           rot: np.ndarray) -> np.ndarray:
    """Colour (M, 3) of grid points idx (M,): albedo x (ambient + diffuse Lambert) + Blinn specular."""
    nv, nu = r.shape
    rows, cols = idx // nu, idx % nu
    du = _points_at(grid, prof, r, rows, (cols + 1) % nu) - _points_at(grid, prof, r, rows, (cols - 1) % nu)
    dv = (_points_at(grid, prof, r, np.minimum(rows + 1, nv - 1), cols)
          - _points_at(grid, prof, r, np.maximum(rows - 1, 0), cols))
    n = np.cross(dv, du) @ rot.T.astype(np.float32)                     # outward normals, camera frame
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    light = np.asarray(p.light_dir)
    half = (light + (0, 0, 1)) / np.linalg.norm(light + (0, 0, 1))
    lambert = np.clip(n @ light.astype(np.float32), 0, None)
    spec = np.clip(n @ half.astype(np.float32), 0, None) ** 24
    albedo = _albedo(p, L, grid, rows, cols)
    return albedo * (p.ambient + p.diffuse * lambert)[:, None] + (p.specular * spec)[:, None]


def _landmark_visibility(p: SyntheticFaceParams, L: _Layout, lm: np.ndarray, rot: np.ndarray,
                         keys: np.ndarray, scale: float) -> np.ndarray:
    """(68,) bool: inside the image, facing the camera, and not behind the z-buffer at its pixel.

    lm: (68, 3) landmarks in pixels (z not yet centred). The depth tolerance grows with the
    surface slope, since on a steep surface the depths inside one pixel differ a lot.
    """
    S = keys.shape[0]
    uv = _landmarks_uv(p)
    h = 1e-4
    du = _surface_points(p, L, uv[:, 0] + h, uv[:, 1]) - _surface_points(p, L, uv[:, 0] - h, uv[:, 1])
    dv = _surface_points(p, L, uv[:, 0], uv[:, 1] + h) - _surface_points(p, L, uv[:, 0], uv[:, 1] - h)
    n = np.cross(dv, du) @ rot.T
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    slope = np.hypot(n[:, 0], n[:, 1]) / np.maximum(n[:, 2], 1e-3)
    return (n[:, 2] > 0) & _depth_visible(lm, keys, scale, slope)


def _depth_visible(lm: np.ndarray, keys: np.ndarray, scale: float, slope) -> np.ndarray:
    """(N,) bool: points ``lm`` (N, 3, pixels) inside the image and not behind the z-buffer at their pixel,
    with a tolerance that grows with the surface's ``slope`` (N,) or scalar."""
    S = keys.shape[0]
    ix, iy = np.rint(lm[:, 0]).astype(int), np.rint(lm[:, 1]).astype(int)
    inside = (ix >= 0) & (ix < S) & (iy >= 0) & (iy < S)
    k = keys[np.clip(iy, 0, S - 1), np.clip(ix, 0, S - 1)]
    zbuf = (k >> _INDEX_BITS) / _DEPTH_STEPS - 4 * S
    tol = 1.0 + 0.02 * scale + np.minimum(1.5 * slope, 0.1 * scale)
    return inside & (k >= 0) & (lm[:, 2] >= zbuf - tol)


def _soften(image: np.ndarray) -> np.ndarray:
    """Light anti-aliasing: blend 30 % of a 3x3 binomial blur into the image (S, S, 3)."""
    p = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h = 0.25 * p[:, :-2] + 0.5 * p[:, 1:-1] + 0.25 * p[:, 2:]
    blurred = 0.25 * h[:-2] + 0.5 * h[1:-1] + 0.25 * h[2:]
    return 0.7 * image + 0.3 * blurred


_NOISE: dict[int, np.ndarray] = {}


def _pixel_noise(size: int, shift: int) -> np.ndarray:
    """Unit-std sensor noise (size, size, 3) from a cached bank, rolled by `shift` values."""
    if size not in _NOISE:
        _NOISE[size] = np.random.Generator(np.random.PCG64(99)).standard_normal(size * size * 3, np.float32)
    return np.roll(_NOISE[size], shift).reshape(size, size, 3)


def _scene_points(p: SyntheticFaceParams, L: _Layout, rot: np.ndarray, scale: float, offset: np.ndarray,
                  image_size: int):
    """Camera-space points (M, 3) and colours (M, 3) of the neck, shoulders and glasses, if any."""
    parts = []
    if p.body:
        parts.append(scene.body_points(p, rot, scale, offset, image_size))
    if p.glasses:
        eyes = _surface_points(p, L, np.array([-L.eye_u, L.eye_u]), np.array([L.eye_v, L.eye_v]))
        half_width = eyes[1, 0] - _surface_points(p, L, np.array([L.eye_u - L.eye_w]), np.array([L.eye_v]))[0, 0]
        sides = float(_cross_section(p, np.ones(1), np.zeros(1))[0])        # narrow_face narrows the sides
        parts.append(scene.glasses_points(p, eyes, half_width, rot, scale, offset, 0.70 * p.head_width * sides))
    if not parts:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)
    return np.concatenate([a for a, _ in parts]), np.concatenate([c for _, c in parts])


def render_face(params: SyntheticFaceParams, image_size: int = 256, scheme: str = "3dfaw66",
                id: str = "synth-custom") -> FaceItem:
    """Render one face: a :class:`~fa3d.data.item.FaceItem` with a (3, S, S) image, the visibility
    of every landmark, the landmark box and the params' pose."""
    scheme = get_scheme(scheme).name
    p, S = params, int(image_size)
    L = _layout(p)
    scale, rot, offset, lm_head = _camera(p, L, S)
    grid = _grid_for_scale(scale)

    # Every grid point through the camera, then the z-buffer: which point each pixel sees. Points
    # of the scene (neck, shoulders, glasses) share it, with indices after the head's.
    r = _surface_radius(p, L, grid)
    prof = (*(a.astype(np.float32) for a in _row_profile(p, grid.v)),    # per-row (rx, ry, rz), per-column s(u)
            _cross_section(p, grid.sin_u, grid.cos_u))
    x, y, z = _project_grid(grid, prof, r, rot, scale, offset)
    extra_pts, extra_col = _scene_points(p, L, rot, scale, offset, S)
    n_head = grid.index.size
    if len(extra_pts):
        x, y, z = (np.concatenate([a.ravel(), extra_pts[:, k]]) for k, a in enumerate((x, y, z)))
    index = np.arange(n_head + len(extra_pts), dtype=np.int64)
    keys = _fill_holes(_zbuffer(x, y, z, index, S), depth_gap=0.05 * scale)
    covered = keys >= 0
    seen = keys[covered] & ((1 << _INDEX_BITS) - 1)

    image = _background(p, S)
    head = seen < n_head
    colour = np.empty((len(seen), 3), np.float32)
    colour[head] = _shade(p, L, grid, prof, r, seen[head], rot)
    colour[~head] = extra_col[seen[~head] - n_head]
    image[covered] = colour
    image = _soften(image)

    # Landmarks: the same surface points through the same camera.
    lm = scene.to_camera(lm_head, rot, scale, offset)
    visible = _landmark_visibility(p, L, lm, rot, keys, scale)
    if scheme == "68":   # the jaw on the outline; the framing above used the 3D contour, so the image is the same
        lm_head, marched = _march_jaw(p, L, lm_head, rot, scale, offset)
        lm = scene.to_camera(lm_head, rot, scale, offset)
        inside = (lm[:, 0] > -0.5) & (lm[:, 0] < S - 0.5) & (lm[:, 1] > -0.5) & (lm[:, 1] < S - 0.5)
        visible = np.where(marched, inside, visible)     # on the outline: seen, unless outside the image
        if p.even_jaw:   # the lower jaw's points moved along the 3D contour: seen where nothing is in front
            lower = np.flatnonzero(~marched[:17])
            visible[lower] = _depth_visible(lm[lower], keys, scale, 0.1 * scale)
    if p.occluder:
        occ_rng = np.random.Generator(np.random.PCG64([p.texture_seed, 4]))
        image, visible = scene.occlude(image, lm[:, :2], visible, p, occ_rng)
    if p.noise > 0:
        shift = int(np.random.Generator(np.random.PCG64([p.texture_seed, 3])).integers(S * S * 3))
        image += np.float32(p.noise / 255) * _pixel_noise(S, shift)
    image = scene.camera_effects(np.clip(image, 0, 1), p)
    if scheme == "3dfaw66":
        lm, visible = convert_68_to_66(lm), visible[list(INDICES_68_TO_66)]
    lm[:, 2] -= lm[:, 2].mean()
    return face_item(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
                     torch.from_numpy(lm.astype(np.float32)), torch.from_numpy(np.ascontiguousarray(visible)),
                     (p.yaw, p.pitch, p.roll), id)


# --------------------------------------------------------------------------- dataset

class SyntheticFaces(torch.utils.data.Dataset):
    """``size`` procedural 3D faces; item ``i`` depends only on (seed, i).

    Args:
        size: number of items.
        image_size: S, images are (3, S, S) uint8.
        scheme: "3dfaw66" (66 points) or "68".
        seed: dataset seed; different seeds give different faces.

    ``ds.params(i)`` gives the SyntheticFaceParams of item i, so a notebook can
    change one factor and re-render: ``render_face(dataclasses.replace(ds.params(3), yaw=30))``.
    """

    def __init__(self, size: int, *, image_size: int = 256, scheme: str = "3dfaw66", seed: int = 0,
                 levers=DEFAULT_LEVERS):
        if size < 0:
            raise ValueError(f"SyntheticFaces: size must be >= 0, got {size}")
        if image_size < 16:
            raise ValueError(f"SyntheticFaces: image_size must be >= 16, got {image_size}")
        self.size, self.image_size, self.seed = int(size), int(image_size), int(seed)
        self.scheme = get_scheme(scheme).name
        self.levers = tuple(levers)

    def __len__(self) -> int:
        return self.size

    def params(self, index: int) -> SyntheticFaceParams:
        if not 0 <= index < self.size:
            raise IndexError(f"SyntheticFaces: index {index} out of range for {self.size} items")
        return sample_face_params(np.random.Generator(np.random.PCG64([self.seed, index])), self.levers)

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if index < 0:
            index += self.size
        return render_face(self.params(index), self.image_size, self.scheme,
                           id=f"synth-s{self.seed}-{index:06d}")


__all__ = ["DEFAULT_LEVERS", "LEVERS", "OUTLINE_JAW_POINTS", "SyntheticFaceParams", "SyntheticFaces", "render_face",
           "sample_face_params"]
