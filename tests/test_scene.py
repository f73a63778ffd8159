"""The synthetic faces' proportions and scene/camera levers: neck, glasses, occluders, backgrounds, camera."""
import dataclasses

import numpy as np
import pytest
import torch

from fa3d.data.synthetic import DEFAULT_LEVERS, LEVERS, SyntheticFaceParams, SyntheticFaces, render_face, sample_face_params

S = 128
PLAIN = dict(body=False, glasses=False, occluder=0, bg_saturation=1.0, bg_tone_mix=0.0, bg_blur=0.0, blur=0.0,
             color_cast=(1.0, 1.0, 1.0), gamma=1.0, grayscale=False, jpeg_quality=0, noise=0.0)


def face(**kw) -> SyntheticFaceParams:
    return dataclasses.replace(SyntheticFaceParams(), **{**PLAIN, **kw})


def test_frontal_proportions_follow_anthropometric_norms():
    """Farkas' adult norms, relative to the outer-eye-corner distance ex-ex (~90 mm): mouth width
    ch-ch ~52 mm (0.58), face height n-gn ~121 mm (1.34); nose base ~ the inner-eye gap (canon)."""
    lm = render_face(face(), S, "68")["landmarks"].numpy()[:, :2]
    d = lambda i, j: float(np.linalg.norm(lm[i] - lm[j]))  # noqa: E731
    exex = d(36, 45)
    assert 0.5 < d(48, 54) / exex < 0.7
    assert 0.25 < d(31, 35) / exex < 0.45
    assert 1.2 < (lm[8, 1] - lm[27, 1]) / exex < 1.5
    jaw = render_face(face(), S, "3dfaw66")["landmarks"].numpy()[:17, :2]   # the 3D contour (68: on the outline)
    assert np.linalg.norm(jaw[4] - jaw[12]) / np.linalg.norm(jaw[0] - jaw[16]) > 0.75   # a jaw, not an egg
    assert d(17, 21) / exex > 0.35                         # brows span the eye and beyond


def test_levers_off_give_the_plain_head_and_unknown_levers_are_refused():
    rng = lambda: np.random.Generator(np.random.PCG64([0, 7]))  # noqa: E731
    p = sample_face_params(rng(), levers=())
    assert (not p.body and not p.glasses and p.occluder == 0 and p.jpeg_quality == 0 and p.blur == 0.0
            and p.bg_saturation == 1.0 and not p.grayscale)
    full = sample_face_params(rng())
    assert (full.yaw, full.skin, full.texture_seed) == (p.yaw, p.skin, p.texture_seed)  # the head is the same
    with pytest.raises(ValueError, match="hats"):
        sample_face_params(rng(), levers=("hats",))
    ds = SyntheticFaces(40, image_size=64, seed=1, levers=("body", "camera"))
    params = [ds.params(i) for i in range(40)]
    assert not any(q.glasses or q.occluder for q in params) and any(q.body for q in params)
    assert set(LEVERS) == {*DEFAULT_LEVERS, "even_jaw", "photo_poses", "features", "hair_styles", "narrow_face"}
    assert set(DEFAULT_LEVERS) == {"background", "body", "glasses", "occluders", "camera"}


def test_photo_poses_draw_half_the_heads_near_frontal_and_leave_the_rest_of_each_face():
    ds, photo = (SyntheticFaces(400, image_size=64, seed=3, levers=levers)
                 for levers in (DEFAULT_LEVERS, (*DEFAULT_LEVERS, "photo_poses")))
    before, after = [ds.params(i) for i in range(400)], [photo.params(i) for i in range(400)]
    near = lambda ps: np.mean([abs(q.yaw) < 30 and abs(q.pitch) < 25 for q in ps])  # noqa: E731
    assert near(before) < 0.25 and 0.4 < near(after) < 0.65   # about 0.17 and 0.5 + 0.17 / 2
    assert np.mean([abs(q.yaw) > 60 for q in after]) > 0.12         # profiles stay in training
    changed = [a.yaw != b.yaw for a, b in zip(before, after)]
    assert 0.4 < np.mean(changed) < 0.6
    same = lambda q: dataclasses.replace(q, yaw=0.0, pitch=0.0)  # noqa: E731
    assert all(same(a) == same(b) for a, b in zip(before, after))


