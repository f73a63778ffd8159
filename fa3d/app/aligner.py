"""``FaceAligner``: photos in, 3D landmarks out, batched. What ``fa3d predict`` and the notebooks call.

    fa = FaceAligner("pretrained", device="cuda")        # or a training run's folder
    fa.landmarks("photo.jpg")                             -> [(N, 3) array per face]
    fa.landmarks(["a.jpg", "b.jpg"], boxes=[[box], None]) -> per image, [(N, 3) array per face]
    fa.predict(images)                                    -> the same as ``Face`` records: landmarks,
                                                             box, score, which detector found it

The data flow is the paper's at test time: image -> face box -> crop -> cascade -> landmarks, then
mapped back to the image (x, y in image pixels, z in pixels, larger = closer, zero mean per face).
Every face of every image in a group of ``batch_size`` faces goes through the cascade together, and
the crops are warped on the cascade's device. Face boxes come from :mod:`fa3d.app.face_boxes` unless given.
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from ..data.item import landmark_box
from ..data.readers import read_image
from ..env import keep_freed_memory as keep_memory
from ..env import resolve_device
from ..precision import choose_precision
from ..predict import predict_faces
from ..runs import CHECKPOINT_NAME, load_run, resolve_run
from .face_boxes import get_detector

#: Re-crops of a detector's box: it is framed unlike the landmark boxes the cascade was trained on
#: (Haar's box holds the forehead and cuts the jaw), so the face is cropped again around the landmarks
#: just predicted. Measured on the dev photos: from a box moved up by a fifth of the face, NME
#: 7.8 -> 4.7 % (lenna), 8.0 -> 4.3 % (takeo) after two; it can also drift on a face the model fits
#: badly (einstein), so a box the user gives is used as it is (taken to be the landmarks' box).
REFINE_STEPS = 2


class BoxError(ValueError):
    """A face box that cannot be cropped: not four finite numbers, empty or inverted, or outside the image."""


@dataclass
class Face:
    """One face of one image: ``landmarks`` float32 (N, 3) in image pixels, the ``box`` (x1, y1, x2, y2)
    it was first cropped from, the detector's ``score`` (None for a given box), ``source`` ("given"
    or the detector's name) and the re-crops made around its own landmarks (``refine_steps``)."""
    landmarks: np.ndarray
    box: tuple[float, float, float, float]
    score: float | None
    source: str
    refine_steps: int = 0


@dataclass
class _Track:
    """A face on its way through the cascade: its uint8 (3, H, W) ``image`` on the cascade's device, the
    ``box`` (4,) float64 of its next crop, its ``last`` round and its ``landmarks`` (N, 3) float64 so far."""
    image: torch.Tensor
    box: torch.Tensor
    last: int
    landmarks: torch.Tensor | None = None


def as_image(image, name: str = "image") -> torch.Tensor:
    """A uint8 (3, H, W) RGB tensor from a path, a PIL image, an (H, W, 3) / (H, W) uint8 array (RGB,
    as face-alignment and PIL give them) or a (3, H, W) uint8 tensor. Files are turned upright by
    their EXIF orientation, as viewers show them."""
    if isinstance(image, (str, Path)):
        return read_image(image, exif_transpose=True)
    if type(image).__module__.startswith("PIL."):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
            raise ValueError(f"{name}: expected a uint8 (H, W, 3) RGB or (H, W) grey array, "
                             f"got {image.dtype} {image.shape}")
        image = np.repeat(image[..., None], 3, 2) if image.ndim == 2 else image[..., :3]
        copy = np.array(image, dtype=np.uint8)   # a copy: the caller keeps theirs
        return _not_empty(torch.from_numpy(copy).permute(2, 0, 1).contiguous(), name)
    if isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.dim() == 3 and image.shape[0] == 3:
        return _not_empty(image, name)
    raise ValueError(f"{name}: expected an image path, a PIL image, a uint8 (H, W, 3) array or a uint8 "
                     f"(3, H, W) tensor, got {type(image).__name__} {getattr(image, 'shape', '')}")


def _not_empty(image: torch.Tensor, name: str) -> torch.Tensor:
    if image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"{name}: the image is empty ({image.shape[2]} x {image.shape[1]} pixels)")
    return image


def check_box(box, width: int, height: int, name: str = "image") -> tuple[float, float, float, float]:
    """``box`` as four floats (x1, y1, x2, y2), or BoxError naming the image and the problem."""
    try:
        x1, y1, x2, y2 = (float(v) for v in np.asarray(box, dtype=np.float64).reshape(4))
    except (TypeError, ValueError):
        raise BoxError(f"{name}: a face box is four numbers x1 y1 x2 y2, got {box!r}") from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise BoxError(f"{name}: face box {box!r} is not finite")
    if not (x2 > x1 and y2 > y1):
        raise BoxError(f"{name}: face box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) is empty or inverted "
                       f"(it needs x2 > x1 and y2 > y1)")
    if x2 <= -0.5 or y2 <= -0.5 or x1 >= width - 0.5 or y1 >= height - 0.5:
        raise BoxError(f"{name}: face box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies wholly outside the "
                       f"{width} x {height} image")
    return x1, y1, x2, y2


