"""The course notebooks: well-formed and committed with their outputs (as GitHub shows them),
executed by papermill in quick mode (kernel "fa3d", the project's environment) with assertions
on the metrics JSON each notebook writes — not only that no cell failed — and by nbval
(``pytest --nbval-lax``), and one exported page opened in a real browser with no network.

The notebooks run in order into one output folder, so later notebooks reuse the quick
checkpoints of earlier ones, as a student's would.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
_spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "benchmarks" / "run_notebooks.py")
run_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_notebooks)


def _finite(*values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


# What each notebook must have computed (keys of OUT_DIR/<name>.json).
def _check_00(m):
    assert m["num_landmarks"] == 66


def _check_01(m):
    assert m["crop_roundtrip_max_px"] < 1e-3
    assert m["heatmap_decode_error_px"] < 0.1


def _check_trained(m):
    # a trained stage beats the mean-shape baseline by a wide margin
    assert _finite(m["model_gte"], m["baseline_gte"])
    assert m["model_gte"] < 0.6 * m["baseline_gte"], m


def _check_built(m):
    # the network built step by step in the notebook is the library's (same weights, same output)
    assert m["built_vs_library_max_diff"] < 1e-5
    _check_trained(m)


def _check_03(m):
    _check_built(m)
    assert m["model_gte"] < m["detection_only_gte"]          # regression refines detection
    assert _finite(m["detection_only_gte_before_joint"])     # notebook 02's detector on the same faces


def _check_05(m):
    _check_trained(m)
    assert m["gte_check_max_abs_diff"] < 1e-9 and m["cvgtce_check_max_abs_diff"] < 1e-9   # eqs. (2)-(4) by hand
    assert m["reflection_example"]["cvgtce_if_reflections_allowed"] < 1e-6 < m["reflection_example"]["cvgtce"]


def _check_06(m):
    _check_trained(m)
    assert m["sweep_formula_max_error_px"] < 1e-3 and m["frontal_closest_point"] == "nose_tip"
    assert m["num_plotly_figures"] >= 4


def _check_07(m):
    # 07's quick run is a quarter-length demonstration of the schedule and the resume (400 faces): it
    # must learn, by a smaller margin than the course's runs
    assert _finite(m["model_gte"], m["baseline_gte"]) and m["model_gte"] < 0.75 * m["baseline_gte"], m
    assert m["resumed"] and m["lr_formula_max_rel_diff"] < 1e-9


def _check_10(m):
    # the 300W-LP -> AFLW2000-3D recipe on stand-ins in the real formats, end to end
    assert m["standin_fit_vs_pt2d_max_px"] < 0.01 and m["standin_yaw_sign_agreement"] == 1.0
    assert m["test_faces"] == 8 and _finite(m["gte_xyz"], m["balanced_nme"])


def _check_08(m):
    variants = m["variants"]
    assert len(variants) >= 4 and all(_finite(v["gte_z"], v["gte_z_gt_heatmaps"], v["delta_ci95"])
                                      for v in variants.values())
    paper = next(v for name, v in variants.items() if name.startswith("paper"))
    # the verdicts follow the rule the notebook states (§5): a finding needs the interval over faces, one sign
    # in every seed and a difference beyond the spread between seeds; one seed gives no finding
    for v in variants.values():
        if v is paper:
            continue
        assert len(v["delta_per_seed"]) == len(m["seeds"]) and v["verdict"] in ("better", "worse", "inconclusive")
        if v["verdict"] != "inconclusive":
            sign = 1 if v["verdict"] == "worse" else -1
            assert len(m["seeds"]) > 1 and all(sign * d > 0 for d in v["delta_per_seed"])
            assert abs(v["delta_vs_paper"]) > max(v["delta_ci95"], v["delta_seed_spread"])
    # the paper's setting learned depth: its short runs (300 faces, 4 Z epochs) reach 0.62 x the mean
    # shape on fa3d 0.4's harder faces (0.53 on 0.3's)
    assert paper["gte_z"] < 0.7 * m["baseline_gte_z"]


def _check_09(m):
    # 300-W (in the tests: fa3d's stand-ins in its layout): split by photo, a run fine-tuned on synthetic + 300-W
    # that trained on its train part only, never scored on a photo it trained on, and refused for release
    assert m["straddling_photos"] == 0 and m["faces_per_part"]["train"] > 0 and m["faces_per_part"]["validation"] > 0
    assert m["trained_photos"] > 0 and m["trained_photos_outside_train"] == 0 and m["trained_photos_are_train_part"]
    assert m["scored_trained_overlap"] == 0 and m["all_split_scored"] == m["num_faces"] - m["train_part_faces"]
    assert m["export_refused"] and m["export_message_names_research"] and m["shipped_exports"]
    assert m["same_synthetic_test_faces"] and m["z_net_kept"]
    assert m["z_loss_vs_known_mse"] < 1e-9 and m["z_loss_grad_without_z"] == 0.0
    assert m["augment_eye_order_kept"] == m["augment_crops"]
    rows = [m["shipped_validation"], m["finetuned_validation"], m["mean_shape_validation"]]
    assert all(_finite(r["nme"], r["failures"], r["auc"], *r["regions"].values()) for r in rows)
    assert all(_finite(*m[k]["means"], m[k]["balanced"]) for k in ("synthetic_yaw_before", "synthetic_yaw_after"))
    assert m["shipped_validation"]["nme"] < m["mean_shape_validation"]["nme"]


CHECKS = {
    "00_overview": _check_00,
    "01_data": _check_01,
    "02_detection": _check_built,
    "03_regression": _check_03,
    "04_z_regressor": _check_built,
    "05_evaluation": _check_05,
    "06_explore_3d": _check_06,
    "07_full_training": _check_07,
    "08_ablations": _check_08,
    "09_real_faces": _check_09,
    "10_public_3d_data": _check_10,
}

#: The notebooks with code exercises (nbgrader solution regions, `make assignments`).
EXERCISE_NOTEBOOKS = ("01_data", "02_detection", "03_regression", "04_z_regressor", "05_evaluation", "08_ablations")

# A hang guard, not a speed target (the measured times are in docs/course.md): four times the
# course's 5-minute budget per notebook on a 2-core CPU.
NOTEBOOK_TIME_LIMIT_S = 1200


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_well_formed_with_its_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{path.name}: kernelspec must be python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert any("parameters" in c.metadata.get("tags", []) for c in code), f"{path.name}: no parameters cell"
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in code)
    # committed executed (`make notebooks`), so that GitHub shows every figure
    assert all(c.get("execution_count") is not None for c in code), \
        f"{path.name}: commit it executed: `make notebooks` (or run_notebooks.py --commit {path.stem})"
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"], f"{path.name}: a committed cell failed"
    assert path.stat().st_size <= run_notebooks.MAX_COMMITTED_BYTES, f"{path.name}: {path.stat().st_size:,} bytes"
    assert not any(run_notebooks._is_plotly_library(o) for o in outputs), f"{path.name}: plotly.js embedded"
    for o in outputs:   # a 3D figure carries a static picture for viewers that run no JavaScript
        data = o.get("data", {})
        assert run_notebooks.PLOTLY_MIME not in data or "image/jpeg" in data, f"{path.name}: a 3D figure without its picture"
        assert "image/png" not in data or len(data["image/png"]) < 150_000, f"{path.name}: a large PNG (use JPEG)"
    text = "\n".join(c.source for c in nb.cells)
    assert "colab-badge.svg" in text and "## Exercises" in text
    assert (ROOT / "notebooks" / "solutions" / f"{path.stem}_solutions.md").exists()
    assert path.stem in CHECKS, f"add the assertions for {path.stem} to CHECKS"



# A number stated in prose with a unit, e.g. "12.38 %", "5.4 ms", "0.52 s" (not §2.1, eq. (3) or 2.5e-5).
PROSE_NUMBER = re.compile(r"(?<![\w.§$])(\d+\.\d+)\s*(?:%|px\b|ms\b|s\b|seconds\b|minutes?\b|GFLOP|points?\b)")
# Numbers that are definitions, not results: the sentence they appear in says so.
PROSE_DEFINITIONS = {"08_ablations": {"2.5", "97.5"}}    # the percentile interval's quantiles


def _paper_numbers() -> set[str]:
    from fa3d.course.report import PAPER_3DFAW
    values = [v for row in PAPER_3DFAW["test"].values() for v in row.values()] + list(PAPER_3DFAW["valid"].values())
    return {f"{float(v):.{d}f}" for v in values for d in range(1, 5)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_number_the_prose_states_is_printed_by_the_notebook_or_quoted_from_the_paper(path):
    """A result in the Markdown must come from the run under it: each decimal number with a unit appears
    in the notebook's own outputs (as a number, at the precision written), or is one of the paper's
    3DFAW results (its Tables 2 and 3), or a definition listed above, or its paragraph names the benchmark
    command that measured it (`python benchmarks/...`). The "The paper and fa3d" tables
    quote the paper and are left out."""
    nb = nbformat.read(path, as_version=4)
    printed = set()
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            text = out.get("text", "") + "".join(str(out.get("data", {}).get(k, "")) for k in ("text/plain", "text/markdown", "text/html"))
            printed |= set(re.findall(r"\d+\.\d+", text))
    allowed = printed | _paper_numbers() | PROSE_DEFINITIONS.get(path.stem, set())
    stale = [(i, m.group(0)) for i, cell in enumerate(nb.cells)
             if cell.cell_type == "markdown" and not cell.source.startswith(("## References", "## The paper and fa3d"))
             for paragraph in cell.source.split("\n\n") if "`python benchmarks/" not in paragraph   # cites its command
             for m in PROSE_NUMBER.finditer(paragraph) if m.group(1) not in allowed]
    assert not stale, (f"{path.name}: numbers in the prose that the notebook does not print (cell, number): {stale}; "
                       "print them in a code cell, or take them from the run")


def test_static_picture_of_a_3d_figure_draws_its_image_and_scene_but_no_hidden_trace():
    import io

    import numpy as np
    import plotly.graph_objects as go
    import plotly.io as pio
    from PIL import Image

    from fa3d.course import viz
    from fa3d.data.synthetic import SyntheticFaces

    item = SyntheticFaces(1, image_size=64, scheme="68", seed=0)[0]
    fig = viz.image_and_3d_plotly(item["image"], item["landmarks"], "68", title="a face")
    picture = lambda f: np.asarray(Image.open(io.BytesIO(run_notebooks.static_picture(json.loads(pio.to_json(f))))))
    shown = picture(fig)
    assert shown.shape[1] == 2 * shown.shape[0]                  # two panels: the image and the 3D scene
    assert (shown < 200).any(axis=-1).mean() > 0.02               # something is drawn
    hidden = go.Figure(fig).add_trace(go.Scatter3d(x=[0, 500], y=[0, 500], z=[0, 500], visible=False), 1, 2)
    assert np.abs(picture(hidden).astype(int) - shown.astype(int)).mean() < 1.0   # a hidden trace draws nothing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_pairs_with_its_percent_script(path):
    jupytext = pytest.importorskip("jupytext")
    script = path.with_suffix(".py")
    assert script.exists(), f"{script.name} missing (jupytext pairing)"
    a = [(c.cell_type, c.source.strip()) for c in jupytext.read(script).cells]
    b = [(c.cell_type, c.source.strip()) for c in nbformat.read(path, as_version=4).cells]
    assert a == b, f"{path.name} and {script.name} differ: run `jupytext --sync {script}`"


@pytest.fixture(scope="session")
def notebook_out(tmp_path_factory):
    return tmp_path_factory.mktemp("notebooks")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_in_quick_mode(path, notebook_out):
    executed, seconds = run_notebooks.execute(path, notebook_out, cell_timeout=NOTEBOOK_TIME_LIMIT_S)
    nb = nbformat.read(executed, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    metrics_path = notebook_out / f"{path.stem}.json"
    assert metrics_path.exists(), f"{path.name} wrote no {metrics_path.name}"
    metrics = json.loads(metrics_path.read_text())
    CHECKS[path.stem](metrics)
    # the teacher's solutions of the code exercises pass their checks (tests/test_assignments.py: the
    # student versions fail only there)
    exercises = {k: v for k, v in metrics.items() if k.startswith("exercise_")}
    assert len(exercises) >= (2 if path.stem in EXERCISE_NOTEBOOKS else 0), exercises
    assert all(_finite(v) and v < 1e-4 for v in exercises.values()), exercises
    assert seconds < NOTEBOOK_TIME_LIMIT_S, f"{path.name} took {seconds:.0f} s"
    print(f"{path.stem}: {seconds:.0f} s")


@pytest.mark.slow
def test_exported_notebook_draws_its_3d_figures_offline_in_a_real_browser(notebook_out, tmp_path):
    from headless_browser import plotly_scene_drawn, render

    executed = notebook_out / "executed" / "06_explore_3d.ipynb"
    if not executed.exists():   # run alone (-k browser): execute it here rather than skip
        run_notebooks.execute(next(p for p in NOTEBOOKS if p.stem == "06_explore_3d"), notebook_out,
                              cell_timeout=NOTEBOOK_TIME_LIMIT_S)
    page = run_notebooks.export_html(executed, tmp_path)
    assert "cdn.plot.ly" not in page.read_text()[:200_000]
    dom, picture = render(page, tmp_path)
    drawn, why = plotly_scene_drawn(dom, picture)
    assert drawn, f"{page}: {why}"


@pytest.mark.slow
def test_committed_notebooks_pass_nbval(tmp_path):
    """``pytest --nbval-lax``: every committed notebook runs top to bottom in the project's kernel
    (cells tagged ``nbval-check-output`` must print what they printed when committed). On copies,
    so that their outputs land in a temporary folder."""
    pytest.importorskip("nbval")
    copies = tmp_path / "notebooks"
    copies.mkdir()
    for path in NOTEBOOKS:
        shutil.copy(path, copies / path.name)
    env = {**os.environ, "FA3D_INTERACTIVE": "0", "PYTEST_ADDOPTS": ""}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-kernel-name", "fa3d", "--nbval-cell-timeout", str(NOTEBOOK_TIME_LIMIT_S),
                           "--rootdir", str(tmp_path), *sorted(str(p) for p in copies.glob("*.ipynb"))],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
