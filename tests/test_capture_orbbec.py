"""The ``orbbec:`` source against a fake of Orbbec's Python SDK v2 (tests/fakes/orbbec.py):
frames, device timestamps and drops, depth aligned to colour, intrinsics, sync, depth-lifted
skeletons, and one sentence for an unplugged camera or a missing SDK."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from capture.lifting import Intrinsics
from capture.orbbec import AlignedDepthLiftedEstimator, OrbbecSource, list_devices
from capture.pose2d import RGBD, Person2D
from capture.registry import open_source, open_sources
from tests.fakes.orbbec import FakeOrbbecDevice, OBFormat, install_fake_pyorbbecsdk
from xmkd.errors import MissingExtraError, XmkdError
from xmkd.skeleton import COCO17, INFERRED, TRACKED


class FixedKeypoints:
    """A 2D estimator (`capture.pose2d.Estimator2D`) that finds one person at known COCO-17
    pixels."""

    name = "fixed"
    layout = COCO17

    def __init__(self, pixels: np.ndarray, scores: np.ndarray | None = None):
        self.pixels = pixels
        self.scores = np.ones(len(pixels)) if scores is None else scores
        self.calls = 0
        self.closed = False

    def estimate2d(self, image: np.ndarray) -> list[Person2D]:
        self.calls += 1
        box = np.array([*self.pixels.min(0), *self.pixels.max(0)])
        return [Person2D(self.pixels.copy(), self.scores.copy(), box)]

    def close(self) -> None:
        self.closed = True


def _person_pixels() -> np.ndarray:
    rng = np.random.default_rng(0)
    u = rng.uniform(24, 40, COCO17.num_joints)
    v = rng.uniform(12, 40, COCO17.num_joints)
    return np.stack([u, v], axis=1)


def _frames(source, n: int) -> list:
    out = []
    with source:
        for frame in source:
            out.append(frame)
            if len(out) >= n:
                break
    return out


def test_frames_timestamps_and_drops(monkeypatch):
    """Colour in BGR mirrored like NTU's videos, depth in mm in the colour geometry (mirrored
    alike), device timestamps in microseconds, drops counted from the gaps."""
    device = FakeOrbbecDevice(frames=8, gaps=(3, 6, 7))
    install_fake_pyorbbecsdk(monkeypatch, [device])
    source = open_source("orbbec:0?skeleton=none&width=64&height=48")
    frames = _frames(source, 8)
    assert [f.index for f in frames] == list(range(8))
    assert [f.device_usec for f in frames][:4] == [1_000_000, 1_033_333, 1_066_667, 1_133_333]
    assert source.dropped_frames == 3  # frame 3 and frames 6-7
    color = frames[0].color
    assert color.shape == (48, 64, 3) and color.dtype == np.uint8
    # the red ramp grows left to right in the camera's view: mirrored, it falls; BGR: red last
    assert color[0, 0, 2] == 255 and color[0, -1, 2] == 0
    # the device's own frame numbers (green): the gaps are frames it never delivered
    assert [int(f.color[0, 0, 1]) for f in frames] == [0, 1, 2, 4, 5, 8, 9, 10]
    depth = frames[0].depth
    assert depth.shape == (48, 64) and depth.dtype == np.uint16
    u0, v0, u1, v1 = device.person_box
    assert depth[v0 + 1, 64 - 1 - (u0 + 1)] == device.person_mm  # mirrored person box
    assert depth[0, 0] == device.background_mm
    assert all(f.bodies == [] for f in frames)


def test_alignment_is_requested_from_the_sdk(monkeypatch):
    """align=sw runs AlignFilter to the colour stream; align=hw asks the device (HW_MODE);
    both ask for complete colour+depth sets and frame sync."""
    from tests.fakes import orbbec as fake

    device = FakeOrbbecDevice(frames=3)
    module = install_fake_pyorbbecsdk(monkeypatch, [device])
    _frames(open_source("orbbec:0?skeleton=none&width=64&height=48"), 3)
    assert [a.align_to_stream for a in module.AlignFilter.instances] == [
        fake.OBStreamType.COLOR_STREAM
    ]
    assert module.AlignFilter.instances[0].processed == 3
    assert device.config.align_mode == fake.OBAlignMode.DISABLE
    assert device.config.aggregate == fake.OBFrameAggregateOutputMode.FULL_FRAME_REQUIRE
    assert device.frame_sync and device.stopped
    formats = [(p.sensor, p.format, p.fps) for p in device.config.streams]
    assert formats == [
        (fake.OBSensorType.COLOR_SENSOR, OBFormat.RGB, 30),
        (fake.OBSensorType.DEPTH_SENSOR, OBFormat.Y16, 30),
    ]

    device = FakeOrbbecDevice(frames=3)
    module = install_fake_pyorbbecsdk(monkeypatch, [device])
    frames = _frames(open_source("orbbec:0?skeleton=none&width=64&height=48&align=hw"), 2)
    assert module.AlignFilter.instances == []
    assert device.config.align_mode == fake.OBAlignMode.HW_MODE
    assert frames[0].depth.shape == (48, 64)  # the device's aligned depth


def test_depth_scale_and_colour_formats(monkeypatch):
    """Depth values times get_depth_scale() are millimetres; BGR and MJPG colour decode too."""
    device = FakeOrbbecDevice(frames=2, depth_scale=0.25, color_formats=(OBFormat.MJPG,))
    install_fake_pyorbbecsdk(monkeypatch, [device])
    source = OrbbecSource(0, config=_config(skeleton="none"))
    # the source asks for RGB; a camera that has only MJPG is refused with one sentence
    with pytest.raises(XmkdError, match=r"no 64x48 RGB colour stream at 30 fps"):
        _frames(source, 1)

    from capture.orbbec import color_to_bgr, depth_to_mm
    from tests.fakes import orbbec as fake

    module = install_fake_pyorbbecsdk(monkeypatch, [device])
    rgb = device.color_image(3)
    bgr = color_to_bgr(module, fake.ColorFrame(rgb[:, :, ::-1], OBFormat.BGR, 0, 3))
    assert np.array_equal(bgr, rgb[:, :, ::-1])
    import cv2

    ok, jpeg = cv2.imencode(".png", rgb[:, :, ::-1])  # lossless stand-in for the MJPG payload
    assert ok
    frame = fake.ColorFrame(jpeg.reshape(-1), OBFormat.MJPG, 0, 3, (device.width, device.height))
    assert np.array_equal(color_to_bgr(module, frame), rgb[:, :, ::-1])
    raw = fake.DepthFrame(np.full((4, 5), 6000, np.uint16), 0, 0, 0.25)
    assert np.all(depth_to_mm(raw) == 1500)
    with pytest.raises(XmkdError, match="colour format .* is not supported"):
        color_to_bgr(module, fake.ColorFrame(rgb, OBFormat.YUYV, 0, 3))


def _config(**kw):
    from capture.orbbec import OrbbecConfig

    return OrbbecConfig(width=64, height=48, **kw)


def test_intrinsics_come_from_the_sdk_and_scale_to_the_stream(monkeypatch):
    device = FakeOrbbecDevice(frames=2, fx=52.0, fy=51.0, cx=30.0, cy=22.0)
    install_fake_pyorbbecsdk(monkeypatch, [device])
    source = OrbbecSource(0, config=_config(skeleton="none"))
    _frames(source, 1)
    assert source.intrinsics == Intrinsics(64, 48, 52.0, 51.0, 30.0, 22.0)
    assert source.device_info()["intrinsics"] == {"fx": 52.0, "fy": 51.0, "cx": 30.0, "cy": 22.0}
    assert source.device_info()["serial"] == "CL8F0000001"

    from capture.orbbec import intrinsics_from_sdk
    from tests.fakes.orbbec import OBCameraIntrinsic

    half = intrinsics_from_sdk(OBCameraIntrinsic(600, 600, 639.5, 359.5, 1280, 720), 640, 360)
    assert (half.fx, half.fy, half.cx, half.cy) == (300, 300, 319.75, 179.75)
    with pytest.raises(XmkdError, match="reported no colour intrinsics"):
        intrinsics_from_sdk(OBCameraIntrinsic(0, 0, 0, 0, 0, 0), 640, 360)


def test_lifted_skeletons_use_the_aligned_depth_and_intrinsics(monkeypatch):
    """Keypoints on the person read its depth (tracked) and unproject with the SDK's
    intrinsics; NTU axes (-x, -y, z) metres; colour pixels mirrored like the frame; the
    estimator runs off the capture thread through EstimatorWorker."""
    device = FakeOrbbecDevice(frames=500)  # ends at the first frame with a body
    install_fake_pyorbbecsdk(monkeypatch, [device])
    pixels = _person_pixels()
    estimator = FixedKeypoints(pixels)
    source = open_source("orbbec:0?width=64&height=48", pose2d=estimator)
    frames = []
    with source:
        for frame in source:
            frames.append(frame)
            if frame.bodies:
                break
            time.sleep(0.01)  # a camera's pace: the worker gets its turn
    assert estimator.closed  # closed with the source
    body = frames[-1].bodies[0]
    intr = source.intrinsics
    expected_mm = intr.unproject(pixels, np.full(len(pixels), device.person_mm))
    expected = COCO17.to_ntu(expected_mm) * np.array([-1, -1, 1]) / 1000
    assert np.allclose(body.joints, expected, atol=1e-6)
    assert np.all(body.tracking[~COCO17.derived] == TRACKED)
    assert np.all(body.tracking[COCO17.derived] <= INFERRED)
    px = COCO17.to_ntu(pixels)
    assert np.allclose(body.color_px[:, 0], 64 - 1 - px[:, 0])  # mirrored like the frame
    assert np.allclose(body.color_px[:, 1], px[:, 1])


def test_untrusted_depth_is_inferred():
    """A keypoint off the person (background, rejected as off-body) and one on a hole
    in the depth are "inferred" and take their neighbours' depth."""
    pixels = _person_pixels()
    pixels[0] = (2.0, 2.0)  # nose on the far background
    depth = np.full((48, 64), 3000, np.uint16)
    depth[8:44, 20:44] = 1500
    depth[int(pixels[9, 1]) - 6 : int(pixels[9, 1]) + 7, int(pixels[9, 0]) - 6 :][:, :13] = 0
    camera = Intrinsics(64, 48, 50, 50, 31.5, 23.5)
    estimator = AlignedDepthLiftedEstimator(FixedKeypoints(pixels), camera)
    (body,) = estimator.estimate(RGBD(np.zeros((48, 64, 3), np.uint8), depth))
    lifted = estimator.lifter.lift(pixels, depth)
    assert lifted.states[0] == INFERRED and lifted.states[9] == INFERRED
    assert lifted.states[5] == TRACKED
    assert abs(lifted.points_mm[0, 2] - 1500) < 1 and abs(lifted.points_mm[9, 2] - 1500) < 1
    # the Estimator protocol: pixels of the unmirrored image
    assert np.allclose(body.color_px, COCO17.to_ntu(pixels))