def _is_one_image(images) -> bool:
    if isinstance(images, (str, Path)) or type(images).__module__.startswith("PIL."):
        return True
    if isinstance(images, np.ndarray):
        return images.ndim in (2, 3)
    if isinstance(images, torch.Tensor):
        return images.dim() == 3
    return False


class FaceAligner:
    """The trained cascade of a run, applied to photographs.

    Args:
        run: "pretrained" (the model shipped with fa3d), "pretrained-v1" (the one before it) or a training run's folder.
        device: "auto" (CUDA when there is one), "cpu", "cuda", "cuda:1", ...
        detector: "auto", "yunet", "dlib" or "haar" (:func:`fa3d.app.face_boxes.get_detector`), or any callable
            image -> list of :class:`fa3d.app.face_boxes.Detection`; made on first use, so given boxes need none.
        flip: test-time mirroring (:func:`fa3d.predict.predict_crops`), on by default.
        scales: crop scales averaged in the last crop (:func:`fa3d.predict.predict_faces`); the default
            (1.0,) is one crop; :data:`fa3d.predict.MULTI_SCALE` averages three (3x the time).
        refine: re-crops around the predicted landmarks; None: REFINE_STEPS for detected boxes, 0 for
            given boxes.
        batch_size: faces per cascade batch (and per group of images read at once).
        channels_last: convolutions in channels_last layout; None: on CUDA only.
        precision: "auto" (bf16 / fp16 autocast on CUDA by compute capability, fp32 on the CPU),
            "bf16", "fp16" or "fp32" (:mod:`fa3d.precision`).
        backend: what runs the cascade: "torch", "onnxruntime" (the exported graph,
            :class:`fa3d.app.export.OnnxCascade`; CPU, fp32) or "auto": onnxruntime on the CPU when it and
            onnx are installed (the same landmarks, faster: docs/speed.md), else torch. ``self.backend`` says which.
        keep_freed_memory: on the CPU, let glibc keep freed activations for the next batch instead of
            handing them back to the system (:func:`fa3d.env.keep_freed_memory`; large batches then run no
            slower per face than single faces). It is process-wide and the process keeps its peak memory;
            False leaves the allocator alone.
    """

    def __init__(self, run="pretrained", device: str = "auto", *, detector="auto", flip: bool = True,
                 scales=(1.0,), refine: int | None = None, batch_size: int = 32, channels_last: bool | None = None,
                 precision: str = "auto", backend: str = "auto", keep_freed_memory: bool = True, log=print):
        if refine is not None and refine < 0:
            raise ValueError(f"refine (fa3d predict --refine) must be 0 or more re-crops, got {refine}")
        if batch_size < 1:
            raise ValueError(f"batch_size (fa3d predict --batch-size) must be at least 1, got {batch_size}")
        self.device = resolve_device(device)
        self.precision = choose_precision(precision, self.device)[0]
        self.run_name = str(run)
        loaded = load_run(resolve_run(run), self.device)
        self.cascade, self.image_size, self.scheme = loaded.cascade, loaded.image_size, loaded.scheme
        if channels_last if channels_last is not None else self.device.type == "cuda":
            self.cascade.to_channels_last()
        self.backend = self._choose_backend(backend)
        if self.backend == "onnxruntime":
            from .export import OnnxCascade
            self.cascade = OnnxCascade(self.cascade, self.image_size, checkpoint=resolve_run(run) / CHECKPOINT_NAME,
                                       threads=torch.get_num_threads())
        if keep_freed_memory and self.device.type == "cpu":
            keep_memory()
        self.num_landmarks = self.cascade.num_landmarks
        self.flip, self.refine, self.batch_size, self.log = flip, refine, batch_size, log
        self.scales = tuple(float(x) for x in scales)
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"scales (fa3d predict --scales) must be positive crop-side factors, got {scales}")
        self._detector = detector

    def _choose_backend(self, backend: str) -> str:
        if backend not in ("auto", "torch", "onnxruntime"):
            raise ValueError(f"backend must be 'auto', 'torch' or 'onnxruntime', got {backend!r}")
        onnx_ok = self.device.type == "cpu" and self.precision == "fp32"
        if backend == "onnxruntime" and not onnx_ok:
            raise ValueError(f"the onnxruntime backend runs fp32 on the CPU, not {self.precision} on {self.device}")
        if backend == "auto":
            backend = "onnxruntime" if onnx_ok and all(
                importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime")) else "torch"
        return backend

    @property
    def detector(self):
        """The face detector, made on first use."""
        if isinstance(self._detector, str):
            self._detector = get_detector(self._detector, log=self.log)
        return self._detector

    def detect(self, image) -> list:
        """The faces the detector finds in one image: [Detection(box, score)], best first."""
        return self.detector(as_image(image))

    def landmarks(self, images, boxes=None) -> list:
        """(N, 3) float32 arrays in image pixels: for one image, one per face; for a sequence of
        images, a list per image. ``boxes``: faces' boxes (x1, y1, x2, y2) instead of the detector's,
        a list for one image or a list per image (None in it: detect in that image)."""
        result = self.predict(images, boxes)
        return [f.landmarks for f in result] if _is_one_image(images) else [[f.landmarks for f in r] for r in result]

    def predict(self, images, boxes=None) -> list:
        """Like :meth:`landmarks`, with a :class:`Face` (landmarks, box, score, source) per face."""
        if _is_one_image(images):
            return next(self.iter_predict([images], None if boxes is None else [boxes]))[1]
        return [faces for _, faces in self.iter_predict(images, boxes)]

    def iter_predict(self, images: Iterable, boxes=None, names=None) -> Iterator[tuple[torch.Tensor, list[Face]]]:
        """(image tensor, faces) per image, in order, reading and predicting ``batch_size`` faces'
        worth of images at a time (a folder of thousands is never all in memory). ``names``: what
        messages call each image (default: its path, else "image i"). A given box that is not a box
        is a :class:`BoxError`; a detector's box that is not (empty, or wholly outside the image) is
        skipped, said through ``log``."""
        if isinstance(images, torch.Tensor):
            images = list(images.unbind(0))
        elif images is None or isinstance(images, (str, bytes)) or not isinstance(images, Iterable):
            raise ValueError(f"images: expected an image (path, PIL image, array or tensor) or a sequence of "
                             f"them, got {type(images).__name__}")
        images = list(images)
        if boxes is not None and len(boxes) != len(images):
            raise ValueError(f"boxes: one entry per image expected, got {len(boxes)} for {len(images)} images")
        group, faces_in_group = [], 0
        for i, image in enumerate(images):
            name = names[i] if names is not None else str(image) if isinstance(image, (str, Path)) else f"image {i}"
            tensor = as_image(image, name)
            H, W = tensor.shape[-2:]
            given = None if boxes is None else boxes[i]
            if given is not None:    # found: (box, score, source) per face
                found = [(check_box(b, W, H, name), None, "given") for b in given]
            else:
                found = self._detected(tensor, name)
            group.append((tensor, found))
            faces_in_group += len(found)
            if faces_in_group >= self.batch_size:
                yield from self._align_group(group)
                group, faces_in_group = [], 0
        yield from self._align_group(group)

    def _detected(self, image: torch.Tensor, name: str) -> list:
        """The detector's faces as (box, score, source), leaving out (and saying) boxes that are not boxes."""
        source, found = getattr(self.detector, "name", "detector"), []
        for d in self.detector(image):
            try:
                found.append((check_box(d.box, image.shape[2], image.shape[1], name), float(d.score), source))
            except BoxError as err:
                self.log(f"skipped a face the {source} detector gave: {err}")
        return found

    @torch.no_grad()
    def _align_group(self, group):
        """Predict every face of a group of (image, [(box, score, source)]) in batches, and yield
        (image, [Face]). Each face is cropped from its box, then re-cropped around the landmarks
        just predicted, in rounds: every face still going is in the round's batches. The rounds
        before a face's last only place its next crop, so they use one scale; the last uses them all."""
        tracks = []    # per image, per face
        for image, found in group:
            on_device, image_tracks = image.to(self.device), []
            for box, _, source in found:
                last = self.refine if self.refine is not None else (0 if source == "given" else REFINE_STEPS)
                image_tracks.append(_Track(on_device, torch.tensor(box, dtype=torch.float64), last))
            tracks.append(image_tracks)
        everyone = [track for image_tracks in tracks for track in image_tracks]
        for step in range(max((track.last for track in everyone), default=-1) + 1):
            for members, scales in (([t for t in everyone if t.last == step], self.scales),
                                    ([t for t in everyone if t.last > step], (1.0,))):
                if not members:
                    continue
                pred = predict_faces(self.cascade, [t.image for t in members], [t.box for t in members],
                                     self.image_size, scales=scales, flip=self.flip, batch_size=self.batch_size,
                                     device=self.device, precision=self.precision)
                for track, landmarks in zip(members, pred):
                    track.landmarks = landmarks
                    box = landmark_box(landmarks)
                    if (box[2:] - box[:2]).max() >= 2:   # all points in one spot (an untrained net): keep the box
                        track.box = box
                    else:
                        track.last = step
        for (image, found), image_tracks in zip(group, tracks):
            yield image, [Face(t.landmarks.float().numpy(), box, score, source, t.last)
                          for (box, score, source), t in zip(found, image_tracks)]
