"""The checks of the course's code exercises (notebooks 01-05 and 08).

Each ``check_*`` function takes the student's function (or, for 03's upsampling, the factory
of a layer), runs it on a few seeded random inputs and one edge case, and compares the result
with fa3d's own implementation (08's intervals, which fa3d does not implement, with the
reference written here). On success it prints one line and returns the largest difference
found; otherwise it raises an :class:`AssertionError` that names the case, the expected and
obtained shape, dtype or values and, where the result matches a usual mistake, says which.
A function that still raises ``NotImplementedError`` (the student version of a notebook, made
by ``notebooks/make_assignments.py``) gives an AssertionError saying the exercise is not done.
An answer that calls fa3d's own version of what it should compute (``decode_heatmaps`` for the
decoder, ``BilinearUpsample`` for the bilinear filter, ...), under any name, is refused with an
AssertionError naming it (:func:`_forbidden`): each check lists what its exercise may not call.

Only the notebooks and the tests import this module; it imports fa3d's modules.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fa3d import metrics
from fa3d import train as fa3d_train
from fa3d.data import transforms
from fa3d.heatmaps import _peak_offset, decode_heatmaps, disk_heatmaps, disk_radius, gaussian_heatmaps, resize_points
from fa3d.models.detection import BilinearUpsample, DetectionConfig, DetectionNet
from fa3d.models.losses import StageLoss, detection_loss, z_loss
from fa3d.models.regression import Hourglass, PreActBottleneck
from fa3d.models.zregressor import ZConfig, ZRegressor

__all__ = ["check_disk_targets", "check_crop", "check_decode", "check_detection_loss", "check_bilinear_kernel",
           "check_detection_step", "check_preact_forward", "check_hourglass_forward", "check_upsample2",
           "check_z_loss", "check_z_input", "check_similarity_align", "check_cvgtce", "check_auc",
           "check_paired_interval", "check_bootstrap_interval"]


# ----------------------------------------------------------------------------- helpers

def _name(fn) -> str:
    return getattr(fn, "__name__", repr(fn))


def _call(fn, case: str, *args, **kwargs):
    """fn(*args): NotImplementedError -> "not done yet"; any other error -> which case raised it."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise AssertionError(f"the exercise is not done yet: write the body of `{_name(fn)}` "
                             "where it says YOUR CODE HERE (and delete the raise NotImplementedError())") from None
    except Exception as err:
        raise AssertionError(f"`{_name(fn)}` raised {type(err).__name__} on the case {case}: {err}") from err


def _refusal(fn, reference) -> str:
    """What the AssertionError says when the answer ``fn`` calls ``reference``."""
    owner = "fa3d's" if (getattr(reference, "__module__", None) or "").startswith("fa3d") else "the notebook's"
    what = reference.__qualname__
    runs = " (calling a module, as in `unit(x)`, runs its forward)" if what.endswith(".forward") else ""
    return (f"`{_name(fn)}` calls {owner} `{what}`{runs}, which does what this exercise asks you to write: "
            "write it yourself, without calling it")