def test_several_devices_sync_primary_and_secondaries(monkeypatch):
    devices = [FakeOrbbecDevice(serial="A", frames=2), FakeOrbbecDevice(serial="B", frames=2)]
    module = install_fake_pyorbbecsdk(monkeypatch, devices)
    sources = open_sources("orbbec:0,1?skeleton=none&width=64&height=48", camera=3)
    # the secondary is started first; camera ids follow the order given
    assert [(s.index, s.camera, s.config.sync) for s in sources] == [
        (1, 4, "secondary"),
        (0, 3, "primary"),
    ]
    for source in sources:
        _frames(source, 1)
    from tests.fakes.orbbec import OBMultiDeviceSyncMode

    assert devices[0].sync_config.mode == OBMultiDeviceSyncMode.PRIMARY
    assert devices[0].sync_config.trigger_out_enable
    assert devices[1].sync_config.mode == OBMultiDeviceSyncMode.SECONDARY_SYNCED
    assert devices[1].sync_config.depth_delay_us == 160
    assert module.sync_intervals == [60000]
    assert [d["serial"] for d in list_devices()] == ["A", "B"]


def test_unplugged_camera_is_one_sentence(monkeypatch):
    install_fake_pyorbbecsdk(monkeypatch, [])
    with pytest.raises(XmkdError) as err:
        _frames(open_source("orbbec:0?skeleton=none"), 1)
    assert str(err.value) == (
        "Orbbec camera #0 is not connected (0 device(s) found); check the USB 3 cable and, "
        "on Linux, the udev rules"
    )

    device = FakeOrbbecDevice(frames=50, unplug_after=2)
    install_fake_pyorbbecsdk(monkeypatch, [device])
    source = open_source("orbbec:0?skeleton=none&width=64&height=48&timeout=300")
    got = []
    with pytest.raises(XmkdError, match=r"^Orbbec camera #0 delivered no frames for 300 ms; it "):
        with source:
            for frame in source:
                got.append(frame)
    assert len(got) == 2 and device.stopped  # the frames before were delivered, then closed


