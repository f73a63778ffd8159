"""The fa3d command line end to end on tiny sizes: train -> evaluate -> predict."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fa3d.checkpoint import load_checkpoint
from fa3d.cli import main
from fa3d.data.writers import write_image
from fa3d.data.synthetic import SyntheticFaces
from fa3d.metrics import METRIC_KEYS

REPO = Path(__file__).resolve().parents[1]
TINY = ["--preset", "quick", "--num-train", "16", "--num-valid", "6", "--synthetic-size", "64",
        "--max-steps", "1", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--out", str(out), *TINY]) == 0
    return out


def test_train_writes_a_checkpoint_and_a_log(run_dir):
    assert (run_dir / "checkpoint.pt").is_file() and (run_dir / "config.json").is_file()
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in records} == {"detection", "regression", "joint", "z"}
    for r in records:
        assert {"stage", "epoch", "lr", "train_loss", "valid_loss", "valid_gte_xy", "valid_gte_xyz",
                "seconds"} <= r.keys()


def test_train_refuses_to_overwrite_an_existing_run(run_dir, capsys):
    before = (run_dir / "checkpoint.pt").read_bytes()
    assert main(["train", "--out", str(run_dir), *TINY]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (run_dir / "checkpoint.pt").read_bytes() == before


def test_train_options_for_batch_size_and_ablations_reach_the_run(run_dir, tmp_path, capsys):
    out = tmp_path / "ablation"
    assert main(["train", "--out", str(out), *TINY, "--stages", "z", "--init-from", str(run_dir),
                 "--batch-size", "3", "--heatmap-sigma", "2", "--z-inputs", "rgb"]) == 0
    # an RGB-only Z net cannot take the run's Z weights: it starts fresh, and says so
    assert "the z network is configured differently there" in capsys.readouterr().out
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["schedule"]["z"]["batch_size"] == 3
    assert ckpt["preset"]["heatmap_sigma"] == 2.0 and ckpt["preset"]["z"]["inputs"] == "rgb"
    assert json.loads((out / "log.jsonl").read_text().splitlines()[0])["images"] == 3  # one step of 3
    small = tmp_path / "small_z"   # --z-input-size: the Z net sees the crop box-averaged to 32 px
    assert main(["train", "--out", str(small), *TINY, "--stages", "z", "--init-from", str(run_dir),
                 "--z-input-size", "32"]) == 0
    ckpt = load_checkpoint(small / "checkpoint.pt")
    assert "configured differently" in capsys.readouterr().out      # another size: fresh too
    assert ckpt["preset"]["z"]["input_size"] == 32 and ckpt["config"]["preset_overrides"] == {"z": {"input_size": 32}}


def test_regression_features_flag_grows_a_run_without_them_into_one_with_them(run_dir, tmp_path):
    """--regression-features: the quick run has none; a joint step with them starts from its weights
    (the new 1x1 convolution at zero) and trains it."""
    assert load_checkpoint(run_dir / "checkpoint.pt")["preset"]["regression"].get("detection_features") is not True
    out = tmp_path / "grown"
    assert main(["train", "--out", str(out), *TINY, "--stages", "joint", "--init-from", str(run_dir),
                 "--regression-features", "detection"]) == 0
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert ckpt["preset"]["regression"]["detection_features"] is True
    assert ckpt["models"]["regression"]["feature_stem.weight"].abs().sum() > 0   # it learned
    off = tmp_path / "off"
    assert main(["train", "--out", str(off), *TINY, "--preset", "medium", "--stages", "detection",
                 "--max-steps", "1", "--regression-features", "none"]) == 0
    assert load_checkpoint(off / "checkpoint.pt")["preset"]["regression"]["detection_features"] is False


def test_evaluate_prints_the_table_and_writes_matching_metrics(run_dir, capsys):
    assert main(["evaluate", "--run", str(run_dir), "--data", "synthetic", "--no-progress"]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(METRIC_KEYS) | {"num_images", "baseline"} <= metrics.keys()
    assert metrics["num_images"] == 6 and metrics["baseline"]["num_images"] == 6
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(fa3d quick|mean-shape baseline)\s+((?:[-\d.]+\s*){6})$", line)
        if m:
            rows[m.group(1)] = [float(v) for v in m.group(2).split()]
    assert rows.keys() == {"fa3d quick", "mean-shape baseline"}, out
    for key, printed, base in zip(METRIC_KEYS, rows["fa3d quick"], rows["mean-shape baseline"]):
        assert printed == pytest.approx(metrics[key], abs=0.006), key
        assert base == pytest.approx(metrics["baseline"][key], abs=0.006), key
        assert metrics[key] > 0 and metrics["baseline"][key] > 0
    # the report sits next to metrics.json and its numbers are the same
    from fa3d.course.report import REPORT_FILES
    for name in ("report.md", "report.html", "report.json", "ced.png", "gallery.jpg", "face_3d.html"):
        assert name in REPORT_FILES.values() and (run_dir / name).stat().st_size > 0, name
    report = json.loads((run_dir / "report.json").read_text())
    for key in METRIC_KEYS:  # the numbers evaluate computed, metrics.json rounds them to 4 decimals
        assert metrics[key] == round(report["runs"][report["model"]][key], 4), key


def test_evaluate_a_missing_run_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", "--run", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.fixture(scope="module")
def face_image(tmp_path_factory):
    item = SyntheticFaces(1, image_size=128, seed=5)[0]
    path = write_image(tmp_path_factory.mktemp("img") / "face.png", item["image"])
    return path, item


def test_predict_with_a_box_writes_n_by_3_landmarks_in_image_pixels(run_dir, face_image, capsys):
    path, item = face_image
    bbox = [f"{v:.2f}" for v in item["bbox"].tolist()]
    assert main(["predict", "--run", str(run_dir), str(path), "--bbox", *bbox, "--device", "cpu"]) == 0
    out = path.with_name("face.landmarks.json")
    doc = json.loads(out.read_text())
    lm = torch.tensor(doc["faces"][0]["landmarks"])
    assert lm.shape == (66, 3) and doc["faces"][0]["bbox_source"] == "given"
    # image pixels: the prediction lies around the face box, not in the 64 px crop's frame
    x1, y1, x2, y2 = item["bbox"].tolist()
    side = 1.225 * max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    assert ((lm[:, 0] - cx).abs() <= side / 2 + 1).all() and ((lm[:, 1] - cy).abs() <= side / 2 + 1).all()
    # never overwrite without --overwrite
    before = out.read_text()
    assert main(["predict", "--run", str(run_dir), str(path), "--bbox", *bbox]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_text() == before
    assert main(["predict", "--run", str(run_dir), str(path), "--bbox", *bbox, "--overwrite"]) == 0


def _has_haar() -> bool:
    import cv2
    return hasattr(cv2, "CascadeClassifier")


def test_predict_without_haar_says_to_pass_a_box(run_dir, face_image, tmp_path, capsys, monkeypatch):
    import cv2
    monkeypatch.delattr(cv2, "CascadeClassifier", raising=False)  # as in OpenCV 5
    path, _ = face_image
    assert main(["predict", "--run", str(run_dir), str(path), "--out", str(tmp_path), "--detector", "haar"]) == 2
    assert "--bbox" in capsys.readouterr().err and not list(tmp_path.iterdir())


@pytest.mark.skipif(not _has_haar(), reason="this OpenCV has no Haar cascade (OpenCV >= 5)")
def test_predict_without_a_box_uses_the_haar_detector(run_dir, face_image, tmp_path, capsys):
    path, _ = face_image
    code = main(["predict", "--run", str(run_dir), str(path), "--out", str(tmp_path), "--device", "cpu",
                 "--detector", "haar"])
    out = capsys.readouterr().out
    json_path = tmp_path / "face.landmarks.json"
    if code == 0:  # the detector found the synthetic face
        doc = json.loads(json_path.read_text())
        assert doc["faces"][0]["bbox_source"] == "haar" and len(doc["faces"][0]["landmarks"]) == 66
    else:
        assert code == 1 and "no face found" in out and not json_path.exists()
    # a blank image certainly holds no face
    blank = write_image(tmp_path / "blank.png", torch.full((3, 96, 96), 128, dtype=torch.uint8))
    assert main(["predict", "--run", str(run_dir), str(blank), "--device", "cpu", "--detector", "haar"]) == 1
    assert "no face found" in capsys.readouterr().out and not (tmp_path / "blank.landmarks.json").exists()


def test_python_dash_m_fa3d_lists_the_commands():
    proc = subprocess.run([sys.executable, "-m", "fa3d", "--help"], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0
    for cmd in ("train", "evaluate", "predict"):
        assert cmd in proc.stdout


def test_synthetic_levers_reach_the_run_and_its_test_faces(tmp_path, capsys):
    out = tmp_path / "levers"
    assert main(["train", "--out", str(out), *TINY, "--synthetic-levers", "body,camera"]) == 0
    ckpt = load_checkpoint(out / "checkpoint.pt")
    assert tuple(ckpt["config"]["synthetic_levers"]) == ("body", "camera")
    from fa3d.data.splits import test_dataset
    test = test_dataset("synthetic:30", ckpt)
    assert test.levers == ("body", "camera") and not any(test.params(i).glasses for i in range(30))
    assert main(["train", "--out", str(tmp_path / "bad"), *TINY, "--synthetic-levers", "hats"]) == 2
    assert "hats" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_augment_photo_reaches_the_run(tmp_path):
    out = tmp_path / "photo"
    assert main(["train", "--out", str(out), *TINY, "--stages", "detection", "--augment", "photo"]) == 0
    assert load_checkpoint(out / "checkpoint.pt")["config"]["augment"] == "photo"
    from fa3d.runs import TrainConfig
    from fa3d.train import train
    with pytest.raises(ValueError, match="unknown augment"):
        train(TrainConfig(out=str(tmp_path / "bad"), augment="wild", max_steps=1, num_train=4, num_valid=2))
