"""`fa3d synth` writes real-format files that the 3DFAW reader reads back exactly."""
import torch

from fa3d.cli import main
from fa3d.data.splits import SYNTHETIC_VALID_SEED_OFFSET
from fa3d.data import SyntheticFaces, ThreeDFAW


def test_synth_writes_3dfaw_layout_and_refuses_to_overwrite(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path), "--num-train", "3", "--num-valid", "2",
                 "--image-size", "96", "--seed", "5"]) == 0
    train, valid = ThreeDFAW(tmp_path, split="train"), ThreeDFAW(tmp_path, split="valid")
    assert (len(train), len(valid)) == (3, 2)
    expected = SyntheticFaces(2, image_size=96, seed=5 + SYNTHETIC_VALID_SEED_OFFSET)
    for i in range(2):
        torch.testing.assert_close(valid[i]["landmarks"], expected[i]["landmarks"], atol=1e-4, rtol=0)
        assert valid[i]["image"].shape == (3, 96, 96)
        # JPEG is lossy but the picture is the same one
        assert (valid[i]["image"].float() - expected[i]["image"].float()).abs().mean() < 6
    before = (tmp_path / "train_lm").stat().st_mtime_ns, sorted(p.read_bytes() for p in (tmp_path / "train_lm").iterdir())
    assert main(["synth", "--out", str(tmp_path), "--num-train", "3", "--num-valid", "0",
                 "--image-size", "96", "--seed", "6"]) == 2
    assert "already holds files" in capsys.readouterr().err
    assert sorted(p.read_bytes() for p in (tmp_path / "train_lm").iterdir()) == before[1]


def test_demo_yaw_grid_sorts_by_yaw():
    from fa3d.course.demo import synthetic_yaw_grid

    fig = synthetic_yaw_grid(num_faces=4, image_size=64, ncols=2)
    titles = [ax.get_title() for ax in fig.axes]
    yaws = [float(t.split("°")[0].split()[1]) for t in titles]
    assert yaws == sorted(yaws) and len(yaws) == 4
