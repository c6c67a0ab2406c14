"""Depth lifting of 2D keypoints: synthetic RGB-D with known intrinsics and known 3D joints, the
real Azure Kinect MKV with its real calibration, and stable body IDs across frames."""

from __future__ import annotations

import numpy as np
import pytest

from capture.bodyids import BodyIds
from capture.lifting import DepthLifter, Intrinsics, depth_to_color, unproject_camera
from xmkd import skeleton as sk

CAM = Intrinsics(640, 480, 525.0, 525.0, 319.5, 239.5)
RADIUS_MM = 50.0  # each keypoint is rendered as a ball of this radius
WALL_MM = 4500.0


def _truth_mm() -> np.ndarray:
    """COCO-17 keypoints of a person 3 m away, camera space (+x right, +y down), mm."""
    ntu = np.array(
        [
            (0.0, 1.62, 2.90), (-0.03, 1.66, 2.92), (0.03, 1.66, 2.92), (-0.08, 1.64, 3.0),
            (0.08, 1.64, 3.0), (-0.18, 1.42, 3.0), (0.18, 1.42, 3.0), (-0.22, 1.14, 2.95),
            (0.22, 1.14, 2.95), (-0.24, 0.90, 2.70), (0.24, 0.90, 2.85), (-0.10, 0.92, 3.0),
            (0.10, 0.92, 3.0), (-0.11, 0.50, 2.98), (0.11, 0.50, 2.98), (-0.12, 0.08, 3.0),
            (0.12, 0.08, 3.0),
        ]
    )  # fmt: skip
    ntu[:, 1] -= 0.85  # camera at 85 cm height
    return ntu * np.array([-1.0, -1.0, 1.0]) * 1000.0


def _render(points_mm: np.ndarray, cam: Intrinsics = CAM) -> np.ndarray:
    """Depth (uint16 mm) of balls at the keypoints in front of a wall: exact ray casting."""
    u, v = np.meshgrid(np.arange(cam.width), np.arange(cam.height))
    d = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones_like(u, float)], -1)
    depth = np.full((cam.height, cam.width), WALL_MM)
    dd = (d * d).sum(-1)
    for c in points_mm:
        dc = d @ c
        disc = dc**2 - dd * (c @ c - RADIUS_MM**2)
        hit = disc >= 0
        t = np.where(hit, (dc - np.sqrt(np.where(hit, disc, 0))) / dd, np.inf)
        depth = np.minimum(depth, t)  # z of the hit point is t (the ray has z = 1)
    return np.round(depth).astype(np.uint16)


def _lift(depth: np.ndarray, **kw):
    lifter = DepthLifter(CAM, sk.COCO17, surface_offset_mm=RADIUS_MM, **kw)
    return lifter.lift(CAM.project(_truth_mm()), depth)


def _errors(lifted) -> np.ndarray:
    return np.linalg.norm(lifted.points_mm - _truth_mm(), axis=1)


def test_clean_and_noisy_depth_lift_to_the_known_joints():
    truth = _truth_mm()
    depth = _render(truth)
    clean = _lift(depth)
    assert (clean.states == sk.TRACKED).all()
    err = _errors(clean)
    assert err.mean() < 4.0 and err.max() < 6.0, err  # mm: the balls' curvature

    rng = np.random.default_rng(0)  # a real sensor: +-5 mm noise and 30 % pixels without return
    noisy = depth.astype(np.float64) + rng.normal(0, 5, depth.shape)
    noisy[rng.random(depth.shape) < 0.3] = 0
    lifted = _lift(np.clip(noisy, 0, None).astype(np.uint16))
    err = _errors(lifted)
    assert (lifted.states == sk.TRACKED).all()
    assert err.mean() < 5.0 and err.max() < 12.0, err


def test_occluded_and_invalid_keypoints_are_inferred_from_their_neighbours():
    truth = _truth_mm()
    depth = _render(truth)
    px = CAM.project(truth)
    wl, kr = sk.COCO_JOINTS.index("wrist_left"), sk.COCO_JOINTS.index("knee_right")
    u, v = np.round(px[wl]).astype(int)
    depth[v - 12 : v + 13, u - 12 : u + 13] = 0  # no return around the left wrist
    u, v = np.round(px[kr]).astype(int)
    depth[v - 15 : v + 16, u - 15 : u + 16] = 1200  # a chair back in front of the right knee
    lifted = _lift(depth)
    assert lifted.states[wl] == sk.INFERRED and lifted.states[kr] == sk.INFERRED
    others = np.ones(17, bool)
    others[[wl, kr]] = False
    assert (lifted.states[others] == sk.TRACKED).all()
    err = _errors(lifted)
    # the wrist is 25-30 cm in front of its neighbours; the knee's depth is its neighbours'
    assert err[kr] < 60.0 and err[wl] < 350.0, err
    assert err[others].max() < 6.0
    body = lifted.body
    n = {name: i for i, name in enumerate(sk.NTU_JOINTS)}
    assert body.tracking[n["wrist_left"]] == sk.INFERRED
    assert body.tracking[n["knee_right"]] == sk.INFERRED
    assert body.tracking[n["elbow_left"]] == sk.TRACKED


