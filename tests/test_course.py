"""fa3d.course: batch sizes that fit the GPU and the quick runs that the notebooks share."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fa3d
from fa3d import course
from fa3d.checkpoint import load_checkpoint
from fa3d.models import STAGES
from fa3d.schedules import get_schedule
from fa3d.runs import load_run, read_log, same_settings


def test_largest_batch_that_fits_halves_until_it_fits():
    tried = []

    def fits(b):
        tried.append(b)
        return b <= 5

    assert course.largest_batch_that_fits(16, fits) == 4 and tried == [16, 8, 4]
    assert course.largest_batch_that_fits(8, lambda b: True) == 8
    assert course.largest_batch_that_fits(8, lambda b: False) == 0


def test_pick_batch_sizes_on_a_cpu_keeps_the_schedules():
    sched = get_schedule("paper")
    assert course.pick_batch_sizes("paper", "cpu") == {s: sched.stage(s).batch_size for s in STAGES}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pick_batch_sizes_measures_on_the_gpu():
    quick = course.pick_batch_sizes("quick", "cuda")   # tiny nets: the schedule's batches fit any GPU
    assert quick == {s: get_schedule("quick").stage(s).batch_size for s in STAGES}
    paper = course.pick_batch_sizes("paper", "cuda", stages=("z",))
    assert 1 <= paper["z"] <= get_schedule("paper").z.batch_size


@pytest.mark.slow
def test_ensure_run_trains_what_is_missing_then_reuses_it(tmp_path, capsys):
    run = course.ensure_run("regression", tmp_path, num_train=16, epochs_scale=0.01, progress=False)
    assert run == course.course_run_dir("regression", tmp_path)
    det = course.course_run_dir("detection", tmp_path)
    assert [r["stage"] for r in read_log(det)] == ["detection"]          # trained first, as notebook 02 would
    assert [r["stage"] for r in read_log(run)] == ["regression", "joint"]
    assert load_checkpoint(run / "checkpoint.pt")["config"]["init_from"] == str(det)
    before = (run / "checkpoint.pt").stat().st_mtime_ns
    capsys.readouterr()
    assert course.ensure_run("regression", tmp_path, progress=False) == run
    assert "reusing" in capsys.readouterr().out
    assert (run / "checkpoint.pt").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="unknown course run"):
        course.ensure_run("hourglass", tmp_path)


# ----------------------------------------------------------------------------- ready-made runs

def _tiny_chain(out):
    return course.ensure_run("regression", out, num_train=16, epochs_scale=0.01, progress=False)


@pytest.mark.slow
def test_ready_made_runs_export_small_and_install_as_they_were_trained(tmp_path, monkeypatch, capsys):
    trained = tmp_path / "trained"
    run = _tiny_chain(trained)
    ready = tmp_path / "ready"
    proc = subprocess.run([sys.executable, "-m", "fa3d.course", "export", str(trained / "runs"), "--out", str(ready)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=120)
    assert proc.returncode == 0, proc.stderr                     # make course-runs' command
    assert sorted(p.name for p in ready.iterdir()) == ["quick_detection", "quick_regression"]
    det = load_checkpoint(ready / "quick_detection" / "checkpoint.pt")
    reg = load_checkpoint(ready / "quick_regression" / "checkpoint.pt")
    assert det["base"] is None and set(det["models"]) == {"detection", "regression", "z"}
    # regression + joint changed the 2D subnets; the Z net is the detection run's, stored once
    assert reg["base"] == "quick_detection" and set(reg["models"]) == {"detection", "regression"}
    assert "optimizer" not in reg and reg["models"]["detection"]["backbone.conv1.weight"].dtype == torch.float16

    monkeypatch.setattr(course, "READY_RUNS_DIR", ready)
    fresh = tmp_path / "fresh"
    capsys.readouterr()
    installed = course.ensure_run("regression", fresh, num_train=16, epochs_scale=0.01, progress=False)
    assert "installed the ready-made" in capsys.readouterr().out
    assert not (fresh / "runs" / "quick_detection").exists()       # installed alone, nothing trained
    ckpt = load_checkpoint(installed / "checkpoint.pt")
    assert ckpt["ready_made"] and ckpt["finished"] and ckpt["config"]["out"] == str(installed)
    assert read_log(installed) == read_log(run)
    ours, theirs = load_run(run)[0], load_run(installed)[0]
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():    # float16 kernels: a rounding, not another model (decoded landmarks could
        a, b = ours.detection(x), theirs.detection(x)   # jump between two near-equal peaks: compare maps)
    assert (a - b).abs().max() < 1e-2 * a.abs().max()
    for name in ("detection", "regression", "z"):
        for (k, v), w in zip(getattr(ours, name).state_dict().items(), getattr(theirs, name).state_dict().values()):
            assert torch.allclose(v.float(), w.float(), rtol=1e-3, atol=1e-4), (name, k)


@pytest.mark.slow
def test_ready_made_run_is_used_only_for_the_same_settings_and_fa3d(tmp_path, monkeypatch, capsys):
    trained = tmp_path / "trained"
    _tiny_chain(trained)
    ready = tmp_path / "ready"
    course.export_ready_runs(trained / "runs", ready)
    other = course.course_config("detection", tmp_path / "x", num_train=17, epochs_scale=0.01)
    assert not course.install_ready_run(other, ready)                     # other settings: trained instead
    same = course.course_config("detection", tmp_path / "x", num_train=16, epochs_scale=0.01)
    assert course.install_ready_run(same, ready)
    monkeypatch.setattr(fa3d, "__version__", "9.9.9")
    capsys.readouterr()
    assert course.ready_checkpoint("quick_detection", ready) is None
    assert "made by fa3d" in capsys.readouterr().out
    # train=True trains even though a ready-made run is installed
    monkeypatch.undo()
    monkeypatch.setattr(course, "READY_RUNS_DIR", ready)
    course.ensure_run("detection", tmp_path / "y", num_train=16, epochs_scale=0.01, progress=False)
    assert load_checkpoint(tmp_path / "y" / "runs" / "quick_detection" / "checkpoint.pt").get("ready_made")
    course.ensure_run("detection", tmp_path / "y", train=True, num_train=16, epochs_scale=0.01, progress=False)
    assert not load_checkpoint(tmp_path / "y" / "runs" / "quick_detection" / "checkpoint.pt").get("ready_made")


@pytest.mark.parametrize("name", list(course.COURSE_RUNS))
def test_the_committed_ready_made_runs_are_current(name):
    """The course's ready-made runs were made by this fa3d with the settings the notebooks ask for;
    after a change that makes them stale, `make course-runs` refreshes them."""
    ckpt = course.ready_checkpoint(f"quick_{name}")
    assert ckpt is not None, f"fa3d/weights/course/quick_{name} is missing or stale: run `make course-runs`"
    cfg = course.course_config(name, "anywhere")
    assert same_settings(ckpt["config"], cfg.to_dict())
    assert ckpt["finished"]


def test_every_committed_ready_made_run_loads_and_all_fit_the_package_budget():
    """Notebook 08's 18 ablation runs (int8 kernels) beside the quick runs (float16): each one current
    (made by this fa3d, its base present), kernels stored as fa3d.course.ready_run_kernels says, and all
    of them together under 45 MB, the budget of what a `pip install` of the course brings."""
    folders = sorted(p for p in course.READY_RUNS_DIR.iterdir() if (p / "checkpoint.pt").is_file())
    ablations = [p.name for p in folders if p.name.startswith("08_")]
    assert len(ablations) == 18, ablations              # six variants x three seeds
    for folder in folders:
        assert course.ready_checkpoint(folder.name) is not None, f"{folder.name} is stale: `make course-runs`"
        stored = torch.load(folder / "checkpoint.pt", weights_only=True)["models"]      # as stored, not as read
        kernels = {v.dtype for state in stored.values() for k, v in state.items() if k.endswith("weight") and v.dim() > 1}
        assert kernels == {torch.int8 if course.ready_run_kernels(folder.name) == "int8" else torch.float16}, folder.name
    total = sum(f.stat().st_size for f in course.READY_RUNS_DIR.rglob("*") if f.is_file())
    assert total < 45e6, f"the ready-made runs take {total / 1e6:.1f} MB"


def test_a_notebooks_own_folder_is_emptied_only_when_it_made_it(tmp_path):
    folder = course.own_folder(tmp_path / "nb", "09")
    (folder / "old.txt").write_text("from the last run")
    assert list(course.own_folder(tmp_path / "nb", "09").iterdir()) == [folder / ".made-by-notebook-09"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("the user's")
    with pytest.raises(FileExistsError, match="not made by notebook 09"):
        course.own_folder(mine, "09")
    assert (mine / "keep.txt").read_text() == "the user's"
