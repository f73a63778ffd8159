"""fa3d.course.viz and fa3d.course.widgets: every figure builds headless, with the right panels, traces and numbers."""
import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from fa3d.course import viz
from fa3d.data.synthetic import SyntheticFaceParams, SyntheticFaces, render_face
from fa3d.data.transforms import CenterCrop3D
from fa3d.metrics import auc, score, summarize
from fa3d.models import Cascade, ZRegressor, get_preset
from fa3d.predict import predict_crops

N = 66


# tiny convolutions on a shared 2-core machine: one thread (conftest.py) is far faster than two fighting
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cascade():
    torch.manual_seed(0)
    return Cascade.from_preset(get_preset("quick")).eval()


@pytest.fixture(scope="module")
def faces():
    ds = SyntheticFaces(4, image_size=96, scheme="3dfaw66", seed=0)
    return [ds[i] for i in range(len(ds))]


@pytest.fixture(scope="module")
def crops(faces):
    items = [CenterCrop3D(64)(f) for f in faces]
    return torch.stack([it["image"] for it in items]), torch.stack([it["landmarks"] for it in items])


@pytest.fixture(scope="module")
def pred_gt(faces):
    gt = torch.stack([f["landmarks"] for f in faces])
    noise = torch.randn(gt.shape, generator=torch.Generator().manual_seed(1))
    return gt + 1.5 * noise, gt


# ----------------------------------------------------------------------------- 2D landmarks

