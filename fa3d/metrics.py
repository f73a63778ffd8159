"""Evaluation metrics: GTE and CVGTCE (paper §3), AFLW2000-3D NME, CED/AUC.

Landmarks are (B, N, 3) or (N, 3) tensors (numpy arrays are converted) in pixels.
Per-image metrics return (B,), or a 0-d tensor for an unbatched (N, 3) input.
Errors are **fractions** (0.05 = 5 %) everywhere except the summaries of `score` and `summarize`, in percent.

Normaliser of GTE and CVGTCE (our documented convention; the official 3DFAW
evaluation code is not public): the 3D distance between the ground-truth outer
eye corners (the scheme's ``outer_eye_corners``, 0-based 36 and 45 in both
schemes; ``scheme=None`` finds the scheme from N), or their 2D distance where the
ground truth has no z (z is NaN or there are only two columns). The normaliser
is the same whichever axes the error is measured on: GTE "xy" and GTE "z" are
both divided by the 3D interocular distance.

:func:`score` computes every number of a set of predictions once: ``fa3d evaluate``
writes them and the report draws from them.
"""
from __future__ import annotations

import numpy as np
import torch

from fa3d.data.schemes import LandmarkScheme, get_scheme, scheme_for_points

_AXES = {"xy": [0, 1], "xyz": [0, 1, 2], "x": [0], "y": [1], "z": [2]}
#: The axis sets of GTE, in the order of the paper's Fig. 3 and Table 3.
ERROR_AXES = tuple(_AXES)
#: The metric keys of :func:`summarize`'s dict (all in percent), in its order: GTE on the
#: axes xy, xyz, x, y, z, then CVGTCE. The single table of metric names: ``fa3d evaluate``
#: (metrics.json, its printed table) and :mod:`fa3d.course.report` iterate over it.
METRIC_KEYS = (*(f"gte_{a}" for a in ERROR_AXES), "cvgtce")
#: The AFLW2000-3D protocol's |yaw| bins in degrees (3DDFA's protocol: Zhu et al. 2016).
YAW_BINS = ((0, 30), (30, 60), (60, 90))
#: Published AFLW2000-3D balanced NME (%, mean of the three yaw-bin means), as their papers report them:
#: 3D-FAN (Bulat & Tzimiropoulos, ICCV 2017), 3DDFA-V2 (Guo et al., ECCV 2020), SynergyNet (Wu et al., 3DV 2021).
PUBLISHED_AFLW2000 = {"3D-FAN": 3.76, "3DDFA-V2": 3.51, "SynergyNet": 3.41}
#: The 300-W protocol (Sagonas et al., IMAVIS 2016): NME by the 2D outer-eye-corner distance, the failure
#: rate above 10 % of it, and the AUC of its cumulative error curve up to 8 % (the same limit for every model).
W300_FAILURE_AT, W300_AUC_LIMIT = 0.10, 0.08
#: 300-W's named test subsets, by the folders of its official layout (lfpw/, helen/ with trainset/ and testset/,
#: ibug/, afw/; data_scripts/prepare_ibug_300w.py). Faces from any other folder are never in them.
W300_SUBSETS = {"common": ("lfpw/testset", "helen/testset"), "challenging": ("ibug",),
                "full": ("lfpw/testset", "helen/testset", "ibug")}
#: Published 300-W NME (%, by the outer-eye-corner distance), as their papers report them.
PUBLISHED_300W = {"Wood et al. 2021, synthetic faces only": {"common": 3.09}}


def _points(x) -> tuple[torch.Tensor, bool]:
    """Return (B, N, D) floating tensor and whether the input had no batch dim."""
    x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
    if not x.is_floating_point():
        x = x.float()
    if x.dim() not in (2, 3):
        raise ValueError(f"expected landmarks of shape (N, D) or (B, N, D), got {tuple(x.shape)}")
    return (x[None], True) if x.dim() == 2 else (x, False)


