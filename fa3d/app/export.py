"""ONNX export of a trained cascade: ``fa3d export --run RUN --onnx model.onnx``.

The exported graph is the whole chain of :meth:`fa3d.models.Cascade.forward` up to the Z net,
one pass (no test-time flip), i.e. exactly ``fa3d.predict.predict_crops(cascade, crops, "z")``:

    crops      uint8   (B, 3, S, S)  RGB face crops, 0-255, not normalised (S: the run's crop side,
                                     ``image_size`` in the metadata; B is a dynamic axis)
    landmarks  float32 (B, N, 3)     x, y in crop pixels (x right, y down, pixel centres at
                                     integers); z in crop pixels, larger = closer, zero mean per face

Inside: uint8 -> [0, 1] -> ImageNet normalisation, detection net, regression hourglass, the
sub-pixel peak decoding of its heatmaps (argmax + log-parabola), Gaussians re-rendered at those
points, Z regressor. Mapping the crop landmarks back to the image (``fa3d predict``'s box, re-crops
and flip) stays outside the graph. The model's ``metadata_props`` hold the fa3d version, the
landmark scheme, image_size, the run and the units above.

    export_onnx(run_dir, out_path)           the .onnx file (atomic; never replaces one unless overwrite)
    check_onnx(onnx_path, cascade, crops)    max |onnxruntime - torch| in px on those crops
    sample_crops(n, image_size, scheme)      deterministic synthetic face crops to check with

Needs the optional packages onnx and onnxruntime: ``pip install "fa3d[export]"``.
"""
from __future__ import annotations

import hashlib
import inspect
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from .. import __version__
from ..files import atomic_write
from ..models import Cascade
from ..runs import load_run, resolve_run
from .face_boxes import cache_dir as fa3d_cache

INPUT_NAME, OUTPUT_NAME = "crops", "landmarks"
UNITS = ("input crops: uint8 (B, 3, S, S) RGB 0-255; output landmarks: float32 (B, N, 3) in crop pixels, "
         "x right, y down, pixel centres at integers; z in pixels, larger = closer, zero mean per face")
INSTALL_HINT = 'pip install "fa3d[export]"  (or: pip install onnx onnxruntime)'


class ExportUnavailable(ImportError):
    """onnx / onnxruntime are not installed (they are the optional ``export`` extra)."""


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as err:
        raise ExportUnavailable(f"ONNX export needs the {module} package, which is not installed: "
                                f"{INSTALL_HINT}") from err


class CropsToLandmarks(nn.Module):
    """The traced module: uint8 crops (B, 3, S, S) -> landmarks (B, N, 3), the cascade's forward up to z."""

    def __init__(self, cascade: Cascade):
        super().__init__()
        self.cascade = cascade

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.cascade(crops, upto="z")["landmarks"].float()


def export_onnx(run_dir, out_path, *, overwrite: bool = False, opset: int = 17,
                batch_size_dynamic: bool = True) -> Path:
    """Export the cascade of ``run_dir`` (a RUN_DIR, or "pretrained": the model shipped with fa3d)
    to the ONNX file ``out_path`` and return its path. The file is written atomically and an
    existing one is a FileExistsError unless ``overwrite``. ``batch_size_dynamic``: B is a
    dynamic axis (else fixed at 1)."""
    out_path = Path(out_path)
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} already exists; pass --overwrite to replace it")
    if out_path.suffix.lower() != ".onnx":
        raise ValueError(f"the ONNX file should end in .onnx, got {out_path}")
    run = load_run(resolve_run(run_dir), "cpu")
    model = onnx_model(run.cascade, run.image_size, opset=opset, batch_size_dynamic=batch_size_dynamic)
    meta = {"fa3d_version": __version__, "scheme": run.scheme, "image_size": str(run.image_size),
            "num_landmarks": str(run.cascade.num_landmarks), "run": str(run_dir), "units": UNITS}
    del model.metadata_props[:]
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    model.producer_name, model.producer_version = "fa3d", __version__
    model.doc_string = "fa3d cascade: uint8 crops (B,3,S,S) -> landmarks (B,N,3) in crop pixels"
    _require("onnx").checker.check_model(model)
    return atomic_write(out_path, model.SerializeToString(), overwrite=overwrite)


def onnx_model(cascade: Cascade, image_size: int, *, opset: int = 17, batch_size_dynamic: bool = True):
    """The ``onnx.ModelProto`` of :class:`CropsToLandmarks` for ``cascade`` on CPU (traced; no metadata)."""
    onnx = _require("onnx")
    example = torch.zeros(2 if batch_size_dynamic else 1, 3, image_size, image_size, dtype=torch.uint8)
    with tempfile.TemporaryDirectory(prefix="fa3d-export-") as tmp:   # the file itself: atomic_write below
        raw = Path(tmp) / "raw.onnx"
        legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
        with warnings.catch_warnings():
            # The TorchScript exporter (torch's default since 2.9 needs onnxscript, which we do not depend
            # on). Its tracer warnings are the crop size S read as a constant: the graph is for S x S crops.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(CropsToLandmarks(cascade).eval(), (example,), str(raw), **legacy,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
                              do_constant_folding=True,
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
                              if batch_size_dynamic else None)
        return onnx.load(str(raw))


