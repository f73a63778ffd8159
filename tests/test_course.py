"""fa3d.course: batch sizes that fit the GPU and the quick runs that the notebooks share."""
from __future__ import annotations

import pytest
import torch

from fa3d import course
from fa3d.checkpoint import load_checkpoint
from fa3d.schedules import STAGES, get_schedule
from fa3d.runs import read_log


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
