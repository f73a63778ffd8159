"""fa3d.course.report: the files exist and every number in them is the one fa3d.metrics.score gave."""
import json
import math

import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from fa3d.data.synthetic import SyntheticFaces
from fa3d.metrics import gte, nme_bbox, score, summarize, yaw_binned_nme
from fa3d.course.report import BASELINE_NAME, PAPER_3DFAW, PUBLISHED_AFLW2000, REPORT_FILES, write_report


def _faces(n, scheme, seed=0):
    ds = SyntheticFaces(n, image_size=64, scheme=scheme, seed=seed)
    items = [ds[i] for i in range(n)]
    gt = torch.stack([it["landmarks"] for it in items])
    pred = gt + 1.0 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(seed))
    baseline = gt.mean(0, keepdim=True).expand_as(gt).clone()
    yaw = torch.stack([it["pose"][0] for it in items])
    return items, pred, gt, baseline, yaw


@pytest.fixture(scope="module")
def synthetic_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    items, pred, gt, baseline, yaw = _faces(8, "3dfaw66")
    log = [{"stage": "detection", "epoch": e, "lr": 1e-3, "train_loss": 1.0 / (e + 1), "valid_loss": 1.0,
            "valid_gte_xy": 20.0, "valid_gte_xyz": 25.0} for e in range(2)]
    runs = {name: score(p.double(), gt.double(), yaw)
            for name, p in (("fa3d", pred), (BASELINE_NAME, baseline), ("stage 2", pred + 0.5))}
    paths = write_report(out, runs, pred=pred, gt=gt, scheme="3dfaw66", images=items, yaw=yaw,
                         ids=[it["id"] for it in items], log=log, per_row=2)
    return out, paths, pred, gt, baseline, yaw