def onnx_session(onnx_path, threads: int | None = None):
    """An onnxruntime CPU session for ``onnx_path`` (a file, or the model's bytes) on ``threads`` threads
    (default: onnxruntime's own choice)."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    # idle threads sleep instead of spinning: a spinning one takes a core from torch's crop warp between
    # runs (measured: 2 threads, one face at a time through FaceAligner, 10.8 -> 7.7 ms a face)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = onnx_path if isinstance(onnx_path, bytes) else str(onnx_path)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


class OnnxCascade(nn.Module):
    """A cascade's one pass run by ONNX Runtime, in the cascade's place for :func:`fa3d.predict.predict_crops`:
    ``forward(crops, upto="z")`` -> {"landmarks": (B, N, 3) float32} for uint8 crops (B, 3, S, S) on the CPU.
    The same graph as :func:`export_onnx`'s, so the same landmarks as the torch cascade (to ~1e-5 px);
    faster on a CPU at small batches (docs/speed.md). Only the whole chain ("z") is exported.

    The traced graph is cached in ``cache_dir`` (default: ``onnx/`` in fa3d's cache, ``$FA3D_CACHE`` or
    ``~/.cache/fa3d``), named by a hash of the checkpoint's bytes and the fa3d and torch versions, so a run
    is traced once (a few seconds); an unwritable cache only means tracing each time."""

    def __init__(self, cascade: Cascade, image_size: int, *, checkpoint=None, threads: int | None = None,
                 cache_dir=None):
        super().__init__()
        self.num_landmarks, self.image_size = cascade.num_landmarks, image_size
        self.session = onnx_session(self._graph(cascade, image_size, checkpoint, cache_dir), threads)
        self.eval()

    @staticmethod
    def _graph(cascade: Cascade, image_size: int, checkpoint, cache_dir) -> bytes:
        cached = None
        if checkpoint is not None:
            key = hashlib.sha256(Path(checkpoint).read_bytes())
            key.update(f"{__version__} {torch.__version__} {image_size}".encode())
            cache_dir = Path(cache_dir) if cache_dir else fa3d_cache() / "onnx"
            cached = cache_dir / f"{key.hexdigest()[:32]}.onnx"
            if cached.is_file():
                return cached.read_bytes()
        graph = onnx_model(cascade, image_size).SerializeToString()
        if cached is not None:
            try:
                atomic_write(cached, graph)
            except OSError:
                pass   # a read-only home: trace again next time
        return graph

    def forward(self, crops: torch.Tensor, upto: str = "z") -> dict[str, torch.Tensor]:
        if upto != "z":
            raise ValueError(f"the ONNX graph runs the whole cascade (upto='z'), not upto={upto!r}")
        if crops.dtype != torch.uint8 or crops.device.type != "cpu":
            raise ValueError(f"the ONNX graph takes uint8 crops on the CPU, got {crops.dtype} on {crops.device}")
        out = self.session.run([OUTPUT_NAME], {INPUT_NAME: crops.contiguous().numpy()})[0]
        return {"landmarks": torch.from_numpy(out)}


def check_onnx(onnx_path, cascade: Cascade, crops: torch.Tensor) -> float:
    """Max |onnxruntime - torch| in crop pixels over all landmarks and coordinates of uint8
    ``crops`` (B, 3, S, S); torch is :func:`fa3d.predict.predict_crops` (stage z, no flip)."""
    from ..predict import predict_crops

    got = onnx_session(onnx_path).run([OUTPUT_NAME], {INPUT_NAME: crops.contiguous().numpy()})[0]
    want = predict_crops(cascade, crops, "z")
    return float((torch.from_numpy(got) - want).abs().max())


def sample_crops(n: int, image_size: int, scheme: str = "68", seed: int = 0) -> torch.Tensor:
    """``n`` deterministic face crops (n, 3, S, S) uint8: synthetic faces rendered at 2 S px and
    cropped around their landmarks as in evaluation, so the heatmaps have real peaks."""
    from ..data.synthetic import SyntheticFaces
    from ..data.transforms import crop_sample

    faces = SyntheticFaces(n, image_size=2 * image_size, scheme=scheme, seed=seed)
    return torch.stack([crop_sample(faces[i], image_size)["image"] for i in range(n)])