@contextlib.contextmanager
def _forbidden(fn, *references):
    """Refuse the answer ``fn``, run in the body, if it calls one of ``references``.

    A reference is a function, a method or a class (all the methods it defines, the constructor
    among them); ``None`` is ignored. The answer is refused whatever name it reaches the reference
    by: an alias (``from fa3d.heatmaps import decode_heatmaps as d``), a module attribute
    (``H.decode_heatmaps``), ``unit(x)`` for a module's forward, or another function that calls it.
    For that the body runs under a profile hook (:func:`sys.setprofile`) that compares the code of
    every Python function called with the references' code. The first such call raises at once,
    and the block then ends with the AssertionError of :func:`_refusal`, even if the answer caught
    the first one. Nothing is patched, so the check's expected values, computed outside the block,
    and the notebook after the check use the real references."""
    codes = {}
    for reference in references:
        for member in vars(reference).values() if isinstance(reference, type) else [reference]:
            code = getattr(inspect.unwrap(getattr(member, "__func__", member)), "__code__", None)
            if code is not None:
                codes[code] = reference
    called = []

    def watch(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            called.append(codes[frame.f_code])
            raise AssertionError(_refusal(fn, called[0]))      # Python then removes the hook

    previous = sys.getprofile()
    sys.setprofile(watch)
    try:
        yield
    except Exception:
        if not called:
            raise
    finally:
        sys.setprofile(previous)
    if called:
        raise AssertionError(_refusal(fn, called[0])) from None


def _tensor(x) -> torch.Tensor | None:
    if torch.is_tensor(x):
        return x.detach()
    try:
        return torch.as_tensor(np.asarray(x))
    except Exception:
        return None


def _close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> bool:
    return a.shape == b.shape and bool(torch.isclose(a.double(), b.double(), rtol=rtol, atol=atol, equal_nan=True).all())


def _compare(fn, case: str, got, expected, *, atol: float = 1e-5, rtol: float = 1e-5, check_dtype: bool = True,
             mistakes: dict | None = None, hint: str = "") -> float:
    """Max |got - expected| (NaN where both are NaN counts as equal); AssertionError with a
    diagnosis otherwise. ``mistakes``: {description: what that mistake would return}."""
    expected = expected.detach()
    where = f"`{_name(fn)}`, case {case}"
    g = _tensor(got)
    if g is None:
        raise AssertionError(f"{where}: expected a tensor of shape {tuple(expected.shape)}, got {type(got).__name__}")
    for what, wrong in (mistakes or {}).items():
        w = _tensor(wrong)
        if w is not None and _close(g, w, atol, rtol) and not _close(w, expected, atol, rtol):
            raise AssertionError(f"{where}: your result is what {what} gives. {hint}".rstrip())
    if g.shape != expected.shape:
        raise AssertionError(f"{where}: expected shape {tuple(expected.shape)}, got {tuple(g.shape)}. {hint}".rstrip())
    if check_dtype and g.dtype != expected.dtype:
        raise AssertionError(f"{where}: expected dtype {expected.dtype}, got {g.dtype} (convert with "
                             f".to({expected.dtype}) or build it in that dtype). {hint}".rstrip())
    g64, e64 = g.double(), expected.double()
    nan_g, nan_e = torch.isnan(g64), torch.isnan(e64)
    if not torch.equal(nan_g, nan_e):
        i = tuple(int(v) for v in torch.nonzero(nan_g != nan_e)[0])
        raise AssertionError(f"{where}: NaN where there should be a number or the reverse, first at index {i} "
                             f"(expected {float(e64[i])}, got {float(g64[i])}). {hint}".rstrip())
    diff = (g64 - e64).abs().nan_to_num(0.0)
    tol = atol + rtol * e64.abs().nan_to_num(0.0)
    if bool((diff > tol).any()):
        i = tuple(int(v) for v in torch.nonzero(diff > tol)[0])
        raise AssertionError(f"{where}: shape {tuple(g.shape)} and dtype {g.dtype} are right but the values differ, "
                             f"max |got - expected| = {float(diff.max()):.3g}; first at index "
                             f"{i}: expected {float(e64[i]):.6g}, got {float(g64[i]):.6g}. {hint}".rstrip())
    return float(diff.max()) if diff.numel() else 0.0


def _done(fn, cases: int, max_diff: float) -> float:
    print(f"`{_name(fn)}` passes: {cases} cases agree with fa3d, max |difference| {max_diff:.1e}")
    return max_diff


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _isolated(check):
    """Run ``check`` on a copy of torch's global random state: building modules (the student's too)
    draws from it, and the notebook after a check must not depend on whether it passed."""
    @functools.wraps(check)
    def wrapper(fn):
        with torch.random.fork_rng(devices=[]):
            return check(fn)
    return wrapper


# ----------------------------------------------------------------------------- 01: targets and decoding

@_isolated
def check_disk_targets(fn) -> float:
    """Notebook 01 §7: ``fn(points (N, 2), size int or (H, W), radius float) -> (N, H, W) float32``
    binary disks, against :func:`fa3d.heatmaps.disk_heatmaps`."""
    g = _gen(0)
    cases = [("5 random points, 16x16 map, radius 2.5", 16 * torch.rand(5, 2, generator=g), 16, 2.5),
             ("4 random points, non-square (12, 20) map, radius 3", torch.rand(4, 2, generator=g) * torch.tensor([20.0, 12.0]),
              (12, 20), 3.0),
             ("edge case: points on pixel centres, radius exactly 2 (a pixel at distance r is inside), "
              "one point outside the map, one NaN point",
              torch.tensor([[5.0, 4.0], [0.0, 9.0], [-2.0, 3.0], [float("nan"), 2.0]]), (10, 8), 2.0)]
    worst = 0.0
    for case, pts, size, r in cases:
        expected = disk_heatmaps(pts, size, r)
        with _forbidden(fn, disk_heatmaps):
            got = _call(fn, case, pts.clone(), size, r)
        mistakes = {"a strict < r (pixels at exactly r count: <=)": disk_heatmaps(pts, size, r - 1e-4),
                    "swapping x and y (maps are (H, W) indexed [y, x])": disk_heatmaps(pts.flip(-1), size, r),
                    "pixel corners instead of centres (centres are at integers)": disk_heatmaps(pts - 0.5, size, r),
                    "using the radius as the squared radius": disk_heatmaps(pts, size, r ** 0.5)}
        worst = max(worst, _compare(fn, case, got, expected, atol=0, rtol=0, mistakes=mistakes,
                                    hint="Compare (x - px)² + (y - py)² with r² at every pixel centre; "
                                         "return .float() maps."))
    return _done(fn, len(cases), worst)


def _decode_raw(maps: torch.Tensor) -> torch.Tensor:
    """The parabola fitted to the values instead of their log (a usual mistake)."""
    N, H, W = maps.shape
    idx = maps.reshape(N, -1).argmax(-1)
    iy, ix, n = idx // W, idx % W, torch.arange(N)
    lx = [maps[n, iy, ix + d] for d in (-1, 0, 1)]
    ly = [maps[n, iy + d, ix] for d in (-1, 0, 1)]
    x = ix + (lx[0] - lx[2]) / (2 * (lx[0] - 2 * lx[1] + lx[2]))
    y = iy + (ly[0] - ly[2]) / (2 * (ly[0] - 2 * ly[1] + ly[2]))
    return torch.stack([x, y], -1).float()


@_isolated
def check_crop(fn) -> float:
    """Notebook 01 §5: ``fn(landmarks (N, 3) image px, box (x1, y1, x2, y2), size, extend) -> (A, crop
    landmarks)``: the 2x3 crop matrix of the extended face box and the landmarks in crop pixels with z
    scaled by the crop's scale, against :func:`fa3d.data.transforms.face_crop_matrix` and
    :func:`~fa3d.data.transforms.warp_landmarks`."""
    g = _gen(9)

    def face(n, centre, spread, dtype=torch.float32):
        xy = torch.tensor(centre) + spread * (torch.rand(n, 2, generator=g) - 0.5)
        return torch.cat([xy, spread / 3 * torch.randn(n, 1, generator=g)], 1).to(dtype)

    cases = [("a wide box (10, 20, 90, 70), 68 points, crop 64 px, extend 0.225", face(68, (50.0, 45.0), 60),
              (10.0, 20.0, 90.0, 70.0), 64, 0.225),
             ("a tall box (100.5, 40, 160, 150), 5 points, crop 128 px, extend 0.2", face(5, (130.0, 95.0), 50),
              (100.5, 40.0, 160.0, 150.0), 128, 0.2),
             ("edge case: float64 points, a box given as a tensor, extend 0 (the window is the box's longer side)",
              face(7, (30.0, 30.0), 20, torch.float64), torch.tensor([20.0, 18.0, 44.0, 40.0]), 96, 0.0)]
    worst, name = 0.0, _name(fn)
    for case, lm, box, size, extend in cases:
        A = transforms.face_crop_matrix(box, size, extend)
        expected = transforms.warp_landmarks(lm, A)
        with _forbidden(fn, transforms.face_crop_matrix, transforms.similarity_matrix, transforms.warp_landmarks,
                        transforms.unwarp_landmarks, transforms._centre_size, transforms.CenterCrop3D):
            got = _call(fn, case, lm.clone(), box, size, extend)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise AssertionError(f"`{name}`, case {case}: expected a pair (A, landmarks), got {type(got).__name__}")
        got_A, got_lm = got
        k = size / ((1 + extend) * max(float(box[2]) - float(box[0]), float(box[3]) - float(box[1])))
        half_off = A.clone()
        half_off[:, 2] += 0.5
        worst = max(worst, _compare(fn, case + " (the matrix A)", got_A, A, atol=1e-6, rtol=1e-6, check_dtype=False,
                                    mistakes={"mapping the centre to size / 2 (pixel centres are integers: the "
                                              "crop's centre is (size - 1) / 2)": half_off},
                                    hint="A = [[k, 0, tx], [0, k, ty]] with k = size / side, side = (1 + extend) "
                                         "* max(w, h), and t such that the box's centre lands on ((size - 1) / 2, "
                                         "(size - 1) / 2)."))
        worst = max(worst, _compare(fn, case + " (the landmarks)", got_lm, expected, atol=1e-4, rtol=1e-5,
                                    mistakes={"leaving z as it was (z is in pixels: it scales by k too)":
                                              torch.cat([expected[:, :2], lm[:, 2:]], 1),
                                              "moving z like x (z is only scaled, never shifted)":
                                              torch.cat([expected[:, :2], lm[:, 2:] * k + A[0, 2]], 1).to(lm.dtype)},
                                    hint="x, y -> A @ (x, y, 1); z -> k z; return the landmarks' dtype."))
    return _done(fn, len(cases), worst)


@_isolated
def check_decode(fn) -> float:
    """Notebook 01 §8: ``fn(heatmaps (N, H, W)) -> (N, 2) float32`` sub-pixel x, y of peaks away from
    the border, against :func:`fa3d.heatmaps.decode_heatmaps` (to 1e-3 px)."""
    g = _gen(1)
    cases = []
    for case, n, (H, W), sigma in (("8 Gaussians, 24x24, sigma 1.5", 8, (24, 24), 1.5),
                                   ("6 Gaussians, non-square (16, 30), sigma 2.5", 6, (16, 30), 2.5),
                                   ("5 narrow Gaussians (sigma 0.7), 20x20, peak 0.3", 5, (20, 20), 0.7)):
        pts = 3 + torch.rand(n, 2, generator=g) * torch.tensor([W - 7.0, H - 7.0])
        maps = gaussian_heatmaps(pts, (H, W), sigma) * (0.3 if "peak 0.3" in case else 1.0)
        cases.append((case, maps))
    on_centre = torch.tensor([[7.0, 5.0], [3.0, 9.0]])
    cases.append(("edge case: peaks exactly on pixel centres (offset 0)", gaussian_heatmaps(on_centre, (12, 14), 1.2)))
    worst = 0.0
    for case, maps in cases:
        expected = decode_heatmaps(maps)
        with _forbidden(fn, decode_heatmaps, _peak_offset):
            got = _call(fn, case, maps.clone())
        mistakes = {"fitting the parabola to the values, not to their log": _decode_raw(maps),
                    "returning (y, x) instead of (x, y)": expected.flip(-1),
                    "the plain argmax (no sub-pixel offset)": expected.round()}
        worst = max(worst, _compare(fn, case, got, expected, atol=1e-3, rtol=0, mistakes=mistakes,
                                    hint="x = argmax column + (L₋₁ − L₊₁) / (2 (L₋₁ − 2L₀ + L₊₁)) with L the log of "
                                         "the map along the peak's row (likewise y along its column)."))
    return _done(fn, len(cases), worst)


# ----------------------------------------------------------------------------- 02: detection net

@_isolated
def check_detection_loss(fn) -> float:
    """Notebook 02 §8: ``fn(logits (B, N, h, w), targets (B, N, h, w) 0/1) -> 0-d tensor``, the mean
    sigmoid cross-entropy, against :func:`fa3d.models.detection_loss`."""
    g = _gen(2)
    pts = 16 * torch.rand(2, 3, 2, generator=g)
    disks = disk_heatmaps(pts, 16, 2.5)
    big = torch.tensor([[60.0, -60.0, 60.0, -60.0]]).reshape(1, 1, 2, 2)
    cases = [("random logits (std 2) against disks, (2, 3, 16, 16)", 2 * torch.randn(2, 3, 16, 16, generator=g), disks),
             ("zero logits (the zero head): ln 2", torch.zeros(1, 2, 8, 8), disk_heatmaps(8 * torch.rand(1, 2, 2, generator=g), 8, 2.0)),
             ("edge case: logits of ±60, right and wrong (a stable loss stays finite)", big,
              torch.tensor([[1.0, 0.0, 0.0, 1.0]]).reshape(1, 1, 2, 2))]
    worst = 0.0
    for case, logits, targets in cases:
        expected = detection_loss(logits, targets)
        with _forbidden(fn, detection_loss):
            got = _call(fn, case, logits.clone(), targets.clone())
        per_pixel = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        mistakes = {"a sum instead of the mean over all pixels and maps": per_pixel.sum(),
                    "a loss with the wrong sign (it must be >= 0)": -expected,
                    "swapping the roles of logits and targets": F.binary_cross_entropy_with_logits(targets, logits.sigmoid())}
        worst = max(worst, _compare(fn, case, got, expected, atol=1e-6, rtol=1e-5, mistakes=mistakes,
                                    hint="log σ(ℓ) = F.logsigmoid(ℓ) and log(1 − σ(ℓ)) = F.logsigmoid(−ℓ) stay finite "
                                         "for large |ℓ| (log(torch.sigmoid(ℓ)) gives −inf); average over everything."))
    return _done(fn, len(cases), worst)


@_isolated
def check_bilinear_kernel(fn) -> float:
    """Notebook 02 §4: ``fn(factor) -> (k, k) float32`` bilinear filter, k = 2f - f % 2, against
    :class:`fa3d.models.detection.BilinearUpsample`'s initial weight."""
    worst = 0.0
    cases = [("factor 2 (k = 4)", 2), ("factor 4 (k = 8, the detector's)", 4), ("factor 8 (k = 16)", 8),
             ("edge case: odd factor 3 (k = 5)", 3)]
    for case, f in cases:
        expected = BilinearUpsample(1, f).weight.detach()[0, 0]
        with _forbidden(fn, BilinearUpsample):
            got = _call(fn, case, f)
        k = expected.shape[0]
        u = torch.arange(k, dtype=torch.float32)
        mistakes = {"centring the tent on k/2 instead of (k − 1)/2": torch.outer(*[(1 - (u - k / 2).abs() / f).clamp(min=0)] * 2),
                    "forgetting to divide |u − c| by f": torch.outer(*[(1 - (u - (k - 1) / 2).abs()).clamp(min=0)] * 2)}
        worst = max(worst, _compare(fn, case, got, expected, atol=1e-6, rtol=0, mistakes=mistakes,
                                    hint="k = 2f − f mod 2; t(u) = 1 − |u − (k − 1)/2| / f for u = 0..k−1; K = outer(t, t)."))
    return _done(fn, len(cases), worst)


def _tiny_detector(seed: int, num_landmarks: int = 5) -> DetectionNet:
    """A small DetectionNet in train mode whose head is random (a zero head would pass gradient to itself only)."""
    torch.manual_seed(seed)
    net = DetectionNet(DetectionConfig(layers=(1, 1, 1, 1), block="basic", width=8), num_landmarks)
    nn.init.normal_(net.head.weight, std=0.1)
    return net.train()


def _detection_step_reference(net, optimizer, images, landmarks, face_height, zero_grad: bool = True):
    """One step of the detection stage, as fa3d's StageLoss and optimizer_step take it."""
    logits = net(images)
    S, h = images.shape[-1], logits.shape[-1]
    targets = disk_heatmaps(resize_points(landmarks, S, h), h, disk_radius(face_height * h / S))
    loss = detection_loss(logits, targets)
    if zero_grad:
        optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()


def _state_vector(net: nn.Module) -> torch.Tensor:
    """Every parameter and batch-norm statistic of ``net``, flattened into one float64 vector."""
    return torch.cat([t.detach().double().flatten() for t in net.state_dict().values() if t.is_floating_point()])


@_isolated
def check_detection_step(fn) -> float:
    """Notebook 02 §9: ``fn(net, optimizer, images (B, 3, S, S), landmarks (B, N, 3) crop px, face_height (B,)
    crop px) -> loss``, one training step of the detection stage (targets -> loss -> update), against the
    step fa3d's training takes: the loss it returns and every weight and batch-norm statistic afterwards."""
    g = _gen(10)
    cases = [("SGD with momentum, 3 faces of 32 px, 5 landmarks", 3, 32, 5,
              lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), 20.0),
             ("RMSprop at the paper's detection rate 1e-3, 2 faces of 64 px, 4 landmarks", 2, 64, 4,
              lambda p: torch.optim.RMSprop(p, lr=1e-3), 40.0),
             ("edge case: 1 face (batch-norm in training mode over one crop), a small face whose disks shrink to "
              "the 1-pixel floor", 1, 32, 3, lambda p: torch.optim.SGD(p, lr=0.05), 6.0)]
    worst, name = 0.0, _name(fn)
    for i, (case, B, S, N, make_opt, height) in enumerate(cases):
        images = torch.randn(B, 3, S, S, generator=g)
        landmarks = torch.cat([S * (0.2 + 0.6 * torch.rand(B, N, 2, generator=g)), torch.randn(B, N, 1, generator=g)], 2)
        face_height = torch.full((B,), height) * (0.9 + 0.2 * torch.rand(B, generator=g))
        runs = {}
        for who in ("reference", "student", "no zero_grad"):
            net = _tiny_detector(100 + i, N)
            opt = make_opt(net.parameters())
            for p in net.parameters():                  # gradients left over from an earlier step
                p.grad = torch.full_like(p, 0.01)
            runs[who] = net, opt
        before = [p.detach().clone() for p in runs["student"][0].parameters()]
        expected_loss = _detection_step_reference(*runs["reference"], images, landmarks, face_height)
        _detection_step_reference(*runs["no zero_grad"], images, landmarks, face_height, zero_grad=False)
        with _forbidden(fn, StageLoss, fa3d_train.optimizer_step, fa3d_train.train_one_epoch,
                        _detection_step_reference):
            got_loss = _call(fn, case, *runs["student"], images.clone(), landmarks.clone(), face_height.clone())
        after = _state_vector(runs["student"][0])
        if all(torch.equal(p, q) for p, q in zip(runs["student"][0].parameters(), before)):
            raise AssertionError(f"`{name}`, case {case}: the network did not change: take the optimiser's step "
                                 "(optimizer.step()) after loss.backward()")
        got = torch.as_tensor(float(got_loss.detach() if torch.is_tensor(got_loss) else got_loss),
                              dtype=expected_loss.dtype)
        worst = max(worst, _compare(fn, case + " (the loss it returns)", got, expected_loss, atol=1e-6, rtol=1e-5,
                                    hint="logits = net(images) in training mode; disks at the logits' resolution "
                                         "(resize_points(landmarks, S, h)) with radius disk_radius(face_height * h "
                                         "/ S); the per-pixel sigmoid cross-entropy; return the loss."))
        worst = max(worst, _compare(fn, case + " (the weights and statistics after the step)", after,
                                    _state_vector(runs["reference"][0]), atol=1e-6, rtol=1e-4,
                                    mistakes={"stepping without optimizer.zero_grad() first (the gradients of an "
                                              "earlier step were added to this one's)":
                                              _state_vector(runs["no zero_grad"][0])},
                                    hint="optimizer.zero_grad(); loss.backward(); optimizer.step(), once."))
    return _done(fn, len(cases), worst)


