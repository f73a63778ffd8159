"""The course's code exercises: the student versions made by notebooks/make_assignments.py, the
nbgrader cells of notebooks 01-05 and 08, and the checks of fa3d/exercises.py (they pass with the
teacher's solution and fail, saying why, for a wrong one, for the student's stub, or for an answer
that calls fa3d's own version of the exercise, under any name).

The teacher notebooks are read from their percent scripts (notebooks/NN_*.py, the source the
.ipynb files are synced from), so these tests hold whether or not the pairs were synced.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import json
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fa3d import metrics
from fa3d.course import exercises
from fa3d.heatmaps import disk_heatmaps, disk_radius, resize_points
from fa3d.models import ZConfig, ZRegressor, detection_loss
from fa3d.models.regression import Hourglass

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
EXERCISE_NOTEBOOKS = ("01_data", "02_detection", "03_regression", "04_z_regressor", "05_evaluation", "08_ablations")
_spec = importlib.util.spec_from_file_location("make_assignments", ROOT / "notebooks" / "make_assignments.py")
make_assignments = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_assignments)

SOLUTION_META = {"grade": False, "locked": False, "schema_version": 3, "solution": True, "task": False}
CHECK_META = {"grade": True, "locked": True, "points": 1, "schema_version": 3, "solution": False, "task": False}


def _teacher(stem: str):
    return jupytext.read(ROOT / "notebooks" / f"{stem}.py")


def _exercises(nb) -> list[tuple[int, int]]:
    """(solution cell index, check cell index) of every exercise of ``nb``."""
    cells = {c.metadata["nbgrader"]["grade_id"]: i for i, c in enumerate(nb.cells) if "nbgrader" in c.metadata}
    return [(i, cells.get(f"{gid}_check")) for gid, i in cells.items() if not gid.endswith("_check")]


def _function_name(source: str) -> str:
    return re.search(r"^def (\w+)\(", source, re.M).group(1)


def _namespace() -> dict:
    """What the exercise cells use from their notebooks' imports, and the notebooks' facts dict."""
    return {"np": np, "torch": torch, "nn": nn, "F": F, "metrics": metrics, "Hourglass": Hourglass,
            "disk_heatmaps": disk_heatmaps, "disk_radius": disk_radius, "resize_points": resize_points,
            "detection_loss": detection_loss, "facts": {}}


ALL_EXERCISES = [(stem, sol, chk) for stem in EXERCISE_NOTEBOOKS for sol, chk in _exercises(_teacher(stem))]
IDS = [f"{stem}:{_teacher(stem).cells[sol].metadata['nbgrader']['grade_id']}" for stem, sol, _ in ALL_EXERCISES]


# ----------------------------------------------------------------------------- the generator

def _expected_student_source(source: str) -> str:
    """The ClearSolutions rule written independently of make_assignments (a regular expression)."""
    return re.sub(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION$",
                  r"\1# YOUR CODE HERE\n\1raise NotImplementedError()", source, flags=re.S | re.M)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_student_version_clears_every_solution_and_keeps_the_rest(script):
    teacher = jupytext.read(script)
    student = make_assignments.student_version(teacher, script.stem)
    assert len(student.cells) == len(teacher.cells) and student.metadata == teacher.metadata
    for t, s in zip(teacher.cells, student.cells):
        assert "### BEGIN SOLUTION" not in s.source and "### END SOLUTION" not in s.source
        assert s.cell_type == t.cell_type and s.metadata == t.metadata
        badge = f"/notebooks/{script.stem}.ipynb"          # the student edition's badge opens its own copy
        expected = t.source.replace(badge, f"/notebooks/student/{script.stem}.ipynb") if t.cell_type == "markdown" \
            else _expected_student_source(t.source)
        assert s.source == expected
        if "### BEGIN SOLUTION" not in t.source and badge not in t.source:
            assert s.source == t.source
    assert "### BEGIN SOLUTION" in "".join(c.source for c in teacher.cells) or script.stem not in EXERCISE_NOTEBOOKS


def test_student_version_clears_outputs_and_keeps_the_indentation():
    code = ("def f(x):\n    \"\"\"doc\"\"\"\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\n\n"
            "y = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION\n")
    cell = nbformat.v4.new_code_cell(code, execution_count=3,
                                     outputs=[nbformat.v4.new_output("stream", name="stdout", text="hi")])
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_markdown_cell("text")])
    out = make_assignments.student_version(nb)
    assert out.cells[0].source == ("def f(x):\n    \"\"\"doc\"\"\"\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
                                   "\n\ny = 1\n# YOUR CODE HERE\nraise NotImplementedError()\n")
    assert out.cells[0].outputs == [] and out.cells[0].execution_count is None
    assert nb.cells[0].execution_count == 3 and "return x" in nb.cells[0].source     # the teacher's is untouched
    assert out.cells[1] == nb.cells[1]


@pytest.mark.parametrize("source, says", [
    ("def f():\n    ### BEGIN SOLUTION\n    return 1\n", "BEGIN SOLUTION without an ### END SOLUTION"),
    ("def f():\n    return 1\n    ### END SOLUTION\n", "END SOLUTION without a ### BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside the solution region"),
])
def test_unmatched_marker_names_the_notebook_and_the_cell(source, says, tmp_path, capsys):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("intro"), nbformat.v4.new_code_cell(source)])
    with pytest.raises(make_assignments.MarkerError, match=re.escape(says)) as err:
        make_assignments.student_version(nb, "07_broken.ipynb")
    assert "07_broken.ipynb, cell 1" in str(err.value)
    nbformat.write(nb, tmp_path / "07_broken.ipynb")
    assert make_assignments.main(["--src", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    assert "07_broken.ipynb, cell 1" in capsys.readouterr().err


def test_main_writes_a_complete_student_course(tmp_path):
    src, out = tmp_path / "teacher", tmp_path / "student"
    src.mkdir()
    for script in SCRIPTS:
        nbformat.write(jupytext.read(script), src / f"{script.stem}.ipynb")
    assert make_assignments.main(["--src", str(src), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{s.stem}.ipynb" for s in SCRIPTS)
    for script in SCRIPTS:
        nb = nbformat.read(out / f"{script.stem}.ipynb", as_version=4)
        text = "".join(c.source for c in nb.cells)
        assert "### BEGIN SOLUTION" not in text
        assert text.count("raise NotImplementedError()") >= (2 if script.stem in EXERCISE_NOTEBOOKS else 0)


# ----------------------------------------------------------------------------- the solution keys

EXECUTED = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
KEYS = ROOT / "notebooks" / "solutions"


@pytest.mark.parametrize("stem", [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))])
def test_committed_student_edition_is_what_make_assignments_writes_and_its_badge_opens_it(stem):
    teacher = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    committed = ROOT / "notebooks" / make_assignments.STUDENT_FOLDER / f"{stem}.ipynb"
    assert committed.exists(), f"{committed} is missing: run `make assignments`"
    student = nbformat.read(committed, as_version=4)
    assert student == make_assignments.student_version(teacher, stem), f"{committed.name} is out of date: run `make assignments`"
    text = "\n".join(c.source for c in student.cells)
    assert f"/notebooks/student/{stem}.ipynb" in text and f"/notebooks/{stem}.ipynb" not in text
    assert "### BEGIN SOLUTION" not in text and not any(c.get("outputs") for c in student.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", EXECUTED, ids=lambda p: p.stem)
def test_committed_solution_key_is_what_make_solutions_writes(path):
    key = make_assignments.key_path(KEYS, path.stem)
    committed = key.read_text(encoding="utf-8")
    expected = make_assignments.solution_key(nbformat.read(path, as_version=4), path.stem,
                                             make_assignments.hand_part(committed))
    assert committed == expected, f"{key.name} is out of date with {path.name}: run `make solutions`"


@pytest.mark.parametrize("path", EXECUTED, ids=lambda p: p.stem)
def test_solution_key_has_one_banner_and_a_worked_answer_to_every_open_exercise(path):
    text = make_assignments.key_path(KEYS, path.stem).read_text(encoding="utf-8")
    hand = make_assignments.hand_part(text)
    generated = text[:len(text) - len(hand)]
    assert hand, f"{path.stem}: no '{make_assignments.HAND}' heading"
    assert [line for line in text.splitlines() if line.startswith(">")] == \
        [line for line in generated.splitlines() if line.startswith("> **fa3d ")], "one banner, at the top"
    assert len(re.findall(r"^> \*\*fa3d ", text, re.M)) == 1
    titles = make_assignments.open_exercises(nbformat.read(path, as_version=4))
    headings = re.findall(r"^### (\d+)\. (.+)$", hand, re.M)
    assert headings == [(str(n), t) for n, t in enumerate(titles, 1)], f"{path.stem}: {headings} vs {titles}"
    answers = re.split(r"^### \d+\. .+$", hand, flags=re.M)[1:]
    for (n, title), answer in zip(headings, answers):
        assert answer.strip() and make_assignments.NO_ANSWER not in answer, f"{path.stem}: exercise {n} has no answer"


def _small_notebook(printed: str = '{"model_gte": 12.379390746, "runs": {"a": 3, "b": [1.5, 2.25]}, '
                                   '"exercise_f_max_diff": 0.0, "n": 123456}'):
    meta = lambda gid, solution: {"nbgrader": {"grade": not solution, "grade_id": gid, "locked": not solution,
                                               "schema_version": 3, "solution": solution, "task": False,
                                               **({} if solution else {"points": 1})}}
    stream = lambda text: [nbformat.v4.new_output("stream", name="stdout", text=text)]
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 42 · A small notebook: with a subtitle\n\nIntro."),
        nbformat.v4.new_markdown_cell("### Your turn: f\n\nWrite f."),
        nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n",
                                  metadata=meta("f", True)),
        nbformat.v4.new_code_cell('facts["exercise_f_max_diff"] = exercises.check_f(f)', metadata=meta("f_check", False),
                                  outputs=stream("`f` passes: 2 cases agree with fa3d, max |difference| 0.0e+00\n")),
        nbformat.v4.new_markdown_cell("## Exercises\n\n1. **First one.** Do it.\n2. **Why?** Say why."),
        nbformat.v4.new_code_cell("print(json.dumps(facts))", outputs=stream(printed + "\n"))])


def test_solution_key_is_built_from_the_notebooks_outputs_and_keeps_the_hand_written_answers(tmp_path, capsys):
    nb = _small_notebook()
    key = make_assignments.solution_key(nb, "42_small", version="9.9")
    assert key.startswith("# Solutions · 42 A small notebook\n\n> **fa3d 9.9.**")
    assert "| `model_gte` | 12.38 |" in key and "| `runs.a` | 3 |" in key and "| `runs.b` | [1.5, 2.25] |" in key
    assert "| `n` | 123,456 |" in key and "exercise_f" not in key
    assert "### Your turn: f\n\nCell `f`, graded by `exercises.check_f` (cell `f_check`, 1 point)" in key
    assert "### BEGIN SOLUTION\n    return x" in key and "`f` passes: 2 cases agree with fa3d" in key
    hand = make_assignments.hand_part(key)
    assert re.findall(r"^### \d+\. (.+)$", hand, re.M) == ["First one", "Why?"]
    assert hand.count(make_assignments.NO_ANSWER) == 2
    written = hand.replace(make_assignments.NO_ANSWER, "An answer, 1.5 px.", 1)
    again = make_assignments.solution_key(nb, "42_small", written, version="9.9")
    assert make_assignments.hand_part(again) == written and again[:-len(written)] == key[:-len(hand)]
    # a new output changes the generated part only; --check says so and writes nothing
    src, keys = tmp_path / "nb", tmp_path / "keys"
    src.mkdir()
    nbformat.write(nb, src / "42_small.ipynb")
    assert make_assignments.main(["--solutions", "--src", str(src), "--keys", str(keys)]) == 0
    assert make_assignments.main(["--solutions", "--check", "--src", str(src), "--keys", str(keys)]) == 0
    make_assignments.key_path(keys, "42_small").write_text(
        make_assignments.key_path(keys, "42_small").read_text().replace(make_assignments.NO_ANSWER, "Kept.", 1))
    nbformat.write(_small_notebook('{"model_gte": 11.0}'), src / "42_small.ipynb")
    before = make_assignments.key_path(keys, "42_small").read_text()
    assert make_assignments.main(["--solutions", "--check", "--src", str(src), "--keys", str(keys)]) == 1
    assert "42_small_solutions.md" in capsys.readouterr().err
    assert make_assignments.key_path(keys, "42_small").read_text() == before
    assert make_assignments.main(["--solutions", "--src", str(src), "--keys", str(keys)]) == 0
    after = make_assignments.key_path(keys, "42_small").read_text()
    assert "| `model_gte` | 11 |" in after and "12.38" not in after and "Kept." in after


# ----------------------------------------------------------------------------- the exercise cells

@pytest.mark.parametrize("stem", EXERCISE_NOTEBOOKS)
def test_notebook_has_at_least_two_graded_exercises(stem):
    nb = _teacher(stem)
    pairs = _exercises(nb)
    assert len(pairs) >= 2, f"{stem}: {len(pairs)} code exercises"
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)) == 2 * len(pairs)
    for sol, chk in pairs:
        s, c = nb.cells[sol], nb.cells[chk] if chk is not None else None
        gid = s.metadata["nbgrader"]["grade_id"]
        assert c is not None, f"{stem}: exercise {gid} has no check cell {gid}_check"
        assert {k: v for k, v in s.metadata["nbgrader"].items() if k != "grade_id"} == SOLUTION_META
        assert {k: v for k, v in c.metadata["nbgrader"].items() if k != "grade_id"} == CHECK_META
        assert s.cell_type == c.cell_type == "code" and nb.cells[sol - 1].cell_type == "markdown"
        assert "### BEGIN SOLUTION" in s.source and "### BEGIN SOLUTION" not in c.source
        name = _function_name(s.source)
        assert re.search(rf'facts\["exercise_\w+"\] = exercises\.check_\w+\({name}\)', c.source), c.source


@pytest.mark.parametrize("stem", EXERCISE_NOTEBOOKS)
def test_nothing_after_an_exercise_uses_the_students_function(stem):
    nb = _teacher(stem)
    for sol, chk in _exercises(nb):
        name = _function_name(nb.cells[sol].source)
        users = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and re.search(rf"\b{name}\b", c.source)]
        assert users == [sol, chk], f"{stem}: {name} is used in cells {users}, not only in its own two"


@pytest.mark.parametrize("stem, sol, chk", ALL_EXERCISES, ids=IDS)
def test_check_passes_with_the_teachers_solution(stem, sol, chk, capsys):
    nb, ns = _teacher(stem), _namespace()
    exec(nb.cells[sol].source, ns)
    exec(nb.cells[chk].source, ns)
    (key, value), = ns["facts"].items()
    assert key.startswith("exercise_") and isinstance(value, float) and 0 <= value < 1e-5
    assert "passes" in capsys.readouterr().out


@pytest.mark.parametrize("stem, sol, chk", ALL_EXERCISES, ids=IDS)
def test_check_of_the_student_stub_says_the_exercise_is_not_done(stem, sol, chk):
    nb, ns = make_assignments.student_version(_teacher(stem)), _namespace()
    exec(nb.cells[sol].source, ns)
    name = _function_name(nb.cells[sol].source)
    with pytest.raises(AssertionError, match="not done yet") as err:
        exec(nb.cells[chk].source, ns)
    assert f"`{name}`" in str(err.value) and "YOUR CODE HERE" in str(err.value)
    assert ns["facts"] == {}


# ----------------------------------------------------------------------------- wrong implementations

def _disk(points, size, radius, strict=False, swap=False):
    H, W = (size, size) if isinstance(size, int) else size
    dx = torch.arange(W)[None, None, :] - points[:, 0, None, None]
    dy = torch.arange(H)[None, :, None] - points[:, 1, None, None]
    inside = dx ** 2 + dy ** 2 < radius ** 2 if strict else dx ** 2 + dy ** 2 <= radius ** 2
    return (inside.transpose(1, 2) if swap else inside).float()


def _vertex(left, mid, right):
    return (left - right) / (2 * (left - 2 * mid + right))


def _decode(heatmaps, log=True, swap=False, offset=_vertex):
    N, H, W = heatmaps.shape
    idx = heatmaps.reshape(N, -1).argmax(-1)
    iy, ix, n = idx // W, idx % W, torch.arange(N)
    L = heatmaps.clamp(min=1e-30).log() if log else heatmaps
    x = ix + offset(*[L[n, iy, ix + d] for d in (-1, 0, 1)])
    y = iy + offset(*[L[n, iy + d, ix] for d in (-1, 0, 1)])
    return torch.stack([y, x] if swap else [x, y], -1).float()


def _kernel(factor, centre=None, size=None):
    k = size or 2 * factor - factor % 2
    u = torch.arange(k, dtype=torch.float32)
    t = 1 - (u - ((k - 1) / 2 if centre is None else centre(k))).abs() / factor
    return torch.outer(t, t)


def _preact(unit, x, post=False, raw_projection=False):
    out = F.relu(unit.bn1(x))
    skip = x if unit.shortcut is None else unit.shortcut(x if raw_projection else out)
    out = unit.conv3(F.relu(unit.bn3(unit.conv2(F.relu(unit.bn2(unit.conv1(out)))))))
    return F.relu(out + skip) if post else out + skip


def _upsample(channels, groups=True, padding=1):
    layer = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=padding, groups=channels if groups else 1,
                               bias=False)
    t = torch.tensor([0.25, 0.75, 0.75, 0.25])
    with torch.no_grad():
        layer.weight.copy_(torch.outer(t, t).expand_as(layer.weight))
    return layer


def _z_loss_zero_counted(z_pred, z_true):
    return torch.where(torch.isfinite(z_true), z_pred - z_true.nan_to_num(0.0), torch.zeros_like(z_pred)).square().mean()


def _z_loss_mask_after(z_pred, z_true):     # the right value, a NaN gradient
    known = torch.isfinite(z_true)
    return torch.where(known, (z_pred - z_true) ** 2, torch.zeros_like(z_pred)).sum() / known.sum().clamp(min=1)


def _align(src, dst, reflect=False, transpose=False):
    """Umeyama for (B, N, D) faces, or with a usual mistake: reflections allowed, the cross-covariance transposed."""
    mu_s, mu_d = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    xs, xd = src - mu_s, dst - mu_d
    U, S, Vh = torch.linalg.svd(xs.transpose(1, 2) @ xd if transpose else xd.transpose(1, 2) @ xs)
    d = torch.ones_like(S)
    if not reflect:
        d[:, -1] = torch.sign(torch.linalg.det(U) * torch.linalg.det(Vh))
    R = U @ torch.diag_embed(d) @ Vh
    s = (S * d).sum(-1) / xs.square().sum((1, 2))
    t = mu_d - s[:, None, None] * mu_s @ R.transpose(1, 2)
    return s[:, None, None] * src @ R.transpose(1, 2) + t


def _cvgtce(pred, gt, axes="xyz", nan_aware=True):
    ok = torch.isfinite(pred).all(-1).all(-1) & torch.isfinite(gt).all(-1).all(-1)
    safe = torch.where(ok[:, None, None], gt, pred) if nan_aware else gt
    aligned = metrics.similarity_align(pred, safe)[0]
    err = (aligned - safe).norm(dim=-1).mean(-1) / metrics.interocular_distance(safe, axes=axes)
    return torch.where(ok, err, torch.full_like(err, float("nan"))) if nan_aware else err


def _raises_type_error(*args):
    raise TypeError("unsupported operand")


def _bootstrap(a, b, num_resamples=2000, generator=None, paired=True):
    d = torch.as_tensor(a - b)
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    ia = torch.randint(len(a), (num_resamples, len(a)), generator=generator)
    means = d[ia].mean(1) if paired else a[ia].mean(1) - b[torch.randint(len(b), (num_resamples, len(b)),
                                                                          generator=generator)].mean(1)
    return torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.float64))


def _crop(landmarks, box, size, extend, centre_offset=0.0, scale_z=True, width_only=False):
    x1, y1, x2, y2 = (float(v) for v in box)
    k = size / ((1 + extend) * ((x2 - x1) if width_only else max(x2 - x1, y2 - y1)))
    c = (size - 1) / 2 + centre_offset
    A = torch.tensor([[k, 0, c - k * (x1 + x2) / 2], [0, k, c - k * (y1 + y2) / 2]], dtype=torch.float64)
    lm = landmarks.double()
    z = k * lm[:, 2:] if scale_z else lm[:, 2:]
    return A, torch.cat([lm[:, :2] @ A[:, :2].T + A[:, 2], z], 1).to(landmarks.dtype)


def _step(net, optimizer, images, landmarks, face_height, zero_grad=True, eval_mode=False, resize=True, steps=1):
    if eval_mode:
        net.eval()
    for _ in range(steps):
        logits = net(images)
        S, h = images.shape[-1], logits.shape[-1]
        points = resize_points(landmarks, S, h) if resize else landmarks * h / S
        loss = detection_loss(logits, disk_heatmaps(points, h, disk_radius(face_height * h / S)))
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss


def _hourglass(level, x, skip=True, nearest=False):
    low = level.low1(level.pool(x))
    low = _hourglass(level.low2, low, skip, nearest) if isinstance(level.low2, Hourglass) else level.low2(low)
    low = level.low3(low)
    up = F.interpolate(low, scale_factor=2, mode="nearest") if nearest else level.up2(low)
    return level.up1(x) + up if skip else up


WRONG = [
    ("check_crop", lambda lm, b, s, e: _crop(lm, b, s, e, scale_z=False), "leaving z as it was"),
    ("check_crop", lambda lm, b, s, e: _crop(lm, b, s, e, centre_offset=0.5), "mapping the centre to size / 2"),
    ("check_crop", lambda lm, b, s, e: _crop(lm, b, s, e, width_only=True), "the values differ"),
    ("check_crop", lambda lm, b, s, e: _crop(lm, b, s, e)[0], "expected a pair (A, landmarks)"),
    ("check_detection_step", lambda *a: _step(*a, zero_grad=False), "without optimizer.zero_grad()"),
    ("check_detection_step", lambda *a: _step(*a, eval_mode=True), "(the loss it returns)"),
    ("check_detection_step", lambda *a: _step(*a, resize=False), "(the loss it returns)"),
    ("check_detection_step", lambda *a: _step(*a, steps=2), "the values differ"),
    ("check_detection_step", lambda net, opt, *a: detection_loss(net(a[0]), torch.zeros_like(net(a[0]))),
     "the network did not change"),
    ("check_hourglass_forward", lambda lv, x: _hourglass(lv, x, skip=False), "no skip branch"),
    ("check_hourglass_forward", lambda lv, x: _hourglass(lv, x, nearest=True), "nearest-neighbour upsampling"),
    ("check_disk_targets", lambda p, s, r: _disk(p, s, r, strict=True), "a strict < r"),
    ("check_disk_targets", lambda p, s, r: _disk(p, 16, r, swap=True) if s == 16 else _disk(p, s, r),
     "swapping x and y"),
    ("check_disk_targets", lambda p, s, r: _disk(p, s, r, swap=True), "swapping x and y"),
    ("check_disk_targets", lambda p, s, r: _disk(p, s, r).bool(), "expected dtype torch.float32, got torch.bool"),
    ("check_disk_targets", lambda p, s, r: _disk(p, s, r)[:, :-1], "expected shape (5, 16, 16), got (5, 15, 16)"),
    ("check_decode", lambda m: _decode(m, log=False), "not to their log"),
    ("check_decode", lambda m: _decode(m, swap=True), "(y, x) instead of (x, y)"),
    ("check_decode", lambda m: _decode(m) + 0.01, "max |got - expected| = 0.01"),
    ("check_detection_loss", lambda lg, t: -(t * torch.sigmoid(lg).log() + (1 - t) * (1 - torch.sigmoid(lg)).log()).mean(),
     "logits of ±60"),
    ("check_detection_loss", lambda lg, t: F.binary_cross_entropy_with_logits(lg, t, reduction="sum"), "a sum instead"),
    ("check_detection_loss", lambda lg, t: F.binary_cross_entropy_with_logits(lg, t)[None], "expected shape (), got (1,)"),
    ("check_bilinear_kernel", lambda f: _kernel(f, centre=lambda k: k / 2), "k/2 instead of (k − 1)/2"),
    ("check_bilinear_kernel", lambda f: _kernel(f, size=2 * f), "odd factor 3 (k = 5): expected shape (5, 5), got (6, 6)"),
    ("check_preact_forward", lambda u, x: _preact(u, x, post=True), "a ReLU after the sum"),
    ("check_preact_forward", lambda u, x: _preact(u, x, raw_projection=True), "projecting the raw input"),
    ("check_upsample2", lambda c: _upsample(c, groups=False), "one 4x4 filter per channel (groups=channels)"),
    ("check_upsample2", lambda c: _upsample(c, padding=0), "expected shape (1, 1, 12, 12), got (1, 1, 14, 14)"),
    ("check_upsample2", lambda c: nn.Upsample(scale_factor=2, mode="bilinear"), "0 parameters, expected 16 per channel"),
    ("check_upsample2", lambda c: torch.zeros(c), "expected an nn.Module"),
    ("check_z_loss", _z_loss_zero_counted, "counting unknown z as zero error"),
    ("check_z_loss", _z_loss_mask_after, "(gradient w.r.t. z_pred)"),
    ("check_z_loss", lambda zp, zt: ((zp - zt) ** 2)[torch.isfinite(zt)].mean(), "(gradient w.r.t. z_pred)"),
    ("check_z_loss", lambda zp, zt: ((zp[torch.isfinite(zt)] - zt[torch.isfinite(zt)]) ** 2).mean(), "no true z at all"),
    ("check_z_loss", lambda zp, zt: torch.tensor(F.mse_loss(zp, zt).item()), "no gradient"),
    ("check_z_input", lambda im, h, inputs: torch.cat([h, im], 1), "heatmaps before the RGB channels"),
    ("check_z_input", lambda im, h, inputs: torch.cat([im, h], 0), "raised RuntimeError on the case inputs="),
    ("check_z_input", lambda im, h, inputs: torch.cat([im, h], 1)[..., ::2], "expected shape (2, 8, 32, 32), got (2, 8, 32, 16)"),
    ("check_z_input", lambda im, h, inputs: torch.cat([im, h], 1), 'inputs="rgb"'),
    ("check_similarity_align", lambda s, d: _align(s, d, reflect=True), "allowing reflections"),
    ("check_similarity_align", lambda s, d: _align(s, d, transpose=True), "transposing the cross-covariance"),
    ("check_similarity_align", lambda s, d: _align(s, d) if s.shape[-1] == 3 else s, "2 faces of 15 points in 2D"),
    ("check_cvgtce", lambda p, g: _cvgtce(p, g, axes="xy"), "2D interocular distance"),
    ("check_cvgtce", lambda p, g: _cvgtce(p, g, nan_aware=False), "no ground-truth z"),
    ("check_cvgtce", lambda p, g: metrics.gte(p, g), "no alignment (that is GTE)"),
    ("check_auc", lambda e, m: float(((m - e) / m).mean()), "no clamp at 0"),
    ("check_auc", lambda e, m: float((m - e).clamp(min=0).mean()), "forgetting to divide by max_error"),
    ("check_paired_interval", lambda a, b: (float(np.mean(a - b)), float(1.96 * np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / len(a)))),
     "an unpaired interval"),
    ("check_paired_interval", lambda a, b: (float(np.mean(a - b)), float(1.96 * np.std(a - b) / np.sqrt(len(a)))), "ddof=0"),
    ("check_paired_interval", lambda a, b: (float(np.mean(b - a)), float(1.96 * np.std(a - b, ddof=1) / np.sqrt(len(a)))),
     "b − a instead of a − b"),
    ("check_bootstrap_interval", lambda a, b, n, g: _bootstrap(a, b, n, g, paired=False), "different indices"),
    ("check_bootstrap_interval", lambda a, b, n, g: _bootstrap(a, b, n, g) + 0.5, "the values differ"),
    ("check_auc", _raises_type_error, "`_raises_type_error` raised TypeError on the case"),
]


@pytest.mark.parametrize("check, wrong, says", WRONG, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(WRONG)])
def test_check_fails_with_a_helpful_message_for_a_wrong_implementation(check, wrong, says):
    with pytest.raises(AssertionError) as err:
        getattr(exercises, check)(wrong)
    assert says in str(err.value), str(err.value)


def test_every_check_is_exercised_by_the_notebooks_and_the_wrong_implementations():
    checks = {name for name in exercises.__all__}
    in_notebooks = {m for stem, _, chk in ALL_EXERCISES
                    for m in re.findall(r"exercises\.(check_\w+)", _teacher(stem).cells[chk].source)}
    assert in_notebooks == checks and {c for c, _, _ in WRONG} == checks


def test_checks_leave_the_global_random_state_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    exercises.check_upsample2(lambda c: _upsample(c))     # builds modules: draws from the global generator
    exercises.check_preact_forward(lambda u, x: _preact(u, x))
    assert torch.equal(torch.rand(3), expected)


# ----------------------------------------------------------------------------- answers that call the library

# What each check refuses, with an answer that would pass by calling it: (module, the reference's name in
# it, the answer's return expression with {ref} standing for the reference however it was imported).
LIBRARY_ANSWERS = {
    "check_disk_targets": [("fa3d.heatmaps", "disk_heatmaps", "{ref}(points, size, radius)")],
    "check_crop": [("fa3d.data.transforms", "face_crop_matrix",
                    "_through({ref}(box, size, extend), landmarks)"),
                   ("fa3d.data.transforms", "warp_landmarks",
                    "(_crop_matrix(box, size, extend), {ref}(landmarks, _crop_matrix(box, size, extend)))")],
    "check_detection_step": [("fa3d.course.exercises", "_detection_step_reference",
                              "{ref}(net, optimizer, images, landmarks, face_height)")],
    "check_hourglass_forward": [("fa3d.models.regression", "Hourglass.forward", "{ref}(level, x)")],
    "check_decode": [("fa3d.heatmaps", "decode_heatmaps", "{ref}(heatmaps)"),
                     ("fa3d.heatmaps", "_peak_offset", "_decode(heatmaps, offset={ref})")],
    "check_detection_loss": [("fa3d.models.losses", "detection_loss", "{ref}(logits, targets)")],
    "check_bilinear_kernel": [("fa3d.models.detection", "BilinearUpsample", "{ref}(1, factor).weight.detach()[0, 0]")],
    "check_preact_forward": [("fa3d.models.regression", "PreActBottleneck.forward", "{ref}(unit, x)")],
    "check_upsample2": [("fa3d.models.detection", "BilinearUpsample", "{ref}(channels, 2)")],
    "check_z_input": [("fa3d.models.zregressor", "ZRegressor.forward",
                       "_conv1_input({ref}, images, heatmaps, inputs)")],
    "check_z_loss": [("fa3d.models.losses", "z_loss", "{ref}(z_pred, z_true)")],
    "check_similarity_align": [("fa3d.metrics", "similarity_align", "{ref}(src, dst)[0]"),
                               ("fa3d.course.exercises", "_align_variant", "{ref}(src, dst)")],
    "check_cvgtce": [("fa3d.metrics", "cvgtce", "{ref}(pred, gt)")],
    "check_auc": [("fa3d.metrics", "auc", "{ref}(errors, max_error)")],
    "check_paired_interval": [("fa3d.course.exercises", "_paired_reference", "{ref}(a, b)")],
    "check_bootstrap_interval": [("fa3d.course.exercises", "_bootstrap_reference",
                                  "tuple(float(v) for v in {ref}(a, b, num_resamples, generator))")],
}
SPELLINGS = ("alias", "module", "package")
LIBRARY_CASES = [(check, module, name, body, how) for check, answers in LIBRARY_ANSWERS.items()
                 for module, name, body in answers for how in SPELLINGS]


def _notebook_function(stem: str, name: str) -> str:
    """The source of the function ``name`` that a code cell of the teacher notebook ``stem`` defines."""
    for cell in _teacher(stem).cells:
        match = re.search(rf"^def {name}\(.*?(?=^\S)", cell.source + "\nEND", re.M | re.S)
        if cell.cell_type == "code" and match:
            return match.group(0)
    raise LookupError(f"{stem} defines no {name}")


PAIRED = _notebook_function("08_ablations", "paired")

# Other ways of reaching a reference: (check, a cell defining `answer`, what the refusal says the answer calls).
OTHER_ROUTES = [
    ("check_decode", "from fa3d.heatmaps import decode_heatmaps\nanswer = decode_heatmaps\n",
     "fa3d's `decode_heatmaps`"),
    ("check_decode", "from fa3d.heatmaps import decode_heatmaps\n\n\ndef answer(heatmaps):\n    try:\n"
                     "        return decode_heatmaps(heatmaps)\n    except Exception:     # the refusal, caught\n"
                     "        return _decode(heatmaps)\n", "fa3d's `decode_heatmaps`"),
    ("check_preact_forward", "def answer(unit, x):\n    return unit(x)\n", "fa3d's `PreActBottleneck.forward`"),
    ("check_hourglass_forward", "def answer(level, x):\n    low = level.low1(level.pool(x))\n"
                                "    return level.up1(x) + level.up2(level.low3(level.low2(low)))\n",
     "fa3d's `Hourglass.forward`"),
    ("check_preact_forward", "def answer(unit, x):\n    return unit.forward(x)\n", "fa3d's `PreActBottleneck.forward`"),
    ("check_bilinear_kernel", "from fa3d.models.detection import BilinearUpsample\n\n\ndef answer(factor):\n"
                              "    k = 2 * factor - factor % 2\n"
                              "    layer = nn.ConvTranspose2d(1, 1, k, stride=factor, bias=False)\n"
                              "    BilinearUpsample.reset_parameters(layer)\n    return layer.weight.detach()[0, 0]\n",
     "fa3d's `BilinearUpsample`"),
    ("check_upsample2", "from fa3d.models import regression\n\n\ndef answer(channels):\n"
                        "    return regression.BilinearUpsample(channels, 2)\n", "fa3d's `BilinearUpsample`"),
    ("check_z_input", "def answer(images, heatmaps, inputs):\n"
                      "    return _conv1_input(lambda net, im, h: net(im, h), images, heatmaps, inputs)\n",
     "fa3d's `ZRegressor.forward`"),
    ("check_cvgtce", "from fa3d.metrics import face_errors\n\n\ndef answer(pred, gt):\n"
                     "    return face_errors(pred, gt)['cvgtce']\n", "fa3d's `cvgtce`"),
    ("check_paired_interval", PAIRED + "\n\ndef answer(a, b):\n    return paired(a, b)\n", "the notebook's `paired`"),
    ("check_paired_interval", PAIRED + "\n\np = paired\n\n\ndef answer(a, b):\n    return p(a, b)\n",
     "the notebook's `paired`"),
]


def _check_of(source: str) -> str:
    return re.search(r"exercises\.(check_\w+)\(", source).group(1)


EXERCISE_OF_CHECK = {_check_of(_teacher(stem).cells[chk].source): (stem, sol, chk) for stem, sol, chk in ALL_EXERCISES}


def _conv1_input(forward, images, heatmaps, inputs):
    """What a ZRegressor's first convolution receives when ``forward(net, images, heatmaps)`` runs the net."""
    net = ZRegressor(ZConfig(layers=(1, 1, 1, 1), block="basic", width=8, inputs=inputs), heatmaps.shape[1]).eval()
    seen = []
    net.conv1.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    with torch.no_grad():
        forward(net, images, heatmaps)
    return seen[0]


