"""The public reproduction recipe (README, notebook 10) end to end on stand-ins in the real file formats:

    fetch_bfm68.py -> prepare_300w_lp.py --bases -> prepare_aflw2000_3d.py -> fa3d train -> fa3d evaluate

The stand-ins (fa3d.data.standins) are synthetic faces written as 300W-LP and AFLW2000-3D zips, with fake
3DMM bases built from the same faces, so the 3D landmarks the recipe derives must be the faces' own."""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fa3d.cli import main
from fa3d.data.readers import AFLW2000_3D, W300LP
from fa3d.data.standins import write_standins
from fa3d.data.synthetic import SyntheticFaces

SCRIPTS = Path(__file__).resolve().parents[1] / "data_scripts"
NUM_300WLP, NUM_AFLW, SIZE = 24, 8, 128


@pytest.fixture(scope="module")
def scripts():
    sys.path.insert(0, str(SCRIPTS))
    try:
        yield {name: importlib.import_module(name) for name in ("prepare_300w_lp", "prepare_aflw2000_3d", "fetch_bfm68")}
    finally:
        sys.path.remove(str(SCRIPTS))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, scripts):
    """Steps 1-3 of the recipe on the stand-ins: {"lp": 300W_LP root, "aflw": AFLW2000 root, ...}."""
    tmp = tmp_path_factory.mktemp("recipe")
    paths = write_standins(tmp / "downloads", num_300wlp=NUM_300WLP, num_aflw2000=NUM_AFLW, image_size=SIZE)
    assert scripts["prepare_300w_lp"].main([str(paths["300W-LP.zip"]), "--out", str(tmp / "300wlp"),
                                            "--bases", str(paths["bases"]), "--no-verify-bases"]) == 0
    assert scripts["prepare_aflw2000_3d"].main([str(paths["AFLW2000-3D.zip"]), "--out", str(tmp / "aflw2000")]) == 0
    return {"tmp": tmp, "lp": tmp / "300wlp" / "300W_LP", "aflw": tmp / "aflw2000" / "AFLW2000", **paths}


def test_fetching_bases_with_the_wrong_checksum_is_refused_and_leaves_nothing(prepared, scripts, capsys):
    out = prepared["tmp"] / "bfm68"
    url = prepared["bases"].resolve().as_uri()  # the stand-ins' fakes: not 3DDFA's SHA-256
    assert scripts["fetch_bfm68"].main(["--out", str(out), "--url-base", url]) == 1
    assert "SHA-256" in capsys.readouterr().err and not any(out.iterdir())


def test_prepared_300wlp_gives_the_faces_own_3d_landmarks_and_pose(prepared):
    ds = W300LP(prepared["lp"])
    assert ds.depth == "prepared" and len(ds) == NUM_300WLP and ds.skipped == []
    truth = SyntheticFaces(NUM_300WLP + NUM_AFLW, image_size=SIZE, scheme="68", seed=0)
    for i in (0, NUM_300WLP - 1):
        item, face = ds[i], truth[int(ds[i]["id"].split("_")[1])]
        np.testing.assert_allclose(item["landmarks"], face["landmarks"], atol=1e-3)
        np.testing.assert_allclose(item["pose"], face["pose"], atol=1e-3)
    aflw = AFLW2000_3D(prepared["aflw"])
    np.testing.assert_allclose(aflw[0]["landmarks"], truth[NUM_300WLP]["landmarks"], atol=1e-3)


def test_train_on_300wlp_then_evaluate_on_aflw2000_prints_the_protocol_table(prepared, capsys):
    run = prepared["tmp"] / "run"
    tiny = ["--preset", "quick", "--max-steps", "1", "--num-valid", "4", "--device", "cpu", "--no-progress"]
    assert main(["train", "--data", f"300wlp:{prepared['lp']}", "--out", str(run), *tiny]) == 0
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["scheme"] == "68"  # the protocol's 68 points, chosen from the data
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--data", f"aflw2000:{prepared['aflw']}", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "AFLW2000-3D protocol" in out and "3D-FAN (published)" in out and "balanced" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_images"] == NUM_AFLW and metrics["gte_z"] is not None
    assert metrics["protocol"]["model"]["num_images"] == NUM_AFLW and metrics["protocol"]["model"]["nme"] > 0
    # On the folder it trained on, evaluate scores only the held-out test faces (4 of 24).
    assert main(["evaluate", "--run", str(run), "--data", f"300wlp:{prepared['lp']}", "--no-progress"]) == 0
    assert json.loads((run / "metrics.json").read_text())["num_images"] == 4


def test_the_z_stage_refuses_2d_only_300wlp(prepared, tmp_path, capsys):
    import shutil

    flat = tmp_path / "300W_LP"
    shutil.copytree(prepared["lp"], flat, ignore=shutil.ignore_patterns("landmarks_3d"))
    assert W300LP(flat).depth == "2d"
    assert main(["train", "--data", f"300wlp:{flat}", "--out", str(tmp_path / "run"), "--max-steps", "1",
                 "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no depth" in err and "--bases" in err and not (tmp_path / "run" / "checkpoint.pt").exists()


def test_unverified_bases_are_refused_before_anything_is_extracted(prepared, scripts, tmp_path, capsys):
    out = tmp_path / "300wlp"
    assert scripts["prepare_300w_lp"].main([str(prepared["300W-LP.zip"]), "--out", str(out),
                                            "--bases", str(prepared["bases"])]) == 1
    assert "SHA-256" in capsys.readouterr().err and not out.exists()