# ----------------------------------------------------------------------------- 03: regression net

def _random_batch_norms(module: nn.Module) -> nn.Module:
    """``module`` in eval mode, without gradients, every batch norm given random scales, shifts and statistics
    (fresh ones are the identity, which would hide a batch norm used in the wrong place)."""
    for bn in (m for m in module.modules() if isinstance(m, nn.BatchNorm2d)):
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.normal_(bn.bias, std=0.5)
        bn.running_mean.normal_(std=0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return module.eval().requires_grad_(False)


def _random_unit(in_ch: int, mid: int, out_ch: int, stride: int, seed: int) -> PreActBottleneck:
    """A PreActBottleneck in eval mode with random weights and batch-norm statistics."""
    torch.manual_seed(seed)
    return _random_batch_norms(PreActBottleneck(in_ch, mid, out_ch, stride))


@_isolated
def check_preact_forward(fn) -> float:
    """Notebook 03 §1: ``fn(unit, x) -> y``, the forward of a pre-activation bottleneck from the
    unit's layers (bn1, conv1, bn2, conv2, bn3, conv3, shortcut), against ``unit(x)``."""
    g = _gen(3)
    cases = [("identity shortcut: PreActBottleneck(16, 8, 16), x (2, 16, 8, 8)", _random_unit(16, 8, 16, 1, 0),
              torch.randn(2, 16, 8, 8, generator=g)),
             ("edge case: projection shortcut, PreActBottleneck(8, 4, 12, stride=2), x (1, 8, 9, 9)",
              _random_unit(8, 4, 12, 2, 1), torch.randn(1, 8, 9, 9, generator=g))]
    worst = 0.0
    for case, unit, x in cases:
        with torch.no_grad():
            expected = unit(x)
            with _forbidden(fn, PreActBottleneck.forward):
                got = _call(fn, case, unit, x.clone())
            pre = F.relu(unit.bn1(x))
            body = unit.conv3(F.relu(unit.bn3(unit.conv2(F.relu(unit.bn2(unit.conv1(pre)))))))
            skip = x if unit.shortcut is None else unit.shortcut(pre)
            mistakes = {"a ReLU after the sum (that is the post-activation unit)": F.relu(body + skip),
                        "no skip connection": body}
            if unit.shortcut is not None:
                mistakes["projecting the raw input (the shortcut takes the pre-activated input ReLU(BN(x)))"] = \
                    body + unit.shortcut(x)
        worst = max(worst, _compare(fn, case, got, expected, atol=1e-5, rtol=1e-4, mistakes=mistakes,
                                    hint="out = ReLU(bn1(x)); skip = x, or shortcut(out) when the unit has one; "
                                         "then conv1, BN-ReLU, conv2, BN-ReLU, conv3, and add skip."))
    return _done(fn, len(cases), worst)


def _random_hourglass(depth: int, channels: int, seed: int) -> Hourglass:
    """An Hourglass in eval mode with random batch-norm statistics and non-bilinear upsampling filters."""
    torch.manual_seed(seed)
    level = Hourglass(depth, channels)
    with torch.no_grad():
        for m in level.modules():
            if isinstance(m, BilinearUpsample):
                m.weight.add_(0.2 * torch.randn_like(m.weight))   # learned: no longer the bilinear tent
    return _random_batch_norms(level)


@_isolated
def check_hourglass_forward(fn) -> float:
    """Notebook 03 §2: ``fn(level, x) -> y``, one hourglass level's forward from its modules (up1, pool, low1,
    low2: the next level or, at the bottom, residual units; low3, up2), against ``level(x)``."""
    g = _gen(11)
    cases = [("depth 1 (low2 is residual units), 4 channels, x (2, 4, 8, 8)", _random_hourglass(1, 4, 0),
              torch.randn(2, 4, 8, 8, generator=g)),
             ("depth 3 (low2 is an hourglass of depth 2), 8 channels, x (1, 8, 16, 16)", _random_hourglass(3, 8, 1),
              torch.randn(1, 8, 16, 16, generator=g)),
             ("edge case: depth 2 on non-square maps, x (2, 4, 8, 12)", _random_hourglass(2, 4, 2),
              torch.randn(2, 4, 8, 12, generator=g))]
    worst = 0.0
    for case, level, x in cases:
        with torch.no_grad():
            expected = level(x)
            with _forbidden(fn, Hourglass.forward):
                got = _call(fn, case, level, x.clone())
            low = level.low2(level.low1(level.pool(x)))
            mistakes = {"no skip branch (HG(x) = up1(x) + ...)": level.up2(level.low3(low)),
                        "leaving out low3": level.up1(x) + level.up2(low),
                        "nearest-neighbour upsampling instead of the learned up2":
                            level.up1(x) + F.interpolate(level.low3(low), scale_factor=2, mode="nearest")}
        worst = max(worst, _compare(fn, case, got, expected, atol=1e-5, rtol=1e-4, mistakes=mistakes,
                                    hint="low = low3(HG(low1(pool(x)))) where HG is your function again when "
                                         "level.low2 is an Hourglass, else level.low2 itself; y = up1(x) + up2(low)."))
    return _done(fn, len(cases), worst)


@_isolated
def check_upsample2(make_layer) -> float:
    """Notebook 03 §2: ``make_layer(channels) -> nn.Module``, the hourglass's learned x2 upsampling
    (a per-channel transposed convolution initialised to bilinear), against
    ``BilinearUpsample(channels, 2)``: weight shape, no bias, output shape and values."""
    g = _gen(4)
    cases = [("1 channel, x (1, 1, 6, 6)", 1, torch.randn(1, 1, 6, 6, generator=g)),
             ("6 channels, x (2, 6, 8, 8)", 6, torch.randn(2, 6, 8, 8, generator=g)),
             ("edge case: non-square x (1, 3, 5, 7)", 3, torch.randn(1, 3, 5, 7, generator=g))]
    worst, name = 0.0, _name(make_layer)
    for case, C, x in cases:
        with _forbidden(make_layer, BilinearUpsample):
            layer = _call(make_layer, case, C)
        if not isinstance(layer, nn.Module):
            raise AssertionError(f"`{name}`, case {case}: expected an nn.Module (e.g. nn.ConvTranspose2d), "
                                 f"got {type(layer).__name__}")
        ref = BilinearUpsample(C, 2)
        weight = getattr(layer, "weight", None)
        if weight is not None and tuple(weight.shape) != tuple(ref.weight.shape):
            raise AssertionError(f"`{name}`, case {case}: weight shape {tuple(weight.shape)}, expected "
                                 f"{tuple(ref.weight.shape)}: one 4x4 filter per channel (groups=channels)"
                                 + (", not a full C -> C deconvolution" if weight.shape[1] == C > 1 else ""))
        n_params = sum(p.numel() for p in layer.parameters())
        if n_params != 16 * C:
            raise AssertionError(f"`{name}`, case {case}: {n_params} parameters, expected 16 per channel = {16 * C} "
                                 "(kernel 4, groups=channels, bias=False)")
        with torch.no_grad():
            expected = ref(x)
            with _forbidden(make_layer, BilinearUpsample):
                got = _call(layer, case, x.clone())
        worst = max(worst, _compare(make_layer, case, got, expected, atol=1e-5, rtol=1e-5,
                                    hint="kernel 4, stride 2, padding 1 gives 2H x 2W; initialise the weight to "
                                         "the outer product of the tent t = (0.25, 0.75, 0.75, 0.25)."))
    return _done(make_layer, len(cases), worst)


# ----------------------------------------------------------------------------- 04: the Z regressor

@_isolated
def check_z_loss(fn) -> float:
    """Notebook 04 §5: ``fn(z_pred (B, N), z_true (B, N)) -> 0-d tensor``, eq. (1) with NaN true z left
    out, against :func:`fa3d.models.z_loss`, value and gradient."""
    g = _gen(5)
    zt = 5 * torch.randn(4, 66, generator=g)
    zt_nan = zt.clone()
    zt_nan[torch.rand(zt.shape, generator=g) < 0.3] = float("nan")
    cases = [("random z (4, 66), all known", 5 * torch.randn(4, 66, generator=g), zt),
             ("30 % of the true z NaN (2D-only faces)", 5 * torch.randn(4, 66, generator=g), zt_nan),
             ("edge case: no true z at all (the loss is 0)", torch.randn(2, 5, generator=g), torch.full((2, 5), float("nan")))]
    worst = 0.0
    for case, zp, zt_case in cases:
        ref_in, in_ = zp.clone().requires_grad_(True), zp.clone().requires_grad_(True)
        expected = z_loss(ref_in, zt_case)
        expected.backward()
        with _forbidden(fn, z_loss):
            got = _call(fn, case, in_, zt_case.clone())
        known = torch.isfinite(zt_case)
        sq = (zp - zt_case.nan_to_num(0.0)).square() * known
        mistakes = {"counting unknown z as zero error in the mean (divide by the number of known z)": sq.mean(),
                    "the root of the mean (eq. (1) has no square root)": expected.detach().sqrt(),
                    "a sum instead of a mean": sq.sum()}
        hint = ("mean over the known landmarks (torch.isfinite(z_true)) of (z̃ − z)²; select with a mask or "
                "nan_to_num before squaring so that no NaN enters the graph; with no known z return 0 "
                "(a mean over nothing is NaN).")
        worst = max(worst, _compare(fn, case, got, expected, atol=1e-5, rtol=1e-5, mistakes=mistakes, hint=hint))
        if not (torch.is_tensor(got) and got.requires_grad):
            raise AssertionError(f"`{_name(fn)}`, case {case}: the loss carries no gradient to z_pred "
                                 "(compute it with torch operations on z_pred, no .item() or numpy; with no known z, "
                                 "e.g. (z_pred * 0).sum())")
        grad, = torch.autograd.grad(got, in_, allow_unused=True)
        grad = torch.zeros_like(zp) if grad is None else grad
        worst = max(worst, _compare(fn, case + " (gradient w.r.t. z_pred)", grad, ref_in.grad, atol=1e-6, rtol=1e-5,
                                    hint="a NaN gradient comes from (z̃ − z)² computed with the NaN z and masked "
                                         "afterwards (torch.where passes 0 · NaN = NaN back); mask first."))
    return _done(fn, len(cases), worst)


@_isolated
def check_z_input(fn) -> float:
    """Notebook 04 §3: ``fn(images (B, 3, S, S), heatmaps (B, N, S, S), inputs) -> x``, what the Z net's
    first convolution sees for ``inputs`` in "rgb+heatmaps", "rgb", "heatmaps" (captured in
    :class:`fa3d.models.ZRegressor`'s forward)."""
    g = _gen(6)
    worst, cases = 0.0, 0
    for inputs in ("rgb+heatmaps", "rgb", "heatmaps"):
        case = f'inputs="{inputs}", images (2, 3, 32, 32), heatmaps (2, 5, 32, 32)'
        if inputs != "rgb+heatmaps":
            case = "edge case (an ablation of notebook 08): " + case
        net = ZRegressor(ZConfig(layers=(1, 1, 1, 1), block="basic", width=8, inputs=inputs), 5).eval()
        seen = []
        net.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
        images, heat = torch.randn(2, 3, 32, 32, generator=g), torch.rand(2, 5, 32, 32, generator=g)
        with torch.no_grad():
            net(images, heat)
        with _forbidden(fn, ZRegressor.forward):
            got = _call(fn, case, images.clone(), heat.clone(), inputs)
        mistakes = {"stacking the heatmaps before the RGB channels (the RGB channels come first)":
                    torch.cat([heat, images], 1)}
        worst = max(worst, _compare(fn, case, got, seen[0], atol=0, rtol=0, mistakes=mistakes,
                                    hint="stack along the channel axis (dim=1): (B, 3+N, S, S) for "
                                         "rgb+heatmaps; the other input is not used at all in the ablations."))
        cases += 1
    return _done(fn, cases, worst)


# ----------------------------------------------------------------------------- 05: metrics

def _random_rotation(dim: int, g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _similar(dst: torch.Tensor, g: torch.Generator, noise: float) -> torch.Tensor:
    """src = a random similarity of each face of dst (B, N, D) plus Gaussian noise."""
    out = []
    for y in dst:
        R, s = _random_rotation(y.shape[-1], g), 0.5 + torch.rand((), generator=g, dtype=torch.float64)
        t = 20 * torch.randn(y.shape[-1], generator=g, dtype=torch.float64)
        out.append(s * y @ R.T + t + noise * torch.randn(y.shape, generator=g, dtype=torch.float64))
    return torch.stack(out)


def _align_variant(src, dst, reflect=False, transpose=False):
    """Umeyama with a usual mistake: reflections allowed, or the cross-covariance transposed."""
    mu_s, mu_d = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    xs, xd = src - mu_s, dst - mu_d
    cov = (xs.transpose(1, 2) @ xd if transpose else xd.transpose(1, 2) @ xs) / src.shape[1]
    U, S, Vh = torch.linalg.svd(cov)
    d = torch.ones_like(S)
    if not reflect:
        d[:, -1] = torch.sign(torch.linalg.det(U) * torch.linalg.det(Vh))
    R = U @ torch.diag_embed(d) @ Vh
    s = (S * d).sum(-1) / xs.square().sum((1, 2)) * src.shape[1]
    t = mu_d[:, 0] - s[:, None] * (R @ mu_s[:, 0, :, None])[..., 0]
    return s[:, None, None] * src @ R.transpose(1, 2) + t[:, None]


@_isolated
def check_similarity_align(fn) -> float:
    """Notebook 05 §2: ``fn(src (B, N, D), dst (B, N, D)) -> aligned src (B, N, D)``, D = 2 or 3, the
    least-squares similarity without reflections, against :func:`fa3d.metrics.similarity_align`."""
    g = _gen(7)
    dst3 = 30 * torch.randn(3, 20, 3, generator=g, dtype=torch.float64)
    dst2 = 30 * torch.randn(2, 15, 2, generator=g, dtype=torch.float64)
    face = 30 * torch.randn(2, 12, 3, generator=g, dtype=torch.float64)
    cases = [("3 faces of 20 points in 3D, a random similarity + 1 px noise", _similar(dst3, g, 1.0), dst3),
             ("2 faces of 15 points in 2D", _similar(dst2, g, 0.5), dst2),
             ("edge case: depth-flipped faces (z -> -z; the best fit would be a reflection)",
              face * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64), face)]
    worst = 0.0
    for case, src, dst in cases:
        expected = metrics.similarity_align(src, dst)[0]
        with _forbidden(fn, metrics.similarity_align, _align_variant):
            got = _call(fn, case, src.clone(), dst.clone())
        mistakes = {"allowing reflections (det R = −1): flip the last singular direction when det U · det V < 0":
                    _align_variant(src, dst, reflect=True),
                    "transposing the cross-covariance (use Σ = (dst − μ_dst)ᵀ (src − μ_src) / N)":
                    _align_variant(src, dst, transpose=True),
                    "returning dst itself": dst}
        worst = max(worst, _compare(fn, case, got, expected, atol=1e-6, rtol=1e-6, mistakes=mistakes,
                                    hint="per face: Σ = U D Vᵀ, S = diag(1, …, det U det V), R = U S Vᵀ, "
                                         "s = tr(DS)/σ², t = μ_dst − s R μ_src; aligned = s R src + t."))
    return _done(fn, len(cases), worst)


@_isolated
def check_cvgtce(fn) -> float:
    """Notebook 05 §2: ``fn(pred (B, N, 3), gt (B, N, 3)) -> (B,)`` CVGTCE fractions, NaN for a face
    with a non-finite coordinate, against :func:`fa3d.metrics.cvgtce`."""
    g = _gen(8)
    gt = 30 * torch.randn(4, 66, 3, generator=g, dtype=torch.float64)
    gt_nan = gt.clone()
    gt_nan[1, :, 2] = float("nan")
    cases = [("4 faces of 66 points, a random similarity + 2 px noise", _similar(gt, g, 2.0), gt),
             ("edge case: face 1 has no ground-truth z (NaN): its CVGTCE is NaN, the others are unchanged",
              _similar(gt, g, 2.0), gt_nan)]
    worst = 0.0
    for case, pred, y in cases:
        expected = metrics.cvgtce(pred, y)
        with _forbidden(fn, metrics.cvgtce):
            got = _call(fn, case, pred.clone(), y.clone())
        ok = torch.isfinite(y).all(-1).all(-1)
        safe = torch.where(ok[:, None, None], y, pred)
        aligned = metrics.similarity_align(pred, safe)[0]
        err = (aligned - safe).norm(dim=-1).mean(-1)
        nan = torch.full_like(err, float("nan"))
        mistakes = {"normalising by the 2D interocular distance (the paper's d_i is 3D)":
                    torch.where(ok, err / metrics.interocular_distance(safe, axes="xy"), nan),
                    "no alignment (that is GTE)": torch.where(ok, metrics.gte(pred, safe), nan),
                    "normalising by the prediction's interocular distance (use the ground truth's)":
                    torch.where(ok, err / metrics.interocular_distance(aligned), nan)}
        worst = max(worst, _compare(fn, case, got, expected, atol=1e-9, rtol=1e-7, mistakes=mistakes,
                                    hint="align with metrics.similarity_align(pred, gt)[0], mean point distance, "
                                         "divide by ‖gt₃₆ − gt₄₅‖ (3D); faces with a NaN: set aside, NaN out."))
    return _done(fn, len(cases), worst)


@_isolated
def check_auc(fn) -> float:
    """Notebook 05 §6: ``fn(errors (V,), max_error) -> float``, the closed-form area under the CED
    curve on [0, max_error] divided by max_error, against :func:`fa3d.metrics.auc`."""
    g = _gen(9)
    cases = [("200 errors uniform in [0, 0.2], max_error 0.1", 0.2 * torch.rand(200, generator=g, dtype=torch.float64), 0.1),
             ("50 errors, max_error 0.07", 0.05 * torch.rand(50, generator=g, dtype=torch.float64).square(), 0.07),
             ("edge case: errors 0, max_error and beyond it", torch.tensor([0.0, 0.05, 0.08, 0.3], dtype=torch.float64), 0.05)]
    worst = 0.0
    for case, e, m in cases:
        expected = torch.tensor(metrics.auc(e, m), dtype=torch.float64)
        with _forbidden(fn, metrics.auc):
            got = _call(fn, case, e.clone(), m)
        mistakes = {"no clamp at 0 (an error beyond the limit must add 0, not a negative area)": ((m - e) / m).mean(),
                    "forgetting to divide by max_error": (m - e).clamp(min=0).mean(),
                    "the CED at max_error (a fraction of images, not an area)": (e <= m).double().mean()}
        worst = max(worst, _compare(fn, case, got, expected, atol=1e-9, rtol=1e-9, check_dtype=False,
                                    mistakes=mistakes, hint="AUC = mean_i max(0, e_max − E_i) / e_max."))
    return _done(fn, len(cases), worst)


# ----------------------------------------------------------------------------- 08: paired intervals
# fa3d has no library function for these: the references are here (notebook 08's `paired`).

def _paired_reference(a, b):
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(d.mean()), float(1.96 * d.std(ddof=1) / np.sqrt(len(d)))


def _pair_cases(g):
    base = 5 + 2 * torch.randn(200, generator=g, dtype=torch.float64)
    return [("200 paired scores (b = a + 0.3 + noise)", base.numpy(), (base + 0.3 + 0.5 * torch.randn(200, generator=g,
                                                                                          dtype=torch.float64)).numpy()),
            ("40 scores, a worse than b", (base[:40] + 1).numpy(), base[:40].numpy() + np.linspace(0, 1, 40)),
            ("edge case: 2 faces", np.array([1.0, 2.0]), np.array([0.5, 2.5]))]


@_isolated
def check_paired_interval(fn) -> float:
    """Notebook 08 §3: ``fn(a (V,), b (V,)) -> (mean of a - b, half-width of its 95 % interval)``, the
    normal approximation 1.96 · std(a - b, ddof=1) / sqrt(V). Notebook 08's own ``paired``, once the
    notebook has defined it, is refused like the reference here."""
    notebook_paired = getattr(fn, "__globals__", {}).get("paired")
    worst = 0.0
    cases = _pair_cases(_gen(10))
    for case, a, b in cases:
        expected = torch.tensor(_paired_reference(a, b), dtype=torch.float64)
        with _forbidden(fn, _paired_reference, notebook_paired):
            got = _call(fn, case, a.copy(), b.copy())
        d, V = a - b, len(a)
        m = d.mean()
        mistakes = {"an unpaired interval (the faces are the same: use the per-face differences)":
                    (m, 1.96 * np.sqrt(a.var(ddof=1) / V + b.var(ddof=1) / V)),
                    "the standard deviation with ddof=0 (the sample standard deviation has ddof=1)":
                    (m, 1.96 * d.std() / np.sqrt(V)),
                    "one standard error (a 95 % interval is ±1.96 standard errors)": (m, d.std(ddof=1) / np.sqrt(V)),
                    "the standard deviation instead of the standard error (divide by sqrt(V))": (m, 1.96 * d.std(ddof=1)),
                    "b − a instead of a − b": (-m, 1.96 * d.std(ddof=1) / np.sqrt(V))}
        worst = max(worst, _compare(fn, case, got, expected, atol=1e-9, rtol=1e-9, check_dtype=False,
                                    mistakes=mistakes, hint="return (mean, half_width) of d = a − b."))
    return _done(fn, len(cases), worst)


def _bootstrap_reference(a, b, num_resamples, generator):
    d = torch.as_tensor(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    idx = torch.randint(len(d), (num_resamples, len(d)), generator=generator)
    means = d[idx].mean(1)
    return torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.float64))