def _crop_matrix(box, size, extend):
    """The crop's (2, 3) matrix, written out (for answers that call only fa3d's landmark warp)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    k = size / ((1 + extend) * max(x2 - x1, y2 - y1))
    c = (size - 1) / 2
    return torch.tensor([[k, 0, c - k * (x1 + x2) / 2], [0, k, c - k * (y1 + y2) / 2]], dtype=torch.float64)


def _through(A, landmarks):
    """(A, the landmarks through A with z scaled), written out (for answers that call only fa3d's matrix)."""
    k = float(A[0, 0])
    lm = landmarks.double()
    return A, torch.cat([lm[:, :2] @ A[:, :2].T + A[:, 2], k * lm[:, 2:]], 1).to(landmarks.dtype)


def _answer_namespace() -> dict:
    return {**_namespace(), "_decode": _decode, "_conv1_input": _conv1_input, "_crop_matrix": _crop_matrix,
            "_through": _through}


def _spelling(module: str, name: str, how: str) -> tuple[str, str]:
    """(an import, the reference's expression after it): module.name imported under an alias, through an
    aliased module, or through the package, spelled in full."""
    top, dot, rest = name.partition(".")
    return {"alias": (f"from {module} import {top} as ref", f"ref{dot}{rest}"),
            "module": (f"import {module} as mod", f"mod.{name}"),
            "package": (f"import {module}", f"{module}.{name}")}[how]


def _library_answer(check: str, module: str, name: str, body: str, how: str) -> str:
    """A notebook cell: the import, then `answer`, with the exercise's parameters, returning ``body``."""
    stem, sol, _ = EXERCISE_OF_CHECK[check]
    parameters = re.search(r"^def \w+\((.*)\):", _teacher(stem).cells[sol].source, re.M).group(1)
    imports, ref = _spelling(module, name, how)
    return f"{imports}\n\n\ndef answer({parameters}):\n    return {body.format(ref=ref)}\n"


def test_every_check_is_tried_with_answers_that_call_the_library():
    assert set(LIBRARY_ANSWERS) == set(exercises.__all__) == set(EXERCISE_OF_CHECK)


@pytest.mark.parametrize("check, module, name, body, how", LIBRARY_CASES,
                         ids=[f"{c}-{n}-{h}" for c, _, n, _, h in LIBRARY_CASES])
def test_check_refuses_an_answer_that_calls_the_library(check, module, name, body, how):
    ns = _answer_namespace()
    exec(_library_answer(check, module, name, body, how), ns)
    with pytest.raises(AssertionError) as err:
        getattr(exercises, check)(ns["answer"])
    message = str(err.value)
    assert message.startswith(f"`answer` calls fa3d's `{name}`") and "write it yourself" in message, message


@pytest.mark.parametrize("check, source, says", OTHER_ROUTES, ids=[f"{c}-{i}" for i, (c, *_) in enumerate(OTHER_ROUTES)])
def test_check_refuses_the_library_reached_another_way(check, source, says):
    ns = _answer_namespace()
    exec(source, ns)
    with pytest.raises(AssertionError) as err:
        getattr(exercises, check)(ns["answer"])
    assert f"calls {says}" in str(err.value) and "write it yourself" in str(err.value), str(err.value)


REFUSED = ([(check, _library_answer(check, *answer, "alias")) for check, answers in LIBRARY_ANSWERS.items()
            for answer in answers] + [(check, source) for check, source, _ in OTHER_ROUTES])


@pytest.mark.parametrize("check, source", REFUSED, ids=[f"{c}-{i}" for i, (c, _) in enumerate(REFUSED)])
def test_the_refused_answers_would_pass_without_the_refusal(check, source, monkeypatch, capsys):
    """The refusal, not some other failure, is what stops the answers above."""
    monkeypatch.setattr(exercises, "_forbidden", lambda fn, *references: contextlib.nullcontext())
    ns = _answer_namespace()
    exec(source, ns)
    assert getattr(exercises, check)(ns["answer"]) < 1e-5
    assert "passes" in capsys.readouterr().out


def _code(module: str, name: str):
    reference = functools.reduce(getattr, name.split("."), importlib.import_module(module))
    return (reference.__init__ if isinstance(reference, type) else reference).__code__


@pytest.mark.parametrize("check", sorted(LIBRARY_ANSWERS))
def test_a_refused_answer_leaves_the_library_as_it_was_and_the_check_can_run_again(check, capsys):
    module, name, body = LIBRARY_ANSWERS[check][0]
    top = name.split(".")[0]
    original, code = getattr(importlib.import_module(module), top), _code(module, name)
    stem, sol, _ = EXERCISE_OF_CHECK[check]
    ns = _answer_namespace()
    exec(_library_answer(check, module, name, body, "alias"), ns)
    exec(_teacher(stem).cells[sol].source, ns)
    teachers = ns[_function_name(_teacher(stem).cells[sol].source)]

    def profiler(frame, event, arg):      # somebody's profiler, running before the check
        pass

    saved = sys.getprofile()
    sys.setprofile(profiler)
    try:
        for _ in range(2):
            with pytest.raises(AssertionError, match="write it yourself"):
                getattr(exercises, check)(ns["answer"])
            assert sys.getprofile() is profiler
            assert getattr(importlib.import_module(module), top) is original and _code(module, name) is code
            assert ns["ref"] is original
            assert getattr(exercises, check)(teachers) < 1e-5
    finally:
        sys.setprofile(saved)
    assert capsys.readouterr().out.count("passes") == 2


@pytest.mark.parametrize("stem, sol, chk", ALL_EXERCISES, ids=IDS)
def test_student_notebook_refuses_a_library_call_in_place_of_the_answer(stem, sol, chk):
    nb = make_assignments.student_version(_teacher(stem), stem)
    check = _check_of(nb.cells[chk].source)
    module, name, body = LIBRARY_ANSWERS[check][0]
    imports, ref = _spelling(module, name, "module")
    assert nb.cells[sol].source.count("raise NotImplementedError()") == 1
    ns = _answer_namespace()
    exec(imports, ns)                                       # at the top of the notebook
    exec(nb.cells[sol].source.replace("raise NotImplementedError()", f"return {body.format(ref=ref)}"), ns)
    with pytest.raises(AssertionError, match=f"calls fa3d's `{re.escape(name)}`"):
        exec(nb.cells[chk].source, ns)
    assert ns["facts"] == {}


@pytest.mark.parametrize("stem, sol, chk", ALL_EXERCISES, ids=IDS)
def test_no_cell_before_an_exercise_shows_or_defines_its_answer(stem, sol, chk):
    nb = _teacher(stem)
    check = _check_of(nb.cells[chk].source)
    names = "|".join({name.split(".")[0] for _, name, _ in LIBRARY_ANSWERS[check]}
                     | ({"paired"} if check == "check_paired_interval" else set()))
    for i, cell in enumerate(nb.cells[:sol]):
        if cell.cell_type == "code":
            assert not re.search(rf"show_source\([\w.]*\b({names})\b", cell.source), f"{stem}, cell {i}: {cell.source}"
            assert not re.search(rf"^def ({names})\(", cell.source, re.M), f"{stem}, cell {i}: {cell.source}"


# ----------------------------------------------------------------------------- the student notebooks, executed

@pytest.fixture(scope="module")
def student_out(tmp_path_factory):
    return tmp_path_factory.mktemp("assignments")     # one folder: later notebooks reuse earlier runs


@pytest.mark.slow
@pytest.mark.parametrize("stem", EXERCISE_NOTEBOOKS)
def test_student_notebook_runs_to_the_end_with_only_its_checks_failing(stem, student_out, monkeypatch):
    import nbclient
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    monkeypatch.setenv("FA3D_INTERACTIVE", "0")     # as benchmarks/run_notebooks.py: no widgets headless
    path = student_out / f"{stem}.ipynb"
    nbformat.write(make_assignments.student_version(_teacher(stem), stem), path)
    nb = parameterize_notebook(load_notebook_node(str(path)), {"OUT_DIR": str(student_out)})
    nbclient.NotebookClient(nb, kernel_name="fa3d", allow_errors=True, timeout=900,
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    checks = {i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade")}
    failed = {i: o for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.output_type == "error"}
    assert set(failed) == checks, {i: (o.ename, o.evalue[:200]) for i, o in failed.items() if i not in checks}
    for o in failed.values():
        assert o.ename == "AssertionError" and "the exercise is not done yet" in o.evalue, o.evalue
    facts = json.loads((student_out / f"{stem}.json").read_text())     # the notebook got to its end
    assert facts and not [k for k in facts if k.startswith("exercise_")]