def test_show_face_and_grid(faces):
    fig = viz.show_face(faces[0], "3dfaw66", title="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    grid = viz.face_grid(faces[:3], "3dfaw66", ncols=2)
    assert len(grid.axes) == 4  # 2x2, one left empty


def test_show_prediction_draws_one_error_segment_per_landmark(faces, pred_gt):
    pred, gt = pred_gt
    fig = viz.show_prediction(faces[0]["image"], pred[0], gt[0], "3dfaw66")
    ax = fig.axes[0]
    seg = next(line for line in ax.get_lines() if line.get_label() == "error")
    xy = np.asarray(seg.get_xydata())
    assert xy.shape == (3 * N, 2)  # gt, pred, NaN break per landmark
    np.testing.assert_allclose(xy[0::3], gt[0, :, :2].numpy(), atol=1e-5)
    np.testing.assert_allclose(xy[1::3], pred[0, :, :2].numpy(), atol=1e-5)
    assert np.isnan(xy[2::3]).all()
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # y axis down, as in the image


# ----------------------------------------------------------------------------- heatmaps

def test_cascade_stages_match_predict_crops(cascade, crops):
    images, _ = crops
    st = viz.cascade_stages(cascade, images[0])
    assert st["detection"].shape == (N, 16, 16)
    assert st["regression"].shape == st["z_input"].shape == (N, 64, 64)
    assert st["landmarks"].shape == (N, 3) and st["detection_xy"].shape == (N, 2)
    np.testing.assert_allclose(st["landmarks"], predict_crops(cascade, images[:1], "z")[0].numpy(), atol=1e-4)
    # the Z net's input is a Gaussian with peak 1 at each decoded point
    peak = st["z_input"].reshape(N, -1).argmax(1)
    np.testing.assert_array_equal(peak % 64, np.round(st["landmarks"][:, 0]).clip(0, 63))
    assert abs(st["landmarks"][:, 2].mean()) < 1e-4  # z centred, like the ground truth


def test_show_heatmap_one_map_and_sum(crops):
    images, _ = crops
    maps = torch.rand(N, 16, 16, generator=torch.Generator().manual_seed(0))
    one = viz.show_heatmap(maps, 5, image=images[0]).axes[0]
    assert len(one.images) == 2  # the crop, then the map over it
    np.testing.assert_allclose(one.images[1].get_array(), maps[5].numpy())
    assert one.images[1].get_extent() == [-0.5, 63.5, 63.5, -0.5]  # stretched over the 64 px crop
    total = viz.show_heatmap(maps, None).axes[0]
    np.testing.assert_allclose(total.images[0].get_array(), maps.sum(0).numpy(), rtol=1e-5)


def test_stage_grid_panels(cascade, crops):
    images, gt = crops
    st = viz.cascade_stages(cascade, images[1])
    fig = viz.stage_grid(cascade, images[1], "3dfaw66", landmark=36, gt=gt[1], stages=st)
    assert len(fig.axes) == 8
    titles = [ax.get_title() for ax in fig.axes]
    assert "detection" in titles[1] and "regression" in titles[2] and "Z net" in titles[3]
    assert "#36" in titles[4]
    assert len(viz.stage_grid(cascade, images[1], "3dfaw66", landmark=None).axes) == 4


# ----------------------------------------------------------------------------- training curves

def test_training_curves_from_a_hand_made_log():
    log = [{"stage": s, "epoch": e, "lr": 1e-3 / (e + 1), "train_loss": 1.0 / (e + 1), "valid_loss": 1.2 / (e + 1),
            "valid_gte_xy": 30.0 - e, "valid_gte_xyz": 40.0 - e, "seconds": 1.0}
           for s in ("detection", "regression", "z") for e in range(3)]
    fig = viz.training_curves(log)
    loss, gte_ax, lr = fig.axes
    assert len(loss.get_lines()) == 6 and len(lr.get_lines()) == 3
    # xy for every stage, xyz for the Z stage only (the 2D stages predict no depth)
    assert [line.get_label() for line in gte_ax.get_lines()] == ["detection xy", "regression xy", "z xy", "z xyz"]
    x, y = lr.get_lines()[1].get_data()  # the regression stage: epochs 4..6 of the run
    np.testing.assert_allclose(x, [4, 5, 6])
    np.testing.assert_allclose(y, [1e-3, 5e-4, 1e-3 / 3])


# ----------------------------------------------------------------------------- errors

def test_image_errors_agree_with_summarize(pred_gt):
    pred, gt = pred_gt
    errs, summary = viz.image_errors(pred, gt), summarize(pred, gt)
    for axis in viz.ERROR_AXES:
        assert errs[axis].shape == (4,)
        assert math.isclose(100 * errs[axis].mean(), summary[f"gte_{axis}"], rel_tol=1e-6)
    assert math.isclose(100 * errs["cvgtce"].mean(), summary["cvgtce"], rel_tol=1e-6)


def test_ced_figure_curves_and_auc_by_hand():
    e = np.array([0.02, 0.04, 0.2])
    runs = {"a": {axis: e for axis in viz.ERROR_AXES}, "b": {axis: 2 * e for axis in viz.ERROR_AXES}}
    fig = viz.ced_figure(runs, max_error=0.1)
    assert len(fig.axes) == 5
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["a (AUC 0.467)", "b (AUC 0.267)"]
    # AUC exactly: mean(max(0, 0.1 - e)) / 0.1 = (0.08 + 0.06 + 0) / 0.3; for 2e: (0.06 + 0.02) / 0.3
    assert math.isclose(auc(e, 0.1), 0.14 / 0.3, rel_tol=1e-9)
    x, y = ax.get_lines()[0].get_data()
    assert x[-1] == pytest.approx(10.0)  # percent
    assert y[np.searchsorted(x, 5.0)] == pytest.approx(2 / 3)  # 2 of 3 images below 5 %
    # several axis sets with their own range; (pred, gt) runs work too
    assert len(viz.ced_figure(runs, axes=("xy", "z"), max_error={"xy": 0.1, "z": 0.05}).axes) == 2


def test_nice_ceiling():
    assert [viz._nice_ceiling(v) for v in (0.034, 0.1, 0.11, 0.021, 3.0)] == pytest.approx([0.05, 0.1, 0.2, 0.025, 5])


def test_ced_figure_accepts_pred_gt_pairs(pred_gt):
    pred, gt = pred_gt
    fig = viz.ced_figure({"model": (pred, gt), "worse": (pred + 3, gt)})
    for ax in fig.axes:
        assert len(ax.get_lines()) == 2


def test_prediction_gallery_rows_are_best_median_worst(faces, pred_gt):
    pred, gt = pred_gt
    errors = np.array([0.3, 0.1, 0.4, 0.2])
    fig = viz.prediction_gallery([f["image"] for f in faces], pred, gt, "3dfaw66", errors=errors, per_row=2)
    assert len(fig.axes) == 6
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("best: #1") and titles[1].startswith("best: #3")
    assert titles[2].startswith("median: #3") and titles[3].startswith("median: #0")
    assert titles[4].startswith("worst: #0") and titles[5].startswith("worst: #2")
    assert len(viz.prediction_gallery(None, pred, gt, "3dfaw66", per_row=1).axes) == 3


def test_error_vs_yaw_draws_the_scores_bin_means(pred_gt):
    pred, gt = pred_gt
    yaw = torch.tensor([-10.0, 45.0, -70.0, float("nan")])  # one face per bin; the last one's yaw is unknown
    s = score(pred, gt, yaw)
    fig = viz.error_vs_yaw({"model": s}, yaw)
    ax = fig.axes[0]
    means = [line.get_ydata()[0] for line in ax.get_lines() if len(line.get_ydata()) == 2]
    np.testing.assert_allclose(means, s["yaw"]["gte_xyz"]["means"])
    np.testing.assert_allclose(means, [100 * float(s["errors"]["xyz"][k]) for k in range(3)])
    assert len(ax.collections[0].get_offsets()) == 3  # the face without a yaw is not drawn
    assert f"balanced {s['yaw']['gte_xyz']['balanced']:.2f} %" in ax.get_legend().get_texts()[0].get_text()


def test_landmarks_3d_matplotlib(faces):
    fig = viz.landmarks_3d_matplotlib(faces[0]["landmarks"], "3dfaw66")
    assert fig.axes[0].name == "3d"


def test_z_network_figure_one_box_per_block_with_the_models_shapes():
    """The paper's Fig. 2: input, B1-B6 and the FC, each box labelled with the shape a real
    forward pass of the model gives (hooks on the model itself, not on the figure's meta twin)."""
    preset = get_preset("quick")
    torch.manual_seed(0)
    model = ZRegressor(preset.z, preset.num_landmarks).eval()
    S, modules = preset.image_size, ("conv1", "maxpool", "layer1", "layer2", "layer3", "layer4", "fc")
    seen = {}
    for name in modules:
        getattr(model, name).register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o.shape[1:]))
    with torch.no_grad():
        model(torch.zeros(1, 3, S, S), torch.zeros(1, preset.num_landmarks, S, S))
    expected = {"input": (3 + preset.num_landmarks, S, S),
                **{b: tuple(seen[m]) for b, m in zip(("B1", "B2", "B3", "B4", "B5", "B6", "FC"), modules)}}

    fig = viz.z_network_figure(model, S)
    ax = fig.axes[0]
    boxes = [p.get_gid()[len("block:"):] for p in ax.patches if (p.get_gid() or "").startswith("block:")]
    labels = {t.get_gid()[len("block:"):]: t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("block:")}
    assert boxes == list(expected) and sorted(labels) == sorted(expected)
    for name, shape in expected.items():
        assert labels[name].splitlines()[-1] == "×".join(map(str, shape)), name
    assert labels["B4"].startswith(f"{len(model.layer2)}× {preset.z.block}")
    assert next(model.parameters()).device.type == "cpu"      # the model itself was not moved to meta