def _pair(pred, gt):
    pred, single = _points(pred)
    gt, _ = _points(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred and gt shapes differ: {tuple(pred.shape)} vs {tuple(gt.shape)}")
    dtype = torch.promote_types(pred.dtype, gt.dtype)
    return pred.to(dtype), gt.to(dtype), single


def _out(x: torch.Tensor, single: bool) -> torch.Tensor:
    return x[0] if single else x


def interocular_distance(gt, scheme: str | LandmarkScheme | None = None, axes: str = "xyz") -> torch.Tensor:
    """Distance between the ground-truth outer eye corners, (B,) pixels.

    scheme: "68", "3dfaw66" or a LandmarkScheme; None: the scheme with gt's N points.
    axes: "xyz" (the convention of GTE/CVGTCE) or "xy". With "xyz", an image whose
    eye-corner z is NaN (or a 2-column input) falls back to the 2D distance.
    Note `gte` always uses the "xyz" normaliser, whatever axes the error is on.
    """
    gt, single = _points(gt)
    i, j = (scheme_for_points(gt.shape[1]) if scheme is None else get_scheme(scheme)).outer_eye_corners
    if axes not in ("xyz", "xy"):
        raise ValueError(f"interocular axes must be 'xyz' or 'xy', got {axes!r}")
    diff = gt[:, i] - gt[:, j]
    d2 = diff[:, :2].square().sum(-1)
    if axes == "xyz" and gt.shape[-1] > 2:
        dz2 = diff[:, 2].square()
        d2 = d2 + torch.where(torch.isnan(dz2), torch.zeros_like(dz2), dz2)
    return _out(d2.sqrt(), single)


def gte(pred, gt, axes: str = "xyz", scheme=None) -> torch.Tensor:
    """Ground Truth Error, paper eq. (2): mean_n ||pred_n - gt_n|| / d_interocular, (B,) fraction.

    The Euclidean error is restricted to `axes` in {"xyz", "xy", "x", "y", "z"};
    the normaliser is always the 3D (2D if no z) interocular distance of gt.
    An error on z where gt z is NaN is NaN.
    """
    if axes not in _AXES:
        raise ValueError(f"axes must be one of {sorted(_AXES)}, got {axes!r}")
    pred, gt, single = _pair(pred, gt)
    cols = _AXES[axes]
    err = (pred[..., cols] - gt[..., cols]).norm(dim=-1).mean(-1)
    return _out(err / interocular_distance(gt, scheme), single)


def similarity_align(src, dst):
    """Least-squares similarity (Umeyama 1991) mapping src onto dst, reflections excluded.

    src, dst: (B, N, D) or (N, D), D = 2 or 3. Finds s, R (det R = +1), t minimising
    sum_n ||dst_n - (s R src_n + t)||^2.
    Returns aligned_src (B, N, D), scale (B,), R (B, D, D), t (B, D) (unbatched if the input was).
    Degenerate src (all points equal) gives scale 0: every point maps to dst's centroid.
    Computed in float64, returned in the inputs' dtype.
    """
    src, dst, single = _pair(src, dst)
    dtype, n = src.dtype, src.shape[1]
    src64, dst64 = src.double(), dst.double()
    mu_s, mu_d = src64.mean(1, keepdim=True), dst64.mean(1, keepdim=True)
    xs, xd = src64 - mu_s, dst64 - mu_d
    var_s = xs.square().sum((1, 2)) / n
    cov = xd.transpose(1, 2) @ xs / n                      # (B, D, D)
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.ones_like(S)
    d[:, -1] = torch.sign(torch.linalg.det(U) * torch.linalg.det(Vh))  # -1 would be a reflection
    R = U @ torch.diag_embed(d) @ Vh
    scale = torch.where(var_s > 0, (S * d).sum(-1) / var_s.clamp_min(1e-300), torch.zeros_like(var_s))
    t = mu_d[:, 0] - scale[:, None] * (R @ mu_s[:, 0, :, None])[..., 0]
    aligned = scale[:, None, None] * src64 @ R.transpose(1, 2) + t[:, None]
    outs = (aligned, scale, R, t)
    return tuple(_out(o.to(dtype), single) for o in outs)


def cvgtce(pred, gt, scheme=None) -> torch.Tensor:
    """Cross View Ground Truth Consistency Error, paper eq. (3)-(4), (B,) fraction.

    pred is similarity-aligned onto gt (s, R, t by least squares, no reflection),
    then GTE over xyz. Images with a non-finite coordinate (e.g. gt without z) get NaN.
    """
    pred, gt, single = _pair(pred, gt)
    ok = torch.isfinite(pred).all(-1).all(-1) & torch.isfinite(gt).all(-1).all(-1)
    zero = torch.zeros_like(pred)
    aligned = similarity_align(torch.where(ok[:, None, None], pred, zero),
                               torch.where(ok[:, None, None], gt, zero))[0]
    err = gte(aligned, gt, "xyz" if gt.shape[-1] == 3 else "xy", scheme)
    return _out(torch.where(ok, err, torch.full_like(err, float("nan"))), single)


def nme_bbox(pred, gt) -> torch.Tensor:
    """AFLW2000-3D protocol NME, (B,) fraction.

    Mean 2D (x, y) point error over all N points divided by sqrt(w * h) of the tight
    box of the N ground-truth points (z is ignored).
    """
    pred, gt, single = _pair(pred, gt)
    xy = gt[..., :2]
    wh = xy.amax(1) - xy.amin(1)                           # (B, 2)
    err = (pred[..., :2] - xy).norm(dim=-1).mean(-1)
    return _out(err / (wh[:, 0] * wh[:, 1]).sqrt(), single)


def _errors(errors) -> torch.Tensor:
    """Any 1-D-able sequence of numbers -> float64 (K,) tensor."""
    return torch.as_tensor(np.asarray(errors) if not torch.is_tensor(errors) else errors).detach().cpu().double().flatten()


def yaw_binned_nme(errors, yaw_deg, bins=YAW_BINS) -> dict:
    """Per-yaw-bin mean error (AFLW2000-3D protocol).

    errors, yaw_deg: (B,). |yaw| is used. Bin k holds lo_k < |yaw| <= hi_k, except that
    the first bin also holds its lower edge ([0, 30], (30, 60], (60, 90] by default) and
    the last bin also takes every |yaw| beyond its upper edge (e.g. 95 deg -> (60, 90]).
    Returns {"bins", "means", "counts" (lists, one per bin; an empty bin's mean is NaN),
    "balanced": mean of the non-empty bin means, "mean": plain mean over all images}.
    Raises ValueError on a NaN yaw (unknown pose cannot be binned).
    """
    errors, yaw = _errors(errors), _errors(yaw_deg)
    if errors.shape != yaw.shape:
        raise ValueError(f"errors and yaw_deg differ in length: {errors.numel()} vs {yaw.numel()}")
    if torch.isnan(yaw).any():
        raise ValueError("yaw_binned_nme: some yaw angles are NaN (unknown pose); drop those images first")
    yaw = yaw.abs()
    highs = torch.tensor([hi for _, hi in bins], dtype=torch.float64)
    # index of the first bin whose upper edge is >= |yaw|; beyond the last edge -> last bin
    idx = torch.searchsorted(highs, yaw, side="left").clamp_max(len(bins) - 1)
    means, counts = [], []
    for k in range(len(bins)):
        e = errors[idx == k]
        counts.append(int(e.numel()))
        means.append(float(e.mean()) if e.numel() else float("nan"))
    filled = [m for m, c in zip(means, counts) if c > 0]
    return {
        "bins": [tuple(b) for b in bins],
        "means": means,
        "counts": counts,
        "balanced": float(np.mean(filled)) if filled else float("nan"),
        "mean": float(errors.mean()) if errors.numel() else float("nan"),
    }


def ced(errors, thresholds) -> torch.Tensor:
    """Cumulative error distribution (paper Fig. 3): fraction of images with error <= t, per threshold."""
    errors, t = _errors(errors), _errors(thresholds)
    return (errors[None, :] <= t[:, None]).double().mean(1)


def auc(errors, max_error: float, num_steps: int | None = None) -> float:
    """Area under the CED curve on [0, max_error], divided by max_error (so in [0, 1]).

    Exact by default: the CED is a step function, and its integral is
    mean_i max(0, max_error - e_i). With `num_steps`, the CED is instead sampled at
    num_steps evenly spaced thresholds and integrated with the trapezoid rule
    (what many face-alignment codebases do; it converges to the exact value).
    """
    errors = _errors(errors)
    if num_steps is None:
        return float((max_error - errors).clamp_min(0).mean() / max_error)
    t = torch.linspace(0, max_error, num_steps, dtype=torch.float64)
    return float(torch.trapezoid(ced(errors, t), t) / max_error)


def failure_rate(errors, threshold: float) -> float:
    """Fraction of images with error > threshold."""
    return float((_errors(errors) > threshold).double().mean())


def nme_eyes(pred, gt, scheme=None) -> torch.Tensor:
    """300-W's NME, (B,) fraction: the mean 2D point error divided by the 2D distance between the
    ground-truth outer eye corners (unlike :func:`gte`, 2D even where the ground truth has z)."""
    pred, gt, single = _pair(pred, gt)
    return _out(_point_errors_eyes(pred, gt, scheme).mean(-1), single)


def _point_errors_eyes(pred, gt, scheme) -> torch.Tensor:
    """(B, N) 2D point errors divided by the ground truth's outer-eye-corner distance."""
    return (pred[..., :2] - gt[..., :2]).norm(dim=-1) / interocular_distance(gt, scheme, "xy")[..., None]


def region_errors(pred, gt, scheme=None) -> dict[str, torch.Tensor]:
    """Where a face's error lies: per coarse group of the scheme (jaw, brows, nose, eyes, lips), (B,)
    fractions: the mean 2D error of the group's points divided by the outer-eye-corner distance (300-W's
    normaliser, :func:`nme_eyes`; the groups' errors weighted by their point counts give it back)."""
    pred, gt, single = _pair(pred, gt)
    s = get_scheme(scheme) if scheme is not None else scheme_for_points(gt.shape[-2])
    err = _point_errors_eyes(pred, gt, s)
    out = {}
    for group, idx in s.group_points().items():
        out[group] = _out(err[..., idx].mean(-1), single)
    return out


def face_errors(pred, gt, scheme=None) -> dict[str, torch.Tensor]:
    """Every per-face error, (B,) fractions: GTE on each axis set of :data:`ERROR_AXES` ("xy", "xyz",
    "x", "y", "z"), "cvgtce", "nme_bbox" and "nme_eyes"."""
    out = {a: gte(pred, gt, a, scheme) for a in ERROR_AXES}
    out["cvgtce"] = cvgtce(pred, gt, scheme)
    out["nme_bbox"] = nme_bbox(pred, gt)
    out["nme_eyes"] = nme_eyes(pred, gt, scheme)
    return out


def w300_groups(ids) -> dict[str, list[int]]:
    """Which faces each row of the 300-W table holds, from face ids ``<folder>/<name>``: "all", then
    300-W's named subsets (:data:`W300_SUBSETS`) where the official layout's folders are present, else one
    row per folder (so a validation split of training folders is never labelled "common")."""
    folders = [str(i).rpartition("/")[0] for i in ids]
    groups = {"all": list(range(len(folders)))}
    named = {name: [k for k, f in enumerate(folders) if f in members] for name, members in W300_SUBSETS.items()}
    if any(named.values()):
        return {**groups, **{name: faces for name, faces in named.items() if faces}}
    per_folder = {f: [k for k, g in enumerate(folders) if g == f] for f in sorted(set(folders))}
    return {**groups, **per_folder} if len(per_folder) > 1 else groups


def w300_protocol(errors, groups: dict[str, list[int]]) -> dict[str, dict]:
    """The 300-W table from :func:`nme_eyes` errors (V,): per group of :func:`w300_groups`, "nme" and
    "failure_rate" in percent, "auc" in [0, 1] (:data:`W300_FAILURE_AT`, :data:`W300_AUC_LIMIT`), "num_images"."""
    errors = _errors(errors)
    return {name: {"nme": 100 * float(errors[faces].mean()),
                   "failure_rate": 100 * failure_rate(errors[faces], W300_FAILURE_AT),
                   "auc": auc(errors[faces], W300_AUC_LIMIT), "num_images": len(faces)}
            for name, faces in groups.items() if faces}


def _binned_percent(errors, yaw) -> dict:
    """:func:`yaw_binned_nme` in percent, JSON-friendly."""
    binned = yaw_binned_nme(errors, yaw)
    return {"bins": [list(b) for b in binned["bins"]], "counts": binned["counts"],
            "means": [100 * m for m in binned["means"]], "balanced": 100 * binned["balanced"],
            "mean": 100 * binned["mean"]}


def score(pred, gt, yaw_deg=None, scheme=None, ids=None) -> dict:
    """Every number of one set of predictions, computed once: ``fa3d evaluate`` prints and writes
    them, the report and its figures draw from them.

    pred, gt: (V, N, 3) pixels (a gt without z carries NaN z); yaw_deg: (V,) degrees (NaN or None:
    unknown). Returns {"errors": :func:`face_errors` (V,) fractions; "summary": their means in
    **percent**, keys :data:`METRIC_KEYS` then num_images (NaN where the ground truth has no z);
    "axes": "xyz", or "xy" where some ground-truth z is unknown (the GTE that ranks the faces);
    "yaw_known": how many faces have a yaw; when some do, "yaw": {"gte_<axes>", "nme_bbox"}:
    :func:`yaw_binned_nme` of their errors in percent (:data:`YAW_BINS`); with 68 points,
    "protocol": the AFLW2000-3D protocol in percent: "nme" over all faces, per |yaw| bin "means"
    and "counts", "balanced" (mean of the non-empty bin means), "yaw_known", "num_images"; with 68
    points and face ``ids`` (``<folder>/<name>``), "w300": :func:`w300_protocol` per :func:`w300_groups` and
    "regions": the mean :func:`region_errors` per group of points, in percent}.
    """
    pred, gt, _ = _pair(pred, gt)
    errors = face_errors(pred, gt, scheme)
    n = len(gt)
    yaw = torch.full((n,), float("nan"), dtype=torch.float64) if yaw_deg is None else _errors(yaw_deg)
    known = ~torch.isnan(yaw)
    axes = "xyz" if gt.shape[-1] == 3 and torch.isfinite(gt[..., 2]).all() else "xy"
    summary = {k: 100 * float(errors[k.removeprefix("gte_")].mean()) for k in METRIC_KEYS}
    out = {"errors": errors, "summary": {**summary, "num_images": n}, "axes": axes, "yaw_known": int(known.sum())}
    if known.any():
        out["yaw"] = {key: _binned_percent(errors[e][known], yaw[known])
                      for key, e in ((f"gte_{axes}", axes), ("nme_bbox", "nme_bbox"))}
    if gt.shape[1] == 68:
        nan, k = float("nan"), len(YAW_BINS)
        binned = out["yaw"]["nme_bbox"] if known.any() else {"counts": [0] * k, "means": [nan] * k, "balanced": nan}
        out["protocol"] = {"nme": 100 * float(_errors(errors["nme_bbox"]).mean()), "bins": [list(b) for b in YAW_BINS],
                           "counts": binned["counts"], "means": binned["means"], "balanced": binned["balanced"],
                           "yaw_known": out["yaw_known"], "num_images": n}
        if ids is not None:
            out["w300"] = w300_protocol(errors["nme_eyes"], w300_groups(ids))
            out["regions"] = {g: 100 * float(e.mean()) for g, e in region_errors(pred, gt, scheme).items()}
    return out


def summarize(pred, gt, scheme=None) -> dict:
    """Paper §3 numbers in **percent** (means over images) + num_images: :func:`score`'s "summary".

    pred, gt: (B, N, 3) or (N, 3); a gt without z carries NaN z (fa3d convention).
    Keys: :data:`METRIC_KEYS` (gte_xy, gte_xyz, gte_x, gte_y, gte_z, cvgtce), then num_images.
    Entries needing z are NaN where the ground truth has no z.
    """
    return score(pred, gt, scheme=scheme)["summary"]