def test_ntu_axes_mirroring_and_the_mirrored_stream_agree():
    truth = _truth_mm()
    depth = _render(truth)
    px = CAM.project(truth)
    plain = DepthLifter(CAM, sk.COCO17, surface_offset_mm=RADIUS_MM).lift(px, depth, body_id=7)
    body = plain.body
    assert body.id == 7
    expect = sk.COCO17.to_ntu(truth) * np.array([-1.0, -1.0, 1.0]) / 1000.0
    np.testing.assert_allclose(body.joints, expect, atol=0.006)
    n = {name: i for i, name in enumerate(sk.NTU_JOINTS)}
    # NTU: the person's left shoulder has the smaller x, head above the spine base (+y up)
    assert body.joints[n["shoulder_left"], 0] < body.joints[n["shoulder_right"], 0]
    assert body.joints[n["head"], 1] > body.joints[n["spine_base"], 1]
    np.testing.assert_allclose(
        body.color_px[:, 0], CAM.width - 1 - sk.COCO17.to_ntu(px)[:, 0], atol=1e-9
    )
    # the same person as a capture source delivers it: mirrored image and keypoints
    mirrored_px = px.copy()
    mirrored_px[:, 0] = CAM.width - 1 - px[:, 0]
    flipped = DepthLifter(CAM, sk.COCO17, surface_offset_mm=RADIUS_MM, mirrored=True).lift(
        mirrored_px, depth[:, ::-1]
    )
    np.testing.assert_allclose(flipped.body.joints, body.joints, atol=1e-9)
    np.testing.assert_allclose(flipped.body.color_px, body.color_px, atol=1e-9)


def test_keypoints_the_estimator_missed_do_not_count_and_stay_not_tracked():
    truth = _truth_mm()
    depth = _render(truth)
    states = np.full(17, sk.TRACKED)
    states[sk.COCO_JOINTS.index("ankle_left")] = sk.NOT_TRACKED
    px = CAM.project(truth)
    px[sk.COCO_JOINTS.index("ankle_left")] = (5.0, 5.0)  # a wrong guess on the wall
    lifted = DepthLifter(CAM, sk.COCO17).lift(px, depth, states)
    assert lifted.states[sk.COCO_JOINTS.index("ankle_left")] == sk.NOT_TRACKED
    assert lifted.body.tracking[sk.NTU_JOINT_NUMBER["ankle_left"] - 1] == sk.NOT_TRACKED
    assert abs(lifted.points_mm[sk.COCO_JOINTS.index("ankle_left"), 2] - WALL_MM) > 1000
    assert DepthLifter(CAM, sk.COCO17).lift(px, np.zeros_like(depth)) is None


def test_two_people_keep_their_ids_across_frames():
    ids = BodyIds(max_missed=2)
    truth = _truth_mm()
    a = truth + [-700.0, 0, 0]
    b = truth + [700.0, 0, 300.0]
    lifter = DepthLifter(CAM, sk.COCO17)
    first = None
    for step in range(4):  # both walk right; the estimator lists them in either order
        pa, pb = a + [40.0 * step, 0, 0], b + [40.0 * step, 0, 0]
        depth = np.minimum(_render(pa), _render(pb))
        people = [(CAM.project(pa), None), (CAM.project(pb), None)]
        bodies = lifter.lift_people(people[:: 1 if step % 2 else -1], depth, ids)
        by_x = {round(float(bd.joints[0, 0]), 1): bd.id for bd in bodies}
        got = [by_x[k] for k in sorted(by_x)]
        first = first or got
        assert got == first  # same ids for the same people
    assert len(set(first)) == 2
    for _ in range(3):  # gone longer than max_missed: a returning person gets a new id
        ids.assign([])
    assert ids.assign([np.array([0, 0, 10, 10])]) == [max(first) + 1]