def test_z_network_blocks_of_the_paper_preset_are_table_1():
    paper = get_preset("paper")
    with torch.device("meta"):
        model = ZRegressor(paper.z, paper.num_landmarks)
    blocks = {b["name"]: b for b in viz.z_network_blocks(model, paper.image_size)}
    assert [blocks[b]["units"] for b in ("B3", "B4", "B5", "B6")] == [3, 24, 36, 3]   # ResNet-200 (Table 1 prints 38)
    assert blocks["input"]["shape"] == (3 + paper.num_landmarks, 384, 384)
    assert [blocks[b]["shape"] for b in ("B1", "B2", "B6", "FC")] == [(64, 192, 192), (64, 96, 96), (2048, 12, 12),
                                                                       (paper.num_landmarks,)]


# ----------------------------------------------------------------------------- plotly

def test_landmarks_3d_plotly_traces(faces):
    lm = faces[0]["landmarks"]
    fig = viz.landmarks_3d_plotly(lm, "3dfaw66")
    assert len(fig.data) == 6  # one line trace per part group (5) + the points
    assert len(fig.data[-1].x) == N
    assert "right_eye_outer_corner" in fig.data[-1].text[36]
    err = torch.arange(N, dtype=torch.float32)
    fig = viz.landmarks_3d_plotly(lm, "3dfaw66", errors=err)
    assert fig.data[-1].marker.showscale and "error 36.00 px" in fig.data[-1].text[36]


def test_compare_3d_plotly_hover_errors(pred_gt):
    pred, gt = pred_gt
    fig = viz.compare_3d_plotly(pred[0], gt[0], "3dfaw66")
    names = [t.name for t in fig.data]
    assert len(fig.data) == 13 and names.count("ground truth") == 1 and names.count("prediction") == 1
    pts = fig.data[-1]
    err_px = (pred[0] - gt[0]).norm(dim=-1).numpy()
    iod = (gt[0, 36] - gt[0, 45]).norm().item()
    np.testing.assert_allclose(pts.customdata[:, 0], err_px, rtol=1e-5)
    np.testing.assert_allclose(pts.customdata[:, 1], 100 * err_px / iod, rtol=1e-5)
    np.testing.assert_allclose(pts.marker.color, 100 * err_px / iod, rtol=1e-5)  # coloured by error
    seg = next(t for t in fig.data if t.name == "error")
    assert len(seg.x) == 3 * N


