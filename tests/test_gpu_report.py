"""The prepared GPU report runs end to end in its CPU form (--device cpu --tiny), so it cannot rot
before a GPU is lent: every section present, no section failed, the numbers sane."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_report_tiny_on_the_cpu(tmp_path):
    out = tmp_path / "report.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_report.py"), "--device", "cpu", "--tiny",
                           "--out", str(out)], capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report) >= {"device", "stages", "input", "inference", "ddp", "train"}
    assert [r["stage"] for r in report["stages"]] == ["detection", "regression", "joint", "z"]
    assert all(r["images_per_s"] > 0 and r["gflop_per_image"] > 0 and r["mfu"] is None for r in report["stages"])
    assert report["stages"][3]["gflop_per_image"] > report["stages"][0]["gflop_per_image"]   # Z runs the whole chain
    assert report["input"]["render_per_s"] > 0 and report["input"]["device_side_per_s"] > 0
    assert report["ddp"]["returncode"] == 0 and report["ddp"]["backend"] == "gloo"
    assert report["train"]["returncode"] == 0 and report["train"]["loss_fell"]
    assert "detection" in proc.stdout and "wrote" in proc.stdout