def test_all_files_written(synthetic_report):
    out, paths, *_ = synthetic_report
    assert set(paths) == set(REPORT_FILES)
    for key, path in paths.items():
        assert path.parent == out and path.name == REPORT_FILES[key] and path.stat().st_size > 0
    for key in ("ced", "yaw", "training"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["gallery"].read_bytes()[:2] == b"\xff\xd8"  # JPEG
    page = paths["face_3d"].read_text()   # works offline: plotly.js from the file beside it, not a CDN
    assert 'src="plotly.min.js"' in page and "cdn.plot.ly" not in page
    assert (out / "plotly.min.js").stat().st_size > 1_000_000 and paths["face_3d"].stat().st_size < 200_000


@pytest.mark.slow
def test_face_3d_page_draws_a_3d_scene_offline_in_a_real_browser(synthetic_report, tmp_path):
    from headless_browser import plotly_scene_drawn, render

    _, paths, *_ = synthetic_report
    dom, picture = render(paths["face_3d"], tmp_path)
    drawn, why = plotly_scene_drawn(dom, picture)
    assert drawn, f"{paths['face_3d']}: {why}"
    # the check can fail: the same page without the plotly.min.js beside it draws nothing
    alone = tmp_path / "alone" / paths["face_3d"].name
    alone.parent.mkdir()
    alone.write_text(paths["face_3d"].read_text())
    assert not plotly_scene_drawn(*render(alone, tmp_path))[0]



def test_numbers_are_the_scores(synthetic_report):
    _, paths, pred, gt, baseline, _ = synthetic_report
    numbers = json.loads(paths["json"].read_text())
    assert numbers["num_images"] == 8 and numbers["model"] == "fa3d" and numbers["baseline"] == BASELINE_NAME
    for name, p in (("fa3d", pred), ("mean-shape baseline", baseline), ("stage 2", pred + 0.5)):
        assert numbers["runs"][name] == summarize(p.double(), gt.double()), name


def test_markdown_tables_show_ours_and_the_papers_numbers(synthetic_report):
    _, paths, pred, gt, baseline, _ = synthetic_report
    md = paths["markdown"].read_text()
    ours, base = summarize(pred, gt), summarize(baseline, gt)
    row = next(line for line in md.splitlines() if line.startswith("| fa3d |"))
    assert f"{ours['gte_xyz']:.2f}" in row and f"{ours['cvgtce']:.2f}" in row
    row = next(line for line in md.splitlines() if line.startswith("| mean-shape baseline |"))
    assert f"{base['gte_xyz']:.2f}" in row
    xy_row = next(line for line in md.splitlines() if line.startswith("| xy |"))
    assert xy_row.split("|")[2].strip() == f"{ours['gte_xy']:.2f}" and xy_row.rstrip(" |").endswith("3.6263")
    for ref in ("4.5623", "3.4767", "5.8835", "3.9700", "4.9408", "2.12", "2.48", "2.77"):
        assert ref in md
    assert "paper's 3DFAW test set" in md and "not ours" in md
    html = paths["html"].read_text()
    assert html.count("<table>") == 4 and "ced.png" in html and "face_3d.html" in html


def test_yaw_table_by_hand(synthetic_report):
    _, paths, pred, gt, _, yaw = synthetic_report
    numbers = json.loads(paths["json"].read_text())
    table = numbers["yaw"]["fa3d"]["gte_xyz"]
    err = gte(pred.double(), gt.double(), "xyz")
    a = yaw.abs().double()
    masks = [a <= 30, (a > 30) & (a <= 60), a > 60]  # [0, 30], (30, 60], (60, 90] (and beyond)
    assert table["bins"] == [[0, 30], [30, 60], [60, 90]]
    for mask, mean, count in zip(masks, table["means"], table["counts"]):
        assert count == int(mask.sum())
        if count:
            assert mean == pytest.approx(100 * float(err[mask].mean()), rel=1e-9)
    assert sum(table["counts"]) == 8


def test_without_images_yaw_or_log(tmp_path):
    items, pred, gt, _, _ = _faces(4, "3dfaw66", seed=1)
    paths = write_report(tmp_path, {"fa3d": score(pred, gt)}, pred=pred, gt=gt, scheme="3dfaw66")
    # no images, no yaw, no log: the rest is still written (3D view without the image)
    assert {"yaw", "training"}.isdisjoint(paths) and paths["face_3d"].exists() and paths["gallery"].exists()
    assert json.loads(paths["json"].read_text())["baseline"] is None


def test_aflw2000_protocol_next_to_published_numbers(tmp_path):
    items, pred, gt, _, yaw = _faces(6, "68", seed=2)
    paths = write_report(tmp_path, {"fa3d": score(pred.double(), gt.double(), yaw)}, pred=pred, gt=gt, scheme="68",
                         images=items, yaw=yaw, data_name="aflw2000")
    numbers = json.loads(paths["json"].read_text())
    expected = yaw_binned_nme(nme_bbox(pred.double(), gt.double()), yaw)
    assert numbers["aflw2000"]["balanced_nme"] == pytest.approx(100 * expected["balanced"], rel=1e-9)
    assert numbers["aflw2000"]["published"] == PUBLISHED_AFLW2000
    md = paths["markdown"].read_text()
    assert f"{100 * expected['balanced']:.2f}" in md
    for name, value in PUBLISHED_AFLW2000.items():
        assert f"| {name} (published) |" in md and f"{value:.2f}" in md


def test_bad_inputs_raise(tmp_path):
    _, pred, gt, _, _ = _faces(2, "3dfaw66")
    runs = {"fa3d": score(pred, gt)}
    with pytest.raises(ValueError, match="scheme"):
        write_report(tmp_path, runs, pred=pred, gt=gt, scheme="68")
    with pytest.raises(ValueError, match="pred and gt"):
        write_report(tmp_path, runs, pred=pred[:1], gt=gt, scheme="3dfaw66")


def test_paper_references_are_the_published_ones():
    assert PAPER_3DFAW["test"]["paper (Bulat & Tzimiropoulos)"] == {"gte": 4.5623, "cvgtce": 3.4767}
    assert PAPER_3DFAW["test"]["second best in the challenge"] == {"gte": 5.8835, "cvgtce": 3.9700}
    assert {k: float(v) for k, v in PAPER_3DFAW["valid"].items()} == \
        {"xy": 3.6263, "xyz": 4.9408, "x": 2.12, "y": 2.48, "z": 2.77}
    assert not any(math.isnan(v) for v in PUBLISHED_AFLW2000.values())