def test_image_and_3d_plotly(faces, pred_gt):
    pred, gt = pred_gt
    fig = viz.image_and_3d_plotly(faces[0]["image"], pred[0], "3dfaw66", gt=gt[0])
    types = [t.type for t in fig.data]
    assert types[:4] == ["image", "scatter", "scatter", "surface"] and types.count("scatter3d") == 13
    plane = fig.data[3]
    assert float(np.max(plane.z)) < min(pred[0, :, 2].min(), gt[0, :, 2].min())  # behind the face
    assert max(np.shape(plane.z)) <= 64
    assert fig.layout.yaxis.autorange == "reversed"  # image: y down
    assert len(fig.to_json()) < 150_000  # small in a saved notebook
    alone = viz.image_and_3d_plotly(faces[0]["image"], gt[0], "3dfaw66", image_plane=False)
    assert [t.type for t in alone.data].count("surface") == 0


def _plotly_view(fig, pts):
    """Where plotly.js's gl3d camera puts points: its model matrix maps each axis's bounds
    onto the scene cube (a reversed axis swaps them: a reflection) scaled by the aspect
    ratio, then lookAt(eye, center, up). Returns (screen right, screen up, depth from the eye)."""
    sc = fig.layout.scene
    lo, hi = pts.min(0), pts.max(0)
    model = np.empty_like(pts)
    for a, name in enumerate("xyz"):
        b0, b1 = (hi[a], lo[a]) if sc[name + "axis"].autorange == "reversed" else (lo[a], hi[a])
        model[:, a] = (hi[a] - lo[a]) / (hi - lo).max() * (pts[:, a] - 0.5 * (b0 + b1)) / (b1 - b0)
    cam = sc.camera
    eye, centre = np.array([cam.eye.x, cam.eye.y, cam.eye.z]), np.array([cam.center.x, cam.center.y, cam.center.z])
    forward = (centre - eye) / np.linalg.norm(centre - eye)
    right = np.cross(forward, [cam.up.x, cam.up.y, cam.up.z])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return model @ right, model @ up, (model - eye) @ forward


@pytest.mark.parametrize("yaw", [-40.0, 0.0, 40.0])
def test_plotly_front_camera_shows_the_image(yaw):
    face = render_face(SyntheticFaceParams(yaw=yaw, pitch=10.0), 96)
    lm = face["landmarks"].numpy().astype(np.float64)
    right, up, depth = _plotly_view(viz.landmarks_3d_plotly(lm, "3dfaw66"), lm)
    # the front view is the image: screen right = +x, screen up = -y (y down)
    assert np.corrcoef(right, lm[:, 0])[0, 1] > 0.999 and np.corrcoef(up, lm[:, 1])[0, 1] < -0.999
    assert right[36] < right[45]  # the subject's right eye on the image's left
    assert depth[30] < min(depth[36], depth[45])  # the nose tip points toward the viewer
    assert np.corrcoef(depth, lm[:, 2])[0, 1] < -0.999  # larger z = nearer


def test_use_plotly_renderer_outside_jupyter_changes_nothing():
    import plotly.io as pio

    before = pio.renderers.default
    assert viz.use_plotly_renderer() == before
    viz.setup_notebook()  # a no-op outside a kernel


# ----------------------------------------------------------------------------- widgets

def test_resolve_interactive(monkeypatch):
    from fa3d.course.widgets import resolve_interactive

    monkeypatch.setenv("FA3D_INTERACTIVE", "1")
    assert resolve_interactive(False) is False and resolve_interactive(None) is True
    monkeypatch.setenv("FA3D_INTERACTIVE", "0")
    assert resolve_interactive(None) is False and resolve_interactive(True) is True
    monkeypatch.delenv("FA3D_INTERACTIVE")
    assert resolve_interactive(None) is False  # no Jupyter kernel under pytest


def test_browse_static_figure(cascade, crops):
    from fa3d.course.widgets import browse

    images, gt = crops
    fig = browse(images, cascade, "3dfaw66", gt=gt, sample=2, landmark=45, interactive=False)
    assert isinstance(fig, Figure) and len(fig.axes) == 9  # 2x4 stage grid + 3D
    assert "sample 2, landmark #45" in fig._suptitle.get_text()


def test_browse_widgets_update(cascade, crops):
    pytest.importorskip("ipywidgets")
    from fa3d.course.widgets import browse

    images, gt = crops
    box = browse(images, cascade, "3dfaw66", gt=gt, interactive=True)
    (sample_w, landmark_w), image_w = box.children[0].children, box.children[1]
    first = image_w.value
    assert first[:2] == b"\xff\xd8"  # JPEG
    landmark_w.value = 8
    assert image_w.value != first
    bundle = box._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "image/jpeg" in bundle
    sample_w.value = 3
    assert sample_w.max == 3
