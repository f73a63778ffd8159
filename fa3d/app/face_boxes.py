"""Face boxes for :class:`fa3d.FaceAligner` and ``fa3d predict``: where in a photo the cascade looks.

    get_detector("auto")   YuNet if its model is cached or can be fetched, else dlib's HOG if dlib is
                           installed, else Haar (saying which one it fell back to)
    YuNetDetector()        OpenCV's YuNet CNN (``cv2.FaceDetectorYN``): frontal to profile faces
    DlibHogDetector()      dlib's HOG detector (``pip install dlib-bin``): five views, to about 60° yaw
    HaarDetector()         OpenCV's bundled Haar cascade: frontal faces only, always offline
    detector(image)        -> [Detection(box=(x1, y1, x2, y2), score)], best first, image pixels

The cascade is trained for poses up to profile, so its face finder should be too. YuNet (Wu et al.,
opencv_zoo, MIT licence, 232,589 bytes) is fetched once on the user's machine from opencv_zoo,
its SHA-256 checked, and kept in ``cache_dir()`` (``$FA3D_CACHE``, default ``~/.cache/fa3d``); a
machine without internet can have it copied there by hand. ``FA3D_OFFLINE=1`` never fetches (the
test suite sets it). fa3d ships no detector weights.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

HAAR_FILE = "haarcascade_frontalface_default.xml"
YUNET_FILE = "face_detection_yunet_2023mar.onnx"
YUNET_URL = ("https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
             "face_detection_yunet_2023mar.onnx")
YUNET_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
DETECTORS = ("auto", "yunet", "dlib", "haar")


class FaceDetectorUnavailable(FileNotFoundError):
    """The detector asked for cannot run here (no model file, or an OpenCV without it)."""


class ChecksumError(ValueError):
    """A fetched file is not the file we asked for (its SHA-256 differs)."""


@dataclass
class Detection:
    """One face found in an image: ``box`` (x1, y1, x2, y2) in image pixels and the detector's score
    (YuNet: a confidence in [0, 1]; Haar: its level weight, larger = surer, not a probability)."""
    box: tuple[float, float, float, float]
    score: float


# ----------------------------------------------------------------------------- fetching, once

def cache_dir() -> Path:
    """Where fetched files live: ``$FA3D_CACHE`` or ``~/.cache/fa3d``."""
    return Path(os.environ.get("FA3D_CACHE") or Path.home() / ".cache" / "fa3d")


def sha256_of(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, sha256: str, dest, timeout: float = 30.0) -> Path:
    """``dest`` if it is there with the right SHA-256; else download ``url`` next to it, check the
    checksum and only then move it into place (a failed or wrong download leaves nothing behind).
    A cached file with the wrong checksum is a ChecksumError, never silently replaced or used."""
    dest = Path(dest)
    if dest.is_file():
        got = sha256_of(dest)
        if got != sha256:
            raise ChecksumError(f"{dest}: SHA-256 {got} is not the expected {sha256}; "
                                f"delete it to fetch it again from {url}")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, f)
        got = sha256_of(tmp)
        if got != sha256:
            raise ChecksumError(f"{url}: downloaded file has SHA-256 {got}, expected {sha256}; not kept")
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def offline() -> bool:
    """True when ``FA3D_OFFLINE`` is set (to anything but "" or "0"): fa3d fetches nothing."""
    return os.environ.get("FA3D_OFFLINE", "") not in ("", "0")


def yunet_model(download: bool | None = None) -> Path:
    """The YuNet model file, fetched into ``cache_dir()`` on first use (``download=False``, or
    None with FA3D_OFFLINE set: only if already there). FaceDetectorUnavailable says how to get it
    by hand when it cannot be had."""
    dest = cache_dir() / YUNET_FILE
    if not (download if download is not None else not offline()) and not dest.is_file():
        raise FaceDetectorUnavailable(f"YuNet's model is not in {dest} and fetching is off; download "
                                      f"{YUNET_URL} (SHA-256 {YUNET_SHA256}) and put it there")
    try:
        return fetch(YUNET_URL, YUNET_SHA256, dest)
    except ChecksumError:
        raise
    except OSError as e:  # no network, proxy, HTTP error, read-only home...
        raise FaceDetectorUnavailable(
            f"could not fetch YuNet's model ({e}); download {YUNET_URL} (SHA-256 {YUNET_SHA256}) "
            f"and put it at {dest}, or set FA3D_CACHE to the folder that holds it") from None


# ----------------------------------------------------------------------------- detectors

def _bgr(image: torch.Tensor) -> np.ndarray:
    """uint8 (3, H, W) RGB tensor -> contiguous (H, W, 3) BGR array, as OpenCV wants."""
    return np.ascontiguousarray(image.permute(1, 2, 0).cpu().numpy()[..., ::-1])


class HaarDetector:
    """OpenCV's Haar cascade (Viola-Jones), bundled with opencv-python: frontal faces only."""
    name = "haar"

    def __init__(self, min_size: int = 24):
        import cv2

        path = Path(getattr(getattr(cv2, "data", None), "haarcascades", "")) / HAAR_FILE
        if not hasattr(cv2, "CascadeClassifier") or not path.is_file():
            raise FaceDetectorUnavailable(
                f"OpenCV {cv2.__version__} has no Haar face detector ({path} / cv2.CascadeClassifier missing; "
                f"OpenCV 5 dropped them): pass the face box with --bbox x1 y1 x2 y2, "
                f"or install opencv-python-headless<5")
        self.detector = cv2.CascadeClassifier(str(path))
        if self.detector.empty():
            raise FaceDetectorUnavailable(f"OpenCV's Haar cascade could not be loaded from {path}")
        self.min_size = min_size

    def __call__(self, image: torch.Tensor) -> list[Detection]:
        import cv2

        gray = cv2.cvtColor(_bgr(image), cv2.COLOR_BGR2GRAY)
        found, _, weights = self.detector.detectMultiScale3(
            gray, scaleFactor=1.1, minNeighbors=5, minSize=(self.min_size, self.min_size), outputRejectLevels=True)
        faces = [Detection((float(x), float(y), float(x + w), float(y + h)), float(s))
                 for (x, y, w, h), s in zip(np.reshape(found, (-1, 4)), np.reshape(weights, -1))]
        return sorted(faces, key=lambda d: -(d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))