@_isolated
def check_bootstrap_interval(fn) -> float:
    """Notebook 08 §3: ``fn(a, b, num_resamples, generator) -> (low, high)``, the paired bootstrap 95 %
    percentile interval of mean(a - b), resampling faces as specified in the notebook."""
    worst = 0.0
    cases = _pair_cases(_gen(11))
    for k, (case, a, b) in enumerate(cases):
        n = 500 if k == 2 else 2000
        expected = _bootstrap_reference(a, b, n, _gen(100 + k))
        with _forbidden(fn, _bootstrap_reference):
            got = _call(fn, case, a.copy(), b.copy(), n, _gen(100 + k))
        g2, q95, q90 = _gen(100 + k), torch.tensor([0.025, 0.975], dtype=torch.float64), torch.tensor([0.05, 0.95], dtype=torch.float64)
        ia, ib = (torch.randint(len(a), (n, len(a)), generator=g2) for _ in range(2))
        d = torch.as_tensor(a - b)
        mistakes = {"resampling a and b with different indices (a paired bootstrap resamples faces: "
                    "the same indices for both)": torch.quantile(torch.as_tensor(a)[ia].mean(1)
                                                                 - torch.as_tensor(b)[ib].mean(1), q95),
                    "the 5 % and 95 % quantiles (a 95 % interval leaves 2.5 % on each side)":
                    torch.quantile(d[ia].mean(1), q90)}
        worst = max(worst, _compare(fn, case, got, expected, atol=1e-9, rtol=1e-9, check_dtype=False,
                                    mistakes=mistakes, hint="idx = torch.randint(V, (num_resamples, V), generator=generator) "
                                         "once; means = d[idx].mean(1) with d = a − b as a float64 tensor; "
                                         "torch.quantile(means, [0.025, 0.975])."))
    return _done(fn, len(cases), worst)
