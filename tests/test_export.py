"""ONNX export (fa3d.app.export, ``fa3d export``): the shipped model's graph agrees with torch's
predict_crops on face crops at any batch size, carries its metadata, and never replaces a file
unless asked."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fa3d import __version__, runs
from fa3d.cli import main

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from fa3d.app.export import check_onnx, export_onnx, onnx_session, sample_crops  # noqa: E402
from fa3d.predict import predict_crops  # noqa: E402
from fa3d.runs import load_run  # noqa: E402

TOL_PX = 1e-3


@pytest.fixture(scope="module")
def shipped():
    return load_run(runs.resolve_run("pretrained"), "cpu")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_onnx("pretrained", tmp_path_factory.mktemp("onnx") / "fa3d.onnx")


def test_onnx_matches_torch_on_face_crops_at_other_batch_sizes(exported, shipped):
    cascade, S = shipped.cascade, shipped.image_size
    for n, seed in ((4, 0), (3, 1), (1, 2)):   # exported with a batch of 2: the batch axis is dynamic
        crops = sample_crops(n, S, shipped.scheme, seed=seed)
        assert crops.dtype == torch.uint8 and crops.shape == (n, 3, S, S)
        got = torch.from_numpy(onnx_session(exported).run(["landmarks"], {"crops": crops.numpy()})[0])
        want = predict_crops(cascade, crops, "z")
        assert got.shape == want.shape == (n, cascade.num_landmarks, 3) and got.dtype == torch.float32
        assert (got - want).abs().max() < TOL_PX
        assert check_onnx(exported, cascade, crops) < TOL_PX
        # real peaks: the landmarks spread over the face, z centred per face
        assert (want[..., :2].amax(1) - want[..., :2].amin(1)).min() > S / 4
        assert want[..., 2].mean(-1).abs().max() < 1e-3


def test_the_graph_and_its_metadata(exported, shipped):
    S = shipped.image_size
    model = onnx.load(str(exported))
    onnx.checker.check_model(model)
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, inp.type.tensor_type.elem_type) == ("crops", onnx.TensorProto.UINT8)
    assert (out.name, out.type.tensor_type.elem_type) == ("landmarks", onnx.TensorProto.FLOAT)
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims[1:] == [3, S, S] and isinstance(dims[0], str)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["fa3d_version"] == __version__ and meta["scheme"] == shipped.scheme
    assert meta["image_size"] == str(S) and meta["run"] == "pretrained" and "crop pixels" in meta["units"]


def test_an_existing_file_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="--overwrite") as err:
        export_onnx("pretrained", path)
    assert str(path) in str(err.value) and path.read_bytes() == b"keep me"
    assert export_onnx("pretrained", path, overwrite=True) == path
    onnx.checker.check_model(onnx.load(str(path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]   # no temporary file left


def test_cli_exports_checks_and_refuses_to_overwrite(tmp_path, capsys):
    path = tmp_path / "out" / "fa3d.onnx"
    assert main(["export", "--onnx", str(path), "--check", "3"]) == 0
    printed = capsys.readouterr().out
    assert str(path) in printed and "max |difference|" in printed and "MiB" in printed
    diff = float(printed.split("max |difference|")[1].split()[0])
    assert diff < TOL_PX
    before = path.read_bytes()
    assert main(["export", "--onnx", str(path)]) == 2
    assert "--overwrite" in capsys.readouterr().err and path.read_bytes() == before
    assert main(["export", "--onnx", str(path), "--overwrite", "--check", "1"]) == 0
    assert main(["export", "--run", str(tmp_path / "no-such-run"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "run folder not found" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()


def test_without_onnx_the_error_says_what_to_install(tmp_path, monkeypatch, capsys):
    import sys

    from fa3d.app.export import ExportUnavailable

    monkeypatch.setitem(sys.modules, "onnx", None)   # import onnx -> ImportError
    with pytest.raises(ExportUnavailable, match=r'pip install "fa3d\[export\]"'):
        export_onnx("pretrained", tmp_path / "m.onnx")
    assert main(["export", "--onnx", str(tmp_path / "m.onnx")]) == 2
    assert "fa3d[export]" in capsys.readouterr().err and not list(tmp_path.iterdir())


def _faces(n=3):
    from fa3d.data.synthetic import SyntheticFaces

    items = [SyntheticFaces(n, image_size=160, scheme="68", seed=31)[i] for i in range(n)]
    return [it["image"] for it in items], [[tuple(it["bbox"].tolist())] for it in items]


def test_face_aligner_on_onnxruntime_gives_torchs_landmarks_and_traces_once(tmp_path, monkeypatch):
    from fa3d.app import export
    from fa3d.app.aligner import FaceAligner

    monkeypatch.setenv("FA3D_CACHE", str(tmp_path))
    images, boxes = _faces()
    with_torch = FaceAligner("pretrained", "cpu", backend="torch")
    with_onnx = FaceAligner("pretrained", "cpu", backend="onnxruntime")
    assert (with_torch.backend, with_onnx.backend) == ("torch", "onnxruntime")
    assert isinstance(with_onnx.cascade, export.OnnxCascade)
    want, got = with_torch.landmarks(images, boxes), with_onnx.landmarks(images, boxes)   # flip: both crops
    for w, g in zip(want, got):
        assert len(w) == len(g) == 1 and g[0].shape == (68, 3)
        assert np.abs(w[0] - g[0]).max() < TOL_PX
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1     # traced once, then read from the cache
    monkeypatch.setattr(export, "onnx_model", lambda *a, **k: pytest.fail("traced a second time"))
    again = FaceAligner("pretrained", "cpu", backend="onnxruntime").landmarks(images, boxes)
    assert all(np.array_equal(a[0], g[0]) for a, g in zip(again, got))


def test_auto_backend_is_onnxruntime_on_the_cpu_when_installed_else_torch(monkeypatch):
    from fa3d.app import aligner

    assert aligner.FaceAligner("pretrained", "cpu").backend == "onnxruntime"
    real = aligner.importlib.util.find_spec
    monkeypatch.setattr(aligner.importlib.util, "find_spec", lambda name: None if name == "onnxruntime" else real(name))
    assert aligner.FaceAligner("pretrained", "cpu").backend == "torch"


def test_what_the_onnx_backend_cannot_run_is_a_clear_error():
    from fa3d.app.aligner import FaceAligner
    from fa3d.app.export import OnnxCascade

    with pytest.raises(ValueError, match="backend must be"):
        FaceAligner("pretrained", "cpu", backend="tensorrt")
    with pytest.raises(ValueError, match="fp32 on the CPU, not bf16"):
        FaceAligner("pretrained", "cpu", backend="onnxruntime", precision="bf16")
    shipped = load_run(runs.resolve_run("pretrained"), "cpu")
    graph = OnnxCascade(shipped.cascade, shipped.image_size)   # no checkpoint: traced, nothing cached
    with pytest.raises(ValueError, match="whole cascade"):
        graph(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), upto="regression")
    with pytest.raises(ValueError, match="uint8 crops"):
        graph(torch.zeros(1, 3, 64, 64))