def test_narrow_face_narrows_the_outline_and_keeps_the_eye_corners_and_the_rest_of_each_face():
    """narrow_face: the outline at the eyes from about 1.8 outer-eye-corner distances toward the cheekbones' 1.36
    (the lever's comment gives the source), the eye corners where they were; everything else as drawn."""
    plain, narrow = face(), face(front_flatness=0.3)
    a, b = (render_face(q, S, "68")["landmarks"].numpy()[:, :2] for q in (plain, narrow))
    width = lambda lm: float(np.linalg.norm(lm[16] - lm[0]) / np.linalg.norm(lm[45] - lm[36]))  # noqa: E731
    assert 1.7 < width(a) < 1.9 and width(b) < 0.9 * width(a)
    assert np.abs((a[45] - a[36]) - (b[45] - b[36])).max() < 0.02 * S      # the eye corners barely move
    ds, narrowed = (SyntheticFaces(60, image_size=64, seed=2, levers=levers)
                    for levers in ((*DEFAULT_LEVERS, "photo_poses"), (*DEFAULT_LEVERS, "photo_poses", "narrow_face")))
    pairs = [(ds.params(i), narrowed.params(i)) for i in range(60)]
    assert all(0.17 <= n.front_flatness <= 0.38 and p.front_flatness == 0 for p, n in pairs)
    assert all(dataclasses.replace(n, front_flatness=0.0) == p for p, n in pairs)


def test_every_lever_is_drawn_and_items_stay_deterministic():
    ds = SyntheticFaces(200, image_size=64, seed=0)
    params = [ds.params(i) for i in range(200)]
    assert 0.1 < np.mean([q.glasses for q in params]) < 0.35
    assert 0.05 < np.mean([q.occluder > 0 for q in params]) < 0.3
    assert 0.2 < np.mean([q.jpeg_quality > 0 for q in params]) < 0.6
    assert 0.02 < np.mean([q.grayscale for q in params]) < 0.2
    assert np.mean([q.body for q in params]) > 0.8
    a, b = ds[17], SyntheticFaces(200, image_size=64, seed=0)[17]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["visible"], b["visible"])


def test_the_neck_fills_the_space_under_the_chin_and_moves_no_landmark():
    without, with_body = render_face(face(), S, "68"), render_face(face(body=True), S, "68")
    assert torch.equal(without["landmarks"], with_body["landmarks"])
    chin = without["landmarks"][8, :2]
    x, y = int(chin[0]), int(min(chin[1] + 0.08 * S, S - 1))
    skin = torch.tensor(SyntheticFaceParams().skin) * 255
    below = with_body["image"][:, y - 1:y + 2, x - 1:x + 2].float().mean((1, 2))
    # the neck is skin-coloured (shaded): its hue ratios are the skin's, unlike most backgrounds
    assert (below / below.sum() - skin / skin.sum()).abs().max() < 0.06
    assert not torch.equal(without["image"][:, y], with_body["image"][:, y])


def test_glasses_hide_nothing_of_the_geometry_and_show_in_front_of_the_eyes():
    plain, glasses = render_face(face(), S, "68"), render_face(face(glasses=True), S, "68")
    assert torch.equal(plain["landmarks"], glasses["landmarks"])
    eye_row = int(plain["landmarks"][36:48, 1].mean())
    changed = (plain["image"] != glasses["image"]).any(0)
    assert changed[eye_row - 8:eye_row + 8].sum() > 20 and not changed[-10:].any()


def test_an_occluder_hides_the_landmarks_it_covers():
    hid_some = False
    for seed in range(12):
        base = face(texture_seed=seed)
        a = render_face(base, S, "68")
        b = render_face(dataclasses.replace(base, occluder=1, occluder_color=(0.8, 0.6, 0.5)), S, "68")
        assert torch.equal(a["landmarks"], b["landmarks"])
        assert not (b["visible"] & ~a["visible"]).any()          # an occluder never reveals a point
        hid_some |= bool((a["visible"] & ~b["visible"]).any())
    assert hid_some


def test_camera_effects_greyscale_and_jpeg():
    grey = render_face(face(grayscale=True), S, "68")["image"]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    sharp = render_face(face(), S, "68")["image"].float()
    jpeg = render_face(face(jpeg_quality=20), S, "68")["image"].float()
    blur = render_face(face(blur=1.5), S, "68")["image"].float()
    assert 0 < (jpeg - sharp).abs().mean() < 12
    grad = lambda im: (im[:, :, 1:] - im[:, :, :-1]).abs().mean()  # noqa: E731
    assert grad(blur) < 0.8 * grad(sharp)


def test_muted_backgrounds_are_less_saturated():
    def saturation(im):
        im = im.float()
        return (im.max(0).values - im.min(0).values).mean()
    raw = render_face(face(face_frac=0.3), S, "68")["image"]
    muted = render_face(face(face_frac=0.3, bg_saturation=0.3), S, "68")["image"]
    assert saturation(muted) < 0.7 * saturation(raw)