class YuNetDetector:
    """OpenCV's YuNet (``cv2.FaceDetectorYN``): a small CNN trained on WIDER FACE, frontal to profile.

    ``score_threshold`` 0.6 is opencv_zoo's default. Its box is the visible face (brows to chin),
    framed unlike the landmark boxes the cascade was trained on; ``FaceAligner`` re-crops around
    its own landmarks for that reason (``fa3d.app.aligner.REFINE_STEPS``)."""
    name = "yunet"

    def __init__(self, model=None, score_threshold: float = 0.6, nms_threshold: float = 0.3,
                 download: bool | None = None):
        import cv2

        if not hasattr(cv2, "FaceDetectorYN"):
            raise FaceDetectorUnavailable(f"OpenCV {cv2.__version__} has no cv2.FaceDetectorYN (needs 4.5.4+)")
        self.model = Path(model) if model else yunet_model(download)
        try:
            self.detector = cv2.FaceDetectorYN.create(str(self.model), "", (320, 320), score_threshold,
                                                      nms_threshold, 5000)
        except cv2.error as e:
            raise FaceDetectorUnavailable(f"{self.model}: OpenCV cannot load it as a YuNet model ({e})") from None

    def __call__(self, image: torch.Tensor) -> list[Detection]:
        H, W = image.shape[-2:]
        self.detector.setInputSize((int(W), int(H)))
        _, found = self.detector.detect(_bgr(image))
        faces = [Detection((float(x), float(y), float(x + w), float(y + h)), float(row[-1]))
                 for row in (found if found is not None else []) for x, y, w, h in [row[:4]]]
        return sorted(faces, key=lambda d: -d.score)


class DlibHogDetector:
    """dlib's HOG + linear SVM detector (``dlib.get_frontal_face_detector``; Boost licence, no
    model file): five filters (frontal, turned left, turned right, tilted left and right), so it
    finds faces to about 60° of yaw. Optional: ``pip install dlib-bin`` (or ``fa3d[detect]``).
    ``upsample`` 1 doubles the image first, so faces down to about 40 px are found."""
    name = "dlib"

    def __init__(self, upsample: int = 1, max_side: int = 1600):
        try:
            import dlib
        except ImportError:
            raise FaceDetectorUnavailable("dlib is not installed (pip install dlib-bin)") from None
        self.detector, self.upsample, self.max_side = dlib.get_frontal_face_detector(), upsample, max_side

    def __call__(self, image: torch.Tensor) -> list[Detection]:
        H, W = image.shape[-2:]
        k = min(1.0, self.max_side / max(H, W))   # a 4000 px photo upsampled twice is slow and needless
        rgb = image.permute(1, 2, 0).cpu().numpy()
        if k < 1:
            import cv2
            rgb = cv2.resize(rgb, (round(W * k), round(H * k)), interpolation=cv2.INTER_AREA)
        rects, scores, _ = self.detector.run(np.ascontiguousarray(rgb), self.upsample, 0.0)
        faces = [Detection(((r.left() - 0.5) / k + 0.5, (r.top() - 0.5) / k + 0.5,
                            (r.right() + 0.5) / k - 0.5, (r.bottom() + 0.5) / k - 0.5), float(s))
                 for r, s in zip(rects, scores)]
        return sorted(faces, key=lambda d: -d.score)


def get_detector(name: str = "auto", *, download: bool | None = None, log=print):
    """A face detector by name ("yunet", "dlib", "haar"), or "auto": YuNet when its model can be had,
    else dlib's HOG when dlib is installed, else Haar, saying through ``log`` which and why."""
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}: choose from {', '.join(DETECTORS)}")
    if name == "haar":
        return HaarDetector()
    if name == "dlib":
        return DlibHogDetector()
    try:
        return YuNetDetector(download=download)
    except FaceDetectorUnavailable:
        if name == "yunet":
            raise
    # one line, not the fetch's error: get_detector("yunet") raises it, with how to install the model by hand
    reason = f"YuNet unavailable: its model is not in {cache_dir()} and could not be fetched"
    try:
        detector = DlibHogDetector()
        log(f"face detector: dlib's HOG, to about 60° yaw ({reason}).")
    except FaceDetectorUnavailable:
        detector = HaarDetector()
        log(f"face detector: OpenCV's Haar cascade, frontal faces only, so a turned face may be missed: pass "
            f"its box with --bbox ({reason}).")
    return detector
