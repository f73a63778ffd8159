"""Real 2D faces as training data (issue: 300-W as a dataset and a protocol): the split by photo, mixed
synthetic + real runs, faces a run trained on never scored, and the terms a run inherits from its data.

Everything here runs on fa3d-made 300-W stand-ins (fa3d.data.standins.write_300w_standins); the one test
on 300-W's real training faces skips where ../shared is absent (a user's fresh clone; under CI=true it fails)."""
from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from fa3d.app.release import export_release
from fa3d.cli import main as cli
from fa3d.data.readers import open_dataset, photo_id, source_specs
from fa3d.data.splits import PHOTO_PARTS, data_terms, open_splits, photo_part
from fa3d.data.splits import test_dataset as scored_faces
from fa3d.data.standins import write_300w_standins
from fa3d.evaluate import evaluate_run
from fa3d.models import StageLoss, get_preset
from fa3d.models.cascade import Cascade
from fa3d.runs import load_run
from needs import REAL_SAMPLES, needs_path

W300_TRAIN = REAL_SAMPLES / "300w-train"


@pytest.fixture(scope="module")
def w300(tmp_path_factory):
    return write_300w_standins(tmp_path_factory.mktemp("data") / "300w", 60, image_size=96)


@pytest.fixture(scope="module")
def mixed_run(w300, tmp_path_factory):
    """A two-step run on synthetic faces and the 300-W stand-ins together, every stage."""
    out = tmp_path_factory.mktemp("runs") / "mixed"
    assert cli(["train", "--out", str(out), "--data", f"synthetic:16+300w:{w300}", "--scheme", "68",
                "--max-steps", "2", "--num-valid", "4", "--no-progress"]) == 0
    return out


@pytest.mark.parametrize("path,photo", [
    ("300w/lfpw/trainset/image_0001.png", "lfpw-train/image_0001"),
    ("300w/lfpw/testset/image_0001.png", "lfpw-test/image_0001"),      # same name, another photo
    ("300w-train/lfpw-train/image_0001.jpg", "lfpw-train/image_0001"),  # the same photo in the other layout
    ("300w/helen/trainset/100040721_2.jpg", "helen-train/100040721"),
    ("300w-train/helen-train/100040721_1.jpg", "helen-train/100040721"),
    ("300w/ibug/image_003_1.jpg", "ibug/image_003"),
    ("300w/AFW/1051618982_1.jpg", "afw/1051618982"),
])
def test_photo_ids_name_the_photo_the_same_in_either_layout(path, photo):
    assert photo_id(path) == photo


def test_the_split_by_photo_depends_on_the_photo_alone():
    photos = [f"helen-train/{k}" for k in range(3000)]
    counts = Counter(photo_part(p) for p in photos)
    for part, share in PHOTO_PARTS.items():
        assert abs(counts[part] / len(photos) - share) < 0.03, counts
    assert [photo_part(p) for p in photos] == [photo_part(p) for p in photos]
    assert {photo_part(p) for p in ("ibug/image_003", "lfpw-test/image_0001", "helen-test/1")} == {"test"}


def test_mixed_specs_split_into_their_sources():
    assert source_specs("synthetic:2000+300w:data/300w") == ["synthetic:2000", "300w:data/300w"]
    assert source_specs("folder:my+faces") == ["folder:my+faces"]   # a '+' in a folder name stays
    with pytest.raises(ValueError, match="unknown dataset spec"):
        source_specs("synthetic+nonsense:x")


def test_300w_splits_keep_photos_whole_and_test_folders_out(w300):
    full = open_dataset(f"300w:{w300}")
    sides = {}
    for i in range(len(full)):
        sides.setdefault(full.photo_id(i), set()).add(photo_part(full.photo_id(i)))
    assert all(len(s) == 1 for s in sides.values())
    assert any(n > 1 for n in Counter(full.photo_id(i) for i in range(len(full))).values())  # two-face photos
    for seed, num_valid in ((0, 4), (7, 50)):
        train, valid = open_splits(f"300w:{w300}", scheme="68", seed=seed, num_train=1, num_valid=num_valid,
                                   synthetic_size=96)
        assert {photo_part(train.photo_id(i)) for i in range(len(train))} == {"train"}
        assert {photo_part(valid.photo_id(i)) for i in range(len(valid))} == {"validation"}
        assert sorted(train.indices) == sorted(open_splits(f"300w:{w300}", scheme="68", seed=0, num_train=1,
                                                           num_valid=4, synthetic_size=96)[0].indices)