# ---- the real Azure Kinect recording and its calibration ----------------------------------
def test_lifting_on_the_real_kinect_mkv_matches_the_calibrations_unprojection(kinect_dir):
    from capture.mkv import MKVSource

    src = MKVSource(kinect_dir / "azure-kinect-720p-nfov-1capture.mkv", bodies=False, mirror=False)
    with src:
        frame = next(iter(src))
    calib = src.calibration
    assert calib is not None and frame.depth is not None
    depth = frame.depth
    # pixels chosen on the real depth image: a grid over the valid, locally flat part
    rng = np.random.default_rng(1)
    vs, us = rng.integers(100, 476, 400), rng.integers(120, 520, 400)
    flat = []
    for u, v in zip(us, vs, strict=True):
        win = depth[v - 6 : v + 7, u - 6 : u + 7].astype(float)
        if (win > 0).all() and np.ptp(win) < 40:
            flat.append((u, v))
    assert len(flat) >= 30
    uv_d = np.array(flat[:30], dtype=np.float64)
    z_d = depth[uv_d[:, 1].astype(int), uv_d[:, 0].astype(int)].astype(np.float64)
    # the SDK's 2D -> 3D of those depth pixels, checked by projecting back (3D -> 2D)
    truth, valid = unproject_camera(calib.depth, uv_d, z_d)
    assert valid.all()
    np.testing.assert_allclose(calib.depth.project(truth)[0], uv_d, atol=0.01)
    # where they appear in the colour image, and the depth resampled into the colour camera
    uv_c, ok = calib.color.project(truth)
    assert ok.all()
    aligned = depth_to_color(depth, calib)
    assert aligned.shape == (720, 1280) and (aligned > 0).mean() > 0.3
    # a scene, not one body: no rejection around a body's median depth
    lifter = DepthLifter(
        calib.color, sk.COCO17, radius=3, body_tolerance_mm=np.inf, calibration=calib
    )
    z, trusted = lifter.sample_depth(aligned, uv_c)
    assert trusted.all()
    pts_c, _ = unproject_camera(calib.color, uv_c, z)
    pts_d = (pts_c - calib.color.translation_mm) @ calib.color.rotation  # into depth space
    err = np.linalg.norm(pts_d - truth, axis=1)
    assert np.median(err) < 3.0 and err.max() < 10.0, err  # mm (measured: 0.5 median, 3.1 max)


def test_default_intrinsics_and_wrong_layouts():
    cam = Intrinsics.default_for(1280, 720)
    assert cam.cx == 639.5 and cam.fx == pytest.approx(640 / np.tan(np.radians(32.5)))
    p = np.array([[100.0, -50.0, 2000.0]])
    np.testing.assert_allclose(cam.unproject(cam.project(p), p[:, 2]), p)
    with pytest.raises(ValueError, match="COCO-17 has 17 keypoints, got 33"):
        DepthLifter(cam, sk.COCO17).lift(np.zeros((33, 2)), np.zeros((720, 1280), np.uint16))


def test_depth_near_keypoints_equals_the_whole_transformation_there(kinect_dir):
    """Lifting needs the aligned depth only around the keypoints: transforming just the depth
    pixels that can land there (the live path) gives exactly the whole image's values there."""
    from capture import lifting
    from capture.calibration import Calibration
    from capture.mkv import MKVSource

    src = MKVSource(kinect_dir / "azure-kinect-720p-nfov-1capture.mkv", bodies=False, mirror=False)
    with src:
        depth = next(iter(src)).depth
    calib = src.calibration
    full = depth_to_color(np.where(depth >= 250, depth, 0), calib)  # no joint is that close
    rng = np.random.default_rng(5)
    near = np.column_stack([rng.uniform(-20, 1300, 40), rng.uniform(-20, 740, 40)])
    near[0] = (np.nan, np.nan)  # a keypoint the estimator did not place
    radius = 4
    sparse = depth_to_color(depth, calib, near=near, radius=radius)
    covered = np.zeros(full.shape, bool)
    for u, v in np.round(near[1:]).astype(int):
        v0, v1, u0, u1 = max(v - radius, 0), max(v + radius + 1, 0), max(u - radius, 0), u + radius
        covered[v0:v1, u0 : max(u1 + 1, 0)] = True
    np.testing.assert_array_equal(sparse[covered], full[covered])
    assert (full[covered] > 0).mean() > 0.3  # the windows hold real depth
    assert (sparse > 0).mean() < 0.25 * (full > 0).mean()  # and little else was transformed
    # the whole-image ray table is built once per lens, whichever Calibration object asks
    again = Calibration.from_json(calib.raw, "NFOV_UNBINNED", "720P")
    assert again.depth is not calib.depth
    assert lifting._pixel_rays(again.depth)[0] is lifting._pixel_rays(calib.depth)[0]