def test_missing_sdk_is_one_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyorbbecsdk", None)
    with pytest.raises(MissingExtraError) as err:
        _frames(open_source("orbbec:0?skeleton=none"), 1)
    message = str(err.value)
    assert "pip install pyorbbecsdk2" in message and "udev rules" in message
    assert message.count(". ") == 0 and message.endswith(".")


def test_bad_options_are_one_sentence(monkeypatch):
    install_fake_pyorbbecsdk(monkeypatch, [FakeOrbbecDevice()])
    with pytest.raises(XmkdError, match=r"align='diagonal' is not one of \('sw', 'hw'\)"):
        open_source("orbbec:0?skeleton=none&align=diagonal")
    with pytest.raises(XmkdError, match="skeleton='bt' is not one of"):
        open_source("orbbec:0?skeleton=bt")
    with pytest.raises(XmkdError, match="devices are numbers"):
        open_source("orbbec:front")
    with pytest.raises(XmkdError, match="unknown option"):
        open_source("orbbec:0?skeleton=none&depth=NFOV_UNBINNED")


def test_lifted_skeletons_without_a_pose_model_are_one_sentence(monkeypatch, tmp_path):
    """skeleton=lifted (the default) needs the RTMPose model file: refused before opening."""
    monkeypatch.delenv("XMKD_POSE_MODEL", raising=False)
    install_fake_pyorbbecsdk(monkeypatch, [FakeOrbbecDevice()])
    with pytest.raises(XmkdError, match="pose_model"):
        open_source("orbbec:0")
    with pytest.raises(XmkdError, match="missing.onnx"):
        open_source(f"orbbec:0?pose_model={tmp_path / 'missing.onnx'}")
    with pytest.raises(XmkdError, match="needs a 2D pose estimator"):
        OrbbecSource(0)
