"""Azure Kinect capture over a fake pyk4a (pyk4a's own test approach: the device layer replaced by
fakes that produce captures); real sensors are exercised in test_capture_device.py."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from fakes.k4a import FakeDeviceSpec, FakeK4ALibs, FakePyK4A, install_fake_pyk4a, standing_body

from capture.bodytracking import BodyTracker
from capture.kinect import KinectConfig, KinectSource, list_devices
from capture.source import open_source, open_sources
from xmkd.errors import MissingExtraError, XmkdError


@pytest.fixture()
def calibration_raw(kinect_dir) -> str:
    return (kinect_dir / "azure-kinect-calibration.json").read_text()


def test_missing_pyk4a_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyk4a", None)  # import fails like a missing package
    with pytest.raises(MissingExtraError) as err:
        open_source("kinect?bodies=0").open()
    message = str(err.value)
    assert "Azure Kinect Sensor SDK" in message and "xmkd[kinect]" in message
    assert "\n" not in message


def test_enumerates_devices(monkeypatch, calibration_raw):
    install_fake_pyk4a(
        monkeypatch, [FakeDeviceSpec(serial="A1"), FakeDeviceSpec(serial="B2")], calibration_raw
    )
    assert list_devices() == [{"index": 0, "serial": "A1"}, {"index": 1, "serial": "B2"}]


def test_frames_are_mirrored_bgr_with_device_timestamps_and_drops(monkeypatch, calibration_raw):
    install_fake_pyk4a(monkeypatch, [FakeDeviceSpec(frames=6, gaps={3: 2})], calibration_raw)
    src = open_source("kinect:0?bodies=0", camera=2)
    assert isinstance(src, KinectSource)
    frames = []
    with pytest.raises(XmkdError, match="delivered no capture"):  # the fake stops after 6
        with src:
            for frame in src:
                frames.append(frame)
    assert len(frames) == 6 and all(f.camera == 2 for f in frames)
    color = frames[0].color
    assert color.shape == (720, 1280, 3) and color.flags["C_CONTIGUOUS"]
    # the red band on the camera's left is on the right of the mirrored (NTU-like) image
    assert color[:, -10:, 2].mean() == 255 and color[:, :10, 2].mean() == 0
    assert frames[0].depth.shape == (576, 640) and frames[0].depth[0, -1] == 700
    assert np.diff([f.device_usec for f in frames]).tolist() == [33333, 33333, 99999, 33333, 33333]
    assert src.dropped_frames == 2
    assert src.device_info()["serial"] == "000123456789"
    assert src.device_info()["calibration"]["CalibrationInformation"]


def test_bodies_come_from_the_tracker_with_the_capture_handle(monkeypatch, calibration_raw):
    install_fake_pyk4a(monkeypatch, [FakeDeviceSpec(frames=3)], calibration_raw)
    libs = FakeK4ALibs(lambda n: [(40 + n, standing_body(), np.full(32, 3))])
    real_init = BodyTracker.__init__
    monkeypatch.setattr(
        BodyTracker,
        "__init__",
        lambda self, *a, **k: real_init(self, *a, **{**k, "libraries": (libs, libs)}),
    )
    src = open_source("kinect:0")
    frames = []
    with pytest.raises(XmkdError):
        with src:
            for frame in src:
                frames.append(frame)
    assert [f.bodies[0].id for f in frames] == [40, 41, 42]
    # the k4a_capture_t handles inside pyk4a's capsules reached k4abt_tracker_enqueue_capture
    assert libs.enqueued == [0x1000, 0x1001, 0x1002]
    np.testing.assert_allclose(frames[0].bodies[0].joints[4], [-0.15, 0.4, 2.0])


def test_a_slow_tracker_is_pipelined_without_losing_or_reordering(monkeypatch, calibration_raw):
    install_fake_pyk4a(monkeypatch, [FakeDeviceSpec(frames=8)], calibration_raw)
    libs = FakeK4ALibs(lambda n: [(100 + n, standing_body(), np.full(32, 3))], capacity=2,
                       latency=1)  # fmt: skip
    real_init = BodyTracker.__init__
    monkeypatch.setattr(
        BodyTracker,
        "__init__",
        lambda self, *a, **k: real_init(self, *a, **{**k, "libraries": (libs, libs)}),
    )
    src = open_source("kinect:0")
    frames = []
    with pytest.raises(XmkdError):
        with src:
            for frame in src:
                frames.append(frame)
    # results lag one capture behind; each frame still carries its own capture's bodies
    ids = [f.bodies[0].id for f in frames]
    assert ids == list(range(100, 100 + len(frames))) and len(frames) >= 7
    assert np.all(np.diff([f.device_usec for f in frames]) == 33333)


def test_several_devices_sync_master_last_and_own_camera_ids(monkeypatch, calibration_raw):
    install_fake_pyk4a(monkeypatch, [FakeDeviceSpec(serial=s) for s in "ABC"], calibration_raw)
    sources = open_sources("kinect:0,1,2?bodies=0", camera=1)
    modes = {s.index: (s.camera, s.config.wired_sync, s.config.subordinate_delay_usec)
             for s in sources}  # fmt: skip
    assert modes == {0: (1, "master", 0), 1: (2, "subordinate", 160), 2: (3, "subordinate", 320)}
    for s in sources:  # the recorder opens them in list order
        s.open()
    assert [mode for _, mode in FakePyK4A.started] == [2, 2, 1]  # subordinates first
    for s in sources:
        s.close()
    with pytest.raises(XmkdError, match="names 3 devices"):
        open_source("kinect:0,1,2?bodies=0")


def test_config_validation_and_unconnected_device(monkeypatch, calibration_raw):
    with pytest.raises(XmkdError, match="fps"):
        KinectConfig(fps=60)
    with pytest.raises(XmkdError, match="15 fps"):
        KinectConfig(depth_mode="WFOV_UNBINNED", fps=30)
    with pytest.raises(XmkdError, match="colour resolution"):
        KinectConfig(color_resolution="4K")
    install_fake_pyk4a(monkeypatch, [FakeDeviceSpec()], calibration_raw)
    with pytest.raises(XmkdError, match="#3 is not connected"):
        open_source("kinect:3?bodies=0").open()