def test_a_mixed_run_records_its_photos_and_terms_and_is_never_scored_on_them(w300, mixed_run):
    ckpt = load_run(mixed_run).checkpoint
    trained = set(ckpt["trained_photos"])
    assert trained and {photo_part(p) for p in trained} == {"train"}
    assert ckpt["data_history"] == [{"data": f"synthetic:16+300w:{w300}", "terms": data_terms(f"300w:{w300}")}]
    assert json.loads((mixed_run / "config.json").read_text())["data_history"] == ckpt["data_history"]
    # whatever spec names the faces, the trained photos are left out
    for spec, split in ((f"300w:{w300}", "all"), (f"folder:{w300}", None), (f"folder:{w300}/afw", None)):
        scored = scored_faces(spec, ckpt, split=split)
        photos = {scored.photo_id(i) for i in range(len(scored))}
        assert photos and not photos & trained
    locked = scored_faces(f"300w:{w300}", ckpt, split="locked")
    assert {photo_part(locked.photo_id(i)) for i in range(len(locked))} == {"locked"}
    result = evaluate_run(mixed_run, f"300w:{w300}", split="all", write=False, progress=False)
    scored_photos = {photo_id(w300 / f"{sid}.jpg") for sid in result["evaluation"]["ids"]}
    assert scored_photos and not scored_photos & trained
    assert result["metrics"]["num_images"] == len(scored_faces(f"300w:{w300}", ckpt, split="all"))
    assert "300-W protocol" in result["table"] and "common" in result["table"]


def test_fa3d_evaluate_prints_the_300w_table_on_the_locked_split(w300, mixed_run, tmp_path, capsys):
    assert cli(["evaluate", "--run", str(mixed_run), "--data", f"300w:{w300}", "--split", "locked",
                "--out", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "300-W protocol" in out
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["split"] == "locked" and metrics["num_images"] == len(
        scored_faces(f"300w:{w300}", load_run(mixed_run).checkpoint, split="locked"))


def test_a_run_with_research_terms_data_is_never_exported_as_fa3d_weights(mixed_run, tmp_path):
    with pytest.raises(ValueError, match="non-commercial research"):
        export_release(mixed_run, tmp_path / "release")
    assert not (tmp_path / "release").exists()


def test_init_from_pretrained_fine_tunes_the_shipped_model_and_carries_the_history(w300, mixed_run, tmp_path):
    out = tmp_path / "tuned"
    assert cli(["train", "--out", str(out), "--data", f"300w:{w300}", "--init-from", "pretrained",
                "--stages", "detection", "--max-steps", "1", "--num-valid", "4", "--no-progress"]) == 0
    assert [h["data"] for h in load_run(out).checkpoint["data_history"]][-1] == f"300w:{w300}"
    again = tmp_path / "again"   # from a run that learned from 300-W: its terms and photos come along
    assert cli(["train", "--out", str(again), "--data", "synthetic:8", "--scheme", "68", "--init-from",
                str(mixed_run), "--stages", "z", "--max-steps", "1", "--num-valid", "2", "--no-progress"]) == 0
    ckpt = load_run(again).checkpoint
    assert ckpt["data_history"][0]["terms"] and ckpt["trained_photos"] == load_run(mixed_run).checkpoint["trained_photos"]
    with pytest.raises(ValueError, match="non-commercial research"):
        export_release(again, tmp_path / "release")


def test_real_faces_without_z_are_left_out_of_the_z_loss():
    preset = get_preset("quick", 68)
    cascade = Cascade.from_preset(preset)
    loss = StageLoss(cascade, "z")
    cascade.eval()   # batch norm's running statistics: each face's prediction independent of the batch
    images = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)
    landmarks = torch.rand(2, 68, 3) * 40 + 12
    landmarks[1, :, 2] = float("nan")                # the second face is 2D only
    value, _ = loss(images, landmarks, torch.full((2,), 40.0), torch.ones(2, dtype=torch.bool))
    alone, _ = loss(images[:1], landmarks[:1], torch.full((1,), 40.0), torch.ones(1, dtype=torch.bool))
    assert torch.isfinite(value) and torch.allclose(value, alone, rtol=1e-4)


def test_300w_training_faces_split_by_photo_about_70_15_15():
    full = open_dataset(f"300w:{needs_path(W300_TRAIN, '../shared/real-samples/300w-train')}")
    parts = Counter(photo_part(full.photo_id(i)) for i in range(len(full)))
    assert len(full) == 2012 and set(parts) == set(PHOTO_PARTS)
    for part, share in PHOTO_PARTS.items():
        assert abs(parts[part] / len(full) - share) < 0.04, parts


def test_every_augmentation_applies_to_a_2d_face_and_its_z_stays_unknown(w300):
    """A real face (z NaN) through the photo augmentation: x, y move with the image (a flip permutes the
    points with the 68-point mirror), z stays NaN and never leaks into x, y."""
    from fa3d.data.schemes import get_scheme
    from fa3d.data.transforms import AUGMENTS, Augment3D
    face = open_dataset(f"300w:{w300}")[0]
    augment = Augment3D(64, AUGMENTS["photo"], get_scheme("68"))
    flips = 0
    for k in range(12):
        out = augment(face, torch.Generator().manual_seed(k))
        assert out["image"].shape == (3, 64, 64) and out["image"].dtype == torch.uint8
        assert torch.isfinite(out["landmarks"][:, :2]).all() and torch.isnan(out["landmarks"][:, 2]).all()
        # the right eye's outer corner (36) stays left of the left eye's (45) in the image, flipped or not
        assert out["landmarks"][36, 0] < out["landmarks"][45, 0]
        flips += int(torch.det(augment.sample_matrix(face["bbox"], torch.Generator().manual_seed(k))[:, :2]) < 0)
    assert 0 < flips < 12
